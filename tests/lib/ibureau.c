/*
 * ibureau: the bureau's integration bench (see ibureau.h): the hand-made town, whose V2 and
 * V3 are placed by bisection on doubles so that they straddle S1's 15-minute edge exactly,
 * and thin bounded wrappers over isession and ihttp for CoverageQuery and the HTTP pages.
 */
#include "ibureau.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cal.h"
#include "base/geo.h"
#include "common/util.h"
#include "ihttp.h"
#include "isession.h"
#include "t.h"

#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b
#define S_LAT   40.0 /* BT-S1 */
#define S_LON   100.0

/* Sets V2 on the last double of S1's circle going north and V3 on the next one. */
static void edge(IburRig *rig)
{
    double lo = S_LAT, hi = S_LAT + 1.0;
    for (;;) {
        double mid = lo + (hi - lo) / 2;
        if (mid == lo || mid == hi)
            break;
        if (geo_minutes(&geo_model_default, GEO_RURAL, geo_km(mid, S_LON, S_LAT, S_LON)) <= 15.0)
            lo = mid;
        else
            hi = mid;
    }
    rig->v2_lat = lo, rig->v3_lat = hi;
    T_ASSERT(nextafter(lo, 90.0) == hi);
}

long ibur_station_id(PGconn *pg, const char *code)
{
    const char *p[] = {code};
    PGresult *r = itest_sql(pg, "SELECT id FROM stations WHERE code = $1", 1, p);
    long id = PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return id;
}

void ibur_town(IburRig *rig, PGconn *pg)
{
    edge(rig);
    char l2[40], l3[40];
    snprintf(l2, sizeof(l2), "%.17g", rig->v2_lat);
    snprintf(l3, sizeof(l3), "%.17g", rig->v3_lat);
    const char *p[] = {l2, l3};
    PQclear(itest_sql(pg,
                      "INSERT INTO towns (code, name, kind, lat, lon, area_kind) VALUES "
                      "('" IBUR_TOWN
                      "', '测试镇', 'town', 40.1, 100.0, 'rural') ON CONFLICT DO NOTHING",
                      0, NULL));
    PQclear(itest_sql(
        pg,
        "INSERT INTO villages (code, town_code, name, kind, lat, lon, approx_location, "
        "area_kind, elderly_population) VALUES "
        "('330281901001', '" IBUR_TOWN "', '近村', 'village', 40.01, 100.0, false, 'rural', 100),"
        "('330281901002', '" IBUR_TOWN "', '边村', 'village', $1, 100.0, false, 'rural', 50),"
        "('330281901003', '" IBUR_TOWN "', '外村', 'village', $2, 100.0, false, 'rural', 30),"
        "('330281901004', '" IBUR_TOWN "', '闭站村', 'village', 40.2, 100.0, false, 'rural', 20),"
        "('330281901005', '" IBUR_TOWN "', '远村', 'village', 41.0, 100.0, true, 'rural', 40),"
        "('330281901006', '" IBUR_TOWN "', '零老村', 'village', 40.21, 100.0, false, 'rural', 0) "
        "ON CONFLICT DO NOTHING",
        2, p));
    PQclear(itest_sql(
        pg,
        "INSERT INTO stations (code, name, town_code, village_code, kind, lat, lon, "
        "offers_meal_delivery, offers_home_care, care_subtypes, meal_capacity_lunch, "
        "meal_capacity_dinner, caregivers, caregivers_certified, has_terminal, active) VALUES "
        "('BT-S1', '近村站', '" IBUR_TOWN
        "', '330281901001', 'village_station', 40.0, 100.0, true, "
        "false, '{}', 50, 50, 4, 2, true, true),"
        "('BT-S2', '闭站', '" IBUR_TOWN "', '330281901004', 'village_station', 40.2, 100.0, true, "
        "false, '{}', 50, 50, 0, 0, false, false),"
        "('BT-S3', '护理站', '" IBUR_TOWN "', '330281901006', 'village_station', 40.21, 100.0, "
        "false, true, '{cleaning}', 0, 0, 2, 1, false, true) ON CONFLICT DO NOTHING",
        0, NULL));
    PQclear(itest_sql(pg,
                      "INSERT INTO station_service_area (station_id, village_code) "
                      "SELECT id, '330281901005' FROM stations WHERE code = 'BT-S1' "
                      "ON CONFLICT DO NOTHING",
                      0, NULL));
    PQclear(itest_sql(pg,
                      "INSERT INTO terminal_sessions (station_id, daemon_id, connected_at) "
                      "SELECT id, 'itest-bureau', now() FROM stations WHERE code = 'BT-S1' "
                      "AND NOT EXISTS (SELECT 1 FROM terminal_sessions t WHERE "
                      "t.daemon_id = 'itest-bureau' AND careline_local_date(t.connected_at) = "
                      "careline_local_date(now()))",
                      0, NULL));
    PQclear(itest_sql(
        pg,
        "INSERT INTO residents (phone, name, village_code, lat, lon, birth_year) VALUES "
        "('19900000001', 'BT 1', '330281901001', 40.01, 100.0, 1940),"
        "('19900000002', 'BT 2', '330281901001', 40.01, 100.0, 1941),"
        "('19900000003', 'BT 3', '330281901001', 40.01, 100.0, 1942),"
        "('19900000004', 'BT 4', '330281901001', 40.01, 100.0, 1943),"
        "('19900000005', 'BT 5', '330281901006', 40.21, 100.0, 1944) ON CONFLICT DO NOTHING",
        0, NULL));
}

