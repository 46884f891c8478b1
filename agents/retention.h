/* retention: keeps the agent's own records of the past from growing for ever: the files in the
 * inbox's done/ folder (with their rejects and warnings) by age and total size, never one taken
 * after the oldest batch still waiting for its Ack; and state_dir/collector-rejects.csv, rotated
 * past a size (collector-rejects.csv.1, .2 ...), the rotated ones kept by count and age. */
#ifndef TOTALPLACE_RETENTION_H
#define TOTALPLACE_RETENTION_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t keep_days;   /* done/ files moved there longer ago than this are deleted; 0: no age */
    uint64_t max_bytes;   /* done/ is kept under this by deleting its oldest files; 0: no size */
    int64_t taken_before; /* only files moved to done/ before this (unix seconds) may go: when
                             the oldest pending batch was taken (now when none waits) */
    int64_t now;          /* unix seconds */
} retention_done_t;

typedef struct {
    uint64_t files;      /* exports deleted (each with its side files) */
    uint64_t bytes;      /* bytes freed */
    uint64_t kept_bytes; /* bytes left in done/ */
} retention_result_t;

/* Applies policy to the folder done_dir (NAME.csv, and NAME.rejects.csv and NAME.warnings.csv
 * beside it, go together; the time a file was moved there is its change time, which a rename
 * sets). Returns 0 or -1 with err (a folder that cannot be read; a file that cannot be deleted
 * is named). */
int retention_prune_done (const char *done_dir, const retention_done_t *policy,
                          retention_result_t *result, char *err, size_t err_len);

typedef struct {
    uint64_t max_bytes; /* rotated past this size; 0: never */
    uint64_t keep;      /* rotated files kept (path.1 .. path.keep) */
    uint64_t keep_days; /* rotated files older than this are deleted; 0: by count only */
    int64_t now;        /* unix seconds */
} retention_rotate_t;

/* Rotates the file at path (path -> path.1 -> path.2 ...) when it is over max_bytes, and deletes
 * rotated ones beyond keep or older than keep_days. *rotated (may be NULL) says whether it
 * rotated, *deleted (may be NULL) how many it deleted. Returns 0 or -1 with err. */
int retention_rotate (const char *path, const retention_rotate_t *policy, int *rotated,
                      uint64_t *deleted, char *err, size_t err_len);

#endif
