/* store_upgrade: format 1 to the current format, beside the old store, verified, then swapped. */
#define _GNU_SOURCE /* renameat2 */
#include "err_text.h"
#include "store_upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmdb_file.h"
#include "store_checksum.h"
#include "store_verify.h"

/* Format 1, frozen: keys are texts joined by the unit separator; values are their payload, then
 * the checksum (the same as in the current format). What this file reads of it: */
#define V1_SEPARATOR '\x1f'
typedef struct {
    int64_t amount_pence, records;
} v1_amount_t;
typedef struct {
    uint64_t last_batch_seq, batches;
    int64_t last_seen;
} v1_agent_t;
typedef struct {
    uint64_t batches, accepted, duplicate, superseded, stale, rejected;
} v1_counters_t;

/* Records moved per transaction of the new store. */
#define CHUNK_RECORDS 50000

#define fail(err, err_len, code, ...) err_text (err, err_len, code, __VA_ARGS__)

/* folder/name into out (PATH_MAX bytes); false when it does not fit (the store's path is checked
 * to leave room for every name used here). */
static bool
path_in (char *out, const char *folder, const char *name)
{
    return (size_t)snprintf (out, PATH_MAX, "%s/%s", folder, name) < PATH_MAX;
}

static double
now_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
file_bytes (const char *folder)
{
    char path[PATH_MAX];
    struct stat st;
    return path_in (path, folder, "data.mdb") && stat (path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ---------------------------------------------------------------- the old store */

typedef struct {
    const char *path;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records, neighbourhoods, agents, meta;
} old_t;

/* LMDB holds a shared lock on the first byte of lock.mdb in every process that has the store
 * open: if this one cannot take it exclusively, a collector or a reader has it. */
static int
refuse_in_use (const char *path, char *err, size_t err_len)
{
    char lock_path[PATH_MAX];
    int fd = path_in (lock_path, path, "lock.mdb") ? open (lock_path, O_RDWR | O_CLOEXEC) : -1;
    if (fd < 0)
        return 0; /* no lock file: nobody has it open */
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int rc = fcntl (fd, F_SETLK, &lock);
    close (fd);
    if (rc == 0)
        return 0;
    return fail (err, err_len, STORE_ERR,
                 "the store in %s is in use by another process (a collector, or a totalplace "
                 "command reading it): stop the collector (systemctl stop totalplace-collector) "
                 "and let readers finish, then upgrade",
                 path);
}

/* Checks the checksum of an old value; payload is what lies before it. */
static int
old_payload (const old_t *old, store_db_t db, const MDB_val *key, const MDB_val *value, size_t size,
             MDB_val *payload, char *err, size_t err_len)
{
    store_checksum_key_t hash_key;
    size_t len;
    *payload = (MDB_val){0, NULL};
    store_checksum_key (db, key->mv_data, key->mv_size, &hash_key);
    if (store_checksum_open (&hash_key, value->mv_data, value->mv_size, &len) == 0 &&
        (size == 0 || len == size)) {
        *payload = (MDB_val){len, value->mv_data};
        return 0;
    }
    char key_text[160];
    return fail (err, err_len, STORE_ERR_DAMAGED,
                 "the store in %s is damaged: the value of key \"%s\" in database \"%s\" fails "
                 "its checksum or has the wrong size; nothing was changed. Restore it from a "
                 "backup (docs/operations.md), then upgrade",
                 old->path, store_key_text (key->mv_data, key->mv_size, key_text, sizeof key_text),
                 store_db_name (db));
}

static int
old_meta (const old_t *old, const char *name, char *out, size_t out_len, char *err, size_t err_len)
{
    MDB_val key = {strlen (name), (void *)name}, value, payload;
    int rc = mdb_get (old->txn, old->meta, &key, &value);
    if (rc == MDB_NOTFOUND) {
        *out = '\0';
        return 0;
    }
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot read the store in %s: %s", old->path,
                     mdb_strerror (rc));
    if ((rc = old_payload (old, STORE_DB_META, &key, &value, 0, &payload, err, err_len)) != 0)
        return rc;
    if (payload.mv_size >= out_len)
        return fail (err, err_len, STORE_ERR_DAMAGED,
                     "the store in %s is damaged: its %s is too long", old->path, name);
    memcpy (out, payload.mv_data, payload.mv_size);
    out[payload.mv_size] = '\0';
    return 0;
}

static void
old_close (old_t *old)
{
    if (old->txn)
        mdb_txn_abort (old->txn);
    old->txn = NULL;
    if (old->env)
        mdb_env_close (old->env);
    old->env = NULL;
}

/* Opens the old store read-only and reads its format and identity. */
static int
old_open (old_t *old, store_identity_t *identity, char *err, size_t err_len)
{
    int rc = mdb_env_create (&old->env);
    if (rc == 0) {
        mdb_env_set_maxdbs (old->env, 8);
        rc = mdb_env_open (old->env, old->path, MDB_RDONLY | MDB_NOTLS, 0600);
    }
    if (rc == 0)
        rc = mdb_txn_begin (old->env, NULL, MDB_RDONLY, &old->txn);
    if (rc == 0)
        rc = mdb_dbi_open (old->txn, "meta", 0, &old->meta);
    if (rc)
        return fail (err, err_len, rc == MDB_NOTFOUND ? STORE_ERR_FORMAT : STORE_ERR,
                     "cannot open the store in %s: %s", old->path,
                     rc == MDB_NOTFOUND ? "it is not a totalplace store" : mdb_strerror (rc));
    char format[32], store_id[64], created[32];
    if ((rc = old_meta (old, "format", format, sizeof format, err, err_len)) != 0 ||
        (rc = old_meta (old, "store_id", store_id, sizeof store_id, err, err_len)) != 0 ||
        (rc = old_meta (old, "created", created, sizeof created, err, err_len)) != 0)
        return rc;
    char *end;
    unsigned long number = strtoul (format, &end, 10);
    if (!*format)
        return fail (err, err_len, STORE_ERR_FORMAT,
                     "the store in %s has no identity (format 0): it cannot be upgraded. Create "
                     "a new store (`totalplace-collector init --state-dir NEW_DIR`) and drop the "
                     "agents' source files into their inboxes again (docs/operations.md)",
                     old->path);
    if (*end)
        return fail (err, err_len, STORE_ERR_DAMAGED,
                     "the store in %s is damaged: its format version is unreadable", old->path);
    identity->format = (uint32_t)number;
    if (number != 1)
        return 0; /* the caller decides */
    long long seconds = strtoll (created, &end, 10);
    if (strlen (store_id) != STORE_ID_HEX_LEN - 1 || !*created || *end)
        return fail (err, err_len, STORE_ERR_DAMAGED,
                     "the store in %s is damaged: its identity (store id, creation time) is "
                     "unreadable; restore it from a backup (docs/operations.md)",
                     old->path);
    memcpy (identity->store_id, store_id, STORE_ID_HEX_LEN);
    identity->created = seconds;
    const char *names[] = {"records", "neighbourhoods", "agents"};
    MDB_dbi *dbis[] = {&old->records, &old->neighbourhoods, &old->agents};
    for (int i = 0; i < 3; i++)
        if ((rc = mdb_dbi_open (old->txn, names[i], 0, dbis[i])) != 0)
            return fail (err, err_len, STORE_ERR_FORMAT,
                         "the store in %s has no \"%s\" database: it is not a format 1 store",
                         old->path, names[i]);
    return 0;
}

/* ---------------------------------------------------------------- moving the records */

typedef struct {
    Totalplace__SpendingRecord *records[CHUNK_RECORDS];
    store_result_t results[CHUNK_RECORDS];
    size_t count;
} chunk_t;

static void
chunk_clear (chunk_t *chunk)
{
    for (size_t i = 0; i < chunk->count; i++)
        totalplace__spending_record__free_unpacked (chunk->records[i], NULL);
    chunk->count = 0;
}

/* Applies the chunk's records to the new store: each must be accepted (the old store holds each
 * key once). */
static int
chunk_import (store_t *store, chunk_t *chunk, const char *path, char *err, size_t err_len)
{
    Totalplace__Batch batch = TOTALPLACE__BATCH__INIT;
    batch.agent_id = "";
    batch.n_records = chunk->count;
    batch.records = chunk->records;
    Totalplace__Batch *batches[1] = {&batch};
    store_result_t *results[1] = {chunk->results};
    memset (chunk->results, 0, chunk->count * sizeof *chunk->results);
    int rc = store_import (store, batches, 1, results, err, err_len);
    for (size_t i = 0; rc == 0 && i < chunk->count; i++)
        if (chunk->results[i].outcome != STORE_ACCEPTED)
            rc = fail (err, err_len, STORE_ERR_DAMAGED,
                       "record %.64s/%.128s of the store in %s was not taken by the new store "
                       "(%s%s%s); nothing was changed",
                       chunk->records[i]->body_id, chunk->records[i]->record_id, path,
                       store_outcome_name (chunk->results[i].outcome),
                       *chunk->results[i].reason ? ": " : "", chunk->results[i].reason);
    chunk_clear (chunk);
    return rc;
}

static int
move_records (old_t *old, store_t *store, store_upgrade_progress_fn *progress, void *arg,
              uint64_t *moved, char *err, size_t err_len)
{
    MDB_stat stat;
    mdb_stat (old->txn, old->records, &stat);
    chunk_t *chunk = calloc (1, sizeof *chunk);
    MDB_cursor *cursor = NULL;
    int rc = chunk ? mdb_cursor_open (old->txn, old->records, &cursor) : ENOMEM;
    if (rc) {
        free (chunk);
        return fail (err, err_len, STORE_ERR, "cannot read the records of %s: %s", old->path,
                     mdb_strerror (rc));
    }
    MDB_val key, value, payload;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        int failed = old_payload (old, STORE_DB_RECORDS, &key, &value, 0, &payload, err, err_len);
        if (failed) {
            rc = failed;
            break;
        }
        Totalplace__SpendingRecord *record =
            totalplace__spending_record__unpack (NULL, payload.mv_size, payload.mv_data);
        size_t body_len = record ? strlen (record->body_id) : 0;
        char key_text[160];
        if (!record || key.mv_size != body_len + 1 + strlen (record->record_id) ||
            memcmp (key.mv_data, record->body_id, body_len) != 0 ||
            ((const char *)key.mv_data)[body_len] != V1_SEPARATOR) {
            if (record)
                totalplace__spending_record__free_unpacked (record, NULL);
            rc = fail (err, err_len, STORE_ERR_DAMAGED,
                       "the store in %s is damaged: the record at key \"%s\" does not decode or "
                       "is not its key's; nothing was changed. Restore it from a backup",
                       old->path,
                       store_key_text (key.mv_data, key.mv_size, key_text, sizeof key_text));
            break;
        }
        chunk->records[chunk->count++] = record;
        if (chunk->count == CHUNK_RECORDS) {
            *moved += chunk->count;
            if ((rc = chunk_import (store, chunk, old->path, err, err_len)) != 0)
                break;
            if (progress)
                progress (arg, *moved, stat.ms_entries);
        }
    }
    if (rc == MDB_NOTFOUND) {
        *moved += chunk->count;
        rc = chunk->count ? chunk_import (store, chunk, old->path, err, err_len) : 0;
    }
    else if (rc > 0 || rc < -1000)
        rc = fail (err, err_len, STORE_ERR, "cannot read the records of %s: %s", old->path,
                   mdb_strerror (rc));
    chunk_clear (chunk);
    mdb_cursor_close (cursor);
    free (chunk);
    return rc;
}

