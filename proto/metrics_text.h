/* metrics_text: Prometheus's text exposition format (version 0.0.4), built in memory: a family's
 * HELP and TYPE lines, then its samples, with labels; and a fixed-bucket histogram of durations
 * that servers keep among their counters (plain numbers, so that it is copied with them under
 * their lock and rendered later by another thread). Names follow Prometheus's conventions: base
 * units (seconds, bytes), counters end in _total. */
#ifndef TOTALPLACE_METRICS_TEXT_H
#define TOTALPLACE_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct _metrics_text_t metrics_text_t;

/* Upper bounds of the duration buckets, in seconds: 0.5 ms to 10 s (the +Inf bucket is extra). */
#define METRICS_BUCKETS 14
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

typedef struct {
    uint64_t counts[METRICS_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    double sum; /* seconds */
} metrics_histogram_t;

/* Counts one observation of seconds. */
void metrics_histogram_observe (metrics_histogram_t *histogram, double seconds);

/* An empty text; NULL when out of memory. */
metrics_text_t *metrics_text_new (void);
void metrics_text_destroy (metrics_text_t **self_p);

/* Starts a family: name, type ("counter", "gauge", "histogram") and a one-line help. */
void metrics_text_family (metrics_text_t *self, const char *name, const char *type,
                          const char *help);

/* One sample of the current family: labels is NULL or the inside of the braces, e.g.
 * `role="agent"`. Integers are written exactly. */
void metrics_text_uint (metrics_text_t *self, const char *name, const char *labels, uint64_t value);
void metrics_text_double (metrics_text_t *self, const char *name, const char *labels, double value);

/* The samples of a histogram family name (_bucket with cumulative le labels, _sum, _count). */
void metrics_text_histogram (metrics_text_t *self, const char *name, const char *labels,
                             const metrics_histogram_t *histogram);

/* The text so far, and its length; "" after running out of memory (metrics_text_failed). */
const char *metrics_text_data (const metrics_text_t *self);
size_t metrics_text_size (const metrics_text_t *self);
/* True when memory ran out while building: the text is incomplete. */
int metrics_text_failed (const metrics_text_t *self);

#endif
