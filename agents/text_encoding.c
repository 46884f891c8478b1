/* text_encoding: detection of UTF-8 over a file and conversion of cells to UTF-8.
 *
 * The single-byte encodings go through a 128-entry table of what each byte 0x80-0xFF becomes,
 * filled once per converter by asking glibc's iconv about every byte: iconv stays the authority on
 * the mapping (and says EILSEQ for the five bytes Windows-1252 leaves undefined), while a cell
 * costs a table look-up per byte instead of an iconv call and a restart after every bad byte.
 * Bytes below 0x80 are ASCII in all three encodings, which is also why libcsv can parse the raw
 * bytes: no byte of 0x80 or above can be a comma, quote or line break. */
#include "text_encoding.h"

#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wire.h"

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD in UTF-8 */
#define REPLACEMENT_LEN 3
/* The most bytes of UTF-8 one input byte can become: U+FFFD, or a Windows-1252 byte such as the
 * euro sign (U+20AC). */
#define MAX_GROWTH 3

static const struct {
    const char *name;
    text_encoding_t encoding;
} names[] = {
    {"auto", TEXT_ENCODING_AUTO},           {"utf-8", TEXT_ENCODING_UTF8},
    {"utf8", TEXT_ENCODING_UTF8},           {"windows-1252", TEXT_ENCODING_WINDOWS_1252},
    {"cp1252", TEXT_ENCODING_WINDOWS_1252}, {"iso-8859-1", TEXT_ENCODING_ISO_8859_1},
    {"latin1", TEXT_ENCODING_ISO_8859_1},   {"latin-1", TEXT_ENCODING_ISO_8859_1},
};

int
text_encoding_parse (const char *name, text_encoding_t *out)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp (name, names[i].name) == 0) {
            *out = names[i].encoding;
            return 0;
        }
    return -1;
}

const char *
text_encoding_name (text_encoding_t encoding)
{
    switch (encoding) {
    case TEXT_ENCODING_AUTO:
        return "auto";
    case TEXT_ENCODING_UTF8:
        return "utf-8";
    case TEXT_ENCODING_WINDOWS_1252:
        return "windows-1252";
    case TEXT_ENCODING_ISO_8859_1:
        return "iso-8859-1";
    }
    return "unknown";
}

/* How many bytes at s are ASCII, eight at a time while they last: most cells are all ASCII, and
 * the agent's throughput is benchmarked. */
static size_t
ascii_prefix (const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (len - i >= 8) {
        uint64_t word;
        memcpy (&word, s + i, sizeof word);
        if (word & UINT64_C (0x8080808080808080))
            break;
        i += 8;
    }
    while (i < len && s[i] < 0x80)
        i++;
    return i;
}

/* How many bytes at s are valid UTF-8, up to the first that starts no whole character. */
static size_t
utf8_valid_prefix (const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (true) {
        i += ascii_prefix (s + i, len - i);
        size_t n;
        if (i == len || wire_utf8_char (s + i, len - i, &n) != WIRE_UTF8_VALID)
            return i;
        i += n;
    }
}

/* ---------------------------------------------------------------- detection */

void
text_encoding_scan_init (text_encoding_scan_t *scan)
{
    memset (scan, 0, sizeof *scan);
    scan->valid = true;
}

static bool
scan_fails (text_encoding_scan_t *scan, uint64_t offset, unsigned char byte)
{
    scan->valid = false;
    scan->bad_offset = offset;
    scan->bad_byte = byte;
    return false;
}

bool
text_encoding_scan (text_encoding_scan_t *scan, const void *data, size_t len)
{
    if (!scan->valid)
        return false;
    const unsigned char *s = data;
    size_t i = 0;
    if (scan->n_pending && len) {
        /* The character the last chunk cut, completed with the first bytes of this one. */
        unsigned char joined[4];
        size_t have = scan->n_pending;
        size_t take = len < sizeof joined - have ? len : sizeof joined - have;
        memcpy (joined, scan->pending, have);
        memcpy (joined + have, s, take);
        size_t n;
        wire_utf8_t found = wire_utf8_char (joined, have + take, &n);
        if (found == WIRE_UTF8_INVALID)
            return scan_fails (scan, scan->offset - have, joined[0]);
        if (found == WIRE_UTF8_TRUNCATED) {
            memcpy (scan->pending, joined, have + take);
            scan->n_pending = have + take;
            scan->offset += len;
            return true;
        }
        scan->n_pending = 0;
        i = n - have;
    }
    while (i < len) {
        i += utf8_valid_prefix (s + i, len - i);
        if (i == len)
            break;
        size_t n;
        if (wire_utf8_char (s + i, len - i, &n) == WIRE_UTF8_INVALID)
            return scan_fails (scan, scan->offset + i, s[i]);
        memcpy (scan->pending, s + i, n);
        scan->n_pending = n;
        i = len;
    }
    scan->offset += len;
    return true;
}

bool
text_encoding_scan_end (text_encoding_scan_t *scan)
{
    if (scan->valid && scan->n_pending)
        return scan_fails (scan, scan->offset - scan->n_pending, scan->pending[0]);
    return scan->valid;
}

text_encoding_t
text_encoding_resolve (text_encoding_t setting, const text_encoding_scan_t *scan)
{
    if (setting != TEXT_ENCODING_AUTO)
        return setting;
    return scan && scan->valid ? TEXT_ENCODING_UTF8 : TEXT_ENCODING_WINDOWS_1252;
}

/* ---------------------------------------------------------------- conversion */

