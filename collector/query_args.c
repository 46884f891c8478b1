/* query_args: one getopt_long pass over the whole command line, then checks of what applies to the
 * subcommand, so options may sit before or after it and every mistake is named before any I/O. */
#include "query_args.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "err_text.h"
#include "period.h"
#include "places.h"
#include "settings.h"
#include "wire.h"

/* Options as bits, to check which apply to a subcommand and that none is given twice. */
enum {
    OPT_DB = 1u << 0,
    OPT_COLLECTOR = 1u << 1,
    OPT_FORMAT = 1u << 2,
    OPT_HELP = 1u << 3,
    OPT_VERSION = 1u << 4,
    OPT_NEIGHBOURHOOD = 1u << 5,
    OPT_BY = 1u << 6,
    OPT_FISCAL_YEAR = 1u << 7,
    OPT_MONTH = 1u << 8,
    OPT_BODY = 1u << 9,
    OPT_SERVICE = 1u << 10,
    OPT_POOLABLE = 1u << 11,
    OPT_TIMEOUT = 1u << 12,
    OPT_CERT = 1u << 13,
    OPT_COLLECTOR_CERT = 1u << 14,
    OPT_ALLOW_PLAIN = 1u << 15,
    OPT_ROLE = 1u << 16,
    OPT_BODIES = 1u << 17,
    OPT_DIR = 1u << 18,
    OPT_INTO = 1u << 19,
    OPT_KEEP = 1u << 20,
    OPT_OUT = 1u << 21,
    OPT_META = 1u << 22,
    OPT_PLACE = 1u << 23,
    OPT_PLACES = 1u << 24,
};
/* What only a question to a running collector takes. */
#define OPT_REMOTE (OPT_TIMEOUT | OPT_CERT | OPT_COLLECTOR_CERT | OPT_ALLOW_PLAIN)
#define OPT_GLOBAL                                                                                 \
    (OPT_DB | OPT_COLLECTOR | OPT_REMOTE | OPT_FORMAT | OPT_HELP | OPT_VERSION | OPT_PLACES)
#define OPT_FILTERS (OPT_FISCAL_YEAR | OPT_MONTH | OPT_BODY | OPT_SERVICE | OPT_POOLABLE)

static const struct option LONG_OPTIONS[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"collector", required_argument, NULL, OPT_COLLECTOR},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"cert", required_argument, NULL, OPT_CERT},
    {"collector-cert", required_argument, NULL, OPT_COLLECTOR_CERT},
    {"allow-plain", no_argument, NULL, OPT_ALLOW_PLAIN},
    {"role", required_argument, NULL, OPT_ROLE},
    {"bodies", required_argument, NULL, OPT_BODIES},
    {"dir", required_argument, NULL, OPT_DIR},
    {"into", required_argument, NULL, OPT_INTO},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"out", required_argument, NULL, OPT_OUT},
    {"meta", required_argument, NULL, OPT_META},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"neighbourhood", required_argument, NULL, OPT_NEIGHBOURHOOD},
    {"by", required_argument, NULL, OPT_BY},
    {"fiscal-year", required_argument, NULL, OPT_FISCAL_YEAR},
    {"month", required_argument, NULL, OPT_MONTH},
    {"body", required_argument, NULL, OPT_BODY},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"poolable", required_argument, NULL, OPT_POOLABLE},
    {"place", required_argument, NULL, OPT_PLACE},
    {"places", required_argument, NULL, OPT_PLACES},
    {NULL, 0, NULL, 0},
};

typedef struct {
    query_command_t command;
    const char *name;
    unsigned options;     /* options beyond the global ones that it takes */
    size_t operands;      /* positional arguments after the name */
    const char *synopsis; /* after "totalplace [GLOBAL OPTIONS] " */
    const char *help;     /* what it answers, and its options */
} command_info_t;

