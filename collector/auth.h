/* auth: who may talk to the collector. Holds the collector's own CURVE certificate and the folder
 * of authorised public certificates (each naming a role, and for an agent the bodies it may
 * publish for), and runs the process's ZAP handler (a CZMQ actor on inproc://zeromq.zap.01) that
 * libzmq asks about every connection to the ingest and query sockets: an unknown key, or a key
 * of the wrong role for the socket, is refused before any message is read. The limits of connected
 * agents and query clients are applied at each peer's first message (auth_peer_admit), so that
 * the servers can answer the refusal in words; they hold in plain mode (no CURVE, local endpoints
 * only) too. The ingest and query servers ask it,
 * per message, what the sender's key may do (auth_permit), so that a reload (key rotation, a
 * revoked key, a changed body list) applies at once, even to connections already open. */
#ifndef TOTALPLACE_AUTH_H
#define TOTALPLACE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

#include "curve.h"

typedef struct _auth_t auth_t;
typedef struct _auth_permit_t auth_permit_t;

/* The ZAP domains the servers set on their sockets. */
#define AUTH_DOMAIN_INGEST "totalplace-ingest"
#define AUTH_DOMAIN_QUERY  "totalplace-query"

typedef struct {
    bool plain;                 /* no CURVE: peers are not authenticated (local endpoints only) */
    const char *secret_cert;    /* CURVE: the collector's own secret certificate */
    const char *authorised_dir; /* CURVE: folder of the authorised *.cert public certificates */
    size_t max_agents;          /* connected agents (ingest connections) at once, >= 1 */
    size_t max_query_clients;   /* connected query clients at once, >= 1 */
} auth_options_t;

/* What was loaded (auth_check, auth_summary). */
typedef struct {
    size_t agents;      /* authorised certificates with role agent */
    size_t query_users; /* with role query */
} auth_summary_t;

typedef struct {
    uint64_t allowed;         /* connections let through */
    uint64_t unknown_key;     /* refused: the key is not in the folder */
    uint64_t wrong_role;      /* refused: an agent's key on the query socket, or the reverse */
    uint64_t over_limit;      /* messages refused: max_agents or max_query_clients counted */
    uint64_t bad_requests;    /* ZAP requests libzmq should never send (answered 500) */
    size_t agents_connected;  /* agents counted now (authenticated, spoken, still connected) */
    size_t query_connected;   /* query clients counted now */
    size_t agent_connections; /* ingest connections open now, handshaking or junk included */
    size_t query_connections; /* query connections open now */
} auth_counters_t;

/* Reads everything options name, as auth_new would, and starts nothing: the collector's --check.
 * Returns 0 (summary filled when not NULL), or -1 with a message naming the file at fault. */
int auth_check (const auth_options_t *options, auth_summary_t *summary, char *err, size_t err_len);

/* Loads the certificates (CURVE) and starts the ZAP handler. Call before any socket that uses
 * it is bound; only one may run per process (libzmq allows one ZAP handler per context).
 * Returns NULL with a message naming the file at fault, or saying that another handler runs. */
auth_t *auth_new (const auth_options_t *options, char *err, size_t err_len);

/* Stops the ZAP handler, frees everything and sets *self_p to NULL; safe on NULL and twice.
 * Destroy it after the sockets that use it. */
void auth_destroy (auth_t **self_p);

/* Reads the folder of authorised certificates again (SIGHUP: rotation, revocation, new agents,
 * changed body lists); the collector's own certificate is kept. On error the loaded set stays
 * as it was. Returns 0 (summary filled when not NULL) or -1 with a message. Any thread. */
int auth_reload (auth_t *self, auth_summary_t *summary, char *err, size_t err_len);

/* What is loaded now (all zero in plain mode). Any thread. */
void auth_summary (auth_t *self, auth_summary_t *summary);

/* Changes the connection limits from the next handshake. Any thread. */
void auth_set_limits (auth_t *self, size_t max_agents, size_t max_query_clients);

/* True when peers are not authenticated (plain mode). */
bool auth_is_plain (auth_t *self);

/* Makes a server socket (not yet bound) use this authority for role's connections: the ZAP
 * domain, and with CURVE the server's keys. Call from the thread that owns the socket. Returns
 * 0, or -1 with a message for a role other than agent or query. */
int auth_secure (auth_t *self, zsock_t *socket, curve_role_t role, char *err, size_t err_len);

/* What the holder of user_id (the Z85 public key libzmq reports as a message's "User-Id"
 * property) may do in role now: a new copy (destroy it), or NULL when the key is not (or no
 * longer) authorised for that role. Plain mode: a permit named "plain" that allows every body.
 * Any thread. */
auth_permit_t *auth_permit (auth_t *self, const char *user_id, curve_role_t role);

/* Frees a permit and sets *self_p to NULL; safe on NULL and twice. */
void auth_permit_destroy (auth_permit_t **self_p);

/* The certificate's name: for an agent, the agent id its batches must carry. */
const char *auth_permit_name (const auth_permit_t *self);

/* The bodies it may publish for, as the certificate lists them ("*" in plain mode). */
const char *auth_permit_bodies (const auth_permit_t *self);

/* True when it may publish records of body_id. */
bool auth_permit_allows_body (const auth_permit_t *self, const char *body_id);

/* True for a plain-mode permit (no one was authenticated). */
bool auth_permit_is_plain (const auth_permit_t *self);

/* Tells the authority about a socket monitor event of role's server socket: pass every
 * ZMQ_EVENT_ACCEPTED and ZMQ_EVENT_DISCONNECTED with its value, the connection's fd (others are
 * ignored). The monitor must not drop events (an unbounded receive queue). Any thread. */
void auth_connection_event (auth_t *self, curve_role_t role, unsigned event, int fd);

typedef enum {
    AUTH_PEER_ADMITTED,   /* counted now, or already: serve it */
    AUTH_PEER_OVER_LIMIT, /* its role's limit is reached: refuse the message (reason says so) */
    AUTH_PEER_UNKNOWN,    /* fd is not an open connection of role as far as the monitor said:
                             read the monitor's pending events and ask again; still unknown, the
                             message came from a connection already gone (or inproc, fd -1) and
                             nothing is counted */
} auth_admission_t;

/* A message arrived on connection fd (ZMQ_SRCFD) of role: its peer counts towards the limit from
 * its first message until its disconnect. Over the limit, reason (when not NULL) says how many are
 * connected and which key sets the limit; a later message from the same connection is asked
 * again (room may have been made). Any thread. */
auth_admission_t auth_peer_admit (auth_t *self, curve_role_t role, int fd, char *reason,
                                  size_t reason_len);

/* Copies the counters. Any thread. */
void auth_counters (auth_t *self, auth_counters_t *counters);

#endif
