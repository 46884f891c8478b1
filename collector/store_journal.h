/* store_journal: the store's durable sequential log of groups (DIR/journal). Under load the store
 * keeps one LMDB write transaction open across many groups; each group is appended here, and
 * synced, before its batches are acknowledged, so an Ack still means the batch survives kill -9 and
 * power loss, while LMDB commits (and rewrites its pages) once for many groups. After a crash the
 * store applies again, in order, the groups its last commit does not hold. docs/architecture.md
 * ("Decision: a journal under load"). */
#ifndef TOTALPLACE_STORE_JOURNAL_H
#define TOTALPLACE_STORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spending.pb-c.h"

typedef struct _store_journal_t store_journal_t;

/* Opens DIR/journal, creating it empty when missing, for the store whose 16-byte key is key (its
 * store id's bits): a journal of another store is refused. NULL with a message on error. */
store_journal_t *store_journal_open (const char *dir, const unsigned char key[16], char *err,
                                     size_t err_len);

/* Closes the file and sets *self_p to NULL; safe on NULL. */
void store_journal_close (store_journal_t **self_p);

/* Appends group seq: its batches, and which of their records (refused[n], n counting the records
 * of every batch in order; NULL for none) the caller refused before the store saw them. Synced to
 * the disk when it returns 0; -1 with a message otherwise (the entry then does not count). */
int store_journal_append (store_journal_t *self, uint64_t seq, Totalplace__Batch *const *batches,
                          size_t batch_count, const bool *refused, char *err, size_t err_len);

/* Empties the journal: every group in it is in a committed transaction. */
int store_journal_reset (store_journal_t *self, char *err, size_t err_len);

/* Bytes of entries the journal holds now. */
uint64_t store_journal_bytes (const store_journal_t *self);

/* Called for each group in order; batches and refused live until it returns. Non-zero stops. */
typedef int (store_journal_fn) (void *arg, uint64_t seq, Totalplace__Batch *const *batches,
                                size_t batch_count, const bool *refused);

/* Reads the journal from its start. An entry cut short or zeroed at the end (the write a crash
 * interrupted, never acknowledged) ends it; a damaged entry with more after it is damage: -2 with a
 * message. Returns 0, fn's non-zero value, or -1 with a message. */
int store_journal_read (store_journal_t *self, store_journal_fn *fn, void *arg, char *err,
                        size_t err_len);

#endif
