/* outbox: the agent's durable store of encoded batches, kept from before they are sent until the
 * collector acknowledges them, and for a while after (retained), so that no batch is lost whatever
 * crashes, restarts, or restores of the collector's store from a backup. */
#ifndef TOTALPLACE_OUTBOX_H
#define TOTALPLACE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "file_identity.h"

/* An outbox lives in one folder (an LMDB environment: data.mdb, lock.mdb, plus outbox.lock which
 * keeps a second agent process out). Every change is committed durably (fsync) before the call
 * returns. An outbox_t is not thread-safe: use it from one thread.
 *
 * A batch is PENDING from its put until its Ack, then RETAINED (with its ack time) until pruned:
 * by age (outbox_prune), or oldest-acknowledged first when pending batches need the room. Should
 * the collector's store go back (a restore), retained batches are put back to pending
 * (outbox_recover) and sent again; those already pruned are recorded as LOST, an alarm that stays
 * until a person clears it. */
typedef struct _outbox_t outbox_t;

/* Error codes returned by outbox functions (0 is success). */
#define OUTBOX_ERR          -1 /* I/O or LMDB failure, or misuse; the message says which */
#define OUTBOX_ERR_FULL     -2 /* a limit would be exceeded; nothing was stored; wait for acks */
#define OUTBOX_ERR_TOO_BIG  -3 /* one payload is larger than max_bytes: it can never be stored */
#define OUTBOX_ERR_SEQ      -4 /* the sequence number is not outbox_next_seq() (or next ones) */
#define OUTBOX_ERR_NOTFOUND -5 /* no batch with that sequence number is pending */
#define OUTBOX_ERR_READONLY -6 /* a change asked of an outbox opened with outbox_open_readonly */
#define OUTBOX_ERR_STAGE    -7 /* a stage is open (or none is, for outbox_stage_add/commit) */

#define OUTBOX_ERR_LEN 256

#define OUTBOX_DEFAULT_MAX_BATCHES 10000u
#define OUTBOX_DEFAULT_MAX_BYTES   (UINT64_C (1) << 30)
/* Files whose name and seqs are remembered (outbox_put_many's source), newest kept. */
#define OUTBOX_SOURCES_KEPT 100000u
/* Longest source label and store id kept (longer ones are cut). */
#define OUTBOX_SOURCE_MAX   255u
#define OUTBOX_STORE_ID_MAX 64u

/* The limits bound pending and retained batches TOGETHER (so they bound the disk the outbox
 * takes), but only pending ones can make the outbox full: retained ones make room for them,
 * oldest-acknowledged first. */
typedef struct {
    size_t max_batches; /* batches held at once; 0 means OUTBOX_DEFAULT_MAX_BATCHES */
    uint64_t max_bytes; /* payload bytes held at once; 0 means OUTBOX_DEFAULT_MAX_BYTES */
    size_t map_size;    /* initial LMDB map size; 0 means 2 * max_bytes + 64 MiB. The map grows
                           by doubling should fragmentation ever fill it below the limits. */
} outbox_limits_t;

/* One batch for outbox_put_many. */
typedef struct {
    uint64_t seq;
    const void *payload;
    size_t size;
} outbox_item_t;

/* Opens the outbox in folder dir, creating the folder (mode 0700, parents too) and the store when
 * missing. limits may be NULL for the defaults; they may be lower than what an earlier run left
 * stored, in which case the outbox is over its limits until acks drain it. Fails (NULL with a
 * message in err) when another process has the outbox open, or the files are not an outbox. */
outbox_t *outbox_new (const char *dir, const outbox_limits_t *limits, char *err, size_t err_len);

/* Opens an existing outbox to read it, beside a running agent: takes no lock, creates nothing,
 * and every change fails with OUTBOX_ERR_READONLY. What it shows is the store as of the open. The
 * limits are unknown to it (outbox_has_room says false). NULL with a message in err when dir holds
 * no outbox. */
outbox_t *outbox_open_readonly (const char *dir, char *err, size_t err_len);

/* Closes the outbox and sets *self_p to NULL; safe on NULL and safe twice. Pending batches stay. */
void outbox_destroy (outbox_t **self_p);

