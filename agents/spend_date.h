/* spend_date: the month ("YYYY-MM") a payment belongs to, from the date forms UK exports use. */
#ifndef TOTALPLACE_SPEND_DATE_H
#define TOTALPLACE_SPEND_DATE_H

#include <stddef.h>

#include "period.h"

/* Reads a date and writes the month it falls in as "YYYY-MM" (NUL-terminated) into period.
 *
 * Accepted, with optional spaces around the whole and case-insensitive month names:
 *   ISO            "2013-04-01", or the month alone "2013-04"
 *   UK numeric     day/month/year "01/04/2013", "1/4/2013", also with '-' or '.' ("01.04.2013")
 *   month names    "01-Apr-2013", "01 Apr 2013", "1-April-2013", "1 Sept 2013"
 *   month and year "April 2013", "Apr-2013" (four-digit year only)
 * Years may have two digits in the numeric and day-month-name forms: 00-69 mean 2000-2069 and
 * 70-99 mean 1970-1999. A time may follow a full date after a space, or after 'T' in the ISO form:
 * "HH:MM", "HH:MM:SS" or "HH:MM:SS.fff", then optionally "Z" or "+HH:MM"/"-HH:MM". The time is
 * checked and then ignored: the month is the one written, whatever the time zone.
 *
 * The day is checked against the month's length (leap years included) and the year against
 * PERIOD_MIN_YEAR..PERIOD_MAX_YEAR. No locale or time library is involved, so the result is the
 * same on every machine.
 *
 * Returns 0, or -1 with err holding "\"TEXT\": what was wrong" (the text quoted, bounded). */
int spend_date_period (const char *text, char period[PERIOD_LEN], char *err, size_t err_len);

/* Room for "YYYY-MM-DD" and its NUL. */
#define SPEND_DATE_LEN 11

/* Reads a date as spend_date_period does (the same forms, checks and messages) and writes it in one
 * canonical form: "YYYY-MM-DD", or "YYYY-MM" when the text names only a month, so that
 * "23/04/2014", "2014-04-23 00:00" and "23-Apr-14" all give "2014-04-23". Its first seven bytes are
 * the period. Returns 0, or -1 with err as spend_date_period. */
int spend_date_day (const char *text, char date[SPEND_DATE_LEN], char *err, size_t err_len);

#endif
