/* quoted_text: bounded, single-line quotation of refused text. */
#include "quoted_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
quoted_text (const char *text, char *out, size_t out_len)
{
    return quoted_text_cut (text, QUOTED_TEXT_MAX, out, out_len);
}

const char *
quoted_text_cut (const char *text, size_t max, char *out, size_t out_len)
{
    size_t len = strlen (text);
    size_t take = len;
    if (take > max) {
        take = max;
        while (take > 0 && ((unsigned char)text[take] & 0xC0) == 0x80)
            take--;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < take && o + 5 < out_len; i++) {
        unsigned char c = (unsigned char)text[i];
        out[o++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (take < len && o + 5 < out_len) {
        memcpy (out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

int
quoted_text_refuse (const char *text, char *err, size_t err_len, const char *format, ...)
{
    if (err && err_len) {
        char quoted[QUOTED_TEXT_LEN];
        char why[160];
        va_list args;
        va_start (args, format);
        vsnprintf (why, sizeof why, format, args);
        va_end (args);
        snprintf (err, err_len, "%s: %s", quoted_text (text, quoted, sizeof quoted), why);
    }
    return -1;
}
