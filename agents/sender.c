/* sender: at-least-once delivery of outbox batches, with Lazy Pirate reconnects. */
#include "sender.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spending.pb-c.h"
#include "wire.h"

typedef struct {
    uint64_t seq;
    int64_t sent_at;
} in_flight_t;

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
};

static int fail (char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
fail (char *err, size_t err_len, const char *format, ...)
{
    if (err && err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, err_len, format, args);
        va_end (args);
    }
    return -1;
}

static void say (sender_t *self, agent_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
say (sender_t *self, agent_level_t level, const char *format, ...)
{
    if (!self->log)
        return;
    char message[512];
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
    in_flight_t *in_flight =
        realloc (self->in_flight, (options->window ? options->window : 1) * sizeof *in_flight);
    if (!endpoint || (options->rejects_path && !rejects) || !in_flight) {
        free (endpoint);
        free (rejects);
        if (in_flight)
            self->in_flight = in_flight;
        return fail (err, err_len, "sender: out of memory");
    }
    self->in_flight = in_flight;
    free (self->endpoint);
    free (self->rejects_path);
    self->endpoint = endpoint;
    self->rejects_path = rejects;
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
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0 &&
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
    return 0;
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
    close_socket (self);
    free (self->endpoint);
    free (self->rejects_path);
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
    return outbox_count (self->outbox) == 0;
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

static int
send_one (void *arg, uint64_t seq, const void *payload, size_t size)
{
    send_walk_t *walk = arg;
    sender_t *self = walk->self;
    if (self->in_flight_count >= self->window)
        return 1;
    if (zmq_send (zsock_resolve (self->socket), payload, size, ZMQ_DONTWAIT) < 0) {
        walk->blocked = true; /* the pipe is full; try again next pump */
        return 1;
    }
    self->in_flight[self->in_flight_count++] = (in_flight_t){seq, walk->now_ms};
    self->next_to_send = seq + 1;
    self->counters.sent++;
    return 0;
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

int
sender_pump (sender_t *self, int64_t now_ms, char *err, size_t err_len)
{
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
    if (self->in_flight_count >= self->window)
        return 0;
    send_walk_t walk = {self, now_ms, false};
    return outbox_foreach_from (self->outbox, self->next_to_send, send_one, &walk, err, err_len);
}

int64_t
sender_wait_ms (sender_t *self, int64_t now_ms)
{
    if (!self->socket)
        return self->backoff_until > now_ms ? self->backoff_until - now_ms : 0;
    if (self->in_flight_count == 0)
        return -1;
    int64_t earliest = self->in_flight[0].sent_at;
    for (size_t i = 1; i < self->in_flight_count; i++)
        if (self->in_flight[i].sent_at < earliest)
            earliest = self->in_flight[i].sent_at;
    int64_t wait = earliest + (int64_t)self->ack_timeout_ms - now_ms;
    return wait > 0 ? wait : 0;
}

static void
forget_in_flight (sender_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->in_flight_count; i++)
        if (self->in_flight[i].seq == seq) {
            self->in_flight[i] = self->in_flight[--self->in_flight_count];
            return;
        }
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

/* Keeps the rejections of an applied batch and deletes it from the outbox (durably). */
static int
finish_applied (sender_t *self, const Totalplace__Ack *ack, char *err, size_t err_len)
{
    if (ack->n_rejections && record_rejections (self, ack, err, err_len))
        return -1; /* keep the batch: its rejections must not be lost */
    bool existed = false;
    if (outbox_remove (self->outbox, ack->batch_seq, &existed, err, err_len))
        return -1;
    if (existed)
        self->counters.acked++;
    say (self, AGENT_LOG_DEBUG,
         "batch %" PRIu64 " applied: %u accepted, %u duplicate, %u superseded, %u stale, "
         "%u rejected",
         ack->batch_seq, ack->accepted, ack->duplicate, ack->superseded, ack->stale, ack->rejected);
    return 0;
}

/* Acts on an Ack that is not ACK_APPLIED. */
static void
handle_refusal (sender_t *self, const Totalplace__Ack *ack, int64_t now_ms)
{
    switch (ack->status) {
    case TOTALPLACE__ACK_STATUS__ACK_RETRY: {
        self->counters.retry_acks++;
        char why[256];
        snprintf (why, sizeof why, "collector could not apply batch %" PRIu64 " yet: %.180s",
                  ack->batch_seq, ack->error);
        back_off (self, now_ms, why);
        return;
    }
    case TOTALPLACE__ACK_STATUS__ACK_MALFORMED:
    default:
        self->counters.malformed_acks++;
        say (self, AGENT_LOG_ERROR,
             "collector cannot read batch %" PRIu64 " (%.200s); it will be re-sent after the ack "
             "timeout, and needs a person if this repeats",
             ack->batch_seq, ack->error);
        return;
    }
}

/* Most applied Acks held back at once; the window is at most this large in practice. */
#define HELD_ACKS 64

/* Refills the window, then deletes the held batches: each delete is an fsync, and the collector
 * should have its next batches while they run, not after. Frees the held Acks. */
static int
release_held (sender_t *self, Totalplace__Ack **held, size_t count, int64_t now_ms, char *err,
              size_t err_len)
{
    int rc = sender_pump (self, now_ms, err, err_len);
    for (size_t i = 0; i < count; i++) {
        if (finish_applied (self, held[i], err, err_len))
            rc = -1;
        protobuf_c_message_free_unpacked (&held[i]->base, NULL);
    }
    return rc;
}

int
sender_receive (sender_t *self, int64_t now_ms, char *err, size_t err_len)
{
    Totalplace__Ack *held[HELD_ACKS];
    size_t held_count = 0;
    int rc = 0;
    while (self->socket) {
        zmq_msg_t message;
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, zsock_resolve (self->socket), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&message);
            break; /* nothing more waiting */
        }
        bool more = zmq_msg_more (&message);
        Totalplace__Ack *ack = NULL;
        if (!more)
            ack = (Totalplace__Ack *)wire_decode (&totalplace__ack__descriptor,
                                                  zmq_msg_data (&message), zmq_msg_size (&message),
                                                  NULL, 0);
        zmq_msg_close (&message);
        if (more) {
            /* Not ours: a reply is one frame. Drain the rest of it. */
            zsock_t *socket = self->socket;
            while (more) {
                zmq_msg_init (&message);
                if (zmq_msg_recv (&message, zsock_resolve (socket), ZMQ_DONTWAIT) < 0)
                    more = false;
                else
                    more = zmq_msg_more (&message);
                zmq_msg_close (&message);
            }
        }
        if (!ack) {
            self->counters.bad_replies++;
            say (self, AGENT_LOG_WARNING, "ignored a reply from %s that is not an Ack",
                 self->endpoint);
            continue;
        }
        forget_in_flight (self, ack->batch_seq);
        if (ack->status != TOTALPLACE__ACK_STATUS__ACK_APPLIED) {
            handle_refusal (self, ack, now_ms);
            protobuf_c_message_free_unpacked (&ack->base, NULL);
            continue;
        }
        self->failures = 0;
        held[held_count++] = ack;
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
