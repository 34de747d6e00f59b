/*
 * keys: the Redis key layout, in one place. Every key of a county carries its hash tag
 * "{cCOUNTY}" so one Lua script can touch several stations' keys (one cluster slot per
 * county). Nothing here is the record: PostgreSQL can rebuild every key.
 *
 *   {cCOUNTY}:ra:REQUEST:ATTEMPT   hash: the reservation of one offer (job, station, capacity
 *                                  key, stream, entry, state held|released|cancelled...)
 *   {cCOUNTY}:pending              zset: fresh reservations whose record has not committed
 *                                  yet, scored by time (the orphan reconciler reads it)
 *   {cCOUNTY}:cap:STATION:DAY:SLOT counter: reserved units of a day's capacity
 *   {cCOUNTY}:lim:STATION:DAY:SLOT the station's own word on that capacity (StationStatus)
 *   {cCOUNTY}:st:STATION:jobs      stream: the station's job queue, which its consoles are
 *                                  served from (entries and trimming: core/station.h)
 *   {cCOUNTY}:wake                 pub/sub channel: a station's jobs changed (wake-ups)
 *   {cCOUNTY}:gen                  "GEN RUN_ID": the generation of the county's state and
 *                                  the run_id of the Redis it was rebuilt in (rebuild.c);
 *                                  missing = the state is lost
 *   {cCOUNTY}:rebuild              the rebuild lock: the rebuilding daemon's server id
 *   {cCOUNTY}:probe                written by each daemon's periodic write probe
 *
 * Each writer fills out[n] (truncating, always NUL-terminated); DAY is YYYY-MM-DD, SLOT is
 * lunch, dinner or care.
 */
#ifndef CARELINE_KEYS_H
#define CARELINE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Keys {
    char prefix[32]; /* "{c330281}:" */
} Keys;

void keys_init(Keys *k, const char *county_code);

void keys_reservation(const Keys *k, int64_t request_id, int attempt, char *out, size_t n);
void keys_pending(const Keys *k, char *out, size_t n);
void keys_capacity(const Keys *k, int64_t station_id, const char *day, const char *slot, char *out,
                   size_t n);
void keys_limit(const Keys *k, int64_t station_id, const char *day, const char *slot, char *out,
                size_t n);
void keys_stream(const Keys *k, int64_t station_id, char *out, size_t n);
void keys_wake_channel(const Keys *k, char *out, size_t n);
void keys_generation(const Keys *k, char *out, size_t n);
void keys_rebuild_lock(const Keys *k, char *out, size_t n);
void keys_probe(const Keys *k, char *out, size_t n);
/* KEYS patterns of what a rebuild clears and rewrites: kind 0..3 = counters, reservations,
 * streams, the pending set; false past the last. */
bool keys_rebuilt_pattern(const Keys *k, int kind, char *out, size_t n);

#endif
