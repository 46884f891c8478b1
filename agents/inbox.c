/* inbox: one dropped CSV file at a time, from the inbox folder into the durable outbox. */
#include "inbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire.h"

struct _inbox_t {
    char *dir, *done_dir, *failed_dir;
    outbox_t *outbox;
    csv_reader_t *reader;
    char *agent_id;
    size_t batch_records;
    agent_log_fn *log;
    void *log_arg;
    bool said_full; /* the outbox-full warning is said once per episode, not per scan */
    export_policy_t policy;
    char *config; /* policy.config points here */
    inbox_counters_t counters;
};

static int fail (char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
fail (char *err, size_t err_len, const char *format, ...)
{
    if (err && err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, err_len, format, args);
        va_end (args);
    }
    return INBOX_ERR;
}

static void say (inbox_t *self, agent_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
say (inbox_t *self, agent_level_t level, const char *format, ...)
{
    if (!self->log)
        return;
    /* Built in memory of its own size: a note is never cut short. */
    char *message = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&message, &size);
    if (!out)
        return;
    va_list args;
    va_start (args, format);
    vfprintf (out, format, args);
    va_end (args);
    if (fclose (out) == 0)
        self->log (self->log_arg, level, message);
    free (message);
}

static char *
join_path (const char *dir, const char *name)
{
    size_t len = strlen (dir) + strlen (name) + 2;
    char *path = malloc (len);
    if (path)
        snprintf (path, len, "%s/%s", dir, name);
    return path;
}

static int
make_dir (const char *path, char *err, size_t err_len)
{
    if (mkdir (path, 0750) != 0 && errno != EEXIST)
        return fail (err, err_len, "cannot create folder %s: %s", path, strerror (errno));
    return 0;
}

/* Makes a rename durable: the directory entry itself must reach the disk. */
static void
sync_dir (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync (fd);
        close (fd);
    }
}

inbox_t *
inbox_new (const char *dir, outbox_t *outbox, csv_reader_t *reader, const char *agent_id,
           size_t batch_records, agent_log_fn *log, void *log_arg, char *err, size_t err_len)
{
    inbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory");
        return NULL;
    }
    self->dir = strdup (dir);
    self->done_dir = join_path (dir, "done");
    self->failed_dir = join_path (dir, "failed");
    self->agent_id = strdup (agent_id);
    if (!self->dir || !self->done_dir || !self->failed_dir || !self->agent_id) {
        fail (err, err_len, "out of memory");
        inbox_destroy (&self);
        return NULL;
    }
    self->outbox = outbox;
    self->reader = reader;
    self->batch_records = batch_records ? batch_records : 1000;
    self->log = log;
    self->log_arg = log_arg;
    self->policy = (export_policy_t){.max_rejected_percent = 50, .hold_repeated_ids = true};
    if (make_dir (self->dir, err, err_len) || make_dir (self->done_dir, err, err_len) ||
        make_dir (self->failed_dir, err, err_len))
        inbox_destroy (&self);
    return self;
}

void
inbox_destroy (inbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    inbox_t *self = *self_p;
    free (self->dir);
    free (self->done_dir);
    free (self->failed_dir);
    free (self->agent_id);
    free (self->config);
    free (self);
    *self_p = NULL;
}

void
inbox_configure (inbox_t *self, csv_reader_t *reader, size_t batch_records)
{
    self->reader = reader;
    self->batch_records = batch_records ? batch_records : 1000;
}

int
inbox_set_policy (inbox_t *self, const export_policy_t *policy)
{
    char *config = policy->config ? strdup (policy->config) : NULL;
    if (policy->config && !config)
        return INBOX_ERR;
    free (self->config);
    self->config = config;
    self->policy = *policy;
    self->policy.config = config;
    return 0;
}

void
inbox_counters (inbox_t *self, inbox_counters_t *counters)
{
    *counters = self->counters;
}

/* ---------------------------------------------------------------- one file */

/* A side file of the job (rejected rows, warnings): written under a hidden name in done/ and given
 * its real name beside the file once the file's fate is known. */
typedef struct {
    FILE *file;
    char *tmp;
    const char *suffix; /* ".rejects.csv" */
    const char *header; /* "file,line,reason\n" */
} side_file_t;

typedef struct {
    inbox_t *inbox;
    const char *name;
    Totalplace__SpendingRecord **records; /* the batch being filled */
    size_t record_count;
    outbox_item_t *items; /* encoded batches of the file so far */
    size_t item_count, item_capacity;
    uint64_t first_seq;
    side_file_t rejects, warnings;
    uint64_t rejected;
    char error[CSV_READER_REASON_LEN + 128];
} file_job_t;

