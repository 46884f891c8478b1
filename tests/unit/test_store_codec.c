/* test_store_codec: the bytes of store format 2. Records, totals, keys and months round-trip at
 * their limits; keys sort as their fields do (cells month-first, a neighbourhood's cells of a
 * month together); anything that is not exactly one value (cut short, bytes left over, a varint
 * longer than it needs, unknown flags, a field out of its range) does not decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_codec.h"
#include "wire.h"

static void
test_months (void **state)
{
    (void)state;
    char period[8];
    assert_int_equal (store_codec_month ("1970-01"), 0);
    assert_int_equal (store_codec_month ("2013-04"), (2013 - 1970) * 12 + 3);
    assert_int_equal (store_codec_month ("2999-12"), STORE_MONTHS - 1);
    assert_string_equal (store_codec_period (STORE_MONTHS - 1, period), "2999-12");
    assert_string_equal (store_codec_period ((2013 - 1970) * 12 + 3, period), "2013-04");
    assert_int_equal (store_codec_month ("2013-13"), -1);
    assert_int_equal (store_codec_month ("1969-12"), -1);
    assert_int_equal (store_codec_month ("2013-4"), -1);
    assert_int_equal (store_codec_month (NULL), -1);
}

static void
test_records_round_trip_at_their_limits (void **state)
{
    (void)state;
    store_codec_record_t cases[] = {
        {1, 0, 1, 1, 0, 0, 0, false, false},
        {UINT32_MAX, STORE_MONTHS - 1, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
         WIRE_MAX_ABS_AMOUNT_PENCE, true, true},
        {2, 517, 33000, 12, 2300, 20, -WIRE_MAX_ABS_AMOUNT_PENCE, true, false},
        {3, 5, 7, 9, 0, 4, -1, false, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char bytes[STORE_CODEC_RECORD_MAX];
        size_t len = store_codec_record_encode (&cases[c], bytes);
        assert_true (len <= STORE_CODEC_RECORD_MAX);
        store_codec_record_t back;
        assert_int_equal (store_codec_record_decode (bytes, len, &back), 0);
        assert_memory_equal (&back.revision, &cases[c].revision, sizeof back.revision);
        assert_int_equal (back.month, cases[c].month);
        assert_int_equal (back.neighbourhood, cases[c].neighbourhood);
        assert_int_equal (back.service, cases[c].service);
        assert_int_equal (back.supplier, cases[c].supplier);
        assert_int_equal (back.description, cases[c].description);
        assert_int_equal (back.amount_pence, cases[c].amount_pence);
        assert_int_equal (back.poolable, cases[c].poolable);
        assert_int_equal (back.withdrawn, cases[c].withdrawn);
        /* Cut short or with a byte more, it is not a record. */
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal (store_codec_record_decode (bytes, cut, &back), -1);
        bytes[len] = 0;
        assert_int_equal (store_codec_record_decode (bytes, len + 1, &back), -1);
    }
    /* A typical record (£1,234.56, ids of a national store's sizes): 16 bytes. */
    store_codec_record_t typical = {1, 640, 33000, 120, 250000, 3000, 123456, true, false};
    unsigned char bytes[STORE_CODEC_RECORD_MAX];
    assert_int_equal (store_codec_record_encode (&typical, bytes), 16);
}

