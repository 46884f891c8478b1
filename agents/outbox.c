/* outbox: encoded batches held durably in LMDB from before they are sent until they are acked,
 * then retained for a while in case the collector's store is restored from a backup.
 *
 * Databases (all integers big-endian, so LMDB's memcmp order is numeric order):
 *   batches   seq (8)                      -> payload                pending batches
 *   retained  acked_at (8) seq (8)         -> payload                acknowledged, oldest first
 *   sources   first seq (8)                -> last seq (8), put_at (8), label [NUL records (8)
 *                                             rejected (8)]              files put
 *   lost      first seq (8)                -> last seq (8), raised_at (8)       the alarm
 *   files     name                         -> FILE_VALUE_LEN bytes (file_put), target name
 *                                             files taken or held, not yet out of the inbox
 *   meta      "format" -> 3; "next_seq" -> seq; "acked_max" -> seq; "store_id" -> text;
 *             "last_ack_at" -> unix seconds; "staging" -> first staged seq (while a stage has
 *             chunks on disk: batches from it on are not pending, and are deleted at open) */
#include "outbox.h"
#include "err_text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Keys are the seq as 8 big-endian bytes, so LMDB's default memcmp order is seq order. Not
 * MDB_INTEGERKEY: that wants a native unsigned int or size_t, which would tie the file to the
 * host's byte order and word size, and mdb_dump would show keys backwards. Because a seq is never
 * reused and always above every stored one, each put can use MDB_APPEND, which also catches a key
 * that is not the largest (MDB_KEYEXIST). */
#define KEY_LEN 8
/* Retained batches are keyed by ack time first: pruning oldest-acknowledged first keeps exactly
 * the batches acknowledged after some moment, which is what a restore from a backup taken at that
 * moment needs (a re-sent batch re-acknowledged later is kept as long as a later backup lacks it).
 */
#define RETAINED_KEY_LEN 16
#define RANGE_VALUE_LEN  16 /* last seq, then a time */

#define META_FORMAT    "format"
#define META_NEXT_SEQ  "next_seq"
#define META_ACKED_MAX "acked_max"
#define META_STORE_ID  "store_id"
#define META_LAST_ACK  "last_ack_at"
#define META_STAGING   "staging"
/* Format 1 had batches and meta only, format 2 no files database; both are upgraded in place at
 * the first read-write open. */
#define FORMAT     3
#define FORMAT_2   2
#define FORMAT_OLD 1
#define DB_COUNT   6
/* A files value: flags, size, mtime, ctime, dev, ino (8 each), the hash, then taken_at, first
 * seq, last seq, records, rejected (8 each); the target name follows. */
#define FILE_VALUE_LEN (6 * 8 + FILE_IDENTITY_HASH_BYTES + 5 * 8)
#define FILE_HELD      1u
/* Sources put with their counts: label, NUL, records, rejected. */
#define SOURCE_COUNTS_LEN 17

#define MIB           (UINT64_C (1) << 20)
#define MIN_MAP_SIZE  MIB
#define MAP_HEADROOM  (64 * MIB)
#define MAX_MAX_BYTES (UINT64_C (1) << 40)
/* The map may grow to this many times the size derived from max_bytes. Live data never exceeds
 * max_bytes plus B-tree pages, so growth only answers free-space fragmentation (payloads over a
 * page need runs of free pages); a bound stops a bug from eating the disk. */
#define MAP_CEILING_FACTOR 4
/* An EIO from a commit with less than this free is a full disk (a short write). */
#define DISK_FULL_BELOW (4 * MIB)

/* What a write step asks of run_write besides success or an error. */
#define STEP_MAP_FULL 1 /* the map filled: abort, grow the map and run the step again */
#define STEP_NOTHING  2 /* nothing to change: abort instead of committing, report success */

struct _outbox_t {
    char *dir;
    int lock_fd;
    bool readonly;
    MDB_env *env;
    MDB_dbi batches, retained, sources, lost, meta, files;
    bool has_extras; /* retained, sources and lost exist (read-only opens of format 1: not) */
    bool has_files;  /* files exists (read-only opens of formats 1 and 2: not) */
    size_t max_batches;
    uint64_t max_bytes;
    size_t map_size;
    size_t map_ceiling;
    /* Kept equal to the store: recounted at open, updated after each commit. Only this process
     * writes them (outbox.lock), so memory cannot drift from disk. (The lost database may be
     * cleared by another process: it is never cached.) */
    size_t count;
    uint64_t bytes;
    uint64_t next_seq;
    size_t retained_count;
    uint64_t retained_bytes;
    int64_t oldest_acked_at;
    uint64_t pruned_for_room;
    size_t sources_count;
    uint64_t acked_max;
    char store_id[OUTBOX_STORE_ID_MAX + 1];
    int64_t last_ack_at;
    bool in_foreach;
    /* Seqs from here on are staged, not pending: on disk but invisible. UINT64_MAX: none. */
    uint64_t stage_floor;
    bool stage_left; /* staged batches an abort could not delete: delete before the next stage */
    struct {
        bool open;
        uint64_t first, n, bytes, records;
        outbox_item_t *items; /* the chunk not yet written (payloads owned) */
        size_t item_count, item_capacity;
        uint64_t chunk_bytes;
    } stage;
    outbox_delivered_fn *on_delivered;
    void *delivered_arg;
};

typedef int (write_step_fn) (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len);

/* A failure: the message into the caller's err, the code returned (proto/err_text.h). */
#define fail(err, err_len, code, ...) err_text (err, err_len, code, __VA_ARGS__)

/* Turns a failed mdb_* call inside a write step into the step's answer. */
static int
step_fail (outbox_t *self, int rc, const char *what, char *err, size_t err_len)
{
    if (rc == MDB_MAP_FULL)
        return STEP_MAP_FULL;
    return fail (err, err_len, OUTBOX_ERR, "outbox %s: %s failed: %s", self->dir, what,
                 mdb_strerror (rc));
}

static void
be64_put (uint8_t *out, uint64_t value)
{
    for (int i = KEY_LEN - 1; i >= 0; i--) {
        out[i] = (uint8_t)(value & 0xFF);
        value >>= 8;
    }
}

static uint64_t
be64_get (const void *data)
{
    const uint8_t *in = data;
    uint64_t value = 0;
    for (int i = 0; i < KEY_LEN; i++)
        value = (value << 8) | in[i];
    return value;
}

static int
fsync_dir (const char *path, char *err, size_t err_len)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail (err, err_len, OUTBOX_ERR, "cannot open folder %s to sync it: %s", path,
                     strerror (errno));
    /* Some file systems cannot sync a directory; they have nothing to lose by it either. */
    if (fsync (fd) != 0 && errno != EINVAL && errno != EROFS) {
        int saved = errno;
        close (fd);
        return fail (err, err_len, OUTBOX_ERR, "cannot sync folder %s: %s", path, strerror (saved));
    }
    close (fd);
    return 0;
}

/* mkdir -p with mode 0700. Each folder created is synced into its parent, so a power cut cannot
 * leave a committed outbox whose folder entry was never written. */
static int
make_dirs (const char *dir, char *err, size_t err_len)
{
    size_t len = strlen (dir);
    char *path = strdup (dir);
    if (!path)
        return fail (err, err_len, OUTBOX_ERR, "out of memory");
    int rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        if (path[i - 1] == '/')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir (path, 0700) == 0) {
            char *slash = strrchr (path, '/');
            if (!slash)
                rc = fsync_dir (".", err, err_len);
            else if (slash == path)
                rc = fsync_dir ("/", err, err_len);
            else {
                *slash = '\0';
                rc = fsync_dir (path, err, err_len);
                *slash = '/';
            }
        }
        else if (errno != EEXIST)
            rc = fail (err, err_len, OUTBOX_ERR, "cannot create outbox folder %s: %s", path,
                       strerror (errno));
        path[i] = saved;
    }
    free (path);
    if (rc)
        return rc;
    struct stat st;
    if (stat (dir, &st) != 0)
        return fail (err, err_len, OUTBOX_ERR, "cannot use outbox folder %s: %s", dir,
                     strerror (errno));
    if (!S_ISDIR (st.st_mode))
        return fail (err, err_len, OUTBOX_ERR, "outbox path %s exists and is not a folder", dir);
    return 0;
}

/* Two agents sharing one outbox would hand out the same seqs; an flock on outbox.lock keeps a
 * second process out and is released by the kernel however this one dies. */
static int
take_lock (outbox_t *self, char *err, size_t err_len)
{
    char path[4096];
    if ((size_t)snprintf (path, sizeof path, "%s/outbox.lock", self->dir) >= sizeof path)
        return fail (err, err_len, OUTBOX_ERR, "outbox folder name is too long: %s", self->dir);
    self->lock_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd < 0)
        return fail (err, err_len, OUTBOX_ERR, "cannot open %s: %s", path, strerror (errno));
    if (flock (self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK)
            return fail (err, err_len, OUTBOX_ERR, "cannot lock %s: %s", path, strerror (errno));
        char holder[32] = "";
        ssize_t n = pread (self->lock_fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn (holder, "\n")] = '\0';
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox %s is in use by another process (pid %s); run one agent per outbox "
                     "folder",
                     self->dir, holder[0] ? holder : "unknown");
    }
    char pid[32];
    int pid_len = snprintf (pid, sizeof pid, "%ld\n", (long)getpid ());
    /* The pid is only a hint for the message above; failing to write it is harmless. */
    if (ftruncate (self->lock_fd, 0) == 0 && pwrite (self->lock_fd, pid, (size_t)pid_len, 0) < 0)
        errno = 0;
    return 0;
}

static int
refresh_map_size (outbox_t *self, char *err, size_t err_len)
{
    MDB_envinfo info;
    int rc = mdb_env_info (self->env, &info);
    if (rc)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: mdb_env_info failed: %s", self->dir,
                     mdb_strerror (rc));
    self->map_size = info.me_mapsize;
    return 0;
}

static int
grow_map (outbox_t *self, char *err, size_t err_len)
{
    if (self->map_size >= self->map_ceiling)
        return fail (err, err_len, OUTBOX_ERR_FULL,
                     "outbox %s: its LMDB map is full at %zu bytes while under the limits "
                     "(free space is fragmented); wait for acks to free space",
                     self->dir, self->map_size);
    size_t size = self->map_size > self->map_ceiling / 2 ? self->map_ceiling : self->map_size * 2;
    int rc = mdb_env_set_mapsize (self->env, size);
    if (rc)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot grow the map to %zu bytes: %s",
                     self->dir, size, mdb_strerror (rc));
    return refresh_map_size (self, err, err_len);
}

/* A commit that failed: LMDB reports a write cut short by a full file system as EIO, so the free
 * space is looked at and a full disk is named as such, with what is free. */
static int
commit_failed (outbox_t *self, int rc, char *err, size_t err_len)
{
    struct statvfs fs;
    if ((rc == EIO || rc == ENOSPC || rc == EDQUOT) && statvfs (self->dir, &fs) == 0) {
        uint64_t free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
        if (rc != EIO || free_bytes < DISK_FULL_BELOW)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: commit failed: no space left on device (the file system "
                         "holding it has %" PRIu64 " bytes free%s)",
                         self->dir, free_bytes, rc == EIO ? "; a write was cut short" : "");
    }
    return fail (err, err_len, OUTBOX_ERR, "outbox %s: commit failed: %s", self->dir,
                 mdb_strerror (rc));
}

