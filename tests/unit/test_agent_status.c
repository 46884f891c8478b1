/* test_agent_status: what `totalplace-agent status` prints of an outbox the agent holds open, as
 * a table and as JSON: pending and retained batches, the store id, the highest acknowledged seq,
 * and an alarm naming the lost seqs, their files and what to do; healthy again once cleared.
 * Pending records (counted from real Batches), the oldest pending age, the last Ack, the collector,
 * files held in failed/ and files taken but not moved; unhealthy when delivery stalled. */
#define _GNU_SOURCE /* open_memstream */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent_status.h"
#include "outbox.h"
#include "test_support.h"
#include "wire.h"

typedef struct {
    char *root;
    char dir[600];
    outbox_t *agent; /* kept open, as a running agent does */
} fixture_t;

static void
put_file (outbox_t *outbox, size_t n, const char *source)
{
    outbox_item_t items[8];
    char err[OUTBOX_ERR_LEN];
    for (size_t i = 0; i < n; i++)
        items[i] = (outbox_item_t){outbox_next_seq (outbox) + i, "batch-bytes", 11};
    if (outbox_put_many (outbox, items, n, source, err, sizeof err))
        fail_msg ("outbox_put_many: %s", err);
}

static void
ack_all (outbox_t *outbox, int64_t acked_at)
{
    uint64_t seqs[16];
    size_t n = 0;
    for (uint64_t seq = 1; seq < outbox_next_seq (outbox) && n < 16; seq++)
        seqs[n++] = seq;
    char err[OUTBOX_ERR_LEN];
    if (outbox_ack (outbox, seqs, n, acked_at, NULL, err, sizeof err))
        fail_msg ("outbox_ack: %s", err);
}

/* Five batches of two files acknowledged and pruned, one more retained, then a store found
 * lacking seqs 1-5: lost. */
static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->root = test_tmpdir ("test_agent_status");
    snprintf (fx->dir, sizeof fx->dir, "%s/outbox", fx->root);
    char err[OUTBOX_ERR_LEN];
    fx->agent = outbox_new (fx->dir, NULL, err, sizeof err);
    if (!fx->agent)
        fail_msg ("outbox_new: %s", err);
    put_file (fx->agent, 3, "jan.csv");
    put_file (fx->agent, 2, "feb.csv");
    ack_all (fx->agent, 1000);
    size_t pruned;
    assert_int_equal (outbox_prune (fx->agent, 2000, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 5);
    put_file (fx->agent, 1, "mar.csv");
    ack_all (fx->agent, 1700000000);
    put_file (fx->agent, 1, "apr.csv"); /* pending */
    assert_int_equal (outbox_set_store_id (fx->agent, "store-x", err, sizeof err), 0);
    outbox_recovery_t found;
    assert_int_equal (outbox_recover (fx->agent, 1, 5, 1700003600, &found, err, sizeof err), 0);
    assert_int_equal (found.newly_lost, 5);
    *state = fx;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    outbox_destroy (&fx->agent);
    test_rmtree (fx->root);
    free (fx->root);
    free (fx);
    return 0;
}

/* Runs agent_status_print; returns what it printed (free it) and its result in *rc. */
static char *
status (fixture_t *fx, agent_status_format_t format, int *rc)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    agent_status_options_t options = {
        .outbox_dir = fx->dir, .format = format, .retain_hours = 168, .now = 1700007200};
    char err[512] = "";
    *rc = agent_status_print (&options, out, err, sizeof err);
    fclose (out);
    if (*rc < 0)
        fail_msg ("agent_status_print: %s", err);
    return text;
}

static void
assert_mentions (const char *text, const char *needle)
{
    if (!strstr (text, needle))
        fail_msg ("the status does not say \"%s\":\n%s", needle, text);
}

static void
test_table_with_alarm (void **state)
{
    fixture_t *fx = *state;
    int rc;
    char *text = status (fx, AGENT_STATUS_TABLE, &rc);
    assert_int_equal (rc, AGENT_STATUS_ALARM);
    assert_mentions (text, "pending              1 batches, 0 records, 11 bytes");
    assert_mentions (text, "retained             1 batches, 11 bytes; oldest acknowledged "
                           "2023-11-14T22:13:20Z (2.0 hours ago; outbox/retain_hours is 168)");
    assert_mentions (text, "collector store id   store-x");
    assert_mentions (text, "highest acked seq    6");
    assert_mentions (text, "next seq             8");
    assert_mentions (text, "alarm                LOST: 5 batches");
    assert_mentions (text, "lost                 seqs 1-5 (found 2023-11-14T23:13:20Z)");
    assert_mentions (text, "  from file          jan.csv (seqs 1-3, taken ");
    assert_mentions (text, "  from file          feb.csv (seqs 4-5, taken ");
    assert_null (strstr (text, "mar.csv"));
    assert_mentions (text, "what to do           drop the files");
    assert_mentions (text, "status --clear-alarm");
    free (text);
}

