/* test_store_journal: groups applied with store_apply_journaled end exactly as with store_apply,
 * whatever happens in between. The same groups go to a reference store (store_apply, a commit
 * each) and to a journaled one; they must agree on every outcome, total, counter and mark: when
 * the journaled store commits at its bounds, when its process dies without closing it (a child
 * that _exits; the next store_new applies the journal), when its map must grow in the middle of an
 * open transaction (the open transaction committed or given up, the journal applied again), and
 * when a group must be applied in exact mode after others that are only in the journal. Readers
 * never see what is only in the journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "test_support.h"

#define GROUPS      24
#define BATCHES     3
#define RECORDS     40
#define ALL_RECORDS (GROUPS * BATCHES * RECORDS)

typedef struct {
    char *dir;
    store_t *store;
} side_t;

typedef struct {
    Totalplace__Batch *batches[GROUPS][BATCHES];
    store_result_t results[2][GROUPS][BATCHES][RECORDS]; /* reference, journaled */
} groups_t;

/* Deterministic groups: new records, duplicates, corrections (some withdrawn), three agents,
 * long descriptions (so that a small map fills), and a few records refused upstream. */
static groups_t *
make_groups (unsigned seed, bool huge_amounts)
{
    groups_t *g = calloc (1, sizeof *g);
    unsigned state = seed;
    for (int k = 0; k < GROUPS; k++)
        for (int b = 0; b < BATCHES; b++) {
            char agent[16];
            snprintf (agent, sizeof agent, "agent-%d", b);
            Totalplace__Batch *batch = test_batch_new (agent, (uint64_t)(k + 1));
            for (int i = 0; i < RECORDS; i++) {
                state = state * 1103515245u + 12345u;
                unsigned r = state * 2654435761u;
                r ^= r >> 15; /* all 32 bits in use below */
                char id[32], nbh[16], description[700];
                /* Ids repeat across groups: duplicates and corrections (huge: all new). */
                if (huge_amounts)
                    snprintf (id, sizeof id, "H%02d%d%03d", k, b, i);
                else
                    snprintf (id, sizeof id, "T%05u", r % 900);
                snprintf (nbh, sizeof nbh, "E0100%04u", (r >> 10) % 40);
                int64_t amount = (int64_t)((r >> 3) % 100000) - 20000;
                Totalplace__SpendingRecord *record =
                    huge_amounts
                        ? test_record ("GB-LAE-BNS", id, 1, "E01000001", "Care", "2013-04",
                                       (r >> 3) % 5 ? WIRE_MAX_ABS_AMOUNT_PENCE
                                                    : -WIRE_MAX_ABS_AMOUNT_PENCE,
                                       true)
                        : test_record (b == 2 ? "GB-PF-SYP" : "GB-LAE-BNS", id, 1 + (r >> 20) % 3,
                                       nbh, (r & 1) ? "Care" : "Policing",
                                       (r & 2) ? "2013-04" : "2014-02", amount, (r & 4) != 0);
                record->withdrawn = !huge_amounts && (r >> 25) % 7 == 0;
                free (record->description);
                snprintf (description, sizeof description, "%0600u %s %d", r % 5000, id, k);
                record->description = strdup (description);
                if (!huge_amounts && i > 0 && (r >> 12) % 9 == 0) {
                    /* The record before it again: a duplicate. */
                    test_record_free (&record);
                    record = test_record_copy (batch->records[i - 1]);
                }
                test_batch_add (batch, record);
                if ((r >> 26) % 31 == 0) {
                    g->results[0][k][b][i].outcome = STORE_REJECTED;
                    g->results[1][k][b][i].outcome = STORE_REJECTED;
                }
            }
            g->batches[k][b] = batch;
        }
    return g;
}

static void
free_groups (groups_t **g_p)
{
    for (int k = 0; k < GROUPS; k++)
        for (int b = 0; b < BATCHES; b++)
            test_batch_free (&(*g_p)->batches[k][b]);
    free (*g_p);
    *g_p = NULL;
}

static store_t *
open_side (const char *dir, size_t journal_records, size_t map_size)
{
    store_options_t options = {.path = dir,
                               .journal_records = journal_records,
                               .journal_ms = 600000,
                               .map_size = map_size};
    char err[STORE_ERR_LEN];
    store_t *store = store_new (&options, NULL, err, sizeof err);
    if (!store)
        fail_msg ("store_new: %s", err);
    return store;
}

