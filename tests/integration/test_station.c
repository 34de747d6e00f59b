/*
 * Integration tests of the station operators' side on real PostgreSQL and Redis, two
 * daemons where it matters: a job submitted on daemon A reaches a console on daemon B by
 * wake-up (not by polling) and goes through its whole life; a station never sees or changes
 * another's job; forbidden and repeated updates; reject and timeout move the job on, and
 * the last attempt dead-letters it; backlog on reconnect; closing re-dispatches; capacity
 * left; welfare alerts; heartbeats; a console that stops reading is cut off, jobs kept.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "isession.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

/* ---- a console: a station principal's connection that collects pushes ---------------- */

typedef struct {
    ClConn *c;
    int64_t station;
    Careline__V1__JobOffer *offers[64]; /* latest push per job, by arrival */
    int n;
    int total; /* JobOffer pushes received (also past the 64 kept) */
    int pings;
} Console;

static void console_take(Console *k, ClEnvelope *e)
{
    if (e->body_case == BODY(PING)) {
        k->pings++;
        Careline__V1__Pong pong = CARELINE__V1__PONG__INIT;
        pong.nonce = e->ping->nonce;
        ClEnvelope r = CARELINE__V1__ENVELOPE__INIT;
        r.body_case = BODY(PONG);
        r.pong = &pong;
        cl_send(k->c, &r);
    } else if (e->body_case == BODY(JOB_OFFER) && k->total++ < 64) {
        k->offers[k->n++] = e->job_offer;
        e->job_offer = NULL; /* kept; the envelope shell is freed */
        e->body_case = 0;
    }
    cl_free(e);
}

static void on_push(ClEnvelope *e, void *arg)
{
    console_take(arg, e);
}

static Console *console_open(const Daemon *d, PGconn *pg, int64_t station)
{
    Console *k = calloc(1, sizeof(*k));
    k->c = isess_login_as(d, pg, "station", station);
    k->station = station;
    return k;
}

static void console_close(Console *k)
{
    for (int i = 0; i < k->n; i++)
        careline__v1__job_offer__free_unpacked(k->offers[i], NULL);
    cl_close(k->c);
    free(k);
}

/* Waits until a push for job (0 = any new job) in `state` arrives; returns it. */
static Careline__V1__JobOffer *console_wait(Console *k, int64_t job, int state, int timeout_ms)
{
    int64_t deadline = util_now_ms() + timeout_ms;
    int from = 0;
    for (;;) {
        for (int i = from; i < k->n; i++)
            if ((job == 0 || k->offers[i]->job_id == job) && (int)k->offers[i]->state == state)
                return k->offers[i];
        from = k->n;
        int left = (int)(deadline - util_now_ms());
        if (left <= 0)
            return NULL;
        char err[128];
        ClEnvelope *e = cl_recv(k->c, left, err, sizeof(err));
        if (!e)
            return NULL;
        console_take(k, e);
    }
}

static bool console_saw(const Console *k, int64_t job)
{
    for (int i = 0; i < k->n; i++)
        if (k->offers[i]->job_id == job)
            return true;
    return false;
}

static ClEnvelope *update(Console *k, int64_t job, int action, int reason)
{
    Careline__V1__JobUpdate u = CARELINE__V1__JOB_UPDATE__INIT;
    u.job_id = job;
    u.action = action;
    u.reason_code = reason;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(JOB_UPDATE);
    e.job_update = &u;
    return isess_call(NULL, k->c, &e, 10000, "job update", on_push, k);
}

/* The update succeeds (changed as given) and leaves the job in state. */
static void update_ok(Console *k, int64_t job, int action, int reason, int state, bool changed)
{
    ClEnvelope *r = update(k, job, action, reason);
    if (r->body_case != BODY(JOB_UPDATE_RESULT))
        t_fail(__FILE__, __LINE__, "update %d on job %lld: %s", action, (long long)job,
               r->body_case == BODY(ERROR) ? r->error->message : "?");
    T_EQ_INT(r->job_update_result->state, state);
    T_EQ_INT(r->job_update_result->changed, changed);
    cl_free(r);
}

