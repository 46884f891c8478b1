/* test_store_groups: what store_apply's fast path must keep exact. Records are visited in key
 * order and totals written late, so: copies of one key within a group keep their arrival order,
 * an overflow that only the stored total reveals sends the group to exact mode (arrival order,
 * the right record rejected), and month-first cells still answer every neighbourhood exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "test_support.h"

typedef struct {
    char *dir;
    store_t *store;
    uint64_t next_seq;
} fixture_t;

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = test_tmpdir ("test_store_groups");
    f->store = test_store_new (f->dir, NULL);
    f->next_seq = 1;
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    store_destroy (&f->store);
    test_rmtree (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

/* Applies batches[0..count) (each owning its records) as ONE group and frees them. */
static void
apply_group (fixture_t *f, Totalplace__Batch **batches, size_t count, store_result_t **results)
{
    for (size_t b = 0; b < count; b++)
        memset (results[b], 0, batches[b]->n_records * sizeof *results[b]);
    char err[STORE_ERR_LEN];
    int rc = store_apply (f->store, batches, count, results, NULL, err, sizeof err);
    if (rc)
        fail_msg ("store_apply: %s", err);
    for (size_t b = 0; b < count; b++)
        test_batch_free (&batches[b]);
}

static Totalplace__SpendingRecord *
rec (const char *record_id, uint32_t revision, const char *neighbourhood, const char *period,
     int64_t amount)
{
    return test_record ("GB-LAE-BNS", record_id, revision, neighbourhood, "Adult Social Care",
                        period, amount, true);
}

typedef struct {
    char keys[64][32];
    store_amount_t amounts[64];
    size_t count;
} rows_t;

static int
collect_row (void *arg, const char *key, store_amount_t amount)
{
    rows_t *rows = arg;
    assert_true (rows->count < 64);
    snprintf (rows->keys[rows->count], sizeof rows->keys[0], "%s", key);
    rows->amounts[rows->count++] = amount;
    return 0;
}

static int
totals (fixture_t *f, const char *neighbourhood, store_breakdown_t by, const store_filter_t *filter,
        rows_t *rows)
{
    memset (rows, 0, sizeof *rows);
    char err[STORE_ERR_LEN];
    return store_totals (f->store, neighbourhood, by, filter, collect_row, rows, err, sizeof err);
}

static store_amount_t
total_of (fixture_t *f, const char *neighbourhood)
{
    rows_t rows;
    assert_int_equal (totals (f, neighbourhood, STORE_BY_NONE, NULL, &rows), 0);
    assert_int_equal (rows.count, 1);
    return rows.amounts[0];
}

static void
test_copies_of_a_key_keep_arrival_order (void **state)
{
    fixture_t *f = *state;
    /* Key order (A < K < Z) differs from arrival order; K arrives as 2, 1, 2 in one batch and
     * Z as 1 then 2 across two batches of the same group. */
    Totalplace__Batch *batches[2] = {test_batch_new ("agent", 1), test_batch_new ("agent", 2)};
    test_batch_add (batches[0], rec ("Z", 1, "E01000001", "2013-05", 100));
    test_batch_add (batches[0], rec ("K", 2, "E01000001", "2013-05", 200));
    test_batch_add (batches[0], rec ("K", 1, "E01000001", "2013-05", 999));
    test_batch_add (batches[0], rec ("A", 1, "E01000002", "2013-06", 50));
    test_batch_add (batches[0], rec ("K", 2, "E01000001", "2013-05", 200));
    test_batch_add (batches[1], rec ("Z", 2, "E01000002", "2013-05", 300));
    store_result_t first[5], second[1], *results[2] = {first, second};
    apply_group (f, batches, 2, results);
    assert_int_equal (first[0].outcome, STORE_ACCEPTED);
    assert_int_equal (first[1].outcome, STORE_ACCEPTED);
    assert_int_equal (first[2].outcome, STORE_STALE);
    assert_int_equal (first[3].outcome, STORE_ACCEPTED);
    assert_int_equal (first[4].outcome, STORE_DUPLICATE);
    assert_int_equal (second[0].outcome, STORE_SUPERSEDED);
    /* Z moved from E01000001 to E01000002: its first contribution left again. */
    assert_int_equal (total_of (f, "E01000001").amount_pence, 200);
    assert_int_equal (total_of (f, "E01000001").records, 1);
    assert_int_equal (total_of (f, "E01000002").amount_pence, 350);
    assert_int_equal (total_of (f, "E01000002").records, 2);
}

