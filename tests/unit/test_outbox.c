/* test_outbox: the agent's durable outbox keeps every batch, in order, across closes, crashes and
 * limits, and never reuses a sequence number; acknowledged batches are retained, pruned by age and
 * for room, put back to pending when the collector's store went back, and the ones gone for good
 * are an alarm that stays until cleared. */
/* nftw is an XSI function. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "outbox.h"

typedef struct {
    char root[512]; /* the fresh temp folder of one test */
    char dir[600];  /* the outbox folder inside it */
} fixture_t;

static int
setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    if (!fx)
        return -1;
    const char *base = getenv ("TOTALPLACE_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir (base, 0700); /* ctest's folder may not exist yet */
    snprintf (fx->root, sizeof fx->root, "%s/test_outbox.XXXXXX", base);
    if (!mkdtemp (fx->root)) {
        free (fx);
        return -1;
    }
    snprintf (fx->dir, sizeof fx->dir, "%s/outbox", fx->root);
    *state = fx;
    return 0;
}

static int
remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove (path);
}

static int
teardown (void **state)
{
    fixture_t *fx = *state;
    nftw (fx->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (fx);
    return 0;
}

/* Sizes vary from 1 byte to over two LMDB pages so both inline and overflow-page values occur. */
static size_t
payload_size (uint64_t seq)
{
    return 1 + (size_t)((seq * 2654435761u) % 9000u);
}

/* Bytes that differ per seq and per position, so a swapped or torn batch cannot pass. */
static void
payload_fill (uint64_t seq, uint8_t *out, size_t size)
{
    uint64_t x = seq * UINT64_C (0x9E3779B97F4A7C15) + 1;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (uint8_t)x;
    }
}

static uint8_t *
payload_make (uint64_t seq, size_t size)
{
    uint8_t *data = malloc (size);
    assert_non_null (data);
    payload_fill (seq, data, size);
    return data;
}

static outbox_t *
open_outbox (const char *dir, const outbox_limits_t *limits)
{
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = outbox_new (dir, limits, err, sizeof err);
    if (!outbox)
        fail_msg ("outbox_new(%s): %s", dir, err);
    return outbox;
}

/* Puts the next batch with the generated payload of its seq and given size. */
static int
put_next_sized (outbox_t *outbox, size_t size, char *err, size_t err_len)
{
    uint64_t seq = outbox_next_seq (outbox);
    uint8_t *data = payload_make (seq, size);
    int rc = outbox_put (outbox, seq, data, size, err, err_len);
    free (data);
    return rc;
}

static void
put_next (outbox_t *outbox)
{
    char err[OUTBOX_ERR_LEN] = "";
    uint64_t seq = outbox_next_seq (outbox);
    if (put_next_sized (outbox, payload_size (seq), err, sizeof err) != 0)
        fail_msg ("put %llu: %s", (unsigned long long)seq, err);
}

static void
assert_batch (outbox_t *outbox, uint64_t seq, size_t size)
{
    char err[OUTBOX_ERR_LEN] = "";
    void *got = NULL;
    size_t got_size = 0;
    int rc = outbox_get (outbox, seq, &got, &got_size, err, sizeof err);
    if (rc != 0)
        fail_msg ("get %llu: %d %s", (unsigned long long)seq, rc, err);
    assert_int_equal (got_size, size);
    uint8_t *want = payload_make (seq, size);
    assert_memory_equal (got, want, size);
    free (want);
    free (got);
}

static void
assert_absent (outbox_t *outbox, uint64_t seq)
{
    char err[OUTBOX_ERR_LEN] = "";
    void *got = (void *)1;
    size_t got_size = 7;
    assert_int_equal (outbox_get (outbox, seq, &got, &got_size, err, sizeof err),
                      OUTBOX_ERR_NOTFOUND);
    assert_null (got);
    assert_int_equal (got_size, 0);
    assert_non_null (strstr (err, "not pending"));
}

/* Acknowledges one batch at ack time acked_at; want_moved: whether it was pending. */
static void
ack_at (outbox_t *outbox, uint64_t seq, int64_t acked_at, bool want_moved)
{
    char err[OUTBOX_ERR_LEN] = "";
    size_t moved = want_moved ? 0 : 1;
    if (outbox_ack (outbox, &seq, 1, acked_at, &moved, err, sizeof err) != 0)
        fail_msg ("ack %llu: %s", (unsigned long long)seq, err);
    assert_int_equal (moved, want_moved ? 1 : 0);
}

static void
assert_acked (outbox_t *outbox, uint64_t seq, bool want_existed)
{
    ack_at (outbox, seq, 1000, want_existed);
}

/* foreach collector: seqs seen, and whether each payload was the one put under that seq. */
typedef struct {
    uint64_t seqs[1024];
    size_t n;
    size_t stop_after; /* 0: never stop */
    bool all_exact;
    bool ascending; /* every seq above the one before */
    uint64_t first, last;
} walk_t;

static int
collect (void *arg, uint64_t seq, const void *payload, size_t size)
{
    walk_t *walk = arg;
    if (walk->n < sizeof walk->seqs / sizeof walk->seqs[0])
        walk->seqs[walk->n] = seq;
    if (walk->n == 0)
        walk->first = seq;
    else if (seq <= walk->last)
        walk->ascending = false;
    walk->last = seq;
    walk->n++;
    uint8_t *want = malloc (size);
    payload_fill (seq, want, size);
    if (size != payload_size (seq) || memcmp (want, payload, size) != 0)
        walk->all_exact = false;
    free (want);
    return walk->stop_after && walk->n >= walk->stop_after;
}

static void
test_roundtrip (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_next_seq (outbox), 1);
    assert_int_equal (outbox_count (outbox), 0);
    assert_int_equal (outbox_bytes (outbox), 0);

    const char batch[] = "\x0a\x05GB-XX\x10\x01";
    assert_int_equal (outbox_put (outbox, 1, batch, sizeof batch - 1, err, sizeof err), 0);
    assert_int_equal (outbox_next_seq (outbox), 2);
    assert_int_equal (outbox_count (outbox), 1);
    assert_int_equal (outbox_bytes (outbox), sizeof batch - 1);

    void *got = NULL;
    size_t got_size = 0;
    assert_int_equal (outbox_get (outbox, 1, &got, &got_size, err, sizeof err), 0);
    assert_int_equal (got_size, sizeof batch - 1);
    assert_memory_equal (got, batch, got_size);
    free (got);

    assert_acked (outbox, 1, true);
    assert_int_equal (outbox_count (outbox), 0);
    assert_int_equal (outbox_bytes (outbox), 0);
    assert_absent (outbox, 1);
    /* The Ack can arrive twice; the second remove is harmless and says the batch was gone. */
    assert_acked (outbox, 1, false);
    assert_acked (outbox, 999, false);
    uint64_t one = 1;
    assert_int_equal (outbox_ack (outbox, &one, 1, 1000, NULL, err, sizeof err), 0);
    assert_int_equal (outbox_next_seq (outbox), 2);

    outbox_destroy (&outbox);
    assert_null (outbox);
    outbox_destroy (&outbox);
    outbox_destroy (NULL);
}

static void
test_foreach_order (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    /* Over 256 batches, so any key byte order other than big-endian would show out of order. */
    for (int i = 0; i < 600; i++)
        put_next (outbox);
    for (uint64_t seq = 3; seq <= 600; seq += 3)
        assert_acked (outbox, seq, true);

    walk_t walk = {.all_exact = true, .ascending = true};
    assert_int_equal (outbox_foreach (outbox, collect, &walk, err, sizeof err), 0);
    assert_int_equal (walk.n, 400);
    assert_true (walk.all_exact);
    size_t i = 0;
    for (uint64_t seq = 1; seq <= 600; seq++)
        if (seq % 3 != 0) {
            assert_int_equal (walk.seqs[i], seq);
            i++;
        }

    walk_t stopped = {.all_exact = true, .ascending = true, .stop_after = 5};
    assert_int_equal (outbox_foreach (outbox, collect, &stopped, err, sizeof err), 0);
    assert_int_equal (stopped.n, 5);
    assert_int_equal (stopped.seqs[4], 7);
    outbox_destroy (&outbox);
}

static void
test_empty_foreach (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    walk_t walk = {.all_exact = true, .ascending = true};
    assert_int_equal (outbox_foreach (outbox, collect, &walk, err, sizeof err), 0);
    assert_int_equal (walk.n, 0);
    outbox_destroy (&outbox);
}

