/* csv_layout: which columns of an export's header feed which record fields. A field is read from
 * the first of its candidates that the header has: by default a list of the header names public
 * bodies use (docs/input-format.md), or what the agent's config says (columns/<field>): a list of
 * header names tried in order, a column's position ("#7"), and for record ids several columns
 * joined ("Trans No + Line No"). Exports change their headers between years and repeat them, so
 * resolving a header never fails: it says what it chose, and what else could have been chosen. */
#ifndef TOTALPLACE_CSV_LAYOUT_H
#define TOTALPLACE_CSV_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

/* Record fields a column can feed. CSV_FIELD_LOOKUP is the column a neighbourhood lookup reads: it
 * is set with the lookup, not through columns/<field>. */
typedef enum {
    CSV_FIELD_RECORD_ID,
    CSV_FIELD_PERIOD,
    CSV_FIELD_AMOUNT,
    CSV_FIELD_SUPPLIER,
    CSV_FIELD_SERVICE,
    CSV_FIELD_DESCRIPTION,
    CSV_FIELD_NEIGHBOURHOOD,
    CSV_FIELD_POOLABLE,
    CSV_FIELD_REVISION,
    CSV_FIELD_WITHDRAWN,
    CSV_FIELD_BODY_ID,
    CSV_FIELD_POSTCODE,
    CSV_FIELD_LOOKUP,
    CSV_FIELD_COUNT
} csv_field_t;

/* Fields csv_spec_parse accepts: every field before CSV_FIELD_LOOKUP. */
#define CSV_FIELD_MAPPABLE CSV_FIELD_LOOKUP

/* Most columns one record id may be joined from. */
#define CSV_LAYOUT_MAX_PARTS 4
/* A header name in a spec longer than this cannot be a real column name. */
#define CSV_LAYOUT_MAX_NAME 256
/* Candidates one spec may list. */
#define CSV_LAYOUT_MAX_CANDIDATES 16
/* Joins the parts of a composite record id: "46281108" + "1" gives "46281108+1". */
#define CSV_LAYOUT_ID_JOINER "+"

/* "record_id", "period", ... ("lookup" for CSV_FIELD_LOOKUP). */
const char *csv_field_name (csv_field_t field);

/* The config key that says where field is read from: "columns/period", and
 * "neighbourhood/lookup_column" for CSV_FIELD_LOOKUP. */
const char *csv_field_key (csv_field_t field);

/* The field named name among the mappable ones, or -1. */
int csv_field_by_name (const char *name);

/* ---------------------------------------------------------------- specifications */

/* Where a field is read from: the default header names, a list of candidates, or no column. */
typedef struct _csv_spec_t csv_spec_t;

/* Parses columns/<field> (or neighbourhood/lookup_column for CSV_FIELD_LOOKUP) as the config writes
 * it: candidates separated by commas, tried in order; each a header name (matched as headers are,
 * see csv_layout_names_match), a position "#N" (1-based), or for record_id several of those joined
 * by "+"; a name holding a comma, a "+" or a leading "#" is written in double quotes
 * ("Amount, net"). "" (or only spaces) means no column.
 * Returns NULL with err filled for an empty candidate, a position of 0, a name over
 * CSV_LAYOUT_MAX_NAME bytes, "+" outside record_id, more than CSV_LAYOUT_MAX_PARTS parts or
 * CSV_LAYOUT_MAX_CANDIDATES candidates, an unclosed quote, or no memory. */
csv_spec_t *csv_spec_parse (csv_field_t field, const char *text, char *err, size_t err_len);

/* Destroys a spec; sets *self_p to NULL. Safe on NULL and twice. */
void csv_spec_destroy (csv_spec_t **self_p);

/* True for the spec of "": the field is read from no column. */
bool csv_spec_is_none (const csv_spec_t *self);

/* Writes the headers a spec accepts, for messages: `"Date", "Payment Date", ...` for the defaults
 * of field (spec NULL), or the candidates as configured (`#7`, `"Trans No" + "Line"`). Returns out.
 */
const char *csv_spec_describe (const csv_spec_t *spec, csv_field_t field, char *out,
                               size_t out_len);

/* True when two header names are the same to a person: ASCII case is ignored and every run of
 * spaces, tabs, line breaks and the punctuation `_ . - / ( ) : ;` counts as one space, ignored at
 * either end ("paid_date" is "Paid Date", "Transaction No." is "Transaction No"). */
bool csv_layout_names_match (const char *a, const char *b);

/* ---------------------------------------------------------------- one file's layout */

/* The columns one field of a file is read from (0-based header positions). */
typedef struct {
    bool present;
    size_t count; /* 1, or up to CSV_LAYOUT_MAX_PARTS for a composite record id */
    size_t columns[CSV_LAYOUT_MAX_PARTS];
} csv_columns_t;

typedef struct _csv_layout_t csv_layout_t;

/* Resolves a header (its trimmed cells) for every field: specs[f] NULL reads field f from its
 * default names, a spec from its candidates (the first the header has wins). A name that heads
 * several columns reads the first of them and adds a note saying so. A position beyond the header
 * is absent. Fields whose spec is "none" are absent. Missing fields are not an error here: the
 * caller decides which are required. NULL only when out of memory. */
csv_layout_t *csv_layout_new (const char *const *headers, size_t n_headers,
                              const csv_spec_t *const specs[CSV_FIELD_COUNT]);

/* Destroys a layout; sets *self_p to NULL. Safe on NULL and twice. */
void csv_layout_destroy (csv_layout_t **self_p);

/* The columns field is read from in this file. */
const csv_columns_t *csv_layout_columns (const csv_layout_t *self, csv_field_t field);

/* Notes on choices made (e.g. `supplier: columns 5 and 9 are both headed "Supplier Name"; reading
 * column 5 (set columns/supplier = #9 to read the other)`), in field order. */
size_t csv_layout_note_count (const csv_layout_t *self);
const char *csv_layout_note (const csv_layout_t *self, size_t index);

/* Writes what field is read from, for messages and inspect: `column 5 "Paid Date"`, `columns 2
 * "Trans No" + 3 "Line"`, or `no column`. Returns out. */
const char *csv_layout_describe (const csv_layout_t *self, csv_field_t field, char *out,
                                 size_t out_len);

/* Other columns of this header that could hold field (they carry one of its default names, or a
 * word people use for it, such as "date" for the period), the ones read excluded, in column order:
 * writes up to max 0-based positions to columns and returns how many there are in all. */
size_t csv_layout_other_candidates (const csv_layout_t *self, csv_field_t field, size_t *columns,
                                    size_t max);

/* The header cell of a column (0-based), or "" beyond the header. */
const char *csv_layout_header (const csv_layout_t *self, size_t column);

/* Columns in the header. */
size_t csv_layout_width (const csv_layout_t *self);

#endif
