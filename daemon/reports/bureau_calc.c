/*
 * bureau_calc: the coverage scopes' report, computed in memory from the dispatch
 * directory's snapshot and travel model — the ones matching uses — with coverage_compute()
 * and coverage_plan(), plus the plan's other indicators (terminal shares from the SQL step,
 * certified caregivers from the directory). A snapshot request goes on to be written.
 */
#include "reports/bureau_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dispatch.h"

typedef struct {
    CovVillage *v; /* selected villages */
    int *vix;      /* their index in the DirSnap */
    size_t n;
    CovServiceArea *area;
    size_t narea;
    CovReport *cov;
} Calc;

static void calc_free(Calc *k)
{
    free(k->v);
    free(k->vix);
    free(k->area);
    coverage_report_free(k->cov);
}

bool bureau_in_county(const char *code, const char *county)
{
    return strncmp(code, county, strlen(county)) == 0;
}

int bureau_town_index(const DirSnap *snap, const char *code)
{
    for (int i = 0; i < snap->ntowns; i++)
        if (strcmp(snap->towns[i].code, code) == 0)
            return i;
    return -1;
}

/* Coverage of the county's villages (town_ix < 0) or of one town's. A village's coverage
 * depends only on the stations, so a town computed alone equals its share of the county. */
static bool calc_run(Calc *k, const DirSnap *snap, const TravelModel *m, const char *county,
                     int town_ix)
{
    memset(k, 0, sizeof(*k));
    k->v = xcalloc((size_t)snap->nvillages + 1, sizeof(*k->v));
    k->vix = xcalloc((size_t)snap->nvillages + 1, sizeof(*k->vix));
    size_t cap_area = 16;
    k->area = xmalloc(cap_area * sizeof(*k->area));
    for (int i = 0; i < snap->nvillages; i++) {
        const Village *v = &snap->villages[i];
        if (!bureau_in_county(v->code, county) || (town_ix >= 0 && v->town != town_ix))
            continue;
        size_t j = k->n++;
        k->vix[j] = i;
        k->v[j] = (CovVillage){strtoll(v->code, NULL, 10),
                               (uint32_t)v->town,
                               v->lat,
                               v->lon,
                               v->area,
                               (uint32_t)(v->elderly > 0 ? v->elderly : 0),
                               v->approx};
        for (int a = v->first_area; a < v->first_area + v->n_area; a++) {
            if (k->narea == cap_area) {
                cap_area *= 2;
                k->area = xrealloc(k->area, cap_area * sizeof(*k->area));
            }
            k->area[k->narea++] = (CovServiceArea){snap->area_stations[a], j};
        }
    }
    k->cov = coverage_compute(k->v, k->n, (size_t)snap->ntowns, snap->index, k->area, k->narea, m);
    return k->cov != NULL;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* What a figure was computed from: the directory load, the travel model, and a hash of the
 * qualifying stations (id, position) and the explicit service areas. */
static void inputs_version(const DirSnap *snap, const TravelModel *m, char *out, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < snap->nstations; i++) {
        const Station *st = &snap->stations[i];
        if (!st->active || !st->meal)
            continue;
        h = fnv(h, &st->id, sizeof(st->id));
        h = fnv(h, &st->lat, sizeof(st->lat));
        h = fnv(h, &st->lon, sizeof(st->lon));
    }
    for (int i = 0; i < snap->nvillages; i++) {
        const Village *v = &snap->villages[i];
        for (int a = v->first_area; a < v->first_area + v->n_area; a++) {
            h = fnv(h, v->code, strlen(v->code));
            h = fnv(h, &snap->area_stations[a], sizeof(snap->area_stations[a]));
        }
    }
    snprintf(out, n,
             "dir=%" PRIu64 ";circle=%g;detour=%g/%g/%g;speed=%g/%g/%g;stations=%016" PRIx64,
             snap->version, m->circle_min, m->detour[0], m->detour[1], m->detour[2],
             m->speed_kmh[0], m->speed_kmh[1], m->speed_kmh[2], h);
}

Careline__V1__CoverageFigure *bureau_figure_new(Req *r, const CovTally *t)
{
    Careline__V1__CoverageFigure *f = bureau_req_alloc(r, sizeof(*f));
    careline__v1__coverage_figure__init(f);
    f->villages = (uint32_t)t->villages;
    f->villages_covered = (uint32_t)t->covered;
    f->rate = t->rate;
    f->elderly = t->elderly;
    f->elderly_covered = t->elderly_covered;
    f->rate_elderly = t->rate_elderly;
    f->approx_villages = (uint32_t)t->approx;
    return f;
}

