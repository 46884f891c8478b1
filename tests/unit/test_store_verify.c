/* test_store_verify: a sound store verifies clean, with every count right; every kind of
 * disagreement, made under LMDB's own API with sound checksums (as a bug would write it) or
 * without (as damage leaves it), is found, named with its database, key and both values, and
 * counted; the list handed out stops at the bound while the counts go on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "store_checksum.h"
#include "store_verify.h"
#include "test_support.h"

#define MAX_SEEN 64

typedef struct {
    char *dir;
    store_t *store;
    store_verify_finding_t seen[MAX_SEEN];
    size_t seen_count;
} fixture_t;

static const char *SERVICE = "Adult Social Care";

static void
apply (store_t *store, const char *agent, uint64_t seq, Totalplace__SpendingRecord **records,
       size_t count)
{
    Totalplace__Batch *batch = test_batch_new (agent, seq);
    for (size_t i = 0; i < count; i++)
        test_batch_add (batch, records[i]);
    store_result_t results[8] = {{0}}, *rows[1] = {results};
    char err[STORE_ERR_LEN];
    if (store_apply (store, &batch, 1, rows, NULL, err, sizeof err))
        fail_msg ("store_apply: %s", err);
    test_batch_free (&batch);
}

static Totalplace__SpendingRecord *
rec (const char *id, uint32_t revision, const char *neighbourhood, const char *period,
     int64_t amount)
{
    return test_record ("GB-LAE-BNS", id, revision, neighbourhood, SERVICE, period, amount, true);
}

/* Six records over two agents: a correction, a withdrawal, a duplicate and three neighbourhoods. */
static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = test_tmpdir ("test_store_verify");
    f->store = test_store_new (f->dir, NULL);
    Totalplace__SpendingRecord *first[] = {rec ("T1", 1, "E01000001", "2013-04", 1000),
                                           rec ("T2", 1, "E01000001", "2013-04", 250),
                                           rec ("T3", 1, "E01000002", "2013-05", -75)};
    apply (f->store, "agent-a", 1, first, 3);
    Totalplace__SpendingRecord *withdrawn = rec ("T3", 2, "E01000002", "2013-05", -75);
    withdrawn->withdrawn = true;
    Totalplace__SpendingRecord *second[] = {rec ("T1", 2, "E01000001", "2013-04", 1100), withdrawn,
                                            rec ("T4", 1, "E01000003", "2014-01", 5),
                                            rec ("T2", 1, "E01000001", "2013-04", 250)};
    apply (f->store, "agent-b", 7, second, 4);
    Totalplace__SpendingRecord *third[] = {rec ("T5", 1, "E01000003", "2014-01", 20)};
    apply (f->store, "agent-a", 2, third, 1);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    test_store_remove (&f->store, &f->dir);
    free (f);
    return 0;
}

static int
collect (void *arg, const store_verify_finding_t *finding)
{
    fixture_t *f = arg;
    assert_true (f->seen_count < MAX_SEEN);
    f->seen[f->seen_count++] = *finding;
    return 0;
}

static store_verify_summary_t
verify (fixture_t *f, size_t max_findings)
{
    store_verify_summary_t summary;
    char err[STORE_ERR_LEN];
    f->seen_count = 0;
    if (store_verify (f->store, max_findings, collect, f, &summary, err, sizeof err))
        fail_msg ("store_verify: %s", err);
    return summary;
}

/* Closes the store so that LMDB may be written to underneath, as the tests then do. */
static void
close_store (fixture_t *f)
{
    store_destroy (&f->store);
}

static void
reopen (fixture_t *f)
{
    store_options_t options = {.path = f->dir, .read_only = true};
    char err[STORE_ERR_LEN];
    f->store = store_new (&options, NULL, err, sizeof err);
    if (!f->store)
        fail_msg ("store_new: %s", err);
}

static const store_verify_finding_t *
find (const fixture_t *f, store_verify_kind_t kind, const char *key)
{
    for (size_t i = 0; i < f->seen_count; i++)
        if (f->seen[i].kind == kind && strcmp (f->seen[i].key, key) == 0)
            return &f->seen[i];
    return NULL;
}

