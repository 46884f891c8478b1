/* test_auth: CURVE certificates (keygen, loading, metadata), the plain-endpoint rule, the
 * collector's folder of authorised certificates, and the ZAP handler deciding real handshakes on
 * ipc:// sockets: known and unknown keys, roles, connection limits, permits and body
 * authorisation of the ingest and query servers, revocation by reload; and the agent's config
 * rules for keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_config.h"
#include "auth.h"
#include "collector_config.h"
#include "curve.h"
#include "ingest.h"
#include "query.h"
#include "store.h"
#include "test_support.h"
#include "wire.h"

#define TIMEOUT_MS 5000

static void
assert_mentions (const char *text, const char *needle)
{
    if (!text || !strstr (text, needle))
        fail_msg ("\"%s\" does not mention \"%s\"", text ? text : "(null)", needle);
}

/* A new string "a" + "b" + "c"; free() it. */
static char *
join3 (const char *a, const char *b, const char *c)
{
    size_t size = strlen (a) + strlen (b) + strlen (c) + 1;
    char *joined = malloc (size);
    assert_non_null (joined);
    snprintf (joined, size, "%s%s%s", a, b, c);
    return joined;
}

static char *
path_in (const char *dir, const char *name)
{
    return join3 (dir, "/", name);
}

static void
write_file (const char *path, const char *text, mode_t mode)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    assert_int_equal (fclose (file), 0);
    assert_int_equal (chmod (path, mode), 0);
}

static void
keygen (const char *dir, const char *name, curve_role_t role, const char *bodies)
{
    char err[CURVE_ERR_LEN];
    if (curve_keygen (dir, name, role, bodies, NULL, NULL, 0, err, sizeof err))
        fail_msg ("keygen %s: %s", name, err);
}

/* ---------------------------------------------------------------- the plain rule */