static ClEnvelope *query(const IburRig *rig, ClConn *c, Careline__V1__CoverageQuery *q)
{
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(COVERAGE_QUERY);
    e.coverage_query = q;
    return isess_call(&rig->d, c, &e, 20000, "no reply to CoverageQuery", NULL, NULL);
}

ClEnvelope *ibur_report(const IburRig *rig, ClConn *c, Careline__V1__CoverageQuery *q)
{
    ClEnvelope *r = query(rig, c, q);
    if (r->body_case != BODY(COVERAGE_REPORT))
        t_fail(__FILE__, __LINE__, "expected CoverageReport, got body %d (%s)", r->body_case,
               r->body_case == BODY(ERROR) ? r->error->message : "");
    return r;
}

void ibur_expect_invalid(const IburRig *rig, ClConn *c, Careline__V1__CoverageQuery *q, int code,
                         const char *field)
{
    ClEnvelope *r = query(rig, c, q);
    if (r->body_case != BODY(ERROR))
        t_fail(__FILE__, __LINE__, "expected Error %d (%s), got body %d", code, field,
               r->body_case);
    if ((int)r->error->code != code || (field && strcmp(r->error->field, field) != 0))
        t_fail(__FILE__, __LINE__, "expected Error %d field %s, got %d field '%s': %s", code, field,
               r->error->code, r->error->field, r->error->message);
    T_ASSERT(!r->error->fatal);
    T_ASSERT(strlen(r->error->message) > 10);
    cl_free(r);
}

int ibur_http(const IburRig *rig, const char *method, const char *path, const char *token,
              const char *accept, char **body)
{
    char auth[128], acc[128];
    const char *hs[3] = {NULL, NULL, NULL};
    int nh = 0;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hs[nh++] = auth;
    }
    if (accept) {
        snprintf(acc, sizeof(acc), "Accept: %s", accept);
        hs[nh++] = acc;
    }
    IhttpResp r;
    int status = ihttp_request(rig->d.http_port, method, path, hs, "", 0, 60000, &r);
    if (status < 0)
        t_fail(__FILE__, __LINE__, "HTTP %s %s: no valid response in time", method, path);
    *body = r.body;
    return status;
}

json_t *ibur_http_json(const IburRig *rig, const char *path, const char *token, int want_status)
{
    char *body;
    int st = ibur_http(rig, "GET", path, token, NULL, &body);
    if (st != want_status)
        t_fail(__FILE__, __LINE__, "GET %s: status %d, expected %d: %.300s", path, st, want_status,
               body);
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (!j)
        t_fail(__FILE__, __LINE__, "GET %s: not JSON (%s): %.300s", path, je.text, body);
    free(body);
    return j;
}

void ibur_http_expect(const IburRig *rig, const char *method, const char *path, const char *token,
                      int status, const char *field)
{
    char *body;
    int st = ibur_http(rig, method, path, token, NULL, &body);
    if (st != status)
        t_fail(__FILE__, __LINE__, "%s %s: status %d, expected %d: %.300s", method, path, st,
               status, body);
    json_t *j = json_loads(body, 0, NULL);
    if (!j || !json_object_get(j, "error"))
        t_fail(__FILE__, __LINE__, "%s %s: no JSON error: %.300s", method, path, body);
    if (field) {
        const char *f = json_string_value(json_object_get(json_object_get(j, "error"), "field"));
        if (!f || strcmp(f, field) != 0)
            t_fail(__FILE__, __LINE__, "%s %s: field %s, expected %s", method, path,
                   f ? f : "(none)", field);
    }
    json_decref(j);
    free(body);
}

void ibur_start(IburRig *rig, PGconn *pg)
{
    itest_make_token(pg, "bureau", 0, rig->bureau_tok);
    itest_make_token(pg, "gateway", 0, rig->gateway_tok);
    itest_daemon_start(&rig->d, NULL);
    itest_daemon_wait_ready(&rig->d);
}

void ibur_finish(IburRig *rig)
{
    itest_daemon_down_within(&rig->d, 10000);
}

void ibur_day(char out[11], int back)
{
    int minute;
    cal_format(cal_day_of(util_wall_ms(), &minute) - back, out);
}