static void
test_json_with_alarm (void **state)
{
    fixture_t *fx = *state;
    int rc;
    char *text = status (fx, AGENT_STATUS_JSON, &rc);
    assert_int_equal (rc, AGENT_STATUS_ALARM);
    json_error_t error;
    json_t *root = json_loads (text, 0, &error);
    if (!root)
        fail_msg ("not JSON (%s): %s", error.text, text);
    assert_true (json_is_false (json_object_get (root, "healthy")));
    assert_string_equal (json_string_value (json_object_get (root, "outbox")), fx->dir);
    assert_int_equal (json_integer_value (json_object_get (root, "highest_acked_seq")), 6);
    assert_string_equal (json_string_value (json_object_get (root, "collector_store_id")),
                         "store-x");
    json_t *pending = json_object_get (root, "pending");
    assert_int_equal (json_integer_value (json_object_get (pending, "batches")), 1);
    json_t *retained = json_object_get (root, "retained");
    assert_int_equal (json_integer_value (json_object_get (retained, "batches")), 1);
    assert_int_equal (json_integer_value (json_object_get (retained, "retain_hours")), 168);
    json_t *alarm = json_object_get (root, "alarm");
    assert_int_equal (json_integer_value (json_object_get (alarm, "lost_batches")), 5);
    json_t *ranges = json_object_get (alarm, "ranges");
    assert_int_equal (json_array_size (ranges), 1);
    json_t *files = json_object_get (json_array_get (ranges, 0), "files");
    assert_int_equal (json_array_size (files), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (files, 1), "file")),
                         "feb.csv");
    assert_int_equal (json_integer_value (json_object_get (json_array_get (files, 1), "first_seq")),
                      4);
    assert_non_null (json_string_value (json_object_get (alarm, "what_to_do")));
    json_decref (root);
    free (text);
}

static void
test_clear_alarm (void **state)
{
    fixture_t *fx = *state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    char err[512] = "";
    assert_int_equal (agent_status_clear_alarm (fx->dir, out, err, sizeof err), 0);
    fclose (out);
    assert_mentions (text, "alarm cleared: it named 5 lost batches");
    free (text);

    int rc;
    text = status (fx, AGENT_STATUS_TABLE, &rc);
    assert_int_equal (rc, AGENT_STATUS_HEALTHY);
    assert_mentions (text, "alarm                none");
    free (text);
    text = status (fx, AGENT_STATUS_JSON, &rc);
    assert_int_equal (rc, AGENT_STATUS_HEALTHY);
    json_t *root = json_loads (text, 0, NULL);
    assert_non_null (root);
    assert_true (json_is_true (json_object_get (root, "healthy")));
    assert_true (json_is_null (json_object_get (root, "alarm")));
    json_decref (root);
    free (text);

    out = open_memstream (&text, &size);
    assert_int_equal (agent_status_clear_alarm (fx->dir, out, err, sizeof err), 0);
    fclose (out);
    assert_mentions (text, "no alarm stood");
    free (text);
}

static void
test_no_outbox (void **state)
{
    fixture_t *fx = *state;
    char missing[700], err[512] = "";
    snprintf (missing, sizeof missing, "%s/elsewhere", fx->root);
    agent_status_options_t options = {
        .outbox_dir = missing, .format = AGENT_STATUS_TABLE, .retain_hours = 168};
    assert_int_equal (agent_status_print (&options, stdout, err, sizeof err), -1);
    assert_mentions (err, "no outbox in");
    assert_int_equal (agent_status_clear_alarm (missing, stdout, err, sizeof err), -1);
    assert_mentions (err, "no outbox in");
}

/* Stages a file of `batches` real Batches of 3 records each and commits it as taken. */
static void
stage_file (outbox_t *outbox, const char *name, size_t batches)
{
    char err[OUTBOX_ERR_LEN];
    assert_int_equal (outbox_stage_begin (outbox, err, sizeof err), 0);
    for (size_t b = 0; b < batches; b++) {
        uint64_t seq = outbox_next_seq (outbox) + b;
        Totalplace__Batch *batch = test_batch_new ("agent-1", seq);
        for (int r = 0; r < 3; r++) {
            char id[32];
            snprintf (id, sizeof id, "T%zu-%d", b, r);
            test_batch_add (
                batch, test_record ("GB-X", id, 1, "E01000001", "Care", "2024-04", 100 + r, false));
        }
        uint8_t *data;
        size_t size;
        assert_int_equal (wire_encode (&batch->base, &data, &size, err, sizeof err), 0);
        assert_int_equal (outbox_stage_add (outbox, seq, data, size, 3, err, sizeof err), 0);
        free (data);
        test_batch_free (&batch);
    }
    outbox_file_t file = {.name = name, .target = name, .taken_at = (int64_t)time (NULL)};
    file.identity.size = 1234;
    assert_int_equal (outbox_stage_commit (outbox, &file, err, sizeof err), 0);
}

