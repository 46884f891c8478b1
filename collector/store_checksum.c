/* store_checksum: SipHash-2-4 of each stored value, keyed by its database and its key. */
#include "store_checksum.h"

#include <sodium.h>
#include <string.h>

/* One fixed SipHash key per database: 16 bytes of its name. They are constants of the format:
 * changing one makes every stored value fail its checksum. */
static const unsigned char DATABASE_KEYS[STORE_DB_COUNT][16] = {
    [STORE_DB_RECORDS] = "totalplace:recds",        [STORE_DB_CELLS] = "totalplace:cells",
    [STORE_DB_NEIGHBOURHOODS] = "totalplace:nbhds", [STORE_DB_AGENTS] = "totalplace:agnts",
    [STORE_DB_META] = "totalplace:meta.",           [STORE_DB_TEXTS] = "totalplace:texts",
    [STORE_DB_TEXT_IDS] = "totalplace:txids",
};

static const char *const DATABASE_NAMES[STORE_DB_COUNT] = {
    [STORE_DB_RECORDS] = "records",
    [STORE_DB_CELLS] = "cells",
    [STORE_DB_NEIGHBOURHOODS] = "neighbourhoods",
    [STORE_DB_AGENTS] = "agents",
    [STORE_DB_META] = "meta",
    [STORE_DB_TEXTS] = "texts",
    [STORE_DB_TEXT_IDS] = "text_ids",
};

const char *
store_db_name (store_db_t db)
{
    return (unsigned)db < STORE_DB_COUNT ? DATABASE_NAMES[db] : "?";
}

void
store_checksum_key (store_db_t db, const void *key, size_t key_len, store_checksum_key_t *out)
{
    /* SipHash-2-4 with 128-bit output of the key, under the database's key, is the key of the
     * payload's hash: the checksum then depends on database, key and payload, without copying
     * them into one buffer. */
    crypto_shorthash_siphashx24 (out->bytes, key, key_len, DATABASE_KEYS[db % STORE_DB_COUNT]);
}

uint32_t
store_checksum (const store_checksum_key_t *hash_key, const void *payload, size_t len)
{
    unsigned char hash[crypto_shorthash_siphash24_BYTES];
    crypto_shorthash_siphash24 (hash, payload, len, hash_key->bytes);
    return (uint32_t)hash[0] | (uint32_t)hash[1] << 8 | (uint32_t)hash[2] << 16 |
           (uint32_t)hash[3] << 24;
}

#ifdef TOTALPLACE_BENCH_NO_CHECKSUMS

void
store_checksum_seal (const store_checksum_key_t *hash_key, void *value, size_t payload_len)
{
    (void)hash_key;
    (void)value;
    (void)payload_len;
}

int
store_checksum_open (const store_checksum_key_t *hash_key, const void *value, size_t value_len,
                     size_t *payload_len)
{
    (void)hash_key;
    (void)value;
    *payload_len = value_len;
    return STORE_CHECKSUM_OK;
}

#else

void
store_checksum_seal (const store_checksum_key_t *hash_key, void *value, size_t payload_len)
{
    uint32_t sum = store_checksum (hash_key, value, payload_len);
    unsigned char *trailer = (unsigned char *)value + payload_len;
    for (size_t i = 0; i < STORE_CHECKSUM_BYTES; i++)
        trailer[i] = (unsigned char)(sum >> (8 * i));
}

int
store_checksum_open (const store_checksum_key_t *hash_key, const void *value, size_t value_len,
                     size_t *payload_len)
{
    if (value_len < STORE_CHECKSUM_BYTES)
        return STORE_CHECKSUM_SHORT;
    size_t len = value_len - STORE_CHECKSUM_BYTES;
    uint32_t sum = store_checksum (hash_key, value, len);
    const unsigned char *trailer = (const unsigned char *)value + len;
    for (size_t i = 0; i < STORE_CHECKSUM_BYTES; i++)
        if (trailer[i] != (unsigned char)(sum >> (8 * i)))
            return STORE_CHECKSUM_MISMATCH;
    *payload_len = len;
    return STORE_CHECKSUM_OK;
}

#endif
