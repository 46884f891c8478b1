/* sender: at-least-once delivery of outbox batches, with Lazy Pirate reconnects. */
#include "sender.h"
#include "err_text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spending.pb-c.h"
#include "wire.h"

typedef struct {
    uint64_t seq;
    int64_t sent_at;
    uint64_t acked_max; /* the outbox's highest acknowledged seq when it was sent */
} in_flight_t;

/* Pruning by age, and the warning about retention cut short, are looked at this often. */
#define PRUNE_INTERVAL_MS 60000
/* The warning that retention was cut short to make room is said at most this often. */
#define ROOM_WARNING_MS (3600 * 1000)

struct _sender_t {
    outbox_t *outbox;
    char *endpoint;
    char *rejects_path;
    size_t window;
    uint64_t ack_timeout_ms, retry_base_ms, retry_max_ms;
    agent_log_fn *log;
    void *log_arg;
    curve_client_t *curve; /* the caller's; NULL: plain */

    zsock_t *socket;       /* NULL while a backoff runs */
    zsock_t *monitor;      /* PAIR: the socket's handshake events, to see a refusal at once */
    unsigned serial;       /* sockets made so far, to name each monitor's endpoint */
    int64_t backoff_until; /* when the next connection may be made */
    unsigned failures;     /* consecutive timeouts or retry answers */
    uint64_t next_to_send; /* lowest seq not yet sent on this connection */
    in_flight_t *in_flight;
    size_t in_flight_count;
    uint64_t random_state;
    sender_counters_t counters;

