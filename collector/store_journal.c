/* store_journal: groups appended and synced, read back in order after a crash. */
#include "err_text.h"
#include "store_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire.h"

/* The file: a header (magic, 4 bytes unused, 8 bytes that only this store's key makes), then
 * entries. An entry: magic, payload length, checksum (SipHash-2-4 under the store's key of what
 * follows it: the sequence number and the payload), sequence number, all little-endian, then the
 * payload: the number of batches; for each, its packed length and bytes, then how many of its
 * records the caller refused and their indexes (32-bit words). */
static const unsigned char FILE_MAGIC[4] = {'T', 'P', 'J', '1'};
static const unsigned char ENTRY_MAGIC[4] = {'T', 'P', 'J', 'E'};
#define HEADER_BYTES 16
#define ENTRY_HEAD   24
#define MAX_ENTRY    ((uint64_t)1 << 31) /* far above any group (groups are capped in records) */

struct _store_journal_t {
    int fd;
    char *path;
    unsigned char key[16];
    uint64_t end; /* where the next entry goes */
    unsigned char *buffer;
    size_t buffer_size;
};

#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static void
put_le (unsigned char *out, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (unsigned char)(value >> (8 * i));
}

static uint64_t
get_le (const unsigned char *in, int bytes)
{
    uint64_t value = 0;
    for (int i = bytes - 1; i >= 0; i--)
        value = value << 8 | in[i];
    return value;
}

static uint64_t
sum_of (const store_journal_t *self, const unsigned char *bytes, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash (out, bytes, len, self->key);
    return get_le (out, 8);
}

static int
reserve (store_journal_t *self, size_t size)
{
    if (size <= self->buffer_size)
        return 0;
    size_t grown = self->buffer_size ? self->buffer_size : (size_t)1 << 20;
    while (grown < size)
        grown *= 2;
    unsigned char *buffer = realloc (self->buffer, grown);
    if (!buffer)
        return -1;
    self->buffer = buffer;
    self->buffer_size = grown;
    return 0;
}

static int
write_all (int fd, const unsigned char *bytes, size_t len, uint64_t offset)
{
    while (len) {
        ssize_t wrote = pwrite (fd, bytes, len, (off_t)offset);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            return -1;
        bytes += wrote;
        len -= (size_t)wrote;
        offset += (uint64_t)wrote;
    }
    return 0;
}

