/* agent_status: the outbox's state gathered once into JSON, printed as JSON or as a table, so that
 * both show the same facts. */
#include "agent_status.h"
#include "err_text.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "outbox.h"

#define WHAT_TO_DO                                                                                 \
    "drop the files named above into this agent's inbox again (copies are in the inbox's done/ "   \
    "folder; harmless: the collector deduplicates what it still holds), check that the "           \
    "collector's totals are whole again, then clear the alarm with: totalplace-agent "             \
    "[the same -c CONFIG or --state-dir] status --clear-alarm"

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static json_t *
time_json (int64_t unix_seconds)
{
    if (unix_seconds <= 0)
        return json_null ();
    time_t t = (time_t)unix_seconds;
    struct tm utc;
    char text[32];
    if (!gmtime_r (&t, &utc) || !strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc))
        return json_null ();
    return json_string (text);
}

/* Adds value to object under name; takes value even on failure. Returns -1 on failure. */
static int
put (json_t *object, const char *name, json_t *value)
{
    return !value || json_object_set_new (object, name, value) ? -1 : 0;
}

typedef struct {
    json_t *files;
    int failed;
} files_walk_t;

/* A file name as JSON: one that is not UTF-8 (a file name is bytes) is shown escaped rather than
 * lost. */
static json_t *
name_json (const char *name)
{
    json_t *text = json_string (name);
    if (text)
        return text;
    char escaped[4 * OUTBOX_SOURCE_MAX + 1];
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && at + 5 < sizeof escaped; p++)
        at +=
            (size_t)snprintf (escaped + at, sizeof escaped - at, *p < 0x80 ? "%c" : "\\x%02x", *p);
    return json_string (escaped);
}

static int
add_file (void *arg, const char *source, uint64_t first, uint64_t last, int64_t put_at)
{
    files_walk_t *walk = arg;
    json_t *file = json_object ();
    json_t *name = name_json (source);
    walk->failed |= !file || put (file, "file", name) ||
                    put (file, "first_seq", json_integer ((json_int_t)first)) ||
                    put (file, "last_seq", json_integer ((json_int_t)last)) ||
                    put (file, "taken_at", time_json (put_at)) ||
                    json_array_append_new (walk->files, file);
    return walk->failed;
}

typedef struct {
    outbox_t *outbox;
    json_t *ranges;
    int failed;
    char *err;
    size_t err_len;
} lost_walk_t;

static int
add_range (void *arg, uint64_t first, uint64_t last, int64_t raised_at)
{
    lost_walk_t *walk = arg;
    json_t *range = json_object ();
    walk->failed |= !range || put (range, "first_seq", json_integer ((json_int_t)first)) ||
                    put (range, "last_seq", json_integer ((json_int_t)last)) ||
                    put (range, "found_at", time_json (raised_at)) ||
                    json_array_append_new (walk->ranges, range);
    return walk->failed;
}

/* The files behind each lost range (after the walk over the ranges: walks do not nest). */
static int
add_files (outbox_t *outbox, json_t *ranges, char *err, size_t err_len)
{
    size_t i;
    json_t *range;
    json_array_foreach (ranges, i, range)
    {
        files_walk_t walk = {json_array (), 0};
        uint64_t first = (uint64_t)json_integer_value (json_object_get (range, "first_seq"));
        uint64_t last = (uint64_t)json_integer_value (json_object_get (range, "last_seq"));
        if (!walk.files || put (range, "files", walk.files))
            return fail (err, err_len, "out of memory");
        if (outbox_foreach_source (outbox, first, last, add_file, &walk, err, err_len))
            return -1;
        if (walk.failed)
            return fail (err, err_len, "out of memory");
    }
    return 0;
}

