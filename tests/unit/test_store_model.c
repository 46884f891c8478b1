/* test_store_model: thousands of random records with duplicates, corrections, conflicts and
 * withdrawals, applied in random orders and batch splits; the store must agree, record by record
 * and total by total, with a plain model that recomputes every total from the surviving records.
 * TOTALPLACE_SEED=N reproduces a run; TOTALPLACE_MODEL_MESSAGES=N changes its size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "period.h"
#include "store.h"
#include "store_verify.h"
#include "test_support.h"

#define BODIES         4
#define NEIGHBOURHOODS 25
#define SERVICES       5
#define MONTHS         30
#define KEYS           2500
#define RUNS           3

static const char *BODY_IDS[BODIES] = {"GB-LAE-BNS", "GB-NHS-RFF", "GB-PF-SYP", "GB-GOV-DWP"};
static const char *SERVICE_NAMES[SERVICES] = {"Adult Social Care", "Community Health", "Policing",
                                              "Employment Support", "Housing"};

typedef struct {
    int body, neighbourhood, service, month;
    int64_t amount;
    bool poolable, withdrawn;
    uint32_t revision;
    int key;
} version_t;

/* xorshift64*: small, deterministic across platforms. */
static uint64_t rng_state;
static uint64_t
rng_next (void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C (2685821657736338717);
}
static int
rng_below (int n)
{
    return (int)(rng_next () % (uint64_t)n);
}

static void
neighbourhood_code (int index, char *out, size_t len)
{
    snprintf (out, len, "E01%06d", 1000 + index);
}

static void
month_text (int index, char *out, size_t len)
{
    int months = 2012 * 12 + index; /* January 2012 onwards */
    snprintf (out, len, "%04d-%02d", months / 12, months % 12 + 1);
}

static Totalplace__SpendingRecord *
to_record (const version_t *v)
{
    char id[32], nbh[16], month[16];
    snprintf (id, sizeof id, "TX%07d", v->key);
    neighbourhood_code (v->neighbourhood, nbh, sizeof nbh);
    month_text (v->month, month, sizeof month);
    Totalplace__SpendingRecord *r =
        test_record (BODY_IDS[v->body], id, v->revision, nbh, SERVICE_NAMES[v->service], month,
                     v->amount, v->poolable);
    r->withdrawn = v->withdrawn;
    return r;
}

static bool
same_content (const version_t *a, const version_t *b)
{
    return a->neighbourhood == b->neighbourhood && a->service == b->service &&
           a->month == b->month && a->amount == b->amount && a->poolable == b->poolable &&
           a->withdrawn == b->withdrawn && a->revision == b->revision;
}

static void
random_content (version_t *v)
{
    v->neighbourhood = rng_below (NEIGHBOURHOODS);
    v->service = rng_below (SERVICES);
    v->month = rng_below (MONTHS);
    /* Mostly ordinary payments, some credits, a few very large contracts. */
    int kind = rng_below (100);
    if (kind < 10)
        v->amount = -(int64_t)rng_below (5000000);
    else if (kind < 12)
        v->amount = (int64_t)rng_below (1000000000) * 1000;
    else
        v->amount = 50000 + rng_below (10000000);
    v->poolable = rng_below (3) == 0;
    v->withdrawn = false;
}

/* Builds the message stream: every version ever sent, with resends and conflicts. */
static version_t *
generate_messages (size_t count)
{
    version_t *messages = calloc (count, sizeof *messages);
    uint32_t max_revision[KEYS] = {0};
    size_t *first_index = calloc (KEYS, sizeof *first_index);
    for (size_t n = 0; n < count; n++) {
        int key = rng_below (KEYS);
        version_t *v = &messages[n];
        int action = rng_below (100);
        if (max_revision[key] > 0 && action < 30) {
            /* Resend an earlier message for this key exactly (lost ack, dropped file twice). */
            size_t pick = n;
            while (pick == n || messages[pick].key != key)
                pick = first_index[key] + (size_t)rng_below ((int)(n - first_index[key]));
            *v = messages[pick];
            continue;
        }
        v->key = key;
        v->body = key % BODIES;
        random_content (v);
        if (max_revision[key] > 0 && action < 35)
            v->revision = 1 + (uint32_t)rng_below ((int)max_revision[key]); /* conflict/stale */
        else {
            if (max_revision[key] == 0)
                first_index[key] = n;
            v->revision = max_revision[key] + 1 + (uint32_t)rng_below (2);
            max_revision[key] = v->revision;
            v->withdrawn = max_revision[key] > 1 && rng_below (8) == 0;
        }
    }
    free (first_index);
    return messages;
}

