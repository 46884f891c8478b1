/* metrics_text: Prometheus text exposition, built in a growing buffer. */
#include "metrics_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_bucket_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct _metrics_text_t {
    char *data;
    size_t size, capacity;
    int failed;
};

void
metrics_histogram_observe (metrics_histogram_t *histogram, double seconds)
{
    size_t bucket = 0;
    while (bucket < METRICS_BUCKETS && seconds > metrics_bucket_bounds[bucket])
        bucket++;
    histogram->counts[bucket]++;
    histogram->count++;
    histogram->sum += seconds;
}

metrics_text_t *
metrics_text_new (void)
{
    metrics_text_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = 8192;
    self->data = malloc (self->capacity);
    if (!self->data) {
        free (self);
        return NULL;
    }
    self->data[0] = '\0';
    return self;
}

void
metrics_text_destroy (metrics_text_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->data);
    free (*self_p);
    *self_p = NULL;
}

static void s_append (metrics_text_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_append (metrics_text_t *self, const char *format, ...)
{
    if (self->failed)
        return;
    for (;;) {
        va_list args;
        va_start (args, format);
        int length = vsnprintf (self->data + self->size, self->capacity - self->size, format, args);
        va_end (args);
        if (length < 0) {
            self->failed = 1;
            return;
        }
        if (self->size + (size_t)length < self->capacity) {
            self->size += (size_t)length;
            return;
        }
        size_t capacity = self->capacity * 2 + (size_t)length;
        char *grown = realloc (self->data, capacity);
        if (!grown) {
            self->failed = 1;
            self->data[self->size] = '\0';
            return;
        }
        self->data = grown;
        self->capacity = capacity;
    }
}

void
metrics_text_family (metrics_text_t *self, const char *name, const char *type, const char *help)
{
    s_append (self, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
metrics_text_uint (metrics_text_t *self, const char *name, const char *labels, uint64_t value)
{
    if (labels && *labels)
        s_append (self, "%s{%s} %" PRIu64 "\n", name, labels, value);
    else
        s_append (self, "%s %" PRIu64 "\n", name, value);
}

void
metrics_text_double (metrics_text_t *self, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        s_append (self, "%s{%s} %.17g\n", name, labels, value);
    else
        s_append (self, "%s %.17g\n", name, value);
}

void
metrics_text_histogram (metrics_text_t *self, const char *name, const char *labels,
                        const metrics_histogram_t *histogram)
{
    const char *comma = labels && *labels ? "," : "";
    const char *inside = labels ? labels : "";
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= METRICS_BUCKETS; b++) {
        cumulative += histogram->counts[b];
        if (b < METRICS_BUCKETS)
            s_append (self, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, inside, comma,
                      metrics_bucket_bounds[b], cumulative);
        else
            s_append (self, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, inside, comma,
                      cumulative);
    }
    char suffixed[256];
    snprintf (suffixed, sizeof suffixed, "%s_sum", name);
    metrics_text_double (self, suffixed, labels, histogram->sum);
    snprintf (suffixed, sizeof suffixed, "%s_count", name);
    metrics_text_uint (self, suffixed, labels, histogram->count);
}

const char *
metrics_text_data (const metrics_text_t *self)
{
    return self->failed ? "" : self->data;
}

size_t
metrics_text_size (const metrics_text_t *self)
{
    return self->failed ? 0 : self->size;
}

int
metrics_text_failed (const metrics_text_t *self)
{
    return self->failed;
}
