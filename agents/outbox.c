/* outbox: encoded batches held durably in LMDB from before they are sent until they are acked. */
#include "outbox.h"

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
#include <unistd.h>

/* Keys are the seq as 8 big-endian bytes, so LMDB's default memcmp order is seq order. Not
 * MDB_INTEGERKEY: that wants a native unsigned int or size_t, which would tie the file to the
 * host's byte order and word size, and mdb_dump would show keys backwards. Because a seq is never
 * reused and always above every stored one, each put can use MDB_APPEND, which also catches a key
 * that is not the largest (MDB_KEYEXIST). */
#define KEY_LEN 8

/* The "meta" database holds the file format and the seq high-water mark. */
#define META_FORMAT   "format"
#define META_NEXT_SEQ "next_seq"
#define FORMAT        1

#define MIB           (UINT64_C (1) << 20)
#define MIN_MAP_SIZE  MIB
#define MAP_HEADROOM  (64 * MIB)
#define MAX_MAX_BYTES (UINT64_C (1) << 40)
/* The map may grow to this many times the size derived from max_bytes. Live data never exceeds
 * max_bytes plus B-tree pages, so growth only answers free-space fragmentation (payloads over a
 * page need runs of free pages); a bound stops a bug from eating the disk. */
#define MAP_CEILING_FACTOR 4

/* What a write step asks of run_write besides success or an error. */
#define STEP_MAP_FULL 1 /* the map filled: abort, grow the map and run the step again */
#define STEP_NOTHING  2 /* nothing to change: abort instead of committing, report success */

struct _outbox_t {
    char *dir;
    int lock_fd;
    MDB_env *env;
    MDB_dbi batches;
    MDB_dbi meta;
    size_t max_batches;
    uint64_t max_bytes;
    size_t map_size;
    size_t map_ceiling;
    /* Kept equal to the store: recounted at open, updated after each commit. Only this process
     * writes (outbox.lock), so memory cannot drift from disk. */
    size_t count;
    uint64_t bytes;
    uint64_t next_seq;
    bool in_foreach;
};

typedef int (write_step_fn) (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len);

static int fail (char *err, size_t err_len, int code, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
fail (char *err, size_t err_len, int code, const char *format, ...)
{
    if (err && err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, err_len, format, args);
        va_end (args);
    }
    return code;
}

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

/* Runs step in a write transaction and commits it durably, growing the map and running the step
 * again when the map fills. The caller updates its in-memory state only after this returns 0. */
static int
run_write (outbox_t *self, write_step_fn *step, void *ctx, char *err, size_t err_len)
{
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
            return fail (err, err_len, OUTBOX_ERR, "outbox %s: commit failed: %s", self->dir,
                         mdb_strerror (rc));
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

/* State found by the open step, applied to self once the transaction has committed. */
typedef struct {
    size_t count;
    uint64_t bytes;
    uint64_t next_seq;
} load_t;

static int
load_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    load_t *load = ctx;
    *load = (load_t){0, 0, 1};
    /* Refuse an LMDB store that is something else (say the collector's, given by mistake)
     * before creating anything in it: an outbox's main database names only its two databases. */
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
        bool known = (key.mv_size == 7 && memcmp (key.mv_data, "batches", 7) == 0) ||
                     (key.mv_size == 4 && memcmp (key.mv_data, "meta", 4) == 0);
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

    rc = mdb_dbi_open (txn, "batches", MDB_CREATE, &self->batches);
    if (rc)
        return step_fail (self, rc, "opening the batches database", err, err_len);
    rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta);
    if (rc)
        return step_fail (self, rc, "opening the meta database", err, err_len);

    key = (MDB_val){strlen (META_NEXT_SEQ), META_NEXT_SEQ};
    rc = mdb_get (txn, self->meta, &key, &value);
    bool has_next_seq = rc == 0;
    if (rc == 0) {
        if (value.mv_size != KEY_LEN)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: its stored next_seq is %zu bytes, not 8; the files are "
                         "damaged or not an outbox",
                         self->dir, value.mv_size);
        load->next_seq = be64_get (value.mv_data);
    }
    else if (rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading next_seq", err, err_len);

    rc = mdb_cursor_open (txn, self->batches, &cursor);
    if (rc)
        return step_fail (self, rc, "opening a cursor on batches", err, err_len);
    uint64_t last = 0;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        uint64_t seq = key.mv_size == KEY_LEN ? be64_get (key.mv_data) : 0;
        if (seq == 0) {
            mdb_cursor_close (cursor);
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: a stored key is not a batch sequence number; the files are "
                         "damaged or not an outbox",
                         self->dir);
        }
        last = seq;
        load->count++;
        load->bytes += value.mv_size;
    }
    mdb_cursor_close (cursor);
    if (rc != MDB_NOTFOUND)
        return step_fail (self, rc, "reading the stored batches", err, err_len);
    /* Never hand out a seq at or below one stored, whatever the meta says. */
    if (last >= load->next_seq)
        load->next_seq = last + 1;

    uint8_t format_bytes[KEY_LEN];
    key = (MDB_val){strlen (META_FORMAT), META_FORMAT};
    rc = mdb_get (txn, self->meta, &key, &value);
    if (rc == MDB_NOTFOUND) {
        if (load->count || has_next_seq)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: the LMDB store there has no outbox format marker; it is "
                         "not an outbox",
                         self->dir);
        be64_put (format_bytes, FORMAT);
        value = (MDB_val){KEY_LEN, format_bytes};
        rc = mdb_put (txn, self->meta, &key, &value, 0);
        if (rc)
            return step_fail (self, rc, "writing the format marker", err, err_len);
    }
    else if (rc)
        return step_fail (self, rc, "reading the format marker", err, err_len);
    else if (value.mv_size != KEY_LEN || be64_get (value.mv_data) != FORMAT)
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox %s: stored in a format this agent does not know (expected %d); "
                     "use the agent version that wrote it to drain it",
                     self->dir, FORMAT);
    return 0;
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

