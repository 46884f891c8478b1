/* test_report_page: the report's HTML from typed figures: text from records escaped everywhere it
 * appears, nothing that could load anything, zero totals and empty breakdowns, one month, many
 * bodies (every bar within the chart, the largest filling it), credits, labels cut on a UTF-8
 * boundary, per-resident rounding, and a write error reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report_page.h"

/* ---------------------------------------------------------------- helpers */

/* Not inlined: GCC 12 at -O3 takes the returned buffer for the address of the local that
 * open_memstream fills (-Wdangling-pointer, a false positive that fails the Release build). */
__attribute__ ((noinline)) static char *
written (const report_page_t *page)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    char err[256] = "";
    int rc = report_page_write (page, out, err, sizeof err);
    fclose (out);
    if (rc)
        fail_msg ("report_page_write failed: %s", err);
    return text;
}

static size_t
occurrences (const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr (text, what); p; p = strstr (p + 1, what))
        n++;
    return n;
}

/* Nothing in the page may make a browser fetch anything or run anything. */
static void
assert_self_contained (const char *html)
{
    static const char *const forbidden[] = {"http:",   "https:",  "//",    "src=", "url(",
                                            "@import", "<script", "<link", "<img", "href="};
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
        if (strstr (html, forbidden[i]))
            fail_msg ("the page holds \"%s\"", forbidden[i]);
    assert_non_null (strstr (html, "<!DOCTYPE html>"));
    assert_non_null (strstr (html, "@media print"));
    assert_non_null (strstr (html, "@page{size:A4"));
    assert_non_null (strstr (html, "</html>\n"));
}

/* The value of the first attribute name="..." at or after from, as an integer. */
static long
attribute (const char *from, const char *name)
{
    char pattern[32];
    snprintf (pattern, sizeof pattern, " %s=\"", name);
    const char *at = strstr (from, pattern);
    assert_non_null (at);
    return strtol (at + strlen (pattern), NULL, 10);
}

/* ---------------------------------------------------------------- tests */

static void
test_escape (void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_int_equal (report_page_escape (out, "a<&\">'b"), 0);
    assert_int_equal (report_page_escape (out, NULL), 0);
    fclose (out);
    assert_string_equal (text, "a&lt;&amp;&quot;&gt;&#39;b");
    free (text);
}

static void
test_text_from_records_is_escaped (void **state)
{
    (void)state;
    const char *body = "GB-<&\">";
    const char *service = "Schools & <b>\"youth\"</b>";
    report_page_row_t bodies[] = {{body, 150000, 50000, 3}};
    report_page_budget_t budgets[] = {{body, service, 150000, 50000, 3}};
    report_page_row_t months[] = {{"2013-04", 100000, 0, 2}, {"2013-05", 50000, 0, 1}};
    report_page_row_t members[] = {{"E01<x>", 150000, 0, 3}};
    report_page_t page = {.name = "Estate <&> \"North\"",
                          .fiscal_year = "2013-14",
                          .store_id = "ab<cd",
                          .generated = "2026-11-30 <now>",
                          .total_pence = 150000,
                          .poolable_pence = 50000,
                          .records = 3,
                          .bodies = bodies,
                          .body_count = 1,
                          .budgets = budgets,
                          .budget_count = 1,
                          .months = months,
                          .month_count = 2,
                          .neighbourhoods = members,
                          .neighbourhood_count = 1};
    char *html = written (&page);
    assert_self_contained (html);
    /* Not one raw copy of a text from records or of the names given. */
    assert_null (strstr (html, "<b>"));
    assert_null (strstr (html, "GB-<"));
    assert_null (strstr (html, "<x>"));
    assert_null (strstr (html, "<now>"));
    assert_null (strstr (html, "ab<cd"));
    assert_null (strstr (html, "<&>"));
    /* The body appears in the table, the chart's label and the bar's title, escaped. */
    assert_int_equal (occurrences (html, "GB-&lt;&amp;&quot;&gt;"), 4);
    assert_non_null (strstr (html, "Schools &amp; &lt;b&gt;&quot;youth&quot;&lt;/b&gt;"));
    assert_non_null (strstr (html, "Estate &lt;&amp;&gt; &quot;North&quot;"));
    assert_non_null (strstr (html, "E01&lt;x&gt;"));
    /* Amounts as the CLI's tables write them, the share of a body's budget and "in part". */
    assert_non_null (strstr (html, "<dd id=\"total\">£1,500.00</dd>"));
    assert_non_null (strstr (html, "33.3%"));
    assert_non_null (strstr (html, "<td>in part</td>"));
    assert_non_null (strstr (html, "Fiscal year 2013-14"));
    assert_non_null (strstr (html, "2013-04 to 2013-05"));
    free (html);
}

