/* ingest: the ROUTER that takes Batches from agents, applies them to the store in groups, and
 * answers each with an Ack once its group has committed.
 *
 * The server is a CZMQ actor driven by zloop. Its pipe takes string commands:
 *   "BIND" endpoint  ->  replies "is": 0 or -1, and a message
 *   "AUTH" auth_t *  ->  (before any BIND) replies "is": 0 or -1, and a message
 *   "DRAIN"          ->  commits and acks what is already waiting (for at most 5 s), replies "i"
 *   "$TERM"          ->  the same, then exits
 * Counters and runtime settings live in the shared ingest_t behind a mutex, so any thread can read
 * or change them without waiting for a group to commit.
 *
 * Every Ack carries the store's id; an applied batch's Ack carries its agent's mark (highest
 * batch_seq applied) just before and just after it, so that an agent notices a store restored
 * from a backup (docs/protocol.md). A status request (Batch.status_request) joins the group like a
 * batch but is not applied: it is answered, in its turn, with the agent's mark as it stands after
 * the batches ahead of it in the group. */
#include "err_text.h"
#include "ingest.h"
#include "server_thread.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* At most this many log lines per second for each kind of trouble; the rest are counted and
 * summarised, so a hostile or broken peer cannot flood the log. */
#define LOG_LINES_PER_SECOND 5
/* ZeroMQ routing ids are at most 255 bytes. */
#define IDENTITY_MAX 255
/* Acks already queued when the socket closes get this long to reach their peers. */
#define INGEST_LINGER_MS 1000
/* On $TERM, keep committing what is already waiting for at most this long. */
#define INGEST_TERM_DRAIN_MS 5000
/* Agents whose last status request was logged, remembered by id; past this many the memory is
 * cleared (they are logged again), so peers inventing ids cannot grow it without bound. */
#define STATUS_LOGGED_MAX 4096

struct _ingest_t {
    zactor_t *actor;
    store_t *store;
    pthread_mutex_t lock;
    /* Guarded by lock. */
    ingest_counters_t counters;
    size_t max_group_batches;
    size_t max_group_records;
    size_t max_batch_bytes;
    size_t max_batch_records;
    int handshake_timeout_ms; /* read by the actor once, at start */
};

typedef struct {
    uint8_t identity[IDENTITY_MAX];
    size_t identity_size;
} peer_t;

/* Decoded batches of the group being gathered live in one arena, released all at once when the
 * next group starts: protobuf-c would otherwise make a malloc and a free for every field of every
 * record (a tenth of the collector's time at full load). Blocks are kept for the next group. */
#define ARENA_BLOCK_BYTES ((size_t)1 << 20)

typedef struct {
    uint8_t **blocks;
    size_t *sizes;          /* ARENA_BLOCK_BYTES, or more for one larger allocation */
    size_t count, capacity; /* blocks held */
    size_t current, used;   /* the block being filled and the bytes used in it */
} arena_t;

static void *
s_arena_alloc (void *data, size_t size)
{
    arena_t *arena = data;
    size = (size + 15) & ~(size_t)15;
    for (; arena->current < arena->count; arena->current++, arena->used = 0)
        if (arena->used + size <= arena->sizes[arena->current]) {
            void *pointer = arena->blocks[arena->current] + arena->used;
            arena->used += size;
            return pointer;
        }
    if (arena->count == arena->capacity) {
        size_t capacity = arena->capacity ? arena->capacity * 2 : 16;
        uint8_t **blocks = realloc (arena->blocks, capacity * sizeof *blocks);
        if (!blocks)
            return NULL;
        arena->blocks = blocks;
        size_t *sizes = realloc (arena->sizes, capacity * sizeof *sizes);
        if (!sizes)
            return NULL;
        arena->sizes = sizes;
        arena->capacity = capacity;
    }
    size_t block = size > ARENA_BLOCK_BYTES ? size : ARENA_BLOCK_BYTES;
    uint8_t *bytes = malloc (block);
    if (!bytes)
        return NULL;
    arena->blocks[arena->count] = bytes;
    arena->sizes[arena->count] = block;
    arena->current = arena->count++;
    arena->used = size;
    return bytes;
}

static void
s_arena_free (void *data, void *pointer)
{
    (void)data; /* everything goes at once, in s_arena_reset */
    (void)pointer;
}

/* Makes every block free again; blocks larger than usual (one huge field) are given back. */
static void
s_arena_reset (arena_t *arena)
{
    size_t kept = 0;
    for (size_t i = 0; i < arena->count; i++)
        if (arena->sizes[i] == ARENA_BLOCK_BYTES) {
            arena->blocks[kept] = arena->blocks[i];
            arena->sizes[kept++] = ARENA_BLOCK_BYTES;
        }
        else
            free (arena->blocks[i]);
    arena->count = kept;
    arena->current = 0;
    arena->used = 0;
}

static void
s_arena_release (arena_t *arena)
{
    for (size_t i = 0; i < arena->count; i++)
        free (arena->blocks[i]);
    free (arena->blocks);
    free (arena->sizes);
    *arena = (arena_t){0};
}