static void
test_sound_store_is_clean (void **state)
{
    fixture_t *f = *state;
    store_verify_summary_t summary = verify (f, 100);
    assert_int_equal (summary.findings, 0);
    assert_int_equal (f->seen_count, 0);
    assert_int_equal (summary.records, 5);
    assert_int_equal (summary.live_records, 4);
    assert_int_equal (summary.withdrawn_records, 1);
    assert_int_equal (summary.cells, 2);          /* 2013-04 E01000001, 2014-01 E01000003 */
    assert_int_equal (summary.neighbourhoods, 2); /* E01000002 left with its only record */
    assert_int_equal (summary.recomputed_cells, 2);
    assert_int_equal (summary.recomputed_neighbourhoods, 2);
    assert_int_equal (summary.agents, 2);
    assert_true (summary.memory_bytes > 0);
    /* Read-only, from another handle, as `totalplace verify` does beside the collector. */
    close_store (f);
    reopen (f);
    summary = verify (f, 100);
    assert_int_equal (summary.findings, 0);
}

static void
test_empty_store_is_clean (void **state)
{
    (void)state;
    fixture_t f = {.dir = test_tmpdir ("test_store_verify_empty")};
    f.store = test_store_new (f.dir, NULL);
    store_verify_summary_t summary = verify (&f, 10);
    assert_int_equal (summary.findings, 0);
    assert_int_equal (summary.records, 0);
    test_store_remove (&f.store, &f.dir);
}

static const char *CELL_1 = "2013-04\x1f"
                            "E01000001\x1f"
                            "GB-LAE-BNS\x1f"
                            "Adult Social Care\x1fY";
static const char *CELL_3 = "2014-01\x1f"
                            "E01000003\x1f"
                            "GB-LAE-BNS\x1f"
                            "Adult Social Care\x1fY";

/* Totals that differ, are missing or extra, each written with a sound checksum: only the
 * recomputation can tell. */
static void
test_totals_that_disagree_are_named_with_both_values (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    store_amount_t wrong = {1349, 2}; /* the records make 1350 from 2 */
    test_raw_put (f->dir, "cells", CELL_1, strlen (CELL_1), &wrong, sizeof wrong, true);
    test_raw_del (f->dir, "cells", CELL_3, strlen (CELL_3));
    store_amount_t ghost = {500, 1};
    test_raw_put (f->dir, "neighbourhoods", "E01009999", 9, &ghost, sizeof ghost, true);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    assert_int_equal (summary.different, 1);
    assert_int_equal (summary.missing, 1);
    assert_int_equal (summary.extra, 1);
    assert_int_equal (summary.findings, 3);
    const store_verify_finding_t *different =
        find (f, STORE_VERIFY_DIFFERENT, "2013-04|E01000001|GB-LAE-BNS|Adult Social Care|Y");
    assert_non_null (different);
    assert_int_equal (different->db, STORE_DB_CELLS);
    assert_true (different->has_stored && different->has_recomputed);
    assert_int_equal (different->stored.amount_pence, 1349);
    assert_int_equal (different->recomputed.amount_pence, 1350);
    assert_int_equal (different->recomputed.records, 2);
    const store_verify_finding_t *missing =
        find (f, STORE_VERIFY_MISSING, "2014-01|E01000003|GB-LAE-BNS|Adult Social Care|Y");
    assert_non_null (missing);
    assert_false (missing->has_stored);
    assert_int_equal (missing->recomputed.amount_pence, 25);
    assert_int_equal (missing->recomputed.records, 2);
    const store_verify_finding_t *extra = find (f, STORE_VERIFY_EXTRA, "E01009999");
    assert_non_null (extra);
    assert_int_equal (extra->db, STORE_DB_NEIGHBOURHOODS);
    assert_false (extra->has_recomputed);
    assert_int_equal (extra->stored.amount_pence, 500);
}