static void
test_zero_totals (void **state)
{
    (void)state;
    report_page_row_t members[] = {{"E01000001", 0, 0, 0}, {"E01000002", 0, 0, 0}};
    report_page_t page = {
        .name = "Nowhere", .residents = 0, .neighbourhoods = members, .neighbourhood_count = 2};
    char *html = written (&page);
    assert_self_contained (html);
    assert_non_null (strstr (html, "<dd id=\"total\">£0.00</dd>"));
    assert_non_null (strstr (html, "<dd id=\"per-resident\">n/a"));
    assert_non_null (strstr (html, "<dd id=\"poolable-share\">n/a"));
    assert_non_null (strstr (html, "<dd id=\"period\">none"));
    assert_non_null (strstr (html, "<dd id=\"bodies-count\">0</dd>"));
    assert_non_null (strstr (html, "Every month stored"));
    /* Nothing to draw: no chart, and the tables say so. */
    assert_null (strstr (html, "<svg"));
    assert_int_equal (occurrences (html, "No spending recorded."), 3);
    /* Both members, each n/a of a zero total. */
    assert_non_null (strstr (html, "<th scope=\"row\">E01000002</th><td class=\"n\">£0.00</td>"
                                   "<td class=\"n\">n/a</td>"));
    free (html);
}

static void
test_one_month_and_residents (void **state)
{
    (void)state;
    report_page_row_t bodies[] = {{"GB-A", 1000001, 1000001, 1}};
    report_page_budget_t budgets[] = {{"GB-A", "Policing", 1000001, 1000001, 1}};
    report_page_row_t months[] = {{"2015-01", 1000001, 0, 1}};
    report_page_row_t members[] = {{"E01000004", 1000001, 0, 1}};
    report_page_t page = {.name = "E01000004",
                          .residents = 1500,
                          .total_pence = 1000001,
                          .poolable_pence = 1000001,
                          .records = 1,
                          .bodies = bodies,
                          .body_count = 1,
                          .budgets = budgets,
                          .budget_count = 1,
                          .months = months,
                          .month_count = 1,
                          .neighbourhoods = members,
                          .neighbourhood_count = 1};
    char *html = written (&page);
    assert_self_contained (html);
    assert_non_null (strstr (html, "<dd id=\"period\">2015-01 <small>(1 month with spending)"));
    assert_null (strstr (html, " to 2015-01"));
    /* 1,000,001 / 1,500 = 666.667 pence: 667 */
    assert_non_null (strstr (html, "<dd id=\"per-resident\">£6.67 <small>(1,500 residents)"));
    assert_non_null (strstr (html, "100.0%"));
    assert_non_null (strstr (html, "<td>yes</td>"));
    /* One month bar, as tall as the chart (to the pixel: lengths are whole pixels, rounded down).
     */
    const char *chart = strstr (html, "months-chart-title");
    assert_non_null (chart);
    assert_int_equal (occurrences (chart, "class=\"month\""), 1);
    long height = attribute (strstr (chart, "class=\"month\""), "height");
    assert_true (height >= 219 && height <= 220);
    free (html);
}

static void
test_many_bodies (void **state)
{
    (void)state;
    enum { BODIES = 200 };
    report_page_row_t bodies[BODIES];
    char names[BODIES][12];
    int64_t total = 0, poolable = 0;
    for (int i = 0; i < BODIES; i++) {
        snprintf (names[i], sizeof names[i], "GB-B%03d", i);
        /* Largest first, as the caller orders them; a credit among them. */
        int64_t amount = i == BODIES - 1 ? -5000 : (int64_t)(BODIES - i) * 123457;
        int64_t part = i % 3 == 0 ? amount / 3 : 0;
        bodies[i] = (report_page_row_t){names[i], amount, part, i + 1};
        total += amount;
        poolable += part;
    }
    report_page_row_t members[] = {{"E01000001", total, 0, 1}};
    report_page_t page = {.name = "Big",
                          .total_pence = total,
                          .poolable_pence = poolable,
                          .records = 1,
                          .bodies = bodies,
                          .body_count = BODIES,
                          .neighbourhoods = members,
                          .neighbourhood_count = 1};
    char *html = written (&page);
    assert_self_contained (html);
    assert_non_null (strstr (html, "<dd id=\"bodies-count\">200</dd>"));
    const char *table = strstr (html, "<table id=\"bodies\">");
    assert_non_null (table);
    for (int i = 0; i < BODIES; i++) {
        char row[128];
        snprintf (row, sizeof row, "<th scope=\"row\">%.11s</th>", names[i]);
        assert_non_null (strstr (table, row));
    }
    /* Every bar within the bar area; the largest body's two parts fill it (to the pixel). */
    const char *chart = strstr (html, "bodies-chart-title");
    long widest = 0;
    size_t bars = 0;
    for (const char *g = strstr (chart, "<g>"); g && g < table; g = strstr (g + 1, "<g>")) {
        long pool = attribute (strstr (g, "class=\"pool\""), "width");
        long rest = attribute (strstr (g, "class=\"notpool\""), "width");
        assert_true (pool >= 0 && rest >= 0 && pool + rest <= 430);
        if (pool + rest > widest)
            widest = pool + rest;
        bars++;
    }
    assert_int_equal (bars, BODIES);
    assert_true (widest >= 429 && widest <= 430);
    /* The credit has no length, and its table row says it. */
    assert_non_null (strstr (table, "-£50.00"));
    free (html);
}

