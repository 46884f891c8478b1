/* store_upgrade: `totalplace-collector upgrade`, which turns a store of format 1 into one of the
 * current format in its folder. The new store is written beside the old one from the old one's
 * records (checked against their checksums and validated), with its agents' marks, counters and
 * identity (store id and creation time: it is the same store); its totals are recomputed by the
 * store itself, checked against the old store's per-neighbourhood totals and verified whole; only
 * then is it swapped in (one atomic exchange of the two data.mdb files), the old one kept in
 * DIR/format-1-YYYYMMDDTHHMMSSZ. docs/operations.md ("Upgrading a store") and
 * docs/architecture.md ("Store identity and format"). */
#ifndef TOTALPLACE_STORE_UPGRADE_H
#define TOTALPLACE_STORE_UPGRADE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct {
    bool already;              /* the store was of the current format: nothing was done */
    store_identity_t identity; /* the store's (format: the new one's) */
    uint64_t records;          /* records moved (withdrawn ones included) */
    uint64_t agents;           /* agents' marks moved */
    uint64_t neighbourhoods;   /* per-neighbourhood totals compared, old against new */
    uint64_t old_bytes;        /* data.mdb before */
    uint64_t new_bytes;        /* data.mdb after */
    char kept[PATH_MAX];       /* the folder now holding the old store */
    double seconds;
} store_upgrade_report_t;

/* Called now and then while records are moved: done of total. */
typedef void (store_upgrade_progress_fn) (void *arg, uint64_t done, uint64_t total);

/* Upgrades the store in path (its collector stopped: a store some process has open is refused).
 * Returns 0 (report filled; report->already when there was nothing to do), or with a message:
 * STORE_ERR_NOSTORE (no store there), STORE_ERR_FORMAT (a format neither 1 nor the current one),
 * STORE_ERR_DAMAGED (a value of the old store fails its checksum or does not decode, or its
 * totals disagree with its records: nothing is swapped), STORE_ERR_NOSPACE, or STORE_ERR (the
 * store is in use, or anything else). On any error the old store is left as it was, and nothing of
 * the new one stays behind. progress may be NULL. */
int store_upgrade (const char *path, store_upgrade_progress_fn *progress, void *arg,
                   store_upgrade_report_t *report, char *err, size_t err_len);

#endif
