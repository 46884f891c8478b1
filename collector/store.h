/* store: the collector's LMDB store. Records keyed by (body_id, record_id) with their revision, and
 * per-neighbourhood totals kept exactly in step with them, one write transaction per group of
 * batches. One writer (the thread calling store_apply); any number of reader threads. */
#ifndef TOTALPLACE_STORE_H
#define TOTALPLACE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spending.pb-c.h"
#include "store_checksum.h"
#include "store_codec.h"
#include "wire.h"

typedef struct _store_t store_t;

/* Error codes returned by store functions (0 is success). The messages say what to do. */
#define STORE_ERR          -1 /* I/O or LMDB failure; the message says which */
#define STORE_ERR_FULL     -2 /* the map is full and may not grow further; nothing was applied */
#define STORE_ERR_NOTFOUND -3 /* the neighbourhood, record or agent asked for is not stored */
#define STORE_ERR_NOSTORE  -4 /* no store there: no such folder, or no data.mdb in it */
#define STORE_ERR_DAMAGED                                                                          \
    -5                       /* data.mdb empty, truncated or not LMDB's; identity unreadable; a    \
                              * value that fails its checksum or LMDB finds the tree corrupt:      \
                              * from then on store_apply refuses every group */
#define STORE_ERR_FORMAT  -6 /* no identity (format 0), a newer format, or not a store of ours */
#define STORE_ERR_EXISTS  -7 /* store_init: the folder is not empty (it may hold a store) */
#define STORE_ERR_NOSPACE -8 /* the filesystem of the store is full; nothing was applied */

/* The store format this binary reads and writes. A store records its own at creation; docs/
 * architecture.md ("Store identity and format") says what a change of format requires. */
#define STORE_FORMAT_VERSION 2

/* A bigger buffer than any message needs: messages name the folder and what to do. */
#define STORE_ERR_LEN 1024

typedef struct {
    const char *path;    /* folder holding data.mdb, made by store_init; never created here */
    size_t map_size;     /* initial LMDB map size in bytes; 0 means 1 GiB */
    size_t max_map_size; /* the map doubles when full up to this; 0 means 1 TiB */
    bool read_only;      /* open for reading only (the CLI on the collector host) */
    bool no_sync; /* skip fsync at commit: benchmarks of the ceiling only, never production */
    /* store_apply_journaled: at most this many records of groups in the journal (DIR/journal)
     * before their transaction is committed; 0: no journal, every group is committed */
    size_t journal_records;
    unsigned journal_ms; /* and for at most this long; 0 means 1000 */
} store_options_t;

/* What one record did. Callers set every result to STORE_PENDING before store_apply; a result set
 * to STORE_REJECTED beforehand (with a reason) marks a record refused upstream, e.g. by
 * authorisation, which store_apply then leaves out. */
typedef enum {
    STORE_PENDING = 0,
    STORE_ACCEPTED,   /* a key not seen before */
    STORE_DUPLICATE,  /* same key, revision and content as stored: ignored */
    STORE_SUPERSEDED, /* higher revision than stored: replaced it in the record and the totals */
    STORE_STALE,      /* lower revision than stored: ignored */
    STORE_REJECTED,   /* invalid, or a conflict (same revision, other content), or would overflow */
} store_outcome_t;

typedef struct {
    store_outcome_t outcome;
    char reason[WIRE_REASON_LEN]; /* why, when REJECTED */
} store_result_t;

typedef struct {
    int64_t amount_pence;
    int64_t records;
} store_amount_t;

typedef struct {
    uint64_t batches;
    uint64_t accepted, duplicate, superseded, stale, rejected;
    uint64_t records_stored; /* keys held, withdrawn ones included */
    size_t map_size;         /* bytes */
    size_t used_bytes;       /* bytes of the map in use */
} store_counters_t;

typedef struct {
    const char *agent_id;
    uint64_t last_batch_seq; /* highest batch_seq applied from this agent */
    uint64_t batches;
    int64_t last_seen; /* unix seconds of the last batch applied */
} store_agent_t;