#define JOB_STOP_ERROR 2

static void
free_records (file_job_t *job)
{
    for (size_t i = 0; i < job->record_count; i++)
        protobuf_c_message_free_unpacked (&job->records[i]->base, NULL);
    job->record_count = 0;
}

static int
flush_batch (file_job_t *job)
{
    if (job->record_count == 0)
        return 0;
    if (job->item_count == job->item_capacity) {
        size_t capacity = job->item_capacity ? job->item_capacity * 2 : 16;
        outbox_item_t *items = realloc (job->items, capacity * sizeof *items);
        if (!items) {
            snprintf (job->error, sizeof job->error, "out of memory");
            return JOB_STOP_ERROR;
        }
        job->items = items;
        job->item_capacity = capacity;
    }
    Totalplace__Batch batch = TOTALPLACE__BATCH__INIT;
    batch.agent_id = job->inbox->agent_id;
    batch.batch_seq = job->first_seq + job->item_count;
    batch.n_records = job->record_count;
    batch.records = job->records;
    uint8_t *data;
    size_t size;
    int rc = wire_encode (&batch.base, &data, &size, job->error, sizeof job->error);
    free_records (job);
    if (rc)
        return JOB_STOP_ERROR;
    job->items[job->item_count++] = (outbox_item_t){batch.batch_seq, data, size};
    return 0;
}

static int
on_record (void *arg, size_t line, Totalplace__SpendingRecord *record)
{
    (void)line;
    file_job_t *job = arg;
    job->records[job->record_count++] = record;
    if (job->record_count == job->inbox->batch_records)
        return flush_batch (job);
    return 0;
}

static void
write_csv_text (FILE *file, const char *text)
{
    fputc ('"', file);
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            fputc ('"', file);
        fputc (*p, file);
    }
    fputc ('"', file);
}

/* Appends "file,line,text" to a side file, creating it on first use. */
static int
side_write (file_job_t *job, side_file_t *side, size_t line, const char *text)
{
    if (!side->file) {
        side->file = fopen (side->tmp, "w");
        if (!side->file) {
            snprintf (job->error, sizeof job->error, "cannot create %s: %s", side->tmp,
                      strerror (errno));
            return JOB_STOP_ERROR;
        }
        fputs (side->header, side->file);
    }
    write_csv_text (side->file, job->name);
    fprintf (side->file, ",%zu,", line);
    write_csv_text (side->file, text);
    fputc ('\n', side->file);
    return 0;
}

static int
on_reject (void *arg, size_t line, const char *reason)
{
    file_job_t *job = arg;
    job->rejected++;
    return side_write (job, &job->rejects, line, reason);
}

static int
on_warning (void *arg, export_warning_t kind, size_t line, const char *text)
{
    (void)kind;
    file_job_t *job = arg;
    return side_write (job, &job->warnings, line, text);
}

static void
side_clear (side_file_t *side)
{
    if (side->file)
        fclose (side->file);
    side->file = NULL;
    if (side->tmp)
        unlink (side->tmp);
    free (side->tmp);
    side->tmp = NULL;
}

static void
job_clear (file_job_t *job)
{
    free_records (job);
    free (job->records);
    for (size_t i = 0; i < job->item_count; i++)
        free ((void *)job->items[i].payload);
    free (job->items);
    side_clear (&job->rejects);
    side_clear (&job->warnings);
}

/* Picks a free name in folder for name (adding .1, .2 ... before the extension when the same
 * file was processed before). */
static char *
free_name_in (const char *folder, const char *name, const char *suffix)
{
    const char *dot = strrchr (name, '.');
    size_t stem = dot ? (size_t)(dot - name) : strlen (name);
    for (unsigned n = 0; n < 100000; n++) {
        char candidate[1024];
        if (n == 0)
            snprintf (candidate, sizeof candidate, "%s/%.*s%s", folder, (int)stem, name, suffix);
        else
            snprintf (candidate, sizeof candidate, "%s/%.*s.%u%s", folder, (int)stem, name, n,
                      suffix);
        if (access (candidate, F_OK) != 0)
            return strdup (candidate);
    }
    return NULL;
}

/* Syncs a side file and gives it its name in folder, beside the file (target: the file's own new
 * path, so that "april.1.csv" gets "april.1.rejects.csv"). */
