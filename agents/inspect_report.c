/* inspect_report: one section per question a finance officer asks of a file; a table prints each
 * under its own caption, JSON writes them as members of one object. */
#include "inspect_report.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "csv_layout.h"

#define TOP_UNPLACED 10
#define TOP_REASONS  10

typedef enum {
    SECTION_FILE,
    SECTION_NOTES,
    SECTION_COLUMNS,
    SECTION_REASONS,
    SECTION_REPEATS,
    SECTION_PLACEMENT,
    SECTION_UNPLACED,
    SECTION_WARNINGS,
    SECTION_COUNT
} section_t;

static const char *const CAPTIONS[SECTION_COUNT] = {
    [SECTION_FILE] = NULL,
    [SECTION_NOTES] = "Notes",
    [SECTION_COLUMNS] = "Columns read",
    [SECTION_REASONS] = "Rejected rows by reason",
    [SECTION_REPEATS] = "Record ids repeated with other content",
    [SECTION_PLACEMENT] = "How rows were placed in neighbourhoods",
    [SECTION_UNPLACED] = "Values no lookup placed (most rows first)",
    [SECTION_WARNINGS] = "Warnings",
};

static const char *
verdict_name (export_verdict_t verdict)
{
    switch (verdict) {
    case EXPORT_DELIVER:
        return "deliver";
    case EXPORT_HOLD:
        return "hold";
    case EXPORT_FAILED:
        return "failed";
    }
    return "?";
}

static const char *
warning_name (export_warning_t kind)
{
    switch (kind) {
    case EXPORT_WARN_REPLACED_BYTES:
        return "bytes replaced";
    case EXPORT_WARN_COPY:
        return "exact copy";
    case EXPORT_WARN_TOTALS_ROW:
        return "totals row";
    case EXPORT_WARN_KINDS:
        break;
    }
    return "?";
}

typedef void (note_line_fn) (void *arg, const char *line);

/* Calls fn for each line of text, leading spaces dropped (notes are written over several lines). */
static void
each_line (const char *text, note_line_fn *fn, void *arg)
{
    while (text && *text) {
        size_t len = strcspn (text, "\n");
        char *line = strndup (text, len);
        if (line) {
            const char *start = line;
            while (*start == ' ')
                start++;
            fn (arg, start);
            free (line);
        }
        text += len;
        if (*text == '\n')
            text++;
    }
}

/* Every note about the file: the verdict's, how it was decoded, the header choices made. */
static void
each_note (const export_summary_t *summary, const char *note, note_line_fn *fn, void *arg)
{
    each_line (note, fn, arg);
    if (*export_summary_encoding_why (summary)) {
        char text[512];
        snprintf (text, sizeof text, "read as %s: %s", export_summary_encoding (summary),
                  export_summary_encoding_why (summary));
        each_line (text, fn, arg);
    }
    const csv_layout_t *layout = export_summary_layout (summary);
    for (size_t i = 0; layout && i < csv_layout_note_count (layout); i++)
        each_line (csv_layout_note (layout, i), fn, arg);
    int64_t total;
    if (!export_summary_total (summary, &total))
        each_line ("the file's total overflows 64-bit pence: the totals shown are meaningless", fn,
                   arg);
}

static void
note_row (void *arg, const char *line)
{
    report_row (arg);
    report_text (arg, line);
}

static void
note_print (void *arg, const char *line)
{
    fprintf (arg, "  %s\n", line);
}

