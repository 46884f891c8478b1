/* test_store: every dedup/revision semantic of store_apply, totals, breakdowns, growth, reopen. */
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
    f->dir = test_tmpdir ("test_store");
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

/* Applies the given records as one batch and returns each one's outcome in outcomes. */
static void
apply_records (fixture_t *f, Totalplace__SpendingRecord **records, size_t count,
               store_result_t *results)
{
    Totalplace__Batch *batch = test_batch_new ("agent-test", f->next_seq++);
    for (size_t i = 0; i < count; i++)
        test_batch_add (batch, records[i]);
    memset (results, 0, count * sizeof *results);
    char err[STORE_ERR_LEN];
    int rc = store_apply (f->store, &batch, 1, &results, NULL, err, sizeof err);
    if (rc)
        fail_msg ("store_apply: %s", err);
    test_batch_free (&batch);
}

static store_outcome_t
apply_one (fixture_t *f, Totalplace__SpendingRecord *record, char *reason, size_t reason_len)
{
    store_result_t result;
    apply_records (f, &record, 1, &result);
    if (reason)
        snprintf (reason, reason_len, "%s", result.reason);
    return result.outcome;
}

typedef struct {
    char keys[32][64];
    store_amount_t amounts[32];
    size_t count;
} rows_t;

static int
collect_row (void *arg, const char *key, store_amount_t amount)
{
    rows_t *rows = arg;
    assert_true (rows->count < 32);
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
    int rc = totals (f, neighbourhood, STORE_BY_NONE, NULL, &rows);
    if (rc == STORE_ERR_NOTFOUND)
        return (store_amount_t){0, 0};
    assert_int_equal (rc, 0);
    assert_int_equal (rows.count, 1);
    return rows.amounts[0];
}

static Totalplace__SpendingRecord *
rec (const char *record_id, uint32_t revision, const char *neighbourhood, int64_t amount)
{
    return test_record ("GB-LAE-BNS", record_id, revision, neighbourhood, "Adult Social Care",
                        "2013-05", amount, true);
}

static void
test_new_record_is_accepted_and_counted (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 123456), NULL, 0), STORE_ACCEPTED);
    store_amount_t total = total_of (f, "E01000001");
    assert_int_equal (total.amount_pence, 123456);
    assert_int_equal (total.records, 1);
}

static void
test_duplicate_is_ignored (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 500), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 500), NULL, 0), STORE_DUPLICATE);
    store_amount_t total = total_of (f, "E01000001");
    assert_int_equal (total.amount_pence, 500);
    assert_int_equal (total.records, 1);
}

static void
test_higher_revision_supersedes_across_neighbourhoods (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 500), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T2", 1, "E01000001", 100), NULL, 0), STORE_ACCEPTED);
    /* The correction moves T1 to another neighbourhood with another amount. */
    assert_int_equal (apply_one (f, rec ("T1", 2, "E01000002", 700), NULL, 0), STORE_SUPERSEDED);
    assert_int_equal (total_of (f, "E01000001").amount_pence, 100);
    assert_int_equal (total_of (f, "E01000001").records, 1);
    assert_int_equal (total_of (f, "E01000002").amount_pence, 700);
    Totalplace__SpendingRecord *stored = NULL;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_get_record (f->store, "GB-LAE-BNS", "T1", &stored, err, sizeof err), 0);
    assert_int_equal (stored->revision, 2);
    assert_string_equal (stored->neighbourhood, "E01000002");
    test_record_free (&stored);
}

static void
test_lower_revision_is_stale (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("T1", 3, "E01000001", 300), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T1", 2, "E01000001", 999), NULL, 0), STORE_STALE);
    assert_int_equal (total_of (f, "E01000001").amount_pence, 300);
}

static void
test_same_revision_other_content_is_a_conflict (void **state)
{
    fixture_t *f = *state;
    char reason[WIRE_REASON_LEN];
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 300), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 301), reason, sizeof reason),
                      STORE_REJECTED);
    assert_string_equal (reason, "conflict: amount stored 3.00, sent 3.01; correction? raise "
                                 "revision; ids repeated on lines? input/repeated_ids = lines");
    assert_int_equal (total_of (f, "E01000001").amount_pence, 300);
}

static bool
ends_with (const char *text, const char *end)
{
    size_t len = strlen (text), end_len = strlen (end);
    return len >= end_len && strcmp (text + len - end_len, end) == 0;
}

/* The conflict names the first field that differs with both values, quoted and cut so that the
 * whole reason fits WIRE_REASON_LEN, whatever the fields hold. */