static int
side_keep (file_job_t *job, side_file_t *side, const char *target, char *err, size_t err_len)
{
    if (!side->file)
        return 0;
    int bad = fflush (side->file) != 0 || fsync (fileno (side->file)) != 0;
    bad |= fclose (side->file) != 0;
    side->file = NULL;
    size_t stem = strlen (target) - 4; /* without ".csv" */
    size_t len = stem + strlen (side->suffix) + 1;
    char *path = malloc (len);
    if (path)
        snprintf (path, len, "%.*s%s", (int)stem, target, side->suffix);
    if (bad || !path || rename (side->tmp, path) != 0) {
        int saved = errno;
        free (path);
        return fail (err, err_len, "cannot keep %s of %s: %s", side->suffix + 1, job->name,
                     strerror (saved));
    }
    free (path);
    return 0;
}

/* Moves the file to failed/ with its note (NAME.csv.error), and its rejects and warnings beside
 * it. */
static int
move_to_failed (inbox_t *self, file_job_t *job, const char *path, const char *why, char *err,
                size_t err_len)
{
    const char *name = job->name;
    char *target = free_name_in (self->failed_dir, name, ".csv");
    if (!target)
        return fail (err, err_len, "no free name in %s for %s", self->failed_dir, name);
    size_t len = strlen (target) + 8;
    char *note = malloc (len);
    int wrote = 0;
    if (note) {
        snprintf (note, len, "%s.error", target);
        FILE *file = fopen (note, "w");
        if (file) {
            fprintf (file, "%s\n", why);
            wrote = fflush (file) == 0 && fsync (fileno (file)) == 0;
            wrote &= fclose (file) == 0;
        }
        free (note);
    }
    if (!wrote) {
        free (target);
        return fail (err, err_len, "cannot write the note for %s in %s: %s", name, self->failed_dir,
                     strerror (errno));
    }
    int rc = side_keep (job, &job->rejects, target, err, err_len);
    if (rc == 0)
        rc = side_keep (job, &job->warnings, target, err, err_len);
    if (rc == 0 && rename (path, target) != 0)
        rc = fail (err, err_len, "cannot move %s to %s: %s", path, self->failed_dir,
                   strerror (errno));
    free (target);
    if (rc != 0)
        return rc;
    sync_dir (self->failed_dir);
    sync_dir (self->dir);
    self->counters.files_failed++;
    say (self, AGENT_LOG_ERROR, "%s: %s\n  The file is in %s with this note beside it (.error).",
         name, why, self->failed_dir);
    return INBOX_PROCESSED;
}

/* One line for the log saying what was taken from the file and what was not. */
static void
report_taken (inbox_t *self, const char *name, const export_summary_t *summary, size_t batches,
              uint64_t rejected)
{
    const export_stats_t *s = export_summary_stats (summary);
    const csv_layout_t *layout = export_summary_layout (summary);
    for (size_t i = 0; layout && i < csv_layout_note_count (layout); i++)
        say (self, AGENT_LOG_WARNING, "%s: %s", name, csv_layout_note (layout, i));
    bool notable = rejected || s->copies || s->replaced_rows;
    say (self, notable ? AGENT_LOG_WARNING : AGENT_LOG_INFO,
         "%s: %" PRIu64 " records in %zu batches queued from %" PRIu64 " rows, %" PRIu64
         " rows rejected%s%s; %" PRIu64 " totals rows skipped, %" PRIu64
         " rows counted once as exact copies, %" PRIu64 " rows with bytes replaced%s",
         name, s->records, batches, s->rows, rejected, rejected ? " (see done/*.rejects.csv)" : "",
         s->line_ids ? ", ids numbered per line" : "", s->totals_rows, s->copies, s->replaced_rows,
         s->totals_rows || s->copies || s->replaced_rows ? " (see done/*.warnings.csv)" : "");
}

