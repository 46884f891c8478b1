/* collector_main: the totalplace-collector daemon: options and config, the store, the ingest
 * and query servers, and signals (TERM/INT stop cleanly, HUP reloads the config). Runs in the
 * foreground. `totalplace-collector init` creates the store, once, with the same options. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include <czmq.h>

#include "auth.h"
#include "collector_config.h"
#include "collector_metrics.h"
#include "health.h"
#include "ingest.h"
#include "log.h"
#include "metrics_server.h"
#include "place_totals.h"
#include "places.h"
#include "query.h"
#include "store.h"
#include "store_upgrade.h"

#define PROGRAM       "totalplace-collector"
#define MAX_OVERRIDES 64

static volatile sig_atomic_t s_terminate = 0;
static volatile sig_atomic_t s_reload = 0;

/* Command-line settings, kept so that a reload applies them over the file again. */
typedef struct {
    const char *config_path;
    char *keys[MAX_OVERRIDES];
    char *values[MAX_OVERRIDES];
    size_t count;
    char *endpoints;       /* every --ingest, joined with commas */
    char *query_endpoints; /* every --query, joined with commas */
    bool query_given;      /* --query was given (possibly as "", for none) */
    bool check_only;
    bool init;    /* the init command: create the store, then exit */
    bool upgrade; /* the upgrade command: move an older store to this format, then exit */
} options_t;

static void
s_on_terminate (int signal_number)
{
    (void)signal_number;
    s_terminate = 1;
}

static void
s_on_hangup (int signal_number)
{
    (void)signal_number;
    s_reload = 1;
}

static void
s_usage (FILE *out)
{
    fprintf (
        out,
        "Usage: " PROGRAM " [OPTION]...\n"
        "       " PROGRAM " init [-c FILE] [--state-dir DIR] [--set KEY=VALUE]...\n"
        "       " PROGRAM " upgrade [-c FILE] [--state-dir DIR] [--set KEY=VALUE]...\n"
        "Receives spending batches from totalplace agents over ZeroMQ and stores them.\n"
        "The store must exist: `init` creates it, once, in a new or empty folder\n"
        "(collector/state_dir) and prints its store id; it refuses a folder that is not\n"
        "empty. The daemon never creates a store. `upgrade` turns a store of an older\n"
        "format (1) into this version's, the collector stopped: it writes the new store\n"
        "beside the old one, verifies it, swaps it in and keeps the old one in\n"
        "DIR/format-1-TIME.\n"
        "\n"
        "  -c, --config FILE        read settings from a ZPL file\n"
        "  -s, --state-dir DIR      folder of the LMDB store (collector/state_dir)\n"
        "  -i, --ingest ENDPOINT    endpoint to bind for agents; repeat for several\n"
        "                           (replaces collector/ingest_endpoints)\n"
        "  -q, --query ENDPOINT     endpoint to bind for the totalplace CLI; repeat for several\n"
        "                           (replaces collector/query_endpoints; \"\" for none)\n"
        "      --places FILE        the places CSV for --place questions (collector/places_file)\n"
        "  -o, --set KEY=VALUE      set any config key, e.g. -o collector/max_group_batches=64\n"
        "      --allow-plain        no CURVE: accept unauthenticated peers, on ipc:// and\n"
        "                           loopback endpoints only (collector/allow_plain = 1)\n"
        "      --syslog             log to syslog instead of stderr (log/syslog = 1)\n"
        "  -v, --verbose            log each group commit (log/level = debug)\n"
        "  -n, --check              check the configuration (certificates and places file\n"
        "                           included), then exit 0 if valid, 1 if not\n"
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n"
        "\n"
        "Command-line options override the config file. Signals: TERM or INT finish the\n"
        "current group, acknowledge it and exit; HUP reloads the config file and the folder\n"
        "of authorised certificates. Security: docs/security.md.\n"
        "\n"
        "Exit status: 0 after a clean stop; 1 on other errors; 2 for a wrong command line;\n"
        "78 when there is no store in the state folder or it is of a format this version does\n"
        "not use; 65 when its data.mdb is damaged (empty, truncated, not LMDB); init: 73 when\n"
        "the folder is not empty; upgrade: 65 when the old store is damaged or its totals\n"
        "disagree with its records (nothing is changed), 1 when it is in use.\n"
        "\n"
        "Config keys (default, meaning):\n");
    collector_config_describe (out);
}

