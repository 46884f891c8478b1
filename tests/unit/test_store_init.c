/* test_store_init: a store is made only by store_init, in a new or empty folder, with an identity;
 * store_new never creates one and refuses, with a code and a message saying what to do, a folder
 * without a store, a damaged data.mdb, a store without identity (format 0), of a newer format or
 * not totalplace's, and changes nothing while refusing. Also the marks store_apply reports and
 * store_agent_mark. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "test_support.h"

static char *
path_in (const char *dir, const char *name)
{
    size_t len = strlen (dir) + strlen (name) + 2;
    char *path = malloc (len);
    assert_non_null (path);
    snprintf (path, len, "%s/%s", dir, name);
    return path;
}

/* The names in dir, sorted and joined with spaces ("" when empty). */
static void
list_folder (const char *dir, char *out, size_t out_len)
{
    struct dirent **entries;
    int n = scandir (dir, &entries, NULL, alphasort);
    assert_true (n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp (entries[i]->d_name, ".") && strcmp (entries[i]->d_name, "..")) {
            if (*out)
                strncat (out, " ", out_len - strlen (out) - 1);
            strncat (out, entries[i]->d_name, out_len - strlen (out) - 1);
        }
        free (entries[i]);
    }
    free (entries);
}

static void
write_file (const char *path, const void *bytes, size_t size)
{
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (bytes, 1, size, file), size);
    assert_int_equal (fclose (file), 0);
}

/* The whole of a file, and its size. */
static char *
read_file (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    assert_non_null (file);
    fseek (file, 0, SEEK_END);
    *size = (size_t)ftell (file);
    rewind (file);
    char *bytes = malloc (*size ? *size : 1);
    assert_non_null (bytes);
    assert_int_equal (fread (bytes, 1, *size, file), *size);
    fclose (file);
    return bytes;
}

/* Sets (value non-NULL) or deletes a key of a store's meta database with LMDB itself, as a store
 * of another format or a damaged one would hold it; with its checksum when sealed. */
static void
put_meta (const char *dir, const char *name, const char *value, bool sealed)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    assert_int_equal (mdb_env_create (&env), 0);
    mdb_env_set_maxdbs (env, 8);
    assert_int_equal (mdb_env_open (env, dir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, "meta", MDB_CREATE, &meta), 0);
    MDB_val key = {strlen (name), (void *)name};
    if (value) {
        char bytes[128];
        size_t len = strlen (value);
        assert_true (len + STORE_CHECKSUM_BYTES <= sizeof bytes);
        memcpy (bytes, value, len);
        if (sealed) {
            store_checksum_key_t hash_key;
            store_checksum_key (STORE_DB_META, name, strlen (name), &hash_key);
            store_checksum_seal (&hash_key, bytes, len);
            len += STORE_CHECKSUM_BYTES;
        }
        MDB_val data = {len, bytes};
        assert_int_equal (mdb_put (txn, meta, &key, &data, 0), 0);
    }
    else
        assert_int_equal (mdb_del (txn, meta, &key, NULL), 0);
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);
}

static void
set_meta (const char *dir, const char *name, const char *value)
{
    put_meta (dir, name, value, true);
}

/* A new store in dir, closed again. */
static void
make_store (const char *dir)
{
    store_t *store = test_store_new (dir, NULL);
    store_destroy (&store);
}

/* store_new's verdict on dir, read-write and read-only alike; returns the code and the message. */
static int
refusal (const char *dir, char *err, size_t err_len)
{
    int codes[2];
    for (int read_only = 0; read_only < 2; read_only++) {
        store_options_t options = {.path = dir, .read_only = read_only};
        codes[read_only] = 0;
        store_t *store = store_new (&options, &codes[read_only], err, err_len);
        if (store)
            fail_msg ("store_new opened %s (read_only %d)", dir, read_only);
    }
    assert_int_equal (codes[0], codes[1]);
    return codes[0];
}

