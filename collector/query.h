/* query: the collector's query server. Clients (the totalplace CLI) connect a DEALER (or a REQ) to
 * its ROUTER, on endpoints of its own apart from ingest, and send one frame per question, an
 * encoded Query; each gets one QueryReply frame back. Every answer is read from the shared store
 * in one LMDB read transaction, so it never shows half a batch, and reading never blocks the
 * ingest thread's writes. The server runs as a CZMQ actor in its own thread; this API wraps the
 * actor's pipe. query_answer, the part that turns a frame into a reply, is public so that it can
 * be tested without sockets. */
#ifndef TOTALPLACE_QUERY_H
#define TOTALPLACE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "ingest.h"
#include "metrics_text.h"
#include "places.h"
#include "spending.pb-c.h"
#include "store.h"

typedef struct _query_t query_t;

/* The largest Query answered: a real one is under 1 KiB (every field at its bound). A bigger frame
 * that still fits QUERY_SOCKET_MAX_MESSAGE_BYTES is answered QUERY_BAD_QUERY; libzmq drops the
 * connection of a peer sending more than that. Replies are bounded by WIRE_MAX_MESSAGE_BYTES. */
#define QUERY_MAX_MESSAGE_BYTES        (16u * 1024u)
#define QUERY_SOCKET_MAX_MESSAGE_BYTES (64u * 1024u)

/* Counters since query_new. */
typedef struct {
    uint64_t queries;     /* messages received on the query socket, good or bad */
    uint64_t bad_queries; /* answered QUERY_BAD_QUERY */
    uint64_t not_found;   /* answered QUERY_NOT_FOUND */
    uint64_t errors;      /* answered QUERY_ERROR */
    uint64_t unsent;  /* replies libzmq refused to queue (the client left, or its queue is full) */
    uint64_t refused; /* answered QUERY_ERROR: the key is no longer authorised, or over the limit
                         (counted in errors too) */
    uint64_t over_limit;  /* of those, refused because limits/max_query_clients were connected */
    uint64_t connections; /* clients connected (socket monitor) */
    uint64_t disconnects; /* clients gone, including those libzmq dropped for sending a
                             frame over QUERY_SOCKET_MAX_MESSAGE_BYTES */
    uint64_t handshake_failures; /* clients that failed the handshake: not ZeroMQ, an unknown key
                                    or an agent's */
    metrics_histogram_t answer_seconds; /* time to answer each question read from the store */
} query_counters_t;

/* Starts the server thread over a store the caller opened (and closes after query_destroy). ingest,
 * when not NULL, is asked for its counters in QUERY_STATS answers and must outlive the server.
 * Nothing is bound yet. Returns NULL with a message in err when the thread or its socket cannot be
 * created. */
query_t *query_new (store_t *store, ingest_t *ingest, char *err, size_t err_len);

/* Finishes the question in hand, stops the thread and sets *self_p to NULL; safe on NULL and
 * twice. Replies already queued get a moment to reach their clients. */
void query_destroy (query_t **self_p);

/* Puts the socket under auth (which must outlive the server) before anything is bound: its ZAP
 * handler decides who may connect (CURVE keys with role query, or plain with limits), and a
 * question from a key no longer authorised is answered QUERY_ERROR. A peer that has not finished
 * the handshake within handshake_timeout_ms is dropped. Without this call nothing is checked.
 * Returns 0, or -1 with a message. */
int query_secure (query_t *self, auth_t *auth, int handshake_timeout_ms, char *err, size_t err_len);

/* Binds the query socket to one more endpoint (tcp://, ipc://, inproc://). Returns 0, or -1 with
 * a message naming the endpoint and libzmq's reason. */
int query_bind (query_t *self, const char *endpoint, char *err, size_t err_len);

/* Copies the counters; callable from any thread at any time. */
void query_counters (query_t *self, query_counters_t *counters);

/* Checks a decoded Query before anything is read: `what` is a question; only the fields of that
 * question are set; neighbourhood and body ids are codes as records hold them, service and
 * record_id bounded UTF-8 text without control characters, month "YYYY-MM", fiscal year
 * "YYYY-YY"; enums within their values. Returns 0, or -1 with a reason naming the field. */
int query_validate (const Totalplace__Query *query, char *reason, size_t reason_len);

/* Answers one request frame: decodes it as a Query (a frame over QUERY_MAX_MESSAGE_BYTES or that
 * does not decode is QUERY_BAD_QUERY, as is one query_validate refuses), then reads the answer
 * from store. ingest (may be NULL) and counters (may be NULL) are reported by QUERY_STATS. An
 * answer over WIRE_MAX_MESSAGE_BYTES becomes QUERY_ERROR saying so. On 0, *reply is a malloc'd
 * encoded QueryReply of *reply_size bytes (the caller frees it) and *status its status. Returns
 * -1 only when not even an error reply could be built (out of memory). */
int query_answer (store_t *store, ingest_t *ingest, const query_counters_t *counters,
                  const void *frame, size_t size, uint8_t **reply, size_t *reply_size,
                  Totalplace__QueryStatus *status);

/* query_answer with the collector's places (NULL: none loaded), for QUERY_BREAKDOWN and
 * QUERY_POOLING with a place and QUERY_PLACES; a place it does not hold is QUERY_NOT_FOUND
 * "unknown place NAME". */
int query_answer_places (store_t *store, ingest_t *ingest, const query_counters_t *counters,
                         const places_t *places, const void *frame, size_t size, uint8_t **reply,
                         size_t *reply_size, Totalplace__QueryStatus *status);

/* Hands the server the places to answer with from its next question on (NULL: none), taking
 * *places (set to NULL); the ones it held are freed. For the collector's start and SIGHUP
 * reload. Returns 0, or -1 with a message (then *places is left to the caller). */
int query_set_places (query_t *self, places_t **places, char *err, size_t err_len);

/* Name of a reply status, e.g. "NOT_FOUND". */
const char *query_status_name (Totalplace__QueryStatus status);

#endif
