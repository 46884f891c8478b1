/* server_thread: what the collector's socket servers (ingest, query) share as CZMQ actors: a
 * thread that leaves signals to the daemon, a monitor of its ROUTER's connections, and the
 * start-up handshake with the actor's creator. */
#ifndef TOTALPLACE_SERVER_THREAD_H
#define TOTALPLACE_SERVER_THREAD_H

#include <stddef.h>

#include <czmq.h>

/* Blocks every asynchronous signal in the calling thread: signals belong to the daemon's main
 * thread, and one landing in a server thread would end zloop's poll. */
void server_thread_block_signals (void);

/* Monitors router's accepts, disconnects and handshakes into a new PAIR socket (*monitor) that
 * never drops an event, since the connection limits are sums of events. name ("ingest", "query")
 * goes into the inproc endpoint and messages. Returns 0, or -1 with err. */
int server_thread_monitor (zsock_t *router, const char *name, zsock_t **monitor, char *err,
                           size_t err_len);

/* Answers the actor's creator: "OK" when started, else the error text. After a failed start the
 * creator destroys the actor at once, so this then waits for its $TERM before returning. */
void server_thread_report_start (zsock_t *pipe, bool started, const char *err);

#endif
