/* totalplace-agent: takes a public body's spending exports from an inbox folder and delivers them
 * to the collector exactly once in effect, through crashes, restarts and outages. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "agent_config.h"
#include "agent_metrics.h"
#include "agent_status.h"
#include "csv_reader.h"
#include "curve.h"
#include "export_summary.h"
#include "health.h"
#include "inbox.h"
#include "inspect_report.h"
#include "log.h"
#include "metrics_server.h"
#include "outbox.h"
#include "report.h"
#include "retention.h"
#include "sender.h"

static volatile sig_atomic_t s_terminate = 0;
static volatile sig_atomic_t s_reload = 0;

static void
on_signal (int signal_number)
{
    if (signal_number == SIGHUP)
        s_reload = 1;
    else
        s_terminate = 1;
}

static void
install_signals (void)
{
    /* CZMQ would install its own SIGINT/SIGTERM handler with its first socket; ours decide. */
    zsys_handler_set (NULL);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGHUP, &action, NULL);
    signal (SIGPIPE, SIG_IGN);
}

/* The modules' messages (agent_log.h) as log lines; arg names the module ("inbox", "sender"). */
static void
log_message (void *arg, agent_level_t level, const char *message)
{
    log_line ((log_level_t)level, arg ? (const char *)arg : "agent", "%s", message);
}

/* Logging: one line per event to stderr (the journal) or syslog (proto/log.h). */
static void
log_setup (const agent_config_t *config, bool use_syslog, bool verbose)
{
    log_open ("totalplace-agent", use_syslog || config->log_syslog);
    log_set_level (verbose ? LOG_LEVEL_DEBUG : (log_level_t)config->log_level);
}

static void
usage (FILE *out)
{
    fprintf (
        out,
        "Usage: totalplace-agent [OPTIONS]                 run the agent (foreground)\n"
        "       totalplace-agent [OPTIONS] submit FILE|-   queue a CSV file (or stdin)\n"
        "       totalplace-agent [OPTIONS] status [--format table|json] [--clear-alarm]\n"
        "                          the agent's state; exit 0 healthy, 1 unhealthy (batches lost,\n"
        "                          or none acknowledged for agent/stall_alarm_s), 2 error\n"
        "       totalplace-agent [OPTIONS] [--format table|json] inspect FILE\n"
        "                          read FILE as the agent would and say what it would send;\n"
        "                          sends nothing; exit 0 delivered, 1 held, 2 usage error\n"
        "\n"
        "Reads spending exports (CSV) dropped in the inbox folder, stores them as batches in a\n"
        "durable outbox, and delivers them to the collector until each is acknowledged.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE      ZPL config file (keys below)\n"
        "      --id ID            agent/id\n"
        "      --body ID          agent/body_id\n"
        "      --inbox DIR        agent/inbox\n"
        "      --state-dir DIR    agent/state_dir\n"
        "      --collector EP     agent/collector (e.g. tcp://collector:7700)\n"
        "      --allow-plain      agent/allow_plain = 1: no CURVE (a local collector)\n"
        "      --set KEY=VALUE    set any config key below\n"
        "      --once             exit once the inbox is empty, every batch is acked and the\n"
        "                         collector has answered; 1 if batches were found lost or a\n"
        "                         file was held or failed\n"
        "      --syslog           log to syslog instead of stderr\n"
        "  -v, --verbose          log debug lines\n"
        "  -n, --check            check the config and exit\n"
        "      --format FORMAT    status's and inspect's output: table (default) or json\n"
        "  -h, --help             this help\n"
        "  -V, --version          print the version\n"
        "\n"
        "Signals: SIGTERM/SIGINT finish the current file and exit 0; SIGHUP reloads the config.\n"
        "\n"
        "Config keys (key, default, meaning):\n");
    agent_config_describe (out);
}

/* Builds a CSV reader from the config's body, defaults, column overrides and neighbourhood
 * lookups (read from their files now: at start-up, with -n and on every SIGHUP). */
