/* fuzz_encoding: any bytes as a cell in each encoding (text_encoding_convert), as a file to scan
 * for UTF-8 in chunks (text_encoding_scan), and as text to quote in a reason (quoted_text). Besides
 * "no crash, no leak, no UB", for every mode:
 * - the output is valid UTF-8 by wire_utf8_char, the one definition the wire checks records with;
 * - no control character is added: the bytes below 0x80 come out exactly as they went in, in
 *   order, and a C1 control comes out only where valid UTF-8 input held one;
 * - the replacements reported are the U+FFFD the conversion added;
 * - UTF-8 mode returns valid input itself (no copy) and copies anything else; the single-byte modes
 *   give one character per byte and return ASCII-only input itself;
 * and the scan finds the file valid exactly when the UTF-8 converter leaves it alone, reports the
 * first bad sequence where the valid prefix ends, and gives the same answer however the file is
 * cut into chunks. Quotations of the input and of each output are one bounded line of UTF-8. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quoted_text.h"
#include "text_encoding.h"
#include "wire.h"

#define FFFD "\xEF\xBF\xBD"

static void
fail (const char *mode, const char *what)
{
    fprintf (stderr, "fuzz_encoding: %s: %s\n", mode, what);
    abort ();
}

/* What a text holds, read with the wire's definition of UTF-8. */
typedef struct {
    bool valid;
    size_t chars;  /* characters, or maximal invalid subparts */
    size_t fffd;   /* valid U+FFFD characters */
    size_t c1;     /* valid C1 control characters (U+0080-U+009F) */
    size_t prefix; /* bytes of the longest valid prefix */
} census_t;

static census_t
census (const uint8_t *s, size_t len)
{
    census_t c = {.valid = true};
    for (size_t i = 0; i < len;) {
        size_t n;
        if (wire_utf8_char (s + i, len - i, &n) != WIRE_UTF8_VALID) {
            if (c.valid)
                c.prefix = i;
            c.valid = false;
        }
        else if (n == 3 && memcmp (s + i, FFFD, 3) == 0)
            c.fffd++;
        else if (n == 2 && s[i] == 0xC2 && s[i + 1] <= 0x9F)
            c.c1++;
        c.chars++;
        i += n;
    }
    if (c.valid)
        c.prefix = len;
    return c;
}

/* True when the bytes below 0x80 of a and b are the same sequence. */
static bool
same_ascii (const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    size_t i = 0, j = 0;
    while (true) {
        while (i < a_len && a[i] >= 0x80)
            i++;
        while (j < b_len && b[j] >= 0x80)
            j++;
        if (i == a_len || j == b_len)
            return i == a_len && j == b_len;
        if (a[i++] != b[j++])
            return false;
    }
}

static void
check_quotation (const char *mode, const char *text)
{
    char quoted[QUOTED_TEXT_LEN];
    quoted_text (text, quoted, sizeof quoted);
    size_t len = strlen (quoted);
    if (len >= QUOTED_TEXT_LEN || len < 2 || quoted[0] != '"' || quoted[len - 1] != '"')
        fail (mode, "a quotation is not bounded and quoted");
    census_t c = census ((const uint8_t *)quoted, len);
    if (!c.valid || c.c1)
        fail (mode, "a quotation is not valid UTF-8 without C1 controls");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)quoted[i] < 0x20 || quoted[i] == 0x7F)
            fail (mode, "a quotation holds a control byte");
}

static void
check_conversion (text_encoding_converter_t *converter, const char *mode, bool utf8,
                  const uint8_t *data, size_t size, const census_t *in)
{
    size_t out_len = 0, replaced = 0;
    const char *out =
        text_encoding_convert (converter, (const char *)data, size, &out_len, &replaced);
    if (!out)
        fail (mode, "out of memory");
    const uint8_t *o = (const uint8_t *)out;
    census_t c = census (o, out_len);
    if (!c.valid)
        fail (mode, "the output is not valid UTF-8");
    if (!same_ascii (data, size, o, out_len))
        fail (mode, "bytes below 0x80 changed");
    bool ascii = true;
    for (size_t i = 0; i < size && ascii; i++)
        ascii = data[i] < 0x80;
    bool same = out == (const char *)data;
    if (same && out_len != size)
        fail (mode, "the input itself came back with another length");
    if (!same && out[out_len] != '\0')
        fail (mode, "a copy is not NUL-terminated");
    if (utf8) {
        if (same != in->valid)
            fail (mode, in->valid ? "valid input was copied" : "invalid input came back as it is");
        if (c.fffd != in->fffd + replaced)
            fail (mode, "replacements counted are not the U+FFFD added");
        if (c.c1 != in->c1)
            fail (mode, "a C1 control was added");
        if (c.chars != in->chars)
            fail (mode, "not one character per character or invalid subpart");
    }
    else {
        if (same != ascii)
            fail (mode, ascii ? "ASCII input was copied" : "non-ASCII input came back as it is");
        if (c.fffd != replaced)
            fail (mode, "replacements counted are not the U+FFFD added");
        if (c.c1)
            fail (mode, "a C1 control was added");
        if (c.chars != size)
            fail (mode, "not one character per byte");
    }
    if (!same && !memchr (out, '\0', out_len))
        check_quotation (mode, out);
}

static void
check_scan (const uint8_t *data, size_t size, const census_t *in)
{
    text_encoding_scan_t whole;
    text_encoding_scan_init (&whole);
    text_encoding_scan (&whole, data, size);
    if (text_encoding_scan_end (&whole) != in->valid)
        fail ("scan", "disagrees with the wire on validity");
    if (!in->valid) {
        if (whole.bad_offset != in->prefix || whole.bad_byte != data[in->prefix])
            fail ("scan", "the first bad byte is not where the valid prefix ends");
    }
    /* Three chunks, cut where the input's first two bytes say. */
    size_t a = size ? data[0] % (size + 1) : 0;
    size_t b = size > 1 ? a + data[1] % (size - a + 1) : a;
    text_encoding_scan_t cut;
    text_encoding_scan_init (&cut);
    text_encoding_scan (&cut, data, a);
    text_encoding_scan (&cut, data + a, b - a);
    text_encoding_scan (&cut, data + b, size - b);
    text_encoding_scan_end (&cut);
    if (cut.valid != whole.valid ||
        (!cut.valid && (cut.bad_offset != whole.bad_offset || cut.bad_byte != whole.bad_byte)))
        fail ("scan", "chunks change the answer");
    if (text_encoding_resolve (TEXT_ENCODING_AUTO, &whole) !=
        (in->valid ? TEXT_ENCODING_UTF8 : TEXT_ENCODING_WINDOWS_1252))
        fail ("scan", "auto resolves to the wrong encoding");
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static text_encoding_converter_t *utf8, *cp1252, *latin1;
    if (!utf8) {
        char err[256];
        utf8 = text_encoding_converter_new (TEXT_ENCODING_UTF8, err, sizeof err);
        cp1252 = text_encoding_converter_new (TEXT_ENCODING_WINDOWS_1252, err, sizeof err);
        latin1 = text_encoding_converter_new (TEXT_ENCODING_ISO_8859_1, err, sizeof err);
        if (!utf8 || !cp1252 || !latin1)
            fail ("setup", err);
    }
    census_t in = census (data, size);
    check_conversion (utf8, "utf-8", true, data, size, &in);
    check_conversion (cp1252, "windows-1252", false, data, size, &in);
    check_conversion (latin1, "iso-8859-1", false, data, size, &in);
    check_scan (data, size, &in);

    char *text = malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text[size] = '\0';
    check_quotation ("quotation", text);
    free (text);
    return 0;
}
