/*
 * directory: four queries (towns, villages, stations, service areas) run one after the
 * other on the pool; the snapshot is built when the last arrives. A NOTIFY during a load
 * marks the load stale so another follows, so the snapshot never misses a change.
 */
#include "core/directory.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

enum { STEP_TOWNS, STEP_VILLAGES, STEP_STATIONS, STEP_AREAS, STEP_DONE };

static const char *const step_sql[] = {
    "SELECT code, name FROM towns ORDER BY code",
    "SELECT code, name, town_code, lat, lon, area_kind, elderly_population, "
    "approx_location FROM villages ORDER BY code",
    "SELECT id, name, town_code, coalesce(village_code, ''), lat, lon, active, "
    "offers_meal_delivery, offers_home_care, array_to_string(care_subtypes, ','), "
    "meal_capacity_lunch, meal_capacity_dinner, caregivers, caregivers_certified, "
    "coalesce(caregivers_on_duty, -1), "
    "(extract(epoch FROM opens_at) / 60)::int, (extract(epoch FROM closes_at) / 60)::int, "
    "open_days, is_open, has_terminal FROM stations ORDER BY id",
    "SELECT a.village_code, a.station_id FROM station_service_area a ORDER BY 1, 2",
};

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

static bool truthy(const char *v)
{
    return v[0] == 't';
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

static void take_towns(DirSnap *s, PGresult *r)
{
    s->ntowns = PQntuples(r);
    s->towns = xcalloc((size_t)s->ntowns, sizeof(Town));
    for (int i = 0; i < s->ntowns; i++) {
        snprintf(s->towns[i].code, sizeof(s->towns[i].code), "%s", PQgetvalue(r, i, 0));
        s->towns[i].name = xstrdup(PQgetvalue(r, i, 1));
    }
}

static void take_villages(DirSnap *s, PGresult *r)
{
    s->nvillages = PQntuples(r);
    s->villages = xcalloc((size_t)s->nvillages, sizeof(Village));
    for (int i = 0; i < s->nvillages; i++) {
        Village *v = &s->villages[i];
        snprintf(v->code, sizeof(v->code), "%s", PQgetvalue(r, i, 0));
        v->name = xstrdup(PQgetvalue(r, i, 1));
        v->town = town_index(s, PQgetvalue(r, i, 2));
        v->lat = atof(PQgetvalue(r, i, 3));
        v->lon = atof(PQgetvalue(r, i, 4));
        if (!geo_area_parse(PQgetvalue(r, i, 5), &v->area))
            v->area = GEO_RURAL;
        v->elderly = atoi(PQgetvalue(r, i, 6));
        v->approx = truthy(PQgetvalue(r, i, 7));
    }
    StStation *pts = xcalloc((size_t)s->nvillages, sizeof(StStation));
    for (int i = 0; i < s->nvillages; i++)
        pts[i] = (StStation){i, s->villages[i].lat, s->villages[i].lon, 0, (size_t)i};
    s->village_index = stindex_new(pts, (size_t)s->nvillages);
    free(pts);
}

bool dir_near_village(const DirSnap *s, double lat, double lon, double km)
{
    StHit hit;
    return s->village_index &&
           stindex_nearest(s->village_index, lat, lon, km, NULL, NULL, &hit, 1) > 0;
}

static bool take_stations(DirSnap *s, PGresult *r)
{
    s->nstations = PQntuples(r);
    s->stations = xcalloc((size_t)s->nstations, sizeof(Station));
    StStation *idx = xcalloc((size_t)s->nstations, sizeof(StStation));
    for (int i = 0; i < s->nstations; i++) {
        Station *st = &s->stations[i];
        st->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        st->name = xstrdup(PQgetvalue(r, i, 1));
        st->town = town_index(s, PQgetvalue(r, i, 2));
        st->village = village_index(s, PQgetvalue(r, i, 3));
        st->lat = atof(PQgetvalue(r, i, 4));
        st->lon = atof(PQgetvalue(r, i, 5));
        st->active = truthy(PQgetvalue(r, i, 6));
        st->meal = truthy(PQgetvalue(r, i, 7));
        st->care = truthy(PQgetvalue(r, i, 8));
        st->care_subtypes = parse_subtypes(PQgetvalue(r, i, 9));
        st->cap_lunch = atoi(PQgetvalue(r, i, 10));
        st->cap_dinner = atoi(PQgetvalue(r, i, 11));
        st->caregivers = atoi(PQgetvalue(r, i, 12));
        st->caregivers_certified = atoi(PQgetvalue(r, i, 13));
        st->caregivers_on_duty = atoi(PQgetvalue(r, i, 14));
        st->opens_min = atoi(PQgetvalue(r, i, 15));
        st->closes_min = atoi(PQgetvalue(r, i, 16));
        st->open_days = atoi(PQgetvalue(r, i, 17));
        st->is_open = truthy(PQgetvalue(r, i, 18));
        st->has_terminal = truthy(PQgetvalue(r, i, 19));
        idx[i] = (StStation){st->id, st->lat, st->lon,
                             (st->active ? ST_ACTIVE : 0) | (st->meal ? ST_MEAL : 0) |
                                 (st->care ? ST_HOME_CARE : 0),
                             (size_t)i};
    }
    s->index = stindex_new(idx, (size_t)s->nstations);
    free(idx);
    return s->index != NULL;
}

static void take_areas(DirSnap *s, PGresult *r)
{
    s->narea = PQntuples(r);
    s->area_stations = xcalloc((size_t)s->narea, sizeof(int64_t));
    for (int i = 0; i < s->nvillages; i++)
        s->villages[i].first_area = 0, s->villages[i].n_area = 0;
    /* rows are sorted by village code, so each village's stations are one slice */
    for (int i = 0; i < s->narea; i++) {
        s->area_stations[i] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        int v = village_index(s, PQgetvalue(r, i, 0));
        if (v < 0)
            continue;
        if (s->villages[v].n_area == 0)
            s->villages[v].first_area = i;
        s->villages[v].n_area++;
    }
}

static void load_step(Directory *d);

static void load_cb(PGresult *res, const char *err, void *arg)
{
    Directory *d = arg;
    DirSnap *s = d->building;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("directory: loading failed at step %d: %s; retrying", d->step,
                 res ? PQresultErrorMessage(res) : err);
        snap_free(s);
        d->building = NULL;
        d->loading = false;
        d->stale = true; /* the janitor-free retry: next reload request or notify */
        dir_reload(d);
        return;
    }
    switch (d->step) {
    case STEP_TOWNS:
        take_towns(s, res);
        break;
    case STEP_VILLAGES:
        take_villages(s, res);
        break;
    case STEP_STATIONS:
        if (!take_stations(s, res)) {
            log_error("directory: station data rejected by the index (see above)");
            snap_free(s);
            d->building = NULL;
            d->loading = false;
            return;
        }
        break;
    case STEP_AREAS:
        take_areas(s, res);
        break;
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
