/* cli_export: one snapshot scanned once, each entry decoded, its texts looked up in the snapshot's
 * dictionaries and written out at once: memory stays that of one row whatever the store holds. */
#include "cli_export.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_store.h"
#include "err_text.h"
#include "period.h"
#include "report.h"
#include "staged_file.h"

#define fail(...) err_text (__VA_ARGS__)
#define ERR_LEN   1024

/* One row's fields as text or integer, in column order, for either format. */
typedef enum { FIELD_TEXT, FIELD_INTEGER, FIELD_BOOL } field_type_t;

typedef struct {
    const char *name;
    field_type_t type;
    const char *text;
    int64_t integer;
} field_t;

typedef struct {
    store_snapshot_t *snapshot;
    query_export_format_t format;
    FILE *out;
    cli_export_summary_t summary;
    bool header_written;
    char *err;
    size_t err_len;
} export_t;

static int
write_csv (export_t *self, const field_t *fields, size_t count)
{
    if (!self->header_written) {
        for (size_t i = 0; i < count; i++)
            if ((i && fputc (',', self->out) == EOF) ||
                report_csv_field (self->out, fields[i].name))
                return -1;
        if (fputs ("\r\n", self->out) == EOF)
            return -1;
        self->header_written = true;
    }
    for (size_t i = 0; i < count; i++) {
        if (i && fputc (',', self->out) == EOF)
            return -1;
        int rc = 0;
        if (fields[i].type == FIELD_TEXT)
            rc = report_csv_field (self->out, fields[i].text);
        else if (fields[i].type == FIELD_BOOL)
            rc = fputs (fields[i].integer ? "yes" : "no", self->out) == EOF ? -1 : 0;
        else
            rc = fprintf (self->out, "%" PRId64, fields[i].integer) < 0 ? -1 : 0;
        if (rc)
            return -1;
    }
    return fputs ("\r\n", self->out) == EOF ? -1 : 0;
}

static int
write_jsonl (export_t *self, const field_t *fields, size_t count)
{
    json_t *line = json_object ();
    if (!line)
        return fail (self->err, self->err_len, STORE_ERR, "out of memory");
    for (size_t i = 0; i < count; i++) {
        json_t *value = fields[i].type == FIELD_TEXT   ? json_string (fields[i].text)
                        : fields[i].type == FIELD_BOOL ? json_boolean (fields[i].integer)
                                                       : json_integer (fields[i].integer);
        /* jansson refuses text that is not UTF-8: say which field, rather than drop it. */
        if (!value || json_object_set_new (line, fields[i].name, value)) {
            json_decref (line);
            return fail (self->err, self->err_len, STORE_ERR,
                         "cannot write %s \"%.64s\" as JSON (not UTF-8?)", fields[i].name,
                         fields[i].type == FIELD_TEXT ? fields[i].text : "");
        }
    }
    int rc = json_dumpf (line, self->out, JSON_COMPACT);
    json_decref (line);
    if (rc || fputc ('\n', self->out) == EOF)
        return -1;
    return 0;
}

/* Writes one row; a write error is a failure named with errno. */
static int
write_row (export_t *self, const field_t *fields, size_t count)
{
    errno = 0;
    int rc = self->format == QUERY_EXPORT_JSONL ? write_jsonl (self, fields, count)
                                                : write_csv (self, fields, count);
    if (rc == -1 || ferror (self->out))
        return fail (self->err, self->err_len, STORE_ERR, "cannot write the export: %s",
                     errno ? strerror (errno) : "write error");
    if (rc)
        return rc;
    self->summary.rows++;
    return 0;
}

/* Damage stops the export: a short export must never look like a whole one. */
static int
damaged (export_t *self, const store_entry_t *entry)
{
    char key[256];
    store_snapshot_key_text (self->snapshot, entry->db, entry->key, entry->key_len, key,
                             sizeof key);
    return fail (self->err, self->err_len, STORE_ERR_DAMAGED,
                 "the value of key \"%s\" in database \"%s\" %s: the export stops here, "
                 "incomplete; run totalplace verify --db on the store and restore a backup "
                 "(docs/operations.md)",
                 key, store_db_name (entry->db), entry->damage);
}

/* The text of id, "" for id 0 (no supplier or description). */
static int
text_of (export_t *self, unsigned kind, uint32_t id, const char **text)
{
    size_t len;
    if (id == 0) {
        *text = "";
        return 0;
    }
    return store_snapshot_text (self->snapshot, kind, id, text, &len, self->err, self->err_len);
}

