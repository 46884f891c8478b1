/* test_query: the query protocol and server. Validation of every Query field; query_answer on
 * garbage, truncated and mutated frames (always a decodable reply, never a crash); answers read
 * from a real store compared with the store's own; the server in-process on ipc:// driven by
 * DEALER and REQ sockets, with hostile frames, the ingest counters in STATS, a clean stop; answers
 * taken while another thread applies batches at full speed never show half a batch; the
 * collector/query_endpoints setting. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector_config.h"
#include "ingest.h"
#include "query.h"
#include "store.h"
#include "test_support.h"
#include "wire.h"

#define REPLY_TIMEOUT_MS 10000

typedef struct {
    char *dir;
    char endpoint[600];
    store_t *store;
    query_t *query;
} fixture_t;

static void
assert_mentions (const char *text, const char *needle)
{
    if (!text || !strstr (text, needle))
        fail_msg ("\"%s\" does not mention \"%s\"", text ? text : "(null)", needle);
}

/* ---------------------------------------------------------------- a store with known content */

static void
apply (store_t *store, Totalplace__Batch *batch)
{
    store_result_t *results = calloc (batch->n_records + 1, sizeof *results);
    assert_non_null (results);
    char err[STORE_ERR_LEN];
    Totalplace__Batch *batches[] = {batch};
    store_result_t *result_lists[] = {results};
    if (store_apply (store, batches, 1, result_lists, NULL, err, sizeof err))
        fail_msg ("store_apply: %s", err);
    free (results);
}

/* E01000001: body A 1000 (poolable, 2013-04) and 250 (2014-04); body B -300 (2013-05).
 * E01000002: body A 40 (poolable, 2013-06). */
static void
fill (store_t *store)
{
    Totalplace__Batch *batch = test_batch_new ("agent-1", 1);
    test_batch_add (batch,
                    test_record ("GB-A", "A1", 1, "E01000001", "Housing", "2013-04", 1000, true));
    test_batch_add (batch,
                    test_record ("GB-A", "A2", 1, "E01000001", "Care", "2014-04", 250, false));
    test_batch_add (batch,
                    test_record ("GB-B", "B1", 1, "E01000001", "Policing", "2013-05", -300, false));
    test_batch_add (batch,
                    test_record ("GB-A", "A3", 1, "E01000002", "Housing", "2013-06", 40, true));
    apply (store, batch);
    test_batch_free (&batch);
}

