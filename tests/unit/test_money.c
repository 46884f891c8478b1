/* test_money: every amount form UK exports use, every refusal, and the int64 and wire limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "money.h"
#include "wire.h"

typedef struct {
    const char *text;
    int64_t pence;
} accepted_t;

static void
test_accepted_forms (void **state)
{
    (void)state;
    static const accepted_t cases[] = {
        {"1234.56", 123456},
        {"1234.5", 123450},
        {"1234", 123400},
        {"\xC2\xA3"
         "1,234.56",
         123456},
        {"-12.00", -1200},
        {"(12.00)", -1200},
        {"-\xC2\xA3"
         "12.00",
         -1200},
        {"\xC2\xA3-12.00", -1200},
        {"(\xC2\xA3"
         "1,000)",
         -100000},
        {"+3.00", 300},
        {"  7.05  ", 705},
        {"\t42\t", 4200},
        {"( 12.50 )", -1250},
        {"0", 0},
        {"-0.00", 0},
        {"0.01", 1},
        {"-0.01", -1},
        {".5", 50},
        {".05", 5},
        {"007", 700},
        {"1,234,567.89", 123456789},
        {"999", 99900},
        {"\xC2\xA3 12", 1200},
        {"\xA3"
         "5.00",
         500}, /* Windows-1252 pound sign */
        {"1.2300", 123},
        {"-1234.5600", -123456},
        {"10000000000000.00", INT64_C (1000000000000000)},
        {"-10,000,000,000,000", -INT64_C (1000000000000000)},
        {"9999999999999.99", INT64_C (999999999999999)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t pence = 424242;
        char err[256] = "";
        int rc = money_parse_pence (cases[i].text, &pence, err, sizeof err);
        if (rc != 0)
            fail_msg ("\"%s\" refused: %s", cases[i].text, err);
        if (pence != cases[i].pence)
            fail_msg ("\"%s\" gave %lld pence, expected %lld", cases[i].text, (long long)pence,
                      (long long)cases[i].pence);
    }
}

typedef struct {
    const char *text;
    const char *reason; /* must appear in the message */
} refused_t;

static void
test_refused_forms (void **state)
{
    (void)state;
    static const refused_t cases[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"abc", "not an amount"},
        {"$12", "not an amount"},
        {"1.2.3", "more than one decimal point"},
        {"--1", "more than one sign"},
        {"+-1", "more than one sign"},
        {"-\xC2\xA3-1", "more than one sign"},
        {"\xC2\xA3\xC2\xA3"
         "1",
         "more than one pound sign"},
        {"(12.00", "opening parenthesis without a closing one"},
        {"12.00)", "closing parenthesis without an opening one"},
        {"(-12.00)", "sign inside parentheses"},
        {"((12))", "not an amount"},
        {"1.234", "fractions of a penny"},
        {"0.001", "fractions of a penny"},
        {"1.2301", "fractions of a penny"},
        {"12,34.5", "thousands separator not in groups of three"},
        {"1234,567", "thousands separator not in groups of three"},
        {"1,2345", "thousands separator not in groups of three"},
        {"1,,234", "thousands separator not in groups of three"},
        {"1,", "thousands separator not in groups of three"},
        {",123", "thousands separator before any digit"},
        {"1.5,00", "thousands separator after the decimal point"},
        {"\xC2\xA3", "no digits"},
        {"-", "no digits"},
        {"()", "no digits"},
        {"12.", "no digits after the decimal point"},
        {".", "no digits"},
        {"1 234", "unexpected '2'"},
        {"12-", "a sign after the digits"},
        {"12 GBP", "unexpected 'G'"},
        {"1e5", "unexpected 'e'"},
        {"10000000000000.01", "beyond the limit"},
        {"-10000000000000.01", "beyond the limit"},
        {"92233720368547758.07", "beyond the limit"}, /* INT64_MAX pence: fits, but too big */
        {"92233720368547758.08", "64-bit"},           /* INT64_MAX + 1 pence */
        {"-92233720368547758.08", "64-bit"},          /* INT64_MIN pence: magnitude overflows */
        {"92233720368547759", "64-bit"},              /* overflows when scaled to pence */
        {"99999999999999999999", "64-bit"},           /* overflows while reading digits */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t pence = 424242;
        char err[256] = "";
        int rc = money_parse_pence (cases[i].text, &pence, err, sizeof err);
        if (rc != -1)
            fail_msg ("\"%s\" accepted as %lld pence", cases[i].text, (long long)pence);
        if (pence != 424242)
            fail_msg ("\"%s\" refused but changed the output", cases[i].text);
        if (!strstr (err, cases[i].reason))
            fail_msg ("\"%s\": message \"%s\" lacks \"%s\"", cases[i].text, err, cases[i].reason);
        /* Every message quotes the text it refused. */
        char quoted[64];
        snprintf (quoted, sizeof quoted, "\"%s\": ", cases[i].text);
        if (strncmp (err, quoted, strlen (quoted)) != 0)
            fail_msg ("message \"%s\" does not start with %s", err, quoted);
    }
}

static void
test_message_is_bounded_and_on_one_line (void **state)
{
    (void)state;
    char text[300];
    memset (text, '1', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    text[200] = 'x';
    char err[512];
    int64_t pence;
    assert_int_equal (money_parse_pence (text, &pence, err, sizeof err), -1);
    assert_true (strlen (err) < 120);
    assert_non_null (strstr (err, "...\""));

    assert_int_equal (money_parse_pence ("1\n2", &pence, err, sizeof err), -1);
    assert_null (strchr (err, '\n'));

    /* A cut must not split a UTF-8 sequence: 39 ASCII bytes then a two-byte pound sign. */
    char utf8[64];
    memset (utf8, '1', 39);
    strcpy (utf8 + 39, "\xC2\xA3x");
    assert_int_equal (money_parse_pence (utf8, &pence, err, sizeof err), -1);
    assert_null (strstr (err, "\xC2..."));
}

static void
test_small_or_missing_error_buffer (void **state)
{
    (void)state;
    int64_t pence = 1;
    assert_int_equal (money_parse_pence ("abc", &pence, NULL, 0), -1);
    char tiny[8];
    assert_int_equal (money_parse_pence ("abc", &pence, tiny, sizeof tiny), -1);
    assert_int_equal (strlen (tiny), sizeof tiny - 1);
    assert_int_equal (money_parse_pence (NULL, &pence, tiny, sizeof tiny), -1);
    assert_int_equal (pence, 1);
}

static void
test_limit_matches_wire (void **state)
{
    (void)state;
    /* The largest amount money accepts must be one wire_validate_record accepts, and one penny
     * more must be refused by both. */
    int64_t pence;
    char err[256];
    assert_int_equal (money_parse_pence ("10000000000000", &pence, err, sizeof err), 0);
    assert_int_equal (pence, WIRE_MAX_ABS_AMOUNT_PENCE);
    assert_int_equal (money_parse_pence ("-10000000000000.00", &pence, err, sizeof err), 0);
    assert_int_equal (pence, -WIRE_MAX_ABS_AMOUNT_PENCE);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_accepted_forms),
        cmocka_unit_test (test_refused_forms),
        cmocka_unit_test (test_message_is_bounded_and_on_one_line),
        cmocka_unit_test (test_small_or_missing_error_buffer),
        cmocka_unit_test (test_limit_matches_wire),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
