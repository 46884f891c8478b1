/* cli_store: `totalplace verify` and `totalplace backup`, and the read-only opening of --db. */
#include "cli_store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "store_backup.h"
#include "store_verify.h"

#define ERR_LEN 1024

/* verify's and backup's exit status when anything differs (EX_DATAERR, as a damaged store). */
#define EXIT_DIFFERS 65

store_t *
cli_store_open (const char *dir, int *code, char *err, size_t err_len)
{
    /* LMDB readers register in lock.mdb even when they only read, so it must be writable. */
    char lock_path[PATH_MAX];
    if ((size_t)snprintf (lock_path, sizeof lock_path, "%s/lock.mdb", dir) < sizeof lock_path &&
        access (lock_path, F_OK) == 0 && access (lock_path, R_OK | W_OK) != 0) {
        snprintf (err, err_len,
                  "--db %s: cannot write lock.mdb (%s): LMDB readers register there, so run as a "
                  "user or group that may write it; the store itself is only read",
                  dir, strerror (errno));
        *code = STORE_ERR;
        return NULL;
    }
    store_options_t options = {.path = dir, .read_only = true};
    return store_new (&options, code, err, err_len);
}

/* ---------------------------------------------------------------- findings */

typedef struct {
    report_t *report;
    bool people; /* the table for people: amounts as "£1,234.56" */
} findings_t;

static void
amount_text (bool present, store_amount_t amount, bool people, char *out, size_t out_len)
{
    if (!present) {
        snprintf (out, out_len, "%s", people ? "-" : "");
        return;
    }
    char pounds[REPORT_POUNDS_LEN];
    snprintf (out, out_len, "%s (%" PRId64 " record%s)",
              report_pounds (amount.amount_pence, people, pounds, sizeof pounds), amount.records,
              amount.records == 1 ? "" : "s");
}

static int
finding_row (void *arg, const store_verify_finding_t *finding)
{
    findings_t *findings = arg;
    char stored[REPORT_POUNDS_LEN + 32], recomputed[REPORT_POUNDS_LEN + 32];
    amount_text (finding->has_stored, finding->stored, findings->people, stored, sizeof stored);
    amount_text (finding->has_recomputed, finding->recomputed, findings->people, recomputed,
                 sizeof recomputed);
    report_row (findings->report);
    report_text (findings->report, store_verify_kind_name (finding->kind));
    report_text (findings->report, store_db_name (finding->db));
    report_text (findings->report, finding->key);
    report_text (findings->report, stored);
    report_text (findings->report, recomputed);
    report_text (findings->report, finding->what);
    return 0;
}

static void
add_findings_section (report_t *report)
{
    static const report_column_t columns[] = {
        {"problem", "problem", REPORT_TEXT},
        {"database", "database", REPORT_TEXT},
        {"key", "key", REPORT_TEXT},
        {"stored", "stored", REPORT_TEXT},
        {"recomputed", "recomputed", REPORT_TEXT},
        {"what", "what", REPORT_TEXT},
    };
    report_add_section (report, "findings", columns, sizeof columns / sizeof columns[0], false);
}

static void
add_summary_section (report_t *report, const store_verify_summary_t *s)
{
    static const report_column_t columns[] = {
        {"result", "result", REPORT_TEXT},
        {"findings", "findings", REPORT_UNSIGNED},
        {"records", "records", REPORT_UNSIGNED},
        {"live records", "live_records", REPORT_UNSIGNED},
        {"withdrawn records", "withdrawn_records", REPORT_UNSIGNED},
        {"cells", "cells", REPORT_UNSIGNED},
        {"neighbourhoods", "neighbourhoods", REPORT_UNSIGNED},
        {"agents", "agents", REPORT_UNSIGNED},
        {"texts", "texts", REPORT_UNSIGNED},
        {"damaged values", "damaged", REPORT_UNSIGNED},
        {"unreadable databases", "unreadable", REPORT_UNSIGNED},
        {"invalid entries", "invalid", REPORT_UNSIGNED},
        {"totals missing", "missing", REPORT_UNSIGNED},
        {"totals extra", "extra", REPORT_UNSIGNED},
        {"totals different", "different", REPORT_UNSIGNED},
        {"invariants broken", "invariants", REPORT_UNSIGNED},
        {"time (ms)", "milliseconds", REPORT_UNSIGNED},
        {"memory for totals (bytes)", "memory_bytes", REPORT_UNSIGNED},
    };
    report_add_section (report, "summary", columns, sizeof columns / sizeof columns[0], true);
    report_row (report);
    report_text (report, s->findings ? "differs" : "clean");
    report_unsigned (report, s->findings);
    report_unsigned (report, s->records);
    report_unsigned (report, s->live_records);
    report_unsigned (report, s->withdrawn_records);
    report_unsigned (report, s->cells);
    report_unsigned (report, s->neighbourhoods);
    report_unsigned (report, s->agents);
    report_unsigned (report, s->texts);
    report_unsigned (report, s->damaged);
    report_unsigned (report, s->unreadable);
    report_unsigned (report, s->invalid);
    report_unsigned (report, s->missing);
    report_unsigned (report, s->extra);
    report_unsigned (report, s->different);
    report_unsigned (report, s->invariants);
    report_unsigned (report, (uint64_t)(s->seconds * 1000.0 + 0.5));
    report_unsigned (report, s->memory_bytes);
}