static int
add_amount (export_t *self, int64_t amount_pence)
{
    if (__builtin_add_overflow (self->summary.amount_pence, amount_pence,
                                &self->summary.amount_pence))
        return fail (self->err, self->err_len, STORE_ERR,
                     "the exported amounts add up past the largest total in pence");
    return 0;
}

/* period and fiscal year of a stored month. */
static void
month_texts (uint32_t month, char *period, char *fiscal_year)
{
    store_codec_period (month, period);
    if (period_fiscal_year (period, fiscal_year, FISCAL_YEAR_LEN))
        fiscal_year[0] = '\0';
}

static int
record_row (void *arg, const store_entry_t *entry)
{
    export_t *self = arg;
    if (entry->damage)
        return damaged (self, entry);
    const store_codec_record_t *r = &entry->record;
    const char *body, *neighbourhood, *service, *supplier, *description;
    int rc = text_of (self, STORE_TEXT_BODY, entry->body, &body);
    if (!rc)
        rc = text_of (self, STORE_TEXT_NEIGHBOURHOOD, r->neighbourhood, &neighbourhood);
    if (!rc)
        rc = text_of (self, STORE_TEXT_SERVICE, r->service, &service);
    if (!rc)
        rc = text_of (self, STORE_TEXT_SUPPLIER, r->supplier, &supplier);
    if (!rc)
        rc = text_of (self, STORE_TEXT_DESCRIPTION, r->description, &description);
    if (rc)
        return rc;
    char record_id[STORE_CODEC_RECORD_KEY_MAX + 1];
    size_t id_len =
        entry->record_id_len < sizeof record_id - 1 ? entry->record_id_len : sizeof record_id - 1;
    memcpy (record_id, entry->record_id, id_len);
    record_id[id_len] = '\0';
    char period[8], fiscal_year[FISCAL_YEAR_LEN], pounds[REPORT_POUNDS_LEN];
    month_texts (r->month, period, fiscal_year);
    report_pounds (r->amount_pence, false, pounds, sizeof pounds);
    const field_t fields[] = {
        {"body_id", FIELD_TEXT, body, 0},
        {"record_id", FIELD_TEXT, record_id, 0},
        {"revision", FIELD_INTEGER, NULL, r->revision},
        {"neighbourhood", FIELD_TEXT, neighbourhood, 0},
        {"service", FIELD_TEXT, service, 0},
        {"period", FIELD_TEXT, period, 0},
        {"fiscal_year", FIELD_TEXT, fiscal_year, 0},
        {"amount_pence", FIELD_INTEGER, NULL, r->amount_pence},
        {"amount", FIELD_TEXT, pounds, 0},
        {"poolable", FIELD_BOOL, NULL, r->poolable},
        {"supplier", FIELD_TEXT, supplier, 0},
        {"description", FIELD_TEXT, description, 0},
        {"withdrawn", FIELD_BOOL, NULL, r->withdrawn},
    };
    if (r->withdrawn)
        self->summary.withdrawn++;
    else if ((rc = add_amount (self, r->amount_pence)) != 0)
        return rc;
    return write_row (self, fields, sizeof fields / sizeof fields[0]);
}

static int
cell_row (void *arg, const store_entry_t *entry)
{
    export_t *self = arg;
    if (entry->damage)
        return damaged (self, entry);
    const store_codec_cell_t *c = &entry->cell;
    const char *body, *neighbourhood, *service;
    int rc = text_of (self, STORE_TEXT_NEIGHBOURHOOD, c->neighbourhood, &neighbourhood);
    if (!rc)
        rc = text_of (self, STORE_TEXT_BODY, c->body, &body);
    if (!rc)
        rc = text_of (self, STORE_TEXT_SERVICE, c->service, &service);
    if (!rc)
        rc = add_amount (self, entry->amount.amount_pence);
    if (rc)
        return rc;
    char period[8], fiscal_year[FISCAL_YEAR_LEN], pounds[REPORT_POUNDS_LEN];
    month_texts (c->month, period, fiscal_year);
    report_pounds (entry->amount.amount_pence, false, pounds, sizeof pounds);
    const field_t fields[] = {
        {"neighbourhood", FIELD_TEXT, neighbourhood, 0},
        {"body_id", FIELD_TEXT, body, 0},
        {"service", FIELD_TEXT, service, 0},
        {"period", FIELD_TEXT, period, 0},
        {"fiscal_year", FIELD_TEXT, fiscal_year, 0},
        {"poolable", FIELD_BOOL, NULL, c->poolable},
        {"amount_pence", FIELD_INTEGER, NULL, entry->amount.amount_pence},
        {"amount", FIELD_TEXT, pounds, 0},
        {"records", FIELD_INTEGER, NULL, entry->amount.records},
    };
    return write_row (self, fields, sizeof fields / sizeof fields[0]);
}

