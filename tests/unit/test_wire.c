/* test_wire: record validation reasons, message size limits, period and fiscal-year arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "period.h"
#include "test_support.h"
#include "wire.h"

static void
expect_invalid (Totalplace__SpendingRecord *record, const char *field)
{
    char reason[WIRE_REASON_LEN] = "";
    assert_int_equal (wire_validate_record (record, reason, sizeof reason), -1);
    if (!strstr (reason, field))
        fail_msg ("reason \"%s\" does not name %s", reason, field);
    test_record_free (&record);
}

static Totalplace__SpendingRecord *
good (void)
{
    return test_record ("GB-LAE-BNS", "T 1/2", 1, "E01000001", "Adult Social Care", "2013-04",
                        -1250, true);
}

static void
replace (char **slot, const char *value)
{
    free (*slot);
    *slot = strdup (value);
}

static void
test_valid_record_passes (void **state)
{
    (void) state;
    Totalplace__SpendingRecord *record = good ();
    replace (&record->supplier, "Caf\xc3\xa9 Ltd \xe2\x82\xac"); /* UTF-8 é and € */
    char reason[WIRE_REASON_LEN];
    assert_int_equal (wire_validate_record (record, reason, sizeof reason), 0);
    test_record_free (&record);
}

static void
test_each_bad_field_is_named (void **state)
{
    (void) state;
    Totalplace__SpendingRecord *r;
    r = good (), replace (&r->body_id, ""), expect_invalid (r, "body_id");
    r = good (), replace (&r->body_id, "GB LAE"), expect_invalid (r, "body_id");
    r = good (), replace (&r->record_id, ""), expect_invalid (r, "record_id");
    r = good (), replace (&r->record_id, "T\x1f" "1"), expect_invalid (r, "record_id");
    r = good (), replace (&r->neighbourhood, "E01/1"), expect_invalid (r, "neighbourhood");
    r = good (), replace (&r->service, ""), expect_invalid (r, "service");
    r = good (), replace (&r->service, "Bad \xc3\x28"), expect_invalid (r, "service");
    r = good (), replace (&r->supplier, "overlong \xc0\xaf"), expect_invalid (r, "supplier");
    r = good (), replace (&r->description, "tab\there"), expect_invalid (r, "description");
    r = good (), replace (&r->period, "2013-4"), expect_invalid (r, "period");
    r = good (), replace (&r->period, "1969-12"), expect_invalid (r, "period");
    r = good (), r->revision = 0, expect_invalid (r, "revision");
    r = good (), r->amount_pence = -WIRE_MAX_ABS_AMOUNT_PENCE - 1, expect_invalid (r, "amount");
    char long_id[WIRE_MAX_BODY_ID + 2];
    memset (long_id, 'A', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    r = good (), replace (&r->body_id, long_id), expect_invalid (r, "limit");
    /* Exactly at the bound is fine. */
    long_id[WIRE_MAX_BODY_ID] = '\0';
    r = good ();
    replace (&r->body_id, long_id);
    char reason[WIRE_REASON_LEN];
    assert_int_equal (wire_validate_record (r, reason, sizeof reason), 0);
    test_record_free (&r);
}

static void
test_encode_decode_round_trip_and_limits (void **state)
{
    (void) state;
    Totalplace__Batch *batch = test_batch_new ("agent-1", 42);
    test_batch_add (batch, good ());
    uint8_t *data;
    size_t size;
    char err[WIRE_REASON_LEN];
    assert_int_equal (wire_encode (&batch->base, &data, &size, err, sizeof err), 0);
    Totalplace__Batch *back = (Totalplace__Batch *) wire_decode (&totalplace__batch__descriptor,
                                                                 data, size, err, sizeof err);
    assert_non_null (back);
    assert_int_equal (back->batch_seq, 42);
    assert_int_equal (back->n_records, 1);
    assert_true (wire_records_equal (back->records[0], batch->records[0]));
    assert_int_equal (back->records[0]->amount_pence, -1250);
    protobuf_c_message_free_unpacked (&back->base, NULL);
    /* Truncated bytes are refused, not misread. */
    assert_null (wire_decode (&totalplace__batch__descriptor, data, size - 3, err, sizeof err));
    assert_non_null (strstr (err, "not a valid"));
    /* Over the size limit: refused before decoding. */
    assert_null (wire_decode (&totalplace__batch__descriptor, data, WIRE_MAX_MESSAGE_BYTES + 1,
                              err, sizeof err));
    assert_non_null (strstr (err, "limit"));
    free (data);
    /* A batch too large to send is refused at encoding. */
    Totalplace__SpendingRecord *big = good ();
    char *text = malloc (WIRE_MAX_MESSAGE_BYTES + 16);
    memset (text, 'x', WIRE_MAX_MESSAGE_BYTES + 15);
    text[WIRE_MAX_MESSAGE_BYTES + 15] = '\0';
    free (big->description);
    big->description = text;
    test_batch_add (batch, big);
    assert_int_equal (wire_encode (&batch->base, &data, &size, err, sizeof err), -1);
    assert_non_null (strstr (err, "limit"));
    test_batch_free (&batch);
}

static void
test_batch_validation (void **state)
{
    (void) state;
    char reason[WIRE_REASON_LEN];
    Totalplace__Batch *batch = test_batch_new ("bad agent", 1);
    assert_int_equal (wire_validate_batch (batch, reason, sizeof reason), -1);
    assert_non_null (strstr (reason, "agent_id"));
    test_batch_free (&batch);
    batch = test_batch_new ("agent", 1);
    batch->n_records = WIRE_MAX_RECORDS_PER_BATCH + 1;
    assert_int_equal (wire_validate_batch (batch, reason, sizeof reason), -1);
    assert_non_null (strstr (reason, "limit"));
    batch->n_records = 0;
    assert_int_equal (wire_validate_batch (batch, reason, sizeof reason), 0);
    test_batch_free (&batch);
}

static void
test_periods_and_fiscal_years (void **state)
{
    (void) state;
    int year, month;
    assert_int_equal (period_parse ("2013-04", &year, &month), 0);
    assert_int_equal (year, 2013);
    assert_int_equal (month, 4);
    const char *bad[] = {"2013-00", "2013-13", "13-04", "2013/04", "2013-04-01", "", "abcd-ef",
                         "3000-01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal (period_parse (bad[i], NULL, NULL), -1);
    struct {
        const char *period, *fiscal_year;
    } cases[] = {{"2013-03", "2012-13"}, {"2013-04", "2013-14"}, {"2014-03", "2013-14"},
                 {"2014-04", "2014-15"}, {"1999-12", "1999-00"}, {"2000-01", "1999-00"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char fiscal_year[FISCAL_YEAR_LEN];
        assert_int_equal (period_fiscal_year (cases[i].period, fiscal_year, sizeof fiscal_year), 0);
        assert_string_equal (fiscal_year, cases[i].fiscal_year);
        int start;
        assert_int_equal (period_fiscal_year_parse (fiscal_year, &start), 0);
    }
    assert_int_equal (period_fiscal_year_parse ("2013-15", NULL), -1);
    assert_int_equal (period_fiscal_year_parse ("2013-2014", NULL), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
      cmocka_unit_test (test_valid_record_passes),
      cmocka_unit_test (test_each_bad_field_is_named),
      cmocka_unit_test (test_encode_decode_round_trip_and_limits),
      cmocka_unit_test (test_batch_validation),
      cmocka_unit_test (test_periods_and_fiscal_years),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