    char *agent_id; /* NULL: no status requests */
    uint64_t check_interval_ms;
    uint64_t retain_hours;
    int64_t status_sent_at;    /* the status request in flight; -1: none */
    uint64_t status_acked_max; /* the outbox's highest acknowledged seq when it was sent */
    bool checked;              /* this connection's collector has answered */
    bool old_collector;        /* this connection's collector reports no store id */
    int64_t last_answer;       /* when the collector last answered (Ack or status reply) */
    bool confirmed;            /* a collector has answered since the sender started */
    bool said_old;             /* the warning about a collector without store id was said */
    int64_t next_prune;
    uint64_t said_pruned_for_room;
    int64_t said_room_at; /* -1: never */
    bool dropped;         /* the connection dropped (a collector crash): resend when it is back */
};

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static void say (sender_t *self, agent_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
say (sender_t *self, agent_level_t level, const char *format, ...)
{
    if (!self->log)
        return;
    char message[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    self->log (self->log_arg, level, message);
}

static int
apply_options (sender_t *self, const sender_options_t *options, char *err, size_t err_len)
{
    if (!options->endpoint || !*options->endpoint)
        return fail (err, err_len, "sender: no collector endpoint");
    char *endpoint = strdup (options->endpoint);
    char *rejects = options->rejects_path ? strdup (options->rejects_path) : NULL;
    char *agent_id = options->agent_id && *options->agent_id ? strdup (options->agent_id) : NULL;
    in_flight_t *in_flight =
        realloc (self->in_flight, (options->window ? options->window : 1) * sizeof *in_flight);
    if (!endpoint || (options->rejects_path && !rejects) ||
        (options->agent_id && *options->agent_id && !agent_id) || !in_flight) {
        free (endpoint);
        free (rejects);
        free (agent_id);
        if (in_flight)
            self->in_flight = in_flight;
        return fail (err, err_len, "sender: out of memory");
    }
    self->in_flight = in_flight;
    free (self->endpoint);
    free (self->rejects_path);
    free (self->agent_id);
    self->endpoint = endpoint;
    self->rejects_path = rejects;
    self->agent_id = agent_id;
    self->check_interval_ms = options->check_interval_ms ? options->check_interval_ms : 60000;
    self->retain_hours = options->retain_hours;
    self->window = options->window ? options->window : 1;
    self->ack_timeout_ms = options->ack_timeout_ms ? options->ack_timeout_ms : 10000;
    self->retry_base_ms = options->retry_base_ms ? options->retry_base_ms : 250;
    self->retry_max_ms = options->retry_max_ms ? options->retry_max_ms : 60000;
    self->log = options->log;
    self->log_arg = options->log_arg;
    self->curve = options->curve;
    return 0;
}

static void
close_socket (sender_t *self)
{
    if (self->monitor) {
        zmq_socket_monitor (zsock_resolve (self->socket), NULL, 0);
        zsock_destroy (&self->monitor);
    }
    zsock_destroy (&self->socket);
}

/* Opens a fresh socket: a new identity, so nothing of the old connection's traffic reaches it. */
static int
connect_socket (sender_t *self)
{
    zsock_t *socket = zsock_new (ZMQ_DEALER);
    if (!socket)
        return -1;
    zsock_set_linger (socket, 0); /* unsent batches are safe in the outbox */
    zsock_set_maxmsgsize (socket, (int)WIRE_MAX_MESSAGE_BYTES);
    if (self->curve)
        curve_client_apply (self->curve, socket);
    /* Without this, a refused key would look like a collector that never answers. */
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://totalplace-sender-%p-%u", (void *)self,
              self->serial++);
    zsock_t *monitor = NULL;
    if (zmq_socket_monitor (zsock_resolve (socket), endpoint,
                            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED |
                                ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0 &&
        (monitor = zsock_new (ZMQ_PAIR)) != NULL && zsock_connect (monitor, "%s", endpoint) == 0)
        zsock_set_rcvtimeo (monitor, 0);
    else {
        zmq_socket_monitor (zsock_resolve (socket), NULL, 0);
        zsock_destroy (&monitor);
    }
    if (zsock_connect (socket, "%s", self->endpoint) != 0) {
        if (monitor)
            zmq_socket_monitor (zsock_resolve (socket), NULL, 0);
        zsock_destroy (&monitor);
        zsock_destroy (&socket);
        return -1;
    }
    self->socket = socket;
    self->monitor = monitor;
    self->in_flight_count = 0;
    self->next_to_send = 0;
    self->status_sent_at = -1;
    self->checked = false;
    self->old_collector = false;
    self->dropped = false;
    return 0;
}

/* One line when the last batch of a file is acknowledged: the file's records are in the
 * collector's totals (bar what it rejected, said as warnings and kept in the rejects file). */
static void
on_delivered (void *arg, const char *source, uint64_t first, uint64_t last, int64_t put_at,
              uint64_t records, uint64_t rejected)
{
    sender_t *self = arg;
    char counts[160] = "";
    if (records != UINT64_MAX)
        snprintf (counts, sizeof counts, "%" PRIu64 " records, ", records);
    char rows[96] = "";
    if (rejected != UINT64_MAX)
        snprintf (rows, sizeof rows, ", %" PRIu64 " rows rejected when it was read", rejected);
    int64_t took = put_at > 0 ? (int64_t)time (NULL) - put_at : -1;
    char after[64] = "";
    if (took >= 0)
        snprintf (after, sizeof after, " %" PRId64 " s after it was taken", took);
    say (self, AGENT_LOG_INFO,
         "%s: delivered: %sbatches %" PRIu64 "-%" PRIu64 " all acknowledged by the collector%s%s",
         source, counts, first, last, after, rows);
}

sender_t *
sender_new (outbox_t *outbox, const sender_options_t *options, char *err, size_t err_len)
{
    sender_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "sender: out of memory");
        return NULL;
    }
    self->outbox = outbox;
    self->status_sent_at = -1;
    self->said_room_at = -1;
    self->random_state =
        (uint64_t)getpid () * UINT64_C (0x9E3779B97F4A7C15) ^ (uint64_t)zclock_usecs ();
    if (!self->random_state)
        self->random_state = 1;
    if (apply_options (self, options, err, err_len))
        goto fail;
    if (connect_socket (self)) {
        fail (err, err_len, "cannot connect to %s: %s", self->endpoint, zmq_strerror (errno));
        goto fail;
    }
    outbox_on_delivered (outbox, on_delivered, self);
    /* An alarm left by an earlier run is said again at every start until a person clears it. */
    outbox_alarm_t alarm;
    if (outbox_alarm (outbox, &alarm, err, err_len))
        goto fail;
    if (alarm.lost)
        say (self, AGENT_LOG_ERROR,
             "LOST: %" PRIu64 " batches acknowledged by the collector are missing from its store "
             "and no longer held here (found %.1f hours ago); totalplace-agent status names the "
             "files to drop into the inbox again, then clear the alarm with status --clear-alarm",
             alarm.lost, (double)((int64_t)time (NULL) - alarm.raised_at) / 3600.0);
    return self;
fail:
    sender_destroy (&self);
    return NULL;
}

void
sender_destroy (sender_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sender_t *self = *self_p;
    if (self->outbox)
        outbox_on_delivered (self->outbox, NULL, NULL);
    close_socket (self);
    free (self->endpoint);
    free (self->rejects_path);
    free (self->agent_id);
    free (self->in_flight);
    free (self);
    *self_p = NULL;
}

zsock_t *
sender_socket (sender_t *self)
{
    return self->socket;
}