static bool
is_hex_id (const char *id)
{
    if (strlen (id) != STORE_ID_HEX_LEN - 1)
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

static void
test_init_makes_a_store_with_an_identity (void **state)
{
    (void)state;
    char *parent = test_tmpdir ("test_store_init");
    char *dir = path_in (parent, "store"); /* missing: init creates it */
    store_identity_t made, other;
    char err[STORE_ERR_LEN] = "";
    int64_t before = (int64_t)time (NULL);
    if (store_init (dir, &made, err, sizeof err))
        fail_msg ("store_init: %s", err);
    assert_true (is_hex_id (made.store_id));
    assert_int_equal (made.format, STORE_FORMAT_VERSION);
    assert_true (made.created >= before && made.created <= (int64_t)time (NULL));
    char names[256];
    list_folder (dir, names, sizeof names);
    assert_string_equal (names, "data.mdb"); /* nothing of the build left behind */

    store_options_t options = {.path = dir};
    store_t *store = store_new (&options, NULL, err, sizeof err);
    if (!store)
        fail_msg ("store_new after init: %s", err);
    store_identity_t opened;
    assert_int_equal (store_identity (store, &opened), 0);
    assert_string_equal (opened.store_id, made.store_id);
    assert_int_equal (opened.format, made.format);
    assert_int_equal (opened.created, made.created);
    store_counters_t counters;
    assert_int_equal (store_counters (store, &counters, err, sizeof err), 0);
    assert_int_equal (counters.batches, 0);
    assert_int_equal (counters.records_stored, 0);
    store_destroy (&store);
    store_options_t read_only = {.path = dir, .read_only = true};
    store = store_new (&read_only, NULL, err, sizeof err);
    assert_non_null (store);
    assert_int_equal (store_identity (store, &opened), 0);
    assert_string_equal (opened.store_id, made.store_id);
    store_destroy (&store);

    /* An existing empty folder will do too, and every store gets its own id. */
    char *empty = test_tmpdir ("test_store_init_empty");
    if (store_init (empty, &other, err, sizeof err))
        fail_msg ("store_init in an empty folder: %s", err);
    assert_string_not_equal (other.store_id, made.store_id);
    test_rmtree (empty);
    free (empty);
    test_rmtree (parent);
    free (parent);
    free (dir);
}

static void
test_init_refuses_a_folder_that_is_not_empty (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_store_init_full");
    char *notes = path_in (dir, "notes.txt");
    write_file (notes, "keep me", 7);
    char err[STORE_ERR_LEN] = "";
    assert_int_equal (store_init (dir, NULL, err, sizeof err), STORE_ERR_EXISTS);
    assert_non_null (strstr (err, "is not empty"));
    assert_non_null (strstr (err, "notes.txt"));
    char names[256];
    list_folder (dir, names, sizeof names);
    assert_string_equal (names, "notes.txt");
    assert_int_equal (store_exit_status (STORE_ERR_EXISTS), 73);

    /* A path that is a file, and one whose parent is missing: refused, nothing made. */
    assert_int_equal (store_init (notes, NULL, err, sizeof err), STORE_ERR_EXISTS);
    char *orphan = path_in (dir, "missing/store");
    assert_int_equal (store_init (orphan, NULL, err, sizeof err), STORE_ERR);
    assert_non_null (strstr (err, "create its parent folder first"));
    list_folder (dir, names, sizeof names);
    assert_string_equal (names, "notes.txt");
    free (orphan);
    free (notes);
    test_rmtree (dir);
    free (dir);
}

static void
test_init_refuses_an_existing_store (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_store_init_twice");
    store_t *store = test_store_new (dir, NULL);
    Totalplace__Batch *batch = test_batch_new ("agent-1", 1);
    test_batch_add (batch,
                    test_record ("GB-X", "R1", 1, "E01000001", "Housing", "2013-04", 100, true));
    store_result_t results[1] = {{0}};
    store_result_t *rows = results;
    char err[STORE_ERR_LEN] = "";
    assert_int_equal (store_apply (store, &batch, 1, &rows, NULL, err, sizeof err), 0);
    test_batch_free (&batch);
    store_identity_t before;
    store_identity (store, &before);
    store_destroy (&store);
    char *data = path_in (dir, "data.mdb");
    size_t size_before, size_after;
    char *bytes_before = read_file (data, &size_before);

    assert_int_equal (store_init (dir, NULL, err, sizeof err), STORE_ERR_EXISTS);
    assert_non_null (strstr (err, "already holds a store"));
    char *bytes_after = read_file (data, &size_after);
    assert_int_equal (size_after, size_before);
    assert_memory_equal (bytes_after, bytes_before, size_before);
    store_options_t options = {.path = dir};
    store = store_new (&options, NULL, err, sizeof err);
    assert_non_null (store);
    store_identity_t after;
    store_identity (store, &after);
    assert_string_equal (after.store_id, before.store_id);
    store_counters_t counters;
    assert_int_equal (store_counters (store, &counters, err, sizeof err), 0);
    assert_int_equal (counters.records_stored, 1);
    store_destroy (&store);
    free (bytes_before);
    free (bytes_after);
    free (data);
    test_rmtree (dir);
    free (dir);
}

static void
test_no_store_is_refused_and_nothing_is_created (void **state)
{
    (void)state;
    char *parent = test_tmpdir ("test_store_none");
    char *missing = path_in (parent, "missing");
    char err[STORE_ERR_LEN] = "", names[256];

    assert_int_equal (refusal (missing, err, sizeof err), STORE_ERR_NOSTORE);
    assert_non_null (strstr (err, "the folder does not exist"));
    char advice[512];
    snprintf (advice, sizeof advice, "create one with `totalplace-collector init --state-dir %s`",
              missing);
    assert_non_null (strstr (err, advice));
    list_folder (parent, names, sizeof names);
    assert_string_equal (names, ""); /* the folder was not created */

    char *empty = path_in (parent, "empty");
    assert_int_equal (mkdir (empty, 0700), 0);
    assert_int_equal (refusal (empty, err, sizeof err), STORE_ERR_NOSTORE);
    assert_non_null (strstr (err, "it holds no data.mdb"));
    list_folder (empty, names, sizeof names);
    assert_string_equal (names, ""); /* no data.mdb, no lock.mdb */

    char *file = path_in (parent, "file");
    write_file (file, "x", 1);
    assert_int_equal (refusal (file, err, sizeof err), STORE_ERR_NOSTORE);
    assert_non_null (strstr (err, "it is not a folder"));
    assert_int_equal (store_exit_status (STORE_ERR_NOSTORE), 78);
    free (file);
    free (empty);
    free (missing);
    test_rmtree (parent);
    free (parent);
}

static void
test_damaged_data_mdb_is_refused (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_store_damaged");
    char *data = path_in (dir, "data.mdb");
    char err[STORE_ERR_LEN] = "", names[256];

    /* Zero bytes: an interrupted copy or restore. */
    write_file (data, "", 0);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "empty (0 bytes)"));
    assert_non_null (strstr (err, "Restore it from a backup"));
    list_folder (dir, names, sizeof names);
    assert_string_equal (names, "data.mdb"); /* LMDB never ran: no lock.mdb */
    struct stat st;
    assert_int_equal (stat (data, &st), 0);
    assert_int_equal (st.st_size, 0);
    assert_int_equal (store_exit_status (STORE_ERR_DAMAGED), 65);
    test_rmtree (dir);
    free (dir);
    free (data);

    /* A store with records, cut in half. */
    dir = test_tmpdir ("test_store_truncated");
    data = path_in (dir, "data.mdb");
    store_t *store = test_store_new (dir, NULL);
    Totalplace__Batch *batch = test_batch_new ("agent-1", 1);
    for (int i = 0; i < 2000; i++) {
        char id[16];
        snprintf (id, sizeof id, "R%05d", i);
        test_batch_add (batch,
                        test_record ("GB-X", id, 1, "E01000001", "Housing", "2013-04", i, false));
    }
    store_result_t *results = calloc (batch->n_records, sizeof *results);
    assert_int_equal (store_apply (store, &batch, 1, &results, NULL, err, sizeof err), 0);
    free (results);
    test_batch_free (&batch);
    store_destroy (&store);
    assert_int_equal (stat (data, &st), 0);
    assert_int_equal (truncate (data, st.st_size / 2), 0);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "is truncated"));
    struct stat after;
    assert_int_equal (stat (data, &after), 0);
    assert_int_equal (after.st_size, st.st_size / 2);

    /* Not an LMDB file at all. */
    write_file (data, "this is not a store, it is a shopping list\n", 43);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "is not an LMDB file"));
    test_rmtree (dir);
    free (dir);
    free (data);
}

