/* test_agent_config: the neighbourhood keys' defaults, bounds and pairing rules, the column
 * keys that derive ids or name a postcode column, and the restore keys' defaults and bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent_config.h"

static agent_config_t *
valid_config (void)
{
    agent_config_t *config = agent_config_new ();
    assert_non_null (config);
    char err[SETTINGS_ERR_LEN];
    const char *keys[][2] = {{"agent/id", "a1"},
                             {"agent/body_id", "GB-LAE-BNS"},
                             {"agent/inbox", "/tmp/inbox"},
                             {"agent/state_dir", "/tmp/state"},
                             {"agent/allow_plain", "1"}}; /* the default collector is loopback */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_int_equal (agent_config_set (config, keys[i][0], keys[i][1], err, sizeof err), 0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), 0);
    return config;
}

static void
test_neighbourhood_defaults (void **state)
{
    (void)state;
    agent_config_t *config = valid_config ();
    assert_null (config->lookup_file);
    assert_null (config->lookup_column);
    assert_null (config->lookup_file_value);
    assert_string_equal (config->lookup_file_neighbourhood,
                         "Neighbourhood, Neighbourhood Code, LSOA, Ward Code");
    assert_string_equal (config->lookup_file_weight, "Weight");
    assert_int_equal (config->max_parts, 1);
    assert_null (config->postcode_file);
    assert_string_equal (config->postcode_file_postcode, "pcds, pcd, pcd7, pcd8");
    assert_string_equal (config->postcode_file_area, "lsoa21, lsoa11");
    agent_config_destroy (&config);
    agent_config_destroy (&config);
    assert_null (config);
}

static void
test_lookup_file_and_column_go_together (void **state)
{
    (void)state;
    agent_config_t *config = valid_config ();
    char err[SETTINGS_ERR_LEN] = "";
    assert_int_equal (
        agent_config_set (config, "neighbourhood/lookup_file", "/etc/units.csv", err, sizeof err),
        0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), -1);
    assert_non_null (strstr (err, "neighbourhood/lookup_column"));
    assert_int_equal (agent_config_set (config, "neighbourhood/lookup_column",
                                        "Organisational Unit", err, sizeof err),
                      0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), 0);
    agent_config_destroy (&config);

    config = valid_config ();
    assert_int_equal (
        agent_config_set (config, "neighbourhood/lookup_column", "Cost Centre", err, sizeof err),
        0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), -1);
    assert_non_null (strstr (err, "neighbourhood/lookup_file"));
    agent_config_destroy (&config);

    config = valid_config ();
    assert_int_equal (agent_config_set (config, "neighbourhood/postcode_file", "", err, sizeof err),
                      0);
    assert_int_equal (agent_config_validate (config, err, sizeof err), -1);
    assert_non_null (strstr (err, "neighbourhood/postcode_file is empty"));
    agent_config_destroy (&config);
}

static void
test_max_parts_bounds (void **state)
{
    (void)state;
    agent_config_t *config = valid_config ();
    char err[SETTINGS_ERR_LEN] = "";
    assert_int_equal (agent_config_set (config, "neighbourhood/max_parts", "0", err, sizeof err),
                      -1);
    assert_int_equal (agent_config_set (config, "neighbourhood/max_parts", "4097", err, sizeof err),
                      -1);
    assert_int_equal (agent_config_set (config, "neighbourhood/max_parts", "32", err, sizeof err),
                      0);
    assert_int_equal (config->max_parts, 32);
    agent_config_destroy (&config);
}

static void
test_columns (void **state)
{
    (void)state;
    agent_config_t *config = valid_config ();
    char err[SETTINGS_ERR_LEN] = "";
    /* "" is kept as "" (derive ids), not as unset. */
    assert_int_equal (agent_config_set (config, "columns/record_id", "", err, sizeof err), 0);
    assert_string_equal (config->columns[0], "");
    assert_int_equal (
        agent_config_set (config, "columns/postcode", "Delivery Postcode", err, sizeof err), 0);
    size_t postcode = AGENT_COLUMN_FIELDS;
    for (size_t i = 0; i < AGENT_COLUMN_FIELDS; i++)
        if (strcmp (agent_column_fields[i], "postcode") == 0)
            postcode = i;
    assert_true (postcode < AGENT_COLUMN_FIELDS);
    assert_string_equal (config->columns[postcode], "Delivery Postcode");
    agent_config_destroy (&config);
}

/* The restore keys: a week of retention and a check a minute by default; 0 hours is allowed. */
static void
test_restore_keys (void **state)
{
    (void)state;
    agent_config_t *config = valid_config ();
    char err[SETTINGS_ERR_LEN] = "";
    assert_int_equal (config->retain_hours, 168);
    assert_int_equal (config->check_interval_ms, 60000);
    assert_int_equal (agent_config_set (config, "outbox/retain_hours", "0", err, sizeof err), 0);
    assert_int_equal (config->retain_hours, 0);
    assert_int_equal (agent_config_set (config, "outbox/retain_hours", "87601", err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "outbox/retain_hours"));
    assert_int_equal (agent_config_set (config, "agent/check_interval_ms", "99", err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "agent/check_interval_ms"));
    assert_int_equal (agent_config_set (config, "agent/check_interval_ms", "5000", err, sizeof err),
                      0);
    assert_int_equal (config->check_interval_ms, 5000);
    agent_config_destroy (&config);
}

static void
test_zpl_file (void **state)
{
    (void)state;
    agent_config_t *config = valid_config ();
    char path[] = "/tmp/test_agent_config.XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *f = fdopen (fd, "w");
    assert_non_null (f);
    fputs ("columns\n"
           "    record_id = \"\"\n"
           "neighbourhood\n"
           "    lookup_file = \"/etc/totalplace/lookups/units.csv\"\n"
           "    lookup_column = \"Organisational Unit\"\n"
           "    max_parts = 8\n",
           f);
    assert_int_equal (fclose (f), 0);
    char err[SETTINGS_ERR_LEN] = "";
    int rc = agent_config_load (config, path, err, sizeof err);
    remove (path);
    if (rc != 0)
        fail_msg ("%s", err);
    assert_string_equal (config->columns[0], "");
    assert_string_equal (config->lookup_column, "Organisational Unit");
    assert_int_equal (config->max_parts, 8);
    assert_int_equal (agent_config_validate (config, err, sizeof err), 0);
    agent_config_destroy (&config);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_neighbourhood_defaults),
        cmocka_unit_test (test_lookup_file_and_column_go_together),
        cmocka_unit_test (test_max_parts_bounds),
        cmocka_unit_test (test_columns),
        cmocka_unit_test (test_restore_keys),
        cmocka_unit_test (test_zpl_file),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
