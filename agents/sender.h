/* sender: delivers the outbox's batches to the collector over a DEALER socket and retires each
 * one (to the outbox's retained batches) only when its Ack arrives. A window of batches is in
 * flight at once; when one is not acknowledged in time the socket is thrown away and a new one
 * connects after an exponential backoff with jitter (ZeroMQ's Lazy Pirate pattern), and
 * everything pending is sent again. A connection that drops (the socket monitor says so, e.g. a
 * collector killed) has what was in flight sent again as soon as it is back, without waiting for
 * the timeout. The collector deduplicates, so re-sending is always safe.
 *
 * Restore checks: every Ack from a collector that reports its store id says where this agent's
 * mark stood before and after the batch; a status request (sent on connecting with nothing to
 * send, then every check_interval_ms while idle) asks for it without a batch. When the store
 * lacks batches acknowledged before (it was restored from a backup, or replaced), the retained
 * ones are sent again and the ones no longer held are an alarm in the outbox and an error log.
 * docs/agent.md. Driven by the caller's loop: poll sender_socket() for input, call
 * sender_receive() when readable and sender_pump() regularly. */
#ifndef TOTALPLACE_SENDER_H
#define TOTALPLACE_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

#include "agent_log.h"
#include "curve.h"
#include "outbox.h"

typedef struct _sender_t sender_t;

typedef struct {
    const char *endpoint;     /* the collector's ingest endpoint */
    size_t window;            /* batches in flight at once, >= 1 */
    uint64_t ack_timeout_ms;  /* a batch unacknowledged this long means the connection is bad */
    uint64_t retry_base_ms;   /* first backoff; doubles per failed attempt */
    uint64_t retry_max_ms;    /* backoff cap */
    const char *rejects_path; /* records the collector rejected are appended here (CSV) */
    curve_client_t *curve;    /* CURVE keys, kept alive by the caller while the sender has them;
                                 NULL: a plain connection (the caller checked it may) */
    agent_log_fn *log;        /* may be NULL */
    void *log_arg;
    const char *agent_id;       /* put in status requests; NULL: none are sent */
    uint64_t check_interval_ms; /* status requests while idle; 0 means 60000 */
    uint64_t retain_hours;      /* acknowledged batches are kept this long; 0: pruned within a
                                   minute (a restore is then only detected, not recovered) */
} sender_options_t;

typedef struct {
    uint64_t sent;                /* batch sends, re-sends included */
    uint64_t acked;               /* batches acknowledged and removed from the outbox */
    uint64_t reconnects;          /* sockets replaced after a timeout */
    uint64_t retry_acks;          /* ACK_RETRY answers (collector could not apply yet) */
    uint64_t malformed_acks;      /* ACK_MALFORMED answers: batch set aside, not re-sent */
    uint64_t records_rejected;    /* records the collector refused, written to rejects_path */
    uint64_t bad_replies;         /* replies that were not a valid Ack */
    uint64_t refused;             /* connections the collector refused at the handshake (unknown or
                                     revoked key, plain against CURVE, too many agents) */
    uint64_t status_requests;     /* status requests sent */
    uint64_t store_changes;       /* times the collector's store id differed from the one known */
    uint64_t regressions;         /* times the store was found lacking acknowledged batches */
    uint64_t requeued;            /* retained batches put back to be sent again */
    uint64_t lost;                /* batches found lost (acknowledged, pruned, not in the store) */
    uint64_t resent_on_reconnect; /* batches sent again at once when a dropped connection came
                                     back (a collector crash), not after the ack timeout */
} sender_counters_t;

/* Creates the sender and connects. The outbox stays the caller's. NULL with err on failure. */
sender_t *sender_new (outbox_t *outbox, const sender_options_t *options, char *err, size_t err_len);
void sender_destroy (sender_t **self_p);

/* The socket to poll for input; it changes after a reconnect, so ask again every loop. NULL while
 * waiting out a backoff. */
zsock_t *sender_socket (sender_t *self);

/* Sends what the window allows and handles ack timeouts. now_ms is a monotonic clock. Returns 0,
 * or -1 with err when the outbox fails. */
int sender_pump (sender_t *self, int64_t now_ms, char *err, size_t err_len);

/* Reads every reply waiting on the socket without blocking and acts on it. When batches were
 * acknowledged it refills the window (as sender_pump does) before retiring them in the outbox (one
 * durable transaction), so that the collector has the next batches while that is synced; then it
 * checks what the Acks say of the collector's store. Returns 0 or -1 with err when the outbox
 * fails. */
int sender_receive (sender_t *self, int64_t now_ms, char *err, size_t err_len);

/* Milliseconds until sender_pump has something to do (a timeout, a backoff, a status request or
 * pruning is due), at most a minute. */
int64_t sender_wait_ms (sender_t *self, int64_t now_ms);

/* True when nothing is pending and, when status requests are sent (agent_id), the collector has
 * answered since the sender started: everything delivered and the store checked. */
bool sender_idle (sender_t *self);

/* Changes endpoint, keys, window, timings and retention (SIGHUP). A new endpoint or new keys
 * reconnect at once. */
int sender_configure (sender_t *self, const sender_options_t *options, char *err, size_t err_len);

void sender_counters (sender_t *self, sender_counters_t *counters);

#endif
