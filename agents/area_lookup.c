/* area_lookup: the file is read with libcsv into an arena of folded keys and codes, then sorted by
 * (key, code): a value's rows become one entry with its neighbourhoods in code order, duplicates
 * sit side by side, and a lookup is a binary search. The whole ONS Postcode Directory (2.7 million
 * postcodes) peaks at about 250 MB while loading and keeps 160 MB; a body's own area is a small
 * fraction of that. */
#include "area_lookup.h"
#include "line_breaks.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apportion.h"
#include "quoted_text.h"
#include "text_fold.h"
#include "wire.h"

/* A cell of a column the lookup uses longer than this is an error: no key, code or weight is. */
#define MAX_CELL   1024u
#define CHUNK_SIZE (64u * 1024u)
/* More header columns than this is not a lookup file (the ONS directory has about 50). */
#define MAX_COLUMNS 1024u

enum { KEY, CODE, WEIGHT, ROLES };

/* Key and code are offsets into the arena while the file is read (the arena moves as it grows),
 * then pointers once it is final. */
typedef union {
    size_t offset;
    const char *text;
} arena_ref_t;

typedef struct {
    arena_ref_t key, code;
    uint32_t weight;
    size_t line;
} row_t;

typedef struct {
    const char *key;
    size_t first; /* index of its first part */
    size_t n;
} entry_t;

struct _area_lookup_t {
    char *arena;
    entry_t *entries;
    size_t n_entries;
    area_part_t *parts;
    size_t max_parts;
    bool postcodes;
};

typedef struct {
    const char *path;
    const area_lookup_options_t *options;
    struct csv_parser parser;

    size_t line;
    bool last_was_cr, field_cr;
    bool row_started, row_nonempty;
    size_t row_line, cells;

    bool have_header;
    char **headers;
    size_t n_headers;
    int column[ROLES]; /* header column of each role, or -1 */
    char cell[ROLES][MAX_CELL + 1];
    bool present[ROLES];
    size_t too_long_column; /* 1-based, 0 when none */

    char *arena;
    size_t arena_len, arena_cap;
    row_t *rows;
    size_t n_rows, rows_cap;

    bool stop;
    char *err;
    size_t err_len;
} load_t;

static void load_error (load_t *ld, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
load_error (load_t *ld, const char *format, ...)
{
    if (ld->stop)
        return;
    ld->stop = true;
    if (!ld->err || !ld->err_len)
        return;
    int n = snprintf (ld->err, ld->err_len, "%s: ", ld->path);
    if (n >= 0 && (size_t)n < ld->err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (ld->err + n, ld->err_len - (size_t)n, format, args);
        va_end (args);
    }
}

static char *
trim (char *s)
{
    while (text_fold_is_space (*s))
        s++;
    size_t len = strlen (s);
    while (len > 0 && text_fold_is_space (s[len - 1]))
        len--;
    s[len] = '\0';
    return s;
}

/* Finds the column of a role from its comma-separated list of names: the first name present wins,
 * and a name heading two columns is ambiguous. Returns the column, -1 when none is present, or -2
 * after an error. */
static int
find_column (load_t *ld, const char *names, const char *role)
{
    const char *p = names;
    while (*p) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen (p);
        char name[MAX_CELL + 1];
        if (len > MAX_CELL)
            len = MAX_CELL;
        memcpy (name, p, len);
        name[len] = '\0';
        p += comma ? len + 1 : len;
        char *wanted = trim (name);
        if (!*wanted)
            continue;
        int found = -1;
        for (size_t c = 0; c < ld->n_headers; c++) {
            if (!text_fold_equal (ld->headers[c], wanted))
                continue;
            if (found >= 0) {
                load_error (ld, "line %zu: columns %d and %zu are both headed \"%s\" (the %s)",
                            ld->row_line, found + 1, c + 1, wanted, role);
                return -2;
            }
            found = (int)c;
        }
        if (found >= 0)
            return found;
    }
    return -1;
}

