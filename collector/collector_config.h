/* collector_config: the collector daemon's settings, with defaults, loaded from a ZPL file and
 * overridden by command-line options, then validated before anything starts. */
#ifndef TOTALPLACE_COLLECTOR_CONFIG_H
#define TOTALPLACE_COLLECTOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <czmq.h>

typedef enum {
    COLLECTOR_LOG_DEBUG = 0,
    COLLECTOR_LOG_INFO,
    COLLECTOR_LOG_WARNING,
} collector_log_level_t;

/* Every field is set by collector_config_new (defaults), then by collector_config_load and
 * collector_config_set, so that each value passes the same parser (proto/settings.h). Strings are
 * owned by the struct. */
typedef struct {
    char *state_dir;            /* collector/state_dir: LMDB folder; required */
    char *ingest_endpoints;     /* collector/ingest_endpoints: comma-separated ZeroMQ endpoints */
    char *query_endpoints;      /* collector/query_endpoints: the same for queries; "" for none */
    uint64_t map_size_mb;       /* collector/map_size_mb: initial LMDB map size */
    uint64_t max_map_size_mb;   /* collector/max_map_size_mb: the map may grow up to this */
    uint64_t max_group_batches; /* collector/max_group_batches: batches per store transaction */
    uint64_t max_group_records; /* collector/max_group_records: records per store transaction */
    uint64_t journal_records;   /* collector/journal_records: records kept in the journal */
    uint64_t journal_ms;        /* collector/journal_ms: and for at most this long */
    char *curve_secret_cert;    /* collector/curve_secret_cert: the collector's secret cert */
    char *authorised_certs;     /* collector/authorised_certs: folder of authorised *.cert */
    bool allow_plain;           /* collector/allow_plain: no CURVE, local endpoints only */
    char *metrics_endpoint;     /* collector/metrics_endpoint: HOST:PORT of GET /metrics; "": off */
    bool metrics_allow_remote;  /* collector/metrics_allow_remote: a non-loopback address allowed */
    char *places_file;          /* collector/places_file: the places CSV; "" for none */
    uint64_t max_agents;        /* limits/max_agents: connected agents at once */
    uint64_t max_query_clients; /* limits/max_query_clients: connected query clients at once */
    uint64_t max_batch_kb;      /* limits/max_batch_kb: largest Batch frame accepted (KiB) */
    uint64_t max_batch_records; /* limits/max_batch_records: most records in one Batch */
    uint64_t handshake_timeout_ms;   /* limits/handshake_timeout_ms: ZMQ_HANDSHAKE_IVL */
    bool log_syslog;                 /* log/syslog: log to syslog instead of stderr */
    collector_log_level_t log_level; /* log/level: debug, info or warning */
    uint64_t log_stats_interval;     /* log/stats_interval: seconds between rate lines, 0 = never */
} collector_config_t;

#define COLLECTOR_CONFIG_ERR_LEN 512

/* Returns a config holding every default, or NULL when out of memory. state_dir has no default,
 * so a fresh config does not validate until it is given one. */
collector_config_t *collector_config_new (void);

/* Frees the config and sets *self_p to NULL; safe on NULL and twice. */
void collector_config_destroy (collector_config_t **self_p);

/* Reads a ZPL file (see deploy/collector.conf) and applies every key it holds over the current
 * values; keys it does not hold keep their values. Returns 0, or -1 with a message naming the file
 * and the line (syntax errors) or the key (unknown keys, bad values). On error the config may
 * hold some of the file's values: discard it. */
int collector_config_load (collector_config_t *self, const char *path, char *err, size_t err_len);

/* Parses one ZPL document from a string, as collector_config_load does; origin names it in
 * messages. */
int collector_config_load_string (collector_config_t *self, const char *text, const char *origin,
                                  char *err, size_t err_len);

/* Sets one key ("collector/state_dir", "log/level", ...) from its text form, as a command-line
 * option does. Returns 0, or -1 with a message naming the key and what is wrong. */
int collector_config_set (collector_config_t *self, const char *key, const char *value, char *err,
                          size_t err_len);

/* Checks the whole config: required keys present, endpoints well formed, sizes consistent, and
 * security chosen: CURVE (collector/curve_secret_cert and collector/authorised_certs both set;
 * the files are read later, by auth_check or auth_new) or collector/allow_plain = 1 with every
 * endpoint local (ipc://, inproc://, loopback tcp://). Returns 0, or -1 with a message naming the
 * key. */
int collector_config_validate (const collector_config_t *self, char *err, size_t err_len);

/* Checks only the keys of the store (collector/state_dir, the map sizes), all that
 * `totalplace-collector init` uses; collector_config_validate checks them too. */
int collector_config_validate_store (const collector_config_t *self, char *err, size_t err_len);

/* Returns the ingest endpoints as a new list of strings (trimmed, in order; the list frees them),
 * or NULL when out of memory. The caller destroys the list. */
zlist_t *collector_config_endpoints (const collector_config_t *self);

/* Returns the query endpoints as a new list (empty when collector/query_endpoints is ""), or NULL
 * when out of memory. The caller destroys the list. */
zlist_t *collector_config_query_endpoints (const collector_config_t *self);

/* Name of a log level: "debug", "info" or "warning". */
const char *collector_log_level_name (collector_log_level_t level);

/* Writes one line per key (name, default, description) to out, for --help and docs. */
void collector_config_describe (FILE *out);

/* The keys as roff .TP entries, for the manual page (settings_describe_roff). */
void collector_config_describe_roff (FILE *out);

#endif
