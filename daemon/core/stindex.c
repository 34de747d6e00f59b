/*
 * stindex: a uniform latitude/longitude grid of station entries, all cells' entries pooled
 * in one array in row-major cell order (CSR-style, a little slack per cell, an overflow
 * chain per cell for what does not fit until the next rebuild).
 *
 * Why a grid and not a k-d tree: every query here is a fixed-radius search whose radius is
 * about one service circle (3-6 km), and stations are a few per circle even nationally
 * (600k stations over China's ~2,200 square degrees is ~0.7 per 0.05-degree cell). A grid with
 * cells about one circle wide answers with 2x2 to 3x3 cell visits and a handful of distance
 * computations, no tree descent and no rebalancing: upsert/remove touch one or two cells.
 * A k-d tree would need rebuilds or a dynamic variant for LISTEN/NOTIFY refresh and wins
 * only for unbounded k-nearest queries, which dispatch never asks (the circle bounds it).
 * The grid spans the stations' bounding box at build time (China at 0.05 deg: 720 x 1240
 * cells); later stations outside it are kept in the clamped edge cell (still
 * found, since query ranges are clamped the same way) until enough of them trigger a rebuild.
 *
 * Exactness: cell ranges are derived from a conservative bounding box of the spherical cap
 * (latitude +-theta, longitude +-asin(sin theta / cos lat) bounded from above without trig,
 * whole longitude circle when the cap reaches a pole), inflated by 1e-7 relative; inclusion
 * itself is decided by geo_hav_rad()/geo_km_from_hav() on cached radians/cosines, which is
 * bit-identical to geo_km(). Cheaper tests before it only ever reject with a wide margin.
 *
 * Speed: a query's cost is cache misses (random queries over ~60 MB). A row's column range
 * is one contiguous span of the pool, and slot p holds the station at pool place p after a
 * build, so the station records of a span are contiguous too; all spans (and, before them,
 * the small qstart[] headers) are prefetched up front so the rows' misses overlap.
 */
#include "core/stindex.h"
#include "base/geo.h"
#include "common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define NONE           UINT32_MAX
#define MARGIN_REL     1e-7
#define MARGIN_ABS_RAD 1e-12
#define GRID_MIN_CAP   (1u << 20)

#define OVF_BIT 0x80000000u /* pos_of: the position is in ovf[], not pool[] */

typedef struct {
    double lat, lon, cos_lat; /* radians and cos(lat), exactly as geo_km() computes them */
    uint32_t slot;            /* index into StIndex.st */
    uint32_t next;            /* ovf[] only: next overflow entry of the same cell, or NONE */
} Entry;

/* A cell owns pool[start, start + n) (live, unordered) and may grow in place up to the next
 * cell's start; entries that do not fit go to its overflow chain in ovf[]. */
typedef struct {
    uint32_t start; /* first pool position */
    uint32_t n;     /* live entries in the pool */
    uint32_t ovf;   /* head of the overflow chain, NONE when empty */
} Cell;

struct StIndex {
    StStation *st;       /* slots; a slot is live when pos_of[slot] != NONE */
    uint32_t *cell_of;   /* slot -> cell index, NONE for a free slot */
    uint32_t *pos_of;    /* slot -> pool position (or ovf index | OVF_BIT), NONE when free */
    size_t n_slots;      /* slots in use or freed, <= cap_slots */
    size_t cap_slots;    /* allocated slots */
    size_t n_live;       /* live stations */
    uint32_t *free_slot; /* stack of freed slots, n_free of them (capacity cap_slots) */
    size_t n_free;

    int64_t *h_key;  /* open-addressing id -> slot map, linear probing, backward-shift delete */
    uint32_t *h_val; /* NONE = empty bucket */
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
    uint32_t ovf_free; /* free list through Entry.next, NONE when empty */
};

/* ---- id map ------------------------------------------------------------------------------ */

static size_t h_bucket(const StIndex *ix, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29)) & (ix->h_cap - 1);
}

static uint32_t h_find(const StIndex *ix, int64_t id)
{
    for (size_t b = h_bucket(ix, id);; b = (b + 1) & (ix->h_cap - 1)) {
        if (ix->h_val[b] == NONE)
            return NONE;
        if (ix->h_key[b] == id)
            return ix->h_val[b];
    }
}