/* The alarm: each run of lost seqs with the files behind it. */
static int
gather_alarm (outbox_t *outbox, const outbox_alarm_t *alarm, json_t *lost, char *err,
              size_t err_len)
{
    lost_walk_t walk = {outbox, json_array (), 0, err, err_len};
    if (put (lost, "lost_batches", json_integer ((json_int_t)alarm->lost)) ||
        put (lost, "found_at", time_json (alarm->raised_at)) || put (lost, "ranges", walk.ranges))
        return fail (err, err_len, "out of memory");
    if (outbox_foreach_lost (outbox, add_range, &walk, err, err_len))
        return -1;
    if (walk.failed || put (lost, "what_to_do", json_string (WHAT_TO_DO)))
        return fail (err, err_len, "out of memory");
    return add_files (outbox, walk.ranges, err, err_len);
}

/* Reads a protobuf varint; 0 when the bytes end first. */
static size_t
read_varint (const uint8_t *at, const uint8_t *end, uint64_t *value)
{
    *value = 0;
    for (size_t i = 0; i < 10 && at + i < end; i++) {
        *value |= (uint64_t)(at[i] & 0x7F) << (7 * i);
        if (!(at[i] & 0x80))
            return i + 1;
    }
    return 0;
}

/* Records in an encoded Batch: its field 3 (records, proto/spending.proto) counted by walking the
 * protobuf wire format, without decoding them, so that status stays quick beside a large outbox.
 * -1 when the bytes are not a Batch. */
static int64_t
batch_record_count (const uint8_t *data, size_t size)
{
    const uint8_t *at = data, *end = data + size;
    int64_t records = 0;
    while (at < end) {
        uint64_t tag, length;
        size_t used = read_varint (at, end, &tag);
        if (!used)
            return -1;
        at += used;
        switch (tag & 7) {
        case 0:
            if (!(used = read_varint (at, end, &length)))
                return -1;
            at += used;
            break;
        case 1:
            at += 8;
            break;
        case 5:
            at += 4;
            break;
        case 2:
            if (!(used = read_varint (at, end, &length)) || length > (uint64_t)(end - at - used))
                return -1;
            at += used + length;
            if ((tag >> 3) == 3)
                records++;
            break;
        default:
            return -1;
        }
    }
    return at == end ? records : -1;
}

typedef struct {
    uint64_t records;
    uint64_t unreadable;
} count_walk_t;

static int
count_records (void *arg, uint64_t seq, const void *payload, size_t size)
{
    (void)seq;
    count_walk_t *walk = arg;
    int64_t records = batch_record_count (payload, size);
    if (records < 0)
        walk->unreadable++;
    else
        walk->records += (uint64_t)records;
    return 0;
}

/* Files held in inbox/failed (*.csv); -1 when the folder cannot be read. */
static int64_t
count_failed (const char *inbox)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/failed", inbox);
    DIR *dir = opendir (path);
    if (!dir)
        return -1;
    int64_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        size_t len = strlen (entry->d_name);
        count +=
            entry->d_name[0] != '.' && len > 4 && strcasecmp (entry->d_name + len - 4, ".csv") == 0;
    }
    closedir (dir);
    return count;
}

typedef struct {
    json_t *files;
    int failed;
} unmoved_walk_t;

static int
add_unmoved (void *arg, const outbox_file_t *file)
{
    unmoved_walk_t *walk = arg;
    json_t *entry = json_object ();
    char hash[2 * FILE_IDENTITY_HASH_BYTES + 1];
    file_identity_hex (&file->identity, hash);
    walk->failed |= !entry || put (entry, "file", name_json (file->name)) ||
                    put (entry, "held", json_boolean (file->held)) ||
                    put (entry, "taken_at", time_json (file->taken_at)) ||
                    put (entry, "first_seq", json_integer ((json_int_t)file->first_seq)) ||
                    put (entry, "last_seq", json_integer ((json_int_t)file->last_seq)) ||
                    put (entry, "records", json_integer ((json_int_t)file->records)) ||
                    put (entry, "size", json_integer ((json_int_t)file->identity.size)) ||
                    put (entry, "blake2b", json_string (hash)) ||
                    json_array_append_new (walk->files, entry);
    return walk->failed;
}

/* Pending records, the oldest pending batch's age, the last Ack, the collector, files held and
 * files not moved: the delivery side of the status, and whether it stalled. */
