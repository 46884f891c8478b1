/* cli_report: `totalplace report`: gathers a place's figures (one neighbourhood, or a list of them
 * with their residents) from a source, with the same store questions `totals` and `pooling` ask,
 * and writes them as one HTML page (report_page.h). docs/report.md. */
#ifndef TOTALPLACE_CLI_REPORT_H
#define TOTALPLACE_CLI_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "place_totals.h"
#include "query_args.h"
#include "report_page.h"
#include "store.h"

/* Where the figures come from: the CLI's --db or --collector source, through its own functions,
 * which answer as store_totals does (0, STORE_ERR_NOTFOUND for a neighbourhood with no records, or
 * another error with a message). identity may be NULL (the page then names no store). */
typedef struct {
    void *handle;
    int (*totals) (void *handle, const char *neighbourhood, store_breakdown_t by,
                   const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
                   size_t err_len);
    int (*identity) (void *handle, store_identity_t *identity, char *err, size_t err_len);
    /* For --place: the place's totals by neighbourhood (its members with records), and the places
     * ranked (for its residents); as cli_source.h's functions of the same names. */
    int (*breakdown) (void *handle, const char *neighbourhood, const char *place,
                      const store_breakdown_t *by, size_t by_count, const store_filter_t *filter,
                      store_keys_fn *row, void *arg, char *err, size_t err_len);
    int (*places) (void *handle, place_totals_place_fn *fn, void *arg, char *err, size_t err_len);
} cli_report_source_t;

/* What the page is about. */
typedef struct {
    const char *name;                  /* shown, and in the default file name */
    const char *const *neighbourhoods; /* the member neighbourhoods' codes, at least one */
    size_t neighbourhood_count;
    int64_t residents;       /* the place's residents, or 0 when not known */
    const char *fiscal_year; /* "2013-14", or NULL for every month stored */
} cli_report_scope_t;

typedef struct _cli_report_t cli_report_t;

/* Asks source for the figures of scope: per member neighbourhood its total, its totals by body
 * (all, and poolable only), by month, and for each body by service (all, and poolable only), all
 * with the fiscal year as filter; then adds the members up exactly in pence. A member with no
 * records counts as zero; when none has any, the answer is STORE_ERR_NOTFOUND. Returns the
 * figures, or NULL with *code (a store error code) and a message. */
cli_report_t *cli_report_gather (const cli_report_source_t *source, const cli_report_scope_t *scope,
                                 int *code, char *err, size_t err_len);

/* The page's figures, valid while report lives. */
const report_page_t *cli_report_page (const cli_report_t *report);

/* Frees the figures and sets *self_p to NULL; safe on NULL and twice. */
void cli_report_destroy (cli_report_t **self_p);

/* totalplace-report-NAME.html into out, with every byte of NAME that is not a letter, digit, '.',
 * '_' or '-' written as '-'. Returns 0, or -1 when it does not fit. */
int cli_report_default_path (const char *name, char *out, size_t out_len);

/* Runs `totalplace report` as args say: gathers the figures of --neighbourhood or of --place (its
 * members with records in the period; its residents when the places file gives every member a
 * population, else none), writes the page to
 * --out (or the default path) under a temporary name, renamed when whole, and prints the page's
 * path on stdout. Returns the exit status (0; 1 when it could not; 65 for a damaged store),
 * messages on stderr. */
int cli_report_run (const query_args_t *args, const cli_report_source_t *source);

#endif
