/* test_store_verify: a sound store verifies clean, with every count right; every kind of
 * disagreement, made under LMDB's own API with sound checksums (as a bug would write it) or
 * without (as damage leaves it), is found, named with its database, key and both values, and
 * counted; the list handed out stops at the bound while the counts go on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "store_checksum.h"
#include "store_codec.h"
#include "store_verify.h"
#include "test_support.h"

#define MAX_SEEN 64

typedef struct {
    char *dir;
    store_t *store;
    store_verify_finding_t seen[MAX_SEEN];
    size_t seen_count;
} fixture_t;

static const char *SERVICE = "Adult Social Care";

static void
apply (store_t *store, const char *agent, uint64_t seq, Totalplace__SpendingRecord **records,
       size_t count)
{
    Totalplace__Batch *batch = test_batch_new (agent, seq);
    for (size_t i = 0; i < count; i++)
        test_batch_add (batch, records[i]);
    store_result_t results[8] = {{0}}, *rows[1] = {results};
    char err[STORE_ERR_LEN];
    if (store_apply (store, &batch, 1, rows, NULL, err, sizeof err))
        fail_msg ("store_apply: %s", err);
    test_batch_free (&batch);
}

static Totalplace__SpendingRecord *
rec (const char *id, uint32_t revision, const char *neighbourhood, const char *period,
     int64_t amount)
{
    return test_record ("GB-LAE-BNS", id, revision, neighbourhood, SERVICE, period, amount, true);
}

/* Six records over two agents: a correction, a withdrawal, a duplicate and three neighbourhoods. */
static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = test_tmpdir ("test_store_verify");
    f->store = test_store_new (f->dir, NULL);
    Totalplace__SpendingRecord *first[] = {rec ("T1", 1, "E01000001", "2013-04", 1000),
                                           rec ("T2", 1, "E01000001", "2013-04", 250),
                                           rec ("T3", 1, "E01000002", "2013-05", -75)};
    apply (f->store, "agent-a", 1, first, 3);
    Totalplace__SpendingRecord *withdrawn = rec ("T3", 2, "E01000002", "2013-05", -75);
    withdrawn->withdrawn = true;
    Totalplace__SpendingRecord *second[] = {rec ("T1", 2, "E01000001", "2013-04", 1100), withdrawn,
                                            rec ("T4", 1, "E01000003", "2014-01", 5),
                                            rec ("T2", 1, "E01000001", "2013-04", 250)};
    apply (f->store, "agent-b", 7, second, 4);
    Totalplace__SpendingRecord *third[] = {rec ("T5", 1, "E01000003", "2014-01", 20)};
    apply (f->store, "agent-a", 2, third, 1);
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

static int
collect (void *arg, const store_verify_finding_t *finding)
{
    fixture_t *f = arg;
    assert_true (f->seen_count < MAX_SEEN);
    f->seen[f->seen_count++] = *finding;
    return 0;
}

static store_verify_summary_t
verify (fixture_t *f, size_t max_findings)
{
    store_verify_summary_t summary;
    char err[STORE_ERR_LEN];
    f->seen_count = 0;
    if (store_verify (f->store, max_findings, collect, f, &summary, err, sizeof err))
        fail_msg ("store_verify: %s", err);
    return summary;
}

/* Closes the store so that LMDB may be written to underneath, as the tests then do. */
static void
close_store (fixture_t *f)
{
    store_destroy (&f->store);
}

static void
reopen (fixture_t *f)
{
    store_options_t options = {.path = f->dir, .read_only = true};
    char err[STORE_ERR_LEN];
    f->store = store_new (&options, NULL, err, sizeof err);
    if (!f->store)
        fail_msg ("store_new: %s", err);
}

static const store_verify_finding_t *
find (const fixture_t *f, store_verify_kind_t kind, const char *key)
{
    for (size_t i = 0; i < f->seen_count; i++)
        if (f->seen[i].kind == kind && strcmp (f->seen[i].key, key) == 0)
            return &f->seen[i];
    return NULL;
}

