/* totalplace: the central team's CLI. Answers questions about neighbourhood totals from a
 * collector's store folder opened read-only (--db) or from a running collector's query endpoint
 * (--collector), the same answers either way, as a table, CSV or JSON. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "cli_export.h"
#include "cli_report.h"
#include "cli_store.h"
#include "curve.h"
#include "ingest.h"
#include "period.h"
#include "query.h"
#include "query_args.h"
#include "report.h"
#include "server_thread.h"
#include "store.h"
#include "wire.h"

#define ERR_LEN 1024

/* ---------------------------------------------------------------- where answers come from */

/* The questions the CLI asks, as operations on a source: the db_ functions below read the store,
 * the remote_ ones ask a collector over its query socket, and every command works unchanged on
 * either. Each returns 0, STORE_ERR_NOTFOUND or another negative code with a message, as the
 * store_ functions do. */
typedef struct {
    void *handle;
    int (*neighbourhoods) (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len);
    int (*totals) (void *handle, const char *neighbourhood, store_breakdown_t by,
                   const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
                   size_t err_len);
    int (*get_record) (void *handle, const char *body_id, const char *record_id,
                       Totalplace__SpendingRecord **record, char *err, size_t err_len);
    int (*counters) (void *handle, store_counters_t *counters, char *err, size_t err_len);
    int (*agents) (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len);
    int (*identity) (void *handle, store_identity_t *identity, char *err, size_t err_len);
    /* The running collector's own counters; NULL for a store read directly. */
    int (*collector_counters) (void *handle, ingest_counters_t *ingest, query_counters_t *queries,
                               char *err, size_t err_len);
    void (*close) (void **handle);
} source_t;

static int
db_neighbourhoods (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    return store_neighbourhoods (handle, row, arg, err, err_len);
}

static int
db_totals (void *handle, const char *neighbourhood, store_breakdown_t by,
           const store_filter_t *filter, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    return store_totals (handle, neighbourhood, by, filter, row, arg, err, err_len);
}

static int
db_get_record (void *handle, const char *body_id, const char *record_id,
               Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    return store_get_record (handle, body_id, record_id, record, err, err_len);
}

static int
db_counters (void *handle, store_counters_t *counters, char *err, size_t err_len)
{
    return store_counters (handle, counters, err, err_len);
}

static int
db_agents (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    return store_agents (handle, fn, arg, err, err_len);
}

static int
db_identity (void *handle, store_identity_t *identity, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    return store_identity (handle, identity);
}

static void
db_close (void **handle)
{
    store_t *store = *handle;
    store_destroy (&store);
    *handle = NULL;
}

/* Opens dir read-only; cli_store_open says what is wrong with a folder that holds no usable
 * store and sets *code (a store error code, for the exit status). */
static int
db_open (source_t *source, const char *dir, int *code, char *err, size_t err_len)
{
    store_t *store = cli_store_open (dir, code, err, err_len);
    if (!store)
        return -1;
    *source = (source_t){store,     db_neighbourhoods, db_totals, db_get_record, db_counters,
                         db_agents, db_identity,       NULL,      db_close};
    return 0;
}

/* ---------------------------------------------------------------- asking a running collector */

/* Room for a reply over the wire limit, so that an oversized one is read and refused here rather
 * than dropped by libzmq (which would look like no answer at all). */
#define REMOTE_SOCKET_MAX_MESSAGE_BYTES (WIRE_MAX_MESSAGE_BYTES + 64u * 1024u)

typedef struct {
    const char *endpoint;
    int timeout_ms;
    zsock_t *dealer;
    zsock_t *monitor; /* PAIR: the dealer's handshake failures, to say why nothing comes */
    char monitor_endpoint[64];
    bool curve;
    char refused[512]; /* why the collector refused the connection, once it has */
    uint64_t last_id;
    /* One STATS answer serves the counters, the agents and the collector's counters, so that
     * they are read together. */
    Totalplace__QueryReply *stats;
} remote_t;

static int
remote_status (const Totalplace__QueryReply *reply, char *err, size_t err_len)
{
    const char *error = reply->error && *reply->error ? reply->error : "no reason given";
    switch (reply->status) {
    case TOTALPLACE__QUERY_STATUS__QUERY_OK:
        return 0;
    case TOTALPLACE__QUERY_STATUS__QUERY_NOT_FOUND:
        snprintf (err, err_len, "%s", error);
        return STORE_ERR_NOTFOUND;
    case TOTALPLACE__QUERY_STATUS__QUERY_BAD_QUERY:
        snprintf (err, err_len, "the collector refused the question: %s", error);
        return STORE_ERR;
    case TOTALPLACE__QUERY_STATUS__QUERY_ERROR:
        /* A refusal (the query client limit) says so itself, first: it is not a failure. */
        if (strncmp (error, "refused: ", 9) == 0)
            snprintf (err, err_len, "%s", error);
        else
            snprintf (err, err_len, "the collector could not answer: %s", error);
        return STORE_ERR;
    default:
        snprintf (err, err_len, "the collector's answer has an unknown status %d",
                  (int)reply->status);
        return STORE_ERR;
    }
}