static void
test_seq_never_reused (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_next (outbox);
    put_next (outbox);
    put_next (outbox);
    /* Removing the newest batch must not give its number back. */
    assert_acked (outbox, 3, true);
    assert_int_equal (outbox_next_seq (outbox), 4);
    assert_int_equal (outbox_put (outbox, 3, "x", 1, err, sizeof err), OUTBOX_ERR_SEQ);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_next_seq (outbox), 4);
    assert_int_equal (outbox_count (outbox), 2);
    assert_acked (outbox, 1, true);
    assert_acked (outbox, 2, true);
    assert_int_equal (outbox_count (outbox), 0);
    outbox_destroy (&outbox);

    /* Empty outbox after a restart: still no reuse. */
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_next_seq (outbox), 4);
    assert_int_equal (outbox_count (outbox), 0);
    put_next (outbox);
    assert_int_equal (outbox_next_seq (outbox), 5);
    assert_batch (outbox, 4, payload_size (4));
    outbox_destroy (&outbox);
}

static void
test_persistence (void **state)
{
    fixture_t *fx = *state;
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    uint64_t total = 0;
    for (uint64_t seq = 1; seq <= 100; seq++) {
        put_next (outbox);
        total += payload_size (seq);
    }
    assert_int_equal (outbox_bytes (outbox), total);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 100);
    assert_int_equal (outbox_bytes (outbox), total);
    assert_int_equal (outbox_next_seq (outbox), 101);
    for (uint64_t seq = 1; seq <= 100; seq++)
        assert_batch (outbox, seq, payload_size (seq));
    for (uint64_t seq = 1; seq <= 100; seq += 4) {
        assert_acked (outbox, seq, true);
        total -= payload_size (seq);
    }
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 75);
    assert_int_equal (outbox_bytes (outbox), total);
    assert_int_equal (outbox_next_seq (outbox), 101);
    for (uint64_t seq = 1; seq <= 100; seq++) {
        if (seq % 4 == 1)
            assert_absent (outbox, seq);
        else
            assert_batch (outbox, seq, payload_size (seq));
    }
    outbox_destroy (&outbox);
}

static void
test_limit_batches (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_limits_t limits = {.max_batches = 5};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    for (int i = 0; i < 5; i++) {
        assert_true (outbox_has_room (outbox, 10));
        put_next (outbox);
    }
    assert_false (outbox_has_room (outbox, 10));
    assert_false (outbox_has_room (outbox, 0));
    uint64_t bytes = outbox_bytes (outbox);

    assert_int_equal (put_next_sized (outbox, 10, err, sizeof err), OUTBOX_ERR_FULL);
    assert_non_null (strstr (err, "max_batches"));
    assert_int_equal (outbox_count (outbox), 5);
    assert_int_equal (outbox_bytes (outbox), bytes);
    assert_int_equal (outbox_next_seq (outbox), 6);
    assert_absent (outbox, 6);

    assert_acked (outbox, 2, true);
    assert_true (outbox_has_room (outbox, 10));
    assert_int_equal (put_next_sized (outbox, 10, err, sizeof err), 0);
    assert_batch (outbox, 6, 10);
    assert_int_equal (outbox_count (outbox), 5);
    outbox_destroy (&outbox);

    /* A refused put left nothing behind on disk either. */
    outbox = open_outbox (fx->dir, &limits);
    assert_int_equal (outbox_count (outbox), 5);
    assert_int_equal (outbox_next_seq (outbox), 7);
    outbox_destroy (&outbox);
}

static void
test_limit_bytes (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_limits_t limits = {.max_bytes = 10000};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    assert_int_equal (put_next_sized (outbox, 4000, err, sizeof err), 0);
    assert_int_equal (put_next_sized (outbox, 4000, err, sizeof err), 0);
    assert_true (outbox_has_room (outbox, 2000));
    assert_false (outbox_has_room (outbox, 2001));

    assert_int_equal (put_next_sized (outbox, 2001, err, sizeof err), OUTBOX_ERR_FULL);
    assert_non_null (strstr (err, "max_bytes"));
    assert_int_equal (outbox_count (outbox), 2);
    assert_int_equal (outbox_bytes (outbox), 8000);
    assert_int_equal (outbox_next_seq (outbox), 3);
    assert_absent (outbox, 3);

    /* Exactly at the limit is allowed. */
    assert_int_equal (put_next_sized (outbox, 2000, err, sizeof err), 0);
    assert_int_equal (outbox_bytes (outbox), 10000);
    assert_false (outbox_has_room (outbox, 1));
    assert_int_equal (put_next_sized (outbox, 1, err, sizeof err), OUTBOX_ERR_FULL);

    assert_acked (outbox, 1, true);
    assert_true (outbox_has_room (outbox, 4000));
    assert_int_equal (put_next_sized (outbox, 4000, err, sizeof err), 0);
    assert_int_equal (outbox_bytes (outbox), 10000);
    assert_batch (outbox, 4, 4000);
    outbox_destroy (&outbox);
}

static void
test_too_big (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_limits_t limits = {.max_bytes = 10000};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    /* Even an empty outbox can never hold it: a distinct code, so the agent does not wait. */
    assert_false (outbox_has_room (outbox, 10001));
    assert_int_equal (put_next_sized (outbox, 10001, err, sizeof err), OUTBOX_ERR_TOO_BIG);
    assert_non_null (strstr (err, "10001"));
    assert_int_equal (outbox_count (outbox), 0);
    assert_int_equal (outbox_next_seq (outbox), 1);
    assert_absent (outbox, 1);
    outbox_destroy (&outbox);
}

static void
test_wrong_seq_and_empty (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_put (outbox, 0, "x", 1, err, sizeof err), OUTBOX_ERR_SEQ);
    assert_int_equal (outbox_put (outbox, 2, "x", 1, err, sizeof err), OUTBOX_ERR_SEQ);
    assert_non_null (strstr (err, "next seq is 1"));
    assert_int_equal (outbox_put (outbox, 1, "", 0, err, sizeof err), OUTBOX_ERR);
    assert_int_equal (outbox_put (outbox, 1, NULL, 5, err, sizeof err), OUTBOX_ERR);
    assert_int_equal (outbox_count (outbox), 0);
    assert_int_equal (outbox_next_seq (outbox), 1);
    assert_absent (outbox, 1);
    assert_absent (outbox, 2);
    assert_int_equal (outbox_put (outbox, 1, "x", 1, err, sizeof err), 0);
    assert_int_equal (outbox_put (outbox, 1, "y", 1, err, sizeof err), OUTBOX_ERR_SEQ);
    outbox_destroy (&outbox);
}

/* Builds n items with seqs first, first + 1, ... and the generated payloads. */
static outbox_item_t *
items_make (uint64_t first, size_t n, size_t size)
{
    outbox_item_t *items = calloc (n, sizeof *items);
    assert_non_null (items);
    for (size_t i = 0; i < n; i++) {
        items[i].seq = first + i;
        items[i].size = size ? size : payload_size (first + i);
        items[i].payload = payload_make (first + i, items[i].size);
    }
    return items;
}

static void
items_free (outbox_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free ((void *)items[i].payload);
    free (items);
}

static void
test_put_many (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_put_many (outbox, NULL, 0, NULL, err, sizeof err), 0);
    assert_int_equal (outbox_next_seq (outbox), 1);

    outbox_item_t *items = items_make (1, 50, 0);
    assert_int_equal (outbox_put_many (outbox, items, 50, NULL, err, sizeof err), 0);
    items_free (items, 50);
    assert_int_equal (outbox_count (outbox), 50);
    assert_int_equal (outbox_next_seq (outbox), 51);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 50);
    assert_int_equal (outbox_next_seq (outbox), 51);
    for (uint64_t seq = 1; seq <= 50; seq++)
        assert_batch (outbox, seq, payload_size (seq));

    /* A gap, a wrong start, or one empty batch sinks the whole group. */
    items = items_make (51, 5, 0);
    items[3].seq = 55;
    assert_int_equal (outbox_put_many (outbox, items, 5, NULL, err, sizeof err), OUTBOX_ERR_SEQ);
    items[3].seq = 54;
    items[2].size = 0;
    assert_int_equal (outbox_put_many (outbox, items, 5, NULL, err, sizeof err), OUTBOX_ERR);
    assert_int_equal (outbox_put_many (outbox, items + 1, 3, NULL, err, sizeof err),
                      OUTBOX_ERR_SEQ);
    assert_int_equal (outbox_count (outbox), 50);
    assert_int_equal (outbox_next_seq (outbox), 51);
    for (uint64_t seq = 51; seq <= 55; seq++)
        assert_absent (outbox, seq);
    items_free (items, 5);
    outbox_destroy (&outbox);
}

