/* metrics_server: the daemons' Prometheus endpoint, GET /metrics over HTTP (libmicrohttpd, in a
 * thread of its own). Each scrape calls the daemon's render function, which reads counters the
 * daemon's threads publish under their own short locks: a scrape never waits for a store
 * transaction, and the daemon never waits for a scrape. Off unless an endpoint is configured;
 * loopback only unless the operator allows others on purpose (docs/security.md). */
#ifndef TOTALPLACE_METRICS_SERVER_H
#define TOTALPLACE_METRICS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics_text.h"

typedef struct _metrics_server_t metrics_server_t;

/* Appends the daemon's samples to text; called from the server's thread, one scrape at a time. */
typedef void (metrics_render_fn) (void *arg, metrics_text_t *text);

/* Checks an endpoint "HOST:PORT": HOST a numeric IPv4 address or an IPv6 one in brackets, PORT
 * 0-65535 (0: any free port). An address outside 127.0.0.0/8 and ::1 is refused unless
 * allow_remote. key and allow_key name the two settings in the message. Returns 0, or -1 with a
 * message. */
int metrics_endpoint_check (const char *key, const char *allow_key, const char *endpoint,
                            bool allow_remote, char *err, size_t err_len);

/* Listens on endpoint (checked as above) and serves GET /metrics with render. Returns NULL with a
 * message when the endpoint is refused or cannot be bound. Start it after the daemon has set its
 * signal mask: the thread inherits it. */
metrics_server_t *metrics_server_new (const char *key, const char *allow_key, const char *endpoint,
                                      bool allow_remote, metrics_render_fn *render, void *arg,
                                      char *err, size_t err_len);

/* Stops serving (a scrape in progress finishes first) and sets *self_p to NULL; safe on NULL. */
void metrics_server_destroy (metrics_server_t **self_p);

/* The URL scraped, with the port actually bound, e.g. "http://127.0.0.1:9464/metrics". */
const char *metrics_server_url (const metrics_server_t *self);

#endif