static void
test_conflict_reason_names_the_field_and_fits (void **state)
{
    fixture_t *f = *state;
    char reason[WIRE_REASON_LEN];
    Totalplace__SpendingRecord *first = rec ("T2", 1, "E01000001", 300);
    Totalplace__SpendingRecord *other = test_record_copy (first);
    free (other->supplier);
    other->supplier = strdup ("Acme \"Care\" Ltd");
    assert_int_equal (apply_one (f, first, NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, other, reason, sizeof reason), STORE_REJECTED);
    assert_non_null (strstr (reason, "conflict: supplier stored \""));
    /* Quotes inside a value are escaped, so the reason reads one way only. */
    assert_non_null (strstr (reason, ", sent \"Acme \\\"Care\\\" Ltd\";"));

    /* The longest: a neighbourhood (the longest field name) of 32 bytes each side. */
    const char *long_a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
               *long_b = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012346";
    assert_int_equal (apply_one (f, rec ("T3", 1, long_a, 1), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T3", 1, long_b, 1), reason, sizeof reason),
                      STORE_REJECTED);
    assert_true (ends_with (reason, "input/repeated_ids = lines")); /* not cut by snprintf */
    /* They differ only in their last byte: the quotes show it. */
    assert_non_null (strstr (reason, "conflict: neighbourhood stored \"...WXYZ012345\", sent "
                                     "\"...WXYZ012346\";"));
    assert_non_null (strstr (reason, "; correction? raise revision; ids repeated on lines? "
                                     "input/repeated_ids = lines"));
    /* Descriptions of 1,024 bytes: the quotes are cut, the advice stays whole. */
    Totalplace__SpendingRecord *described = rec ("T4", 1, "E01000002", 5);
    Totalplace__SpendingRecord *redescribed = test_record_copy (described);
    free (described->description);
    free (redescribed->description);
    described->description = malloc (WIRE_MAX_DESCRIPTION + 1);
    redescribed->description = malloc (WIRE_MAX_DESCRIPTION + 1);
    memset (described->description, 'x', WIRE_MAX_DESCRIPTION);
    memset (redescribed->description, 'y', WIRE_MAX_DESCRIPTION);
    described->description[WIRE_MAX_DESCRIPTION] = redescribed->description[WIRE_MAX_DESCRIPTION] =
        0;
    assert_int_equal (apply_one (f, described, NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, redescribed, reason, sizeof reason), STORE_REJECTED);
    assert_true (ends_with (reason, "input/repeated_ids = lines"));
    assert_non_null (strstr (reason, "conflict: description stored \"xxxxxxxxxx"));
    assert_non_null (strstr (reason, "input/repeated_ids = lines"));
    /* Withdrawn and poolable are yes or no. */
    Totalplace__SpendingRecord *pooled = rec ("T5", 1, "E01000002", 5);
    Totalplace__SpendingRecord *unpooled = test_record_copy (pooled);
    unpooled->poolable = false;
    assert_int_equal (apply_one (f, pooled, NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, unpooled, reason, sizeof reason), STORE_REJECTED);
    assert_non_null (strstr (reason, "conflict: poolable stored yes, sent no;"));
}

static void
test_withdrawal_removes_from_totals (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 300), NULL, 0), STORE_ACCEPTED);
    Totalplace__SpendingRecord *withdrawal = rec ("T1", 2, "E01000001", 300);
    withdrawal->withdrawn = true;
    assert_int_equal (apply_one (f, withdrawal, NULL, 0), STORE_SUPERSEDED);
    rows_t rows;
    /* The neighbourhood had nothing else, so it is gone. */
    assert_int_equal (totals (f, "E01000001", STORE_BY_NONE, NULL, &rows), STORE_ERR_NOTFOUND);
    /* A late copy of the original is stale and must not bring it back. */
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 300), NULL, 0), STORE_STALE);
    assert_int_equal (totals (f, "E01000001", STORE_BY_NONE, NULL, &rows), STORE_ERR_NOTFOUND);
    /* Re-instating with a higher revision counts it again. */
    assert_int_equal (apply_one (f, rec ("T1", 3, "E01000001", 250), NULL, 0), STORE_SUPERSEDED);
    assert_int_equal (total_of (f, "E01000001").amount_pence, 250);
}

