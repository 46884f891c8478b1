/* csv_layout: header names per field as data, the config's column specifications parsed once, and
 * one file's header resolved against them. */
#include "csv_layout.h"
#include "err_text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quoted_text.h"

#define MAX_DEFAULT_NAMES 12
#define MAX_KEYWORDS      12

/* Default header names in priority order (the first one a file has wins), then the words that make
 * another column worth mentioning as a candidate, and words that rule a column out. Names follow
 * the Local Government Transparency Code "spend over £500" exports and the variants councils
 * actually publish; names added later go after the older ones, so that a file read before keeps
 * reading the same columns. */
static const struct {
    const char *name;
    const char *names[MAX_DEFAULT_NAMES + 1];
    const char *keywords[MAX_KEYWORDS + 1];
    const char *excluded[MAX_KEYWORDS + 1];
} FIELDS[CSV_FIELD_COUNT] = {
    [CSV_FIELD_RECORD_ID] = {"record_id",
                             {"Transaction Number", "Transaction No", "Transaction ID",
                              "Transaction Reference", "Trans No", "Trans Number", "Trans Ref"},
                             {"transaction", "trans", "txn", "voucher", "reference", "ref"},
                             {"date", "amount", "value", "type", "name"}},
    [CSV_FIELD_PERIOD] = {"period",
                          {"Date", "Payment Date", "Transaction Date", "Paid Date", "Date Paid",
                           "Trans Date", "Posting Date", "Posted Date", "Invoice Date", "Period"},
                          {"date", "period", "month", "paid"},
                          {"amount", "value"}},
    [CSV_FIELD_AMOUNT] = {"amount",
                          {"Amount", "Net Amount", "Value", "Amount Paid", "Net Value",
                           "Gross Amount", "Total Amount"},
                          {"amount", "value", "net", "gross", "total", "spend", "paid", "gbp"},
                          {"date", "period", "vat rate"}},
    [CSV_FIELD_SUPPLIER] = {"supplier",
                            {"Supplier Name", "Supplier", "Beneficiary Name", "Beneficiary",
                             "Payee Name", "Payee", "Vendor Name", "Vendor", "Merchant Name"},
                            {"supplier", "vendor", "payee", "beneficiary", "merchant", "creditor",
                             "recipient"},
                            {"id", "number", "no", "code", "postcode", "type"}},
    [CSV_FIELD_SERVICE] = {"service",
                           {"Service Area", "Service", "Service Division", "Organisational Unit",
                            "Directorate", "Department", "Service Label"},
                           {"service", "department", "directorate", "division", "unit", "portfolio",
                            "cost centre", "organisational", "team"},
                           {"code"}},
    [CSV_FIELD_DESCRIPTION] = {"description",
                               {"Expenses Type", "Expense Type", "Description", "Purpose",
                                "Expenditure Category", "Expenditure Type", "Narrative"},
                               {"expense", "expenses", "expenditure", "description", "purpose",
                                "category", "narrative", "details", "subjective"},
                               {"code"}},
    [CSV_FIELD_NEIGHBOURHOOD] = {"neighbourhood",
                                 {"Neighbourhood", "Neighbourhood Code", "LSOA", "Ward Code",
                                  "LSOA Code", "LSOA21CD", "LSOA11CD"},
                                 {"neighbourhood", "lsoa", "ward", "msoa"},
                                 {"name"}},
    [CSV_FIELD_POOLABLE] = {"poolable", {"Poolable"}, {"poolable", "pooled"}, {NULL}},
    [CSV_FIELD_REVISION] = {"revision", {"Revision"}, {"revision"}, {NULL}},
    [CSV_FIELD_WITHDRAWN] = {"withdrawn", {"Withdrawn"}, {"withdrawn"}, {NULL}},
    [CSV_FIELD_BODY_ID] = {"body_id", {"Body ID"}, {NULL}, {NULL}},
    [CSV_FIELD_POSTCODE] = {"postcode",
                            {"Postcode", "Post Code", "Postal Code"},
                            {"postcode", "post code", "postal code"},
                            {NULL}},
    [CSV_FIELD_LOOKUP] = {"lookup", {NULL}, {NULL}, {NULL}},
};

