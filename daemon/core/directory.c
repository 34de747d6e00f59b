/*
 * directory: four queries (towns, villages, stations, service areas) run one after the
 * other on the pool; the snapshot is built when the last arrives. A NOTIFY during a load
 * marks the load stale so another follows, so the snapshot never misses a change.
 */
#include "core/directory.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/pgcols.h"

enum { STEP_TOWNS, STEP_VILLAGES, STEP_STATIONS, STEP_AREAS, STEP_DONE };

/* Every computed column has an alias: the readers below look columns up by name. */
static const char *const step_sql[] = {
    "SELECT code, name FROM towns ORDER BY code",
    "SELECT code, name, town_code, lat, lon, area_kind, elderly_population, "
    "approx_location FROM villages ORDER BY code",
    "SELECT id, name, town_code, coalesce(village_code, '') AS village_code, lat, lon, active, "
    "offers_meal_delivery, offers_home_care, "
    "array_to_string(care_subtypes, ',') AS care_subtypes, "
    "meal_capacity_lunch, meal_capacity_dinner, caregivers, caregivers_certified, "
    "coalesce(caregivers_on_duty, -1) AS caregivers_on_duty, "
    "(extract(epoch FROM opens_at) / 60)::int AS opens_min, "
    "(extract(epoch FROM closes_at) / 60)::int AS closes_min, "
    "open_days, is_open, has_terminal FROM stations ORDER BY id",
    "SELECT a.village_code, a.station_id FROM station_service_area a ORDER BY 1, 2",
};

enum { T_CODE, T_NAME, T_N };
static const char *const town_cols[T_N] = {"code", "name"};

enum { V_CODE, V_NAME, V_TOWN, V_LAT, V_LON, V_AREA, V_ELDERLY, V_APPROX, V_N };
static const char *const village_cols[V_N] = {
    "code", "name",      "town_code",          "lat",
    "lon",  "area_kind", "elderly_population", "approx_location"};

enum {
    S_ID,
    S_NAME,
    S_TOWN,
    S_VILLAGE,
    S_LAT,
    S_LON,
    S_ACTIVE,
    S_MEAL,
    S_CARE,
    S_SUBTYPES,
    S_CAP_LUNCH,
    S_CAP_DINNER,
    S_CAREGIVERS,
    S_CERTIFIED,
    S_ON_DUTY,
    S_OPENS,
    S_CLOSES,
    S_OPEN_DAYS,
    S_IS_OPEN,
    S_TERMINAL,
    S_N
};
static const char *const station_cols[S_N] = {
    [S_ID] = "id",
    [S_NAME] = "name",
    [S_TOWN] = "town_code",
    [S_VILLAGE] = "village_code",
    [S_LAT] = "lat",
    [S_LON] = "lon",
    [S_ACTIVE] = "active",
    [S_MEAL] = "offers_meal_delivery",
    [S_CARE] = "offers_home_care",
    [S_SUBTYPES] = "care_subtypes",
    [S_CAP_LUNCH] = "meal_capacity_lunch",
    [S_CAP_DINNER] = "meal_capacity_dinner",
    [S_CAREGIVERS] = "caregivers",
    [S_CERTIFIED] = "caregivers_certified",
    [S_ON_DUTY] = "caregivers_on_duty",
    [S_OPENS] = "opens_min",
    [S_CLOSES] = "closes_min",
    [S_OPEN_DAYS] = "open_days",
    [S_IS_OPEN] = "is_open",
    [S_TERMINAL] = "has_terminal",
};

enum { A_VILLAGE, A_STATION, A_N };
static const char *const area_cols[A_N] = {"village_code", "station_id"};

struct Directory {
    PgPool *pg;
    DirSnap *snap;     /* current, or NULL */
    DirSnap *building; /* being loaded */
    int step;
    bool loading;
    bool stale; /* a change arrived while loading: load again after */
    uint64_t version;
    void (*on_change)(void *);
    void *arg;
};

static void snap_free(DirSnap *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->ntowns; i++)
        free(s->towns[i].name);
    for (int i = 0; i < s->nvillages; i++)
        free(s->villages[i].name);
    for (int i = 0; i < s->nstations; i++)
        free(s->stations[i].name);
    free(s->towns);
    free(s->villages);
    free(s->stations);
    free(s->area_stations);
    stindex_free(s->index);
    stindex_free(s->village_index);
    free(s);
}

/* Binary search by code in an array sorted by code whose elements start with the code. */
static int code_index(const void *base, int n, size_t stride, const char *code)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp((const char *)base + (size_t)mid * stride, code);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int town_index(const DirSnap *s, const char *code)
{
    return code_index(s->towns, s->ntowns, sizeof(Town), code);
}

static int village_index(const DirSnap *s, const char *code)
{
    return code_index(s->villages, s->nvillages, sizeof(Village), code);
}

const Village *dir_village(const DirSnap *s, const char *code)
{
    int i = village_index(s, code);
    return i < 0 ? NULL : &s->villages[i];
}

