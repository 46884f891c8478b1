/* tp_latency: latency of "totals of one neighbourhood broken down", the central team's everyday
 * question, or with --place-size N of a place of N random neighbourhoods broken down by body (one
 * store_totals_of question); with --adjacent the place's neighbourhoods are N neighbouring codes,
 * as a real estate's or ward's LSOAs are. In-process through the store opened read-only, through
 * the collector's query endpoint (a DEALER sending Query frames), or as a whole command (any CLI
 * invocation given after --, with the neighbourhood code appended) run once per query. Prints
 * p50/p90/p99/max as KEY=VALUE lines. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <zmq.h>

#include "spending.pb-c.h"
#include "store.h"

extern char **environ;

typedef struct {
    char **codes;
    size_t count, capacity;
} code_list_t;

static int
collect_code (void *arg, const char *key, store_amount_t amount)
{
    (void)amount;
    code_list_t *list = arg;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 1024;
        char **codes = realloc (list->codes, capacity * sizeof *codes);
        if (!codes)
            return 1;
        list->codes = codes;
        list->capacity = capacity;
    }
    list->codes[list->count] = strdup (key);
    if (!list->codes[list->count])
        return 1;
    list->count++;
    return 0;
}

static int
count_row (void *arg, const char *key, store_amount_t amount)
{
    (void)key;
    (void)amount;
    (*(uint64_t *)arg)++;
    return 0;
}

static int
count_keys_row (void *arg, const char *const *keys, store_amount_t amount)
{
    (void)keys;
    (void)amount;
    (*(uint64_t *)arg)++;
    return 0;
}

static int64_t
now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs the command with code appended, output discarded. Returns its exit status or -1. */
static int
run_command (char **command, size_t words, const char *code)
{
    command[words] = (char *)code;
    command[words + 1] = NULL;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_addopen (&actions, 1, "/dev/null", 01 /* O_WRONLY */, 0);
    pid_t pid;
    int rc = posix_spawn (&pid, command[0], &actions, NULL, command, environ);
    posix_spawn_file_actions_destroy (&actions);
    if (rc != 0) {
        fprintf (stderr, "tp_latency: cannot run %s: %s\n", command[0], strerror (rc));
        return -1;
    }
    int status;
    if (waitpid (pid, &status, 0) < 0)
        return -1;
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/* Asks the query endpoint for totals of code by body and waits for the answer. Returns 0 and
 * adds the rows to *rows, or -1 with a message in err. */
static int
ask_endpoint (void *socket, uint64_t id, const char *code, uint64_t *rows, char *err,
              size_t err_len)
{
    Totalplace__Query query = TOTALPLACE__QUERY__INIT;
    query.query_id = id;
    query.what = TOTALPLACE__QUERY_WHAT__QUERY_TOTALS;
    query.neighbourhood = (char *)code;
    query.by = TOTALPLACE__BREAKDOWN__BREAKDOWN_BODY;
    uint8_t frame[1024];
    size_t size = protobuf_c_message_get_packed_size (&query.base);
    if (size > sizeof frame) {
        snprintf (err, err_len, "query too large");
        return -1;
    }
    protobuf_c_message_pack (&query.base, frame);
    if (zmq_send (socket, frame, size, 0) < 0) {
        snprintf (err, err_len, "cannot send: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    zmq_msg_t message;
    zmq_msg_init (&message);
    if (zmq_msg_recv (&message, socket, 0) < 0) {
        snprintf (err, err_len, "no reply: %s", zmq_strerror (zmq_errno ()));
        zmq_msg_close (&message);
        return -1;
    }
    Totalplace__QueryReply *reply =
        totalplace__query_reply__unpack (NULL, zmq_msg_size (&message), zmq_msg_data (&message));
    zmq_msg_close (&message);
    int rc = 0;
    if (!reply || reply->query_id != id || reply->status != TOTALPLACE__QUERY_STATUS__QUERY_OK) {
        snprintf (err, err_len, "reply %s", reply && reply->error ? reply->error : "not OK");
        rc = -1;
    }
    else
        *rows += reply->n_rows;
    if (reply)
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    return rc;
}

static int
compare_codes (const void *a, const void *b)
{
    return strcmp (*(const char *const *)a, *(const char *const *)b);
}

static void
usage (FILE *out)
{
    fprintf (out,
             "Usage: tp_latency --db DIR [OPTION]... [-- COMMAND ARG...]\n"
             "Times queries of random neighbourhoods taken from the store in DIR (opened\n"
             "read-only). Without COMMAND: store_totals by body in this process. With COMMAND:\n"
             "runs COMMAND ARG... CODE once per query (e.g. -- totalplace --db DIR totals --by\n"
             "body --neighbourhood) and times the whole process.\n"
             "\n"
             "  --endpoint EP    ask the collector's query endpoint EP instead (totals by body)\n"
             "  --count N        queries (default 10000)\n"
             "  --interval-us U  start one query every U microseconds (default 0: back to back)\n"
             "  --while-pid PID  stop early once process PID has ended (after one query at least)\n"
             "  --seed S         random seed for the neighbourhoods asked (default 1)\n"
             "  --place-size N   in process: ask for a place of N random neighbourhoods by body\n"
             "  --adjacent       with --place-size: N neighbouring codes from a random one\n");
}

int
main (int argc, char *argv[])
{
    static const struct option long_options[] = {
        {"db", required_argument, NULL, 'd'},          {"count", required_argument, NULL, 'c'},
        {"interval-us", required_argument, NULL, 'i'}, {"while-pid", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},        {"help", no_argument, NULL, 'h'},
        {"endpoint", required_argument, NULL, 'e'},    {"place-size", required_argument, NULL, 'P'},
        {"adjacent", no_argument, NULL, 'a'},          {NULL, 0, NULL, 0}};
    size_t place_size = 0;
    bool adjacent = false;
    const char *db = NULL, *endpoint = NULL;
    uint64_t count = 10000, interval_us = 0, seed = 1;
    pid_t while_pid = 0;
    int option;
    while ((option = getopt_long (argc, argv, "+h", long_options, NULL)) != -1) {
        switch (option) {
        case 'd':
            db = optarg;
            break;
        case 'c':
            count = strtoull (optarg, NULL, 10);
            break;
        case 'i':
            interval_us = strtoull (optarg, NULL, 10);
            break;
        case 'p':
            while_pid = (pid_t)atol (optarg);
            break;
        case 's':
            seed = strtoull (optarg, NULL, 10);
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 'P':
            place_size = (size_t)strtoull (optarg, NULL, 10);
            break;
        case 'a':
            adjacent = true;
            break;
        case 'h':
            usage (stdout);
            return 0;
        default:
            usage (stderr);
            return 2;
        }
    }
    if (!db || count == 0 || (place_size && (endpoint || optind < argc))) {
        usage (stderr);
        return 2;
    }
    size_t words = (size_t)(argc - optind);
    char **command = NULL;
    if (words) {
        command = calloc (words + 2, sizeof *command);
        if (!command)
            return 1;
        memcpy (command, argv + optind, words * sizeof *command);
    }

    char err[STORE_ERR_LEN];
    store_options_t options = {.path = db, .read_only = true};
    store_t *store = store_new (&options, NULL, err, sizeof err);
    if (!store) {
        fprintf (stderr, "tp_latency: %s\n", err);
        free (command);
        return 1;
    }
    code_list_t codes = {0};
    int status = 1;
    int64_t *latency = NULL;
    const char **by_code = NULL; /* --adjacent: the codes in code order */
    void *context = NULL, *socket = NULL;
    if (endpoint) {
        context = zmq_ctx_new ();
        socket = zmq_socket (context, ZMQ_DEALER);
        int timeout = 10000, linger = 0;
        zmq_setsockopt (socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect (socket, endpoint) != 0) {
            fprintf (stderr, "tp_latency: cannot connect to %s\n", endpoint);
            goto out;
        }
    }
    latency = calloc (count, sizeof *latency);
    if (!latency || store_neighbourhoods (store, collect_code, &codes, err, sizeof err) != 0 ||
        codes.count == 0) {
        fprintf (stderr, "tp_latency: no neighbourhoods to ask about in %s %s\n", db, err);
        goto out;
    }
    /* Ranked by total as the store lists them; --adjacent takes runs of them in code order. */
    by_code = adjacent ? calloc (codes.count, sizeof *by_code) : NULL;
    if (adjacent && !by_code) {
        fprintf (stderr, "tp_latency: out of memory\n");
        goto out;
    }
    if (adjacent) {
        for (size_t i = 0; i < codes.count; i++)
            by_code[i] = codes.codes[i];
        qsort (by_code, codes.count, sizeof *by_code, compare_codes);
    }
    uint64_t random = seed * UINT64_C (0x9e3779b97f4a7c15) + 1, rows = 0, errors = 0, done = 0;
    int64_t next_start = now_ns ();
    for (; done < count; done++) {
        if (while_pid && done > 0 && kill (while_pid, 0) != 0 && errno == ESRCH)
            break;
        if (interval_us) {
            int64_t wait = next_start - now_ns ();
            if (wait > 0) {
                struct timespec pause = {wait / 1000000000, wait % 1000000000};
                nanosleep (&pause, NULL);
            }
            next_start += (int64_t)interval_us * 1000;
        }
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        const char *code = codes.codes[random % codes.count];
        const char *members[64];
        for (size_t m = 0; m < place_size && m < 64; m++) {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            members[m] = codes.codes[random % codes.count];
        }
        if (adjacent) {
            size_t first = random % codes.count;
            for (size_t m = 0; m < place_size && m < 64; m++)
                members[m] = by_code[(first + m) % codes.count];
        }
        store_question_t place = {.neighbourhoods = members,
                                  .neighbourhood_count = place_size < 64 ? place_size : 64,
                                  .by = {STORE_BY_BODY},
                                  .by_count = 1};
        int64_t started = now_ns ();
        int rc;
        if (place_size)
            rc = store_totals_of (store, &place, count_keys_row, &rows, err, sizeof err);
        else if (command)
            rc = run_command (command, words, code);
        else if (socket)
            rc = ask_endpoint (socket, done + 1, code, &rows, err, sizeof err);
        else
            rc = store_totals (store, code, STORE_BY_BODY, NULL, count_row, &rows, err, sizeof err);
        latency[done] = now_ns () - started;
        if (rc != 0 && errors++ == 0)
            fprintf (stderr, "tp_latency: query of %s failed (%d): %s\n", code, rc,
                     command ? "the command's exit status" : err);
        if (rc != 0 && socket)
            break; /* a DEALER that lost a reply would pair later replies wrongly */
    }
    if (done == 0) {
        fprintf (stderr, "tp_latency: no query ran\n");
        goto out;
    }
    int64_t total = 0;
    for (uint64_t i = 0; i < done; i++)
        total += latency[i];
    qsort (latency, done, sizeof *latency, compare_i64);
    printf ("queries=%" PRIu64 "\nerrors=%" PRIu64 "\nneighbourhoods=%zu\n", done, errors,
            codes.count);
    printf ("p50_us=%.1f\np90_us=%.1f\np99_us=%.1f\nmax_us=%.1f\nmean_us=%.1f\n",
            latency[done / 2] / 1e3, latency[done * 9 / 10] / 1e3, latency[done * 99 / 100] / 1e3,
            latency[done - 1] / 1e3, (double)total / (double)done / 1e3);
    if (!command)
        printf ("rows_per_query=%.1f\n", (double)rows / (double)done);
    status = errors ? 1 : 0;
out:
    for (size_t i = 0; i < codes.count; i++)
        free (codes.codes[i]);
    free (codes.codes);
    free (latency);
    free (by_code);
    free (command);
    if (socket)
        zmq_close (socket);
    if (context)
        zmq_ctx_term (context);
    store_destroy (&store);
    return status;
}
