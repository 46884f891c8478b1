/* csv_reader: libcsv does the CSV grammar (quotes, embedded commas and newlines); csv_layout
 * decides which columns feed which fields; this module converts each row, places it in its
 * neighbourhoods (a column, a lookup, a postcode), gives it an id when the export has none or
 * repeats one, notices the file's own totals row, counts physical lines so that every rejection
 * points at the right line, reports what it finds to an export_summary, and keeps memory bounded
 * whatever the file holds. */
#include "csv_reader.h"
#include "err_text.h"
#include "line_breaks.h"
#include "quoted_text.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "apportion.h"
#include "csv_layout.h"
#include "id_repeats.h"
#include "money.h"
#include "period.h"
#include "record_ids.h"
#include "spend_date.h"
#include "text_fold.h"

/* Bytes read from the stream at a time. */
#define CHUNK_SIZE (64u * 1024u)
/* Rows without id and date kept until the end of the file to see whether they are its total. */
#define MAX_TOTALS_CANDIDATES 64
/* Hex digits of a row's content digest in a line id ("ID~<digits>#n"). */
#define LINE_ID_DIGITS 12
/* Cell slots: every field may read up to CSV_LAYOUT_MAX_PARTS columns. */
#define MAX_SLOTS (CSV_FIELD_COUNT * CSV_LAYOUT_MAX_PARTS)
/* Cells of one row quoted in its replaced-bytes warning. */
#define MAX_REPLACED_CELLS 3

struct _csv_reader_t {
    char *body_id;
    char *default_service; /* NULL: none */
    bool default_poolable;
    csv_spec_t *specs[CSV_FIELD_COUNT]; /* NULL: default names; CSV_FIELD_LOOKUP: the lookup's */
    char *lookup_column;                /* the header the lookup reads, for messages */
    area_lookup_t *lookup;              /* values of the lookup column to neighbourhoods */
    area_lookup_t *postcodes;           /* postcodes to areas; NULL: none */
    size_t max_parts;                   /* 1: no apportionment, and no part families */
    csv_repeated_ids_t repeated_ids;
    text_encoding_t encoding;
};

/* One column the current file's fields are read from, and where its cell of the current row sits
 * in the row buffer. Several fields may share a column. */
typedef struct {
    size_t column;
    size_t offset;
    bool present;
    bool raw; /* kept as bytes: the amount in UTF-8 mode (money.c reads a lone 0xA3 as "£") */
} slot_t;

/* A row without id and date, kept until the end of the file: the file's total, or a rejection. */
typedef struct {
    size_t line;
    int64_t amount;
    int64_t rows_sum; /* sum of the other rows between the previous candidate and this one */
    bool rows_sum_overflow;
    uint64_t rows_since; /* rows in that sum */
    csv_field_t field;   /* of the reason it is rejected with when it is not a total */
    char reason[CSV_READER_REASON_LEN];
    bool short_row, long_row;
} totals_candidate_t;

typedef struct {
    csv_reader_t *reader;
    const char *name;
    csv_record_fn *on_record;
    csv_reject_fn *on_reject;
    void *arg;
    csv_reader_stats_t stats;
    export_summary_t *summary;
    struct csv_parser parser;

    /* Header. */
    bool have_header;
    size_t header_line;
    char **headers;
    size_t n_headers;
    size_t headers_cap;
    bool header_too_wide;
    size_t header_oversize_column; /* 1-based; 0 when none */
    csv_layout_t *layout;
    int *column_slot; /* per header column: index into slots, or -1 */
    slot_t slots[MAX_SLOTS];
    size_t n_slots;
    int field_slots[CSV_FIELD_COUNT][CSV_LAYOUT_MAX_PARTS]; /* -1: no column */
    size_t field_parts[CSV_FIELD_COUNT];                    /* 0: the field has no column */

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

    /* The file's encoding, and the cells of the current row whose bytes it could not read. */
    text_encoding_t encoding;
    text_encoding_converter_t *converter;
    size_t replaced_cells;
    char replaced[CSV_READER_REASON_LEN]; /* the warning being built */
    size_t replaced_used;

    /* Ids: derived (record_id mapped to ""), numbered per line, or checked for repeats. */
    record_ids_t *ids;                /* derived ids, and line ids' occurrences */
    id_repeats_t *repeats;            /* ids from a column, in CSV_REPEATED_IDS_HOLD */
    Totalplace__SpendingRecord **out; /* max_parts + 1 */
    size_t n_out;
    int64_t *amounts;  /* max_parts */
    uint32_t *weights; /* max_parts */

    /* The file's own totals rows. */
    totals_candidate_t candidates[MAX_TOTALS_CANDIDATES];
    size_t n_candidates;
    int64_t rows_sum, since_sum; /* amounts of the rows that are not candidates: all, and since
                                    the last candidate */
    bool rows_sum_overflow, since_sum_overflow;
    uint64_t rows_summed, since_rows;

    /* Outcome. */
    bool stop;
    int rc;
    char *err;
    size_t err_len;
} read_state_t;

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

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
    for (int f = 0; f < CSV_FIELD_COUNT; f++)
        csv_spec_destroy (&self->specs[f]);
    free (self->lookup_column);
    area_lookup_destroy (&self->lookup);
    area_lookup_destroy (&self->postcodes);
    free (self->default_service);
    free (self->body_id);
    free (self);
    *self_p = NULL;
}

int
csv_reader_map (csv_reader_t *self, const char *field, const char *spec, char *err, size_t err_len)
{
    int f = csv_field_by_name (field);
    if (f < 0) {
        char quoted[QUOTED_TEXT_LEN];
        return fail (err, err_len,
                     "unknown field %s; fields are record_id, period, amount, supplier, service, "
                     "description, neighbourhood, poolable, revision, withdrawn, body_id, "
                     "postcode",
                     quoted_text (field ? field : "", quoted, sizeof quoted));
    }
    csv_spec_t *parsed = NULL;
    if (spec) {
        parsed = csv_spec_parse ((csv_field_t)f, spec, err, err_len);
        if (!parsed)
            return -1;
        /* record_id may be "": ids are then derived from each row's content. */
        if (csv_spec_is_none (parsed) && (f == CSV_FIELD_PERIOD || f == CSV_FIELD_AMOUNT)) {
            csv_spec_destroy (&parsed);
            return fail (err, err_len, "%s is required, so it must be read from some column",
                         csv_field_name ((csv_field_t)f));
        }
    }
    csv_spec_destroy (&self->specs[f]);
    self->specs[f] = parsed;
    return 0;
}

