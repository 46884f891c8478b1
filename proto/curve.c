/* curve: loading, checking and writing CURVE certificates, and where plain sockets may go. */
#include "curve.h"
#include "err_text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

struct _curve_client_t {
    zcert_t *own;
    zcert_t *server;
};

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static const char *const ROLE_NAMES[] = {"none", "agent", "query", "collector"};

const char *
curve_role_name (curve_role_t role)
{
    if (role >= CURVE_ROLE_NONE && role <= CURVE_ROLE_COLLECTOR)
        return ROLE_NAMES[role];
    return "none";
}

int
curve_role_parse (const char *text, curve_role_t *role)
{
    for (int r = CURVE_ROLE_AGENT; r <= CURVE_ROLE_COLLECTOR; r++)
        if (text && strcmp (text, ROLE_NAMES[r]) == 0) {
            *role = (curve_role_t)r;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------- plain endpoints */

/* True when text (an address without port or brackets) is a loopback IPv4 or IPv6 address. */
static bool
is_loopback_address (const char *text)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton (AF_INET, text, &v4) == 1)
        return (ntohl (v4.s_addr) >> 24) == 127;
    if (inet_pton (AF_INET6, text, &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK (&v6))
            return true;
        /* ::ffff:127.x.y.z is IPv4 loopback written as IPv6. */
        return IN6_IS_ADDR_V4MAPPED (&v6) && v6.s6_addr[12] == 127;
    }
    return false;
}

bool
curve_endpoint_is_local (const char *endpoint)
{
    if (!endpoint)
        return false;
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    /* A connect endpoint may name its source address first: tcp://source;destination:port. */
    const char *address = endpoint + 6;
    const char *semicolon = strrchr (address, ';');
    if (semicolon)
        address = semicolon + 1;
    const char *colon = strrchr (address, ':');
    if (!colon || colon == address)
        return false;
    size_t length = (size_t)(colon - address);
    if (address[0] == '[') {
        if (length < 3 || address[length - 1] != ']')
            return false;
        address++;
        length -= 2;
    }
    char host[64];
    if (length >= sizeof host)
        return false;
    memcpy (host, address, length);
    host[length] = '\0';
    return is_loopback_address (host);
}

int
curve_check_plain (const char *key, const char *endpoint, char *err, size_t err_len)
{
    if (curve_endpoint_is_local (endpoint))
        return 0;
    return fail (err, err_len,
                 "%s: %.256s is not an ipc://, inproc:// or loopback (127.0.0.1, [::1]) endpoint, "
                 "so it needs CURVE keys: an unauthenticated (plain) socket is allowed only on "
                 "this host (docs/security.md)",
                 key, endpoint ? endpoint : "(none)");
}

/* ---------------------------------------------------------------- metadata */

int
curve_check_bodies (const char *bodies, char *err, size_t err_len)
{
    if (!bodies || !*bodies)
        return fail (err, err_len, "the body list is empty: name at least one body id");
    size_t count = 0;
    const char *start = bodies;
    char seen[CURVE_MAX_BODIES][WIRE_MAX_BODY_ID + 1];
    while (true) {
        const char *comma = strchr (start, ',');
        size_t length = comma ? (size_t)(comma - start) : strlen (start);
        char body[WIRE_MAX_BODY_ID + 2];
        if (length > WIRE_MAX_BODY_ID)
            return fail (err, err_len, "body %zu of the list is longer than %u bytes", count + 1,
                         WIRE_MAX_BODY_ID);
        memcpy (body, start, length);
        body[length] = '\0';
        char reason[WIRE_REASON_LEN];
        if (wire_check_identifier ("body id", body, WIRE_MAX_BODY_ID, reason, sizeof reason))
            return fail (err, err_len, "body %zu of the list \"%.128s\": %s", count + 1, bodies,
                         reason);
        if (count == CURVE_MAX_BODIES)
            return fail (err, err_len, "the body list names more than %d bodies", CURVE_MAX_BODIES);
        for (size_t i = 0; i < count; i++)
            if (strcmp (seen[i], body) == 0)
                return fail (err, err_len, "the body list names %s twice", body);
        strcpy (seen[count++], body);
        if (!comma)
            return 0;
        start = comma + 1;
    }
}

