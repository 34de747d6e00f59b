/*
 * stindex: a uniform latitude/longitude grid of station entries, each cell a small array.
 *
 * Why a grid and not a k-d tree: every query here is a fixed-radius search whose radius is
 * about one service circle (3-6 km), and stations are a few per circle even nationally
 * (600k stations over China's ~2,200 square degrees is ~0.7 per 0.05-degree cell). A grid with
 * cells about one circle wide answers with 2x2 to 3x3 cell visits and a handful of distance
 * computations, no tree descent and no rebalancing: upsert/remove touch one or two cells.
 * A k-d tree would need rebuilds or a dynamic variant for LISTEN/NOTIFY refresh and wins
 * only for unbounded k-nearest queries, which dispatch never asks (the circle bounds it).
 * The grid spans the stations' bounding box at build time (China at 0.05 deg: 720 x 1240
 * cells, 16 bytes each); later stations outside it are kept in the clamped edge cell (still
 * found, since query ranges are clamped the same way) until enough of them trigger a rebuild.
 *
 * Exactness: cell ranges are derived from a conservative bounding box of the spherical cap
 * (latitude +-theta, longitude +-asin(sin theta / cos lat), whole longitude circle when the
 * cap reaches a pole), inflated by 1e-7 relative; inclusion itself is decided by geo_km_rad()
 * on cached radians/cosines, which is bit-identical to geo_km().
 */
#include "stindex.h"
#include "geo.h"
#include "log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE           UINT32_MAX
#define MARGIN_REL     1e-7
#define MARGIN_ABS_RAD 1e-12
#define GRID_MIN_CAP   (1u << 20)

typedef struct {
    double lat, lon, cos_lat; /* radians and cos(lat), exactly as geo_km() computes them */
    uint32_t slot;            /* index into StIndex.st */
} Entry;

typedef struct {
    Entry *e;     /* e[0..n) live entries, unordered */
    uint32_t n;   /* entries */
    uint32_t cap; /* allocated entries */
} Cell;

struct StIndex {
    StStation *st;       /* slots; a slot is live when pos_of[slot] != NONE */
    uint32_t *cell_of;   /* slot -> cell index, NONE for a free slot */
    uint32_t *pos_of;    /* slot -> position in its cell's e[], NONE for a free slot */
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
    Cell *cells;    /* rows * cols, row-major */
    size_t outside; /* live stations whose true cell lies outside the grid */
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
}

static void cell_add(StIndex *ix, uint32_t slot)
{
    const StStation *st = &ix->st[slot];
    uint32_t ci = cell_index(ix, st->lat, st->lon);
    Cell *c = &ix->cells[ci];
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->e = xrealloc(c->e, c->cap * sizeof(*c->e));
    }
    entry_set(&c->e[c->n], st, slot);
    ix->cell_of[slot] = ci;
    ix->pos_of[slot] = c->n++;
    if (is_outside(ix, st->lat, st->lon))
        ix->outside++;
}

static void cell_del(StIndex *ix, uint32_t slot)
{
    Cell *c = &ix->cells[ix->cell_of[slot]];
    uint32_t p = ix->pos_of[slot];
    ASSERT(p < c->n && c->e[p].slot == slot);
    c->e[p] = c->e[--c->n];
    if (p < c->n)
        ix->pos_of[c->e[p].slot] = p;
    if (is_outside(ix, ix->st[slot].lat, ix->st[slot].lon))
        ix->outside--;
    ix->cell_of[slot] = NONE;
    ix->pos_of[slot] = NONE;
}

static void grid_free(StIndex *ix)
{
    if (!ix->cells)
        return;
    for (size_t i = 0; i < (size_t)ix->rows * ix->cols; i++)
        free(ix->cells[i].e);
    free(ix->cells);
    ix->cells = NULL;
}

