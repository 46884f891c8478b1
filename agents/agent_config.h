/* agent_config: the agent daemon's settings, with defaults, from a ZPL file and options. */
#ifndef TOTALPLACE_AGENT_CONFIG_H
#define TOTALPLACE_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "settings.h"

/* Record fields a CSV column can be mapped to (columns/<field> in the config). */
#define AGENT_COLUMN_FIELDS 12

typedef struct {
    char *agent_id;              /* agent/id */
    char *body_id;               /* agent/body_id */
    char *inbox;                 /* agent/inbox */
    char *state_dir;             /* agent/state_dir: the outbox and collector-rejects live here */
    char *collector;             /* agent/collector: the collector's ingest endpoint */
    char *curve_secret_cert;     /* agent/curve_secret_cert: this agent's secret certificate */
    char *collector_public_cert; /* agent/collector_public_cert: the collector's certificate */
    bool allow_plain;            /* agent/allow_plain: no CURVE (a local collector only) */
    uint64_t batch_records;      /* agent/batch_records */
    uint64_t window;             /* agent/window: batches sent and not yet acknowledged */
    uint64_t ack_timeout_ms;     /* agent/ack_timeout_ms */
    uint64_t retry_max_ms;       /* agent/retry_max_ms: cap of the exponential backoff */
    uint64_t scan_interval_ms;   /* agent/scan_interval_ms */
    uint64_t check_interval_ms;  /* agent/check_interval_ms: status requests while idle */
    uint64_t stall_alarm_s;  /* agent/stall_alarm_s: status unhealthy past this, batches waiting */
    uint64_t rejects_max_mb; /* agent/rejects_max_mb: collector-rejects.csv rotated past it */
    uint64_t rejects_keep;   /* agent/rejects_keep: rotated rejects files kept */
    uint64_t rejects_keep_days;  /* agent/rejects_keep_days: rotated rejects files kept this long */
    uint64_t done_keep_days;     /* inbox/done_keep_days: done/ files kept this long */
    uint64_t done_max_mb;        /* inbox/done_max_mb: done/ kept under this */
    uint64_t outbox_max_batches; /* outbox/max_batches */
    uint64_t outbox_max_mb;      /* outbox/max_mb */
    uint64_t retain_hours;       /* outbox/retain_hours: acknowledged batches kept this long */
    char *default_service;       /* defaults/service */
    bool default_poolable;       /* defaults/poolable */
    char *columns[AGENT_COLUMN_FIELDS]; /* columns/<field>: header overrides, NULL = defaults */
    int encoding;                       /* input/encoding: index into agent_encodings */
    int repeated_ids;              /* input/repeated_ids: 0 hold, 1 lines (csv_repeated_ids_t) */
    uint64_t max_rejected_percent; /* input/max_rejected_percent: hold a file above this */
    /* Neighbourhood assignment when the export has no neighbourhood column (docs/agent.md). */
    char *lookup_file;               /* neighbourhood/lookup_file: CSV of values to codes */
    char *lookup_column;             /* neighbourhood/lookup_column: export header looked up */
    char *lookup_file_value;         /* neighbourhood/lookup_file_value; NULL: lookup_column */
    char *lookup_file_neighbourhood; /* neighbourhood/lookup_file_neighbourhood */
    char *lookup_file_weight;        /* neighbourhood/lookup_file_weight; "": no weights */
    uint64_t max_parts;              /* neighbourhood/max_parts */
    char *postcode_file;          /* neighbourhood/postcode_file: ONS Postcode Directory layout */
    char *postcode_file_postcode; /* neighbourhood/postcode_file_postcode */
    char *postcode_file_area;     /* neighbourhood/postcode_file_area */
    char *metrics_endpoint;       /* agent/metrics_endpoint: HOST:PORT of GET /metrics; "": off */
    bool metrics_allow_remote;    /* agent/metrics_allow_remote: a non-loopback address allowed */
    bool log_syslog;              /* log/syslog */
    int log_level;                /* log/level: 0 debug, 1 info, 2 warning */
} agent_config_t;

/* Names of input/encoding's choices, in order ("auto", "utf-8", "windows-1252", "iso-8859-1"). */
extern const char *const agent_encodings[];

/* Names of the fields in columns[], in order. */
extern const char *const agent_column_fields[AGENT_COLUMN_FIELDS];

/* A config holding every default, or NULL when out of memory. */
agent_config_t *agent_config_new (void);
void agent_config_destroy (agent_config_t **self_p);

/* Loads a ZPL file over the current values. Returns 0 or -1 with a message naming file and key. */
int agent_config_load (agent_config_t *self, const char *path, char *err, size_t err_len);

/* Sets one key ("agent/inbox", "columns/service", ...). Returns 0 or -1 with a message. */
int agent_config_set (agent_config_t *self, const char *key, const char *value, char *err,
                      size_t err_len);

/* Checks required keys and consistency, security included: both key files named (they are read
 * later), or agent/allow_plain = 1 with a local agent/collector (curve_check_plain). Returns 0 or
 * -1 with a message naming the key. */
int agent_config_validate (const agent_config_t *self, char *err, size_t err_len);

/* Checks only what reading an export needs (agent/body_id, defaults, columns, lookups), for
 * `inspect`, which sends nothing. Returns 0 or -1 with a message naming the key. */
int agent_config_validate_reading (const agent_config_t *self, char *err, size_t err_len);

/* The keys as roff .TP entries, for the manual page (settings_describe_roff). */
void agent_config_describe_roff (FILE *out);

/* One line per key for --help. */
void agent_config_describe (FILE *out);

#endif
