/*
 * Integration tests of a job's life at the stations on real PostgreSQL and Redis, two
 * daemons where it matters: a job submitted on daemon A reaches a console on daemon B by
 * wake-up (not by polling) and goes through its whole life; a station never sees or changes
 * another's job; forbidden and repeated updates; reject and timeout move the job on, and the
 * last attempt dead-letters it; the backlog on reconnect. Station status, heartbeats and
 * sessions: test_station_status.c; slow and many consoles: test_station_load.c; wake-ups:
 * test_station_wake.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "isession.h"
#include "istation.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static void cross_daemon_lifecycle(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 30, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, true, phone);
    Daemon a, b;
    itest_daemon_up(&a, NULL);
    /* B re-reads consoles only every minute: a job arriving sooner came by wake-up */
    itest_daemon_up(&b, (const char *const[]){"--console_refresh_ms=60000", NULL});
    IstConsole *k = ist_open(&b, pg, st);
    int64_t t0 = util_now_ms();
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = ist_submit_meal(&a, pg, fix_key("life-1"), phone, &keep);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    Careline__V1__JobOffer *o = ist_wait(k, s->job_id, S(JOB_STATE__OFFERED), 5000);
    T_ASSERT(o != NULL);
    long latency = (long)(util_now_ms() - t0);
    printf("  submit on A -> offer on B's console: %ld ms (includes the submit)\n", latency);
    T_ASSERT(latency < 3000);
    T_EQ_INT(o->request_id, s->request_id);
    T_EQ_INT(o->attempt, 1);
    T_EQ_INT(o->kind, S(SERVICE_KIND__MEAL_DELIVERY));
    T_EQ_STR(o->resident_name_masked, "测**");
    T_EQ_STR(o->resident_phone, ""); /* not before it is accepted */
    T_EQ_INT(o->n_priority, 1);
    T_EQ_INT(o->window_start_ms, s->window_start_ms);
    T_ASSERT(o->offer_expires_at_ms > 0);
    int64_t job = s->job_id, req = s->request_id;
    ist_update_ok(k, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_update_ok(k, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), false); /* repeat */
    Careline__V1__JobOffer *acc = ist_wait(k, job, S(JOB_STATE__JOB_ACCEPTED), 5000);
    T_ASSERT(acc && strcmp(acc->resident_phone, phone) == 0); /* now the operator may call */
    ist_update_ok(k, job, S(JOB_ACTION__GO_EN_ROUTE), 0, S(JOB_STATE__JOB_EN_ROUTE), true);
    ist_update_ok(k, job, S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), true);
    ist_update_ok(k, job, S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), false);
    /* every transition an event row, in order, with its actor */
    char rid[24];
    snprintf(rid, sizeof(rid), "%lld", (long long)req);
    PGresult *ev = itest_sql(pg,
                             "SELECT state, coalesce(job_state, ''), actor FROM request_events "
                             "WHERE request_id = $1 ORDER BY id",
                             1, (const char *[]){rid});
    const char *want[][3] = {{"queued", "offered", "gateway"},
                             {"accepted", "accepted", "station"},
                             {"en_route", "en_route", "station"},
                             {"delivered", "delivered", "station"}};
    T_EQ_INT(PQntuples(ev), 4);
    for (int i = 0; i < 4; i++) {
        T_EQ_STR(PQgetvalue(ev, i, 0), want[i][0]);
        T_EQ_STR(PQgetvalue(ev, i, 1), want[i][1]);
        T_ASSERT(strncmp(PQgetvalue(ev, i, 2), want[i][2], strlen(want[i][2])) == 0);
    }
    PQclear(ev);
    T_EQ_INT(ist_sql_long(pg, "SELECT count(*) FROM requests WHERE id = $1 AND state = 'delivered'",
                          req),
             1);
    /* the terminal log has this console's session open */
    T_EQ_INT(ist_sql_long(pg,
                          "SELECT count(*) FROM terminal_sessions WHERE station_id = $1 AND "
                          "disconnected_at IS NULL",
                          st),
             1);
    ist_close(k);
    cl_free(keep);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
    /* ...and closed once it went */
    T_EQ_INT(ist_sql_long(pg,
                          "SELECT count(*) FROM terminal_sessions WHERE station_id = $1 AND "
                          "disconnected_at IS NULL",
                          st),
             0);
    PQfinish(pg);
}