static void h_put_raw(StIndex *ix, int64_t id, uint32_t slot)
{
    size_t b = h_bucket(ix, id);
    while (ix->h_val[b] != NONE)
        b = (b + 1) & (ix->h_cap - 1);
    ix->h_key[b] = id;
    ix->h_val[b] = slot;
}

static void h_resize(StIndex *ix, size_t cap)
{
    int64_t *ok = ix->h_key;
    uint32_t *ov = ix->h_val;
    size_t ocap = ix->h_cap;
    ix->h_cap = cap;
    ix->h_key = xmalloc(cap * sizeof(*ix->h_key));
    ix->h_val = xmalloc(cap * sizeof(*ix->h_val));
    memset(ix->h_val, 0xff, cap * sizeof(*ix->h_val));
    for (size_t b = 0; b < ocap; b++)
        if (ov[b] != NONE)
            h_put_raw(ix, ok[b], ov[b]);
    free(ok);
    free(ov);
}

/* Caller has checked the id is absent. */
static void h_put(StIndex *ix, int64_t id, uint32_t slot)
{
    if ((ix->n_live + 1) * 2 > ix->h_cap)
        h_resize(ix, ix->h_cap * 2);
    h_put_raw(ix, id, slot);
}

static void h_del(StIndex *ix, int64_t id)
{
    size_t mask = ix->h_cap - 1, b = h_bucket(ix, id);
    while (ix->h_key[b] != id || ix->h_val[b] == NONE) {
        ASSERT(ix->h_val[b] != NONE);
        b = (b + 1) & mask;
    }
    /* backward-shift: pull later members of the probe run into the hole */
    for (size_t j = (b + 1) & mask; ix->h_val[j] != NONE; j = (j + 1) & mask) {
        size_t home = h_bucket(ix, ix->h_key[j]);
        if (((j - home) & mask) >= ((j - b) & mask)) {
            ix->h_key[b] = ix->h_key[j];
            ix->h_val[b] = ix->h_val[j];
            b = j;
        }
    }
    ix->h_val[b] = NONE;
}

/* ---- grid -------------------------------------------------------------------------------- */

static bool coord_ok(double lat, double lon)
{
    return isfinite(lat) && isfinite(lon) && lat >= -90.0 && lat <= 90.0 && lon >= -180.0 &&
           lon <= 180.0;
}

/* Raw (unclamped) row/column; monotone in the coordinate, which is what makes clamping of
 * both station placement and query ranges safe. */
static double row_raw(const StIndex *ix, double lat)
{
    return floor((lat - ix->lat0) / ix->cell_deg);
}

static double col_raw(const StIndex *ix, double lon)
{
    return floor((lon - ix->lon0) / ix->cell_deg);
}

static uint32_t clamp_idx(double v, uint32_t n)
{
    if (v < 0.0)
        return 0;
    if (v > (double)(n - 1))
        return n - 1;
    return (uint32_t)v;
}

static bool is_outside(const StIndex *ix, double lat, double lon)
{
    double r = row_raw(ix, lat), c = col_raw(ix, lon);
    return r < 0.0 || r >= (double)ix->rows || c < 0.0 || c >= (double)ix->cols;
}

static uint32_t cell_index(const StIndex *ix, double lat, double lon)
{
    return clamp_idx(row_raw(ix, lat), ix->rows) * ix->cols + clamp_idx(col_raw(ix, lon), ix->cols);
}

static void entry_set(Entry *e, const StStation *st, uint32_t slot)
{
    e->lat = st->lat * GEO_DEG2RAD;
    e->lon = st->lon * GEO_DEG2RAD;
    e->cos_lat = cos(e->lat);
    e->slot = slot;
    e->next = NONE;
}

static uint32_t cell_cap(const StIndex *ix, uint32_t ci)
{
    return ix->cells[ci + 1].start - ix->cells[ci].start;
}