bool
sender_idle (sender_t *self)
{
    return outbox_count (self->outbox) == 0 && (self->confirmed || !self->agent_id);
}

void
sender_counters (sender_t *self, sender_counters_t *counters)
{
    *counters = self->counters;
}

int
sender_configure (sender_t *self, const sender_options_t *options, char *err, size_t err_len)
{
    bool new_endpoint = strcmp (options->endpoint ? options->endpoint : "", self->endpoint) != 0 ||
                        options->curve != self->curve;
    if (apply_options (self, options, err, err_len))
        return -1;
    if (new_endpoint || self->in_flight_count > self->window) {
        /* Start over on the new terms: whatever was in flight is sent again. */
        close_socket (self);
        self->backoff_until = 0;
        if (connect_socket (self))
            return fail (err, err_len, "cannot connect to %s: %s", self->endpoint,
                         zmq_strerror (errno));
    }
    return 0;
}

static uint64_t
random_next (sender_t *self)
{
    self->random_state ^= self->random_state >> 12;
    self->random_state ^= self->random_state << 25;
    self->random_state ^= self->random_state >> 27;
    return self->random_state * UINT64_C (2685821657736338717);
}

/* Drops the connection and waits base * 2^failures (capped), give or take a quarter, so that
 * many agents cut off together do not all come back in the same instant. */
static void
back_off (sender_t *self, int64_t now_ms, const char *why)
{
    close_socket (self);
    self->in_flight_count = 0;
    self->status_sent_at = -1;
    unsigned shift = self->failures < 20 ? self->failures : 20;
    uint64_t delay = self->retry_base_ms << shift;
    if (delay > self->retry_max_ms)
        delay = self->retry_max_ms;
    delay = delay * (75 + random_next (self) % 51) / 100;
    self->failures++;
    self->backoff_until = now_ms + (int64_t)delay;
    self->counters.reconnects++;
    say (self, AGENT_LOG_WARNING, "%s; reconnecting to %s in %" PRIu64 " ms (attempt %u)", why,
         self->endpoint, delay, self->failures);
}

typedef struct {
    sender_t *self;
    int64_t now_ms;
    bool blocked;
} send_walk_t;

static bool
is_in_flight (sender_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->in_flight_count; i++)
        if (self->in_flight[i].seq == seq)
            return true;
    return false;
}

static int
send_one (void *arg, uint64_t seq, const void *payload, size_t size)
{
    send_walk_t *walk = arg;
    sender_t *self = walk->self;
    if (self->in_flight_count >= self->window)
        return 1;
    /* Requeued batches make the walk start lower again, over batches already in flight. */
    if (is_in_flight (self, seq))
        return 0;
    if (zmq_send (zsock_resolve (self->socket), payload, size, ZMQ_DONTWAIT) < 0) {
        walk->blocked = true; /* the pipe is full; try again next pump */
        return 1;
    }
    self->in_flight[self->in_flight_count++] =
        (in_flight_t){seq, walk->now_ms, outbox_acked_max (self->outbox)};
    self->next_to_send = seq + 1;
    self->counters.sent++;
    return 0;
}

/* The connection dropped, or is up: what was in flight when it dropped (a collector killed, or
 * restarted) is sent again as soon as the collector is back, instead of after the ack timeout.
 * Sending it twice is harmless: the collector deduplicates. */
static void
notice_connection (sender_t *self, bool up)
{
    if (!up) {
        self->dropped = true;
        say (self, AGENT_LOG_DEBUG, "the connection to %s dropped", self->endpoint);
        return;
    }
    if (!self->dropped)
        return;
    self->dropped = false;
    if (self->in_flight_count || self->status_sent_at >= 0) {
        self->counters.resent_on_reconnect += self->in_flight_count;
        say (self, AGENT_LOG_INFO,
             "the collector at %s is back: sending the %zu batches that were in flight again",
             self->endpoint, self->in_flight_count);
    }
    self->in_flight_count = 0;
    self->next_to_send = 0;
    self->status_sent_at = -1;
    self->checked = false;
}

/* Reads the monitor's events; a refused handshake backs off at once, saying why, instead of
 * letting libzmq retry every 100 ms and the batches wait out their ack timeout. Returns true
 * when it backed off. */
