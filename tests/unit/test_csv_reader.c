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
    export_summary_t *summary; /* of the last read_text */
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
    export_summary_destroy (&fx->summary);
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
    export_summary_destroy (&fx->summary);
    fx->summary = export_summary_new ();
    assert_non_null (fx->summary);
    return csv_reader_read_file (fx->reader, fx->path, on_record, on_reject, &fx->sink, &fx->stats,
                                 fx->summary, fx->err, sizeof fx->err);
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
test_duplicate_header_reads_the_first_and_says_so (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,amount,LSOA,Service\n"
                                     "T1,2013-04-01,1,2,E01000001,S\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_int_equal (fx->sink.records[0]->amount_pence, 100);
    const csv_layout_t *layout = export_summary_layout (fx->summary);
    assert_non_null (layout);
    assert_int_equal (csv_layout_note_count (layout), 1);
    const char *note = csv_layout_note (layout, 0);
    assert_non_null (strstr (note, "amount: columns 3 and 4 are both headed"));
    assert_non_null (strstr (note, "reading column 3"));
    assert_non_null (strstr (note, "columns/amount = #4"));

    /* The position chooses the other one. */
    char err[256];
    assert_int_equal (csv_reader_map (fx->reader, "amount", "#4", err, sizeof err), 0);
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,amount,LSOA,Service\n"
                                     "T1,2013-04-01,1,2,E01000001,S\n"),
                      0);
    assert_int_equal (fx->sink.records[0]->amount_pence, 200);
    assert_int_equal (csv_layout_note_count (export_summary_layout (fx->summary)), 0);
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
    assert_non_null (strstr (
        fx->err, "no column for supplier: none of \"Payee\" (columns/supplier) is in the header"));
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
        {8, "neighbourhood \"E01 000001\" has character 0x20 at byte 4"},
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
    /* With a default service, T2 gets as far as its neighbourhood, which is checked last. */
    assert_int_equal (csv_reader_set_default_service (fx->reader, "Other", fx->err, sizeof fx->err),
                      0);
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->record_id, "T1");
    assert_string_equal (fx->sink.records[1]->record_id, "T3");
    assert_int_equal (fx->sink.n_rejects, 2);
    assert_non_null (strstr (fx->sink.reasons[0], "no neighbourhood: neighbourhood is missing: the "
                                                  "row has 3 cells and the header 7"));
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
                                   &fx->stats, NULL, fx->err, sizeof fx->err);
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
                               NULL, fx->err, sizeof fx->err);
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
        csv_reader_read_file (fx->reader, fx->path, NULL, NULL, NULL, &fx->stats, NULL, NULL, 0),
        0);
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
                                            &fx->stats, NULL, fx->err, sizeof fx->err),
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
                                            &fx->stats, NULL, fx->err, sizeof fx->err),
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
                                            &fx->stats, NULL, fx->err, sizeof fx->err),
                      CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "UTF-16"));

    char missing[400];
    snprintf (missing, sizeof missing, "%s/no-such.csv", fx->dir);
    assert_int_equal (csv_reader_read_file (fx->reader, missing, on_record, on_reject, &fx->sink,
                                            &fx->stats, NULL, fx->err, sizeof fx->err),
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
                                              &fx->sink, &fx->stats, NULL, fx->err, sizeof fx->err),
                      0);
    fclose (stream);
    assert_int_equal (fx->sink.n_records, 1);

    static char bad[] = "Date,Amount\n";
    stream = fmemopen (bad, strlen (bad), "r");
    assert_non_null (stream);
    assert_int_equal (csv_reader_read_stream (fx->reader, stream, "stdin", on_record, on_reject,
                                              &fx->sink, &fx->stats, NULL, fx->err, sizeof fx->err),
                      CSV_READER_ERR);
    fclose (stream);
    assert_int_equal (strncmp (fx->err, "stdin: ", 7), 0);
}

/* ---------------------------------------------------------------- real exports: ids, lookups */

