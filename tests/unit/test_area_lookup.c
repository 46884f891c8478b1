/* test_area_lookup: value lookups with weights (parts in code order whatever the file's order),
 * postcode lookups in the ONS Postcode Directory layout (normalised postcodes, empty areas
 * skipped), and every bad file refused with its file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "area_lookup.h"
#include "test_support.h"

typedef struct {
    char *dir;
    char path[512];
    char err[512];
} fixture_t;

static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->dir = test_tmpdir ("area_lookup");
    assert_non_null (fx->dir);
    snprintf (fx->path, sizeof fx->path, "%s/lookup.csv", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

static void
write_file (fixture_t *fx, const char *text, size_t len)
{
    FILE *f = fopen (fx->path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (text, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

static const area_lookup_options_t units = {.key_columns = "Organisational Unit",
                                            .code_columns = "Neighbourhood",
                                            .weight_columns = "Weight",
                                            .max_parts = 8};

static const area_lookup_options_t onspd = {.key_columns = "pcds, pcd, pcd7, pcd8",
                                            .code_columns = "lsoa21, lsoa11",
                                            .postcodes = true,
                                            .max_parts = 1};

static area_lookup_t *
load (fixture_t *fx, const char *text, const area_lookup_options_t *options)
{
    write_file (fx, text, strlen (text));
    fx->err[0] = '\0';
    return area_lookup_load (fx->path, options, fx->err, sizeof fx->err);
}

/* Loads text and expects a refusal whose message holds `want` and the file's path. */
static void
refused (fixture_t *fx, const char *text, const area_lookup_options_t *options, const char *want)
{
    area_lookup_t *lookup = load (fx, text, options);
    if (lookup)
        fail_msg ("loaded a bad file, expected \"%s\"", want);
    if (!strstr (fx->err, want) || !strstr (fx->err, fx->path))
        fail_msg ("error \"%s\" does not say \"%s\"", fx->err, want);
}

static void
test_values_and_weights (void **state)
{
    fixture_t *fx = *state;
    /* Rows of one value in any order; extra columns ignored; weights optional per row. */
    area_lookup_t *lookup = load (fx,
                                  "Organisational Unit,Note,Neighbourhood,Weight\n"
                                  "Asset Management,,E01007308,\n"
                                  "Councilwide,,E01007310,1705\n"
                                  "Councilwide,west,E01007304,1612\n"
                                  "  councilwide  ,,E01007309,1550\n"
                                  "Councilwide,,E01007305,1498\n"
                                  "Parks,,E01007304,\n",
                                  &units);
    assert_non_null (lookup);
    assert_int_equal (area_lookup_size (lookup), 3);
    assert_int_equal (area_lookup_max_parts (lookup), 4);

    const area_part_t *parts = NULL;
    assert_int_equal (area_lookup_find (lookup, "COUNCILWIDE", &parts), 4);
    const char *codes[] = {"E01007304", "E01007305", "E01007309", "E01007310"};
    const uint32_t weights[] = {1612, 1498, 1550, 1705};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal (parts[i].code, codes[i]);
        assert_int_equal (parts[i].weight, weights[i]);
    }
    assert_int_equal (area_lookup_find (lookup, " asset  management\t", &parts), 1);
    assert_string_equal (parts[0].code, "E01007308");
    assert_int_equal (parts[0].weight, 1);
    assert_int_equal (area_lookup_find (lookup, "Asset Managment", &parts), 0);
    assert_int_equal (area_lookup_find (lookup, "", &parts), 0);
    assert_int_equal (area_lookup_find (lookup, "   ", &parts), 0);
    area_lookup_destroy (&lookup);
    area_lookup_destroy (&lookup);
    assert_null (lookup);
}

