/* agent_metrics: the agent's Prometheus samples (GET /metrics, proto/metrics_server.h). The
 * agent's loop is single-threaded and its outbox and sender are not shared, so the loop
 * publishes a snapshot of what it knows (agent_metrics_publish, a copy under a mutex, about once
 * a second) and a scrape renders the latest snapshot from the server's thread: neither ever waits
 * for the other. Names and units are listed in docs/operations.md ("Monitoring"). */
#ifndef TOTALPLACE_AGENT_METRICS_H
#define TOTALPLACE_AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inbox.h"
#include "metrics_text.h"
#include "outbox.h"
#include "sender.h"

typedef struct _agent_metrics_t agent_metrics_t;

typedef struct {
    size_t pending_batches; /* batches in the outbox waiting for their Ack */
    uint64_t pending_bytes;
    outbox_retained_t retained; /* acknowledged batches kept for restores */
    bool alarm;                 /* batches were found lost (totalplace-agent status) */
    sender_counters_t sent;
    inbox_counters_t files;
    int64_t oldest_pending_at; /* unix seconds the oldest waiting batch was taken; 0: none */
    int64_t last_ack_at;       /* unix seconds of the last Ack; 0: none yet */
    int64_t taken_at;          /* unix seconds of the snapshot, for the ages */
} agent_metrics_snapshot_t;

/* NULL when out of memory. started_at: unix seconds. */
agent_metrics_t *agent_metrics_new (int64_t started_at);
void agent_metrics_destroy (agent_metrics_t **self_p);

/* Replaces the snapshot scrapes read. */
void agent_metrics_publish (agent_metrics_t *self, const agent_metrics_snapshot_t *snapshot);

/* A metrics_render_fn: arg is an agent_metrics_t. */
void agent_metrics_render (void *arg, metrics_text_t *text);

#endif
