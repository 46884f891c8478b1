/* cli_source: the store read directly (--db), and the choice of source. */
#include "cli_source.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli_client.h"
#include "cli_store.h"

/* The store read directly, and the places file given with --places (NULL without). */
typedef struct {
    store_t *store;
    places_t *places;
} db_t;

static int
db_neighbourhoods (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    db_t *db = handle;
    return store_neighbourhoods (db->store, row, arg, err, err_len);
}

static int
db_totals (void *handle, const char *neighbourhood, store_breakdown_t by,
           const store_filter_t *filter, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    db_t *db = handle;
    return store_totals (db->store, neighbourhood, by, filter, row, arg, err, err_len);
}

static int
db_get_record (void *handle, const char *body_id, const char *record_id,
               Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    db_t *db = handle;
    return store_get_record (db->store, body_id, record_id, record, err, err_len);
}

static int
db_counters (void *handle, store_counters_t *counters, char *err, size_t err_len)
{
    db_t *db = handle;
    return store_counters (db->store, counters, err, err_len);
}

static int
db_agents (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    db_t *db = handle;
    return store_agents (db->store, fn, arg, err, err_len);
}

static int
db_identity (void *handle, store_identity_t *identity, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    db_t *db = handle;
    return store_identity (db->store, identity);
}

/* The neighbourhoods of a question: one (*neighbourhood), a place's, or all (NULL). */
static int
db_where (db_t *db, const char *const *neighbourhood, const char *place, store_question_t *question,
          char *err, size_t err_len)
{
    if (*neighbourhood) {
        question->neighbourhoods = neighbourhood;
        question->neighbourhood_count = 1;
        question->strict = true;
        return 0;
    }
    if (!place)
        return 0;
    const places_place_t *found = db->places ? places_find (db->places, place) : NULL;
    if (!found) {
        snprintf (err, err_len, "unknown place \"%.128s\" (not in %s)", place,
                  db->places ? places_path (db->places) : "the places file");
        return STORE_ERR_NOTFOUND;
    }
    question->neighbourhoods = found->neighbourhoods;
    question->neighbourhood_count = found->count;
    return 0;
}

static int
db_breakdown (void *handle, const char *neighbourhood, const char *place,
              const store_breakdown_t *by, size_t by_count, const store_filter_t *filter,
              store_keys_fn *row, void *arg, char *err, size_t err_len)
{
    db_t *db = handle;
    store_question_t question = {.filter = filter, .by_count = by_count};
    for (size_t i = 0; i < by_count && i < STORE_MAX_BREAKDOWNS; i++)
        question.by[i] = by[i];
    int rc = db_where (db, &neighbourhood, place, &question, err, err_len);
    return rc ? rc : store_totals_of (db->store, &question, row, arg, err, err_len);
}

static int
db_pooling (void *handle, const char *neighbourhood, const char *place,
            place_totals_pooling_fn *row, void *arg, char *err, size_t err_len)
{
    db_t *db = handle;
    store_filter_t none = {.poolable = -1};
    store_question_t question = {.filter = &none};
    int rc = db_where (db, &neighbourhood, place, &question, err, err_len);
    return rc ? rc
              : place_totals_pooling (db->store, place ? place : neighbourhood,
                                      question.neighbourhoods, question.neighbourhood_count,
                                      neighbourhood != NULL, row, arg, err, err_len);
}

static int
db_places (void *handle, place_totals_place_fn *fn, void *arg, char *err, size_t err_len)
{
    db_t *db = handle;
    if (!db->places) {
        snprintf (err, err_len, "no places file: give --places FILE");
        return STORE_ERR;
    }
    return place_totals_rank (db->store, db->places, fn, arg, err, err_len);
}

static void
db_close (void **handle)
{
    db_t *db = *handle;
    if (db) {
        store_destroy (&db->store);
        places_destroy (&db->places);
        free (db);
    }
    *handle = NULL;
}

static int
warn_unknown (void *arg, const char *place, const char *code)
{
    fprintf (stderr,
             "totalplace: warning: %s: place \"%s\": neighbourhood %s has no records in "
             "this store\n",
             (const char *)arg, place, code);
    return 0;
}

/* Opens dir read-only and reads the places file, if any; cli_store_open says what is wrong
 * with a folder that holds no usable store and sets *code (a store error code, for the exit
 * status). Members the store has no records of are warned about on stderr, not refused. */
static int
db_open (cli_source_t *source, const char *dir, const char *places_file, int *code, char *err,
         size_t err_len)
{
    db_t *db = calloc (1, sizeof *db);
    if (!db) {
        snprintf (err, err_len, "out of memory");
        return -1;
    }
    if (places_file && !(db->places = places_new (places_file, err, err_len))) {
        free (db);
        return -1;
    }
    db->store = cli_store_open (dir, code, err, err_len);
    if (db->store && db->places &&
        (*code = place_totals_unknown (db->store, db->places, warn_unknown, (void *)places_file,
                                       err, err_len)) != 0) {
        store_destroy (&db->store);
    }
    if (!db->store) {
        places_destroy (&db->places);
        free (db);
        return -1;
    }
    *source = (cli_source_t){db,           db_neighbourhoods, db_totals,   db_get_record,
                             db_counters,  db_agents,         db_identity, NULL,
                             db_breakdown, db_pooling,        db_places,   db_close};
    return 0;
}

int
cli_source_open (cli_source_t *source, const query_args_t *args, int *code, char *err,
                 size_t err_len)
{
    *code = STORE_ERR;
    if (args->collector)
        return cli_client_open (source, args, err, err_len);
    return db_open (source, args->db, args->places_file, code, err, err_len);
}
