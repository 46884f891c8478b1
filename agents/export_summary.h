/* export_summary: what one read of a spending export found, in the terms a finance officer checks a
 * file by (rows taken and refused and why, the file's total, its dates, ids that repeat, rows no
 * lookup could place, bytes that had to be replaced), and the verdict drawn from it: deliver the
 * file, or hold it back loudly because most of it would be lost. The CSV reader fills it; the inbox
 * decides with it and `totalplace-agent inspect` prints it. */
#ifndef TOTALPLACE_EXPORT_SUMMARY_H
#define TOTALPLACE_EXPORT_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csv_layout.h"

/* Counts of one read. rows = by_column + by_lookup + by_postcode + rejected: data rows other than
 * blank ones and the file's own totals rows, each either placed in its neighbourhoods or
 * rejected. */
typedef struct {
    uint64_t rows;        /* data rows read (the header, blank rows and totals rows not included) */
    uint64_t records;     /* records handed to on_record (a row split into parts gives several) */
    uint64_t rejected;    /* rows handed to on_reject */
    uint64_t by_column;   /* rows placed by their own neighbourhood cell */
    uint64_t by_lookup;   /* rows placed through the lookup */
    uint64_t by_postcode; /* rows placed through the postcode lookup */
    uint64_t apportioned; /* rows split over several neighbourhoods (also counted in by_lookup) */
    uint64_t derived_ids; /* rows whose record id was derived from their content */
    uint64_t placeholders; /* withdrawn 0-pence records sent for the parts a correction lacks */
    uint64_t blank;        /* rows skipped because every cell was empty (blank lines included) */
    uint64_t short_rows;   /* rows with fewer cells than the header (missing cells read as empty) */
    uint64_t long_rows;    /* rows with more cells than the header, the extra ones all empty */
    uint64_t totals_rows;  /* the file's own totals rows, recognised and skipped */
    uint64_t copies;       /* rows repeating an earlier row's id, revision and content exactly */
    uint64_t
        repeated_id_rows;   /* rows repeating an earlier row's id and revision with other content */
    uint64_t repeated_ids;  /* distinct ids (with revision) that repeat with other content */
    uint64_t line_ids;      /* rows whose id was numbered per line (repeated ids = lines) */
    uint64_t replaced_rows; /* rows where bytes of a text field were replaced by U+FFFD */
} export_stats_t;

/* Kinds of warnings: things that did not stop a row but that a person should know. */
typedef enum {
    EXPORT_WARN_REPLACED_BYTES, /* bytes not valid in the file's encoding became U+FFFD */
    EXPORT_WARN_COPY,           /* a row repeating an earlier one exactly: counted once */
    EXPORT_WARN_TOTALS_ROW,     /* the file's own totals row: skipped */
    EXPORT_WARN_KINDS
} export_warning_t;

/* Receives every warning as it is found (line: the row's first physical line). */
typedef int (export_warning_fn) (void *arg, export_warning_t kind, size_t line, const char *text);

typedef struct _export_summary_t export_summary_t;

/* An empty summary. NULL when out of memory. */
export_summary_t *export_summary_new (void);

/* Destroys a summary; sets *self_p to NULL. Safe on NULL and twice. */
void export_summary_destroy (export_summary_t **self_p);

/* Forwards every warning to fn as well (e.g. into done/NAME.warnings.csv); the summary itself keeps
 * counts and the first few of each kind. A non-zero return from fn is remembered and returned by
 * export_summary_warn. */
void export_summary_set_warning_sink (export_summary_t *self, export_warning_fn *fn, void *arg);

/* ---------------------------------------------------------------- filled while reading */

/* The encoding the file was read in ("utf-8", "windows-1252"...) and, when it was detected, why
 * (e.g. "not valid UTF-8: byte 0xA0 at offset 1234"). Returns 0 or -1 when out of memory. */
int export_summary_set_encoding (export_summary_t *self, const char *encoding, const char *why);

/* Takes the file's resolved header (the summary now owns it; *layout_p becomes NULL). */
void export_summary_take_layout (export_summary_t *self, csv_layout_t **layout_p);

/* A file-level error: nothing of the file can be sent. Returns 0 or -1 when out of memory. */
int export_summary_set_failure (export_summary_t *self, const char *message);

/* A rejected row: field is what the reason is about (CSV_FIELD_COUNT for the row as a whole, e.g.
 * a cell over the size limit). Reasons are grouped by their text with quoted values left out, so
 * that `period "201501": not a date` and `period "201502": not a date` are one reason. Returns 0 or
 * -1 when out of memory. */
int export_summary_add_reject (export_summary_t *self, csv_field_t field, size_t line,
                               const char *reason);

