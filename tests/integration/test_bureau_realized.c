/*
 * Integration tests of the bureau's realized figures: a scripted day of calls on the
 * hand-made town (through the gateway, the station's part done in SQL) moves the county,
 * town, kind and station rows by exactly what happened, over the protocol, HTTP CSV and the
 * daily view.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ibureau.h"
#include "isession.h"
#include "t.h"

#define BODY(b)  CARELINE__V1__ENVELOPE__BODY_##b
#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
typedef Careline__V1__CoverageReport Report;

static IburRig rig;

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
    ibur_day(tomorrow, -1);
    if (care) {
        sr.kind = CARELINE__V1__SERVICE_KIND__HOME_CARE;
        sr.care_subtype = CARELINE__V1__CARE_SUBTYPE__CLEANING;
    } else {
        sr.kind = CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY;
        sr.meal_slot = CARELINE__V1__MEAL_SLOT__LUNCH;
        sr.service_date = tomorrow;
    }
    ClEnvelope *r = isess_submit(&rig.d, c, &sr, 20000);
    if (r->body_case != BODY(SUBMIT_RESULT))
        itest_daemon_dump_log(&rig.d);
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
    ibur_town(&rig, pg);
    ibur_start(&rig, pg);
    ClConn *bc = itest_login(&rig.d, rig.bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(REALIZED);
    ClEnvelope *before = ibur_report(&rig, bc, &q); /* county, today */
    const Careline__V1__RealizedRow *b0 = row(before->coverage_report, "county", "", "all");
    T_ASSERT(b0);

    /* a scripted day: six calls through the gateway, then the station's part simulated in
     * SQL (the station console flow is built separately): three meals delivered 30, 40
     * and 50 minutes after the call with the window ending at 45 (two on time), one meal
     * dead-lettered, one care visit rejected, and one caller not registered */
    ClConn *gc = itest_login(&rig.d, rig.gateway_tok);
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

    ClEnvelope *after = ibur_report(&rig, bc, &q);
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
    q.town_code = (char *)IBUR_TOWN;
    ClEnvelope *town = ibur_report(&rig, bc, &q);
    const Report *tr = town->coverage_report;
    const Careline__V1__RealizedRow *t0 = row(tr, "county", "", "all");
    const Careline__V1__RealizedRow *tt = row(tr, "town", IBUR_TOWN, "all");
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
        snprintf(s1, sizeof(s1), "%ld", ibur_station_id(pg, "BT-S1"));
        const Careline__V1__RealizedRow *st = row(tr, "station", s1, "all");
        T_ASSERT(st && st->received == 5 && st->delivered == 3);
        T_EQ_STR(st->name, "近村站");
    }
    /* the same over HTTP as CSV, and the daily view agrees with the function */
    char today[11], path[256], *body;
    ibur_day(today, 0);
    snprintf(path, sizeof(path), "/v1/realized?from=%s&to=%s&town=%s&format=csv", today, today,
             IBUR_TOWN);
    T_EQ_INT(ibur_http(&rig, "GET", path, rig.bureau_tok, NULL, &body), 200);
    T_ASSERT(strncmp(body, "scope,key,name,kind,received,queued,delivered,on_time,", 54) == 0);
    char expect[128];
    snprintf(expect, sizeof(expect), "\ntown,%s,测试镇,all,%u,", IBUR_TOWN, tt->received);
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
    ibur_finish(&rig);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"bureau_realized_day", realized_day, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
