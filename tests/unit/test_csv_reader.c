/* test_csv_reader: real CSV files written to a temporary folder and read back, checking records,
 * rejections with their physical line numbers, file-level errors and the bounds on memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "csv_reader.h"

#define MAX_SEEN 64

typedef struct {
    Totalplace__SpendingRecord *records[MAX_SEEN];
    size_t record_lines[MAX_SEEN];
    size_t n_records;
    char reasons[MAX_SEEN][CSV_READER_REASON_LEN];
    size_t reject_lines[MAX_SEEN];
    size_t n_rejects;
    int stop_with; /* a callback returns this once n_records reaches stop_after */
    size_t stop_after;
    int reject_stop_with; /* on_reject returns this */
} sink_t;

typedef struct {
    char dir[256];
    char path[300];
    csv_reader_t *reader;
    sink_t sink;
    csv_reader_stats_t stats;
    char err[1024];
} fixture_t;

static int
on_record (void *arg, size_t line, Totalplace__SpendingRecord *record)
{
    sink_t *sink = arg;
    assert_true (sink->n_records < MAX_SEEN);
    sink->records[sink->n_records] = record;
    sink->record_lines[sink->n_records++] = line;
    if (sink->stop_with && sink->n_records >= sink->stop_after)
        return sink->stop_with;
    return 0;
}

static int
on_reject (void *arg, size_t line, const char *reason)
{
    sink_t *sink = arg;
    assert_true (sink->n_rejects < MAX_SEEN);
    assert_true (strlen (reason) < CSV_READER_REASON_LEN);
    snprintf (sink->reasons[sink->n_rejects], CSV_READER_REASON_LEN, "%s", reason);
    sink->reject_lines[sink->n_rejects++] = line;
    return sink->reject_stop_with;
}

static void
clear_sink (sink_t *sink)
{
    for (size_t i = 0; i < sink->n_records; i++)
        protobuf_c_message_free_unpacked (&sink->records[i]->base, NULL);
    memset (sink, 0, sizeof *sink);
}

static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    const char *tmp = getenv ("TOTALPLACE_TEST_TMP");
    char base[200];
    snprintf (base, sizeof base, "%s", tmp && *tmp ? tmp : "/tmp");
    /* ctest names the folder but nothing creates it. */
    if (mkdir (base, 0700) != 0)
        assert_int_equal (errno, EEXIST);
    snprintf (fx->dir, sizeof fx->dir, "%s/csv_reader.XXXXXX", base);
    assert_non_null (mkdtemp (fx->dir));
    snprintf (fx->path, sizeof fx->path, "%s/export.csv", fx->dir);
    fx->reader = csv_reader_new ("GB-LAE-TST", fx->err, sizeof fx->err);
    assert_non_null (fx->reader);
    *state = fx;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    clear_sink (&fx->sink);
    csv_reader_destroy (&fx->reader);
    unlink (fx->path);
    rmdir (fx->dir);
    free (fx);
    return 0;
}