static csv_reader_t *
reader_from_config (const agent_config_t *config, char *err, size_t err_len)
{
    csv_reader_t *reader = csv_reader_new (config->body_id, err, err_len);
    if (!reader)
        return NULL;
    area_lookup_t *lookup = NULL;
    char why[768];
    for (size_t i = 0; i < AGENT_COLUMN_FIELDS; i++)
        if (config->columns[i] &&
            csv_reader_map (reader, agent_column_fields[i], config->columns[i], err, err_len))
            goto fail;
    if (config->default_service &&
        csv_reader_set_default_service (reader, config->default_service, err, err_len))
        goto fail;
    csv_reader_set_default_poolable (reader, config->default_poolable);
    if (csv_reader_set_max_parts (reader, config->max_parts, err, err_len))
        goto fail;
    csv_reader_set_repeated_ids (reader, (csv_repeated_ids_t)config->repeated_ids);
    text_encoding_t encoding;
    if (text_encoding_parse (agent_encodings[config->encoding], &encoding) != 0) {
        snprintf (err, err_len, "input/encoding: %s is not one of " TEXT_ENCODING_NAMES,
                  agent_encodings[config->encoding]);
        goto fail;
    }
    csv_reader_set_encoding (reader, encoding);
    if (config->lookup_file) {
        area_lookup_options_t options = {.key_columns = config->lookup_file_value
                                                            ? config->lookup_file_value
                                                            : config->lookup_column,
                                         .code_columns = config->lookup_file_neighbourhood,
                                         .weight_columns = config->lookup_file_weight,
                                         .max_parts = config->max_parts};
        lookup = area_lookup_load (config->lookup_file, &options, why, sizeof why);
        if (!lookup) {
            snprintf (err, err_len, "neighbourhood/lookup_file: %s", why);
            goto fail;
        }
        if (csv_reader_set_lookup (reader, config->lookup_column, &lookup, why, sizeof why)) {
            snprintf (err, err_len, "neighbourhood/lookup_file %s: %s", config->lookup_file, why);
            goto fail;
        }
    }
    if (config->postcode_file) {
        area_lookup_options_t options = {.key_columns = config->postcode_file_postcode,
                                         .code_columns = config->postcode_file_area,
                                         .postcodes = true,
                                         .max_parts = 1};
        lookup = area_lookup_load (config->postcode_file, &options, why, sizeof why);
        if (!lookup) {
            snprintf (err, err_len, "neighbourhood/postcode_file: %s", why);
            goto fail;
        }
        if (csv_reader_set_postcode_lookup (reader, &lookup, err, err_len))
            goto fail;
    }
    return reader;
fail:
    area_lookup_destroy (&lookup);
    csv_reader_destroy (&reader);
    return NULL;
}

/* Loads the CURVE keys the config names (none with agent/allow_plain) and checks them against
 * it, so that a mismatch the collector would refuse is named before anything is sent. */
static int
keys_from_config (const agent_config_t *config, curve_client_t **keys, char *err, size_t err_len)
{
    *keys = NULL;
    if (config->allow_plain)
        return 0;
    curve_client_t *loaded = curve_client_new (
        config->curve_secret_cert, config->collector_public_cert, CURVE_ROLE_AGENT, err, err_len);
    if (!loaded)
        return -1;
    zcert_t *cert = curve_client_cert (loaded);
    const char *name = zcert_meta (cert, "name");
    const char *bodies = zcert_meta (cert, "bodies");
    bool listed = false;
    for (const char *at = bodies; at && *at;) {
        size_t length = strcspn (at, ",");
        if (length == strlen (config->body_id) && strncmp (at, config->body_id, length) == 0)
            listed = true;
        at += length + (at[length] == ',');
    }
    if (!name || strcmp (name, config->agent_id) != 0)
        snprintf (err, err_len,
                  "agent/curve_secret_cert %s is the certificate of agent \"%s\", not of agent/id "
                  "\"%s\": the collector would refuse every batch",
                  config->curve_secret_cert, name ? name : "?", config->agent_id);
    else if (!listed)
        snprintf (err, err_len,
                  "agent/body_id %s is not among the bodies agent/curve_secret_cert %s lists (%s): "
                  "the collector would reject every record",
                  config->body_id, config->curve_secret_cert, bodies ? bodies : "none");
    else {
        *keys = loaded;
        return 0;
    }
    curve_client_destroy (&loaded);
    return -1;
}

static sender_options_t
sender_options (const agent_config_t *config, const char *rejects_path, curve_client_t *keys)
{
    return (sender_options_t){.curve = keys,
                              .endpoint = config->collector,
                              .window = config->window,
                              .ack_timeout_ms = config->ack_timeout_ms,
                              .retry_base_ms = 250,
                              .retry_max_ms = config->retry_max_ms,
                              .rejects_path = rejects_path,
                              .log = log_message,
                              .log_arg = "sender",
                              .agent_id = config->agent_id,
                              .check_interval_ms = config->check_interval_ms,
                              .retain_hours = config->retain_hours};
}

typedef struct {
    const char *config_path;
    const char *overrides[32][2];
    size_t override_count;
} config_source_t;

/* Reads the config file then the command-line overrides, without validating them. */
static agent_config_t *
read_config (const config_source_t *source, char *err, size_t err_len)
{
    agent_config_t *config = agent_config_new ();
    if (!config) {
        snprintf (err, err_len, "out of memory");
        return NULL;
    }
    if (source->config_path && agent_config_load (config, source->config_path, err, err_len))
        goto fail;
    for (size_t i = 0; i < source->override_count; i++)
        if (agent_config_set (config, source->overrides[i][0], source->overrides[i][1], err,
                              err_len))
            goto fail;
    return config;
fail:
    agent_config_destroy (&config);
    return NULL;
}

