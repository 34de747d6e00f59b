/*
 * test_coverage: a hand-made county whose every figure is worked out in the comments
 * (edge of the circle, inactive and non-meal stations, far listed villages, zero elderly,
 * several towns), random counties against a brute-force scan, and the greedy plan against
 * a naive greedy and the exhaustive optimum (within the H(n) <= 1 + ln n bound).
 */
#include "reports/coverage.h"
#include "t.h"
#include "trand.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define AM (ST_ACTIVE | ST_MEAL)

static double minutes_to(const CovVillage *v, double lat, double lon)
{
    return geo_minutes(&geo_model_default, v->area, geo_km(v->lat, v->lon, lat, lon));
}

/* Largest latitude north of (lat0, lon) still inside the circle for this area kind; *out
 * gets the next double, just outside. Bisection on doubles. */
static double edge_lat(double lat0, double lon, GeoAreaKind k, double *out)
{
    CovVillage v = {0, 0, lat0, lon, k, 0, false};
    double lo = lat0, hi = lat0 + 1.0;
    for (;;) {
        double mid = lo + (hi - lo) / 2;
        if (mid == lo || mid == hi)
            break;
        if (minutes_to(&v, mid, lon) <= 15.0)
            lo = mid;
        else
            hi = mid;
    }
    T_ASSERT(minutes_to(&v, lo, lon) <= 15.0 && minutes_to(&v, hi, lon) > 15.0);
    T_ASSERT(nextafter(lo, 90.0) == hi);
    *out = hi;
    return lo;
}

/*
 * Stations:                          Villages (town, area, elderly):
 *  10 active+meal (30.0, 121.0)        V0 t0 rural 120  0.02 deg N of 10: 2.2239 km, 6.2269 min
 *  20 meal, INACTIVE (30.2, 121.0)     V1 t0 rural  80  exactly on 10's 15-min edge (5.3571 km)
 *  30 active+meal (30.5, 121.5)        V1b t0 rural 50  one double further north: outside
 *  40 active, home care only (30.3,    V2 t0 URBAN 200  0.04 deg N of 10: 4.4478 km x 3.9 = 17.35
 *     121.3), lists V4                    min (as rural it would be 12.45 min)
 *  50 meal, INACTIVE, lists V6         V3 t1 rural 100  on top of 20 (inactive): not covered
 *  60 and 70 active+meal, both at      V4 t1 mountain 60  on top of 40 (no meal): not covered
 *     (32.01, 121.0): a tie             V5 t1 rural  90  (31.0, 122.0), 73.31 km from 30, listed
 *  Service areas: 10->V0, 30->V5,         by 30: covered, 205.26 min shown; approx centroid
 *  40->V4, 50->V6, 999 (unknown)->V3   V6 t1 rural   0  listed by 50 (inactive): not covered
 *                                      V7 t2 rural   0  (30.0, 121.01): 0.96298 km, 2.6963 min
 *                                      V8 t2 rural   0  (32.0, 121.0): 1.112 km to 60 and 70
 * Town 0: 4 villages, 2 covered (V0, V1) = 0.5; elderly 450, covered 200 = 0.4444
 * Town 1: 4 villages, 1 covered (V5) = 0.25; elderly 250, covered 90 = 0.36; 1 approx
 * Town 2: 2 villages, 2 covered = 1.0; elderly 0 -> rate_elderly 0 (no division by zero)
 * Town 3: no villages: everything 0
 * County: 10 villages, 5 covered = 0.5; elderly 700, covered 290 = 0.414285714
 */
