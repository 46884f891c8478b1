/* test_sender: the sender's restore checks, driven by a real ZeroMQ ROUTER in this process that
 * plays the collector with crafted Acks: a status request on connect and while idle, a store whose
 * mark went back (the retained batches are sent again), batches no longer held (a durable alarm
 * and an error naming their files), a store id that changed, and an older collector that reports
 * no store id (nothing is checked, everything works as before). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outbox.h"
#include "sender.h"
#include "test_support.h"
#include "wire.h"

#define AGENT_ID   "agent-t"
#define MAX_SEQ    64
#define MAX_LOGGED 128
#define WAIT_MS    8000

/* The collector as the sender sees it: one store id and one mark for this agent. */
typedef struct {
    zsock_t *router;
    char store_id[80];          /* "": a collector that predates store ids */
    uint64_t mark;              /* highest batch_seq of the agent applied in its store */
    unsigned received[MAX_SEQ]; /* batches received, by seq */
    unsigned status_requests;   /* status requests received */
    bool bad_status_request;    /* one was not batch_seq 0, no records, this agent */
    bool silent[MAX_SEQ];       /* batches it never answers */
    uint64_t restore_at;        /* on receiving this seq, first go back to restore_mark */
    uint64_t restore_mark;
} collector_t;

typedef struct {
    char *dir;
    char endpoint[600];
    outbox_t *outbox;
    sender_t *sender;
    collector_t collector;
    char logged[MAX_LOGGED][1024];
    agent_level_t levels[MAX_LOGGED];
    size_t log_count;
    uint64_t want_seq; /* what received_and_idle waits for */
    unsigned want_times;
    unsigned want_status_requests; /* what asked waits for */
} fixture_t;

static void
capture (void *arg, agent_level_t level, const char *message)
{
    fixture_t *fx = arg;
    if (fx->log_count < MAX_LOGGED) {
        snprintf (fx->logged[fx->log_count], sizeof fx->logged[0], "%s", message);
        fx->levels[fx->log_count] = level;
    }
    fx->log_count++;
}

/* How many lines at level mention every one of the needles (NULL-terminated). */
static size_t
logged (fixture_t *fx, agent_level_t level, ...)
{
    size_t found = 0;
    for (size_t i = 0; i < fx->log_count && i < MAX_LOGGED; i++) {
        if (fx->levels[i] != level)
            continue;
        bool all = true;
        va_list needles;
        va_start (needles, level);
        for (const char *needle; (needle = va_arg (needles, const char *)) != NULL;)
            all = all && strstr (fx->logged[i], needle) != NULL;
        va_end (needles);
        found += all;
    }
    return found;
}

static void
dump_log (fixture_t *fx)
{
    for (size_t i = 0; i < fx->log_count && i < MAX_LOGGED; i++)
        fprintf (stderr, "  log %d: %s\n", (int)fx->levels[i], fx->logged[i]);
}

static sender_options_t
options (fixture_t *fx)
{
    return (sender_options_t){.endpoint = fx->endpoint,
                              .window = 4,
                              .ack_timeout_ms = 3000,
                              .retry_base_ms = 50,
                              .retry_max_ms = 200,
                              .log = capture,
                              .log_arg = fx,
                              .agent_id = AGENT_ID,
                              .check_interval_ms = 150,
                              .retain_hours = 168};
}

static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->dir = test_tmpdir ("test_sender");
    snprintf (fx->endpoint, sizeof fx->endpoint, "ipc://%s/ingest.sock", fx->dir);
    fx->collector.router = zsock_new (ZMQ_ROUTER);
    assert_non_null (fx->collector.router);
    zsock_set_linger (fx->collector.router, 0);
    assert_int_equal (zsock_bind (fx->collector.router, "%s", fx->endpoint), 0);
    snprintf (fx->collector.store_id, sizeof fx->collector.store_id, "store-one");
    char outbox_dir[700], err[OUTBOX_ERR_LEN];
    snprintf (outbox_dir, sizeof outbox_dir, "%s/outbox", fx->dir);
    fx->outbox = outbox_new (outbox_dir, NULL, err, sizeof err);
    if (!fx->outbox)
        fail_msg ("outbox_new: %s", err);
    *state = fx;
    return 0;
}

