/*
 * test_bureau: the pure parts the bureau's doors share — CSV and JSON rendering of a
 * CoverageReport (quoting, shapes, "no data" minutes) — and the greedy plan against the
 * exhaustive optimum on small hand-made counties where greedy is known to be optimal.
 */
#include "common/report_format.h"
#include "reports/coverage.h"
#include "t.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x

static void test_csv_field(void)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    report_csv_field(f, "plain");
    fputc('|', f);
    report_csv_field(f, "a,b");
    fputc('|', f);
    report_csv_field(f, "say \"hi\"");
    fputc('|', f);
    report_csv_field(f, "two\nlines");
    fputc('|', f);
    report_csv_field(f, NULL);
    fclose(f);
    T_EQ_STR(buf, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|");
    free(buf);
}

static void test_render_villages(void)
{
    Careline__V1__VillageCoverage v[2] = {CARELINE__V1__VILLAGE_COVERAGE__INIT,
                                          CARELINE__V1__VILLAGE_COVERAGE__INIT};
    v[0].code = (char *)"330281001001", v[0].name = (char *)"花园社区",
    v[0].town_code = (char *)"330281001000";
    v[0].covered = true, v[0].nearest_station_id = 7, v[0].nearest_minutes = 3.25;
    v[0].elderly = 12;
    v[1].code = (char *)"330281001002", v[1].name = (char *)"A, \"B\"",
    v[1].town_code = (char *)"330281001000";
    v[1].nearest_minutes = -1, v[1].approximate_location = true;
    Careline__V1__VillageCoverage *pv[2] = {&v[0], &v[1]};
    Careline__V1__CoverageReport r = CARELINE__V1__COVERAGE_REPORT__INIT;
    r.villages = pv, r.n_villages = 2, r.as_of = (char *)"x", r.scope_code = (char *)"330281";
    size_t n;
    char *csv = report_csv(&r, SCOPE(VILLAGES), &n);
    T_EQ_STR(csv, "code,name,town_code,covered,station_id,minutes,approximate_location,elderly\n"
                  "330281001001,花园社区,330281001000,true,7,3.25,false,12\n"
                  "330281001002,\"A, \"\"B\"\"\",330281001000,false,,,true,0\n");
    T_EQ_INT(n, strlen(csv));
    free(csv);
    char *js = report_json(&r, SCOPE(VILLAGES), &n);
    json_t *j = json_loads(js, 0, NULL);
    T_ASSERT(j);
    json_t *a = json_object_get(j, "villages");
    T_EQ_INT(json_array_size(a), 2);
    T_ASSERT(json_is_null(json_object_get(json_array_get(a, 1), "minutes")));
    T_ASSERT(json_is_null(json_object_get(json_array_get(a, 1), "station_id")));
    T_EQ_STR(json_string_value(json_object_get(json_array_get(a, 1), "name")), "A, \"B\"");
    T_ASSERT(!json_object_get(j, "towns")); /* only the parts the scope fills */
    json_decref(j);
    free(js);
}

static void test_render_county(void)
{
    Careline__V1__CoverageFigure f = CARELINE__V1__COVERAGE_FIGURE__INIT;
    f.villages = 4, f.villages_covered = 3, f.rate = 0.75, f.elderly = 100;
    f.elderly_covered = 90, f.rate_elderly = 0.9;
    Careline__V1__CoverageReport r = CARELINE__V1__COVERAGE_REPORT__INIT;
    r.county = &f, r.target = 0.95, r.scope_code = (char *)"330281", r.as_of = (char *)"t";
    char *csv = report_csv(&r, SCOPE(COUNTY), NULL);
    T_EQ_STR(csv, "scope,code,name,villages,villages_covered,rate,elderly,elderly_covered,"
                  "rate_elderly,approx_villages,target,met\n"
                  "county,330281,,4,3,0.75,100,90,0.9,0,0.95,false\n");
    free(csv);
    char *js = report_json(&r, SCOPE(PLAN), NULL);
    json_t *j = json_loads(js, 0, NULL);
    T_ASSERT(j);
    T_ASSERT(json_is_false(json_object_get(json_object_get(j, "county"), "met")));
    T_EQ_INT(json_array_size(json_object_get(json_object_get(j, "plan"), "steps")), 0);
    json_decref(j);
    free(js);
}