static void test_hand_county(void)
{
    double v1b_lat, v1_lat = edge_lat(30.0, 121.0, GEO_RURAL, &v1b_lat);
    T_NEAR(v1_lat, 30.0481778766, 1e-9); /* 30 + (7.5 / 1.4) km / R in degrees */
    StStation st[] = {
        {10, 30.0, 121.0, AM, 0},      {20, 30.2, 121.0, ST_MEAL, 1},
        {30, 30.5, 121.5, AM, 2},      {40, 30.3, 121.3, ST_ACTIVE | ST_HOME_CARE, 3},
        {50, 30.4, 121.4, ST_MEAL, 4}, {70, 32.01, 121.0, AM, 5},
        {60, 32.01, 121.0, AM, 6},
    };
    CovVillage v[] = {
        {330281001, 0, 30.02, 121.0, GEO_RURAL, 120, false},
        {330281002, 0, v1_lat, 121.0, GEO_RURAL, 80, false},
        {330281003, 0, v1b_lat, 121.0, GEO_RURAL, 50, false},
        {330281004, 0, 30.04, 121.0, GEO_URBAN, 200, false},
        {330281101, 1, 30.2, 121.0, GEO_RURAL, 100, false},
        {330281102, 1, 30.3, 121.3, GEO_MOUNTAIN, 60, false},
        {330281103, 1, 31.0, 122.0, GEO_RURAL, 90, true},
        {330281104, 1, 33.0, 123.0, GEO_RURAL, 0, false},
        {330281201, 2, 30.0, 121.01, GEO_RURAL, 0, false},
        {330281202, 2, 32.0, 121.0, GEO_RURAL, 0, false},
    };
    CovServiceArea sa[] = {{10, 0}, {30, 6}, {40, 5}, {50, 7}, {999, 4}};
    StIndex *ix = stindex_new(st, ARRAY_LEN(st));
    T_ASSERT(ix);
    CovReport *r = coverage_compute(v, ARRAY_LEN(v), 4, ix, sa, ARRAY_LEN(sa), &geo_model_default);
    T_ASSERT(r);
    const CovVillageResult *x = r->village;
    /* V0: reached and listed by 10 */
    T_ASSERT(x[0].covered && x[0].reached && x[0].listed);
    T_EQ_INT(x[0].station_id, 10);
    T_NEAR(x[0].minutes, 6.226924493, 1e-6);
    /* V1 on the edge: in; V1b one double beyond: out */
    T_ASSERT(x[1].covered && x[1].reached && !x[1].listed);
    T_EQ_INT(x[1].station_id, 10);
    T_ASSERT(x[1].minutes <= 15.0);
    T_NEAR(x[1].minutes, 15.0, 1e-9);
    T_ASSERT(!x[2].covered && !x[2].reached && !x[2].listed);
    T_EQ_INT(x[2].station_id, 0);
    T_ASSERT(isinf(x[2].minutes));
    /* V2 urban: 17.35 min */
    T_ASSERT(!x[3].covered);
    /* V3 on an inactive meal station, listed by an unknown station */
    T_ASSERT(!x[4].covered && !x[4].listed);
    /* V4 on an active station without meal delivery, which lists it */
    T_ASSERT(!x[5].covered && !x[5].listed);
    /* V5 listed by 30 from 73 km */
    T_ASSERT(x[6].covered && !x[6].reached && x[6].listed);
    T_EQ_INT(x[6].station_id, 30);
    T_NEAR(x[6].minutes, 205.262450971, 1e-6);
    /* V6 listed by an inactive station */
    T_ASSERT(!x[7].covered);
    /* V7, V8 (tie between 60 and 70: lowest id) */
    T_ASSERT(x[8].covered && x[8].reached);
    T_NEAR(x[8].minutes, 2.696337398, 1e-6);
    T_ASSERT(x[9].covered);
    T_EQ_INT(x[9].station_id, 60);

    const CovTally *t = r->town;
    T_EQ_INT(t[0].villages, 4);
    T_EQ_INT(t[0].covered, 2);
    T_NEAR(t[0].rate, 0.5, 1e-12);
    T_EQ_INT(t[0].elderly, 450);
    T_EQ_INT(t[0].elderly_covered, 200);
    T_NEAR(t[0].rate_elderly, 200.0 / 450.0, 1e-12);
    T_EQ_INT(t[1].villages, 4);
    T_EQ_INT(t[1].covered, 1);
    T_NEAR(t[1].rate, 0.25, 1e-12);
    T_EQ_INT(t[1].elderly, 250);
    T_EQ_INT(t[1].elderly_covered, 90);
    T_NEAR(t[1].rate_elderly, 0.36, 1e-12);
    T_EQ_INT(t[1].approx, 1);
    T_EQ_INT(t[2].villages, 2);
    T_EQ_INT(t[2].covered, 2);
    T_NEAR(t[2].rate, 1.0, 1e-12);
    T_EQ_INT(t[2].elderly, 0);
    T_ASSERT(t[2].rate_elderly == 0.0);
    T_EQ_INT(t[3].villages, 0);
    T_ASSERT(t[3].rate == 0.0 && t[3].rate_elderly == 0.0);
    T_EQ_INT(r->county.villages, 10);
    T_EQ_INT(r->county.covered, 5);
    T_NEAR(r->county.rate, 0.5, 1e-12);
    T_EQ_INT(r->county.elderly, 700);
    T_EQ_INT(r->county.elderly_covered, 290);
    T_NEAR(r->county.rate_elderly, 0.414285714, 1e-9);
    T_EQ_INT(r->county.approx, 1);
    coverage_report_free(r);

    /* station 20 reopens: V3 covered (0 km), V1b still not (it is 17 km from 20) */
    StStation s20 = st[1];
    s20.flags |= ST_ACTIVE;
    T_ASSERT(stindex_upsert(ix, &s20));
    r = coverage_compute(v, ARRAY_LEN(v), 4, ix, sa, ARRAY_LEN(sa), &geo_model_default);
    T_ASSERT(r && r->village[4].covered && r->village[4].minutes == 0.0);
    T_EQ_INT(r->county.covered, 6);
    coverage_report_free(r);
    stindex_free(ix);
}