static void
write_bytes (fixture_t *fx, const char *data, size_t len)
{
    FILE *f = fopen (fx->path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

/* Writes text as the export file and reads it; returns what the reader returned. */
static int
read_text (fixture_t *fx, const char *text)
{
    clear_sink (&fx->sink);
    write_bytes (fx, text, strlen (text));
    fx->err[0] = '\0';
    return csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink, &fx->stats,
                                 fx->err, sizeof fx->err);
}

static const char transparency_header[] =
    "Body Name,Body,Service Area,Expenses Type,Date,Transaction Number,Amount,Supplier Name,LSOA\n";

static void
test_transparency_code_export (void **state)
{
    fixture_t *fx = *state;
    char text[1024];
    snprintf (text, sizeof text, "%s%s%s", transparency_header,
              "Testshire Council,GB-LAE-TST,Adult Social Care,Residential Care,01/04/2013,TN-1,"
              "\"\xC2\xA3"
              "1,234.56\",Care Homes Ltd,E01000001\n",
              "Testshire Council,GB-LAE-TST,Housing,Repairs,2013-05-31,TN-2,-12.00,,E01000002\n");
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_int_equal (fx->sink.n_rejects, 0);

    Totalplace__SpendingRecord *r = fx->sink.records[0];
    assert_string_equal (r->body_id, "GB-LAE-TST");
    assert_string_equal (r->record_id, "TN-1");
    assert_int_equal (r->revision, 1);
    assert_string_equal (r->neighbourhood, "E01000001");
    assert_string_equal (r->service, "Adult Social Care");
    assert_string_equal (r->period, "2013-04");
    assert_int_equal (r->amount_pence, 123456);
    assert_false (r->poolable);
    assert_string_equal (r->supplier, "Care Homes Ltd");
    assert_string_equal (r->description, "Residential Care");
    assert_false (r->withdrawn);
    assert_int_equal (fx->sink.record_lines[0], 2);

    r = fx->sink.records[1];
    assert_string_equal (r->record_id, "TN-2");
    assert_string_equal (r->period, "2013-05");
    assert_int_equal (r->amount_pence, -1200);
    assert_string_equal (r->supplier, "");
    assert_int_equal (fx->sink.record_lines[1], 3);

    assert_int_equal (fx->stats.rows, 2);
    assert_int_equal (fx->stats.records, 2);
    assert_int_equal (fx->stats.rejected, 0);
    assert_int_equal (fx->stats.blank, 0);
}

static void
test_header_case_and_spaces (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "  transaction NUMBER ,\" DATE \",amount,  Neighbourhood  "
                                     "Code ,SERVICE,supplier\n"
                                     "A1,2013-04-01,5,E05000001,Parks,Acme\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    Totalplace__SpendingRecord *r = fx->sink.records[0];
    assert_string_equal (r->record_id, "A1");
    assert_string_equal (r->neighbourhood, "E05000001");
    assert_string_equal (r->service, "Parks");
    assert_string_equal (r->supplier, "Acme");
    assert_int_equal (r->amount_pence, 500);
}

static void
test_first_listed_header_wins (void **state)
{
    fixture_t *fx = *state;
    /* "Amount" is listed before "Net Amount", "Service Area" before "Service Division". */
    assert_int_equal (read_text (fx, "Net Amount,Transaction Number,Date,Amount,LSOA,Service "
                                     "Division,Service Area\n"
                                     "1.00,T1,2013-04-01,2.00,E01000001,Division,Area\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_int_equal (fx->sink.records[0]->amount_pence, 200);
    assert_string_equal (fx->sink.records[0]->service, "Area");
}

static void
test_duplicate_header_is_a_file_error (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,amount,LSOA,Service\n"
                                     "T1,2013-04-01,1,2,E01000001,S\n"),
                      CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "columns 3 and 4"));
    assert_int_equal (fx->sink.n_records, 0);
}

static void
test_overrides (void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal (csv_reader_map (fx->reader, "service", "Cost Centre", err, sizeof err), 0);
    assert_int_equal (csv_reader_map (fx->reader, "record_id", " Ref ", err, sizeof err), 0);
    assert_int_equal (csv_reader_map (fx->reader, "description", "", err, sizeof err), 0);
    const char *text = "Ref,Transaction Number,Date,Amount,LSOA,Service Area,Cost Centre,"
                       "Description\n"
                       "R9,T9,2013-04-01,1,E01000001,Ignored Area,CC-42,Not read\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 1);
    Totalplace__SpendingRecord *r = fx->sink.records[0];
    assert_string_equal (r->record_id, "R9");
    assert_string_equal (r->service, "CC-42");
    assert_string_equal (r->description, "");

    /* NULL restores the default names. */
    assert_int_equal (csv_reader_map (fx->reader, "service", NULL, err, sizeof err), 0);
    assert_int_equal (csv_reader_map (fx->reader, "description", NULL, err, sizeof err), 0);
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_string_equal (fx->sink.records[0]->service, "Ignored Area");
    assert_string_equal (fx->sink.records[0]->description, "Not read");

    /* A mapped header must be in the file, even for an optional field. */
    assert_int_equal (csv_reader_map (fx->reader, "supplier", "Payee", err, sizeof err), 0);
    assert_int_equal (read_text (fx, text), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no column \"Payee\", which is mapped to supplier"));
    assert_int_equal (fx->sink.n_records, 0);
}

static void
test_map_refusals (void **state)
{
    fixture_t *fx = *state;
    char err[256] = "";
    assert_int_equal (csv_reader_map (fx->reader, "colour", "Colour", err, sizeof err), -1);
    assert_non_null (strstr (err, "unknown field \"colour\""));
    assert_non_null (strstr (err, "neighbourhood"));
    assert_int_equal (csv_reader_map (fx->reader, "amount", "  ", err, sizeof err), -1);
    assert_non_null (strstr (err, "amount is required"));
    assert_int_equal (csv_reader_map (fx->reader, NULL, "X", err, sizeof err), -1);
}