/* Reads the config and validates it: the same for start-up, --check and SIGHUP. */
static agent_config_t *
load_config (const config_source_t *source, char *err, size_t err_len)
{
    agent_config_t *config = read_config (source, err, err_len);
    if (config && agent_config_validate (config, err, err_len))
        agent_config_destroy (&config);
    return config;
}

/* Reads the config and checks only what reading an export needs: inspect sends nothing. */
static agent_config_t *
load_config_for_reading (const config_source_t *source, char *err, size_t err_len)
{
    agent_config_t *config = read_config (source, err, err_len);
    if (config && agent_config_validate_reading (config, err, err_len))
        agent_config_destroy (&config);
    return config;
}

/* When the inbox holds a file back instead of sending it (export_summary_verdict). */
static export_policy_t
policy_from_config (const agent_config_t *config, const char *config_path)
{
    return (export_policy_t){.max_rejected_percent = (unsigned)config->max_rejected_percent,
                             .hold_repeated_ids = config->repeated_ids == CSV_REPEATED_IDS_HOLD,
                             .config = config_path};
}

/* inspect: reads the file exactly as the inbox would, keeps nothing and sends nothing, and
 * prints what it found. Exit 0 when the file would be delivered, 1 when held or unreadable. */
static int
inspect (const agent_config_t *config, const char *config_path, const char *path,
         report_format_t format)
{
    char err[1024];
    csv_reader_t *reader = reader_from_config (config, err, sizeof err);
    if (!reader) {
        fprintf (stderr, "totalplace-agent: %s\n", err);
        return 2;
    }
    export_summary_t *summary = export_summary_new ();
    if (!summary) {
        fprintf (stderr, "totalplace-agent: out of memory\n");
        csv_reader_destroy (&reader);
        return 2;
    }
    csv_reader_stats_t stats;
    int rc =
        csv_reader_read_file (reader, path, NULL, NULL, NULL, &stats, summary, err, sizeof err);
    if (rc != 0 && !export_summary_failure (summary))
        export_summary_set_failure (summary, err);
    export_policy_t policy = policy_from_config (config, config_path);
    char *note = NULL;
    export_verdict_t verdict = export_summary_verdict (summary, &policy, &note);
    int status = verdict == EXPORT_DELIVER ? 0 : 1;
    if (inspect_report_write (path, summary, verdict, note, format, stdout, err, sizeof err)) {
        fprintf (stderr, "totalplace-agent: %s\n", err);
        status = 2;
    }
    free (note);
    export_summary_destroy (&summary);
    csv_reader_destroy (&reader);
    return status;
}

/* inspect's command line: a body id is all a first look at a file needs, before any config. */
static int
inspect_command (config_source_t *source, const char *path, const char *format_name)
{
    report_format_t format = REPORT_TABLE;
    if (format_name && report_format_parse (format_name, &format) != 0) {
        fprintf (stderr, "totalplace-agent: --format is table or json\n");
        return 2;
    }
    bool have_body = false;
    for (size_t i = 0; i < source->override_count; i++)
        have_body |= strcmp (source->overrides[i][0], "agent/body_id") == 0;
    if (!source->config_path && !have_body && source->override_count < 32) {
        source->overrides[source->override_count][0] = "agent/body_id";
        source->overrides[source->override_count++][1] = "UNSET";
    }
    char err[1024];
    agent_config_t *config = load_config_for_reading (source, err, sizeof err);
    if (!config) {
        fprintf (stderr, "totalplace-agent: %s\n", err);
        return 2;
    }
    int rc = inspect (config, source->config_path, path, format);
    agent_config_destroy (&config);
    return rc;
}

/* status: the agent's state, read beside a running agent, or its alarm cleared. Needs only
 * agent/state_dir (agent/inbox and agent/collector are shown when set). Exit 0 healthy (or
 * cleared), 1 unhealthy (an alarm stands, or delivery stalled), 2 nothing could be read. */
static int
status_command (const config_source_t *source, const char *format, bool clear_alarm)
{
    char err[1024], outbox_dir[4096];
    agent_config_t *config = read_config (source, err, sizeof err);
    if (config && (!config->state_dir || !*config->state_dir)) {
        snprintf (err, sizeof err, "agent/state_dir is required: -c CONFIG or --state-dir DIR");
        agent_config_destroy (&config);
    }
    if (!config) {
        fprintf (stderr, "totalplace-agent: %s\n", err);
        return 2;
    }
    snprintf (outbox_dir, sizeof outbox_dir, "%s/outbox", config->state_dir);
    agent_status_options_t options = {
        .outbox_dir = outbox_dir,
        .inbox_dir = config->inbox,
        .collector = config->collector,
        .format = format && strcmp (format, "json") == 0 ? AGENT_STATUS_JSON : AGENT_STATUS_TABLE,
        .retain_hours = config->retain_hours,
        .stall_alarm_s = config->stall_alarm_s,
        .now = (int64_t)time (NULL)};
    int rc = clear_alarm ? agent_status_clear_alarm (outbox_dir, stdout, err, sizeof err)
                         : agent_status_print (&options, stdout, err, sizeof err);
    agent_config_destroy (&config);
    if (rc < 0) {
        fprintf (stderr, "totalplace-agent: %s\n", err);
        return 2;
    }
    return rc;
}