/* Runs step in a write transaction and commits it durably, growing the map and running the step
 * again when the map fills. The caller updates its in-memory state only after this returns 0. */
static int
run_write (outbox_t *self, write_step_fn *step, void *ctx, char *err, size_t err_len)
{
    if (self->readonly)
        return fail (err, err_len, OUTBOX_ERR_READONLY,
                     "outbox %s is open read-only (for status); it cannot be changed this way",
                     self->dir);
    int resized = 0;
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc == MDB_MAP_RESIZED && resized++ < 3) {
            /* Another process grew the map (e.g. mdb tools); adopt its size. */
            rc = mdb_env_set_mapsize (self->env, 0);
            if (rc == 0)
                rc = refresh_map_size (self, err, err_len);
            if (rc)
                return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot adopt the new map size",
                             self->dir);
            continue;
        }
        if (rc)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: cannot begin a write transaction: %s", self->dir,
                         mdb_strerror (rc));
        rc = step (self, txn, ctx, err, err_len);
        if (rc == STEP_NOTHING) {
            mdb_txn_abort (txn);
            return 0;
        }
        if (rc == STEP_MAP_FULL) {
            mdb_txn_abort (txn);
            if ((rc = grow_map (self, err, err_len)) != 0)
                return rc;
            continue;
        }
        if (rc) {
            mdb_txn_abort (txn);
            return rc;
        }
        rc = mdb_txn_commit (txn);
        if (rc == MDB_MAP_FULL) {
            if ((rc = grow_map (self, err, err_len)) != 0)
                return rc;
            continue;
        }
        if (rc)
            return commit_failed (self, rc, err, err_len);
        return 0;
    }
}

static int
begin_read (outbox_t *self, MDB_txn **txn, char *err, size_t err_len)
{
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize (self->env, 0);
        if (rc == 0 && refresh_map_size (self, err, err_len) == 0)
            rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    }
    if (rc)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot begin a read transaction: %s",
                     self->dir, mdb_strerror (rc));
    return 0;
}

/* State found by the open step, applied to self once the transaction has ended well. */
typedef struct {
    size_t count;
    uint64_t bytes;
    uint64_t next_seq;
    size_t retained_count;
    uint64_t retained_bytes;
    int64_t oldest_acked_at;
    size_t sources_count;
    uint64_t acked_max;
    bool has_extras;
    bool has_files;
    char store_id[OUTBOX_STORE_ID_MAX + 1];
    int64_t last_ack_at;
    uint64_t stage_floor;
} load_t;

static int
damaged (outbox_t *self, const char *what, char *err, size_t err_len)
{
    return fail (err, err_len, OUTBOX_ERR, "outbox %s: %s; the files are damaged or not an outbox",
                 self->dir, what);
}

static int
retained_key_time (const MDB_val *key, int64_t *acked_at)
{
    if (key->mv_size != RETAINED_KEY_LEN)
        return -1;
    *acked_at = (int64_t)be64_get (key->mv_data);
    return 0;
}

static void
retained_key_put (uint8_t *out, int64_t acked_at, uint64_t seq)
{
    be64_put (out, acked_at > 0 ? (uint64_t)acked_at : 0);
    be64_put (out + KEY_LEN, seq);
}

/* Refuses an LMDB store that is something else (say the collector's, given by mistake) before
 * anything is created in it: an outbox's main database names only its own databases. */
static int
check_main_db (outbox_t *self, MDB_txn *txn, char *err, size_t err_len)
{
    static const char *const names[DB_COUNT] = {"batches", "meta", "retained",
                                                "sources", "lost", "files"};
    MDB_dbi main_db;
    int rc = mdb_dbi_open (txn, NULL, 0, &main_db);
    if (rc)
        return step_fail (self, rc, "opening the main database", err, err_len);
    MDB_cursor *cursor;
    rc = mdb_cursor_open (txn, main_db, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on the main database", err, err_len);
    MDB_val key, value;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        bool known = false;
        for (size_t i = 0; i < DB_COUNT && !known; i++)
            known = key.mv_size == strlen (names[i]) &&
                    memcmp (key.mv_data, names[i], key.mv_size) == 0;
        if (!known) {
            mdb_cursor_close (cursor);
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: the LMDB store there holds other data; it is not an outbox",
                         self->dir);
        }
    }
    mdb_cursor_close (cursor);
    if (rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading the main database", err, err_len);
    return 0;
}

/* Opens the databases: created when missing, except read-only, where a format 1 outbox has no
 * retained, sources or lost database (has_extras false) and anything less is not an outbox. */
static int
open_dbs (outbox_t *self, MDB_txn *txn, load_t *load, char *err, size_t err_len)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
        int since; /* the format that added it */
    } dbs[DB_COUNT] = {{"batches", &self->batches, 1},   {"meta", &self->meta, 1},
                       {"retained", &self->retained, 2}, {"sources", &self->sources, 2},
                       {"lost", &self->lost, 2},         {"files", &self->files, 3}};
    load->has_extras = true;
    load->has_files = true;
    for (size_t i = 0; i < DB_COUNT; i++) {
        int rc = mdb_dbi_open (txn, dbs[i].name, self->readonly ? 0 : MDB_CREATE, dbs[i].dbi);
        if (rc == MDB_NOTFOUND && self->readonly && dbs[i].since > 1) {
            if (dbs[i].since == 2)
                load->has_extras = false;
            load->has_files = false;
            continue;
        }
        if (rc == MDB_NOTFOUND && self->readonly)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: there is no %s database in it; it is not an outbox", self->dir,
                         dbs[i].name);
        if (rc) {
            char what[64];
            snprintf (what, sizeof what, "opening the %s database", dbs[i].name);
            return step_fail (self, rc, what, err, err_len);
        }
    }
    return 0;
}

static int
get_meta_u64 (outbox_t *self, MDB_txn *txn, const char *name, uint64_t *out, bool *found, char *err,
              size_t err_len)
{
    MDB_val key = {strlen (name), (void *)name}, value;
    int rc = mdb_get (txn, self->meta, &key, &value);
    *found = rc == 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        char what[64];
        snprintf (what, sizeof what, "reading %s", name);
        return step_fail (self, rc, what, err, err_len);
    }
    if (value.mv_size != KEY_LEN) {
        char what[96];
        snprintf (what, sizeof what, "its stored %s is %zu bytes, not 8", name, value.mv_size);
        return damaged (self, what, err, err_len);
    }
    *out = be64_get (value.mv_data);
    return 0;
}

static int
put_meta_u64 (outbox_t *self, MDB_txn *txn, const char *name, uint64_t number, char *err,
              size_t err_len)
{
    uint8_t bytes[KEY_LEN];
    be64_put (bytes, number);
    MDB_val key = {strlen (name), (void *)name}, value = {KEY_LEN, bytes};
    int rc = mdb_put (txn, self->meta, &key, &value, 0);
    if (rc) {
        char what[64];
        snprintf (what, sizeof what, "storing %s", name);
        return step_fail (self, rc, what, err, err_len);
    }
    return 0;
}

/* Counts the pending batches and the highest seq among them. */
static int
load_batches (outbox_t *self, MDB_txn *txn, load_t *load, uint64_t *last, char *err, size_t err_len)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->batches, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on batches", err, err_len);
    MDB_val key, value;
    *last = 0;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        uint64_t seq = key.mv_size == KEY_LEN ? be64_get (key.mv_data) : 0;
        if (seq == 0) {
            mdb_cursor_close (cursor);
            return damaged (self, "a stored key is not a batch sequence number", err, err_len);
        }
        if (seq >= load->stage_floor)
            break; /* staged by a running agent (read-only open): not pending yet */
        *last = seq;
        load->count++;
        load->bytes += value.mv_size;
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading the stored batches", err, err_len);
    return 0;
}

/* Counts the retained batches, the highest seq among them and the oldest ack time. */
static int
load_retained (outbox_t *self, MDB_txn *txn, load_t *load, uint64_t *last, char *err,
               size_t err_len)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->retained, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on retained", err, err_len);
    MDB_val key, value;
    *last = 0;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        int64_t acked_at;
        uint64_t seq = 0;
        if (retained_key_time (&key, &acked_at) == 0)
            seq = be64_get ((const uint8_t *)key.mv_data + KEY_LEN);
        if (seq == 0) {
            mdb_cursor_close (cursor);
            return damaged (self, "a retained key is not an ack time and sequence number", err,
                            err_len);
        }
        if (load->retained_count == 0)
            load->oldest_acked_at = acked_at;
        if (seq > *last)
            *last = seq;
        load->retained_count++;
        load->retained_bytes += value.mv_size;
    }
    mdb_cursor_close (cursor);
    if (rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading the retained batches", err, err_len);
    return 0;
}

/* Checks the format marker; read-write, writes it in a new outbox and upgrades format 1. */
static int
check_format (outbox_t *self, MDB_txn *txn, bool has_data, char *err, size_t err_len)
{
    uint64_t format = 0;
    bool found;
    int rc = get_meta_u64 (self, txn, META_FORMAT, &format, &found, err, err_len);
    if (rc)
        return rc;
    if (!found && (has_data || self->readonly))
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox %s: the LMDB store there has no outbox format marker; it is not an "
                     "outbox",
                     self->dir);
    if (found && format != FORMAT && format != FORMAT_2 && format != FORMAT_OLD)
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox %s: stored in a format this agent does not know (%" PRIu64
                     ", expected %d); use the agent version that wrote it to drain it",
                     self->dir, format, FORMAT);
    if (!self->readonly && format != FORMAT)
        return put_meta_u64 (self, txn, META_FORMAT, FORMAT, err, err_len);
    return 0;
}

static int delete_from (outbox_t *self, MDB_txn *txn, uint64_t first, char *err, size_t err_len);

/* A stage left on disk (a crash while a file was streamed in): deleted when opened read-write,
 * hidden when read-only. */
static int
load_stage (outbox_t *self, MDB_txn *txn, load_t *load, char *err, size_t err_len)
{
    uint64_t first = 0;
    bool found;
    int rc = get_meta_u64 (self, txn, META_STAGING, &first, &found, err, err_len);
    if (rc || !found)
        return rc;
    if (self->readonly) {
        load->stage_floor = first;
        return 0;
    }
    if ((rc = delete_from (self, txn, first, err, err_len)) != 0)
        return rc;
    MDB_val key = {strlen (META_STAGING), META_STAGING};
    if ((rc = mdb_del (txn, self->meta, &key, NULL)) != 0)
        return step_fail (self, rc, "forgetting an interrupted stage", err, err_len);
    return 0;
}