/* Who a store is: set once by store_init, never changed. */
#define STORE_ID_HEX_LEN 33 /* 32 lowercase hex digits (128 random bits) and the NUL */
typedef struct {
    char store_id[STORE_ID_HEX_LEN];
    uint32_t format; /* STORE_FORMAT_VERSION when it was made */
    int64_t created; /* unix seconds */
} store_identity_t;

/* Creates a new, empty store in path: a folder that does not exist yet (its parent must) or is
 * empty. It gets a random store id, the format STORE_FORMAT_VERSION and its creation time, all
 * committed durably before data.mdb appears in path (it is built in a hidden folder inside path
 * and moved in whole), so path never holds half a store. Refuses with STORE_ERR_EXISTS and changes
 * nothing when path holds anything, a store or not. Returns 0 and fills identity (may be NULL),
 * or an error code with a message in err. */
int store_init (const char *path, store_identity_t *identity, char *err, size_t err_len);

/* store_init with a given store id and creation time (its format is STORE_FORMAT_VERSION
 * whatever identity says): for `totalplace-collector upgrade`, whose new store is the same store
 * as the old one in a new format. */
int store_init_as (const char *path, const store_identity_t *identity, char *err, size_t err_len);

/* Opens an existing store; never creates one. Before LMDB maps data.mdb the file is checked
 * against its own meta pages (lmdb_file.h), then the store's identity is read. Opened for writing,
 * it applies and commits the groups of its journal (DIR/journal) that its last commit does not
 * hold (see store_apply_journaled): a journal of another store, one that does not follow this
 * store (a data.mdb restored beside a later journal) or one damaged before its end is refused
 * (STORE_ERR_DAMAGED, STORE_ERR_FORMAT) with what to do. On failure returns
 * NULL with a message in err saying what to do, and sets *code (code may be NULL):
 * STORE_ERR_NOSTORE (no folder, or no data.mdb: create one with `totalplace-collector init`),
 * STORE_ERR_DAMAGED (empty, truncated or not an LMDB file: restore a backup), STORE_ERR_FORMAT
 * (no identity, i.e. format 0; a newer format; or another program's LMDB file), or STORE_ERR. */
store_t *store_new (const store_options_t *options, int *code, char *err, size_t err_len);

/* Closes the store and sets *self_p to NULL; safe on NULL. */
void store_destroy (store_t **self_p);

/* Applies batches in ONE write transaction, committed durably before it returns 0 (together with
 * any groups store_apply_journaled left in the journal), with each agent's batch high-water mark
 * and the counters. results[b] has batches[b]->n_records
 * entries, filled with each record's outcome. marks_before (NULL when not wanted) has batch_count
 * entries: marks_before[b] is the last_batch_seq of batches[b]'s agent as stored just before
 * batches[b] was applied (0 for an agent never seen), taken in order within the group, so a
 * second batch of one agent sees the first one's mark. On error nothing at all is applied (and
 * marks_before means nothing), with a message in err: STORE_ERR_FULL when the map cannot grow;
 * STORE_ERR_NOSPACE when the filesystem is full (the message gives its free bytes);
 * STORE_ERR_DAMAGED once this store has met damage, here or in any reader thread (store_damage),
 * and for every call after that: the message says what was found and what to do; STORE_ERR
 * otherwise. The map grows (doubling up to max_map_size) when a transaction fills it, and the
 * group is retried. */
int store_apply (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
                 store_result_t *const *results, uint64_t *marks_before, char *err, size_t err_len);

/* For `totalplace-collector upgrade` (store_upgrade.h): applies records as store_apply does, in one
 * transaction, but moves no agent's mark and no counter (the upgrade copies them from the old
 * store with store_import_books). Results as store_apply's. */
int store_import (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
                  store_result_t *const *results, char *err, size_t err_len);

/* Writes agents (new ones only) and the counters (when not NULL) as given, in one transaction. */
int store_import_books (store_t *self, const store_agent_t *agents, size_t agent_count,
                        const store_counters_t *counters, char *err, size_t err_len);

