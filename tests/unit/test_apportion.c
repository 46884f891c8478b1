/* test_apportion: splits always sum exactly to the amount, follow the largest-remainder rule
 * (checked against a plain 128-bit reference), break ties by index, treat credits symmetrically,
 * reach the int64 extremes without overflow and refuse bad weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apportion.h"

static int64_t
sum (const int64_t *parts, size_t n)
{
    __int128 total = 0;
    for (size_t i = 0; i < n; i++)
        total += parts[i];
    assert_true (total >= INT64_MIN && total <= INT64_MAX);
    return (int64_t)total;
}

static void
split (int64_t amount, const uint32_t *weights, size_t n, int64_t *parts)
{
    char err[256] = "";
    int rc = apportion_pence (amount, weights, n, parts, err, sizeof err);
    if (rc != 0)
        fail_msg ("apportion_pence (%lld) failed: %s", (long long)amount, err);
    assert_int_equal (sum (parts, n), amount);
}

static void
test_worked_examples (void **state)
{
    (void)state;
    int64_t parts[4];
    /* 100 in thirds: 33.33 each, the spare penny to the first (equal remainders: lower index). */
    split (10000, (uint32_t[]){1, 1, 1}, 3, parts);
    assert_int_equal (parts[0], 3334);
    assert_int_equal (parts[1], 3333);
    assert_int_equal (parts[2], 3333);
    /* 1:2 of 100p: 33.33 and 66.67; the larger remainder (.67) takes the penny. */
    split (100, (uint32_t[]){1, 2}, 2, parts);
    assert_int_equal (parts[0], 33);
    assert_int_equal (parts[1], 67);
    /* A credit splits as the negation of the payment it reverses. */
    split (-100, (uint32_t[]){1, 2}, 2, parts);
    assert_int_equal (parts[0], -33);
    assert_int_equal (parts[1], -67);
    /* Fewer pence than parts: the first ones get them. */
    split (2, (uint32_t[]){5, 5, 5, 5}, 4, parts);
    assert_int_equal (parts[0], 1);
    assert_int_equal (parts[1], 1);
    assert_int_equal (parts[2], 0);
    assert_int_equal (parts[3], 0);
    /* Population weights of four LSOAs, the council-wide credit. */
    split (-820095, (uint32_t[]){1612, 1498, 1705, 1550}, 4, parts);
    assert_int_equal (parts[0], -207697);
    assert_int_equal (parts[1], -193009);
    assert_int_equal (parts[2], -219680);
    assert_int_equal (parts[3], -199709);
    /* Zero splits into zeros. */
    split (0, (uint32_t[]){3, 7}, 2, parts);
    assert_int_equal (parts[0], 0);
    assert_int_equal (parts[1], 0);
}

static void
test_one_part_gets_everything (void **state)
{
    (void)state;
    int64_t part;
    const int64_t amounts[] = {0, 1, -1, 123456789, INT64_MAX, INT64_MIN, -1000000000000000};
    for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
        split (amounts[i], (uint32_t[]){7}, 1, &part);
        assert_int_equal (part, amounts[i]);
    }
}

static void
test_extremes_do_not_overflow (void **state)
{
    (void)state;
    int64_t parts[3];
    const uint32_t heavy[] = {333333333, 333333333, 333333334}; /* total 10^9, the limit */
    split (INT64_MAX, heavy, 3, parts);
    split (INT64_MIN, heavy, 3, parts);
    split (INT64_MIN + 1, heavy, 3, parts);
    split (-1, heavy, 3, parts);
    assert_int_equal (parts[2], -1); /* the largest weight has the largest remainder */
}

/* The rule stated plainly, in 128-bit arithmetic: floor shares, then the spare pence to the
 * largest remainders, ties to the lower index; a negative amount is the mirror image. */
static void
reference (int64_t amount, const uint32_t *weights, size_t n, int64_t *parts)
{
    __int128 magnitude = amount < 0 ? -(__int128)amount : amount, total = 0, given = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    __int128 floors[64], remainders[64];
    bool taken[64] = {false};
    for (size_t i = 0; i < n; i++) {
        floors[i] = magnitude * weights[i] / total;
        remainders[i] = magnitude * weights[i] % total;
        given += floors[i];
    }
    for (__int128 left = magnitude - given; left > 0; left--) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!taken[i] && (best == n || remainders[i] > remainders[best]))
                best = i;
        taken[best] = true;
        floors[best]++;
    }
    for (size_t i = 0; i < n; i++)
        parts[i] = (int64_t)(amount < 0 ? -floors[i] : floors[i]);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t
next_random (void)
{
    /* xorshift64*: reproducible, no libc state. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static void
test_matches_the_reference_rule (void **state)
{
    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + next_random () % 12;
        uint32_t weights[64];
        for (size_t i = 0; i < n; i++)
            /* Small weights give many ties; large ones exercise the arithmetic. */
            weights[i] = (uint32_t)(round % 2 ? 1 + next_random () % 4
                                              : 1 + next_random () % (1000000000 / 12));
        int64_t amount;
        switch (round % 4) {
        case 0:
            amount = (int64_t)(next_random () % 2000001) - 1000000;
            break;
        case 1:
            amount = (int64_t)(next_random () % 20) - 10;
            break;
        default:
            amount = (int64_t)next_random ();
            break;
        }
        int64_t parts[64], expected[64];
        split (amount, weights, n, parts);
        reference (amount, weights, n, expected);
        for (size_t i = 0; i < n; i++)
            if (parts[i] != expected[i])
                fail_msg ("round %d part %zu of %lld: %lld, expected %lld", round, i,
                          (long long)amount, (long long)parts[i], (long long)expected[i]);
    }
}

static void
test_many_parts (void **state)
{
    (void)state;
    size_t n = APPORTION_MAX_PARTS;
    uint32_t *weights = calloc (n, sizeof *weights);
    int64_t *parts = calloc (n, sizeof *parts);
    assert_non_null (weights);
    assert_non_null (parts);
    for (size_t i = 0; i < n; i++)
        weights[i] = (uint32_t)(1000 + i % 97);
    split (123456789, weights, n, parts);
    split (-5, weights, n, parts); /* 5 pence over 4096 parts */
    int nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero += parts[i] != 0;
    assert_int_equal (nonzero, 5);
    free (weights);
    free (parts);
}

static void
test_refusals (void **state)
{
    (void)state;
    int64_t parts[4];
    char err[256] = "";
    assert_int_equal (apportion_pence (100, (uint32_t[]){1}, 0, parts, err, sizeof err), -1);
    assert_non_null (strstr (err, "0 parts"));
    assert_int_equal (apportion_pence (100, (uint32_t[]){1, 0}, 2, parts, err, sizeof err), -1);
    assert_non_null (strstr (err, "weight 2 is 0"));
    assert_int_equal (
        apportion_pence (100, (uint32_t[]){600000000, 400000001}, 2, parts, err, sizeof err), -1);
    assert_non_null (strstr (err, "1000000001"));
    assert_int_equal (
        apportion_pence (100, (uint32_t[]){1}, APPORTION_MAX_PARTS + 1, parts, err, sizeof err),
        -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_worked_examples),
        cmocka_unit_test (test_one_part_gets_everything),
        cmocka_unit_test (test_extremes_do_not_overflow),
        cmocka_unit_test (test_matches_the_reference_rule),
        cmocka_unit_test (test_many_parts),
        cmocka_unit_test (test_refusals),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