/* The agents' marks and the counters, as they were. */
static int
move_books (old_t *old, store_t *store, uint64_t *agent_count, char *err, size_t err_len)
{
    MDB_val key = {8, "counters"}, value, payload;
    v1_counters_t counters = {0};
    int rc = mdb_get (old->txn, old->meta, &key, &value);
    if (rc == 0) {
        if ((rc = old_payload (old, STORE_DB_META, &key, &value, sizeof counters, &payload, err,
                               err_len)) != 0)
            return rc;
        memcpy (&counters, payload.mv_data, sizeof counters);
    }
    else if (rc != MDB_NOTFOUND)
        return fail (err, err_len, STORE_ERR, "cannot read the counters of %s: %s", old->path,
                     mdb_strerror (rc));
    MDB_stat stat;
    mdb_stat (old->txn, old->agents, &stat);
    store_agent_t *agents = calloc (stat.ms_entries + 1, sizeof *agents);
    char *ids = calloc (stat.ms_entries + 1, 512);
    MDB_cursor *cursor = NULL;
    size_t count = 0;
    rc = agents && ids ? mdb_cursor_open (old->txn, old->agents, &cursor) : ENOMEM;
    if (rc == 0) {
        for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
             rc == 0 && count < stat.ms_entries;
             rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
            v1_agent_t agent;
            int failed = old_payload (old, STORE_DB_AGENTS, &key, &value, sizeof agent, &payload,
                                      err, err_len);
            if (failed || key.mv_size >= 512) {
                rc = failed ? failed
                            : fail (err, err_len, STORE_ERR_DAMAGED,
                                    "an agent id of %s is too long", old->path);
                break;
            }
            memcpy (&agent, payload.mv_data, sizeof agent);
            char *id = ids + 512 * count;
            memcpy (id, key.mv_data, key.mv_size);
            agents[count++] =
                (store_agent_t){id, agent.last_batch_seq, agent.batches, agent.last_seen};
        }
        if (rc == MDB_NOTFOUND || (rc == 0 && count == stat.ms_entries))
            rc = 0;
        mdb_cursor_close (cursor);
    }
    if (rc > 0 || rc < -1000)
        rc = fail (err, err_len, STORE_ERR, "cannot read the agents of %s: %s", old->path,
                   mdb_strerror (rc));
    if (rc == 0) {
        store_counters_t books = {.batches = counters.batches,
                                  .accepted = counters.accepted,
                                  .duplicate = counters.duplicate,
                                  .superseded = counters.superseded,
                                  .stale = counters.stale,
                                  .rejected = counters.rejected};
        rc = store_import_books (store, agents, count, &books, err, err_len);
        *agent_count = count;
    }
    free (agents);
    free (ids);
    return rc;
}

