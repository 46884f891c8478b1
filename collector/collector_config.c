/* collector_config: the collector's options described once, as data (see proto/settings.h). */
#include "collector_config.h"

#include <stdlib.h>
#include <string.h>

#include "curve.h"
#include "err_text.h"
#include "metrics_server.h"
#include "settings.h"
#include "wire.h"

#define FIELD(name) offsetof (collector_config_t, name)

/* SETTING_CHOICE stores an int; the names are in collector_log_level_t order. */
_Static_assert(sizeof (collector_log_level_t) == sizeof (int), "log level must be an int");
static const char *const s_levels[] = {"debug", "info", "warning", NULL};

static const setting_t s_settings[] = {
    {"collector/state_dir", SETTING_STRING, NULL, 0, 0, FIELD (state_dir),
     "folder holding the LMDB store, made once by `totalplace-collector init`; required", NULL},
    {"collector/ingest_endpoints", SETTING_STRING, "tcp://127.0.0.1:7700", 0, 0,
     FIELD (ingest_endpoints), "comma-separated ZeroMQ endpoints agents connect to", NULL},
    {"collector/query_endpoints", SETTING_STRING, "tcp://127.0.0.1:7701", 0, 0,
     FIELD (query_endpoints),
     "comma-separated ZeroMQ endpoints the totalplace CLI asks (--collector); empty for none",
     NULL},
    {"collector/map_size_mb", SETTING_UINT, "1024", 1, 16u * 1024 * 1024, FIELD (map_size_mb),
     "initial LMDB map size in MiB", NULL},
    {"collector/max_map_size_mb", SETTING_UINT, "1048576", 1, 16u * 1024 * 1024,
     FIELD (max_map_size_mb), "the map doubles when full, up to this many MiB", NULL},
    {"collector/max_group_batches", SETTING_UINT, "256", 1, 65536, FIELD (max_group_batches),
     "most batches applied in one store transaction (group commit)", NULL},
    {"collector/max_group_records", SETTING_UINT, "16000", 1, 5000000, FIELD (max_group_records),
     "most records applied in one store transaction (group commit)", NULL},
    {"collector/journal_records", SETTING_UINT, "100000", 0, 50000000, FIELD (journal_records),
     "under load, records of groups acknowledged from the store's journal before their "
     "transaction is committed; 0: commit every group",
     NULL},
    {"collector/journal_ms", SETTING_UINT, "1000", 1, 600000, FIELD (journal_ms),
     "and for at most this long: how far behind acknowledged batches readers may be", NULL},
    {"collector/curve_secret_cert", SETTING_STRING, NULL, 0, 0, FIELD (curve_secret_cert),
     "the collector's secret certificate (NAME.cert_secret from totalplace keygen --role "
     "collector); CURVE on every endpoint",
     NULL},
    {"collector/authorised_certs", SETTING_STRING, NULL, 0, 0, FIELD (authorised_certs),
     "folder of the public certificates (*.cert) of the agents and query users let in", NULL},
    {"collector/allow_plain", SETTING_BOOL, "0", 0, 0, FIELD (allow_plain),
     "1: no CURVE, no authentication; every endpoint must be ipc://, inproc:// or loopback", NULL},
    {"collector/metrics_endpoint", SETTING_STRING, "", 0, 0, FIELD (metrics_endpoint),
     "HOST:PORT of the Prometheus endpoint (GET /metrics), e.g. 127.0.0.1:9464; empty: none", NULL},
    {"collector/metrics_allow_remote", SETTING_BOOL, "0", 0, 0, FIELD (metrics_allow_remote),
     "1: allow a metrics_endpoint address other than loopback (firewall it: no authentication)",
     NULL},
    {"collector/places_file", SETTING_STRING, "", 0, 0, FIELD (places_file),
     "the places CSV (place,neighbourhood[,population]) for the CLI's --place and places; "
     "read at start and on reload; empty: none",
     NULL},
    {"limits/max_agents", SETTING_UINT, "1000", 1, 1000000, FIELD (max_agents),
     "agents connected at once; the batches of one more are answered ACK_RETRY", NULL},
    {"limits/max_query_clients", SETTING_UINT, "64", 1, 100000, FIELD (max_query_clients),
     "query clients (totalplace --collector) connected at once; one more is refused", NULL},
    {"limits/max_batch_kb", SETTING_UINT, "8192", 1, WIRE_MAX_MESSAGE_BYTES / 1024,
     FIELD (max_batch_kb),
     "largest Batch frame accepted, in KiB; larger ones are answered "
     "ACK_MALFORMED",
     NULL},
    {"limits/max_batch_records", SETTING_UINT, "5000", 1, WIRE_MAX_RECORDS_PER_BATCH,
     FIELD (max_batch_records), "most records in one Batch; more are answered ACK_MALFORMED", NULL},
    {"limits/handshake_timeout_ms", SETTING_UINT, "10000", 100, 600000,
     FIELD (handshake_timeout_ms),
     "a peer that has not finished the ZeroMQ handshake (and authentication) by then is dropped",
     NULL},
    {"log/syslog", SETTING_BOOL, "0", 0, 0, FIELD (log_syslog),
     "1 to log to syslog, 0 to log to stderr", NULL},
    {"log/level", SETTING_CHOICE, "info", 0, 0, FIELD (log_level), "debug, info or warning",
     s_levels},
    {"log/stats_interval", SETTING_UINT, "60", 0, 86400, FIELD (log_stats_interval),
     "seconds between ingest rate lines while busy; 0 for none", NULL},
};