/* As store_apply, with the same outcomes, marks and errors, but the group may be made durable in
 * the store's journal (appended and synced) instead of by committing its transaction: the
 * transaction then stays open for the next groups, and is committed (synced) once it holds
 * journal_records records, is journal_ms old, at store_apply, store_flush or store_destroy. For a
 * caller with more groups waiting: it may acknowledge the group when this returns 0, as after
 * store_apply. Until the commit, readers (every read function, in any thread or process) see the
 * store without the groups still in the journal, whole groups only. After a crash, the next
 * store_new that may write applies the journal's groups again, in order, before anything else.
 * Without a journal (journal_records 0, or read-only) it is store_apply. */
int store_apply_journaled (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
                           store_result_t *const *results, uint64_t *marks_before, char *err,
                           size_t err_len);

/* Commits the groups kept in the journal, if any (synced), and empties the journal: then every
 * reader sees them. Returns 0 or an error as store_apply's. */
int store_flush (store_t *self, char *err, size_t err_len);

/* Records of the groups applied and not committed yet (0 when none). */
size_t store_pending (const store_t *self);

/* Breakdowns of a neighbourhood's total. */
typedef enum {
    STORE_BY_NONE = 0,
    STORE_BY_BODY,
    STORE_BY_SERVICE,
    STORE_BY_FISCAL_YEAR,
    STORE_BY_MONTH,
    STORE_BY_POOLABLE,
    STORE_BY_NEIGHBOURHOOD,
} store_breakdown_t;

/* Filters on totals; NULL fields (and poolable < 0) match everything. */
typedef struct {
    const char *body_id;
    const char *service;
    const char *fiscal_year; /* "2013-14" */
    const char *month;       /* "2013-04" */
    int poolable;            /* 1, 0, or -1 for either */
} store_filter_t;

/* Called once per row, keys in ascending order; for STORE_BY_NONE once with key "". For
 * STORE_BY_POOLABLE the keys are "no" and "yes". Return non-zero to stop early. */
typedef int (store_row_fn) (void *arg, const char *key, store_amount_t amount);

/* Totals of one neighbourhood (or of all when neighbourhood is NULL) matching filter (NULL for
 * none), broken down as asked. Returns 0, STORE_ERR_NOTFOUND for a neighbourhood with no records,
 * or STORE_ERR. All rows come from one read transaction: they never show half a batch. */
int store_totals (store_t *self, const char *neighbourhood, store_breakdown_t by,
                  const store_filter_t *filter, store_row_fn *row, void *arg, char *err,
                  size_t err_len);

/* Several breakdowns in one question, and sums of several neighbourhoods (a place). */
#define STORE_MAX_BREAKDOWNS 3
typedef struct {
    /* The neighbourhoods summed, by code: NULL for every neighbourhood. Codes the store does not
     * know (no records) add nothing; a code given twice counts once. */
    const char *const *neighbourhoods;
    size_t neighbourhood_count;
    store_breakdown_t by[STORE_MAX_BREAKDOWNS]; /* the first by_count, none of them STORE_BY_NONE */
    size_t by_count;                            /* 0 to STORE_MAX_BREAKDOWNS */
    const store_filter_t *filter;               /* NULL for none */
    bool strict; /* a neighbourhood asked for has no records: STORE_ERR_NOTFOUND, not a zero */
} store_question_t;

/* Called once per row with by_count keys (one key "" when by_count is 0), rows in ascending order
 * of their keys compared in turn. Return non-zero to stop early. */
typedef int (store_keys_fn) (void *arg, const char *const *keys, store_amount_t amount);

/* Totals of the question's neighbourhoods (the sum of them, exact in pence: an overflow of int64
 * is an error, never a wrong total) matching its filter, broken down by each combination of its
 * breakdowns that has records (one row, zero when nothing matches, without a breakdown). All rows
 * come from one read transaction. Returns 0, STORE_ERR_NOTFOUND (strict only) or STORE_ERR. */
int store_totals_of (store_t *self, const store_question_t *question, store_keys_fn *row, void *arg,
                     char *err, size_t err_len);

/* Every neighbourhood with its total, ranked by amount (largest first, then by code). */
int store_neighbourhoods (store_t *self, store_row_fn *row, void *arg, char *err, size_t err_len);

