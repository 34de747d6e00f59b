/*
 * gen_yuyao: the Yuyao data set: the real towns and villages (data/yuyao) filled in with
 * derived points, synthetic elderly counts, stations and residents.
 */
#include "gen_sets.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/geo.h"
#include "common/log.h"
#include "common/util.h"
#include "gen_people.h"

typedef struct {
    char code[13];
    char name[96];
    const char *kind; /* subdistrict / town / township */
    int area;
    bool have_point, approx;
    double lat, lon;
    int villages;
} Town;

typedef struct {
    char code[13];
    char name[96];
    char label[96]; /* short display name for stations and addresses: 最良村委会 -> 最良村 */
    int town;
    bool community, approx;
    double lat, lon;
    int elderly;
} Village;

/* the mountain towns of Yuyao's southern 四明山 area */
static const char *const yuyao_mountain[] = {"四明山镇", "大岚镇", "鹿亭乡", "梁弄镇"};

static int yuyao_town_index(const Town *towns, int n, const char *code)
{
    for (int i = 0; i < n; i++)
        if (strcmp(towns[i].code, code) == 0)
            return i;
    return -1;
}

/* out must not overlap name; cap > strlen(name) (a suffix only ever gets shorter) */
static void village_label(const char *restrict name, char *restrict out, size_t cap)
{
    size_t n = strlen(name);
    static const struct {
        const char *from, *to;
    } subs[] = {{"村委会", "村"}, {"居委会", "社区"}};
    ASSERT(n < cap);
    memcpy(out, name, n + 1);
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        size_t flen = strlen(subs[i].from), add = strlen(subs[i].to);
        if (n >= flen && memcmp(name + n - flen, subs[i].from, flen) == 0) {
            size_t keep = n - flen;
            if (keep + add < cap)
                memcpy(out + keep, subs[i].to, add + 1);
            return;
        }
    }
}

