/* outbox: the agent's durable store of encoded batches, kept from before they are sent until the
 * collector acknowledges them, so that no batch is lost whatever crashes or restarts. */
#ifndef TOTALPLACE_OUTBOX_H
#define TOTALPLACE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An outbox lives in one folder (an LMDB environment: data.mdb, lock.mdb, plus outbox.lock which
 * keeps a second agent process out). Every change is committed durably (fsync) before the call
 * returns. An outbox_t is not thread-safe: use it from one thread. */
typedef struct _outbox_t outbox_t;

/* Error codes returned by outbox functions (0 is success). */
#define OUTBOX_ERR          -1 /* I/O or LMDB failure, or misuse; the message says which */
#define OUTBOX_ERR_FULL     -2 /* a limit would be exceeded; nothing was stored; wait for acks */
#define OUTBOX_ERR_TOO_BIG  -3 /* one payload is larger than max_bytes: it can never be stored */
#define OUTBOX_ERR_SEQ      -4 /* the sequence number is not outbox_next_seq() (or next ones) */
#define OUTBOX_ERR_NOTFOUND -5 /* no batch with that sequence number is pending */

#define OUTBOX_ERR_LEN 256

#define OUTBOX_DEFAULT_MAX_BATCHES 10000u
#define OUTBOX_DEFAULT_MAX_BYTES   (UINT64_C (1) << 30)

typedef struct {
    size_t max_batches; /* batches pending at once; 0 means OUTBOX_DEFAULT_MAX_BATCHES */
    uint64_t max_bytes; /* payload bytes pending at once; 0 means OUTBOX_DEFAULT_MAX_BYTES */
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
 * checking the limits against the n batches together; n == 0 stores nothing and returns 0. */
int outbox_put_many (outbox_t *self, const outbox_item_t *items, size_t n, char *err,
                     size_t err_len);

/* Deletes the batch seq, durably, when its Ack arrives. A seq that is not pending (acks can repeat)
 * is not an error: returns 0 and, when existed is not NULL, sets *existed to whether it was. */
int outbox_remove (outbox_t *self, uint64_t seq, bool *existed, char *err, size_t err_len);

/* Copies batch seq into a new malloc'd buffer: *payload (the caller frees it) of *size bytes.
 * Returns 0, OUTBOX_ERR_NOTFOUND when not pending, or OUTBOX_ERR. */
int outbox_get (outbox_t *self, uint64_t seq, void **payload, size_t *size, char *err,
                size_t err_len);

/* Called once per pending batch, in increasing seq order. payload is valid only during the call.
 * Return non-zero to stop the walk. fn must not call outbox_put*, outbox_remove or outbox_get on
 * the same outbox (they fail with OUTBOX_ERR if it does); collect seqs and act after the walk. */
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

/* True when one more batch of bytes_needed bytes fits within both limits now, so the agent can stop
 * taking new files while the outbox is full, and say so. */
bool outbox_has_room (outbox_t *self, size_t bytes_needed);

#endif
