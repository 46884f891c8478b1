/* lmdb_file: checks an LMDB data file (data.mdb) against LMDB's own meta pages, with pread only,
 * before anything maps it. LMDB maps the whole file and trusts it: a truncated data.mdb makes any
 * process that touches a page past the end (the collector, `totalplace --db`, mdb_dump) die of
 * SIGBUS. This check turns that into an error a person can act on. */
#ifndef TOTALPLACE_LMDB_FILE_H
#define TOTALPLACE_LMDB_FILE_H

#include <stddef.h>
#include <stdint.h>

/* What lmdb_file_check found (0 is a usable file). */
#define LMDB_FILE_MISSING   -1 /* no such file */
#define LMDB_FILE_EMPTY     -2 /* zero bytes */
#define LMDB_FILE_NOT_LMDB  -3 /* its meta pages are not LMDB's: magic, data version, page size */
#define LMDB_FILE_TRUNCATED -4 /* shorter than its last committed transaction needs */
#define LMDB_FILE_IO        -5 /* it cannot be opened or read (permissions, I/O error) */

typedef struct {
    uint64_t file_bytes;   /* the file's size */
    uint64_t needed_bytes; /* (last page + 1) * page size of the newest meta page */
    uint32_t page_size;
    uint64_t txnid;           /* the newest committed transaction */
    uint64_t free_tail_pages; /* pages past the end of the file, every one on LMDB's free list */
} lmdb_file_info_t;

/* Reads both meta pages of the LMDB data file at path (LMDB 0.9's layout: magic 0xBEEFC0DE, data
 * version 1, page size) and takes the one with the larger transaction id, as mdb_env_open does.
 * The file must hold every page up to that meta's last page, except pages on its free list: LMDB
 * leaves a page it allocated and freed again in the same transaction unwritten, so a sound file
 * may end early by such pages, and only then is the free list read (page by page, bounded by the
 * file) to tell them from lost ones. Returns 0 with info filled (info may be NULL), or one of the
 * codes above with a message in err naming the file and what is wrong. Never modifies the file.
 * A writer committing meanwhile is tolerated: the newest meta is read before the size. */
int lmdb_file_check (const char *path, lmdb_file_info_t *info, char *err, size_t err_len);

#endif
