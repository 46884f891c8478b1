/* report: typed rows kept in memory (a table needs every width before its first line), then
 * written as an aligned table, RFC 4180 CSV or a jansson JSON object. */
#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define CELL_TEXT_LEN 64 /* any non-text cell formatted, with room to spare */
#define COLUMN_GAP    2

typedef struct {
    report_type_t type;
    char *text;   /* REPORT_TEXT, owned */
    int64_t a, b; /* PENCE, INTEGER, BOOL, TIME: a; SHARE: part a of whole b */
    uint64_t u;   /* UNSIGNED */
} cell_t;

typedef struct {
    char *name;
    report_column_t *columns; /* titles and names owned */
    size_t column_count;
    bool single;
    cell_t *cells; /* row-major, rows * column_count once complete */
    size_t cell_count, cell_capacity;
    size_t rows;
} section_t;

typedef struct {
    char *name;
    char *value; /* NULL for JSON null */
} param_t;

struct _report_t {
    char *query;
    char *caption;
    param_t *params;
    size_t param_count;
    section_t *sections;
    size_t section_count;
    bool in_row; /* a row has been started in the last section */
    bool failed;
    char error[256];
};

/* ---------------------------------------------------------------- failures while building */

static void
set_failure (report_t *self, const char *format, ...)
{
    if (self->failed)
        return; /* the first failure is the one that explains the rest */
    self->failed = true;
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

static char *
copy_text (report_t *self, const char *text)
{
    char *copy = strdup (text ? text : "");
    if (!copy)
        set_failure (self, "out of memory");
    return copy;
}

/* ---------------------------------------------------------------- lifecycle */

report_t *
report_new (const char *query)
{
    report_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->query = strdup (query ? query : "");
    if (!self->query) {
        free (self);
        return NULL;
    }
    return self;
}

static void
section_clear (section_t *section)
{
    free (section->name);
    for (size_t i = 0; i < section->column_count; i++) {
        free ((char *)section->columns[i].title);
        free ((char *)section->columns[i].name);
    }
    free (section->columns);
    for (size_t i = 0; i < section->cell_count; i++)
        free (section->cells[i].text);
    free (section->cells);
}

void
report_destroy (report_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    report_t *self = *self_p;
    free (self->query);
    free (self->caption);
    for (size_t i = 0; i < self->param_count; i++) {
        free (self->params[i].name);
        free (self->params[i].value);
    }
    free (self->params);
    for (size_t i = 0; i < self->section_count; i++)
        section_clear (&self->sections[i]);
    free (self->sections);
    free (self);
    *self_p = NULL;
}

void
report_set_caption (report_t *self, const char *caption)
{
    free (self->caption);
    self->caption = copy_text (self, caption);
}

void
report_set_param (report_t *self, const char *name, const char *value)
{
    param_t *params = realloc (self->params, (self->param_count + 1) * sizeof *params);
    if (!params) {
        set_failure (self, "out of memory");
        return;
    }
    self->params = params;
    param_t *param = &params[self->param_count];
    param->name = copy_text (self, name);
    param->value = value ? copy_text (self, value) : NULL;
    self->param_count++;
}

/* ---------------------------------------------------------------- building rows */

static section_t *
current_section (report_t *self)
{
    return self->section_count ? &self->sections[self->section_count - 1] : NULL;
}

/* A started row must be complete before anything else happens to the report. */
static void
check_row_complete (report_t *self)
{
    section_t *section = current_section (self);
    if (self->in_row && section && section->cell_count != section->rows * section->column_count)
        set_failure (self, "a row of section \"%s\" has %zu of its %zu cells", section->name,
                     section->column_count -
                         (section->rows * section->column_count - section->cell_count),
                     section->column_count);
}

void
report_add_section (report_t *self, const char *name, const report_column_t *columns,
                    size_t column_count, bool single)
{
    check_row_complete (self);
    self->in_row = false;
    if (column_count == 0) {
        set_failure (self, "section \"%s\" has no columns", name ? name : "");
        return;
    }
    section_t *sections = realloc (self->sections, (self->section_count + 1) * sizeof *sections);
    if (!sections) {
        set_failure (self, "out of memory");
        return;
    }
    self->sections = sections;
    section_t *section = &sections[self->section_count];
    *section = (section_t){0};
    section->columns = calloc (column_count, sizeof *section->columns);
    if (!section->columns) {
        set_failure (self, "out of memory");
        return;
    }
    self->section_count++;
    section->name = copy_text (self, name);
    section->column_count = column_count;
    section->single = single;
    for (size_t i = 0; i < column_count; i++) {
        section->columns[i].title = copy_text (self, columns[i].title);
        section->columns[i].name = copy_text (self, columns[i].name);
        section->columns[i].type = columns[i].type;
    }
}

void
report_row (report_t *self)
{
    section_t *section = current_section (self);
    if (!section) {
        set_failure (self, "a row was started before any section");
        return;
    }
    check_row_complete (self);
    if (section->single && section->rows == 1) {
        set_failure (self, "section \"%s\" holds a single row", section->name);
        return;
    }
    self->in_row = true;
    section->rows++;
}

/* Appends a cell after checking it is expected and of its column's type. */
static cell_t *
add_cell (report_t *self, report_type_t type)
{
    section_t *section = current_section (self);
    if (self->failed)
        return NULL;
    if (!section || !self->in_row) {
        set_failure (self, "a cell was added outside a row");
        return NULL;
    }
    if (section->cell_count >= section->rows * section->column_count) {
        set_failure (self, "a row of section \"%s\" has more than its %zu cells", section->name,
                     section->column_count);
        return NULL;
    }
    const report_column_t *column = &section->columns[section->cell_count % section->column_count];
    if (column->type != type) {
        set_failure (self, "column \"%s\" of section \"%s\" got a value of another type",
                     column->title, section->name);
        return NULL;
    }
    if (section->cell_count == section->cell_capacity) {
        size_t capacity = section->cell_capacity ? section->cell_capacity * 2 : 64;
        cell_t *cells = realloc (section->cells, capacity * sizeof *cells);
        if (!cells) {
            set_failure (self, "out of memory");
            return NULL;
        }
        section->cells = cells;
        section->cell_capacity = capacity;
    }
    cell_t *cell = &section->cells[section->cell_count++];
    *cell = (cell_t){.type = type};
    return cell;
}

void
report_text (report_t *self, const char *text)
{
    cell_t *cell = add_cell (self, REPORT_TEXT);
    if (cell)
        cell->text = copy_text (self, text);
}

void
report_pence (report_t *self, int64_t pence)
{
    cell_t *cell = add_cell (self, REPORT_PENCE);
    if (cell)
        cell->a = pence;
}

void
report_integer (report_t *self, int64_t value)
{
    cell_t *cell = add_cell (self, REPORT_INTEGER);
    if (cell)
        cell->a = value;
}

void
report_unsigned (report_t *self, uint64_t value)
{
    cell_t *cell = add_cell (self, REPORT_UNSIGNED);
    if (cell)
        cell->u = value;
}

void
report_bool (report_t *self, bool value)
{
    cell_t *cell = add_cell (self, REPORT_BOOL);
    if (cell)
        cell->a = value;
}

void
report_share (report_t *self, int64_t part, int64_t whole)
{
    cell_t *cell = add_cell (self, REPORT_SHARE);
    if (cell) {
        cell->a = part;
        cell->b = whole;
    }
}

void
report_time (report_t *self, int64_t unix_seconds)
{
    cell_t *cell = add_cell (self, REPORT_TIME);
    if (cell)
        cell->a = unix_seconds;
}

void
report_amount_row (report_t *self, const char *key, int64_t amount_pence, int64_t records)
{
    report_row (self);
    report_text (self, key);
    report_pence (self, amount_pence);
    report_integer (self, records);
}

/* ---------------------------------------------------------------- formatting values */

int
report_format_parse (const char *name, report_format_t *format)
{
    static const struct {
        const char *name;
        report_format_t format;
    } formats[] = {{"table", REPORT_TABLE}, {"csv", REPORT_CSV}, {"json", REPORT_JSON}};
    for (size_t i = 0; name && i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp (name, formats[i].name) == 0) {
            *format = formats[i].format;
            return 0;
        }
    return -1;
}

/* |value| without the overflow that negating INT64_MIN would be. */
static uint64_t
magnitude (int64_t value)
{
    return value < 0 ? (uint64_t)(-(value + 1)) + 1u : (uint64_t)value;
}

/* Writes value's digits, with a comma between groups of three when grouped. Returns the length. */
static size_t
write_digits (uint64_t value, bool grouped, char *out)
{
    char reversed[32];
    size_t n = 0;
    do {
        if (grouped && n % 4 == 3)
            reversed[n++] = ',';
        reversed[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = reversed[n - 1 - i];
    out[n] = '\0';
    return n;
}

char *
report_pounds (int64_t pence, bool people, char *out, size_t out_len)
{
    uint64_t m = magnitude (pence);
    char pounds[32];
    write_digits (m / 100, people, pounds);
    snprintf (out, out_len, "%s%s%s.%02u", pence < 0 ? "-" : "", people ? "£" : "", pounds,
              (unsigned)(m % 100));
    return out;
}

static char *
format_integer (int64_t value, bool people, char *out, size_t out_len)
{
    char digits[32];
    write_digits (magnitude (value), people, digits);
    snprintf (out, out_len, "%s%s", value < 0 ? "-" : "", digits);
    return out;
}

int
report_share_permille (int64_t part, int64_t whole, int64_t *permille)
{
    if (whole <= 0)
        return -1;
    /* part * 1000 needs more than 64 bits for large totals; 128 bits hold it exactly. */
    __int128 scaled = (__int128)part * 1000;
    __int128 quotient = scaled / whole, remainder = scaled % whole;
    __int128 twice = remainder < 0 ? -2 * remainder : 2 * remainder;
    if (twice >= whole)
        quotient += scaled < 0 ? -1 : 1;
    if (quotient > INT64_MAX || quotient < INT64_MIN)
        return -1;
    *permille = (int64_t)quotient;
    return 0;
}

char *
report_share_text (int64_t part, int64_t whole, bool percent_sign, char *out, size_t out_len)
{
    int64_t permille;
    if (report_share_permille (part, whole, &permille)) {
        snprintf (out, out_len, "n/a");
        return out;
    }
    uint64_t m = magnitude (permille);
    snprintf (out, out_len, "%s%" PRIu64 ".%u%s", permille < 0 ? "-" : "", m / 10,
              (unsigned)(m % 10), percent_sign ? "%" : "");
    return out;
}

static char *
format_time (int64_t unix_seconds, char *out, size_t out_len)
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if ((int64_t)t != unix_seconds || !gmtime_r (&t, &tm) ||
        strftime (out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf (out, out_len, "%" PRId64, unix_seconds);
    return out;
}

/* The cell as text for a table (people) or CSV; points into buffer or at the cell's own text. */
static const char *
cell_text (const cell_t *cell, bool people, char buffer[CELL_TEXT_LEN])
{
    switch (cell->type) {
    case REPORT_TEXT:
        return cell->text ? cell->text : "";
    case REPORT_PENCE:
        return report_pounds (cell->a, people, buffer, CELL_TEXT_LEN);
    case REPORT_INTEGER:
        return format_integer (cell->a, people, buffer, CELL_TEXT_LEN);
    case REPORT_UNSIGNED:
        write_digits (cell->u, people, buffer);
        return buffer;
    case REPORT_BOOL:
        return cell->a ? "yes" : "no";
    case REPORT_SHARE:
        return report_share_text (cell->a, cell->b, people, buffer, CELL_TEXT_LEN);
    case REPORT_TIME:
        return format_time (cell->a, buffer, CELL_TEXT_LEN);
    }
    return "";
}

static bool
right_aligned (report_type_t type)
{
    return type == REPORT_PENCE || type == REPORT_INTEGER || type == REPORT_UNSIGNED ||
           type == REPORT_SHARE;
}

/* Columns a terminal gives the text: one per UTF-8 character ("£" is two bytes, one column). */
static size_t
display_width (const char *text)
{
    size_t width = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if ((*p & 0xC0) != 0x80)
            width++;
    return width;
}

/* ---------------------------------------------------------------- table */

static void
write_padding (FILE *out, size_t count)
{
    for (size_t i = 0; i < count; i++)
        fputc (' ', out);
}

static void
write_aligned (FILE *out, const char *text, size_t width, bool right, bool last)
{
    size_t pad = width - display_width (text);
    if (right)
        write_padding (out, pad);
    fputs (text, out);
    if (!right && !last)
        write_padding (out, pad); /* no trailing blanks at the end of a line */
}

static int
write_table_list (const section_t *section, FILE *out)
{
    size_t columns = section->column_count;
    size_t *widths = calloc (columns, sizeof *widths);
    if (!widths)
        return -1;
    char buffer[CELL_TEXT_LEN];
    for (size_t c = 0; c < columns; c++)
        widths[c] = display_width (section->columns[c].title);
    for (size_t i = 0; i < section->cell_count; i++) {
        size_t width = display_width (cell_text (&section->cells[i], true, buffer));
        if (width > widths[i % columns])
            widths[i % columns] = width;
    }
    for (size_t c = 0; c < columns; c++) {
        write_aligned (out, section->columns[c].title, widths[c],
                       right_aligned (section->columns[c].type), c + 1 == columns);
        if (c + 1 < columns)
            write_padding (out, COLUMN_GAP);
    }
    fputc ('\n', out);
    for (size_t c = 0; c < columns; c++) {
        for (size_t i = 0; i < widths[c]; i++)
            fputc ('-', out);
        if (c + 1 < columns)
            write_padding (out, COLUMN_GAP);
    }
    fputc ('\n', out);
    for (size_t i = 0; i < section->cell_count; i++) {
        size_t c = i % columns;
        write_aligned (out, cell_text (&section->cells[i], true, buffer), widths[c],
                       right_aligned (section->columns[c].type), c + 1 == columns);
        fputs (c + 1 == columns ? "\n" : "  ", out);
    }
    if (section->rows == 0)
        fputs ("(no rows)\n", out);
    free (widths);
    return 0;
}

/* One "title  value" line per column: a single record or a set of counters reads best down. */
static void
write_table_single (const section_t *section, FILE *out)
{
    size_t width = 0;
    for (size_t c = 0; c < section->column_count; c++) {
        size_t w = display_width (section->columns[c].title);
        if (w > width)
            width = w;
    }
    char buffer[CELL_TEXT_LEN];
    for (size_t c = 0; c < section->column_count && c < section->cell_count; c++) {
        const char *text = cell_text (&section->cells[c], true, buffer);
        write_aligned (out, section->columns[c].title, width, false, !*text);
        if (*text) {
            write_padding (out, COLUMN_GAP);
            fputs (text, out);
        }
        fputc ('\n', out);
    }
}

static int
write_table (const report_t *self, FILE *out)
{
    if (self->caption && *self->caption)
        fprintf (out, "%s\n\n", self->caption);
    for (size_t s = 0; s < self->section_count; s++) {
        const section_t *section = &self->sections[s];
        if (s > 0)
            fprintf (out, "\n%s\n", section->name);
        if (section->single)
            write_table_single (section, out);
        else if (write_table_list (section, out))
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- CSV */

int
report_csv_field (FILE *out, const char *text)
{
    size_t len = strlen (text);
    bool quote = len > 0 && (text[0] == ' ' || text[len - 1] == ' ');
    if (strpbrk (text, ",\"\r\n"))
        quote = true;
    if (!quote)
        return fputs (text, out) < 0 ? -1 : 0;
    if (fputc ('"', out) == EOF)
        return -1;
    for (const char *p = text; *p; p++)
        if ((*p == '"' && fputc ('"', out) == EOF) || fputc (*p, out) == EOF)
            return -1;
    return fputc ('"', out) == EOF ? -1 : 0;
}

static void
write_csv (const report_t *self, FILE *out)
{
    char buffer[CELL_TEXT_LEN];
    for (size_t s = 0; s < self->section_count; s++) {
        const section_t *section = &self->sections[s];
        if (s > 0)
            fputs ("\r\n", out);
        /* RFC 4180 lines end in CRLF; spreadsheets and csv readers accept both. */
        for (size_t c = 0; c < section->column_count; c++) {
            if (c)
                fputc (',', out);
            report_csv_field (out, section->columns[c].title);
        }
        fputs ("\r\n", out);
        for (size_t i = 0; i < section->cell_count; i++) {
            if (i % section->column_count)
                fputc (',', out);
            report_csv_field (out, cell_text (&section->cells[i], false, buffer));
            if ((i + 1) % section->column_count == 0)
                fputs ("\r\n", out);
        }
    }
}

/* ---------------------------------------------------------------- JSON */

/* Sets a member, taking the value; a NULL value means jansson refused the text. */
static int
json_set (json_t *object, const char *name, json_t *value, char *err, size_t err_len)
{
    if (!value || json_object_set_new (object, name, value)) {
        snprintf (err, err_len, "cannot write \"%s\" as JSON: text is not valid UTF-8", name);
        return -1;
    }
    return 0;
}

static json_t *
cell_json (const cell_t *cell)
{
    char buffer[CELL_TEXT_LEN];
    int64_t permille;
    switch (cell->type) {
    case REPORT_TEXT:
        return json_string (cell->text ? cell->text : "");
    case REPORT_PENCE:
    case REPORT_INTEGER:
        return json_integer ((json_int_t)cell->a);
    case REPORT_UNSIGNED:
        /* A JSON integer here is a signed 64-bit one; beyond it the exact digits go as text. */
        if (cell->u <= (uint64_t)INT64_MAX)
            return json_integer ((json_int_t)cell->u);
        write_digits (cell->u, false, buffer);
        return json_string (buffer);
    case REPORT_BOOL:
        return json_boolean (cell->a);
    case REPORT_SHARE:
        if (report_share_permille (cell->a, cell->b, &permille))
            return json_null ();
        return json_integer ((json_int_t)permille);
    case REPORT_TIME:
        return json_string (format_time (cell->a, buffer, sizeof buffer));
    }
    return json_null ();
}

static json_t *
section_json (const section_t *section, char *err, size_t err_len)
{
    json_t *rows = section->single ? NULL : json_array ();
    json_t *row = NULL;
    if (!section->single && !rows)
        goto oom;
    for (size_t i = 0; i < section->cell_count; i++) {
        size_t c = i % section->column_count;
        if (c == 0) {
            row = json_object ();
            if (!row)
                goto oom;
            if (rows && json_array_append_new (rows, row)) {
                row = NULL;
                goto oom;
            }
        }
        if (json_set (row, section->columns[c].name, cell_json (&section->cells[i]), err, err_len))
            goto fail;
    }
    if (section->single)
        return row ? row : json_null ();
    return rows;
oom:
    snprintf (err, err_len, "out of memory");
fail:
    if (section->single)
        json_decref (row);
    json_decref (rows);
    return NULL;
}

static int
write_json (const report_t *self, FILE *out, char *err, size_t err_len)
{
    json_t *root = json_object ();
    if (!root) {
        snprintf (err, err_len, "out of memory");
        return -1;
    }
    int rc = json_set (root, "query", json_string (self->query), err, err_len);
    for (size_t i = 0; rc == 0 && i < self->param_count; i++) {
        const param_t *param = &self->params[i];
        rc = json_set (root, param->name, param->value ? json_string (param->value) : json_null (),
                       err, err_len);
    }
    for (size_t s = 0; rc == 0 && s < self->section_count; s++) {
        json_t *value = section_json (&self->sections[s], err, err_len);
        rc = value ? json_set (root, self->sections[s].name, value, err, err_len) : -1;
    }
    if (rc == 0 && (json_dumpf (root, out, JSON_INDENT (2)) || fputc ('\n', out) == EOF)) {
        snprintf (err, err_len, "cannot write JSON output");
        rc = -1;
    }
    json_decref (root);
    return rc;
}

/* ---------------------------------------------------------------- writing */

int
report_write (report_t *self, report_format_t format, FILE *out, char *err, size_t err_len)
{
    check_row_complete (self);
    if (self->failed) {
        snprintf (err, err_len, "report \"%s\" is incomplete: %s", self->query, self->error);
        return REPORT_ERR;
    }
    int rc = 0;
    switch (format) {
    case REPORT_TABLE:
        rc = write_table (self, out);
        if (rc)
            snprintf (err, err_len, "out of memory");
        break;
    case REPORT_CSV:
        write_csv (self, out);
        break;
    case REPORT_JSON:
        rc = write_json (self, out, err, err_len);
        break;
    default:
        snprintf (err, err_len, "unknown output format %d", (int)format);
        return REPORT_ERR;
    }
    if (rc)
        return REPORT_ERR;
    /* Output to a pipe or a full disk fails late; flushing here makes that a reported error. */
    if (fflush (out) || ferror (out)) {
        snprintf (err, err_len, "cannot write the report: output error");
        return REPORT_ERR;
    }
    return 0;
}
