/* store_codec: keys and values of store format 2 (varints, big-endian ids, month numbers). */
#include "store_codec.h"

#include <sodium.h>
#include <string.h>

#include "period.h"
#include "wire.h"

static const char *const KIND_NAMES[STORE_TEXT_KINDS] = {
    [STORE_TEXT_BODY] = "body",
    [STORE_TEXT_NEIGHBOURHOOD] = "neighbourhood",
    [STORE_TEXT_SERVICE] = "service",
    [STORE_TEXT_SUPPLIER] = "supplier",
    [STORE_TEXT_DESCRIPTION] = "description",
};

const char *
store_text_kind_name (unsigned kind)
{
    return kind >= STORE_TEXT_BODY && kind < STORE_TEXT_KINDS ? KIND_NAMES[kind] : "?";
}

int
store_codec_month (const char *period)
{
    int year, month;
    if (!period || period_parse (period, &year, &month))
        return -1;
    return (year - PERIOD_MIN_YEAR) * 12 + month - 1;
}

const char *
store_codec_period (unsigned month, char *out)
{
    unsigned year = PERIOD_MIN_YEAR + month % STORE_MONTHS / 12, number = month % 12 + 1;
    out[0] = (char)('0' + year / 1000);
    out[1] = (char)('0' + year / 100 % 10);
    out[2] = (char)('0' + year / 10 % 10);
    out[3] = (char)('0' + year % 10);
    out[4] = '-';
    out[5] = (char)('0' + number / 10);
    out[6] = (char)('0' + number % 10);
    out[7] = '\0';
    return out;
}

/* ---------------------------------------------------------------- varints */

static size_t
put_varint (uint64_t value, unsigned char *out)
{
    size_t n = 0;
    while (value >= 0x80) {
        out[n++] = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    out[n++] = (unsigned char)value;
    return n;
}

/* Reads a varint of at most 10 bytes in its shortest form; -1 when cut short, too long or not
 * shortest (a value has one encoding only, so equal values are equal bytes). */
static int
get_varint (const unsigned char **p, const unsigned char *end, uint64_t *value)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char byte = *(*p)++;
        if (shift == 63 && byte > 1)
            return -1;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            if (byte == 0 && shift > 0)
                return -1; /* a trailing zero group: not the shortest form */
            *value = v;
            return 0;
        }
    }
    return -1;
}

static int
get_varint32 (const unsigned char **p, const unsigned char *end, uint32_t *value)
{
    uint64_t v;
    if (get_varint (p, end, &v) || v > UINT32_MAX)
        return -1;
    *value = (uint32_t)v;
    return 0;
}

static uint64_t
zigzag (int64_t value)
{
    return ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
}

