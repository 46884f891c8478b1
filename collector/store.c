/* store: records and per-neighbourhood totals in one LMDB environment, changed only together. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "err_text.h"
#include "lmdb_file.h"
#include "period.h"
#include "quoted_text.h"
#include "report.h"
#include "store_codec.h"
#include "store_dict.h"
#include "store_journal.h"

/* Key layout of store format 2 (docs/architecture.md, "LMDB layout"; the bytes in store_codec.h).
 * Texts are interned: records and cells hold ids, and two dictionaries say what each id stands
 * for, both ways. Ids are 4 big-endian bytes in keys, so cells sort month-first and one
 * neighbourhood's cells of a month are one run; values are varints.
 *   records:        body id, record_id               -> flags, revision, month, ids, amount
 *   cells:          month, neighbourhood, body, service ids, Y|N -> amount, records
 *   neighbourhoods: neighbourhood id                  -> amount, records
 *   texts:          kind, id                          -> the text and a NUL
 *   text_ids:       kind, hash of the text, probe     -> id
 *   agents:         agent_id                          -> agent_value_t
 *   meta:           "counters"                        -> counters_value_t
 *                   "format"                          -> format version, decimal text ("2")
 *                   "store_id"                        -> 32 lowercase hex digits
 *                   "created"                         -> unix seconds, decimal text
 *                   "journal"                         -> the last group committed (uint64)
 * Every value above is followed by its checksum (store_checksum.h, STORE_CHECKSUM_BYTES), checked
 * on every read. The identity is text so that mdb_dump shows it and any future version can read
 * its format: that layout (decimal text, then the checksum) is the same in every format. Messages
 * name keys as text, fields joined by the unit separator (shown as '|'):
 * "2023-04|E01000002|GB-TEST|adult-social-care|N". */
#define KEY_SEPARATOR '\x1f'
#define MAX_KEY_BYTES 511 /* LMDB's default maximum key size */

/* The writer's cache of texts and their ids (store_dict.h): bounded, so that a store with millions
 * of suppliers keeps the collector's memory in bounds. */
#define DICT_CACHE_BYTES ((size_t)16 << 20)

#define DEFAULT_MAP_SIZE     ((size_t)1 << 30)
#define DEFAULT_MAX_MAP_SIZE ((size_t)1 << 40)

typedef struct {
    uint64_t last_batch_seq;
    uint64_t batches;
    int64_t last_seen;
} agent_value_t;

typedef struct {
    uint64_t batches, accepted, duplicate, superseded, stale, rejected;
} counters_value_t;

static const char COUNTERS_KEY[] = "counters";
static const char FORMAT_KEY[] = "format";
static const char STORE_ID_KEY[] = "store_id";
static const char CREATED_KEY[] = "created";
static const char JOURNAL_KEY[] = "journal";

typedef struct _apply_memory_t apply_memory_t;
static void apply_memory_free (apply_memory_t **memory_p);

/* Bytes of a value: its payload, then its checksum. */
#define AGENT_VALUE_BYTES    (sizeof (agent_value_t) + STORE_CHECKSUM_BYTES)
#define COUNTERS_VALUE_BYTES (sizeof (counters_value_t) + STORE_CHECKSUM_BYTES)
#define META_TEXT_MAX        64 /* the longest identity value */

struct _store_t {
    MDB_env *env;
    MDB_dbi records, cells, neighbourhoods, agents, meta, texts, text_ids;
    unsigned char hash_key[16]; /* the key of text hashes in text_ids: the store id's bits */
    store_dict_cache_t *dict;   /* the writer's texts and ids */
    char *path;
    bool read_only;
    /* Set once any thread meets damage; store_apply then refuses. finding says what was met
     * first, under damage_lock. */
    atomic_bool damaged;
    pthread_mutex_t damage_lock;
    char finding[STORE_ERR_LEN / 2];
    size_t max_map_size;
    /* Readers hold it shared for the life of a read transaction; growing the map takes it
     * exclusively, because LMDB requires no live transaction in this process while resizing. */
    pthread_rwlock_t resize_lock;
    apply_memory_t *memory; /* the writer's working memory, see store_apply */
    store_identity_t identity;
    /* The open transaction (see "the open transaction" below): groups applied and not committed
     * yet, each of them in the journal. */
    store_journal_t *journal; /* NULL: read-only, or journal_records 0 (every group committed) */
    MDB_txn *open_txn;
    uint64_t seq;              /* the last group applied (committed or in the open transaction) */
    uint64_t committed_seq;    /* the last group committed: meta "journal" */
    uint64_t open_records;     /* records of the groups in the open transaction */
    uint64_t open_journaled;   /* of its groups, those in the journal (acknowledged on that) */
    double open_since;         /* monotonic seconds: when it began */
    bool replay_needed;        /* it was given up with groups in the journal: apply them again */
    uint64_t replay_exact_seq; /* a group of the journal that needs exact mode (0: none) */
    size_t journal_records;
    double journal_seconds;
};

#define fail(err, err_len, code, ...) err_text (err, err_len, code, __VA_ARGS__)

