/* test_spend_date: every date form UK exports use, leap years, month lengths and clear refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "spend_date.h"

typedef struct {
    const char *text;
    const char *period;
} accepted_t;

static void
test_accepted_forms (void **state)
{
    (void)state;
    static const accepted_t cases[] = {
        {"2013-04-01", "2013-04"},
        {"01/04/2013", "2013-04"},
        {"1/4/2013", "2013-04"},
        {"01-Apr-2013", "2013-04"},
        {"01 Apr 2013", "2013-04"},
        {"1-April-2013", "2013-04"},
        {"01-apr-2013", "2013-04"},
        {"01-APRIL-2013", "2013-04"},
        {"1 Sept 2013", "2013-09"},
        {"1 sep 2013", "2013-09"},
        {"31-Dec-2013", "2013-12"},
        {"2013-04", "2013-04"},
        {"2013-04-01 00:00:00", "2013-04"},
        {"2013-04-01T00:00:00", "2013-04"},
        {"2013-04-30T23:59:59.123Z", "2013-04"},
        {"2013-04-30T23:30:00+01:00", "2013-04"}, /* the month written, whatever the zone */
        {"2013-04-01 09:15", "2013-04"},
        {"31/01/2013 14:30", "2013-01"},
        {"31/01/2013 14:30:00", "2013-01"},
        {"01/04/13", "2013-04"},
        {"01-Apr-13", "2013-04"},
        {"31/12/69", "2069-12"},
        {"01/01/70", "1970-01"},
        {"15/06/99", "1999-06"},
        {"01/01/00", "2000-01"},
        {"01.04.2013", "2013-04"},
        {"01-04-2013", "2013-04"},
        {"  2013-04-01\t", "2013-04"},
        {"April 2013", "2013-04"},
        {"apr-2013", "2013-04"},
        {"29/02/2012", "2012-02"}, /* leap year */
        {"29/02/2000", "2000-02"}, /* divisible by 400: leap */
        {"30/04/2013", "2013-04"},
        {"31/03/2014", "2014-03"},
        {"28/02/2013", "2013-02"},
        {"01/01/1970", "1970-01"},
        {"31/12/2999", "2999-12"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char period[PERIOD_LEN] = "";
        char err[256] = "";
        if (spend_date_period (cases[i].text, period, err, sizeof err) != 0)
            fail_msg ("\"%s\" refused: %s", cases[i].text, err);
        if (strcmp (period, cases[i].period) != 0)
            fail_msg ("\"%s\" gave \"%s\", expected \"%s\"", cases[i].text, period,
                      cases[i].period);
    }
}

typedef struct {
    const char *text;
    const char *reason;
} refused_t;