static void
make_side (side_t *side, const char *tag, size_t journal_records, size_t map_size)
{
    side->dir = test_tmpdir (tag);
    char err[STORE_ERR_LEN];
    if (store_init (side->dir, NULL, err, sizeof err))
        fail_msg ("store_init: %s", err);
    side->store = open_side (side->dir, journal_records, map_size);
}

/* Applies group k to the store; journaled: with store_apply_journaled. */
static void
apply (store_t *store, groups_t *g, int side, int k, bool journaled)
{
    store_result_t *rows[BATCHES];
    for (int b = 0; b < BATCHES; b++)
        rows[b] = g->results[side][k][b];
    char err[STORE_ERR_LEN];
    int rc = journaled ? store_apply_journaled (store, g->batches[k], BATCHES, rows, NULL, err,
                                                sizeof err)
                       : store_apply (store, g->batches[k], BATCHES, rows, NULL, err, sizeof err);
    if (rc)
        fail_msg ("group %d: %s", k, err);
}

static int
add_line (void *arg, const char *key, store_amount_t amount)
{
    char *text = arg;
    size_t used = strlen (text);
    snprintf (text + used, 65536 - used, "%s %lld %lld\n", key, (long long)amount.amount_pence,
              (long long)amount.records);
    return 0;
}

static int
add_agent (void *arg, const store_agent_t *agent)
{
    char *text = arg;
    size_t used = strlen (text);
    snprintf (text + used, 65536 - used, "%s %llu %llu\n", agent->agent_id,
              (unsigned long long)agent->last_batch_seq, (unsigned long long)agent->batches);
    return 0;
}

/* What a store says of itself: every neighbourhood, the breakdowns of one, counters, agents. */
static char *
describe (store_t *store)
{
    char *text = calloc (1, 65536), err[STORE_ERR_LEN];
    store_counters_t c;
    assert_int_equal (store_neighbourhoods (store, add_line, text, err, sizeof err), 0);
    assert_int_equal (
        store_totals (store, NULL, STORE_BY_BODY, NULL, add_line, text, err, sizeof err), 0);
    assert_int_equal (store_agents (store, add_agent, text, err, sizeof err), 0);
    assert_int_equal (store_counters (store, &c, err, sizeof err), 0);
    size_t used = strlen (text);
    snprintf (text + used, 65536 - used, "%llu %llu %llu %llu %llu %llu %llu\n",
              (unsigned long long)c.batches, (unsigned long long)c.accepted,
              (unsigned long long)c.duplicate, (unsigned long long)c.superseded,
              (unsigned long long)c.stale, (unsigned long long)c.rejected,
              (unsigned long long)c.records_stored);
    return text;
}

static void
assert_same_store (store_t *reference, store_t *journaled)
{
    char *a = describe (reference), *b = describe (journaled);
    if (strcmp (a, b))
        fail_msg ("the stores differ:\n%s---\n%s", a, b);
    free (a);
    free (b);
}

static void
assert_same_outcomes (const groups_t *g, int upto)
{
    for (int k = 0; k < upto; k++)
        for (int b = 0; b < BATCHES; b++)
            for (int i = 0; i < RECORDS; i++) {
                const store_result_t *x = &g->results[0][k][b][i], *y = &g->results[1][k][b][i];
                if (x->outcome != y->outcome || strcmp (x->reason, y->reason))
                    fail_msg ("group %d batch %d record %d: %s (%s) against %s (%s)", k, b, i,
                              store_outcome_name (x->outcome), x->reason,
                              store_outcome_name (y->outcome), y->reason);
            }
}

static void
remove_side (side_t *side)
{
    test_store_remove (&side->store, &side->dir);
}

static off_t
journal_size (const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf (path, sizeof path, "%s/journal", dir);
    return stat (path, &st) == 0 ? st.st_size : -1;
}

/* ---------------------------------------------------------------- the tests */