static void
start_sender (fixture_t *fx)
{
    char err[256];
    sender_options_t opts = options (fx);
    fx->sender = sender_new (fx->outbox, &opts, err, sizeof err);
    if (!fx->sender)
        fail_msg ("sender_new: %s", err);
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    sender_destroy (&fx->sender);
    sender_destroy (&fx->sender); /* safe twice */
    outbox_destroy (&fx->outbox);
    zsock_destroy (&fx->collector.router);
    test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

/* Puts n batches of this agent (one record each) labelled source, as the inbox does a file. */
static void
put_file (fixture_t *fx, size_t n, const char *source)
{
    outbox_item_t items[16];
    assert_true (n <= 16);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = outbox_next_seq (fx->outbox) + i;
        Totalplace__Batch *batch = test_batch_new (AGENT_ID, seq);
        char id[32];
        snprintf (id, sizeof id, "R%llu", (unsigned long long)seq);
        test_batch_add (batch, test_record ("GB-TEST", id, 1, "E01000001", "Adult social care",
                                            "2024-05", 100, false));
        uint8_t *data;
        size_t size;
        char err[256];
        if (wire_encode (&batch->base, &data, &size, err, sizeof err))
            fail_msg ("wire_encode: %s", err);
        test_batch_free (&batch);
        items[i] = (outbox_item_t){seq, data, size};
    }
    char err[OUTBOX_ERR_LEN];
    if (outbox_put_many (fx->outbox, items, n, source, err, sizeof err))
        fail_msg ("outbox_put_many: %s", err);
    for (size_t i = 0; i < n; i++)
        free ((void *)items[i].payload);
}

static void
reply (collector_t *collector, zframe_t *identity, Totalplace__Ack *ack)
{
    uint8_t *data;
    size_t size;
    char err[256];
    if (wire_encode (&ack->base, &data, &size, err, sizeof err))
        fail_msg ("wire_encode: %s", err);
    zmsg_t *message = zmsg_new ();
    zmsg_append (message, &identity);
    zmsg_addmem (message, data, size);
    free (data);
    assert_int_equal (zmsg_send (&message, collector->router), 0);
}

/* Answers whatever the sender sent, as a collector of this version would. */
static void
serve (collector_t *collector)
{
    zmq_pollitem_t item = {zsock_resolve (collector->router), 0, ZMQ_POLLIN, 0};
    while (zmq_poll (&item, 1, 0) > 0) {
        zmsg_t *message = zmsg_recv (collector->router);
        assert_non_null (message);
        assert_int_equal (zmsg_size (message), 2);
        zframe_t *identity = zmsg_pop (message);
        zframe_t *body = zmsg_first (message);
        Totalplace__Batch *batch = (Totalplace__Batch *)wire_decode (
            &totalplace__batch__descriptor, zframe_data (body), zframe_size (body), NULL, 0);
        assert_non_null (batch);
        zmsg_destroy (&message);
        Totalplace__Ack ack = TOTALPLACE__ACK__INIT;
        ack.store_id = collector->store_id;
        if (batch->status_request) {
            collector->status_requests++;
            if (batch->batch_seq != 0 || batch->n_records != 0 ||
                strcmp (batch->agent_id, AGENT_ID) != 0)
                collector->bad_status_request = true;
            ack.agent_mark = collector->mark;
            reply (collector, identity, &ack);
        }
        else {
            assert_true (batch->batch_seq > 0 && batch->batch_seq < MAX_SEQ);
            collector->received[batch->batch_seq]++;
            if (batch->batch_seq == collector->restore_at) {
                collector->mark = collector->restore_mark;
                collector->restore_at = 0;
            }
            if (collector->silent[batch->batch_seq])
                zframe_destroy (&identity);
            else {
                ack.batch_seq = batch->batch_seq;
                ack.accepted = (uint32_t)batch->n_records;
                ack.mark_before = collector->mark;
                if (batch->batch_seq > collector->mark)
                    collector->mark = batch->batch_seq;
                ack.agent_mark = collector->mark;
                reply (collector, identity, &ack);
            }
        }
        protobuf_c_message_free_unpacked (&batch->base, NULL);
    }
}

