/* money: amounts from spending exports to pence, in integer arithmetic so that no pound is ever
 * rounded, and with refusals precise enough that whoever produced the export can fix it. */
#include "money.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "quoted_text.h"
#include "wire.h"

static bool
is_blank (char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_digit (char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the pound sign at p: UTF-8 "£", or the single byte 0xA3 of Windows-1252 exports (a lone
 * 0xA3 is never valid UTF-8, so reading it as "£" cannot misread a UTF-8 file). */
static size_t
pound_sign_length (const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    if (u[0] == 0xC2 && u[1] == 0xA3)
        return 2;
    if (u[0] == 0xA3)
        return 1;
    return 0;
}

/* Describes an unexpected byte: printable ASCII as itself, anything else in hex. */
static const char *
describe_char (char c, char *out, size_t out_len)
{
    unsigned char u = (unsigned char)c;
    if (u > 0x20 && u < 0x7F)
        snprintf (out, out_len, "'%c'", c);
    else if (u == ' ')
        snprintf (out, out_len, "a space");
    else
        snprintf (out, out_len, "byte 0x%02x", u);
    return out;
}

int
money_parse_pence (const char *text, int64_t *pence, char *err, size_t err_len)
{
    if (!text)
        text = "";
    const char *p = text;
    char what[16];
    while (is_blank (*p))
        p++;
    if (*p == '\0')
        return quoted_text_refuse (text, err, err_len, "amount is empty");

    bool parenthesised = false;
    if (*p == '(') {
        parenthesised = true;
        p++;
        while (is_blank (*p))
            p++;
    }

    /* One sign and one pound sign, in either order: exports write both "-£12.00" and "£-12.00". */
    bool negative = parenthesised;
    bool signed_seen = false, pound_seen = false;
    for (;;) {
        size_t pound = pound_sign_length (p);
        if (*p == '-' || *p == '+') {
            if (signed_seen)
                return quoted_text_refuse (text, err, err_len, "more than one sign");
            if (parenthesised)
                return quoted_text_refuse (
                    text, err, err_len,
                    "a sign inside parentheses (parentheses already mean negative)");
            signed_seen = true;
            negative = *p == '-';
            p++;
        }
        else if (pound) {
            if (pound_seen)
                return quoted_text_refuse (text, err, err_len, "more than one pound sign");
            pound_seen = true;
            p += pound;
            while (is_blank (*p))
                p++;
        }
        else
            break;
    }

    /* Whole pounds, with thousands separators allowed only as complete groups of three. */
    int64_t pounds = 0;
    size_t whole_digits = 0, group_digits = 0;
    bool grouped = false;
    for (;; p++) {
        if (is_digit (*p)) {
            if (__builtin_mul_overflow (pounds, 10, &pounds) ||
                __builtin_add_overflow (pounds, *p - '0', &pounds))
                return quoted_text_refuse (text, err, err_len,
                                           "too large to count in 64-bit pence");
            whole_digits++;
            group_digits++;
        }
        else if (*p == ',') {
            if (whole_digits == 0)
                return quoted_text_refuse (text, err, err_len,
                                           "thousands separator before any digit");
            if (grouped ? group_digits != 3 : group_digits > 3)
                return quoted_text_refuse (text, err, err_len,
                                           "thousands separator not in groups of three");
            grouped = true;
            group_digits = 0;
        }
        else
            break;
    }
    if (grouped && group_digits != 3)
        return quoted_text_refuse (text, err, err_len,
                                   "thousands separator not in groups of three");

    /* Pence: two places, and further places only when they add nothing. */
    int64_t fraction = 0;
    size_t fraction_digits = 0;
    bool point = false;
    if (*p == '.') {
        point = true;
        p++;
        for (; is_digit (*p); p++) {
            if (fraction_digits < 2)
                fraction = fraction * 10 + (*p - '0');
            else if (*p != '0')
                return quoted_text_refuse (text, err, err_len,
                                           "more than two decimal places: fractions of a penny");
            fraction_digits++;
        }
        if (fraction_digits == 1)
            fraction *= 10;
        if (*p == '.')
            return quoted_text_refuse (text, err, err_len, "more than one decimal point");
        if (*p == ',')
            return quoted_text_refuse (text, err, err_len,
                                       "thousands separator after the decimal point");
    }
    if (whole_digits == 0 && fraction_digits == 0) {
        if (*p == '\0' || is_blank (*p) || *p == ')')
            return quoted_text_refuse (text, err, err_len, "no digits");
        return quoted_text_refuse (text, err, err_len,
                                   "not an amount: %s where a digit was expected",
                                   describe_char (*p, what, sizeof what));
    }
    if (point && fraction_digits == 0)
        return quoted_text_refuse (text, err, err_len, "no digits after the decimal point");

    while (is_blank (*p))
        p++;
    if (parenthesised) {
        if (*p != ')')
            return quoted_text_refuse (text, err, err_len,
                                       "opening parenthesis without a closing one");
        p++;
        while (is_blank (*p))
            p++;
    }
    if (*p == ')')
        return quoted_text_refuse (text, err, err_len,
                                   "closing parenthesis without an opening one");
    if (*p == '-' || *p == '+')
        return quoted_text_refuse (text, err, err_len, "a sign after the digits");
    if (*p != '\0')
        return quoted_text_refuse (text, err, err_len, "unexpected %s after the amount",
                                   describe_char (*p, what, sizeof what));

    int64_t total;
    if (__builtin_mul_overflow (pounds, 100, &total) ||
        __builtin_add_overflow (total, fraction, &total))
        return quoted_text_refuse (text, err, err_len, "too large to count in 64-bit pence");
    if (total > WIRE_MAX_ABS_AMOUNT_PENCE)
        return quoted_text_refuse (text, err, err_len,
                                   "beyond the limit of \xC2\xA3%lld.%02lld either way",
                                   (long long)(WIRE_MAX_ABS_AMOUNT_PENCE / 100),
                                   (long long)(WIRE_MAX_ABS_AMOUNT_PENCE % 100));
    /* total is at most WIRE_MAX_ABS_AMOUNT_PENCE here, so negating it cannot overflow. */
    *pence = negative ? -total : total;
    return 0;
}
