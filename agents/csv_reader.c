/* csv_reader: libcsv does the CSV grammar (quotes, embedded commas and newlines); this module maps
 * header names to record fields, converts each row, places it in its neighbourhoods (a column, a
 * lookup, a postcode), derives its id when the export has none, counts physical lines so that every
 * rejection points at the right line, and keeps memory bounded whatever the file holds. */
#include "csv_reader.h"
#include "line_breaks.h"
#include "quoted_text.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "apportion.h"
#include "money.h"
#include "period.h"
#include "record_ids.h"
#include "spend_date.h"
#include "text_fold.h"

/* Bytes read from the stream at a time. */
#define CHUNK_SIZE (64u * 1024u)
/* An overridden header name longer than this cannot be a real column name. */
#define MAX_HEADER_NAME 256u

typedef enum {
    F_RECORD_ID,
    F_PERIOD,
    F_AMOUNT,
    F_SUPPLIER,
    F_SERVICE,
    F_DESCRIPTION,
    F_NEIGHBOURHOOD,
    F_POOLABLE,
    F_REVISION,
    F_WITHDRAWN,
    F_BODY_ID,
    F_POSTCODE,
    F_LOOKUP, /* the column a neighbourhood lookup reads: set with the lookup, not mappable */
    FIELD_COUNT
} field_t;

/* Fields csv_reader_map accepts. */
#define MAPPABLE_FIELDS F_LOOKUP

/* Default header names per field, in priority order: when a file has several of them, the first
 * listed wins. Names follow the Local Government Transparency Code "spend over £500" exports.
 * required: the file must have the column unless the field is mapped to "" (record_id: derive ids).
 * The neighbourhood is required only when nothing else can place a row (see take_header). */
static const struct {
    const char *name;
    bool required;
    const char *headers[5];
} fields[FIELD_COUNT] = {
    [F_RECORD_ID] = {"record_id", true, {"Transaction Number", "Transaction No", "Transaction ID"}},
    [F_PERIOD] = {"period", true, {"Date", "Payment Date", "Transaction Date", "Period"}},
    [F_AMOUNT] = {"amount", true, {"Amount", "Net Amount", "Value"}},
    [F_SUPPLIER] = {"supplier", false, {"Supplier Name", "Supplier", "Beneficiary Name"}},
    [F_SERVICE] = {"service",
                   false,
                   {"Service Area", "Service", "Service Division", "Organisational Unit"}},
    [F_DESCRIPTION] = {"description",
                       false,
                       {"Expenses Type", "Expense Type", "Description", "Purpose"}},
    [F_NEIGHBOURHOOD] = {"neighbourhood",
                         false,
                         {"Neighbourhood", "Neighbourhood Code", "LSOA", "Ward Code"}},
    [F_POOLABLE] = {"poolable", false, {"Poolable"}},
    [F_REVISION] = {"revision", false, {"Revision"}},
    [F_WITHDRAWN] = {"withdrawn", false, {"Withdrawn"}},
    [F_BODY_ID] = {"body_id", false, {"Body ID"}},
    [F_POSTCODE] = {"postcode", false, {"Postcode", "Post Code", "Postal Code"}},
    [F_LOOKUP] = {"lookup", false, {NULL}},
};

struct _csv_reader_t {
    char *body_id;
    char *default_service; /* NULL: none */
    bool default_poolable;
    char *header[FIELD_COUNT]; /* override per field; NULL: the defaults; "": no column */
    area_lookup_t *lookup;     /* values of header[F_LOOKUP] to neighbourhoods; NULL: none */
    area_lookup_t *postcodes;  /* postcodes to areas; NULL: none */
    size_t max_parts;          /* 1: no apportionment, and no part families on corrections */
};

/* One column the current file's fields are read from, and where its cell of the current row sits
 * in the row buffer. Several fields may share a column. */
typedef struct {
    size_t column;
    size_t offset;
    bool present;
} slot_t;

typedef struct {
    csv_reader_t *reader;
    const char *name;
    csv_record_fn *on_record;
    csv_reject_fn *on_reject;
    void *arg;
    csv_reader_stats_t stats;
    struct csv_parser parser;

    /* Header. */
    bool have_header;
    size_t header_line;
    char **headers;
    size_t n_headers;
    size_t headers_cap;
    bool header_too_wide;
    size_t header_oversize_column; /* 1-based; 0 when none */
    int *column_slot;              /* per header column: index into slots, or -1 */
    slot_t slots[FIELD_COUNT];
    size_t n_slots;
    int field_slot[FIELD_COUNT]; /* -1: the field has no column in this file */

    /* Physical lines: the parser reports every CR and LF outside quotes as the end of a row, so a
     * CRLF arrives as two ends; last_was_cr lets the LF half be ignored. Line breaks inside quoted
     * cells are counted from the cell text. */
    size_t line;
    bool last_was_cr;
    bool field_cr; /* the part of the current cell dropped so far ended with CR */

    /* Current row. */
    bool row_started;
    size_t row_line;
    size_t cells;
    size_t row_bytes;
    bool row_nonempty;
    size_t field_dropped; /* bytes of the current cell dropped by drop_oversized_cell */
    size_t oversize_column, oversize_bytes;
    size_t nul_column;
    size_t extra_column;
    char *buf; /* the row's mapped cells, each NUL-terminated */
    size_t buf_len, buf_cap;
    char empty[1];

    /* Derived ids (record_id mapped to ""), and room for the records of one row. */
    record_ids_t *ids;
    Totalplace__SpendingRecord **out; /* max_parts + 1 */
    size_t n_out;
    int64_t *amounts;  /* max_parts */
    uint32_t *weights; /* max_parts */

    /* Outcome. */
    bool stop;
    int rc;
    char *err;
    size_t err_len;
} read_state_t;

static int fail (char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
fail (char *err, size_t err_len, const char *format, ...)
{
    if (err && err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, err_len, format, args);
        va_end (args);
    }
    return -1;
}

