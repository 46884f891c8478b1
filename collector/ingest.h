/* ingest: the collector's ingest server. Agents connect a DEALER to its ROUTER and send one frame
 * per message, an encoded Batch; each gets one Ack frame back, sent only after the batch has
 * been committed to the store. Batches waiting together are applied in one store transaction
 * (group commit), so throughput grows with load. Every Ack carries the store's id, and an applied
 * batch's Ack its agent's mark before and after it; a status request (a Batch with
 * status_request, batch_seq 0, no records) is answered in its turn with the agent's mark and
 * applies nothing (docs/protocol.md). The server runs as a CZMQ actor in its own thread; this API
 * wraps the actor's pipe. */
#ifndef TOTALPLACE_INGEST_H
#define TOTALPLACE_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "collector_config.h"
#include "metrics_text.h"
#include "store.h"

typedef struct _ingest_t ingest_t;

/* Every frame the ingest socket accepts is bounded by this, well above WIRE_MAX_MESSAGE_BYTES so
 * that a frame just over the wire limit is still read and answered with ACK_MALFORMED; libzmq
 * drops the connection of a peer sending more. */
#define INGEST_SOCKET_MAX_MESSAGE_BYTES (WIRE_MAX_MESSAGE_BYTES + 64u * 1024u)

/* Counters since ingest_new, plus the store's persistent counters. */
typedef struct {
    uint64_t frames;                /* messages received on the ingest socket, good or bad */
    uint64_t batches;               /* batches applied and acknowledged ACK_APPLIED */
    uint64_t records;               /* records in those batches */
    uint64_t status_requests;       /* status requests answered with the agent's mark (no batch) */
    uint64_t malformed;             /* messages answered ACK_MALFORMED (oversized ones included) */
    uint64_t oversized;             /* of those, frames over WIRE_MAX_MESSAGE_BYTES */
    uint64_t retry_acks;            /* batches (and status requests) answered ACK_RETRY because
                                       the store failed */
    uint64_t groups;                /* store transactions committed */
    uint64_t largest_group;         /* most batches in one committed transaction */
    uint64_t largest_group_records; /* most records in one committed transaction */
    uint64_t unsent_acks;           /* acks libzmq refused to queue (peer gone or its queue full) */
    uint64_t over_limit;            /* batches answered ACK_RETRY: limits/max_agents agents were
                                       connected (counted in retry_acks too) */
    uint64_t connections;           /* peers connected (socket monitor) */
    uint64_t disconnects;           /* peers disconnected, including those libzmq dropped for
                                       sending a frame over INGEST_SOCKET_MAX_MESSAGE_BYTES */
    uint64_t handshake_failures;    /* peers that failed the ZMTP handshake (not ZeroMQ, a bad
                                       or unknown key) */
    uint64_t unauthorised_records;  /* records rejected: the sender's certificate does not list
                                       their body */
    uint64_t unauthorised_batches;  /* batches refused whole: the key is no longer authorised
                                       (ACK_RETRY) or the batch names another agent (MALFORMED) */
    metrics_histogram_t commit_seconds; /* duration of each committed group's store_apply */
    store_counters_t store;             /* from store_counters, read when asked */
} ingest_counters_t;

/* Starts the server thread with a store the caller opened (and closes after ingest_destroy). It
 * takes the group caps, the batch limits, the handshake timeout and the log level from config;
 * nothing is bound yet. Returns NULL with a message in err when the thread or its sockets cannot
 * be created. */
ingest_t *ingest_new (store_t *store, const collector_config_t *config, char *err, size_t err_len);

/* Finishes the group in progress, then commits and acknowledges what is already waiting on the
 * socket (for at most a few seconds), stops the thread and sets *self_p to NULL. Acks already
 * queued get a second to reach their peers. Safe on NULL. */
void ingest_destroy (ingest_t **self_p);

/* Puts the socket under auth (which must outlive the server) before anything is bound: its ZAP
 * handler decides who may connect (CURVE keys, or plain with limits), and each batch is checked
 * against its sender's permit: a key no longer authorised gets ACK_RETRY, a batch naming another
 * agent id than the certificate's ACK_MALFORMED, and every record of a body the certificate
 * does not list is rejected with a reason while the rest of the batch is applied. Without this
 * call nothing is checked (the unit tests' in-process servers). Returns 0, or -1 with a
 * message. */
int ingest_secure (ingest_t *self, auth_t *auth, char *err, size_t err_len);

/* Commits and acknowledges what is already waiting on the socket (for at most a few seconds) and
 * returns; the server goes on. The collector calls it at SIGTERM, so that it can say what it
 * drained before ingest_destroy. */
void ingest_drain (ingest_t *self);

/* Binds the ingest socket to one more endpoint (tcp://, ipc://, inproc://). Returns 0, or -1 with
 * a message naming the endpoint and libzmq's reason. */
int ingest_bind (ingest_t *self, const char *endpoint, char *err, size_t err_len);

/* Applies what may change while running: group caps and batch limits. Takes effect
 * from the next group. Callable from any thread. */
void ingest_configure (ingest_t *self, const collector_config_t *config);

/* Copies the counters; callable from any thread at any time (it never waits for a group to
 * commit). Returns 0, or STORE_ERR with a message when the store's counters cannot be read (the
 * in-memory counters are filled anyway). */
int ingest_counters (ingest_t *self, ingest_counters_t *counters, char *err, size_t err_len);

#endif
