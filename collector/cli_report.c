/* cli_report: the figures are tallies keyed by text (body, "body\x1fservice", month,
 * neighbourhood), each member neighbourhood's answers added in with overflow checked, then laid
 * out as the page's arrays. The questions are the ones `totals` and `pooling` ask, so the page's
 * figures are the CLI's. */
#include "cli_report.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err_text.h"
#include "staged_file.h"

#define fail(...) err_text (__VA_ARGS__)
#define ERR_LEN   1024

/* Separates body and service in a budget's key: below every printable byte, so budgets sort by
 * body, then service. */
#define BUDGET_SEPARATOR '\x1f'

typedef struct {
    char *key;
    int64_t total, poolable, records;
} entry_t;

/* Entries sorted by key (strcmp). */
typedef struct {
    entry_t *items;
    size_t count, capacity;
} tally_t;

struct _cli_report_t {
    tally_t bodies, budgets, months, neighbourhoods;
    report_page_row_t *body_rows, *month_rows, *neighbourhood_rows;
    report_page_budget_t *budget_rows;
    char *budget_texts; /* the budgets' keys split into body and service */
    char store_id[STORE_ID_HEX_LEN];
    char generated[32];
    report_page_t page;
};

static void
tally_clear (tally_t *tally)
{
    for (size_t i = 0; i < tally->count; i++)
        free (tally->items[i].key);
    free (tally->items);
    *tally = (tally_t){0};
}

static int
add_checked (int64_t *sum, int64_t value)
{
    return __builtin_add_overflow (*sum, value, sum) ? -1 : 0;
}

/* Adds to the entry of key, made (zero) when new. */
static int
tally_add (tally_t *tally, const char *key, int64_t total, int64_t poolable, int64_t records,
           char *err, size_t err_len)
{
    size_t low = 0, high = tally->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (strcmp (tally->items[middle].key, key) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == tally->count || strcmp (tally->items[low].key, key) != 0) {
        if (tally->count == tally->capacity) {
            size_t capacity = tally->capacity ? tally->capacity * 2 : 16;
            entry_t *items = realloc (tally->items, capacity * sizeof *items);
            if (!items)
                return fail (err, err_len, STORE_ERR, "out of memory");
            tally->items = items;
            tally->capacity = capacity;
        }
        char *copy = strdup (key);
        if (!copy)
            return fail (err, err_len, STORE_ERR, "out of memory");
        memmove (&tally->items[low + 1], &tally->items[low],
                 (tally->count - low) * sizeof *tally->items);
        tally->items[low] = (entry_t){copy, 0, 0, 0};
        tally->count++;
    }
    entry_t *entry = &tally->items[low];
    if (add_checked (&entry->total, total) || add_checked (&entry->poolable, poolable) ||
        add_checked (&entry->records, records))
        return fail (err, err_len, STORE_ERR,
                     "the total of %.64s over the neighbourhoods is beyond the largest amount in "
                     "pence",
                     key);
    return 0;
}

/* ---------------------------------------------------------------- asking */

/* Where the rows of one question go. */
typedef struct {
    tally_t *tally;
    const char *prefix; /* budgets: the body, put before the service */
    bool poolable;      /* the rows are the poolable part, not the total */
    int rc;
    char *err;
    size_t err_len;
} sink_t;

static int
sink_row (void *arg, const char *key, store_amount_t amount)
{
    sink_t *sink = arg;
    char budget_key[1024];
    if (sink->prefix) {
        if ((size_t)snprintf (budget_key, sizeof budget_key, "%s%c%s", sink->prefix,
                              BUDGET_SEPARATOR, key) >= sizeof budget_key) {
            sink->rc = fail (sink->err, sink->err_len, STORE_ERR, "a service name is too long");
            return 1;
        }
        key = budget_key;
    }
    sink->rc = sink->poolable ? tally_add (sink->tally, key, 0, amount.amount_pence, 0, sink->err,
                                           sink->err_len)
                              : tally_add (sink->tally, key, amount.amount_pence, 0, amount.records,
                                           sink->err, sink->err_len);
    return sink->rc != 0;
}

/* One question of source, its rows added to tally. */
static int
ask (const cli_report_source_t *source, const char *neighbourhood, store_breakdown_t by,
     const store_filter_t *filter, tally_t *tally, const char *prefix, char *err, size_t err_len)
{
    sink_t sink = {tally, prefix, filter->poolable == 1, 0, err, err_len};
    int rc =
        source->totals (source->handle, neighbourhood, by, filter, sink_row, &sink, err, err_len);
    return rc ? rc : sink.rc;
}

