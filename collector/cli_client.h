/* cli_client: the totalplace CLI asking a running collector (--collector): a DEALER socket with
 * CURVE keys (or plain to a local endpoint), one Query frame and one QueryReply frame per question
 * within --timeout, and why a collector refused the connection when it did. */
#ifndef TOTALPLACE_CLI_CLIENT_H
#define TOTALPLACE_CLI_CLIENT_H

#include <stddef.h>

#include "cli_source.h"
#include "query_args.h"

/* Connects to args->collector: with CURVE keys (--cert and --collector-cert, or
 * $TOTALPLACE_CERT and $TOTALPLACE_COLLECTOR_CERT), or plain with --allow-plain to a local
 * endpoint, and fills source with the operations that ask it. Nothing is sent yet, so an absent
 * collector shows as no answer in time. Returns 0, or -1 with a message. */
int cli_client_open (cli_source_t *source, const query_args_t *args, char *err, size_t err_len);

#endif