static void
test_plain_only_on_this_host (void **state)
{
    (void)state;
    static const struct {
        const char *endpoint;
        bool local;
    } cases[] = {
        {"ipc:///run/totalplace/ingest", true},
        {"inproc://ingest", true},
        {"tcp://127.0.0.1:7700", true},
        {"tcp://127.255.0.9:1", true},
        {"tcp://[::1]:7700", true},
        {"tcp://[::ffff:127.0.0.1]:7700", true},
        {"tcp://10.1.2.3;127.0.0.1:7700", true},
        {"tcp://127.0.0.1;10.1.2.3:7700", false},
        {"tcp://*:7700", false},
        {"tcp://0.0.0.0:7700", false},
        {"tcp://128.0.0.1:7700", false},
        {"tcp://localhost:7700", false},
        {"tcp://lo:7700", false},
        {"tcp://[::]:7700", false},
        {"tcp://[::2]:7700", false},
        {"tcp://[::1:7700", false},
        {"tcp://127.0.0.1", false},
        {"tcp://:7700", false},
        {"ws://127.0.0.1:7700", false},
        {"pgm://127.0.0.1;239.192.1.1:5555", false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (curve_endpoint_is_local (cases[i].endpoint) != cases[i].local)
            fail_msg ("%s: expected %s", cases[i].endpoint ? cases[i].endpoint : "(null)",
                      cases[i].local ? "local" : "not local");
    char err[CURVE_ERR_LEN];
    assert_int_equal (curve_check_plain ("agent/collector", "tcp://10.0.0.1:7700", err, sizeof err),
                      -1);
    assert_mentions (err, "agent/collector");
    assert_mentions (err, "tcp://10.0.0.1:7700");
    assert_mentions (err, "CURVE");
    assert_int_equal (curve_check_plain ("k", "ipc:///x", err, sizeof err), 0);
}

/* ---------------------------------------------------------------- certificates */

static void
test_keygen_writes_a_pair (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_auth");
    char public_path[4096], secret_path[4096], err[CURVE_ERR_LEN];
    assert_int_equal (curve_keygen (dir, "barnsley", CURVE_ROLE_AGENT, "GB-LAE-BNS,GB-LAE-BNX",
                                    public_path, secret_path, sizeof public_path, err, sizeof err),
                      0);
    struct stat st;
    assert_int_equal (stat (public_path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0644);
    assert_int_equal (stat (secret_path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_mentions (secret_path, "barnsley" CURVE_SECRET_SUFFIX);

    zcert_t *secret = curve_load_secret (secret_path, err, sizeof err);
    if (!secret)
        fail_msg ("%s", err);
    zcert_t *public_cert = curve_load_public (public_path, err, sizeof err);
    assert_non_null (public_cert);
    assert_string_equal (zcert_public_txt (secret), zcert_public_txt (public_cert));
    curve_role_t role = CURVE_ROLE_NONE;
    assert_int_equal (curve_cert_check (public_cert, &role, err, sizeof err), 0);
    assert_int_equal (role, CURVE_ROLE_AGENT);
    assert_string_equal (zcert_meta (public_cert, "name"), "barnsley");
    assert_string_equal (zcert_meta (public_cert, "bodies"), "GB-LAE-BNS,GB-LAE-BNX");
    assert_non_null (zcert_meta (public_cert, "created"));
    /* The public file holds no secret: loading it as a secret is refused. */
    zcert_t *not_secret = curve_load_secret (public_path, err, sizeof err);
    assert_null (not_secret);
    assert_mentions (err, "no secret key");
    zcert_destroy (&secret);
    zcert_destroy (&public_cert);

    /* Never overwrites; bad names, roles and bodies are refused before anything is written. */
    assert_int_equal (curve_keygen (dir, "barnsley", CURVE_ROLE_AGENT, "GB-LAE-BNS", NULL, NULL, 0,
                                    err, sizeof err),
                      -1);
    assert_mentions (err, "already exists");
    static const struct {
        const char *name;
        curve_role_t role;
        const char *bodies, *why;
    } bad[] = {
        {"bad name", CURVE_ROLE_AGENT, "GB-X", "NAME"},
        {"", CURVE_ROLE_QUERY, NULL, "NAME"},
        {"a", CURVE_ROLE_AGENT, NULL, "--bodies"},
        {"a", CURVE_ROLE_AGENT, "GB-X,,GB-Y", "--bodies"},
        {"a", CURVE_ROLE_AGENT, "GB-X,GB-X", "twice"},
        {"a", CURVE_ROLE_AGENT, "GB X", "--bodies"},
        {"a", CURVE_ROLE_QUERY, "GB-X", "--bodies"},
        {"a", CURVE_ROLE_NONE, NULL, "role"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal (curve_keygen (dir, bad[i].name, bad[i].role, bad[i].bodies, NULL, NULL, 0,
                                        err, sizeof err),
                          -1);
        assert_mentions (err, bad[i].why);
    }
    char *missing = path_in (dir, "no-such-folder");
    assert_int_equal (
        curve_keygen (missing, "x", CURVE_ROLE_QUERY, NULL, NULL, NULL, 0, err, sizeof err), -1);
    assert_mentions (err, "is not a folder");
    free (missing);
    test_rmtree (dir);
    free (dir);
}

static void
test_loading_refuses_what_is_wrong (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_auth");
    char err[CURVE_ERR_LEN];
    keygen (dir, "agent", CURVE_ROLE_AGENT, "GB-X");
    char *secret = path_in (dir, "agent" CURVE_SECRET_SUFFIX);

    /* Every user of the host may read it: no longer a secret. */
    assert_int_equal (chmod (secret, 0644), 0);
    assert_null (curve_load_secret (secret, err, sizeof err));
    assert_mentions (err, "every user");
    assert_mentions (err, secret);
    /* Its group may write it: any member could put another key in its place. */
    assert_int_equal (chmod (secret, 0660), 0);
    assert_null (curve_load_secret (secret, err, sizeof err));
    assert_mentions (err, "written by its group");
    assert_mentions (err, "0660");
    assert_int_equal (chmod (secret, 0620), 0);
    assert_null (curve_load_secret (secret, err, sizeof err));
    assert_int_equal (chmod (secret, 0640), 0);
    zcert_t *cert = curve_load_secret (secret, err, sizeof err);
    assert_non_null (cert);
    zcert_destroy (&cert);

    char *missing = path_in (dir, "absent.cert");
    assert_null (curve_load_public (missing, err, sizeof err));
    assert_mentions (err, missing);
    char *garbage = path_in (dir, "garbage.cert");
    write_file (garbage, "this is not\n  a certificate\x01\n", 0644);
    assert_null (curve_load_public (garbage, err, sizeof err));
    assert_mentions (err, "not a CURVE certificate");
    assert_null (curve_load_public (dir, err, sizeof err));
    assert_mentions (err, "not a regular file");

    /* Metadata: a certificate made by hand without a role, or with a wrong one. */
    char *handmade = path_in (dir, "handmade.cert");
    zcert_t *raw = zcert_new ();
    zcert_set_meta (raw, "name", "x");
    assert_int_equal (zcert_save_public (raw, handmade), 0);
    zcert_t *loaded = curve_load_public (handmade, err, sizeof err);
    assert_non_null (loaded);
    assert_int_equal (curve_cert_check (loaded, NULL, err, sizeof err), -1);
    assert_mentions (err, "role is missing");
    zcert_destroy (&loaded);
    zcert_set_meta (raw, "role", "admin");
    assert_int_equal (zcert_save_public (raw, handmade), 0);
    loaded = curve_load_public (handmade, err, sizeof err);
    assert_int_equal (curve_cert_check (loaded, NULL, err, sizeof err), -1);
    assert_mentions (err, "\"admin\"");
    zcert_destroy (&loaded);
    zcert_destroy (&raw);
    raw = zcert_new ();
    zcert_set_meta (raw, "name", "x");
    zcert_set_meta (raw, "role", "agent");
    assert_int_equal (zcert_save_public (raw, handmade), 0);
    loaded = curve_load_public (handmade, err, sizeof err);
    assert_int_equal (curve_cert_check (loaded, NULL, err, sizeof err), -1);
    assert_mentions (err, "bodies");
    zcert_destroy (&loaded);
    zcert_destroy (&raw);

    /* A client's keys: its own with the right role, the collector's with role collector. */
    keygen (dir, "collector", CURVE_ROLE_COLLECTOR, NULL);
    char *collector_public = path_in (dir, "collector" CURVE_PUBLIC_SUFFIX);
    char *agent_public = path_in (dir, "agent" CURVE_PUBLIC_SUFFIX);
    curve_client_t *client =
        curve_client_new (secret, collector_public, CURVE_ROLE_AGENT, err, sizeof err);
    if (!client)
        fail_msg ("%s", err);
    assert_string_equal (zcert_meta (curve_client_cert (client), "name"), "agent");
    assert_int_equal (strlen (curve_client_public_txt (client)), CURVE_KEY_TEXT_LEN);
    curve_client_destroy (&client);
    curve_client_destroy (&client); /* safe twice */
    assert_null (curve_client_new (secret, collector_public, CURVE_ROLE_QUERY, err, sizeof err));
    assert_mentions (err, "role query");
    assert_null (curve_client_new (secret, agent_public, CURVE_ROLE_AGENT, err, sizeof err));
    assert_mentions (err, "not a collector's");
    assert_null (curve_client_new (NULL, collector_public, CURVE_ROLE_AGENT, err, sizeof err));
    assert_mentions (err, "no secret certificate file given");

    free (secret);
    free (missing);
    free (garbage);
    free (handmade);
    free (collector_public);
    free (agent_public);
    test_rmtree (dir);
    free (dir);
}

/* ---------------------------------------------------------------- the authorised folder */

typedef struct {
    char *dir;       /* keys of everyone */
    char *folder;    /* the collector's authorised folder */
    char *secret;    /* the collector's secret certificate */
    char *collector; /* the collector's public certificate */
} keys_t;

static void
copy_public (const keys_t *keys, const char *name, const char *as)
{
    char *file = join3 (name, CURVE_PUBLIC_SUFFIX, "");
    char *from = path_in (keys->dir, file);
    char *to = path_in (keys->folder, as);
    free (file);
    FILE *in = fopen (from, "r"), *out = fopen (to, "w");
    assert_non_null (in);
    assert_non_null (out);
    char buffer[4096];
    size_t got;
    while ((got = fread (buffer, 1, sizeof buffer, in)) > 0)
        assert_int_equal (fwrite (buffer, 1, got, out), got);
    fclose (in);
    assert_int_equal (fclose (out), 0);
    free (from);
    free (to);
}

/* The collector's pair, an agent for GB-A and GB-B, a query user, an unknown agent; the agent and
 * the query user authorised. */
static keys_t
make_keys (void)
{
    keys_t keys;
    keys.dir = test_tmpdir ("test_auth");
    keys.folder = path_in (keys.dir, "authorised");
    assert_int_equal (mkdir (keys.folder, 0700), 0);
    keys.secret = path_in (keys.dir, "collector" CURVE_SECRET_SUFFIX);
    keys.collector = path_in (keys.dir, "collector" CURVE_PUBLIC_SUFFIX);
    keygen (keys.dir, "collector", CURVE_ROLE_COLLECTOR, NULL);
    keygen (keys.dir, "agent-a", CURVE_ROLE_AGENT, "GB-A,GB-B");
    keygen (keys.dir, "analyst", CURVE_ROLE_QUERY, NULL);
    keygen (keys.dir, "stranger", CURVE_ROLE_AGENT, "GB-A");
    copy_public (&keys, "agent-a", "agent-a.cert");
    copy_public (&keys, "analyst", "analyst.cert");
    return keys;
}

static void
free_keys (keys_t *keys)
{
    test_rmtree (keys->dir);
    free (keys->dir);
    free (keys->folder);
    free (keys->secret);
    free (keys->collector);
}

static auth_options_t
curve_options (const keys_t *keys)
{
    return (auth_options_t){.secret_cert = keys->secret,
                            .authorised_dir = keys->folder,
                            .max_agents = 100,
                            .max_query_clients = 100};
}

static void
test_folder_is_checked (void **state)
{
    (void)state;
    keys_t keys = make_keys ();
    auth_options_t options = curve_options (&keys);
    auth_summary_t summary;
    char err[1024];
    if (auth_check (&options, &summary, err, sizeof err))
        fail_msg ("%s", err);
    assert_int_equal (summary.agents, 1);
    assert_int_equal (summary.query_users, 1);

    /* Files not named *.cert and hidden ones are ignored. */
    char *readme = path_in (keys.folder, "README");
    write_file (readme, "not a certificate", 0644);
    char *hidden = path_in (keys.folder, ".agent-a.cert.swp");
    write_file (hidden, "not a certificate", 0644);
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), 0);
    assert_int_equal (summary.agents, 1);
    /* A secret certificate in the folder stops the start (and a reload), naming it. */
    char *stray = path_in (keys.folder, "agent-a.cert_secret");
    write_file (stray, "x", 0600);
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), -1);
    assert_mentions (err, "agent-a.cert_secret");
    assert_mentions (err, "secret key belongs only on its owner's host");
    unlink (stray);
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), 0);

    /* Each of these stops the load, naming the file. */
    copy_public (&keys, "agent-a", "copy.cert");
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), -1);
    assert_mentions (err, "same key");
    assert_mentions (err, "copy.cert");
    char *copy = path_in (keys.folder, "copy.cert");
    unlink (copy);
    copy_public (&keys, "collector", "collector.cert");
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), -1);
    assert_mentions (err, "role collector");
    char *collector_copy = path_in (keys.folder, "collector.cert");
    unlink (collector_copy);
    char *broken = path_in (keys.folder, "broken.cert");
    write_file (broken, "metadata\n    role = \"agent\"\n", 0644);
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), -1);
    assert_mentions (err, "broken.cert");
    unlink (broken);
    assert_int_equal (auth_check (&options, &summary, err, sizeof err), 0);

    /* The collector's own certificate must be a secret one with role collector. */
    options.secret_cert = keys.collector;
    assert_int_equal (auth_check (&options, NULL, err, sizeof err), -1);
    assert_mentions (err, "collector/curve_secret_cert");
    char *agent_secret = path_in (keys.dir, "agent-a" CURVE_SECRET_SUFFIX);
    options.secret_cert = agent_secret;
    assert_int_equal (auth_check (&options, NULL, err, sizeof err), -1);
    assert_mentions (err, "not collector");
    options.secret_cert = keys.secret;
    options.authorised_dir = readme;
    assert_int_equal (auth_check (&options, NULL, err, sizeof err), -1);
    assert_mentions (err, "collector/authorised_certs");
    /* Plain mode reads nothing. */
    auth_options_t plain = {.plain = true};
    assert_int_equal (auth_check (&plain, &summary, err, sizeof err), 0);

    free (stray);
    free (readme);
    free (hidden);
    free (copy);
    free (collector_copy);
    free (broken);
    free (agent_secret);
    free_keys (&keys);
}

