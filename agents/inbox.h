/* inbox: takes CSV files dropped into a folder, turns them into batches stored durably in the
 * outbox, keeps rejected rows beside the processed file, and moves the file to done/ (or to
 * failed/ with an .error note when the file as a whole cannot be read). A departmental system
 * writes a file under a temporary name and renames it to *.csv when complete. */
#ifndef TOTALPLACE_INBOX_H
#define TOTALPLACE_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_log.h"
#include "csv_reader.h"
#include "outbox.h"

typedef struct _inbox_t inbox_t;

#define INBOX_ERR -1
/* The outbox has no room for the next file; it stays in the inbox until acks drain the outbox. */
#define INBOX_WAITING 1
/* A file was processed (moved to done/ or failed/). */
#define INBOX_PROCESSED 2

typedef struct {
    uint64_t files_done;   /* moved to done/ */
    uint64_t files_failed; /* moved to failed/ */
    uint64_t records;      /* records stored in the outbox */
    uint64_t rows_rejected;
} inbox_counters_t;

/* Watches folder dir (creating it and its done/ and failed/ folders when missing). The outbox and
 * reader stay the caller's; batches carry agent_id and hold up to batch_records records. */
inbox_t *inbox_new (const char *dir, outbox_t *outbox, csv_reader_t *reader, const char *agent_id,
                    size_t batch_records, agent_log_fn *log, void *log_arg, char *err,
                    size_t err_len);
void inbox_destroy (inbox_t **self_p);

/* Uses another reader (after a config reload) and batch size from now on. */
void inbox_configure (inbox_t *self, csv_reader_t *reader, size_t batch_records);

/* Processes the first ready *.csv file in name order. Returns 0 when there was none,
 * INBOX_PROCESSED, INBOX_WAITING, or INBOX_ERR with err (an I/O failure of the agent's own
 * folders or outbox; the file stays in the inbox). */
int inbox_process_next (inbox_t *self, char *err, size_t err_len);

void inbox_counters (inbox_t *self, inbox_counters_t *counters);

#endif