static void update_refused(Console *k, int64_t job, int action, int reason, int code)
{
    ClEnvelope *r = update(k, job, action, reason);
    if (r->body_case != BODY(ERROR) || (int)r->error->code != code)
        t_fail(__FILE__, __LINE__, "update %d on job %lld: expected error %d", action,
               (long long)job, code);
    T_ASSERT(!r->error->fatal && strlen(r->error->message) > 10);
    cl_free(r);
}

/* ---- the gateway side ----------------------------------------------------------------- */

/* Submits a lunch for tomorrow through a fresh gateway session on d; the reply must be a
 * SubmitResult, which stays in *keep (cl_free it). */
static Careline__V1__SubmitResult *submit_meal(const Daemon *d, PGconn *pg, const char *key,
                                               const char *phone, ClEnvelope **keep)
{
    ClConn *g = isess_gateway(d, pg);
    Careline__V1__SubmitRequest m;
    isess_meal(&m, key, phone);
    ClEnvelope *r = isess_submit(d, g, &m, 10000);
    cl_close(g);
    *keep = r;
    return isess_result(r);
}

static long sql_long(PGconn *pg, const char *sql, long long arg)
{
    char a[24];
    snprintf(a, sizeof(a), "%lld", arg);
    const char *p[] = {a};
    return (long)itest_sql_ll(pg, sql, 1, p);
}

