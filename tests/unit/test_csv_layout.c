/* test_csv_layout: header names matched as people write them, column specifications parsed and
 * refused, one header resolved with defaults, candidates, positions, joined ids and duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "csv_layout.h"

static void
test_names_match (void **state)
{
    (void)state;
    assert_true (csv_layout_names_match ("paid_date", "Paid Date"));
    assert_true (csv_layout_names_match ("Transaction No.", "Transaction No"));
    assert_true (csv_layout_names_match ("  Service\r\n Area ", "service area"));
    assert_true (csv_layout_names_match ("Trans. No", "trans no"));
    assert_true (csv_layout_names_match ("Amount (GBP)", "amount gbp"));
    assert_false (csv_layout_names_match ("Postcode", "Post Code"));
    assert_false (csv_layout_names_match ("Amount", "Amounts"));
    assert_false (csv_layout_names_match ("", "Amount"));
    assert_true (csv_layout_names_match ("", "  "));
}

static void
test_spec_parsing_and_refusals (void **state)
{
    (void)state;
    char err[256], text[512];
    csv_spec_t *spec =
        csv_spec_parse (CSV_FIELD_RECORD_ID, " Trans No + #3 , \"Ref, old\" ", err, sizeof err);
    assert_non_null (spec);
    assert_string_equal (csv_spec_describe (spec, CSV_FIELD_RECORD_ID, text, sizeof text),
                         "\"Trans No\" + #3, \"Ref, old\"");
    csv_spec_destroy (&spec);
    assert_null (spec);
    csv_spec_destroy (&spec);

    spec = csv_spec_parse (CSV_FIELD_SUPPLIER, "", err, sizeof err);
    assert_non_null (spec);
    assert_true (csv_spec_is_none (spec));
    csv_spec_destroy (&spec);

    static const struct {
        csv_field_t field;
        const char *text, *why;
    } refused[] = {
        {CSV_FIELD_SERVICE, "A + B", "columns/service: only record_id may join"},
        {CSV_FIELD_AMOUNT, "#0", "count from #1"},
        {CSV_FIELD_AMOUNT, "#x7", "is not a column position"},
        {CSV_FIELD_AMOUNT, "Net,,Gross", "an empty header name"},
        {CSV_FIELD_RECORD_ID, "A +", "an empty header name"},
        {CSV_FIELD_AMOUNT, "\"Net", "not closed"},
        {CSV_FIELD_AMOUNT, "\"Net\" x", "text after a quoted header name"},
        {CSV_FIELD_RECORD_ID, "A+B+C+D+E", "joins more than 4 columns"},
        {CSV_FIELD_LOOKUP, "A + B", "neighbourhood/lookup_column: only record_id may join"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err[0] = '\0';
        assert_null (csv_spec_parse (refused[i].field, refused[i].text, err, sizeof err));
        assert_non_null (strstr (err, refused[i].why));
    }
    char many[2048] = "";
    for (int i = 0; i < 20; i++)
        snprintf (many + strlen (many), sizeof many - strlen (many), "%sH%d", i ? "," : "", i);
    assert_null (csv_spec_parse (CSV_FIELD_AMOUNT, many, err, sizeof err));
    assert_non_null (strstr (err, "more than 16 candidates"));
    char long_name[400];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_null (csv_spec_parse (CSV_FIELD_AMOUNT, long_name, err, sizeof err));
    assert_non_null (strstr (err, "over 256 bytes"));
}

static void
test_defaults_first_listed_wins (void **state)
{
    (void)state;
    const char *headers[] = {"Period", "Net Amount", "Trans Date", "Amount", "Trans No", "LSOA"};
    csv_layout_t *layout = csv_layout_new (headers, 6, NULL);
    assert_non_null (layout);
    assert_int_equal (csv_layout_columns (layout, CSV_FIELD_PERIOD)->columns[0], 2);
    assert_int_equal (csv_layout_columns (layout, CSV_FIELD_AMOUNT)->columns[0], 3);
    assert_int_equal (csv_layout_columns (layout, CSV_FIELD_RECORD_ID)->columns[0], 4);
    assert_false (csv_layout_columns (layout, CSV_FIELD_SUPPLIER)->present);
    assert_int_equal (csv_layout_note_count (layout), 0);
    size_t others[8];
    /* The period's other candidates: "Period" by name; the amount's: "Net Amount". */
    assert_int_equal (csv_layout_other_candidates (layout, CSV_FIELD_PERIOD, others, 8), 1);
    assert_int_equal (others[0], 0);
    assert_int_equal (csv_layout_other_candidates (layout, CSV_FIELD_AMOUNT, others, 8), 1);
    assert_int_equal (others[0], 1);
    char text[256];
    assert_string_equal (csv_layout_describe (layout, CSV_FIELD_PERIOD, text, sizeof text),
                         "column 3 \"Trans Date\"");
    assert_string_equal (csv_layout_describe (layout, CSV_FIELD_SUPPLIER, text, sizeof text),
                         "no column");
    csv_layout_destroy (&layout);
    assert_null (layout);
}

