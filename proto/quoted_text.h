/* quoted_text: how a rejection reason quotes the text it refuses, bounded and on one line, so
 * that every converter of the agent and the collector's store word their reasons the same way. */
#ifndef TOTALPLACE_QUOTED_TEXT_H
#define TOTALPLACE_QUOTED_TEXT_H

#include <stddef.h>

/* At most this many bytes of the text are quoted; QUOTED_TEXT_LEN holds any quotation. */
#define QUOTED_TEXT_MAX 40
#define QUOTED_TEXT_LEN (QUOTED_TEXT_MAX + 8)

/* Writes text as "TEXT" into out, cut at QUOTED_TEXT_MAX bytes on a UTF-8 boundary (then "..."
 * follows), with control bytes shown as '?'. Returns out. */
const char *quoted_text (const char *text, char *out, size_t out_len);

/* As quoted_text, cut at max bytes instead (max <= QUOTED_TEXT_MAX), for reasons that quote two
 * texts in a bounded line. */
const char *quoted_text_cut (const char *text, size_t max, char *out, size_t out_len);

/* Fills err with `"TEXT": why` (why from format) and returns -1. */
int quoted_text_refuse (const char *text, char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

#endif
