/* tp_memwatch: samples the memory of running processes from /proc/PID/status until they all end
 * (or it is told to stop with SIGTERM/SIGINT) and prints each one's peaks: resident set, its
 * anonymous part (the process's own heap and stacks) and its file-backed part (for the collector
 * and the agents, mostly LMDB's memory-mapped file, which the kernel may drop at any time); and,
 * as last seen, its CPU time (/proc/PID/stat) and what it wrote (/proc/PID/io: write_bytes, the
 * bytes it sent to the disks, and wchar, the bytes it passed to write calls). */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WATCHED 32

typedef struct {
    char name[64];
    long pid;
    bool gone;
    uint64_t samples;
    uint64_t peak_rss_kb, peak_anon_kb, peak_file_kb, hwm_kb;
    uint64_t cpu_ms, write_bytes, wchar; /* last seen */
} watched_t;

static volatile sig_atomic_t s_stop = 0;

static void
on_signal (int signal_number)
{
    (void)signal_number;
    s_stop = 1;
}

static uint64_t
max_u64 (uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Returns false once the process is gone. */
static bool
sample (watched_t *watched)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%ld/status", watched->pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    bool zombie = false;
    uint64_t value;
    while (fgets (line, sizeof line, file)) {
        if (strncmp (line, "State:", 6) == 0 && strchr (line, 'Z'))
            zombie = true;
        else if (sscanf (line, "VmHWM: %" SCNu64, &value) == 1)
            watched->hwm_kb = max_u64 (watched->hwm_kb, value);
        else if (sscanf (line, "VmRSS: %" SCNu64, &value) == 1)
            watched->peak_rss_kb = max_u64 (watched->peak_rss_kb, value);
        else if (sscanf (line, "RssAnon: %" SCNu64, &value) == 1)
            watched->peak_anon_kb = max_u64 (watched->peak_anon_kb, value);
        else if (sscanf (line, "RssFile: %" SCNu64, &value) == 1)
            watched->peak_file_kb = max_u64 (watched->peak_file_kb, value);
    }
    fclose (file);
    /* CPU: utime and stime, fields 14 and 15, after the command in parentheses. */
    char stat[1024];
    snprintf (path, sizeof path, "/proc/%ld/stat", watched->pid);
    file = fopen (path, "r");
    if (file) {
        size_t got = fread (stat, 1, sizeof stat - 1, file);
        stat[got] = '\0';
        fclose (file);
        const char *after = strrchr (stat, ')');
        unsigned long long utime, stime;
        if (after && sscanf (after + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu",
                             &utime, &stime) == 2)
            watched->cpu_ms = (utime + stime) * 1000 / (uint64_t)sysconf (_SC_CLK_TCK);
    }
    snprintf (path, sizeof path, "/proc/%ld/io", watched->pid);
    file = fopen (path, "r");
    if (file) {
        while (fgets (line, sizeof line, file)) {
            if (sscanf (line, "write_bytes: %" SCNu64, &value) == 1)
                watched->write_bytes = value;
            else if (sscanf (line, "wchar: %" SCNu64, &value) == 1)
                watched->wchar = value;
        }
        fclose (file);
    }
    watched->samples++;
    return !zombie;
}

int
main (int argc, char *argv[])
{
    long interval_ms = 50;
    int first = 1;
    if (argc > 2 && strcmp (argv[1], "--interval-ms") == 0) {
        interval_ms = atol (argv[2]);
        first = 3;
    }
    if (argc - first < 1 || argc - first > MAX_WATCHED || interval_ms <= 0) {
        fprintf (stderr, "Usage: tp_memwatch [--interval-ms MS] NAME=PID...\n"
                         "Prints NAME.peak_rss_kb, NAME.peak_anon_kb, NAME.peak_file_kb, "
                         "NAME.hwm_kb, NAME.cpu_ms, NAME.write_bytes and NAME.wchar once every "
                         "PID has ended or on SIGTERM.\n");
        return 2;
    }
    watched_t watched[MAX_WATCHED];
    size_t count = 0;
    for (int i = first; i < argc; i++) {
        watched_t *w = &watched[count++];
        memset (w, 0, sizeof *w);
        const char *equals = strchr (argv[i], '=');
        if (!equals || equals == argv[i] || (size_t)(equals - argv[i]) >= sizeof w->name) {
            fprintf (stderr, "tp_memwatch: \"%s\" is not NAME=PID\n", argv[i]);
            return 2;
        }
        memcpy (w->name, argv[i], (size_t)(equals - argv[i]));
        w->pid = atol (equals + 1);
    }
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    while (!s_stop) {
        size_t alive = 0;
        for (size_t i = 0; i < count; i++)
            if (!watched[i].gone) {
                watched[i].gone = !sample (&watched[i]);
                alive += !watched[i].gone;
            }
        if (alive == 0)
            break;
        struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000};
        nanosleep (&pause, NULL);
    }
    for (size_t i = 0; i < count; i++) {
        const watched_t *w = &watched[i];
        printf ("%s.peak_rss_kb=%" PRIu64 "\n%s.peak_anon_kb=%" PRIu64 "\n%s.peak_file_kb=%" PRIu64
                "\n%s.hwm_kb=%" PRIu64 "\n%s.samples=%" PRIu64 "\n%s.cpu_ms=%" PRIu64
                "\n%s.write_bytes=%" PRIu64 "\n%s.wchar=%" PRIu64 "\n",
                w->name, w->peak_rss_kb, w->name, w->peak_anon_kb, w->name, w->peak_file_kb,
                w->name, w->hwm_kb, w->name, w->samples, w->name, w->cpu_ms, w->name,
                w->write_bytes, w->name, w->wchar);
    }
    return 0;
}
