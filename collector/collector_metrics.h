/* collector_metrics: the collector's Prometheus samples (GET /metrics, proto/metrics_server.h),
 * read from the counters its threads already publish (ingest_counters, query_counters,
 * auth_counters) and the store's own (records by outcome, size): a scrape takes each server's
 * counter lock for a copy and one LMDB read transaction, never the writer's turn. Names and
 * units are listed in docs/operations.md ("Monitoring"). */
#ifndef TOTALPLACE_COLLECTOR_METRICS_H
#define TOTALPLACE_COLLECTOR_METRICS_H

#include <stdint.h>

#include "auth.h"
#include "ingest.h"
#include "metrics_text.h"
#include "query.h"
#include "store.h"

/* Where the samples come from; any of ingest, query and auth may be NULL (not running). */
typedef struct {
    store_t *store;
    ingest_t *ingest;
    query_t *query;
    auth_t *auth;
    int64_t started_at; /* unix seconds */
} collector_metrics_t;

/* A metrics_render_fn: arg is a collector_metrics_t. */
void collector_metrics_render (void *arg, metrics_text_t *text);

#endif
