/* id_repeats: notices a record key (body and id, at one revision) that comes back within one file,
 * and whether it came back with the same content (a copy of the row) or with other content
 * (typically another invoice line sharing the transaction number), so that no line's money is
 * merged away silently. Memory: 14 bytes per distinct id in tables 72% to 90% full, so 14 to 19.5
 * bytes per distinct id (39 MB at most for 2,000,000 ids), grown a 256th at a time. */
#ifndef TOTALPLACE_ID_REPEATS_H
#define TOTALPLACE_ID_REPEATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct _id_repeats_t id_repeats_t;

typedef enum {
    ID_REPEATS_NEW = 0, /* the first row with this id and revision */
    ID_REPEATS_COPY,    /* an earlier row had this id, revision and content */
    ID_REPEATS_OTHER,   /* an earlier row had this id and revision with other content */
} id_repeats_kind_t;

/* An empty table for one file. NULL when out of memory or libsodium cannot start. */
id_repeats_t *id_repeats_new (void);

/* Destroys the table; sets *self_p to NULL. Safe on NULL and twice. */
void id_repeats_destroy (id_repeats_t **self_p);

/* Notes a row: its body, id, revision, a digest of its content (any 16 bytes that differ when the
 * content does) and its line. Returns the kind, with *first_line the line of the first row with
 * this id and revision, and *first_other true the first time this id comes back with other
 * content (so distinct ids can be counted); or -1 when out of memory. Ids are compared by 56 bits
 * of a keyed hash and contents by 32 bits of the digest: two different ids of one file taken for
 * one has a chance of about n^2 / 2^57 (3 in 100,000 for a file of 2,000,000 ids; a held file,
 * never lost money). */
int id_repeats_see (id_repeats_t *self, const char *body_id, const char *id, uint32_t revision,
                    const uint8_t content[16], size_t line, size_t *first_line, int *first_other);

/* Distinct ids (with revision) seen. */
size_t id_repeats_distinct (const id_repeats_t *self);

/* Bytes the table takes now. */
size_t id_repeats_bytes (const id_repeats_t *self);

#endif
