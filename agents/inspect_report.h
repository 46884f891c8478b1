/* inspect_report: what `totalplace-agent inspect FILE` prints about one export read as the agent
 * would read it: the verdict and its note, the encoding, which column feeds each field and which
 * others could, rows taken and refused with the main reasons, ids that repeat, the file's total
 * and dates, how rows were placed and the values no lookup knows, and the warnings. A table for
 * people or one JSON object, through the same report module as the `totalplace` CLI. */
#ifndef TOTALPLACE_INSPECT_REPORT_H
#define TOTALPLACE_INSPECT_REPORT_H

#include <stdio.h>

#include "export_summary.h"
#include "report.h"

/* Writes the report of file's summary (filled by csv_reader) with the verdict and note drawn from
 * it (note NULL when delivered). Returns 0, or -1 with err filled on a write or memory failure. */
int inspect_report_write (const char *file, const export_summary_t *summary,
                          export_verdict_t verdict, const char *note, report_format_t format,
                          FILE *out, char *err, size_t err_len);

#endif
