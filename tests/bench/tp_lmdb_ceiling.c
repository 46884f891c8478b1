/* tp_lmdb_ceiling: the raw LMDB ceiling for the collector's store. Puts the same records the
 * collector stores (key body_id US record_id, value the packed record), in the order the frame
 * files deliver them, in large durable write transactions, with nothing else: no lookups, no
 * dedup, no totals. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_frames.h"
#include "spending.pb-c.h"

#define MAX_FILES 64

typedef struct {
    uint8_t *bytes;
    size_t used, capacity;
    uint64_t entries;
} arena_t;

static double
now_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each entry: uint16 key size, uint32 value size, key bytes, value bytes. */
static int
arena_add (arena_t *arena, const Totalplace__SpendingRecord *record)
{
    size_t body = strlen (record->body_id), id = strlen (record->record_id);
    size_t key_size = body + 1 + id;
    size_t value_size = protobuf_c_message_get_packed_size (&record->base);
    size_t need = 6 + key_size + value_size;
    if (arena->used + need > arena->capacity) {
        size_t capacity = arena->capacity ? arena->capacity * 2 : (size_t)64 << 20;
        while (capacity < arena->used + need)
            capacity *= 2;
        uint8_t *bytes = realloc (arena->bytes, capacity);
        if (!bytes)
            return -1;
        arena->bytes = bytes;
        arena->capacity = capacity;
    }
    uint8_t *p = arena->bytes + arena->used;
    uint16_t k = (uint16_t)key_size;
    uint32_t v = (uint32_t)value_size;
    memcpy (p, &k, 2);
    memcpy (p + 2, &v, 4);
    memcpy (p + 6, record->body_id, body);
    p[6 + body] = 0x1f;
    memcpy (p + 7 + body, record->record_id, id);
    protobuf_c_message_pack (&record->base, p + 6 + key_size);
    arena->used += need;
    arena->entries++;
    return 0;
}

static int
check (int rc, const char *what)
{
    if (rc)
        fprintf (stderr, "tp_lmdb_ceiling: %s: %s\n", what, mdb_strerror (rc));
    return rc;
}

static void
usage (FILE *out)
{
    fprintf (out, "Usage: tp_lmdb_ceiling --dir DIR [OPTION]... FILE...\n"
                  "Puts every record of the frame files (taken a frame from each file in turn, as\n"
                  "agents interleave) into a new LMDB environment in DIR; prints KEY=VALUE lines.\n"
                  "\n"
                  "  --txn-records N   records per write transaction (default 100000)\n"
                  "  --no-sync         MDB_NOSYNC: commits are not flushed (not durable)\n");
}

int
main (int argc, char *argv[])
{
    static const struct option long_options[] = {{"dir", required_argument, NULL, 'd'},
                                                 {"txn-records", required_argument, NULL, 't'},
                                                 {"no-sync", no_argument, NULL, 'n'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    uint64_t txn_records = 100000;
    unsigned env_flags = MDB_NOTLS;
    int option;
    while ((option = getopt_long (argc, argv, "h", long_options, NULL)) != -1) {
        switch (option) {
        case 'd':
            dir = optarg;
            break;
        case 't':
            txn_records = strtoull (optarg, NULL, 10);
            break;
        case 'n':
            env_flags |= MDB_NOSYNC;
            break;
        case 'h':
            usage (stdout);
            return 0;
        default:
            usage (stderr);
            return 2;
        }
    }
    if (!dir || optind == argc || argc - optind > MAX_FILES || txn_records == 0) {
        usage (stderr);
        return 2;
    }
    bench_frames_t *files[MAX_FILES] = {0};
    size_t file_count = 0, most_frames = 0;
    int status = 1;
    arena_t arena = {0};
    for (; optind < argc; optind++) {
        char err[512];
        files[file_count] = bench_frames_load (argv[optind], err, sizeof err);
        if (!files[file_count]) {
            fprintf (stderr, "tp_lmdb_ceiling: %s\n", err);
            goto out;
        }
        if (bench_frames_count (files[file_count]) > most_frames)
            most_frames = bench_frames_count (files[file_count]);
        file_count++;
    }
    /* Decode and pack everything first, so the timing holds LMDB alone. */
    for (size_t f = 0; f < most_frames; f++)
        for (size_t i = 0; i < file_count; i++) {
            if (f >= bench_frames_count (files[i]))
                continue;
            const bench_frame_t *frame = bench_frames_get (files[i], f);
            Totalplace__Batch *batch = totalplace__batch__unpack (NULL, frame->size, frame->data);
            if (!batch) {
                fprintf (stderr, "tp_lmdb_ceiling: frame %zu of file %zu is not a Batch\n", f, i);
                goto out;
            }
            for (size_t r = 0; r < batch->n_records; r++)
                if (arena_add (&arena, batch->records[r])) {
                    fprintf (stderr, "tp_lmdb_ceiling: out of memory\n");
                    protobuf_c_message_free_unpacked (&batch->base, NULL);
                    goto out;
                }
            protobuf_c_message_free_unpacked (&batch->base, NULL);
        }
    for (size_t i = 0; i < file_count; i++)
        bench_frames_destroy (&files[i]);

    if (mkdir (dir, 0700) != 0 && errno != EEXIST) {
        fprintf (stderr, "tp_lmdb_ceiling: cannot create %s: %s\n", dir, strerror (errno));
        goto out;
    }
    MDB_env *env = NULL;
    MDB_dbi dbi;
    if (check (mdb_env_create (&env), "create") ||
        check (mdb_env_set_mapsize (env, (size_t)256 << 30), "map size") ||
        check (mdb_env_set_maxdbs (env, 4), "max dbs") ||
        check (mdb_env_open (env, dir, env_flags, 0600), "open"))
        goto out_env;
    double started = now_seconds ();
    uint64_t done = 0, txns = 0;
    size_t at = 0;
    while (done < arena.entries) {
        MDB_txn *txn;
        if (check (mdb_txn_begin (env, NULL, 0, &txn), "begin"))
            goto out_env;
        if (txns == 0 && check (mdb_dbi_open (txn, "records", MDB_CREATE, &dbi), "dbi")) {
            mdb_txn_abort (txn);
            goto out_env;
        }
        for (uint64_t n = 0; n < txn_records && done < arena.entries; n++, done++) {
            uint16_t k;
            uint32_t v;
            memcpy (&k, arena.bytes + at, 2);
            memcpy (&v, arena.bytes + at + 2, 4);
            MDB_val key = {k, arena.bytes + at + 6}, value = {v, arena.bytes + at + 6 + k};
            at += 6 + (size_t)k + v;
            if (check (mdb_put (txn, dbi, &key, &value, 0), "put")) {
                mdb_txn_abort (txn);
                goto out_env;
            }
        }
        if (check (mdb_txn_commit (txn), "commit"))
            goto out_env;
        txns++;
    }
    double seconds = now_seconds () - started;
    MDB_stat stat;
    MDB_envinfo info;
    mdb_env_info (env, &info);
    mdb_env_stat (env, &stat);
    printf ("records=%" PRIu64 "\ntransactions=%" PRIu64 "\nseconds=%.3f\nrecords_per_s=%.0f\n"
            "durable=%s\nfile_bytes=%zu\n",
            done, txns, seconds, done / seconds, env_flags & MDB_NOSYNC ? "no" : "yes",
            (size_t)(info.me_last_pgno + 1) * stat.ms_psize);
    status = 0;
out_env:
    if (env)
        mdb_env_close (env);
out:
    for (size_t i = 0; i < file_count; i++)
        bench_frames_destroy (&files[i]);
    free (arena.bytes);
    return status;
}
