/* tp_notify: test tool that plays systemd's side of sd_notify(3): binds a unix datagram socket at
 * PATH (give it to a daemon as NOTIFY_SOCKET) and prints every assignment each datagram carries as
 * one line ("READY=1", "STATUS=...", "WATCHDOG=1"), flushed at once, until SIGTERM or SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int signal_number)
{
    (void)signal_number;
    s_stop = 1;
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "Usage: tp_notify PATH\n");
        return 2;
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen (argv[1]) >= sizeof address.sun_path) {
        fprintf (stderr, "tp_notify: %s is too long for a socket path\n", argv[1]);
        return 2;
    }
    snprintf (address.sun_path, sizeof address.sun_path, "%s", argv[1]);
    int fd = socket (AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || bind (fd, (struct sockaddr *)&address, sizeof address)) {
        fprintf (stderr, "tp_notify: cannot bind %s: %s\n", argv[1], strerror (errno));
        return 1;
    }
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal; /* no SA_RESTART: recv returns EINTR */
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    char message[4096];
    while (!s_stop) {
        ssize_t size = recv (fd, message, sizeof message - 1, 0);
        if (size < 0) {
            if (errno == EINTR)
                continue;
            fprintf (stderr, "tp_notify: %s\n", strerror (errno));
            break;
        }
        message[size] = '\0';
        /* One assignment per line, as sd_notify separates them. */
        for (char *line = strtok (message, "\n"); line; line = strtok (NULL, "\n"))
            printf ("%s\n", line);
        fflush (stdout);
    }
    close (fd);
    unlink (argv[1]);
    return 0;
}
