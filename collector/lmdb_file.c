/* lmdb_file: LMDB 0.9's meta pages and free list read with pread, to vouch for data.mdb before
 * mdb_env_open maps it. */
#include "err_text.h"
#include "lmdb_file.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The layout below is LMDB 0.9's (liblmdb/mdb.c: MDB_page, MDB_meta, MDB_db, MDB_node, with
 * pgno_t and txnid_t size_t): read from its source, and tested against files LMDB wrote
 * (tests/unit/test_lmdb_file.c). Another major or minor version must be checked again. */
#if MDB_VERSION_MAJOR != 0 || MDB_VERSION_MINOR != 9
#error "lmdb_file mirrors LMDB 0.9's file layout: check it against this LMDB's mdb.c"
#endif

#define LMDB_MAGIC        0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u
#define P_BRANCH          0x01
#define P_LEAF            0x02
#define P_OVERFLOW        0x04
#define P_META            0x08
#define F_BIGDATA         0x01 /* a leaf node's data lives in overflow pages */
#define P_INVALID         ((size_t)-1)
#define MIN_PAGE_SIZE     256u
#define MAX_PAGE_SIZE     65536u
#define MAX_TREE_DEPTH    32
/* A shortfall this large (512 GiB of 4 KiB pages) is not a free tail: do not even look. */
#define MAX_MISSING_PAGES ((uint64_t)1 << 27)

typedef struct { /* MDB_page's header; the node offsets (mp_ptrs) follow it */
    union {
        size_t pgno;
        void *next;
    } p;
    uint16_t pad;
    uint16_t flags;
    union {
        struct {
            uint16_t lower, upper;
        } bounds;
        uint32_t pages; /* overflow pages */
    } b;
} page_header_t;

typedef struct {  /* MDB_db */
    uint32_t pad; /* in the free database's record: the page size */
    uint16_t flags, depth;
    size_t branch_pages, leaf_pages, overflow_pages, entries, root;
} db_record_t;

typedef struct { /* MDB_meta, after the page header of pages 0 and 1 */
    uint32_t magic, version;
    void *address;
    size_t map_size;
    db_record_t dbs[2]; /* the free database, the main database */
    size_t last_page;
    size_t txnid;
} meta_t;

typedef struct { /* MDB_node's header; the key, then the data, follow it */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint16_t lo, hi;
#else
    uint16_t hi, lo;
#endif
    uint16_t flags, key_size;
} node_header_t;

#define HEADER_BYTES sizeof (page_header_t)

#define fail(err, err_len, code, ...) err_text (err, err_len, code, __VA_ARGS__)

/* ---------------------------------------------------------------- meta pages */

/* Reads the meta page at offset. Returns 0 when it is LMDB's, 1 when the file ends inside it,
 * 2 when it is not a meta page, or -errno. bytes_read says how much was there. */
static int
read_meta (int fd, off_t offset, meta_t *meta, size_t *bytes_read)
{
    unsigned char buffer[HEADER_BYTES + sizeof (meta_t)];
    memset (meta, 0, sizeof *meta);
    *bytes_read = 0;
    ssize_t n = pread (fd, buffer, sizeof buffer, offset);
    if (n < 0)
        return -errno;
    *bytes_read = (size_t)n;
    page_header_t header = {0};
    if ((size_t)n >= HEADER_BYTES)
        memcpy (&header, buffer, HEADER_BYTES);
    memcpy (meta, buffer + HEADER_BYTES, (size_t)n > HEADER_BYTES ? (size_t)n - HEADER_BYTES : 0);
    bool looks_like_meta = (size_t)n >= HEADER_BYTES + sizeof meta->magic &&
                           (header.flags & P_META) && meta->magic == LMDB_MAGIC;
    if ((size_t)n < sizeof buffer)
        return looks_like_meta ? 1 : 2;
    uint32_t page_size = meta->dbs[0].pad;
    if (!looks_like_meta || meta->version != LMDB_DATA_VERSION || page_size < MIN_PAGE_SIZE ||
        page_size > MAX_PAGE_SIZE || (page_size & (page_size - 1)) || meta->last_page < 1)
        return 2;
    return 0;
}