static void
test_sound_store_is_clean (void **state)
{
    fixture_t *f = *state;
    store_verify_summary_t summary = verify (f, 100);
    assert_int_equal (summary.findings, 0);
    assert_int_equal (f->seen_count, 0);
    assert_int_equal (summary.records, 5);
    assert_int_equal (summary.live_records, 4);
    assert_int_equal (summary.withdrawn_records, 1);
    assert_int_equal (summary.cells, 2);          /* 2013-04 E01000001, 2014-01 E01000003 */
    assert_int_equal (summary.neighbourhoods, 2); /* E01000002 left with its only record */
    assert_int_equal (summary.recomputed_cells, 2);
    assert_int_equal (summary.recomputed_neighbourhoods, 2);
    assert_int_equal (summary.agents, 2);
    /* One body, three neighbourhoods, one service, one supplier: each text once, both ways. */
    assert_int_equal (summary.texts, 6);
    assert_int_equal (summary.text_ids, 6);
    assert_true (summary.memory_bytes > 0);
    /* Read-only, from another handle, as `totalplace verify` does beside the collector. */
    close_store (f);
    reopen (f);
    summary = verify (f, 100);
    assert_int_equal (summary.findings, 0);
}

static void
test_empty_store_is_clean (void **state)
{
    (void)state;
    fixture_t f = {.dir = test_tmpdir ("test_store_verify_empty")};
    f.store = test_store_new (f.dir, NULL);
    store_verify_summary_t summary = verify (&f, 10);
    assert_int_equal (summary.findings, 0);
    assert_int_equal (summary.records, 0);
    test_store_remove (&f.store, &f.dir);
}

static const char *CELL_1 = "2013-04|E01000001|GB-LAE-BNS|Adult Social Care|Y";
static const char *CELL_3 = "2014-01|E01000003|GB-LAE-BNS|Adult Social Care|Y";

/* Writes a total (amount, records) at key with a sound checksum. */
static void
put_total (const char *dir, const char *database, const void *key, size_t key_len,
           int64_t amount_pence, int64_t records)
{
    unsigned char value[STORE_CODEC_AMOUNT_MAX];
    test_raw_put (dir, database, key, key_len, value,
                  store_codec_amount_encode (amount_pence, records, value), true);
}

/* Totals that differ, are missing or extra, each written with a sound checksum: only the
 * recomputation can tell. */
static void
test_totals_that_disagree_are_named_with_both_values (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    unsigned char key[64];
    size_t len = test_store_key (f->dir, "cells", CELL_1, key, sizeof key);
    put_total (f->dir, "cells", key, len, 1349, 2); /* the records make 1350 from 2 */
    len = test_store_key (f->dir, "cells", CELL_3, key, sizeof key);
    test_raw_del (f->dir, "cells", key, len);
    /* A neighbourhood the dictionary has no text for: named by its id. */
    store_codec_id (9999, key);
    put_total (f->dir, "neighbourhoods", key, STORE_CODEC_ID_LEN, 500, 1);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    assert_int_equal (summary.different, 1);
    assert_int_equal (summary.missing, 1);
    assert_int_equal (summary.extra, 1);
    assert_int_equal (summary.findings, 3);
    const store_verify_finding_t *different = find (f, STORE_VERIFY_DIFFERENT, CELL_1);
    assert_non_null (different);
    assert_int_equal (different->db, STORE_DB_CELLS);
    assert_true (different->has_stored && different->has_recomputed);
    assert_int_equal (different->stored.amount_pence, 1349);
    assert_int_equal (different->recomputed.amount_pence, 1350);
    assert_int_equal (different->recomputed.records, 2);
    const store_verify_finding_t *missing = find (f, STORE_VERIFY_MISSING, CELL_3);
    assert_non_null (missing);
    assert_false (missing->has_stored);
    assert_int_equal (missing->recomputed.amount_pence, 25);
    assert_int_equal (missing->recomputed.records, 2);
    const store_verify_finding_t *extra = find (f, STORE_VERIFY_EXTRA, "neighbourhood#9999");
    assert_non_null (extra);
    assert_int_equal (extra->db, STORE_DB_NEIGHBOURHOODS);
    assert_false (extra->has_recomputed);
    assert_int_equal (extra->stored.amount_pence, 500);
}

