/* test_support: helpers for tests; aborts on allocation failure because a test cannot go on. */
#define _XOPEN_SOURCE 700
#include "test_support.h"

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_checksum.h"

static void *
must (void *pointer)
{
    if (!pointer) {
        fprintf (stderr, "test_support: out of memory\n");
        abort ();
    }
    return pointer;
}

char *
test_tmpdir (const char *tag)
{
    const char *base = getenv ("TOTALPLACE_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir (base, 0700);
    size_t len = strlen (base) + strlen (tag) + 16;
    char *path = must (malloc (len));
    snprintf (path, len, "%s/%s.XXXXXX", base, tag);
    if (!mkdtemp (path)) {
        perror ("mkdtemp");
        abort ();
    }
    return path;
}

static int
remove_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove (path);
}

void
test_rmtree (const char *path)
{
    nftw (path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

store_t *
test_store_new (const char *dir, const store_options_t *options)
{
    store_options_t opened = options ? *options : (store_options_t){0};
    opened.path = dir;
    char err[STORE_ERR_LEN];
    store_t *store = NULL;
    if (store_init (dir, NULL, err, sizeof err) == 0)
        store = store_new (&opened, NULL, err, sizeof err);
    if (!store) {
        fprintf (stderr, "test_support: cannot make a store in %s: %s\n", dir, err);
        abort ();
    }
    return store;
}

void
test_store_remove (store_t **store_p, char **dir_p)
{
    store_destroy (store_p);
    if (*dir_p) {
        test_rmtree (*dir_p);
        free (*dir_p);
        *dir_p = NULL;
    }
}

Totalplace__SpendingRecord *
test_record (const char *body_id, const char *record_id, uint32_t revision,
             const char *neighbourhood, const char *service, const char *period,
             int64_t amount_pence, bool poolable)
{
    Totalplace__SpendingRecord *record = must (malloc (sizeof *record));
    totalplace__spending_record__init (record);
    record->body_id = must (strdup (body_id));
    record->record_id = must (strdup (record_id));
    record->revision = revision;
    record->neighbourhood = must (strdup (neighbourhood));
    record->service = must (strdup (service));
    record->period = must (strdup (period));
    record->amount_pence = amount_pence;
    record->poolable = poolable;
    record->supplier = must (strdup ("ACME SUPPLIES LTD"));
    record->description = must (strdup (""));
    return record;
}

Totalplace__SpendingRecord *
test_record_copy (const Totalplace__SpendingRecord *source)
{
    Totalplace__SpendingRecord *record =
        test_record (source->body_id, source->record_id, source->revision, source->neighbourhood,
                     source->service, source->period, source->amount_pence, source->poolable);
    free (record->supplier);
    free (record->description);
    record->supplier = must (strdup (source->supplier));
    record->description = must (strdup (source->description));
    record->withdrawn = source->withdrawn;
    return record;
}

void
test_record_free (Totalplace__SpendingRecord **record_p)
{
    if (*record_p)
        protobuf_c_message_free_unpacked (&(*record_p)->base, NULL);
    *record_p = NULL;
}

Totalplace__Batch *
test_batch_new (const char *agent_id, uint64_t batch_seq)
{
    Totalplace__Batch *batch = must (malloc (sizeof *batch));
    totalplace__batch__init (batch);
    batch->agent_id = must (strdup (agent_id));
    batch->batch_seq = batch_seq;
    return batch;
}

void
test_batch_add (Totalplace__Batch *batch, Totalplace__SpendingRecord *record)
{
    batch->records =
        must (realloc (batch->records, (batch->n_records + 1) * sizeof *batch->records));
    batch->records[batch->n_records++] = record;
}

void
test_batch_free (Totalplace__Batch **batch_p)
{
    if (*batch_p)
        protobuf_c_message_free_unpacked (&(*batch_p)->base, NULL);
    *batch_p = NULL;
}

/* ---------------------------------------------------------------- raw store access */

typedef struct {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
} raw_t;

static void
raw_check (int rc, const char *what)
{
    if (rc) {
        fprintf (stderr, "test_support: %s: %s\n", what, mdb_strerror (rc));
        abort ();
    }
}

static raw_t
raw_open (const char *dir, const char *database)
{
    raw_t raw;
    raw_check (mdb_env_create (&raw.env), "mdb_env_create");
    mdb_env_set_maxdbs (raw.env, 8);
    raw_check (mdb_env_open (raw.env, dir, 0, 0600), dir);
    raw_check (mdb_txn_begin (raw.env, NULL, 0, &raw.txn), "mdb_txn_begin");
    raw_check (mdb_dbi_open (raw.txn, database, 0, &raw.dbi), database);
    return raw;
}

static void
raw_close (raw_t *raw)
{
    raw_check (mdb_txn_commit (raw->txn), "mdb_txn_commit");
    mdb_env_close (raw->env);
}

static store_db_t
raw_database (const char *database)
{
    for (store_db_t db = 0; db < STORE_DB_COUNT; db++)
        if (strcmp (store_db_name (db), database) == 0)
            return db;
    fprintf (stderr, "test_support: no database %s in a store\n", database);
    abort ();
}

void
test_raw_put (const char *dir, const char *database, const void *key, size_t key_len,
              const void *payload, size_t len, bool sealed)
{
    unsigned char *bytes = must (malloc (len + STORE_CHECKSUM_BYTES + 1));
    memcpy (bytes, payload, len);
    if (sealed) {
        store_checksum_key_t hash_key;
        store_checksum_key (raw_database (database), key, key_len, &hash_key);
        store_checksum_seal (&hash_key, bytes, len);
        len += STORE_CHECKSUM_BYTES;
    }
    raw_t raw = raw_open (dir, database);
    MDB_val k = {key_len, (void *)key}, v = {len, bytes};
    raw_check (mdb_put (raw.txn, raw.dbi, &k, &v, 0), "mdb_put");
    raw_close (&raw);
    free (bytes);
}

size_t
test_raw_get (const char *dir, const char *database, const void *key, size_t key_len, void *out,
              size_t out_len)
{
    raw_t raw = raw_open (dir, database);
    MDB_val k = {key_len, (void *)key}, v = {0, NULL};
    int rc = mdb_get (raw.txn, raw.dbi, &k, &v);
    if (rc != MDB_NOTFOUND)
        raw_check (rc, "mdb_get");
    if (v.mv_size > out_len) {
        fprintf (stderr, "test_support: a value of %zu bytes does not fit %zu\n", v.mv_size,
                 out_len);
        abort ();
    }
    if (rc == 0)
        memcpy (out, v.mv_data, v.mv_size);
    raw_close (&raw);
    return rc == 0 ? v.mv_size : 0;
}

size_t
test_store_key (const char *dir, const char *database, const char *words, unsigned char *out,
                size_t out_len)
{
    store_options_t options = {.path = dir, .read_only = true};
    char err[STORE_ERR_LEN];
    store_t *store = store_new (&options, NULL, err, sizeof err);
    size_t len = 0;
    if (!store || store_key_from_text (store, raw_database (database), words, out, out_len, &len,
                                       err, sizeof err)) {
        fprintf (stderr, "test_support: no key \"%s\" of %s in %s: %s\n", words, database, dir,
                 err);
        abort ();
    }
    store_destroy (&store);
    return len;
}

void
test_raw_del (const char *dir, const char *database, const void *key, size_t key_len)
{
    raw_t raw = raw_open (dir, database);
    MDB_val k = {key_len, (void *)key};
    raw_check (mdb_del (raw.txn, raw.dbi, &k, NULL), "mdb_del");
    raw_close (&raw);
}