/* ---------------------------------------------------------------- handshakes */

/* A client socket with its handshake failures watched. */
typedef struct {
    zsock_t *socket;
    zsock_t *monitor;
} client_t;

static client_t
connect_client (int type, const char *endpoint, const char *secret, const char *server)
{
    static unsigned serial;
    client_t client;
    client.socket = zsock_new (type);
    assert_non_null (client.socket);
    zsock_set_linger (client.socket, 0);
    zsock_set_rcvtimeo (client.socket, TIMEOUT_MS);
    if (secret) {
        char err[CURVE_ERR_LEN];
        curve_client_t *keys = curve_client_new (secret, server, CURVE_ROLE_NONE, err, sizeof err);
        if (!keys)
            fail_msg ("%s", err);
        curve_client_apply (keys, client.socket);
        curve_client_destroy (&keys);
    }
    char monitor[64];
    snprintf (monitor, sizeof monitor, "inproc://test-auth-client-%u", serial++);
    assert_int_equal (zmq_socket_monitor (
                          zsock_resolve (client.socket), monitor,
                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                              ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED),
                      0);
    client.monitor = zsock_new (ZMQ_PAIR);
    assert_non_null (client.monitor);
    assert_int_equal (zsock_connect (client.monitor, "%s", monitor), 0);
    zsock_set_rcvtimeo (client.monitor, TIMEOUT_MS);
    assert_int_equal (zsock_connect (client.socket, "%s", endpoint), 0);
    return client;
}

