/* cli_source: the store read directly (--db), and the choice of source. */
#include "cli_source.h"

#include <stdio.h>

#include "cli_client.h"
#include "cli_store.h"

static int
db_neighbourhoods (void *handle, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    return store_neighbourhoods (handle, row, arg, err, err_len);
}

static int
db_totals (void *handle, const char *neighbourhood, store_breakdown_t by,
           const store_filter_t *filter, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    return store_totals (handle, neighbourhood, by, filter, row, arg, err, err_len);
}

static int
db_get_record (void *handle, const char *body_id, const char *record_id,
               Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    return store_get_record (handle, body_id, record_id, record, err, err_len);
}

static int
db_counters (void *handle, store_counters_t *counters, char *err, size_t err_len)
{
    return store_counters (handle, counters, err, err_len);
}

static int
db_agents (void *handle, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    return store_agents (handle, fn, arg, err, err_len);
}

static int
db_identity (void *handle, store_identity_t *identity, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    return store_identity (handle, identity);
}

static void
db_close (void **handle)
{
    store_t *store = *handle;
    store_destroy (&store);
    *handle = NULL;
}

/* Opens dir read-only; cli_store_open says what is wrong with a folder that holds no usable
 * store and sets *code (a store error code, for the exit status). */
static int
db_open (cli_source_t *source, const char *dir, int *code, char *err, size_t err_len)
{
    store_t *store = cli_store_open (dir, code, err, err_len);
    if (!store)
        return -1;
    *source = (cli_source_t){store,     db_neighbourhoods, db_totals, db_get_record, db_counters,
                             db_agents, db_identity,       NULL,      db_close};
    return 0;
}

int
cli_source_open (cli_source_t *source, const query_args_t *args, int *code, char *err,
                 size_t err_len)
{
    *code = STORE_ERR;
    if (args->collector)
        return cli_client_open (source, args, err, err_len);
    return db_open (source, args->db, code, err, err_len);
}