static void
test_withdrawal_of_unknown_key_is_kept_as_tombstone (void **state)
{
    fixture_t *f = *state;
    Totalplace__SpendingRecord *withdrawal = rec ("T9", 2, "E01000001", 300);
    withdrawal->withdrawn = true;
    assert_int_equal (apply_one (f, withdrawal, NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T9", 1, "E01000001", 300), NULL, 0), STORE_STALE);
    assert_int_equal (total_of (f, "E01000001").records, 0);
}

static void
test_negative_amounts_are_credits (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("T1", 1, "E01000001", 10000), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("T2", 1, "E01000001", -12000), NULL, 0), STORE_ACCEPTED);
    store_amount_t total = total_of (f, "E01000001");
    assert_int_equal (total.amount_pence, -2000);
    assert_int_equal (total.records, 2);
    /* A pair that cancels to zero still holds two records. */
    assert_int_equal (apply_one (f, rec ("T3", 1, "E01000001", 2000), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (total_of (f, "E01000001").amount_pence, 0);
    assert_int_equal (total_of (f, "E01000001").records, 3);
}

static void
test_overflow_is_rejected_without_changing_totals (void **state)
{
    fixture_t *f = *state;
    /* INT64_MAX / 10^15 = 9223: that many maximal records fit, one more would overflow. */
    const size_t fit = (size_t)(INT64_MAX / WIRE_MAX_ABS_AMOUNT_PENCE);
    Totalplace__SpendingRecord **records = calloc (fit + 1, sizeof *records);
    store_result_t *results = calloc (fit + 1, sizeof *results);
    for (size_t i = 0; i <= fit; i++) {
        char id[32];
        snprintf (id, sizeof id, "BIG%zu", i);
        records[i] = rec (id, 1, "E01000001", WIRE_MAX_ABS_AMOUNT_PENCE);
    }
    apply_records (f, records, fit + 1, results);
    for (size_t i = 0; i < fit; i++)
        assert_int_equal (results[i].outcome, STORE_ACCEPTED);
    assert_int_equal (results[fit].outcome, STORE_REJECTED);
    assert_non_null (strstr (results[fit].reason, "overflow"));
    store_amount_t total = total_of (f, "E01000001");
    assert_int_equal (total.amount_pence, (int64_t)fit * WIRE_MAX_ABS_AMOUNT_PENCE);
    assert_int_equal (total.records, (int64_t)fit);
    /* The rejected record was not stored: its key is still free. */
    Totalplace__SpendingRecord *stored = NULL;
    char err[STORE_ERR_LEN], id[32];
    snprintf (id, sizeof id, "BIG%zu", fit);
    assert_int_equal (store_get_record (f->store, "GB-LAE-BNS", id, &stored, err, sizeof err),
                      STORE_ERR_NOTFOUND);
    free (records);
    free (results);
}

static void
test_bad_fields_are_rejected_with_reasons (void **state)
{
    fixture_t *f = *state;
    Totalplace__SpendingRecord *records[6];
    records[0] = rec ("GOOD1", 1, "E01000001", 100);
    records[1] = rec ("BAD1", 1, "E01 000001", 100); /* space in the code */
    records[2] = rec ("BAD2", 0, "E01000001", 100);  /* revision 0 */
    records[3] = rec ("BAD3", 1, "E01000001", 100);
    free (records[3]->period);
    records[3]->period = strdup ("2013-13");
    records[4] = rec ("BAD4", 1, "E01000001", WIRE_MAX_ABS_AMOUNT_PENCE + 1);
    records[5] = rec ("GOOD2", 1, "E01000001", 50);
    store_result_t results[6];
    apply_records (f, records, 6, results);
    assert_int_equal (results[0].outcome, STORE_ACCEPTED);
    assert_int_equal (results[5].outcome, STORE_ACCEPTED);
    const char *expected_field[] = {NULL, "neighbourhood", "revision", "period", "amount_pence"};
    for (size_t i = 1; i <= 4; i++) {
        assert_int_equal (results[i].outcome, STORE_REJECTED);
        assert_non_null (strstr (results[i].reason, expected_field[i]));
    }
    assert_int_equal (total_of (f, "E01000001").amount_pence, 150);
    store_counters_t counters;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_counters (f->store, &counters, err, sizeof err), 0);
    assert_int_equal (counters.accepted, 2);
    assert_int_equal (counters.rejected, 4);
    assert_int_equal (counters.records_stored, 2);
}

static void
test_upstream_rejections_are_left_alone (void **state)
{
    fixture_t *f = *state;
    Totalplace__Batch *batch = test_batch_new ("agent-test", 1);
    test_batch_add (batch, rec ("T1", 1, "E01000001", 100));
    test_batch_add (batch, rec ("T2", 1, "E01000001", 200));
    store_result_t results[2] = {{STORE_PENDING, ""}, {STORE_REJECTED, "not authorised"}};
    store_result_t *result_rows = results;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_apply (f->store, &batch, 1, &result_rows, NULL, err, sizeof err), 0);
    assert_int_equal (results[0].outcome, STORE_ACCEPTED);
    assert_int_equal (results[1].outcome, STORE_REJECTED);
    assert_string_equal (results[1].reason, "not authorised");
    assert_int_equal (total_of (f, "E01000001").amount_pence, 100);
    test_batch_free (&batch);
}

