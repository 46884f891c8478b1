/* apportion: splits an amount of pence over several neighbourhoods in proportion to whole-number
 * weights (e.g. populations), in whole pence, so that the parts always sum exactly to the amount.
 */
#ifndef TOTALPLACE_APPORTION_H
#define TOTALPLACE_APPORTION_H

#include <stddef.h>
#include <stdint.h>

/* Bounds of one split. Keeping the total weight at or below 10^9 keeps every intermediate product
 * below 10^18, so the split is exact for any int64 amount. */
#define APPORTION_MAX_PARTS        4096u
#define APPORTION_MAX_WEIGHT_TOTAL UINT64_C (1000000000)

/* Splits amount into n parts, parts[i] proportional to weights[i], by the largest-remainder rule:
 * each part first gets the whole pence of its exact share (rounded towards zero), then the pence
 * left over go one each to the parts with the largest fractional remainders; equal remainders go
 * to the lower index first. A negative amount is split as its magnitude and every part negated,
 * so a credit splits exactly like the payment it reverses. The parts sum exactly to amount.
 *
 * n must be 1..APPORTION_MAX_PARTS, each weight at least 1 and their sum at most
 * APPORTION_MAX_WEIGHT_TOTAL. Returns 0 with parts filled, or -1 with err filled (bad arguments,
 * out of memory) and parts unspecified. */
int apportion_pence (int64_t amount, const uint32_t *weights, size_t n, int64_t *parts, char *err,
                     size_t err_len);

#endif