static void
s_options_free (options_t *options)
{
    for (size_t i = 0; i < options->count; i++) {
        free (options->keys[i]);
        free (options->values[i]);
    }
    options->count = 0;
    free (options->endpoints);
    options->endpoints = NULL;
    free (options->query_endpoints);
    options->query_endpoints = NULL;
}

static int
s_add_override (options_t *options, const char *key, size_t key_len, const char *value)
{
    if (options->count == MAX_OVERRIDES) {
        fprintf (stderr, PROGRAM ": more than %d settings on the command line\n", MAX_OVERRIDES);
        return -1;
    }
    options->keys[options->count] = strndup (key, key_len);
    options->values[options->count] = strdup (value);
    options->count++;
    if (!options->keys[options->count - 1] || !options->values[options->count - 1]) {
        fprintf (stderr, PROGRAM ": out of memory\n");
        return -1;
    }
    return 0;
}

/* Appends an endpoint to a comma-separated list (*list NULL at first). */
static int
s_add_endpoint (char **list, const char *endpoint)
{
    size_t old = *list ? strlen (*list) : 0;
    char *joined = realloc (*list, old + strlen (endpoint) + 2);
    if (!joined) {
        fprintf (stderr, PROGRAM ": out of memory\n");
        return -1;
    }
    if (old)
        joined[old++] = ',';
    strcpy (joined + old, endpoint);
    *list = joined;
    return 0;
}

