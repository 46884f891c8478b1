/* export_summary: counts and the first examples of everything a read finds, bounded in memory
 * whatever the file holds (reasons and unplaced values are grouped, examples capped), and the
 * verdict with its note written out in full. */
#include "export_summary.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quoted_text.h"

/* Distinct reasons and unplaced values kept; beyond these the rest are counted together. */
#define MAX_REASONS  256
#define MAX_UNPLACED 10000
/* Examples kept per warning kind and of repeated ids. */
#define MAX_EXAMPLES 5

typedef struct {
    export_reason_t public;
    char *reason;
    char *key;
} reason_entry_t;

typedef struct {
    export_unplaced_t public;
    char *what, *value;
} unplaced_entry_t;

typedef struct {
    char *text;
    size_t line;
} example_t;

struct _export_summary_t {
    export_stats_t stats;
    char *encoding, *encoding_why;
    csv_layout_t *layout;
    char *failure;

    reason_entry_t *reasons;
    size_t reason_count, reason_capacity;
    zhashx_t *reason_index; /* grouping key -> index + 1 */
    uint64_t other_reasons;
    bool reasons_sorted;

    uint64_t warnings[EXPORT_WARN_KINDS];
    example_t examples[EXPORT_WARN_KINDS][MAX_EXAMPLES];
    size_t example_count[EXPORT_WARN_KINDS];
    export_warning_fn *sink;
    void *sink_arg;

    export_repeat_t repeats[MAX_EXAMPLES];
    size_t repeat_count;

    unplaced_entry_t *unplaced;
    size_t unplaced_count, unplaced_capacity;
    zhashx_t *unplaced_index;
    uint64_t other_unplaced;
    bool unplaced_sorted;

    int64_t total, accepted_total;
    bool total_overflow, accepted_overflow;
    char first_date[16], last_date[16];
};

export_summary_t *
export_summary_new (void)
{
    export_summary_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->reason_index = zhashx_new ();
    self->unplaced_index = zhashx_new ();
    if (!self->reason_index || !self->unplaced_index)
        export_summary_destroy (&self);
    return self;
}

void
export_summary_destroy (export_summary_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    export_summary_t *self = *self_p;
    free (self->encoding);
    free (self->encoding_why);
    csv_layout_destroy (&self->layout);
    free (self->failure);
    for (size_t i = 0; i < self->reason_count; i++) {
        free (self->reasons[i].reason);
        free (self->reasons[i].key);
    }
    free (self->reasons);
    zhashx_destroy (&self->reason_index);
    for (int k = 0; k < EXPORT_WARN_KINDS; k++)
        for (size_t i = 0; i < self->example_count[k]; i++)
            free (self->examples[k][i].text);
    for (size_t i = 0; i < self->repeat_count; i++)
        free ((char *)self->repeats[i].id);
    for (size_t i = 0; i < self->unplaced_count; i++) {
        free (self->unplaced[i].what);
        free (self->unplaced[i].value);
    }
    free (self->unplaced);
    zhashx_destroy (&self->unplaced_index);
    free (self);
    *self_p = NULL;
}

void
export_summary_set_warning_sink (export_summary_t *self, export_warning_fn *fn, void *arg)
{
    self->sink = fn;
    self->sink_arg = arg;
}

static int
replace_text (char **slot, const char *text)
{
    char *copy = strdup (text ? text : "");
    if (!copy)
        return -1;
    free (*slot);
    *slot = copy;
    return 0;
}

int
export_summary_set_encoding (export_summary_t *self, const char *encoding, const char *why)
{
    return replace_text (&self->encoding, encoding) || replace_text (&self->encoding_why, why) ? -1
                                                                                               : 0;
}

void
export_summary_take_layout (export_summary_t *self, csv_layout_t **layout_p)
{
    csv_layout_destroy (&self->layout);
    self->layout = *layout_p;
    *layout_p = NULL;
}

int
export_summary_set_failure (export_summary_t *self, const char *message)
{
    return replace_text (&self->failure, message);
}

/* The grouping key of a reason: quoted values and runs of digits left out, so that the same
 * problem with different values is one reason. Quotations may escape a quote as \". */
