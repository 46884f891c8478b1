/* report_page: the HTML is written straight to the FILE, in page order. Bar lengths are computed in
 * integers (pence per pixel), so no amount ever passes through a float, even on its way to a
 * pixel. Nothing in the page can make the browser load anything: no script, no src, no url(), no
 * link; the SVG is inline HTML5 SVG, which needs no namespace attribute either. */
#include "report_page.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "err_text.h"
#include "report.h"

/* The charts' geometry, in CSS pixels; the page scales them to its width when printed. */
#define CHART_WIDTH   760
#define LABEL_WIDTH   210 /* body names, left of the bars */
#define VALUE_WIDTH   120 /* the total, right of the bars */
#define BAR_AREA      (CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH)
#define BAR_ROW       26
#define BAR_HEIGHT    18
#define LEGEND_HEIGHT 30
#define LABEL_CHARS   30 /* a longer body id is cut, with an ellipsis, in the chart only */
#define MONTH_HEIGHT  220
#define MONTH_TOP     12
#define MONTH_AXIS    40

/* Inline, so that nothing is fetched; fonts are the reader's own. Print: A4 with margins,
 * sections kept whole where they fit, table headers repeated on each printed page. */
static const char STYLE[] =
    "*{box-sizing:border-box}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;"
    "color:#1a1a1a;background:#fff;margin:0 auto;padding:24px;max-width:880px;line-height:1.4}"
    "h1{font-size:1.7em;margin:0 0 4px}h2{font-size:1.25em;margin:28px 0 8px;"
    "border-bottom:2px solid #2166ac;padding-bottom:3px}"
    ".sub{color:#555;margin:0 0 16px}"
    ".headline{display:grid;grid-template-columns:repeat(3,1fr);gap:10px;margin:0}"
    ".headline div{border:1px solid #ccc;border-radius:6px;padding:8px 10px}"
    ".headline dt{font-size:.85em;color:#555}.headline dd{margin:2px 0 0;font-size:1.3em;"
    "font-weight:600}.headline dd small{font-size:.65em;font-weight:400;color:#555}"
    "figure{margin:8px 0}figcaption{font-size:.85em;color:#555}"
    "svg{display:block;max-width:100%;height:auto}"
    "svg text{font-size:12px;fill:#1a1a1a}svg .axis{stroke:#888;stroke-width:1}"
    ".pool{fill:#2166ac}.notpool{fill:#f4a582}.month{fill:#4393c3}.credit{fill:#d6604d}"
    "table{border-collapse:collapse;width:100%;margin:8px 0 4px;font-size:.9em}"
    "caption{text-align:left;font-weight:600;padding:4px 0}"
    "th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}"
    "thead th{background:#f2f2f2}td.n,th.n{text-align:right;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    "tfoot td{font-weight:600;border-top:2px solid #999}"
    ".note{font-size:.85em;color:#555}.id{white-space:nowrap}"
    "footer{margin-top:32px;font-size:.8em;color:#555;border-top:1px solid #ccc;padding-top:8px}"
    "@page{size:A4;margin:14mm}"
    "@media print{body{padding:0;max-width:none;font-size:10pt}"
    "h2{break-after:avoid}figure,.headline,tr{break-inside:avoid}"
    "thead{display:table-header-group}#pooling,#months{break-before:page}"
    "thead th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    "svg rect{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

typedef struct {
    FILE *out;
} page_t;

int
report_page_escape (FILE *out, const char *text)
{
    for (const char *p = text ? text : ""; *p; p++) {
        const char *entity = NULL;
        switch (*p) {
        case '&':
            entity = "&amp;";
            break;
        case '<':
            entity = "&lt;";
            break;
        case '>':
            entity = "&gt;";
            break;
        case '"':
            entity = "&quot;";
            break;
        case '\'':
            entity = "&#39;";
            break;
        }
        if (entity ? fputs (entity, out) == EOF : fputc (*p, out) == EOF)
            return -1;
    }
    return 0;
}

int
report_page_per_resident (int64_t pence, int64_t residents, int64_t *per_resident)
{
    if (residents <= 0)
        return -1;
    int64_t quotient = pence / residents, remainder = pence % residents;
    /* |remainder| >= residents / 2 rounded up, without 2 * remainder overflowing. */
    int64_t magnitude = remainder < 0 ? -remainder : remainder;
    if (magnitude >= residents - magnitude)
        quotient += pence < 0 ? -1 : 1;
    *per_resident = quotient;
    return 0;
}

/* ---------------------------------------------------------------- text */

static void
text (page_t *page, const char *value)
{
    report_page_escape (page->out, value);
}

static void
pounds (page_t *page, int64_t pence)
{
    char buffer[REPORT_POUNDS_LEN];
    text (page, report_pounds (pence, true, buffer, sizeof buffer));
}

static void
share (page_t *page, int64_t part, int64_t whole)
{
    char buffer[REPORT_SHARE_LEN];
    text (page, report_share_text (part, whole, true, buffer, sizeof buffer));
}

/* A count with thousands separators, as the CLI's tables write counts. */
static void
count (page_t *page, int64_t value)
{
    char digits[24], grouped[32];
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    int len = snprintf (digits, sizeof digits, "%" PRIu64, magnitude);
    size_t at = 0;
    if (value < 0)
        grouped[at++] = '-';
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            grouped[at++] = ',';
        grouped[at++] = digits[i];
    }
    grouped[at] = '\0';
    fputs (grouped, page->out);
}

/* At most LABEL_CHARS characters of a UTF-8 text, cut on a character boundary, for a chart's
 * label; the table beside the chart has the whole text. */
static void
label (page_t *page, const char *value)
{
    size_t chars = 0, at = 0;
    for (; value[at]; at++)
        if (((unsigned char)value[at] & 0xC0) != 0x80 && ++chars > LABEL_CHARS)
            break;
    if (!value[at]) {
        text (page, value);
        return;
    }
    char cut[LABEL_CHARS * 4 + 1];
    size_t len = at < sizeof cut - 1 ? at : sizeof cut - 1;
    memcpy (cut, value, len);
    cut[len] = '\0';
    text (page, cut);
    fputs ("\u2026", page->out);
}

/* pence per pixel so that span fits in pixels (at least 1, so a zero span draws nothing). */
static int64_t
scale_of (int64_t span, int64_t pixels)
{
    if (span <= 0)
        return 1;
    return span / pixels + (span % pixels != 0);
}

static int64_t
positive (int64_t pence)
{
    return pence > 0 ? pence : 0;
}

/* ---------------------------------------------------------------- sections */

static void
headline (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    fputs ("<section id=\"headline\" aria-labelledby=\"h-headline\">\n"
           "<h2 id=\"h-headline\">Headline</h2>\n<dl class=\"headline\">\n",
           out);
    fputs ("<div><dt>Total public spending</dt><dd id=\"total\">", out);
    pounds (page, p->total_pence);
    fputs ("</dd></div>\n<div><dt>Per resident</dt><dd id=\"per-resident\">", out);
    int64_t per_resident;
    if (report_page_per_resident (p->total_pence, p->residents, &per_resident) == 0) {
        pounds (page, per_resident);
        fputs (" <small>(", out);
        count (page, p->residents);
        fputs (" residents)</small>", out);
    }
    else
        fputs ("n/a <small>(residents not known)</small>", out);
    fputs ("</dd></div>\n<div><dt>Could be pooled</dt><dd id=\"poolable-share\">", out);
    share (page, p->poolable_pence, p->total_pence);
    fputs (" <small>(", out);
    pounds (page, p->poolable_pence);
    fputs (")</small></dd></div>\n<div><dt>Period covered</dt><dd id=\"period\">", out);
    if (p->month_count) {
        text (page, p->months[0].key);
        if (p->month_count > 1) {
            fputs (" to ", out);
            text (page, p->months[p->month_count - 1].key);
        }
        fputs (" <small>(", out);
        count (page, (int64_t)p->month_count);
        fputs (p->month_count == 1 ? " month with spending)" : " months with spending)", out);
        fputs ("</small>", out);
    }
    else
        fputs ("none <small>(no spending recorded)</small>", out);
    fputs ("</dd></div>\n<div><dt>Public bodies</dt><dd id=\"bodies-count\">", out);
    count (page, (int64_t)p->body_count);
    fputs ("</dd></div>\n<div><dt>Records</dt><dd id=\"records\">", out);
    count (page, p->records);
    fputs ("</dd></div>\n</dl>\n</section>\n", out);
}

/* The part of total that is not poolable; 0 (nothing to draw) when it does not fit an int64. */
static int64_t
not_poolable (int64_t total, int64_t poolable, bool *fits)
{
    int64_t rest;
    *fits = !__builtin_sub_overflow (total, poolable, &rest);
    return *fits ? rest : 0;
}

/* Horizontal bars, one per body: the poolable part then the rest, end to end. Negative parts
 * (credits) have no length; the table says them. */
static void
bodies_chart (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    int64_t widest = 0;
    for (size_t i = 0; i < p->body_count; i++) {
        bool fits;
        int64_t rest =
            positive (not_poolable (p->bodies[i].total_pence, p->bodies[i].poolable_pence, &fits));
        int64_t span;
        if (__builtin_add_overflow (positive (p->bodies[i].poolable_pence), rest, &span))
            span = INT64_MAX;
        if (span > widest)
            widest = span;
    }
    int64_t scale = scale_of (widest, BAR_AREA);
    size_t height = LEGEND_HEIGHT + p->body_count * BAR_ROW + 8;
    fprintf (out,
             "<figure>\n<svg viewBox=\"0 0 %d %zu\" width=\"%d\" height=\"%zu\" role=\"img\" "
             "aria-labelledby=\"bodies-chart-title\">\n<title id=\"bodies-chart-title\">Spending "
             "by body, poolable and not poolable (the table below gives the figures)</title>\n",
             CHART_WIDTH, height, CHART_WIDTH, height);
    fprintf (out,
             "<rect class=\"pool\" x=\"%d\" y=\"6\" width=\"14\" height=\"14\"/>"
             "<text x=\"%d\" y=\"18\">could be pooled</text>"
             "<rect class=\"notpool\" x=\"%d\" y=\"6\" width=\"14\" height=\"14\"/>"
             "<text x=\"%d\" y=\"18\">not poolable</text>\n",
             LABEL_WIDTH, LABEL_WIDTH + 20, LABEL_WIDTH + 150, LABEL_WIDTH + 170);
    for (size_t i = 0; i < p->body_count; i++) {
        const report_page_row_t *body = &p->bodies[i];
        int64_t pool = positive (body->poolable_pence) / scale;
        bool fits;
        int64_t rest =
            positive (not_poolable (body->total_pence, body->poolable_pence, &fits)) / scale;
        if (pool + rest > BAR_AREA) /* only when the widest span saturated */
            rest = BAR_AREA - pool;
        size_t y = LEGEND_HEIGHT + i * BAR_ROW;
        fputs ("<g><title>", out);
        text (page, body->key);
        fputs (": ", out);
        pounds (page, body->total_pence);
        fputs (", of which could be pooled ", out);
        pounds (page, body->poolable_pence);
        fprintf (out, "</title><text x=\"%d\" y=\"%zu\" text-anchor=\"end\">", LABEL_WIDTH - 8,
                 y + 14);
        label (page, body->key);
        fprintf (out,
                 "</text><rect class=\"pool\" x=\"%d\" y=\"%zu\" width=\"%" PRId64
                 "\" height=\"%d\"/><rect class=\"notpool\" x=\"%" PRId64 "\" y=\"%zu\" "
                 "width=\"%" PRId64 "\" height=\"%d\"/><text x=\"%" PRId64 "\" y=\"%zu\">",
                 LABEL_WIDTH, y, pool, BAR_HEIGHT, LABEL_WIDTH + pool, y, rest, BAR_HEIGHT,
                 LABEL_WIDTH + pool + rest + 6, y + 14);
        pounds (page, body->total_pence);
        fputs ("</text></g>\n", out);
    }
    fputs ("</svg>\n<figcaption>Bar length: spending of each body in the period (blue: the part "
           "the body considers poolable; orange: the rest). Credits have no bar.</figcaption>\n"
           "</figure>\n",
           out);
}

/* The cells of a row split poolable / not: total, poolable, not poolable, share, records; and the
 * row's end. */
static void
split_cells (page_t *page, int64_t total, int64_t poolable, int64_t records)
{
    FILE *out = page->out;
    bool fits;
    int64_t rest = not_poolable (total, poolable, &fits);
    fputs ("<td class=\"n\">", out);
    pounds (page, total);
    fputs ("</td><td class=\"n\">", out);
    pounds (page, poolable);
    fputs ("</td><td class=\"n\">", out);
    if (fits)
        pounds (page, rest);
    else
        fputs ("n/a", out);
    fputs ("</td><td class=\"n\">", out);
    share (page, poolable, total);
    fputs ("</td><td class=\"n\">", out);
    count (page, records);
    fputs ("</td></tr>\n", out);
}

static void
bodies (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    fputs ("<section id=\"by-body\" aria-labelledby=\"h-bodies\">\n"
           "<h2 id=\"h-bodies\">Spending by body</h2>\n",
           out);
    if (p->body_count)
        bodies_chart (page, p);
    fputs ("<table id=\"bodies\">\n<caption>Spending by body</caption>\n<thead><tr>"
           "<th scope=\"col\">Body</th><th scope=\"col\" class=\"n\">Total</th>"
           "<th scope=\"col\" class=\"n\">Could be pooled</th>"
           "<th scope=\"col\" class=\"n\">Not poolable</th>"
           "<th scope=\"col\" class=\"n\">Share poolable</th>"
           "<th scope=\"col\" class=\"n\">Records</th></tr></thead>\n<tbody>\n",
           out);
    for (size_t i = 0; i < p->body_count; i++) {
        const report_page_row_t *body = &p->bodies[i];
        fputs ("<tr><th scope=\"row\">", out);
        text (page, body->key);
        fputs ("</th>", out);
        split_cells (page, body->total_pence, body->poolable_pence, body->records);
    }
    if (!p->body_count)
        fputs ("<tr><td colspan=\"6\">No spending recorded.</td></tr>\n", out);
    fputs ("</tbody>\n</table>\n</section>\n", out);
}

/* What a budget's poolable part makes of it, in words. */
static const char *
pooled_word (const report_page_budget_t *budget)
{
    if (budget->poolable_pence == 0)
        return "no";
    if (budget->poolable_pence == budget->total_pence)
        return "yes";
    return "in part";
}

static void
budgets (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    fputs ("<section id=\"pooling\" aria-labelledby=\"h-pooling\">\n"
           "<h2 id=\"h-pooling\">Which budgets could be pooled</h2>\n"
           "<p class=\"note\">Each body's spending by service, and the part the body considers "
           "poolable: a candidate for a pooled community budget.</p>\n"
           "<table id=\"budgets\">\n<caption>Budgets by body and service</caption>\n<thead><tr>"
           "<th scope=\"col\">Body</th><th scope=\"col\">Service</th>"
           "<th scope=\"col\">Could be pooled</th><th scope=\"col\" class=\"n\">Total</th>"
           "<th scope=\"col\" class=\"n\">Poolable</th>"
           "<th scope=\"col\" class=\"n\">Not poolable</th>"
           "<th scope=\"col\" class=\"n\">Share poolable</th>"
           "<th scope=\"col\" class=\"n\">Records</th></tr></thead>\n<tbody>\n",
           out);
    for (size_t i = 0; i < p->budget_count; i++) {
        const report_page_budget_t *budget = &p->budgets[i];
        fputs ("<tr><td class=\"id\">", out);
        text (page, budget->body);
        fputs ("</td><td>", out);
        text (page, budget->service);
        fprintf (out, "</td><td>%s</td>", pooled_word (budget));
        split_cells (page, budget->total_pence, budget->poolable_pence, budget->records);
    }
    if (!p->budget_count)
        fputs ("<tr><td colspan=\"8\">No spending recorded.</td></tr>\n", out);
    fputs ("</tbody>\n</table>\n</section>\n", out);
}

/* Vertical bars from a zero line: spending above it, credits (a month whose total is negative)
 * below it. */
static void
months_chart (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    int64_t top = 0, bottom = 0;
    for (size_t i = 0; i < p->month_count; i++) {
        if (p->months[i].total_pence > top)
            top = p->months[i].total_pence;
        if (p->months[i].total_pence < bottom)
            bottom = p->months[i].total_pence;
    }
    /* top >= 0 >= bottom, but their distance may not fit an int64: then every value is halved,
     * losing a pixel at most. */
    int64_t span;
    bool halved = __builtin_sub_overflow (top, bottom, &span);
    if (halved) {
        top /= 2;
        bottom /= 2;
        span = top - bottom;
    }
    int64_t scale = scale_of (span, MONTH_HEIGHT);
    int64_t zero = MONTH_TOP + top / scale;
    int64_t slot = (CHART_WIDTH - 20) / (int64_t)p->month_count;
    if (slot > 60)
        slot = 60;
    int64_t bar = slot > 4 ? slot - slot / 5 : slot;
    int64_t height = MONTH_TOP + MONTH_HEIGHT + MONTH_AXIS;
    fprintf (out,
             "<figure>\n<svg viewBox=\"0 0 %d %" PRId64 "\" width=\"%d\" height=\"%" PRId64
             "\" role=\"img\" aria-labelledby=\"months-chart-title\">\n<title "
             "id=\"months-chart-title\">Spending by month (the table below gives the "
             "figures)</title>\n",
             CHART_WIDTH, height, CHART_WIDTH, height);
    for (size_t i = 0; i < p->month_count; i++) {
        const report_page_row_t *month = &p->months[i];
        int64_t value = halved ? month->total_pence / 2 : month->total_pence;
        int64_t length = (value < 0 ? -value : value) / scale;
        int64_t x = 10 + (int64_t)i * slot;
        fputs ("<g><title>", out);
        text (page, month->key);
        fputs (": ", out);
        pounds (page, month->total_pence);
        fprintf (out,
                 "</title><rect class=\"%s\" x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
                 "\" height=\"%" PRId64 "\"/></g>\n",
                 value < 0 ? "credit" : "month", x, value < 0 ? zero : zero - length, bar, length);
        /* Label the first and last months and every April (a fiscal year begins), or all when
         * they fit. */
        bool april = strlen (month->key) == 7 && strcmp (month->key + 5, "04") == 0;
        if (p->month_count <= 12 || i == 0 || i + 1 == p->month_count || april) {
            fprintf (out,
                     "<text x=\"%" PRId64 "\" y=\"%" PRId64 "\" text-anchor=\"middle\" "
                     "font-size=\"10\">",
                     x + bar / 2, height - MONTH_AXIS + 16 + (int64_t)(i % 2) * 12);
            text (page, month->key);
            fputs ("</text>\n", out);
        }
    }
    fprintf (out,
             "<line class=\"axis\" x1=\"8\" y1=\"%" PRId64 "\" x2=\"%d\" y2=\"%" PRId64 "\"/>\n",
             zero, CHART_WIDTH - 8, zero);
    fputs ("</svg>\n<figcaption>Bar height: the month's spending (red below the line: a month of "
           "net credits).</figcaption>\n</figure>\n",
           out);
}

static void
months (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    fputs ("<section id=\"months\" aria-labelledby=\"h-months\">\n"
           "<h2 id=\"h-months\">Spending by month</h2>\n",
           out);
    if (p->month_count)
        months_chart (page, p);
    fputs ("<table id=\"months-table\">\n<caption>Spending by month</caption>\n<thead><tr>"
           "<th scope=\"col\">Month</th><th scope=\"col\" class=\"n\">Total</th>"
           "<th scope=\"col\" class=\"n\">Records</th></tr></thead>\n<tbody>\n",
           out);
    for (size_t i = 0; i < p->month_count; i++) {
        fputs ("<tr><th scope=\"row\">", out);
        text (page, p->months[i].key);
        fputs ("</th><td class=\"n\">", out);
        pounds (page, p->months[i].total_pence);
        fputs ("</td><td class=\"n\">", out);
        count (page, p->months[i].records);
        fputs ("</td></tr>\n", out);
    }
    if (!p->month_count)
        fputs ("<tr><td colspan=\"3\">No spending recorded.</td></tr>\n", out);
    fputs ("</tbody>\n</table>\n</section>\n", out);
}

static void
neighbourhoods (page_t *page, const report_page_t *p)
{
    FILE *out = page->out;
    fputs ("<section id=\"members\" aria-labelledby=\"h-members\">\n"
           "<h2 id=\"h-members\">Neighbourhoods</h2>\n"
           "<table id=\"neighbourhoods\">\n<caption>Member neighbourhoods and their "
           "totals</caption>\n<thead><tr><th scope=\"col\">Neighbourhood</th>"
           "<th scope=\"col\" class=\"n\">Total</th>"
           "<th scope=\"col\" class=\"n\">Share of the total</th>"
           "<th scope=\"col\" class=\"n\">Records</th></tr></thead>\n<tbody>\n",
           out);
    for (size_t i = 0; i < p->neighbourhood_count; i++) {
        fputs ("<tr><th scope=\"row\">", out);
        text (page, p->neighbourhoods[i].key);
        fputs ("</th><td class=\"n\">", out);
        pounds (page, p->neighbourhoods[i].total_pence);
        fputs ("</td><td class=\"n\">", out);
        share (page, p->neighbourhoods[i].total_pence, p->total_pence);
        fputs ("</td><td class=\"n\">", out);
        count (page, p->neighbourhoods[i].records);
        fputs ("</td></tr>\n", out);
    }
    fputs ("</tbody>\n</table>\n</section>\n", out);
}

int
report_page_write (const report_page_t *p, FILE *out, char *err, size_t err_len)
{
    page_t page = {out};
    errno = 0;
    fputs ("<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
           out);
    fputs ("Public spending in ", out);
    text (&page, p->name);
    fprintf (out, " \u2014 totalplace</title>\n<style>%s</style>\n</head>\n<body>\n<header>\n",
             STYLE);
    fputs ("<h1>Public spending in ", out);
    text (&page, p->name);
    fputs ("</h1>\n<p class=\"sub\">", out);
    if (p->fiscal_year) {
        fputs ("Fiscal year ", out);
        text (&page, p->fiscal_year);
        fputs (" (April to March)", out);
    }
    else
        fputs ("Every month stored", out);
    fputs (". Amounts are exact, in pounds and pence, as each public body reported them.</p>\n"
           "</header>\n<main>\n",
           out);
    headline (&page, p);
    bodies (&page, p);
    budgets (&page, p);
    months (&page, p);
    neighbourhoods (&page, p);
    fputs ("</main>\n<footer>\nWritten by totalplace report", out);
    if (p->generated) {
        fputs (" on ", out);
        text (&page, p->generated);
    }
    if (p->store_id && *p->store_id) {
        fputs (" from store ", out);
        text (&page, p->store_id);
    }
    fputs (". &#8220;Could be pooled&#8221; is what each body says of its own budget. The same "
           "figures come from <code>totalplace totals</code> and <code>totalplace "
           "pooling</code>.\n</footer>\n</body>\n</html>\n",
           out);
    if (fflush (out) || ferror (out))
        return err_text (err, err_len, REPORT_PAGE_ERR, "cannot write the page: %s",
                         errno ? strerror (errno) : "write error");
    return 0;
}