static void
test_put_many_all_or_nothing (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_limits_t limits = {.max_batches = 8, .max_bytes = 20000};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    outbox_item_t *items = items_make (1, 5, 1000);
    assert_int_equal (outbox_put_many (outbox, items, 5, NULL, err, sizeof err), 0);
    items_free (items, 5);

    /* 5 + 4 batches > 8. */
    items = items_make (6, 4, 1000);
    assert_int_equal (outbox_put_many (outbox, items, 4, NULL, err, sizeof err), OUTBOX_ERR_FULL);
    assert_non_null (strstr (err, "max_batches"));
    items_free (items, 4);
    /* 5000 + 3 * 6000 bytes > 20000, though 3 batches would fit the count. */
    items = items_make (6, 3, 6000);
    assert_int_equal (outbox_put_many (outbox, items, 3, NULL, err, sizeof err), OUTBOX_ERR_FULL);
    assert_non_null (strstr (err, "max_bytes"));
    items_free (items, 3);

    assert_int_equal (outbox_count (outbox), 5);
    assert_int_equal (outbox_bytes (outbox), 5000);
    assert_int_equal (outbox_next_seq (outbox), 6);
    for (uint64_t seq = 6; seq <= 9; seq++)
        assert_absent (outbox, seq);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, &limits);
    assert_int_equal (outbox_count (outbox), 5);
    assert_int_equal (outbox_bytes (outbox), 5000);
    assert_int_equal (outbox_next_seq (outbox), 6);
    /* What does fit still goes in. */
    items = items_make (6, 3, 5000);
    assert_int_equal (outbox_put_many (outbox, items, 3, NULL, err, sizeof err), 0);
    items_free (items, 3);
    assert_int_equal (outbox_bytes (outbox), 20000);
    assert_batch (outbox, 8, 5000);
    outbox_destroy (&outbox);
}

static void
test_lower_limits_on_reopen (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    for (int i = 0; i < 10; i++)
        put_next (outbox);
    outbox_destroy (&outbox);

    /* Already over the new limit: it opens, keeps everything, and takes nothing new. */
    outbox_limits_t limits = {.max_batches = 5};
    outbox = open_outbox (fx->dir, &limits);
    assert_int_equal (outbox_count (outbox), 10);
    assert_false (outbox_has_room (outbox, 1));
    assert_int_equal (put_next_sized (outbox, 1, err, sizeof err), OUTBOX_ERR_FULL);
    for (uint64_t seq = 1; seq <= 6; seq++)
        assert_acked (outbox, seq, true);
    assert_true (outbox_has_room (outbox, 1));
    assert_int_equal (put_next_sized (outbox, 1, err, sizeof err), 0);
    assert_int_equal (outbox_count (outbox), 5);
    outbox_destroy (&outbox);
}

/* In a child: open, put n batches, then die by SIGKILL without closing anything. Exit codes say
 * where it failed otherwise. */
static void
child_put_and_die (const char *dir, int n)
{
    char err[OUTBOX_ERR_LEN];
    outbox_t *outbox = outbox_new (dir, NULL, err, sizeof err);
    if (!outbox)
        _exit (2);
    for (int i = 0; i < n; i++) {
        uint64_t seq = outbox_next_seq (outbox);
        size_t size = payload_size (seq);
        uint8_t *data = malloc (size);
        if (!data)
            _exit (3);
        payload_fill (seq, data, size);
        if (outbox_put (outbox, seq, data, size, err, sizeof err) != 0)
            _exit (4);
        free (data);
    }
    raise (SIGKILL);
    _exit (5);
}

static void
test_crash_after_puts (void **state)
{
    fixture_t *fx = *state;
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        child_put_and_die (fx->dir, 40);
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (!WIFSIGNALED (status))
        fail_msg ("child exited with %d before dying", WEXITSTATUS (status));
    assert_int_equal (WTERMSIG (status), SIGKILL);

    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 40);
    assert_int_equal (outbox_next_seq (outbox), 41);
    for (uint64_t seq = 1; seq <= 40; seq++)
        assert_batch (outbox, seq, payload_size (seq));
    outbox_destroy (&outbox);

    /* A second crash after a restart appends after the first run's batches. */
    pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        child_put_and_die (fx->dir, 10);
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 50);
    for (uint64_t seq = 1; seq <= 50; seq++)
        assert_batch (outbox, seq, payload_size (seq));
    outbox_destroy (&outbox);
}

/* Killed from outside at an arbitrary moment, mid-put: every put the child saw succeed is there,
 * whole, and at most the one in flight besides; nothing torn. */
static void
test_crash_mid_stream (void **state)
{
    fixture_t *fx = *state;
    int fds[2];
    assert_int_equal (pipe (fds), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        close (fds[0]);
        char err[OUTBOX_ERR_LEN];
        outbox_t *outbox = outbox_new (fx->dir, NULL, err, sizeof err);
        if (!outbox)
            _exit (2);
        for (;;) {
            uint64_t seq = outbox_next_seq (outbox);
            size_t size = payload_size (seq);
            uint8_t *data = malloc (size);
            if (!data)
                _exit (3);
            payload_fill (seq, data, size);
            if (outbox_put (outbox, seq, data, size, err, sizeof err) != 0)
                _exit (4);
            free (data);
            if (write (fds[1], &seq, sizeof seq) != sizeof seq)
                _exit (5);
        }
    }
    close (fds[1]);
    uint64_t confirmed = 0, seq;
    while (confirmed < 30 && read (fds[0], &seq, sizeof seq) == sizeof seq)
        confirmed = seq;
    assert_int_equal (kill (pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (!WIFSIGNALED (status))
        fail_msg ("child exited with %d before being killed", WEXITSTATUS (status));
    while (read (fds[0], &seq, sizeof seq) == sizeof seq)
        confirmed = seq;
    close (fds[0]);
    assert_true (confirmed >= 30);

    outbox_t *outbox = open_outbox (fx->dir, NULL);
    size_t count = outbox_count (outbox);
    assert_true (count >= confirmed && count <= confirmed + 1);
    assert_int_equal (outbox_next_seq (outbox), count + 1);
    walk_t walk = {.all_exact = true, .ascending = true};
    char err[OUTBOX_ERR_LEN] = "";
    assert_int_equal (outbox_foreach (outbox, collect, &walk, err, sizeof err), 0);
    assert_int_equal (walk.n, count);
    assert_true (walk.all_exact);
    /* count seqs, ascending, from 1 to count: exactly 1..count, no gap. */
    assert_true (walk.ascending);
    assert_int_equal (walk.first, 1);
    assert_int_equal (walk.last, count);
    outbox_destroy (&outbox);
}

static void
test_map_grows (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    /* A 1 MiB map cannot hold 6 MB: the puts succeed only if the map grows. */
    outbox_limits_t limits = {.max_bytes = 64u << 20, .map_size = 1u << 20};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    outbox_item_t *items = items_make (1, 20, 100000);
    assert_int_equal (outbox_put_many (outbox, items, 20, NULL, err, sizeof err), 0);
    items_free (items, 20);
    for (int i = 0; i < 40; i++)
        if (put_next_sized (outbox, 100000, err, sizeof err) != 0)
            fail_msg ("put %d: %s", i, err);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, &limits);
    assert_int_equal (outbox_count (outbox), 60);
    assert_int_equal (outbox_bytes (outbox), 6000000);
    for (uint64_t seq = 1; seq <= 60; seq++)
        assert_batch (outbox, seq, 100000);
    outbox_destroy (&outbox);
}

static void
test_one_process_per_outbox (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *first = open_outbox (fx->dir, NULL);
    put_next (first);
    outbox_t *second = outbox_new (fx->dir, NULL, err, sizeof err);
    assert_null (second);
    assert_non_null (strstr (err, "in use"));
    char pid[32];
    snprintf (pid, sizeof pid, "pid %ld", (long)getpid ());
    assert_non_null (strstr (err, pid));
    /* The refused open did not disturb the first. */
    put_next (first);
    assert_int_equal (outbox_count (first), 2);
    outbox_destroy (&first);

    second = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (second), 2);
    outbox_destroy (&second);
}

