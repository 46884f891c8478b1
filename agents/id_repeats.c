/* id_repeats: 256 open-addressed tables (shards) of 14-byte entries (48 bits of the id's hash, 32
 * bits of the first row's content digest, its line and a flag), SipHash from libsodium (already
 * linked for CURVE and derived ids) keyed with a constant: the hash only has to spread the ids of
 * one file, not resist anyone. The shard is chosen by 8 more bits of the hash, so 56 bits of it
 * tell ids apart. Each shard grows by a quarter when it is 90% full: the entries take between 14
 * and 19.5 bytes per distinct id (2,000,000 ids: 28 to 39 MB), and growing a shard never holds
 * two copies of the whole table. Linear probing stays cheap at that load for a table this
 * size. */
#include "id_repeats.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS        256
#define ENTRY_BYTES   14
#define FIRST_SLOTS   16
#define LINE_MASK     0x7FFFFFFFu
#define REPEATED_FLAG 0x80000000u               /* this id already came back with other content */
#define KEY_MASK      UINT64_C (0xFFFFFFFFFFFF) /* 48 bits */

/* An entry, unpacked. line 0 marks an empty slot (lines start at 1). */
typedef struct {
    uint64_t key;     /* 48 bits */
    uint32_t content; /* 32 bits of the first row's content digest */
    uint32_t line;    /* first row's line (capped), plus REPEATED_FLAG */
} entry_t;

typedef struct {
    uint8_t *slots; /* capacity * ENTRY_BYTES */
    size_t capacity, used;
} shard_t;

struct _id_repeats_t {
    shard_t shards[SHARDS];
    size_t used;
};

static const unsigned char HASH_KEY[crypto_shorthash_KEYBYTES] = "totalplace ids.";

static void
entry_get (const uint8_t *at, entry_t *entry)
{
    uint64_t key = 0;
    for (int i = 0; i < 6; i++)
        key |= (uint64_t)at[i] << (8 * i);
    entry->key = key;
    memcpy (&entry->content, at + 6, 4);
    memcpy (&entry->line, at + 10, 4);
}

static void
entry_put (uint8_t *at, const entry_t *entry)
{
    for (int i = 0; i < 6; i++)
        at[i] = (uint8_t)(entry->key >> (8 * i));
    memcpy (at + 6, &entry->content, 4);
    memcpy (at + 10, &entry->line, 4);
}

static uint32_t
entry_line (const uint8_t *at)
{
    uint32_t line;
    memcpy (&line, at + 10, 4);
    return line;
}

static uint64_t
entry_key (const uint8_t *at)
{
    uint64_t key = 0;
    for (int i = 0; i < 6; i++)
        key |= (uint64_t)at[i] << (8 * i);
    return key;
}

/* The first slot to look at: the key's low 32 bits scaled to the capacity (any capacity). */
static size_t
home_of (uint64_t key, size_t capacity)
{
    return (size_t)(((key & 0xFFFFFFFFu) * (uint64_t)capacity) >> 32);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t
slot_of (const shard_t *shard, uint64_t key)
{
    size_t i = home_of (key, shard->capacity);
    for (;;) {
        const uint8_t *at = shard->slots + i * ENTRY_BYTES;
        if (entry_line (at) == 0 || entry_key (at) == key)
            return i;
        if (++i == shard->capacity)
            i = 0;
    }
}

static int
shard_grow (shard_t *shard)
{
    size_t capacity = shard->capacity ? shard->capacity + shard->capacity / 4 : FIRST_SLOTS;
    shard_t grown = {calloc (capacity, ENTRY_BYTES), capacity, shard->used};
    if (!grown.slots)
        return -1;
    for (size_t i = 0; i < shard->capacity; i++) {
        const uint8_t *at = shard->slots + i * ENTRY_BYTES;
        if (entry_line (at) == 0)
            continue;
        memcpy (grown.slots + slot_of (&grown, entry_key (at)) * ENTRY_BYTES, at, ENTRY_BYTES);
    }
    free (shard->slots);
    *shard = grown;
    return 0;
}

id_repeats_t *
id_repeats_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    /* Shards are allocated at their first id: a small file costs little. */
    return calloc (1, sizeof (id_repeats_t));
}

void
id_repeats_destroy (id_repeats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t s = 0; s < SHARDS; s++)
        free ((*self_p)->shards[s].slots);
    free (*self_p);
    *self_p = NULL;
}

size_t
id_repeats_distinct (const id_repeats_t *self)
{
    return self->used;
}

size_t
id_repeats_bytes (const id_repeats_t *self)
{
    size_t bytes = sizeof *self;
    for (size_t s = 0; s < SHARDS; s++)
        bytes += self->shards[s].capacity * ENTRY_BYTES;
    return bytes;
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
    uint64_t hash;
    memcpy (&hash, hashed, sizeof hash);
    shard_t *shard = &self->shards[hash >> 56];
    uint64_t key = hash & KEY_MASK;
    uint32_t bits;
    memcpy (&bits, content, sizeof bits);

    /* At most 90% full: grown before the entry that would pass it (and made at the first). */
    if ((shard->used + 1) * 10 > shard->capacity * 9 && shard_grow (shard) != 0)
        return -1;
    uint8_t *at = shard->slots + slot_of (shard, key) * ENTRY_BYTES;
    entry_t entry;
    entry_get (at, &entry);
    *first_other = 0;
    if (entry.line == 0) {
        entry = (entry_t){key, bits, line == 0 ? 1 : line < LINE_MASK ? (uint32_t)line : LINE_MASK};
        entry_put (at, &entry);
        shard->used++;
        self->used++;
        *first_line = line;
        return ID_REPEATS_NEW;
    }
    *first_line = entry.line & LINE_MASK;
    if (entry.content == bits)
        return ID_REPEATS_COPY;
    if (!(entry.line & REPEATED_FLAG)) {
        entry.line |= REPEATED_FLAG;
        entry_put (at, &entry);
        *first_other = 1;
    }
    return ID_REPEATS_OTHER;
}
