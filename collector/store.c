/* store: records and per-neighbourhood totals in one LMDB environment, changed only together. */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <czmq.h>

#include "period.h"

/* Key layout (see docs/architecture.md). Fields are joined by the ASCII unit separator, which
 * wire_validate_record forbids inside any field, so keys split back unambiguously and a prefix
 * "E01000001<US>" selects exactly one neighbourhood's cells, all on neighbouring pages.
 *   records:        body_id US record_id              -> packed SpendingRecord
 *   cells:          neighbourhood US body_id US service US period US Y|N -> store_amount_t
 *   neighbourhoods: neighbourhood                     -> store_amount_t
 *   agents:         agent_id                          -> agent_value_t
 *   meta:           "counters"                        -> counters_value_t */
#define KEY_SEPARATOR '\x1f'
#define CELL_FIELDS 5
#define MAX_KEY_BYTES 511 /* LMDB's default maximum key size */

#define DEFAULT_MAP_SIZE ((size_t) 1 << 30)
#define DEFAULT_MAX_MAP_SIZE ((size_t) 1 << 40)

typedef struct {
    uint64_t last_batch_seq;
    uint64_t batches;
    int64_t last_seen;
} agent_value_t;

typedef struct {
    uint64_t batches, accepted, duplicate, superseded, stale, rejected;
} counters_value_t;

static const char COUNTERS_KEY[] = "counters";

struct _store_t {
    MDB_env *env;
    MDB_dbi records, cells, neighbourhoods, agents, meta;
    bool read_only;
    size_t max_map_size;
    /* Readers hold it shared for the life of a read transaction; growing the map takes it
     * exclusively, because LMDB requires no live transaction in this process while resizing. */
    pthread_rwlock_t resize_lock;
};

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

const char *
store_outcome_name (store_outcome_t outcome)
{
    switch (outcome) {
    case STORE_PENDING:
        return "pending";
    case STORE_ACCEPTED:
        return "accepted";
    case STORE_DUPLICATE:
        return "duplicate";
    case STORE_SUPERSEDED:
        return "superseded";
    case STORE_STALE:
        return "stale";
    case STORE_REJECTED:
        return "rejected";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- opening and closing */

static int
open_databases (store_t *self, char *err, size_t err_len)
{
    MDB_txn *txn;
    unsigned int txn_flags = self->read_only ? MDB_RDONLY : 0;
    unsigned int db_flags = self->read_only ? 0 : MDB_CREATE;
    int rc = mdb_txn_begin (self->env, NULL, txn_flags, &txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot begin transaction: %s", mdb_strerror (rc));
    struct {
        const char *name;
        MDB_dbi *dbi;
    } databases[] = {{"records", &self->records},
                     {"cells", &self->cells},
                     {"neighbourhoods", &self->neighbourhoods},
                     {"agents", &self->agents},
                     {"meta", &self->meta}};
    for (size_t i = 0; i < sizeof databases / sizeof databases[0]; i++) {
        rc = mdb_dbi_open (txn, databases[i].name, db_flags, databases[i].dbi);
        if (rc) {
            mdb_txn_abort (txn);
            return fail (err, err_len, STORE_ERR, "cannot open database \"%s\": %s%s",
                         databases[i].name, mdb_strerror (rc),
                         rc == MDB_NOTFOUND ? " (is this a totalplace store?)" : "");
        }
    }
    rc = mdb_txn_commit (txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot commit database creation: %s",
                     mdb_strerror (rc));
    return 0;
}

store_t *
store_new (const store_options_t *options, char *err, size_t err_len)
{
    if (!options || !options->path || !*options->path) {
        fail (err, err_len, STORE_ERR, "store path is missing");
        return NULL;
    }
    store_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, STORE_ERR, "out of memory");
        return NULL;
    }
    self->read_only = options->read_only;
    self->max_map_size = options->max_map_size ? options->max_map_size : DEFAULT_MAX_MAP_SIZE;
    size_t map_size = options->map_size ? options->map_size : DEFAULT_MAP_SIZE;
    if (map_size > self->max_map_size)
        self->max_map_size = map_size;
    if (pthread_rwlock_init (&self->resize_lock, NULL) != 0) {
        free (self);
        fail (err, err_len, STORE_ERR, "cannot create lock");
        return NULL;
    }

    if (!self->read_only && mkdir (options->path, 0700) != 0 && errno != EEXIST) {
        fail (err, err_len, STORE_ERR, "cannot create store folder %s: %s", options->path,
              strerror (errno));
        goto err_lock;
    }
    int rc = mdb_env_create (&self->env);
    if (rc) {
        fail (err, err_len, STORE_ERR, "cannot create LMDB environment: %s", mdb_strerror (rc));
        goto err_lock;
    }
    mdb_env_set_maxdbs (self->env, 8);
    mdb_env_set_mapsize (self->env, map_size);
    unsigned int flags = MDB_NOTLS;
    if (self->read_only)
        flags |= MDB_RDONLY;
    if (options->no_sync)
        flags |= MDB_NOSYNC;
    rc = mdb_env_open (self->env, options->path, flags, 0600);
    if (rc) {
        fail (err, err_len, STORE_ERR, "cannot open store in %s: %s", options->path,
              mdb_strerror (rc));
        goto err_env;
    }
    /* A reader adopts the map size the writer recorded, so counters report the store's own. */
    if (self->read_only)
        mdb_env_set_mapsize (self->env, 0);
    if (open_databases (self, err, err_len))
        goto err_env;
    return self;

err_env:
    mdb_env_close (self->env);
err_lock:
    pthread_rwlock_destroy (&self->resize_lock);
    free (self);
    return NULL;
}

void
store_destroy (store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    mdb_env_close (self->env);
    pthread_rwlock_destroy (&self->resize_lock);
    free (self);
    *self_p = NULL;
}

/* ---------------------------------------------------------------- keys */

static size_t
join_key (char *out, size_t out_len, const char *const *parts, size_t count)
{
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen (parts[i]);
        if (used + len + 1 > out_len)
            return 0;
        memcpy (out + used, parts[i], len);
        used += len;
        if (i + 1 < count)
            out[used++] = KEY_SEPARATOR;
    }
    out[used] = '\0';
    return used;
}

