/* test_quoted_text: how rejection reasons quote the text they refuse: escapes, the bound, cuts on
 * character and escape boundaries, and that any bytes at all give one bounded line of UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "quoted_text.h"
#include "wire.h"

static void
expect_quote (const char *text, const char *expected)
{
    char out[QUOTED_TEXT_LEN];
    assert_ptr_equal (quoted_text (text, out, sizeof out), out);
    assert_string_equal (out, expected);
}

static void
test_escapes (void **state)
{
    (void)state;
    expect_quote ("ACME Ltd", "\"ACME Ltd\"");
    expect_quote ("", "\"\"");
    expect_quote (NULL, "\"\"");
    expect_quote ("say \"hi\"", "\"say \\\"hi\\\"\"");
    expect_quote ("C:\\exports", "\"C:\\\\exports\"");
    expect_quote ("a\tb\r\nc\x7F\x01", "\"a\\x09b\\x0D\\x0Ac\\x7F\\x01\"");
    /* Invalid UTF-8: every byte of it, as in the example. */
    expect_quote ("FARRAH\xB4S", "\"FARRAH\\xB4S\"");
    expect_quote ("ACME LTD\xA0", "\"ACME LTD\\xA0\"");
    expect_quote ("\xE2\x82Z", "\"\\xE2\\x82Z\"");
    expect_quote ("\xED\xA0\x80", "\"\\xED\\xA0\\x80\"");
    expect_quote ("\xC0\xAF", "\"\\xC0\\xAF\"");
    expect_quote ("\xF0\x9F\x98", "\"\\xF0\\x9F\\x98\"");
    /* Valid UTF-8 is kept, except what a viewer could take for a line break. */
    expect_quote ("Caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBD",
                  "\"Caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBD\"");
    expect_quote ("a\xC2\x85z\xC2\x80\xC2\x9F\xC2\xA0", "\"a\\u0085z\\u0080\\u009F\xC2\xA0\"");
    expect_quote ("\xE2\x80\xA8|\xE2\x80\xA9|\xE2\x80\xA7", "\"\\u2028|\\u2029|\xE2\x80\xA7\"");
}

/* Quotes run bytes of 'x' followed by tail, expecting the x's followed by shown. */
static void
expect_after_run (size_t run, const char *tail, const char *shown)
{
    char text[128], expected[160];
    memset (text, 'x', run);
    strcpy (text + run, tail);
    expected[0] = '"';
    memset (expected + 1, 'x', run);
    strcpy (expected + 1 + run, shown);
    expect_quote (text, expected);
}

static void
test_bound (void **state)
{
    (void)state;
    /* Exactly QUOTED_TEXT_MAX bytes fit; one more is cut with "...". */
    expect_after_run (QUOTED_TEXT_MAX, "", "\"");
    expect_after_run (QUOTED_TEXT_MAX, "y", "...\"");
    /* A character is never cut: 39 bytes then a two-byte pound sign. */
    expect_after_run (39, "\xC2\xA3", "...\"");
    expect_after_run (38, "\xC2\xA3", "\xC2\xA3\"");
    /* Nor an escape: 37 bytes then a tab (4 bytes written) does not fit; 36 then a tab does. */
    expect_after_run (37, "\tz", "...\"");
    expect_after_run (36, "\t", "\\x09\"");
    /* Escapes count as they are written: ten invalid bytes fill the quotation. */
    expect_quote ("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
                  "\"\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF...\"");
    /* A smaller buffer gets a shorter quotation, never an overrun. */
    char small[12];
    memset (small, '#', sizeof small);
    assert_string_equal (quoted_text ("abcdefghij", small, 10), "\"abcd...\"");
    assert_int_equal (small[10], '#');
    memset (small, '#', sizeof small);
    assert_string_equal (quoted_text ("abcdefghij", small, 5), "");
    assert_int_equal (small[1], '#');
    small[0] = '#';
    quoted_text ("abc", small, 0);
    assert_int_equal (small[0], '#');
}

/* True when s is valid UTF-8 without control bytes, by the wire's own definition. */
static bool
one_clean_line (const char *s)
{
    size_t len = strlen (s);
    for (size_t i = 0; i < len;) {
        size_t n;
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F ||
            wire_utf8_char (s + i, len - i, &n) != WIRE_UTF8_VALID)
            return false;
        if (n == 2 && (unsigned char)s[i] == 0xC2 && (unsigned char)s[i + 1] <= 0x9F)
            return false;
        i += n;
    }
    return true;
}

static void
test_any_bytes_give_one_bounded_line (void **state)
{
    (void)state;
    /* Pseudo-random texts drawn from bytes that matter here; fixed seed, so every run is the same.
     */
    static const unsigned char alphabet[] = {'a',  ' ',  '"',  '\\', '\t', '\n', 0x7F, 0x80,
                                             0x85, 0xA0, 0xBF, 0xC2, 0xC3, 0xE2, 0x82, 0xAC,
                                             0xED, 0xF0, 0x9F, 0x98, 0xF4, 0xFF, 0xA8, 0x01};
    uint32_t seed = 12345;
    for (int round = 0; round < 20000; round++) {
        char text[80];
        size_t len = (size_t)(round % 79);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            text[i] = (char)alphabet[(seed >> 16) % sizeof alphabet];
        }
        text[len] = '\0';
        char out[QUOTED_TEXT_LEN + 8];
        memset (out, '#', sizeof out);
        quoted_text (text, out, QUOTED_TEXT_LEN);
        size_t n = strlen (out);
        assert_true (n <= QUOTED_TEXT_LEN - 1);
        assert_int_equal (out[QUOTED_TEXT_LEN], '#');
        assert_true (n >= 2 && out[0] == '"' && out[n - 1] == '"');
        assert_true (one_clean_line (out));
        /* No quote inside is left bare: each is preceded by an odd run of backslashes. */
        for (size_t i = 1; i + 1 < n; i++)
            if (out[i] == '"') {
                size_t slashes = 0;
                while (i - slashes > 1 && out[i - 1 - slashes] == '\\')
                    slashes++;
                assert_true (slashes % 2 == 1);
            }
        /* "..." exactly when the text was not all shown: at most QUOTED_TEXT_MAX bytes inside. */
        bool cut = n >= 5 && memcmp (out + n - 4, "...", 3) == 0;
        assert_true ((cut ? n - 5 : n - 2) <= QUOTED_TEXT_MAX);
        if (len * 4 <= QUOTED_TEXT_MAX) /* no byte is written as more than 4 */
            assert_false (cut);
    }
}

static void
test_refuse (void **state)
{
    (void)state;
    char err[128];
    assert_int_equal (quoted_text_refuse ("12,34.5", err, sizeof err, "thousands %s", "separator"),
                      -1);
    assert_string_equal (err, "\"12,34.5\": thousands separator");
    assert_int_equal (quoted_text_refuse ("\xA3z", err, sizeof err, "no digits"), -1);
    assert_string_equal (err, "\"\\xA3z\": no digits");
    assert_int_equal (quoted_text_refuse ("x", NULL, 0, "ignored"), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_escapes),
        cmocka_unit_test (test_bound),
        cmocka_unit_test (test_any_bytes_give_one_bounded_line),
        cmocka_unit_test (test_refuse),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
