/* test_places: the places file read whole (BOM, CRLF, quoted cells, many-to-many membership,
 * populations) and every refusal naming file, line and field; and the per-resident rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "place_totals.h"
#include "places.h"

static char s_path[] = "/tmp/test_places_XXXXXX";

static const char *
write_file (const char *text)
{
    static char path[64];
    snprintf (path, sizeof path, "%s", s_path);
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t)strlen (text));
    close (fd);
    return path;
}

static places_t *
read_places (const char *text, char *err, size_t err_len)
{
    const char *path = write_file (text);
    places_t *places = places_new (path, err, err_len);
    unlink (path);
    return places;
}

/* The file is refused with a message holding ":LINE: field FIELD" (or the given words). */
static void
refused (const char *text, const char *expected)
{
    char err[1024] = "";
    places_t *places = read_places (text, err, sizeof err);
    assert_null (places);
    if (!strstr (err, expected))
        fail_msg ("expected \"%s\" in \"%s\"", expected, err);
    assert_non_null (strstr (err, "/tmp/test_places_"));
}

static void
test_many_to_many_bom_crlf (void **state)
{
    (void)state;
    char err[1024] = "";
    places_t *places = read_places ("\xEF\xBB\xBFplace,neighbourhood,population\r\n"
                                    "Ward 2,E01000002,1500\r\n"
                                    "\"Estate, North\",E01000001,1200\r\n"
                                    "\"Estate, North\",E01000002,1500\r\n"
                                    "\r\n"
                                    "Ward 2,E01000003,\r\n",
                                    err, sizeof err);
    assert_non_null (places);
    assert_int_equal (places_count (places), 2);
    const places_place_t *estate = places_find (places, "Estate, North");
    assert_non_null (estate);
    assert_int_equal (estate->count, 2);
    assert_string_equal (estate->neighbourhoods[0], "E01000001");
    assert_string_equal (estate->neighbourhoods[1], "E01000002");
    assert_int_equal (estate->residents, 2700);
    assert_int_equal (estate->unpopulated, 0);
    const places_place_t *ward = places_find (places, "Ward 2");
    assert_non_null (ward);
    assert_int_equal (ward->count, 2);
    assert_int_equal (ward->residents, 1500); /* E01000003 has none */
    assert_int_equal (ward->unpopulated, 1);
    assert_ptr_equal (places_at (places, 0), estate); /* name order */
    assert_null (places_find (places, "Nowhere"));
    int64_t population = 0;
    assert_true (places_population (places, "E01000002", &population));
    assert_int_equal (population, 1500);
    assert_false (places_population (places, "E01000003", &population));
    places_destroy (&places);
    assert_null (places);
    places_destroy (&places);
}

static void
test_two_columns (void **state)
{
    (void)state;
    char err[1024] = "";
    places_t *places = read_places ("Place,Neighbourhood\nA,N1\nB,N1\n", err, sizeof err);
    assert_non_null (places);
    assert_int_equal (places_find (places, "A")->unpopulated, 1);
    places_destroy (&places);
}

static void
test_refusals (void **state)
{
    (void)state;
    refused ("place,code\nA,N1\n", ":1: field header");
    refused ("place,neighbourhood,population,notes\nA,N1,1,x\n", ":1: field header");
    refused ("", ":1: field header: no header row");
    refused ("place,neighbourhood\n", "no place in the file");
    refused ("place,neighbourhood\nA,N1\n,N2\n", ":3: field place");
    refused ("place,neighbourhood\nA,N1\n\nA,\n", ":4: field neighbourhood: the neighbourhood "
                                                  "code is empty");
    refused ("place,neighbourhood\nA,E01 000\n", ":2: field neighbourhood \"E01 000\"");
    refused ("place,neighbourhood,population\nA,N1,12x\n", ":2: field population: \"12x\"");
    refused ("place,neighbourhood,population\nA,N1,-5\n", ":2: field population");
    refused ("place,neighbourhood,population\nA,N1,100000001\n", ":2: field population");
    refused ("place,neighbourhood\nA,N1\nB,N2\nA,N1\n",
             ":4: field neighbourhood: N1 is in place \"A\" again (first at line 2)");
    refused ("place,neighbourhood,population\nA,N1,10\nB,N1,\nC,N1,11\n",
             ":4: field population: neighbourhood N1 has population 11 here and 10 at line 2");
    refused ("place,neighbourhood\nA,N1,7\n", ":2: column 3 is beyond the header");
    /* A name over two lines is refused (control character), at the line where its row starts. */
    refused ("place,neighbourhood\nA,N1\n\"Two\nlines\",N1\n", ":3: field place");
    refused ("place,neighbourhood\r\nA,N1\r\n\"B,N2\r\n", ":3: a quoted cell is never closed");
    refused ("\xFF\xFEp\0", "UTF-16");
    char err[256];
    assert_null (places_new ("/nonexistent/places.csv", err, sizeof err));
    assert_non_null (strstr (err, "/nonexistent/places.csv: cannot open"));
}

static void
test_per_resident (void **state)
{
    (void)state;
    int64_t per = 0;
    assert_true (place_totals_per_resident (3334, 2999, &per));
    assert_int_equal (per, 1);
    assert_true (place_totals_per_resident (2334, 1499, &per));
    assert_int_equal (per, 2);
    assert_true (place_totals_per_resident (15, 10, &per)); /* 1.5: away from zero */
    assert_int_equal (per, 2);
    assert_true (place_totals_per_resident (-15, 10, &per));
    assert_int_equal (per, -2);
    assert_true (place_totals_per_resident (14, 10, &per));
    assert_int_equal (per, 1);
    assert_true (place_totals_per_resident (INT64_MAX, 3, &per));
    assert_int_equal (per, INT64_MAX / 3);
    assert_false (place_totals_per_resident (100, 0, &per));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_many_to_many_bom_crlf),
        cmocka_unit_test (test_two_columns),
        cmocka_unit_test (test_refusals),
        cmocka_unit_test (test_per_resident),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