/* The questions about one member neighbourhood. */
static int
gather_member (cli_report_t *self, const cli_report_source_t *source, const char *neighbourhood,
               const char *fiscal_year, char *err, size_t err_len)
{
    store_filter_t all = {.fiscal_year = fiscal_year, .poolable = -1};
    store_filter_t poolable = {.fiscal_year = fiscal_year, .poolable = 1};
    tally_t total = {0}, member_bodies = {0};
    int rc = ask (source, neighbourhood, STORE_BY_NONE, &all, &total, NULL, err, err_len);
    if (rc == 0)
        for (size_t i = 0; rc == 0 && i < total.count; i++)
            rc = tally_add (&self->neighbourhoods, neighbourhood, total.items[i].total, 0,
                            total.items[i].records, err, err_len);
    if (rc == 0)
        rc = ask (source, neighbourhood, STORE_BY_BODY, &all, &member_bodies, NULL, err, err_len);
    for (size_t i = 0; rc == 0 && i < member_bodies.count; i++)
        rc = tally_add (&self->bodies, member_bodies.items[i].key, member_bodies.items[i].total, 0,
                        member_bodies.items[i].records, err, err_len);
    if (rc == 0)
        rc = ask (source, neighbourhood, STORE_BY_BODY, &poolable, &self->bodies, NULL, err,
                  err_len);
    if (rc == 0)
        rc = ask (source, neighbourhood, STORE_BY_MONTH, &all, &self->months, NULL, err, err_len);
    for (size_t i = 0; rc == 0 && i < member_bodies.count; i++) {
        const char *body = member_bodies.items[i].key;
        store_filter_t of_body = all, poolable_of_body = poolable;
        of_body.body_id = poolable_of_body.body_id = body;
        rc = ask (source, neighbourhood, STORE_BY_SERVICE, &of_body, &self->budgets, body, err,
                  err_len);
        if (rc == 0)
            rc = ask (source, neighbourhood, STORE_BY_SERVICE, &poolable_of_body, &self->budgets,
                      body, err, err_len);
    }
    tally_clear (&total);
    tally_clear (&member_bodies);
    return rc;
}

static int
by_total_descending (const void *a, const void *b)
{
    const report_page_row_t *x = a, *y = b;
    if (x->total_pence != y->total_pence)
        return x->total_pence > y->total_pence ? -1 : 1;
    return strcmp (x->key, y->key);
}

/* The tallies as the page's rows (pointing at the tallies' keys). */
static report_page_row_t *
rows_of (const tally_t *tally)
{
    report_page_row_t *rows = calloc (tally->count ? tally->count : 1, sizeof *rows);
    for (size_t i = 0; rows && i < tally->count; i++)
        rows[i] = (report_page_row_t){tally->items[i].key, tally->items[i].total,
                                      tally->items[i].poolable, tally->items[i].records};
    return rows;
}

static int
lay_out (cli_report_t *self, const cli_report_scope_t *scope, char *err, size_t err_len)
{
    self->body_rows = rows_of (&self->bodies);
    self->month_rows = rows_of (&self->months);
    self->neighbourhood_rows =
        calloc (scope->neighbourhood_count, sizeof *self->neighbourhood_rows);
    self->budget_rows =
        calloc (self->budgets.count ? self->budgets.count : 1, sizeof *self->budget_rows);
    size_t texts = 1;
    for (size_t i = 0; i < self->budgets.count; i++)
        texts += strlen (self->budgets.items[i].key) + 1;
    self->budget_texts = malloc (texts);
    if (!self->body_rows || !self->month_rows || !self->neighbourhood_rows || !self->budget_rows ||
        !self->budget_texts)
        return fail (err, err_len, STORE_ERR, "out of memory");
    qsort (self->body_rows, self->bodies.count, sizeof *self->body_rows, by_total_descending);
    char *text = self->budget_texts;
    for (size_t i = 0; i < self->budgets.count; i++) {
        const entry_t *entry = &self->budgets.items[i];
        size_t len = strlen (entry->key);
        memcpy (text, entry->key, len + 1);
        char *separator = strchr (text, BUDGET_SEPARATOR);
        *separator = '\0';
        self->budget_rows[i] = (report_page_budget_t){text, separator + 1, entry->total,
                                                      entry->poolable, entry->records};
        text += len + 1;
    }
    /* Members in the order given, each once; one without records shows as zero. */
    report_page_t *page = &self->page;
    for (size_t i = 0; i < scope->neighbourhood_count; i++) {
        const char *code = scope->neighbourhoods[i];
        report_page_row_t row = {code, 0, 0, 0};
        for (size_t j = 0; j < self->neighbourhoods.count; j++)
            if (strcmp (self->neighbourhoods.items[j].key, code) == 0)
                row = (report_page_row_t){self->neighbourhoods.items[j].key,
                                          self->neighbourhoods.items[j].total, 0,
                                          self->neighbourhoods.items[j].records};
        self->neighbourhood_rows[i] = row;
        if (add_checked (&page->total_pence, row.total_pence) ||
            add_checked (&page->records, row.records))
            return fail (err, err_len, STORE_ERR,
                         "the total of %.64s is beyond the largest amount in pence", scope->name);
    }
    for (size_t i = 0; i < self->bodies.count; i++)
        if (add_checked (&page->poolable_pence, self->bodies.items[i].poolable))
            return fail (err, err_len, STORE_ERR,
                         "the poolable total of %.64s is beyond the largest amount in pence",
                         scope->name);
    page->name = scope->name;
    page->fiscal_year = scope->fiscal_year;
    page->residents = scope->residents;
    page->store_id = self->store_id;
    page->generated = self->generated;
    page->bodies = self->body_rows;
    page->body_count = self->bodies.count;
    page->budgets = self->budget_rows;
    page->budget_count = self->budgets.count;
    page->months = self->month_rows;
    page->month_count = self->months.count;
    page->neighbourhoods = self->neighbourhood_rows;
    page->neighbourhood_count = scope->neighbourhood_count;
    return 0;
}