/* Writes a lookup file beside the export, loads it and removes the file (it lives in memory). */
static area_lookup_t *
lookup_from (fixture_t *fx, const char *text, const area_lookup_options_t *options)
{
    char path[400];
    snprintf (path, sizeof path, "%s/lookup.csv", fx->dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_int_equal (fputs (text, f) >= 0, 1);
    assert_int_equal (fclose (f), 0);
    area_lookup_t *lookup = area_lookup_load (path, options, fx->err, sizeof fx->err);
    if (!lookup)
        fail_msg ("lookup refused: %s", fx->err);
    unlink (path);
    return lookup;
}

static const char unit_lookup[] = "Organisational Unit,Neighbourhood,Weight\n"
                                  "Asset Management,E01007308,\n"
                                  "Councilwide,E01007310,1705\n"
                                  "Councilwide,E01007304,1612\n"
                                  "Councilwide,E01007309,1550\n"
                                  "Councilwide,E01007305,1498\n"
                                  "Parks,E01007306,\n";

/* Gives the reader the unit lookup above on column "Organisational Unit" (max parts first). */
static void
use_unit_lookup (fixture_t *fx, size_t max_parts)
{
    assert_int_equal (csv_reader_set_max_parts (fx->reader, max_parts, fx->err, sizeof fx->err), 0);
    area_lookup_t *lookup =
        lookup_from (fx, unit_lookup,
                     &(area_lookup_options_t){.key_columns = "Organisational Unit",
                                              .code_columns = "Neighbourhood",
                                              .weight_columns = "Weight",
                                              .max_parts = max_parts});
    assert_int_equal (
        csv_reader_set_lookup (fx->reader, "Organisational Unit", &lookup, fx->err, sizeof fx->err),
        0);
    assert_null (lookup);
}

static void
use_postcode_lookup (fixture_t *fx)
{
    area_lookup_t *lookup = lookup_from (fx,
                                         "pcd,pcds,lsoa11\n"
                                         "S70  2TN,S70 2TN,E01007307\n"
                                         "S75  1AA,S75 1AA,E01007311\n",
                                         &(area_lookup_options_t){.key_columns = "pcds, pcd",
                                                                  .code_columns = "lsoa11",
                                                                  .postcodes = true,
                                                                  .max_parts = 1});
    assert_int_equal (csv_reader_set_postcode_lookup (fx->reader, &lookup, fx->err, sizeof fx->err),
                      0);
    assert_null (lookup);
}

/* The council layout of docs/input-format.md: no ids, no neighbourhoods, identical rows, a credit.
 */
static const char council_export[] =
    "Organisational Unit,Payment Date,Amount,Beneficiary Name\n"
    "Asset Management,2014-04-23,15926.59,BERMAR BUILDING CO LTD\n"
    "Councilwide,2014-04-14,-8200.95,BRITISH GAS TRADING LTD\n"
    "Asset Management,2014-04-23,15926.59,BERMAR BUILDING CO LTD\n";

static void
test_council_layout_derived_ids_and_parts (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (csv_reader_map (fx->reader, "record_id", "", fx->err, sizeof fx->err), 0);
    use_unit_lookup (fx, 4);
    assert_int_equal (read_text (fx, council_export), 0);
    assert_int_equal (fx->sink.n_rejects, 0);
    assert_int_equal (fx->sink.n_records, 6);

    Totalplace__SpendingRecord **r = fx->sink.records;
    /* Line 2: one record, the first of its content. */
    assert_int_equal (strncmp (r[0]->record_id, "d:", 2), 0);
    assert_int_equal (strlen (r[0]->record_id), 36);
    assert_string_equal (r[0]->record_id + 34, "#1");
    assert_string_equal (r[0]->neighbourhood, "E01007308");
    assert_string_equal (r[0]->service, "Asset Management");
    assert_string_equal (r[0]->supplier, "BERMAR BUILDING CO LTD");
    assert_string_equal (r[0]->period, "2014-04");
    assert_int_equal (r[0]->amount_pence, 1592659);
    /* Line 3: four parts in code order, split by population, summing to the credit. */
    const char *codes[] = {"E01007304", "E01007305", "E01007309", "E01007310"};
    const int64_t pence[] = {-207697, -193009, -199709, -219680};
    int64_t total = 0;
    for (size_t k = 0; k < 4; k++) {
        char id[64];
        snprintf (id, sizeof id, "%.36s/%zu", r[1]->record_id, k + 1);
        assert_string_equal (r[1 + k]->record_id, id);
        assert_string_equal (r[1 + k]->neighbourhood, codes[k]);
        assert_int_equal (r[1 + k]->amount_pence, pence[k]);
        assert_false (r[1 + k]->withdrawn);
        assert_int_equal (fx->sink.record_lines[1 + k], 3);
        total += r[1 + k]->amount_pence;
    }
    assert_int_equal (total, -820095);
    /* Line 4: the same content as line 2, the second occurrence. */
    assert_int_equal (strncmp (r[5]->record_id, r[0]->record_id, 34), 0);
    assert_string_equal (r[5]->record_id + 34, "#2");

    assert_int_equal (fx->stats.rows, 3);
    assert_int_equal (fx->stats.records, 6);
    assert_int_equal (fx->stats.by_lookup, 3);
    assert_int_equal (fx->stats.apportioned, 1);
    assert_int_equal (fx->stats.derived_ids, 3);
    assert_int_equal (fx->stats.placeholders, 0);
}

/* The ids of a read, sorted, joined into one string. */
static int
compare_strings (const void *a, const void *b)
{
    return strcmp (*(const char *const *)a, *(const char *const *)b);
}

static void
sorted_ids (fixture_t *fx, char *out, size_t out_len)
{
    const char *ids[MAX_SEEN];
    for (size_t i = 0; i < fx->sink.n_records; i++)
        ids[i] = fx->sink.records[i]->record_id;
    qsort (ids, fx->sink.n_records, sizeof ids[0], compare_strings);
    out[0] = '\0';
    for (size_t i = 0; i < fx->sink.n_records; i++) {
        strncat (out, ids[i], out_len - strlen (out) - 1);
        strncat (out, " ", out_len - strlen (out) - 1);
    }
}

static void
test_derived_ids_are_stable (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (csv_reader_map (fx->reader, "record_id", "", fx->err, sizeof fx->err), 0);
    use_unit_lookup (fx, 4);
    char first[4096], again[4096];
    assert_int_equal (read_text (fx, council_export), 0);
    sorted_ids (fx, first, sizeof first);

    /* The same export read again. */
    assert_int_equal (read_text (fx, council_export), 0);
    sorted_ids (fx, again, sizeof again);
    assert_string_equal (first, again);

    /* Re-issued: rows reordered, dates and amounts written differently, case and spacing
     * changed, an empty column added: the same payments, the same ids. */
    assert_int_equal (
        read_text (fx, "Payment Date,Organisational Unit,Amount,Beneficiary Name,Notes\n"
                       "23/04/2014,ASSET MANAGEMENT,\"£15,926.59\",Bermar Building Co Ltd,\n"
                       "23-Apr-14,Asset  Management,15926.590,BERMAR BUILDING CO LTD ,\n"
                       "2014-04-14 00:00:00,councilwide,(8200.95),British Gas Trading Ltd,\n"),
        0);
    sorted_ids (fx, again, sizeof again);
    assert_string_equal (first, again);

    /* A changed lookup moves nothing it should not: ids stay, only neighbourhoods change. */
    area_lookup_t *moved = lookup_from (
        fx,
        "Organisational Unit,Neighbourhood\nAsset Management,E01000001\n"
        "Councilwide,E01000002\n",
        &(area_lookup_options_t){
            .key_columns = "Organisational Unit", .code_columns = "Neighbourhood", .max_parts = 4});
    assert_int_equal (
        csv_reader_set_lookup (fx->reader, "Organisational Unit", &moved, fx->err, sizeof fx->err),
        0);
    assert_int_equal (read_text (fx, council_export), 0);
    assert_int_equal (fx->sink.n_records, 3);
    assert_string_equal (fx->sink.records[0]->neighbourhood, "E01000001");
    assert_int_equal (strncmp (fx->sink.records[0]->record_id, first, 36), 0);
    /* The unsplit credit takes the id its parts were numbered under. */
    assert_non_null (strstr (first, fx->sink.records[1]->record_id));

    /* An edited row is another payment: a new id. */
    assert_int_equal (read_text (fx,
                                 "Organisational Unit,Payment Date,Amount,Beneficiary Name\n"
                                 "Asset Management,2014-04-23,15926.60,BERMAR BUILDING CO LTD\n"),
                      0);
    assert_null (strstr (first, fx->sink.records[0]->record_id));
}

static void
test_placement_first_match_wins (void **state)
{
    fixture_t *fx = *state;
    use_unit_lookup (fx, 4);
    use_postcode_lookup (fx);
    /* Organisational Unit is also the service: T5 needs a default one to reach placement. */
    assert_int_equal (
        csv_reader_set_default_service (fx->reader, "Council", fx->err, sizeof fx->err), 0);
    const char *text = "Transaction Number,Date,Amount,Organisational Unit,Neighbourhood,Postcode\n"
                       "T1,2014-04-01,1.00,Parks,E01000099,S70 2TN\n" /* its own cell wins */
                       "T2,2014-04-01,2.00,Parks,,S70 2TN\n"          /* then the lookup */
                       "T3,2014-04-01,3.00,Mystery Unit,,s75 1aa\n"   /* then the postcode */
                       "T4,2014-04-01,4.00,Mystery Unit,,ZZ1 1ZZ\n"   /* nothing: rejected */
                       "T5,2014-04-01,5.00,,,\n"                      /* nothing at all */
                       "T6,2014-04-01,6.00,Councilwide,,S70 2TN\n";   /* the lookup, split */
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 3 + 4);
    assert_string_equal (fx->sink.records[0]->neighbourhood, "E01000099");
    assert_string_equal (fx->sink.records[1]->neighbourhood, "E01007306");
    assert_string_equal (fx->sink.records[2]->neighbourhood, "E01007311");
    assert_string_equal (fx->sink.records[3]->record_id, "T6/1");
    assert_int_equal (fx->sink.n_rejects, 2);
    assert_int_equal (fx->sink.reject_lines[0], 5);
    assert_string_equal (fx->sink.reasons[0],
                         "no neighbourhood: neighbourhood is empty; Organisational Unit "
                         "\"Mystery Unit\" is not in the lookup; postcode \"ZZ1 1ZZ\" is not in "
                         "the postcode lookup");
    assert_int_equal (fx->sink.reject_lines[1], 6);
    assert_string_equal (fx->sink.reasons[1],
                         "no neighbourhood: neighbourhood is empty; Organisational Unit is "
                         "empty; postcode is empty");
    assert_int_equal (fx->stats.by_column, 1);
    assert_int_equal (fx->stats.by_lookup, 2);
    assert_int_equal (fx->stats.by_postcode, 1);
    assert_int_equal (fx->stats.rejected, 2);
    assert_int_equal (fx->stats.rows, fx->stats.by_column + fx->stats.by_lookup +
                                          fx->stats.by_postcode + fx->stats.rejected);
    assert_int_equal (fx->stats.derived_ids, 0);
}

