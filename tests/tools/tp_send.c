/* tp_send: test tool that sends Batches (or hostile frames) to a collector's ingest endpoint with a
 * DEALER and prints each Ack as one line, for integration tests and by hand. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <czmq.h>

#include "curve.h"
#include "ingest.h"
#include "spending.pb-c.h"
#include "wire.h"

typedef struct {
    const char *endpoint;
    const char *agent;
    uint64_t seq;
    uint64_t batches;
    const char *body;
    uint64_t records;
    uint64_t first_record;
    const char *neighbourhood;
    const char *service;
    const char *period;
    int64_t amount;
    uint32_t revision;
    bool withdrawn;
    bool poolable;
    bool balanced;      /* the last record of each batch cancels the others */
    uint64_t bodies;    /* spread records over this many bodies B-1..B-N (0: just B) */
    int64_t bad_record; /* -1: none */
    bool garbage;
    bool oversize;
    bool huge;
    bool extra_frame;
    bool truncate;
    int timeout_ms;
    const char *cert;        /* CURVE: our secret certificate */
    const char *server_cert; /* CURVE: the collector's public certificate */
    uint64_t connections;    /* junk: open this many raw connections instead */
} args_t;

static void
usage (FILE *out)
{
    fprintf (
        out,
        "Usage: tp_send ENDPOINT [OPTION]...\n"
        "Sends batches to a collector's ingest endpoint and prints each Ack as a line:\n"
        "  ack seq=1 status=APPLIED accepted=10 duplicate=0 superseded=0 stale=0 rejected=0\n"
        "followed by one 'reject seq=S index=I reason=\"...\"' line per rejected record.\n"
        "\n"
        "  --agent ID          agent id (default tp-send)\n"
        "  --seq N             batch_seq of the first batch (default 1)\n"
        "  --batches C         send C batches back to back, seq N..N+C-1 (default 1)\n"
        "  --body B            body_id of every record (default GB-TEST)\n"
        "  --records K         records per batch (default 1)\n"
        "  --first-record N    record ids are R<N>, R<N+1>, ... across batches (default 1)\n"
        "  --neighbourhood X   neighbourhood code (default E01000001)\n"
        "  --service S         service (default adult-social-care)\n"
        "  --period YYYY-MM    month spent (default 2023-04)\n"
        "  --amount P          pence per record, may be negative (default 100)\n"
        "  --revision R        revision of every record (default 1)\n"
        "  --withdrawn         mark the records withdrawn\n"
        "  --poolable          mark the records poolable\n"
        "  --balanced          make the last record of each batch -(P x (K-1)) pence, so that a\n"
        "                      batch applied whole adds 0 pence and K records to the totals\n"
        "  --bodies N          record i of a batch belongs to body B-<i mod N + 1>\n"
        "  --bad-record I      make record I (0-based) of each batch invalid\n"
        "  --garbage           send bytes that are not a Batch instead\n"
        "  --oversize          send a frame just over the wire limit (%u bytes)\n"
        "  --huge              send a frame over the socket's limit (%u bytes): the collector\n"
        "                      drops the connection, so no ack comes back\n"
        "  --extra-frame       send each batch followed by an extra frame\n"
        "  --truncate          send each batch without its last byte\n"
        "  --cert FILE         connect with CURVE, as the holder of this secret certificate\n"
        "  --server-cert FILE  the collector's public certificate (with --cert)\n"
        "  --connections N     junk instead of batches: open N raw connections (tcp://HOST:PORT\n"
        "                      or ipc://PATH), every other one sending bytes that are not\n"
        "                      ZeroMQ, the rest silent; hold them --timeout ms, then close\n"
        "                      them; prints 'junk opened=N' (exit 1 if one cannot connect)\n"
        "  --timeout MS        wait at most MS for each ack (default 10000)\n"
        "\n"
        "Exit status: 0 when every message got an ack, 2 when some did not in time, 1 on "
        "errors.\n",
        WIRE_MAX_MESSAGE_BYTES, INGEST_SOCKET_MAX_MESSAGE_BYTES);
}