cli_report_t *
cli_report_gather (const cli_report_source_t *source, const cli_report_scope_t *scope, int *code,
                   char *err, size_t err_len)
{
    *code = STORE_ERR;
    if (scope->neighbourhood_count == 0) {
        fail (err, err_len, STORE_ERR, "a report needs at least one neighbourhood");
        return NULL;
    }
    cli_report_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, STORE_ERR, "out of memory");
        return NULL;
    }
    time_t now = time (NULL);
    struct tm tm;
    strftime (self->generated, sizeof self->generated, "%Y-%m-%d %H:%M UTC", gmtime_r (&now, &tm));
    store_identity_t identity;
    int rc = source->identity ? source->identity (source->handle, &identity, err, err_len) : 0;
    if (rc == 0 && source->identity)
        memcpy (self->store_id, identity.store_id, sizeof self->store_id);
    size_t found = 0;
    const char *missing = NULL;
    char missing_err[256] = "";
    for (size_t i = 0; rc == 0 && i < scope->neighbourhood_count; i++) {
        rc = gather_member (self, source, scope->neighbourhoods[i], scope->fiscal_year, err,
                            err_len);
        if (rc == STORE_ERR_NOTFOUND) {
            /* A member without records counts as zero; the page lists it so. */
            missing = scope->neighbourhoods[i];
            snprintf (missing_err, sizeof missing_err, "%s", err);
            rc = 0;
        }
        else if (rc == 0)
            found++;
    }
    if (rc == 0 && found == 0) {
        rc = STORE_ERR_NOTFOUND;
        if (scope->neighbourhood_count == 1)
            fail (err, err_len, STORE_ERR_NOTFOUND, "%s", missing_err);
        else
            fail (err, err_len, STORE_ERR_NOTFOUND,
                  "no neighbourhood of %s has records in this store (%s, ...)", scope->name,
                  missing);
    }
    if (rc == 0)
        rc = lay_out (self, scope, err, err_len);
    if (rc) {
        *code = rc;
        cli_report_destroy (&self);
    }
    return self;
}

const report_page_t *
cli_report_page (const cli_report_t *report)
{
    return &report->page;
}

void
cli_report_destroy (cli_report_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_report_t *self = *self_p;
    tally_clear (&self->bodies);
    tally_clear (&self->budgets);
    tally_clear (&self->months);
    tally_clear (&self->neighbourhoods);
    free (self->body_rows);
    free (self->month_rows);
    free (self->neighbourhood_rows);
    free (self->budget_rows);
    free (self->budget_texts);
    free (self);
    *self_p = NULL;
}

