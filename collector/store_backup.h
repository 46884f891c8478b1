/* store_backup: a verified copy of a store, taken while the collector writes, that appears under
 * its final name only once it is whole, synced and verified; and the rotation the nightly timer
 * uses (docs/operations.md, "Backups"). */
#ifndef TOTALPLACE_STORE_BACKUP_H
#define TOTALPLACE_STORE_BACKUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "store_verify.h"

/* The folders the rotation makes and may delete: PREFIX, a UTC time (YYYYMMDDTHHMMSSZ), nothing
 * else. */
#define STORE_BACKUP_PREFIX "totalplace-"

typedef struct {
    bool made;                       /* the verified copy is in place at path */
    char path[PATH_MAX];             /* the backup folder (dest, or the one the rotation made) */
    store_identity_t identity;       /* of the copy: the store's own */
    store_verify_summary_t verified; /* verify of the copy */
    uint64_t bytes;                  /* its data.mdb */
    double copy_seconds, verify_seconds;
    size_t removed; /* older backups the rotation deleted */
} store_backup_result_t;

/* Backs the store up into dest, a folder that must not exist (its parent must). The compacted copy
 * (store_copy) is made in a hidden folder beside dest (".NAME.partial-XXXXXX"), synced, opened
 * read-only as a store, checked to have the store's identity, verified (store_verify: fn and arg
 * receive up to max_findings findings), and only when all is well moved to dest, the parent
 * folder synced. Whatever fails, the hidden folder is removed and dest never appears. Returns 0;
 * STORE_ERR_EXISTS when dest exists; STORE_ERR_DAMAGED when the copy has findings (result->verified
 * counts them: the store itself should be verified) or the copy is not the same store;
 * STORE_ERR_NOSPACE when the filesystem of dest is full; STORE_ERR otherwise; with a message. */
int store_backup (store_t *store, const char *dest, size_t max_findings, store_verify_fn *fn,
                  void *arg, store_backup_result_t *result, char *err, size_t err_len);

/* The nightly form: backs up into parent/STORE_BACKUP_PREFIX<UTC now>, then deletes all but the
 * newest keep (>= 1) folders of parent whose names are STORE_BACKUP_PREFIX and a UTC time, and
 * hidden partial folders of such names left for more than a day by a backup that died. Only
 * data.mdb and lock.mdb are deleted in them: a folder holding anything else is left, and said.
 * Nothing is deleted when the backup fails. Returns as store_backup, with result->removed. */
int store_backup_rotate (store_t *store, const char *parent, unsigned keep, size_t max_findings,
                         store_verify_fn *fn, void *arg, store_backup_result_t *result, char *err,
                         size_t err_len);

#endif
