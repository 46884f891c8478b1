/* test_ingest: the ingest server started in-process on ipc:// with a real store, driven by a
 * DEALER as an agent would: acks and their counts, rejections by index, duplicates, hostile
 * frames, a full store, group commit and a clean stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector_config.h"
#include "ingest.h"
#include "store.h"
#include "test_support.h"
#include "wire.h"

#define ACK_TIMEOUT_MS 10000

typedef struct {
    char *dir;
    char endpoint[600];
    store_t *store;
    collector_config_t *config;
    ingest_t *ingest;
    zsock_t *dealer;
} fixture_t;

static zsock_t *
new_dealer (const char *endpoint, int timeout_ms)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (dealer);
    zsock_set_rcvtimeo (dealer, timeout_ms);
    zsock_set_sndhwm (dealer, 0);
    zsock_set_linger (dealer, 0);
    assert_int_equal (zsock_connect (dealer, "%s", endpoint), 0);
    return dealer;
}

/* A fresh store in a temp folder and an ingest server bound to an ipc:// endpoint in it. */
static int
start (void **state, size_t map_size, size_t max_map_size)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->dir = test_tmpdir ("test_ingest");
    char err[COLLECTOR_CONFIG_ERR_LEN];
    store_options_t options = {.map_size = map_size, .max_map_size = max_map_size};
    fx->store = test_store_new (fx->dir, &options);
    fx->config = collector_config_new ();
    assert_non_null (fx->config);
    assert_int_equal (collector_config_set (fx->config, "collector/state_dir", fx->dir, NULL, 0),
                      0);
    fx->ingest = ingest_new (fx->store, fx->config, err, sizeof err);
    if (!fx->ingest)
        fail_msg ("ingest_new: %s", err);
    snprintf (fx->endpoint, sizeof fx->endpoint, "ipc://%s/ingest.sock", fx->dir);
    if (ingest_bind (fx->ingest, fx->endpoint, err, sizeof err))
        fail_msg ("ingest_bind: %s", err);
    fx->dealer = new_dealer (fx->endpoint, ACK_TIMEOUT_MS);
    *state = fx;
    return 0;
}

static int
setup (void **state)
{
    return start (state, 0, 0);
}