/* The first handshake outcome the client saw: the event, and its value in *value. */
static unsigned
handshake_outcome (client_t *client, uint32_t *value)
{
    zmsg_t *event = zmsg_recv (client->monitor);
    assert_non_null (event);
    zframe_t *head = zmsg_first (event);
    uint16_t kind;
    memcpy (&kind, zframe_data (head), sizeof kind);
    if (value)
        memcpy (value, zframe_data (head) + 2, sizeof *value);
    zmsg_destroy (&event);
    return kind;
}

static void
close_client (client_t *client)
{
    zmq_socket_monitor (zsock_resolve (client->socket), NULL, 0);
    zsock_destroy (&client->monitor);
    zsock_destroy (&client->socket);
}

/* The collector's two servers on ipc:// with a real store, under a real authority. */
typedef struct {
    keys_t keys;
    char *store_dir;
    store_t *store;
    collector_config_t *config;
    auth_t *auth;
    ingest_t *ingest;
    query_t *query;
    char ingest_endpoint[600], query_endpoint[600];
} servers_t;

static servers_t *
start_servers (bool plain, size_t max_agents)
{
    servers_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->keys = make_keys ();
    fx->store_dir = path_in (fx->keys.dir, "store");
    char err[1024];
    fx->store = test_store_new (fx->store_dir, NULL);
    fx->config = collector_config_new ();
    assert_non_null (fx->config);
    /* A peer refused for now (the limit) is dropped when its handshake times out. */
    assert_int_equal (
        collector_config_set (fx->config, "limits/handshake_timeout_ms", "500", NULL, 0), 0);
    auth_options_t options = curve_options (&fx->keys);
    options.plain = plain;
    options.max_agents = max_agents;
    fx->auth = auth_new (&options, err, sizeof err);
    if (!fx->auth)
        fail_msg ("auth_new: %s", err);
    fx->ingest = ingest_new (fx->store, fx->config, err, sizeof err);
    assert_non_null (fx->ingest);
    if (ingest_secure (fx->ingest, fx->auth, err, sizeof err))
        fail_msg ("ingest_secure: %s", err);
    snprintf (fx->ingest_endpoint, sizeof fx->ingest_endpoint, "ipc://%s/ingest.sock",
              fx->keys.dir);
    if (ingest_bind (fx->ingest, fx->ingest_endpoint, err, sizeof err))
        fail_msg ("%s", err);
    fx->query = query_new (fx->store, fx->ingest, err, sizeof err);
    assert_non_null (fx->query);
    if (query_secure (fx->query, fx->auth, 500, err, sizeof err))
        fail_msg ("query_secure: %s", err);
    snprintf (fx->query_endpoint, sizeof fx->query_endpoint, "ipc://%s/query.sock", fx->keys.dir);
    if (query_bind (fx->query, fx->query_endpoint, err, sizeof err))
        fail_msg ("%s", err);
    return fx;
}

static void
stop_servers (servers_t **fx_p)
{
    servers_t *fx = *fx_p;
    query_destroy (&fx->query);
    ingest_destroy (&fx->ingest);
    auth_destroy (&fx->auth);
    auth_destroy (&fx->auth); /* safe twice */
    store_destroy (&fx->store);
    collector_config_destroy (&fx->config);
    free (fx->store_dir);
    free_keys (&fx->keys);
    free (fx);
    *fx_p = NULL;
}

static char *
key_path (servers_t *fx, const char *name, const char *suffix)
{
    char *file = join3 (name, suffix, "");
    char *path = path_in (fx->keys.dir, file);
    free (file);
    return path;
}

