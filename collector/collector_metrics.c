/* collector_metrics: the collector's counters as Prometheus samples. */
#include "collector_metrics.h"

#include <stdbool.h>
#include <stdio.h>

#define P "totalplace_collector_"

static void
s_counter (metrics_text_t *text, const char *name, const char *help, uint64_t value)
{
    metrics_text_family (text, name, "counter", help);
    metrics_text_uint (text, name, NULL, value);
}

static void
s_gauge (metrics_text_t *text, const char *name, const char *help, uint64_t value)
{
    metrics_text_family (text, name, "gauge", help);
    metrics_text_uint (text, name, NULL, value);
}

static void
s_store (metrics_text_t *text, const store_counters_t *store)
{
    metrics_text_family (text, P "records_total", "counter",
                         "Records applied to the store by outcome, since the store was made");
    metrics_text_uint (text, P "records_total", "outcome=\"accepted\"", store->accepted);
    metrics_text_uint (text, P "records_total", "outcome=\"duplicate\"", store->duplicate);
    metrics_text_uint (text, P "records_total", "outcome=\"superseded\"", store->superseded);
    metrics_text_uint (text, P "records_total", "outcome=\"stale\"", store->stale);
    metrics_text_uint (text, P "records_total", "outcome=\"rejected\"", store->rejected);
    s_counter (text, P "store_batches_total", "Batches applied to the store since it was made",
               store->batches);
    s_gauge (text, P "store_records", "Records the store holds (withdrawn ones included)",
             store->records_stored);
    s_gauge (text, P "store_used_bytes", "Bytes of the store's LMDB map in use", store->used_bytes);
    s_gauge (text, P "store_map_bytes", "Size of the store's LMDB map in bytes", store->map_size);
}

static void
s_ingest (metrics_text_t *text, const ingest_counters_t *in)
{
    metrics_text_family (text, P "batches_total", "counter",
                         "Batches answered since start, by the Ack's status");
    metrics_text_uint (text, P "batches_total", "status=\"applied\"", in->batches);
    metrics_text_uint (text, P "batches_total", "status=\"malformed\"", in->malformed);
    metrics_text_uint (text, P "batches_total", "status=\"retry\"", in->retry_acks);
    s_counter (text, P "received_records_total",
               "Records in the batches applied since start (all outcomes)", in->records);
    s_counter (text, P "status_requests_total", "Agents' status requests answered since start",
               in->status_requests);
    s_counter (text, P "unauthorised_records_total",
               "Records rejected since start: their agent's certificate does not list their body",
               in->unauthorised_records);
    s_counter (text, P "unsent_acks_total", "Acks libzmq could not queue (the agent was gone)",
               in->unsent_acks);
    metrics_text_family (text, P "group_commit_duration_seconds", "histogram",
                         "Time to apply and sync one group of batches (one store transaction)");
    metrics_text_histogram (text, P "group_commit_duration_seconds", NULL, &in->commit_seconds);
}

static void
s_queries (metrics_text_t *text, const query_counters_t *q)
{
    uint64_t failed = q->bad_queries + q->not_found + q->errors;
    metrics_text_family (text, P "queries_total", "counter",
                         "Questions answered since start, by the reply's status");
    metrics_text_uint (text, P "queries_total", "status=\"ok\"",
                       q->queries > failed ? q->queries - failed : 0);
    metrics_text_uint (text, P "queries_total", "status=\"bad_query\"", q->bad_queries);
    metrics_text_uint (text, P "queries_total", "status=\"not_found\"", q->not_found);
    metrics_text_uint (text, P "queries_total", "status=\"error\"", q->errors);
    metrics_text_family (text, P "query_duration_seconds", "histogram",
                         "Time to answer one question from the store");
    metrics_text_histogram (text, P "query_duration_seconds", NULL, &q->answer_seconds);
}

/* Connections of both sockets, side by side under a socket label. */
static void
s_connections (metrics_text_t *text, const ingest_counters_t *in, const query_counters_t *q,
               const auth_counters_t *auth)
{
    const char *ingest = "socket=\"ingest\"", *query = "socket=\"query\"";
    metrics_text_family (text, P "connections_total", "counter",
                         "Connections accepted since start (junk and refused ones included)");
    metrics_text_uint (text, P "connections_total", ingest, in->connections);
    metrics_text_uint (text, P "connections_total", query, q->connections);
    metrics_text_family (text, P "failed_handshakes_total", "counter",
                         "Connections that failed the ZeroMQ handshake since start (not ZeroMQ, "
                         "unknown key, wrong role, plain against CURVE)");
    metrics_text_uint (text, P "failed_handshakes_total", ingest, in->handshake_failures);
    metrics_text_uint (text, P "failed_handshakes_total", query, q->handshake_failures);
    metrics_text_family (text, P "over_limit_refusals_total", "counter",
                         "Messages refused since start: limits/max_agents or "
                         "limits/max_query_clients peers were connected");
    metrics_text_uint (text, P "over_limit_refusals_total", ingest, in->over_limit);
    metrics_text_uint (text, P "over_limit_refusals_total", query, q->over_limit);
    if (!auth)
        return;
    metrics_text_family (text, P "connected_peers", "gauge",
                         "Authenticated peers connected now, as counted against the limits");
    metrics_text_uint (text, P "connected_peers", ingest, auth->agents_connected);
    metrics_text_uint (text, P "connected_peers", query, auth->query_connected);
    metrics_text_family (text, P "open_connections", "gauge",
                         "Connections open now, handshaking and junk ones included");
    metrics_text_uint (text, P "open_connections", ingest, auth->agent_connections);
    metrics_text_uint (text, P "open_connections", query, auth->query_connections);
    metrics_text_family (text, P "refused_handshakes_total", "counter",
                         "Handshakes the authenticator refused since start, by reason");
    metrics_text_uint (text, P "refused_handshakes_total", "reason=\"unknown_key\"",
                       auth->unknown_key);
    metrics_text_uint (text, P "refused_handshakes_total", "reason=\"wrong_role\"",
                       auth->wrong_role);
}

void
collector_metrics_render (void *arg, metrics_text_t *text)
{
    const collector_metrics_t *sources = arg;
    metrics_text_family (text, P "build_info", "gauge", "The running version");
    metrics_text_uint (text, P "build_info", "version=\"" TOTALPLACE_VERSION "\"", 1);
    s_gauge (text, P "start_time_seconds", "When the collector started (unix seconds)",
             (uint64_t)sources->started_at);
    char finding[STORE_ERR_LEN];
    s_gauge (text, P "store_damaged",
             "1 when the store has met damage: no batch is applied until it is restored",
             store_damage (sources->store, finding, sizeof finding) ? 1 : 0);
    ingest_counters_t in = {0};
    char err[STORE_ERR_LEN];
    bool store_read = false;
    if (sources->ingest)
        store_read = ingest_counters (sources->ingest, &in, err, sizeof err) == 0;
    else
        store_read = store_counters (sources->store, &in.store, err, sizeof err) == 0;
    /* A store that cannot be read has no samples rather than wrong ones. */
    if (store_read)
        s_store (text, &in.store);
    if (sources->ingest)
        s_ingest (text, &in);
    query_counters_t q = {0};
    if (sources->query) {
        query_counters (sources->query, &q);
        s_queries (text, &q);
    }
    auth_counters_t auth;
    if (sources->auth)
        auth_counters (sources->auth, &auth);
    s_connections (text, &in, &q, sources->auth ? &auth : NULL);
}