static void
test_specs_positions_joins_and_duplicates (void **state)
{
    (void)state;
    const char *headers[] = {"Supplier Name", "Trans No",      "Line",         "Date",
                             "Amount",        "supplier name", "Supplier_Name"};
    char err[256], text[256];
    const csv_spec_t *specs[CSV_FIELD_COUNT] = {0};
    csv_spec_t *id =
        csv_spec_parse (CSV_FIELD_RECORD_ID, "Missing, Trans No + Line", err, sizeof err);
    csv_spec_t *amount = csv_spec_parse (CSV_FIELD_AMOUNT, "#9, #5", err, sizeof err);
    csv_spec_t *none = csv_spec_parse (CSV_FIELD_DESCRIPTION, "", err, sizeof err);
    assert_non_null (id);
    assert_non_null (amount);
    specs[CSV_FIELD_RECORD_ID] = id;
    specs[CSV_FIELD_AMOUNT] = amount;
    specs[CSV_FIELD_DESCRIPTION] = none;
    csv_layout_t *layout = csv_layout_new (headers, 7, specs);
    assert_non_null (layout);
    const csv_columns_t *columns = csv_layout_columns (layout, CSV_FIELD_RECORD_ID);
    assert_true (columns->present);
    assert_int_equal (columns->count, 2);
    assert_int_equal (columns->columns[0], 1);
    assert_int_equal (columns->columns[1], 2);
    assert_string_equal (csv_layout_describe (layout, CSV_FIELD_RECORD_ID, text, sizeof text),
                         "columns 2 \"Trans No\" + 3 \"Line\"");
    /* #9 is beyond the header: the next candidate. */
    assert_int_equal (csv_layout_columns (layout, CSV_FIELD_AMOUNT)->columns[0], 4);
    assert_false (csv_layout_columns (layout, CSV_FIELD_DESCRIPTION)->present);
    /* Three columns are headed Supplier Name as people read it: the first is read, a note says. */
    assert_int_equal (csv_layout_columns (layout, CSV_FIELD_SUPPLIER)->columns[0], 0);
    assert_int_equal (csv_layout_note_count (layout), 1);
    assert_string_equal (csv_layout_note (layout, 0),
                         "supplier: columns 1, 6 and 7 are all headed \"Supplier Name\"; reading "
                         "column 1 (set columns/supplier = #6 to read the others)");
    assert_string_equal (csv_layout_header (layout, 6), "Supplier_Name");
    assert_string_equal (csv_layout_header (layout, 7), "");
    assert_int_equal (csv_layout_width (layout), 7);
    csv_layout_destroy (&layout);
    csv_spec_destroy (&id);
    csv_spec_destroy (&amount);
    csv_spec_destroy (&none);
}

static void
test_field_names_and_keys (void **state)
{
    (void)state;
    assert_int_equal (csv_field_by_name ("period"), CSV_FIELD_PERIOD);
    assert_int_equal (csv_field_by_name ("postcode"), CSV_FIELD_POSTCODE);
    assert_int_equal (csv_field_by_name ("lookup"), -1); /* set with the lookup, not mapped */
    assert_int_equal (csv_field_by_name ("colour"), -1);
    assert_int_equal (csv_field_by_name (NULL), -1);
    assert_string_equal (csv_field_key (CSV_FIELD_PERIOD), "columns/period");
    assert_string_equal (csv_field_key (CSV_FIELD_LOOKUP), "neighbourhood/lookup_column");
    for (int f = 0; f < CSV_FIELD_COUNT; f++)
        assert_non_null (csv_field_key ((csv_field_t)f));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_names_match),
        cmocka_unit_test (test_spec_parsing_and_refusals),
        cmocka_unit_test (test_defaults_first_listed_wins),
        cmocka_unit_test (test_specs_positions_joins_and_duplicates),
        cmocka_unit_test (test_field_names_and_keys),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