/* ---- cases ------------------------------------------------------------------------------ */

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
    Console *k = console_open(&b, pg, st);
    int64_t t0 = util_now_ms();
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = submit_meal(&a, pg, fix_key("life-1"), phone, &keep);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    Careline__V1__JobOffer *o = console_wait(k, s->job_id, S(JOB_STATE__OFFERED), 5000);
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
    update_ok(k, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    update_ok(k, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), false); /* repeat */
    Careline__V1__JobOffer *acc = console_wait(k, job, S(JOB_STATE__JOB_ACCEPTED), 5000);
    T_ASSERT(acc && strcmp(acc->resident_phone, phone) == 0); /* now the operator may call */
    update_ok(k, job, S(JOB_ACTION__GO_EN_ROUTE), 0, S(JOB_STATE__JOB_EN_ROUTE), true);
    update_ok(k, job, S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), true);
    update_ok(k, job, S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), false);
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
    T_EQ_INT(
        sql_long(pg, "SELECT count(*) FROM requests WHERE id = $1 AND state = 'delivered'", req),
        1);
    /* the terminal log has this console's session open */
    T_EQ_INT(sql_long(pg,
                      "SELECT count(*) FROM terminal_sessions WHERE station_id = $1 AND "
                      "disconnected_at IS NULL",
                      st),
             1);
    console_close(k);
    cl_free(keep);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
    /* ...and closed once it went */
    T_EQ_INT(sql_long(pg,
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
    Console *k1 = console_open(&d, pg, s1), *k2 = console_open(&d, pg, s2);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = submit_meal(&d, pg, fix_key("iso-1"), p1, &keep);
    int64_t job = s->job_id;
    T_ASSERT(console_wait(k1, job, S(JOB_STATE__OFFERED), 5000));
    /* station 2 never sees it and cannot touch it: it looks like no job at all */
    update_refused(k2, job, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__NOT_FOUND));
    update_refused(k2, job, S(JOB_ACTION__REJECT), S(REASON_CODE__STATION_FULL),
                   S(ERROR_CODE__NOT_FOUND));
    T_ASSERT(!console_wait(k2, 0, S(JOB_STATE__OFFERED), 500));
    T_ASSERT(!console_saw(k2, job));
    /* forbidden transitions change nothing */
    update_refused(k1, job, S(JOB_ACTION__DELIVER), 0, S(ERROR_CODE__INVALID_TRANSITION));
    update_refused(k1, job, S(JOB_ACTION__FAIL), S(REASON_CODE__RESIDENT_NOT_HOME),
                   S(ERROR_CODE__INVALID_TRANSITION));
    update_refused(k1, job, S(JOB_ACTION__REJECT), 0, S(ERROR_CODE__INVALID_ARGUMENT));
    update_refused(k1, job, 99, 0, S(ERROR_CODE__INVALID_ARGUMENT));
    update_refused(k1, 0, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__INVALID_ARGUMENT));
    update_ok(k1, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    update_refused(k1, job, S(JOB_ACTION__COMPLETE), 0, S(ERROR_CODE__INVALID_TRANSITION));
    update_refused(k1, job, S(JOB_ACTION__REJECT), S(REASON_CODE__NO_STAFF),
                   S(ERROR_CODE__INVALID_TRANSITION));
    update_ok(k1, job, S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), true);
    update_refused(k1, job, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__INVALID_TRANSITION));
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM jobs WHERE id = $1 AND state = 'delivered'", job),
             1);
    /* a gateway may not send job updates at all */
    Console g = {.c = isess_gateway(&d, pg)};
    update_refused(&g, job, S(JOB_ACTION__ACCEPT), 0, S(ERROR_CODE__FORBIDDEN));
    cl_close(g.c);
    T_ASSERT(itest_metric(d.http_port, "careline_errors_total{code=\"INVALID_TRANSITION\"}") >= 5);
    console_close(k1);
    console_close(k2);
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
    Console *k[3];
    for (int i = 0; i < 3; i++)
        k[i] = console_open(&d, pg, st[i]);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = submit_meal(&d, pg, fix_key("rej-1"), phone, &keep);
    T_EQ_INT(s->station_id, st[0]);
    int64_t req = s->request_id;
    for (int i = 0; i < 3; i++) {
        Careline__V1__JobOffer *o = console_wait(k[i], 0, S(JOB_STATE__OFFERED), 5000);
        if (!o)
            t_fail(__FILE__, __LINE__, "station %d got no offer", i);
        T_EQ_INT(o->request_id, req);
        T_EQ_INT(o->attempt, i + 1); /* nearest first, never back to one that rejected */
        update_ok(k[i], o->job_id, S(JOB_ACTION__REJECT), S(REASON_CODE__STATION_FULL),
                  S(JOB_STATE__JOB_REJECTED), true);
        T_ASSERT(console_wait(k[i], o->job_id, S(JOB_STATE__JOB_REJECTED), 5000));
        char cap[96];
        snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)st[i], fix_tomorrow());
        for (int w = 0; w < 50 && fix_redis_int(rd, cap) != 0; w++)
            usleep(20000);
        T_EQ_INT(fix_redis_int(rd, cap), 0); /* its capacity went back */
    }
    /* after the third attempt: the dead-letter list, with the history of attempts */
    long dl = 0;
    for (int w = 0; w < 100 && dl != 1; w++) {
        dl = sql_long(pg, "SELECT count(*) FROM requests WHERE id = $1 AND state = 'dead_letter'",
                      req);
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
        console_close(k[i]);
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
    Console *kn = console_open(&d, pg, near), *kf = console_open(&d, pg, far);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = submit_meal(&d, pg, fix_key("timeout-1"), phone, &keep);
    T_ASSERT(console_wait(kn, s->job_id, S(JOB_STATE__OFFERED), 5000));
    /* nobody accepts: after the offer timeout the near console drops it, the far one gets it */
    T_ASSERT(console_wait(kn, s->job_id, S(JOB_STATE__JOB_EXPIRED), 15000));
    Careline__V1__JobOffer *o = console_wait(kf, 0, S(JOB_STATE__OFFERED), 10000);
    T_ASSERT(o && o->request_id == s->request_id && o->attempt == 2);
    console_close(kn);
    console_close(kf);
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
    Console *k = console_open(&d, pg, st);
    ClEnvelope *k1, *k2;
    Careline__V1__SubmitResult *s1 = submit_meal(&d, pg, fix_key("back-1"), p1, &k1);
    Careline__V1__SubmitResult *s2 = submit_meal(&d, pg, fix_key("back-2"), p2, &k2);
    T_ASSERT(console_wait(k, s1->job_id, S(JOB_STATE__OFFERED), 5000));
    T_ASSERT(console_wait(k, s2->job_id, S(JOB_STATE__OFFERED), 5000));
    update_ok(k, s1->job_id, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    console_close(k);
    /* the operator comes back: both jobs are still theirs, one accepted, one offered */
    k = console_open(&d, pg, st);
    T_ASSERT(console_wait(k, s1->job_id, S(JOB_STATE__JOB_ACCEPTED), 5000));
    T_ASSERT(console_wait(k, s2->job_id, S(JOB_STATE__OFFERED), 5000));
    console_close(k);
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

static ClEnvelope *station_status(Console *k, bool open, int lunch_left)
{
    Careline__V1__StationStatus m = CARELINE__V1__STATION_STATUS__INIT;
    Careline__V1__SlotCapacity cap = CARELINE__V1__SLOT_CAPACITY__INIT;
    Careline__V1__SlotCapacity *caps[] = {&cap};
    m.open = open;
    m.caregivers_on_duty = 3;
    if (lunch_left >= 0) {
        cap.slot = S(MEAL_SLOT__LUNCH);
        cap.service_date = (char *)fix_tomorrow();
        cap.capacity_left = lunch_left;
        m.n_capacity = 1;
        m.capacity = caps;
    }
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATION_STATUS);
    e.station_status = &m;
    return isess_call(NULL, k->c, &e, 10000, "station status", on_push, k);
}

static void close_and_capacity(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 36, &f);
    int64_t near = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 50, .dlat = 0.003});
    int64_t far = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 50, .dlat = 0.008});
    char p[4][16];
    for (int i = 0; i < 4; i++)
        fix_resident(pg, &f, i, false, p[i]);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--priority_reserve_pct=0", NULL});
    Console *kn = console_open(&d, pg, near), *kf = console_open(&d, pg, far);
    ClEnvelope *keep[4];
    Careline__V1__SubmitResult *s = submit_meal(&d, pg, fix_key("close-1"), p[0], &keep[0]);
    T_ASSERT(console_wait(kn, s->job_id, S(JOB_STATE__OFFERED), 5000));
    /* the near station closes: its unaccepted job goes to the far one */
    ClEnvelope *r = station_status(kn, false, -1);
    T_EQ_INT(r->body_case, BODY(STATION_STATUS_ACK));
    T_EQ_INT(r->station_status_ack->jobs_redispatched, 1);
    T_ASSERT(!r->station_status_ack->open);
    cl_free(r);
    Careline__V1__JobOffer *o = console_wait(kf, 0, S(JOB_STATE__OFFERED), 5000);
    T_ASSERT(o && o->request_id == s->request_id);
    T_EQ_INT(sql_long(pg,
                      "SELECT count(*) FROM stations WHERE id = $1 AND NOT is_open AND "
                      "caregivers_on_duty = 3",
                      near),
             1);
    /* the far station says it has 1 lunch left for tomorrow: one more, then the waitlist */
    r = station_status(kf, true, 1);
    T_EQ_INT(r->body_case, BODY(STATION_STATUS_ACK));
    cl_free(r);
    cl_free(station_status(kn, true, 0)); /* and the near one has none left */
    Careline__V1__SubmitResult *a = submit_meal(&d, pg, fix_key("close-2"), p[1], &keep[1]);
    Careline__V1__SubmitResult *b = submit_meal(&d, pg, fix_key("close-3"), p[2], &keep[2]);
    T_EQ_INT(a->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(a->station_id, far);
    T_EQ_INT(b->state, S(REQUEST_STATE__WAITLISTED));
    /* bad status input */
    Careline__V1__StationStatus m = CARELINE__V1__STATION_STATUS__INIT;
    Careline__V1__SlotCapacity cap = CARELINE__V1__SLOT_CAPACITY__INIT;
    Careline__V1__SlotCapacity *caps[] = {&cap};
    cap.slot = 9;
    m.n_capacity = 1;
    m.capacity = caps;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATION_STATUS);
    e.station_status = &m;
    char err[128];
    r = cl_call(kf->c, &e, 5000, err, sizeof(err), on_push, kf);
    T_ASSERT(r && r->body_case == BODY(ERROR) && r->error->code == S(ERROR_CODE__INVALID_ARGUMENT));
    cl_free(r);
    console_close(kn);
    console_close(kf);
    for (int i = 0; i < 3; i++)
        cl_free(keep[i]);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void welfare_alert(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 37, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, true, phone);
    Daemon d;
    itest_daemon_up(&d, NULL);
    Console *k = console_open(&d, pg, st);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = submit_meal(&d, pg, fix_key("welfare-1"), phone, &keep);
    T_ASSERT(console_wait(k, s->job_id, S(JOB_STATE__OFFERED), 5000));
    update_ok(k, s->job_id, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    update_ok(k, s->job_id, S(JOB_ACTION__FAIL), S(REASON_CODE__RESIDENT_UNWELL),
              S(JOB_STATE__JOB_FAILED), true);
    T_EQ_INT(sql_long(pg,
                      "SELECT count(*) FROM welfare_alerts WHERE request_id = $1 AND "
                      "resolved_at IS NULL",
                      s->request_id),
             1);
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM requests WHERE id = $1 AND state = 'failed'",
                      s->request_id),
             1);
    console_close(k);
    cl_free(keep);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void heartbeats(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 38, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    Daemon d;
    itest_daemon_up(
        &d, (const char *const[]){"--heartbeat_interval_ms=300", "--idle_timeout_ms=1500", NULL});
    Console *alive = console_open(&d, pg, st), *silent = console_open(&d, pg, st);
    /* the live console answers the daemon's Pings and stays; the silent one is dropped */
    int64_t until = util_now_ms() + 3000;
    while (util_now_ms() < until) {
        char err[64];
        ClEnvelope *e = cl_recv(alive->c, 100, err, sizeof(err));
        if (e)
            console_take(alive, e);
    }
    T_ASSERT(alive->pings >= 3);
    char err[64];
    ClEnvelope *e;
    bool timed_out = false;
    while ((e = cl_recv(silent->c, 1000, err, sizeof(err)))) {
        if (e->body_case == BODY(ERROR) && e->error->code == S(ERROR_CODE__TIMEOUT))
            timed_out = true;
        cl_free(e);
    }
    T_ASSERT(timed_out);
    /* the live one still answers */
    Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
    ClEnvelope pe = CARELINE__V1__ENVELOPE__INIT;
    pe.body_case = BODY(PING);
    pe.ping = &ping;
    e = cl_call(alive->c, &pe, 2000, err, sizeof(err), on_push, alive);
    T_ASSERT(e && e->body_case == BODY(PONG));
    cl_free(e);
    console_close(alive);
    console_close(silent);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A console that stops reading while jobs keep coming is cut off at the output limit; the
 * jobs stay offered in PostgreSQL and come back on reconnect. */
static void non_reading_console(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 39, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5000});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--obuf_soft_bytes=4096", "--obuf_hard_bytes=131072",
                                              "--obuf_soft_seconds=1", "--so_sndbuf_bytes=4096",
                                              "--priority_reserve_pct=0", NULL});
    Console *k = console_open(&d, pg, st);
    int small = 2048;
    setsockopt(cl_fd(k->c), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    char err[128];
    ClConn *g = isess_gateway(&d, pg);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d", fix_key("nr"), i);
        Careline__V1__SubmitRequest m;
        isess_meal(&m, key, phone);
        static char note[] = "请放在门口的小桌子上，谢谢。老人听力不好，请多敲几次门。";
        m.note = note;
        ClEnvelope *r = isess_submit(&d, g, &m, 10000);
        T_ASSERT(r && r->body_case == BODY(SUBMIT_RESULT));
        cl_free(r);
    }
    cl_close(g);
    bool cut = false;
    for (int i = 0; i < 100 && !cut; i++) {
        cut = itest_metric(d.http_port, "careline_obuf_closes_total") >= 1;
        usleep(100000);
    }
    T_ASSERT(cut);
    T_EQ_INT(
        sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1 AND state = 'offered'", st),
        N);
    console_close(k);
    /* back again, reading: the whole backlog */
    k = console_open(&d, pg, st);
    int64_t deadline = util_now_ms() + 20000;
    while (k->total < N && util_now_ms() < deadline) {
        ClEnvelope *e = cl_recv(k->c, 1000, err, sizeof(err));
        if (e)
            console_take(k, e);
    }
    T_EQ_INT(k->total, N);
    console_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A console that stops reading while offers for its station keep being pushed is cut off at
 * the hard output limit from inside the push itself (not later by the soft-limit timer), with
 * no re-read in flight, so the close drops the session's last reference in the middle of the
 * push. The daemon must survive it (under ASan a use of the freed session aborts it) and the
 * jobs stay offered. */
