/* inbox: one dropped CSV file at a time, from the inbox folder into the durable outbox, streamed
 * (the file's batches go to the outbox's stage as they are made, so memory does not grow with the
 * file), and taken once whatever happens to the move out of the inbox. */
#include "inbox.h"
#include "err_text.h"

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
#include <time.h>
#include <unistd.h>

#include "file_identity.h"
#include "wire.h"

/* A file taken that could not leave the inbox is tried again this often... */
#define RETRY_MOVE_MS 60000
/* ...and the same trouble (an unmovable file, a paused inbox) is said again at most this often. */
#define REPEAT_SAY_MS 300000
/* Faults of the agent's own folders or outbox pause the taking of files: 1 s, doubling to 60 s. */
#define PAUSE_FIRST_MS 1000
#define PAUSE_MAX_MS   60000

/* A file taken or held whose move out of the inbox failed: it stays, and is not read again. */
typedef struct {
    char *name;
    char *target; /* its name in done/ or failed/ */
    bool held;
    file_identity_t identity;
    uint64_t records;
    int64_t next_try; /* monotonic ms */
    int64_t said_at;  /* monotonic ms; -1: never */
    uint64_t tries;
} unmoved_t;

struct _inbox_t {
    char *dir, *done_dir, *failed_dir, *side_dir;
    outbox_t *outbox;
    csv_reader_t *reader;
    char *agent_id;
    size_t batch_records;
    agent_log_fn *log;
    void *log_arg;
    export_policy_t policy;
    char *config; /* policy.config points here */
    inbox_counters_t counters;
    unmoved_t *unmoved;
    size_t unmoved_count, unmoved_capacity;
    /* The file that waits for room in the outbox, and what it needs. */
    struct {
        char *name;
        file_identity_t identity;
        uint64_t batches, bytes;
    } waiting;
    bool said_full; /* the outbox-full warning is said once per episode, not per scan */
    /* Faults of the agent's own folders or outbox. */
    int64_t pause_until, pause_ms;
    int64_t pause_said_at; /* -1: no fault said in this episode */
    uint64_t pause_quiet;  /* faults not said since */
    char pause_why[512];
};

/* A failure: the message into the caller's err, INBOX_ERR returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, INBOX_ERR, __VA_ARGS__)

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

static int64_t
now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
make_dir (const char *path, mode_t mode, char *err, size_t err_len)
{
    if (mkdir (path, mode) != 0 && errno != EEXIST)
        return fail (err, err_len, "cannot create folder %s: %s", path, strerror (errno));
    return 0;
}

/* A folder a file is moved into (done/, failed/), created when missing, so that a rename into it
 * names the real cause (a read-only inbox cannot create it) rather than "No such file or
 * directory". Returns 0, or -1 with the cause in cause. */