static void
test_formats_this_binary_does_not_use_are_refused (void **state)
{
    (void)state;
    char err[STORE_ERR_LEN] = "";
    /* Format 0: a store made before identities (databases and counters, no identity). */
    char *dir = test_tmpdir ("test_store_format0");
    make_store (dir);
    set_meta (dir, "format", NULL);
    set_meta (dir, "store_id", NULL);
    set_meta (dir, "created", NULL);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_FORMAT);
    assert_non_null (strstr (err, "has no identity"));
    assert_non_null (strstr (err, "(format 0)"));
    assert_non_null (strstr (err, "drop the agents' source files into their inboxes again"));
    assert_int_equal (store_exit_status (STORE_ERR_FORMAT), 78);
    test_rmtree (dir);
    free (dir);

    /* A newer format. */
    dir = test_tmpdir ("test_store_format3");
    make_store (dir);
    set_meta (dir, "format", "3");
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_FORMAT);
    assert_non_null (strstr (err, "is of format 3, newer than this totalplace knows (format 2)"));
    assert_non_null (strstr (err, "upgrade totalplace"));

    /* An older format: the way out is the upgrade command (test_upgrade.sh runs it). */
    set_meta (dir, "format", "1");
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_FORMAT);
    assert_non_null (strstr (err, "is of format 1, and this totalplace uses format 2"));
    assert_non_null (strstr (err, "totalplace-collector upgrade --state-dir"));

    /* An unreadable identity is damage, not a format. */
    set_meta (dir, "format", "1x");
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "format version is unreadable"));
    set_meta (dir, "format", "2");
    set_meta (dir, "store_id", "not-hex");
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "identity (store id, creation time) is unreadable"));
    /* A format written without its checksum (or with a flipped bit) is damage, whatever it says:
     * the store is not read as the format a damaged byte would make of it. */
    put_meta (dir, "format", "00002", false);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "the value of key \"format\" in database \"meta\" fails its "
                                  "checksum"));
    assert_null (strstr (err, "upgrade"));
    put_meta (dir, "format", "2", false);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "the value of key \"format\" in database \"meta\" has 1 bytes, "
                                  "too few to hold its checksum"));
    test_rmtree (dir);
    free (dir);

    /* Another program's LMDB environment. */
    dir = test_tmpdir ("test_store_foreign");
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi main_dbi;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_open (env, dir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, NULL, 0, &main_dbi), 0);
    MDB_val key = {5, "hello"}, value = {5, "world"};
    assert_int_equal (mdb_put (txn, main_dbi, &key, &value, 0), 0);
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);
    assert_int_equal (refusal (dir, err, sizeof err), STORE_ERR_FORMAT);
    assert_non_null (strstr (err, "is not a totalplace store"));
    test_rmtree (dir);
    free (dir);
}