static int
parse_u64 (const char *name, const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *text == '-' || *end || errno) {
        fprintf (stderr, "tp_send: %s: \"%s\" is not a whole number\n", name, text);
        return -1;
    }
    *out = (uint64_t)value;
    return 0;
}

static int
parse_i64 (const char *name, const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (!*text || *end || errno) {
        fprintf (stderr, "tp_send: %s: \"%s\" is not a whole number\n", name, text);
        return -1;
    }
    *out = (int64_t)value;
    return 0;
}

static int
parse_args (int argc, char **argv, args_t *args)
{
    enum {
        OPT_AGENT = 256,
        OPT_SEQ,
        OPT_BATCHES,
        OPT_BODY,
        OPT_RECORDS,
        OPT_FIRST,
        OPT_NEIGHBOURHOOD,
        OPT_SERVICE,
        OPT_PERIOD,
        OPT_AMOUNT,
        OPT_REVISION,
        OPT_WITHDRAWN,
        OPT_POOLABLE,
        OPT_BALANCED,
        OPT_BODIES,
        OPT_BAD,
        OPT_GARBAGE,
        OPT_OVERSIZE,
        OPT_HUGE,
        OPT_EXTRA,
        OPT_TIMEOUT,
        OPT_TRUNCATE,
        OPT_CERT,
        OPT_SERVER_CERT,
        OPT_CONNECTIONS,
    };
    static const struct option options[] = {
        {"agent", required_argument, NULL, OPT_AGENT},
        {"seq", required_argument, NULL, OPT_SEQ},
        {"batches", required_argument, NULL, OPT_BATCHES},
        {"body", required_argument, NULL, OPT_BODY},
        {"records", required_argument, NULL, OPT_RECORDS},
        {"first-record", required_argument, NULL, OPT_FIRST},
        {"neighbourhood", required_argument, NULL, OPT_NEIGHBOURHOOD},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"period", required_argument, NULL, OPT_PERIOD},
        {"amount", required_argument, NULL, OPT_AMOUNT},
        {"revision", required_argument, NULL, OPT_REVISION},
        {"withdrawn", no_argument, NULL, OPT_WITHDRAWN},
        {"poolable", no_argument, NULL, OPT_POOLABLE},
        {"balanced", no_argument, NULL, OPT_BALANCED},
        {"bodies", required_argument, NULL, OPT_BODIES},
        {"bad-record", required_argument, NULL, OPT_BAD},
        {"garbage", no_argument, NULL, OPT_GARBAGE},
        {"oversize", no_argument, NULL, OPT_OVERSIZE},
        {"huge", no_argument, NULL, OPT_HUGE},
        {"extra-frame", no_argument, NULL, OPT_EXTRA},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"truncate", no_argument, NULL, OPT_TRUNCATE},
        {"cert", required_argument, NULL, OPT_CERT},
        {"server-cert", required_argument, NULL, OPT_SERVER_CERT},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    uint64_t number;
    while ((c = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case OPT_CONNECTIONS:
            if (parse_u64 ("--connections", optarg, &args->connections) ||
                args->connections > 100000)
                return -1;
            break;
        case OPT_AGENT:
            args->agent = optarg;
            break;
        case OPT_SEQ:
            if (parse_u64 ("--seq", optarg, &args->seq))
                return -1;
            break;
        case OPT_BATCHES:
            if (parse_u64 ("--batches", optarg, &args->batches))
                return -1;
            break;
        case OPT_BODY:
            args->body = optarg;
            break;
        case OPT_RECORDS:
            if (parse_u64 ("--records", optarg, &args->records))
                return -1;
            break;
        case OPT_FIRST:
            if (parse_u64 ("--first-record", optarg, &args->first_record))
                return -1;
            break;
        case OPT_NEIGHBOURHOOD:
            args->neighbourhood = optarg;
            break;
        case OPT_SERVICE:
            args->service = optarg;
            break;
        case OPT_PERIOD:
            args->period = optarg;
            break;
        case OPT_AMOUNT:
            if (parse_i64 ("--amount", optarg, &args->amount))
                return -1;
            break;
        case OPT_REVISION:
            if (parse_u64 ("--revision", optarg, &number) || number > UINT32_MAX) {
                fprintf (stderr, "tp_send: --revision must fit 32 bits\n");
                return -1;
            }
            args->revision = (uint32_t)number;
            break;
        case OPT_WITHDRAWN:
            args->withdrawn = true;
            break;
        case OPT_POOLABLE:
            args->poolable = true;
            break;
        case OPT_BALANCED:
            args->balanced = true;
            break;
        case OPT_BODIES:
            if (parse_u64 ("--bodies", optarg, &args->bodies) || args->bodies > 1000) {
                fprintf (stderr, "tp_send: --bodies must be 0 to 1000\n");
                return -1;
            }
            break;
        case OPT_BAD:
            if (parse_i64 ("--bad-record", optarg, &args->bad_record))
                return -1;
            break;
        case OPT_GARBAGE:
            args->garbage = true;
            break;
        case OPT_OVERSIZE:
            args->oversize = true;
            break;
        case OPT_HUGE:
            args->huge = true;
            break;
        case OPT_EXTRA:
            args->extra_frame = true;
            break;
        case OPT_TIMEOUT:
            if (parse_u64 ("--timeout", optarg, &number) || number > INT32_MAX)
                return -1;
            args->timeout_ms = (int)number;
            break;
        case OPT_TRUNCATE:
            args->truncate = true;
            break;
        case OPT_CERT:
            args->cert = optarg;
            break;
        case OPT_SERVER_CERT:
            args->server_cert = optarg;
            break;
        case 'h':
            usage (stdout);
            exit (0);
        default:
            usage (stderr);
            return -1;
        }
    }
    if (optind != argc - 1) {
        usage (stderr);
        return -1;
    }
    args->endpoint = argv[optind];
    return 0;
}