static int
folder_ready (const char *folder, char *cause, size_t cause_len)
{
    struct stat st;
    if (stat (folder, &st) == 0 && S_ISDIR (st.st_mode))
        return 0;
    if (mkdir (folder, 0750) == 0 || errno == EEXIST)
        return 0;
    snprintf (cause, cause_len, "cannot create folder %s: %s", folder, strerror (errno));
    return -1;
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

/* ---------------------------------------------------------------- files that could not move */

static unmoved_t *
find_unmoved (inbox_t *self, const char *name)
{
    for (size_t i = 0; i < self->unmoved_count; i++)
        if (strcmp (self->unmoved[i].name, name) == 0)
            return &self->unmoved[i];
    return NULL;
}

static void
drop_unmoved (inbox_t *self, unmoved_t *entry)
{
    free (entry->name);
    free (entry->target);
    *entry = self->unmoved[--self->unmoved_count];
}

static unmoved_t *
add_unmoved (inbox_t *self, const outbox_file_t *file)
{
    unmoved_t *entry = find_unmoved (self, file->name);
    if (entry)
        drop_unmoved (self, entry);
    if (self->unmoved_count == self->unmoved_capacity) {
        size_t capacity = self->unmoved_capacity ? self->unmoved_capacity * 2 : 8;
        unmoved_t *grown = realloc (self->unmoved, capacity * sizeof *grown);
        if (!grown)
            return NULL;
        self->unmoved = grown;
        self->unmoved_capacity = capacity;
    }
    entry = &self->unmoved[self->unmoved_count];
    *entry = (unmoved_t){.name = strdup (file->name),
                         .target = strdup (file->target ? file->target : ""),
                         .held = file->held,
                         .identity = file->identity,
                         .records = file->records,
                         .next_try = now_ms () + RETRY_MOVE_MS,
                         .said_at = -1};
    if (!entry->name || !entry->target) {
        free (entry->name);
        free (entry->target);
        return NULL;
    }
    self->unmoved_count++;
    return entry;
}

/* Forgets a file that left the inbox (moved, or taken away by a person), durably. A failure is
 * harmless (the record of a file no longer there is forgotten at a later scan). */
static void
forget_file (inbox_t *self, const char *name)
{
    char err[OUTBOX_ERR_LEN];
    if (outbox_file_forget (self->outbox, name, err, sizeof err))
        say (self, AGENT_LOG_DEBUG, "%s: the record of it as taken stays for now: %s", name, err);
    unmoved_t *entry = find_unmoved (self, name);
    if (entry)
        drop_unmoved (self, entry);
}

static int
load_unmoved (void *arg, const outbox_file_t *file)
{
    inbox_t *self = arg;
    unmoved_t *entry = add_unmoved (self, file);
    if (!entry)
        return -1;
    entry->next_try = 0; /* at the first scan */
    return 0;
}

/* ---------------------------------------------------------------- faults */

/* A fault of the agent's own folders or outbox: taking files pauses with a backoff, and the
 * trouble is said at the first fault of an episode, then at most every REPEAT_SAY_MS. */
static void
pause_taking (inbox_t *self, const char *why)
{
    int64_t now = now_ms ();
    self->pause_ms = self->pause_ms ? self->pause_ms * 2 : PAUSE_FIRST_MS;
    if (self->pause_ms > PAUSE_MAX_MS)
        self->pause_ms = PAUSE_MAX_MS;
    self->pause_until = now + self->pause_ms;
    snprintf (self->pause_why, sizeof self->pause_why, "%s", why);
    if (self->pause_said_at >= 0 && now - self->pause_said_at < REPEAT_SAY_MS) {
        self->pause_quiet++;
        return;
    }
    char quiet[96] = "";
    if (self->pause_quiet)
        snprintf (quiet, sizeof quiet, " (%" PRIu64 " more times since it was last said)",
                  self->pause_quiet);
    say (self, AGENT_LOG_ERROR,
         "%s%s; no file is taken from the inbox until this is fixed (tried again with a backoff "
         "up to %d s; said again at most every %d minutes); batches already in the outbox are "
         "still delivered",
         why, quiet, PAUSE_MAX_MS / 1000, REPEAT_SAY_MS / 60000);
    self->pause_said_at = now;
    self->pause_quiet = 0;
}

static void
end_pause (inbox_t *self, const char *name)
{
    if (self->pause_said_at >= 0)
        say (self, AGENT_LOG_INFO, "%s: taken; files are taken from the inbox again", name);
    self->pause_ms = 0;
    self->pause_until = 0;
    self->pause_said_at = -1;
    self->pause_quiet = 0;
}

/* ---------------------------------------------------------------- set-up */

/* Side files of a job cut short by a crash: their file is still in the inbox and read again. */
static void
clean_side_dir (inbox_t *self)
{
    DIR *dir = opendir (self->side_dir);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        size_t len = strlen (entry->d_name);
        if (entry->d_name[0] != '.' || len < 5 || strcmp (entry->d_name + len - 4, ".tmp") != 0)
            continue;
        char *path = join_path (self->side_dir, entry->d_name);
        if (path)
            unlink (path);
        free (path);
    }
    closedir (dir);
}

inbox_t *
inbox_new (const char *dir, const char *side_dir, outbox_t *outbox, csv_reader_t *reader,
           const char *agent_id, size_t batch_records, agent_log_fn *log, void *log_arg, char *err,
           size_t err_len)
{
    inbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory");
        return NULL;
    }
    self->dir = strdup (dir);
    self->done_dir = join_path (dir, "done");
    self->failed_dir = join_path (dir, "failed");
    self->side_dir = strdup (side_dir);
    self->agent_id = strdup (agent_id);
    self->pause_said_at = -1;
    if (!self->dir || !self->done_dir || !self->failed_dir || !self->side_dir || !self->agent_id) {
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
    if (make_dir (self->dir, 0750, err, err_len) || make_dir (self->side_dir, 0700, err, err_len)) {
        inbox_destroy (&self);
        return NULL;
    }
    /* A read-only inbox must not stop delivery: its files are taken and stay where they are. */
    char why[600];
    if (make_dir (self->done_dir, 0750, why, sizeof why) ||
        make_dir (self->failed_dir, 0750, why, sizeof why))
        say (self, AGENT_LOG_ERROR,
             "%s: files taken will stay in the inbox %s (each taken once, and named in an error "
             "line) until the folder can be written",
             why, self->dir);
    clean_side_dir (self);
    if (outbox_foreach_file (outbox, load_unmoved, self, err, err_len)) {
        inbox_destroy (&self);
        return NULL;
    }
    return self;
}

