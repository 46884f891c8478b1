/* tp_push: replays pre-encoded Batch frames (tp_gen) to a collector as fast as it acknowledges
 * them, one DEALER per frame file, and reports records/s overall and per step of the store's
 * growth. With --sink it measures raw ZeroMQ instead: it binds its own ROUTER that answers every
 * frame at once without decoding it, the ceiling for the collector's transport. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "bench_frames.h"
#include "spending.pb-c.h"
#include "wire.h"

#define MAX_FILES 64
#define MAX_STEPS 4096

typedef struct {
    bench_frames_t *frames;
    uint64_t first_seq;
    void *socket;
    size_t next;      /* next frame to send for the first time */
    size_t in_flight; /* sent and not yet acknowledged */
    size_t acked;
    size_t *retry; /* frames answered ACK_RETRY, to send again */
    size_t retry_count;
} stream_t;

typedef struct {
    const char *endpoint;
    size_t window; /* 0: no window, send as fast as the socket takes frames */
    uint64_t step;
    bool sink;
    int timeout_ms;
} options_t;

static double
now_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- the sink (--sink) */

typedef struct {
    void *context;
    const char *endpoint;
    atomic_bool stop;
    atomic_int ready; /* 1 bound, -1 failed */
    uint64_t messages;
    uint64_t bytes;
} sink_t;

/* batch_seq is field 2 of a Batch, written right after the agent id (field 1): reading it by
 * hand keeps the sink's work to a few bytes, so it measures ZeroMQ and not protobuf. */
static uint64_t
peek_batch_seq (const uint8_t *data, size_t size)
{
    size_t at = 0;
    if (at < size && data[at] == 0x0a) {
        at++;
        uint64_t length = 0;
        for (int shift = 0; at < size && shift < 64; shift += 7) {
            uint8_t byte = data[at++];
            length |= (uint64_t)(byte & 0x7f) << shift;
            if (!(byte & 0x80))
                break;
        }
        at += length;
    }
    if (at >= size || data[at] != 0x10)
        return 0;
    at++;
    uint64_t seq = 0;
    for (int shift = 0; at < size && shift < 64; shift += 7) {
        uint8_t byte = data[at++];
        seq |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            break;
    }
    return seq;
}

static void *
sink_main (void *arg)
{
    sink_t *sink = arg;
    void *router = zmq_socket (sink->context, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    if (!router || zmq_bind (router, sink->endpoint) != 0) {
        fprintf (stderr, "tp_push: sink cannot bind %s: %s\n", sink->endpoint,
                 zmq_strerror (zmq_errno ()));
        if (router)
            zmq_close (router);
        atomic_store (&sink->ready, -1);
        return NULL;
    }
    atomic_store (&sink->ready, 1);
    while (!atomic_load (&sink->stop)) {
        zmq_pollitem_t item = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        zmq_msg_t identity, body;
        zmq_msg_init (&identity);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&identity, router, 0) < 0 || zmq_msg_recv (&body, router, 0) < 0) {
            zmq_msg_close (&identity);
            zmq_msg_close (&body);
            continue;
        }
        sink->messages++;
        sink->bytes += zmq_msg_size (&body);
        Totalplace__Ack ack = TOTALPLACE__ACK__INIT;
        ack.batch_seq = peek_batch_seq (zmq_msg_data (&body), zmq_msg_size (&body));
        ack.status = TOTALPLACE__ACK_STATUS__ACK_APPLIED;
        uint8_t reply[64];
        size_t size = protobuf_c_message_pack (&ack.base, reply);
        zmq_msg_send (&identity, router, ZMQ_SNDMORE);
        zmq_send (router, reply, size, 0);
        zmq_msg_close (&body);
    }
    zmq_close (router);
    return NULL;
}

/* ---------------------------------------------------------------- pushing */

typedef struct {
    options_t opt;
    stream_t streams[MAX_FILES];
    size_t stream_count;
    uint64_t total_records, acked_records, acked_batches;
    uint64_t accepted, duplicate, superseded, stale, rejected, retries, malformed;
    double started, step_at[MAX_STEPS + 1];
    size_t steps_done;
} push_t;