void
csv_reader_set_repeated_ids (csv_reader_t *self, csv_repeated_ids_t mode)
{
    self->repeated_ids = mode;
}

void
csv_reader_set_encoding (csv_reader_t *self, text_encoding_t encoding)
{
    self->encoding = encoding;
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
    csv_spec_t *spec = NULL;
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
        if (len == 0 || len > CSV_LAYOUT_MAX_NAME)
            return fail (err, err_len,
                         "a lookup needs the header of the column it reads (1 to %u bytes)",
                         CSV_LAYOUT_MAX_NAME);
        if (!(copy = strndup (column, len)))
            return fail (err, err_len, "out of memory setting a lookup");
        if (!(spec = csv_spec_parse (CSV_FIELD_LOOKUP, copy, err, err_len))) {
            free (copy);
            return -1;
        }
        *lookup_p = NULL;
    }
    area_lookup_destroy (&self->lookup);
    free (self->lookup_column);
    csv_spec_destroy (&self->specs[CSV_FIELD_LOOKUP]);
    self->lookup = lookup;
    self->lookup_column = copy;
    self->specs[CSV_FIELD_LOOKUP] = spec;
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

/* ---------------------------------------------------------------- outcomes */

/* A file-level error: the read stops and returns CSV_READER_ERR. The whole message goes to the
 * summary (never cut); err gets what fits. */
static void file_error (read_state_t *st, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
file_error (read_state_t *st, const char *format, ...)
{
    char *message = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&message, &size);
    if (out) {
        fprintf (out, "%s: ", st->name);
        va_list args;
        va_start (args, format);
        vfprintf (out, format, args);
        va_end (args);
        if (fclose (out) != 0) {
            free (message);
            message = NULL;
        }
    }
    if (st->err && st->err_len)
        snprintf (st->err, st->err_len, "%s", message ? message : "out of memory");
    if (st->summary)
        export_summary_set_failure (st->summary, message ? message : "out of memory");
    free (message);
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
reject_at (read_state_t *st, size_t line, csv_field_t field, const char *reason)
{
    st->stats.rejected++;
    if (st->summary && export_summary_add_reject (st->summary, field, line, reason) != 0) {
        file_error (st, "out of memory summarising rejections");
        return;
    }
    if (st->on_reject) {
        int rc = st->on_reject (st->arg, line, reason);
        if (rc != 0)
            stopped_by_callback (st, rc, "rejection");
    }
}

static void
reject (read_state_t *st, csv_field_t field, const char *reason)
{
    reject_at (st, st->row_line, field, reason);
}

/* The field a validation reason is about: reasons start with the field's name. */
static csv_field_t
field_of_reason (const char *reason)
{
    char name[32];
    size_t len = strcspn (reason, " :");
    if (len >= sizeof name)
        return CSV_FIELD_COUNT;
    memcpy (name, reason, len);
    name[len] = '\0';
    int f = csv_field_by_name (name);
    return f < 0 ? CSV_FIELD_COUNT : (csv_field_t)f;
}

static void
warn (read_state_t *st, export_warning_t kind, size_t line, const char *text)
{
    if (!st->summary)
        return;
    int rc = export_summary_warn (st->summary, kind, line, text);
    if (rc < 0)
        file_error (st, "out of memory summarising warnings");
    else if (rc > 0)
        stopped_by_callback (st, rc, "warning");
}

/* ---------------------------------------------------------------- the header */

/* Names in a missing-column message: what the config says, or the default names. */
static void
describe_missing (FILE *out, const csv_reader_t *reader, csv_field_t f)
{
    char accepted[4096];
    csv_spec_describe (reader->specs[f], f, accepted, sizeof accepted);
    if (reader->specs[f])
        fprintf (out, "no column for %s: none of %s (columns/%s) is in the header",
                 csv_field_name (f), accepted, csv_field_name (f));
    else
        fprintf (out, "no %s column (accepted headers: %s)", csv_field_name (f), accepted);
}

/* Called once the header row is complete: decides which columns feed each field. */
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
    st->layout = csv_layout_new ((const char *const *)st->headers, st->n_headers,
                                 (const csv_spec_t *const *)reader->specs);
    /* A header row reaches here only with a non-empty cell, so n_headers >= 1. */
    st->column_slot = malloc (st->n_headers * sizeof *st->column_slot);
    if (!st->layout || !st->column_slot) {
        file_error (st, "out of memory reading the header");
        return;
    }
    for (size_t c = 0; c < st->n_headers; c++)
        st->column_slot[c] = -1;

    char *missing = NULL;
    size_t missing_size = 0;
    FILE *out = open_memstream (&missing, &missing_size);
    if (!out) {
        file_error (st, "out of memory reading the header");
        return;
    }
    bool any = false;
    for (int f = 0; f < CSV_FIELD_COUNT; f++) {
        st->field_parts[f] = 0;
        const csv_spec_t *spec = reader->specs[f];
        const csv_columns_t *columns = csv_layout_columns (st->layout, (csv_field_t)f);
        if (!columns->present) {
            bool required = f == CSV_FIELD_PERIOD || f == CSV_FIELD_AMOUNT ||
                            (f == CSV_FIELD_RECORD_ID && !csv_spec_is_none (spec));
            if (f == CSV_FIELD_LOOKUP && spec) {
                char accepted[4096];
                csv_spec_describe (spec, CSV_FIELD_LOOKUP, accepted, sizeof accepted);
                fprintf (out,
                         "%sno column %s, which the neighbourhood lookup reads "
                         "(neighbourhood/lookup_column)",
                         any ? "; " : "", accepted);
                any = true;
            }
            else if (f != CSV_FIELD_LOOKUP && ((spec && !csv_spec_is_none (spec)) || required)) {
                fputs (any ? "; " : "", out);
                describe_missing (out, reader, (csv_field_t)f);
                any = true;
            }
            continue;
        }
        for (size_t p = 0; p < columns->count; p++) {
            size_t column = columns->columns[p];
            if (st->column_slot[column] < 0) {
                st->slots[st->n_slots].column = column;
                st->column_slot[column] = (int)st->n_slots++;
            }
            st->field_slots[f][p] = st->column_slot[column];
        }
        st->field_parts[f] = columns->count;
    }
    /* money.c reads its own bytes (a lone 0xA3 is "£" in a file otherwise UTF-8). */
    if (st->encoding == TEXT_ENCODING_UTF8 && st->field_parts[CSV_FIELD_AMOUNT])
        st->slots[st->field_slots[CSV_FIELD_AMOUNT][0]].raw = true;
    /* A row needs some way to its neighbourhood; a file with none would reject every row. A
     * mapped neighbourhood column that is missing has been named above already. */
    const csv_spec_t *nbh_spec = reader->specs[CSV_FIELD_NEIGHBOURHOOD];
    if (!st->field_parts[CSV_FIELD_NEIGHBOURHOOD] && !st->field_parts[CSV_FIELD_LOOKUP] &&
        !(reader->postcodes && st->field_parts[CSV_FIELD_POSTCODE]) &&
        (!nbh_spec || csv_spec_is_none (nbh_spec))) {
        fputs (any ? "; " : "", out);
        if (!nbh_spec)
            describe_missing (out, reader, CSV_FIELD_NEIGHBOURHOOD);
        else
            fputs ("no way to a neighbourhood (neighbourhood is read from no column)", out);
        if (reader->postcodes)
            fputs (", and no postcode column for the postcode lookup", out);
        any = true;
    }
    if (fclose (out) != 0 || !missing) {
        free (missing);
        file_error (st, "out of memory reading the header");
        return;
    }
    if (any)
        file_error (st, "line %zu: the header has %s", st->header_line, missing);
    free (missing);
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
    st->replaced_cells = 0;
    st->replaced_used = 0;
    st->replaced[0] = '\0';
    for (size_t i = 0; i < st->n_slots; i++)
        st->slots[i].present = false;
}