int
cli_report_default_path (const char *name, char *out, size_t out_len)
{
    int len = snprintf (out, out_len, "totalplace-report-%s.html", name);
    if (len < 0 || (size_t)len >= out_len)
        return -1;
    char *safe = out + strlen ("totalplace-report-");
    for (size_t i = 0; i < strlen (name); i++)
        if (!strchr ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", safe[i]))
            safe[i] = '-';
    return 0;
}

/* A place as the source knows it: its members with records (in code order) and its residents. */
typedef struct {
    const char *name;
    char **codes;
    size_t count, capacity;
    bool found, out_of_memory;
    int64_t residents;
} place_scope_t;

static int
place_member (void *arg, const char *const *keys, store_amount_t amount)
{
    (void)amount;
    place_scope_t *place = arg;
    if (place->count == place->capacity) {
        size_t capacity = place->capacity ? place->capacity * 2 : 16;
        char **codes = realloc (place->codes, capacity * sizeof *codes);
        if (!codes) {
            place->out_of_memory = true;
            return 1;
        }
        place->codes = codes;
        place->capacity = capacity;
    }
    if (!(place->codes[place->count] = strdup (keys[0]))) {
        place->out_of_memory = true;
        return 1;
    }
    place->count++;
    return 0;
}

static int
place_residents (void *arg, const place_totals_place_t *row)
{
    place_scope_t *place = arg;
    if (strcmp (row->place, place->name) != 0)
        return 0;
    place->found = true;
    /* Per resident only when every member has a population: a partial sum would flatter it. */
    place->residents = row->unpopulated == 0 ? row->residents : 0;
    return 1;
}

static void
place_scope_clear (place_scope_t *place)
{
    for (size_t i = 0; i < place->count; i++)
        free (place->codes[i]);
    free (place->codes);
    *place = (place_scope_t){0};
}

/* The members and residents of the place args name, from source. Returns 0 or a store error code
 * with a message (STORE_ERR_NOTFOUND for an unknown place or one without records). */
static int
place_scope (const query_args_t *args, const cli_report_source_t *source, place_scope_t *place,
             char *err, size_t err_len)
{
    *place = (place_scope_t){.name = args->place};
    if (!source->breakdown || !source->places)
        return err_text (err, err_len, STORE_ERR, "this source cannot answer for places");
    store_breakdown_t by = STORE_BY_NEIGHBOURHOOD;
    store_filter_t filter = {.fiscal_year = args->filter.fiscal_year, .poolable = -1};
    int rc = source->places (source->handle, place_residents, place, err, err_len);
    if (rc == 0 && !place->found)
        return err_text (err, err_len, STORE_ERR_NOTFOUND, "unknown place \"%.128s\"", args->place);
    if (rc == 0)
        rc = source->breakdown (source->handle, NULL, args->place, &by, 1, &filter, place_member,
                                place, err, err_len);
    if (rc == 0 && place->out_of_memory)
        rc = err_text (err, err_len, STORE_ERR, "out of memory");
    if (rc == 0 && place->count == 0)
        rc = err_text (err, err_len, STORE_ERR_NOTFOUND, "place \"%.128s\" has no records%s%s",
                       args->place, args->filter.fiscal_year ? " in " : "",
                       args->filter.fiscal_year ? args->filter.fiscal_year : "");
    return rc;
}

int
cli_report_run (const query_args_t *args, const cli_report_source_t *source)
{
    char err[ERR_LEN], default_path[PATH_MAX];
    const char *members[] = {args->neighbourhood};
    cli_report_scope_t scope = {args->neighbourhood, members, 1, 0, args->filter.fiscal_year};
    place_scope_t place = {0};
    if (args->place) {
        int code = place_scope (args, source, &place, err, sizeof err);
        if (code) {
            place_scope_clear (&place);
            fprintf (stderr, "totalplace: report: %s\n", err);
            return code == STORE_ERR_DAMAGED ? store_exit_status (code) : QUERY_EXIT_FAILED;
        }
        scope = (cli_report_scope_t){args->place, (const char *const *)place.codes, place.count,
                                     place.residents, args->filter.fiscal_year};
    }
    const char *path = args->out;
    if (!path) {
        if (cli_report_default_path (scope.name, default_path, sizeof default_path)) {
            fprintf (stderr, "totalplace: report: the name %.64s is too long for a file name\n",
                     scope.name);
            place_scope_clear (&place);
            return QUERY_EXIT_FAILED;
        }
        path = default_path;
    }
    int code = STORE_ERR;
    cli_report_t *report = cli_report_gather (source, &scope, &code, err, sizeof err);
    staged_file_t staged;
    int rc = report ? staged_file_open (&staged, path, err, sizeof err) : -1;
    if (rc == 0) {
        if (report_page_write (cli_report_page (report), staged.file, err, sizeof err)) {
            staged_file_abandon (&staged);
            rc = -1;
        }
        else
            rc = staged_file_commit (&staged, err, sizeof err);
    }
    cli_report_destroy (&report);
    place_scope_clear (&place);
    if (rc) {
        fprintf (stderr, "totalplace: report: %s\n", err);
        return code == STORE_ERR_DAMAGED ? store_exit_status (code) : QUERY_EXIT_FAILED;
    }
    printf ("%s\n", path);
    return QUERY_EXIT_OK;
}