/* The model's view of one key after applying messages in order. */
static store_outcome_t
model_apply (version_t *stored, bool *present, const version_t *v)
{
    if (!*present) {
        *stored = *v;
        *present = true;
        return STORE_ACCEPTED;
    }
    if (v->revision < stored->revision)
        return STORE_STALE;
    if (v->revision == stored->revision)
        return same_content (v, stored) ? STORE_DUPLICATE : STORE_REJECTED;
    *stored = *v;
    return STORE_SUPERSEDED;
}

typedef struct {
    store_amount_t total, body[BODIES], service[SERVICES], month[MONTHS], poolable[2];
} expected_t;

static void
add (store_amount_t *a, int64_t amount)
{
    a->amount_pence += amount;
    a->records += 1;
}

typedef struct {
    const char *names[MONTHS];
    const store_amount_t *expected;
    size_t count;
    size_t seen;
    const char *what;
} check_t;

static int
check_row (void *arg, const char *key, store_amount_t amount)
{
    check_t *check = arg;
    for (size_t i = 0; i < check->count; i++)
        if (strcmp (check->names[i], key) == 0) {
            if (amount.amount_pence != check->expected[i].amount_pence ||
                amount.records != check->expected[i].records)
                fail_msg ("%s %s: store has %lld pence in %lld records, model %lld in %lld",
                          check->what, key, (long long)amount.amount_pence,
                          (long long)amount.records, (long long)check->expected[i].amount_pence,
                          (long long)check->expected[i].records);
            check->seen++;
            return 0;
        }
    fail_msg ("%s: store has a row \"%s\" the model does not know", check->what, key);
    return 1;
}

static void
check_breakdown (store_t *store, const char *nbh, store_breakdown_t by, const char **names,
                 const store_amount_t *expected, size_t count, const char *what)
{
    check_t check = {.expected = expected, .count = count, .what = what};
    size_t nonzero = 0;
    for (size_t i = 0; i < count; i++) {
        check.names[i] = names[i];
        if (expected[i].records)
            nonzero++;
    }
    char err[STORE_ERR_LEN];
    int rc = store_totals (store, nbh, by, NULL, check_row, &check, err, sizeof err);
    if (rc)
        fail_msg ("store_totals %s %s: %s", nbh, what, err);
    assert_int_equal (check.seen, nonzero);
}

typedef struct {
    expected_t *expected;
    size_t seen;
    int64_t previous;
} ranking_check_t;

static int
check_ranked (void *arg, const char *key, store_amount_t amount)
{
    ranking_check_t *check = arg;
    int index = atoi (key + 3) - 1000;
    assert_true (index >= 0 && index < NEIGHBOURHOODS);
    assert_int_equal (amount.amount_pence, check->expected[index].total.amount_pence);
    assert_int_equal (amount.records, check->expected[index].total.records);
    if (check->seen)
        assert_true (amount.amount_pence <= check->previous);
    check->previous = amount.amount_pence;
    check->seen++;
    return 0;
}

