/* tp_store_meta: test tool that sets or deletes one key of a store's meta database with LMDB
 * itself, bypassing the store module (which refuses such stores): how tests make a store of
 * another format ("format" = "2") or one made before stores had an identity (format, store_id and
 * created deleted).
 *
 * Usage: tp_store_meta DIR KEY VALUE     sets KEY to the text VALUE
 *        tp_store_meta DIR KEY --delete  deletes KEY
 * Exit status 0 when done, 1 when LMDB failed (the message says why), 2 for a wrong command line.
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

static int
failed (const char *what, int rc)
{
    fprintf (stderr, "tp_store_meta: %s: %s\n", what, mdb_strerror (rc));
    return 1;
}

int
main (int argc, char **argv)
{
    if (argc != 4) {
        fprintf (stderr, "usage: tp_store_meta DIR KEY VALUE | tp_store_meta DIR KEY --delete\n");
        return 2;
    }
    const char *dir = argv[1], *name = argv[2], *text = argv[3];
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
        MDB_val value = {strlen (text), (void *)text};
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