typedef struct {
    outbox_t *outbox;
    int put_rc, remove_rc, get_rc, foreach_rc;
    char err[OUTBOX_ERR_LEN];
} reenter_t;

static int
reenter (void *arg, uint64_t seq, const void *payload, size_t size)
{
    (void)payload;
    (void)size;
    reenter_t *r = arg;
    void *got = NULL;
    size_t got_size;
    r->put_rc = outbox_put (r->outbox, outbox_next_seq (r->outbox), "x", 1, r->err, sizeof r->err);
    r->remove_rc = outbox_ack (r->outbox, &seq, 1, 1000, NULL, r->err, sizeof r->err);
    r->get_rc = outbox_get (r->outbox, seq, &got, &got_size, r->err, sizeof r->err);
    r->foreach_rc = outbox_foreach (r->outbox, collect, NULL, r->err, sizeof r->err);
    free (got);
    return 1;
}

static void
test_foreach_refuses_reentry (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_next (outbox);
    reenter_t r = {.outbox = outbox};
    assert_int_equal (outbox_foreach (outbox, reenter, &r, err, sizeof err), 0);
    assert_int_equal (r.put_rc, OUTBOX_ERR);
    assert_int_equal (r.remove_rc, OUTBOX_ERR);
    assert_int_equal (r.get_rc, OUTBOX_ERR);
    assert_int_equal (r.foreach_rc, OUTBOX_ERR);
    assert_non_null (strstr (r.err, "inside outbox_foreach"));
    assert_int_equal (outbox_count (outbox), 1);
    assert_int_equal (outbox_next_seq (outbox), 2);
    /* After the walk the same calls work. */
    assert_batch (outbox, 1, payload_size (1));
    assert_acked (outbox, 1, true);
    outbox_destroy (&outbox);
}

static void
test_creates_private_folders (void **state)
{
    fixture_t *fx = *state;
    char dir[700];
    snprintf (dir, sizeof dir, "%s/a/b/outbox", fx->root);
    outbox_t *outbox = open_outbox (dir, NULL);
    put_next (outbox);
    outbox_destroy (&outbox);
    const char *made[] = {"a", "a/b", "a/b/outbox"};
    for (size_t i = 0; i < 3; i++) {
        char path[800];
        snprintf (path, sizeof path, "%s/%s", fx->root, made[i]);
        struct stat st;
        assert_int_equal (stat (path, &st), 0);
        assert_true (S_ISDIR (st.st_mode));
        assert_int_equal (st.st_mode & 0777, 0700);
    }
    outbox = open_outbox (dir, NULL);
    assert_int_equal (outbox_count (outbox), 1);
    outbox_destroy (&outbox);
}

static void
test_refuses_bad_paths (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    char file[700];
    snprintf (file, sizeof file, "%s/plain", fx->root);
    int fd = open (file, O_WRONLY | O_CREAT, 0600);
    assert_true (fd >= 0);
    close (fd);
    assert_null (outbox_new (file, NULL, err, sizeof err));
    assert_non_null (strstr (err, "not a folder"));
    err[0] = '\0';
    assert_null (outbox_new ("", NULL, err, sizeof err));
    assert_true (err[0] != '\0');
    outbox_limits_t huge = {.max_bytes = UINT64_C (1) << 50};
    assert_null (outbox_new (fx->dir, &huge, err, sizeof err));
    assert_non_null (strstr (err, "max_bytes"));
}

/* An LMDB store that is not an outbox (e.g. the collector's, configured by mistake) is refused
 * and left untouched. */
static void
test_refuses_foreign_store (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (mkdir (fx->dir, 0700), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_open (env, fx->dir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, NULL, 0, &dbi), 0);
    MDB_val key = {5, "hello"}, value = {5, "world"};
    assert_int_equal (mdb_put (txn, dbi, &key, &value, 0), 0);
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);

    char err[OUTBOX_ERR_LEN] = "";
    assert_null (outbox_new (fx->dir, NULL, err, sizeof err));
    assert_non_null (strstr (err, "not an outbox"));

    MDB_stat st;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_open (env, fx->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal (mdb_env_stat (env, &st), 0);
    assert_int_equal (st.ms_entries, 1);
    mdb_env_close (env);
}

/* Should the stored high-water mark be lost or behind, the seqs still stored keep it honest. */
static void
test_next_seq_above_stored_batches (void **state)
{
    fixture_t *fx = *state;
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    for (int i = 0; i < 3; i++)
        put_next (outbox);
    outbox_destroy (&outbox);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 2), 0);
    assert_int_equal (mdb_env_open (env, fx->dir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, "meta", 0, &meta), 0);
    MDB_val key = {8, "next_seq"};
    assert_int_equal (mdb_del (txn, meta, &key, NULL), 0);
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);

    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 3);
    assert_int_equal (outbox_next_seq (outbox), 4);
    put_next (outbox);
    assert_batch (outbox, 4, payload_size (4));
    outbox_destroy (&outbox);
}

/* Puts n generated batches in one put_many labelled source. */
static void
put_file (outbox_t *outbox, size_t n, const char *source)
{
    char err[OUTBOX_ERR_LEN] = "";
    outbox_item_t *items = items_make (outbox_next_seq (outbox), n, 0);
    if (outbox_put_many (outbox, items, n, source, err, sizeof err) != 0)
        fail_msg ("put_many %s: %s", source ? source : "(no source)", err);
    items_free (items, n);
}

static void
assert_retained (outbox_t *outbox, size_t count, uint64_t bytes, int64_t oldest)
{
    outbox_retained_t retained;
    outbox_retained (outbox, &retained);
    assert_int_equal (retained.count, count);
    assert_int_equal (retained.bytes, bytes);
    assert_int_equal (retained.oldest_acked_at, oldest);
}

static uint64_t
sizes (uint64_t first, uint64_t last)
{
    uint64_t total = 0;
    for (uint64_t seq = first; seq <= last; seq++)
        total += payload_size (seq);
    return total;
}

static void
test_ack_retains (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_file (outbox, 5, "a.csv");
    assert_int_equal (outbox_acked_max (outbox), 0);
    uint64_t seqs[] = {2, 3, 3};
    size_t moved = 0;
    assert_int_equal (outbox_ack (outbox, seqs, 3, 5000, &moved, err, sizeof err), 0);
    assert_int_equal (moved, 2);
    assert_int_equal (outbox_count (outbox), 3);
    assert_int_equal (outbox_bytes (outbox), sizes (1, 5) - sizes (2, 3));
    assert_retained (outbox, 2, sizes (2, 3), 5000);
    assert_int_equal (outbox_acked_max (outbox), 3);
    assert_absent (outbox, 2); /* no longer pending: not sent again */
    walk_t walk = {.all_exact = true, .ascending = true};
    assert_int_equal (outbox_foreach (outbox, collect, &walk, err, sizeof err), 0);
    assert_int_equal (walk.n, 3);
    assert_int_equal (walk.seqs[1], 4);
    /* A repeated ack moves nothing; an ack of a seq never handed out raises no mark. */
    ack_at (outbox, 2, 6000, false);
    ack_at (outbox, 99, 6000, false);
    assert_int_equal (outbox_acked_max (outbox), 3);
    ack_at (outbox, 1, 6000, true);
    assert_int_equal (outbox_acked_max (outbox), 3);
    outbox_destroy (&outbox);

    /* Durable: the retained batches, their ack times and the mark survive a reopen. */
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 2);
    assert_retained (outbox, 3, sizes (1, 3), 5000);
    assert_int_equal (outbox_acked_max (outbox), 3);
    assert_int_equal (outbox_next_seq (outbox), 6);
    outbox_destroy (&outbox);
}