/* The actor's own state: touched only by the actor thread. */
typedef struct {
    ingest_t *shared;
    zsock_t *pipe;
    zsock_t *router;
    zsock_t *monitor; /* PAIR receiving the router's socket events */
    zloop_t *loop;

    /* Copied from shared at the start of each group. */
    size_t max_group_batches;
    size_t max_group_records;
    size_t max_batch_bytes;
    size_t max_batch_records;

    auth_t *auth; /* NULL: nothing is checked */

    /* The group being gathered: count batches holding records records, with room for capacity. */
    size_t capacity;
    size_t count;
    size_t records;
    peer_t *peers;
    auth_permit_t **permits;     /* what each batch's sender may do; NULL without auth */
    Totalplace__Batch **batches; /* decoded into arena */
    arena_t arena;
    ProtobufCAllocator allocator; /* allocates from arena */
    store_result_t **results;
    store_result_t *result_pool; /* results[b] point into this */
    size_t result_pool_capacity;
    /* Per batch b of the group: its agent's mark before and after it (a status request: the
     * store's mark before the group, then the mark it answers); mark_read[b] is false for a status
     * request whose mark could not be read (it is answered ACK_RETRY). */
    uint64_t *mark_before;
    uint64_t *mark_after;
    bool *mark_read;
    /* The group without its status requests, as store_apply takes it. */
    Totalplace__Batch **applied;
    store_result_t **applied_results;
    uint64_t *applied_marks;
    size_t applied_count;
    size_t status_count;             /* status requests in the group */
    bool capped;                     /* the group reached a cap: more frames may be waiting */
    char store_id[STORE_ID_HEX_LEN]; /* in every Ack */
    zhashx_t *status_logged;         /* agent id -> peer_t * of the connection last logged */

    /* One Ack's rejection list, sized for the largest batch so acking never allocates. */
    Totalplace__Rejection *rejections;
    Totalplace__Rejection **rejection_pointers;
    auth_permit_t *permit; /* handed from s_authorise to s_gather */

    ingest_counters_t counters; /* published to shared after each event */
    log_limit_t malformed_log, store_log, send_log, unsent_log, auth_log, status_log, limit_log;
    server_peers_t connections; /* fed by the monitor */
} server_t;

#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static void
s_publish (server_t *self)
{
    ingest_t *shared = self->shared;
    self->counters.connections = self->connections.connections;
    self->counters.disconnects = self->connections.disconnects;
    self->counters.handshake_failures = self->connections.handshake_failures;
    pthread_mutex_lock (&shared->lock);
    store_counters_t store = shared->counters.store;
    shared->counters = self->counters;
    shared->counters.store = store;
    pthread_mutex_unlock (&shared->lock);
}

static void
s_refresh_settings (server_t *self)
{
    ingest_t *shared = self->shared;
    pthread_mutex_lock (&shared->lock);
    self->max_group_batches = shared->max_group_batches;
    self->max_group_records = shared->max_group_records;
    self->max_batch_bytes = shared->max_batch_bytes;
    self->max_batch_records = shared->max_batch_records;
    pthread_mutex_unlock (&shared->lock);
}

/* Describes where a message came from, for log lines: the TCP peer's address when known. */
static const char *
s_peer_address (zmq_msg_t *message)
{
    const char *address = zmq_msg_gets (message, "Peer-Address");
    return address ? address : "a local peer";
}

static void
s_send_ack (server_t *self, const peer_t *peer, const Totalplace__Ack *ack)
{
    uint8_t *data = NULL;
    size_t size = 0;
    char err[WIRE_REASON_LEN];
    if (wire_encode (&ack->base, &data, &size, err, sizeof err)) {
        self->counters.unsent_acks++;
        if (log_limit_allow (&self->send_log))
            log_error ("ingest", "cannot encode the ack of batch %" PRIu64 ": %s", ack->batch_seq,
                       err);
        return;
    }
    /* With ZMQ_ROUTER_MANDATORY a peer that left, or one whose queue is full, makes the send fail
     * instead of vanishing silently; the agent re-sends and the store deduplicates. */
    void *handle = zsock_resolve (self->router);
    if (zmq_send (handle, peer->identity, peer->identity_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
        zmq_send (handle, data, size, ZMQ_DONTWAIT) == -1) {
        self->counters.unsent_acks++;
        if (log_limit_allow (&self->unsent_log))
            log_info ("ingest", "ack of batch %" PRIu64 " not sent: %s", ack->batch_seq,
                      zmq_strerror (zmq_errno ()));
    }
    free (data);
}

static void
s_reply_status (server_t *self, const peer_t *peer, uint64_t batch_seq,
                Totalplace__AckStatus status, const char *error)
{
    Totalplace__Ack ack = TOTALPLACE__ACK__INIT;
    ack.batch_seq = batch_seq;
    ack.status = status;
    ack.error = (char *)error;
    ack.store_id = self->store_id;
    s_send_ack (self, peer, &ack);
}

static void
s_reply_malformed (server_t *self, const peer_t *peer, zmq_msg_t *body, uint64_t batch_seq,
                   const char *reason)
{
    self->counters.malformed++;
    s_publish (self); /* whoever holds the ack sees it counted */
    if (log_limit_allow (&self->malformed_log))
        log_warning ("ingest", "malformed message from %s: %s", s_peer_address (body), reason);
    s_reply_status (self, peer, batch_seq, TOTALPLACE__ACK_STATUS__ACK_MALFORMED, reason);
}

/* Receives one whole message without waiting: the routing id and the first body frame, and how
 * many body frames there were. Returns 1, 0 when nothing is waiting, or -1 when the socket fails.
 */
static int
s_receive (server_t *self, peer_t *peer, zmq_msg_t *body, size_t *body_frames)
{
    void *handle = zsock_resolve (self->router);
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, handle, ZMQ_DONTWAIT) == -1) {
        int error = zmq_errno ();
        zmq_msg_close (&part);
        return error == EAGAIN || error == EINTR ? 0 : -1;
    }
    size_t size = zmq_msg_size (&part);
    peer->identity_size = size < IDENTITY_MAX ? size : IDENTITY_MAX;
    memcpy (peer->identity, zmq_msg_data (&part), peer->identity_size);
    bool more = zmq_msg_more (&part);
    zmq_msg_close (&part);

    /* The rest of a multipart message arrives with its first frame, so this does not wait. */
    *body_frames = 0;
    while (more) {
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, 0) == -1) {
            zmq_msg_close (&part);
            return -1;
        }
        more = zmq_msg_more (&part);
        if (*body_frames == 0)
            zmq_msg_move (body, &part);
        (*body_frames)++;
        zmq_msg_close (&part);
    }
    return 1;
}

