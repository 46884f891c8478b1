/* test_lmdb_file: lmdb_file_check against files LMDB itself wrote: sound ones (including one that
 * legitimately ends before its last page), truncated at many lengths, zeroed, random bytes, broken
 * meta pages. LMDB is the judge: a child process maps each file and reads every database, the free
 * list included, and the check must never pass a file that kills it (SIGBUS) nor refuse one that
 * it reads whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmdb_file.h"
#include "test_support.h"

static void
check_mdb (int rc, const char *what)
{
    if (rc)
        fail_msg ("%s: %s", what, mdb_strerror (rc));
}

/* A new environment in dir: a few named databases, no sync (the tests never crash). */
static MDB_env *
open_env (const char *dir)
{
    MDB_env *env;
    check_mdb (mdb_env_create (&env), "mdb_env_create");
    mdb_env_set_maxdbs (env, 4);
    mdb_env_set_mapsize (env, (size_t)64 << 20);
    check_mdb (mdb_env_open (env, dir, MDB_NOSYNC, 0600), "mdb_env_open");
    return env;
}

/* A store-like environment: two named databases, small and overflow-sized values, updates and
 * deletes over many transactions. */
static void
write_sound_env (const char *dir)
{
    MDB_env *env = open_env (dir);
    srand (7);
    for (int t = 0; t < 40; t++) {
        MDB_txn *txn;
        MDB_dbi dbi;
        check_mdb (mdb_txn_begin (env, NULL, 0, &txn), "begin");
        check_mdb (mdb_dbi_open (txn, t % 2 ? "records" : "totals", MDB_CREATE, &dbi), "dbi");
        for (int i = 0; i < 300; i++) {
            char key[32], value[12000];
            snprintf (key, sizeof key, "key-%06d", rand () % 5000);
            MDB_val k = {strlen (key), key};
            if (rand () % 4 == 0) {
                int rc = mdb_del (txn, dbi, &k, NULL);
                if (rc != MDB_NOTFOUND)
                    check_mdb (rc, "del");
                continue;
            }
            size_t size =
                rand () % 40 == 0 ? 5000 + (size_t)(rand () % 7000) : 16 + (size_t)(rand () % 200);
            memset (value, 'a' + rand () % 26, size);
            MDB_val v = {size, value};
            check_mdb (mdb_put (txn, dbi, &k, &v, 0), "put");
        }
        check_mdb (mdb_txn_commit (txn), "commit");
    }
    mdb_env_close (env);
}

/* Appends and deletes in the same transactions until LMDB commits a file that ends before its
 * last page (pages allocated and freed again within a transaction are never written). */
static void
write_short_env (const char *dir, char *data_path, size_t data_path_len)
{
    snprintf (data_path, data_path_len, "%s/data.mdb", dir);
    MDB_env *env = open_env (dir);
    srand (3);
    int base = 0;
    bool short_file = false;
    for (int t = 0; t < 2000 && !short_file; t++) {
        MDB_txn *txn;
        MDB_dbi dbi;
        check_mdb (mdb_txn_begin (env, NULL, 0, &txn), "begin");
        check_mdb (mdb_dbi_open (txn, NULL, 0, &dbi), "dbi");
        int added = rand () % 3000 + 1, removed = rand () % (added + 1);
        char key[32], value[100] = {0};
        for (int i = 0; i < added; i++) {
            snprintf (key, sizeof key, "%010d", base + i);
            MDB_val k = {strlen (key), key}, v = {sizeof value, value};
            check_mdb (mdb_put (txn, dbi, &k, &v, 0), "put");
        }
        for (int i = added - removed; i < added; i++) {
            snprintf (key, sizeof key, "%010d", base + i);
            MDB_val k = {strlen (key), key};
            check_mdb (mdb_del (txn, dbi, &k, NULL), "del");
        }
        base += added - removed;
        check_mdb (mdb_txn_commit (txn), "commit");
        MDB_envinfo info;
        MDB_stat env_stat;
        struct stat st;
        mdb_env_info (env, &info);
        mdb_env_stat (env, &env_stat);
        assert_int_equal (stat (data_path, &st), 0);
        short_file = (uint64_t)st.st_size < (info.me_last_pgno + 1) * (uint64_t)env_stat.ms_psize;
    }
    mdb_env_close (env);
    if (!short_file)
        fail_msg ("LMDB wrote no file shorter than its last page in 2000 transactions: the case "
                  "lmdb_file_check reads the free list for is not covered");
}

