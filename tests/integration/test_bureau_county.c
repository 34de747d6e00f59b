/*
 * Integration tests of the bureau module on the Yuyao county data: its figure against an
 * independent SQL computation and against the analyst views read as careline_bureau (who
 * may not read per-request rows), and the plan to 95% on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibureau.h"
#include "t.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
typedef Careline__V1__CoverageReport Report;

static IburRig rig;

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
    ibur_start(&rig, pg);
    ClConn *c = itest_login(&rig.d, rig.bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(TOWNS);
    ClEnvelope *r = ibur_report(&rig, c, &q);
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
    r = ibur_report(&rig, c, &q);
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
    ibur_finish(&rig);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"bureau_yuyao_matches_sql", yuyao_matches_sql, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
