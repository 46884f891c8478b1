/* wire: the one place that knows the message limits and what makes a record acceptable. */
#include "wire.h"
#include "err_text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "period.h"
#include "quoted_text.h"

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static bool
is_identifier_char (unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

wire_utf8_t
wire_utf8_char (const void *bytes, size_t left, size_t *len)
{
    const unsigned char *s = bytes;
    unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return WIRE_UTF8_VALID;
    }
    /* Table 3-7 of the Unicode standard: the lead byte fixes the length and the range of the
     * second byte, which is where overlong forms, surrogates and code points above U+10FFFF are
     * shut out; every later byte is 80..BF. */
    size_t n;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            low = 0xA0;
        else if (c == 0xED)
            high = 0x9F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            low = 0x90;
        else if (c == 0xF4)
            high = 0x8F;
    }
    else {
        *len = 1;
        return WIRE_UTF8_INVALID;
    }
    for (size_t i = 1; i < n; i++) {
        if (i == left) {
            *len = i;
            return WIRE_UTF8_TRUNCATED;
        }
        if (s[i] < low || s[i] > high) {
            *len = i;
            return WIRE_UTF8_INVALID;
        }
        low = 0x80;
        high = 0xBF;
    }
    *len = n;
    return WIRE_UTF8_VALID;
}

int
wire_check_identifier (const char *field, const char *value, size_t max, char *reason,
                       size_t reason_len)
{
    size_t len = value ? strlen (value) : 0;
    if (len == 0)
        return fail (reason, reason_len, "%s is missing", field);
    char quoted[QUOTED_TEXT_LEN];
    if (len > max)
        return fail (reason, reason_len, "%s %s is %zu bytes, longer than the limit of %zu", field,
                     quoted_text (value, quoted, sizeof quoted), len, max);
    for (size_t i = 0; i < len; i++)
        if (!is_identifier_char ((unsigned char)value[i]))
            return fail (reason, reason_len,
                         "%s %s has character 0x%02x at byte %zu; only A-Z a-z 0-9 . _ - are "
                         "allowed",
                         field, quoted_text (value, quoted, sizeof quoted), (unsigned char)value[i],
                         i + 1);
    return 0;
}

int
wire_check_text (const char *field, const char *value, size_t max, bool required, char *reason,
                 size_t reason_len)
{
    size_t len = value ? strlen (value) : 0;
    if (len == 0)
        return required ? fail (reason, reason_len, "%s is missing", field) : 0;
    char quoted[QUOTED_TEXT_LEN];
    if (len > max)
        return fail (reason, reason_len, "%s %s is %zu bytes, longer than the limit of %zu", field,
                     quoted_text (value, quoted, sizeof quoted), len, max);
    const unsigned char *s = (const unsigned char *)value;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x20 || s[i] == 0x7F)
            return fail (reason, reason_len, "%s %s has control character 0x%02x at byte %zu",
                         field, quoted_text (value, quoted, sizeof quoted), s[i], i + 1);
        size_t n;
        if (wire_utf8_char (s + i, len - i, &n) != WIRE_UTF8_VALID)
            return fail (reason, reason_len, "%s %s is not valid UTF-8 at byte %zu", field,
                         quoted_text (value, quoted, sizeof quoted), i + 1);
        i += n;
    }
    return 0;
}

int
wire_validate_record (const Totalplace__SpendingRecord *r, char *reason, size_t reason_len)
{
    if (!r)
        return fail (reason, reason_len, "record is missing");
    if (wire_check_identifier ("body_id", r->body_id, WIRE_MAX_BODY_ID, reason, reason_len) ||
        wire_check_text ("record_id", r->record_id, WIRE_MAX_RECORD_ID, true, reason, reason_len) ||
        wire_check_identifier ("neighbourhood", r->neighbourhood, WIRE_MAX_NEIGHBOURHOOD, reason,
                               reason_len) ||
        wire_check_text ("service", r->service, WIRE_MAX_SERVICE, true, reason, reason_len) ||
        wire_check_text ("supplier", r->supplier, WIRE_MAX_SUPPLIER, false, reason, reason_len) ||
        wire_check_text ("description", r->description, WIRE_MAX_DESCRIPTION, false, reason,
                         reason_len))
        return -1;
    if (r->revision < 1)
        return fail (reason, reason_len, "revision is 0; revisions start at 1");
    if (period_parse (r->period, NULL, NULL) != 0) {
        char quoted[QUOTED_TEXT_LEN];
        return fail (reason, reason_len, "period %s is not a month YYYY-MM between %d and %d",
                     quoted_text (r->period, quoted, sizeof quoted), PERIOD_MIN_YEAR,
                     PERIOD_MAX_YEAR);
    }
    if (r->amount_pence > WIRE_MAX_ABS_AMOUNT_PENCE || r->amount_pence < -WIRE_MAX_ABS_AMOUNT_PENCE)
        return fail (reason, reason_len, "amount_pence %lld is beyond the limit of +/-%lld pence",
                     (long long)r->amount_pence, (long long)WIRE_MAX_ABS_AMOUNT_PENCE);
    return 0;
}

