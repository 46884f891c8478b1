/* test_report: money, share and CSV formatting, table alignment, JSON shape read back with jansson,
 * CSV read back with libcsv, and misuse reported rather than printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <csv.h>
#include <jansson.h>

#include "report.h"

/* ---------------------------------------------------------------- helpers */

/* The report written in format, as a malloc'd string; asserts that writing succeeded. */
static char *
written (report_t *report, report_format_t format)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    char err[256] = "";
    int rc = report_write (report, format, out, err, sizeof err);
    fclose (out);
    if (rc)
        fail_msg ("report_write failed: %s", err);
    return text;
}

/* report_write's failure message; asserts that it failed. */
static void
assert_write_fails (report_t *report, report_format_t format, const char *expected_in_message)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    char err[256] = "";
    assert_int_equal (report_write (report, format, out, err, sizeof err), REPORT_ERR);
    fclose (out);
    if (!strstr (err, expected_in_message))
        fail_msg ("message \"%s\" lacks \"%s\"", err, expected_in_message);
    free (text);
}

static size_t
utf8_width (const char *text, size_t len)
{
    size_t width = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            width++;
    return width;
}

/* Removes every occurrence of the bytes of `drop` (a UTF-8 string treated as one unit). */
static void
remove_all (char *text, const char *drop)
{
    size_t len = strlen (drop);
    char *out = text;
    for (char *p = text; *p;) {
        if (strncmp (p, drop, len) == 0)
            p += len;
        else
            *out++ = *p++;
    }
    *out = '\0';
}

/* A simple deterministic generator so a failure can be reproduced. */
static uint64_t
next_random (uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* ---------------------------------------------------------------- pounds */

static void
check_pounds (int64_t pence, const char *people, const char *plain)
{
    char out[REPORT_POUNDS_LEN];
    assert_string_equal (report_pounds (pence, true, out, sizeof out), people);
    assert_string_equal (report_pounds (pence, false, out, sizeof out), plain);
}

static void
test_pounds_known_values (void **state)
{
    (void)state;
    check_pounds (0, "£0.00", "0.00");
    check_pounds (1, "£0.01", "0.01");
    check_pounds (-1, "-£0.01", "-0.01");
    check_pounds (99, "£0.99", "0.99");
    check_pounds (100, "£1.00", "1.00");
    check_pounds (-1200, "-£12.00", "-12.00");
    check_pounds (99999, "£999.99", "999.99");
    check_pounds (100000, "£1,000.00", "1000.00");
    check_pounds (123456789, "£1,234,567.89", "1234567.89");
    check_pounds (-100000000, "-£1,000,000.00", "-1000000.00");
    check_pounds (INT64_MAX, "£92,233,720,368,547,758.07", "92233720368547758.07");
    check_pounds (INT64_MIN, "-£92,233,720,368,547,758.08", "-92233720368547758.08");
    check_pounds (INT64_MIN + 1, "-£92,233,720,368,547,758.07", "-92233720368547758.07");
}

/* Reads a plain pounds text back into pence without going through floating point. */
static int64_t
parse_plain_pounds (const char *text)
{
    char digits[64];
    size_t n = 0;
    for (const char *p = text; *p; p++)
        if (*p != '.')
            digits[n++] = *p;
    digits[n] = '\0';
    assert_non_null (strchr (text, '.'));
    assert_int_equal (strlen (strchr (text, '.')), 3); /* always two decimals */
    return strtoll (digits, NULL, 10);
}

static void
test_pounds_round_trip (void **state)
{
    (void)state;
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 20000; i++) {
        uint64_t r = next_random (&seed);
        /* Mix magnitudes: small amounts, typical ones and the full int64 range. */
        int64_t pence = (int64_t)r;
        if (i % 3 == 0)
            pence = (int64_t)(r % 200001) - 100000;
        else if (i % 3 == 1)
            pence = (int64_t)(r % 20000000001u) - 10000000000;
        char people[REPORT_POUNDS_LEN], plain[REPORT_POUNDS_LEN];
        report_pounds (pence, true, people, sizeof people);
        report_pounds (pence, false, plain, sizeof plain);
        assert_int_equal (parse_plain_pounds (plain), pence);
        /* The people's form is the plain one with a pound sign and thousands separators. */
        char stripped[REPORT_POUNDS_LEN];
        strcpy (stripped, people);
        remove_all (stripped, "£");
        remove_all (stripped, ",");
        assert_string_equal (stripped, plain);
        /* Separators every three digits of the pounds, counted from the point. */
        const char *point = strchr (people, '.');
        const char *first = people + (pence < 0 ? 1 : 0) + strlen ("£");
        for (const char *p = first; p < point; p++) {
            size_t from_point = (size_t)(point - p);
            assert_true ((*p == ',') == (from_point % 4 == 0));
        }
    }
}

