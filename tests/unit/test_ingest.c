/* test_ingest: the ingest server started in-process on ipc:// with a real store, driven by a
 * DEALER as an agent would: acks and their counts, rejections by index, duplicates, hostile
 * frames, a full store, group commit and a clean stop; the store id and the agent's marks in every
 * Ack, and status requests answered in their turn. */
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

/* The store's id, which every Ack must carry. */
static const char *
store_id (fixture_t *fx)
{
    static store_identity_t identity;
    store_identity (fx->store, &identity);
    assert_int_equal (strlen (identity.store_id), 32);
    return identity.store_id;
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

/* A status request as an agent sends it; seq and records other than 0 make it malformed. */
static void
send_status_request (zsock_t *dealer, const char *agent, uint64_t seq, size_t records)
{
    Totalplace__Batch *request = make_batch (agent, seq, 900000, records, 1, 1);
    request->status_request = 1;
    send_batch (dealer, request);
    test_batch_free (&request);
}

/* The next ack must be the applied answer to a status request, reporting mark. */
static void
expect_status_answer (fixture_t *fx, zsock_t *dealer, uint64_t mark)
{
    Totalplace__Ack *ack = recv_ack (dealer);
    assert_int_equal (ack->batch_seq, 0);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_string_equal (ack->store_id, store_id (fx));
    assert_int_equal (ack->agent_mark, mark);
    assert_int_equal (ack->mark_before, 0);
    assert_int_equal (ack->accepted + ack->duplicate + ack->superseded + ack->stale + ack->rejected,
                      0);
    assert_int_equal (ack->n_rejections, 0);
    ack_free (&ack);
}

/* The next ack must be batch seq's, applied, with these marks. */
static void
expect_batch_answer (fixture_t *fx, zsock_t *dealer, uint64_t seq, uint64_t before, uint64_t after)
{
    Totalplace__Ack *ack = recv_ack (dealer);
    assert_int_equal (ack->batch_seq, seq);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_string_equal (ack->store_id, store_id (fx));
    assert_int_equal (ack->mark_before, before);
    assert_int_equal (ack->agent_mark, after);
    ack_free (&ack);
}

/* Counts the agents the store lists, and finds one's batches. */
typedef struct {
    const char *wanted;
    size_t agents;
    uint64_t batches; /* of wanted */
    uint64_t mark;    /* of wanted */
} agent_search_t;

static int
find_agent (void *arg, const store_agent_t *agent)
{
    agent_search_t *search = arg;
    search->agents++;
    if (strcmp (agent->agent_id, search->wanted) == 0) {
        search->batches = agent->batches;
        search->mark = agent->last_batch_seq;
    }
    return 0;
}

static agent_search_t
agents (fixture_t *fx, const char *wanted)
{
    agent_search_t search = {.wanted = wanted};
    char err[STORE_ERR_LEN];
    if (store_agents (fx->store, find_agent, &search, err, sizeof err))
        fail_msg ("store_agents: %s", err);
    return search;
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
    /* The store's id, and the agent's mark before (never seen: 0) and after this batch. */
    assert_string_equal (ack->store_id, store_id (fx));
    assert_int_equal (ack->mark_before, 0);
    assert_int_equal (ack->agent_mark, 7);
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

    /* An agent that missed the ack re-sends the same batch: nothing changes twice, and the mark
     * it finds is the batch's own (a store lacking nothing). */
    send_batch (fx->dealer, batch);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 0);
    assert_int_equal (ack->duplicate, 4);
    assert_int_equal (ack->mark_before, 1);
    assert_int_equal (ack->agent_mark, 1);
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
    assert_int_equal (ack->mark_before, 1);
    assert_int_equal (ack->agent_mark, 2);
    ack_free (&ack);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->batch_seq, 3);
    assert_int_equal (ack->stale, 4);
    assert_int_equal (ack->mark_before, 2);
    assert_int_equal (ack->agent_mark, 3);
    ack_free (&ack);

    /* Batch 2 sent again after 3 (an agent re-sending what a restored store lacks): the mark
     * stays 3, and its Ack says so. */
    batch = make_batch ("agent-a", 2, 100, 4, 3, 2000);
    send_batch (fx->dealer, batch);
    test_batch_free (&batch);
    expect_batch_answer (fx, fx->dealer, 2, 3, 3);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.batches, 5);
    assert_int_equal (c.store.duplicate, 8);
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
    assert_string_equal (ack->store_id, store_id (fx)); /* in every Ack */
    assert_int_equal (ack->agent_mark, 0);
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
    /* Thousands of records with long descriptions, each its own (the store keeps one copy of a
     * text), cannot fit a 1 MiB map that may not grow. */
    Totalplace__Batch *big = make_batch ("agent-a", 1, 1, 3000, 1, 1);
    char description[1001];
    memset (description, 'd', 1000);
    description[1000] = '\0';
    for (size_t i = 0; i < big->n_records; i++) {
        snprintf (description, sizeof description, "%zu", i);
        description[strlen (description)] = 'd';
        free (big->records[i]->description);
        big->records[i]->description = strdup (description);
    }
    send_batch (fx->dealer, big);
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    assert_int_equal (ack->batch_seq, 1);
    assert_int_equal (ack->accepted, 0);
    assert_mentions (ack->error, "map");
    assert_string_equal (ack->store_id, store_id (fx));
    ack_free (&ack);
    assert_false (is_stored (fx, record_id (1)));

    /* A status request sent right behind a batch the store cannot take (in its group, or the
     * next): the store can still be read, and the mark is as before that batch. */
    send_batch (fx->dealer, big);
    send_status_request (fx->dealer, "agent-a", 0, 0);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    ack_free (&ack);
    expect_status_answer (fx, fx->dealer, 0);

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

    send_status_request (fx->dealer, "agent-a", 0, 0);
    expect_status_answer (fx, fx->dealer, 2);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.retry_acks, 3);
    assert_int_equal (c.batches, 1);
    assert_int_equal (c.status_requests, 2);
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