static void
test_no_weight_column_means_equal_weights (void **state)
{
    fixture_t *fx = *state;
    area_lookup_t *lookup =
        load (fx, "Organisational Unit,LSOA\nParks,E01000002\nParks,E01000001\n",
              &(area_lookup_options_t){.key_columns = "Organisational Unit",
                                       .code_columns = "Neighbourhood, LSOA",
                                       .weight_columns = "Weight",
                                       .max_parts = 2});
    assert_non_null (lookup);
    const area_part_t *parts;
    assert_int_equal (area_lookup_find (lookup, "parks", &parts), 2);
    assert_string_equal (parts[0].code, "E01000001");
    assert_int_equal (parts[0].weight, 1);
    assert_int_equal (parts[1].weight, 1);
    area_lookup_destroy (&lookup);
}

static void
test_postcodes_in_onspd_layout (void **state)
{
    fixture_t *fx = *state;
    /* A cut of the ONS Postcode Directory: many columns, BOM, CRLF, pcd8 padding, a postcode with
     * no LSOA (skipped) and a postcode listed twice with the same area (harmless). */
    static const char text[] =
        "\xEF\xBB\xBFpcd,pcd2,pcds,dointr,doterm,oslaua,lsoa11,msoa11,lsoa21\r\n"
        "S70 2TN,S70  2TN,S70 2TN,199001,,E08000016,E01007308,E02001517,E01007308\r\n"
        "S70 6AB,S70  6AB,S70 6AB,199001,,E08000016,E01007390,E02001530,E01033000\r\n"
        "\"GY1 1AA\",GY1  1AA,GY1 1AA,199001,,,,,\r\n"
        "S70 2TN,S70  2TN,S70 2TN,199001,,E08000016,E01007308,E02001517,E01007308\r\n";
    area_lookup_t *lookup = load (fx, text, &onspd);
    assert_non_null (lookup);
    assert_int_equal (area_lookup_size (lookup), 2);
    const area_part_t *parts;
    const char *forms[] = {"S70 2TN", "s702tn", " s70  2TN ", "S70\t2TN"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal (area_lookup_find (lookup, forms[i], &parts), 1);
        assert_string_equal (parts[0].code, "E01007308");
    }
    /* lsoa21 comes before lsoa11 in the list, so it wins. */
    assert_int_equal (area_lookup_find (lookup, "S70 6AB", &parts), 1);
    assert_string_equal (parts[0].code, "E01033000");
    assert_int_equal (area_lookup_find (lookup, "GY1 1AA", &parts), 0);
    assert_int_equal (area_lookup_find (lookup, "S70 2TX", &parts), 0);
    area_lookup_destroy (&lookup);

    /* With only lsoa11 and pcd (no pcds), those are used. */
    lookup = load (fx, "pcd,lsoa11\nS70 2TN,E01007308\n", &onspd);
    assert_non_null (lookup);
    assert_int_equal (area_lookup_find (lookup, "s70 2tn", &parts), 1);
    area_lookup_destroy (&lookup);
}

static void
test_line_numbers_count_physical_lines (void **state)
{
    fixture_t *fx = *state;
    /* Line 2 is blank, lines 3-4 are one row with a quoted line break, line 5 is bad. */
    refused (fx,
             "Organisational Unit,Neighbourhood,Weight\n"
             "\n"
             "\"Asset\nManagement\",E01000001,\n"
             "Parks,E01 000002,\n",
             &units, "line 5: the neighbourhood code \"E01 000002\" has character 0x20 at byte 4");
    refused (fx, "Organisational Unit,Neighbourhood\r\n\r\nParks,E01000001\r\n,E01000002\r\n",
             &units, "line 4: the value is empty");
}

