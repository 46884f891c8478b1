/* agent_config: the agent's settings table; parsing lives in proto/settings.c. */
#include "agent_config.h"
#include "err_text.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "apportion.h"
#include "curve.h"
#include "metrics_server.h"
#include "wire.h"

const char *const agent_column_fields[AGENT_COLUMN_FIELDS] = {
    "record_id",     "period",   "amount",   "supplier",  "service", "description",
    "neighbourhood", "poolable", "revision", "withdrawn", "body_id", "postcode"};

static const char *const LOG_LEVELS[] = {"debug", "info", "warning", NULL};
const char *const agent_encodings[] = {"auto", "utf-8", "windows-1252", "iso-8859-1", NULL};
static const char *const REPEATED_IDS[] = {"hold", "lines", NULL};

#define FIELD(name) offsetof (agent_config_t, name)
static const setting_t SETTINGS[] = {
    {"agent/id", SETTING_STRING, NULL, 0, 0, FIELD (agent_id),
     "this agent's name, unique among agents (A-Z a-z 0-9 . _ -); required", NULL},
    {"agent/body_id", SETTING_STRING, NULL, 0, 0, FIELD (body_id),
     "the public body's id put in every record, e.g. GB-LAE-BNS; required", NULL},
    {"agent/inbox", SETTING_STRING, NULL, 0, 0, FIELD (inbox),
     "folder where CSV files are dropped; done/ and failed/ are made inside it; required", NULL},
    {"agent/state_dir", SETTING_STRING, NULL, 0, 0, FIELD (state_dir),
     "folder for the durable outbox and the collector-rejects file; required", NULL},
    {"agent/collector", SETTING_STRING, "tcp://127.0.0.1:7700", 0, 0, FIELD (collector),
     "the collector's ingest endpoint", NULL},
    {"agent/curve_secret_cert", SETTING_STRING, NULL, 0, 0, FIELD (curve_secret_cert),
     "this agent's secret certificate (NAME.cert_secret from totalplace keygen --role agent; "
     "NAME is agent/id)",
     NULL},
    {"agent/collector_public_cert", SETTING_STRING, NULL, 0, 0, FIELD (collector_public_cert),
     "the collector's public certificate (its NAME.cert)", NULL},
    {"agent/allow_plain", SETTING_BOOL, "0", 0, 0, FIELD (allow_plain),
     "1: connect without CURVE (keys ignored); only to an ipc:// or loopback collector", NULL},
    {"agent/batch_records", SETTING_UINT, "1000", 1, WIRE_MAX_RECORDS_PER_BATCH,
     FIELD (batch_records), "records per batch", NULL},
    {"agent/window", SETTING_UINT, "16", 1, 1024, FIELD (window),
     "batches sent and awaiting their Ack at once", NULL},
    {"agent/ack_timeout_ms", SETTING_UINT, "10000", 50, 3600000, FIELD (ack_timeout_ms),
     "a batch not acknowledged within this is re-sent on a new connection", NULL},
    {"agent/retry_max_ms", SETTING_UINT, "60000", 50, 3600000, FIELD (retry_max_ms),
     "longest wait between reconnects (exponential backoff with jitter)", NULL},
    {"agent/scan_interval_ms", SETTING_UINT, "500", 10, 3600000, FIELD (scan_interval_ms),
     "how often the inbox is scanned for new files", NULL},
    {"agent/check_interval_ms", SETTING_UINT, "60000", 100, 86400000, FIELD (check_interval_ms),
     "while idle, how often the collector is asked whether its store still holds what it "
     "acknowledged (a restore from a backup)",
     NULL},
    {"agent/stall_alarm_s", SETTING_UINT, "900", 1, 604800, FIELD (stall_alarm_s),
     "totalplace-agent status reports unhealthy (exit 1) when batches wait and nothing was "
     "acknowledged for this long",
     NULL},
    {"agent/rejects_max_mb", SETTING_UINT, "64", 0, 1048576, FIELD (rejects_max_mb),
     "state_dir/collector-rejects.csv is rotated to .1 (then .2 ...) past this size; 0: never",
     NULL},
    {"agent/rejects_keep", SETTING_UINT, "4", 1, 1000, FIELD (rejects_keep),
     "rotated collector-rejects.csv.N files kept (the oldest beyond are deleted)", NULL},
    {"agent/rejects_keep_days", SETTING_UINT, "365", 0, 36500, FIELD (rejects_keep_days),
     "rotated collector-rejects.csv.N files older than this are deleted; 0: kept by count only",
     NULL},
    {"inbox/done_keep_days", SETTING_UINT, "90", 0, 36500, FIELD (done_keep_days),
     "files in inbox/done/ (with their rejects and warnings) older than this are deleted once "
     "every batch taken before them is acknowledged; 0: kept for ever",
     NULL},
    {"inbox/done_max_mb", SETTING_UINT, "10240", 0, 104857600, FIELD (done_max_mb),
     "inbox/done/ is kept under this many MiB by deleting its oldest files (acknowledged ones "
     "only); 0: no limit",
     NULL},
    {"outbox/max_batches", SETTING_UINT, "10000", 1, 10000000, FIELD (outbox_max_batches),
     "batches the outbox holds before the agent stops taking files", NULL},
    {"outbox/max_mb", SETTING_UINT, "1024", 1, 1048576, FIELD (outbox_max_mb),
     "MiB of batches the outbox holds before the agent stops taking files", NULL},
    {"outbox/retain_hours", SETTING_UINT, "168", 0, 87600, FIELD (retain_hours),
     "hours acknowledged batches are kept to re-send after a restore of the collector's store; "
     "they count in outbox/max_batches and outbox/max_mb and give way to new batches",
     NULL},
    {"defaults/service", SETTING_STRING, NULL, 0, 0, FIELD (default_service),
     "service for rows without one; unset rejects such rows", NULL},
    {"defaults/poolable", SETTING_BOOL, "0", 0, 0, FIELD (default_poolable),
     "poolable for rows without a Poolable cell", NULL},
    {"input/encoding", SETTING_CHOICE, "auto", 0, 0, FIELD (encoding),
     "auto (UTF-8 when the whole file is valid UTF-8, else Windows-1252), utf-8, windows-1252 or "
     "iso-8859-1",
     agent_encodings},
    {"input/repeated_ids", SETTING_CHOICE, "hold", 0, 0, FIELD (repeated_ids),
     "a record id a file repeats with other content: hold (the file waits in failed/ until this "
     "is set) or lines (every row is a payment; ids become ID~<content digits>#n)",
     REPEATED_IDS},
    {"input/max_rejected_percent", SETTING_UINT, "50", 0, 100, FIELD (max_rejected_percent),
     "a file with more than this share of its rows rejected is held in failed/, nothing sent",
     NULL},
    {"columns/record_id", SETTING_STRING, NULL, 0, 0, FIELD (columns[0]),
     "column(s) of the record id (default: Transaction Number, ...): header names tried in order, "
     "#N for a position, A + B to join columns; \"\" derives ids from each row's content",
     NULL},
    {"columns/period", SETTING_STRING, NULL, 0, 0, FIELD (columns[1]),
     "the date column: header names tried in order, or #N (default: Date, Payment Date, ...)",
     NULL},
    {"columns/amount", SETTING_STRING, NULL, 0, 0, FIELD (columns[2]),
     "the amount column: header names tried in order, or #N (default: Amount, Net Amount, Value)",
     NULL},
    {"columns/supplier", SETTING_STRING, NULL, 0, 0, FIELD (columns[3]),
     "the supplier column: header names tried in order, or #N (default: Supplier Name, ...)", NULL},
    {"columns/service", SETTING_STRING, NULL, 0, 0, FIELD (columns[4]),
     "the service column: header names tried in order, or #N (default: Service Area, ...)", NULL},
    {"columns/description", SETTING_STRING, NULL, 0, 0, FIELD (columns[5]),
     "the description column: header names tried in order, or #N (default: Expenses Type, ...)",
     NULL},
    {"columns/neighbourhood", SETTING_STRING, NULL, 0, 0, FIELD (columns[6]),
     "the neighbourhood column: header names tried in order, or #N (default: Neighbourhood, ...)",
     NULL},
    {"columns/poolable", SETTING_STRING, NULL, 0, 0, FIELD (columns[7]),
     "the poolable column: header names tried in order, or #N (default: Poolable)", NULL},
    {"columns/revision", SETTING_STRING, NULL, 0, 0, FIELD (columns[8]),
     "the revision column: header names tried in order, or #N (default: Revision)", NULL},
    {"columns/withdrawn", SETTING_STRING, NULL, 0, 0, FIELD (columns[9]),
     "the withdrawn column: header names tried in order, or #N (default: Withdrawn)", NULL},
    {"columns/body_id", SETTING_STRING, NULL, 0, 0, FIELD (columns[10]),
     "a body id column: header names tried in order, or #N (default: Body ID)", NULL},
    {"columns/postcode", SETTING_STRING, NULL, 0, 0, FIELD (columns[11]),
     "header of the postcode column read by neighbourhood/postcode_file (default: Postcode, ...)",
     NULL},
    {"neighbourhood/lookup_file", SETTING_STRING, NULL, 0, 0, FIELD (lookup_file),
     "CSV mapping values of neighbourhood/lookup_column to neighbourhood codes (with weights)",
     NULL},
    {"neighbourhood/lookup_column", SETTING_STRING, NULL, 0, 0, FIELD (lookup_column),
     "header of the export column looked up, e.g. Organisational Unit or Cost Centre", NULL},
    {"neighbourhood/lookup_file_value", SETTING_STRING, NULL, 0, 0, FIELD (lookup_file_value),
     "header of the values in the lookup file (default: the same as neighbourhood/lookup_column)",
     NULL},
    {"neighbourhood/lookup_file_neighbourhood", SETTING_STRING,
     "Neighbourhood, Neighbourhood Code, LSOA, Ward Code", 0, 0, FIELD (lookup_file_neighbourhood),
     "header of the codes in the lookup file (a list: the first present wins)", NULL},
    {"neighbourhood/lookup_file_weight", SETTING_STRING, "Weight", 0, 0, FIELD (lookup_file_weight),
     "header of the weights in the lookup file (the column may be absent: weight 1)", NULL},
    {"neighbourhood/max_parts", SETTING_UINT, "1", 1, APPORTION_MAX_PARTS, FIELD (max_parts),
     "most neighbourhoods one value may be split over; never lower it once parts were sent", NULL},
    {"neighbourhood/postcode_file", SETTING_STRING, NULL, 0, 0, FIELD (postcode_file),
     "CSV of postcodes and their areas, in the ONS Postcode Directory layout", NULL},
    {"neighbourhood/postcode_file_postcode", SETTING_STRING, "pcds, pcd, pcd7, pcd8", 0, 0,
     FIELD (postcode_file_postcode),
     "header of the postcodes in the postcode file (a list: the first present wins)", NULL},
    {"neighbourhood/postcode_file_area", SETTING_STRING, "lsoa21, lsoa11", 0, 0,
     FIELD (postcode_file_area),
     "header of the area codes in the postcode file (a list: the first present wins)", NULL},
    {"agent/metrics_endpoint", SETTING_STRING, "", 0, 0, FIELD (metrics_endpoint),
     "HOST:PORT of the Prometheus endpoint (GET /metrics), e.g. 127.0.0.1:9465; empty: none", NULL},
    {"agent/metrics_allow_remote", SETTING_BOOL, "0", 0, 0, FIELD (metrics_allow_remote),
     "1: allow a metrics_endpoint address other than loopback (firewall it: no authentication)",
     NULL},
    {"log/syslog", SETTING_BOOL, "0", 0, 0, FIELD (log_syslog),
     "1 to log to syslog, 0 to log to stderr", NULL},
    {"log/level", SETTING_CHOICE, "info", 0, 0, FIELD (log_level), "debug, info or warning",
     LOG_LEVELS},
};

