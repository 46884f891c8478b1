/* query: the ROUTER that answers Query frames from the store, in a thread of its own.
 *
 * The server is a CZMQ actor driven by zloop, as the ingest server is. Its pipe takes string
 * commands:
 *   "BIND" endpoint  ->  replies "is": 0 or -1, and a message
 *   "AUTH" auth_t * handshake_timeout_ms  ->  (before any BIND) replies "is": 0 or -1, and a
 * message
 *   "PLACES" places_t * (or NULL)  ->  takes the places to answer with, frees the old; "is" 0
 *   "$TERM"          ->  exits after the question in hand
 * Answers are built by query_answer, which needs nothing but the store (and, for STATS, the ingest
 * server and these counters), so the tests can drive it with any bytes at all. */
#include "query.h"
#include "server_thread.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "err_text.h"
#include "log.h"
#include "period.h"
#include "place_totals.h"
#include "quoted_text.h"
#include "wire.h"

/* ZeroMQ routing ids are at most 255 bytes. */
#define IDENTITY_MAX 255
/* Replies already queued when the socket closes get this long to reach their clients. */
#define QUERY_LINGER_MS 500
/* Questions answered per wake-up before the pipe gets a look, so $TERM is never starved. */
#define QUERY_BURST 64
/* At most this many log lines per second for each kind of trouble; the rest are counted and
 * summarised, so a hostile or broken client cannot flood the log. */
#define LOG_LINES_PER_SECOND 5

struct _query_t {
    zactor_t *actor;
    store_t *store;
    ingest_t *ingest;
    pthread_mutex_t lock;
    query_counters_t counters; /* guarded by lock */
};

#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

/* protobuf-c leaves an absent string pointing at "", but a message built by hand may hold NULL. */
static bool
is_set (const char *text)
{
    return text && *text;
}

static const char *
what_name (Totalplace__QueryWhat what)
{
    switch (what) {
    case TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS:
        return "QUERY_NEIGHBOURHOODS";
    case TOTALPLACE__QUERY_WHAT__QUERY_TOTALS:
        return "QUERY_TOTALS";
    case TOTALPLACE__QUERY_WHAT__QUERY_RECORD:
        return "QUERY_RECORD";
    case TOTALPLACE__QUERY_WHAT__QUERY_STATS:
        return "QUERY_STATS";
    case TOTALPLACE__QUERY_WHAT__QUERY_BREAKDOWN:
        return "QUERY_BREAKDOWN";
    case TOTALPLACE__QUERY_WHAT__QUERY_POOLING:
        return "QUERY_POOLING";
    case TOTALPLACE__QUERY_WHAT__QUERY_PLACES:
        return "QUERY_PLACES";
    default:
        return NULL;
    }
}

const char *
query_status_name (Totalplace__QueryStatus status)
{
    switch (status) {
    case TOTALPLACE__QUERY_STATUS__QUERY_OK:
        return "OK";
    case TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND:
        return "NOT_FOUND";
    case TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY:
        return "BAD_QUERY";
    case TOTALPLACE__QUERY_STATUS__QUERY_ERROR:
        return "ERROR";
    default:
        return "UNSPECIFIED";
    }
}

/* ---------------------------------------------------------------- validation */

static int
check_filter (const Totalplace__TotalsFilter *filter, char *reason, size_t reason_len)
{
    if (is_set (filter->body_id) && wire_check_identifier ("filter.body_id", filter->body_id,
                                                           WIRE_MAX_BODY_ID, reason, reason_len))
        return -1;
    if (is_set (filter->service) && wire_check_text ("filter.service", filter->service,
                                                     WIRE_MAX_SERVICE, true, reason, reason_len))
        return -1;
    char quoted[QUOTED_TEXT_LEN];
    if (is_set (filter->fiscal_year) && period_fiscal_year_parse (filter->fiscal_year, NULL))
        return fail (reason, reason_len,
                     "filter.fiscal_year %s is not a UK fiscal year YYYY-YY such as 2013-14",
                     quoted_text (filter->fiscal_year, quoted, sizeof quoted));
    if (is_set (filter->month) && period_parse (filter->month, NULL, NULL))
        return fail (reason, reason_len, "filter.month %s is not a month YYYY-MM between %d and %d",
                     quoted_text (filter->month, quoted, sizeof quoted), PERIOD_MIN_YEAR,
                     PERIOD_MAX_YEAR);
    switch (filter->poolable) {
    case TOTALPLACE__POOLABLE_FILTER__POOLABLE_ANY:
    case TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES:
    case TOTALPLACE__POOLABLE_FILTER__POOLABLE_NO:
        return 0;
    default:
        return fail (reason, reason_len,
                     "filter.poolable %d is not POOLABLE_ANY (0), POOLABLE_YES (1) or "
                     "POOLABLE_NO (2)",
                     (int)filter->poolable);
    }
}

