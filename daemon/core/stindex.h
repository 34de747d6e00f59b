/*
 * stindex: in-memory spatial index over stations for "nearest eligible stations within
 * max_km" (dispatch matching) and "every station within max_km" (coverage, planning).
 *
 * Contract:
 * - Distances are geo_km() to the bit: a station is inside when geo_km(query, station) <=
 *   max_km (inclusive), exactly as a brute-force scan with geo_km() would decide.
 * - Results are sorted by km ascending, ties by station id ascending: deterministic.
 * - The index copies the station records; it never calls back into the caller except for
 *   the eligibility / visit callbacks during a query, which must not modify the index.
 * - Not thread-safe for writers; any number of concurrent readers are fine when nobody
 *   writes (queries do not mutate).
 * - Pointers to StStation handed out (hits, callbacks, stindex_get) are borrowed until
 *   the next stindex_upsert / stindex_remove / stindex_free.
 * - Cost: a query scans the grid cells that intersect the bounding box of its circle, so
 *   max_km should be about the service circle (a few km); a huge max_km degrades to a
 *   scan of the whole index (still correct).
 */
#ifndef CARELINE_STINDEX_H
#define CARELINE_STINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

enum {
    ST_ACTIVE = 1u << 0,    /* station is operating */
    ST_MEAL = 1u << 1,      /* offers meal delivery (配送餐) */
    ST_HOME_CARE = 1u << 2, /* offers home care (居家上门服务) */
};

typedef struct {
    int64_t id;     /* station id (Postgres), unique within an index */
    double lat;     /* degrees, [-90, 90] */
    double lon;     /* degrees, [-180, 180] */
    uint32_t flags; /* ST_* bits */
    size_t user;    /* opaque to the index: e.g. the caller's slot for capacities */
} StStation;

typedef struct {
    const StStation *st; /* borrowed, see the contract above */
    double km;           /* geo_km(query, station) */
} StHit;

typedef struct StIndex StIndex;

/* Eligibility filter: true when the station may be returned. Called only for stations
 * within max_km, in no particular order, and possibly not for all of them (a station that
 * could not enter the current top max_out is skipped without asking). NULL = all. */
typedef bool (*StEligibleFn)(const StStation *st, void *arg);
/* Visitor for stindex_within: called once per station within max_km, unordered. */
typedef void (*StVisitFn)(const StStation *st, double km, void *arg);

#define STINDEX_CELL_DEG_DEFAULT 0.05 /* ~5.6 km north-south: about one 15-minute circle */

/* Builds an index over a copy of stations[0..n) (n may be 0). Returns NULL, after logging,
 * when an id repeats or a coordinate is outside the ranges above or not finite. */
StIndex *stindex_new(const StStation *stations, size_t n);
/* Same with an explicit grid cell size in degrees (> 0); the index may enlarge it to keep
 * the grid at most ~max(2n, 2^20) cells. */
StIndex *stindex_new_sized(const StStation *stations, size_t n, double cell_deg);
void stindex_free(StIndex *ix);

size_t stindex_count(const StIndex *ix);
/* The station with this id, or NULL. */
const StStation *stindex_get(const StIndex *ix, int64_t id);

/* Inserts or replaces (by id) one station. Cost: O(stations in its old and new cells);
 * a station outside the grid's original extent is kept in the nearest edge cell, and the
 * grid is rebuilt (O(n)) once such stations exceed n/16 + 64. False, index unchanged, on a
 * bad coordinate. */
bool stindex_upsert(StIndex *ix, const StStation *st) MUSTCHECK;
/* Removes the station with this id; false when there is none. */
bool stindex_remove(StIndex *ix, int64_t id);

/* Up to max_out nearest eligible stations with geo_km <= max_km from (lat, lon), written
 * to out[] sorted by (km, id) ascending; returns how many. max_km must be >= 0 and finite
 * (NaN or negative finds nothing). */
size_t stindex_nearest(const StIndex *ix, double lat, double lon, double max_km,
                       StEligibleFn eligible, void *arg, StHit *out, size_t max_out);

/* Calls visit for every station with geo_km <= max_km from (lat, lon); returns how many. */
size_t stindex_within(const StIndex *ix, double lat, double lon, double max_km, StVisitFn visit,
                      void *arg);

#endif
