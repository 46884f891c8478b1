/* fuzz_batch: any bytes as a Batch from the network: decode, validate, apply to a real store.
 * Nothing may crash or leak, and after every apply the store's totals must stay consistent:
 * the ranked neighbourhoods must sum to the total of all cells; every 100 applies, verify
 * (every checksum, every total recomputed from the records, agents and counters) finds nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_verify.h"
#include "test_support.h"
#include "wire.h"

static store_t *s_store;
static char *s_dir;
static unsigned s_applied;

static void
reopen_store (void)
{
    store_destroy (&s_store);
    if (s_dir) {
        test_rmtree (s_dir);
        free (s_dir);
    }
    s_dir = test_tmpdir ("fuzz_batch");
    store_options_t options = {.map_size = 1 << 20, .no_sync = true};
    s_store = test_store_new (s_dir, &options);
}

static int
sum_row (void *arg, const char *key, store_amount_t amount)
{
    (void)key;
    store_amount_t *sum = arg;
    sum->amount_pence += amount.amount_pence;
    sum->records += amount.records;
    return 0;
}

static void
check_consistency (void)
{
    char err[STORE_ERR_LEN];
    store_amount_t ranked = {0, 0}, cells = {0, 0};
    if (store_neighbourhoods (s_store, sum_row, &ranked, err, sizeof err) ||
        store_totals (s_store, NULL, STORE_BY_NONE, NULL, sum_row, &cells, err, sizeof err)) {
        fprintf (stderr, "fuzz_batch: read failed: %s\n", err);
        abort ();
    }
    if (ranked.amount_pence != cells.amount_pence || ranked.records != cells.records) {
        fprintf (stderr,
                 "fuzz_batch: neighbourhood totals %lld/%lld disagree with cells %lld/%lld\n",
                 (long long)ranked.amount_pence, (long long)ranked.records,
                 (long long)cells.amount_pence, (long long)cells.records);
        abort ();
    }
}

static int
print_finding (void *arg, const store_verify_finding_t *finding)
{
    (void)arg;
    fprintf (stderr, "fuzz_batch: verify: %s %s %s: %s\n", store_verify_kind_name (finding->kind),
             store_db_name (finding->db), finding->key, finding->what);
    return 0;
}

static void
check_verify (void)
{
    char err[STORE_ERR_LEN];
    store_verify_summary_t summary;
    if (store_verify (s_store, 5, print_finding, NULL, &summary, err, sizeof err)) {
        fprintf (stderr, "fuzz_batch: verify failed: %s\n", err);
        abort ();
    }
    if (summary.findings) {
        fprintf (stderr, "fuzz_batch: verify found %llu things wrong after %u applies\n",
                 (unsigned long long)summary.findings, s_applied);
        abort ();
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_store || s_applied >= 5000) {
        reopen_store ();
        s_applied = 0;
    }
    char err[WIRE_REASON_LEN];
    Totalplace__Batch *batch = (Totalplace__Batch *)wire_decode (&totalplace__batch__descriptor,
                                                                 data, size, err, sizeof err);
    if (!batch)
        return 0;
    if (wire_validate_batch (batch, err, sizeof err) == 0) {
        store_result_t *results = calloc (batch->n_records ? batch->n_records : 1, sizeof *results);
        char store_err[STORE_ERR_LEN];
        int rc = store_apply (s_store, &batch, 1, &results, NULL, store_err, sizeof store_err);
        if (rc && rc != STORE_ERR_FULL) {
            fprintf (stderr, "fuzz_batch: store_apply failed: %s\n", store_err);
            abort ();
        }
        for (size_t i = 0; rc == 0 && i < batch->n_records; i++) {
            if (results[i].outcome == STORE_PENDING) {
                fprintf (stderr, "fuzz_batch: record %zu left pending\n", i);
                abort ();
            }
            /* What was just stored must read back as exactly what was sent (unless a later record
             * of the same batch replaced it). */
            if (results[i].outcome == STORE_ACCEPTED || results[i].outcome == STORE_SUPERSEDED) {
                const Totalplace__SpendingRecord *sent = batch->records[i];
                Totalplace__SpendingRecord *stored = NULL;
                if (store_get_record (s_store, sent->body_id, sent->record_id, &stored, store_err,
                                      sizeof store_err)) {
                    fprintf (stderr, "fuzz_batch: record %zu does not read back: %s\n", i,
                             store_err);
                    abort ();
                }
                if (stored->revision == sent->revision && !wire_records_equal (stored, sent)) {
                    fprintf (stderr, "fuzz_batch: record %zu reads back different\n", i);
                    abort ();
                }
                protobuf_c_message_free_unpacked (&stored->base, NULL);
            }
        }
        free (results);
        s_applied++;
        check_consistency ();
        if (s_applied % 100 == 0)
            check_verify ();
    }
    protobuf_c_message_free_unpacked (&batch->base, NULL);
    return 0;
}
