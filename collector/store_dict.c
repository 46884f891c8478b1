/* store_dict: interned texts both ways, the writer's bounded cache, and readers' names by id. */
#include "store_dict.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the databases */

static int
lmdb_fault (store_dict_fault_t *fault, int rc, store_db_t db, const unsigned char *key,
            size_t key_len)
{
    *fault = (store_dict_fault_t){.lmdb_rc = rc, .db = db, .key_len = key ? key_len : 0};
    if (key)
        memcpy (fault->key, key, key_len);
    /* LMDB's verdicts on the tree itself are damage too. */
    fault->damaged = rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID;
    if (fault->damaged)
        snprintf (fault->what, sizeof fault->what,
                  "cannot be read: LMDB reports its tree corrupt (%s)", mdb_strerror (rc));
    return STORE_DICT_FAULT;
}

static int damage (store_dict_fault_t *fault, store_db_t db, const unsigned char *key,
                   size_t key_len, const char *format, ...) __attribute__ ((format (printf, 5, 6)));

static int
damage (store_dict_fault_t *fault, store_db_t db, const unsigned char *key, size_t key_len,
        const char *format, ...)
{
    *fault = (store_dict_fault_t){.damaged = true, .db = db, .key_len = key_len};
    memcpy (fault->key, key, key_len);
    va_list args;
    va_start (args, format);
    vsnprintf (fault->what, sizeof fault->what, format, args);
    va_end (args);
    return STORE_DICT_FAULT;
}

/* Checks the checksum of a value of db at key; sets *payload_len. */
static int
open_checked (store_db_t db, const unsigned char *key, size_t key_len, const MDB_val *value,
              size_t *payload_len, store_dict_fault_t *fault)
{
    store_checksum_key_t hash_key;
    store_checksum_key (db, key, key_len, &hash_key);
    int rc = store_checksum_open (&hash_key, value->mv_data, value->mv_size, payload_len);
    if (rc == STORE_CHECKSUM_SHORT)
        return damage (fault, db, key, key_len, "has %zu bytes, too few to hold its checksum",
                       value->mv_size);
    if (rc)
        return damage (fault, db, key, key_len, "fails its checksum");
    return 0;
}

int
store_dict_text (const store_dict_txn_t *dict, unsigned kind, uint32_t id, const char **text,
                 size_t *len, store_dict_fault_t *fault)
{
    unsigned char key[STORE_CODEC_TEXT_KEY_LEN];
    store_codec_text_key (kind, id, key);
    MDB_val k = {sizeof key, key}, value;
    int rc = mdb_get (dict->txn, dict->texts, &k, &value);
    if (rc == MDB_NOTFOUND)
        return STORE_DICT_NOTFOUND;
    if (rc)
        return lmdb_fault (fault, rc, STORE_DB_TEXTS, key, sizeof key);
    size_t payload;
    if (open_checked (STORE_DB_TEXTS, key, sizeof key, &value, &payload, fault))
        return STORE_DICT_FAULT;
    /* The text, then a NUL, so that readers use it as it lies in the map. */
    const char *bytes = value.mv_data;
    if (payload < 2 || bytes[payload - 1] != '\0' || memchr (bytes, '\0', payload - 1))
        return damage (fault, STORE_DB_TEXTS, key, sizeof key, "is not one text");
    *text = bytes;
    *len = payload - 1;
    return STORE_DICT_OK;
}

/* Looks text up in text_ids, probe after probe. Returns STORE_DICT_OK with *id, or
 * STORE_DICT_NOTFOUND with *free_probe the first probe not taken (STORE_CODEC_MAX_PROBES when all
 * are), or a fault. */
static int
lookup (const store_dict_txn_t *dict, unsigned kind, const char *text, size_t len, uint64_t hash,
        uint32_t *id, unsigned *free_probe, store_dict_fault_t *fault)
{
    for (unsigned probe = 0; probe < STORE_CODEC_MAX_PROBES; probe++) {
        unsigned char key[STORE_CODEC_TEXT_ID_KEY_LEN];
        store_codec_text_id_key (kind, hash, probe, key);
        MDB_val k = {sizeof key, key}, value;
        int rc = mdb_get (dict->txn, dict->text_ids, &k, &value);
        if (rc == MDB_NOTFOUND) {
            *free_probe = probe;
            return STORE_DICT_NOTFOUND;
        }
        if (rc)
            return lmdb_fault (fault, rc, STORE_DB_TEXT_IDS, key, sizeof key);
        size_t payload;
        uint32_t candidate;
        if (open_checked (STORE_DB_TEXT_IDS, key, sizeof key, &value, &payload, fault))
            return STORE_DICT_FAULT;
        if (store_codec_id_decode (value.mv_data, payload, &candidate))
            return damage (fault, STORE_DB_TEXT_IDS, key, sizeof key, "is not an id");
        const char *stored;
        size_t stored_len;
        rc = store_dict_text (dict, kind, candidate, &stored, &stored_len, fault);
        if (rc == STORE_DICT_NOTFOUND)
            return damage (fault, STORE_DB_TEXT_IDS, key, sizeof key,
                           "names %s id %u, which texts does not hold", store_text_kind_name (kind),
                           (unsigned)candidate);
        if (rc)
            return rc;
        if (stored_len == len && memcmp (stored, text, len) == 0) {
            *id = candidate;
            return STORE_DICT_OK;
        }
    }
    *free_probe = STORE_CODEC_MAX_PROBES;
    return STORE_DICT_NOTFOUND;
}