const char *
store_outcome_name (store_outcome_t outcome)
{
    switch (outcome) {
    case STORE_PENDING:
        return "pending";
    case STORE_ACCEPTED:
        return "accepted";
    case STORE_DUPLICATE:
        return "duplicate";
    case STORE_SUPERSEDED:
        return "superseded";
    case STORE_STALE:
        return "stale";
    case STORE_REJECTED:
        return "rejected";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- damage and checked values */

static MDB_dbi
dbi_of (const store_t *self, store_db_t db)
{
    switch (db) {
    case STORE_DB_RECORDS:
        return self->records;
    case STORE_DB_CELLS:
        return self->cells;
    case STORE_DB_NEIGHBOURHOODS:
        return self->neighbourhoods;
    case STORE_DB_AGENTS:
        return self->agents;
    case STORE_DB_TEXTS:
        return self->texts;
    case STORE_DB_TEXT_IDS:
        return self->text_ids;
    case STORE_DB_META:
    case STORE_DB_COUNT:
        break;
    }
    return self->meta;
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at p (at most left bytes), 0 if none. */
static size_t
utf8_sequence (const unsigned char *p, size_t left)
{
    size_t len = p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (p[0] >= 0xF5 || len == 0 || len > left)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    /* Overlong three- and four-byte forms, surrogates and code points past U+10FFFF. */
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) ||
        (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))
        return 0;
    return len;
}

/* The text of the key byte at bytes[i] (and the bytes it takes) into piece; returns its length. */
static size_t
key_piece (const unsigned char *bytes, size_t len, size_t i, char piece[8], size_t *take)
{
    *take = 1;
    if (bytes[i] == (unsigned char)KEY_SEPARATOR)
        piece[0] = '|';
    else if (bytes[i] >= 0x20 && bytes[i] < 0x7F)
        piece[0] = (char)bytes[i];
    else if ((*take = utf8_sequence (bytes + i, len - i)) != 0) {
        memcpy (piece, bytes + i, *take);
        return *take;
    }
    else {
        *take = 1;
        return (size_t)snprintf (piece, 8, "\\x%02x", bytes[i]);
    }
    return 1;
}

const char *
store_key_text (const void *key, size_t key_len, char *out, size_t out_len)
{
    const unsigned char *bytes = key;
    char piece[8];
    size_t take, whole = 0;
    for (size_t i = 0; i < key_len; i += take)
        whole += key_piece (bytes, key_len, i, piece, &take);
    /* Cut only a text that does not fit, keeping room for "..." and the NUL. */
    size_t room = whole < out_len ? out_len - 1 : out_len - 4, o = 0;
    for (size_t i = 0; i < key_len; i += take) {
        size_t piece_len = key_piece (bytes, key_len, i, piece, &take);
        if (o + piece_len > room)
            break;
        memcpy (out + o, piece, piece_len);
        o += piece_len;
    }
    if (whole >= out_len) {
        memcpy (out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static void
note_damage (store_t *self, const char *finding)
{
    pthread_mutex_lock (&self->damage_lock);
    if (!atomic_load (&self->damaged)) {
        snprintf (self->finding, sizeof self->finding, "%s", finding);
        atomic_store (&self->damaged, true);
    }
    pthread_mutex_unlock (&self->damage_lock);
}

bool
store_damage (store_t *self, char *finding, size_t finding_len)
{
    if (!atomic_load (&self->damaged))
        return false;
    if (finding && finding_len) {
        pthread_mutex_lock (&self->damage_lock);
        snprintf (finding, finding_len, "%s", self->finding);
        pthread_mutex_unlock (&self->damage_lock);
    }
    return true;
}

/* The dictionaries as txn sees them. */
static store_dict_txn_t
dict_of (const store_t *self, MDB_txn *txn)
{
    return (store_dict_txn_t){txn, self->texts, self->text_ids, self->hash_key};
}

/* Appends the text of id of kind to words (its used bytes *n, room for len): the dictionary's
 * text, or "kind#id" when there is no transaction or the dictionary cannot say (damage). */
static void
append_name (store_t *self, MDB_txn *txn, unsigned kind, uint32_t id, char *words, size_t *n,
             size_t len)
{
    const char *text = NULL;
    size_t text_len = 0;
    store_dict_fault_t fault;
    store_dict_txn_t dict = dict_of (self, txn);
    char number[48];
    if (!txn || store_dict_text (&dict, kind, id, &text, &text_len, &fault) != STORE_DICT_OK) {
        text_len = (size_t)snprintf (number, sizeof number, "%s#%u", store_text_kind_name (kind),
                                     (unsigned)id);
        text = number;
    }
    if (*n + text_len + 1 >= len)
        text_len = len - 1 - *n;
    memcpy (words + *n, text, text_len);
    *n += text_len;
}

static void
append_bytes (const char *bytes, size_t bytes_len, char *words, size_t *n, size_t len)
{
    if (*n + bytes_len + 1 >= len)
        bytes_len = len - 1 - *n;
    memcpy (words + *n, bytes, bytes_len);
    *n += bytes_len;
}

/* The words of a key of db, fields joined by the unit separator; 0 when the key is not one of
 * db's (then it is shown byte by byte). */
static size_t
key_words (store_t *self, MDB_txn *txn, store_db_t db, const void *key, size_t key_len, char *words,
           size_t len)
{
    size_t n = 0;
    const char separator[1] = {KEY_SEPARATOR};
    switch (db) {
    case STORE_DB_RECORDS: {
        uint32_t body;
        const char *record_id;
        size_t id_len;
        if (store_codec_record_key_split (key, key_len, &body, &record_id, &id_len))
            return 0;
        append_name (self, txn, STORE_TEXT_BODY, body, words, &n, len);
        append_bytes (separator, 1, words, &n, len);
        append_bytes (record_id, id_len, words, &n, len);
        return n;
    }
    case STORE_DB_CELLS: {
        store_codec_cell_t cell;
        char period[PERIOD_LEN];
        if (store_codec_cell_key_split (key, key_len, &cell))
            return 0;
        store_codec_period (cell.month, period);
        append_bytes (period, strlen (period), words, &n, len);
        const unsigned kinds[3] = {STORE_TEXT_NEIGHBOURHOOD, STORE_TEXT_BODY, STORE_TEXT_SERVICE};
        const uint32_t ids[3] = {cell.neighbourhood, cell.body, cell.service};
        for (int i = 0; i < 3; i++) {
            append_bytes (separator, 1, words, &n, len);
            append_name (self, txn, kinds[i], ids[i], words, &n, len);
        }
        append_bytes (separator, 1, words, &n, len);
        append_bytes (cell.poolable ? "Y" : "N", 1, words, &n, len);
        return n;
    }
    case STORE_DB_NEIGHBOURHOODS: {
        uint32_t id;
        if (store_codec_id_decode (key, key_len, &id))
            return 0;
        append_name (self, txn, STORE_TEXT_NEIGHBOURHOOD, id, words, &n, len);
        return n;
    }
    case STORE_DB_TEXTS: {
        unsigned kind;
        uint32_t id;
        if (store_codec_text_key_split (key, key_len, &kind, &id))
            return 0;
        return (size_t)snprintf (words, len, "%s#%u", store_text_kind_name (kind), (unsigned)id);
    }
    case STORE_DB_TEXT_IDS: {
        unsigned kind, probe;
        uint64_t hash;
        if (store_codec_text_id_key_split (key, key_len, &kind, &hash, &probe))
            return 0;
        return (size_t)snprintf (words, len, "%s#%016llx.%u", store_text_kind_name (kind),
                                 (unsigned long long)hash, probe);
    }
    case STORE_DB_AGENTS:
    case STORE_DB_META:
    case STORE_DB_COUNT:
        break;
    }
    return 0;
}

/* A key of db as people read it (store_key_text of its words), ids named through txn (NULL: by
 * number). */
static const char *
describe_key (store_t *self, MDB_txn *txn, store_db_t db, const void *key, size_t key_len,
              char *out, size_t out_len)
{
    char words[2 * MAX_KEY_BYTES + 64];
    size_t n = key_words (self, txn, db, key, key_len, words, sizeof words);
    if (n == 0)
        return store_key_text (key, key_len, out, out_len);
    return store_key_text (words, n, out, out_len);
}

/* Remembers damage of db at key (NULL: the database as a whole) and fills err with what was found,
 * where (ids in the key named through txn, which may be NULL), and what to do. Returns
 * STORE_ERR_DAMAGED. */
static int damaged (store_t *self, MDB_txn *txn, store_db_t db, const void *key, size_t key_len,
                    char *err, size_t err_len, const char *format, ...)
    __attribute__ ((format (printf, 8, 9)));

static int
damaged (store_t *self, MDB_txn *txn, store_db_t db, const void *key, size_t key_len, char *err,
         size_t err_len, const char *format, ...)
{
    char what[192], key_text[160], finding[sizeof self->finding];
    va_list args;
    va_start (args, format);
    vsnprintf (what, sizeof what, format, args);
    va_end (args);
    if (db >= STORE_DB_COUNT)
        snprintf (finding, sizeof finding, "the store %s", what);
    else if (key)
        snprintf (finding, sizeof finding, "the value of key \"%s\" in database \"%s\" %s",
                  describe_key (self, txn, db, key, key_len, key_text, sizeof key_text),
                  store_db_name (db), what);
    else
        snprintf (finding, sizeof finding, "database \"%s\" %s", store_db_name (db), what);
    note_damage (self, finding);
    return fail (err, err_len, STORE_ERR_DAMAGED,
                 "the store in %s is damaged: %s; nothing was read from it. Run `totalplace "
                 "verify --db %s`, then restore the store from a backup (docs/operations.md)",
                 self->path, finding, self->path);
}

/* Below this many free bytes, an EIO from a write is taken for a full disk: LMDB reports a
 * short write as EIO, and a short write leaves next to nothing free. */
#define DISK_FULL_BELOW_BYTES (64LL << 20)

/* Free bytes of the filesystem holding path, for messages; -1 when unknown. */
static long long
free_bytes (const char *path)
{
    struct statvfs fs;
    if (statvfs (path, &fs) != 0)
        return -1;
    return (long long)fs.f_bavail * (long long)fs.f_frsize;
}

/* A failed write: the disk is full when the system says so (ENOSPC, EDQUOT), or when LMDB reports
 * a short write as EIO and the filesystem has next to nothing left. */
static bool
disk_full (int rc, const char *path)
{
    if (rc == ENOSPC || rc == EDQUOT)
        return true;
    long long left = free_bytes (path);
    return rc == EIO && left >= 0 && left < DISK_FULL_BELOW_BYTES;
}

/* LMDB's verdicts that the file's B-trees are broken, as opposed to a failure of the moment. */
static bool
tree_damage (int rc)
{
    return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID;
}

/* An LMDB failure while reading db at key (NULL when walking it from its start). */
static int
read_failed (store_t *self, MDB_txn *txn, int rc, store_db_t db, const void *key, size_t key_len,
             char *err, size_t err_len)
{
    if (tree_damage (rc))
        return damaged (self, txn, db, key, key_len, err, err_len,
                        "cannot be read: LMDB reports its tree corrupt (%s)", mdb_strerror (rc));
    return fail (err, err_len, STORE_ERR, "cannot read database \"%s\" of the store in %s: %s",
                 store_db_name (db), self->path, mdb_strerror (rc));
}

/* Checks a value read from db under key: its checksum, then (size > 0) its payload's size. Sets
 * *payload to the bytes before the checksum. hash_key may be NULL (derived here), or given when
 * the caller writes the value back. Returns 0, or -1 with what is wrong in what. */
static int
check_value (store_db_t db, const MDB_val *key, const MDB_val *value, size_t size,
             const store_checksum_key_t *hash_key, MDB_val *payload, char *what, size_t what_len)
{
    *payload = (MDB_val){0, NULL};
    store_checksum_key_t derived;
    if (!hash_key) {
        store_checksum_key (db, key->mv_data, key->mv_size, &derived);
        hash_key = &derived;
    }
    size_t len = 0;
    int rc = store_checksum_open (hash_key, value->mv_data, value->mv_size, &len);
    if (rc == STORE_CHECKSUM_SHORT)
        snprintf (what, what_len, "has %zu bytes, too few to hold its checksum", value->mv_size);
    else if (rc)
        snprintf (what, what_len, "fails its checksum");
    else if (size && len != size)
        snprintf (what, what_len, "has %zu bytes, not %zu", value->mv_size,
                  size + STORE_CHECKSUM_BYTES);
    else {
        *payload = (MDB_val){len, value->mv_data};
        return 0;
    }
    return -1;
}

/* check_value, remembering damage and filling err. */
static int
open_value (store_t *self, MDB_txn *txn, store_db_t db, const MDB_val *key, const MDB_val *value,
            size_t size, const store_checksum_key_t *hash_key, MDB_val *payload, char *err,
            size_t err_len)
{
    char what[96];
    if (check_value (db, key, value, size, hash_key, payload, what, sizeof what) == 0)
        return 0;
    return damaged (self, txn, db, key->mv_data, key->mv_size, err, err_len, "%s", what);
}

/* Reads the value of db at key and checks it (size as check_value's). Returns 0 with its payload,
 * MDB_NOTFOUND, or an error code with a message. */
static int
get_checked (store_t *self, MDB_txn *txn, store_db_t db, const MDB_val *key, size_t size,
             MDB_val *payload, char *err, size_t err_len)
{
    MDB_val value;
    int rc = mdb_get (txn, dbi_of (self, db), (MDB_val *)key, &value);
    if (rc == MDB_NOTFOUND)
        return rc;
    if (rc)
        return read_failed (self, txn, rc, db, key->mv_data, key->mv_size, err, err_len);
    return open_value (self, txn, db, key, &value, size, NULL, payload, err, err_len);
}

/* Reads a fixed-size value of db at key into out (size bytes). Returns 0, MDB_NOTFOUND (out
 * untouched), or an error code with a message. */
static int
get_fixed (store_t *self, MDB_txn *txn, store_db_t db, const MDB_val *key, void *out, size_t size,
           char *err, size_t err_len)
{
    MDB_val payload;
    int rc = get_checked (self, txn, db, key, size, &payload, err, err_len);
    if (rc == 0)
        memcpy (out, payload.mv_data, size);
    return rc;
}

/* Decodes a total (cells, neighbourhoods) whose checksum was checked; damage when it is not one. */
static int
decode_amount (store_t *self, MDB_txn *txn, store_db_t db, const MDB_val *key,
               const MDB_val *payload, store_amount_t *amount, char *err, size_t err_len)
{
    if (store_codec_amount_decode (payload->mv_data, payload->mv_size, &amount->amount_pence,
                                   &amount->records))
        return damaged (self, txn, db, key->mv_data, key->mv_size, err, err_len,
                        "does not decode as a total");
    return 0;
}

/* Reads the total of db at key. Returns 0, MDB_NOTFOUND (amount untouched), or an error. */
static int
get_amount (store_t *self, MDB_txn *txn, store_db_t db, const MDB_val *key, store_amount_t *amount,
            char *err, size_t err_len)
{
    MDB_val payload;
    int rc = get_checked (self, txn, db, key, 0, &payload, err, err_len);
    return rc ? rc : decode_amount (self, txn, db, key, &payload, amount, err, err_len);
}

/* What a dictionary function's fault means for the store: damage named by database and key, a
 * full map (APPLY_MAP_FULL, for the writer to grow it), or an LMDB failure. */
#define APPLY_MAP_FULL 1
static int
dict_failed (store_t *self, MDB_txn *txn, const store_dict_fault_t *fault, char *err,
             size_t err_len)
{
    if (fault->damaged)
        return damaged (self, txn, fault->db, fault->key_len ? fault->key : NULL, fault->key_len,
                        err, err_len, "%s", fault->what);
    if (fault->lmdb_rc == MDB_MAP_FULL)
        return APPLY_MAP_FULL;
    return fail (err, err_len, STORE_ERR, "cannot use database \"%s\" of the store in %s: %s",
                 store_db_name (fault->db), self->path, mdb_strerror (fault->lmdb_rc));
}

/* Puts len bytes of payload and their checksum at key (flags as mdb_put's, or mdb_cursor_put's
 * when cursor is given). hash_key may be NULL. Returns LMDB's code. */
static int
put_value (MDB_txn *txn, MDB_cursor *cursor, MDB_dbi dbi, store_db_t db, MDB_val *key,
           const void *payload, size_t len, const store_checksum_key_t *hash_key,
           unsigned int flags)
{
    unsigned char buffer[META_TEXT_MAX + 64 + STORE_CHECKSUM_BYTES];
    if (len > sizeof buffer - STORE_CHECKSUM_BYTES)
        return MDB_BAD_VALSIZE;
    store_checksum_key_t derived;
    if (!hash_key) {
        store_checksum_key (db, key->mv_data, key->mv_size, &derived);
        hash_key = &derived;
    }
    memcpy (buffer, payload, len);
    store_checksum_seal (hash_key, buffer, len);
    MDB_val value = {len + STORE_CHECKSUM_BYTES, buffer};
    return cursor ? mdb_cursor_put (cursor, key, &value, flags)
                  : mdb_put (txn, dbi, key, &value, flags);
}

/* ---------------------------------------------------------------- opening and closing */

int
store_exit_status (int code)
{
    switch (code) {
    case STORE_ERR_NOSTORE:
    case STORE_ERR_FORMAT:
        return 78; /* EX_CONFIG: the configuration names no store this binary can use */
    case STORE_ERR_DAMAGED:
        return 65; /* EX_DATAERR */
    case STORE_ERR_EXISTS:
        return 73; /* EX_CANTCREAT */
    case STORE_ERR_NOSPACE:
        return 74; /* EX_IOERR */
    default:
        return 1;
    }
}

/* Opens the databases in txn, creating them when create is set: meta alone (meta_only), whose
 * identity says the format before anything else is opened, or all of them. */
static int
open_databases (store_t *self, MDB_txn *txn, bool create, bool meta_only, const char *path,
                char *err, size_t err_len)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } databases[] = {{"meta", &self->meta},        {"records", &self->records},
                     {"cells", &self->cells},      {"neighbourhoods", &self->neighbourhoods},
                     {"agents", &self->agents},    {"texts", &self->texts},
                     {"text_ids", &self->text_ids}};
    size_t count = meta_only ? 1 : sizeof databases / sizeof databases[0];
    for (size_t i = 0; i < count; i++) {
        int rc = mdb_dbi_open (txn, databases[i].name, create ? MDB_CREATE : 0, databases[i].dbi);
        if (rc == MDB_NOTFOUND)
            return fail (err, err_len, STORE_ERR_FORMAT,
                         "%s holds an LMDB file that is not a totalplace store (it has no \"%s\" "
                         "database); give the folder of a store made by `totalplace-collector "
                         "init`",
                         path, databases[i].name);
        if (rc)
            return fail (err, err_len, tree_damage (rc) ? STORE_ERR_DAMAGED : STORE_ERR,
                         "cannot open database \"%s\" in %s: %s", databases[i].name, path,
                         mdb_strerror (rc));
    }
    return 0;
}

/* Parses the decimal text of a meta value; -1 unless it is all digits and at most max. */
static int
parse_meta_number (const MDB_val *value, uint64_t max, uint64_t *number)
{
    if (value->mv_size == 0 || value->mv_size > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < value->mv_size; i++) {
        char c = ((const char *)value->mv_data)[i];
        if (c < '0' || c > '9')
            return -1;
        n = n * 10 + (uint64_t)(c - '0');
    }
    if (n > max)
        return -1;
    *number = n;
    return 0;
}

/* Reads the identity value name from meta: 0 with its text in *value; MDB_NOTFOUND; or an error
 * (a value failing its checksum is damage). */
static int
get_meta (store_t *self, MDB_txn *txn, const char *name, MDB_val *value, char *err, size_t err_len)
{
    MDB_val key = {strlen (name), (void *)name}, stored;
    int rc = mdb_get (txn, self->meta, &key, &stored);
    if (rc == MDB_NOTFOUND)
        return rc;
    if (rc)
        return read_failed (self, txn, rc, STORE_DB_META, key.mv_data, key.mv_size, err, err_len);
    return open_value (self, txn, STORE_DB_META, &key, &stored, 0, NULL, value, err, err_len);
}

/* Reads the identity and checks that this binary uses its format (docs/architecture.md). */
static int
read_identity (store_t *self, MDB_txn *txn, store_identity_t *identity, char *err, size_t err_len)
{
    const char *path = self->path;
    MDB_val value;
    int rc = get_meta (self, txn, FORMAT_KEY, &value, err, err_len);
    if (rc == MDB_NOTFOUND)
        return fail (err, err_len, STORE_ERR_FORMAT,
                     "the store in %s has no identity: it was made before stores had one "
                     "(format 0), and this totalplace uses format %d only. Create a new store "
                     "(`totalplace-collector init --state-dir NEW_DIR`) and drop the agents' "
                     "source files into their inboxes again: the new store deduplicates, so "
                     "nothing counts twice (docs/operations.md)",
                     path, STORE_FORMAT_VERSION);
    if (rc)
        return rc;
    uint64_t format;
    if (parse_meta_number (&value, UINT32_MAX, &format))
        return fail (err, err_len, STORE_ERR_DAMAGED,
                     "the store in %s is damaged: its format version is unreadable; restore it "
                     "from a backup (docs/operations.md)",
                     path);
    if (format > STORE_FORMAT_VERSION)
        return fail (err, err_len, STORE_ERR_FORMAT,
                     "the store in %s is of format %llu, newer than this totalplace knows "
                     "(format %d): upgrade totalplace",
                     path, (unsigned long long)format, STORE_FORMAT_VERSION);
    if (format < STORE_FORMAT_VERSION)
        return fail (err, err_len, STORE_ERR_FORMAT,
                     "the store in %s is of format %llu, and this totalplace uses format %d: "
                     "stop the collector and run `totalplace-collector upgrade --state-dir %s`, "
                     "which writes a format %d store beside it from its records, verifies it and "
                     "swaps it in, keeping the old one (docs/operations.md)",
                     path, (unsigned long long)format, STORE_FORMAT_VERSION, path,
                     STORE_FORMAT_VERSION);
    identity->format = (uint32_t)format;

    rc = get_meta (self, txn, STORE_ID_KEY, &value, err, err_len);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    bool sound = rc == 0 && value.mv_size == STORE_ID_HEX_LEN - 1;
    for (size_t i = 0; sound && i < value.mv_size; i++) {
        char c = ((const char *)value.mv_data)[i];
        sound = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }
    uint64_t created = 0;
    if (sound) {
        memcpy (identity->store_id, value.mv_data, value.mv_size);
        identity->store_id[value.mv_size] = '\0';
        rc = get_meta (self, txn, CREATED_KEY, &value, err, err_len);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        sound = rc == 0 && parse_meta_number (&value, INT64_MAX, &created) == 0;
    }
    if (!sound)
        return fail (err, err_len, STORE_ERR_DAMAGED,
                     "the store in %s is damaged: its identity (store id, creation time) is "
                     "unreadable; restore it from a backup (docs/operations.md)",
                     path);
    identity->created = (int64_t)created;
    /* Text hashes are keyed by the store's own random bits. */
    sodium_hex2bin (self->hash_key, sizeof self->hash_key, identity->store_id, STORE_ID_HEX_LEN - 1,
                    NULL, NULL, NULL);
    return 0;
}

/* Checks the folder and data.mdb before LMDB maps anything. */
static int
check_store_files (const char *path, char *err, size_t err_len)
{
    struct stat st;
    const char *missing = NULL;
    char data_path[PATH_MAX];
    if (stat (path, &st) != 0) {
        if (errno != ENOENT)
            return fail (err, err_len, STORE_ERR, "cannot reach the store folder %s: %s", path,
                         strerror (errno));
        missing = "the folder does not exist";
    }
    else if (!S_ISDIR (st.st_mode))
        missing = "it is not a folder";
    else if ((size_t)snprintf (data_path, sizeof data_path, "%s/data.mdb", path) >=
             sizeof data_path)
        return fail (err, err_len, STORE_ERR, "store path %.64s... is too long", path);
    if (!missing) {
        char why[PATH_MAX + 256];
        int rc = lmdb_file_check (data_path, NULL, why, sizeof why);
        if (rc == LMDB_FILE_MISSING)
            missing = "it holds no data.mdb";
        else if (rc == LMDB_FILE_IO)
            return fail (err, err_len, STORE_ERR, "%s", why);
        else if (rc)
            return fail (err, err_len, STORE_ERR_DAMAGED,
                         "the store in %s is damaged and was not opened: %s. Restore it from a "
                         "backup (docs/operations.md); if it never held data, empty the folder "
                         "and run `totalplace-collector init` there",
                         path, why);
    }
    if (missing)
        return fail (err, err_len, STORE_ERR_NOSTORE,
                     "no store in %s (%s): create one with `totalplace-collector init "
                     "--state-dir %s` (or restore a backup there)",
                     path, missing, path);
    return 0;
}

/* LMDB's own verdicts on a file that passed check_store_files but still is not sound. */
static int
env_open_code (int rc)
{
    return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH ||
                   rc == MDB_PAGE_NOTFOUND
               ? STORE_ERR_DAMAGED
               : STORE_ERR;
}

static int replay_journal (store_t *self, char *err, size_t err_len);
static void open_abort (store_t *self);
static int open_commit (store_t *self, char *err, size_t err_len);

/* The writer's journal: the last group committed, from meta; the journal's later groups (a crash)
 * applied and committed; the journal kept open when journal_records allows one, else removed. */
static int
open_journal (store_t *self, const store_options_t *options, char *err, size_t err_len)
{
    self->journal_records = options->journal_records;
    self->journal_seconds = (options->journal_ms ? options->journal_ms : 1000) / 1000.0;
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot begin transaction in %s: %s", self->path,
                     mdb_strerror (rc));
    MDB_val key = {sizeof JOURNAL_KEY - 1, (void *)JOURNAL_KEY};
    uint64_t seq = 0;
    rc = get_fixed (self, txn, STORE_DB_META, &key, &seq, sizeof seq, err, err_len);
    mdb_txn_abort (txn);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    self->seq = self->committed_seq = seq;
    char path[PATH_MAX];
    if ((size_t)snprintf (path, sizeof path, "%s/journal", self->path) >= sizeof path)
        return fail (err, err_len, STORE_ERR, "store path %.64s... is too long", self->path);
    if (access (path, F_OK) != 0 && !options->journal_records)
        return 0;
    self->journal = store_journal_open (self->path, self->hash_key, err, err_len);
    if (!self->journal)
        return STORE_ERR_DAMAGED;
    rc = replay_journal (self, err, err_len);
    if (rc == 0 && !options->journal_records) {
        store_journal_close (&self->journal);
        unlink (path);
    }
    return rc;
}

store_t *
store_new (const store_options_t *options, int *code, char *err, size_t err_len)
{
    int ignored;
    code = code ? code : &ignored;
    if (!options || !options->path || !*options->path) {
        *code = fail (err, err_len, STORE_ERR, "store path is missing");
        return NULL;
    }
    *code = check_store_files (options->path, err, err_len);
    if (*code)
        return NULL;
    if (sodium_init () < 0) {
        *code = fail (err, err_len, STORE_ERR, "cannot start libsodium for the checksums");
        return NULL;
    }
    store_t *self = calloc (1, sizeof *self);
    if (!self) {
        *code = fail (err, err_len, STORE_ERR, "out of memory");
        return NULL;
    }
    self->read_only = options->read_only;
    self->max_map_size = options->max_map_size ? options->max_map_size : DEFAULT_MAX_MAP_SIZE;
    size_t map_size = options->map_size ? options->map_size : DEFAULT_MAP_SIZE;
    if (map_size > self->max_map_size)
        self->max_map_size = map_size;
    self->path = strdup (options->path);
    if (!self->path) {
        free (self);
        *code = fail (err, err_len, STORE_ERR, "out of memory");
        return NULL;
    }
    if (pthread_rwlock_init (&self->resize_lock, NULL) != 0) {
        free (self->path);
        free (self);
        *code = fail (err, err_len, STORE_ERR, "cannot create lock");
        return NULL;
    }
    if (pthread_mutex_init (&self->damage_lock, NULL) != 0) {
        *code = fail (err, err_len, STORE_ERR, "cannot create lock");
        goto err_lock;
    }
    atomic_init (&self->damaged, false);
    int rc = mdb_env_create (&self->env);
    if (rc) {
        *code =
            fail (err, err_len, STORE_ERR, "cannot create LMDB environment: %s", mdb_strerror (rc));
        goto err_mutex;
    }
    mdb_env_set_maxdbs (self->env, 8);
    mdb_env_set_mapsize (self->env, map_size);
    unsigned int flags = MDB_NOTLS;
    if (self->read_only)
        flags |= MDB_RDONLY;
    if (options->no_sync)
        flags |= MDB_NOSYNC;
    rc = mdb_env_open (self->env, options->path, flags, 0600);
    if (rc) {
        *code = fail (err, err_len, env_open_code (rc), "cannot open the store in %s: %s",
                      options->path, mdb_strerror (rc));
        goto err_env;
    }
    /* A reader adopts the map size the writer recorded, so counters report the store's own. */
    if (self->read_only)
        mdb_env_set_mapsize (self->env, 0);
    /* Handles opened in a read transaction serve every later one once it commits. */
    MDB_txn *txn;
    rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        *code = fail (err, err_len, STORE_ERR, "cannot begin transaction in %s: %s", options->path,
                      mdb_strerror (rc));
        goto err_env;
    }
    *code = open_databases (self, txn, false, true, options->path, err, err_len);
    if (*code == 0)
        *code = read_identity (self, txn, &self->identity, err, err_len);
    if (*code == 0)
        *code = open_databases (self, txn, false, false, options->path, err, err_len);
    if (*code) {
        mdb_txn_abort (txn);
        goto err_env;
    }
    rc = mdb_txn_commit (txn);
    if (rc) {
        *code = fail (err, err_len, STORE_ERR, "cannot open the databases in %s: %s", options->path,
                      mdb_strerror (rc));
        goto err_env;
    }
    if (!self->read_only && (*code = open_journal (self, options, err, err_len)) != 0) {
        open_abort (self);
        store_journal_close (&self->journal);
        apply_memory_free (&self->memory);
        store_dict_cache_destroy (&self->dict);
        goto err_env;
    }
    return self;

err_env:
    mdb_env_close (self->env);
err_mutex:
    pthread_mutex_destroy (&self->damage_lock);
err_lock:
    pthread_rwlock_destroy (&self->resize_lock);
    free (self->path);
    free (self);
    return NULL;
}