static int
load_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    load_t *load = ctx;
    *load = (load_t){.next_seq = 1, .stage_floor = UINT64_MAX};
    int rc = check_main_db (self, txn, err, err_len);
    if (rc || (rc = open_dbs (self, txn, load, err, err_len)) != 0)
        return rc;
    if ((rc = load_stage (self, txn, load, err, err_len)) != 0)
        return rc;
    bool has_next_seq;
    if ((rc = get_meta_u64 (self, txn, META_NEXT_SEQ, &load->next_seq, &has_next_seq, err,
                            err_len)) != 0)
        return rc;
    if (!has_next_seq)
        load->next_seq = 1;
    uint64_t last_pending = 0, last_retained = 0;
    if ((rc = load_batches (self, txn, load, &last_pending, err, err_len)) != 0)
        return rc;
    if (load->has_extras) {
        if ((rc = load_retained (self, txn, load, &last_retained, err, err_len)) != 0)
            return rc;
        MDB_stat st;
        if ((rc = mdb_stat (txn, self->sources, &st)) != 0)
            return step_fail (self, rc, "counting the sources", err, err_len);
        load->sources_count = st.ms_entries;
    }
    /* Never hand out a seq at or below one stored, whatever the meta says. */
    uint64_t last = last_pending > last_retained ? last_pending : last_retained;
    if (last >= load->next_seq)
        load->next_seq = last + 1;

    bool found;
    if ((rc = get_meta_u64 (self, txn, META_ACKED_MAX, &load->acked_max, &found, err, err_len)) !=
        0)
        return rc;
    uint64_t last_ack = 0;
    if ((rc = get_meta_u64 (self, txn, META_LAST_ACK, &last_ack, &found, err, err_len)) != 0)
        return rc;
    load->last_ack_at = (int64_t)last_ack;
    MDB_val key = {strlen (META_STORE_ID), META_STORE_ID}, value;
    rc = mdb_get (txn, self->meta, &key, &value);
    if (rc == 0) {
        size_t len = value.mv_size < OUTBOX_STORE_ID_MAX ? value.mv_size : OUTBOX_STORE_ID_MAX;
        memcpy (load->store_id, value.mv_data, len);
        load->store_id[len] = '\0';
    }
    else if (rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading the store id", err, err_len);
    return check_format (self, txn, load->count || load->retained_count || has_next_seq, err,
                         err_len);
}

static void
apply_load (outbox_t *self, const load_t *load)
{
    self->count = load->count;
    self->bytes = load->bytes;
    self->next_seq = load->next_seq;
    self->retained_count = load->retained_count;
    self->retained_bytes = load->retained_bytes;
    self->oldest_acked_at = load->oldest_acked_at;
    self->sources_count = load->sources_count;
    self->acked_max = load->acked_max;
    self->has_extras = load->has_extras;
    self->has_files = load->has_files;
    memcpy (self->store_id, load->store_id, sizeof self->store_id);
    self->last_ack_at = load->last_ack_at;
    self->stage_floor = load->stage_floor;
}

static int
set_limits (outbox_t *self, const outbox_limits_t *limits, char *err, size_t err_len)
{
    outbox_limits_t given = limits ? *limits : (outbox_limits_t){0};
    self->max_batches = given.max_batches ? given.max_batches : OUTBOX_DEFAULT_MAX_BATCHES;
    self->max_bytes = given.max_bytes ? given.max_bytes : OUTBOX_DEFAULT_MAX_BYTES;
    if (self->max_bytes > MAX_MAX_BYTES)
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox max_bytes of %" PRIu64 " is over the supported %" PRIu64 " (1 TiB)",
                     self->max_bytes, MAX_MAX_BYTES);
    uint64_t derived = self->max_bytes * 2 + MAP_HEADROOM;
    uint64_t ceiling = derived * MAP_CEILING_FACTOR;
    uint64_t initial = given.map_size ? given.map_size : derived;
    if (initial < MIN_MAP_SIZE)
        initial = MIN_MAP_SIZE;
    if (ceiling < initial)
        ceiling = initial;
    if (ceiling > SIZE_MAX)
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox max_bytes of %" PRIu64 " needs a map larger than this machine's "
                     "address space",
                     self->max_bytes);
    long page = sysconf (_SC_PAGESIZE);
    uint64_t page_size = page > 0 ? (uint64_t)page : 4096;
    self->map_size = (size_t)((initial + page_size - 1) / page_size * page_size);
    self->map_ceiling = (size_t)((ceiling + page_size - 1) / page_size * page_size);
    return 0;
}

/* Creates and opens the LMDB environment of self->dir; map_size 0 keeps the file's own. */
static int
open_env (outbox_t *self, unsigned flags, size_t map_size, char *err, size_t err_len)
{
    int rc = mdb_env_create (&self->env);
    if (rc)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: mdb_env_create failed: %s", self->dir,
                     mdb_strerror (rc));
    if ((rc = mdb_env_set_maxdbs (self->env, DB_COUNT)) != 0 ||
        (map_size && (rc = mdb_env_set_mapsize (self->env, map_size)) != 0))
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot configure LMDB: %s", self->dir,
                     mdb_strerror (rc));
    /* No MDB_NOSYNC / MDB_NOMETASYNC: a put must be on disk before the batch is sent. */
    rc = mdb_env_open (self->env, self->dir, flags, 0600);
    if (rc)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot open the LMDB store: %s",
                     self->dir, mdb_strerror (rc));
    return refresh_map_size (self, err, err_len);
}

/* An outbox that must already exist (status, clear-alarm) is looked for first: LMDB would create
 * an empty one. */
static int
check_exists (const char *dir, char *err, size_t err_len)
{
    char path[4096];
    if ((size_t)snprintf (path, sizeof path, "%s/data.mdb", dir) >= sizeof path)
        return fail (err, err_len, OUTBOX_ERR, "outbox folder name is too long: %s", dir);
    struct stat st;
    if (stat (path, &st) != 0)
        return fail (err, err_len, OUTBOX_ERR,
                     "no outbox in %s (%s: %s); is agent/state_dir the agent's, and has it run?",
                     dir, path, strerror (errno));
    return 0;
}

static outbox_t *
outbox_alloc (const char *dir, char *err, size_t err_len)
{
    if (!dir || !*dir) {
        fail (err, err_len, OUTBOX_ERR, "no outbox folder given");
        return NULL;
    }
    outbox_t *self = calloc (1, sizeof *self);
    if (self) {
        self->lock_fd = -1;
        self->dir = strdup (dir);
    }
    if (!self || !self->dir) {
        fail (err, err_len, OUTBOX_ERR, "out of memory");
        outbox_destroy (&self);
    }
    if (self)
        self->stage_floor = UINT64_MAX;
    return self;
}

outbox_t *
outbox_new (const char *dir, const outbox_limits_t *limits, char *err, size_t err_len)
{
    outbox_t *self = outbox_alloc (dir, err, err_len);
    if (!self)
        return NULL;
    if (set_limits (self, limits, err, err_len) || make_dirs (dir, err, err_len) ||
        take_lock (self, err, err_len) || open_env (self, 0, self->map_size, err, err_len))
        goto err;
    /* A killed agent can leave its reader slot behind; free it so it pins no old pages. */
    int dead = 0;
    int rc = mdb_reader_check (self->env, &dead);
    if (rc) {
        fail (err, err_len, OUTBOX_ERR, "outbox %s: mdb_reader_check failed: %s", dir,
              mdb_strerror (rc));
        goto err;
    }
    if (self->map_ceiling < self->map_size)
        self->map_ceiling = self->map_size;

    load_t load = {0}; /* Release builds cannot see that run_write fills it on success */
    if (run_write (self, load_step, &load, err, err_len))
        goto err;
    apply_load (self, &load);
    if (fsync_dir (dir, err, err_len))
        goto err;
    return self;

err:
    outbox_destroy (&self);
    return NULL;
}

outbox_t *
outbox_open_readonly (const char *dir, char *err, size_t err_len)
{
    if (check_exists (dir, err, err_len))
        return NULL;
    outbox_t *self = outbox_alloc (dir, err, err_len);
    if (!self)
        return NULL;
    self->readonly = true;
    if (open_env (self, MDB_RDONLY, 0, err, err_len))
        goto err;
    MDB_txn *txn;
    if (begin_read (self, &txn, err, err_len))
        goto err;
    load_t load = {0};
    int rc = load_step (self, txn, &load, err, err_len);
    if (rc) {
        mdb_txn_abort (txn);
        if (rc > 0) /* STEP_MAP_FULL cannot happen reading; say something all the same */
            fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot read it", dir);
        goto err;
    }
    /* Committing a read transaction keeps the database handles it opened. */
    rc = mdb_txn_commit (txn);
    if (rc) {
        fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot end the read: %s", dir,
              mdb_strerror (rc));
        goto err;
    }
    apply_load (self, &load);
    return self;

err:
    outbox_destroy (&self);
    return NULL;
}