/* Returns 0 to go on, or the process exit status (+1) when the options say to stop. */
static int
s_parse_options (int argc, char **argv, options_t *options)
{
    static const struct option long_options[] = {
        {"config", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 's'},
        {"ingest", required_argument, NULL, 'i'},
        {"query", required_argument, NULL, 'q'},
        {"set", required_argument, NULL, 'o'},
        {"syslog", no_argument, NULL, 'S'},
        {"allow-plain", no_argument, NULL, 'P'},
        {"verbose", no_argument, NULL, 'v'},
        {"check", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"places", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long (argc, argv, "c:s:i:q:o:vnhV", long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
            options->config_path = optarg;
            break;
        case 's':
            if (s_add_override (options, "collector/state_dir", strlen ("collector/state_dir"),
                                optarg))
                return 2;
            break;
        case 'i':
            if (s_add_endpoint (&options->endpoints, optarg))
                return 2;
            break;
        case 'q':
            if (s_add_endpoint (&options->query_endpoints, optarg))
                return 2;
            options->query_given = true;
            break;
        case 'o': {
            const char *equals = strchr (optarg, '=');
            if (!equals || equals == optarg) {
                fprintf (stderr, PROGRAM ": --set needs KEY=VALUE, got \"%s\"\n", optarg);
                return 3;
            }
            if (s_add_override (options, optarg, (size_t)(equals - optarg), equals + 1))
                return 2;
            break;
        }
        case 'p':
            if (s_add_override (options, "collector/places_file", strlen ("collector/places_file"),
                                optarg))
                return 2;
            break;
        case 'S':
            if (s_add_override (options, "log/syslog", strlen ("log/syslog"), "1"))
                return 2;
            break;
        case 'P':
            if (s_add_override (options, "collector/allow_plain", strlen ("collector/allow_plain"),
                                "1"))
                return 2;
            break;
        case 'v':
            if (s_add_override (options, "log/level", strlen ("log/level"), "debug"))
                return 2;
            break;
        case 'n':
            options->check_only = true;
            break;
        case 'h':
            s_usage (stdout);
            return 1;
        case 'V':
            printf (PROGRAM " %s\n", TOTALPLACE_VERSION);
            return 1;
        default:
            fprintf (stderr, "Try '" PROGRAM " --help' for more information.\n");
            return 3;
        }
    }
    /* getopt_long moves the words that are not options to the end: a command may stand
     * anywhere. */
    if (optind < argc && strcmp (argv[optind], "init") == 0) {
        options->init = true;
        optind++;
    }
    else if (optind < argc && strcmp (argv[optind], "upgrade") == 0) {
        options->upgrade = true;
        optind++;
    }
    if (optind < argc) {
        fprintf (stderr, PROGRAM ": unexpected argument \"%s\"\n", argv[optind]);
        return 3;
    }
    if ((options->init || options->upgrade) &&
        (options->check_only || options->endpoints || options->query_given)) {
        fprintf (stderr, PROGRAM ": %s takes only -c, --state-dir and --set\n",
                 options->init ? "init" : "upgrade");
        return 3;
    }
    return 0;
}

/* Defaults, then the file, then the command line; validated (for init only what init uses, so
 * that it needs no keys). NULL with a message on error. */
static collector_config_t *
s_build_config (const options_t *options, char *err, size_t err_len)
{
    collector_config_t *config = collector_config_new ();
    if (!config) {
        snprintf (err, err_len, "out of memory");
        return NULL;
    }
    int rc = 0;
    if (options->config_path)
        rc = collector_config_load (config, options->config_path, err, err_len);
    for (size_t i = 0; rc == 0 && i < options->count; i++)
        rc = collector_config_set (config, options->keys[i], options->values[i], err, err_len);
    if (rc == 0 && options->endpoints)
        rc = collector_config_set (config, "collector/ingest_endpoints", options->endpoints, err,
                                   err_len);
    if (rc == 0 && options->query_given)
        rc = collector_config_set (config, "collector/query_endpoints", options->query_endpoints,
                                   err, err_len);
    if (rc == 0)
        rc = options->init || options->upgrade
                 ? collector_config_validate_store (config, err, err_len)
                 : collector_config_validate (config, err, err_len);
    if (rc)
        collector_config_destroy (&config);
    return config;
}

static bool
s_differs (const char *a, const char *b)
{
    return strcmp (a ? a : "", b ? b : "") != 0;
}

static auth_options_t
s_auth_options (const collector_config_t *config)
{
    return (auth_options_t){.plain = config->allow_plain,
                            .secret_cert = config->curve_secret_cert,
                            .authorised_dir = config->authorised_certs,
                            .max_agents = (size_t)config->max_agents,
                            .max_query_clients = (size_t)config->max_query_clients};
}

static void
s_log_summary (const char *when, const auth_summary_t *summary)
{
    log_info ("collector", "%s: %zu agent and %zu query certificates authorised", when,
              summary->agents, summary->query_users);
    if (summary->agents == 0)
        log_warning ("collector", "no agent certificate is authorised: no agent can deliver");
}

static int
s_warn_unknown (void *arg, const char *place, const char *code)
{
    log_warning ("collector",
                 "places file %s: place \"%s\": neighbourhood %s has no records in "
                 "the store (yet)",
                 (const char *)arg, place, code);
    return 0;
}

/* Reads collector/places_file and hands it to the query server (none when the key is empty).
 * Returns 0, or -1 having logged why (file:line): at start the collector then stops; on reload it
 * keeps the places it had. */
static int
s_load_places (const collector_config_t *config, store_t *store, query_t *query, bool reload)
{
    char err[1024];
    places_t *places = NULL;
    const char *path = config->places_file;
    if (path && *path) {
        places = places_new (path, err, sizeof err);
        if (!places) {
            log_error ("collector", "%s%s", err,
                       reload ? "; keeping the places loaded before" : "");
            return -1;
        }
        if (place_totals_unknown (store, places, s_warn_unknown, (void *)path, err, sizeof err))
            log_warning ("collector", "cannot check the places' neighbourhoods: %s", err);
        log_info ("collector", "places file %s: %zu places", path, places_count (places));
    }
    if (query && query_set_places (query, &places, err, sizeof err)) {
        log_error ("collector", "%s", err);
        places_destroy (&places);
        return -1;
    }
    places_destroy (&places);
    return 0;
}

/* Applies what can change while running; names what needs a restart. */
static void
s_reload_config (const options_t *options, collector_config_t *running, ingest_t *ingest,
                 auth_t *auth, store_t *store, query_t *query)
{
    char err[COLLECTOR_CONFIG_ERR_LEN];
    collector_config_t *fresh = s_build_config (options, err, sizeof err);
    if (!fresh) {
        log_error ("collector", "reload failed, keeping the running configuration: %s", err);
        return;
    }
    if (s_differs (fresh->state_dir, running->state_dir))
        log_warning ("collector", "collector/state_dir changed to %s; restart to apply",
                     fresh->state_dir);
    if (s_differs (fresh->ingest_endpoints, running->ingest_endpoints))
        log_warning ("collector", "collector/ingest_endpoints changed to %s; restart to apply",
                     fresh->ingest_endpoints);
    if (s_differs (fresh->query_endpoints, running->query_endpoints))
        log_warning ("collector", "collector/query_endpoints changed to \"%s\"; restart to apply",
                     fresh->query_endpoints);
    if (fresh->map_size_mb != running->map_size_mb ||
        fresh->max_map_size_mb != running->max_map_size_mb)
        log_warning ("collector",
                     "collector/map_size_mb or collector/max_map_size_mb changed; restart to "
                     "apply");
    if (fresh->journal_records != running->journal_records ||
        fresh->journal_ms != running->journal_ms)
        log_warning ("collector",
                     "collector/journal_records or collector/journal_ms changed; restart to apply");
    if (fresh->log_syslog != running->log_syslog)
        log_warning ("collector", "log/syslog changed; restart to apply");
    if (fresh->allow_plain != running->allow_plain ||
        s_differs (fresh->curve_secret_cert, running->curve_secret_cert) ||
        s_differs (fresh->authorised_certs, running->authorised_certs) ||
        fresh->handshake_timeout_ms != running->handshake_timeout_ms)
        log_warning ("collector",
                     "collector/allow_plain, collector/curve_secret_cert, "
                     "collector/authorised_certs or limits/handshake_timeout_ms changed; restart "
                     "to apply");
    /* The folder is read again: new, rotated and revoked keys apply at once. */
    auth_summary_t summary;
    if (auth_reload (auth, &summary, err, sizeof err))
        log_error ("collector",
                   "reload of the authorised certificates failed, keeping the ones loaded: %s",
                   err);
    else if (!auth_is_plain (auth))
        s_log_summary ("certificates reloaded", &summary);

    /* The places file is read again; a bad one leaves the running places as they are. */
    if (s_load_places (fresh, store, query, true) == 0) {
        free (running->places_file);
        running->places_file = fresh->places_file;
        fresh->places_file = NULL;
    }
    running->max_group_batches = fresh->max_group_batches;
    running->max_group_records = fresh->max_group_records;
    running->max_batch_kb = fresh->max_batch_kb;
    running->max_batch_records = fresh->max_batch_records;
    running->max_agents = fresh->max_agents;
    running->max_query_clients = fresh->max_query_clients;
    auth_set_limits (auth, (size_t)running->max_agents, (size_t)running->max_query_clients);
    running->log_level = fresh->log_level;
    running->log_stats_interval = fresh->log_stats_interval;
    log_set_level ((log_level_t)running->log_level);
    ingest_configure (ingest, running);
    log_info ("collector",
              "configuration reloaded: groups of up to %" PRIu64 " batches / %" PRIu64
              " records, batches of up to %" PRIu64 " KiB / %" PRIu64 " records, up to %" PRIu64
              " agents and %" PRIu64 " query clients, log level %s, stats every %" PRIu64 " s",
              running->max_group_batches, running->max_group_records, running->max_batch_kb,
              running->max_batch_records, running->max_agents, running->max_query_clients,
              collector_log_level_name (running->log_level), running->log_stats_interval);
    collector_config_destroy (&fresh);
}

/* What the last rate line saw. */
typedef struct {
    ingest_counters_t ingest;
    query_counters_t queries;
    auth_counters_t auth;
    int64_t time; /* zclock_mono */
} last_stats_t;

static void
s_log_stats (ingest_t *ingest, query_t *query, auth_t *auth, last_stats_t *last, bool force)
{
    ingest_counters_t now;
    char err[STORE_ERR_LEN];
    if (ingest_counters (ingest, &now, err, sizeof err))
        log_warning ("collector", "cannot read the store's counters: %s", err);
    query_counters_t queries = {0};
    if (query)
        query_counters (query, &queries);
    int64_t time_now = zclock_mono ();
    double seconds = (double)(time_now - last->time) / 1000.0;
    uint64_t batches = now.batches - last->ingest.batches;
    uint64_t records = now.records - last->ingest.records;
    uint64_t groups = now.groups - last->ingest.groups;
    uint64_t malformed = now.malformed - last->ingest.malformed;
    uint64_t retries = now.retry_acks - last->ingest.retry_acks;
    uint64_t asked = queries.queries - last->queries.queries;
    uint64_t bad = queries.bad_queries - last->queries.bad_queries;
    if (force || batches || malformed || retries) {
        if (seconds <= 0)
            seconds = 1;
        log_info ("ingest",
                  "%.0f batches/s, %.0f records/s over %.0f s; %" PRIu64
                  " groups (%.1f batches each); %" PRIu64 " malformed, %" PRIu64
                  " retry acks; store holds %" PRIu64 " records, %zu of %zu MiB used",
                  (double)batches / seconds, (double)records / seconds, seconds, groups,
                  groups ? (double)batches / (double)groups : 0.0, malformed, retries,
                  now.store.records_stored, now.store.used_bytes >> 20, now.store.map_size >> 20);
    }
    if (force || asked)
        log_info ("query",
                  "%" PRIu64 " answered over %.0f s, %" PRIu64 " bad (%" PRIu64 " since start)",
                  asked, seconds, bad, queries.bad_queries);
    auth_counters_t peers;
    auth_counters (auth, &peers);
    uint64_t refused = peers.unknown_key + peers.wrong_role + peers.over_limit;
    uint64_t refused_before =
        last->auth.unknown_key + last->auth.wrong_role + last->auth.over_limit;
    uint64_t unauthorised = now.unauthorised_records - last->ingest.unauthorised_records;
    if (force || refused != refused_before || unauthorised)
        log_info ("auth",
                  "%zu agents and %zu query clients connected; %" PRIu64
                  " connections refused (%" PRIu64 " unknown keys, %" PRIu64 " wrong role, %" PRIu64
                  " over the limits) and %" PRIu64
                  " records of bodies their agent may not publish for, since start",
                  peers.agents_connected, peers.query_connected, refused, peers.unknown_key,
                  peers.wrong_role, peers.over_limit, now.unauthorised_records);
    last->auth = peers;
    last->ingest = now;
    last->queries = queries;
    last->time = time_now;
}

static int
s_install_signals (sigset_t *wait_mask)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    sigemptyset (&action.sa_mask);
    action.sa_handler = s_on_terminate;
    if (sigaction (SIGTERM, &action, NULL) || sigaction (SIGINT, &action, NULL))
        return -1;
    action.sa_handler = s_on_hangup;
    if (sigaction (SIGHUP, &action, NULL))
        return -1;
    action.sa_handler = SIG_IGN;
    if (sigaction (SIGPIPE, &action, NULL))
        return -1;
    /* Keep the signals blocked except inside pselect, so that a flag set just before waiting is
     * never slept through; threads started from here on inherit the block. */
    sigset_t ours;
    sigemptyset (&ours);
    sigaddset (&ours, SIGTERM);
    sigaddset (&ours, SIGINT);
    sigaddset (&ours, SIGHUP);
    if (pthread_sigmask (SIG_BLOCK, &ours, wait_mask))
        return -1;
    sigdelset (wait_mask, SIGTERM);
    sigdelset (wait_mask, SIGINT);
    sigdelset (wait_mask, SIGHUP);
    return 0;
}