/* ---------------------------------------------------------------- creating a store */

/* Writes the databases and the identity of a new store into the environment at dir. */
static int
create_in (const char *dir, const store_identity_t *identity, char *err, size_t err_len)
{
    store_t scratch = {0}; /* only its environment and database handles are used */
    int rc = mdb_env_create (&scratch.env);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot create LMDB environment: %s",
                     mdb_strerror (rc));
    mdb_env_set_maxdbs (scratch.env, 8);
    MDB_txn *txn = NULL;
    rc = mdb_env_open (scratch.env, dir, 0, 0600);
    if (rc == 0)
        rc = mdb_txn_begin (scratch.env, NULL, 0, &txn);
    if (rc) {
        rc = fail (err, err_len, STORE_ERR, "cannot create the store in %s: %s", dir,
                   mdb_strerror (rc));
        goto out;
    }
    rc = open_databases (&scratch, txn, true, false, dir, err, err_len);
    char format[16], created[24];
    snprintf (format, sizeof format, "%u", (unsigned)identity->format);
    snprintf (created, sizeof created, "%lld", (long long)identity->created);
    const char *keys[] = {FORMAT_KEY, STORE_ID_KEY, CREATED_KEY};
    const char *values[] = {format, identity->store_id, created};
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        MDB_val key = {strlen (keys[i]), (void *)keys[i]};
        rc = put_value (txn, NULL, scratch.meta, STORE_DB_META, &key, values[i], strlen (values[i]),
                        NULL, MDB_NOOVERWRITE);
        if (rc)
            rc = fail (err, err_len, STORE_ERR, "cannot write the store's %s: %s", keys[i],
                       mdb_strerror (rc));
    }
    if (rc == 0) {
        rc = mdb_txn_commit (txn); /* synced: a new store is durable before it is moved in */
        txn = NULL;
        if (rc)
            rc = fail (err, err_len, STORE_ERR, "cannot commit the new store: %s",
                       mdb_strerror (rc));
    }
out:
    if (txn)
        mdb_txn_abort (txn);
    mdb_env_close (scratch.env);
    return rc;
}

/* Fails with STORE_ERR_EXISTS unless path is an empty folder; *created says whether it made it. */
static int
claim_folder (const char *path, bool *created, char *err, size_t err_len)
{
    *created = false;
    if (mkdir (path, 0700) == 0) {
        *created = true;
        return 0;
    }
    if (errno != EEXIST)
        return fail (err, err_len, STORE_ERR, "cannot create the store folder %s: %s%s", path,
                     strerror (errno), errno == ENOENT ? " (create its parent folder first)" : "");
    DIR *dir = opendir (path);
    if (!dir)
        return fail (err, err_len, errno == ENOTDIR ? STORE_ERR_EXISTS : STORE_ERR,
                     "cannot create a store in %s: %s", path, strerror (errno));
    char first[NAME_MAX + 1] = "";
    bool has_store = false;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
            continue;
        if (!*first)
            snprintf (first, sizeof first, "%s", entry->d_name);
        if (strcmp (entry->d_name, "data.mdb") == 0)
            has_store = true;
    }
    closedir (dir);
    if (has_store)
        return fail (err, err_len, STORE_ERR_EXISTS,
                     "%s already holds a store (data.mdb): init never touches an existing store; "
                     "give an empty or new folder",
                     path);
    if (*first)
        return fail (err, err_len, STORE_ERR_EXISTS,
                     "%s is not empty (it holds \"%s\"): init creates a store only in an empty or "
                     "new folder",
                     path, first);
    return 0;
}

int
store_sync_folder (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

int
store_init (const char *path, store_identity_t *identity, char *err, size_t err_len)
{
    if (sodium_init () < 0)
        return fail (err, err_len, STORE_ERR, "cannot start libsodium for the store id");
    store_identity_t made = {.format = STORE_FORMAT_VERSION, .created = (int64_t)time (NULL)};
    unsigned char id[(STORE_ID_HEX_LEN - 1) / 2];
    randombytes_buf (id, sizeof id);
    sodium_bin2hex (made.store_id, sizeof made.store_id, id, sizeof id);
    int rc = store_init_as (path, &made, err, err_len);
    if (rc == 0 && identity)
        *identity = made;
    return rc;
}

int
store_init_as (const char *path, const store_identity_t *identity, char *err, size_t err_len)
{
    if (!path || !*path)
        return fail (err, err_len, STORE_ERR, "store path is missing");
    store_identity_t made = *identity;
    made.format = STORE_FORMAT_VERSION;

    char building[PATH_MAX], built[PATH_MAX], lock[PATH_MAX], final[PATH_MAX];
    if ((size_t)snprintf (building, sizeof building, "%s/.init.XXXXXX", path) >= sizeof building ||
        (size_t)snprintf (final, sizeof final, "%s/data.mdb", path) >= sizeof final)
        return fail (err, err_len, STORE_ERR, "store path %.64s... is too long", path);
    bool created_folder;
    int rc = claim_folder (path, &created_folder, err, err_len);
    if (rc)
        return rc;
    /* Built in a hidden folder and linked in whole: data.mdb in path is always a finished store. */
    if (!mkdtemp (building)) {
        rc = fail (err, err_len, STORE_ERR, "cannot create a folder in %s: %s", path,
                   strerror (errno));
        goto err_folder;
    }
    /* building is path + 13 bytes and final (path + 9) fit: so do these. */
    if ((size_t)snprintf (built, sizeof built, "%s/data.mdb", building) >= sizeof built ||
        (size_t)snprintf (lock, sizeof lock, "%s/lock.mdb", building) >= sizeof lock) {
        rc = fail (err, err_len, STORE_ERR, "store path %.64s... is too long", path);
        rmdir (building);
        goto err_folder;
    }
    rc = create_in (building, &made, err, err_len);
    if (rc == 0 && link (built, final) != 0)
        rc = fail (err, err_len, errno == EEXIST ? STORE_ERR_EXISTS : STORE_ERR,
                   "cannot move the new store into %s: %s", path, strerror (errno));
    unlink (built);
    unlink (lock);
    rmdir (building);
    if (rc)
        goto err_folder;
    if (store_sync_folder (path) != 0) {
        rc =
            fail (err, err_len, STORE_ERR, "cannot sync the folder %s: %s", path, strerror (errno));
        unlink (final);
        goto err_folder;
    }
    return 0;

err_folder:
    if (created_folder)
        rmdir (path);
    return rc;
}

int
store_identity (store_t *self, store_identity_t *identity)
{
    *identity = self->identity;
    return 0;
}

void
store_destroy (store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    /* Groups of the open transaction are in the journal: committing them is not needed, but
     * spares the next start applying them again. */
    char ignored[STORE_ERR_LEN];
    if (self->open_txn && open_commit (self, ignored, sizeof ignored))
        open_abort (self);
    store_journal_close (&self->journal);
    apply_memory_free (&self->memory);
    store_dict_cache_destroy (&self->dict);
    mdb_env_close (self->env);
    pthread_mutex_destroy (&self->damage_lock);
    pthread_rwlock_destroy (&self->resize_lock);
    free (self->path);
    free (self);
    *self_p = NULL;
}

/* ---------------------------------------------------------------- applying batches */

/* How a group is applied. A transaction costs the distinct pages it touches and every B-tree
 * descent that misses the cache. Records are visited in arrival order with one cursor on the
 * records database (a batch's keys mostly ascend, so the cursor mostly stays on its page), but a
 * record's contribution only adds to in-memory deltas of its cell and neighbourhood; at the end
 * the touched totals are sorted and written with one cursor per database, each read once right
 * before it is written: one pass over neighbouring keys instead of a random read and a random
 * write per record.
 * The one outcome that needs a stored total first is a record whose contribution would overflow
 * an int64 total: it is rejected. So the fast path sums each total's additions and subtractions
 * apart: every value the total passes through lies between stored + subtractions and stored +
 * additions. If either end could overflow, the whole group is applied again in exact mode, which
 * reads every total at first touch and checks and undoes each record. Amounts are at most 10^15
 * pence, so only absurd data takes that path. */

/* A total the transaction changes. */
typedef struct {
    /* Its key as two numbers that order as its bytes do (cells first, then neighbourhoods): keys
     * are fixed-width, so sorting compares two words instead of calling memcmp. */
    uint64_t order[2];
    uint64_t hash;
    /* Fast path: the sum of this group's contributions, and the sums of its additions (>= 0)
     * and of its subtractions (<= 0) apart. Exact mode: value is the total itself. */
    store_amount_t value, plus, minus;
    unsigned char key[STORE_CODEC_CELL_KEY_LEN];
    uint8_t key_len;
    bool cell; /* in the cells database, else in neighbourhoods */
} total_t;

/* Working memory of store_apply, kept between groups so the single writer does not allocate and
 * fault in fresh pages for every group. */
struct _apply_memory_t {
    total_t *totals;
    size_t total_count, total_capacity;
    uint32_t *slots;   /* open addressing: index + 1 into totals, 0 when free */
    size_t slot_count; /* a power of two, at least twice total_count */
};

typedef struct {
    size_t index; /* into totals */
    store_amount_t value, plus, minus;
} undo_entry_t;

/* One transaction's working state. */
typedef struct {
    store_t *store;
    apply_memory_t *memory;
    MDB_txn *txn;
    store_dict_txn_t dict;
    MDB_cursor *records;
    bool exact;
    counters_value_t counts;
    undo_entry_t undo[4];
    size_t undo_count;
} apply_state_t;

#define APPLY_NEEDS_EXACT      2 /* the fast path cannot rule out an overflow: apply in exact mode */
#define CONTRIBUTION_OVERFLOWS 3 /* exact mode: this record would overflow a total */
#define TEXT_UNKNOWN           4 /* a text looked up without making it is not in the dictionary */
#define TEXTS_EXHAUSTED        5 /* a dictionary has no id (or hash probe) left for a new text */

static void
apply_memory_free (apply_memory_t **memory_p)
{
    apply_memory_t *memory = *memory_p;
    if (!memory)
        return;
    free (memory->totals);
    free (memory->slots);
    free (memory);
    *memory_p = NULL;
}

static void
apply_memory_reset (apply_memory_t *memory)
{
    memory->total_count = 0;
    if (memory->slots)
        memset (memory->slots, 0, memory->slot_count * sizeof *memory->slots);
}

/* A total's key (a cell's 15 bytes, or a neighbourhood's 4) as two big-endian words, a
 * neighbourhood's with the top bit set: they order as cells first, then by the key's bytes. */
static void
key_order (bool cell, const unsigned char *key, size_t len, uint64_t order[2])
{
    unsigned char bytes[16] = {0};
    memcpy (bytes, key, len);
    order[0] = order[1] = 0;
    for (int i = 0; i < 8; i++) {
        order[0] = order[0] << 8 | bytes[i];
        order[1] = order[1] << 8 | bytes[8 + i];
    }
    if (!cell)
        order[0] |= UINT64_C (1) << 63; /* a cell's first byte, a month's high byte, is < 0x80 */
}

static uint64_t
hash_order (const uint64_t order[2])
{
    uint64_t hash =
        (order[0] ^ (order[1] * UINT64_C (0x9e3779b97f4a7c15))) * UINT64_C (0xbf58476d1ce4e5b9);
    return hash ^ (hash >> 31);
}

/* Doubles the slot table and re-inserts every total. */
static int
grow_slots (apply_memory_t *memory)
{
    size_t count = memory->slot_count ? memory->slot_count * 2 : 4096;
    uint32_t *slots = calloc (count, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < memory->total_count; i++) {
        size_t slot = memory->totals[i].hash & (count - 1);
        while (slots[slot])
            slot = (slot + 1) & (count - 1);
        slots[slot] = (uint32_t)(i + 1);
    }
    free (memory->slots);
    memory->slots = slots;
    memory->slot_count = count;
    return 0;
}

/* Finds the total in this transaction's working set, adding it on first touch (in exact mode
 * with its stored value). Sets *index. */
static int
touch_total (apply_state_t *state, bool cell, const unsigned char *key, size_t key_len,
             size_t *index, char *err, size_t err_len)
{
    apply_memory_t *memory = state->memory;
    uint64_t order[2];
    key_order (cell, key, key_len, order);
    uint64_t hash = hash_order (order);
    if (memory->slot_count < 2 * (memory->total_count + 1) && grow_slots (memory))
        return fail (err, err_len, STORE_ERR, "out of memory");
    size_t mask = memory->slot_count - 1, slot = hash & mask;
    for (; memory->slots[slot]; slot = (slot + 1) & mask) {
        total_t *total = &memory->totals[memory->slots[slot] - 1];
        if (total->order[0] == order[0] && total->order[1] == order[1]) {
            *index = memory->slots[slot] - 1;
            return 0;
        }
    }
    if (memory->total_count == memory->total_capacity) {
        size_t capacity = memory->total_capacity ? memory->total_capacity * 2 : 4096;
        total_t *totals = realloc (memory->totals, capacity * sizeof *totals);
        if (!totals)
            return fail (err, err_len, STORE_ERR, "out of memory");
        memory->totals = totals;
        memory->total_capacity = capacity;
    }
    total_t *total = &memory->totals[memory->total_count];
    *total = (total_t){
        .order = {order[0], order[1]}, .hash = hash, .key_len = (uint8_t)key_len, .cell = cell};
    memcpy (total->key, key, key_len);
    if (state->exact) {
        MDB_val k = {key_len, (void *)total->key};
        int rc =
            get_amount (state->store, state->txn, cell ? STORE_DB_CELLS : STORE_DB_NEIGHBOURHOODS,
                        &k, &total->value, err, err_len);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
    }
    memory->slots[slot] = (uint32_t)(memory->total_count + 1);
    *index = memory->total_count++;
    return 0;
}

static void
undo_record (apply_state_t *state)
{
    while (state->undo_count > 0) {
        undo_entry_t *entry = &state->undo[--state->undo_count];
        total_t *total = &state->memory->totals[entry->index];
        total->value = entry->value;
        total->plus = entry->plus;
        total->minus = entry->minus;
    }
}

/* Adds (sign +1) or removes (sign -1) the contribution of a record of body to its cell and its
 * neighbourhood. Returns 0; CONTRIBUTION_OVERFLOWS in exact mode when a total would overflow (the
 * caller undoes the record); APPLY_NEEDS_EXACT on the fast path when a delta itself overflows; or
 * an error. */
static int
add_contribution (apply_state_t *state, uint32_t body, const store_codec_record_t *record, int sign,
                  char *err, size_t err_len)
{
    store_codec_cell_t cell = {record->month, record->neighbourhood, body, record->service,
                               record->poolable};
    unsigned char cell_key[STORE_CODEC_CELL_KEY_LEN], neighbourhood_key[STORE_CODEC_ID_LEN];
    store_codec_cell_key (&cell, cell_key);
    store_codec_id (record->neighbourhood, neighbourhood_key);
    size_t targets[2];
    int rc = touch_total (state, true, cell_key, sizeof cell_key, &targets[0], err, err_len);
    if (rc == 0)
        rc = touch_total (state, false, neighbourhood_key, sizeof neighbourhood_key, &targets[1],
                          err, err_len);
    if (rc)
        return rc;
    /* |amount| <= WIRE_MAX_ABS_AMOUNT_PENCE, so negating it cannot overflow. */
    store_amount_t delta = {sign > 0 ? record->amount_pence : -record->amount_pence, sign};
    for (size_t i = 0; i < 2; i++) {
        total_t *total = &state->memory->totals[targets[i]];
        store_amount_t next, plus = total->plus, minus = total->minus;
        int64_t *amount_side = delta.amount_pence >= 0 ? &plus.amount_pence : &minus.amount_pence;
        int64_t *records_side = delta.records >= 0 ? &plus.records : &minus.records;
        if (__builtin_add_overflow (total->value.amount_pence, delta.amount_pence,
                                    &next.amount_pence) ||
            __builtin_add_overflow (total->value.records, delta.records, &next.records) ||
            __builtin_add_overflow (*amount_side, delta.amount_pence, amount_side) ||
            __builtin_add_overflow (*records_side, delta.records, records_side))
            return state->exact ? CONTRIBUTION_OVERFLOWS : APPLY_NEEDS_EXACT;
        state->undo[state->undo_count++] =
            (undo_entry_t){targets[i], total->value, total->plus, total->minus};
        total->value = next;
        total->plus = plus;
        total->minus = minus;
    }
    return 0;
}

/* Appends text to the used bytes of out, as much as fits with the NUL; returns the new length. */
static size_t
append_text (char *out, size_t out_len, size_t used, const char *text)
{
    size_t len = strlen (text);
    if (used + len >= out_len)
        len = out_len - 1 - used;
    memcpy (out + used, text, len);
    out[used + len] = '\0';
    return used + len;
}

/* Quotes text as quoted_text_cut does, keeping at most keep bytes from byte start on, after a
 * "..." when start is past its beginning. */
static const char *
quote_from (const char *text, size_t start, size_t keep, char *out, size_t out_len)
{
    if (start == 0)
        return quoted_text_cut (text, keep, out, out_len);
    char rest[QUOTED_TEXT_LEN];
    quoted_text_cut (text + start, keep - 3, rest, sizeof rest);
    size_t used = append_text (out, out_len, 0, "\"...");
    append_text (out, out_len, used, rest + 1);
    return out;
}

static const char CONFLICT_ADVICE[] =
    "; correction? raise revision; ids repeated on lines? input/repeated_ids = lines";

/* The reason of a conflict: the first field in which the record sent differs from the one stored
 * at the same revision, with both values, and the two usual causes (a correction sent without a
 * higher revision; an export repeating one transaction number on several lines, which the agent
 * reads with input/repeated_ids = lines). Quotes are cut so that the whole fits reason_len. */
static void
describe_conflict (const Totalplace__SpendingRecord *stored, const Totalplace__SpendingRecord *sent,
                   char *reason, size_t reason_len)
{
    const char *field = "content", *was = "", *now = "";
    char was_text[REPORT_POUNDS_LEN], now_text[REPORT_POUNDS_LEN];
    bool text = true;
    struct {
        const char *name, *stored, *sent;
    } texts[] = {{"neighbourhood", stored->neighbourhood, sent->neighbourhood},
                 {"service", stored->service, sent->service},
                 {"period", stored->period, sent->period},
                 {"supplier", stored->supplier, sent->supplier},
                 {"description", stored->description, sent->description}};
    if (stored->amount_pence != sent->amount_pence) {
        field = "amount";
        was = report_pounds (stored->amount_pence, false, was_text, sizeof was_text);
        now = report_pounds (sent->amount_pence, false, now_text, sizeof now_text);
        text = false;
    }
    else if (stored->poolable != sent->poolable || stored->withdrawn != sent->withdrawn) {
        field = stored->poolable != sent->poolable ? "poolable" : "withdrawn";
        bool a = stored->poolable != sent->poolable ? stored->poolable : stored->withdrawn;
        was = a ? "yes" : "no";
        now = a ? "no" : "yes";
        text = false;
    }
    else
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
            if (strcmp (texts[i].stored ? texts[i].stored : "",
                        texts[i].sent ? texts[i].sent : "")) {
                field = texts[i].name;
                was = texts[i].stored ? texts[i].stored : "";
                now = texts[i].sent ? texts[i].sent : "";
                break;
            }
    char was_quoted[QUOTED_TEXT_LEN], now_quoted[QUOTED_TEXT_LEN];
    if (text) {
        /* What is left of the line once the words are written, shared by the two quotes; each
         * quote adds its two marks and "..." to the text it keeps. */
        size_t fixed =
            strlen ("conflict:  stored , sent ") + strlen (field) + sizeof CONFLICT_ADVICE - 1;
        size_t each = reason_len > fixed + 1 ? (reason_len - 1 - fixed) / 2 : 0;
        size_t keep = each > 5 ? each - 5 : 0;
        if (keep > QUOTED_TEXT_MAX)
            keep = QUOTED_TEXT_MAX;
        /* Texts that differ only past what a quote keeps are quoted from a little before the
         * first byte that differs, so that the two quotes show the difference. */
        size_t start = 0;
        while (was[start] && was[start] == now[start])
            start++;
        if (keep > 8 && start + 4 > keep) {
            start = start + 4 - (keep - 3); /* the quote ends four bytes past the difference */
            while (start > 0 && ((unsigned char)was[start] & 0xC0) == 0x80)
                start--;
        }
        else
            start = 0;
        was = quote_from (was, start, keep, was_quoted, sizeof was_quoted);
        now = quote_from (now, start, keep, now_quoted, sizeof now_quoted);
    }
    const char *parts[] = {"conflict: ", field, " stored ", was, ", sent ", now, CONFLICT_ADVICE};
    size_t used = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        used = append_text (reason, reason_len, used, parts[i]);
}

/* A stored record as the API gives it: texts for ids, "YYYY-MM" for its month; every string
 * malloc'd, so that protobuf_c_message_free_unpacked frees it. */
static int
decode_record (store_t *self, MDB_txn *txn, const void *key, size_t key_len,
               const store_codec_record_t *stored, Totalplace__SpendingRecord **out, char *err,
               size_t err_len)
{
    uint32_t body;
    const char *record_id;
    size_t id_len;
    if (store_codec_record_key_split (key, key_len, &body, &record_id, &id_len))
        return damaged (self, txn, STORE_DB_RECORDS, key, key_len, err, err_len,
                        "has a key that is not a record's");
    Totalplace__SpendingRecord *record = malloc (sizeof *record);
    if (!record)
        return fail (err, err_len, STORE_ERR, "out of memory");
    totalplace__spending_record__init (record);
    char period[PERIOD_LEN];
    record->revision = stored->revision;
    record->amount_pence = stored->amount_pence;
    record->poolable = stored->poolable;
    record->withdrawn = stored->withdrawn;
    record->record_id = strndup (record_id, id_len);
    record->period = strdup (store_codec_period (stored->month, period));
    struct {
        unsigned kind;
        uint32_t id;
        char **field;
    } texts[] = {{STORE_TEXT_BODY, body, &record->body_id},
                 {STORE_TEXT_NEIGHBOURHOOD, stored->neighbourhood, &record->neighbourhood},
                 {STORE_TEXT_SERVICE, stored->service, &record->service},
                 {STORE_TEXT_SUPPLIER, stored->supplier, &record->supplier},
                 {STORE_TEXT_DESCRIPTION, stored->description, &record->description}};
    store_dict_txn_t dict = dict_of (self, txn);
    int rc = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        *texts[i].field = NULL;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0] && rc == 0; i++) {
        const char *text = "";
        size_t len;
        store_dict_fault_t fault;
        if (texts[i].id) {
            int found = store_dict_text (&dict, texts[i].kind, texts[i].id, &text, &len, &fault);
            if (found == STORE_DICT_NOTFOUND)
                rc = damaged (self, txn, STORE_DB_RECORDS, key, key_len, err, err_len,
                              "names %s id %u, which texts does not hold",
                              store_text_kind_name (texts[i].kind), (unsigned)texts[i].id);
            else if (found)
                rc = dict_failed (self, txn, &fault, err, err_len);
        }
        if (rc == 0 && !(*texts[i].field = strdup (text)))
            rc = fail (err, err_len, STORE_ERR, "out of memory");
    }
    if (rc == 0 && (!record->record_id || !record->period))
        rc = fail (err, err_len, STORE_ERR, "out of memory");
    if (rc) {
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
            if (!*texts[i].field)
                *texts[i].field = strdup ("");
        protobuf_c_message_free_unpacked (&record->base, NULL);
        return rc;
    }
    *out = record;
    return 0;
}

