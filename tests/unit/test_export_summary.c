/* test_export_summary: the verdict's thresholds, reasons grouped without their values, unplaced
 * values ranked, totals that overflow, warnings forwarded, and notes written whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export_summary.h"

static export_summary_t *
summary_of (uint64_t rows, uint64_t rejected)
{
    export_summary_t *summary = export_summary_new ();
    assert_non_null (summary);
    export_stats_t stats = {.rows = rows, .rejected = rejected};
    export_summary_set_stats (summary, &stats);
    return summary;
}

static void
test_rejected_share_threshold (void **state)
{
    (void)state;
    export_policy_t policy = {.max_rejected_percent = 50, .hold_repeated_ids = true};
    char *note = NULL;
    export_summary_t *summary = summary_of (10, 5); /* exactly half: not "most" */
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_DELIVER);
    assert_null (note);
    export_summary_destroy (&summary);
    summary = summary_of (10, 6);
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_HOLD);
    assert_non_null (strstr (note, "6 of 10 rows (60%) would be rejected"));
    free (note);
    policy.max_rejected_percent = 100; /* never */
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_DELIVER);
    export_summary_destroy (&summary);
    policy.max_rejected_percent = 0; /* any */
    summary = summary_of (1000000, 1);
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_HOLD);
    free (note);
    export_summary_destroy (&summary);
    summary = summary_of (0, 0); /* a header and nothing else */
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_DELIVER);
    export_summary_destroy (&summary);
    /* Counts large enough to overflow rejected * 100 in 32 bits. */
    policy.max_rejected_percent = 50;
    summary = summary_of (UINT64_C (100000000000), UINT64_C (60000000000));
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_HOLD);
    assert_non_null (strstr (note, "60,000,000,000 of 100,000,000,000 rows (60%)"));
    free (note);
    export_summary_destroy (&summary);
}

static void
test_repeats_and_failures (void **state)
{
    (void)state;
    export_policy_t policy = {.max_rejected_percent = 50, .hold_repeated_ids = true};
    char *note = NULL;
    export_summary_t *summary = export_summary_new ();
    export_stats_t stats = {.rows = 4, .repeated_ids = 1, .repeated_id_rows = 2};
    export_summary_set_stats (summary, &stats);
    assert_int_equal (export_summary_add_repeat (summary, "T\"1", 2, 3), 0);
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_HOLD);
    assert_non_null (strstr (note, "1 ids are on 2 more rows"));
    assert_non_null (strstr (note, "on lines 2 and 3"));
    free (note);
    policy.hold_repeated_ids = false; /* input/repeated_ids = lines */
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_DELIVER);
    assert_int_equal (export_summary_set_failure (summary, "x.csv: line 1: the header has nothing"),
                      0);
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_FAILED);
    assert_string_equal (note, "x.csv: line 1: the header has nothing");
    assert_string_equal (export_summary_failure (summary), note);
    free (note);
    export_summary_destroy (&summary);
    assert_null (summary);
    export_summary_destroy (&summary);
}

static void
test_reasons_grouped_without_values (void **state)
{
    (void)state;
    export_summary_t *summary = export_summary_new ();
    assert_int_equal (
        export_summary_add_reject (summary, CSV_FIELD_AMOUNT, 9, "amount \"x\": not a number"), 0);
    assert_int_equal (
        export_summary_add_reject (summary, CSV_FIELD_PERIOD, 2, "period \"201501\": not a date"),
        0);
    assert_int_equal (export_summary_add_reject (summary, CSV_FIELD_PERIOD, 3,
                                                 "period \"2015\\\"02\": not a date"),
                      0);
    assert_int_equal (export_summary_add_reject (summary, CSV_FIELD_PERIOD, 5,
                                                 "period \"31-Apr-2014\": no day 31 in April 2014"),
                      0);
    assert_int_equal (export_summary_add_reject (summary, CSV_FIELD_PERIOD, 6,
                                                 "period \"31-Jun-2014\": no day 31 in June 2014"),
                      0);
    assert_int_equal (
        export_summary_add_reject (summary, CSV_FIELD_PERIOD, 7, "period \"201503\": not a date"),
        0);
    assert_int_equal (export_summary_reason_count (summary), 4);
    const export_reason_t *first = export_summary_reason (summary, 0);
    assert_int_equal (first->rows, 3);
    assert_int_equal (first->first_line, 2);
    assert_int_equal (first->field, CSV_FIELD_PERIOD);
    assert_string_equal (first->reason, "period \"201501\": not a date");
    /* Ties: in order of first appearance. */
    assert_int_equal (export_summary_reason (summary, 1)->first_line, 5);
    assert_int_equal (export_summary_reason (summary, 2)->first_line, 6);
    assert_int_equal (export_summary_reason (summary, 3)->first_line, 9);
    /* Adding after reading still groups. */
    assert_int_equal (
        export_summary_add_reject (summary, CSV_FIELD_PERIOD, 8, "period \"201504\": not a date"),
        0);
    assert_int_equal (export_summary_reason_count (summary), 4);
    assert_int_equal (export_summary_reason (summary, 0)->rows, 4);
    export_summary_destroy (&summary);
}