/* One column reference: a header name, or a 1-based position when name is NULL. */
typedef struct {
    char *name;
    size_t position;
} column_ref_t;

typedef struct {
    column_ref_t parts[CSV_LAYOUT_MAX_PARTS];
    size_t count;
} candidate_t;

struct _csv_spec_t {
    bool none;
    candidate_t candidates[CSV_LAYOUT_MAX_CANDIDATES];
    size_t count;
};

struct _csv_layout_t {
    char **headers;
    size_t n_headers;
    csv_columns_t fields[CSV_FIELD_COUNT];
    char **notes;
    size_t note_count;
};

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

const char *
csv_field_name (csv_field_t field)
{
    return field < CSV_FIELD_COUNT ? FIELDS[field].name : "?";
}

int
csv_field_by_name (const char *name)
{
    for (int f = 0; name && f < CSV_FIELD_MAPPABLE; f++)
        if (strcmp (FIELDS[f].name, name) == 0)
            return f;
    return -1;
}

/* ---------------------------------------------------------------- matching names */

static bool
is_separator (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '_' || c == '.' || c == '-' ||
           c == '/' || c == '(' || c == ')' || c == ':' || c == ';';
}

static char
lower (char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Steps past separators; returns true when some were there. */
static bool
skip_separators (const char **p)
{
    bool any = false;
    while (is_separator (**p)) {
        (*p)++;
        any = true;
    }
    return any;
}

bool
csv_layout_names_match (const char *a, const char *b)
{
    skip_separators (&a);
    skip_separators (&b);
    for (;;) {
        bool gap_a = skip_separators (&a), gap_b = skip_separators (&b);
        if (!*a || !*b)
            return !*a && !*b;
        if (gap_a != gap_b || lower (*a) != lower (*b))
            return false;
        a++;
        b++;
    }
}

/* The words of a header, lower-cased, each followed by one space and the whole preceded by one,
 * so that " cost centre " can be searched for as whole words. */
static void
header_words (const char *header, char *out, size_t out_len)
{
    size_t used = 0;
    out[used++] = ' ';
    for (const char *p = header; *p && used + 2 < out_len;) {
        if (skip_separators (&p)) {
            if (out[used - 1] != ' ')
                out[used++] = ' ';
            continue;
        }
        out[used++] = lower (*p++);
    }
    if (out[used - 1] != ' ')
        out[used++] = ' ';
    out[used] = '\0';
}

static bool
has_word (const char *words, const char *keyword)
{
    char needle[64];
    snprintf (needle, sizeof needle, " %s ", keyword);
    return strstr (words, needle) != NULL;
}

/* ---------------------------------------------------------------- specifications */

void
csv_spec_destroy (csv_spec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    csv_spec_t *self = *self_p;
    for (size_t c = 0; c < self->count; c++)
        for (size_t p = 0; p < self->candidates[c].count; p++)
            free (self->candidates[c].parts[p].name);
    free (self);
    *self_p = NULL;
}

bool
csv_spec_is_none (const csv_spec_t *self)
{
    return self && self->none;
}

/* Reads one reference (a quoted or bare name, or #N) starting at *at; stops at ',', '+' or the
 * end. */
static int
parse_ref (const char **at, column_ref_t *ref, char *err, size_t err_len)
{
    const char *p = *at;
    while (*p == ' ' || *p == '\t')
        p++;
    char name[CSV_LAYOUT_MAX_NAME + 1];
    size_t len = 0;
    bool quoted = *p == '"';
    if (quoted) {
        for (p++;; p++) {
            if (!*p)
                return fail (err, err_len, "a quoted header name is not closed");
            if (*p == '"' && p[1] == '"')
                p++;
            else if (*p == '"') {
                p++;
                break;
            }
            if (len == CSV_LAYOUT_MAX_NAME)
                return fail (err, err_len, "a header name is over %u bytes", CSV_LAYOUT_MAX_NAME);
            name[len++] = *p;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != ',' && *p != '+')
            return fail (err, err_len,
                         "text after a quoted header name: write the whole name "
                         "inside the quotes");
    }
    else {
        for (; *p && *p != ',' && *p != '+'; p++) {
            if (len == CSV_LAYOUT_MAX_NAME)
                return fail (err, err_len, "a header name is over %u bytes", CSV_LAYOUT_MAX_NAME);
            name[len++] = *p;
        }
        while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
            len--;
    }
    name[len] = '\0';
    *at = p;
    if (len == 0)
        return fail (err, err_len, "an empty header name (two commas or a trailing \"+\"?)");
    if (!quoted && name[0] == '#') {
        size_t position = 0;
        for (const char *d = name + 1; *d; d++) {
            if (*d < '0' || *d > '9' || position > 100000)
                return fail (err, err_len,
                             "\"%s\" is not a column position: write #N with N from 1 (or put "
                             "a header name starting with # in double quotes)",
                             name);
            position = position * 10 + (size_t)(*d - '0');
        }
        if (position == 0)
            return fail (err, err_len, "\"%s\": column positions count from #1", name);
        ref->position = position;
        return 0;
    }
    if (!(ref->name = strdup (name)))
        return fail (err, err_len, "out of memory");
    return 0;
}

const char *
csv_field_key (csv_field_t field)
{
    static const char *const keys[CSV_FIELD_COUNT] = {
        [CSV_FIELD_RECORD_ID] = "columns/record_id",
        [CSV_FIELD_PERIOD] = "columns/period",
        [CSV_FIELD_AMOUNT] = "columns/amount",
        [CSV_FIELD_SUPPLIER] = "columns/supplier",
        [CSV_FIELD_SERVICE] = "columns/service",
        [CSV_FIELD_DESCRIPTION] = "columns/description",
        [CSV_FIELD_NEIGHBOURHOOD] = "columns/neighbourhood",
        [CSV_FIELD_POOLABLE] = "columns/poolable",
        [CSV_FIELD_REVISION] = "columns/revision",
        [CSV_FIELD_WITHDRAWN] = "columns/withdrawn",
        [CSV_FIELD_BODY_ID] = "columns/body_id",
        [CSV_FIELD_POSTCODE] = "columns/postcode",
        [CSV_FIELD_LOOKUP] = "neighbourhood/lookup_column",
    };
    return keys[field];
}

csv_spec_t *
csv_spec_parse (csv_field_t field, const char *text, char *err, size_t err_len)
{
    if (field >= CSV_FIELD_COUNT) {
        fail (err, err_len, "field %d cannot be mapped to a column", (int)field);
        return NULL;
    }
    csv_spec_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory");
        return NULL;
    }
    const char *p = text ? text : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        self->none = true;
        return self;
    }
    char why[256];
    for (;;) {
        if (self->count == CSV_LAYOUT_MAX_CANDIDATES) {
            fail (err, err_len, "%s lists more than %u candidates", csv_field_key (field),
                  CSV_LAYOUT_MAX_CANDIDATES);
            goto error;
        }
        candidate_t *candidate = &self->candidates[self->count++];
        for (;;) {
            if (candidate->count == CSV_LAYOUT_MAX_PARTS) {
                fail (err, err_len, "%s joins more than %u columns", csv_field_key (field),
                      CSV_LAYOUT_MAX_PARTS);
                goto error;
            }
            if (parse_ref (&p, &candidate->parts[candidate->count], why, sizeof why) != 0) {
                fail (err, err_len, "%s: %s", csv_field_key (field), why);
                goto error;
            }
            candidate->count++;
            if (*p != '+')
                break;
            if (field != CSV_FIELD_RECORD_ID) {
                fail (err, err_len,
                      "%s: only record_id may join several columns with \"+\" (put a header name "
                      "holding \"+\" in double quotes)",
                      csv_field_key (field));
                goto error;
            }
            p++;
        }
        if (!*p)
            return self;
        p++; /* the comma */
    }
