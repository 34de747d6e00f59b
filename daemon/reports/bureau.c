/*
 * bureau: one request type (Req) for both doors — a CoverageQuery frame or an HTTP GET/POST
 * — parsed and validated the same way, then at most two asynchronous SQL steps (targets and
 * terminal figures, or history, or realized figures; then the snapshot upsert), the coverage
 * computed in memory from the dispatch directory in between, and one CoverageReport built
 * in an arena. The protocol sends it as is; HTTP renders it with report_json/csv.
 */
#include "reports/bureau.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/auth.h"
#include "base/cal.h"
#include "net/conn.h"
#include "common/report_format.h"
#include "reports/coverage.h"
#include "core/directory.h"
#include "core/dispatch.h"
#include "net/http.h"
#include "common/log.h"
#include "net/session.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
#define ERRC(x)  CARELINE__V1__ERROR_CODE__##x
typedef Careline__V1__CoverageScope Scope;
typedef Careline__V1__CoverageReport Report;

#define AUTH_CACHE_SLOTS     16
#define AUTH_CACHE_TTL_MS    10000 /* a revoked token keeps working over HTTP at most this long */
#define HISTORY_DEFAULT_DAYS 30
#define RETRY_SNAPSHOT_MS    60000 /* daily snapshot while the directory is not loaded yet */

typedef struct {
    char hex[2 * AUTH_HASH_LEN + 1]; /* "" = free slot */
    Role role;
    int64_t expires_ms; /* monotonic */
} AuthSlot;

struct Bureau {
    const Env *env;                  /* borrowed from the server */
    Dispatch *dispatch;              /* borrowed: directory and travel model */
    struct event *timer;             /* the daily snapshot */
    AuthSlot auth[AUTH_CACHE_SLOTS]; /* positive bearer-token lookups */
    unsigned auth_next;              /* round-robin replacement */
};

/* ---- arena: everything a report points to, freed at once -------------------------------- */

typedef struct {
    void **p;
    size_t n, cap;
} Arena;

static void *ar_alloc(Arena *a, size_t size)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->p = xrealloc(a->p, a->cap * sizeof(*a->p));
    }
    void *m = xcalloc(1, size ? size : 1);
    a->p[a->n++] = m;
    return m;
}

static char *ar_str(Arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = ar_alloc(a, n + 1);
    memcpy(d, s, n);
    return d;
}

static void ar_free(Arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
    memset(a, 0, sizeof(*a));
}

/* ---- the request ------------------------------------------------------------------------ */

typedef enum {
    OUT_PROTO, /* a CoverageReport frame to c */
    OUT_JSON,  /* HTTP */
    OUT_CSV,   /* HTTP */
    OUT_NONE,  /* the daily snapshot: log only */
} OutKind;

typedef struct {
    char town[16];
    long long stations, with_session, equipped;
} TermRow;

typedef struct Req {
    Bureau *b;
    Scope scope;
    char town[16];   /* "" = the whole county */
    int covered;     /* SCOPE_VILLAGES: -1 all, 0 uncovered only, 1 covered only */
    CalDay from, to; /* history, realized, terminal period */
    double target;   /* 0 = the setting */
    CalDay day;      /* SCOPE_SNAPSHOT */
    OutKind out;
    Conn *c; /* OUT_PROTO: ref held, inflight counted */
    uint64_t seq;
    struct evhttp_request *hreq; /* OUT_JSON/CSV; NULL once its connection went away */
    /* from the database */
    double tgt_cov, tgt_term, tgt_cert;
    TermRow *term;
    size_t nterm;
    Arena ar;
    Report rep;
} Req;

static Req *req_new(Bureau *b, OutKind out)
{
    Req *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->out = out;
    r->covered = -1;
    r->tgt_cov = 0.95, r->tgt_term = 0.55, r->tgt_cert = 32;
    careline__v1__coverage_report__init(&r->rep);
    return r;
}

static void http_conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    Req *r = arg;
    r->hreq = NULL; /* evhttp frees the request with its connection */
}

static void req_watch_http(Req *r, struct evhttp_request *hreq)
{
    r->hreq = hreq;
    struct evhttp_connection *evcon = evhttp_request_get_connection(hreq);
    if (evcon)
        evhttp_connection_set_closecb(evcon, http_conn_closed_cb, r);
}

/* Detaches from the HTTP connection before answering (the closecb must not outlive r). */
static struct evhttp_request *req_take_http(Req *r)
{
    struct evhttp_request *h = r->hreq;
    if (h) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(h);
        if (evcon)
            evhttp_connection_set_closecb(evcon, NULL, NULL);
    }
    r->hreq = NULL;
    return h;
}

static void req_free(Req *r)
{
    req_take_http(r);
    if (r->c) {
        conn_inflight_end(r->c);
        conn_unref(r->c);
    }
    free(r->term);
    ar_free(&r->ar);
    free(r);
}

static int http_status_of(int code)
{
    switch (code) {
    case ERRC(INVALID_ARGUMENT):
        return 400;
    case ERRC(NOT_AUTHENTICATED):
    case ERRC(AUTH_FAILED):
        return 401;
    case ERRC(FORBIDDEN):
        return 403;
    case ERRC(NOT_FOUND):
        return 404;
    case ERRC(UNAVAILABLE):
    case ERRC(OVERLOADED):
    case ERRC(SHUTTING_DOWN):
        return 503;
    default:
        return 500;
    }
}

/* HTTP names of the query fields (the protocol's are CoverageQuery's). */
static const char *http_field(const char *f)
{
    static const char *const map[][2] = {{"town_code", "town"},
                                         {"from_date", "from"},
                                         {"to_date", "to"},
                                         {"uncovered_only", "covered"},
                                         {"covered_only", "covered"}};
    for (size_t i = 0; f && i < ARRAY_LEN(map); i++)
        if (strcmp(map[i][0], f) == 0)
            return map[i][1];
    return f;
}

