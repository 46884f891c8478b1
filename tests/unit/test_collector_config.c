/* test_collector_config: defaults, ZPL files, command-line overrides and validation of the
 * collector's config, with every bad value named in its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector_config.h"

typedef struct {
    char dir[512];
    char path[600];
    collector_config_t *config;
    char err[COLLECTOR_CONFIG_ERR_LEN];
} fixture_t;

static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    if (!fx)
        return -1;
    const char *base = getenv ("TOTALPLACE_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir (base, 0700);
    snprintf (fx->dir, sizeof fx->dir, "%s/test_collector_config.XXXXXX", base);
    if (!mkdtemp (fx->dir)) {
        free (fx);
        return -1;
    }
    snprintf (fx->path, sizeof fx->path, "%s/collector.conf", fx->dir);
    fx->config = collector_config_new ();
    if (!fx->config) {
        rmdir (fx->dir);
        free (fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    collector_config_destroy (&fx->config);
    unlink (fx->path);
    rmdir (fx->dir);
    free (fx);
    return 0;
}

static void
write_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_int_equal (fputs (text, file) >= 0, 1);
    assert_int_equal (fclose (file), 0);
}

/* The message must name what was wrong. */
static void
assert_mentions (const char *err, const char *needle)
{
    if (!strstr (err, needle))
        fail_msg ("error \"%s\" does not mention \"%s\"", err, needle);
}

static void
test_defaults_need_a_state_dir_and_security (void **state)
{
    fixture_t *fx = *state;
    /* A fresh config has no store folder: it must not validate, and must say which key. */
    assert_null (fx->config->state_dir);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/state_dir");
    assert_int_equal (collector_config_validate_store (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/state_dir");

    assert_int_equal (collector_config_set (fx->config, "collector/state_dir", "/var/lib/tp",
                                            fx->err, sizeof fx->err),
                      0);
    /* That is all `init` needs: the store's keys, no certificates. */
    assert_int_equal (collector_config_validate_store (fx->config, fx->err, sizeof fx->err), 0);
    /* Nor without a choice of security: CURVE keys, or plain sockets on this host only. */
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/curve_secret_cert");
    assert_mentions (fx->err, "collector/allow_plain");
    assert_false (fx->config->allow_plain);
    assert_int_equal (collector_config_set (fx->config, "collector/allow_plain", "1", NULL, 0), 0);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), 0);
    /* The documented defaults (docs/collector.md): loopback ingest, group caps for group commit. */
    assert_string_equal (fx->config->ingest_endpoints, "tcp://127.0.0.1:7700");
    assert_int_equal (fx->config->max_group_batches, 256);
    assert_int_equal (fx->config->max_group_records, 16000);
    assert_int_equal (fx->config->log_level, COLLECTOR_LOG_INFO);
    assert_false (fx->config->log_syslog);
    assert_true (fx->config->map_size_mb <= fx->config->max_map_size_mb);
}