static const settings_table_t s_table = {s_settings, sizeof (s_settings) / sizeof (s_settings[0])};

#define fail(err, err_len, message) err_text (err, err_len, -1, "%s", message)

collector_config_t *
collector_config_new (void)
{
    collector_config_t *self = calloc (1, sizeof *self);
    if (self && settings_defaults (&s_table, self))
        collector_config_destroy (&self);
    return self;
}

void
collector_config_destroy (collector_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    settings_free (&s_table, *self_p);
    free (*self_p);
    *self_p = NULL;
}

int
collector_config_load (collector_config_t *self, const char *path, char *err, size_t err_len)
{
    return settings_load (&s_table, self, path, err, err_len);
}

int
collector_config_load_string (collector_config_t *self, const char *text, const char *origin,
                              char *err, size_t err_len)
{
    return settings_load_string (&s_table, self, text, origin, err, err_len);
}

int
collector_config_set (collector_config_t *self, const char *key, const char *value, char *err,
                      size_t err_len)
{
    return settings_set (&s_table, self, key, value, err, err_len);
}

zlist_t *
collector_config_endpoints (const collector_config_t *self)
{
    size_t empty_at;
    return settings_split_list (self->ingest_endpoints, &empty_at);
}

zlist_t *
collector_config_query_endpoints (const collector_config_t *self)
{
    size_t empty_at;
    return settings_split_list (self->query_endpoints ? self->query_endpoints : "", &empty_at);
}

/* Checks a comma-separated list of endpoints; an empty list is allowed only when may_be_empty. */
static int
check_endpoints (const char *key, const char *list, bool may_be_empty, char *err, size_t err_len)
{
    size_t empty_at;
    list = list ? list : "";
    zlist_t *endpoints = settings_split_list (list, &empty_at);
    if (!endpoints) {
        snprintf (err, err_len, "out of memory checking %s", key);
        return -1;
    }
    int rc = 0;
    if (zlist_size (endpoints) == 0 && !may_be_empty) {
        snprintf (err, err_len, "%s is empty; give at least one endpoint", key);
        rc = -1;
    }
    else if (empty_at && (zlist_size (endpoints) > 0 || strchr (list, ','))) {
        snprintf (err, err_len, "%s: entry %zu of \"%.128s\" is empty", key, empty_at, list);
        rc = -1;
    }
    else
        for (const char *endpoint = zlist_first (endpoints); endpoint && rc == 0;
             endpoint = zlist_next (endpoints))
            rc = settings_check_endpoint (key, endpoint, err, err_len);
    zlist_destroy (&endpoints);
    return rc;
}