/* Reads one monitor event; a failed handshake says why the collector will not answer. */
static void
remote_read_event (remote_t *self)
{
    zmsg_t *event = zmsg_recv (self->monitor);
    zframe_t *head = event ? zmsg_first (event) : NULL;
    if (head && zframe_size (head) >= 6) {
        uint16_t kind;
        uint32_t value;
        memcpy (&kind, zframe_data (head), sizeof kind);
        memcpy (&value, zframe_data (head) + 2, sizeof value);
        if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            snprintf (self->refused, sizeof self->refused,
                      "the collector at %.128s refused our key (ZAP status %u): is our "
                      "certificate's public half in its collector/authorised_certs folder, with "
                      "role query (docs/security.md)?",
                      self->endpoint, value);
        else if (!self->curve)
            snprintf (self->refused, sizeof self->refused,
                      "the collector at %.128s refused a plain connection: it wants CURVE keys "
                      "(--cert and --collector-cert)",
                      self->endpoint);
        else {
            char why[160];
            server_thread_describe_handshake (kind, value, why, sizeof why);
            snprintf (self->refused, sizeof self->refused,
                      "the handshake with the collector at %.128s failed (%s): is "
                      "--collector-cert its certificate (one running with "
                      "collector/allow_plain = 1 needs --allow-plain instead)?",
                      self->endpoint, why);
        }
    }
    zmsg_destroy (&event);
}

/* Waits for the socket to be ready for events until deadline (zclock_mono). Returns 1 when ready,
 * 0 at the deadline, -1 on error, -2 when the collector refused the connection (self->refused
 * says why). */
static int
remote_wait (remote_t *self, short events, int64_t deadline)
{
    void *handle = zsock_resolve (self->dealer);
    while (true) {
        if (*self->refused)
            return -2;
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return 0;
        zmq_pollitem_t items[2] = {{handle, 0, events, 0},
                                   {zsock_resolve (self->monitor), 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll (items, 2, (long)left);
        if (rc == -1 && zmq_errno () != EINTR)
            return -1;
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
            remote_read_event (self);
        if (rc > 0 && (items[0].revents & events))
            return 1;
    }
}

/* Sends query and waits for its answer, at most timeout_ms in all. On 0, *reply is the decoded
 * answer with status OK (free it with protobuf_c_message_free_unpacked); otherwise the status's
 * error, or a timeout, is in err. */
static int
remote_ask (remote_t *self, Totalplace__Query *query, Totalplace__QueryReply **reply, char *err,
            size_t err_len)
{
    query->query_id = ++self->last_id;
    uint8_t *data = NULL;
    size_t size = 0;
    char reason[STORE_ERR_LEN];
    if (wire_encode (&query->base, &data, &size, reason, sizeof reason)) {
        snprintf (err, err_len, "cannot encode the question: %s", reason);
        return STORE_ERR;
    }
    void *handle = zsock_resolve (self->dealer);
    int64_t deadline = zclock_mono () + self->timeout_ms;
    int ready = remote_wait (self, ZMQ_POLLOUT, deadline);
    int sent = ready == 1 ? zmq_send (handle, data, size, ZMQ_DONTWAIT) : -1;
    free (data);
    while (sent != -1) {
        ready = remote_wait (self, ZMQ_POLLIN, deadline);
        if (ready != 1)
            break;
        zmq_msg_t message;
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&message);
            continue;
        }
        bool more = zmq_msg_more (&message);
        *reply = (Totalplace__QueryReply *)wire_decode (
            &totalplace__query_reply__descriptor, zmq_msg_data (&message), zmq_msg_size (&message),
            reason, sizeof reason);
        zmq_msg_close (&message);
        while (more) { /* a reply is one frame; drop any others */
            zmq_msg_init (&message);
            more = zmq_msg_recv (&message, handle, ZMQ_DONTWAIT) != -1 && zmq_msg_more (&message);
            zmq_msg_close (&message);
        }
        if (!*reply) {
            snprintf (err, err_len, "the answer from %s is not a QueryReply: %s", self->endpoint,
                      reason);
            return STORE_ERR;
        }
        /* An answer to an earlier question that timed out is not this one's. */
        if ((*reply)->query_id != query->query_id) {
            protobuf_c_message_free_unpacked (&(*reply)->base, NULL);
            *reply = NULL;
            continue;
        }
        int rc = remote_status (*reply, err, err_len);
        if (rc) {
            protobuf_c_message_free_unpacked (&(*reply)->base, NULL);
            *reply = NULL;
        }
        return rc;
    }
    if (ready == -2)
        snprintf (err, err_len, "%s", self->refused);
    else if (ready == -1)
        snprintf (err, err_len, "asking %s failed: %s", self->endpoint,
                  zmq_strerror (zmq_errno ()));
    else
        snprintf (err, err_len,
                  "no answer from %s within %d ms: is the collector running, is %s one of "
                  "its query endpoints (collector/query_endpoints)%s?",
                  self->endpoint, self->timeout_ms, self->endpoint,
                  self->curve ? ", and is --collector-cert its certificate" : "");
    return STORE_ERR;
}

static int
remote_rows (const Totalplace__QueryReply *reply, store_row_fn *row, void *arg)
{
    for (size_t i = 0; i < reply->n_rows; i++) {
        const Totalplace__TotalRow *r = reply->rows[i];
        store_amount_t amount = {r->amount_pence, r->records};
        if (row (arg, r->key ? r->key : "", amount))
            break;
    }
    return 0;
}