static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->dir = test_tmpdir ("test_query");
    fx->store = test_store_new (fx->dir, NULL);
    fill (fx->store);
    snprintf (fx->endpoint, sizeof fx->endpoint, "ipc://%s/query.sock", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    query_destroy (&fx->query);
    query_destroy (&fx->query); /* safe twice */
    store_destroy (&fx->store);
    test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static uint8_t *
encode (const Totalplace__Query *query, size_t *size)
{
    uint8_t *data = NULL;
    char err[WIRE_REASON_LEN];
    if (wire_encode (&query->base, &data, size, err, sizeof err))
        fail_msg ("wire_encode: %s", err);
    return data;
}

/* Answers frame with query_answer; the reply must always decode. */
static Totalplace__QueryReply *
answer_frame (store_t *store, ingest_t *ingest, const query_counters_t *counters, const void *frame,
              size_t size)
{
    uint8_t *reply = NULL;
    size_t reply_size = 0;
    Totalplace__QueryStatus status = TOTALPLACE__QUERY_STATUS__QUERY_STATUS_UNSPECIFIED;
    assert_int_equal (
        query_answer (store, ingest, counters, frame, size, &reply, &reply_size, &status), 0);
    char err[WIRE_REASON_LEN];
    Totalplace__QueryReply *decoded = (Totalplace__QueryReply *)wire_decode (
        &totalplace__query_reply__descriptor, reply, reply_size, err, sizeof err);
    if (!decoded)
        fail_msg ("the reply does not decode: %s", err);
    assert_int_equal (decoded->status, status);
    free (reply);
    return decoded;
}

static Totalplace__QueryReply *
answer (store_t *store, const Totalplace__Query *query)
{
    size_t size;
    uint8_t *data = encode (query, &size);
    Totalplace__QueryReply *reply = answer_frame (store, NULL, NULL, data, size);
    free (data);
    return reply;
}

static void
reply_free (Totalplace__QueryReply **reply)
{
    if (*reply)
        protobuf_c_message_free_unpacked (&(*reply)->base, NULL);
    *reply = NULL;
}

static void
assert_row (const Totalplace__QueryReply *reply, size_t i, const char *key, int64_t amount,
            int64_t records)
{
    assert_true (i < reply->n_rows);
    assert_string_equal (reply->rows[i]->key, key);
    assert_int_equal (reply->rows[i]->amount_pence, amount);
    assert_int_equal (reply->rows[i]->records, records);
}

static void
assert_invalid (const Totalplace__Query *query, const char *mention)
{
    char reason[256] = "";
    assert_int_equal (query_validate (query, reason, sizeof reason), -1);
    assert_mentions (reason, mention);
}

static void
assert_valid (const Totalplace__Query *query)
{
    char reason[256] = "";
    if (query_validate (query, reason, sizeof reason))
        fail_msg ("refused a valid query: %s", reason);
}

/* ---------------------------------------------------------------- validation */

static void
test_validate_accepts_every_question (void **state)
{
    (void)state;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS;
    assert_valid (&query);
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    assert_valid (&query);

    Totalplace__TotalsFilter filter = TOTALPLACE__TOTALS_FILTER__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    assert_valid (&query); /* all neighbourhoods, no breakdown, no filter */
    query.neighbourhood = "E01000001";
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD;
    filter.body_id = "GB-LAE-BNS";
    filter.service = "Adult social care, \"older\" people \xc3\xa9";
    filter.fiscal_year = "2013-14";
    filter.month = "2014-03";
    filter.poolable = TOTALPLACE__POOLABLE_FILTER__POOLABLE_NO;
    query.filter = &filter;
    assert_valid (&query);
    filter.fiscal_year = "1999-00"; /* the century turns */
    assert_valid (&query);

    Totalplace__Query record = TOTALPLACE__QUERY__INIT;
    record.what = TOTALPLACE__QUERY_WHAT__QUERY_RECORD;
    record.body_id = "GB-POL-SY";
    record.record_id = "P 100/\xe2\x82\xac";
    assert_valid (&record);
}

static void
test_validate_names_each_bad_field (void **state)
{
    (void)state;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    assert_invalid (&query, "what 0 is not a question");
    query.what = (Totalplace__QueryWhat)99;
    assert_invalid (&query, "what 99");

    /* Fields that the question does not read. */
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    query.neighbourhood = "E01000001";
    assert_invalid (&query, "neighbourhood does not apply to QUERY_STATS");
    query.neighbourhood = "";
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    assert_invalid (&query, "by does not apply");
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE;
    Totalplace__TotalsFilter filter = TOTALPLACE__TOTALS_FILTER__INIT;
    query.filter = &filter;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS;
    assert_invalid (&query, "filter does not apply to QUERY_NEIGHBOURHOODS");
    query.filter = NULL;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.body_id = "GB-A";
    assert_invalid (&query, "body_id does not apply to QUERY_TOTALS");
    query.body_id = "";
    query.record_id = "X";
    assert_invalid (&query, "record_id does not apply");
    query.record_id = "";
    query.place = "Estate";
    assert_invalid (&query, "place does not apply to QUERY_TOTALS");
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_BREAKDOWN;
    assert_valid (&query);
    query.neighbourhood = "E01000001";
    assert_invalid (&query, "neighbourhood and place are both set");
    query.neighbourhood = "";
    query.place = "bad\x01";
    assert_invalid (&query, "place");
    query.place = "";
    Totalplace__Breakdown breakdowns[4] = {
        TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY, TOTALPLACE__BREAKDOWN__BREAKDOWN_MONTH,
        TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY, TOTALPLACE__BREAKDOWN__BREAKDOWN_SERVICE};
    query.breakdowns = breakdowns;
    query.n_breakdowns = 2;
    assert_valid (&query);
    query.n_breakdowns = 3;
    assert_invalid (&query, "breakdowns[2] repeats breakdowns[0]");
    query.n_breakdowns = 4;
    assert_invalid (&query, "more than 3");
    breakdowns[1] = TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE;
    query.n_breakdowns = 2;
    assert_invalid (&query, "breakdowns[1] 0 is not a breakdown");
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_POOLING;
    assert_invalid (&query, "breakdowns does not apply to QUERY_POOLING");
    query.n_breakdowns = 0;
    query.breakdowns = NULL;
    assert_valid (&query);
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    assert_invalid (&query, "by does not apply to QUERY_POOLING");
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE;
    query.filter = &filter;
    assert_invalid (&query, "filter does not apply to QUERY_POOLING");
    query.filter = NULL;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_PLACES;
    assert_valid (&query);
    query.place = "Estate";
    assert_invalid (&query, "place does not apply to QUERY_PLACES");
    query.place = "";
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    assert_valid (&query);

    /* Totals: codes, enums, periods, text. */
    query.neighbourhood = "E01 000001";
    assert_invalid (&query, "neighbourhood \"E01 000001\" has character 0x20 at byte 4");
    query.neighbourhood = "E0123456789012345678901234567890123";
    assert_invalid (&query, "longer than the limit of 32");
    query.neighbourhood = "E01000001";
    query.by = (Totalplace__Breakdown)7;
    assert_invalid (&query, "by 7 is not a breakdown");
    query.by = (Totalplace__Breakdown)-1;
    assert_invalid (&query, "by -1");
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_MONTH;
    query.filter = &filter;
    filter.body_id = "GB A";
    assert_invalid (&query, "filter.body_id");
    filter.body_id = "GB-A";
    filter.service = "Care\tand repair";
    assert_invalid (&query, "filter.service \"Care\\x09and repair\" has control character 0x09");
    filter.service = "Caf\xc3";
    assert_invalid (&query, "filter.service \"Caf\\xC3\" is not valid UTF-8 at byte 4");
    filter.service = "Care";
    filter.month = "2013-13";
    assert_invalid (&query, "filter.month \"2013-13\"");
    filter.month = "2013-4";
    assert_invalid (&query, "filter.month");
    filter.month = "";
    filter.fiscal_year = "2013-15";
    assert_invalid (&query, "filter.fiscal_year \"2013-15\"");
    filter.fiscal_year = "2013-14";
    filter.poolable = (Totalplace__PoolableFilter)3;
    assert_invalid (&query, "filter.poolable 3");
    filter.poolable = TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES;
    assert_valid (&query);

    /* Record: both parts of the key, bounded. */
    Totalplace__Query record = TOTALPLACE__QUERY__INIT;
    record.what = TOTALPLACE__QUERY_WHAT__QUERY_RECORD;
    assert_invalid (&record, "body_id is missing");
    record.body_id = "GB-A";
    assert_invalid (&record, "record_id is missing");
    char long_id[WIRE_MAX_RECORD_ID + 2];
    memset (long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    record.record_id = long_id;
    assert_invalid (&record,
                    "record_id \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" is 129 bytes");
    record.record_id = "A\nB";
    assert_invalid (&record, "record_id \"A\\x0AB\" has control character 0x0a at byte 2");
    record.record_id = "A1";
    record.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    assert_invalid (&record, "by does not apply to QUERY_RECORD");

    assert_int_equal (query_validate (NULL, NULL, 0), -1);
}

/* ---------------------------------------------------------------- answers */

static void
test_answer_garbage_is_bad_query (void **state)
{
    fixture_t *fx = *state;
    uint8_t garbage[64];
    memset (garbage, 0xff, sizeof garbage);
    Totalplace__QueryReply *reply = answer_frame (fx->store, NULL, NULL, garbage, sizeof garbage);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY);
    assert_int_equal (reply->query_id, 0);
    assert_mentions (reply->error, "64 bytes are not a valid");
    assert_int_equal (reply->n_rows, 0);
    reply_free (&reply);

    /* An empty frame decodes as an empty Query: it asks nothing. */
    reply = answer_frame (fx->store, NULL, NULL, "", 0);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY);
    assert_mentions (reply->error, "what 0 is not a question");
    reply_free (&reply);

    /* Over the limit: refused before decoding, whatever it holds. */
    size_t big = QUERY_MAX_MESSAGE_BYTES + 1;
    uint8_t *frame = calloc (1, big);
    assert_non_null (frame);
    reply = answer_frame (fx->store, NULL, NULL, frame, big);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY);
    assert_mentions (reply->error, "over the limit of 16384 bytes");
    reply_free (&reply);
    free (frame);

    /* A valid frame whose fields are wrong keeps its query id in the reply. */
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = 77;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = "no spaces allowed";
    reply = answer (fx->store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY);
    assert_int_equal (reply->query_id, 77);
    assert_mentions (reply->error, "neighbourhood \"no spaces allowed\" has character 0x20");
    reply_free (&reply);
}