/* submit: copies the file into the inbox under a hidden name, syncs it, then renames it to *.csv
 * so the agent never sees half a file. */
static int
submit (const agent_config_t *config, const char *source_path)
{
    FILE *in = strcmp (source_path, "-") == 0 ? stdin : fopen (source_path, "r");
    if (!in) {
        fprintf (stderr, "totalplace-agent: cannot open %s: %s\n", source_path, strerror (errno));
        return 1;
    }
    mkdir (config->inbox, 0750);
    char tmp[4096], final[4096], stamp[32];
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    snprintf (tmp, sizeof tmp, "%s/.submit-%ld.tmp", config->inbox, (long)getpid ());
    /* Keep the source's name visible in done/ and rejects: "council.20261125T101500Z.4242.csv". */
    const char *base = strcmp (source_path, "-") == 0 ? "stdin" : strrchr (source_path, '/');
    base = base == NULL ? source_path : (*base == '/' ? base + 1 : base);
    size_t stem = strlen (base);
    if (stem > 4 && strcasecmp (base + stem - 4, ".csv") == 0)
        stem -= 4;
    if (stem > 200)
        stem = 200;
    snprintf (final, sizeof final, "%s/%.*s.%s.%ld.csv", config->inbox, (int)stem, base, stamp,
              (long)getpid ());
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0) {
        fprintf (stderr, "totalplace-agent: cannot write in inbox %s: %s\n", config->inbox,
                 strerror (errno));
        if (in != stdin)
            fclose (in);
        return 1;
    }
    char buffer[65536];
    size_t got;
    int bad = 0;
    while (!bad && (got = fread (buffer, 1, sizeof buffer, in)) > 0)
        bad = write (fd, buffer, got) != (ssize_t)got;
    bad |= ferror (in);
    bad |= fsync (fd) != 0;
    bad |= close (fd) != 0;
    if (in != stdin)
        fclose (in);
    if (bad || rename (tmp, final) != 0) {
        fprintf (stderr, "totalplace-agent: cannot queue %s into %s: %s\n", source_path,
                 config->inbox, strerror (errno));
        unlink (tmp);
        return 1;
    }
    int dir = open (config->inbox, O_RDONLY | O_DIRECTORY);
    if (dir >= 0) {
        fsync (dir);
        close (dir);
    }
    printf ("queued %s as %s\n", source_path, final);
    return 0;
}

/* ---------------------------------------------------------------- monitoring */

/* What an operator's tools see of the running agent: the Prometheus endpoint (when
 * agent/metrics_endpoint names one) and systemd's health (sd_notify: READY, STATUS, WATCHDOG). */
typedef struct {
    agent_metrics_t *metrics;
    metrics_server_t *server;
    int64_t published_at; /* zclock_mono of the last snapshot, 0 before the first */
} monitor_t;

static monitor_t s_monitor;

/* Starts the endpoint (after the signal handlers: its thread must not take the signals' work).
 * Returns 0, or -1 with err. */
static int
monitor_start (const agent_config_t *config, char *err, size_t err_len)
{
    s_monitor.metrics = agent_metrics_new ((int64_t)time (NULL));
    if (!s_monitor.metrics) {
        snprintf (err, err_len, "out of memory");
        return -1;
    }
    if (!config->metrics_endpoint || !*config->metrics_endpoint)
        return 0;
    s_monitor.server = metrics_server_new ("agent/metrics_endpoint", "agent/metrics_allow_remote",
                                           config->metrics_endpoint, config->metrics_allow_remote,
                                           agent_metrics_render, s_monitor.metrics, err, err_len);
    if (!s_monitor.server)
        return -1;
    log_info ("agent", "metrics on %s", metrics_server_url (s_monitor.server));
    return 0;
}

/* On every turn of the loop: the watchdog; about once a second, a snapshot for the metrics and
 * the status line systemd shows. */