static void
test_status_request_answers_in_turn (void **state)
{
    fixture_t *fx = *state;
    /* Before any batch: the mark is 0, and asking changes nothing in the store. */
    send_status_request (fx->dealer, "agent-a", 0, 0);
    expect_status_answer (fx, fx->dealer, 0);
    assert_int_equal (agents (fx, "agent-a").agents, 0);

    /* Batches and a status request sent together, without waiting: the answer comes after the
     * batches' Acks and counts all of them, whatever group each one landed in. */
    for (uint64_t seq = 1; seq <= 3; seq++) {
        Totalplace__Batch *batch = make_batch ("agent-a", seq, seq * 10, 2, 1, 5);
        send_batch (fx->dealer, batch);
        test_batch_free (&batch);
    }
    send_status_request (fx->dealer, "agent-a", 0, 0);
    /* Another agent asking on another connection sees its own mark, not agent-a's. */
    zsock_t *other = new_dealer (fx->endpoint, ACK_TIMEOUT_MS);
    send_status_request (other, "agent-b", 0, 0);
    for (uint64_t seq = 1; seq <= 3; seq++)
        expect_batch_answer (fx, fx->dealer, seq, seq - 1, seq);
    expect_status_answer (fx, fx->dealer, 3);
    expect_status_answer (fx, other, 0);
    zsock_destroy (&other);

    /* Status requests are counted as such, never as batches: not in the ingest counters, the
     * store's counters or the store's list of agents. */
    ingest_counters_t c = counters (fx);
    assert_int_equal (c.status_requests, 3);
    assert_int_equal (c.batches, 3);
    assert_int_equal (c.records, 6);
    assert_int_equal (c.store.batches, 3);
    assert_int_equal (c.frames, 6);
    agent_search_t a = agents (fx, "agent-a");
    assert_int_equal (a.agents, 1); /* agent-b only asked */
    assert_int_equal (a.batches, 3);
    assert_int_equal (a.mark, 3);
}

