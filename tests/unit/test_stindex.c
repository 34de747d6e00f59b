/*
 * test_stindex: property tests of the grid index against a brute-force scan with the same
 * geo_km(), on a Yuyao-sized box, a China-sized box and the whole globe (poles, the
 * antimeridian), with duplicate coordinates, stations constructed to sit exactly on the
 * circle's edge, random eligibility filters, and upsert/remove churn. Seeded, deterministic.
 */
#include "base/geo.h"
#include "core/stindex.h"
#include "t.h"
#include "trand.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    double lat0, lat1, lon0, lon1; /* box */
    double max_km;                 /* largest query radius */
} Box;

static const Box box_yuyao = {29.65, 30.35, 120.85, 121.45, 12.0};
static const Box box_china = {18.0, 54.0, 73.0, 135.0, 60.0};
static const Box box_world = {-90.0, 90.0, -180.0, 180.0, 3000.0};

/* The test's own copy of the live stations, the oracle's input. */
typedef struct {
    StStation *v;
    size_t n, cap;
    int64_t next_id;
} Model;

static void model_add(Model *m, StStation s)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
        T_ASSERT(m->v);
    }
    m->v[m->n++] = s;
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void rnd_point(const Box *b, double *lat, double *lon)
{
    /* round to 1e-4 deg sometimes, so exact duplicates also arise by chance */
    *lat = b->lat0 + trand01() * (b->lat1 - b->lat0);
    *lon = b->lon0 + trand01() * (b->lon1 - b->lon0);
    if (trand_next() % 4 == 0) {
        *lat = clamp(round(*lat * 1e2) / 1e2, -90, 90);
        *lon = clamp(round(*lon * 1e2) / 1e2, -180, 180);
    }
}

/* Destination from (lat, lon) along bearing brg (radians) at angular distance d. */
static void destination(double lat, double lon, double brg, double d, double *olat, double *olon)
{
    double p = lat * GEO_DEG2RAD, l = lon * GEO_DEG2RAD;
    double p2 = asin(sin(p) * cos(d) + cos(p) * sin(d) * cos(brg));
    double l2 = l + atan2(sin(brg) * sin(d) * cos(p), cos(d) - sin(p) * sin(p2));
    *olat = clamp(p2 / GEO_DEG2RAD, -90, 90);
    double x = fmod(l2 / GEO_DEG2RAD + 540.0, 360.0) - 180.0;
    *olon = clamp(x, -180, 180);
}

/* The last point along the bearing with geo_km <= km, and the first one beyond: found by
 * bisection on the angular distance, so the pair straddles the edge as tightly as doubles
 * allow. */
static void edge_pair(double lat, double lon, double brg, double km, double in[2], double out[2])
{
    double lo = 0.0, hi = km / GEO_EARTH_RADIUS_KM * 1.5 + 1e-9;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2, a, b;
        destination(lat, lon, brg, mid, &a, &b);
        if (geo_km(lat, lon, a, b) <= km)
            lo = mid;
        else
            hi = mid;
    }
    destination(lat, lon, brg, lo, &in[0], &in[1]);
    destination(lat, lon, brg, hi, &out[0], &out[1]);
}

typedef struct {
    uint64_t salt;
    uint32_t mod;   /* station eligible unless hash % mod == 0 (mod 0: all) */
    uint32_t flags; /* and it has all these flags */
} Filter;

static bool filter_ok(const StStation *st, void *arg)
{
    const Filter *f = arg;
    if ((st->flags & f->flags) != f->flags)
        return false;
    if (f->mod == 0)
        return true;
    uint64_t h = ((uint64_t)st->id ^ f->salt) * 0x9E3779B97F4A7C15ull;
    return (h >> 32) % f->mod != 0;
}

static int hit_cmp(const void *a, const void *b)
{
    const StHit *x = a, *y = b;
    if (x->km != y->km)
        return x->km < y->km ? -1 : 1;
    return x->st->id < y->st->id ? -1 : x->st->id > y->st->id;
}

static size_t brute(const Model *m, double lat, double lon, double max_km, const Filter *f,
                    StHit *all)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        double km = geo_km(lat, lon, m->v[i].lat, m->v[i].lon);
        if (km <= max_km && (!f || filter_ok(&m->v[i], (void *)f))) {
            all[n].st = &m->v[i];
            all[n].km = km;
            n++;
        }
    }
    qsort(all, n, sizeof(*all), hit_cmp);
    return n;
}