void
inbox_destroy (inbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    inbox_t *self = *self_p;
    while (self->unmoved_count)
        drop_unmoved (self, &self->unmoved[0]);
    free (self->unmoved);
    free (self->waiting.name);
    free (self->dir);
    free (self->done_dir);
    free (self->failed_dir);
    free (self->side_dir);
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
    counters->unmoved = self->unmoved_count;
}

/* ---------------------------------------------------------------- one file */

/* A side file of the job (rejected rows, warnings): written in the side folder under a hidden
 * name and given its real name beside the file once the file's fate is known. */
typedef struct {
    FILE *file;
    char *tmp;
    char *placed;       /* where it was given its name (NULL: not yet) */
    const char *suffix; /* ".rejects.csv" */
    const char *header; /* "file,line,reason\n" */
} side_file_t;

typedef struct {
    inbox_t *inbox;
    const char *name;
    Totalplace__SpendingRecord **records; /* the batch being filled */
    size_t record_count;
    uint64_t next_seq;       /* the seq of the next batch */
    uint64_t batches, bytes; /* made so far (stored, or only counted once the outbox was full) */
    bool counting;           /* the outbox is full: batches are counted, not stored */
    bool too_big;            /* one batch is over the outbox's max_bytes */
    char full_why[OUTBOX_ERR_LEN];
    side_file_t rejects, warnings;
    uint64_t rejected;
    char error[CSV_READER_REASON_LEN + OUTBOX_ERR_LEN];
} file_job_t;

#define JOB_STOP_ERROR 2

static void
free_records (file_job_t *job)
{
    for (size_t i = 0; i < job->record_count; i++)
        protobuf_c_message_free_unpacked (&job->records[i]->base, NULL);
    job->record_count = 0;
}

/* Encodes the batch being filled and stages it in the outbox (or only counts it when the outbox
 * is full, so that what the file needs is known without holding it). */
