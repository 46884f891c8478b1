/* log: how both daemons write their log, one line per event:
 *
 *     2026-11-30T12:32:30.123Z W ingest: a peer on ipc:///run/x failed the handshake: ...
 *
 * UTC time (ISO 8601, milliseconds), a level letter (D I W E), the component, the message. When
 * stderr is the journal (systemd sets JOURNAL_STREAM to stderr's device and inode), each line
 * starts with its syslog priority (<7> <6> <4> <3>) so that journald keeps the level; with
 * log_open's use_syslog the lines go to syslog(3) instead, as "component: message". Control
 * characters in a message become spaces, so a line is always one line. Any thread may log: each
 * line is one write(2). The daemons log; library modules never do (they return errors). */
#ifndef TOTALPLACE_LOG_H
#define TOTALPLACE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
} log_level_t;

/* The longest line written (longer messages are cut). */
#define LOG_LINE_MAX 4096

/* Chooses where lines go: syslog with program as ident, or stderr (with priority prefixes when
 * stderr is the journal). Call once, before other threads log; without it lines go to stderr. */
void log_open (const char *program, bool use_syslog);

/* Lines below level are dropped (default LOG_LEVEL_INFO). Any thread, any time (SIGHUP). */
void log_set_level (log_level_t level);

/* True when a line of this level is written now: skip building expensive messages otherwise. */
bool log_enabled (log_level_t level);

/* Writes one line of this level from component (e.g. "ingest"), printf-style. */
void log_line (log_level_t level, const char *component, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

#define log_debug(component, ...)   log_line (LOG_LEVEL_DEBUG, component, __VA_ARGS__)
#define log_info(component, ...)    log_line (LOG_LEVEL_INFO, component, __VA_ARGS__)
#define log_warning(component, ...) log_line (LOG_LEVEL_WARNING, component, __VA_ARGS__)
#define log_error(component, ...)   log_line (LOG_LEVEL_ERROR, component, __VA_ARGS__)

/* Formats a line as log_line writes it to stderr, without the newline: unix_ms is the time,
 * journal adds the priority prefix. Returns the length (cut to size - 1). For the tests. */
size_t log_format (char *buffer, size_t size, int64_t unix_ms, log_level_t level,
                   const char *component, const char *message, bool journal);

/* A rate limit for one kind of line, so that a hostile or broken peer cannot flood the log: at
 * most LOG_LIMIT_LINES lines a second; the rest are counted and summarised in one line
 * ("component: N more WHAT not logged in the last second") at the same level. Used by one
 * thread at a time. */
#define LOG_LIMIT_LINES 5

typedef struct {
    const char *component;
    const char *what; /* plural noun for the summary, e.g. "malformed messages" */
    log_level_t level;
    int64_t window_start; /* monotonic milliseconds */
    unsigned lines;       /* written in this window */
    uint64_t suppressed;  /* not written in this window */
} log_limit_t;

#define LOG_LIMIT_INIT(component_, what_, level_)                                                  \
    (log_limit_t)                                                                                  \
    {                                                                                              \
        .component = (component_), .what = (what_), .level = (level_)                              \
    }

/* True when a line of this kind may be written now (its level is enabled and the second's
 * allowance is not spent); first writes the summary of a window that has ended. */
bool log_limit_allow (log_limit_t *limit);

/* Writes the summary of a window that ended while nothing more of its kind came; call it from a
 * periodic tick. */
void log_limit_flush (log_limit_t *limit);

#endif