void
outbox_destroy (outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    outbox_t *self = *self_p;
    if (self->env)
        mdb_env_close (self->env);
    if (self->lock_fd >= 0)
        close (self->lock_fd);
    for (size_t i = 0; i < self->stage.item_count; i++)
        free ((void *)self->stage.items[i].payload);
    free (self->stage.items);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

uint64_t
outbox_next_seq (outbox_t *self)
{
    return self->next_seq;
}

size_t
outbox_count (outbox_t *self)
{
    return self->count;
}

uint64_t
outbox_bytes (outbox_t *self)
{
    return self->bytes;
}

bool
outbox_has_room (outbox_t *self, size_t bytes_needed)
{
    return !self->readonly && self->count < self->max_batches && self->bytes <= self->max_bytes &&
           (uint64_t)bytes_needed <= self->max_bytes - self->bytes;
}

bool
outbox_has_room_for (outbox_t *self, uint64_t batches, uint64_t bytes)
{
    return !self->readonly && self->count <= self->max_batches &&
           batches <= self->max_batches - self->count && self->bytes <= self->max_bytes &&
           bytes <= self->max_bytes - self->bytes;
}

bool
outbox_could_ever_fit (outbox_t *self, uint64_t batches, uint64_t bytes)
{
    return batches <= self->max_batches && bytes <= self->max_bytes;
}

void
outbox_retained (outbox_t *self, outbox_retained_t *retained)
{
    *retained = (outbox_retained_t){self->retained_count, self->retained_bytes,
                                    self->retained_count ? self->oldest_acked_at : 0,
                                    self->pruned_for_room};
}

uint64_t
outbox_acked_max (outbox_t *self)
{
    return self->acked_max;
}

const char *
outbox_store_id (outbox_t *self)
{
    return self->store_id;
}

static int
refuse_in_foreach (outbox_t *self, const char *what, char *err, size_t err_len)
{
    if (!self->in_foreach)
        return 0;
    return fail (err, err_len, OUTBOX_ERR,
                 "outbox %s: %s called from inside outbox_foreach; act after the walk", self->dir,
                 what);
}

/* Which retained batches prune_retained deletes: those acknowledged before acked_before, then the
 * oldest until at most max_count and max_bytes remain. Fills the rest. */
typedef struct {
    int64_t acked_before;
    size_t max_count;
    uint64_t max_bytes;
    size_t pruned;
    uint64_t pruned_bytes;
    int64_t oldest; /* ack time of the oldest left; 0 when none */
} prune_t;

static int
prune_retained (outbox_t *self, MDB_txn *txn, prune_t *prune, char *err, size_t err_len)
{
    prune->pruned = 0;
    prune->pruned_bytes = 0;
    prune->oldest = 0;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->retained, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on retained", err, err_len);
    MDB_val key, value;
    /* MDB_FIRST after each delete: the first left is the next oldest. */
    while ((rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST)) == 0) {
        int64_t acked_at;
        if (retained_key_time (&key, &acked_at)) {
            mdb_cursor_close (cursor);
            return damaged (self, "a retained key is not an ack time and sequence number", err,
                            err_len);
        }
        size_t count_left = self->retained_count - prune->pruned;
        uint64_t bytes_left = self->retained_bytes - prune->pruned_bytes;
        if (acked_at >= prune->acked_before && count_left <= prune->max_count &&
            bytes_left <= prune->max_bytes) {
            prune->oldest = acked_at;
            break;
        }
        prune->pruned++;
        prune->pruned_bytes += value.mv_size;
        if ((rc = mdb_cursor_del (cursor, 0)) != 0) {
            mdb_cursor_close (cursor);
            return step_fail (self, rc, "pruning a retained batch", err, err_len);
        }
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading the retained batches", err, err_len);
    return 0;
}

static void
apply_prune (outbox_t *self, const prune_t *prune)
{
    self->retained_count -= prune->pruned;
    self->retained_bytes -= prune->pruned_bytes;
    if (prune->pruned)
        self->oldest_acked_at = prune->oldest;
}

/* A label as stored: cut to OUTBOX_SOURCE_MAX bytes, and at a NUL (none can be in a name). */
static size_t
label_len (const char *label)
{
    size_t len = strlen (label);
    return len > OUTBOX_SOURCE_MAX ? OUTBOX_SOURCE_MAX : len;
}

/* Keeps where a put's batches came from (with its counts when counts is not NULL: records,
 * rejected), and only the newest OUTBOX_SOURCES_KEPT of them. */
static int
put_source (outbox_t *self, MDB_txn *txn, uint64_t first, uint64_t last, const char *source,
            const uint64_t *counts, size_t *dropped, char *err, size_t err_len)
{
    *dropped = 0;
    size_t len = label_len (source);
    uint8_t key_bytes[KEY_LEN],
        value_bytes[RANGE_VALUE_LEN + OUTBOX_SOURCE_MAX + SOURCE_COUNTS_LEN];
    be64_put (key_bytes, first);
    be64_put (value_bytes, last);
    time_t now = time (NULL);
    be64_put (value_bytes + KEY_LEN, now > 0 ? (uint64_t)now : 0);
    memcpy (value_bytes + RANGE_VALUE_LEN, source, len);
    size_t value_len = RANGE_VALUE_LEN + len;
    if (counts) {
        value_bytes[value_len] = '\0';
        be64_put (value_bytes + value_len + 1, counts[0]);
        be64_put (value_bytes + value_len + 1 + KEY_LEN, counts[1]);
        value_len += SOURCE_COUNTS_LEN;
    }
    MDB_val key = {KEY_LEN, key_bytes}, value = {value_len, value_bytes};
    int rc = mdb_put (txn, self->sources, &key, &value, 0);
    if (rc)
        return step_fail (self, rc, "storing the batches' source", err, err_len);
    if (self->sources_count + 1 <= OUTBOX_SOURCES_KEPT)
        return 0;
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->sources, &cursor)) != 0)
        return step_fail (self, rc, "opening a cursor on sources", err, err_len);
    while (self->sources_count + 1 - *dropped > OUTBOX_SOURCES_KEPT &&
           (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST)) == 0) {
        if ((rc = mdb_cursor_del (cursor, 0)) != 0)
            break;
        (*dropped)++;
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return step_fail (self, rc, "forgetting an old source", err, err_len);
    return 0;
}

typedef struct {
    const outbox_item_t *items;
    size_t n;
    uint64_t total;
    const char *source;
    prune_t prune;
    size_t sources_dropped;
} put_t;

static int
put_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    put_t *put = ctx;
    /* Retained batches give way: pending plus retained stay within the limits. */
    put->prune = (prune_t){.acked_before = INT64_MIN,
                           .max_count = self->max_batches - self->count - put->n,
                           .max_bytes = self->max_bytes - self->bytes - put->total};
    int rc = prune_retained (self, txn, &put->prune, err, err_len);
    if (rc)
        return rc;
    uint8_t key_bytes[KEY_LEN];
    for (size_t i = 0; i < put->n; i++) {
        be64_put (key_bytes, put->items[i].seq);
        MDB_val key = {KEY_LEN, key_bytes};
        MDB_val value = {put->items[i].size, (void *)put->items[i].payload};
        rc = mdb_put (txn, self->batches, &key, &value, MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: batch %" PRIu64 " is not above every stored batch; the "
                         "store and the seq high-water mark disagree",
                         self->dir, put->items[i].seq);
        if (rc)
            return step_fail (self, rc, "storing a batch", err, err_len);
    }
    uint64_t last = put->items[put->n - 1].seq;
    if ((rc = put_meta_u64 (self, txn, META_NEXT_SEQ, last + 1, err, err_len)) != 0)
        return rc;
    put->sources_dropped = 0;
    if (put->source)
        return put_source (self, txn, put->items[0].seq, last, put->source, NULL,
                           &put->sources_dropped, err, err_len);
    return 0;
}

int
outbox_put_many (outbox_t *self, const outbox_item_t *items, size_t n, const char *source,
                 char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_put", err, err_len);
    if (rc || n == 0)
        return rc;
    if (self->stage.open)
        return fail (err, err_len, OUTBOX_ERR_STAGE,
                     "outbox %s: a file is being staged; commit or abort it before a put",
                     self->dir);
    if (self->readonly) /* before the limits, which a read-only open does not know */
        return run_write (self, NULL, NULL, err, err_len);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const outbox_item_t *item = &items[i];
        uint64_t expected;
        if (__builtin_add_overflow (self->next_seq, (uint64_t)i, &expected) ||
            expected == UINT64_MAX)
            return fail (err, err_len, OUTBOX_ERR_SEQ,
                         "outbox %s: batch sequence numbers are exhausted", self->dir);
        if (item->seq != expected)
            return fail (err, err_len, OUTBOX_ERR_SEQ,
                         "outbox %s: batch %zu of %zu has seq %" PRIu64
                         " but the next seq is %" PRIu64 "; take seqs from outbox_next_seq",
                         self->dir, i + 1, n, item->seq, expected);
        if (!item->payload || item->size == 0)
            return fail (err, err_len, OUTBOX_ERR, "outbox %s: batch %" PRIu64 " is empty",
                         self->dir, item->seq);
        if (item->size > self->max_bytes)
            return fail (err, err_len, OUTBOX_ERR_TOO_BIG,
                         "outbox %s: batch %" PRIu64 " is %zu bytes, more than the outbox's "
                         "max_bytes of %" PRIu64 "; it can never be stored, send smaller batches",
                         self->dir, item->seq, item->size, self->max_bytes);
        total += item->size; /* each size <= max_bytes <= 1 TiB: no overflow */
    }
    if (self->count > self->max_batches || n > self->max_batches - self->count)
        return fail (err, err_len, OUTBOX_ERR_FULL,
                     "outbox %s is full: %zu batches pending, %zu more would pass the limit of "
                     "%zu (max_batches); wait for the collector to acknowledge",
                     self->dir, self->count, n, self->max_batches);
    if (self->bytes > self->max_bytes || total > self->max_bytes - self->bytes)
        return fail (err, err_len, OUTBOX_ERR_FULL,
                     "outbox %s is full: %" PRIu64 " bytes pending, %" PRIu64
                     " more would pass the limit of %" PRIu64
                     " (max_bytes); wait for the collector to acknowledge",
                     self->dir, self->bytes, total, self->max_bytes);

    put_t put = {.items = items, .n = n, .total = total, .source = source};
    rc = run_write (self, put_step, &put, err, err_len);
    if (rc)
        return rc;
    self->count += n;
    self->bytes += total;
    self->next_seq += n;
    apply_prune (self, &put.prune);
    self->pruned_for_room += put.prune.pruned;
    if (source)
        self->sources_count = self->sources_count + 1 - put.sources_dropped;
    return 0;
}

int
outbox_put (outbox_t *self, uint64_t seq, const void *payload, size_t size, char *err,
            size_t err_len)
{
    outbox_item_t item = {seq, payload, size};
    return outbox_put_many (self, &item, 1, NULL, err, err_len);
}

/* Copies the value at key of dbi into a new buffer, for a put elsewhere in the same transaction
 * (LMDB's pointer is good only until the next change). MDB_NOTFOUND when absent. */
static int
copy_value (outbox_t *self, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *copy, char *err,
            size_t err_len)
{
    MDB_val value;
    int rc = mdb_get (txn, dbi, key, &value);
    if (rc == MDB_NOTFOUND)
        return rc;
    if (rc)
        return step_fail (self, rc, "reading a batch", err, err_len);
    copy->mv_data = malloc (value.mv_size ? value.mv_size : 1);
    if (!copy->mv_data)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory moving a batch",
                     self->dir);
    memcpy (copy->mv_data, value.mv_data, value.mv_size);
    copy->mv_size = value.mv_size;
    return 0;
}

typedef struct {
    const uint64_t *seqs;
    size_t n;
    int64_t acked_at;
    size_t moved;
    uint64_t moved_bytes;
    uint64_t acked_max;
    uint64_t *moved_seqs; /* n of them: the seqs moved, for outbox_on_delivered */
} ack_t;

static int
ack_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    ack_t *ack = ctx;
    ack->moved = 0;
    ack->moved_bytes = 0;
    ack->acked_max = self->acked_max;
    for (size_t i = 0; i < ack->n; i++) {
        uint64_t seq = ack->seqs[i];
        /* A seq never handed out cannot have been acknowledged: no mark from a confused peer. */
        if (seq > ack->acked_max && seq < self->next_seq)
            ack->acked_max = seq;
        uint8_t key_bytes[KEY_LEN], retained_bytes[RETAINED_KEY_LEN];
        be64_put (key_bytes, seq);
        MDB_val key = {KEY_LEN, key_bytes}, payload;
        int rc = copy_value (self, txn, self->batches, &key, &payload, err, err_len);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc)
            return rc;
        retained_key_put (retained_bytes, ack->acked_at, seq);
        MDB_val retained_key = {RETAINED_KEY_LEN, retained_bytes};
        rc = mdb_put (txn, self->retained, &retained_key, &payload, 0);
        free (payload.mv_data);
        if (rc)
            return step_fail (self, rc, "retaining an acknowledged batch", err, err_len);
        if ((rc = mdb_del (txn, self->batches, &key, NULL)) != 0)
            return step_fail (self, rc, "removing an acknowledged batch", err, err_len);
        if (ack->moved_seqs)
            ack->moved_seqs[ack->moved] = seq;
        ack->moved++;
        ack->moved_bytes += payload.mv_size;
    }
    if (!ack->moved && ack->acked_max == self->acked_max)
        return STEP_NOTHING;
    if (ack->moved) {
        int rc = put_meta_u64 (self, txn, META_LAST_ACK, (uint64_t)ack->acked_at, err, err_len);
        if (rc)
            return rc;
    }
    if (ack->acked_max != self->acked_max)
        return put_meta_u64 (self, txn, META_ACKED_MAX, ack->acked_max, err, err_len);
    return 0;
}