/* Applies one group of (agent, seq) batches of one record each; returns the marks. */
static void
apply_group (store_t *store, const char *const *agents, const uint64_t *seqs, size_t count,
             uint64_t *marks, int *next_record)
{
    Totalplace__Batch *batches[16];
    store_result_t results[16], *rows[16];
    assert_true (count <= 16);
    for (size_t b = 0; b < count; b++) {
        batches[b] = test_batch_new (agents[b], seqs[b]);
        char id[16];
        snprintf (id, sizeof id, "R%d", (*next_record)++);
        test_batch_add (batches[b],
                        test_record ("GB-X", id, 1, "E01000001", "Housing", "2013-04", 100, false));
        results[b] = (store_result_t){0};
        rows[b] = &results[b];
        marks[b] = 12345; /* overwritten */
    }
    char err[STORE_ERR_LEN];
    if (store_apply (store, batches, count, rows, marks, err, sizeof err))
        fail_msg ("store_apply: %s", err);
    for (size_t b = 0; b < count; b++)
        test_batch_free (&batches[b]);
}

static uint64_t
mark_of (store_t *store, const char *agent)
{
    uint64_t mark = 999;
    char err[STORE_ERR_LEN];
    if (store_agent_mark (store, agent, &mark, err, sizeof err))
        fail_msg ("store_agent_mark: %s", err);
    return mark;
}

