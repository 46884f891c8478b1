/* server_thread: signal mask, connection monitor and start-up handshake of a server actor. */
#include "server_thread.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

void
server_thread_block_signals (void)
{
    sigset_t blocked;
    sigfillset (&blocked);
    /* Faults stay deliverable, so that a crash still crashes. */
    sigdelset (&blocked, SIGSEGV);
    sigdelset (&blocked, SIGBUS);
    sigdelset (&blocked, SIGFPE);
    sigdelset (&blocked, SIGILL);
    sigdelset (&blocked, SIGABRT);
    pthread_sigmask (SIG_BLOCK, &blocked, NULL);
}

int
server_thread_monitor (zsock_t *router, const char *name, zsock_t **monitor, char *err,
                       size_t err_len)
{
    char endpoint[96];
    snprintf (endpoint, sizeof endpoint, "inproc://totalplace-%s-monitor-%p", name, (void *)router);
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor (zsock_resolve (router), endpoint, events) == -1) {
        snprintf (err, err_len, "cannot monitor the %s socket: %s", name,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    *monitor = zsock_new (ZMQ_PAIR);
    /* No event may be dropped (libzmq drops them when the queue is full): the connection counts
     * the limits rest on are sums of events. */
    if (*monitor)
        zsock_set_rcvhwm (*monitor, 0);
    if (!*monitor || zsock_connect (*monitor, "%s", endpoint) == -1) {
        snprintf (err, err_len, "cannot connect the %s socket monitor: %s", name,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

void
server_thread_report_start (zsock_t *pipe, bool started, const char *err)
{
    zsock_signal (pipe, 0);
    zstr_send (pipe, started ? "OK" : err);
    if (started)
        return;
    char *command;
    while ((command = zstr_recv (pipe))) {
        bool term = streq (command, "$TERM");
        zstr_free (&command);
        if (term)
            break;
    }
}