static void report_delivered (outbox_t *self, uint64_t *seqs, size_t n);

int
outbox_ack (outbox_t *self, const uint64_t *seqs, size_t n, int64_t acked_at, size_t *moved,
            char *err, size_t err_len)
{
    if (moved)
        *moved = 0;
    int rc = refuse_in_foreach (self, "outbox_ack", err, err_len);
    if (rc || n == 0)
        return rc;
    ack_t ack = {.seqs = seqs, .n = n, .acked_at = acked_at > 0 ? acked_at : 0};
    if (self->on_delivered)
        ack.moved_seqs = malloc (n * sizeof *ack.moved_seqs); /* without it: no report */
    rc = run_write (self, ack_step, &ack, err, err_len);
    if (rc) {
        free (ack.moved_seqs);
        return rc;
    }
    if (ack.moved)
        self->last_ack_at = ack.acked_at;
    if (ack.moved_seqs && ack.moved)
        report_delivered (self, ack.moved_seqs, ack.moved);
    free (ack.moved_seqs);
    if (ack.moved && (self->retained_count == 0 || ack.acked_at < self->oldest_acked_at))
        self->oldest_acked_at = ack.acked_at;
    self->count -= ack.moved;
    self->bytes -= ack.moved_bytes;
    self->retained_count += ack.moved;
    self->retained_bytes += ack.moved_bytes;
    self->acked_max = ack.acked_max;
    if (moved)
        *moved = ack.moved;
    return 0;
}

static int
prune_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    prune_t *prune = ctx;
    int rc = prune_retained (self, txn, prune, err, err_len);
    if (rc)
        return rc;
    return prune->pruned ? 0 : STEP_NOTHING;
}

int
outbox_prune (outbox_t *self, int64_t acked_before, size_t *pruned, char *err, size_t err_len)
{
    if (pruned)
        *pruned = 0;
    int rc = refuse_in_foreach (self, "outbox_prune", err, err_len);
    /* The ack times are known in memory: nothing to do costs no transaction. */
    if (rc || self->retained_count == 0 || self->oldest_acked_at >= acked_before)
        return rc;
    prune_t prune = {.acked_before = acked_before, .max_count = SIZE_MAX, .max_bytes = UINT64_MAX};
    rc = run_write (self, prune_step, &prune, err, err_len);
    if (rc)
        return rc;
    apply_prune (self, &prune);
    if (pruned)
        *pruned = prune.pruned;
    return 0;
}

/* A growable array of seqs. */
typedef struct {
    uint64_t *seqs;
    size_t n, capacity;
} seq_list_t;

static int
seq_list_add (seq_list_t *list, uint64_t seq)
{
    if (list->n == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 256;
        uint64_t *seqs = realloc (list->seqs, capacity * sizeof *seqs);
        if (!seqs)
            return -1;
        list->seqs = seqs;
        list->capacity = capacity;
    }
    list->seqs[list->n++] = seq;
    return 0;
}

static int
seq_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Adds first..last to the lost ranges, merging with those it overlaps or touches, so that the
 * ranges stay disjoint and apart. *newly: how many of its seqs no range held before. */
static int
add_lost (outbox_t *self, MDB_txn *txn, uint64_t first, uint64_t last, int64_t now, uint64_t *newly,
          char *err, size_t err_len)
{
    uint64_t lo = first, hi = last, covered = 0;
    int64_t raised = now;
    seq_list_t merged = {0};
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->lost, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on lost", err, err_len);
    uint8_t key_bytes[KEY_LEN];
    be64_put (key_bytes, first);
    MDB_val key = {KEY_LEN, key_bytes}, value;
    /* Start at the last range beginning before first (it may reach into first..last). */
    rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV) == 0
                 ? 0
                 : mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    for (; rc == 0; rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size != KEY_LEN || value.mv_size != RANGE_VALUE_LEN) {
            rc = damaged (self, "a lost range is not two seqs and a time", err, err_len);
            goto out;
        }
        uint64_t x = be64_get (key.mv_data), y = be64_get (value.mv_data);
        int64_t at = (int64_t)be64_get ((const uint8_t *)value.mv_data + KEY_LEN);
        if (x > last + 1)
            break;
        if (y + 1 < first)
            continue;
        uint64_t from = x > first ? x : first, to = y < last ? y : last;
        if (from <= to)
            covered += to - from + 1;
        lo = x < lo ? x : lo;
        hi = y > hi ? y : hi;
        raised = at < raised ? at : raised;
        if (seq_list_add (&merged, x)) {
            rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory", self->dir);
            goto out;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = step_fail (self, rc, "reading the lost ranges", err, err_len);
        goto out;
    }
    rc = 0;
    *newly = last - first + 1 - covered;
    if (*newly == 0)
        goto out; /* all of it is in one range already */
    for (size_t i = 0; i < merged.n && rc == 0; i++) {
        be64_put (key_bytes, merged.seqs[i]);
        key = (MDB_val){KEY_LEN, key_bytes};
        if ((rc = mdb_del (txn, self->lost, &key, NULL)) != 0)
            rc = step_fail (self, rc, "merging lost ranges", err, err_len);
    }
    if (rc == 0) {
        uint8_t range[RANGE_VALUE_LEN];
        be64_put (key_bytes, lo);
        be64_put (range, hi);
        be64_put (range + KEY_LEN, raised > 0 ? (uint64_t)raised : 0);
        key = (MDB_val){KEY_LEN, key_bytes};
        value = (MDB_val){RANGE_VALUE_LEN, range};
        if ((rc = mdb_put (txn, self->lost, &key, &value, 0)) != 0)
            rc = step_fail (self, rc, "recording lost batches", err, err_len);
    }
out:
    mdb_cursor_close (cursor);
    free (merged.seqs);
    return rc;
}

typedef struct {
    uint64_t first, last;
    int64_t now;
    outbox_recovery_t found;
    uint64_t requeued_bytes;
    int64_t oldest;
} recover_t;

/* Collects the pending seqs in first..last (ascending) and the retained ones (their keys). */
static int
collect_range (outbox_t *self, MDB_txn *txn, recover_t *recover, seq_list_t *pending,
               seq_list_t *retained, char *err, size_t err_len)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->batches, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on batches", err, err_len);
    uint8_t key_bytes[KEY_LEN];
    be64_put (key_bytes, recover->first);
    MDB_val key = {KEY_LEN, key_bytes}, value;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        uint64_t seq = key.mv_size == KEY_LEN ? be64_get (key.mv_data) : 0;
        if (seq > recover->last)
            break;
        if (seq_list_add (pending, seq)) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc == ENOMEM ? fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory", self->dir)
                            : step_fail (self, rc, "reading the pending batches", err, err_len);
    /* Retained batches are in ack-time order: all of them are looked at. */
    if ((rc = mdb_cursor_open (txn, self->retained, &cursor)) != 0)
        return step_fail (self, rc, "opening a cursor on retained", err, err_len);
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size != RETAINED_KEY_LEN) {
            mdb_cursor_close (cursor);
            return damaged (self, "a retained key is not an ack time and sequence number", err,
                            err_len);
        }
        uint64_t seq = be64_get ((const uint8_t *)key.mv_data + KEY_LEN);
        /* Two entries per retained batch: its ack time, then its seq. */
        if (seq >= recover->first && seq <= recover->last &&
            (seq_list_add (retained, be64_get (key.mv_data)) || seq_list_add (retained, seq))) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc == ENOMEM ? fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory", self->dir)
                            : step_fail (self, rc, "reading the retained batches", err, err_len);
    return 0;
}

/* Puts the retained batches listed (ack time, seq pairs) back to pending. */
static int
requeue (outbox_t *self, MDB_txn *txn, recover_t *recover, const seq_list_t *retained, char *err,
         size_t err_len)
{
    for (size_t i = 0; i + 1 < retained->n; i += 2) {
        uint8_t retained_bytes[RETAINED_KEY_LEN], key_bytes[KEY_LEN];
        retained_key_put (retained_bytes, (int64_t)retained->seqs[i], retained->seqs[i + 1]);
        be64_put (key_bytes, retained->seqs[i + 1]);
        MDB_val retained_key = {RETAINED_KEY_LEN, retained_bytes}, key = {KEY_LEN, key_bytes};
        MDB_val payload;
        int rc = copy_value (self, txn, self->retained, &retained_key, &payload, err, err_len);
        if (rc == MDB_NOTFOUND)
            return damaged (self, "a retained batch vanished while being requeued", err, err_len);
        if (rc)
            return rc;
        rc = mdb_put (txn, self->batches, &key, &payload, MDB_NOOVERWRITE);
        free (payload.mv_data);
        if (rc == MDB_KEYEXIST)
            return damaged (self, "a batch is both pending and retained", err, err_len);
        if (rc)
            return step_fail (self, rc, "requeueing a retained batch", err, err_len);
        if ((rc = mdb_del (txn, self->retained, &retained_key, NULL)) != 0)
            return step_fail (self, rc, "requeueing a retained batch", err, err_len);
        recover->found.requeued++;
        recover->requeued_bytes += payload.mv_size;
    }
    return 0;
}

/* Records as lost every seq of first..last in neither sorted list. */
static int
record_gaps (outbox_t *self, MDB_txn *txn, recover_t *recover, const seq_list_t *held, char *err,
             size_t err_len)
{
    uint64_t next = recover->first;
    for (size_t i = 0; i <= held->n; i++) {
        uint64_t seq = i < held->n ? held->seqs[i] : recover->last + 1;
        if (seq > next) {
            uint64_t newly = 0;
            int rc = add_lost (self, txn, next, seq - 1, recover->now, &newly, err, err_len);
            if (rc)
                return rc;
            if (!recover->found.first_lost)
                recover->found.first_lost = next;
            recover->found.last_lost = seq - 1;
            recover->found.lost += seq - next;
            recover->found.newly_lost += newly;
        }
        if (seq >= next)
            next = seq + 1;
    }
    return 0;
}

static int
recover_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    recover_t *recover = ctx;
    recover->found = (outbox_recovery_t){0};
    recover->requeued_bytes = 0;
    seq_list_t pending = {0}, retained = {0};
    int rc = collect_range (self, txn, recover, &pending, &retained, err, err_len);
    if (rc == 0)
        rc = requeue (self, txn, recover, &retained, err, err_len);
    if (rc == 0) {
        /* Every seq held here, pending or retained, ascending: what is not among them is lost. */
        recover->found.pending = pending.n;
        for (size_t i = 1; i < retained.n && rc == 0; i += 2)
            if (seq_list_add (&pending, retained.seqs[i]))
                rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory", self->dir);
        if (rc == 0) {
            if (pending.n)
                qsort (pending.seqs, pending.n, sizeof *pending.seqs, seq_compare);
            rc = record_gaps (self, txn, recover, &pending, err, err_len);
        }
    }
    if (rc == 0 && recover->found.requeued) {
        prune_t none = {.acked_before = INT64_MIN, .max_count = SIZE_MAX, .max_bytes = UINT64_MAX};
        rc = prune_retained (self, txn, &none, err, err_len);
        recover->oldest = none.oldest;
    }
    free (pending.seqs);
    free (retained.seqs);
    if (rc == 0 && !recover->found.requeued && !recover->found.newly_lost)
        rc = STEP_NOTHING;
    return rc;
}

