/* fuzz_convert: any text as an amount and as a date. Nothing may crash; an accepted amount must be
 * within the wire limit and an accepted date must be a valid period. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "period.h"
#include "spend_date.h"
#include "wire.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text[size] = '\0';
    char err[256];
    int64_t pence;
    if (money_parse_pence (text, &pence, err, sizeof err) == 0
        && (pence > WIRE_MAX_ABS_AMOUNT_PENCE || pence < -WIRE_MAX_ABS_AMOUNT_PENCE)) {
        fprintf (stderr, "fuzz_convert: accepted %lld pence beyond the limit\n", (long long) pence);
        abort ();
    }
    char period[PERIOD_LEN];
    if (spend_date_period (text, period, err, sizeof err) == 0
        && period_parse (period, NULL, NULL) != 0) {
        fprintf (stderr, "fuzz_convert: accepted a date as invalid period \"%s\"\n", period);
        abort ();
    }
    free (text);
    return 0;
}