int
curve_cert_check (zcert_t *cert, curve_role_t *role, char *err, size_t err_len)
{
    const char *role_text = zcert_meta (cert, "role");
    curve_role_t parsed;
    if (!role_text || curve_role_parse (role_text, &parsed))
        return fail (err, err_len,
                     "metadata role is %s%.32s%s: it must be agent, query or collector (make "
                     "certificates with totalplace keygen)",
                     role_text ? "\"" : "", role_text ? role_text : "missing",
                     role_text ? "\"" : "");
    const char *name = zcert_meta (cert, "name");
    char reason[WIRE_REASON_LEN];
    if (wire_check_identifier ("metadata name", name ? name : "", WIRE_MAX_AGENT_ID, reason,
                               sizeof reason))
        return fail (err, err_len, "%s", reason);
    const char *bodies = zcert_meta (cert, "bodies");
    if (parsed == CURVE_ROLE_AGENT) {
        char why[CURVE_ERR_LEN];
        if (curve_check_bodies (bodies, why, sizeof why))
            return fail (err, err_len, "metadata bodies: %s", why);
    }
    else if (bodies)
        return fail (err, err_len,
                     "metadata bodies is set, but only an agent publishes for bodies");
    if (role)
        *role = parsed;
    return 0;
}

/* ---------------------------------------------------------------- loading */

static bool
has_secret (zcert_t *cert)
{
    const uint8_t *key = zcert_secret_key (cert);
    for (size_t i = 0; i < 32; i++)
        if (key[i])
            return true;
    return false;
}

/* zcert_load says nothing about why it failed: find out before calling it. */
static int
check_readable (const char *path, const char *what, char *err, size_t err_len)
{
    if (!path || !*path)
        return fail (err, err_len, "no %s certificate file given", what);
    struct stat st;
    if (stat (path, &st) != 0)
        return fail (err, err_len, "%s certificate %s: %s", what, path, strerror (errno));
    if (!S_ISREG (st.st_mode))
        return fail (err, err_len, "%s certificate %s is not a regular file", what, path);
    if (access (path, R_OK) != 0)
        return fail (err, err_len, "%s certificate %s: %s", what, path, strerror (errno));
    return 0;
}

/* A certificate is a few hundred bytes; anything much bigger is not one. */
#define CERT_MAX_BYTES (64u * 1024u)

/* Reads a whole small file into a new NUL-terminated buffer. NULL with a message. */
static char *
read_small (const char *path, const char *what, char *err, size_t err_len)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        fail (err, err_len, "%s certificate %s: %s", what, path, strerror (errno));
        return NULL;
    }
    char *text = malloc (CERT_MAX_BYTES + 1);
    size_t got = text ? fread (text, 1, CERT_MAX_BYTES + 1, file) : 0;
    bool bad = ferror (file) != 0;
    fclose (file);
    if (!text || bad || got > CERT_MAX_BYTES) {
        fail (err, err_len, "%s certificate %s: %s", what, path,
              !text ? "out of memory"
              : bad ? "cannot read it"
                    : "larger than any certificate (64 KiB)");
        free (text);
        return NULL;
    }
    text[got] = '\0';
    return text;
}

/* Reads exactly the file at path (zcert_load would prefer a "_secret" sibling, report nothing
 * about what is wrong, and zconfig_load leaks when a file does not parse): its curve keys and
 * its metadata. */
