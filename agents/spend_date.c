/* spend_date: date text to a spending month by hand-written scanning rather than strptime, because
 * strptime depends on the locale and accepts more than it should (e.g. day 31 of April). */
#include "spend_date.h"
#include "quoted_text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const month_names[12] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};

static bool
is_digit (char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_letter (char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char
lower (char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Reads 1..max digits at *p; returns how many were read (0 when none) and their value. */
static size_t
read_number (const char **p, size_t max, int *value)
{
    size_t n = 0;
    int v = 0;
    while (n < max && is_digit ((*p)[n])) {
        v = v * 10 + ((*p)[n] - '0');
        n++;
    }
    if (n > 0 && is_digit ((*p)[n]))
        return 0; /* more digits than the field allows */
    *p += n;
    *value = v;
    return n;
}

/* Reads a month name (full English name, its first three letters, or "Sept") at *p. Returns the
 * month 1..12, or 0 with the word's length in *word_len when the word is no month. */
static int
read_month_name (const char **p, size_t *word_len)
{
    size_t n = 0;
    while (is_letter ((*p)[n]))
        n++;
    *word_len = n;
    for (int m = 0; m < 12; m++) {
        const char *name = month_names[m];
        size_t full = strlen (name);
        bool abbreviation = n == 3 || (m == 8 && n == 4);
        if (n != full && !abbreviation)
            continue;
        bool same = true;
        for (size_t i = 0; i < n && i < full && same; i++)
            same = lower ((*p)[i]) == lower (name[i]);
        if (same) {
            *p += n;
            return m + 1;
        }
    }
    return 0;
}

static bool
is_leap (int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int
days_in_month (int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap (year) ? 29 : days[month - 1];
}

/* Two-digit years pivot at 70: exports from before 1970 do not exist here, and PERIOD_MIN_YEAR is
 * 1970, so 70-99 can only mean the last century and 00-69 this one. */
static int
expand_year (int year, size_t digits)
{
    if (digits == 2)
        return year < 70 ? 2000 + year : 1900 + year;
    return year;
}

/* Checks an optional time part at p: "HH:MM[:SS[.fff]]" then "Z" or "+HH:MM"/"-HH:MM" or nothing.
 * Returns true when p is at the end of the text, or holds a valid time and nothing else. */
static bool
valid_time (const char *p)
{
    int hour, minute, second;
    if (read_number (&p, 2, &hour) == 0 || hour > 23 || *p++ != ':')
        return false;
    if (read_number (&p, 2, &minute) != 2 || minute > 59)
        return false;
    if (*p == ':') {
        p++;
        if (read_number (&p, 2, &second) != 2 || second > 60) /* 60: a leap second */
            return false;
        if (*p == '.') {
            p++;
            if (!is_digit (*p))
                return false;
            while (is_digit (*p))
                p++;
        }
    }
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int zone_hour, zone_minute;
        p++;
        if (read_number (&p, 2, &zone_hour) != 2 || zone_hour > 23 || *p++ != ':' ||
            read_number (&p, 2, &zone_minute) != 2 || zone_minute > 59)
            return false;
    }
    return *p == '\0';
}

/* Reads text into its year, month and day (0 when the text names only a month). */
static int
parse_date (const char *text, int *year_out, int *month_out, int *day_out, char *err,
            size_t err_len)
{
    if (!text)
        text = "";
    /* Work on a trimmed copy; no date form is anywhere near this long. */
    char buf[64];
    const char *start = text;
    while (*start == ' ' || *start == '\t')
        start++;
    size_t len = strlen (start);
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len == 0)
        return quoted_text_refuse (text, err, err_len, "date is empty");
    if (len >= sizeof buf)
        return quoted_text_refuse (text, err, err_len, "too long to be a date");
    memcpy (buf, start, len);
    buf[len] = '\0';

    static const char expected[] =
        "not a date (expected YYYY-MM-DD, DD/MM/YYYY, DD-Mon-YYYY or YYYY-MM)";
    const char *p = buf;
    int year = 0, month = 0, day = 0;
    size_t year_digits = 0;
    bool has_day = true, iso = false;
    int number;
    size_t digits = read_number (&p, 4, &number);

    if (digits == 4 && *p == '-') {
        /* ISO: YYYY-MM-DD or the period YYYY-MM itself. */
        iso = true;
        year = number;
        year_digits = 4;
        p++;
        if (read_number (&p, 2, &month) != 2)
            return quoted_text_refuse (text, err, err_len, "%s", expected);
        if (*p == '-') {
            p++;
            if (read_number (&p, 2, &day) != 2)
                return quoted_text_refuse (text, err, err_len, "%s", expected);
        }
        else
            has_day = false;
    }
    else if ((digits == 1 || digits == 2) && (*p == '/' || *p == '-' || *p == '.' || *p == ' ')) {
        /* Day first, the way UK systems write dates. */
        day = number;
        char separator = *p++;
        if (is_letter (*p)) {
            size_t word_len;
            const char *word = p;
            month = read_month_name (&p, &word_len);
            if (month == 0)
                return quoted_text_refuse (text, err, err_len, "\"%.*s\" is not a month name",
                                           (int)word_len, word);
        }
        else if (separator == ' ' || read_number (&p, 2, &month) == 0)
            return quoted_text_refuse (text, err, err_len, "%s", expected);
        if (*p++ != separator)
            return quoted_text_refuse (text, err, err_len, "%s", expected);
        year_digits = read_number (&p, 4, &year);
        if (year_digits != 2 && year_digits != 4)
            return quoted_text_refuse (text, err, err_len, "the year must have two or four digits");
    }
    else if (digits == 0 && is_letter (*p)) {
        /* Month and year only, as monthly summaries write the period. */
        size_t word_len;
        const char *word = p;
        month = read_month_name (&p, &word_len);
        if (month == 0)
            return quoted_text_refuse (text, err, err_len, "\"%.*s\" is not a month name",
                                       (int)word_len, word);
        if (*p != ' ' && *p != '-')
            return quoted_text_refuse (text, err, err_len, "%s", expected);
        p++;
        year_digits = read_number (&p, 4, &year);
        if (year_digits != 4)
            return quoted_text_refuse (text, err, err_len,
                                       "a month name with no day needs a four-digit year");
        has_day = false;
    }
    else
        return quoted_text_refuse (text, err, err_len, "%s", expected);

    /* Whatever follows a full date must be a time. */
    if (*p != '\0') {
        bool time_follows = has_day && (*p == ' ' || (iso && (*p == 'T' || *p == 't')));
        if (!time_follows || !valid_time (p + 1))
            return quoted_text_refuse (text, err, err_len, "%s", expected);
    }

    year = expand_year (year, year_digits);
    if (month < 1 || month > 12) {
        if (!iso && day >= 1 && day <= 12 && month <= 31)
            return quoted_text_refuse (
                text, err, err_len,
                "no month %d; dates are read as day/month/year, not month/day/year", month);
        return quoted_text_refuse (text, err, err_len, "no month %d", month);
    }
    if (year < PERIOD_MIN_YEAR || year > PERIOD_MAX_YEAR)
        return quoted_text_refuse (text, err, err_len, "year %d is outside %d-%d", year,
                                   PERIOD_MIN_YEAR, PERIOD_MAX_YEAR);
    if (has_day) {
        int last = days_in_month (year, month);
        if (day < 1 || day > last)
            return quoted_text_refuse (text, err, err_len, "no day %d in %s %d, which has %d days",
                                       day, month_names[month - 1], year, last);
    }
    *year_out = year;
    *month_out = month;
    *day_out = has_day ? day : 0;
    return 0;
}

/* Writes "YYYY-MM", and "-DD" when day is not 0. Written by hand: this runs once per row of
 * multi-million-row files. */
static void
write_date (char *out, int year, int month, int day)
{
    out[0] = (char)('0' + year / 1000);
    out[1] = (char)('0' + year / 100 % 10);
    out[2] = (char)('0' + year / 10 % 10);
    out[3] = (char)('0' + year % 10);
    out[4] = '-';
    out[5] = (char)('0' + month / 10);
    out[6] = (char)('0' + month % 10);
    out[7] = '\0';
    if (day) {
        out[7] = '-';
        out[8] = (char)('0' + day / 10);
        out[9] = (char)('0' + day % 10);
        out[10] = '\0';
    }
}

int
spend_date_period (const char *text, char period[PERIOD_LEN], char *err, size_t err_len)
{
    int year, month, day;
    if (parse_date (text, &year, &month, &day, err, err_len) != 0)
        return -1;
    write_date (period, year, month, 0);
    return 0;
}

int
spend_date_day (const char *text, char date[SPEND_DATE_LEN], char *err, size_t err_len)
{
    int year, month, day;
    if (parse_date (text, &year, &month, &day, err, err_len) != 0)
        return -1;
    write_date (date, year, month, day);
    return 0;
}