static bool
check_refusal (sender_t *self, int64_t now_ms)
{
    zmsg_t *event;
    while (self->monitor && (event = zmsg_recv (self->monitor))) {
        zframe_t *head = zmsg_first (event);
        uint16_t kind = 0;
        uint32_t value = 0;
        if (head && zframe_size (head) >= 6) {
            memcpy (&kind, zframe_data (head), sizeof kind);
            memcpy (&value, zframe_data (head) + 2, sizeof value);
        }
        zmsg_destroy (&event);
        if (kind == ZMQ_EVENT_DISCONNECTED || kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            notice_connection (self, kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
            continue;
        }
        char why[256];
        if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            snprintf (why, sizeof why,
                      "the collector refused this agent's key (ZAP status %u): its public "
                      "certificate must be in the collector's collector/authorised_certs folder "
                      "with role agent",
                      value);
        else if (kind && !self->curve)
            snprintf (why, sizeof why,
                      "the collector refused a plain connection: it wants CURVE keys "
                      "(agent/curve_secret_cert, agent/collector_public_cert)");
        else if (kind)
            snprintf (why, sizeof why,
                      "the handshake with the collector failed (event 0x%x): it may have as many "
                      "agents as it allows (its limits/max_agents), or agent/collector_public_cert "
                      "is not its certificate",
                      kind);
        else
            continue;
        self->counters.refused++;
        back_off (self, now_ms, why);
        return true;
    }
    return false;
}

/* Asks the collector for its store id and this agent's mark, without a batch. */
static void
send_status_request (sender_t *self, int64_t now_ms)
{
    Totalplace__Batch request = TOTALPLACE__BATCH__INIT;
    request.agent_id = self->agent_id;
    request.batch_seq = 0;
    request.status_request = 1;
    uint8_t data[128 + WIRE_MAX_AGENT_ID];
    size_t size = protobuf_c_message_get_packed_size (&request.base);
    if (size > sizeof data)
        return; /* agent ids are bounded far below this */
    protobuf_c_message_pack (&request.base, data);
    if (zmq_send (zsock_resolve (self->socket), data, size, ZMQ_DONTWAIT) < 0)
        return; /* the pipe is full; the next pump tries again */
    self->status_sent_at = now_ms;
    self->status_acked_max = outbox_acked_max (self->outbox);
    self->counters.status_requests++;
}

static bool
status_due (sender_t *self, int64_t now_ms)
{
    return self->agent_id && self->socket && self->status_sent_at < 0 && !self->old_collector &&
           self->in_flight_count == 0 &&
           (!self->checked || now_ms - self->last_answer >= (int64_t)self->check_interval_ms);
}

/* Prunes retained batches past outbox/retain_hours, and says (at most hourly) when the outbox
 * had to cut retention short to take new files. */
static int
tend_retention (sender_t *self, int64_t now_ms, char *err, size_t err_len)
{
    outbox_retained_t retained;
    outbox_retained (self->outbox, &retained);
    int64_t now = (int64_t)time (NULL);
    int64_t retain_s = (int64_t)self->retain_hours * 3600;
    if (retained.pruned_for_room > self->said_pruned_for_room &&
        (self->said_room_at < 0 || now_ms - self->said_room_at >= ROOM_WARNING_MS)) {
        int64_t held = retained.count ? now - retained.oldest_acked_at : 0;
        if (held < retain_s)
            say (self, AGENT_LOG_WARNING,
                 "the outbox pruned %" PRIu64 " acknowledged batches to take new files before "
                 "outbox/retain_hours (%" PRIu64 " h) had passed: retention actually held is "
                 "%.1f h (%zu batches). A restore of the collector's store from a backup older "
                 "than that cannot be recovered automatically; raise outbox/max_mb or "
                 "outbox/max_batches",
                 retained.pruned_for_room - self->said_pruned_for_room, self->retain_hours,
                 (double)held / 3600.0, retained.count);
        self->said_pruned_for_room = retained.pruned_for_room;
        self->said_room_at = now_ms;
    }
    if (now_ms < self->next_prune && self->retain_hours)
        return 0;
    self->next_prune = now_ms + PRUNE_INTERVAL_MS;
    size_t pruned = 0;
    if (outbox_prune (self->outbox, now - retain_s, &pruned, err, err_len))
        return -1;
    if (pruned)
        say (self, AGENT_LOG_DEBUG,
             "pruned %zu acknowledged batches older than outbox/retain_hours (%" PRIu64 " h)",
             pruned, self->retain_hours);
    return 0;
}

int
sender_pump (sender_t *self, int64_t now_ms, char *err, size_t err_len)
{
    if (tend_retention (self, now_ms, err, err_len))
        return -1;
    if (check_refusal (self, now_ms))
        return 0;
    if (!self->socket) {
        if (now_ms < self->backoff_until)
            return 0;
        if (connect_socket (self)) {
            back_off (self, now_ms, "cannot create a socket");
            return 0;
        }
    }
    for (size_t i = 0; i < self->in_flight_count; i++)
        if (now_ms - self->in_flight[i].sent_at >= (int64_t)self->ack_timeout_ms) {
            char why[128];
            snprintf (why, sizeof why, "no Ack for batch %" PRIu64 " within %" PRIu64 " ms",
                      self->in_flight[i].seq, self->ack_timeout_ms);
            back_off (self, now_ms, why);
            return 0;
        }
    if (self->status_sent_at >= 0 &&
        now_ms - self->status_sent_at >= (int64_t)self->ack_timeout_ms) {
        char why[128];
        snprintf (why, sizeof why, "no answer to a status request within %" PRIu64 " ms",
                  self->ack_timeout_ms);
        back_off (self, now_ms, why);
        return 0;
    }
    if (self->in_flight_count < self->window) {
        send_walk_t walk = {self, now_ms, false};
        if (outbox_foreach_from (self->outbox, self->next_to_send, send_one, &walk, err, err_len))
            return -1;
    }
    /* Batches in flight will answer with the store's id and marks; a status request is for when
     * there is nothing to send. */
    if (status_due (self, now_ms))
        send_status_request (self, now_ms);
    return 0;
}

int64_t
sender_wait_ms (sender_t *self, int64_t now_ms)
{
    int64_t deadline = self->retain_hours ? self->next_prune : now_ms + PRUNE_INTERVAL_MS;
    if (!self->socket)
        deadline = self->backoff_until < deadline ? self->backoff_until : deadline;
    else {
        for (size_t i = 0; i < self->in_flight_count; i++) {
            int64_t due = self->in_flight[i].sent_at + (int64_t)self->ack_timeout_ms;
            deadline = due < deadline ? due : deadline;
        }
        if (self->status_sent_at >= 0) {
            int64_t due = self->status_sent_at + (int64_t)self->ack_timeout_ms;
            deadline = due < deadline ? due : deadline;
        }
        else if (self->agent_id && !self->old_collector && self->in_flight_count == 0) {
            int64_t due =
                self->checked ? self->last_answer + (int64_t)self->check_interval_ms : now_ms;
            deadline = due < deadline ? due : deadline;
        }
    }
    return deadline > now_ms ? deadline - now_ms : 0;
}

/* Forgets seq's send; returns the outbox's highest acknowledged seq when it was sent (0 when it
 * was not in flight: an answer to an older send, which then says nothing of a regression). */
static uint64_t
forget_in_flight (sender_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->in_flight_count; i++)
        if (self->in_flight[i].seq == seq) {
            uint64_t acked_max = self->in_flight[i].acked_max;
            self->in_flight[i] = self->in_flight[--self->in_flight_count];
            return acked_max;
        }
    return 0;
}