static void offers_to_stalled_console(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 42, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5000});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){
                            "--max_frame_bytes=8192", "--obuf_soft_bytes=4096",
                            "--obuf_hard_bytes=16384", "--obuf_soft_seconds=3600",
                            "--so_sndbuf_bytes=4096", "--console_refresh_ms=600000",
                            "--heartbeat_interval_ms=3600000", "--priority_reserve_pct=0", NULL});
    Console *k = console_open(&d, pg, st);
    int small = 2048;
    setsockopt(cl_fd(k->c), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    usleep(300000); /* the backlog re-read and the terminal row are done: the map's ref only */
    char tok[64], err[128];
    ClConn *g = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    enum { N = 200 };
    int queued = 0;
    for (int i = 0; i < N; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d", fix_key("stall"), i);
        Careline__V1__SubmitRequest m = CARELINE__V1__SUBMIT_REQUEST__INIT;
        m.idempotency_key = key;
        m.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
        m.caller_phone = phone;
        m.kind = S(SERVICE_KIND__MEAL_DELIVERY);
        m.meal_slot = S(MEAL_SLOT__LUNCH);
        m.service_date = (char *)fix_tomorrow();
        static char note[] = "请放在门口的小桌子上，谢谢。老人听力不好，请多敲几次门。";
        m.note = note;
        ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
        e.body_case = BODY(SUBMIT);
        e.submit = &m;
        ClEnvelope *r = cl_call(g, &e, 10000, err, sizeof(err), NULL, NULL);
        if (!r) {
            itest_daemon_dump_log(&d);
            t_fail(__FILE__, __LINE__, "submit %d: %s (did the daemon die?)", i, err);
        }
        T_ASSERT(r->body_case == BODY(SUBMIT_RESULT));
        queued += r->submit_result->state == S(REQUEST_STATE__QUEUED);
        cl_free(r);
    }
    cl_close(g);
    T_EQ_INT(queued, N);
    T_ASSERT(itest_metric(d.http_port, "careline_obuf_closes_total") >= 1);
    T_ASSERT(itest_daemon_alive(&d));
    T_EQ_INT(
        sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1 AND state = 'offered'", st),
        N);
    console_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A daemon restarted with the same server_id after kill -9 closes the terminal sessions its
 * previous run left open, so the terminal indicator does not count them forever. */
static void stale_sessions_closed(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 40, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char sid[64], opt[96];
    snprintf(sid, sizeof(sid), "%s", fix_key("lease"));
    snprintf(opt, sizeof(opt), "--server_id=%s", sid);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){opt, NULL});
    Console *k = console_open(&d, pg, st);
    const char *p[] = {sid};
    PGresult *r = NULL;
    for (int i = 0; i < 100; i++) { /* the session row is written asynchronously */
        r = itest_sql(pg,
                      "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1 AND "
                      "disconnected_at IS NULL",
                      1, p);
        bool open = atoi(PQgetvalue(r, 0, 0)) == 1;
        PQclear(r);
        if (open)
            break;
        usleep(20000);
    }
    kill(d.pid, SIGKILL);
    itest_daemon_stop(&d, 5000);
    console_close(k);
    r = itest_sql(pg,
                  "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1 AND "
                  "disconnected_at IS NULL",
                  1, p);
    T_EQ_INT(atoi(PQgetvalue(r, 0, 0)), 1); /* the crash left it open */
    PQclear(r);
    itest_daemon_up(&d, (const char *const[]){opt, NULL});
    Console *k2 = console_open(&d, pg, st); /* this run's own session stays open */
    long open = -1;
    for (int i = 0; i < 100 && open != 1; i++) {
        usleep(20000);
        r = itest_sql(pg,
                      "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1 AND "
                      "disconnected_at IS NULL",
                      1, p);
        open = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    T_EQ_INT(open, 1);
    r = itest_sql(pg, "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1", 1, p);
    T_EQ_INT(atoi(PQgetvalue(r, 0, 0)), 2);
    PQclear(r);
    console_close(k2);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* The periodic re-read of many consoles' jobs is a few statements a round, not one per
 * console: 60 consoles asking every 200 ms are re-read on each 1 s tick, 240 statements in
 * 4 s one by one (10,000 consoles were 1,000 queries a second ahead of every submission). */
static void rereads_batched(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 41, &f);
    enum { N = 60 };
    int64_t st[N];
    for (int i = 0; i < N; i++)
        st[i] =
            fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5, .dlat = 0.0005 * i});
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--console_refresh_ms=200", NULL});
    Console *k[N];
    for (int i = 0; i < N; i++)
        k[i] = console_open(&d, pg, st[i]);
    usleep(1500000);
    long long before = itest_metric(d.http_port, "careline_pg_queries_total");
    usleep(4000000);
    long long n = itest_metric(d.http_port, "careline_pg_queries_total") - before;
    printf("  %lld statements in 4 s with %d consoles re-read every second\n", n, N);
    T_ASSERT(before > 0 && n < 60); /* one by one: >= 240 */
    /* and the consoles are still served: a job reaches its station's console */
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *r = submit_meal(&d, pg, fix_key("st-batched-1"), phone, &keep);
    T_EQ_INT(r->state, S(REQUEST_STATE__QUEUED));
    int at = 0;
    while (at < N && st[at] != r->station_id)
        at++;
    T_ASSERT(at < N && console_wait(k[at], r->job_id, S(JOB_STATE__OFFERED), 5000) != NULL);
    cl_free(keep);
    for (int i = 0; i < N; i++)
        console_close(k[i]);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- wake-ups carry ids only (issue 12) --------------------------------------------------- */

