/* fuzz_query: any bytes as a Query from the network: query_answer decodes, validates and answers
 * them from a real store holding a few records. Nothing may crash or leak; every input gets a
 * reply that decodes, whose status is the one reported, which echoes the question's query_id,
 * and which is BAD_QUERY exactly when the bytes are not a valid Query. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "store.h"
#include "test_support.h"
#include "wire.h"

static store_t *s_store;

static void
die (const char *what, const char *detail)
{
    fprintf (stderr, "fuzz_query: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort ();
}

/* Records over two neighbourhoods, three bodies, two services, fiscal years either side of April,
 * poolable or not, a credit and a withdrawn one: every breakdown has rows to return. */
static void
open_store (void)
{
    char *dir = test_tmpdir ("fuzz_query");
    char err[STORE_ERR_LEN];
    store_options_t options = {.map_size = 1 << 20, .no_sync = true};
    s_store = test_store_new (dir, &options);
    free (dir);
    Totalplace__Batch *batch = test_batch_new ("fuzz", 1);
    static const struct {
        const char *body, *id, *nbh, *service, *period;
        int64_t pence;
        bool poolable;
    } rows[] = {
        {"GB-LAE-BNS", "T1", "E01000001", "Housing", "2013-03", 12345, true},
        {"GB-LAE-BNS", "T2", "E01000001", "Adult social care", "2013-04", -500, false},
        {"GB-PF-SYP", "P1", "E01000001", "Policing", "2014-01", 250000, true},
        {"GB-PF-SYP", "P2", "E01000002", "Policing", "2014-04", 1, false},
        {"GB-GOV-DWP", "D1", "E01000002", "Employment", "2015-02", 99999, true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        test_batch_add (batch,
                        test_record (rows[i].body, rows[i].id, 1, rows[i].nbh, rows[i].service,
                                     rows[i].period, rows[i].pence, rows[i].poolable));
    Totalplace__SpendingRecord *withdrawn =
        test_record ("GB-GOV-DWP", "D2", 1, "E01000002", "Employment", "2015-03", 7, false);
    withdrawn->withdrawn = true;
    test_batch_add (batch, withdrawn);
    store_result_t results[8];
    memset (results, 0, sizeof results);
    store_result_t *result_lists[1] = {results};
    if (store_apply (s_store, &batch, 1, result_lists, NULL, err, sizeof err))
        die ("store_apply", err);
    test_batch_free (&batch);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_store)
        open_store ();
    query_counters_t counters = {0};
    uint8_t *reply = NULL;
    size_t reply_size = 0;
    Totalplace__QueryStatus status = TOTALPLACE__QUERY_STATUS__QUERY_STATUS_UNSPECIFIED;
    if (query_answer (s_store, NULL, &counters, data, size, &reply, &reply_size, &status))
        die ("no reply at all", NULL);

    char reason[WIRE_REASON_LEN];
    Totalplace__QueryReply *answer = (Totalplace__QueryReply *)wire_decode (
        &totalplace__query_reply__descriptor, reply, reply_size, reason, sizeof reason);
    if (!answer)
        die ("the reply does not decode", reason);
    if (answer->status != status)
        die ("the reply's status is not the one reported", query_status_name (status));

    /* What the server should have made of the bytes, worked out independently. */
    Totalplace__Query *query =
        size <= QUERY_MAX_MESSAGE_BYTES
            ? (Totalplace__Query *)wire_decode (&totalplace__query__descriptor, data, size, NULL, 0)
            : NULL;
    bool valid = query && query_validate (query, reason, sizeof reason) == 0;
    if ((status == TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY) == valid)
        die (valid ? "a valid question was called bad" : "a bad question was answered",
             answer->error);
    if (query && answer->query_id != query->query_id)
        die ("the reply does not echo the query_id", NULL);
    if (status != TOTALPLACE__QUERY_STATUS__QUERY_OK && (!answer->error || !*answer->error))
        die ("a refusal without a reason", query_status_name (status));
    if (valid && query->what == TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS &&
        (status != TOTALPLACE__QUERY_STATUS__QUERY_OK || answer->n_rows != 2))
        die ("the ranking does not hold the two neighbourhoods", answer->error);
    if (query)
        protobuf_c_message_free_unpacked (&query->base, NULL);
    protobuf_c_message_free_unpacked (&answer->base, NULL);
    free (reply);
    return 0;
}
