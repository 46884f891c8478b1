/* store_verify: one snapshot; the dictionaries, then records, cells, neighbourhoods, agents and
 * meta; totals recomputed in memory by the hash of their key. */
#include "store_verify.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire.h"

static const char *const KIND_NAMES[] = {
    [STORE_VERIFY_DAMAGED] = "damaged",     [STORE_VERIFY_UNREADABLE] = "unreadable",
    [STORE_VERIFY_INVALID] = "invalid",     [STORE_VERIFY_MISSING] = "missing",
    [STORE_VERIFY_EXTRA] = "extra",         [STORE_VERIFY_DIFFERENT] = "different",
    [STORE_VERIFY_INVARIANT] = "invariant",
};

const char *
store_verify_kind_name (store_verify_kind_t kind)
{
    return (unsigned)kind < sizeof KIND_NAMES / sizeof KIND_NAMES[0] ? KIND_NAMES[kind] : "?";
}

/* ---------------------------------------------------------------- recomputed totals */

/* A total by the hash of its key; hash 0 marks a free slot (a key hashing to 0 is taken as 1). */
typedef struct {
    uint64_t hash;
    store_amount_t amount;
} slot_t;

typedef struct {
    slot_t *slots;
    uint8_t *seen;   /* a bit per slot: a stored total matched it */
    size_t capacity; /* any size: a hash maps to a slot by multiplying, not by a mask */
    size_t count;
} table_t;

/* The first slot of hash: its high bits scaled to the capacity (Lemire's multiply-shift), so the
 * table can be sized to the totals it will hold instead of the next power of two. */
static size_t
home_slot (uint64_t hash, size_t capacity)
{
    return (size_t)(((unsigned __int128)hash * capacity) >> 64);
}

static size_t
table_bytes (size_t capacity)
{
    return capacity * sizeof (slot_t) + (capacity + 7) / 8;
}

static int
table_resize (table_t *table, size_t capacity)
{
    slot_t *slots = calloc (capacity, sizeof *slots);
    uint8_t *seen = calloc ((capacity + 7) / 8, 1);
    if (!slots || !seen) {
        free (slots);
        free (seen);
        return -1;
    }
    for (size_t i = 0; i < table->capacity; i++)
        if (table->slots[i].hash) {
            size_t at = home_slot (table->slots[i].hash, capacity);
            while (slots[at].hash)
                at = at + 1 == capacity ? 0 : at + 1;
            slots[at] = table->slots[i];
        }
    free (table->slots);
    free (table->seen);
    table->slots = slots;
    table->seen = seen;
    table->capacity = capacity;
    return 0;
}

/* A table for expected totals, 80% full when they are all in. */
static int
table_init (table_t *table, uint64_t expected)
{
    *table = (table_t){0};
    return table_resize (table, (size_t)expected / 4 * 5 + 64);
}

static void
table_free (table_t *table)
{
    free (table->slots);
    free (table->seen);
    *table = (table_t){0};
}

/* The slot of hash, or of the free slot where it would go. */
static size_t
table_slot (const table_t *table, uint64_t hash)
{
    size_t at = home_slot (hash, table->capacity);
    while (table->slots[at].hash && table->slots[at].hash != hash)
        at = at + 1 == table->capacity ? 0 : at + 1;
    return at;
}

/* Adds amount to the total of hash. Returns 0, 1 when the sum would overflow (nothing added), or
 * -1 when out of memory. */
static int
table_add (table_t *table, uint64_t hash, int64_t amount)
{
    if ((table->count + 1) * 5 > table->capacity * 4 && table_resize (table, table->capacity * 2))
        return -1;
    size_t at = table_slot (table, hash);
    slot_t *slot = &table->slots[at];
    store_amount_t sum = slot->amount;
    if (__builtin_add_overflow (sum.amount_pence, amount, &sum.amount_pence) ||
        __builtin_add_overflow (sum.records, 1, &sum.records))
        return 1;
    if (!slot->hash) {
        slot->hash = hash;
        table->count++;
    }
    slot->amount = sum;
    return 0;
}

