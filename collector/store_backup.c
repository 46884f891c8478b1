/* store_backup: copy into a hidden folder, sync, verify, then rename into place; rotation by name.
 */
#define _GNU_SOURCE /* renameat2 */
#include "err_text.h"
#include "store_backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The UTC time in a backup's name: YYYYMMDDTHHMMSSZ. */
#define STAMP_LEN 16
/* A hidden partial folder older than this was left by a backup that died. */
#define STALE_PARTIAL_SECONDS (24 * 3600)

#define fail(err, err_len, code, ...) err_text (err, err_len, code, __VA_ARGS__)

static double
now_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
sync_path (const char *path, int flags)
{
    int fd = open (path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

/* Deletes what a backup folder may hold (data.mdb, lock.mdb), then the folder. Returns 0, or -1
 * with errno (ENOTEMPTY when it holds anything else). */
static int
remove_backup_folder (const char *folder)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf (path, sizeof path, "%s/%s", folder, files[i]) >= sizeof path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (unlink (path) != 0 && errno != ENOENT)
            return -1;
    }
    return rmdir (folder);
}

/* Splits dest into its parent folder and its last name (trailing slashes ignored). */
static int
split_dest (const char *dest, char *parent, size_t parent_len, char *name, size_t name_len)
{
    size_t len = strlen (dest);
    while (len > 1 && dest[len - 1] == '/')
        len--;
    const char *slash = NULL;
    for (size_t i = 0; i < len; i++)
        if (dest[i] == '/')
            slash = dest + i;
    size_t parent_bytes = slash ? (size_t)(slash - dest) : 1;
    size_t name_bytes = slash ? len - parent_bytes - 1 : len;
    if (name_bytes == 0 || parent_bytes >= parent_len || name_bytes >= name_len)
        return -1;
    if (slash)
        memcpy (parent, slash == dest ? "/" : dest, slash == dest ? 1 : parent_bytes);
    else
        parent[0] = '.';
    parent[slash == dest ? 1 : parent_bytes] = '\0';
    memcpy (name, dest + len - name_bytes, name_bytes);
    name[name_bytes] = '\0';
    return strcmp (name, ".") == 0 || strcmp (name, "..") == 0 ? -1 : 0;
}

