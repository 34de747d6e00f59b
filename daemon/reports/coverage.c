/*
 * coverage: one bounded nearest-station query per village (radius = the village's circle
 * in km, from the inverse travel model) plus the explicit service-area listings, then
 * tallies per town and county. Planning builds, per candidate site, the set of uncovered
 * villages it would reach (a second stindex over those villages), then runs lazy greedy
 * (CELF: gains only shrink, so a stale gain is an upper bound) with ties to the lowest index.
 */
#include "reports/coverage.h"
#include "common/log.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool coverage_qualifies(const StStation *st)
{
    return (st->flags & (ST_ACTIVE | ST_MEAL)) == (ST_ACTIVE | ST_MEAL);
}

static bool qualifies_cb(const StStation *st, void *arg)
{
    (void)arg;
    return coverage_qualifies(st);
}

static void tally_add(CovTally *t, const CovVillage *v, bool covered)
{
    t->villages++;
    t->elderly += v->elderly;
    t->approx += v->approx;
    if (covered) {
        t->covered++;
        t->elderly_covered += v->elderly;
    }
}

static void tally_rates(CovTally *t)
{
    t->rate = t->villages ? (double)t->covered / (double)t->villages : 0.0;
    t->rate_elderly = t->elderly ? (double)t->elderly_covered / (double)t->elderly : 0.0;
}

static bool villages_ok(const CovVillage *villages, size_t n, size_t n_towns)
{
    for (size_t i = 0; i < n; i++) {
        const CovVillage *v = &villages[i];
        if (v->town >= n_towns || (unsigned)v->area >= GEO_AREA_KINDS || !isfinite(v->lat) ||
            !isfinite(v->lon) || fabs(v->lat) > 90.0 || fabs(v->lon) > 180.0) {
            log_error("coverage: village %lld (#%zu) has a bad town, area kind or centroid",
                      (long long)v->code, i);
            return false;
        }
    }
    return true;
}

CovReport *coverage_compute(const CovVillage *villages, size_t n_villages, size_t n_towns,
                            const StIndex *stations, const CovServiceArea *areas, size_t n_areas,
                            const TravelModel *model)
{
    if (!geo_model_valid(model)) {
        log_error("coverage: invalid travel model");
        return NULL;
    }
    if (!villages_ok(villages, n_villages, n_towns))
        return NULL;
    CovReport *r = xcalloc(1, sizeof(*r));
    r->n_villages = n_villages;
    r->n_towns = n_towns;
    r->village = xcalloc(n_villages ? n_villages : 1, sizeof(*r->village));
    r->town = xcalloc(n_towns ? n_towns : 1, sizeof(*r->town));

    for (size_t i = 0; i < n_villages; i++) {
        r->village[i].minutes = INFINITY;
        r->village[i].station_id = 0;
    }
    /* listings first: reached (below) overrides the station shown */
    for (size_t a = 0; a < n_areas; a++) {
        if (areas[a].village >= n_villages) {
            log_error("coverage: service area of station %lld names village #%zu of %zu",
                      (long long)areas[a].station_id, areas[a].village, n_villages);
            coverage_report_free(r);
            return NULL;
        }
        const StStation *st = stindex_get(stations, areas[a].station_id);
        if (!st || !coverage_qualifies(st))
            continue;
        CovVillageResult *vr = &r->village[areas[a].village];
        if (vr->listed && vr->station_id <= st->id)
            continue;
        const CovVillage *v = &villages[areas[a].village];
        vr->listed = true;
        vr->station_id = st->id;
        vr->minutes = geo_minutes(model, v->area, geo_km(v->lat, v->lon, st->lat, st->lon));
    }
    double bound[GEO_AREA_KINDS];
    for (int k = 0; k < GEO_AREA_KINDS; k++)
        bound[k] = geo_km_for_minutes(model, (GeoAreaKind)k, model->circle_min);

    for (size_t i = 0; i < n_villages; i++) {
        const CovVillage *v = &villages[i];
        CovVillageResult *vr = &r->village[i];
        StHit hit;
        /* minutes are non-decreasing in km for one village, so the nearest by (km, id) is
         * the nearest by minutes; the bound may admit a hair too far, hence the check */
        if (stindex_nearest(stations, v->lat, v->lon, bound[v->area], qualifies_cb, NULL, &hit,
                            1) == 1) {
            double min = geo_minutes(model, v->area, hit.km);
            if (min <= model->circle_min) {
                vr->reached = true;
                vr->station_id = hit.st->id;
                vr->minutes = min;
            }
        }
        vr->covered = vr->reached || vr->listed;
        tally_add(&r->town[v->town], v, vr->covered);
        tally_add(&r->county, v, vr->covered);
    }
    for (size_t t = 0; t < n_towns; t++)
        tally_rates(&r->town[t]);
    tally_rates(&r->county);
    return r;
}

void coverage_report_free(CovReport *r)
{
    if (!r)
        return;
    free(r->village);
    free(r->town);
    free(r);
}

