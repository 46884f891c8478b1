/* text_encoding: the byte encodings spending exports arrive in (UTF-8, Windows-1252, ISO-8859-1),
 * told apart over a whole file and converted to UTF-8 cell by cell, so that no payment is refused
 * for the bytes of its text: at worst a bad byte becomes U+FFFD, and the caller is told so. */
#ifndef TOTALPLACE_TEXT_ENCODING_H
#define TOTALPLACE_TEXT_ENCODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TEXT_ENCODING_AUTO,         /* UTF-8 when the whole file is valid UTF-8, else Windows-1252 */
    TEXT_ENCODING_UTF8,         /* invalid sequences become U+FFFD */
    TEXT_ENCODING_WINDOWS_1252, /* its undefined 0x81 0x8D 0x8F 0x90 0x9D become U+FFFD */
    TEXT_ENCODING_ISO_8859_1,   /* the C1 control bytes 0x80-0x9F become U+FFFD */
} text_encoding_t;

/* The names text_encoding_parse accepts, for messages that list them. */
#define TEXT_ENCODING_NAMES "utf-8, windows-1252, iso-8859-1 or auto"

/* Reads an encoding's name, ignoring ASCII case: "auto"; "utf-8" or "utf8"; "windows-1252" or
 * "cp1252"; "iso-8859-1", "latin1" or "latin-1". Returns 0, or -1 (and *out unchanged) for any
 * other name or NULL. */
int text_encoding_parse (const char *name, text_encoding_t *out);

/* The encoding's canonical name ("auto", "utf-8", "windows-1252", "iso-8859-1"), which
 * text_encoding_parse reads back; "unknown" for a value outside the enum. */
const char *text_encoding_name (text_encoding_t encoding);

/* ---------------------------------------------------------------- detection */

/* Checks whether a whole file is valid UTF-8, reading it chunk by chunk: a character split between
 * two chunks is joined up. A UTF-8 byte order mark is valid UTF-8 like any other character. Lives
 * on the caller's stack: text_encoding_scan_init, text_encoding_scan per chunk, then
 * text_encoding_scan_end. The fields below are the result; the rest is private. */
typedef struct {
    bool valid;             /* false from the first invalid byte on (then scanning may stop) */
    uint64_t bad_offset;    /* when !valid: offset in the file, from 0, of the first byte of the
                             * first invalid sequence (a byte that starts no character, or a
                             * character cut short, at its first byte) */
    unsigned char bad_byte; /* when !valid: that byte, for "byte 0xA0 at offset 1234" */
    /* private */
    uint64_t offset;          /* of the next chunk */
    unsigned char pending[3]; /* the start of a character the last chunk cut */
    size_t n_pending;
} text_encoding_scan_t;

/* Starts a scan at offset 0, valid so far. */
void text_encoding_scan_init (text_encoding_scan_t *scan);

/* Scans the next len bytes of the file. Returns scan->valid: false as soon as the file is known
 * not to be UTF-8 (later calls change nothing and return false). */
bool text_encoding_scan (text_encoding_scan_t *scan, const void *data, size_t len);

/* Ends the scan at the end of the file: a character still incomplete makes it invalid. Returns
 * scan->valid. */
bool text_encoding_scan_end (text_encoding_scan_t *scan);

/* The encoding to read a file with: for TEXT_ENCODING_AUTO, UTF-8 when the ended scan found the
 * file valid and Windows-1252 when not; any other setting as it is (scan is not read, may be
 * NULL). */
text_encoding_t text_encoding_resolve (text_encoding_t setting, const text_encoding_scan_t *scan);

/* ---------------------------------------------------------------- conversion */

typedef struct _text_encoding_converter_t text_encoding_converter_t;

/* A converter from encoding (not TEXT_ENCODING_AUTO: resolve it first) to UTF-8, for one read:
 * it holds the mapping (built with iconv for the single-byte encodings) and a scratch buffer
 * that grows to the largest cell converted, so the steady state allocates nothing. Returns NULL
 * with a reason in err (AUTO given, iconv cannot convert from the encoding, out of memory). */
text_encoding_converter_t *text_encoding_converter_new (text_encoding_t encoding, char *err,
                                                        size_t err_len);

/* Frees the converter and sets *self_p to NULL; safe on NULL and twice. */
void text_encoding_converter_destroy (text_encoding_converter_t **self_p);

/* Converts the len bytes at text (any bytes, NUL included) to UTF-8 and returns it, with its
 * length in *out_len and in *replaced the number of U+FFFD written in place of bytes that could
 * not be read: one per byte in the single-byte encodings, one per maximal invalid subpart in
 * UTF-8 (wire_utf8_char). The result is valid UTF-8, and no control character is added: every
 * byte below 0x80 (NUL included) comes out as it went in, and no C1 control (U+0080-U+009F)
 * comes out that was not valid UTF-8 in UTF-8 mode.
 * When the input is already its own conversion (valid UTF-8 in UTF-8 mode; only ASCII in the
 * single-byte modes), text itself is returned and nothing is copied. Otherwise the result is in
 * the converter's scratch, NUL-terminated, and valid until the next call or destroy. So the
 * result is NUL-terminated whenever text[len] is NUL. Returns NULL only when memory runs out
 * (the output can be three times the input). */
const char *text_encoding_convert (text_encoding_converter_t *self, const char *text, size_t len,
                                   size_t *out_len, size_t *replaced);

#endif