/* The sequence number the next put must use. Starts at 1 and only ever increases: a number is never
 * handed out twice, even after its batch was removed and the agent restarted (the high-water mark
 * is stored with each put). */
uint64_t outbox_next_seq (outbox_t *self);

/* Stores payload (an encoded Batch, at least one byte) under seq, which must equal
 * outbox_next_seq(), in one durable transaction. Returns 0 once committed; OUTBOX_ERR_SEQ for a
 * wrong seq; OUTBOX_ERR_FULL when max_batches or max_bytes would be exceeded; OUTBOX_ERR_TOO_BIG
 * when size alone exceeds max_bytes; OUTBOX_ERR otherwise. On any error nothing is stored and
 * outbox_next_seq() is unchanged. */
int outbox_put (outbox_t *self, uint64_t seq, const void *payload, size_t size, char *err,
                size_t err_len);

/* Stores n batches (e.g. all of one file's) in ONE durable transaction: all or none. Their seqs
 * must be outbox_next_seq(), outbox_next_seq() + 1, ... in that order. Returns as outbox_put,
 * checking the limits against the n batches together; n == 0 stores nothing and returns 0.
 * source (may be NULL) names where the batches came from, e.g. the file's name: it is kept with
 * their seqs (for the last OUTBOX_SOURCES_KEPT puts) so that lost batches can be named by file.
 * Retained batches are pruned in the same transaction when the new ones need their room. */
int outbox_put_many (outbox_t *self, const outbox_item_t *items, size_t n, const char *source,
                     char *err, size_t err_len);

/* ---------------------------------------------------------------- one file, streamed
 *
 * A file's batches are added one at a time to a STAGE and become pending all together at
 * outbox_stage_commit, or not at all (outbox_stage_abort, a crash, or an error): a file is
 * all-or-nothing whatever its size, while memory stays bounded (staged batches reach the disk in
 * chunks of about OUTBOX_STAGE_CHUNK bytes, invisible to outbox_foreach, outbox_get and every
 * count until the commit; a stage left by a crash is deleted when the outbox is next opened). One
 * stage at a time; outbox_put and outbox_put_many are refused while one is open. */
#define OUTBOX_STAGE_CHUNK (UINT64_C (4) << 20)

/* A file the agent finished with: its batches committed (first_seq..last_seq; 0..0 when it had
 * none, or when it was held and nothing was stored), remembered until it has left the inbox so
 * that it is never taken twice. */
typedef struct {
    const char *name;   /* its name in the inbox (cut to OUTBOX_SOURCE_MAX bytes) */
    const char *target; /* the name it is to have in done/ or failed/ ("" when none yet) */
    bool held;          /* held or failed: to failed/, nothing stored */
    file_identity_t identity;
    int64_t taken_at; /* unix seconds */
    uint64_t first_seq, last_seq;
    uint64_t records;  /* records in its batches */
    uint64_t rejected; /* rows rejected when it was read */
} outbox_file_t;

/* Opens a stage at outbox_next_seq(). Returns 0, OUTBOX_ERR_STAGE when one is open, or
 * OUTBOX_ERR (e.g. the remains of an earlier stage could not be deleted). */
int outbox_stage_begin (outbox_t *self, char *err, size_t err_len);

/* Adds one batch (seq must be outbox_next_seq() + the batches added so far; the payload is
 * copied) holding `records` records. Returns 0; OUTBOX_ERR_FULL when the pending batches, the
 * staged ones and this one would pass max_batches or max_bytes (nothing is added; the stage
 * stays open: retained batches are not counted, they make room at the commit);
 * OUTBOX_ERR_TOO_BIG when this payload alone is over max_bytes; OUTBOX_ERR_SEQ; OUTBOX_ERR_STAGE
 * when no stage is open; OUTBOX_ERR when a chunk could not be written (the stage stays open:
 * abort it). */
int outbox_stage_add (outbox_t *self, uint64_t seq, const void *payload, size_t size,
                      uint32_t records, char *err, size_t err_len);

/* Batches and payload bytes added to the open stage (0 when none). */
uint64_t outbox_stage_batches (outbox_t *self);
uint64_t outbox_stage_bytes (outbox_t *self);

