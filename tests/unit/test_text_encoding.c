/* test_text_encoding: encoding names, every byte of Windows-1252 and ISO-8859-1 against the
 * published mappings, UTF-8 repair by maximal subparts, the fast paths that copy nothing, and the
 * file scanner at every chunk boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text_encoding.h"

#define FFFD "\xEF\xBF\xBD"
#define BOM  "\xEF\xBB\xBF"

/* Windows-1252 bytes 0x80-0xFF as Unicode's table has them
 * (https://www.unicode.org/Public/MAPPINGS/VENDORS/MICSFT/WINDOWS/CP1252.TXT); 0: UNDEFINED. */
static const uint32_t cp1252[128] = {
    /* 0x80 */ 0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    /* 0x88 */ 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
    /* 0x90 */ 0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    /* 0x98 */ 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
    /* 0xA0 */ 0x00A0, 0x00A1, 0x00A2, 0x00A3, 0x00A4, 0x00A5, 0x00A6, 0x00A7,
    /* 0xA8 */ 0x00A8, 0x00A9, 0x00AA, 0x00AB, 0x00AC, 0x00AD, 0x00AE, 0x00AF,
    /* 0xB0 */ 0x00B0, 0x00B1, 0x00B2, 0x00B3, 0x00B4, 0x00B5, 0x00B6, 0x00B7,
    /* 0xB8 */ 0x00B8, 0x00B9, 0x00BA, 0x00BB, 0x00BC, 0x00BD, 0x00BE, 0x00BF,
    /* 0xC0 */ 0x00C0, 0x00C1, 0x00C2, 0x00C3, 0x00C4, 0x00C5, 0x00C6, 0x00C7,
    /* 0xC8 */ 0x00C8, 0x00C9, 0x00CA, 0x00CB, 0x00CC, 0x00CD, 0x00CE, 0x00CF,
    /* 0xD0 */ 0x00D0, 0x00D1, 0x00D2, 0x00D3, 0x00D4, 0x00D5, 0x00D6, 0x00D7,
    /* 0xD8 */ 0x00D8, 0x00D9, 0x00DA, 0x00DB, 0x00DC, 0x00DD, 0x00DE, 0x00DF,
    /* 0xE0 */ 0x00E0, 0x00E1, 0x00E2, 0x00E3, 0x00E4, 0x00E5, 0x00E6, 0x00E7,
    /* 0xE8 */ 0x00E8, 0x00E9, 0x00EA, 0x00EB, 0x00EC, 0x00ED, 0x00EE, 0x00EF,
    /* 0xF0 */ 0x00F0, 0x00F1, 0x00F2, 0x00F3, 0x00F4, 0x00F5, 0x00F6, 0x00F7,
    /* 0xF8 */ 0x00F8, 0x00F9, 0x00FA, 0x00FB, 0x00FC, 0x00FD, 0x00FE, 0x00FF,
};