/* A store whose map is 1 MiB and may not grow: a big batch cannot fit. */
static int
setup_small_store (void **state)
{
    return start (state, 1u << 20, 1u << 20);
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    zsock_destroy (&fx->dealer);
    ingest_destroy (&fx->ingest);
    ingest_destroy (&fx->ingest); /* safe twice */
    store_destroy (&fx->store);
    collector_config_destroy (&fx->config);
    test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

static void
assert_mentions (const char *text, const char *needle)
{
    if (!text || !strstr (text, needle))
        fail_msg ("\"%s\" does not mention \"%s\"", text ? text : "(null)", needle);
}

static char *
record_id (uint64_t n)
{
    static char id[32];
    snprintf (id, sizeof id, "R%06llu", (unsigned long long)n);
    return id;
}

/* A batch of count records R<first>.., each of amount pence at the given revision. */
static Totalplace__Batch *
make_batch (const char *agent, uint64_t seq, uint64_t first, size_t count, uint32_t revision,
            int64_t amount)
{
    Totalplace__Batch *batch = test_batch_new (agent, seq);
    for (size_t i = 0; i < count; i++)
        test_batch_add (batch, test_record ("GB-TEST", record_id (first + i), revision, "E01000001",
                                            "adult-social-care", "2023-04", amount, false));
    return batch;
}

static void
send_bytes (zsock_t *dealer, const void *data, size_t size)
{
    assert_int_not_equal (zmq_send (zsock_resolve (dealer), data, size, 0), -1);
}

static void
send_batch (zsock_t *dealer, Totalplace__Batch *batch)
{
    uint8_t *data = NULL;
    size_t size = 0;
    char err[WIRE_REASON_LEN];
    if (wire_encode (&batch->base, &data, &size, err, sizeof err))
        fail_msg ("wire_encode: %s", err);
    send_bytes (dealer, data, size);
    free (data);
}

/* Waits for the next ack; NULL when none comes within the dealer's timeout. */
static Totalplace__Ack *
try_recv_ack (zsock_t *dealer)
{
    zmq_msg_t reply;
    zmq_msg_init (&reply);
    if (zmq_msg_recv (&reply, zsock_resolve (dealer), 0) == -1) {
        zmq_msg_close (&reply);
        return NULL;
    }
    assert_false (zmq_msg_more (&reply)); /* one frame per ack */
    char err[WIRE_REASON_LEN];
    Totalplace__Ack *ack =
        (Totalplace__Ack *)wire_decode (&totalplace__ack__descriptor, zmq_msg_data (&reply),
                                        zmq_msg_size (&reply), err, sizeof err);
    if (!ack)
        fail_msg ("the ack does not decode: %s", err);
    zmq_msg_close (&reply);
    return ack;
}

static Totalplace__Ack *
recv_ack (zsock_t *dealer)
{
    Totalplace__Ack *ack = try_recv_ack (dealer);
    if (!ack)
        fail_msg ("no ack within %d ms", ACK_TIMEOUT_MS);
    return ack;
}

static void
ack_free (Totalplace__Ack **ack_p)
{
    if (*ack_p)
        protobuf_c_message_free_unpacked (&(*ack_p)->base, NULL);
    *ack_p = NULL;
}

static ingest_counters_t
counters (fixture_t *fx)
{
    ingest_counters_t c;
    char err[STORE_ERR_LEN];
    if (ingest_counters (fx->ingest, &c, err, sizeof err))
        fail_msg ("ingest_counters: %s", err);
    return c;
}

static bool
is_stored (fixture_t *fx, const char *id)
{
    Totalplace__SpendingRecord *record = NULL;
    char err[STORE_ERR_LEN];
    int rc = store_get_record (fx->store, "GB-TEST", id, &record, err, sizeof err);
    if (rc == STORE_ERR_NOTFOUND)
        return false;
    if (rc)
        fail_msg ("store_get_record: %s", err);
    protobuf_c_message_free_unpacked (&record->base, NULL);
    return true;
}

static void
test_batch_is_acked_with_counts_and_rejections (void **state)
{
    fixture_t *fx = *state;
    Totalplace__Batch *batch = make_batch ("agent-a", 7, 1, 5, 1, 250);
    /* Two bad records at known places: an impossible month and a missing service. */
    free (batch->records[1]->period);
    batch->records[1]->period = strdup ("2023-13");
    free (batch->records[3]->service);
    batch->records[3]->service = strdup ("");
    send_batch (fx->dealer, batch);

    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->batch_seq, 7);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 3);
    assert_int_equal (ack->rejected, 2);
    assert_int_equal (ack->duplicate + ack->superseded + ack->stale, 0);
    assert_int_equal (ack->n_rejections, 2);
    assert_int_equal (ack->rejections[0]->index, 1);
    assert_mentions (ack->rejections[0]->reason, "period");
    assert_int_equal (ack->rejections[1]->index, 3);
    assert_mentions (ack->rejections[1]->reason, "service");
    ack_free (&ack);

    /* The ack came after the commit: the good records are readable now, the bad ones absent. */
    assert_true (is_stored (fx, record_id (1)));
    assert_false (is_stored (fx, record_id (2)));
    assert_true (is_stored (fx, record_id (3)));
    assert_false (is_stored (fx, record_id (4)));
    assert_true (is_stored (fx, record_id (5)));

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.frames, 1);
    assert_int_equal (c.batches, 1);
    assert_int_equal (c.records, 5);
    assert_int_equal (c.groups, 1);
    assert_int_equal (c.malformed, 0);
    assert_int_equal (c.store.accepted, 3);
    assert_int_equal (c.store.rejected, 2);
    test_batch_free (&batch);
}

static void
test_resent_batches_count_as_duplicates (void **state)
{
    fixture_t *fx = *state;
    Totalplace__Batch *batch = make_batch ("agent-a", 1, 100, 4, 2, 1000);
    send_batch (fx->dealer, batch);
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->accepted, 4);
    ack_free (&ack);

    /* An agent that missed the ack re-sends the same batch: nothing changes twice. */
    send_batch (fx->dealer, batch);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 0);
    assert_int_equal (ack->duplicate, 4);
    ack_free (&ack);
    test_batch_free (&batch);

    /* Revision 3 supersedes, revision 1 is stale. */
    batch = make_batch ("agent-a", 2, 100, 4, 3, 2000);
    send_batch (fx->dealer, batch);
    test_batch_free (&batch);
    batch = make_batch ("agent-a", 3, 100, 4, 1, 3000);
    send_batch (fx->dealer, batch);
    test_batch_free (&batch);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->batch_seq, 2);
    assert_int_equal (ack->superseded, 4);
    ack_free (&ack);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->batch_seq, 3);
    assert_int_equal (ack->stale, 4);
    ack_free (&ack);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.batches, 4);
    assert_int_equal (c.store.duplicate, 4);
    assert_int_equal (c.store.superseded, 4);
    assert_int_equal (c.store.stale, 4);
}