/* Looks up one stored record (withdrawn ones too). On 0, *record is the stored record: free it with
 * protobuf_c_message_free_unpacked(&(*record)->base, NULL). STORE_ERR_NOTFOUND when not stored. */
int store_get_record (store_t *self, const char *body_id, const char *record_id,
                      Totalplace__SpendingRecord **record, char *err, size_t err_len);

/* Counters kept in the store (they survive restarts) and the map's size. */
int store_counters (store_t *self, store_counters_t *counters, char *err, size_t err_len);

/* Calls fn once per agent that ever delivered a batch, in agent id order. */
typedef int (store_agent_fn) (void *arg, const store_agent_t *agent);
int store_agents (store_t *self, store_agent_fn *fn, void *arg, char *err, size_t err_len);

/* The last_batch_seq stored for agent_id, from a read transaction: 0 (and success) for an agent
 * that never delivered a batch. Returns 0, or STORE_ERR with a message. */
int store_agent_mark (store_t *self, const char *agent_id, uint64_t *mark, char *err,
                      size_t err_len);

/* The store's identity, read when it was opened (it never changes). Returns 0. */
int store_identity (store_t *self, store_identity_t *identity);

/* Every value read is checked against its checksum (store_checksum.h) before it is used: a value
 * that fails it, has the wrong size or does not decode, and a tree LMDB reports corrupt, make the
 * reading function fail with STORE_ERR_DAMAGED and a message naming the database and the key
 * (store_key_text), never a wrong answer. The store remembers it (store_damage). */

/* Whether this store has met damage since it was opened, in any thread. When it has and finding
 * is not NULL, copies what was found first (database, key, what is wrong) into finding. */
bool store_damage (store_t *self, char *finding, size_t finding_len);

/* A key as text for messages: printable ASCII and valid UTF-8 as they are, the unit separator
 * between fields as '|', any other byte as \xNN; cut with "..." to fit out_len (at least 8).
 * Returns out. (Messages of the store name keys by their words: ids as the texts they stand for,
 * e.g. "2023-04|E01000002|GB-TEST|adult-social-care|N" for a cell.) */
const char *store_key_text (const void *key, size_t key_len, char *out, size_t out_len);

/* The key in db of the words of text (the form messages show, '|' between fields: records
 * "BODY|RECORD_ID", cells "YYYY-MM|NEIGHBOURHOOD|BODY|SERVICE|Y", neighbourhoods "CODE", texts
 * "KIND#ID", agents and meta the key itself), ids looked up in the store's dictionaries: for test
 * tools that alter one stored value. Returns 0 with the key's bytes in out and *len,
 * STORE_ERR_NOTFOUND when a text is not in the store or the words are not a key of db, or another
 * error with a message. */
int store_key_from_text (store_t *self, store_db_t db, const char *text, unsigned char *out,
                         size_t out_len, size_t *len, char *err, size_t err_len);

/* ---------------------------------------------------------------- whole-store reads */

/* One read transaction over the whole store, for verify: every entry of every database, as the
 * collector sees them at one moment, while it goes on writing. */
typedef struct _store_snapshot_t store_snapshot_t;

/* Begins the snapshot; NULL with a message on error. Hold it briefly in a process that writes:
 * growing the map waits for it. */
store_snapshot_t *store_snapshot_new (store_t *store, char *err, size_t err_len);

/* Ends the snapshot and sets *self_p to NULL; safe on NULL and twice. */
void store_snapshot_destroy (store_snapshot_t **self_p);

/* The commit the snapshot sees: LMDB's id of the last write transaction committed before it began
 * (it grows by one per commit), so that two reads of one store can say whether they saw the same
 * state. */
uint64_t store_snapshot_commit (store_snapshot_t *self);

/* Entries LMDB counts in db. */
uint64_t store_snapshot_entries (store_snapshot_t *self, store_db_t db);

/* One entry of a database as the snapshot read it, its key split and its value decoded
 * (store_codec.h). */