static void
test_fiscal_year_boundary (void **state)
{
    fixture_t *f = *state;
    const char *periods[] = {"2014-03", "2014-04", "2013-04", "2015-03"};
    for (size_t i = 0; i < 4; i++) {
        char id[16];
        snprintf (id, sizeof id, "FY%zu", i);
        Totalplace__SpendingRecord *r = rec (id, 1, "E01000001", (int64_t)(i + 1) * 100);
        free (r->period);
        r->period = strdup (periods[i]);
        assert_int_equal (apply_one (f, r, NULL, 0), STORE_ACCEPTED);
    }
    rows_t rows;
    assert_int_equal (totals (f, "E01000001", STORE_BY_FISCAL_YEAR, NULL, &rows), 0);
    assert_int_equal (rows.count, 2);
    /* March 2014 and April 2013 are 2013-14; April 2014 and March 2015 are 2014-15. */
    assert_string_equal (rows.keys[0], "2013-14");
    assert_int_equal (rows.amounts[0].amount_pence, 100 + 300);
    assert_string_equal (rows.keys[1], "2014-15");
    assert_int_equal (rows.amounts[1].amount_pence, 200 + 400);
    store_filter_t filter = {.fiscal_year = "2014-15", .poolable = -1};
    assert_int_equal (totals (f, "E01000001", STORE_BY_MONTH, &filter, &rows), 0);
    assert_int_equal (rows.count, 2);
    assert_string_equal (rows.keys[0], "2014-04");
    assert_string_equal (rows.keys[1], "2015-03");
}

static void
test_breakdowns_and_filters (void **state)
{
    fixture_t *f = *state;
    struct {
        const char *body, *id, *service, *period;
        int64_t amount;
        bool poolable;
    } input[] = {
        {"GB-LAE-BNS", "C1", "Adult Social Care", "2013-05", 1000, true},
        {"GB-LAE-BNS", "C2", "Housing", "2013-06", 2000, false},
        {"GB-NHS-RFF", "N1", "Community Health", "2013-05", 4000, true},
        {"GB-PF-SYP", "P1", "Policing", "2013-07", 8000, false},
        {"GB-PF-SYP", "P2", "Policing", "2013-07", -500, false},
    };
    for (size_t i = 0; i < sizeof input / sizeof input[0]; i++)
        assert_int_equal (
            apply_one (f,
                       test_record (input[i].body, input[i].id, 1, "E01000009", input[i].service,
                                    input[i].period, input[i].amount, input[i].poolable),
                       NULL, 0),
            STORE_ACCEPTED);
    rows_t rows;
    assert_int_equal (totals (f, "E01000009", STORE_BY_BODY, NULL, &rows), 0);
    assert_int_equal (rows.count, 3);
    assert_string_equal (rows.keys[0], "GB-LAE-BNS");
    assert_int_equal (rows.amounts[0].amount_pence, 3000);
    assert_int_equal (rows.amounts[0].records, 2);
    assert_string_equal (rows.keys[2], "GB-PF-SYP");
    assert_int_equal (rows.amounts[2].amount_pence, 7500);
    assert_int_equal (rows.amounts[2].records, 2);

    assert_int_equal (totals (f, "E01000009", STORE_BY_POOLABLE, NULL, &rows), 0);
    assert_int_equal (rows.count, 2);
    assert_string_equal (rows.keys[0], "no");
    assert_int_equal (rows.amounts[0].amount_pence, 9500);
    assert_string_equal (rows.keys[1], "yes");
    assert_int_equal (rows.amounts[1].amount_pence, 5000);

    store_filter_t filter = {.body_id = "GB-LAE-BNS", .poolable = -1};
    assert_int_equal (totals (f, "E01000009", STORE_BY_SERVICE, &filter, &rows), 0);
    assert_int_equal (rows.count, 2);
    assert_string_equal (rows.keys[0], "Adult Social Care");
    assert_string_equal (rows.keys[1], "Housing");

    filter = (store_filter_t){.month = "2013-05", .poolable = 1};
    assert_int_equal (totals (f, "E01000009", STORE_BY_NONE, &filter, &rows), 0);
    assert_int_equal (rows.amounts[0].amount_pence, 5000);
    assert_int_equal (rows.amounts[0].records, 2);

    /* A filter nothing matches gives a zero total, not an error. */
    filter = (store_filter_t){.service = "Fire", .poolable = -1};
    assert_int_equal (totals (f, "E01000009", STORE_BY_NONE, &filter, &rows), 0);
    assert_int_equal (rows.count, 1);
    assert_int_equal (rows.amounts[0].amount_pence, 0);
    assert_int_equal (rows.amounts[0].records, 0);

    assert_int_equal (totals (f, "E09999999", STORE_BY_NONE, NULL, &rows), STORE_ERR_NOTFOUND);
}