static zcert_t *
load (const char *path, const char *what, char *err, size_t err_len)
{
    if (check_readable (path, what, err, err_len))
        return NULL;
    char *text = read_small (path, what, err, err_len);
    if (!text)
        return NULL;
    zconfig_t *root = zconfig_str_load (text);
    /* It may hold a secret key: leave no copy behind. */
    explicit_bzero (text, strlen (text));
    free (text);
    const char *public_text = root ? zconfig_get (root, "/curve/public-key", NULL) : NULL;
    const char *secret_text = root ? zconfig_get (root, "/curve/secret-key", NULL) : NULL;
    if (!public_text || strlen (public_text) != CURVE_KEY_TEXT_LEN ||
        (secret_text && strlen (secret_text) != CURVE_KEY_TEXT_LEN)) {
        fail (err, err_len,
              "%s certificate %s is not a CURVE certificate (no curve/public-key of 40 Z85 "
              "characters); make one with totalplace keygen",
              what, path);
        zconfig_destroy (&root);
        return NULL;
    }
    uint8_t public_key[32] = {0}, secret_key[32] = {0};
    if (!zmq_z85_decode (public_key, public_text) ||
        (secret_text && !zmq_z85_decode (secret_key, secret_text))) {
        fail (err, err_len, "%s certificate %s holds a key that is not Z85 text", what, path);
        zconfig_destroy (&root);
        return NULL;
    }
    zcert_t *cert = zcert_new_from (public_key, secret_key);
    zconfig_t *metadata = cert ? zconfig_locate (root, "metadata") : NULL;
    for (zconfig_t *item = metadata ? zconfig_child (metadata) : NULL; item;
         item = zconfig_next (item))
        if (zconfig_name (item) && zconfig_value (item))
            zcert_set_meta (cert, zconfig_name (item), "%s", zconfig_value (item));
    zconfig_destroy (&root);
    if (!cert)
        fail (err, err_len, "out of memory loading %s", path);
    return cert;
}

zcert_t *
curve_load_secret (const char *path, char *err, size_t err_len)
{
    zcert_t *cert = load (path, "secret", err, err_len);
    if (!cert)
        return NULL;
    struct stat st;
    char derived[CURVE_KEY_TEXT_LEN + 1];
    if (!has_secret (cert)) {
        fail (err, err_len,
              "certificate %s holds no secret key: give the NAME" CURVE_SECRET_SUFFIX
              " file totalplace keygen wrote, not the public NAME" CURVE_PUBLIC_SUFFIX,
              path);
        zcert_destroy (&cert);
    }
    /* A hand-edited file could pair a secret with someone else's public key. */
    else if (zmq_curve_public (derived, zcert_secret_txt (cert)) != 0 ||
             strcmp (derived, zcert_public_txt (cert)) != 0) {
        fail (err, err_len, "certificate %s: its public key is not the one of its secret key",
              path);
        zcert_destroy (&cert);
    }
    /* Like ssh with its keys: a secret every local user can read is no longer secret, and one
     * a group may write can be swapped for another key by any of its members. */
    else if (stat (path, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP))) {
        fail (err, err_len,
              "secret certificate %s can be %s (mode %04o): chmod 600 it (or 640 with the "
              "service's group)",
              path,
              st.st_mode & (S_IROTH | S_IWOTH) ? "read or written by every user of this host"
                                               : "written by its group",
              (unsigned)(st.st_mode & 07777));
        zcert_destroy (&cert);
    }
    return cert;
}

zcert_t *
curve_load_public (const char *path, char *err, size_t err_len)
{
    return load (path, "public", err, err_len);
}

/* ---------------------------------------------------------------- writing */