/* ---------------------------------------------------------------- the dictionaries */

/* What verify knows of each text, by kind and id: its hash (to check text_ids against) and flags.
 * Ids of a kind run 1, 2, 3, ...: the arrays hold at most as many as texts has entries. */
enum { TEXT_STORED = 1, TEXT_INDEXED = 2, TEXT_DAMAGED = 4 };
typedef struct {
    uint64_t *hashes;
    uint8_t *flags;
    size_t count; /* ids 0 .. count - 1 */
} text_table_t;

/* ---------------------------------------------------------------- the run */

typedef struct {
    store_snapshot_t *snapshot;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    table_t cells, neighbourhoods;
    text_table_t texts[STORE_TEXT_KINDS];
    uint64_t text_entries; /* entries of texts: no kind has more ids */
    bool texts_complete;   /* the whole of texts was read: an id it lacks is missing */
    store_verify_summary_t *summary;
    size_t max_findings, reported;
    store_verify_fn *fn;
    void *arg;
    bool stop; /* fn asked to stop */
    bool out_of_memory;
    bool damaged_agents; /* an agent's batches are unknown */
    bool have_counters;
    store_counters_t counters;
    uint64_t agent_batches;
    /* text_ids: the previous entry, and the ids of the current hash's probes */
    unsigned last_kind, last_probe;
    uint64_t last_hash;
    bool have_last;
    uint32_t probe_ids[STORE_CODEC_MAX_PROBES];
    /* Second pass: the hashes of missing totals to name, sorted, and whether each was named. */
    uint64_t *to_name[2];
    bool *named[2];
    size_t to_name_count[2];
} verify_t;

static uint64_t
hash_of (const verify_t *v, const void *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash (out, key, len, v->hash_key);
    uint64_t hash;
    memcpy (&hash, out, sizeof hash);
    return hash ? hash : 1;
}

static void report (verify_t *v, store_verify_kind_t kind, store_db_t db, const void *key,
                    size_t key_len, const store_amount_t *stored, const store_amount_t *recomputed,
                    const char *format, ...) __attribute__ ((format (printf, 8, 9)));

/* Counts a finding, and hands it to fn while fewer than max_findings were. */
static void
report (verify_t *v, store_verify_kind_t kind, store_db_t db, const void *key, size_t key_len,
        const store_amount_t *stored, const store_amount_t *recomputed, const char *format, ...)
{
    store_verify_summary_t *s = v->summary;
    uint64_t *counts[] = {
        [STORE_VERIFY_DAMAGED] = &s->damaged,     [STORE_VERIFY_UNREADABLE] = &s->unreadable,
        [STORE_VERIFY_INVALID] = &s->invalid,     [STORE_VERIFY_MISSING] = &s->missing,
        [STORE_VERIFY_EXTRA] = &s->extra,         [STORE_VERIFY_DIFFERENT] = &s->different,
        [STORE_VERIFY_INVARIANT] = &s->invariants};
    (*counts[kind])++;
    s->findings++;
    if (!v->fn || v->reported >= v->max_findings || v->stop)
        return;
    store_verify_finding_t finding = {.kind = kind, .db = db};
    if (key)
        store_snapshot_key_text (v->snapshot, db, key, key_len, finding.key, sizeof finding.key);
    va_list args;
    va_start (args, format);
    vsnprintf (finding.what, sizeof finding.what, format, args);
    va_end (args);
    if (stored) {
        finding.has_stored = true;
        finding.stored = *stored;
    }
    if (recomputed) {
        finding.has_recomputed = true;
        finding.recomputed = *recomputed;
    }
    v->reported++;
    if (v->fn (v->arg, &finding))
        v->stop = true;
}

static int
scan_result (const verify_t *v)
{
    return v->stop || v->out_of_memory;
}

