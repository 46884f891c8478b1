/* agent_status: what `totalplace-agent status` shows of an agent (pending batches and records and
 * how long the oldest has waited, the last Ack, retained batches, the collector and its store,
 * the highest seq acknowledged, files held in failed/ and files taken that could not leave the
 * inbox, and the alarm: batches lost with their files and what to do), as a table or JSON, with
 * whether the agent is healthy; and the clearing of the alarm. Reads beside a running agent,
 * without its lock. */
#ifndef TOTALPLACE_AGENT_STATUS_H
#define TOTALPLACE_AGENT_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { AGENT_STATUS_TABLE, AGENT_STATUS_JSON } agent_status_format_t;

/* What agent_status_print returns besides -1 (could not read: err says why). */
#define AGENT_STATUS_HEALTHY   0
#define AGENT_STATUS_UNHEALTHY 1 /* an alarm stands (batches lost), or delivery stalled */
#define AGENT_STATUS_ALARM     AGENT_STATUS_UNHEALTHY

typedef struct {
    const char *outbox_dir; /* agent/state_dir + "/outbox" */
    const char *inbox_dir;  /* agent/inbox, for the files held in failed/ (NULL: not shown) */
    const char *collector;  /* agent/collector (NULL: not shown) */
    agent_status_format_t format;
    uint64_t retain_hours;  /* outbox/retain_hours, shown beside what is actually held */
    uint64_t stall_alarm_s; /* agent/stall_alarm_s: batches waiting and no Ack for this long is
                               unhealthy (0: never) */
    int64_t now;            /* unix seconds, for ages */
} agent_status_options_t;

/* Prints the status of the outbox to out. Returns AGENT_STATUS_HEALTHY, AGENT_STATUS_UNHEALTHY
 * (the reasons are in the output's "problems"), or -1 with err when the outbox cannot be read. */
int agent_status_print (const agent_status_options_t *options, FILE *out, char *err,
                        size_t err_len);

/* Clears the alarm of the outbox in folder outbox_dir (after the lost files were dropped again)
 * and prints what it cleared to out. Returns 0 or -1 with err. */
int agent_status_clear_alarm (const char *outbox_dir, FILE *out, char *err, size_t err_len);

#endif