static int
compare_pgno (const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* How many of the last pages up to LMDB's last page are on its free list, and the size of the
 * largest free-list entry, read with LMDB itself. */
static size_t
trailing_free_pages (MDB_env *env, size_t *largest_entry)
{
    MDB_envinfo info;
    mdb_env_info (env, &info);
    MDB_txn *txn;
    MDB_cursor *cursor;
    check_mdb (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn), "begin");
    check_mdb (mdb_cursor_open (txn, 0, &cursor), "free list cursor");
    size_t *free_pages = NULL, count = 0;
    *largest_entry = 0;
    MDB_val key, value;
    while (mdb_cursor_get (cursor, &key, &value, MDB_NEXT) == 0) {
        size_t ids[1];
        memcpy (ids, value.mv_data, sizeof ids);
        free_pages = realloc (free_pages, (count + ids[0] + 1) * sizeof *free_pages);
        assert_non_null (free_pages);
        memcpy (free_pages + count, (size_t *)value.mv_data + 1, ids[0] * sizeof *free_pages);
        count += ids[0];
        if (value.mv_size > *largest_entry)
            *largest_entry = value.mv_size;
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    if (count == 0) /* qsort and bsearch want a non-NULL array */
        return 0;
    qsort (free_pages, count, sizeof *free_pages, compare_pgno);
    size_t trailing = 0;
    for (size_t page = info.me_last_pgno;
         page > 1 && bsearch (&page, free_pages, count, sizeof page, compare_pgno); page--)
        trailing++;
    free (free_pages);
    return trailing;
}

/* Fills a database, empties it in one transaction (a free-list entry of hundreds of pages, kept in
 * overflow pages), touches another, and again, until the file's last pages are all free while
 * such an entry exists. Returns how many last pages are free. */
static size_t
write_free_tail_env (const char *dir)
{
    MDB_env *env = open_env (dir);
    size_t trailing = 0, largest = 0, page = (size_t)sysconf (_SC_PAGESIZE);
    for (int t = 0; t < 300 && !(trailing > 0 && largest > page); t++) {
        MDB_txn *txn;
        MDB_dbi dbi;
        check_mdb (mdb_txn_begin (env, NULL, 0, &txn), "begin");
        check_mdb (mdb_dbi_open (txn, t % 3 == 2 ? "other" : "big", MDB_CREATE, &dbi), "dbi");
        char key[32], value[100] = {0};
        for (int i = 0; t % 3 == 0 && i < 20000; i++) {
            snprintf (key, sizeof key, "%010d", i);
            MDB_val k = {strlen (key), key}, v = {sizeof value, value};
            check_mdb (mdb_put (txn, dbi, &k, &v, 0), "put");
        }
        if (t % 3 == 1)
            check_mdb (mdb_drop (txn, dbi, 0), "drop");
        if (t % 3 == 2) {
            MDB_val k = {1, "x"}, v = {1, "y"};
            check_mdb (mdb_put (txn, dbi, &k, &v, 0), "put");
        }
        check_mdb (mdb_txn_commit (txn), "commit");
        trailing = trailing_free_pages (env, &largest);
    }
    mdb_env_close (env);
    if (!(trailing > 0 && largest > page))
        fail_msg ("LMDB left no free last pages beside a free-list entry in overflow pages");
    return trailing;
}

/* Copies the first length bytes of from into dir/data.mdb (a new folder). */
static char *
copy_prefix (const char *from, off_t length, const char *tag)
{
    char *dir = test_tmpdir (tag);
    char path[512];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    FILE *in = fopen (from, "rb"), *out = fopen (path, "wb");
    assert_non_null (in);
    assert_non_null (out);
    char buffer[65536];
    off_t left = length;
    while (left > 0) {
        size_t n =
            fread (buffer, 1, left < (off_t)sizeof buffer ? (size_t)left : sizeof buffer, in);
        assert_true (n > 0);
        assert_int_equal (fwrite (buffer, 1, n, out), n);
        left -= (off_t)n;
    }
    fclose (in);
    assert_int_equal (fclose (out), 0);
    return dir;
}

static void
on_fatal_signal (int signal_number)
{
    _exit (100 + signal_number);
}

/* LMDB's verdict: a child maps dir's data.mdb read-only and reads every value of every database
 * and the free list. True when it read everything without an error or a signal. */
static bool
lmdb_reads_whole (const char *dir)
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        /* LMDB's own assertions on a broken file are expected here: keep them off the log. */
        if (!freopen ("/dev/null", "w", stderr))
            _exit (3);
        struct sigaction action = {.sa_handler = on_fatal_signal};
        sigaction (SIGBUS, &action, NULL);
        sigaction (SIGSEGV, &action, NULL);
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi main_dbi;
        MDB_cursor *names;
        if (mdb_env_create (&env) || mdb_env_set_maxdbs (env, 8) ||
            mdb_env_open (env, dir, MDB_RDONLY, 0600) ||
            mdb_txn_begin (env, NULL, MDB_RDONLY, &txn) || mdb_dbi_open (txn, NULL, 0, &main_dbi) ||
            mdb_cursor_open (txn, main_dbi, &names))
            _exit (2);
        volatile unsigned long sum = 0; /* every byte read, so that every page is touched */
        MDB_val key, value;
        int rc;
        /* The free list (dbi 0), as a writer would read it, and the main database. */
        for (MDB_dbi dbi = 0; dbi < 2; dbi++) {
            MDB_cursor *cursor;
            if (mdb_cursor_open (txn, dbi, &cursor))
                _exit (2);
            for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT))
                for (size_t i = 0; i < value.mv_size; i++)
                    sum += ((unsigned char *)value.mv_data)[i];
            if (rc != MDB_NOTFOUND)
                _exit (3);
            mdb_cursor_close (cursor);
        }
        /* Every named database (the main database's keys that open as one). */
        for (rc = mdb_cursor_get (names, &key, &value, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get (names, &key, &value, MDB_NEXT)) {
            char name[512];
            MDB_dbi dbi;
            MDB_cursor *cursor;
            if (key.mv_size >= sizeof name)
                continue;
            memcpy (name, key.mv_data, key.mv_size);
            name[key.mv_size] = '\0';
            if (mdb_dbi_open (txn, name, 0, &dbi))
                continue; /* a plain key, not a database */
            if (mdb_cursor_open (txn, dbi, &cursor))
                _exit (2);
            int inner;
            for (inner = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); inner == 0;
                 inner = mdb_cursor_get (cursor, &key, &value, MDB_NEXT))
                for (size_t i = 0; i < value.mv_size; i++)
                    sum += ((unsigned char *)value.mv_data)[i];
            if (inner != MDB_NOTFOUND)
                _exit (3);
            mdb_cursor_close (cursor);
        }
        fprintf (stderr, "read %lu\n", sum); /* to /dev/null: the reads must happen */
        _exit (rc == MDB_NOTFOUND ? 0 : 3);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