static int
remote_neighbourhoods (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS;
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, &query, &reply, err, err_len);
    if (rc == 0) {
        remote_rows (reply, row, arg);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
    return rc;
}

static Totalplace__Breakdown
remote_breakdown (store_breakdown_t by)
{
    switch (by) {
    case STORE_BY_BODY:
        return TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    case STORE_BY_SERVICE:
        return TOTALPLACE__BREAKDOWN__BREAKDOWN_SERVICE;
    case STORE_BY_FISCAL_YEAR:
        return TOTALPLACE__BREAKDOWN__BREAKDOWN_FISCAL_YEAR;
    case STORE_BY_MONTH:
        return TOTALPLACE__BREAKDOWN__BREAKDOWN_MONTH;
    case STORE_BY_POOLABLE:
        return TOTALPLACE__BREAKDOWN__BREAKDOWN_POOLABLE;
    case STORE_BY_NEIGHBOURHOOD:
        return TOTALPLACE__BREAKDOWN__BREAKDOWN_NEIGHBOURHOOD;
    case STORE_BY_NONE:
        break;
    }
    return TOTALPLACE__BREAKDOWN__BREAKDOWN_NONE;
}

/* protobuf-c writes no string field that is NULL or "" (proto3), so absent filters are "". */
static char *
remote_text (const char *text)
{
    return (char *)(text ? text : "");
}

static int
remote_totals (void *handle, const char *neighbourhood, store_breakdown_t by,
               const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
               size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    Totalplace__TotalsFilter wanted = TOTALPLACE__TOTALS_FILTER__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = remote_text (neighbourhood);
    query.by = remote_breakdown (by);
    if (filter) {
        wanted.body_id = remote_text (filter->body_id);
        wanted.service = remote_text (filter->service);
        wanted.fiscal_year = remote_text (filter->fiscal_year);
        wanted.month = remote_text (filter->month);
        wanted.poolable = filter->poolable < 0   ? TOTALPLACE__POOLABLE_FILTER__POOLABLE_ANY
                          : filter->poolable > 0 ? TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES
                                                 : TOTALPLACE__POOLABLE_FILTER__POOLABLE_NO;
        query.filter = &wanted;
    }
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, &query, &reply, err, err_len);
    if (rc == 0) {
        remote_rows (reply, row, arg);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
    return rc;
}

static int
remote_get_record (void *handle, const char *body_id, const char *record_id,
                   Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_RECORD;
    query.body_id = remote_text (body_id);
    query.record_id = remote_text (record_id);
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, &query, &reply, err, err_len);
    if (rc)
        return rc;
    const Totalplace__SpendingRecord *answer = reply->record;
    char reason[WIRE_REASON_LEN];
    if (!answer || strcmp (answer->body_id, body_id) != 0 ||
        strcmp (answer->record_id, record_id) != 0) {
        snprintf (err, err_len, "the collector answered with another record than %s/%s", body_id,
                  record_id);
        rc = STORE_ERR;
    }
    /* The caller frees the record on its own, so it gets a copy out of the reply. */
    else {
        uint8_t *data = NULL;
        size_t size = 0;
        if (wire_encode (&answer->base, &data, &size, reason, sizeof reason) ||
            !(*record = (Totalplace__SpendingRecord *)wire_decode (
                  &totalplace__spending_record__descriptor, data, size, reason, sizeof reason))) {
            snprintf (err, err_len, "cannot copy the record: %s", reason);
            rc = STORE_ERR;
        }
        free (data);
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return rc;
}

static int
remote_stats (remote_t *self, char *err, size_t err_len)
{
    if (self->stats)
        return 0;
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
    int rc = remote_ask (self, &query, &self->stats, err, err_len);
    if (rc == 0 && (!self->stats->store || !self->stats->identity)) {
        snprintf (err, err_len, "the collector's statistics hold no store counters or identity");
        protobuf_c_message_free_unpacked (&self->stats->base, NULL);
        self->stats = NULL;
        rc = STORE_ERR;
    }
    return rc;
}

static int
remote_counters (void *handle, store_counters_t *counters, char *err, size_t err_len)
{
    remote_t *self = handle;
    int rc = remote_stats (self, err, err_len);
    if (rc)
        return rc;
    const Totalplace__StoreCounters *store = self->stats->store;
    *counters = (store_counters_t){
        .batches = store->batches,
        .accepted = store->accepted,
        .duplicate = store->duplicate,
        .superseded = store->superseded,
        .stale = store->stale,
        .rejected = store->rejected,
        .records_stored = store->records_stored,
        .map_size = (size_t)store->map_size_bytes,
        .used_bytes = (size_t)store->used_bytes,
    };
    return 0;
}

static int
remote_identity (void *handle, store_identity_t *identity, char *err, size_t err_len)
{
    remote_t *self = handle;
    int rc = remote_stats (self, err, err_len);
    if (rc)
        return rc;
    const Totalplace__StoreIdentity *in = self->stats->identity;
    *identity = (store_identity_t){.format = in->format, .created = in->created};
    snprintf (identity->store_id, sizeof identity->store_id, "%s",
              in->store_id ? in->store_id : "");
    return 0;
}

static int
remote_agents (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    remote_t *self = handle;
    int rc = remote_stats (self, err, err_len);
    for (size_t i = 0; rc == 0 && i < self->stats->n_agents; i++) {
        const Totalplace__AgentStatus *status = self->stats->agents[i];
        store_agent_t agent = {status->agent_id ? status->agent_id : "", status->last_batch_seq,
                               status->batches, status->last_seen};
        if (fn (arg, &agent))
            break;
    }
    return rc;
}