int
query_validate (const Totalplace__Query *query, char *reason, size_t reason_len)
{
    if (!query)
        return fail (reason, reason_len, "query is missing");
    const char *name = what_name (query->what);
    if (!name)
        return fail (reason, reason_len,
                     "what %d is not a question: use QUERY_NEIGHBOURHOODS (1), QUERY_TOTALS (2), "
                     "QUERY_RECORD (3), QUERY_STATS (4), QUERY_BREAKDOWN (5), QUERY_POOLING (6) "
                     "or QUERY_PLACES (7)",
                     (int)query->what);
    bool totals = query->what == TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    bool record = query->what == TOTALPLACE__QUERY_WHAT__QUERY_RECORD;
    bool breakdown = query->what == TOTALPLACE__QUERY_WHAT__QUERY_BREAKDOWN;
    bool pooling = query->what == TOTALPLACE__QUERY_WHAT__QUERY_POOLING;
    bool where = totals || breakdown || pooling;
    /* A field the question does not read is a client's mistake: say so rather than ignore it. */
    const char *stray = NULL;
    if (!where && is_set (query->neighbourhood))
        stray = "neighbourhood";
    else if (!totals && query->by != TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE)
        stray = "by";
    else if (!(totals || breakdown) && query->filter)
        stray = "filter";
    else if (!(breakdown || pooling) && is_set (query->place))
        stray = "place";
    else if (!breakdown && query->n_breakdowns)
        stray = "breakdowns";
    else if (!record && is_set (query->body_id))
        stray = "body_id";
    else if (!record && is_set (query->record_id))
        stray = "record_id";
    if (stray)
        return fail (reason, reason_len, "%s does not apply to %s", stray, name);
    if (is_set (query->place) && is_set (query->neighbourhood))
        return fail (reason, reason_len, "neighbourhood and place are both set: ask for one");
    if (is_set (query->place) &&
        wire_check_text ("place", query->place, PLACES_MAX_NAME, true, reason, reason_len))
        return -1;
    if (breakdown && query->n_breakdowns > STORE_MAX_BREAKDOWNS)
        return fail (reason, reason_len, "breakdowns has %zu entries, more than %d",
                     query->n_breakdowns, STORE_MAX_BREAKDOWNS);
    for (size_t i = 0; breakdown && i < query->n_breakdowns; i++) {
        if ((int)query->breakdowns[i] <= (int)TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE ||
            (int)query->breakdowns[i] > (int)TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD)
            return fail (reason, reason_len, "breakdowns[%zu] %d is not a breakdown (1 to %d)", i,
                         (int)query->breakdowns[i],
                         (int)TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD);
        for (size_t j = 0; j < i; j++)
            if (query->breakdowns[j] == query->breakdowns[i])
                return fail (reason, reason_len, "breakdowns[%zu] repeats breakdowns[%zu]", i, j);
    }
    if (where) {
        if (is_set (query->neighbourhood) &&
            wire_check_identifier ("neighbourhood", query->neighbourhood, WIRE_MAX_NEIGHBOURHOOD,
                                   reason, reason_len))
            return -1;
        if ((int)query->by < (int)TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE ||
            (int)query->by > (int)TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD)
            return fail (reason, reason_len, "by %d is not a breakdown (0 to %d)", (int)query->by,
                         (int)TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD);
        if (query->filter && check_filter (query->filter, reason, reason_len))
            return -1;
    }
    if (record &&
        (wire_check_identifier ("body_id", query->body_id, WIRE_MAX_BODY_ID, reason, reason_len) ||
         wire_check_text ("record_id", query->record_id, WIRE_MAX_RECORD_ID, true, reason,
                          reason_len)))
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- answering */

/* A reply under construction and everything it points to. */
typedef struct {
    Totalplace__QueryReply reply;
    Totalplace__TotalRow *rows;
    size_t row_count, row_capacity;
    Totalplace__AgentStatus *agents;
    size_t agent_count, agent_capacity;
    Totalplace__TotalRow **row_pointers;      /* reply.rows */
    Totalplace__AgentStatus **agent_pointers; /* reply.agents */
    Totalplace__StoreCounters store;
    Totalplace__StoreIdentity identity;
    store_identity_t store_identity; /* owns identity.store_id */
    Totalplace__IngestCounters ingest;
    Totalplace__QueryCounters queries;
    Totalplace__SpendingRecord *record; /* from store_get_record */
    Totalplace__PlaceRow *places;
    size_t place_count, place_capacity;
    Totalplace__PlaceRow **place_pointers; /* reply.places */
    bool out_of_memory;
} answer_t;

static bool
grow (void **items, size_t *capacity, size_t count, size_t item_size)
{
    if (count < *capacity)
        return true;
    size_t wanted = *capacity ? *capacity * 2 : 16;
    void *grown = realloc (*items, wanted * item_size);
    if (!grown)
        return false;
    *items = grown;
    *capacity = wanted;
    return true;
}

static int
add_row (void *arg, const char *key, store_amount_t amount)
{
    answer_t *answer = arg;
    char *copy = strdup (key);
    if (!copy || !grow ((void **)&answer->rows, &answer->row_capacity, answer->row_count,
                        sizeof *answer->rows)) {
        free (copy);
        answer->out_of_memory = true;
        return 1;
    }
    Totalplace__TotalRow *row = &answer->rows[answer->row_count++];
    *row = (Totalplace__TotalRow)TOTALPLACE__TOTAL_ROW__INIT;
    row->key = copy;
    row->amount_pence = amount.amount_pence;
    row->records = amount.records;
    return 0;
}

/* A row of several keys (QUERY_BREAKDOWN, QUERY_POOLING): the keys are copied into one block. */
static int
add_keys_row (answer_t *answer, const char *const *keys, size_t key_count, store_amount_t amount,
              int64_t poolable_pence)
{
    if (add_row (answer, "", amount))
        return 1;
    Totalplace__TotalRow *row = &answer->rows[answer->row_count - 1];
    row->poolable_pence = poolable_pence;
    if (!key_count)
        return 0;
    size_t bytes = key_count * sizeof (char *);
    for (size_t k = 0; k < key_count; k++)
        bytes += strlen (keys[k]) + 1;
    char **block = malloc (bytes);
    if (!block) {
        answer->out_of_memory = true;
        return 1;
    }
    char *text = (char *)(block + key_count);
    for (size_t k = 0; k < key_count; k++) {
        size_t len = strlen (keys[k]) + 1;
        memcpy (text, keys[k], len);
        block[k] = text;
        text += len;
    }
    row->keys = block;
    row->n_keys = key_count;
    return 0;
}

typedef struct {
    answer_t *answer;
    size_t key_count;
} keys_arg_t;

static int
add_breakdown_row (void *arg, const char *const *keys, store_amount_t amount)
{
    keys_arg_t *k = arg;
    return add_keys_row (k->answer, keys, k->key_count, amount, 0);
}

static int
add_pooling_row (void *arg, const place_totals_pooling_t *pooling)
{
    const char *keys[2] = {pooling->where, pooling->body};
    return add_keys_row (arg, keys, 2, (store_amount_t){pooling->amount_pence, pooling->records},
                         pooling->poolable_pence);
}

static int
add_place (void *arg, const place_totals_place_t *place)
{
    answer_t *answer = arg;
    char *copy = strdup (place->place);
    if (!copy || !grow ((void **)&answer->places, &answer->place_capacity, answer->place_count,
                        sizeof *answer->places)) {
        free (copy);
        answer->out_of_memory = true;
        return 1;
    }
    Totalplace__PlaceRow *row = &answer->places[answer->place_count++];
    *row = (Totalplace__PlaceRow)TOTALPLACE__PLACE_ROW__INIT;
    row->place = copy;
    row->neighbourhoods = place->neighbourhoods;
    row->without_records = place->without_records;
    row->residents = place->residents;
    row->unpopulated = place->unpopulated;
    row->amount_pence = place->amount_pence;
    row->poolable_pence = place->poolable_pence;
    row->records = place->records;
    return 0;
}

static int
add_agent (void *arg, const store_agent_t *agent)
{
    answer_t *answer = arg;
    char *copy = strdup (agent->agent_id);
    if (!copy || !grow ((void **)&answer->agents, &answer->agent_capacity, answer->agent_count,
                        sizeof *answer->agents)) {
        free (copy);
        answer->out_of_memory = true;
        return 1;
    }
    Totalplace__AgentStatus *status = &answer->agents[answer->agent_count++];
    *status = (Totalplace__AgentStatus)TOTALPLACE__AGENT_STATUS__INIT;
    status->agent_id = copy;
    status->last_batch_seq = agent->last_batch_seq;
    status->batches = agent->batches;
    status->last_seen = agent->last_seen;
    return 0;
}

static void
answer_clear (answer_t *answer)
{
    for (size_t i = 0; i < answer->row_count; i++) {
        free (answer->rows[i].key);
        free (answer->rows[i].keys);
    }
    for (size_t i = 0; i < answer->place_count; i++)
        free (answer->places[i].place);
    free (answer->places);
    free (answer->place_pointers);
    for (size_t i = 0; i < answer->agent_count; i++)
        free (answer->agents[i].agent_id);
    free (answer->rows);
    free (answer->agents);
    free (answer->row_pointers);
    free (answer->agent_pointers);
    if (answer->record)
        protobuf_c_message_free_unpacked (&answer->record->base, NULL);
    memset (answer, 0, sizeof *answer);
}

/* Points the reply's repeated fields at the items gathered. Returns 0, or -1 out of memory. */
static int
link_items (answer_t *answer)
{
    if (answer->row_count) {
        answer->row_pointers = calloc (answer->row_count, sizeof *answer->row_pointers);
        if (!answer->row_pointers)
            return -1;
        for (size_t i = 0; i < answer->row_count; i++)
            answer->row_pointers[i] = &answer->rows[i];
        answer->reply.rows = answer->row_pointers;
        answer->reply.n_rows = answer->row_count;
    }
    if (answer->place_count) {
        answer->place_pointers = calloc (answer->place_count, sizeof *answer->place_pointers);
        if (!answer->place_pointers)
            return -1;
        for (size_t i = 0; i < answer->place_count; i++)
            answer->place_pointers[i] = &answer->places[i];
        answer->reply.places = answer->place_pointers;
        answer->reply.n_places = answer->place_count;
    }
    if (answer->agent_count) {
        answer->agent_pointers = calloc (answer->agent_count, sizeof *answer->agent_pointers);
        if (!answer->agent_pointers)
            return -1;
        for (size_t i = 0; i < answer->agent_count; i++)
            answer->agent_pointers[i] = &answer->agents[i];
        answer->reply.agents = answer->agent_pointers;
        answer->reply.n_agents = answer->agent_count;
    }
    return 0;
}

static store_breakdown_t
breakdown_of (Totalplace__Breakdown by)
{
    switch (by) {
    case TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY:
        return STORE_BY_BODY;
    case TOTALPLACE__BREAKDOWN__BREAKDOWN_SERVICE:
        return STORE_BY_SERVICE;
    case TOTALPLACE__BREAKDOWN__BREAKDOWN_FISCAL_YEAR:
        return STORE_BY_FISCAL_YEAR;
    case TOTALPLACE__BREAKDOWN__BREAKDOWN_MONTH:
        return STORE_BY_MONTH;
    case TOTALPLACE__BREAKDOWN__BREAKDOWN_POOLABLE:
        return STORE_BY_POOLABLE;
    case TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD:
        return STORE_BY_NEIGHBOURHOOD;
    default:
        return STORE_BY_NONE;
    }
}

static const char *
optional (const char *text)
{
    return is_set (text) ? text : NULL;
}

static void
filter_of (const Totalplace__Query *query, store_filter_t *out)
{
    store_filter_t filter = {.poolable = -1};
    const Totalplace__TotalsFilter *f = query->filter;
    if (f) {
        filter.body_id = optional (f->body_id);
        filter.service = optional (f->service);
        filter.fiscal_year = optional (f->fiscal_year);
        filter.month = optional (f->month);
        if (f->poolable == TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES)
            filter.poolable = 1;
        else if (f->poolable == TOTALPLACE__POOLABLE_FILTER__POOLABLE_NO)
            filter.poolable = 0;
    }
    *out = filter;
}

static int
read_totals (store_t *store, const Totalplace__Query *query, answer_t *answer, char *err,
             size_t err_len)
{
    store_filter_t filter;
    filter_of (query, &filter);
    return store_totals (store, optional (query->neighbourhood), breakdown_of (query->by), &filter,
                         add_row, answer, err, err_len);
}

/* The neighbourhoods a question names: one, a place's members, or NULL for all. A place the
 * collector has no places file for, or that its file does not hold, is NOT_FOUND. */
static int
where_of (const places_t *places, const Totalplace__Query *query, const char *const **codes,
          size_t *count, char *err, size_t err_len)
{
    *codes = NULL;
    *count = 0;
    if (is_set (query->neighbourhood)) {
        *codes = (const char *const *)&query->neighbourhood;
        *count = 1;
        return 0;
    }
    if (!is_set (query->place))
        return 0;
    const places_place_t *place = places ? places_find (places, query->place) : NULL;
    if (!place) {
        char quoted[QUOTED_TEXT_LEN];
        fail (err, err_len, "unknown place %s%s", quoted_text (query->place, quoted, sizeof quoted),
              places ? "" : " (the collector has no places file: collector/places_file)");
        return STORE_ERR_NOTFOUND;
    }
    *codes = place->neighbourhoods;
    *count = place->count;
    return 0;
}

static int
read_breakdown (store_t *store, const places_t *places, const Totalplace__Query *query,
                answer_t *answer, char *err, size_t err_len)
{
    store_filter_t filter;
    filter_of (query, &filter);
    store_question_t question = {.filter = &filter, .by_count = query->n_breakdowns};
    for (size_t i = 0; i < query->n_breakdowns; i++)
        question.by[i] = breakdown_of (query->breakdowns[i]);
    int rc = where_of (places, query, &question.neighbourhoods, &question.neighbourhood_count, err,
                       err_len);
    /* One neighbourhood asked by its code must have records, as QUERY_TOTALS says. */
    question.strict = is_set (query->neighbourhood);
    keys_arg_t arg = {answer, query->n_breakdowns};
    return rc ? rc : store_totals_of (store, &question, add_breakdown_row, &arg, err, err_len);
}

static int
read_pooling (store_t *store, const places_t *places, const Totalplace__Query *query,
              answer_t *answer, char *err, size_t err_len)
{
    const char *const *codes;
    size_t count;
    int rc = where_of (places, query, &codes, &count, err, err_len);
    const char *where = is_set (query->place) ? query->place : query->neighbourhood;
    return rc ? rc
              : place_totals_pooling (store, where, codes, count, is_set (query->neighbourhood),
                                      add_pooling_row, answer, err, err_len);
}

static int
read_stats (store_t *store, ingest_t *ingest, const query_counters_t *counters, answer_t *answer,
            char *err, size_t err_len)
{
    store_counters_t sc;
    int rc;
    if (ingest) {
        ingest_counters_t ic;
        rc = ingest_counters (ingest, &ic, err, err_len);
        sc = ic.store;
        Totalplace__IngestCounters *out = &answer->ingest;
        *out = (Totalplace__IngestCounters)TOTALPLACE__INGEST_COUNTERS__INIT;
        out->frames = ic.frames;
        out->batches = ic.batches;
        out->records = ic.records;
        out->malformed = ic.malformed;
        out->oversized = ic.oversized;
        out->retry_acks = ic.retry_acks;
        out->groups = ic.groups;
        out->largest_group = ic.largest_group;
        out->largest_group_records = ic.largest_group_records;
        out->unsent_acks = ic.unsent_acks;
        out->connections = ic.connections;
        out->disconnects = ic.disconnects;
        out->handshake_failures = ic.handshake_failures;
        out->status_requests = ic.status_requests;
        answer->reply.ingest = out;
    }
    else
        rc = store_counters (store, &sc, err, err_len);
    if (rc)
        return rc;
    Totalplace__StoreCounters *out = &answer->store;
    *out = (Totalplace__StoreCounters)TOTALPLACE__STORE_COUNTERS__INIT;
    out->batches = sc.batches;
    out->accepted = sc.accepted;
    out->duplicate = sc.duplicate;
    out->superseded = sc.superseded;
    out->stale = sc.stale;
    out->rejected = sc.rejected;
    out->records_stored = sc.records_stored;
    out->map_size_bytes = sc.map_size;
    out->used_bytes = sc.used_bytes;
    answer->reply.store = out;
    store_identity (store, &answer->store_identity);
    answer->identity = (Totalplace__StoreIdentity)TOTALPLACE__STORE_IDENTITY__INIT;
    answer->identity.store_id = answer->store_identity.store_id;
    answer->identity.format = answer->store_identity.format;
    answer->identity.created = answer->store_identity.created;
    answer->reply.identity = &answer->identity;
    if (counters) {
        Totalplace__QueryCounters *q = &answer->queries;
        *q = (Totalplace__QueryCounters)TOTALPLACE__QUERY_COUNTERS__INIT;
        q->queries = counters->queries;
        q->bad_queries = counters->bad_queries;
        q->not_found = counters->not_found;
        q->errors = counters->errors;
        q->unsent = counters->unsent;
        answer->reply.queries = q;
    }
    return store_agents (store, add_agent, answer, err, err_len);
}

/* Reads the answer to a valid query into answer->reply. Returns 0 or a store error code. */
static int
read_answer (store_t *store, ingest_t *ingest, const query_counters_t *counters,
             const places_t *places, const Totalplace__Query *query, answer_t *answer, char *err,
             size_t err_len)
{
    int rc = STORE_ERR;
    switch (query->what) {
    case TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS:
        rc = store_neighbourhoods (store, add_row, answer, err, err_len);
        break;
    case TOTALPLACE__QUERY_WHAT__QUERY_TOTALS:
        rc = read_totals (store, query, answer, err, err_len);
        break;
    case TOTALPLACE__QUERY_WHAT__QUERY_RECORD:
        rc = store_get_record (store, query->body_id, query->record_id, &answer->record, err,
                               err_len);
        answer->reply.record = answer->record;
        break;
    case TOTALPLACE__QUERY_WHAT__QUERY_STATS:
        rc = read_stats (store, ingest, counters, answer, err, err_len);
        break;
    case TOTALPLACE__QUERY_WHAT__QUERY_BREAKDOWN:
        rc = read_breakdown (store, places, query, answer, err, err_len);
        break;
    case TOTALPLACE__QUERY_WHAT__QUERY_POOLING:
        rc = read_pooling (store, places, query, answer, err, err_len);
        break;
    case TOTALPLACE__QUERY_WHAT__QUERY_PLACES:
        if (!places) {
            fail (err, err_len,
                  "the collector has no places file (collector/places_file, --places)");
            rc = STORE_ERR_NOTFOUND;
        }
        else
            rc = place_totals_rank (store, places, add_place, answer, err, err_len);
        break;
    default:
        snprintf (err, err_len, "no such question");
        break;
    }
    if (rc == 0 && (answer->out_of_memory || link_items (answer))) {
        fail (err, err_len, "the collector ran out of memory building the answer");
        rc = STORE_ERR;
    }
    return rc;
}

/* Encodes a reply that carries only a status and a message. */
static int
encode_status (uint64_t query_id, Totalplace__QueryStatus status, const char *error,
               uint8_t **reply, size_t *reply_size)
{
    Totalplace__QueryReply message = TOTALPLACE__QUERY_REPLY__INIT;
    message.query_id = query_id;
    message.status = status;
    message.error = (char *)error;
    char err[WIRE_REASON_LEN];
    return wire_encode (&message.base, reply, reply_size, err, sizeof err);
}

int
query_answer (store_t *store, ingest_t *ingest, const query_counters_t *counters, const void *frame,
              size_t size, uint8_t **reply, size_t *reply_size, Totalplace__QueryStatus *status)
{
    return query_answer_places (store, ingest, counters, NULL, frame, size, reply, reply_size,
                                status);
}

int
query_answer_places (store_t *store, ingest_t *ingest, const query_counters_t *counters,
                     const places_t *places, const void *frame, size_t size, uint8_t **reply,
                     size_t *reply_size, Totalplace__QueryStatus *status)
{
    char reason[STORE_ERR_LEN];
    Totalplace__Query *query = NULL;
    if (size > QUERY_MAX_MESSAGE_BYTES)
        snprintf (reason, sizeof reason,
                  "message of %zu bytes is over the limit of %u bytes for a Query", size,
                  QUERY_MAX_MESSAGE_BYTES);
    else if ((query = (Totalplace__Query *)wire_decode (&totalplace__query__descriptor, frame, size,
                                                        reason, sizeof reason)) &&
             query_validate (query, reason, sizeof reason)) {
        uint64_t query_id = query->query_id;
        protobuf_c_message_free_unpacked (&query->base, NULL);
        *status = TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY;
        return encode_status (query_id, *status, reason, reply, reply_size);
    }
    if (!query) {
        *status = TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY;
        return encode_status (0, *status, reason, reply, reply_size);
    }

    answer_t answer;
    memset (&answer, 0, sizeof answer);
    answer.reply = (Totalplace__QueryReply)TOTALPLACE__QUERY_REPLY__INIT;
    answer.reply.query_id = query->query_id;
    char err[STORE_ERR_LEN] = "";
    int rc = read_answer (store, ingest, counters, places, query, &answer, err, sizeof err);
    int encoded = -1;
    if (rc == 0) {
        answer.reply.status = TOTALPLACE__QUERY_STATUS__QUERY_OK;
        char encode_err[WIRE_REASON_LEN];
        encoded =
            wire_encode (&answer.reply.base, reply, reply_size, encode_err, sizeof encode_err);
        if (encoded) {
            rc = STORE_ERR;
            snprintf (err, sizeof err,
                      "the answer (%zu rows) cannot be sent: %s; ask for less, e.g. one "
                      "neighbourhood or a filter",
                      answer.row_count, encode_err);
        }
    }
    uint64_t query_id = query->query_id;
    answer_clear (&answer);
    protobuf_c_message_free_unpacked (&query->base, NULL);
    if (encoded == 0) {
        *status = TOTALPLACE__QUERY_STATUS__QUERY_OK;
        return 0;
    }
    *status = rc == STORE_ERR_NOTFOUND ? TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND
                                       : TOTALPLACE__QUERY_STATUS__QUERY_ERROR;
    return encode_status (query_id, *status, err, reply, reply_size);
}

/* ---------------------------------------------------------------- the server */

/* The actor's own state: touched only by the actor thread. */
typedef struct {
    query_t *shared;
    zsock_t *router;
    zsock_t *monitor; /* PAIR receiving the router's socket events */
    zloop_t *loop;
    auth_t *auth;              /* NULL: nothing is checked */
    query_counters_t counters; /* published to shared after each question */
    log_limit_t bad_log, refused_log, limit_log;
    server_peers_t peers; /* connections, fed by the monitor */
    places_t *places;     /* the collector's places file, NULL when none */
} server_t;

static const char *
s_peer_address (zmq_msg_t *message)
{
    const char *address = zmq_msg_gets (message, "Peer-Address");
    return address ? address : "a local client";
}

/* Logs a BAD_QUERY answer with the reason it carries. */
static void
s_log_bad (server_t *self, zmq_msg_t *request, const uint8_t *reply, size_t reply_size)
{
    if (!log_limit_allow (&self->bad_log))
        return;
    Totalplace__QueryReply *decoded = (Totalplace__QueryReply *)wire_decode (
        &totalplace__query_reply__descriptor, reply, reply_size, NULL, 0);
    log_warning ("query", "bad query from %s: %s", s_peer_address (request),
                 decoded && decoded->error ? decoded->error : "?");
    if (decoded)
        protobuf_c_message_free_unpacked (&decoded->base, NULL);
}

/* The query_id of a request, so that a refusal reaches the question it answers (a client drops
 * replies to other ids); 0 when the request does not decode. */
static uint64_t
s_query_id (zmq_msg_t *request)
{
    if (zmq_msg_size (request) > QUERY_MAX_MESSAGE_BYTES)
        return 0;
    Totalplace__Query *query = (Totalplace__Query *)wire_decode (
        &totalplace__query__descriptor, zmq_msg_data (request), zmq_msg_size (request), NULL, 0);
    uint64_t id = query ? query->query_id : 0;
    if (query)
        protobuf_c_message_free_unpacked (&query->base, NULL);
    return id;
}

static void
s_publish (server_t *self)
{
    self->counters.connections = self->peers.connections;
    self->counters.disconnects = self->peers.disconnects;
    self->counters.handshake_failures = self->peers.handshake_failures;
    pthread_mutex_lock (&self->shared->lock);
    self->shared->counters = self->counters;
    pthread_mutex_unlock (&self->shared->lock);
}

/* Sends [identity, (empty delimiter,) reply] without waiting: a client that left, or one not
 * reading its replies, is counted rather than allowed to stall the server. */
static void
s_send (server_t *self, const uint8_t *identity, size_t identity_size, bool delimiter,
        const uint8_t *reply, size_t reply_size)
{
    void *handle = zsock_resolve (self->router);
    if (zmq_send (handle, identity, identity_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
        (delimiter && zmq_send (handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) ||
        zmq_send (handle, reply, reply_size, ZMQ_DONTWAIT) == -1)
        self->counters.unsent++;
}

static void
s_count (server_t *self, Totalplace__QueryStatus status)
{
    if (status == TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY)
        self->counters.bad_queries++;
    else if (status == TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND)
        self->counters.not_found++;
    else if (status == TOTALPLACE__QUERY_STATUS__QUERY_ERROR)
        self->counters.errors++;
}

/* Receives and answers one message. Returns 1, 0 when nothing is waiting, -1 when the socket
 * fails. */
static int
s_answer_one (server_t *self)
{
    void *handle = zsock_resolve (self->router);
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, handle, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&part);
        return zmq_errno () == EAGAIN || zmq_errno () == EINTR ? 0 : -1;
    }
    uint8_t identity[IDENTITY_MAX];
    size_t identity_size =
        zmq_msg_size (&part) < IDENTITY_MAX ? zmq_msg_size (&part) : IDENTITY_MAX;
    memcpy (identity, zmq_msg_data (&part), identity_size);
    bool more = zmq_msg_more (&part);
    zmq_msg_close (&part);

    /* Keep the first two body frames: a DEALER sends [query], a REQ [empty, query]. */
    zmq_msg_t body[2];
    zmq_msg_init (&body[0]);
    zmq_msg_init (&body[1]);
    size_t frames = 0;
    int rc = 1;
    while (more) {
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, 0) == -1) {
            zmq_msg_close (&part);
            rc = -1;
            break;
        }
        more = zmq_msg_more (&part);
        if (frames < 2)
            zmq_msg_move (&body[frames], &part);
        zmq_msg_close (&part);
        frames++;
    }
    if (rc == 1) {
        self->counters.queries++;
        bool delimiter = frames == 2 && zmq_msg_size (&body[0]) == 0;
        zmq_msg_t *request = delimiter ? &body[1] : &body[0];
        uint8_t *reply = NULL;
        size_t reply_size = 0;
        Totalplace__QueryStatus status;
        int answered;
        auth_permit_t *permit = NULL;
        char why[160];
        if ((frames == 1 || delimiter) &&
            !server_peers_admit (&self->peers, request, why, sizeof why)) {
            self->counters.over_limit++;
            self->counters.refused++;
            if (log_limit_allow (&self->limit_log))
                log_info ("query", "refused a question from %s: %s", s_peer_address (request), why);
            char text[256];
            snprintf (text, sizeof text,
                      "refused: query client limit reached (%s); try again shortly", why);
            status = TOTALPLACE__QUERY_STATUS__QUERY_ERROR;
            answered = encode_status (s_query_id (request), status, text, &reply, &reply_size);
        }
        else if (self->auth && (frames == 1 || delimiter) &&
                 !(permit = auth_permit (self->auth, zmq_msg_gets (request, "User-Id"),
                                         CURVE_ROLE_QUERY))) {
            /* Revoked since it connected; from now on the ZAP handler refuses it. */
            self->counters.refused++;
            if (log_limit_allow (&self->refused_log))
                log_warning ("query",
                             "refused a question from %s: key %.40s is no longer "
                             "authorised",
                             s_peer_address (request),
                             zmq_msg_gets (request, "User-Id") ? zmq_msg_gets (request, "User-Id")
                                                               : "(none)");
            status = TOTALPLACE__QUERY_STATUS__QUERY_ERROR;
            answered = encode_status (s_query_id (request), status,
                                      "this key is no longer authorised to ask the collector",
                                      &reply, &reply_size);
        }
        else if (frames == 1 || delimiter) {
            int64_t started = zclock_usecs ();
            answered = query_answer_places (self->shared->store, self->shared->ingest,
                                            &self->counters, self->places, zmq_msg_data (request),
                                            zmq_msg_size (request), &reply, &reply_size, &status);
            metrics_histogram_observe (&self->counters.answer_seconds,
                                       (double)(zclock_usecs () - started) / 1e6);
        }
        else {
            char reason[200];
            snprintf (reason, sizeof reason,
                      "expected one frame holding a Query (from a DEALER), or an empty frame and "
                      "one holding a Query (from a REQ); got %zu frames",
                      frames);
            status = TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY;
            answered = encode_status (0, status, reason, &reply, &reply_size);
            delimiter = frames > 0 && zmq_msg_size (&body[0]) == 0;
        }
        auth_permit_destroy (&permit);
        if (answered == 0) {
            s_count (self, status);
            if (status == TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY)
                s_log_bad (self, request, reply, reply_size);
            /* Counted before sent, so that whoever holds a reply sees its question counted. */
            s_publish (self);
            s_send (self, identity, identity_size, delimiter, reply, reply_size);
        }
        else {
            self->counters.errors++;
            self->counters.unsent++;
        }
        free (reply);
        s_publish (self);
    }
    zmq_msg_close (&body[0]);
    zmq_msg_close (&body[1]);
    return rc;
}