static void
monitor_tick (outbox_t *outbox, inbox_t *inbox, sender_t *sender, const char *collector)
{
    health_watchdog ();
    int64_t now = zclock_mono ();
    if (!s_monitor.metrics || (s_monitor.published_at && now - s_monitor.published_at < 1000))
        return;
    s_monitor.published_at = now;
    agent_metrics_snapshot_t snapshot = {.pending_batches = outbox_count (outbox),
                                         .pending_bytes = outbox_bytes (outbox)};
    outbox_retained (outbox, &snapshot.retained);
    outbox_alarm_t alarm = {0};
    char err[OUTBOX_ERR_LEN];
    snapshot.alarm = outbox_alarm (outbox, &alarm, err, sizeof err) == 0 && alarm.lost > 0;
    sender_counters (sender, &snapshot.sent);
    inbox_counters (inbox, &snapshot.files);
    snapshot.taken_at = (int64_t)time (NULL);
    snapshot.last_ack_at = outbox_last_ack_at (outbox);
    if (snapshot.pending_batches &&
        outbox_oldest_pending_at (outbox, &snapshot.oldest_pending_at, err, sizeof err))
        snapshot.oldest_pending_at = 0;
    agent_metrics_publish (s_monitor.metrics, &snapshot);
    if (snapshot.alarm)
        health_status ("ALARM: %llu batches lost (totalplace-agent status); %zu batches pending",
                       (unsigned long long)alarm.lost, snapshot.pending_batches);
    else
        health_status ("%zu batches pending (%llu bytes) for %s; %llu acknowledged since start",
                       snapshot.pending_batches, (unsigned long long)snapshot.pending_bytes,
                       collector, (unsigned long long)snapshot.sent.acked);
}

static void
monitor_stop (void)
{
    metrics_server_destroy (&s_monitor.server);
    agent_metrics_destroy (&s_monitor.metrics);
}

typedef struct {
    agent_config_t *config;
    curve_client_t *keys; /* NULL: plain */
    outbox_t *outbox;
    csv_reader_t *reader;
    inbox_t *inbox;
    sender_t *sender;
    char rejects_path[4096];
} agent_t;

static void
reload (agent_t *agent, const config_source_t *source)
{
    char err[512];
    agent_config_t *fresh = load_config (source, err, sizeof err);
    if (!fresh) {
        log_error ("agent", "reload refused, keeping the running config: %s", err);
        return;
    }
    csv_reader_t *reader = reader_from_config (fresh, err, sizeof err);
    if (!reader) {
        log_error ("agent", "reload refused, keeping the running config: %s", err);
        agent_config_destroy (&fresh);
        return;
    }
    curve_client_t *keys = NULL;
    if (keys_from_config (fresh, &keys, err, sizeof err)) {
        log_error ("agent", "reload refused, keeping the running config: %s", err);
        csv_reader_destroy (&reader);
        agent_config_destroy (&fresh);
        return;
    }
    /* The same keys as before: keep the connection. */
    if (keys && agent->keys &&
        streq (curve_client_public_txt (keys), curve_client_public_txt (agent->keys)) &&
        streq (zcert_public_txt (curve_client_server (keys)),
               zcert_public_txt (curve_client_server (agent->keys)))) {
        curve_client_destroy (&keys);
        keys = agent->keys;
    }
    sender_options_t options = sender_options (fresh, agent->rejects_path, keys);
    if (sender_configure (agent->sender, &options, err, sizeof err)) {
        log_error ("agent", "reload: %s", err);
        if (keys != agent->keys)
            curve_client_destroy (&keys);
        csv_reader_destroy (&reader);
        agent_config_destroy (&fresh);
        return;
    }
    if (keys != agent->keys) {
        curve_client_destroy (&agent->keys);
        agent->keys = keys;
        log_info ("agent", "reload: %s",
                  keys ? "new CURVE keys in use" : "connecting without CURVE");
    }
    if (strcmp (fresh->agent_id, agent->config->agent_id) != 0 ||
        strcmp (fresh->inbox, agent->config->inbox) != 0 ||
        strcmp (fresh->state_dir, agent->config->state_dir) != 0 ||
        fresh->outbox_max_batches != agent->config->outbox_max_batches ||
        fresh->outbox_max_mb != agent->config->outbox_max_mb)
        log_warning ("agent",
                     "reload: agent/id, agent/inbox, agent/state_dir and outbox limits take "
                     "effect only after a restart");
    inbox_configure (agent->inbox, reader, fresh->batch_records);
    export_policy_t policy = policy_from_config (fresh, source->config_path);
    if (inbox_set_policy (agent->inbox, &policy))
        log_error ("agent", "reload: out of memory setting when files are held");
    csv_reader_destroy (&agent->reader);
    agent->reader = reader;
    /* Keep what needs a restart as it was running. */
    char *keep[] = {agent->config->agent_id, agent->config->inbox, agent->config->state_dir};
    char **fresh_slots[] = {&fresh->agent_id, &fresh->inbox, &fresh->state_dir};
    for (size_t i = 0; i < 3; i++) {
        free (*fresh_slots[i]);
        *fresh_slots[i] = strdup (keep[i]);
    }
    agent_config_destroy (&agent->config);
    agent->config = fresh;
    log_set_level ((log_level_t)fresh->log_level);
    log_info ("agent", "config reloaded");
}

/* An error of the delivery loop, said once and then at most every few minutes while it repeats
 * (a full disk fails every Ack: it must not fill the log twice a second). */
#define REPEAT_SAY_MS 300000
typedef struct {
    char last[1024];
    int64_t said_at;
    uint64_t quiet;
} said_t;