/* The UTF-8 of a code point below U+10000, written out independently of the code under test. */
static size_t
utf8_of (uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

static text_encoding_converter_t *
open_converter (text_encoding_t encoding)
{
    char err[256] = "";
    text_encoding_converter_t *converter = text_encoding_converter_new (encoding, err, sizeof err);
    if (!converter)
        fail_msg ("cannot open a %s converter: %s", text_encoding_name (encoding), err);
    return converter;
}

/* Converts len bytes and checks the result and the number of replacements. */
static void
expect_conversion (text_encoding_converter_t *converter, const char *in, size_t len,
                   const char *expected, size_t expected_len, size_t expected_replaced)
{
    size_t out_len = 0, replaced = 99;
    const char *out = text_encoding_convert (converter, in, len, &out_len, &replaced);
    assert_non_null (out);
    if (out_len != expected_len || memcmp (out, expected, expected_len) != 0) {
        char shown[512] = "";
        for (size_t i = 0; i < out_len && i < 100; i++)
            snprintf (shown + strlen (shown), sizeof shown - strlen (shown), "%02X ",
                      (unsigned char)out[i]);
        fail_msg ("converting %zu bytes gave %zu bytes: %s", len, out_len, shown);
    }
    assert_int_equal (replaced, expected_replaced);
}

static void
test_names_and_aliases (void **state)
{
    (void)state;
    const struct {
        const char *name;
        text_encoding_t encoding;
    } good[] = {
        {"auto", TEXT_ENCODING_AUTO},
        {"AUTO", TEXT_ENCODING_AUTO},
        {"utf-8", TEXT_ENCODING_UTF8},
        {"UTF-8", TEXT_ENCODING_UTF8},
        {"utf8", TEXT_ENCODING_UTF8},
        {"windows-1252", TEXT_ENCODING_WINDOWS_1252},
        {"Windows-1252", TEXT_ENCODING_WINDOWS_1252},
        {"cp1252", TEXT_ENCODING_WINDOWS_1252},
        {"CP1252", TEXT_ENCODING_WINDOWS_1252},
        {"iso-8859-1", TEXT_ENCODING_ISO_8859_1},
        {"ISO-8859-1", TEXT_ENCODING_ISO_8859_1},
        {"latin1", TEXT_ENCODING_ISO_8859_1},
        {"Latin-1", TEXT_ENCODING_ISO_8859_1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        text_encoding_t encoding = TEXT_ENCODING_AUTO;
        if (good[i].encoding == TEXT_ENCODING_AUTO)
            encoding = TEXT_ENCODING_UTF8;
        if (text_encoding_parse (good[i].name, &encoding) != 0)
            fail_msg ("\"%s\" refused", good[i].name);
        assert_int_equal (encoding, good[i].encoding);
    }
    const char *bad[] = {"",        "utf-16",      "utf 8", "windows1252",
                         "latin 1", "iso-8859-15", "ascii", "utf-8 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        text_encoding_t encoding = TEXT_ENCODING_ISO_8859_1;
        if (text_encoding_parse (bad[i], &encoding) != -1)
            fail_msg ("\"%s\" accepted", bad[i]);
        assert_int_equal (encoding, TEXT_ENCODING_ISO_8859_1);
    }
    text_encoding_t encoding;
    assert_int_equal (text_encoding_parse (NULL, &encoding), -1);
    /* Each canonical name reads back as its encoding, and the names are the documented ones. */
    const text_encoding_t all[] = {TEXT_ENCODING_AUTO, TEXT_ENCODING_UTF8,
                                   TEXT_ENCODING_WINDOWS_1252, TEXT_ENCODING_ISO_8859_1};
    const char *canonical[] = {"auto", "utf-8", "windows-1252", "iso-8859-1"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal (text_encoding_name (all[i]), canonical[i]);
        assert_int_equal (text_encoding_parse (text_encoding_name (all[i]), &encoding), 0);
        assert_int_equal (encoding, all[i]);
        assert_non_null (strstr (TEXT_ENCODING_NAMES, canonical[i]));
    }
    assert_string_equal (text_encoding_name ((text_encoding_t)42), "unknown");
}

static void
test_every_windows_1252_byte (void **state)
{
    (void)state;
    text_encoding_converter_t *converter = open_converter (TEXT_ENCODING_WINDOWS_1252);
    size_t defined = 0;
    for (unsigned b = 0x80; b <= 0xFF; b++) {
        char in[3] = {'<', (char)b, '>'};
        char expected[8];
        size_t n = 0;
        expected[n++] = '<';
        uint32_t cp = cp1252[b - 0x80];
        if (cp) {
            defined++;
            n += utf8_of (cp, expected + n);
        }
        else {
            memcpy (expected + n, FFFD, 3);
            n += 3;
        }
        expected[n++] = '>';
        expect_conversion (converter, in, sizeof in, expected, n, cp ? 0 : 1);
    }
    assert_int_equal (defined, 123);
    text_encoding_converter_destroy (&converter);
}

static void
test_every_iso_8859_1_byte (void **state)
{
    (void)state;
    text_encoding_converter_t *converter = open_converter (TEXT_ENCODING_ISO_8859_1);
    for (unsigned b = 0x80; b <= 0xFF; b++) {
        char in[1] = {(char)b};
        char expected[4];
        /* 0xA0-0xFF are U+00A0-U+00FF; 0x80-0x9F are C1 controls, which the wire refuses. */
        if (b >= 0xA0)
            expect_conversion (converter, in, 1, expected, utf8_of (b, expected), 0);
        else
            expect_conversion (converter, in, 1, FFFD, 3, 1);
    }
    text_encoding_converter_destroy (&converter);
}

static void
test_single_byte_cells (void **state)
{
    (void)state;
    text_encoding_converter_t *cp = open_converter (TEXT_ENCODING_WINDOWS_1252);
    text_encoding_converter_t *latin = open_converter (TEXT_ENCODING_ISO_8859_1);
    /* The examples. */
    const char *farrah = "FARRAH\xB4S";
    expect_conversion (cp, farrah, strlen (farrah), "FARRAH\xC2\xB4S", 9, 0);
    expect_conversion (latin, farrah, strlen (farrah), "FARRAH\xC2\xB4S", 9, 0);
    const char *nbsp = "ACME LTD\xA0";
    expect_conversion (cp, nbsp, strlen (nbsp), "ACME LTD\xC2\xA0", 10, 0);
    /* Where the two differ: 0x80 is the euro sign in one and a control in the other. */
    expect_conversion (cp, "\x80z", 2, "\xE2\x82\xACz", 4, 0);
    expect_conversion (latin, "\x80z", 2, FFFD "z", 4, 1);
    /* Every undefined byte is counted, and the bytes around it are kept. */
    expect_conversion (cp, "a\x81g\x8D\x8F\x90\x9Dh", 8, "a" FFFD "g" FFFD FFFD FFFD FFFD "h", 18,
                       5);
    /* ASCII, control bytes and NUL included, is returned as it is, without a copy. */
    const char ascii[] = "Adult Social Care\t\x01 \x7F\0end";
    size_t out_len, replaced;
    assert_ptr_equal (text_encoding_convert (cp, ascii, sizeof ascii - 1, &out_len, &replaced),
                      ascii);
    assert_int_equal (out_len, sizeof ascii - 1);
    assert_int_equal (replaced, 0);
    assert_ptr_equal (text_encoding_convert (latin, ascii, sizeof ascii - 1, &out_len, &replaced),
                      ascii);
    assert_ptr_equal (text_encoding_convert (cp, "", 0, &out_len, &replaced), "");
    assert_int_equal (out_len, 0);
    /* A copy is NUL-terminated, and keeps NUL and control bytes where they were. */
    const char *out = text_encoding_convert (cp, "\0\xE9\t", 3, &out_len, &replaced);
    assert_int_equal (out_len, 4);
    assert_memory_equal (out, "\0\xC3\xA9\t", 5);
    /* Worst case growth, and the scratch serving a long cell then a short one. */
    char big[3000];
    memset (big, 0x80, sizeof big);
    out = text_encoding_convert (cp, big, sizeof big, &out_len, &replaced);
    assert_int_equal (out_len, 3 * sizeof big);
    assert_int_equal (out[out_len], '\0');
    assert_memory_equal (out + out_len - 3, "\xE2\x82\xAC", 3);
    expect_conversion (cp, "caf\xE9", 4, "caf\xC3\xA9", 5, 0);
    text_encoding_converter_destroy (&cp);
    text_encoding_converter_destroy (&latin);
}

static void
test_utf8_maximal_subparts (void **state)
{
    (void)state;
    text_encoding_converter_t *converter = open_converter (TEXT_ENCODING_UTF8);
    const struct {
        const char *in;
        const char *out;
        size_t replaced;
    } cases[] = {
        /* Unicode 15, chapter 3, Table 3-8: one U+FFFD per maximal subpart. */
        {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
         "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d", 6},
        /* Lone bytes that start nothing. */
        {"\x80", FFFD, 1},
        {"\xBFx", FFFD "x", 1},
        {"\xFE\xFF", FFFD FFFD, 2},
        {"FARRAH\xB4S", "FARRAH" FFFD "S", 1},
        {"ACME LTD\xA0", "ACME LTD" FFFD, 1},
        /* Overlong forms: the lead byte alone, or C0/C1 which start nothing. */
        {"\xC0\xAF", FFFD FFFD, 2},
        {"\xC1\xBF", FFFD FFFD, 2},
        {"\xE0\x80\xAF", FFFD FFFD FFFD, 3},
        {"\xE0\x9F\xBF", FFFD FFFD FFFD, 3},
        {"\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD, 4},
        {"\xF0\x8F\xBF\xBF", FFFD FFFD FFFD FFFD, 4},
        /* Surrogates. */
        {"\xED\xA0\x80", FFFD FFFD FFFD, 3},
        {"\xED\xBF\xBF", FFFD FFFD FFFD, 3},
        /* Above U+10FFFF. */
        {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, 4},
        {"\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD, 4},
        {"\xF7\xBF\xBF\xBF", FFFD FFFD FFFD FFFD, 4},
        /* Truncated sequences: the valid start is one subpart, however long. */
        {"\xC3", FFFD, 1},
        {"\xE2\x82", FFFD, 1},
        {"\xF0\x9F\x98", FFFD, 1},
        {"\xE2\x82Z", FFFD "Z", 1},
        {"\xF0\x9F\x98\xF0\x9F\x98\x80", FFFD "\xF0\x9F\x98\x80", 1},
        {"\xE2\xE2\x82\xAC", FFFD "\xE2\x82\xAC", 1},
        /* The edges that are valid, next to bad bytes. */
        {"\xED\x9F\xBF\x80", "\xED\x9F\xBF" FFFD, 1},
        {"\xEE\x80\x80\xC2", "\xEE\x80\x80" FFFD, 1},
        {"\xF4\x8F\xBF\xBF\xF4", "\xF4\x8F\xBF\xBF" FFFD, 1},
        {"\xC2\x80\xDF\xBF\xE0\xA0\x80\xF0\x90\x80\x80\xFF",
         "\xC2\x80\xDF\xBF\xE0\xA0\x80\xF0\x90\x80\x80" FFFD, 1},
        /* A U+FFFD already in the text is kept and not counted. */
        {FFFD "\x80", FFFD FFFD, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_conversion (converter, cases[i].in, strlen (cases[i].in), cases[i].out,
                           strlen (cases[i].out), cases[i].replaced);

    /* Valid UTF-8 is the input itself, not a copy, whatever characters it holds. */
    const char *valid[] = {
        "",
        "Adult Social Care",
        "Caf\xC3\xA9 \xE2\x82\xAC 10 \xF0\x9F\x98\x80",
        BOM "Header",
        "\xF4\x8F\xBF\xBF\xED\x9F\xBF\xEE\x80\x80",
        "a long ASCII run before the accent: Societ\xC3\xA9 G\xC3\xA9n\xC3\xA9rale"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t out_len, replaced;
        const char *out =
            text_encoding_convert (converter, valid[i], strlen (valid[i]), &out_len, &replaced);
        assert_ptr_equal (out, valid[i]);
        assert_int_equal (out_len, strlen (valid[i]));
        assert_int_equal (replaced, 0);
    }
    /* NUL bytes are valid UTF-8 and pass through. */
    expect_conversion (converter, "a\0\xC3", 3, "a\0" FFFD, 5, 1);
    text_encoding_converter_destroy (&converter);
}

static void
test_converter_life (void **state)
{
    (void)state;
    char err[256] = "";
    assert_null (text_encoding_converter_new (TEXT_ENCODING_AUTO, err, sizeof err));
    assert_non_null (strstr (err, "auto"));
    assert_null (text_encoding_converter_new ((text_encoding_t)42, NULL, 0));
    text_encoding_converter_t *converter = open_converter (TEXT_ENCODING_UTF8);
    text_encoding_converter_destroy (&converter);
    assert_null (converter);
    text_encoding_converter_destroy (&converter);
    text_encoding_converter_destroy (NULL);

    text_encoding_scan_t scan;
    text_encoding_scan_init (&scan);
    assert_int_equal (text_encoding_resolve (TEXT_ENCODING_AUTO, &scan), TEXT_ENCODING_UTF8);
    text_encoding_scan (&scan, "\xA0", 1);
    assert_int_equal (text_encoding_resolve (TEXT_ENCODING_AUTO, &scan),
                      TEXT_ENCODING_WINDOWS_1252);
    assert_int_equal (text_encoding_resolve (TEXT_ENCODING_UTF8, &scan), TEXT_ENCODING_UTF8);
    assert_int_equal (text_encoding_resolve (TEXT_ENCODING_ISO_8859_1, NULL),
                      TEXT_ENCODING_ISO_8859_1);
    assert_int_equal (text_encoding_resolve (TEXT_ENCODING_WINDOWS_1252, NULL),
                      TEXT_ENCODING_WINDOWS_1252);
}

typedef struct {
    bool valid;
    uint64_t bad_offset;
    unsigned char bad_byte;
} scan_result_t;

/* Scans data in chunks cut at the given positions (ascending, within len). */
static scan_result_t
scan_in_chunks (const char *data, size_t len, const size_t *cuts, size_t n_cuts)
{
    text_encoding_scan_t scan;
    text_encoding_scan_init (&scan);
    size_t from = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t to = k < n_cuts ? cuts[k] : len;
        bool going = text_encoding_scan (&scan, data + from, to - from);
        assert_int_equal (going, scan.valid);
        from = to;
    }
    bool ended = text_encoding_scan_end (&scan);
    assert_int_equal (ended, scan.valid);
    return (scan_result_t){scan.valid, scan.bad_offset, scan.bad_byte};
}

static void
expect_scan (const char *data, size_t len, bool valid, uint64_t bad_offset, unsigned char bad_byte)
{
    scan_result_t whole = scan_in_chunks (data, len, NULL, 0);
    assert_int_equal (whole.valid, valid);
    if (!valid) {
        assert_int_equal (whole.bad_offset, bad_offset);
        assert_int_equal (whole.bad_byte, bad_byte);
    }
    /* Cut once at every position, twice at every pair (short texts), and byte by byte: the same
     * answer every time. */
    for (size_t i = 0; i <= len; i++) {
        scan_result_t r = scan_in_chunks (data, len, &i, 1);
        if (r.valid != valid || (!valid && (r.bad_offset != bad_offset || r.bad_byte != bad_byte)))
            fail_msg ("cut at %zu of %zu: valid %d offset %llu byte 0x%02X", i, len, r.valid,
                      (unsigned long long)r.bad_offset, r.bad_byte);
    }
    if (len <= 64)
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                size_t cuts[2] = {i, j};
                scan_result_t r = scan_in_chunks (data, len, cuts, 2);
                assert_int_equal (r.valid, valid);
                if (!valid) {
                    assert_int_equal (r.bad_offset, bad_offset);
                    assert_int_equal (r.bad_byte, bad_byte);
                }
            }
    size_t *every = malloc ((len + 1) * sizeof *every);
    assert_non_null (every);
    for (size_t i = 0; i < len; i++)
        every[i] = i + 1;
    scan_result_t r = scan_in_chunks (data, len, every, len ? len - 1 : 0);
    free (every);
    assert_int_equal (r.valid, valid);
    if (!valid)
        assert_int_equal (r.bad_offset, bad_offset);
}

static void
test_scan_at_every_chunk_boundary (void **state)
{
    (void)state;
    const char *ok = "Date,Supplier\r\n01/04/2013,Caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\r\n";
    expect_scan (ok, strlen (ok), true, 0, 0);
    expect_scan ("", 0, true, 0, 0);
    expect_scan (BOM "Date", 7, true, 0, 0);
    /* The first byte of the first invalid sequence, counted from 0. */
    expect_scan ("FARRAH\xB4S", 8, false, 6, 0xB4);
    expect_scan ("a\xE2\x82Z \xA0", 6, false, 1, 0xE2);
    expect_scan ("ok\xF0\x9F\x98", 5, false, 2, 0xF0);       /* cut short by the end */
    expect_scan ("\xC3\xA9\xED\xA0\x80", 5, false, 2, 0xED); /* a surrogate */
    expect_scan ("\xE2\x82\xAC\xC0\xAF", 5, false, 3, 0xC0); /* overlong */
    expect_scan ("x\xF4\x90\x80\x80", 5, false, 1, 0xF4);    /* above U+10FFFF */
    expect_scan ("\xF0\x9F\x98\x80\xF0\x9F\x98", 7, false, 4,
                 0xF0); /* a whole one, then a cut one */
    /* Long enough to pass through the eight-byte ASCII path: a 0xA0 at offset 1234. */
    char file[2000];
    memset (file, 'a', sizeof file);
    memcpy (file + 100, "\xC3\xA9", 2);
    file[1234] = (char)0xA0;
    expect_scan (file, sizeof file, false, 1234, 0xA0);
    file[1234] = 'b';
    expect_scan (file, sizeof file, true, 0, 0);

    /* After the first bad byte nothing changes. */
    text_encoding_scan_t scan;
    text_encoding_scan_init (&scan);
    assert_true (text_encoding_scan (&scan, "abc", 3));
    assert_false (text_encoding_scan (&scan, "d\x9D", 2));
    assert_false (text_encoding_scan (&scan, "\xFF\xFF", 2));
    assert_false (text_encoding_scan_end (&scan));
    assert_int_equal (scan.bad_offset, 4);
    assert_int_equal (scan.bad_byte, 0x9D);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_names_and_aliases),
        cmocka_unit_test (test_every_windows_1252_byte),
        cmocka_unit_test (test_every_iso_8859_1_byte),
        cmocka_unit_test (test_single_byte_cells),
        cmocka_unit_test (test_utf8_maximal_subparts),
        cmocka_unit_test (test_converter_life),
        cmocka_unit_test (test_scan_at_every_chunk_boundary),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
