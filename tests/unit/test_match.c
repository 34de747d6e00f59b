/*
 * Matching against a brute-force scan: thousands of random residents over random stations
 * (random services, hours, days, capacities, open flags, explicit service areas), with
 * stations on duplicate coordinates (ties) and stations placed exactly on the circle's edge.
 * Also the calendar and the spoken sentences.
 */
#include <math.h>
#include <stdlib.h>

#include "base/cal.h"
#include "core/match.h"
#include "core/speech.h"
#include "t.h"

static uint64_t rng = 42;
static uint64_t next(void)
{
    rng += 0x9e3779b97f4a7c15ull;
    uint64_t z = rng;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(double lo, double hi)
{
    return lo + (hi - lo) * (double)(next() >> 11) / 9007199254740992.0;
}
static int pick(int n)
{
    return (int)(next() % (uint64_t)n);
}

/* A random world: villages and stations in a Yuyao-sized box. */
static DirSnap *world(int nst, int nvil)
{
    DirSnap *s = calloc(1, sizeof(*s));
    s->nvillages = nvil;
    s->villages = calloc((size_t)nvil, sizeof(Village));
    for (int i = 0; i < nvil; i++) {
        Village *v = &s->villages[i];
        snprintf(v->code, sizeof(v->code), "3302810%05u", (unsigned)i % 100000u);
        v->lat = unif(29.8, 30.2);
        v->lon = unif(120.95, 121.4);
        v->area = (GeoAreaKind)pick(3);
    }
    s->nstations = nst;
    s->stations = calloc((size_t)nst, sizeof(Station));
    StStation *idx = calloc((size_t)nst, sizeof(StStation));
    for (int i = 0; i < nst; i++) {
        Station *st = &s->stations[i];
        st->id = i + 1;
        if (i > 0 && pick(10) == 0) { /* a tie: same place as another station */
            st->lat = s->stations[i - 1].lat;
            st->lon = s->stations[i - 1].lon;
        } else {
            st->lat = unif(29.8, 30.2);
            st->lon = unif(120.95, 121.4);
        }
        st->active = pick(10) != 0;
        st->meal = pick(4) != 0;
        st->care = pick(2) != 0;
        st->care_subtypes = (uint32_t)(next() & 0x3e);
        st->cap_lunch = pick(5) == 0 ? 0 : 1 + pick(50);
        st->cap_dinner = pick(40);
        st->caregivers = pick(8);
        st->caregivers_on_duty = pick(3) == 0 ? -1 : pick(5);
        st->opens_min = pick(3) == 0 ? 11 * 60 + 30 : 7 * 60;
        st->closes_min = pick(3) == 0 ? 17 * 60 : 19 * 60;
        st->open_days = pick(4) == 0 ? 0x1f : 0x7f;
        st->is_open = pick(8) != 0;
        idx[i] = (StStation){st->id, st->lat, st->lon,
                             (st->active ? ST_ACTIVE : 0) | (st->meal ? ST_MEAL : 0) |
                                 (st->care ? ST_HOME_CARE : 0),
                             (size_t)i};
    }
    s->index = stindex_new(idx, (size_t)nst);
    free(idx);
    /* explicit service areas: each village listed by 0..2 random stations, grouped */
    s->area_stations = calloc((size_t)nvil * 2, sizeof(int64_t));
    for (int i = 0; i < nvil; i++) {
        s->villages[i].first_area = s->narea;
        int k = pick(3);
        for (int j = 0; j < k; j++)
            s->area_stations[s->narea++] = 1 + pick(nst);
        s->villages[i].n_area = s->narea - s->villages[i].first_area;
    }
    return s;
}

static void world_free(DirSnap *s)
{
    stindex_free(s->index);
    free(s->villages);
    free(s->stations);
    free(s->area_stations);
    free(s);
}

static int cmp(const void *x, const void *y)
{
    const MatchCand *a = x, *b = y;
    if (a->minutes != b->minutes)
        return a->minutes < b->minutes ? -1 : 1;
    return (a->station_id > b->station_id) - (a->station_id < b->station_id);
}

static size_t brute(const DirSnap *s, const TravelModel *m, const MatchQuery *q, MatchCand *out,
                    size_t max)
{
    MatchCand *all = calloc((size_t)s->nstations, sizeof(*all));
    size_t n = 0;
    for (int i = 0; i < s->nstations; i++) {
        const Station *st = &s->stations[i];
        if (!match_station_ok(st, q))
            continue;
        double km = geo_km(q->lat, q->lon, st->lat, st->lon);
        double min = geo_minutes(m, q->area, km);
        bool listed = false;
        const Village *v = &s->villages[q->village];
        for (int k = 0; k < v->n_area; k++)
            listed |= s->area_stations[v->first_area + k] == st->id;
        if (min <= m->circle_min || listed)
            all[n++] = (MatchCand){st->id, km, min, match_capacity(st, q), min > m->circle_min};
    }
    qsort(all, n, sizeof(*all), cmp);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}

static MatchQuery random_query(const DirSnap *s)
{
    int v = pick(s->nvillages);
    MatchQuery q = {
        .lat = s->villages[v].lat + unif(-0.01, 0.01),
        .lon = s->villages[v].lon + unif(-0.01, 0.01),
        .area = s->villages[v].area,
        .village = v,
        .service = (MatchService)pick(3),
        .care_subtype = 1 + pick(5),
        .weekday = 1 + pick(7),
        .start_min = pick(2) ? 11 * 60 : 17 * 60,
        .today = pick(2) == 0,
        .care_visits_per_caregiver = 4,
    };
    q.end_min = q.start_min + 90;
    return q;
}

static void check_same(const DirSnap *s, const TravelModel *m, const MatchQuery *q, size_t max)
{
    MatchCand a[64], b[64];
    size_t na = match_find(s, m, q, a, max);
    size_t nb = brute(s, m, q, b, max);
    if (na != nb)
        t_fail(__FILE__, __LINE__, "match found %zu, brute force %zu", na, nb);
    for (size_t i = 0; i < na; i++) {
        if (a[i].station_id != b[i].station_id || a[i].minutes != b[i].minutes ||
            a[i].limit != b[i].limit)
            t_fail(__FILE__, __LINE__, "candidate %zu: station %lld (%.6f min) vs %lld (%.6f)", i,
                   (long long)a[i].station_id, a[i].minutes, (long long)b[i].station_id,
                   b[i].minutes);
    }
}

static void matches_brute_force(void)
{
    DirSnap *s = world(400, 300);
    TravelModel m = geo_model_default;
    for (int i = 0; i < 5000; i++) {
        MatchQuery q = random_query(s);
        check_same(s, &m, &q, (size_t)(1 + pick(10)));
        check_same(s, &m, &q, 64);
    }
    world_free(s);
}

/* A station exactly on the circle's edge is in; a hair beyond is out — both paths agree. */
static void edge_of_circle(void)
{
    DirSnap *s = world(50, 20);
    TravelModel m = geo_model_default;
    for (int trial = 0; trial < 300; trial++) {
        MatchQuery q = random_query(s);
        q.service = MATCH_MEAL_LUNCH;
        q.today = false;
        q.weekday = 1;
        /* move station 1 to the last point along a bearing still within the circle */
        double bearing = unif(0, 6.283185307179586), lo = 0, hi = 0.2;
        for (int it = 0; it < 200; it++) {
            double mid = (lo + hi) / 2;
            double la = q.lat + mid * cos(bearing), lo2 = q.lon + mid * sin(bearing);
            if (geo_minutes(&m, q.area, geo_km(q.lat, q.lon, la, lo2)) <= m.circle_min)
                lo = mid;
            else
                hi = mid;
        }
        Station *st = &s->stations[0];
        st->lat = q.lat + lo * cos(bearing);
        st->lon = q.lon + lo * sin(bearing);
        st->active = st->meal = true;
        st->cap_lunch = 10;
        st->opens_min = 0;
        st->closes_min = 1440;
        st->open_days = 0x7f;
        StStation x = {st->id, st->lat, st->lon, ST_ACTIVE | ST_MEAL, 0};
        T_ASSERT(stindex_upsert(s->index, &x));
        check_same(s, &m, &q, 64);
        MatchCand a[64];
        size_t n = match_find(s, &m, &q, a, 64);
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= a[i].station_id == 1;
        T_ASSERT(found);
    }
    world_free(s);
}

/* Each eligibility rule on its own, so a wrong rule cannot hide behind the brute-force
 * comparison (which shares match_station_ok). */
static void eligibility_rules(void)
{
    const Station base = {
        .id = 1,
        .active = true,
        .meal = true,
        .care = true,
        .care_subtypes = (1u << CARELINE__V1__CARE_SUBTYPE__BATHING) |
                         (1u << CARELINE__V1__CARE_SUBTYPE__CLEANING),
        .cap_lunch = 10,
        .cap_dinner = 0,
        .caregivers = 2,
        .caregivers_on_duty = -1,
        .opens_min = 7 * 60,
        .closes_min = 19 * 60,
        .open_days = 0x1f, /* Monday to Friday */
        .is_open = true,
    };
    const MatchQuery lunch = {.service = MATCH_MEAL_LUNCH,
                              .weekday = 1,
                              .start_min = 660,
                              .end_min = 750,
                              .today = true,
                              .care_visits_per_caregiver = 4};
    Station st = base;
    MatchQuery q = lunch;
    T_ASSERT(match_station_ok(&st, &q));
    T_EQ_INT(match_capacity(&st, &q), 10);
    q.service = MATCH_MEAL_DINNER; /* no dinner capacity */
    T_ASSERT(!match_station_ok(&st, &q));
    q = lunch;
    q.weekday = 6; /* closed on Saturdays */
    T_ASSERT(!match_station_ok(&st, &q));
    st.opens_min = 11 * 60 + 30; /* opens after the slot starts */
    q = lunch;
    T_ASSERT(!match_station_ok(&st, &q));
    st = base;
    st.closes_min = 12 * 60; /* closes before the slot ends */
    T_ASSERT(!match_station_ok(&st, &q));
    st = base;
    st.is_open = false; /* reported closed: counts for today only */
    T_ASSERT(!match_station_ok(&st, &q));
    q.today = false;
    T_ASSERT(match_station_ok(&st, &q));
    st = base;
    st.active = false;
    T_ASSERT(!match_station_ok(&st, &q));
    st = base;
    st.meal = false;
    T_ASSERT(!match_station_ok(&st, &q));
    /* home care: the subtype must be offered; capacity is staff x visits */
    st = base;
    q = lunch;
    q.service = MATCH_CARE;
    q.care_subtype = CARELINE__V1__CARE_SUBTYPE__CLEANING;
    T_ASSERT(match_station_ok(&st, &q));
    T_EQ_INT(match_capacity(&st, &q), 8);
    q.care_subtype = CARELINE__V1__CARE_SUBTYPE__COMPANIONSHIP;
    T_ASSERT(!match_station_ok(&st, &q));
    q.care_subtype = CARELINE__V1__CARE_SUBTYPE__BATHING;
    st.caregivers_on_duty = 0; /* nobody on duty today */
    T_ASSERT(!match_station_ok(&st, &q));
    q.today = false; /* another day: the roster, not today's report */
    T_ASSERT(match_station_ok(&st, &q));
    T_EQ_INT(match_capacity(&st, &q), 8);
    st.care = false;
    T_ASSERT(!match_station_ok(&st, &q));
}

static void calendar(void)
{
    CalDay d;
    T_ASSERT(cal_parse("2026-11-29", &d));
    T_EQ_INT(cal_weekday(d), 7); /* a Sunday */
    char b[11];
    cal_format(d + 1, b);
    T_EQ_STR(b, "2026-11-30");
    T_ASSERT(cal_parse("2024-02-29", &d));
    T_ASSERT(!cal_parse("2026-02-29", &d));
    T_ASSERT(!cal_parse("2026-02-30", &d));
    T_ASSERT(!cal_parse("2026-13-01", &d));
    T_ASSERT(!cal_parse("26-1-1", &d));
    T_ASSERT(!cal_parse("2026-01-01x", &d));
    /* 2026-11-29 00:30 in Shanghai is 2026-11-28 16:30 UTC */
    int minute;
    T_ASSERT(cal_parse("2026-11-29", &d));
    int64_t ms = cal_unix_ms(d, 30);
    T_EQ_INT(ms, 1795883400000LL);
    T_EQ_INT(cal_day_of(ms, &minute), d);
    T_EQ_INT(minute, 30);
}

static void sentences(void)
{
    CalDay d;
    T_ASSERT(cal_parse("2026-11-30", &d));
    char out[512];
    SpeechArgs a = {CARELINE__V1__REQUEST_STATE__QUEUED,
                    0,
                    CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY,
                    CARELINE__V1__MEAL_SLOT__LUNCH,
                    0,
                    "凤山街道居家养老服务中心",
                    cal_unix_ms(d, 11 * 60),
                    cal_unix_ms(d, 12 * 60 + 30),
                    cal_unix_ms(d - 1, 9 * 60),
                    false,
                    7};
    speech_request(&a, out, sizeof(out));
    T_EQ_STR(out, "好的，凤山街道居家养老服务中心会在明天11点到12点半把午餐送到您家。");
    a.state = CARELINE__V1__REQUEST_STATE__WAITLISTED;
    a.priority = true;
    speech_request(&a, out, sizeof(out));
    T_ASSERT(strstr(out, "优先") != NULL);
    a.state = CARELINE__V1__REQUEST_STATE__REJECTED;
    a.reason = CARELINE__V1__REASON_CODE__SLOT_PASSED;
    speech_request(&a, out, sizeof(out));
    T_EQ_STR(out, "今天的午餐送餐时间已经过了，您可以预订明天的午餐。");
    speech_cancel(true, 0, out, sizeof(out));
    T_EQ_STR(out, "好的，已经为您取消了。");
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"match_equals_brute_force", matches_brute_force, 240},
        {"match_edge_of_circle", edge_of_circle, 120},
        {"match_eligibility_rules", eligibility_rules, 0},
        {"cal_calendar", calendar, 0},
        {"speech_sentences", sentences, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
