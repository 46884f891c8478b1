/* agent_metrics: the agent's last published snapshot as Prometheus samples. */
#include "agent_metrics.h"

#include <pthread.h>
#include <stdlib.h>

#define P "totalplace_agent_"

struct _agent_metrics_t {
    pthread_mutex_t lock;
    agent_metrics_snapshot_t snapshot; /* guarded by lock */
    bool published;                    /* guarded by lock */
    int64_t started_at;
};

agent_metrics_t *
agent_metrics_new (int64_t started_at)
{
    agent_metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (pthread_mutex_init (&self->lock, NULL)) {
        free (self);
        return NULL;
    }
    self->started_at = started_at;
    return self;
}

void
agent_metrics_destroy (agent_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy (&(*self_p)->lock);
    free (*self_p);
    *self_p = NULL;
}

void
agent_metrics_publish (agent_metrics_t *self, const agent_metrics_snapshot_t *snapshot)
{
    pthread_mutex_lock (&self->lock);
    self->snapshot = *snapshot;
    self->published = true;
    pthread_mutex_unlock (&self->lock);
}

static void
s_one (metrics_text_t *text, const char *name, const char *type, const char *help, uint64_t value)
{
    metrics_text_family (text, name, type, help);
    metrics_text_uint (text, name, NULL, value);
}

void
agent_metrics_render (void *arg, metrics_text_t *text)
{
    agent_metrics_t *self = arg;
    pthread_mutex_lock (&self->lock);
    agent_metrics_snapshot_t s = self->snapshot;
    bool published = self->published;
    pthread_mutex_unlock (&self->lock);
    metrics_text_family (text, P "build_info", "gauge", "The running version");
    metrics_text_uint (text, P "build_info", "version=\"" TOTALPLACE_VERSION "\"", 1);
    s_one (text, P "start_time_seconds", "gauge", "When the agent started (unix seconds)",
           (uint64_t)self->started_at);
    if (!published)
        return; /* the loop has not turned yet: no numbers rather than zeros */
    s_one (text, P "outbox_pending_batches", "gauge",
           "Batches in the outbox waiting for the collector's Ack", s.pending_batches);
    s_one (text, P "outbox_pending_bytes", "gauge", "Bytes of the batches waiting for their Ack",
           s.pending_bytes);
    s_one (text, P "outbox_retained_batches", "gauge",
           "Acknowledged batches kept for a restored collector store (outbox/retain_hours)",
           s.retained.count);
    s_one (text, P "outbox_retained_bytes", "gauge", "Bytes of the retained batches",
           s.retained.bytes);
    /* The age an operator alerts on (docs/operations.md): a batch waiting long means delivery has
     * stalled, whatever the counters say. */
    s_one (text, P "oldest_pending_age_seconds", "gauge",
           "How long the oldest batch waiting for its Ack has waited since its file was taken "
           "(0 when none waits)",
           s.pending_batches && s.oldest_pending_at && s.taken_at > s.oldest_pending_at
               ? (uint64_t)(s.taken_at - s.oldest_pending_at)
               : 0);
    s_one (text, P "last_ack_timestamp_seconds", "gauge",
           "When the collector last acknowledged a batch (unix seconds; 0: never)",
           s.last_ack_at > 0 ? (uint64_t)s.last_ack_at : 0);
    s_one (text, P "lost_batches_alarm", "gauge",
           "1 while batches found lost wait for a person (totalplace-agent status)",
           s.alarm ? 1 : 0);
    s_one (text, P "batches_sent_total", "counter", "Batch sends since start, re-sends included",
           s.sent.sent);
    s_one (text, P "batches_acknowledged_total", "counter",
           "Batches the collector acknowledged as applied since start", s.sent.acked);
    s_one (text, P "batches_retried_total", "counter",
           "ACK_RETRY answers since start (the collector could not apply yet, or was full of "
           "agents); the batches are sent again",
           s.sent.retry_acks);
    s_one (text, P "malformed_acks_total", "counter",
           "ACK_MALFORMED answers since start: a batch the collector cannot read (needs a person)",
           s.sent.malformed_acks);
    s_one (text, P "reconnects_total", "counter",
           "Connections thrown away after an ack timeout since start", s.sent.reconnects);
    s_one (text, P "refused_connections_total", "counter",
           "Handshakes the collector refused since start (key, plain against CURVE)",
           s.sent.refused);
    s_one (text, P "collector_rejected_records_total", "counter",
           "Records the collector rejected since start (written to collector-rejects.csv)",
           s.sent.records_rejected);
    s_one (text, P "lost_batches_total", "counter",
           "Batches found lost since start: acknowledged, pruned here, missing from the store",
           s.sent.lost);
    metrics_text_family (text, P "files_total", "counter",
                         "Files from the inbox since start: taken into the outbox, or failed "
                         "(held or unreadable: moved to failed/)");
    metrics_text_uint (text, P "files_total", "outcome=\"taken\"", s.files.files_done);
    metrics_text_uint (text, P "files_total", "outcome=\"failed\"", s.files.files_failed);
    s_one (text, P "queued_records_total", "counter",
           "Records put in the outbox from the inbox's files since start", s.files.records);
    s_one (text, P "rejected_rows_total", "counter",
           "Rows the agent rejected while reading files since start (done/NAME.rejects.csv)",
           s.files.rows_rejected);
}
