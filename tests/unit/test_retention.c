/* test_retention: done/ files deleted oldest first, by age and by total size, with their rejects
 * and warnings, never one moved there after the oldest batch still pending was taken; and
 * collector-rejects.csv rotated past its size, the rotations kept by count and age. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "retention.h"
#include "test_support.h"

static void
write_bytes (const char *dir, const char *name, size_t bytes)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    for (size_t i = 0; i < bytes; i++)
        fputc ('x', file);
    fclose (file);
}

static bool
exists (const char *dir, const char *name)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    return access (path, F_OK) == 0;
}

static int64_t
ctime_of (const char *dir, const char *name)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    return (int64_t)st.st_ctim.tv_sec;
}

static void
test_done (void **state)
{
    (void)state;
    char *root = test_tmpdir ("test_retention");
    char done[600], err[512];
    snprintf (done, sizeof done, "%s/done", root);
    assert_int_equal (mkdir (done, 0700), 0);
    write_bytes (done, "a.csv", 100);
    write_bytes (done, "a.rejects.csv", 50);
    write_bytes (done, "a.warnings.csv", 50);
    sleep (1);
    write_bytes (done, "b.csv", 100);
    sleep (1);
    write_bytes (done, "c.csv", 100);
    write_bytes (done, "notes.txt", 100); /* not an export: never touched */
    int64_t now = (int64_t)time (NULL);

    /* Over the size: the oldest export goes, with its side files. */
    retention_done_t policy = {.max_bytes = 250, .taken_before = now + 10, .now = now};
    retention_result_t result;
    assert_int_equal (retention_prune_done (done, &policy, &result, err, sizeof err), 0);
    assert_int_equal (result.files, 1);
    assert_int_equal (result.bytes, 200);
    assert_int_equal (result.kept_bytes, 200);
    assert_false (exists (done, "a.csv"));
    assert_false (exists (done, "a.rejects.csv"));
    assert_false (exists (done, "a.warnings.csv"));
    assert_true (exists (done, "b.csv"));

    /* Old, but b was moved there when its batches' successors were not acknowledged: kept. */
    policy = (retention_done_t){
        .keep_days = 1, .taken_before = ctime_of (done, "b.csv"), .now = now + 10 * 86400};
    assert_int_equal (retention_prune_done (done, &policy, &result, err, sizeof err), 0);
    assert_int_equal (result.files, 0);
    assert_true (exists (done, "b.csv"));

    /* Acknowledged and old: b goes, c (younger than the moment) stays. */
    policy.taken_before = ctime_of (done, "c.csv");
    assert_int_equal (retention_prune_done (done, &policy, &result, err, sizeof err), 0);
    assert_int_equal (result.files, 1);
    assert_false (exists (done, "b.csv"));
    assert_true (exists (done, "c.csv"));

    /* Young and within the size: kept whatever is acknowledged. */
    policy = (retention_done_t){
        .keep_days = 90, .max_bytes = 1000, .taken_before = now + 10, .now = now};
    assert_int_equal (retention_prune_done (done, &policy, &result, err, sizeof err), 0);
    assert_int_equal (result.files, 0);
    assert_true (exists (done, "c.csv"));
    assert_true (exists (done, "notes.txt"));

    /* A missing done/ is nothing to do. */
    snprintf (done, sizeof done, "%s/none", root);
    assert_int_equal (retention_prune_done (done, &policy, &result, err, sizeof err), 0);
    test_rmtree (root);
    free (root);
}

static void
test_rotate (void **state)
{
    (void)state;
    char *root = test_tmpdir ("test_retention");
    char path[600], err[512];
    snprintf (path, sizeof path, "%s/collector-rejects.csv", root);
    retention_rotate_t policy = {.max_bytes = 1000, .keep = 2, .now = (int64_t)time (NULL)};
    int rotated;
    uint64_t deleted;

    write_bytes (root, "collector-rejects.csv", 500);
    assert_int_equal (retention_rotate (path, &policy, &rotated, &deleted, err, sizeof err), 0);
    assert_int_equal (rotated, 0); /* under the size */
    for (int round = 0; round < 3; round++) {
        write_bytes (root, "collector-rejects.csv", 1500 + (size_t)round);
        assert_int_equal (retention_rotate (path, &policy, &rotated, &deleted, err, sizeof err), 0);
        assert_int_equal (rotated, 1);
        assert_false (exists (root, "collector-rejects.csv"));
        assert_true (exists (root, "collector-rejects.csv.1"));
        assert_int_equal (deleted, round == 2 ? 1 : 0);
    }
    assert_true (exists (root, "collector-rejects.csv.2"));
    assert_false (exists (root, "collector-rejects.csv.3"));
    char rotated_path[700];
    snprintf (rotated_path, sizeof rotated_path, "%s.1", path);
    struct stat st;
    assert_int_equal (stat (rotated_path, &st), 0);
    assert_int_equal (st.st_size, 1502); /* the newest */

    /* Too old: the rotation goes, however few there are. */
    snprintf (rotated_path, sizeof rotated_path, "%s.2", path);
    struct timespec old[2] = {{.tv_sec = policy.now - 40 * 86400},
                              {.tv_sec = policy.now - 40 * 86400}};
    assert_int_equal (utimensat (AT_FDCWD, rotated_path, old, 0), 0);
    policy.keep_days = 30;
    assert_int_equal (retention_rotate (path, &policy, &rotated, &deleted, err, sizeof err), 0);
    assert_int_equal (rotated, 0);
    assert_int_equal (deleted, 1);
    assert_false (exists (root, "collector-rejects.csv.2"));
    assert_true (exists (root, "collector-rejects.csv.1"));
    test_rmtree (root);
    free (root);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_done),
        cmocka_unit_test (test_rotate),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
