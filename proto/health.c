/* health: sd_notify for READY, STATUS, WATCHDOG, RELOADING and STOPPING. */
#include "health.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

static char s_status[512];
static uint64_t s_watchdog_usec; /* the unit's WatchdogSec; 0: none */
static bool s_watchdog_known;
static uint64_t s_last_ping_usec; /* monotonic */

static uint64_t
s_now_usec (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* A status line is one line: sd_notify's assignments are separated by newlines. */
static void
s_one_line (char *text)
{
    for (; *text; text++)
        if ((unsigned char)*text < 0x20)
            *text = ' ';
}

void
health_ready (const char *status)
{
    snprintf (s_status, sizeof s_status, "%s", status ? status : "");
    s_one_line (s_status);
    sd_notifyf (0, "READY=1\nSTATUS=%s", s_status);
}

void
health_status (const char *format, ...)
{
    char line[sizeof s_status];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    s_one_line (line);
    if (strcmp (line, s_status) == 0)
        return;
    memcpy (s_status, line, sizeof s_status);
    sd_notifyf (0, "STATUS=%s", s_status);
}

void
health_watchdog (void)
{
    if (!s_watchdog_known) {
        /* Without a watchdog (or without systemd) this stays 0 and nothing is ever sent. */
        if (sd_watchdog_enabled (0, &s_watchdog_usec) <= 0)
            s_watchdog_usec = 0;
        s_watchdog_known = true;
    }
    if (!s_watchdog_usec)
        return;
    uint64_t now = s_now_usec ();
    if (s_last_ping_usec && now - s_last_ping_usec < s_watchdog_usec / 4)
        return;
    s_last_ping_usec = now;
    sd_notify (0, "WATCHDOG=1");
}

void
health_reloading (void)
{
    sd_notify (0, "RELOADING=1");
}

void
health_stopping (const char *status)
{
    snprintf (s_status, sizeof s_status, "%s", status ? status : "stopping");
    s_one_line (s_status);
    sd_notifyf (0, "STOPPING=1\nSTATUS=%s", s_status);
}
