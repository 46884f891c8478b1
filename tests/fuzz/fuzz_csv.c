/* fuzz_csv: any bytes as a CSV export, its first byte picking the encoding (auto, UTF-8,
 * Windows-1252, ISO-8859-1) and what repeated ids do. Nothing may crash or leak; every record
 * handed over must pass wire validation; every row is a record, a rejection, blank or the file's
 * own total; the summary agrees with the counts, and the verdict comes with a note exactly when
 * the file is not delivered. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_reader.h"
#include "export_summary.h"
#include "wire.h"

static int
on_record (void *arg, size_t line, Totalplace__SpendingRecord *record)
{
    (void)arg;
    (void)line;
    char reason[WIRE_REASON_LEN];
    if (wire_validate_record (record, reason, sizeof reason) != 0) {
        fprintf (stderr, "fuzz_csv: reader produced an invalid record: %s\n", reason);
        abort ();
    }
    protobuf_c_message_free_unpacked (&record->base, NULL);
    return 0;
}

static int
on_reject (void *arg, size_t line, const char *reason)
{
    (void)arg;
    if (line == 0 || !reason || !*reason) {
        fprintf (stderr, "fuzz_csv: rejection without a line or reason\n");
        abort ();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static csv_reader_t *reader;
    char err[512];
    if (!reader) {
        reader = csv_reader_new ("GB-FUZZ", err, sizeof err);
        if (!reader || csv_reader_set_default_service (reader, "Fuzzing", err, sizeof err))
            abort ();
    }
    if (size == 0)
        return 0;
    /* The first byte picks the encoding and what repeated ids do; the rest is the file. */
    static const text_encoding_t encodings[] = {TEXT_ENCODING_AUTO, TEXT_ENCODING_UTF8,
                                                TEXT_ENCODING_WINDOWS_1252,
                                                TEXT_ENCODING_ISO_8859_1};
    csv_reader_set_encoding (reader, encodings[data[0] & 3]);
    csv_reader_set_repeated_ids (reader,
                                 (data[0] & 4) ? CSV_REPEATED_IDS_LINES : CSV_REPEATED_IDS_HOLD);
    data++;
    size--;
    FILE *stream = fmemopen ((void *)data, size ? size : 1, "r");
    if (!stream)
        return 0;
    if (size == 0)
        fgetc (stream); /* an empty file: fmemopen needs a byte of buffer */
    export_summary_t *summary = export_summary_new ();
    if (!summary)
        abort ();
    csv_reader_stats_t stats;
    csv_reader_read_stream (reader, stream, "fuzz.csv", on_record, on_reject, NULL, &stats, summary,
                            err, sizeof err);
    fclose (stream);
    if (stats.rows != stats.records + stats.rejected) {
        fprintf (stderr, "fuzz_csv: %llu rows but %llu records + %llu rejected\n",
                 (unsigned long long)stats.rows, (unsigned long long)stats.records,
                 (unsigned long long)stats.rejected);
        abort ();
    }
    /* The summary agrees with the counts: every rejection under one reason, every row whose bytes
     * were replaced and every totals row a warning. */
    uint64_t grouped = 0;
    for (size_t i = 0; i < export_summary_reason_count (summary); i++)
        grouped += export_summary_reason (summary, i)->rows;
    if (grouped > stats.rejected ||
        (export_summary_reason_count (summary) < 256 && grouped != stats.rejected) ||
        export_summary_warning_count (summary, EXPORT_WARN_REPLACED_BYTES) != stats.replaced_rows ||
        export_summary_warning_count (summary, EXPORT_WARN_TOTALS_ROW) != stats.totals_rows ||
        export_summary_warning_count (summary, EXPORT_WARN_COPY) != stats.copies) {
        fprintf (stderr, "fuzz_csv: the summary disagrees with the counts\n");
        abort ();
    }
    export_policy_t policy = {.max_rejected_percent = 50, .hold_repeated_ids = true};
    char *note = NULL;
    export_verdict_t verdict = export_summary_verdict (summary, &policy, &note);
    if ((verdict == EXPORT_DELIVER) != (note == NULL)) {
        fprintf (stderr, "fuzz_csv: a verdict of %d with%s a note\n", (int)verdict,
                 note ? "" : "out");
        abort ();
    }
    free (note);
    export_summary_destroy (&summary);
    return 0;
}
