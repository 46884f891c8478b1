/* cli_source: where the totalplace CLI's answers come from. Every question the CLI asks is an
 * operation on a source: one reads a store folder opened read-only (--db), the other asks a
 * running collector over its query socket (--collector, cli_client.h); every command works
 * unchanged on either. */
#ifndef TOTALPLACE_CLI_SOURCE_H
#define TOTALPLACE_CLI_SOURCE_H

#include <stddef.h>

#include "ingest.h"
#include "place_totals.h"
#include "query.h"
#include "query_args.h"
#include "store.h"

/* The questions the CLI asks, as operations on a source: the db_ functions below read the store,
 * the remote_ ones ask a collector over its query socket, and every command works unchanged on
 * either. Each returns 0, STORE_ERR_NOTFOUND or another negative code with a message, as the
 * store_ functions do. */
typedef struct {
    void *handle;
    int (*neighbourhoods) (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len);
    int (*totals) (void *handle, const char *neighbourhood, store_breakdown_t by,
                   const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
                   size_t err_len);
    int (*get_record) (void *handle, const char *body_id, const char *record_id,
                       Totalplace__SpendingRecord **record, char *err, size_t err_len);
    int (*counters) (void *handle, store_counters_t *counters, char *err, size_t err_len);
    int (*agents) (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len);
    int (*identity) (void *handle, store_identity_t *identity, char *err, size_t err_len);
    /* The running collector's own counters; NULL for a store read directly. */
    int (*collector_counters) (void *handle, ingest_counters_t *ingest, query_counters_t *queries,
                               char *err, size_t err_len);
    /* Totals of a neighbourhood, a place (by name: the --db source's places file, or the
     * collector's) or all (both NULL), by 0 to STORE_MAX_BREAKDOWNS breakdowns: one question. An
     * unknown place is STORE_ERR_NOTFOUND "unknown place NAME". */
    int (*breakdown) (void *handle, const char *neighbourhood, const char *place,
                      const store_breakdown_t *by, size_t by_count, const store_filter_t *filter,
                      store_keys_fn *row, void *arg, char *err, size_t err_len);
    /* The pooling rows of a neighbourhood, a place or all (place_totals_pooling): one question. */
    int (*pooling) (void *handle, const char *neighbourhood, const char *place,
                    place_totals_pooling_fn *row, void *arg, char *err, size_t err_len);
    /* The places ranked (place_totals_rank): one question. */
    int (*places) (void *handle, place_totals_place_fn *fn, void *arg, char *err, size_t err_len);
    void (*close) (void **handle);
} cli_source_t;

/* Opens the source args name: the store args->db read-only, or a connection to the collector
 * at args->collector (cli_client_open). Returns 0, or -1 with a message and *code (a store error
 * code, for store_exit_status). */
int cli_source_open (cli_source_t *source, const query_args_t *args, int *code, char *err,
                     size_t err_len);

#endif