int gen_yuyao(const GenOpts *o)
{
    enum { MAX_TOWNS = 64, MAX_VILLAGES = 2048, MAX_STATIONS = 4096, MAX_AREA = 64 };
    static Town towns[MAX_TOWNS];
    static Village villages[MAX_VILLAGES];
    static Station stations[MAX_STATIONS];
    int nt = 0, nv = 0, ns = 0;
    CsvIn in;

    gen_csv_open(&in, o->data_dir, "towns.csv", "code,name,kind,lat,lon,coord_crs");
    while (gen_csv_next(&in)) {
        if (in.nfield != 6 || !gen_is_code12(in.field[0]) || nt == MAX_TOWNS) {
            log_error("%s:%d: bad town row", in.path, in.line);
            return 1;
        }
        Town *t = &towns[nt++];
        snprintf(t->code, sizeof(t->code), "%s", in.field[0]);
        snprintf(t->name, sizeof(t->name), "%s", in.field[1]);
        const char *k = in.field[2];
        t->kind = strcmp(k, "街道") == 0 ? "subdistrict"
                  : strcmp(k, "镇") == 0 ? "town"
                  : strcmp(k, "乡") == 0 ? "township"
                                         : NULL;
        if (!t->kind) {
            log_error("%s:%d: unknown town kind %s", in.path, in.line, k);
            return 1;
        }
        t->area = strcmp(t->kind, "subdistrict") == 0 ? AREA_URBAN : AREA_RURAL;
        for (size_t i = 0; i < ARRAY_LEN(yuyao_mountain); i++)
            if (strcmp(t->name, yuyao_mountain[i]) == 0)
                t->area = AREA_MOUNTAIN;
        if (in.field[3][0] || in.field[4][0]) {
            if (!gen_parse_coord(in.field[3], -90, 90, &t->lat) ||
                !gen_parse_coord(in.field[4], -180, 180, &t->lon)) {
                log_error("%s:%d: bad coordinates", in.path, in.line);
                return 1;
            }
            t->have_point = true;
        }
    }
    fclose(in.f);

    gen_csv_open(&in, o->data_dir, "villages.csv", "code,name,town_code,kind,lat,lon,coord_crs");
    while (gen_csv_next(&in)) {
        if (in.nfield != 7 || !gen_is_code12(in.field[0]) || nv == MAX_VILLAGES) {
            log_error("%s:%d: bad village row", in.path, in.line);
            return 1;
        }
        Village *v = &villages[nv++];
        snprintf(v->code, sizeof(v->code), "%s", in.field[0]);
        snprintf(v->name, sizeof(v->name), "%s", in.field[1]);
        village_label(v->name, v->label, sizeof(v->label));
        v->town = yuyao_town_index(towns, nt, in.field[2]);
        if (v->town < 0) {
            log_error("%s:%d: unknown town %s", in.path, in.line, in.field[2]);
            return 1;
        }
        towns[v->town].villages++;
        if (strcmp(in.field[3], "社区") == 0)
            v->community = true;
        else if (strcmp(in.field[3], "村") != 0) {
            log_error("%s:%d: unknown village kind %s", in.path, in.line, in.field[3]);
            return 1;
        }
        if (in.field[4][0] || in.field[5][0]) {
            if (!gen_parse_coord(in.field[4], -90, 90, &v->lat) ||
                !gen_parse_coord(in.field[5], -180, 180, &v->lon)) {
                log_error("%s:%d: bad coordinates", in.path, in.line);
                return 1;
            }
        } else {
            v->approx = true;
        }
    }
    fclose(in.f);

    /* towns without a point: mean of their villages with points, else of the other towns */
    for (int i = 0; i < nt; i++) {
        Town *t = &towns[i];
        if (t->have_point)
            continue;
        double slat = 0, slon = 0;
        int n = 0;
        for (int j = 0; j < nv; j++) {
            if (villages[j].town == i && !villages[j].approx) {
                slat += villages[j].lat;
                slon += villages[j].lon;
                n++;
            }
        }
        if (n == 0) {
            for (int j = 0; j < nt; j++) {
                if (towns[j].have_point) {
                    slat += towns[j].lat;
                    slon += towns[j].lon;
                    n++;
                }
            }
        }
        if (n == 0) {
            log_error("town %s has no point and nothing to derive one from", t->code);
            return 1;
        }
        t->lat = slat / n;
        t->lon = slon / n;
        t->approx = true;
    }

    int approx_towns = 0;
    for (int i = 0; i < nt; i++)
        approx_towns += towns[i].approx;

    /* villages without a point: the town point plus an offset; synthetic elderly counts */
    uint64_t elderly = 0;
    int approx_villages = 0;
    for (int j = 0; j < nv; j++) {
        Village *v = &villages[j];
        const Town *t = &towns[v->town];
        if (v->approx) {
            Rng r = gen_rng_for_str(o->seed, "village-point", v->code);
            v->lat = t->lat;
            v->lon = t->lon;
            gen_jitter(&r, gen_spread_min_km[t->area], gen_spread_max_km[t->area], &v->lat,
                       &v->lon);
            approx_villages++;
        }
        Rng r = gen_rng_for_str(o->seed, "village-elderly", v->code);
        v->elderly =
            t->area == AREA_MOUNTAIN ? gen_rng_range(&r, 300, 800) : gen_rng_range(&r, 300, 1500);
        elderly += (uint64_t)v->elderly;
    }

    /* stations: one centre per town, then village sites */
    for (int i = 0; i < nt; i++) {
        Town *t = &towns[i];
        Station *s = &stations[ns++];
        memset(s, 0, sizeof(*s));
        Rng r = gen_rng_for_str(o->seed, "station-centre", t->code);
        s->kind = ST_TOWN_CENTRE;
        snprintf(s->code, sizeof(s->code), "SIM-%.12s-%s", t->code, gen_station_tag[s->kind]);
        snprintf(s->name, sizeof(s->name), "%s%s", t->name, gen_station_suffix[s->kind]);
        s->town_code = t->code;
        s->lat = t->lat;
        s->lon = t->lon;
        gen_station_fill(s, &r);
    }
    for (int j = 0; j < nv; j++) {
        Village *v = &villages[j];
        Rng r = gen_rng_for_str(o->seed, "station-site", v->code);
        if (!gen_rng_chance(&r, gen_station_share[towns[v->town].area]))
            continue;
        ASSERT(ns < MAX_STATIONS);
        Station *s = &stations[ns++];
        memset(s, 0, sizeof(*s));
        s->kind = gen_station_kind_roll(&r);
        snprintf(s->code, sizeof(s->code), "SIM-%.12s-%s", v->code, gen_station_tag[s->kind]);
        snprintf(s->name, sizeof(s->name), "%s%s", v->label, gen_station_suffix[s->kind]);
        s->town_code = towns[v->town].code;
        s->village_code = v->code;
        s->lat = v->lat;
        s->lon = v->lon;
        gen_jitter(&r, 0.05, 0.3, &s->lat, &s->lon);
        gen_station_fill(s, &r);
    }

    /* explicit service areas: some mountain town centres also serve their farthest village
     * (a van that goes there anyway), whatever the travel model says */
    struct {
        int station, village;
    } area[MAX_AREA];
    int na = 0;
    for (int i = 0; i < nt; i++) {
        if (towns[i].area != AREA_MOUNTAIN)
            continue;
        Rng r = gen_rng_for_str(o->seed, "service-area", towns[i].code);
        if (!gen_rng_chance(&r, 0.5))
            continue;
        int far = -1;
        double far_km = -1;
        for (int j = 0; j < nv; j++) {
            if (villages[j].town != i)
                continue;
            double km = geo_km(towns[i].lat, towns[i].lon, villages[j].lat, villages[j].lon);
            if (km > far_km) {
                far_km = km;
                far = j;
            }
        }
        if (far >= 0 && na < MAX_AREA) {
            area[na].station = i; /* town centres are stations[0..nt) in town order */
            area[na].village = far;
            na++;
        }
    }

    /* coverage under the default travel model, for the summary (the daemon's own figure) */
    const TravelModel *m = &geo_model_default;
    int covered = 0;
    uint64_t elderly_covered = 0;
    int meal_stations = 0, terminals = 0, caregivers = 0, certified = 0;
    for (int k = 0; k < ns; k++) {
        meal_stations += stations[k].meal;
        terminals += stations[k].terminal;
        caregivers += stations[k].caregivers;
        certified += stations[k].certified;
    }
    for (int j = 0; j < nv; j++) {
        const Village *v = &villages[j];
        GeoAreaKind ak = (GeoAreaKind)towns[v->town].area;
        bool cov = false;
        for (int k = 0; k < ns && !cov; k++) {
            const Station *s = &stations[k];
            if (s->meal &&
                geo_minutes(m, ak, geo_km(s->lat, s->lon, v->lat, v->lon)) <= m->circle_min)
                cov = true;
        }
        for (int a = 0; a < na && !cov; a++)
            if (area[a].village == j && stations[area[a].station].meal)
                cov = true;
        covered += cov;
        elderly_covered += cov ? (uint64_t)v->elderly : 0;
    }

    /* write */
    Out ot = {0}, ov = {0}, os = {0}, oa = {0}, orr = {0};
    gen_out_open(&ot, o->out_dir, "towns.csv", GEN_TOWN_HEADER);
    for (int i = 0; i < nt; i++) {
        const Town *t = &towns[i];
        fprintf(ot.f, "%s,%s,%s,%.6f,%.6f,%s,%s\n", t->code, t->name, t->kind, t->lat, t->lon,
                gen_area_names[t->area], gen_tf(t->approx));
        ot.rows++;
    }
    gen_out_close(&ot);

    gen_out_open(&ov, o->out_dir, "villages.csv", GEN_VILLAGE_HEADER);
    for (int j = 0; j < nv; j++) {
        const Village *v = &villages[j];
        fprintf(ov.f, "%s,%s,%s,%s,%.6f,%.6f,%s,%s,%d,true\n", v->code, v->name,
                towns[v->town].code, v->community ? "community" : "village", v->lat, v->lon,
                gen_tf(v->approx), gen_area_names[towns[v->town].area], v->elderly);
        ov.rows++;
    }
    gen_out_close(&ov);

    gen_out_open(&os, o->out_dir, "stations.csv", GEN_STATION_HEADER);
    for (int k = 0; k < ns; k++)
        gen_station_write(&os, &stations[k]);
    gen_out_close(&os);

    gen_out_open(&oa, o->out_dir, "station_service_area.csv", GEN_SERVICE_AREA_HEADER);
    for (int a = 0; a < na; a++) {
        fprintf(oa.f, "%s,%s\n", stations[area[a].station].code, villages[area[a].village].code);
        oa.rows++;
    }
    gen_out_close(&oa);

    PeopleStats ps = {0};
    gen_out_open(&orr, o->out_dir, "residents.csv", GEN_RESIDENT_HEADER);
    int phone_no = 0;
    for (int j = 0; j < nv; j++) {
        const Village *v = &villages[j];
        Rng r = gen_rng_for_str(o->seed, "residents", v->code);
        int n = gen_rng_range(&r, 15, 25);
        char label[256];
        snprintf(label, sizeof(label), "余姚市%s%s", towns[v->town].name, v->label);
        for (int i = 0; i < n; i++) {
            char phone[24];
            if (++phone_no > 9999) {
                log_error("more than 9999 residents: the 1390000NNNN phone range is exhausted");
                return 1;
            }
            snprintf(phone, sizeof(phone), "1390000%04u", (unsigned)phone_no % 10000u);
            gen_resident_write(&orr, &r, phone, v->code, label, v->lat, v->lon, &ps);
        }
    }
    gen_out_close(&orr);

    fprintf(stderr,
            "careline-gen yuyao seed=%" PRIu64 " -> %s\n"
            "  towns            %d (%d with derived point)\n"
            "  villages         %d (%d with derived point), elderly %" PRIu64 " (synthetic)\n"
            "  stations         %d (%d meal delivery, %d with terminal, caregivers %d, certified"
            " %d = %.1f per 10k elderly)\n"
            "  service areas    %d\n"
            "  residents        %" PRIu64 " (lives alone %" PRIu64 ", disabled %" PRIu64
            ", aged 80+ %" PRIu64 ")\n"
            "  coverage         %d/%d villages = %.1f%%, elderly-weighted %.1f%% (%.0f-min "
            "circle, default travel model)\n",
            o->seed, o->out_dir, nt, approx_towns, nv, approx_villages, elderly, ns, meal_stations,
            terminals, caregivers, certified, elderly ? certified * 10000.0 / (double)elderly : 0.0,
            na, ps.residents, ps.lives_alone, ps.disabled, ps.aged80, covered, nv,
            100.0 * covered / nv, elderly ? 100.0 * (double)elderly_covered / (double)elderly : 0.0,
            m->circle_min);
    return 0;
}
