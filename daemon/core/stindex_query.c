/*
 * stindex_query: fixed-radius queries over the grid. A query turns its circle into a window
 * of rows and one or two column ranges (two when it straddles +-180), prefetches the window's
 * cell headers, entries and station records up front so the rows' cache misses overlap, then
 * scans each row's column range as one contiguous span of the pool, plus any overflow chains.
 *
 * Exactness: cell ranges are derived from a conservative bounding box of the spherical cap
 * (latitude +-theta, longitude +-asin(sin theta / cos lat) bounded from above without trig,
 * whole longitude circle when the cap reaches a pole), inflated by 1e-7 relative; inclusion
 * itself is decided by geo_hav_rad()/geo_km_from_hav() on cached radians/cosines, which is
 * bit-identical to geo_km(). Cheaper tests before it only ever reject with a wide margin.
 */
#include "core/stindex_int.h"
#include "base/geo.h"

#define MARGIN_REL     1e-7
#define MARGIN_ABS_RAD 1e-12

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
    w->c0[w->n_col_ranges] = st_clamp_idx(st_col_raw(ix, lo), ix->cols);
    w->c1[w->n_col_ranges] = st_clamp_idx(st_col_raw(ix, hi), ix->cols);
    w->n_col_ranges++;
}

static bool window_make(const StIndex *ix, double lat, double lon, double max_km, Window *w)
{
    if (!(max_km >= 0.0) || !st_coord_ok(lat, lon) || ix->n_live == 0)
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
    w->r0 = st_clamp_idx(st_row_raw(ix, fmax(lat_lo, -90.0)), ix->rows);
    w->r1 = st_clamp_idx(st_row_raw(ix, fmin(lat_hi, 90.0)), ix->rows);
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
                for (uint32_t o = ix->cells[ci].ovf; o != ST_NONE; o = ix->ovf[o].next)
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
                for (uint32_t o = ix->cells[ci].ovf; o != ST_NONE; o = ix->ovf[o].next)
                    n += within_entry(ix, &w, &ix->ovf[o], max_km, visit, arg);
            }
        }
    }
    return n;
}
