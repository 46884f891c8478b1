/* place_totals: pooling and places from one store question each. */
#include "place_totals.h"

#include <stdlib.h>
#include <string.h>

#include "err_text.h"
#include "report_page.h"

#define fail(err, err_len, code, ...) err_text (err, err_len, code, __VA_ARGS__)

/* Rows of a question kept for a second pass: up to three keys, the amount, and whether the last
 * key was the poolable "yes". */
typedef struct {
    char *keys[2];
    int64_t amount_pence, poolable_pence, records;
} kept_t;

typedef struct {
    kept_t *rows;
    size_t count, capacity;
    size_t key_count; /* keys kept per row (the poolable key is folded into the amounts) */
    bool out_of_memory, overflow;
} kept_set_t;

static void
kept_clear (kept_set_t *set)
{
    for (size_t i = 0; i < set->count; i++)
        for (size_t k = 0; k < set->key_count; k++)
            free (set->rows[i].keys[k]);
    free (set->rows);
    *set = (kept_set_t){0};
}

/* Adds a row whose last key is poolable ("no"/"yes"): rows with the same other keys arrive next to
 * each other (they are in key order), so they fold into one. */
static int
kept_add (void *arg, const char *const *keys, store_amount_t amount)
{
    kept_set_t *set = arg;
    kept_t *last = set->count ? &set->rows[set->count - 1] : NULL;
    bool same = last != NULL;
    for (size_t k = 0; same && k < set->key_count; k++)
        same = strcmp (last->keys[k], keys[k]) == 0;
    if (!same) {
        if (set->count == set->capacity) {
            size_t capacity = set->capacity ? set->capacity * 2 : 64;
            kept_t *rows = realloc (set->rows, capacity * sizeof *rows);
            if (!rows) {
                set->out_of_memory = true;
                return 1;
            }
            set->rows = rows;
            set->capacity = capacity;
        }
        last = &set->rows[set->count];
        *last = (kept_t){0};
        for (size_t k = 0; k < set->key_count; k++)
            if (!(last->keys[k] = strdup (keys[k]))) {
                for (size_t j = 0; j < k; j++)
                    free (last->keys[j]);
                set->out_of_memory = true;
                return 1;
            }
        set->count++;
    }
    bool poolable = strcmp (keys[set->key_count], "yes") == 0;
    if (__builtin_add_overflow (last->amount_pence, amount.amount_pence, &last->amount_pence) ||
        __builtin_add_overflow (last->records, amount.records, &last->records) ||
        (poolable && __builtin_add_overflow (last->poolable_pence, amount.amount_pence,
                                             &last->poolable_pence))) {
        set->overflow = true;
        return 1;
    }
    return 0;
}

/* Asks question (its last breakdown poolable) into set. */
static int
kept_ask (store_t *store, const store_question_t *question, kept_set_t *set, char *err,
          size_t err_len)
{
    set->key_count = question->by_count - 1;
    int rc = store_totals_of (store, question, kept_add, set, err, err_len);
    if (rc == 0 && set->out_of_memory)
        rc = fail (err, err_len, STORE_ERR, "out of memory");
    if (rc == 0 && set->overflow)
        rc = fail (err, err_len, STORE_ERR, "a total overflows int64 pence");
    return rc;
}

/* A neighbourhood's total while ranking. */
typedef struct {
    const char *code;
    int64_t amount_pence;
    size_t first, end; /* its rows */
} ranked_t;

static int
compare_ranked (const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->amount_pence != y->amount_pence)
        return x->amount_pence > y->amount_pence ? -1 : 1;
    return strcmp (x->code, y->code);
}

static int
pooling_all (store_t *store, place_totals_pooling_fn *row, void *arg, char *err, size_t err_len)
{
    store_question_t question = {.by = {STORE_BY_NEIGHBOURHOOD, STORE_BY_BODY, STORE_BY_POOLABLE},
                                 .by_count = 3};
    kept_set_t set = {0};
    ranked_t *ranked = NULL;
    size_t count = 0;
    int rc = kept_ask (store, &question, &set, err, err_len);
    if (rc == 0 && !(ranked = malloc ((set.count ? set.count : 1) * sizeof *ranked)))
        rc = fail (err, err_len, STORE_ERR, "out of memory");
    for (size_t i = 0; rc == 0 && i < set.count; i++) {
        if (i == 0 || strcmp (set.rows[i - 1].keys[0], set.rows[i].keys[0]) != 0)
            ranked[count++] = (ranked_t){set.rows[i].keys[0], 0, i, i};
        ranked_t *r = &ranked[count - 1];
        r->end = i + 1;
        if (__builtin_add_overflow (r->amount_pence, set.rows[i].amount_pence, &r->amount_pence))
            rc = fail (err, err_len, STORE_ERR, "the total of %s overflows int64 pence", r->code);
    }
    if (rc == 0 && count)
        qsort (ranked, count, sizeof *ranked, compare_ranked);
    bool stop = false;
    for (size_t n = 0; rc == 0 && !stop && n < count; n++)
        for (size_t i = ranked[n].first; !stop && i < ranked[n].end; i++) {
            const kept_t *k = &set.rows[i];
            place_totals_pooling_t out = {k->keys[0], k->keys[1], k->amount_pence,
                                          k->poolable_pence, k->records};
            stop = row (arg, &out) != 0;
        }
    free (ranked);
    kept_clear (&set);
    return rc;
}