/* The id of a record's text of kind (0 for an empty optional text). create: make it when it is
 * new. Returns 0, TEXT_UNKNOWN (create not set), TEXTS_EXHAUSTED, APPLY_MAP_FULL or an error. */
static int
text_id (apply_state_t *state, unsigned kind, const char *text, bool create, uint32_t *id,
         char *err, size_t err_len)
{
    *id = 0;
    if (!text || !*text)
        return 0;
    store_dict_fault_t fault;
    int rc = store_dict_intern (state->store->dict, &state->dict, kind, text, strlen (text), create,
                                id, &fault);
    if (rc == STORE_DICT_OK)
        return 0;
    if (rc == STORE_DICT_NOTFOUND)
        return TEXT_UNKNOWN;
    if (rc == STORE_DICT_EXHAUSTED)
        return TEXTS_EXHAUSTED;
    return dict_failed (state->store, state->txn, &fault, err, err_len);
}

/* A (valid) record as the store keeps it: its texts as ids, made when create is set. Returns as
 * text_id does. */
static int
compact_record (apply_state_t *state, const Totalplace__SpendingRecord *record, bool create,
                store_codec_record_t *out, char *err, size_t err_len)
{
    *out = (store_codec_record_t){.revision = record->revision,
                                  .month = (uint32_t)store_codec_month (record->period),
                                  .amount_pence = record->amount_pence,
                                  .poolable = record->poolable,
                                  .withdrawn = record->withdrawn};
    struct {
        unsigned kind;
        const char *text;
        uint32_t *id;
    } texts[] = {{STORE_TEXT_NEIGHBOURHOOD, record->neighbourhood, &out->neighbourhood},
                 {STORE_TEXT_SERVICE, record->service, &out->service},
                 {STORE_TEXT_SUPPLIER, record->supplier, &out->supplier},
                 {STORE_TEXT_DESCRIPTION, record->description, &out->description}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int rc = text_id (state, texts[i].kind, texts[i].text, create, texts[i].id, err, err_len);
        if (rc)
            return rc;
    }
    return 0;
}

static bool
compact_equal (const store_codec_record_t *a, const store_codec_record_t *b)
{
    return a->revision == b->revision && a->month == b->month &&
           a->neighbourhood == b->neighbourhood && a->service == b->service &&
           a->supplier == b->supplier && a->description == b->description &&
           a->amount_pence == b->amount_pence && a->poolable == b->poolable &&
           a->withdrawn == b->withdrawn;
}

/* A record the dictionaries have no room for is refused, loudly, rather than stored wrong. */
static void
refuse_exhausted (store_result_t *result)
{
    result->outcome = STORE_REJECTED;
    snprintf (result->reason, sizeof result->reason,
              "the store's dictionary of texts has no id left for a text of this record; it "
              "cannot be stored");
}

/* Same key, same revision: a duplicate when every field is the same, else a conflict whose reason
 * names the first field that differs (the stored record is decoded to text for it). */
static int
compare_same_revision (apply_state_t *state, const Totalplace__SpendingRecord *record,
                       const unsigned char *key, size_t key_len, const store_codec_record_t *stored,
                       store_result_t *result, char *err, size_t err_len)
{
    store_codec_record_t sent;
    int rc = compact_record (state, record, false, &sent, err, err_len);
    if (rc && rc != TEXT_UNKNOWN)
        return rc;
    if (rc == 0 && compact_equal (&sent, stored)) {
        result->outcome = STORE_DUPLICATE;
        return 0;
    }
    Totalplace__SpendingRecord *full;
    rc = decode_record (state->store, state->txn, key, key_len, stored, &full, err, err_len);
    if (rc)
        return rc;
    result->outcome = STORE_REJECTED;
    describe_conflict (full, record, result->reason, sizeof result->reason);
    protobuf_c_message_free_unpacked (&full->base, NULL);
    return 0;
}

/* Decides and applies one (valid) record. Returns 0, APPLY_MAP_FULL, APPLY_NEEDS_EXACT, or a
 * negative error. */
static int
apply_record (apply_state_t *state, const Totalplace__SpendingRecord *record,
              store_result_t *result, char *err, size_t err_len)
{
    uint32_t body;
    int rc = text_id (state, STORE_TEXT_BODY, record->body_id, true, &body, err, err_len);
    if (rc == TEXTS_EXHAUSTED) {
        refuse_exhausted (result);
        return 0;
    }
    if (rc)
        return rc;
    unsigned char key[STORE_CODEC_RECORD_KEY_MAX];
    size_t key_len = store_codec_record_key (body, record->record_id, strlen (record->record_id),
                                             key, sizeof key);
    if (key_len == 0)
        return fail (err, err_len, STORE_ERR, "record key too long");
    MDB_val k = {key_len, key}, value, payload;
    store_checksum_key_t hash_key;
    store_checksum_key (STORE_DB_RECORDS, key, key_len, &hash_key);
    rc = mdb_cursor_get (state->records, &k, &value, MDB_SET_KEY);
    store_codec_record_t stored, sent;
    bool found = rc == 0;
    if (found) {
        k = (MDB_val){key_len, key};
        rc = open_value (state->store, state->txn, STORE_DB_RECORDS, &k, &value, 0, &hash_key,
                         &payload, err, err_len);
        if (rc)
            return rc;
        if (store_codec_record_decode (payload.mv_data, payload.mv_size, &stored))
            return damaged (state->store, state->txn, STORE_DB_RECORDS, key, key_len, err, err_len,
                            "does not decode as a record");
        if (record->revision < stored.revision) {
            result->outcome = STORE_STALE;
            return 0;
        }
        if (record->revision == stored.revision)
            return compare_same_revision (state, record, key, key_len, &stored, result, err,
                                          err_len);
    }
    else if (rc != MDB_NOTFOUND)
        return read_failed (state->store, state->txn, rc, STORE_DB_RECORDS, key, key_len, err,
                            err_len);

    rc = compact_record (state, record, true, &sent, err, err_len);
    if (rc == TEXTS_EXHAUSTED) {
        refuse_exhausted (result);
        return 0;
    }
    if (rc)
        return rc;
    state->undo_count = 0;
    if (found && !stored.withdrawn)
        rc = add_contribution (state, body, &stored, -1, err, err_len);
    if (rc == 0 && !sent.withdrawn)
        rc = add_contribution (state, body, &sent, +1, err, err_len);
    if (rc == CONTRIBUTION_OVERFLOWS) {
        undo_record (state);
        result->outcome = STORE_REJECTED;
        snprintf (result->reason, sizeof result->reason,
                  "a total of neighbourhood %s would overflow int64 pence", record->neighbourhood);
        return 0;
    }
    if (rc)
        return rc;
    unsigned char bytes[STORE_CODEC_RECORD_MAX + STORE_CHECKSUM_BYTES];
    size_t len = store_codec_record_encode (&sent, bytes);
    store_checksum_seal (&hash_key, bytes, len);
    MDB_val put_key = {key_len, key}, put_value = {len + STORE_CHECKSUM_BYTES, bytes};
    rc = mdb_cursor_put (state->records, &put_key, &put_value, 0);
    if (rc == MDB_MAP_FULL)
        return APPLY_MAP_FULL;
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot store record: %s", mdb_strerror (rc));
    result->outcome = found ? STORE_SUPERSEDED : STORE_ACCEPTED;
    return 0;
}

static int
compare_totals (const void *a, const void *b)
{
    const total_t *x = a, *y = b;
    if (x->order[0] != y->order[0])
        return x->order[0] < y->order[0] ? -1 : 1;
    return x->order[1] < y->order[1] ? -1 : x->order[1] > y->order[1];
}

/* Writes every touched total back in key order, one cursor per database. */
static int
write_totals (apply_state_t *state, char *err, size_t err_len)
{
    apply_memory_t *memory = state->memory;
    if (memory->total_count)
        qsort (memory->totals, memory->total_count, sizeof *memory->totals, compare_totals);
    /* The slots now point at the wrong totals; nothing looks them up again in this group. */
    MDB_cursor *cursors[2] = {NULL, NULL}; /* cells, neighbourhoods */
    int rc = mdb_cursor_open (state->txn, state->store->cells, &cursors[0]);
    if (rc == 0)
        rc = mdb_cursor_open (state->txn, state->store->neighbourhoods, &cursors[1]);
    if (rc) {
        rc = fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
        goto out;
    }
    for (size_t i = 0; i < memory->total_count; i++) {
        const total_t *total = &memory->totals[i];
        MDB_cursor *cursor = cursors[total->cell ? 0 : 1];
        store_db_t db = total->cell ? STORE_DB_CELLS : STORE_DB_NEIGHBOURHOODS;
        MDB_val key = {total->key_len, (void *)total->key}, value, payload;
        store_amount_t stored = {0, 0}, final = total->value;
        store_checksum_key_t hash_key;
        store_checksum_key (db, total->key, total->key_len, &hash_key);
        rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_KEY);
        bool found = rc == 0;
        if (found) {
            key = (MDB_val){total->key_len, (void *)total->key};
            rc = open_value (state->store, state->txn, db, &key, &value, 0, &hash_key, &payload,
                             err, err_len);
            if (rc == 0)
                rc = decode_amount (state->store, state->txn, db, &key, &payload, &stored, err,
                                    err_len);
            if (rc)
                goto out;
        }
        else if (rc != MDB_NOTFOUND) {
            rc = read_failed (state->store, state->txn, rc, db, total->key, total->key_len, err,
                              err_len);
            goto out;
        }
        if (!state->exact) {
            /* In any order, every value the total passes through lies between stored + minus
             * and stored + plus: if both fit, no record of the group can overflow it. */
            int64_t ignored;
            if (__builtin_add_overflow (stored.amount_pence, total->minus.amount_pence, &ignored) ||
                __builtin_add_overflow (stored.amount_pence, total->plus.amount_pence, &ignored) ||
                __builtin_add_overflow (stored.records, total->minus.records, &ignored) ||
                __builtin_add_overflow (stored.records, total->plus.records, &ignored)) {
                rc = APPLY_NEEDS_EXACT;
                goto out;
            }
            final.amount_pence = stored.amount_pence + total->value.amount_pence;
            final.records = stored.records + total->value.records;
        }
        key = (MDB_val){total->key_len, (void *)total->key};
        unsigned char bytes[STORE_CODEC_AMOUNT_MAX];
        if (final.records < 0) {
            rc = fail (err, err_len, STORE_ERR,
                       "a total would count %lld records: the store refuses the group",
                       (long long) final.records);
            goto out;
        }
        if (final.records == 0) {
            /* Nothing left in this total: remove it so empty neighbourhoods disappear. */
            rc = found ? mdb_cursor_del (cursor, 0) : 0;
        }
        else
            rc = put_value (state->txn, cursor, 0, db, &key, bytes,
                            store_codec_amount_encode (final.amount_pence, final.records, bytes),
                            &hash_key, found ? MDB_CURRENT : 0);
        if (rc == MDB_MAP_FULL) {
            rc = APPLY_MAP_FULL;
            goto out;
        }
        if (rc) {
            rc = fail (err, err_len, STORE_ERR, "cannot write total: %s", mdb_strerror (rc));
            goto out;
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < 2; i++)
        if (cursors[i])
            mdb_cursor_close (cursors[i]);
    return rc;
}