static int
s_on_router (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)reader;
    server_t *self = arg;
    for (int i = 0; i < QUERY_BURST; i++)
        if (s_answer_one (self) <= 0)
            break;
    return 0;
}

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    server_t *self = arg;
    zmsg_t *request = zmsg_recv (reader);
    if (!request)
        return -1;
    char *command = zmsg_popstr (request);
    int rc = 0;
    if (command && streq (command, "$TERM"))
        rc = -1;
    else if (command && streq (command, "PLACES")) {
        /* Between questions: no answer is reading the old places while they are freed. */
        places_t *places = NULL;
        zframe_t *frame = zmsg_pop (request);
        if (frame && zframe_size (frame) == sizeof places)
            memcpy (&places, zframe_data (frame), sizeof places);
        zframe_destroy (&frame);
        places_destroy (&self->places);
        self->places = places;
        zsock_send (reader, "is", 0, "");
    }
    else if (command && streq (command, "AUTH")) {
        auth_t *auth = NULL;
        char message[256] = "";
        zframe_t *frame = zmsg_pop (request);
        char *timeout = zmsg_popstr (request);
        if (frame && zframe_size (frame) == sizeof auth)
            memcpy (&auth, zframe_data (frame), sizeof auth);
        zframe_destroy (&frame);
        if (!auth || !timeout)
            zsock_send (reader, "is", -1, "AUTH needs an authenticator and a handshake timeout");
        else if (auth_secure (auth, self->router, CURVE_ROLE_QUERY, message, sizeof message))
            zsock_send (reader, "is", -1, message);
        else {
            /* A client that has not finished the handshake by then is dropped. */
            zsock_set_handshake_ivl (self->router, atoi (timeout));
            self->auth = auth;
            self->peers.auth = auth;
            zsock_send (reader, "is", 0, "");
        }
        zstr_free (&timeout);
    }
    else if (command && streq (command, "BIND")) {
        char *endpoint = zmsg_popstr (request);
        if (!endpoint)
            zsock_send (reader, "is", -1, "BIND needs an endpoint");
        else if (zsock_bind (self->router, "%s", endpoint) == -1) {
            char message[512];
            snprintf (message, sizeof message, "cannot bind query endpoint %s: %s", endpoint,
                      zmq_strerror (zmq_errno ()));
            zsock_send (reader, "is", -1, message);
        }
        else
            zsock_send (reader, "is", 0, "");
        zstr_free (&endpoint);
    }
    zstr_free (&command);
    zmsg_destroy (&request);
    return rc;
}