static void
take_header (load_t *ld)
{
    ld->have_header = true;
    const area_lookup_options_t *o = ld->options;
    const char *roles[ROLES] = {o->postcodes ? "postcode" : "value",
                                o->postcodes ? "area code" : "neighbourhood code", "weight"};
    const char *names[ROLES] = {o->key_columns, o->code_columns, o->weight_columns};
    for (int r = 0; r < ROLES; r++) {
        ld->column[r] = -1;
        if (!names[r] || !*names[r])
            continue;
        int column = find_column (ld, names[r], roles[r]);
        if (column == -2)
            return;
        if (column < 0 && r != WEIGHT) {
            load_error (ld, "line %zu: no %s column (looked for: %s)", ld->row_line, roles[r],
                        names[r]);
            return;
        }
        ld->column[r] = column;
    }
}

static char *
arena_add (load_t *ld, const char *text, size_t *offset)
{
    size_t len = strlen (text) + 1;
    if (ld->arena_len + len > ld->arena_cap) {
        size_t cap = ld->arena_cap ? ld->arena_cap * 2 : 4096;
        while (cap < ld->arena_len + len)
            cap *= 2;
        char *arena = realloc (ld->arena, cap);
        if (!arena)
            return NULL;
        ld->arena = arena;
        ld->arena_cap = cap;
    }
    *offset = ld->arena_len;
    memcpy (ld->arena + ld->arena_len, text, len);
    ld->arena_len += len;
    return ld->arena + *offset;
}

static int
parse_weight (const char *text, uint32_t *weight)
{
    if (!*text) {
        *weight = 1;
        return 0;
    }
    uint64_t value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || value > APPORTION_MAX_WEIGHT_TOTAL)
            return -1;
        value = value * 10 + (uint64_t)(*p - '0');
    }
    if (value == 0 || value > APPORTION_MAX_WEIGHT_TOTAL)
        return -1;
    *weight = (uint32_t)value;
    return 0;
}

static void
take_row (load_t *ld)
{
    if (ld->too_long_column) {
        load_error (ld, "line %zu: column %zu is over %u bytes", ld->row_line, ld->too_long_column,
                    MAX_CELL);
        return;
    }
    const bool postcodes = ld->options->postcodes;
    char *cells[ROLES];
    for (int r = 0; r < ROLES; r++)
        cells[r] = ld->present[r] ? trim (ld->cell[r]) : (char *)"";
    char quoted[QUOTED_TEXT_LEN];

    char key[AREA_LOOKUP_MAX_KEY + 1];
    size_t key_len = postcodes ? text_fold_postcode (cells[KEY], key, sizeof key)
                               : text_fold (cells[KEY], key, sizeof key);
    if (key_len == 0) {
        load_error (ld, "line %zu: the %s is empty", ld->row_line,
                    postcodes ? "postcode" : "value");
        return;
    }
    if (key_len > AREA_LOOKUP_MAX_KEY) {
        load_error (ld, "line %zu: %s is longer than %u bytes", ld->row_line,
                    quoted_text (cells[KEY], quoted, sizeof quoted), AREA_LOOKUP_MAX_KEY);
        return;
    }
    if (!*cells[CODE]) {
        if (postcodes)
            return; /* a postcode outside any LSOA (e.g. Channel Islands): nothing to place by */
        load_error (ld, "line %zu: %s has no neighbourhood code", ld->row_line,
                    quoted_text (cells[KEY], quoted, sizeof quoted));
        return;
    }
    char reason[WIRE_REASON_LEN];
    if (wire_check_identifier ("the neighbourhood code", cells[CODE], WIRE_MAX_NEIGHBOURHOOD,
                               reason, sizeof reason) != 0) {
        load_error (ld, "line %zu: %s", ld->row_line, reason);
        return;
    }
    uint32_t weight = 1;
    if (!postcodes && parse_weight (cells[WEIGHT], &weight) != 0) {
        load_error (ld, "line %zu: weight %s is not a whole number from 1 to %llu", ld->row_line,
                    quoted_text (cells[WEIGHT], quoted, sizeof quoted),
                    (unsigned long long)APPORTION_MAX_WEIGHT_TOTAL);
        return;
    }
    if (ld->n_rows == ld->rows_cap) {
        size_t cap = ld->rows_cap ? ld->rows_cap * 2 : 256;
        row_t *rows = realloc (ld->rows, cap * sizeof *rows);
        if (!rows) {
            load_error (ld, "out of memory at line %zu", ld->row_line);
            return;
        }
        ld->rows = rows;
        ld->rows_cap = cap;
    }
    row_t *row = &ld->rows[ld->n_rows];
    if (!arena_add (ld, key, &row->key.offset) || !arena_add (ld, cells[CODE], &row->code.offset)) {
        load_error (ld, "out of memory at line %zu", ld->row_line);
        return;
    }
    row->weight = weight;
    row->line = ld->row_line;
    ld->n_rows++;
}