/* Rows of several keys, joined with '|' for comparison. */
static int
collect_keys (void *arg, const char *const *keys, store_amount_t amount)
{
    rows_t *rows = arg;
    assert_true (rows->count < 32);
    size_t n = rows->count++;
    rows->keys[n][0] = '\0';
    for (size_t k = 0; k < (size_t)rows->amounts[31].records; k++) /* key count kept in slot 31 */
        snprintf (rows->keys[n] + strlen (rows->keys[n]),
                  sizeof rows->keys[0] - strlen (rows->keys[n]), "%s%s", k ? "|" : "", keys[k]);
    rows->amounts[n] = amount;
    return 0;
}

static int
ask (fixture_t *f, const store_question_t *question, rows_t *rows)
{
    memset (rows, 0, sizeof *rows);
    rows->amounts[31].records = (int64_t)question->by_count;
    char err[STORE_ERR_LEN];
    int rc = store_totals_of (f->store, question, collect_keys, rows, err, sizeof err);
    if (rc && rc != STORE_ERR_NOTFOUND)
        print_message ("store_totals_of: %s\n", err);
    return rc;
}

static void
test_several_breakdowns_and_places (void **state)
{
    fixture_t *f = *state;
    struct {
        const char *body, *id, *neighbourhood, *period;
        int64_t amount;
        bool poolable;
    } input[] = {
        {"GB-LAE-BNS", "C1", "E01000001", "2013-05", 1000, true},
        {"GB-LAE-BNS", "C2", "E01000002", "2013-06", 2001, false},
        {"GB-NHS-RFF", "N1", "E01000002", "2013-05", 4000, true},
        {"GB-PF-SYP", "P1", "E01000003", "2013-07", 8000, false},
        {"GB-PF-SYP", "P2", "E01000001", "2014-07", -500, false},
    };
    for (size_t i = 0; i < sizeof input / sizeof input[0]; i++)
        assert_int_equal (
            apply_one (f,
                       test_record (input[i].body, input[i].id, 1, input[i].neighbourhood,
                                    "Services", input[i].period, input[i].amount,
                                    input[i].poolable),
                       NULL, 0),
            STORE_ACCEPTED);
    /* Two neighbourhoods whose totals fit int64 but whose sum (a place of both) does not: 4,612
     * records of the largest amount a record may hold in each. */
    const int64_t per_record = WIRE_MAX_ABS_AMOUNT_PENCE, count = INT64_MAX / per_record / 2 + 1;
    const char *big_codes[] = {"E01000004", "E01000005"};
    for (size_t n = 0; n < 2; n++) {
        Totalplace__SpendingRecord **big = calloc ((size_t)count, sizeof *big);
        store_result_t *results = calloc ((size_t)count, sizeof *results);
        for (int64_t i = 0; i < count; i++) {
            char id[32];
            snprintf (id, sizeof id, "B%zu-%lld", n, (long long)i);
            big[i] = test_record ("GB-BIG", id, 1, big_codes[n], "Services", "2013-05", per_record,
                                  false);
        }
        apply_records (f, big, (size_t)count, results);
        for (int64_t i = 0; i < count; i++)
            assert_int_equal (results[i].outcome, STORE_ACCEPTED);
        free (big);
        free (results);
    }
    rows_t rows;
    /* neighbourhood x body over the three small neighbourhoods, in key order. */
    const char *small[] = {"E01000001", "E01000002", "E01000003"};
    store_question_t q = {.neighbourhoods = small,
                          .neighbourhood_count = 3,
                          .by = {STORE_BY_NEIGHBOURHOOD, STORE_BY_BODY},
                          .by_count = 2};
    assert_int_equal (ask (f, &q, &rows), 0);
    assert_int_equal (rows.count, 5);
    assert_string_equal (rows.keys[0], "E01000001|GB-LAE-BNS");
    assert_int_equal (rows.amounts[0].amount_pence, 1000);
    assert_string_equal (rows.keys[1], "E01000001|GB-PF-SYP");
    assert_int_equal (rows.amounts[1].amount_pence, -500);
    assert_string_equal (rows.keys[2], "E01000002|GB-LAE-BNS");
    assert_string_equal (rows.keys[3], "E01000002|GB-NHS-RFF");
    assert_string_equal (rows.keys[4], "E01000003|GB-PF-SYP");

    /* A place: the sum of its members equals the members' own totals added up, to the penny; a
     * member with no records adds nothing and a member given twice counts once. */
    const char *place[] = {"E01000002", "E01000001", "E09999999", "E01000001"};
    q = (store_question_t){.neighbourhoods = place, .neighbourhood_count = 4};
    assert_int_equal (ask (f, &q, &rows), 0);
    assert_int_equal (rows.count, 1);
    store_amount_t one = total_of (f, "E01000001"), two = total_of (f, "E01000002");
    assert_int_equal (rows.amounts[0].amount_pence, one.amount_pence + two.amount_pence);
    assert_int_equal (rows.amounts[0].amount_pence, 1000 + 2001 + 4000 - 500);
    assert_int_equal (rows.amounts[0].records, one.records + two.records);

    /* Three breakdowns with a filter over the place. */
    store_filter_t filter = {.fiscal_year = "2013-14", .poolable = -1};
    q = (store_question_t){.neighbourhoods = place,
                           .neighbourhood_count = 4,
                           .by = {STORE_BY_POOLABLE, STORE_BY_MONTH, STORE_BY_BODY},
                           .by_count = 3,
                           .filter = &filter};
    assert_int_equal (ask (f, &q, &rows), 0);
    assert_int_equal (rows.count, 3);
    assert_string_equal (rows.keys[0], "no|2013-06|GB-LAE-BNS");
    assert_int_equal (rows.amounts[0].amount_pence, 2001);
    assert_string_equal (rows.keys[1], "yes|2013-05|GB-LAE-BNS");
    assert_string_equal (rows.keys[2], "yes|2013-05|GB-NHS-RFF");

    /* A place of members with no records: a zero total, not an error. */
    const char *empty[] = {"E09999998"};
    q = (store_question_t){.neighbourhoods = empty, .neighbourhood_count = 1};
    assert_int_equal (ask (f, &q, &rows), 0);
    assert_int_equal (rows.count, 1);
    assert_int_equal (rows.amounts[0].amount_pence, 0);
    q.strict = true; /* as one neighbourhood asked by its code */
    assert_int_equal (ask (f, &q, &rows), STORE_ERR_NOTFOUND);

    /* An overflow of the place's sum is an error, never a wrong total. */
    const char *big[] = {"E01000004", "E01000005"};
    q = (store_question_t){.neighbourhoods = big, .neighbourhood_count = 2};
    assert_int_equal (ask (f, &q, &rows), STORE_ERR);

    /* Misuse: a breakdown of none, too many breakdowns. */
    q = (store_question_t){.by = {STORE_BY_NONE}, .by_count = 1};
    assert_int_equal (ask (f, &q, &rows), STORE_ERR);
    q = (store_question_t){.by_count = STORE_MAX_BREAKDOWNS + 1};
    assert_int_equal (ask (f, &q, &rows), STORE_ERR);
}