static void
test_file_sets_keys_and_keeps_others (void **state)
{
    fixture_t *fx = *state;
    write_file (fx->path, "# test config\n"
                          "collector\n"
                          "    state_dir = \"/srv/totalplace\"\n"
                          "    ingest_endpoints = \"tcp://*:7701, ipc:///tmp/tp-ingest\"\n"
                          "    max_group_batches = 32   # small groups\n"
                          "    map_size_mb = 64\n"
                          "    curve_secret_cert = /etc/tp/collector.cert_secret\n"
                          "    authorised_certs = /etc/tp/authorised\n"
                          "log\n"
                          "    syslog = yes\n"
                          "    level = debug\n");
    assert_int_equal (collector_config_load (fx->config, fx->path, fx->err, sizeof fx->err), 0);
    assert_string_equal (fx->config->state_dir, "/srv/totalplace");
    assert_int_equal (fx->config->max_group_batches, 32);
    assert_int_equal (fx->config->map_size_mb, 64);
    assert_true (fx->config->log_syslog);
    assert_int_equal (fx->config->log_level, COLLECTOR_LOG_DEBUG);
    /* Not in the file: unchanged from a fresh config. */
    collector_config_t *fresh = collector_config_new ();
    assert_non_null (fresh);
    assert_int_equal (fx->config->max_group_records, fresh->max_group_records);
    assert_int_equal (fx->config->max_map_size_mb, fresh->max_map_size_mb);
    collector_config_destroy (&fresh);
    assert_null (fresh);
    collector_config_destroy (&fresh); /* safe twice */

    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), 0);
    zlist_t *endpoints = collector_config_endpoints (fx->config);
    assert_non_null (endpoints);
    assert_int_equal (zlist_size (endpoints), 2);
    assert_string_equal (zlist_first (endpoints), "tcp://*:7701");
    assert_string_equal (zlist_next (endpoints), "ipc:///tmp/tp-ingest");
    zlist_destroy (&endpoints);
}

static void
test_command_line_overrides_file (void **state)
{
    fixture_t *fx = *state;
    write_file (fx->path, "collector\n"
                          "    state_dir = /from/file\n"
                          "    max_group_records = 1000\n");
    assert_int_equal (collector_config_load (fx->config, fx->path, fx->err, sizeof fx->err), 0);
    assert_int_equal (collector_config_set (fx->config, "collector/state_dir", "/from/cli", fx->err,
                                            sizeof fx->err),
                      0);
    assert_int_equal (collector_config_set (fx->config, "collector/ingest_endpoints",
                                            "ipc:///tmp/a,ipc:///tmp/b", fx->err, sizeof fx->err),
                      0);
    assert_int_equal (
        collector_config_set (fx->config, "log/level", "WARNING", fx->err, sizeof fx->err), 0);
    assert_int_equal (collector_config_set (fx->config, "collector/allow_plain", "yes", NULL, 0),
                      0);
    assert_string_equal (fx->config->state_dir, "/from/cli");
    assert_int_equal (fx->config->max_group_records, 1000);
    assert_int_equal (fx->config->log_level, COLLECTOR_LOG_WARNING);
    assert_string_equal (collector_log_level_name (fx->config->log_level), "warning");
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), 0);

    assert_int_equal (
        collector_config_set (fx->config, "collector/no_such_key", "1", fx->err, sizeof fx->err),
        -1);
    assert_mentions (fx->err, "collector/no_such_key");
}

static void
test_bad_values_are_named (void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"collector/map_size_mb", "lots"},
        {"collector/map_size_mb", "-5"},
        {"collector/max_group_batches", "0"},
        {"collector/max_group_batches", "99999999"},
        {"collector/max_group_records", "12x"},
        {"collector/max_group_records", ""},
        {"log/syslog", "maybe"},
        {"log/level", "loud"},
        {"log/stats_interval", "18446744073709551616"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t before = fx->config->max_group_batches;
        fx->err[0] = '\0';
        assert_int_equal (
            collector_config_set (fx->config, bad[i].key, bad[i].value, fx->err, sizeof fx->err),
            -1);
        assert_mentions (fx->err, bad[i].key);
        assert_int_equal (fx->config->max_group_batches, before);
    }
}

