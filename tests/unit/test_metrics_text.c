/* test_metrics_text: Prometheus text (families, labels, exact integers), the histogram's buckets
 * (cumulative, +Inf, sum and count), and which metrics endpoints are accepted (loopback unless
 * allowed; HOST:PORT). promtool checks the daemons' real text in test_monitoring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "metrics_server.h"
#include "metrics_text.h"

static void
test_families_and_samples (void **state)
{
    (void)state;
    metrics_text_t *text = metrics_text_new ();
    assert_non_null (text);
    metrics_text_family (text, "x_records_total", "counter", "Records");
    metrics_text_uint (text, "x_records_total", "outcome=\"accepted\"",
                       UINT64_C (18446744073709551615));
    metrics_text_uint (text, "x_records_total", NULL, 3);
    metrics_text_double (text, "x_ratio", "", 0.25);
    assert_string_equal (metrics_text_data (text),
                         "# HELP x_records_total Records\n"
                         "# TYPE x_records_total counter\n"
                         "x_records_total{outcome=\"accepted\"} 18446744073709551615\n"
                         "x_records_total 3\n"
                         "x_ratio 0.25\n");
    assert_int_equal (metrics_text_size (text), strlen (metrics_text_data (text)));
    assert_false (metrics_text_failed (text));
    metrics_text_destroy (&text);
    metrics_text_destroy (&text);
    assert_null (text);
}

static void
test_histogram_buckets_are_cumulative (void **state)
{
    (void)state;
    metrics_histogram_t histogram = {0};
    metrics_histogram_observe (&histogram, 0.0001); /* first bucket */
    metrics_histogram_observe (&histogram, 0.0005); /* on a bound: that bucket */
    metrics_histogram_observe (&histogram, 0.003);  /* le 0.005 */
    metrics_histogram_observe (&histogram, 60);     /* +Inf only */
    assert_int_equal (histogram.count, 4);
    metrics_text_t *text = metrics_text_new ();
    metrics_text_histogram (text, "x_seconds", "socket=\"ingest\"", &histogram);
    const char *data = metrics_text_data (text);
    assert_non_null (strstr (data, "x_seconds_bucket{socket=\"ingest\",le=\"0.0005\"} 2\n"));
    assert_non_null (strstr (data, "x_seconds_bucket{socket=\"ingest\",le=\"0.0025\"} 2\n"));
    assert_non_null (strstr (data, "x_seconds_bucket{socket=\"ingest\",le=\"0.005\"} 3\n"));
    assert_non_null (strstr (data, "x_seconds_bucket{socket=\"ingest\",le=\"10\"} 3\n"));
    assert_non_null (strstr (data, "x_seconds_bucket{socket=\"ingest\",le=\"+Inf\"} 4\n"));
    assert_non_null (strstr (data, "x_seconds_count{socket=\"ingest\"} 4\n"));
    assert_non_null (strstr (data, "x_seconds_sum{socket=\"ingest\"} 60.003"));
    metrics_text_destroy (&text);
    /* Without labels, le stands alone. */
    text = metrics_text_new ();
    metrics_text_histogram (text, "y_seconds", NULL, &histogram);
    assert_non_null (strstr (metrics_text_data (text), "y_seconds_bucket{le=\"+Inf\"} 4\n"));
    metrics_text_destroy (&text);
}

static void
test_a_large_text_grows (void **state)
{
    (void)state;
    metrics_text_t *text = metrics_text_new ();
    for (int i = 0; i < 5000; i++)
        metrics_text_uint (text, "x_total", "n=\"a long enough label value\"", (uint64_t)i);
    assert_false (metrics_text_failed (text));
    assert_non_null (
        strstr (metrics_text_data (text), "x_total{n=\"a long enough label value\"} 4999\n"));
    metrics_text_destroy (&text);
}

static void
test_endpoints_are_loopback_unless_allowed (void **state)
{
    (void)state;
    char err[512];
    const char *loopback[] = {"127.0.0.1:9464", "127.1.2.3:0", "[::1]:9464", NULL};
    for (size_t i = 0; loopback[i]; i++)
        assert_int_equal (metrics_endpoint_check ("k/metrics_endpoint", "k/allow", loopback[i],
                                                  false, err, sizeof err),
                          0);
    const char *remote[] = {"0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", "[2001:db8::1]:1", NULL};
    for (size_t i = 0; remote[i]; i++) {
        assert_int_equal (metrics_endpoint_check ("k/metrics_endpoint", "k/allow", remote[i], false,
                                                  err, sizeof err),
                          -1);
        assert_non_null (strstr (err, "k/allow = 1"));
        assert_non_null (strstr (err, "not a loopback address"));
        assert_int_equal (metrics_endpoint_check ("k/metrics_endpoint", "k/allow", remote[i], true,
                                                  err, sizeof err),
                          0);
    }
    const char *bad[] = {
        "localhost:9464", "127.0.0.1",     "127.0.0.1:", "127.0.0.1:65536", ":9464", "::1:9464",
        "[::1:9464",      "127.0.0.1:94x", NULL};
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal (
            metrics_endpoint_check ("k/metrics_endpoint", "k/allow", bad[i], true, err, sizeof err),
            -1);
        assert_non_null (strstr (err, "k/metrics_endpoint"));
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_families_and_samples),
        cmocka_unit_test (test_histogram_buckets_are_cumulative),
        cmocka_unit_test (test_a_large_text_grows),
        cmocka_unit_test (test_endpoints_are_loopback_unless_allowed),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
