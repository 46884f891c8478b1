/* auth: the collector's certificates, its ZAP handler, and what each key may do.
 *
 * The ZAP handler is a CZMQ actor with a REP socket on inproc://zeromq.zap.01 (RFC 27). libzmq
 * sends it one request per handshake on a socket whose ZAP domain is set; the answer 200 lets the
 * peer in with the key as its User-Id, 400 refuses it (authentication failed). The connection
 * limits are applied at a peer's first message (auth_peer_admit), where the refusal can be
 * answered in words. Everything shared (the keyring, the limits, the connected peers,
 * the counters) sits behind one mutex, held for microseconds by the handler, by the servers'
 * threads asking for permits and reporting monitor events, and by a reload swapping keyrings. */
#include "err_text.h"
#include "auth.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "wire.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

typedef struct {
    char key[CURVE_KEY_TEXT_LEN + 1];
    char *name;
    char *bodies; /* NULL unless role agent */
    char *file;
    curve_role_t role;
} entry_t;

typedef struct {
    entry_t *entries;
    size_t count;
    zhashx_t *index; /* key text -> entry_t *, not owned */
    auth_summary_t summary;
} keyring_t;

struct _auth_permit_t {
    char *name;
    char *bodies;
    char **body_list; /* points into a copy of bodies */
    char *body_storage;
    size_t body_count;
    bool plain;
};

/* Connections by file descriptor, as the servers' monitors report them (ZMQ_EVENT_ACCEPTED and
 * ZMQ_EVENT_DISCONNECTED carry the connection's fd) and as messages show them (ZMQ_SRCFD). A
 * peer counts towards its role's limit from its first message, which proves its handshake and
 * its key, until its connection's disconnect: libzmq 4.3's handshake events carry no fd, so they
 * cannot be matched to a disconnect, and connections that never finish the handshake (junk bytes,
 * ZMTP 1.0 greetings) are reported disconnected without a handshake event. Counting by fd cannot
 * drift: a connection is counted at most once and uncounted only by its own disconnect. */
enum {
    FD_OPEN_AGENT = 1, /* accepted on the ingest socket */
    FD_OPEN_QUERY = 2, /* accepted on the query socket */
    FD_COUNTED = 4,    /* its peer counts towards its role's limit */
};
/* Larger fds are not tracked (their peers are let in uncounted): far above any LimitNOFILE. */
#define FD_TRACKED_MAX (1 << 22)

typedef struct {
    uint8_t *states; /* by fd: FD_* bits, 0 when closed */
    size_t size;
    size_t open[2];    /* connections open, [0] agents, [1] query */
    size_t counted[2]; /* of those, peers counted */
} connections_t;

static uint8_t
s_open_bit (curve_role_t role)
{
    return role == CURVE_ROLE_AGENT ? FD_OPEN_AGENT : FD_OPEN_QUERY;
}

struct _auth_t {
    bool plain;
    zcert_t *server; /* NULL in plain mode */
    char *authorised_dir;
    zactor_t *actor;
    pthread_mutex_t lock;
    /* Guarded by lock. */
    keyring_t *keyring;
    size_t max_agents, max_query_clients;
    connections_t connections;
    auth_counters_t counters;
};

#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static bool
ends_with (const char *text, const char *suffix)
{
    size_t length = strlen (text), suffix_length = strlen (suffix);
    return length >= suffix_length && strcmp (text + length - suffix_length, suffix) == 0;
}

/* ---------------------------------------------------------------- the keyring */

static void
keyring_destroy (keyring_t **self_p)
{
    keyring_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        free (self->entries[i].name);
        free (self->entries[i].bodies);
        free (self->entries[i].file);
    }
    free (self->entries);
    zhashx_destroy (&self->index);
    free (self);
    *self_p = NULL;
}

static int
compare_names (const void *a, const void *b)
{
    return strcmp (*(char *const *)a, *(char *const *)b);
}