/* Makes the staged batches pending in ONE durable transaction, together with their source (the
 * file's name, seqs, records and rejected rows, as outbox_put_many's source) and the file's
 * record (outbox_file_remember; file->first_seq and last_seq are set here). Retained batches are
 * pruned in it when the new ones need their room. On an error the stage stays open (abort it). */
int outbox_stage_commit (outbox_t *self, const outbox_file_t *file, char *err, size_t err_len);

/* Deletes everything staged and closes the stage; nothing of it was ever visible. When the
 * deletion cannot be written the staged batches stay invisible and are deleted at the next
 * outbox_stage_begin or open. Returns 0 or OUTBOX_ERR. */
int outbox_stage_abort (outbox_t *self, char *err, size_t err_len);

/* Remembers file (keyed by its name; replaces a record of the same name) durably, e.g. a held
 * file that could not be moved to failed/. */
int outbox_file_remember (outbox_t *self, const outbox_file_t *file, char *err, size_t err_len);

/* Forgets the record of the file named name (once it has left the inbox). Not found is not an
 * error. */
int outbox_file_forget (outbox_t *self, const char *name, char *err, size_t err_len);

/* Called for each remembered file, in name order; the strings are valid during the call only.
 * Return non-zero to stop. */
typedef int (outbox_file_fn) (void *arg, const outbox_file_t *file);
int outbox_foreach_file (outbox_t *self, outbox_file_fn *fn, void *arg, char *err, size_t err_len);

/* Called after outbox_ack has committed, for each source (a file put with a label) whose batches
 * are now all acknowledged: its label, seqs, when it was put, and the records and rejected rows
 * recorded with it (0 for sources put before they were recorded). */
typedef void (outbox_delivered_fn) (void *arg, const char *source, uint64_t first, uint64_t last,
                                    int64_t put_at, uint64_t records, uint64_t rejected);
void outbox_on_delivered (outbox_t *self, outbox_delivered_fn *fn, void *arg);

/* When the collector last acknowledged a batch (unix seconds, kept durably; 0: never). */
int64_t outbox_last_ack_at (outbox_t *self);

/* When the oldest pending batch was put (the time its source was recorded; 0 when nothing is
 * pending or its source is no longer remembered). */
int outbox_oldest_pending_at (outbox_t *self, int64_t *put_at, char *err, size_t err_len);

/* The collector acknowledged batches seqs[0..n): moves each pending one to the retained batches
 * with ack time acked_at (unix seconds) and raises the highest acknowledged seq, in ONE durable
 * transaction. A seq that is not pending (acks can repeat) is skipped without error. *moved (may
 * be NULL) is set to how many moved. */
int outbox_ack (outbox_t *self, const uint64_t *seqs, size_t n, int64_t acked_at, size_t *moved,
                char *err, size_t err_len);

/* Deletes the retained batches acknowledged before acked_before (unix seconds), durably. *pruned
 * (may be NULL) is set to how many. */
int outbox_prune (outbox_t *self, int64_t acked_before, size_t *pruned, char *err, size_t err_len);

/* What outbox_recover found in its range. */
typedef struct {
    uint64_t pending;    /* still pending: they are sent anyway */
    uint64_t requeued;   /* retained ones put back to pending, to be sent again */
    uint64_t lost;       /* neither: acknowledged, pruned here, and not in the collector's store */
    uint64_t newly_lost; /* of lost, those not already in the alarm */
    uint64_t first_lost; /* lowest and highest lost seq (0 when none) */
    uint64_t last_lost;
} outbox_recovery_t;

/* The collector's store lacks batches first..last (clipped to the seqs ever handed out): puts
 * each retained one back to pending (same seq, same payload) and records the ones neither
 * retained nor pending as lost (the alarm, kept until outbox_clear_alarm), in ONE durable
 * transaction; nothing is written when nothing changes. Fills *found. */
int outbox_recover (outbox_t *self, uint64_t first, uint64_t last, int64_t now,
                    outbox_recovery_t *found, char *err, size_t err_len);

/* Copies batch seq into a new malloc'd buffer: *payload (the caller frees it) of *size bytes.
 * Returns 0, OUTBOX_ERR_NOTFOUND when not pending, or OUTBOX_ERR. */
int outbox_get (outbox_t *self, uint64_t seq, void **payload, size_t *size, char *err,
                size_t err_len);