/* A value without its checksum is damaged; a record stored under another key is invalid. */
static void
test_damage_and_records_under_other_keys (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    unsigned char value[512];
    size_t size = test_raw_get (f->dir, "records", "GB-LAE-BNS\x1fT4", 13, value, sizeof value);
    assert_true (size > 0);
    value[3] ^= 0x10;
    test_raw_put (f->dir, "records", "GB-LAE-BNS\x1fT4", 13, value, size, false);
    /* T5's record, resealed under the key of a T9 that was never sent. */
    size = test_raw_get (f->dir, "records", "GB-LAE-BNS\x1fT5", 13, value, sizeof value);
    test_raw_put (f->dir, "records", "GB-LAE-BNS\x1fT9", 13, value, size - STORE_CHECKSUM_BYTES,
                  true);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    const store_verify_finding_t *damaged = find (f, STORE_VERIFY_DAMAGED, "GB-LAE-BNS|T4");
    assert_non_null (damaged);
    assert_string_equal (damaged->what, "fails its checksum");
    assert_int_equal (damaged->db, STORE_DB_RECORDS);
    const store_verify_finding_t *invalid = find (f, STORE_VERIFY_INVALID, "GB-LAE-BNS|T9");
    assert_non_null (invalid);
    assert_non_null (strstr (invalid->what, "id T5, not its key's"));
    assert_int_equal (summary.damaged, 1);
    assert_int_equal (summary.invalid, 1);
    /* The damaged T4 no longer counts: its cell now differs from what the readable records make. */
    assert_non_null (
        find (f, STORE_VERIFY_DIFFERENT, "2014-01|E01000003|GB-LAE-BNS|Adult Social Care|Y"));
    /* A sixth record stored, five accepted. */
    assert_true (summary.invariants >= 1);
    bool said = false;
    for (size_t i = 0; i < f->seen_count; i++)
        said |= strstr (f->seen[i].what, "holds 6 records, the counters say 5 were accepted") != 0;
    assert_true (said);
}

/* The agents' batches and the counters' are written together: they must agree. */
static void
test_agents_and_counters_must_agree (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    unsigned char value[64];
    size_t size = test_raw_get (f->dir, "agents", "agent-b", 7, value, sizeof value);
    assert_int_equal (size, 24 + STORE_CHECKSUM_BYTES);
    uint64_t batches = 5; /* last_batch_seq, then batches, then last_seen */
    memcpy (value + 8, &batches, sizeof batches);
    test_raw_put (f->dir, "agents", "agent-b", 7, value, 24, true);
    uint64_t none[3] = {0, 0, 0};
    test_raw_put (f->dir, "agents", "agent-z", 7, none, sizeof none, true);
    test_raw_put (f->dir, "meta", "notes", 5, "hello", 5, true);
    reopen (f);
    store_verify_summary_t summary = verify (f, 100);
    assert_non_null (find (f, STORE_VERIFY_INVARIANT, "agent-z"));
    assert_non_null (find (f, STORE_VERIFY_INVARIANT, "notes"));
    const store_verify_finding_t *sum = find (f, STORE_VERIFY_INVARIANT, "counters");
    assert_non_null (sum);
    assert_string_equal (sum->what, "the agents' batches add up to 7, the counters say 3");
    assert_int_equal (summary.invariants, 3);
}

/* The list handed out stops at max_findings; the counts do not. */
static void
test_findings_are_bounded (void **state)
{
    fixture_t *f = *state;
    close_store (f);
    for (int i = 0; i < 30; i++) {
        char key[16];
        store_amount_t ghost = {i + 1, 1};
        snprintf (key, sizeof key, "E0200%04d", i);
        test_raw_put (f->dir, "neighbourhoods", key, strlen (key), &ghost, sizeof ghost, true);
    }
    reopen (f);
    store_verify_summary_t summary = verify (f, 10);
    assert_int_equal (f->seen_count, 10);
    assert_int_equal (summary.extra, 30);
    assert_int_equal (summary.findings, 30);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_sound_store_is_clean, setup, teardown),
        cmocka_unit_test (test_empty_store_is_clean),
        cmocka_unit_test_setup_teardown (test_totals_that_disagree_are_named_with_both_values,
                                         setup, teardown),
        cmocka_unit_test_setup_teardown (test_damage_and_records_under_other_keys, setup, teardown),
        cmocka_unit_test_setup_teardown (test_agents_and_counters_must_agree, setup, teardown),
        cmocka_unit_test_setup_teardown (test_findings_are_bounded, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
