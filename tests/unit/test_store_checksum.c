/* test_store_checksum: every value the store reads is checked against its checksum. Values are
 * altered under LMDB's own API, as damage or another program would leave them (a changed byte
 * without its checksum, a value of the wrong size, a value moved under another key): each read
 * fails with STORE_ERR_DAMAGED naming the database and the key, never a wrong answer; the store
 * remembers the damage, in whichever thread met it, and store_apply then refuses every group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "store.h"
#include "store_checksum.h"
#include "test_support.h"

/* ---------------------------------------------------------------- the checksum itself */

static void
test_checksum_covers_payload_key_and_database (void **state)
{
    (void)state;
    unsigned char value[64 + STORE_CHECKSUM_BYTES];
    for (size_t i = 0; i < 64; i++)
        value[i] = (unsigned char)(i * 37 + 11);
    store_checksum_key_t hash_key, other_key, other_db;
    store_checksum_key (STORE_DB_CELLS,
                        "2013-04\x1f"
                        "E01000001",
                        17, &hash_key);
    store_checksum_key (STORE_DB_CELLS,
                        "2013-04\x1f"
                        "E01000002",
                        17, &other_key);
    store_checksum_key (STORE_DB_NEIGHBOURHOODS,
                        "2013-04\x1f"
                        "E01000001",
                        17, &other_db);
    store_checksum_seal (&hash_key, value, 64);
    size_t payload_len = 0;
    assert_int_equal (store_checksum_open (&hash_key, value, sizeof value, &payload_len),
                      STORE_CHECKSUM_OK);
    assert_int_equal (payload_len, 64);
    /* Every single bit flipped, in the payload or the checksum, is caught. */
    for (size_t bit = 0; bit < 8 * sizeof value; bit++) {
        value[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal (store_checksum_open (&hash_key, value, sizeof value, &payload_len),
                          STORE_CHECKSUM_MISMATCH);
        value[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* The same bytes under another key or in another database are not sound. */
    assert_int_equal (store_checksum_open (&other_key, value, sizeof value, &payload_len),
                      STORE_CHECKSUM_MISMATCH);
    assert_int_equal (store_checksum_open (&other_db, value, sizeof value, &payload_len),
                      STORE_CHECKSUM_MISMATCH);
    /* Cut short: a value without room for a checksum, or with its last byte lost. */
    assert_int_equal (
        store_checksum_open (&hash_key, value, STORE_CHECKSUM_BYTES - 1, &payload_len),
        STORE_CHECKSUM_SHORT);
    assert_int_equal (store_checksum_open (&hash_key, value, sizeof value - 1, &payload_len),
                      STORE_CHECKSUM_MISMATCH);
    assert_string_equal (store_db_name (STORE_DB_RECORDS), "records");
    assert_string_equal (store_db_name (STORE_DB_META), "meta");
}

static void
test_key_text_is_printable_and_bounded (void **state)
{
    (void)state;
    char out[64];
    assert_string_equal (store_key_text ("GB-LAE-BNS\x1fT1", 13, out, sizeof out), "GB-LAE-BNS|T1");
    assert_string_equal (store_key_text ("Children\xe2\x80\x99s\x1fY", 14, out, sizeof out),
                         "Children\xe2\x80\x99s|Y");
    assert_string_equal (store_key_text ("a\nb\xff\xc3", 5, out, sizeof out), "a\\x0ab\\xff\\xc3");
    char longest[600];
    memset (longest, 'k', sizeof longest);
    store_key_text (longest, sizeof longest, out, sizeof out);
    assert_int_equal (strlen (out), sizeof out - 1);
    assert_string_equal (out + sizeof out - 4, "...");
    /* A key that fits exactly is not cut. */
    store_key_text (longest, sizeof out - 1, out, sizeof out);
    assert_int_equal (strlen (out), sizeof out - 1);
    assert_null (strstr (out, "..."));
}

/* ---------------------------------------------------------------- a store with damage */

typedef struct {
    char *dir;
    store_t *store;
} fixture_t;

static const char *CELL_KEY = "2013-05|E01000001|GB-LAE-BNS|Adult Social Care|Y";
static const char *RECORD_KEY = "GB-LAE-BNS|T1";

static void
apply_batch (store_t *store, const char *agent, uint64_t seq, const char *record_id,
             const char *neighbourhood, int64_t amount, int expected, char *err, size_t err_len)
{
    Totalplace__Batch *batch = test_batch_new (agent, seq);
    test_batch_add (batch, test_record ("GB-LAE-BNS", record_id, 1, neighbourhood,
                                        "Adult Social Care", "2013-05", amount, true));
    store_result_t results[1] = {{0}}, *rows[1] = {results};
    assert_int_equal (store_apply (store, &batch, 1, rows, NULL, err, err_len), expected);
    test_batch_free (&batch);
}

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = test_tmpdir ("test_store_checksum");
    f->store = test_store_new (f->dir, NULL);
    char err[STORE_ERR_LEN];
    apply_batch (f->store, "agent-a", 1, "T1", "E01000001", 1234, 0, err, sizeof err);
    apply_batch (f->store, "agent-a", 2, "T2", "E01000002", 500, 0, err, sizeof err);
    store_destroy (&f->store);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    test_store_remove (&f->store, &f->dir);
    free (f);
    return 0;
}

typedef enum { FLIP_BYTE, RESIZE, TRUNCATE, MOVE_FROM_KEY } alteration_t;

/* Alters the value of database at the key of words (as messages show keys) with LMDB itself, the
 * store closed: flips a bit of its first byte; makes its payload a byte shorter with a sound
 * checksum (a value of the wrong size, as another layout would have); keeps only its first 2
 * bytes; or replaces it with the (sound) value of another key. */
static void
alter (const char *dir, const char *database, const char *words, alteration_t how, const char *from)
{
    unsigned char value[2048], key[512], source[512];
    size_t key_len = test_store_key (dir, database, words, key, sizeof key);
    size_t source_len = how == MOVE_FROM_KEY
                            ? test_store_key (dir, database, from, source, sizeof source)
                            : test_store_key (dir, database, words, source, sizeof source);
    size_t size = test_raw_get (dir, database, source, source_len, value, sizeof value);
    assert_true (size > STORE_CHECKSUM_BYTES + 1);
    bool sealed = false;
    if (how == FLIP_BYTE)
        value[0] ^= 0x04;
    else if (how == TRUNCATE)
        size = 2;
    else if (how == RESIZE) {
        size -= STORE_CHECKSUM_BYTES + 1;
        sealed = true;
    }
    test_raw_put (dir, database, key, key_len, value, size, sealed);
}

static store_t *
reopen (fixture_t *f)
{
    store_options_t options = {.path = f->dir};
    char err[STORE_ERR_LEN];
    store_t *store = store_new (&options, NULL, err, sizeof err);
    if (!store)
        fail_msg ("store_new: %s", err);
    return store;
}

static int
count_row (void *arg, const char *key, store_amount_t amount)
{
    (void)key;
    (void)amount;
    (*(int *)arg)++;
    return 0;
}

static int
count_agent (void *arg, const store_agent_t *agent)
{
    (void)agent;
    (*(int *)arg)++;
    return 0;
}

/* err names the database and the key, says damaged and what to do. */
static void
assert_names (const char *err, const char *database, const char *key_text, const char *what)
{
    char expected[256];
    snprintf (expected, sizeof expected, "the value of key \"%s\" in database \"%s\" %s", key_text,
              database, what);
    if (!strstr (err, expected) || !strstr (err, "is damaged") ||
        !strstr (err, "totalplace verify --db") || !strstr (err, "restore the store from a backup"))
        fail_msg ("expected \"%s\" in: %s", expected, err);
}

/* After damage: store_apply refuses, whatever it is given, and says why and what to do. */
static void
assert_apply_refused (store_t *store, const char *finding)
{
    char err[STORE_ERR_LEN];
    store_counters_t before, after;
    assert_int_equal (store_counters (store, &before, err, sizeof err), 0);
    for (int attempt = 0; attempt < 2; attempt++) {
        apply_batch (store, "agent-b", (uint64_t)attempt + 1, "T99", "E01009999", 1,
                     STORE_ERR_DAMAGED, err, sizeof err);
        if (!strstr (err, finding) || !strstr (err, "takes no batch until it is restored") ||
            !strstr (err, "totalplace verify --db"))
            fail_msg ("store_apply's refusal: %s", err);
    }
    assert_int_equal (store_counters (store, &after, err, sizeof err), 0);
    assert_int_equal (after.batches, before.batches);
    assert_int_equal (after.records_stored, before.records_stored);
    assert_true (store_damage (store, NULL, 0));
}

static void
test_damaged_cell_fails_reads_and_stops_applying (void **state)
{
    fixture_t *f = *state;
    alter (f->dir, "cells", CELL_KEY, FLIP_BYTE, NULL);
    f->store = reopen (f);
    assert_false (store_damage (f->store, NULL, 0));
    char err[STORE_ERR_LEN];
    int rows = 0;
    /* The other neighbourhood's cells are sound and still answer. */
    assert_int_equal (store_totals (f->store, "E01000002", STORE_BY_BODY, NULL, count_row, &rows,
                                    err, sizeof err),
                      0);
    assert_int_equal (rows, 1);
    rows = 0;
    assert_int_equal (store_totals (f->store, "E01000001", STORE_BY_NONE, NULL, count_row, &rows,
                                    err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_int_equal (rows, 0); /* no total at all, rather than a wrong one */
    assert_names (err, "cells", "2013-05|E01000001|GB-LAE-BNS|Adult Social Care|Y",
                  "fails its checksum");
    assert_int_equal (store_exit_status (STORE_ERR_DAMAGED), 65);
    assert_int_equal (store_totals (f->store, NULL, STORE_BY_NEIGHBOURHOOD, NULL, count_row, &rows,
                                    err, sizeof err),
                      STORE_ERR_DAMAGED);
    char finding[STORE_ERR_LEN];
    assert_true (store_damage (f->store, finding, sizeof finding));
    assert_non_null (strstr (finding, "in database \"cells\" fails its checksum"));
    assert_apply_refused (f->store, "in database \"cells\" fails its checksum");
}

static void
test_damaged_record_fails_reads_and_apply (void **state)
{
    fixture_t *f = *state;
    alter (f->dir, "records", RECORD_KEY, FLIP_BYTE, NULL);
    f->store = reopen (f);
    char err[STORE_ERR_LEN];
    Totalplace__SpendingRecord *record = NULL;
    assert_int_equal (store_get_record (f->store, "GB-LAE-BNS", "T1", &record, err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_null (record);
    assert_names (err, "records", "GB-LAE-BNS|T1", "fails its checksum");
    store_destroy (&f->store);

    /* A fresh store that has not met the damage meets it applying a copy of the record. */
    f->store = reopen (f);
    apply_batch (f->store, "agent-a", 3, "T1", "E01000001", 1234, STORE_ERR_DAMAGED, err,
                 sizeof err);
    assert_non_null (strstr (err, "the value of key \"GB-LAE-BNS|T1\" in database \"records\" "
                                  "fails its checksum"));
    assert_non_null (strstr (err, "takes no batch until it is restored"));
    assert_apply_refused (f->store, "in database \"records\"");
    /* The mark of agent-a did not move: the group was not applied. */
    uint64_t mark = 0;
    assert_int_equal (store_agent_mark (f->store, "agent-a", &mark, err, sizeof err), 0);
    assert_int_equal (mark, 2);
}

static void
test_value_of_the_wrong_size_is_damage (void **state)
{
    fixture_t *f = *state;
    alter (f->dir, "neighbourhoods", "E01000002", RESIZE, NULL);
    alter (f->dir, "cells", CELL_KEY, TRUNCATE, NULL);
    f->store = reopen (f);
    char err[STORE_ERR_LEN];
    int rows = 0;
    assert_int_equal (store_neighbourhoods (f->store, count_row, &rows, err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_names (err, "neighbourhoods", "E01000002", "does not decode as a total");
    assert_int_equal (store_totals (f->store, "E01000001", STORE_BY_NONE, NULL, count_row, &rows,
                                    err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_names (err, "cells", "2013-05|E01000001|GB-LAE-BNS|Adult Social Care|Y",
                  "has 2 bytes, too few to hold its checksum");
}

static void
test_value_moved_under_another_key_is_damage (void **state)
{
    fixture_t *f = *state;
    /* E01000001's total copied, checksum and all, over E01000002's. */
    alter (f->dir, "neighbourhoods", "E01000002", MOVE_FROM_KEY, "E01000001");
    f->store = reopen (f);
    char err[STORE_ERR_LEN];
    int rows = 0;
    assert_int_equal (store_totals (f->store, "E01000002", STORE_BY_NONE, NULL, count_row, &rows,
                                    err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_names (err, "neighbourhoods", "E01000002", "fails its checksum");
}

static void
test_damaged_agent_and_counters (void **state)
{
    fixture_t *f = *state;
    alter (f->dir, "agents", "agent-a", FLIP_BYTE, NULL);
    alter (f->dir, "meta", "counters", RESIZE, NULL);
    f->store = reopen (f);
    char err[STORE_ERR_LEN];
    uint64_t mark;
    assert_int_equal (store_agent_mark (f->store, "agent-a", &mark, err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_names (err, "agents", "agent-a", "fails its checksum");
    int agents = 0;
    assert_int_equal (store_agents (f->store, count_agent, &agents, err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_int_equal (agents, 0);
    store_counters_t counters;
    assert_int_equal (store_counters (f->store, &counters, err, sizeof err), STORE_ERR_DAMAGED);
    assert_names (err, "meta", "counters", "has 51 bytes, not 52");
}

typedef struct {
    store_t *store;
    int rc;
} reader_t;

static void *
read_in_thread (void *arg)
{
    reader_t *reader = arg;
    char err[STORE_ERR_LEN];
    int rows = 0;
    reader->rc = store_neighbourhoods (reader->store, count_row, &rows, err, sizeof err);
    return NULL;
}

/* A reader thread (the query server) meets the damage: the writer stops applying at once. */
static void
test_damage_met_by_a_reader_thread_stops_the_writer (void **state)
{
    fixture_t *f = *state;
    alter (f->dir, "neighbourhoods", "E01000001", FLIP_BYTE, NULL);
    f->store = reopen (f);
    reader_t reader = {f->store, 0};
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, read_in_thread, &reader), 0);
    assert_int_equal (pthread_join (thread, NULL), 0);
    assert_int_equal (reader.rc, STORE_ERR_DAMAGED);
    assert_apply_refused (f->store,
                          "the value of key \"E01000001\" in database \"neighbourhoods\"");
}

/* Without damage nothing is refused, and a store reopened after damage was met starts afresh
 * (the damage is met again when read). */
static void
test_sound_store_reads_and_applies (void **state)
{
    fixture_t *f = *state;
    f->store = reopen (f);
    char err[STORE_ERR_LEN];
    apply_batch (f->store, "agent-a", 3, "T3", "E01000001", 1, 0, err, sizeof err);
    int rows = 0;
    assert_int_equal (store_neighbourhoods (f->store, count_row, &rows, err, sizeof err), 0);
    assert_int_equal (rows, 2);
    assert_false (store_damage (f->store, NULL, 0));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_checksum_covers_payload_key_and_database),
        cmocka_unit_test (test_key_text_is_printable_and_bounded),
        cmocka_unit_test_setup_teardown (test_damaged_cell_fails_reads_and_stops_applying, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_damaged_record_fails_reads_and_apply, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_value_of_the_wrong_size_is_damage, setup, teardown),
        cmocka_unit_test_setup_teardown (test_value_moved_under_another_key_is_damage, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_damaged_agent_and_counters, setup, teardown),
        cmocka_unit_test_setup_teardown (test_damage_met_by_a_reader_thread_stops_the_writer, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_sound_store_reads_and_applies, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
