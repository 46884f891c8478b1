/* server_thread: what the collector's socket servers (ingest, query) share as CZMQ actors: a
 * thread that leaves signals to the daemon, a monitor of its ROUTER's connections (the connection
 * accounting behind the limits, counters and log lines), the limits applied at a peer's message,
 * and the start-up handshake with the actor's creator. */
#ifndef TOTALPLACE_SERVER_THREAD_H
#define TOTALPLACE_SERVER_THREAD_H

#include <stddef.h>

#include <czmq.h>

#include "auth.h"
#include "log.h"

/* Blocks every asynchronous signal in the calling thread: signals belong to the daemon's main
 * thread, and one landing in a server thread would end zloop's poll. */
void server_thread_block_signals (void);

/* Monitors router's accepts, disconnects and handshakes into a new PAIR socket (*monitor) that
 * never drops an event, since the connection limits are sums of events. name ("ingest", "query")
 * goes into the inproc endpoint and messages. Returns 0, or -1 with err. */
int server_thread_monitor (zsock_t *router, const char *name, zsock_t **monitor, char *err,
                           size_t err_len);

/* One server's view of its peers, fed by its monitor. */
typedef struct {
    const char *name;  /* "ingest", "query": the log component */
    const char *peers; /* "peer", "client": what a connection is called in log lines */
    curve_role_t role; /* whose limit the connections count towards */
    auth_t *auth;      /* NULL: no accounting (nothing is limited) */
    zsock_t *monitor;
    uint64_t connections, disconnects, handshake_failures; /* since start */
    log_limit_t disconnect_log, handshake_log;
} server_peers_t;

/* Sets up peers for a server named name ("ingest") whose connections are called what ("peer"). */
void server_peers_init (server_peers_t *peers, const char *name, const char *what,
                        curve_role_t role, zsock_t *monitor);

/* Reads every event waiting on the monitor without blocking: connections opened and closed go to
 * auth's accounting, the counters move, a disconnect is logged at debug and a failed handshake at
 * warning, in words (rate-limited). Returns how many events were read. */
size_t server_peers_read (server_peers_t *peers);

/* Decides whether the message's sender may be served now (auth_peer_admit), reading the monitor
 * first when its connection is not known yet (the message can be read before the event that
 * opened its connection). Returns true to serve it; false when over the limit, with reason saying
 * so. Always true without auth. */
bool server_peers_admit (server_peers_t *peers, zmq_msg_t *message, char *reason,
                         size_t reason_len);

/* A failed handshake's monitor event (kind ZMQ_EVENT_HANDSHAKE_FAILED_*, its value) in words. */
void server_thread_describe_handshake (unsigned kind, uint32_t value, char *text, size_t size);

/* Answers the actor's creator: "OK" when started, else the error text. After a failed start the
 * creator destroys the actor at once, so this then waits for its $TERM before returning. */
void server_thread_report_start (zsock_t *pipe, bool started, const char *err);

#endif
