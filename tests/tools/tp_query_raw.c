/* tp_query_raw: test tool that sends one message to a collector's query endpoint (a STATS question,
 * or a hostile frame) and prints the reply as one line, for integration tests and by hand. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "curve.h"
#include "query.h"
#include "spending.pb-c.h"
#include "wire.h"

static void
usage (FILE *out)
{
    fprintf (
        out,
        "Usage: tp_query_raw ENDPOINT [--garbage | --oversize | --huge | --truncate |\n"
        "                    --frames N] [--req] [--timeout MS] [--cert FILE --server-cert FILE]\n"
        "Sends a STATS question (or what the option says) to a collector's query endpoint\n"
        "and prints the reply as one line:\n"
        "  reply query_id=7 status=BAD_QUERY error=\"...\"\n"
        "\n"
        "  --garbage     64 bytes that are not a Query\n"
        "  --oversize    a frame just over the Query limit (%u bytes)\n"
        "  --huge        a frame over the socket's limit (%u bytes): the collector drops the\n"
        "                connection, so no reply comes back\n"
        "  --frames N    the question followed by N-1 more frames\n"
        "  --req         send from a REQ socket (an empty delimiter frame first)\n"
        "  --truncate    the question without its last byte\n"
        "  --timeout MS  wait at most MS for the reply (default 5000)\n"
        "  --hold MS     stay connected MS after the reply (a client that holds its place)\n"
        "  --cert FILE   connect with CURVE, as the holder of this secret certificate\n"
        "  --server-cert FILE  the collector's public certificate (with --cert)\n"
        "\n"
        "Exit status: 0 when a reply came, 2 when none came in time, 1 on errors.\n",
        QUERY_MAX_MESSAGE_BYTES, QUERY_SOCKET_MAX_MESSAGE_BYTES);
}

int
main (int argc, char **argv)
{
    enum {
        OPT_GARBAGE = 256,
        OPT_OVERSIZE,
        OPT_HUGE,
        OPT_FRAMES,
        OPT_REQ,
        OPT_TIMEOUT,
        OPT_HOLD,
        OPT_TRUNCATE,
        OPT_CERT,
        OPT_SERVER_CERT
    };
    static const struct option options[] = {
        {"garbage", no_argument, NULL, OPT_GARBAGE},
        {"oversize", no_argument, NULL, OPT_OVERSIZE},
        {"huge", no_argument, NULL, OPT_HUGE},
        {"frames", required_argument, NULL, OPT_FRAMES},
        {"req", no_argument, NULL, OPT_REQ},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"truncate", no_argument, NULL, OPT_TRUNCATE},
        {"cert", required_argument, NULL, OPT_CERT},
        {"server-cert", required_argument, NULL, OPT_SERVER_CERT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool garbage = false, oversize = false, huge = false, req = false, truncate = false;
    const char *cert = NULL, *server_cert = NULL;
    long frames = 1, timeout_ms = 5000, hold_ms = 0;
    int c;
    while ((c = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case OPT_GARBAGE:
            garbage = true;
            break;
        case OPT_TRUNCATE:
            truncate = true;
            break;
        case OPT_CERT:
            cert = optarg;
            break;
        case OPT_SERVER_CERT:
            server_cert = optarg;
            break;
        case OPT_OVERSIZE:
            oversize = true;
            break;
        case OPT_HUGE:
            huge = true;
            break;
        case OPT_FRAMES:
            frames = strtol (optarg, NULL, 10);
            if (frames < 1 || frames > 100) {
                fprintf (stderr, "tp_query_raw: --frames must be 1 to 100\n");
                return 1;
            }
            break;
        case OPT_REQ:
            req = true;
            break;
        case OPT_TIMEOUT:
            timeout_ms = strtol (optarg, NULL, 10);
            if (timeout_ms < 1 || timeout_ms > 3600000) {
                fprintf (stderr, "tp_query_raw: --timeout must be 1 to 3600000\n");
                return 1;
            }
            break;
        case OPT_HOLD:
            hold_ms = strtol (optarg, NULL, 10);
            if (hold_ms < 0 || hold_ms > 3600000) {
                fprintf (stderr, "tp_query_raw: --hold must be 0 to 3600000\n");
                return 1;
            }
            break;
        case 'h':
            usage (stdout);
            return 0;
        default:
            usage (stderr);
            return 1;
        }
    }
    if (optind != argc - 1) {
        usage (stderr);
        return 1;
    }
    zsys_handler_set (NULL);

    uint8_t *data = NULL;
    size_t size = 0;
    if (garbage || oversize || huge) {
        /* 0xff bytes make a varint tag longer than protobuf allows: never a valid message. */
        size = garbage    ? 64
               : oversize ? (size_t)QUERY_MAX_MESSAGE_BYTES + 1
                          : (size_t)QUERY_SOCKET_MAX_MESSAGE_BYTES * 2;
        data = malloc (size);
        if (!data) {
            fprintf (stderr, "tp_query_raw: out of memory\n");
            return 1;
        }
        memset (data, 0xff, size);
    }
    else {
        Totalplace__Query query = TOTALPLACE__QUERY__INIT;
        query.query_id = 7;
        query.what = TOTALPLACE__QUERY_WHAT__QUERY_STATS;
        char err[WIRE_REASON_LEN];
        if (wire_encode (&query.base, &data, &size, err, sizeof err)) {
            fprintf (stderr, "tp_query_raw: %s\n", err);
            return 1;
        }
        if (truncate)
            size--;
    }

    zsock_t *client = zsock_new (req ? ZMQ_REQ : ZMQ_DEALER);
    if (!client) {
        fprintf (stderr, "tp_query_raw: cannot create a socket\n");
        free (data);
        return 1;
    }
    zsock_set_linger (client, 0);
    zsock_set_rcvtimeo (client, (int)timeout_ms);
    if (cert || server_cert) {
        char err[CURVE_ERR_LEN];
        curve_client_t *keys =
            curve_client_new (cert, server_cert, CURVE_ROLE_NONE, err, sizeof err);
        if (!keys) {
            fprintf (stderr, "tp_query_raw: %s\n", err);
            zsock_destroy (&client);
            free (data);
            return 1;
        }
        curve_client_apply (keys, client);
        curve_client_destroy (&keys);
    }
    int status = 0;
    void *handle = zsock_resolve (client);
    if (zsock_connect (client, "%s", argv[optind]) == -1) {
        fprintf (stderr, "tp_query_raw: cannot connect to %s: %s\n", argv[optind],
                 zmq_strerror (zmq_errno ()));
        status = 1;
    }
    for (long f = 0; status == 0 && f < frames; f++)
        if (zmq_send (handle, f == 0 ? data : (const uint8_t *)"x", f == 0 ? size : 1,
                      f + 1 < frames ? ZMQ_SNDMORE : 0) == -1) {
            fprintf (stderr, "tp_query_raw: send failed: %s\n", zmq_strerror (zmq_errno ()));
            status = 1;
        }
    free (data);
    if (status == 0) {
        zmq_msg_t reply;
        zmq_msg_init (&reply);
        if (zmq_msg_recv (&reply, handle, 0) == -1) {
            fprintf (stderr, "tp_query_raw: no reply within %ld ms\n", timeout_ms);
            status = 2;
        }
        else {
            char err[WIRE_REASON_LEN];
            Totalplace__QueryReply *decoded = (Totalplace__QueryReply *)wire_decode (
                &totalplace__query_reply__descriptor, zmq_msg_data (&reply), zmq_msg_size (&reply),
                err, sizeof err);
            if (decoded) {
                printf ("reply query_id=%" PRIu64 " status=%s", decoded->query_id,
                        query_status_name (decoded->status));
                if (decoded->error && *decoded->error)
                    printf (" error=\"%s\"", decoded->error);
                printf ("\n");
                protobuf_c_message_free_unpacked (&decoded->base, NULL);
            }
            else {
                printf ("bad-reply %s\n", err);
                status = 1;
            }
        }
        zmq_msg_close (&reply);
    }
    if (hold_ms)
        zclock_sleep ((int)hold_ms);
    zsock_destroy (&client);
    return status;
}