static int
send_frame (stream_t *stream, size_t index)
{
    const bench_frame_t *frame = bench_frames_get (stream->frames, index);
    if (zmq_send (stream->socket, frame->data, frame->size, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 1 : -1;
    stream->in_flight++;
    return 0;
}

/* Sends what the window allows. Returns 0, or -1 when the socket fails. */
static int
fill_window (push_t *push, stream_t *stream)
{
    size_t window = push->opt.window;
    while (window == 0 || stream->in_flight < window) {
        int rc;
        if (stream->retry_count) {
            rc = send_frame (stream, stream->retry[stream->retry_count - 1]);
            if (rc == 0)
                stream->retry_count--;
        }
        else if (stream->next < bench_frames_count (stream->frames)) {
            rc = send_frame (stream, stream->next);
            if (rc == 0)
                stream->next++;
        }
        else
            return 0;
        if (rc)
            return rc < 0 ? -1 : 0;
    }
    return 0;
}

static void
note_progress (push_t *push, uint64_t records)
{
    push->acked_records += records;
    while (push->opt.step && push->steps_done < MAX_STEPS &&
           push->acked_records >= (push->steps_done + 1) * push->opt.step)
        push->step_at[++push->steps_done] = now_seconds ();
}

static int
receive_acks (push_t *push, stream_t *stream)
{
    for (;;) {
        zmq_msg_t message;
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, stream->socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&message);
            return errno == EAGAIN ? 0 : -1;
        }
        Totalplace__Ack *ack =
            totalplace__ack__unpack (NULL, zmq_msg_size (&message), zmq_msg_data (&message));
        zmq_msg_close (&message);
        if (!ack) {
            fprintf (stderr, "tp_push: a reply is not an Ack\n");
            return -1;
        }
        uint64_t index = ack->batch_seq - stream->first_seq;
        if (ack->batch_seq < stream->first_seq || index >= bench_frames_count (stream->frames)) {
            fprintf (stderr, "tp_push: an Ack for unknown batch %" PRIu64 "\n", ack->batch_seq);
            protobuf_c_message_free_unpacked (&ack->base, NULL);
            return -1;
        }
        stream->in_flight--;
        if (ack->status == TOTALPLACE__ACK_STATUS__ACK_APPLIED) {
            stream->acked++;
            push->acked_batches++;
            push->accepted += ack->accepted;
            push->duplicate += ack->duplicate;
            push->superseded += ack->superseded;
            push->stale += ack->stale;
            push->rejected += ack->rejected;
            note_progress (push, bench_frames_get (stream->frames, index)->records);
        }
        else if (ack->status == TOTALPLACE__ACK_STATUS__ACK_RETRY) {
            push->retries++;
            stream->retry[stream->retry_count++] = (size_t)index;
        }
        else {
            fprintf (stderr, "tp_push: batch %" PRIu64 " answered MALFORMED: %s\n", ack->batch_seq,
                     ack->error ? ack->error : "");
            push->malformed++;
            stream->acked++; /* never acknowledged otherwise: count it as done */
        }
        protobuf_c_message_free_unpacked (&ack->base, NULL);
    }
}

static bool
stream_done (push_t *push, const stream_t *stream)
{
    (void)push;
    return stream->acked == bench_frames_count (stream->frames);
}