int
outbox_recover (outbox_t *self, uint64_t first, uint64_t last, int64_t now,
                outbox_recovery_t *found, char *err, size_t err_len)
{
    *found = (outbox_recovery_t){0};
    int rc = refuse_in_foreach (self, "outbox_recover", err, err_len);
    if (first == 0)
        first = 1;
    if (last >= self->next_seq)
        last = self->next_seq - 1;
    if (rc || first > last)
        return rc;
    recover_t recover = {.first = first, .last = last, .now = now};
    rc = run_write (self, recover_step, &recover, err, err_len);
    if (rc)
        return rc;
    *found = recover.found;
    self->count += recover.found.requeued;
    self->bytes += recover.requeued_bytes;
    self->retained_count -= recover.found.requeued;
    self->retained_bytes -= recover.requeued_bytes;
    if (recover.found.requeued)
        self->oldest_acked_at = recover.oldest;
    return 0;
}

static int
store_id_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    const char *store_id = ctx;
    MDB_val key = {strlen (META_STORE_ID), META_STORE_ID},
            value = {strlen (store_id), (void *)store_id};
    int rc = mdb_put (txn, self->meta, &key, &value, 0);
    if (rc)
        return step_fail (self, rc, "storing the collector's store id", err, err_len);
    return 0;
}

int
outbox_set_store_id (outbox_t *self, const char *store_id, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_set_store_id", err, err_len);
    if (rc)
        return rc;
    char cut[OUTBOX_STORE_ID_MAX + 1];
    snprintf (cut, sizeof cut, "%s", store_id ? store_id : "");
    if (strcmp (cut, self->store_id) == 0)
        return 0;
    if ((rc = run_write (self, store_id_step, cut, err, err_len)) != 0)
        return rc;
    memcpy (self->store_id, cut, sizeof cut);
    return 0;
}

int
outbox_get (outbox_t *self, uint64_t seq, void **payload, size_t *size, char *err, size_t err_len)
{
    *payload = NULL;
    *size = 0;
    int rc = refuse_in_foreach (self, "outbox_get", err, err_len);
    if (rc)
        return rc;
    MDB_txn *txn;
    if ((rc = begin_read (self, &txn, err, err_len)) != 0)
        return rc;
    uint8_t key_bytes[KEY_LEN];
    be64_put (key_bytes, seq);
    MDB_val key = {KEY_LEN, key_bytes}, value;
    rc = seq >= self->stage_floor ? MDB_NOTFOUND : mdb_get (txn, self->batches, &key, &value);
    if (rc == MDB_NOTFOUND)
        rc = fail (err, err_len, OUTBOX_ERR_NOTFOUND, "outbox %s: batch %" PRIu64 " is not pending",
                   self->dir, seq);
    else if (rc)
        rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: reading batch %" PRIu64 " failed: %s",
                   self->dir, seq, mdb_strerror (rc));
    else if ((*payload = malloc (value.mv_size ? value.mv_size : 1)) == NULL)
        rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory copying batch %" PRIu64,
                   self->dir, seq);
    else {
        memcpy (*payload, value.mv_data, value.mv_size);
        *size = value.mv_size;
    }
    mdb_txn_abort (txn);
    return rc;
}

int
outbox_foreach (outbox_t *self, outbox_fn *fn, void *arg, char *err, size_t err_len)
{
    return outbox_foreach_from (self, 0, fn, arg, err, err_len);
}

/* What a walk over one database calls for each entry; non-zero stops. */
typedef int (walk_fn) (void *ctx, const MDB_val *key, const MDB_val *value);

/* Walks dbi from the first key >= start (NULL: the first) in one read snapshot, refusing
 * re-entry from the callback. The callback's return stops the walk; -1 means damaged data. */
static int
walk (outbox_t *self, MDB_dbi dbi, const MDB_val *start, walk_fn *fn, void *ctx, char *err,
      size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_foreach", err, err_len);
    if (rc)
        return rc;
    MDB_txn *txn;
    if ((rc = begin_read (self, &txn, err, err_len)) != 0)
        return rc;
    MDB_cursor *cursor;
    rc = mdb_cursor_open (txn, dbi, &cursor);
    if (rc) {
        mdb_txn_abort (txn);
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot open a cursor: %s", self->dir,
                     mdb_strerror (rc));
    }
    self->in_foreach = true;
    bool bad = false;
    MDB_val key = start ? *start : (MDB_val){0, NULL}, value;
    for (rc = mdb_cursor_get (cursor, &key, &value, start ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        int stop = fn (ctx, &key, &value);
        if (stop) {
            bad = stop < 0;
            rc = MDB_NOTFOUND;
            break;
        }
    }
    self->in_foreach = false;
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    if (bad)
        return damaged (self, "a stored key or value is not what it should be", err, err_len);
    if (rc != MDB_NOTFOUND)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: walking the batches failed: %s",
                     self->dir, mdb_strerror (rc));
    return 0;
}

typedef struct {
    outbox_fn *fn;
    void *arg;
    uint64_t floor;
} batch_walk_t;

static int
walk_batch (void *ctx, const MDB_val *key, const MDB_val *value)
{
    batch_walk_t *walk = ctx;
    if (key->mv_size != KEY_LEN)
        return -1;
    if (be64_get (key->mv_data) >= walk->floor)
        return 1; /* staged: not pending yet */
    return walk->fn (walk->arg, be64_get (key->mv_data), value->mv_data, value->mv_size) ? 1 : 0;
}

int
outbox_foreach_from (outbox_t *self, uint64_t first_seq, outbox_fn *fn, void *arg, char *err,
                     size_t err_len)
{
    uint8_t first_key[KEY_LEN];
    be64_put (first_key, first_seq);
    MDB_val start = {KEY_LEN, first_key};
    batch_walk_t ctx = {fn, arg, self->stage_floor};
    return walk (self, self->batches, &start, walk_batch, &ctx, err, err_len);
}

typedef struct {
    outbox_lost_fn *fn;
    void *arg;
    outbox_alarm_t *alarm; /* when counting */
} lost_walk_t;

static int
walk_lost (void *ctx, const MDB_val *key, const MDB_val *value)
{
    lost_walk_t *walk = ctx;
    if (key->mv_size != KEY_LEN || value->mv_size != RANGE_VALUE_LEN)
        return -1;
    uint64_t first = be64_get (key->mv_data), last = be64_get (value->mv_data);
    int64_t raised_at = (int64_t)be64_get ((const uint8_t *)value->mv_data + KEY_LEN);
    if (last < first)
        return -1;
    if (walk->alarm) {
        walk->alarm->lost += last - first + 1;
        walk->alarm->ranges++;
        if (!walk->alarm->raised_at || raised_at < walk->alarm->raised_at)
            walk->alarm->raised_at = raised_at;
        return 0;
    }
    return walk->fn (walk->arg, first, last, raised_at) ? 1 : 0;
}

int
outbox_alarm (outbox_t *self, outbox_alarm_t *alarm, char *err, size_t err_len)
{
    *alarm = (outbox_alarm_t){0};
    if (!self->has_extras)
        return refuse_in_foreach (self, "outbox_alarm", err, err_len);
    lost_walk_t ctx = {NULL, NULL, alarm};
    return walk (self, self->lost, NULL, walk_lost, &ctx, err, err_len);
}

int
outbox_foreach_lost (outbox_t *self, outbox_lost_fn *fn, void *arg, char *err, size_t err_len)
{
    if (!self->has_extras)
        return refuse_in_foreach (self, "outbox_foreach_lost", err, err_len);
    lost_walk_t ctx = {fn, arg, NULL};
    return walk (self, self->lost, NULL, walk_lost, &ctx, err, err_len);
}

/* Reads a source value's label (and its counts, records and rejected, into counts when not NULL:
 * UINT64_MAX each when the source was put without them). The value's size was checked. */
static void
source_label (const MDB_val *value, char label[OUTBOX_SOURCE_MAX + 1], uint64_t counts[2])
{
    const uint8_t *text = (const uint8_t *)value->mv_data + RANGE_VALUE_LEN;
    size_t len = value->mv_size - RANGE_VALUE_LEN;
    const uint8_t *nul = memchr (text, '\0', len);
    if (counts)
        counts[0] = counts[1] = UINT64_MAX;
    if (nul && (size_t)(text + len - nul) == SOURCE_COUNTS_LEN) {
        if (counts) {
            counts[0] = be64_get (nul + 1);
            counts[1] = be64_get (nul + 1 + KEY_LEN);
        }
        len = (size_t)(nul - text);
    }
    if (len > OUTBOX_SOURCE_MAX)
        len = OUTBOX_SOURCE_MAX;
    memcpy (label, text, len);
    label[len] = '\0';
}

typedef struct {
    outbox_source_fn *fn;
    void *arg;
    uint64_t first, last;
} source_walk_t;

static int
walk_source (void *ctx, const MDB_val *key, const MDB_val *value)
{
    source_walk_t *walk = ctx;
    if (key->mv_size != KEY_LEN || value->mv_size < RANGE_VALUE_LEN ||
        value->mv_size > RANGE_VALUE_LEN + OUTBOX_SOURCE_MAX + SOURCE_COUNTS_LEN)
        return -1;
    uint64_t first = be64_get (key->mv_data), last = be64_get (value->mv_data);
    if (first > walk->last)
        return 1;
    if (last < walk->first)
        return 0;
    char label[OUTBOX_SOURCE_MAX + 1];
    source_label (value, label, NULL);
    int64_t put_at = (int64_t)be64_get ((const uint8_t *)value->mv_data + KEY_LEN);
    return walk->fn (walk->arg, label, first, last, put_at) ? 1 : 0;
}

int
outbox_foreach_source (outbox_t *self, uint64_t first, uint64_t last, outbox_source_fn *fn,
                       void *arg, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_foreach_source", err, err_len);
    if (rc || !self->has_extras)
        return rc;
    /* Sources never overlap (each put takes fresh seqs), so the only one starting before first
     * that can reach into the range is the last such: the walk starts at its key. */
    uint64_t start_seq = first;
    MDB_txn *txn;
    if ((rc = begin_read (self, &txn, err, err_len)) != 0)
        return rc;
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->sources, &cursor)) == 0) {
        uint8_t key_bytes[KEY_LEN];
        be64_put (key_bytes, first);
        MDB_val key = {KEY_LEN, key_bytes}, value;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
        if (rc == 0 && (key.mv_size != KEY_LEN || be64_get (key.mv_data) > first))
            rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
        else if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
        if (rc == 0 && key.mv_size == KEY_LEN && be64_get (key.mv_data) < first)
            start_seq = be64_get (key.mv_data);
        mdb_cursor_close (cursor);
    }
    mdb_txn_abort (txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: reading the sources failed: %s",
                     self->dir, mdb_strerror (rc));
    uint8_t start_bytes[KEY_LEN];
    be64_put (start_bytes, start_seq);
    MDB_val start = {KEY_LEN, start_bytes};
    source_walk_t ctx = {fn, arg, first, last};
    return walk (self, self->sources, &start, walk_source, &ctx, err, err_len);
}

