/* tp_flip: test tool that flips one bit of one stored value in a store's data.mdb, as a failing
 * disk or memory would, for the damage tests. It finds the value's offset in the file from a
 * read-only mapping (the pointer mdb_get returns, minus the start of LMDB's mapping of data.mdb in
 * /proc/self/maps), closes LMDB, then writes the one changed byte with pwrite. Run it while nothing
 * has the store open for writing (the collector stopped).
 *
 * Usage: tp_flip DIR DATABASE KEY [BYTE [BIT]]
 *   DATABASE  records, cells, neighbourhoods, agents, meta, texts or text_ids
 *   KEY       the key as messages show it, '|' between fields (records: BODY|RECORD_ID; cells:
 *             YYYY-MM|NEIGHBOURHOOD|BODY|SERVICE|Y or N; texts: KIND#ID); the store (opened
 *             read-only first) turns the texts in it into the ids its keys hold
 *   BYTE      which byte of the value (default 0); BIT which bit of it, 0-7 (default 2)
 * Prints the file offset it changed. Exit status 0 when done, 1 when the key is not stored or
 * anything fails (the message says why), 2 for a wrong command line. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* The offset in data.mdb of the byte at address: LMDB maps the file read-only, and mdb_env_info's
 * me_mapaddr is set only for a fixed map, so the mapping is found in /proc/self/maps. */
static long long
file_offset (const void *address)
{
    FILE *maps = fopen ("/proc/self/maps", "r");
    if (!maps)
        return -1;
    char line[PATH_MAX + 128];
    long long found = -1;
    uintptr_t at = (uintptr_t)address;
    while (found < 0 && fgets (line, sizeof line, maps)) {
        unsigned long long start, end, offset;
        char perms[8], path[PATH_MAX];
        path[0] = '\0';
        if (sscanf (line, "%llx-%llx %7s %llx %*s %*s %4095s", &start, &end, perms, &offset, path) <
            4)
            continue;
        size_t len = strlen (path);
        if (at >= start && at < end && len >= 9 && strcmp (path + len - 9, "/data.mdb") == 0)
            found = (long long)(at - start + offset);
    }
    fclose (maps);
    return found;
}

int
main (int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf (stderr, "usage: tp_flip DIR DATABASE KEY [BYTE [BIT]]\n");
        return 2;
    }
    const char *dir = argv[1], *database = argv[2];
    long byte = argc > 4 ? strtol (argv[4], NULL, 10) : 0;
    long bit = argc > 5 ? strtol (argv[5], NULL, 10) : 2;
    if (byte < 0 || bit < 0 || bit > 7) {
        fprintf (stderr, "tp_flip: BYTE must be >= 0 and BIT 0 to 7\n");
        return 2;
    }
    unsigned char key[512];
    size_t key_len = 0;
    store_db_t db = STORE_DB_COUNT;
    for (store_db_t d = 0; d < STORE_DB_COUNT; d++)
        if (strcmp (store_db_name (d), database) == 0)
            db = d;
    if (db == STORE_DB_COUNT) {
        fprintf (stderr, "tp_flip: no database %s in a store\n", database);
        return 2;
    }
    store_options_t options = {.path = dir, .read_only = true};
    char err[STORE_ERR_LEN];
    store_t *store = store_new (&options, NULL, err, sizeof err);
    if (!store ||
        store_key_from_text (store, db, argv[3], key, sizeof key, &key_len, err, sizeof err)) {
        fprintf (stderr, "tp_flip: %s\n", err);
        store_destroy (&store);
        return 1;
    }
    store_destroy (&store);

    MDB_env *env;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create (&env);
    if (rc == 0) {
        mdb_env_set_maxdbs (env, 8);
        rc = mdb_env_open (env, dir, MDB_RDONLY, 0600);
    }
    if (rc == 0)
        rc = mdb_txn_begin (env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_dbi_open (txn, database, 0, &dbi);
    MDB_val k = {key_len, key}, v;
    if (rc == 0)
        rc = mdb_get (txn, dbi, &k, &v);
    long long offset = -1;
    size_t value_size = 0;
    if (rc == 0) {
        value_size = v.mv_size;
        offset = file_offset (v.mv_data);
        if (offset < 0) {
            fprintf (stderr, "tp_flip: the value is not in a mapping of a data.mdb\n");
            rc = MDB_NOTFOUND;
        }
        else
            offset += byte;
    }
    if (txn)
        mdb_txn_abort (txn);
    mdb_env_close (env);
    if (rc) {
        fprintf (stderr, "tp_flip: %s %s %s: %s\n", dir, database, argv[3], mdb_strerror (rc));
        return 1;
    }
    if ((size_t)byte >= value_size) {
        fprintf (stderr, "tp_flip: the value has %zu bytes, no byte %ld\n", value_size, byte);
        return 1;
    }

    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    int fd = open (path, O_RDWR);
    unsigned char value;
    if (fd < 0 || pread (fd, &value, 1, offset) != 1) {
        fprintf (stderr, "tp_flip: cannot read %s at %lld: %s\n", path, offset, strerror (errno));
        return 1;
    }
    value ^= (unsigned char)(1u << bit);
    if (pwrite (fd, &value, 1, offset) != 1 || fsync (fd) != 0) {
        fprintf (stderr, "tp_flip: cannot write %s at %lld: %s\n", path, offset, strerror (errno));
        return 1;
    }
    close (fd);
    printf ("%lld\n", offset);
    return 0;
}