static void http_error(Http *http, struct evhttp_request *h, int status, const char *code,
                       const char *field, const char *msg)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code));
    if (field)
        json_object_set_new(e, "field", json_string(field));
    json_object_set_new(e, "message", json_string(msg));
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    ASSERT(s);
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps leaves room only for the NUL: send without it */
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(h), "WWW-Authenticate",
                          "Bearer realm=\"careline\"");
    http_send(http, h, status, "application/json", s, n + 1);
    free(s);
}

static const char *code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, code);
    return v ? v->name : "INTERNAL";
}

/* Answers with an Error (protocol) or a JSON error (HTTP) and frees r. field names the
 * offending CoverageQuery field for INVALID_ARGUMENT. */
static void req_fail(Req *r, int code, const char *field, const char *fmt, ...) PRINTF_LIKE(4, 5);
static void req_fail(Req *r, int code, const char *field, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->out == OUT_PROTO) {
        if (conn_alive(r->c))
            conn_send_field_error(r->c, r->seq, code, field, "%s", msg);
    } else if (r->out == OUT_NONE) {
        log_warn("bureau: daily snapshot failed: %s", msg);
    } else {
        struct evhttp_request *h = req_take_http(r);
        if (h)
            http_error(r->b->env->http, h, http_status_of(code), code_name(code), http_field(field),
                       msg);
    }
    req_free(r);
}

/* ---- the coverage computation over the directory ----------------------------------------- */

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