/* Every prefix of a valid frame, every single-byte change of it, and random frames: the answer
 * always decodes and carries a status (ASan and UBSan watch the rest). */
static void
test_answer_survives_mutations (void **state)
{
    fixture_t *fx = *state;
    Totalplace__TotalsFilter filter = TOTALPLACE__TOTALS_FILTER__INIT;
    filter.body_id = "GB-A";
    filter.month = "2013-04";
    filter.poolable = TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = 5;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = "E01000001";
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_SERVICE;
    query.filter = &filter;
    size_t size;
    uint8_t *valid = encode (&query, &size);
    uint8_t *copy = malloc (size);
    assert_non_null (copy);
    size_t answered = 0, ok = 0;
    for (size_t cut = 0; cut <= size; cut++) {
        Totalplace__QueryReply *reply = answer_frame (fx->store, NULL, NULL, valid, cut);
        assert_true (reply->status >= TOTALPLACE__QUERY_STATUS__QUERY_OK &&
                     reply->status <= TOTALPLACE__QUERY_STATUS__QUERY_ERROR);
        ok += reply->status == TOTALPLACE__QUERY_STATUS__QUERY_OK;
        answered++;
        reply_free (&reply);
    }
    static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x0a};
    for (size_t at = 0; at < size; at++)
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy (copy, valid, size);
            copy[at] = values[v];
            Totalplace__QueryReply *reply = answer_frame (fx->store, NULL, NULL, copy, size);
            assert_true (reply->status >= TOTALPLACE__QUERY_STATUS__QUERY_OK &&
                         reply->status <= TOTALPLACE__QUERY_STATUS__QUERY_ERROR);
            answered++;
            reply_free (&reply);
        }
    srand (20240501);
    uint8_t random_frame[256];
    for (int n = 0; n < 3000; n++) {
        size_t length = (size_t)rand () % sizeof random_frame;
        for (size_t i = 0; i < length; i++)
            random_frame[i] = (uint8_t)rand ();
        Totalplace__QueryReply *reply = answer_frame (fx->store, NULL, NULL, random_frame, length);
        assert_true (reply->status >= TOTALPLACE__QUERY_STATUS__QUERY_OK &&
                     reply->status <= TOTALPLACE__QUERY_STATUS__QUERY_ERROR);
        answered++;
        reply_free (&reply);
    }
    /* The whole frame is valid; a prefix may be too (fields are optional), but not all are. */
    assert_true (ok >= 1 && ok < size);
    assert_true (answered > 3000);
    free (copy);
    free (valid);
}

typedef struct {
    char keys[16][64];
    store_amount_t amounts[16];
    size_t count;
} rows_t;

static int
collect (void *arg, const char *key, store_amount_t amount)
{
    rows_t *rows = arg;
    assert_true (rows->count < 16);
    snprintf (rows->keys[rows->count], sizeof rows->keys[0], "%s", key);
    rows->amounts[rows->count++] = amount;
    return 0;
}

/* The answer's rows are the store's own, for every breakdown and a filter. */
static void
assert_same_as_store (store_t *store, const char *neighbourhood, Totalplace__Breakdown by,
                      store_breakdown_t store_by, const store_filter_t *store_filter,
                      Totalplace__TotalsFilter *filter)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = (char *)(neighbourhood ? neighbourhood : "");
    query.by = by;
    query.filter = filter;
    Totalplace__QueryReply *reply = answer (store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    rows_t rows = {0};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_totals (store, neighbourhood, store_by, store_filter, collect, &rows,
                                    err, sizeof err),
                      0);
    assert_int_equal (reply->n_rows, rows.count);
    for (size_t i = 0; i < rows.count; i++)
        assert_row (reply, i, rows.keys[i], rows.amounts[i].amount_pence, rows.amounts[i].records);
    reply_free (&reply);
}

