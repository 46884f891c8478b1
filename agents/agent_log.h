/* agent_log: how the agent's modules tell the daemon what happened; they never log themselves. */
#ifndef TOTALPLACE_AGENT_LOG_H
#define TOTALPLACE_AGENT_LOG_H

typedef enum { AGENT_LOG_DEBUG, AGENT_LOG_INFO, AGENT_LOG_WARNING, AGENT_LOG_ERROR } agent_level_t;

typedef void (agent_log_fn) (void *arg, agent_level_t level, const char *message);

#endif
