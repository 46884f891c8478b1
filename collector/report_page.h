/* report_page: the report about a place (or one neighbourhood) as ONE self-contained HTML page:
 * inline CSS and inline SVG, no script, nothing fetched (no font, image or link that loads
 * anything), readable printed on A4. Pure: typed figures in, HTML out to a FILE; it asks no store.
 * What the page shows and why: docs/report.md. */
#ifndef TOTALPLACE_REPORT_PAGE_H
#define TOTALPLACE_REPORT_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define REPORT_PAGE_ERR -1

/* One row of a breakdown: a body (with its poolable part), a month or a neighbourhood. */
typedef struct {
    const char *key;        /* body id, "YYYY-MM" or neighbourhood code (UTF-8, any bytes) */
    int64_t total_pence;    /* every record's amount added up, credits included */
    int64_t poolable_pence; /* bodies: the part the body considers poolable; else unused */
    int64_t records;
} report_page_row_t;

/* One budget: a body's spending on one service, and how much of it is poolable. */
typedef struct {
    const char *body, *service;
    int64_t total_pence, poolable_pence, records;
} report_page_budget_t;

typedef struct {
    const char *name;        /* the place or neighbourhood, e.g. "E01000001" */
    const char *fiscal_year; /* "2013-14", or NULL for every month stored */
    int64_t residents;       /* of the place when known (> 0), else 0 or negative */
    const char *store_id;    /* NULL or "" to leave out */
    const char *generated;   /* when the figures were read, e.g. "2026-11-30 16:55 UTC"; may be
                                NULL */
    int64_t total_pence, poolable_pence, records; /* the headline */
    const report_page_row_t *bodies;              /* in the order to show (largest first) */
    size_t body_count;
    const report_page_budget_t *budgets; /* by body, then service */
    size_t budget_count;
    const report_page_row_t *months; /* ascending; months without records left out */
    size_t month_count;
    const report_page_row_t *neighbourhoods; /* the member neighbourhoods */
    size_t neighbourhood_count;
} report_page_t;

/* Writes the page to out. Amounts are written as the CLI's tables write them (report_pounds,
 * "£1,234.56"), shares as report_share_text ("12.3%", "n/a" when the whole is not positive);
 * every text from records is HTML-escaped. Every chart (bodies, months) is followed by a table of
 * the same figures, and the tables carry ids (bodies, budgets, months, neighbourhoods; the
 * headline's figures are dd elements with ids) so that a program can read them back. Returns 0,
 * or REPORT_PAGE_ERR with a message when out fails. */
int report_page_write (const report_page_t *page, FILE *out, char *err, size_t err_len);

/* pence / residents in whole pence, rounded half away from zero, in integers. Returns 0, or -1
 * when residents <= 0. */
int report_page_per_resident (int64_t pence, int64_t residents, int64_t *per_resident);

/* Writes text HTML-escaped (& < > " ' as entities), fit for element content and quoted
 * attributes. Returns 0, or -1 on a write error. */
int report_page_escape (FILE *out, const char *text);

#endif