static void
test_answer_totals (void **state)
{
    fixture_t *fx = *state;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = 1;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS;
    Totalplace__QueryReply *reply = answer (fx->store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->query_id, 1);
    assert_int_equal (reply->n_rows, 2);
    assert_row (reply, 0, "E01000001", 950, 3);
    assert_row (reply, 1, "E01000002", 40, 1);
    assert_null (reply->record);
    assert_null (reply->store);
    reply_free (&reply);

    /* Known values, worked out by hand from fill(). */
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = "E01000001";
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_FISCAL_YEAR;
    reply = answer (fx->store, &query);
    assert_int_equal (reply->n_rows, 2);
    assert_row (reply, 0, "2013-14", 700, 2);
    assert_row (reply, 1, "2014-15", 250, 1);
    reply_free (&reply);
    Totalplace__TotalsFilter filter = TOTALPLACE__TOTALS_FILTER__INIT;
    filter.poolable = TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES;
    query.filter = &filter;
    query.neighbourhood = "";
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE;
    reply = answer (fx->store, &query);
    assert_int_equal (reply->n_rows, 1);
    assert_row (reply, 0, "", 1040, 2);
    reply_free (&reply);
    filter.poolable = TOTALPLACE__POOLABLE_FILTER__POOLABLE_NO;
    filter.body_id = "GB-A";
    reply = answer (fx->store, &query);
    assert_row (reply, 0, "", 250, 1);
    reply_free (&reply);
    /* Nothing matches: one zero row without a breakdown, none with one. */
    filter.body_id = "GB-NONE";
    reply = answer (fx->store, &query);
    assert_int_equal (reply->n_rows, 1);
    assert_row (reply, 0, "", 0, 0);
    reply_free (&reply);
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    reply = answer (fx->store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->n_rows, 0);
    reply_free (&reply);

    /* Every breakdown, with and without a neighbourhood, as store_totals answers it. */
    static const struct {
        Totalplace__Breakdown wire;
        store_breakdown_t store;
    } breakdowns[] = {
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE, STORE_BY_NONE},
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY, STORE_BY_BODY},
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_SERVICE, STORE_BY_SERVICE},
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_FISCAL_YEAR, STORE_BY_FISCAL_YEAR},
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_MONTH, STORE_BY_MONTH},
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_POOLABLE, STORE_BY_POOLABLE},
        {TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD, STORE_BY_NEIGHBOURHOOD},
    };
    Totalplace__TotalsFilter month = TOTALPLACE__TOTALS_FILTER__INIT;
    month.fiscal_year = "2013-14";
    month.service = "Housing";
    store_filter_t store_month = {.fiscal_year = "2013-14", .service = "Housing", .poolable = -1};
    for (size_t i = 0; i < sizeof breakdowns / sizeof breakdowns[0]; i++) {
        assert_same_as_store (fx->store, "E01000001", breakdowns[i].wire, breakdowns[i].store, NULL,
                              NULL);
        assert_same_as_store (fx->store, NULL, breakdowns[i].wire, breakdowns[i].store, NULL, NULL);
        assert_same_as_store (fx->store, NULL, breakdowns[i].wire, breakdowns[i].store,
                              &store_month, &month);
    }
}

/* query_answer_places with places; the reply must always decode. */
static Totalplace__QueryReply *
answer_places (store_t *store, const places_t *places, const Totalplace__Query *query)
{
    size_t size;
    uint8_t *data = encode (query, &size);
    uint8_t *reply = NULL;
    size_t reply_size = 0;
    Totalplace__QueryStatus status = TOTALPLACE__QUERY_STATUS__QUERY_STATUS_UNSPECIFIED;
    assert_int_equal (
        query_answer_places (store, NULL, NULL, places, data, size, &reply, &reply_size, &status),
        0);
    free (data);
    Totalplace__QueryReply *decoded = (Totalplace__QueryReply *)wire_decode (
        &totalplace__query_reply__descriptor, reply, reply_size, NULL, 0);
    assert_non_null (decoded);
    assert_int_equal (decoded->status, status);
    free (reply);
    return decoded;
}

static void
assert_keys_row (const Totalplace__QueryReply *reply, size_t i, const char *key0, const char *key1,
                 int64_t amount, int64_t poolable, int64_t records)
{
    assert_true (i < reply->n_rows);
    const Totalplace__TotalRow *row = reply->rows[i];
    assert_int_equal (row->n_keys, key1 ? 2 : 1);
    assert_string_equal (row->keys[0], key0);
    if (key1)
        assert_string_equal (row->keys[1], key1);
    assert_int_equal (row->amount_pence, amount);
    assert_int_equal (row->poolable_pence, poolable);
    assert_int_equal (row->records, records);
}

