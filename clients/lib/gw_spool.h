/*
 * gw_spool: the hotline gateway's durable call queue, so a call taken while dispatchd is
 * unreachable is never lost. Two append-only files in a private directory (mode 0700,
 * files 0600):
 *   spool.log  "H <next_seq>\n" once at the top, then one "R <seq> <crc32> <json>\n" per
 *              call; each record is fdatasync'd before gw_spool_append returns true.
 *   done.log   "D <seq> <outcome>\n" per record that needs no more sending. Not synced: a
 *              lost done marker only causes a resend, which the idempotency key (the call
 *              id) makes harmless.
 * Opening compacts: the records not marked done (and whose checksum holds; a torn last line
 * from a crash is dropped) are rewritten to a new spool.log (written, synced, renamed), then
 * done.log is emptied. The same compaction runs whenever the last pending record is marked
 * done, so a phone number stays on disk only while its call is unsent.
 * Pending records come back in append order (seq order).
 */
#ifndef CARELINE_GW_SPOOL_H
#define CARELINE_GW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

typedef struct GwSpool GwSpool;

typedef struct {
    uint64_t seq;  /* unique, increasing across restarts */
    char *payload; /* one line of JSON (no '\n'); owned by the spool */
} GwSpoolRec;

/* Creates dir if needed, compacts and loads the pending records. NULL with err on failure. */
GwSpool *gw_spool_open(const char *dir, char *err, size_t errlen);
void gw_spool_free(GwSpool *s);

/* Appends a record and syncs it; true once it is durable. payload must not contain '\n'.
 * On false nothing may be assumed written (a later open drops a torn record). */
bool gw_spool_append(GwSpool *s, const char *payload, uint64_t *seq_out) MUSTCHECK;

/* Marks seq done (outcome: a short word without spaces, e.g. "sent", "refused"). Removes it
 * from the pending list. Returns false if seq is not pending or the write failed (the
 * record is then resent after a restart, harmlessly). */
bool gw_spool_done(GwSpool *s, uint64_t seq, const char *outcome);

/* Pending records, oldest first. The pointer is valid until the next append/done/free. */
size_t gw_spool_count(const GwSpool *s);
const GwSpoolRec *gw_spool_at(const GwSpool *s, size_t i);
/* The pending record with this seq, or NULL. */
const GwSpoolRec *gw_spool_find(const GwSpool *s, uint64_t seq);

/* Counts since open, for metrics. */
uint64_t gw_spool_appended(const GwSpool *s);
uint64_t gw_spool_dropped_at_open(const GwSpool *s); /* torn or corrupt lines skipped */

#endif