/* The edge for each area kind, along random directions (not only meridians). */
static void test_edge_every_area_kind(void)
{
    trand_seed(4242);
    for (int i = 0; i < 300; i++) {
        GeoAreaKind k = (GeoAreaKind)(i % GEO_AREA_KINDS);
        double slat = 29.7 + trand01() * 0.6, slon = 120.9 + trand01() * 0.5;
        double b = trand01() * 2 * M_PI, db = cos(b), dl = sin(b);
        /* bisection on the parameter t of (slat + t db, slon + t dl) */
        CovVillage probe = {0, 0, slat, slon, k, 0, false};
        double lo = 0, hi = 0.2;
        for (int j = 0; j < 200; j++) {
            double mid = (lo + hi) / 2;
            if (minutes_to(&probe, slat + mid * db, slon + mid * dl) <= 15.0)
                lo = mid;
            else
                hi = mid;
        }
        CovVillage v[2] = {{1, 0, slat + lo * db, slon + lo * dl, k, 10, false},
                           {2, 0, slat + hi * db, slon + hi * dl, k, 10, false}};
        StStation st = {7, slat, slon, AM, 0};
        StIndex *ix = stindex_new(&st, 1);
        CovReport *r = coverage_compute(v, 2, 1, ix, NULL, 0, &geo_model_default);
        T_ASSERT(r);
        for (int j = 0; j < 2; j++) {
            bool in = minutes_to(&v[j], slat, slon) <= 15.0;
            T_ASSERT(r->village[j].covered == in);
        }
        T_ASSERT(r->village[0].covered); /* the inside point really is on the edge */
        T_NEAR(r->village[0].minutes, 15.0, 1e-9);
        coverage_report_free(r);
        stindex_free(ix);
    }
}