/* A warning (see export_warning_t); also passed to the sink. Returns 0, the sink's non-zero value,
 * or -1 when out of memory. */
int export_summary_warn (export_summary_t *self, export_warning_t kind, size_t line,
                         const char *text);

/* A row whose id (and revision) was seen before with other content: id as the file wrote it, the
 * line of its first row and of this one. Returns 0 or -1 when out of memory. */
int export_summary_add_repeat (export_summary_t *self, const char *id, size_t first_line,
                               size_t line);

/* A value no lookup could place (what: the column's header, or "postcode"). Returns 0 or -1. */
int export_summary_add_unplaced (export_summary_t *self, const char *what, const char *value);

/* A data row's amount (not a totals row), and whether the row became records. */
void export_summary_add_amount (export_summary_t *self, int64_t pence, bool accepted);

/* A row's date as "YYYY-MM-DD" (or "YYYY-MM" when the file names only a month), accepted rows
 * only. */
void export_summary_add_date (export_summary_t *self, const char *date);

/* The read's counts, once it is over. */
void export_summary_set_stats (export_summary_t *self, const export_stats_t *stats);

/* ---------------------------------------------------------------- reading it back */

const export_stats_t *export_summary_stats (const export_summary_t *self);
const char *export_summary_encoding (const export_summary_t *self);       /* "" before the read */
const char *export_summary_encoding_why (const export_summary_t *self);   /* "" when not detected */
const csv_layout_t *export_summary_layout (const export_summary_t *self); /* NULL: no header */
const char *export_summary_failure (const export_summary_t *self); /* NULL: the file was read */

/* Sum of the amounts of every data row whose amount could be read (rejected rows included, totals
 * rows not): the figure to hold against the total the body publishes. Returns false when it
 * overflows int64 (it is then meaningless). Likewise for the rows that became records. */
bool export_summary_total (const export_summary_t *self, int64_t *pence);
bool export_summary_accepted_total (const export_summary_t *self, int64_t *pence);

/* First and last date of the accepted rows; "" when none. */
const char *export_summary_first_date (const export_summary_t *self);
const char *export_summary_last_date (const export_summary_t *self);

/* Rejection reasons, most rows first (then in order of first appearance). */
typedef struct {
    const char *reason; /* the first row's reason, with its value */
    csv_field_t field;  /* CSV_FIELD_COUNT: the row as a whole */
    uint64_t rows;
    size_t first_line;
} export_reason_t;
size_t export_summary_reason_count (const export_summary_t *self);
const export_reason_t *export_summary_reason (const export_summary_t *self, size_t index);

/* Warnings: how many of a kind, and the first few (index < export_summary_warning_examples). */
uint64_t export_summary_warning_count (const export_summary_t *self, export_warning_t kind);
size_t export_summary_warning_examples (const export_summary_t *self, export_warning_t kind);
const char *export_summary_warning_example (const export_summary_t *self, export_warning_t kind,
                                            size_t index, size_t *line);

/* Ids repeated with other content: the first few, each with the line of its first row and of the
 * first repeat. */
typedef struct {
    const char *id;
    size_t first_line, line;
} export_repeat_t;
size_t export_summary_repeat_examples (const export_summary_t *self);
const export_repeat_t *export_summary_repeat_example (const export_summary_t *self, size_t index);

/* Values no lookup placed, most rows first (then by value). */
typedef struct {
    const char *what;
    const char *value;
    uint64_t rows;
} export_unplaced_t;
size_t export_summary_unplaced_count (const export_summary_t *self);
const export_unplaced_t *export_summary_unplaced (const export_summary_t *self, size_t index);

/* ---------------------------------------------------------------- the verdict */

/* What the agent does with the file, and what it would take to change it. */
typedef struct {
    unsigned max_rejected_percent; /* hold when more than this share of rows would be rejected */
    bool hold_repeated_ids;        /* hold when an id repeats with other content */
    const char *config;            /* the agent's config file for the advice; NULL: "the config" */
} export_policy_t;

typedef enum {
    EXPORT_DELIVER = 0, /* send what was read; rejected rows go to the rejects file */
    EXPORT_HOLD,        /* send nothing: the file goes to failed/ with a note */
    EXPORT_FAILED,      /* the file could not be read at all */
} export_verdict_t;

/* Decides, and when the file is held or failed writes into *note (malloc'd, free it) the whole
 * reason a person needs: what would be lost, the main cause with an example line, the column that
 * was read for that field and the other candidate columns, and the setting to change. *note is
 * NULL for EXPORT_DELIVER (and when memory runs out). */
export_verdict_t export_summary_verdict (const export_summary_t *self,
                                         const export_policy_t *policy, char **note);

#endif