Extra bureau_extra_of(const Req *r, const DirSnap *snap, const char *county, int town_ix,
                      const CovTally *t)
{
    Extra e = {0};
    long long st = 0, ses = 0, eq = 0;
    for (size_t i = 0; i < r->nterm; i++) {
        const TermRow *w = &r->term[i];
        if (town_ix >= 0 ? strcmp(w->town, snap->towns[town_ix].code) == 0
                         : bureau_in_county(w->town, county)) {
            st += w->stations, ses += w->with_session, eq += w->equipped;
        }
    }
    e.stations = st;
    e.terminal = st ? (double)ses / (double)st : 0;
    e.terminal_equipped = st ? (double)eq / (double)st : 0;
    long long cert = 0;
    for (int i = 0; i < snap->nstations; i++) {
        const Station *s = &snap->stations[i];
        if (!s->active || s->town < 0 || s->town >= snap->ntowns)
            continue;
        if (town_ix >= 0 ? s->town == town_ix : bureau_in_county(snap->towns[s->town].code, county))
            cert += s->caregivers_certified;
    }
    e.certified = t->elderly ? (double)cert * 10000.0 / (double)t->elderly : 0;
    return e;
}

static void add_indicator(Req *r, const char *key, const char *name, double value, double target)
{
    Careline__V1__Indicator *in = bureau_req_alloc(r, sizeof(*in));
    careline__v1__indicator__init(in);
    in->key = (char *)key;
    in->name_zh = (char *)name;
    in->value = value;
    in->target = target;
    in->met = value >= target;
    r->rep.indicators[r->rep.n_indicators++] = in;
}

/* County (or town) figure, terminal period and the four indicators. */
static void fill_indicators(Req *r, const DirSnap *snap, const char *county, int town_ix,
                            const CovTally *t)
{
    Report *rep = &r->rep;
    char d1[11], d2[11];
    cal_format(r->from, d1);
    cal_format(r->to, d2);
    rep->from_date = bureau_req_str(r, d1); /* the terminal period */
    rep->to_date = bureau_req_str(r, d2);
    Extra e = bureau_extra_of(r, snap, county, town_ix, t);
    rep->indicators = bureau_req_alloc(r, 4 * sizeof(*rep->indicators));
    add_indicator(r, "meal_village_coverage", "老年助餐配送餐服务覆盖村(社区)", t->rate,
                  r->tgt_cov);
    add_indicator(r, "terminal_share", "居家养老服务站智能服务终端(在线)", e.terminal, r->tgt_term);
    add_indicator(r, "terminal_equipped_share", "居家养老服务站智能服务终端(登记配备)",
                  e.terminal_equipped, r->tgt_term);
    add_indicator(r, "certified_per_10k", "每万名老年人拥有持证养老护理员", e.certified,
                  r->tgt_cert);
}

static void fill_towns(Req *r, const DirSnap *snap, const char *county, int town_ix, const Calc *k)
{
    Report *rep = &r->rep;
    rep->towns = bureau_req_alloc(r, ((size_t)snap->ntowns + 1) * sizeof(*rep->towns));
    for (int t = 0; t < snap->ntowns; t++) {
        if (!bureau_in_county(snap->towns[t].code, county) || (town_ix >= 0 && t != town_ix))
            continue;
        Careline__V1__TownCoverage *tc = bureau_req_alloc(r, sizeof(*tc));
        careline__v1__town_coverage__init(tc);
        tc->code = bureau_req_str(r, snap->towns[t].code);
        tc->name = bureau_req_str(r, snap->towns[t].name);
        tc->figure = bureau_figure_new(r, &k->cov->town[t]);
        rep->towns[rep->n_towns++] = tc;
    }
}

static void fill_villages(Req *r, const DirSnap *snap, const Calc *k)
{
    Report *rep = &r->rep;
    rep->villages = bureau_req_alloc(r, (k->n + 1) * sizeof(*rep->villages));
    for (size_t i = 0; i < k->n; i++) {
        const CovVillageResult *vr = &k->cov->village[i];
        if (r->covered >= 0 && vr->covered != (r->covered == 1))
            continue;
        const Village *v = &snap->villages[k->vix[i]];
        Careline__V1__VillageCoverage *vc = bureau_req_alloc(r, sizeof(*vc));
        careline__v1__village_coverage__init(vc);
        vc->code = bureau_req_str(r, v->code);
        vc->name = bureau_req_str(r, v->name);
        vc->town_code = bureau_req_str(r, snap->towns[v->town].code);
        vc->covered = vr->covered;
        vc->nearest_station_id = vr->station_id;
        vc->nearest_minutes = isfinite(vr->minutes) ? vr->minutes : -1;
        vc->approximate_location = v->approx;
        vc->elderly = (uint32_t)(v->elderly > 0 ? v->elderly : 0);
        rep->villages[rep->n_villages++] = vc;
    }
}