static void
write_csv_text (FILE *file, const char *text)
{
    fputc ('"', file);
    for (const char *p = text ? text : ""; *p; p++) {
        if (*p == '"')
            fputc ('"', file);
        fputc (*p, file);
    }
    fputc ('"', file);
}

/* Keeps the collector's rejections where a person can find them, before the batch is deleted. */
static int
record_rejections (sender_t *self, const Totalplace__Ack *ack, char *err, size_t err_len)
{
    self->counters.records_rejected += ack->rejected;
    void *payload = NULL;
    size_t size = 0;
    Totalplace__Batch *batch = NULL;
    if (outbox_get (self->outbox, ack->batch_seq, &payload, &size, NULL, 0) == 0)
        batch = (Totalplace__Batch *)wire_decode (&totalplace__batch__descriptor, payload, size,
                                                  NULL, 0);
    free (payload);
    FILE *file = self->rejects_path ? fopen (self->rejects_path, "a") : NULL;
    if (file && ftell (file) == 0)
        fputs ("batch_seq,index,body_id,record_id,revision,reason\n", file);
    for (size_t i = 0; i < ack->n_rejections; i++) {
        const Totalplace__Rejection *rejection = ack->rejections[i];
        const Totalplace__SpendingRecord *record =
            batch && rejection->index < batch->n_records ? batch->records[rejection->index] : NULL;
        say (self, AGENT_LOG_WARNING, "collector rejected batch %" PRIu64 " record %u (%s/%s): %s",
             ack->batch_seq, rejection->index, record ? record->body_id : "?",
             record ? record->record_id : "?", rejection->reason);
        if (file) {
            fprintf (file, "%" PRIu64 ",%u,", ack->batch_seq, rejection->index);
            write_csv_text (file, record ? record->body_id : "");
            fputc (',', file);
            write_csv_text (file, record ? record->record_id : "");
            fprintf (file, ",%u,", record ? record->revision : 0);
            write_csv_text (file, rejection->reason);
            fputc ('\n', file);
        }
    }
    if (batch)
        protobuf_c_message_free_unpacked (&batch->base, NULL);
    if (!file)
        return self->rejects_path ? fail (err, err_len, "cannot open rejects file %s: %s",
                                          self->rejects_path, strerror (errno))
                                  : 0;
    int rc = fflush (file) != 0 || fsync (fileno (file)) != 0;
    if (fclose (file) != 0 || rc)
        return fail (err, err_len, "cannot write rejects file %s: %s", self->rejects_path,
                     strerror (errno));
    return 0;
}