/* QUERY_BREAKDOWN, QUERY_POOLING and QUERY_PLACES from fill()'s store, worked out by hand. */
static void
test_answer_places_and_pooling (void **state)
{
    fixture_t *fx = *state;
    char path[700], err[512];
    snprintf (path, sizeof path, "%s/places.csv", fx->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("place,neighbourhood,population\nBoth,E01000001,3\nBoth,E01000002,4\n"
           "Second,E01000002,4\nSecond,E09999999,\n",
           file);
    fclose (file);
    places_t *places = places_new (path, err, sizeof err);
    if (!places)
        fail_msg ("places_new: %s", err);

    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_BREAKDOWN;
    query.place = "Both";
    Totalplace__Breakdown by[] = {TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY,
                                  TOTALPLACE__BREAKDOWN__BREAKDOWN_POOLABLE};
    query.breakdowns = by;
    query.n_breakdowns = 2;
    Totalplace__QueryReply *reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->n_rows, 3);
    assert_string_equal (reply->rows[0]->keys[0], "GB-A");
    assert_string_equal (reply->rows[0]->keys[1], "no");
    assert_int_equal (reply->rows[0]->amount_pence, 250);
    assert_string_equal (reply->rows[1]->keys[1], "yes");
    assert_int_equal (reply->rows[1]->amount_pence, 1040);
    assert_string_equal (reply->rows[2]->keys[0], "GB-B");
    reply_free (&reply);
    /* No breakdown: the place's total, one row of no keys. */
    query.n_breakdowns = 0;
    reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->n_rows, 1);
    assert_int_equal (reply->rows[0]->n_keys, 0);
    assert_int_equal (reply->rows[0]->amount_pence, 990);
    assert_int_equal (reply->rows[0]->records, 4);
    reply_free (&reply);
    /* An unknown place, and any place without a places file. */
    query.place = "Nowhere";
    reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    assert_mentions (reply->error, "unknown place \"Nowhere\"");
    reply_free (&reply);
    query.place = "Both";
    reply = answer_places (fx->store, NULL, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    assert_mentions (reply->error, "no places file");
    reply_free (&reply);

    /* Pooling: a place, one neighbourhood, all (neighbourhoods ranked by total). */
    query = (Totalplace__Query)TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_POOLING;
    query.place = "Both";
    reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->n_rows, 2);
    assert_keys_row (reply, 0, "Both", "GB-A", 1290, 1040, 3);
    assert_keys_row (reply, 1, "Both", "GB-B", -300, 0, 1);
    reply_free (&reply);
    query.place = "";
    query.neighbourhood = "E01000002";
    reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->n_rows, 1);
    assert_keys_row (reply, 0, "E01000002", "GB-A", 40, 40, 1);
    reply_free (&reply);
    query.neighbourhood = "E09999999";
    reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    reply_free (&reply);
    query.neighbourhood = "";
    reply = answer_places (fx->store, NULL, &query);
    assert_int_equal (reply->n_rows, 3);
    assert_keys_row (reply, 0, "E01000001", "GB-A", 1250, 1000, 2);
    assert_keys_row (reply, 1, "E01000001", "GB-B", -300, 0, 1);
    assert_keys_row (reply, 2, "E01000002", "GB-A", 40, 40, 1);
    reply_free (&reply);

    /* Places ranked: Both 990 (7 residents: 141.43 -> 141), Second 40 (one member unknown). */
    query = (Totalplace__Query)TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_PLACES;
    reply = answer_places (fx->store, places, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->n_places, 2);
    assert_string_equal (reply->places[0]->place, "Both");
    assert_int_equal (reply->places[0]->amount_pence, 990);
    assert_int_equal (reply->places[0]->poolable_pence, 1040);
    assert_int_equal (reply->places[0]->residents, 7);
    assert_int_equal (reply->places[0]->records, 4);
    assert_string_equal (reply->places[1]->place, "Second");
    assert_int_equal (reply->places[1]->neighbourhoods, 2);
    assert_int_equal (reply->places[1]->without_records, 1);
    assert_int_equal (reply->places[1]->unpopulated, 1);
    assert_int_equal (reply->places[1]->amount_pence, 40);
    reply_free (&reply);
    reply = answer_places (fx->store, NULL, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    reply_free (&reply);
    places_destroy (&places);
}

static void
test_answer_not_found_and_record (void **state)
{
    fixture_t *fx = *state;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = 9;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = "E09999999";
    Totalplace__QueryReply *reply = answer (fx->store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    assert_int_equal (reply->query_id, 9);
    assert_mentions (reply->error, "neighbourhood E09999999 has no records in this store");
    reply_free (&reply);

    Totalplace__Query record = TOTALPLACE__QUERY__INIT;
    record.what = TOTALPLACE__QUERY_WHAT__QUERY_RECORD;
    record.body_id = "GB-B";
    record.record_id = "B1";
    reply = answer (fx->store, &record);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_non_null (reply->record);
    Totalplace__SpendingRecord *expected =
        test_record ("GB-B", "B1", 1, "E01000001", "Policing", "2013-05", -300, false);
    assert_true (wire_records_equal (reply->record, expected));
    test_record_free (&expected);
    reply_free (&reply);

    record.record_id = "B2";
    reply = answer (fx->store, &record);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    assert_mentions (reply->error, "GB-B/B2");
    assert_null (reply->record);
    reply_free (&reply);
}

static void
test_answer_stats (void **state)
{
    fixture_t *fx = *state;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    size_t size;
    uint8_t *data = encode (&query, &size);
    query_counters_t counters = {
        .queries = 12, .bad_queries = 3, .not_found = 2, .errors = 1, .unsent = 4};
    Totalplace__QueryReply *reply = answer_frame (fx->store, NULL, &counters, data, size);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    store_counters_t expected;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_counters (fx->store, &expected, err, sizeof err), 0);
    assert_non_null (reply->store);
    assert_int_equal (reply->store->batches, 1);
    assert_int_equal (reply->store->accepted, 4);
    assert_int_equal (reply->store->records_stored, 4);
    assert_int_equal (reply->store->map_size_bytes, expected.map_size);
    assert_int_equal (reply->store->used_bytes, expected.used_bytes);
    store_identity_t identity;
    store_identity (fx->store, &identity);
    assert_non_null (reply->identity);
    assert_int_equal (strlen (identity.store_id), 32);
    assert_string_equal (reply->identity->store_id, identity.store_id);
    assert_int_equal (reply->identity->format, STORE_FORMAT_VERSION);
    assert_int_equal (reply->identity->created, identity.created);
    assert_null (reply->ingest); /* none given */
    assert_non_null (reply->queries);
    assert_int_equal (reply->queries->queries, 12);
    assert_int_equal (reply->queries->bad_queries, 3);
    assert_int_equal (reply->queries->not_found, 2);
    assert_int_equal (reply->queries->errors, 1);
    assert_int_equal (reply->queries->unsent, 4);
    assert_int_equal (reply->n_agents, 1);
    assert_string_equal (reply->agents[0]->agent_id, "agent-1");
    assert_int_equal (reply->agents[0]->last_batch_seq, 1);
    assert_int_equal (reply->agents[0]->batches, 1);
    assert_true (reply->agents[0]->last_seen > 1700000000);
    reply_free (&reply);
    free (data);
}