static void
test_bad_files_are_named (void **state)
{
    fixture_t *fx = *state;
    /* A missing file names its path. */
    char missing[700];
    snprintf (missing, sizeof missing, "%s/absent.conf", fx->dir);
    assert_int_equal (collector_config_load (fx->config, missing, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, missing);

    /* An unknown key names the key, so a typo is not silently ignored. */
    write_file (fx->path, "collector\n    stat_dir = /x\n");
    assert_int_equal (collector_config_load (fx->config, fx->path, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/stat_dir");

    write_file (fx->path, "colector\n    state_dir = /x\n");
    assert_int_equal (collector_config_load (fx->config, fx->path, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "colector");

    /* A bad value in a file names the file and the key. */
    write_file (fx->path, "collector\n    max_group_batches = many\n");
    assert_int_equal (collector_config_load (fx->config, fx->path, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, fx->path);
    assert_mentions (fx->err, "collector/max_group_batches");

    /* A syntax error (three-space indent on line 3) names the line. */
    write_file (fx->path, "collector\n    state_dir = /x\n   map_size_mb = 5\n");
    assert_int_equal (collector_config_load (fx->config, fx->path, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "line 3");
}

static void
test_validation_names_the_key (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (collector_config_set (fx->config, "collector/state_dir", "/s", NULL, 0), 0);
    assert_int_equal (collector_config_set (fx->config, "collector/allow_plain", "1", NULL, 0), 0);

    static const char *bad_endpoints[] = {"http://example.org:80", "tcp://nohostport", "ipc://",
                                          "tcp://*:7700,,ipc:///tmp/x", " , "};
    for (size_t i = 0; i < sizeof bad_endpoints / sizeof bad_endpoints[0]; i++) {
        assert_int_equal (collector_config_set (fx->config, "collector/ingest_endpoints",
                                                bad_endpoints[i], fx->err, sizeof fx->err),
                          0);
        fx->err[0] = '\0';
        assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), -1);
        assert_mentions (fx->err, "collector/ingest_endpoints");
    }
    /* A Unix socket path cannot exceed sun_path. */
    char long_ipc[300] = "ipc:///tmp/";
    memset (long_ipc + strlen (long_ipc), 'x', 200);
    long_ipc[sizeof long_ipc - 1] = '\0';
    assert_int_equal (collector_config_set (fx->config, "collector/ingest_endpoints", long_ipc,
                                            fx->err, sizeof fx->err),
                      0);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/ingest_endpoints");

    assert_int_equal (
        collector_config_set (fx->config, "collector/ingest_endpoints", "inproc://ingest", NULL, 0),
        0);
    assert_int_equal (collector_config_set (fx->config, "collector/map_size_mb", "4096", NULL, 0),
                      0);
    assert_int_equal (
        collector_config_set (fx->config, "collector/max_map_size_mb", "2048", NULL, 0), 0);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/max_map_size_mb");
    assert_int_equal (collector_config_validate_store (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/max_map_size_mb");

    assert_int_equal (
        collector_config_set (fx->config, "collector/max_map_size_mb", "4096", NULL, 0), 0);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), 0);
}

/* Plain sockets only where no other host can reach them; CURVE needs both of its keys. */
static void
test_security_is_validated (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (collector_config_set (fx->config, "collector/state_dir", "/s", NULL, 0), 0);
    assert_int_equal (collector_config_set (fx->config, "collector/allow_plain", "1", NULL, 0), 0);
    static const struct {
        const char *ingest, *query;
        bool valid;
        const char *named;
    } cases[] = {
        {"ipc:///tmp/i", "ipc:///tmp/q", true, NULL},
        {"tcp://127.0.0.1:7700", "tcp://127.3.2.1:7701", true, NULL},
        {"tcp://[::1]:7700,inproc://x", "", true, NULL},
        {"tcp://*:7700", "ipc:///tmp/q", false, "collector/ingest_endpoints"},
        {"tcp://10.0.0.1:7700", "", false, "collector/ingest_endpoints"},
        {"tcp://localhost:7700", "", false, "collector/ingest_endpoints"},
        {"tcp://eth0:7700", "", false, "collector/ingest_endpoints"},
        {"ipc:///tmp/i", "tcp://0.0.0.0:7701", false, "collector/query_endpoints"},
        {"ipc:///tmp/i", "ipc:///tmp/q,tcp://192.168.1.2:7701", false, "collector/query_endpoints"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal (collector_config_set (fx->config, "collector/ingest_endpoints",
                                                cases[i].ingest, NULL, 0),
                          0);
        assert_int_equal (
            collector_config_set (fx->config, "collector/query_endpoints", cases[i].query, NULL, 0),
            0);
        fx->err[0] = '\0';
        int rc = collector_config_validate (fx->config, fx->err, sizeof fx->err);
        if (rc != (cases[i].valid ? 0 : -1))
            fail_msg ("%s / %s: validate gave %d (%s)", cases[i].ingest, cases[i].query, rc,
                      fx->err);
        if (cases[i].named) {
            assert_mentions (fx->err, cases[i].named);
            assert_mentions (fx->err, "CURVE");
        }
    }
    /* With CURVE any endpoint will do, but both keys must be given. */
    assert_int_equal (collector_config_set (fx->config, "collector/allow_plain", "0", NULL, 0), 0);
    assert_int_equal (
        collector_config_set (fx->config, "collector/ingest_endpoints", "tcp://*:7700", NULL, 0),
        0);
    assert_int_equal (collector_config_set (fx->config, "collector/curve_secret_cert",
                                            "/k/collector.cert_secret", NULL, 0),
                      0);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "collector/authorised_certs");
    assert_int_equal (
        collector_config_set (fx->config, "collector/authorised_certs", "/k/in", NULL, 0), 0);
    assert_int_equal (collector_config_validate (fx->config, fx->err, sizeof fx->err), 0);
    /* The limits have their documented defaults and bounds. */
    assert_int_equal (fx->config->max_agents, 1000);
    assert_int_equal (fx->config->max_query_clients, 64);
    assert_int_equal (fx->config->max_batch_kb, 8192);
    assert_int_equal (fx->config->max_batch_records, 5000);
    assert_int_equal (fx->config->handshake_timeout_ms, 10000);
    assert_int_equal (
        collector_config_set (fx->config, "limits/max_batch_kb", "8193", fx->err, sizeof fx->err),
        -1);
    assert_mentions (fx->err, "limits/max_batch_kb");
    assert_int_equal (collector_config_set (fx->config, "limits/max_batch_records", "5001", fx->err,
                                            sizeof fx->err),
                      -1);
    assert_mentions (fx->err, "limits/max_batch_records");
    assert_int_equal (
        collector_config_set (fx->config, "limits/max_agents", "0", fx->err, sizeof fx->err), -1);
    assert_mentions (fx->err, "limits/max_agents");
}

static void
test_describe_lists_every_key (void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    collector_config_describe (out);
    assert_int_equal (fclose (out), 0);
    static const char *keys[] = {"collector/state_dir",
                                 "collector/ingest_endpoints",
                                 "collector/map_size_mb",
                                 "collector/max_map_size_mb",
                                 "collector/max_group_batches",
                                 "collector/max_group_records",
                                 "collector/curve_secret_cert",
                                 "collector/authorised_certs",
                                 "collector/allow_plain",
                                 "limits/max_agents",
                                 "limits/max_query_clients",
                                 "limits/max_batch_kb",
                                 "limits/max_batch_records",
                                 "limits/handshake_timeout_ms",
                                 "log/syslog",
                                 "log/level",
                                 "log/stats_interval"};
    collector_config_t *config = collector_config_new ();
    assert_non_null (config);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_mentions (text, keys[i]);
        /* Every described key is one collector_config_set accepts. */
        char err[COLLECTOR_CONFIG_ERR_LEN] = "";
        collector_config_set (config, keys[i], "x", err, sizeof err);
        assert_null (strstr (err, "unknown key"));
    }
    collector_config_destroy (&config);
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_defaults_need_a_state_dir_and_security, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_file_sets_keys_and_keeps_others, setup, teardown),
        cmocka_unit_test_setup_teardown (test_command_line_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_values_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_files_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown (test_validation_names_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown (test_security_is_validated, setup, teardown),
        cmocka_unit_test_setup_teardown (test_describe_lists_every_key, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
