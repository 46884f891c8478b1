/* test_support: helpers for tests; aborts on allocation failure because a test cannot go on. */
#define _XOPEN_SOURCE 700
#include "test_support.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void *
must (void *pointer)
{
    if (!pointer) {
        fprintf (stderr, "test_support: out of memory\n");
        abort ();
    }
    return pointer;
}

char *
test_tmpdir (const char *tag)
{
    const char *base = getenv ("TOTALPLACE_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir (base, 0700);
    size_t len = strlen (base) + strlen (tag) + 16;
    char *path = must (malloc (len));
    snprintf (path, len, "%s/%s.XXXXXX", base, tag);
    if (!mkdtemp (path)) {
        perror ("mkdtemp");
        abort ();
    }
    return path;
}

static int
remove_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void) st;
    (void) type;
    (void) ftw;
    return remove (path);
}

void
test_rmtree (const char *path)
{
    nftw (path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

store_t *
test_store_new (const char *dir, const store_options_t *options)
{
    store_options_t opened = options ? *options : (store_options_t){0};
    opened.path = dir;
    char err[STORE_ERR_LEN];
    store_t *store = NULL;
    if (store_init (dir, NULL, err, sizeof err) == 0)
        store = store_new (&opened, NULL, err, sizeof err);
    if (!store) {
        fprintf (stderr, "test_support: cannot make a store in %s: %s\n", dir, err);
        abort ();
    }
    return store;
}

Totalplace__SpendingRecord *
test_record (const char *body_id, const char *record_id, uint32_t revision,
             const char *neighbourhood, const char *service, const char *period,
             int64_t amount_pence, bool poolable)
{
    Totalplace__SpendingRecord *record = must (malloc (sizeof *record));
    totalplace__spending_record__init (record);
    record->body_id = must (strdup (body_id));
    record->record_id = must (strdup (record_id));
    record->revision = revision;
    record->neighbourhood = must (strdup (neighbourhood));
    record->service = must (strdup (service));
    record->period = must (strdup (period));
    record->amount_pence = amount_pence;
    record->poolable = poolable;
    record->supplier = must (strdup ("ACME SUPPLIES LTD"));
    record->description = must (strdup (""));
    return record;
}

Totalplace__SpendingRecord *
test_record_copy (const Totalplace__SpendingRecord *source)
{
    Totalplace__SpendingRecord *record =
      test_record (source->body_id, source->record_id, source->revision, source->neighbourhood,
                   source->service, source->period, source->amount_pence, source->poolable);
    free (record->supplier);
    free (record->description);
    record->supplier = must (strdup (source->supplier));
    record->description = must (strdup (source->description));
    record->withdrawn = source->withdrawn;
    return record;
}

void
test_record_free (Totalplace__SpendingRecord **record_p)
{
    if (*record_p)
        protobuf_c_message_free_unpacked (&(*record_p)->base, NULL);
    *record_p = NULL;
}

Totalplace__Batch *
test_batch_new (const char *agent_id, uint64_t batch_seq)
{
    Totalplace__Batch *batch = must (malloc (sizeof *batch));
    totalplace__batch__init (batch);
    batch->agent_id = must (strdup (agent_id));
    batch->batch_seq = batch_seq;
    return batch;
}

void
test_batch_add (Totalplace__Batch *batch, Totalplace__SpendingRecord *record)
{
    batch->records =
      must (realloc (batch->records, (batch->n_records + 1) * sizeof *batch->records));
    batch->records[batch->n_records++] = record;
}

void
test_batch_free (Totalplace__Batch **batch_p)
{
    if (*batch_p)
        protobuf_c_message_free_unpacked (&(*batch_p)->base, NULL);
    *batch_p = NULL;
}