static void
test_overflow_seen_only_with_the_stored_total (void **state)
{
    fixture_t *f = *state;
    /* Fill one cell up to (fit - 1) maximal amounts: INT64_MAX / 10^15 = 9223 fit. */
    const size_t fit = (size_t)(INT64_MAX / WIRE_MAX_ABS_AMOUNT_PENCE);
    Totalplace__Batch *fill = test_batch_new ("agent", 1);
    for (size_t i = 0; i + 1 < fit; i++) {
        char id[32];
        snprintf (id, sizeof id, "BIG%05zu", i);
        test_batch_add (fill, rec (id, 1, "E01000001", "2013-05", WIRE_MAX_ABS_AMOUNT_PENCE));
    }
    store_result_t *fill_results = calloc (fit, sizeof *fill_results);
    apply_group (f, &fill, 1, &fill_results);
    for (size_t i = 0; i + 1 < fit; i++)
        assert_int_equal (fill_results[i].outcome, STORE_ACCEPTED);
    free (fill_results);

    /* Then, in arrival order: one more fits, the next would overflow, a credit fits again. The
     * group's own sums never overflow, and visited in key order (A2, M3, Z1) its running total
     * never passes the limit either: only the stored total shows the overflow, and only arrival
     * order says which record to refuse. */
    Totalplace__Batch *batch = test_batch_new ("agent", 2);
    test_batch_add (batch, rec ("Z1", 1, "E01000001", "2013-05", WIRE_MAX_ABS_AMOUNT_PENCE));
    test_batch_add (batch, rec ("A2", 1, "E01000001", "2013-05", WIRE_MAX_ABS_AMOUNT_PENCE));
    test_batch_add (batch, rec ("M3", 1, "E01000001", "2013-05", -WIRE_MAX_ABS_AMOUNT_PENCE));
    store_result_t results[3], *results_p = results;
    apply_group (f, &batch, 1, &results_p);
    assert_int_equal (results[0].outcome, STORE_ACCEPTED);
    assert_int_equal (results[1].outcome, STORE_REJECTED);
    assert_non_null (strstr (results[1].reason, "overflow"));
    assert_int_equal (results[2].outcome, STORE_ACCEPTED);
    store_amount_t total = total_of (f, "E01000001");
    assert_int_equal (total.amount_pence, (int64_t)(fit - 1) * WIRE_MAX_ABS_AMOUNT_PENCE);
    assert_int_equal (total.records, (int64_t)fit + 1);
    Totalplace__SpendingRecord *stored = NULL;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_get_record (f->store, "GB-LAE-BNS", "A2", &stored, err, sizeof err),
                      STORE_ERR_NOTFOUND);
    store_counters_t counters;
    assert_int_equal (store_counters (f->store, &counters, err, sizeof err), 0);
    assert_int_equal (counters.accepted, fit + 1);
    assert_int_equal (counters.rejected, 1);
}

static void
test_neighbourhood_totals_across_months (void **state)
{
    fixture_t *f = *state;
    /* Codes that are prefixes of one another, months over three fiscal years and a year end, in
     * two groups; each neighbourhood's answers must add up exactly what was sent for it. */
    const char *codes[] = {"E01", "E010", "E0100", "E01000001"};
    const char *months[] = {"2012-12", "2013-01", "2013-03", "2013-04", "2014-04", "2014-05"};
    int64_t expected[4][6] = {{0}};
    int serial = 0;
    for (int group = 0; group < 2; group++) {
        Totalplace__Batch *batch = test_batch_new ("agent", (uint64_t)group + 1);
        for (size_t c = 0; c < 4; c++)
            for (size_t m = 0; m < 6; m++) {
                if ((c + m + (size_t)group) % 3 == 0)
                    continue; /* leave some months of some neighbourhoods empty */
                char id[32];
                snprintf (id, sizeof id, "R%04d", serial++);
                int64_t amount = (int64_t)(c + 1) * 1000 + (int64_t)m * 10 + group;
                test_batch_add (batch, rec (id, 1, codes[c], months[m], amount));
                expected[c][m] += amount;
            }
        store_result_t results[64], *results_p = results;
        apply_group (f, &batch, 1, &results_p);
    }
    for (size_t c = 0; c < 4; c++) {
        rows_t rows;
        assert_int_equal (totals (f, codes[c], STORE_BY_MONTH, NULL, &rows), 0);
        size_t row = 0;
        int64_t sum = 0, fiscal_2013 = 0;
        for (size_t m = 0; m < 6; m++) {
            sum += expected[c][m];
            if (strcmp (months[m], "2013-04") >= 0 && strcmp (months[m], "2014-03") <= 0)
                fiscal_2013 += expected[c][m];
            if (expected[c][m] == 0)
                continue;
            assert_true (row < rows.count);
            assert_string_equal (rows.keys[row], months[m]);
            assert_int_equal (rows.amounts[row].amount_pence, expected[c][m]);
            row++;
        }
        assert_int_equal (rows.count, row);
        assert_int_equal (total_of (f, codes[c]).amount_pence, sum);
        store_filter_t filter = {.fiscal_year = "2013-14", .poolable = -1};
        assert_int_equal (totals (f, codes[c], STORE_BY_NONE, &filter, &rows), 0);
        assert_int_equal (rows.amounts[0].amount_pence, fiscal_2013);
        filter = (store_filter_t){.month = "2014-05", .poolable = -1};
        assert_int_equal (totals (f, codes[c], STORE_BY_NONE, &filter, &rows), 0);
        assert_int_equal (rows.amounts[0].amount_pence, expected[c][5]);
    }
    /* All neighbourhoods by neighbourhood: the four codes and nothing else. */
    rows_t rows;
    assert_int_equal (totals (f, NULL, STORE_BY_NEIGHBOURHOOD, NULL, &rows), 0);
    assert_int_equal (rows.count, 4);
    for (size_t c = 0; c < 4; c++)
        assert_string_equal (rows.keys[c], codes[c]);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_copies_of_a_key_keep_arrival_order, setup, teardown),
        cmocka_unit_test_setup_teardown (test_overflow_seen_only_with_the_stored_total, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_neighbourhood_totals_across_months, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
