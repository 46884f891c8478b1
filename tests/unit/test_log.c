/* test_log: the log line's format (UTC milliseconds, level letter, component, one line), the
 * journal's priority prefixes, levels, and the rate limit's allowance and summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"

static void
test_a_line_is_utc_milliseconds_level_component_message (void **state)
{
    (void)state;
    char line[256];
    /* 2026-11-30T12:32:30.123Z */
    int64_t unix_ms = 1796041950123;
    size_t length = log_format (line, sizeof line, unix_ms, LOG_LEVEL_WARNING, "ingest",
                                "a peer failed the handshake", false);
    assert_string_equal (line, "2026-11-30T12:32:30.123Z W ingest: a peer failed the handshake");
    assert_int_equal (length, strlen (line));
    log_format (line, sizeof line, 7, LOG_LEVEL_DEBUG, "query", "x", false);
    assert_string_equal (line, "1970-01-01T00:00:00.007Z D query: x");
    log_format (line, sizeof line, unix_ms, LOG_LEVEL_INFO, "agent", "started", true);
    assert_string_equal (line, "<6>2026-11-30T12:32:30.123Z I agent: started");
    log_format (line, sizeof line, unix_ms, LOG_LEVEL_ERROR, "agent", "x", true);
    assert_memory_equal (line, "<3>", 3);
    log_format (line, sizeof line, unix_ms, LOG_LEVEL_WARNING, "agent", "x", true);
    assert_memory_equal (line, "<4>", 3);
    log_format (line, sizeof line, unix_ms, LOG_LEVEL_DEBUG, "agent", "x", true);
    assert_memory_equal (line, "<7>", 3);
}

static void
test_a_message_stays_one_line_and_is_cut_to_fit (void **state)
{
    (void)state;
    char line[64];
    log_format (line, sizeof line, 0, LOG_LEVEL_ERROR, "inbox", "a\nb\r\tc", false);
    assert_string_equal (line, "1970-01-01T00:00:00.000Z E inbox: a b  c");
    char long_message[200];
    memset (long_message, 'x', sizeof long_message - 1);
    long_message[sizeof long_message - 1] = '\0';
    size_t length = log_format (line, sizeof line, 0, LOG_LEVEL_INFO, "c", long_message, false);
    assert_int_equal (length, sizeof line - 1);
    assert_int_equal (strlen (line), sizeof line - 1);
}

static void
test_levels_filter (void **state)
{
    (void)state;
    log_set_level (LOG_LEVEL_WARNING);
    assert_false (log_enabled (LOG_LEVEL_INFO));
    assert_true (log_enabled (LOG_LEVEL_WARNING));
    assert_true (log_enabled (LOG_LEVEL_ERROR));
    log_set_level (LOG_LEVEL_DEBUG);
    assert_true (log_enabled (LOG_LEVEL_DEBUG));
    log_set_level (LOG_LEVEL_INFO);
}

static void
test_the_rate_limit_allows_five_a_second (void **state)
{
    (void)state;
    log_set_level (LOG_LEVEL_INFO);
    log_limit_t limit = LOG_LIMIT_INIT ("ingest", "malformed messages", LOG_LEVEL_WARNING);
    for (int i = 0; i < LOG_LIMIT_LINES; i++)
        assert_true (log_limit_allow (&limit));
    assert_false (log_limit_allow (&limit));
    assert_false (log_limit_allow (&limit));
    assert_int_equal (limit.suppressed, 2);
    /* A level below the one in force never takes the allowance. */
    log_limit_t quiet = LOG_LIMIT_INIT ("query", "disconnects", LOG_LEVEL_DEBUG);
    assert_false (log_limit_allow (&quiet));
    assert_int_equal (quiet.lines, 0);
    assert_int_equal (quiet.suppressed, 0);
    /* A new second: the summary is written and the allowance starts again. */
    limit.window_start -= 1000;
    assert_true (log_limit_allow (&limit));
    assert_int_equal (limit.suppressed, 0);
    assert_int_equal (limit.lines, 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_a_line_is_utc_milliseconds_level_component_message),
        cmocka_unit_test (test_a_message_stays_one_line_and_is_cut_to_fit),
        cmocka_unit_test (test_levels_filter),
        cmocka_unit_test (test_the_rate_limit_allows_five_a_second),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