error:
    csv_spec_destroy (&self);
    return NULL;
}

const char *
csv_spec_describe (const csv_spec_t *spec, csv_field_t field, char *out, size_t out_len)
{
    size_t used = 0;
    if (out_len)
        out[0] = '\0';
    if (!spec) {
        for (size_t n = 0; n < MAX_DEFAULT_NAMES && FIELDS[field].names[n]; n++)
            quoted_text_append (out, out_len, &used, "%s\"%s\"", n ? ", " : "",
                                FIELDS[field].names[n]);
        return out;
    }
    if (spec->none)
        quoted_text_append (out, out_len, &used, "no column");
    for (size_t c = 0; c < spec->count; c++) {
        const candidate_t *candidate = &spec->candidates[c];
        quoted_text_append (out, out_len, &used, "%s", c ? ", " : "");
        for (size_t p = 0; p < candidate->count; p++) {
            const column_ref_t *ref = &candidate->parts[p];
            if (ref->name)
                quoted_text_append (out, out_len, &used, "%s\"%s\"", p ? " + " : "", ref->name);
            else
                quoted_text_append (out, out_len, &used, "%s#%zu", p ? " + " : "", ref->position);
        }
    }
    return out;
}

/* ---------------------------------------------------------------- resolving a header */

void
csv_layout_destroy (csv_layout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    csv_layout_t *self = *self_p;
    for (size_t c = 0; c < self->n_headers; c++)
        free (self->headers[c]);
    free (self->headers);
    for (size_t n = 0; n < self->note_count; n++)
        free (self->notes[n]);
    free (self->notes);
    free (self);
    *self_p = NULL;
}