static void cell_add(StIndex *ix, uint32_t slot)
{
    const StStation *st = &ix->st[slot];
    uint32_t ci = cell_index(ix, st->lat, st->lon);
    Cell *c = &ix->cells[ci];
    if (c->n < cell_cap(ix, ci)) {
        uint32_t p = c->start + c->n++;
        entry_set(&ix->pool[p], st, slot);
        ix->pos_of[slot] = p;
    } else {
        uint32_t o = ix->ovf_free;
        if (o != NONE) {
            ix->ovf_free = ix->ovf[o].next;
        } else {
            if (ix->n_ovf_used == ix->cap_ovf) {
                ix->cap_ovf = ix->cap_ovf ? ix->cap_ovf * 2 : 64;
                ASSERT(ix->cap_ovf < OVF_BIT);
                ix->ovf = xrealloc(ix->ovf, ix->cap_ovf * sizeof(*ix->ovf));
            }
            o = (uint32_t)ix->n_ovf_used++;
        }
        entry_set(&ix->ovf[o], st, slot);
        ix->ovf[o].next = c->ovf;
        c->ovf = o;
        ix->ovf_bits[ci / 64] |= 1ull << (ci % 64);
        ix->pos_of[slot] = o | OVF_BIT;
        ix->n_ovf++;
    }
    ix->cell_of[slot] = ci;
    if (is_outside(ix, st->lat, st->lon))
        ix->outside++;
}

/* Unlinks overflow entry o from cell c's chain and frees it. */
static void ovf_unlink(StIndex *ix, Cell *c, uint32_t o)
{
    uint32_t *link = &c->ovf;
    while (*link != o) {
        ASSERT(*link != NONE);
        link = &ix->ovf[*link].next;
    }
    *link = ix->ovf[o].next;
    if (c->ovf == NONE) {
        size_t ci = (size_t)(c - ix->cells);
        ix->ovf_bits[ci / 64] &= ~(1ull << (ci % 64));
    }
    ix->ovf[o].next = ix->ovf_free;
    ix->ovf_free = o;
    ix->n_ovf--;
}

static void cell_del(StIndex *ix, uint32_t slot)
{
    Cell *c = &ix->cells[ix->cell_of[slot]];
    uint32_t p = ix->pos_of[slot];
    if (p & OVF_BIT) {
        ASSERT(ix->ovf[p & ~OVF_BIT].slot == slot);
        ovf_unlink(ix, c, p & ~OVF_BIT);
    } else {
        ASSERT(p >= c->start && p < c->start + c->n && ix->pool[p].slot == slot);
        uint32_t last = c->start + --c->n;
        if (p != last) {
            ix->pool[p] = ix->pool[last];
            ix->pos_of[ix->pool[p].slot] = p;
        }
        ix->pool[last].lat = NAN; /* dead until refilled */
        ix->pool[last].slot = NONE;
        if (c->ovf != NONE) { /* the freed pool place takes one overflow entry back */
            uint32_t o = c->ovf;
            uint32_t q = c->start + c->n++;
            ix->pool[q] = ix->ovf[o];
            ix->pool[q].next = NONE;
            ix->pos_of[ix->pool[q].slot] = q;
            ovf_unlink(ix, c, o);
        }
    }
    if (is_outside(ix, ix->st[slot].lat, ix->st[slot].lon))
        ix->outside--;
    ix->cell_of[slot] = NONE;
    ix->pos_of[slot] = NONE;
}

/* Large arrays that queries touch at random: ask for transparent huge pages so the TLB
 * is not a second miss per access (advisory; plain malloc memory otherwise). */
static void *big_alloc(size_t size)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    enum { HUGEPAGE_BYTES = 2u << 20 };
    if (size >= HUGEPAGE_BYTES) {
        void *p = NULL;
        size_t rounded = (size + HUGEPAGE_BYTES - 1) / HUGEPAGE_BYTES * HUGEPAGE_BYTES;
        if (posix_memalign(&p, HUGEPAGE_BYTES, rounded) == 0) {
            (void)madvise(p, rounded, MADV_HUGEPAGE);
            return p;
        }
    }
#endif
    return xmalloc(size ? size : 1);
}

static void grid_free(StIndex *ix)
{
    free(ix->cells);
    free(ix->qstart);
    free(ix->ovf_bits);
    ix->qstart = NULL;
    ix->ovf_bits = NULL;
    free(ix->pool);
    free(ix->ovf);
    ix->cells = NULL;
    ix->pool = NULL;
    ix->ovf = NULL;
    ix->cap_ovf = ix->n_ovf_used = 0;
    ix->n_ovf = 0;
    ix->ovf_free = NONE;
}