/* Once the store has met damage (a batch or a question read a value that fails its checksum),
 * says so at once, whoever met it, then once a minute while the collector runs: it takes no
 * batch until the store is restored. */
static void
s_say_damage (store_t *store, const char *state_dir, int64_t *said)
{
    char finding[STORE_ERR_LEN];
    if (!store_damage (store, finding, sizeof finding))
        return;
    int64_t now = zclock_mono ();
    if (*said && now - *said < 60 * 1000)
        return;
    *said = now;
    log_error ("collector",
               "the store in %s is damaged (%s): no batch is applied or acknowledged until it is "
               "restored; agents keep their batches. Run `totalplace verify --db %s`, then "
               "restore the store from a backup (docs/operations.md)",
               state_dir, finding, state_dir);
}

/* The Prometheus endpoint, when collector/metrics_endpoint names one. Returns 0, or -1 (logged)
 * when it cannot listen. */
static int
s_start_metrics (const collector_config_t *config, collector_metrics_t *sources,
                 metrics_server_t **metrics)
{
    if (!config->metrics_endpoint || !*config->metrics_endpoint)
        return 0;
    char err[512];
    *metrics = metrics_server_new ("collector/metrics_endpoint", "collector/metrics_allow_remote",
                                   config->metrics_endpoint, config->metrics_allow_remote,
                                   collector_metrics_render, sources, err, sizeof err);
    if (!*metrics) {
        log_error ("collector", "%s", err);
        return -1;
    }
    log_info ("collector", "metrics on %s", metrics_server_url (*metrics));
    return 0;
}