/* Encodes batch number n (0-based) of this run. Returns 0 and a malloc'd buffer, or -1. */
static int
encode_batch (const args_t *args, uint64_t n, uint8_t **data, size_t *size)
{
    Totalplace__Batch batch = TOTALPLACE__BATCH__INIT;
    batch.agent_id = (char *)args->agent;
    batch.batch_seq = args->seq + n;
    batch.n_records = (size_t)args->records;
    Totalplace__SpendingRecord *records =
        calloc (args->records ? args->records : 1, sizeof *records);
    Totalplace__SpendingRecord **pointers =
        calloc (args->records ? args->records : 1, sizeof *pointers);
    char (*ids)[32] = calloc (args->records ? args->records : 1, sizeof *ids);
    char (*bodies)[WIRE_MAX_BODY_ID + 16] =
        calloc (args->records ? args->records : 1, sizeof *bodies);
    int64_t balance = 0;
    if (args->balanced && args->records > 1 &&
        (__builtin_mul_overflow (args->amount, (int64_t)(args->records - 1), &balance) ||
         __builtin_mul_overflow (balance, -1, &balance))) {
        fprintf (stderr, "tp_send: --balanced: the cancelling amount overflows\n");
        free (records);
        free (pointers);
        free (ids);
        free (bodies);
        return -1;
    }
    if (!records || !pointers || !ids || !bodies) {
        free (records);
        free (pointers);
        free (ids);
        free (bodies);
        fprintf (stderr, "tp_send: out of memory\n");
        return -1;
    }
    for (uint64_t i = 0; i < args->records; i++) {
        Totalplace__SpendingRecord *r = &records[i];
        *r = (Totalplace__SpendingRecord)TOTALPLACE__SPENDING_RECORD__INIT;
        snprintf (ids[i], sizeof ids[i], "R%08" PRIu64, args->first_record + n * args->records + i);
        r->body_id = (char *)args->body;
        if (args->bodies) {
            snprintf (bodies[i], sizeof bodies[i], "%s-%" PRIu64, args->body, i % args->bodies + 1);
            r->body_id = bodies[i];
        }
        r->record_id = ids[i];
        r->revision = args->revision;
        r->neighbourhood = (char *)args->neighbourhood;
        r->service = (char *)args->service;
        r->period = (char *)(args->bad_record == (int64_t)i ? "2023-13" : args->period);
        r->amount_pence =
            args->balanced && args->records > 1 && i == args->records - 1 ? balance : args->amount;
        r->poolable = args->poolable;
        r->withdrawn = args->withdrawn;
        pointers[i] = r;
    }
    batch.records = pointers;
    char err[WIRE_REASON_LEN];
    int rc = wire_encode (&batch.base, data, size, err, sizeof err);
    if (rc)
        fprintf (stderr, "tp_send: %s\n", err);
    free (records);
    free (pointers);
    free (ids);
    free (bodies);
    return rc;
}

