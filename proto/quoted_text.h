/* quoted_text: how a rejection reason quotes the text it refuses, escaped, bounded and on one line,
 * so that the agent's converters and the collector's record checks word their reasons the same
 * way and a log line or a rejects file can never be broken or forged by the text it quotes. */
#ifndef TOTALPLACE_QUOTED_TEXT_H
#define TOTALPLACE_QUOTED_TEXT_H

#include <stddef.h>

/* At most this many bytes are written between the quotes (escapes counted as written, "..." not
 * counted). */
#define QUOTED_TEXT_MAX 40
/* Room for any quotation: the two quotes, QUOTED_TEXT_MAX bytes, "..." and the NUL. */
#define QUOTED_TEXT_LEN (1 + QUOTED_TEXT_MAX + 3 + 1 + 1)

/* Writes text (NULL reads as "") into out as a quotation, e.g. "FARRAH\xB4S", and returns out.
 * - `"` is written \" and `\` is written \\;
 * - control bytes (0x00-0x1F, 0x7F) and every byte of invalid UTF-8 are written \xNN (two upper
 *   case hex digits), so the quotation shows exactly which bytes were there;
 * - C1 control characters (U+0080-U+009F) and the line and paragraph separators (U+2028, U+2029),
 *   which some viewers take as line breaks, are written \uNNNN;
 * - any other valid UTF-8 is kept as it is.
 * When the whole text does not fit in QUOTED_TEXT_MAX bytes, it is cut before the first character
 * or escape that does not fit (never inside one) and "..." follows before the closing quote. The
 * result is always one line of valid UTF-8. out_len should be QUOTED_TEXT_LEN; a smaller buffer
 * gets a shorter quotation (an empty string below 6 bytes). */
const char *quoted_text (const char *text, char *out, size_t out_len);

/* As quoted_text, with at most max bytes between the quotes (max <= QUOTED_TEXT_MAX), for reasons
 * that quote two texts in a bounded line. */
const char *quoted_text_cut (const char *text, size_t max, char *out, size_t out_len);

/* Appends to a reason being built in out (out_len bytes, *used of them filled so far), keeping it
 * NUL-terminated and bounded: what does not fit is left out. Reasons that name several things
 * ("no neighbourhood: ...; ...") are built this way. */
void quoted_text_append (char *out, size_t out_len, size_t *used, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

/* Fills err with `"TEXT": why` (TEXT quoted by quoted_text, why from format); returns -1. */
int quoted_text_refuse (const char *text, char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

#endif