static size_t
record_key (char *out, size_t out_len, const char *body_id, const char *record_id)
{
    const char *parts[] = {body_id, record_id};
    return join_key (out, out_len, parts, 2);
}

static size_t
cell_key (char *out, size_t out_len, const Totalplace__SpendingRecord *record)
{
    const char *parts[] = {record->neighbourhood, record->body_id, record->service,
                           record->period, record->poolable ? "Y" : "N"};
    return join_key (out, out_len, parts, CELL_FIELDS);
}

/* Splits a cell key copied into buffer into its fields, in place. */
static int
split_cell_key (char *buffer, char *fields[CELL_FIELDS])
{
    size_t n = 0;
    fields[n++] = buffer;
    for (char *p = buffer; *p; p++)
        if (*p == KEY_SEPARATOR) {
            if (n == CELL_FIELDS)
                return -1;
            *p = '\0';
            fields[n++] = p + 1;
        }
    return n == CELL_FIELDS ? 0 : -1;
}

/* ---------------------------------------------------------------- applying batches */

/* A total touched by the transaction: its value so far, written back once at commit. */
typedef struct {
    store_amount_t value;
    MDB_dbi dbi;
    size_t key_len;
    char key[]; /* without the one-letter prefix used in the hash */
} touched_total_t;

typedef struct {
    touched_total_t *total;
    store_amount_t previous;
} undo_entry_t;

/* One transaction's working state. */
typedef struct {
    store_t *store;
    MDB_txn *txn;
    zhashx_t *touched; /* "C"+cell key or "N"+neighbourhood -> touched_total_t */
    counters_value_t counts;
    undo_entry_t undo[4];
    size_t undo_count;
} apply_state_t;

static void
touched_total_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static int
read_amount (const MDB_val *value, store_amount_t *amount)
{
    if (value->mv_size != sizeof *amount)
        return -1;
    memcpy (amount, value->mv_data, sizeof *amount);
    return 0;
}