/* An answer over the message limit becomes an error saying so, not a truncated answer. */
static void
test_answer_too_large (void **state)
{
    fixture_t *fx = *state;
    /* 70,000 services of 128 bytes: a breakdown by service is over 8 MiB of rows. */
    char service[WIRE_MAX_SERVICE + 1];
    memset (service, 's', WIRE_MAX_SERVICE);
    service[WIRE_MAX_SERVICE] = '\0';
    uint64_t seq = 2;
    for (int n = 0; n < 70000;) {
        Totalplace__Batch *batch = test_batch_new ("agent-big", seq++);
        for (int i = 0; i < 5000 && n < 70000; i++, n++) {
            char id[32], service_n[WIRE_MAX_SERVICE + 1];
            snprintf (id, sizeof id, "BIG%06d", n);
            snprintf (service_n, sizeof service_n, "%06d%s", n, service + 6);
            test_batch_add (
                batch, test_record ("GB-BIG", id, 1, "E01000001", service_n, "2013-04", 1, false));
        }
        apply (fx->store, batch);
        test_batch_free (&batch);
    }
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_SERVICE;
    Totalplace__QueryReply *reply = answer (fx->store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_ERROR);
    assert_mentions (reply->error, "rows) cannot be sent");
    assert_mentions (reply->error, "ask for less");
    reply_free (&reply);
    /* A narrower question is answered. */
    Totalplace__TotalsFilter filter = TOTALPLACE__TOTALS_FILTER__INIT;
    filter.body_id = "GB-A";
    query.filter = &filter;
    reply = answer (fx->store, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->n_rows, 2);
    reply_free (&reply);
}

/* ---------------------------------------------------------------- the server on a socket */

static zsock_t *
new_client (int type, const char *endpoint)
{
    zsock_t *client = zsock_new (type);
    assert_non_null (client);
    zsock_set_rcvtimeo (client, REPLY_TIMEOUT_MS);
    zsock_set_linger (client, 0);
    assert_int_equal (zsock_connect (client, "%s", endpoint), 0);
    return client;
}

static void
start_server (fixture_t *fx, ingest_t *ingest)
{
    char err[256];
    fx->query = query_new (fx->store, ingest, err, sizeof err);
    if (!fx->query)
        fail_msg ("query_new: %s", err);
    if (query_bind (fx->query, fx->endpoint, err, sizeof err))
        fail_msg ("query_bind: %s", err);
}

/* Receives one reply of a single frame (after the empty delimiter for a REQ, which zmq strips). */
static Totalplace__QueryReply *
receive_reply (zsock_t *client)
{
    zmq_msg_t message;
    zmq_msg_init (&message);
    if (zmq_msg_recv (&message, zsock_resolve (client), 0) == -1)
        fail_msg ("no reply within %d ms: %s", REPLY_TIMEOUT_MS, zmq_strerror (zmq_errno ()));
    assert_false (zmq_msg_more (&message));
    char err[WIRE_REASON_LEN];
    Totalplace__QueryReply *reply = (Totalplace__QueryReply *)wire_decode (
        &totalplace__query_reply__descriptor, zmq_msg_data (&message), zmq_msg_size (&message), err,
        sizeof err);
    zmq_msg_close (&message);
    if (!reply)
        fail_msg ("reply does not decode: %s", err);
    return reply;
}

static Totalplace__QueryReply *
ask (zsock_t *client, const Totalplace__Query *query)
{
    size_t size;
    uint8_t *data = encode (query, &size);
    assert_int_not_equal (zmq_send (zsock_resolve (client), data, size, 0), -1);
    free (data);
    return receive_reply (client);
}