static void
start_row (load_t *ld)
{
    if (!ld->row_started) {
        ld->row_started = true;
        ld->row_line = ld->line;
    }
}

static void
on_cell (void *data, size_t len, void *arg)
{
    load_t *ld = arg;
    if (ld->stop)
        return;
    start_row (ld);
    const char *text = data;
    size_t column = ld->cells++;
    ld->line += line_breaks_count (text, len, &ld->field_cr);
    ld->field_cr = false;
    for (size_t i = 0; i < len && !ld->row_nonempty; i++)
        ld->row_nonempty = !text_fold_is_space (text[i]);
    if (!ld->have_header) {
        if (column >= MAX_COLUMNS) {
            load_error (ld, "line %zu: the header has more than %u columns", ld->row_line,
                        MAX_COLUMNS);
            return;
        }
        char **headers = realloc (ld->headers, (ld->n_headers + 1) * sizeof *headers);
        char *name = strndup (text, len < MAX_CELL ? len : MAX_CELL);
        if (headers)
            ld->headers = headers;
        if (!headers || !name) {
            free (name);
            load_error (ld, "out of memory reading the header");
            return;
        }
        ld->headers[ld->n_headers++] = name;
        return;
    }
    for (int r = 0; r < ROLES; r++) {
        if (ld->column[r] != (int)column)
            continue;
        if (len > MAX_CELL) {
            if (!ld->too_long_column)
                ld->too_long_column = column + 1;
            continue;
        }
        if (memchr (text, '\0', len)) {
            load_error (ld, "line %zu: column %zu contains a NUL byte", ld->row_line, column + 1);
            return;
        }
        memcpy (ld->cell[r], text, len);
        ld->cell[r][len] = '\0';
        ld->present[r] = true;
    }
}

static void
clear_row (load_t *ld)
{
    ld->row_started = ld->row_nonempty = false;
    ld->cells = 0;
    ld->too_long_column = 0;
    for (int r = 0; r < ROLES; r++)
        ld->present[r] = false;
}

static void
on_row_end (int c, void *arg)
{
    load_t *ld = arg;
    if (ld->stop)
        return;
    if (!ld->row_started && c == '\n' && ld->last_was_cr) {
        ld->last_was_cr = false;
        return;
    }
    if (ld->row_started && ld->row_nonempty) {
        if (!ld->have_header)
            take_header (ld);
        else
            take_row (ld);
    }
    else if (!ld->have_header) {
        /* A blank row before the header: forget its cells. */
        for (size_t i = 0; i < ld->n_headers; i++)
            free (ld->headers[i]);
        ld->n_headers = 0;
    }
    clear_row (ld);
    ld->last_was_cr = c == '\r';
    if (c == '\r' || c == '\n')
        ld->line++;
}