static void
test_malformed_status_requests (void **state)
{
    fixture_t *fx = *state;
    /* With records: refused whole, nothing applied. */
    send_status_request (fx->dealer, "agent-a", 0, 2);
    Totalplace__Ack *ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_int_equal (ack->batch_seq, 0);
    assert_mentions (ack->error, "status request");
    assert_mentions (ack->error, "2 records");
    assert_string_equal (ack->store_id, store_id (fx));
    ack_free (&ack);
    assert_false (is_stored (fx, record_id (900000)));

    /* With a batch_seq: refused, and answered with that seq. */
    send_status_request (fx->dealer, "agent-a", 9, 0);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_int_equal (ack->batch_seq, 9);
    assert_mentions (ack->error, "batch_seq 9");
    ack_free (&ack);

    /* A bad agent id is refused as in a batch. */
    send_status_request (fx->dealer, "agent with spaces", 0, 0);
    ack = recv_ack (fx->dealer);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_mentions (ack->error, "agent_id");
    ack_free (&ack);

    /* The server goes on answering good ones. */
    send_status_request (fx->dealer, "agent-a", 0, 0);
    expect_status_answer (fx, fx->dealer, 0);
    ingest_counters_t c = counters (fx);
    assert_int_equal (c.malformed, 3);
    assert_int_equal (c.status_requests, 1);
    assert_int_equal (c.batches, 0);
    assert_int_equal (c.store.batches, 0);
    assert_int_equal (agents (fx, "agent-a").agents, 0);
}

static void
test_marks_within_groups (void **state)
{
    fixture_t *fx = *state;
    /* Two agents on two connections send bursts at once, so groups hold several batches of each
     * agent and status requests among them. Agent a's seqs include a gap (60 is never sent) and
     * batches sent again below the mark. */
    enum { SENDS = 120 };
    const char *names[2] = {"agent-a", "agent-b"};
    zsock_t *dealers[2] = {fx->dealer, new_dealer (fx->endpoint, ACK_TIMEOUT_MS)};
    uint64_t seqs[2][SENDS]; /* 0: a status request */
    /* The marks as protocol.md defines them: an agent's mark is the highest batch_seq of it
     * applied; each batch sees it before and after itself, a status request as it stands. */
    uint64_t model[2] = {0, 0};
    uint64_t expect_before[2][SENDS], expect_after[2][SENDS];
    size_t status_sent = 0, batches_sent = 0;
    for (int d = 0; d < 2; d++) {
        uint64_t next = 1;
        for (int n = 0; n < SENDS; n++) {
            uint64_t seq;
            if (n % 7 == 6)
                seq = 0;
            else if (d == 0 && n % 25 == 24)
                seq = next > 5 ? next - 5 : 1; /* sent again */
            else {
                if (d == 0 && next == 60)
                    next++; /* a gap */
                seq = next++;
            }
            seqs[d][n] = seq;
            expect_before[d][n] = model[d];
            if (seq > model[d])
                model[d] = seq;
            expect_after[d][n] = model[d];
        }
    }
    for (int n = 0; n < SENDS; n++)
        for (int d = 0; d < 2; d++) {
            if (seqs[d][n] == 0) {
                send_status_request (dealers[d], names[d], 0, 0);
                status_sent++;
                continue;
            }
            Totalplace__Batch *batch =
                make_batch (names[d], seqs[d][n], (uint64_t)d * 100000 + seqs[d][n] * 10, 3, 1, 1);
            send_batch (dealers[d], batch);
            test_batch_free (&batch);
            batches_sent++;
        }
    for (int d = 0; d < 2; d++)
        for (int n = 0; n < SENDS; n++) {
            if (seqs[d][n] == 0)
                expect_status_answer (fx, dealers[d], expect_after[d][n]);
            else
                expect_batch_answer (fx, dealers[d], seqs[d][n], expect_before[d][n],
                                     expect_after[d][n]);
        }
    zsock_destroy (&dealers[1]);

    ingest_counters_t c = counters (fx);
    assert_int_equal (c.batches, batches_sent);
    assert_int_equal (c.status_requests, status_sent);
    assert_int_equal (agents (fx, "agent-a").mark, model[0]);
    assert_int_equal (agents (fx, "agent-b").mark, model[1]);
    /* Without groups of several batches this test would prove nothing about them. */
    assert_true (c.largest_group > 1);
    printf ("# %zu batches and %zu status requests in %llu groups (largest %llu batches)\n",
            batches_sent, status_sent, (unsigned long long)c.groups,
            (unsigned long long)c.largest_group);
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
        cmocka_unit_test_setup_teardown (test_status_request_answers_in_turn, setup, teardown),
        cmocka_unit_test_setup_teardown (test_malformed_status_requests, setup, teardown),
        cmocka_unit_test_setup_teardown (test_marks_within_groups, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
