/* line_breaks: CRLF-aware line-break counting for CSV cell text. */
#include "line_breaks.h"

#include <string.h>

size_t
line_breaks_count (const void *text, size_t len, bool *prev_cr)
{
    const unsigned char *s = text;
    /* Almost every cell has no line break; memchr finds that out far faster than the loop. */
    if (len == 0 || (!memchr (s, '\n', len) && !memchr (s, '\r', len))) {
        *prev_cr = false;
        return 0;
    }
    size_t breaks = 0;
    bool cr = *prev_cr;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r')
            breaks++;
        else if (s[i] == '\n' && !cr)
            breaks++;
        cr = s[i] == '\r';
    }
    *prev_cr = cr;
    return breaks;
}