static char *
reason_key (csv_field_t field, const char *reason)
{
    size_t len = strlen (reason);
    char *key = malloc (len + 8);
    if (!key)
        return NULL;
    size_t used = (size_t)snprintf (key, 8, "%d:", (int)field);
    for (const char *p = reason; *p;) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
            key[used++] = '"';
            key[used++] = '"';
            continue;
        }
        if (*p >= '0' && *p <= '9') {
            while (*p >= '0' && *p <= '9')
                p++;
            key[used++] = '#';
            continue;
        }
        key[used++] = *p++;
    }
    key[used] = '\0';
    return key;
}

int
export_summary_add_reject (export_summary_t *self, csv_field_t field, size_t line,
                           const char *reason)
{
    char *key = reason_key (field, reason);
    if (!key)
        return -1;
    size_t index = (size_t)(uintptr_t)zhashx_lookup (self->reason_index, key);
    self->reasons_sorted = false;
    if (index) {
        free (key);
        self->reasons[index - 1].public.rows++;
        return 0;
    }
    if (self->reason_count == MAX_REASONS) {
        free (key);
        self->other_reasons++;
        return 0;
    }
    if (self->reason_count == self->reason_capacity) {
        size_t capacity = self->reason_capacity ? self->reason_capacity * 2 : 16;
        reason_entry_t *reasons = realloc (self->reasons, capacity * sizeof *reasons);
        if (!reasons) {
            free (key);
            return -1;
        }
        self->reasons = reasons;
        self->reason_capacity = capacity;
    }
    reason_entry_t *entry = &self->reasons[self->reason_count];
    entry->key = key;
    entry->reason = strdup (reason);
    if (!entry->reason) {
        free (key);
        return -1;
    }
    entry->public = (export_reason_t){entry->reason, field, 1, line};
    zhashx_insert (self->reason_index, key, (void *)(uintptr_t)(self->reason_count + 1));
    self->reason_count++;
    return 0;
}

int
export_summary_warn (export_summary_t *self, export_warning_t kind, size_t line, const char *text)
{
    self->warnings[kind]++;
    if (self->example_count[kind] < MAX_EXAMPLES) {
        example_t *example = &self->examples[kind][self->example_count[kind]];
        if (!(example->text = strdup (text)))
            return -1;
        example->line = line;
        self->example_count[kind]++;
    }
    return self->sink ? self->sink (self->sink_arg, kind, line, text) : 0;
}

int
export_summary_add_repeat (export_summary_t *self, const char *id, size_t first_line, size_t line)
{
    if (self->repeat_count == MAX_EXAMPLES)
        return 0;
    char *copy = strdup (id);
    if (!copy)
        return -1;
    self->repeats[self->repeat_count++] = (export_repeat_t){copy, first_line, line};
    return 0;
}

/* "what US value": the unit separator cannot be in a header or a cell the reader keeps. */
static char *
unplaced_key (const char *what, const char *value)
{
    size_t key_len = strlen (what) + strlen (value) + 2;
    char *key = malloc (key_len);
    if (key)
        snprintf (key, key_len, "%s\x1f%s", what, value);
    return key;
}

int
export_summary_add_unplaced (export_summary_t *self, const char *what, const char *value)
{
    char *key = unplaced_key (what, value);
    if (!key)
        return -1;
    size_t index = (size_t)(uintptr_t)zhashx_lookup (self->unplaced_index, key);
    self->unplaced_sorted = false;
    if (index) {
        free (key);
        self->unplaced[index - 1].public.rows++;
        return 0;
    }
    if (self->unplaced_count == MAX_UNPLACED) {
        free (key);
        self->other_unplaced++;
        return 0;
    }
    if (self->unplaced_count == self->unplaced_capacity) {
        size_t capacity = self->unplaced_capacity ? self->unplaced_capacity * 2 : 16;
        unplaced_entry_t *entries = realloc (self->unplaced, capacity * sizeof *entries);
        if (!entries) {
            free (key);
            return -1;
        }
        self->unplaced = entries;
        self->unplaced_capacity = capacity;
    }
    unplaced_entry_t *entry = &self->unplaced[self->unplaced_count];
    entry->what = strdup (what);
    entry->value = strdup (value);
    if (!entry->what || !entry->value) {
        free (entry->what);
        free (entry->value);
        free (key);
        return -1;
    }
    entry->public = (export_unplaced_t){entry->what, entry->value, 1};
    zhashx_insert (self->unplaced_index, key, (void *)(uintptr_t)(self->unplaced_count + 1));
    free (key);
    self->unplaced_count++;
    return 0;
}