/* The trimmed text of part `part` of field f in the current row, or "" when the file has no column
 * for it or the row stops before that column. */
static char *
part_text (read_state_t *st, int f, size_t part)
{
    if (part >= st->field_parts[f])
        return st->empty;
    int slot = st->field_slots[f][part];
    if (slot < 0 || !st->slots[slot].present)
        return st->empty;
    return trim (st->buf + st->slots[slot].offset);
}

static char *
field_text (read_state_t *st, int f)
{
    return part_text (st, f, 0);
}

static void
empty_reason (read_state_t *st, int f, size_t part, char *reason, size_t reason_len)
{
    if (part < st->field_parts[f]) {
        const slot_t *slot = &st->slots[st->field_slots[f][part]];
        if (slot->column >= st->cells) {
            fail (reason, reason_len, "%s is missing: the row has %zu cells and the header %zu",
                  csv_field_name ((csv_field_t)f), st->cells, st->n_headers);
            return;
        }
        if (st->field_parts[f] > 1) {
            char quoted[QUOTED_TEXT_LEN];
            fail (reason, reason_len, "%s is incomplete: column %zu %s is empty",
                  csv_field_name ((csv_field_t)f), slot->column + 1,
                  quoted_text (st->headers[slot->column], quoted, sizeof quoted));
            return;
        }
    }
    fail (reason, reason_len, "%s is empty", csv_field_name ((csv_field_t)f));
}