/* (Re)builds the grid over the bounding box of the live stations: one pooled entry array
 * in row-major cell order with a little slack per non-empty cell, and the slots renumbered
 * in the same order so a query's station records are as contiguous as its entries. */
static void grid_build(StIndex *ix)
{
    grid_free(ix);
    double la0 = 90.0, la1 = -90.0, lo0 = 180.0, lo1 = -180.0;
    for (size_t s = 0; s < ix->n_slots; s++) {
        if (ix->pos_of[s] == NONE)
            continue;
        const StStation *st = &ix->st[s];
        la0 = fmin(la0, st->lat), la1 = fmax(la1, st->lat);
        lo0 = fmin(lo0, st->lon), lo1 = fmax(lo1, st->lon);
    }
    if (la0 > la1)
        la0 = la1 = lo0 = lo1 = 0.0;
    size_t cap = ix->n_live * 2 > GRID_MIN_CAP ? ix->n_live * 2 : GRID_MIN_CAP;
    double cell = ix->cell_req;
    for (;;) {
        double r = floor((la1 - la0) / cell) + 1.0, c = floor((lo1 - lo0) / cell) + 1.0;
        if (r * c <= (double)cap) {
            ix->rows = (uint32_t)r, ix->cols = (uint32_t)c;
            break;
        }
        cell *= 1.25;
    }
    ix->cell_deg = cell, ix->lat0 = la0, ix->lon0 = lo0;
    size_t ncells = (size_t)ix->rows * ix->cols;
    ix->cells = big_alloc((ncells + 1) * sizeof(*ix->cells));
    memset(ix->cells, 0, (ncells + 1) * sizeof(*ix->cells));
    ix->outside = 0;
    /* count per cell (in .n), then lay out starts with slack, then place */
    for (size_t s = 0; s < ix->n_slots; s++)
        if (ix->pos_of[s] != NONE)
            ix->cells[cell_index(ix, ix->st[s].lat, ix->st[s].lon)].n++;
    size_t total = 0;
    for (size_t i = 0; i <= ncells; i++) {
        Cell *c = &ix->cells[i];
        c->start = (uint32_t)total;
        c->ovf = NONE;
        if (c->n)
            total += (size_t)c->n + c->n / 8 + 1;
        c->n = 0;
        ASSERT(total < OVF_BIT);
    }
    ix->pool = big_alloc(total * sizeof(*ix->pool));
    ix->qstart = big_alloc((ncells + 1) * sizeof(*ix->qstart));
    for (size_t i = 0; i <= ncells; i++)
        ix->qstart[i] = ix->cells[i].start;
    ix->ovf_bits = xcalloc(ncells / 64 + 1, sizeof(*ix->ovf_bits));
    /* placement: pool[p].slot is still the old slot here */
    for (size_t s = 0; s < ix->n_slots; s++) {
        if (ix->pos_of[s] == NONE)
            continue;
        Cell *c = &ix->cells[cell_index(ix, ix->st[s].lat, ix->st[s].lon)];
        entry_set(&ix->pool[c->start + c->n++], &ix->st[s], (uint32_t)s);
    }
    /* renumber: the station at pool position p gets slot p, so a query's station records
     * lie in the same order as its entries; the slack positions become free slots */
    size_t ncap = total > 16 ? total : 16;
    uint32_t *perm = xmalloc((ix->n_slots ? ix->n_slots : 1) * sizeof(*perm));
    StStation *nst = big_alloc(ncap * sizeof(*nst));
    uint32_t *ncell = xmalloc(ncap * sizeof(*ncell));
    uint32_t *npos = xmalloc(ncap * sizeof(*npos));
    uint32_t *nfree = xmalloc(ncap * sizeof(*nfree));
    size_t nf = 0;
    for (size_t i = 0; i < ncells; i++) {
        Cell *c = &ix->cells[i];
        uint32_t end = ix->cells[i + 1].start;
        for (uint32_t p = c->start; p < end; p++) {
            if (p >= c->start + c->n) {
                ix->pool[p].lat = NAN;
                ix->pool[p].slot = NONE;
                ix->pool[p].next = NONE;
                ncell[p] = NONE, npos[p] = NONE;
                continue;
            }
            uint32_t old = ix->pool[p].slot;
            nst[p] = ix->st[old];
            perm[old] = p;
            ix->pool[p].slot = p;
            ncell[p] = (uint32_t)i;
            npos[p] = p;
            if (is_outside(ix, nst[p].lat, nst[p].lon))
                ix->outside++;
        }
    }
    for (size_t p = total; p-- > 0;)
        if (npos[p] == NONE)
            nfree[nf++] = (uint32_t)p;
    for (size_t b = 0; b < ix->h_cap; b++)
        if (ix->h_val[b] != NONE)
            ix->h_val[b] = perm[ix->h_val[b]];
    free(perm);
    free(ix->st);
    free(ix->cell_of);
    free(ix->pos_of);
    free(ix->free_slot);
    ix->st = nst, ix->cell_of = ncell, ix->pos_of = npos, ix->free_slot = nfree;
    ix->cap_slots = ncap;
    ix->n_slots = total;
    ix->n_free = nf;
}