static void test_render_unmet(void)
{
    Careline__V1__UnmetRow c = CARELINE__V1__UNMET_ROW__INIT, t = CARELINE__V1__UNMET_ROW__INIT;
    c.scope = (char *)"county", c.key = (char *)"", c.name = (char *)"";
    c.followups = 2, c.open = 1, c.declined = 1, c.calls = 5;
    c.median_hours_to_contact = 3.5;
    t.scope = (char *)"town", t.key = (char *)"", t.name = (char *)"";
    t.followups = 2, t.open = 1, t.declined = 1, t.calls = 5;
    t.median_hours_to_contact = -1; /* none followed up: empty in CSV, null in JSON */
    Careline__V1__UnmetRow *rows[] = {&c, &t};
    Careline__V1__CoverageReport r = CARELINE__V1__COVERAGE_REPORT__INIT;
    r.n_unmet = 2, r.unmet = rows;
    char *csv = report_csv(&r, SCOPE(UNMET), NULL);
    T_EQ_STR(csv, "scope,key,name,followups,open,contacted,registered,declined,calls,"
                  "registered_residents,median_hours_to_contact\n"
                  "county,,,2,1,0,0,1,5,0,3.50\n"
                  "town,,,2,1,0,0,1,5,0,\n");
    free(csv);
    char *js = report_json(&r, SCOPE(UNMET), NULL);
    json_t *j = json_loads(js, 0, NULL);
    T_ASSERT(j);
    json_t *a = json_object_get(j, "unmet");
    T_EQ_INT(json_array_size(a), 2);
    T_NEAR(json_real_value(json_object_get(json_array_get(a, 0), "median_hours_to_contact")), 3.5,
           1e-9);
    T_ASSERT(json_is_null(json_object_get(json_array_get(a, 1), "median_hours_to_contact")));
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(a, 0), "calls")), 5);
    json_decref(j);
    free(js);
}

/* Villages in clusters along a line, 0.2 degrees apart (22 km: far beyond one circle), no
 * stations: each cluster needs one site, so greedy and brute force both need k sites. */
static void test_plan_matches_brute_force(void)
{
    for (int k = 1; k <= 5; k++) {
        CovVillage v[15];
        size_t n = 0;
        for (int c = 0; c < k; c++)
            for (int i = 0; i <= c % 3; i++)
                v[n++] = (CovVillage){(int64_t)n, 0,  30.0 + 0.2 * c, 121.0 + 0.005 * i,
                                      GEO_RURAL,  10, false};
        StIndex *ix = stindex_new(NULL, 0);
        CovReport *cov = coverage_compute(v, n, 1, ix, NULL, 0, &geo_model_default);
        T_EQ_INT(cov->county.covered, 0);
        CovPlan *p = coverage_plan(v, n, cov, &geo_model_default, NULL, 0, 1.0);
        size_t count;
        uint32_t mask;
        T_ASSERT(coverage_plan_optimal(v, n, cov, &geo_model_default, NULL, 0, 1.0, &count, &mask));
        T_ASSERT(p->reached);
        T_EQ_INT(p->n_steps, count);
        T_EQ_INT(count, k);
        coverage_plan_free(p);
        coverage_report_free(cov);
        stindex_free(ix);
    }
}

static const TCase cases[] = {
    {"bureau_csv_field", test_csv_field, 0},
    {"bureau_render_villages", test_render_villages, 0},
    {"bureau_render_county", test_render_county, 0},
    {"bureau_render_unmet", test_render_unmet, 0},
    {"bureau_plan_brute_force", test_plan_matches_brute_force, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