static void
test_journaled_groups_end_as_committed_ones (void **state)
{
    (void)state;
    groups_t *g = make_groups (7, false);
    side_t reference, journaled;
    make_side (&reference, "test_journal_ref", 0, 0);
    /* Bounds of 500 records: the open transaction is committed every few groups. */
    make_side (&journaled, "test_journal_on", 500, 0);
    store_options_t read_only = {.path = journaled.dir, .read_only = true};
    char err[STORE_ERR_LEN];
    store_t *reader = store_new (&read_only, NULL, err, sizeof err);
    assert_non_null (reader);
    for (int k = 0; k < GROUPS; k++) {
        apply (reference.store, g, 0, k, false);
        apply (journaled.store, g, 1, k, true);
        /* What is only in the journal is durable there. */
        if (store_pending (journaled.store))
            assert_true (journal_size (journaled.dir) > 16);
    }
    assert_same_outcomes (g, GROUPS);
    store_counters_t c;
    assert_int_equal (store_counters (reference.store, &c, err, sizeof err), 0);
    /* The groups make every outcome. */
    if (!(c.accepted > 0 && c.duplicate > 0 && c.superseded > 0 && c.stale > 0 && c.rejected > 0))
        fail_msg ("outcomes %llu %llu %llu %llu %llu", (unsigned long long)c.accepted,
                  (unsigned long long)c.duplicate, (unsigned long long)c.superseded,
                  (unsigned long long)c.stale, (unsigned long long)c.rejected);
    assert_true (store_pending (journaled.store) > 0);
    assert_int_equal (store_flush (journaled.store, err, sizeof err), 0);
    assert_int_equal (store_pending (journaled.store), 0);
    assert_int_equal (journal_size (journaled.dir), 16);
    assert_same_store (reference.store, journaled.store);
    assert_same_store (reference.store, reader); /* now the reader sees all of it */
    store_destroy (&reader);
    remove_side (&reference);
    remove_side (&journaled);
    free_groups (&g);
}

static void
test_reader_sees_the_last_commit_only (void **state)
{
    (void)state;
    groups_t *g = make_groups (11, false);
    side_t journaled;
    make_side (&journaled, "test_journal_reader", 100000, 0);
    store_options_t read_only = {.path = journaled.dir, .read_only = true};
    char err[STORE_ERR_LEN];
    store_t *reader = store_new (&read_only, NULL, err, sizeof err);
    apply (journaled.store, g, 1, 0, false); /* committed */
    char *after_first = describe (reader);
    for (int k = 1; k < 6; k++)
        apply (journaled.store, g, 1, k, true); /* in the journal only */
    char *later = describe (reader);
    assert_string_equal (after_first, later);
    assert_int_equal (store_flush (journaled.store, err, sizeof err), 0);
    char *flushed = describe (reader);
    assert_string_not_equal (after_first, flushed);
    free (after_first);
    free (later);
    free (flushed);
    store_destroy (&reader);
    remove_side (&journaled);
    free_groups (&g);
}

/* The process dies with groups only in the journal: the next store_new applies them. */
static void
test_groups_in_the_journal_survive_a_crash (void **state)
{
    (void)state;
    groups_t *g = make_groups (23, false);
    side_t reference, journaled;
    make_side (&reference, "test_journal_crash_ref", 0, 0);
    make_side (&journaled, "test_journal_crash", 100000, 0);
    store_destroy (&journaled.store);
    for (int k = 0; k < GROUPS; k++)
        apply (reference.store, g, 0, k, false);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        store_t *store = open_side (journaled.dir, 100000, 0);
        for (int k = 0; k < GROUPS; k++)
            apply (store, g, 1, k, k != 3);    /* group 3 commits the ones before it */
        _exit (store_pending (store) ? 0 : 3); /* no store_destroy: a crash */
    }
    int status;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    assert_true (journal_size (journaled.dir) > 16);
    journaled.store = open_side (journaled.dir, 100000, 0);
    assert_int_equal (journal_size (journaled.dir), 16); /* applied, committed, emptied */
    assert_same_store (reference.store, journaled.store);
    /* And it goes on: one more group each. */
    groups_t *more = make_groups (29, false);
    apply (reference.store, more, 0, 0, false);
    apply (journaled.store, more, 1, 0, true);
    char err[STORE_ERR_LEN];
    assert_int_equal (store_flush (journaled.store, err, sizeof err), 0);
    assert_same_outcomes (more, 1);
    assert_same_store (reference.store, journaled.store);
    free_groups (&more);
    remove_side (&reference);
    remove_side (&journaled);
    free_groups (&g);
}