/* Reallocates the array at array_p (a pointer to any object pointer) to count items of size
 * bytes. Returns false, leaving it as it was, when memory runs out. */
static bool
s_resize (void *array_p, size_t count, size_t size)
{
    void **array = array_p;
    void *resized = realloc (*array, count * size);
    if (resized)
        *array = resized;
    return resized != NULL;
}

/* Makes room for a group of the current caps. Keeps the old room when memory runs out. */
static void
s_reserve (server_t *self)
{
    size_t wanted = self->max_group_batches;
    if (wanted <= self->capacity)
        return;
    /* Every array is tried, so that each one that could grow has. */
    bool grown = s_resize (&self->peers, wanted, sizeof *self->peers);
    grown = s_resize (&self->batches, wanted, sizeof *self->batches) && grown;
    grown = s_resize (&self->results, wanted, sizeof *self->results) && grown;
    grown = s_resize (&self->permits, wanted, sizeof *self->permits) && grown;
    grown = s_resize (&self->mark_before, wanted, sizeof *self->mark_before) && grown;
    grown = s_resize (&self->mark_after, wanted, sizeof *self->mark_after) && grown;
    grown = s_resize (&self->mark_read, wanted, sizeof *self->mark_read) && grown;
    grown = s_resize (&self->applied, wanted, sizeof *self->applied) && grown;
    grown = s_resize (&self->applied_results, wanted, sizeof *self->applied_results) && grown;
    grown = s_resize (&self->applied_marks, wanted, sizeof *self->applied_marks) && grown;
    if (grown)
        self->capacity = wanted;
}

/* Checks a decoded batch against its sender's key (ingest_secure). Returns true when it may join
 * the group, with the sender's permit in self->permit; otherwise it has been answered. */
static bool
s_authorise (server_t *self, const peer_t *peer, zmq_msg_t *body, const Totalplace__Batch *batch)
{
    self->permit = NULL;
    char reason[256];
    char why[160];
    if (!server_peers_admit (&self->connections, body, why, sizeof why)) {
        /* The agent keeps the batch and sends it again after a backoff, on a new connection. */
        self->counters.retry_acks++;
        self->counters.over_limit++;
        s_publish (self);
        if (log_limit_allow (&self->limit_log))
            log_warning ("ingest", "refused batch %" PRIu64 " of agent %s from %s: %s",
                         batch->batch_seq, batch->agent_id, s_peer_address (body), why);
        snprintf (reason, sizeof reason,
                  "refused: agent limit reached (%s); the batch is kept and sent again", why);
        s_reply_status (self, peer, batch->batch_seq, TOTALPLACE__ACK_STATUS__ACK_RETRY, reason);
        return false;
    }
    /* Plain mode authenticates no one: nothing to check, and nothing to allocate per batch. */
    if (!self->auth || auth_is_plain (self->auth))
        return true;
    const char *user_id = zmq_msg_gets (body, "User-Id");
    self->permit = auth_permit (self->auth, user_id, CURVE_ROLE_AGENT);
    if (!self->permit) {
        /* Revoked (or rotated out) since it connected: the agent keeps the batch and reconnects,
         * and the ZAP handler refuses it from then on. */
        self->counters.unauthorised_batches++;
        self->counters.retry_acks++;
        s_publish (self);
        if (log_limit_allow (&self->auth_log))
            log_warning ("ingest",
                         "batch %" PRIu64 " from %s: key %.40s is no longer authorised; "
                         "answered ACK_RETRY",
                         batch->batch_seq, s_peer_address (body), user_id ? user_id : "(none)");
        snprintf (reason, sizeof reason,
                  "this agent's key is no longer authorised by the collector; the batch is kept "
                  "for when a new key is installed");
        s_reply_status (self, peer, batch->batch_seq, TOTALPLACE__ACK_STATUS__ACK_RETRY, reason);
        return false;
    }
    if (!auth_permit_is_plain (self->permit) &&
        strcmp (batch->agent_id, auth_permit_name (self->permit)) != 0) {
        self->counters.unauthorised_batches++;
        snprintf (reason, sizeof reason,
                  "agent id \"%.64s\" is not the name on this agent's certificate (\"%.64s\"); "
                  "set agent/id to it",
                  batch->agent_id, auth_permit_name (self->permit));
        auth_permit_destroy (&self->permit);
        s_reply_malformed (self, peer, body, batch->batch_seq, reason);
        return false;
    }
    return true;
}

/* Rejects, before the store sees them, the records of bodies the sender may not publish for. */
static void
s_reject_unauthorised (server_t *self)
{
    for (size_t b = 0; b < self->count; b++) {
        const auth_permit_t *permit = self->permits[b];
        if (!permit || auth_permit_is_plain (permit))
            continue;
        const Totalplace__Batch *batch = self->batches[b];
        size_t refused = 0;
        const char *first = NULL;
        for (size_t i = 0; i < batch->n_records; i++) {
            const char *body_id = batch->records[i]->body_id;
            if (auth_permit_allows_body (permit, body_id))
                continue;
            store_result_t *result = &self->results[b][i];
            result->outcome = STORE_REJECTED;
            snprintf (result->reason, sizeof result->reason,
                      "may not publish for body %.64s; the certificate lists %.40s", body_id,
                      auth_permit_bodies (permit));
            if (!first)
                first = body_id;
            refused++;
        }
        if (refused) {
            self->counters.unauthorised_records += refused;
            if (log_limit_allow (&self->auth_log))
                log_warning ("ingest",
                             "agent %s may not publish for body %s (its certificate lists "
                             "%s): %zu records of batch %" PRIu64 " rejected",
                             auth_permit_name (permit), first, auth_permit_bodies (permit), refused,
                             batch->batch_seq);
        }
    }
}

