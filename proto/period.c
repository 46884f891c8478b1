/* period: month and fiscal-year arithmetic on text periods, without any time library, so that the
 * same period always maps to the same fiscal year whatever the machine's locale or timezone. */
#include "period.h"

#include <stdio.h>
#include <string.h>

static bool
all_digits (const char *text, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (text[i] < '0' || text[i] > '9')
            return false;
    return true;
}

static int
digits_value (const char *text, size_t n)
{
    int value = 0;
    for (size_t i = 0; i < n; i++)
        value = value * 10 + (text[i] - '0');
    return value;
}

int
period_parse (const char *text, int *year, int *month)
{
    if (!text || strlen (text) != 7 || text[4] != '-')
        return -1;
    if (!all_digits (text, 4) || !all_digits (text + 5, 2))
        return -1;
    int y = digits_value (text, 4);
    int m = digits_value (text + 5, 2);
    if (y < PERIOD_MIN_YEAR || y > PERIOD_MAX_YEAR || m < 1 || m > 12)
        return -1;
    if (year)
        *year = y;
    if (month)
        *month = m;
    return 0;
}

int
period_fiscal_year (const char *period, char *out, size_t out_len)
{
    int year, month;
    if (period_parse (period, &year, &month) != 0 || out_len < FISCAL_YEAR_LEN)
        return -1;
    /* April starts the fiscal year: January to March belong to the year that began last April. */
    int start = month >= 4 ? year : year - 1;
    snprintf (out, out_len, "%04d-%02d", start, (start + 1) % 100);
    return 0;
}

int
period_fiscal_year_parse (const char *label, int *start_year)
{
    if (!label || strlen (label) != 7 || label[4] != '-')
        return -1;
    if (!all_digits (label, 4) || !all_digits (label + 5, 2))
        return -1;
    int start = digits_value (label, 4);
    if (start < PERIOD_MIN_YEAR - 1 || start > PERIOD_MAX_YEAR)
        return -1;
    if (digits_value (label + 5, 2) != (start + 1) % 100)
        return -1;
    if (start_year)
        *start_year = start;
    return 0;
}