static int64_t
unzigzag (uint64_t value)
{
    return (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
}

static void
put_be32 (uint32_t value, unsigned char *out)
{
    out[0] = (unsigned char)(value >> 24);
    out[1] = (unsigned char)(value >> 16);
    out[2] = (unsigned char)(value >> 8);
    out[3] = (unsigned char)value;
}

static uint32_t
get_be32 (const unsigned char *in)
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

/* ---------------------------------------------------------------- records */

enum {
    FLAG_POOLABLE = 1,
    FLAG_WITHDRAWN = 2,
    FLAG_SUPPLIER = 4,
    FLAG_DESCRIPTION = 8,
    FLAGS_KNOWN = 15,
};

size_t
store_codec_record_encode (const store_codec_record_t *record, unsigned char *out)
{
    unsigned flags =
        (record->poolable ? FLAG_POOLABLE : 0) | (record->withdrawn ? FLAG_WITHDRAWN : 0) |
        (record->supplier ? FLAG_SUPPLIER : 0) | (record->description ? FLAG_DESCRIPTION : 0);
    size_t n = 0;
    out[n++] = (unsigned char)flags;
    n += put_varint (record->revision, out + n);
    n += put_varint (record->month, out + n);
    n += put_varint (record->neighbourhood, out + n);
    n += put_varint (record->service, out + n);
    n += put_varint (zigzag (record->amount_pence), out + n);
    if (record->supplier)
        n += put_varint (record->supplier, out + n);
    if (record->description)
        n += put_varint (record->description, out + n);
    return n;
}

int
store_codec_record_decode (const void *value, size_t len, store_codec_record_t *record)
{
    const unsigned char *p = value, *end = p + len;
    if (len < 1 || (p[0] & ~FLAGS_KNOWN))
        return -1;
    unsigned flags = *p++;
    store_codec_record_t r = {.poolable = flags & FLAG_POOLABLE,
                              .withdrawn = (flags & FLAG_WITHDRAWN) != 0};
    uint64_t amount;
    if (get_varint32 (&p, end, &r.revision) || get_varint32 (&p, end, &r.month) ||
        get_varint32 (&p, end, &r.neighbourhood) || get_varint32 (&p, end, &r.service) ||
        get_varint (&p, end, &amount))
        return -1;
    if ((flags & FLAG_SUPPLIER) && (get_varint32 (&p, end, &r.supplier) || r.supplier == 0))
        return -1;
    if ((flags & FLAG_DESCRIPTION) &&
        (get_varint32 (&p, end, &r.description) || r.description == 0))
        return -1;
    r.amount_pence = unzigzag (amount);
    if (p != end || r.revision == 0 || r.month >= STORE_MONTHS || r.neighbourhood == 0 ||
        r.service == 0 || r.amount_pence > WIRE_MAX_ABS_AMOUNT_PENCE ||
        r.amount_pence < -WIRE_MAX_ABS_AMOUNT_PENCE)
        return -1;
    *record = r;
    return 0;
}

size_t
store_codec_record_key (uint32_t body, const char *record_id, size_t record_id_len,
                        unsigned char *out, size_t out_len)
{
    if (record_id_len == 0 || 4 + record_id_len > out_len)
        return 0;
    put_be32 (body, out);
    memcpy (out + 4, record_id, record_id_len);
    return 4 + record_id_len;
}

int
store_codec_record_key_split (const void *key, size_t len, uint32_t *body, const char **record_id,
                              size_t *record_id_len)
{
    if (len < 5)
        return -1;
    *body = get_be32 (key);
    *record_id = (const char *)key + 4;
    *record_id_len = len - 4;
    return 0;
}

/* ---------------------------------------------------------------- totals */

void
store_codec_cell_key (const store_codec_cell_t *cell, unsigned char *out)
{
    out[0] = (unsigned char)(cell->month >> 8);
    out[1] = (unsigned char)cell->month;
    put_be32 (cell->neighbourhood, out + 2);
    put_be32 (cell->body, out + 6);
    put_be32 (cell->service, out + 10);
    out[14] = cell->poolable ? 'Y' : 'N';
}

int
store_codec_cell_key_split (const void *key, size_t len, store_codec_cell_t *cell)
{
    const unsigned char *k = key;
    if (len != STORE_CODEC_CELL_KEY_LEN || (k[14] != 'Y' && k[14] != 'N'))
        return -1;
    cell->month = (uint32_t)k[0] << 8 | k[1];
    cell->neighbourhood = get_be32 (k + 2);
    cell->body = get_be32 (k + 6);
    cell->service = get_be32 (k + 10);
    cell->poolable = k[14] == 'Y';
    return cell->month < STORE_MONTHS && cell->neighbourhood && cell->body && cell->service ? 0
                                                                                            : -1;
}

void
store_codec_id (uint32_t id, unsigned char *out)
{
    put_be32 (id, out);
}

int
store_codec_id_decode (const void *bytes, size_t len, uint32_t *id)
{
    if (len != STORE_CODEC_ID_LEN)
        return -1;
    *id = get_be32 (bytes);
    return *id ? 0 : -1;
}

size_t
store_codec_amount_encode (int64_t amount_pence, int64_t records, unsigned char *out)
{
    size_t n = put_varint (zigzag (amount_pence), out);
    return n + put_varint ((uint64_t)records, out + n);
}

int
store_codec_amount_decode (const void *value, size_t len, int64_t *amount_pence, int64_t *records)
{
    const unsigned char *p = value, *end = p + len;
    uint64_t amount, count;
    if (get_varint (&p, end, &amount) || get_varint (&p, end, &count) || p != end || count == 0 ||
        count > INT64_MAX)
        return -1;
    *amount_pence = unzigzag (amount);
    *records = (int64_t)count;
    return 0;
}

/* ---------------------------------------------------------------- dictionaries */

void
store_codec_text_key (unsigned kind, uint32_t id, unsigned char *out)
{
    out[0] = (unsigned char)kind;
    put_be32 (id, out + 1);
}

int
store_codec_text_key_split (const void *key, size_t len, unsigned *kind, uint32_t *id)
{
    const unsigned char *k = key;
    if (len != STORE_CODEC_TEXT_KEY_LEN || k[0] < STORE_TEXT_BODY || k[0] >= STORE_TEXT_KINDS)
        return -1;
    *kind = k[0];
    *id = get_be32 (k + 1);
    return *id ? 0 : -1;
}

void
store_codec_text_id_key (unsigned kind, uint64_t hash, unsigned probe, unsigned char *out)
{
    out[0] = (unsigned char)kind;
    put_be32 ((uint32_t)(hash >> 32), out + 1);
    put_be32 ((uint32_t)hash, out + 5);
    out[9] = (unsigned char)probe;
}

int
store_codec_text_id_key_split (const void *key, size_t len, unsigned *kind, uint64_t *hash,
                               unsigned *probe)
{
    const unsigned char *k = key;
    if (len != STORE_CODEC_TEXT_ID_KEY_LEN || k[0] < STORE_TEXT_BODY || k[0] >= STORE_TEXT_KINDS)
        return -1;
    *kind = k[0];
    *hash = (uint64_t)get_be32 (k + 1) << 32 | get_be32 (k + 5);
    *probe = k[9];
    return 0;
}

uint64_t
store_codec_text_hash (const unsigned char key[16], const void *text, size_t len)
{
    unsigned char out[crypto_shorthash_siphash24_BYTES];
    crypto_shorthash_siphash24 (out, text, len, key);
    uint64_t hash = 0;
    for (int i = 7; i >= 0; i--)
        hash = hash << 8 | out[i];
    return hash;
}