/* Every batch acknowledged, then the agent killed: the acks are on disk, as retained batches. */
static void
test_crash_after_acks (void **state)
{
    fixture_t *fx = *state;
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        char err[OUTBOX_ERR_LEN];
        outbox_t *outbox = outbox_new (fx->dir, NULL, err, sizeof err);
        if (!outbox)
            _exit (2);
        for (uint64_t seq = 1; seq <= 10; seq++) {
            uint8_t *data = malloc (payload_size (seq));
            if (!data)
                _exit (3);
            payload_fill (seq, data, payload_size (seq));
            if (outbox_put (outbox, seq, data, payload_size (seq), err, sizeof err))
                _exit (4);
            free (data);
        }
        uint64_t seqs[] = {1, 2, 3, 4, 5};
        if (outbox_ack (outbox, seqs, 5, 7000, NULL, err, sizeof err))
            _exit (5);
        raise (SIGKILL);
        _exit (6);
    }
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (!WIFSIGNALED (status))
        fail_msg ("child exited with %d before dying", WEXITSTATUS (status));
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 5);
    assert_retained (outbox, 5, sizes (1, 5), 7000);
    assert_int_equal (outbox_acked_max (outbox), 5);
    for (uint64_t seq = 6; seq <= 10; seq++)
        assert_batch (outbox, seq, payload_size (seq));
    outbox_destroy (&outbox);
}