const Station *dir_station(const DirSnap *s, int64_t id)
{
    const StStation *st = stindex_get(s->index, id);
    return st ? &s->stations[st->user] : NULL;
}

/* Binds the step's wanted columns to res; a missing one is logged as the step's failure. */
static bool bind_cols(PgCols *pc, PGresult *res, const char *const *names, size_t n,
                      const char *what)
{
    if (pgcols_bind(pc, res, names, n))
        return true;
    log_error("directory: the %s query returned no column \"%s\"", what, pc->missing);
    return false;
}

static uint32_t parse_subtypes(const char *csv)
{
    static const char *const names[] = {
        "", "bathing", "cleaning", "companionship", "medical_escort", "care_other"};
    uint32_t bits = 0;
    for (size_t i = 1; i < ARRAY_LEN(names); i++) {
        const char *p = strstr(csv, names[i]);
        if (p)
            bits |= 1u << i;
    }
    return bits;
}

static bool take_towns(DirSnap *s, PGresult *r)
{
    PgCols c = {0};
    if (!bind_cols(&c, r, town_cols, T_N, "towns"))
        return false;
    s->ntowns = PQntuples(r);
    s->towns = xcalloc((size_t)s->ntowns, sizeof(Town));
    for (int i = 0; i < s->ntowns; i++) {
        snprintf(s->towns[i].code, sizeof(s->towns[i].code), "%s", pgcols_str(&c, i, T_CODE));
        s->towns[i].name = xstrdup(pgcols_str(&c, i, T_NAME));
    }
    return true;
}

static bool take_villages(DirSnap *s, PGresult *r)
{
    PgCols c = {0};
    if (!bind_cols(&c, r, village_cols, V_N, "villages"))
        return false;
    s->nvillages = PQntuples(r);
    s->villages = xcalloc((size_t)s->nvillages, sizeof(Village));
    for (int i = 0; i < s->nvillages; i++) {
        Village *v = &s->villages[i];
        snprintf(v->code, sizeof(v->code), "%s", pgcols_str(&c, i, V_CODE));
        v->name = xstrdup(pgcols_str(&c, i, V_NAME));
        v->town = town_index(s, pgcols_str(&c, i, V_TOWN));
        v->lat = pgcols_double(&c, i, V_LAT);
        v->lon = pgcols_double(&c, i, V_LON);
        if (!geo_area_parse(pgcols_str(&c, i, V_AREA), &v->area))
            v->area = GEO_RURAL;
        v->elderly = pgcols_int(&c, i, V_ELDERLY);
        v->approx = pgcols_bool(&c, i, V_APPROX);
    }
    StStation *pts = xcalloc((size_t)s->nvillages, sizeof(StStation));
    for (int i = 0; i < s->nvillages; i++)
        pts[i] = (StStation){i, s->villages[i].lat, s->villages[i].lon, 0, (size_t)i};
    s->village_index = stindex_new(pts, (size_t)s->nvillages);
    free(pts);
    return true;
}

bool dir_near_village(const DirSnap *s, double lat, double lon, double km)
{
    StHit hit;
    return s->village_index &&
           stindex_nearest(s->village_index, lat, lon, km, NULL, NULL, &hit, 1) > 0;
}

/* false when a column is missing or the index rejects the data (both logged). */
static bool take_stations(DirSnap *s, PGresult *r)
{
    PgCols c = {0};
    if (!bind_cols(&c, r, station_cols, S_N, "stations"))
        return false;
    s->nstations = PQntuples(r);
    s->stations = xcalloc((size_t)s->nstations, sizeof(Station));
    StStation *idx = xcalloc((size_t)s->nstations, sizeof(StStation));
    for (int i = 0; i < s->nstations; i++) {
        Station *st = &s->stations[i];
        st->id = pgcols_ll(&c, i, S_ID);
        st->name = xstrdup(pgcols_str(&c, i, S_NAME));
        st->town = town_index(s, pgcols_str(&c, i, S_TOWN));
        st->village = village_index(s, pgcols_str(&c, i, S_VILLAGE));
        st->lat = pgcols_double(&c, i, S_LAT);
        st->lon = pgcols_double(&c, i, S_LON);
        st->active = pgcols_bool(&c, i, S_ACTIVE);
        st->meal = pgcols_bool(&c, i, S_MEAL);
        st->care = pgcols_bool(&c, i, S_CARE);
        st->care_subtypes = parse_subtypes(pgcols_str(&c, i, S_SUBTYPES));
        st->cap_lunch = pgcols_int(&c, i, S_CAP_LUNCH);
        st->cap_dinner = pgcols_int(&c, i, S_CAP_DINNER);
        st->caregivers = pgcols_int(&c, i, S_CAREGIVERS);
        st->caregivers_certified = pgcols_int(&c, i, S_CERTIFIED);
        st->caregivers_on_duty = pgcols_int(&c, i, S_ON_DUTY);
        st->opens_min = pgcols_int(&c, i, S_OPENS);
        st->closes_min = pgcols_int(&c, i, S_CLOSES);
        st->open_days = pgcols_int(&c, i, S_OPEN_DAYS);
        st->is_open = pgcols_bool(&c, i, S_IS_OPEN);
        st->has_terminal = pgcols_bool(&c, i, S_TERMINAL);
        idx[i] = (StStation){st->id, st->lat, st->lon,
                             (st->active ? ST_ACTIVE : 0) | (st->meal ? ST_MEAL : 0) |
                                 (st->care ? ST_HOME_CARE : 0),
                             (size_t)i};
    }
    s->index = stindex_new(idx, (size_t)s->nstations);
    free(idx);
    return s->index != NULL;
}