/* Adds one certificate file. Returns 0 or -1 with a message naming it. */
static int
keyring_add (keyring_t *self, const char *path, size_t *capacity, char *err, size_t err_len)
{
    char why[CURVE_ERR_LEN];
    zcert_t *cert = curve_load_public (path, why, sizeof why);
    if (!cert)
        return fail (err, err_len, "%s", why);
    curve_role_t role;
    int rc = 0;
    if (curve_cert_check (cert, &role, why, sizeof why))
        rc = fail (err, err_len, "authorised certificate %s: %s", path, why);
    else if (role != CURVE_ROLE_AGENT && role != CURVE_ROLE_QUERY)
        rc = fail (err, err_len,
                   "authorised certificate %s has role %s: only agent and query certificates "
                   "authorise anyone; remove it from the folder",
                   path, curve_role_name (role));
    else {
        entry_t *twin = zhashx_lookup (self->index, zcert_public_txt (cert));
        if (twin)
            rc = fail (err, err_len, "authorised certificates %s and %s hold the same key",
                       twin->file, path);
    }
    if (rc == 0 && self->count == *capacity) {
        size_t wanted = *capacity ? *capacity * 2 : 16;
        entry_t *grown = realloc (self->entries, wanted * sizeof *grown);
        if (!grown)
            rc = fail (err, err_len, "out of memory loading %s", path);
        else {
            /* The index points into the array: rebuild it after a move. */
            self->entries = grown;
            *capacity = wanted;
            zhashx_purge (self->index);
            for (size_t i = 0; i < self->count; i++)
                zhashx_insert (self->index, self->entries[i].key, &self->entries[i]);
        }
    }
    if (rc == 0) {
        entry_t *entry = &self->entries[self->count];
        memset (entry, 0, sizeof *entry);
        snprintf (entry->key, sizeof entry->key, "%s", zcert_public_txt (cert));
        entry->role = role;
        entry->name = strdup (zcert_meta (cert, "name"));
        entry->file = strdup (path);
        entry->bodies = role == CURVE_ROLE_AGENT ? strdup (zcert_meta (cert, "bodies")) : NULL;
        self->count++;
        if (!entry->name || !entry->file || (role == CURVE_ROLE_AGENT && !entry->bodies) ||
            zhashx_insert (self->index, entry->key, entry) != 0)
            rc = fail (err, err_len, "out of memory loading %s", path);
        else if (role == CURVE_ROLE_AGENT)
            self->summary.agents++;
        else
            self->summary.query_users++;
    }
    zcert_destroy (&cert);
    return rc;
}

/* Reads every *.cert in dir, in name order. NULL with a message naming the file at fault. */
static keyring_t *
keyring_load (const char *dir, char *err, size_t err_len)
{
    if (!dir || !*dir) {
        fail (err, err_len, "no folder of authorised certificates given");
        return NULL;
    }
    keyring_t *self = calloc (1, sizeof *self);
    if (!self || !(self->index = zhashx_new ())) {
        free (self);
        fail (err, err_len, "out of memory loading certificates");
        return NULL;
    }
    DIR *folder = opendir (dir);
    if (!folder) {
        fail (err, err_len, "authorised certificates folder %s: %s", dir, strerror (errno));
        keyring_destroy (&self);
        return NULL;
    }
    char **names = NULL;
    size_t count = 0, room = 0;
    int rc = 0;
    struct dirent *item;
    while (rc == 0 && (item = readdir (folder))) {
        const char *name = item->d_name;
        if (name[0] == '.')
            continue;
        if (ends_with (name, "_secret")) {
            /* Whoever put it there copied a secret off its owner's host: say so and stop, rather
             * than run with the mistake (SIGHUP keeps the loaded set). */
            rc = fail (err, err_len,
                       "authorised certificates folder %s holds a secret certificate, %s: a secret "
                       "key belongs only on its owner's host. Move it out of the folder, and as "
                       "the key has been copied, make its owner a new pair (docs/security.md)",
                       dir, name);
            break;
        }
        if (!ends_with (name, CURVE_PUBLIC_SUFFIX))
            continue;
        if (count == room) {
            size_t wanted = room ? room * 2 : 16;
            char **grown = realloc (names, wanted * sizeof *grown);
            if (!grown) {
                rc = fail (err, err_len, "out of memory listing %s", dir);
                break;
            }
            names = grown;
            room = wanted;
        }
        if (!(names[count] = strdup (name)))
            rc = fail (err, err_len, "out of memory listing %s", dir);
        else
            count++;
    }
    closedir (folder);
    if (count > 1)
        qsort (names, count, sizeof *names, compare_names);
    size_t capacity = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        char path[4096];
        if ((size_t)snprintf (path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path)
            rc = fail (err, err_len, "path of %s in %s is too long", names[i], dir);
        else
            rc = keyring_add (self, path, &capacity, err, err_len);
    }
    for (size_t i = 0; i < count; i++)
        free (names[i]);
    free (names);
    if (rc)
        keyring_destroy (&self);
    return self;
}

/* ---------------------------------------------------------------- permits */