static int
process_file (inbox_t *self, const char *name, char *err, size_t err_len)
{
    char *path = join_path (self->dir, name);
    if (!path)
        return fail (err, err_len, "out of memory");
    file_job_t job = {.inbox = self, .name = name, .first_seq = outbox_next_seq (self->outbox)};
    job.rejects = (side_file_t){.suffix = ".rejects.csv", .header = "file,line,reason\n"};
    job.warnings = (side_file_t){.suffix = ".warnings.csv", .header = "file,line,warning\n"};
    job.records = calloc (self->batch_records, sizeof *job.records);
    size_t tmp_len = strlen (self->done_dir) + strlen (name) + 32;
    job.rejects.tmp = malloc (tmp_len);
    job.warnings.tmp = malloc (tmp_len);
    export_summary_t *summary = export_summary_new ();
    int rc;
    if (!job.records || !job.rejects.tmp || !job.warnings.tmp || !summary) {
        rc = fail (err, err_len, "out of memory");
        goto out;
    }
    snprintf (job.rejects.tmp, tmp_len, "%s/.%s.rejects.tmp", self->done_dir, name);
    snprintf (job.warnings.tmp, tmp_len, "%s/.%s.warnings.tmp", self->done_dir, name);
    export_summary_set_warning_sink (summary, on_warning, &job);

    csv_reader_stats_t stats;
    char read_err[512] = "";
    rc = csv_reader_read_file (self->reader, path, on_record, on_reject, &job, &stats, summary,
                               read_err, sizeof read_err);
    if (rc == 0)
        rc = flush_batch (&job);
    if (rc == JOB_STOP_ERROR) {
        rc = fail (err, err_len, "%s: %s", name, job.error);
        goto out;
    }
    if (rc != 0 && !export_summary_failure (summary))
        export_summary_set_failure (summary, read_err);
    char *note = NULL;
    export_verdict_t verdict = export_summary_verdict (summary, &self->policy, &note);
    if (verdict != EXPORT_DELIVER) {
        /* Nothing of the file is sent: unreadable as a whole, or most of it would be lost. */
        rc = move_to_failed (self, &job, path, note ? note : "out of memory writing the note", err,
                             err_len);
        free (note);
        goto out;
    }
    if (job.item_count) {
        char put_err[OUTBOX_ERR_LEN];
        rc = outbox_put_many (self->outbox, job.items, job.item_count, name, put_err,
                             sizeof put_err);
        if (rc == OUTBOX_ERR_FULL && outbox_count (self->outbox) > 0) {
            if (!self->said_full)
                say (self, AGENT_LOG_WARNING,
                     "outbox full (%zu batches, %" PRIu64 " bytes pending): not taking %s until "
                     "the collector acknowledges more",
                     outbox_count (self->outbox), outbox_bytes (self->outbox), name);
            self->said_full = true;
            rc = INBOX_WAITING;
            goto out;
        }
        if (rc == OUTBOX_ERR_FULL || rc == OUTBOX_ERR_TOO_BIG) {
            char why[512];
            snprintf (why, sizeof why,
                      "the file's %zu batches can never fit in the outbox (%s); split the file or "
                      "raise outbox/max_batches and outbox/max_mb",
                      job.item_count, put_err);
            rc = move_to_failed (self, &job, path, why, err, err_len);
            goto out;
        }
        if (rc) {
            rc = fail (err, err_len, "%s", put_err);
            goto out;
        }
    }
    self->said_full = false;
    /* The batches are durable: now keep the rejects and warnings and retire the file. A crash
     * before the rename means the file is read again, which the collector's dedup makes
     * harmless. */
    char *done = free_name_in (self->done_dir, name, ".csv");
    if (!done) {
        rc = fail (err, err_len, "no free name in %s for %s", self->done_dir, name);
        goto out;
    }
    rc = side_keep (&job, &job.rejects, done, err, err_len);
    if (rc == 0)
        rc = side_keep (&job, &job.warnings, done, err, err_len);
    if (rc == 0 && rename (path, done) != 0)
        rc =
            fail (err, err_len, "cannot move %s to %s: %s", path, self->done_dir, strerror (errno));
    free (done);
    if (rc != 0)
        goto out;
    sync_dir (self->done_dir);
    sync_dir (self->dir);
    self->counters.files_done++;
    self->counters.records += stats.records;
    self->counters.rows_rejected += job.rejected;
    report_taken (self, name, summary, job.item_count, job.rejected);
    rc = INBOX_PROCESSED;
out:
    export_summary_destroy (&summary);
    job_clear (&job);
    free (path);
    return rc;
}

static bool
is_ready_csv (const char *dir, const char *name)
{
    size_t len = strlen (name);
    if (name[0] == '.' || len < 5 || strcasecmp (name + len - 4, ".csv") != 0)
        return false;
    char *path = join_path (dir, name);
    struct stat info;
    bool regular = path && stat (path, &info) == 0 && S_ISREG (info.st_mode);
    free (path);
    return regular;
}

int
inbox_process_next (inbox_t *self, char *err, size_t err_len)
{
    DIR *dir = opendir (self->dir);
    if (!dir)
        return fail (err, err_len, "cannot read inbox %s: %s", self->dir, strerror (errno));
    char *first = NULL;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        if (!is_ready_csv (self->dir, entry->d_name))
            continue;
        if (!first || strcmp (entry->d_name, first) < 0) {
            free (first);
            first = strdup (entry->d_name);
        }
    }
    closedir (dir);
    if (!first)
        return 0;
    int rc = process_file (self, first, err, err_len);
    free (first);
    return rc;
}
