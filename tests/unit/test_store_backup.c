/* test_store_backup: a backup appears under its name only whole and verified, opens as the same
 * store, never replaces anything; a copy that does not verify leaves nothing behind; the rotation
 * keeps the newest N folders of its own pattern and touches nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "store.h"
#include "store_backup.h"
#include "test_support.h"

typedef struct {
    char *dir;    /* the store */
    char *parent; /* where backups go */
    store_t *store;
} fixture_t;

static void
apply_some (store_t *store, uint64_t seq, int records)
{
    Totalplace__Batch *batch = test_batch_new ("agent-a", seq);
    for (int i = 0; i < records; i++) {
        char id[16];
        snprintf (id, sizeof id, "S%" PRIu64 "-%d", seq, i);
        test_batch_add (batch, test_record ("GB-LAE-BNS", id, 1, i % 2 ? "E01000001" : "E01000002",
                                            "Housing", "2014-02", 100 + i, i % 3 == 0));
    }
    store_result_t *results = calloc ((size_t)records, sizeof *results);
    char err[STORE_ERR_LEN];
    if (store_apply (store, &batch, 1, &results, NULL, err, sizeof err))
        fail_msg ("store_apply: %s", err);
    free (results);
    test_batch_free (&batch);
}

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = test_tmpdir ("test_store_backup");
    f->parent = test_tmpdir ("test_store_backups");
    f->store = test_store_new (f->dir, NULL);
    apply_some (f->store, 1, 300);
    apply_some (f->store, 2, 200);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    test_store_remove (&f->store, &f->dir);
    test_rmtree (f->parent);
    free (f->parent);
    free (f);
    return 0;
}

static char *
path_in (const char *folder, const char *name)
{
    size_t len = strlen (folder) + strlen (name) + 2;
    char *path = malloc (len);
    snprintf (path, len, "%s/%s", folder, name);
    return path;
}

/* The names in folder, sorted, joined by spaces (hidden ones too). */
static void
list_names (const char *folder, char *out, size_t out_len)
{
    struct dirent **entries;
    int count = scandir (folder, &entries, NULL, alphasort);
    assert_true (count >= 0);
    out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (strcmp (entries[i]->d_name, ".") && strcmp (entries[i]->d_name, "..")) {
            strncat (out, entries[i]->d_name, out_len - strlen (out) - 1);
            strncat (out, " ", out_len - strlen (out) - 1);
        }
        free (entries[i]);
    }
    free (entries);
}

static void
test_backup_is_whole_verified_and_the_same_store (void **state)
{
    fixture_t *f = *state;
    char *dest = path_in (f->parent, "nightly");
    store_backup_result_t result;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_backup (f->store, dest, 10, NULL, NULL, &result, err, sizeof err), 0);
    assert_true (result.made);
    assert_string_equal (result.path, dest);
    assert_int_equal (result.verified.findings, 0);
    assert_int_equal (result.verified.records, 500);
    assert_true (result.bytes > 0);
    char names[512];
    list_names (dest, names, sizeof names);
    assert_string_equal (names, "data.mdb "); /* no lock file, nothing else */
    list_names (f->parent, names, sizeof names);
    assert_string_equal (names, "nightly "); /* no partial folder left */

    store_identity_t original, copied;
    store_identity (f->store, &original);
    store_options_t options = {.path = dest};
    store_t *copy = store_new (&options, NULL, err, sizeof err);
    assert_non_null (copy);
    store_identity (copy, &copied);
    assert_string_equal (copied.store_id, original.store_id);
    assert_string_equal (result.identity.store_id, original.store_id);
    store_counters_t counters;
    assert_int_equal (store_counters (copy, &counters, err, sizeof err), 0);
    assert_int_equal (counters.records_stored, 500);
    assert_int_equal (counters.batches, 2);
    store_destroy (&copy);

    /* Never over anything: the same name again is refused and the backup stays as it was. */
    struct stat before, after;
    char *data = path_in (dest, "data.mdb");
    assert_int_equal (stat (data, &before), 0);
    apply_some (f->store, 3, 10);
    assert_int_equal (store_backup (f->store, dest, 10, NULL, NULL, &result, err, sizeof err),
                      STORE_ERR_EXISTS);
    assert_non_null (strstr (err, "already exists"));
    assert_false (result.made);
    assert_int_equal (stat (data, &after), 0);
    assert_int_equal (after.st_size, before.st_size);
    assert_int_equal (after.st_mtime, before.st_mtime);
    assert_int_equal (store_exit_status (STORE_ERR_EXISTS), 73);
    /* Nor into a folder that does not exist. */
    char *nowhere = path_in (f->parent, "no/such");
    assert_int_equal (store_backup (f->store, nowhere, 10, NULL, NULL, &result, err, sizeof err),
                      STORE_ERR);
    assert_non_null (strstr (err, "does not exist"));
    free (nowhere);
    free (data);
    free (dest);
}

/* A store with a damaged value: the copy does not verify, so nothing appears and nothing is left.
 */