static const char *
status_name (Totalplace__AckStatus status)
{
    switch (status) {
    case TOTALPLACE__ACK_STATUS__ACK_APPLIED:
        return "APPLIED";
    case TOTALPLACE__ACK_STATUS__ACK_MALFORMED:
        return "MALFORMED";
    case TOTALPLACE__ACK_STATUS__ACK_RETRY:
        return "RETRY";
    default:
        return "UNKNOWN";
    }
}

static void
print_ack (const Totalplace__Ack *ack)
{
    printf ("ack seq=%" PRIu64 " status=%s accepted=%u duplicate=%u superseded=%u stale=%u "
            "rejected=%u",
            ack->batch_seq, status_name (ack->status), ack->accepted, ack->duplicate,
            ack->superseded, ack->stale, ack->rejected);
    if (ack->error && *ack->error)
        printf (" error=\"%s\"", ack->error);
    printf ("\n");
    for (size_t i = 0; i < ack->n_rejections; i++)
        printf ("reject seq=%" PRIu64 " index=%u reason=\"%s\"\n", ack->batch_seq,
                ack->rejections[i]->index,
                ack->rejections[i]->reason ? ack->rejections[i]->reason : "");
}

static int
send_frame (zsock_t *dealer, const void *data, size_t size, bool more)
{
    if (zmq_send (zsock_resolve (dealer), data, size, more ? ZMQ_SNDMORE : 0) == -1) {
        fprintf (stderr, "tp_send: send failed: %s\n", zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

/* Opens one raw stream connection to a tcp:// or ipc:// endpoint; -1 when it cannot. */
static int
s_raw_connect (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        snprintf (address.sun_path, sizeof address.sun_path, "%s", endpoint + 6);
        int fd = socket (AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 && connect (fd, (struct sockaddr *)&address, sizeof address)) {
            close (fd);
            fd = -1;
        }
        return fd;
    }
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return -1;
    char host[128];
    const char *colon = strrchr (endpoint + 6, ':');
    if (!colon || (size_t)(colon - endpoint - 6) >= sizeof host)
        return -1;
    snprintf (host, sizeof host, "%.*s", (int)(colon - endpoint - 6), endpoint + 6);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons ((uint16_t)atoi (colon + 1))};
    if (inet_pton (AF_INET, host, &address.sin_addr) != 1)
        return -1;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect (fd, (struct sockaddr *)&address, sizeof address)) {
        close (fd);
        fd = -1;
    }
    return fd;
}

/* --connections: junk that never becomes a ZeroMQ peer. */
static int
s_junk (const args_t *args)
{
    int *fds = calloc (args->connections, sizeof *fds);
    if (!fds)
        return 1;
    int status = 0;
    size_t opened = 0;
    static const char garbage[] = "GET / HTTP/1.0\r\n\r\n";
    for (; opened < args->connections; opened++) {
        fds[opened] = s_raw_connect (args->endpoint);
        if (fds[opened] < 0) {
            fprintf (stderr, "tp_send: cannot connect to %s: %s\n", args->endpoint,
                     strerror (errno));
            status = 1;
            break;
        }
        if (opened % 2 == 0 && write (fds[opened], garbage, sizeof garbage - 1) < 0)
            fprintf (stderr, "tp_send: write: %s\n", strerror (errno));
    }
    printf ("junk opened=%zu\n", opened);
    fflush (stdout);
    zclock_sleep (args->timeout_ms);
    for (size_t i = 0; i < opened; i++)
        close (fds[i]);
    free (fds);
    return status;
}