/* Finds the total in this transaction's working set, loading it from LMDB on first touch. */
static int
touch_total (apply_state_t *state, MDB_dbi dbi, char prefix, const char *key, size_t key_len,
             touched_total_t **out, char *err, size_t err_len)
{
    char hash_key[MAX_KEY_BYTES + 2];
    hash_key[0] = prefix;
    memcpy (hash_key + 1, key, key_len + 1);
    touched_total_t *total = zhashx_lookup (state->touched, hash_key);
    if (total) {
        *out = total;
        return 0;
    }
    total = calloc (1, sizeof *total + key_len + 1);
    if (!total)
        return fail (err, err_len, STORE_ERR, "out of memory");
    total->dbi = dbi;
    total->key_len = key_len;
    memcpy (total->key, key, key_len + 1);
    MDB_val k = {key_len, total->key}, v;
    int rc = mdb_get (state->txn, dbi, &k, &v);
    if (rc == 0) {
        if (read_amount (&v, &total->value)) {
            free (total);
            return fail (err, err_len, STORE_ERR, "corrupt total for key \"%s\"", key);
        }
    }
    else if (rc != MDB_NOTFOUND) {
        free (total);
        return fail (err, err_len, STORE_ERR, "cannot read total: %s", mdb_strerror (rc));
    }
    zhashx_insert (state->touched, hash_key, total);
    *out = total;
    return 0;
}

static void
undo_record (apply_state_t *state)
{
    while (state->undo_count > 0) {
        undo_entry_t *entry = &state->undo[--state->undo_count];
        entry->total->value = entry->previous;
    }
}

/* Adds (sign +1) or removes (sign -1) one record's contribution to its cell and neighbourhood.
 * Returns 1 when a total would overflow (the caller undoes the record), 0, or an error. */
static int
add_contribution (apply_state_t *state, const Totalplace__SpendingRecord *record, int sign,
                  char *err, size_t err_len)
{
    char key[MAX_KEY_BYTES + 1];
    size_t cell_len = cell_key (key, sizeof key, record);
    if (cell_len == 0)
        return fail (err, err_len, STORE_ERR, "cell key too long");
    touched_total_t *targets[2];
    int rc = touch_total (state, state->store->cells, 'C', key, cell_len, &targets[0], err,
                          err_len);
    if (rc)
        return rc;
    rc = touch_total (state, state->store->neighbourhoods, 'N', record->neighbourhood,
                      strlen (record->neighbourhood), &targets[1], err, err_len);
    if (rc)
        return rc;
    /* |amount| <= WIRE_MAX_ABS_AMOUNT_PENCE, so negating it cannot overflow. */
    int64_t amount_delta = sign > 0 ? record->amount_pence : -record->amount_pence;
    for (size_t i = 0; i < 2; i++) {
        store_amount_t next;
        if (__builtin_add_overflow (targets[i]->value.amount_pence, amount_delta,
                                    &next.amount_pence)
            || __builtin_add_overflow (targets[i]->value.records, (int64_t) sign, &next.records))
            return 1;
        state->undo[state->undo_count++] = (undo_entry_t){targets[i], targets[i]->value};
        targets[i]->value = next;
    }
    return 0;
}

