/* wire: encode, decode and validate totalplace messages, with the limits every component shares. */
#ifndef TOTALPLACE_WIRE_H
#define TOTALPLACE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spending.pb-c.h"

/* Limits. Every socket refuses messages over WIRE_MAX_MESSAGE_BYTES; a batch never holds more than
 * WIRE_MAX_RECORDS_PER_BATCH records. Field bounds are in bytes of UTF-8. */
#define WIRE_MAX_MESSAGE_BYTES (8u * 1024u * 1024u)
#define WIRE_MAX_RECORDS_PER_BATCH 5000u
#define WIRE_MAX_AGENT_ID 64u
#define WIRE_MAX_BODY_ID 64u
#define WIRE_MAX_RECORD_ID 128u
#define WIRE_MAX_NEIGHBOURHOOD 32u
#define WIRE_MAX_SERVICE 128u
#define WIRE_MAX_SUPPLIER 256u
#define WIRE_MAX_DESCRIPTION 1024u
/* No single payment is larger than ten trillion pounds; anything beyond is a broken export. */
#define WIRE_MAX_ABS_AMOUNT_PENCE INT64_C (1000000000000000)

/* Room for any reason text produced here: a field name of up to WIRE_MAX_FIELD_NAME bytes, the
 * value quoted by quoted_text (QUOTED_TEXT_LEN), the wording and its numbers
 * (tests/unit/test_wire.c builds the longest reasons and checks that none is cut). */
#define WIRE_MAX_FIELD_NAME 32u
#define WIRE_REASON_LEN 160

/* What wire_utf8_char found at the start of some bytes. */
typedef enum {
    WIRE_UTF8_VALID,     /* a whole character (Unicode Table 3-7: no overlong form, no surrogate,
                          * nothing above U+10FFFF) of *len bytes, 1 to 4 */
    WIRE_UTF8_INVALID,   /* *len bytes (1 to 3) that start no character: the "maximal subpart"
                          * that Unicode (chapter 3, "U+FFFD Substitution of Maximal Subparts") and
                          * the WHATWG decoder replace with one U+FFFD. The next character is
                          * looked for right after them. */
    WIRE_UTF8_TRUNCATED, /* all `left` bytes (1 to 3) begin a character that needs more bytes
                          * than there are: invalid at the end of a text, or to be completed by
                          * the next chunk of a stream */
} wire_utf8_t;

/* Reads the UTF-8 character at the start of bytes, of which left (>= 1) are available, and sets
 * *len to the bytes it covers. The one definition of valid UTF-8 that record checks, reason
 * quotations and the agent's encoding conversion share. */
wire_utf8_t wire_utf8_char (const void *bytes, size_t left, size_t *len);

/* Checks one record: required fields present, identifiers made of [A-Za-z0-9._-], free text valid
 * UTF-8 without control characters, every length within its bound, period "YYYY-MM", revision >= 1
 * and |amount| within WIRE_MAX_ABS_AMOUNT_PENCE. Returns 0, or -1 with a reason naming the field. */
int wire_validate_record (const Totalplace__SpendingRecord *record, char *reason, size_t reason_len);

/* Checks a batch's own fields (agent id, record count), and that no message in it holds a field
 * numbered 0 (protobuf-c unpacks one, but packs it into bytes it cannot unpack: a record stored
 * with one could never be read back). Records are checked one by one by the store so that one
 * bad record does not sink the rest. Returns 0 or -1 with a reason. */
int wire_validate_batch (const Totalplace__Batch *batch, char *reason, size_t reason_len);

/* Checks one identifier field (body_id, neighbourhood, agent_id) as records are checked: 1 to max
 * bytes of A-Z a-z 0-9 . _ -. Returns 0, or -1 with a reason naming field (at most
 * WIRE_MAX_FIELD_NAME bytes) and quoting the value with quoted_text: `FIELD is missing`,
 * `FIELD "VALUE" is N bytes, longer than the limit of MAX`, `FIELD "E01 007" has character 0x20
 * at byte 4; only A-Z a-z 0-9 . _ - are allowed` (bytes count from 1). */
int wire_check_identifier (const char *field, const char *value, size_t max, char *reason,
                           size_t reason_len);

/* Checks one free-text field as records are checked: at most max bytes of valid UTF-8 without
 * control characters; empty is an error only when required. Returns 0, or -1 with a reason
 * naming field and quoting the value, as wire_check_identifier does: `supplier "FARRAH\xB4S" is
 * not valid UTF-8 at byte 7`, `description "a\x09b" has control character 0x09 at byte 2`. */
int wire_check_text (const char *field, const char *value, size_t max, bool required, char *reason,
                     size_t reason_len);

/* Packs any message into a new malloc'd buffer. Returns 0, or -1 when it would exceed
 * WIRE_MAX_MESSAGE_BYTES or memory runs out. The caller frees *data. */
int wire_encode (const ProtobufCMessage *message, uint8_t **data, size_t *size, char *err,
                 size_t err_len);

/* Unpacks bytes from the network. Returns NULL with a reason when the size is over the limit or the
 * bytes are not a valid message of that type (a field numbered 0 included, which protobuf-c
 * alone would accept). Free with protobuf_c_message_free_unpacked. */
ProtobufCMessage *wire_decode (const ProtobufCMessageDescriptor *descriptor, const void *data,
                               size_t size, char *err, size_t err_len);

/* True when two records carry the same content (every field equal). */
int wire_records_equal (const Totalplace__SpendingRecord *a, const Totalplace__SpendingRecord *b);

#endif