/* Runs the sender's loop and the collector for ms milliseconds, or until done(fx) holds. */
static bool
drive (fixture_t *fx, int64_t ms, bool (*done) (fixture_t *))
{
    char err[512];
    int64_t until = zclock_mono () + ms;
    while (zclock_mono () < until) {
        if (sender_pump (fx->sender, zclock_mono (), err, sizeof err))
            fail_msg ("sender_pump: %s", err);
        serve (&fx->collector);
        zsock_t *socket = sender_socket (fx->sender);
        if (socket) {
            zmq_pollitem_t item = {zsock_resolve (socket), 0, ZMQ_POLLIN, 0};
            if (zmq_poll (&item, 1, 5) > 0 &&
                sender_receive (fx->sender, zclock_mono (), err, sizeof err))
                fail_msg ("sender_receive: %s", err);
        }
        else
            zclock_sleep (5);
        if (done && done (fx))
            return true;
    }
    return false;
}

static bool
idle (fixture_t *fx)
{
    return sender_idle (fx->sender);
}

static bool
received_and_idle (fixture_t *fx)
{
    return fx->collector.received[fx->want_seq] >= fx->want_times && sender_idle (fx->sender);
}

/* Runs until batch seq has been received times times and the sender is idle again. */
static void
drive_until_received (fixture_t *fx, uint64_t seq, unsigned times)
{
    fx->want_seq = seq;
    fx->want_times = times;
    if (!drive (fx, WAIT_MS, received_and_idle)) {
        dump_log (fx);
        fail_msg ("batch %llu was received %u times, not %u, within %d ms", (unsigned long long)seq,
                  fx->collector.received[seq], times, WAIT_MS);
    }
}

static bool
asked (fixture_t *fx)
{
    return fx->collector.status_requests >= fx->want_status_requests;
}

static void
drive_until_idle (fixture_t *fx)
{
    if (!drive (fx, WAIT_MS, idle)) {
        dump_log (fx);
        fail_msg ("the sender did not become idle: %zu pending", outbox_count (fx->outbox));
    }
}

static sender_counters_t
counters (fixture_t *fx)
{
    sender_counters_t counters;
    sender_counters (fx->sender, &counters);
    return counters;
}

static outbox_alarm_t
alarm_of (fixture_t *fx)
{
    outbox_alarm_t alarm;
    char err[OUTBOX_ERR_LEN];
    if (outbox_alarm (fx->outbox, &alarm, err, sizeof err))
        fail_msg ("outbox_alarm: %s", err);
    return alarm;
}

static void
assert_received (fixture_t *fx, uint64_t first, uint64_t last, unsigned times)
{
    for (uint64_t seq = first; seq <= last; seq++)
        if (fx->collector.received[seq] != times)
            fail_msg ("batch %llu was received %u times, not %u", (unsigned long long)seq,
                      fx->collector.received[seq], times);
}

/* Delivers batches 1..n (acknowledged, retained) and leaves the sender idle. */
static void
deliver (fixture_t *fx, size_t n, const char *source)
{
    put_file (fx, n, source);
    drive_until_idle (fx);
    assert_int_equal (outbox_count (fx->outbox), 0);
}

/* With nothing to send, the sender asks on connecting, and again every check interval. */
static void
test_status_on_connect (void **state)
{
    fixture_t *fx = *state;
    start_sender (fx);
    assert_false (sender_idle (fx->sender)); /* the collector has not answered yet */
    drive_until_idle (fx);
    assert_int_equal (fx->collector.status_requests, 1);
    assert_false (fx->collector.bad_status_request);
    assert_string_equal (outbox_store_id (fx->outbox), "store-one");
    assert_int_equal (logged (fx, AGENT_LOG_INFO, "store id is store-one", NULL), 1);
    /* Three more while idle, each check_interval_ms (150) after the last answer. */
    int64_t start = zclock_mono ();
    fx->want_status_requests = 4;
    assert_true (drive (fx, WAIT_MS, asked));
    assert_true (zclock_mono () - start >= 3 * 150 - 10);
    assert_int_equal (fx->collector.status_requests, 4);
    assert_int_equal (counters (fx).status_requests, fx->collector.status_requests);
    assert_int_equal (counters (fx).regressions, 0);
    assert_int_equal (alarm_of (fx).lost, 0);
}

