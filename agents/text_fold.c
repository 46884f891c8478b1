/* text_fold: folding by hand, byte by byte, so that it never depends on the locale. */
#include "text_fold.h"

bool
text_fold_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char
lower (char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static char
upper (char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static void
put (char *out, size_t out_len, size_t at, char c)
{
    if (at + 1 < out_len)
        out[at] = c;
}

static size_t
finish (char *out, size_t out_len, size_t len)
{
    if (out_len)
        out[len < out_len ? len : out_len - 1] = '\0';
    return len;
}

size_t
text_fold (const char *text, char *out, size_t out_len)
{
    size_t len = 0;
    bool space_pending = false;
    for (const char *p = text; *p; p++) {
        if (text_fold_is_space (*p)) {
            space_pending = len > 0;
            continue;
        }
        if (space_pending)
            put (out, out_len, len++, ' ');
        space_pending = false;
        put (out, out_len, len++, lower (*p));
    }
    return finish (out, out_len, len);
}

size_t
text_fold_postcode (const char *text, char *out, size_t out_len)
{
    size_t len = 0;
    for (const char *p = text; *p; p++)
        if (!text_fold_is_space (*p))
            put (out, out_len, len++, upper (*p));
    return finish (out, out_len, len);
}

/* Steps past whitespace; returns true when some was there. */
static bool
skip_space (const char **p)
{
    bool any = false;
    while (text_fold_is_space (**p)) {
        (*p)++;
        any = true;
    }
    return any;
}

bool
text_fold_equal (const char *a, const char *b)
{
    skip_space (&a);
    skip_space (&b);
    for (;;) {
        bool space_a = skip_space (&a), space_b = skip_space (&b);
        /* Whitespace before the end does not count; inside, a run matches a run. */
        if (!*a || !*b)
            return !*a && !*b;
        if (space_a != space_b || lower (*a) != lower (*b))
            return false;
        a++;
        b++;
    }
}
