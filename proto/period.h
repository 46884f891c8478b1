/* period: the month a payment belongs to (YYYY-MM) and the UK fiscal year (April-March) it rolls into. */
#ifndef TOTALPLACE_PERIOD_H
#define TOTALPLACE_PERIOD_H

#include <stdbool.h>
#include <stddef.h>

#define PERIOD_MIN_YEAR 1970
#define PERIOD_MAX_YEAR 2999
/* "YYYY-MM" plus NUL, and "YYYY-YY" plus NUL. */
#define PERIOD_LEN 8
#define FISCAL_YEAR_LEN 8

/* Parses exactly "YYYY-MM" with a month 01..12 and a year in range. Returns 0 and fills year and
 * month, or -1 when the text is not such a period. */
int period_parse (const char *text, int *year, int *month);

/* Writes the fiscal year label of a valid period into out (at least FISCAL_YEAR_LEN bytes):
 * 2013-04..2014-03 are all "2013-14". Returns 0, or -1 when period is not valid. */
int period_fiscal_year (const char *period, char *out, size_t out_len);

/* Parses a fiscal year label "YYYY-YY" where YY is the following year's last two digits.
 * Returns 0 and the starting year, or -1. */
int period_fiscal_year_parse (const char *label, int *start_year);

#endif