static int
s_on_monitor (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)reader;
    server_t *self = arg;
    server_peers_read (&self->peers);
    s_publish (self);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    server_t *self = arg;
    log_limit_flush (&self->bad_log);
    log_limit_flush (&self->refused_log);
    log_limit_flush (&self->limit_log);
    log_limit_flush (&self->peers.disconnect_log);
    log_limit_flush (&self->peers.handshake_log);
    return 0;
}

static void
s_server_destroy (server_t **self_p)
{
    server_t *self = *self_p;
    if (!self)
        return;
    zloop_destroy (&self->loop);
    if (self->monitor) {
        zmq_socket_monitor (zsock_resolve (self->router), NULL, 0);
        zsock_destroy (&self->monitor);
    }
    zsock_destroy (&self->router);
    places_destroy (&self->places);
    free (self);
    *self_p = NULL;
}

static server_t *
s_server_new (query_t *shared, zsock_t *pipe, char *err, size_t err_len)
{
    server_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory starting the query server");
        return NULL;
    }
    self->shared = shared;
    self->router = zsock_new (ZMQ_ROUTER);
    if (!self->router) {
        fail (err, err_len, "cannot create the query socket: %s", zmq_strerror (zmq_errno ()));
        goto error;
    }
    zsock_set_maxmsgsize (self->router, (int64_t)QUERY_SOCKET_MAX_MESSAGE_BYTES);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_linger (self->router, QUERY_LINGER_MS);
    self->bad_log = LOG_LIMIT_INIT ("query", "bad queries", LOG_LEVEL_WARNING);
    self->refused_log = LOG_LIMIT_INIT ("query", "refused questions", LOG_LEVEL_WARNING);
    /* A burst of CLI questions past the limit is the clients' business, not an alarm. */
    self->limit_log =
        LOG_LIMIT_INIT ("query", "refusals over limits/max_query_clients", LOG_LEVEL_INFO);

    if (server_thread_monitor (self->router, "query", &self->monitor, err, err_len))
        goto error;
    server_peers_init (&self->peers, "query", "client", CURVE_ROLE_QUERY, self->monitor);
    self->loop = zloop_new ();
    if (!self->loop) {
        fail (err, err_len, "out of memory creating the query loop");
        goto error;
    }
    /* Only $TERM stops the server; the daemon handles signals itself. */
    zloop_set_nonstop (self->loop, true);
    if (zloop_reader (self->loop, pipe, s_on_pipe, self) ||
        zloop_reader (self->loop, self->router, s_on_router, self) ||
        zloop_reader (self->loop, self->monitor, s_on_monitor, self) ||
        zloop_timer (self->loop, 1000, 0, s_on_tick, self) == -1) {
        fail (err, err_len, "cannot register the query sockets with zloop");
        goto error;
    }
    return self;