static void
say_error_limited (said_t *said, const char *message)
{
    int64_t now = zclock_mono ();
    if (strcmp (said->last, message) == 0 && now - said->said_at < REPEAT_SAY_MS) {
        said->quiet++;
        return;
    }
    if (said->quiet)
        log_error ("agent", "%s (and %llu more times in %lld s: said at most every %d minutes)", message,
                    (unsigned long long)said->quiet, (long long)(now - said->said_at) / 1000,
                    REPEAT_SAY_MS / 60000);
    else
        log_error ("agent", "%s", message);
    snprintf (said->last, sizeof said->last, "%s", message);
    said->said_at = now;
    said->quiet = 0;
}

/* done/ and collector-rejects.csv are kept within inbox/done_keep_days, inbox/done_max_mb and
 * agent/rejects_* (docs/agent.md, "Retention"); looked at when the agent starts and then this
 * often. A done/ file goes only once every batch taken before it is acknowledged. */
#define RETENTION_INTERVAL_MS 600000

static void
tend_retention (agent_t *agent, said_t *said)
{
    const agent_config_t *config = agent->config;
    char err[1024], done_dir[4096];
    int64_t now = (int64_t)time (NULL), oldest = 0;
    if (outbox_oldest_pending_at (agent->outbox, &oldest, err, sizeof err)) {
        say_error_limited (said, err);
        return;
    }
    /* Nothing waits: everything in done/ is acknowledged. A batch waits whose file is no longer
     * remembered: keep everything. */
    retention_done_t done = {.keep_days = config->done_keep_days,
                             .max_bytes = config->done_max_mb << 20,
                             .taken_before = outbox_count (agent->outbox) ? oldest : now,
                             .now = now};
    retention_result_t result;
    snprintf (done_dir, sizeof done_dir, "%s/done", config->inbox);
    if ((done.keep_days || done.max_bytes) &&
        retention_prune_done (done_dir, &done, &result, err, sizeof err))
        say_error_limited (said, err);
    else if (done.keep_days || done.max_bytes) {
        if (result.files)
            log_info ("agent", "retention: deleted %llu files (%llu bytes) from %s, older than "
                       "inbox/done_keep_days (%llu) or over inbox/done_max_mb (%llu); %llu bytes "
                       "kept",
                       (unsigned long long)result.files, (unsigned long long)result.bytes, done_dir,
                       (unsigned long long)config->done_keep_days,
                       (unsigned long long)config->done_max_mb,
                       (unsigned long long)result.kept_bytes);
        else if (done.max_bytes && result.kept_bytes > done.max_bytes)
            log_warning ("agent", "retention: %s holds %llu bytes, over inbox/done_max_mb (%llu MiB), "
                          "but its files are not all acknowledged yet: kept",
                          done_dir, (unsigned long long)result.kept_bytes,
                          (unsigned long long)config->done_max_mb);
    }
    retention_rotate_t rotate = {.max_bytes = config->rejects_max_mb << 20,
                                 .keep = config->rejects_keep,
                                 .keep_days = config->rejects_keep_days,
                                 .now = now};
    int rotated = 0;
    uint64_t deleted = 0;
    if (retention_rotate (agent->rejects_path, &rotate, &rotated, &deleted, err, sizeof err))
        say_error_limited (said, err);
    else {
        if (rotated)
            log_info ("agent", "retention: %s rotated to %s.1, over agent/rejects_max_mb (%llu MiB)",
                       agent->rejects_path, agent->rejects_path,
                       (unsigned long long)config->rejects_max_mb);
        if (deleted)
            log_info ("agent", "retention: deleted %llu old rotations of %s (agent/rejects_keep %llu, "
                       "agent/rejects_keep_days %llu)",
                       (unsigned long long)deleted, agent->rejects_path,
                       (unsigned long long)config->rejects_keep,
                       (unsigned long long)config->rejects_keep_days);
    }
}

/* --once is over: 0, or 1 when a file went to failed/ or could not leave the inbox. */
static int
once_status (agent_t *agent)
{
    inbox_counters_t files;
    inbox_counters (agent->inbox, &files);
    if (files.files_failed) {
        /* A held file is money not counted: the run did not do its job. */
        log_error ("agent", "inbox empty and every batch acknowledged, but %llu file(s) went to "
                    "%s/failed (see the .error note beside each): exiting 1 (--once)",
                    (unsigned long long)files.files_failed, agent->config->inbox);
        return 1;
    }
    if (files.unmoved) {
        log_error ("agent", "every batch acknowledged, but %zu file(s) taken could not be moved out of "
                    "%s (named above): exiting 1 (--once)",
                    files.unmoved, agent->config->inbox);
        return 1;
    }
    log_info ("agent", "inbox empty and every batch acknowledged: exiting (--once)");
    return 0;
}