static int
check (const char *dir, lmdb_file_info_t *info, char *err, size_t err_len)
{
    char path[512];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    return lmdb_file_check (path, info, err, err_len);
}

static void
test_sound_file_passes (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_lmdb_file");
    write_sound_env (dir);
    lmdb_file_info_t info;
    char err[1024] = "";
    if (check (dir, &info, err, sizeof err))
        fail_msg ("a sound file was refused: %s", err);
    assert_int_equal (info.page_size, (uint32_t)sysconf (_SC_PAGESIZE));
    assert_true (info.txnid >= 40);
    assert_true (info.needed_bytes >= 2 * (uint64_t)info.page_size);
    assert_true (info.file_bytes >= info.needed_bytes - info.free_tail_pages * info.page_size);
    assert_true (lmdb_reads_whole (dir));
    test_rmtree (dir);
    free (dir);
}

static void
test_short_but_sound_file_passes (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_lmdb_file_short");
    char data_path[512];
    write_short_env (dir, data_path, sizeof data_path);
    lmdb_file_info_t info;
    char err[1024] = "";
    if (check (dir, &info, err, sizeof err))
        fail_msg ("a sound file ending before its last (free) page was refused: %s", err);
    assert_true (info.file_bytes < info.needed_bytes);
    assert_true (info.free_tail_pages > 0);
    assert_true (lmdb_reads_whole (dir));
    test_rmtree (dir);
    free (dir);
}

/* A file cut just before its free last pages is sound (the free list, read through its overflow
 * pages, lists them); one page more and it is not. */