static int
remote_collector_counters (void *handle, ingest_counters_t *ingest, query_counters_t *queries,
                           char *err, size_t err_len)
{
    remote_t *self = handle;
    int rc = remote_stats (self, err, err_len);
    if (rc)
        return rc;
    memset (ingest, 0, sizeof *ingest);
    memset (queries, 0, sizeof *queries);
    const Totalplace__IngestCounters *in = self->stats->ingest;
    if (in)
        *ingest = (ingest_counters_t){
            .frames = in->frames,
            .batches = in->batches,
            .records = in->records,
            .malformed = in->malformed,
            .oversized = in->oversized,
            .retry_acks = in->retry_acks,
            .groups = in->groups,
            .largest_group = in->largest_group,
            .largest_group_records = in->largest_group_records,
            .unsent_acks = in->unsent_acks,
            .connections = in->connections,
            .disconnects = in->disconnects,
            .handshake_failures = in->handshake_failures,
            .status_requests = in->status_requests,
        };
    const Totalplace__QueryCounters *q = self->stats->queries;
    if (q)
        *queries = (query_counters_t){
            .queries = q->queries,
            .bad_queries = q->bad_queries,
            .not_found = q->not_found,
            .errors = q->errors,
            .unsent = q->unsent,
        };
    return 0;
}

static void
remote_close (void **handle)
{
    remote_t *self = *handle;
    if (self) {
        if (self->stats)
            protobuf_c_message_free_unpacked (&self->stats->base, NULL);
        if (self->monitor) {
            zmq_socket_monitor (zsock_resolve (self->dealer), NULL, 0);
            zsock_destroy (&self->monitor);
        }
        zsock_destroy (&self->dealer);
        free (self);
    }
    *handle = NULL;
}

/* Connects to args->collector: with CURVE keys (--cert and --collector-cert, or
 * $TOTALPLACE_CERT and $TOTALPLACE_COLLECTOR_CERT), or plain with --allow-plain to a local
 * endpoint. Nothing is sent yet, so an absent collector shows as no answer in time. */