static int
run (push_t *push, void *context)
{
    for (size_t i = 0; i < push->stream_count; i++) {
        stream_t *stream = &push->streams[i];
        stream->socket = zmq_socket (context, ZMQ_DEALER);
        int linger = 0, hwm = 0; /* the window, not the socket, bounds what is in flight */
        zmq_setsockopt (stream->socket, ZMQ_LINGER, &linger, sizeof linger);
        if (push->opt.window)
            zmq_setsockopt (stream->socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
        if (zmq_connect (stream->socket, push->opt.endpoint) != 0) {
            fprintf (stderr, "tp_push: cannot connect to %s: %s\n", push->opt.endpoint,
                     zmq_strerror (zmq_errno ()));
            return -1;
        }
    }
    push->started = now_seconds ();
    push->step_at[0] = push->started;
    double last_ack = push->started;
    for (;;) {
        zmq_pollitem_t items[MAX_FILES];
        size_t open = 0;
        for (size_t i = 0; i < push->stream_count; i++) {
            stream_t *stream = &push->streams[i];
            if (stream_done (push, stream))
                continue;
            if (fill_window (push, stream))
                return -1;
            bool more = stream->retry_count || stream->next < bench_frames_count (stream->frames);
            bool room = push->opt.window == 0 || stream->in_flight < push->opt.window;
            items[open++] = (zmq_pollitem_t){
                stream->socket, 0, (short)(ZMQ_POLLIN | (more && room ? ZMQ_POLLOUT : 0)), 0};
        }
        if (open == 0)
            break;
        int ready = zmq_poll (items, (int)open, 100);
        if (ready < 0)
            return -1;
        for (size_t i = 0; i < open; i++)
            if (items[i].revents & ZMQ_POLLIN) {
                for (size_t s = 0; s < push->stream_count; s++)
                    if (push->streams[s].socket == items[i].socket &&
                        receive_acks (push, &push->streams[s]))
                        return -1;
                last_ack = now_seconds ();
            }
        if (now_seconds () - last_ack > push->opt.timeout_ms / 1000.0) {
            fprintf (stderr, "tp_push: no Ack for %d ms; giving up\n", push->opt.timeout_ms);
            return -1;
        }
    }
    return 0;
}

static void
report (const push_t *push, double finished)
{
    double seconds = finished - push->started;
    uint64_t bytes = 0, batches = 0;
    for (size_t i = 0; i < push->stream_count; i++) {
        const bench_frames_t *frames = push->streams[i].frames;
        batches += bench_frames_count (frames);
        for (size_t f = 0; f < bench_frames_count (frames); f++)
            bytes += bench_frames_get (frames, f)->size;
    }
    printf ("records=%" PRIu64 "\nbatches=%" PRIu64 "\nbytes=%" PRIu64 "\nseconds=%.3f\n",
            push->acked_records, batches, bytes, seconds);
    printf ("records_per_s=%.0f\nbatches_per_s=%.0f\nmib_per_s=%.1f\nmean_batch_bytes=%.0f\n",
            push->acked_records / seconds, batches / seconds, bytes / seconds / 1048576.0,
            batches ? (double)bytes / (double)batches : 0.0);
    printf ("accepted=%" PRIu64 "\nduplicate=%" PRIu64 "\nsuperseded=%" PRIu64 "\nstale=%" PRIu64
            "\nrejected=%" PRIu64 "\nretry_acks=%" PRIu64 "\nmalformed=%" PRIu64 "\n",
            push->accepted, push->duplicate, push->superseded, push->stale, push->rejected,
            push->retries, push->malformed);
    if (push->opt.step) {
        printf ("step_records=%" PRIu64 "\nsteps=%zu\n", push->opt.step, push->steps_done);
        for (size_t s = 1; s <= push->steps_done; s++)
            printf ("step%zu_records_per_s=%.0f\n", s,
                    push->opt.step / (push->step_at[s] - push->step_at[s - 1]));
        if (push->steps_done >= 2) {
            double first = push->opt.step / (push->step_at[1] - push->step_at[0]);
            double last = push->opt.step /
                          (push->step_at[push->steps_done] - push->step_at[push->steps_done - 1]);
            printf ("first_step_records_per_s=%.0f\nlast_step_records_per_s=%.0f\n"
                    "last_over_first=%.3f\n",
                    first, last, last / first);
        }
    }
}

static void
usage (FILE *out)
{
    fprintf (
        out,
        "Usage: tp_push ENDPOINT [OPTION]... FILE...\n"
        "Replays each frame file (tp_gen's DIR/frames/agentK.frames) on its own DEALER to\n"
        "ENDPOINT, keeping a window of batches in flight, until every batch is acknowledged;\n"
        "prints the results as KEY=VALUE lines.\n"
        "\n"
        "  --window W      batches in flight per file (default 16, as the agent; 0: no limit)\n"
        "  --step N        also report records/s of every N records acknowledged (default\n"
        "                  1000000; 0: none)\n"
        "  --sink          bind ENDPOINT in-process with a ROUTER that answers every frame at\n"
        "                  once without storing it: the raw ZeroMQ ceiling\n"
        "  --timeout MS    give up when no Ack arrives for MS (default 120000)\n");
}

int
main (int argc, char *argv[])
{
    static const struct option long_options[] = {
        {"window", required_argument, NULL, 'w'}, {"step", required_argument, NULL, 's'},
        {"sink", no_argument, NULL, 'k'},         {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    static push_t push;
    push.opt = (options_t){.window = 16, .step = 1000000, .timeout_ms = 120000};
    int option;
    while ((option = getopt_long (argc, argv, "h", long_options, NULL)) != -1) {
        switch (option) {
        case 'w':
            push.opt.window = (size_t)strtoull (optarg, NULL, 10);
            break;
        case 's':
            push.opt.step = strtoull (optarg, NULL, 10);
            break;
        case 'k':
            push.opt.sink = true;
            break;
        case 't':
            push.opt.timeout_ms = atoi (optarg);
            break;
        case 'h':
            usage (stdout);
            return 0;
        default:
            usage (stderr);
            return 2;
        }
    }
    if (argc - optind < 2 || argc - optind - 1 > MAX_FILES) {
        usage (stderr);
        return 2;
    }
    push.opt.endpoint = argv[optind++];
    int status = 1;
    for (; optind < argc; optind++) {
        char err[512];
        stream_t *stream = &push.streams[push.stream_count++];
        stream->frames = bench_frames_load (argv[optind], err, sizeof err);
        if (!stream->frames) {
            fprintf (stderr, "tp_push: %s\n", err);
            goto out;
        }
        size_t count = bench_frames_count (stream->frames);
        stream->retry = calloc (count ? count : 1, sizeof *stream->retry);
        if (!stream->retry)
            goto out;
        push.total_records += bench_frames_records (stream->frames);
        if (count) {
            const bench_frame_t *first = bench_frames_get (stream->frames, 0);
            Totalplace__Batch *batch = totalplace__batch__unpack (NULL, first->size, first->data);
            if (!batch) {
                fprintf (stderr, "tp_push: %s: the first frame is not a Batch\n", argv[optind]);
                goto out;
            }
            stream->first_seq = batch->batch_seq;
            protobuf_c_message_free_unpacked (&batch->base, NULL);
        }
    }

    void *context = zmq_ctx_new ();
    sink_t sink = {.context = context, .endpoint = push.opt.endpoint};
    pthread_t sink_thread;
    bool sink_started = false;
    if (push.opt.sink) {
        if (pthread_create (&sink_thread, NULL, sink_main, &sink) != 0)
            goto out_context;
        sink_started = true;
        while (atomic_load (&sink.ready) == 0) {
            struct timespec pause = {0, 1000000};
            nanosleep (&pause, NULL);
        }
        if (atomic_load (&sink.ready) < 0)
            goto out_context;
    }
    if (run (&push, context) == 0) {
        report (&push, now_seconds ());
        status = push.malformed ? 1 : 0;
    }
    else
        fprintf (stderr, "tp_push: stopped after %" PRIu64 " of %" PRIu64 " records\n",
                 push.acked_records, push.total_records);
out_context:
    for (size_t i = 0; i < push.stream_count; i++)
        if (push.streams[i].socket)
            zmq_close (push.streams[i].socket);
    if (sink_started) {
        atomic_store (&sink.stop, true);
        pthread_join (sink_thread, NULL);
    }
    zmq_ctx_term (context);
out:
    for (size_t i = 0; i < push.stream_count; i++) {
        bench_frames_destroy (&push.streams[i].frames);
        free (push.streams[i].retry);
    }
    return status;
}
