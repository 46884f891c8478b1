/* id_repeats: an open-addressed table of (id hash, content bits, first line), SipHash from
 * libsodium (already linked for CURVE and derived ids) keyed with a constant: the hash only has to
 * spread the ids of one file, not resist anyone. */
#include "id_repeats.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MASK     0x7FFFFFFFu
#define REPEATED_FLAG 0x80000000u /* this id already came back with other content */

typedef struct {
    uint64_t key;     /* 0: empty slot */
    uint32_t content; /* 32 bits of the first row's content digest */
    uint32_t line;    /* first row's line (capped), plus REPEATED_FLAG */
} slot_t;

struct _id_repeats_t {
    slot_t *slots;
    size_t capacity; /* a power of two */
    size_t used;
};

static const unsigned char HASH_KEY[crypto_shorthash_KEYBYTES] = "totalplace ids.";

id_repeats_t *
id_repeats_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    id_repeats_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = 1024;
    self->slots = calloc (self->capacity, sizeof *self->slots);
    if (!self->slots)
        id_repeats_destroy (&self);
    return self;
}

void
id_repeats_destroy (id_repeats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->slots);
    free (*self_p);
    *self_p = NULL;
}

size_t
id_repeats_distinct (const id_repeats_t *self)
{
    return self->used;
}

static size_t
slot_of (const slot_t *slots, size_t capacity, uint64_t key)
{
    size_t i = (size_t)(key ^ (key >> 32)) & (capacity - 1);
    while (slots[i].key && slots[i].key != key)
        i = (i + 1) & (capacity - 1);
    return i;
}

static int
grow (id_repeats_t *self)
{
    size_t capacity = self->capacity * 2;
    slot_t *slots = calloc (capacity, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].key)
            slots[slot_of (slots, capacity, self->slots[i].key)] = self->slots[i];
    free (self->slots);
    self->slots = slots;
    self->capacity = capacity;
    return 0;
}

int
id_repeats_see (id_repeats_t *self, const char *body_id, const char *id, uint32_t revision,
                const uint8_t content[16], size_t line, size_t *first_line, int *first_other)
{
    /* Body, id and revision, NUL-separated so that none can run into the next. */
    size_t body_len = strlen (body_id), id_len = strlen (id);
    uint8_t hashed[crypto_shorthash_BYTES];
    unsigned char buffer[512];
    size_t input_len = body_len + 1 + id_len + 1 + 4;
    unsigned char *input = input_len > sizeof buffer ? malloc (input_len) : buffer;
    if (!input)
        return -1;
    memcpy (input, body_id, body_len + 1);
    memcpy (input + body_len + 1, id, id_len + 1);
    memcpy (input + body_len + 1 + id_len + 1, &revision, 4);
    crypto_shorthash (hashed, input, input_len, HASH_KEY);
    if (input != buffer)
        free (input);
    uint64_t key;
    memcpy (&key, hashed, sizeof key);
    if (key == 0)
        key = 1;
    uint32_t bits;
    memcpy (&bits, content, sizeof bits);

    if ((self->used + 1) * 2 > self->capacity && grow (self) != 0)
        return -1;
    size_t i = slot_of (self->slots, self->capacity, key);
    slot_t *slot = &self->slots[i];
    *first_other = 0;
    if (!slot->key) {
        slot->key = key;
        slot->content = bits;
        slot->line = line < LINE_MASK ? (uint32_t)line : LINE_MASK;
        self->used++;
        *first_line = line;
        return ID_REPEATS_NEW;
    }
    *first_line = slot->line & LINE_MASK;
    if (slot->content == bits)
        return ID_REPEATS_COPY;
    if (!(slot->line & REPEATED_FLAG)) {
        slot->line |= REPEATED_FLAG;
        *first_other = 1;
    }
    return ID_REPEATS_OTHER;
}