static const command_info_t COMMANDS[] = {
    {QUERY_NEIGHBOURHOODS, "neighbourhoods", 0, 0, "neighbourhoods",
     "Every neighbourhood ranked by its total, largest first.\n"
     "Columns: rank, neighbourhood, total, records.\n"},
    {QUERY_TOTALS, "totals", OPT_NEIGHBOURHOOD | OPT_PLACE | OPT_BY | OPT_FILTERS, 0,
     "totals [--neighbourhood CODE | --place NAME] [--by BREAKDOWN[,BREAKDOWN...]]\n"
     "         [--fiscal-year YYYY-YY] [--month YYYY-MM] [--body ID] [--service NAME]\n"
     "         [--poolable yes|no]",
     "The total of one neighbourhood, of a place or of all, one row, or broken down with --by.\n"
     "  --neighbourhood CODE  one neighbourhood, e.g. E01000001 (default: all)\n"
     "  --place NAME          a place: the sum of its neighbourhoods (--places FILE with --db)\n"
     "  --by LIST             one to three of body, service, fiscal-year, month, poolable,\n"
     "                        neighbourhood, comma-separated: a row per combination\n"
     "  --fiscal-year YYYY-YY only this UK fiscal year, e.g. 2013-14 (April 2013 to March 2014)\n"
     "  --month YYYY-MM       only this month, e.g. 2013-04\n"
     "  --body ID             only this public body, e.g. GB-LAE-BNS\n"
     "  --service NAME        only this service area, spelled exactly as stored\n"
     "  --poolable yes|no     only budgets the body does (yes) or does not (no) consider poolable\n"
     "Columns: one per breakdown (none without --by), total, records.\n"},
    {QUERY_POOLING, "pooling", OPT_NEIGHBOURHOOD | OPT_PLACE, 0,
     "pooling [--neighbourhood CODE | --place NAME]",
     "Per neighbourhood (or place) and body, how much of the total is poolable.\n"
     "  --neighbourhood CODE  one neighbourhood (default: all, in ranked order)\n"
     "  --place NAME          a place: its neighbourhoods summed (--places FILE with --db)\n"
     "Columns: neighbourhood (or place), body, total, poolable, share (poolable / total, n/a\n"
     "when the total is zero or negative), records.\n"},
    {QUERY_PLACES, "places", 0, 0, "places",
     "Every place of the places file (--places FILE with --db; the collector's own with\n"
     "--collector) ranked by total, largest first.\n"
     "Columns: rank, place, neighbourhoods, no records (members the store has no records\n"
     "of), residents (the sum of the members' known populations), unpopulated (members with no\n"
     "population), total, per resident (pence, rounded half away from zero; n/a without\n"
     "residents), poolable, poolable share (per mille of the total), records.\n"},
    {QUERY_RECORD, "record", 0, 2, "record BODY_ID RECORD_ID",
     "One stored record with every field, its revision and whether it was withdrawn.\n"
     "Put -- before a RECORD_ID that starts with '-'.\n"},
    {QUERY_STATS, "stats", 0, 0, "stats",
     "The store's identity (store id, format, creation time), its counters (batches, records\n"
     "by outcome, records stored, map size and use) and each agent's last batch, batch count\n"
     "and last delivery (UTC). With --collector, also the running collector's ingest and query\n"
     "counters since it started.\n"},
    {QUERY_VERIFY, "verify", 0, 0, "verify",
     "Checks the whole store (--db only), in one read transaction, beside a running collector:\n"
     "every value against its checksum, every record decodes and validates, every cell and\n"
     "neighbourhood total against the total its live records make, the agents' batches against\n"
     "the counters, and the records stored against the records accepted. Prints what differs\n"
     "(the first 50 findings: database, key, stored and recomputed values) and a summary.\n"
     "Exit status 0 when all agrees, 65 when anything differs.\n"},
    {QUERY_BACKUP, "backup", OPT_INTO | OPT_KEEP, 1,
     "backup DEST | backup --into PARENT [--keep N]",
     "Copies the store (--db only) while the collector runs: LMDB's compacting copy into a\n"
     "hidden folder beside DEST, synced and verified as verify does, then renamed to DEST. DEST\n"
     "must not exist; a copy that fails or does not verify is removed, never left as DEST.\n"
     "  --into PARENT  back up into PARENT/totalplace-YYYYMMDDTHHMMSSZ (UTC), then delete all\n"
     "                 but the newest N folders of that name in PARENT (the nightly timer)\n"
     "  --keep N       how many backups --into keeps (default 7)\n"
     "Exit status 0 when the backup is in place, 65 when the copy does not verify (verify the\n"
     "store), 73 when DEST exists, 74 when the disk is full, 1 on other errors.\n"},
    {QUERY_KEYGEN, "keygen", OPT_ROLE | OPT_BODIES | OPT_DIR, 1,
     "keygen NAME --role agent|query|collector [--bodies ID[,ID...]] [--dir DIR]",
     "Makes a CURVE certificate pair: DIR/NAME.cert (public: give it to the collector, or for\n"
     "the collector's own, to every agent and query user) and DIR/NAME.cert_secret (secret:\n"
     "mode 0600, keep it on its owner's host). Never overwrites. Takes no global option.\n"
     "  --role ROLE        agent (publishes records), query (asks the collector, read-only) or\n"
     "                     collector (the collector's own pair)\n"
     "  --bodies LIST      with --role agent: the body ids it may publish for, comma-separated\n"
     "  --dir DIR          the folder to write in (default: the current one)\n"
     "NAME is the agent id for an agent (batches must carry it), else any name (A-Z a-z 0-9 . _ "
     "-).\n"
     "See docs/security.md for provisioning and rotation.\n"},
    {QUERY_EXPORT, "export", OPT_OUT | OPT_META, 1,
     "export records|totals [--format csv|jsonl] [--out FILE] [--meta FILE]",
     "Writes every stored record, or every total cell, from one read transaction of the store\n"
     "(--db only, beside a running collector), streamed in constant memory, for spreadsheets,\n"
     "pandas or DuckDB. Amounts as integer pence and as exact pounds text (\"1234.50\").\n"
     "  records  body_id, record_id, revision, neighbourhood, service, period, fiscal_year,\n"
     "           amount_pence, amount, poolable, supplier, description, withdrawn\n"
     "           (withdrawn records too: leave them out to re-add the totals)\n"
     "  totals   neighbourhood, body_id, service, period, fiscal_year, poolable, amount_pence,\n"
     "           amount, records\n"
     "  --format csv|jsonl  RFC 4180 CSV with a header row (default), or one JSON object a line\n"
     "  --out FILE          write FILE (in whole, or not at all) instead of stdout\n"
     "  --meta FILE         also write FILE: a JSON object with the store id, the commit the\n"
     "                      export read, the rows and their total\n"
     "Exit status 65, and no --out file, when a value fails its checksum (the key is named).\n"},
    {QUERY_REPORT, "report", OPT_NEIGHBOURHOOD | OPT_PLACE | OPT_FISCAL_YEAR | OPT_OUT, 0,
     "report --neighbourhood CODE | --place NAME [--fiscal-year YYYY-YY] [--out FILE]",
     "Writes one self-contained HTML page about a neighbourhood or a place (no script, nothing\n"
     "fetched, printable on A4): the headline (with pence per resident for a place whose\n"
     "neighbourhoods all have a population), spending by body (poolable or not), which budgets\n"
     "could be pooled (body by service), spending by month and the member neighbourhoods, each\n"
     "chart with its table. Prints the file's path. docs/report.md shows one.\n"
     "  --neighbourhood CODE   the neighbourhood, e.g. E01000001\n"
     "  --place NAME           a place: its neighbourhoods added up (--places FILE with --db)\n"
     "  --fiscal-year YYYY-YY  only this UK fiscal year (default: every month stored)\n"
     "  --out FILE             the page to write (default totalplace-report-NAME.html)\n"},
    {QUERY_HELP, "help", 0, 1, "help [COMMAND]", "This help, or one command's.\n"},
};
#define COMMAND_COUNT (sizeof COMMANDS / sizeof COMMANDS[0])