static void
count_outcome (counters_value_t *counts, store_outcome_t outcome)
{
    switch (outcome) {
    case STORE_ACCEPTED:
        counts->accepted++;
        break;
    case STORE_DUPLICATE:
        counts->duplicate++;
        break;
    case STORE_SUPERSEDED:
        counts->superseded++;
        break;
    case STORE_STALE:
        counts->stale++;
        break;
    case STORE_REJECTED:
        counts->rejected++;
        break;
    case STORE_PENDING:
        break;
    }
}

static int
put_or_full (MDB_txn *txn, MDB_dbi dbi, store_db_t db, MDB_val *key, const void *payload,
             size_t len, const char *what, char *err, size_t err_len)
{
    int rc = put_value (txn, NULL, dbi, db, key, payload, len, NULL, 0);
    if (rc == MDB_MAP_FULL)
        return APPLY_MAP_FULL;
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot write %s: %s", what, mdb_strerror (rc));
    return 0;
}

/* Each batch moves its agent's mark in order, so marks_before[b] sees the group's earlier
 * batches of the same agent (they were put in this transaction). */
static int
write_agents_and_counters (apply_state_t *state, Totalplace__Batch *const *batches,
                           size_t batch_count, uint64_t *marks_before, char *err, size_t err_len)
{
    store_t *store = state->store;
    int64_t now = (int64_t)time (NULL);
    for (size_t b = 0; b < batch_count; b++) {
        const char *agent_id = batches[b]->agent_id ? batches[b]->agent_id : "";
        MDB_val key = {strlen (agent_id), (void *)agent_id};
        agent_value_t agent = {0, 0, 0};
        int rc = get_fixed (store, state->txn, STORE_DB_AGENTS, &key, &agent, sizeof agent, err,
                            err_len);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        if (marks_before)
            marks_before[b] = agent.last_batch_seq;
        if (batches[b]->batch_seq > agent.last_batch_seq)
            agent.last_batch_seq = batches[b]->batch_seq;
        agent.batches++;
        agent.last_seen = now;
        rc = put_or_full (state->txn, store->agents, STORE_DB_AGENTS, &key, &agent, sizeof agent,
                          "agent high-water mark", err, err_len);
        if (rc)
            return rc;
    }
    MDB_val key = {sizeof COUNTERS_KEY - 1, (void *)COUNTERS_KEY};
    counters_value_t counters = {0};
    int rc = get_fixed (store, state->txn, STORE_DB_META, &key, &counters, sizeof counters, err,
                        err_len);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    counters.batches += batch_count;
    counters.accepted += state->counts.accepted;
    counters.duplicate += state->counts.duplicate;
    counters.superseded += state->counts.superseded;
    counters.stale += state->counts.stale;
    counters.rejected += state->counts.rejected;
    return put_or_full (state->txn, store->meta, STORE_DB_META, &key, &counters, sizeof counters,
                        "counters", err, err_len);
}

/* One attempt at the whole group, in txn (the open transaction). Returns 0 (the group is in
 * txn), APPLY_MAP_FULL, APPLY_NEEDS_EXACT or an error: then txn holds part of the group and must
 * be given up. */
static int
apply_once (store_t *self, MDB_txn *txn, Totalplace__Batch *const *batches, size_t batch_count,
            store_result_t *const *results, uint64_t *marks_before, bool exact, bool import,
            char *err, size_t err_len)
{
    if (!self->memory && !(self->memory = calloc (1, sizeof *self->memory)))
        return fail (err, err_len, STORE_ERR, "out of memory");
    if (!self->dict && !(self->dict = store_dict_cache_new (DICT_CACHE_BYTES)))
        return fail (err, err_len, STORE_ERR, "out of memory");
    apply_memory_reset (self->memory);
    apply_state_t state = {.store = self, .memory = self->memory, .exact = exact, .txn = txn};
    state.dict = dict_of (self, state.txn);
    int rc = mdb_cursor_open (state.txn, self->records, &state.records);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
    for (size_t b = 0; b < batch_count && rc == 0; b++)
        for (size_t i = 0; i < batches[b]->n_records && rc == 0; i++) {
            store_result_t *result = &results[b][i];
            const Totalplace__SpendingRecord *record = batches[b]->records[i];
            if (result->outcome == STORE_REJECTED)
                continue; /* refused upstream */
            if (wire_validate_record (record, result->reason, sizeof result->reason)) {
                result->outcome = STORE_REJECTED;
                continue;
            }
            rc = apply_record (&state, record, result, err, err_len);
        }
    mdb_cursor_close (state.records);
    for (size_t b = 0; b < batch_count && rc == 0; b++)
        for (size_t i = 0; i < batches[b]->n_records; i++)
            count_outcome (&state.counts, results[b][i].outcome);
    if (rc == 0)
        rc = write_totals (&state, err, err_len);
    if (rc == 0 && !import)
        rc = write_agents_and_counters (&state, batches, batch_count, marks_before, err, err_len);
    return rc;
}

/* What store_apply says once the store has met damage, here or in another thread. */
static int
refuse_damaged (store_t *self, char *err, size_t err_len)
{
    char finding[sizeof self->finding];
    store_damage (self, finding, sizeof finding);
    return fail (err, err_len, STORE_ERR_DAMAGED,
                 "the store in %s is damaged (%s): it takes no batch until it is restored. Run "
                 "`totalplace verify --db %s`, then restore the store from a backup "
                 "(docs/operations.md)",
                 self->path, finding, self->path);
}

static int
grow_map (store_t *self, char *err, size_t err_len)
{
    MDB_envinfo info;
    mdb_env_info (self->env, &info);
    if (info.me_mapsize >= self->max_map_size)
        return fail (err, err_len, STORE_ERR_FULL,
                     "store is full: the LMDB map holds %zu MiB and may not grow beyond %zu MiB "
                     "(raise collector/max_map_size_mb); the batch was not applied",
                     info.me_mapsize >> 20, self->max_map_size >> 20);
    size_t next = info.me_mapsize * 2;
    if (next > self->max_map_size || next < info.me_mapsize)
        next = self->max_map_size;
    pthread_rwlock_wrlock (&self->resize_lock);
    int rc = mdb_env_set_mapsize (self->env, next);
    pthread_rwlock_unlock (&self->resize_lock);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot grow the map to %zu MiB: %s", next >> 20,
                     mdb_strerror (rc));
    return 0;
}

/* ---------------------------------------------------------------- the open transaction */

/* Groups are applied in transactions nested in one open write transaction. Each group is then
 * either committed with it at once (store_apply; and store_apply_journaled when the open
 * transaction is full or old), or appended to the journal and synced (store_apply_journaled), so
 * that it is durable and may be acknowledged while the open transaction goes on taking groups:
 * LMDB then writes and syncs the pages the groups share once for many groups. Readers see the
 * store as of the last commit, whole groups only. Should the open transaction be given up (its
 * commit fails, or the map must grow and it cannot be committed first), the groups of it in the
 * journal are applied again from there before anything else, in order: store_apply is
 * deterministic, so they make the same outcomes. The last group committed is in meta "journal";
 * at opening, the writer applies the journal's later groups (a crash), commits and empties it. */

static double
now_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
open_begin (store_t *self, char *err, size_t err_len)
{
    if (self->open_txn)
        return 0;
    int rc = mdb_txn_begin (self->env, NULL, 0, &self->open_txn);
    if (rc == MDB_PANIC)
        return fail (err, err_len, STORE_ERR,
                     "LMDB stopped taking writes to the store in %s after a write of its meta "
                     "page failed (%s): restart the collector (the store keeps its last commit)",
                     self->path, mdb_strerror (rc));
    if (rc) {
        self->open_txn = NULL;
        return fail (err, err_len, STORE_ERR, "cannot begin write transaction: %s",
                     mdb_strerror (rc));
    }
    self->open_records = 0;
    self->open_journaled = 0;
    self->open_since = now_seconds ();
    return 0;
}

/* Gives the open transaction up: what it held is as it was at the last commit, and the groups of
 * it in the journal must be applied again. */
static void
open_abort (store_t *self)
{
    if (!self->open_txn)
        return;
    mdb_txn_abort (self->open_txn);
    self->open_txn = NULL;
    store_dict_cache_end (self->dict, false);
    if (self->open_journaled)
        self->replay_needed = true;
    self->seq = self->committed_seq;
    self->open_records = self->open_journaled = 0;
}

/* Commits the open transaction, synced, with its last group's number; then empties the journal.
 * On failure the transaction is given up (open_abort). Returns 0, APPLY_MAP_FULL, or an error. */
static int
open_commit (store_t *self, char *err, size_t err_len)
{
    if (!self->open_txn)
        return 0;
    MDB_val key = {sizeof JOURNAL_KEY - 1, (void *)JOURNAL_KEY};
    uint64_t seq = self->seq;
    int rc = self->seq == self->committed_seq
                 ? 0
                 : put_value (self->open_txn, NULL, self->meta, STORE_DB_META, &key, &seq,
                              sizeof seq, NULL, 0);
    if (rc) {
        open_abort (self);
        return rc == MDB_MAP_FULL ? APPLY_MAP_FULL
                                  : fail (err, err_len, STORE_ERR,
                                          "cannot write the journal mark: %s", mdb_strerror (rc));
    }
    rc = mdb_txn_commit (self->open_txn);
    self->open_txn = NULL;
    store_dict_cache_end (self->dict, rc == 0);
    if (rc) {
        self->open_txn = NULL;
        if (self->open_journaled)
            self->replay_needed = true;
        self->seq = self->committed_seq;
        self->open_records = self->open_journaled = 0;
        if (rc == MDB_MAP_FULL)
            return APPLY_MAP_FULL;
        if (disk_full (rc, self->path))
            return fail (err, err_len, STORE_ERR_NOSPACE,
                         "disk full: the filesystem of %s has %lld bytes free; nothing of the "
                         "group was applied, and it will be once there is room (agents send "
                         "again)",
                         self->path, free_bytes (self->path));
        return fail (err, err_len, STORE_ERR,
                     "cannot commit to the store in %s: %s (the filesystem has %lld bytes free)",
                     self->path, mdb_strerror (rc), free_bytes (self->path));
    }
    self->committed_seq = seq;
    self->open_records = self->open_journaled = 0;
    /* Not fatal: entries of groups the commit holds are skipped when read. */
    char ignored[STORE_ERR_LEN];
    if (self->journal)
        store_journal_reset (self->journal, ignored, sizeof ignored);
    return 0;
}

typedef enum {
    MODE_COMMIT,  /* store_apply: committed before it returns */
    MODE_JOURNAL, /* store_apply_journaled: committed, or in the journal */
    MODE_IMPORT,  /* store_import: committed, no marks, no counters */
    MODE_REPLAY,  /* a group read from the journal: left in the open transaction */
} apply_mode_t;

#define REPLAY_AGAIN 6 /* the open transaction was given up while applying the journal */

static int replay_journal (store_t *self, char *err, size_t err_len);

/* The group is in the open transaction: makes it durable, in the journal (MODE_JOURNAL, while the
 * open transaction is young and small) or by committing. */
static int
settle (store_t *self, apply_mode_t mode, Totalplace__Batch *const *batches, size_t batch_count,
        const bool *refused, char *err, size_t err_len)
{
    if (mode == MODE_REPLAY) {
        self->open_journaled++;
        return 0;
    }
    if (mode == MODE_JOURNAL && self->journal && self->open_records < self->journal_records &&
        now_seconds () - self->open_since < self->journal_seconds &&
        store_journal_append (self->journal, self->seq, batches, batch_count, refused, err,
                              err_len) == 0) {
        self->open_journaled++;
        return 0;
    }
    /* (A journal that cannot be written: the group is made durable by the commit instead.) */
    return open_commit (self, err, err_len);
}

/* store_apply, store_apply_journaled, store_import, and the groups of the journal. */
static int
apply_group (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
             store_result_t *const *results, uint64_t *marks_before, apply_mode_t mode, char *err,
             size_t err_len)
{
    if (self->read_only)
        return fail (err, err_len, STORE_ERR, "store is open read-only");
    if (store_damage (self, NULL, 0))
        return refuse_damaged (self, err, err_len);
    /* Remember which records were refused upstream, so that a retry (after growing the map, or
     * in exact mode) starts from exactly the caller's state, and the journal says which. */
    size_t total_records = 0;
    for (size_t b = 0; b < batch_count; b++)
        total_records += batches[b]->n_records;
    bool *refused_upstream = calloc (total_records ? total_records : 1, sizeof (bool));
    if (!refused_upstream)
        return fail (err, err_len, STORE_ERR, "out of memory");
    for (size_t b = 0, n = 0; b < batch_count; b++)
        for (size_t i = 0; i < batches[b]->n_records; i++, n++)
            refused_upstream[n] = results[b][i].outcome == STORE_REJECTED;

    bool exact = mode == MODE_REPLAY && self->replay_exact_seq == self->seq + 1;
    int rc;
    for (;;) {
        rc = 0;
        if (self->replay_needed && mode != MODE_REPLAY)
            rc = replay_journal (self, err, err_len);
        if (rc == 0)
            rc = open_begin (self, err, err_len);
        if (rc == 0) {
            rc = apply_once (self, self->open_txn, batches, batch_count, results, marks_before,
                             exact, mode == MODE_IMPORT, err, err_len);
            /* Part of the group is in the open transaction: give it all up; the journal holds
             * the groups before this one, applied again first on the next attempt. */
            if (rc)
                open_abort (self);
        }
        if (rc == 0) {
            self->seq++;
            self->open_records += total_records;
            rc = settle (self, mode, batches, batch_count, refused_upstream, err, err_len);
            if (rc == 0)
                break;
        }
        if (mode == MODE_REPLAY && self->replay_needed &&
            (rc == APPLY_NEEDS_EXACT || rc == APPLY_MAP_FULL)) {
            /* Replaying, with the groups before this one given up: start the replay again. */
            if (rc == APPLY_NEEDS_EXACT)
                self->replay_exact_seq = self->seq + 1; /* this group, the next time */
            rc = REPLAY_AGAIN;
            break;
        }
        if (rc == APPLY_NEEDS_EXACT)
            exact = true;
        else if (rc == APPLY_MAP_FULL) {
            if ((rc = grow_map (self, err, err_len)) != 0)
                break;
        }
        else
            break;
        for (size_t b = 0, n = 0; b < batch_count; b++)
            for (size_t i = 0; i < batches[b]->n_records; i++, n++)
                if (!refused_upstream[n])
                    results[b][i].outcome = STORE_PENDING;
    }
    free (refused_upstream);
    if (rc == STORE_ERR_DAMAGED)
        return refuse_damaged (self, err, err_len);
    return rc;
}

/* How a replay goes: the store, its caller's message buffer, and the first failure. */
typedef struct {
    store_t *store;
    char *err;
    size_t err_len;
    int rc;
} replay_t;

/* One group read from the journal: applied again when the last commit does not hold it. */
static int
replay_group (void *arg, uint64_t seq, Totalplace__Batch *const *batches, size_t batch_count,
              const bool *refused)
{
    replay_t *replay = arg;
    store_t *self = replay->store;
    if (seq <= self->seq)
        return 0;
    if (seq != self->seq + 1) {
        replay->rc =
            fail (replay->err, replay->err_len, STORE_ERR_FORMAT,
                  "the journal of the store in %s does not follow it: it holds group "
                  "%llu next, the store ends at group %llu. If data.mdb was restored "
                  "from a backup, move %s/journal away (the agents send again what it "
                  "held; docs/operations.md)",
                  self->path, (unsigned long long)seq, (unsigned long long)self->seq, self->path);
        return 1;
    }
    size_t records = 0;
    for (size_t b = 0; b < batch_count; b++)
        records += batches[b]->n_records;
    store_result_t *pool = calloc (records + 1, sizeof *pool);
    store_result_t **results = calloc (batch_count + 1, sizeof *results);
    int rc = pool && results ? 0 : fail (replay->err, replay->err_len, STORE_ERR, "out of memory");
    for (size_t b = 0, n = 0; rc == 0 && b < batch_count; b++) {
        results[b] = pool + n;
        for (size_t i = 0; i < batches[b]->n_records; i++, n++)
            if (refused && refused[n])
                pool[n].outcome = STORE_REJECTED; /* refused before the store, as at first */
    }
    if (rc == 0)
        rc = apply_group (self, batches, batch_count, results, NULL, MODE_REPLAY, replay->err,
                          replay->err_len);
    free (pool);
    free (results);
    replay->rc = rc;
    return rc ? 1 : 0;
}

/* Applies the journal's groups the last commit does not hold, then commits them. */
static int
replay_journal (store_t *self, char *err, size_t err_len)
{
    for (int attempt = 0; attempt < 64; attempt++) {
        self->replay_needed = false;
        replay_t replay = {self, err, err_len, 0};
        int rc = store_journal_read (self->journal, replay_group, &replay, err, err_len);
        if (rc == 1)
            rc = replay.rc;
        else if (rc == -2)
            rc = STORE_ERR_DAMAGED; /* the message says where */
        else if (rc)
            rc = STORE_ERR;
        if (rc == 0)
            rc = open_commit (self, err, err_len);
        if (rc == 0)
            return 0;
        open_abort (self);
        self->replay_needed = true;
        if (rc != REPLAY_AGAIN && rc != APPLY_MAP_FULL)
            return rc;
        if ((rc = grow_map (self, err, err_len)) != 0)
            return rc;
    }
    return fail (err, err_len, STORE_ERR, "cannot apply the journal of the store in %s",
                 self->path);
}