static void
add_section (report_t *report, section_t section, const char *file, const export_summary_t *summary,
             export_verdict_t verdict, const char *note)
{
    const export_stats_t *s = export_summary_stats (summary);
    const csv_layout_t *layout = export_summary_layout (summary);
    switch (section) {
    case SECTION_FILE: {
        static const report_column_t columns[] = {
            {"file", "file", REPORT_TEXT},
            {"verdict", "verdict", REPORT_TEXT},
            {"encoding", "encoding", REPORT_TEXT},
            {"rows", "rows", REPORT_INTEGER},
            {"accepted", "accepted_rows", REPORT_INTEGER},
            {"rejected", "rejected_rows", REPORT_INTEGER},
            {"records", "records", REPORT_INTEGER},
            {"blank rows", "blank_rows", REPORT_INTEGER},
            {"totals rows skipped", "totals_rows", REPORT_INTEGER},
            {"exact copies", "exact_copies", REPORT_INTEGER},
            {"repeated ids", "repeated_ids", REPORT_INTEGER},
            {"file total", "total_pence", REPORT_PENCE},
            {"accepted total", "accepted_pence", REPORT_PENCE},
            {"first date", "first_date", REPORT_TEXT},
            {"last date", "last_date", REPORT_TEXT},
        };
        report_add_section (report, "file", columns, sizeof columns / sizeof columns[0], true);
        int64_t total = 0, accepted = 0;
        export_summary_total (summary, &total);
        export_summary_accepted_total (summary, &accepted);
        report_row (report);
        report_text (report, file);
        report_text (report, verdict_name (verdict));
        report_text (report, export_summary_encoding (summary));
        report_integer (report, (int64_t)s->rows);
        report_integer (report, (int64_t)(s->rows - s->rejected));
        report_integer (report, (int64_t)s->rejected);
        report_integer (report, (int64_t)s->records);
        report_integer (report, (int64_t)s->blank);
        report_integer (report, (int64_t)s->totals_rows);
        report_integer (report, (int64_t)s->copies);
        report_integer (report, (int64_t)s->repeated_ids);
        report_pence (report, total);
        report_pence (report, accepted);
        report_text (report, export_summary_first_date (summary));
        report_text (report, export_summary_last_date (summary));
        break;
    }
    case SECTION_NOTES: {
        static const report_column_t columns[] = {{"note", "text", REPORT_TEXT}};
        report_add_section (report, "notes", columns, 1, false);
        each_note (summary, note, note_row, report);
        break;
    }
    case SECTION_COLUMNS: {
        static const report_column_t columns[] = {
            {"field", "field", REPORT_TEXT},
            {"read from", "read_from", REPORT_TEXT},
            {"other candidates", "other_candidates", REPORT_TEXT},
        };
        report_add_section (report, "columns", columns, 3, false);
        for (int f = 0; layout && f < CSV_FIELD_COUNT; f++) {
            const csv_columns_t *read = csv_layout_columns (layout, (csv_field_t)f);
            size_t others[16];
            size_t n = csv_layout_other_candidates (layout, (csv_field_t)f, others, 16);
            if (f == CSV_FIELD_LOOKUP && !read->present)
                continue;
            char read_from[1024], list[2048];
            csv_layout_describe (layout, (csv_field_t)f, read_from, sizeof read_from);
            size_t used = 0;
            list[0] = '\0';
            for (size_t i = 0; i < n && i < 16 && used + 1 < sizeof list; i++) {
                int w = snprintf (list + used, sizeof list - used, "%s%zu \"%s\"", i ? ", " : "",
                                  others[i] + 1, csv_layout_header (layout, others[i]));
                if (w > 0)
                    used += (size_t)w < sizeof list - used ? (size_t)w : sizeof list - used - 1;
            }
            report_row (report);
            report_text (report, csv_field_name ((csv_field_t)f));
            report_text (report, read_from);
            report_text (report, list);
        }
        break;
    }
    case SECTION_REASONS: {
        static const report_column_t columns[] = {
            {"rows", "rows", REPORT_INTEGER},
            {"first line", "first_line", REPORT_INTEGER},
            {"field", "field", REPORT_TEXT},
            {"example", "example", REPORT_TEXT},
        };
        report_add_section (report, "reasons", columns, 4, false);
        size_t count = export_summary_reason_count (summary);
        for (size_t i = 0; i < count && i < TOP_REASONS; i++) {
            const export_reason_t *reason = export_summary_reason (summary, i);
            report_row (report);
            report_integer (report, (int64_t)reason->rows);
            report_integer (report, (int64_t)reason->first_line);
            report_text (report,
                         reason->field < CSV_FIELD_COUNT ? csv_field_name (reason->field) : "row");
            report_text (report, reason->reason);
        }
        break;
    }
    case SECTION_REPEATS: {
        static const report_column_t columns[] = {
            {"record id", "record_id", REPORT_TEXT},
            {"first line", "first_line", REPORT_INTEGER},
            {"repeated at", "line", REPORT_INTEGER},
        };
        report_add_section (report, "repeated_ids", columns, 3, false);
        for (size_t i = 0; i < export_summary_repeat_examples (summary); i++) {
            const export_repeat_t *repeat = export_summary_repeat_example (summary, i);
            report_row (report);
            report_text (report, repeat->id);
            report_integer (report, (int64_t)repeat->first_line);
            report_integer (report, (int64_t)repeat->line);
        }
        break;
    }
    case SECTION_PLACEMENT: {
        static const report_column_t columns[] = {
            {"placed by", "placed_by", REPORT_TEXT},
            {"rows", "rows", REPORT_INTEGER},
        };
        report_add_section (report, "placement", columns, 2, false);
        uint64_t unplaced = 0;
        for (size_t i = 0; i < export_summary_reason_count (summary); i++) {
            const export_reason_t *reason = export_summary_reason (summary, i);
            if (reason->field == CSV_FIELD_NEIGHBOURHOOD &&
                strncmp (reason->reason, "no neighbourhood", 16) == 0)
                unplaced += reason->rows;
        }
        const struct {
            const char *what;
            uint64_t rows;
        } placed[] = {{"own neighbourhood cell", s->by_column},
                      {"lookup", s->by_lookup},
                      {"postcode", s->by_postcode},
                      {"split over several (by lookup)", s->apportioned},
                      {"nowhere (rejected)", unplaced}};
        for (size_t i = 0; i < sizeof placed / sizeof placed[0]; i++) {
            report_row (report);
            report_text (report, placed[i].what);
            report_integer (report, (int64_t)placed[i].rows);
        }
        break;
    }
    case SECTION_UNPLACED: {
        static const report_column_t columns[] = {
            {"column", "column", REPORT_TEXT},
            {"value", "value", REPORT_TEXT},
            {"rows", "rows", REPORT_INTEGER},
        };
        report_add_section (report, "unplaced_values", columns, 3, false);
        size_t count = export_summary_unplaced_count (summary);
        for (size_t i = 0; i < count && i < TOP_UNPLACED; i++) {
            const export_unplaced_t *value = export_summary_unplaced (summary, i);
            report_row (report);
            report_text (report, value->what);
            report_text (report, value->value);
            report_integer (report, (int64_t)value->rows);
        }
        break;
    }
    case SECTION_WARNINGS: {
        static const report_column_t columns[] = {
            {"kind", "kind", REPORT_TEXT},
            {"rows", "rows", REPORT_INTEGER},
            {"first line", "first_line", REPORT_INTEGER},
            {"example", "example", REPORT_TEXT},
        };
        report_add_section (report, "warnings", columns, 4, false);
        for (int k = 0; k < EXPORT_WARN_KINDS; k++) {
            uint64_t count = export_summary_warning_count (summary, (export_warning_t)k);
            if (!count)
                continue;
            size_t line = 0;
            const char *example =
                export_summary_warning_example (summary, (export_warning_t)k, 0, &line);
            report_row (report);
            report_text (report, warning_name ((export_warning_t)k));
            report_integer (report, (int64_t)count);
            report_integer (report, (int64_t)line);
            report_text (report, example ? example : "");
        }
        break;
    }
    case SECTION_COUNT:
        break;
    }
}