/* Publishes msg (len bytes) on the county's wake channel as an authenticated client. */
static void wake_publish(redisContext *rd, const char *msg, size_t len)
{
    redisReply *r = redisCommand(rd, "PUBLISH {c330281}:wake %b", msg, len);
    T_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
    freeReplyObject(r);
}

/* Someone who can publish on the wake channel (an authenticated Redis client) cannot put
 * anything on a console: a forged JobOffer in the old "STATION_ID <packed offer>" form, a
 * made-up job id, garbage, ids out of range and unknown stations show nothing; each bad
 * message is counted and the lot logged once; a genuine offer still arrives, by wake-up,
 * with what PostgreSQL holds. */
static void forged_wake_offer_not_shown(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 87, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon a, b;
    itest_daemon_up(&a, NULL);
    /* B re-reads consoles only every minute: whatever its console shows came by wake-up */
    itest_daemon_up(&b, (const char *const[]){"--console_refresh_ms=60000", NULL});
    Console *k = console_open(&b, pg, st);
    usleep(300000); /* the console's first read (its backlog: nothing) */
    T_EQ_INT(k->total, 0);

    /* a complete, plausible offer, as the old daemons published it */
    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = 987654321;
    o.request_id = 987654321;
    o.state = S(JOB_STATE__OFFERED);
    o.attempt = 1;
    o.kind = S(SERVICE_KIND__MEAL_DELIVERY);
    o.meal_slot = S(MEAL_SLOT__LUNCH);
    o.service_date = (char *)fix_tomorrow();
    o.resident_name_masked = (char *)"王**";
    o.address = (char *)"FORGED 伪造地址 1号";
    o.village_name = (char *)"";
    o.note = (char *)"FORGED call 13000000000";
    o.resident_phone = (char *)"13000000000";
    o.offer_expires_at_ms = util_wall_ms() + 600000;
    char msg[2048];
    int h = snprintf(msg, sizeof(msg), "%lld ", (long long)st);
    size_t n = careline__v1__job_offer__pack(&o, (uint8_t *)msg + h);
    T_ASSERT(n > 0 && h + n < sizeof(msg));
    long long rejected0 = itest_metric(b.http_port, "careline_wake_rejected_total");
    T_EQ_INT(rejected0, 0);
    wake_publish(rd, msg, (size_t)h + n); /* rejected: not ids */
    char one[64];
    const char *bad[] = {"abc",      "-5",  "0",        "007",
                         "1 2 3",    "1 ",  " 1",       "99999999999999999999",
                         "\xff\xfe", "1 0", "999999999"}; /* the last: no such station */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        wake_publish(rd, bad[i], strlen(bad[i]));
    wake_publish(rd, "1\0002", 3); /* an embedded NUL */
    char big[4096];
    memset(big, '7', sizeof(big));
    wake_publish(rd, big, sizeof(big));
    int nbad = 1 + (int)(sizeof(bad) / sizeof(bad[0])) + 2;
    /* well-formed ids for a job that does not exist (or is not this station's): a re-read
     * from PostgreSQL, which shows nothing */
    snprintf(one, sizeof(one), "%lld 987654321", (long long)st);
    wake_publish(rd, one, strlen(one));
    snprintf(one, sizeof(one), "%lld", (long long)st);
    wake_publish(rd, one, strlen(one));
    T_ASSERT(!console_wait(k, 0, S(JOB_STATE__OFFERED), 1500));
    T_EQ_INT(k->total, 0);
    T_EQ_INT(itest_metric(b.http_port, "careline_wake_rejected_total"), nbad);
    T_EQ_INT(itest_metric(a.http_port, "careline_wake_rejected_total"), nbad);
    /* logged once for the burst, without the message's bytes */
    T_EQ_INT(itest_log_count(&b, "dropped a wake-up"), 1);
    T_EQ_INT(itest_log_count(&b, "FORGED"), 0);

    /* a genuine offer still arrives on B's console, from the wake-up, with the record's data */
    int64_t t0 = util_now_ms();
    ClEnvelope *keep;
    Careline__V1__SubmitResult *r = submit_meal(&a, pg, fix_key("forged-1"), phone, &keep);
    T_EQ_INT(r->state, S(REQUEST_STATE__QUEUED));
    Careline__V1__JobOffer *got = console_wait(k, r->job_id, S(JOB_STATE__OFFERED), 5000);
    T_ASSERT(got != NULL);
    printf("  submit on A -> offer on B's console: %lld ms\n", (long long)(util_now_ms() - t0));
    T_EQ_INT(got->request_id, r->request_id);
    T_ASSERT(strstr(got->address, "FORGED") == NULL && strstr(got->note, "FORGED") == NULL);
    T_EQ_STR(got->resident_name_masked, "测**");
    T_EQ_INT(k->total, 1);
    cl_free(keep);
    console_close(k);
    redisFree(rd);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
    PQfinish(pg);
}

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return (a > b) - (a < b);
}