/* Reads both meta pages and keeps the newer, as mdb_env_open does. */
static int
read_newest_meta (int fd, const char *path, meta_t *newest, char *err, size_t err_len)
{
    meta_t metas[2] = {{0}};
    size_t bytes = 0;
    int rc = read_meta (fd, 0, &metas[0], &bytes);
    if (rc == 0) {
        off_t second = (off_t)metas[0].dbs[0].pad;
        rc = read_meta (fd, second, &metas[1], &bytes);
        if (rc == 1 || (rc == 2 && bytes < HEADER_BYTES + sizeof (meta_t)))
            return fail (err, err_len, LMDB_FILE_TRUNCATED,
                         "%s is truncated: it ends inside LMDB's second meta page (it holds %lld "
                         "bytes; the meta pages alone take %u)",
                         path, (long long)second + (long long)bytes, 2 * metas[0].dbs[0].pad);
        if (rc == 2 || (rc == 0 && metas[1].dbs[0].pad != metas[0].dbs[0].pad))
            return fail (err, err_len, LMDB_FILE_NOT_LMDB,
                         "%s is not a sound LMDB file: its second meta page (at byte %lld) is "
                         "not LMDB's",
                         path, (long long)second);
    }
    else if (rc == 1)
        return fail (err, err_len, LMDB_FILE_TRUNCATED,
                     "%s is truncated: it ends inside LMDB's first meta page (it holds %zu "
                     "bytes)",
                     path, bytes);
    else if (rc == 2)
        return bytes == 0 ? fail (err, err_len, LMDB_FILE_EMPTY, "%s is empty (0 bytes)", path)
                          : fail (err, err_len, LMDB_FILE_NOT_LMDB,
                                  "%s is not an LMDB file: its first page is not an LMDB meta "
                                  "page (magic 0x%08X, data version %u, a page size)",
                                  path, LMDB_MAGIC, LMDB_DATA_VERSION);
    if (rc < 0)
        return fail (err, err_len, LMDB_FILE_IO, "cannot read %s: %s", path, strerror (-rc));
    *newest = metas[1].txnid > metas[0].txnid ? metas[1] : metas[0];
    return 0;
}

/* ---------------------------------------------------------------- the free list */

/* What a walk of the free database needs; pages at or past first_missing are not in the file. */
typedef struct {
    int fd;
    uint32_t page_size;
    uint64_t first_missing, last_page;
    uint8_t *missing_free; /* one bit per missing page, set when the free list holds it */
    uint64_t marked;
    uint64_t pages_read; /* bounded by the file, so that a looping tree cannot spin */
    char *reason;
    size_t reason_len;
} walk_t;