/* Random counties against a direct scan of every station. */
static void test_random_vs_brute(void)
{
    trand_seed(0xabc123);
    for (int round = 0; round < 20; round++) {
        size_t nv = 300, ns = 40 + trand_next() % 40, na = 30, ntown = 5;
        CovVillage *v = calloc(nv, sizeof(*v));
        StStation *st = calloc(ns, sizeof(*st));
        CovServiceArea *sa = calloc(na, sizeof(*sa));
        T_ASSERT(v && st && sa);
        for (size_t i = 0; i < ns; i++)
            st[i] = (StStation){(int64_t)(100 + i), 29.7 + trand01() * 0.6, 120.9 + trand01() * 0.6,
                                (uint32_t)(trand_next() % 8), i};
        for (size_t i = 0; i < nv; i++) {
            v[i] = (CovVillage){(int64_t)i,
                                (uint32_t)(trand_next() % ntown),
                                29.7 + trand01() * 0.6,
                                120.9 + trand01() * 0.6,
                                (GeoAreaKind)(trand_next() % 3),
                                (uint32_t)(trand_next() % 500),
                                trand_next() % 7 == 0};
            if (i % 10 == 0) { /* on a station */
                const StStation *s = &st[trand_next() % ns];
                v[i].lat = s->lat, v[i].lon = s->lon;
            }
        }
        for (size_t i = 0; i < na; i++)
            sa[i] = (CovServiceArea){(int64_t)(100 + trand_next() % (ns + 5)), trand_next() % nv};
        StIndex *ix = stindex_new(st, ns);
        T_ASSERT(ix);
        TravelModel m = geo_model_default;
        if (round % 2)
            m.circle_min = 5.0 + trand01() * 20;
        CovReport *r = coverage_compute(v, nv, ntown, ix, sa, na, &m);
        T_ASSERT(r);
        CovTally county = {0};
        for (size_t i = 0; i < nv; i++) {
            bool reached = false, listed = false;
            int64_t best = 0, lbest = 0;
            double bmin = INFINITY;
            for (size_t s = 0; s < ns; s++) {
                if (!coverage_qualifies(&st[s]))
                    continue;
                double mins =
                    geo_minutes(&m, v[i].area, geo_km(v[i].lat, v[i].lon, st[s].lat, st[s].lon));
                if (mins <= m.circle_min && (mins < bmin || (mins == bmin && st[s].id < best))) {
                    reached = true, bmin = mins, best = st[s].id;
                }
            }
            for (size_t a = 0; a < na; a++) {
                if (sa[a].village != i || sa[a].station_id >= (int64_t)(100 + ns))
                    continue;
                if (!coverage_qualifies(&st[sa[a].station_id - 100]))
                    continue;
                if (!listed || sa[a].station_id < lbest)
                    lbest = sa[a].station_id;
                listed = true;
            }
            const CovVillageResult *x = &r->village[i];
            T_ASSERT(x->reached == reached && x->listed == listed);
            T_ASSERT(x->covered == (reached || listed));
            T_EQ_INT(x->station_id, reached ? best : listed ? lbest : 0);
            if (reached)
                T_ASSERT(x->minutes == bmin);
            county.villages++;
            county.covered += x->covered;
            county.elderly += v[i].elderly;
            county.elderly_covered += x->covered ? v[i].elderly : 0;
        }
        T_EQ_INT(r->county.covered, county.covered);
        T_EQ_INT(r->county.elderly_covered, county.elderly_covered);
        size_t sum = 0;
        for (size_t t = 0; t < ntown; t++)
            sum += r->town[t].covered;
        T_EQ_INT(sum, county.covered);
        coverage_report_free(r);
        stindex_free(ix);
        free(v);
        free(st);
        free(sa);
    }
}

static void test_bad_input(void)
{
    CovVillage v = {1, 0, 30.0, 121.0, GEO_RURAL, 1, false};
    StIndex *ix = stindex_new(NULL, 0);
    T_ASSERT(ix);
    T_ASSERT(!coverage_compute(&v, 1, 0, ix, NULL, 0, &geo_model_default)); /* town 0 of 0 */
    CovServiceArea sa = {1, 5};
    T_ASSERT(!coverage_compute(&v, 1, 1, ix, &sa, 1, &geo_model_default));
    TravelModel m = geo_model_default;
    m.speed_kmh[0] = -1;
    T_ASSERT(!coverage_compute(&v, 1, 1, ix, NULL, 0, &m));
    CovReport *r = coverage_compute(NULL, 0, 0, ix, NULL, 0, &geo_model_default);
    T_ASSERT(r && r->county.villages == 0 && r->county.rate == 0.0);
    CovPlan *p = coverage_plan(NULL, 0, r, &geo_model_default, NULL, 0, 0.95);
    T_ASSERT(p && p->reached && p->n_steps == 0);
    coverage_plan_free(p);
    coverage_report_free(r);
    r = coverage_compute(&v, 1, 1, ix, NULL, 0, &geo_model_default);
    T_ASSERT(r);
    T_ASSERT(!coverage_plan(&v, 1, r, &geo_model_default, NULL, 0, 1.5));
    CovSite bad = {95.0, 0.0, SIZE_MAX};
    T_ASSERT(!coverage_plan(&v, 1, r, &geo_model_default, &bad, 1, 0.5));
    coverage_report_free(r);
    coverage_report_free(NULL);
    coverage_plan_free(NULL);
    stindex_free(ix);
}