/* Found by fuzz_batch: ranking an empty store passed NULL to qsort (UBSan). */
static void
test_empty_store_has_no_neighbourhoods (void **state)
{
    fixture_t *f = *state;
    rows_t rows = {0};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_neighbourhoods (f->store, collect_row, &rows, err, sizeof err), 0);
    assert_int_equal (rows.count, 0);
    assert_int_equal (totals (f, NULL, STORE_BY_NONE, NULL, &rows), 0);
    assert_int_equal (rows.count, 1);
    assert_int_equal (rows.amounts[0].records, 0);
}

static void
test_neighbourhoods_are_ranked (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (apply_one (f, rec ("A", 1, "E01000003", 300), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("B", 1, "E01000001", 900), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("C", 1, "E01000002", 300), NULL, 0), STORE_ACCEPTED);
    assert_int_equal (apply_one (f, rec ("D", 1, "E01000004", -50), NULL, 0), STORE_ACCEPTED);
    rows_t rows = {0};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_neighbourhoods (f->store, collect_row, &rows, err, sizeof err), 0);
    assert_int_equal (rows.count, 4);
    assert_string_equal (rows.keys[0], "E01000001");
    assert_string_equal (rows.keys[1], "E01000002"); /* equal amounts: by code */
    assert_string_equal (rows.keys[2], "E01000003");
    assert_string_equal (rows.keys[3], "E01000004");
    assert_int_equal (rows.amounts[3].amount_pence, -50);
}

