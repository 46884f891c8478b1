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
    char message[768];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    self->log (self->log_arg, level, message);
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
    if (make_dir (self->dir, err, err_len) || make_dir (self->done_dir, err, err_len)
        || make_dir (self->failed_dir, err, err_len))
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
    free (self);
    *self_p = NULL;
}

void
inbox_configure (inbox_t *self, csv_reader_t *reader, size_t batch_records)
{
    self->reader = reader;
    self->batch_records = batch_records ? batch_records : 1000;
}

void
inbox_counters (inbox_t *self, inbox_counters_t *counters)
{
    *counters = self->counters;
}

/* ---------------------------------------------------------------- one file */

typedef struct {
    inbox_t *inbox;
    const char *name;
    Totalplace__SpendingRecord **records; /* the batch being filled */
    size_t record_count;
    outbox_item_t *items; /* encoded batches of the file so far */
    size_t item_count, item_capacity;
    uint64_t first_seq;
    FILE *rejects; /* opened on the first rejected row */
    char *rejects_tmp;
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
    (void) line;
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

static int
on_reject (void *arg, size_t line, const char *reason)
{
    file_job_t *job = arg;
    if (!job->rejects) {
        job->rejects = fopen (job->rejects_tmp, "w");
        if (!job->rejects) {
            snprintf (job->error, sizeof job->error, "cannot create %s: %s", job->rejects_tmp,
                      strerror (errno));
            return JOB_STOP_ERROR;
        }
        fputs ("file,line,reason\n", job->rejects);
    }
    write_csv_text (job->rejects, job->name);
    fprintf (job->rejects, ",%zu,", line);
    write_csv_text (job->rejects, reason);
    fputc ('\n', job->rejects);
    job->rejected++;
    return 0;
}

static void
job_clear (file_job_t *job)
{
    free_records (job);
    free (job->records);
    for (size_t i = 0; i < job->item_count; i++)
        free ((void *) job->items[i].payload);
    free (job->items);
    if (job->rejects)
        fclose (job->rejects);
    if (job->rejects_tmp)
        unlink (job->rejects_tmp);
    free (job->rejects_tmp);
}

/* Picks a free name in folder for name (adding .1, .2 ... before the extension when the same
 * file was processed before). */
static char *
free_name_in (const char *folder, const char *name, const char *suffix)
{
    const char *dot = strrchr (name, '.');
    size_t stem = dot ? (size_t) (dot - name) : strlen (name);
    for (unsigned n = 0; n < 100000; n++) {
        char candidate[1024];
        if (n == 0)
            snprintf (candidate, sizeof candidate, "%s/%.*s%s", folder, (int) stem, name, suffix);
        else
            snprintf (candidate, sizeof candidate, "%s/%.*s.%u%s", folder, (int) stem, name, n,
                      suffix);
        if (access (candidate, F_OK) != 0)
            return strdup (candidate);
    }
    return NULL;
}

static int
move_to_failed (inbox_t *self, const char *path, const char *name, const char *why, char *err,
                size_t err_len)
{
    char *target = free_name_in (self->failed_dir, name, ".csv");
    if (!target)
        return fail (err, err_len, "no free name in %s for %s", self->failed_dir, name);
    size_t len = strlen (target) + 8;
    char *note = malloc (len);
    if (note) {
        snprintf (note, len, "%s.error", target);
        FILE *file = fopen (note, "w");
        if (file) {
            fprintf (file, "%s\n", why);
            fclose (file);
        }
        free (note);
    }
    int rc = rename (path, target);
    int saved = errno;
    free (target);
    if (rc != 0)
        return fail (err, err_len, "cannot move %s to %s: %s", path, self->failed_dir,
                     strerror (saved));
    sync_dir (self->failed_dir);
    sync_dir (self->dir);
    self->counters.files_failed++;
    say (self, AGENT_LOG_ERROR, "%s: %s; moved to %s", name, why, self->failed_dir);
    return INBOX_PROCESSED;
}

static int
process_file (inbox_t *self, const char *name, char *err, size_t err_len)
{
    char *path = join_path (self->dir, name);
    if (!path)
        return fail (err, err_len, "out of memory");
    file_job_t job = {.inbox = self, .name = name, .first_seq = outbox_next_seq (self->outbox)};
    job.records = calloc (self->batch_records, sizeof *job.records);
    size_t tmp_len = strlen (self->done_dir) + strlen (name) + 32;
    job.rejects_tmp = malloc (tmp_len);
    if (!job.records || !job.rejects_tmp) {
        free (path);
        job_clear (&job);
        return fail (err, err_len, "out of memory");
    }
    snprintf (job.rejects_tmp, tmp_len, "%s/.%s.rejects.tmp", self->done_dir, name);

    csv_reader_stats_t stats;
    char read_err[512] = "";
    int rc = csv_reader_read_file (self->reader, path, on_record, on_reject, &job, &stats,
                                   read_err, sizeof read_err);
    if (rc == 0)
        rc = flush_batch (&job);
    if (rc == JOB_STOP_ERROR) {
        rc = fail (err, err_len, "%s: %s", name, job.error);
        goto out;
    }
    if (rc != 0) {
        /* The file as a whole is unusable (no header, a required column missing...). */
        rc = move_to_failed (self, path, name, read_err, err, err_len);
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
            rc = move_to_failed (self, path, name, why, err, err_len);
            goto out;
        }
        if (rc) {
            rc = fail (err, err_len, "%s", put_err);
            goto out;
        }
    }
    self->said_full = false;
    /* The batches are durable: now keep the rejects and retire the file. A crash before the
     * rename means the file is read again, which the collector's dedup makes harmless. */
    if (job.rejects) {
        int bad = fflush (job.rejects) != 0 || fsync (fileno (job.rejects)) != 0;
        bad |= fclose (job.rejects) != 0;
        job.rejects = NULL;
        char *rejects = free_name_in (self->done_dir, name, ".rejects.csv");
        if (bad || !rejects || rename (job.rejects_tmp, rejects) != 0) {
            free (rejects);
            rc = fail (err, err_len, "cannot keep the rejected rows of %s in %s: %s", name,
                       self->done_dir, strerror (errno));
            goto out;
        }
        free (rejects);
    }
    char *done = free_name_in (self->done_dir, name, ".csv");
    if (!done || rename (path, done) != 0) {
        free (done);
        rc = fail (err, err_len, "cannot move %s to %s: %s", path, self->done_dir,
                   strerror (errno));
        goto out;
    }
    free (done);
    sync_dir (self->done_dir);
    sync_dir (self->dir);
    self->counters.files_done++;
    self->counters.records += stats.records;
    self->counters.rows_rejected += job.rejected;
    say (self, AGENT_LOG_INFO,
         "%s: %" PRIu64 " records in %zu batches queued, %" PRIu64 " rows rejected%s", name,
         stats.records, job.item_count, job.rejected,
         job.rejected ? " (see done/*.rejects.csv)" : "");
    rc = INBOX_PROCESSED;
out:
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