static int
gather_delivery (const agent_status_options_t *options, outbox_t *outbox, json_t *root,
                 json_t *pending, json_t *problems, char *err, size_t err_len)
{
    count_walk_t counted = {0, 0};
    if (outbox_foreach (outbox, count_records, &counted, err, err_len))
        return -1;
    int64_t oldest_at = 0, last_ack = outbox_last_ack_at (outbox);
    if (outbox_oldest_pending_at (outbox, &oldest_at, err, err_len))
        return -1;
    size_t batches = outbox_count (outbox);
    unmoved_walk_t unmoved = {json_array (), 0};
    if (!unmoved.files)
        return fail (err, err_len, "out of memory");
    if (put (root, "files_not_moved", unmoved.files) ||
        outbox_foreach_file (outbox, add_unmoved, &unmoved, err, err_len))
        return unmoved.failed ? fail (err, err_len, "out of memory") : -1;
    int64_t failed = options->inbox_dir ? count_failed (options->inbox_dir) : -1;
    /* Waiting since the later of the last Ack and the oldest pending batch's put: an agent idle
     * for a day that just took a file has not stalled. */
    int64_t since = oldest_at > last_ack ? oldest_at : last_ack;
    int64_t waiting = batches && since > 0 ? options->now - since : -1;
    bool stalled = options->stall_alarm_s && waiting >= (int64_t)options->stall_alarm_s;
    if (put (pending, "records", json_integer ((json_int_t)counted.records)) ||
        put (pending, "oldest_taken_at", time_json (batches ? oldest_at : 0)) ||
        put (pending, "oldest_age_s",
             batches && oldest_at ? json_integer (options->now - oldest_at) : json_null ()) ||
        put (root, "collector",
             options->collector ? json_string (options->collector) : json_null ()) ||
        put (root, "last_ack_at", time_json (last_ack)) ||
        put (root, "last_ack_age_s",
             last_ack ? json_integer (options->now - last_ack) : json_null ()) ||
        put (root, "stall_alarm_s", json_integer ((json_int_t)options->stall_alarm_s)) ||
        put (root, "failed_files", failed >= 0 ? json_integer (failed) : json_null ()))
        return fail (err, err_len, "out of memory");
    if (counted.unreadable &&
        put (pending, "unreadable_batches", json_integer ((json_int_t)counted.unreadable)))
        return fail (err, err_len, "out of memory");
    if (stalled) {
        char line[512];
        snprintf (line, sizeof line,
                  "delivery stalled: %zu batches wait and nothing was acknowledged for %" PRId64
                  " s (agent/stall_alarm_s is %" PRIu64 "): is the collector at %s running, and "
                  "does it accept this agent? (see the agent's log)",
                  batches, waiting, options->stall_alarm_s,
                  options->collector ? options->collector : "agent/collector");
        if (json_array_append_new (problems, json_string (line)))
            return fail (err, err_len, "out of memory");
    }
    return 0;
}

