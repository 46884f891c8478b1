/* places: the places file, read with libcsv and checked whole before it is used. */
#include "places.h"

#include <csv.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "err_text.h"
#include "quoted_text.h"
#include "wire.h"

#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

/* A cell longer than any valid value is refused by its own check; cut here to bound memory. */
#define MAX_CELL 1024u

enum { COL_PLACE, COL_NEIGHBOURHOOD, COL_POPULATION, COLUMNS };
static const char *const column_names[COLUMNS] = {"place", "neighbourhood", "population"};

/* One row of the file. */
typedef struct {
    char *name, *code;
    int64_t population; /* -1: not given */
    size_t line;
} member_t;

struct _places_t {
    char *path;
    member_t *members; /* sorted by name, then code */
    size_t member_count;
    places_place_t *places; /* in name order */
    const char **codes;     /* every place's neighbourhoods, in place order */
    size_t count;
    member_t **by_code; /* the members sorted by code, for populations */
};

/* The parse in progress. */
typedef struct {
    const char *path;
    char *err;
    size_t err_len;
    bool stop;
    size_t line, row_line;
    bool row_started, last_was_cr, header_done;
    size_t cells, columns;
    char cell[COLUMNS][MAX_CELL + 1];
    bool present[COLUMNS];
    member_t *members;
    size_t count, capacity;
} parse_t;

static void parse_error (parse_t *p, size_t line, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
parse_error (parse_t *p, size_t line, const char *format, ...)
{
    if (p->stop)
        return;
    p->stop = true;
    char why[512];
    va_list args;
    va_start (args, format);
    vsnprintf (why, sizeof why, format, args);
    va_end (args);
    fail (p->err, p->err_len, "%s:%zu: %s", p->path, line, why);
}

/* Line breaks inside a quoted cell: CRLF, LF and a lone CR each count once. */
static size_t
breaks_in (const char *text, size_t len)
{
    size_t breaks = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' || (text[i] == '\r' && (i + 1 == len || text[i + 1] != '\n')))
            breaks++;
    return breaks;
}

/* Blanks around a cell are a spreadsheet's, not the value's. */
static void
trim (char *text)
{
    size_t start = 0, len = strlen (text);
    while (start < len && (text[start] == ' ' || text[start] == '\t'))
        start++;
    while (len > start && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    memmove (text, text + start, len - start);
    text[len - start] = '\0';
}

static void
on_cell (void *data, size_t len, void *arg)
{
    parse_t *p = arg;
    if (p->stop)
        return;
    if (!p->row_started) {
        p->row_started = true;
        p->row_line = p->line;
    }
    size_t column = p->cells++;
    p->line += breaks_in (data, len);
    if (memchr (data, '\0', len)) {
        parse_error (p, p->row_line, "column %zu contains a NUL byte", column + 1);
        return;
    }
    if (!p->header_done && column >= COLUMNS) {
        parse_error (p, p->row_line,
                     "field header: the header must be place,neighbourhood or "
                     "place,neighbourhood,population");
        return;
    }
    if (p->header_done && column >= p->columns) {
        if (len)
            parse_error (p, p->row_line, "column %zu is beyond the header's %s", column + 1,
                         p->columns == 2 ? "place,neighbourhood"
                                         : "place,neighbourhood,population");
        return;
    }
    size_t keep = len < MAX_CELL ? len : MAX_CELL;
    memcpy (p->cell[column], data, keep);
    p->cell[column][keep] = '\0';
    trim (p->cell[column]);
    p->present[column] = true;
}

static void
take_header (parse_t *p)
{
    p->columns = p->cells;
    bool good = p->cells >= 2 && p->cells <= COLUMNS;
    for (size_t c = 0; good && c < p->cells; c++)
        good = strcasecmp (p->cell[c], column_names[c]) == 0;
    if (!good)
        parse_error (p, p->row_line,
                     "field header: the header must be place,neighbourhood or "
                     "place,neighbourhood,population");
    p->header_done = true;
}

static int
parse_population (const char *text, int64_t *population)
{
    if (!*text)
        return -1;
    int64_t value = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        value = value * 10 + (*c - '0');
        if (value > PLACES_MAX_POPULATION)
            return -1;
    }
    *population = value;
    return 0;
}

static void
take_member (parse_t *p)
{
    char reason[WIRE_REASON_LEN], quoted[QUOTED_TEXT_LEN];
    const char *name = p->present[COL_PLACE] ? p->cell[COL_PLACE] : "";
    const char *code = p->present[COL_NEIGHBOURHOOD] ? p->cell[COL_NEIGHBOURHOOD] : "";
    const char *population = p->present[COL_POPULATION] ? p->cell[COL_POPULATION] : "";
    if (!*name) {
        parse_error (p, p->row_line, "field place: the place's name is empty");
        return;
    }
    if (wire_check_text ("place", name, PLACES_MAX_NAME, true, reason, sizeof reason)) {
        parse_error (p, p->row_line, "field %s", reason);
        return;
    }
    if (!*code) {
        parse_error (p, p->row_line, "field neighbourhood: the neighbourhood code is empty");
        return;
    }
    if (wire_check_identifier ("neighbourhood", code, WIRE_MAX_NEIGHBOURHOOD, reason,
                               sizeof reason)) {
        parse_error (p, p->row_line, "field %s", reason);
        return;
    }
    member_t member = {.population = -1, .line = p->row_line};
    if (*population && parse_population (population, &member.population)) {
        parse_error (p, p->row_line,
                     "field population: %s is not a whole number from 0 to %" PRId64,
                     quoted_text (population, quoted, sizeof quoted), PLACES_MAX_POPULATION);
        return;
    }
    if (p->count == p->capacity) {
        size_t capacity = p->capacity ? p->capacity * 2 : 64;
        member_t *members = realloc (p->members, capacity * sizeof *members);
        if (!members) {
            parse_error (p, p->row_line, "out of memory");
            return;
        }
        p->members = members;
        p->capacity = capacity;
    }
    member.name = strdup (name);
    member.code = strdup (code);
    if (!member.name || !member.code) {
        free (member.name);
        free (member.code);
        parse_error (p, p->row_line, "out of memory");
        return;
    }
    p->members[p->count++] = member;
}

static void
on_row_end (int c, void *arg)
{
    parse_t *p = arg;
    if (p->stop)
        return;
    /* CRLF ends one row: libcsv reports the LF as a row of its own. */
    if (!p->row_started && c == '\n' && p->last_was_cr) {
        p->last_was_cr = false;
        return;
    }
    bool blank = true;
    for (size_t i = 0; i < COLUMNS && i < p->cells; i++)
        if (p->present[i] && p->cell[i][0])
            blank = false;
    if (p->row_started && !blank) {
        if (!p->header_done)
            take_header (p);
        else
            take_member (p);
    }
    p->row_started = false;
    p->cells = 0;
    for (size_t i = 0; i < COLUMNS; i++)
        p->present[i] = false;
    p->last_was_cr = c == '\r';
    if (c == '\r' || c == '\n')
        p->line++;
}

static int
compare_members (const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    int c = strcmp (x->name, y->name);
    return c ? c : strcmp (x->code, y->code);
}

static int
compare_codes (const void *a, const void *b)
{
    const member_t *x = *(member_t *const *)a, *y = *(member_t *const *)b;
    int c = strcmp (x->code, y->code);
    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* The whole file in memory (it is small: PLACES_MAX_FILE_BYTES at most). */
static char *
read_whole (const char *path, size_t *size, char *err, size_t err_len)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        fail (err, err_len, "%s: cannot open the places file: %s", path, strerror (errno));
        return NULL;
    }
    struct stat info;
    char *data = NULL;
    if (fstat (fileno (file), &info) != 0 || !S_ISREG (info.st_mode))
        fail (err, err_len, "%s: not a regular file", path);
    else if ((uint64_t)info.st_size > PLACES_MAX_FILE_BYTES)
        fail (err, err_len, "%s: %lld bytes, over the places file limit of %u", path,
              (long long)info.st_size, PLACES_MAX_FILE_BYTES);
    else if (!(data = malloc ((size_t)info.st_size + 1)))
        fail (err, err_len, "%s: out of memory", path);
    else if ((*size = fread (data, 1, (size_t)info.st_size, file)) != (size_t)info.st_size ||
             ferror (file)) {
        fail (err, err_len, "%s: read failed: %s", path, strerror (errno));
        free (data);
        data = NULL;
    }
    fclose (file);
    return data;
}