static int
read_all (int fd, unsigned char *bytes, size_t len, uint64_t offset)
{
    while (len) {
        ssize_t got = pread (fd, bytes, len, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        bytes += got;
        len -= (size_t)got;
        offset += (uint64_t)got;
    }
    return 0;
}

/* The header's 8 bytes that tell this store's journal from another's. */
static void
header_of (const store_journal_t *self, unsigned char header[HEADER_BYTES])
{
    static const char TAG[] = "totalplace journal";
    memset (header, 0, HEADER_BYTES);
    memcpy (header, FILE_MAGIC, sizeof FILE_MAGIC);
    put_le (header + 8, sum_of (self, (const unsigned char *)TAG, sizeof TAG - 1), 8);
}

void
store_journal_close (store_journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_journal_t *self = *self_p;
    if (self->fd >= 0)
        close (self->fd);
    free (self->path);
    free (self->buffer);
    free (self);
    *self_p = NULL;
}

store_journal_t *
store_journal_open (const char *dir, const unsigned char key[16], char *err, size_t err_len)
{
    store_journal_t *self = calloc (1, sizeof *self);
    char path[PATH_MAX];
    if (!self || (size_t)snprintf (path, sizeof path, "%s/journal", dir) >= sizeof path ||
        !(self->path = strdup (path))) {
        fail (err, err_len, "cannot open the journal in %s: out of memory or path too long", dir);
        free (self);
        return NULL;
    }
    memcpy (self->key, key, sizeof self->key);
    self->fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    unsigned char header[HEADER_BYTES], expected[HEADER_BYTES];
    header_of (self, expected);
    if (self->fd < 0 || fstat (self->fd, &st) != 0) {
        fail (err, err_len, "cannot open the journal %s: %s", path, strerror (errno));
        goto err;
    }
    if (st.st_size < HEADER_BYTES) {
        /* New (or cut before its header was whole: nothing in it was ever acknowledged). */
        if (ftruncate (self->fd, 0) != 0 || write_all (self->fd, expected, HEADER_BYTES, 0) ||
            fdatasync (self->fd) != 0) {
            fail (err, err_len, "cannot create the journal %s: %s", path, strerror (errno));
            goto err;
        }
        int folder = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (folder >= 0) {
            fsync (folder);
            close (folder);
        }
    }
    else if (read_all (self->fd, header, HEADER_BYTES, 0) ||
             memcmp (header, expected, HEADER_BYTES) != 0) {
        fail (err, err_len,
              "the journal %s is not this store's (another store's, or damaged): the store was "
              "not opened. If data.mdb was replaced (a restore), move the journal away: the "
              "agents send again what it held (docs/operations.md)",
              path);
        goto err;
    }
    self->end = st.st_size < HEADER_BYTES ? HEADER_BYTES : (uint64_t)st.st_size;
    return self;
err:
    store_journal_close (&self);
    return NULL;
}

uint64_t
store_journal_bytes (const store_journal_t *self)
{
    return self->end - HEADER_BYTES;
}

int
store_journal_append (store_journal_t *self, uint64_t seq, Totalplace__Batch *const *batches,
                      size_t batch_count, const bool *refused, char *err, size_t err_len)
{
    size_t size = ENTRY_HEAD + 4, records = 0;
    for (size_t b = 0; b < batch_count; b++) {
        size += 8 + protobuf_c_message_get_packed_size (&batches[b]->base);
        for (size_t i = 0; i < batches[b]->n_records; i++, records++)
            size += refused && refused[records] ? 4 : 0;
    }
    if (size - ENTRY_HEAD > MAX_ENTRY || reserve (self, size))
        return fail (err, err_len, "a group of %zu bytes does not fit the journal", size);
    unsigned char *p = self->buffer + ENTRY_HEAD;
    put_le (p, batch_count, 4);
    p += 4;
    records = 0;
    for (size_t b = 0; b < batch_count; b++) {
        size_t packed = protobuf_c_message_pack (&batches[b]->base, p + 4);
        put_le (p, packed, 4);
        p += 4 + packed;
        unsigned char *count = p;
        uint32_t refused_count = 0;
        p += 4;
        for (size_t i = 0; i < batches[b]->n_records; i++, records++)
            if (refused && refused[records]) {
                put_le (p, i, 4);
                p += 4;
                refused_count++;
            }
        put_le (count, refused_count, 4);
    }
    size = (size_t)(p - self->buffer);
    memcpy (self->buffer, ENTRY_MAGIC, 4);
    put_le (self->buffer + 4, size - ENTRY_HEAD, 4);
    put_le (self->buffer + 16, seq, 8);
    put_le (self->buffer + 8, sum_of (self, self->buffer + 16, size - 16), 8);
    if (write_all (self->fd, self->buffer, size, self->end) || fdatasync (self->fd) != 0)
        return fail (err, err_len, "cannot write the journal %s: %s", self->path, strerror (errno));
    self->end += size;
    return 0;
}

int
store_journal_reset (store_journal_t *self, char *err, size_t err_len)
{
    /* Not synced: should a crash undo it, the entries left are of groups the store's last commit
     * holds, which reading skips; the next append's fdatasync makes the new length durable. */
    if (ftruncate (self->fd, HEADER_BYTES) != 0)
        return fail (err, err_len, "cannot empty the journal %s: %s", self->path, strerror (errno));
    self->end = HEADER_BYTES;
    return 0;
}

/* True when every byte from offset to the end of the file is zero: a file whose length reached
 * the disk before its bytes did. */
static bool
zeros_to_end (store_journal_t *self, uint64_t offset, uint64_t end)
{
    unsigned char chunk[4096];
    while (offset < end) {
        size_t len = end - offset < sizeof chunk ? (size_t)(end - offset) : sizeof chunk;
        if (read_all (self->fd, chunk, len, offset))
            return false;
        for (size_t i = 0; i < len; i++)
            if (chunk[i])
                return false;
        offset += len;
    }
    return true;
}

/* Decodes one entry's payload and hands it to fn. */
static int
deliver (store_journal_t *self, uint64_t seq, const unsigned char *payload, size_t len,
         store_journal_fn *fn, void *arg, char *err, size_t err_len)
{
    const unsigned char *p = payload, *end = payload + len;
    if (len < 4)
        return fail (err, err_len, "an entry of the journal %s is too short", self->path);
    size_t count = (size_t)get_le (p, 4), records = 0;
    p += 4;
    Totalplace__Batch **batches = calloc (count ? count : 1, sizeof *batches);
    bool *refused = NULL;
    int rc = batches ? 0 : fail (err, err_len, "out of memory reading the journal");
    for (size_t b = 0; rc == 0 && b < count; b++) {
        size_t packed = end - p >= 4 ? (size_t)get_le (p, 4) : SIZE_MAX;
        if (packed > (size_t)(end - p) - 4 ||
            !(batches[b] = (Totalplace__Batch *)wire_decode (&totalplace__batch__descriptor, p + 4,
                                                             packed, err, err_len))) {
            fail (err, err_len, "entry %llu of the journal %s does not decode",
                  (unsigned long long)seq, self->path);
            rc = -2;
            break;
        }
        p += 4 + packed;
        bool *grown = realloc (refused, (records + batches[b]->n_records + 1) * sizeof *refused);
        if (!grown) {
            rc = fail (err, err_len, "out of memory reading the journal");
            break;
        }
        refused = grown;
        memset (refused + records, 0, (batches[b]->n_records + 1) * sizeof *refused);
        size_t refused_count = end - p >= 4 ? (size_t)get_le (p, 4) : SIZE_MAX;
        p += 4;
        if (refused_count > (size_t)(end - p) / 4) {
            fail (err, err_len, "entry %llu of the journal %s does not decode",
                  (unsigned long long)seq, self->path);
            rc = -2;
            break;
        }
        for (size_t r = 0; r < refused_count; r++, p += 4) {
            size_t index = (size_t)get_le (p, 4);
            if (index < batches[b]->n_records)
                refused[records + index] = true;
        }
        records += batches[b]->n_records;
    }
    if (rc == 0 && p != end) {
        fail (err, err_len, "entry %llu of the journal %s has bytes left over",
              (unsigned long long)seq, self->path);
        rc = -2;
    }
    if (rc == 0)
        rc = fn (arg, seq, batches, count, refused);
    for (size_t b = 0; batches && b < count; b++)
        if (batches[b])
            protobuf_c_message_free_unpacked (&batches[b]->base, NULL);
    free (batches);
    free (refused);
    return rc;
}

int
store_journal_read (store_journal_t *self, store_journal_fn *fn, void *arg, char *err,
                    size_t err_len)
{
    struct stat st;
    if (fstat (self->fd, &st) != 0)
        return fail (err, err_len, "cannot read the journal %s: %s", self->path, strerror (errno));
    uint64_t size = (uint64_t)st.st_size, offset = HEADER_BYTES;
    while (offset < size) {
        unsigned char head[ENTRY_HEAD] = {0};
        uint64_t len = 0;
        bool sound = offset + ENTRY_HEAD <= size &&
                     read_all (self->fd, head, ENTRY_HEAD, offset) == 0 &&
                     memcmp (head, ENTRY_MAGIC, 4) == 0 &&
                     (len = get_le (head + 4, 4)) <= size - offset - ENTRY_HEAD;
        if (sound) {
            if (reserve (self, ENTRY_HEAD + (size_t)len))
                return fail (err, err_len, "out of memory reading the journal %s", self->path);
            memcpy (self->buffer, head, ENTRY_HEAD);
            sound = read_all (self->fd, self->buffer + ENTRY_HEAD, (size_t)len,
                              offset + ENTRY_HEAD) == 0 &&
                    get_le (head + 8, 8) ==
                        sum_of (self, self->buffer + 16, (size_t)len + ENTRY_HEAD - 16);
        }
        if (!sound) {
            /* The write a crash cut: it reaches the end of the file, or left zeros. Such an
             * entry was never synced, so never acknowledged. */
            bool last = offset + ENTRY_HEAD > size || memcmp (head, ENTRY_MAGIC, 4) != 0
                            ? zeros_to_end (self, offset, size) || offset + ENTRY_HEAD > size
                            : offset + ENTRY_HEAD + get_le (head + 4, 4) >= size;
            if (last)
                break;
            fail (err, err_len,
                  "the journal %s is damaged at byte %llu (more entries follow): the store was "
                  "not opened; move the journal away and restore the store from a backup "
                  "(docs/operations.md)",
                  self->path, (unsigned long long)offset);
            return -2;
        }
        uint64_t seq = get_le (self->buffer + 16, 8);
        int rc = deliver (self, seq, self->buffer + ENTRY_HEAD, (size_t)len, fn, arg, err, err_len);
        if (rc)
            return rc;
        offset += ENTRY_HEAD + len;
    }
    self->end = offset;
    return 0;
}
