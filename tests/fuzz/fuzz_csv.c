/* fuzz_csv: any bytes as a CSV export. Nothing may crash or leak; every record handed over must
 * pass wire validation, and every row is either a record, a rejection or blank. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_reader.h"
#include "wire.h"

static int
on_record (void *arg, size_t line, Totalplace__SpendingRecord *record)
{
    (void) arg;
    (void) line;
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
    (void) arg;
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
    FILE *stream = fmemopen ((void *) data, size, "r");
    if (!stream)
        return 0;
    csv_reader_stats_t stats;
    csv_reader_read_stream (reader, stream, "fuzz.csv", on_record, on_reject, NULL, &stats, NULL, err,
                            sizeof err);
    fclose (stream);
    if (stats.rows != stats.records + stats.rejected) {
        fprintf (stderr, "fuzz_csv: %llu rows but %llu records + %llu rejected\n",
                 (unsigned long long) stats.rows, (unsigned long long) stats.records,
                 (unsigned long long) stats.rejected);
        abort ();
    }
    return 0;
}
