/* store_dict: the store's dictionaries of interned texts (bodies, neighbourhoods, services,
 * suppliers, descriptions), in two LMDB databases that say the same thing both ways: texts (kind,
 * id -> text) and text_ids (kind, hash of the text, probe -> id). Records and cells hold ids; this
 * turns texts into ids for the writer, through a cache of bounded size, and ids into texts for the
 * readers. Used inside the store's own transactions (store.c); every value read is checked against
 * its checksum, and what is wrong comes back as a fault for the store to name. */
#ifndef TOTALPLACE_STORE_DICT_H
#define TOTALPLACE_STORE_DICT_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_checksum.h"
#include "store_codec.h"

/* The dictionaries as one transaction sees them. */
typedef struct {
    MDB_txn *txn;
    MDB_dbi texts, text_ids;
    const unsigned char *hash_key; /* 16 bytes: the store's key for text hashes */
} store_dict_txn_t;

/* What went wrong, when a function returns STORE_DICT_FAULT: damage of the value at key in db
 * (what says how), or, when damaged is false, LMDB's failure lmdb_rc (at key when key_len > 0). */
typedef struct {
    bool damaged;
    int lmdb_rc;
    store_db_t db;
    unsigned char key[STORE_CODEC_TEXT_ID_KEY_LEN];
    size_t key_len;
    char what[96];
} store_dict_fault_t;

#define STORE_DICT_OK        0
#define STORE_DICT_NOTFOUND  1  /* no such text or id */
#define STORE_DICT_FAULT     -1 /* damage or an LMDB failure: see the fault */
#define STORE_DICT_EXHAUSTED -2 /* the kind has no id left, or a hash has no probe left */

/* The id of text (len bytes) of kind, or STORE_DICT_NOTFOUND. */
int store_dict_find (const store_dict_txn_t *dict, unsigned kind, const char *text, size_t len,
                     uint32_t *id, store_dict_fault_t *fault);

/* The text of an id: *text points into LMDB's map (valid while the transaction lives) and is
 * NUL-terminated; *len excludes the NUL. STORE_DICT_NOTFOUND for an id not stored. */
int store_dict_text (const store_dict_txn_t *dict, unsigned kind, uint32_t id, const char **text,
                     size_t *len, store_dict_fault_t *fault);

/* ---------------------------------------------------------------- the writer's cache */

/* The writer's texts and ids, kept between transactions in at most max_bytes (texts, table and
 * bookkeeping together). When full it is emptied and refilled from the database as records need
 * their texts: a miss costs one lookup in text_ids and one in texts. */
typedef struct _store_dict_cache_t store_dict_cache_t;

store_dict_cache_t *store_dict_cache_new (size_t max_bytes);
void store_dict_cache_destroy (store_dict_cache_t **self_p);

/* The id of text of kind: from the cache, else the database; when it is in neither and create is
 * set, a new id (the kind's highest plus one) is stored in both dictionaries in dict's (write)
 * transaction. Returns STORE_DICT_OK, STORE_DICT_NOTFOUND (create not set), STORE_DICT_FAULT
 * (fault->lmdb_rc is MDB_MAP_FULL when the map is full), or STORE_DICT_EXHAUSTED. */
int store_dict_intern (store_dict_cache_t *self, const store_dict_txn_t *dict, unsigned kind,
                       const char *text, size_t len, bool create, uint32_t *id,
                       store_dict_fault_t *fault);

/* The write transaction the cache was used in ended: committed, or aborted (then the ids it made
 * were never stored, and the cache forgets them; cheap when it made none). */
void store_dict_cache_end (store_dict_cache_t *self, bool committed);

/* The bytes the cache holds now (at most its max_bytes). */
size_t store_dict_cache_bytes (const store_dict_cache_t *self);

/* ---------------------------------------------------------------- a reader's names */

/* The texts of ids met in one read transaction, kept in arrays by id (pointers into the map, so
 * valid for that transaction only): a breakdown names each body or service once, not per cell. */
typedef struct {
    const char **texts[STORE_TEXT_KINDS];
    uint32_t counts[STORE_TEXT_KINDS];
} store_dict_names_t;

/* The text of id of kind, through names. */
int store_dict_name (store_dict_names_t *names, const store_dict_txn_t *dict, unsigned kind,
                     uint32_t id, const char **text, store_dict_fault_t *fault);

/* Frees the arrays; names can be used again. */
void store_dict_names_clear (store_dict_names_t *names);

#endif