/* Called once per pending batch, in increasing seq order. payload is valid only during the call.
 * Return non-zero to stop the walk. fn must not call any other outbox function that reads or
 * writes the store (they fail with OUTBOX_ERR if it does); collect seqs and act after the walk. */
typedef int (outbox_fn) (void *arg, uint64_t seq, const void *payload, size_t size);

/* Walks the pending batches as of one snapshot. Returns 0 when the walk ended (all visited, or fn
 * stopped it) or OUTBOX_ERR. */
int outbox_foreach (outbox_t *self, outbox_fn *fn, void *arg, char *err, size_t err_len);

/* As outbox_foreach, starting at the first pending batch whose seq is >= first_seq, so a sender
 * can walk on from where it stopped without revisiting what it already sent. */
int outbox_foreach_from (outbox_t *self, uint64_t first_seq, outbox_fn *fn, void *arg, char *err,
                         size_t err_len);

/* Batches pending. */
size_t outbox_count (outbox_t *self);

/* Payload bytes pending (the sum of the sizes stored; LMDB's own overhead is not counted). */
uint64_t outbox_bytes (outbox_t *self);

/* True when one more pending batch of bytes_needed bytes fits within both limits now (pruning
 * retained batches if need be), so the agent can stop taking new files while the outbox is full,
 * and say so. */
bool outbox_has_room (outbox_t *self, size_t bytes_needed);

/* True when the pending batches plus `batches` more of `bytes` bytes in all would be within both
 * limits (retained batches make room), e.g. a file that waited for acks. */
bool outbox_has_room_for (outbox_t *self, uint64_t batches, uint64_t bytes);

/* True when `batches` batches of `bytes` bytes could fit even in an empty outbox. */
bool outbox_could_ever_fit (outbox_t *self, uint64_t batches, uint64_t bytes);

/* The retained batches. */
typedef struct {
    size_t count;
    uint64_t bytes;           /* payload bytes */
    int64_t oldest_acked_at;  /* unix seconds; 0 when none is retained */
    uint64_t pruned_for_room; /* retained batches pruned to make room, since this open */
} outbox_retained_t;

void outbox_retained (outbox_t *self, outbox_retained_t *retained);

/* The highest seq the collector ever acknowledged (0: none), kept durably. */
uint64_t outbox_acked_max (outbox_t *self);

/* The collector store id last seen ("" when none yet), kept durably. */
const char *outbox_store_id (outbox_t *self);

/* Remembers store_id (cut to OUTBOX_STORE_ID_MAX bytes) durably. */
int outbox_set_store_id (outbox_t *self, const char *store_id, char *err, size_t err_len);

/* The alarm: lost batches (outbox_recover), read from disk at each call so that a clear made by
 * another process shows. */
typedef struct {
    uint64_t lost;     /* batches */
    size_t ranges;     /* runs of consecutive lost seqs */
    int64_t raised_at; /* unix seconds the earliest of them was found; 0 when no alarm */
} outbox_alarm_t;

int outbox_alarm (outbox_t *self, outbox_alarm_t *alarm, char *err, size_t err_len);

/* Called for each run of lost seqs, in seq order; return non-zero to stop. */
typedef int (outbox_lost_fn) (void *arg, uint64_t first, uint64_t last, int64_t raised_at);
int outbox_foreach_lost (outbox_t *self, outbox_lost_fn *fn, void *arg, char *err, size_t err_len);

/* Called for each remembered source whose seqs overlap first..last, in seq order: its label, its
 * seqs and when it was put (unix seconds); return non-zero to stop. */
typedef int (outbox_source_fn) (void *arg, const char *source, uint64_t first, uint64_t last,
                                int64_t put_at);
int outbox_foreach_source (outbox_t *self, uint64_t first, uint64_t last, outbox_source_fn *fn,
                           void *arg, char *err, size_t err_len);

/* Deletes the alarm (every lost record) of the outbox in folder dir, durably; safe beside a
 * running agent (LMDB serialises the writers; the agent keeps no copy of the alarm). *cleared
 * (may be NULL) is set to how many lost batches it named. */
int outbox_clear_alarm (const char *dir, uint64_t *cleared, char *err, size_t err_len);

#endif
