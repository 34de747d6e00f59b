/*
 * bench-match: times the station index and the coverage computation at national scale on
 * synthetic data (600,000 stations and villages, denser in the east like the real ones),
 * against a linear scan. A benchmark, not a test: it prints figures and checks nothing
 * beyond a sample of lookups agreeing with the scan.
 * Usage: bench-match [stations [villages [queries]]]
 */
#include "reports/coverage.h"
#include "base/geo.h"
#include "core/stindex.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x600000ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 70% in the populous east (20-42 N, 108-123 E), 30% anywhere in China's box. */
static void china_point(double *lat, double *lon)
{
    if (rnd() % 10 < 7) {
        *lat = 20.0 + rnd01() * 22.0, *lon = 108.0 + rnd01() * 15.0;
    } else {
        *lat = 18.0 + rnd01() * 36.0, *lon = 73.0 + rnd01() * 62.0;
    }
}

static bool eligible_cb(const StStation *st, void *arg)
{
    (void)arg;
    return coverage_qualifies(st);
}

static void yuyao_bench(void)
{
    /* Yuyao-sized: 300 stations, 326 villages in 21 towns */
    StStation st[300];
    CovVillage v[326];
    for (int i = 0; i < 300; i++)
        st[i] = (StStation){i + 1, 29.7 + rnd01() * 0.5, 120.9 + rnd01() * 0.5,
                            rnd() % 10 < 8 ? ST_ACTIVE | ST_MEAL : ST_ACTIVE, (size_t)i};
    for (int i = 0; i < 326; i++)
        v[i] = (CovVillage){330281000000 + i,
                            (uint32_t)(i % 21),
                            29.7 + rnd01() * 0.5,
                            120.9 + rnd01() * 0.5,
                            (GeoAreaKind)(rnd() % 3),
                            900,
                            false};
    double t0 = now_s();
    StIndex *ix = stindex_new(st, 300);
    double t1 = now_s();
    int reps = 1000;
    size_t covered = 0;
    for (int r = 0; r < reps; r++) {
        CovReport *rep = coverage_compute(v, 326, 21, ix, NULL, 0, &geo_model_default);
        covered = rep->county.covered;
        coverage_report_free(rep);
    }
    double t2 = now_s();
    CovReport *rep = coverage_compute(v, 326, 21, ix, NULL, 0, &geo_model_default);
    double t3 = now_s();
    CovPlan *p = coverage_plan(v, 326, rep, &geo_model_default, NULL, 0, 0.95);
    double t4 = now_s();
    printf("yuyao: index build 300 stations %.3f ms; coverage 326 villages %.3f ms "
           "(covered %zu, %.1f%%); greedy plan to 95%%: %zu sites in %.3f ms\n",
           (t1 - t0) * 1e3, (t2 - t1) / reps * 1e3, covered, rep->county.rate * 100, p->n_steps,
           (t4 - t3) * 1e3);
    coverage_plan_free(p);
    coverage_report_free(rep);
    stindex_free(ix);
}