typedef struct {
    store_db_t db;
    const char *key; /* the key's bytes (not NUL-terminated), valid during the call */
    size_t key_len;
    /* NULL when the value is sound and the key one of db's; else what is wrong ("fails its
     * checksum", "does not decode as a record", "has a key that is not a cell's"), and nothing
     * below is set. */
    const char *damage;
    /* records: the body's id and the record id from the key, the rest from the value */
    uint32_t body;
    const char *record_id;
    size_t record_id_len;
    store_codec_record_t record;
    store_codec_cell_t cell;   /* cells: the key */
    uint32_t neighbourhood;    /* neighbourhoods: the key */
    store_amount_t amount;     /* cells, neighbourhoods */
    store_agent_t agent;       /* agents (agent_id is the key as text) */
    store_counters_t counters; /* meta "counters": the outcome counters only */
    bool is_counters;          /* meta: this is the "counters" entry */
    const char *text;          /* meta, any other key: the value's bytes; texts: the text */
    size_t text_len;           /* (NUL-terminated for texts) */
    unsigned kind;             /* texts, text_ids */
    uint32_t id;               /* texts: the key's id; text_ids: the id the value names */
    uint64_t hash;             /* text_ids: the key's hash */
    unsigned probe;            /* text_ids */
} store_entry_t;

/* Return non-zero to stop the scan; scan then returns that value. */
typedef int (store_entry_fn) (void *arg, const store_entry_t *entry);

/* The text of id of kind as the snapshot sees it: 0 with *text (NUL-terminated, valid while the
 * snapshot lives) and *len, STORE_ERR_NOTFOUND, or STORE_ERR_DAMAGED (remembered) with a message.
 */
int store_snapshot_text (store_snapshot_t *self, unsigned kind, uint32_t id, const char **text,
                         size_t *len, char *err, size_t err_len);

/* A sound entry of records as the API gives records (store_get_record): free it with
 * protobuf_c_message_free_unpacked. Returns 0, or an error (damage of a text it names). */
int store_snapshot_record (store_snapshot_t *self, const store_entry_t *entry,
                           Totalplace__SpendingRecord **record, char *err, size_t err_len);

/* A key of db as messages show it, ids named by their texts in the snapshot. Returns out. */
const char *store_snapshot_key_text (store_snapshot_t *self, store_db_t db, const void *key,
                                     size_t key_len, char *out, size_t out_len);

/* The hash text_ids keys text by in this store (store_codec_text_hash under its own key). */
uint64_t store_snapshot_text_hash (store_snapshot_t *self, const char *text, size_t len);

/* Calls fn for every entry of db in key order; damaged values are passed on (entry->damage) and
 * the scan goes on. Returns 0, fn's non-zero value, STORE_ERR_DAMAGED when LMDB reports the tree
 * corrupt (the message names the database and the last key read; the entries after it were not
 * seen), or STORE_ERR. */
int store_snapshot_scan (store_snapshot_t *self, store_db_t db, store_entry_fn *fn, void *arg,
                         char *err, size_t err_len);

/* ---------------------------------------------------------------- copies */

/* Writes a compacted copy of the store (LMDB's mdb_env_copy2 with MDB_CP_COMPACT: only pages in
 * use, in one read transaction, so the collector goes on writing) as data.mdb into folder, which
 * must exist and hold no data.mdb. Returns 0, STORE_ERR_NOSPACE when the filesystem of folder is
 * full, or STORE_ERR, with a message. On error folder may hold part of a copy: the caller removes
 * it (store_backup does). */
int store_copy (store_t *self, const char *folder, char *err, size_t err_len);

/* fsync of a folder, so that the names made, moved or removed in it are durable. Returns 0, or -1
 * with errno. */
int store_sync_folder (const char *path);

/* Name of an outcome, e.g. "duplicate". */
const char *store_outcome_name (store_outcome_t outcome);

/* The exit status an executable should end with when a store function failed with code: 78
 * (EX_CONFIG) for no store or a format this binary does not use, 65 (EX_DATAERR) for a damaged
 * store (a damaged data.mdb, or damage met while reading), 73 (EX_CANTCREAT) when store_init
 * refused a folder that is not empty (or a backup its destination), 74 (EX_IOERR) when the disk is
 * full, 1 otherwise.
 * systemd's unit lists 65 and 78 in RestartPreventExitStatus: restarting cannot mend them. */
int store_exit_status (int code);

#endif