/* True when a section has nothing to say in a table (JSON always has every member). */
static bool
section_empty (section_t section, const export_summary_t *summary, const char *note)
{
    const csv_layout_t *layout = export_summary_layout (summary);
    int64_t total;
    switch (section) {
    case SECTION_NOTES:
        return !note && !*export_summary_encoding_why (summary) &&
               !(layout && csv_layout_note_count (layout)) &&
               export_summary_total (summary, &total);
    case SECTION_COLUMNS:
        return !layout;
    case SECTION_REASONS:
        return export_summary_reason_count (summary) == 0;
    case SECTION_REPEATS:
        return export_summary_repeat_examples (summary) == 0;
    case SECTION_UNPLACED:
        return export_summary_unplaced_count (summary) == 0;
    case SECTION_WARNINGS:
        for (int k = 0; k < EXPORT_WARN_KINDS; k++)
            if (export_summary_warning_count (summary, (export_warning_t)k))
                return false;
        return true;
    default:
        return false;
    }
}

int
inspect_report_write (const char *file, const export_summary_t *summary, export_verdict_t verdict,
                      const char *note, report_format_t format, FILE *out, char *err,
                      size_t err_len)
{
    if (format != REPORT_TABLE) {
        report_t *report = report_new ("inspect");
        if (!report) {
            snprintf (err, err_len, "out of memory");
            return -1;
        }
        for (int s = 0; s < SECTION_COUNT; s++)
            add_section (report, (section_t)s, file, summary, verdict, note);
        int rc = report_write (report, format, out, err, err_len);
        report_destroy (&report);
        return rc;
    }
    /* A table per section, each under its caption; notes as indented lines of text. */
    for (int s = 0; s < SECTION_COUNT; s++) {
        if (section_empty ((section_t)s, summary, note))
            continue;
        if (s == SECTION_NOTES) {
            fprintf (out, "%s\n", CAPTIONS[s]);
            each_note (summary, note, note_print, out);
            fputc ('\n', out);
            continue;
        }
        report_t *report = report_new ("inspect");
        if (!report) {
            snprintf (err, err_len, "out of memory");
            return -1;
        }
        if (CAPTIONS[s])
            report_set_caption (report, CAPTIONS[s]);
        add_section (report, (section_t)s, file, summary, verdict, note);
        int rc = report_write (report, format, out, err, err_len);
        report_destroy (&report);
        if (rc != 0)
            return -1;
        if (s + 1 < SECTION_COUNT)
            fputc ('\n', out);
    }
    return ferror (out) ? -1 : 0;
}