static void
test_missing_required_column (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "Transaction Number,Date,Net Total,LSOA,Service\n"
                                     "T1,2013-04-01,1,E01000001,S\n"),
                      CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "line 1"));
    assert_non_null (strstr (fx->err, "no amount column"));
    assert_non_null (strstr (fx->err, "\"Amount\", \"Net Amount\", \"Value\""));
    assert_non_null (strstr (fx->err, fx->path));
    assert_int_equal (fx->sink.n_records, 0);
    assert_int_equal (fx->sink.n_rejects, 0);

    /* Two missing columns are both named. */
    assert_int_equal (read_text (fx, "Date,Amount,Service\n"), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no record_id column"));
    assert_non_null (strstr (fx->err, "no neighbourhood column"));
    assert_non_null (strstr (fx->err, "\"Ward Code\""));
}

static void
test_bom_and_crlf (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "\xEF\xBB\xBFTransaction Number,Date,Amount,LSOA,Service\r\n"
                                     "T1,2013-04-01,1.50,E01000001,S\r\n"
                                     "T2,2013-04-02,2.50,E01000001,S\r\n"
                                     "T3,2013-04-03,bad,E01000001,S\r\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->record_id, "T1");
    assert_int_equal (fx->sink.record_lines[0], 2);
    assert_int_equal (fx->sink.record_lines[1], 3);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 4);
    assert_int_equal (fx->stats.blank, 0); /* the LF of each CRLF is not a blank row */
}

static void
test_old_mac_line_endings (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\r"
                                     "T1,2013-04-01,1,E01000001,S\r"
                                     "\r"
                                     "T2,2013-04-01,x,E01000001,S\r"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_int_equal (fx->sink.record_lines[0], 2);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 4);
    assert_int_equal (fx->stats.blank, 1);
}

static void
test_quoted_commas_and_newlines (void **state)
{
    fixture_t *fx = *state;
    const char *text = "Transaction Number,Date,Amount,LSOA,Service,Supplier Name,Description\n"
                       "T1,2013-04-01,1,E01000001,S,\"Smith, Jones\nand Partners\",\"a\r\nb\"\n"
                       "T2,2013-04-01,\"1,000\",E01000001,S,\"Say \"\"hi\"\"\",plain\n"
                       "T3,2013-04-01,1,E01000001,S,\"x\n\n\ny\",\n"
                       "T4,2013-04-01,oops,E01000001,S,,\n"
                       "T5,2013-04-01,3,E01000001,S,,\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 4);
    Totalplace__SpendingRecord **r = fx->sink.records;
    assert_string_equal (r[0]->supplier, "Smith, Jones and Partners");
    assert_string_equal (r[0]->description, "a b");
    assert_int_equal (fx->sink.record_lines[0], 2); /* spans lines 2-4: two breaks inside */
    assert_string_equal (r[1]->supplier, "Say \"hi\"");
    assert_int_equal (r[1]->amount_pence, 100000);
    assert_int_equal (fx->sink.record_lines[1], 5);
    assert_string_equal (r[2]->supplier, "x y");
    assert_int_equal (fx->sink.record_lines[2], 6); /* spans lines 6-9 */
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 10);
    assert_string_equal (r[3]->record_id, "T5");
    assert_int_equal (fx->sink.record_lines[3], 11);
}

static void
test_blank_rows_are_skipped (void **state)
{
    fixture_t *fx = *state;
    const char *text = "\n"
                       "Transaction Number,Date,Amount,LSOA,Service\n"
                       "\n"
                       "T1,2013-04-01,1,E01000001,S\n"
                       ",,,,\n"
                       "   \n"
                       " , \"\" ,,,\n"
                       "T2,2013-04-01,2,E01000001,S";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_int_equal (fx->sink.n_rejects, 0);
    assert_int_equal (fx->sink.record_lines[0], 4);
    assert_int_equal (fx->sink.record_lines[1], 8);
    assert_int_equal (fx->stats.blank, 5);
    assert_int_equal (fx->stats.rows, 2);
}