/* Parses the file into p->members; false with p->err set on the first error. */
static bool
parse (parse_t *p, const char *data, size_t size)
{
    if (size >= 2 && ((unsigned char)data[0] == 0xFF || (unsigned char)data[0] == 0xFE)) {
        parse_error (p, 1, "the file is UTF-16; save it as CSV in UTF-8");
        return false;
    }
    if (size >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        size -= 3;
    }
    struct csv_parser parser;
    if (csv_init (&parser, CSV_REPALL_NL) != 0) {
        parse_error (p, 1, "out of memory");
        return false;
    }
    if (csv_parse (&parser, data, size, on_cell, on_row_end, p) != size && !p->stop)
        parse_error (p, p->line, "%s", csv_strerror (csv_error (&parser)));
    csv_set_opts (&parser, CSV_REPALL_NL | CSV_STRICT | CSV_STRICT_FINI);
    if (!p->stop && csv_fini (&parser, on_cell, on_row_end, p) != 0 && !p->stop)
        parse_error (p, p->row_started ? p->row_line : p->line, "a quoted cell is never closed");
    csv_free (&parser);
    if (!p->stop && !p->header_done)
        parse_error (p, 1, "field header: no header row (the file is empty)");
    if (!p->stop && p->count == 0)
        parse_error (p, p->line, "no place in the file (only its header)");
    return !p->stop;
}