static auth_permit_t *
permit_new (const char *name, const char *bodies, bool plain)
{
    auth_permit_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->plain = plain;
    self->name = strdup (name);
    self->bodies = strdup (bodies ? bodies : "");
    self->body_storage = strdup (bodies ? bodies : "");
    if (!self->name || !self->bodies || !self->body_storage)
        goto error;
    if (!plain && *self->body_storage) {
        size_t commas = 0;
        for (const char *p = self->body_storage; *p; p++)
            commas += *p == ',';
        self->body_list = calloc (commas + 1, sizeof *self->body_list);
        if (!self->body_list)
            goto error;
        char *save = NULL;
        for (char *body = strtok_r (self->body_storage, ",", &save); body;
             body = strtok_r (NULL, ",", &save))
            self->body_list[self->body_count++] = body;
    }
    return self;
error:
    auth_permit_destroy (&self);
    return NULL;
}

void
auth_permit_destroy (auth_permit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    auth_permit_t *self = *self_p;
    free (self->name);
    free (self->bodies);
    free (self->body_storage);
    free (self->body_list);
    free (self);
    *self_p = NULL;
}

const char *
auth_permit_name (const auth_permit_t *self)
{
    return self->name;
}

const char *
auth_permit_bodies (const auth_permit_t *self)
{
    return self->plain ? "*" : self->bodies;
}

bool
auth_permit_is_plain (const auth_permit_t *self)
{
    return self->plain;
}

