/* places: the places file the central team maintains. A place is a name (a named estate, a ward)
 * and a set of neighbourhood codes; a neighbourhood may belong to several places. The file is CSV
 * in UTF-8 (a BOM and CRLF line ends are allowed) headed `place,neighbourhood[,population]`, one
 * row per member; population is the neighbourhood's residents (e.g. ONS mid-year estimates), a
 * whole number, optional per row. Read whole and checked before anything uses it: a places_t
 * never holds half a file. docs/query.md ("Places") describes the file. */
#ifndef TOTALPLACE_PLACES_H
#define TOTALPLACE_PLACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _places_t places_t;

/* Bounds: a place's name is 1-128 bytes of UTF-8 without control characters; a population at most
 * PLACES_MAX_POPULATION (more than any neighbourhood, so that sums never overflow); a file at most
 * PLACES_MAX_FILE_BYTES. */
#define PLACES_MAX_NAME       128u
#define PLACES_MAX_POPULATION INT64_C (100000000)
#define PLACES_MAX_FILE_BYTES (16u * 1024u * 1024u)
#define PLACES_MAX_MEMBERS    100000u /* neighbourhoods in one place */

/* One place as read: its members in code order. */
typedef struct {
    const char *name;
    const char *const *neighbourhoods;
    size_t count;
    int64_t residents;  /* the sum of its members' known populations */
    size_t unpopulated; /* members the file gives no population */
} places_place_t;

/* Reads and checks the file at path. Every error names the file, the line and the field:
 * `places.csv:7: population "12x" is not a whole number from 0 to 100000000`. Refused: a header
 * other than place,neighbourhood[,population] (case and surrounding blanks aside); an empty name or
 * code; a code not valid as the wire's neighbourhood (1-32 bytes of A-Z a-z 0-9 . _ -); a bad
 * population; a neighbourhood given two different populations; the same place and neighbourhood
 * twice; a row with more cells than the header; a file that is not UTF-8 CSV or holds no place.
 * Returns the places, or NULL with the message in err. */
places_t *places_new (const char *path, char *err, size_t err_len);

/* Frees the places and sets *self_p to NULL; safe on NULL and twice. */
void places_destroy (places_t **self_p);

/* The file the places were read from (as given to places_new). */
const char *places_path (const places_t *self);

/* How many places, and the place at index (0 to count-1, in name order). */
size_t places_count (const places_t *self);
const places_place_t *places_at (const places_t *self, size_t index);

/* The place called name, or NULL. */
const places_place_t *places_find (const places_t *self, const char *name);

/* The population the file gives neighbourhood: true with *population, false when it gives none
 * (or the code is in no place). */
bool places_population (const places_t *self, const char *neighbourhood, int64_t *population);

#endif
