/* store_codec: the bytes of store format 2, as pure functions: the keys and values of records,
 * cells, neighbourhood totals and the dictionaries of interned texts. The store (store.c), verify,
 * the upgrade from format 1 and the tests share them; nothing here touches LMDB. Layout and reasons
 * in docs/architecture.md ("LMDB layout"). */
#ifndef TOTALPLACE_STORE_CODEC_H
#define TOTALPLACE_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an interned text is. Each kind numbers its texts 1, 2, 3, ... in the order they were first
 * stored; 0 means "none" (a record without supplier or description). The kind is the first byte
 * of a dictionary key. */
typedef enum {
    STORE_TEXT_BODY = 1,
    STORE_TEXT_NEIGHBOURHOOD,
    STORE_TEXT_SERVICE,
    STORE_TEXT_SUPPLIER,
    STORE_TEXT_DESCRIPTION,
    STORE_TEXT_KINDS /* one past the last kind */
} store_text_kind_t;

/* "body", "neighbourhood", "service", "supplier", "description"; "?" for anything else. */
const char *store_text_kind_name (unsigned kind);

/* The largest id a kind can give: keys hold ids as 4 big-endian bytes. */
#define STORE_TEXT_MAX_ID UINT32_MAX

/* ---------------------------------------------------------------- months */

/* Months are stored as their number since January 1970: 1970-01 is 0, 2999-12 is 12359. */
#define STORE_MONTHS 12360u

/* The number of a valid "YYYY-MM"; -1 when it is not one (period_parse's rule). */
int store_codec_month (const char *period);

/* "YYYY-MM" of a month number below STORE_MONTHS into out (at least 8 bytes); returns out. */
const char *store_codec_period (unsigned month, char *out);

/* ---------------------------------------------------------------- records */

/* A stored record without its key (body id and record id) and with its texts as ids. */
typedef struct {
    uint32_t revision;
    uint32_t month; /* below STORE_MONTHS */
    uint32_t neighbourhood, service;
    uint32_t supplier, description; /* 0: none */
    int64_t amount_pence;
    bool poolable, withdrawn;
} store_codec_record_t;

/* The longest encoded record value (without the checksum): a flags byte and six varints. */
#define STORE_CODEC_RECORD_MAX 48

/* Encodes record into out (STORE_CODEC_RECORD_MAX bytes); returns the length. */
size_t store_codec_record_encode (const store_codec_record_t *record, unsigned char *out);

/* Decodes a record value. Returns 0, or -1 when the bytes are not one record value exactly (unknown
 * flags, a varint too long or cut short, bytes left over, a field out of its range: revision 0, a
 * month past STORE_MONTHS, a required id 0, |amount| over 10^15 pence). */
int store_codec_record_decode (const void *value, size_t len, store_codec_record_t *record);

/* Records key: the body's id as 4 big-endian bytes, then the record id's bytes. So keys sort by
 * body, then by record id; a body's ascending transaction numbers land on neighbouring pages. */
#define STORE_CODEC_RECORD_KEY_MAX (4 + 128)
size_t store_codec_record_key (uint32_t body, const char *record_id, size_t record_id_len,
                               unsigned char *out, size_t out_len);

/* Splits a records key; -1 when it has no record id. *record_id points into key. */
int store_codec_record_key_split (const void *key, size_t len, uint32_t *body,
                                  const char **record_id, size_t *record_id_len);

/* ---------------------------------------------------------------- totals */

/* A cell: one total per (month, neighbourhood, body, service, poolable). */
typedef struct {
    uint32_t month, neighbourhood, body, service;
    bool poolable;
} store_codec_cell_t;

/* Cells key: month (2 bytes), neighbourhood, body, service (4 bytes each), all big-endian, then
 * 'Y' or 'N'. Month first: a group's new cells land in the region of their month; within a month
 * one neighbourhood's cells are one run, whose first 6 bytes are the same. */
#define STORE_CODEC_CELL_KEY_LEN 15
#define STORE_CODEC_CELL_PREFIX  6 /* month and neighbourhood */
void store_codec_cell_key (const store_codec_cell_t *cell, unsigned char *out);
int store_codec_cell_key_split (const void *key, size_t len, store_codec_cell_t *cell);

/* An id alone, 4 big-endian bytes: the key of neighbourhoods (the neighbourhood's id) and the
 * value of text_ids. Decoding fails unless the bytes are 4 and the id is not 0. */
#define STORE_CODEC_ID_LEN 4
void store_codec_id (uint32_t id, unsigned char *out);
int store_codec_id_decode (const void *bytes, size_t len, uint32_t *id);

/* A total (amount and records), as a cell or a neighbourhood holds it: two varints, the amount
 * zigzag-encoded. */
#define STORE_CODEC_AMOUNT_MAX 20
size_t store_codec_amount_encode (int64_t amount_pence, int64_t records, unsigned char *out);
/* -1 unless the bytes are exactly one total with records >= 1. */
int store_codec_amount_decode (const void *value, size_t len, int64_t *amount_pence,
                               int64_t *records);

/* ---------------------------------------------------------------- dictionaries */

/* texts: kind (1 byte) and id (4 bytes, big-endian) -> the text's bytes. */
#define STORE_CODEC_TEXT_KEY_LEN 5
void store_codec_text_key (unsigned kind, uint32_t id, unsigned char *out);
int store_codec_text_key_split (const void *key, size_t len, unsigned *kind, uint32_t *id);

/* text_ids: kind (1 byte), the text's hash (8 bytes, big-endian) and a probe number (1 byte) -> the
 * id (store_codec_id). Texts whose hashes collide take probes 0, 1, 2, ... in turn. */
#define STORE_CODEC_TEXT_ID_KEY_LEN 10
#define STORE_CODEC_MAX_PROBES      256
void store_codec_text_id_key (unsigned kind, uint64_t hash, unsigned probe, unsigned char *out);
int store_codec_text_id_key_split (const void *key, size_t len, unsigned *kind, uint64_t *hash,
                                   unsigned *probe);

/* The hash of a text in text_ids: SipHash-2-4 (64 bits) under the store's own 16-byte key (its
 * store id), so that nobody can choose texts that collide in a store they do not know. */
uint64_t store_codec_text_hash (const unsigned char key[16], const void *text, size_t len);

#endif
