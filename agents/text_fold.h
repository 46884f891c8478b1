/* text_fold: the folded forms in which the agent compares text that people type differently: CSV
 * headers, lookup values (cost centres, units, wards), postcodes and the content behind derived
 * record ids. One definition, so that a header, a lookup key and an id never disagree. */
#ifndef TOTALPLACE_TEXT_FOLD_H
#define TOTALPLACE_TEXT_FOLD_H

#include <stdbool.h>
#include <stddef.h>

/* Whitespace for folding: space, tab, CR and LF. */
bool text_fold_is_space (char c);

/* Writes the folded form of text into out: leading and trailing whitespace dropped, each run of
 * whitespace inside made one space, ASCII letters lower-cased, every other byte (UTF-8 included)
 * kept. Writes at most out_len - 1 bytes and a NUL (nothing when out_len is 0). Returns the length
 * of the whole folded text, as snprintf does: a result >= out_len means out was too small. */
size_t text_fold (const char *text, char *out, size_t out_len);

/* The same for a postcode: every whitespace byte dropped and ASCII letters upper-cased, so that
 * "s70 2tn", "S70  2TN" and "S702TN" all give "S702TN". Returns as text_fold. */
size_t text_fold_postcode (const char *text, char *out, size_t out_len);

/* True when a and b have the same folded form (text_fold), without any buffer. */
bool text_fold_equal (const char *a, const char *b);

#endif
