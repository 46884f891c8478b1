/* cli_answers: the answers of the questions, from either source. */
#include "cli_answers.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "period.h"

/* ---------------------------------------------------------------- collecting rows */

/* Rows of a breakdown kept for a second pass (pooling joins two breakdowns). */
typedef struct {
    char **keys;
    store_amount_t *amounts;
    size_t count, capacity;
    bool out_of_memory;
} rows_t;

static int
rows_add (void *arg, const char *key, store_amount_t amount)
{
    rows_t *rows = arg;
    if (rows->count == rows->capacity) {
        size_t capacity = rows->capacity ? rows->capacity * 2 : 16;
        char **keys = realloc (rows->keys, capacity * sizeof *keys);
        if (keys)
            rows->keys = keys;
        store_amount_t *amounts = realloc (rows->amounts, capacity * sizeof *amounts);
        if (amounts)
            rows->amounts = amounts;
        if (!keys || !amounts) {
            rows->out_of_memory = true;
            return 1;
        }
        rows->capacity = capacity;
    }
    rows->keys[rows->count] = strdup (key);
    if (!rows->keys[rows->count]) {
        rows->out_of_memory = true;
        return 1;
    }
    rows->amounts[rows->count++] = amount;
    return 0;
}

static void
rows_clear (rows_t *rows)
{
    for (size_t i = 0; i < rows->count; i++)
        free (rows->keys[i]);
    free (rows->keys);
    free (rows->amounts);
    *rows = (rows_t){0};
}

/* Calls a source operation that fills rows, turning a stop for lack of memory into an error. */
static int
check_rows (int rc, const rows_t *rows, char *err, size_t err_len)
{
    if (rc == 0 && rows->out_of_memory) {
        snprintf (err, err_len, "out of memory");
        return STORE_ERR;
    }
    return rc;
}

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

static const char *
poolable_name (int poolable)
{
    return poolable < 0 ? NULL : poolable ? "yes" : "no";
}

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
run_totals (const cli_source_t *source, const query_args_t *args, report_t *report, char *err,
            size_t err_len)
{
    const store_filter_t *filter = &args->filter;
    const char *by = query_breakdown_name (args->by);
    report_set_param (report, "neighbourhood", args->neighbourhood);
    report_set_param (report, "by", by);
    report_set_param (report, "fiscal_year", filter->fiscal_year);
    report_set_param (report, "month", filter->month);
    report_set_param (report, "body", filter->body_id);
    report_set_param (report, "service", filter->service);
    report_set_param (report, "poolable", poolable_name (filter->poolable));

    char caption[512];
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

/* The pooling rows of one neighbourhood: its bodies' totals joined with their poolable part.
 * Both lists come sorted by body, so one merge pass joins them. */
static int
pooling_of (const cli_source_t *source, const char *neighbourhood, report_t *report, char *err,
            size_t err_len)
{
    rows_t all = {0}, poolable = {0};
    store_filter_t only_poolable = {.poolable = 1};
    int rc = source->totals (source->handle, neighbourhood, STORE_BY_BODY, NULL, rows_add, &all,
                             err, err_len);
    rc = check_rows (rc, &all, err, err_len);
    if (rc == 0) {
        rc = source->totals (source->handle, neighbourhood, STORE_BY_BODY, &only_poolable, rows_add,
                             &poolable, err, err_len);
        rc = check_rows (rc, &poolable, err, err_len);
    }
    for (size_t i = 0, j = 0; rc == 0 && i < all.count; i++) {
        while (j < poolable.count && strcmp (poolable.keys[j], all.keys[i]) < 0)
            j++;
        int64_t poolable_pence = 0;
        if (j < poolable.count && strcmp (poolable.keys[j], all.keys[i]) == 0)
            poolable_pence = poolable.amounts[j].amount_pence;
        report_row (report);
        report_text (report, neighbourhood);
        report_text (report, all.keys[i]);
        report_pence (report, all.amounts[i].amount_pence);
        report_pence (report, poolable_pence);
        report_share (report, poolable_pence, all.amounts[i].amount_pence);
        report_integer (report, all.amounts[i].records);
    }
    rows_clear (&all);
    rows_clear (&poolable);
    return rc;
}

static int
run_pooling (const cli_source_t *source, const query_args_t *args, report_t *report, char *err,
             size_t err_len)
{
    static const report_column_t columns[] = {
        {"neighbourhood", "neighbourhood", REPORT_TEXT},
        {"body", "body", REPORT_TEXT},
        {"total", "amount_pence", REPORT_PENCE},
        {"poolable", "poolable_pence", REPORT_PENCE},
        {"share", "poolable_share_permille", REPORT_SHARE},
        {"records", "records", REPORT_INTEGER},
    };
    report_set_param (report, "neighbourhood", args->neighbourhood);
    char caption[128];
    snprintf (caption, sizeof caption, "Poolable share of each body's spending in %s",
              args->neighbourhood ? args->neighbourhood : "every neighbourhood (ranked)");
    report_set_caption (report, caption);
    report_add_section (report, "rows", columns, 6, false);
    if (args->neighbourhood)
        return pooling_of (source, args->neighbourhood, report, err, err_len);

    rows_t ranked = {0};
    int rc = source->neighbourhoods (source->handle, rows_add, &ranked, err, err_len);
    rc = check_rows (rc, &ranked, err, err_len);
    for (size_t i = 0; rc == 0 && i < ranked.count; i++) {
        rc = pooling_of (source, ranked.keys[i], report, err, err_len);
        /* Every record of it was withdrawn since the ranking was read: it is gone, not an error. */
        if (rc == STORE_ERR_NOTFOUND)
            rc = 0;
    }
    rows_clear (&ranked);
    return rc;
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
    case QUERY_NONE:
    case QUERY_HELP:
    case QUERY_KEYGEN:
    case QUERY_VERIFY: /* cli_store_run answers these */
    case QUERY_BACKUP:
        break;
    }
    snprintf (err, err_len, "nothing to do");
    return STORE_ERR;
}
