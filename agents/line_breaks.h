/* line_breaks: counting line breaks inside CSV cells, so that readers built on libcsv can name
 * the physical line where each row starts. */
#ifndef TOTALPLACE_LINE_BREAKS_H
#define TOTALPLACE_LINE_BREAKS_H

#include <stdbool.h>
#include <stddef.h>

/* Counts the line breaks in cell text (CRLF, LF and a lone CR each count once). *prev_cr carries a
 * CR at the end of one piece over to the next piece of the same cell. */
size_t line_breaks_count (const void *text, size_t len, bool *prev_cr);

#endif