/* ---------------------------------------------------------------- shares */

static void
check_share (int64_t part, int64_t whole, const char *people, const char *plain)
{
    char out[REPORT_SHARE_LEN];
    assert_string_equal (report_share_text (part, whole, true, out, sizeof out), people);
    assert_string_equal (report_share_text (part, whole, false, out, sizeof out), plain);
}

static void
test_share_known_values (void **state)
{
    (void)state;
    check_share (1, 3, "33.3%", "33.3");
    check_share (2, 3, "66.7%", "66.7");
    check_share (-1, 3, "-33.3%", "-33.3");
    check_share (0, 7, "0.0%", "0.0");
    check_share (5, 5, "100.0%", "100.0");
    check_share (6, 5, "120.0%", "120.0");
    check_share (1, 2000, "0.1%", "0.1"); /* exactly half a per-mille rounds away from 0 */
    check_share (-1, 2000, "-0.1%", "-0.1");
    check_share (1, 2001, "0.0%", "0.0");  /* just under half */
    check_share (-1, 2001, "0.0%", "0.0"); /* rounds to zero: no "-0.0%" */
    check_share (1, 1999, "0.1%", "0.1");
    check_share (1, 0, "n/a", "n/a");
    check_share (0, 0, "n/a", "n/a");
    check_share (1, -5, "n/a", "n/a");
    check_share (INT64_MAX, INT64_MAX, "100.0%", "100.0");
    check_share (INT64_MIN, INT64_MAX, "-100.0%", "-100.0");
    check_share (INT64_MAX / 2, INT64_MAX, "50.0%", "50.0");
    int64_t permille;
    assert_int_equal (report_share_permille (INT64_MAX, 1, &permille), -1); /* beyond int64 */
    assert_int_equal (report_share_permille (123, 1000, &permille), 0);
    assert_int_equal (permille, 123);
}

static void
test_share_matches_reference (void **state)
{
    (void)state;
    uint64_t seed = 12345;
    for (int i = 0; i < 20000; i++) {
        int64_t whole = (int64_t)(next_random (&seed) % 1000000000) + 1;
        int64_t part = (int64_t)(next_random (&seed) % 3000000001u) - 1500000000;
        /* Reference: round half away from zero of |part| * 1000 / whole, sign restored. */
        int64_t scaled = (part < 0 ? -part : part) * 1000;
        int64_t expected = (2 * scaled + whole) / (2 * whole);
        if (part < 0)
            expected = -expected;
        int64_t permille;
        assert_int_equal (report_share_permille (part, whole, &permille), 0);
        assert_int_equal (permille, expected);
    }
}

/* ---------------------------------------------------------------- CSV */

typedef struct {
    char fields[16][128];
    size_t field_count;
    size_t rows;
} csv_read_t;

static void
csv_field_cb (void *data, size_t len, void *arg)
{
    csv_read_t *read = arg;
    if (read->rows == 0 && read->field_count < 16) {
        assert_true (len < 128);
        memcpy (read->fields[read->field_count], data, len);
        read->fields[read->field_count][len] = '\0';
        read->field_count++;
    }
}