static int walk_fail (walk_t *walk, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
walk_fail (walk_t *walk, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (walk->reason, walk->reason_len, format, args);
    va_end (args);
    return -1;
}

/* Reads page pgno whole, checking it is in the file and says it is that page. Returns it (free
 * it) with its header in *header, or NULL with the reason set. */
static unsigned char *
read_page (walk_t *walk, uint64_t pgno, page_header_t *header)
{
    if (pgno >= walk->first_missing) {
        walk_fail (walk, "page %llu of the free list lies past the end", (unsigned long long)pgno);
        return NULL;
    }
    if (++walk->pages_read > walk->first_missing) {
        walk_fail (walk, "the free list loops");
        return NULL;
    }
    unsigned char *page = malloc (walk->page_size);
    if (!page) {
        walk_fail (walk, "out of memory");
        return NULL;
    }
    ssize_t n = pread (walk->fd, page, walk->page_size, (off_t)(pgno * walk->page_size));
    if (n != (ssize_t)walk->page_size)
        walk_fail (walk, "cannot read page %llu: %s", (unsigned long long)pgno,
                   n < 0 ? strerror (errno) : "short read");
    else {
        memcpy (header, page, HEADER_BYTES);
        if (header->p.pgno == pgno)
            return page;
        walk_fail (walk, "page %llu says it is page %llu", (unsigned long long)pgno,
                   (unsigned long long)header->p.pgno);
    }
    free (page);
    return NULL;
}

/* Marks every id of one free-list entry (an MDB_IDL: a count, then page numbers). */
static int
mark_free_pages (walk_t *walk, const unsigned char *data, size_t size)
{
    size_t count;
    if (size < sizeof count)
        return walk_fail (walk, "a free-list entry is too short");
    memcpy (&count, data, sizeof count);
    if (count > size / sizeof count - 1)
        return walk_fail (walk, "a free-list entry claims %zu pages in %zu bytes", count, size);
    for (size_t i = 1; i <= count; i++) {
        size_t pgno;
        memcpy (&pgno, data + i * sizeof pgno, sizeof pgno);
        if (pgno < walk->first_missing || pgno > walk->last_page)
            continue;
        uint64_t bit = pgno - walk->first_missing;
        if (!(walk->missing_free[bit / 8] & (1u << (bit % 8)))) {
            walk->missing_free[bit / 8] |= (uint8_t)(1u << (bit % 8));
            walk->marked++;
        }
    }
    return 0;
}

/* One leaf node's data: inline in the page, or in overflow pages. */
static int
leaf_entry (walk_t *walk, const unsigned char *page, size_t offset)
{
    node_header_t node;
    memcpy (&node, page + offset, sizeof node);
    size_t data_size = node.lo | ((size_t)node.hi << 16);
    size_t data_at = offset + sizeof node + node.key_size;
    if (!(node.flags & F_BIGDATA)) {
        if (data_at + data_size > walk->page_size)
            return walk_fail (walk, "a free-list node runs past its page");
        return mark_free_pages (walk, page + data_at, data_size);
    }
    size_t overflow;
    if (data_at + sizeof overflow > walk->page_size)
        return walk_fail (walk, "a free-list node runs past its page");
    memcpy (&overflow, page + data_at, sizeof overflow);
    page_header_t header;
    unsigned char *first = read_page (walk, overflow, &header);
    if (!first)
        return -1;
    free (first);
    if (!(header.flags & P_OVERFLOW) || header.b.pages == 0 ||
        overflow + header.b.pages > walk->first_missing ||
        data_size > (size_t)header.b.pages * walk->page_size - HEADER_BYTES)
        return walk_fail (walk, "overflow page %zu of the free list is not sound", overflow);
    unsigned char *data = malloc (data_size ? data_size : 1);
    if (!data)
        return walk_fail (walk, "out of memory");
    ssize_t n =
        pread (walk->fd, data, data_size, (off_t)(overflow * walk->page_size + HEADER_BYTES));
    int rc = n == (ssize_t)data_size ? mark_free_pages (walk, data, data_size)
                                     : walk_fail (walk, "cannot read overflow page %zu", overflow);
    free (data);
    return rc;
}

static int
walk_tree (walk_t *walk, uint64_t pgno, int depth)
{
    if (depth > MAX_TREE_DEPTH)
        return walk_fail (walk, "the free list is deeper than %d levels", MAX_TREE_DEPTH);
    page_header_t header;
    unsigned char *page = read_page (walk, pgno, &header);
    if (!page)
        return -1;
    size_t lower = header.b.bounds.lower;
    int rc = 0;
    if (!(header.flags & (P_BRANCH | P_LEAF)) || lower < HEADER_BYTES ||
        lower > header.b.bounds.upper || header.b.bounds.upper > walk->page_size)
        rc = walk_fail (walk, "page %llu of the free list is not a sound B-tree page",
                        (unsigned long long)pgno);
    size_t keys = rc == 0 ? (lower - HEADER_BYTES) / 2 : 0;
    for (size_t i = 0; rc == 0 && i < keys; i++) {
        uint16_t offset;
        memcpy (&offset, page + HEADER_BYTES + 2 * i, sizeof offset);
        if (offset < lower || (size_t)offset + sizeof (node_header_t) > walk->page_size) {
            rc = walk_fail (walk, "page %llu of the free list has a node out of place",
                            (unsigned long long)pgno);
            break;
        }
        if (header.flags & P_LEAF) {
            rc = leaf_entry (walk, page, offset);
            continue;
        }
        node_header_t node;
        memcpy (&node, page + offset, sizeof node);
        uint64_t child = node.lo | ((uint64_t)node.hi << 16);
        if (sizeof (size_t) > 4)
            child |= (uint64_t)node.flags << 32;
        rc = walk_tree (walk, child, depth + 1);
    }
    free (page);
    return rc;
}

/* True when every page from first_missing to the meta's last page is on its free list. */
static bool
tail_is_free (int fd, const meta_t *meta, uint64_t file_pages, uint64_t *missing, char *reason,
              size_t reason_len)
{
    *missing = meta->last_page + 1 - file_pages;
    if (*missing > MAX_MISSING_PAGES) {
        snprintf (reason, reason_len, "too many pages are missing to be free ones");
        return false;
    }
    size_t root = meta->dbs[0].root;
    if (root == P_INVALID) {
        snprintf (reason, reason_len, "the free list is empty");
        return false;
    }
    walk_t walk = {.fd = fd,
                   .page_size = meta->dbs[0].pad,
                   .first_missing = file_pages,
                   .last_page = meta->last_page,
                   .missing_free = calloc ((size_t)(*missing + 7) / 8, 1),
                   .reason = reason,
                   .reason_len = reason_len};
    if (!walk.missing_free) {
        snprintf (reason, reason_len, "out of memory");
        return false;
    }
    bool all_free = walk_tree (&walk, root, 0) == 0;
    if (all_free && walk.marked != *missing) {
        snprintf (reason, reason_len, "%llu of them hold data",
                  (unsigned long long)(*missing - walk.marked));
        all_free = false;
    }
    free (walk.missing_free);
    return all_free;
}

/* ---------------------------------------------------------------- the check */

static int
check_open_file (int fd, const char *path, lmdb_file_info_t *info, char *err, size_t err_len)
{
    for (int attempt = 0;; attempt++) {
        meta_t meta;
        int rc = read_newest_meta (fd, path, &meta, err, err_len);
        if (rc)
            return rc;
        /* The size after the meta: a writer extends the file before it writes a meta. */
        struct stat st;
        if (fstat (fd, &st) != 0)
            return fail (err, err_len, LMDB_FILE_IO, "cannot read %s: %s", path, strerror (errno));
        uint32_t page_size = meta.dbs[0].pad;
        if (meta.last_page >= UINT64_MAX / page_size)
            return fail (err, err_len, LMDB_FILE_NOT_LMDB,
                         "%s is not a sound LMDB file: its meta page names page %llu", path,
                         (unsigned long long)meta.last_page);
        lmdb_file_info_t found = {.file_bytes = (uint64_t)st.st_size,
                                  .needed_bytes = ((uint64_t)meta.last_page + 1) * page_size,
                                  .page_size = page_size,
                                  .txnid = meta.txnid};
        uint64_t missing = 0;
        char reason[160] = "";
        if (found.file_bytes < found.needed_bytes &&
            !tail_is_free (fd, &meta, found.file_bytes / page_size, &missing, reason,
                           sizeof reason)) {
            /* A writer may have reused free pages while we read them: look again if it moved. */
            meta_t now;
            if (attempt < 2 && read_newest_meta (fd, path, &now, NULL, 0) == 0 &&
                now.txnid != meta.txnid)
                continue;
            return fail (err, err_len, LMDB_FILE_TRUNCATED,
                         "%s is truncated: it holds %llu bytes, but its last transaction (%llu) "
                         "uses pages up to byte %llu and the %llu pages past the end are not all "
                         "free (%s)",
                         path, (unsigned long long)found.file_bytes,
                         (unsigned long long)found.txnid, (unsigned long long)found.needed_bytes,
                         (unsigned long long)missing, reason);
        }
        found.free_tail_pages = missing;
        if (info)
            *info = found;
        return 0;
    }
}

int
lmdb_file_check (const char *path, lmdb_file_info_t *info, char *err, size_t err_len)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? fail (err, err_len, LMDB_FILE_MISSING, "%s does not exist", path)
                               : fail (err, err_len, LMDB_FILE_IO, "cannot open %s: %s", path,
                                       strerror (errno));
    int rc = check_open_file (fd, path, info, err, err_len);
    close (fd);
    return rc;
}