/* The flags of id of kind; 0 when it is beyond the table (never stored). */
static uint8_t
text_flags (const verify_t *v, unsigned kind, uint32_t id)
{
    const text_table_t *t = &v->texts[kind];
    return kind < STORE_TEXT_KINDS && id < t->count ? t->flags[id] : 0;
}

/* Makes room for id in kind's table (ids never exceed the entries of texts). */
static int
text_room (verify_t *v, unsigned kind, uint32_t id)
{
    text_table_t *t = &v->texts[kind];
    if (id < t->count)
        return 0;
    size_t count = t->count ? t->count : 64;
    while (count <= id)
        count *= 2;
    if (count > v->text_entries + 1)
        count = (size_t)v->text_entries + 1;
    uint64_t *hashes = realloc (t->hashes, count * sizeof *hashes);
    if (hashes)
        t->hashes = hashes;
    uint8_t *flags = hashes ? realloc (t->flags, count) : NULL;
    if (!hashes || !flags)
        return -1;
    memset (flags + t->count, 0, count - t->count);
    t->flags = flags;
    t->count = count;
    return 0;
}

/* Whether a text meets its kind's rule, as records' fields are checked (wire.h). */
static int
text_valid (unsigned kind, const char *text, char *reason, size_t reason_len)
{
    switch (kind) {
    case STORE_TEXT_BODY:
        return wire_check_identifier ("body_id", text, WIRE_MAX_BODY_ID, reason, reason_len);
    case STORE_TEXT_NEIGHBOURHOOD:
        return wire_check_identifier ("neighbourhood", text, WIRE_MAX_NEIGHBOURHOOD, reason,
                                      reason_len);
    case STORE_TEXT_SERVICE:
        return wire_check_text ("service", text, WIRE_MAX_SERVICE, true, reason, reason_len);
    case STORE_TEXT_SUPPLIER:
        return wire_check_text ("supplier", text, WIRE_MAX_SUPPLIER, true, reason, reason_len);
    case STORE_TEXT_DESCRIPTION:
        return wire_check_text ("description", text, WIRE_MAX_DESCRIPTION, true, reason,
                                reason_len);
    }
    return -1;
}

static int
on_text (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    v->summary->texts++;
    unsigned kind;
    uint32_t id;
    if (entry->damage) {
        report (v, STORE_VERIFY_DAMAGED, STORE_DB_TEXTS, entry->key, entry->key_len, NULL, NULL,
                "%s", entry->damage);
        /* A damaged text of a known id: records naming it are not told again. */
        if (store_codec_text_key_split (entry->key, entry->key_len, &kind, &id) == 0 &&
            id <= v->text_entries && text_room (v, kind, id) == 0)
            v->texts[kind].flags[id] |= TEXT_STORED | TEXT_DAMAGED;
        return scan_result (v);
    }
    kind = entry->kind;
    id = entry->id;
    char reason[WIRE_REASON_LEN];
    if (id > v->text_entries) {
        report (v, STORE_VERIFY_INVALID, STORE_DB_TEXTS, entry->key, entry->key_len, NULL, NULL,
                "an id past the %llu texts stored: ids are given in turn",
                (unsigned long long)v->text_entries);
        return scan_result (v);
    }
    if (text_room (v, kind, id)) {
        v->out_of_memory = true;
        return scan_result (v);
    }
    v->texts[kind].flags[id] |= TEXT_STORED;
    v->texts[kind].hashes[id] =
        store_snapshot_text_hash (v->snapshot, entry->text, entry->text_len);
    if (text_valid (kind, entry->text, reason, sizeof reason))
        report (v, STORE_VERIFY_INVALID, STORE_DB_TEXTS, entry->key, entry->key_len, NULL, NULL,
                "the text fails validation: %s", reason);
    return scan_result (v);
}