/* Finds a record of the read by id. */
static Totalplace__SpendingRecord *
record_named (fixture_t *fx, const char *id)
{
    for (size_t i = 0; i < fx->sink.n_records; i++)
        if (strcmp (fx->sink.records[i]->record_id, id) == 0)
            return fx->sink.records[i];
    fail_msg ("no record %s", id);
    return NULL;
}

static void
expect (fixture_t *fx, const char *id, const char *neighbourhood, int64_t pence, bool withdrawn,
        uint32_t revision)
{
    Totalplace__SpendingRecord *r = record_named (fx, id);
    assert_string_equal (r->neighbourhood, neighbourhood);
    assert_int_equal (r->amount_pence, pence);
    assert_int_equal (r->withdrawn, withdrawn);
    assert_int_equal (r->revision, revision);
}

static void
test_corrections_carry_the_whole_family (void **state)
{
    fixture_t *fx = *state;
    use_unit_lookup (fx, 5);
    const char *text = "Transaction Number,Date,Amount,Organisational Unit,Revision,Withdrawn\n"
                       "T1,2014-04-01,100.00,Councilwide,,\n"
                       "T2,2014-04-01,100.00,Councilwide,2,\n"
                       "T3,2014-04-01,7.00,Parks,2,no\n"
                       "T4,2014-04-01,100.00,Councilwide,3,yes\n"
                       "T5,2014-04-01,7.00,Parks,,\n";
    assert_int_equal (read_text (fx, text), 0);
    /* T1 (first revision): its 4 parts and a placeholder for part 5, no bare id. */
    expect (fx, "T1/1", "E01007304", 2533, false, 1);
    expect (fx, "T1/4", "E01007310", 2679, false, 1);
    expect (fx, "T1/5", "E01007304", 0, true, 1);
    /* T2 (a correction): the bare id and part 5 withdrawn, parts 1-4 live. */
    expect (fx, "T2", "E01007304", 0, true, 2);
    expect (fx, "T2/1", "E01007304", 2533, false, 2);
    expect (fx, "T2/2", "E01007305", 2353, false, 2);
    expect (fx, "T2/3", "E01007309", 2435, false, 2);
    expect (fx, "T2/4", "E01007310", 2679, false, 2);
    expect (fx, "T2/5", "E01007304", 0, true, 2);
    /* T3 (a correction to one neighbourhood): the bare id live, every part withdrawn. */
    expect (fx, "T3", "E01007306", 700, false, 2);
    for (int k = 1; k <= 5; k++) {
        char id[16];
        snprintf (id, sizeof id, "T3/%d", k);
        expect (fx, id, "E01007306", 0, true, 2);
    }
    /* T4 (a withdrawal): everything withdrawn. */
    expect (fx, "T4", "E01007304", 0, true, 3);
    expect (fx, "T4/2", "E01007305", 2353, true, 3);
    expect (fx, "T4/5", "E01007304", 0, true, 3);
    /* T5 (first revision, one neighbourhood): one record. */
    expect (fx, "T5", "E01007306", 700, false, 1);
    assert_int_equal (fx->sink.n_records, 5 + 6 + 6 + 6 + 1);
    for (size_t i = 0; i < fx->sink.n_records; i++)
        assert_null (strstr (fx->sink.records[i]->record_id, "T1/6"));
    assert_false (strcmp (fx->sink.records[0]->record_id, "T1") == 0);
    assert_int_equal (fx->stats.placeholders, 1 + 2 + 5 + 2);
    assert_int_equal (fx->stats.apportioned, 3);

    /* Without room for the lookup's four parts the lookup is refused and kept by the caller. */
    csv_reader_t *small = csv_reader_new ("GB-LAE-TST", fx->err, sizeof fx->err);
    assert_non_null (small);
    area_lookup_t *lookup =
        lookup_from (fx, unit_lookup,
                     &(area_lookup_options_t){.key_columns = "Organisational Unit",
                                              .code_columns = "Neighbourhood",
                                              .weight_columns = "Weight",
                                              .max_parts = 4});
    assert_int_equal (
        csv_reader_set_lookup (small, "Organisational Unit", &lookup, fx->err, sizeof fx->err), -1);
    assert_non_null (strstr (fx->err, "4 neighbourhoods, more than max parts 1"));
    assert_non_null (lookup);
    assert_int_equal (csv_reader_set_postcode_lookup (small, &lookup, fx->err, sizeof fx->err), -1);
    assert_non_null (lookup);
    assert_int_equal (csv_reader_set_lookup (small, " ", &lookup, fx->err, sizeof fx->err), -1);
    assert_int_equal (csv_reader_set_max_parts (small, 4, fx->err, sizeof fx->err), 0);
    assert_int_equal (
        csv_reader_set_lookup (small, "Organisational Unit", &lookup, fx->err, sizeof fx->err), 0);
    assert_null (lookup);
    assert_int_equal (csv_reader_set_max_parts (small, 3, fx->err, sizeof fx->err), -1);
    assert_int_equal (csv_reader_set_max_parts (small, 0, fx->err, sizeof fx->err), -1);
    /* NULL removes the lookup. */
    assert_int_equal (csv_reader_set_lookup (small, NULL, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal (csv_reader_set_max_parts (small, 1, fx->err, sizeof fx->err), 0);
    csv_reader_destroy (&small);
}

static void
test_part_ids_must_fit (void **state)
{
    fixture_t *fx = *state;
    use_unit_lookup (fx, 4);
    char text[1024], id[130];
    memset (id, 'x', 127);
    id[127] = '\0';
    snprintf (text, sizeof text,
              "Transaction Number,Date,Amount,Organisational Unit\n"
              "%s,2014-04-01,1.00,Councilwide\n"
              "%s,2014-04-01,1.00,Parks\n",
              id, id);
    assert_int_equal (read_text (fx, text), 0);
    assert_int_equal (fx->sink.n_records, 1); /* one neighbourhood: no part number needed */
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_non_null (strstr (fx->sink.reasons[0], "too long to number its parts"));
    assert_int_equal (fx->sink.reject_lines[0], 2);
}

static void
test_lookup_file_level_errors (void **state)
{
    fixture_t *fx = *state;
    use_unit_lookup (fx, 4);
    /* The lookup's column must be in the file. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,Cost Centre\n"
                                     "T1,2014-04-01,1,CC1\n"),
                      CSV_READER_ERR);
    assert_non_null (strstr (
        fx->err, "no column \"Organisational Unit\", which the neighbourhood lookup reads"));
    assert_int_equal (fx->sink.n_records, 0);

    /* Without lookups a file needs its neighbourhood column... */
    csv_reader_destroy (&fx->reader);
    fx->reader = csv_reader_new ("GB-LAE-TST", fx->err, sizeof fx->err);
    assert_non_null (fx->reader);
    assert_int_equal (read_text (fx, council_export), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no record_id column"));
    assert_non_null (strstr (fx->err, "no neighbourhood column"));
    assert_non_null (strstr (fx->err, "\"Ward Code\""));
    /* ...and a neighbourhood read from no column needs a lookup. */
    assert_int_equal (csv_reader_map (fx->reader, "neighbourhood", "", fx->err, sizeof fx->err), 0);
    assert_int_equal (csv_reader_map (fx->reader, "record_id", "", fx->err, sizeof fx->err), 0);
    assert_int_equal (read_text (fx, council_export), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no way to a neighbourhood"));
    /* A postcode lookup is enough when the file has a postcode column. */
    use_postcode_lookup (fx);
    assert_int_equal (read_text (fx, council_export), CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "no postcode column"));
    assert_int_equal (read_text (fx, "Payment Date,Amount,Postcode,Service\n"
                                     "2014-04-01,5.00,S70 2TN,Housing\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_string_equal (fx->sink.records[0]->neighbourhood, "E01007307");
    assert_int_equal (fx->stats.by_postcode, 1);
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

/* ---------------------------------------------------------------- published layouts */

static void
test_header_variants_councils_publish (void **state)
{
    fixture_t *fx = *state;
    /* Underscores, a trailing full stop and "Trans No" / "Paid Date" as councils write them. */
    assert_int_equal (read_text (fx, "trans_no,paid_date,AMOUNT,lsoa,Service Area\n"
                                     "46281108_1,07/04/2015,1054.11,E01000001,Grants\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_string_equal (fx->sink.records[0]->record_id, "46281108_1");
    assert_string_equal (fx->sink.records[0]->period, "2015-04");
    assert_int_equal (read_text (fx, "Transaction No.,Date,Amount,LSOA,Service\n"
                                     "T1,2015-04-07,1,E01000001,S\n"),
                      0);
    assert_string_equal (fx->sink.records[0]->record_id, "T1");
}

static void
test_period_column_beside_a_real_date (void **state)
{
    fixture_t *fx = *state;
    /* "Period" holds a fiscal period; the date is in "Trans Date", which the defaults prefer. */
    assert_int_equal (read_text (fx, "Transaction Number,Period,Trans Date,Amount,LSOA,Service\n"
                                     "T1,201501,02/05/2014,10.00,E01000001,S\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_string_equal (fx->sink.records[0]->period, "2014-05");
    char described[256];
    csv_layout_describe (export_summary_layout (fx->summary), CSV_FIELD_PERIOD, described,
                         sizeof described);
    assert_string_equal (described, "column 3 \"Trans Date\"");
    size_t others[4];
    assert_int_equal (csv_layout_other_candidates (export_summary_layout (fx->summary),
                                                   CSV_FIELD_PERIOD, others, 4),
                      1);
    assert_int_equal (others[0], 1); /* "Period" */
}

static void
test_candidates_follow_a_changing_header (void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal (csv_reader_map (fx->reader, "service",
                                      "Organisational Unit, Organisatonal Unit, #1", err,
                                      sizeof err),
                      0);
    /* Quarter 1 spells it one way, quarter 2 with the council's typo, quarter 3 not at all. */
    assert_int_equal (read_text (fx, "Organisational Unit,Trans No,Date,Amount,LSOA\n"
                                     "Housing,T1,2015-04-01,1,E01000001\n"),
                      0);
    assert_string_equal (fx->sink.records[0]->service, "Housing");
    assert_int_equal (read_text (fx, "Organisatonal Unit,Trans No,Date,Amount,LSOA\n"
                                     "Finance,T2,2015-07-01,1,E01000001\n"),
                      0);
    assert_string_equal (fx->sink.records[0]->service, "Finance");
    assert_int_equal (read_text (fx, "Unit Name,Trans No,Date,Amount,LSOA\n"
                                     "Parks,T3,2015-10-01,1,E01000001\n"),
                      0);
    assert_string_equal (fx->sink.records[0]->service, "Parks");
    /* Refusals name the key. */
    assert_int_equal (csv_reader_map (fx->reader, "service", "A + B", err, sizeof err), -1);
    assert_non_null (strstr (err, "only record_id may join"));
    assert_int_equal (csv_reader_map (fx->reader, "amount", "#0", err, sizeof err), -1);
    assert_non_null (strstr (err, "count from #1"));
    assert_int_equal (csv_reader_map (fx->reader, "amount", "Net,,Gross", err, sizeof err), -1);
    assert_non_null (strstr (err, "columns/amount: an empty header name"));
    assert_int_equal (csv_reader_map (fx->reader, "amount", "\"Amount, net", err, sizeof err), -1);
    assert_non_null (strstr (err, "not closed"));
    assert_int_equal (csv_reader_map (fx->reader, "amount", "\"Amount, net\"", err, sizeof err), 0);
    assert_int_equal (read_text (fx, "Unit Name,Trans No,Date,\"Amount, net\",LSOA\n"
                                     "Parks,T3,2015-10-01,7.5,E01000001\n"),
                      0);
    assert_int_equal (fx->sink.records[0]->amount_pence, 750);
}

static void
test_composite_record_ids (void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal (csv_reader_map (fx->reader, "record_id", "Trans No + Line", err, sizeof err),
                      0);
    assert_int_equal (read_text (fx, "Trans No,Line,Date,Amount,LSOA,Service\n"
                                     "T1,1,2015-04-01,1,E01000001,S\n"
                                     "T1,2,2015-04-01,2,E01000001,S\n"
                                     "T2,,2015-04-01,3,E01000001,S\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 2);
    assert_string_equal (fx->sink.records[0]->record_id, "T1+1");
    assert_string_equal (fx->sink.records[1]->record_id, "T1+2");
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 4);
    assert_non_null (
        strstr (fx->sink.reasons[0], "record_id is incomplete: column 2 \"Line\" is empty"));
    assert_int_equal (fx->stats.repeated_ids, 0);
}

static const char invoice_lines[] =
    "Transaction No,Date,Amount,Supplier Name,Expenses Type,LSOA,Service\n"
    "T1,2015-04-01,100.00,ACME,Paper,E01000001,S\n" /* 2 */
    "T1,2015-04-01,25.50,ACME,Ink,E01000001,S\n"    /* 3: another line of T1 */
    "T1,2015-04-01,25.50,ACME,Ink,E01000001,S\n"    /* 4: an identical line */
    "T2,2015-04-02,9.99,BETA,Tea,E01000002,S\n"     /* 5 */
    "T2,2015-04-02,9.99,BETA,Tea,E01000002,S\n";    /* 6: a copy of 5 */

static void
test_repeated_ids_are_held (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (read_text (fx, invoice_lines), 0);
    assert_int_equal (fx->stats.rows, 5);
    assert_int_equal (fx->stats.repeated_ids, 1);     /* T1 */
    assert_int_equal (fx->stats.repeated_id_rows, 2); /* lines 3 and 4 differ from line 2 */
    assert_int_equal (fx->stats.copies, 1);           /* line 6 = line 5 */
    assert_int_equal (export_summary_warning_count (fx->summary, EXPORT_WARN_COPY), 1);
    size_t line = 0;
    const char *copy = export_summary_warning_example (fx->summary, EXPORT_WARN_COPY, 0, &line);
    assert_int_equal (line, 6);
    assert_non_null (strstr (copy, "as line 5"));
    assert_int_equal (export_summary_repeat_examples (fx->summary), 1);
    const export_repeat_t *repeat = export_summary_repeat_example (fx->summary, 0);
    assert_string_equal (repeat->id, "T1");
    assert_int_equal (repeat->first_line, 2);
    assert_int_equal (repeat->line, 3);

    export_policy_t policy = {.max_rejected_percent = 50,
                              .hold_repeated_ids = true,
                              .config = "/etc/totalplace/agent-bns.conf"};
    char *note = NULL;
    assert_int_equal (export_summary_verdict (fx->summary, &policy, &note), EXPORT_HOLD);
    assert_non_null (note);
    assert_non_null (strstr (note, "\"T1\" on lines 2 and 3"));
    assert_non_null (
        strstr (note, "set input/repeated_ids = lines in /etc/totalplace/agent-bns.conf"));
    assert_non_null (strstr (note, "record_id is read from column 1 \"Transaction No\""));
    free (note);

    /* A record's key is its body and id: the same number in two bodies is no repeat. */
    assert_int_equal (read_text (fx, "Body ID,Transaction No,Date,Amount,LSOA,Service\n"
                                     "GB-A,T1,2015-04-01,1,E01000001,S\n"
                                     "GB-B,T1,2015-04-01,2,E01000001,S\n"),
                      0);
    assert_int_equal (fx->stats.repeated_ids, 0);
    assert_int_equal (fx->stats.copies, 0);
    assert_int_equal (export_summary_verdict (fx->summary, &policy, &note), EXPORT_DELIVER);
}

/* The ids of invoice_lines in lines mode, sorted, as one string. */
static void
line_ids (fixture_t *fx, const char *text, char *out, size_t out_len)
{
    assert_int_equal (read_text (fx, text), 0);
    const char *ids[MAX_SEEN];
    for (size_t i = 0; i < fx->sink.n_records; i++)
        ids[i] = fx->sink.records[i]->record_id;
    for (size_t i = 0; i < fx->sink.n_records; i++)
        for (size_t j = i + 1; j < fx->sink.n_records; j++)
            if (strcmp (ids[j], ids[i]) < 0) {
                const char *t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
            }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < fx->sink.n_records; i++)
        used += (size_t)snprintf (out + used, out_len - used, "%s ", ids[i]);
}

static void
test_repeated_ids_as_lines (void **state)
{
    fixture_t *fx = *state;
    csv_reader_set_repeated_ids (fx->reader, CSV_REPEATED_IDS_LINES);
    char first[2048], again[2048];
    line_ids (fx, invoice_lines, first, sizeof first);
    assert_int_equal (fx->sink.n_records, 5);
    assert_int_equal (fx->stats.line_ids, 5);
    assert_int_equal (fx->stats.repeated_ids, 0);
    assert_int_equal (fx->stats.copies, 0);
    /* Every line is a payment of its own: T1 has three ids, the identical lines #1 and #2. */
    int64_t sum = 0;
    for (size_t i = 0; i < fx->sink.n_records; i++) {
        const char *id = fx->sink.records[i]->record_id;
        assert_true (strncmp (id, "T1~", 3) == 0 || strncmp (id, "T2~", 3) == 0);
        assert_int_equal (strlen (strchr (id, '~') + 1), 12 + 2);
        sum += fx->sink.records[i]->amount_pence;
    }
    assert_int_equal (sum, 10000 + 2550 + 2550 + 999 + 999);
    assert_string_equal (strchr (fx->sink.records[2]->record_id, '#'), "#2");
    assert_memory_equal (fx->sink.records[1]->record_id, fx->sink.records[2]->record_id,
                         strlen (fx->sink.records[1]->record_id) - 1);
    assert_string_not_equal (fx->sink.records[0]->record_id, fx->sink.records[1]->record_id);

    /* The same file again, and its rows in another order, give the same ids. */
    line_ids (fx, invoice_lines, again, sizeof again);
    assert_string_equal (first, again);
    line_ids (fx,
              "Transaction No,Date,Amount,Supplier Name,Expenses Type,LSOA,Service\n"
              "T2,2015-04-02,9.99,BETA,Tea,E01000002,S\n"
              "T1,2015-04-01,25.50,ACME,Ink,E01000001,S\n"
              "T2,02/04/2015,9.99,BETA,Tea,E01000002,S\n"
              "T1,2015-04-01,100.00,ACME,Paper,E01000001,S\n"
              "T1,2015-04-01,25.5,acme,Ink,E01000001,S\n",
              again, sizeof again);
    assert_string_equal (first, again);

    /* A withdrawal of one line keeps its id. */
    assert_int_equal (read_text (fx, "Transaction No,Date,Amount,Supplier Name,Expenses Type,LSOA,"
                                     "Service,Revision,Withdrawn\n"
                                     "T1,2015-04-01,25.50,ACME,Ink,E01000001,S,2,yes\n"),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    assert_non_null (strstr (first, fx->sink.records[0]->record_id));
    assert_true (fx->sink.records[0]->withdrawn);
}

static void
test_totals_rows_are_recognised (void **state)
{
    fixture_t *fx = *state;
    /* A raw export: CRLF, the file's own total on the last line, no id and no date. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\r\n"
                                     "T1,2015-04-01,100.10,E01000001,S\r\n"
                                     "T2,2015-04-01,-0.10,E01000001,S\r\n"
                                     "T3,2015-04-01,abc,E01000001,S\r\n" /* no amount: not summed */
                                     "T4,2015-04-01,50.00,,S\r\n"        /* rejected, summed */
                                     ",,150.00,,\r\n"),
                      0);
    assert_int_equal (fx->stats.totals_rows, 1);
    assert_int_equal (fx->stats.rows, 4);
    assert_int_equal (fx->stats.rejected, 2);
    assert_int_equal (fx->sink.n_rejects, 2);
    assert_int_equal (export_summary_warning_count (fx->summary, EXPORT_WARN_TOTALS_ROW), 1);
    size_t line = 0;
    const char *text =
        export_summary_warning_example (fx->summary, EXPORT_WARN_TOTALS_ROW, 0, &line);
    assert_int_equal (line, 6);
    assert_non_null (strstr (text, "150.00, the sum of the 3 other rows"));
    int64_t total;
    assert_true (export_summary_total (fx->summary, &total));
    assert_int_equal (total, 15000);

    /* A row without id and date that is not the total stays a rejection, with its line. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\n"
                                     "T1,2015-04-01,1.00,E01000001,S\n"
                                     ",,2.00,E01000001,S\n"
                                     "T3,2015-04-01,3.00,E01000001,S\n"),
                      0);
    assert_int_equal (fx->stats.totals_rows, 0);
    assert_int_equal (fx->stats.rows, 3);
    assert_int_equal (fx->sink.n_rejects, 1);
    assert_int_equal (fx->sink.reject_lines[0], 3);
    assert_string_equal (fx->sink.reasons[0], "record_id is empty");

    /* Monthly subtotals in a quarterly file, then the grand total. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\n"
                                     "T1,2015-04-01,1.00,E01000001,S\n"
                                     "T2,2015-04-02,2.00,E01000001,S\n"
                                     ",,3.00,,\n"
                                     "T3,2015-05-01,4.00,E01000001,S\n"
                                     ",,4.00,,\n"
                                     ",,7.00,,\n"),
                      0);
    assert_int_equal (fx->stats.totals_rows, 3);
    assert_int_equal (fx->stats.rows, 3);
    assert_int_equal (fx->sink.n_rejects, 0);
}

static void
test_most_rows_rejected_holds_the_file (void **state)
{
    fixture_t *fx = *state;
    /* Every date is a fiscal period the reader cannot place in a month. */
    assert_int_equal (read_text (fx,
                                 "Transaction Number,Period,Amount,LSOA,Service,Invoice Posted\n"
                                 "T1,201501,1.00,E01000001,S,x\n"
                                 "T2,201501,1.00,E01000001,S,x\n"
                                 "T3,201502,1.00,E01000001,S,x\n"),
                      0);
    assert_int_equal (fx->stats.rejected, 3);
    assert_int_equal (export_summary_reason_count (fx->summary), 1);
    const export_reason_t *reason = export_summary_reason (fx->summary, 0);
    assert_int_equal (reason->rows, 3);
    assert_int_equal (reason->field, CSV_FIELD_PERIOD);
    assert_int_equal (reason->first_line, 2);
    export_policy_t policy = {.max_rejected_percent = 50, .hold_repeated_ids = true};
    char *note = NULL;
    assert_int_equal (export_summary_verdict (fx->summary, &policy, &note), EXPORT_HOLD);
    assert_non_null (note);
    assert_non_null (strstr (note, "3 of 3 rows (100%) would be rejected"));
    assert_non_null (strstr (note, "input/max_rejected_percent (50%)"));
    assert_non_null (strstr (note, "period is read from column 2 \"Period\""));
    assert_non_null (strstr (note, "set columns/period in the agent's config"));
    /* The note is whole: it ends with its last sentence. */
    assert_non_null (strstr (note, "drop the file into the inbox again."));
    free (note);

    /* Half or fewer: delivered, the rejects kept aside. */
    assert_int_equal (read_text (fx, "Transaction Number,Date,Amount,LSOA,Service\n"
                                     "T1,2015-01-01,1.00,E01000001,S\n"
                                     "T2,201501,1.00,E01000001,S\n"),
                      0);
    assert_int_equal (export_summary_verdict (fx->summary, &policy, &note), EXPORT_DELIVER);
    assert_null (note);
}

/* ---------------------------------------------------------------- encodings */

static void
test_encodings (void **state)
{
    fixture_t *fx = *state;
    /* Windows-1252 as councils' finance systems write it: a pound sign, a non-breaking space, an
     * acute accent, and 0x81, which means nothing in Windows-1252. */
    static const char cp1252[] = "Transaction Number,Date,Amount,Supplier Name,LSOA,Service\r\n"
                                 "T1,2015-01-01,\"\xa3"
                                 "1,234.50\",ACME LTD\xa0,E01000001,S\r\n"
                                 "T2,2015-01-02,2.00,FARRAH\xb4S,E01000001,Caf\xe9\r\n"
                                 "T3,2015-01-03,3.00,BAD\x81 CO,E01000001,S\r\n";
    assert_int_equal (read_text (fx, cp1252), 0);
    assert_string_equal (export_summary_encoding (fx->summary), "windows-1252");
    assert_non_null (strstr (export_summary_encoding_why (fx->summary), "byte 0xA3 at offset 74"));
    assert_int_equal (fx->sink.n_records, 3);
    assert_int_equal (fx->sink.records[0]->amount_pence, 123450);
    assert_string_equal (fx->sink.records[0]->supplier, "ACME LTD\u00a0");
    assert_string_equal (fx->sink.records[1]->supplier, "FARRAH\u00b4S");
    assert_string_equal (fx->sink.records[1]->service, "Caf\u00e9");
    assert_string_equal (fx->sink.records[2]->supplier, "BAD\ufffd CO");
    assert_int_equal (fx->stats.replaced_rows, 1);
    size_t line = 0;
    const char *warning =
        export_summary_warning_example (fx->summary, EXPORT_WARN_REPLACED_BYTES, 0, &line);
    assert_int_equal (line, 4);
    assert_string_equal (warning, "column 4 \"Supplier Name\": \"BAD\\x81 CO\" has 1 byte that is "
                                  "not windows-1252, read as \"BAD\ufffd CO\"");

    /* Declared UTF-8: bad bytes become U+FFFD and the payment still counts; the amount keeps its
     * Windows pound sign. */
    csv_reader_set_encoding (fx->reader, TEXT_ENCODING_UTF8);
    assert_int_equal (read_text (fx, cp1252), 0);
    assert_string_equal (export_summary_encoding (fx->summary), "utf-8");
    assert_string_equal (export_summary_encoding_why (fx->summary), "");
    assert_int_equal (fx->sink.n_records, 3);
    assert_int_equal (fx->sink.n_rejects, 0);
    assert_int_equal (fx->sink.records[0]->amount_pence, 123450);
    assert_string_equal (fx->sink.records[0]->supplier, "ACME LTD\ufffd");
    assert_string_equal (fx->sink.records[1]->service, "Caf\ufffd");
    assert_int_equal (fx->stats.replaced_rows, 3);

    /* ISO-8859-1: 0x81 is a C1 control, replaced too. */
    csv_reader_set_encoding (fx->reader, TEXT_ENCODING_ISO_8859_1);
    assert_int_equal (read_text (fx, cp1252), 0);
    assert_string_equal (fx->sink.records[1]->supplier, "FARRAH\u00b4S");
    assert_string_equal (fx->sink.records[2]->supplier, "BAD\ufffd CO");

    /* Auto on a valid UTF-8 file with a byte order mark: UTF-8, nothing replaced. */
    csv_reader_set_encoding (fx->reader, TEXT_ENCODING_AUTO);
    assert_int_equal (read_text (fx,
                                 "\xef\xbb\xbfTransaction Number,Date,Amount,Supplier Name,LSOA,"
                                 "Service\nT1,2015-01-01,\u00a31.00,CAF\u00c9,E01000001,S\n"),
                      0);
    assert_string_equal (export_summary_encoding (fx->summary), "utf-8");
    assert_non_null (strstr (export_summary_encoding_why (fx->summary), "valid UTF-8"));
    assert_string_equal (fx->sink.records[0]->supplier, "CAF\u00c9");
    assert_int_equal (fx->sink.records[0]->amount_pence, 100);
    assert_int_equal (fx->stats.replaced_rows, 0);
}

static void
test_auto_encoding_needs_a_seekable_stream (void **state)
{
    fixture_t *fx = *state;
    int pipe_ends[2];
    assert_int_equal (pipe (pipe_ends), 0);
    static const char text[] =
        "Transaction Number,Date,Amount,LSOA,Service\nT1,2015-01-01,1,E01000001,S\n";
    assert_int_equal (write (pipe_ends[1], text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close (pipe_ends[1]);
    FILE *stream = fdopen (pipe_ends[0], "r");
    assert_non_null (stream);
    assert_int_equal (csv_reader_read_stream (fx->reader, stream, "stdin", on_record, on_reject,
                                              &fx->sink, &fx->stats, NULL, fx->err, sizeof fx->err),
                      CSV_READER_ERR);
    assert_non_null (strstr (fx->err, "set input/encoding"));
    fclose (stream);
    /* Told the encoding, a pipe reads in one pass. */
    assert_int_equal (pipe (pipe_ends), 0);
    assert_int_equal (write (pipe_ends[1], text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close (pipe_ends[1]);
    stream = fdopen (pipe_ends[0], "r");
    csv_reader_set_encoding (fx->reader, TEXT_ENCODING_UTF8);
    assert_int_equal (csv_reader_read_stream (fx->reader, stream, "stdin", on_record, on_reject,
                                              &fx->sink, &fx->stats, NULL, fx->err, sizeof fx->err),
                      0);
    assert_int_equal (fx->sink.n_records, 1);
    fclose (stream);
}

static void
test_longest_reason_is_whole (void **state)
{
    fixture_t *fx = *state;
    /* The longest reason the reader writes: a row cut short before its neighbourhood cell, a
     * lookup column with a long header and value, and a postcode no lookup knows. */
    char column[300], value[300], header[400], row[1200];
    memset (column, 'C', 256);
    column[256] = '\0';
    memset (value, 'v', 250);
    value[250] = '\0';
    area_lookup_options_t options = {
        .key_columns = "Unit", .code_columns = "Neighbourhood", .max_parts = 1};
    FILE *f = fopen (fx->path, "w");
    assert_non_null (f);
    fprintf (f, "Unit,Neighbourhood\nKnown,E01000001\n");
    fclose (f);
    char err[512];
    area_lookup_t *lookup = area_lookup_load (fx->path, &options, err, sizeof err);
    assert_non_null (lookup);
    assert_int_equal (csv_reader_set_lookup (fx->reader, column, &lookup, err, sizeof err), 0);
    snprintf (header, sizeof header, "Transaction Number,Date,Amount,Service,Postcode,%s,LSOA\n",
              column);
    snprintf (row, sizeof row, "%sT1,2015-01-01,1.00,S,ZZ99 9ZZ,%s\n", header, value);
    options = (area_lookup_options_t){
        .key_columns = "pcds", .code_columns = "lsoa21", .postcodes = true, .max_parts = 1};
    f = fopen (fx->path, "w");
    fprintf (f, "pcds,lsoa21\nS70 2TN,E01000001\n");
    fclose (f);
    lookup = area_lookup_load (fx->path, &options, err, sizeof err);
    assert_non_null (lookup);
    assert_int_equal (csv_reader_set_postcode_lookup (fx->reader, &lookup, err, sizeof err), 0);
    assert_int_equal (read_text (fx, row), 0);
    assert_int_equal (fx->sink.n_rejects, 1);
    const char *reason = fx->sink.reasons[0];
    assert_non_null (strstr (reason, "no neighbourhood: neighbourhood is missing: the row has 6 "
                                     "cells and the header 7; CCCC"));
    const char *end = "postcode \"ZZ99 9ZZ\" is not in the postcode lookup";
    assert_true (strlen (reason) > strlen (end));
    assert_string_equal (reason + strlen (reason) - strlen (end), end);
    assert_true (strlen (reason) < CSV_READER_REASON_LEN - 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_transparency_code_export, setup, teardown),
        cmocka_unit_test_setup_teardown (test_header_case_and_spaces, setup, teardown),
        cmocka_unit_test_setup_teardown (test_first_listed_header_wins, setup, teardown),
        cmocka_unit_test_setup_teardown (test_duplicate_header_reads_the_first_and_says_so, setup,
                                         teardown),
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
        cmocka_unit_test_setup_teardown (test_council_layout_derived_ids_and_parts, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_derived_ids_are_stable, setup, teardown),
        cmocka_unit_test_setup_teardown (test_placement_first_match_wins, setup, teardown),
        cmocka_unit_test_setup_teardown (test_corrections_carry_the_whole_family, setup, teardown),
        cmocka_unit_test_setup_teardown (test_part_ids_must_fit, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lookup_file_level_errors, setup, teardown),
        cmocka_unit_test_setup_teardown (test_header_variants_councils_publish, setup, teardown),
        cmocka_unit_test_setup_teardown (test_period_column_beside_a_real_date, setup, teardown),
        cmocka_unit_test_setup_teardown (test_candidates_follow_a_changing_header, setup, teardown),
        cmocka_unit_test_setup_teardown (test_composite_record_ids, setup, teardown),
        cmocka_unit_test_setup_teardown (test_repeated_ids_are_held, setup, teardown),
        cmocka_unit_test_setup_teardown (test_repeated_ids_as_lines, setup, teardown),
        cmocka_unit_test_setup_teardown (test_totals_rows_are_recognised, setup, teardown),
        cmocka_unit_test_setup_teardown (test_most_rows_rejected_holds_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown (test_encodings, setup, teardown),
        cmocka_unit_test_setup_teardown (test_longest_reason_is_whole, setup, teardown),
        cmocka_unit_test_setup_teardown (test_auto_encoding_needs_a_seekable_stream, setup,
                                         teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