static void
test_free_last_pages_may_be_cut (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_lmdb_file_tail");
    size_t trailing = write_free_tail_env (dir);
    char path[512], err[1024] = "";
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    off_t page = (off_t)sysconf (_SC_PAGESIZE);
    char *cut = copy_prefix (path, st.st_size - (off_t)trailing * page, "test_lmdb_file_tail_cut");
    lmdb_file_info_t info;
    if (check (cut, &info, err, sizeof err))
        fail_msg ("a file without its %zu free last pages was refused: %s", trailing, err);
    assert_int_equal (info.free_tail_pages, trailing);
    assert_true (lmdb_reads_whole (cut));
    char *more =
        copy_prefix (path, st.st_size - (off_t)(trailing + 1) * page, "test_lmdb_file_tail_more");
    assert_int_equal (check (more, NULL, err, sizeof err), LMDB_FILE_TRUNCATED);
    assert_false (lmdb_reads_whole (more));
    const char *dirs[] = {dir, cut, more};
    for (size_t i = 0; i < 3; i++) {
        test_rmtree (dirs[i]);
        free ((char *)dirs[i]);
    }
}

static void
test_missing_and_empty (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_lmdb_file_empty");
    char err[1024] = "";
    assert_int_equal (check (dir, NULL, err, sizeof err), LMDB_FILE_MISSING);
    assert_non_null (strstr (err, "does not exist"));
    char path[512];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    FILE *empty = fopen (path, "w");
    assert_non_null (empty);
    fclose (empty);
    assert_int_equal (check (dir, NULL, err, sizeof err), LMDB_FILE_EMPTY);
    assert_non_null (strstr (err, "empty (0 bytes)"));
    assert_non_null (strstr (err, path));
    test_rmtree (dir);
    free (dir);
}

/* Writes size bytes from fill (NULL: zeros) over dir/data.mdb starting at offset. */
static void
overwrite (const char *dir, off_t offset, size_t size, const unsigned char *fill)
{
    char path[512];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    int fd = open (path, O_WRONLY | O_CREAT, 0600);
    assert_true (fd >= 0);
    unsigned char *bytes = calloc (size, 1);
    assert_non_null (bytes);
    if (fill)
        memcpy (bytes, fill, size);
    assert_int_equal (pwrite (fd, bytes, size, offset), (ssize_t)size);
    free (bytes);
    close (fd);
}

static void
test_not_lmdb (void **state)
{
    (void)state;
    char *sound = test_tmpdir ("test_lmdb_file_sound");
    write_sound_env (sound);
    char sound_path[512], err[1024];
    snprintf (sound_path, sizeof sound_path, "%s/data.mdb", sound);
    struct stat st;
    assert_int_equal (stat (sound_path, &st), 0);
    size_t page = (size_t)sysconf (_SC_PAGESIZE);

    /* The whole file zeroed. */
    char *zeroed = copy_prefix (sound_path, st.st_size, "test_lmdb_file_zero");
    overwrite (zeroed, 0, (size_t)st.st_size, NULL);
    assert_int_equal (check (zeroed, NULL, err, sizeof err), LMDB_FILE_NOT_LMDB);
    assert_non_null (strstr (err, "is not an LMDB file"));
    assert_false (lmdb_reads_whole (zeroed));

    /* Random bytes, long and short. */
    unsigned char *noise = malloc (1 << 20);
    assert_non_null (noise);
    srand (11);
    for (size_t i = 0; i < 1 << 20; i++)
        noise[i] = (unsigned char)rand ();
    char *random_dir = test_tmpdir ("test_lmdb_file_random");
    overwrite (random_dir, 0, 1 << 20, noise);
    assert_int_equal (check (random_dir, NULL, err, sizeof err), LMDB_FILE_NOT_LMDB);
    char *tiny = test_tmpdir ("test_lmdb_file_tiny");
    overwrite (tiny, 0, 10, noise);
    assert_int_equal (check (tiny, NULL, err, sizeof err), LMDB_FILE_NOT_LMDB);
    assert_false (lmdb_reads_whole (random_dir));

    /* One meta page broken: the second zeroed, or the first's data version changed. */
    char *second = copy_prefix (sound_path, st.st_size, "test_lmdb_file_meta2");
    overwrite (second, (off_t)page, page, NULL);
    assert_int_equal (check (second, NULL, err, sizeof err), LMDB_FILE_NOT_LMDB);
    assert_non_null (strstr (err, "second meta page"));
    assert_false (lmdb_reads_whole (second));
    char *version = copy_prefix (sound_path, st.st_size, "test_lmdb_file_version");
    const unsigned char two[4] = {2, 0, 0, 0}; /* mm_version, after the page header and magic */
    overwrite (version, 16 + 4, sizeof two, two);
    assert_int_equal (check (version, NULL, err, sizeof err), LMDB_FILE_NOT_LMDB);
    assert_false (lmdb_reads_whole (version));

    const char *dirs[] = {sound, zeroed, random_dir, tiny, second, version};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        test_rmtree (dirs[i]);
        free ((char *)dirs[i]);
    }
    free (noise);
}