static bool in_county(const char *code, const char *county)
{
    return strncmp(code, county, strlen(county)) == 0;
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
        if (!in_county(v->code, county) || (town_ix >= 0 && v->town != town_ix))
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

static int town_index(const DirSnap *snap, const char *code)
{
    for (int i = 0; i < snap->ntowns; i++)
        if (strcmp(snap->towns[i].code, code) == 0)
            return i;
    return -1;
}

/* ---- building the report ---------------------------------------------------------------- */

static Careline__V1__CoverageFigure *fig_new(Arena *a, const CovTally *t)
{
    Careline__V1__CoverageFigure *f = ar_alloc(a, sizeof(*f));
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

typedef struct {
    double terminal, terminal_equipped, certified; /* values */
    long long stations;                            /* village stations counted */
} Extra;

/* Terminal shares and certified caregivers for the county (town_ix < 0) or one town. */
static Extra extra_of(const Req *r, const DirSnap *snap, const char *county, int town_ix,
                      const CovTally *t)
{
    Extra e = {0};
    long long st = 0, ses = 0, eq = 0;
    for (size_t i = 0; i < r->nterm; i++) {
        const TermRow *w = &r->term[i];
        if (town_ix >= 0 ? strcmp(w->town, snap->towns[town_ix].code) == 0
                         : in_county(w->town, county)) {
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
        if (town_ix >= 0 ? s->town == town_ix : in_county(snap->towns[s->town].code, county))
            cert += s->caregivers_certified;
    }
    e.certified = t->elderly ? (double)cert * 10000.0 / (double)t->elderly : 0;
    return e;
}

static void add_indicator(Req *r, Careline__V1__Indicator **list, size_t *n, const char *key,
                          const char *name, double value, double target)
{
    Careline__V1__Indicator *in = ar_alloc(&r->ar, sizeof(*in));
    careline__v1__indicator__init(in);
    in->key = (char *)key;
    in->name_zh = (char *)name;
    in->value = value;
    in->target = target;
    in->met = value >= target;
    list[(*n)++] = in;
}

/* The snapshot rows (county first, then each town) as a JSON array for the upsert. */
static json_t *snapshot_row(const char *scope, const CovTally *t, const Extra *e, const Req *r)
{
    json_t *ind = json_object();
    json_object_set_new(ind, "approx_villages", json_integer((json_int_t)t->approx));
    const struct {
        const char *k;
        double v, target;
    } x[] = {{"terminal_share", e->terminal, r->tgt_term},
             {"terminal_equipped_share", e->terminal_equipped, r->tgt_term},
             {"certified_per_10k", e->certified, r->tgt_cert}};
    for (size_t i = 0; i < ARRAY_LEN(x); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "value", json_real(x[i].v));
        json_object_set_new(o, "target", json_real(x[i].target));
        json_object_set_new(o, "met", json_boolean(x[i].v >= x[i].target));
        json_object_set_new(ind, x[i].k, o);
    }
    json_object_set_new(ind, "village_stations", json_integer(e->stations));
    json_t *row = json_object();
    json_object_set_new(row, "scope", json_string(scope));
    json_object_set_new(row, "villages", json_integer((json_int_t)t->villages));
    json_object_set_new(row, "villages_covered", json_integer((json_int_t)t->covered));
    json_object_set_new(row, "rate", json_real(t->rate));
    json_object_set_new(row, "elderly", json_integer((json_int_t)t->elderly));
    json_object_set_new(row, "elderly_covered", json_integer((json_int_t)t->elderly_covered));
    json_object_set_new(row, "rate_elderly", json_real(t->rate_elderly));
    json_object_set_new(row, "indicators", ind);
    return row;
}

static void req_reply(Req *r);
static void snapshot_written(PGresult *res, const char *err, void *arg);

static void now_iso(char *out, size_t n)
{
    int64_t ms = util_wall_ms();
    int minute;
    CalDay d = cal_day_of(ms, &minute);
    char day[11];
    cal_format(d, day);
    int sec = (int)((ms / 1000) % 60);
    snprintf(out, n, "%sT%02d:%02d:%02d+08:00", day, minute / 60, minute % 60, sec);
}

/* Computes and fills r->rep for the coverage scopes (county, towns, villages, plan,
 * snapshot); then replies, or writes the snapshot first. */
static void req_compute(Req *r)
{
    const Bureau *s = r->b;
    const DirSnap *snap = dir_snap(dispatch_directory(s->dispatch));
    const TravelModel *m = dispatch_model(s->dispatch);
    const char *county = s->env->cfg->county_code;
    if (!snap) {
        req_fail(r, ERRC(UNAVAILABLE), NULL,
                 "the station directory is not loaded yet; retry shortly");
        return;
    }
    int town_ix = -1;
    if (r->town[0] && (town_ix = town_index(snap, r->town)) < 0) {
        req_fail(r, ERRC(INVALID_ARGUMENT), "town_code", "unknown town code %s", r->town);
        return;
    }
    Calc k;
    if (!calc_run(&k, snap, m, county, town_ix)) {
        calc_free(&k);
        req_fail(r, ERRC(INTERNAL), NULL, "coverage computation failed (see the daemon log)");
        return;
    }
    Report *rep = &r->rep;
    Arena *a = &r->ar;
    char buf[256];
    now_iso(buf, sizeof(buf));
    rep->as_of = ar_str(a, buf);
    rep->target = r->scope == SCOPE(PLAN) && r->target > 0 ? r->target : r->tgt_cov;
    rep->service_circle_minutes = (uint32_t)lround(m->circle_min);
    rep->scope_code = ar_str(a, town_ix >= 0 ? snap->towns[town_ix].code : county);
    rep->scope_name = ar_str(a, town_ix >= 0 ? snap->towns[town_ix].name : "");
    inputs_version(snap, m, buf, sizeof(buf));
    rep->inputs_version = ar_str(a, buf);
    rep->county = fig_new(a, &k.cov->county);
    char d1[11], d2[11];
    cal_format(r->from, d1);
    cal_format(r->to, d2);
    bool with_towns = r->scope == SCOPE(TOWNS) || r->scope == SCOPE(SNAPSHOT);

    if (r->scope == SCOPE(COUNTY) || with_towns) {
        rep->from_date = ar_str(a, d1); /* the terminal period */
        rep->to_date = ar_str(a, d2);
        Extra e = extra_of(r, snap, county, town_ix, &k.cov->county);
        rep->indicators = ar_alloc(a, 4 * sizeof(*rep->indicators));
        add_indicator(r, rep->indicators, &rep->n_indicators, "meal_village_coverage",
                      "老年助餐配送餐服务覆盖村(社区)", k.cov->county.rate, r->tgt_cov);
        add_indicator(r, rep->indicators, &rep->n_indicators, "terminal_share",
                      "居家养老服务站智能服务终端(在线)", e.terminal, r->tgt_term);
        add_indicator(r, rep->indicators, &rep->n_indicators, "terminal_equipped_share",
                      "居家养老服务站智能服务终端(登记配备)", e.terminal_equipped, r->tgt_term);
        add_indicator(r, rep->indicators, &rep->n_indicators, "certified_per_10k",
                      "每万名老年人拥有持证养老护理员", e.certified, r->tgt_cert);
    }
    if (with_towns) {
        rep->towns = ar_alloc(a, ((size_t)snap->ntowns + 1) * sizeof(*rep->towns));
        for (int t = 0; t < snap->ntowns; t++) {
            if (!in_county(snap->towns[t].code, county) || (town_ix >= 0 && t != town_ix))
                continue;
            Careline__V1__TownCoverage *tc = ar_alloc(a, sizeof(*tc));
            careline__v1__town_coverage__init(tc);
            tc->code = ar_str(a, snap->towns[t].code);
            tc->name = ar_str(a, snap->towns[t].name);
            tc->figure = fig_new(a, &k.cov->town[t]);
            rep->towns[rep->n_towns++] = tc;
        }
    }
    if (r->scope == SCOPE(VILLAGES)) {
        rep->villages = ar_alloc(a, (k.n + 1) * sizeof(*rep->villages));
        for (size_t i = 0; i < k.n; i++) {
            const CovVillageResult *vr = &k.cov->village[i];
            if (r->covered >= 0 && vr->covered != (r->covered == 1))
                continue;
            const Village *v = &snap->villages[k.vix[i]];
            Careline__V1__VillageCoverage *vc = ar_alloc(a, sizeof(*vc));
            careline__v1__village_coverage__init(vc);
            vc->code = ar_str(a, v->code);
            vc->name = ar_str(a, v->name);
            vc->town_code = ar_str(a, snap->towns[v->town].code);
            vc->covered = vr->covered;
            vc->nearest_station_id = vr->station_id;
            vc->nearest_minutes = isfinite(vr->minutes) ? vr->minutes : -1;
            vc->approximate_location = v->approx;
            vc->elderly = (uint32_t)(v->elderly > 0 ? v->elderly : 0);
            rep->villages[rep->n_villages++] = vc;
        }
    }
    if (r->scope == SCOPE(PLAN)) {
        CovPlan *p = coverage_plan(k.v, k.n, k.cov, m, NULL, 0, rep->target);
        if (!p) {
            calc_free(&k);
            req_fail(r, ERRC(INTERNAL), NULL, "planning failed (see the daemon log)");
            return;
        }
        rep->plan_covered_before = (uint32_t)p->covered_before;
        rep->plan_need = (uint32_t)p->need;
        rep->plan_reached = p->reached;
        rep->plan = ar_alloc(a, (p->n_steps + 1) * sizeof(*rep->plan));
        for (size_t i = 0; i < p->n_steps; i++) {
            const CovPlanStep *st = &p->step[i];
            const CovSite *site = &p->site[st->candidate];
            ASSERT(site->village < k.n); /* candidates are village centroids here */
            const Village *v = &snap->villages[k.vix[site->village]];
            Careline__V1__PlanStep *ps = ar_alloc(a, sizeof(*ps));
            careline__v1__plan_step__init(ps);
            ps->village_code = ar_str(a, v->code);
            ps->name = ar_str(a, v->name);
            ps->town_code = ar_str(a, snap->towns[v->town].code);
            ps->lat = site->lat;
            ps->lon = site->lon;
            ps->newly_covered = (uint32_t)st->newly_covered;
            ps->covered_after = (uint32_t)st->covered;
            ps->rate_after = st->rate;
            rep->plan[rep->n_plan++] = ps;
        }
        coverage_plan_free(p);
    }
    if (r->scope != SCOPE(SNAPSHOT)) {
        calc_free(&k);
        req_reply(r);
        return;
    }

    /* the snapshot: county + every town of the county, one upsert statement */
    cal_format(r->day, d1);
    rep->snapshot_day = ar_str(a, d1);
    json_t *rows = json_array();
    Extra e = extra_of(r, snap, county, -1, &k.cov->county);
    json_array_append_new(rows, snapshot_row("county", &k.cov->county, &e, r));
    for (int t = 0; t < snap->ntowns; t++) {
        if (!in_county(snap->towns[t].code, county))
            continue;
        e = extra_of(r, snap, county, t, &k.cov->town[t]);
        json_array_append_new(rows, snapshot_row(snap->towns[t].code, &k.cov->town[t], &e, r));
    }
    calc_free(&k);
    char *json = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    ASSERT(json);
    char target[32], circle[16];
    snprintf(target, sizeof(target), "%.17g", r->tgt_cov);
    snprintf(circle, sizeof(circle), "%u", rep->service_circle_minutes);
    const char *params[] = {d1, target, circle, rep->inputs_version, json};
    bool ok = pg_query(
        s->env->pg,
        "INSERT INTO coverage_snapshots AS c (day, scope, villages, villages_covered, rate, "
        "elderly, elderly_covered, rate_elderly, target, service_circle_minutes, "
        "inputs_version, indicators) "
        "SELECT $1::date, x.scope, x.villages, x.villages_covered, x.rate, x.elderly, "
        "x.elderly_covered, x.rate_elderly, $2::double precision, $3::int, $4, x.indicators "
        "FROM jsonb_to_recordset($5::jsonb) AS x(scope text, villages int, "
        "villages_covered int, rate double precision, elderly bigint, elderly_covered bigint, "
        "rate_elderly double precision, indicators jsonb) "
        "ON CONFLICT (day, scope) DO UPDATE SET villages = EXCLUDED.villages, "
        "villages_covered = EXCLUDED.villages_covered, rate = EXCLUDED.rate, "
        "elderly = EXCLUDED.elderly, elderly_covered = EXCLUDED.elderly_covered, "
        "rate_elderly = EXCLUDED.rate_elderly, target = EXCLUDED.target, "
        "service_circle_minutes = EXCLUDED.service_circle_minutes, "
        "inputs_version = EXCLUDED.inputs_version, indicators = EXCLUDED.indicators, "
        "created_at = now()",
        5, params, snapshot_written, r);
    free(json);
    if (!ok)
        req_fail(r, ERRC(OVERLOADED), NULL, "too many queries waiting for the database");
}

static bool sql_ok(Req *r, PGresult *res, const char *err, ExecStatusType want, const char *what)
{
    if (!res) {
        req_fail(r, ERRC(UNAVAILABLE), NULL, "%s: %s", what, err ? err : "database unreachable");
        return false;
    }
    if (PQresultStatus(res) != want) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        log_error("bureau: %s failed: %s", what, msg);
        req_fail(r, ERRC(INTERNAL), NULL, "%s failed (see the daemon log)", what);
        return false;
    }
    return true;
}

static void snapshot_written(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    if (!sql_ok(r, res, err, PGRES_COMMAND_OK, "writing the coverage snapshot"))
        return;
    log_info("bureau: coverage snapshot for %s written (%s rows; county %u/%u villages)",
             r->rep.snapshot_day, PQcmdTuples(res), r->rep.county->villages_covered,
             r->rep.county->villages);
    req_reply(r);
}

/* ---- SQL steps -------------------------------------------------------------------------- */

static void targets_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    if (!sql_ok(r, res, err, PGRES_TUPLES_OK, "reading targets and terminal sessions"))
        return;
    int n = PQntuples(res);
    r->term = xcalloc((size_t)n + 1, sizeof(*r->term));
    for (int i = 0; i < n; i++) {
        const char *key = PQgetvalue(res, i, 0);
        if (strcmp(key, "target_meal_village_coverage") == 0)
            r->tgt_cov = strtod(PQgetvalue(res, i, 1), NULL);
        else if (strcmp(key, "target_terminal_share") == 0)
            r->tgt_term = strtod(PQgetvalue(res, i, 1), NULL);
        else if (strcmp(key, "target_certified_per_10k") == 0)
            r->tgt_cert = strtod(PQgetvalue(res, i, 1), NULL);
        else if (strncmp(key, "target_", 7) != 0) {
            TermRow *w = &r->term[r->nterm++];
            snprintf(w->town, sizeof(w->town), "%s", key);
            w->stations = strtoll(PQgetvalue(res, i, 1), NULL, 10);
            w->with_session = strtoll(PQgetvalue(res, i, 2), NULL, 10);
            w->equipped = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        }
    }
    if (!(r->tgt_cov > 0 && r->tgt_cov <= 1))
        r->tgt_cov = 0.95; /* a broken setting must not break the report */
    req_compute(r);
}