struct _text_encoding_converter_t {
    text_encoding_t encoding;
    char *scratch;
    size_t scratch_cap;
    /* Single-byte encodings: what byte 0x80 + i becomes (len bytes of UTF-8); replaced when that
     * is U+FFFD standing for a byte that could not be read. */
    struct {
        unsigned char utf8[MAX_GROWTH];
        unsigned char len;
        bool replaced;
    } map[128];
};

static void set_err (char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
set_err (char *err, size_t err_len, const char *format, ...)
{
    if (err && err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, err_len, format, args);
        va_end (args);
    }
}

/* Fills self->map by converting each byte 0x80-0xFF alone with iconv. A byte iconv refuses
 * (EILSEQ), a C1 control (the wire format refuses control characters, and in ISO-8859-1 the bytes
 * 0x80-0x9F are nothing else), or anything that is not one printable character becomes U+FFFD. */
static int
build_map (text_encoding_converter_t *self, const char *iconv_name, char *err, size_t err_len)
{
    iconv_t cd = iconv_open ("UTF-8", iconv_name);
    if (cd == (iconv_t)-1) {
        set_err (err, err_len,
                 "iconv cannot convert from %s to UTF-8 (are glibc's gconv modules installed?)",
                 iconv_name);
        return -1;
    }
    for (unsigned b = 0x80; b <= 0xFF; b++) {
        char in = (char)b;
        char out[8];
        char *in_p = &in, *out_p = out;
        size_t in_left = 1, out_left = sizeof out;
        size_t rc = iconv (cd, &in_p, &in_left, &out_p, &out_left);
        size_t n = (size_t)(out_p - out);
        size_t char_len = 0;
        bool ok = rc != (size_t)-1 && in_left == 0 && n >= 2 && n <= MAX_GROWTH &&
                  wire_utf8_char (out, n, &char_len) == WIRE_UTF8_VALID && char_len == n &&
                  !((unsigned char)out[0] == 0xC2 && (unsigned char)out[1] <= 0x9F);
        iconv (cd, NULL, NULL, NULL, NULL); /* back to the initial state after an error */
        if (!ok) {
            memcpy (out, replacement, REPLACEMENT_LEN);
            n = REPLACEMENT_LEN;
        }
        memcpy (self->map[b - 0x80].utf8, out, n);
        self->map[b - 0x80].len = (unsigned char)n;
        self->map[b - 0x80].replaced = !ok;
    }
    iconv_close (cd);
    return 0;
}

text_encoding_converter_t *
text_encoding_converter_new (text_encoding_t encoding, char *err, size_t err_len)
{
    const char *iconv_name = NULL;
    switch (encoding) {
    case TEXT_ENCODING_UTF8:
        break;
    case TEXT_ENCODING_WINDOWS_1252:
        iconv_name = "WINDOWS-1252";
        break;
    case TEXT_ENCODING_ISO_8859_1:
        iconv_name = "ISO-8859-1";
        break;
    default:
        set_err (err, err_len, "%s: resolve the encoding from the file before converting",
                 text_encoding_name (encoding));
        return NULL;
    }
    text_encoding_converter_t *self = calloc (1, sizeof *self);
    if (!self) {
        set_err (err, err_len, "out of memory opening a %s converter",
                 text_encoding_name (encoding));
        return NULL;
    }
    self->encoding = encoding;
    if (iconv_name && build_map (self, iconv_name, err, err_len) != 0) {
        free (self);
        return NULL;
    }
    return self;
}

void
text_encoding_converter_destroy (text_encoding_converter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->scratch);
    free (*self_p);
    *self_p = NULL;
}

/* Makes room for the conversion of len input bytes. */
static int
reserve (text_encoding_converter_t *self, size_t len)
{
    if (len > (SIZE_MAX - 1) / MAX_GROWTH)
        return -1;
    size_t need = len * MAX_GROWTH + 1;
    if (need <= self->scratch_cap)
        return 0;
    size_t cap = self->scratch_cap ? self->scratch_cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *scratch = realloc (self->scratch, cap);
    if (!scratch)
        return -1;
    self->scratch = scratch;
    self->scratch_cap = cap;
    return 0;
}

const char *
text_encoding_convert (text_encoding_converter_t *self, const char *text, size_t len,
                       size_t *out_len, size_t *replaced)
{
    const unsigned char *s = (const unsigned char *)text;
    const bool utf8 = self->encoding == TEXT_ENCODING_UTF8;
    size_t done = utf8 ? utf8_valid_prefix (s, len) : ascii_prefix (s, len);
    *replaced = 0;
    if (done == len) {
        *out_len = len;
        return text;
    }
    if (reserve (self, len) != 0)
        return NULL;
    char *out = self->scratch;
    memcpy (out, text, done);
    size_t o = done;
    size_t count = 0;
    for (size_t i = done; i < len;) {
        if (s[i] < 0x80) {
            out[o++] = (char)s[i++];
            continue;
        }
        if (utf8) {
            size_t n;
            if (wire_utf8_char (s + i, len - i, &n) == WIRE_UTF8_VALID) {
                memcpy (out + o, s + i, n);
                o += n;
            }
            else {
                memcpy (out + o, replacement, REPLACEMENT_LEN);
                o += REPLACEMENT_LEN;
                count++;
            }
            i += n;
        }
        else {
            const unsigned char c = s[i++];
            memcpy (out + o, self->map[c - 0x80].utf8, self->map[c - 0x80].len);
            o += self->map[c - 0x80].len;
            count += self->map[c - 0x80].replaced;
        }
    }
    out[o] = '\0';
    *out_len = o;
    *replaced = count;
    return out;
}