/* A value without its checksum is damaged; a record naming a text the dictionary does not hold
 * is invalid. */
static void
test_damage_and_records_naming_no_text (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    unsigned char value[512], key[64];
    size_t len = test_store_key (f->dir, "records", "GB-LAE-BNS|T4", key, sizeof key);
    size_t size = test_raw_get (f->dir, "records", key, len, value, sizeof value);
    assert_true (size > 3);
    value[2] ^= 0x10;
    test_raw_put (f->dir, "records", key, len, value, size, false);
    /* T5's record with a neighbourhood id no text has, sealed under the key of a T9 that was
     * never sent. */
    len = test_store_key (f->dir, "records", "GB-LAE-BNS|T5", key, sizeof key);
    size = test_raw_get (f->dir, "records", key, len, value, sizeof value);
    store_codec_record_t record;
    assert_int_equal (store_codec_record_decode (value, size - STORE_CHECKSUM_BYTES, &record), 0);
    record.neighbourhood = 999;
    key[len - 1] = '9';
    test_raw_put (f->dir, "records", key, len, value, store_codec_record_encode (&record, value),
                  true);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    const store_verify_finding_t *damaged = find (f, STORE_VERIFY_DAMAGED, "GB-LAE-BNS|T4");
    assert_non_null (damaged);
    assert_string_equal (damaged->what, "fails its checksum");
    assert_int_equal (damaged->db, STORE_DB_RECORDS);
    const store_verify_finding_t *invalid = find (f, STORE_VERIFY_INVALID, "GB-LAE-BNS|T9");
    assert_non_null (invalid);
    assert_string_equal (invalid->what, "names neighbourhood id 999, which texts does not hold");
    assert_int_equal (summary.damaged, 1);
    assert_int_equal (summary.invalid, 1);
    /* The damaged T4 no longer counts: its cell now differs from what the readable records make. */
    assert_non_null (find (f, STORE_VERIFY_DIFFERENT, CELL_3));
    /* A sixth record stored, five accepted. */
    assert_true (summary.invariants >= 1);
    bool said = false;
    for (size_t i = 0; i < f->seen_count; i++)
        said |= strstr (f->seen[i].what, "holds 6 records, the counters say 5 were accepted") != 0;
    assert_true (said);
}

/* The two dictionaries must say the same both ways, each text once, each valid for its kind. */
static void
test_dictionaries_that_disagree (void **state)
{
    fixture_t *f = *state;
    store_identity_t identity;
    store_identity (f->store, &identity);
    unsigned char hash_key[16];
    for (int i = 0; i < 16; i++)
        sscanf (identity.store_id + 2 * i, "%2hhx", &hash_key[i]);
    close_store (f);
    /* E01000003 (neighbourhood id 3) loses its text_ids entry: a lookup would not find it. */
    unsigned char key[STORE_CODEC_TEXT_ID_KEY_LEN], id_value[STORE_CODEC_ID_LEN];
    store_codec_text_id_key (STORE_TEXT_NEIGHBOURHOOD,
                             store_codec_text_hash (hash_key, "E01000003", 9), 0, key);
    unsigned char value[64];
    assert_int_equal (test_raw_get (f->dir, "text_ids", key, sizeof key, value, sizeof value),
                      STORE_CODEC_ID_LEN + STORE_CHECKSUM_BYTES);
    test_raw_del (f->dir, "text_ids", key, sizeof key);
    /* A fourth neighbourhood with the text of the first: one text, two ids. */
    unsigned char text_key[STORE_CODEC_TEXT_KEY_LEN];
    store_codec_text_key (STORE_TEXT_NEIGHBOURHOOD, 4, text_key);
    test_raw_put (f->dir, "texts", text_key, sizeof text_key, "E01000001", 10, true);
    store_codec_text_id_key (STORE_TEXT_NEIGHBOURHOOD,
                             store_codec_text_hash (hash_key, "E01000001", 9), 1, key);
    store_codec_id (4, id_value);
    test_raw_put (f->dir, "text_ids", key, sizeof key, id_value, sizeof id_value, true);
    /* A body whose text is no body id, and a text_ids entry naming an id texts does not hold. */
    store_codec_text_key (STORE_TEXT_BODY, 2, text_key);
    test_raw_put (f->dir, "texts", text_key, sizeof text_key, "GB LAE", 7, true);
    store_codec_text_id_key (STORE_TEXT_BODY, store_codec_text_hash (hash_key, "GB LAE", 6), 0,
                             key);
    store_codec_id (3, id_value);
    test_raw_put (f->dir, "text_ids", key, sizeof key, id_value, sizeof id_value, true);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    const store_verify_finding_t *unindexed = find (f, STORE_VERIFY_MISSING, "neighbourhood#3");
    assert_non_null (unindexed);
    assert_string_equal (unindexed->what, "no text_ids entry leads to this text");
    bool twice = false, invalid_text = false, no_text = false;
    for (size_t i = 0; i < f->seen_count; i++) {
        twice |= strstr (f->seen[i].what, "neighbourhood id 4 has the text of id 1") != NULL;
        invalid_text |= f->seen[i].db == STORE_DB_TEXTS &&
                        strstr (f->seen[i].what, "the text fails validation: body_id") != NULL;
        no_text |= strstr (f->seen[i].what, "names body id 3, which texts does not hold") != NULL;
    }
    assert_true (twice);
    assert_true (invalid_text);
    assert_true (no_text);
    /* Body 2 has its text_ids entry under another id, so it is also not indexed. */
    assert_non_null (find (f, STORE_VERIFY_MISSING, "body#2"));
    assert_int_equal (summary.texts, 8);
    assert_int_equal (summary.text_ids, 7);
    assert_int_equal (summary.findings, 5);
}

