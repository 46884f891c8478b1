/* quoted_text: escaped, bounded, single-line quotation of refused text. */
#include "quoted_text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

/* The longest piece one step writes: \uNNNN. */
#define PIECE_MAX 6

/* True for the valid UTF-8 characters shown as \uNNNN: C1 controls (C2 80..C2 9F) and U+2028,
 * U+2029 (E2 80 A8, E2 80 A9). */
static bool
is_hidden_break (const unsigned char *s, size_t n)
{
    return (n == 2 && s[0] == 0xC2 && s[1] <= 0x9F) ||
           (n == 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9));
}

/* Writes the piece standing for the start of s into piece and returns its length; *used is set to
 * the bytes of s it stands for. */
static size_t
next_piece (const unsigned char *s, size_t left, char piece[PIECE_MAX + 1], size_t *used)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = s[0];
    *used = 1;
    if (c == '"' || c == '\\') {
        piece[0] = '\\';
        piece[1] = (char)c;
        return 2;
    }
    if (c >= 0x20 && c < 0x7F) {
        piece[0] = (char)c;
        return 1;
    }
    size_t n = 1;
    if (c >= 0x80 && wire_utf8_char (s, left, &n) == WIRE_UTF8_VALID) {
        *used = n;
        if (!is_hidden_break (s, n)) {
            memcpy (piece, s, n);
            return n;
        }
        unsigned code = n == 2 ? (unsigned)(s[1] & 0x3F) | ((s[0] & 0x1Fu) << 6)
                               : 0x2000u | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        snprintf (piece, PIECE_MAX + 1, "\\u%04X", code);
        return PIECE_MAX;
    }
    /* A control byte, or the first byte of invalid UTF-8: the bytes after it are looked at again,
     * so that each byte of an invalid sequence gets its own escape. */
    piece[0] = '\\';
    piece[1] = 'x';
    piece[2] = hex[c >> 4];
    piece[3] = hex[c & 0xF];
    *used = 1;
    return 4;
}

const char *
quoted_text (const char *text, char *out, size_t out_len)
{
    return quoted_text_cut (text, QUOTED_TEXT_MAX, out, out_len);
}

const char *
quoted_text_cut (const char *text, size_t max, char *out, size_t out_len)
{
    /* Room outside the text itself: two quotes, "..." and the NUL. */
    const size_t frame = 6;
    if (out_len < frame) {
        if (out_len)
            out[0] = '\0';
        return out;
    }
    if (max > QUOTED_TEXT_MAX)
        max = QUOTED_TEXT_MAX;
    size_t budget = out_len - frame < max ? out_len - frame : max;
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    size_t len = strlen ((const char *)s);
    size_t o = 0, i = 0;
    out[o++] = '"';
    while (i < len) {
        char piece[PIECE_MAX + 1];
        size_t used;
        size_t n = next_piece (s + i, len - i, piece, &used);
        if (o - 1 + n > budget)
            break;
        memcpy (out + o, piece, n);
        o += n;
        i += used;
    }
    if (i < len) {
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

void
quoted_text_append (char *out, size_t out_len, size_t *used, const char *format, ...)
{
    if (*used + 1 >= out_len)
        return;
    va_list args;
    va_start (args, format);
    int n = vsnprintf (out + *used, out_len - *used, format, args);
    va_end (args);
    if (n > 0)
        *used = *used + (size_t)n < out_len ? *used + (size_t)n : out_len - 1;
}