/* Not a pass/fail figure: how long a job taken on daemon A takes to reach a console on B
 * (wake-up -> re-read from PostgreSQL), submit included, next to the same on A's own
 * console (pushed from memory). Only bounded loosely. */
static void wake_latency(void)
{
    enum { N = 40 };
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 88, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 2 * N + 5});
    Daemon a, b;
    itest_daemon_up(&a, NULL);
    itest_daemon_up(&b, (const char *const[]){"--console_refresh_ms=60000", NULL});
    Console *kb = console_open(&b, pg, st), *ka = console_open(&a, pg, st);
    usleep(300000);
    long long remote[N], local[N];
    for (int i = 0; i < N; i++) {
        char phone[16], key[32];
        fix_resident(pg, &f, i + 1, false, phone);
        snprintf(key, sizeof(key), "wake-lat-%d", i);
        int64_t t0 = util_now_ms();
        ClEnvelope *keep;
        Careline__V1__SubmitResult *r = submit_meal(&a, pg, fix_key(key), phone, &keep);
        T_EQ_INT(r->state, S(REQUEST_STATE__QUEUED));
        T_ASSERT(console_wait(ka, r->job_id, S(JOB_STATE__OFFERED), 5000));
        local[i] = util_now_ms() - t0;
        T_ASSERT(console_wait(kb, r->job_id, S(JOB_STATE__OFFERED), 5000));
        remote[i] = util_now_ms() - t0;
        cl_free(keep);
    }
    qsort(remote, N, sizeof(remote[0]), cmp_ll);
    qsort(local, N, sizeof(local[0]), cmp_ll);
    printf("  submit -> offer, %d jobs: console on A (memory) p50 %lld p99 %lld ms; on B "
           "(wake-up) p50 %lld p99 %lld ms\n",
           N, local[N / 2], local[N - 1], remote[N / 2], remote[N - 1]);
    T_ASSERT(remote[N - 1] < 3000);
    console_close(ka);
    console_close(kb);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
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
        {"station_close_and_capacity", close_and_capacity, 60},
        {"station_welfare_alert", welfare_alert, 60},
        {"station_heartbeats", heartbeats, 60},
        {"station_non_reading_console", non_reading_console, 120},
        {"station_offers_to_stalled_console", offers_to_stalled_console, 120},
        {"station_stale_sessions_closed", stale_sessions_closed, 60},
        {"station_rereads_batched", rereads_batched, 60},
        {"station_forged_wake_offer_not_shown", forged_wake_offer_not_shown, 60},
        {"station_wake_latency", wake_latency, 120},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