static int
add_note (csv_layout_t *self, const char *note)
{
    char **notes = realloc (self->notes, (self->note_count + 1) * sizeof *notes);
    if (!notes)
        return -1;
    self->notes = notes;
    if (!(notes[self->note_count] = strdup (note)))
        return -1;
    self->note_count++;
    return 0;
}

/* The columns a header name heads, in order: the first goes to *first; returns how many. Up to
 * max of them are written to all. */
static size_t
find_name (const csv_layout_t *self, const char *name, size_t *all, size_t max)
{
    size_t found = 0;
    for (size_t c = 0; c < self->n_headers; c++)
        if (csv_layout_names_match (self->headers[c], name)) {
            if (found < max)
                all[found] = c;
            found++;
        }
    return found;
}

/* Says that a name the field reads heads several columns, and which one is read. */
static int
note_duplicate (csv_layout_t *self, csv_field_t field, const char *name, const size_t *all,
                size_t found)
{
    char note[1024], quoted[QUOTED_TEXT_LEN];
    size_t used = 0, shown = found < 8 ? found : 8;
    quoted_text_append (note, sizeof note, &used, "%s: columns ", FIELDS[field].name);
    for (size_t i = 0; i < shown; i++)
        quoted_text_append (note, sizeof note, &used, "%s%zu",
                            i == 0           ? ""
                            : i + 1 == shown ? " and "
                                             : ", ",
                            all[i] + 1);
    quoted_text_append (note, sizeof note, &used, "%s are %s headed %s; reading column %zu",
                        found > shown ? " (and more)" : "", found == 2 ? "both" : "all",
                        quoted_text (name, quoted, sizeof quoted), all[0] + 1);
    if (field == CSV_FIELD_LOOKUP)
        quoted_text_append (note, sizeof note, &used, ", the first, for the neighbourhood lookup");
    else
        quoted_text_append (note, sizeof note, &used,
                            " (set columns/%s = #%zu to read the other%s)", FIELDS[field].name,
                            all[1] + 1, found > 2 ? "s" : "");
    return add_note (self, note);
}

/* Tries one candidate: every part must be in the header. */
static int
try_candidate (csv_layout_t *self, csv_field_t field, const candidate_t *candidate,
               csv_columns_t *columns)
{
    csv_columns_t found = {.present = true, .count = candidate->count};
    size_t dup_count[CSV_LAYOUT_MAX_PARTS] = {0};
    size_t dup_columns[CSV_LAYOUT_MAX_PARTS][8];
    for (size_t p = 0; p < candidate->count; p++) {
        const column_ref_t *ref = &candidate->parts[p];
        if (!ref->name) {
            if (ref->position > self->n_headers)
                return 0;
            found.columns[p] = ref->position - 1;
            continue;
        }
        size_t n = find_name (self, ref->name, dup_columns[p], 8);
        if (n == 0)
            return 0;
        found.columns[p] = dup_columns[p][0];
        dup_count[p] = n;
    }
    *columns = found;
    for (size_t p = 0; p < candidate->count; p++)
        if (dup_count[p] > 1 &&
            note_duplicate (self, field, candidate->parts[p].name, dup_columns[p], dup_count[p]))
            return -1;
    return 1;
}

