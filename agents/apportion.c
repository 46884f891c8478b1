/* apportion: largest-remainder rule in unsigned 64-bit arithmetic. With the amount's magnitude
 * m = q * W + r (W the total weight, r < W), a part's exact share is q * w + r * w / W; q * w <= m
 * and r * w < W * W <= 10^18, so nothing can overflow and no floating point is involved. */
#include "apportion.h"
#include "err_text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    uint64_t remainder; /* of r * w / W: the fraction of a penny, in units of 1/W */
    size_t index;
} share_t;

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

/* Largest remainder first; on a tie, the lower index: the same input always splits the same way. */
static int
by_remainder (const void *a, const void *b)
{
    const share_t *x = a, *y = b;
    if (x->remainder != y->remainder)
        return x->remainder > y->remainder ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index ? 1 : 0);
}

int
apportion_pence (int64_t amount, const uint32_t *weights, size_t n, int64_t *parts, char *err,
                 size_t err_len)
{
    if (n == 0 || n > APPORTION_MAX_PARTS)
        return fail (err, err_len, "cannot split into %zu parts (1 to %u)", n, APPORTION_MAX_PARTS);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (weights[i] == 0)
            return fail (err, err_len, "weight %zu is 0; weights are whole numbers from 1", i + 1);
        total += weights[i]; /* n * UINT32_MAX cannot overflow 64 bits */
    }
    if (total > APPORTION_MAX_WEIGHT_TOTAL)
        return fail (err, err_len, "the weights add up to %llu, over the limit of %llu",
                     (unsigned long long)total, (unsigned long long)APPORTION_MAX_WEIGHT_TOTAL);

    bool negative = amount < 0;
    /* The magnitude of INT64_MIN is 2^63, which uint64 holds. */
    uint64_t magnitude = negative ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = magnitude / total, rest = magnitude % total;

    share_t *shares = NULL;
    if (n > 1 && !(shares = malloc (n * sizeof *shares)))
        return fail (err, err_len, "out of memory splitting an amount into %zu parts", n);
    uint64_t given = 0;
    uint64_t *base = (uint64_t *)parts; /* magnitudes first, signs at the end */
    for (size_t i = 0; i < n; i++) {
        uint64_t scaled, share;
        if (__builtin_mul_overflow (rest, (uint64_t)weights[i], &scaled) ||
            __builtin_mul_overflow (whole, (uint64_t)weights[i], &share) ||
            __builtin_add_overflow (share, scaled / total, &share)) {
            free (shares);
            return fail (err, err_len,
                         "overflow splitting an amount (cannot happen within the "
                         "limits)");
        }
        base[i] = share;
        given += share;
        if (shares)
            shares[i] = (share_t){scaled % total, i};
    }
    /* Fewer than n pence are left: each of the largest remainders gets one. */
    uint64_t left = magnitude - given;
    if (left > 0 && shares) {
        qsort (shares, n, sizeof *shares, by_remainder);
        for (uint64_t k = 0; k < left; k++)
            base[shares[k].index]++;
    }
    free (shares);
    for (size_t i = 0; i < n; i++) {
        uint64_t m = base[i];
        /* Written so that a magnitude of 2^63 becomes INT64_MIN without overflow. */
        parts[i] = negative ? (m == 0 ? 0 : -(int64_t)(m - 1) - 1) : (int64_t)m;
    }
    return 0;
}