/* The one-line status systemd shows (systemctl status), kept current. */
static void
s_health_status (store_t *store, ingest_t *ingest, auth_t *auth)
{
    ingest_counters_t in;
    char err[STORE_ERR_LEN];
    bool read = ingest_counters (ingest, &in, err, sizeof err) == 0;
    auth_counters_t peers;
    auth_counters (auth, &peers);
    char finding[STORE_ERR_LEN];
    if (store_damage (store, finding, sizeof finding))
        health_status ("STORE DAMAGED, taking no batch: %s", finding);
    else if (!read)
        health_status ("cannot read the store's counters: %s", err);
    else
        health_status ("serving %zu agents and %zu query clients; %" PRIu64
                       " batches applied since start; the store holds %" PRIu64 " records",
                       peers.agents_connected, peers.query_connected, in.batches,
                       in.store.records_stored);
}

/* Commits and acknowledges what has arrived, says what that was and what the server did since
 * start, and stops the ingest server. */
static void
s_stop_ingest (ingest_t **ingest)
{
    if (!*ingest)
        return;
    ingest_counters_t before, after;
    char err[STORE_ERR_LEN];
    ingest_counters (*ingest, &before, err, sizeof err);
    int64_t started = zclock_mono ();
    ingest_drain (*ingest);
    ingest_counters (*ingest, &after, err, sizeof err);
    log_info ("ingest",
              "drained %" PRIu64 " batches (%" PRIu64 " records) in %" PRId64
              " ms; since start %" PRIu64 " batches and %" PRIu64 " records applied in %" PRIu64
              " groups, %" PRIu64 " malformed, %" PRIu64 " answered ACK_RETRY, %" PRIu64
              " status requests",
              after.batches - before.batches, after.records - before.records,
              zclock_mono () - started, after.batches, after.records, after.groups, after.malformed,
              after.retry_acks, after.status_requests);
    ingest_destroy (ingest);
}