static int
on_text_id (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    v->summary->text_ids++;
    if (entry->damage) {
        report (v, STORE_VERIFY_DAMAGED, STORE_DB_TEXT_IDS, entry->key, entry->key_len, NULL, NULL,
                "%s", entry->damage);
        v->have_last = false;
        return scan_result (v);
    }
    unsigned kind = entry->kind;
    bool same_hash = v->have_last && v->last_kind == kind && v->last_hash == entry->hash;
    /* A lookup stops at the first probe not stored: every probe needs the one before it. */
    unsigned expected = same_hash ? v->last_probe + 1 : 0;
    v->have_last = true;
    v->last_kind = kind;
    v->last_hash = entry->hash;
    v->last_probe = entry->probe;
    if (entry->probe != expected)
        report (v, STORE_VERIFY_INVALID, STORE_DB_TEXT_IDS, entry->key, entry->key_len, NULL, NULL,
                "probe %u of its hash without probe %u before it: lookups never reach it",
                entry->probe, expected);
    v->probe_ids[entry->probe] = entry->id;
    uint8_t flags = text_flags (v, kind, entry->id);
    if (!(flags & TEXT_STORED)) {
        if (v->texts_complete)
            report (v, STORE_VERIFY_INVALID, STORE_DB_TEXT_IDS, entry->key, entry->key_len, NULL,
                    NULL, "names %s id %u, which texts does not hold", store_text_kind_name (kind),
                    (unsigned)entry->id);
        return scan_result (v);
    }
    if (flags & TEXT_INDEXED)
        report (v, STORE_VERIFY_INVALID, STORE_DB_TEXT_IDS, entry->key, entry->key_len, NULL, NULL,
                "a second entry for %s id %u", store_text_kind_name (kind), (unsigned)entry->id);
    v->texts[kind].flags[entry->id] |= TEXT_INDEXED;
    if (flags & TEXT_DAMAGED)
        return scan_result (v);
    if (v->texts[kind].hashes[entry->id] != entry->hash) {
        report (v, STORE_VERIFY_INVALID, STORE_DB_TEXT_IDS, entry->key, entry->key_len, NULL, NULL,
                "names %s id %u, whose text has another hash", store_text_kind_name (kind),
                (unsigned)entry->id);
        return scan_result (v);
    }
    /* Texts of one hash (rare): one text must never have two ids, or its totals would split. */
    for (unsigned p = 0; same_hash && p < entry->probe && p < STORE_CODEC_MAX_PROBES; p++) {
        const char *a, *b;
        size_t a_len, b_len;
        char why[STORE_ERR_LEN];
        if (store_snapshot_text (v->snapshot, kind, v->probe_ids[p], &a, &a_len, why, sizeof why) ||
            store_snapshot_text (v->snapshot, kind, entry->id, &b, &b_len, why, sizeof why))
            continue;
        if (a_len == b_len && memcmp (a, b, a_len) == 0)
            report (v, STORE_VERIFY_INVALID, STORE_DB_TEXT_IDS, entry->key, entry->key_len, NULL,
                    NULL, "%s id %u has the text of id %u: one text, two ids",
                    store_text_kind_name (kind), (unsigned)entry->id, (unsigned)v->probe_ids[p]);
    }
    return scan_result (v);
}

/* Texts no text_ids entry leads to: the writer would store them again under a new id. */
static void
report_unindexed (verify_t *v)
{
    for (unsigned kind = STORE_TEXT_BODY; kind < STORE_TEXT_KINDS; kind++)
        for (size_t id = 1; id < v->texts[kind].count; id++) {
            uint8_t flags = v->texts[kind].flags[id];
            if ((flags & TEXT_STORED) && !(flags & (TEXT_INDEXED | TEXT_DAMAGED))) {
                unsigned char key[STORE_CODEC_TEXT_KEY_LEN];
                store_codec_text_key (kind, (uint32_t)id, key);
                report (v, STORE_VERIFY_MISSING, STORE_DB_TEXTS, key, sizeof key, NULL, NULL,
                        "no text_ids entry leads to this text");
            }
        }
}

/* ---------------------------------------------------------------- records and totals */