/* Batches answered on a store that kept its mark: retained, no status request, nothing found. */
static void
test_delivery_retains (void **state)
{
    fixture_t *fx = *state;
    put_file (fx, 6, "jan.csv");
    start_sender (fx);
    drive_until_idle (fx);
    assert_received (fx, 1, 6, 1);
    assert_int_equal (fx->collector.status_requests, 0); /* the Acks said it all */
    outbox_retained_t retained;
    outbox_retained (fx->outbox, &retained);
    assert_int_equal (retained.count, 6);
    assert_int_equal (outbox_acked_max (fx->outbox), 6);
    assert_int_equal (counters (fx).acked, 6);
    assert_int_equal (counters (fx).regressions, 0);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "lacks", NULL), 0);
}

/* The store went back (restored): the first new batch is applied on the old mark, which shows
 * the hole below it; the retained batches of the hole are sent again, once. */
static void
test_mark_before_regression (void **state)
{
    fixture_t *fx = *state;
    start_sender (fx);
    deliver (fx, 10, "jan.csv");
    fx->collector.mark = 4; /* restored from a backup taken after batch 4 */
    put_file (fx, 1, "feb.csv");
    drive_until_idle (fx);
    assert_received (fx, 1, 4, 1);
    assert_received (fx, 5, 10, 2);
    assert_received (fx, 11, 11, 1);
    assert_int_equal (fx->collector.mark, 11);
    assert_int_equal (counters (fx).requeued, 6);
    assert_int_equal (counters (fx).lost, 0);
    assert_int_equal (alarm_of (fx).lost, 0);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "lacks batches 5-10",
                              "batch 11 was applied on a mark of 4", "6 sent again", NULL),
                      1);
    assert_int_equal (logged (fx, AGENT_LOG_ERROR, "LOST", NULL), 0);
    outbox_retained_t retained;
    outbox_retained (fx->outbox, &retained);
    assert_int_equal (retained.count, 11);
}

/* Restored between two Acks the agent may read in one go: the batches acknowledged just before
 * the restore are sent again all the same (kept back, or requeued). */
static void
test_restore_between_acks (void **state)
{
    fixture_t *fx = *state;
    fx->collector.restore_at = 3;
    fx->collector.restore_mark = 0;
    put_file (fx, 4, "jan.csv");
    start_sender (fx);
    drive_until_idle (fx);
    assert_received (fx, 1, 2, 2);
    assert_received (fx, 3, 4, 1);
    assert_int_equal (fx->collector.mark, 4);
    assert_int_equal (counters (fx).requeued, 2);
    assert_int_equal (alarm_of (fx).lost, 0);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "lacks batches 1-2",
                              "batch 3 was applied on a mark of 0", NULL),
                      1);
    outbox_retained_t retained;
    outbox_retained (fx->outbox, &retained);
    assert_int_equal (retained.count, 4);
}

/* An idle agent notices the restore from its status reply alone. */
static void
test_status_regression_when_idle (void **state)
{
    fixture_t *fx = *state;
    start_sender (fx);
    deliver (fx, 6, "jan.csv");
    unsigned asked = fx->collector.status_requests;
    fx->collector.mark = 2;
    drive_until_received (fx, 6, 2);
    assert_true (fx->collector.status_requests > asked);
    assert_received (fx, 1, 2, 1);
    assert_received (fx, 3, 6, 2);
    assert_int_equal (fx->collector.mark, 6);
    assert_int_equal (counters (fx).requeued, 4);
    assert_int_equal (counters (fx).regressions, 1);
    assert_int_equal (
        logged (fx, AGENT_LOG_WARNING, "lacks batches 3-6", "mark for this agent is 2", NULL), 1);
    assert_true (sender_idle (fx->sender));
}

/* Batches pruned here that the restored store lacks are lost: a durable alarm, an error naming
 * their files, and the ones still retained are sent again. */