static void
test_bad_rows_rejected_good_rows_kept (void **state)
{
    fixture_t *fx = *state;
    const char *text = "Transaction Number,Date,Amount,LSOA,Service\n"
                       "G1,2013-04-01,1.00,E01000001,S\n"
                       "B1,2013-04-01,\"12,34.5\",E01000001,S\n"
                       "B2,31/04/2013,1.00,E01000001,S\n"
                       "B3,2013-04-01,1.00,,S\n"
                       "B4,2013-04-01,1.00,E01000001,\n"
                       ",2013-04-01,1.00,E01000001,S\n"
                       "B6,2013-04-01,1.00,E01 000001,S\n"
                       "B7,,1.00,E01000001,S\n"
                       "B8,2013-04-01,,E01000001,S\n"
                       "G2,2013-04-02,2.00,E01000002,S\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->record_id, "G1");
    assert_string_equal (fx->sink.records[1]->record_id, "G2");
    assert_int_equal (fx->sink.record_lines[1], 11);

    static const struct {
        size_t line;
        const char *reason;
    } expected[] = {
        {3, "amount \"12,34.5\": thousands separator not in groups of three"},
        {4, "period \"31/04/2013\": no day 31 in April 2013"},
        {5, "neighbourhood is empty"},
        {6, "service is empty"},
        {7, "record_id is empty"},
        {8, "neighbourhood has character 0x20"},
        {9, "period is empty"},
        {10, "amount is empty"},
    };
    assert_int_equal (fx->sink.n_rejects, sizeof expected / sizeof expected[0]);
    for (size_t i = 0; i < fx->sink.n_rejects; i++) {
        assert_int_equal (fx->sink.reject_lines[i], expected[i].line);
        if (!strstr (fx->sink.reasons[i], expected[i].reason))
            fail_msg ("line %zu: \"%s\" lacks \"%s\"", expected[i].line, fx->sink.reasons[i],
                      expected[i].reason);
    }
    assert_string_equal (fx->sink.reasons[0],
                         "amount \"12,34.5\": thousands separator not in groups of three");
    assert_int_equal (fx->stats.rows, 10);
    assert_int_equal (fx->stats.records, 2);
    assert_int_equal (fx->stats.rejected, 8);
}

static void
test_revision_withdrawn_poolable (void **state)
{
    fixture_t *fx = *state;
    csv_reader_set_default_poolable (fx->reader, true);
    const char *text = "Transaction Number,Date,Amount,LSOA,Service,Revision,Withdrawn,Poolable\n"
                       "T1,2013-04-01,1,E01000001,S,,,\n"
                       "T2,2013-04-01,1,E01000001,S,2,yes,FALSE\n"
                       "T3,2013-04-01,1,E01000001,S,007,Y,no\n"
                       "T4,2013-04-01,1,E01000001,S,4294967295,true,1\n"
                       "T5,2013-04-01,1,E01000001,S,1,N,0\n"
                       "T6,2013-04-01,1,E01000001,S,1,0, True \n"
                       "X1,2013-04-01,1,E01000001,S,0,,\n"
                       "X2,2013-04-01,1,E01000001,S,abc,,\n"
                       "X3,2013-04-01,1,E01000001,S,4294967296,,\n"
                       "X4,2013-04-01,1,E01000001,S,-1,,\n"
                       "X5,2013-04-01,1,E01000001,S,1,maybe,\n"
                       "X6,2013-04-01,1,E01000001,S,1,,sometimes\n"
                       "X7,2013-04-01,1,E01000001,S,1.5,,\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 6);
    static const struct {
        uint32_t revision;
        bool withdrawn, poolable;
    } want[] = {
        {1, false, true}, /* empties: revision 1, not withdrawn, the default poolable */
        {2, true, false},  {7, true, false}, {UINT32_MAX, true, true},
        {1, false, false}, {1, false, true},
    };
    for (size_t i = 0; i < 6; i++) {
        Totalplace__SpendingRecord *r = fx->sink.records[i];
        assert_int_equal (r->revision, want[i].revision);
        assert_int_equal (r->withdrawn, want[i].withdrawn);
        assert_int_equal (r->poolable, want[i].poolable);
    }
    static const char *const reasons[] = {
        "revision \"0\"",   "revision \"abc\"",    "revision \"4294967296\"",
        "revision \"-1\"",  "withdrawn \"maybe\"", "poolable \"sometimes\"",
        "revision \"1.5\"",
    };
    assert_int_equal (fx->sink.n_rejects, 7);
    for (size_t i = 0; i < 7; i++)
        if (!strstr (fx->sink.reasons[i], reasons[i]))
            fail_msg ("\"%s\" lacks \"%s\"", fx->sink.reasons[i], reasons[i]);
}

