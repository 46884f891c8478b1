/* retention: done/ pruned oldest first, collector-rejects.csv rotated. */
#include "retention.h"
#include "err_text.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static const char *const SIDE_SUFFIXES[] = {".rejects.csv", ".warnings.csv"};

/* One export in done/ with its side files. */
typedef struct {
    char *stem; /* the name without ".csv" */
    int64_t moved_at;
    uint64_t bytes;
} export_t;

static bool
has_suffix (const char *name, const char *suffix)
{
    size_t len = strlen (name), suffix_len = strlen (suffix);
    return len > suffix_len && strcasecmp (name + len - suffix_len, suffix) == 0;
}

static bool
is_side (const char *name)
{
    for (size_t i = 0; i < 2; i++)
        if (has_suffix (name, SIDE_SUFFIXES[i]))
            return true;
    return false;
}

static int
compare_moved (const void *a, const void *b)
{
    const export_t *x = a, *y = b;
    return (x->moved_at > y->moved_at) - (x->moved_at < y->moved_at);
}

static uint64_t
size_of (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Deletes an export and its side files; the bytes freed. -1 with err when the export itself
 * could not be deleted. */
static int
delete_export (const char *dir, const export_t *export, char *err, size_t err_len)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/%s.csv", dir, export->stem);
    if (unlink (path) != 0 && errno != ENOENT)
        return fail (err, err_len, "cannot delete %s: %s", path, strerror (errno));
    for (size_t i = 0; i < 2; i++) {
        snprintf (path, sizeof path, "%s/%s%s", dir, export->stem, SIDE_SUFFIXES[i]);
        unlink (path);
    }
    return 0;
}

int
retention_prune_done (const char *done_dir, const retention_done_t *policy,
                      retention_result_t *result, char *err, size_t err_len)
{
    *result = (retention_result_t){0, 0, 0};
    DIR *dir = opendir (done_dir);
    if (!dir)
        return errno == ENOENT
                   ? 0
                   : fail (err, err_len, "cannot read %s: %s", done_dir, strerror (errno));
    export_t *exports = NULL;
    size_t count = 0, capacity = 0;
    int rc = 0;
    struct dirent *entry;
    char path[4096];
    while ((entry = readdir (dir)) != NULL && rc == 0) {
        const char *name = entry->d_name;
        if (name[0] == '.' || !has_suffix (name, ".csv") || is_side (name))
            continue;
        snprintf (path, sizeof path, "%s/%s", done_dir, name);
        struct stat st;
        if (lstat (path, &st) != 0 || !S_ISREG (st.st_mode))
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            export_t *grown = realloc (exports, capacity * sizeof *grown);
            if (!grown) {
                rc = fail (err, err_len, "out of memory");
                break;
            }
            exports = grown;
        }
        export_t *export = &exports[count];
        export->stem = strndup (name, strlen (name) - 4);
        if (!export->stem) {
            rc = fail (err, err_len, "out of memory");
            break;
        }
        export->moved_at = (int64_t)st.st_ctim.tv_sec;
        export->bytes = (uint64_t)st.st_size;
        for (size_t i = 0; i < 2; i++) {
            snprintf (path, sizeof path, "%s/%s%s", done_dir, export->stem, SIDE_SUFFIXES[i]);
            export->bytes += size_of (path);
        }
        result->kept_bytes += export->bytes;
        count++;
    }
    closedir (dir);
    if (count)
        qsort (exports, count, sizeof *exports, compare_moved);
    int64_t too_old =
        policy->keep_days ? policy->now - (int64_t)(policy->keep_days * DAY) : INT64_MIN;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const export_t *export = &exports[i];
        /* Oldest first: once one may not go, none after it may either. */
        if (export->moved_at >= policy->taken_before)
            break;
        bool old = export->moved_at < too_old;
        bool over = policy->max_bytes && result->kept_bytes > policy->max_bytes;
        if (!old && !over)
            break;
        if (delete_export (done_dir, export, err, err_len)) {
            rc = -1;
            break;
        }
        result->files++;
        result->bytes += export->bytes;
        result->kept_bytes -= export->bytes;
    }
    for (size_t i = 0; i < count; i++)
        free (exports[i].stem);
    free (exports);
    return rc;
}

int
retention_rotate (const char *path, const retention_rotate_t *policy, int *rotated,
                  uint64_t *deleted, char *err, size_t err_len)
{
    if (rotated)
        *rotated = 0;
    if (deleted)
        *deleted = 0;
    uint64_t keep = policy->keep ? policy->keep : 1;
    char from[4096], to[4096];
    struct stat st;
    if (policy->max_bytes && stat (path, &st) == 0 && (uint64_t)st.st_size > policy->max_bytes) {
        snprintf (to, sizeof to, "%s.%llu", path, (unsigned long long)keep);
        if (unlink (to) == 0 && deleted)
            (*deleted)++;
        for (uint64_t n = keep; n > 1; n--) {
            snprintf (from, sizeof from, "%s.%llu", path, (unsigned long long)(n - 1));
            snprintf (to, sizeof to, "%s.%llu", path, (unsigned long long)n);
            if (rename (from, to) != 0 && errno != ENOENT)
                return fail (err, err_len, "cannot rotate %s to %s: %s", from, to,
                             strerror (errno));
        }
        snprintf (to, sizeof to, "%s.1", path);
        if (rename (path, to) != 0)
            return fail (err, err_len, "cannot rotate %s to %s: %s", path, to, strerror (errno));
        if (rotated)
            *rotated = 1;
    }
    /* Beyond keep (a smaller keep than before), or too old. */
    for (uint64_t n = 1; n <= keep + 64; n++) {
        snprintf (from, sizeof from, "%s.%llu", path, (unsigned long long)n);
        if (stat (from, &st) != 0)
            continue;
        bool old = policy->keep_days &&
                   (int64_t)st.st_mtim.tv_sec < policy->now - (int64_t)(policy->keep_days * DAY);
        if ((n > keep || old) && unlink (from) == 0 && deleted)
            (*deleted)++;
    }
    return 0;
}