/* A live record's cell and neighbourhood keys and their hashes. */
static void
record_hashes (const verify_t *v, const store_entry_t *entry,
               unsigned char cell[STORE_CODEC_CELL_KEY_LEN],
               unsigned char neighbourhood[STORE_CODEC_ID_LEN], uint64_t hashes[2])
{
    const store_codec_record_t *r = &entry->record;
    store_codec_cell_t key = {r->month, r->neighbourhood, entry->body, r->service, r->poolable};
    store_codec_cell_key (&key, cell);
    store_codec_id (r->neighbourhood, neighbourhood);
    hashes[0] = hash_of (v, cell, STORE_CODEC_CELL_KEY_LEN);
    hashes[1] = hash_of (v, neighbourhood, STORE_CODEC_ID_LEN);
}

/* True when the record's id is valid and every id it holds names a stored text: only such records
 * count in totals. */
static bool
record_sound (verify_t *v, const store_entry_t *entry, bool quiet)
{
    char reason[WIRE_REASON_LEN], record_id[WIRE_MAX_RECORD_ID + 2];
    size_t len =
        entry->record_id_len < sizeof record_id - 1 ? entry->record_id_len : sizeof record_id - 1;
    memcpy (record_id, entry->record_id, len);
    record_id[len] = '\0';
    if (entry->record_id_len != len || memchr (entry->record_id, '\0', len) ||
        wire_check_text ("record_id", record_id, WIRE_MAX_RECORD_ID, true, reason, sizeof reason)) {
        if (!quiet)
            report (v, STORE_VERIFY_INVALID, STORE_DB_RECORDS, entry->key, entry->key_len, NULL,
                    NULL, "the record id fails validation: %s",
                    entry->record_id_len != len ? "it is too long" : reason);
        return false;
    }
    const store_codec_record_t *r = &entry->record;
    const struct {
        unsigned kind;
        uint32_t id;
    } ids[] = {{STORE_TEXT_BODY, entry->body},
               {STORE_TEXT_NEIGHBOURHOOD, r->neighbourhood},
               {STORE_TEXT_SERVICE, r->service},
               {STORE_TEXT_SUPPLIER, r->supplier},
               {STORE_TEXT_DESCRIPTION, r->description}};
    bool sound = true;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (ids[i].id == 0)
            continue; /* an optional text the record has not (the decoder checked the others) */
        uint8_t flags = text_flags (v, ids[i].kind, ids[i].id);
        if (flags & TEXT_DAMAGED)
            sound = false; /* told once, as the damaged text */
        else if (!(flags & TEXT_STORED)) {
            sound = false;
            if (!quiet && v->texts_complete)
                report (v, STORE_VERIFY_INVALID, STORE_DB_RECORDS, entry->key, entry->key_len, NULL,
                        NULL, "names %s id %u, which texts does not hold",
                        store_text_kind_name (ids[i].kind), (unsigned)ids[i].id);
        }
    }
    return sound;
}

static int
on_record (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    v->summary->records++;
    if (entry->damage) {
        report (v, STORE_VERIFY_DAMAGED, STORE_DB_RECORDS, entry->key, entry->key_len, NULL, NULL,
                "%s", entry->damage);
        return scan_result (v);
    }
    if (!record_sound (v, entry, false))
        return scan_result (v);
    if (entry->record.withdrawn) {
        v->summary->withdrawn_records++;
        return scan_result (v);
    }
    v->summary->live_records++;
    unsigned char cell[STORE_CODEC_CELL_KEY_LEN], neighbourhood[STORE_CODEC_ID_LEN];
    uint64_t hashes[2];
    record_hashes (v, entry, cell, neighbourhood, hashes);
    table_t *tables[2] = {&v->cells, &v->neighbourhoods};
    for (int t = 0; t < 2; t++) {
        int rc = table_add (tables[t], hashes[t], entry->record.amount_pence);
        if (rc < 0)
            v->out_of_memory = true;
        else if (rc > 0)
            report (v, STORE_VERIFY_INVARIANT, t ? STORE_DB_NEIGHBOURHOODS : STORE_DB_CELLS,
                    t ? neighbourhood : cell, t ? sizeof neighbourhood : sizeof cell, NULL, NULL,
                    "the live records of this total overflow int64 pence");
    }
    return scan_result (v);
}