/* ---- lifecycle and updates --------------------------------------------------------------- */

static uint32_t slot_take(StIndex *ix)
{
    if (ix->n_free)
        return ix->free_slot[--ix->n_free];
    if (ix->n_slots == ix->cap_slots) {
        size_t cap = ix->cap_slots ? ix->cap_slots * 2 : 16;
        ASSERT(cap < NONE);
        ix->st = xrealloc(ix->st, cap * sizeof(*ix->st));
        ix->cell_of = xrealloc(ix->cell_of, cap * sizeof(*ix->cell_of));
        ix->pos_of = xrealloc(ix->pos_of, cap * sizeof(*ix->pos_of));
        ix->free_slot = xrealloc(ix->free_slot, cap * sizeof(*ix->free_slot));
        ix->cap_slots = cap;
    }
    ix->cell_of[ix->n_slots] = NONE;
    ix->pos_of[ix->n_slots] = NONE;
    return (uint32_t)ix->n_slots++;
}

StIndex *stindex_new_sized(const StStation *stations, size_t n, double cell_deg)
{
    if (!(cell_deg > 0.0) || !isfinite(cell_deg)) {
        log_error("stindex: bad cell size %g", cell_deg);
        return NULL;
    }
    if (n >= NONE / 2) {
        log_error("stindex: too many stations (%zu)", n);
        return NULL;
    }
    StIndex *ix = xcalloc(1, sizeof(*ix));
    ix->cell_req = cell_deg;
    ix->h_cap = 16;
    while (ix->h_cap < 2 * n + 2)
        ix->h_cap *= 2;
    ix->h_key = xmalloc(ix->h_cap * sizeof(*ix->h_key));
    ix->h_val = xmalloc(ix->h_cap * sizeof(*ix->h_val));
    memset(ix->h_val, 0xff, ix->h_cap * sizeof(*ix->h_val));
    for (size_t i = 0; i < n; i++) {
        const StStation *st = &stations[i];
        if (!coord_ok(st->lat, st->lon)) {
            log_error("stindex: station %lld has a bad coordinate (%g, %g)", (long long)st->id,
                      st->lat, st->lon);
            goto fail;
        }
        if (h_find(ix, st->id) != NONE) {
            log_error("stindex: station id %lld repeats", (long long)st->id);
            goto fail;
        }
        uint32_t s = slot_take(ix);
        ix->st[s] = *st;
        ix->pos_of[s] = 0; /* live; grid_build places it */
        h_put(ix, st->id, s);
        ix->n_live++;
    }
    grid_build(ix);
    return ix;
fail:
    stindex_free(ix);
    return NULL;
}

StIndex *stindex_new(const StStation *stations, size_t n)
{
    return stindex_new_sized(stations, n, STINDEX_CELL_DEG_DEFAULT);
}

void stindex_free(StIndex *ix)
{
    if (!ix)
        return;
    grid_free(ix);
    free(ix->st);
    free(ix->cell_of);
    free(ix->pos_of);
    free(ix->free_slot);
    free(ix->h_key);
    free(ix->h_val);
    free(ix);
}