static void
test_marks_before_each_batch (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_store_marks");
    store_t *store = test_store_new (dir, NULL);
    int next_record = 0;
    uint64_t marks[16];
    assert_int_equal (mark_of (store, "agent-a"), 0); /* never seen */

    /* Several batches of one agent in one group: each sees the one before it. */
    const char *first_agents[] = {"agent-a", "agent-a", "agent-b", "agent-a"};
    const uint64_t first_seqs[] = {1, 2, 5, 3};
    apply_group (store, first_agents, first_seqs, 4, marks, &next_record);
    assert_int_equal (marks[0], 0);
    assert_int_equal (marks[1], 1);
    assert_int_equal (marks[2], 0);
    assert_int_equal (marks[3], 2);
    assert_int_equal (mark_of (store, "agent-a"), 3);
    assert_int_equal (mark_of (store, "agent-b"), 5);

    /* Re-sends of old batches see a mark at or above their own seq; the mark never goes back. */
    const char *second_agents[] = {"agent-a", "agent-b", "agent-a", "agent-a"};
    const uint64_t second_seqs[] = {2, 4, 7, 6};
    apply_group (store, second_agents, second_seqs, 4, marks, &next_record);
    assert_int_equal (marks[0], 3);
    assert_true (marks[0] >= second_seqs[0]);
    assert_int_equal (marks[1], 5);
    assert_true (marks[1] >= second_seqs[1]);
    assert_int_equal (marks[2], 3);
    assert_int_equal (marks[3], 7);
    assert_int_equal (mark_of (store, "agent-a"), 7);
    assert_int_equal (mark_of (store, "agent-b"), 5);
    assert_int_equal (mark_of (store, "agent-c"), 0);

    /* The same from a read-only opening, and a NULL array is allowed. */
    store_options_t read_only = {.path = dir, .read_only = true};
    char err[STORE_ERR_LEN];
    store_t *reader = store_new (&read_only, NULL, err, sizeof err);
    assert_non_null (reader);
    assert_int_equal (mark_of (reader, "agent-a"), 7);
    uint64_t mark;
    assert_int_equal (store_agent_mark (reader, "", &mark, err, sizeof err), STORE_ERR);
    store_destroy (&reader);
    store_destroy (&store);
    test_rmtree (dir);
    free (dir);
}

/* A group retried after the map grew reports the marks of the attempt that committed. */
static void
test_marks_survive_a_retried_group (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_store_marks_grow");
    store_options_t options = {.map_size = 64 * 1024, .max_map_size = 64 << 20};
    store_t *store = test_store_new (dir, &options);
    Totalplace__Batch *batches[3];
    store_result_t *rows[3];
    const char *agents[] = {"agent-a", "agent-a", "agent-b"};
    for (int b = 0; b < 3; b++) {
        batches[b] = test_batch_new (agents[b], (uint64_t)b + 10);
        for (int i = 0; i < 1500; i++) {
            char id[16];
            snprintf (id, sizeof id, "G%d-%05d", b, i);
            test_batch_add (batches[b], test_record ("GB-X", id, 1, "E01000001", "Housing",
                                                     "2013-04", i, false));
        }
        rows[b] = calloc (batches[b]->n_records, sizeof *rows[b]);
    }
    uint64_t marks[3] = {99, 99, 99};
    char err[STORE_ERR_LEN];
    if (store_apply (store, batches, 3, rows, marks, err, sizeof err))
        fail_msg ("store_apply: %s", err);
    store_counters_t counters;
    assert_int_equal (store_counters (store, &counters, err, sizeof err), 0);
    assert_true (counters.map_size > 64 * 1024); /* it did grow, so the group ran again */
    assert_int_equal (marks[0], 0);
    assert_int_equal (marks[1], 10);
    assert_int_equal (marks[2], 0);
    for (int b = 0; b < 3; b++) {
        free (rows[b]);
        test_batch_free (&batches[b]);
    }
    store_destroy (&store);
    test_rmtree (dir);
    free (dir);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_init_makes_a_store_with_an_identity),
        cmocka_unit_test (test_init_refuses_a_folder_that_is_not_empty),
        cmocka_unit_test (test_init_refuses_an_existing_store),
        cmocka_unit_test (test_no_store_is_refused_and_nothing_is_created),
        cmocka_unit_test (test_damaged_data_mdb_is_refused),
        cmocka_unit_test (test_formats_this_binary_does_not_use_are_refused),
        cmocka_unit_test (test_marks_before_each_batch),
        cmocka_unit_test (test_marks_survive_a_retried_group),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