static void
test_refused_forms (void **state)
{
    (void)state;
    static const refused_t cases[] = {
        {"", "empty"},
        {"  ", "empty"},
        {"29/02/2013", "no day 29 in February 2013, which has 28 days"},
        {"29/02/2100", "no day 29 in February 2100"}, /* divisible by 100, not 400 */
        {"31/04/2013", "no day 31 in April 2013, which has 30 days"},
        {"2013-06-31", "no day 31 in June"},
        {"31-Sep-2013", "no day 31 in September"},
        {"32/01/2013", "no day 32"},
        {"00/01/2013", "no day 0"},
        {"01-Foo-2013", "\"Foo\" is not a month name"},
        {"01-Aprl-2013", "\"Aprl\" is not a month name"},
        {"01 Ap 2013", "\"Ap\" is not a month name"},
        {"Foo 2013", "\"Foo\" is not a month name"},
        {"13/13/2013", "no month 13"},
        {"04/13/2013", "day/month/year"},
        {"2013-13", "no month 13"},
        {"2013-00-01", "no month 0"},
        {"1969-12-01", "year 1969 is outside 1970-2999"},
        {"01/01/3000", "year 3000 is outside"},
        {"01/04/213", "two or four digits"},
        {"01/04/20131", "two or four digits"},
        {"Apr-13", "four-digit year"},
        {"01/04/2013 25:00", "not a date"},
        {"01/04/2013 10:60", "not a date"},
        {"01/04/2013T10:00", "not a date"},
        {"2013-04-01X", "not a date"},
        {"2013-04-01T", "not a date"},
        {"2013-04 00:00", "not a date"},
        {"April 2013 10:00", "not a date"},
        {"20130401", "not a date"},
        {"2013/04/01", "not a date"},
        {"01 04 2013", "not a date"},
        {"01-Apr/2013", "not a date"},
        {"01/04-2013", "not a date"},
        {"2013-4-1", "not a date"},
        {"41365", "not a date"}, /* an Excel serial day number */
        {"yesterday", "not a month name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char period[PERIOD_LEN] = "";
        char err[256] = "";
        if (spend_date_period (cases[i].text, period, err, sizeof err) != -1)
            fail_msg ("\"%s\" accepted as \"%s\"", cases[i].text, period);
        if (!strstr (err, cases[i].reason))
            fail_msg ("\"%s\": message \"%s\" lacks \"%s\"", cases[i].text, err, cases[i].reason);
        char quoted[64];
        snprintf (quoted, sizeof quoted, "\"%s\": ", cases[i].text);
        if (strncmp (err, quoted, strlen (quoted)) != 0)
            fail_msg ("message \"%s\" does not start with %s", err, quoted);
    }
}

static void
test_every_month_length (void **state)
{
    (void)state;
    /* The last day of each month of a common and a leap year is accepted; the day after it is not.
     */
    static const int common[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int leap = 0; leap < 2; leap++) {
        int year = leap ? 2016 : 2015;
        for (int month = 1; month <= 12; month++) {
            int last = common[month - 1] + (leap && month == 2);
            char text[32], period[PERIOD_LEN], expected[PERIOD_LEN], err[256];
            snprintf (text, sizeof text, "%d/%d/%d", last, month, year);
            snprintf (expected, sizeof expected, "%04d-%02d", year, month);
            assert_int_equal (spend_date_period (text, period, err, sizeof err), 0);
            assert_string_equal (period, expected);
            snprintf (text, sizeof text, "%d/%d/%d", last + 1, month, year);
            assert_int_equal (spend_date_period (text, period, err, sizeof err), -1);
        }
    }
}

static void
test_long_text_is_refused_briefly (void **state)
{
    (void)state;
    char text[200];
    memset (text, '7', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    char period[PERIOD_LEN], err[512];
    assert_int_equal (spend_date_period (text, period, err, sizeof err), -1);
    assert_non_null (strstr (err, "too long"));
    assert_true (strlen (err) < 100);
    assert_int_equal (spend_date_period (NULL, period, NULL, 0), -1);
}

/* spend_date_day: one canonical form of the whole date, for ids derived from row content. */
static void
test_day (void **state)
{
    (void)state;
    static const struct {
        const char *text, *date;
    } cases[] = {
        {"2014-04-23", "2014-04-23"},
        {"23/04/2014", "2014-04-23"},
        {"23-Apr-14", "2014-04-23"},
        {"2014-04-23 00:00:00", "2014-04-23"},
        {"2014-04-23T09:30:00Z", "2014-04-23"},
        {"1/4/2013", "2013-04-01"},
        {"April 2013", "2013-04"},
        {"2013-04", "2013-04"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char date[SPEND_DATE_LEN], period[PERIOD_LEN], err[128];
        assert_int_equal (spend_date_day (cases[i].text, date, err, sizeof err), 0);
        assert_string_equal (date, cases[i].date);
        assert_int_equal (spend_date_period (cases[i].text, period, err, sizeof err), 0);
        assert_int_equal (strncmp (date, period, 7), 0);
    }
    char date[SPEND_DATE_LEN], err[128], period_err[128];
    char period[PERIOD_LEN];
    assert_int_equal (spend_date_day ("31/04/2013", date, err, sizeof err), -1);
    assert_int_equal (spend_date_period ("31/04/2013", period, period_err, sizeof period_err), -1);
    assert_string_equal (err, period_err);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_accepted_forms),
        cmocka_unit_test (test_refused_forms),
        cmocka_unit_test (test_every_month_length),
        cmocka_unit_test (test_long_text_is_refused_briefly),
        cmocka_unit_test (test_day),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