static int
run (agent_t *agent, const config_source_t *source, bool once)
{
    char err[1024];
    int64_t next_scan = 0, next_retention = 0;
    bool inbox_empty = false;
    said_t said = {.said_at = 0};
    while (!s_terminate) {
        monitor_tick (agent->outbox, agent->inbox, agent->sender, agent->config->collector);
        if (s_reload) {
            s_reload = 0;
            health_reloading ();
            reload (agent, source);
            health_ready ("reloaded");
        }
        int64_t now = zclock_mono ();
        if (now >= next_retention) {
            tend_retention (agent, &said);
            next_retention = now + RETENTION_INTERVAL_MS;
        }
        if (now >= next_scan) {
            /* The inbox says its own troubles, rate-limited. */
            int rc = inbox_process_next (agent->inbox, err, sizeof err);
            inbox_empty = rc == 0;
            /* A processed file may have a successor waiting: look again at once. */
            next_scan =
                rc == INBOX_PROCESSED ? now : now + (int64_t)agent->config->scan_interval_ms;
        }
        if (sender_pump (agent->sender, now, err, sizeof err))
            say_error_limited (&said, err);
        if (once && inbox_empty && sender_idle (agent->sender))
            return once_status (agent);
        int64_t wait = next_scan - zclock_mono ();
        int64_t sender_wait = sender_wait_ms (agent->sender, zclock_mono ());
        if (sender_wait >= 0 && sender_wait < wait)
            wait = sender_wait;
        if (wait > 200)
            wait = 200; /* signals are checked at least this often */
        if (wait < 0)
            wait = 0;
        zsock_t *socket = sender_socket (agent->sender);
        if (socket) {
            zmq_pollitem_t item = {zsock_resolve (socket), 0, ZMQ_POLLIN, 0};
            if (zmq_poll (&item, 1, (long)wait) > 0 &&
                sender_receive (agent->sender, zclock_mono (), err, sizeof err))
                say_error_limited (&said, err);
        }
        else
            zclock_sleep ((int)wait);
    }
    return 0;
}

