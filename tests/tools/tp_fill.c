/* tp_fill: test tool that opens a store (made by `totalplace-collector init`) and applies records
 * given on its command line, or one per line on stdin, with store_apply as one batch; prints each
 * outcome.
 *
 * Usage: tp_fill [--agent ID] [--seq N] DIR [RECORD...]
 * A RECORD is fields joined by '|' (so service names may hold commas and quotes):
 *   body|record|revision|neighbourhood|service|period|amount_pence|poolable|withdrawn|supplier|description
 * poolable and withdrawn are y or n; the last four fields may be left off (n, n, "", "").
 * Without RECORD arguments, records are read from stdin, one per line; blank lines and lines
 * starting with '#' are skipped. Output: one line per record, "INDEX OUTCOME" and, when rejected,
 * " REASON". Exit status 0 when the batch was applied (whatever each record did), 1 when the
 * store failed, 2 for a malformed command line or record. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "test_support.h"
#include "wire.h"

#define FIELDS         11
#define LINE_MAX_BYTES 4096

static int
parse_int (const char *text, int64_t min, int64_t max, int64_t *value)
{
    char *end;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || end == text || *end || parsed < min || parsed > max)
        return -1;
    *value = parsed;
    return 0;
}

static int
parse_flag (const char *text, bool *value)
{
    if (strcmp (text, "y") == 0)
        *value = true;
    else if (strcmp (text, "n") == 0 || !*text)
        *value = false;
    else
        return -1;
    return 0;
}

/* Splits line (modified in place) at '|' into a record added to batch. */
static int
add_record (Totalplace__Batch *batch, char *line, const char *where)
{
    char *fields[FIELDS] = {"", "", "", "", "", "", "", "", "", "", ""};
    size_t n = 0;
    fields[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == '|') {
            if (n == FIELDS) {
                fprintf (stderr, "tp_fill: %s: more than %d fields\n", where, FIELDS);
                return -1;
            }
            *p = '\0';
            fields[n++] = p + 1;
        }
    int64_t revision, amount;
    bool poolable, withdrawn;
    if (n < 7 || parse_int (fields[2], 0, UINT32_MAX, &revision) ||
        parse_int (fields[6], INT64_MIN, INT64_MAX, &amount) || parse_flag (fields[7], &poolable) ||
        parse_flag (fields[8], &withdrawn)) {
        fprintf (stderr,
                 "tp_fill: %s: expected body|record|revision|neighbourhood|service|period|"
                 "amount_pence[|poolable y/n|withdrawn y/n|supplier|description]\n",
                 where);
        return -1;
    }
    Totalplace__SpendingRecord *record =
        test_record (fields[0], fields[1], (uint32_t)revision, fields[3], fields[4], fields[5],
                     amount, poolable);
    record->withdrawn = withdrawn;
    free (record->supplier);
    free (record->description);
    record->supplier = strdup (fields[9]);
    record->description = strdup (fields[10]);
    if (!record->supplier || !record->description) {
        fprintf (stderr, "tp_fill: out of memory\n");
        test_record_free (&record);
        return -1;
    }
    test_batch_add (batch, record);
    return 0;
}

static int
read_stdin (Totalplace__Batch *batch)
{
    char line[LINE_MAX_BYTES];
    size_t number = 0;
    while (fgets (line, sizeof line, stdin)) {
        number++;
        line[strcspn (line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char where[32];
        snprintf (where, sizeof where, "stdin line %zu", number);
        if (add_record (batch, line, where))
            return -1;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    const char *agent = "tp_fill";
    int64_t seq = 1;
    static const struct option options[] = {{"agent", required_argument, NULL, 'a'},
                                            {"seq", required_argument, NULL, 's'},
                                            {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "", options, NULL)) != -1) {
        if (c == 'a')
            agent = optarg;
        else if (c == 's' && parse_int (optarg, 0, INT64_MAX, &seq) == 0)
            continue;
        else {
            fprintf (stderr, "usage: tp_fill [--agent ID] [--seq N] DIR [RECORD...]\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf (stderr, "usage: tp_fill [--agent ID] [--seq N] DIR [RECORD...]\n");
        return 2;
    }
    const char *dir = argv[optind++];
    Totalplace__Batch *batch = test_batch_new (agent, (uint64_t)seq);
    int rc = 0;
    if (optind == argc)
        rc = read_stdin (batch);
    for (int i = optind; rc == 0 && i < argc; i++) {
        char *copy = strdup (argv[i]), where[32];
        snprintf (where, sizeof where, "record argument %d", i - optind + 1);
        rc = copy ? add_record (batch, copy, where) : -1;
        free (copy);
    }
    if (rc == 0 && batch->n_records > WIRE_MAX_RECORDS_PER_BATCH) {
        fprintf (stderr, "tp_fill: at most %u records at a time\n", WIRE_MAX_RECORDS_PER_BATCH);
        rc = -1;
    }
    if (rc) {
        test_batch_free (&batch);
        return 2;
    }

    char err[STORE_ERR_LEN];
    store_options_t store_options = {.path = dir, .map_size = 1u << 20};
    store_t *store = store_new (&store_options, NULL, err, sizeof err);
    if (!store) {
        fprintf (stderr, "tp_fill: %s\n", err);
        test_batch_free (&batch);
        return 1;
    }
    store_result_t *results = calloc (batch->n_records ? batch->n_records : 1, sizeof *results);
    int status = 0;
    if (!results || store_apply (store, &batch, 1, &results, NULL, err, sizeof err)) {
        fprintf (stderr, "tp_fill: %s\n", results ? err : "out of memory");
        status = 1;
    }
    for (size_t i = 0; status == 0 && i < batch->n_records; i++) {
        printf ("%zu %s", i, store_outcome_name (results[i].outcome));
        if (results[i].outcome == STORE_REJECTED)
            printf (" %s", results[i].reason);
        printf ("\n");
    }
    free (results);
    store_destroy (&store);
    test_batch_free (&batch);
    return status;
}