/* The agents' batches and the counters' are written together: they must agree. */
static void
test_agents_and_counters_must_agree (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    unsigned char value[64];
    size_t size = test_raw_get (f->dir, "agents", "agent-b", 7, value, sizeof value);
    assert_int_equal (size, 24 + STORE_CHECKSUM_BYTES);
    uint64_t batches = 5; /* last_batch_seq, then batches, then last_seen */
    memcpy (value + 8, &batches, sizeof batches);
    test_raw_put (f->dir, "agents", "agent-b", 7, value, 24, true);
    uint64_t none[3] = {0, 0, 0};
    test_raw_put (f->dir, "agents", "agent-z", 7, none, sizeof none, true);
    test_raw_put (f->dir, "meta", "notes", 5, "hello", 5, true);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    assert_non_null (find (f, STORE_VERIFY_INVARIANT, "agent-z"));
    assert_non_null (find (f, STORE_VERIFY_INVARIANT, "notes"));
    const store_verify_finding_t *sum = find (f, STORE_VERIFY_INVARIANT, "counters");
    assert_non_null (sum);
    assert_string_equal (sum->what, "the agents' batches add up to 7, the counters say 3");
    assert_int_equal (summary.invariants, 3);
}

/* The list handed out stops at max_findings; the counts do not. */
static void
test_findings_are_bounded (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    for (int i = 0; i < 30; i++) {
        unsigned char key[STORE_CODEC_ID_LEN];
        store_codec_id ((uint32_t)(20000 + i), key);
        put_total (f->dir, "neighbourhoods", key, sizeof key, i + 1, 1);
    }
    reopen (f);
    store_verify_summary_t summary = verify (f, 10);
    assert_int_equal (f->seen_count, 10);
    assert_int_equal (summary.extra, 30);
    assert_int_equal (summary.findings, 30);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_sound_store_is_clean, setup, teardown),
        cmocka_unit_test (test_empty_store_is_clean),
        cmocka_unit_test_setup_teardown (test_totals_that_disagree_are_named_with_both_values,
                                         setup, teardown),
        cmocka_unit_test_setup_teardown (test_damage_and_records_naming_no_text, setup, teardown),
        cmocka_unit_test_setup_teardown (test_agents_and_counters_must_agree, setup, teardown),
        cmocka_unit_test_setup_teardown (test_dictionaries_that_disagree, setup, teardown),
        cmocka_unit_test_setup_teardown (test_findings_are_bounded, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