static void
test_body_id_from_option_or_column (void **state)
{
    fixture_t *fx = *state;
    const char *text = "Body,Body ID,Transaction Number,Date,Amount,LSOA,Service\n"
                       "Testshire NHS,GB-NHS-RXX,T1,2013-04-01,1,E01000001,S\n"
                       "Testshire Council,,T2,2013-04-01,1,E01000001,S\n"
                       "Testshire Police,Not An Id,T3,2013-04-01,1,E01000001,S\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->body_id, "GB-NHS-RXX");
    assert_string_equal (fx->sink.records[1]->body_id, "GB-LAE-TST");
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_non_null (strstr (fx->sink.reasons[0], "body_id"));

    /* Without a Body ID column the "Body" column (a name) is not used. */
    assert_int_equal (read_text (fx, "Body,Transaction Number,Date,Amount,LSOA,Service\n"
                                     "Testshire NHS,T1,2013-04-01,1,E01000001,S\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_string_equal (fx->sink.records[0]->body_id, "GB-LAE-TST");
}

static void
test_default_service (void **state)
{
    fixture_t *fx = *state;
    char err[256];
    const char *text = "Transaction Number,Date,Amount,LSOA\n"
                       "T1,2013-04-01,1,E01000001\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 0);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_string_equal (fx->sink.reasons[0], "service is empty");

    assert_int_equal (csv_reader_set_default_service (fx->reader, "  ", err, sizeof err), -1);
    assert_int_equal (csv_reader_set_default_service (fx->reader, " Policing ", err, sizeof err),
                      0);
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_string_equal (fx->sink.records[0]->service, "Policing");

    /* A non-empty cell beats the default; an empty one takes it. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\n"
                                     "T1,2013-04-01,1,E01000001,Parks\n"
                                     "T2,2013-04-01,1,E01000001,\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->service, "Parks");
    assert_string_equal (fx->sink.records[1]->service, "Policing");

    assert_int_equal (csv_reader_set_default_service (fx->reader, NULL, err, sizeof err), 0);
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_rejects, 1);
}

static void
test_short_and_long_rows (void **state)
{
    fixture_t *fx = *state;
    const char *text = "Transaction Number,Date,Amount,LSOA,Service,Supplier Name,Description\n"
                       "T1,2013-04-01,1,E01000001,S\n"
                       "T2,2013-04-01,1\n"
                       "T3,2013-04-01,1,E01000001,S,Acme,Desc,,,\n"
                       "T4,2013-04-01,1,E01000001,S,Smith, J,Desc\n";
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->record_id, "T1");
    assert_string_equal (fx->sink.records[1]->record_id, "T3");
    assert_int_equal (fx->sink.n_rejects, 2);
    assert_non_null (strstr (fx->sink.reasons[0],
                             "neighbourhood is missing: the row has 3 cells and the header 7"));
    assert_int_equal (fx->sink.reject_lines[0], 3);
    assert_non_null (strstr (fx->sink.reasons[1], "column 8"));
    assert_int_equal (fx->sink.reject_lines[1], 5);
    assert_int_equal (fx->stats.short_rows, 2);
    assert_int_equal (fx->stats.long_rows, 1);
}

static void
test_callback_stops_the_read (void **state)
{
    fixture_t *fx = *state;
    fx->sink.stop_with = 7;
    fx->sink.stop_after = 2;
    const char *text = "Transaction Number,Date,Amount,LSOA,Service\n"
                       "T1,2013-04-01,1,E01000001,S\n"
                       "T2,2013-04-01,1,E01000001,S\n"
                       "T3,2013-04-01,1,E01000001,S\n";
    write_bytes (fx, text, strlen (text));
    int rc = csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink,
                                   &fx->stats, fx->err, sizeof fx->err);
    assert_int_equal (rc, 7);
    assert_int_equal (fx->sink.n_records, 2);
    assert_int_equal (fx->stats.records, 2);
    assert_non_null (strstr (fx->err, "line 3"));

    /* The rejection callback can stop the read too. */
    const char *bad = "Transaction Number,Date,Amount,LSOA,Service\n"
                      "T1,2013-04-01,1,E01000001,S\n"
                      "T2,2013-04-01,x,E01000001,S\n"
                      "T3,2013-04-01,1,E01000001,S\n"
                      "T4,2013-04-01,y,E01000001,S\n";
    clear_sink (&fx->sink);
    fx->sink.reject_stop_with = 3;
    write_bytes (fx, bad, strlen (bad));
    rc = csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink, &fx->stats,
                               fx->err, sizeof fx->err);
    assert_int_equal (rc, 3);
    assert_int_equal (fx->sink.n_records, 1);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->stats.rejected, 1);
    assert_non_null (strstr (fx->err, "line 3"));
}