static void
test_copy_that_does_not_verify_leaves_nothing (void **state)
{
    fixture_t *f = *state;
    store_destroy (&f->store);
    unsigned char value[512], key[64];
    size_t key_len = test_store_key (f->dir, "records", "GB-LAE-BNS|S1-7", key, sizeof key);
    size_t size = test_raw_get (f->dir, "records", key, key_len, value, sizeof value);
    assert_true (size > 0);
    value[size / 2] ^= 0x01;
    test_raw_put (f->dir, "records", key, key_len, value, size, false);
    store_options_t options = {.path = f->dir, .read_only = true};
    char err[STORE_ERR_LEN];
    f->store = store_new (&options, NULL, err, sizeof err);
    assert_non_null (f->store);

    char *dest = path_in (f->parent, "broken");
    store_backup_result_t result;
    assert_int_equal (store_backup (f->store, dest, 10, NULL, NULL, &result, err, sizeof err),
                      STORE_ERR_DAMAGED);
    assert_non_null (strstr (err, "the copy does not verify"));
    assert_false (result.made);
    assert_true (result.verified.damaged >= 1);
    char names[512];
    list_names (f->parent, names, sizeof names);
    assert_string_equal (names, "");
    free (dest);
}

static void
make_fake_backup (const char *parent, const char *name, bool extra_file)
{
    char *folder = path_in (parent, name);
    assert_int_equal (mkdir (folder, 0700), 0);
    char *data = path_in (folder, extra_file ? "notes.txt" : "data.mdb");
    FILE *file = fopen (data, "w");
    assert_non_null (file);
    fputs ("x", file);
    fclose (file);
    free (data);
    free (folder);
}

static void
age (const char *parent, const char *name, long seconds)
{
    char *folder = path_in (parent, name);
    struct timeval times[2];
    gettimeofday (&times[0], NULL);
    times[0].tv_sec -= seconds;
    times[1] = times[0];
    assert_int_equal (utimes (folder, times), 0);
    free (folder);
}

static void
test_rotation_keeps_the_newest_of_its_own (void **state)
{
    fixture_t *f = *state;
    make_fake_backup (f->parent, "totalplace-20200101T000000Z", false);
    make_fake_backup (f->parent, "totalplace-20200102T000000Z", false);
    make_fake_backup (f->parent, "totalplace-20200103T000000Z", false);
    /* Not the rotation's: another name, a longer one, and an old partial of another name. */
    make_fake_backup (f->parent, "totalplace-notes", false);
    make_fake_backup (f->parent, "totalplace-20200101T000000Z.old", false);
    make_fake_backup (f->parent, "mine", false);
    /* Partial folders of a backup that died: an old one goes, a recent one (running?) stays. */
    make_fake_backup (f->parent, ".totalplace-20200101T000000Z.partial-abcdef", false);
    age (f->parent, ".totalplace-20200101T000000Z.partial-abcdef", 3 * 86400);
    make_fake_backup (f->parent, ".totalplace-20200104T000000Z.partial-ghijkl", false);

    store_backup_result_t result;
    char err[STORE_ERR_LEN];
    assert_int_equal (
        store_backup_rotate (f->store, f->parent, 2, 10, NULL, NULL, &result, err, sizeof err), 0);
    assert_true (result.made);
    const char *name = strrchr (result.path, '/') + 1;
    assert_int_equal (strlen (name), strlen ("totalplace-20200101T000000Z"));
    assert_int_equal (strncmp (name, "totalplace-20", 13), 0);
    assert_int_equal (result.removed, 3); /* two old backups, one stale partial */
    char names[1024], expected[1024];
    list_names (f->parent, names, sizeof names);
    snprintf (expected, sizeof expected,
              ".totalplace-20200104T000000Z.partial-ghijkl mine totalplace-20200101T000000Z.old "
              "totalplace-20200103T000000Z %s totalplace-notes ",
              name);
    assert_string_equal (names, expected);

    /* A backup-named folder holding something a backup does not is left, and said. */
    test_rmtree (result.path);
    make_fake_backup (f->parent, "totalplace-20190101T000000Z", true);
    assert_int_equal (
        store_backup_rotate (f->store, f->parent, 1, 10, NULL, NULL, &result, err, sizeof err),
        STORE_ERR);
    assert_true (result.made); /* the backup itself is there */
    assert_non_null (strstr (err, "totalplace-20190101T000000Z was not removed"));
    assert_non_null (strstr (err, "remove it by hand"));
    char *kept = path_in (f->parent, "totalplace-20190101T000000Z/notes.txt");
    assert_int_equal (access (kept, F_OK), 0);
    free (kept);
    assert_int_equal (
        store_backup_rotate (f->store, f->parent, 0, 10, NULL, NULL, &result, err, sizeof err),
        STORE_ERR);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_backup_is_whole_verified_and_the_same_store, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_copy_that_does_not_verify_leaves_nothing, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_rotation_keeps_the_newest_of_its_own, setup,
                                         teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