/* ---------------------------------------------------------------- checking the new store */

typedef struct {
    char code[64];
    store_amount_t amount;
} total_row_t;

typedef struct {
    total_row_t *rows;
    size_t count, capacity;
} total_rows_t;

static int
add_row (void *arg, const char *key, store_amount_t amount)
{
    total_rows_t *rows = arg;
    if (rows->count == rows->capacity) {
        size_t capacity = rows->capacity ? rows->capacity * 2 : 1024;
        total_row_t *grown = realloc (rows->rows, capacity * sizeof *grown);
        if (!grown)
            return 1;
        rows->rows = grown;
        rows->capacity = capacity;
    }
    total_row_t *row = &rows->rows[rows->count++];
    snprintf (row->code, sizeof row->code, "%s", key);
    row->amount = amount;
    return 0;
}

static int
compare_rows (const void *a, const void *b)
{
    return strcmp (((const total_row_t *)a)->code, ((const total_row_t *)b)->code);
}

/* The new store's per-neighbourhood totals, made from the records, must be the old store's. */
static int
compare_neighbourhoods (old_t *old, store_t *store, uint64_t *compared, char *err, size_t err_len)
{
    total_rows_t made = {0}, kept = {0};
    int rc = store_neighbourhoods (store, add_row, &made, err, err_len);
    MDB_cursor *cursor = NULL;
    if (rc == 0)
        rc = mdb_cursor_open (old->txn, old->neighbourhoods, &cursor);
    MDB_val key, value, payload;
    for (int got = rc == 0 ? mdb_cursor_get (cursor, &key, &value, MDB_FIRST) : MDB_NOTFOUND;
         got == 0 && rc == 0; got = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        v1_amount_t amount;
        char code[64];
        rc = old_payload (old, STORE_DB_NEIGHBOURHOODS, &key, &value, sizeof amount, &payload, err,
                          err_len);
        if (rc == 0) {
            memcpy (&amount, payload.mv_data, sizeof amount);
            snprintf (code, sizeof code, "%.*s", (int)(key.mv_size < 63 ? key.mv_size : 63),
                      (const char *)key.mv_data);
            rc = add_row (&kept, code, (store_amount_t){amount.amount_pence, amount.records});
        }
    }
    if (cursor)
        mdb_cursor_close (cursor);
    if (rc == 0) {
        if (made.count)
            qsort (made.rows, made.count, sizeof *made.rows, compare_rows);
        if (kept.count)
            qsort (kept.rows, kept.count, sizeof *kept.rows, compare_rows);
        for (size_t i = 0; rc == 0 && i < made.count && i < kept.count; i++)
            if (strcmp (made.rows[i].code, kept.rows[i].code) ||
                made.rows[i].amount.amount_pence != kept.rows[i].amount.amount_pence ||
                made.rows[i].amount.records != kept.rows[i].amount.records)
                rc =
                    fail (err, err_len, STORE_ERR_DAMAGED,
                          "the totals of the store in %s disagree with its records (neighbourhood "
                          "%s stored %lld pence in %lld records; its records make %s: %lld in "
                          "%lld); nothing was changed. Restore it from a backup",
                          old->path, kept.rows[i].code, (long long)kept.rows[i].amount.amount_pence,
                          (long long)kept.rows[i].amount.records, made.rows[i].code,
                          (long long)made.rows[i].amount.amount_pence,
                          (long long)made.rows[i].amount.records);
        if (rc == 0 && made.count != kept.count)
            rc = fail (err, err_len, STORE_ERR_DAMAGED,
                       "the store in %s holds %zu neighbourhood totals, its records make %zu; "
                       "nothing was changed. Restore it from a backup",
                       old->path, kept.count, made.count);
        *compared = kept.count;
    }
    free (made.rows);
    free (kept.rows);
    return rc;
}