static void history_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    if (!sql_ok(r, res, err, PGRES_TUPLES_OK, "reading coverage snapshots"))
        return;
    Report *rep = &r->rep;
    Arena *a = &r->ar;
    int n = PQntuples(res);
    rep->history = ar_alloc(a, ((size_t)n + 1) * sizeof(*rep->history));
    for (int i = 0; i < n; i++) {
        Careline__V1__CoverageSnapshot *h = ar_alloc(a, sizeof(*h));
        careline__v1__coverage_snapshot__init(h);
        h->day = ar_str(a, PQgetvalue(res, i, 0));
        h->scope = ar_str(a, PQgetvalue(res, i, 1));
        CovTally t = {0};
        t.villages = strtoul(PQgetvalue(res, i, 2), NULL, 10);
        t.covered = strtoul(PQgetvalue(res, i, 3), NULL, 10);
        t.rate = strtod(PQgetvalue(res, i, 4), NULL);
        t.elderly = strtoull(PQgetvalue(res, i, 5), NULL, 10);
        t.elderly_covered = strtoull(PQgetvalue(res, i, 6), NULL, 10);
        t.rate_elderly = strtod(PQgetvalue(res, i, 7), NULL);
        t.approx = strtoul(PQgetvalue(res, i, 10), NULL, 10);
        h->figure = fig_new(a, &t);
        h->target = strtod(PQgetvalue(res, i, 8), NULL);
        h->inputs_version = ar_str(a, PQgetvalue(res, i, 9));
        rep->history[rep->n_history++] = h;
        rep->target = h->target;
    }
    req_reply(r);
}