void
export_summary_add_amount (export_summary_t *self, int64_t pence, bool accepted)
{
    if (!self->total_overflow && __builtin_add_overflow (self->total, pence, &self->total))
        self->total_overflow = true;
    if (accepted && !self->accepted_overflow &&
        __builtin_add_overflow (self->accepted_total, pence, &self->accepted_total))
        self->accepted_overflow = true;
}

void
export_summary_add_date (export_summary_t *self, const char *date)
{
    if (!*self->first_date || strcmp (date, self->first_date) < 0)
        snprintf (self->first_date, sizeof self->first_date, "%s", date);
    if (!*self->last_date || strcmp (date, self->last_date) > 0)
        snprintf (self->last_date, sizeof self->last_date, "%s", date);
}

void
export_summary_set_stats (export_summary_t *self, const export_stats_t *stats)
{
    self->stats = *stats;
}

/* ---------------------------------------------------------------- reading it back */

const export_stats_t *
export_summary_stats (const export_summary_t *self)
{
    return &self->stats;
}

const char *
export_summary_encoding (const export_summary_t *self)
{
    return self->encoding ? self->encoding : "";
}

const char *
export_summary_encoding_why (const export_summary_t *self)
{
    return self->encoding_why ? self->encoding_why : "";
}

const csv_layout_t *
export_summary_layout (const export_summary_t *self)
{
    return self->layout;
}

const char *
export_summary_failure (const export_summary_t *self)
{
    return self->failure;
}

bool
export_summary_total (const export_summary_t *self, int64_t *pence)
{
    *pence = self->total;
    return !self->total_overflow;
}

bool
export_summary_accepted_total (const export_summary_t *self, int64_t *pence)
{
    *pence = self->accepted_total;
    return !self->accepted_overflow;
}

const char *
export_summary_first_date (const export_summary_t *self)
{
    return self->first_date;
}

const char *
export_summary_last_date (const export_summary_t *self)
{
    return self->last_date;
}

static int
compare_reasons (const void *a, const void *b)
{
    const reason_entry_t *x = a, *y = b;
    if (x->public.rows != y->public.rows)
        return x->public.rows > y->public.rows ? -1 : 1;
    return x->public.first_line < y->public.first_line
               ? -1
               : x->public.first_line > y->public.first_line;
}

size_t
export_summary_reason_count (const export_summary_t *self)
{
    return self->reason_count;
}

const export_reason_t *
export_summary_reason (const export_summary_t *self, size_t index)
{
    if (index >= self->reason_count)
        return NULL;
    /* Sorted on first reading; the index then points at the old places, so it is rebuilt. */
    export_summary_t *mutable = (export_summary_t *)self;
    if (!self->reasons_sorted) {
        qsort (mutable->reasons, self->reason_count, sizeof *self->reasons, compare_reasons);
        zhashx_purge (mutable->reason_index);
        for (size_t i = 0; i < self->reason_count; i++)
            zhashx_insert (mutable->reason_index, self->reasons[i].key, (void *)(uintptr_t)(i + 1));
        mutable->reasons_sorted = true;
    }
    return &self->reasons[index].public;
}

uint64_t
export_summary_warning_count (const export_summary_t *self, export_warning_t kind)
{
    return self->warnings[kind];
}

size_t
export_summary_warning_examples (const export_summary_t *self, export_warning_t kind)
{
    return self->example_count[kind];
}

const char *
export_summary_warning_example (const export_summary_t *self, export_warning_t kind, size_t index,
                                size_t *line)
{
    if (index >= self->example_count[kind])
        return NULL;
    if (line)
        *line = self->examples[kind][index].line;
    return self->examples[kind][index].text;
}

size_t
export_summary_repeat_examples (const export_summary_t *self)
{
    return self->repeat_count;
}