static int
put_record (apply_state_t *state, const MDB_val *key, const Totalplace__SpendingRecord *record)
{
    size_t size = protobuf_c_message_get_packed_size (&record->base);
    MDB_val k = *key, v = {size, NULL};
    /* MDB_RESERVE lets us pack straight into the page, saving a copy on the hot path. */
    int rc = mdb_put (state->txn, state->store->records, &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    protobuf_c_message_pack (&record->base, v.mv_data);
    return 0;
}

#define APPLY_MAP_FULL 1

/* Decides and applies one record. Returns 0, APPLY_MAP_FULL, or a negative error. */
static int
apply_record (apply_state_t *state, const Totalplace__SpendingRecord *record,
              store_result_t *result, char *err, size_t err_len)
{
    if (wire_validate_record (record, result->reason, sizeof result->reason)) {
        result->outcome = STORE_REJECTED;
        return 0;
    }
    char key_bytes[MAX_KEY_BYTES + 1];
    size_t key_len = record_key (key_bytes, sizeof key_bytes, record->body_id, record->record_id);
    if (key_len == 0)
        return fail (err, err_len, STORE_ERR, "record key too long");
    MDB_val key = {key_len, key_bytes}, value;
    int rc = mdb_get (state->txn, state->store->records, &key, &value);
    Totalplace__SpendingRecord *stored = NULL;
    if (rc == 0) {
        stored = totalplace__spending_record__unpack (NULL, value.mv_size, value.mv_data);
        if (!stored)
            return fail (err, err_len, STORE_ERR, "stored record %s/%s is corrupt",
                         record->body_id, record->record_id);
        if (record->revision < stored->revision) {
            result->outcome = STORE_STALE;
            goto done;
        }
        if (record->revision == stored->revision) {
            if (wire_records_equal (record, stored))
                result->outcome = STORE_DUPLICATE;
            else {
                result->outcome = STORE_REJECTED;
                snprintf (result->reason, sizeof result->reason,
                          "conflict: revision %u of this record is already stored with different "
                          "content; send a correction with a higher revision",
                          (unsigned) record->revision);
            }
            goto done;
        }
    }
    else if (rc != MDB_NOTFOUND)
        return fail (err, err_len, STORE_ERR, "cannot read record: %s", mdb_strerror (rc));

    state->undo_count = 0;
    rc = 0;
    if (stored && !stored->withdrawn)
        rc = add_contribution (state, stored, -1, err, err_len);
    if (rc == 0 && !record->withdrawn)
        rc = add_contribution (state, record, +1, err, err_len);
    if (rc == 1) {
        undo_record (state);
        result->outcome = STORE_REJECTED;
        snprintf (result->reason, sizeof result->reason,
                  "a total of neighbourhood %s would overflow int64 pence", record->neighbourhood);
        rc = 0;
        goto done;
    }
    if (rc < 0)
        goto done;
    rc = put_record (state, &key, record);
    if (rc == MDB_MAP_FULL)
        rc = APPLY_MAP_FULL;
    else if (rc)
        rc = fail (err, err_len, STORE_ERR, "cannot store record: %s", mdb_strerror (rc));
    else
        result->outcome = stored ? STORE_SUPERSEDED : STORE_ACCEPTED;
done:
    if (stored)
        totalplace__spending_record__free_unpacked (stored, NULL);
    return rc;
}

static int
write_totals (apply_state_t *state, char *err, size_t err_len)
{
    for (touched_total_t *total = zhashx_first (state->touched); total;
         total = zhashx_next (state->touched)) {
        MDB_val key = {total->key_len, total->key};
        int rc;
        if (total->value.records == 0) {
            /* Nothing left in this total: remove it so empty neighbourhoods disappear. */
            rc = mdb_del (state->txn, total->dbi, &key, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        else {
            MDB_val value = {sizeof total->value, &total->value};
            rc = mdb_put (state->txn, total->dbi, &key, &value, 0);
        }
        if (rc == MDB_MAP_FULL)
            return APPLY_MAP_FULL;
        if (rc)
            return fail (err, err_len, STORE_ERR, "cannot write total: %s", mdb_strerror (rc));
    }
    return 0;
}

static void
count_outcome (counters_value_t *counts, store_outcome_t outcome)
{
    switch (outcome) {
    case STORE_ACCEPTED:
        counts->accepted++;
        break;
    case STORE_DUPLICATE:
        counts->duplicate++;
        break;
    case STORE_SUPERSEDED:
        counts->superseded++;
        break;
    case STORE_STALE:
        counts->stale++;
        break;
    case STORE_REJECTED:
        counts->rejected++;
        break;
    case STORE_PENDING:
        break;
    }
}

static int
put_or_full (MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *value, const char *what, char *err,
             size_t err_len)
{
    int rc = mdb_put (txn, dbi, key, value, 0);
    if (rc == MDB_MAP_FULL)
        return APPLY_MAP_FULL;
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot write %s: %s", what, mdb_strerror (rc));
    return 0;
}

static int
write_agents_and_counters (apply_state_t *state, Totalplace__Batch *const *batches,
                           size_t batch_count, char *err, size_t err_len)
{
    store_t *store = state->store;
    int64_t now = (int64_t) time (NULL);
    for (size_t b = 0; b < batch_count; b++) {
        const char *agent_id = batches[b]->agent_id ? batches[b]->agent_id : "";
        MDB_val key = {strlen (agent_id), (void *) agent_id}, value;
        agent_value_t agent = {0, 0, 0};
        int rc = mdb_get (state->txn, store->agents, &key, &value);
        if (rc == 0 && value.mv_size == sizeof agent)
            memcpy (&agent, value.mv_data, sizeof agent);
        else if (rc != 0 && rc != MDB_NOTFOUND)
            return fail (err, err_len, STORE_ERR, "cannot read agent: %s", mdb_strerror (rc));
        if (batches[b]->batch_seq > agent.last_batch_seq)
            agent.last_batch_seq = batches[b]->batch_seq;
        agent.batches++;
        agent.last_seen = now;
        value = (MDB_val){sizeof agent, &agent};
        rc = put_or_full (state->txn, store->agents, &key, &value, "agent high-water mark", err,
                          err_len);
        if (rc)
            return rc;
    }
    MDB_val key = {sizeof COUNTERS_KEY - 1, (void *) COUNTERS_KEY}, value;
    counters_value_t counters = {0};
    int rc = mdb_get (state->txn, store->meta, &key, &value);
    if (rc == 0 && value.mv_size == sizeof counters)
        memcpy (&counters, value.mv_data, sizeof counters);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return fail (err, err_len, STORE_ERR, "cannot read counters: %s", mdb_strerror (rc));
    counters.batches += batch_count;
    counters.accepted += state->counts.accepted;
    counters.duplicate += state->counts.duplicate;
    counters.superseded += state->counts.superseded;
    counters.stale += state->counts.stale;
    counters.rejected += state->counts.rejected;
    value = (MDB_val){sizeof counters, &counters};
    return put_or_full (state->txn, store->meta, &key, &value, "counters", err, err_len);
}

/* One attempt at the whole group. Returns 0 (committed), APPLY_MAP_FULL (aborted), or an error. */
static int
apply_once (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
            store_result_t *const *results, char *err, size_t err_len)
{
    apply_state_t state = {.store = self};
    state.touched = zhashx_new ();
    if (!state.touched)
        return fail (err, err_len, STORE_ERR, "out of memory");
    zhashx_set_destructor (state.touched, touched_total_free);
    int rc = mdb_txn_begin (self->env, NULL, 0, &state.txn);
    if (rc) {
        zhashx_destroy (&state.touched);
        return fail (err, err_len, STORE_ERR, "cannot begin write transaction: %s",
                     mdb_strerror (rc));
    }
    rc = 0;
    for (size_t b = 0; b < batch_count && rc == 0; b++) {
        const Totalplace__Batch *batch = batches[b];
        for (size_t i = 0; i < batch->n_records && rc == 0; i++) {
            store_result_t *result = &results[b][i];
            if (result->outcome != STORE_REJECTED)
                rc = apply_record (&state, batch->records[i], result, err, err_len);
            count_outcome (&state.counts, result->outcome);
        }
    }
    if (rc == 0)
        rc = write_totals (&state, err, err_len);
    if (rc == 0)
        rc = write_agents_and_counters (&state, batches, batch_count, err, err_len);
    if (rc == 0) {
        rc = mdb_txn_commit (state.txn);
        if (rc == MDB_MAP_FULL)
            rc = APPLY_MAP_FULL;
        else if (rc)
            rc = fail (err, err_len, STORE_ERR, "cannot commit: %s", mdb_strerror (rc));
    }
    else
        mdb_txn_abort (state.txn);
    zhashx_destroy (&state.touched);
    return rc;
}

static int
grow_map (store_t *self, char *err, size_t err_len)
{
    MDB_envinfo info;
    mdb_env_info (self->env, &info);
    if (info.me_mapsize >= self->max_map_size)
        return fail (err, err_len, STORE_ERR_FULL,
                     "store is full: the LMDB map holds %zu MiB and may not grow beyond %zu MiB "
                     "(raise max_map_size); the batch was not applied",
                     info.me_mapsize >> 20, self->max_map_size >> 20);
    size_t next = info.me_mapsize * 2;
    if (next > self->max_map_size || next < info.me_mapsize)
        next = self->max_map_size;
    pthread_rwlock_wrlock (&self->resize_lock);
    int rc = mdb_env_set_mapsize (self->env, next);
    pthread_rwlock_unlock (&self->resize_lock);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot grow the map to %zu MiB: %s", next >> 20,
                     mdb_strerror (rc));
    return 0;
}

int
store_apply (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
             store_result_t *const *results, char *err, size_t err_len)
{
    if (self->read_only)
        return fail (err, err_len, STORE_ERR, "store is open read-only");
    /* Remember which records were refused upstream, so that a retry after growing the map
     * starts from exactly the caller's state. */
    size_t total_records = 0;
    for (size_t b = 0; b < batch_count; b++)
        total_records += batches[b]->n_records;
    bool *refused_upstream = calloc (total_records ? total_records : 1, sizeof (bool));
    if (!refused_upstream)
        return fail (err, err_len, STORE_ERR, "out of memory");
    for (size_t b = 0, n = 0; b < batch_count; b++)
        for (size_t i = 0; i < batches[b]->n_records; i++, n++)
            refused_upstream[n] = results[b][i].outcome == STORE_REJECTED;

    int rc;
    while ((rc = apply_once (self, batches, batch_count, results, err, err_len))
           == APPLY_MAP_FULL) {
        rc = grow_map (self, err, err_len);
        if (rc)
            break;
        for (size_t b = 0, n = 0; b < batch_count; b++)
            for (size_t i = 0; i < batches[b]->n_records; i++, n++)
                if (!refused_upstream[n])
                    results[b][i].outcome = STORE_PENDING;
    }
    free (refused_upstream);
    return rc;
}

/* ---------------------------------------------------------------- reading */

static int
begin_read (store_t *self, MDB_txn **txn, char *err, size_t err_len)
{
    pthread_rwlock_rdlock (&self->resize_lock);
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process (the collector) grew the map: adopt its size and try again. */
        pthread_rwlock_unlock (&self->resize_lock);
        pthread_rwlock_wrlock (&self->resize_lock);
        mdb_env_set_mapsize (self->env, 0);
        pthread_rwlock_unlock (&self->resize_lock);
        pthread_rwlock_rdlock (&self->resize_lock);
        rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    }
    if (rc) {
        pthread_rwlock_unlock (&self->resize_lock);
        return fail (err, err_len, STORE_ERR, "cannot begin read transaction: %s",
                     mdb_strerror (rc));
    }
    return 0;
}

static void
end_read (store_t *self, MDB_txn *txn)
{
    mdb_txn_abort (txn);
    pthread_rwlock_unlock (&self->resize_lock);
}

/* Rows of a breakdown, kept sorted by key while aggregating. */
typedef struct {
    char *key;
    store_amount_t amount;
} row_t;

typedef struct {
    row_t *rows;
    size_t count, capacity;
} row_set_t;

static void
row_set_clear (row_set_t *set)
{
    for (size_t i = 0; i < set->count; i++)
        free (set->rows[i].key);
    free (set->rows);
    *set = (row_set_t){0};
}

static int
row_set_add (row_set_t *set, const char *key, store_amount_t amount, char *err, size_t err_len)
{
    /* Keys mostly arrive in order (cells are sorted), so check the end before searching. */
    size_t low = 0, high = set->count;
    if (set->count && strcmp (set->rows[set->count - 1].key, key) < 0)
        low = set->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (strcmp (set->rows[mid].key, key) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    if (low < set->count && strcmp (set->rows[low].key, key) == 0) {
        row_t *row = &set->rows[low];
        if (__builtin_add_overflow (row->amount.amount_pence, amount.amount_pence,
                                    &row->amount.amount_pence)
            || __builtin_add_overflow (row->amount.records, amount.records, &row->amount.records))
            return fail (err, err_len, STORE_ERR, "total for \"%s\" overflows int64 pence", key);
        return 0;
    }
    if (set->count == set->capacity) {
        size_t capacity = set->capacity ? set->capacity * 2 : 16;
        row_t *rows = realloc (set->rows, capacity * sizeof *rows);
        if (!rows)
            return fail (err, err_len, STORE_ERR, "out of memory");
        set->rows = rows;
        set->capacity = capacity;
    }
    char *copy = strdup (key);
    if (!copy)
        return fail (err, err_len, STORE_ERR, "out of memory");
    memmove (&set->rows[low + 1], &set->rows[low], (set->count - low) * sizeof *set->rows);
    set->rows[low] = (row_t){copy, amount};
    set->count++;
    return 0;
}

static bool
cell_matches (char *const fields[CELL_FIELDS], const store_filter_t *filter)
{
    if (!filter)
        return true;
    if (filter->body_id && strcmp (filter->body_id, fields[1]) != 0)
        return false;
    if (filter->service && strcmp (filter->service, fields[2]) != 0)
        return false;
    if (filter->month && strcmp (filter->month, fields[3]) != 0)
        return false;
    if (filter->fiscal_year) {
        char fiscal_year[FISCAL_YEAR_LEN];
        if (period_fiscal_year (fields[3], fiscal_year, sizeof fiscal_year)
            || strcmp (filter->fiscal_year, fiscal_year) != 0)
            return false;
    }
    if (filter->poolable >= 0 && (filter->poolable ? 'Y' : 'N') != fields[4][0])
        return false;
    return true;
}

static const char *
breakdown_key (char *const fields[CELL_FIELDS], store_breakdown_t by, char *scratch,
               size_t scratch_len)
{
    switch (by) {
    case STORE_BY_BODY:
        return fields[1];
    case STORE_BY_SERVICE:
        return fields[2];
    case STORE_BY_MONTH:
        return fields[3];
    case STORE_BY_FISCAL_YEAR:
        return period_fiscal_year (fields[3], scratch, scratch_len) == 0 ? scratch : "invalid";
    case STORE_BY_POOLABLE:
        return fields[4][0] == 'Y' ? "yes" : "no";
    case STORE_BY_NEIGHBOURHOOD:
        return fields[0];
    case STORE_BY_NONE:
        break;
    }
    return "";
}

static int
emit_rows (const row_set_t *set, store_row_fn *row, void *arg)
{
    for (size_t i = 0; i < set->count; i++)
        if (row (arg, set->rows[i].key, set->rows[i].amount))
            break;
    return 0;
}

int
store_totals (store_t *self, const char *neighbourhood, store_breakdown_t by,
              const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
              size_t err_len)
{
    char prefix[MAX_KEY_BYTES + 1];
    size_t prefix_len = 0;
    if (neighbourhood) {
        prefix_len = strlen (neighbourhood) + 1;
        if (prefix_len >= sizeof prefix)
            return fail (err, err_len, STORE_ERR_NOTFOUND, "no neighbourhood %.64s",
                         neighbourhood);
        memcpy (prefix, neighbourhood, prefix_len - 1);
        prefix[prefix_len - 1] = KEY_SEPARATOR;
    }
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_cursor *cursor = NULL;
    row_set_t set = {0};
    if (neighbourhood) {
        MDB_val key = {prefix_len - 1, (void *) neighbourhood}, value;
        rc = mdb_get (txn, self->neighbourhoods, &key, &value);
        if (rc == MDB_NOTFOUND) {
            rc = fail (err, err_len, STORE_ERR_NOTFOUND,
                       "neighbourhood %s has no records in this store", neighbourhood);
            goto out;
        }
        if (rc) {
            rc = fail (err, err_len, STORE_ERR, "cannot read neighbourhood: %s",
                       mdb_strerror (rc));
            goto out;
        }
    }
    rc = mdb_cursor_open (txn, self->cells, &cursor);
    if (rc) {
        rc = fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
        goto out;
    }
    MDB_val key = {prefix_len, prefix}, value;
    rc = mdb_cursor_get (cursor, &key, &value, neighbourhood ? MDB_SET_RANGE : MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        if (neighbourhood && (key.mv_size < prefix_len || memcmp (key.mv_data, prefix, prefix_len)))
            break;
        char buffer[MAX_KEY_BYTES + 1], *fields[CELL_FIELDS], scratch[FISCAL_YEAR_LEN];
        store_amount_t amount;
        if (key.mv_size >= sizeof buffer || read_amount (&value, &amount)) {
            rc = fail (err, err_len, STORE_ERR, "corrupt total in the cells database");
            goto out;
        }
        memcpy (buffer, key.mv_data, key.mv_size);
        buffer[key.mv_size] = '\0';
        if (split_cell_key (buffer, fields)) {
            rc = fail (err, err_len, STORE_ERR, "corrupt key in the cells database");
            goto out;
        }
        if (!cell_matches (fields, filter))
            continue;
        rc = row_set_add (&set, breakdown_key (fields, by, scratch, sizeof scratch), amount, err,
                          err_len);
        if (rc)
            goto out;
    }
    if (rc != MDB_NOTFOUND && rc != 0) {
        rc = fail (err, err_len, STORE_ERR, "cannot read cells: %s", mdb_strerror (rc));
        goto out;
    }
    /* A breakdown with no matching cells still has a total: zero. */
    if (by == STORE_BY_NONE && set.count == 0)
        rc = row_set_add (&set, "", (store_amount_t){0, 0}, err, err_len);
    else
        rc = 0;
    if (rc == 0)
        rc = emit_rows (&set, row, arg);
out:
    if (cursor)
        mdb_cursor_close (cursor);
    end_read (self, txn);
    row_set_clear (&set);
    return rc;
}

static int
compare_ranked (const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->amount.amount_pence != y->amount.amount_pence)
        return x->amount.amount_pence > y->amount.amount_pence ? -1 : 1;
    return strcmp (x->key, y->key);
}

int
store_neighbourhoods (store_t *self, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_cursor *cursor = NULL;
    row_set_t set = {0};
    rc = mdb_cursor_open (txn, self->neighbourhoods, &cursor);
    if (rc) {
        rc = fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
        goto out;
    }
    MDB_val key, value;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        char code[MAX_KEY_BYTES + 1];
        store_amount_t amount;
        if (key.mv_size >= sizeof code || read_amount (&value, &amount)) {
            rc = fail (err, err_len, STORE_ERR, "corrupt neighbourhood total");
            goto out;
        }
        memcpy (code, key.mv_data, key.mv_size);
        code[key.mv_size] = '\0';
        rc = row_set_add (&set, code, amount, err, err_len);
        if (rc)
            goto out;
    }
    if (rc != MDB_NOTFOUND) {
        rc = fail (err, err_len, STORE_ERR, "cannot read neighbourhoods: %s", mdb_strerror (rc));
        goto out;
    }
    qsort (set.rows, set.count, sizeof *set.rows, compare_ranked);
    rc = emit_rows (&set, row, arg);
out:
    if (cursor)
        mdb_cursor_close (cursor);
    end_read (self, txn);
    row_set_clear (&set);
    return rc;
}

