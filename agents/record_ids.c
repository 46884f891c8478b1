/* record_ids: SHA-256 from libsodium (already linked for CURVE); 128 bits of it make an accidental
 * collision between two rows of one body negligible. The occurrence counts live in an
 * open-addressed table of digests, kept at most half full: 48 to 96 bytes per distinct row of a
 * file. */
#include "record_ids.h"
#include "err_text.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_fold.h"

#define DIGEST_BYTES 16
/* Changing how ids are formed must change this tag, or old and new ids could mix. */
static const char VERSION_TAG[] = "totalplace derived record id v1";

typedef struct {
    uint8_t digest[DIGEST_BYTES];
    uint64_t count; /* 0: empty slot */
} slot_t;

struct _record_ids_t {
    slot_t *slots;
    size_t capacity; /* a power of two */
    size_t used;
    char *scratch; /* a folded value */
    size_t scratch_len;
};

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

record_ids_t *
record_ids_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    record_ids_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = 1024;
    self->slots = calloc (self->capacity, sizeof *self->slots);
    if (!self->slots)
        record_ids_destroy (&self);
    return self;
}

void
record_ids_destroy (record_ids_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    record_ids_t *self = *self_p;
    free (self->slots);
    free (self->scratch);
    free (self);
    *self_p = NULL;
}

size_t
record_ids_distinct (const record_ids_t *self)
{
    return self->used;
}

/* The digest is already uniformly spread: its first bytes are the hash. */
static size_t
slot_of (const slot_t *slots, size_t capacity, const uint8_t digest[DIGEST_BYTES])
{
    uint64_t h;
    memcpy (&h, digest, sizeof h);
    size_t i = (size_t)h & (capacity - 1);
    while (slots[i].count && memcmp (slots[i].digest, digest, DIGEST_BYTES) != 0)
        i = (i + 1) & (capacity - 1);
    return i;
}

static int
grow (record_ids_t *self)
{
    size_t capacity = self->capacity * 2;
    slot_t *slots = calloc (capacity, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].count)
            slots[slot_of (slots, capacity, self->slots[i].digest)] = self->slots[i];
    free (self->slots);
    self->slots = slots;
    self->capacity = capacity;
    return 0;
}

/* Normalises value into the scratch buffer; returns it, or NULL when out of memory. */
static const char *
normalised (record_ids_t *self, const char *value, record_ids_form_t form)
{
    if (form == RECORD_IDS_EXACT)
        return value;
    size_t (*fold) (const char *, char *, size_t) =
        form == RECORD_IDS_POSTCODE ? text_fold_postcode : text_fold;
    size_t len = fold (value, self->scratch, self->scratch_len);
    if (len >= self->scratch_len) {
        size_t want = len + 1 > 256 ? len + 1 : 256;
        char *scratch = realloc (self->scratch, want);
        if (!scratch)
            return NULL;
        self->scratch = scratch;
        self->scratch_len = want;
        fold (value, self->scratch, self->scratch_len);
    }
    return self->scratch;
}

int
record_ids_digest (record_ids_t *self, const record_ids_field_t *fields, size_t n,
                   uint8_t digest[RECORD_IDS_DIGEST_BYTES], char *err, size_t err_len)
{
    /* Names and values hold no NUL, so NUL-separated pieces cannot be read two ways. */
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    crypto_hash_sha256_update (&state, (const uint8_t *)VERSION_TAG, sizeof VERSION_TAG);
    for (size_t i = 0; i < n; i++) {
        const char *value =
            normalised (self, fields[i].value ? fields[i].value : "", fields[i].form);
        if (!value)
            return fail (err, err_len, "out of memory deriving a record id");
        crypto_hash_sha256_update (&state, (const uint8_t *)fields[i].name,
                                   strlen (fields[i].name) + 1);
        crypto_hash_sha256_update (&state, (const uint8_t *)value, strlen (value) + 1);
    }
    uint8_t full[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&state, full);
    memcpy (digest, full, RECORD_IDS_DIGEST_BYTES);
    return 0;
}

uint64_t
record_ids_count (record_ids_t *self, const uint8_t key[RECORD_IDS_DIGEST_BYTES])
{
    if ((self->used + 1) * 2 > self->capacity && grow (self) != 0)
        return 0;
    size_t i = slot_of (self->slots, self->capacity, key);
    if (!self->slots[i].count) {
        memcpy (self->slots[i].digest, key, DIGEST_BYTES);
        self->used++;
    }
    return ++self->slots[i].count;
}

int
record_ids_derive (record_ids_t *self, const record_ids_field_t *fields, size_t n,
                   char id[RECORD_IDS_LEN], char *err, size_t err_len)
{
    uint8_t full[DIGEST_BYTES];
    if (record_ids_digest (self, fields, n, full, err, err_len) != 0)
        return -1;
    uint64_t occurrence = record_ids_count (self, full);
    if (occurrence == 0)
        return fail (err, err_len, "out of memory counting identical rows");

    static const char hex[] = "0123456789abcdef";
    char *p = id;
    memcpy (p, RECORD_IDS_PREFIX, sizeof RECORD_IDS_PREFIX - 1);
    p += sizeof RECORD_IDS_PREFIX - 1;
    for (size_t b = 0; b < DIGEST_BYTES; b++) {
        *p++ = hex[full[b] >> 4];
        *p++ = hex[full[b] & 15];
    }
    snprintf (p, RECORD_IDS_LEN - (size_t)(p - id), "#%llu", (unsigned long long)occurrence);
    return 0;
}