static const settings_table_t TABLE = {SETTINGS, sizeof SETTINGS / sizeof SETTINGS[0]};

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

agent_config_t *
agent_config_new (void)
{
    agent_config_t *self = calloc (1, sizeof *self);
    if (self && settings_defaults (&TABLE, self))
        agent_config_destroy (&self);
    return self;
}

void
agent_config_destroy (agent_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    settings_free (&TABLE, *self_p);
    free (*self_p);
    *self_p = NULL;
}

int
agent_config_load (agent_config_t *self, const char *path, char *err, size_t err_len)
{
    return settings_load (&TABLE, self, path, err, err_len);
}

int
agent_config_set (agent_config_t *self, const char *key, const char *value, char *err,
                  size_t err_len)
{
    return settings_set (&TABLE, self, key, value, err, err_len);
}

static bool
is_identifier (const char *text, size_t max)
{
    size_t len = text ? strlen (text) : 0;
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int
agent_config_validate_reading (const agent_config_t *self, char *err, size_t err_len)
{
    if (!is_identifier (self->body_id, WIRE_MAX_BODY_ID))
        return fail (err, err_len,
                     "agent/body_id is %s: give the body's id, e.g. GB-LAE-BNS (1-%u characters "
                     "of A-Z a-z 0-9 . _ -)",
                     self->body_id ? "not valid" : "required", WIRE_MAX_BODY_ID);
    if (self->default_service && strlen (self->default_service) > WIRE_MAX_SERVICE)
        return fail (err, err_len, "defaults/service is longer than %u bytes", WIRE_MAX_SERVICE);
    bool has_file = self->lookup_file && *self->lookup_file;
    bool has_column = self->lookup_column && *self->lookup_column;
    if (has_file != has_column)
        return fail (err, err_len,
                     "neighbourhood/lookup_file and neighbourhood/lookup_column go together: give "
                     "both (the lookup CSV and the export column it maps) or neither");
    if (self->postcode_file && !*self->postcode_file)
        return fail (err, err_len,
                     "neighbourhood/postcode_file is empty: give a path or leave it "
                     "out");
    if (!self->lookup_file_neighbourhood || !*self->lookup_file_neighbourhood ||
        !self->postcode_file_postcode || !*self->postcode_file_postcode ||
        !self->postcode_file_area || !*self->postcode_file_area)
        return fail (err, err_len,
                     "neighbourhood/lookup_file_neighbourhood, postcode_file_postcode and "
                     "postcode_file_area need at least one header name");
    return 0;
}

int
agent_config_validate (const agent_config_t *self, char *err, size_t err_len)
{
    if (!is_identifier (self->agent_id, WIRE_MAX_AGENT_ID))
        return fail (err, err_len, "agent/id is %s: give 1-%u characters of A-Z a-z 0-9 . _ -",
                     self->agent_id ? "not valid" : "required", WIRE_MAX_AGENT_ID);
    if (agent_config_validate_reading (self, err, err_len))
        return -1;
    if (!self->inbox || !*self->inbox)
        return fail (err, err_len, "agent/inbox is required: the folder CSV files are dropped in");
    if (!self->state_dir || !*self->state_dir)
        return fail (err, err_len, "agent/state_dir is required: the folder for the outbox");
    if (!self->collector ||
        settings_check_endpoint ("agent/collector", self->collector, err, err_len))
        return self->collector ? -1 : fail (err, err_len, "agent/collector is required");
    if (self->allow_plain) {
        if (curve_check_plain ("agent/collector", self->collector, err, err_len))
            return -1;
    }
    else if (!self->curve_secret_cert || !*self->curve_secret_cert ||
             !self->collector_public_cert || !*self->collector_public_cert)
        return fail (err, err_len,
                     "agent/curve_secret_cert and agent/collector_public_cert are required: this "
                     "agent's secret certificate and the collector's public one (docs/security.md)"
                     "; or agent/allow_plain = 1 (--allow-plain) for a collector on this host "
                     "running without CURVE");
    if (self->retry_max_ms < 50)
        return fail (err, err_len, "agent/retry_max_ms must be at least 50");
    if (self->metrics_endpoint && *self->metrics_endpoint &&
        metrics_endpoint_check ("agent/metrics_endpoint", "agent/metrics_allow_remote",
                                self->metrics_endpoint, self->metrics_allow_remote, err, err_len))
        return -1;
    return 0;
}

void
agent_config_describe (FILE *out)
{
    settings_describe (&TABLE, out);
}

void
agent_config_describe_roff (FILE *out)
{
    settings_describe_roff (&TABLE, out);
}