/* The fewest new sites (village centroids) to reach rep->target; false if planning failed. */
static bool fill_plan(Req *r, const DirSnap *snap, const TravelModel *m, const Calc *k)
{
    Report *rep = &r->rep;
    CovPlan *p = coverage_plan(k->v, k->n, k->cov, m, NULL, 0, rep->target);
    if (!p)
        return false;
    rep->plan_covered_before = (uint32_t)p->covered_before;
    rep->plan_need = (uint32_t)p->need;
    rep->plan_reached = p->reached;
    rep->plan = bureau_req_alloc(r, (p->n_steps + 1) * sizeof(*rep->plan));
    for (size_t i = 0; i < p->n_steps; i++) {
        const CovPlanStep *st = &p->step[i];
        const CovSite *site = &p->site[st->candidate];
        ASSERT(site->village < k->n); /* candidates are village centroids here */
        const Village *v = &snap->villages[k->vix[site->village]];
        Careline__V1__PlanStep *ps = bureau_req_alloc(r, sizeof(*ps));
        careline__v1__plan_step__init(ps);
        ps->village_code = bureau_req_str(r, v->code);
        ps->name = bureau_req_str(r, v->name);
        ps->town_code = bureau_req_str(r, snap->towns[v->town].code);
        ps->lat = site->lat;
        ps->lon = site->lon;
        ps->newly_covered = (uint32_t)st->newly_covered;
        ps->covered_after = (uint32_t)st->covered;
        ps->rate_after = st->rate;
        rep->plan[rep->n_plan++] = ps;
    }
    coverage_plan_free(p);
    return true;
}

void bureau_req_compute(Req *r)
{
    const Bureau *s = r->b;
    const DirSnap *snap = dir_snap(dispatch_directory(s->dispatch));
    const TravelModel *m = dispatch_model(s->dispatch);
    const char *county = s->env->cfg->county_code;
    if (!snap) {
        bureau_req_fail(r, ERRC(UNAVAILABLE), NULL,
                        "the station directory is not loaded yet; retry shortly");
        return;
    }
    int town_ix = -1;
    if (r->town[0] && (town_ix = bureau_town_index(snap, r->town)) < 0) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "town_code", "unknown town code %s", r->town);
        return;
    }
    Calc k;
    if (!calc_run(&k, snap, m, county, town_ix)) {
        calc_free(&k);
        bureau_req_fail(r, ERRC(INTERNAL), NULL,
                        "coverage computation failed (see the daemon log)");
        return;
    }
    Report *rep = &r->rep;
    char buf[256];
    bureau_now_iso(buf, sizeof(buf));
    rep->as_of = bureau_req_str(r, buf);
    rep->target = r->scope == SCOPE(PLAN) && r->target > 0 ? r->target : r->tgt_cov;
    rep->service_circle_minutes = (uint32_t)lround(m->circle_min);
    rep->scope_code = bureau_req_str(r, town_ix >= 0 ? snap->towns[town_ix].code : county);
    rep->scope_name = bureau_req_str(r, town_ix >= 0 ? snap->towns[town_ix].name : "");
    inputs_version(snap, m, buf, sizeof(buf));
    rep->inputs_version = bureau_req_str(r, buf);
    rep->county = bureau_figure_new(r, &k.cov->county);
    bool with_towns = r->scope == SCOPE(TOWNS) || r->scope == SCOPE(SNAPSHOT);

    if (r->scope == SCOPE(COUNTY) || with_towns)
        fill_indicators(r, snap, county, town_ix, &k.cov->county);
    if (with_towns)
        fill_towns(r, snap, county, town_ix, &k);
    if (r->scope == SCOPE(VILLAGES))
        fill_villages(r, snap, &k);
    if (r->scope == SCOPE(PLAN) && !fill_plan(r, snap, m, &k)) {
        calc_free(&k);
        bureau_req_fail(r, ERRC(INTERNAL), NULL, "planning failed (see the daemon log)");
        return;
    }
    if (r->scope != SCOPE(SNAPSHOT)) {
        calc_free(&k);
        bureau_req_reply(r);
        return;
    }

    /* the snapshot: county + every town of the county, one upsert statement */
    char day[11];
    cal_format(r->day, day);
    rep->snapshot_day = bureau_req_str(r, day);
    char *rows = bureau_snapshot_rows(r, snap, county, k.cov);
    calc_free(&k);
    bureau_sql_write_snapshot(r, rows);
    free(rows);
}