int
store_dict_find (const store_dict_txn_t *dict, unsigned kind, const char *text, size_t len,
                 uint32_t *id, store_dict_fault_t *fault)
{
    unsigned free_probe;
    return lookup (dict, kind, text, len, store_codec_text_hash (dict->hash_key, text, len), id,
                   &free_probe, fault);
}

/* The highest id of kind stored, 0 when none. */
static int
last_id (const store_dict_txn_t *dict, unsigned kind, uint32_t *id, store_dict_fault_t *fault)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (dict->txn, dict->texts, &cursor);
    if (rc)
        return lmdb_fault (fault, rc, STORE_DB_TEXTS, NULL, 0);
    unsigned char seek[STORE_CODEC_TEXT_KEY_LEN];
    store_codec_text_key (kind + 1, 0, seek);
    MDB_val k = {sizeof seek, seek}, value;
    rc = mdb_cursor_get (cursor, &k, &value, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &k, &value, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get (cursor, &k, &value, MDB_LAST);
    *id = 0;
    if (rc == 0) {
        const unsigned char *key = k.mv_data;
        if (k.mv_size == STORE_CODEC_TEXT_KEY_LEN && key[0] == kind) {
            unsigned found_kind;
            if (store_codec_text_key_split (key, k.mv_size, &found_kind, id))
                rc = damage (fault, STORE_DB_TEXTS, key, k.mv_size, "has a key of id 0");
        }
    }
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    else
        rc = lmdb_fault (fault, rc, STORE_DB_TEXTS, seek, sizeof seek);
    mdb_cursor_close (cursor);
    return rc;
}

