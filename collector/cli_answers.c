/* cli_answers: the answers of the questions, from either source. */
#include "cli_answers.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "period.h"

/* ---------------------------------------------------------------- commands */

typedef struct {
    report_t *report;
    int64_t rank;
} rank_state_t;

static int
ranked_row (void *arg, const char *key, store_amount_t amount)
{
    rank_state_t *state = arg;
    report_row (state->report);
    report_integer (state->report, ++state->rank);
    report_text (state->report, key);
    report_pence (state->report, amount.amount_pence);
    report_integer (state->report, amount.records);
    return 0;
}

static int
run_neighbourhoods (const cli_source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t columns[] = {{"rank", "rank", REPORT_INTEGER},
                                              {"neighbourhood", "neighbourhood", REPORT_TEXT},
                                              {"total", "amount_pence", REPORT_PENCE},
                                              {"records", "records", REPORT_INTEGER}};
    report_set_caption (report, "Neighbourhoods ranked by total");
    report_add_section (report, "rows", columns, 4, false);
    rank_state_t state = {report, 0};
    return source->neighbourhoods (source->handle, ranked_row, &state, err, err_len);
}

static int
amount_row (void *arg, const char *key, store_amount_t amount)
{
    report_amount_row (arg, key, amount.amount_pence, amount.records);
    return 0;
}

static int
total_row (void *arg, const char *key, store_amount_t amount)
{
    (void)key;
    report_row (arg);
    report_pence (arg, amount.amount_pence);
    report_integer (arg, amount.records);
    return 0;
}

typedef struct {
    report_t *report;
    size_t key_count;
} keys_state_t;

static const char *
poolable_name (int poolable)
{
    return poolable < 0 ? NULL : poolable ? "yes" : "no";
}

