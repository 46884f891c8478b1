/* store_checksum: the checksum every value of the store carries, computed over the value, its key
 * and its database, so that a changed bit, a value of another key or of another database is told
 * from a sound one when it is read. Accidents only: the SipHash keys are fixed and public, so
 * whoever may write data.mdb may also forge checksums (docs/architecture.md, "Checksums"). */
#ifndef TOTALPLACE_STORE_CHECKSUM_H
#define TOTALPLACE_STORE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* The databases of the store, in the order the store opens them. */
typedef enum {
    STORE_DB_RECORDS = 0,
    STORE_DB_CELLS,
    STORE_DB_NEIGHBOURHOODS,
    STORE_DB_AGENTS,
    STORE_DB_META,
    STORE_DB_TEXTS,    /* format 2: interned texts by kind and id */
    STORE_DB_TEXT_IDS, /* format 2: ids by kind and hash of their text */
    STORE_DB_COUNT
} store_db_t;

/* The database's name in LMDB and in messages ("records", ...); "?" for no database. */
const char *store_db_name (store_db_t db);

/* Bytes of checksum after each value's payload: the low 32 bits of SipHash-2-4, little-endian.
 * Benchmarks build a variant of the store without checksums (TOTALPLACE_BENCH_NO_CHECKSUMS) to
 * measure their cost; such a store is never read by a normal build. */
#ifdef TOTALPLACE_BENCH_NO_CHECKSUMS
#define STORE_CHECKSUM_BYTES 0u
#else
#define STORE_CHECKSUM_BYTES 4u
#endif

/* The key of the hash for one value: derived from its database and its key, so that the same key
 * is hashed once when a value is read, then written again. */
typedef struct {
    unsigned char bytes[16];
} store_checksum_key_t;

void store_checksum_key (store_db_t db, const void *key, size_t key_len, store_checksum_key_t *out);

/* The checksum of payload under hash_key. */
uint32_t store_checksum (const store_checksum_key_t *hash_key, const void *payload, size_t len);

/* Writes the checksum of the payload_len bytes at value right after them: value has room for
 * payload_len + STORE_CHECKSUM_BYTES bytes. */
void store_checksum_seal (const store_checksum_key_t *hash_key, void *value, size_t payload_len);

/* What store_checksum_open found. */
#define STORE_CHECKSUM_OK       0
#define STORE_CHECKSUM_SHORT    -1 /* shorter than a checksum */
#define STORE_CHECKSUM_MISMATCH -2 /* the checksum is not the payload's */

/* Checks a value read from the store and sets *payload_len to the bytes before its checksum.
 * Returns one of the codes above. */
int store_checksum_open (const store_checksum_key_t *hash_key, const void *value, size_t value_len,
                         size_t *payload_len);

#endif