static void
test_prune_by_age (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_file (outbox, 4, NULL);
    /* Acked out of seq order: the oldest ack goes first, whatever its seq. */
    ack_at (outbox, 3, 100, true);
    ack_at (outbox, 1, 200, true);
    ack_at (outbox, 2, 300, true);
    assert_retained (outbox, 3, sizes (1, 3), 100);
    size_t pruned = 99;
    assert_int_equal (outbox_prune (outbox, 250, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 2);
    assert_retained (outbox, 1, payload_size (2), 300);
    assert_int_equal (outbox_prune (outbox, 250, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 0);
    /* Pruning never touches pending batches. */
    assert_int_equal (outbox_prune (outbox, INT64_MAX, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 1);
    assert_retained (outbox, 0, 0, 0);
    assert_int_equal (outbox_count (outbox), 1);
    assert_batch (outbox, 4, payload_size (4));
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_retained (outbox, 0, 0, 0);
    assert_int_equal (outbox_count (outbox), 1);
    assert_int_equal (outbox_acked_max (outbox), 3);
    outbox_destroy (&outbox);
}

/* Retained batches never stop new ones: the oldest acknowledged give way, counted. */
static void
test_prune_for_room (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_limits_t limits = {.max_batches = 6, .max_bytes = 10000};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    for (int i = 0; i < 4; i++)
        assert_int_equal (put_next_sized (outbox, 1000, err, sizeof err), 0);
    for (uint64_t seq = 1; seq <= 4; seq++)
        ack_at (outbox, seq, (int64_t)seq * 10, true);
    assert_retained (outbox, 4, 4000, 10);
    /* 3 more batches: 3 + 4 > 6, so the oldest retained one goes. */
    outbox_item_t *items = items_make (5, 3, 1000);
    assert_int_equal (outbox_put_many (outbox, items, 3, "more.csv", err, sizeof err), 0);
    items_free (items, 3);
    assert_retained (outbox, 3, 3000, 20);
    outbox_retained_t retained;
    outbox_retained (outbox, &retained);
    assert_int_equal (retained.pruned_for_room, 1);
    /* By bytes: 3000 pending + 3000 retained + 5000 > 10000: one more goes. */
    assert_true (outbox_has_room (outbox, 5000));
    assert_int_equal (put_next_sized (outbox, 5000, err, sizeof err), 0);
    assert_retained (outbox, 2, 2000, 30);
    outbox_retained (outbox, &retained);
    assert_int_equal (retained.pruned_for_room, 2);
    /* Pending alone over the limit: full, and the retained ones are kept. */
    assert_false (outbox_has_room (outbox, 3000));
    assert_int_equal (put_next_sized (outbox, 3000, err, sizeof err), OUTBOX_ERR_FULL);
    assert_retained (outbox, 2, 2000, 30);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, &limits);
    assert_int_equal (outbox_count (outbox), 4);
    assert_int_equal (outbox_bytes (outbox), 8000);
    assert_retained (outbox, 2, 2000, 30);
    outbox_destroy (&outbox);
}

static void
test_requeue (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_file (outbox, 10, "x.csv");
    for (uint64_t seq = 1; seq <= 8; seq++)
        ack_at (outbox, seq, 100 + (int64_t)seq, true);
    outbox_recovery_t found;
    assert_int_equal (outbox_recover (outbox, 3, 9, 500, &found, err, sizeof err), 0);
    assert_int_equal (found.requeued, 6);
    assert_int_equal (found.pending, 1);
    assert_int_equal (found.lost, 0);
    assert_int_equal (found.newly_lost, 0);
    assert_int_equal (outbox_count (outbox), 8);
    assert_int_equal (outbox_bytes (outbox), sizes (3, 10));
    assert_retained (outbox, 2, sizes (1, 2), 101);
    /* Back to pending with the same seqs and payloads, so the sender sends them again. */
    walk_t walk = {.all_exact = true, .ascending = true};
    assert_int_equal (outbox_foreach (outbox, collect, &walk, err, sizeof err), 0);
    assert_int_equal (walk.n, 8);
    assert_true (walk.all_exact);
    assert_int_equal (walk.first, 3);
    assert_int_equal (walk.last, 10);
    /* Nothing more to do the second time; the mark stays where it was. */
    assert_int_equal (outbox_recover (outbox, 3, 9, 600, &found, err, sizeof err), 0);
    assert_int_equal (found.requeued, 0);
    assert_int_equal (found.pending, 7);
    assert_int_equal (outbox_acked_max (outbox), 8);
    /* A range past every seq handed out is clipped, and finds nothing lost. */
    assert_int_equal (outbox_recover (outbox, 2, 1000, 600, &found, err, sizeof err), 0);
    assert_int_equal (found.requeued, 1);
    assert_int_equal (found.pending, 8);
    assert_int_equal (found.lost, 0);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 9);
    assert_retained (outbox, 1, payload_size (1), 101);
    for (uint64_t seq = 2; seq <= 10; seq++)
        assert_batch (outbox, seq, payload_size (seq));
    /* Acknowledged again: retained again, with the new ack time. */
    ack_at (outbox, 5, 900, true);
    assert_retained (outbox, 2, payload_size (1) + payload_size (5), 101);
    outbox_destroy (&outbox);
}

typedef struct {
    uint64_t first[8], last[8];
    int64_t raised[8];
    char names[8][64];
    size_t n;
} ranges_t;

static int
collect_lost (void *arg, uint64_t first, uint64_t last, int64_t raised_at)
{
    ranges_t *ranges = arg;
    if (ranges->n < 8) {
        ranges->first[ranges->n] = first;
        ranges->last[ranges->n] = last;
        ranges->raised[ranges->n] = raised_at;
    }
    ranges->n++;
    return 0;
}

static int
collect_source (void *arg, const char *source, uint64_t first, uint64_t last, int64_t put_at)
{
    ranges_t *ranges = arg;
    if (ranges->n < 8) {
        ranges->first[ranges->n] = first;
        ranges->last[ranges->n] = last;
        ranges->raised[ranges->n] = put_at;
        snprintf (ranges->names[ranges->n], sizeof ranges->names[0], "%s", source);
    }
    ranges->n++;
    return 0;
}

static void
assert_alarm (outbox_t *outbox, uint64_t lost, size_t ranges, int64_t raised_at)
{
    char err[OUTBOX_ERR_LEN] = "";
    outbox_alarm_t alarm;
    if (outbox_alarm (outbox, &alarm, err, sizeof err))
        fail_msg ("outbox_alarm: %s", err);
    assert_int_equal (alarm.lost, lost);
    assert_int_equal (alarm.ranges, ranges);
    assert_int_equal (alarm.raised_at, raised_at);
}

/* Batches pruned here and missing from the store are lost: an alarm naming them and their files,
 * durable, merged as more is found, cleared on purpose only. */
static void
test_lost_alarm (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    time_t before = time (NULL);
    put_file (outbox, 4, "jan.csv");
    put_file (outbox, 3, "feb.csv");
    put_file (outbox, 3, "mar.csv");
    for (uint64_t seq = 1; seq <= 10; seq++)
        ack_at (outbox, seq, seq <= 5 ? 100 : 200, true);
    size_t pruned = 0;
    assert_int_equal (outbox_prune (outbox, 150, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 5);
    assert_alarm (outbox, 0, 0, 0);

    outbox_recovery_t found;
    assert_int_equal (outbox_recover (outbox, 2, 9, 300, &found, err, sizeof err), 0);
    assert_int_equal (found.requeued, 4);
    assert_int_equal (found.lost, 4);
    assert_int_equal (found.newly_lost, 4);
    assert_int_equal (found.first_lost, 2);
    assert_int_equal (found.last_lost, 5);
    assert_alarm (outbox, 4, 1, 300);

    ranges_t sources = {0};
    assert_int_equal (
        outbox_foreach_source (outbox, 2, 5, collect_source, &sources, err, sizeof err), 0);
    assert_int_equal (sources.n, 2);
    assert_string_equal (sources.names[0], "jan.csv");
    assert_int_equal (sources.first[0], 1);
    assert_int_equal (sources.last[0], 4);
    assert_true (sources.raised[0] >= before && sources.raised[0] <= time (NULL));
    assert_string_equal (sources.names[1], "feb.csv");
    assert_int_equal (sources.first[1], 5);
    assert_int_equal (sources.last[1], 7);
    ranges_t late = {0};
    assert_int_equal (
        outbox_foreach_source (outbox, 10, 10, collect_source, &late, err, sizeof err), 0);
    assert_int_equal (late.n, 1);
    assert_string_equal (late.names[0], "mar.csv");

    /* Found again with more: one range, the earliest time, only seq 1 is new. */
    assert_int_equal (outbox_recover (outbox, 1, 5, 400, &found, err, sizeof err), 0);
    assert_int_equal (found.lost, 5);
    assert_int_equal (found.newly_lost, 1);
    assert_alarm (outbox, 5, 1, 300);
    /* Found again with nothing new: nothing written, nothing new. */
    assert_int_equal (outbox_recover (outbox, 3, 4, 500, &found, err, sizeof err), 0);
    assert_int_equal (found.lost, 2);
    assert_int_equal (found.newly_lost, 0);
    outbox_destroy (&outbox);

    outbox = open_outbox (fx->dir, NULL);
    assert_alarm (outbox, 5, 1, 300);
    ranges_t lost = {0};
    assert_int_equal (outbox_foreach_lost (outbox, collect_lost, &lost, err, sizeof err), 0);
    assert_int_equal (lost.n, 1);
    assert_int_equal (lost.first[0], 1);
    assert_int_equal (lost.last[0], 5);
    /* Cleared from another process while the agent has the outbox open. */
    uint64_t cleared = 0;
    assert_int_equal (outbox_clear_alarm (fx->dir, &cleared, err, sizeof err), 0);
    assert_int_equal (cleared, 5);
    assert_alarm (outbox, 0, 0, 0);
    /* The agent goes on writing after the other writer. */
    put_file (outbox, 1, "apr.csv");
    assert_int_equal (outbox_count (outbox), 5);
    outbox_destroy (&outbox);
    outbox = open_outbox (fx->dir, NULL);
    assert_alarm (outbox, 0, 0, 0);
    assert_int_equal (outbox_count (outbox), 5);
    outbox_destroy (&outbox);
}

/* Lost ranges apart stay apart; one that fills the hole between two merges all three. */
static void
test_lost_ranges_merge (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_file (outbox, 20, NULL);
    for (uint64_t seq = 1; seq <= 20; seq++)
        ack_at (outbox, seq, 100, true);
    size_t pruned;
    assert_int_equal (outbox_prune (outbox, 101, &pruned, err, sizeof err), 0);
    assert_int_equal (pruned, 20);
    outbox_recovery_t found;
    assert_int_equal (outbox_recover (outbox, 3, 5, 700, &found, err, sizeof err), 0);
    assert_int_equal (outbox_recover (outbox, 10, 12, 600, &found, err, sizeof err), 0);
    assert_alarm (outbox, 6, 2, 600);
    assert_int_equal (outbox_recover (outbox, 6, 9, 800, &found, err, sizeof err), 0);
    assert_int_equal (found.newly_lost, 4);
    assert_alarm (outbox, 10, 1, 600);
    ranges_t lost = {0};
    assert_int_equal (outbox_foreach_lost (outbox, collect_lost, &lost, err, sizeof err), 0);
    assert_int_equal (lost.n, 1);
    assert_int_equal (lost.first[0], 3);
    assert_int_equal (lost.last[0], 12);
    assert_int_equal (outbox_recover (outbox, 1, 20, 900, &found, err, sizeof err), 0);
    assert_int_equal (found.newly_lost, 10);
    assert_alarm (outbox, 20, 1, 600);
    outbox_destroy (&outbox);
}

static void
test_store_id (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_string_equal (outbox_store_id (outbox), "");
    assert_int_equal (outbox_set_store_id (outbox, "store-a1", err, sizeof err), 0);
    assert_string_equal (outbox_store_id (outbox), "store-a1");
    outbox_destroy (&outbox);
    outbox = open_outbox (fx->dir, NULL);
    assert_string_equal (outbox_store_id (outbox), "store-a1");
    char longer[200];
    memset (longer, 'b', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal (outbox_set_store_id (outbox, longer, err, sizeof err), 0);
    assert_int_equal (strlen (outbox_store_id (outbox)), OUTBOX_STORE_ID_MAX);
    outbox_destroy (&outbox);
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (strlen (outbox_store_id (outbox)), OUTBOX_STORE_ID_MAX);
    outbox_destroy (&outbox);
}

/* status reads the outbox while the agent has it: no lock, nothing created, no change. */
static void
test_readonly_beside_agent (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    assert_null (outbox_open_readonly (fx->dir, err, sizeof err));
    assert_non_null (strstr (err, "no outbox"));
    struct stat st;
    assert_int_not_equal (stat (fx->dir, &st), 0); /* nothing was created */

    outbox_t *agent = open_outbox (fx->dir, NULL);
    put_file (agent, 6, "q1.csv");
    ack_at (agent, 1, 100, true);
    ack_at (agent, 2, 200, true);
    assert_int_equal (outbox_set_store_id (agent, "s-1", err, sizeof err), 0);
    outbox_t *reader = outbox_open_readonly (fx->dir, err, sizeof err);
    if (!reader)
        fail_msg ("outbox_open_readonly: %s", err);
    assert_int_equal (outbox_count (reader), 4);
    assert_int_equal (outbox_bytes (reader), sizes (3, 6));
    assert_retained (reader, 2, sizes (1, 2), 100);
    assert_int_equal (outbox_acked_max (reader), 2);
    assert_int_equal (outbox_next_seq (reader), 7);
    assert_string_equal (outbox_store_id (reader), "s-1");
    assert_false (outbox_has_room (reader, 1));
    assert_int_equal (put_next_sized (reader, 10, err, sizeof err), OUTBOX_ERR_READONLY);
    uint64_t seq = 3;
    assert_int_equal (outbox_ack (reader, &seq, 1, 300, NULL, err, sizeof err),
                      OUTBOX_ERR_READONLY);
    outbox_recovery_t found;
    assert_int_equal (outbox_recover (reader, 1, 2, 300, &found, err, sizeof err),
                      OUTBOX_ERR_READONLY);
    assert_batch (reader, 3, payload_size (3));
    ranges_t sources = {0};
    assert_int_equal (
        outbox_foreach_source (reader, 1, 6, collect_source, &sources, err, sizeof err), 0);
    assert_int_equal (sources.n, 1);
    assert_string_equal (sources.names[0], "q1.csv");
    /* The agent goes on while the reader is open. */
    ack_at (agent, 3, 300, true);
    outbox_destroy (&reader);
    outbox_destroy (&agent);
}

/* An outbox written by the previous format (batches and meta only) opens read-only as it is, and
 * read-write is upgraded in place, keeping every batch. */
static void
test_upgrades_format_1 (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (mkdir (fx->dir, 0700), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi batches, meta;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 2), 0);
    assert_int_equal (mdb_env_open (env, fx->dir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, "batches", MDB_CREATE, &batches), 0);
    assert_int_equal (mdb_dbi_open (txn, "meta", MDB_CREATE, &meta), 0);
    uint8_t number[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val key = {6, "format"}, value = {8, number};
    assert_int_equal (mdb_put (txn, meta, &key, &value, 0), 0);
    number[7] = 4;
    key = (MDB_val){8, "next_seq"};
    assert_int_equal (mdb_put (txn, meta, &key, &value, 0), 0);
    for (uint8_t seq = 2; seq <= 3; seq++) {
        uint8_t seq_key[8] = {0, 0, 0, 0, 0, 0, 0, seq};
        uint8_t *payload = payload_make (seq, payload_size (seq));
        key = (MDB_val){8, seq_key};
        value = (MDB_val){payload_size (seq), payload};
        assert_int_equal (mdb_put (txn, batches, &key, &value, 0), 0);
        free (payload);
    }
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);

    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *reader = outbox_open_readonly (fx->dir, err, sizeof err);
    if (!reader)
        fail_msg ("outbox_open_readonly: %s", err);
    assert_int_equal (outbox_count (reader), 2);
    assert_retained (reader, 0, 0, 0);
    assert_alarm (reader, 0, 0, 0);
    outbox_destroy (&reader);

    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 2);
    assert_int_equal (outbox_next_seq (outbox), 4);
    assert_batch (outbox, 2, payload_size (2));
    ack_at (outbox, 2, 100, true);
    assert_retained (outbox, 1, payload_size (2), 100);
    outbox_destroy (&outbox);

    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 2), 0);
    assert_int_equal (mdb_env_open (env, fx->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, "meta", 0, &meta), 0);
    key = (MDB_val){6, "format"};
    assert_int_equal (mdb_get (txn, meta, &key, &value), 0);
    assert_int_equal (value.mv_size, 8);
    assert_int_equal (((const uint8_t *)value.mv_data)[7], 3);
    mdb_txn_abort (txn);
    mdb_env_close (env);
}

