/* curve: CURVE certificates for totalplace's sockets, shared by the collector, the agent and the
 * CLI. A certificate is a CZMQ zcert pair (NAME.cert public, NAME.cert_secret secret) whose
 * metadata says what its holder may do: role "agent" (publish records for the bodies listed in
 * "bodies"), "query" (ask the query endpoint, read-only) or "collector" (the server's own), and
 * "name" (for an agent, its agent id). Also the rule for unauthenticated ("plain") sockets: only
 * on ipc://, inproc:// and loopback tcp:// endpoints. docs/security.md explains the model. */
#ifndef TOTALPLACE_CURVE_H
#define TOTALPLACE_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include <czmq.h>

/* A public key as Z85 text, as ZAP reports it in the User-Id property. */
#define CURVE_KEY_TEXT_LEN 40
/* The most bodies one agent certificate may name. */
#define CURVE_MAX_BODIES 64
/* Room for any message produced here (paths included). */
#define CURVE_ERR_LEN 768
/* Suffixes of the files keygen writes. */
#define CURVE_PUBLIC_SUFFIX ".cert"
#define CURVE_SECRET_SUFFIX ".cert_secret"

typedef enum {
    CURVE_ROLE_NONE = 0,
    CURVE_ROLE_AGENT,     /* may publish Batches for the bodies it lists */
    CURVE_ROLE_QUERY,     /* may ask the query endpoint; read-only */
    CURVE_ROLE_COLLECTOR, /* the collector's own certificate */
} curve_role_t;

/* Name of a role ("agent", "query", "collector"), or "none". */
const char *curve_role_name (curve_role_t role);

/* Parses a role name. Returns 0, or -1 for anything else. */
int curve_role_parse (const char *text, curve_role_t *role);

/* True when endpoint never leaves the host: ipc://, inproc://, or tcp:// whose address (after
 * any "source;" part of a connect endpoint) is in 127.0.0.0/8 or is [::1]. Host names (even
 * localhost), wildcards and interface names are not local: they may resolve elsewhere. */
bool curve_endpoint_is_local (const char *endpoint);

/* Checks that an unauthenticated socket may use endpoint. Returns 0, or -1 with a message naming
 * key and saying what to do instead. */
int curve_check_plain (const char *key, const char *endpoint, char *err, size_t err_len);

/* Checks a body list as certificates hold it ("GB-LAE-BNS,GB-LAE-BNX"): 1 to CURVE_MAX_BODIES
 * body ids (as wire_check_identifier checks them), comma-separated, no duplicates. Returns 0 or
 * -1 with a message. */
int curve_check_bodies (const char *bodies, char *err, size_t err_len);

/* Reads and checks a certificate's metadata: a known role; a name of 1 to 64 characters of
 * A-Z a-z 0-9 . _ - (an agent's name is its agent id); "bodies" valid for an agent and absent
 * otherwise. Returns 0 (role set), or -1 with a message naming what is wrong. */
int curve_cert_check (zcert_t *cert, curve_role_t *role, char *err, size_t err_len);

/* Loads a certificate that must hold a secret key (a party's own: NAME.cert_secret). Refuses a
 * missing or unreadable file, one that is not a certificate, one without a secret key, one that
 * every user of the host may read or write, and one its group may write. Returns NULL with a
 * message naming path. */
zcert_t *curve_load_secret (const char *path, char *err, size_t err_len);

/* Loads a public certificate (NAME.cert). Returns NULL with a message naming path. */
zcert_t *curve_load_public (const char *path, char *err, size_t err_len);

/* Writes a new certificate pair: dir/NAME.cert (public, mode 0644) and dir/NAME.cert_secret
 * (mode 0600), with metadata name, role, bodies (agents only; checked by curve_check_bodies) and
 * created (UTC). Refuses to overwrite either file. On 0 the paths written are copied to
 * public_path and secret_path (either may be NULL). Returns 0 or -1 with a message. */
int curve_keygen (const char *dir, const char *name, curve_role_t role, const char *bodies,
                  char *public_path, char *secret_path, size_t path_len, char *err, size_t err_len);

/* A client's keys: its own certificate (with the secret key) and the collector's public one. */
typedef struct _curve_client_t curve_client_t;

/* Loads both. The own certificate must have role want (CURVE_ROLE_NONE: any); the collector's
 * must be a certificate with role collector. Returns NULL with a message naming the file. */
curve_client_t *curve_client_new (const char *secret_path, const char *server_public_path,
                                  curve_role_t want, char *err, size_t err_len);

/* Frees the keys and sets *self_p to NULL; safe on NULL and twice. */
void curve_client_destroy (curve_client_t **self_p);

/* Makes socket (not yet connected) a CURVE client of the collector with these keys. */
void curve_client_apply (curve_client_t *self, zsock_t *socket);

/* The client's own certificate (for its name, role and bodies); owned by self. */
zcert_t *curve_client_cert (curve_client_t *self);

/* The collector's certificate; owned by self. */
zcert_t *curve_client_server (curve_client_t *self);

/* The client's public key as Z85 text; owned by self. */
const char *curve_client_public_txt (curve_client_t *self);

#endif