/* Reads every message already waiting, up to the group caps: good batches join the group, bad
 * ones are answered ACK_MALFORMED at once. */
static void
s_gather (server_t *self)
{
    s_reserve (self);
    if (self->count == 0)
        s_arena_reset (&self->arena); /* no batch of an earlier group is held any more */
    size_t max_batches =
        self->max_group_batches < self->capacity ? self->max_group_batches : self->capacity;
    self->capped = true;
    while ((self->capped =
                self->count >= max_batches || self->records >= self->max_group_records) == false) {
        peer_t *peer = &self->peers[self->count];
        zmq_msg_t body;
        zmq_msg_init (&body);
        size_t body_frames = 0;
        int rc = s_receive (self, peer, &body, &body_frames);
        if (rc <= 0) {
            zmq_msg_close (&body);
            if (rc < 0 && log_limit_allow (&self->send_log))
                log_error ("ingest", "receiving failed: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        self->counters.frames++;
        char reason[WIRE_REASON_LEN];
        size_t size = zmq_msg_size (&body);
        if (body_frames != 1) {
            snprintf (reason, sizeof reason,
                      "expected one frame holding a Batch, got %zu frames; send each Batch as a "
                      "single frame from a DEALER socket",
                      body_frames);
            s_reply_malformed (self, peer, &body, 0, reason);
        }
        else if (size > self->max_batch_bytes) {
            self->counters.oversized++;
            snprintf (reason, sizeof reason,
                      "message of %zu bytes is over the limit of %zu bytes "
                      "(limits/max_batch_kb); send smaller batches",
                      size, self->max_batch_bytes);
            s_reply_malformed (self, peer, &body, 0, reason);
        }
        else {
            /* wire_decode's work, with the group's arena for memory (size is checked above). */
            Totalplace__Batch *batch = (Totalplace__Batch *)protobuf_c_message_unpack (
                &totalplace__batch__descriptor, &self->allocator, size, zmq_msg_data (&body));
            if (!batch) {
                snprintf (reason, sizeof reason, "%zu bytes are not a valid %s message", size,
                          totalplace__batch__descriptor.short_name);
                s_reply_malformed (self, peer, &body, 0, reason);
            }
            else if (wire_validate_batch (batch, reason, sizeof reason))
                s_reply_malformed (self, peer, &body, batch->batch_seq, reason);
            else if (batch->status_request && (batch->batch_seq || batch->n_records)) {
                snprintf (reason, sizeof reason,
                          "a status request has batch_seq 0 and no records, this one batch_seq "
                          "%" PRIu64 " and %zu records; send records in a Batch without "
                          "status_request",
                          batch->batch_seq, batch->n_records);
                s_reply_malformed (self, peer, &body, batch->batch_seq, reason);
            }
            else if (batch->n_records > self->max_batch_records) {
                snprintf (reason, sizeof reason,
                          "batch of %zu records is over the limit of %zu "
                          "(limits/max_batch_records); send smaller batches",
                          batch->n_records, self->max_batch_records);
                s_reply_malformed (self, peer, &body, batch->batch_seq, reason);
            }
            else if (s_authorise (self, peer, &body, batch)) {
                self->permits[self->count] = self->permit;
                self->permit = NULL;
                self->batches[self->count++] = batch;
                self->records += batch->n_records;
                if (batch->status_request)
                    self->status_count++;
            }
        }
        zmq_msg_close (&body);
    }
}

static void
s_group_clear (server_t *self)
{
    /* The batches themselves go with the arena, when the next group starts. */
    for (size_t b = 0; b < self->count; b++)
        auth_permit_destroy (&self->permits[b]);
    self->count = 0;
    self->records = 0;
    self->status_count = 0;
}

/* Points results[b] into one pool of PENDING results. Returns 0, or -1 when out of memory. */
static int
s_prepare_results (server_t *self)
{
    /* n_records may be 0; one spare entry keeps every results[b] a valid pointer. */
    size_t needed = self->records + 1;
    if (needed > self->result_pool_capacity) {
        store_result_t *pool = realloc (self->result_pool, needed * sizeof *pool);
        if (!pool)
            return -1;
        self->result_pool = pool;
        self->result_pool_capacity = needed;
    }
    memset (self->result_pool, 0, needed * sizeof *self->result_pool);
    size_t offset = 0;
    for (size_t b = 0; b < self->count; b++) {
        self->results[b] = self->result_pool + offset;
        offset += self->batches[b]->n_records;
    }
    s_reject_unauthorised (self);
    return 0;
}

static void
s_ack_applied (server_t *self, size_t b)
{
    const Totalplace__Batch *batch = self->batches[b];
    store_result_t *results = self->results[b];
    Totalplace__Ack ack = TOTALPLACE__ACK__INIT;
    ack.batch_seq = batch->batch_seq;
    ack.status = TOTALPLACE__ACK_STATUS__ACK_APPLIED;
    ack.store_id = self->store_id;
    ack.mark_before = self->mark_before[b];
    ack.agent_mark = self->mark_after[b];
    size_t rejected = 0;
    for (size_t i = 0; i < batch->n_records; i++) {
        store_result_t *result = &results[i];
        switch (result->outcome) {
        case STORE_ACCEPTED:
            ack.accepted++;
            break;
        case STORE_DUPLICATE:
            ack.duplicate++;
            break;
        case STORE_SUPERSEDED:
            ack.superseded++;
            break;
        case STORE_STALE:
            ack.stale++;
            break;
        case STORE_PENDING:
            /* The store must decide every record; say so rather than report a false outcome. */
            if (log_limit_allow (&self->store_log))
                log_error ("ingest",
                           "the store left record %zu of batch %" PRIu64 " from %s "
                           "undecided; reported as rejected",
                           i, batch->batch_seq, batch->agent_id);
            result->outcome = STORE_REJECTED;
            snprintf (result->reason, sizeof result->reason,
                      "the collector did not decide this record; resend it");
            /* fall through */
        case STORE_REJECTED:
            ack.rejected++;
            self->rejections[rejected] = (Totalplace__Rejection)TOTALPLACE__REJECTION__INIT;
            self->rejections[rejected].index = (uint32_t)i;
            self->rejections[rejected].reason = result->reason;
            self->rejection_pointers[rejected] = &self->rejections[rejected];
            rejected++;
            break;
        }
    }
    ack.n_rejections = rejected;
    ack.rejections = rejected ? self->rejection_pointers : NULL;
    s_send_ack (self, &self->peers[b], &ack);
}

/* Sets the group's batches apart from its status requests (applied[], for store_apply), and reads
 * the store's mark for the agent of each status request, before the group changes anything. */
static void
s_split_group (server_t *self)
{
    self->applied_count = 0;
    for (size_t b = 0; b < self->count; b++) {
        const Totalplace__Batch *batch = self->batches[b];
        if (!batch->status_request) {
            self->applied[self->applied_count] = self->batches[b];
            self->applied_results[self->applied_count++] = self->results[b];
            continue;
        }
        char err[STORE_ERR_LEN];
        self->mark_before[b] = 0;
        self->mark_read[b] = store_agent_mark (self->shared->store, batch->agent_id,
                                               &self->mark_before[b], err, sizeof err) == 0;
        if (!self->mark_read[b] && log_limit_allow (&self->store_log))
            log_error ("ingest",
                       "cannot read the mark of agent %s for its status request; "
                       "answered ACK_RETRY: %s",
                       batch->agent_id, err);
    }
}

/* Fills mark_before and mark_after of every batch and status request of a committed group, in
 * their order: a status request answers its agent's mark after the batches ahead of it. */
static void
s_group_marks (server_t *self)
{
    size_t k = 0;
    for (size_t b = 0; b < self->count; b++) {
        const Totalplace__Batch *batch = self->batches[b];
        if (batch->status_request)
            continue;
        self->mark_before[b] = self->applied_marks[k++];
        self->mark_after[b] =
            batch->batch_seq > self->mark_before[b] ? batch->batch_seq : self->mark_before[b];
    }
    if (!self->status_count)
        return;
    /* Agent id -> 1 + the group index of its latest batch so far; only needed when a status
     * request shares the group with batches. */
    zhashx_t *latest = self->applied_count ? zhashx_new () : NULL;
    for (size_t b = 0; b < self->count; b++) {
        const Totalplace__Batch *batch = self->batches[b];
        if (!batch->status_request) {
            if (latest)
                zhashx_update (latest, batch->agent_id, (void *)(uintptr_t)(b + 1));
            continue;
        }
        if (self->applied_count && !latest) {
            self->mark_read[b] = false; /* out of memory: ask again later */
            continue;
        }
        uintptr_t ahead = latest ? (uintptr_t)zhashx_lookup (latest, batch->agent_id) : 0;
        self->mark_after[b] = ahead ? self->mark_after[ahead - 1] : self->mark_before[b];
    }
    zhashx_destroy (&latest);
}

/* Logs (info) a status request the first time its agent asks on a connection: an agent asks
 * every agent/check_interval_ms while idle, which is not worth a line each time. Rate-limited too,
 * for the reconnection of every agent at once after a collector restart. */
static void
s_log_status (server_t *self, size_t b)
{
    const Totalplace__Batch *batch = self->batches[b];
    const peer_t *peer = &self->peers[b];
    log_debug ("ingest", "status request from agent %s: its mark is %" PRIu64, batch->agent_id,
               self->mark_after[b]);
    if (!log_enabled (LOG_LEVEL_INFO) || !self->status_logged)
        return;
    peer_t *known = zhashx_lookup (self->status_logged, batch->agent_id);
    if (known && known->identity_size == peer->identity_size &&
        memcmp (known->identity, peer->identity, peer->identity_size) == 0)
        return;
    if (!known) {
        if (zhashx_size (self->status_logged) >= STATUS_LOGGED_MAX)
            zhashx_purge (self->status_logged);
        known = malloc (sizeof *known);
        if (!known)
            return;
        zhashx_insert (self->status_logged, batch->agent_id, known);
    }
    *known = *peer;
    if (log_limit_allow (&self->status_log))
        log_info ("ingest",
                  "agent %s asked for its mark on a new connection: %" PRIu64
                  " (store %s); the agent compares it with what it had acknowledged",
                  batch->agent_id, self->mark_after[b], self->store_id);
}

/* Counts the group's status requests by how s_ack_status will answer them. */
static void
s_count_status (server_t *self)
{
    for (size_t b = 0; b < self->count && self->status_count; b++)
        if (self->batches[b]->status_request) {
            if (self->mark_read[b])
                self->counters.status_requests++;
            else
                self->counters.retry_acks++;
        }
}

/* Answers the status request at b of the group: its agent's mark, or ACK_RETRY when the store
 * could not be read. */
static void
s_ack_status (server_t *self, size_t b)
{
    if (!self->mark_read[b]) {
        s_reply_status (self, &self->peers[b], 0, TOTALPLACE__ACK_STATUS__ACK_RETRY,
                        "the collector could not read its store to answer the status request; "
                        "ask again later");
        return;
    }
    s_log_status (self, b);
    Totalplace__Ack ack = TOTALPLACE__ACK__INIT;
    ack.batch_seq = 0;
    ack.status = TOTALPLACE__ACK_STATUS__ACK_APPLIED;
    ack.store_id = self->store_id;
    ack.agent_mark = self->mark_after[b];
    s_send_ack (self, &self->peers[b], &ack);
}

/* Applies the gathered group's batches in one store transaction and answers every batch and
 * status request in it, in the order they came. */
static void
s_commit (server_t *self)
{
    if (self->count == 0)
        return;
    char err[STORE_ERR_LEN] = "";
    int rc = 0;
    int64_t started = zclock_usecs ();
    if (s_prepare_results (self)) {
        snprintf (err, sizeof err, "collector out of memory for %zu records", self->records);
        rc = STORE_ERR;
        self->applied_count = self->count - self->status_count;
        for (size_t b = 0; b < self->count; b++)
            self->mark_read[b] = false;
    }
    else {
        /* A status request reads its agent's mark from the store: every group acknowledged
         * before it must be committed, not only in the journal. */
        if (self->status_count)
            rc = store_flush (self->shared->store, err, sizeof err);
        s_split_group (self);
        /* More batches waiting: this group may go to the store's journal, acknowledged once
         * synced there, and its transaction take the next groups too (store.h). Else it is
         * committed with whatever the journal holds, before it is acknowledged. */
        bool more = self->capped || (zsock_events (self->router) & ZMQ_POLLIN);
        if (rc == 0 && self->applied_count)
            rc = (more ? store_apply_journaled
                       : store_apply) (self->shared->store, self->applied, self->applied_count,
                                       self->applied_results, self->applied_marks, err, sizeof err);
    }
    int64_t elapsed = zclock_usecs () - started;
    size_t applied = self->applied_count;

    char reason[STORE_ERR_LEN + 64] = "";
    if (rc == 0) {
        s_group_marks (self);
        if (applied) {
            metrics_histogram_observe (&self->counters.commit_seconds, (double)elapsed / 1e6);
            self->counters.groups++;
            self->counters.batches += applied;
            self->counters.records += self->records;
            if (applied > self->counters.largest_group)
                self->counters.largest_group = applied;
            if (self->records > self->counters.largest_group_records)
                self->counters.largest_group_records = self->records;
        }
    }
    else {
        snprintf (reason, sizeof reason,
                  "collector could not store the batch now (%s); resend later", err);
        /* Nothing was applied: a status request's mark read before the group stands. */
        for (size_t b = 0; b < self->count; b++)
            if (self->batches[b]->status_request)
                self->mark_after[b] = self->mark_before[b];
        self->counters.retry_acks += applied;
    }
    s_count_status (self);
    /* Counted before acked, so that whoever holds an ack sees its batch counted. */
    s_publish (self);
    for (size_t b = 0; b < self->count; b++) {
        if (self->batches[b]->status_request)
            s_ack_status (self, b);
        else if (rc == 0)
            s_ack_applied (self, b);
        else
            s_reply_status (self, &self->peers[b], self->batches[b]->batch_seq,
                            TOTALPLACE__ACK_STATUS__ACK_RETRY, reason);
    }
    if (rc == 0 && applied)
        log_debug ("ingest", "committed %zu batches, %zu records in %.1f ms", applied,
                   self->records, (double)elapsed / 1000.0);
    else if (rc && log_limit_allow (&self->store_log))
        log_error ("ingest", "%s storing %zu batches (%zu records); answered ACK_RETRY: %s",
                   rc == STORE_ERR_FULL      ? "store full"
                   : rc == STORE_ERR_DAMAGED ? "STORE DAMAGED"
                   : rc == STORE_ERR_NOSPACE ? "disk full"
                                             : "store failed",
                   applied, self->records, err);
    s_group_clear (self);
}

/* Commits the groups the store keeps in its journal. A failure is logged; the groups stay in the
 * journal (durable, acknowledged), and the next group or flush commits them. */
static void
s_flush (server_t *self)
{
    if (!store_pending (self->shared->store))
        return;
    char err[STORE_ERR_LEN];
    int rc = store_flush (self->shared->store, err, sizeof err);
    if (rc && log_limit_allow (&self->store_log))
        log_error ("ingest",
                   "cannot commit the groups the store's journal holds (they are safe there and "
                   "will be committed later): %s",
                   err);
}

static int
s_on_router (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)reader;
    server_t *self = (server_t *)arg;
    s_refresh_settings (self);
    s_gather (self);
    s_commit (self);
    /* Nothing waiting now: commit what the journal holds, so that readers see it. */
    if (!(zsock_events (self->router) & ZMQ_POLLIN))
        s_flush (self);
    s_publish (self);
    return 0;
}

/* What already reached the socket has been delivered to us: store and ack it rather than make
 * its agents wait out a timeout. Stops when the socket is empty, or after a while if agents keep
 * sending (they re-send whatever is left unacked). */
static void
s_drain (server_t *self)
{
    s_refresh_settings (self);
    int64_t deadline = zclock_mono () + INGEST_TERM_DRAIN_MS;
    do {
        s_gather (self);
        if (self->count == 0)
            break;
        s_commit (self);
    } while (zclock_mono () < deadline);
    s_flush (self);
    s_publish (self);
}

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    server_t *self = (server_t *)arg;
    zmsg_t *request = zmsg_recv (reader);
    if (!request)
        return -1; /* interrupted: stop */
    char *command = zmsg_popstr (request);
    int rc = 0;
    if (!command) {
        zmsg_destroy (&request);
        return 0;
    }
    if (streq (command, "$TERM")) {
        s_drain (self);
        rc = -1;
    }
    else if (streq (command, "DRAIN")) {
        s_drain (self);
        zsock_send (reader, "i", 0);
    }
    else if (streq (command, "AUTH")) {
        auth_t *auth = NULL;
        char message[256] = "";
        zframe_t *frame = zmsg_pop (request);
        if (frame && zframe_size (frame) == sizeof auth)
            memcpy (&auth, zframe_data (frame), sizeof auth);
        zframe_destroy (&frame);
        if (!auth)
            zsock_send (reader, "is", -1, "AUTH needs an authenticator");
        else if (auth_secure (auth, self->router, CURVE_ROLE_AGENT, message, sizeof message))
            zsock_send (reader, "is", -1, message);
        else {
            self->auth = auth;
            self->connections.auth = auth;
            zsock_send (reader, "is", 0, "");
        }
    }
    else if (streq (command, "BIND")) {
        char *endpoint = zmsg_popstr (request);
        if (!endpoint)
            zsock_send (reader, "is", -1, "BIND needs an endpoint");
        else if (zsock_bind (self->router, "%s", endpoint) == -1) {
            char message[512];
            snprintf (message, sizeof message, "cannot bind ingest endpoint %s: %s", endpoint,
                      zmq_strerror (zmq_errno ()));
            zsock_send (reader, "is", -1, message);
        }
        else {
            log_debug ("ingest", "bound %s", endpoint);
            zsock_send (reader, "is", 0, "");
        }
        zstr_free (&endpoint);
    }
    else
        log_error ("ingest", "unknown pipe command \"%s\"", command);
    zstr_free (&command);
    zmsg_destroy (&request);
    return rc;
}