int
store_get_record (store_t *self, const char *body_id, const char *record_id,
                  Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    char key_bytes[MAX_KEY_BYTES + 1];
    size_t key_len = record_key (key_bytes, sizeof key_bytes, body_id, record_id);
    if (key_len == 0)
        return fail (err, err_len, STORE_ERR_NOTFOUND, "no record %.64s/%.128s", body_id,
                     record_id);
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_val key = {key_len, key_bytes}, value;
    rc = mdb_get (txn, self->records, &key, &value);
    if (rc == MDB_NOTFOUND)
        rc = fail (err, err_len, STORE_ERR_NOTFOUND, "no record %s/%s in this store", body_id,
                   record_id);
    else if (rc)
        rc = fail (err, err_len, STORE_ERR, "cannot read record: %s", mdb_strerror (rc));
    else {
        *record = totalplace__spending_record__unpack (NULL, value.mv_size, value.mv_data);
        if (!*record)
            rc = fail (err, err_len, STORE_ERR, "stored record %s/%s is corrupt", body_id,
                       record_id);
    }
    end_read (self, txn);
    return rc;
}

int
store_counters (store_t *self, store_counters_t *counters, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    memset (counters, 0, sizeof *counters);
    MDB_val key = {sizeof COUNTERS_KEY - 1, (void *) COUNTERS_KEY}, value;
    counters_value_t stored = {0};
    rc = mdb_get (txn, self->meta, &key, &value);
    if (rc == 0 && value.mv_size == sizeof stored)
        memcpy (&stored, value.mv_data, sizeof stored);
    else if (rc != 0 && rc != MDB_NOTFOUND) {
        end_read (self, txn);
        return fail (err, err_len, STORE_ERR, "cannot read counters: %s", mdb_strerror (rc));
    }
    counters->batches = stored.batches;
    counters->accepted = stored.accepted;
    counters->duplicate = stored.duplicate;
    counters->superseded = stored.superseded;
    counters->stale = stored.stale;
    counters->rejected = stored.rejected;
    MDB_stat stat;
    rc = mdb_stat (txn, self->records, &stat);
    if (rc == 0)
        counters->records_stored = stat.ms_entries;
    MDB_envinfo info;
    MDB_stat env_stat;
    mdb_env_info (self->env, &info);
    mdb_env_stat (self->env, &env_stat);
    counters->map_size = info.me_mapsize;
    counters->used_bytes = (info.me_last_pgno + 1) * (size_t) env_stat.ms_psize;
    end_read (self, txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot read record count: %s", mdb_strerror (rc));
    return 0;
}

int
store_agents (store_t *self, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_cursor *cursor;
    rc = mdb_cursor_open (txn, self->agents, &cursor);
    if (rc) {
        end_read (self, txn);
        return fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
    }
    MDB_val key, value;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        char agent_id[MAX_KEY_BYTES + 1];
        agent_value_t stored;
        if (key.mv_size >= sizeof agent_id || value.mv_size != sizeof stored)
            continue;
        memcpy (agent_id, key.mv_data, key.mv_size);
        agent_id[key.mv_size] = '\0';
        memcpy (&stored, value.mv_data, sizeof stored);
        store_agent_t agent = {agent_id, stored.last_batch_seq, stored.batches, stored.last_seen};
        if (fn (arg, &agent))
            break;
    }
    mdb_cursor_close (cursor);
    end_read (self, txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail (err, err_len, STORE_ERR, "cannot read agents: %s", mdb_strerror (rc));
    return 0;
}