static const struct {
    const char *name;
    store_breakdown_t by;
} BREAKDOWNS[] = {
    {"body", STORE_BY_BODY},
    {"service", STORE_BY_SERVICE},
    {"fiscal-year", STORE_BY_FISCAL_YEAR},
    {"month", STORE_BY_MONTH},
    {"poolable", STORE_BY_POOLABLE},
    {"neighbourhood", STORE_BY_NEIGHBOURHOOD},
};

#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static const command_info_t *
find_command (const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp (COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

static const command_info_t *
command_info (query_command_t command)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (COMMANDS[i].command == command)
            return &COMMANDS[i];
    return NULL;
}

const char *
query_command_name (query_command_t command)
{
    const command_info_t *info = command_info (command);
    return info ? info->name : "";
}

const char *
query_breakdown_name (store_breakdown_t by)
{
    for (size_t i = 0; i < sizeof BREAKDOWNS / sizeof BREAKDOWNS[0]; i++)
        if (BREAKDOWNS[i].by == by)
            return BREAKDOWNS[i].name;
    return NULL;
}

static const char *
option_name (unsigned bit)
{
    for (const struct option *o = LONG_OPTIONS; o->name; o++)
        if ((unsigned)o->val == bit)
            return o->name;
    return "?";
}

/* ---------------------------------------------------------------- checks of values */

/* Codes and body ids are what wire_validate_record lets into the store: anything else cannot be
 * found, so saying so up front beats an empty answer. */
static int
check_code (const char *what, const char *value, size_t max_len, char *err, size_t err_len)
{
    size_t len = strlen (value);
    if (len == 0 || len > max_len ||
        strspn (value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len)
        return fail (err, err_len,
                     "%s \"%.64s\" is not valid: use 1 to %zu letters, digits, '.', '_' or '-'",
                     what, value, max_len);
    return 0;
}

static int
check_text (const char *what, const char *value, size_t max_len, char *err, size_t err_len)
{
    size_t len = strlen (value);
    if (len == 0 || len > max_len)
        return fail (err, err_len, "%s must be 1 to %zu bytes long", what, max_len);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return fail (err, err_len, "%s must not hold control characters", what);
    return 0;
}

/* --by LIST: one to STORE_MAX_BREAKDOWNS names, comma-separated, each once. */
static int
parse_by (query_args_t *args, const char *value, char *err, size_t err_len)
{
    const char *word = value;
    while (true) {
        size_t len = strcspn (word, ",");
        size_t i = 0;
        while (i < sizeof BREAKDOWNS / sizeof BREAKDOWNS[0] &&
               (strlen (BREAKDOWNS[i].name) != len || strncmp (word, BREAKDOWNS[i].name, len) != 0))
            i++;
        if (i == sizeof BREAKDOWNS / sizeof BREAKDOWNS[0])
            return fail (err, err_len,
                         "--by %.64s: use one to %d of body, service, fiscal-year, month, "
                         "poolable, neighbourhood, comma-separated",
                         value, STORE_MAX_BREAKDOWNS);
        for (size_t j = 0; j < args->by_count; j++)
            if (args->by_list[j] == BREAKDOWNS[i].by)
                return fail (err, err_len, "--by %.64s names %s twice", value, BREAKDOWNS[i].name);
        if (args->by_count == STORE_MAX_BREAKDOWNS)
            return fail (err, err_len, "--by %.64s: at most %d breakdowns", value,
                         STORE_MAX_BREAKDOWNS);
        args->by_list[args->by_count++] = BREAKDOWNS[i].by;
        if (!word[len])
            break;
        word += len + 1;
    }
    args->by = args->by_list[0];
    return 0;
}

static int
apply_option (query_args_t *args, unsigned bit, const char *value, char *err, size_t err_len)
{
    int year, month;
    switch (bit) {
    case OPT_DB:
        if (!*value)
            return fail (err, err_len, "--db needs a folder");
        args->db = value;
        return 0;
    case OPT_COLLECTOR: {
        char reason[256];
        if (settings_check_endpoint ("--collector", value, reason, sizeof reason))
            return fail (err, err_len,
                         "%s (e.g. tcp://127.0.0.1:7701 or ipc:///run/totalplace/query)", reason);
        /* An inproc endpoint lives inside one process, and a tcp wildcard only binds. */
        if (strncmp (value, "inproc://", 9) == 0 || strncmp (value, "tcp://*:", 8) == 0)
            return fail (err, err_len,
                         "--collector %.128s cannot reach a collector: give its host and port "
                         "(tcp://HOST:7701) or its ipc:// path",
                         value);
        args->collector = value;
        return 0;
    }
    case OPT_TIMEOUT: {
        char *end = NULL;
        errno = 0;
        long ms = strtol (value, &end, 10);
        if (!*value || *end || errno || ms < 1 || ms > QUERY_MAX_TIMEOUT_MS)
            return fail (err, err_len,
                         "--timeout %.64s: give the milliseconds to wait for each answer, 1 to %d",
                         value, QUERY_MAX_TIMEOUT_MS);
        args->timeout_ms = (int)ms;
        return 0;
    }
    case OPT_CERT:
    case OPT_COLLECTOR_CERT:
        if (!*value)
            return fail (err, err_len, "--%s needs a file",
                         bit == OPT_CERT ? "cert" : "collector-cert");
        if (bit == OPT_CERT)
            args->cert = value;
        else
            args->collector_cert = value;
        return 0;
    case OPT_ALLOW_PLAIN:
        args->allow_plain = true;
        return 0;
    case OPT_ROLE:
        if (curve_role_parse (value, &args->keygen_role))
            return fail (err, err_len, "--role %.64s: use agent, query or collector", value);
        return 0;
    case OPT_BODIES: {
        char why[CURVE_ERR_LEN];
        if (curve_check_bodies (value, why, sizeof why))
            return fail (err, err_len, "--bodies: %s", why);
        args->keygen_bodies = value;
        return 0;
    }
    case OPT_DIR:
        if (!*value)
            return fail (err, err_len, "--dir needs a folder");
        args->keygen_dir = value;
        return 0;
    case OPT_INTO:
        if (!*value)
            return fail (err, err_len, "--into needs a folder");
        args->backup_into = value;
        return 0;
    case OPT_KEEP: {
        char *end = NULL;
        errno = 0;
        long keep = strtol (value, &end, 10);
        if (!*value || *end || errno || keep < 1 || keep > QUERY_MAX_KEEP)
            return fail (err, err_len, "--keep %.64s: give how many backups to keep, 1 to %d",
                         value, QUERY_MAX_KEEP);
        args->backup_keep = (unsigned)keep;
        return 0;
    }
    case OPT_FORMAT:
        /* export's formats are its own; which applies is known once the command is. */
        args->format_name = value;
        return 0;
    case OPT_OUT:
    case OPT_META:
        if (!*value)
            return fail (err, err_len, "--%s needs a file", option_name (bit));
        *(bit == OPT_OUT ? &args->out : &args->meta) = value;
        return 0;
    case OPT_HELP:
        args->help = true;
        return 0;
    case OPT_VERSION:
        args->version = true;
        return 0;
    case OPT_PLACE:
        args->place = value;
        return check_text ("--place", value, PLACES_MAX_NAME, err, err_len);
    case OPT_PLACES:
        if (!*value)
            return fail (err, err_len, "--places needs a file");
        args->places_file = value;
        return 0;
    case OPT_NEIGHBOURHOOD:
        args->neighbourhood = value;
        return check_code ("--neighbourhood", value, WIRE_MAX_NEIGHBOURHOOD, err, err_len);
    case OPT_BY:
        return parse_by (args, value, err, err_len);
    case OPT_FISCAL_YEAR:
        if (period_fiscal_year_parse (value, &year))
            return fail (err, err_len,
                         "--fiscal-year %.64s: expected a UK fiscal year YYYY-YY such as "
                         "2013-14 (April 2013 to March 2014)",
                         value);
        args->filter.fiscal_year = value;
        return 0;
    case OPT_MONTH:
        if (period_parse (value, &year, &month))
            return fail (err, err_len,
                         "--month %.64s: expected a month YYYY-MM such as 2013-04 (years %d to "
                         "%d)",
                         value, PERIOD_MIN_YEAR, PERIOD_MAX_YEAR);
        args->filter.month = value;
        return 0;
    case OPT_BODY:
        args->filter.body_id = value;
        return check_code ("--body", value, WIRE_MAX_BODY_ID, err, err_len);
    case OPT_SERVICE:
        args->filter.service = value;
        return check_text ("--service", value, WIRE_MAX_SERVICE, err, err_len);
    case OPT_POOLABLE:
        if (strcmp (value, "yes") == 0)
            args->filter.poolable = 1;
        else if (strcmp (value, "no") == 0)
            args->filter.poolable = 0;
        else
            return fail (err, err_len, "--poolable %.64s: use yes or no", value);
        return 0;
    }
    return fail (err, err_len, "unhandled option");
}

/* ---------------------------------------------------------------- parsing */

static int
check_operands (query_args_t *args, const command_info_t *info, char **operands,
                size_t operand_count, char *err, size_t err_len)
{
    if (info->command == QUERY_HELP) {
        if (operand_count > 1)
            return fail (err, err_len, "help takes at most one command, got \"%.64s\"",
                         operands[1]);
        if (operand_count == 1) {
            const command_info_t *on = find_command (operands[0]);
            if (!on)
                return fail (err, err_len, "no command \"%.64s\" to help with", operands[0]);
            args->help_on = on->command;
        }
        return 0;
    }
    if (info->command == QUERY_BACKUP) {
        if (args->backup_into && operand_count)
            return fail (err, err_len, "backup takes DEST or --into PARENT, not both");
        if (!args->backup_into && operand_count != 1)
            return fail (err, err_len,
                         "backup needs DEST (a folder that does not exist yet) or "
                         "--into PARENT");
        args->backup_dest = operand_count ? operands[0] : NULL;
        return 0;
    }
    if (operand_count != info->operands) {
        if (info->operands == 0)
            return fail (err, err_len, "%s takes no arguments, got \"%.64s\"", info->name,
                         operands[0]);
        return fail (err, err_len, "%s needs %zu arguments (%s), got %zu", info->name,
                     info->operands, info->synopsis + strlen (info->name) + 1, operand_count);
    }
    if (info->command == QUERY_EXPORT) {
        if (strcmp (operands[0], "records") != 0 && strcmp (operands[0], "totals") != 0)
            return fail (err, err_len, "export %.64s: export records or totals", operands[0]);
        args->export_what = operands[0][0] == 'r' ? QUERY_EXPORT_RECORDS : QUERY_EXPORT_TOTALS;
        return 0;
    }
    if (info->command == QUERY_KEYGEN) {
        args->keygen_name = operands[0];
        return check_code ("NAME", args->keygen_name, WIRE_MAX_AGENT_ID, err, err_len);
    }
    if (info->command == QUERY_RECORD) {
        args->body_id = operands[0];
        args->record_id = operands[1];
        if (check_code ("BODY_ID", args->body_id, WIRE_MAX_BODY_ID, err, err_len) ||
            check_text ("RECORD_ID", args->record_id, WIRE_MAX_RECORD_ID, err, err_len))
            return -1;
    }
    return 0;
}

int
query_args_parse (query_args_t *args, int argc, char **argv, char *err, size_t err_len)
{
    *args = (query_args_t){.format = REPORT_TABLE,
                           .timeout_ms = QUERY_DEFAULT_TIMEOUT_MS,
                           .filter = {.poolable = -1},
                           .backup_keep = QUERY_DEFAULT_KEEP};
    /* Known before parsing so that a bad option's usage names the command it was meant for. */
    for (int i = 1; i < argc && args->command == QUERY_NONE; i++) {
        const command_info_t *info = find_command (argv[i]);
        if (info)
            args->command = info->command;
    }
    unsigned given = 0;
    /* optind 0 makes glibc start afresh, including its state for permuting argv. */
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":hV", LONG_OPTIONS, NULL)) != -1) {
        const char *word = argv[optind - 1];
        if (c == 'h')
            c = OPT_HELP;
        else if (c == 'V')
            c = OPT_VERSION;
        else if (c == ':')
            return fail (err, err_len, "option %.64s needs a value", word);
        else if (c == '?') {
            /* glibc sets optopt to a long option's value when it was given a value it does
             * not take, to the letter for an unknown short option, and to 0 otherwise. */
            if (optopt == OPT_HELP || optopt == OPT_VERSION)
                return fail (err, err_len, "option %.64s takes no value", word);
            if (optopt)
                return fail (err, err_len, "unknown option -%c", optopt);
            return fail (err, err_len, "unknown option %.64s", word);
        }
        unsigned bit = (unsigned)c;
        if ((given & bit) && bit != OPT_HELP && bit != OPT_VERSION)
            return fail (err, err_len, "option --%s is given twice", option_name (bit));
        given |= bit;
        if (apply_option (args, bit, optarg, err, err_len))
            return -1;
    }
    char **operands = argv + optind;
    size_t operand_count = (size_t)(argc - optind);
    const command_info_t *info = NULL;
    args->command = QUERY_NONE;
    if (operand_count > 0) {
        info = find_command (operands[0]);
        if (!info)
            return fail (err, err_len, "unknown command \"%.64s\"", operands[0]);
        args->command = info->command;
        operands++;
        operand_count--;
    }
    if (args->command == QUERY_HELP)
        args->help = true;
    else if (args->help)
        args->help_on = args->command;
    /* Help and version answer whatever else is on the line, but `help` must name a command. */
    if (args->help || args->version)
        return args->command == QUERY_HELP
                   ? check_operands (args, info, operands, operand_count, err, err_len)
                   : 0;
    if (!info)
        return fail (err, err_len, "no command given");
    /* keygen makes files; it asks no store anything. */
    unsigned allowed = info->command == QUERY_KEYGEN ? (OPT_HELP | OPT_VERSION | info->options)
                                                     : (OPT_GLOBAL | info->options);
    unsigned stray = given & ~allowed;
    for (unsigned bit = 1; stray; bit <<= 1)
        if (stray & bit)
            return fail (err, err_len, "option --%s does not apply to %s", option_name (bit),
                         info->name);
    if (args->db && args->collector)
        return fail (err, err_len, "give either --db or --collector, not both");
    if (args->place && args->neighbourhood)
        return fail (err, err_len, "give either --neighbourhood or --place, not both");
    if (args->places_file && args->collector)
        return fail (err, err_len,
                     "option --places applies only with --db: a collector answers with its own "
                     "places file (collector/places_file)");
    if (args->db && !args->places_file && (args->place || info->command == QUERY_PLACES))
        return fail (err, err_len, "%s with --db needs --places FILE, the places file",
                     args->place ? "--place" : "places");
    for (unsigned bit = OPT_TIMEOUT; bit <= OPT_ALLOW_PLAIN; bit <<= 1)
        if ((given & bit & OPT_REMOTE) && !args->collector)
            return fail (err, err_len, "option --%s applies only with --collector",
                         option_name (bit));
    if (args->format_name && info->command == QUERY_EXPORT) {
        if (strcmp (args->format_name, "jsonl") == 0)
            args->export_format = QUERY_EXPORT_JSONL;
        else if (strcmp (args->format_name, "csv") != 0)
            return fail (err, err_len, "--format %.64s: export writes csv or jsonl",
                         args->format_name);
    }
    else if (args->format_name && report_format_parse (args->format_name, &args->format))
        return fail (err, err_len, "--format %.64s: use table, csv or json", args->format_name);
    if (info->command == QUERY_REPORT && !args->neighbourhood && !args->place)
        return fail (err, err_len, "report needs --neighbourhood CODE or --place NAME");
    if (info->command == QUERY_VERIFY || info->command == QUERY_BACKUP ||
        info->command == QUERY_EXPORT) {
        if (args->collector)
            return fail (err, err_len,
                         "%s reads the store folder itself: give --db DIR (it runs beside the "
                         "collector), not --collector",
                         info->name);
        if (!args->db)
            return fail (err, err_len, "%s needs --db DIR, the collector's store folder",
                         info->name);
        if ((given & OPT_KEEP) && !(given & OPT_INTO))
            return fail (err, err_len, "option --keep applies only with --into");
    }
    if (info->command == QUERY_KEYGEN) {
        if (!(given & OPT_ROLE))
            return fail (err, err_len, "keygen needs --role agent, query or collector");
        if (args->keygen_role == CURVE_ROLE_AGENT && !args->keygen_bodies)
            return fail (err, err_len,
                         "keygen --role agent needs --bodies: the body ids it may publish for");
        if (args->keygen_role != CURVE_ROLE_AGENT && args->keygen_bodies)
            return fail (err, err_len, "option --bodies applies only to --role agent");
    }
    return check_operands (args, info, operands, operand_count, err, err_len);
}

