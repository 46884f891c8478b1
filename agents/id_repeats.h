/* id_repeats: notices a record key (body and id, at one revision) that comes back within one file,
 * and whether it came back with the same content (a copy of the row) or with other content
 * (typically another invoice line sharing the transaction number), so that no line's money is
 * merged away silently. Memory: 16 bytes per distinct id, in a table at most half full. */
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
 * content (so distinct ids can be counted); or -1 when out of memory. Ids are compared by a 64-bit
 * keyed hash and contents by 32 bits of the digest: two different ids of one file taken for one
 * has a chance of about n^2 / 2^65 (a held file, never lost money). */
int id_repeats_see (id_repeats_t *self, const char *body_id, const char *id, uint32_t revision,
                    const uint8_t content[16], size_t line, size_t *first_line, int *first_other);

/* Distinct ids (with revision) seen. */
size_t id_repeats_distinct (const id_repeats_t *self);

#endif