static int
s_on_monitor (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)reader;
    server_t *self = (server_t *)arg;
    server_peers_read (&self->connections);
    s_publish (self);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    server_t *self = (server_t *)arg;
    s_refresh_settings (self);
    s_flush (self); /* groups left in the journal by a burst that stopped */
    log_limit_flush (&self->malformed_log);
    log_limit_flush (&self->store_log);
    log_limit_flush (&self->send_log);
    log_limit_flush (&self->unsent_log);
    log_limit_flush (&self->connections.disconnect_log);
    log_limit_flush (&self->connections.handshake_log);
    log_limit_flush (&self->limit_log);
    log_limit_flush (&self->auth_log);
    log_limit_flush (&self->status_log);
    return 0;
}

static void
s_free_item (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static void
s_server_destroy (server_t **self_p)
{
    server_t *self = *self_p;
    if (!self)
        return;
    s_group_clear (self);
    s_arena_release (&self->arena);
    zloop_destroy (&self->loop);
    if (self->monitor) {
        zmq_socket_monitor (zsock_resolve (self->router), NULL, 0);
        zsock_destroy (&self->monitor);
    }
    zsock_destroy (&self->router);
    free (self->peers);
    free (self->batches);
    free (self->results);
    free (self->permits);
    free (self->mark_before);
    free (self->mark_after);
    free (self->mark_read);
    free (self->applied);
    free (self->applied_results);
    free (self->applied_marks);
    zhashx_destroy (&self->status_logged);
    free (self->result_pool);
    free (self->rejections);
    free (self->rejection_pointers);
    free (self);
    *self_p = NULL;
}

static server_t *
s_server_new (ingest_t *shared, zsock_t *pipe, char *err, size_t err_len)
{
    server_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory starting the ingest server");
        return NULL;
    }
    self->shared = shared;
    self->allocator = (ProtobufCAllocator){s_arena_alloc, s_arena_free, &self->arena};
    self->pipe = pipe;
    self->malformed_log = LOG_LIMIT_INIT ("ingest", "malformed messages", LOG_LEVEL_WARNING);
    self->store_log = LOG_LIMIT_INIT ("ingest", "store failures", LOG_LEVEL_ERROR);
    self->send_log = LOG_LIMIT_INIT ("ingest", "socket errors", LOG_LEVEL_ERROR);
    self->unsent_log = LOG_LIMIT_INIT ("ingest", "unsent acks", LOG_LEVEL_INFO);
    self->auth_log = LOG_LIMIT_INIT ("ingest", "authorisation refusals", LOG_LEVEL_WARNING);
    self->status_log =
        LOG_LIMIT_INIT ("ingest", "status requests on new connections", LOG_LEVEL_INFO);
    self->limit_log =
        LOG_LIMIT_INIT ("ingest", "refusals over limits/max_agents", LOG_LEVEL_WARNING);
    s_refresh_settings (self);
    store_identity_t identity;
    store_identity (shared->store, &identity);
    memcpy (self->store_id, identity.store_id, sizeof self->store_id);
    /* Without it (out of memory) status requests are answered all the same, only not logged. */
    self->status_logged = zhashx_new ();
    if (self->status_logged)
        zhashx_set_destructor (self->status_logged, s_free_item);

    self->rejections = calloc (WIRE_MAX_RECORDS_PER_BATCH, sizeof *self->rejections);
    self->rejection_pointers =
        calloc (WIRE_MAX_RECORDS_PER_BATCH, sizeof *self->rejection_pointers);
    s_reserve (self);
    if (!self->rejections || !self->rejection_pointers || self->capacity == 0) {
        fail (err, err_len, "out of memory starting the ingest server");
        goto error;
    }

    self->router = zsock_new (ZMQ_ROUTER);
    if (!self->router) {
        fail (err, err_len, "cannot create the ingest socket: %s", zmq_strerror (zmq_errno ()));
        goto error;
    }
    zsock_set_maxmsgsize (self->router, (int64_t)INGEST_SOCKET_MAX_MESSAGE_BYTES);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_linger (self->router, INGEST_LINGER_MS);
    /* A peer that has not finished the handshake (and authentication) by then is dropped, so
     * that silent or slow connections cannot pile up. */
    zsock_set_handshake_ivl (self->router, shared->handshake_timeout_ms);

    if (server_thread_monitor (self->router, "ingest", &self->monitor, err, err_len))
        goto error;
    server_peers_init (&self->connections, "ingest", "peer", CURVE_ROLE_AGENT, self->monitor);

    self->loop = zloop_new ();
    if (!self->loop) {
        fail (err, err_len, "out of memory creating the ingest loop");
        goto error;
    }
    /* Only $TERM stops the server; the daemon handles signals itself. */
    zloop_set_nonstop (self->loop, true);
    if (zloop_reader (self->loop, pipe, s_on_pipe, self) ||
        zloop_reader (self->loop, self->router, s_on_router, self) ||
        zloop_reader (self->loop, self->monitor, s_on_monitor, self) ||
        zloop_timer (self->loop, 1000, 0, s_on_tick, self) == -1) {
        fail (err, err_len, "cannot register the ingest sockets with zloop");
        goto error;
    }
    return self;

error:
    s_server_destroy (&self);
    return NULL;
}