static void isolation_and_forbidden(void)
{
    PGconn *pg = itest_pg();
    Fixture f1, f2;
    fix_area(pg, 31, &f1);
    fix_area(pg, 32, &f2);
    int64_t s1 = fix_station(pg, &f1, &(FixStation){.meal = true, .cap_lunch = 10});
    int64_t s2 = fix_station(pg, &f2, &(FixStation){.meal = true, .cap_lunch = 10});
    char p1[16];
    fix_resident(pg, &f1, 1, false, p1);
    Daemon d;
    itest_daemon_up(&d, NULL);
    IstConsole *k1 = ist_open(&d, pg, s1), *k2 = ist_open(&d, pg, s2);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = ist_submit_meal(&d, pg, fix_key("iso-1"), p1, &keep);
    int64_t job = s->job_id;
    T_ASSERT(ist_wait(k1, job, S(JOB_STATE__OFFERED), 5000));
    /* station 2 never sees it and cannot touch it: it looks like no job at all */
    ist_update_refused(k2, job, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__NOT_FOUND));
    ist_update_refused(k2, job, S(JOB_ACTION__REJECT), S(REASON_CODE__STATION_FULL),
                       S(ERROR_CODE__NOT_FOUND));
    T_ASSERT(!ist_wait(k2, 0, S(JOB_STATE__OFFERED), 500));
    T_ASSERT(!ist_saw(k2, job));
    /* forbidden transitions change nothing */
    ist_update_refused(k1, job, S(JOB_ACTION__DELIVER), 0, S(ERROR_CODE__INVALID_TRANSITION));
    ist_update_refused(k1, job, S(JOB_ACTION__FAIL), S(REASON_CODE__RESIDENT_NOT_HOME),
                       S(ERROR_CODE__INVALID_TRANSITION));
    ist_update_refused(k1, job, S(JOB_ACTION__REJECT), 0, S(ERROR_CODE__INVALID_ARGUMENT));
    ist_update_refused(k1, job, 99, 0, S(ERROR_CODE__INVALID_ARGUMENT));
    ist_update_refused(k1, 0, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__INVALID_ARGUMENT));
    ist_update_ok(k1, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_update_refused(k1, job, S(JOB_ACTION__COMPLETE), 0, S(ERROR_CODE__INVALID_TRANSITION));
    ist_update_refused(k1, job, S(JOB_ACTION__REJECT), S(REASON_CODE__NO_STAFF),
                       S(ERROR_CODE__INVALID_TRANSITION));
    ist_update_ok(k1, job, S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), true);
    ist_update_refused(k1, job, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__INVALID_TRANSITION));
    T_EQ_INT(
        ist_sql_long(pg, "SELECT count(*) FROM jobs WHERE id = $1 AND state = 'delivered'", job),
        1);
    /* a gateway may not send job updates at all */
    IstConsole g = {.c = isess_gateway(&d, pg)};
    ist_update_refused(&g, job, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__FORBIDDEN));
    cl_close(g.c);
    T_ASSERT(itest_metric(d.http_port, "careline_errors_total{code=\"INVALID_TRANSITION\"}") >= 5);
    ist_close(k1);
    ist_close(k2);
    cl_free(keep);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void reject_redispatch_dead_letter(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 33, &f);
    int64_t st[3];
    for (int i = 0; i < 3; i++)
        st[i] = fix_station(pg, &f,
                            &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.004 * (i + 1)});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--max_attempts=3", NULL});
    IstConsole *k[3];
    for (int i = 0; i < 3; i++)
        k[i] = ist_open(&d, pg, st[i]);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = ist_submit_meal(&d, pg, fix_key("rej-1"), phone, &keep);
    T_EQ_INT(s->station_id, st[0]);
    int64_t req = s->request_id;
    for (int i = 0; i < 3; i++) {
        Careline__V1__JobOffer *o = ist_wait(k[i], 0, S(JOB_STATE__OFFERED), 5000);
        if (!o)
            t_fail(__FILE__, __LINE__, "station %d got no offer", i);
        T_EQ_INT(o->request_id, req);
        T_EQ_INT(o->attempt, i + 1); /* nearest first, never back to one that rejected */
        ist_update_ok(k[i], o->job_id, S(JOB_ACTION__REJECT), S(REASON_CODE__STATION_FULL),
                      S(JOB_STATE__JOB_REJECTED), true);
        T_ASSERT(ist_wait(k[i], o->job_id, S(JOB_STATE__JOB_REJECTED), 5000));
        char cap[96];
        snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)st[i], fix_tomorrow());
        for (int w = 0; w < 50 && fix_redis_int(rd, cap) != 0; w++)
            usleep(20000);
        T_EQ_INT(fix_redis_int(rd, cap), 0); /* its capacity went back */
    }
    /* after the third attempt: the dead-letter list, with the history of attempts */
    long dl = 0;
    for (int w = 0; w < 100 && dl != 1; w++) {
        dl = ist_sql_long(
            pg, "SELECT count(*) FROM requests WHERE id = $1 AND state = 'dead_letter'", req);
        usleep(50000);
    }
    T_EQ_INT(dl, 1);
    char rid[24];
    snprintf(rid, sizeof(rid), "%lld", (long long)req);
    PGresult *r = itest_sql(pg,
                            "SELECT attempts, json_array_length(attempts_history), "
                            "last_reason_code FROM v_dead_letters WHERE request_id = $1",
                            1, (const char *[]){rid});
    T_EQ_INT(PQntuples(r), 1);
    T_EQ_INT(atoi(PQgetvalue(r, 0, 0)), 3);
    T_EQ_INT(atoi(PQgetvalue(r, 0, 1)), 3);
    T_EQ_STR(PQgetvalue(r, 0, 2), "station_full");
    PQclear(r);
    for (int i = 0; i < 3; i++)
        ist_close(k[i]);
    cl_free(keep);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static void offer_timeout_moves_on(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 34, &f);
    int64_t near = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.003});
    int64_t far = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.008});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--offer_timeout_s=5", NULL});
    IstConsole *kn = ist_open(&d, pg, near), *kf = ist_open(&d, pg, far);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = ist_submit_meal(&d, pg, fix_key("timeout-1"), phone, &keep);
    T_ASSERT(ist_wait(kn, s->job_id, S(JOB_STATE__OFFERED), 5000));
    /* nobody accepts: after the offer timeout the near console drops it, the far one gets it */
    T_ASSERT(ist_wait(kn, s->job_id, S(JOB_STATE__JOB_EXPIRED), 15000));
    Careline__V1__JobOffer *o = ist_wait(kf, 0, S(JOB_STATE__OFFERED), 10000);
    T_ASSERT(o && o->request_id == s->request_id && o->attempt == 2);
    ist_close(kn);
    ist_close(kf);
    cl_free(keep);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void reconnect_gets_backlog(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 35, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char p1[16], p2[16];
    fix_resident(pg, &f, 1, false, p1);
    fix_resident(pg, &f, 2, false, p2);
    Daemon d;
    itest_daemon_up(&d, NULL);
    IstConsole *k = ist_open(&d, pg, st);
    ClEnvelope *k1, *k2;
    Careline__V1__SubmitResult *s1 = ist_submit_meal(&d, pg, fix_key("back-1"), p1, &k1);
    Careline__V1__SubmitResult *s2 = ist_submit_meal(&d, pg, fix_key("back-2"), p2, &k2);
    T_ASSERT(ist_wait(k, s1->job_id, S(JOB_STATE__OFFERED), 5000));
    T_ASSERT(ist_wait(k, s2->job_id, S(JOB_STATE__OFFERED), 5000));
    ist_update_ok(k, s1->job_id, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_close(k);
    /* the operator comes back: both jobs are still theirs, one accepted, one offered */
    k = ist_open(&d, pg, st);
    T_ASSERT(ist_wait(k, s1->job_id, S(JOB_STATE__JOB_ACCEPTED), 5000));
    T_ASSERT(ist_wait(k, s2->job_id, S(JOB_STATE__OFFERED), 5000));
    ist_close(k);
    /* the second session's row is written in the background: wait for it (bounded) */
    char sid[24];
    snprintf(sid, sizeof(sid), "%lld", (long long)st);
    const char *p[] = {sid};
    T_EQ_INT(itest_wait_sql_ll(pg, "SELECT count(*) FROM terminal_sessions WHERE station_id = $1",
                               1, p, 2, 5000),
             2);
    cl_free(k1);
    cl_free(k2);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"station_cross_daemon_lifecycle", cross_daemon_lifecycle, 60},
        {"station_isolation_and_forbidden", isolation_and_forbidden, 60},
        {"station_reject_redispatch_dead_letter", reject_redispatch_dead_letter, 60},
        {"station_offer_timeout_moves_on", offer_timeout_moves_on, 60},
        {"station_reconnect_gets_backlog", reconnect_gets_backlog, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