static void realized_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    if (!sql_ok(r, res, err, PGRES_TUPLES_OK, "reading realized figures"))
        return;
    Report *rep = &r->rep;
    Arena *a = &r->ar;
    int n = PQntuples(res);
    rep->realized = ar_alloc(a, ((size_t)n + 1) * sizeof(*rep->realized));
    for (int i = 0; i < n; i++) {
        Careline__V1__RealizedRow *w = ar_alloc(a, sizeof(*w));
        careline__v1__realized_row__init(w);
        w->scope = ar_str(a, PQgetvalue(res, i, 0));
        w->key = ar_str(a, PQgetvalue(res, i, 1));
        w->name = ar_str(a, PQgetvalue(res, i, 2));
        w->kind = ar_str(a, PQgetvalue(res, i, 3));
        uint32_t *cnt[] = {&w->received,  &w->queued,     &w->delivered,     &w->on_time,
                           &w->rejected,  &w->waitlisted, &w->dead_lettered, &w->not_registered,
                           &w->cancelled, &w->failed};
        for (size_t j = 0; j < ARRAY_LEN(cnt); j++)
            *cnt[j] = (uint32_t)strtoul(PQgetvalue(res, i, 4 + (int)j), NULL, 10);
        w->median_minutes = PQgetisnull(res, i, 14) ? -1 : strtod(PQgetvalue(res, i, 14), NULL);
        w->p90_minutes = PQgetisnull(res, i, 15) ? -1 : strtod(PQgetvalue(res, i, 15), NULL);
        rep->realized[rep->n_realized++] = w;
    }
    req_reply(r);
}

static void req_start(Req *r)
{
    const Bureau *s = r->b;
    char d1[11], d2[11];
    cal_format(r->from, d1);
    cal_format(r->to, d2);
    Report *rep = &r->rep;
    bool ok;
    if (r->scope == SCOPE(HISTORY) || r->scope == SCOPE(REALIZED)) {
        rep->from_date = ar_str(&r->ar, d1);
        rep->to_date = ar_str(&r->ar, d2);
        rep->scope_code = ar_str(&r->ar, r->town[0] ? r->town : s->env->cfg->county_code);
        char ts[64];
        now_iso(ts, sizeof(ts));
        rep->as_of = ar_str(&r->ar, ts);
        rep->service_circle_minutes = (uint32_t)lround(dispatch_model(s->dispatch)->circle_min);
    }
    if (r->scope == SCOPE(HISTORY)) {
        const char *params[] = {d1, d2, r->town[0] ? r->town : "county"};
        ok = pg_query(s->env->pg,
                      "SELECT day::text, scope, villages, villages_covered, rate, elderly, "
                      "elderly_covered, rate_elderly, target, inputs_version, "
                      "coalesce((indicators->>'approx_villages')::int, 0) "
                      "FROM coverage_snapshots WHERE day BETWEEN $1::date AND $2::date "
                      "AND scope = $3 ORDER BY day",
                      3, params, history_done, r);
    } else if (r->scope == SCOPE(REALIZED)) {
        const char *params[] = {d1, d2, r->town[0] ? r->town : s->env->cfg->county_code};
        ok = pg_query(s->env->pg,
                      "SELECT scope, key, name, kind, received, queued, delivered, on_time, "
                      "rejected, waitlisted, dead_lettered, not_registered, cancelled, failed, "
                      "median_minutes, p90_minutes "
                      "FROM careline_realized($1::date, $2::date, $3)",
                      3, params, realized_done, r);
    } else {
        if (r->scope == SCOPE(SNAPSHOT)) {
            cal_format(r->day, d1);
            cal_format(r->day, d2);
        }
        const char *params[] = {d1, d2};
        ok = pg_query(s->env->pg,
                      "SELECT key, value, NULL, NULL FROM settings WHERE key IN "
                      "('target_meal_village_coverage', 'target_terminal_share', "
                      "'target_certified_per_10k') "
                      "UNION ALL SELECT town_code, stations::text, with_session::text, "
                      "equipped::text FROM careline_terminal_stations($1::date, $2::date)",
                      2, params, targets_done, r);
    }
    if (!ok)
        req_fail(r, ERRC(OVERLOADED), NULL, "too many queries waiting for the database");
}

/* ---- replies ---------------------------------------------------------------------------- */

