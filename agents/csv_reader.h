/* csv_reader: streams a public body's CSV spending export and turns each row into SpendingRecords
 * (one, or one per part when a lookup splits the row over several neighbourhoods), handing rows it
 * cannot use to the caller with their line number and the reason. */
#ifndef TOTALPLACE_CSV_READER_H
#define TOTALPLACE_CSV_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "area_lookup.h"
#include "export_summary.h"
#include "spending.pb-c.h"
#include "text_encoding.h"
#include "wire.h"

/* Limits. A cell longer than CSV_READER_MAX_FIELD bytes or a row longer than CSV_READER_MAX_ROW
 * bytes rejects its row (memory stays bounded however long they are). A header with more than
 * CSV_READER_MAX_COLUMNS columns is a file-level error. */
#define CSV_READER_MAX_FIELD   (64u * 1024u)
#define CSV_READER_MAX_ROW     (1024u * 1024u)
#define CSV_READER_MAX_COLUMNS 1024u

/* Returned by the read functions for a file-level error (cannot open or read, no header, a required
 * column missing, out of memory). Callbacks should stop reading with other values. */
#define CSV_READER_ERR -1

/* Room for any rejection reason passed to a csv_reject_fn: every value and header in a reason is
 * quoted within QUOTED_TEXT_LEN, so the longest ("no neighbourhood: ..." naming the row's cell, the
 * lookup column and value, and the postcode) stays well under it; test_csv_reader proves it. */
#define CSV_READER_REASON_LEN 512

typedef struct _csv_reader_t csv_reader_t;

/* What one read did (see export_summary.h). */
typedef export_stats_t csv_reader_stats_t;

/* What to do with a record id that a file repeats at the same revision with other content (invoice
 * lines sharing a transaction number). */
typedef enum {
    CSV_REPEATED_IDS_HOLD = 0, /* report it so that the file is held (export_summary_verdict);
                                  exact copies of a row are still one payment */
    CSV_REPEATED_IDS_LINES,    /* every row is a payment of its own: its id becomes
                                  "ID~<12 hex digits of its content>#<occurrence>" */
} csv_repeated_ids_t;

/* Receives one record built from the row starting on physical line `line` (the header is line 1);
 * the records of a row split into parts come one after the other with the same line. The receiver
 * owns the record whatever it returns, and frees it with
 * protobuf_c_message_free_unpacked (&record->base, NULL). Returning non-zero stops the read (the
 * rest of that row's records are dropped). */
typedef int (csv_record_fn) (void *arg, size_t line, Totalplace__SpendingRecord *record);

/* Receives a row that could not be used: its first physical line and a reason naming the field and
 * quoting the bad value, e.g. `amount "12,34.5": thousands separator not in groups of three`.
 * Returning non-zero stops the read. */
typedef int (csv_reject_fn) (void *arg, size_t line, const char *reason);

/* Creates a reader for one body. body_id (e.g. "GB-LAE-BNS", made of A-Z a-z 0-9 . _ -) goes into
 * every record unless the file has a non-empty "Body ID" cell. Starts with the default header names
 * (see docs/input-format.md), no default service and poolable = false. Returns NULL with err filled
 * when body_id is not a valid identifier or memory runs out. */
csv_reader_t *csv_reader_new (const char *body_id, char *err, size_t err_len);

/* Destroys a reader; sets *self_p to NULL. Safe on NULL and twice. */
void csv_reader_destroy (csv_reader_t **self_p);

/* Reads record field `field` from the columns `spec` names instead of the default header names
 * (csv_spec_parse: candidate header names tried in order, "#N" positions, and for record_id
 * columns joined with "+"). One of the candidates must then be in every file. spec NULL restores
 * the default names; "" reads the field from no column (refused for period and amount). record_id
 * mapped to "" derives every record id from the row's content (see record_ids.h and
 * docs/input-format.md). Fields: record_id, period, amount, supplier, service, description,
 * neighbourhood, poolable, revision, withdrawn, body_id, postcode. Returns 0, or -1 with err
 * filled for an unknown field, an unmappable one or a spec that does not parse. */
int csv_reader_map (csv_reader_t *self, const char *field, const char *spec, char *err,
                    size_t err_len);