static void
read_file (load_t *ld, FILE *file)
{
    unsigned char *chunk = malloc (CHUNK_SIZE);
    if (!chunk) {
        load_error (ld, "out of memory");
        return;
    }
    bool first = true;
    size_t n;
    while (!ld->stop && (n = fread (chunk, 1, CHUNK_SIZE, file)) > 0) {
        const unsigned char *data = chunk;
        if (first) {
            first = false;
            if (n >= 2 &&
                ((data[0] == 0xFF && data[1] == 0xFE) || (data[0] == 0xFE && data[1] == 0xFF))) {
                load_error (ld, "the file is UTF-16; save it as CSV in UTF-8");
                break;
            }
            if (n >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) {
                data += 3;
                n -= 3;
            }
        }
        if (csv_parse (&ld->parser, data, n, on_cell, on_row_end, ld) != n && !ld->stop)
            load_error (ld, "line %zu: %s", ld->line, csv_strerror (csv_error (&ld->parser)));
    }
    free (chunk);
    if (ld->stop)
        return;
    if (ferror (file)) {
        load_error (ld, "read failed: %s", strerror (errno));
        return;
    }
    csv_set_opts (&ld->parser, CSV_REPALL_NL | CSV_STRICT | CSV_STRICT_FINI);
    if (csv_fini (&ld->parser, on_cell, on_row_end, ld) != 0 && !ld->stop)
        load_error (ld, "line %zu: a quoted cell is never closed",
                    ld->row_started ? ld->row_line : ld->line);
    if (!ld->stop && !ld->have_header)
        load_error (ld, "no header row (the file is empty)");
}

static int
by_key_then_code (const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    int c = strcmp (x->key.text, y->key.text);
    if (c == 0)
        c = strcmp (x->code.text, y->code.text);
    if (c == 0)
        c = x->line < y->line ? -1 : (x->line > y->line ? 1 : 0);
    return c;
}

/* Groups the sorted rows into entries, checking duplicates and the bounds of each value. */
static area_lookup_t *
build (load_t *ld)
{
    const bool postcodes = ld->options->postcodes;
    area_lookup_t *self = calloc (1, sizeof *self);
    if (!self || (ld->n_rows && (!(self->entries = calloc (ld->n_rows, sizeof *self->entries)) ||
                                 !(self->parts = calloc (ld->n_rows, sizeof *self->parts))))) {
        load_error (ld, "out of memory");
        area_lookup_destroy (&self);
        return NULL;
    }
    self->postcodes = postcodes;
    char quoted[QUOTED_TEXT_LEN];
    size_t n_parts = 0;
    for (size_t i = 0; i < ld->n_rows;) {
        const char *key = ld->rows[i].key.text;
        entry_t *entry = &self->entries[self->n_entries++];
        *entry = (entry_t){.key = key, .first = n_parts};
        size_t first_line = ld->rows[i].line;
        uint64_t weights = 0;
        for (; i < ld->n_rows && strcmp (ld->rows[i].key.text, key) == 0; i++) {
            const row_t *row = &ld->rows[i];
            const char *code = row->code.text;
            if (row->line < first_line)
                first_line = row->line;
            if (entry->n > 0) {
                const area_part_t *last = &self->parts[n_parts - 1];
                if (strcmp (last->code, code) == 0) {
                    if (postcodes)
                        continue; /* the same postcode and area twice: harmless */
                    load_error (ld, "lines %zu and %zu both map %s to %s", ld->rows[i - 1].line,
                                row->line, quoted_text (key, quoted, sizeof quoted), code);
                    goto fail;
                }
                if (postcodes) {
                    load_error (ld, "postcode %s is on line %zu (%s) and line %zu (%s)",
                                quoted_text (key, quoted, sizeof quoted), ld->rows[i - 1].line,
                                last->code, row->line, code);
                    goto fail;
                }
            }
            self->parts[n_parts++] = (area_part_t){code, row->weight};
            entry->n++;
            weights += row->weight;
        }
        if (entry->n > ld->options->max_parts) {
            load_error (ld,
                        "%s (line %zu) maps to %zu neighbourhoods, more than the maximum of %zu "
                        "parts per row (neighbourhood/max_parts)",
                        quoted_text (key, quoted, sizeof quoted), first_line, entry->n,
                        ld->options->max_parts);
            goto fail;
        }
        if (weights > APPORTION_MAX_WEIGHT_TOTAL) {
            load_error (ld, "the weights of %s (line %zu) add up to %llu, over the limit of %llu",
                        quoted_text (key, quoted, sizeof quoted), first_line,
                        (unsigned long long)weights,
                        (unsigned long long)APPORTION_MAX_WEIGHT_TOTAL);
            goto fail;
        }
        if (entry->n > self->max_parts)
            self->max_parts = entry->n;
    }
    self->arena = ld->arena; /* keys and codes point into it */
    ld->arena = NULL;
    return self;
fail:
    area_lookup_destroy (&self);
    return NULL;
}