/* Stores a new text under id in both dictionaries. */
static int
add (const store_dict_txn_t *dict, unsigned kind, const char *text, size_t len, uint64_t hash,
     unsigned probe, uint32_t id, store_dict_fault_t *fault)
{
    unsigned char key[STORE_CODEC_TEXT_KEY_LEN];
    store_codec_text_key (kind, id, key);
    store_checksum_key_t hash_key;
    store_checksum_key (STORE_DB_TEXTS, key, sizeof key, &hash_key);
    MDB_val k = {sizeof key, key}, value = {len + 1 + STORE_CHECKSUM_BYTES, NULL};
    int rc = mdb_put (dict->txn, dict->texts, &k, &value, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        return damage (fault, STORE_DB_TEXTS, key, sizeof key,
                       "is stored, though the %s ids end before it", store_text_kind_name (kind));
    if (rc)
        return lmdb_fault (fault, rc, STORE_DB_TEXTS, key, sizeof key);
    memcpy (value.mv_data, text, len);
    ((char *)value.mv_data)[len] = '\0';
    store_checksum_seal (&hash_key, value.mv_data, len + 1);

    unsigned char id_key[STORE_CODEC_TEXT_ID_KEY_LEN];
    unsigned char id_value[STORE_CODEC_ID_LEN + STORE_CHECKSUM_BYTES];
    store_codec_text_id_key (kind, hash, probe, id_key);
    store_codec_id (id, id_value);
    store_checksum_key (STORE_DB_TEXT_IDS, id_key, sizeof id_key, &hash_key);
    store_checksum_seal (&hash_key, id_value, STORE_CODEC_ID_LEN);
    k = (MDB_val){sizeof id_key, id_key};
    value = (MDB_val){sizeof id_value, id_value};
    rc = mdb_put (dict->txn, dict->text_ids, &k, &value, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return damage (fault, STORE_DB_TEXT_IDS, id_key, sizeof id_key,
                       "is stored, though the lookup found it free");
    if (rc)
        return lmdb_fault (fault, rc, STORE_DB_TEXT_IDS, id_key, sizeof id_key);
    return STORE_DICT_OK;
}

/* ---------------------------------------------------------------- the writer's cache */

typedef struct {
    uint64_t hash; /* 0: a free slot */
    const char *text;
    uint32_t id;
    uint32_t len;
    uint8_t kind;
} entry_t;

#define CHUNK_BYTES ((size_t)64 * 1024)
#define FIRST_SLOTS 1024

struct _store_dict_cache_t {
    size_t max_bytes;
    entry_t *slots;
    size_t slot_count; /* a power of two, at least twice count */
    size_t count;
    char **chunks;
    size_t chunk_count, chunk_capacity, chunk_used;
    uint32_t next_id[STORE_TEXT_KINDS]; /* 0: not read from the database yet */
    bool made;                          /* ids made in the current transaction */
};

store_dict_cache_t *
store_dict_cache_new (size_t max_bytes)
{
    store_dict_cache_t *self = calloc (1, sizeof *self);
    if (self)
        self->max_bytes = max_bytes;
    return self;
}

static void
free_chunks (store_dict_cache_t *self)
{
    for (size_t i = 0; i < self->chunk_count; i++)
        free (self->chunks[i]);
    self->chunk_count = 0;
    self->chunk_used = 0;
}

void
store_dict_cache_destroy (store_dict_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_dict_cache_t *self = *self_p;
    free_chunks (self);
    free (self->chunks);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

size_t
store_dict_cache_bytes (const store_dict_cache_t *self)
{
    return self->slot_count * sizeof (entry_t) + self->chunk_count * CHUNK_BYTES +
           self->chunk_capacity * sizeof (char *);
}

/* Empties the cache, keeping its table and one chunk: what is hot comes back on first use. */
static void
reset (store_dict_cache_t *self)
{
    if (self->slots)
        memset (self->slots, 0, self->slot_count * sizeof *self->slots);
    self->count = 0;
    for (size_t i = 1; i < self->chunk_count; i++)
        free (self->chunks[i]);
    self->chunk_count = self->chunk_count ? 1 : 0;
    self->chunk_used = 0;
}

void
store_dict_cache_end (store_dict_cache_t *self, bool committed)
{
    if (!self || !self->made)
        return;
    if (!committed) {
        reset (self);
        memset (self->next_id, 0, sizeof self->next_id);
    }
    self->made = false;
}

static uint64_t
cache_hash (unsigned kind, const char *text, size_t len)
{
    uint64_t hash = UINT64_C (0xcbf29ce484222325) ^ kind;
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ (uint8_t)text[i]) * UINT64_C (0x100000001b3);
    hash ^= hash >> 31;
    return hash ? hash : 1;
}

static entry_t *
slot_of (const store_dict_cache_t *self, uint64_t hash, unsigned kind, const char *text, size_t len)
{
    size_t mask = self->slot_count - 1;
    for (size_t at = hash & mask;; at = (at + 1) & mask) {
        entry_t *entry = &self->slots[at];
        if (!entry->hash || (entry->hash == hash && entry->kind == kind && entry->len == len &&
                             memcmp (entry->text, text, len) == 0))
            return entry;
    }
}

static int
grow (store_dict_cache_t *self)
{
    size_t count = self->slot_count ? self->slot_count * 2 : FIRST_SLOTS;
    entry_t *slots = calloc (count, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->slot_count; i++) {
        const entry_t *entry = &self->slots[i];
        if (!entry->hash)
            continue;
        size_t at = entry->hash & (count - 1);
        while (slots[at].hash)
            at = (at + 1) & (count - 1);
        slots[at] = *entry;
    }
    free (self->slots);
    self->slots = slots;
    self->slot_count = count;
    return 0;
}

/* A copy of text in the chunks; NULL when out of memory. */
static const char *
copy_text (store_dict_cache_t *self, const char *text, size_t len)
{
    if (self->chunk_count == 0 || self->chunk_used + len > CHUNK_BYTES) {
        if (self->chunk_count == self->chunk_capacity) {
            size_t capacity = self->chunk_capacity ? self->chunk_capacity * 2 : 16;
            char **chunks = realloc (self->chunks, capacity * sizeof *chunks);
            if (!chunks)
                return NULL;
            self->chunks = chunks;
            self->chunk_capacity = capacity;
        }
        char *chunk = malloc (CHUNK_BYTES);
        if (!chunk)
            return NULL;
        self->chunks[self->chunk_count++] = chunk;
        self->chunk_used = 0;
    }
    char *copy = self->chunks[self->chunk_count - 1] + self->chunk_used;
    memcpy (copy, text, len);
    self->chunk_used += len;
    return copy;
}

/* Remembers text -> id. Only memory can fail it, and then the cache just does not remember. */
static void
remember (store_dict_cache_t *self, uint64_t hash, unsigned kind, const char *text, size_t len,
          uint32_t id)
{
    bool table_full = self->slot_count < 2 * (self->count + 1);
    size_t more = (table_full ? self->slot_count * sizeof (entry_t) * 2 : 0) +
                  (self->chunk_used + len > CHUNK_BYTES || !self->chunk_count ? CHUNK_BYTES : 0);
    if (store_dict_cache_bytes (self) + more > self->max_bytes) {
        reset (self);
        table_full = self->slot_count < 2 * (self->count + 1);
        more = table_full ? self->slot_count * sizeof (entry_t) * 2 : 0;
        if (store_dict_cache_bytes (self) + more > self->max_bytes)
            return; /* a budget too small for even one table */
    }
    if (table_full && grow (self))
        return;
    const char *copy = copy_text (self, text, len);
    if (!copy)
        return;
    entry_t *entry = slot_of (self, hash, kind, text, len);
    *entry = (entry_t){
        .hash = hash, .text = copy, .id = id, .len = (uint32_t)len, .kind = (uint8_t)kind};
    self->count++;
}

int
store_dict_intern (store_dict_cache_t *self, const store_dict_txn_t *dict, unsigned kind,
                   const char *text, size_t len, bool create, uint32_t *id,
                   store_dict_fault_t *fault)
{
    uint64_t hash = cache_hash (kind, text, len);
    if (self->slot_count) {
        const entry_t *entry = slot_of (self, hash, kind, text, len);
        if (entry->hash) {
            *id = entry->id;
            return STORE_DICT_OK;
        }
    }
    uint64_t text_hash = store_codec_text_hash (dict->hash_key, text, len);
    unsigned free_probe;
    int rc = lookup (dict, kind, text, len, text_hash, id, &free_probe, fault);
    if (rc == STORE_DICT_NOTFOUND && create) {
        if (free_probe >= STORE_CODEC_MAX_PROBES)
            return STORE_DICT_EXHAUSTED;
        if (self->next_id[kind] == 0) {
            uint32_t last;
            rc = last_id (dict, kind, &last, fault);
            if (rc)
                return rc;
            if (last == STORE_TEXT_MAX_ID)
                return STORE_DICT_EXHAUSTED;
            self->next_id[kind] = last + 1;
        }
        if (self->next_id[kind] == 0)
            return STORE_DICT_EXHAUSTED;
        /* From here the transaction holds an id the cache must forget if it aborts. */
        self->made = true;
        rc = add (dict, kind, text, len, text_hash, free_probe, self->next_id[kind], fault);
        if (rc)
            return rc;
        *id = self->next_id[kind]++;
    }
    if (rc == STORE_DICT_OK)
        remember (self, hash, kind, text, len, *id);
    return rc;
}

/* ---------------------------------------------------------------- a reader's names */

/* Ids up to this are kept in the arrays; a larger one (only damage makes one) is looked up each
 * time instead of growing an array to its size. */
#define NAMES_MAX_ID (1u << 24)

int
store_dict_name (store_dict_names_t *names, const store_dict_txn_t *dict, unsigned kind,
                 uint32_t id, const char **text, store_dict_fault_t *fault)
{
    if (kind >= STORE_TEXT_KINDS)
        kind = 0;
    if (id < names->counts[kind] && names->texts[kind][id]) {
        *text = names->texts[kind][id];
        return STORE_DICT_OK;
    }
    size_t len;
    int rc = store_dict_text (dict, kind, id, text, &len, fault);
    if (rc || id >= NAMES_MAX_ID)
        return rc;
    if (id >= names->counts[kind]) {
        uint32_t count = names->counts[kind] ? names->counts[kind] : 64;
        while (count <= id)
            count *= 2;
        const char **texts = realloc (names->texts[kind], count * sizeof *texts);
        if (!texts)
            return STORE_DICT_OK; /* not remembered; the text is still right */
        memset (texts + names->counts[kind], 0, (count - names->counts[kind]) * sizeof *texts);
        names->texts[kind] = texts;
        names->counts[kind] = count;
    }
    names->texts[kind][id] = *text;
    return STORE_DICT_OK;
}

void
store_dict_names_clear (store_dict_names_t *names)
{
    for (unsigned kind = 0; kind < STORE_TEXT_KINDS; kind++)
        free (names->texts[kind]);
    *names = (store_dict_names_t){0};
}
