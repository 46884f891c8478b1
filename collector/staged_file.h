/* staged_file: a file that appears whole or not at all. It is written under a temporary name
 * beside its final one and renamed over it only once written, synced and closed, so a reader (or
 * a person) never finds half an export or half a report under the final name. A final name that
 * is not a regular file (/dev/stdout, /dev/null, a FIFO) is written directly: renaming over it
 * would replace the device or pipe with a plain file. */
#ifndef TOTALPLACE_STAGED_FILE_H
#define TOTALPLACE_STAGED_FILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    char path[PATH_MAX];  /* the temporary name: FINAL.tmp-XXXXXX */
    char final[PATH_MAX]; /* the name it gets when committed */
    FILE *file;           /* write here; NULL once committed or abandoned */
    bool direct;          /* final is not a regular file: written in place, never renamed */
} staged_file_t;

/* Creates the temporary file beside final (or opens final itself when it exists and is not a
 * regular file). Returns 0, or -1 with a message naming the path. */
int staged_file_open (staged_file_t *self, const char *final, char *err, size_t err_len);

/* Flushes, syncs, makes it 0644 (as a plain new file), closes and renames it to its final name.
 * On failure the temporary file is removed and nothing is at the final name that was not there
 * before. Returns 0, or -1 with a message. */
int staged_file_commit (staged_file_t *self, char *err, size_t err_len);

/* Closes and removes the temporary file (after a failure); safe when already committed. */
void staged_file_abandon (staged_file_t *self);

#endif