/* An empty CSV export still has its header, so that tools read it as a table with no rows. */
static int
write_empty_header (export_t *self, query_export_t what)
{
    static const char records[] = "body_id,record_id,revision,neighbourhood,service,period,"
                                  "fiscal_year,amount_pence,amount,poolable,supplier,"
                                  "description,withdrawn\r\n";
    static const char totals[] = "neighbourhood,body_id,service,period,fiscal_year,poolable,"
                                 "amount_pence,amount,records\r\n";
    if (self->format != QUERY_EXPORT_CSV || self->header_written)
        return 0;
    if (fputs (what == QUERY_EXPORT_RECORDS ? records : totals, self->out) == EOF)
        return fail (self->err, self->err_len, STORE_ERR, "cannot write the export: %s",
                     strerror (errno));
    return 0;
}

int
cli_export_write (store_t *store, query_export_t what, query_export_format_t format, FILE *out,
                  cli_export_summary_t *summary, char *err, size_t err_len)
{
    export_t self = {.format = format, .out = out, .err = err, .err_len = err_len};
    store_identity_t identity;
    store_identity (store, &identity);
    memcpy (self.summary.store_id, identity.store_id, sizeof self.summary.store_id);
    self.snapshot = store_snapshot_new (store, err, err_len);
    if (!self.snapshot)
        return STORE_ERR;
    self.summary.commit = store_snapshot_commit (self.snapshot);
    int rc = store_snapshot_scan (
        self.snapshot, what == QUERY_EXPORT_RECORDS ? STORE_DB_RECORDS : STORE_DB_CELLS,
        what == QUERY_EXPORT_RECORDS ? record_row : cell_row, &self, err, err_len);
    if (rc == 0)
        rc = write_empty_header (&self, what);
    if (rc == 0 && fflush (out))
        rc = fail (err, err_len, STORE_ERR, "cannot write the export: %s", strerror (errno));
    store_snapshot_destroy (&self.snapshot);
    if (summary)
        *summary = self.summary;
    return rc;
}

/* ---------------------------------------------------------------- the command */

static int
write_meta (const query_args_t *args, const cli_export_summary_t *summary, char *err,
            size_t err_len)
{
    char written[32];
    time_t now = time (NULL);
    struct tm tm;
    strftime (written, sizeof written, "%Y-%m-%dT%H:%M:%SZ", gmtime_r (&now, &tm));
    json_t *meta =
        json_pack ("{s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:s}", "store_id", summary->store_id,
                   "commit", (json_int_t)summary->commit, "export",
                   args->export_what == QUERY_EXPORT_RECORDS ? "records" : "totals", "format",
                   args->export_format == QUERY_EXPORT_JSONL ? "jsonl" : "csv", "rows",
                   (json_int_t)summary->rows, "withdrawn", (json_int_t)summary->withdrawn,
                   "amount_pence", (json_int_t)summary->amount_pence, "written", written);
    if (!meta)
        return fail (err, err_len, STORE_ERR, "out of memory");
    staged_file_t staged;
    int rc = staged_file_open (&staged, args->meta, err, err_len);
    if (rc == 0) {
        /* A write error shows at the commit, which checks the stream. */
        json_dumpf (meta, staged.file, JSON_INDENT (2));
        fputc ('\n', staged.file);
        rc = staged_file_commit (&staged, err, err_len);
    }
    json_decref (meta);
    return rc ? STORE_ERR : 0;
}

int
cli_export_run (const query_args_t *args)
{
    char err[ERR_LEN];
    int code = STORE_ERR;
    store_t *store = cli_store_open (args->db, &code, err, sizeof err);
    if (!store) {
        fprintf (stderr, "totalplace: %s\n", err);
        return store_exit_status (code);
    }
    staged_file_t staged = {.file = NULL};
    cli_export_summary_t summary;
    int rc = args->out && staged_file_open (&staged, args->out, err, sizeof err) ? STORE_ERR : 0;
    if (rc == 0) {
        rc = cli_export_write (store, args->export_what, args->export_format,
                               args->out ? staged.file : stdout, &summary, err, sizeof err);
        if (args->out && rc)
            staged_file_abandon (&staged);
        else if (args->out && staged_file_commit (&staged, err, sizeof err))
            rc = STORE_ERR;
    }
    if (rc == 0 && args->meta)
        rc = write_meta (args, &summary, err, sizeof err);
    store_destroy (&store);
    if (rc) {
        fprintf (stderr, "totalplace: export: %s\n", err);
        return rc == STORE_ERR_DAMAGED ? store_exit_status (rc) : QUERY_EXIT_FAILED;
    }
    return QUERY_EXIT_OK;
}