static void
csv_row_cb (int c, void *arg)
{
    (void)c;
    ((csv_read_t *)arg)->rows++;
}

static void
test_csv_field_escaping (void **state)
{
    (void)state;
    static const struct {
        const char *text, *expected;
    } cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"a,b", "\"a,b\""},
        {"say \"hi\"", "\"say \"\"hi\"\"\""},
        {"\"", "\"\"\"\""},
        {"two\nlines", "\"two\nlines\""},
        {"cr\rhere", "\"cr\rhere\""},
        {" leading", "\" leading\""},
        {"trailing ", "\"trailing \""},
        {"inner space", "inner space"},
        {"£1,234.56", "\"£1,234.56\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream (&text, &size);
        assert_int_equal (report_csv_field (out, cases[i].text), 0);
        fclose (out);
        assert_string_equal (text, cases[i].expected);

        /* And a CSV reader gets the original text back. */
        char line[300];
        snprintf (line, sizeof line, "%s,end\r\n", text);
        struct csv_parser parser;
        assert_int_equal (csv_init (&parser, CSV_STRICT), 0);
        csv_read_t read = {0};
        assert_int_equal (csv_parse (&parser, line, strlen (line), csv_field_cb, csv_row_cb, &read),
                          strlen (line));
        csv_fini (&parser, csv_field_cb, csv_row_cb, &read);
        csv_free (&parser);
        assert_int_equal (read.field_count, 2);
        assert_string_equal (read.fields[0], cases[i].text);
        assert_string_equal (read.fields[1], "end");
        free (text);
    }
}

static const report_column_t AMOUNT_COLUMNS[] = {{"body", "key", REPORT_TEXT},
                                                 {"total", "amount_pence", REPORT_PENCE},
                                                 {"records", "records", REPORT_INTEGER}};

static void
test_csv_report (void **state)
{
    (void)state;
    report_t *report = report_new ("totals");
    report_set_caption (report, "not in CSV");
    report_set_param (report, "by", "service");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_amount_row (report, "Adult social care, \"older\" people", 123456789, 3);
    report_amount_row (report, "Refunds", -1200, 1);
    report_amount_row (report, "Nothing", 0, 0);
    char *text = written (report, REPORT_CSV);
    assert_string_equal (text, "body,total,records\r\n"
                               "\"Adult social care, \"\"older\"\" people\",1234567.89,3\r\n"
                               "Refunds,-12.00,1\r\n"
                               "Nothing,0.00,0\r\n");
    free (text);
    report_destroy (&report);
    assert_null (report);
    report_destroy (&report); /* safe twice */
}

static void
test_csv_sections_and_single (void **state)
{
    (void)state;
    static const report_column_t counters[] = {{"batches", "batches", REPORT_UNSIGNED},
                                               {"healthy", "healthy", REPORT_BOOL}};
    static const report_column_t agents[] = {{"agent", "agent_id", REPORT_TEXT},
                                             {"last seen", "last_seen", REPORT_TIME}};
    report_t *report = report_new ("stats");
    report_add_section (report, "counters", counters, 2, true);
    report_row (report);
    report_unsigned (report, UINT64_MAX);
    report_bool (report, true);
    report_add_section (report, "agents", agents, 2, false);
    report_row (report);
    report_text (report, "agent-1");
    report_time (report, 1700000000);
    report_row (report);
    report_text (report, "agent-2");
    report_time (report, 0);
    char *text = written (report, REPORT_CSV);
    assert_string_equal (text, "batches,healthy\r\n"
                               "18446744073709551615,yes\r\n"
                               "\r\n"
                               "agent,last seen\r\n"
                               "agent-1,2023-11-14T22:13:20Z\r\n"
                               "agent-2,1970-01-01T00:00:00Z\r\n");
    free (text);
    report_destroy (&report);
}

/* ---------------------------------------------------------------- table */

