/* query_args: the totalplace CLI's command line (global options, a subcommand and its options),
 * parsed and validated into one struct before anything is opened. */
#ifndef TOTALPLACE_QUERY_ARGS_H
#define TOTALPLACE_QUERY_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "curve.h"
#include "report.h"
#include "store.h"

/* How long --collector waits for each answer unless --timeout says otherwise, and the bounds. */
#define QUERY_DEFAULT_TIMEOUT_MS 5000
#define QUERY_MAX_TIMEOUT_MS     3600000

/* Exit statuses of the CLI. */
#define QUERY_EXIT_OK     0
#define QUERY_EXIT_FAILED 1 /* the question could not be answered: not found, not a store, I/O */
#define QUERY_EXIT_USAGE  2 /* the command line is wrong */

typedef enum {
    QUERY_NONE = 0,
    QUERY_HELP,
    QUERY_NEIGHBOURHOODS,
    QUERY_TOTALS,
    QUERY_POOLING,
    QUERY_RECORD,
    QUERY_STATS,
    QUERY_VERIFY,
    QUERY_BACKUP,
    QUERY_KEYGEN,
    QUERY_EXPORT, /* cli_export.h */
    QUERY_REPORT, /* cli_report.h */
    QUERY_PLACES,
} query_command_t;

/* What export writes, and how. */
typedef enum { QUERY_EXPORT_RECORDS = 0, QUERY_EXPORT_TOTALS } query_export_t;
typedef enum { QUERY_EXPORT_CSV = 0, QUERY_EXPORT_JSONL } query_export_format_t;

/* What backup keeps by default with --into. */
#define QUERY_DEFAULT_KEEP 7
#define QUERY_MAX_KEEP     10000

/* Every pointer points into argv (or at a static string): valid while argv is. */
typedef struct {
    query_command_t command;
    bool help;               /* --help given, or the help subcommand */
    bool version;            /* --version given */
    query_command_t help_on; /* `totalplace help COMMAND`, `COMMAND --help`: QUERY_NONE for all */
    const char *db;          /* --db DIR: the store folder, opened read-only */
    const char *collector;   /* --collector ENDPOINT: a running collector's query endpoint */
    int timeout_ms;          /* --timeout MS: how long to wait for each answer (--collector) */
    const char *cert;        /* --cert FILE: our secret certificate (--collector, CURVE) */
    const char *collector_cert; /* --collector-cert FILE: the collector's public certificate */
    bool allow_plain;           /* --allow-plain: no CURVE, to an ipc:// or loopback collector */
    report_format_t format;     /* --format, REPORT_TABLE by default */
    const char *format_name;    /* --format as given (export takes csv or jsonl) */
    const char *neighbourhood;  /* --neighbourhood CODE, NULL for all */
    const char *place;          /* --place NAME, NULL for none */
    const char *places_file;    /* --places FILE (--db only) */
    store_breakdown_t by;       /* --by's first breakdown, STORE_BY_NONE by default */
    store_breakdown_t by_list[STORE_MAX_BREAKDOWNS]; /* --by's breakdowns, in order */
    size_t by_count;                                 /* 0 without --by */
    store_filter_t filter;      /* --body --service --fiscal-year --month --poolable; -1 = either */
    const char *body_id;        /* record: BODY_ID */
    const char *record_id;      /* record: RECORD_ID */
    const char *keygen_name;    /* keygen: NAME */
    curve_role_t keygen_role;   /* keygen: --role */
    const char *keygen_bodies;  /* keygen: --bodies LIST (role agent) */
    const char *keygen_dir;     /* keygen: --dir DIR, NULL for the current folder */
    const char *backup_dest;    /* backup: DEST, NULL with --into */
    const char *backup_into;    /* backup: --into PARENT, NULL with DEST */
    unsigned backup_keep;       /* backup: --keep N (with --into), QUERY_DEFAULT_KEEP by default */
    query_export_t export_what; /* export: records or totals */
    query_export_format_t export_format; /* export: --format csv (default) or jsonl */
    const char *out;                     /* export, report: --out FILE (NULL: export to stdout,
                                            report to totalplace-report-NAME.html) */
    const char *meta;                    /* export: --meta FILE, NULL for none */
} query_args_t;

/* Parses argv. Global options (--db, --collector, --timeout, --cert, --collector-cert,
 * --allow-plain, --format, --help, --version) may come before or after the subcommand; the
 * subcommand's own options follow it. Checks every value: formats, breakdowns, fiscal years
 * (period_fiscal_year_parse), months (period_parse), codes and ids, endpoints
 * (settings_check_endpoint), timeouts (1 to QUERY_MAX_TIMEOUT_MS), the security options (only
 * with --collector), keygen's name, role and bodies (curve_check_bodies), and that each option
 * applies to the subcommand and is given once. keygen takes none of the global options but help
 * and version. verify and backup read the store folder itself: they need --db and refuse
 * --collector, as does export (records or totals, --format csv or jsonl, --out, --meta); report
 * needs --neighbourhood and takes --fiscal-year and --out; backup takes DEST, or --into PARENT with
 * an optional --keep. Does not otherwise require --db or --collector, nor certificates: the caller
 * decides once help and version are handled (and the environment is read). Returns 0, or -1 with a
 * message in err naming the option or word at fault (the caller adds the usage). Uses getopt_long,
 * so it is not thread-safe; it resets getopt's state and may be called again. */
int query_args_parse (query_args_t *args, int argc, char **argv, char *err, size_t err_len);

/* Name of a subcommand ("totals"), or "" for QUERY_NONE. */
const char *query_command_name (query_command_t command);

/* Name of a breakdown as --by spells it ("fiscal-year"), or NULL for STORE_BY_NONE. */
const char *query_breakdown_name (store_breakdown_t by);

/* Writes the full help (command == QUERY_NONE) or one subcommand's help to out. */
void query_args_help (FILE *out, query_command_t command);

/* Writes the short usage for a command line error: the synopsis of command (or of every command
 * for QUERY_NONE or QUERY_HELP) and a pointer to --help. */
void query_args_usage (FILE *out, query_command_t command);

#endif
