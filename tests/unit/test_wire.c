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

/* Regression (fuzz_batch): protobuf-c unpacked a record holding an unknown field numbered 0 and
 * packed it into bytes it could not unpack again, so the store kept a record it could not read.
 * Such bytes are refused; a field the collector does not know (a newer peer's) still passes. */
static void
test_field_zero_is_refused (void **state)
{
    (void) state;
    static const uint8_t crash[] = {
      0x0a, 0x07, 'a',  'g',  'e',  'n',  't',  '-',  'a',  0x10, 0x01, 0x1a, 0x3b, 0x0a, 0x0a,
      'E',  'B',  '-',  'E',  'A',  0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 'E',  '-',
      'B',  'N',  'S',  0x12, 0x02, 'T',  '1',  0x18, 0x01, 0x22, 0x09, 'E',  '0',  '1',  '0',
      '0',  '0',  '0',  '0',  '1',  0x2a, 0x07, 'H',  'o',  'u',  's',  'n',  'i',  'g',  0x32,
      0x07, '2',  '0',  '1',  '3',  '-',  '0',  '4',  0x38, 0xf2, 0xc0, 0x01, 0x40, 0x01, 0x4a,
      0x04, 'A',  'C',  'M',  'E'};
    char err[WIRE_REASON_LEN] = "";
    assert_null (wire_decode (&totalplace__batch__descriptor, crash, sizeof crash, err, sizeof err));
    assert_non_null (strstr (err, "numbered 0"));
    /* Unpacked without wire_decode (as with an allocator of one's own), validation refuses it. */
    Totalplace__Batch *raw =
      (Totalplace__Batch *) protobuf_c_message_unpack (&totalplace__batch__descriptor, NULL,
                                                        sizeof crash, crash);
    assert_non_null (raw);
    assert_int_equal (wire_validate_batch (raw, err, sizeof err), -1);
    assert_non_null (strstr (err, "numbered 0"));
    protobuf_c_message_free_unpacked (&raw->base, NULL);

    /* A record with a field 99 the collector does not know: decoded, and it survives a round
     * trip (what the store does with it). */
    Totalplace__SpendingRecord *record = good ();
    uint8_t *data = NULL;
    size_t size = 0;
    assert_int_equal (wire_encode (&record->base, &data, &size, err, sizeof err), 0);
    uint8_t *longer = malloc (size + 3);
    assert_non_null (longer);
    memcpy (longer, data, size);
    longer[size] = 0x98; /* field 99, varint: tag (99 << 3) as a two-byte varint */
    longer[size + 1] = 0x06;
    longer[size + 2] = 0x07;
    Totalplace__SpendingRecord *decoded = (Totalplace__SpendingRecord *) wire_decode (
      &totalplace__spending_record__descriptor, longer, size + 3, err, sizeof err);
    assert_non_null (decoded);
    assert_int_equal (decoded->base.n_unknown_fields, 1);
    uint8_t *again = NULL;
    size_t again_size = 0;
    assert_int_equal (wire_encode (&decoded->base, &again, &again_size, err, sizeof err), 0);
    Totalplace__SpendingRecord *round_trip = (Totalplace__SpendingRecord *) wire_decode (
      &totalplace__spending_record__descriptor, again, again_size, err, sizeof err);
    assert_non_null (round_trip);
    assert_true (wire_records_equal (round_trip, record));
    protobuf_c_message_free_unpacked (&round_trip->base, NULL);
    protobuf_c_message_free_unpacked (&decoded->base, NULL);
    free (again);
    free (longer);
    free (data);
    test_record_free (&record);
}

static void
expect_char (const char *bytes, size_t left, wire_utf8_t found, size_t len)
{
    size_t n = 99;
    wire_utf8_t got = wire_utf8_char (bytes, left, &n);
    if (got != found || n != len)
        fail_msg ("%02X.. (%zu available): %d of %zu bytes, expected %d of %zu",
                  (unsigned char)bytes[0], left, got, n, found, len);
}