/* The init command: a new store in collector/state_dir, its id on stdout. */
static int
s_init_store (const collector_config_t *config)
{
    store_identity_t identity;
    char err[STORE_ERR_LEN];
    int rc = store_init (config->state_dir, &identity, err, sizeof err);
    if (rc) {
        fprintf (stderr, PROGRAM ": %s\n", err);
        return store_exit_status (rc);
    }
    printf ("%s\n", identity.store_id);
    fprintf (stderr, PROGRAM ": created a new store in %s: store id %s, format %u\n",
             config->state_dir, identity.store_id, (unsigned)identity.format);
    return 0;
}

static void
s_upgrade_progress (void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    fprintf (stderr, PROGRAM ": upgrade: %" PRIu64 " of %" PRIu64 " records moved\n", done, total);
}

/* The upgrade command: the store in collector/state_dir in this version's format. */
static int
s_upgrade_store (const collector_config_t *config)
{
    store_upgrade_report_t report;
    char err[STORE_ERR_LEN];
    int rc = store_upgrade (config->state_dir, s_upgrade_progress, NULL, &report, err, sizeof err);
    if (rc) {
        fprintf (stderr, PROGRAM ": upgrade of %s failed: %s\n", config->state_dir, err);
        return store_exit_status (rc);
    }
    if (report.already) {
        fprintf (stderr,
                 PROGRAM ": the store in %s (store id %s) is of format %u already: nothing "
                         "to do\n",
                 config->state_dir, report.identity.store_id, (unsigned)report.identity.format);
        return 0;
    }
    fprintf (stderr,
             PROGRAM ": upgraded the store in %s (store id %s) to format %u in %.1f s: %" PRIu64
                     " records, %" PRIu64 " agents, %" PRIu64
                     " neighbourhood totals checked against the old store's, verified; data.mdb "
                     "%.1f MiB, was %.1f MiB. The format 1 store is kept in %s: delete it once "
                     "the collector runs on the new one\n",
             config->state_dir, report.identity.store_id, (unsigned)report.identity.format,
             report.seconds, report.records, report.agents, report.neighbourhoods,
             (double)report.new_bytes / 1048576.0, (double)report.old_bytes / 1048576.0,
             report.kept);
    return 0;
}