/* Everything status shows, read in one go from the outbox. */
static json_t *
gather (const agent_status_options_t *options, char *err, size_t err_len)
{
    outbox_t *outbox = outbox_open_readonly (options->outbox_dir, err, err_len);
    if (!outbox)
        return NULL;
    outbox_retained_t retained;
    outbox_retained (outbox, &retained);
    outbox_alarm_t alarm;
    const char *store_id = outbox_store_id (outbox);
    /* Each part is made as it is put: root owns it from then on (put frees it on failure). */
    json_t *root = json_object (), *pending = NULL, *kept = NULL, *lost = NULL, *problems = NULL;
    int rc =
        !root || put (root, "outbox", json_string (options->outbox_dir)) ||
        put (root, "healthy", json_false ()) || put (root, "pending", pending = json_object ()) ||
        put (root, "retained", kept = json_object ()) ||
        put (pending, "batches", json_integer ((json_int_t)outbox_count (outbox))) ||
        put (pending, "bytes", json_integer ((json_int_t)outbox_bytes (outbox))) ||
        put (kept, "batches", json_integer ((json_int_t)retained.count)) ||
        put (kept, "bytes", json_integer ((json_int_t)retained.bytes)) ||
        put (kept, "oldest_acked_at", time_json (retained.oldest_acked_at)) ||
        put (kept, "oldest_age_hours",
             retained.count ? json_real ((double)(options->now - retained.oldest_acked_at) / 3600.0)
                            : json_null ()) ||
        put (kept, "retain_hours", json_integer ((json_int_t)options->retain_hours)) ||
        put (root, "collector_store_id", *store_id ? json_string (store_id) : json_null ()) ||
        put (root, "highest_acked_seq", json_integer ((json_int_t)outbox_acked_max (outbox))) ||
        put (root, "next_seq", json_integer ((json_int_t)outbox_next_seq (outbox))) ||
        put (root, "problems", problems = json_array ());
    if (rc)
        fail (err, err_len, "out of memory (or a folder name or store id that is not UTF-8)");
    else if ((rc = outbox_alarm (outbox, &alarm, err, err_len)) == 0 &&
             (rc = gather_delivery (options, outbox, root, pending, problems, err, err_len)) == 0) {
        char line[256];
        snprintf (line, sizeof line,
                  "LOST: %" PRIu64 " batches acknowledged by the collector are missing from its "
                  "store (the alarm below)",
                  alarm.lost);
        if ((alarm.lost && json_array_append_new (problems, json_string (line))) ||
            put (root, "healthy", json_boolean (json_array_size (problems) == 0)) ||
            put (root, "alarm", lost = alarm.lost ? json_object () : json_null ()))
            rc = fail (err, err_len, "out of memory");
        else if (alarm.lost)
            rc = gather_alarm (outbox, &alarm, lost, err, err_len);
    }
    outbox_destroy (&outbox);
    if (rc) {
        json_decref (root);
        return NULL;
    }
    return root;
}

static const char *
text_of (json_t *object, const char *name, const char *otherwise)
{
    const char *text = json_string_value (json_object_get (object, name));
    return text ? text : otherwise;
}

static uint64_t
number_of (json_t *object, const char *name)
{
    return (uint64_t)json_integer_value (json_object_get (object, name));
}

static void
row (FILE *out, const char *name, const char *value)
{
    fprintf (out, "%-20s %s\n", name, value);
}