static void
test_unplaced_amounts_dates_warnings (void **state)
{
    (void)state;
    export_summary_t *summary = export_summary_new ();
    for (int i = 0; i < 3; i++)
        assert_int_equal (export_summary_add_unplaced (summary, "Unit", "Schools"), 0);
    assert_int_equal (export_summary_add_unplaced (summary, "postcode", "ZZ9 9ZZ"), 0);
    assert_int_equal (export_summary_add_unplaced (summary, "Unit", "Libraries"), 0);
    assert_int_equal (export_summary_unplaced_count (summary), 3);
    const export_unplaced_t *top = export_summary_unplaced (summary, 0);
    assert_string_equal (top->what, "Unit");
    assert_string_equal (top->value, "Schools");
    assert_int_equal (top->rows, 3);
    assert_string_equal (export_summary_unplaced (summary, 1)->value, "Libraries");
    assert_int_equal (export_summary_add_unplaced (summary, "Unit", "Libraries"), 0);
    assert_int_equal (export_summary_unplaced (summary, 1)->rows, 2);

    int64_t total;
    export_summary_add_amount (summary, 150, true);
    export_summary_add_amount (summary, -50, false);
    assert_true (export_summary_total (summary, &total));
    assert_int_equal (total, 100);
    assert_true (export_summary_accepted_total (summary, &total));
    assert_int_equal (total, 150);
    export_summary_add_amount (summary, INT64_MAX, false);
    assert_false (export_summary_total (summary, &total));
    assert_true (export_summary_accepted_total (summary, &total));

    export_summary_add_date (summary, "2015-04-10");
    export_summary_add_date (summary, "2015-03");
    export_summary_add_date (summary, "2015-04-30");
    assert_string_equal (export_summary_first_date (summary), "2015-03");
    assert_string_equal (export_summary_last_date (summary), "2015-04-30");

    for (size_t line = 1; line <= 9; line++)
        assert_int_equal (export_summary_warn (summary, EXPORT_WARN_COPY, line, "copy"), 0);
    assert_int_equal (export_summary_warning_count (summary, EXPORT_WARN_COPY), 9);
    assert_int_equal (export_summary_warning_examples (summary, EXPORT_WARN_COPY), 5);
    size_t line;
    assert_string_equal (export_summary_warning_example (summary, EXPORT_WARN_COPY, 4, &line),
                         "copy");
    assert_int_equal (line, 5);
    assert_null (export_summary_warning_example (summary, EXPORT_WARN_COPY, 5, &line));
    assert_int_equal (export_summary_warning_count (summary, EXPORT_WARN_TOTALS_ROW), 0);
    export_summary_destroy (&summary);
}

static int s_sunk;

static int
sink (void *arg, export_warning_t kind, size_t line, const char *text)
{
    (void)arg;
    (void)line;
    (void)text;
    s_sunk++;
    return kind == EXPORT_WARN_TOTALS_ROW ? 7 : 0;
}

static void
test_warnings_reach_the_sink_and_notes_are_whole (void **state)
{
    (void)state;
    export_summary_t *summary = export_summary_new ();
    export_summary_set_warning_sink (summary, sink, NULL);
    assert_int_equal (export_summary_warn (summary, EXPORT_WARN_COPY, 1, "a"), 0);
    assert_int_equal (export_summary_warn (summary, EXPORT_WARN_TOTALS_ROW, 2, "b"), 7);
    assert_int_equal (s_sunk, 2);

    /* A note with long reasons (each up to the reader's limit) is never cut. */
    char reason[250];
    for (int r = 0; r < 6; r++) {
        memset (reason, 'a' + r, sizeof reason - 1);
        reason[sizeof reason - 1] = '\0';
        memcpy (reason, "period ", 7);
        for (int i = 0; i <= r; i++)
            assert_int_equal (
                export_summary_add_reject (summary, CSV_FIELD_PERIOD, (size_t)r + 2, reason), 0);
    }
    export_stats_t stats = {.rows = 21, .rejected = 21};
    export_summary_set_stats (summary, &stats);
    char config[600];
    memset (config, 'c', sizeof config - 1);
    config[sizeof config - 1] = '\0';
    export_policy_t policy = {.max_rejected_percent = 50, .config = config};
    char *note = NULL;
    assert_int_equal (export_summary_verdict (summary, &policy, &note), EXPORT_HOLD);
    assert_true (strlen (note) > 1024);
    assert_non_null (strstr (note, "Main reason, 6 rows: period fff"));
    assert_non_null (strstr (note, config));
    const char *end = "then drop the file into the inbox again.";
    assert_string_equal (note + strlen (note) - strlen (end), end);
    free (note);
    export_summary_destroy (&summary);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_rejected_share_threshold),
        cmocka_unit_test (test_repeats_and_failures),
        cmocka_unit_test (test_reasons_grouped_without_values),
        cmocka_unit_test (test_unplaced_amounts_dates_warnings),
        cmocka_unit_test (test_warnings_reach_the_sink_and_notes_are_whole),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
