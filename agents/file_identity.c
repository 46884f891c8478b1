/* file_identity: stat and a BLAKE2b-256 of the content (libsodium, already linked for CURVE). */
#include "file_identity.h"
#include "err_text.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static void
from_stat (const struct stat *st, file_identity_t *identity)
{
    memset (identity, 0, sizeof *identity);
    identity->size = (uint64_t)st->st_size;
    identity->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    identity->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    identity->dev = (uint64_t)st->st_dev;
    identity->ino = (uint64_t)st->st_ino;
}

int
file_identity_stat (const char *path, file_identity_t *identity, char *err, size_t err_len)
{
    struct stat st;
    if (stat (path, &st) != 0)
        return fail (err, err_len, "cannot look at %s: %s", path, strerror (errno));
    from_stat (&st, identity);
    return 0;
}

int
file_identity_hash (const char *path, file_identity_t *identity, char *err, size_t err_len)
{
    if (sodium_init () < 0)
        return fail (err, err_len, "cannot start libsodium to hash %s", path);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail (err, err_len, "cannot open %s: %s", path, strerror (errno));
    struct stat st;
    if (fstat (fd, &st) != 0) {
        int saved = errno;
        close (fd);
        return fail (err, err_len, "cannot look at %s: %s", path, strerror (saved));
    }
    from_stat (&st, identity);
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, FILE_IDENTITY_HASH_BYTES);
    unsigned char buffer[65536];
    for (;;) {
        ssize_t got = read (fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int saved = errno;
            close (fd);
            return fail (err, err_len, "cannot read %s: %s", path, strerror (saved));
        }
        if (got == 0)
            break;
        crypto_generichash_update (&state, buffer, (unsigned long long)got);
    }
    close (fd);
    crypto_generichash_final (&state, identity->hash, FILE_IDENTITY_HASH_BYTES);
    return 0;
}

bool
file_identity_same_stat (const file_identity_t *a, const file_identity_t *b)
{
    return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
           a->dev == b->dev && a->ino == b->ino;
}

bool
file_identity_equal (const file_identity_t *a, const file_identity_t *b)
{
    return file_identity_same_stat (a, b) && memcmp (a->hash, b->hash, sizeof a->hash) == 0;
}

void
file_identity_hex (const file_identity_t *identity, char hex[2 * FILE_IDENTITY_HASH_BYTES + 1])
{
    sodium_bin2hex (hex, 2 * FILE_IDENTITY_HASH_BYTES + 1, identity->hash,
                    FILE_IDENTITY_HASH_BYTES);
}