static void req_reply(Req *r)
{
    if (r->out == OUT_PROTO) {
        if (conn_alive(r->c)) {
            Envelope env = CARELINE__V1__ENVELOPE__INIT;
            env.seq = r->seq;
            env.body_case = CARELINE__V1__ENVELOPE__BODY_COVERAGE_REPORT;
            env.coverage_report = &r->rep;
            size_t n = careline__v1__envelope__get_packed_size(&env);
            size_t max = (size_t)r->b->env->cfg->obuf_soft_bytes / 2;
            if (n > max) {
                req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                         "the report would take %zu bytes (more than %zu); ask for one town", n,
                         max);
                return;
            }
            conn_send(r->c, &env);
        }
    } else if (r->out == OUT_JSON || r->out == OUT_CSV) {
        struct evhttp_request *h = req_take_http(r);
        if (h) {
            size_t n;
            char *body = r->out == OUT_CSV ? report_csv(&r->rep, r->scope, &n)
                                           : report_json(&r->rep, r->scope, &n);
            http_send(r->b->env->http, h, 200,
                      r->out == OUT_CSV ? "text/csv; charset=utf-8"
                                        : "application/json; charset=utf-8",
                      body, n);
            free(body);
        }
    }
    req_free(r);
}

/* ---- validation (both doors) ------------------------------------------------------------ */

static CalDay today(void)
{
    int minute;
    return cal_day_of(util_wall_ms(), &minute);
}

/* Checks r's fields against the directory and fills the defaults; on a bad field answers
 * INVALID_ARGUMENT (r is freed) and returns false. from_s/to_s/day_s: as given ("" = none). */
static bool req_check(Req *r, const char *from_s, const char *to_s, const char *day_s)
{
    const Bureau *s = r->b;
    if (r->scope < SCOPE(COUNTY) || r->scope > SCOPE(SNAPSHOT)) {
        req_fail(r, ERRC(INVALID_ARGUMENT), "scope", "scope %d is not a coverage scope",
                 (int)r->scope);
        return false;
    }
    const DirSnap *snap = dir_snap(dispatch_directory(s->dispatch));
    if (!snap) {
        req_fail(r, ERRC(UNAVAILABLE), NULL,
                 "the station directory is not loaded yet; retry shortly");
        return false;
    }
    if (r->town[0]) {
        if (r->scope == SCOPE(SNAPSHOT)) {
            req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                     "snapshots are written for the whole county; leave the town out");
            return false;
        }
        if (strlen(r->town) != 12 || strspn(r->town, "0123456789") != 12) {
            req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                     "town code '%.20s' is not a 12-digit division code", r->town);
            return false;
        }
        if (town_index(snap, r->town) < 0 || !in_county(r->town, s->env->cfg->county_code)) {
            req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                     "unknown town code %s (not a town of county %s)", r->town,
                     s->env->cfg->county_code);
            return false;
        }
    }
    CalDay now = today();
    bool has_from = from_s && from_s[0], has_to = to_s && to_s[0];
    if (has_from && !cal_parse(from_s, &r->from)) {
        req_fail(r, ERRC(INVALID_ARGUMENT), "from_date", "from '%.20s' is not a date YYYY-MM-DD",
                 from_s);
        return false;
    }
    if (has_to && !cal_parse(to_s, &r->to)) {
        req_fail(r, ERRC(INVALID_ARGUMENT), "to_date", "to '%.20s' is not a date YYYY-MM-DD", to_s);
        return false;
    }
    if (!has_to)
        r->to = has_from && r->from > now ? r->from : now;
    if (!has_from)
        r->from = r->scope == SCOPE(HISTORY) ? r->to - (HISTORY_DEFAULT_DAYS - 1) : r->to;
    if (r->from > r->to) {
        char a[11], b[11];
        cal_format(r->from, a);
        cal_format(r->to, b);
        req_fail(r, ERRC(INVALID_ARGUMENT), "from_date", "from %s is after to %s", a, b);
        return false;
    }
    if (r->to - r->from + 1 > BUREAU_MAX_RANGE_DAYS) {
        req_fail(r, ERRC(INVALID_ARGUMENT), "to_date",
                 "the range spans %d days; at most %d are allowed", (int)(r->to - r->from + 1),
                 BUREAU_MAX_RANGE_DAYS);
        return false;
    }
    if (r->target != 0 || r->scope == SCOPE(PLAN)) {
        if (r->target != 0 && !(r->target > 0 && r->target <= 1)) {
            req_fail(r, ERRC(INVALID_ARGUMENT), "target",
                     "target %g is outside (0, 1] (a share of villages, e.g. 0.95)", r->target);
            return false;
        }
    }
    r->day = now;
    if (day_s && day_s[0]) {
        if (!cal_parse(day_s, &r->day)) {
            req_fail(r, ERRC(INVALID_ARGUMENT), "day", "day '%.20s' is not a date YYYY-MM-DD",
                     day_s);
            return false;
        }
        if (r->day > now || now - r->day >= BUREAU_MAX_RANGE_DAYS) {
            req_fail(r, ERRC(INVALID_ARGUMENT), "day",
                     "a snapshot may be dated today or up to %d days back",
                     BUREAU_MAX_RANGE_DAYS - 1);
            return false;
        }
    }
    return true;
}

/* ---- the protocol door ------------------------------------------------------------------ */