/* protobuf-c keeps an unknown field numbered 0, which protobuf forbids, and packs it into bytes
 * that no longer unpack. Found by fuzz_batch: a record carrying one was stored and could not be
 * read back. True when message, or any message inside it, holds one. */
static bool
has_field_zero (const ProtobufCMessage *message)
{
    for (unsigned i = 0; i < message->n_unknown_fields; i++)
        if (message->unknown_fields[i].tag == 0)
            return true;
    const ProtobufCMessageDescriptor *descriptor = message->descriptor;
    const char *base = (const char *)message;
    for (unsigned f = 0; f < descriptor->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &descriptor->fields[f];
        if (field->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t count = *(const size_t *)(base + field->quantifier_offset);
            ProtobufCMessage *const *items =
                *(ProtobufCMessage *const *const *)(base + field->offset);
            for (size_t k = 0; k < count; k++)
                if (items[k] && has_field_zero (items[k]))
                    return true;
        }
        else {
            const ProtobufCMessage *inner = *(ProtobufCMessage *const *)(base + field->offset);
            if (inner && has_field_zero (inner))
                return true;
        }
    }
    return false;
}

int
wire_validate_batch (const Totalplace__Batch *batch, char *reason, size_t reason_len)
{
    if (!batch)
        return fail (reason, reason_len, "batch is missing");
    if (wire_check_identifier ("agent_id", batch->agent_id, WIRE_MAX_AGENT_ID, reason, reason_len))
        return -1;
    if (batch->n_records > WIRE_MAX_RECORDS_PER_BATCH)
        return fail (reason, reason_len, "batch has %zu records, more than the limit of %u",
                     batch->n_records, WIRE_MAX_RECORDS_PER_BATCH);
    for (size_t i = 0; i < batch->n_records; i++)
        if (!batch->records[i])
            return fail (reason, reason_len, "record %zu is missing", i);
    /* wire_decode refuses these already; a caller unpacking with its own allocator may not. */
    if (has_field_zero (&batch->base))
        return fail (reason, reason_len, "the batch holds a field numbered 0");
    return 0;
}

int
wire_encode (const ProtobufCMessage *message, uint8_t **data, size_t *size, char *err,
             size_t err_len)
{
    size_t packed_size = protobuf_c_message_get_packed_size (message);
    if (packed_size > WIRE_MAX_MESSAGE_BYTES)
        return fail (err, err_len, "%s would be %zu bytes, over the message limit of %u",
                     message->descriptor->short_name, packed_size, WIRE_MAX_MESSAGE_BYTES);
    /* malloc(0) may return NULL; an empty message is legal. */
    uint8_t *buffer = malloc (packed_size ? packed_size : 1);
    if (!buffer)
        return fail (err, err_len, "out of memory encoding %zu bytes", packed_size);
    size_t written = protobuf_c_message_pack (message, buffer);
    if (written != packed_size) {
        free (buffer);
        return fail (err, err_len, "protobuf-c packed %zu bytes, expected %zu", written,
                     packed_size);
    }
    *data = buffer;
    *size = packed_size;
    return 0;
}

ProtobufCMessage *
wire_decode (const ProtobufCMessageDescriptor *descriptor, const void *data, size_t size, char *err,
             size_t err_len)
{
    if (size > WIRE_MAX_MESSAGE_BYTES) {
        fail (err, err_len, "message of %zu bytes is over the limit of %u", size,
              WIRE_MAX_MESSAGE_BYTES);
        return NULL;
    }
    ProtobufCMessage *message =
        protobuf_c_message_unpack (descriptor, NULL, size, (const uint8_t *)data);
    if (!message)
        fail (err, err_len, "%zu bytes are not a valid %s message", size, descriptor->short_name);
    else if (has_field_zero (message)) {
        fail (err, err_len, "%zu bytes are not a valid %s message: a field is numbered 0", size,
              descriptor->short_name);
        protobuf_c_message_free_unpacked (message, NULL);
        message = NULL;
    }
    return message;
}

static bool
text_equal (const char *a, const char *b)
{
    return strcmp (a ? a : "", b ? b : "") == 0;
}

int
wire_records_equal (const Totalplace__SpendingRecord *a, const Totalplace__SpendingRecord *b)
{
    return text_equal (a->body_id, b->body_id) && text_equal (a->record_id, b->record_id) &&
           a->revision == b->revision && text_equal (a->neighbourhood, b->neighbourhood) &&
           text_equal (a->service, b->service) && text_equal (a->period, b->period) &&
           a->amount_pence == b->amount_pence && a->poolable == b->poolable &&
           text_equal (a->supplier, b->supplier) && text_equal (a->description, b->description) &&
           a->withdrawn == b->withdrawn;
}