static void
test_server_answers_dealer_and_req (void **state)
{
    fixture_t *fx = *state;
    start_server (fx, NULL);
    zsock_t *dealer = new_client (ZMQ_DEALER, fx->endpoint);
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = 41;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS;
    Totalplace__QueryReply *reply = ask (dealer, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->query_id, 41);
    assert_row (reply, 0, "E01000001", 950, 3);
    reply_free (&reply);

    /* A REQ socket puts an empty delimiter first; the reply comes back through it. */
    zsock_t *req = new_client (ZMQ_REQ, fx->endpoint);
    query.query_id = 42;
    reply = ask (req, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_int_equal (reply->query_id, 42);
    assert_int_equal (reply->n_rows, 2);
    reply_free (&reply);

    /* Garbage, then three frames: each answered BAD_QUERY, and the server goes on. */
    uint8_t garbage[64];
    memset (garbage, 0xff, sizeof garbage);
    assert_int_equal (zmq_send (zsock_resolve (dealer), garbage, sizeof garbage, 0),
                      (int)sizeof garbage);
    reply = receive_reply (dealer);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY);
    assert_mentions (reply->error, "not a valid Query");
    reply_free (&reply);
    void *handle = zsock_resolve (dealer);
    assert_int_not_equal (zmq_send (handle, "a", 1, ZMQ_SNDMORE), -1);
    assert_int_not_equal (zmq_send (handle, "b", 1, ZMQ_SNDMORE), -1);
    assert_int_not_equal (zmq_send (handle, "c", 1, 0), -1);
    reply = receive_reply (dealer);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY);
    assert_mentions (reply->error, "got 3 frames");
    reply_free (&reply);
    /* A frame over the socket's limit: libzmq drops that connection; others are served. */
    zsock_t *hostile = new_client (ZMQ_DEALER, fx->endpoint);
    size_t huge = QUERY_SOCKET_MAX_MESSAGE_BYTES * 2;
    uint8_t *frame = calloc (1, huge);
    assert_non_null (frame);
    assert_int_not_equal (zmq_send (zsock_resolve (hostile), frame, huge, 0), -1);
    free (frame);
    query.query_id = 43;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = "E09999999";
    reply = ask (dealer, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND);
    assert_int_equal (reply->query_id, 43);
    reply_free (&reply);

    query_counters_t counters;
    query_counters (fx->query, &counters);
    assert_int_equal (counters.queries, 5);
    assert_int_equal (counters.bad_queries, 2);
    assert_int_equal (counters.not_found, 1);
    assert_int_equal (counters.errors, 0);

    /* STATS reports these counters, this question counted. */
    Totalplace__Query stats = TOTALPLACE__QUERY__INIT;
    stats.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    reply = ask (dealer, &stats);
    assert_non_null (reply->queries);
    assert_int_equal (reply->queries->queries, 6);
    assert_int_equal (reply->queries->bad_queries, 2);
    assert_int_equal (reply->queries->not_found, 1);
    reply_free (&reply);

    zsock_destroy (&hostile);
    zsock_destroy (&req);
    zsock_destroy (&dealer);
    query_destroy (&fx->query);
    assert_null (fx->query);
}

static void
test_server_bind_failure (void **state)
{
    fixture_t *fx = *state;
    start_server (fx, NULL);
    char err[512] = "";
    assert_int_equal (query_bind (fx->query, "tcp://256.1.1.1:1", err, sizeof err), -1);
    assert_mentions (err, "cannot bind query endpoint tcp://256.1.1.1:1");
    /* A port another socket holds. */
    zsock_t *other = zsock_new (ZMQ_ROUTER);
    assert_non_null (other);
    int port = zsock_bind (other, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    char taken[64];
    snprintf (taken, sizeof taken, "tcp://127.0.0.1:%d", port);
    assert_int_equal (query_bind (fx->query, taken, err, sizeof err), -1);
    assert_mentions (err, taken);
    assert_mentions (err, "in use");
    zsock_destroy (&other);
}

/* STATS through a server given the ingest server: the ingest counters of a batch just acked. */
static void
test_server_stats_with_ingest (void **state)
{
    fixture_t *fx = *state;
    collector_config_t *config = collector_config_new ();
    assert_non_null (config);
    assert_int_equal (collector_config_set (config, "collector/state_dir", fx->dir, NULL, 0), 0);
    char err[512];
    ingest_t *ingest = ingest_new (fx->store, config, err, sizeof err);
    if (!ingest)
        fail_msg ("ingest_new: %s", err);
    char ingest_endpoint[600];
    snprintf (ingest_endpoint, sizeof ingest_endpoint, "ipc://%s/ingest.sock", fx->dir);
    assert_int_equal (ingest_bind (ingest, ingest_endpoint, err, sizeof err), 0);
    start_server (fx, ingest);

    zsock_t *agent = new_client (ZMQ_DEALER, ingest_endpoint);
    Totalplace__Batch *batch = test_batch_new ("agent-2", 1);
    test_batch_add (batch,
                    test_record ("GB-C", "C1", 1, "E01000003", "Fire", "2020-01", 500, false));
    test_batch_add (batch,
                    test_record ("GB-C", "C2", 1, "E01000003", "Fire", "2020-13", 500, false));
    uint8_t *data = NULL;
    size_t size = 0;
    assert_int_equal (wire_encode (&batch->base, &data, &size, err, sizeof err), 0);
    test_batch_free (&batch);
    assert_int_not_equal (zmq_send (zsock_resolve (agent), data, size, 0), -1);
    free (data);
    zmq_msg_t ack;
    zmq_msg_init (&ack);
    assert_int_not_equal (zmq_msg_recv (&ack, zsock_resolve (agent), 0), -1);
    zmq_msg_close (&ack);

    zsock_t *client = new_client (ZMQ_DEALER, fx->endpoint);
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    Totalplace__QueryReply *reply = ask (client, &query);
    assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    assert_non_null (reply->ingest);
    assert_int_equal (reply->ingest->frames, 1);
    assert_int_equal (reply->ingest->batches, 1);
    assert_int_equal (reply->ingest->records, 2);
    assert_int_equal (reply->ingest->groups, 1);
    assert_int_equal (reply->ingest->malformed, 0);
    assert_int_equal (reply->store->batches, 2);
    assert_int_equal (reply->store->accepted, 5);
    assert_int_equal (reply->store->rejected, 1);
    assert_int_equal (reply->n_agents, 2);
    assert_string_equal (reply->agents[1]->agent_id, "agent-2");
    reply_free (&reply);

    zsock_destroy (&client);
    zsock_destroy (&agent);
    query_destroy (&fx->query);
    ingest_destroy (&ingest);
    collector_config_destroy (&config);
}

/* ---------------------------------------------------------------- consistency under load */

#define LOAD_BATCH 10

typedef struct {
    store_t *store;
    atomic_bool stop;
    atomic_uint_fast64_t batches;
} writer_t;

/* Applies batches of LOAD_BATCH records over two bodies whose amounts add up to zero, as fast as
 * the store takes them: an answer that saw half a batch would show a non-zero total. */
static void *
writer (void *arg)
{
    writer_t *w = arg;
    uint64_t n = 0;
    while (!atomic_load (&w->stop) && atomic_load (&w->batches) < 400) {
        Totalplace__Batch *batch = test_batch_new ("agent-load", atomic_load (&w->batches) + 10);
        for (int i = 0; i < LOAD_BATCH; i++, n++) {
            char id[32];
            snprintf (id, sizeof id, "L%08llu", (unsigned long long)n);
            test_batch_add (batch,
                            test_record (i % 2 ? "GB-L1" : "GB-L2", id, 1, "E01000009", "Load",
                                         "2020-05", i == LOAD_BATCH - 1 ? -900 : 100, i % 3 == 0));
        }
        apply (w->store, batch);
        test_batch_free (&batch);
        atomic_fetch_add (&w->batches, 1);
    }
    return NULL;
}

static void
test_answers_never_show_half_a_batch (void **state)
{
    fixture_t *fx = *state;
    start_server (fx, NULL);
    zsock_t *client = new_client (ZMQ_DEALER, fx->endpoint);
    writer_t w = {.store = fx->store};
    atomic_init (&w.stop, false);
    atomic_init (&w.batches, 0);
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, writer, &w), 0);
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    int64_t last_records = -1;
    size_t distinct = 0, asked = 0;
    while (atomic_load (&w.batches) < 400 && asked < 100000) {
        query.neighbourhood = "E01000009";
        Totalplace__QueryReply *reply = ask (client, &query);
        asked++;
        if (reply->status == TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND) { /* not yet written */
            reply_free (&reply);
            continue;
        }
        assert_int_equal (reply->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
        int64_t amount = 0, records = 0;
        for (size_t i = 0; i < reply->n_rows; i++) {
            amount += reply->rows[i]->amount_pence;
            records += reply->rows[i]->records;
        }
        if (amount != 0 || records % LOAD_BATCH != 0)
            fail_msg ("answer %zu shows part of a batch: %lld pence over %lld records", asked,
                      (long long)amount, (long long)records);
        if (records != last_records)
            distinct++;
        last_records = records;
        reply_free (&reply);
    }
    atomic_store (&w.stop, true);
    pthread_join (thread, NULL);
    /* The answers were taken while batches were landing, not all before or after. */
    assert_true (distinct >= 3);
    zsock_destroy (&client);
}

