/* auth: who may talk to the collector. Holds the collector's own CURVE certificate and the folder
 * of authorised public certificates (each naming a role, and for an agent the bodies it may
 * publish for), and runs the process's ZAP handler (a CZMQ actor on inproc://zeromq.zap.01) that
 * libzmq asks about every connection to the ingest and query sockets: an unknown key, or a key
 * of the wrong role for the socket, is refused before any message is read, as is any connection
 * beyond the limits of connected agents and query clients. In plain mode (no CURVE, local
 * endpoints only) the handler still enforces the limits. The ingest and query servers ask it,
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
    size_t agents;          /* authorised certificates with role agent */
    size_t query_users;     /* with role query */
    size_t skipped_secrets; /* *_secret files found in the folder and ignored */
} auth_summary_t;

typedef struct {
    uint64_t allowed;        /* connections let through */
    uint64_t unknown_key;    /* refused: the key is not in the folder */
    uint64_t wrong_role;     /* refused: an agent's key on the query socket, or the reverse */
    uint64_t over_limit;     /* refused: max_agents or max_query_clients already connected */
    uint64_t bad_requests;   /* ZAP requests libzmq should never send (answered 500) */
    size_t agents_connected; /* authenticated ingest connections open now */
    size_t query_connected;  /* authenticated query connections open now */
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

/* Tells the authority about a socket monitor event of role's server socket, so that it knows how
 * many authenticated peers are connected: pass every ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
 * ZMQ_EVENT_HANDSHAKE_FAILED_* and ZMQ_EVENT_DISCONNECTED (others are ignored). The monitor must
 * not drop events (an unbounded receive queue). Any thread. */
void auth_peer_event (auth_t *self, curve_role_t role, unsigned event);

/* Copies the counters. Any thread. */
void auth_counters (auth_t *self, auth_counters_t *counters);

#endif
