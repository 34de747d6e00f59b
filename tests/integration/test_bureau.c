/*
 * Integration tests of the bureau module on the hand-made town (tests/lib/ibureau.h, every
 * figure worked out there) through a real dispatchd, PostgreSQL and Redis: the county,
 * villages, towns and plan figures over the protocol, the plan against brute force in
 * process, the same over HTTP (JSON and CSV) and from bin/bureau.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/geo.h"
#include "reports/coverage.h"
#include "ibureau.h"
#include "t.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
typedef Careline__V1__CoverageReport Report;

static IburRig rig;

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    T_ASSERT(json_is_number(v));
    return json_number_value(v);
}

static void hand_town(void)
{
    PGconn *pg = itest_pg();
    ibur_town(&rig, pg);
    ibur_start(&rig, pg);
    ClConn *c = itest_login(&rig.d, rig.bureau_tok);

    /* county figure restricted to the town, with the indicators */
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(COUNTY);
    q.town_code = (char *)IBUR_TOWN;
    ClEnvelope *r = ibur_report(&rig, c, &q);
    const Report *rep = r->coverage_report;
    T_EQ_STR(rep->scope_code, IBUR_TOWN);
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
    r = ibur_report(&rig, c, &q);
    rep = r->coverage_report;
    T_EQ_INT(rep->n_villages, 6);
    const bool want[] = {true, true, false, false, true, false};
    long s1 = ibur_station_id(pg, "BT-S1");
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
    r = ibur_report(&rig, c, &q);
    rep = r->coverage_report;
    T_EQ_INT(rep->n_villages, 3);
    T_EQ_STR(rep->villages[0]->code, "330281901003");
    T_EQ_STR(rep->villages[1]->code, "330281901004");
    T_EQ_STR(rep->villages[2]->code, "330281901006");
    cl_free(r);
    q.uncovered_only = false;

    /* towns scope with the filter: just this town */
    q.scope = SCOPE(TOWNS);
    r = ibur_report(&rig, c, &q);
    T_EQ_INT(r->coverage_report->n_towns, 1);
    T_EQ_INT(r->coverage_report->towns[0]->figure->villages_covered, 3);
    cl_free(r);

    /* plan to 1.0: V4 then V3, matching the exhaustive optimum */
    q.scope = SCOPE(PLAN);
    q.target = 1.0;
    r = ibur_report(&rig, c, &q);
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
                            {2, 0, rig.v2_lat, 100.0, GEO_RURAL, 50, false},
                            {3, 0, rig.v3_lat, 100.0, GEO_RURAL, 30, false},
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
    json_t *j = ibur_http_json(&rig, "/v1/coverage?town=" IBUR_TOWN, rig.bureau_tok, 200);
    json_t *cty = json_object_get(j, "county");
    T_EQ_INT(jnum(cty, "villages"), 6);
    T_EQ_INT(jnum(cty, "villages_covered"), 3);
    T_NEAR(jnum(cty, "rate"), 0.5, 1e-12);
    T_EQ_INT(jnum(cty, "elderly_covered"), 190);
    T_ASSERT(json_is_false(json_object_get(cty, "met")));
    json_decref(j);
    char *body;
    T_EQ_INT(ibur_http(&rig, "GET",
                       "/v1/coverage/villages?covered=false&town=" IBUR_TOWN "&format=csv",
                       rig.bureau_tok, NULL, &body),
             200);
    T_EQ_STR(body, "code,name,town_code,covered,station_id,minutes,approximate_location,elderly\n"
                   "330281901003,外村,330281901000,false,,,false,30\n"
                   "330281901004,闭站村,330281901000,false,,,false,20\n"
                   "330281901006,零老村,330281901000,false,,,false,0\n");
    free(body);
    /* Accept: text/csv picks CSV too */
    T_EQ_INT(
        ibur_http(&rig, "GET", "/v1/coverage?town=" IBUR_TOWN, rig.bureau_tok, "text/csv", &body),
        200);
    T_ASSERT(strncmp(body, "scope,code,name,villages,", 25) == 0);
    T_ASSERT(strstr(body, "\ntown," IBUR_TOWN ",测试镇,6,3,0.5,240,190,"));
    free(body);
    j = ibur_http_json(&rig, "/v1/plan?target=1&town=" IBUR_TOWN, rig.bureau_tok, 200);
    json_t *steps = json_object_get(json_object_get(j, "plan"), "steps");
    T_EQ_INT(json_array_size(steps), 2);
    T_EQ_STR(json_string_value(json_object_get(json_array_get(steps, 0), "village_code")),
             "330281901004");
    json_decref(j);

    /* bin/bureau prints the same */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s/bureau --plaintext --port %d --token %s coverage --town " IBUR_TOWN,
             t_env("CARELINE_BIN"), rig.d.proto_port, rig.bureau_tok);
    FILE *f = popen(cmd, "r");
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    T_EQ_INT(pclose(f), 0);
    T_ASSERT(strstr(out, "测试镇"));
    T_ASSERT(strstr(out, "3 / 6 = 50.0%"));
    T_ASSERT(strstr(out, "190 / 240"));
    snprintf(cmd, sizeof(cmd),
             "%s/bureau --plaintext --port %d --token %s --format csv villages --uncovered "
             "--town " IBUR_TOWN " | wc -l",
             t_env("CARELINE_BIN"), rig.d.proto_port, rig.bureau_tok);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    T_EQ_INT(atoi(out), 4);
    snprintf(cmd, sizeof(cmd), "%s/bureau --plaintext --port %d --token %s plan --target 1.5 2>&1",
             t_env("CARELINE_BIN"), rig.d.proto_port, rig.bureau_tok);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    T_EQ_INT(WEXITSTATUS(pclose(f)), 2);
    T_ASSERT(strstr(out, "INVALID_ARGUMENT (target)"));

    cl_close(c);
    ibur_finish(&rig);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"bureau_hand_town", hand_town, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