int
store_apply (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
             store_result_t *const *results, uint64_t *marks_before, char *err, size_t err_len)
{
    return apply_group (self, batches, batch_count, results, marks_before, MODE_COMMIT, err,
                        err_len);
}

int
store_apply_journaled (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
                       store_result_t *const *results, uint64_t *marks_before, char *err,
                       size_t err_len)
{
    return apply_group (self, batches, batch_count, results, marks_before, MODE_JOURNAL, err,
                        err_len);
}

int
store_import (store_t *self, Totalplace__Batch *const *batches, size_t batch_count,
              store_result_t *const *results, char *err, size_t err_len)
{
    return apply_group (self, batches, batch_count, results, NULL, MODE_IMPORT, err, err_len);
}

int
store_flush (store_t *self, char *err, size_t err_len)
{
    if (!self->open_txn && !self->replay_needed)
        return 0;
    int rc = self->replay_needed ? replay_journal (self, err, err_len) : 0;
    if (rc == 0)
        rc = open_commit (self, err, err_len);
    if (rc == APPLY_MAP_FULL) {
        /* Given up: the journal holds its groups; the next group or flush applies them again. */
        rc = grow_map (self, err, err_len);
        if (rc == 0)
            rc = replay_journal (self, err, err_len);
    }
    return rc;
}

size_t
store_pending (const store_t *self)
{
    return self->open_txn ? (size_t)self->open_records : 0;
}

int
store_import_books (store_t *self, const store_agent_t *agents, size_t agent_count,
                    const store_counters_t *counters, char *err, size_t err_len)
{
    if (self->read_only)
        return fail (err, err_len, STORE_ERR, "store is open read-only");
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot begin write transaction: %s",
                     mdb_strerror (rc));
    for (size_t i = 0; i < agent_count && rc == 0; i++) {
        agent_value_t agent = {agents[i].last_batch_seq, agents[i].batches, agents[i].last_seen};
        MDB_val key = {strlen (agents[i].agent_id), (void *)agents[i].agent_id};
        rc = put_value (txn, NULL, self->agents, STORE_DB_AGENTS, &key, &agent, sizeof agent, NULL,
                        MDB_NOOVERWRITE);
    }
    if (rc == 0 && counters) {
        counters_value_t value = {counters->batches,    counters->accepted, counters->duplicate,
                                  counters->superseded, counters->stale,    counters->rejected};
        MDB_val key = {sizeof COUNTERS_KEY - 1, (void *)COUNTERS_KEY};
        rc = put_value (txn, NULL, self->meta, STORE_DB_META, &key, &value, sizeof value, NULL, 0);
    }
    if (rc) {
        mdb_txn_abort (txn);
        return fail (err, err_len, STORE_ERR, "cannot write the agents and counters: %s%s",
                     mdb_strerror (rc),
                     rc == MDB_MAP_FULL ? " (the map is full: raise its size)" : "");
    }
    rc = mdb_txn_commit (txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot commit to the store in %s: %s", self->path,
                     mdb_strerror (rc));
    return 0;
}

/* ---------------------------------------------------------------- reading */

static int
begin_read (store_t *self, MDB_txn **txn, char *err, size_t err_len)
{
    pthread_rwlock_rdlock (&self->resize_lock);
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process (the collector) grew the map: adopt its size and try again. */
        pthread_rwlock_unlock (&self->resize_lock);
        pthread_rwlock_wrlock (&self->resize_lock);
        mdb_env_set_mapsize (self->env, 0);
        pthread_rwlock_unlock (&self->resize_lock);
        pthread_rwlock_rdlock (&self->resize_lock);
        rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    }
    if (rc) {
        pthread_rwlock_unlock (&self->resize_lock);
        return fail (err, err_len, STORE_ERR, "cannot begin read transaction: %s",
                     mdb_strerror (rc));
    }
    return 0;
}

static void
end_read (store_t *self, MDB_txn *txn)
{
    mdb_txn_abort (txn);
    pthread_rwlock_unlock (&self->resize_lock);
}

/* Rows of a breakdown, kept sorted by key while aggregating. */
typedef struct {
    char *key;
    store_amount_t amount;
} row_t;

typedef struct {
    row_t *rows;
    size_t count, capacity;
} row_set_t;

static void
row_set_clear (row_set_t *set)
{
    for (size_t i = 0; i < set->count; i++)
        free (set->rows[i].key);
    free (set->rows);
    *set = (row_set_t){0};
}

/* Puts a copy of key with amount at index at (count to append), moving the rows after it. */
static int
row_set_insert (row_set_t *set, size_t at, const char *key, store_amount_t amount, char *err,
                size_t err_len)
{
    if (set->count == set->capacity) {
        size_t capacity = set->capacity ? set->capacity * 2 : 16;
        row_t *rows = realloc (set->rows, capacity * sizeof *rows);
        if (!rows)
            return fail (err, err_len, STORE_ERR, "out of memory");
        set->rows = rows;
        set->capacity = capacity;
    }
    char *copy = strdup (key);
    if (!copy)
        return fail (err, err_len, STORE_ERR, "out of memory");
    memmove (&set->rows[at + 1], &set->rows[at], (set->count - at) * sizeof *set->rows);
    set->rows[at] = (row_t){copy, amount};
    set->count++;
    return 0;
}

static int
row_set_add (row_set_t *set, const char *key, store_amount_t amount, char *err, size_t err_len)
{
    /* Keys mostly arrive in order (cells are sorted), so check the end before searching. */
    size_t low = 0, high = set->count;
    if (set->count && strcmp (set->rows[set->count - 1].key, key) < 0)
        low = set->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (strcmp (set->rows[mid].key, key) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    if (low < set->count && strcmp (set->rows[low].key, key) == 0) {
        row_t *row = &set->rows[low];
        if (__builtin_add_overflow (row->amount.amount_pence, amount.amount_pence,
                                    &row->amount.amount_pence) ||
            __builtin_add_overflow (row->amount.records, amount.records, &row->amount.records))
            return fail (err, err_len, STORE_ERR, "total for \"%s\" overflows int64 pence", key);
        return 0;
    }
    return row_set_insert (set, low, key, amount, err, err_len);
}

/* A filter resolved to ids and months in one read transaction. */
typedef struct {
    bool none;              /* a text the filter names is not in the store: nothing matches */
    uint32_t body, service; /* 0: any */
    uint32_t first_month, last_month;
    int poolable; /* 1, 0, or -1 for either */
} cell_filter_t;

static int
resolve_filter (store_t *self, MDB_txn *txn, const store_filter_t *filter, cell_filter_t *out,
                char *err, size_t err_len)
{
    *out = (cell_filter_t){.last_month = STORE_MONTHS - 1, .poolable = -1};
    if (!filter)
        return 0;
    out->poolable = filter->poolable;
    store_dict_txn_t dict = dict_of (self, txn);
    struct {
        unsigned kind;
        const char *text;
        uint32_t *id;
    } texts[] = {{STORE_TEXT_BODY, filter->body_id, &out->body},
                 {STORE_TEXT_SERVICE, filter->service, &out->service}};
    for (size_t i = 0; i < 2; i++) {
        if (!texts[i].text)
            continue;
        store_dict_fault_t fault;
        int rc = store_dict_find (&dict, texts[i].kind, texts[i].text, strlen (texts[i].text),
                                  texts[i].id, &fault);
        if (rc == STORE_DICT_NOTFOUND)
            out->none = true;
        else if (rc)
            return dict_failed (self, txn, &fault, err, err_len);
    }
    if (filter->month) {
        int month = store_codec_month (filter->month);
        if (month < 0)
            out->none = true;
        else
            out->first_month = out->last_month = (uint32_t)month;
    }
    int start;
    if (filter->fiscal_year) {
        if (period_fiscal_year_parse (filter->fiscal_year, &start))
            out->none = true;
        else {
            /* April of the first year to March of the next. */
            int first = (start - PERIOD_MIN_YEAR) * 12 + 3, last = first + 11;
            if (last < 0 || first > (int)STORE_MONTHS - 1)
                out->none = true;
            else {
                if (first > (int)out->first_month)
                    out->first_month = (uint32_t)first;
                if (last < (int)out->last_month)
                    out->last_month = (uint32_t)last;
            }
        }
    }
    if (out->first_month > out->last_month)
        out->none = true;
    return 0;
}

static bool
cell_matches (const store_codec_cell_t *cell, const cell_filter_t *filter)
{
    return cell->month >= filter->first_month && cell->month <= filter->last_month &&
           (!filter->body || filter->body == cell->body) &&
           (!filter->service || filter->service == cell->service) &&
           (filter->poolable < 0 || (filter->poolable != 0) == cell->poolable);
}

/* Cells summed by their breakdowns' values as ids (body, service and neighbourhood ids, the month,
 * the fiscal year's number, poolable), before any text is looked up: a cell then costs a hash
 * probe, and each group is named once, from the key of a cell of it, when the rows are made. */
typedef struct {
    uint32_t values[STORE_MAX_BREAKDOWNS];
    unsigned char key[STORE_CODEC_CELL_KEY_LEN]; /* a cell of the group, to name it by */
    store_amount_t amount;
    bool used;
} group_t;

typedef struct {
    group_t *slots;
    size_t count, capacity; /* capacity: 0 or a power of two */
} group_table_t;

static void
group_table_clear (group_table_t *table)
{
    free (table->slots);
    *table = (group_table_t){0};
}

static uint64_t
group_hash (const uint32_t *values)
{
    uint64_t h = UINT64_C (0x9e3779b97f4a7c15);
    for (size_t i = 0; i < STORE_MAX_BREAKDOWNS; i++) {
        h ^= values[i];
        h *= UINT64_C (0xff51afd7ed558ccd);
        h ^= h >> 33;
    }
    return h;
}

/* The slot of values: its group, or the free slot where it goes. */
static group_t *
group_slot (group_t *slots, size_t capacity, const uint32_t *values)
{
    size_t i = (size_t)group_hash (values) & (capacity - 1);
    while (slots[i].used && memcmp (slots[i].values, values, sizeof slots[i].values) != 0)
        i = (i + 1) & (capacity - 1);
    return &slots[i];
}

/* Adds amount to the group of values (new: named later by key). The amounts are the cells' own,
 * each within a total the store holds, but their sum may still overflow: that is an error. */
static int
group_add (group_table_t *table, const uint32_t *values, const MDB_val *key, store_amount_t amount,
           char *err, size_t err_len)
{
    if ((table->count + 1) * 2 > table->capacity) {
        size_t capacity = table->capacity ? table->capacity * 2 : 64;
        group_t *slots = calloc (capacity, sizeof *slots);
        if (!slots)
            return fail (err, err_len, STORE_ERR, "out of memory");
        for (size_t i = 0; i < table->capacity; i++)
            if (table->slots[i].used)
                *group_slot (slots, capacity, table->slots[i].values) = table->slots[i];
        free (table->slots);
        table->slots = slots;
        table->capacity = capacity;
    }
    group_t *group = group_slot (table->slots, table->capacity, values);
    if (!group->used) {
        *group = (group_t){.used = true, .amount = amount};
        memcpy (group->values, values, sizeof group->values);
        memcpy (group->key, key->mv_data, sizeof group->key);
        table->count++;
        return 0;
    }
    if (__builtin_add_overflow (group->amount.amount_pence, amount.amount_pence,
                                &group->amount.amount_pence) ||
        __builtin_add_overflow (group->amount.records, amount.records, &group->amount.records))
        return fail (err, err_len, STORE_ERR, "a total of this question overflows int64 pence");
    return 0;
}

/* One read of cells: its transaction, the names met so far, the rows, what to keep. */
typedef struct {
    store_t *store;
    MDB_txn *txn;
    store_dict_txn_t dict;
    store_dict_names_t names;
    row_set_t set;
    cell_filter_t filter;
    store_breakdown_t by[STORE_MAX_BREAKDOWNS];
    size_t by_count;
    group_table_t groups; /* cells summed by the ids of their breakdowns, named at the end */
} cell_read_t;

/* The text of an id a cell's key holds; damage of the cell when the dictionary has none. */
static int
cell_name (cell_read_t *read, const MDB_val *key, unsigned kind, uint32_t id, const char **text,
           char *err, size_t err_len)
{
    store_dict_fault_t fault;
    int rc = store_dict_name (&read->names, &read->dict, kind, id, text, &fault);
    if (rc == STORE_DICT_NOTFOUND)
        return damaged (read->store, read->txn, STORE_DB_CELLS, key->mv_data, key->mv_size, err,
                        err_len, "names %s id %u, which texts does not hold",
                        store_text_kind_name (kind), (unsigned)id);
    if (rc)
        return dict_failed (read->store, read->txn, &fault, err, err_len);
    return 0;
}

static int
breakdown_key (cell_read_t *read, store_breakdown_t by, const MDB_val *key,
               const store_codec_cell_t *cell, char scratch[PERIOD_LEN], const char **text,
               char *err, size_t err_len)
{
    char period[PERIOD_LEN];
    switch (by) {
    case STORE_BY_BODY:
        return cell_name (read, key, STORE_TEXT_BODY, cell->body, text, err, err_len);
    case STORE_BY_SERVICE:
        return cell_name (read, key, STORE_TEXT_SERVICE, cell->service, text, err, err_len);
    case STORE_BY_NEIGHBOURHOOD:
        return cell_name (read, key, STORE_TEXT_NEIGHBOURHOOD, cell->neighbourhood, text, err,
                          err_len);
    case STORE_BY_MONTH:
        *text = store_codec_period (cell->month, scratch);
        return 0;
    case STORE_BY_FISCAL_YEAR:
        store_codec_period (cell->month, period);
        *text = period_fiscal_year (period, scratch, FISCAL_YEAR_LEN) == 0 ? scratch : "invalid";
        return 0;
    case STORE_BY_POOLABLE:
        *text = cell->poolable ? "yes" : "no";
        return 0;
    case STORE_BY_NONE:
        break;
    }
    *text = "";
    return 0;
}

static int
emit_rows (const row_set_t *set, store_row_fn *row, void *arg)
{
    for (size_t i = 0; i < set->count; i++)
        if (row (arg, set->rows[i].key, set->rows[i].amount))
            break;
    return 0;
}

/* The keys of a row of several breakdowns are joined by KEY_SEPARATOR, a control character no
 * stored text holds (wire_check_text), so the joined keys sort as their lists do. */
#define KEY_SEPARATOR '\x1f'

static int
emit_key_rows (const row_set_t *set, size_t by_count, store_keys_fn *row, void *arg, char *err,
               size_t err_len)
{
    for (size_t i = 0; i < set->count; i++) {
        char *joined = set->rows[i].key;
        const char *keys[STORE_MAX_BREAKDOWNS] = {""};
        size_t n = 0;
        /* The row's key is split in place: it is freed with the set, never read again. */
        for (char *part = joined; by_count && n < by_count; n++) {
            keys[n] = part;
            char *end = strchr (part, KEY_SEPARATOR);
            if (!end)
                break;
            *end = '\0';
            part = end + 1;
        }
        if (by_count && n + 1 != by_count)
            return fail (err, err_len, STORE_ERR, "a breakdown's key holds a separator");
        if (row (arg, keys, set->rows[i].amount))
            break;
    }
    return 0;
}

/* The value a cell groups by for one breakdown: cells of one value have the same text. */
static uint32_t
breakdown_value (store_breakdown_t by, const store_codec_cell_t *cell)
{
    switch (by) {
    case STORE_BY_BODY:
        return cell->body;
    case STORE_BY_SERVICE:
        return cell->service;
    case STORE_BY_NEIGHBOURHOOD:
        return cell->neighbourhood;
    case STORE_BY_MONTH:
        return cell->month;
    case STORE_BY_FISCAL_YEAR:
        return (cell->month + 9) / 12; /* months count from January: April starts a year */
    case STORE_BY_POOLABLE:
        return cell->poolable ? 1 : 0;
    case STORE_BY_NONE:
        break;
    }
    return 0;
}

/* Adds one cell to its group when it passes the filter. */
static int
add_cell (cell_read_t *read, const MDB_val *key, const MDB_val *value, char *err, size_t err_len)
{
    MDB_val payload;
    store_amount_t amount;
    int rc = open_value (read->store, read->txn, STORE_DB_CELLS, key, value, 0, NULL, &payload, err,
                         err_len);
    if (rc == 0)
        rc = decode_amount (read->store, read->txn, STORE_DB_CELLS, key, &payload, &amount, err,
                            err_len);
    if (rc)
        return rc;
    /* The checksum covers the key, so a key that passed it and does not split is no key of ours:
     * still damage (of a kind only a program writing the store could cause). */
    store_codec_cell_t cell;
    if (store_codec_cell_key_split (key->mv_data, key->mv_size, &cell))
        return damaged (read->store, read->txn, STORE_DB_CELLS, key->mv_data, key->mv_size, err,
                        err_len, "has a key that is not a cell's");
    if (!cell_matches (&cell, &read->filter))
        return 0;
    if (key->mv_size != STORE_CODEC_CELL_KEY_LEN)
        return damaged (read->store, read->txn, STORE_DB_CELLS, key->mv_data, key->mv_size, err,
                        err_len, "has a key that is not a cell's");
    uint32_t values[STORE_MAX_BREAKDOWNS] = {0};
    for (size_t b = 0; b < read->by_count; b++)
        values[b] = breakdown_value (read->by[b], &cell);
    return group_add (&read->groups, values, key, amount, err, err_len);
}

static int
compare_rows (const void *a, const void *b)
{
    return strcmp (((const row_t *)a)->key, ((const row_t *)b)->key);
}

/* Names every group (its keys as text, joined) into the rows, then sorts them by text once. */
static int
name_groups (cell_read_t *read, char *err, size_t err_len)
{
    row_set_t *set = &read->set;
    if (read->groups.count) {
        set->rows = malloc (read->groups.count * sizeof *set->rows);
        if (!set->rows)
            return fail (err, err_len, STORE_ERR, "out of memory");
        set->capacity = read->groups.count;
    }
    for (size_t i = 0; i < read->groups.capacity; i++) {
        const group_t *group = &read->groups.slots[i];
        if (!group->used)
            continue;
        MDB_val key = {sizeof group->key, (void *)group->key};
        store_codec_cell_t cell;
        if (store_codec_cell_key_split (key.mv_data, key.mv_size, &cell))
            return damaged (read->store, read->txn, STORE_DB_CELLS, key.mv_data, key.mv_size, err,
                            err_len, "has a key that is not a cell's");
        /* Room for every key: texts up to a service's 128 bytes, periods shorter. */
        char joined[STORE_MAX_BREAKDOWNS * (WIRE_MAX_SERVICE + WIRE_MAX_BODY_ID + 2)];
        size_t used = 0;
        joined[0] = '\0';
        for (size_t b = 0; b < read->by_count; b++) {
            char scratch[PERIOD_LEN];
            const char *text;
            int rc = breakdown_key (read, read->by[b], &key, &cell, scratch, &text, err, err_len);
            if (rc)
                return rc;
            size_t len = strlen (text);
            if (used + len + 2 > sizeof joined)
                return fail (err, err_len, STORE_ERR, "a breakdown's key is too long");
            if (b)
                joined[used++] = KEY_SEPARATOR;
            memcpy (joined + used, text, len + 1);
            used += len;
        }
        char *copy = strdup (joined);
        if (!copy)
            return fail (err, err_len, STORE_ERR, "out of memory");
        set->rows[set->count++] = (row_t){copy, group->amount};
    }
    if (set->count)
        qsort (set->rows, set->count, sizeof *set->rows, compare_rows);
    /* Groups of other ids have other texts (one text, one id), so no two rows share a key. */
    for (size_t i = 1; i < set->count; i++)
        if (strcmp (set->rows[i - 1].key, set->rows[i].key) == 0)
            return fail (err, err_len, STORE_ERR, "two groups of this question are both named %s",
                         set->rows[i].key);
    return 0;
}

/* The month of the cell key at key; damage when it is too short to hold one. */
static int
key_month (cell_read_t *read, const MDB_val *key, uint32_t *month, char *err, size_t err_len)
{
    const unsigned char *bytes = key->mv_data;
    if (key->mv_size != STORE_CODEC_CELL_KEY_LEN)
        return damaged (read->store, read->txn, STORE_DB_CELLS, key->mv_data, key->mv_size, err,
                        err_len, "has a key that is not a cell's");
    *month = (uint32_t)bytes[0] << 8 | bytes[1];
    return 0;
}

/* The cells of some neighbourhoods (ids ascending): cells are month-first, so each neighbourhood's
 * lie in one run per month. Month by month, seeks to (month, neighbourhood) for each neighbourhood
 * that may have cells in it: the key found is either the start of the run, or tells the next month
 * that neighbourhood may have cells in. About one seek per month per neighbourhood, made in key
 * order within a month, so that one month's seeks share the branch pages above its cells. */
static int
add_neighbourhood_cells (cell_read_t *read, MDB_cursor *cursor, const uint32_t *ids, size_t count,
                         char *err, size_t err_len)
{
    const uint32_t none = UINT32_MAX; /* no cell at or after: done */
    uint32_t *next = malloc ((count ? count : 1) * sizeof *next);
    if (!next)
        return fail (err, err_len, STORE_ERR, "out of memory");
    for (size_t i = 0; i < count; i++)
        next[i] = read->filter.first_month;
    unsigned char seek[STORE_CODEC_CELL_KEY_LEN] = {0};
    MDB_val key, value;
    int rc = 0;
    for (uint32_t month = read->filter.first_month; rc == 0 && month <= read->filter.last_month;) {
        uint32_t following = none;
        for (size_t i = 0; rc == 0 && i < count; i++) {
            if (next[i] != month) {
                following = next[i] < following ? next[i] : following;
                continue;
            }
            store_codec_cell_t first = {.month = month, .neighbourhood = ids[i]};
            store_codec_cell_key (&first, seek);
            key = (MDB_val){STORE_CODEC_CELL_PREFIX, seek};
            rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
            uint32_t found = month;
            while (rc == 0) {
                rc = key_month (read, &key, &found, err, err_len);
                if (rc)
                    goto out;
                if (found != month || memcmp (key.mv_data, seek, STORE_CODEC_CELL_PREFIX) != 0)
                    break; /* past the run, or no cell of this month at or past the neighbourhood */
                rc = add_cell (read, &key, &value, err, err_len);
                if (rc)
                    goto out;
                rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
            }
            if (rc == MDB_NOTFOUND) {
                next[i] = none; /* the last key is behind it */
                rc = 0;
            }
            else if (rc == 0)
                next[i] = found > month ? found : month + 1;
            following = next[i] < following ? next[i] : following;
        }
        month = following;
    }
    if (rc)
        rc = read_failed (read->store, read->txn, rc, STORE_DB_CELLS, seek, STORE_CODEC_CELL_PREFIX,
                          err, err_len);
out:
    free (next);
    return rc;
}

/* Every cell of the filter's months. */
static int
add_all_cells (cell_read_t *read, MDB_cursor *cursor, char *err, size_t err_len)
{
    unsigned char seek[2] = {(unsigned char)(read->filter.first_month >> 8),
                             (unsigned char)read->filter.first_month};
    MDB_val key = {sizeof seek, seek}, value;
    int rc;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        uint32_t month = 0;
        int bad = key_month (read, &key, &month, err, err_len);
        if (bad)
            return bad;
        if (month > read->filter.last_month)
            return 0;
        int added = add_cell (read, &key, &value, err, err_len);
        if (added)
            return added;
    }
    if (rc == MDB_NOTFOUND)
        return 0;
    return read_failed (read->store, read->txn, rc, STORE_DB_CELLS, key.mv_data, key.mv_size, err,
                        err_len);
}

