/* metrics_server: GET /metrics through libmicrohttpd's internal polling thread. */
#include "metrics_server.h"
#include "err_text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

/* A handful of scrapers at once is plenty; more are refused by the library. */
#define METRICS_MAX_CONNECTIONS 8
/* A client that sends no complete request within this many seconds is dropped. */
#define METRICS_TIMEOUT_S 10

struct _metrics_server_t {
    struct MHD_Daemon *daemon;
    metrics_render_fn *render;
    void *arg;
    char url[96];
};

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

/* Parses "HOST:PORT" into address (IPv4 or IPv6). Returns 0 or -1 with a message. */
static int
s_parse (const char *key, const char *endpoint, struct sockaddr_storage *address, bool *loopback,
         char *err, size_t err_len)
{
    memset (address, 0, sizeof *address);
    const char *colon = strrchr (endpoint, ':');
    char host[64];
    if (!colon || colon == endpoint || (size_t)(colon - endpoint) >= sizeof host)
        return fail (err, err_len,
                     "%s \"%s\" is not HOST:PORT (e.g. 127.0.0.1:9464, or [::1]:9464)", key,
                     endpoint);
    memcpy (host, endpoint, (size_t)(colon - endpoint));
    host[colon - endpoint] = '\0';
    char *end;
    errno = 0;
    long port = strtol (colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return fail (err, err_len, "%s \"%s\": the port must be a number from 0 to 65535", key,
                     endpoint);
    size_t length = strlen (host);
    if (host[0] == '[' && length > 2 && host[length - 1] == ']') {
        host[length - 1] = '\0';
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)address;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons ((uint16_t)port);
        if (inet_pton (AF_INET6, host + 1, &in6->sin6_addr) != 1)
            return fail (err, err_len, "%s \"%s\": %s is not a numeric IPv6 address", key, endpoint,
                         host + 1);
        *loopback = IN6_IS_ADDR_LOOPBACK (&in6->sin6_addr);
        return 0;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)address;
    in->sin_family = AF_INET;
    in->sin_port = htons ((uint16_t)port);
    if (inet_pton (AF_INET, host, &in->sin_addr) != 1)
        return fail (err, err_len,
                     "%s \"%s\": %s is not a numeric IPv4 address (names are not resolved; an "
                     "IPv6 address goes in brackets)",
                     key, endpoint, host);
    *loopback = (ntohl (in->sin_addr.s_addr) >> 24) == 127;
    return 0;
}

int
metrics_endpoint_check (const char *key, const char *allow_key, const char *endpoint,
                        bool allow_remote, char *err, size_t err_len)
{
    struct sockaddr_storage address;
    bool loopback = false;
    if (s_parse (key, endpoint, &address, &loopback, err, err_len))
        return -1;
    if (!loopback && !allow_remote)
        return fail (err, err_len,
                     "%s \"%s\" is not a loopback address: the metrics say who delivers what and "
                     "carry no authentication, so they are served to this host only unless "
                     "%s = 1 (then restrict the port with a firewall; docs/security.md)",
                     key, endpoint, allow_key);
    return 0;
}

static enum MHD_Result
s_answer (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
    (void)version;
    (void)upload_data;
    (void)state;
    metrics_server_t *self = cls;
    if (*upload_data_size) {
        *upload_data_size = 0; /* no body is wanted; it is ignored */
        return MHD_YES;
    }
    unsigned int code = MHD_HTTP_OK;
    const char *body = NULL;
    metrics_text_t *text = NULL;
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0) {
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = "only GET /metrics is served\n";
    }
    else if (strcmp (url, "/metrics") != 0) {
        code = MHD_HTTP_NOT_FOUND;
        body = "not found: the metrics are at /metrics\n";
    }
    else if (!(text = metrics_text_new ())) {
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body = "out of memory\n";
    }
    else {
        self->render (self->arg, text);
        if (metrics_text_failed (text)) {
            code = MHD_HTTP_INTERNAL_SERVER_ERROR;
            body = "out of memory\n";
        }
    }
    struct MHD_Response *response =
        body ? MHD_create_response_from_buffer (strlen (body), (void *)body, MHD_RESPMEM_PERSISTENT)
             : MHD_create_response_from_buffer (metrics_text_size (text),
                                                (void *)metrics_text_data (text),
                                                MHD_RESPMEM_MUST_COPY);
    metrics_text_destroy (&text);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             code == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
                                                 : "text/plain; charset=utf-8");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result result = MHD_queue_response (connection, code, response);
    MHD_destroy_response (response);
    return result;
}

metrics_server_t *
metrics_server_new (const char *key, const char *allow_key, const char *endpoint, bool allow_remote,
                    metrics_render_fn *render, void *arg, char *err, size_t err_len)
{
    if (metrics_endpoint_check (key, allow_key, endpoint, allow_remote, err, err_len))
        return NULL;
    struct sockaddr_storage address;
    bool loopback;
    s_parse (key, endpoint, &address, &loopback, err, err_len);
    metrics_server_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, "out of memory starting the metrics endpoint");
        return NULL;
    }
    self->render = render;
    self->arg = arg;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (address.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    self->daemon = MHD_start_daemon (
        flags, 0, NULL, NULL, s_answer, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&address,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_TIMEOUT_S, MHD_OPTION_END);
    if (!self->daemon) {
        fail (err, err_len, "%s: cannot listen on %s: %s", key, endpoint,
              errno ? strerror (errno) : "libmicrohttpd could not start");
        free (self);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    char host[64];
    snprintf (host, sizeof host, "%.*s", (int)(strrchr (endpoint, ':') - endpoint), endpoint);
    snprintf (self->url, sizeof self->url, "http://%s:%u/metrics", host, port);
    return self;
}

void
metrics_server_destroy (metrics_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    MHD_stop_daemon ((*self_p)->daemon);
    free (*self_p);
    *self_p = NULL;
}

const char *
metrics_server_url (const metrics_server_t *self)
{
    return self->url;
}