int
main (int argc, char **argv)
{
    args_t args = {
        .agent = "tp-send",
        .seq = 1,
        .batches = 1,
        .body = "GB-TEST",
        .records = 1,
        .first_record = 1,
        .neighbourhood = "E01000001",
        .service = "adult-social-care",
        .period = "2023-04",
        .amount = 100,
        .revision = 1,
        .bad_record = -1,
        .timeout_ms = 10000,
    };
    if (parse_args (argc, argv, &args))
        return 1;
    if (args.connections)
        return s_junk (&args);
    zsys_set_logstream (stderr);

    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer) {
        fprintf (stderr, "tp_send: cannot create a socket\n");
        return 1;
    }
    zsock_set_linger (dealer, 2000);
    zsock_set_sndhwm (dealer, 0);
    zsock_set_rcvhwm (dealer, 0);
    zsock_set_rcvtimeo (dealer, args.timeout_ms);
    if (args.cert || args.server_cert) {
        char err[CURVE_ERR_LEN];
        curve_client_t *keys =
            curve_client_new (args.cert, args.server_cert, CURVE_ROLE_NONE, err, sizeof err);
        if (!keys) {
            fprintf (stderr, "tp_send: %s\n", err);
            zsock_destroy (&dealer);
            return 1;
        }
        curve_client_apply (keys, dealer);
        curve_client_destroy (&keys);
    }
    if (zsock_connect (dealer, "%s", args.endpoint)) {
        fprintf (stderr, "tp_send: cannot connect to %s: %s\n", args.endpoint,
                 zmq_strerror (zmq_errno ()));
        zsock_destroy (&dealer);
        return 1;
    }

    int status = 0;
    uint64_t sent = 0;
    for (uint64_t n = 0; n < args.batches && status == 0; n++) {
        uint8_t *data = NULL;
        size_t size = 0;
        if (args.garbage || args.oversize || args.huge) {
            /* 0xff bytes make a varint tag longer than protobuf allows: never a valid message. */
            size = args.garbage    ? 64
                   : args.oversize ? (size_t)WIRE_MAX_MESSAGE_BYTES + 1
                                   : (size_t)INGEST_SOCKET_MAX_MESSAGE_BYTES * 2;
            data = malloc (size);
            if (!data) {
                fprintf (stderr, "tp_send: out of memory\n");
                status = 1;
                break;
            }
            memset (data, 0xff, size);
        }
        else if (encode_batch (&args, n, &data, &size)) {
            status = 1;
            break;
        }
        else if (args.truncate && size > 0)
            size--;
        if (send_frame (dealer, data, size, args.extra_frame) ||
            (args.extra_frame && send_frame (dealer, "", 0, false)))
            status = 1;
        else
            sent++;
        free (data);
    }

    uint64_t acked = 0;
    while (acked < sent) {
        zmq_msg_t reply;
        zmq_msg_init (&reply);
        if (zmq_msg_recv (&reply, zsock_resolve (dealer), 0) == -1) {
            zmq_msg_close (&reply);
            break;
        }
        char err[WIRE_REASON_LEN];
        Totalplace__Ack *ack =
            (Totalplace__Ack *)wire_decode (&totalplace__ack__descriptor, zmq_msg_data (&reply),
                                            zmq_msg_size (&reply), err, sizeof err);
        if (ack) {
            print_ack (ack);
            protobuf_c_message_free_unpacked (&ack->base, NULL);
        }
        else {
            printf ("bad-ack %s\n", err);
            if (status == 0)
                status = 1;
        }
        zmq_msg_close (&reply);
        acked++;
    }
    fflush (stdout);
    if (acked < sent) {
        fprintf (stderr, "tp_send: no ack for %" PRIu64 " of %" PRIu64 " messages within %d ms\n",
                 sent - acked, sent, args.timeout_ms);
        if (status == 0)
            status = 2;
    }
    zsock_destroy (&dealer);
    return status;
}