static int
remote_open (source_t *source, const query_args_t *args, char *err, size_t err_len)
{
    /* CZMQ would catch Ctrl-C and leave us waiting out the timeout; let it stop the command. */
    zsys_handler_set (NULL);
    const char *endpoint = args->collector;
    curve_client_t *keys = NULL;
    if (args->allow_plain) {
        if (curve_check_plain ("--allow-plain", endpoint, err, err_len))
            return -1;
    }
    else {
        const char *cert = args->cert ? args->cert : getenv ("TOTALPLACE_CERT");
        const char *server =
            args->collector_cert ? args->collector_cert : getenv ("TOTALPLACE_COLLECTOR_CERT");
        if (!cert || !*cert || !server || !*server) {
            snprintf (err, err_len,
                      "--collector needs CURVE keys: --cert FILE (our NAME.cert_secret, role "
                      "query) and --collector-cert FILE (the collector's NAME.cert), or "
                      "$TOTALPLACE_CERT and $TOTALPLACE_COLLECTOR_CERT; or --allow-plain for an "
                      "ipc:// or loopback collector running without CURVE");
            return -1;
        }
        keys = curve_client_new (cert, server, CURVE_ROLE_QUERY, err, err_len);
        if (!keys)
            return -1;
    }
    remote_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_len, "out of memory");
        curve_client_destroy (&keys);
        return -1;
    }
    self->endpoint = endpoint;
    self->timeout_ms = args->timeout_ms;
    self->curve = keys != NULL;
    self->dealer = zsock_new (ZMQ_DEALER);
    if (!self->dealer) {
        snprintf (err, err_len, "cannot create a socket: %s", zmq_strerror (zmq_errno ()));
        goto error;
    }
    /* A question left unanswered is abandoned with the command, never waited for at exit. */
    zsock_set_linger (self->dealer, 0);
    zsock_set_maxmsgsize (self->dealer, (int64_t)REMOTE_SOCKET_MAX_MESSAGE_BYTES);
    if (keys)
        curve_client_apply (keys, self->dealer);
    curve_client_destroy (&keys); /* the socket holds its own copy of the keys */
    snprintf (self->monitor_endpoint, sizeof self->monitor_endpoint,
              "inproc://totalplace-cli-monitor-%p", (void *)self);
    if (zmq_socket_monitor (zsock_resolve (self->dealer), self->monitor_endpoint,
                            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == -1 ||
        !(self->monitor = zsock_new (ZMQ_PAIR)) ||
        zsock_connect (self->monitor, "%s", self->monitor_endpoint) == -1) {
        snprintf (err, err_len, "cannot watch the connection: %s", zmq_strerror (zmq_errno ()));
        goto error;
    }
    if (zsock_connect (self->dealer, "%s", endpoint) == -1) {
        snprintf (err, err_len, "cannot connect to %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        goto error;
    }
    *source = (source_t){self,
                         remote_neighbourhoods,
                         remote_totals,
                         remote_get_record,
                         remote_counters,
                         remote_agents,
                         remote_identity,
                         remote_collector_counters,
                         remote_close};
    return 0;
error:
    curve_client_destroy (&keys);
    void *handle = self;
    remote_close (&handle);
    return -1;
}

/* ---------------------------------------------------------------- keygen */

static int
run_keygen (const query_args_t *args)
{
    char public_path[4096], secret_path[4096], err[CURVE_ERR_LEN];
    if (curve_keygen (args->keygen_dir, args->keygen_name, args->keygen_role, args->keygen_bodies,
                      public_path, secret_path, sizeof public_path, err, sizeof err)) {
        fprintf (stderr, "totalplace: keygen: %s\n", err);
        return QUERY_EXIT_FAILED;
    }
    const char *where = args->keygen_role == CURVE_ROLE_COLLECTOR
                            ? "give it to every agent and query user (agent/collector_public_cert, "
                              "--collector-cert)"
                            : "copy it into the collector's collector/authorised_certs folder, "
                              "then reload the collector (SIGHUP)";
    printf ("public certificate  %s\n  %s\n", public_path, where);
    printf ("secret certificate  %s\n  mode 0600: keep it on its owner's host only\n", secret_path);
    printf ("role %s%s%s\n", curve_role_name (args->keygen_role),
            args->keygen_bodies ? ", bodies " : "", args->keygen_bodies ? args->keygen_bodies : "");
    return QUERY_EXIT_OK;
}

/* ---------------------------------------------------------------- collecting rows */

/* Rows of a breakdown kept for a second pass (pooling joins two breakdowns). */
typedef struct {
    char **keys;
    store_amount_t *amounts;
    size_t count, capacity;
    bool out_of_memory;
} rows_t;

static int
rows_add (void *arg, const char *key, store_amount_t amount)
{
    rows_t *rows = arg;
    if (rows->count == rows->capacity) {
        size_t capacity = rows->capacity ? rows->capacity * 2 : 16;
        char **keys = realloc (rows->keys, capacity * sizeof *keys);
        if (keys)
            rows->keys = keys;
        store_amount_t *amounts = realloc (rows->amounts, capacity * sizeof *amounts);
        if (amounts)
            rows->amounts = amounts;
        if (!keys || !amounts) {
            rows->out_of_memory = true;
            return 1;
        }
        rows->capacity = capacity;
    }
    rows->keys[rows->count] = strdup (key);
    if (!rows->keys[rows->count]) {
        rows->out_of_memory = true;
        return 1;
    }
    rows->amounts[rows->count++] = amount;
    return 0;
}

static void
rows_clear (rows_t *rows)
{
    for (size_t i = 0; i < rows->count; i++)
        free (rows->keys[i]);
    free (rows->keys);
    free (rows->amounts);
    *rows = (rows_t){0};
}

/* Calls a source operation that fills rows, turning a stop for lack of memory into an error. */
static int
check_rows (int rc, const rows_t *rows, char *err, size_t err_len)
{
    if (rc == 0 && rows->out_of_memory) {
        snprintf (err, err_len, "out of memory");
        return STORE_ERR;
    }
    return rc;
}

/* ---------------------------------------------------------------- commands */

typedef struct {
    report_t *report;
    int64_t rank;
} rank_state_t;

static int
ranked_row (void *arg, const char *key, store_amount_t amount)
{
    rank_state_t *state = arg;
    report_row (state->report);
    report_integer (state->report, ++state->rank);
    report_text (state->report, key);
    report_pence (state->report, amount.amount_pence);
    report_integer (state->report, amount.records);
    return 0;
}

static int
run_neighbourhoods (const source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t columns[] = {{"rank", "rank", REPORT_INTEGER},
                                              {"neighbourhood", "neighbourhood", REPORT_TEXT},
                                              {"total", "amount_pence", REPORT_PENCE},
                                              {"records", "records", REPORT_INTEGER}};
    report_set_caption (report, "Neighbourhoods ranked by total");
    report_add_section (report, "rows", columns, 4, false);
    rank_state_t state = {report, 0};
    return source->neighbourhoods (source->handle, ranked_row, &state, err, err_len);
}

static int
amount_row (void *arg, const char *key, store_amount_t amount)
{
    report_amount_row (arg, key, amount.amount_pence, amount.records);
    return 0;
}

static int
total_row (void *arg, const char *key, store_amount_t amount)
{
    (void)key;
    report_row (arg);
    report_pence (arg, amount.amount_pence);
    report_integer (arg, amount.records);
    return 0;
}

static const char *
poolable_name (int poolable)
{
    return poolable < 0 ? NULL : poolable ? "yes" : "no";
}

/* Appends to a caption being built; a caption cut short is still a caption. */
static void
caption_append (char *caption, size_t len, const char *format, ...)
{
    size_t used = strlen (caption);
    if (used + 1 >= len)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (caption + used, len - used, format, args);
    va_end (args);
}

static int
run_totals (const source_t *source, const query_args_t *args, report_t *report, char *err,
            size_t err_len)
{
    const store_filter_t *filter = &args->filter;
    const char *by = query_breakdown_name (args->by);
    report_set_param (report, "neighbourhood", args->neighbourhood);
    report_set_param (report, "by", by);
    report_set_param (report, "fiscal_year", filter->fiscal_year);
    report_set_param (report, "month", filter->month);
    report_set_param (report, "body", filter->body_id);
    report_set_param (report, "service", filter->service);
    report_set_param (report, "poolable", poolable_name (filter->poolable));

    char caption[512];
    snprintf (caption, sizeof caption, "Totals of %s",
              args->neighbourhood ? args->neighbourhood : "all neighbourhoods");
    if (by)
        caption_append (caption, sizeof caption, " by %s", by);
    const struct {
        const char *what, *value;
    } filters[] = {{"fiscal year", filter->fiscal_year},
                   {"month", filter->month},
                   {"body", filter->body_id},
                   {"service", filter->service},
                   {"poolable", poolable_name (filter->poolable)}};
    const char *separator = " (";
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (filters[i].value) {
            caption_append (caption, sizeof caption, "%s%s %s", separator, filters[i].what,
                            filters[i].value);
            separator = ", ";
        }
    if (*separator == ',')
        caption_append (caption, sizeof caption, ")");
    report_set_caption (report, caption);

    if (by) {
        report_column_t columns[] = {{by, "key", REPORT_TEXT},
                                     {"total", "amount_pence", REPORT_PENCE},
                                     {"records", "records", REPORT_INTEGER}};
        report_add_section (report, "rows", columns, 3, false);
        return source->totals (source->handle, args->neighbourhood, args->by, filter, amount_row,
                               report, err, err_len);
    }
    static const report_column_t columns[] = {{"total", "amount_pence", REPORT_PENCE},
                                              {"records", "records", REPORT_INTEGER}};
    report_add_section (report, "rows", columns, 2, false);
    return source->totals (source->handle, args->neighbourhood, STORE_BY_NONE, filter, total_row,
                           report, err, err_len);
}

/* The pooling rows of one neighbourhood: its bodies' totals joined with their poolable part.
 * Both lists come sorted by body, so one merge pass joins them. */
static int
pooling_of (const source_t *source, const char *neighbourhood, report_t *report, char *err,
            size_t err_len)
{
    rows_t all = {0}, poolable = {0};
    store_filter_t only_poolable = {.poolable = 1};
    int rc = source->totals (source->handle, neighbourhood, STORE_BY_BODY, NULL, rows_add, &all,
                             err, err_len);
    rc = check_rows (rc, &all, err, err_len);
    if (rc == 0) {
        rc = source->totals (source->handle, neighbourhood, STORE_BY_BODY, &only_poolable, rows_add,
                             &poolable, err, err_len);
        rc = check_rows (rc, &poolable, err, err_len);
    }
    for (size_t i = 0, j = 0; rc == 0 && i < all.count; i++) {
        while (j < poolable.count && strcmp (poolable.keys[j], all.keys[i]) < 0)
            j++;
        int64_t poolable_pence = 0;
        if (j < poolable.count && strcmp (poolable.keys[j], all.keys[i]) == 0)
            poolable_pence = poolable.amounts[j].amount_pence;
        report_row (report);
        report_text (report, neighbourhood);
        report_text (report, all.keys[i]);
        report_pence (report, all.amounts[i].amount_pence);
        report_pence (report, poolable_pence);
        report_share (report, poolable_pence, all.amounts[i].amount_pence);
        report_integer (report, all.amounts[i].records);
    }
    rows_clear (&all);
    rows_clear (&poolable);
    return rc;
}

static int
run_pooling (const source_t *source, const query_args_t *args, report_t *report, char *err,
             size_t err_len)
{
    static const report_column_t columns[] = {
        {"neighbourhood", "neighbourhood", REPORT_TEXT},
        {"body", "body", REPORT_TEXT},
        {"total", "amount_pence", REPORT_PENCE},
        {"poolable", "poolable_pence", REPORT_PENCE},
        {"share", "poolable_share_permille", REPORT_SHARE},
        {"records", "records", REPORT_INTEGER},
    };
    report_set_param (report, "neighbourhood", args->neighbourhood);
    char caption[128];
    snprintf (caption, sizeof caption, "Poolable share of each body's spending in %s",
              args->neighbourhood ? args->neighbourhood : "every neighbourhood (ranked)");
    report_set_caption (report, caption);
    report_add_section (report, "rows", columns, 6, false);
    if (args->neighbourhood)
        return pooling_of (source, args->neighbourhood, report, err, err_len);

    rows_t ranked = {0};
    int rc = source->neighbourhoods (source->handle, rows_add, &ranked, err, err_len);
    rc = check_rows (rc, &ranked, err, err_len);
    for (size_t i = 0; rc == 0 && i < ranked.count; i++) {
        rc = pooling_of (source, ranked.keys[i], report, err, err_len);
        /* Every record of it was withdrawn since the ranking was read: it is gone, not an error. */
        if (rc == STORE_ERR_NOTFOUND)
            rc = 0;
    }
    rows_clear (&ranked);
    return rc;
}

static int
run_record (const source_t *source, const query_args_t *args, report_t *report, char *err,
            size_t err_len)
{
    static const report_column_t columns[] = {
        {"body", "body_id", REPORT_TEXT},
        {"record", "record_id", REPORT_TEXT},
        {"revision", "revision", REPORT_INTEGER},
        {"neighbourhood", "neighbourhood", REPORT_TEXT},
        {"service", "service", REPORT_TEXT},
        {"period", "period", REPORT_TEXT},
        {"fiscal year", "fiscal_year", REPORT_TEXT},
        {"amount", "amount_pence", REPORT_PENCE},
        {"poolable", "poolable", REPORT_BOOL},
        {"supplier", "supplier", REPORT_TEXT},
        {"description", "description", REPORT_TEXT},
        {"withdrawn", "withdrawn", REPORT_BOOL},
    };
    report_set_param (report, "body_id", args->body_id);
    report_set_param (report, "record_id", args->record_id);
    Totalplace__SpendingRecord *record = NULL;
    int rc =
        source->get_record (source->handle, args->body_id, args->record_id, &record, err, err_len);
    if (rc)
        return rc;
    char caption[256], fiscal_year[FISCAL_YEAR_LEN];
    snprintf (caption, sizeof caption, "Record %s / %s", record->body_id, record->record_id);
    report_set_caption (report, caption);
    if (period_fiscal_year (record->period, fiscal_year, sizeof fiscal_year))
        fiscal_year[0] = '\0';
    report_add_section (report, "record", columns, sizeof columns / sizeof columns[0], true);
    report_row (report);
    report_text (report, record->body_id);
    report_text (report, record->record_id);
    report_integer (report, record->revision);
    report_text (report, record->neighbourhood);
    report_text (report, record->service);
    report_text (report, record->period);
    report_text (report, fiscal_year);
    report_pence (report, record->amount_pence);
    report_bool (report, record->poolable);
    report_text (report, record->supplier);
    report_text (report, record->description);
    report_bool (report, record->withdrawn);
    protobuf_c_message_free_unpacked (&record->base, NULL);
    return 0;
}

static int
agent_row (void *arg, const store_agent_t *agent)
{
    report_row (arg);
    report_text (arg, agent->agent_id);
    report_unsigned (arg, agent->last_batch_seq);
    report_unsigned (arg, agent->batches);
    report_time (arg, agent->last_seen);
    return 0;
}

/* The running collector's counters since it started, after the store's (which a --db answer
 * shows alone, so that its output is the start of this one). */
static int
collector_stats (const source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t ingest_columns[] = {
        {"frames received", "frames", REPORT_UNSIGNED},
        {"batches applied", "batches", REPORT_UNSIGNED},
        {"records applied", "records", REPORT_UNSIGNED},
        {"status requests", "status_requests", REPORT_UNSIGNED},
        {"malformed", "malformed", REPORT_UNSIGNED},
        {"oversized", "oversized", REPORT_UNSIGNED},
        {"retry acks", "retry_acks", REPORT_UNSIGNED},
        {"groups committed", "groups", REPORT_UNSIGNED},
        {"largest group (batches)", "largest_group", REPORT_UNSIGNED},
        {"largest group (records)", "largest_group_records", REPORT_UNSIGNED},
        {"unsent acks", "unsent_acks", REPORT_UNSIGNED},
        {"connections", "connections", REPORT_UNSIGNED},
        {"disconnects", "disconnects", REPORT_UNSIGNED},
        {"handshake failures", "handshake_failures", REPORT_UNSIGNED},
    };
    static const report_column_t query_columns[] = {
        {"queries", "queries", REPORT_UNSIGNED},
        {"bad queries", "bad_queries", REPORT_UNSIGNED},
        {"not found", "not_found", REPORT_UNSIGNED},
        {"errors", "errors", REPORT_UNSIGNED},
        {"unsent replies", "unsent", REPORT_UNSIGNED},
    };
    ingest_counters_t ingest;
    query_counters_t queries;
    int rc = source->collector_counters (source->handle, &ingest, &queries, err, err_len);
    if (rc)
        return rc;
    report_add_section (report, "ingest", ingest_columns,
                        sizeof ingest_columns / sizeof ingest_columns[0], true);
    report_row (report);
    const uint64_t ingest_values[] = {
        ingest.frames,        ingest.batches,
        ingest.records,       ingest.status_requests,
        ingest.malformed,     ingest.oversized,
        ingest.retry_acks,    ingest.groups,
        ingest.largest_group, ingest.largest_group_records,
        ingest.unsent_acks,   ingest.connections,
        ingest.disconnects,   ingest.handshake_failures,
    };
    for (size_t i = 0; i < sizeof ingest_values / sizeof ingest_values[0]; i++)
        report_unsigned (report, ingest_values[i]);
    report_add_section (report, "queries", query_columns,
                        sizeof query_columns / sizeof query_columns[0], true);
    report_row (report);
    report_unsigned (report, queries.queries);
    report_unsigned (report, queries.bad_queries);
    report_unsigned (report, queries.not_found);
    report_unsigned (report, queries.errors);
    report_unsigned (report, queries.unsent);
    return 0;
}

static int
run_stats (const source_t *source, report_t *report, char *err, size_t err_len)
{
    static const report_column_t identity_columns[] = {
        {"store id", "store_id", REPORT_TEXT},
        {"format", "format", REPORT_UNSIGNED},
        {"created (UTC)", "created", REPORT_TIME},
    };
    static const report_column_t counter_columns[] = {
        {"batches", "batches", REPORT_UNSIGNED},
        {"accepted", "accepted", REPORT_UNSIGNED},
        {"duplicate", "duplicate", REPORT_UNSIGNED},
        {"superseded", "superseded", REPORT_UNSIGNED},
        {"stale", "stale", REPORT_UNSIGNED},
        {"rejected", "rejected", REPORT_UNSIGNED},
        {"records stored", "records_stored", REPORT_UNSIGNED},
        {"map size (bytes)", "map_size_bytes", REPORT_UNSIGNED},
        {"used (bytes)", "used_bytes", REPORT_UNSIGNED},
    };
    static const report_column_t agent_columns[] = {
        {"agent", "agent_id", REPORT_TEXT},
        {"last batch", "last_batch_seq", REPORT_UNSIGNED},
        {"batches", "batches", REPORT_UNSIGNED},
        {"last seen (UTC)", "last_seen", REPORT_TIME},
    };
    store_identity_t identity;
    store_counters_t counters;
    int rc = source->identity (source->handle, &identity, err, err_len);
    if (rc == 0)
        rc = source->counters (source->handle, &counters, err, err_len);
    if (rc)
        return rc;
    report_set_caption (report, "Store statistics (records by outcome since the store began)");
    report_add_section (report, "store", identity_columns,
                        sizeof identity_columns / sizeof identity_columns[0], true);
    report_row (report);
    report_text (report, identity.store_id);
    report_unsigned (report, identity.format);
    report_time (report, identity.created);
    report_add_section (report, "counters", counter_columns,
                        sizeof counter_columns / sizeof counter_columns[0], true);
    report_row (report);
    report_unsigned (report, counters.batches);
    report_unsigned (report, counters.accepted);
    report_unsigned (report, counters.duplicate);
    report_unsigned (report, counters.superseded);
    report_unsigned (report, counters.stale);
    report_unsigned (report, counters.rejected);
    report_unsigned (report, counters.records_stored);
    report_unsigned (report, counters.map_size);
    report_unsigned (report, counters.used_bytes);
    report_add_section (report, "agents", agent_columns,
                        sizeof agent_columns / sizeof agent_columns[0], false);
    rc = source->agents (source->handle, agent_row, report, err, err_len);
    if (rc || !source->collector_counters)
        return rc;
    return collector_stats (source, report, err, err_len);
}

static int
run (const source_t *source, const query_args_t *args, report_t *report, char *err, size_t err_len)
{
    switch (args->command) {
    case QUERY_NEIGHBOURHOODS:
        return run_neighbourhoods (source, report, err, err_len);
    case QUERY_TOTALS:
        return run_totals (source, args, report, err, err_len);
    case QUERY_POOLING:
        return run_pooling (source, args, report, err, err_len);
    case QUERY_RECORD:
        return run_record (source, args, report, err, err_len);
    case QUERY_STATS:
        return run_stats (source, report, err, err_len);
    case QUERY_NONE:
    case QUERY_HELP:
    case QUERY_KEYGEN:
    case QUERY_VERIFY: /* cli_store_run answers these */
    case QUERY_BACKUP:
    case QUERY_EXPORT: /* cli_export_run */
    case QUERY_REPORT: /* cli_report_run */
        break;
    }
    snprintf (err, err_len, "nothing to do");
    return STORE_ERR;
}

/* ---------------------------------------------------------------- main */

static int
usage_error (query_command_t command, const char *format, ...)
{
    va_list args;
    fputs ("totalplace: ", stderr);
    va_start (args, format);
    vfprintf (stderr, format, args);
    va_end (args);
    fputc ('\n', stderr);
    query_args_usage (stderr, command);
    return QUERY_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
    query_args_t args;
    char err[ERR_LEN];
    if (query_args_parse (&args, argc, argv, err, sizeof err))
        return usage_error (args.command, "%s", err);
    if (args.help) {
        query_args_help (stdout, args.help_on);
        return QUERY_EXIT_OK;
    }
    if (args.version) {
        printf ("totalplace %s\n", TOTALPLACE_VERSION);
        return QUERY_EXIT_OK;
    }
    if (args.command == QUERY_KEYGEN)
        return run_keygen (&args);
    if (args.command == QUERY_VERIFY || args.command == QUERY_BACKUP)
        return cli_store_run (&args);
    if (args.command == QUERY_EXPORT)
        return cli_export_run (&args);
    if (!args.db && !args.collector)
        return usage_error (args.command,
                            "no store given: use --db DIR, or --collector ENDPOINT to ask a "
                            "running collector");

    source_t source;
    int code = STORE_ERR;
    if (args.collector ? remote_open (&source, &args, err, sizeof err)
                       : db_open (&source, args.db, &code, err, sizeof err)) {
        fprintf (stderr, "totalplace: %s\n", err);
        return store_exit_status (code); /* QUERY_EXIT_FAILED, or 65 / 78 for a refused store */
    }
    if (args.command == QUERY_REPORT) {
        cli_report_source_t from = {source.handle, source.totals, source.identity};
        int status = cli_report_run (&args, &from);
        source.close (&source.handle);
        return status;
    }
    int status = QUERY_EXIT_OK;
    report_t *report = report_new (query_command_name (args.command));
    if (!report) {
        fprintf (stderr, "totalplace: out of memory\n");
        status = QUERY_EXIT_FAILED;
    }
    else if ((code = run (&source, &args, report, err, sizeof err)) != 0 ||
             report_write (report, args.format, stdout, err, sizeof err)) {
        fprintf (stderr, "totalplace: %s\n", err);
        /* A damaged store says so in the status too (65), as when it is refused at opening. */
        status = code == STORE_ERR_DAMAGED ? store_exit_status (code) : QUERY_EXIT_FAILED;
    }
    report_destroy (&report);
    source.close (&source.handle);
    return status;
}