/* Truncates a copy of the file at data_path to each length: whatever the check passes LMDB must
 * read whole, and a whole number of pages it refuses LMDB must fail on. Returns how many lengths
 * were refused. */
static int
truncations_agree_with_lmdb (const char *data_path)
{
    struct stat st;
    assert_int_equal (stat (data_path, &st), 0);
    off_t page = (off_t)sysconf (_SC_PAGESIZE), size = st.st_size;
    off_t lengths[4096];
    size_t count = 0;
    const off_t fixed[] = {
        1,    15,       16,        20,           100,      151,          152,      page - 1,
        page, page + 1, page + 20, 2 * page - 1, 2 * page, 2 * page + 1, size - 1, size - page / 2};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i] > 0 && fixed[i] < size)
            lengths[count++] = fixed[i];
    off_t step = page * (size / page / 200 + 1); /* at most about 200 whole-page lengths */
    for (off_t length = 3 * page; length < size && count < 4096; length += step)
        lengths[count++] = length;
    for (off_t length = size - page; length > size - 8 * page && length > 0 && count < 4096;
         length -= page)
        lengths[count++] = length;
    int refused = 0;
    for (size_t i = 0; i < count; i++) {
        char *dir = copy_prefix (data_path, lengths[i], "test_lmdb_file_cut");
        char err[1024] = "";
        int rc = check (dir, NULL, err, sizeof err);
        bool readable = lmdb_reads_whole (dir);
        if (rc == 0 && !readable)
            fail_msg ("cut at %lld bytes of %lld: passed, but LMDB cannot read it",
                      (long long)lengths[i], (long long)size);
        if (rc != 0 && lengths[i] % page == 0 && readable)
            fail_msg ("cut at %lld bytes of %lld: refused (%s), but LMDB reads it whole",
                      (long long)lengths[i], (long long)size, err);
        if (rc) {
            assert_true (rc == LMDB_FILE_TRUNCATED || rc == LMDB_FILE_NOT_LMDB);
            refused++;
        }
        test_rmtree (dir);
        free (dir);
    }
    return refused;
}

static void
test_truncations_of_a_sound_file (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_lmdb_file_src");
    write_sound_env (dir);
    char path[512];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    int refused = truncations_agree_with_lmdb (path);
    assert_true (refused > 20);
    /* The message names what is missing. */
    char *cut = copy_prefix (path, 3 * sysconf (_SC_PAGESIZE), "test_lmdb_file_cut3");
    char err[1024] = "";
    assert_int_equal (check (cut, NULL, err, sizeof err), LMDB_FILE_TRUNCATED);
    assert_non_null (strstr (err, "is truncated: it holds"));
    test_rmtree (cut);
    free (cut);
    test_rmtree (dir);
    free (dir);
}

static void
test_truncations_of_a_short_file (void **state)
{
    (void)state;
    char *dir = test_tmpdir ("test_lmdb_file_src_short");
    char path[512];
    write_short_env (dir, path, sizeof path);
    int refused = truncations_agree_with_lmdb (path);
    assert_true (refused > 20);
    test_rmtree (dir);
    free (dir);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_sound_file_passes),
        cmocka_unit_test (test_short_but_sound_file_passes),
        cmocka_unit_test (test_free_last_pages_may_be_cut),
        cmocka_unit_test (test_missing_and_empty),
        cmocka_unit_test (test_not_lmdb),
        cmocka_unit_test (test_truncations_of_a_sound_file),
        cmocka_unit_test (test_truncations_of_a_short_file),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