static void
test_duplicates_within_one_group (void **state)
{
    fixture_t *f = *state;
    /* Two batches in one transaction carrying the same key: the second sees the first. */
    Totalplace__Batch *batches[2] = {test_batch_new ("agent-a", 1), test_batch_new ("agent-b", 7)};
    test_batch_add (batches[0], rec ("T1", 1, "E01000001", 100));
    test_batch_add (batches[0], rec ("T1", 2, "E01000001", 150));
    test_batch_add (batches[1], rec ("T1", 1, "E01000001", 100));
    test_batch_add (batches[1], rec ("T1", 2, "E01000001", 150));
    store_result_t results_a[2] = {0}, results_b[2] = {0};
    store_result_t *results[2] = {results_a, results_b};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_apply (f->store, batches, 2, results, NULL, err, sizeof err), 0);
    assert_int_equal (results_a[0].outcome, STORE_ACCEPTED);
    assert_int_equal (results_a[1].outcome, STORE_SUPERSEDED);
    assert_int_equal (results_b[0].outcome, STORE_STALE);
    assert_int_equal (results_b[1].outcome, STORE_DUPLICATE);
    assert_int_equal (total_of (f, "E01000001").amount_pence, 150);
    assert_int_equal (total_of (f, "E01000001").records, 1);
    test_batch_free (&batches[0]);
    test_batch_free (&batches[1]);
}

typedef struct {
    char ids[4][16];
    uint64_t seqs[4], batches[4];
    size_t count;
} agents_seen_t;

static int
collect_agent (void *arg, const store_agent_t *agent)
{
    agents_seen_t *seen = arg;
    snprintf (seen->ids[seen->count], sizeof seen->ids[0], "%s", agent->agent_id);
    seen->seqs[seen->count] = agent->last_batch_seq;
    seen->batches[seen->count++] = agent->batches;
    return 0;
}

static void
test_agent_high_water_mark_and_counters (void **state)
{
    fixture_t *f = *state;
    f->next_seq = 41;
    apply_one (f, rec ("T1", 1, "E01000001", 1), NULL, 0);
    apply_one (f, rec ("T1", 1, "E01000001", 1), NULL, 0);
    apply_one (f, rec ("T1", 2, "E01000001", 2), NULL, 0);
    apply_one (f, rec ("T1", 1, "E01000001", 1), NULL, 0);
    agents_seen_t seen = {0};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_agents (f->store, collect_agent, &seen, err, sizeof err), 0);
    assert_int_equal (seen.count, 1);
    assert_string_equal (seen.ids[0], "agent-test");
    assert_int_equal (seen.seqs[0], 44);
    assert_int_equal (seen.batches[0], 4);
    store_counters_t counters;
    assert_int_equal (store_counters (f->store, &counters, err, sizeof err), 0);
    assert_int_equal (counters.batches, 4);
    assert_int_equal (counters.accepted, 1);
    assert_int_equal (counters.duplicate, 1);
    assert_int_equal (counters.superseded, 1);
    assert_int_equal (counters.stale, 1);
    assert_int_equal (counters.records_stored, 1);
    assert_true (counters.used_bytes > 0 && counters.used_bytes <= counters.map_size);
}

static void
test_reopen_keeps_everything (void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 200; i++) {
        char id[16], nbh[16];
        snprintf (id, sizeof id, "R%d", i);
        snprintf (nbh, sizeof nbh, "E0100000%d", i % 7);
        apply_one (f, rec (id, 1, nbh, i * 37 - 1000), NULL, 0);
    }
    rows_t before = {0}, after = {0};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_neighbourhoods (f->store, collect_row, &before, err, sizeof err), 0);
    store_destroy (&f->store);
    assert_null (f->store);
    store_destroy (&f->store); /* safe twice */
    store_options_t options = {.path = f->dir};
    f->store = store_new (&options, NULL, err, sizeof err);
    assert_non_null (f->store);
    assert_int_equal (store_neighbourhoods (f->store, collect_row, &after, err, sizeof err), 0);
    assert_int_equal (before.count, 7);
    assert_memory_equal (&before, &after, sizeof before);
    /* Read-only opening sees the same, and refuses to write. */
    store_options_t read_only = {.path = f->dir, .read_only = true};
    store_t *reader = store_new (&read_only, NULL, err, sizeof err);
    assert_non_null (reader);
    rows_t seen = {0};
    assert_int_equal (store_neighbourhoods (reader, collect_row, &seen, err, sizeof err), 0);
    assert_memory_equal (&before, &seen, sizeof before);
    Totalplace__Batch *batch = test_batch_new ("agent-test", 999);
    store_result_t *no_results = NULL;
    assert_int_equal (store_apply (reader, &batch, 1, &no_results, NULL, err, sizeof err),
                      STORE_ERR);
    test_batch_free (&batch);
    store_destroy (&reader);
}

static void
test_missing_store_read_only_is_an_error (void **state)
{
    (void)state;
    char err[STORE_ERR_LEN] = "";
    store_options_t options = {.path = "/nonexistent/totalplace-store", .read_only = true};
    int code = 0;
    assert_null (store_new (&options, &code, err, sizeof err));
    assert_int_equal (code, STORE_ERR_NOSTORE);
    assert_non_null (strstr (err, "/nonexistent/totalplace-store"));
}