static void
print_table (json_t *root, FILE *out)
{
    json_t *pending = json_object_get (root, "pending");
    json_t *retained = json_object_get (root, "retained");
    json_t *alarm = json_object_get (root, "alarm");
    char line[1024];
    row (out, "outbox", text_of (root, "outbox", ""));
    if (json_is_string (json_object_get (root, "collector")))
        row (out, "collector", text_of (root, "collector", ""));
    int at =
        snprintf (line, sizeof line, "%" PRIu64 " batches, %" PRIu64 " records, %" PRIu64 " bytes",
                  number_of (pending, "batches"), number_of (pending, "records"),
                  number_of (pending, "bytes"));
    if (json_is_string (json_object_get (pending, "oldest_taken_at")))
        snprintf (line + at, sizeof line - (size_t)at, "; oldest taken %s (%" PRIu64 " s ago)",
                  text_of (pending, "oldest_taken_at", "?"), number_of (pending, "oldest_age_s"));
    row (out, "pending", line);
    if (json_is_string (json_object_get (root, "last_ack_at")))
        snprintf (line, sizeof line, "%s (%" PRIu64 " s ago)", text_of (root, "last_ack_at", "?"),
                  number_of (root, "last_ack_age_s"));
    else
        snprintf (line, sizeof line, "never");
    row (out, "last ack", line);
    at = snprintf (line, sizeof line, "%" PRIu64 " batches, %" PRIu64 " bytes",
                   number_of (retained, "batches"), number_of (retained, "bytes"));
    if (number_of (retained, "batches"))
        snprintf (line + at, sizeof line - (size_t)at,
                  "; oldest acknowledged %s (%.1f hours ago; outbox/retain_hours is %" PRIu64 ")",
                  text_of (retained, "oldest_acked_at", "?"),
                  json_real_value (json_object_get (retained, "oldest_age_hours")),
                  number_of (retained, "retain_hours"));
    row (out, "retained", line);
    row (out, "collector store id", text_of (root, "collector_store_id", "none seen yet"));
    snprintf (line, sizeof line, "%" PRIu64, number_of (root, "highest_acked_seq"));
    row (out, "highest acked seq", line);
    snprintf (line, sizeof line, "%" PRIu64, number_of (root, "next_seq"));
    row (out, "next seq", line);
    json_t *failed = json_object_get (root, "failed_files");
    if (json_is_integer (failed))
        snprintf (line, sizeof line, "%" PRIu64 " files held%s", number_of (root, "failed_files"),
                  number_of (root, "failed_files")
                      ? ": their money is not counted; see the .error note beside each"
                      : "");
    else
        snprintf (line, sizeof line, "unknown (agent/inbox not given, or its failed/ unreadable)");
    row (out, "failed/", line);
    size_t i;
    json_t *file;
    json_array_foreach (json_object_get (root, "files_not_moved"), i, file)
    {
        snprintf (line, sizeof line,
                  "%s (%s %s): could not be moved out of the inbox; it is not taken again while "
                  "unchanged",
                  text_of (file, "file", "?"),
                  json_is_true (json_object_get (file, "held")) ? "held" : "taken",
                  text_of (file, "taken_at", "?"));
        row (out, "not moved", line);
    }
    json_t *problem;
    json_array_foreach (json_object_get (root, "problems"), i, problem)
        row (out, "problem", json_string_value (problem));
    row (out, "healthy", json_is_true (json_object_get (root, "healthy")) ? "yes" : "no");
    if (!json_is_object (alarm)) {
        row (out, "alarm", "none");
        return;
    }
    snprintf (line, sizeof line,
              "LOST: %" PRIu64 " batches acknowledged by the collector are missing from its store "
              "and no longer held here (found %s); their records are not in the totals",
              number_of (alarm, "lost_batches"), text_of (alarm, "found_at", "?"));
    row (out, "alarm", line);
    size_t j;
    json_t *range;
    json_array_foreach (json_object_get (alarm, "ranges"), i, range)
    {
        snprintf (line, sizeof line, "seqs %" PRIu64 "-%" PRIu64 " (found %s)",
                  number_of (range, "first_seq"), number_of (range, "last_seq"),
                  text_of (range, "found_at", "?"));
        row (out, "lost", line);
        json_t *files = json_object_get (range, "files");
        if (json_array_size (files) == 0)
            row (out, "  from file", "(no file name is remembered for these seqs)");
        json_array_foreach (files, j, file)
        {
            snprintf (line, sizeof line, "%s (seqs %" PRIu64 "-%" PRIu64 ", taken %s)",
                      text_of (file, "file", "?"), number_of (file, "first_seq"),
                      number_of (file, "last_seq"), text_of (file, "taken_at", "?"));
            row (out, "  from file", line);
        }
    }
    row (out, "what to do", text_of (alarm, "what_to_do", ""));
}

int
agent_status_print (const agent_status_options_t *options, FILE *out, char *err, size_t err_len)
{
    json_t *root = gather (options, err, err_len);
    if (!root)
        return -1;
    bool healthy = json_is_true (json_object_get (root, "healthy"));
    int rc = 0;
    if (options->format == AGENT_STATUS_JSON)
        rc = json_dumpf (root, out, JSON_INDENT (2)) || fputc ('\n', out) == EOF;
    else
        print_table (root, out);
    json_decref (root);
    if (rc || fflush (out) != 0 || ferror (out))
        return fail (err, err_len, "cannot write the status");
    return healthy ? AGENT_STATUS_HEALTHY : AGENT_STATUS_ALARM;
}

int
agent_status_clear_alarm (const char *outbox_dir, FILE *out, char *err, size_t err_len)
{
    uint64_t cleared = 0;
    if (outbox_clear_alarm (outbox_dir, &cleared, err, err_len))
        return -1;
    if (cleared)
        fprintf (out, "alarm cleared: it named %" PRIu64 " lost batches\n", cleared);
    else
        fprintf (out, "no alarm stood\n");
    return fflush (out) != 0 ? fail (err, err_len, "cannot write to the output") : 0;
}