static void
test_malformed_frames_are_answered_and_survived (void **state)
{
    fixture_t *fx = *state;
    /* Bytes that are not a protobuf message. */
    uint8_t garbage[64];
    memset (garbage, 0xff, sizeof garbage);
    send_bytes (fx->dealer, garbage, sizeof garbage);
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_int_equal (ack->batch_seq, 0);
    assert_mentions (ack->error, "Batch");
    ack_free (&ack);

    /* A batch in two frames. */
    assert_int_not_equal (zmq_send (zsock_resolve (fx->dealer), "x", 1, ZMQ_SNDMORE), -1);
    send_bytes (fx->dealer, "y", 1);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_mentions (ack->error, "2 frames");
    ack_free (&ack);

    /* A batch that decodes but fails validation keeps its batch_seq in the ack. */
    Totalplace__Batch *batch = make_batch ("agent with spaces", 42, 1, 1, 1, 1);
    send_batch (fx->dealer, batch);
    test_batch_free (&batch);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_int_equal (ack->batch_seq, 42);
    assert_mentions (ack->error, "agent_id");
    ack_free (&ack);
    assert_false (is_stored (fx, record_id (1)));

    /* The server goes on serving. */
    batch = make_batch ("agent-a", 43, 1, 2, 1, 1);
    send_batch (fx->dealer, batch);
    test_batch_free (&batch);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 2);
    ack_free (&ack);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.frames, 4);
    assert_int_equal (c.malformed, 3);
    assert_int_equal (c.batches, 1);
}

static void
test_oversized_frames_are_refused (void **state)
{
    fixture_t *fx = *state;
    /* Just over the wire limit but within the socket's: read, and answered with the limit. */
    size_t size = (size_t)WIRE_MAX_MESSAGE_BYTES + 1;
    uint8_t *big = calloc (1, INGEST_SOCKET_MAX_MESSAGE_BYTES * 2);
    assert_non_null (big);
    send_bytes (fx->dealer, big, size);
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    char limit[32];
    snprintf (limit, sizeof limit, "%u", WIRE_MAX_MESSAGE_BYTES);
    assert_mentions (ack->error, limit);
    ack_free (&ack);
    assert_int_equal (counters (fx).oversized, 1);

    /* Over the socket's bound: libzmq drops the connection, no ack comes. */
    zsock_t *hostile = new_dealer (fx->endpoint, 1000);
    send_bytes (hostile, big, INGEST_SOCKET_MAX_MESSAGE_BYTES * 2);
    ack = try_recv_ack (hostile);
    assert_null (ack);
    free (big);
    /* The monitor saw libzmq drop the hostile peer, which itself is still open. */
    ingest_counters_t c = counters (fx);
    for (int i = 0; i < 50 && c.disconnects == 0; i++) {
        zclock_sleep (100);
        c = counters (fx);
    }
    assert_true (c.disconnects >= 1);
    assert_true (c.connections >= 2);
    assert_int_equal (c.oversized, 1); /* the dropped frame was never read */
    assert_int_equal (c.frames, 1);
    zsock_destroy (&hostile);

    /* Good batches still work, on the original connection. */
    Totalplace__Batch *batch = make_batch ("agent-a", 1, 1, 3, 1, 5);
    send_batch (fx->dealer, batch);
    test_batch_free (&batch);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 3);
    ack_free (&ack);
}

