/* totalplace: the central team's CLI. Answers questions about neighbourhood totals from a
 * collector's store folder opened read-only (--db), as a table, CSV or JSON. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "period.h"
#include "query_args.h"
#include "report.h"
#include "store.h"

#define ERR_LEN 512

/* ---------------------------------------------------------------- where answers come from */

/* The questions the CLI asks, as operations on a source. Only the db_ functions below touch the
 * store; a --collector source will answer the same operations over the query socket, and every
 * command above works unchanged. Each returns 0, STORE_ERR_NOTFOUND or another negative code
 * with a message, as the store_ functions do. */
typedef struct {
    void *handle;
    int (*neighbourhoods) (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len);
    int (*totals) (void *handle, const char *neighbourhood, store_breakdown_t by,
                   const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
                   size_t err_len);
    int (*get_record) (void *handle, const char *body_id, const char *record_id,
                       Totalplace__SpendingRecord **record, char *err, size_t err_len);
    int (*counters) (void *handle, store_counters_t *counters, char *err, size_t err_len);
    int (*agents) (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len);
    void (*close) (void **handle);
} source_t;

static int
db_neighbourhoods (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    return store_neighbourhoods (handle, row, arg, err, err_len);
}

static int
db_totals (void *handle, const char *neighbourhood, store_breakdown_t by,
           const store_filter_t *filter, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    return store_totals (handle, neighbourhood, by, filter, row, arg, err, err_len);
}

static int
db_get_record (void *handle, const char *body_id, const char *record_id,
               Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    return store_get_record (handle, body_id, record_id, record, err, err_len);
}

static int
db_counters (void *handle, store_counters_t *counters, char *err, size_t err_len)
{
    return store_counters (handle, counters, err, err_len);
}

static int
db_agents (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    return store_agents (handle, fn, arg, err, err_len);
}

static void
db_close (void **handle)
{
    store_t *store = *handle;
    store_destroy (&store);
    *handle = NULL;
}

/* Opens dir read-only. The checks before store_new turn LMDB's terse errors into ones that say
 * what is wrong with the folder, and keep a mistyped path from meeting LMDB at all. */
static int
db_open (source_t *source, const char *dir, char *err, size_t err_len)
{
    struct stat st;
    if (stat (dir, &st) != 0) {
        snprintf (err, err_len, "--db %s: %s", dir, strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        snprintf (err, err_len,
                  "--db %s is not a folder: give the store's folder (holding data.mdb)", dir);
        return -1;
    }
    char data_path[PATH_MAX];
    if ((size_t)snprintf (data_path, sizeof data_path, "%s/data.mdb", dir) >= sizeof data_path ||
        access (data_path, F_OK) != 0) {
        snprintf (err, err_len, "--db %s is not a totalplace store: it holds no data.mdb", dir);
        return -1;
    }
    if (access (data_path, R_OK) != 0) {
        snprintf (err, err_len, "--db %s: cannot read data.mdb: %s", dir, strerror (errno));
        return -1;
    }
    /* LMDB readers register in lock.mdb even when they only read, so it must be writable. */
    char lock_path[PATH_MAX];
    if ((size_t)snprintf (lock_path, sizeof lock_path, "%s/lock.mdb", dir) < sizeof lock_path &&
        access (lock_path, F_OK) == 0 && access (lock_path, R_OK | W_OK) != 0) {
        snprintf (err, err_len,
                  "--db %s: cannot write lock.mdb (%s): LMDB readers register there, so run as a "
                  "user or group that may write it; the store itself is only read",
                  dir, strerror (errno));
        return -1;
    }
    char store_err[STORE_ERR_LEN];
    store_options_t options = {.path = dir, .read_only = true};
    store_t *store = store_new (&options, store_err, sizeof store_err);
    if (!store) {
        snprintf (err, err_len, "--db %s is not a usable totalplace store: %s", dir, store_err);
        return -1;
    }
    *source = (source_t){store,       db_neighbourhoods, db_totals, db_get_record,
                         db_counters, db_agents,         db_close};
    return 0;
}

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
run_neighbourhoods (const source_t *source, report_t *report, char *err, size_t err_len)
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
run_totals (const source_t *source, const query_args_t *args, report_t *report, char *err,
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
pooling_of (const source_t *source, const char *neighbourhood, report_t *report, char *err,
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
run_pooling (const source_t *source, const query_args_t *args, report_t *report, char *err,
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
run_record (const source_t *source, const query_args_t *args, report_t *report, char *err,
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

static int
run_stats (const source_t *source, report_t *report, char *err, size_t err_len)
{
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
    store_counters_t counters;
    int rc = source->counters (source->handle, &counters, err, err_len);
    if (rc)
        return rc;
    report_set_caption (report, "Store statistics (records by outcome since the store began)");
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
    return source->agents (source->handle, agent_row, report, err, err_len);
}

static int
run (const source_t *source, const query_args_t *args, report_t *report, char *err, size_t err_len)
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
        break;
    }
    snprintf (err, err_len, "nothing to do");
    return STORE_ERR;
}

/* ---------------------------------------------------------------- main */

static int
usage_error (query_command_t command, const char *format, ...)
{
    va_list args;
    fputs ("totalplace: ", stderr);
    va_start (args, format);
    vfprintf (stderr, format, args);
    va_end (args);
    fputc ('\n', stderr);
    query_args_usage (stderr, command);
    return QUERY_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
    query_args_t args;
    char err[ERR_LEN];
    if (query_args_parse (&args, argc, argv, err, sizeof err))
        return usage_error (args.command, "%s", err);
    if (args.help) {
        query_args_help (stdout, args.help_on);
        return QUERY_EXIT_OK;
    }
    if (args.version) {
        printf ("totalplace %s\n", TOTALPLACE_VERSION);
        return QUERY_EXIT_OK;
    }
    if (args.collector)
        return usage_error (args.command, "--collector is not available yet: use --db DIR");
    if (!args.db)
        return usage_error (args.command, "no store given: use --db DIR");

    source_t source;
    if (db_open (&source, args.db, err, sizeof err)) {
        fprintf (stderr, "totalplace: %s\n", err);
        return QUERY_EXIT_FAILED;
    }
    int status = QUERY_EXIT_OK;
    report_t *report = report_new (query_command_name (args.command));
    if (!report) {
        fprintf (stderr, "totalplace: out of memory\n");
        status = QUERY_EXIT_FAILED;
    }
    else if (run (&source, &args, report, err, sizeof err) ||
             report_write (report, args.format, stdout, err, sizeof err)) {
        fprintf (stderr, "totalplace: %s\n", err);
        status = QUERY_EXIT_FAILED;
    }
    report_destroy (&report);
    source.close (&source.handle);
    return status;
}
