/* cli_store: the totalplace CLI's work on a store folder itself (--db): opening it read-only as
 * every --db command does, and the verify and backup commands (docs/operations.md). */
#ifndef TOTALPLACE_CLI_STORE_H
#define TOTALPLACE_CLI_STORE_H

#include <stddef.h>

#include "query_args.h"
#include "store.h"

/* How many findings verify and backup list (all are counted). */
#define CLI_STORE_MAX_FINDINGS 50

/* Opens the store in dir read-only, as a reader beside a running collector. LMDB readers
 * register in lock.mdb, so one the caller may not write is refused first, saying so. Returns the
 * store, or NULL with a message and *code (a store error code, for store_exit_status). */
store_t *cli_store_open (const char *dir, int *code, char *err, size_t err_len);

/* Runs `totalplace verify` or `totalplace backup` as args say (args->db is set): the answer as a
 * report on stdout in args->format, what went wrong on stderr. Returns the exit status: 0 when
 * the store (or the backup's copy) agrees; 65 when anything differs; otherwise
 * store_exit_status of the failure (73 DEST exists, 74 disk full, 78 / 65 for a store refused,
 * 1 for the rest). */
int cli_store_run (const query_args_t *args);

#endif