outbox_t *
outbox_new (const char *dir, const outbox_limits_t *limits, char *err, size_t err_len)
{
    if (!dir || !*dir) {
        fail (err, err_len, OUTBOX_ERR, "no outbox folder given");
        return NULL;
    }
    outbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, OUTBOX_ERR, "out of memory");
        return NULL;
    }
    self->lock_fd = -1;
    self->dir = strdup (dir);
    if (!self->dir) {
        fail (err, err_len, OUTBOX_ERR, "out of memory");
        goto err;
    }
    if (set_limits (self, limits, err, err_len) || make_dirs (dir, err, err_len) ||
        take_lock (self, err, err_len))
        goto err;

    int rc = mdb_env_create (&self->env);
    if (rc) {
        fail (err, err_len, OUTBOX_ERR, "outbox %s: mdb_env_create failed: %s", dir,
              mdb_strerror (rc));
        goto err;
    }
    if ((rc = mdb_env_set_maxdbs (self->env, 2)) != 0 ||
        (rc = mdb_env_set_mapsize (self->env, self->map_size)) != 0) {
        fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot configure LMDB: %s", dir,
              mdb_strerror (rc));
        goto err;
    }
    /* No MDB_NOSYNC / MDB_NOMETASYNC: a put must be on disk before the batch is sent. */
    rc = mdb_env_open (self->env, dir, 0, 0600);
    if (rc) {
        fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot open the LMDB store: %s", dir,
              mdb_strerror (rc));
        goto err;
    }
    /* A killed agent can leave its reader slot behind; free it so it pins no old pages. */
    int dead = 0;
    rc = mdb_reader_check (self->env, &dead);
    if (rc) {
        fail (err, err_len, OUTBOX_ERR, "outbox %s: mdb_reader_check failed: %s", dir,
              mdb_strerror (rc));
        goto err;
    }
    if (refresh_map_size (self, err, err_len))
        goto err;
    if (self->map_ceiling < self->map_size)
        self->map_ceiling = self->map_size;

    load_t load = {0}; /* Release builds cannot see that run_write fills it on success */
    if (run_write (self, load_step, &load, err, err_len))
        goto err;
    self->count = load.count;
    self->bytes = load.bytes;
    self->next_seq = load.next_seq;
    if (fsync_dir (dir, err, err_len))
        goto err;
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
    return self->count < self->max_batches && self->bytes <= self->max_bytes &&
           (uint64_t)bytes_needed <= self->max_bytes - self->bytes;
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

typedef struct {
    const outbox_item_t *items;
    size_t n;
} put_t;

