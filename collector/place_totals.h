/* place_totals: the answers built on store_totals_of that the query server and the CLI's --db both
 * give, so that they are computed once: the pooling rows of a neighbourhood, a place or all, and
 * the places ranked by total. Each reads ONE store question (one read transaction). */
#ifndef TOTALPLACE_PLACE_TOTALS_H
#define TOTALPLACE_PLACE_TOTALS_H

#include <stddef.h>
#include <stdint.h>

#include "places.h"
#include "store.h"

/* One pooling row: a body's spending in a neighbourhood (or place) and its poolable part. */
typedef struct {
    const char *where; /* the neighbourhood's code, or the place's name */
    const char *body;
    int64_t amount_pence, poolable_pence, records;
} place_totals_pooling_t;

typedef int (place_totals_pooling_fn) (void *arg, const place_totals_pooling_t *row);

/* The pooling rows of where: with codes (count of them) the sum of those neighbourhoods by body,
 * every row's `where` being where (a place, or one neighbourhood); with codes NULL every
 * neighbourhood by body, neighbourhoods ranked by total (largest first, then by code). Rows of one
 * neighbourhood come by body. With strict (one neighbourhood asked by its code), no records is
 * STORE_ERR_NOTFOUND. Returns 0 or a store error with a message. */
int place_totals_pooling (store_t *store, const char *where, const char *const *codes, size_t count,
                          bool strict, place_totals_pooling_fn *row, void *arg, char *err,
                          size_t err_len);

/* One place's figures. */
typedef struct {
    const char *place;
    size_t neighbourhoods;  /* members in the places file */
    size_t without_records; /* members the store has no records of */
    int64_t residents;      /* the sum of the members' known populations */
    size_t unpopulated;     /* members the file gives no population */
    int64_t amount_pence, poolable_pence, records;
} place_totals_place_t;

typedef int (place_totals_place_fn) (void *arg, const place_totals_place_t *place);

/* Every place of places with its figures, ranked by total (largest first, then by name). Returns 0
 * or a store error (an overflow of int64 pence included) with a message. */
int place_totals_rank (store_t *store, const places_t *places, place_totals_place_fn *fn, void *arg,
                       char *err, size_t err_len);

/* Pence per resident, amount_pence / residents rounded half away from zero in integers; false
 * when residents is 0 (no per-resident figure). */
bool place_totals_per_resident (int64_t amount_pence, int64_t residents, int64_t *per_resident);

/* Members of place the store has no records of, by code, in the places file's order; for the
 * warning when places are loaded. Calls fn once per such code. Returns 0 or a store error. */
int place_totals_unknown (store_t *store, const places_t *places,
                          int (*fn) (void *arg, const char *place, const char *code), void *arg,
                          char *err, size_t err_len);

#endif
