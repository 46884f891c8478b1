/* test_text_fold: the folded forms of headers, lookup values and postcodes, truncation reporting,
 * and buffer-free comparison agreeing with the folded form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "text_fold.h"

static void
test_fold (void **state)
{
    (void)state;
    char out[64];
    assert_int_equal (text_fold ("  Asset \t Management\r\n", out, sizeof out), 16);
    assert_string_equal (out, "asset management");
    assert_int_equal (text_fold ("", out, sizeof out), 0);
    assert_string_equal (out, "");
    assert_int_equal (text_fold (" \t\n ", out, sizeof out), 0);
    /* Non-ASCII bytes are kept as they are. */
    text_fold ("CAF\xC3\x89  Ltd", out, sizeof out);
    assert_string_equal (out, "caf\xC3\x89 ltd");
}

static void
test_postcode (void **state)
{
    (void)state;
    char out[16];
    const char *forms[] = {"S70 2TN", "s70 2tn", " S70  2TN ", "S702TN", "s\t70 2 t n"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        assert_int_equal (text_fold_postcode (forms[i], out, sizeof out), 6);
        assert_string_equal (out, "S702TN");
    }
}

static void
test_truncation_is_reported (void **state)
{
    (void)state;
    char out[4];
    assert_int_equal (text_fold ("Abcdef", out, sizeof out), 6);
    assert_string_equal (out, "abc");
    assert_int_equal (text_fold_postcode ("ab 12", out, sizeof out), 4);
    assert_string_equal (out, "AB1");
    assert_int_equal (text_fold ("xyz", NULL, 0), 3);
}

static void
test_equal (void **state)
{
    (void)state;
    assert_true (text_fold_equal ("Payment Date", "payment date"));
    assert_true (text_fold_equal ("  Payment\n  Date ", "Payment Date"));
    assert_true (text_fold_equal ("", "  "));
    assert_false (text_fold_equal ("PaymentDate", "Payment Date"));
    assert_false (text_fold_equal ("Payment Date", "Payment Dat"));
    assert_false (text_fold_equal ("Amount", "Amount X"));
    /* Agrees with comparing the folded forms. */
    const char *samples[] = {"a b", " A  B ", "ab", "a\tb", "a b c", "", "A", " a"};
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < 8; j++) {
            char x[32], y[32];
            text_fold (samples[i], x, sizeof x);
            text_fold (samples[j], y, sizeof y);
            assert_int_equal (text_fold_equal (samples[i], samples[j]), strcmp (x, y) == 0);
        }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_fold),
        cmocka_unit_test (test_postcode),
        cmocka_unit_test (test_truncation_is_reported),
        cmocka_unit_test (test_equal),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
