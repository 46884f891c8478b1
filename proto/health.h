/* health: tells systemd how a daemon is doing (sd_notify(3), libsystemd): READY=1 once it serves,
 * a one-line STATUS= kept current (systemctl status shows it), WATCHDOG=1 pings from the main loop
 * (the unit's WatchdogSec= restarts a daemon whose loop stops turning), RELOADING=1 and
 * STOPPING=1. Without systemd (NOTIFY_SOCKET unset) every call does nothing. Main thread only. */
#ifndef TOTALPLACE_HEALTH_H
#define TOTALPLACE_HEALTH_H

/* The daemon serves: READY=1 with a first status line. */
void health_ready (const char *status);

/* Sends STATUS= when the line differs from the last one sent (printf-style). */
void health_status (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

/* Pings the watchdog when the unit has one, at most every quarter of its interval: call it on
 * every turn of the main loop. */
void health_watchdog (void);

/* A reload starts (RELOADING=1); health_ready ends it. */
void health_reloading (void);

/* The daemon stops (STOPPING=1) with a last status line. */
void health_stopping (const char *status);

#endif
