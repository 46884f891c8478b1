/* tp_store_meta: test tool that sets or deletes one key of a store's meta database with LMDB
 * itself, bypassing the store module (which refuses such stores): how tests make a store of
 * another format ("format" = "2") or one made before stores had an identity (format, store_id and
 * created deleted). Values are written with their checksum (store_checksum.h), as the store writes
 * them, unless --raw comes first: a value without checksum is what damage looks like.
 *
 * Usage: tp_store_meta [--raw] DIR KEY VALUE  sets KEY to the text VALUE
 *        tp_store_meta DIR KEY --delete        deletes KEY
 * Exit status 0 when done, 1 when LMDB failed (the message says why), 2 for a wrong command line.
 */
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "store_checksum.h"

static int
failed (const char *what, int rc)
{
    fprintf (stderr, "tp_store_meta: %s: %s\n", what, mdb_strerror (rc));
    return 1;
}

int
main (int argc, char **argv)
{
    bool raw = argc > 1 && strcmp (argv[1], "--raw") == 0;
    if (raw) {
        argc--;
        argv++;
    }
    if (argc != 4 || strlen (argv[3]) > 256) {
        fprintf (stderr, "usage: tp_store_meta [--raw] DIR KEY VALUE | tp_store_meta DIR KEY "
                         "--delete\n");
        return 2;
    }
    const char *dir = argv[1], *name = argv[2], *text = argv[3];
    unsigned char bytes[256 + STORE_CHECKSUM_BYTES];
    size_t len = strlen (text);
    memcpy (bytes, text, len);
    if (!raw) {
        store_checksum_key_t hash_key;
        store_checksum_key (STORE_DB_META, name, strlen (name), &hash_key);
        store_checksum_seal (&hash_key, bytes, len);
        len += STORE_CHECKSUM_BYTES;
    }
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    int rc = mdb_env_create (&env);
    if (rc)
        return failed ("mdb_env_create", rc);
    mdb_env_set_maxdbs (env, 8);
    rc = mdb_env_open (env, dir, 0, 0600);
    if (rc) {
        mdb_env_close (env);
        return failed (dir, rc);
    }
    rc = mdb_txn_begin (env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open (txn, "meta", 0, &meta);
        MDB_val key = {strlen (name), (void *)name};
        MDB_val value = {len, bytes};
        if (rc == 0)
            rc = strcmp (text, "--delete") == 0 ? mdb_del (txn, meta, &key, NULL)
                                                : mdb_put (txn, meta, &key, &value, 0);
        if (rc == 0)
            rc = mdb_txn_commit (txn);
        else
            mdb_txn_abort (txn);
    }
    mdb_env_close (env);
    return rc ? failed (name, rc) : 0;
}