static void
compare_with_model (store_t *store, const version_t *model, const bool *present)
{
    static expected_t expected[NEIGHBOURHOODS];
    memset (expected, 0, sizeof expected);
    int64_t grand = 0;
    int64_t grand_records = 0;
    for (int k = 0; k < KEYS; k++) {
        if (!present[k] || model[k].withdrawn)
            continue;
        const version_t *v = &model[k];
        expected_t *e = &expected[v->neighbourhood];
        add (&e->total, v->amount);
        add (&e->body[v->body], v->amount);
        add (&e->service[v->service], v->amount);
        add (&e->month[v->month], v->amount);
        add (&e->poolable[v->poolable], v->amount);
        grand += v->amount;
        grand_records++;
    }
    char month_names[MONTHS][16];
    const char *months[MONTHS];
    for (int m = 0; m < MONTHS; m++) {
        month_text (m, month_names[m], sizeof month_names[m]);
        months[m] = month_names[m];
    }
    const char *poolable_names[2] = {"no", "yes"};
    size_t populated = 0;
    for (int n = 0; n < NEIGHBOURHOODS; n++) {
        char nbh[16];
        neighbourhood_code (n, nbh, sizeof nbh);
        expected_t *e = &expected[n];
        if (e->total.records == 0) {
            char err[STORE_ERR_LEN];
            assert_int_equal (
                store_totals (store, nbh, STORE_BY_NONE, NULL, check_row, NULL, err, sizeof err),
                STORE_ERR_NOTFOUND);
            continue;
        }
        populated++;
        const char *none[1] = {""};
        check_breakdown (store, nbh, STORE_BY_NONE, none, &e->total, 1, "total");
        check_breakdown (store, nbh, STORE_BY_BODY, BODY_IDS, e->body, BODIES, "body");
        check_breakdown (store, nbh, STORE_BY_SERVICE, SERVICE_NAMES, e->service, SERVICES,
                         "service");
        check_breakdown (store, nbh, STORE_BY_MONTH, months, e->month, MONTHS, "month");
        check_breakdown (store, nbh, STORE_BY_POOLABLE, poolable_names, e->poolable, 2, "poolable");
        /* Fiscal years: recompute from the months, April to March. */
        char fy_names[4][FISCAL_YEAR_LEN];
        const char *fys[4];
        store_amount_t by_fy[4] = {{0, 0}};
        size_t fy_count = 0;
        for (int m = 0; m < MONTHS; m++) {
            char fy[FISCAL_YEAR_LEN];
            assert_int_equal (period_fiscal_year (months[m], fy, sizeof fy), 0);
            size_t i = 0;
            while (i < fy_count && strcmp (fy_names[i], fy) != 0)
                i++;
            if (i == fy_count)
                snprintf (fy_names[fy_count++], FISCAL_YEAR_LEN, "%s", fy);
            by_fy[i].amount_pence += e->month[m].amount_pence;
            by_fy[i].records += e->month[m].records;
        }
        for (size_t i = 0; i < fy_count; i++)
            fys[i] = fy_names[i];
        check_breakdown (store, nbh, STORE_BY_FISCAL_YEAR, fys, by_fy, fy_count, "fiscal year");
    }
    ranking_check_t ranking = {.expected = expected};
    char err[STORE_ERR_LEN];
    assert_int_equal (store_neighbourhoods (store, check_ranked, &ranking, err, sizeof err), 0);
    assert_int_equal (ranking.seen, populated);
    const char *all[1] = {""};
    store_amount_t grand_total = {grand, grand_records};
    check_breakdown (store, NULL, STORE_BY_NONE, all, &grand_total, 1, "all neighbourhoods");

    /* Every key's stored record is the model's surviving version. */
    for (int k = 0; k < KEYS; k++) {
        char id[32];
        snprintf (id, sizeof id, "TX%07d", k);
        Totalplace__SpendingRecord *stored = NULL;
        int rc = store_get_record (store, BODY_IDS[k % BODIES], id, &stored, err, sizeof err);
        if (!present[k]) {
            assert_int_equal (rc, STORE_ERR_NOTFOUND);
            continue;
        }
        assert_int_equal (rc, 0);
        Totalplace__SpendingRecord *want = to_record (&model[k]);
        assert_true (wire_records_equal (stored, want));
        test_record_free (&want);
        test_record_free (&stored);
    }
}

typedef struct {
    store_snapshot_t *snapshot;
    const version_t *model;
    const bool *present;
    size_t records;
} scan_check_t;

/* Every value of the records database, read through the checksummed whole-store path, is sound
 * and is the model's surviving version of its key. */
static int
check_scanned_record (void *arg, const store_entry_t *entry)
{
    scan_check_t *check = arg;
    if (entry->damage)
        fail_msg ("record %.*s: %s", (int)entry->key_len, entry->key, entry->damage);
    Totalplace__SpendingRecord *record;
    char err[STORE_ERR_LEN];
    if (store_snapshot_record (check->snapshot, entry, &record, err, sizeof err))
        fail_msg ("record %.*s: %s", (int)entry->key_len, entry->key, err);
    int key = atoi (record->record_id + 2); /* "TX0000042" */
    assert_true (key >= 0 && key < KEYS && check->present[key]);
    Totalplace__SpendingRecord *want = to_record (&check->model[key]);
    assert_true (wire_records_equal (record, want));
    test_record_free (&want);
    test_record_free (&record);
    check->records++;
    return 0;
}

/* The whole store read as `totalplace verify` reads it: every record matches the model, and
 * verify, recomputing every total from the records, finds nothing to say. */
static void
check_whole_store (store_t *store, const version_t *model, const bool *present)
{
    char err[STORE_ERR_LEN];
    size_t present_count = 0, live_count = 0;
    for (int k = 0; k < KEYS; k++) {
        present_count += present[k];
        live_count += present[k] && !model[k].withdrawn;
    }
    store_snapshot_t *snapshot = store_snapshot_new (store, err, sizeof err);
    assert_non_null (snapshot);
    scan_check_t check = {snapshot, model, present, 0};
    assert_int_equal (store_snapshot_scan (snapshot, STORE_DB_RECORDS, check_scanned_record, &check,
                                           err, sizeof err),
                      0);
    assert_int_equal (store_snapshot_entries (snapshot, STORE_DB_RECORDS), present_count);
    store_snapshot_destroy (&snapshot);
    assert_null (snapshot);
    assert_int_equal (check.records, present_count);

    store_verify_summary_t summary;
    assert_int_equal (store_verify (store, 10, NULL, NULL, &summary, err, sizeof err), 0);
    assert_int_equal (summary.findings, 0);
    assert_int_equal (summary.records, present_count);
    assert_int_equal (summary.live_records, live_count);
    assert_false (store_damage (store, NULL, 0));
}