static bool
is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_identifier (const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* True when a header cell names `name`: ASCII case, surrounding whitespace and the width of
 * whitespace runs inside are ignored, since spreadsheets wrap and pad header cells freely. */
static bool
header_matches (const char *cell, const char *name)
{
    return text_fold_equal (cell, name);
}

/* Trims whitespace in place and returns the start of what is left. */
static char *
trim (char *s)
{
    while (is_space (*s))
        s++;
    size_t len = strlen (s);
    while (len > 0 && is_space (s[len - 1]))
        len--;
    s[len] = '\0';
    return s;
}

/* Free text may legitimately span lines inside a quoted cell; the wire format refuses control
 * characters, so each run of tabs and line breaks becomes one space rather than losing the row. */
static void
fold_line_breaks (char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (*r == '\r' || *r == '\n' || *r == '\t') {
            while (*r == '\r' || *r == '\n' || *r == '\t')
                r++;
            *w++ = ' ';
        }
        else
            *w++ = *r++;
    }
    *w = '\0';
}

static int
field_by_name (const char *name)
{
    for (int f = 0; f < MAPPABLE_FIELDS; f++)
        if (strcmp (fields[f].name, name) == 0)
            return f;
    return -1;
}

csv_reader_t *
csv_reader_new (const char *body_id, char *err, size_t err_len)
{
    if (!body_id || !*body_id) {
        fail (err, err_len, "body id is missing");
        return NULL;
    }
    if (strlen (body_id) > WIRE_MAX_BODY_ID || !is_identifier (body_id)) {
        char quoted[QUOTED_TEXT_LEN];
        fail (err, err_len,
              "body id %s is not an identifier of at most %u characters from A-Z a-z 0-9 . _ -",
              quoted_text (body_id, quoted, sizeof quoted), WIRE_MAX_BODY_ID);
        return NULL;
    }
    csv_reader_t *self = calloc (1, sizeof *self);
    if (!self || !(self->body_id = strdup (body_id))) {
        free (self);
        fail (err, err_len, "out of memory creating a CSV reader");
        return NULL;
    }
    self->max_parts = 1;
    return self;
}

void
csv_reader_destroy (csv_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    csv_reader_t *self = *self_p;
    for (int f = 0; f < FIELD_COUNT; f++)
        free (self->header[f]);
    area_lookup_destroy (&self->lookup);
    area_lookup_destroy (&self->postcodes);
    free (self->default_service);
    free (self->body_id);
    free (self);
    *self_p = NULL;
}

int
csv_reader_map (csv_reader_t *self, const char *field, const char *header, char *err,
                size_t err_len)
{
    int f = field_by_name (field ? field : "");
    if (f < 0) {
        char quoted[QUOTED_TEXT_LEN];
        return fail (err, err_len,
                     "unknown field %s; fields are record_id, period, amount, supplier, service, "
                     "description, neighbourhood, poolable, revision, withdrawn, body_id, "
                     "postcode",
                     quoted_text (field ? field : "", quoted, sizeof quoted));
    }
    char *copy = NULL;
    if (header) {
        size_t len = strlen (header);
        while (len > 0 && is_space (header[len - 1]))
            len--;
        while (len > 0 && is_space (*header)) {
            header++;
            len--;
        }
        /* record_id may be "": ids are then derived from each row's content. */
        if (len == 0 && (f == F_PERIOD || f == F_AMOUNT))
            return fail (err, err_len, "%s is required, so it must be read from some column",
                         fields[f].name);
        if (len > MAX_HEADER_NAME)
            return fail (err, err_len, "header name for %s is over %u bytes", fields[f].name,
                         MAX_HEADER_NAME);
        if (!(copy = strndup (header, len)))
            return fail (err, err_len, "out of memory mapping %s", fields[f].name);
    }
    free (self->header[f]);
    self->header[f] = copy;
    return 0;
}

int
csv_reader_set_default_service (csv_reader_t *self, const char *service, char *err, size_t err_len)
{
    char *copy = NULL;
    if (service) {
        if (!(copy = strdup (service)))
            return fail (err, err_len, "out of memory setting the default service");
        char *trimmed = trim (copy);
        memmove (copy, trimmed, strlen (trimmed) + 1);
        if (!*copy || strlen (copy) > WIRE_MAX_SERVICE) {
            free (copy);
            return fail (err, err_len, "default service must be 1 to %u bytes", WIRE_MAX_SERVICE);
        }
    }
    free (self->default_service);
    self->default_service = copy;
    return 0;
}

void
csv_reader_set_default_poolable (csv_reader_t *self, bool poolable)
{
    self->default_poolable = poolable;
}

int
csv_reader_set_max_parts (csv_reader_t *self, size_t max_parts, char *err, size_t err_len)
{
    if (max_parts < 1 || max_parts > APPORTION_MAX_PARTS)
        return fail (err, err_len, "max parts %zu is not from 1 to %u", max_parts,
                     APPORTION_MAX_PARTS);
    if (self->lookup && area_lookup_max_parts (self->lookup) > max_parts)
        return fail (err, err_len,
                     "the lookup maps a value to %zu neighbourhoods, more than max parts %zu",
                     area_lookup_max_parts (self->lookup), max_parts);
    self->max_parts = max_parts;
    return 0;
}

int
csv_reader_set_lookup (csv_reader_t *self, const char *column, area_lookup_t **lookup_p, char *err,
                       size_t err_len)
{
    area_lookup_t *lookup = lookup_p ? *lookup_p : NULL;
    char *copy = NULL;
    if (lookup) {
        if (area_lookup_max_parts (lookup) > self->max_parts)
            return fail (err, err_len,
                         "the lookup maps a value to %zu neighbourhoods, more than max parts %zu",
                         area_lookup_max_parts (lookup), self->max_parts);
        size_t len = column ? strlen (column) : 0;
        while (len > 0 && is_space (column[len - 1]))
            len--;
        while (len > 0 && is_space (*column)) {
            column++;
            len--;
        }
        if (len == 0 || len > MAX_HEADER_NAME)
            return fail (err, err_len,
                         "a lookup needs the header of the column it reads (1 to %u bytes)",
                         MAX_HEADER_NAME);
        if (!(copy = strndup (column, len)))
            return fail (err, err_len, "out of memory setting a lookup");
        *lookup_p = NULL;
    }
    area_lookup_destroy (&self->lookup);
    free (self->header[F_LOOKUP]);
    self->lookup = lookup;
    self->header[F_LOOKUP] = copy;
    return 0;
}

