/* bench_frames: reading and writing files of length-prefixed pre-encoded Batches. */
#include "bench_frames.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct _bench_frames_t {
    uint8_t *bytes;
    bench_frame_t *frames;
    size_t count;
    uint64_t records;
};

static void say (char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
say (char *err, size_t err_len, const char *format, ...)
{
    if (!err || !err_len)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (err, err_len, format, args);
    va_end (args);
}

static uint32_t
read_le32 (const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bench_frames_t *
bench_frames_load (const char *path, char *err, size_t err_len)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        say (err, err_len, "cannot open %s: %s", path, strerror (errno));
        return NULL;
    }
    bench_frames_t *self = calloc (1, sizeof *self);
    long size = -1;
    if (fseek (file, 0, SEEK_END) == 0)
        size = ftell (file);
    rewind (file);
    if (!self || size < 0) {
        say (err, err_len, "cannot size %s", path);
        goto fail;
    }
    self->bytes = malloc (size ? (size_t)size : 1);
    if (!self->bytes || fread (self->bytes, 1, (size_t)size, file) != (size_t)size) {
        say (err, err_len, "cannot read %s (%ld bytes)", path, size);
        goto fail;
    }
    size_t capacity = 0;
    for (size_t at = 0; at < (size_t)size;) {
        if ((size_t)size - at < 8) {
            say (err, err_len, "%s: truncated frame header at byte %zu", path, at);
            goto fail;
        }
        bench_frame_t frame = {self->bytes + at + 8, read_le32 (self->bytes + at),
                               read_le32 (self->bytes + at + 4)};
        if ((size_t)size - at - 8 < frame.size) {
            say (err, err_len, "%s: frame at byte %zu runs past the end", path, at);
            goto fail;
        }
        if (self->count == capacity) {
            capacity = capacity ? capacity * 2 : 1024;
            bench_frame_t *frames = realloc (self->frames, capacity * sizeof *frames);
            if (!frames) {
                say (err, err_len, "out of memory reading %s", path);
                goto fail;
            }
            self->frames = frames;
        }
        self->frames[self->count++] = frame;
        self->records += frame.records;
        at += 8 + (size_t)frame.size;
    }
    fclose (file);
    return self;
fail:
    fclose (file);
    bench_frames_destroy (&self);
    return NULL;
}

void
bench_frames_destroy (bench_frames_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->bytes);
    free ((*self_p)->frames);
    free (*self_p);
    *self_p = NULL;
}

size_t
bench_frames_count (const bench_frames_t *self)
{
    return self->count;
}

const bench_frame_t *
bench_frames_get (const bench_frames_t *self, size_t index)
{
    return &self->frames[index];
}

uint64_t
bench_frames_records (const bench_frames_t *self)
{
    return self->records;
}

int
bench_frames_append (FILE *file, const void *data, uint32_t size, uint32_t records)
{
    uint8_t header[8];
    for (int i = 0; i < 4; i++) {
        header[i] = (uint8_t)(size >> (8 * i));
        header[4 + i] = (uint8_t)(records >> (8 * i));
    }
    if (fwrite (header, 1, sizeof header, file) != sizeof header)
        return -1;
    if (size && fwrite (data, 1, size, file) != size)
        return -1;
    return 0;
}