csv_layout_t *
csv_layout_new (const char *const *headers, size_t n_headers,
                const csv_spec_t *const specs[CSV_FIELD_COUNT])
{
    csv_layout_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->headers = calloc (n_headers ? n_headers : 1, sizeof *self->headers);
    if (!self->headers)
        goto error;
    for (size_t c = 0; c < n_headers; c++) {
        if (!(self->headers[c] = strdup (headers[c])))
            goto error;
        self->n_headers = c + 1;
    }
    for (int f = 0; f < CSV_FIELD_COUNT; f++) {
        const csv_spec_t *spec = specs ? specs[f] : NULL;
        csv_columns_t *columns = &self->fields[f];
        if (spec && spec->none)
            continue;
        int rc = 0;
        if (spec)
            for (size_t c = 0; c < spec->count && rc == 0; c++)
                rc = try_candidate (self, (csv_field_t)f, &spec->candidates[c], columns);
        else
            for (size_t n = 0; n < MAX_DEFAULT_NAMES && FIELDS[f].names[n] && rc == 0; n++) {
                candidate_t candidate = {.count = 1};
                candidate.parts[0].name = (char *)FIELDS[f].names[n];
                rc = try_candidate (self, (csv_field_t)f, &candidate, columns);
            }
        if (rc < 0)
            goto error;
    }
    return self;
error:
    csv_layout_destroy (&self);
    return NULL;
}

const csv_columns_t *
csv_layout_columns (const csv_layout_t *self, csv_field_t field)
{
    return &self->fields[field];
}

size_t
csv_layout_note_count (const csv_layout_t *self)
{
    return self->note_count;
}

const char *
csv_layout_note (const csv_layout_t *self, size_t index)
{
    return index < self->note_count ? self->notes[index] : "";
}

const char *
csv_layout_header (const csv_layout_t *self, size_t column)
{
    return column < self->n_headers ? self->headers[column] : "";
}

size_t
csv_layout_width (const csv_layout_t *self)
{
    return self->n_headers;
}

const char *
csv_layout_describe (const csv_layout_t *self, csv_field_t field, char *out, size_t out_len)
{
    const csv_columns_t *columns = &self->fields[field];
    size_t used = 0;
    if (out_len)
        out[0] = '\0';
    if (!columns->present) {
        quoted_text_append (out, out_len, &used, "no column");
        return out;
    }
    char quoted[QUOTED_TEXT_LEN];
    quoted_text_append (out, out_len, &used, "%s", columns->count > 1 ? "columns " : "column ");
    for (size_t p = 0; p < columns->count; p++)
        quoted_text_append (
            out, out_len, &used, "%s%zu %s", p ? " + " : "", columns->columns[p] + 1,
            quoted_text (csv_layout_header (self, columns->columns[p]), quoted, sizeof quoted));
    return out;
}

size_t
csv_layout_other_candidates (const csv_layout_t *self, csv_field_t field, size_t *columns,
                             size_t max)
{
    const csv_columns_t *read = &self->fields[field];
    size_t found = 0;
    for (size_t c = 0; c < self->n_headers; c++) {
        bool is_read = false;
        for (size_t p = 0; read->present && p < read->count; p++)
            is_read |= read->columns[p] == c;
        if (is_read || !*self->headers[c])
            continue;
        bool candidate = false;
        for (size_t n = 0; n < MAX_DEFAULT_NAMES && FIELDS[field].names[n] && !candidate; n++)
            candidate = csv_layout_names_match (self->headers[c], FIELDS[field].names[n]);
        if (!candidate) {
            char words[CSV_LAYOUT_MAX_NAME * 2 + 4];
            header_words (self->headers[c], words, sizeof words);
            for (size_t k = 0; k < MAX_KEYWORDS && FIELDS[field].keywords[k] && !candidate; k++)
                candidate = has_word (words, FIELDS[field].keywords[k]);
            for (size_t k = 0; k < MAX_KEYWORDS && FIELDS[field].excluded[k] && candidate; k++)
                candidate = !has_word (words, FIELDS[field].excluded[k]);
        }
        if (!candidate)
            continue;
        if (found < max)
            columns[found] = c;
        found++;
    }
    return found;
}