static int
put_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    put_t *put = ctx;
    uint8_t key_bytes[KEY_LEN];
    for (size_t i = 0; i < put->n; i++) {
        be64_put (key_bytes, put->items[i].seq);
        MDB_val key = {KEY_LEN, key_bytes};
        MDB_val value = {put->items[i].size, (void *)put->items[i].payload};
        int rc = mdb_put (txn, self->batches, &key, &value, MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            return fail (err, err_len, OUTBOX_ERR,
                         "outbox %s: batch %" PRIu64 " is not above every stored batch; the "
                         "store and the seq high-water mark disagree",
                         self->dir, put->items[i].seq);
        if (rc)
            return step_fail (self, rc, "storing a batch", err, err_len);
    }
    be64_put (key_bytes, put->items[put->n - 1].seq + 1);
    MDB_val key = {strlen (META_NEXT_SEQ), META_NEXT_SEQ};
    MDB_val value = {KEY_LEN, key_bytes};
    int rc = mdb_put (txn, self->meta, &key, &value, 0);
    if (rc)
        return step_fail (self, rc, "storing next_seq", err, err_len);
    return 0;
}

int
outbox_put_many (outbox_t *self, const outbox_item_t *items, size_t n, char *err, size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_put", err, err_len);
    if (rc || n == 0)
        return rc;
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

    put_t put = {items, n};
    rc = run_write (self, put_step, &put, err, err_len);
    if (rc)
        return rc;
    self->count += n;
    self->bytes += total;
    self->next_seq += n;
    return 0;
}

int
outbox_put (outbox_t *self, uint64_t seq, const void *payload, size_t size, char *err,
            size_t err_len)
{
    outbox_item_t item = {seq, payload, size};
    return outbox_put_many (self, &item, 1, err, err_len);
}

typedef struct {
    uint64_t seq;
    bool existed;
    size_t size;
} remove_t;

static int
remove_step (outbox_t *self, MDB_txn *txn, void *ctx, char *err, size_t err_len)
{
    remove_t *remove = ctx;
    uint8_t key_bytes[KEY_LEN];
    be64_put (key_bytes, remove->seq);
    MDB_val key = {KEY_LEN, key_bytes}, value;
    int rc = mdb_get (txn, self->batches, &key, &value);
    if (rc == MDB_NOTFOUND) {
        remove->existed = false;
        return STEP_NOTHING;
    }
    if (rc)
        return step_fail (self, rc, "looking up a batch to remove", err, err_len);
    remove->existed = true;
    remove->size = value.mv_size;
    rc = mdb_del (txn, self->batches, &key, NULL);
    if (rc)
        return step_fail (self, rc, "removing a batch", err, err_len);
    return 0;
}

int
outbox_remove (outbox_t *self, uint64_t seq, bool *existed, char *err, size_t err_len)
{
    if (existed)
        *existed = false;
    int rc = refuse_in_foreach (self, "outbox_remove", err, err_len);
    if (rc)
        return rc;
    remove_t remove = {seq, false, 0};
    rc = run_write (self, remove_step, &remove, err, err_len);
    if (rc)
        return rc;
    if (remove.existed) {
        self->count--;
        self->bytes -= remove.size;
    }
    if (existed)
        *existed = remove.existed;
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
    rc = mdb_get (txn, self->batches, &key, &value);
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

int
outbox_foreach_from (outbox_t *self, uint64_t first_seq, outbox_fn *fn, void *arg, char *err,
                     size_t err_len)
{
    int rc = refuse_in_foreach (self, "outbox_foreach", err, err_len);
    if (rc)
        return rc;
    MDB_txn *txn;
    if ((rc = begin_read (self, &txn, err, err_len)) != 0)
        return rc;
    MDB_cursor *cursor;
    rc = mdb_cursor_open (txn, self->batches, &cursor);
    if (rc) {
        mdb_txn_abort (txn);
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: cannot open a cursor: %s", self->dir,
                     mdb_strerror (rc));
    }
    self->in_foreach = true;
    bool bad_key = false;
    uint8_t first_key[KEY_LEN];
    be64_put (first_key, first_seq);
    MDB_val key = {KEY_LEN, first_key}, value;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size != KEY_LEN) {
            bad_key = true;
            break;
        }
        if (fn (arg, be64_get (key.mv_data), value.mv_data, value.mv_size) != 0) {
            rc = MDB_NOTFOUND;
            break;
        }
    }
    self->in_foreach = false;
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    if (bad_key)
        return fail (err, err_len, OUTBOX_ERR,
                     "outbox %s: a stored key is not a batch sequence number; the files are "
                     "damaged or not an outbox",
                     self->dir);
    if (rc != MDB_NOTFOUND)
        return fail (err, err_len, OUTBOX_ERR, "outbox %s: walking the batches failed: %s",
                     self->dir, mdb_strerror (rc));
    return 0;
}