int
outbox_clear_alarm (const char *dir, uint64_t *cleared, char *err, size_t err_len)
{
    if (cleared)
        *cleared = 0;
    if (check_exists (dir, err, err_len))
        return OUTBOX_ERR;
    outbox_t *self = outbox_alloc (dir, err, err_len);
    if (!self)
        return OUTBOX_ERR;
    /* No outbox.lock: the running agent holds it, and LMDB serialises the two writers. */
    int rc = open_env (self, 0, 0, err, err_len);
    MDB_txn *txn = NULL;
    if (rc == 0 && (rc = mdb_txn_begin (self->env, NULL, 0, &txn)) != 0)
        rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot begin a write transaction: %s", dir,
                   mdb_strerror (rc));
    if (rc == 0) {
        rc = mdb_dbi_open (txn, "lost", 0, &self->lost);
        if (rc == MDB_NOTFOUND)
            rc = 0; /* format 1: never had an alarm */
        else if (rc)
            rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot open the lost database: %s",
                       dir, mdb_strerror (rc));
        else {
            self->has_extras = true;
            outbox_alarm_t alarm = {0};
            MDB_cursor *cursor;
            MDB_val key, value;
            if ((rc = mdb_cursor_open (txn, self->lost, &cursor)) == 0) {
                lost_walk_t ctx = {NULL, NULL, &alarm};
                for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
                     rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT))
                    walk_lost (&ctx, &key, &value); /* a damaged range is cleared all the same */
                mdb_cursor_close (cursor);
            }
            /* Emptied, not deleted (0): the running agent's handle on it stays good. */
            if (rc == MDB_NOTFOUND)
                rc = mdb_drop (txn, self->lost, 0);
            if (rc == 0)
                rc = mdb_txn_commit (txn);
            else
                mdb_txn_abort (txn);
            txn = NULL;
            if (rc)
                rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot clear the alarm: %s", dir,
                           mdb_strerror (rc));
            else if (cleared)
                *cleared = alarm.lost;
        }
    }
    if (txn)
        mdb_txn_abort (txn);
    outbox_destroy (&self);
    return rc ? OUTBOX_ERR : 0;
}

/* ---------------------------------------------------------------- streaming a file in */

/* Deletes every batch from seq first on (a stage's), in txn. */
static int
delete_from (outbox_t *self, MDB_txn *txn, uint64_t first, char *err, size_t err_len)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->batches, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on batches", err, err_len);
    uint8_t key_bytes[KEY_LEN];
    /* Sought again after each delete, as prune_retained does: simple, and stages are short. */
    for (;;) {
        be64_put (key_bytes, first);
        MDB_val key = {KEY_LEN, key_bytes}, value;
        if ((rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE)) != 0)
            break;
        if ((rc = mdb_cursor_del (cursor, 0)) != 0)
            break;
    }
    mdb_cursor_close (cursor);
    if (rc != MDB_NOTFOUND)
        return step_fail (self, rc, "deleting staged batches", err, err_len);
    return 0;
}

static void
stage_free_items (outbox_t *self)
{
    for (size_t i = 0; i < self->stage.item_count; i++)
        free ((void *)self->stage.items[i].payload);
    self->stage.item_count = 0;
    self->stage.chunk_bytes = 0;
}

/* Writes the chunk held in memory, marking the stage on disk with its first chunk. */
static int
put_chunk (outbox_t *self, MDB_txn *txn, char *err, size_t err_len)
{
    uint8_t key_bytes[KEY_LEN];
    for (size_t i = 0; i < self->stage.item_count; i++) {
        be64_put (key_bytes, self->stage.items[i].seq);
        MDB_val key = {KEY_LEN, key_bytes};
        MDB_val value = {self->stage.items[i].size, (void *)self->stage.items[i].payload};
        int rc = mdb_put (txn, self->batches, &key, &value, MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: batch %" PRIu64 " is not above every stored batch; the "
                         "store and the seq high-water mark disagree",
                         self->dir, self->stage.items[i].seq);
        if (rc)
            return step_fail (self, rc, "storing a staged batch", err, err_len);
    }
    return 0;
}

static int
chunk_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    (void)ctx;
    int rc = put_chunk (self, txn, err, err_len);
    if (rc == 0 && self->stage_floor == UINT64_MAX)
        rc = put_meta_u64 (self, txn, META_STAGING, self->stage.first, err, err_len);
    return rc;
}

static int
flush_chunk (outbox_t *self, char *err, size_t err_len)
{
    if (self->stage.item_count == 0)
        return 0;
    int rc = run_write (self, chunk_step, NULL, err, err_len);
    if (rc)
        return rc;
    self->stage_floor = self->stage.first;
    stage_free_items (self);
    return 0;
}

typedef struct {
    uint64_t first;
} clean_t;

static int
clean_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    clean_t *clean = ctx;
    int rc = delete_from (self, txn, clean->first, err, err_len);
    if (rc)
        return rc;
    MDB_val key = {strlen (META_STAGING), META_STAGING};
    if ((rc = mdb_del (txn, self->meta, &key, NULL)) != 0 && rc != MDB_NOTFOUND)
        return step_fail (self, rc, "forgetting a stage", err, err_len);
    return 0;
}

/* Deletes what a stage left on disk, if anything. */
static int
clean_stage (outbox_t *self, char *err, size_t err_len)
{
    if (self->stage_floor == UINT64_MAX)
        return 0;
    clean_t clean = {self->stage_floor};
    int rc = run_write (self, clean_step, &clean, err, err_len);
    if (rc)
        return rc;
    self->stage_floor = UINT64_MAX;
    self->stage_left = false;
    return 0;
}

int
outbox_stage_begin (outbox_t *self, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_stage_begin", err, err_len);
    if (rc)
        return rc;
    if (self->readonly)
        return run_write (self, NULL, NULL, err, err_len);
    if (self->stage.open)
        return fail (err, err_len, OUTBOX_ERR_STAGE, "outbox %s: a stage is already open",
                     self->dir);
    if (self->stage_left && (rc = clean_stage (self, err, err_len)) != 0)
        return rc;
    stage_free_items (self);
    self->stage.open = true;
    self->stage.first = self->next_seq;
    self->stage.n = self->stage.bytes = self->stage.records = 0;
    return 0;
}

int
outbox_stage_add (outbox_t *self, uint64_t seq, const void *payload, size_t size, uint32_t records,
                  char *err, size_t err_len)
{
    if (!self->stage.open)
        return fail (err, err_len, OUTBOX_ERR_STAGE, "outbox %s: no stage is open", self->dir);
    uint64_t expected = self->stage.first + self->stage.n;
    if (expected == UINT64_MAX)
        return fail (err, err_len, OUTBOX_ERR_SEQ,
                     "outbox %s: batch sequence numbers are exhausted", self->dir);
    if (seq != expected)
        return fail (err, err_len, OUTBOX_ERR_SEQ,
                     "outbox %s: staged batch has seq %" PRIu64 " but the next seq is %" PRIu64,
                     self->dir, seq, expected);
    if (!payload || size == 0)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: batch %" PRIu64 " is empty", self->dir,
                     seq);
    if (size > self->max_bytes)
        return fail (err, err_len, OUTBOX_ERR_TOO_BIG,
                     "outbox %s: batch %" PRIu64 " is %zu bytes, more than the outbox's "
                     "max_bytes of %" PRIu64 "; it can never be stored, send smaller batches",
                     self->dir, seq, size, self->max_bytes);
    if (self->count >= self->max_batches || self->stage.n >= self->max_batches - self->count)
        return fail (err, err_len, OUTBOX_ERR_FULL,
                     "outbox %s is full: %zu batches pending and %" PRIu64
                     " of this file would pass the limit of %zu (max_batches)",
                     self->dir, self->count, self->stage.n + 1, self->max_batches);
    if (self->bytes > self->max_bytes || self->stage.bytes + size > self->max_bytes - self->bytes)
        return fail (err, err_len, OUTBOX_ERR_FULL,
                     "outbox %s is full: %" PRIu64 " bytes pending and %" PRIu64
                     " of this file would pass the limit of %" PRIu64 " (max_bytes)",
                     self->dir, self->bytes, self->stage.bytes + size, self->max_bytes);
    if (self->stage.item_count == self->stage.item_capacity) {
        size_t capacity = self->stage.item_capacity ? self->stage.item_capacity * 2 : 16;
        outbox_item_t *items = realloc (self->stage.items, capacity * sizeof *items);
        if (!items)
            return fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory", self->dir);
        self->stage.items = items;
        self->stage.item_capacity = capacity;
    }
    void *copy = malloc (size);
    if (!copy)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: out of memory", self->dir);
    memcpy (copy, payload, size);
    self->stage.items[self->stage.item_count++] = (outbox_item_t){seq, copy, size};
    self->stage.chunk_bytes += size;
    self->stage.n++;
    self->stage.bytes += size;
    self->stage.records += records;
    if (self->stage.chunk_bytes >= OUTBOX_STAGE_CHUNK)
        return flush_chunk (self, err, err_len);
    return 0;
}

uint64_t
outbox_stage_batches (outbox_t *self)
{
    return self->stage.open ? self->stage.n : 0;
}

uint64_t
outbox_stage_bytes (outbox_t *self)
{
    return self->stage.open ? self->stage.bytes : 0;
}

/* Writes a files record. */
static int
put_file (outbox_t *self, MDB_txn *txn, const outbox_file_t *file, char *err, size_t err_len)
{
    size_t name_len = label_len (file->name);
    size_t target_len = label_len (file->target ? file->target : "");
    if (name_len == 0)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: a file record needs a name", self->dir);
    uint8_t value_bytes[FILE_VALUE_LEN + OUTBOX_SOURCE_MAX], *at = value_bytes;
    const file_identity_t *id = &file->identity;
    uint64_t head[6] = {file->held ? FILE_HELD : 0, id->size, (uint64_t)id->mtime_ns,
                        (uint64_t)id->ctime_ns,     id->dev,  id->ino};
    for (size_t i = 0; i < 6; i++, at += 8)
        be64_put (at, head[i]);
    memcpy (at, id->hash, FILE_IDENTITY_HASH_BYTES);
    at += FILE_IDENTITY_HASH_BYTES;
    uint64_t tail[5] = {(uint64_t)file->taken_at, file->first_seq, file->last_seq, file->records,
                        file->rejected};
    for (size_t i = 0; i < 5; i++, at += 8)
        be64_put (at, tail[i]);
    memcpy (at, file->target ? file->target : "", target_len);
    MDB_val key = {name_len, (void *)file->name},
            value = {FILE_VALUE_LEN + target_len, value_bytes};
    int rc = mdb_put (txn, self->files, &key, &value, 0);
    if (rc)
        return step_fail (self, rc, "remembering a file taken", err, err_len);
    return 0;
}

typedef struct {
    outbox_file_t file;
    prune_t prune;
    size_t sources_dropped;
} commit_t;