/* Batches waiting past agent/stall_alarm_s with no Ack: unhealthy, and said why; files held and
 * files not moved are shown. */
static void
test_stalled (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN];
    assert_int_equal (outbox_clear_alarm (fx->dir, NULL, err, sizeof err), 0);
    stage_file (fx->agent, "may.csv", 2);
    char inbox[700], failed[720], held[760];
    snprintf (inbox, sizeof inbox, "%s/inbox", fx->root);
    snprintf (failed, sizeof failed, "%s/failed", inbox);
    snprintf (held, sizeof held, "%s/held.csv", failed);
    assert_int_equal (mkdir (inbox, 0700), 0);
    assert_int_equal (mkdir (failed, 0700), 0);
    FILE *file = fopen (held, "w");
    assert_non_null (file);
    fclose (file);

    int64_t now = (int64_t)time (NULL);
    agent_status_options_t options = {.outbox_dir = fx->dir,
                                      .inbox_dir = inbox,
                                      .collector = "tcp://collector:7700",
                                      .format = AGENT_STATUS_JSON,
                                      .retain_hours = 168,
                                      .stall_alarm_s = 900,
                                      .now = now + 60};
    for (int late = 0; late < 2; late++) {
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream (&text, &size);
        int rc = agent_status_print (&options, out, err, sizeof err);
        fclose (out);
        assert_int_equal (rc, late ? AGENT_STATUS_UNHEALTHY : AGENT_STATUS_HEALTHY);
        json_t *root = json_loads (text, 0, NULL);
        assert_non_null (root);
        json_t *pending = json_object_get (root, "pending");
        assert_int_equal (json_integer_value (json_object_get (pending, "batches")), 3);
        /* apr.csv's batch is not a Batch: its records cannot be counted, and it is said */
        assert_int_equal (json_integer_value (json_object_get (pending, "records")), 6);
        assert_int_equal (json_integer_value (json_object_get (pending, "unreadable_batches")), 1);
        assert_true (json_integer_value (json_object_get (pending, "oldest_age_s")) >= 60);
        assert_string_equal (json_string_value (json_object_get (root, "collector")),
                             "tcp://collector:7700");
        assert_int_equal (json_integer_value (json_object_get (root, "failed_files")), 1);
        json_t *moved = json_object_get (root, "files_not_moved");
        assert_int_equal (json_array_size (moved), 1);
        assert_string_equal (
            json_string_value (json_object_get (json_array_get (moved, 0), "file")), "may.csv");
        assert_int_equal (
            json_integer_value (json_object_get (json_array_get (moved, 0), "records")), 6);
        json_t *problems = json_object_get (root, "problems");
        assert_int_equal (json_array_size (problems), late ? 1 : 0);
        if (late)
            assert_mentions (json_string_value (json_array_get (problems, 0)),
                             "delivery stalled: 3 batches wait");
        json_decref (root);
        free (text);
        options.now = now + 1000;
    }

    /* An Ack just now: not stalled, whatever waits. */
    uint64_t seq = outbox_next_seq (fx->agent) - 1;
    assert_int_equal (outbox_ack (fx->agent, &seq, 1, now + 990, NULL, err, sizeof err), 0);
    options.format = AGENT_STATUS_TABLE;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_int_equal (agent_status_print (&options, out, err, sizeof err), AGENT_STATUS_HEALTHY);
    fclose (out);
    assert_mentions (text, "pending              2 batches, 3 records");
    assert_mentions (text, "last ack             ");
    assert_mentions (text, "(10 s ago)");
    assert_mentions (text, "failed/              1 files held");
    assert_mentions (text, "not moved            may.csv (taken ");
    assert_mentions (text, "healthy              yes");
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_table_with_alarm, setup, teardown),
        cmocka_unit_test_setup_teardown (test_json_with_alarm, setup, teardown),
        cmocka_unit_test_setup_teardown (test_clear_alarm, setup, teardown),
        cmocka_unit_test_setup_teardown (test_no_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stalled, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
