/* report: formats the answer to a query (typed rows under titled columns) as a table for people,
 * CSV for spreadsheets or JSON for programs. It knows nothing of where the rows come from. */
#ifndef TOTALPLACE_REPORT_H
#define TOTALPLACE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct _report_t report_t;

#define REPORT_ERR -1

typedef enum {
    REPORT_TABLE = 0, /* aligned columns, "£1,234.56", "yes"/"no", thousands separators */
    REPORT_CSV,       /* RFC 4180: a header row, amounts as exact decimal pounds "1234.56" */
    REPORT_JSON,      /* one object: the query, its parameters and the sections */
} report_format_t;

/* What a column holds; it decides alignment and how each format writes the value. */
typedef enum {
    REPORT_TEXT,     /* UTF-8 text; JSON string */
    REPORT_PENCE,    /* int64 pence; table "-£1,234.56", CSV "-1234.56", JSON integer pence */
    REPORT_INTEGER,  /* int64; table with thousands separators, JSON integer */
    REPORT_UNSIGNED, /* uint64; as INTEGER, JSON string when beyond the JSON integer range */
    REPORT_BOOL,     /* table and CSV "yes"/"no", JSON true/false */
    REPORT_SHARE,    /* part of a whole: "12.3%" (CSV "12.3"); "n/a" when the whole is <= 0;
                        JSON integer per-mille (123) or null */
    REPORT_TIME,     /* int64 unix seconds, written as ISO 8601 UTC "2024-05-01T09:30:00Z" */
} report_type_t;

typedef struct {
    const char *title; /* heading in table and CSV, e.g. "total" */
    const char *name;  /* member name in JSON, e.g. "amount_pence" */
    report_type_t type;
} report_column_t;

/* Sizes of the buffers the formatting helpers below need, with room to spare. */
#define REPORT_POUNDS_LEN 40
#define REPORT_SHARE_LEN  32

/* A new empty report answering the query named (e.g. "totals"). NULL when out of memory. */
report_t *report_new (const char *query);

/* Frees the report and sets *self_p to NULL; safe on NULL and twice. */
void report_destroy (report_t **self_p);

/* A caption shown above the table for people (e.g. "Totals of E01000001 by body"); CSV and JSON
 * leave it out. */
void report_set_caption (report_t *self, const char *caption);

/* Echoes a parameter of the query at the top level of the JSON object, in the order set (e.g.
 * "neighbourhood": "E01000001"). A NULL value is written as JSON null. Table and CSV leave it out:
 * the caption says it for people. */
void report_set_param (report_t *self, const char *name, const char *value);

/* Starts a section of rows under the given columns (copied); the rows added next belong to it.
 * JSON writes it as the member `name`: an array of objects, or when single is true one object
 * (its only row). Table writes a single section as one "title  value" line per column; CSV always
 * writes a header row then the rows. Several sections are separated by a blank line in table and
 * CSV. */
void report_add_section (report_t *self, const char *name, const report_column_t *columns,
                         size_t column_count, bool single);

/* Starts a new row in the current section, then each cell in column order with the function
 * matching the column's type. */
void report_row (report_t *self);
void report_text (report_t *self, const char *text);
void report_pence (report_t *self, int64_t pence);
void report_integer (report_t *self, int64_t value);
void report_unsigned (report_t *self, uint64_t value);
void report_bool (report_t *self, bool value);
void report_share (report_t *self, int64_t part, int64_t whole);
void report_time (report_t *self, int64_t unix_seconds);

/* The common row shape "key, total, records": one call for a section whose columns are
 * (TEXT, PENCE, INTEGER). */
void report_amount_row (report_t *self, const char *key, int64_t amount_pence, int64_t records);

/* Writes the report to out in format. Building calls never fail on their own: a misuse (wrong cell
 * type, too many or too few cells, a cell before any row) or running out of memory is remembered
 * and reported here, where it returns REPORT_ERR with a message; so does a write error on out or
 * text that is not valid UTF-8 for JSON. Returns 0 otherwise. */
int report_write (report_t *self, report_format_t format, FILE *out, char *err, size_t err_len);

/* Parses "table", "csv" or "json". Returns 0, or -1 for any other name. */
int report_format_parse (const char *name, report_format_t *format);

/* Writes pence as pounds into out (at least REPORT_POUNDS_LEN bytes), exactly, for every int64
 * including INT64_MIN. With people true: "£1,234,567.89", "-£12.00", "£0.00"; otherwise the plain
 * decimal for CSV: "1234567.89", "-12.00", "0.00". Returns out. */
char *report_pounds (int64_t pence, bool people, char *out, size_t out_len);

/* The share part/whole in per-mille, rounded half away from zero, computed in integers. Returns 0
 * and fills *permille, or -1 when whole <= 0 (no meaningful share). */
int report_share_permille (int64_t part, int64_t whole, int64_t *permille);

/* Writes the share as a percent with one decimal into out (at least REPORT_SHARE_LEN bytes):
 * "12.3%" (or "12.3" without the sign when percent_sign is false), "-0.5%", or "n/a" when
 * whole <= 0. Returns out. */
char *report_share_text (int64_t part, int64_t whole, bool percent_sign, char *out, size_t out_len);

/* Writes one CSV field to out, quoted when it holds a comma, quote, CR, LF or leading or trailing
 * space, with quotes doubled. Returns 0, or -1 on a write error. */
int report_csv_field (FILE *out, const char *text);

#endif