/* One line on stderr saying what differs and where to read on. */
static void
say_differences (const char *what, const store_verify_summary_t *s)
{
    fprintf (stderr,
             "totalplace: %s differs: %" PRIu64 " findings (%" PRIu64 " damaged values, %" PRIu64
             " unreadable databases, %" PRIu64 " invalid entries, %" PRIu64 " totals missing, "
             "%" PRIu64 " extra, %" PRIu64 " different, %" PRIu64 " invariants broken); see "
             "docs/operations.md, \"When the store is damaged\"\n",
             what, s->findings, s->damaged, s->unreadable, s->invalid, s->missing, s->extra,
             s->different, s->invariants);
}

/* ---------------------------------------------------------------- the commands */

/* The report's caption and parameter, and the findings section the verify fills. */
static findings_t
begin_report (report_t *report, const query_args_t *args, const char *what)
{
    char caption[PATH_MAX + 64];
    snprintf (caption, sizeof caption, "%s of the store in %s", what, args->db);
    report_set_caption (report, caption);
    report_set_param (report, "db", args->db);
    add_findings_section (report);
    return (findings_t){report, args->format == REPORT_TABLE};
}

static int
run_verify (store_t *store, const query_args_t *args, report_t *report, char *err, size_t err_len)
{
    findings_t findings = begin_report (report, args, "Verify");
    store_verify_summary_t summary;
    if (store_verify (store, CLI_STORE_MAX_FINDINGS, finding_row, &findings, &summary, err,
                      err_len))
        return 1;
    add_summary_section (report, &summary);
    if (report_write (report, args->format, stdout, err, err_len))
        return 1;
    if (summary.findings) {
        char what[PATH_MAX + 32];
        snprintf (what, sizeof what, "the store in %s", args->db);
        say_differences (what, &summary);
        return EXIT_DIFFERS;
    }
    return 0;
}

static int
run_backup (store_t *store, const query_args_t *args, report_t *report, char *err, size_t err_len)
{
    findings_t findings = begin_report (report, args, "Backup");
    store_backup_result_t result;
    int rc = args->backup_into ? store_backup_rotate (store, args->backup_into, args->backup_keep,
                                                      CLI_STORE_MAX_FINDINGS, finding_row,
                                                      &findings, &result, err, err_len)
                               : store_backup (store, args->backup_dest, CLI_STORE_MAX_FINDINGS,
                                               finding_row, &findings, &result, err, err_len);
    bool made = result.made;
    if (made || result.verified.findings) {
        static const report_column_t columns[] = {
            {"backup", "backup", REPORT_TEXT},
            {"store id", "store_id", REPORT_TEXT},
            {"bytes", "bytes", REPORT_UNSIGNED},
            {"records", "records", REPORT_UNSIGNED},
            {"copy (ms)", "copy_milliseconds", REPORT_UNSIGNED},
            {"verify (ms)", "verify_milliseconds", REPORT_UNSIGNED},
            {"old backups removed", "removed", REPORT_UNSIGNED},
        };
        report_add_section (report, "backup", columns, sizeof columns / sizeof columns[0], true);
        report_row (report);
        report_text (report, made ? result.path : "(not made)");
        report_text (report, result.identity.store_id);
        report_unsigned (report, result.bytes);
        report_unsigned (report, result.verified.records);
        report_unsigned (report, (uint64_t)(result.copy_seconds * 1000.0 + 0.5));
        report_unsigned (report, (uint64_t)(result.verify_seconds * 1000.0 + 0.5));
        report_unsigned (report, result.removed);
        add_summary_section (report, &result.verified);
        char write_err[ERR_LEN];
        if (report_write (report, args->format, stdout, write_err, sizeof write_err))
            fprintf (stderr, "totalplace: %s\n", write_err);
    }
    if (rc == 0)
        return 0;
    if (result.verified.findings) {
        say_differences ("the copy", &result.verified);
        fprintf (stderr, "totalplace: %s\n", err);
        return EXIT_DIFFERS;
    }
    fprintf (stderr, "totalplace: %s\n", err);
    return store_exit_status (rc);
}

int
cli_store_run (const query_args_t *args)
{
    char err[ERR_LEN];
    int code = STORE_ERR;
    store_t *store = cli_store_open (args->db, &code, err, sizeof err);
    if (!store) {
        fprintf (stderr, "totalplace: %s\n", err);
        return store_exit_status (code);
    }
    report_t *report = report_new (query_command_name (args->command));
    int status = 1;
    if (!report)
        fprintf (stderr, "totalplace: out of memory\n");
    else if (args->command == QUERY_VERIFY) {
        status = run_verify (store, args, report, err, sizeof err);
        if (status == 1)
            fprintf (stderr, "totalplace: %s\n", err);
    }
    else
        status = run_backup (store, args, report, err, sizeof err);
    report_destroy (&report);
    store_destroy (&store);
    return status;
}
