/* cli_export: `totalplace export records|totals`: every stored record, or every total cell, from
 * ONE read transaction of a store, streamed as RFC 4180 CSV or JSON Lines in constant memory
 * (docs/query.md, "Export"). */
#ifndef TOTALPLACE_CLI_EXPORT_H
#define TOTALPLACE_CLI_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "query_args.h"
#include "store.h"

/* What an export saw, for --meta and for the caller's checks. */
typedef struct {
    char store_id[STORE_ID_HEX_LEN];
    uint64_t commit;      /* the commit the snapshot saw (store_snapshot_commit) */
    uint64_t rows;        /* rows written, withdrawn records included */
    uint64_t withdrawn;   /* records: how many of them are withdrawn */
    int64_t amount_pence; /* the rows' amounts added up, withdrawn records left out: the
                             store's grand total, whichever of the two was exported */
} cli_export_summary_t;

/* Writes what (records or totals) of store in format to out, from one snapshot, one row at a time:
 * records in key order (body, then record id), cells in key order (month, neighbourhood, body,
 * service, poolable). Texts are the stored texts; amounts are integer pence and exact pounds text.
 * Fills summary (may be NULL). Returns 0; STORE_ERR_DAMAGED when a value fails its checksum or
 * does not decode (the message names the database and the key: the rows written before it are
 * not the whole export); STORE_ERR on a write error or another failure, with a message. */
int cli_export_write (store_t *store, query_export_t what, query_export_format_t format, FILE *out,
                      cli_export_summary_t *summary, char *err, size_t err_len);

/* Runs `totalplace export` as args say (args->db is set): to args->out (written beside it under a
 * temporary name and renamed when whole, so FILE is the whole export or absent) or stdout, and
 * the summary to args->meta when given. Returns the exit status: 0, 65 for damage, 78 for no store,
 * 1 for the rest; messages on stderr. */
int cli_export_run (const query_args_t *args);

#endif
