/* err_text: one vsnprintf behind every module's failure messages. */
#include "err_text.h"

#include <stdarg.h>
#include <stdio.h>

int
err_text (char *err, size_t err_len, int code, const char *format, ...)
{
    if (err && err_len) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, err_len, format, args);
        va_end (args);
    }
    return code;
}