int
curve_keygen (const char *dir, const char *name, curve_role_t role, const char *bodies,
              char *public_path, char *secret_path, size_t path_len, char *err, size_t err_len)
{
    char reason[WIRE_REASON_LEN];
    if (wire_check_identifier ("NAME", name, WIRE_MAX_AGENT_ID, reason, sizeof reason))
        return fail (err, err_len, "%s", reason);
    if (role == CURVE_ROLE_AGENT) {
        char why[CURVE_ERR_LEN];
        if (curve_check_bodies (bodies, why, sizeof why))
            return fail (err, err_len, "--bodies: %s", why);
    }
    else if (bodies)
        return fail (err, err_len, "--bodies applies only to --role agent");
    else if (role != CURVE_ROLE_QUERY && role != CURVE_ROLE_COLLECTOR)
        return fail (err, err_len, "give a role: agent, query or collector");

    const char *folder = dir && *dir ? dir : ".";
    struct stat st;
    if (stat (folder, &st) != 0 || !S_ISDIR (st.st_mode))
        return fail (err, err_len, "%s is not a folder", folder);
    char public_file[4096], secret_file[4096];
    /* zcert_save writes the secret beside the public file, under its name + "_secret". */
    if ((size_t)snprintf (public_file, sizeof public_file, "%s/%s" CURVE_PUBLIC_SUFFIX, folder,
                          name) >= sizeof public_file ||
        (size_t)snprintf (secret_file, sizeof secret_file, "%s/%s" CURVE_SECRET_SUFFIX, folder,
                          name) >= sizeof secret_file)
        return fail (err, err_len, "the folder's path is too long");
    if (access (public_file, F_OK) == 0 || access (secret_file, F_OK) == 0)
        return fail (err, err_len,
                     "%s or its secret already exists: keygen never overwrites a key (give "
                     "another --dir, or move the old pair away; docs/security.md)",
                     public_file);

    zcert_t *cert = zcert_new ();
    if (!cert)
        return fail (err, err_len, "cannot make a key pair (out of memory, or no CURVE support)");
    char created[32];
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    strftime (created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &utc);
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "role", "%s", curve_role_name (role));
    if (role == CURVE_ROLE_AGENT)
        zcert_set_meta (cert, "bodies", "%s", bodies);
    zcert_set_meta (cert, "created", "%s", created);
    int rc = zcert_save (cert, public_file);
    zcert_destroy (&cert);
    if (rc != 0) {
        unlink (public_file);
        unlink (secret_file);
        return fail (err, err_len, "cannot write %s: %s", public_file, strerror (errno));
    }
    /* CZMQ narrows the umask while it writes the secret; make the modes certain either way. */
    if (chmod (secret_file, 0600) != 0 || chmod (public_file, 0644) != 0) {
        int saved = errno;
        unlink (public_file);
        unlink (secret_file);
        return fail (err, err_len, "cannot set the mode of %s: %s", secret_file, strerror (saved));
    }
    if (public_path)
        snprintf (public_path, path_len, "%s", public_file);
    if (secret_path)
        snprintf (secret_path, path_len, "%s", secret_file);
    return 0;
}

/* ---------------------------------------------------------------- clients */

curve_client_t *
curve_client_new (const char *secret_path, const char *server_public_path, curve_role_t want,
                  char *err, size_t err_len)
{
    curve_client_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory loading certificates");
        return NULL;
    }
    char why[CURVE_ERR_LEN];
    curve_role_t role;
    self->own = curve_load_secret (secret_path, err, err_len);
    if (!self->own)
        goto error;
    if (curve_cert_check (self->own, &role, why, sizeof why)) {
        fail (err, err_len, "certificate %s: %s", secret_path, why);
        goto error;
    }
    if (want != CURVE_ROLE_NONE && role != want) {
        fail (err, err_len, "certificate %s has role %s; this needs one with role %s", secret_path,
              curve_role_name (role), curve_role_name (want));
        goto error;
    }
    self->server = curve_load_public (server_public_path, err, err_len);
    if (!self->server)
        goto error;
    role = CURVE_ROLE_NONE;
    if (curve_cert_check (self->server, &role, why, sizeof why) == 0 &&
        role != CURVE_ROLE_COLLECTOR)
        snprintf (why, sizeof why, "its role is %s", curve_role_name (role));
    if (role != CURVE_ROLE_COLLECTOR) {
        fail (err, err_len,
              "collector certificate %s is not a collector's (%s); give the collector's public "
              "NAME" CURVE_PUBLIC_SUFFIX " made with totalplace keygen --role collector",
              server_public_path, why);
        goto error;
    }
    return self;
error:
    curve_client_destroy (&self);
    return NULL;
}

void
curve_client_destroy (curve_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    curve_client_t *self = *self_p;
    zcert_destroy (&self->own);
    zcert_destroy (&self->server);
    free (self);
    *self_p = NULL;
}

void
curve_client_apply (curve_client_t *self, zsock_t *socket)
{
    zcert_apply (self->own, socket);
    zsock_set_curve_serverkey (socket, zcert_public_txt (self->server));
}

zcert_t *
curve_client_cert (curve_client_t *self)
{
    return self->own;
}

zcert_t *
curve_client_server (curve_client_t *self)
{
    return self->server;
}

const char *
curve_client_public_txt (curve_client_t *self)
{
    return zcert_public_txt (self->own);
}