static void
test_bad_files (void **state)
{
    fixture_t *fx = *state;
    refused (fx, "Unit,Neighbourhood\nParks,E01000001\n", &units,
             "line 1: no value column (looked for: Organisational Unit)");
    refused (fx, "pcds,oa21\nS70 2TN,E00000001\n", &onspd,
             "no area code column (looked for: lsoa21, lsoa11)");
    refused (fx, "Organisational Unit,Neighbourhood\nParks,\n", &units,
             "line 2: \"Parks\" has no neighbourhood code");
    refused (fx, "Organisational Unit,Neighbourhood,Weight\nParks,E01000001,x\n", &units,
             "line 2: weight \"x\" is not a whole number");
    refused (fx, "Organisational Unit,Neighbourhood,Weight\nParks,E01000001,0\n", &units,
             "weight \"0\"");
    refused (fx, "Organisational Unit,Neighbourhood,Weight\nParks,E01000001,-3\n", &units,
             "weight \"-3\"");
    refused (fx,
             "Organisational Unit,Neighbourhood\nParks,E01000001\nRoads,E01000002\n"
             "PARKS,E01000001\n",
             &units, "lines 2 and 4 both map \"parks\" to E01000001");
    refused (fx, "pcds,lsoa21\nS70 2TN,E01007308\ns702tn,E01007309\n", &onspd,
             "postcode \"S702TN\" is on line 2 (E01007308) and line 3 (E01007309)");
    refused (fx, "Organisational Unit,Neighbourhood\nAll,E01000001\nAll,E01000002\nAll,E01000003\n",
             &(area_lookup_options_t){.key_columns = "Organisational Unit",
                                      .code_columns = "Neighbourhood",
                                      .max_parts = 2},
             "\"all\" (line 2) maps to 3 neighbourhoods, more than the maximum of 2");
    refused (fx,
             "Organisational Unit,Neighbourhood,Weight\nAll,E01000001,600000000\n"
             "All,E01000002,400000001\n",
             &units, "the weights of \"all\" (line 2) add up to 1000000001");
    refused (fx, "Organisational Unit,Neighbourhood,Neighbourhood\nParks,E1,E2\n", &units,
             "columns 2 and 3 are both headed \"Neighbourhood\"");
    refused (fx, "Organisational Unit,Neighbourhood\n\"Parks,E01000001\n", &units,
             "line 2: a quoted cell is never closed");
    refused (fx, "", &units, "no header row");
    refused (fx, "\xFF\xFEO\0r\0g\0", &units, "UTF-16");

    char long_value[400];
    memset (long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    char text[600];
    snprintf (text, sizeof text, "Organisational Unit,Neighbourhood\n%s,E01000001\n", long_value);
    refused (fx, text, &units, "is longer than 256 bytes");

    fx->err[0] = '\0';
    assert_null (area_lookup_load ("/nonexistent/lookup.csv", &units, fx->err, sizeof fx->err));
    assert_non_null (strstr (fx->err, "/nonexistent/lookup.csv: cannot open"));
}

static void
test_empty_file_with_header_finds_nothing (void **state)
{
    fixture_t *fx = *state;
    area_lookup_t *lookup = load (fx, "Organisational Unit,Neighbourhood\n", &units);
    assert_non_null (lookup);
    assert_int_equal (area_lookup_size (lookup), 0);
    assert_int_equal (area_lookup_max_parts (lookup), 0);
    const area_part_t *parts;
    assert_int_equal (area_lookup_find (lookup, "Parks", &parts), 0);
    area_lookup_destroy (&lookup);
}

static void
test_large_postcode_file (void **state)
{
    fixture_t *fx = *state;
    /* 200,000 postcodes written in reverse order: found in any spelling. */
    FILE *f = fopen (fx->path, "w");
    assert_non_null (f);
    fputs ("pcds,lsoa11\n", f);
    for (int i = 199999; i >= 0; i--)
        fprintf (f, "X%d %dAA,E%08d\n", i / 10, i % 10, i);
    assert_int_equal (fclose (f), 0);
    area_lookup_t *lookup = area_lookup_load (fx->path, &onspd, fx->err, sizeof fx->err);
    assert_non_null (lookup);
    assert_int_equal (area_lookup_size (lookup), 200000);
    const area_part_t *parts;
    assert_int_equal (area_lookup_find (lookup, "x1234 5aa", &parts), 1);
    assert_string_equal (parts[0].code, "E00012345");
    area_lookup_destroy (&lookup);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_values_and_weights, setup, teardown),
        cmocka_unit_test_setup_teardown (test_no_weight_column_means_equal_weights, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_postcodes_in_onspd_layout, setup, teardown),
        cmocka_unit_test_setup_teardown (test_line_numbers_count_physical_lines, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown (test_empty_file_with_header_finds_nothing, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_large_postcode_file, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