static void
test_burst_is_group_committed (void **state)
{
    fixture_t *fx = *state;
    enum { BATCHES = 300, RECORDS = 20 };
    /* Two agents sending at once, each batch with its own records. */
    zsock_t *second = new_dealer (fx->endpoint, ACK_TIMEOUT_MS);
    for (uint64_t n = 0; n < BATCHES; n++) {
        Totalplace__Batch *batch =
            make_batch (n % 2 ? "agent-b" : "agent-a", n + 1, 1 + n * RECORDS, RECORDS, 1, 7);
        send_batch (n % 2 ? second : fx->dealer, batch);
        test_batch_free (&batch);
    }
    bool seen[BATCHES + 1] = {false};
    for (int n = 0; n < BATCHES; n++) {
        Totalplace__Ack *ack = recv_ack (n < BATCHES / 2 ? fx->dealer : second);
        assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
        assert_int_equal (ack->accepted, RECORDS);
        assert_true (ack->batch_seq >= 1 && ack->batch_seq <= BATCHES);
        /* Each dealer gets the acks of its own batches only. */
        assert_int_equal (ack->batch_seq % 2, n < BATCHES / 2 ? 1 : 0);
        assert_false (seen[ack->batch_seq]);
        seen[ack->batch_seq] = true;
        ack_free (&ack);
    }
    zsock_destroy (&second);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.batches, BATCHES);
    assert_int_equal (c.records, BATCHES * RECORDS);
    assert_int_equal (c.store.accepted, BATCHES * RECORDS);
    /* Batches arriving while a group commits wait and share the next transaction. */
    assert_true (c.groups < BATCHES);
    assert_true (c.largest_group > 1);
    assert_true (c.largest_group <= fx->config->max_group_batches);
    printf ("# %d batches committed in %llu groups (largest %llu batches)\n", BATCHES,
            (unsigned long long)c.groups, (unsigned long long)c.largest_group);
}

static void
test_group_caps_apply_at_runtime (void **state)
{
    fixture_t *fx = *state;
    enum { BATCHES = 40, RECORDS = 10 };
    /* A cap of 10 records with batches of 10: every group holds exactly one batch. */
    assert_int_equal (
        collector_config_set (fx->config, "collector/max_group_records", "10", NULL, 0), 0);
    ingest_configure (fx->ingest, fx->config);
    for (uint64_t n = 0; n < BATCHES; n++) {
        Totalplace__Batch *batch = make_batch ("agent-a", n + 1, 1 + n * RECORDS, RECORDS, 1, 1);
        send_batch (fx->dealer, batch);
        test_batch_free (&batch);
    }
    for (int n = 0; n < BATCHES; n++) {
        Totalplace__Ack *ack = recv_ack (fx->dealer);
        assert_int_equal (ack->accepted, RECORDS);
        ack_free (&ack);
    }
    ingest_counters_t c = counters (fx);
    assert_int_equal (c.groups, BATCHES);
    assert_int_equal (c.largest_group, 1);
    assert_int_equal (c.largest_group_records, RECORDS);

    /* A cap of 4 batches bounds every later group. */
    assert_int_equal (
        collector_config_set (fx->config, "collector/max_group_records", "200000", NULL, 0), 0);
    assert_int_equal (
        collector_config_set (fx->config, "collector/max_group_batches", "4", NULL, 0), 0);
    ingest_configure (fx->ingest, fx->config);
    for (uint64_t n = BATCHES; n < 2 * BATCHES; n++) {
        Totalplace__Batch *batch = make_batch ("agent-a", n + 1, 1 + n * RECORDS, RECORDS, 1, 1);
        send_batch (fx->dealer, batch);
        test_batch_free (&batch);
    }
    for (int n = 0; n < BATCHES; n++) {
        Totalplace__Ack *ack = recv_ack (fx->dealer);
        assert_int_equal (ack->accepted, RECORDS);
        ack_free (&ack);
    }
    c = counters (fx);
    assert_int_equal (c.batches, 2 * BATCHES);
    assert_true (c.largest_group <= 4);
    assert_true (c.groups >= BATCHES + BATCHES / 4);
}

