/* store_verify: checks a whole store from one read transaction, beside a running collector: every
 * value against its checksum, every record decodes and validates, every cell and neighbourhood
 * total against the same totals recomputed from the live records, and the agents' marks and the
 * counters against what store_apply keeps together. The `totalplace verify` and `backup` commands
 * use it. */
#ifndef TOTALPLACE_STORE_VERIFY_H
#define TOTALPLACE_STORE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* What is wrong. */
typedef enum {
    STORE_VERIFY_DAMAGED = 0, /* a value fails its checksum, has the wrong size, does not decode */
    STORE_VERIFY_UNREADABLE,  /* LMDB reports a tree corrupt: the rest of the database is unread */
    STORE_VERIFY_INVALID,     /* a record or text fails validation, an id names no text, the two
                               * dictionaries disagree */
    STORE_VERIFY_MISSING,     /* a total the live records make is not stored; a text no text_ids
                               * entry leads to */
    STORE_VERIFY_EXTRA,       /* a total is stored that no live record makes */
    STORE_VERIFY_DIFFERENT,   /* a stored total differs from the records' */
    STORE_VERIFY_INVARIANT,   /* agents or counters disagree with each other or the records */
} store_verify_kind_t;

/* Name of a kind: "damaged", "unreadable", "invalid", "missing", "extra", "different",
 * "invariant". */
const char *store_verify_kind_name (store_verify_kind_t kind);

#define STORE_VERIFY_TEXT_LEN 192

/* One thing found wrong. Totals come with both sides where both exist. */
typedef struct {
    store_verify_kind_t kind;
    store_db_t db;
    char key[STORE_VERIFY_TEXT_LEN];  /* store_key_text of the key, "" for none */
    char what[STORE_VERIFY_TEXT_LEN]; /* what is wrong, for people */
    bool has_stored, has_recomputed;  /* totals: which sides exist */
    store_amount_t stored, recomputed;
} store_verify_finding_t;

typedef struct {
    uint64_t records, live_records, withdrawn_records; /* read from the records database */
    uint64_t cells, neighbourhoods, agents;            /* stored totals and agents read */
    uint64_t texts, text_ids;                          /* dictionary entries read */
    uint64_t recomputed_cells, recomputed_neighbourhoods;
    uint64_t findings; /* all of them: the sum of the counts below */
    uint64_t damaged, unreadable, invalid, missing, extra, different, invariants;
    size_t memory_bytes; /* the recomputed totals' tables at their largest */
    double seconds;
} store_verify_summary_t;

/* Called with each finding, at most max_findings times; return non-zero to stop verifying. */
typedef int (store_verify_fn) (void *arg, const store_verify_finding_t *finding);

/* Verifies the store in one snapshot: the dictionaries (each text valid for its kind, ids given in
 * turn, texts and text_ids saying the same both ways, no text under two ids), every value's
 * checksum, every record (its ids name stored texts), every total. The recomputed totals are kept
 * by a 64-bit SipHash of their key under a key drawn at random for each run (24 bytes a total and a
 * bit, in a table sized to be 80% full: about 30 bytes a total), not by the key itself: two keys of
 * one hash would show as totals that differ, once in about 2^64 / n^2 runs, and a run after would
 * not repeat it. Missing totals are named from a second pass over the records, made only when some
 * are missing. fn (may be NULL) receives the first max_findings findings; summary counts them all.
 * Returns 0 when the store was read to the end (summary->findings says whether anything differs),
 * or STORE_ERR with a message when verifying could not run (out of memory, no read transaction). */
int store_verify (store_t *store, size_t max_findings, store_verify_fn *fn, void *arg,
                  store_verify_summary_t *summary, char *err, size_t err_len);

#endif