/* Acts on an Ack that is not ACK_APPLIED; status: it answers this connection's status request
 * (batch_seq 0 alone does not say so: a frame that did not decode is answered with 0 too). */
static void
handle_refusal (sender_t *self, const Totalplace__Ack *ack, bool status, int64_t now_ms)
{
    char what[64];
    if (!status)
        snprintf (what, sizeof what, "batch %" PRIu64, ack->batch_seq);
    else
        snprintf (what, sizeof what, "a status request");
    switch (ack->status) {
    case TOTALPLACE__ACK_STATUS__ACK_RETRY: {
        self->counters.retry_acks++;
        char why[320];
        snprintf (why, sizeof why, "collector could not apply %s yet: %.180s", what, ack->error);
        back_off (self, now_ms, why);
        return;
    }
    case TOTALPLACE__ACK_STATUS__ACK_MALFORMED:
    default:
        self->counters.malformed_acks++;
        if (status) {
            /* Asking again would get the same answer: no more on this connection. */
            self->old_collector = true;
            say (self, AGENT_LOG_ERROR,
                 "collector refused a status request (%.200s): restores of its store cannot be "
                 "noticed on this connection",
                 ack->error);
            return;
        }
        say (self, AGENT_LOG_ERROR,
             "collector cannot read %s (%.200s); it will be re-sent after the ack timeout, and "
             "needs a person if this repeats",
             what, ack->error);
        return;
    }
}

/* An applied Ack or status reply, with the outbox's highest acknowledged seq when the batch or
 * request it answers was sent (0: unknown). */
typedef struct {
    Totalplace__Ack *ack;
    uint64_t acked_max;
    bool retire; /* a batch to retire; cleared when a later answer shows the store lacks it */
} held_t;

/* Most applied Acks held back at once; the window is at most this large in practice. */
#define HELD_ACKS 64

/* Keeps the collector's rejections of the held batches, then retires the batches in ONE durable
 * transaction. A batch whose rejections could not be kept stays pending. */
static int
retire_held (sender_t *self, held_t *held, size_t count, char *err, size_t err_len)
{
    uint64_t seqs[HELD_ACKS];
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const Totalplace__Ack *ack = held[i].ack;
        if (!held[i].retire)
            continue; /* a status reply, or a batch the store lacks after all */
        if (ack->n_rejections && record_rejections (self, ack, err, err_len)) {
            rc = -1; /* keep the batch: its rejections must not be lost */
            continue;
        }
        seqs[n++] = ack->batch_seq;
        say (self, AGENT_LOG_DEBUG,
             "batch %" PRIu64 " applied: %u accepted, %u duplicate, %u superseded, %u stale, "
             "%u rejected",
             ack->batch_seq, ack->accepted, ack->duplicate, ack->superseded, ack->stale,
             ack->rejected);
    }
    size_t moved = 0;
    if (n && outbox_ack (self->outbox, seqs, n, (int64_t)time (NULL), &moved, err, err_len))
        return -1;
    self->counters.acked += moved;
    return rc;
}

