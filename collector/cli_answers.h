/* cli_answers: the totalplace CLI's subcommands that ask questions (neighbourhoods, totals,
 * pooling, record, stats), each answer built as a report from either source. */
#ifndef TOTALPLACE_CLI_ANSWERS_H
#define TOTALPLACE_CLI_ANSWERS_H

#include <stddef.h>

#include "cli_source.h"
#include "query_args.h"
#include "report.h"

/* Answers args->command from source into report. Returns 0, or a store error code (a negative
 * STORE_ERR_*) with a message in err. */
int cli_answers_run (const cli_source_t *source, const query_args_t *args, report_t *report,
                     char *err, size_t err_len);

#endif
