/* test_id_repeats: a file's record keys seen once, again with the same content (a copy) or with
 * other content (another invoice line), with the line of the first row, over enough ids to grow
 * every shard; and the memory per distinct id the docs promise (14 to 19.5 bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "id_repeats.h"

#define IDS 300000

static void
digest_of (uint32_t content, uint8_t digest[16])
{
    memset (digest, 0xA5, 16);
    memcpy (digest, &content, sizeof content);
}

static void
test_repeats (void **state)
{
    (void)state;
    id_repeats_t *table = id_repeats_new ();
    assert_non_null (table);
    char id[32];
    uint8_t digest[16];
    size_t first_line;
    int first_other;
    for (size_t i = 0; i < IDS; i++) {
        snprintf (id, sizeof id, "T%07zu", i);
        digest_of ((uint32_t)i, digest);
        assert_int_equal (
            id_repeats_see (table, "GB-X", id, 1, digest, i + 2, &first_line, &first_other),
            ID_REPEATS_NEW);
        assert_int_equal (first_line, i + 2);
    }
    assert_int_equal (id_repeats_distinct (table), IDS);
    double per_id = (double)id_repeats_bytes (table) / IDS;
    printf ("%.1f bytes per distinct id\n", per_id);
    assert_true (per_id >= 14.0 && per_id <= 19.6);

    /* Every id again: the even ones copies, the odd ones other lines. */
    size_t copies = 0, others = 0, firsts = 0;
    for (size_t i = 0; i < IDS; i++) {
        snprintf (id, sizeof id, "T%07zu", i);
        digest_of ((uint32_t)(i % 2 ? i + 1000000 : i), digest);
        int kind =
            id_repeats_see (table, "GB-X", id, 1, digest, IDS + i + 2, &first_line, &first_other);
        assert_int_equal (first_line, i + 2);
        copies += kind == ID_REPEATS_COPY;
        others += kind == ID_REPEATS_OTHER;
        firsts += (size_t)first_other;
    }
    assert_int_equal (copies, IDS / 2);
    assert_int_equal (others, IDS / 2);
    assert_int_equal (firsts, IDS / 2);
    /* A third line of an id that repeated already: not its first other. */
    snprintf (id, sizeof id, "T%07u", 1u);
    digest_of (77, digest);
    assert_int_equal (id_repeats_see (table, "GB-X", id, 1, digest, 5, &first_line, &first_other),
                      ID_REPEATS_OTHER);
    assert_int_equal (first_other, 0);
    /* Another revision, or another body, is another key. */
    assert_int_equal (id_repeats_see (table, "GB-X", id, 2, digest, 6, &first_line, &first_other),
                      ID_REPEATS_NEW);
    assert_int_equal (id_repeats_see (table, "GB-Y", id, 1, digest, 7, &first_line, &first_other),
                      ID_REPEATS_NEW);
    assert_int_equal (id_repeats_distinct (table), IDS + 2);
    id_repeats_destroy (&table);
    id_repeats_destroy (&table);
    assert_null (table);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test (test_repeats)};
    return cmocka_run_group_tests (tests, NULL, NULL);
}