static void
s_ingest_actor (zsock_t *pipe, void *args)
{
    server_thread_block_signals ();
    char err[256] = "";
    server_t *self = s_server_new ((ingest_t *)args, pipe, err, sizeof err);
    server_thread_report_start (pipe, self != NULL, err);
    if (!self)
        return;
    zloop_start (self->loop);
    s_server_destroy (&self);
}

ingest_t *
ingest_new (store_t *store, const collector_config_t *config, char *err, size_t err_len)
{
    ingest_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory starting the ingest server");
        return NULL;
    }
    if (pthread_mutex_init (&self->lock, NULL)) {
        free (self);
        fail (err, err_len, "cannot create the ingest counters' lock");
        return NULL;
    }
    self->store = store;
    self->max_group_batches = (size_t)config->max_group_batches;
    self->max_group_records = (size_t)config->max_group_records;
    self->max_batch_bytes = (size_t)config->max_batch_kb * 1024;
    self->max_batch_records = (size_t)config->max_batch_records;
    self->handshake_timeout_ms = (int)config->handshake_timeout_ms;
    self->actor = zactor_new (s_ingest_actor, self);
    char *status = self->actor ? zstr_recv (self->actor) : NULL;
    if (!status || !streq (status, "OK")) {
        fail (err, err_len, "%s", status ? status : "cannot start the ingest thread");
        zstr_free (&status);
        zactor_destroy (&self->actor);
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    zstr_free (&status);
    return self;
}

