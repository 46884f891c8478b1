/* record_ids: stable record ids for exports that carry no transaction number, derived from each
 * row's normalised content and the number of the identical rows above it in the same file, so that
 * the same export read twice gives the same ids and two genuinely equal payments keep two ids. */
#ifndef TOTALPLACE_RECORD_IDS_H
#define TOTALPLACE_RECORD_IDS_H

#include <stddef.h>
#include <stdint.h>

/* A derived id is "d:", 32 lowercase hex digits, "#" and the occurrence number (from 1), e.g.
 * "d:3f0c9a1e5b7d2c4f8a6e0b1d9c3f5a7e#2"; RECORD_IDS_LEN holds any of them with its NUL. */
#define RECORD_IDS_PREFIX "d:"
#define RECORD_IDS_LEN    64

/* How a field's value is normalised before it is hashed (see text_fold.h). */
typedef enum {
    RECORD_IDS_EXACT,    /* as given: values the reader has already put in canonical form */
    RECORD_IDS_TEXT,     /* text_fold: trimmed, whitespace runs made one space, ASCII lower case */
    RECORD_IDS_POSTCODE, /* text_fold_postcode: no whitespace, ASCII upper case */
} record_ids_form_t;

/* One named value of a row's content. */
typedef struct {
    const char *name;  /* e.g. "supplier"; part of the hash so values cannot change places */
    const char *value; /* NUL-terminated; "" for a field the file does not have */
    record_ids_form_t form;
} record_ids_field_t;

typedef struct _record_ids_t record_ids_t;

/* The ids of one file: an empty table of contents seen. Returns NULL when out of memory or when
 * libsodium cannot start. */
record_ids_t *record_ids_new (void);

/* Destroys the table; sets *self_p to NULL. Safe on NULL and twice. */
void record_ids_destroy (record_ids_t **self_p);

/* Derives the id of the next row whose content is fields[0..n-1]: the first 16 bytes of the
 * SHA-256 of a version tag and every field's name and normalised value, in the order given, then
 * "#" and how many rows with the same digest this table has now seen (1 the first time). The caller
 * always passes the same fields in the same order. Returns 0 with id filled, or -1 with err filled
 * when memory runs out (the table is unchanged). */
int record_ids_derive (record_ids_t *self, const record_ids_field_t *fields, size_t n,
                       char id[RECORD_IDS_LEN], char *err, size_t err_len);

/* Bytes of a content digest. */
#define RECORD_IDS_DIGEST_BYTES 16

/* The digest alone of fields[0..n-1], hashed as record_ids_derive does, without counting it.
 * Returns 0, or -1 with err filled when memory runs out. */
int record_ids_digest (record_ids_t *self, const record_ids_field_t *fields, size_t n,
                       uint8_t digest[RECORD_IDS_DIGEST_BYTES], char *err, size_t err_len);

/* Counts one more row under key (any RECORD_IDS_DIGEST_BYTES bytes, e.g. a digest) and returns how
 * many rows this table has now seen with it (1 the first time), or 0 when memory runs out. */
uint64_t record_ids_count (record_ids_t *self, const uint8_t key[RECORD_IDS_DIGEST_BYTES]);

/* Distinct contents seen so far. */
size_t record_ids_distinct (const record_ids_t *self);

#endif