/* Moves the finished copy to dest, never over anything. */
static int
move_into_place (const char *partial, const char *dest)
{
    if (renameat2 (AT_FDCWD, partial, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* A filesystem without RENAME_NOREPLACE: rename would replace an empty folder, so look. */
    struct stat st;
    if (lstat (dest, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename (partial, dest);
}

/* Opens the copy in partial, checks it is the store's, and verifies it. */
static int
check_copy (store_t *store, const char *partial, size_t max_findings, store_verify_fn *fn,
            void *arg, store_backup_result_t *result, char *err, size_t err_len)
{
    store_options_t options = {.path = partial, .read_only = true};
    int code = STORE_ERR;
    char why[STORE_ERR_LEN];
    store_t *copy = store_new (&options, &code, why, sizeof why);
    if (!copy)
        return fail (err, err_len, code == STORE_ERR ? STORE_ERR : STORE_ERR_DAMAGED,
                     "the copy cannot be opened as a store: %s", why);
    store_identity_t original;
    store_identity (store, &original);
    store_identity (copy, &result->identity);
    int rc = 0;
    if (strcmp (original.store_id, result->identity.store_id) != 0)
        rc = fail (err, err_len, STORE_ERR_DAMAGED,
                   "the copy has store id %s, the store %s: it is not a copy of this store",
                   result->identity.store_id, original.store_id);
    else if (store_verify (copy, max_findings, fn, arg, &result->verified, err, err_len))
        rc = STORE_ERR;
    else if (result->verified.findings)
        rc = fail (err, err_len, STORE_ERR_DAMAGED,
                   "the copy does not verify (%llu findings): the store it was copied from is "
                   "likely damaged; run `totalplace verify` on it, and keep the last good backup",
                   (unsigned long long)result->verified.findings);
    store_destroy (&copy);
    return rc;
}

int
store_backup (store_t *store, const char *dest, size_t max_findings, store_verify_fn *fn, void *arg,
              store_backup_result_t *result, char *err, size_t err_len)
{
    *result = (store_backup_result_t){0};
    char parent[PATH_MAX], name[NAME_MAX + 1], partial[PATH_MAX], path[PATH_MAX];
    if (!dest || split_dest (dest, parent, sizeof parent, name, sizeof name))
        return fail (err, err_len, STORE_ERR, "backup: \"%.64s\" is not a folder name to make",
                     dest ? dest : "");
    struct stat st;
    if (lstat (dest, &st) == 0)
        return fail (err, err_len, STORE_ERR_EXISTS,
                     "%s already exists: a backup is made only under a new name, never over "
                     "anything",
                     dest);
    if (stat (parent, &st) != 0 || !S_ISDIR (st.st_mode))
        return fail (err, err_len, STORE_ERR, "cannot back up into %s: its folder %s %s", dest,
                     parent, errno == ENOENT ? "does not exist" : "is not a folder");
    if ((size_t)snprintf (partial, sizeof partial, "%s/.%s.partial-XXXXXX", parent, name) >=
            sizeof partial ||
        (size_t)snprintf (path, sizeof path, "%s/data.mdb", partial) >= sizeof path ||
        (size_t)snprintf (result->path, sizeof result->path, "%s", dest) >= sizeof result->path)
        return fail (err, err_len, STORE_ERR, "backup path %.64s... is too long", dest);
    if (!mkdtemp (partial))
        return fail (err, err_len, STORE_ERR, "cannot make a folder in %s: %s", parent,
                     strerror (errno));
    memcpy (path, partial, strlen (partial)); /* the X's of path become the folder's name */

    double started = now_seconds ();
    int rc = store_copy (store, partial, err, err_len);
    if (rc == 0 && sync_path (path, O_RDONLY) != 0)
        rc = fail (err, err_len, STORE_ERR, "cannot sync %s: %s", path, strerror (errno));
    result->copy_seconds = now_seconds () - started;
    if (rc == 0) {
        if (stat (path, &st) == 0)
            result->bytes = (uint64_t)st.st_size;
        started = now_seconds ();
        rc = check_copy (store, partial, max_findings, fn, arg, result, err, err_len);
        result->verify_seconds = now_seconds () - started;
    }
    if (rc == 0 && move_into_place (partial, dest) != 0)
        rc = fail (err, err_len,
                   errno == EEXIST || errno == ENOTEMPTY ? STORE_ERR_EXISTS : STORE_ERR,
                   "cannot move the verified copy to %s: %s", dest, strerror (errno));
    if (rc) {
        remove_backup_folder (partial);
        return rc;
    }
    result->made = true;
    /* Opening the copy left LMDB's lock file; a backup holds data.mdb only. */
    if ((size_t)snprintf (path, sizeof path, "%s/lock.mdb", dest) < sizeof path)
        unlink (path);
    if (sync_path (parent, O_RDONLY | O_DIRECTORY) != 0)
        return fail (err, err_len, STORE_ERR,
                     "the backup is in %s, but its folder %s cannot be "
                     "synced: %s",
                     dest, parent, strerror (errno));
    return 0;
}

/* ---------------------------------------------------------------- rotation */

static bool
is_stamp (const char *text)
{
    for (size_t i = 0; i < STAMP_LEN; i++) {
        char c = text[i];
        bool digit = c >= '0' && c <= '9';
        if (i == 8 ? c != 'T' : i == 15 ? c != 'Z' : !digit)
            return false;
    }
    return true;
}

/* A folder name the rotation made: PREFIX and a stamp, nothing else. */
static bool
is_backup_name (const char *name)
{
    size_t prefix = strlen (STORE_BACKUP_PREFIX);
    return strncmp (name, STORE_BACKUP_PREFIX, prefix) == 0 &&
           strlen (name) == prefix + STAMP_LEN && is_stamp (name + prefix);
}

/* A hidden partial folder of such a name: ".NAME.partial-XXXXXX". */
static bool
is_partial_name (const char *name)
{
    size_t prefix = strlen (STORE_BACKUP_PREFIX);
    return name[0] == '.' && strncmp (name + 1, STORE_BACKUP_PREFIX, prefix) == 0 &&
           strlen (name) == 1 + prefix + STAMP_LEN + strlen (".partial-XXXXXX") &&
           is_stamp (name + 1 + prefix) &&
           strncmp (name + 1 + prefix + STAMP_LEN, ".partial-", 9) == 0;
}

static int
compare_names_newest_first (const void *a, const void *b)
{
    return strcmp (*(char *const *)b, *(char *const *)a);
}

/* Deletes all but the newest keep backups of parent and stale partial folders. */
static int
prune (const char *parent, unsigned keep, size_t *removed, char *err, size_t err_len)
{
    DIR *dir = opendir (parent);
    if (!dir)
        return fail (err, err_len, STORE_ERR, "cannot list %s: %s", parent, strerror (errno));
    char **names = NULL;
    size_t count = 0, capacity = 0;
    int rc = 0;
    time_t now = time (NULL);
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (is_partial_name (entry->d_name) &&
            (size_t)snprintf (path, sizeof path, "%s/%s", parent, entry->d_name) < sizeof path &&
            lstat (path, &st) == 0 && S_ISDIR (st.st_mode) &&
            now - st.st_mtime > STALE_PARTIAL_SECONDS && remove_backup_folder (path) == 0)
            (*removed)++;
        if (!is_backup_name (entry->d_name))
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc (names, capacity * sizeof *names);
            if (!grown) {
                rc = fail (err, err_len, STORE_ERR, "out of memory");
                break;
            }
            names = grown;
        }
        if (!(names[count] = strdup (entry->d_name))) {
            rc = fail (err, err_len, STORE_ERR, "out of memory");
            break;
        }
        count++;
    }
    closedir (dir);
    if (rc == 0 && count > keep) {
        /* The stamps are fixed-width UTC: the order of the names is the order of the times. */
        qsort (names, count, sizeof *names, compare_names_newest_first);
        for (size_t i = keep; i < count; i++) {
            char path[PATH_MAX];
            if ((size_t)snprintf (path, sizeof path, "%s/%s", parent, names[i]) >= sizeof path)
                continue;
            if (remove_backup_folder (path) == 0)
                (*removed)++;
            else if (rc == 0)
                rc = fail (err, err_len, STORE_ERR, "the old backup %s was not removed: %s%s", path,
                           strerror (errno),
                           errno == ENOTEMPTY ? " (it holds files a backup does not: look, then "
                                                "remove it by hand)"
                                              : "");
        }
    }
    for (size_t i = 0; i < count; i++)
        free (names[i]);
    free (names);
    return rc;
}

int
store_backup_rotate (store_t *store, const char *parent, unsigned keep, size_t max_findings,
                     store_verify_fn *fn, void *arg, store_backup_result_t *result, char *err,
                     size_t err_len)
{
    *result = (store_backup_result_t){0};
    if (keep < 1)
        return fail (err, err_len, STORE_ERR, "--keep must be at least 1");
    char stamp[STAMP_LEN + 1], dest[PATH_MAX];
    time_t now = time (NULL);
    struct tm utc;
    if (!gmtime_r (&now, &utc) || strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc) == 0)
        return fail (err, err_len, STORE_ERR, "cannot read the time");
    if ((size_t)snprintf (dest, sizeof dest, "%s/%s%s", parent, STORE_BACKUP_PREFIX, stamp) >=
        sizeof dest)
        return fail (err, err_len, STORE_ERR, "backup path %.64s... is too long", parent);
    int rc = store_backup (store, dest, max_findings, fn, arg, result, err, err_len);
    if (rc)
        return rc;
    return prune (parent, keep, &result->removed, err, err_len);
}