static void caption_append (char *caption, size_t len, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Appends to a caption being built; a caption cut short is still a caption. */
static void
caption_append (char *caption, size_t len, const char *format, ...)
{
    size_t used = strlen (caption);
    if (used + 1 >= len)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (caption + used, len - used, format, args);
    va_end (args);
}

static int
keys_row (void *arg, const char *const *keys, store_amount_t amount)
{
    keys_state_t *state = arg;
    report_row (state->report);
    for (size_t k = 0; k < state->key_count; k++)
        report_text (state->report, keys[k]);
    report_pence (state->report, amount.amount_pence);
    report_integer (state->report, amount.records);
    return 0;
}

/* The JSON name of a breakdown's column ("fiscal_year"). */
static const char *
breakdown_field (store_breakdown_t by)
{
    return by == STORE_BY_FISCAL_YEAR ? "fiscal_year" : query_breakdown_name (by);
}

static int
run_totals (const cli_source_t *source, const query_args_t *args, report_t *report, char *err,
            size_t err_len)
{
    const store_filter_t *filter = &args->filter;
    const char *by = query_breakdown_name (args->by);
    char by_list[128] = "";
    for (size_t i = 0; i < args->by_count; i++)
        caption_append (by_list, sizeof by_list, "%s%s", i ? "," : "",
                        query_breakdown_name (args->by_list[i]));
    if (args->by_count > 1)
        by = by_list;
    report_set_param (report, "neighbourhood", args->neighbourhood);
    if (args->place)
        report_set_param (report, "place", args->place);
    report_set_param (report, "by", by);
    report_set_param (report, "fiscal_year", filter->fiscal_year);
    report_set_param (report, "month", filter->month);
    report_set_param (report, "body", filter->body_id);
    report_set_param (report, "service", filter->service);
    report_set_param (report, "poolable", poolable_name (filter->poolable));

    char caption[512];
    if (args->place)
        snprintf (caption, sizeof caption, "Totals of place %s", args->place);
    else
        snprintf (caption, sizeof caption, "Totals of %s",
                  args->neighbourhood ? args->neighbourhood : "all neighbourhoods");
    if (by)
        caption_append (caption, sizeof caption, " by %s", by);
    const struct {
        const char *what, *value;
    } filters[] = {{"fiscal year", filter->fiscal_year},
                   {"month", filter->month},
                   {"body", filter->body_id},
                   {"service", filter->service},
                   {"poolable", poolable_name (filter->poolable)}};
    const char *separator = " (";
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (filters[i].value) {
            caption_append (caption, sizeof caption, "%s%s %s", separator, filters[i].what,
                            filters[i].value);
            separator = ", ";
        }
    if (*separator == ',')
        caption_append (caption, sizeof caption, ")");
    report_set_caption (report, caption);

    if (args->place || args->by_count > 1) {
        /* One question, one column per breakdown (one breakdown keeps the column "key"). */
        report_column_t columns[STORE_MAX_BREAKDOWNS + 2];
        size_t n = 0;
        for (size_t i = 0; i < args->by_count; i++)
            columns[n++] = (report_column_t){
                query_breakdown_name (args->by_list[i]),
                args->by_count == 1 ? "key" : breakdown_field (args->by_list[i]), REPORT_TEXT};
        columns[n++] = (report_column_t){"total", "amount_pence", REPORT_PENCE};
        columns[n++] = (report_column_t){"records", "records", REPORT_INTEGER};
        report_add_section (report, "rows", columns, n, false);
        keys_state_t state = {report, args->by_count};
        return source->breakdown (source->handle, args->neighbourhood, args->place, args->by_list,
                                  args->by_count, filter, keys_row, &state, err, err_len);
    }
    if (by) {
        report_column_t columns[] = {{by, "key", REPORT_TEXT},
                                     {"total", "amount_pence", REPORT_PENCE},
                                     {"records", "records", REPORT_INTEGER}};
        report_add_section (report, "rows", columns, 3, false);
        return source->totals (source->handle, args->neighbourhood, args->by, filter, amount_row,
                               report, err, err_len);
    }
    static const report_column_t columns[] = {{"total", "amount_pence", REPORT_PENCE},
                                              {"records", "records", REPORT_INTEGER}};
    report_add_section (report, "rows", columns, 2, false);
    return source->totals (source->handle, args->neighbourhood, STORE_BY_NONE, filter, total_row,
                           report, err, err_len);
}

static int
pooling_row (void *arg, const place_totals_pooling_t *row)
{
    report_t *report = arg;
    report_row (report);
    report_text (report, row->where);
    report_text (report, row->body);
    report_pence (report, row->amount_pence);
    report_pence (report, row->poolable_pence);
    report_share (report, row->poolable_pence, row->amount_pence);
    report_integer (report, row->records);
    return 0;
}

/* One question, whatever is asked: the store (or the collector) joins each body's total with its
 * poolable part. */
static int
run_pooling (const cli_source_t *source, const query_args_t *args, report_t *report, char *err,
             size_t err_len)
{
    report_column_t columns[] = {
        {"neighbourhood", "neighbourhood", REPORT_TEXT},
        {"body", "body", REPORT_TEXT},
        {"total", "amount_pence", REPORT_PENCE},
        {"poolable", "poolable_pence", REPORT_PENCE},
        {"share", "poolable_share_permille", REPORT_SHARE},
        {"records", "records", REPORT_INTEGER},
    };
    if (args->place)
        columns[0] = (report_column_t){"place", "place", REPORT_TEXT};
    report_set_param (report, "neighbourhood", args->neighbourhood);
    if (args->place)
        report_set_param (report, "place", args->place);
    char caption[256];
    if (args->place)
        snprintf (caption, sizeof caption, "Poolable share of each body's spending in place %s",
                  args->place);
    else
        snprintf (caption, sizeof caption, "Poolable share of each body's spending in %s",
                  args->neighbourhood ? args->neighbourhood : "every neighbourhood (ranked)");
    report_set_caption (report, caption);
    report_add_section (report, "rows", columns, 6, false);
    return source->pooling (source->handle, args->neighbourhood, args->place, pooling_row, report,
                            err, err_len);
}

typedef struct {
    report_t *report;
    int64_t rank;
} places_state_t;

static int
place_row (void *arg, const place_totals_place_t *place)
{
    places_state_t *state = arg;
    report_t *report = state->report;
    int64_t per_resident;
    char per[32] = "n/a";
    if (place_totals_per_resident (place->amount_pence, place->residents, &per_resident))
        snprintf (per, sizeof per, "%lld", (long long)per_resident);
    report_row (report);
    report_integer (report, ++state->rank);
    report_text (report, place->place);
    report_integer (report, (int64_t)place->neighbourhoods);
    report_integer (report, (int64_t)place->without_records);
    report_integer (report, place->residents);
    report_integer (report, (int64_t)place->unpopulated);
    report_pence (report, place->amount_pence);
    report_text (report, per);
    report_pence (report, place->poolable_pence);
    report_share (report, place->poolable_pence, place->amount_pence);
    report_integer (report, place->records);
    return 0;
}

static int
run_places (const cli_source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t columns[] = {
        {"rank", "rank", REPORT_INTEGER},
        {"place", "place", REPORT_TEXT},
        {"neighbourhoods", "neighbourhoods", REPORT_INTEGER},
        {"no records", "without_records", REPORT_INTEGER},
        {"residents", "residents", REPORT_INTEGER},
        {"unpopulated", "unpopulated", REPORT_INTEGER},
        {"total", "amount_pence", REPORT_PENCE},
        {"per resident (p)", "pence_per_resident", REPORT_TEXT},
        {"poolable", "poolable_pence", REPORT_PENCE},
        {"poolable share", "poolable_share_permille", REPORT_SHARE},
        {"records", "records", REPORT_INTEGER},
    };
    report_set_caption (report, "Places ranked by total (per resident: pence, rounded half away "
                                "from zero, of the residents the places file gives)");
    report_add_section (report, "rows", columns, sizeof columns / sizeof columns[0], false);
    places_state_t state = {report, 0};
    return source->places (source->handle, place_row, &state, err, err_len);
}

static int
run_record (const cli_source_t *source, const query_args_t *args, report_t *report, char *err,
            size_t err_len)
{
    static const report_column_t columns[] = {
        {"body", "body_id", REPORT_TEXT},
        {"record", "record_id", REPORT_TEXT},
        {"revision", "revision", REPORT_INTEGER},
        {"neighbourhood", "neighbourhood", REPORT_TEXT},
        {"service", "service", REPORT_TEXT},
        {"period", "period", REPORT_TEXT},
        {"fiscal year", "fiscal_year", REPORT_TEXT},
        {"amount", "amount_pence", REPORT_PENCE},
        {"poolable", "poolable", REPORT_BOOL},
        {"supplier", "supplier", REPORT_TEXT},
        {"description", "description", REPORT_TEXT},
        {"withdrawn", "withdrawn", REPORT_BOOL},
    };
    report_set_param (report, "body_id", args->body_id);
    report_set_param (report, "record_id", args->record_id);
    Totalplace__SpendingRecord *record = NULL;
    int rc =
        source->get_record (source->handle, args->body_id, args->record_id, &record, err, err_len);
    if (rc)
        return rc;
    char caption[256], fiscal_year[FISCAL_YEAR_LEN];
    snprintf (caption, sizeof caption, "Record %s / %s", record->body_id, record->record_id);
    report_set_caption (report, caption);
    if (period_fiscal_year (record->period, fiscal_year, sizeof fiscal_year))
        fiscal_year[0] = '\0';
    report_add_section (report, "record", columns, sizeof columns / sizeof columns[0], true);
    report_row (report);
    report_text (report, record->body_id);
    report_text (report, record->record_id);
    report_integer (report, record->revision);
    report_text (report, record->neighbourhood);
    report_text (report, record->service);
    report_text (report, record->period);
    report_text (report, fiscal_year);
    report_pence (report, record->amount_pence);
    report_bool (report, record->poolable);
    report_text (report, record->supplier);
    report_text (report, record->description);
    report_bool (report, record->withdrawn);
    protobuf_c_message_free_unpacked (&record->base, NULL);
    return 0;
}

static int
agent_row (void *arg, const store_agent_t *agent)
{
    report_row (arg);
    report_text (arg, agent->agent_id);
    report_unsigned (arg, agent->last_batch_seq);
    report_unsigned (arg, agent->batches);
    report_time (arg, agent->last_seen);
    return 0;
}

/* The running collector's counters since it started, after the store's (which a --db answer
 * shows alone, so that its output is the start of this one). */
static int
collector_stats (const cli_source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t ingest_columns[] = {
        {"frames received", "frames", REPORT_UNSIGNED},
        {"batches applied", "batches", REPORT_UNSIGNED},
        {"records applied", "records", REPORT_UNSIGNED},
        {"status requests", "status_requests", REPORT_UNSIGNED},
        {"malformed", "malformed", REPORT_UNSIGNED},
        {"oversized", "oversized", REPORT_UNSIGNED},
        {"retry acks", "retry_acks", REPORT_UNSIGNED},
        {"groups committed", "groups", REPORT_UNSIGNED},
        {"largest group (batches)", "largest_group", REPORT_UNSIGNED},
        {"largest group (records)", "largest_group_records", REPORT_UNSIGNED},
        {"unsent acks", "unsent_acks", REPORT_UNSIGNED},
        {"connections", "connections", REPORT_UNSIGNED},
        {"disconnects", "disconnects", REPORT_UNSIGNED},
        {"handshake failures", "handshake_failures", REPORT_UNSIGNED},
    };
    static const report_column_t query_columns[] = {
        {"queries", "queries", REPORT_UNSIGNED},
        {"bad queries", "bad_queries", REPORT_UNSIGNED},
        {"not found", "not_found", REPORT_UNSIGNED},
        {"errors", "errors", REPORT_UNSIGNED},
        {"unsent replies", "unsent", REPORT_UNSIGNED},
    };
    ingest_counters_t ingest;
    query_counters_t queries;
    int rc = source->collector_counters (source->handle, &ingest, &queries, err, err_len);
    if (rc)
        return rc;
    report_add_section (report, "ingest", ingest_columns,
                        sizeof ingest_columns / sizeof ingest_columns[0], true);
    report_row (report);
    const uint64_t ingest_values[] = {
        ingest.frames,        ingest.batches,
        ingest.records,       ingest.status_requests,
        ingest.malformed,     ingest.oversized,
        ingest.retry_acks,    ingest.groups,
        ingest.largest_group, ingest.largest_group_records,
        ingest.unsent_acks,   ingest.connections,
        ingest.disconnects,   ingest.handshake_failures,
    };
    for (size_t i = 0; i < sizeof ingest_values / sizeof ingest_values[0]; i++)
        report_unsigned (report, ingest_values[i]);
    report_add_section (report, "queries", query_columns,
                        sizeof query_columns / sizeof query_columns[0], true);
    report_row (report);
    report_unsigned (report, queries.queries);
    report_unsigned (report, queries.bad_queries);
    report_unsigned (report, queries.not_found);
    report_unsigned (report, queries.errors);
    report_unsigned (report, queries.unsent);
    return 0;
}

static int
run_stats (const cli_source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t identity_columns[] = {
        {"store id", "store_id", REPORT_TEXT},
        {"format", "format", REPORT_UNSIGNED},
        {"created (UTC)", "created", REPORT_TIME},
    };
    static const report_column_t counter_columns[] = {
        {"batches", "batches", REPORT_UNSIGNED},
        {"accepted", "accepted", REPORT_UNSIGNED},
        {"duplicate", "duplicate", REPORT_UNSIGNED},
        {"superseded", "superseded", REPORT_UNSIGNED},
        {"stale", "stale", REPORT_UNSIGNED},
        {"rejected", "rejected", REPORT_UNSIGNED},
        {"records stored", "records_stored", REPORT_UNSIGNED},
        {"map size (bytes)", "map_size_bytes", REPORT_UNSIGNED},
        {"used (bytes)", "used_bytes", REPORT_UNSIGNED},
    };
    static const report_column_t agent_columns[] = {
        {"agent", "agent_id", REPORT_TEXT},
        {"last batch", "last_batch_seq", REPORT_UNSIGNED},
        {"batches", "batches", REPORT_UNSIGNED},
        {"last seen (UTC)", "last_seen", REPORT_TIME},
    };
    store_identity_t identity;
    store_counters_t counters;
    int rc = source->identity (source->handle, &identity, err, err_len);
    if (rc == 0)
        rc = source->counters (source->handle, &counters, err, err_len);
    if (rc)
        return rc;
    report_set_caption (report, "Store statistics (records by outcome since the store began)");
    report_add_section (report, "store", identity_columns,
                        sizeof identity_columns / sizeof identity_columns[0], true);
    report_row (report);
    report_text (report, identity.store_id);
    report_unsigned (report, identity.format);
    report_time (report, identity.created);
    report_add_section (report, "counters", counter_columns,
                        sizeof counter_columns / sizeof counter_columns[0], true);
    report_row (report);
    report_unsigned (report, counters.batches);
    report_unsigned (report, counters.accepted);
    report_unsigned (report, counters.duplicate);
    report_unsigned (report, counters.superseded);
    report_unsigned (report, counters.stale);
    report_unsigned (report, counters.rejected);
    report_unsigned (report, counters.records_stored);
    report_unsigned (report, counters.map_size);
    report_unsigned (report, counters.used_bytes);
    report_add_section (report, "agents", agent_columns,
                        sizeof agent_columns / sizeof agent_columns[0], false);
    rc = source->agents (source->handle, agent_row, report, err, err_len);
    if (rc || !source->collector_counters)
        return rc;
    return collector_stats (source, report, err, err_len);
}

int
cli_answers_run (const cli_source_t *source, const query_args_t *args, report_t *report, char *err,
                 size_t err_len)
{
    switch (args->command) {
    case QUERY_NEIGHBOURHOODS:
        return run_neighbourhoods (source, report, err, err_len);
    case QUERY_TOTALS:
        return run_totals (source, args, report, err, err_len);
    case QUERY_POOLING:
        return run_pooling (source, args, report, err, err_len);
    case QUERY_RECORD:
        return run_record (source, args, report, err, err_len);
    case QUERY_STATS:
        return run_stats (source, report, err, err_len);
    case QUERY_PLACES:
        return run_places (source, report, err, err_len);
    case QUERY_NONE:
    case QUERY_HELP:
    case QUERY_KEYGEN:
    case QUERY_VERIFY: /* cli_store_run answers these */
    case QUERY_BACKUP:
    case QUERY_EXPORT: /* cli_export_run */
    case QUERY_REPORT: /* cli_report_run */
        break;
    }
    snprintf (err, err_len, "nothing to do");
    return STORE_ERR;
}
