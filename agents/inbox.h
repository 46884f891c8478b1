/* inbox: takes CSV files dropped into a folder, turns them into batches stored durably in the
 * outbox, keeps rejected rows beside the processed file, and moves the file to done/ (or to
 * failed/ with an .error note when the file as a whole cannot be read). A departmental system
 * writes a file under a temporary name and renames it to *.csv when complete.
 *
 * A file is taken once: its identity (file_identity.h) is stored with its batches, in the same
 * transaction, and kept until the file has left the inbox; a file that cannot be moved (a
 * read-only or full inbox) stays where it is, is never read again while unchanged, and is named in
 * one error line repeated at most every few minutes, while other files are taken. Faults of the
 * agent's own folders or outbox (a full disk) pause the taking of files with a growing backoff, and
 * a file that waits for room in the outbox is not read again until the room is there. */
#ifndef TOTALPLACE_INBOX_H
#define TOTALPLACE_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_log.h"
#include "csv_reader.h"
#include "export_summary.h"
#include "outbox.h"

typedef struct _inbox_t inbox_t;

#define INBOX_ERR -1
/* The next file waits in the inbox: the outbox has no room for it yet (acks will make it), or a
 * fault of the agent's own folders or outbox paused the taking of files for a while. */
#define INBOX_WAITING 1
/* A file was processed (moved to done/ or failed/). */
#define INBOX_PROCESSED 2

typedef struct {
    uint64_t files_done;   /* moved to done/ */
    uint64_t files_failed; /* moved to failed/ */
    uint64_t records;      /* records stored in the outbox */
    uint64_t rows_rejected;
    size_t unmoved; /* files taken (or held) that could not leave the inbox, now */
} inbox_counters_t;

/* Watches folder dir (creating it and its done/ and failed/ folders when missing: when they cannot
 * be created an error is logged and files taken stay in the inbox). side_dir (created, mode 0700)
 * holds the rejects, warnings and notes of the file being read, and keeps them when done/ or
 * failed/ cannot take them. The outbox and reader stay the caller's; batches carry agent_id and
 * hold up to batch_records records. The files the outbox remembers as taken but not moved are
 * read from it now. */
inbox_t *inbox_new (const char *dir, const char *side_dir, outbox_t *outbox, csv_reader_t *reader,
                    const char *agent_id, size_t batch_records, agent_log_fn *log, void *log_arg,
                    char *err, size_t err_len);
void inbox_destroy (inbox_t **self_p);

/* Uses another reader (after a config reload) and batch size from now on. */
void inbox_configure (inbox_t *self, csv_reader_t *reader, size_t batch_records);

/* When a file is held rather than delivered (export_summary_verdict): the defaults hold a file when
 * more than half its rows would be rejected, or when ids repeat with other content. The config
 * path in policy is copied (it only words the advice). Returns 0 or INBOX_ERR when out of memory.
 */
int inbox_set_policy (inbox_t *self, const export_policy_t *policy);

/* Processes the first ready *.csv file in name order that is not already taken. A file is
 * delivered (its batches stored in the outbox in one transaction with its identity, rejected rows
 * in done/NAME.rejects.csv, warnings in done/NAME.warnings.csv, the file moved to done/), or held
 * or failed (nothing stored, the file moved to failed/ with NAME.csv.error saying why and what to
 * change, and the rejects and warnings beside it). Files taken that could not be moved are tried
 * again now and then. Returns 0 when no file is left to take, INBOX_PROCESSED, or INBOX_WAITING
 * (the file stays in the inbox; see above). Every trouble is said in the log by the inbox
 * itself, rate-limited; INBOX_ERR (with err) is only for the inbox folder itself unreadable, said
 * likewise. */
int inbox_process_next (inbox_t *self, char *err, size_t err_len);

void inbox_counters (inbox_t *self, inbox_counters_t *counters);

#endif