static void
test_null_callbacks_count_only (void **state)
{
    fixture_t *fx = *state;
    const char *text = "Transaction Number,Date,Amount,LSOA,Service\n"
                       "T1,2013-04-01,1,E01000001,S\n"
                       "T2,2013-04-01,x,E01000001,S\n";
    write_bytes (fx, text, strlen (text));
    assert_int_equal (
        csv_reader_read_file (fx->reader, fx->path, NULL, NULL, NULL, &fx->stats, NULL, 0), 0);
    assert_int_equal (fx->stats.records, 1);
    assert_int_equal (fx->stats.rejected, 1);
}

static void
test_oversized_cells_are_rejected_and_counted (void **state)
{
    fixture_t *fx = *state;
    /* A quoted description of 200 KiB spread over 200 lines, then a normal row. */
    size_t big = 200 * 1024;
    size_t cap = big + 1024;
    char *text = malloc (cap);
    assert_non_null (text);
    size_t n = (size_t)snprintf (text, cap,
                                 "Transaction Number,Date,Amount,LSOA,Service,Description\n"
                                 "T0,2013-04-01,1,E01000001,S,short\n"
                                 "T1,2013-04-01,1,E01000001,S,\"");
    for (size_t i = 0; i < big; i++)
        text[n++] = (i % 1024 == 1023) ? '\n' : 'd';
    n += (size_t)snprintf (text + n, cap - n, "\"\nT2,2013-04-01,2,E01000001,S,after\n");
    clear_sink (&fx->sink);
    write_bytes (fx, text, n);
    free (text);
    assert_int_equal (csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink,
                                            &fx->stats, fx->err, sizeof fx->err),
                      0);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 3);
    assert_non_null (strstr (fx->sink.reasons[0], "column 6 (\"Description\") is 204800 bytes"));
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[1]->record_id, "T2");
    /* 200 line breaks inside the big cell: it spans lines 3-203. */
    assert_int_equal (fx->sink.record_lines[1], 204);
}

static void
test_oversized_row_is_rejected (void **state)
{
    fixture_t *fx = *state;
    /* Twenty unmapped cells of 60 KiB each: no cell is over its limit, the row is. */
    size_t cell = 60 * 1024;
    size_t cap = 21 * cell + 4096;
    char *text = malloc (cap);
    assert_non_null (text);
    size_t n = (size_t)snprintf (text, cap, "Transaction Number,Date,Amount,LSOA,Service");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf (text + n, cap - n, ",Notes %d", i);
    n += (size_t)snprintf (text + n, cap - n, "\nT1,2013-04-01,1,E01000001,S");
    for (int i = 0; i < 20; i++) {
        text[n++] = ',';
        memset (text + n, 'n', cell);
        n += cell;
    }
    n += (size_t)snprintf (text + n, cap - n, "\nT2,2013-04-01,1,E01000001,S\n");
    clear_sink (&fx->sink);
    write_bytes (fx, text, n);
    free (text);
    assert_int_equal (csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink,
                                            &fx->stats, fx->err, sizeof fx->err),
                      0);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_non_null (strstr (fx->sink.reasons[0], "row is"));
    assert_non_null (strstr (fx->sink.reasons[0], "over the limit"));
    assert_int_equal (fx->sink.n_records, 1);
    assert_int_equal (fx->sink.record_lines[0], 3);
}

static void
test_unclosed_quote_at_end (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\n"
                                     "T1,2013-04-01,1,E01000001,S\n"
                                     "T2,2013-04-01,1,E01000001,\"S\n"
                                     "T3,2013-04-01,1,E01000001,S\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 3);
    assert_non_null (strstr (fx->sink.reasons[0], "column 5 is never closed"));
}