error:
    s_server_destroy (&self);
    return NULL;
}

static void
s_query_actor (zsock_t *pipe, void *args)
{
    server_thread_block_signals ();
    char err[256] = "";
    server_t *self = s_server_new ((query_t *)args, pipe, err, sizeof err);
    server_thread_report_start (pipe, self != NULL, err);
    if (!self)
        return;
    zloop_start (self->loop);
    s_server_destroy (&self);
}

query_t *
query_new (store_t *store, ingest_t *ingest, char *err, size_t err_len)
{
    query_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory starting the query server");
        return NULL;
    }
    if (pthread_mutex_init (&self->lock, NULL)) {
        free (self);
        fail (err, err_len, "cannot create the query counters' lock");
        return NULL;
    }
    self->store = store;
    self->ingest = ingest;
    self->actor = zactor_new (s_query_actor, self);
    char *status = self->actor ? zstr_recv (self->actor) : NULL;
    if (!status || !streq (status, "OK")) {
        fail (err, err_len, "%s", status ? status : "cannot start the query thread");
        zstr_free (&status);
        zactor_destroy (&self->actor);
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    zstr_free (&status);
    return self;
}

void
query_destroy (query_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    query_t *self = *self_p;
    zactor_destroy (&self->actor);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
query_secure (query_t *self, auth_t *auth, int handshake_timeout_ms, char *err, size_t err_len)
{
    char timeout[16];
    snprintf (timeout, sizeof timeout, "%d", handshake_timeout_ms);
    if (zsock_send (self->actor, "sps", "AUTH", (void *)auth, timeout))
        return fail (err, err_len, "cannot ask the query thread to use the authenticator");
    int rc = -1;
    char *message = NULL;
    if (zsock_recv (self->actor, "is", &rc, &message))
        return fail (err, err_len, "no answer from the query thread about the authenticator");
    if (rc)
        fail (err, err_len, "%s", message ? message : "the authenticator was refused");
    zstr_free (&message);
    return rc ? -1 : 0;
}

int
query_bind (query_t *self, const char *endpoint, char *err, size_t err_len)
{
    if (zstr_sendx (self->actor, "BIND", endpoint, NULL))
        return fail (err, err_len, "cannot ask the query thread to bind %s", endpoint);
    int rc = -1;
    char *message = NULL;
    if (zsock_recv (self->actor, "is", &rc, &message))
        return fail (err, err_len, "no answer from the query thread binding %s", endpoint);
    if (rc)
        fail (err, err_len, "%s", message ? message : "bind failed");
    zstr_free (&message);
    return rc ? -1 : 0;
}

void
query_counters (query_t *self, query_counters_t *counters)
{
    pthread_mutex_lock (&self->lock);
    *counters = self->counters;
    pthread_mutex_unlock (&self->lock);
}

int
query_set_places (query_t *self, places_t **places, char *err, size_t err_len)
{
    if (zsock_send (self->actor, "sp", "PLACES", (void *)*places))
        return fail (err, err_len, "cannot hand the places to the query thread");
    *places = NULL; /* the thread owns them from now on */
    int rc = -1;
    char *message = NULL;
    if (zsock_recv (self->actor, "is", &rc, &message))
        return fail (err, err_len, "no answer from the query thread about the places");
    zstr_free (&message);
    return 0;
}