static void
set_seen (table_t *table, size_t at)
{
    table->seen[at / 8] |= (uint8_t)(1u << (at % 8));
}

static bool
was_seen (const table_t *table, size_t at)
{
    return table->seen[at / 8] & (1u << (at % 8));
}

static int
on_total (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    bool cell = entry->db == STORE_DB_CELLS;
    table_t *table = cell ? &v->cells : &v->neighbourhoods;
    (*(cell ? &v->summary->cells : &v->summary->neighbourhoods))++;
    size_t at = table_slot (table, hash_of (v, entry->key, entry->key_len));
    bool found = table->slots[at].hash != 0;
    if (found)
        set_seen (table, at); /* told once: as damaged, extra or different, never also missing */
    const store_amount_t *recomputed = found ? &table->slots[at].amount : NULL;
    if (entry->damage)
        report (v, STORE_VERIFY_DAMAGED, entry->db, entry->key, entry->key_len, NULL, recomputed,
                "%s", entry->damage);
    else if (!found)
        report (v, STORE_VERIFY_EXTRA, entry->db, entry->key, entry->key_len, &entry->amount, NULL,
                "stored, but no live record makes this total");
    else if (recomputed->amount_pence != entry->amount.amount_pence ||
             recomputed->records != entry->amount.records)
        report (v, STORE_VERIFY_DIFFERENT, entry->db, entry->key, entry->key_len, &entry->amount,
                recomputed, "the stored total is not the live records' total");
    return scan_result (v);
}

static int
on_agent (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    v->summary->agents++;
    if (entry->damage) {
        v->damaged_agents = true;
        report (v, STORE_VERIFY_DAMAGED, STORE_DB_AGENTS, entry->key, entry->key_len, NULL, NULL,
                "%s", entry->damage);
        return scan_result (v);
    }
    /* store_apply writes an agent only with the batch it applies. */
    if (entry->agent.batches == 0)
        report (v, STORE_VERIFY_INVARIANT, STORE_DB_AGENTS, entry->key, entry->key_len, NULL, NULL,
                "an agent with no batch applied");
    v->agent_batches += entry->agent.batches;
    return scan_result (v);
}

static int
on_meta (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    if (entry->damage)
        report (v, STORE_VERIFY_DAMAGED, STORE_DB_META, entry->key, entry->key_len, NULL, NULL,
                "%s", entry->damage);
    else if (entry->is_counters) {
        v->have_counters = true;
        v->counters = entry->counters;
    }
    else {
        static const char *const identity[] = {"format", "store_id", "created", "journal"};
        bool known = false;
        for (size_t i = 0; i < 4; i++)
            known |= entry->key_len == strlen (identity[i]) &&
                     memcmp (entry->key, identity[i], entry->key_len) == 0;
        if (!known)
            report (v, STORE_VERIFY_INVARIANT, STORE_DB_META, entry->key, entry->key_len, NULL,
                    NULL, "a key the store never writes");
    }
    return scan_result (v);
}

/* Scans db; a corrupt tree is a finding and the run goes on. Returns 0 (complete is false when the
 * tree could not be read to its end), or STORE_ERR. */
static int
scan (verify_t *v, store_db_t db, store_entry_fn *fn, bool *complete, char *err, size_t err_len)
{
    char why[STORE_ERR_LEN];
    int rc = store_snapshot_scan (v->snapshot, db, fn, v, why, sizeof why);
    *complete = rc == 0 && !v->stop;
    if (rc == STORE_ERR_DAMAGED) {
        report (v, STORE_VERIFY_UNREADABLE, db, NULL, 0, NULL, NULL, "%.*s",
                STORE_VERIFY_TEXT_LEN - 1, why);
        return 0;
    }
    if (rc < 0) {
        snprintf (err, err_len, "%s", why);
        return STORE_ERR;
    }
    if (v->out_of_memory) {
        snprintf (err, err_len, "out of memory recomputing the totals");
        return STORE_ERR;
    }
    return 0;
}