static void
test_lost_batches (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN];
    start_sender (fx);
    put_file (fx, 3, "a.csv");
    put_file (fx, 3, "b.csv");
    drive_until_idle (fx);
    size_t pruned = 0;
    assert_int_equal (outbox_prune (fx->outbox, INT64_MAX, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 6);
    deliver (fx, 2, "c.csv");
    fx->collector.mark = 0; /* restored from a backup older than all of it */
    drive_until_received (fx, 8, 2);
    assert_received (fx, 1, 6, 1);
    assert_received (fx, 7, 8, 2);
    assert_int_equal (counters (fx).lost, 6);
    assert_int_equal (counters (fx).requeued, 2);
    outbox_alarm_t alarm = alarm_of (fx);
    assert_int_equal (alarm.lost, 6);
    assert_int_equal (alarm.ranges, 1);
    assert_true (alarm.raised_at > 0);
    if (logged (fx, AGENT_LOG_ERROR, "LOST: 6 batches", "seqs 1-6", "a.csv, b.csv", "--clear-alarm",
                NULL) != 1) {
        dump_log (fx);
        fail_msg ("no error naming the lost batches and their files");
    }
    /* Found again by the Ack of batch 7 sent again (applied on a mark of 0), and looked for at
     * later checks: not said again, not counted again. */
    fx->want_status_requests = fx->collector.status_requests + 2;
    assert_true (drive (fx, WAIT_MS, asked));
    assert_int_equal (counters (fx).lost, 6);
    assert_int_equal (logged (fx, AGENT_LOG_ERROR, "LOST", NULL), 1);
}

/* A different store: a warning naming both ids, everything retained sent again, the new id kept. */
static void
test_store_id_change (void **state)
{
    fixture_t *fx = *state;
    start_sender (fx);
    deliver (fx, 5, "jan.csv");
    assert_string_equal (outbox_store_id (fx->outbox), "store-one");
    snprintf (fx->collector.store_id, sizeof fx->collector.store_id, "store-two");
    fx->collector.mark = 0;
    drive_until_received (fx, 5, 2);
    assert_received (fx, 1, 5, 2);
    assert_int_equal (counters (fx).store_changes, 1);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "from store-one to store-two", NULL), 1);
    assert_string_equal (outbox_store_id (fx->outbox), "store-two");
    assert_int_equal (alarm_of (fx).lost, 0);
    assert_true (sender_idle (fx->sender));
}

static bool
two_acked (fixture_t *fx)
{
    return counters (fx).acked == 2;
}

/* A hole of batches still pending (sent, not answered yet) is no loss and no restore. */
static void
test_gap_of_pending_is_fine (void **state)
{
    fixture_t *fx = *state;
    fx->collector.silent[2] = true;
    put_file (fx, 3, "jan.csv");
    start_sender (fx);
    assert_true (drive (fx, WAIT_MS, two_acked));
    assert_received (fx, 1, 3, 1);
    assert_int_equal (outbox_count (fx->outbox), 1); /* batch 2 */
    assert_int_equal (counters (fx).regressions, 0);
    assert_int_equal (counters (fx).requeued, 0);
    assert_int_equal (alarm_of (fx).lost, 0);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "lacks", NULL), 0);
}

/* A collector that predates store ids: one status request per connection, one warning, and
 * delivery exactly as before; a mark going back is not (cannot be) noticed. */
static void
test_old_collector (void **state)
{
    fixture_t *fx = *state;
    fx->collector.store_id[0] = '\0';
    start_sender (fx);
    drive_until_idle (fx);
    drive (fx, 600, NULL);
    assert_int_equal (fx->collector.status_requests, 1);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "does not report its store id", NULL), 1);
    deliver (fx, 4, "jan.csv");
    assert_received (fx, 1, 4, 1);
    fx->collector.mark = 0;
    put_file (fx, 1, "feb.csv");
    drive_until_idle (fx);
    drive (fx, 300, NULL);
    assert_received (fx, 1, 4, 1);
    assert_int_equal (counters (fx).regressions, 0);
    assert_string_equal (outbox_store_id (fx->outbox), "");
    assert_int_equal (fx->collector.status_requests, 1);
    assert_int_equal (logged (fx, AGENT_LOG_WARNING, "does not report its store id", NULL), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_status_on_connect, setup, teardown),
        cmocka_unit_test_setup_teardown (test_delivery_retains, setup, teardown),
        cmocka_unit_test_setup_teardown (test_mark_before_regression, setup, teardown),
        cmocka_unit_test_setup_teardown (test_restore_between_acks, setup, teardown),
        cmocka_unit_test_setup_teardown (test_status_regression_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lost_batches, setup, teardown),
        cmocka_unit_test_setup_teardown (test_store_id_change, setup, teardown),
        cmocka_unit_test_setup_teardown (test_gap_of_pending_is_fine, setup, teardown),
        cmocka_unit_test_setup_teardown (test_old_collector, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
