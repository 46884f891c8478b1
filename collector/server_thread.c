/* server_thread: signal mask, connection monitor and start-up handshake of a server actor. */
#include "server_thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

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
    if (*monitor) {
        zsock_set_rcvhwm (*monitor, 0);
        zsock_set_rcvtimeo (*monitor, 0); /* read without waiting: server_peers_read drains */
    }
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

void
server_peers_init (server_peers_t *peers, const char *name, const char *what, curve_role_t role,
                   zsock_t *monitor)
{
    memset (peers, 0, sizeof *peers);
    peers->name = name;
    peers->peers = what;
    peers->role = role;
    peers->monitor = monitor;
    /* Peers leaving are ordinary (every CLI question is a connection): debug, not a warning. */
    peers->disconnect_log = LOG_LIMIT_INIT (name, "disconnects", LOG_LEVEL_DEBUG);
    peers->handshake_log = LOG_LIMIT_INIT (name, "failed handshakes", LOG_LEVEL_WARNING);
}

void
server_thread_describe_handshake (unsigned kind, uint32_t value, char *text, size_t size)
{
    if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf (text, size, "its key was refused (ZAP %u: %s; the auth line says why)", value,
                  value == 300   ? "refused for now"
                  : value == 400 ? "unknown key, wrong role, or plain against CURVE"
                                 : "the authenticator failed");
    else if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        const char *what = "it broke the ZeroMQ protocol";
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            what = "it uses another security mechanism (plain against CURVE, or the reverse)";
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            what = "its CURVE handshake did not decrypt (a wrong collector certificate?)";
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE)
            what = "the CURVE key exchange failed";
        else if (value >= ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED &&
                 value <= ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA)
            what = "it sent a malformed handshake command";
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND ||
                 value == ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE)
            what = "it sent handshake commands out of order";
        else if (value >= ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED &&
                 value <= ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA)
            what = "the authenticator's answer was unusable";
        snprintf (text, size, "%s", what);
    }
    else if (value == 0 || value == EPIPE || value == ECONNRESET)
        snprintf (text, size, "it closed the connection before finishing the handshake");
    else if (value == ETIMEDOUT || value == EAGAIN)
        snprintf (text, size,
                  "it did not finish the handshake in time (limits/handshake_timeout_ms)");
    else
        snprintf (text, size, "the connection failed during the handshake: %s",
                  strerror ((int)value));
}

/* Handles one event: kind, its value, the endpoint it happened on. */
static void
s_peers_event (server_peers_t *peers, unsigned kind, uint32_t value, const char *at)
{
    if (peers->auth)
        auth_connection_event (peers->auth, peers->role, kind, (int)value);
    if (kind == ZMQ_EVENT_ACCEPTED) {
        peers->connections++;
        log_debug (peers->name, "a %s connected on %s", peers->peers, at);
    }
    else if (kind == ZMQ_EVENT_DISCONNECTED) {
        peers->disconnects++;
        if (log_limit_allow (&peers->disconnect_log))
            log_debug (peers->name, "a %s on %s disconnected", peers->peers, at);
    }
    else if (kind & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) {
        peers->handshake_failures++;
        char why[160];
        server_thread_describe_handshake (kind, value, why, sizeof why);
        if (log_limit_allow (&peers->handshake_log))
            log_warning (peers->name, "a %s on %s failed the handshake: %s", peers->peers, at, why);
    }
}

size_t
server_peers_read (server_peers_t *peers)
{
    size_t read = 0;
    zmsg_t *event;
    while (peers->monitor && (event = zmsg_recv (peers->monitor))) {
        zframe_t *head = zmsg_first (event);
        zframe_t *where = zmsg_next (event);
        if (head && zframe_size (head) >= 6) {
            uint16_t kind;
            uint32_t value;
            memcpy (&kind, zframe_data (head), sizeof kind);
            memcpy (&value, zframe_data (head) + 2, sizeof value);
            char at[256] = "?";
            if (where)
                snprintf (at, sizeof at, "%.*s", (int)zframe_size (where),
                          (const char *)zframe_data (where));
            s_peers_event (peers, kind, value, at);
        }
        zmsg_destroy (&event);
        read++;
    }
    return read;
}

bool
server_peers_admit (server_peers_t *peers, zmq_msg_t *message, char *reason, size_t reason_len)
{
    if (!peers->auth)
        return true;
    int fd = zmq_msg_get (message, ZMQ_SRCFD);
    auth_admission_t admission = auth_peer_admit (peers->auth, peers->role, fd, reason, reason_len);
    if (admission == AUTH_PEER_UNKNOWN && server_peers_read (peers))
        admission = auth_peer_admit (peers->auth, peers->role, fd, reason, reason_len);
    return admission != AUTH_PEER_OVER_LIMIT;
}