static int
compare_hashes (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Totals recomputed but never stored: counted, and the first ones kept to be named. */
static int
collect_missing (verify_t *v, int t, size_t limit)
{
    table_t *table = t ? &v->neighbourhoods : &v->cells;
    for (size_t at = 0; at < table->capacity; at++) {
        if (!table->slots[at].hash || was_seen (table, at))
            continue;
        if (v->to_name_count[t] < limit) {
            if (!v->to_name[t]) {
                v->to_name[t] = calloc (limit, sizeof *v->to_name[t]);
                v->named[t] = calloc (limit, sizeof *v->named[t]);
                if (!v->to_name[t] || !v->named[t])
                    return -1;
            }
            v->to_name[t][v->to_name_count[t]++] = table->slots[at].hash;
        }
        else {
            v->summary->missing++;
            v->summary->findings++;
        }
    }
    if (v->to_name_count[t])
        qsort (v->to_name[t], v->to_name_count[t], sizeof *v->to_name[t], compare_hashes);
    return 0;
}

static int
on_record_naming (void *arg, const store_entry_t *entry)
{
    verify_t *v = arg;
    if (entry->damage || entry->record.withdrawn || !record_sound (v, entry, true))
        return scan_result (v);
    unsigned char cell[STORE_CODEC_CELL_KEY_LEN], neighbourhood[STORE_CODEC_ID_LEN];
    uint64_t hashes[2];
    record_hashes (v, entry, cell, neighbourhood, hashes);
    for (int t = 0; t < 2; t++) {
        uint64_t *hit = v->to_name_count[t]
                            ? bsearch (&hashes[t], v->to_name[t], v->to_name_count[t], sizeof *hit,
                                       compare_hashes)
                            : NULL;
        if (!hit || v->named[t][hit - v->to_name[t]])
            continue;
        v->named[t][hit - v->to_name[t]] = true;
        table_t *table = t ? &v->neighbourhoods : &v->cells;
        report (v, STORE_VERIFY_MISSING, t ? STORE_DB_NEIGHBOURHOODS : STORE_DB_CELLS,
                t ? neighbourhood : cell, t ? sizeof neighbourhood : sizeof cell, NULL,
                &table->slots[table_slot (table, hashes[t])].amount,
                "the live records make this total, but it is not stored");
    }
    return scan_result (v);
}

static double
now_seconds (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
store_verify (store_t *store, size_t max_findings, store_verify_fn *fn, void *arg,
              store_verify_summary_t *summary, char *err, size_t err_len)
{
    double started = now_seconds ();
    *summary = (store_verify_summary_t){0};
    if (sodium_init () < 0) {
        snprintf (err, err_len, "cannot start libsodium");
        return STORE_ERR;
    }
    verify_t v = {.summary = summary, .max_findings = max_findings, .fn = fn, .arg = arg};
    randombytes_buf (v.hash_key, sizeof v.hash_key);
    v.snapshot = store_snapshot_new (store, err, err_len);
    if (!v.snapshot)
        return STORE_ERR;
    int rc = STORE_ERR;
    if (table_init (&v.cells, store_snapshot_entries (v.snapshot, STORE_DB_CELLS)) ||
        table_init (&v.neighbourhoods,
                    store_snapshot_entries (v.snapshot, STORE_DB_NEIGHBOURHOODS))) {
        snprintf (err, err_len, "out of memory for the recomputed totals");
        goto out;
    }
    bool records_complete, cells_complete, neighbourhoods_complete, agents_complete, meta_complete;
    bool text_ids_complete;
    /* The dictionaries first: records and totals name their texts by id. */
    v.text_entries = store_snapshot_entries (v.snapshot, STORE_DB_TEXTS);
    if (scan (&v, STORE_DB_TEXTS, on_text, &v.texts_complete, err, err_len) ||
        scan (&v, STORE_DB_TEXT_IDS, on_text_id, &text_ids_complete, err, err_len))
        goto out;
    if (v.texts_complete && text_ids_complete)
        report_unindexed (&v);
    if (scan (&v, STORE_DB_RECORDS, on_record, &records_complete, err, err_len))
        goto out;
    summary->recomputed_cells = v.cells.count;
    summary->recomputed_neighbourhoods = v.neighbourhoods.count;
    summary->memory_bytes =
        table_bytes (v.cells.capacity) + table_bytes (v.neighbourhoods.capacity);
    /* Totals are compared only with every record read: otherwise they would all seem to differ. */
    cells_complete = neighbourhoods_complete = false;
    if (records_complete &&
        (scan (&v, STORE_DB_CELLS, on_total, &cells_complete, err, err_len) ||
         scan (&v, STORE_DB_NEIGHBOURHOODS, on_total, &neighbourhoods_complete, err, err_len)))
        goto out;
    if (scan (&v, STORE_DB_AGENTS, on_agent, &agents_complete, err, err_len) ||
        scan (&v, STORE_DB_META, on_meta, &meta_complete, err, err_len))
        goto out;

    size_t limit = v.fn && !v.stop && v.reported < max_findings ? max_findings - v.reported : 0;
    bool complete[2] = {cells_complete, neighbourhoods_complete};
    for (int t = 0; t < 2; t++)
        if (complete[t] && collect_missing (&v, t, limit)) {
            snprintf (err, err_len, "out of memory naming the missing totals");
            goto out;
        }
    if (v.to_name_count[0] + v.to_name_count[1]) {
        bool named_complete;
        if (scan (&v, STORE_DB_RECORDS, on_record_naming, &named_complete, err, err_len))
            goto out;
        for (int t = 0; t < 2; t++)
            for (size_t i = 0; i < v.to_name_count[t]; i++)
                if (!v.named[t][i])
                    report (&v, STORE_VERIFY_MISSING, t ? STORE_DB_NEIGHBOURHOODS : STORE_DB_CELLS,
                            NULL, 0, NULL, NULL,
                            "a total the live records make is not stored (its key was not found "
                            "again)");
    }

    /* What store_apply writes together: a record stored is a record accepted (records are never
     * deleted; a correction replaces its key), and every batch adds one to its agent and one to
     * the counters. A store that never applied a batch has no counters: zero. */
    if (records_complete && meta_complete && summary->records != v.counters.accepted)
        report (&v, STORE_VERIFY_INVARIANT, STORE_DB_META, "counters", 8, NULL, NULL,
                "the store holds %llu records, the counters say %llu were accepted",
                (unsigned long long)summary->records, (unsigned long long)v.counters.accepted);
    if (agents_complete && meta_complete && !v.damaged_agents &&
        v.agent_batches != v.counters.batches)
        report (&v, STORE_VERIFY_INVARIANT, STORE_DB_META, "counters", 8, NULL, NULL,
                "the agents' batches add up to %llu, the counters say %llu",
                (unsigned long long)v.agent_batches, (unsigned long long)v.counters.batches);
    rc = 0;
out:
    for (int t = 0; t < 2; t++) {
        free (v.to_name[t]);
        free (v.named[t]);
    }
    if (summary->memory_bytes <
        table_bytes (v.cells.capacity) + table_bytes (v.neighbourhoods.capacity))
        summary->memory_bytes =
            table_bytes (v.cells.capacity) + table_bytes (v.neighbourhoods.capacity);
    table_free (&v.cells);
    table_free (&v.neighbourhoods);
    for (unsigned kind = 0; kind < STORE_TEXT_KINDS; kind++) {
        free (v.texts[kind].hashes);
        free (v.texts[kind].flags);
    }
    store_snapshot_destroy (&v.snapshot);
    summary->seconds = now_seconds () - started;
    return rc;
}