/* Splits text into lines (in place); returns how many. */
static size_t
split_lines (char *text, char *lines[], size_t max)
{
    size_t n = 0;
    for (char *p = text; *p && n < max;) {
        lines[n++] = p;
        char *nl = strchr (p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

static void
test_table_alignment (void **state)
{
    (void)state;
    report_t *report = report_new ("totals");
    report_set_caption (report, "Totals of E01000001 by body");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_amount_row (report, "GB-LAE-BNS", 123456789, 1234);
    report_amount_row (report, "GB-POL", -1200, 1);
    report_amount_row (report, "X", INT64_MIN, 2);
    char *text = written (report, REPORT_TABLE);
    char *lines[16];
    size_t n = split_lines (text, lines, 16);
    /* caption, blank, header, rule, three rows */
    assert_int_equal (n, 7);
    assert_string_equal (lines[0], "Totals of E01000001 by body");
    assert_string_equal (lines[1], "");
    assert_non_null (strstr (lines[4], "GB-LAE-BNS"));
    assert_non_null (strstr (lines[4], "£1,234,567.89"));
    assert_non_null (strstr (lines[4], "1,234"));
    assert_non_null (strstr (lines[5], "-£12.00"));
    assert_non_null (strstr (lines[6], "-£92,233,720,368,547,758.08"));
    /* The last column is numeric, so right-aligned: every line has the same display width. */
    size_t width = utf8_width (lines[2], strlen (lines[2]));
    for (size_t i = 3; i < n; i++)
        assert_int_equal (utf8_width (lines[i], strlen (lines[i])), width);
    /* The amounts end at the same column in every row and in the header ("total"). */
    size_t total_end =
        utf8_width (lines[2], (size_t)(strstr (lines[2], "total") - lines[2])) + strlen ("total");
    const char *amounts[] = {"£1,234,567.89", "-£12.00", "-£92,233,720,368,547,758.08"};
    for (size_t i = 0; i < 3; i++) {
        const char *at = strstr (lines[4 + i], amounts[i]);
        assert_int_equal (utf8_width (lines[4 + i], (size_t)(at - lines[4 + i])) +
                              utf8_width (amounts[i], strlen (amounts[i])),
                          total_end);
    }
    /* Text is left-aligned: every row starts with its key. */
    assert_int_equal (strncmp (lines[4], "GB-LAE-BNS", 10), 0);
    assert_int_equal (strncmp (lines[6], "X ", 2), 0);
    /* The rule is dashes under each heading. */
    assert_int_equal (strspn (lines[3], "- "), strlen (lines[3]));
    free (text);
    report_destroy (&report);
}

static void
test_table_empty_and_single (void **state)
{
    (void)state;
    static const report_column_t record[] = {{"body", "body_id", REPORT_TEXT},
                                             {"amount", "amount_pence", REPORT_PENCE},
                                             {"withdrawn", "withdrawn", REPORT_BOOL},
                                             {"share", "share", REPORT_SHARE}};
    report_t *report = report_new ("record");
    report_add_section (report, "record", record, 4, true);
    report_row (report);
    report_text (report, "GB-LAE-BNS");
    report_pence (report, -5);
    report_bool (report, false);
    report_share (report, 1, 0);
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    char *text = written (report, REPORT_TABLE);
    assert_string_equal (text, "body       GB-LAE-BNS\n"
                               "amount     -£0.05\n"
                               "withdrawn  no\n"
                               "share      n/a\n"
                               "\n"
                               "rows\n"
                               "body  total  records\n"
                               "----  -----  -------\n"
                               "(no rows)\n");
    free (text);
    report_destroy (&report);
}

/* ---------------------------------------------------------------- JSON */

static void
test_json_shape (void **state)
{
    (void)state;
    report_t *report = report_new ("totals");
    report_set_param (report, "neighbourhood", "E01000001");
    report_set_param (report, "by", "body");
    report_set_param (report, "month", NULL);
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_amount_row (report, "GB-LAE-BNS", 123456, 3);
    report_amount_row (report, "say \"hi\", ok", INT64_MIN, 1);
    report_amount_row (report, "max", INT64_MAX, INT64_MAX);
    char *text = written (report, REPORT_JSON);
    json_error_t error;
    json_t *root = json_loads (text, 0, &error);
    if (!root)
        fail_msg ("not JSON (%s): %s", error.text, text);
    assert_true (json_is_object (root));
    assert_string_equal (json_string_value (json_object_get (root, "query")), "totals");
    assert_string_equal (json_string_value (json_object_get (root, "neighbourhood")), "E01000001");
    assert_string_equal (json_string_value (json_object_get (root, "by")), "body");
    assert_true (json_is_null (json_object_get (root, "month")));
    json_t *rows = json_object_get (root, "rows");
    assert_true (json_is_array (rows));
    assert_int_equal (json_array_size (rows), 3);
    json_t *row = json_array_get (rows, 0);
    assert_int_equal (json_object_size (row), 3);
    assert_string_equal (json_string_value (json_object_get (row, "key")), "GB-LAE-BNS");
    assert_true (json_is_integer (json_object_get (row, "amount_pence")));
    assert_int_equal (json_integer_value (json_object_get (row, "amount_pence")), 123456);
    assert_int_equal (json_integer_value (json_object_get (row, "records")), 3);
    row = json_array_get (rows, 1);
    assert_string_equal (json_string_value (json_object_get (row, "key")), "say \"hi\", ok");
    assert_true (json_integer_value (json_object_get (row, "amount_pence")) == INT64_MIN);
    row = json_array_get (rows, 2);
    assert_true (json_integer_value (json_object_get (row, "amount_pence")) == INT64_MAX);
    assert_true (json_integer_value (json_object_get (row, "records")) == INT64_MAX);
    /* Never a real: amounts are exact integers in the text itself. */
    assert_null (strstr (text, "e+"));
    assert_non_null (strstr (text, "-9223372036854775808"));
    json_decref (root);
    free (text);
    report_destroy (&report);
}

static void
test_json_types (void **state)
{
    (void)state;
    static const report_column_t columns[] = {
        {"share", "share_permille", REPORT_SHARE},
        {"big", "big", REPORT_UNSIGNED},
        {"yes", "flag", REPORT_BOOL},
        {"when", "when", REPORT_TIME},
        {"n", "n", REPORT_INTEGER},
    };
    report_t *report = report_new ("types");
    report_add_section (report, "single", columns, 5, true);
    report_row (report);
    report_share (report, 1, 3);
    report_unsigned (report, UINT64_MAX);
    report_bool (report, true);
    report_time (report, 1700000000);
    report_integer (report, -7);
    report_add_section (report, "list", columns, 5, false);
    report_row (report);
    report_share (report, 5, 0);
    report_unsigned (report, 42);
    report_bool (report, false);
    report_time (report, 0);
    report_integer (report, 0);
    char *text = written (report, REPORT_JSON);
    json_t *root = json_loads (text, 0, NULL);
    assert_non_null (root);
    json_t *single = json_object_get (root, "single");
    assert_true (json_is_object (single));
    assert_int_equal (json_integer_value (json_object_get (single, "share_permille")), 333);
    /* Beyond the signed 64-bit JSON integer: the exact digits as a string. */
    assert_string_equal (json_string_value (json_object_get (single, "big")),
                         "18446744073709551615");
    assert_true (json_is_true (json_object_get (single, "flag")));
    assert_string_equal (json_string_value (json_object_get (single, "when")),
                         "2023-11-14T22:13:20Z");
    assert_int_equal (json_integer_value (json_object_get (single, "n")), -7);
    json_t *list = json_object_get (root, "list");
    assert_true (json_is_array (list));
    json_t *row = json_array_get (list, 0);
    assert_true (json_is_null (json_object_get (row, "share_permille")));
    assert_int_equal (json_integer_value (json_object_get (row, "big")), 42);
    assert_true (json_is_false (json_object_get (row, "flag")));
    json_decref (root);
    free (text);
    report_destroy (&report);
}

static void
test_json_rejects_invalid_utf8 (void **state)
{
    (void)state;
    report_t *report = report_new ("totals");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_amount_row (report, "bad \xff byte", 1, 1);
    assert_write_fails (report, REPORT_JSON, "UTF-8");
    /* The table shows the bytes as they are. */
    char *text = written (report, REPORT_TABLE);
    assert_non_null (strstr (text, "bad \xff byte"));
    free (text);
    report_destroy (&report);
}

/* ---------------------------------------------------------------- misuse */

static void
test_misuse_is_reported (void **state)
{
    (void)state;
    report_t *report = report_new ("totals");
    report_text (report, "no row yet");
    assert_write_fails (report, REPORT_CSV, "outside a row");
    report_destroy (&report);

    report = report_new ("totals");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_row (report);
    report_pence (report, 1); /* the first column is text */
    assert_write_fails (report, REPORT_TABLE, "column \"body\"");
    report_destroy (&report);

    report = report_new ("totals");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_row (report);
    report_text (report, "short row");
    report_row (report);
    report_text (report, "x");
    report_pence (report, 1);
    report_integer (report, 1);
    assert_write_fails (report, REPORT_JSON, "1 of its 3 cells");
    report_destroy (&report);

    report = report_new ("totals");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_amount_row (report, "x", 1, 1);
    report_integer (report, 2);
    assert_write_fails (report, REPORT_CSV, "more than its 3 cells");
    report_destroy (&report);

    report = report_new ("totals");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_row (report); /* a row started and left empty */
    assert_write_fails (report, REPORT_CSV, "0 of its 3 cells");
    report_destroy (&report);

    report = report_new ("record");
    report_add_section (report, "record", AMOUNT_COLUMNS, 3, true);
    report_amount_row (report, "a", 1, 1);
    report_amount_row (report, "b", 1, 1);
    assert_write_fails (report, REPORT_JSON, "single row");
    report_destroy (&report);
}

static void
test_format_parse (void **state)
{
    (void)state;
    report_format_t format = REPORT_JSON;
    assert_int_equal (report_format_parse ("table", &format), 0);
    assert_int_equal (format, REPORT_TABLE);
    assert_int_equal (report_format_parse ("csv", &format), 0);
    assert_int_equal (format, REPORT_CSV);
    assert_int_equal (report_format_parse ("json", &format), 0);
    assert_int_equal (format, REPORT_JSON);
    assert_int_equal (report_format_parse ("JSON", &format), -1);
    assert_int_equal (report_format_parse ("", &format), -1);
    assert_int_equal (report_format_parse (NULL, &format), -1);
    assert_int_equal (format, REPORT_JSON);
}

static void
test_write_error_is_reported (void **state)
{
    (void)state;
    FILE *full = fopen ("/dev/full", "w");
    if (!full)
        fail_msg ("cannot open /dev/full to simulate a full disk");
    report_t *report = report_new ("totals");
    report_add_section (report, "rows", AMOUNT_COLUMNS, 3, false);
    report_amount_row (report, "x", 1, 1);
    char err[256] = "";
    assert_int_equal (report_write (report, REPORT_CSV, full, err, sizeof err), REPORT_ERR);
    assert_non_null (strstr (err, "cannot write"));
    fclose (full);
    report_destroy (&report);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_pounds_known_values),
        cmocka_unit_test (test_pounds_round_trip),
        cmocka_unit_test (test_share_known_values),
        cmocka_unit_test (test_share_matches_reference),
        cmocka_unit_test (test_csv_field_escaping),
        cmocka_unit_test (test_csv_report),
        cmocka_unit_test (test_csv_sections_and_single),
        cmocka_unit_test (test_table_alignment),
        cmocka_unit_test (test_table_empty_and_single),
        cmocka_unit_test (test_json_shape),
        cmocka_unit_test (test_json_types),
        cmocka_unit_test (test_json_rejects_invalid_utf8),
        cmocka_unit_test (test_misuse_is_reported),
        cmocka_unit_test (test_format_parse),
        cmocka_unit_test (test_write_error_is_reported),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