static void
shuffle (version_t *messages, size_t count)
{
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = (size_t)rng_below ((int)(i + 1));
        version_t t = messages[i];
        messages[i] = messages[j];
        messages[j] = t;
    }
}

static void
test_random_streams_match_model (void **state)
{
    (void)state;
    const char *seed_text = getenv ("TOTALPLACE_SEED");
    uint64_t seed = seed_text ? strtoull (seed_text, NULL, 10) : UINT64_C (20261125);
    const char *size_text = getenv ("TOTALPLACE_MODEL_MESSAGES");
    size_t count = size_text ? strtoul (size_text, NULL, 10) : 12000;
    print_message ("model test: seed %llu, %zu messages, %d runs\n", (unsigned long long)seed,
                   count, RUNS);
    rng_state = seed ? seed : 1;
    version_t *messages = generate_messages (count);

    for (int run = 0; run < RUNS; run++) {
        if (run > 0)
            shuffle (messages, count);
        char *dir = test_tmpdir ("test_store_model");
        char err[STORE_ERR_LEN];
        store_options_t options = {.path = dir, .map_size = 1 << 20};
        store_t *store = test_store_new (dir, &options);
        version_t *model = calloc (KEYS, sizeof *model);
        bool *present = calloc (KEYS, sizeof *present);
        size_t outcome_counts[STORE_REJECTED + 1] = {0};
        uint64_t seq = 1;
        for (size_t start = 0; start < count;) {
            /* A group of 1-4 batches of 1-400 records, as a collector under varying load. */
            int batch_count = 1 + rng_below (4);
            Totalplace__Batch *batches[4];
            store_result_t *results[4];
            size_t firsts[4];
            int used = 0;
            for (; used < batch_count && start < count; used++) {
                size_t size = 1 + (size_t)rng_below (400);
                if (size > count - start)
                    size = count - start;
                batches[used] = test_batch_new (used % 2 ? "agent-b" : "agent-a", seq++);
                firsts[used] = start;
                for (size_t i = 0; i < size; i++)
                    test_batch_add (batches[used], to_record (&messages[start + i]));
                results[used] = calloc (size, sizeof *results[used]);
                start += size;
            }
            int rc = store_apply (store, batches, (size_t)used, results, NULL, err, sizeof err);
            if (rc)
                fail_msg ("store_apply: %s", err);
            for (int b = 0; b < used; b++) {
                for (size_t i = 0; i < batches[b]->n_records; i++) {
                    const version_t *v = &messages[firsts[b] + i];
                    store_outcome_t want = model_apply (&model[v->key], &present[v->key], v);
                    if (results[b][i].outcome != want)
                        fail_msg ("run %d message %zu (key %d rev %u): store said %s, model %s",
                                  run, firsts[b] + i, v->key, v->revision,
                                  store_outcome_name (results[b][i].outcome),
                                  store_outcome_name (want));
                    outcome_counts[want]++;
                }
                free (results[b]);
                test_batch_free (&batches[b]);
            }
        }
        print_message ("run %d: accepted %zu duplicate %zu superseded %zu stale %zu rejected %zu\n",
                       run, outcome_counts[STORE_ACCEPTED], outcome_counts[STORE_DUPLICATE],
                       outcome_counts[STORE_SUPERSEDED], outcome_counts[STORE_STALE],
                       outcome_counts[STORE_REJECTED]);
        /* The stream must really exercise every semantic, or this test proves little. */
        for (int o = STORE_ACCEPTED; o <= STORE_REJECTED; o++)
            assert_true (outcome_counts[o] > 0);
        compare_with_model (store, model, present);

        store_counters_t counters;
        assert_int_equal (store_counters (store, &counters, err, sizeof err), 0);
        assert_int_equal (counters.accepted, outcome_counts[STORE_ACCEPTED]);
        assert_int_equal (counters.duplicate, outcome_counts[STORE_DUPLICATE]);
        assert_int_equal (counters.superseded, outcome_counts[STORE_SUPERSEDED]);
        assert_int_equal (counters.stale, outcome_counts[STORE_STALE]);
        assert_int_equal (counters.rejected, outcome_counts[STORE_REJECTED]);

        /* Close and reopen: nothing changes. */
        store_destroy (&store);
        store = store_new (&options, NULL, err, sizeof err);
        assert_non_null (store);
        compare_with_model (store, model, present);
        check_whole_store (store, model, present);
        store_destroy (&store);
        free (model);
        free (present);
        test_rmtree (dir);
        free (dir);
    }
    free (messages);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_random_streams_match_model),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