const export_repeat_t *
export_summary_repeat_example (const export_summary_t *self, size_t index)
{
    return index < self->repeat_count ? &self->repeats[index] : NULL;
}

static int
compare_unplaced (const void *a, const void *b)
{
    const unplaced_entry_t *x = a, *y = b;
    if (x->public.rows != y->public.rows)
        return x->public.rows > y->public.rows ? -1 : 1;
    int order = strcmp (x->what, y->what);
    return order ? order : strcmp (x->value, y->value);
}

size_t
export_summary_unplaced_count (const export_summary_t *self)
{
    return self->unplaced_count;
}

const export_unplaced_t *
export_summary_unplaced (const export_summary_t *self, size_t index)
{
    if (index >= self->unplaced_count)
        return NULL;
    export_summary_t *mutable = (export_summary_t *)self;
    if (!self->unplaced_sorted) {
        qsort (mutable->unplaced, self->unplaced_count, sizeof *self->unplaced, compare_unplaced);
        zhashx_purge (mutable->unplaced_index);
        for (size_t i = 0; i < self->unplaced_count; i++) {
            char *key = unplaced_key (self->unplaced[i].what, self->unplaced[i].value);
            if (key)
                zhashx_insert (mutable->unplaced_index, key, (void *)(uintptr_t)(i + 1));
            free (key);
        }
        mutable->unplaced_sorted = true;
    }
    unplaced_entry_t *entry = &mutable->unplaced[index];
    entry->public.what = entry->what;
    entry->public.value = entry->value;
    return &entry->public;
}

/* ---------------------------------------------------------------- the verdict */