/*
 * Five uncovered rural villages on a meridian at 0, 4, 8, 20 and 40 km (circle 5.357 km):
 * centroid candidates cover c0 {0,4}, c1 {0,4,8}, c2 {4,8}, c3 {20}, c4 {40}.
 * Target 0.8 (4 of 5): c1 (+3, 0.6), then c3 (+1, 0.8; ties with c4, lowest index wins).
 * Target 1.0: a third step c4 (+1, 1.0). Supplied far-away sites: nothing helps.
 */
static void test_plan_hand(void)
{
    static const double km[5] = {0, 4, 8, 20, 40};
    CovVillage v[5];
    for (int i = 0; i < 5; i++)
        v[i] = (CovVillage){
            i, 0, 30.0 + km[i] / (GEO_EARTH_RADIUS_KM * GEO_DEG2RAD), 121.0, GEO_RURAL, 10, false};
    StIndex *ix = stindex_new(NULL, 0);
    CovReport *r = coverage_compute(v, 5, 1, ix, NULL, 0, &geo_model_default);
    T_ASSERT(r && r->county.covered == 0);
    CovPlan *p = coverage_plan(v, 5, r, &geo_model_default, NULL, 0, 0.8);
    T_ASSERT(p && p->reached);
    T_EQ_INT(p->n_sites, 5);
    T_EQ_INT(p->need, 4);
    T_EQ_INT(p->n_steps, 2);
    T_EQ_INT(p->step[0].candidate, 1);
    T_EQ_INT(p->step[0].newly_covered, 3);
    T_NEAR(p->step[0].rate, 0.6, 1e-12);
    T_EQ_INT(p->step[1].candidate, 3);
    T_EQ_INT(p->site[3].village, 3);
    T_EQ_INT(p->step[1].newly_covered, 1);
    T_EQ_INT(p->step[1].covered, 4);
    T_NEAR(p->step[1].rate, 0.8, 1e-12);
    coverage_plan_free(p);
    p = coverage_plan(v, 5, r, &geo_model_default, NULL, 0, 1.0);
    T_ASSERT(p && p->reached && p->n_steps == 3 && p->step[2].candidate == 4);
    T_NEAR(p->step[2].rate, 1.0, 1e-12);
    coverage_plan_free(p);
    size_t cnt;
    uint32_t mask;
    T_ASSERT(coverage_plan_optimal(v, 5, r, &geo_model_default, NULL, 0, 0.8, &cnt, &mask));
    T_EQ_INT(cnt, 2);
    T_EQ_INT(mask, (1u << 1) | (1u << 3));
    /* supplied sites: one far away, one at 8 km (covers 4 and 8) */
    CovSite s[2] = {{35.0, 121.0, SIZE_MAX}, {v[2].lat, 121.0, SIZE_MAX}};
    p = coverage_plan(v, 5, r, &geo_model_default, s, 2, 0.8);
    T_ASSERT(p && !p->reached && p->n_steps == 1 && p->step[0].candidate == 1);
    T_EQ_INT(p->step[0].newly_covered, 2);
    coverage_plan_free(p);
    T_ASSERT(!coverage_plan_optimal(v, 5, r, &geo_model_default, s, 2, 0.8, &cnt, &mask));
    /* already at the target: no steps */
    p = coverage_plan(v, 5, r, &geo_model_default, NULL, 0, 0.0);
    T_ASSERT(p && p->reached && p->n_steps == 0);
    coverage_plan_free(p);
    coverage_report_free(r);
    stindex_free(ix);
}

static double harmonic(size_t n)
{
    double h = 0;
    for (size_t i = 1; i <= n; i++)
        h += 1.0 / (double)i;
    return h;
}

/* Random small counties: greedy equals a naive greedy step for step, and is within H(need)
 * of the exhaustive optimum. */