static void
test_what_is_not_a_record (void **state)
{
    (void)state;
    store_codec_record_t record;
    /* flags, revision, month, neighbourhood, service, amount (zigzag) */
    const unsigned char good[] = {0x00, 0x01, 0x05, 0x07, 0x09, 0x02};
    assert_int_equal (store_codec_record_decode (good, sizeof good, &record), 0);
    assert_int_equal (record.amount_pence, 1);
    const unsigned char unknown_flag[] = {0x10, 0x01, 0x05, 0x07, 0x09, 0x02};
    const unsigned char revision_0[] = {0x00, 0x00, 0x05, 0x07, 0x09, 0x02};
    const unsigned char no_service[] = {0x00, 0x01, 0x05, 0x07, 0x00, 0x02};
    const unsigned char overlong[] = {0x00, 0x81, 0x00, 0x05, 0x07, 0x09, 0x02};
    const unsigned char month_past[] = {0x00, 0x01, 0xC8, 0x60, 0x07, 0x09, 0x02}; /* 12360 */
    /* |amount| one penny over 10^15: zigzag 2 * 10^15 + 2. */
    unsigned char too_much[16] = {0x00, 0x01, 0x05, 0x07, 0x09};
    size_t n = 5;
    for (uint64_t v = 2 * (uint64_t)WIRE_MAX_ABS_AMOUNT_PENCE + 2; v >= 0x80; v >>= 7)
        too_much[n++] = (unsigned char)(v | 0x80);
    too_much[n] = (unsigned char)((2 * (uint64_t)WIRE_MAX_ABS_AMOUNT_PENCE + 2) >> (7 * (n - 5)));
    n++;
    /* The flag says a supplier follows, and none does; or it does and is 0. */
    const unsigned char missing_supplier[] = {0x04, 0x01, 0x05, 0x07, 0x09, 0x02};
    const unsigned char supplier_0[] = {0x04, 0x01, 0x05, 0x07, 0x09, 0x02, 0x00};
    struct {
        const unsigned char *bytes;
        size_t len;
    } bad[] = {{unknown_flag, sizeof unknown_flag},
               {revision_0, sizeof revision_0},
               {no_service, sizeof no_service},
               {overlong, sizeof overlong},
               {month_past, sizeof month_past},
               {too_much, n},
               {missing_supplier, sizeof missing_supplier},
               {supplier_0, sizeof supplier_0},
               {good, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (store_codec_record_decode (bad[i].bytes, bad[i].len, &record) != -1)
            fail_msg ("case %zu decoded", i);
}

static void
test_keys_sort_as_their_fields (void **state)
{
    (void)state;
    /* Cells: month first, then neighbourhood, body, service, poolable. */
    store_codec_cell_t cells[] = {
        {10, 5, 1, 1, false},          {10, 5, 1, 1, true},  {10, 5, 1, 2, false},
        {10, 5, 2, 0x01000000, false}, {10, 6, 1, 1, false}, {11, 1, 1, 1, false},
        {300, 1, 1, 1, false},
    };
    unsigned char a[STORE_CODEC_CELL_KEY_LEN], b[STORE_CODEC_CELL_KEY_LEN];
    for (size_t i = 0; i + 1 < sizeof cells / sizeof cells[0]; i++) {
        store_codec_cell_key (&cells[i], a);
        store_codec_cell_key (&cells[i + 1], b);
        assert_true (memcmp (a, b, sizeof a) < 0);
        store_codec_cell_t back;
        assert_int_equal (store_codec_cell_key_split (a, sizeof a, &back), 0);
        assert_int_equal (back.month, cells[i].month);
        assert_int_equal (back.neighbourhood, cells[i].neighbourhood);
        assert_int_equal (back.body, cells[i].body);
        assert_int_equal (back.service, cells[i].service);
        assert_int_equal (back.poolable, cells[i].poolable);
    }
    /* One neighbourhood's cells of a month share their first 6 bytes. */
    store_codec_cell_key (&cells[0], a);
    store_codec_cell_key (&cells[3], b);
    assert_memory_equal (a, b, STORE_CODEC_CELL_PREFIX);
    assert_int_equal (store_codec_cell_key_split (a, sizeof a - 1, &cells[0]), -1);
    a[14] = 'X';
    assert_int_equal (store_codec_cell_key_split (a, sizeof a, &cells[0]), -1);

    /* Records: body first, then the record id's bytes. */
    unsigned char r1[STORE_CODEC_RECORD_KEY_MAX], r2[STORE_CODEC_RECORD_KEY_MAX];
    size_t l1 = store_codec_record_key (2, "0000000009", 10, r1, sizeof r1);
    size_t l2 = store_codec_record_key (2, "0000000010", 10, r2, sizeof r2);
    assert_int_equal (l1, 14);
    assert_int_equal (l2, 14);
    assert_true (memcmp (r1, r2, l1) < 0);
    l2 = store_codec_record_key (3, "0", 1, r2, sizeof r2);
    assert_int_equal (l2, 5);
    assert_true (memcmp (r1, r2, 4) < 0);
    uint32_t body;
    const char *id;
    size_t id_len;
    assert_int_equal (store_codec_record_key_split (r1, l1, &body, &id, &id_len), 0);
    assert_int_equal (body, 2);
    assert_int_equal (id_len, 10);
    assert_memory_equal (id, "0000000009", 10);
    assert_int_equal (store_codec_record_key (2, "", 0, r1, sizeof r1), 0);
    assert_int_equal (store_codec_record_key (2, "12345", 5, r1, 8), 0); /* does not fit */
}

static void
test_totals_and_dictionary_values (void **state)
{
    (void)state;
    unsigned char bytes[STORE_CODEC_AMOUNT_MAX];
    int64_t amount, records;
    int64_t amounts[] = {0, 1, -1, INT64_MAX, INT64_MIN, 123456789};
    for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
        size_t len = store_codec_amount_encode (amounts[i], 7, bytes);
        assert_int_equal (store_codec_amount_decode (bytes, len, &amount, &records), 0);
        assert_int_equal (amount, amounts[i]);
        assert_int_equal (records, 7);
        assert_int_equal (store_codec_amount_decode (bytes, len - 1, &amount, &records), -1);
    }
    /* A total of no records is never stored: it does not decode. */
    size_t len = store_codec_amount_encode (0, 0, bytes);
    assert_int_equal (store_codec_amount_decode (bytes, len, &amount, &records), -1);

    unsigned char key[STORE_CODEC_TEXT_ID_KEY_LEN];
    unsigned kind, probe;
    uint64_t hash;
    store_codec_text_id_key (STORE_TEXT_SUPPLIER, UINT64_C (0x0123456789abcdef), 3, key);
    assert_int_equal (store_codec_text_id_key_split (key, sizeof key, &kind, &hash, &probe), 0);
    assert_int_equal (kind, STORE_TEXT_SUPPLIER);
    assert_true (hash == UINT64_C (0x0123456789abcdef));
    assert_int_equal (probe, 3);
    key[0] = 0;
    assert_int_equal (store_codec_text_id_key_split (key, sizeof key, &kind, &hash, &probe), -1);
    uint32_t id;
    store_codec_text_key (STORE_TEXT_BODY, 77, key);
    assert_int_equal (store_codec_text_key_split (key, STORE_CODEC_TEXT_KEY_LEN, &kind, &id), 0);
    assert_int_equal (kind, STORE_TEXT_BODY);
    assert_int_equal (id, 77);
    store_codec_id (0, key);
    assert_int_equal (store_codec_id_decode (key, STORE_CODEC_ID_LEN, &id), -1); /* id 0 */
    store_codec_id (5, key);
    assert_int_equal (store_codec_id_decode (key, STORE_CODEC_ID_LEN, &id), 0);
    assert_int_equal (id, 5);
    assert_string_equal (store_text_kind_name (STORE_TEXT_DESCRIPTION), "description");
    assert_string_equal (store_text_kind_name (0), "?");
    /* Text hashes depend on the store's key. */
    unsigned char k1[16] = {1}, k2[16] = {2};
    assert_true (store_codec_text_hash (k1, "Rents", 5) != store_codec_text_hash (k2, "Rents", 5));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_months),
        cmocka_unit_test (test_records_round_trip_at_their_limits),
        cmocka_unit_test (test_what_is_not_a_record),
        cmocka_unit_test (test_keys_sort_as_their_fields),
        cmocka_unit_test (test_totals_and_dictionary_values),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
