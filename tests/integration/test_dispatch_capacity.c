/*
 * Integration tests of the dispatch core's capacity on real PostgreSQL and Redis: cancel
 * releases a unit once and status shows the history; priority residents and the waitlist;
 * station changes in PostgreSQL are followed live.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "idispatch.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

static ClEnvelope *call_status(ClConn *c, const char *key, const char *phone)
{
    Careline__V1__StatusQuery q = CARELINE__V1__STATUS_QUERY__INIT;
    if (key) {
        q.ref_case = CARELINE__V1__STATUS_QUERY__REF_IDEMPOTENCY_KEY;
        q.idempotency_key = (char *)key;
    } else {
        q.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
        q.caller_phone = (char *)phone;
    }
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATUS_QUERY);
    e.status_query = &q;
    return isess_call(NULL, c, &e, 10000, "status", NULL, NULL);
}

static ClEnvelope *call_cancel(ClConn *c, const char *key)
{
    Careline__V1__CancelRequest q = CARELINE__V1__CANCEL_REQUEST__INIT;
    q.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_IDEMPOTENCY_KEY;
    q.idempotency_key = (char *)key;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(CANCEL);
    e.cancel = &q;
    return isess_call(NULL, c, &e, 10000, "cancel", NULL, NULL);
}

static void cancel_releases(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 5, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q = idisp_meal(fix_key("disp-cancel-1"), phone);
    cl_free(idisp_submit(&d, c, &q));
    char cap[96];
    snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)st, fix_tomorrow());
    T_EQ_INT(fix_redis_int(rd, cap), 1);
    ClEnvelope *r = call_cancel(c, fix_key("disp-cancel-1"));
    T_EQ_INT(r->body_case, BODY(CANCEL_RESULT));
    T_ASSERT(r->cancel_result->cancelled);
    T_EQ_INT(r->cancel_result->state, S(REQUEST_STATE__CANCELLED));
    cl_free(r);
    T_EQ_INT(fix_redis_int(rd, cap), 0);
    T_EQ_INT(idisp_sql_long(pg,
                            "SELECT count(*) FROM jobs j JOIN requests r ON r.id = j.request_id "
                            "WHERE r.idempotency_key = $1 AND j.state = 'cancelled' AND "
                            "r.state = 'cancelled'",
                            fix_key("disp-cancel-1")),
             1);
    /* again: nothing changes, capacity is not released twice */
    r = call_cancel(c, fix_key("disp-cancel-1"));
    T_ASSERT(!r->cancel_result->cancelled);
    T_EQ_INT(r->cancel_result->state, S(REQUEST_STATE__CANCELLED));
    cl_free(r);
    T_EQ_INT(fix_redis_int(rd, cap), 0);
    /* status by phone shows the whole history */
    r = call_status(c, NULL, phone);
    T_EQ_INT(r->body_case, BODY(REQUEST_STATUS));
    T_EQ_INT(r->request_status->state, S(REQUEST_STATE__CANCELLED));
    T_EQ_INT(r->request_status->n_history, 2);
    T_EQ_INT(r->request_status->history[0]->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(r->request_status->history[1]->state, S(REQUEST_STATE__CANCELLED));
    T_ASSERT(strstr(r->request_status->speech_zh, "取消"));
    cl_free(r);
    /* unknown request */
    r = call_status(c, "no-such-key", NULL);
    T_EQ_INT(r->body_case, BODY(ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__NOT_FOUND));
    cl_free(r);
    r = call_cancel(c, "no-such-key");
    T_EQ_INT(r->error->code, S(ERROR_CODE__NOT_FOUND));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static int state_of(PGconn *pg, const char *key, char out[32])
{
    PGresult *r = itest_sql(pg, "SELECT state FROM requests WHERE idempotency_key = $1", 1,
                            (const char *[]){key});
    snprintf(out, 32, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

/* Capacity 2 with half held back for priority residents: the second ordinary caller waits,
 * a priority caller still gets the held unit; when a unit frees, the waiting priority
 * caller is served before the waiting ordinary one. */
static void priority_and_waitlist(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 6, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 2});
    char a[16], b[16], p1[16], p2[16];
    fix_resident(pg, &f, 1, false, a);
    fix_resident(pg, &f, 2, false, b);
    fix_resident(pg, &f, 3, true, p1);
    fix_resident(pg, &f, 4, true, p2);
    itest_daemon_up(&d, (const char *const[]){"--priority_reserve_pct=50",
                                              "--reconcile_interval_ms=200", NULL});
    ClConn *c = isess_gateway(&d, pg);
    IdispReq qa = idisp_meal(fix_key("prio-a"), a), qb = idisp_meal(fix_key("prio-b"), b),
             qp1 = idisp_meal(fix_key("prio-p1"), p1), qp2 = idisp_meal(fix_key("prio-p2"), p2);
    ClEnvelope *r = idisp_submit(&d, c, &qa);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    r = idisp_submit(&d, c, &qb);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__WAITLISTED));
    T_EQ_INT(isess_result(r)->reason_code, S(REASON_CODE__NO_CAPACITY));
    T_ASSERT(strstr(isess_result(r)->speech_zh, "登记"));
    cl_free(r);
    r = idisp_submit(&d, c, &qp1);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(isess_result(r)->n_priority, 1);
    T_EQ_INT(isess_result(r)->priority[0], S(PRIORITY_FLAG__LIVES_ALONE));
    cl_free(r);
    r = idisp_submit(&d, c, &qp2);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__WAITLISTED));
    T_ASSERT(strstr(isess_result(r)->speech_zh, "优先"));
    cl_free(r);
    /* a unit frees: the waitlisted priority caller gets it, the ordinary one keeps waiting */
    cl_free(call_cancel(c, fix_key("prio-a")));
    char st[32] = "";
    for (int i = 0; i < 100 && strcmp(st, "queued") != 0; i++) {
        usleep(100000);
        state_of(pg, fix_key("prio-p2"), st);
    }
    T_EQ_STR(st, "queued");
    state_of(pg, fix_key("prio-b"), st);
    T_EQ_STR(st, "waitlisted");
    ClEnvelope *s = call_status(c, fix_key("prio-p2"), NULL);
    T_EQ_INT(s->request_status->state, S(REQUEST_STATE__QUEUED));
    T_EQ_STR(s->request_status->history[s->request_status->n_history - 1]->actor, "daemon");
    cl_free(s);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void follows_station_changes(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 7, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 50});
    char phone[16], id[24], key[64];
    fix_resident(pg, &f, 1, false, phone);
    snprintf(id, sizeof(id), "%lld", (long long)st);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    PQclear(
        itest_sql(pg, "UPDATE stations SET active = false WHERE id = $1", 1, (const char *[]){id}));
    int state = 0;
    for (int i = 0; i < 50 && state != S(REQUEST_STATE__REJECTED); i++) {
        snprintf(key, sizeof(key), "%s", fix_key("follow-off"));
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%d", i);
        IdispReq q = idisp_meal(key, phone);
        ClEnvelope *r = idisp_submit(&d, c, &q);
        state = isess_result(r)->state;
        cl_free(r);
        if (state != S(REQUEST_STATE__REJECTED))
            usleep(100000);
    }
    T_EQ_INT(state, S(REQUEST_STATE__REJECTED));
    PQclear(
        itest_sql(pg, "UPDATE stations SET active = true WHERE id = $1", 1, (const char *[]){id}));
    for (int i = 0; i < 50 && state != S(REQUEST_STATE__QUEUED); i++) {
        snprintf(key, sizeof(key), "%s", fix_key("follow-on"));
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%d", i);
        IdispReq q = idisp_meal(key, phone);
        ClEnvelope *r = idisp_submit(&d, c, &q);
        state = isess_result(r)->state;
        cl_free(r);
        if (state != S(REQUEST_STATE__QUEUED))
            usleep(100000);
    }
    T_EQ_INT(state, S(REQUEST_STATE__QUEUED));
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"dispatch_cancel_releases", cancel_releases, 60},
        {"dispatch_priority_and_waitlist", priority_and_waitlist, 60},
        {"dispatch_follows_station_changes", follows_station_changes, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
