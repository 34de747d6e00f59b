/*
 * Integration tests of the bureau's answers to bad input: every invalid CoverageQuery field
 * and every HTTP parameter gets its error with the field named, authorization comes first,
 * and the session and the daemon go on afterwards.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ibureau.h"
#include "t.h"

#define ERR(code) CARELINE__V1__ERROR_CODE__##code
#define SCOPE(x)  CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x

static IburRig rig;

static void bad_inputs(void)
{
    PGconn *pg = itest_pg();
    ibur_town(&rig, pg);
    ibur_start(&rig, pg);
    char d0[11], far_past[11], future[11];
    ibur_day(d0, 0);
    ibur_day(far_past, 400);
    ibur_day(future, -1);
    ClConn *c = itest_login(&rig.d, rig.bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(VILLAGES);
    q.town_code = (char *)"330281999000";
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "town_code");
    q.town_code = (char *)"33028";
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "town_code");
    q.town_code = (char *)"";
    q.uncovered_only = q.covered_only = true;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "covered_only");
    q.uncovered_only = q.covered_only = false;
    q.scope = SCOPE(HISTORY);
    q.from_date = d0;
    q.to_date = far_past;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "from_date");
    q.from_date = far_past;
    q.to_date = d0;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "to_date");
    q.from_date = (char *)"2026-02-30";
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "from_date");
    q.from_date = (char *)"";
    q.to_date = (char *)"yesterday";
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "to_date");
    q.to_date = (char *)"";
    q.scope = SCOPE(PLAN);
    q.target = 1.5;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "target");
    q.target = -0.1;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "target");
    q.target = NAN;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "target");
    q.target = 0;
    q.scope = SCOPE(SNAPSHOT);
    q.day = future;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "day");
    q.day = (char *)"";
    q.town_code = (char *)IBUR_TOWN;
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "town_code");
    q.town_code = (char *)"";
    q.scope = SCOPE(UNSPECIFIED);
    ibur_expect_invalid(&rig, c, &q, ERR(INVALID_ARGUMENT), "scope");
    /* the session goes on after each */
    q.scope = SCOPE(COUNTY);
    cl_free(ibur_report(&rig, c, &q));
    cl_close(c);
    /* a gateway may not ask */
    char gw[64];
    c = itest_login(&rig.d, itest_make_token(pg, "gateway", 0, gw));
    ibur_expect_invalid(&rig, c, &q, ERR(FORBIDDEN), NULL);
    cl_close(c);

    /* HTTP: auth first, then each parameter */
    char path[256];
    ibur_http_expect(&rig, "GET", "/v1/coverage", NULL, 401, NULL);
    ibur_http_expect(&rig, "GET", "/v1/coverage", "no-such-token", 401, NULL);
    ibur_http_expect(&rig, "GET", "/v1/coverage", gw, 403, NULL);
    PGresult *s = itest_sql(pg, "SELECT id FROM stations WHERE code = 'BT-S1'", 0, NULL);
    char st[64];
    itest_make_token(pg, "station", atol(PQgetvalue(s, 0, 0)), st);
    PQclear(s);
    ibur_http_expect(&rig, "GET", "/v1/plan", st, 403, NULL);
    ibur_http_expect(&rig, "POST", "/v1/coverage", rig.bureau_tok, 405, NULL);
    ibur_http_expect(&rig, "GET", "/v1/coverage/snapshot", rig.bureau_tok, 405, NULL);
    ibur_http_expect(&rig, "GET", "/v1/coverage/villages?town=330281999000", rig.bureau_tok, 400,
                     "town");
    ibur_http_expect(&rig, "GET", "/v1/coverage/villages?covered=maybe", rig.bureau_tok, 400,
                     "covered");
    snprintf(path, sizeof(path), "/v1/realized?from=%s&to=%s", d0, far_past);
    ibur_http_expect(&rig, "GET", path, rig.bureau_tok, 400, "from");
    snprintf(path, sizeof(path), "/v1/coverage/history?from=%s&to=%s", far_past, d0);
    ibur_http_expect(&rig, "GET", path, rig.bureau_tok, 400, "to");
    ibur_http_expect(&rig, "GET", "/v1/realized?from=2026-1-1", rig.bureau_tok, 400, "from");
    ibur_http_expect(&rig, "GET", "/v1/plan?target=0", rig.bureau_tok, 400, "target");
    ibur_http_expect(&rig, "GET", "/v1/plan?target=1.01", rig.bureau_tok, 400, "target");
    ibur_http_expect(&rig, "GET", "/v1/plan?target=abc", rig.bureau_tok, 400, "target");
    ibur_http_expect(&rig, "GET", "/v1/plan?town", rig.bureau_tok, 400, "query");
    ibur_http_expect(&rig, "GET", "/v1/plan?targt=0.9", rig.bureau_tok, 400, "targt");
    ibur_http_expect(&rig, "GET", "/v1/coverage?format=xml", rig.bureau_tok, 400, "format");
    ibur_http_expect(&rig, "GET", "/v1/coverage?target=0.9", rig.bureau_tok, 400, "target");
    snprintf(path, sizeof(path), "/v1/coverage/snapshot?day=%s", future);
    ibur_http_expect(&rig, "POST", path, rig.bureau_tok, 400, "day");
    /* and the good ones still answer (the token is cached now) */
    json_decref(ibur_http_json(&rig, "/v1/coverage/towns", rig.bureau_tok, 200));
    T_ASSERT(itest_daemon_alive(&rig.d));
    ibur_finish(&rig);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"bureau_bad_inputs", bad_inputs, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