int main(int argc, char **argv)
{
    size_t want[3] = {600000, 600000, 2000000}; /* stations, villages, queries */
    for (int i = 1; i < argc && i <= 3; i++) {
        char *end;
        unsigned long v = strtoul(argv[i], &end, 10);
        if (*end || v == 0 || v > 100000000) {
            fprintf(stderr, "usage: bench-match [STATIONS [VILLAGES [QUERIES]]]  (each 1..1e8; "
                            "defaults 600000 600000 2000000)\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
        want[i - 1] = v;
    }
    size_t ns = want[0], nv = want[1], nq = want[2];
    const TravelModel *m = &geo_model_default;
    double radius = geo_km_for_minutes(m, GEO_RURAL, m->circle_min);

    yuyao_bench();

    StStation *st = xmalloc(ns * sizeof(*st));
    for (size_t i = 0; i < ns; i++) {
        china_point(&st[i].lat, &st[i].lon);
        st[i].id = (int64_t)i + 1;
        st[i].flags = rnd() % 10 < 8 ? ST_ACTIVE | ST_MEAL : ST_ACTIVE | ST_HOME_CARE;
        st[i].user = i;
    }
    double t0 = now_s();
    const char *cell_env = getenv("BENCH_CELL_DEG");
    double cell = cell_env ? strtod(cell_env, NULL) : STINDEX_CELL_DEG_DEFAULT;
    StIndex *ix = stindex_new_sized(st, ns, cell);
    double t1 = now_s();
    printf("index: %zu stations built in %.1f ms (cell %g deg)\n", ns, (t1 - t0) * 1e3, cell);

    /* queries near stations (residents live near villages), radius = rural 15 min */
    double *ql = xmalloc(2 * nq * sizeof(*ql));
    for (size_t i = 0; i < nq; i++) {
        const StStation *s = &st[rnd() % ns];
        ql[2 * i] = s->lat + (rnd01() - 0.5) * 0.1;
        ql[2 * i + 1] = s->lon + (rnd01() - 0.5) * 0.1;
    }
    StHit hits[5];
    size_t found = 0;
    t0 = now_s();
    for (size_t i = 0; i < nq; i++)
        found += stindex_nearest(ix, ql[2 * i], ql[2 * i + 1], radius, eligible_cb, NULL, hits, 5);
    t1 = now_s();
    printf("nearest-5 eligible within %.3f km: %zu lookups in %.3f s = %.2f M/s "
           "(%.2f hits/lookup)\n",
           radius, nq, t1 - t0, (double)nq / (t1 - t0) / 1e6, (double)found / (double)nq);
    found = 0;
    t0 = now_s();
    for (size_t i = 0; i < nq; i++)
        found += stindex_nearest(ix, ql[2 * i], ql[2 * i + 1], radius, eligible_cb, NULL, hits, 1);
    t1 = now_s();
    printf("nearest-1: %.2f M/s\n", (double)nq / (t1 - t0) / 1e6);

    /* linear scan for comparison, and agreement on a sample */
    size_t nl = 200, agree = 0;
    t0 = now_s();
    for (size_t i = 0; i < nl; i++) {
        double best = 1e300;
        int64_t bid = -1;
        for (size_t s = 0; s < ns; s++) {
            if (!coverage_qualifies(&st[s]))
                continue;
            double km = geo_km(ql[2 * i], ql[2 * i + 1], st[s].lat, st[s].lon);
            if (km <= radius && (km < best || (km == best && st[s].id < bid)))
                best = km, bid = st[s].id;
        }
        size_t n =
            stindex_nearest(ix, ql[2 * i], ql[2 * i + 1], radius, eligible_cb, NULL, hits, 1);
        agree += (n == 0 && bid < 0) || (n == 1 && hits[0].st->id == bid);
    }
    t1 = now_s();
    printf("linear scan: %.3f ms/lookup = %.0f lookups/s (agreement %zu/%zu)\n",
           (t1 - t0) / (double)nl * 1e3, (double)nl / (t1 - t0), agree, nl);

    /* incremental updates: move 100k stations, remove and re-add 100k */
    size_t nu = ns < 100000 ? ns : 100000;
    t0 = now_s();
    for (size_t i = 0; i < nu; i++) {
        StStation s = st[rnd() % ns];
        s.lat += (rnd01() - 0.5) * 0.2;
        s.lon += (rnd01() - 0.5) * 0.2;
        if (!stindex_upsert(ix, &s))
            return 1;
    }
    t1 = now_s();
    for (size_t i = 0; i < nu; i++) {
        const StStation *s = &st[i];
        if (!stindex_remove(ix, s->id) || !stindex_upsert(ix, s))
            return 1;
    }
    double t2 = now_s();
    printf("updates: upsert(move) %.0f ns each, remove+insert %.0f ns each\n",
           (t1 - t0) / (double)nu * 1e9, (t2 - t1) / (double)nu * 1e9);

    /* coverage at national scale */
    CovVillage *v = xmalloc(nv * sizeof(*v));
    for (size_t i = 0; i < nv; i++) {
        china_point(&v[i].lat, &v[i].lon);
        v[i].code = (int64_t)i;
        v[i].town = (uint32_t)(i / 15);
        v[i].area = (GeoAreaKind)(rnd() % 3);
        v[i].elderly = 300 + (uint32_t)(rnd() % 900);
        v[i].approx = false;
    }
    size_t ntown = nv / 15 + 1;
    t0 = now_s();
    CovReport *rep = coverage_compute(v, nv, ntown, ix, NULL, 0, m);
    t1 = now_s();
    printf("coverage: %zu villages x %zu stations in %.3f s (covered %.1f%%, elderly %.1f%%)\n", nv,
           ns, t1 - t0, rep->county.rate * 100, rep->county.rate_elderly * 100);
    if (getenv("BENCH_PLAN")) {
        t0 = now_s();
        CovPlan *p = coverage_plan(v, nv, rep, m, NULL, 0, rep->county.rate + 0.05);
        t1 = now_s();
        printf("plan: +5 points from %zu candidate centroids: %zu sites in %.3f s\n", p->n_sites,
               p->n_steps, t1 - t0);
        coverage_plan_free(p);
    }
    t0 = now_s();
    StIndex *ix2 = stindex_new(st, ns);
    t1 = now_s();
    printf("rebuild from scratch: %.1f ms\n", (t1 - t0) * 1e3);
    stindex_free(ix2);
    coverage_report_free(rep);
    free(v);
    free(ql);
    stindex_free(ix);
    free(st);
    return 0;
}
