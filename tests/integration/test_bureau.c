/*
 * Integration tests of the bureau module through a real dispatchd, PostgreSQL and Redis:
 * a hand-made town far from Yuyao (every figure worked out below) over the protocol, HTTP
 * and bin/bureau; the Yuyao county figure against an independent SQL computation and the
 * analyst views (as careline_bureau); snapshots (upsert, history); realized figures after a
 * scripted day; the plan on Yuyao and against brute force; and every bad input.
 *
 * The hand-made town stays in the database afterwards (request_events is append-only, so
 * the requests made on it cannot be removed); its setup is idempotent, and it lies 1,500 km
 * from Yuyao, so it never reaches a Yuyao village or resident.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cal.h"
#include "reports/coverage.h"
#include "base/geo.h"
#include "ihttp.h"
#include "isession.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#define ERR(code) CARELINE__V1__ERROR_CODE__##code
#define BODY(b)   CARELINE__V1__ENVELOPE__BODY_##b
#define SCOPE(x)  CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
typedef Careline__V1__CoverageReport Report;

#define TOWN  "330281901000"
#define S_LAT 40.0
#define S_LON 100.0

static Daemon d;

/* ---- the hand-made town ---------------------------------------------------------------
 * Stations (town 330281901000 "测试镇", all village stations):
 *   BT-S1 active, meal, at (40.0, 100.0); 4 caregivers, 2 certified; lists V5; terminal on
 *   BT-S2 meal but INACTIVE, at V4
 *   BT-S3 active, home care only, at V6; 2 caregivers, 1 certified
 * Villages (all rural: 1.4 detour, 30 km/h, so 15 min = 5.357 km great-circle):
 *   V1 (40.01, 100)   1.112 km from S1, 3.1 min: covered            elderly 100
 *   V2 exactly on S1's 15-minute edge (bisected on doubles): covered   elderly  50
 *   V3 one double further north: NOT covered                         elderly  30
 *   V4 (40.2, 100) on the inactive S2: NOT covered                   elderly  20
 *   V5 (41.0, 100) 111 km away, listed by S1: covered; approximate   elderly  40
 *   V6 (40.21, 100) on the care-only S3: NOT covered                 elderly   0
 * Town: 3 / 6 villages = 0.5; elderly 190 / 240 = 0.791666...; 1 approximate centroid.
 * Village stations active: S1, S3; with a session today: S1 -> terminal share 0.5; equipped
 * (has_terminal): S1 -> 0.5. Certified 2 + 1 = 3 per 240 elderly -> 125 per 10,000.
 * Plan to 1.0 (candidates V3, V4, V6 in village order): V4's site reaches V4 and V6
 * (1.1 km apart; tie with V6's site, lowest index wins), then V3: 2 sites = the optimum. */

static double v2_lat, v3_lat;

static void edge(void)
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
    v2_lat = lo, v3_lat = hi;
    T_ASSERT(nextafter(lo, 90.0) == hi);
}

static long station_id(PGconn *pg, const char *code)
{
    const char *p[] = {code};
    PGresult *r = itest_sql(pg, "SELECT id FROM stations WHERE code = $1", 1, p);
    long id = PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return id;
}