/* Store ids are identifiers: anything else is not trusted as one. */
static bool
valid_store_id (const char *id)
{
    size_t len = strlen (id);
    if (len == 0 || len > OUTBOX_STORE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_' || id[i] == '.'))
            return false;
    return true;
}

/* Collects the names of the files behind lost seqs for one log line. */
typedef struct {
    char text[400];
    size_t len;
    size_t named, more;
} file_list_t;

static int
list_file (void *arg, const char *source, uint64_t first, uint64_t last, int64_t put_at)
{
    (void)first;
    (void)last;
    (void)put_at;
    file_list_t *list = arg;
    size_t need = strlen (source) + 2;
    if (list->named < 8 && list->len + need < sizeof list->text) {
        list->len += (size_t)snprintf (list->text + list->len, sizeof list->text - list->len,
                                       "%s%s", list->named ? ", " : "", source);
        list->named++;
    }
    else
        list->more++;
    return 0;
}

/* The collector's store lacks this agent's batches first..last: sends the retained ones again,
 * records the rest as lost, and says what happened in one line (two when batches are lost).
 * earlier[0..n_earlier) are the answers read before this one in the same round, not retired
 * yet: one in the range was applied, then lost (a restore in between), so it stays pending. */
static int
recover_range (sender_t *self, uint64_t first, uint64_t last, const char *how, held_t *earlier,
               size_t n_earlier, char *err, size_t err_len)
{
    uint64_t kept_back = 0;
    for (size_t i = 0; i < n_earlier; i++)
        if (earlier[i].retire && earlier[i].ack->batch_seq >= first &&
            earlier[i].ack->batch_seq <= last) {
            earlier[i].retire = false;
            kept_back++;
        }
    outbox_recovery_t found;
    if (outbox_recover (self->outbox, first, last, (int64_t)time (NULL), &found, err, err_len))
        return -1;
    found.requeued += kept_back;
    found.pending -= kept_back;
    if (!found.requeued && !found.newly_lost) {
        say (self, AGENT_LOG_DEBUG,
             "the collector's store lacks batches %" PRIu64 "-%" PRIu64 " (%s): %" PRIu64
             " pending, %" PRIu64 " already known lost",
             first, last, how, found.pending, found.lost);
        return 0;
    }
    self->counters.regressions++;
    self->counters.requeued += found.requeued;
    self->counters.lost += found.newly_lost;
    if (found.requeued && first < self->next_to_send)
        self->next_to_send = first;
    say (self, AGENT_LOG_WARNING,
         "the collector's store lacks batches %" PRIu64 "-%" PRIu64
         " that it had acknowledged (%s): restored from a backup, or replaced? %" PRIu64
         " sent again from the retained batches, %" PRIu64 " still pending, %" PRIu64
         " no longer held here",
         first, last, how, found.requeued, found.pending, found.lost);
    if (!found.newly_lost)
        return 0;
    file_list_t files = {.len = 0};
    files.text[0] = '\0';
    if (outbox_foreach_source (self->outbox, found.first_lost, found.last_lost, list_file, &files,
                               err, err_len))
        return -1;
    char more[64] = "";
    if (files.more)
        snprintf (more, sizeof more, " and %zu more", files.more);
    say (self, AGENT_LOG_ERROR,
         "LOST: %" PRIu64 " batches (seqs %" PRIu64 "-%" PRIu64
         ") are missing from the collector's store and were pruned here (outbox/retain_hours is "
         "%" PRIu64 " h): their records are not in the totals. Drop their files into the inbox "
         "again (harmless: the collector deduplicates): %s%s; then clear the alarm with "
         "totalplace-agent status --clear-alarm. totalplace-agent status lists them",
         found.newly_lost, found.first_lost, found.last_lost, self->retain_hours,
         files.named ? files.text : "(their names are no longer remembered)", more);
    return 0;
}

/* Reads what the applied Ack or status reply held[i] says of the collector's store, and acts on
 * it, before any answer of the round is retired: each one speaks of the store as it was when
 * the collector sent it, after the ones before it and before the ones after it. */
static int
check_store (sender_t *self, held_t *all, size_t i, char *err, size_t err_len)
{
    const held_t *held = &all[i];
    const Totalplace__Ack *ack = held->ack;
    const char *id = ack->store_id ? ack->store_id : "";
    if (!*id) {
        /* A collector that predates store ids: nothing to compare, nothing detected. */
        if (!ack->batch_seq)
            self->old_collector = true;
        if (!self->said_old && self->agent_id)
            say (self, AGENT_LOG_WARNING,
                 "the collector at %s does not report its store id (an older collector): a "
                 "restore of its store from a backup cannot be noticed by this agent",
                 self->endpoint);
        self->said_old = true;
        return 0;
    }
    if (!valid_store_id (id)) {
        self->counters.bad_replies++;
        say (self, AGENT_LOG_WARNING,
             "ignored the store id in an Ack from %s: not 1-%u characters of A-Z a-z 0-9 . _ -",
             self->endpoint, OUTBOX_STORE_ID_MAX);
        return 0;
    }
    const char *known = outbox_store_id (self->outbox);
    bool changed = *known && strcmp (known, id) != 0;
    if (changed) {
        self->counters.store_changes++;
        say (self, AGENT_LOG_WARNING,
             "the collector's store id changed from %s to %s: a different or new store; every "
             "retained batch it lacks is sent again",
             known, id);
    }
    char how[160];
    if (ack->batch_seq > 1 && ack->mark_before < ack->batch_seq - 1) {
        snprintf (how, sizeof how, "store %s: batch %" PRIu64 " was applied on a mark of %" PRIu64,
                  id, ack->batch_seq, ack->mark_before);
        if (recover_range (self, ack->mark_before + 1, ack->batch_seq - 1, how, all, i, err,
                           err_len))
            return -1;
    }
    if (ack->agent_mark < held->acked_max) {
        snprintf (how, sizeof how,
                  "store %s: its mark for this agent is %" PRIu64 ", below %" PRIu64, id,
                  ack->agent_mark, held->acked_max);
        if (recover_range (self, ack->agent_mark + 1, held->acked_max, how, all, i, err, err_len))
            return -1;
    }
    if (strcmp (known, id) != 0) {
        if (!changed)
            say (self, AGENT_LOG_INFO, "the collector's store id is %s", id);
        if (outbox_set_store_id (self->outbox, id, err, err_len))
            return -1;
    }
    return 0;
}

/* Refills the window, checks what the answers say of the store, then retires the held batches in
 * one durable transaction (the collector has its next batches while the fsync runs, not after).
 * Frees the held Acks. */
static int
release_held (sender_t *self, held_t *held, size_t count, int64_t now_ms, char *err, size_t err_len)
{
    int rc = sender_pump (self, now_ms, err, err_len);
    for (size_t i = 0; i < count && rc == 0; i++)
        if (check_store (self, held, i, err, err_len))
            rc = -1;
    if (retire_held (self, held, count, err, err_len))
        rc = -1;
    for (size_t i = 0; i < count; i++)
        protobuf_c_message_free_unpacked (&held[i].ack->base, NULL);
    return rc;
}

/* Reads one reply frame: an Ack, or NULL (counted and said) when it is not one. *got is false
 * when nothing was waiting. */
static Totalplace__Ack *
read_reply (sender_t *self, bool *got)
{
    zmq_msg_t message;
    zmq_msg_init (&message);
    *got = zmq_msg_recv (&message, zsock_resolve (self->socket), ZMQ_DONTWAIT) >= 0;
    if (!*got) {
        zmq_msg_close (&message);
        return NULL;
    }
    bool more = zmq_msg_more (&message);
    Totalplace__Ack *ack = NULL;
    if (!more)
        ack = (Totalplace__Ack *)wire_decode (&totalplace__ack__descriptor, zmq_msg_data (&message),
                                              zmq_msg_size (&message), NULL, 0);
    zmq_msg_close (&message);
    /* Not ours: a reply is one frame. Drain the rest of it. */
    while (more) {
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, zsock_resolve (self->socket), ZMQ_DONTWAIT) < 0)
            more = false;
        else
            more = zmq_msg_more (&message);
        zmq_msg_close (&message);
    }
    if (!ack) {
        self->counters.bad_replies++;
        say (self, AGENT_LOG_WARNING, "ignored a reply from %s that is not an Ack", self->endpoint);
    }
    return ack;
}