static int
compare_ids (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids of the neighbourhoods asked for that the store knows, sorted and once each. With strict
 * (one neighbourhood asked by its code) an unknown one, or one with no total, is NOTFOUND. */
static int
resolve_neighbourhoods (cell_read_t *read, const store_question_t *question, bool strict,
                        uint32_t **ids, size_t *count, char *err, size_t err_len)
{
    size_t asked = question->neighbourhood_count;
    *count = 0;
    *ids = malloc ((asked ? asked : 1) * sizeof **ids);
    if (!*ids)
        return fail (err, err_len, STORE_ERR, "out of memory");
    for (size_t i = 0; i < asked; i++) {
        const char *code = question->neighbourhoods[i];
        store_dict_fault_t fault;
        uint32_t id;
        int rc = strlen (code) > MAX_KEY_BYTES / 2
                     ? STORE_DICT_NOTFOUND
                     : store_dict_find (&read->dict, STORE_TEXT_NEIGHBOURHOOD, code, strlen (code),
                                        &id, &fault);
        if (rc == STORE_DICT_OK && strict) {
            store_amount_t total;
            unsigned char key_bytes[STORE_CODEC_ID_LEN];
            MDB_val key = {sizeof key_bytes, key_bytes};
            store_codec_id (id, key_bytes);
            rc = get_amount (read->store, read->txn, STORE_DB_NEIGHBOURHOODS, &key, &total, err,
                             err_len);
            if (rc == MDB_NOTFOUND)
                rc = STORE_DICT_NOTFOUND;
            else if (rc)
                return rc;
        }
        if (rc == STORE_DICT_NOTFOUND) {
            if (strict)
                return fail (err, err_len, STORE_ERR_NOTFOUND,
                             "neighbourhood %.64s has no records in this store", code);
            continue; /* a member of a place with no records adds nothing */
        }
        if (rc)
            return dict_failed (read->store, read->txn, &fault, err, err_len);
        (*ids)[(*count)++] = id;
    }
    if (*count)
        qsort (*ids, *count, sizeof **ids, compare_ids);
    size_t kept = 0;
    for (size_t i = 0; i < *count; i++)
        if (kept == 0 || (*ids)[kept - 1] != (*ids)[i])
            (*ids)[kept++] = (*ids)[i];
    *count = kept;
    return 0;
}

static int
totals_read (store_t *self, const store_question_t *question, bool strict, store_keys_fn *row,
             void *arg, char *err, size_t err_len)
{
    if (question->by_count > STORE_MAX_BREAKDOWNS)
        return fail (err, err_len, STORE_ERR, "at most %d breakdowns in one question",
                     STORE_MAX_BREAKDOWNS);
    cell_read_t read = {.store = self, .by_count = question->by_count};
    for (size_t b = 0; b < question->by_count; b++) {
        read.by[b] = question->by[b];
        if (read.by[b] == STORE_BY_NONE)
            return fail (err, err_len, STORE_ERR, "breakdown %zu of the question is none", b + 1);
    }
    uint32_t *ids = NULL;
    size_t id_count = 0;
    int rc = begin_read (self, &read.txn, err, err_len);
    if (rc)
        return rc;
    read.dict = dict_of (self, read.txn);
    MDB_cursor *cursor = NULL;
    if (question->neighbourhoods) {
        rc = resolve_neighbourhoods (&read, question, strict, &ids, &id_count, err, err_len);
        if (rc)
            goto out;
    }
    rc = resolve_filter (self, read.txn, question->filter, &read.filter, err, err_len);
    if (rc)
        goto out;
    rc = mdb_cursor_open (read.txn, self->cells, &cursor);
    if (rc) {
        rc = fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
        goto out;
    }
    if (read.filter.none)
        rc = 0;
    else if (question->neighbourhoods)
        rc = add_neighbourhood_cells (&read, cursor, ids, id_count, err, err_len);
    else
        rc = add_all_cells (&read, cursor, err, err_len);
    if (rc == 0)
        rc = name_groups (&read, err, err_len);
    if (rc)
        goto out;
    /* A total with no matching cells is still a total: zero. */
    if (question->by_count == 0 && read.set.count == 0)
        rc = row_set_add (&read.set, "", (store_amount_t){0, 0}, err, err_len);
    if (rc == 0)
        rc = emit_key_rows (&read.set, question->by_count, row, arg, err, err_len);
out:
    if (cursor)
        mdb_cursor_close (cursor);
    end_read (self, read.txn);
    free (ids);
    group_table_clear (&read.groups);
    row_set_clear (&read.set);
    store_dict_names_clear (&read.names);
    return rc;
}

int
store_totals_of (store_t *self, const store_question_t *question, store_keys_fn *row, void *arg,
                 char *err, size_t err_len)
{
    return totals_read (self, question, question->strict, row, arg, err, err_len);
}

/* store_totals' rows: one key each. */
typedef struct {
    store_row_fn *row;
    void *arg;
} one_key_t;

static int
one_key_row (void *arg, const char *const *keys, store_amount_t amount)
{
    one_key_t *one = arg;
    return one->row (one->arg, keys[0], amount);
}

int
store_totals (store_t *self, const char *neighbourhood, store_breakdown_t by,
              const store_filter_t *filter, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    store_question_t question = {.by = {by}, .by_count = by != STORE_BY_NONE, .filter = filter};
    if (neighbourhood) {
        question.neighbourhoods = &neighbourhood;
        question.neighbourhood_count = 1;
    }
    one_key_t one = {row, arg};
    return totals_read (self, &question, true, one_key_row, &one, err, err_len);
}

static int
compare_ranked (const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->amount.amount_pence != y->amount.amount_pence)
        return x->amount.amount_pence > y->amount.amount_pence ? -1 : 1;
    return strcmp (x->key, y->key);
}

int
store_neighbourhoods (store_t *self, store_row_fn *row, void *arg, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_cursor *cursor = NULL;
    row_set_t set = {0};
    store_dict_txn_t dict = dict_of (self, txn);
    rc = mdb_cursor_open (txn, self->neighbourhoods, &cursor);
    if (rc) {
        rc = fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
        goto out;
    }
    MDB_val key = {0, NULL}, value, payload;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        store_amount_t amount;
        uint32_t id;
        rc = open_value (self, txn, STORE_DB_NEIGHBOURHOODS, &key, &value, 0, NULL, &payload, err,
                         err_len);
        if (rc == 0)
            rc = decode_amount (self, txn, STORE_DB_NEIGHBOURHOODS, &key, &payload, &amount, err,
                                err_len);
        if (rc)
            goto out;
        if (store_codec_id_decode (key.mv_data, key.mv_size, &id)) {
            rc = damaged (self, txn, STORE_DB_NEIGHBOURHOODS, key.mv_data, key.mv_size, err,
                          err_len, "has a key that is not a neighbourhood's");
            goto out;
        }
        const char *code;
        size_t code_len;
        store_dict_fault_t fault;
        rc = store_dict_text (&dict, STORE_TEXT_NEIGHBOURHOOD, id, &code, &code_len, &fault);
        if (rc == STORE_DICT_NOTFOUND)
            rc =
                damaged (self, txn, STORE_DB_NEIGHBOURHOODS, key.mv_data, key.mv_size, err, err_len,
                         "names neighbourhood id %u, which texts does not hold", (unsigned)id);
        else if (rc)
            rc = dict_failed (self, txn, &fault, err, err_len);
        else /* one row per neighbourhood: appended, ranked once below (not kept sorted) */
            rc = row_set_insert (&set, set.count, code, amount, err, err_len);
        if (rc)
            goto out;
    }
    if (rc != MDB_NOTFOUND) {
        rc = read_failed (self, txn, rc, STORE_DB_NEIGHBOURHOODS, key.mv_data, key.mv_size, err,
                          err_len);
        goto out;
    }
    if (set.count) /* qsort's pointer must not be NULL, even for no rows */
        qsort (set.rows, set.count, sizeof *set.rows, compare_ranked);
    rc = emit_rows (&set, row, arg);
out:
    if (cursor)
        mdb_cursor_close (cursor);
    end_read (self, txn);
    row_set_clear (&set);
    return rc;
}

int
store_get_record (store_t *self, const char *body_id, const char *record_id,
                  Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    store_dict_txn_t dict = dict_of (self, txn);
    store_dict_fault_t fault;
    uint32_t body = 0;
    unsigned char key_bytes[STORE_CODEC_RECORD_KEY_MAX];
    size_t key_len = 0;
    rc = body_id
             ? store_dict_find (&dict, STORE_TEXT_BODY, body_id, strlen (body_id), &body, &fault)
             : STORE_DICT_NOTFOUND;
    if (rc == STORE_DICT_OK && record_id)
        key_len = store_codec_record_key (body, record_id, strlen (record_id), key_bytes,
                                          sizeof key_bytes);
    MDB_val key = {key_len, key_bytes}, value, payload;
    if (rc == STORE_DICT_FAULT)
        rc = dict_failed (self, txn, &fault, err, err_len);
    else if (rc == STORE_DICT_NOTFOUND || key_len == 0 ||
             (rc = mdb_get (txn, self->records, &key, &value)) == MDB_NOTFOUND)
        rc = fail (err, err_len, STORE_ERR_NOTFOUND, "no record %.64s/%.128s in this store",
                   body_id ? body_id : "", record_id ? record_id : "");
    else if (rc)
        rc = read_failed (self, txn, rc, STORE_DB_RECORDS, key_bytes, key_len, err, err_len);
    else if ((rc = open_value (self, txn, STORE_DB_RECORDS, &key, &value, 0, NULL, &payload, err,
                               err_len)) == 0) {
        store_codec_record_t stored;
        if (store_codec_record_decode (payload.mv_data, payload.mv_size, &stored))
            rc = damaged (self, txn, STORE_DB_RECORDS, key_bytes, key_len, err, err_len,
                          "does not decode as a record");
        else
            rc = decode_record (self, txn, key_bytes, key_len, &stored, record, err, err_len);
    }
    end_read (self, txn);
    return rc;
}

int
store_counters (store_t *self, store_counters_t *counters, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    memset (counters, 0, sizeof *counters);
    MDB_val key = {sizeof COUNTERS_KEY - 1, (void *)COUNTERS_KEY};
    counters_value_t stored = {0};
    rc = get_fixed (self, txn, STORE_DB_META, &key, &stored, sizeof stored, err, err_len);
    if (rc && rc != MDB_NOTFOUND) {
        end_read (self, txn);
        return rc;
    }
    counters->batches = stored.batches;
    counters->accepted = stored.accepted;
    counters->duplicate = stored.duplicate;
    counters->superseded = stored.superseded;
    counters->stale = stored.stale;
    counters->rejected = stored.rejected;
    MDB_stat stat;
    rc = mdb_stat (txn, self->records, &stat);
    if (rc == 0)
        counters->records_stored = stat.ms_entries;
    MDB_envinfo info;
    MDB_stat env_stat;
    mdb_env_info (self->env, &info);
    mdb_env_stat (self->env, &env_stat);
    counters->map_size = info.me_mapsize;
    counters->used_bytes = (info.me_last_pgno + 1) * (size_t)env_stat.ms_psize;
    end_read (self, txn);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot read record count: %s", mdb_strerror (rc));
    return 0;
}

