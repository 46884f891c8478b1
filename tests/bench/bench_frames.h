/* bench_frames: files of pre-encoded Batches that tp_gen writes and the bench tools replay, each
 * frame stored as a little-endian uint32 size, a uint32 record count, then the encoded bytes. */
#ifndef TOTALPLACE_BENCH_FRAMES_H
#define TOTALPLACE_BENCH_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const uint8_t *data; /* the encoded Batch */
    uint32_t size;
    uint32_t records; /* records in the batch, so that replayers count without decoding */
} bench_frame_t;

typedef struct _bench_frames_t bench_frames_t;

/* Reads a whole frame file into memory. Returns NULL with a message in err when the file cannot
 * be read or a frame header runs past the end of the file. */
bench_frames_t *bench_frames_load (const char *path, char *err, size_t err_len);

/* Frees the frames and sets *self_p to NULL; safe on NULL. */
void bench_frames_destroy (bench_frames_t **self_p);

/* Frames in the file. */
size_t bench_frames_count (const bench_frames_t *self);

/* Frame index (< bench_frames_count); valid until bench_frames_destroy. */
const bench_frame_t *bench_frames_get (const bench_frames_t *self, size_t index);

/* Records in all frames together. */
uint64_t bench_frames_records (const bench_frames_t *self);

/* Appends one frame to an open file. Returns 0, or -1 when the write fails (errno says why). */
int bench_frames_append (FILE *file, const void *data, uint32_t size, uint32_t records);

#endif