/* "12,345": counts in notes read as people write them. */
static const char *
grouped (uint64_t value, char *out, size_t out_len)
{
    char digits[24];
    int n = snprintf (digits, sizeof digits, "%llu", (unsigned long long)value);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < out_len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

/* The columns read for field and the others that could hold it, as one sentence. Returns the
 * 1-based position of the first other candidate, or 0. */
static size_t
describe_columns (const export_summary_t *self, FILE *note, csv_field_t field)
{
    if (!self->layout || field >= CSV_FIELD_COUNT)
        return 0;
    char read_from[1024], quoted[QUOTED_TEXT_LEN];
    csv_layout_describe (self->layout, field, read_from, sizeof read_from);
    fprintf (note, "\n  %s is read from %s", csv_field_name (field), read_from);
    size_t others[8];
    size_t n = csv_layout_other_candidates (self->layout, field, others, 8);
    if (n == 0)
        fprintf (note, "; no other column of the header looks like a %s column.",
                 csv_field_name (field));
    else {
        fprintf (note, "; other columns that could hold it:");
        for (size_t i = 0; i < n && i < 8; i++)
            fprintf (
                note, "%s %zu %s", i ? "," : "", others[i] + 1,
                quoted_text (csv_layout_header (self->layout, others[i]), quoted, sizeof quoted));
        fprintf (note, "%s.", n > 8 ? " and more" : "");
    }
    return n ? others[0] + 1 : 0;
}

static void
advise (const export_summary_t *self, FILE *note, const export_reason_t *main, const char *config)
{
    const char *where = config ? config : "the agent's config";
    csv_field_t field = main->field;
    if (field == CSV_FIELD_NEIGHBOURHOOD && strncmp (main->reason, "no neighbourhood", 16) == 0) {
        fprintf (note,
                 "\n  What to do: complete the neighbourhood lookup "
                 "(neighbourhood/lookup_file, read by neighbourhood/lookup_column) or the "
                 "postcode file (neighbourhood/postcode_file) in %s",
                 where);
        size_t n = self->unplaced_count < 5 ? self->unplaced_count : 5;
        if (n) {
            char quoted[QUOTED_TEXT_LEN];
            fprintf (note, "; the values most often not found:");
            for (size_t i = 0; i < n; i++) {
                const export_unplaced_t *value = export_summary_unplaced (self, i);
                fprintf (note, "%s %s %s (%llu rows)", i ? "," : "", value->what,
                         quoted_text (value->value, quoted, sizeof quoted),
                         (unsigned long long)value->rows);
            }
        }
        fprintf (note, "; reload the agent (SIGHUP), then drop the file into the inbox again.");
        return;
    }
    if (field == CSV_FIELD_SERVICE) {
        describe_columns (self, note, field);
        fprintf (note,
                 "\n  What to do: set columns/service to the column that holds the service "
                 "area, or defaults/service for rows without one, in %s; reload the agent "
                 "(SIGHUP), then drop the file into the inbox again.",
                 where);
        return;
    }
    const char *setting = (field < CSV_FIELD_COUNT ? csv_field_key (field) : NULL);
    if (!setting) {
        fprintf (note, "\n  What to do: the rows do not fit the file's header (see the reasons); "
                       "ask the body for a clean export, then drop it into the inbox again.");
        return;
    }
    size_t other = describe_columns (self, note, field);
    fprintf (note, "\n  What to do: set %s in %s to the column that holds the %s (its header name",
             setting, where, csv_field_name (field));
    if (other)
        fprintf (note, ", or its position: %s = #%zu", setting, other);
    fprintf (note,
             "), check with `totalplace-agent inspect FILE -c %s`, reload the agent (SIGHUP), "
             "then drop the file into the inbox again.",
             config ? config : "CONFIG");
}

export_verdict_t
export_summary_verdict (const export_summary_t *self, const export_policy_t *policy, char **note)
{
    *note = NULL;
    if (self->failure) {
        *note = strdup (self->failure);
        return EXPORT_FAILED;
    }
    const export_stats_t *s = &self->stats;
    bool repeats = policy->hold_repeated_ids && s->repeated_ids > 0;
    bool rejects =
        s->rows > 0 && s->rejected * 100 > (uint64_t)policy->max_rejected_percent * s->rows;
    if (!repeats && !rejects)
        return EXPORT_DELIVER;

    size_t size = 0;
    FILE *text = open_memstream (note, &size);
    if (!text)
        return EXPORT_HOLD;
    char a[32], b[32], quoted[QUOTED_TEXT_LEN];
    const char *where = policy->config ? policy->config : "the agent's config";
    fprintf (text, "held: nothing of this file was sent, because");
    if (repeats) {
        fprintf (text,
                 " record ids repeat with different content: %s ids are on %s more rows that "
                 "differ from the first row with the same id",
                 grouped (s->repeated_ids, a, sizeof a),
                 grouped (s->repeated_id_rows, b, sizeof b));
        for (size_t i = 0; i < self->repeat_count; i++)
            fprintf (text, "%s %s on lines %zu and %zu", i ? "," : " (for example",
                     quoted_text (self->repeats[i].id, quoted, sizeof quoted),
                     self->repeats[i].first_line, self->repeats[i].line);
        fprintf (text,
                 "%s. Each would keep only one of its rows: the export has a row per invoice "
                 "line, sharing the transaction number.",
                 self->repeat_count ? ")" : "");
        describe_columns (self, text, CSV_FIELD_RECORD_ID);
        fprintf (text,
                 "\n  What to do: set input/repeated_ids = lines in %s to count every line as a "
                 "payment of its own (or set columns/record_id to a column, or columns joined "
                 "with +, that is unique per row), reload the agent (SIGHUP), then drop the file "
                 "into the inbox again.",
                 where);
    }
    if (rejects) {
        fprintf (text,
                 "%s %s of %s rows (%llu%%) would be rejected, more than "
                 "input/max_rejected_percent (%u%%).",
                 repeats ? "\n  Also," : "", grouped (s->rejected, a, sizeof a),
                 grouped (s->rows, b, sizeof b), (unsigned long long)(s->rejected * 100 / s->rows),
                 policy->max_rejected_percent);
        const export_reason_t *main = export_summary_reason (self, 0);
        if (main) {
            fprintf (text, "\n  Main reason, %s rows: %s (first at line %zu).",
                     grouped (main->rows, a, sizeof a), main->reason, main->first_line);
            for (size_t i = 1; i < self->reason_count && i < 4; i++) {
                const export_reason_t *other = export_summary_reason (self, i);
                fprintf (text, "\n  Next, %s rows: %s (first at line %zu).",
                         grouped (other->rows, a, sizeof a), other->reason, other->first_line);
            }
            advise (self, text, main, policy->config);
        }
    }
    fclose (text);
    return EXPORT_HOLD;
}