/* ---------------------------------------------------------------- a file streamed in */

#define BIG (3u << 20) /* two of these pass OUTBOX_STAGE_CHUNK: a chunk reaches the disk */

/* Stages n batches of the given size at the next seqs. */
static void
stage_batches (outbox_t *outbox, size_t n, size_t size)
{
    char err[OUTBOX_ERR_LEN] = "";
    uint64_t first = outbox_next_seq (outbox) + outbox_stage_batches (outbox);
    for (size_t i = 0; i < n; i++) {
        uint8_t *data = payload_make (first + i, size);
        int rc = outbox_stage_add (outbox, first + i, data, size, 10, err, sizeof err);
        free (data);
        if (rc)
            fail_msg ("stage %zu: %d %s", i, rc, err);
    }
}

static outbox_file_t
file_record (const char *name)
{
    outbox_file_t file = {.name = name, .target = name, .taken_at = 1700000000, .rejected = 4};
    file.identity.size = 12345;
    file.identity.mtime_ns = 1700000000123456789;
    file.identity.ctime_ns = 1700000001123456789;
    file.identity.dev = 42;
    file.identity.ino = 4242;
    for (size_t i = 0; i < FILE_IDENTITY_HASH_BYTES; i++)
        file.identity.hash[i] = (uint8_t)(i * 7 + 1);
    return file;
}

typedef struct {
    size_t n;
    outbox_file_t last;
    char name[OUTBOX_SOURCE_MAX + 1], target[OUTBOX_SOURCE_MAX + 1];
} files_seen_t;

static int
see_file (void *arg, const outbox_file_t *file)
{
    files_seen_t *seen = arg;
    seen->n++;
    seen->last = *file;
    snprintf (seen->name, sizeof seen->name, "%s", file->name);
    snprintf (seen->target, sizeof seen->target, "%s", file->target);
    seen->last.name = seen->name;
    seen->last.target = seen->target;
    return 0;
}

static files_seen_t
files_of (outbox_t *outbox)
{
    files_seen_t seen = {0};
    char err[OUTBOX_ERR_LEN] = "";
    if (outbox_foreach_file (outbox, see_file, &seen, err, sizeof err))
        fail_msg ("foreach_file: %s", err);
    return seen;
}

/* Staged batches are invisible until the commit, which makes them pending all together with
 * the file's source and record; the identity comes back whole. */
static void
test_stage_commit (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_next (outbox);
    assert_int_equal (outbox_stage_begin (outbox, err, sizeof err), 0);
    assert_int_equal (outbox_stage_begin (outbox, err, sizeof err), OUTBOX_ERR_STAGE);
    assert_int_equal (put_next_sized (outbox, 10, err, sizeof err), OUTBOX_ERR_STAGE);
    stage_batches (outbox, 3, BIG); /* a chunk is written: still invisible */
    assert_int_equal (outbox_stage_batches (outbox), 3);
    assert_int_equal (outbox_count (outbox), 1);
    assert_int_equal (outbox_next_seq (outbox), 2);
    assert_absent (outbox, 2);
    walk_t walk = {.all_exact = true, .ascending = true};
    assert_int_equal (outbox_foreach (outbox, collect, &walk, err, sizeof err), 0);
    assert_int_equal (walk.n, 1);
    /* (A reader in another process sees 1 too: test_stage_crash. Not in this one: LMDB wants one
     * environment per file and process.) */

    outbox_file_t file = file_record ("april.csv");
    assert_int_equal (outbox_stage_commit (outbox, &file, err, sizeof err), 0);
    assert_int_equal (outbox_count (outbox), 4);
    assert_int_equal (outbox_bytes (outbox), payload_size (1) + 3 * (uint64_t)BIG);
    assert_int_equal (outbox_next_seq (outbox), 5);
    for (uint64_t seq = 2; seq <= 4; seq++)
        assert_batch (outbox, seq, BIG);
    files_seen_t seen = files_of (outbox);
    assert_int_equal (seen.n, 1);
    assert_string_equal (seen.name, "april.csv");
    assert_int_equal (seen.last.first_seq, 2);
    assert_int_equal (seen.last.last_seq, 4);
    assert_int_equal (seen.last.records, 30);
    assert_int_equal (seen.last.rejected, 4);
    assert_false (seen.last.held);
    assert_true (file_identity_equal (&seen.last.identity, &file.identity));
    outbox_destroy (&outbox);

    /* Durable, and seen read-only as well. */
    outbox_t *reader = outbox_open_readonly (fx->dir, err, sizeof err);
    assert_non_null (reader);
    assert_int_equal (outbox_count (reader), 4);
    seen = files_of (reader);
    assert_int_equal (seen.n, 1);
    assert_int_equal (seen.last.identity.ino, 4242);
    outbox_destroy (&reader);
}

/* An aborted stage leaves nothing, not even its seqs: the next file starts where it did. */
static void
test_stage_abort (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_stage_begin (outbox, err, sizeof err), 0);
    stage_batches (outbox, 3, BIG);
    assert_int_equal (outbox_stage_abort (outbox, err, sizeof err), 0);
    assert_int_equal (outbox_count (outbox), 0);
    assert_int_equal (outbox_next_seq (outbox), 1);
    assert_int_equal (files_of (outbox).n, 0);
    put_next (outbox);
    assert_batch (outbox, 1, payload_size (1));
    outbox_destroy (&outbox);
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 1);
    assert_int_equal (outbox_next_seq (outbox), 2);
    outbox_destroy (&outbox);
}

/* A crash while a file is streamed in: the chunks on disk are hidden from a reader, and deleted
 * at the next open; the seqs are handed out again (none was ever sent). */
static void
test_stage_crash (void **state)
{
    fixture_t *fx = *state;
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    put_next (outbox);
    outbox_destroy (&outbox);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        char err[OUTBOX_ERR_LEN] = "";
        outbox_t *child = outbox_new (fx->dir, NULL, err, sizeof err);
        if (!child || outbox_stage_begin (child, err, sizeof err))
            _exit (2);
        uint64_t first = outbox_next_seq (child);
        for (uint64_t i = 0; i < 3; i++) {
            uint8_t *data = malloc (BIG);
            if (!data)
                _exit (3);
            payload_fill (first + i, data, BIG);
            if (outbox_stage_add (child, first + i, data, BIG, 1, err, sizeof err))
                _exit (4);
            free (data);
        }
        _exit (0); /* no commit, no abort, no close */
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *reader = outbox_open_readonly (fx->dir, err, sizeof err);
    assert_non_null (reader);
    assert_int_equal (outbox_count (reader), 1);
    assert_int_equal (outbox_next_seq (reader), 2);
    outbox_destroy (&reader);
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_count (outbox), 1);
    assert_int_equal (outbox_next_seq (outbox), 2);
    assert_absent (outbox, 2);
    put_next (outbox);
    assert_batch (outbox, 2, payload_size (2));
    outbox_destroy (&outbox);
}

