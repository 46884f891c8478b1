/* tp_format1: test tool that writes a store of format 1 (the layout before texts were interned:
 * keys of texts joined by the unit separator, records as packed protobuf, totals as two native
 * int64, every value followed by its checksum) holding what a store of the current format holds:
 * the same records, agents' marks, counters and identity, and the totals format 1 kept (per cell
 * and per neighbourhood, from the live records). So the upgrade can be tested without the old
 * binary: a store made by the real collector, written back as format 1, upgraded, must be the
 * store it was. Checked once against stores the format 1 collector itself wrote
 * (docs/performance.md, "Store format 2").
 *
 * Usage: tp_format1 FROM_DIR TO_DIR   (TO_DIR new or empty)
 * Exit status 0 when done, 1 when anything fails (the message says why), 2 for a wrong command
 * line. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "store_checksum.h"

typedef struct {
    char *key; /* a total's key, text joined by the unit separator */
    int64_t amount_pence;
} piece_t;

typedef struct {
    MDB_txn *txn;
    MDB_dbi records, cells, neighbourhoods, agents, meta;
    store_snapshot_t *snapshot;
    piece_t *pieces; /* a live record's cell and neighbourhood keys, summed at the end */
    size_t piece_count, piece_capacity;
    int failed;
} writer_t;

static int
put (writer_t *w, MDB_dbi dbi, store_db_t db, const void *key, size_t key_len, const void *payload,
     size_t len)
{
    unsigned char *bytes = malloc (len + STORE_CHECKSUM_BYTES);
    if (!bytes)
        return ENOMEM;
    memcpy (bytes, payload, len);
    store_checksum_key_t hash_key;
    store_checksum_key (db, key, key_len, &hash_key);
    store_checksum_seal (&hash_key, bytes, len);
    MDB_val k = {key_len, (void *)key}, v = {len + STORE_CHECKSUM_BYTES, bytes};
    int rc = mdb_put (w->txn, dbi, &k, &v, 0);
    free (bytes);
    if (rc)
        fprintf (stderr, "tp_format1: cannot write %s: %s\n", store_db_name (db),
                 mdb_strerror (rc));
    return rc;
}

static int
add_piece (writer_t *w, const char *key, int64_t amount)
{
    if (w->piece_count == w->piece_capacity) {
        size_t capacity = w->piece_capacity ? w->piece_capacity * 2 : 1024;
        piece_t *pieces = realloc (w->pieces, capacity * sizeof *pieces);
        if (!pieces)
            return ENOMEM;
        w->pieces = pieces;
        w->piece_capacity = capacity;
    }
    w->pieces[w->piece_count].key = strdup (key);
    w->pieces[w->piece_count++].amount_pence = amount;
    return w->pieces[w->piece_count - 1].key ? 0 : ENOMEM;
}

static int
on_record (void *arg, const store_entry_t *entry)
{
    writer_t *w = arg;
    Totalplace__SpendingRecord *record;
    char err[STORE_ERR_LEN];
    if (store_snapshot_record (w->snapshot, entry, &record, err, sizeof err)) {
        fprintf (stderr, "tp_format1: %s\n", err);
        return w->failed = 1;
    }
    char key[1024];
    int len = snprintf (key, sizeof key, "%s\x1f%s", record->body_id, record->record_id);
    size_t packed_len = protobuf_c_message_get_packed_size (&record->base);
    uint8_t *packed = malloc (packed_len ? packed_len : 1);
    int rc = packed ? 0 : ENOMEM;
    if (rc == 0) {
        protobuf_c_message_pack (&record->base, packed);
        rc = put (w, w->records, STORE_DB_RECORDS, key, (size_t)len, packed, packed_len);
    }
    free (packed);
    if (rc == 0 && !record->withdrawn) {
        snprintf (key, sizeof key, "%s\x1f%s\x1f%s\x1f%s\x1f%s", record->period,
                  record->neighbourhood, record->body_id, record->service,
                  record->poolable ? "Y" : "N");
        rc = add_piece (w, key, record->amount_pence);
        if (rc == 0) {
            /* A neighbourhood's key: the code after a prefix no cell key has. */
            snprintf (key, sizeof key, "\x01%s", record->neighbourhood);
            rc = add_piece (w, key, record->amount_pence);
        }
    }
    protobuf_c_message_free_unpacked (&record->base, NULL);
    if (rc)
        w->failed = 1;
    return rc;
}

static int
compare_pieces (const void *a, const void *b)
{
    return strcmp (((const piece_t *)a)->key, ((const piece_t *)b)->key);
}