static void
test_credit_month_and_long_label (void **state)
{
    (void)state;
    /* 40 two-byte characters: the chart's label keeps 30 of them, whole, and an ellipsis. */
    char body[128] = "";
    for (int i = 0; i < 40; i++)
        strcat (body, "\xc3\x89");
    report_page_row_t bodies[] = {{body, 100, 0, 2}};
    report_page_row_t months[] = {{"2013-04", 300, 0, 1}, {"2013-05", -200, 0, 1}};
    report_page_row_t members[] = {{"E01000001", 100, 0, 2}};
    report_page_t page = {.name = "E01000001",
                          .total_pence = 100,
                          .records = 2,
                          .bodies = bodies,
                          .body_count = 1,
                          .months = months,
                          .month_count = 2,
                          .neighbourhoods = members,
                          .neighbourhood_count = 1};
    char *html = written (&page);
    char label[128] = ">";
    for (int i = 0; i < 30; i++)
        strcat (label, "\xc3\x89");
    strcat (label, "\xe2\x80\xa6</text>");
    assert_non_null (strstr (html, label));
    /* The credit month is drawn below the zero line: its bar starts on the line. */
    const char *credit = strstr (html, "class=\"credit\"");
    assert_non_null (credit);
    const char *line = strstr (html, "class=\"axis\"");
    assert_non_null (line);
    assert_int_equal (attribute (credit, "y"), attribute (line, "y1"));
    assert_true (attribute (credit, "height") > 0);
    free (html);
}

static void
test_per_resident (void **state)
{
    (void)state;
    int64_t value = 0;
    assert_int_equal (report_page_per_resident (1000, 3, &value), 0);
    assert_int_equal (value, 333);
    assert_int_equal (report_page_per_resident (1001, 2, &value), 0);
    assert_int_equal (value, 501); /* 500.5: half away from zero */
    assert_int_equal (report_page_per_resident (-1001, 2, &value), 0);
    assert_int_equal (value, -501);
    assert_int_equal (report_page_per_resident (-1000, 3, &value), 0);
    assert_int_equal (value, -333);
    assert_int_equal (report_page_per_resident (INT64_MAX, 2, &value), 0);
    assert_int_equal (value, INT64_MAX / 2 + 1);
    assert_int_equal (report_page_per_resident (INT64_MIN, 1, &value), 0);
    assert_int_equal (value, INT64_MIN);
    assert_int_equal (report_page_per_resident (100, 0, &value), -1);
    assert_int_equal (report_page_per_resident (100, -5, &value), -1);
}

static void
test_write_error_is_reported (void **state)
{
    (void)state;
    FILE *full = fopen ("/dev/full", "w");
    if (!full)
        fail_msg ("cannot open /dev/full");
    report_page_row_t members[] = {{"E01000001", 0, 0, 0}};
    report_page_t page = {.name = "x", .neighbourhoods = members, .neighbourhood_count = 1};
    char err[256] = "";
    assert_int_equal (report_page_write (&page, full, err, sizeof err), REPORT_PAGE_ERR);
    assert_non_null (strstr (err, "cannot write the page"));
    fclose (full);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_escape),       cmocka_unit_test (test_text_from_records_is_escaped),
        cmocka_unit_test (test_zero_totals),  cmocka_unit_test (test_one_month_and_residents),
        cmocka_unit_test (test_many_bodies),  cmocka_unit_test (test_credit_month_and_long_label),
        cmocka_unit_test (test_per_resident), cmocka_unit_test (test_write_error_is_reported),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