/* The edges of Unicode's Table 3-7, and the length of each maximal subpart. */
static void
test_utf8_characters (void **state)
{
    (void)state;
    expect_char ("A", 1, WIRE_UTF8_VALID, 1);
    expect_char ("\0", 1, WIRE_UTF8_VALID, 1);
    expect_char ("\x7F", 1, WIRE_UTF8_VALID, 1);
    expect_char ("\xC2\x80", 2, WIRE_UTF8_VALID, 2);
    expect_char ("\xDF\xBF", 2, WIRE_UTF8_VALID, 2);
    expect_char ("\xE0\xA0\x80", 3, WIRE_UTF8_VALID, 3);
    expect_char ("\xED\x9F\xBF", 3, WIRE_UTF8_VALID, 3);
    expect_char ("\xEE\x80\x80", 3, WIRE_UTF8_VALID, 3);
    expect_char ("\xEF\xBF\xBF", 3, WIRE_UTF8_VALID, 3);
    expect_char ("\xF0\x90\x80\x80", 4, WIRE_UTF8_VALID, 4);
    expect_char ("\xF4\x8F\xBF\xBF", 4, WIRE_UTF8_VALID, 4);
    expect_char ("\xC3\xA9xyz", 5, WIRE_UTF8_VALID, 2);
    /* Bytes that start nothing. */
    expect_char ("\x80", 1, WIRE_UTF8_INVALID, 1);
    expect_char ("\xBF\x80", 2, WIRE_UTF8_INVALID, 1);
    expect_char ("\xC0\x80", 2, WIRE_UTF8_INVALID, 1);
    expect_char ("\xC1\xBF", 2, WIRE_UTF8_INVALID, 1);
    expect_char ("\xF5\x80\x80\x80", 4, WIRE_UTF8_INVALID, 1);
    expect_char ("\xFF", 1, WIRE_UTF8_INVALID, 1);
    /* The second byte shuts out overlong forms, surrogates and code points past U+10FFFF. */
    expect_char ("\xE0\x9F\xBF", 3, WIRE_UTF8_INVALID, 1);
    expect_char ("\xED\xA0\x80", 3, WIRE_UTF8_INVALID, 1);
    expect_char ("\xF0\x8F\xBF\xBF", 4, WIRE_UTF8_INVALID, 1);
    expect_char ("\xF4\x90\x80\x80", 4, WIRE_UTF8_INVALID, 1);
    /* A valid start broken off: the subpart is the start. */
    expect_char ("\xC3Z", 2, WIRE_UTF8_INVALID, 1);
    expect_char ("\xE2\x82Z", 3, WIRE_UTF8_INVALID, 2);
    expect_char ("\xF1\x80\x80Z", 4, WIRE_UTF8_INVALID, 3);
    expect_char ("\xF1\x80\x80\xC0", 4, WIRE_UTF8_INVALID, 3);
    /* Cut short by the end of what is available. */
    expect_char ("\xC3\xA9", 1, WIRE_UTF8_TRUNCATED, 1);
    expect_char ("\xE2\x82\xAC", 2, WIRE_UTF8_TRUNCATED, 2);
    expect_char ("\xF0\x9F\x98\x80", 3, WIRE_UTF8_TRUNCATED, 3);
    expect_char ("\xF0\x9F\x98\x80", 1, WIRE_UTF8_TRUNCATED, 1);
    expect_char ("\xF0\x8F", 2, WIRE_UTF8_INVALID, 1); /* invalid already, however it goes on */
}

static void
expect_reason (Totalplace__SpendingRecord *record, const char *expected)
{
    char reason[WIRE_REASON_LEN] = "";
    assert_int_equal (wire_validate_record (record, reason, sizeof reason), -1);
    assert_string_equal (reason, expected);
    test_record_free (&record);
}

