/*
 * stindex_int: the station index's private layout and the calls between its files, for
 * daemon/core/stindex*.c only (everyone else includes core/stindex.h).
 *   stindex.c        construction, free, lookups by id, upsert and remove
 *   stindex_map.c    the open-addressing id -> slot map
 *   stindex_grid.c   the pooled grid: placing and unplacing one station, (re)building
 *   stindex_query.c  nearest-eligible and within-radius queries
 * The coordinate helpers below are inline because queries call them on their hot path.
 */
#ifndef CARELINE_STINDEX_INT_H
#define CARELINE_STINDEX_INT_H

#include "core/stindex.h"

#include <math.h>

#define ST_NONE    UINT32_MAX
#define ST_OVF_BIT 0x80000000u /* pos_of: the position is in ovf[], not pool[] */

typedef struct {
    double lat, lon, cos_lat; /* radians and cos(lat), exactly as geo_km() computes them */
    uint32_t slot;            /* index into StIndex.st */
    uint32_t next;            /* ovf[] only: next overflow entry of the same cell, or ST_NONE */
} Entry;

/* A cell owns pool[start, start + n) (live, unordered) and may grow in place up to the next
 * cell's start; entries that do not fit go to its overflow chain in ovf[]. */
typedef struct {
    uint32_t start; /* first pool position */
    uint32_t n;     /* live entries in the pool */
    uint32_t ovf;   /* head of the overflow chain, ST_NONE when empty */
} Cell;

struct StIndex {
    StStation *st;       /* slots; a slot is live when pos_of[slot] != ST_NONE */
    uint32_t *cell_of;   /* slot -> cell index, ST_NONE for a free slot */
    uint32_t *pos_of;    /* slot -> pool position (or ovf index | ST_OVF_BIT), ST_NONE when free */
    size_t n_slots;      /* slots in use or freed, <= cap_slots */
    size_t cap_slots;    /* allocated slots */
    size_t n_live;       /* live stations */
    uint32_t *free_slot; /* stack of freed slots, n_free of them (capacity cap_slots) */
    size_t n_free;

    int64_t *h_key;  /* open-addressing id -> slot map, linear probing, backward-shift delete */
    uint32_t *h_val; /* ST_NONE = empty bucket */
    size_t h_cap;    /* power of two, >= 2 * n_live */

    double lat0, lon0; /* degrees, south-west corner of cell (0, 0) */
    double cell_deg;   /* cell side in degrees of latitude and of longitude */
    double cell_req;   /* cell size asked for at construction (rebuilds start from it) */
    uint32_t rows, cols;
    Cell *cells; /* rows * cols, row-major, plus a sentinel (its start ends the pool) */
    /* What queries read instead of cells[] (a quarter of its size, so it stays in cache
     * better): qstart[i] == cells[i].start, and bit i of ovf_bits is set when cell i has an
     * overflow chain. Pool places past a cell's n are dead (lat NaN), so a query scans a
     * row's whole column range as one span. */
    uint32_t *qstart;
    uint64_t *ovf_bits;
    size_t outside; /* live stations whose true cell lies outside the grid */
    Entry *pool;    /* all cells' entries, contiguous in row-major cell order */
    Entry *ovf;     /* overflow entries (chained per cell), ovf[0..n_ovf_used) */
    size_t cap_ovf, n_ovf_used;
    size_t n_ovf;      /* live overflow entries; a rebuild folds them back into the pool */
    uint32_t ovf_free; /* free list through Entry.next, ST_NONE when empty */
};

/* ---- coordinates and cells (inline: queries use them) ---- */

static inline bool st_coord_ok(double lat, double lon)
{
    return isfinite(lat) && isfinite(lon) && lat >= -90.0 && lat <= 90.0 && lon >= -180.0 &&
           lon <= 180.0;
}

/* Raw (unclamped) row/column; monotone in the coordinate, which is what makes clamping of
 * both station placement and query ranges safe. */
static inline double st_row_raw(const StIndex *ix, double lat)
{
    return floor((lat - ix->lat0) / ix->cell_deg);
}

static inline double st_col_raw(const StIndex *ix, double lon)
{
    return floor((lon - ix->lon0) / ix->cell_deg);
}

static inline uint32_t st_clamp_idx(double v, uint32_t n)
{
    if (v < 0.0)
        return 0;
    if (v > (double)(n - 1))
        return n - 1;
    return (uint32_t)v;
}

/* ---- stindex_map.c: id -> slot ---- */

/* Allocates an empty map sized for n stations. */
void stmap_init(StIndex *ix, size_t n);
/* The slot of the station with this id, or ST_NONE. */
uint32_t stmap_find(const StIndex *ix, int64_t id);
/* Adds id -> slot, growing the map first if needed; the caller has checked id is absent and
 * has not yet counted it in n_live. */
void stmap_put(StIndex *ix, int64_t id, uint32_t slot);
/* Removes id, which must be present. */
void stmap_del(StIndex *ix, int64_t id);

/* ---- stindex_grid.c: the grid ---- */

/* Places live slot in its cell (pool place, or the cell's overflow chain). */
void stgrid_add(StIndex *ix, uint32_t slot);
/* Takes slot out of its cell; the slot stays allocated. */
void stgrid_del(StIndex *ix, uint32_t slot);
/* (Re)builds the grid over the live stations and renumbers the slots (see stindex_grid.c). */
void stgrid_build(StIndex *ix);
/* Frees the grid's arrays (not the slots or the id map). */
void stgrid_free(StIndex *ix);

#endif