/* Pending plus staged within the limits; retained batches give way at the commit. */
static void
test_stage_limits (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_limits_t limits = {.max_batches = 4, .max_bytes = 10000};
    outbox_t *outbox = open_outbox (fx->dir, &limits);
    put_next_sized (outbox, 100, err, sizeof err);
    put_next_sized (outbox, 100, err, sizeof err);
    ack_at (outbox, 1, 1000, true);
    assert_int_equal (outbox_stage_begin (outbox, err, sizeof err), 0);
    uint8_t *data = payload_make (3, 20000);
    assert_int_equal (outbox_stage_add (outbox, 3, data, 20000, 1, err, sizeof err),
                      OUTBOX_ERR_TOO_BIG);
    assert_int_equal (outbox_stage_add (outbox, 3, data, 100, 1, err, sizeof err), 0);
    assert_int_equal (outbox_stage_add (outbox, 5, data, 100, 1, err, sizeof err), OUTBOX_ERR_SEQ);
    assert_int_equal (outbox_stage_add (outbox, 4, data, 100, 1, err, sizeof err), 0);
    assert_int_equal (outbox_stage_add (outbox, 5, data, 100, 1, err, sizeof err), 0);
    /* 1 pending + 3 staged = 4: the fifth does not fit, whatever the retained one */
    assert_int_equal (outbox_stage_add (outbox, 6, data, 100, 1, err, sizeof err), OUTBOX_ERR_FULL);
    assert_non_null (strstr (err, "max_batches"));
    assert_true (outbox_has_room_for (outbox, 3, 300));
    assert_false (outbox_has_room_for (outbox, 4, 300));
    assert_true (outbox_could_ever_fit (outbox, 4, 10000));
    assert_false (outbox_could_ever_fit (outbox, 5, 100));
    free (data);
    outbox_file_t file = file_record ("may.csv");
    assert_int_equal (outbox_stage_commit (outbox, &file, err, sizeof err), 0);
    assert_int_equal (outbox_count (outbox), 4);
    outbox_retained_t retained;
    outbox_retained (outbox, &retained);
    assert_int_equal (retained.count, 0); /* pruned for room */
    assert_int_equal (retained.pruned_for_room, 1);
    outbox_destroy (&outbox);
}

/* Files remembered (a held one with no batches), replaced by name, forgotten. */
static void
test_files_remembered (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    outbox_file_t file = file_record ("held.csv");
    file.held = true;
    assert_int_equal (outbox_file_remember (outbox, &file, err, sizeof err), 0);
    file.identity.size = 999;
    assert_int_equal (outbox_file_remember (outbox, &file, err, sizeof err), 0);
    outbox_file_t other = file_record ("other.csv");
    other.target = "other.1.csv";
    assert_int_equal (outbox_file_remember (outbox, &other, err, sizeof err), 0);
    outbox_destroy (&outbox);
    outbox = open_outbox (fx->dir, NULL);
    files_seen_t seen = files_of (outbox);
    assert_int_equal (seen.n, 2);
    assert_string_equal (seen.target, "other.1.csv");
    assert_int_equal (outbox_file_forget (outbox, "other.csv", err, sizeof err), 0);
    seen = files_of (outbox);
    assert_int_equal (seen.n, 1);
    assert_string_equal (seen.name, "held.csv");
    assert_true (seen.last.held);
    assert_int_equal (seen.last.identity.size, 999);
    assert_int_equal (seen.last.first_seq, 0);
    assert_int_equal (outbox_file_forget (outbox, "never.csv", err, sizeof err), 0);
    assert_int_equal (outbox_file_forget (outbox, "held.csv", err, sizeof err), 0);
    assert_int_equal (files_of (outbox).n, 0);
    outbox_destroy (&outbox);
}

typedef struct {
    size_t calls;
    char source[OUTBOX_SOURCE_MAX + 1];
    uint64_t first, last, records, rejected;
} delivered_t;

static void
on_delivered (void *arg, const char *source, uint64_t first, uint64_t last, int64_t put_at,
              uint64_t records, uint64_t rejected)
{
    (void)put_at;
    delivered_t *got = arg;
    got->calls++;
    snprintf (got->source, sizeof got->source, "%s", source);
    got->first = first;
    got->last = last;
    got->records = records;
    got->rejected = rejected;
}

/* The last Ack's time is kept durably; a file is reported delivered once its last pending batch
 * is acknowledged, whatever the order; the oldest pending batch's put time is known. */
static void
test_last_ack_and_delivered (void **state)
{
    fixture_t *fx = *state;
    char err[OUTBOX_ERR_LEN] = "";
    outbox_t *outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_last_ack_at (outbox), 0);
    int64_t put_at = 0;
    assert_int_equal (outbox_oldest_pending_at (outbox, &put_at, err, sizeof err), 0);
    assert_int_equal (put_at, 0);
    assert_int_equal (outbox_stage_begin (outbox, err, sizeof err), 0);
    stage_batches (outbox, 3, 100);
    outbox_file_t file = file_record ("june.csv");
    int64_t before = (int64_t)time (NULL);
    assert_int_equal (outbox_stage_commit (outbox, &file, err, sizeof err), 0);
    assert_int_equal (outbox_oldest_pending_at (outbox, &put_at, err, sizeof err), 0);
    assert_true (put_at >= before && put_at <= (int64_t)time (NULL));

    delivered_t got = {0};
    outbox_on_delivered (outbox, on_delivered, &got);
    ack_at (outbox, 3, 5000, true);
    ack_at (outbox, 1, 5001, true);
    assert_int_equal (got.calls, 0);
    assert_int_equal (outbox_last_ack_at (outbox), 5001);
    ack_at (outbox, 2, 5002, true);
    assert_int_equal (got.calls, 1);
    assert_string_equal (got.source, "june.csv");
    assert_int_equal (got.first, 1);
    assert_int_equal (got.last, 3);
    assert_int_equal (got.records, 30);
    assert_int_equal (got.rejected, 4);
    ack_at (outbox, 2, 5003, false); /* a repeated Ack: nothing moves, nothing said */
    assert_int_equal (got.calls, 1);
    assert_int_equal (outbox_last_ack_at (outbox), 5002);
    outbox_destroy (&outbox);
    outbox = open_outbox (fx->dir, NULL);
    assert_int_equal (outbox_last_ack_at (outbox), 5002);
    outbox_destroy (&outbox);
    outbox_t *reader = outbox_open_readonly (fx->dir, err, sizeof err);
    assert_non_null (reader);
    assert_int_equal (outbox_last_ack_at (reader), 5002);
    outbox_destroy (&reader);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown (test_foreach_order, setup, teardown),
        cmocka_unit_test_setup_teardown (test_empty_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown (test_seq_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown (test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown (test_limit_batches, setup, teardown),
        cmocka_unit_test_setup_teardown (test_limit_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown (test_wrong_seq_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown (test_put_many, setup, teardown),
        cmocka_unit_test_setup_teardown (test_put_many_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lower_limits_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown (test_crash_after_puts, setup, teardown),
        cmocka_unit_test_setup_teardown (test_crash_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown (test_map_grows, setup, teardown),
        cmocka_unit_test_setup_teardown (test_one_process_per_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown (test_foreach_refuses_reentry, setup, teardown),
        cmocka_unit_test_setup_teardown (test_creates_private_folders, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuses_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuses_foreign_store, setup, teardown),
        cmocka_unit_test_setup_teardown (test_next_seq_above_stored_batches, setup, teardown),
        cmocka_unit_test_setup_teardown (test_ack_retains, setup, teardown),
        cmocka_unit_test_setup_teardown (test_crash_after_acks, setup, teardown),
        cmocka_unit_test_setup_teardown (test_prune_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown (test_prune_for_room, setup, teardown),
        cmocka_unit_test_setup_teardown (test_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lost_alarm, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lost_ranges_merge, setup, teardown),
        cmocka_unit_test_setup_teardown (test_store_id, setup, teardown),
        cmocka_unit_test_setup_teardown (test_readonly_beside_agent, setup, teardown),
        cmocka_unit_test_setup_teardown (test_upgrades_format_1, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_commit, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_abort, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_crash, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_limits, setup, teardown),
        cmocka_unit_test_setup_teardown (test_files_remembered, setup, teardown),
        cmocka_unit_test_setup_teardown (test_last_ack_and_delivered, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