area_lookup_t *
area_lookup_load (const char *path, const area_lookup_options_t *options, char *err, size_t err_len)
{
    load_t ld = {.path = path, .options = options, .line = 1, .err = err, .err_len = err_len};
    if (err && err_len)
        err[0] = '\0';
    if (!options->key_columns || !*options->key_columns || !options->code_columns ||
        !*options->code_columns || options->max_parts < 1 ||
        options->max_parts > APPORTION_MAX_PARTS) {
        load_error (&ld, "the lookup's columns and maximum parts (1 to %u) must be given",
                    APPORTION_MAX_PARTS);
        return NULL;
    }
    FILE *file = fopen (path, "rb");
    if (!file) {
        load_error (&ld, "cannot open: %s", strerror (errno));
        return NULL;
    }
    area_lookup_t *self = NULL;
    if (csv_init (&ld.parser, CSV_REPALL_NL) != 0)
        load_error (&ld, "cannot start the CSV parser");
    else {
        read_file (&ld, file);
        csv_free (&ld.parser);
    }
    fclose (file);
    if (!ld.stop) {
        for (size_t i = 0; i < ld.n_rows; i++) {
            ld.rows[i].key.text = ld.arena + ld.rows[i].key.offset;
            ld.rows[i].code.text = ld.arena + ld.rows[i].code.offset;
        }
        if (ld.n_rows) /* qsort wants a valid pointer even for no rows */
            qsort (ld.rows, ld.n_rows, sizeof *ld.rows, by_key_then_code);
        self = build (&ld);
    }
    for (size_t i = 0; i < ld.n_headers; i++)
        free (ld.headers[i]);
    free (ld.headers);
    free (ld.rows);
    free (ld.arena);
    return self;
}

void
area_lookup_destroy (area_lookup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    area_lookup_t *self = *self_p;
    free (self->entries);
    free (self->parts);
    free (self->arena);
    free (self);
    *self_p = NULL;
}

static int
by_key (const void *key, const void *entry)
{
    return strcmp (key, ((const entry_t *)entry)->key);
}

size_t
area_lookup_find (const area_lookup_t *self, const char *text, const area_part_t **parts)
{
    char key[AREA_LOOKUP_MAX_KEY + 1];
    size_t len = self->postcodes ? text_fold_postcode (text, key, sizeof key)
                                 : text_fold (text, key, sizeof key);
    if (len == 0 || len > AREA_LOOKUP_MAX_KEY || self->n_entries == 0)
        return 0;
    const entry_t *entry =
        bsearch (key, self->entries, self->n_entries, sizeof *self->entries, by_key);
    if (!entry)
        return 0;
    *parts = &self->parts[entry->first];
    return entry->n;
}

size_t
area_lookup_size (const area_lookup_t *self)
{
    return self->n_entries;
}

size_t
area_lookup_max_parts (const area_lookup_t *self)
{
    return self->max_parts;
}
