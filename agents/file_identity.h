/* file_identity: what makes a dropped file the same file a little later: its size, modification
 * and change times, device and inode, and a hash of its content. The agent records it when it takes
 * a file, so that a file it could not move out of the inbox is never taken twice, while anything a
 * person does to the file (replacing it, copying it in again, moving it out and back, touching
 * it) makes it a new drop. */
#ifndef TOTALPLACE_FILE_IDENTITY_H
#define TOTALPLACE_FILE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILE_IDENTITY_HASH_BYTES 32 /* BLAKE2b-256 */

typedef struct {
    uint64_t size;
    int64_t mtime_ns; /* modification time, ns since the epoch */
    int64_t ctime_ns; /* change time: a rename, chmod or touch changes it, reading does not */
    uint64_t dev, ino;
    uint8_t hash[FILE_IDENTITY_HASH_BYTES]; /* all zero until file_identity_hash */
} file_identity_t;

/* Fills the stat part of *identity from path (the hash is zeroed). Returns 0, or -1 with err
 * naming the path and the cause. */
int file_identity_stat (const char *path, file_identity_t *identity, char *err, size_t err_len);

/* Reads the whole file and puts the BLAKE2b-256 of its content in identity->hash, filling the stat
 * part from the open file as well. Returns 0, or -1 with err. */
int file_identity_hash (const char *path, file_identity_t *identity, char *err, size_t err_len);

/* True when a and b have the same size, times, device and inode (the hash is not compared). */
bool file_identity_same_stat (const file_identity_t *a, const file_identity_t *b);

/* True when a and b are the same in every part, hash included. */
bool file_identity_equal (const file_identity_t *a, const file_identity_t *b);

/* The hash as lowercase hex (2 * FILE_IDENTITY_HASH_BYTES + 1 bytes with the NUL). */
void file_identity_hex (const file_identity_t *identity,
                        char hex[2 * FILE_IDENTITY_HASH_BYTES + 1]);

#endif
