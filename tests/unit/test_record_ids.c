/* test_record_ids: derived ids are formed exactly as documented, number identical contents from 1,
 * ignore what normalisation removes, tell different contents and fields apart, and keep counting
 * correctly as the table grows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "record_ids.h"

static void
derive (record_ids_t *ids, const record_ids_field_t *fields, size_t n, char id[RECORD_IDS_LEN])
{
    char err[128] = "";
    if (record_ids_derive (ids, fields, n, id, err, sizeof err) != 0)
        fail_msg ("record_ids_derive failed: %s", err);
}

static void
test_formed_as_documented (void **state)
{
    (void)state;
    record_ids_t *ids = record_ids_new ();
    assert_non_null (ids);
    const record_ids_field_t fields[] = {
        {"date", "2014-04-23", RECORD_IDS_EXACT},
        {"supplier", "  BERMAR  Building\tCO LTD ", RECORD_IDS_TEXT},
        {"postcode", "s70 2tn", RECORD_IDS_POSTCODE},
    };
    char id[RECORD_IDS_LEN];
    derive (ids, fields, 3, id);

    /* docs/input-format.md: SHA-256 over the tag and each name and normalised value, each followed
     * by a NUL byte; "d:", the first 16 bytes in lowercase hex, "#", the occurrence. */
    static const char message[] = "totalplace derived record id v1\0"
                                  "date\0002014-04-23\0"
                                  "supplier\0bermar building co ltd\0"
                                  "postcode\0S702TN";
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *)message, sizeof message);
    char expected[RECORD_IDS_LEN] = "d:";
    for (size_t i = 0; i < 16; i++)
        snprintf (expected + 2 + 2 * i, 3, "%02x", digest[i]);
    strcat (expected, "#1");
    assert_string_equal (id, expected);
    assert_int_equal (strlen (id), 36);

    derive (ids, fields, 3, id);
    expected[strlen (expected) - 1] = '2';
    assert_string_equal (id, expected);
    assert_int_equal (record_ids_distinct (ids), 1);
    record_ids_destroy (&ids);
    record_ids_destroy (&ids);
    assert_null (ids);
}

static void
test_normalisation_and_differences (void **state)
{
    (void)state;
    record_ids_t *ids = record_ids_new ();
    assert_non_null (ids);
    char a[RECORD_IDS_LEN], b[RECORD_IDS_LEN];

    record_ids_field_t one[] = {{"supplier", "British Gas", RECORD_IDS_TEXT},
                                {"postcode", "S70 2TN", RECORD_IDS_POSTCODE}};
    record_ids_field_t two[] = {{"supplier", " BRITISH   GAS ", RECORD_IDS_TEXT},
                                {"postcode", "s702tn", RECORD_IDS_POSTCODE}};
    derive (ids, one, 2, a);
    derive (ids, two, 2, b);
    assert_int_equal (strncmp (a, b, 34), 0); /* the same content... */
    assert_string_equal (strchr (a, '#'), "#1");
    assert_string_equal (strchr (b, '#'), "#2"); /* ...counted twice */

    /* Exact values are not folded. */
    record_ids_field_t upper[] = {{"amount", "A", RECORD_IDS_EXACT}};
    record_ids_field_t lower[] = {{"amount", "a", RECORD_IDS_EXACT}};
    derive (ids, upper, 1, a);
    derive (ids, lower, 1, b);
    assert_int_not_equal (strncmp (a, b, 34), 0);

    /* A value cannot move to another field unnoticed, nor be split differently. */
    record_ids_field_t left[] = {{"supplier", "x", RECORD_IDS_TEXT},
                                 {"service", "", RECORD_IDS_TEXT}};
    record_ids_field_t right[] = {{"supplier", "", RECORD_IDS_TEXT},
                                  {"service", "x", RECORD_IDS_TEXT}};
    derive (ids, left, 2, a);
    derive (ids, right, 2, b);
    assert_int_not_equal (strncmp (a, b, 34), 0);
    record_ids_field_t ab[] = {{"f", "ab", RECORD_IDS_EXACT}, {"g", "", RECORD_IDS_EXACT}};
    record_ids_field_t a_b[] = {{"f", "a", RECORD_IDS_EXACT}, {"g", "b", RECORD_IDS_EXACT}};
    derive (ids, ab, 2, a);
    derive (ids, a_b, 2, b);
    assert_int_not_equal (strncmp (a, b, 34), 0);

    /* A long value (a 64 KiB description) is hashed whole. */
    static char long_text[70000];
    memset (long_text, 'q', sizeof long_text - 1);
    record_ids_field_t big[] = {{"description", long_text, RECORD_IDS_TEXT}};
    derive (ids, big, 1, a);
    long_text[sizeof long_text - 2] = 'r';
    derive (ids, big, 1, b);
    assert_int_not_equal (strncmp (a, b, 34), 0);
    record_ids_destroy (&ids);
}

static void
test_counts_survive_growth (void **state)
{
    (void)state;
    record_ids_t *ids = record_ids_new ();
    assert_non_null (ids);
    char id[RECORD_IDS_LEN], value[32];
    const size_t n = 50000;
    /* Every content three times, interleaved: occurrence k on pass k, whatever the table did. */
    for (size_t pass = 1; pass <= 3; pass++)
        for (size_t i = 0; i < n; i++) {
            snprintf (value, sizeof value, "%zu", i);
            record_ids_field_t field = {"amount", value, RECORD_IDS_EXACT};
            derive (ids, &field, 1, id);
            char suffix[8];
            snprintf (suffix, sizeof suffix, "#%zu", pass);
            assert_string_equal (strchr (id, '#'), suffix);
        }
    assert_int_equal (record_ids_distinct (ids), n);
    record_ids_destroy (&ids);
}

static void
test_tables_are_independent (void **state)
{
    (void)state;
    /* Each file starts from #1: the same export read twice gives the same ids. */
    record_ids_field_t field = {"amount", "-820095", RECORD_IDS_EXACT};
    char first[RECORD_IDS_LEN], again[RECORD_IDS_LEN];
    for (int run = 0; run < 2; run++) {
        record_ids_t *ids = record_ids_new ();
        assert_non_null (ids);
        derive (ids, &field, 1, run ? again : first);
        record_ids_destroy (&ids);
    }
    assert_string_equal (first, again);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_formed_as_documented),
        cmocka_unit_test (test_normalisation_and_differences),
        cmocka_unit_test (test_counts_survive_growth),
        cmocka_unit_test (test_tables_are_independent),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