static void
test_full_store_answers_retry (void **state)
{
    fixture_t *fx = *state;
    /* Thousands of records with long descriptions cannot fit a 1 MiB map that may not grow. */
    Totalplace__Batch *big = make_batch ("agent-a", 1, 1, 3000, 1, 1);
    char description[1001];
    memset (description, 'd', 1000);
    description[1000] = '\0';
    for (size_t i = 0; i < big->n_records; i++) {
        free (big->records[i]->description);
        big->records[i]->description = strdup (description);
    }
    send_batch (fx->dealer, big);
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    assert_int_equal (ack->batch_seq, 1);
    assert_int_equal (ack->accepted, 0);
    assert_mentions (ack->error, "map");
    ack_free (&ack);
    assert_false (is_stored (fx, record_id (1)));

    /* The daemon keeps serving: a small batch fits, and the agent's re-send still gets RETRY. */
    Totalplace__Batch *small = make_batch ("agent-a", 2, 5000, 2, 1, 1);
    send_batch (fx->dealer, small);
    test_batch_free (&small);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 2);
    ack_free (&ack);
    send_batch (fx->dealer, big);
    test_batch_free (&big);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    ack_free (&ack);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.retry_acks, 2);
    assert_int_equal (c.batches, 1);
    assert_int_equal (c.store.accepted, 2);
}

static void
test_bind_failure_is_reported (void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    assert_int_equal (ingest_bind (fx->ingest, "tcp://no-such-interface-xyz:7700", err, sizeof err),
                      -1);
    assert_mentions (err, "tcp://no-such-interface-xyz:7700");
    /* A second endpoint on the same server works alongside the first. */
    char second[700];
    snprintf (second, sizeof second, "ipc://%s/second.sock", fx->dir);
    assert_int_equal (ingest_bind (fx->ingest, second, err, sizeof err), 0);
    zsock_t *dealer = new_dealer (second, ACK_TIMEOUT_MS);
    Totalplace__Batch *batch = make_batch ("agent-c", 1, 1, 1, 1, 1);
    send_batch (dealer, batch);
    test_batch_free (&batch);
    Totalplace__Ack *ack = recv_ack (dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    ack_free (&ack);
    zsock_destroy (&dealer);
}

static void
test_term_acks_or_stores_everything_sent (void **state)
{
    fixture_t *fx = *state;
    enum { BATCHES = 200, RECORDS = 10 };
    /* One batch per transaction, so that most batches are still waiting when $TERM comes. */
    assert_int_equal (
        collector_config_set (fx->config, "collector/max_group_batches", "1", NULL, 0), 0);
    ingest_configure (fx->ingest, fx->config);
    for (uint64_t n = 0; n < BATCHES; n++) {
        Totalplace__Batch *batch = make_batch ("agent-a", n + 1, 1 + n * RECORDS, RECORDS, 1, 1);
        send_batch (fx->dealer, batch);
        test_batch_free (&batch);
    }
    /* Once one ack is back the connection is up; a moment later libzmq's I/O threads have
     * handed every batch to the socket (batches still inside them at $TERM are neither stored
     * nor acked: agents re-send those). */
    bool acked[BATCHES + 1] = {false};
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    acked[ack->batch_seq] = true;
    ack_free (&ack);
    zclock_sleep (10);
    uint64_t before_term = counters (fx).batches;
    ingest_destroy (&fx->ingest);
    assert_null (fx->ingest);

    /* Acks queued before the socket closed still arrive. */
    zsock_set_rcvtimeo (fx->dealer, 1500);
    while ((ack = try_recv_ack (fx->dealer))) {
        assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
        assert_true (ack->batch_seq >= 1 && ack->batch_seq <= BATCHES);
        acked[ack->batch_seq] = true;
        ack_free (&ack);
    }
    size_t acked_count = 0;
    for (uint64_t n = 0; n < BATCHES; n++) {
        bool stored = is_stored (fx, record_id (1 + n * RECORDS));
        /* Never acked without being stored; nothing sent is lost without a trace. */
        if (acked[n + 1])
            assert_true (stored);
        assert_true (acked[n + 1] || stored);
        acked_count += acked[n + 1];
    }
    assert_int_equal (acked_count, BATCHES);
    printf ("# %llu of %d batches were committed before $TERM, the rest during it\n",
            (unsigned long long)before_term, BATCHES);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_batch_is_acked_with_counts_and_rejections, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_resent_batches_count_as_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown (test_malformed_frames_are_answered_and_survived, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_oversized_frames_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown (test_burst_is_group_committed, setup, teardown),
        cmocka_unit_test_setup_teardown (test_group_caps_apply_at_runtime, setup, teardown),
        cmocka_unit_test_setup_teardown (test_full_store_answers_retry, setup_small_store,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_bind_failure_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown (test_term_acks_or_stores_everything_sent, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
