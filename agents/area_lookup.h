/* area_lookup: a small CSV file, read once at start-up and on reload, that places a spending row
 * in one or more neighbourhoods from the value of one of its columns: a cost centre, an
 * organisational unit or a ward mapped to neighbourhood codes (with weights when a value is split
 * over several), or a postcode mapped to its LSOA in the ONS Postcode Directory layout. */
#ifndef TOTALPLACE_AREA_LOOKUP_H
#define TOTALPLACE_AREA_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A key (a value or a postcode) longer than this, once folded, is refused in the file and never
 * found in an export. */
#define AREA_LOOKUP_MAX_KEY 256u

/* One neighbourhood a key maps to, and its weight when the key maps to several. */
typedef struct {
    const char *code; /* e.g. "E01007308": 1-32 characters of A-Z a-z 0-9 . _ - */
    uint32_t weight;  /* 1..APPORTION_MAX_WEIGHT_TOTAL; 1 when the file has no weight column */
} area_part_t;

typedef struct {
    /* Header names in the lookup file, each a comma-separated list in which the first name the
     * file has wins (matched ignoring case and spaces, as export headers are). */
    const char *key_columns;  /* the values looked up, e.g. "Organisational Unit" or "pcds, pcd" */
    const char *code_columns; /* the neighbourhood codes, e.g. "Neighbourhood" or "lsoa21" */
    const char *weight_columns; /* NULL or "": no weights; the column may also be absent */
    /* true: keys are postcodes (compared without spaces, in upper case), each maps to exactly one
     * area, and rows with an empty area (postcodes outside any LSOA) are skipped. false: keys are
     * values compared as text_fold does; a value on several rows maps to several neighbourhoods. */
    bool postcodes;
    /* Most neighbourhoods one value may map to (1 or more); more is an error naming the value. */
    size_t max_parts;
} area_lookup_options_t;

typedef struct _area_lookup_t area_lookup_t;

/* Reads the lookup CSV at path (UTF-8, optional BOM, any line endings; the first non-blank row is
 * the header; other columns are ignored). Errors name the file and line: a missing column, an
 * empty key, a code that is not an identifier, a weight that is not a whole number from 1 to
 * APPORTION_MAX_WEIGHT_TOTAL, a key mapped twice to the same neighbourhood, a postcode mapped to
 * two areas, a value over max_parts neighbourhoods or whose weights add up past the limit.
 * A value's neighbourhoods are kept in the order of their codes, whatever the file's row order, so
 * a split never depends on how the file was sorted. Returns NULL with err filled on any error. */
area_lookup_t *area_lookup_load (const char *path, const area_lookup_options_t *options, char *err,
                                 size_t err_len);

/* Destroys a lookup; sets *self_p to NULL. Safe on NULL and twice. */
void area_lookup_destroy (area_lookup_t **self_p);

/* Looks text (an export cell) up after folding it as the keys were folded. Returns the number of
 * neighbourhoods it maps to, with *parts pointing at them (valid while the lookup lives), or 0
 * when it is not in the file (also for empty text). */
size_t area_lookup_find (const area_lookup_t *self, const char *text, const area_part_t **parts);

/* Distinct keys in the file. */
size_t area_lookup_size (const area_lookup_t *self);

/* The most neighbourhoods any one key maps to (0 for an empty file). */
size_t area_lookup_max_parts (const area_lookup_t *self);

#endif