int
main (int argc, char *argv[])
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"id", required_argument, NULL, 'i'},
                                            {"body", required_argument, NULL, 'b'},
                                            {"inbox", required_argument, NULL, 'I'},
                                            {"state-dir", required_argument, NULL, 's'},
                                            {"collector", required_argument, NULL, 'C'},
                                            {"once", no_argument, NULL, 'o'},
                                            {"syslog", no_argument, NULL, 'S'},
                                            {"set", required_argument, NULL, 'O'},
                                            {"allow-plain", no_argument, NULL, 'P'},
                                            {"format", required_argument, NULL, 'F'},
                                            {"clear-alarm", no_argument, NULL, 'A'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"check", no_argument, NULL, 'n'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, 'V'},
                                            {NULL, 0, NULL, 0}};
    config_source_t source = {0};
    bool once = false, check = false, use_syslog = false, verbose = false, clear_alarm = false;
    const char *status_format = NULL;
    int option;
    while ((option = getopt_long (argc, argv, "c:vnhV", options, NULL)) != -1) {
        const char *key = NULL;
        switch (option) {
        case 'c':
            source.config_path = optarg;
            break;
        case 'i':
            key = "agent/id";
            break;
        case 'b':
            key = "agent/body_id";
            break;
        case 'I':
            key = "agent/inbox";
            break;
        case 's':
            key = "agent/state_dir";
            break;
        case 'C':
            key = "agent/collector";
            break;
        case 'P':
            key = "agent/allow_plain";
            optarg = (char *)"1";
            break;
        case 'o':
            once = true;
            break;
        case 'O': {
            char *equals = strchr (optarg, '=');
            if (!equals) {
                fprintf (stderr, "totalplace-agent: --set wants KEY=VALUE, not \"%s\"\n", optarg);
                return 2;
            }
            *equals = '\0';
            key = optarg;
            optarg = equals + 1;
            break;
        }
        case 'S':
            use_syslog = true;
            break;
        case 'F':
            if (strcmp (optarg, "table") != 0 && strcmp (optarg, "json") != 0) {
                fprintf (stderr, "totalplace-agent: --format is table or json, not \"%s\"\n",
                         optarg);
                return 2;
            }
            status_format = optarg;
            break;
        case 'A':
            clear_alarm = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'n':
            check = true;
            break;
        case 'h':
            usage (stdout);
            return 0;
        case 'V':
            printf ("totalplace-agent %s\n", TOTALPLACE_VERSION);
            return 0;
        default:
            usage (stderr);
            return 2;
        }
        if (key && source.override_count == 32) {
            fprintf (stderr, "totalplace-agent: too many options\n");
            return 2;
        }
        if (key) {
            source.overrides[source.override_count][0] = key;
            source.overrides[source.override_count++][1] = optarg;
        }
    }
    if (optind + 1 == argc && strcmp (argv[optind], "status") == 0)
        return status_command (&source, status_format, clear_alarm);
    if (optind + 2 == argc && strcmp (argv[optind], "inspect") == 0 && !clear_alarm)
        return inspect_command (&source, argv[optind + 1], status_format);
    if (status_format || clear_alarm) {
        fprintf (stderr, "totalplace-agent: --format goes with status or inspect, --clear-alarm "
                         "with status\n");
        return 2;
    }
    const char *submit_path = NULL;
    if (optind < argc) {
        if (strcmp (argv[optind], "submit") != 0 || optind + 2 != argc) {
            fprintf (stderr, "totalplace-agent: unexpected argument \"%s\"\n", argv[optind]);
            usage (stderr);
            return 2;
        }
        submit_path = argv[optind + 1];
    }

    char err[1024];
    agent_config_t *config = load_config (&source, err, sizeof err);
    if (!config) {
        fprintf (stderr, "totalplace-agent: %s\n", err);
        return 1;
    }
    if (check) {
        /* The lookup and key files are part of the config: a bad one must fail the check. */
        csv_reader_t *reader = reader_from_config (config, err, sizeof err);
        curve_client_t *keys = NULL;
        int bad = !reader || keys_from_config (config, &keys, err, sizeof err);
        agent_config_destroy (&config);
        csv_reader_destroy (&reader);
        curve_client_destroy (&keys);
        if (bad) {
            fprintf (stderr, "totalplace-agent: %s\n", err);
            return 1;
        }
        printf ("totalplace-agent: config OK\n");
        return 0;
    }
    if (submit_path) {
        int rc = submit (config, submit_path);
        agent_config_destroy (&config);
        return rc;
    }

    install_signals ();
    log_setup (config, use_syslog, verbose);
    agent_t agent = {.config = config};
    int status = 1;
    char outbox_dir[4096];
    snprintf (outbox_dir, sizeof outbox_dir, "%s/outbox", config->state_dir);
    snprintf (agent.rejects_path, sizeof agent.rejects_path, "%s/collector-rejects.csv",
              config->state_dir);
    mkdir (config->state_dir, 0750);
    outbox_limits_t limits = {.max_batches = config->outbox_max_batches,
                              .max_bytes = config->outbox_max_mb << 20};
    agent.outbox = outbox_new (outbox_dir, &limits, err, sizeof err);
    if (!agent.outbox)
        goto out;
    agent.reader = reader_from_config (config, err, sizeof err);
    if (!agent.reader)
        goto out;
    char side_dir[4096];
    snprintf (side_dir, sizeof side_dir, "%s/side-files", config->state_dir);
    agent.inbox = inbox_new (config->inbox, side_dir, agent.outbox, agent.reader, config->agent_id,
                             config->batch_records, log_message, "inbox", err, sizeof err);
    if (!agent.inbox)
        goto out;
    export_policy_t policy = policy_from_config (config, source.config_path);
    if (inbox_set_policy (agent.inbox, &policy)) {
        snprintf (err, sizeof err, "out of memory");
        goto out;
    }
    if (keys_from_config (config, &agent.keys, err, sizeof err))
        goto out;
    if (!agent.keys)
        log_warning ("agent",
                     "agent/allow_plain = 1: connecting to %s without CURVE (no authentication, "
                     "no encryption; allowed only on this host)",
                     config->collector);
    sender_options_t send_options = sender_options (config, agent.rejects_path, agent.keys);
    agent.sender = sender_new (agent.outbox, &send_options, err, sizeof err);
    if (!agent.sender)
        goto out;
    log_info ("agent",
              "agent %s for body %s: inbox %s, state %s, collector %s (%s), %zu batches pending",
              config->agent_id, config->body_id, config->inbox, config->state_dir,
              config->collector, agent.keys ? "CURVE" : "plain", outbox_count (agent.outbox));
    if (monitor_start (config, err, sizeof err))
        goto out;
    health_ready ("delivering");
    status = run (&agent, &source, once);
    health_stopping ("stopping");
    if (status)
        snprintf (err, sizeof err, "a file was held or failed in this run: see %s/failed",
                  config->inbox);
    sender_counters_t sent;
    sender_counters (agent.sender, &sent);
    log_info ("agent",
              "stopping: %zu batches still pending (kept for the next start); sent %llu, "
              "acknowledged %llu, reconnects %llu",
              outbox_count (agent.outbox), (unsigned long long)sent.sent,
              (unsigned long long)sent.acked, (unsigned long long)sent.reconnects);
    if (once && sent.lost) {
        /* A run that found batches lost must not look like a clean drain to a script. */
        snprintf (err, sizeof err,
                  "%llu batches were found lost during this run; the alarm stands "
                  "(totalplace-agent status says which files to drop again)",
                  (unsigned long long)sent.lost);
        status = 1;
    }
out:
    if (status)
        log_error ("agent", "%s", err);
    monitor_stop ();
    sender_destroy (&agent.sender);
    curve_client_destroy (&agent.keys);
    inbox_destroy (&agent.inbox);
    csv_reader_destroy (&agent.reader);
    outbox_destroy (&agent.outbox);
    agent_config_destroy (&agent.config);
    return status;
}
