/* log: one line per event, UTC milliseconds, level, component; journal- and syslog-aware. */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int s_level = LOG_LEVEL_INFO;
/* Set once by log_open, before other threads log. */
static bool s_syslog = false;
static bool s_journal = false;

static const char s_letters[] = {'D', 'I', 'W', 'E'};
/* syslog(3) priorities: debug 7, info 6, warning 4, error 3. */
static const int s_priorities[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};

static log_level_t
s_clamp (log_level_t level)
{
    return level > LOG_LEVEL_ERROR ? LOG_LEVEL_ERROR : level;
}

/* systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected to stderr; a stderr
 * redirected since (by a shell, or to a file) is not the journal. */
static bool
s_stderr_is_journal (void)
{
    const char *stream = getenv ("JOURNAL_STREAM");
    if (!stream || !*stream)
        return false;
    char *end;
    errno = 0;
    unsigned long long device = strtoull (stream, &end, 10);
    if (errno || *end != ':')
        return false;
    unsigned long long inode = strtoull (end + 1, &end, 10);
    if (errno || *end)
        return false;
    struct stat info;
    if (fstat (STDERR_FILENO, &info))
        return false;
    return (unsigned long long)info.st_dev == device && (unsigned long long)info.st_ino == inode;
}

void
log_open (const char *program, bool use_syslog)
{
    s_syslog = use_syslog;
    s_journal = !use_syslog && s_stderr_is_journal ();
    if (use_syslog)
        openlog (program, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level (log_level_t level)
{
    atomic_store (&s_level, (int)s_clamp (level));
}

bool
log_enabled (log_level_t level)
{
    return (int)level >= atomic_load (&s_level);
}

/* One event, one line: control characters (a newline in a quoted value) become spaces. */
static void
s_one_line (char *text)
{
    for (; *text; text++)
        if ((unsigned char)*text < 0x20 || *text == 0x7f)
            *text = ' ';
}

size_t
log_format (char *buffer, size_t size, int64_t unix_ms, log_level_t level, const char *component,
            const char *message, bool journal)
{
    if (!size)
        return 0;
    level = s_clamp (level);
    time_t seconds = (time_t)(unix_ms / 1000);
    struct tm utc;
    char stamp[32] = "0000-00-00T00:00:00";
    if (gmtime_r (&seconds, &utc))
        strftime (stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char prefix[16] = "";
    if (journal)
        snprintf (prefix, sizeof prefix, "<%d>", s_priorities[level]);
    int length = snprintf (buffer, size, "%s%s.%03dZ %c %s: ", prefix, stamp, (int)(unix_ms % 1000),
                           s_letters[level], component ? component : "-");
    if (length < 0)
        length = 0;
    size_t used = (size_t)length < size ? (size_t)length : size - 1;
    snprintf (buffer + used, size - used, "%s", message ? message : "");
    s_one_line (buffer + used);
    return used + strlen (buffer + used);
}

static void
s_write_all (const char *data, size_t size)
{
    while (size) {
        ssize_t written = write (STDERR_FILENO, data, size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to say it */
        }
        data += written;
        size -= (size_t)written;
    }
}

static void s_vline (log_level_t level, const char *component, const char *format, va_list args)
    __attribute__ ((format (printf, 3, 0)));

static void
s_vline (log_level_t level, const char *component, const char *format, va_list args)
{
    char message[LOG_LINE_MAX];
    vsnprintf (message, sizeof message, format, args);
    level = s_clamp (level);
    if (s_syslog) {
        s_one_line (message);
        /* syslog stamps its own time and knows the level. */
        syslog (s_priorities[level], "%s: %s", component ? component : "-", message);
        return;
    }
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    int64_t unix_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    char line[LOG_LINE_MAX + 1];
    size_t length = log_format (line, LOG_LINE_MAX, unix_ms, level, component, message, s_journal);
    line[length++] = '\n';
    s_write_all (line, length);
}

void
log_line (log_level_t level, const char *component, const char *format, ...)
{
    if (!log_enabled (level))
        return;
    va_list args;
    va_start (args, format);
    s_vline (level, component, format, args);
    va_end (args);
}

static int64_t
s_mono_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void
s_summarise (log_limit_t *limit)
{
    log_line (limit->level, limit->component, "%" PRIu64 " more %s not logged in the last second",
              limit->suppressed, limit->what);
    limit->suppressed = 0;
}

bool
log_limit_allow (log_limit_t *limit)
{
    if (!log_enabled (limit->level))
        return false;
    int64_t now = s_mono_ms ();
    if (now - limit->window_start >= 1000) {
        if (limit->suppressed)
            s_summarise (limit);
        limit->window_start = now;
        limit->lines = 0;
    }
    if (limit->lines < LOG_LIMIT_LINES) {
        limit->lines++;
        return true;
    }
    limit->suppressed++;
    return false;
}

void
log_limit_flush (log_limit_t *limit)
{
    if (limit->suppressed && s_mono_ms () - limit->window_start >= 1000) {
        s_summarise (limit);
        limit->lines = 0;
        limit->window_start = s_mono_ms ();
    }
}