static int
commit_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    commit_t *commit = ctx;
    int rc = put_chunk (self, txn, err, err_len);
    if (rc)
        return rc;
    uint64_t n = self->stage.n;
    /* stage_add kept pending plus staged within the limits (an outbox reopened with lower limits
     * may be over them: then no room is made, as nothing could be added). */
    size_t used_count = self->count + (size_t)n;
    uint64_t used_bytes = self->bytes + self->stage.bytes;
    commit->prune = (prune_t){
        .acked_before = INT64_MIN,
        .max_count = used_count <= self->max_batches ? self->max_batches - used_count : SIZE_MAX,
        .max_bytes = used_bytes <= self->max_bytes ? self->max_bytes - used_bytes : UINT64_MAX};
    if ((rc = prune_retained (self, txn, &commit->prune, err, err_len)) != 0)
        return rc;
    commit->sources_dropped = 0;
    if (n) {
        uint64_t last = self->stage.first + n - 1;
        uint64_t counts[2] = {commit->file.records, commit->file.rejected};
        if ((rc = put_meta_u64 (self, txn, META_NEXT_SEQ, last + 1, err, err_len)) != 0 ||
            (rc = put_source (self, txn, self->stage.first, last, commit->file.name, counts,
                              &commit->sources_dropped, err, err_len)) != 0)
            return rc;
    }
    if ((rc = put_file (self, txn, &commit->file, err, err_len)) != 0)
        return rc;
    MDB_val key = {strlen (META_STAGING), META_STAGING};
    if ((rc = mdb_del (txn, self->meta, &key, NULL)) != 0 && rc != MDB_NOTFOUND)
        return step_fail (self, rc, "closing the stage", err, err_len);
    return 0;
}

int
outbox_stage_commit (outbox_t *self, const outbox_file_t *file, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_stage_commit", err, err_len);
    if (rc)
        return rc;
    if (!self->stage.open)
        return fail (err, err_len, OUTBOX_ERR_STAGE, "outbox %s: no stage is open", self->dir);
    commit_t commit = {.file = *file};
    commit.file.first_seq = self->stage.n ? self->stage.first : 0;
    commit.file.last_seq = self->stage.n ? self->stage.first + self->stage.n - 1 : 0;
    commit.file.records = self->stage.records;
    if ((rc = run_write (self, commit_step, &commit, err, err_len)) != 0)
        return rc;
    self->count += (size_t)self->stage.n;
    self->bytes += self->stage.bytes;
    self->next_seq += self->stage.n;
    apply_prune (self, &commit.prune);
    self->pruned_for_room += commit.prune.pruned;
    if (self->stage.n)
        self->sources_count = self->sources_count + 1 - commit.sources_dropped;
    stage_free_items (self);
    self->stage.open = false;
    self->stage_floor = UINT64_MAX;
    return 0;
}

int
outbox_stage_abort (outbox_t *self, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_stage_abort", err, err_len);
    if (rc)
        return rc;
    stage_free_items (self);
    self->stage.open = false;
    if (self->stage_floor == UINT64_MAX)
        return 0;
    if ((rc = clean_stage (self, err, err_len)) != 0)
        self->stage_left = true; /* hidden by stage_floor until the next begin deletes it */
    return rc;
}

/* ---------------------------------------------------------------- files taken */

static int
file_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    return put_file (self, txn, ctx, err, err_len);
}

static int
files_ready (outbox_t *self, const char *what, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, what, err, err_len);
    if (rc == 0 && !self->has_files)
        rc = fail (err, err_len, OUTBOX_ERR, "outbox %s: written by an older agent (no files)",
                   self->dir);
    return rc;
}

int
outbox_file_remember (outbox_t *self, const outbox_file_t *file, char *err, size_t err_len)
{
    int rc = files_ready (self, "outbox_file_remember", err, err_len);
    if (rc)
        return rc;
    return run_write (self, file_step, (void *)file, err, err_len);
}

static int
forget_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    const char *name = ctx;
    MDB_val key = {label_len (name), (void *)name};
    int rc = mdb_del (txn, self->files, &key, NULL);
    if (rc == MDB_NOTFOUND)
        return STEP_NOTHING;
    if (rc)
        return step_fail (self, rc, "forgetting a file", err, err_len);
    return 0;
}

int
outbox_file_forget (outbox_t *self, const char *name, char *err, size_t err_len)
{
    int rc = files_ready (self, "outbox_file_forget", err, err_len);
    if (rc || !*name)
        return rc;
    return run_write (self, forget_step, (void *)name, err, err_len);
}

typedef struct {
    outbox_file_fn *fn;
    void *arg;
} file_walk_t;

static int
walk_file (void *ctx, const MDB_val *key, const MDB_val *value)
{
    file_walk_t *walk = ctx;
    if (key->mv_size == 0 || key->mv_size > OUTBOX_SOURCE_MAX || value->mv_size < FILE_VALUE_LEN ||
        value->mv_size > FILE_VALUE_LEN + OUTBOX_SOURCE_MAX)
        return -1;
    char name[OUTBOX_SOURCE_MAX + 1], target[OUTBOX_SOURCE_MAX + 1];
    memcpy (name, key->mv_data, key->mv_size);
    name[key->mv_size] = '\0';
    const uint8_t *at = value->mv_data;
    size_t target_len = value->mv_size - FILE_VALUE_LEN;
    memcpy (target, at + FILE_VALUE_LEN, target_len);
    target[target_len] = '\0';
    outbox_file_t file = {.name = name, .target = target};
    file.held = (be64_get (at) & FILE_HELD) != 0;
    file.identity.size = be64_get (at + 8);
    file.identity.mtime_ns = (int64_t)be64_get (at + 16);
    file.identity.ctime_ns = (int64_t)be64_get (at + 24);
    file.identity.dev = be64_get (at + 32);
    file.identity.ino = be64_get (at + 40);
    memcpy (file.identity.hash, at + 48, FILE_IDENTITY_HASH_BYTES);
    at += 48 + FILE_IDENTITY_HASH_BYTES;
    file.taken_at = (int64_t)be64_get (at);
    file.first_seq = be64_get (at + 8);
    file.last_seq = be64_get (at + 16);
    file.records = be64_get (at + 24);
    file.rejected = be64_get (at + 32);
    return walk->fn (walk->arg, &file) ? 1 : 0;
}

int
outbox_foreach_file (outbox_t *self, outbox_file_fn *fn, void *arg, char *err, size_t err_len)
{
    if (!self->has_files)
        return refuse_in_foreach (self, "outbox_foreach_file", err, err_len);
    file_walk_t ctx = {fn, arg};
    return walk (self, self->files, NULL, walk_file, &ctx, err, err_len);
}

/* ---------------------------------------------------------------- delivery facts */

void
outbox_on_delivered (outbox_t *self, outbox_delivered_fn *fn, void *arg)
{
    self->on_delivered = fn;
    self->delivered_arg = arg;
}

int64_t
outbox_last_ack_at (outbox_t *self)
{
    return self->last_ack_at;
}

/* The source holding seq (its key and value in *key, *value), in txn: MDB_NOTFOUND when none. */
static int
source_of (outbox_t *self, MDB_cursor *cursor, uint64_t seq, MDB_val *key, MDB_val *value)
{
    uint8_t key_bytes[KEY_LEN];
    be64_put (key_bytes, seq);
    *key = (MDB_val){KEY_LEN, key_bytes};
    int rc = mdb_cursor_get (cursor, key, value, MDB_SET_RANGE);
    if (rc == 0 && (key->mv_size != KEY_LEN || be64_get (key->mv_data) > seq))
        rc = mdb_cursor_get (cursor, key, value, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get (cursor, key, value, MDB_LAST);
    if (rc)
        return rc;
    (void)self;
    if (key->mv_size != KEY_LEN || value->mv_size < RANGE_VALUE_LEN ||
        value->mv_size > RANGE_VALUE_LEN + OUTBOX_SOURCE_MAX + SOURCE_COUNTS_LEN ||
        be64_get (key->mv_data) > seq || be64_get (value->mv_data) < seq)
        return MDB_NOTFOUND;
    return 0;
}

/* After an ack: the sources of seqs[0..n) with no batch pending any more are reported. */
static void
report_delivered (outbox_t *self, uint64_t *seqs, size_t n)
{
    if (!self->has_extras)
        return;
    qsort (seqs, n, sizeof *seqs, seq_compare);
    MDB_txn *txn;
    if (begin_read (self, &txn, NULL, 0))
        return;
    MDB_cursor *sources = NULL, *batches = NULL;
    if (mdb_cursor_open (txn, self->sources, &sources) ||
        mdb_cursor_open (txn, self->batches, &batches))
        goto out;
    uint64_t done_to = 0; /* seqs up to here belong to a source already looked at */
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] <= done_to && done_to)
            continue;
        MDB_val key, value;
        if (source_of (self, sources, seqs[i], &key, &value))
            continue;
        uint64_t first = be64_get (key.mv_data), last = be64_get (value.mv_data);
        done_to = last;
        char label[OUTBOX_SOURCE_MAX + 1];
        uint64_t counts[2];
        source_label (&value, label, counts);
        int64_t put_at = (int64_t)be64_get ((const uint8_t *)value.mv_data + KEY_LEN);
        uint8_t first_bytes[KEY_LEN];
        be64_put (first_bytes, first);
        MDB_val at = {KEY_LEN, first_bytes}, payload;
        int rc = mdb_cursor_get (batches, &at, &payload, MDB_SET_RANGE);
        if (rc == 0 && at.mv_size == KEY_LEN && be64_get (at.mv_data) <= last)
            continue; /* some of it is still pending */
        if (rc != 0 && rc != MDB_NOTFOUND)
            continue;
        self->on_delivered (self->delivered_arg, label, first, last, put_at, counts[0], counts[1]);
    }
out:
    if (batches)
        mdb_cursor_close (batches);
    if (sources)
        mdb_cursor_close (sources);
    mdb_txn_abort (txn);
}

int
outbox_oldest_pending_at (outbox_t *self, int64_t *put_at, char *err, size_t err_len)
{
    *put_at = 0;
    int rc = refuse_in_foreach (self, "outbox_oldest_pending_at", err, err_len);
    if (rc || self->count == 0 || !self->has_extras)
        return rc;
    MDB_txn *txn;
    if ((rc = begin_read (self, &txn, err, err_len)) != 0)
        return rc;
    MDB_cursor *cursor;
    MDB_val key, value;
    if ((rc = mdb_cursor_open (txn, self->batches, &cursor)) == 0) {
        rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
        uint64_t seq = rc == 0 && key.mv_size == KEY_LEN ? be64_get (key.mv_data) : 0;
        mdb_cursor_close (cursor);
        if (rc == 0 && seq && (rc = mdb_cursor_open (txn, self->sources, &cursor)) == 0) {
            if (source_of (self, cursor, seq, &key, &value) == 0)
                *put_at = (int64_t)be64_get ((const uint8_t *)value.mv_data + KEY_LEN);
            mdb_cursor_close (cursor);
        }
    }
    mdb_txn_abort (txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: reading the oldest batch failed: %s",
                     self->dir, mdb_strerror (rc));
    return 0;
}