/* Reads an agents entry the cursor is on. */
static int
read_agent (store_t *self, MDB_txn *txn, const MDB_val *key, const MDB_val *value, char *agent_id,
            size_t agent_id_len, agent_value_t *stored, char *err, size_t err_len)
{
    MDB_val payload;
    int rc = open_value (self, txn, STORE_DB_AGENTS, key, value, sizeof *stored, NULL, &payload,
                         err, err_len);
    if (rc)
        return rc;
    if (key->mv_size >= agent_id_len)
        return damaged (self, txn, STORE_DB_AGENTS, key->mv_data, key->mv_size, err, err_len,
                        "has a key too long for an agent id");
    memcpy (agent_id, key->mv_data, key->mv_size);
    agent_id[key->mv_size] = '\0';
    memcpy (stored, payload.mv_data, sizeof *stored);
    return 0;
}

int
store_agents (store_t *self, store_agent_fn *fn, void *arg, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_cursor *cursor;
    rc = mdb_cursor_open (txn, self->agents, &cursor);
    if (rc) {
        end_read (self, txn);
        return fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
    }
    MDB_val key = {0, NULL}, value;
    int failed = 0;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        char agent_id[MAX_KEY_BYTES + 1];
        agent_value_t stored;
        failed =
            read_agent (self, txn, &key, &value, agent_id, sizeof agent_id, &stored, err, err_len);
        if (failed)
            break;
        store_agent_t agent = {agent_id, stored.last_batch_seq, stored.batches, stored.last_seen};
        if (fn (arg, &agent))
            break;
    }
    if (!failed && rc != 0 && rc != MDB_NOTFOUND)
        failed =
            read_failed (self, txn, rc, STORE_DB_AGENTS, key.mv_data, key.mv_size, err, err_len);
    mdb_cursor_close (cursor);
    end_read (self, txn);
    return failed;
}

int
store_agent_mark (store_t *self, const char *agent_id, uint64_t *mark, char *err, size_t err_len)
{
    size_t len = agent_id ? strlen (agent_id) : 0;
    if (len == 0 || len > MAX_KEY_BYTES)
        return fail (err, err_len, STORE_ERR, "agent id must be 1-%d bytes", MAX_KEY_BYTES);
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    MDB_val key = {len, (void *)agent_id};
    agent_value_t stored = {0, 0, 0};
    rc = get_fixed (self, txn, STORE_DB_AGENTS, &key, &stored, sizeof stored, err, err_len);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    end_read (self, txn);
    if (rc == 0)
        *mark = stored.last_batch_seq;
    return rc;
}

/* ---------------------------------------------------------------- keys from words */

/* The id of text (len bytes) of kind in txn; STORE_ERR_NOTFOUND when it is not stored. */
static int
find_id (store_t *self, MDB_txn *txn, unsigned kind, const char *text, size_t len, uint32_t *id,
         char *err, size_t err_len)
{
    store_dict_txn_t dict = dict_of (self, txn);
    store_dict_fault_t fault;
    int rc = store_dict_find (&dict, kind, text, len, id, &fault);
    if (rc == STORE_DICT_NOTFOUND)
        return fail (err, err_len, STORE_ERR_NOTFOUND, "no %s \"%.*s\" in this store",
                     store_text_kind_name (kind), (int)(len > 128 ? 128 : len), text);
    return rc ? dict_failed (self, txn, &fault, err, err_len) : 0;
}

static unsigned
kind_named (const char *name, size_t len)
{
    for (unsigned kind = STORE_TEXT_BODY; kind < STORE_TEXT_KINDS; kind++)
        if (strlen (store_text_kind_name (kind)) == len &&
            memcmp (store_text_kind_name (kind), name, len) == 0)
            return kind;
    return 0;
}

static int
key_from_words (store_t *self, MDB_txn *txn, store_db_t db, const char *text, unsigned char *out,
                size_t out_len, size_t *len, char *err, size_t err_len)
{
    size_t text_len = strlen (text);
    const char *bar = memchr (text, '|', text_len), *hash = memchr (text, '#', text_len);
    uint32_t id;
    int rc;
    switch (db) {
    case STORE_DB_RECORDS:
        /* Body ids have no '|'; a record id may. */
        if (!bar)
            break;
        if ((rc = find_id (self, txn, STORE_TEXT_BODY, text, (size_t)(bar - text), &id, err,
                           err_len)) != 0)
            return rc;
        *len = store_codec_record_key (id, bar + 1, strlen (bar + 1), out, out_len);
        return *len ? 0 : fail (err, err_len, STORE_ERR_NOTFOUND, "no record id in \"%s\"", text);
    case STORE_DB_CELLS: {
        /* Period, neighbourhood and body have no '|'; the service may: it runs to the last. */
        const char *fields[4], *last = strrchr (text, '|');
        fields[0] = text;
        for (int i = 1; i < 4 && fields[i - 1]; i++) {
            const char *next = strchr (fields[i - 1], '|');
            fields[i] = next ? next + 1 : NULL;
        }
        if (!fields[3] || !last || last < fields[3] || strlen (last + 1) != 1 ||
            (last[1] != 'Y' && last[1] != 'N') || out_len < STORE_CODEC_CELL_KEY_LEN)
            break;
        char period[PERIOD_LEN] = "";
        size_t period_len = (size_t)(fields[1] - 1 - fields[0]);
        if (period_len < sizeof period)
            memcpy (period, text, period_len), period[period_len] = '\0';
        int month = store_codec_month (period);
        if (month < 0)
            break;
        store_codec_cell_t cell = {.month = (uint32_t)month, .poolable = last[1] == 'Y'};
        const unsigned kinds[3] = {STORE_TEXT_NEIGHBOURHOOD, STORE_TEXT_BODY, STORE_TEXT_SERVICE};
        uint32_t *ids[3] = {&cell.neighbourhood, &cell.body, &cell.service};
        const char *ends[3] = {fields[2] - 1, fields[3] - 1, last};
        for (int i = 0; i < 3; i++)
            if ((rc = find_id (self, txn, kinds[i], fields[i + 1],
                               (size_t)(ends[i] - fields[i + 1]), ids[i], err, err_len)) != 0)
                return rc;
        store_codec_cell_key (&cell, out);
        *len = STORE_CODEC_CELL_KEY_LEN;
        return 0;
    }
    case STORE_DB_NEIGHBOURHOODS:
        if (out_len < STORE_CODEC_ID_LEN)
            break;
        if ((rc = find_id (self, txn, STORE_TEXT_NEIGHBOURHOOD, text, text_len, &id, err,
                           err_len)) != 0)
            return rc;
        store_codec_id (id, out);
        *len = STORE_CODEC_ID_LEN;
        return 0;
    case STORE_DB_TEXTS:
    case STORE_DB_TEXT_IDS: {
        unsigned kind = hash ? kind_named (text, (size_t)(hash - text)) : 0;
        char *end;
        if (!kind || out_len < STORE_CODEC_TEXT_ID_KEY_LEN)
            break;
        if (db == STORE_DB_TEXTS) {
            unsigned long number = strtoul (hash + 1, &end, 10);
            if (*end || number == 0 || number > STORE_TEXT_MAX_ID)
                break;
            store_codec_text_key (kind, (uint32_t)number, out);
            *len = STORE_CODEC_TEXT_KEY_LEN;
            return 0;
        }
        unsigned long long hash_value = strtoull (hash + 1, &end, 16);
        if (*end != '.')
            break;
        unsigned long probe = strtoul (end + 1, &end, 10);
        if (*end || probe >= STORE_CODEC_MAX_PROBES)
            break;
        store_codec_text_id_key (kind, hash_value, (unsigned)probe, out);
        *len = STORE_CODEC_TEXT_ID_KEY_LEN;
        return 0;
    }
    case STORE_DB_AGENTS:
    case STORE_DB_META:
    case STORE_DB_COUNT:
        if (text_len == 0 || text_len > out_len)
            break;
        memcpy (out, text, text_len);
        *len = text_len;
        return 0;
    }
    return fail (err, err_len, STORE_ERR_NOTFOUND, "\"%s\" is not a key of database \"%s\"", text,
                 store_db_name (db));
}

int
store_key_from_text (store_t *self, store_db_t db, const char *text, unsigned char *out,
                     size_t out_len, size_t *len, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = begin_read (self, &txn, err, err_len);
    if (rc)
        return rc;
    rc = key_from_words (self, txn, db, text, out, out_len, len, err, err_len);
    end_read (self, txn);
    return rc;
}

/* ---------------------------------------------------------------- snapshots */

struct _store_snapshot_t {
    store_t *store;
    MDB_txn *txn;
};

store_snapshot_t *
store_snapshot_new (store_t *store, char *err, size_t err_len)
{
    store_snapshot_t *self = calloc (1, sizeof *self);
    if (!self) {
        fail (err, err_len, STORE_ERR, "out of memory");
        return NULL;
    }
    self->store = store;
    if (begin_read (store, &self->txn, err, err_len)) {
        free (self);
        return NULL;
    }
    return self;
}

void
store_snapshot_destroy (store_snapshot_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    end_read ((*self_p)->store, (*self_p)->txn);
    free (*self_p);
    *self_p = NULL;
}

uint64_t
store_snapshot_commit (store_snapshot_t *self)
{
    return (uint64_t)mdb_txn_id (self->txn);
}

uint64_t
store_snapshot_entries (store_snapshot_t *self, store_db_t db)
{
    MDB_stat stat;
    if (mdb_stat (self->txn, dbi_of (self->store, db), &stat))
        return 0;
    return stat.ms_entries;
}

int
store_snapshot_text (store_snapshot_t *self, unsigned kind, uint32_t id, const char **text,
                     size_t *len, char *err, size_t err_len)
{
    store_dict_txn_t dict = dict_of (self->store, self->txn);
    store_dict_fault_t fault;
    int rc = store_dict_text (&dict, kind, id, text, len, &fault);
    if (rc == STORE_DICT_NOTFOUND)
        return fail (err, err_len, STORE_ERR_NOTFOUND, "no %s id %u", store_text_kind_name (kind),
                     (unsigned)id);
    if (rc)
        return dict_failed (self->store, self->txn, &fault, err, err_len);
    return 0;
}

int
store_snapshot_record (store_snapshot_t *self, const store_entry_t *entry,
                       Totalplace__SpendingRecord **record, char *err, size_t err_len)
{
    if (entry->db != STORE_DB_RECORDS || entry->damage)
        return fail (err, err_len, STORE_ERR, "not a sound record");
    return decode_record (self->store, self->txn, entry->key, entry->key_len, &entry->record,
                          record, err, err_len);
}

const char *
store_snapshot_key_text (store_snapshot_t *self, store_db_t db, const void *key, size_t key_len,
                         char *out, size_t out_len)
{
    return describe_key (self->store, self->txn, db, key, key_len, out, out_len);
}

uint64_t
store_snapshot_text_hash (store_snapshot_t *self, const char *text, size_t len)
{
    return store_codec_text_hash (self->store->hash_key, text, len);
}

/* Decodes one value whose checksum is sound into entry, or says in what why it is damaged. */
static void
decode_entry (store_entry_t *entry, const MDB_val *payload, char *what, size_t what_len)
{
    const char *bytes = payload->mv_data;
    switch (entry->db) {
    case STORE_DB_RECORDS:
        if (store_codec_record_key_split (entry->key, entry->key_len, &entry->body,
                                          &entry->record_id, &entry->record_id_len))
            snprintf (what, what_len, "has a key that is not a record's");
        else if (store_codec_record_decode (bytes, payload->mv_size, &entry->record))
            snprintf (what, what_len, "does not decode as a record");
        return;
    case STORE_DB_CELLS:
    case STORE_DB_NEIGHBOURHOODS:
        if (entry->db == STORE_DB_CELLS
                ? store_codec_cell_key_split (entry->key, entry->key_len, &entry->cell) != 0
                : store_codec_id_decode (entry->key, entry->key_len, &entry->neighbourhood) != 0)
            snprintf (what, what_len, "has a key that is not a %s's",
                      entry->db == STORE_DB_CELLS ? "cell" : "neighbourhood");
        else if (store_codec_amount_decode (bytes, payload->mv_size, &entry->amount.amount_pence,
                                            &entry->amount.records))
            snprintf (what, what_len, "does not decode as a total");
        return;
    case STORE_DB_TEXTS:
        if (store_codec_text_key_split (entry->key, entry->key_len, &entry->kind, &entry->id))
            snprintf (what, what_len, "has a key that is not a text's");
        else if (payload->mv_size < 2 || bytes[payload->mv_size - 1] != '\0' ||
                 memchr (bytes, '\0', payload->mv_size - 1))
            snprintf (what, what_len, "is not one text");
        else {
            entry->text = bytes;
            entry->text_len = payload->mv_size - 1;
        }
        return;
    case STORE_DB_TEXT_IDS:
        if (store_codec_text_id_key_split (entry->key, entry->key_len, &entry->kind, &entry->hash,
                                           &entry->probe))
            snprintf (what, what_len, "has a key that is not a text id's");
        else if (store_codec_id_decode (bytes, payload->mv_size, &entry->id))
            snprintf (what, what_len, "is not an id");
        return;
    case STORE_DB_AGENTS: {
        agent_value_t agent;
        if (payload->mv_size != sizeof agent) {
            snprintf (what, what_len, "has %zu bytes, not %zu",
                      payload->mv_size + STORE_CHECKSUM_BYTES, AGENT_VALUE_BYTES);
            return;
        }
        memcpy (&agent, payload->mv_data, sizeof agent);
        entry->agent.last_batch_seq = agent.last_batch_seq;
        entry->agent.batches = agent.batches;
        entry->agent.last_seen = agent.last_seen;
        return;
    }
    case STORE_DB_META:
    case STORE_DB_COUNT:
        break;
    }
    entry->is_counters = entry->key_len == sizeof COUNTERS_KEY - 1 &&
                         memcmp (entry->key, COUNTERS_KEY, entry->key_len) == 0;
    if (!entry->is_counters) {
        entry->text = payload->mv_data;
        entry->text_len = payload->mv_size;
        return;
    }
    counters_value_t counters;
    if (payload->mv_size != sizeof counters) {
        snprintf (what, what_len, "has %zu bytes, not %zu", payload->mv_size + STORE_CHECKSUM_BYTES,
                  COUNTERS_VALUE_BYTES);
        return;
    }
    memcpy (&counters, payload->mv_data, sizeof counters);
    entry->counters = (store_counters_t){.batches = counters.batches,
                                         .accepted = counters.accepted,
                                         .duplicate = counters.duplicate,
                                         .superseded = counters.superseded,
                                         .stale = counters.stale,
                                         .rejected = counters.rejected};
}

int
store_snapshot_scan (store_snapshot_t *self, store_db_t db, store_entry_fn *fn, void *arg,
                     char *err, size_t err_len)
{
    store_t *store = self->store;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (self->txn, dbi_of (store, db), &cursor);
    if (rc)
        return fail (err, err_len, STORE_ERR, "cannot open cursor: %s", mdb_strerror (rc));
    /* The agent id handed to fn: the key as text. */
    char agent_id[MAX_KEY_BYTES + 1];
    MDB_val key = {0, NULL}, value;
    int stopped = 0;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0 && !stopped;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        store_entry_t entry = {.db = db, .key = key.mv_data, .key_len = key.mv_size};
        char what[96] = "";
        MDB_val payload;
        if (check_value (db, &key, &value, 0, NULL, &payload, what, sizeof what) == 0)
            decode_entry (&entry, &payload, what, sizeof what);
        if (*what) {
            char key_text[160], finding[sizeof store->finding];
            snprintf (finding, sizeof finding, "the value of key \"%s\" in database \"%s\" %s",
                      describe_key (store, self->txn, db, key.mv_data, key.mv_size, key_text,
                                    sizeof key_text),
                      store_db_name (db), what);
            note_damage (store, finding);
            entry = (store_entry_t){.db = db, .key = key.mv_data, .key_len = key.mv_size};
            entry.damage = what;
        }
        else if (db == STORE_DB_AGENTS) {
            size_t len = key.mv_size < sizeof agent_id ? key.mv_size : sizeof agent_id - 1;
            memcpy (agent_id, key.mv_data, len);
            agent_id[len] = '\0';
            entry.agent.agent_id = agent_id;
        }
        stopped = fn (arg, &entry);
    }
    if (!stopped && rc != MDB_NOTFOUND)
        stopped = read_failed (store, self->txn, rc, db, key.mv_data, key.mv_size, err, err_len);
    mdb_cursor_close (cursor);
    return stopped;
}

/* ---------------------------------------------------------------- copies */

int
store_copy (store_t *self, const char *folder, char *err, size_t err_len)
{
    char data_path[PATH_MAX];
    if ((size_t)snprintf (data_path, sizeof data_path, "%s/data.mdb", folder) >= sizeof data_path)
        return fail (err, err_len, STORE_ERR, "backup path %.64s... is too long", folder);
    if (access (data_path, F_OK) == 0)
        return fail (err, err_len, STORE_ERR,
                     "%s already holds a data.mdb; copy into an empty folder", folder);
    /* Take the resize lock as a reader does: LMDB's copy runs a read transaction of its own. */
    pthread_rwlock_rdlock (&self->resize_lock);
    int rc = mdb_env_copy2 (self->env, folder, MDB_CP_COMPACT);
    pthread_rwlock_unlock (&self->resize_lock);
    if (rc == 0)
        return 0;
    if (disk_full (rc, folder))
        return fail (err, err_len, STORE_ERR_NOSPACE,
                     "disk full: the filesystem of %s has %lld bytes free; the copy of the store "
                     "was not finished",
                     folder, free_bytes (folder));
    if (tree_damage (rc))
        return damaged (self, NULL, STORE_DB_COUNT, NULL, 0, err, err_len,
                        "cannot be copied: LMDB reports a tree corrupt (%s)", mdb_strerror (rc));
    return fail (err, err_len, STORE_ERR, "cannot copy the store in %s to %s: %s", self->path,
                 folder, mdb_strerror (rc));
}