/* ---------------------------------------------------------------- configuration */

static void
test_config_query_endpoints (void **state)
{
    (void)state;
    collector_config_t *config = collector_config_new ();
    assert_non_null (config);
    assert_int_equal (collector_config_set (config, "collector/state_dir", "/tmp/x", NULL, 0), 0);
    /* CURVE keys (validation does not read them), so that any endpoint may be given. */
    assert_int_equal (
        collector_config_set (config, "collector/curve_secret_cert", "/k/c.cert_secret", NULL, 0),
        0);
    assert_int_equal (collector_config_set (config, "collector/authorised_certs", "/k", NULL, 0),
                      0);
    assert_string_equal (config->query_endpoints, "tcp://127.0.0.1:7701");
    char err[COLLECTOR_CONFIG_ERR_LEN] = "";
    assert_int_equal (collector_config_validate (config, err, sizeof err), 0);
    zlist_t *list = collector_config_query_endpoints (config);
    assert_int_equal (zlist_size (list), 1);
    zlist_destroy (&list);

    /* "" is none at all. */
    assert_int_equal (collector_config_set (config, "collector/query_endpoints", "", NULL, 0), 0);
    assert_int_equal (collector_config_validate (config, err, sizeof err), 0);
    list = collector_config_query_endpoints (config);
    assert_int_equal (zlist_size (list), 0);
    zlist_destroy (&list);

    assert_int_equal (collector_config_load_string (
                          config,
                          "collector\n    query_endpoints = \"ipc:///tmp/q.sock, tcp://*:7701\"\n",
                          "test", err, sizeof err),
                      0);
    assert_int_equal (collector_config_validate (config, err, sizeof err), 0);
    list = collector_config_query_endpoints (config);
    assert_int_equal (zlist_size (list), 2);
    assert_string_equal (zlist_first (list), "ipc:///tmp/q.sock");
    assert_string_equal (zlist_next (list), "tcp://*:7701");
    zlist_destroy (&list);

    static const char *const bad[] = {"bogus", "tcp://127.0.0.1:7701,,ipc:///tmp/q", ",",
                                      "udp://1.2.3.4:5", "ipc:///tmp/q, tcp://127.0.0.1:7700"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (
            collector_config_set (config, "collector/query_endpoints", bad[i], NULL, 0), 0);
        err[0] = '\0';
        assert_int_equal (collector_config_validate (config, err, sizeof err), -1);
        assert_mentions (err, "collector/query_endpoints");
    }
    collector_config_destroy (&config);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_validate_accepts_every_question),
        cmocka_unit_test (test_validate_names_each_bad_field),
        cmocka_unit_test_setup_teardown (test_answer_garbage_is_bad_query, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer_survives_mutations, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer_totals, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer_places_and_pooling, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer_not_found_and_record, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer_stats, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown (test_server_answers_dealer_and_req, setup, teardown),
        cmocka_unit_test_setup_teardown (test_server_bind_failure, setup, teardown),
        cmocka_unit_test_setup_teardown (test_server_stats_with_ingest, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answers_never_show_half_a_batch, setup, teardown),
        cmocka_unit_test (test_config_query_endpoints),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
