/* cli_client: asking a running collector over its query socket. */
#include "cli_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "curve.h"
#include "server_thread.h"
#include "wire.h"

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

/* Asks query and hands each row of the reply (one key each) to row. */
static int
remote_ask_rows (void *handle, Totalplace__Query *query, store_row_fn *row, void *arg, char *err,
                 size_t err_len)
{
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, query, &reply, err, err_len);
    if (rc == 0) {
        remote_rows (reply, row, arg);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
    return rc;
}

static int
remote_neighbourhoods (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_NEIGHBOURHOODS;
    return remote_ask_rows (handle, &query, row, arg, err, err_len);
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

static void
remote_filter (const store_filter_t *filter, Totalplace__TotalsFilter *wanted)
{
    wanted->body_id = remote_text (filter->body_id);
    wanted->service = remote_text (filter->service);
    wanted->fiscal_year = remote_text (filter->fiscal_year);
    wanted->month = remote_text (filter->month);
    wanted->poolable = filter->poolable < 0   ? TOTALPLACE__POOLABLE_FILTER__POOLABLE_ANY
                       : filter->poolable > 0 ? TOTALPLACE__POOLABLE_FILTER__POOLABLE_YES
                                              : TOTALPLACE__POOLABLE_FILTER__POOLABLE_NO;
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
        remote_filter (filter, &wanted);
        query.filter = &wanted;
    }
    return remote_ask_rows (handle, &query, row, arg, err, err_len);
}

/* A reply's rows of several keys; a row with another number of keys is a broken answer. */
static int
remote_key_rows (const Totalplace__QueryReply *reply, size_t key_count, store_keys_fn *row,
                 void *arg, char *err, size_t err_len)
{
    static const char *const none[1] = {""};
    for (size_t i = 0; i < reply->n_rows; i++) {
        const Totalplace__TotalRow *r = reply->rows[i];
        if (r->n_keys != key_count) {
            snprintf (err, err_len, "the collector's answer has a row of %zu keys, not %zu",
                      r->n_keys, key_count);
            return STORE_ERR;
        }
        store_amount_t amount = {r->amount_pence, r->records};
        if (row (arg, key_count ? (const char *const *)r->keys : none, amount))
            break;
    }
    return 0;
}

/* A place or several breakdowns go as QUERY_BREAKDOWN (an older collector refuses it, saying
 * `what` is not a question, rather than answering another question). */
static int
remote_breakdown_of (void *handle, const char *neighbourhood, const char *place,
                     const store_breakdown_t *by, size_t by_count, const store_filter_t *filter,
                     store_keys_fn *row, void *arg, char *err, size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    Totalplace__TotalsFilter wanted = TOTALPLACE__TOTALS_FILTER__INIT;
    Totalplace__Breakdown breakdowns[STORE_MAX_BREAKDOWNS];
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_BREAKDOWN;
    query.neighbourhood = remote_text (neighbourhood);
    query.place = remote_text (place);
    for (size_t i = 0; i < by_count && i < STORE_MAX_BREAKDOWNS; i++)
        breakdowns[i] = remote_breakdown (by[i]);
    query.breakdowns = breakdowns;
    query.n_breakdowns = by_count;
    if (filter) {
        remote_filter (filter, &wanted);
        query.filter = &wanted;
    }
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, &query, &reply, err, err_len);
    if (rc == 0) {
        rc = remote_key_rows (reply, by_count, row, arg, err, err_len);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
    return rc;
}

static int
remote_pooling (void *handle, const char *neighbourhood, const char *place,
                place_totals_pooling_fn *row, void *arg, char *err, size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_POOLING;
    query.neighbourhood = remote_text (neighbourhood);
    query.place = remote_text (place);
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, &query, &reply, err, err_len);
    for (size_t i = 0; rc == 0 && i < reply->n_rows; i++) {
        const Totalplace__TotalRow *r = reply->rows[i];
        if (r->n_keys != 2) {
            snprintf (err, err_len, "the collector's pooling answer has a row of %zu keys, not 2",
                      r->n_keys);
            rc = STORE_ERR;
            break;
        }
        place_totals_pooling_t out = {r->keys[0], r->keys[1], r->amount_pence, r->poolable_pence,
                                      r->records};
        if (row (arg, &out))
            break;
    }
    if (reply)
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    return rc;
}

static int
remote_places (void *handle, place_totals_place_fn *fn, void *arg, char *err, size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_PLACES;
    Totalplace__QueryReply *reply = NULL;
    int rc = remote_ask (handle, &query, &reply, err, err_len);
    for (size_t i = 0; rc == 0 && i < reply->n_places; i++) {
        const Totalplace__PlaceRow *r = reply->places[i];
        place_totals_place_t out = {r->place ? r->place : "",   (size_t)r->neighbourhoods,
                                    (size_t)r->without_records, r->residents,
                                    (size_t)r->unpopulated,     r->amount_pence,
                                    r->poolable_pence,          r->records};
        if (fn (arg, &out))
            break;
    }
    if (reply)
        protobuf_c_message_free_unpacked (&reply->base, NULL);
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

int
cli_client_open (cli_source_t *source, const query_args_t *args, char *err, size_t err_len)
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
    *source = (cli_source_t){self,
                             remote_neighbourhoods,
                             remote_totals,
                             remote_get_record,
                             remote_counters,
                             remote_agents,
                             remote_identity,
                             remote_collector_counters,
                             remote_breakdown_of,
                             remote_pooling,
                             remote_places,
                             remote_close};
    return 0;
error:
    curve_client_destroy (&keys);
    void *handle = self;
    remote_close (&handle);
    return -1;
}