/* Duplicates and conflicting populations, then the places built from the sorted rows. */
static int
build (places_t *self, char *err, size_t err_len)
{
    member_t *m = self->members;
    size_t n = self->member_count;
    qsort (m, n, sizeof *m, compare_members);
    for (size_t i = 1; i < n; i++)
        if (compare_members (&m[i - 1], &m[i]) == 0) {
            size_t first = m[i - 1].line < m[i].line ? m[i - 1].line : m[i].line;
            size_t again = m[i - 1].line < m[i].line ? m[i].line : m[i - 1].line;
            return fail (err, err_len,
                         "%s:%zu: field neighbourhood: %s is in place \"%s\" again (first at line "
                         "%zu)",
                         self->path, again, m[i].code, m[i].name, first);
        }
    self->by_code = malloc ((n ? n : 1) * sizeof *self->by_code);
    self->codes = malloc ((n ? n : 1) * sizeof *self->codes);
    self->places = malloc ((n ? n : 1) * sizeof *self->places);
    if (!self->by_code || !self->codes || !self->places)
        return fail (err, err_len, "%s: out of memory", self->path);
    for (size_t i = 0; i < n; i++)
        self->by_code[i] = &m[i];
    qsort (self->by_code, n, sizeof *self->by_code, compare_codes);
    /* Within one code the rows are in line order: the first population given is the one to
     * compare the later ones with. */
    for (size_t i = 0, given = 0; i < n; i++) {
        if (i == 0 || strcmp (self->by_code[i - 1]->code, self->by_code[i]->code) != 0)
            given = i;
        const member_t *first = self->by_code[given], *row = self->by_code[i];
        if (first->population < 0) {
            given = i;
            continue;
        }
        if (row->population >= 0 && row->population != first->population)
            return fail (err, err_len,
                         "%s:%zu: field population: neighbourhood %s has population %" PRId64
                         " here and %" PRId64 " at line %zu",
                         self->path, row->line, row->code, row->population, first->population,
                         first->line);
    }
    for (size_t i = 0; i < n; i++) {
        self->codes[i] = m[i].code;
        if (i == 0 || strcmp (m[i - 1].name, m[i].name) != 0) {
            self->places[self->count++] = (places_place_t){m[i].name, &self->codes[i], 0, 0, 0};
        }
        places_place_t *place = &self->places[self->count - 1];
        place->count++;
        int64_t population;
        if (places_population (self, m[i].code, &population))
            place->residents += population; /* at most PLACES_MAX_MEMBERS * 10^8: no overflow */
        else
            place->unpopulated++;
        if (place->count > PLACES_MAX_MEMBERS)
            return fail (err, err_len,
                         "%s:%zu: field neighbourhood: place \"%s\" has more than %u "
                         "neighbourhoods",
                         self->path, m[i].line, place->name, PLACES_MAX_MEMBERS);
    }
    return 0;
}

places_t *
places_new (const char *path, char *err, size_t err_len)
{
    size_t size = 0;
    char *data = read_whole (path, &size, err, err_len);
    if (!data)
        return NULL;
    parse_t *p = calloc (1, sizeof *p);
    places_t *self = calloc (1, sizeof *self);
    if (!p || !self || !(self->path = strdup (path))) {
        fail (err, err_len, "%s: out of memory", path);
        goto error;
    }
    *p = (parse_t){.path = path, .err = err, .err_len = err_len, .line = 1};
    bool parsed = parse (p, data, size);
    self->members = p->members;
    self->member_count = p->count;
    if (!parsed || build (self, err, err_len))
        goto error;
    free (p);
    free (data);
    return self;
error:
    if (p && !self) {
        for (size_t i = 0; i < p->count; i++) {
            free (p->members[i].name);
            free (p->members[i].code);
        }
        free (p->members);
    }
    free (p);
    free (data);
    places_destroy (&self);
    return NULL;
}

void
places_destroy (places_t **self_p)
{
    places_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->member_count; i++) {
        free (self->members[i].name);
        free (self->members[i].code);
    }
    free (self->members);
    free (self->by_code);
    free (self->codes);
    free (self->places);
    free (self->path);
    free (self);
    *self_p = NULL;
}

const char *
places_path (const places_t *self)
{
    return self->path;
}

size_t
places_count (const places_t *self)
{
    return self->count;
}

const places_place_t *
places_at (const places_t *self, size_t index)
{
    return index < self->count ? &self->places[index] : NULL;
}

const places_place_t *
places_find (const places_t *self, const char *name)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        int c = strcmp (self->places[mid].name, name);
        if (c == 0)
            return &self->places[mid];
        if (c < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return NULL;
}

bool
places_population (const places_t *self, const char *neighbourhood, int64_t *population)
{
    size_t n = self->member_count, low = 0, high = n;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (strcmp (self->by_code[mid]->code, neighbourhood) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    for (size_t i = low; i < n && strcmp (self->by_code[i]->code, neighbourhood) == 0; i++)
        if (self->by_code[i]->population >= 0) {
            *population = self->by_code[i]->population;
            return true;
        }
    return false;
}