static void handle_query(void *arg, Conn *c, Envelope *env)
{
    Bureau *b = arg;
    const Careline__V1__CoverageQuery *q = env->coverage_query;
    Req *r = req_new(b, OUT_PROTO);
    r->c = c;
    r->seq = env->seq;
    conn_ref(c);
    conn_inflight_begin(c);
    r->scope = q->scope;
    snprintf(r->town, sizeof(r->town), "%s", q->town_code ? q->town_code : "");
    bool bad_town = q->town_code && strlen(q->town_code) >= sizeof(r->town);
    r->target = q->target;
    if (q->uncovered_only && q->covered_only) {
        frame_free(env);
        req_fail(r, ERRC(INVALID_ARGUMENT), "covered_only",
                 "uncovered_only and covered_only exclude each other");
        return;
    }
    r->covered = q->uncovered_only ? 0 : q->covered_only ? 1 : -1;
    char from[16], to[16], day[16];
    snprintf(from, sizeof(from), "%s", q->from_date ? q->from_date : "");
    snprintf(to, sizeof(to), "%s", q->to_date ? q->to_date : "");
    snprintf(day, sizeof(day), "%s", q->day ? q->day : "");
    frame_free(env);
    if (bad_town) {
        req_fail(r, ERRC(INVALID_ARGUMENT), "town_code", "town code is not a 12-digit code");
        return;
    }
    if (req_check(r, from, to, day))
        req_start(r);
}

/* ---- the HTTP door ---------------------------------------------------------------------- */

enum {
    P_TOWN = 1 << 0,
    P_FROM = 1 << 1,
    P_TO = 1 << 2,
    P_COVERED = 1 << 3,
    P_TARGET = 1 << 4,
    P_DAY = 1 << 5,
    P_FORMAT = 1 << 6,
};

typedef struct {
    const char *path;
    Scope scope;
    unsigned params; /* P_* accepted */
    bool post;       /* POST only (else GET/HEAD only) */
} HttpRoute;

static const HttpRoute http_routes[] = {
    {"/v1/coverage", SCOPE(COUNTY), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/coverage/towns", SCOPE(TOWNS), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/coverage/villages", SCOPE(VILLAGES), P_TOWN | P_COVERED | P_FORMAT, false},
    {"/v1/coverage/history", SCOPE(HISTORY), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/plan", SCOPE(PLAN), P_TOWN | P_TARGET | P_FORMAT, false},
    {"/v1/realized", SCOPE(REALIZED), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/coverage/snapshot", SCOPE(SNAPSHOT), P_DAY | P_FORMAT, true},
};

static const HttpRoute *route_of(const char *path)
{
    for (size_t i = 0; i < ARRAY_LEN(http_routes); i++)
        if (strcmp(http_routes[i].path, path) == 0)
            return &http_routes[i];
    return NULL;
}

/* After auth: parses the query string and starts the work. */
static void http_continue(Req *r, const HttpRoute *rt)
{
    struct evhttp_request *h = r->hreq;
    if (!h) {
        req_free(r);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(h);
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq kv;
    kv.tqh_first = NULL; /* TAILQ_INIT without sys/queue.h */
    kv.tqh_last = &kv.tqh_first;
    if (qs && evhttp_parse_query_str(qs, &kv) != 0) {
        evhttp_clear_headers(&kv);
        req_fail(r, ERRC(INVALID_ARGUMENT), "query",
                 "malformed query string (expected name=value pairs joined by &)");
        return;
    }
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"town", P_TOWN},       {"from", P_FROM},     {"to", P_TO},
                 {"covered", P_COVERED}, {"target", P_TARGET}, {"day", P_DAY},
                 {"format", P_FORMAT}};
    char from[16] = "", to[16] = "", day[16] = "";
    bool fmt_given = false;
    for (struct evkeyval *e = kv.tqh_first; e; e = e->next.tqe_next) {
        unsigned bit = 0;
        for (size_t i = 0; i < ARRAY_LEN(names); i++)
            if (strcmp(names[i].name, e->key) == 0)
                bit = names[i].bit;
        const char *v = e->value;
        const char *why = NULL;
        if (!(bit & rt->params)) {
            why = "is not a parameter of this endpoint";
        } else if (strlen(v) > 32) {
            why = "is too long";
        } else if (bit == P_TOWN) {
            snprintf(r->town, sizeof(r->town), "%.*s", (int)sizeof(r->town) - 1, v);
            if (strlen(v) >= sizeof(r->town) || !v[0])
                why = "must be a 12-digit town code";
        } else if (bit == P_FROM) {
            snprintf(from, sizeof(from), "%.*s", (int)sizeof(from) - 1, v);
            if (!v[0])
                why = "must be a date YYYY-MM-DD";
        } else if (bit == P_TO) {
            snprintf(to, sizeof(to), "%.*s", (int)sizeof(to) - 1, v);
            if (!v[0])
                why = "must be a date YYYY-MM-DD";
        } else if (bit == P_DAY) {
            snprintf(day, sizeof(day), "%.*s", (int)sizeof(day) - 1, v);
            if (!v[0])
                why = "must be a date YYYY-MM-DD";
        } else if (bit == P_COVERED) {
            if (strcmp(v, "true") == 0)
                r->covered = 1;
            else if (strcmp(v, "false") == 0)
                r->covered = 0;
            else
                why = "must be true or false";
        } else if (bit == P_TARGET) {
            char *end;
            r->target = strtod(v, &end);
            if (!v[0] || *end || !(r->target > 0 && r->target <= 1))
                why = "must be a number in (0, 1], e.g. 0.95";
        } else if (bit == P_FORMAT) {
            fmt_given = true;
            if (strcmp(v, "csv") == 0)
                r->out = OUT_CSV;
            else if (strcmp(v, "json") == 0)
                r->out = OUT_JSON;
            else
                why = "must be json or csv";
        }
        if (why) {
            char key[40];
            snprintf(key, sizeof(key), "%s", e->key);
            evhttp_clear_headers(&kv);
            req_fail(r, ERRC(INVALID_ARGUMENT), key, "parameter '%s' %s", key, why);
            return;
        }
    }
    evhttp_clear_headers(&kv);
    if (!fmt_given) {
        const char *acc = evhttp_find_header(evhttp_request_get_input_headers(h), "Accept");
        if (acc && strstr(acc, "text/csv"))
            r->out = OUT_CSV;
    }
    if (req_check(r, from, to, day))
        req_start(r);
}

typedef struct {
    Req *r;
    const HttpRoute *rt;
    char hex[2 * AUTH_HASH_LEN + 1];
} AuthOp;

static bool role_may_read(Role role)
{
    return role == CARELINE__V1__ROLE__ROLE_BUREAU || role == CARELINE__V1__ROLE__ROLE_ADMIN;
}

static void auth_decided(Req *r, const HttpRoute *rt, Role role)
{
    if (role == CARELINE__V1__ROLE__ROLE_UNSPECIFIED) {
        r->b->env->metrics->auth_failed++;
        req_fail(r, ERRC(AUTH_FAILED), NULL, "unknown or revoked token");
    } else if (!role_may_read(role)) {
        req_fail(r, ERRC(FORBIDDEN), NULL, "the %s role may not read coverage figures",
                 auth_role_name(role));
    } else {
        http_continue(r, rt);
    }
}

static void auth_done(PGresult *res, const char *err, void *arg)
{
    AuthOp *op = arg;
    Req *r = op->r;
    if (!res) {
        req_fail(r, ERRC(UNAVAILABLE), NULL, "cannot check the token now: %s", err);
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("bureau: token lookup failed: %s", PQresultErrorMessage(res));
        req_fail(r, ERRC(UNAVAILABLE), NULL, "cannot check the token now");
    } else {
        Role role = PQntuples(res) == 1 ? auth_role_parse(PQgetvalue(res, 0, 0))
                                        : CARELINE__V1__ROLE__ROLE_UNSPECIFIED;
        if (role != CARELINE__V1__ROLE__ROLE_UNSPECIFIED) {
            Bureau *b = r->b;
            AuthSlot *slot = &b->auth[b->auth_next++ % AUTH_CACHE_SLOTS];
            memcpy(slot->hex, op->hex, sizeof(slot->hex));
            slot->role = role;
            slot->expires_ms = util_now_ms() + AUTH_CACHE_TTL_MS;
        }
        auth_decided(r, op->rt, role);
    }
    free(op);
}

static void http_entry(void *arg, struct evhttp_request *h)
{
    Bureau *b = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(h);
    const HttpRoute *rt = route_of(evhttp_uri_get_path(uri));
    ASSERT(rt); /* only our paths are routed here */
    enum evhttp_cmd_type cmd = evhttp_request_get_command(h);
    bool post = cmd == EVHTTP_REQ_POST;
    if (post != rt->post) {
        evhttp_add_header(evhttp_request_get_output_headers(h), "Allow",
                          rt->post ? "POST" : "GET, HEAD");
        http_error(b->env->http, h, 405, "METHOD_NOT_ALLOWED", NULL,
                   rt->post ? "use POST for this endpoint" : "use GET for this endpoint");
        return;
    }
    Req *r = req_new(b, OUT_JSON);
    r->scope = rt->scope;
    req_watch_http(r, h);
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(h), "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        req_fail(r, ERRC(NOT_AUTHENTICATED), NULL,
                 "missing bearer token: send Authorization: Bearer TOKEN (a bureau token)");
        return;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    if (!auth_token_well_formed(tok)) {
        r->b->env->metrics->auth_failed++;
        req_fail(r, ERRC(AUTH_FAILED), NULL,
                 "malformed token (expected 1..256 printable ASCII characters)");
        return;
    }
    AuthOp *op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->rt = rt;
    auth_token_hash_hex(tok, op->hex);
    int64_t now = util_now_ms();
    for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) {
        AuthSlot *slot = &b->auth[i];
        if (slot->hex[0] && slot->expires_ms > now && strcmp(slot->hex, op->hex) == 0) {
            Role role = slot->role;
            free(op);
            auth_decided(r, rt, role);
            return;
        }
    }
    const char *params[] = {op->hex};
    if (!pg_query(b->env->pg, AUTH_LOOKUP_SQL, 1, params, auth_done, op)) {
        free(op);
        req_fail(r, ERRC(OVERLOADED), NULL, "too many queries waiting for the database");
    }
}