/* The totals of format 1: each key's sum and count, written once. */
static int
write_totals (writer_t *w)
{
    if (w->piece_count)
        qsort (w->pieces, w->piece_count, sizeof *w->pieces, compare_pieces);
    for (size_t i = 0; i < w->piece_count;) {
        int64_t total[2] = {0, 0}; /* amount, records: format 1's store_amount_t */
        size_t j = i;
        for (; j < w->piece_count && strcmp (w->pieces[j].key, w->pieces[i].key) == 0; j++) {
            total[0] += w->pieces[j].amount_pence;
            total[1]++;
        }
        const char *key = w->pieces[i].key;
        int rc = key[0] == '\x01'
                     ? put (w, w->neighbourhoods, STORE_DB_NEIGHBOURHOODS, key + 1,
                            strlen (key + 1), total, sizeof total)
                     : put (w, w->cells, STORE_DB_CELLS, key, strlen (key), total, sizeof total);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

static int
on_agent (void *arg, const store_agent_t *agent)
{
    writer_t *w = arg;
    uint64_t value[3] = {agent->last_batch_seq, agent->batches, (uint64_t)agent->last_seen};
    if (put (w, w->agents, STORE_DB_AGENTS, agent->agent_id, strlen (agent->agent_id), value,
             sizeof value))
        w->failed = 1;
    return w->failed;
}

static int
write_meta (writer_t *w, store_t *store)
{
    char err[STORE_ERR_LEN], created[32];
    store_identity_t identity;
    store_counters_t counters;
    store_identity (store, &identity);
    if (store_counters (store, &counters, err, sizeof err)) {
        fprintf (stderr, "tp_format1: %s\n", err);
        return 1;
    }
    snprintf (created, sizeof created, "%lld", (long long)identity.created);
    int rc = put (w, w->meta, STORE_DB_META, "format", 6, "1", 1);
    if (rc == 0)
        rc = put (w, w->meta, STORE_DB_META, "store_id", 8, identity.store_id,
                  strlen (identity.store_id));
    if (rc == 0)
        rc = put (w, w->meta, STORE_DB_META, "created", 7, created, strlen (created));
    /* Format 1 wrote its counters with the first batch. */
    uint64_t value[6] = {counters.batches,    counters.accepted, counters.duplicate,
                         counters.superseded, counters.stale,    counters.rejected};
    if (rc == 0 && counters.batches)
        rc = put (w, w->meta, STORE_DB_META, "counters", 8, value, sizeof value);
    return rc;
}

int
main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: tp_format1 FROM_DIR TO_DIR\n");
        return 2;
    }
    if (mkdir (argv[2], 0700) != 0 && errno != EEXIST) {
        fprintf (stderr, "tp_format1: cannot create %s: %s\n", argv[2], strerror (errno));
        return 1;
    }
    store_options_t options = {.path = argv[1], .read_only = true};
    char err[STORE_ERR_LEN];
    store_t *store = store_new (&options, NULL, err, sizeof err);
    if (!store) {
        fprintf (stderr, "tp_format1: %s\n", err);
        return 1;
    }
    writer_t w = {0};
    MDB_env *env;
    int rc = mdb_env_create (&env);
    if (rc == 0) {
        mdb_env_set_maxdbs (env, 8);
        mdb_env_set_mapsize (env, (size_t)16 << 30);
        rc = mdb_env_open (env, argv[2], 0, 0600);
    }
    if (rc == 0)
        rc = mdb_txn_begin (env, NULL, 0, &w.txn);
    const char *names[] = {"records", "cells", "neighbourhoods", "agents", "meta"};
    MDB_dbi *dbis[] = {&w.records, &w.cells, &w.neighbourhoods, &w.agents, &w.meta};
    for (int i = 0; rc == 0 && i < 5; i++)
        rc = mdb_dbi_open (w.txn, names[i], MDB_CREATE, dbis[i]);
    if (rc) {
        fprintf (stderr, "tp_format1: cannot make a store in %s: %s\n", argv[2], mdb_strerror (rc));
        return 1;
    }
    w.snapshot = store_snapshot_new (store, err, sizeof err);
    if (!w.snapshot ||
        store_snapshot_scan (w.snapshot, STORE_DB_RECORDS, on_record, &w, err, sizeof err) ||
        w.failed) {
        fprintf (stderr, "tp_format1: cannot read the records of %s: %s\n", argv[1], err);
        return 1;
    }
    store_snapshot_destroy (&w.snapshot);
    rc = write_totals (&w);
    if (rc == 0 && (store_agents (store, on_agent, &w, err, sizeof err) || w.failed))
        rc = 1;
    if (rc == 0)
        rc = write_meta (&w, store);
    if (rc == 0)
        rc = mdb_txn_commit (w.txn);
    else
        mdb_txn_abort (w.txn);
    mdb_env_close (env);
    store_destroy (&store);
    for (size_t i = 0; i < w.piece_count; i++)
        free (w.pieces[i].key);
    free (w.pieces);
    if (rc) {
        fprintf (stderr, "tp_format1: cannot write the store in %s\n", argv[2]);
        return 1;
    }
    return 0;
}