static void test_plan_vs_optimal(void)
{
    trand_seed(0x5151);
    const TravelModel *m = &geo_model_default;
    double worst = 1.0;
    size_t cases = 0, worse = 0;
    for (int round = 0; round < 400; round++) {
        size_t nv = 20 + trand_next() % 25, ns = trand_next() % 4;
        double span = 0.08 + trand01() * 0.14; /* 9 to 24 km */
        CovVillage v[64];
        StStation st[4];
        for (size_t i = 0; i < nv; i++)
            v[i] = (CovVillage){(int64_t)i,
                                0,
                                30.0 + trand01() * span,
                                121.0 + trand01() * span,
                                (GeoAreaKind)(trand_next() % 3),
                                1,
                                false};
        for (size_t i = 0; i < ns; i++)
            st[i] =
                (StStation){(int64_t)i, 30.0 + trand01() * span, 121.0 + trand01() * span, AM, 0};
        StIndex *ix = stindex_new(st, ns);
        CovReport *r = coverage_compute(v, nv, 1, ix, NULL, 0, m);
        T_ASSERT(r);
        CovSite sites[20];
        size_t n_sites = 0;
        const CovSite *sp = NULL;
        if (nv - r->county.covered > 20 || round % 2) {
            n_sites = 12 + trand_next() % 9;
            for (size_t i = 0; i < n_sites; i++)
                sites[i] = (CovSite){30.0 + trand01() * span, 121.0 + trand01() * span, SIZE_MAX};
            sp = sites;
        }
        static const double targets[] = {0.5, 0.7, 0.8, 0.9, 0.95, 1.0};
        double target = targets[trand_next() % ARRAY_LEN(targets)];
        CovPlan *p = coverage_plan(v, nv, r, m, sp, n_sites, target);
        T_ASSERT(p);

        /* naive greedy over the same candidates */
        bool cov[64];
        for (size_t i = 0; i < nv; i++)
            cov[i] = r->village[i].covered;
        size_t count = r->county.covered, steps = 0;
        while (count < p->need) {
            size_t best = SIZE_MAX, bgain = 0;
            for (size_t c = 0; c < p->n_sites; c++) {
                size_t g = 0;
                for (size_t i = 0; i < nv; i++)
                    g += !cov[i] && minutes_to(&v[i], p->site[c].lat, p->site[c].lon) <= 15.0;
                if (g > bgain)
                    bgain = g, best = c;
            }
            if (best == SIZE_MAX)
                break;
            T_ASSERT(steps < p->n_steps);
            T_EQ_INT(p->step[steps].candidate, best);
            T_EQ_INT(p->step[steps].newly_covered, bgain);
            for (size_t i = 0; i < nv; i++)
                cov[i] |= minutes_to(&v[i], p->site[best].lat, p->site[best].lon) <= 15.0;
            count += bgain;
            T_EQ_INT(p->step[steps].covered, count);
            steps++;
        }
        T_EQ_INT(p->n_steps, steps);
        T_ASSERT(p->reached == (count >= p->need));

        size_t opt;
        uint32_t mask;
        bool ok = coverage_plan_optimal(v, nv, r, m, sp, n_sites, target, &opt, &mask);
        T_ASSERT(ok == p->reached);
        if (ok && opt > 0) {
            size_t extra = p->need - p->covered_before;
            T_ASSERT(p->n_steps >= opt);
            T_ASSERT((double)p->n_steps <= harmonic(extra) * (double)opt + 1e-9);
            double ratio = (double)p->n_steps / (double)opt;
            worst = ratio > worst ? ratio : worst;
            worse += p->n_steps > opt;
            cases++;
        }
        coverage_plan_free(p);
        coverage_report_free(r);
        stindex_free(ix);
    }
    printf("  greedy vs optimal: %zu cases with steps, greedy worse in %zu, worst ratio %.3f\n",
           cases, worse, worst);
    T_ASSERT(cases > 200);
}

static const TCase cases[] = {
    {"coverage_hand_county", test_hand_county, 0},
    {"coverage_edge_every_area_kind", test_edge_every_area_kind, 0},
    {"coverage_random_vs_brute", test_random_vs_brute, 0},
    {"coverage_bad_input", test_bad_input, 0},
    {"coverage_plan_hand", test_plan_hand, 0},
    {"coverage_plan_vs_optimal", test_plan_vs_optimal, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