size_t stindex_count(const StIndex *ix)
{
    return ix->n_live;
}

const StStation *stindex_get(const StIndex *ix, int64_t id)
{
    uint32_t s = h_find(ix, id);
    return s == NONE ? NULL : &ix->st[s];
}

bool stindex_upsert(StIndex *ix, const StStation *st)
{
    if (!coord_ok(st->lat, st->lon))
        return false;
    uint32_t s = h_find(ix, st->id);
    if (s != NONE) {
        cell_del(ix, s);
    } else {
        s = slot_take(ix);
        h_put(ix, st->id, s);
        ix->n_live++;
    }
    ix->st[s] = *st;
    cell_add(ix, s);
    if (ix->outside > ix->n_live / 16 + 64 || ix->n_ovf > ix->n_live / 16 + 64)
        grid_build(ix);
    return true;
}

bool stindex_remove(StIndex *ix, int64_t id)
{
    uint32_t s = h_find(ix, id);
    if (s == NONE)
        return false;
    cell_del(ix, s);
    h_del(ix, id);
    ix->free_slot[ix->n_free++] = s;
    ix->n_live--;
    return true;
}

/* ---- queries ----------------------------------------------------------------------------- */

typedef struct {
    uint32_t r0, r1; /* row range, inclusive */
    uint32_t c0[2];  /* up to two column ranges (the circle may straddle +-180) */
    uint32_t c1[2];
    int n_col_ranges;
    double qlat, qlon, qcos; /* query in radians, cos(qlat) */
    double dlat;             /* conservative latitude half-width in radians */
    double dlon;             /* conservative longitude half-width in radians, or INFINITY */
    double hmax;             /* conservative bound on the haversine term, >= any inside */
} Window;

static void window_cols(const StIndex *ix, Window *w, double lo, double hi)
{
    w->c0[w->n_col_ranges] = clamp_idx(col_raw(ix, lo), ix->cols);
    w->c1[w->n_col_ranges] = clamp_idx(col_raw(ix, hi), ix->cols);
    w->n_col_ranges++;
}

static bool window_make(const StIndex *ix, double lat, double lon, double max_km, Window *w)
{
    if (!(max_km >= 0.0) || !coord_ok(lat, lon) || ix->n_live == 0)
        return false;
    double theta = max_km / GEO_EARTH_RADIUS_KM * (1.0 + MARGIN_REL) + MARGIN_ABS_RAD;
    w->qlat = lat * GEO_DEG2RAD;
    w->qlon = lon * GEO_DEG2RAD;
    w->qcos = cos(w->qlat);
    w->dlat = theta;
    w->dlon = INFINITY;
    /* sin x <= x (x >= 0) keeps hmax an upper bound without paying for the sine */
    w->hmax = theta >= M_PI ? INFINITY : (theta * 0.5) * (theta * 0.5) * (1.0 + MARGIN_REL);
    double dlat_deg = theta / GEO_DEG2RAD;
    double lat_lo = lat - dlat_deg, lat_hi = lat + dlat_deg;
    w->r0 = clamp_idx(row_raw(ix, fmax(lat_lo, -90.0)), ix->rows);
    w->r1 = clamp_idx(row_raw(ix, fmin(lat_hi, 90.0)), ix->rows);
    w->n_col_ranges = 0;
    /* The cap's widest longitude spread is asin(sin theta / cos lat), reached poleward of
     * the centre; a cap touching a pole spans every longitude. */
    /* s >= sin(theta) / cos(lat) since sin theta <= theta; then the spread asin(s) is
     * bounded by tan(asin s) = s / sqrt(1 - s^2): conservative, and no trig per query */
    double s = theta < 1.5 ? theta / w->qcos : 2.0;
    if (lat_lo <= -90.0 || lat_hi >= 90.0 || !(s < 1.0)) {
        window_cols(ix, w, -180.0, 180.0);
        return true;
    }
    double dlon_deg = (s / sqrt(1.0 - s * s) * (1.0 + MARGIN_REL) + MARGIN_ABS_RAD) / GEO_DEG2RAD;
    double lo = lon - dlon_deg, hi = lon + dlon_deg;
    w->dlon = dlon_deg * GEO_DEG2RAD * (1.0 + MARGIN_REL);
    if (dlon_deg >= 180.0) {
        window_cols(ix, w, -180.0, 180.0);
    } else if (lo < -180.0) {
        window_cols(ix, w, lo + 360.0, 180.0);
        window_cols(ix, w, -180.0, hi);
    } else if (hi > 180.0) {
        window_cols(ix, w, lo, 180.0);
        window_cols(ix, w, -180.0, hi - 360.0);
    } else {
        window_cols(ix, w, lo, hi);
    }
    /* two wrapped ranges may overlap on a narrow grid: merge to visit each cell once */
    if (w->n_col_ranges == 2 && w->c0[1] <= w->c1[0] + 1 && w->c0[0] <= w->c1[1] + 1) {
        w->c0[0] = w->c0[0] < w->c0[1] ? w->c0[0] : w->c0[1];
        w->c1[0] = w->c1[0] > w->c1[1] ? w->c1[0] : w->c1[1];
        w->n_col_ranges = 1;
    }
    return true;
}

