/*
 * Integration tests of the bureau's coverage snapshots: written over HTTP and the protocol
 * for today and earlier days (one row per day and scope, upserted), and read back as history
 * for the county and the hand-made town, over both doors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibureau.h"
#include "t.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x

static IburRig rig;

static void snapshots_and_history(void)
{
    PGconn *pg = itest_pg();
    ibur_start(&rig, pg);
    char d0[11], d1[11], d2[11], path[256];
    ibur_day(d0, 0);
    ibur_day(d1, 1);
    ibur_day(d2, 2);
    char *body;
    /* today twice (HTTP), two earlier days over the protocol */
    T_EQ_INT(ibur_http(&rig, "POST", "/v1/coverage/snapshot", rig.bureau_tok, NULL, &body), 200);
    free(body);
    T_EQ_INT(
        ibur_http(&rig, "POST", "/v1/coverage/snapshot?format=csv", rig.bureau_tok, NULL, &body),
        200);
    T_ASSERT(strncmp(body, "scope,code,name,", 16) == 0);
    free(body);
    ClConn *c = itest_login(&rig.d, rig.bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(SNAPSHOT);
    q.day = d1;
    ClEnvelope *r = ibur_report(&rig, c, &q);
    T_EQ_STR(r->coverage_report->snapshot_day, d1);
    uint32_t covered = r->coverage_report->county->villages_covered;
    T_ASSERT(r->coverage_report->n_towns >= 21);
    cl_free(r);
    q.day = d2;
    cl_free(ibur_report(&rig, c, &q));
    cl_free(ibur_report(&rig, c, &q));
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
    r = ibur_report(&rig, c, &q);
    T_EQ_INT(r->coverage_report->n_history, 3);
    T_EQ_STR(r->coverage_report->history[0]->day, d2);
    T_EQ_STR(r->coverage_report->history[2]->day, d0);
    T_EQ_INT(r->coverage_report->history[1]->figure->villages_covered, covered);
    T_EQ_STR(r->coverage_report->history[0]->scope, "county");
    cl_free(r);
    q.town_code = (char *)IBUR_TOWN;
    r = ibur_report(&rig, c, &q);
    T_EQ_INT(r->coverage_report->n_history, 3);
    T_EQ_STR(r->coverage_report->history[0]->scope, IBUR_TOWN);
    T_EQ_INT(r->coverage_report->history[0]->figure->villages, 6);
    cl_free(r);
    snprintf(path, sizeof(path), "/v1/coverage/history?from=%s&to=%s&format=csv", d2, d0);
    T_EQ_INT(ibur_http(&rig, "GET", path, rig.bureau_tok, NULL, &body), 200);
    int lines = 0;
    for (char *x = body; *x; x++)
        lines += *x == '\n';
    T_EQ_INT(lines, 4);
    free(body);
    cl_close(c);
    ibur_finish(&rig);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"bureau_snapshots_history", snapshots_and_history, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