/* A map of 1 MiB fills in the middle of an open transaction, again and again. */
static void
test_map_growth_in_an_open_transaction (void **state)
{
    (void)state;
    groups_t *g = make_groups (31, false);
    side_t reference, journaled;
    make_side (&reference, "test_journal_grow_ref", 0, 0);
    make_side (&journaled, "test_journal_grow", 100000, (size_t)1 << 20);
    for (int k = 0; k < GROUPS; k++) {
        apply (reference.store, g, 0, k, false);
        apply (journaled.store, g, 1, k, true);
    }
    char err[STORE_ERR_LEN];
    assert_int_equal (store_flush (journaled.store, err, sizeof err), 0);
    assert_same_outcomes (g, GROUPS);
    assert_same_store (reference.store, journaled.store);
    store_counters_t c;
    assert_int_equal (store_counters (journaled.store, &c, err, sizeof err), 0);
    assert_true (c.map_size > ((size_t)1 << 20)); /* it did grow */
    remove_side (&reference);
    remove_side (&journaled);
    free_groups (&g);
}

/* Huge amounts in one neighbourhood: the fast path cannot rule out an overflow, so groups go to
 * exact mode after groups that are only in the journal; the overflowing records are refused as
 * a reference store refuses them. */
static void
test_exact_mode_after_journaled_groups (void **state)
{
    (void)state;
    groups_t *g = make_groups (37, true);
    side_t reference, journaled;
    make_side (&reference, "test_journal_exact_ref", 0, 0);
    make_side (&journaled, "test_journal_exact", 100000, 0);
    /* The cell filled, committed, to 150 maximal amounts short of overflowing: the first group
     * fits, a later one does not. */
    const size_t fill_count = (size_t)(INT64_MAX / WIRE_MAX_ABS_AMOUNT_PENCE) - 150;
    Totalplace__Batch *fill = test_batch_new ("filler", 1);
    for (size_t i = 0; i < fill_count; i++) {
        char id[32];
        snprintf (id, sizeof id, "FILL%05zu", i);
        test_batch_add (fill, test_record ("GB-LAE-BNS", id, 1, "E01000001", "Care", "2013-04",
                                           WIRE_MAX_ABS_AMOUNT_PENCE, true));
    }
    store_result_t *fill_results = calloc (fill_count, sizeof *fill_results);
    char err[STORE_ERR_LEN];
    store_t *sides[2] = {reference.store, journaled.store};
    for (int side = 0; side < 2; side++) {
        memset (fill_results, 0, fill_count * sizeof *fill_results);
        assert_int_equal (store_apply (sides[side], &fill, 1, &fill_results, NULL, err, sizeof err),
                          0);
    }
    free (fill_results);
    test_batch_free (&fill);
    for (int k = 0; k < GROUPS; k++) {
        apply (reference.store, g, 0, k, false);
        apply (journaled.store, g, 1, k, true);
    }
    assert_int_equal (store_flush (journaled.store, err, sizeof err), 0);
    assert_same_outcomes (g, GROUPS);
    int overflows = 0;
    for (int k = 0; k < GROUPS; k++)
        for (int b = 0; b < BATCHES; b++)
            for (int i = 0; i < RECORDS; i++)
                overflows += strstr (g->results[1][k][b][i].reason, "would overflow") != NULL;
    if (overflows == 0) {
        char *seen = describe (journaled.store);
        fail_msg ("no record would overflow: the test proves nothing (%s)\n%s",
                  g->results[1][0][0][0].reason, seen);
    }
    assert_same_store (reference.store, journaled.store);
    remove_side (&reference);
    remove_side (&journaled);
    free_groups (&g);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_journaled_groups_end_as_committed_ones),
        cmocka_unit_test (test_reader_sees_the_last_commit_only),
        cmocka_unit_test (test_groups_in_the_journal_survive_a_crash),
        cmocka_unit_test (test_map_growth_in_an_open_transaction),
        cmocka_unit_test (test_exact_mode_after_journaled_groups),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