int
sender_receive (sender_t *self, int64_t now_ms, char *err, size_t err_len)
{
    held_t held[HELD_ACKS];
    size_t held_count = 0;
    int rc = 0;
    while (self->socket) {
        bool got;
        Totalplace__Ack *ack = read_reply (self, &got);
        if (!got)
            break; /* nothing more waiting */
        if (!ack)
            continue;
        uint64_t acked_max = 0;
        bool status = !ack->batch_seq && self->status_sent_at >= 0;
        if (ack->batch_seq)
            acked_max = forget_in_flight (self, ack->batch_seq);
        else if (status) {
            acked_max = self->status_acked_max;
            self->status_sent_at = -1;
        }
        if (ack->status != TOTALPLACE__ACK_STATUS__ACK_APPLIED) {
            handle_refusal (self, ack, status, now_ms);
            protobuf_c_message_free_unpacked (&ack->base, NULL);
            continue;
        }
        self->failures = 0;
        self->checked = true;
        self->confirmed = true;
        self->last_answer = now_ms;
        held[held_count++] = (held_t){ack, acked_max, ack->batch_seq != 0};
        if (held_count == HELD_ACKS) {
            if (release_held (self, held, held_count, now_ms, err, err_len))
                rc = -1;
            held_count = 0;
        }
    }
    if (held_count && release_held (self, held, held_count, now_ms, err, err_len))
        rc = -1;
    return rc;
}