/* Sends a batch of records for bodies (NULL-terminated) from agent_id, returns its Ack. */
static Totalplace__Ack *
send_batch (client_t *client, const char *agent_id, uint64_t seq, const char *const *bodies)
{
    Totalplace__Batch *batch = test_batch_new (agent_id, seq);
    for (size_t i = 0; bodies[i]; i++) {
        char record_id[32];
        snprintf (record_id, sizeof record_id, "R%" PRIu64 "-%zu", seq, i);
        test_batch_add (batch, test_record (bodies[i], record_id, 1, "E01000001", "Housing",
                                            "2023-04", 100, false));
    }
    uint8_t *data = NULL;
    size_t size = 0;
    char err[WIRE_REASON_LEN];
    assert_int_equal (wire_encode (&batch->base, &data, &size, err, sizeof err), 0);
    test_batch_free (&batch);
    assert_int_equal (zmq_send (zsock_resolve (client->socket), data, size, 0), (int)size);
    free (data);
    zframe_t *reply = zframe_recv (client->socket);
    if (!reply)
        return NULL;
    Totalplace__Ack *ack = (Totalplace__Ack *)wire_decode (
        &totalplace__ack__descriptor, zframe_data (reply), zframe_size (reply), err, sizeof err);
    zframe_destroy (&reply);
    assert_non_null (ack);
    return ack;
}

static Totalplace__QueryReply *
ask_stats (client_t *client)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = 1;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    uint8_t *data = NULL;
    size_t size = 0;
    char err[WIRE_REASON_LEN];
    assert_int_equal (wire_encode (&query.base, &data, &size, err, sizeof err), 0);
    assert_int_equal (zmq_send (zsock_resolve (client->socket), data, size, 0), (int)size);
    free (data);
    zframe_t *reply = zframe_recv (client->socket);
    if (!reply)
        return NULL;
    Totalplace__QueryReply *answer = (Totalplace__QueryReply *)wire_decode (
        &totalplace__query_reply__descriptor, zframe_data (reply), zframe_size (reply), err,
        sizeof err);
    zframe_destroy (&reply);
    return answer;
}