typedef struct {
    int64_t *ids;
    size_t n;
} Visit;

static void visit_cb(const StStation *st, double km, void *arg)
{
    Visit *v = arg;
    T_ASSERT(geo_km(0, 0, 0, 0) == 0 && km >= 0);
    v->ids[v->n++] = st->id;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t stat_queries, stat_hits, stat_edge_in, stat_edge_checked;

/* One query compared both ways: nearest (top k, filtered) and within (all, unfiltered). */
static void check_query(const StIndex *ix, const Model *m, double lat, double lon, double max_km,
                        StHit *all, StHit *got, int64_t *ids)
{
    Filter f = {trand_next(), (uint32_t)(trand_next() % 4), 0};
    if (trand_next() % 3 == 0)
        f.flags = ST_ACTIVE;
    if (trand_next() % 5 == 0)
        f.flags |= ST_MEAL;
    size_t ks[] = {1, 3, 10, m->n + 1};
    size_t k = ks[trand_next() % 4];
    size_t nb = brute(m, lat, lon, max_km, &f, all);
    size_t ng = stindex_nearest(ix, lat, lon, max_km, filter_ok, &f, got, k);
    size_t want = nb < k ? nb : k;
    if (ng != want)
        t_fail(__FILE__, __LINE__, "query (%.9f, %.9f) r=%.17g k=%zu: got %zu hits, brute %zu", lat,
               lon, max_km, k, ng, want);
    for (size_t i = 0; i < ng; i++) {
        if (got[i].st->id != all[i].st->id || got[i].km != all[i].km)
            t_fail(__FILE__, __LINE__,
                   "query (%.9f, %.9f) r=%.17g hit %zu: id %lld km %.17g, "
                   "brute id %lld km %.17g",
                   lat, lon, max_km, i, (long long)got[i].st->id, got[i].km,
                   (long long)all[i].st->id, all[i].km);
        T_EQ_INT(got[i].st->user, (size_t)got[i].st->id * 7);
    }
    /* within: every station, unfiltered */
    size_t na = brute(m, lat, lon, max_km, NULL, all);
    Visit v = {ids, 0};
    size_t nw = stindex_within(ix, lat, lon, max_km, visit_cb, &v);
    T_EQ_INT(nw, na);
    T_EQ_INT(v.n, na);
    qsort(ids, v.n, sizeof(*ids), id_cmp);
    for (size_t i = 0; i < na; i++)
        ids[na + i] = all[i].st->id;
    qsort(ids + na, na, sizeof(*ids), id_cmp);
    for (size_t i = 0; i < na; i++)
        T_EQ_INT(ids[i], ids[na + i]);
    stat_queries++;
    stat_hits += ng;
}

static StStation mk(Model *m, double lat, double lon)
{
    StStation s = {m->next_id, lat, lon, 0, 0};
    m->next_id += 1 + (int64_t)(trand_next() % 3);
    s.user = (size_t)s.id * 7;
    s.flags = (uint32_t)(trand_next() % 8);
    return s;
}

static void run_box(const Box *b, size_t n, size_t queries, uint64_t seed)
{
    trand_seed(seed);
    Model m = {0};
    m.next_id = 1000;
    for (size_t i = 0; i < n; i++) {
        double lat, lon;
        if (i > 0 && trand_next() % 10 == 0) { /* duplicate coordinate of an earlier station */
            const StStation *o = &m.v[trand_next() % m.n];
            lat = o->lat, lon = o->lon;
        } else {
            rnd_point(b, &lat, &lon);
        }
        model_add(&m, mk(&m, lat, lon));
    }
    /* edge stations: for fixed radii, the last point inside and the first outside */
    double edge_q[64][3];
    for (int i = 0; i < 64; i++) {
        double lat, lon, in[2], out[2];
        rnd_point(b, &lat, &lon);
        double r = trand01() * b->max_km + 0.001;
        edge_pair(lat, lon, trand01() * 2 * M_PI, r, in, out);
        model_add(&m, mk(&m, in[0], in[1]));
        model_add(&m, mk(&m, out[0], out[1]));
        model_add(&m, mk(&m, in[0], in[1])); /* a tie on the edge */
        edge_q[i][0] = lat, edge_q[i][1] = lon, edge_q[i][2] = r;
    }
    StIndex *ix = stindex_new(m.v, m.n);
    T_ASSERT(ix);
    T_EQ_INT(stindex_count(ix), m.n);

    size_t cap = m.n * 2 + 4096;
    StHit *all = malloc(cap * sizeof(*all)), *got = malloc(cap * sizeof(*got));
    int64_t *ids = malloc(2 * cap * sizeof(*ids));
    T_ASSERT(all && got && ids);

    for (int round = 0; round < 2; round++) {
        for (size_t q = 0; q < queries; q++) {
            double lat, lon, r = trand01() * b->max_km;
            if (q % 4 == 0) { /* radius exactly the distance to some station */
                const StStation *s = &m.v[trand_next() % m.n];
                rnd_point(b, &lat, &lon);
                if (q % 8 == 0) { /* near it, so the circle is small */
                    lat = clamp(s->lat + (trand01() - 0.5) * 0.1, -90, 90);
                    lon = clamp(s->lon + (trand01() - 0.5) * 0.1, -180, 180);
                }
                r = geo_km(lat, lon, s->lat, s->lon);
            } else if (q % 4 == 1) {
                rnd_point(b, &lat, &lon);
                r = 0.0;
                if (q % 8 == 1) { /* zero radius on a station: finds it and its twins */
                    const StStation *s = &m.v[trand_next() % m.n];
                    lat = s->lat, lon = s->lon;
                }
            } else {
                rnd_point(b, &lat, &lon);
            }
            check_query(ix, &m, lat, lon, r, all, got, ids);
        }
        for (int i = 0; i < 64; i++) {
            check_query(ix, &m, edge_q[i][0], edge_q[i][1], edge_q[i][2], all, got, ids);
            /* and the edge station itself is inside */
            size_t na = stindex_within(ix, edge_q[i][0], edge_q[i][1], edge_q[i][2], NULL, NULL);
            stat_edge_checked++;
            stat_edge_in += na > 0;
        }
        /* churn: remove, move, insert (some outside the original box) */
        for (size_t op = 0; op < n / 2 + 100; op++) {
            uint64_t kind = trand_next() % 4;
            if (kind == 0 && m.n > 0) {
                size_t i = trand_next() % m.n;
                T_ASSERT(stindex_remove(ix, m.v[i].id));
                T_ASSERT(!stindex_get(ix, m.v[i].id));
                T_ASSERT(!stindex_remove(ix, m.v[i].id));
                m.v[i] = m.v[--m.n];
            } else if (kind == 1 && m.n > 0) {
                size_t i = trand_next() % m.n;
                rnd_point(b, &m.v[i].lat, &m.v[i].lon);
                m.v[i].flags = (uint32_t)(trand_next() % 8);
                T_ASSERT(stindex_upsert(ix, &m.v[i]));
            } else {
                double lat, lon;
                Box wide = *b;
                if (kind == 3) { /* outside the original box, up to a few degrees off */
                    wide.lat0 = clamp(b->lat0 - 3, -90, 90),
                    wide.lat1 = clamp(b->lat1 + 3, -90, 90);
                    wide.lon0 = clamp(b->lon0 - 5, -180, 180);
                    wide.lon1 = clamp(b->lon1 + 5, -180, 180);
                }
                rnd_point(&wide, &lat, &lon);
                StStation s = mk(&m, lat, lon);
                T_ASSERT(stindex_upsert(ix, &s));
                model_add(&m, s);
            }
        }
        T_EQ_INT(stindex_count(ix), m.n);
        for (size_t i = 0; i < m.n; i++) {
            const StStation *s = stindex_get(ix, m.v[i].id);
            T_ASSERT(s && s->lat == m.v[i].lat && s->lon == m.v[i].lon && s->flags == m.v[i].flags);
        }
    }
    /* queries in the wider box after churn */
    Box wide = {clamp(b->lat0 - 3, -90, 90), clamp(b->lat1 + 3, -90, 90),
                clamp(b->lon0 - 5, -180, 180), clamp(b->lon1 + 5, -180, 180), b->max_km};
    for (size_t q = 0; q < queries / 2; q++) {
        double lat, lon;
        rnd_point(&wide, &lat, &lon);
        check_query(ix, &m, lat, lon, trand01() * b->max_km, all, got, ids);
    }
    printf("  %zu stations: %zu queries, %zu nearest hits, edge stations inside %zu/%zu\n", n,
           stat_queries, stat_hits, stat_edge_in, stat_edge_checked);
    T_EQ_INT(stat_edge_in, stat_edge_checked);
    stindex_free(ix);
    free(all);
    free(got);
    free(ids);
    free(m.v);
}

static void test_yuyao_box(void)
{
    run_box(&box_yuyao, 3000, 3000, 0x1234567ull);
}

static void test_china_box(void)
{
    run_box(&box_china, 20000, 1500, 0xc0ffee11ull);
}

static void test_world_box(void)
{
    run_box(&box_world, 5000, 1500, 0xdeadbeef5ull);
}

/* Poles and the antimeridian on purpose: clusters right at +-180 and at +-90. */
static void test_poles_and_antimeridian(void)
{
    Box polar = {85.0, 90.0, -180.0, 180.0, 800.0};
    run_box(&polar, 2000, 1000, 0x9010ull);
    Box dateline = {-10.0, 10.0, 179.0, 180.0, 300.0};
    run_box(&dateline, 1000, 500, 0xda7e1ull);
    Box dateline_w = {-10.0, 10.0, -180.0, -179.0, 300.0};
    run_box(&dateline_w, 1000, 500, 0xda7e2ull);
}

/* A tiny cell forces many cells and the cap on grid size. */
static void test_small_cells(void)
{
    trand_seed(77);
    Model m = {0};
    m.next_id = 1;
    for (int i = 0; i < 500; i++) {
        double lat, lon;
        rnd_point(&box_china, &lat, &lon);
        model_add(&m, mk(&m, lat, lon));
    }
    StIndex *ix = stindex_new_sized(m.v, m.n, 0.0001);
    T_ASSERT(ix);
    StHit all[600], got[600];
    int64_t ids[1200];
    for (int q = 0; q < 300; q++) {
        double lat, lon;
        rnd_point(&box_china, &lat, &lon);
        check_query(ix, &m, lat, lon, trand01() * 500, all, got, ids);
    }
    stindex_free(ix);
    free(m.v);
}

static void test_bad_input(void)
{
    StStation s[3] = {
        {1, 30.0, 121.0, ST_ACTIVE, 0}, {2, 30.1, 121.1, 0, 0}, {1, 30.2, 121.2, 0, 0}};
    T_ASSERT(!stindex_new(s, 3)); /* repeated id */
    s[2].id = 3;
    s[2].lat = 91.0;
    T_ASSERT(!stindex_new(s, 3));
    s[2].lat = NAN;
    T_ASSERT(!stindex_new(s, 3));
    T_ASSERT(!stindex_new_sized(s, 2, 0.0));
    s[2].lat = 30.2;
    StIndex *ix = stindex_new(s, 3);
    T_ASSERT(ix);
    StStation bad = {4, 0.0, 181.0, 0, 0};
    T_ASSERT(!stindex_upsert(ix, &bad));
    T_EQ_INT(stindex_count(ix), 3);
    StHit h[4];
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, NAN, NULL, NULL, h, 4), 0);
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, -1.0, NULL, NULL, h, 4), 0);
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, 100.0, NULL, NULL, h, 0), 0);
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, 0.0, NULL, NULL, h, 4), 1);
    T_EQ_INT(h[0].st->id, 1);
    T_ASSERT(h[0].km == 0.0);
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, 100.0, NULL, NULL, h, 4), 3);
    T_EQ_INT(h[2].st->id, 3);
    T_ASSERT(!stindex_remove(ix, 99));
    stindex_free(ix);
    stindex_free(NULL);

    /* empty index, then growth from nothing (every insert is outside the 1x1 grid) */
    ix = stindex_new(NULL, 0);
    T_ASSERT(ix);
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, 100.0, NULL, NULL, h, 4), 0);
    for (int i = 0; i < 300; i++) {
        StStation a = {i, 29.0 + i * 0.01, 120.0 + i * 0.01, 0, 0};
        T_ASSERT(stindex_upsert(ix, &a));
    }
    T_EQ_INT(stindex_nearest(ix, 30.0, 121.0, 1.0, NULL, NULL, h, 4), 1);
    T_EQ_INT(h[0].st->id, 100);
    stindex_free(ix);
}

static const TCase cases[] = {
    {"stindex_bad_input", test_bad_input, 0},
    {"stindex_yuyao_box", test_yuyao_box, 240},
    {"stindex_china_box", test_china_box, 240},
    {"stindex_world_box", test_world_box, 240},
    {"stindex_poles_and_antimeridian", test_poles_and_antimeridian, 240},
    {"stindex_small_cells", test_small_cells, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
