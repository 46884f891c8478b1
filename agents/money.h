/* money: exact conversion of the amounts written in UK spending exports into int64 pence. */
#ifndef TOTALPLACE_MONEY_H
#define TOTALPLACE_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Parses an amount of pounds into pence using integer arithmetic only (never a float).
 *
 * Accepted, with optional spaces around the whole: digits with an optional decimal point
 * ("1234.56", "1234.5", "1234", ".50"); thousands separators in valid groups of three
 * ("1,234,567.00"); a pound sign before the digits, as UTF-8 (0xC2 0xA3) or as a lone Windows-1252
 * byte 0xA3, optionally followed by spaces ("£1,234.56", "£ 12"); one sign before or after the
 * pound sign ("-12.00", "+3.00", "-£12.00", "£-12.00"); accountants' parentheses for a negative
 * amount
 * ("(12.00)", "(£12.00)"). Decimal places beyond two are accepted only when they are zeros
 * ("1.2300", as SQL money columns write them); "1.234" is refused as a fraction of a penny.
 *
 * Refused: empty text, anything else, more than one sign, a sign inside parentheses, unbalanced
 * parentheses, misplaced separators, more than one decimal point, amounts that overflow int64 and
 * amounts whose size is beyond WIRE_MAX_ABS_AMOUNT_PENCE.
 *
 * Returns 0 and sets *pence, or -1 leaving *pence untouched with err holding
 * "\"TEXT\": what was wrong", the text quoted and cut to a bounded length. */
int money_parse_pence (const char *text, int64_t *pence, char *err, size_t err_len);

#endif