/* Applies 3000 records as 30 batches of 100 into a store whose map starts tiny. */
static int
fill_small_store (const char *dir, size_t map_size, size_t max_map_size, int *last_rc, char *err,
                  size_t err_len, store_amount_t *total)
{
    store_options_t options = {.map_size = map_size, .max_map_size = max_map_size};
    store_t *store = test_store_new (dir, &options);
    int applied = 0;
    *last_rc = 0;
    for (int b = 0; b < 30 && *last_rc == 0; b++) {
        Totalplace__Batch *batch = test_batch_new ("agent-grow", (uint64_t)b + 1);
        for (int i = 0; i < 100; i++) {
            char id[16];
            snprintf (id, sizeof id, "G%05d", b * 100 + i);
            test_batch_add (batch, rec (id, 1, "E01000005", 1000 + i));
        }
        store_result_t results[100] = {0};
        store_result_t *rows = results;
        *last_rc = store_apply (store, &batch, 1, &rows, NULL, err, err_len);
        if (*last_rc == 0)
            applied++;
        test_batch_free (&batch);
    }
    store_amount_t sum = {0, 0};
    rows_t rows;
    memset (&rows, 0, sizeof rows);
    char read_err[STORE_ERR_LEN];
    if (store_totals (store, "E01000005", STORE_BY_NONE, NULL, collect_row, &rows, read_err,
                      sizeof read_err) == 0)
        sum = rows.amounts[0];
    *total = sum;
    store_destroy (&store);
    return applied;
}

static void
test_map_grows_when_full (void **state)
{
    fixture_t *f = *state;
    char err[STORE_ERR_LEN];
    int rc;
    store_amount_t total;
    char *dir = test_tmpdir ("test_store_grow");
    int applied = fill_small_store (dir, 64 * 1024, 64 * 1024 * 1024, &rc, err, sizeof err, &total);
    assert_int_equal (rc, 0);
    assert_int_equal (applied, 30);
    assert_int_equal (total.records, 3000);
    /* sum over b of sum over i of (1000 + i) = 30 * (100 * 1000 + 4950) */
    assert_int_equal (total.amount_pence, 30 * (100 * 1000 + 4950));
    test_rmtree (dir);
    free (dir);
    (void)f;
}

static void
test_full_map_fails_cleanly (void **state)
{
    (void)state;
    char err[STORE_ERR_LEN] = "";
    int rc;
    store_amount_t total;
    char *dir = test_tmpdir ("test_store_full");
    int applied = fill_small_store (dir, 64 * 1024, 128 * 1024, &rc, err, sizeof err, &total);
    assert_int_equal (rc, STORE_ERR_FULL);
    assert_non_null (strstr (err, "max_map_size"));
    assert_true (applied > 0 && applied < 30);
    /* Exactly the batches that were acknowledged count: nothing of the failed one. */
    assert_int_equal (total.records, applied * 100);
    assert_int_equal (total.amount_pence, applied * (100 * 1000 + 4950));
    test_rmtree (dir);
    free (dir);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_new_record_is_accepted_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown (test_duplicate_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown (test_higher_revision_supersedes_across_neighbourhoods,
                                         setup, teardown),
        cmocka_unit_test_setup_teardown (test_lower_revision_is_stale, setup, teardown),
        cmocka_unit_test_setup_teardown (test_conflict_reason_names_the_field_and_fits, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_same_revision_other_content_is_a_conflict, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_withdrawal_removes_from_totals, setup, teardown),
        cmocka_unit_test_setup_teardown (test_withdrawal_of_unknown_key_is_kept_as_tombstone, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_negative_amounts_are_credits, setup, teardown),
        cmocka_unit_test_setup_teardown (test_overflow_is_rejected_without_changing_totals, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_bad_fields_are_rejected_with_reasons, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_upstream_rejections_are_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown (test_fiscal_year_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown (test_breakdowns_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown (test_several_breakdowns_and_places, setup, teardown),
        cmocka_unit_test_setup_teardown (test_empty_store_has_no_neighbourhoods, setup, teardown),
        cmocka_unit_test_setup_teardown (test_neighbourhoods_are_ranked, setup, teardown),
        cmocka_unit_test_setup_teardown (test_duplicates_within_one_group, setup, teardown),
        cmocka_unit_test_setup_teardown (test_agent_high_water_mark_and_counters, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reopen_keeps_everything, setup, teardown),
        cmocka_unit_test (test_missing_store_read_only_is_an_error),
        cmocka_unit_test_setup_teardown (test_map_grows_when_full, setup, teardown),
        cmocka_unit_test (test_full_map_fails_cleanly),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
