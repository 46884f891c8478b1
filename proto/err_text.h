/* err_text: how a module hands its caller a message a person can act on, as Redis's anet does
 * with anetSetError: printf into the caller's buffer, bounded, and the failure code returned, so
 * that a failure is one statement. Every module's `fail` is this. */
#ifndef TOTALPLACE_ERR_TEXT_H
#define TOTALPLACE_ERR_TEXT_H

#include <stddef.h>

/* Writes the message into err (nothing when err is NULL or err_len is 0; cut to fit, always
 * NUL-terminated) and returns code. */
int err_text (char *err, size_t err_len, int code, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

#endif
