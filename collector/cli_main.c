/* totalplace: the central team's CLI. Answers questions about neighbourhood totals from a
 * collector's store folder opened read-only (--db) or from a running collector's query endpoint
 * (--collector), the same answers either way, as a table, CSV or JSON. This file holds the
 * options, the dispatch and the exit statuses; cli_source.h (where answers come from),
 * cli_client.h (asking a collector), cli_answers.h (the answers) and cli_store.h (verify,
 * backup) hold the rest. */
#include <stdarg.h>
#include <stdio.h>

#include "cli_answers.h"
#include "cli_export.h"
#include "cli_report.h"
#include "cli_source.h"
#include "cli_store.h"
#include "curve.h"
#include "query_args.h"
#include "report.h"
#include "store.h"

#define ERR_LEN 1024

/* ---------------------------------------------------------------- keygen */

static int
run_keygen (const query_args_t *args)
{
    char public_path[4096], secret_path[4096], err[CURVE_ERR_LEN];
    if (curve_keygen (args->keygen_dir, args->keygen_name, args->keygen_role, args->keygen_bodies,
                      public_path, secret_path, sizeof public_path, err, sizeof err)) {
        fprintf (stderr, "totalplace: keygen: %s\n", err);
        return QUERY_EXIT_FAILED;
    }
    const char *where = args->keygen_role == CURVE_ROLE_COLLECTOR
                            ? "give it to every agent and query user (agent/collector_public_cert, "
                              "--collector-cert)"
                            : "copy it into the collector's collector/authorised_certs folder, "
                              "then reload the collector (SIGHUP)";
    printf ("public certificate  %s\n  %s\n", public_path, where);
    printf ("secret certificate  %s\n  mode 0600: keep it on its owner's host only\n", secret_path);
    printf ("role %s%s%s\n", curve_role_name (args->keygen_role),
            args->keygen_bodies ? ", bodies " : "", args->keygen_bodies ? args->keygen_bodies : "");
    return QUERY_EXIT_OK;
}

/* ---------------------------------------------------------------- main */

static int
usage_error (query_command_t command, const char *format, ...)
{
    va_list args;
    fputs ("totalplace: ", stderr);
    va_start (args, format);
    vfprintf (stderr, format, args);
    va_end (args);
    fputc ('\n', stderr);
    query_args_usage (stderr, command);
    return QUERY_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
    query_args_t args;
    char err[ERR_LEN];
    if (query_args_parse (&args, argc, argv, err, sizeof err))
        return usage_error (args.command, "%s", err);
    if (args.help) {
        query_args_help (stdout, args.help_on);
        return QUERY_EXIT_OK;
    }
    if (args.version) {
        printf ("totalplace %s\n", TOTALPLACE_VERSION);
        return QUERY_EXIT_OK;
    }
    if (args.command == QUERY_KEYGEN)
        return run_keygen (&args);
    if (args.command == QUERY_VERIFY || args.command == QUERY_BACKUP)
        return cli_store_run (&args);
    if (args.command == QUERY_EXPORT)
        return cli_export_run (&args);
    if (!args.db && !args.collector)
        return usage_error (args.command,
                            "no store given: use --db DIR, or --collector ENDPOINT to ask a "
                            "running collector");

    cli_source_t source;
    int code = STORE_ERR;
    if (cli_source_open (&source, &args, &code, err, sizeof err)) {
        fprintf (stderr, "totalplace: %s\n", err);
        return store_exit_status (code); /* QUERY_EXIT_FAILED, or 65 / 78 for a refused store */
    }
    if (args.command == QUERY_REPORT) {
        cli_report_source_t from = {source.handle, source.totals, source.identity, source.breakdown,
                                    source.places};
        int status = cli_report_run (&args, &from);
        source.close (&source.handle);
        return status;
    }
    int status = QUERY_EXIT_OK;
    report_t *report = report_new (query_command_name (args.command));
    if (!report) {
        fprintf (stderr, "totalplace: out of memory\n");
        status = QUERY_EXIT_FAILED;
    }
    else if ((code = cli_answers_run (&source, &args, report, err, sizeof err)) != 0 ||
             report_write (report, args.format, stdout, err, sizeof err)) {
        fprintf (stderr, "totalplace: %s\n", err);
        /* A damaged store says so in the status too (65), as when it is refused at opening. */
        status = code == STORE_ERR_DAMAGED ? store_exit_status (code) : QUERY_EXIT_FAILED;
    }
    report_destroy (&report);
    source.close (&source.handle);
    return status;
}