static void setup_town(PGconn *pg)
{
    edge();
    char l2[40], l3[40];
    snprintf(l2, sizeof(l2), "%.17g", v2_lat);
    snprintf(l3, sizeof(l3), "%.17g", v3_lat);
    const char *p[] = {l2, l3};
    PQclear(itest_sql(pg,
                      "INSERT INTO towns (code, name, kind, lat, lon, area_kind) VALUES "
                      "('" TOWN "', '测试镇', 'town', 40.1, 100.0, 'rural') ON CONFLICT DO NOTHING",
                      0, NULL));
    PQclear(itest_sql(
        pg,
        "INSERT INTO villages (code, town_code, name, kind, lat, lon, approx_location, "
        "area_kind, elderly_population) VALUES "
        "('330281901001', '" TOWN "', '近村', 'village', 40.01, 100.0, false, 'rural', 100),"
        "('330281901002', '" TOWN "', '边村', 'village', $1, 100.0, false, 'rural', 50),"
        "('330281901003', '" TOWN "', '外村', 'village', $2, 100.0, false, 'rural', 30),"
        "('330281901004', '" TOWN "', '闭站村', 'village', 40.2, 100.0, false, 'rural', 20),"
        "('330281901005', '" TOWN "', '远村', 'village', 41.0, 100.0, true, 'rural', 40),"
        "('330281901006', '" TOWN "', '零老村', 'village', 40.21, 100.0, false, 'rural', 0) "
        "ON CONFLICT DO NOTHING",
        2, p));
    PQclear(itest_sql(
        pg,
        "INSERT INTO stations (code, name, town_code, village_code, kind, lat, lon, "
        "offers_meal_delivery, offers_home_care, care_subtypes, meal_capacity_lunch, "
        "meal_capacity_dinner, caregivers, caregivers_certified, has_terminal, active) VALUES "
        "('BT-S1', '近村站', '" TOWN "', '330281901001', 'village_station', 40.0, 100.0, true, "
        "false, '{}', 50, 50, 4, 2, true, true),"
        "('BT-S2', '闭站', '" TOWN "', '330281901004', 'village_station', 40.2, 100.0, true, "
        "false, '{}', 50, 50, 0, 0, false, false),"
        "('BT-S3', '护理站', '" TOWN "', '330281901006', 'village_station', 40.21, 100.0, "
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

/* ---- protocol helpers ------------------------------------------------------------------ */

static ClEnvelope *query(ClConn *c, Careline__V1__CoverageQuery *q)
{
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(COVERAGE_QUERY);
    e.coverage_query = q;
    return isess_call(&d, c, &e, 20000, "no reply to CoverageQuery", NULL, NULL);
}

static ClEnvelope *report(ClConn *c, Careline__V1__CoverageQuery *q)
{
    ClEnvelope *r = query(c, q);
    if (r->body_case != BODY(COVERAGE_REPORT))
        t_fail(__FILE__, __LINE__, "expected CoverageReport, got body %d (%s)", r->body_case,
               r->body_case == BODY(ERROR) ? r->error->message : "");
    return r;
}

static void expect_invalid(ClConn *c, Careline__V1__CoverageQuery *q, int code, const char *field)
{
    ClEnvelope *r = query(c, q);
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

/* ---- HTTP helper: one request (ihttp), body malloc'd into *body (free it) ------------ */

static int http(const char *method, const char *path, const char *token, const char *accept,
                char **body)
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
    int status = ihttp_request(d.http_port, method, path, hs, "", 0, 60000, &r);
    if (status < 0)
        t_fail(__FILE__, __LINE__, "HTTP %s %s: no valid response in time", method, path);
    *body = r.body;
    return status;
}

static json_t *http_json(const char *path, const char *token, int want_status)
{
    char *body;
    int st = http("GET", path, token, NULL, &body);
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

static void http_expect(const char *method, const char *path, const char *token, int status,
                        const char *field)
{
    char *body;
    int st = http(method, path, token, NULL, &body);
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

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    T_ASSERT(json_is_number(v));
    return json_number_value(v);
}

static char bureau_tok[64], gateway_tok[64];

static void start(PGconn *pg)
{
    itest_make_token(pg, "bureau", 0, bureau_tok);
    itest_make_token(pg, "gateway", 0, gateway_tok);
    itest_daemon_start(&d, NULL);
    itest_daemon_wait_ready(&d);
}

static void finish(void)
{
    itest_daemon_down_within(&d, 10000);
}

static void today_str(char out[11], int back)
{
    int minute;
    cal_format(cal_day_of(util_wall_ms(), &minute) - back, out);
}

/* ---- cases ------------------------------------------------------------------------------ */

static void hand_town(void)
{
    PGconn *pg = itest_pg();
    setup_town(pg);
    start(pg);
    ClConn *c = itest_login(&d, bureau_tok);

    /* county figure restricted to the town, with the indicators */
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(COUNTY);
    q.town_code = (char *)TOWN;
    ClEnvelope *r = report(c, &q);
    const Report *rep = r->coverage_report;
    T_EQ_STR(rep->scope_code, TOWN);
    T_EQ_STR(rep->scope_name, "测试镇");
    T_EQ_INT(rep->county->villages, 6);
    T_EQ_INT(rep->county->villages_covered, 3);
    T_NEAR(rep->county->rate, 0.5, 1e-12);
    T_EQ_INT(rep->county->elderly, 240);
    T_EQ_INT(rep->county->elderly_covered, 190);
    T_NEAR(rep->county->rate_elderly, 190.0 / 240.0, 1e-12);
    T_EQ_INT(rep->county->approx_villages, 1);
    T_EQ_INT(rep->service_circle_minutes, 15);
    T_NEAR(rep->target, 0.95, 1e-12);
    T_ASSERT(rep->inputs_version && strstr(rep->inputs_version, "circle=15"));
    T_EQ_INT(rep->n_indicators, 4);
    for (size_t i = 0; i < rep->n_indicators; i++) {
        const Careline__V1__Indicator *in = rep->indicators[i];
        if (strcmp(in->key, "meal_village_coverage") == 0) {
            T_NEAR(in->value, 0.5, 1e-12);
            T_ASSERT(!in->met);
        } else if (strcmp(in->key, "terminal_share") == 0 ||
                   strcmp(in->key, "terminal_equipped_share") == 0) {
            T_NEAR(in->value, 0.5, 1e-12);
            T_NEAR(in->target, 0.55, 1e-12);
            T_ASSERT(!in->met);
        } else {
            T_EQ_STR(in->key, "certified_per_10k");
            T_NEAR(in->value, 125.0, 1e-9);
            T_ASSERT(in->met);
        }
    }
    cl_free(r);

    /* villages: every one, then only the uncovered */
    q.scope = SCOPE(VILLAGES);
    r = report(c, &q);
    rep = r->coverage_report;
    T_EQ_INT(rep->n_villages, 6);
    const bool want[] = {true, true, false, false, true, false};
    long s1 = station_id(pg, "BT-S1");
    for (size_t i = 0; i < 6; i++) {
        T_EQ_INT(rep->villages[i]->covered, want[i]);
        T_EQ_INT(rep->villages[i]->nearest_station_id, want[i] ? s1 : 0);
    }
    T_ASSERT(rep->villages[1]->nearest_minutes <= 15.0 &&
             rep->villages[1]->nearest_minutes > 14.99);
    T_ASSERT(rep->villages[4]->approximate_location);
    T_ASSERT(rep->villages[4]->nearest_minutes > 200); /* listed, far */
    cl_free(r);
    q.uncovered_only = true;
    r = report(c, &q);
    rep = r->coverage_report;
    T_EQ_INT(rep->n_villages, 3);
    T_EQ_STR(rep->villages[0]->code, "330281901003");
    T_EQ_STR(rep->villages[1]->code, "330281901004");
    T_EQ_STR(rep->villages[2]->code, "330281901006");
    cl_free(r);
    q.uncovered_only = false;

    /* towns scope with the filter: just this town */
    q.scope = SCOPE(TOWNS);
    r = report(c, &q);
    T_EQ_INT(r->coverage_report->n_towns, 1);
    T_EQ_INT(r->coverage_report->towns[0]->figure->villages_covered, 3);
    cl_free(r);

    /* plan to 1.0: V4 then V3, matching the exhaustive optimum */
    q.scope = SCOPE(PLAN);
    q.target = 1.0;
    r = report(c, &q);
    rep = r->coverage_report;
    T_ASSERT(rep->plan_reached);
    T_EQ_INT(rep->plan_covered_before, 3);
    T_EQ_INT(rep->plan_need, 6);
    T_EQ_INT(rep->n_plan, 2);
    T_EQ_STR(rep->plan[0]->village_code, "330281901004");
    T_EQ_INT(rep->plan[0]->newly_covered, 2);
    T_EQ_INT(rep->plan[0]->covered_after, 5);
    T_EQ_STR(rep->plan[1]->village_code, "330281901003");
    T_NEAR(rep->plan[1]->rate_after, 1.0, 1e-12);
    {
        /* brute force over the same villages and stations, in process */
        CovVillage vs[6] = {{1, 0, 40.01, 100.0, GEO_RURAL, 100, false},
                            {2, 0, v2_lat, 100.0, GEO_RURAL, 50, false},
                            {3, 0, v3_lat, 100.0, GEO_RURAL, 30, false},
                            {4, 0, 40.2, 100.0, GEO_RURAL, 20, false},
                            {5, 0, 41.0, 100.0, GEO_RURAL, 40, true},
                            {6, 0, 40.21, 100.0, GEO_RURAL, 0, false}};
        StStation st[3] = {{1, 40.0, 100.0, ST_ACTIVE | ST_MEAL, 0},
                           {2, 40.2, 100.0, ST_MEAL, 1},
                           {3, 40.21, 100.0, ST_ACTIVE | ST_HOME_CARE, 2}};
        CovServiceArea area = {1, 4};
        StIndex *ix = stindex_new(st, 3);
        CovReport *cov = coverage_compute(vs, 6, 1, ix, &area, 1, &geo_model_default);
        T_EQ_INT(cov->county.covered, 3);
        size_t count;
        uint32_t mask;
        T_ASSERT(
            coverage_plan_optimal(vs, 6, cov, &geo_model_default, NULL, 0, 1.0, &count, &mask));
        T_EQ_INT(count, rep->n_plan);
        coverage_report_free(cov);
        stindex_free(ix);
    }
    cl_free(r);
    q.target = 0;

    /* the same figures over HTTP, JSON and CSV */
    json_t *j = http_json("/v1/coverage?town=" TOWN, bureau_tok, 200);
    json_t *cty = json_object_get(j, "county");
    T_EQ_INT(jnum(cty, "villages"), 6);
    T_EQ_INT(jnum(cty, "villages_covered"), 3);
    T_NEAR(jnum(cty, "rate"), 0.5, 1e-12);
    T_EQ_INT(jnum(cty, "elderly_covered"), 190);
    T_ASSERT(json_is_false(json_object_get(cty, "met")));
    json_decref(j);
    char *body;
    T_EQ_INT(http("GET", "/v1/coverage/villages?covered=false&town=" TOWN "&format=csv", bureau_tok,
                  NULL, &body),
             200);
    T_EQ_STR(body, "code,name,town_code,covered,station_id,minutes,approximate_location,elderly\n"
                   "330281901003,外村,330281901000,false,,,false,30\n"
                   "330281901004,闭站村,330281901000,false,,,false,20\n"
                   "330281901006,零老村,330281901000,false,,,false,0\n");
    free(body);
    /* Accept: text/csv picks CSV too */
    T_EQ_INT(http("GET", "/v1/coverage?town=" TOWN, bureau_tok, "text/csv", &body), 200);
    T_ASSERT(strncmp(body, "scope,code,name,villages,", 25) == 0);
    T_ASSERT(strstr(body, "\ntown," TOWN ",测试镇,6,3,0.5,240,190,"));
    free(body);
    j = http_json("/v1/plan?target=1&town=" TOWN, bureau_tok, 200);
    json_t *steps = json_object_get(json_object_get(j, "plan"), "steps");
    T_EQ_INT(json_array_size(steps), 2);
    T_EQ_STR(json_string_value(json_object_get(json_array_get(steps, 0), "village_code")),
             "330281901004");
    json_decref(j);

    /* bin/bureau prints the same */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s/bureau --plaintext --port %d --token %s coverage --town " TOWN,
             t_env("CARELINE_BIN"), d.proto_port, bureau_tok);
    FILE *f = popen(cmd, "r");
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    T_EQ_INT(pclose(f), 0);
    T_ASSERT(strstr(out, "测试镇"));
    T_ASSERT(strstr(out, "3 / 6 = 50.0%"));
    T_ASSERT(strstr(out, "190 / 240"));
    snprintf(
        cmd, sizeof(cmd),
        "%s/bureau --plaintext --port %d --token %s --format csv villages --uncovered --town " TOWN
        " | wc -l",
        t_env("CARELINE_BIN"), d.proto_port, bureau_tok);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    T_EQ_INT(atoi(out), 4);
    snprintf(cmd, sizeof(cmd), "%s/bureau --plaintext --port %d --token %s plan --target 1.5 2>&1",
             t_env("CARELINE_BIN"), d.proto_port, bureau_tok);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    T_EQ_INT(WEXITSTATUS(pclose(f)), 2);
    T_ASSERT(strstr(out, "INVALID_ARGUMENT (target)"));

    cl_close(c);
    finish();
    PQfinish(pg);
}

/* Coverage counted independently in SQL: any qualifying station within the circle (not the
 * nearest one, as the view does) or a qualifying listing. */
static const char *indep_sql =
    "WITH q AS (SELECT id, lat, lon FROM stations WHERE active AND offers_meal_delivery), "
    "x AS (SELECT v.town_code, v.elderly_population AS e, "
    "  EXISTS (SELECT 1 FROM q WHERE careline_travel_minutes(v.lat, v.lon, q.lat, q.lon, "
    "          v.area_kind) <= 15) "
    "  OR EXISTS (SELECT 1 FROM station_service_area a JOIN q ON q.id = a.station_id "
    "             WHERE a.village_code = v.code) AS cov "
    "  FROM villages v WHERE v.county_code = '330281') "
    "SELECT count(*), count(*) FILTER (WHERE cov), sum(e), coalesce(sum(e) FILTER (WHERE cov), 0) "
    "FROM x";

static void yuyao_matches_sql(void)
{
    PGconn *pg = itest_pg();
    start(pg);
    ClConn *c = itest_login(&d, bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(TOWNS);
    ClEnvelope *r = report(c, &q);
    const Report *rep = r->coverage_report;
    PGresult *s = itest_sql(pg, indep_sql, 0, NULL);
    T_EQ_INT(rep->county->villages, atol(PQgetvalue(s, 0, 0)));
    T_EQ_INT(rep->county->villages_covered, atol(PQgetvalue(s, 0, 1)));
    T_EQ_INT(rep->county->elderly, atoll(PQgetvalue(s, 0, 2)));
    T_EQ_INT(rep->county->elderly_covered, atoll(PQgetvalue(s, 0, 3)));
    T_ASSERT(rep->county->villages >= 326);
    printf("# Yuyao: %u / %u villages covered (%.4f), elderly-weighted %.4f\n",
           rep->county->villages_covered, rep->county->villages, rep->county->rate,
           rep->county->rate_elderly);
    PQclear(s);

    /* the analyst views, read as careline_bureau, agree per town and for the county */
    char ci[512];
    snprintf(ci, sizeof(ci), "%s user=careline_bureau", t_env("CARELINE_PG_ADMIN"));
    PGconn *bu = PQconnectdb(ci);
    T_ASSERT(PQstatus(bu) == CONNECTION_OK);
    s = itest_sql(bu,
                  "SELECT villages, villages_covered, elderly, elderly_covered, rate "
                  "FROM v_county_coverage WHERE county_code = '330281'",
                  0, NULL);
    T_EQ_INT(rep->county->villages, atol(PQgetvalue(s, 0, 0)));
    T_EQ_INT(rep->county->villages_covered, atol(PQgetvalue(s, 0, 1)));
    T_EQ_INT(rep->county->elderly_covered, atoll(PQgetvalue(s, 0, 3)));
    PQclear(s);
    s = itest_sql(bu,
                  "SELECT code, villages, villages_covered, elderly_covered "
                  "FROM v_town_coverage WHERE county_code = '330281' ORDER BY code",
                  0, NULL);
    T_EQ_INT(PQntuples(s), rep->n_towns);
    for (size_t i = 0; i < rep->n_towns; i++) {
        T_EQ_STR(PQgetvalue(s, (int)i, 0), rep->towns[i]->code);
        T_EQ_INT(atol(PQgetvalue(s, (int)i, 1)), rep->towns[i]->figure->villages);
        T_EQ_INT(atol(PQgetvalue(s, (int)i, 2)), rep->towns[i]->figure->villages_covered);
        T_EQ_INT(atoll(PQgetvalue(s, (int)i, 3)), rep->towns[i]->figure->elderly_covered);
    }
    PQclear(s);
    s = itest_sql(bu, "SELECT key, value FROM v_indicators WHERE county_code = '330281'", 0, NULL);
    T_EQ_INT(PQntuples(s), 4);
    for (int i = 0; i < 4; i++)
        for (size_t k = 0; k < rep->n_indicators; k++)
            if (strcmp(rep->indicators[k]->key, PQgetvalue(s, i, 0)) == 0)
                T_NEAR(rep->indicators[k]->value, strtod(PQgetvalue(s, i, 1), NULL), 1e-9);
    PQclear(s);
    /* the bureau reads aggregates, never the per-request rows */
    PGresult *deny = PQexec(bu, "SELECT count(*) FROM requests");
    T_ASSERT(PQresultStatus(deny) == PGRES_FATAL_ERROR);
    PQclear(deny);
    deny = PQexec(bu, "SELECT count(*) FROM careline_request_outcomes");
    T_ASSERT(PQresultStatus(deny) == PGRES_FATAL_ERROR);
    PQclear(deny);
    s = itest_sql(bu, "SELECT count(*) FROM v_realized_daily", 0, NULL);
    PQclear(s);
    PQfinish(bu);
    cl_free(r);

    /* the plan reaches 95% on Yuyao with additions that each add coverage */
    q.scope = SCOPE(PLAN);
    q.target = 0.95;
    r = report(c, &q);
    rep = r->coverage_report;
    T_ASSERT(rep->plan_reached);
    T_ASSERT(rep->n_plan > 0);
    uint32_t prev = rep->plan_covered_before;
    for (size_t i = 0; i < rep->n_plan; i++) {
        T_ASSERT(rep->plan[i]->newly_covered > 0);
        T_EQ_INT(rep->plan[i]->covered_after, prev + rep->plan[i]->newly_covered);
        prev = rep->plan[i]->covered_after;
        if (i > 0)
            T_ASSERT(rep->plan[i]->newly_covered <= rep->plan[i - 1]->newly_covered);
    }
    T_ASSERT(rep->plan[rep->n_plan - 1]->rate_after >= 0.95);
    T_ASSERT(rep->n_plan == 1 || rep->plan[rep->n_plan - 2]->rate_after < 0.95);
    printf("# Yuyao plan to 95%%: %zu new stations (%u -> %u villages)\n", rep->n_plan,
           rep->plan_covered_before, rep->plan[rep->n_plan - 1]->covered_after);
    cl_free(r);
    cl_close(c);
    finish();
    PQfinish(pg);
}

static void snapshots_and_history(void)
{
    PGconn *pg = itest_pg();
    start(pg);
    char d0[11], d1[11], d2[11], path[256];
    today_str(d0, 0);
    today_str(d1, 1);
    today_str(d2, 2);
    char *body;
    /* today twice (HTTP), two earlier days over the protocol */
    T_EQ_INT(http("POST", "/v1/coverage/snapshot", bureau_tok, NULL, &body), 200);
    free(body);
    T_EQ_INT(http("POST", "/v1/coverage/snapshot?format=csv", bureau_tok, NULL, &body), 200);
    T_ASSERT(strncmp(body, "scope,code,name,", 16) == 0);
    free(body);
    ClConn *c = itest_login(&d, bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(SNAPSHOT);
    q.day = d1;
    ClEnvelope *r = report(c, &q);
    T_EQ_STR(r->coverage_report->snapshot_day, d1);
    uint32_t covered = r->coverage_report->county->villages_covered;
    T_ASSERT(r->coverage_report->n_towns >= 21);
    cl_free(r);
    q.day = d2;
    cl_free(report(c, &q));
    cl_free(report(c, &q));
    const char *p[] = {d0, d2};
    PGresult *s = itest_sql(pg,
                            "SELECT count(*) FILTER (WHERE day = $1::date AND scope = 'county'), "
                            "count(*) FILTER (WHERE day BETWEEN $2::date AND $1::date AND "
                            "scope = 'county'), "
                            "count(*) FILTER (WHERE day = $1::date AND scope <> 'county'), "
                            "(SELECT count(*) FROM towns WHERE county_code = '330281') "
                            "FROM coverage_snapshots",
                            2, p);
    T_EQ_INT(atol(PQgetvalue(s, 0, 0)), 1); /* written twice, one row */
    T_EQ_INT(atol(PQgetvalue(s, 0, 1)), 3);
    T_EQ_INT(atol(PQgetvalue(s, 0, 2)), atol(PQgetvalue(s, 0, 3)));
    PQclear(s);
    s = itest_sql(pg,
                  "SELECT target, service_circle_minutes, inputs_version, "
                  "indicators ? 'terminal_share' FROM coverage_snapshots "
                  "WHERE day = $1::date AND scope = 'county'",
                  1, p);
    T_NEAR(strtod(PQgetvalue(s, 0, 0), NULL), 0.95, 1e-12);
    T_EQ_INT(atol(PQgetvalue(s, 0, 1)), 15);
    T_ASSERT(strstr(PQgetvalue(s, 0, 2), "stations="));
    T_EQ_STR(PQgetvalue(s, 0, 3), "t");
    PQclear(s);

    /* history over the range: three days in order, over both doors */
    q.scope = SCOPE(HISTORY);
    q.day = (char *)"";
    q.from_date = d2;
    q.to_date = d0;
    r = report(c, &q);
    T_EQ_INT(r->coverage_report->n_history, 3);
    T_EQ_STR(r->coverage_report->history[0]->day, d2);
    T_EQ_STR(r->coverage_report->history[2]->day, d0);
    T_EQ_INT(r->coverage_report->history[1]->figure->villages_covered, covered);
    T_EQ_STR(r->coverage_report->history[0]->scope, "county");
    cl_free(r);
    q.town_code = (char *)TOWN;
    r = report(c, &q);
    T_EQ_INT(r->coverage_report->n_history, 3);
    T_EQ_STR(r->coverage_report->history[0]->scope, TOWN);
    T_EQ_INT(r->coverage_report->history[0]->figure->villages, 6);
    cl_free(r);
    snprintf(path, sizeof(path), "/v1/coverage/history?from=%s&to=%s&format=csv", d2, d0);
    T_EQ_INT(http("GET", path, bureau_tok, NULL, &body), 200);
    int lines = 0;
    for (char *x = body; *x; x++)
        lines += *x == '\n';
    T_EQ_INT(lines, 4);
    free(body);
    cl_close(c);
    finish();
    PQfinish(pg);
}

static long submit(ClConn *c, const char *key, const char *phone, long resident, bool care)
{
    Careline__V1__SubmitRequest sr = CARELINE__V1__SUBMIT_REQUEST__INIT;
    sr.idempotency_key = (char *)key;
    if (phone) {
        sr.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
        sr.caller_phone = (char *)phone;
    } else {
        sr.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID;
        sr.resident_id = resident;
    }
    char tomorrow[11];
    today_str(tomorrow, -1);
    if (care) {
        sr.kind = CARELINE__V1__SERVICE_KIND__HOME_CARE;
        sr.care_subtype = CARELINE__V1__CARE_SUBTYPE__CLEANING;
    } else {
        sr.kind = CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY;
        sr.meal_slot = CARELINE__V1__MEAL_SLOT__LUNCH;
        sr.service_date = tomorrow;
    }
    ClEnvelope *r = isess_submit(&d, c, &sr, 20000);
    if (r->body_case != BODY(SUBMIT_RESULT))
        itest_daemon_dump_log(&d);
    long id = (long)isess_result(r)->request_id;
    cl_free(r);
    return id;
}

/* Realized row of (scope, key, kind) from a report; fails when absent. */
static const Careline__V1__RealizedRow *row(const Report *rep, const char *scope, const char *key,
                                            const char *kind)
{
    for (size_t i = 0; i < rep->n_realized; i++) {
        const Careline__V1__RealizedRow *w = rep->realized[i];
        if (strcmp(w->scope, scope) == 0 && strcmp(w->key, key) == 0 && strcmp(w->kind, kind) == 0)
            return w;
    }
    return NULL;
}

static void realized_day(void)
{
    PGconn *pg = itest_pg();
    setup_town(pg);
    start(pg);
    ClConn *bc = itest_login(&d, bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(REALIZED);
    ClEnvelope *before = report(bc, &q); /* county, today */
    const Careline__V1__RealizedRow *b0 = row(before->coverage_report, "county", "", "all");
    T_ASSERT(b0);

    /* a scripted day: six calls through the gateway, then the station's part simulated in
     * SQL (the station console flow is built separately): three meals delivered 30, 40
     * and 50 minutes after the call with the window ending at 45 (two on time), one meal
     * dead-lettered, one care visit rejected, and one caller not registered */
    ClConn *gc = itest_login(&d, gateway_tok);
    char nonce[32], key[64];
    snprintf(nonce, sizeof(nonce), "%lld", (long long)util_wall_ms());
    long ids[6];
    const char *phones[] = {"19900000001", "19900000002", "19900000003",
                            "19900000004", "19900000005", "19911112222"};
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "bt-%s-%d", nonce, i);
        ids[i] = submit(gc, key, phones[i], 0, i == 4);
        T_ASSERT(ids[i] > 0);
    }
    cl_close(gc);
    char idl[256];
    snprintf(idl, sizeof(idl), "{%ld,%ld,%ld,%ld,%ld}", ids[0], ids[1], ids[2], ids[3], ids[4]);
    const char *p1[] = {idl};
    /* finish whatever job each got, so no sweep moves them again */
    PQclear(itest_sql(pg,
                      "UPDATE jobs SET state = 'expired', finished_at = now() "
                      "WHERE request_id = ANY($1::bigint[]) "
                      "AND state IN ('offered', 'accepted', 'en_route')",
                      1, p1));
    static const struct {
        const char *state;
        int minutes;
    } fate[5] = {{"delivered", 30},
                 {"delivered", 40},
                 {"delivered", 50},
                 {"dead_letter", 0},
                 {"rejected", 0}};
    for (int i = 0; i < 5; i++) {
        char id[32], mins[16];
        snprintf(id, sizeof(id), "%ld", ids[i]);
        snprintf(mins, sizeof(mins), "%d", fate[i].minutes);
        const char *p[] = {id, fate[i].state, mins};
        PQclear(itest_sql(pg,
                          "UPDATE requests SET state = $2, window_start = created_at, "
                          "window_end = created_at + interval '45 minutes', station_id = "
                          "(SELECT id FROM stations WHERE code = 'BT-S1') "
                          "WHERE id = $1::bigint",
                          2, p));
        PQclear(itest_sql(pg,
                          "INSERT INTO request_events (request_id, state, actor, at) "
                          "SELECT id, $2, 'itest-station', created_at + "
                          "make_interval(mins => $3::int) FROM requests WHERE id = $1::bigint",
                          3, p));
        if (strcmp(fate[i].state, "dead_letter") == 0)
            PQclear(itest_sql(pg,
                              "INSERT INTO dead_letters (request_id, attempts, last_reason) "
                              "VALUES ($1::bigint, 3, 'itest') ON CONFLICT DO NOTHING",
                              1, p));
    }

    ClEnvelope *after = report(bc, &q);
    const Careline__V1__RealizedRow *a0 = row(after->coverage_report, "county", "", "all");
    T_ASSERT(a0);
    T_EQ_INT(a0->received - b0->received, 6);
    T_EQ_INT(a0->delivered - b0->delivered, 3);
    T_EQ_INT(a0->on_time - b0->on_time, 2);
    T_EQ_INT(a0->dead_lettered - b0->dead_lettered, 1);
    T_EQ_INT(a0->rejected - b0->rejected, 1);
    T_EQ_INT(a0->not_registered - b0->not_registered, 1);
    const Careline__V1__RealizedRow *care = row(after->coverage_report, "county", "", "home_care");
    T_ASSERT(care && care->rejected >= 1);

    /* the town alone: only the five registered callers, exact figures */
    q.town_code = (char *)TOWN;
    ClEnvelope *town = report(bc, &q);
    const Report *tr = town->coverage_report;
    const Careline__V1__RealizedRow *t0 = row(tr, "county", "", "all");
    const Careline__V1__RealizedRow *tt = row(tr, "town", TOWN, "all");
    T_ASSERT(t0 && tt);
    T_EQ_STR(tt->name, "测试镇");
    T_EQ_INT(tt->received, t0->received);
    const Careline__V1__RealizedRow *meal = row(tr, "county", "", "meal_delivery");
    T_ASSERT(meal);
    T_EQ_INT(meal->delivered, t0->delivered);
    if (t0->received == 5) { /* a fresh database: this run's requests only */
        T_EQ_INT(t0->delivered, 3);
        T_EQ_INT(t0->on_time, 2);
        T_EQ_INT(t0->dead_lettered, 1);
        T_EQ_INT(t0->rejected, 1);
        T_EQ_INT(t0->not_registered, 0);
        T_NEAR(t0->median_minutes, 40.0, 1e-6);
        T_NEAR(t0->p90_minutes, 48.0, 1e-6); /* 40 + 0.8 x (50 - 40) */
        char s1[32];
        snprintf(s1, sizeof(s1), "%ld", station_id(pg, "BT-S1"));
        const Careline__V1__RealizedRow *st = row(tr, "station", s1, "all");
        T_ASSERT(st && st->received == 5 && st->delivered == 3);
        T_EQ_STR(st->name, "近村站");
    }
    /* the same over HTTP as CSV, and the daily view agrees with the function */
    char today[11], path[256], *body;
    today_str(today, 0);
    snprintf(path, sizeof(path), "/v1/realized?from=%s&to=%s&town=%s&format=csv", today, today,
             TOWN);
    T_EQ_INT(http("GET", path, bureau_tok, NULL, &body), 200);
    T_ASSERT(strncmp(body, "scope,key,name,kind,received,queued,delivered,on_time,", 54) == 0);
    char expect[128];
    snprintf(expect, sizeof(expect), "\ntown,%s,测试镇,all,%u,", TOWN, tt->received);
    T_ASSERT(strstr(body, expect));
    free(body);
    const char *pd[] = {today};
    PGresult *s = itest_sql(pg,
                            "SELECT received, delivered FROM v_realized_daily WHERE day = "
                            "$1::date AND scope = 'county' AND kind = 'all'",
                            1, pd);
    T_EQ_INT(atol(PQgetvalue(s, 0, 0)), a0->received);
    T_EQ_INT(atol(PQgetvalue(s, 0, 1)), a0->delivered);
    PQclear(s);
    cl_free(before);
    cl_free(after);
    cl_free(town);
    cl_close(bc);
    finish();
    PQfinish(pg);
}

static void bad_inputs(void)
{
    PGconn *pg = itest_pg();
    setup_town(pg);
    start(pg);
    char d0[11], far_past[11], future[11];
    today_str(d0, 0);
    today_str(far_past, 400);
    today_str(future, -1);
    ClConn *c = itest_login(&d, bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(VILLAGES);
    q.town_code = (char *)"330281999000";
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "town_code");
    q.town_code = (char *)"33028";
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "town_code");
    q.town_code = (char *)"";
    q.uncovered_only = q.covered_only = true;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "covered_only");
    q.uncovered_only = q.covered_only = false;
    q.scope = SCOPE(HISTORY);
    q.from_date = d0;
    q.to_date = far_past;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "from_date");
    q.from_date = far_past;
    q.to_date = d0;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "to_date");
    q.from_date = (char *)"2026-02-30";
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "from_date");
    q.from_date = (char *)"";
    q.to_date = (char *)"yesterday";
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "to_date");
    q.to_date = (char *)"";
    q.scope = SCOPE(PLAN);
    q.target = 1.5;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "target");
    q.target = -0.1;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "target");
    q.target = NAN;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "target");
    q.target = 0;
    q.scope = SCOPE(SNAPSHOT);
    q.day = future;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "day");
    q.day = (char *)"";
    q.town_code = (char *)TOWN;
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "town_code");
    q.town_code = (char *)"";
    q.scope = SCOPE(UNSPECIFIED);
    expect_invalid(c, &q, ERR(INVALID_ARGUMENT), "scope");
    /* the session goes on after each */
    q.scope = SCOPE(COUNTY);
    cl_free(report(c, &q));
    cl_close(c);
    /* a gateway may not ask */
    char gw[64];
    c = itest_login(&d, itest_make_token(pg, "gateway", 0, gw));
    expect_invalid(c, &q, ERR(FORBIDDEN), NULL);
    cl_close(c);

    /* HTTP: auth first, then each parameter */
    char path[256];
    http_expect("GET", "/v1/coverage", NULL, 401, NULL);
    http_expect("GET", "/v1/coverage", "no-such-token", 401, NULL);
    http_expect("GET", "/v1/coverage", gw, 403, NULL);
    PGresult *s = itest_sql(pg, "SELECT id FROM stations WHERE code = 'BT-S1'", 0, NULL);
    char st[64];
    itest_make_token(pg, "station", atol(PQgetvalue(s, 0, 0)), st);
    PQclear(s);
    http_expect("GET", "/v1/plan", st, 403, NULL);
    http_expect("POST", "/v1/coverage", bureau_tok, 405, NULL);
    http_expect("GET", "/v1/coverage/snapshot", bureau_tok, 405, NULL);
    http_expect("GET", "/v1/coverage/villages?town=330281999000", bureau_tok, 400, "town");
    http_expect("GET", "/v1/coverage/villages?covered=maybe", bureau_tok, 400, "covered");
    snprintf(path, sizeof(path), "/v1/realized?from=%s&to=%s", d0, far_past);
    http_expect("GET", path, bureau_tok, 400, "from");
    snprintf(path, sizeof(path), "/v1/coverage/history?from=%s&to=%s", far_past, d0);
    http_expect("GET", path, bureau_tok, 400, "to");
    http_expect("GET", "/v1/realized?from=2026-1-1", bureau_tok, 400, "from");
    http_expect("GET", "/v1/plan?target=0", bureau_tok, 400, "target");
    http_expect("GET", "/v1/plan?target=1.01", bureau_tok, 400, "target");
    http_expect("GET", "/v1/plan?target=abc", bureau_tok, 400, "target");
    http_expect("GET", "/v1/plan?town", bureau_tok, 400, "query");
    http_expect("GET", "/v1/plan?targt=0.9", bureau_tok, 400, "targt");
    http_expect("GET", "/v1/coverage?format=xml", bureau_tok, 400, "format");
    http_expect("GET", "/v1/coverage?target=0.9", bureau_tok, 400, "target");
    snprintf(path, sizeof(path), "/v1/coverage/snapshot?day=%s", future);
    http_expect("POST", path, bureau_tok, 400, "day");
    /* and the good ones still answer (the token is cached now) */
    json_decref(http_json("/v1/coverage/towns", bureau_tok, 200));
    T_ASSERT(itest_daemon_alive(&d));
    finish();
    PQfinish(pg);
}

static const TCase cases[] = {
    {"bureau_hand_town", hand_town, 120},
    {"bureau_yuyao_matches_sql", yuyao_matches_sql, 120},
    {"bureau_snapshots_history", snapshots_and_history, 120},
    {"bureau_realized_day", realized_day, 120},
    {"bureau_bad_inputs", bad_inputs, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