/* (Re)builds the grid over the bounding box of the live stations, two passes so every
 * cell gets one exact allocation. */
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
    ix->cells = xcalloc((size_t)ix->rows * ix->cols, sizeof(*ix->cells));
    ix->outside = 0;
    for (size_t s = 0; s < ix->n_slots; s++)
        if (ix->pos_of[s] != NONE)
            ix->cells[cell_index(ix, ix->st[s].lat, ix->st[s].lon)].cap++;
    for (size_t i = 0; i < (size_t)ix->rows * ix->cols; i++)
        if (ix->cells[i].cap)
            ix->cells[i].e = xmalloc(ix->cells[i].cap * sizeof(Entry));
    for (size_t s = 0; s < ix->n_slots; s++)
        if (ix->pos_of[s] != NONE)
            cell_add(ix, (uint32_t)s);
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
    if (ix->outside > ix->n_live / 16 + 64)
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
    w->hmax = theta >= M_PI ? INFINITY : sin(theta * 0.5) * sin(theta * 0.5) * (1.0 + MARGIN_REL);
    double dlat_deg = theta / GEO_DEG2RAD;
    double lat_lo = lat - dlat_deg, lat_hi = lat + dlat_deg;
    w->r0 = clamp_idx(row_raw(ix, fmax(lat_lo, -90.0)), ix->rows);
    w->r1 = clamp_idx(row_raw(ix, fmin(lat_hi, 90.0)), ix->rows);
    w->n_col_ranges = 0;
    /* The cap's widest longitude spread is asin(sin theta / cos lat), reached poleward of
     * the centre; a cap touching a pole spans every longitude. */
    double s = theta < 1.5 ? sin(theta) / w->qcos : 2.0;
    if (lat_lo <= -90.0 || lat_hi >= 90.0 || !(s < 1.0)) {
        window_cols(ix, w, -180.0, 180.0);
        return true;
    }
    double dlon_deg = (asin(s) * (1.0 + MARGIN_REL) + MARGIN_ABS_RAD) / GEO_DEG2RAD;
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
static inline bool window_km(const Window *w, const Entry *e, double max_km, double *km)
{
    if (fabs(e->lat - w->qlat) > w->dlat)
        return false;
    double dl = fabs(e->lon - w->qlon);
    if (dl > M_PI)
        dl = 2.0 * M_PI - dl;
    if (dl > w->dlon)
        return false;
    double h = geo_hav_rad(w->qlat, w->qlon, w->qcos, e->lat, e->lon, e->cos_lat);
    if (h > w->hmax)
        return false;
    *km = geo_km_from_hav(h);
    return *km <= max_km;
}

static bool hit_less(double km, int64_t id, const StHit *h)
{
    return km < h->km || (km == h->km && id < h->st->id);
}

size_t stindex_nearest(const StIndex *ix, double lat, double lon, double max_km,
                       StEligibleFn eligible, void *arg, StHit *out, size_t max_out)
{
    Window w;
    if (max_out == 0 || !window_make(ix, lat, lon, max_km, &w))
        return 0;
    size_t n = 0;
    for (int k = 0; k < w.n_col_ranges; k++) {
        for (uint32_t r = w.r0; r <= w.r1; r++) {
            const Cell *row = &ix->cells[(size_t)r * ix->cols];
            for (uint32_t c = w.c0[k]; c <= w.c1[k]; c++) {
                const Cell *cell = &row[c];
                for (uint32_t i = 0; i < cell->n; i++) {
                    const Entry *e = &cell->e[i];
                    double km;
                    if (!window_km(&w, e, max_km, &km))
                        continue;
                    const StStation *st = &ix->st[e->slot];
                    if (n == max_out && !hit_less(km, st->id, &out[n - 1]))
                        continue;
                    if (eligible && !eligible(st, arg))
                        continue;
                    size_t j = n < max_out ? n++ : n - 1;
                    while (j > 0 && hit_less(km, st->id, &out[j - 1])) {
                        out[j] = out[j - 1];
                        j--;
                    }
                    out[j].st = st;
                    out[j].km = km;
                }
            }
        }
    }
    return n;
}

size_t stindex_within(const StIndex *ix, double lat, double lon, double max_km, StVisitFn visit,
                      void *arg)
{
    Window w;
    if (!window_make(ix, lat, lon, max_km, &w))
        return 0;
    size_t n = 0;
    for (int k = 0; k < w.n_col_ranges; k++) {
        for (uint32_t r = w.r0; r <= w.r1; r++) {
            const Cell *row = &ix->cells[(size_t)r * ix->cols];
            for (uint32_t c = w.c0[k]; c <= w.c1[k]; c++) {
                const Cell *cell = &row[c];
                for (uint32_t i = 0; i < cell->n; i++) {
                    const Entry *e = &cell->e[i];
                    double km;
                    if (!window_km(&w, e, max_km, &km))
                        continue;
                    n++;
                    if (visit)
                        visit(&ix->st[e->slot], km, arg);
                }
            }
        }
    }
    return n;
}