int
place_totals_pooling (store_t *store, const char *where, const char *const *codes, size_t count,
                      bool strict, place_totals_pooling_fn *row, void *arg, char *err,
                      size_t err_len)
{
    if (!codes)
        return pooling_all (store, row, arg, err, err_len);
    store_question_t question = {.neighbourhoods = codes,
                                 .neighbourhood_count = count,
                                 .by = {STORE_BY_BODY, STORE_BY_POOLABLE},
                                 .by_count = 2};
    kept_set_t set = {0};
    int rc = kept_ask (store, &question, &set, err, err_len);
    if (rc == 0 && strict && set.count == 0)
        rc = fail (err, err_len, STORE_ERR_NOTFOUND,
                   "neighbourhood %s has no records in this store", where);
    for (size_t i = 0; rc == 0 && i < set.count; i++) {
        const kept_t *k = &set.rows[i];
        place_totals_pooling_t out = {where, k->keys[0], k->amount_pence, k->poolable_pence,
                                      k->records};
        if (row (arg, &out))
            break;
    }
    kept_clear (&set);
    return rc;
}

/* Every member code of every place, for one question about all of them. */
static const char **
member_codes (const places_t *places, size_t *count)
{
    size_t total = 0;
    for (size_t p = 0; p < places_count (places); p++)
        total += places_at (places, p)->count;
    const char **codes = malloc ((total ? total : 1) * sizeof *codes);
    if (!codes)
        return NULL;
    *count = 0;
    for (size_t p = 0; p < places_count (places); p++) {
        const places_place_t *place = places_at (places, p);
        for (size_t i = 0; i < place->count; i++)
            codes[(*count)++] = place->neighbourhoods[i];
    }
    return codes;
}

/* The kept row of code (rows sorted by code), or NULL. */
static const kept_t *
kept_find (const kept_set_t *set, const char *code)
{
    size_t low = 0, high = set->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        int c = strcmp (set->rows[mid].keys[0], code);
        if (c == 0)
            return &set->rows[mid];
        if (c < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return NULL;
}

/* Every member neighbourhood's total and poolable part, in one question. */
static int
members_ask (store_t *store, const places_t *places, kept_set_t *set, char *err, size_t err_len)
{
    size_t count = 0;
    const char **codes = member_codes (places, &count);
    if (!codes)
        return fail (err, err_len, STORE_ERR, "out of memory");
    store_question_t question = {.neighbourhoods = codes,
                                 .neighbourhood_count = count,
                                 .by = {STORE_BY_NEIGHBOURHOOD, STORE_BY_POOLABLE},
                                 .by_count = 2};
    int rc = kept_ask (store, &question, set, err, err_len);
    free (codes);
    return rc;
}

static int
compare_places (const void *a, const void *b)
{
    const place_totals_place_t *x = a, *y = b;
    if (x->amount_pence != y->amount_pence)
        return x->amount_pence > y->amount_pence ? -1 : 1;
    return strcmp (x->place, y->place);
}

int
place_totals_rank (store_t *store, const places_t *places, place_totals_place_fn *fn, void *arg,
                   char *err, size_t err_len)
{
    kept_set_t set = {0};
    size_t count = places_count (places);
    place_totals_place_t *ranked = calloc (count ? count : 1, sizeof *ranked);
    if (!ranked)
        return fail (err, err_len, STORE_ERR, "out of memory");
    int rc = members_ask (store, places, &set, err, err_len);
    for (size_t p = 0; rc == 0 && p < count; p++) {
        const places_place_t *place = places_at (places, p);
        place_totals_place_t *out = &ranked[p];
        *out = (place_totals_place_t){
            place->name, place->count, 0, place->residents, place->unpopulated, 0, 0, 0};
        for (size_t i = 0; rc == 0 && i < place->count; i++) {
            const kept_t *k = kept_find (&set, place->neighbourhoods[i]);
            if (!k) {
                out->without_records++;
                continue;
            }
            if (__builtin_add_overflow (out->amount_pence, k->amount_pence, &out->amount_pence) ||
                __builtin_add_overflow (out->poolable_pence, k->poolable_pence,
                                        &out->poolable_pence) ||
                __builtin_add_overflow (out->records, k->records, &out->records))
                rc = fail (err, err_len, STORE_ERR,
                           "the total of place \"%s\" overflows int64 pence", place->name);
        }
    }
    if (rc == 0 && count)
        qsort (ranked, count, sizeof *ranked, compare_places);
    for (size_t p = 0; rc == 0 && p < count; p++)
        if (fn (arg, &ranked[p]))
            break;
    free (ranked);
    kept_clear (&set);
    return rc;
}

bool
place_totals_per_resident (int64_t amount_pence, int64_t residents, int64_t *per_resident)
{
    /* One rounding rule for the places table and the report page. */
    return report_page_per_resident (amount_pence, residents, per_resident) == 0;
}

int
place_totals_unknown (store_t *store, const places_t *places,
                      int (*fn) (void *arg, const char *place, const char *code), void *arg,
                      char *err, size_t err_len)
{
    kept_set_t set = {0};
    int rc = members_ask (store, places, &set, err, err_len);
    bool stop = false;
    for (size_t p = 0; rc == 0 && !stop && p < places_count (places); p++) {
        const places_place_t *place = places_at (places, p);
        for (size_t i = 0; !stop && i < place->count; i++)
            if (!kept_find (&set, place->neighbourhoods[i]))
                stop = fn (arg, place->name, place->neighbourhoods[i]) != 0;
    }
    kept_clear (&set);
    return rc;
}
