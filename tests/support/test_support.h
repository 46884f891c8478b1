/* test_support: temporary folders, new stores and record/batch builders shared by the tests. */
#ifndef TOTALPLACE_TEST_SUPPORT_H
#define TOTALPLACE_TEST_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "spending.pb-c.h"
#include "store.h"

/* A new empty folder under $TOTALPLACE_TEST_TMP (or /tmp); free() the returned path. */
char *test_tmpdir (const char *tag);

/* Removes a folder and everything below it. */
void test_rmtree (const char *path);

/* A new store in dir (missing or empty), made with store_init as an operator would, then opened
 * with options (NULL for the defaults; their path is ignored: dir is used). Aborts with the
 * message when either fails: a test cannot go on without its store. */
store_t *test_store_new (const char *dir, const store_options_t *options);

/* Raw access to a closed store's values with LMDB itself, as damage or another program would
 * leave them (database by name: "records", "cells", ...). test_raw_put writes len bytes of
 * payload followed, when sealed, by the checksum the store would write (store_checksum.h);
 * test_raw_get copies the whole stored value (checksum included) into out and returns its size,
 * 0 when the key is not stored; test_raw_del deletes the key. Each aborts when LMDB fails. */
void test_raw_put (const char *dir, const char *database, const void *key, size_t key_len,
                   const void *payload, size_t len, bool sealed);
size_t test_raw_get (const char *dir, const char *database, const void *key, size_t key_len,
                     void *out, size_t out_len);
void test_raw_del (const char *dir, const char *database, const void *key, size_t key_len);

/* The stored bytes of a key given by its words, as messages show keys ("BODY|RECORD_ID",
 * "YYYY-MM|NEIGHBOURHOOD|BODY|SERVICE|Y", "E01000001", "agent-a": store_key_from_text), looked up
 * in the store in dir opened read-only. Returns its length; aborts when there is no such key. */
size_t test_store_key (const char *dir, const char *database, const char *words, unsigned char *out,
                       size_t out_len);

/* Closes *store_p (may be NULL), removes the folder *dir_p and frees its path; both pointers end
 * NULL. The teardown of a test's store. */
void test_store_remove (store_t **store_p, char **dir_p);

/* A record with every string strdup'd; free with test_record_free. */
Totalplace__SpendingRecord *test_record (const char *body_id, const char *record_id,
                                         uint32_t revision, const char *neighbourhood,
                                         const char *service, const char *period,
                                         int64_t amount_pence, bool poolable);
Totalplace__SpendingRecord *test_record_copy (const Totalplace__SpendingRecord *record);
void test_record_free (Totalplace__SpendingRecord **record_p);

/* A batch owning its records; records added with test_batch_add are owned by the batch. */
Totalplace__Batch *test_batch_new (const char *agent_id, uint64_t batch_seq);
void test_batch_add (Totalplace__Batch *batch, Totalplace__SpendingRecord *record);
void test_batch_free (Totalplace__Batch **batch_p);

#endif