/* Conservative rejections (box, then haversine term) before the exact km. */
static inline bool window_km(const Window *w, const Entry *e, double max_km, double hcut,
                             double *km)
{
    if (!(fabs(e->lat - w->qlat) <= w->dlat)) /* also rejects dead places (NaN) */
        return false;
    double dl = fabs(e->lon - w->qlon);
    if (dl > M_PI)
        dl = 2.0 * M_PI - dl;
    if (dl > w->dlon)
        return false;
    /* Cheap lower bound on the haversine term before the two sines: sin y >= y - y^3/6 >= 0
     * for 0 <= y <= pi/2 (here y = half of |dlat| or of the wrapped |dlon|), so hlb <= the
     * exact h up to a few ulps, far inside hmax's 1e-7 margin. hcut <= hmax may be tighter
     * (see Nearest.hcut). */
    double a = fabs(e->lat - w->qlat) * 0.5, b = dl * 0.5;
    a *= 1.0 - a * a * (1.0 / 6.0);
    b *= 1.0 - b * b * (1.0 / 6.0);
    if (a * a + w->qcos * e->cos_lat * (b * b) > hcut)
        return false;
    double h = geo_hav_rad(w->qlat, w->qlon, w->qcos, e->lat, e->lon, e->cos_lat);
    if (h > w->hmax)
        return false;
    *km = geo_km_from_hav(h);
    return *km <= max_km;
}

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Touching a window costs a cache miss per row for its cell headers, then per row for its
 * entries and their station records. Issuing all of them up front, rows in parallel, turns
 * a chain of misses into about two round trips. Small windows only (the common case). */
static void window_prefetch(const StIndex *ix, const Window *w)
{
    if (w->r1 - w->r0 >= 8)
        return;
    for (int k = 0; k < w->n_col_ranges; k++) {
        if (w->c1[k] - w->c0[k] >= 8)
            return;
        for (uint32_t r = w->r0; r <= w->r1; r++) {
            const uint32_t *row = &ix->qstart[(size_t)r * ix->cols];
            PREFETCH(&row[w->c0[k]]);
            PREFETCH(&row[w->c1[k] + 1]);
        }
    }
    for (int k = 0; k < w->n_col_ranges; k++) {
        for (uint32_t r = w->r0; r <= w->r1; r++) {
            const uint32_t *row = &ix->qstart[(size_t)r * ix->cols];
            uint32_t from = row[w->c0[k]], to = row[w->c1[k] + 1];
            if (to <= from || to - from > 64)
                continue;
            for (const char *a = (const char *)&ix->pool[from]; a < (const char *)&ix->pool[to];
                 a += 64)
                PREFETCH(a);
            PREFETCH(&ix->pool[to - 1]);
            for (const char *a = (const char *)&ix->st[from]; a < (const char *)&ix->st[to];
                 a += 64)
                PREFETCH(a);
            PREFETCH(&ix->st[to - 1]);
        }
    }
}

static bool hit_less(double km, int64_t id, const StHit *h)
{
    return km < h->km || (km == h->km && id < h->st->id);
}