static void
test_file_level_errors (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, ""), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no header row"));
    assert_int_equal (read_text (fx, "\n\n  \n"), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no header row"));

    /* A header alone is a valid, empty export. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service"), 0);
    assert_int_equal (fx->stats.rows, 0);

    write_bytes (fx, "\xFF\xFET\0r\0", 6);
    assert_int_equal (csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink,
                                            &fx->stats, fx->err, sizeof fx->err),
                      CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "UTF-16"));

    char missing[400];
    snprintf (missing, sizeof missing, "%s/no-such.csv", fx->dir);
    assert_int_equal (csv_reader_read_file (fx->reader, missing, on_record, on_reject, &fx->sink,
                                            &fx->stats, fx->err, sizeof fx->err),
                      CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "cannot open"));
    assert_non_null (strstr (fx->err, "no-such.csv"));
}

static void
test_read_stream (void **state)
{
    fixture_t *fx = *state;
    static char text[] = "Transaction Number,Date,Amount,LSOA,Service\n"
                         "T1,2013-04-01,1,E01000001,S\n";
    FILE *stream = fmemopen (text, strlen (text), "r");
    assert_non_null (stream);
    clear_sink (&fx->sink);
    assert_int_equal (csv_reader_read_stream (fx->reader, stream, "stdin", on_record, on_reject,
                                              &fx->sink, &fx->stats, fx->err, sizeof fx->err),
                      0);
    fclose (stream);
    assert_int_equal (fx->sink.n_records, 1);

    static char bad[] = "Date,Amount\n";
    stream = fmemopen (bad, strlen (bad), "r");
    assert_non_null (stream);
    assert_int_equal (csv_reader_read_stream (fx->reader, stream, "stdin", on_record, on_reject,
                                              &fx->sink, &fx->stats, fx->err, sizeof fx->err),
                      CSV_READER_ERR);
    fclose (stream);
    assert_int_equal (strncmp (fx->err, "stdin: ", 7), 0);
}

static void
test_new_refuses_bad_body_id (void **state)
{
    (void)state;
    char err[256];
    assert_null (csv_reader_new ("", err, sizeof err));
    assert_null (csv_reader_new ("GB LAE", err, sizeof err));
    assert_non_null (strstr (err, "\"GB LAE\""));
    char long_id[100];
    memset (long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_null (csv_reader_new (long_id, err, sizeof err));
    csv_reader_t *reader = csv_reader_new ("GB-LAE-BNS", err, sizeof err);
    assert_non_null (reader);
    csv_reader_destroy (&reader);
    assert_null (reader);
    csv_reader_destroy (&reader);
    csv_reader_destroy (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_transparency_code_export, setup, teardown),
        cmocka_unit_test_setup_teardown (test_header_case_and_spaces, setup, teardown),
        cmocka_unit_test_setup_teardown (test_first_listed_header_wins, setup, teardown),
        cmocka_unit_test_setup_teardown (test_duplicate_header_is_a_file_error, setup, teardown),
        cmocka_unit_test_setup_teardown (test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown (test_map_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown (test_missing_required_column, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bom_and_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown (test_old_mac_line_endings, setup, teardown),
        cmocka_unit_test_setup_teardown (test_quoted_commas_and_newlines, setup, teardown),
        cmocka_unit_test_setup_teardown (test_blank_rows_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_rows_rejected_good_rows_kept, setup, teardown),
        cmocka_unit_test_setup_teardown (test_revision_withdrawn_poolable, setup, teardown),
        cmocka_unit_test_setup_teardown (test_body_id_from_option_or_column, setup, teardown),
        cmocka_unit_test_setup_teardown (test_default_service, setup, teardown),
        cmocka_unit_test_setup_teardown (test_short_and_long_rows, setup, teardown),
        cmocka_unit_test_setup_teardown (test_callback_stops_the_read, setup, teardown),
        cmocka_unit_test_setup_teardown (test_null_callbacks_count_only, setup, teardown),
        cmocka_unit_test_setup_teardown (test_oversized_cells_are_rejected_and_counted, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_oversized_row_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_unclosed_quote_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown (test_file_level_errors, setup, teardown),
        cmocka_unit_test_setup_teardown (test_read_stream, setup, teardown),
        cmocka_unit_test (test_new_refuses_bad_body_id),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
