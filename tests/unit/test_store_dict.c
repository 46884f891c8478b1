/* test_store_dict: the dictionaries of interned texts on a real LMDB environment. Ids are given
 * in turn per kind and are found again both ways; the writer's cache stays within its bound with
 * many more texts than it holds (the rest found in the databases); ids of an aborted transaction
 * are forgotten, so they are given again, never skipped or reused wrongly; texts whose hashes
 * collide take the next probe and are told apart by their texts; damage is named. */
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_codec.h"
#include "store_dict.h"
#include "test_support.h"

typedef struct {
    char *dir;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi texts, text_ids;
    unsigned char key[16];
} fixture_t;

static void
begin (fixture_t *f)
{
    assert_int_equal (mdb_txn_begin (f->env, NULL, 0, &f->txn), 0);
}

static void
commit (fixture_t *f)
{
    assert_int_equal (mdb_txn_commit (f->txn), 0);
    f->txn = NULL;
}

static store_dict_txn_t
dict (fixture_t *f)
{
    return (store_dict_txn_t){f->txn, f->texts, f->text_ids, f->key};
}

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = test_tmpdir ("test_store_dict");
    for (int i = 0; i < 16; i++)
        f->key[i] = (unsigned char)(i * 17 + 3);
    assert_int_equal (mdb_env_create (&f->env), 0);
    mdb_env_set_maxdbs (f->env, 4);
    mdb_env_set_mapsize (f->env, (size_t)256 << 20);
    assert_int_equal (mdb_env_open (f->env, f->dir, MDB_NOSYNC, 0600), 0);
    begin (f);
    assert_int_equal (mdb_dbi_open (f->txn, "texts", MDB_CREATE, &f->texts), 0);
    assert_int_equal (mdb_dbi_open (f->txn, "text_ids", MDB_CREATE, &f->text_ids), 0);
    commit (f);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    if (f->txn)
        mdb_txn_abort (f->txn);
    mdb_env_close (f->env);
    test_rmtree (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

static uint32_t
intern (store_dict_cache_t *cache, fixture_t *f, unsigned kind, const char *text, bool create)
{
    store_dict_txn_t d = dict (f);
    store_dict_fault_t fault;
    uint32_t id = 0;
    int rc = store_dict_intern (cache, &d, kind, text, strlen (text), create, &id, &fault);
    if (rc == STORE_DICT_NOTFOUND)
        return 0;
    if (rc)
        fail_msg ("store_dict_intern %s: %d (%s)", text, rc, fault.what);
    return id;
}

static void
test_many_texts_through_a_small_cache (void **state)
{
    fixture_t *f = *state;
    const size_t bound = 256 * 1024;
    store_dict_cache_t *cache = store_dict_cache_new (bound);
    char text[64];
    begin (f);
    for (uint32_t i = 1; i <= 20000; i++) {
        snprintf (text, sizeof text, "SUPPLIER %06u LTD", i);
        assert_int_equal (intern (cache, f, STORE_TEXT_SUPPLIER, text, true), i);
        assert_true (store_dict_cache_bytes (cache) <= bound);
    }
    /* Kinds number their texts apart. */
    assert_int_equal (intern (cache, f, STORE_TEXT_BODY, "GB-LAE-BNS", true), 1);
    commit (f);
    store_dict_cache_end (cache, true);
    begin (f);
    store_dict_txn_t d = dict (f);
    store_dict_fault_t fault;
    for (uint32_t i = 1; i <= 20000; i += 7) {
        snprintf (text, sizeof text, "SUPPLIER %06u LTD", i);
        /* Again through the cache (most of them long evicted), and straight from the databases. */
        assert_int_equal (intern (cache, f, STORE_TEXT_SUPPLIER, text, false), i);
        uint32_t id;
        assert_int_equal (
            store_dict_find (&d, STORE_TEXT_SUPPLIER, text, strlen (text), &id, &fault),
            STORE_DICT_OK);
        assert_int_equal (id, i);
        const char *stored;
        size_t len;
        assert_int_equal (store_dict_text (&d, STORE_TEXT_SUPPLIER, i, &stored, &len, &fault),
                          STORE_DICT_OK);
        assert_string_equal (stored, text);
        assert_int_equal (len, strlen (text));
    }
    assert_int_equal (intern (cache, f, STORE_TEXT_SUPPLIER, "NEVER SEEN", false), 0);
    assert_int_equal (intern (cache, f, STORE_TEXT_BODY, "SUPPLIER 000001 LTD", false), 0);
    mdb_txn_abort (f->txn);
    f->txn = NULL;
    store_dict_cache_destroy (&cache);
    assert_null (cache);
    store_dict_cache_destroy (&cache); /* safe twice */
}

static void
test_ids_of_an_aborted_transaction_are_forgotten (void **state)
{
    fixture_t *f = *state;
    store_dict_cache_t *cache = store_dict_cache_new (1 << 20);
    begin (f);
    assert_int_equal (intern (cache, f, STORE_TEXT_SERVICE, "Adult Social Care", true), 1);
    commit (f);
    store_dict_cache_end (cache, true);

    begin (f);
    assert_int_equal (intern (cache, f, STORE_TEXT_SERVICE, "Housing", true), 2);
    assert_int_equal (intern (cache, f, STORE_TEXT_SERVICE, "Policing", true), 3);
    mdb_txn_abort (f->txn); /* as a failed commit or a group given up */
    f->txn = NULL;
    store_dict_cache_end (cache, false);

    begin (f);
    /* The cache hands out no id the databases do not hold: "Policing" gets 2 now. */
    assert_int_equal (intern (cache, f, STORE_TEXT_SERVICE, "Housing", false), 0);
    assert_int_equal (intern (cache, f, STORE_TEXT_SERVICE, "Policing", true), 2);
    assert_int_equal (intern (cache, f, STORE_TEXT_SERVICE, "Adult Social Care", true), 1);
    commit (f);
    store_dict_cache_end (cache, true);
    store_dict_cache_destroy (&cache);
}

/* Writes a text_ids entry (with its checksum) as a bug or a collision would leave it. */
static void
put_text_id (fixture_t *f, unsigned kind, uint64_t hash, unsigned probe, uint32_t id)
{
    unsigned char key[STORE_CODEC_TEXT_ID_KEY_LEN], value[STORE_CODEC_ID_LEN + 4];
    store_codec_text_id_key (kind, hash, probe, key);
    store_codec_id (id, value);
    store_checksum_key_t hash_key;
    store_checksum_key (STORE_DB_TEXT_IDS, key, sizeof key, &hash_key);
    store_checksum_seal (&hash_key, value, STORE_CODEC_ID_LEN);
    MDB_val k = {sizeof key, key}, v = {STORE_CODEC_ID_LEN + STORE_CHECKSUM_BYTES, value};
    assert_int_equal (mdb_put (f->txn, f->text_ids, &k, &v, 0), 0);
}

static void
test_texts_of_one_hash_take_the_next_probe (void **state)
{
    fixture_t *f = *state;
    store_dict_cache_t *cache = store_dict_cache_new (1 << 20);
    begin (f);
    assert_int_equal (intern (cache, f, STORE_TEXT_DESCRIPTION, "Agency staff", true), 1);
    /* A collision: probe 0 of "Rents"'s hash already names another text (id 1). */
    const char *rents = "Rents";
    uint64_t hash = store_codec_text_hash (f->key, rents, strlen (rents));
    put_text_id (f, STORE_TEXT_DESCRIPTION, hash, 0, 1);
    assert_int_equal (intern (cache, f, STORE_TEXT_DESCRIPTION, rents, true), 2);
    commit (f);
    store_dict_cache_end (cache, true);
    begin (f);
    store_dict_txn_t d = dict (f);
    store_dict_fault_t fault;
    uint32_t id;
    assert_int_equal (store_dict_find (&d, STORE_TEXT_DESCRIPTION, rents, 5, &id, &fault),
                      STORE_DICT_OK);
    assert_int_equal (id, 2); /* probe 1, told from probe 0 by its text */
    unsigned char key[STORE_CODEC_TEXT_ID_KEY_LEN];
    store_codec_text_id_key (STORE_TEXT_DESCRIPTION, hash, 1, key);
    MDB_val k = {sizeof key, key}, v;
    assert_int_equal (mdb_get (f->txn, f->text_ids, &k, &v), 0);
    /* An entry naming an id no text has is damage, named by database and key. */
    put_text_id (f, STORE_TEXT_DESCRIPTION, store_codec_text_hash (f->key, "Utilities", 9), 0, 99);
    assert_int_equal (store_dict_find (&d, STORE_TEXT_DESCRIPTION, "Utilities", 9, &id, &fault),
                      STORE_DICT_FAULT);
    assert_true (fault.damaged);
    assert_int_equal (fault.db, STORE_DB_TEXT_IDS);
    assert_non_null (strstr (fault.what, "names description id 99, which texts does not hold"));
    mdb_txn_abort (f->txn);
    f->txn = NULL;
    store_dict_cache_destroy (&cache);
}

static void
test_names_by_id_for_readers (void **state)
{
    fixture_t *f = *state;
    store_dict_cache_t *cache = store_dict_cache_new (1 << 20);
    begin (f);
    intern (cache, f, STORE_TEXT_NEIGHBOURHOOD, "E01000001", true);
    intern (cache, f, STORE_TEXT_NEIGHBOURHOOD, "E01000002", true);
    store_dict_names_t names = {0};
    store_dict_txn_t d = dict (f);
    store_dict_fault_t fault;
    const char *text;
    assert_int_equal (store_dict_name (&names, &d, STORE_TEXT_NEIGHBOURHOOD, 2, &text, &fault),
                      STORE_DICT_OK);
    assert_string_equal (text, "E01000002");
    assert_int_equal (store_dict_name (&names, &d, STORE_TEXT_NEIGHBOURHOOD, 2, &text, &fault),
                      STORE_DICT_OK); /* from the names, the second time */
    assert_string_equal (text, "E01000002");
    assert_int_equal (store_dict_name (&names, &d, STORE_TEXT_NEIGHBOURHOOD, 7, &text, &fault),
                      STORE_DICT_NOTFOUND);
    store_dict_names_clear (&names);
    mdb_txn_abort (f->txn);
    f->txn = NULL;
    store_dict_cache_destroy (&cache);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_many_texts_through_a_small_cache, setup, teardown),
        cmocka_unit_test_setup_teardown (test_ids_of_an_aborted_transaction_are_forgotten, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_texts_of_one_hash_take_the_next_probe, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_names_by_id_for_readers, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