typedef struct {
    const StIndex *ix;
    const Window *w;
    double max_km;
    StEligibleFn eligible;
    void *arg;
    StHit *out;
    size_t max_out, n;
    /* Once out[] is full: a haversine term above hcut means a km strictly above the
     * current k-th km, so the station cannot enter. hcut = (k-th km / 2R)^2 (1 + 1e-9) is at
     * least sin^2 of that half-angle, and a 1e-9 relative gap in h is far more than the few
     * ulps of rounding in the bound and in asin/sqrt. Before that, hcut = hmax. */
    double hcut;
} Nearest;

static inline void nearest_entry(Nearest *q, const Entry *e)
{
    double km;
    if (!window_km(q->w, e, q->max_km, q->hcut, &km))
        return;
    const StStation *st = &q->ix->st[e->slot];
    size_t n = q->n;
    StHit *out = q->out;
    if (n == q->max_out && !hit_less(km, st->id, &out[n - 1]))
        return;
    if (q->eligible && !q->eligible(st, q->arg))
        return;
    size_t j = n < q->max_out ? q->n++ : n - 1;
    while (j > 0 && hit_less(km, st->id, &out[j - 1])) {
        out[j] = out[j - 1];
        j--;
    }
    out[j].st = st;
    out[j].km = km;
    if (q->n == q->max_out) {
        double x = out[q->n - 1].km / (2.0 * GEO_EARTH_RADIUS_KM);
        double cut = x * x * (1.0 + 1e-9);
        q->hcut = cut < q->w->hmax ? cut : q->w->hmax;
    }
}

size_t stindex_nearest(const StIndex *ix, double lat, double lon, double max_km,
                       StEligibleFn eligible, void *arg, StHit *out, size_t max_out)
{
    Window w;
    if (max_out == 0 || !window_make(ix, lat, lon, max_km, &w))
        return 0;
    Nearest q = {ix, &w, max_km, eligible, arg, out, max_out, 0, w.hmax};
    window_prefetch(ix, &w);
    for (int k = 0; k < w.n_col_ranges; k++) {
        for (uint32_t r = w.r0; r <= w.r1; r++) {
            size_t base = (size_t)r * ix->cols;
            const Entry *e = ix->pool + ix->qstart[base + w.c0[k]];
            const Entry *end = ix->pool + ix->qstart[base + w.c1[k] + 1];
            for (; e < end; e++)
                nearest_entry(&q, e);
            for (size_t ci = base + w.c0[k]; ci <= base + w.c1[k]; ci++) {
                if (!(ix->ovf_bits[ci / 64] & (1ull << (ci % 64))))
                    continue;
                for (uint32_t o = ix->cells[ci].ovf; o != NONE; o = ix->ovf[o].next)
                    nearest_entry(&q, &ix->ovf[o]);
            }
        }
    }
    return q.n;
}

static inline size_t within_entry(const StIndex *ix, const Window *w, const Entry *e, double max_km,
                                  StVisitFn visit, void *arg)
{
    double km;
    if (!window_km(w, e, max_km, w->hmax, &km))
        return 0;
    if (visit)
        visit(&ix->st[e->slot], km, arg);
    return 1;
}

size_t stindex_within(const StIndex *ix, double lat, double lon, double max_km, StVisitFn visit,
                      void *arg)
{
    Window w;
    if (!window_make(ix, lat, lon, max_km, &w))
        return 0;
    window_prefetch(ix, &w);
    size_t n = 0;
    for (int k = 0; k < w.n_col_ranges; k++) {
        for (uint32_t r = w.r0; r <= w.r1; r++) {
            size_t base = (size_t)r * ix->cols;
            const Entry *e = ix->pool + ix->qstart[base + w.c0[k]];
            const Entry *end = ix->pool + ix->qstart[base + w.c1[k] + 1];
            for (; e < end; e++)
                n += within_entry(ix, &w, e, max_km, visit, arg);
            for (size_t ci = base + w.c0[k]; ci <= base + w.c1[k]; ci++) {
                if (!(ix->ovf_bits[ci / 64] & (1ull << (ci % 64))))
                    continue;
                for (uint32_t o = ix->cells[ci].ovf; o != NONE; o = ix->ovf[o].next)
                    n += within_entry(ix, &w, &ix->ovf[o], max_km, visit, arg);
            }
        }
    }
    return n;
}