/* ---- planning ---------------------------------------------------------------------------- */

/* Candidate sites and, per site, the uncovered villages it reaches (CSR: member[off[i] ..
 * off[i+1])). */
typedef struct {
    CovSite *site;
    size_t n_sites;
    size_t *off;    /* [n_sites + 1] */
    size_t *member; /* village indices */
    size_t n_member, cap_member;
    size_t covered_before;
    size_t need; /* smallest covered count with count / n_villages >= target */
} Sets;

typedef struct {
    Sets *s;
    const CovVillage *villages;
    const TravelModel *model;
} SetsCtx;

static void sets_visit_cb(const StStation *st, double km, void *arg)
{
    SetsCtx *c = arg;
    const CovVillage *v = &c->villages[st->user];
    if (geo_minutes(c->model, v->area, km) > c->model->circle_min)
        return;
    Sets *s = c->s;
    if (s->n_member == s->cap_member) {
        s->cap_member = s->cap_member ? s->cap_member * 2 : 256;
        s->member = xrealloc(s->member, s->cap_member * sizeof(*s->member));
    }
    s->member[s->n_member++] = st->user;
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void sets_free(Sets *s)
{
    free(s->site);
    free(s->off);
    free(s->member);
}

static bool sets_build(Sets *s, const CovVillage *villages, size_t n_villages, const CovReport *now,
                       const TravelModel *model, const CovSite *sites, size_t n_sites,
                       double target)
{
    memset(s, 0, sizeof(*s));
    if (!(target >= 0.0 && target <= 1.0) || !now || now->n_villages != n_villages ||
        !geo_model_valid(model)) {
        log_error("coverage: bad plan input (target %g)", target);
        return false;
    }
    for (size_t i = 0; i < n_sites && sites; i++) {
        if (!isfinite(sites[i].lat) || !isfinite(sites[i].lon) || fabs(sites[i].lat) > 90.0 ||
            fabs(sites[i].lon) > 180.0) {
            log_error("coverage: candidate site #%zu has a bad coordinate", i);
            return false;
        }
    }
    /* uncovered villages as an index (id = user = village index) */
    size_t n_unc = 0;
    for (size_t i = 0; i < n_villages; i++)
        n_unc += !now->village[i].covered;
    StStation *pts = xmalloc((n_unc ? n_unc : 1) * sizeof(*pts));
    size_t j = 0;
    for (size_t i = 0; i < n_villages; i++) {
        if (now->village[i].covered)
            continue;
        pts[j] = (StStation){(int64_t)i, villages[i].lat, villages[i].lon, 0, i};
        j++;
    }
    s->covered_before = n_villages - n_unc;
    if (sites) {
        s->n_sites = n_sites;
        s->site = xmalloc((n_sites ? n_sites : 1) * sizeof(*s->site));
        memcpy(s->site, sites, n_sites * sizeof(*sites));
    } else {
        s->n_sites = n_unc;
        s->site = xmalloc((n_unc ? n_unc : 1) * sizeof(*s->site));
        for (size_t k = 0; k < n_unc; k++)
            s->site[k] = (CovSite){pts[k].lat, pts[k].lon, pts[k].user};
    }
    StIndex *ix = stindex_new(pts, n_unc);
    free(pts);
    ASSERT(ix); /* coordinates were validated, ids are distinct */
    double radius = geo_circle_km_max(model);
    s->off = xmalloc((s->n_sites + 1) * sizeof(*s->off));
    SetsCtx ctx = {s, villages, model};
    for (size_t k = 0; k < s->n_sites; k++) {
        s->off[k] = s->n_member;
        stindex_within(ix, s->site[k].lat, s->site[k].lon, radius, sets_visit_cb, &ctx);
        if (s->n_member - s->off[k] > 1)
            qsort(s->member + s->off[k], s->n_member - s->off[k], sizeof(size_t), size_cmp);
    }
    s->off[s->n_sites] = s->n_member;
    stindex_free(ix);

    /* need: the smallest count whose rate, computed as reported, is >= target */
    size_t need = (size_t)ceil(target * (double)n_villages);
    while (need > 0 && (double)(need - 1) / (double)n_villages >= target)
        need--;
    while (need <= n_villages && n_villages && (double)need / (double)n_villages < target)
        need++;
    s->need = need;
    return true;
}

typedef struct {
    size_t gain; /* upper bound (exact when fresh) of villages the candidate adds */
    size_t cand;
} HeapItem;

static bool heap_above(const HeapItem *a, const HeapItem *b)
{
    return a->gain > b->gain || (a->gain == b->gain && a->cand < b->cand);
}

static void heap_sift_down(HeapItem *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && heap_above(&h[l], &h[top]))
            top = l;
        if (r < n && heap_above(&h[r], &h[top]))
            top = r;
        if (top == i)
            return;
        HeapItem t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

CovPlan *coverage_plan(const CovVillage *villages, size_t n_villages, const CovReport *now,
                       const TravelModel *model, const CovSite *sites, size_t n_sites,
                       double target_rate)
{
    Sets s;
    if (!sets_build(&s, villages, n_villages, now, model, sites, n_sites, target_rate)) {
        sets_free(&s);
        return NULL;
    }
    CovPlan *p = xcalloc(1, sizeof(*p));
    p->site = s.site;
    p->n_sites = s.n_sites;
    s.site = NULL;
    p->covered_before = s.covered_before;
    p->need = s.need;
    p->step = xmalloc((s.n_sites ? s.n_sites : 1) * sizeof(*p->step));

    bool *covered = xcalloc(n_villages ? n_villages : 1, sizeof(*covered));
    for (size_t i = 0; i < n_villages; i++)
        covered[i] = now->village[i].covered;
    HeapItem *h = xmalloc((s.n_sites ? s.n_sites : 1) * sizeof(*h));
    size_t nh = 0;
    for (size_t k = 0; k < s.n_sites; k++)
        if (s.off[k + 1] > s.off[k])
            h[nh++] = (HeapItem){s.off[k + 1] - s.off[k], k};
    for (size_t i = nh; i-- > 0;)
        heap_sift_down(h, nh, i);

    size_t count = s.covered_before;
    while (count < s.need && nh > 0) {
        HeapItem top = h[0];
        size_t gain = 0;
        for (size_t m = s.off[top.cand]; m < s.off[top.cand + 1]; m++)
            gain += !covered[s.member[m]];
        h[0] = h[--nh];
        heap_sift_down(h, nh, 0);
        if (gain == 0)
            continue; /* never helps again: gains only shrink */
        HeapItem fresh = {gain, top.cand};
        if (nh > 0 && !heap_above(&fresh, &h[0])) {
            h[nh++] = fresh; /* stale: re-queue with the true gain */
            for (size_t i = nh - 1; i > 0 && heap_above(&h[i], &h[(i - 1) / 2]); i = (i - 1) / 2) {
                HeapItem t = h[i];
                h[i] = h[(i - 1) / 2];
                h[(i - 1) / 2] = t;
            }
            continue;
        }
        for (size_t m = s.off[top.cand]; m < s.off[top.cand + 1]; m++)
            covered[s.member[m]] = true;
        count += gain;
        p->step[p->n_steps++] =
            (CovPlanStep){top.cand, gain, count, (double)count / (double)n_villages};
    }
    p->reached = count >= s.need;
    free(h);
    free(covered);
    sets_free(&s);
    return p;
}

void coverage_plan_free(CovPlan *p)
{
    if (!p)
        return;
    free(p->site);
    free(p->step);
    free(p);
}

bool coverage_plan_optimal(const CovVillage *villages, size_t n_villages, const CovReport *now,
                           const TravelModel *model, const CovSite *sites, size_t n_sites,
                           double target_rate, size_t *count, uint32_t *mask)
{
    Sets s;
    bool ok = false;
    uint64_t *bits = NULL, *acc = NULL;
    if (!sets_build(&s, villages, n_villages, now, model, sites, n_sites, target_rate))
        goto done;
    if (s.n_sites > COV_OPTIMAL_MAX_SITES)
        goto done;
    if (s.covered_before >= s.need) {
        *count = 0, *mask = 0;
        ok = true;
        goto done;
    }
    if (s.need > n_villages)
        goto done;
    size_t extra = s.need - s.covered_before;
    /* one bitset over villages per candidate */
    size_t words = (n_villages + 63) / 64;
    bits = xcalloc(s.n_sites * words + 1, sizeof(*bits));
    acc = xcalloc(words + 1, sizeof(*acc));
    for (size_t k = 0; k < s.n_sites; k++)
        for (size_t m = s.off[k]; m < s.off[k + 1]; m++)
            bits[k * words + s.member[m] / 64] |= 1ull << (s.member[m] % 64);
    unsigned n = (unsigned)s.n_sites;
    for (unsigned size = 1; size <= n; size++) {
        /* Gosper's hack: every n-bit mask with `size` bits set, in increasing order */
        uint32_t v = (1u << size) - 1;
        while (v < (1u << n)) {
            memset(acc, 0, words * sizeof(*acc));
            for (unsigned k = 0; k < n; k++)
                if (v & (1u << k))
                    for (size_t w = 0; w < words; w++)
                        acc[w] |= bits[k * words + w];
            size_t got = 0;
            for (size_t w = 0; w < words; w++)
                got += (size_t)__builtin_popcountll(acc[w]);
            if (got >= extra) {
                *count = size, *mask = v;
                ok = true;
                goto done;
            }
            uint32_t t = v | (v - 1);
            v = (t + 1) | (((~t & -~t) - 1) >> (__builtin_ctz(v) + 1));
        }
    }
done:
    free(bits);
    free(acc);
    sets_free(&s);
    return ok;
}