int
main (int argc, char **argv)
{
    /* CZMQ's own handler would set zsys_interrupted and stop loops behind our back. */
    zsys_handler_set (NULL);
    zsys_set_logstream (stderr);

    options_t options = {0};
    int stop = s_parse_options (argc, argv, &options);
    if (stop) {
        s_options_free (&options);
        return stop - 1;
    }

    char err[COLLECTOR_CONFIG_ERR_LEN];
    collector_config_t *config = s_build_config (&options, err, sizeof err);
    if (!config) {
        fprintf (stderr, PROGRAM ": %s\n", err);
        s_options_free (&options);
        return 1;
    }
    if (options.check_only) {
        /* The certificates are part of the configuration: a bad one must fail the check. */
        auth_options_t auth_options = s_auth_options (config);
        auth_summary_t summary;
        int rc = auth_check (&auth_options, &summary, err, sizeof err);
        /* So is the places file: a bad one would stop the collector at start. */
        places_t *places = NULL;
        if (rc == 0 && config->places_file && *config->places_file &&
            !(places = places_new (config->places_file, err, sizeof err)))
            rc = -1;
        places_destroy (&places);
        if (rc)
            fprintf (stderr, PROGRAM ": %s\n", err);
        else if (config->allow_plain)
            printf (PROGRAM ": configuration OK (plain: no CURVE, local endpoints only)\n");
        else
            printf (PROGRAM ": configuration OK (CURVE: %zu agent and %zu query certificates "
                            "authorised)\n",
                    summary.agents, summary.query_users);
        collector_config_destroy (&config);
        s_options_free (&options);
        return rc ? 1 : 0;
    }
    if (options.init || options.upgrade) {
        int status = options.init ? s_init_store (config) : s_upgrade_store (config);
        collector_config_destroy (&config);
        s_options_free (&options);
        return status;
    }
    log_open (PROGRAM, config->log_syslog);
    log_set_level ((log_level_t)config->log_level);

    int status = 1;
    store_t *store = NULL;
    auth_t *auth = NULL;
    ingest_t *ingest = NULL;
    query_t *query = NULL;
    metrics_server_t *metrics = NULL;
    zlist_t *endpoints = NULL;
    zlist_t *query_endpoints = NULL;
    sigset_t wait_mask;
    if (s_install_signals (&wait_mask)) {
        log_error ("collector", "cannot install signal handlers: %s", strerror (errno));
        goto done;
    }

    size_t map_size, max_map_size;
    if (__builtin_mul_overflow (config->map_size_mb, (uint64_t)1 << 20, &map_size) ||
        __builtin_mul_overflow (config->max_map_size_mb, (uint64_t)1 << 20, &max_map_size)) {
        log_error ("collector",
                   "collector/map_size_mb or collector/max_map_size_mb is too large for this "
                   "machine");
        goto done;
    }
    store_options_t store_options = {.path = config->state_dir,
                                     .map_size = map_size,
                                     .max_map_size = max_map_size,
                                     .journal_records = (size_t)config->journal_records,
                                     .journal_ms = (unsigned)config->journal_ms};
    char store_err[STORE_ERR_LEN];
    int store_code;
    store = store_new (&store_options, &store_code, store_err, sizeof store_err);
    if (!store) {
        log_error ("collector", "%s", store_err);
        status = store_exit_status (store_code);
        goto done;
    }
    store_identity_t identity;
    store_identity (store, &identity);
    char created[32] = "an unknown time";
    time_t created_at = (time_t)identity.created;
    struct tm created_tm;
    if (gmtime_r (&created_at, &created_tm))
        strftime (created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &created_tm);

    /* The ZAP handler must run before any socket that uses it is bound. */
    auth_options_t auth_options = s_auth_options (config);
    auth = auth_new (&auth_options, err, sizeof err);
    if (!auth) {
        log_error ("collector", "cannot start authentication: %s", err);
        goto done;
    }
    if (config->allow_plain) {
        log_warning ("collector",
                     "collector/allow_plain = 1: no CURVE, peers are not authenticated; every "
                     "endpoint is on this host");
        if (config->curve_secret_cert || config->authorised_certs)
            log_warning ("collector",
                         "collector/curve_secret_cert and collector/authorised_certs are "
                         "ignored (collector/allow_plain = 1)");
    }
    else {
        auth_summary_t summary;
        auth_summary (auth, &summary);
        s_log_summary ("CURVE on every endpoint", &summary);
    }

    ingest = ingest_new (store, config, err, sizeof err);
    if (!ingest || ingest_secure (ingest, auth, err, sizeof err)) {
        log_error ("collector", "cannot start the ingest server: %s", err);
        goto done;
    }
    endpoints = collector_config_endpoints (config);
    if (!endpoints) {
        log_error ("collector", "out of memory");
        goto done;
    }
    for (const char *endpoint = zlist_first (endpoints); endpoint;
         endpoint = zlist_next (endpoints))
        if (ingest_bind (ingest, endpoint, err, sizeof err)) {
            log_error ("collector", "%s", err);
            goto done;
        }

    /* Queries are answered from the same store, in a thread of their own: LMDB readers never
     * wait for the ingest thread's writes. */
    query_endpoints = collector_config_query_endpoints (config);
    if (!query_endpoints) {
        log_error ("collector", "out of memory");
        goto done;
    }
    if (zlist_size (query_endpoints) > 0) {
        query = query_new (store, ingest, err, sizeof err);
        if (!query ||
            query_secure (query, auth, (int)config->handshake_timeout_ms, err, sizeof err)) {
            log_error ("collector", "cannot start the query server: %s", err);
            goto done;
        }
        for (const char *endpoint = zlist_first (query_endpoints); endpoint;
             endpoint = zlist_next (query_endpoints))
            if (query_bind (query, endpoint, err, sizeof err)) {
                log_error ("collector", "%s", err);
                goto done;
            }
    }

    if (s_load_places (config, store, query, false))
        goto done;

    log_info ("collector",
              PROGRAM " %s started: store %s (format %u, created %s) in %s, ingest on %s, "
                      "queries on %s (%s), groups of up to %" PRIu64 " batches / %" PRIu64
                      " records, log level %s",
              TOTALPLACE_VERSION, identity.store_id, (unsigned)identity.format, created,
              config->state_dir, config->ingest_endpoints,
              query ? config->query_endpoints : "(none)", config->allow_plain ? "plain" : "CURVE",
              config->max_group_batches, config->max_group_records,
              collector_log_level_name (config->log_level));
    /* Said once here rather than with every disconnect: libzmq does not say why it dropped one. */
    log_info ("collector",
              "libzmq drops, without a reply, a peer sending a frame over %u bytes to ingest or "
              "over %u bytes to queries (counted as a disconnect)",
              INGEST_SOCKET_MAX_MESSAGE_BYTES, QUERY_SOCKET_MAX_MESSAGE_BYTES);
    collector_metrics_t sources = {
        .store = store, .ingest = ingest, .query = query, .auth = auth, .started_at = time (NULL)};
    if (s_start_metrics (config, &sources, &metrics))
        goto done;

    last_stats_t last;
    memset (&last, 0, sizeof last);
    last.time = zclock_mono ();
    int64_t damage_said = 0; /* zclock_mono of the last line about damage, 0 for none yet */
    health_ready ("serving");
    while (!s_terminate) {
        struct timespec second = {1, 0};
        pselect (0, NULL, NULL, NULL, &second, &wait_mask);
        health_watchdog ();
        if (s_reload && !s_terminate) {
            s_reload = 0;
            health_reloading ();
            log_info ("collector", "SIGHUP: reloading %s",
                      options.config_path ? options.config_path : "the command-line settings");
            s_reload_config (&options, config, ingest, auth, store, query);
            health_ready ("reloaded");
        }
        if (config->log_stats_interval &&
            zclock_mono () - last.time >= (int64_t)config->log_stats_interval * 1000)
            s_log_stats (ingest, query, auth, &last, false);
        s_say_damage (store, config->state_dir, &damage_said);
        s_health_status (store, ingest, auth);
    }
    health_stopping ("stopping: acknowledging what has arrived, then closing the store");
    log_info ("collector", "SIGTERM: stopping; the query server first, then what has arrived "
                           "is committed and acknowledged (at most 5 s)");
    metrics_server_destroy (&metrics);
    /* Queries first: the query thread reads the ingest server's counters and the store. */
    query_destroy (&query);
    s_stop_ingest (&ingest);
    auth_destroy (&auth);
    store_counters_t final;
    char counters_err[STORE_ERR_LEN];
    if (store_counters (store, &final, counters_err, sizeof counters_err) == 0)
        log_info ("collector",
                  "stopped; the store holds %" PRIu64 " records from %" PRIu64 " batches",
                  final.records_stored, final.batches);
    status = 0;

done:
    metrics_server_destroy (&metrics);
    query_destroy (&query);
    ingest_destroy (&ingest);
    auth_destroy (&auth);
    store_destroy (&store);
    zlist_destroy (&endpoints);
    zlist_destroy (&query_endpoints);
    collector_config_destroy (&config);
    s_options_free (&options);
    return status;
}