/* The encoding files are read in (TEXT_ENCODING_AUTO when never set: UTF-8 when the whole file is
 * valid UTF-8, else Windows-1252; a stream must then be seekable, since it is read twice). Every
 * cell is converted to UTF-8; a byte the encoding cannot read becomes U+FFFD and the row is
 * reported as a warning (EXPORT_WARN_REPLACED_BYTES), never rejected for it. Amount cells are
 * parsed from their bytes in UTF-8 mode, so a Windows-1252 pound sign still reads as "£". */
void csv_reader_set_encoding (csv_reader_t *self, text_encoding_t encoding);

/* How ids a file repeats with other content are treated (CSV_REPEATED_IDS_HOLD when never set).
 * Has no effect on derived ids, which never repeat. */
void csv_reader_set_repeated_ids (csv_reader_t *self, csv_repeated_ids_t mode);

/* Service to use when the file has no service column or the cell is empty; NULL for none (then such
 * rows are rejected with "service is empty"). Returns 0, or -1 with err filled when the service is
 * empty, over WIRE_MAX_SERVICE bytes or memory runs out (the previous default stays). */
int csv_reader_set_default_service (csv_reader_t *self, const char *service, char *err,
                                    size_t err_len);

/* Poolable value for rows whose poolable cell is empty or absent. */
void csv_reader_set_default_poolable (csv_reader_t *self, bool poolable);

/* Most parts one row may be split into (1 to APPORTION_MAX_PARTS; 1 when never set). Above 1, a
 * correction or withdrawal of any row also withdraws every part id up to max_parts that it does not
 * use (see build_records in csv_reader.c and docs/input-format.md), so it must never be lowered
 * once parts have been sent. Returns 0, or -1 with err filled when out of range or below what the
 * current lookup needs. */
int csv_reader_set_max_parts (csv_reader_t *self, size_t max_parts, char *err, size_t err_len);

/* Places rows whose neighbourhood cell is empty or absent through lookup, by the value of the
 * column headed `column` (e.g. "Organisational Unit"), which every file must then have. Takes
 * ownership of *lookup_p and sets it to NULL on success; NULL (or *lookup_p NULL) removes the
 * lookup. Returns 0, or -1 with err filled (the caller keeps the lookup) when the column is empty
 * or the lookup maps a value to more neighbourhoods than max_parts. */
int csv_reader_set_lookup (csv_reader_t *self, const char *column, area_lookup_t **lookup_p,
                           char *err, size_t err_len);

/* Places rows that neither their neighbourhood cell nor the lookup place through a postcode lookup
 * of their postcode cell (field "postcode"). Ownership as csv_reader_set_lookup. Returns 0, or -1
 * with err filled when the lookup maps a key to several areas (not a postcode lookup). */
int csv_reader_set_postcode_lookup (csv_reader_t *self, area_lookup_t **lookup_p, char *err,
                                    size_t err_len);

/* Reads the CSV file at path: see csv_reader_read_stream. */
int csv_reader_read_file (csv_reader_t *self, const char *path, csv_record_fn *on_record,
                          csv_reject_fn *on_reject, void *arg, csv_reader_stats_t *stats,
                          export_summary_t *summary, char *err, size_t err_len);

/* Reads CSV from stream to its end; name is used in file-level messages. The first non-blank row
 * is the header. Each later row becomes one or more records for on_record or a rejection for
 * on_reject (either may be NULL: records are then freed, rejections only counted). A row is
 * placed by its neighbourhood cell, else the lookup, else the postcode lookup, else rejected with
 * a reason starting "no neighbourhood". A row with neither id nor date whose amount is the sum of
 * the other rows (or of the rows since the previous such row) is the file's own totals row: it is
 * skipped and reported as a warning, not rejected; so rejections of rows without id and date come
 * once the whole stream is read. Derived ids and repeated ids count rows from the top of this
 * stream, so a stream must be a whole file. stats (may be NULL) is filled however the read ends.
 * summary (may be NULL) receives everything the read finds (export_summary.h), a file-level
 * error in full included. Not for use by two threads at once on one reader. Returns 0 when the
 * whole stream was read, CSV_READER_ERR with err filled for a file-level error (records already
 * handed over stay with the receiver), or the non-zero value a callback returned to stop the
 * read (err then says where it stopped). */
int csv_reader_read_stream (csv_reader_t *self, FILE *stream, const char *name,
                            csv_record_fn *on_record, csv_reject_fn *on_reject, void *arg,
                            csv_reader_stats_t *stats, export_summary_t *summary, char *err,
                            size_t err_len);

#endif