/* ---------------------------------------------------------------- one row */

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
        if (text_fold_equal (text, yes[i])) {
            *value = true;
            return 0;
        }
        if (text_fold_equal (text, no[i])) {
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

/* One row read and checked, before it is placed. The draft has every field but neighbourhood (and
 * record_id until it is known); its strings point into the row buffer or into this struct. */
typedef struct {
    Totalplace__SpendingRecord draft;
    char period[PERIOD_LEN];
    char date[SPEND_DATE_LEN];
    char id[WIRE_MAX_RECORD_ID + 1]; /* a derived, joined or numbered id */
    bool amount_read;                /* amount_pence holds the row's amount */
} row_t;

/* The row's record id from its columns: one cell, or several joined with CSV_LAYOUT_ID_JOINER.
 * Returns 0, or -1 with a reason. */
static int
read_record_id (read_state_t *st, row_t *row, char *reason, size_t reason_len)
{
    size_t parts = st->field_parts[CSV_FIELD_RECORD_ID];
    if (parts <= 1) {
        char *id = field_text (st, CSV_FIELD_RECORD_ID);
        if (!*id) {
            empty_reason (st, CSV_FIELD_RECORD_ID, 0, reason, reason_len);
            return -1;
        }
        row->draft.record_id = id;
        return 0;
    }
    size_t used = 0;
    for (size_t p = 0; p < parts; p++) {
        const char *text = part_text (st, CSV_FIELD_RECORD_ID, p);
        if (!*text) {
            empty_reason (st, CSV_FIELD_RECORD_ID, p, reason, reason_len);
            return -1;
        }
        int n = snprintf (row->id + used, sizeof row->id - used, "%s%s",
                          p ? CSV_LAYOUT_ID_JOINER : "", text);
        if (n < 0 || used + (size_t)n >= sizeof row->id) {
            char quoted[QUOTED_TEXT_LEN];
            return fail (
                reason, reason_len,
                "record_id joined from its columns is over %u bytes (starts %s)",
                WIRE_MAX_RECORD_ID,
                quoted_text (part_text (st, CSV_FIELD_RECORD_ID, 0), quoted, sizeof quoted));
        }
        used += (size_t)n;
    }
    row->draft.record_id = row->id;
    return 0;
}

/* Fills row from the current row's cells. Returns 0, or -1 with a reason and *field the field it
 * is about (CSV_FIELD_COUNT: the row as a whole). */
static int
build_row (read_state_t *st, row_t *row, csv_field_t *field, char *reason, size_t reason_len)
{
    char problem[CSV_READER_REASON_LEN];
    char quoted[QUOTED_TEXT_LEN];
    Totalplace__SpendingRecord *r = &row->draft;

    *field = CSV_FIELD_COUNT;
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

    *field = CSV_FIELD_RECORD_ID;
    if (!csv_spec_is_none (st->reader->specs[CSV_FIELD_RECORD_ID]) &&
        read_record_id (st, row, reason, reason_len) != 0)
        return -1;
    *field = CSV_FIELD_PERIOD;
    char *date = field_text (st, CSV_FIELD_PERIOD);
    if (!*date) {
        empty_reason (st, CSV_FIELD_PERIOD, 0, reason, reason_len);
        return -1;
    }
    /* The whole date, in one form, goes into derived ids; its month is the period. */
    if (spend_date_day (date, row->date, problem, sizeof problem) != 0)
        return fail (reason, reason_len, "period %s", problem);
    memcpy (row->period, row->date, PERIOD_LEN - 1);
    row->period[PERIOD_LEN - 1] = '\0';
    *field = CSV_FIELD_AMOUNT;
    char *amount = field_text (st, CSV_FIELD_AMOUNT);
    if (!*amount) {
        empty_reason (st, CSV_FIELD_AMOUNT, 0, reason, reason_len);
        return -1;
    }
    if (!row->amount_read) {
        if (money_parse_pence (amount, &r->amount_pence, problem, sizeof problem) != 0)
            return fail (reason, reason_len, "amount %s", problem);
        row->amount_read = true;
    }
    *field = CSV_FIELD_SERVICE;
    char *service = field_text (st, CSV_FIELD_SERVICE);
    if (!*service) {
        if (!st->reader->default_service)
            return fail (reason, reason_len, "service is empty");
        service = st->reader->default_service;
    }
    else
        fold_line_breaks (service);

    *field = CSV_FIELD_REVISION;
    char *text = field_text (st, CSV_FIELD_REVISION);
    uint32_t revision;
    if (parse_revision (text, &revision) != 0)
        return fail (reason, reason_len, "revision %s: not a whole number from 1 to %u",
                     quoted_text (text, quoted, sizeof quoted), UINT32_MAX);
    bool poolable, withdrawn;
    *field = CSV_FIELD_POOLABLE;
    text = field_text (st, CSV_FIELD_POOLABLE);
    if (parse_bool (text, st->reader->default_poolable, &poolable) != 0)
        return fail (reason, reason_len, "poolable %s: not yes/no, true/false, y/n or 1/0",
                     quoted_text (text, quoted, sizeof quoted));
    *field = CSV_FIELD_WITHDRAWN;
    text = field_text (st, CSV_FIELD_WITHDRAWN);
    if (parse_bool (text, false, &withdrawn) != 0)
        return fail (reason, reason_len, "withdrawn %s: not yes/no, true/false, y/n or 1/0",
                     quoted_text (text, quoted, sizeof quoted));

    char *body_id = field_text (st, CSV_FIELD_BODY_ID);
    char *supplier = field_text (st, CSV_FIELD_SUPPLIER);
    char *description = field_text (st, CSV_FIELD_DESCRIPTION);
    fold_line_breaks (supplier);
    fold_line_breaks (description);

    r->body_id = *body_id ? body_id : st->reader->body_id;
    r->revision = revision;
    r->service = service;
    r->period = row->period;
    r->poolable = poolable;
    r->supplier = supplier;
    r->description = description;
    r->withdrawn = withdrawn;
    return 0;
}

/* What the file says about a payment, normalised, for derived ids, line ids and repeats: never
 * what the agent adds (a default service, a neighbourhood from a lookup), so that changing those
 * never changes an id. Every field is always there, "" when the file has no column for it, so that
 * a column added empty changes nothing. with_id adds the row's own id first. Returns the count. */
static size_t
row_content (read_state_t *st, const row_t *row, char pence[24], bool with_id,
             record_ids_field_t content[12])
{
    snprintf (pence, 24, "%lld", (long long)row->draft.amount_pence);
    /* The lookup column counts once when it also feeds a field (e.g. Organisational Unit as the
     * service), so that adding such a lookup does not change the ids of rows already sent. */
    bool lookup_own = st->field_parts[CSV_FIELD_LOOKUP] > 0;
    for (int f = 0; f < CSV_FIELD_LOOKUP && lookup_own; f++)
        if (st->field_parts[f] && st->field_slots[f][0] == st->field_slots[CSV_FIELD_LOOKUP][0])
            lookup_own = false;
    size_t n = 0;
    if (with_id)
        content[n++] = (record_ids_field_t){"record_id", row->draft.record_id, RECORD_IDS_EXACT};
    content[n++] =
        (record_ids_field_t){"body_id", field_text (st, CSV_FIELD_BODY_ID), RECORD_IDS_TEXT};
    content[n++] = (record_ids_field_t){"period", row->period, RECORD_IDS_EXACT};
    content[n++] = (record_ids_field_t){"date", row->date, RECORD_IDS_EXACT};
    content[n++] = (record_ids_field_t){"amount", pence, RECORD_IDS_EXACT};
    content[n++] =
        (record_ids_field_t){"supplier", field_text (st, CSV_FIELD_SUPPLIER), RECORD_IDS_TEXT};
    content[n++] =
        (record_ids_field_t){"service", field_text (st, CSV_FIELD_SERVICE), RECORD_IDS_TEXT};
    content[n++] = (record_ids_field_t){"description", field_text (st, CSV_FIELD_DESCRIPTION),
                                        RECORD_IDS_TEXT};
    content[n++] =
        (record_ids_field_t){"poolable", field_text (st, CSV_FIELD_POOLABLE), RECORD_IDS_TEXT};
    content[n++] = (record_ids_field_t){"neighbourhood", field_text (st, CSV_FIELD_NEIGHBOURHOOD),
                                        RECORD_IDS_TEXT};
    content[n++] =
        (record_ids_field_t){"postcode", field_text (st, CSV_FIELD_POSTCODE), RECORD_IDS_POSTCODE};
    content[n++] = (record_ids_field_t){
        "lookup", lookup_own ? field_text (st, CSV_FIELD_LOOKUP) : "", RECORD_IDS_TEXT};
    return n;
}

/* The id of a row without one: a hash of its content and the number of identical rows above it.
 * Returns 0, or -1 when out of memory (a file-level error has been set). */
static int
derive_id (read_state_t *st, row_t *row)
{
    char pence[24], problem[CSV_READER_REASON_LEN];
    record_ids_field_t content[12];
    size_t n = row_content (st, row, pence, false, content);
    if (record_ids_derive (st->ids, content, n, row->id, problem, sizeof problem) != 0) {
        file_error (st, "line %zu: %s", st->row_line, problem);
        return -1;
    }
    row->draft.record_id = row->id;
    st->stats.derived_ids++;
    return 0;
}

/* An id the file gives, checked against the rows above it (CSV_REPEATED_IDS_HOLD), or made one per
 * line (CSV_REPEATED_IDS_LINES): "ID~<digits of the row's content>#<occurrence>", the occurrence
 * counting identical lines of the same id and revision from the top, so that the same file, or
 * its rows in another order, gives the same ids. Returns 0, 1 when the row is rejected (done
 * here), or -1 after a file-level error. */
static int
check_given_id (read_state_t *st, row_t *row)
{
    char pence[24], problem[CSV_READER_REASON_LEN];
    record_ids_field_t content[12];
    size_t n = row_content (st, row, pence, true, content);
    uint8_t digest[RECORD_IDS_DIGEST_BYTES];
    record_ids_t *hasher = st->ids;
    if (record_ids_digest (hasher, content, n, digest, problem, sizeof problem) != 0) {
        file_error (st, "line %zu: %s", st->row_line, problem);
        return -1;
    }
    const Totalplace__SpendingRecord *r = &row->draft;
    char quoted[QUOTED_TEXT_LEN];
    if (st->reader->repeated_ids == CSV_REPEATED_IDS_LINES) {
        uint8_t key[RECORD_IDS_DIGEST_BYTES];
        memcpy (key, digest, sizeof key);
        for (size_t b = 0; b < 4; b++)
            key[RECORD_IDS_DIGEST_BYTES - 4 + b] ^= (uint8_t)(r->revision >> (8 * b));
        uint64_t occurrence = record_ids_count (hasher, key);
        if (occurrence == 0) {
            file_error (st, "line %zu: out of memory numbering lines", st->row_line);
            return -1;
        }
        static const char hex[] = "0123456789abcdef";
        char digits[LINE_ID_DIGITS + 1];
        for (size_t d = 0; d < LINE_ID_DIGITS; d++)
            digits[d] = hex[(digest[d / 2] >> (d % 2 ? 0 : 4)) & 15];
        digits[LINE_ID_DIGITS] = '\0';
        char id[WIRE_MAX_RECORD_ID + 64];
        int len = snprintf (id, sizeof id, "%s~%s#%llu", r->record_id, digits,
                            (unsigned long long)occurrence);
        if (len < 0 || (size_t)len > WIRE_MAX_RECORD_ID) {
            char reason[CSV_READER_REASON_LEN];
            fail (reason, sizeof reason,
                  "record_id %s is too long to number its lines (input/repeated_ids = lines adds "
                  "%d bytes; at most %u in all)",
                  quoted_text (r->record_id, quoted, sizeof quoted),
                  len - (int)strlen (r->record_id), WIRE_MAX_RECORD_ID);
            reject (st, CSV_FIELD_RECORD_ID, reason);
            return 1;
        }
        memcpy (row->id, id, (size_t)len + 1);
        row->draft.record_id = row->id;
        st->stats.line_ids++;
        return 0;
    }
    digest[0] ^= r->withdrawn ? 1 : 0;
    size_t first_line;
    int first_other;
    int kind = id_repeats_see (st->repeats, r->body_id, r->record_id, r->revision, digest,
                               st->row_line, &first_line, &first_other);
    if (kind < 0) {
        file_error (st, "line %zu: out of memory checking repeated ids", st->row_line);
        return -1;
    }
    if (kind == ID_REPEATS_COPY) {
        st->stats.copies++;
        char text[CSV_READER_REASON_LEN];
        fail (text, sizeof text,
              "record_id %s: the same id, revision and content as line %zu, so one payment "
              "(set input/repeated_ids = lines if they are separate payments)",
              quoted_text (r->record_id, quoted, sizeof quoted), first_line);
        warn (st, EXPORT_WARN_COPY, st->row_line, text);
    }
    else if (kind == ID_REPEATS_OTHER) {
        st->stats.repeated_id_rows++;
        if (first_other) {
            st->stats.repeated_ids++;
            if (st->summary &&
                export_summary_add_repeat (st->summary, r->record_id, first_line, st->row_line)) {
                file_error (st, "out of memory summarising repeated ids");
                return -1;
            }
        }
    }
    return 0;
}

typedef enum { PLACED_NOWHERE, PLACED_BY_COLUMN, PLACED_BY_LOOKUP, PLACED_BY_POSTCODE } placed_t;

/* A header named in a reason as people read it (Organisational Unit), yet bounded and escaped as
 * a quotation is: the quotation without its quotes. */
static const char *
bounded_name (const char *name, char *out, size_t out_len)
{
    quoted_text (name, out, out_len);
    size_t len = strlen (out);
    if (len >= 2 && out[0] == '"' && out[len - 1] == '"') {
        memmove (out, out + 1, len - 2);
        out[len - 2] = '\0';
    }
    return out;
}

/* Finds the row's neighbourhoods, first match wins: its neighbourhood cell, the lookup of its
 * lookup column, the postcode lookup of its postcode. *parts points at *single or into a lookup.
 * PLACED_NOWHERE comes with a reason saying what was tried, and the values tried go to the
 * summary so that a lookup can be completed. */
static placed_t
place (read_state_t *st, const area_part_t **parts, size_t *n, area_part_t *single, char *reason,
       size_t reason_len)
{
    csv_reader_t *reader = st->reader;
    char *neighbourhood = field_text (st, CSV_FIELD_NEIGHBOURHOOD);
    if (*neighbourhood) {
        *single = (area_part_t){neighbourhood, 1};
        *parts = single;
        *n = 1;
        return PLACED_BY_COLUMN;
    }
    const char *value = st->field_parts[CSV_FIELD_LOOKUP] ? field_text (st, CSV_FIELD_LOOKUP) : "";
    /* The lookup column as this file heads it: the config may list several candidates. */
    const char *lookup_name =
        st->field_parts[CSV_FIELD_LOOKUP]
            ? st->headers[st->slots[st->field_slots[CSV_FIELD_LOOKUP][0]].column]
            : reader->lookup_column;
    if (*value && (*n = area_lookup_find (reader->lookup, value, parts)) > 0)
        return PLACED_BY_LOOKUP;
    const char *postcode = reader->postcodes ? field_text (st, CSV_FIELD_POSTCODE) : "";
    if (*postcode && (*n = area_lookup_find (reader->postcodes, postcode, parts)) > 0)
        return PLACED_BY_POSTCODE;

    char quoted[QUOTED_TEXT_LEN];
    size_t used = 0;
    quoted_text_append (reason, reason_len, &used, "no neighbourhood");
    const char *sep = ": ";
    if (st->field_parts[CSV_FIELD_NEIGHBOURHOOD]) {
        char why[CSV_READER_REASON_LEN];
        empty_reason (st, CSV_FIELD_NEIGHBOURHOOD, 0, why, sizeof why);
        quoted_text_append (reason, reason_len, &used, "%s%s", sep, why);
        sep = "; ";
    }
    if (st->field_parts[CSV_FIELD_LOOKUP]) {
        if (*value) {
            char name[QUOTED_TEXT_LEN];
            quoted_text_append (reason, reason_len, &used, "%s%s %s is not in the lookup", sep,
                                bounded_name (lookup_name, name, sizeof name),
                                quoted_text (value, quoted, sizeof quoted));
            if (st->summary && export_summary_add_unplaced (st->summary, lookup_name, value))
                file_error (st, "out of memory summarising unplaced rows");
        }
        else
            quoted_text_append (reason, reason_len, &used, "%s%s is empty", sep,
                                bounded_name (lookup_name, quoted, sizeof quoted));
        sep = "; ";
    }
    if (reader->postcodes && st->field_parts[CSV_FIELD_POSTCODE]) {
        if (*postcode) {
            quoted_text_append (reason, reason_len, &used,
                                "%spostcode %s is not in the postcode lookup", sep,
                                quoted_text (postcode, quoted, sizeof quoted));
            if (st->summary && export_summary_add_unplaced (st->summary, "postcode", postcode))
                file_error (st, "out of memory summarising unplaced rows");
        }
        else
            quoted_text_append (reason, reason_len, &used, "%spostcode is empty", sep);
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
count_shape (read_state_t *st, bool short_row, bool long_row)
{
    if (short_row)
        st->stats.short_rows++;
    else if (long_row)
        st->stats.long_rows++;
}

/* Adds a row's amount to the sums a totals row is checked against. */
static void
sum_amount (read_state_t *st, int64_t pence)
{
    if (!st->rows_sum_overflow && __builtin_add_overflow (st->rows_sum, pence, &st->rows_sum))
        st->rows_sum_overflow = true;
    if (!st->since_sum_overflow && __builtin_add_overflow (st->since_sum, pence, &st->since_sum))
        st->since_sum_overflow = true;
    st->rows_summed++;
    st->since_rows++;
}

/* A row with neither id nor date but an amount may be the file's own total: kept aside until the
 * end of the file (keep_candidate). True when it was kept. */
static bool
keep_candidate (read_state_t *st, const row_t *row, csv_field_t field, const char *reason)
{
    bool id_empty = true;
    for (size_t p = 0; p < st->field_parts[CSV_FIELD_RECORD_ID]; p++)
        id_empty &= !*part_text (st, CSV_FIELD_RECORD_ID, p);
    if (!row->amount_read || !id_empty || *field_text (st, CSV_FIELD_PERIOD) ||
        st->n_candidates == MAX_TOTALS_CANDIDATES)
        return false;
    totals_candidate_t *c = &st->candidates[st->n_candidates++];
    *c = (totals_candidate_t){.line = st->row_line,
                              .amount = row->draft.amount_pence,
                              .rows_sum = st->since_sum,
                              .rows_sum_overflow = st->since_sum_overflow,
                              .rows_since = st->since_rows,
                              .field = field,
                              .short_row =
                                  st->cells<st->n_headers, .long_row = st->cells> st->n_headers &&
                                  !st->extra_column};
    snprintf (c->reason, sizeof c->reason, "%s", reason);
    st->since_sum = 0;
    st->since_sum_overflow = false;
    st->since_rows = 0;
    return true;
}

/* Once the file is read: each kept row is the file's total (of every other row, or of the rows
 * since the previous kept row), or rejected with the reason it had. */
static void
settle_candidates (read_state_t *st)
{
    for (size_t i = 0; i < st->n_candidates && !st->stop; i++) {
        const totals_candidate_t *c = &st->candidates[i];
        bool of_file = !st->rows_sum_overflow && st->rows_summed > 0 && c->amount == st->rows_sum;
        bool of_rows = !c->rows_sum_overflow && c->rows_since > 0 && c->amount == c->rows_sum;
        if (of_file || of_rows) {
            st->stats.totals_rows++;
            char pounds[48], text[CSV_READER_REASON_LEN];
            int64_t whole = c->amount / 100, pence = c->amount % 100;
            snprintf (pounds, sizeof pounds, "%s%lld.%02lld", c->amount < 0 ? "-" : "",
                      (long long)(whole < 0 ? -whole : whole),
                      (long long)(pence < 0 ? -pence : pence));
            snprintf (text, sizeof text,
                      "the file's own totals row (%s, the sum of the %llu %s rows): skipped",
                      pounds, (unsigned long long)(of_file ? st->rows_summed : c->rows_since),
                      of_file ? "other" : "previous");
            warn (st, EXPORT_WARN_TOTALS_ROW, c->line, text);
            continue;
        }
        st->stats.rows++;
        count_shape (st, c->short_row, c->long_row);
        if (st->summary)
            export_summary_add_amount (st->summary, c->amount, false);
        reject_at (st, c->line, c->field, c->reason);
    }
}

static void
finish_data_row (read_state_t *st)
{
    if (st->replaced_cells) {
        /* Whatever becomes of the row, a person should know its text was not all readable. */
        st->stats.replaced_rows++;
        warn (st, EXPORT_WARN_REPLACED_BYTES, st->row_line, st->replaced);
        if (st->stop)
            return;
    }
    row_t row = {.draft = TOTALPLACE__SPENDING_RECORD__INIT};
    char reason[CSV_READER_REASON_LEN], problem[CSV_READER_REASON_LEN];
    /* The amount first: the file's total counts every row with one, whatever else is wrong. */
    const char *amount = field_text (st, CSV_FIELD_AMOUNT);
    row.amount_read = *amount && money_parse_pence (amount, &row.draft.amount_pence, problem,
                                                    sizeof problem) == 0;
    csv_field_t field;
    if (build_row (st, &row, &field, reason, sizeof reason) != 0) {
        if (keep_candidate (st, &row, field, reason))
            return;
        st->stats.rows++;
        count_shape (st, st->cells<st->n_headers, st->cells> st->n_headers && !st->extra_column);
        if (row.amount_read) {
            sum_amount (st, row.draft.amount_pence);
            if (st->summary)
                export_summary_add_amount (st->summary, row.draft.amount_pence, false);
        }
        reject (st, field, reason);
        return;
    }
    st->stats.rows++;
    count_shape (st, st->cells<st->n_headers, st->cells> st->n_headers && !st->extra_column);
    sum_amount (st, row.draft.amount_pence);
    bool accepted = false;
    /* After every check that does not depend on the row's content alone (revision, withdrawn), so
     * that identical rows always number the same way; before placing, so that a row a lookup
     * cannot place still takes its number and a later lookup change cannot shift the others. */
    if (csv_spec_is_none (st->reader->specs[CSV_FIELD_RECORD_ID])) {
        if (derive_id (st, &row) != 0)
            return;
    }
    else {
        int checked = check_given_id (st, &row);
        if (checked < 0)
            return;
        if (checked > 0)
            goto counted;
    }
    const area_part_t *parts = NULL;
    area_part_t single;
    size_t n = 0;
    placed_t placed = place (st, &parts, &n, &single, reason, sizeof reason);
    if (st->stop)
        return;
    if (placed == PLACED_NOWHERE) {
        reject (st, CSV_FIELD_NEIGHBOURHOOD, reason);
        goto counted;
    }
    int rc = build_records (st, &row, parts, n, reason, sizeof reason);
    if (rc == -1)
        reject (st, field_of_reason (reason), reason);
    if (rc != 0)
        goto counted;
    accepted = true;
    if (placed == PLACED_BY_COLUMN)
        st->stats.by_column++;
    else if (placed == PLACED_BY_LOOKUP)
        st->stats.by_lookup++;
    else
        st->stats.by_postcode++;
    if (n > 1)
        st->stats.apportioned++;
    if (st->summary)
        export_summary_add_date (st->summary, row.date);
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
counted:
    if (st->summary)
        export_summary_add_amount (st->summary, row.draft.amount_pence, accepted);
}

/* ---------------------------------------------------------------- the parser's callbacks */

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
    size_t replaced = 0;
    const char *text = text_encoding_convert (st->converter, data, len, &len, &replaced);
    char *name = text ? strndup (text, len) : NULL;
    if (!name) {
        file_error (st, "out of memory reading the header");
        return;
    }
    char *trimmed = trim (name);
    memmove (name, trimmed, strlen (trimmed) + 1);
    st->headers[st->n_headers++] = name;
}

/* Adds a cell whose bytes the encoding could not all read to the row's warning, quoting what the
 * file had and what is kept: `column 4 "Supplier Name": "ACME\x81" read as "ACME\uFFFD"`. */
static void
note_replaced (read_state_t *st, size_t column, const char *raw, size_t raw_len,
               const char *converted, size_t converted_len, size_t replaced)
{
    if (st->replaced_cells++ >= MAX_REPLACED_CELLS)
        return;
    char *raw_text = strndup (raw, raw_len), *kept = strndup (converted, converted_len);
    char header[QUOTED_TEXT_LEN], before[QUOTED_TEXT_LEN], after[QUOTED_TEXT_LEN];
    if (raw_text && kept)
        quoted_text_append (st->replaced, sizeof st->replaced, &st->replaced_used,
                            "%scolumn %zu %s: %s has %zu %s that %s not %s, read as %s",
                            st->replaced_cells > 1 ? "; " : "", column + 1,
                            quoted_text (st->headers[column], header, sizeof header),
                            quoted_text (raw_text, before, sizeof before), replaced,
                            replaced == 1 ? "byte" : "bytes", replaced == 1 ? "is" : "are",
                            text_encoding_name (st->encoding),
                            quoted_text (kept, after, sizeof after));
    free (raw_text);
    free (kept);
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
    if (!st->slots[slot].raw) {
        size_t replaced = 0, raw_len = len;
        const char *converted = text_encoding_convert (st->converter, text, len, &len, &replaced);
        if (!converted) {
            file_error (st, "line %zu: out of memory converting a cell", st->row_line);
            return;
        }
        if (replaced)
            note_replaced (st, column, text, raw_len, converted, len, replaced);
        text = converted;
    }
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
        reject (st, CSV_FIELD_COUNT, reason);
        clear_row (st);
    }
    if (!st->stop && !st->have_header)
        file_error (st, "no header row (the file is empty)");
    if (!st->stop)
        settle_candidates (st);
}

/* Settles the encoding to read the stream in: the configured one, or for TEXT_ENCODING_AUTO UTF-8
 * when the whole stream is valid UTF-8 and Windows-1252 otherwise, which takes a first pass over
 * the stream and a rewind. Opens the converter and tells the summary. Returns 0, or -1 after a
 * file-level error. */
static int
choose_encoding (read_state_t *st, FILE *stream)
{
    text_encoding_t setting = st->reader->encoding;
    char why[256] = "";
    text_encoding_scan_t scan;
    if (setting == TEXT_ENCODING_AUTO) {
        unsigned char *chunk = malloc (CHUNK_SIZE);
        if (!chunk) {
            file_error (st, "out of memory");
            return -1;
        }
        text_encoding_scan_init (&scan);
        size_t n;
        errno = 0;
        while ((n = fread (chunk, 1, CHUNK_SIZE, stream)) > 0 &&
               text_encoding_scan (&scan, chunk, n))
            ;
        int read_errno = errno;
        free (chunk);
        if (ferror (stream)) {
            file_error (st, "read failed: %s", strerror (read_errno));
            return -1;
        }
        text_encoding_scan_end (&scan);
        if (fseeko (stream, 0, SEEK_SET) != 0) {
            file_error (st,
                        "cannot read the file a second time to tell its encoding (%s); set "
                        "input/encoding to utf-8, windows-1252 or iso-8859-1",
                        strerror (errno));
            return -1;
        }
        clearerr (stream);
        if (scan.valid)
            snprintf (why, sizeof why, "input/encoding = auto and the whole file is valid UTF-8");
        else
            snprintf (why, sizeof why,
                      "input/encoding = auto and the file is not valid UTF-8 (byte 0x%02X at "
                      "offset %llu), so it is read as Windows-1252",
                      scan.bad_byte, (unsigned long long)scan.bad_offset);
    }
    st->encoding = text_encoding_resolve (setting, setting == TEXT_ENCODING_AUTO ? &scan : NULL);
    char problem[256];
    st->converter = text_encoding_converter_new (st->encoding, problem, sizeof problem);
    if (!st->converter) {
        file_error (st, "cannot read %s: %s", text_encoding_name (st->encoding), problem);
        return -1;
    }
    if (st->summary &&
        export_summary_set_encoding (st->summary, text_encoding_name (st->encoding), why)) {
        file_error (st, "out of memory");
        return -1;
    }
    return 0;
}

int
csv_reader_read_stream (csv_reader_t *self, FILE *stream, const char *name,
                        csv_record_fn *on_record, csv_reject_fn *on_reject, void *arg,
                        csv_reader_stats_t *stats, export_summary_t *summary, char *err,
                        size_t err_len)
{
    read_state_t st = {
        .reader = self,
        .name = name ? name : "(stream)",
        .on_record = on_record,
        .on_reject = on_reject,
        .arg = arg,
        .summary = summary,
        .line = 1,
        .err = err,
        .err_len = err_len,
    };
    if (err && err_len)
        err[0] = '\0';
    for (int f = 0; f < CSV_FIELD_COUNT; f++)
        for (size_t p = 0; p < CSV_LAYOUT_MAX_PARTS; p++)
            st.field_slots[f][p] = -1;
    size_t max_parts = self->max_parts;
    bool derive = csv_spec_is_none (self->specs[CSV_FIELD_RECORD_ID]);
    st.out = malloc ((max_parts + 1) * sizeof *st.out);
    st.amounts = malloc (max_parts * sizeof *st.amounts);
    st.weights = malloc (max_parts * sizeof *st.weights);
    if (!st.out || !st.amounts || !st.weights)
        file_error (&st, "out of memory");
    else if (choose_encoding (&st, stream) != 0)
        ; /* a file-level error has been set */
    else if (!(st.ids = record_ids_new ()))
        file_error (&st, "cannot start hashing rows (out of memory or no libsodium)");
    else if (!derive && self->repeated_ids == CSV_REPEATED_IDS_HOLD &&
             !(st.repeats = id_repeats_new ()))
        file_error (&st, "cannot start checking repeated ids (out of memory or no libsodium)");
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
    id_repeats_destroy (&st.repeats);
    text_encoding_converter_destroy (&st.converter);
    if (summary) {
        export_summary_set_stats (summary, &st.stats);
        if (st.layout)
            export_summary_take_layout (summary, &st.layout);
    }
    csv_layout_destroy (&st.layout);
    if (stats)
        *stats = st.stats;
    return st.rc;
}

int
csv_reader_read_file (csv_reader_t *self, const char *path, csv_record_fn *on_record,
                      csv_reject_fn *on_reject, void *arg, csv_reader_stats_t *stats,
                      export_summary_t *summary, char *err, size_t err_len)
{
    FILE *stream = fopen (path, "rb");
    if (!stream) {
        int saved = errno;
        if (stats)
            memset (stats, 0, sizeof *stats);
        fail (err, err_len, "cannot open %s: %s", path, strerror (saved));
        if (summary) {
            char message[4096 + 256];
            snprintf (message, sizeof message, "cannot open %s: %s", path, strerror (saved));
            export_summary_set_failure (summary, message);
        }
        return -1;
    }
    int rc = csv_reader_read_stream (self, stream, path, on_record, on_reject, arg, stats, summary,
                                     err, err_len);
    fclose (stream);
    return rc;
}