/* ---------------------------------------------------------------- help */

static const char GLOBAL_HELP[] =
    "Global options (before or after the command):\n"
    "  --db DIR               the collector's store folder, opened read-only\n"
    "  --collector ENDPOINT   or ask a running collector on its query endpoint, e.g.\n"
    "                         tcp://127.0.0.1:7701 (collector/query_endpoints)\n"
    "  --timeout MS           with --collector: wait at most MS for each answer (default 5000)\n"
    "  --cert FILE            with --collector: our secret certificate (NAME.cert_secret,\n"
    "                         role query); default $TOTALPLACE_CERT\n"
    "  --collector-cert FILE  with --collector: the collector's public certificate\n"
    "                         (NAME.cert); default $TOTALPLACE_COLLECTOR_CERT\n"
    "  --allow-plain          with --collector: no CURVE, to an ipc:// or loopback collector\n"
    "                         that runs with collector/allow_plain = 1\n"
    "  --places FILE          with --db: the places file (place,neighbourhood[,population])\n"
    "                         for --place and places\n"
    "  --format FORMAT        table (default, for people), csv (for spreadsheets) or json\n"
    "  -h, --help             this help; COMMAND --help for one command's\n"
    "  -V, --version          the version\n";

void
query_args_help (FILE *out, query_command_t command)
{
    const command_info_t *info = command_info (command);
    if (command == QUERY_KEYGEN) {
        fprintf (out, "Usage: totalplace %s\n\n%s", info->synopsis, info->help);
        return;
    }
    if (info && command != QUERY_HELP) {
        fprintf (out, "Usage: totalplace [GLOBAL OPTIONS] %s\n\n%s\n%s", info->synopsis, info->help,
                 GLOBAL_HELP);
        return;
    }
    fputs ("Usage: totalplace [GLOBAL OPTIONS] COMMAND [OPTIONS]\n\n"
           "Answers the central team's questions about place-based spending: totals per\n"
           "neighbourhood, broken down by body, service, period and poolability, from a\n"
           "totalplace collector's store. Amounts are exact: pounds and pence, never rounded.\n\n"
           "Commands:\n",
           out);
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf (out, "  %s\n", COMMANDS[i].synopsis);
    fputs ("\n", out);
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (COMMANDS[i].command != QUERY_HELP)
            fprintf (out, "%s:\n%s\n", COMMANDS[i].name, COMMANDS[i].help);
    fputs (GLOBAL_HELP, out);
    fputs ("\nExit status: 0 answered; 1 could not answer (unknown neighbourhood or record, no\n"
           "answer from the collector in time, the collector refused our key, an I/O error;\n"
           "keygen: could not write); 2 the command line is wrong; --db: 78 no store in the\n"
           "folder or one of a format this version does not use, 65 a damaged store (also a\n"
           "value that fails its checksum when read, and verify finding anything that\n"
           "differs); backup: 73 DEST exists, 74 the disk is full.\n"
           "More: man totalplace, docs/query.md, docs/operations.md.\n",
           out);
}

void
query_args_usage (FILE *out, query_command_t command)
{
    const command_info_t *info = command_info (command);
    if (command == QUERY_KEYGEN)
        fprintf (out, "Usage: totalplace %s\n", info->synopsis);
    else if (info && command != QUERY_HELP)
        fprintf (
            out,
            "Usage: totalplace (--db DIR | --collector ENDPOINT) [--format table|csv|json] %s\n",
            info->synopsis);
    else {
        fputs ("Usage: totalplace (--db DIR | --collector ENDPOINT) [--format table|csv|json] "
               "COMMAND [OPTIONS]\n"
               "Commands:\n",
               out);
        for (size_t i = 0; i < COMMAND_COUNT; i++)
            fprintf (out, "  %s\n", COMMANDS[i].synopsis);
    }
    if (info && command != QUERY_HELP)
        fprintf (out, "Try 'totalplace %s --help' for more.\n", info->name);
    else
        fputs ("Try 'totalplace --help' for more.\n", out);
}