static int
flush_batch (file_job_t *job)
{
    if (job->record_count == 0)
        return 0;
    Totalplace__Batch batch = TOTALPLACE__BATCH__INIT;
    batch.agent_id = job->inbox->agent_id;
    batch.batch_seq = job->next_seq;
    batch.n_records = job->record_count;
    batch.records = job->records;
    uint8_t *data;
    size_t size;
    int rc = wire_encode (&batch.base, &data, &size, job->error, sizeof job->error);
    uint32_t records = (uint32_t)job->record_count;
    free_records (job);
    if (rc)
        return JOB_STOP_ERROR;
    if (!job->counting) {
        rc = outbox_stage_add (job->inbox->outbox, batch.batch_seq, data, size, records,
                               job->full_why, sizeof job->full_why);
        if (rc == OUTBOX_ERR_FULL || rc == OUTBOX_ERR_TOO_BIG) {
            job->counting = true;
            job->too_big = rc == OUTBOX_ERR_TOO_BIG;
        }
        else if (rc) {
            snprintf (job->error, sizeof job->error, "%s", job->full_why);
            free (data);
            return JOB_STOP_ERROR;
        }
    }
    free (data);
    job->next_seq++;
    job->batches++;
    job->bytes += size;
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

/* Closes a side file, synced; errno is the cause when it returns -1. */
static int
side_sync (side_file_t *side)
{
    if (!side->file)
        return 0;
    int rc = 0, saved = 0;
    if (fflush (side->file) != 0 || fsync (fileno (side->file)) != 0) {
        rc = -1;
        saved = errno;
    }
    if (fclose (side->file) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    side->file = NULL;
    errno = saved;
    return rc;
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
    free (side->placed);
    side->placed = NULL;
}

/* Takes back a side file given its name for a commit that then failed. */
static void
side_unplace (side_file_t *side)
{
    if (side->placed)
        unlink (side->placed);
    free (side->placed);
    side->placed = NULL;
}

static void
job_clear (file_job_t *job)
{
    free_records (job);
    free (job->records);
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

static const char *
base_name (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

/* Copies src to a new file dst, synced (a rename across file systems). errno is the cause when it
 * returns -1; dst is then removed. */
static int
copy_file (const char *src, const char *dst)
{
    int in = open (src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open (dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (out < 0) {
        int saved = errno;
        close (in);
        errno = saved;
        return -1;
    }
    char buffer[65536];
    int rc = 0, saved = 0;
    for (;;) {
        ssize_t got = read (in, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got < 0) {
                rc = -1;
                saved = errno;
            }
            break;
        }
        for (ssize_t done = 0; done < got;) {
            ssize_t wrote = write (out, buffer + done, (size_t)(got - done));
            if (wrote < 0 && errno == EINTR)
                continue;
            if (wrote <= 0) {
                rc = -1;
                saved = wrote < 0 ? errno : ENOSPC;
                break;
            }
            done += wrote;
        }
        if (rc)
            break;
    }
    if (rc == 0 && fsync (out) != 0) {
        rc = -1;
        saved = errno;
    }
    if (close (out) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    close (in);
    if (rc) {
        unlink (dst);
        errno = saved;
    }
    return rc;
}

/* Moves the file at src to dst, copying across file systems. errno is the cause on -1. */
static int
move_file (const char *src, const char *dst)
{
    if (rename (src, dst) == 0)
        return 0;
    if (errno != EXDEV || copy_file (src, dst) != 0)
        return -1;
    unlink (src);
    return 0;
}

/* The path of a side file (or note) of the file that is to be named target ("april.1.csv" gives
 * "april.1.rejects.csv"), in folder. */
static char *
side_path (const char *folder, const char *target, const char *suffix)
{
    size_t stem = strlen (target) - 4; /* without ".csv" */
    size_t len = strlen (folder) + stem + strlen (suffix) + 2;
    char *path = malloc (len);
    if (path)
        snprintf (path, len, "%s/%.*s%s", folder, (int)stem, target, suffix);
    return path;
}

/* Gives a side file its name beside the file in folder; when folder cannot take it, in the side
 * folder under a name of its own (where says which). Returns 0, or -1 with err (the side folder
 * failed too). */
static int
side_place (file_job_t *job, side_file_t *side, const char *folder, const char *target,
            const char **where, char *err, size_t err_len)
{
    inbox_t *self = job->inbox;
    if (!side->tmp || access (side->tmp, F_OK) != 0)
        return 0; /* never written: no rows of that kind */
    char why[600];
    char *path = side_path (folder, target, side->suffix);
    if (!path)
        snprintf (why, sizeof why, "out of memory");
    else if (folder_ready (folder, why, sizeof why) == 0) {
        if (move_file (side->tmp, path) == 0) {
            side->placed = path;
            return 0;
        }
        snprintf (why, sizeof why, "%s", strerror (errno));
    }
    free (path);
    /* Kept in the side folder, under the file's target name made unique there. */
    char kept_name[600];
    snprintf (kept_name, sizeof kept_name, "%.*s%s", (int)(strlen (target) - 4), target,
              side->suffix);
    char *kept = free_name_in (self->side_dir, kept_name, ".csv");
    if (!kept || rename (side->tmp, kept) != 0) {
        int again = errno;
        free (kept);
        return fail (err, err_len, "cannot keep the %s of %s in %s (%s) nor in %s (%s)",
                     side->suffix + 1, job->name, folder, why, self->side_dir, strerror (again));
    }
    say (self, AGENT_LOG_WARNING, "%s: cannot keep the %s in %s: %s; kept in %s as %s", job->name,
         side->suffix + 1, folder, why, self->side_dir, base_name (kept));
    side->placed = kept;
    *where = self->side_dir;
    return 0;
}

/* Syncs both side files and gives them their names (see side_place). */
static int
sides_place (file_job_t *job, const char *folder, const char *target, const char **where, char *err,
             size_t err_len)
{
    *where = folder;
    side_file_t *sides[2] = {&job->rejects, &job->warnings};
    for (size_t i = 0; i < 2; i++)
        if (side_sync (sides[i]) != 0)
            return fail (err, err_len, "cannot write the %s of %s in %s: %s", sides[i]->suffix + 1,
                         job->name, job->inbox->side_dir, strerror (errno));
    for (size_t i = 0; i < 2; i++)
        if (side_place (job, sides[i], folder, target, where, err, err_len))
            return INBOX_ERR;
    return 0;
}

/* Says (at most every REPEAT_SAY_MS for one file) that a file taken or held cannot leave the
 * inbox, and why. */
static void
say_unmoved (inbox_t *self, unmoved_t *entry, const char *why, const char *where)
{
    int64_t now = now_ms ();
    if (entry->said_at >= 0 && now - entry->said_at < REPEAT_SAY_MS)
        return;
    entry->said_at = now;
    char what[160];
    if (entry->held)
        snprintf (what, sizeof what, "held (nothing of it sent)");
    else
        snprintf (what, sizeof what,
                  "taken (%" PRIu64 " records stored in the outbox and delivered from there)",
                  entry->records);
    say (self, AGENT_LOG_ERROR,
         "%s: %s, but it cannot be moved out of the inbox: %s. It stays in %s and is not taken "
         "again while it is unchanged (moving it is tried every %d s; this is said again at most "
         "every %d minutes)%s%s. Make the inbox writable (docs/agent.md, \"Files taken once\")",
         entry->name, what, why, self->dir, RETRY_MOVE_MS / 1000, REPEAT_SAY_MS / 60000,
         where ? "; its notes are in " : "", where ? where : "");
}

/* Moves the file to failed/ with its note (NAME.csv.error), and its rejects and warnings beside
 * it; whatever failed/ cannot take is kept in the side folder. A file that cannot be moved is
 * remembered as held, so that it is not read again. */
static int
move_to_failed (inbox_t *self, file_job_t *job, const file_identity_t *identity, const char *path,
                const char *why, char *err, size_t err_len)
{
    const char *name = job->name;
    char *target = free_name_in (self->failed_dir, name, ".csv");
    if (!target)
        return fail (err, err_len, "no free name in %s for %s", self->failed_dir, name);
    const char *target_name = base_name (target);
    /* The note first, in failed/ or else in the side folder. */
    const char *note_where = self->failed_dir;
    int wrote = 0, saved = 0;
    for (int attempt = 0; attempt < 2 && !wrote; attempt++) {
        char *note = attempt == 0 ? side_path (self->failed_dir, target_name, ".csv.error")
                                  : free_name_in (self->side_dir, target_name, ".csv.error");
        FILE *file = note ? fopen (note, "w") : NULL;
        if (file) {
            fprintf (file, "%s\n", why);
            wrote = fflush (file) == 0 && fsync (fileno (file)) == 0;
            saved = errno;
            wrote &= fclose (file) == 0;
            if (!wrote)
                unlink (note);
        }
        else
            saved = errno;
        free (note);
        if (!wrote && attempt == 0)
            note_where = self->side_dir;
    }
    if (!wrote) {
        free (target);
        return fail (err, err_len, "cannot write the note for %s in %s nor in %s: %s", name,
                     self->failed_dir, self->side_dir, strerror (saved));
    }
    const char *sides_where;
    int rc = sides_place (job, self->failed_dir, target_name, &sides_where, err, err_len);
    if (rc) {
        free (target);
        return rc;
    }
    self->counters.files_failed++;
    say (self, AGENT_LOG_ERROR, "%s: %s\n  The file is in %s with this note beside it (.error).",
         name, why, self->failed_dir);
    char cause[600];
    if (folder_ready (self->failed_dir, cause, sizeof cause) == 0) {
        if (rename (path, target) == 0) {
            sync_dir (self->failed_dir);
            sync_dir (self->dir);
            free (target);
            return INBOX_PROCESSED;
        }
        snprintf (cause, sizeof cause, "cannot move it to %s: %s", self->failed_dir,
                  strerror (errno));
    }
    outbox_file_t file = {.name = name,
                          .target = target_name,
                          .held = true,
                          .identity = *identity,
                          .taken_at = (int64_t)time (NULL),
                          .rejected = job->rejected};
    char remember_err[OUTBOX_ERR_LEN];
    if (outbox_file_remember (self->outbox, &file, remember_err, sizeof remember_err))
        say (self, AGENT_LOG_WARNING, "%s: cannot remember it as held (%s): it will be read again",
             name, remember_err);
    unmoved_t *entry = add_unmoved (self, &file);
    bool elsewhere = note_where != self->failed_dir || sides_where != self->failed_dir;
    if (entry)
        say_unmoved (self, entry, cause, elsewhere ? self->side_dir : NULL);
    free (target);
    return INBOX_PROCESSED;
}

/* One line for the log saying what was taken from the file and what was not. */
static void
report_taken (inbox_t *self, const char *name, const export_summary_t *summary, uint64_t batches,
              uint64_t rejected, const char *sides_where)
{
    const export_stats_t *s = export_summary_stats (summary);
    const csv_layout_t *layout = export_summary_layout (summary);
    for (size_t i = 0; layout && i < csv_layout_note_count (layout); i++)
        say (self, AGENT_LOG_WARNING, "%s: %s", name, csv_layout_note (layout, i));
    bool notable = rejected || s->copies || s->replaced_rows;
    char rejects_where[600], warnings_where[600];
    snprintf (rejects_where, sizeof rejects_where, " (see %s/*.rejects.csv)", sides_where);
    snprintf (warnings_where, sizeof warnings_where, " (see %s/*.warnings.csv)", sides_where);
    say (self, notable ? AGENT_LOG_WARNING : AGENT_LOG_INFO,
         "%s: %" PRIu64 " records in %" PRIu64 " batches queued from %" PRIu64 " rows, %" PRIu64
         " rows rejected%s%s; %" PRIu64 " totals rows skipped, %" PRIu64
         " rows counted once as exact copies, %" PRIu64 " rows with bytes replaced%s",
         name, s->records, batches, s->rows, rejected, rejected ? rejects_where : "",
         s->line_ids ? ", ids numbered per line" : "", s->totals_rows, s->copies, s->replaced_rows,
         s->totals_rows || s->copies || s->replaced_rows ? warnings_where : "");
}

/* The outbox was full for the file: wait for room (keeping only what it needs), or send it to
 * failed/ when it could never fit. */
static int
wait_or_fail_full (inbox_t *self, file_job_t *job, const file_identity_t *identity,
                   const char *path, char *err, size_t err_len)
{
    if (!job->too_big && outbox_could_ever_fit (self->outbox, job->batches, job->bytes) &&
        outbox_count (self->outbox) > 0) {
        free (self->waiting.name);
        self->waiting.name = strdup (job->name);
        self->waiting.identity = *identity;
        self->waiting.batches = job->batches;
        self->waiting.bytes = job->bytes;
        if (!self->said_full)
            say (self, AGENT_LOG_WARNING,
                 "outbox full (%zu batches, %" PRIu64 " bytes pending): not taking %s (%" PRIu64
                 " batches, %" PRIu64 " bytes) until the collector acknowledges more; it is not "
                 "read again until there is room",
                 outbox_count (self->outbox), outbox_bytes (self->outbox), job->name, job->batches,
                 job->bytes);
        self->said_full = true;
        return INBOX_WAITING;
    }
    char why[768];
    snprintf (why, sizeof why,
              "the file's %" PRIu64 " batches (%" PRIu64 " bytes) can never fit in the outbox "
              "(%s); split the file or raise outbox/max_batches and outbox/max_mb",
              job->batches, job->bytes, job->full_why);
    return move_to_failed (self, job, identity, path, why, err, err_len);
}

/* The file's batches are staged: commit them with the file's identity, then move the file to
 * done/. A file that cannot be moved stays, remembered as taken. */
static int
deliver (inbox_t *self, file_job_t *job, const file_identity_t *identity, const char *path,
         const export_summary_t *summary, const csv_reader_stats_t *stats, char *err,
         size_t err_len)
{
    const char *name = job->name;
    char *target = free_name_in (self->done_dir, name, ".csv");
    if (!target)
        return fail (err, err_len, "no free name in %s for %s", self->done_dir, name);
    const char *sides_where;
    int rc = sides_place (job, self->done_dir, base_name (target), &sides_where, err, err_len);
    outbox_file_t file = {.name = name,
                          .target = base_name (target),
                          .identity = *identity,
                          .taken_at = (int64_t)time (NULL),
                          .rejected = job->rejected};
    char commit_err[OUTBOX_ERR_LEN];
    if (rc == 0 && outbox_stage_commit (self->outbox, &file, commit_err, sizeof commit_err))
        rc = fail (err, err_len, "%s: %s", name, commit_err);
    if (rc) {
        /* Not taken: the side files are made again when the file is read again. */
        side_unplace (&job->rejects);
        side_unplace (&job->warnings);
    }
    if (rc) {
        free (target);
        return rc;
    }
    self->said_full = false;
    self->counters.files_done++;
    self->counters.records += stats->records;
    self->counters.rows_rejected += job->rejected;
    end_pause (self, name);
    report_taken (self, name, summary, job->batches, job->rejected, sides_where);
    char cause[600];
    if (folder_ready (self->done_dir, cause, sizeof cause) == 0) {
        if (rename (path, target) == 0) {
            sync_dir (self->done_dir);
            sync_dir (self->dir);
            forget_file (self, name);
            free (target);
            return INBOX_PROCESSED;
        }
        snprintf (cause, sizeof cause, "cannot move it to %s: %s", self->done_dir,
                  strerror (errno));
    }
    file.records = stats->records;
    unmoved_t *entry = add_unmoved (self, &file);
    if (entry)
        say_unmoved (self, entry, cause, sides_where != self->done_dir ? sides_where : NULL);
    free (target);
    return INBOX_PROCESSED;
}

static int
process_file (inbox_t *self, const char *name, char *err, size_t err_len)
{
    char *path = join_path (self->dir, name);
    if (!path)
        return fail (err, err_len, "out of memory");
    file_identity_t identity;
    char why[600];
    if (file_identity_hash (path, &identity, why, sizeof why) != 0) {
        struct stat st;
        if (stat (path, &st) != 0) {
            free (path);
            return 0; /* gone meanwhile */
        }
        /* Unreadable: the reader says so in the note, and the file goes to failed/. */
        memset (&identity, 0, sizeof identity);
        file_identity_stat (path, &identity, NULL, 0);
    }
    file_job_t job = {.inbox = self, .name = name, .next_seq = outbox_next_seq (self->outbox)};
    job.rejects = (side_file_t){.suffix = ".rejects.csv", .header = "file,line,reason\n"};
    job.warnings = (side_file_t){.suffix = ".warnings.csv", .header = "file,line,warning\n"};
    job.records = calloc (self->batch_records, sizeof *job.records);
    size_t tmp_len = strlen (self->side_dir) + strlen (name) + 32;
    job.rejects.tmp = malloc (tmp_len);
    job.warnings.tmp = malloc (tmp_len);
    export_summary_t *summary = export_summary_new ();
    int rc;
    bool staged = false;
    if (!job.records || !job.rejects.tmp || !job.warnings.tmp || !summary) {
        rc = fail (err, err_len, "out of memory");
        goto out;
    }
    snprintf (job.rejects.tmp, tmp_len, "%s/.%s.rejects.tmp", self->side_dir, name);
    snprintf (job.warnings.tmp, tmp_len, "%s/.%s.warnings.tmp", self->side_dir, name);
    export_summary_set_warning_sink (summary, on_warning, &job);
    char stage_err[OUTBOX_ERR_LEN];
    if (outbox_stage_begin (self->outbox, stage_err, sizeof stage_err)) {
        rc = fail (err, err_len, "%s: %s", name, stage_err);
        goto out;
    }
    staged = true;

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
    if (verdict != EXPORT_DELIVER || job.counting) {
        /* Nothing of the file is stored: unreadable as a whole, held, or waiting for room. */
        staged = false;
        if (outbox_stage_abort (self->outbox, stage_err, sizeof stage_err))
            say (self, AGENT_LOG_WARNING, "%s: %s (deleted later)", name, stage_err);
        if (verdict != EXPORT_DELIVER)
            rc = move_to_failed (self, &job, &identity, path,
                                 note ? note : "out of memory writing the note", err, err_len);
        else
            rc = wait_or_fail_full (self, &job, &identity, path, err, err_len);
        free (note);
        goto out;
    }
    /* Committed by deliver, or still open after its failure: aborted below (a no-op after a
     * commit). */
    rc = deliver (self, &job, &identity, path, summary, &stats, err, err_len);
out:
    if (staged && outbox_stage_abort (self->outbox, stage_err, sizeof stage_err))
        say (self, AGENT_LOG_WARNING, "%s: %s (deleted later)", name, stage_err);
    export_summary_destroy (&summary);
    job_clear (&job);
    free (path);
    return rc;
}

/* ---------------------------------------------------------------- the folder */

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

static int
compare_names (const void *a, const void *b)
{
    return strcmp (*(char *const *)a, *(char *const *)b);
}

/* The ready files, sorted by name. */
static int
list_ready (inbox_t *self, char ***names_out, size_t *count_out, char *err, size_t err_len)
{
    *names_out = NULL;
    *count_out = 0;
    DIR *dir = opendir (self->dir);
    if (!dir)
        return fail (err, err_len, "cannot read inbox %s: %s", self->dir, strerror (errno));
    char **names = NULL;
    size_t count = 0, capacity = 0;
    struct dirent *entry;
    int rc = 0;
    while ((entry = readdir (dir)) != NULL) {
        if (!is_ready_csv (self->dir, entry->d_name))
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc (names, capacity * sizeof *grown);
            if (!grown) {
                rc = fail (err, err_len, "out of memory");
                break;
            }
            names = grown;
        }
        if (!(names[count] = strdup (entry->d_name))) {
            rc = fail (err, err_len, "out of memory");
            break;
        }
        count++;
    }
    closedir (dir);
    if (count)
        qsort (names, count, sizeof *names, compare_names);
    *names_out = names;
    *count_out = count;
    return rc;
}

/* A file taken or held that could not be moved, tried again: the same file (size, times, inode
 * and content) is moved on, never read again; a changed one is a new drop (forgotten here, taken
 * by the caller). Returns true when the caller should take it as new. */
static bool
retry_unmoved (inbox_t *self, unmoved_t *entry, const char *path)
{
    file_identity_t now;
    if (file_identity_stat (path, &now, NULL, 0) != 0)
        return false;
    if (!file_identity_same_stat (&now, &entry->identity) ||
        (now_ms () >= entry->next_try && (file_identity_hash (path, &now, NULL, 0) != 0 ||
                                          !file_identity_equal (&now, &entry->identity)))) {
        say (self, AGENT_LOG_INFO, "%s: changed since it was %s: taken again as a new drop",
             entry->name, entry->held ? "held" : "taken");
        forget_file (self, entry->name);
        return true;
    }
    if (now_ms () < entry->next_try)
        return false;
    entry->tries++;
    entry->next_try = now_ms () + RETRY_MOVE_MS;
    const char *folder = entry->held ? self->failed_dir : self->done_dir;
    char cause[600];
    if (folder_ready (folder, cause, sizeof cause) == 0) {
        char *target = join_path (folder, entry->target);
        if (target && access (target, F_OK) == 0) {
            free (target);
            target = free_name_in (folder, entry->name, ".csv");
        }
        if (target && rename (path, target) == 0) {
            sync_dir (folder);
            sync_dir (self->dir);
            say (self, AGENT_LOG_INFO, "%s: moved to %s at last", entry->name, target);
            free (target);
            forget_file (self, entry->name);
            return false;
        }
        snprintf (cause, sizeof cause, "cannot move it to %s: %s", folder,
                  target ? strerror (errno) : "out of memory");
        free (target);
    }
    say_unmoved (self, entry, cause, NULL);
    return false;
}

/* Records of files that left the inbox (moved by a person, or forgotten too soon) are dropped. */
static void
forget_gone (inbox_t *self, char **names, size_t count)
{
    for (size_t i = 0; i < self->unmoved_count;) {
        const char *key = self->unmoved[i].name;
        if (bsearch (&key, names, count, sizeof *names, compare_names)) {
            i++;
            continue;
        }
        say (self, AGENT_LOG_INFO, "%s: no longer in the inbox; forgotten as taken",
             self->unmoved[i].name);
        forget_file (self, self->unmoved[i].name); /* drops entry i: look at i again */
    }
}

/* True while the file that waited for room in the outbox should still wait. */
static bool
still_waiting (inbox_t *self, const char *name)
{
    if (!self->waiting.name || strcmp (self->waiting.name, name) != 0)
        return false;
    char *path = join_path (self->dir, name);
    file_identity_t now;
    bool same = path && file_identity_stat (path, &now, NULL, 0) == 0 &&
                file_identity_same_stat (&now, &self->waiting.identity);
    free (path);
    if (same && !outbox_has_room_for (self->outbox, self->waiting.batches, self->waiting.bytes) &&
        outbox_count (self->outbox) > 0)
        return true;
    free (self->waiting.name);
    self->waiting.name = NULL;
    return false;
}

int
inbox_process_next (inbox_t *self, char *err, size_t err_len)
{
    char **names;
    size_t count;
    int rc = list_ready (self, &names, &count, err, err_len);
    if (rc) {
        pause_taking (self, err);
        for (size_t i = 0; i < count; i++)
            free (names[i]);
        free (names);
        return INBOX_ERR;
    }
    forget_gone (self, names, count);
    rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        unmoved_t *entry = find_unmoved (self, names[i]);
        if (entry) {
            char *path = join_path (self->dir, names[i]);
            bool anew = path && retry_unmoved (self, entry, path);
            free (path);
            if (!anew)
                continue;
        }
        if (now_ms () < self->pause_until || still_waiting (self, names[i])) {
            rc = INBOX_WAITING; /* files are taken in name order: the others wait behind it */
            break;
        }
        rc = process_file (self, names[i], err, err_len);
        if (rc == INBOX_ERR) {
            pause_taking (self, err);
            rc = INBOX_WAITING;
        }
    }
    for (size_t i = 0; i < count; i++)
        free (names[i]);
    free (names);
    return rc;
}