/* ---- the daily snapshot ----------------------------------------------------------------- */

static void timer_arm(Bureau *b, int64_t delay_ms)
{
    util_timer_ms(b->timer, delay_ms);
}

static int64_t ms_to_next_snapshot(void)
{
    int64_t now = util_wall_ms();
    int minute;
    CalDay d = cal_day_of(now, &minute);
    int64_t due = cal_unix_ms(d, BUREAU_SNAPSHOT_MINUTE);
    if (due <= now + 500)
        due = cal_unix_ms(d + 1, BUREAU_SNAPSHOT_MINUTE);
    return due - now;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Bureau *b = arg;
    if (b->env->stopping)
        return;
    if (!dispatch_ready(b->dispatch) || !pg_pool_ready(b->env->pg)) {
        log_warn("bureau: daily snapshot postponed: directory or database not ready");
        timer_arm(b, RETRY_SNAPSHOT_MS);
        return;
    }
    Req *r = req_new(b, OUT_NONE);
    r->scope = SCOPE(SNAPSHOT);
    r->day = r->from = r->to = today();
    req_start(r);
    timer_arm(b, ms_to_next_snapshot());
}

/* ---- life cycle ------------------------------------------------------------------------- */

Bureau *bureau_new(const Env *env, Dispatch *dispatch)
{
    Bureau *b = xcalloc(1, sizeof(*b));
    b->env = env;
    b->dispatch = dispatch;
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY, handle_query, b);
    for (size_t i = 0; i < ARRAY_LEN(http_routes); i++)
        http_route(env->http, http_routes[i].path, http_entry, b);
    b->timer = evtimer_new(env->base, timer_cb, b);
    timer_arm(b, ms_to_next_snapshot());
    return b;
}

void bureau_free(Bureau *b)
{
    if (!b)
        return;
    if (b->timer)
        event_free(b->timer);
    free(b);
}
