/* staged_file: mkstemp beside the final name (so that rename stays within one filesystem), then
 * rename, as a backup's folder is made whole before it takes its name. */
#include "staged_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err_text.h"

int
staged_file_open (staged_file_t *self, const char *final, char *err, size_t err_len)
{
    self->file = NULL;
    self->direct = false;
    struct stat st;
    if (stat (final, &st) == 0 && !S_ISREG (st.st_mode)) {
        if (S_ISDIR (st.st_mode))
            return err_text (err, err_len, -1, "%s is a folder: give a file name", final);
        self->direct = true;
        snprintf (self->path, sizeof self->path, "%s", final);
        snprintf (self->final, sizeof self->final, "%s", final);
        self->file = fopen (final, "w");
        if (!self->file)
            return err_text (err, err_len, -1, "cannot write %s: %s", final, strerror (errno));
        return 0;
    }
    if ((size_t)snprintf (self->final, sizeof self->final, "%s", final) >= sizeof self->final ||
        (size_t)snprintf (self->path, sizeof self->path, "%s.tmp-XXXXXX", final) >=
            sizeof self->path)
        return err_text (err, err_len, -1, "%.64s...: the path is too long", final);
    int fd = mkstemp (self->path);
    if (fd == -1)
        return err_text (err, err_len, -1, "cannot create %s: %s", self->path, strerror (errno));
    self->file = fdopen (fd, "w");
    if (!self->file) {
        err_text (err, err_len, -1, "cannot write %s: %s", self->path, strerror (errno));
        close (fd);
        unlink (self->path);
        return -1;
    }
    return 0;
}

int
staged_file_commit (staged_file_t *self, char *err, size_t err_len)
{
    errno = 0;
    if (self->direct) {
        int rc = fflush (self->file) || ferror (self->file) ? -1 : 0;
        if (rc)
            err_text (err, err_len, -1, "cannot write %s: %s", self->path,
                      errno ? strerror (errno) : "write error");
        if (fclose (self->file) && rc == 0)
            rc = err_text (err, err_len, -1, "cannot write %s: %s", self->path, strerror (errno));
        self->file = NULL;
        return rc;
    }
    int fd = fileno (self->file);
    if (fflush (self->file) || ferror (self->file) || fsync (fd) || fchmod (fd, 0644)) {
        err_text (err, err_len, -1, "cannot write %s: %s", self->path,
                  errno ? strerror (errno) : "write error");
        staged_file_abandon (self);
        return -1;
    }
    int closed = fclose (self->file);
    self->file = NULL;
    if (closed) {
        err_text (err, err_len, -1, "cannot write %s: %s", self->path, strerror (errno));
        unlink (self->path);
        return -1;
    }
    if (rename (self->path, self->final)) {
        err_text (err, err_len, -1, "cannot rename %s to %s: %s", self->path, self->final,
                  strerror (errno));
        unlink (self->path);
        return -1;
    }
    return 0;
}

void
staged_file_abandon (staged_file_t *self)
{
    if (!self->file)
        return;
    fclose (self->file);
    self->file = NULL;
    if (!self->direct) /* never the device or pipe that was written directly */
        unlink (self->path);
}