int
collector_config_validate_store (const collector_config_t *self, char *err, size_t err_len)
{
    if (!self->state_dir || !*self->state_dir)
        return fail (err, err_len,
                     "collector/state_dir is required: the folder for the LMDB store "
                     "(set it in the config file or with --state-dir)");
    if (self->max_map_size_mb < self->map_size_mb) {
        snprintf (err, err_len,
                  "collector/max_map_size_mb (%llu) is smaller than collector/map_size_mb (%llu)",
                  (unsigned long long)self->max_map_size_mb, (unsigned long long)self->map_size_mb);
        return -1;
    }
    return 0;
}

int
collector_config_validate (const collector_config_t *self, char *err, size_t err_len)
{
    if (collector_config_validate_store (self, err, err_len))
        return -1;
    if (check_endpoints ("collector/ingest_endpoints", self->ingest_endpoints, false, err,
                         err_len) ||
        check_endpoints ("collector/query_endpoints", self->query_endpoints, true, err, err_len))
        return -1;
    /* Two ROUTERs on one ipc:// path would take it from each other without an error. */
    zlist_t *ingest = collector_config_endpoints (self);
    zlist_t *query = collector_config_query_endpoints (self);
    int rc = ingest && query ? 0 : fail (err, err_len, "out of memory checking the endpoints");
    for (const char *q = query ? zlist_first (query) : NULL; q && rc == 0; q = zlist_next (query))
        for (const char *i = zlist_first (ingest); i && rc == 0; i = zlist_next (ingest))
            if (strcmp (q, i) == 0) {
                snprintf (err, err_len,
                          "collector/query_endpoints: %.128s is also an ingest endpoint; give "
                          "queries an endpoint of their own",
                          q);
                rc = -1;
            }
    zlist_destroy (&ingest);
    zlist_destroy (&query);
    if (rc)
        return rc;
    if (self->metrics_endpoint && *self->metrics_endpoint &&
        metrics_endpoint_check ("collector/metrics_endpoint", "collector/metrics_allow_remote",
                                self->metrics_endpoint, self->metrics_allow_remote, err, err_len))
        return -1;
    if (self->allow_plain) {
        /* Plain sockets authenticate no one: only this host may reach them. */
        zlist_t *lists[2] = {collector_config_endpoints (self),
                             collector_config_query_endpoints (self)};
        const char *keys[2] = {"collector/ingest_endpoints", "collector/query_endpoints"};
        for (int l = 0; l < 2; l++) {
            if (!lists[l] && rc == 0)
                rc = fail (err, err_len, "out of memory checking the endpoints");
            for (const char *e = lists[l] ? zlist_first (lists[l]) : NULL; e && rc == 0;
                 e = zlist_next (lists[l]))
                rc = curve_check_plain (keys[l], e, err, err_len);
            zlist_destroy (&lists[l]);
        }
        return rc;
    }
    else if (!self->curve_secret_cert || !*self->curve_secret_cert || !self->authorised_certs ||
             !*self->authorised_certs)
        return fail (err, err_len,
                     "collector/curve_secret_cert and collector/authorised_certs are required: "
                     "the collector's secret certificate and the folder of authorised agent and "
                     "query certificates (totalplace keygen makes them; docs/security.md), or "
                     "collector/allow_plain = 1 (--allow-plain) to take unauthenticated "
                     "connections on ipc:// and loopback endpoints only");
    return 0;
}

const char *
collector_log_level_name (collector_log_level_t level)
{
    if (level >= COLLECTOR_LOG_DEBUG && level <= COLLECTOR_LOG_WARNING)
        return s_levels[level];
    return "unknown";
}

void
collector_config_describe (FILE *out)
{
    settings_describe (&s_table, out);
}

void
collector_config_describe_roff (FILE *out)
{
    settings_describe_roff (&s_table, out);
}