static bool take_areas(DirSnap *s, PGresult *r)
{
    PgCols c = {0};
    if (!bind_cols(&c, r, area_cols, A_N, "service areas"))
        return false;
    s->narea = PQntuples(r);
    s->area_stations = xcalloc((size_t)s->narea, sizeof(int64_t));
    for (int i = 0; i < s->nvillages; i++)
        s->villages[i].first_area = 0, s->villages[i].n_area = 0;
    /* rows are sorted by village code, so each village's stations are one slice */
    for (int i = 0; i < s->narea; i++) {
        s->area_stations[i] = pgcols_ll(&c, i, A_STATION);
        int v = village_index(s, pgcols_str(&c, i, A_VILLAGE));
        if (v < 0)
            continue;
        if (s->villages[v].n_area == 0)
            s->villages[v].first_area = i;
        s->villages[v].n_area++;
    }
    return true;
}

static void load_step(Directory *d);

static void load_cb(PGresult *res, const char *err, void *arg)
{
    Directory *d = arg;
    DirSnap *s = d->building;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("directory: loading failed at step %d: %s; retrying", d->step,
                 PG_ERRLINE(res, err));
        snap_free(s);
        d->building = NULL;
        d->loading = false;
        d->stale = true; /* the janitor-free retry: next reload request or notify */
        dir_reload(d);
        return;
    }
    bool ok = false;
    switch (d->step) {
    case STEP_TOWNS:
        ok = take_towns(s, res);
        break;
    case STEP_VILLAGES:
        ok = take_villages(s, res);
        break;
    case STEP_STATIONS:
        ok = take_stations(s, res);
        break;
    case STEP_AREAS:
        ok = take_areas(s, res);
        break;
    }
    if (!ok) {
        /* not retried at once: the same query would fail the same way; the next NOTIFY or
         * reconnect loads again, and the current snapshot stays in use meanwhile */
        log_error("directory: data rejected at step %d (see above); keeping version %llu", d->step,
                  (unsigned long long)(d->snap ? d->snap->version : 0));
        snap_free(s);
        d->building = NULL;
        d->loading = false;
        return;
    }
    d->step++;
    load_step(d);
}

static void load_step(Directory *d)
{
    if (d->step < STEP_DONE) {
        if (!pg_query(d->pg, step_sql[d->step], 0, NULL, load_cb, d)) {
            log_warn("directory: database queue full; reload postponed");
            snap_free(d->building);
            d->building = NULL;
            d->loading = false;
        }
        return;
    }
    DirSnap *old = d->snap;
    d->snap = d->building;
    d->snap->version = ++d->version;
    d->building = NULL;
    d->loading = false;
    log_info("directory: %d towns, %d villages, %d stations, %d service-area entries "
             "(version %llu)",
             d->snap->ntowns, d->snap->nvillages, d->snap->nstations, d->snap->narea,
             (unsigned long long)d->snap->version);
    snap_free(old);
    if (d->on_change)
        d->on_change(d->arg);
    if (d->stale)
        dir_reload(d);
}

void dir_reload(Directory *d)
{
    if (d->loading) {
        d->stale = true;
        return;
    }
    d->stale = false;
    d->loading = true;
    d->step = STEP_TOWNS;
    d->building = xcalloc(1, sizeof(DirSnap));
    load_step(d);
}

static void notify_cb(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    Directory *d = arg;
    log_debug("directory: station change %s", payload ? payload : "(resync)");
    dir_reload(d);
}

Directory *dir_new(PgPool *pg, void (*on_change)(void *arg), void *arg)
{
    Directory *d = xcalloc(1, sizeof(*d));
    d->pg = pg;
    d->on_change = on_change;
    d->arg = arg;
    /* the LISTEN's "(re)subscribed" callback triggers the first load, and a fresh load after
     * every reconnect, so no change slips between a reconnect and the next NOTIFY */
    pg_pool_listen(pg, "careline_stations", notify_cb, d);
    return d;
}

const DirSnap *dir_snap(const Directory *d)
{
    return d->snap;
}

void dir_free(Directory *d)
{
    if (!d)
        return;
    snap_free(d->snap);
    snap_free(d->building);
    free(d);
}