static int
verify_new (store_t *store, const char *path, char *err, size_t err_len)
{
    store_verify_summary_t summary;
    int rc = store_verify (store, 0, NULL, NULL, &summary, err, err_len);
    if (rc)
        return rc;
    if (summary.findings)
        return fail (err, err_len, STORE_ERR_DAMAGED,
                     "the store made from %s does not verify (%llu findings); nothing was changed",
                     path, (unsigned long long)summary.findings);
    return 0;
}

/* ---------------------------------------------------------------- the swap */

/* Whether the filesystem of folder exchanges two names atomically, tried on two empty files. */
static int
check_exchange (const char *folder, char *err, size_t err_len)
{
    char a[PATH_MAX], b[PATH_MAX];
    if (!path_in (a, folder, "exchange-a") || !path_in (b, folder, "exchange-b"))
        return fail (err, err_len, STORE_ERR, "store path %.64s... is too long", folder);
    int fa = open (a, O_CREAT | O_WRONLY | O_CLOEXEC, 0600),
        fb = open (b, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    int rc = fa >= 0 && fb >= 0 ? renameat2 (AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) : -1;
    int saved = errno;
    if (fa >= 0)
        close (fa);
    if (fb >= 0)
        close (fb);
    unlink (a);
    unlink (b);
    if (rc == 0)
        return 0;
    return fail (err, err_len, STORE_ERR,
                 "the filesystem of %s cannot exchange two files atomically (%s): upgrade a copy "
                 "of the store on ext4, XFS or btrfs",
                 folder, strerror (saved));
}

/* Exchanges the old and the new data.mdb, then names the folder now holding the old one. */
static int
swap_in (const char *path, const char *building, char *kept, size_t kept_len, char *err,
         size_t err_len)
{
    char old_file[PATH_MAX], new_file[PATH_MAX], lock[PATH_MAX];
    if (!path_in (old_file, path, "data.mdb") || !path_in (new_file, building, "data.mdb") ||
        !path_in (lock, building, "lock.mdb"))
        return fail (err, err_len, STORE_ERR, "store path %.64s... is too long", path);
    unlink (lock); /* the new store's, made while it was built */
    if (store_sync_folder (building) != 0 ||
        renameat2 (AT_FDCWD, new_file, AT_FDCWD, old_file, RENAME_EXCHANGE) != 0)
        return fail (err, err_len, STORE_ERR, "cannot swap the new store into %s: %s", path,
                     strerror (errno));
    /* From here the store in path is the new one. */
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    char stamp[32];
    strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    char name[64];
    snprintf (name, sizeof name, "format-1-%s", stamp);
    if (kept_len < PATH_MAX || !path_in (kept, path, name) ||
        renameat2 (AT_FDCWD, building, AT_FDCWD, kept, RENAME_NOREPLACE) != 0)
        memcpy (kept, building, strlen (building) + 1);
    store_sync_folder (path);
    return 0;
}

static void
remove_building (const char *building)
{
    const char *names[] = {"data.mdb", "lock.mdb", "exchange-a", "exchange-b"};
    char file[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (path_in (file, building, names[i]))
            unlink (file);
    rmdir (building);
}

/* ---------------------------------------------------------------- the whole */

int
store_upgrade (const char *path, store_upgrade_progress_fn *progress, void *arg,
               store_upgrade_report_t *report, char *err, size_t err_len)
{
    double started = now_seconds ();
    *report = (store_upgrade_report_t){0};
    char data[PATH_MAX], building[PATH_MAX];
    if ((size_t)snprintf (data, sizeof data, "%s/data.mdb", path) >= sizeof data ||
        (size_t)snprintf (building, sizeof building, "%s/.upgrade-XXXXXX", path) >= sizeof building)
        return fail (err, err_len, STORE_ERR, "store path %.64s... is too long", path);
    char why[PATH_MAX + 256];
    int rc = lmdb_file_check (data, NULL, why, sizeof why);
    if (rc == LMDB_FILE_MISSING)
        return fail (err, err_len, STORE_ERR_NOSTORE, "no store in %s to upgrade", path);
    if (rc)
        return fail (err, err_len, rc == LMDB_FILE_IO ? STORE_ERR : STORE_ERR_DAMAGED,
                     "the store in %s cannot be upgraded: %s", path, why);
    if ((rc = refuse_in_use (path, err, err_len)) != 0)
        return rc;
    report->old_bytes = file_bytes (path);

    old_t old = {.path = path};
    rc = old_open (&old, &report->identity, err, err_len);
    if (rc == 0 && report->identity.format == STORE_FORMAT_VERSION) {
        old_close (&old);
        store_options_t options = {.path = path, .read_only = true};
        store_t *store = store_new (&options, &rc, err, err_len);
        if (store)
            store_identity (store, &report->identity);
        store_destroy (&store);
        report->already = rc == 0;
        report->new_bytes = report->old_bytes;
        return rc;
    }
    if (rc == 0 && report->identity.format != 1)
        rc = fail (err, err_len, STORE_ERR_FORMAT,
                   "the store in %s is of format %u: this totalplace upgrades format 1 only (it "
                   "uses format %d)%s",
                   path, (unsigned)report->identity.format, STORE_FORMAT_VERSION,
                   report->identity.format > STORE_FORMAT_VERSION ? "; upgrade totalplace" : "");
    if (rc) {
        old_close (&old);
        return rc;
    }

    if (!mkdtemp (building)) {
        old_close (&old);
        return fail (err, err_len, STORE_ERR, "cannot create a folder in %s: %s", path,
                     strerror (errno));
    }
    store_t *store = NULL;
    rc = check_exchange (building, err, err_len);
    if (rc == 0)
        rc = store_init_as (building, &report->identity, err, err_len);
    if (rc == 0) {
        store_options_t options = {.path = building,
                                   .map_size = report->old_bytes > ((size_t)1 << 30)
                                                   ? (size_t)report->old_bytes
                                                   : (size_t)1 << 30};
        store = store_new (&options, &rc, err, err_len);
    }
    if (rc == 0)
        rc = move_records (&old, store, progress, arg, &report->records, err, err_len);
    if (rc == 0)
        rc = move_books (&old, store, &report->agents, err, err_len);
    if (rc == 0)
        rc = compare_neighbourhoods (&old, store, &report->neighbourhoods, err, err_len);
    if (rc == 0)
        rc = verify_new (store, path, err, err_len);
    if (store)
        store_identity (store, &report->identity);
    store_destroy (&store);
    old_close (&old);
    if (rc == 0) {
        report->new_bytes = file_bytes (building);
        rc = swap_in (path, building, report->kept, sizeof report->kept, err, err_len);
    }
    if (rc)
        remove_building (building);
    report->seconds = now_seconds () - started;
    return rc;
}