static void
test_only_known_keys_of_the_right_role_connect (void **state)
{
    (void)state;
    servers_t *fx = start_servers (false, 100);
    char *agent = key_path (fx, "agent-a", CURVE_SECRET_SUFFIX);
    char *analyst = key_path (fx, "analyst", CURVE_SECRET_SUFFIX);
    char *stranger = key_path (fx, "stranger", CURVE_SECRET_SUFFIX);
    uint32_t status = 0;

    /* The authorised agent publishes; records of a body its certificate lacks are rejected with
     * a reason, the rest applied. */
    client_t good = connect_client (ZMQ_DEALER, fx->ingest_endpoint, agent, fx->keys.collector);
    assert_int_equal (handshake_outcome (&good, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    const char *const mixed[] = {"GB-A", "GB-OTHER", "GB-B", "GB-OTHER", NULL};
    Totalplace__Ack *ack = send_batch (&good, "agent-a", 1, mixed);
    assert_non_null (ack);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    assert_int_equal (ack->accepted, 2);
    assert_int_equal (ack->rejected, 2);
    assert_int_equal (ack->n_rejections, 2);
    assert_int_equal (ack->rejections[0]->index, 1);
    assert_int_equal (ack->rejections[1]->index, 3);
    assert_mentions (ack->rejections[0]->reason, "may not publish for body GB-OTHER");
    assert_mentions (ack->rejections[0]->reason, "GB-A,GB-B");
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    Totalplace__SpendingRecord *stored = NULL;
    char err[STORE_ERR_LEN];
    assert_int_equal (store_get_record (fx->store, "GB-A", "R1-0", &stored, err, sizeof err), 0);
    protobuf_c_message_free_unpacked (&stored->base, NULL);
    assert_int_equal (store_get_record (fx->store, "GB-OTHER", "R1-1", &stored, err, sizeof err),
                      STORE_ERR_NOTFOUND);
    /* Counted with the store's other rejections. */
    store_counters_t store_counts;
    assert_int_equal (store_counters (fx->store, &store_counts, err, sizeof err), 0);
    assert_int_equal (store_counts.rejected, 2);
    assert_int_equal (store_counts.accepted, 2);

    /* Its batches must carry its own name as agent id. */
    const char *const own[] = {"GB-A", NULL};
    ack = send_batch (&good, "agent-b", 2, own);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_MALFORMED);
    assert_mentions (ack->error, "agent-a");
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    ingest_counters_t counters;
    assert_int_equal (ingest_counters (fx->ingest, &counters, err, sizeof err), 0);
    assert_int_equal (counters.unauthorised_records, 2);
    assert_int_equal (counters.unauthorised_batches, 1);

    /* An unknown key never gets a message through: ZAP says 400. */
    client_t unknown =
        connect_client (ZMQ_DEALER, fx->ingest_endpoint, stranger, fx->keys.collector);
    assert_int_equal (handshake_outcome (&unknown, &status), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_int_equal (status, 400);
    /* Nor does a plain client of a CURVE server. */
    client_t plain = connect_client (ZMQ_DEALER, fx->ingest_endpoint, NULL, NULL);
    unsigned kind = handshake_outcome (&plain, NULL);
    assert_true (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    /* A query user's key may not publish, an agent's may not ask. */
    client_t reader_on_ingest =
        connect_client (ZMQ_DEALER, fx->ingest_endpoint, analyst, fx->keys.collector);
    assert_int_equal (handshake_outcome (&reader_on_ingest, &status),
                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    client_t agent_on_query =
        connect_client (ZMQ_DEALER, fx->query_endpoint, agent, fx->keys.collector);
    assert_int_equal (handshake_outcome (&agent_on_query, &status),
                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    client_t reader = connect_client (ZMQ_DEALER, fx->query_endpoint, analyst, fx->keys.collector);
    assert_int_equal (handshake_outcome (&reader, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    Totalplace__QueryReply *answer = ask_stats (&reader);
    assert_non_null (answer);
    assert_int_equal (answer->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    protobuf_c_message_free_unpacked (&answer->base, NULL);

    auth_counters_t seen;
    auth_counters (fx->auth, &seen);
    assert_true (seen.unknown_key >= 1);
    assert_true (seen.wrong_role >= 2);
    assert_int_equal (seen.agents_connected, 1);
    assert_int_equal (seen.query_connected, 1);

    /* Revocation: the agent's certificate leaves the folder; its next batch is answered RETRY
     * (it keeps it), the query user's next question QUERY_ERROR. */
    char *authorised_agent = path_in (fx->keys.folder, "agent-a.cert");
    char *authorised_analyst = path_in (fx->keys.folder, "analyst.cert");
    unlink (authorised_agent);
    unlink (authorised_analyst);
    auth_summary_t summary;
    assert_int_equal (auth_reload (fx->auth, &summary, err, sizeof err), 0);
    assert_int_equal (summary.agents, 0);
    ack = send_batch (&good, "agent-a", 3, own);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    assert_mentions (ack->error, "no longer authorised");
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    answer = ask_stats (&reader);
    assert_non_null (answer);
    assert_int_equal (answer->status, TOTALPLACE__QUERY_STATUS__QUERY_ERROR);
    assert_mentions (answer->error, "no longer authorised");
    protobuf_c_message_free_unpacked (&answer->base, NULL);
    client_t again = connect_client (ZMQ_DEALER, fx->ingest_endpoint, agent, fx->keys.collector);
    assert_int_equal (handshake_outcome (&again, &status), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    /* A folder that fails to load keeps what was loaded. */
    char *broken = path_in (fx->keys.folder, "broken.cert");
    write_file (broken, "garbage", 0644);
    assert_int_equal (auth_reload (fx->auth, NULL, err, sizeof err), -1);
    assert_mentions (err, "broken.cert");
    unlink (broken);
    copy_public (&fx->keys, "agent-a", "agent-a.cert");
    assert_int_equal (auth_reload (fx->auth, &summary, err, sizeof err), 0);
    assert_int_equal (summary.agents, 1);
    ack = send_batch (&good, "agent-a", 4, own);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    protobuf_c_message_free_unpacked (&ack->base, NULL);

    close_client (&good);
    close_client (&unknown);
    close_client (&plain);
    close_client (&reader_on_ingest);
    close_client (&agent_on_query);
    close_client (&reader);
    close_client (&again);
    free (agent);
    free (analyst);
    free (stranger);
    free (authorised_agent);
    free (authorised_analyst);
    free (broken);
    stop_servers (&fx);
}

/* Opens count raw connections to an ipc:// endpoint (junk: not ZeroMQ); each sends bytes that are
 * no ZMTP greeting when garbage is set (libzmq reports those disconnected without a handshake
 * event), else nothing. Returns the descriptors. */
static int *
open_junk (const char *endpoint, size_t count, bool garbage)
{
    int *fds = calloc (count, sizeof *fds);
    assert_non_null (fds);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf (address.sun_path, sizeof address.sun_path, "%s", endpoint + strlen ("ipc://"));
    for (size_t i = 0; i < count; i++) {
        fds[i] = socket (AF_UNIX, SOCK_STREAM, 0);
        assert_true (fds[i] >= 0);
        assert_int_equal (connect (fds[i], (struct sockaddr *)&address, sizeof address), 0);
        if (garbage)
            assert_int_equal (write (fds[i], "GET / HTTP/1.0\r\n\r\n", 18), 18);
    }
    return fds;
}

static void
close_junk (int **fds_p, size_t count)
{
    for (size_t i = 0; i < count; i++)
        close ((*fds_p)[i]);
    free (*fds_p);
    *fds_p = NULL;
}

/* Waits until the authority's counters satisfy done, at most 5 s. */
static auth_counters_t
wait_counters (auth_t *auth, bool (*done) (const auth_counters_t *, size_t), size_t arg)
{
    auth_counters_t seen = {0};
    for (int tries = 0; tries < 500; tries++) {
        auth_counters (auth, &seen);
        if (done (&seen, arg))
            break;
        zclock_sleep (10);
    }
    return seen;
}

static bool
agent_connections_are (const auth_counters_t *seen, size_t count)
{
    return seen->agent_connections == count;
}

static bool
agents_connected_are (const auth_counters_t *seen, size_t count)
{
    return seen->agents_connected == count;
}

static void
test_connections_are_bounded (void **state)
{
    (void)state;
    servers_t *fx = start_servers (false, 2);
    char *agent = key_path (fx, "agent-a", CURVE_SECRET_SUFFIX);
    char *analyst = key_path (fx, "analyst", CURVE_SECRET_SUFFIX);
    const char *const own[] = {"GB-A", NULL};
    client_t clients[3];
    /* Junk first: raw connections that never finish a handshake, some of them dropped at once for
     * a greeting that is not ZeroMQ's, must neither count nor lower the count. */
    int *junk = open_junk (fx->ingest_endpoint, 40, true);
    int *silent = open_junk (fx->ingest_endpoint, 20, false);
    auth_counters_t seen = wait_counters (fx->auth, agent_connections_are, 20);
    assert_int_equal (seen.agent_connections, 20); /* the silent ones, until the timeout */
    assert_int_equal (seen.agents_connected, 0);
    for (size_t i = 0; i < 2; i++) {
        clients[i] = connect_client (ZMQ_DEALER, fx->ingest_endpoint, agent, fx->keys.collector);
        assert_int_equal (handshake_outcome (&clients[i], NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
        Totalplace__Ack *ack = send_batch (&clients[i], "agent-a", 1 + i, own);
        assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
        protobuf_c_message_free_unpacked (&ack->base, NULL);
    }
    auth_counters (fx->auth, &seen);
    assert_int_equal (seen.agents_connected, 2);
    /* The third passes the handshake (its key is good) and its batch is refused in words; it keeps
     * the batch (ACK_RETRY). More junk changes nothing. */
    close_junk (&junk, 40);
    junk = open_junk (fx->ingest_endpoint, 40, true);
    clients[2] = connect_client (ZMQ_DEALER, fx->ingest_endpoint, agent, fx->keys.collector);
    assert_int_equal (handshake_outcome (&clients[2], NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    Totalplace__Ack *ack = send_batch (&clients[2], "agent-a", 3, own);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    assert_mentions (ack->error, "refused: agent limit reached");
    assert_mentions (ack->error, "2 agents connected already");
    assert_mentions (ack->error, "limits/max_agents");
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    auth_counters (fx->auth, &seen);
    assert_int_equal (seen.agents_connected, 2);
    assert_int_equal (seen.over_limit, 1);
    ingest_counters_t counters;
    char err[STORE_ERR_LEN];
    assert_int_equal (ingest_counters (fx->ingest, &counters, err, sizeof err), 0);
    assert_int_equal (counters.over_limit, 1);

    /* One leaves: the waiting one's next batch gets in, on the same connection. */
    close_client (&clients[0]);
    seen = wait_counters (fx->auth, agents_connected_are, 1);
    assert_int_equal (seen.agents_connected, 1);
    ack = send_batch (&clients[2], "agent-a", 3, own);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    auth_counters (fx->auth, &seen);
    assert_int_equal (seen.agents_connected, 2);
    /* A raised limit applies from the next message. */
    auth_set_limits (fx->auth, 3, 1);
    clients[0] = connect_client (ZMQ_DEALER, fx->ingest_endpoint, agent, fx->keys.collector);
    ack = send_batch (&clients[0], "agent-a", 4, own);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_APPLIED);
    protobuf_c_message_free_unpacked (&ack->base, NULL);

    /* The query client limit (1): the second client is told why, with its question's id. */
    client_t readers[2];
    for (size_t i = 0; i < 2; i++)
        readers[i] = connect_client (ZMQ_DEALER, fx->query_endpoint, analyst, fx->keys.collector);
    Totalplace__QueryReply *answer = ask_stats (&readers[0]);
    assert_int_equal (answer->status, TOTALPLACE__QUERY_STATUS__QUERY_OK);
    protobuf_c_message_free_unpacked (&answer->base, NULL);
    answer = ask_stats (&readers[1]);
    assert_int_equal (answer->status, TOTALPLACE__QUERY_STATUS__QUERY_ERROR);
    assert_int_equal (answer->query_id, 1);
    assert_mentions (answer->error, "refused: query client limit reached");
    assert_mentions (answer->error, "limits/max_query_clients");
    protobuf_c_message_free_unpacked (&answer->base, NULL);
    query_counters_t asked;
    query_counters (fx->query, &asked);
    assert_int_equal (asked.over_limit, 1);

    /* When everything is gone, nothing is counted: the junk never was. */
    close_junk (&junk, 40);
    close_junk (&silent, 20);
    for (size_t i = 0; i < 3; i++)
        close_client (&clients[i]);
    for (size_t i = 0; i < 2; i++)
        close_client (&readers[i]);
    seen = wait_counters (fx->auth, agent_connections_are, 0);
    assert_int_equal (seen.agent_connections, 0);
    assert_int_equal (seen.agents_connected, 0);
    for (int tries = 0; tries < 500 && (seen.query_connected || seen.query_connections); tries++) {
        zclock_sleep (10);
        auth_counters (fx->auth, &seen);
    }
    assert_int_equal (seen.query_connected, 0);
    assert_int_equal (seen.query_connections, 0);
    free (agent);
    free (analyst);
    stop_servers (&fx);
}

static void
test_plain_mode_lets_anyone_in_within_limits (void **state)
{
    (void)state;
    servers_t *fx = start_servers (true, 1);
    assert_true (auth_is_plain (fx->auth));
    auth_permit_t *permit = auth_permit (fx->auth, NULL, CURVE_ROLE_AGENT);
    assert_non_null (permit);
    assert_true (auth_permit_is_plain (permit));
    assert_true (auth_permit_allows_body (permit, "GB-ANYTHING"));
    assert_string_equal (auth_permit_bodies (permit), "*");
    auth_permit_destroy (&permit);
    auth_permit_destroy (&permit);

    client_t first = connect_client (ZMQ_DEALER, fx->ingest_endpoint, NULL, NULL);
    assert_int_equal (handshake_outcome (&first, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    const char *const bodies[] = {"GB-A", "GB-Z", NULL};
    Totalplace__Ack *ack = send_batch (&first, "whoever", 1, bodies);
    assert_non_null (ack);
    assert_int_equal (ack->accepted, 2);
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    /* The limit holds in plain mode too. */
    auth_counters_t seen = {0};
    auth_counters (fx->auth, &seen);
    assert_int_equal (seen.agents_connected, 1);
    client_t second = connect_client (ZMQ_DEALER, fx->ingest_endpoint, NULL, NULL);
    ack = send_batch (&second, "whoever", 2, bodies);
    assert_non_null (ack);
    assert_int_equal (ack->status, TOTALPLACE__ACK_STATUS__ACK_RETRY);
    assert_mentions (ack->error, "refused: agent limit reached");
    protobuf_c_message_free_unpacked (&ack->base, NULL);
    auth_counters (fx->auth, &seen);
    assert_int_equal (seen.over_limit, 1);
    /* A CURVE client of a plain server fails. */
    char *agent = key_path (fx, "agent-a", CURVE_SECRET_SUFFIX);
    client_t curve = connect_client (ZMQ_DEALER, fx->query_endpoint, agent, fx->keys.collector);
    unsigned kind = handshake_outcome (&curve, NULL);
    assert_true (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    close_client (&first);
    close_client (&second);
    close_client (&curve);
    free (agent);
    stop_servers (&fx);
}

static void
test_permits_follow_the_certificates (void **state)
{
    (void)state;
    keys_t keys = make_keys ();
    auth_options_t options = curve_options (&keys);
    char err[1024];
    auth_t *auth = auth_new (&options, err, sizeof err);
    if (!auth)
        fail_msg ("%s", err);
    /* One handler per process: a second authority says so. */
    auth_t *second = auth_new (&options, err, sizeof err);
    assert_null (second);
    assert_mentions (err, "zeromq.zap.01");

    char *agent_public = path_in (keys.dir, "agent-a" CURVE_PUBLIC_SUFFIX);
    zcert_t *cert = curve_load_public (agent_public, err, sizeof err);
    assert_non_null (cert);
    auth_permit_t *permit = auth_permit (auth, zcert_public_txt (cert), CURVE_ROLE_AGENT);
    assert_non_null (permit);
    assert_false (auth_permit_is_plain (permit));
    assert_string_equal (auth_permit_name (permit), "agent-a");
    assert_string_equal (auth_permit_bodies (permit), "GB-A,GB-B");
    assert_true (auth_permit_allows_body (permit, "GB-A"));
    assert_true (auth_permit_allows_body (permit, "GB-B"));
    assert_false (auth_permit_allows_body (permit, "GB-AB"));
    assert_false (auth_permit_allows_body (permit, "GB-"));
    assert_false (auth_permit_allows_body (permit, ""));
    assert_false (auth_permit_allows_body (permit, NULL));
    auth_permit_destroy (&permit);
    assert_null (auth_permit (auth, zcert_public_txt (cert), CURVE_ROLE_QUERY));
    assert_null (auth_permit (auth, NULL, CURVE_ROLE_AGENT));
    assert_null (auth_permit (auth, "not a key", CURVE_ROLE_AGENT));
    zcert_destroy (&cert);
    zsock_t *socket = zsock_new (ZMQ_ROUTER);
    assert_int_equal (auth_secure (auth, socket, CURVE_ROLE_COLLECTOR, err, sizeof err), -1);
    zsock_destroy (&socket);
    auth_destroy (&auth);
    free (agent_public);
    free_keys (&keys);
}

/* ---------------------------------------------------------------- the agent's config */

static void
test_agent_config_needs_keys_or_a_local_plain_collector (void **state)
{
    (void)state;
    agent_config_t *config = agent_config_new ();
    assert_non_null (config);
    char err[SETTINGS_ERR_LEN];
    const char *base[][2] = {{"agent/id", "a1"},
                             {"agent/body_id", "GB-A"},
                             {"agent/inbox", "/tmp/i"},
                             {"agent/state_dir", "/tmp/s"},
                             {"agent/collector", "tcp://collector.example.org:7700"}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        assert_int_equal (agent_config_set (config, base[i][0], base[i][1], NULL, 0), 0);
    assert_false (config->allow_plain);
    assert_int_equal (agent_config_validate (config, err, sizeof err), -1);
    assert_mentions (err, "agent/curve_secret_cert");
    assert_int_equal (
        agent_config_set (config, "agent/curve_secret_cert", "/k/a1.cert_secret", NULL, 0), 0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), -1);
    assert_mentions (err, "agent/collector_public_cert");
    assert_int_equal (
        agent_config_set (config, "agent/collector_public_cert", "/k/collector.cert", NULL, 0), 0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), 0);
    /* Plain: only to a collector on this host, whatever keys are set. */
    assert_int_equal (agent_config_set (config, "agent/allow_plain", "1", NULL, 0), 0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), -1);
    assert_mentions (err, "agent/collector");
    assert_mentions (err, "tcp://collector.example.org:7700");
    assert_int_equal (
        agent_config_set (config, "agent/collector", "ipc:///run/totalplace/ingest", NULL, 0), 0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), 0);
    agent_config_destroy (&config);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_plain_only_on_this_host),
        cmocka_unit_test (test_keygen_writes_a_pair),
        cmocka_unit_test (test_loading_refuses_what_is_wrong),
        cmocka_unit_test (test_folder_is_checked),
        cmocka_unit_test (test_permits_follow_the_certificates),
        cmocka_unit_test (test_only_known_keys_of_the_right_role_connect),
        cmocka_unit_test (test_connections_are_bounded),
        cmocka_unit_test (test_plain_mode_lets_anyone_in_within_limits),
        cmocka_unit_test (test_agent_config_needs_keys_or_a_local_plain_collector),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
