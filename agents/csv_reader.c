/* csv_reader: libcsv does the CSV grammar (quotes, embedded commas and newlines); this module maps
 * header names to record fields, converts each row, counts physical lines so that every rejection
 * points at the right line, and keeps memory bounded whatever the file holds. */
#include "csv_reader.h"
#include "quoted_text.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "period.h"
#include "spend_date.h"

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
    FIELD_COUNT
} field_t;

/* Default header names per field, in priority order: when a file has several of them, the first
 * listed wins. Names follow the Local Government Transparency Code "spend over £500" exports. */
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
                         true,
                         {"Neighbourhood", "Neighbourhood Code", "LSOA", "Ward Code"}},
    [F_POOLABLE] = {"poolable", false, {"Poolable"}},
    [F_REVISION] = {"revision", false, {"Revision"}},
    [F_WITHDRAWN] = {"withdrawn", false, {"Withdrawn"}},
    [F_BODY_ID] = {"body_id", false, {"Body ID"}},
};

struct _csv_reader_t {
    char *body_id;
    char *default_service; /* NULL: none */
    bool default_poolable;
    char *header[FIELD_COUNT]; /* override per field; NULL: the defaults; "": no column */
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

static char
lower (char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
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
    const char *a = cell, *b = name;
    while (is_space (*a))
        a++;
    while (is_space (*b))
        b++;
    while (*a && *b) {
        if (is_space (*a) && is_space (*b)) {
            while (is_space (*a))
                a++;
            while (is_space (*b))
                b++;
            continue;
        }
        if (lower (*a) != lower (*b))
            return false;
        a++;
        b++;
    }
    while (is_space (*a))
        a++;
    while (is_space (*b))
        b++;
    return *a == '\0' && *b == '\0';
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

/* Counts the line breaks in cell text (CRLF, LF and a lone CR each count once). *prev_cr carries a
 * CR at the end of one piece over to the next piece of the same cell. */
static size_t
count_line_breaks (const unsigned char *s, size_t len, bool *prev_cr)
{
    /* Almost every cell has no line break; memchr finds that out far faster than the loop. */
    if (len == 0 || (!memchr (s, '\n', len) && !memchr (s, '\r', len))) {
        *prev_cr = false;
        return 0;
    }
    size_t breaks = 0;
    bool cr = *prev_cr;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r')
            breaks++;
        else if (s[i] == '\n' && !cr)
            breaks++;
        cr = s[i] == '\r';
    }
    *prev_cr = cr;
    return breaks;
}

static int
field_by_name (const char *name)
{
    for (int f = 0; f < FIELD_COUNT; f++)
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
                     "description, neighbourhood, poolable, revision, withdrawn, body_id",
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
        if (len == 0 && fields[f].required)
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
            if (override)
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

/* Fills r (pointing into the row buffer) from the current row. Returns 0, or -1 with a reason. */
static int
build_record (read_state_t *st, Totalplace__SpendingRecord *r, char period[PERIOD_LEN],
              char *reason, size_t reason_len)
{
    char problem[CSV_READER_REASON_LEN];
    char quoted[QUOTED_TEXT_LEN];

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

    char *record_id = field_text (st, F_RECORD_ID);
    if (!*record_id) {
        empty_reason (st, F_RECORD_ID, reason, reason_len);
        return -1;
    }
    char *date = field_text (st, F_PERIOD);
    if (!*date) {
        empty_reason (st, F_PERIOD, reason, reason_len);
        return -1;
    }
    if (spend_date_period (date, period, problem, sizeof problem) != 0)
        return fail (reason, reason_len, "period %s", problem);
    char *amount = field_text (st, F_AMOUNT);
    if (!*amount) {
        empty_reason (st, F_AMOUNT, reason, reason_len);
        return -1;
    }
    int64_t pence;
    if (money_parse_pence (amount, &pence, problem, sizeof problem) != 0)
        return fail (reason, reason_len, "amount %s", problem);
    char *neighbourhood = field_text (st, F_NEIGHBOURHOOD);
    if (!*neighbourhood) {
        empty_reason (st, F_NEIGHBOURHOOD, reason, reason_len);
        return -1;
    }
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
    r->neighbourhood = neighbourhood;
    r->service = service;
    r->period = period;
    r->amount_pence = pence;
    r->poolable = poolable;
    r->supplier = supplier;
    r->description = description;
    r->withdrawn = withdrawn;
    return wire_validate_record (r, reason, reason_len);
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
finish_data_row (read_state_t *st)
{
    st->stats.rows++;
    if (st->cells < st->n_headers)
        st->stats.short_rows++;
    else if (st->cells > st->n_headers && !st->extra_column)
        st->stats.long_rows++;

    Totalplace__SpendingRecord draft = TOTALPLACE__SPENDING_RECORD__INIT;
    char period[PERIOD_LEN];
    char reason[CSV_READER_REASON_LEN];
    if (build_record (st, &draft, period, reason, sizeof reason) != 0) {
        reject (st, reason);
        return;
    }
    Totalplace__SpendingRecord *record = copy_record (&draft);
    if (!record) {
        file_error (st, "line %zu: out of memory building a record", st->row_line);
        return;
    }
    st->stats.records++;
    if (!st->on_record) {
        protobuf_c_message_free_unpacked (&record->base, NULL);
        return;
    }
    int rc = st->on_record (st->arg, st->row_line, record);
    if (rc != 0)
        stopped_by_callback (st, rc, "record");
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
    st->line += count_line_breaks (data, len, &st->field_cr);
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
    st->line += count_line_breaks (p->entry_buf, drop, &st->field_cr);
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
    if (csv_init (&st.parser, CSV_REPALL_NL) != 0) {
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