void
ingest_destroy (ingest_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_t *self = *self_p;
    zactor_destroy (&self->actor);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
ingest_secure (ingest_t *self, auth_t *auth, char *err, size_t err_len)
{
    if (zsock_send (self->actor, "sp", "AUTH", (void *)auth))
        return fail (err, err_len, "cannot ask the ingest thread to use the authenticator");
    int rc = -1;
    char *message = NULL;
    if (zsock_recv (self->actor, "is", &rc, &message))
        return fail (err, err_len, "no answer from the ingest thread about the authenticator");
    if (rc)
        fail (err, err_len, "%s", message ? message : "the authenticator was refused");
    zstr_free (&message);
    return rc ? -1 : 0;
}

int
ingest_bind (ingest_t *self, const char *endpoint, char *err, size_t err_len)
{
    if (zstr_sendx (self->actor, "BIND", endpoint, NULL))
        return fail (err, err_len, "cannot ask the ingest thread to bind %s", endpoint);
    int rc = -1;
    char *message = NULL;
    if (zsock_recv (self->actor, "is", &rc, &message))
        return fail (err, err_len, "no answer from the ingest thread binding %s", endpoint);
    if (rc)
        fail (err, err_len, "%s", message ? message : "bind failed");
    zstr_free (&message);
    return rc ? -1 : 0;
}

void
ingest_drain (ingest_t *self)
{
    int rc = -1;
    if (zstr_send (self->actor, "DRAIN") == 0)
        zsock_recv (self->actor, "i", &rc);
}

void
ingest_configure (ingest_t *self, const collector_config_t *config)
{
    pthread_mutex_lock (&self->lock);
    self->max_group_batches = (size_t)config->max_group_batches;
    self->max_group_records = (size_t)config->max_group_records;
    self->max_batch_bytes = (size_t)config->max_batch_kb * 1024;
    self->max_batch_records = (size_t)config->max_batch_records;
    pthread_mutex_unlock (&self->lock);
}

int
ingest_counters (ingest_t *self, ingest_counters_t *counters, char *err, size_t err_len)
{
    pthread_mutex_lock (&self->lock);
    *counters = self->counters;
    pthread_mutex_unlock (&self->lock);
    memset (&counters->store, 0, sizeof counters->store);
    return store_counters (self->store, &counters->store, err, err_len) ? STORE_ERR : 0;
}