bool
auth_permit_allows_body (const auth_permit_t *self, const char *body_id)
{
    if (self->plain)
        return true;
    for (size_t i = 0; i < self->body_count; i++)
        if (body_id && strcmp (self->body_list[i], body_id) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- connected peers */

/* The slot of fd, grown as needed; NULL when fd is not tracked or memory runs out. */
static uint8_t *
s_slot (connections_t *connections, int fd)
{
    if (fd < 0 || fd >= FD_TRACKED_MAX)
        return NULL;
    if ((size_t)fd >= connections->size) {
        size_t size = connections->size ? connections->size : 256;
        while (size <= (size_t)fd)
            size *= 2;
        uint8_t *grown = realloc (connections->states, size);
        if (!grown)
            return NULL;
        memset (grown + connections->size, 0, size - connections->size);
        connections->states = grown;
        connections->size = size;
    }
    return &connections->states[fd];
}

/* Forgets what fd held (a disconnect, or a new connection on a reused fd). */
static void
s_forget (connections_t *connections, uint8_t *slot)
{
    for (int r = 0; r < 2; r++)
        if (*slot & (r == 0 ? FD_OPEN_AGENT : FD_OPEN_QUERY)) {
            connections->open[r]--;
            if (*slot & FD_COUNTED)
                connections->counted[r]--;
        }
    *slot = 0;
}

void
auth_connection_event (auth_t *self, curve_role_t role, unsigned event, int fd)
{
    if ((role != CURVE_ROLE_AGENT && role != CURVE_ROLE_QUERY) ||
        (event != ZMQ_EVENT_ACCEPTED && event != ZMQ_EVENT_DISCONNECTED))
        return;
    int r = role == CURVE_ROLE_AGENT ? 0 : 1;
    pthread_mutex_lock (&self->lock);
    uint8_t *slot = s_slot (&self->connections, fd);
    if (slot && event == ZMQ_EVENT_ACCEPTED) {
        s_forget (&self->connections, slot);
        *slot = s_open_bit (role);
        self->connections.open[r]++;
    }
    /* Only this socket's own connection: the two servers' monitors are read by two threads, so a
     * fd closed on one socket and reused by the other may be reported out of order. */
    else if (slot && (*slot & s_open_bit (role)))
        s_forget (&self->connections, slot);
    pthread_mutex_unlock (&self->lock);
}

auth_admission_t
auth_peer_admit (auth_t *self, curve_role_t role, int fd, char *reason, size_t reason_len)
{
    if (role != CURVE_ROLE_AGENT && role != CURVE_ROLE_QUERY)
        return AUTH_PEER_UNKNOWN;
    int r = role == CURVE_ROLE_AGENT ? 0 : 1;
    auth_admission_t admission = AUTH_PEER_ADMITTED;
    pthread_mutex_lock (&self->lock);
    uint8_t *slot = s_slot (&self->connections, fd);
    size_t most = role == CURVE_ROLE_AGENT ? self->max_agents : self->max_query_clients;
    if (!slot || !(*slot & s_open_bit (role)))
        admission = AUTH_PEER_UNKNOWN;
    else if (!(*slot & FD_COUNTED)) {
        if (self->connections.counted[r] >= most) {
            admission = AUTH_PEER_OVER_LIMIT;
            self->counters.over_limit++;
            if (reason && reason_len)
                snprintf (reason, reason_len, "%zu %s connected already, the most allowed (%s)",
                          self->connections.counted[r],
                          role == CURVE_ROLE_AGENT ? "agents" : "query clients",
                          role == CURVE_ROLE_AGENT ? "limits/max_agents"
                                                   : "limits/max_query_clients");
        }
        else {
            *slot |= FD_COUNTED;
            self->connections.counted[r]++;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return admission;
}

/* ---------------------------------------------------------------- the ZAP handler */

typedef struct {
    const char *code; /* "200", "300", "400", "500" */
    char text[256];
    char user_id[CURVE_KEY_TEXT_LEN + 1];
} decision_t;

/* Decides one request. Frames: version, request id, domain, address, identity, mechanism, then
 * the mechanism's credentials (CURVE: the client's 32-byte public key). */
static void
s_decide (auth_t *self, zmsg_t *request, char *domain, const char *address, decision_t *out,
          log_limit_t *limit)
{
    out->user_id[0] = '\0';
    zframe_t *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credentials = zmsg_pop (request);
    curve_role_t role = streq (domain, AUTH_DOMAIN_INGEST)  ? CURVE_ROLE_AGENT
                        : streq (domain, AUTH_DOMAIN_QUERY) ? CURVE_ROLE_QUERY
                                                            : CURVE_ROLE_NONE;
    const char *what = role == CURVE_ROLE_AGENT ? "ingest" : "query";
    char key[CURVE_KEY_TEXT_LEN + 1] = "";
    const char *cert = NULL;

    pthread_mutex_lock (&self->lock);
    out->code = "200";
    snprintf (out->text, sizeof out->text, "OK");
    if (role == CURVE_ROLE_NONE) {
        out->code = "400";
        snprintf (out->text, sizeof out->text, "unknown ZAP domain \"%.64s\"", domain);
    }
    else if (self->plain) {
        if (!mechanism || !streq (mechanism, "NULL")) {
            out->code = "400";
            snprintf (out->text, sizeof out->text, "this collector takes only plain connections");
        }
    }
    else if (!mechanism || !streq (mechanism, "CURVE") || !credentials ||
             zframe_size (credentials) != 32) {
        out->code = "400";
        snprintf (out->text, sizeof out->text, "CURVE keys are required");
    }
    else {
        zmq_z85_encode (key, zframe_data (credentials), 32);
        entry_t *entry = zhashx_lookup (self->keyring->index, key);
        if (!entry) {
            out->code = "400";
            snprintf (out->text, sizeof out->text, "unknown key");
            self->counters.unknown_key++;
        }
        else if (entry->role != role) {
            out->code = "400";
            snprintf (out->text, sizeof out->text, "certificate %s has role %s, not %s",
                      entry->name, curve_role_name (entry->role), curve_role_name (role));
            self->counters.wrong_role++;
            cert = entry->file;
        }
        else
            snprintf (out->user_id, sizeof out->user_id, "%s", key);
    }
    if (streq (out->code, "200"))
        self->counters.allowed++;
    else if (role == CURVE_ROLE_NONE || !*key)
        self->counters.bad_requests++; /* libzmq checks the mechanism first: never seen */
    char file[512] = "";
    if (cert)
        snprintf (file, sizeof file, " (%s)", cert);
    pthread_mutex_unlock (&self->lock);

    if (!streq (out->code, "200") && log_limit_allow (limit))
        log_warning ("auth", "refused a connection to %s from %s: %s%s%s%s", what,
                     address && *address ? address : "a local peer", out->text,
                     *key ? ", key " : "", key, file);
    zframe_destroy (&identity);
    zstr_free (&mechanism);
    zframe_destroy (&credentials);
}

static void
s_handle (auth_t *self, zsock_t *handler, log_limit_t *limit)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    char *request_id = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    decision_t decision;
    if (!version || !streq (version, "1.0") || !request_id || !domain || !address ||
        zmsg_size (request) < 2) {
        decision.code = "500";
        snprintf (decision.text, sizeof decision.text, "malformed ZAP request");
        decision.user_id[0] = '\0';
        pthread_mutex_lock (&self->lock);
        self->counters.bad_requests++;
        pthread_mutex_unlock (&self->lock);
    }
    else
        s_decide (self, request, domain, address, &decision, limit);
    zmsg_t *reply = zmsg_new ();
    if (reply) {
        zmsg_addstr (reply, "1.0");
        zmsg_addstr (reply, request_id ? request_id : "");
        zmsg_addstr (reply, decision.code);
        zmsg_addstr (reply, decision.text);
        zmsg_addstr (reply, decision.user_id);
        zmsg_addmem (reply, "", 0); /* no metadata */
        zmsg_send (&reply, handler);
    }
    zstr_free (&version);
    zstr_free (&request_id);
    zstr_free (&domain);
    zstr_free (&address);
    zmsg_destroy (&request);
}

static void
s_zap_actor (zsock_t *pipe, void *args)
{
    /* Signals belong to the daemon's main thread. */
    sigset_t blocked;
    sigfillset (&blocked);
    sigdelset (&blocked, SIGSEGV);
    sigdelset (&blocked, SIGBUS);
    sigdelset (&blocked, SIGFPE);
    sigdelset (&blocked, SIGILL);
    sigdelset (&blocked, SIGABRT);
    pthread_sigmask (SIG_BLOCK, &blocked, NULL);

    auth_t *self = args;
    zsock_t *handler = zsock_new (ZMQ_REP);
    char message[256] = "OK";
    if (!handler)
        snprintf (message, sizeof message, "cannot create the ZAP handler's socket");
    else if (zsock_bind (handler, ZAP_ENDPOINT) == -1)
        snprintf (message, sizeof message,
                  "cannot bind the ZAP handler (%s): %s; is another authenticator (zauth) running "
                  "in this process?",
                  ZAP_ENDPOINT, zmq_strerror (zmq_errno ()));
    zsock_signal (pipe, 0);
    zstr_send (pipe, message);
    zpoller_t *poller = streq (message, "OK") ? zpoller_new (pipe, handler, NULL) : NULL;
    log_limit_t limit = LOG_LIMIT_INIT ("auth", "refused connections", LOG_LEVEL_WARNING);
    while (poller) {
        void *which = zpoller_wait (poller, 1000);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        else if (which == handler)
            s_handle (self, handler, &limit);
        else if (!zpoller_expired (poller))
            break; /* interrupted */
        else
            log_limit_flush (&limit); /* the summary of a window that ended quietly */
    }
    if (!poller) {
        /* auth_new destroys the actor at once; wait for that. */
        char *command;
        while ((command = zstr_recv (pipe))) {
            bool term = streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
    }
    zpoller_destroy (&poller);
    /* libzmq closes a socket in its reaper thread, after this actor has said it is done: unbind
     * first (synchronous for inproc), so that the next handler of this process can bind at once. */
    if (handler && streq (message, "OK"))
        zsock_unbind (handler, "%s", ZAP_ENDPOINT);
    zsock_destroy (&handler);
}

/* ---------------------------------------------------------------- the authority */

static int
load_server (const auth_options_t *options, zcert_t **server, char *err, size_t err_len)
{
    char why[CURVE_ERR_LEN];
    zcert_t *cert = curve_load_secret (options->secret_cert, why, sizeof why);
    if (!cert)
        return fail (err, err_len, "collector/curve_secret_cert: %s", why);
    curve_role_t role;
    if (curve_cert_check (cert, &role, why, sizeof why) || role != CURVE_ROLE_COLLECTOR) {
        if (role != CURVE_ROLE_COLLECTOR)
            snprintf (why, sizeof why, "its role is %s, not collector", curve_role_name (role));
        zcert_destroy (&cert);
        return fail (err, err_len, "collector/curve_secret_cert %s: %s", options->secret_cert, why);
    }
    *server = cert;
    return 0;
}

int
auth_check (const auth_options_t *options, auth_summary_t *summary, char *err, size_t err_len)
{
    if (summary)
        memset (summary, 0, sizeof *summary);
    if (options->plain)
        return 0;
    zcert_t *server = NULL;
    if (load_server (options, &server, err, err_len))
        return -1;
    zcert_destroy (&server);
    char why[CURVE_ERR_LEN];
    keyring_t *keyring = keyring_load (options->authorised_dir, why, sizeof why);
    if (!keyring)
        return fail (err, err_len, "collector/authorised_certs: %s", why);
    if (summary)
        *summary = keyring->summary;
    keyring_destroy (&keyring);
    return 0;
}

auth_t *
auth_new (const auth_options_t *options, char *err, size_t err_len)
{
    auth_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory starting the authenticator");
        return NULL;
    }
    if (pthread_mutex_init (&self->lock, NULL)) {
        free (self);
        fail (err, err_len, "cannot create the authenticator's lock");
        return NULL;
    }
    self->plain = options->plain;
    self->max_agents = options->max_agents ? options->max_agents : 1;
    self->max_query_clients = options->max_query_clients ? options->max_query_clients : 1;
    if (!self->plain) {
        char why[CURVE_ERR_LEN];
        if (load_server (options, &self->server, err, err_len))
            goto error;
        self->authorised_dir = strdup (options->authorised_dir ? options->authorised_dir : "");
        self->keyring = keyring_load (options->authorised_dir, why, sizeof why);
        if (!self->authorised_dir || !self->keyring) {
            fail (err, err_len, "collector/authorised_certs: %s",
                  self->authorised_dir ? why : "out of memory");
            goto error;
        }
    }
    self->actor = zactor_new (s_zap_actor, self);
    char *status = self->actor ? zstr_recv (self->actor) : NULL;
    if (!status || !streq (status, "OK")) {
        fail (err, err_len, "%s", status ? status : "cannot start the ZAP handler's thread");
        zstr_free (&status);
        goto error;
    }
    zstr_free (&status);
    return self;
error:
    auth_destroy (&self);
    return NULL;
}

void
auth_destroy (auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    auth_t *self = *self_p;
    zactor_destroy (&self->actor);
    keyring_destroy (&self->keyring);
    zcert_destroy (&self->server);
    free (self->authorised_dir);
    free (self->connections.states);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
auth_reload (auth_t *self, auth_summary_t *summary, char *err, size_t err_len)
{
    if (summary)
        memset (summary, 0, sizeof *summary);
    if (self->plain)
        return 0;
    char why[CURVE_ERR_LEN];
    keyring_t *fresh = keyring_load (self->authorised_dir, why, sizeof why);
    if (!fresh)
        return fail (err, err_len, "collector/authorised_certs: %s", why);
    if (summary)
        *summary = fresh->summary;
    pthread_mutex_lock (&self->lock);
    keyring_t *old = self->keyring;
    self->keyring = fresh;
    pthread_mutex_unlock (&self->lock);
    keyring_destroy (&old);
    return 0;
}

void
auth_summary (auth_t *self, auth_summary_t *summary)
{
    memset (summary, 0, sizeof *summary);
    pthread_mutex_lock (&self->lock);
    if (self->keyring)
        *summary = self->keyring->summary;
    pthread_mutex_unlock (&self->lock);
}

void
auth_set_limits (auth_t *self, size_t max_agents, size_t max_query_clients)
{
    pthread_mutex_lock (&self->lock);
    self->max_agents = max_agents ? max_agents : 1;
    self->max_query_clients = max_query_clients ? max_query_clients : 1;
    pthread_mutex_unlock (&self->lock);
}

bool
auth_is_plain (auth_t *self)
{
    return self->plain;
}

int
auth_secure (auth_t *self, zsock_t *socket, curve_role_t role, char *err, size_t err_len)
{
    if (role != CURVE_ROLE_AGENT && role != CURVE_ROLE_QUERY)
        return fail (err, err_len, "a server socket serves agents or queries, not role %s",
                     curve_role_name (role));
    zsock_set_zap_domain (socket,
                          role == CURVE_ROLE_AGENT ? AUTH_DOMAIN_INGEST : AUTH_DOMAIN_QUERY);
    if (!self->plain) {
        zcert_apply (self->server, socket);
        zsock_set_curve_server (socket, 1);
    }
    return 0;
}

auth_permit_t *
auth_permit (auth_t *self, const char *user_id, curve_role_t role)
{
    if (self->plain)
        return permit_new ("plain", NULL, true);
    if (!user_id)
        return NULL;
    auth_permit_t *permit = NULL;
    pthread_mutex_lock (&self->lock);
    entry_t *entry = zhashx_lookup (self->keyring->index, user_id);
    if (entry && entry->role == role)
        permit = permit_new (entry->name, entry->bodies, false);
    pthread_mutex_unlock (&self->lock);
    return permit;
}

void
auth_counters (auth_t *self, auth_counters_t *counters)
{
    pthread_mutex_lock (&self->lock);
    *counters = self->counters;
    counters->agents_connected = self->connections.counted[0];
    counters->query_connected = self->connections.counted[1];
    counters->agent_connections = self->connections.open[0];
    counters->query_connections = self->connections.open[1];
    pthread_mutex_unlock (&self->lock);
}