/* Every reason about a field's value quotes it, escaped. */
static void
test_reasons_quote_the_value (void **state)
{
    (void)state;
    Totalplace__SpendingRecord *r;
    r = good (), replace (&r->supplier, "FARRAH\xB4S");
    expect_reason (r, "supplier \"FARRAH\\xB4S\" is not valid UTF-8 at byte 7");
    r = good (), replace (&r->neighbourhood, "E01 007");
    expect_reason (r, "neighbourhood \"E01 007\" has character 0x20 at byte 4; only A-Z a-z 0-9 . "
                      "_ - are allowed");
    r = good (), replace (&r->description, "Fees\tand \"charges\"");
    expect_reason (r, "description \"Fees\\x09and \\\"charges\\\"\" has control character 0x09 at "
                      "byte 5");
    r = good (), replace (&r->record_id, "");
    expect_reason (r, "record_id is missing");
    r = good (), replace (&r->period, "2013-4\xA0");
    expect_reason (r, "period \"2013-4\\xA0\" is not a month YYYY-MM between 1970 and 2999");
    char long_id[WIRE_MAX_BODY_ID + 2];
    memset (long_id, 'A', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    r = good (), replace (&r->body_id, long_id);
    expect_reason (r, "body_id \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...\" is 65 bytes, longer "
                      "than the limit of 64");
    char reason[WIRE_REASON_LEN];
    assert_int_equal (
        wire_check_text ("service", "Caf\xC3\xA9 \xE2\x82\xAC", 128, true, reason, sizeof reason),
        0);
}

/* Checks that reason came out whole: it ends as expected and left room for its NUL. */
static void
expect_whole (const char *reason, const char *ending)
{
    size_t len = strlen (reason), end = strlen (ending);
    if (len < end || strcmp (reason + len - end, ending) != 0)
        fail_msg ("reason cut short: \"%s\"", reason);
    assert_true (len < WIRE_REASON_LEN - 1);
}

/* The longest reasons: a field name of WIRE_MAX_FIELD_NAME bytes, a quotation as long as any, and
 * numbers as large as a message can make them. None is cut. */
static void
test_longest_reasons_fit (void **state)
{
    (void)state;
    char field[WIRE_MAX_FIELD_NAME + 1];
    memset (field, 'f', WIRE_MAX_FIELD_NAME);
    field[WIRE_MAX_FIELD_NAME] = '\0';
    const size_t size = WIRE_MAX_MESSAGE_BYTES;
    char *value = malloc (size + 1);
    assert_non_null (value);
    char reason[WIRE_REASON_LEN];

    /* Length: the whole message is one field. Escapes make the longest quotation. */
    memset (value, 0x01, size);
    value[size] = '\0';
    assert_int_equal (
        wire_check_text (field, value, WIRE_MAX_DESCRIPTION, false, reason, sizeof reason), -1);
    expect_whole (reason, "bytes, longer than the limit of 1024");
    assert_non_null (strstr (reason, "...\" is 8388608 bytes"));
    assert_int_equal (
        wire_check_identifier (field, value, WIRE_MAX_NEIGHBOURHOOD, reason, sizeof reason), -1);
    expect_whole (reason, "longer than the limit of 32");
    /* A bad byte as far in as a field can hold one. */
    memset (value, 'A', size);
    value[size - 1] = ' ';
    assert_int_equal (wire_check_identifier (field, value, size, reason, sizeof reason), -1);
    expect_whole (reason, "at byte 8388608; only A-Z a-z 0-9 . _ - are allowed");
    value[size - 1] = '\x1F';
    assert_int_equal (wire_check_text (field, value, size, true, reason, sizeof reason), -1);
    expect_whole (reason, "has control character 0x1f at byte 8388608");
    value[size - 1] = '\xFF';
    assert_int_equal (wire_check_text (field, value, size, true, reason, sizeof reason), -1);
    expect_whole (reason, "is not valid UTF-8 at byte 8388608");
    free (value);

    /* Reasons of whole records, with their longest field names. */
    Totalplace__SpendingRecord *r = good ();
    replace (&r->period, "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01");
    assert_int_equal (wire_validate_record (r, reason, sizeof reason), -1);
    expect_whole (reason, "is not a month YYYY-MM between 1970 and 2999");
    replace (&r->period, "2013-04");
    r->amount_pence = INT64_MIN;
    assert_int_equal (wire_validate_record (r, reason, sizeof reason), -1);
    expect_whole (reason, "is beyond the limit of +/-1000000000000000 pence");
    r->amount_pence = 1;
    char text[WIRE_MAX_NEIGHBOURHOOD + 1];
    memset (text, 'E', sizeof text - 1);
    text[sizeof text - 2] = '/';
    text[sizeof text - 1] = '\0';
    replace (&r->neighbourhood, text);
    assert_int_equal (wire_validate_record (r, reason, sizeof reason), -1);
    expect_whole (reason, "at byte 32; only A-Z a-z 0-9 . _ - are allowed");
    test_record_free (&r);
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
        cmocka_unit_test (test_field_zero_is_refused),
        cmocka_unit_test (test_utf8_characters),
        cmocka_unit_test (test_reasons_quote_the_value),
        cmocka_unit_test (test_longest_reasons_fit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