int
csv_reader_set_postcode_lookup (csv_reader_t *self, area_lookup_t **lookup_p, char *err,
                                size_t err_len)
{
    area_lookup_t *lookup = lookup_p ? *lookup_p : NULL;
    if (lookup && area_lookup_max_parts (lookup) > 1)
        return fail (err, err_len, "a postcode lookup maps each postcode to one area");
    if (lookup_p)
        *lookup_p = NULL;
    area_lookup_destroy (&self->postcodes);
    self->postcodes = lookup;
    return 0;
}

/* A file-level error: the read stops and returns CSV_READER_ERR. */
static void file_error (read_state_t *st, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
file_error (read_state_t *st, const char *format, ...)
{
    if (st->err && st->err_len) {
        int n = snprintf (st->err, st->err_len, "%s: ", st->name);
        if (n >= 0 && (size_t)n < st->err_len) {
            va_list args;
            va_start (args, format);
            vsnprintf (st->err + n, st->err_len - (size_t)n, format, args);
            va_end (args);
        }
    }
    st->rc = CSV_READER_ERR;
    st->stop = true;
}

static void
stopped_by_callback (read_state_t *st, int rc, const char *which)
{
    fail (st->err, st->err_len, "%s: reading stopped at line %zu by the %s callback (%d)", st->name,
          st->row_line, which, rc);
    st->rc = rc;
    st->stop = true;
}

static void
reject (read_state_t *st, const char *reason)
{
    st->stats.rejected++;
    if (st->on_reject) {
        int rc = st->on_reject (st->arg, st->row_line, reason);
        if (rc != 0)
            stopped_by_callback (st, rc, "rejection");
    }
}

/* Appends text to a message being built in out, keeping it NUL-terminated and bounded. */
static void append (char *out, size_t out_len, size_t *used, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
append (char *out, size_t out_len, size_t *used, const char *format, ...)
{
    if (*used + 1 >= out_len)
        return;
    va_list args;
    va_start (args, format);
    int n = vsnprintf (out + *used, out_len - *used, format, args);
    va_end (args);
    if (n > 0)
        *used = *used + (size_t)n < out_len ? *used + (size_t)n : out_len - 1;
}

/* Called once the header row is complete: decides which column feeds each field. */
static void
take_header (read_state_t *st)
{
    csv_reader_t *reader = st->reader;
    st->have_header = true;
    st->header_line = st->row_line;
    if (st->header_too_wide) {
        file_error (st, "line %zu: the header has more than %u columns", st->header_line,
                    CSV_READER_MAX_COLUMNS);
        return;
    }
    if (st->header_oversize_column || st->row_bytes > CSV_READER_MAX_ROW) {
        file_error (st, "line %zu: the header is too long (a cell over %u bytes or a row over %u)",
                    st->header_line, CSV_READER_MAX_FIELD, CSV_READER_MAX_ROW);
        return;
    }
    /* A header row reaches here only with a non-empty cell, so n_headers >= 1. */
    st->column_slot = malloc (st->n_headers * sizeof *st->column_slot);
    if (!st->column_slot) {
        file_error (st, "out of memory reading the header");
        return;
    }
    for (size_t c = 0; c < st->n_headers; c++)
        st->column_slot[c] = -1;

    char missing[1024];
    size_t used = 0;
    missing[0] = '\0';
    for (int f = 0; f < FIELD_COUNT; f++) {
        st->field_slot[f] = -1;
        const char *override = reader->header[f];
        if (f == F_LOOKUP && !reader->lookup)
            continue;
        if (override && !*override)
            continue;
        size_t column = SIZE_MAX;
        size_t n_names = override ? 1 : 0;
        while (!override && n_names < 5 && fields[f].headers[n_names])
            n_names++;
        /* The first listed name present wins; the same name twice is ambiguous. */
        for (size_t n = 0; n < n_names && column == SIZE_MAX; n++) {
            const char *name = override ? override : fields[f].headers[n];
            for (size_t c = 0; c < st->n_headers; c++) {
                if (!header_matches (st->headers[c], name))
                    continue;
                if (column != SIZE_MAX) {
                    file_error (st,
                                "line %zu: columns %zu and %zu are both headed \"%s\"; map %s to "
                                "a header that appears once",
                                st->header_line, column + 1, c + 1, name, fields[f].name);
                    return;
                }
                column = c;
            }
        }
        if (column == SIZE_MAX) {
            if (f == F_LOOKUP)
                append (missing, sizeof missing, &used,
                        "%sno column \"%s\", which the neighbourhood lookup reads",
                        used ? "; " : "", override);
            else if (override)
                append (missing, sizeof missing, &used, "%sno column \"%s\", which is mapped to %s",
                        used ? "; " : "", override, fields[f].name);
            else if (fields[f].required) {
                append (missing, sizeof missing, &used,
                        "%sno %s column (accepted headers: ", used ? "; " : "", fields[f].name);
                for (size_t n = 0; n < n_names; n++)
                    append (missing, sizeof missing, &used, "%s\"%s\"", n ? ", " : "",
                            fields[f].headers[n]);
                append (missing, sizeof missing, &used, ")");
            }
            continue;
        }
        if (st->column_slot[column] < 0) {
            st->slots[st->n_slots].column = column;
            st->column_slot[column] = (int)st->n_slots++;
        }
        st->field_slot[f] = st->column_slot[column];
    }
    /* A row needs some way to its neighbourhood; a file with none would reject every row. A
     * mapped neighbourhood column that is missing has been named above already. */
    const char *nbh_override = reader->header[F_NEIGHBOURHOOD];
    if (st->field_slot[F_NEIGHBOURHOOD] < 0 && st->field_slot[F_LOOKUP] < 0 &&
        !(reader->postcodes && st->field_slot[F_POSTCODE] >= 0) &&
        (!nbh_override || !*nbh_override)) {
        if (!nbh_override) {
            append (missing, sizeof missing, &used,
                    "%sno neighbourhood column (accepted headers: ", used ? "; " : "");
            for (size_t n = 0; n < 5 && fields[F_NEIGHBOURHOOD].headers[n]; n++)
                append (missing, sizeof missing, &used, "%s\"%s\"", n ? ", " : "",
                        fields[F_NEIGHBOURHOOD].headers[n]);
            append (missing, sizeof missing, &used, ")");
        }
        else
            append (missing, sizeof missing, &used,
                    "%sno way to a neighbourhood (neighbourhood is read from no column)",
                    used ? "; " : "");
        if (reader->postcodes)
            append (missing, sizeof missing, &used,
                    ", and no postcode column for the postcode lookup");
    }
    if (used)
        file_error (st, "line %zu: the header has %s", st->header_line, missing);
}

static void
clear_row (read_state_t *st)
{
    st->row_started = false;
    st->cells = 0;
    st->row_bytes = 0;
    st->row_nonempty = false;
    st->oversize_column = st->oversize_bytes = 0;
    st->nul_column = 0;
    st->extra_column = 0;
    st->buf_len = 0;
    for (size_t i = 0; i < st->n_slots; i++)
        st->slots[i].present = false;
}

/* The field's trimmed text in the current row, or "" when the file has no column for it or the row
 * stops before that column. */
static char *
field_text (read_state_t *st, int f)
{
    int slot = st->field_slot[f];
    if (slot < 0 || !st->slots[slot].present)
        return st->empty;
    return trim (st->buf + st->slots[slot].offset);
}

static void
empty_reason (read_state_t *st, int f, char *reason, size_t reason_len)
{
    int slot = st->field_slot[f];
    if (slot >= 0 && st->slots[slot].column >= st->cells)
        fail (reason, reason_len, "%s is missing: the row has %zu cells and the header %zu",
              fields[f].name, st->cells, st->n_headers);
    else
        fail (reason, reason_len, "%s is empty", fields[f].name);
}

/* Booleans as departmental systems write them; empty gives the default. */
static int
parse_bool (const char *text, bool empty_value, bool *value)
{
    static const char *const yes[] = {"yes", "true", "y", "1"};
    static const char *const no[] = {"no", "false", "n", "0"};
    if (!*text) {
        *value = empty_value;
        return 0;
    }
    for (size_t i = 0; i < 4; i++) {
        if (header_matches (text, yes[i])) {
            *value = true;
            return 0;
        }
        if (header_matches (text, no[i])) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

static int
parse_revision (const char *text, uint32_t *revision)
{
    if (!*text) {
        *revision = 1;
        return 0;
    }
    uint32_t value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (__builtin_mul_overflow (value, 10u, &value) ||
            __builtin_add_overflow (value, (uint32_t)(*p - '0'), &value))
            return -1;
    }
    if (value == 0)
        return -1;
    *revision = value;
    return 0;
}

/* One row read and checked, before it is placed. The draft has every field but record_id (unless
 * the file has one) and neighbourhood; its strings point into the row buffer or into this struct.
 */
typedef struct {
    Totalplace__SpendingRecord draft;
    char period[PERIOD_LEN];
    char date[SPEND_DATE_LEN];
    char derived_id[RECORD_IDS_LEN];
} row_t;

/* Fills row from the current row's cells. Returns 0, or -1 with a reason. */
static int
build_row (read_state_t *st, row_t *row, char *reason, size_t reason_len)
{
    char problem[CSV_READER_REASON_LEN];
    char quoted[QUOTED_TEXT_LEN];
    Totalplace__SpendingRecord *r = &row->draft;

    if (st->row_bytes > CSV_READER_MAX_ROW)
        return fail (reason, reason_len, "row is %zu bytes, over the limit of %u", st->row_bytes,
                     CSV_READER_MAX_ROW);
    if (st->oversize_column)
        return fail (reason, reason_len, "column %zu (%s) is %zu bytes, over the limit of %u",
                     st->oversize_column,
                     quoted_text (st->headers[st->oversize_column - 1], quoted, sizeof quoted),
                     st->oversize_bytes, CSV_READER_MAX_FIELD);
    if (st->nul_column)
        return fail (reason, reason_len, "column %zu (%s) contains a NUL byte", st->nul_column,
                     quoted_text (st->headers[st->nul_column - 1], quoted, sizeof quoted));
    if (st->extra_column)
        return fail (reason, reason_len,
                     "the row has a value in column %zu but the header has %zu columns (an "
                     "unquoted comma?)",
                     st->extra_column, st->n_headers);

    char *record_id = NULL;
    if (!st->ids) {
        record_id = field_text (st, F_RECORD_ID);
        if (!*record_id) {
            empty_reason (st, F_RECORD_ID, reason, reason_len);
            return -1;
        }
    }
    char *date = field_text (st, F_PERIOD);
    if (!*date) {
        empty_reason (st, F_PERIOD, reason, reason_len);
        return -1;
    }
    /* The whole date, in one form, goes into derived ids; its month is the period. */
    if (spend_date_day (date, row->date, problem, sizeof problem) != 0)
        return fail (reason, reason_len, "period %s", problem);
    memcpy (row->period, row->date, PERIOD_LEN - 1);
    row->period[PERIOD_LEN - 1] = '\0';
    char *amount = field_text (st, F_AMOUNT);
    if (!*amount) {
        empty_reason (st, F_AMOUNT, reason, reason_len);
        return -1;
    }
    int64_t pence;
    if (money_parse_pence (amount, &pence, problem, sizeof problem) != 0)
        return fail (reason, reason_len, "amount %s", problem);
    char *service = field_text (st, F_SERVICE);
    if (!*service) {
        if (!st->reader->default_service)
            return fail (reason, reason_len, "service is empty");
        service = st->reader->default_service;
    }
    else
        fold_line_breaks (service);

    char *text = field_text (st, F_REVISION);
    uint32_t revision;
    if (parse_revision (text, &revision) != 0)
        return fail (reason, reason_len, "revision %s: not a whole number from 1 to %u",
                     quoted_text (text, quoted, sizeof quoted), UINT32_MAX);
    bool poolable, withdrawn;
    text = field_text (st, F_POOLABLE);
    if (parse_bool (text, st->reader->default_poolable, &poolable) != 0)
        return fail (reason, reason_len, "poolable %s: not yes/no, true/false, y/n or 1/0",
                     quoted_text (text, quoted, sizeof quoted));
    text = field_text (st, F_WITHDRAWN);
    if (parse_bool (text, false, &withdrawn) != 0)
        return fail (reason, reason_len, "withdrawn %s: not yes/no, true/false, y/n or 1/0",
                     quoted_text (text, quoted, sizeof quoted));

    char *body_id = field_text (st, F_BODY_ID);
    char *supplier = field_text (st, F_SUPPLIER);
    char *description = field_text (st, F_DESCRIPTION);
    fold_line_breaks (supplier);
    fold_line_breaks (description);

    r->body_id = *body_id ? body_id : st->reader->body_id;
    r->record_id = record_id;
    r->revision = revision;
    r->service = service;
    r->period = row->period;
    r->amount_pence = pence;
    r->poolable = poolable;
    r->supplier = supplier;
    r->description = description;
    r->withdrawn = withdrawn;
    return 0;
}

/* The id of a row without one: a hash of what the file says about the payment (never of what the
 * agent adds, such as a default service or a neighbourhood from a lookup, so that changing those
 * never changes an id) and the number of identical rows above it. Every field is always hashed,
 * "" when the file has no column for it, so that a column that is added empty changes nothing.
 * Returns 0, or -1 when out of memory (a file-level error has been set). */
static int
derive_id (read_state_t *st, row_t *row)
{
    char pence[24];
    snprintf (pence, sizeof pence, "%lld", (long long)row->draft.amount_pence);
    /* The lookup column counts once when it also feeds a field (e.g. Organisational Unit as the
     * service), so that adding such a lookup does not change the ids of rows already sent. */
    bool lookup_own = st->field_slot[F_LOOKUP] >= 0;
    for (int f = 0; f < F_LOOKUP && lookup_own; f++)
        if (st->field_slot[f] == st->field_slot[F_LOOKUP])
            lookup_own = false;
    const record_ids_field_t content[] = {
        {"body_id", field_text (st, F_BODY_ID), RECORD_IDS_TEXT},
        {"period", row->period, RECORD_IDS_EXACT},
        {"date", row->date, RECORD_IDS_EXACT},
        {"amount", pence, RECORD_IDS_EXACT},
        {"supplier", field_text (st, F_SUPPLIER), RECORD_IDS_TEXT},
        {"service", field_text (st, F_SERVICE), RECORD_IDS_TEXT},
        {"description", field_text (st, F_DESCRIPTION), RECORD_IDS_TEXT},
        {"poolable", field_text (st, F_POOLABLE), RECORD_IDS_TEXT},
        {"neighbourhood", field_text (st, F_NEIGHBOURHOOD), RECORD_IDS_TEXT},
        {"postcode", field_text (st, F_POSTCODE), RECORD_IDS_POSTCODE},
        {"lookup", lookup_own ? field_text (st, F_LOOKUP) : "", RECORD_IDS_TEXT},
    };
    char problem[CSV_READER_REASON_LEN];
    if (record_ids_derive (st->ids, content, sizeof content / sizeof content[0], row->derived_id,
                           problem, sizeof problem) != 0) {
        file_error (st, "line %zu: %s", st->row_line, problem);
        return -1;
    }
    row->draft.record_id = row->derived_id;
    st->stats.derived_ids++;
    return 0;
}

typedef enum { PLACED_NOWHERE, PLACED_BY_COLUMN, PLACED_BY_LOOKUP, PLACED_BY_POSTCODE } placed_t;

/* Finds the row's neighbourhoods, first match wins: its neighbourhood cell, the lookup of its
 * lookup column, the postcode lookup of its postcode. *parts points at *single or into a lookup.
 * PLACED_NOWHERE comes with a reason saying what was tried. */
static placed_t
place (read_state_t *st, const area_part_t **parts, size_t *n, area_part_t *single, char *reason,
       size_t reason_len)
{
    csv_reader_t *reader = st->reader;
    char *neighbourhood = field_text (st, F_NEIGHBOURHOOD);
    if (*neighbourhood) {
        *single = (area_part_t){neighbourhood, 1};
        *parts = single;
        *n = 1;
        return PLACED_BY_COLUMN;
    }
    const char *value = st->field_slot[F_LOOKUP] >= 0 ? field_text (st, F_LOOKUP) : "";
    if (*value && (*n = area_lookup_find (reader->lookup, value, parts)) > 0)
        return PLACED_BY_LOOKUP;
    const char *postcode = reader->postcodes ? field_text (st, F_POSTCODE) : "";
    if (*postcode && (*n = area_lookup_find (reader->postcodes, postcode, parts)) > 0)
        return PLACED_BY_POSTCODE;

    char quoted[QUOTED_TEXT_LEN];
    size_t used = 0;
    append (reason, reason_len, &used, "no neighbourhood");
    const char *sep = ": ";
    if (st->field_slot[F_NEIGHBOURHOOD] >= 0) {
        char why[CSV_READER_REASON_LEN];
        empty_reason (st, F_NEIGHBOURHOOD, why, sizeof why);
        append (reason, reason_len, &used, "%s%s", sep, why);
        sep = "; ";
    }
    if (st->field_slot[F_LOOKUP] >= 0) {
        if (*value)
            append (reason, reason_len, &used, "%s%s %s is not in the lookup", sep,
                    reader->header[F_LOOKUP], quoted_text (value, quoted, sizeof quoted));
        else
            append (reason, reason_len, &used, "%s%s is empty", sep, reader->header[F_LOOKUP]);
        sep = "; ";
    }
    if (reader->postcodes && st->field_slot[F_POSTCODE] >= 0) {
        if (*postcode)
            append (reason, reason_len, &used, "%spostcode %s is not in the postcode lookup", sep,
                    quoted_text (postcode, quoted, sizeof quoted));
        else
            append (reason, reason_len, &used, "%spostcode is empty", sep);
    }
    return PLACED_NOWHERE;
}

/* A heap copy of a record whose strings point elsewhere, in the shape protobuf-c frees. */
static Totalplace__SpendingRecord *
copy_record (const Totalplace__SpendingRecord *src)
{
    Totalplace__SpendingRecord init = TOTALPLACE__SPENDING_RECORD__INIT;
    Totalplace__SpendingRecord *r = malloc (sizeof *r);
    if (!r)
        return NULL;
    *r = init;
    r->revision = src->revision;
    r->amount_pence = src->amount_pence;
    r->poolable = src->poolable;
    r->withdrawn = src->withdrawn;
    r->body_id = strdup (src->body_id);
    r->record_id = strdup (src->record_id);
    r->neighbourhood = strdup (src->neighbourhood);
    r->service = strdup (src->service);
    r->period = strdup (src->period);
    r->supplier = strdup (src->supplier);
    r->description = strdup (src->description);
    if (!r->body_id || !r->record_id || !r->neighbourhood || !r->service || !r->period ||
        !r->supplier || !r->description) {
        protobuf_c_message_free_unpacked (&r->base, NULL);
        return NULL;
    }
    return r;
}

static void
free_out (read_state_t *st, size_t from)
{
    for (size_t i = from; i < st->n_out; i++)
        protobuf_c_message_free_unpacked (&st->out[i]->base, NULL);
    st->n_out = 0;
}

/* Adds one record of the row to st->out: the row's fields with this id, neighbourhood, amount and
 * withdrawn flag. Returns 0, -1 with a reason when the record is not valid, or -2 after a
 * file-level error. */
static int
add_record (read_state_t *st, const row_t *row, const char *id, const char *neighbourhood,
            int64_t amount, bool withdrawn, char *reason, size_t reason_len)
{
    Totalplace__SpendingRecord draft = row->draft;
    draft.record_id = (char *)id;
    draft.neighbourhood = (char *)neighbourhood;
    draft.amount_pence = amount;
    draft.withdrawn = withdrawn;
    if (wire_validate_record (&draft, reason, reason_len) != 0)
        return -1;
    Totalplace__SpendingRecord *record = copy_record (&draft);
    if (!record) {
        file_error (st, "line %zu: out of memory building a record", st->row_line);
        return -2;
    }
    st->out[st->n_out++] = record;
    return 0;
}

/* Builds every record of a placed row into st->out, all or none. One neighbourhood: one record
 * under the row's id. Several: the amount split by apportion_pence, part k (from 1, in the order of
 * the lookup's codes) under "ID/k", and parts n+1..max_parts sent as withdrawn placeholders of
 * 0 pence, so that the same row read again after its value gained a neighbourhood conflicts with
 * what was stored instead of adding to it. With max_parts above 1, a correction (revision above 1)
 * or a withdrawal sends the whole family, so that nothing an earlier revision sent can keep
 * counting: the bare id and parts 1..max_parts, each either live or a placeholder. Returns 0, -1
 * with a reason to reject the row, or -2 after a file-level error. */
static int
build_records (read_state_t *st, const row_t *row, const area_part_t *parts, size_t n, char *reason,
               size_t reason_len)
{
    const Totalplace__SpendingRecord *r = &row->draft;
    const size_t max_parts = st->reader->max_parts;
    char problem[CSV_READER_REASON_LEN];
    char quoted[QUOTED_TEXT_LEN];
    if (n > 1) {
        for (size_t k = 0; k < n; k++)
            st->weights[k] = parts[k].weight;
        if (apportion_pence (r->amount_pence, st->weights, n, st->amounts, problem,
                             sizeof problem) != 0)
            return fail (reason, reason_len, "amount cannot be split: %s", problem);
    }
    const bool family = max_parts > 1 && (r->revision > 1 || r->withdrawn);
    const size_t slots = family || n > 1 ? max_parts : 0;
    uint64_t placeholders = 0;
    int rc = 0;
    st->n_out = 0;
    if (n == 1)
        rc = add_record (st, row, r->record_id, parts[0].code, r->amount_pence, r->withdrawn,
                         reason, reason_len);
    else if (family) {
        rc = add_record (st, row, r->record_id, parts[0].code, 0, true, reason, reason_len);
        placeholders++;
    }
    for (size_t k = 1; rc == 0 && k <= slots; k++) {
        char id[WIRE_MAX_RECORD_ID + 2];
        int len = snprintf (id, sizeof id, "%s/%zu", r->record_id, k);
        if (len < 0 || (size_t)len > WIRE_MAX_RECORD_ID) {
            rc =
                fail (reason, reason_len,
                      "record_id %s is too long to number its parts (\"/%zu\" must fit in %u "
                      "bytes)",
                      quoted_text (r->record_id, quoted, sizeof quoted), slots, WIRE_MAX_RECORD_ID);
            break;
        }
        if (n > 1 && k <= n)
            rc = add_record (st, row, id, parts[k - 1].code, st->amounts[k - 1], r->withdrawn,
                             reason, reason_len);
        else {
            rc = add_record (st, row, id, parts[0].code, 0, true, reason, reason_len);
            placeholders++;
        }
    }
    if (rc != 0) {
        free_out (st, 0);
        return rc;
    }
    st->stats.placeholders += placeholders;
    return 0;
}

static void
finish_data_row (read_state_t *st)
{
    st->stats.rows++;
    if (st->cells < st->n_headers)
        st->stats.short_rows++;
    else if (st->cells > st->n_headers && !st->extra_column)
        st->stats.long_rows++;

    row_t row = {.draft = TOTALPLACE__SPENDING_RECORD__INIT};
    char reason[CSV_READER_REASON_LEN];
    if (build_row (st, &row, reason, sizeof reason) != 0) {
        reject (st, reason);
        return;
    }
    /* After every check that does not depend on the row's content alone (revision, withdrawn), so
     * that identical rows always number the same way; before placing, so that a row a lookup
     * cannot place still takes its number and a later lookup change cannot shift the others. */
    if (st->ids && derive_id (st, &row) != 0)
        return;
    const area_part_t *parts = NULL;
    area_part_t single;
    size_t n = 0;
    placed_t placed = place (st, &parts, &n, &single, reason, sizeof reason);
    if (placed == PLACED_NOWHERE) {
        reject (st, reason);
        return;
    }
    int rc = build_records (st, &row, parts, n, reason, sizeof reason);
    if (rc == -1)
        reject (st, reason);
    if (rc != 0)
        return;
    if (placed == PLACED_BY_COLUMN)
        st->stats.by_column++;
    else if (placed == PLACED_BY_LOOKUP)
        st->stats.by_lookup++;
    else
        st->stats.by_postcode++;
    if (n > 1)
        st->stats.apportioned++;
    size_t count = st->n_out;
    for (size_t i = 0; i < count; i++) {
        Totalplace__SpendingRecord *record = st->out[i];
        st->stats.records++;
        if (!st->on_record) {
            protobuf_c_message_free_unpacked (&record->base, NULL);
            continue;
        }
        rc = st->on_record (st->arg, st->row_line, record);
        if (rc != 0) {
            /* The receiver owns what it was given; the rest of the row is dropped. */
            st->n_out = count;
            free_out (st, i + 1);
            stopped_by_callback (st, rc, "record");
            return;
        }
    }
    st->n_out = 0;
}

static void
start_row (read_state_t *st)
{
    if (!st->row_started) {
        st->row_started = true;
        st->row_line = st->line;
    }
}

static void
header_cell (read_state_t *st, size_t column, const char *data, size_t len, size_t total)
{
    if (column >= CSV_READER_MAX_COLUMNS) {
        st->header_too_wide = true;
        return;
    }
    if (total > CSV_READER_MAX_FIELD) {
        if (!st->header_oversize_column)
            st->header_oversize_column = column + 1;
        len = 0;
    }
    if (st->n_headers == st->headers_cap) {
        size_t cap = st->headers_cap ? st->headers_cap * 2 : 32;
        char **headers = realloc (st->headers, cap * sizeof *headers);
        if (!headers) {
            file_error (st, "out of memory reading the header");
            return;
        }
        st->headers = headers;
        st->headers_cap = cap;
    }
    char *name = strndup (data, len);
    if (!name) {
        file_error (st, "out of memory reading the header");
        return;
    }
    char *trimmed = trim (name);
    memmove (name, trimmed, strlen (trimmed) + 1);
    st->headers[st->n_headers++] = name;
}

/* libcsv calls this for every cell. */
static void
on_cell (void *data, size_t len, void *arg)
{
    read_state_t *st = arg;
    if (st->stop)
        return;
    start_row (st);
    size_t column = st->cells++;
    size_t total = st->field_dropped + len;
    bool nonempty = st->field_dropped > 0;
    st->field_dropped = 0;
    st->row_bytes += total;
    st->line += line_breaks_count (data, len, &st->field_cr);
    st->field_cr = false;
    const char *text = data;
    for (size_t i = 0; i < len && !nonempty; i++)
        nonempty = !is_space (text[i]);
    if (nonempty)
        st->row_nonempty = true;

    if (!st->have_header) {
        header_cell (st, column, text, len, total);
        return;
    }
    if (column >= st->n_headers) {
        if (nonempty && !st->extra_column)
            st->extra_column = column + 1;
        return;
    }
    int slot = st->column_slot[column];
    if (slot < 0)
        return;
    if (total > CSV_READER_MAX_FIELD) {
        if (!st->oversize_column) {
            st->oversize_column = column + 1;
            st->oversize_bytes = total;
        }
        return;
    }
    if (memchr (text, '\0', len)) {
        if (!st->nul_column)
            st->nul_column = column + 1;
        return;
    }
    if (st->row_bytes > CSV_READER_MAX_ROW)
        return;
    if (st->buf_len + len + 1 > st->buf_cap) {
        size_t cap = st->buf_cap ? st->buf_cap : 4096;
        while (cap < st->buf_len + len + 1)
            cap *= 2;
        char *buf = realloc (st->buf, cap);
        if (!buf) {
            file_error (st, "line %zu: out of memory reading a row", st->row_line);
            return;
        }
        st->buf = buf;
        st->buf_cap = cap;
    }
    memcpy (st->buf + st->buf_len, text, len);
    st->buf[st->buf_len + len] = '\0';
    st->slots[slot].offset = st->buf_len;
    st->slots[slot].present = true;
    st->buf_len += len + 1;
}

/* libcsv calls this at every CR or LF outside quotes (CSV_REPALL_NL), and with -1 when the last
 * row has no line break. */
static void
on_row_end (int c, void *arg)
{
    read_state_t *st = arg;
    if (st->stop)
        return;
    if (!st->row_started) {
        if (c == '\n' && st->last_was_cr) {
            st->last_was_cr = false;
            return;
        }
        st->stats.blank++;
    }
    else if (!st->row_nonempty)
        st->stats.blank++;
    else if (!st->have_header)
        take_header (st);
    else
        finish_data_row (st);
    clear_row (st);
    st->last_was_cr = c == '\r';
    if (c == '\r' || c == '\n')
        st->line++;
}

/* libcsv keeps a whole cell in memory until it ends. A cell past the limit will reject its row
 * anyway, so its middle is dropped between chunks (line breaks in it still counted), which keeps
 * memory bounded whatever the file holds. This edits the parser's public fields directly: only the
 * last `spaces + 1` bytes matter to libcsv (trailing spaces and a possible closing quote, which it
 * strips when the cell ends), and those are kept. */
static void
drop_oversized_cell (read_state_t *st)
{
    struct csv_parser *p = &st->parser;
    if (p->entry_pos <= CSV_READER_MAX_FIELD)
        return;
    if (p->spaces > 16)
        p->spaces = 16;
    size_t keep = p->spaces + 1;
    size_t drop = p->entry_pos - keep;
    start_row (st);
    st->line += line_breaks_count (p->entry_buf, drop, &st->field_cr);
    memmove (p->entry_buf, p->entry_buf + drop, keep);
    p->entry_pos = keep;
    st->field_dropped += drop;
}

static void
read_all (read_state_t *st, FILE *stream)
{
    unsigned char *chunk = malloc (CHUNK_SIZE);
    if (!chunk) {
        file_error (st, "out of memory");
        return;
    }
    bool first = true;
    size_t n;
    errno = 0;
    while (!st->stop && (n = fread (chunk, 1, CHUNK_SIZE, stream)) > 0) {
        const unsigned char *data = chunk;
        if (first) {
            first = false;
            if (n >= 2 &&
                ((data[0] == 0xFF && data[1] == 0xFE) || (data[0] == 0xFE && data[1] == 0xFF))) {
                file_error (st, "the file is UTF-16; save it as CSV in UTF-8");
                break;
            }
            if (n >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) {
                data += 3;
                n -= 3;
            }
        }
        if (csv_parse (&st->parser, data, n, on_cell, on_row_end, st) != n && !st->stop) {
            file_error (st, "line %zu: %s", st->line, csv_strerror (csv_error (&st->parser)));
            break;
        }
        drop_oversized_cell (st);
    }
    int read_errno = errno;
    free (chunk);
    if (st->stop)
        return;
    if (ferror (stream)) {
        file_error (st, "read failed: %s", strerror (read_errno));
        return;
    }
    /* Strict only for this last step: it is how libcsv tells that the final quoted cell never
     * closed, which would otherwise turn the rest of the file silently into one cell. */
    csv_set_opts (&st->parser, CSV_REPALL_NL | CSV_STRICT | CSV_STRICT_FINI);
    if (csv_fini (&st->parser, on_cell, on_row_end, st) != 0 && !st->stop) {
        start_row (st);
        if (!st->have_header) {
            file_error (st, "line %zu: a quoted header cell is never closed", st->row_line);
            return;
        }
        st->stats.rows++;
        char reason[CSV_READER_REASON_LEN];
        fail (reason, sizeof reason,
              "a quoted cell in column %zu is never closed, so everything to the end of the file "
              "was read into it",
              st->cells + 1);
        reject (st, reason);
        clear_row (st);
    }
    if (!st->stop && !st->have_header)
        file_error (st, "no header row (the file is empty)");
}

int
csv_reader_read_stream (csv_reader_t *self, FILE *stream, const char *name,
                        csv_record_fn *on_record, csv_reject_fn *on_reject, void *arg,
                        csv_reader_stats_t *stats, char *err, size_t err_len)
{
    read_state_t st = {
        .reader = self,
        .name = name ? name : "(stream)",
        .on_record = on_record,
        .on_reject = on_reject,
        .arg = arg,
        .line = 1,
        .err = err,
        .err_len = err_len,
    };
    if (err && err_len)
        err[0] = '\0';
    const char *id_column = self->header[F_RECORD_ID];
    size_t max_parts = self->max_parts;
    st.out = malloc ((max_parts + 1) * sizeof *st.out);
    st.amounts = malloc (max_parts * sizeof *st.amounts);
    st.weights = malloc (max_parts * sizeof *st.weights);
    if (!st.out || !st.amounts || !st.weights)
        file_error (&st, "out of memory");
    else if (id_column && !*id_column && !(st.ids = record_ids_new ()))
        file_error (&st, "cannot start deriving record ids (out of memory or no libsodium)");
    else if (csv_init (&st.parser, CSV_REPALL_NL) != 0) {
        file_error (&st, "cannot start the CSV parser");
    }
    else {
        /* Bigger steps than libcsv's 128-byte default: fewer reallocs for long cells. */
        csv_set_blk_size (&st.parser, 4096);
        read_all (&st, stream);
        csv_free (&st.parser);
    }
    for (size_t c = 0; c < st.n_headers; c++)
        free (st.headers[c]);
    free (st.headers);
    free (st.column_slot);
    free (st.buf);
    free (st.out);
    free (st.amounts);
    free (st.weights);
    record_ids_destroy (&st.ids);
    if (stats)
        *stats = st.stats;
    return st.rc;
}

int
csv_reader_read_file (csv_reader_t *self, const char *path, csv_record_fn *on_record,
                      csv_reject_fn *on_reject, void *arg, csv_reader_stats_t *stats, char *err,
                      size_t err_len)
{
    FILE *stream = fopen (path, "rb");
    if (!stream) {
        if (stats)
            memset (stats, 0, sizeof *stats);
        return fail (err, err_len, "cannot open %s: %s", path, strerror (errno));
    }
    int rc =
        csv_reader_read_stream (self, stream, path, on_record, on_reject, arg, stats, err, err_len);
    fclose (stream);
    return rc;
}
