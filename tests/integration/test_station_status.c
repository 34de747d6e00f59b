/*
 * Integration tests of what a station tells the daemon and the daemon keeps of it: closing
 * re-dispatches the unaccepted jobs and the capacity left is respected; a resident reported
 * unwell raises a welfare alert; heartbeats keep a live console and drop a silent one; the
 * terminal sessions a killed daemon left open are closed by its next run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "irds.h"
#include "isession.h"
#include "istation.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static ClEnvelope *station_status(IstConsole *k, bool open, int lunch_left)
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
    return isess_call(NULL, k->c, &e, 10000, "station status", ist_on_push, k);
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
    IstConsole *kn = ist_open(&d, pg, near), *kf = ist_open(&d, pg, far);
    ClEnvelope *keep[4];
    Careline__V1__SubmitResult *s = ist_submit_meal(&d, pg, fix_key("close-1"), p[0], &keep[0]);
    T_ASSERT(ist_wait(kn, s->job_id, S(JOB_STATE__OFFERED), 5000));
    /* the near station closes: its unaccepted job goes to the far one */
    ClEnvelope *r = station_status(kn, false, -1);
    T_EQ_INT(r->body_case, BODY(STATION_STATUS_ACK));
    T_EQ_INT(r->station_status_ack->jobs_redispatched, 1);
    T_ASSERT(!r->station_status_ack->open);
    cl_free(r);
    Careline__V1__JobOffer *o = ist_wait(kf, 0, S(JOB_STATE__OFFERED), 5000);
    T_ASSERT(o && o->request_id == s->request_id);
    /* and the near station's console is told its offer is gone (a change on its stream) */
    T_ASSERT(ist_wait(kn, s->job_id, S(JOB_STATE__JOB_REJECTED), 5000));
    T_EQ_INT(ist_sql_long(pg,
                          "SELECT count(*) FROM stations WHERE id = $1 AND NOT is_open AND "
                          "caregivers_on_duty = 3",
                          near),
             1);
    /* the far station says it has 1 lunch left for tomorrow: one more, then the waitlist */
    r = station_status(kf, true, 1);
    T_EQ_INT(r->body_case, BODY(STATION_STATUS_ACK));
    cl_free(r);
    cl_free(station_status(kn, true, 0)); /* and the near one has none left */
    Careline__V1__SubmitResult *a = ist_submit_meal(&d, pg, fix_key("close-2"), p[1], &keep[1]);
    Careline__V1__SubmitResult *b = ist_submit_meal(&d, pg, fix_key("close-3"), p[2], &keep[2]);
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
    r = cl_call(kf->c, &e, 5000, err, sizeof(err), ist_on_push, kf);
    T_ASSERT(r && r->body_case == BODY(ERROR) && r->error->code == S(ERROR_CODE__INVALID_ARGUMENT));
    cl_free(r);
    ist_close(kn);
    ist_close(kf);
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
    IstConsole *k = ist_open(&d, pg, st);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = ist_submit_meal(&d, pg, fix_key("welfare-1"), phone, &keep);
    T_ASSERT(ist_wait(k, s->job_id, S(JOB_STATE__OFFERED), 5000));
    ist_update_ok(k, s->job_id, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_update_ok(k, s->job_id, S(JOB_ACTION__FAIL), S(REASON_CODE__RESIDENT_UNWELL),
                  S(JOB_STATE__JOB_FAILED), true);
    T_EQ_INT(ist_sql_long(pg,
                          "SELECT count(*) FROM welfare_alerts WHERE request_id = $1 AND "
                          "resolved_at IS NULL",
                          s->request_id),
             1);
    T_EQ_INT(ist_sql_long(pg, "SELECT count(*) FROM requests WHERE id = $1 AND state = 'failed'",
                          s->request_id),
             1);
    ist_close(k);
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
    /* a console's heartbeat is looked at once a second (its slice of the station tick) */
    itest_daemon_up(
        &d, (const char *const[]){"--heartbeat_interval_ms=1000", "--idle_timeout_ms=2500", NULL});
    IstConsole *alive = ist_open(&d, pg, st), *silent = ist_open(&d, pg, st);
    /* the live console answers the daemon's Pings and stays; the silent one is dropped */
    int64_t until = util_now_ms() + 4500;
    while (util_now_ms() < until) {
        char err[64];
        ClEnvelope *e = cl_recv(alive->c, 100, err, sizeof(err));
        if (e)
            ist_take(alive, e);
    }
    T_ASSERT(alive->pings >= 3);
    char err[64];
    ClEnvelope *e;
    bool timed_out = false;
    while ((e = cl_recv(silent->c, 2000, err, sizeof(err)))) {
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
    e = cl_call(alive->c, &pe, 2000, err, sizeof(err), ist_on_push, alive);
    T_ASSERT(e && e->body_case == BODY(PONG));
    cl_free(e);
    ist_close(alive);
    ist_close(silent);
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
    IstConsole *k = ist_open(&d, pg, st);
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
    ist_close(k);
    r = itest_sql(pg,
                  "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1 AND "
                  "disconnected_at IS NULL",
                  1, p);
    T_EQ_INT(atoi(PQgetvalue(r, 0, 0)), 1); /* the crash left it open */
    PQclear(r);
    itest_daemon_up(&d, (const char *const[]){opt, NULL});
    IstConsole *k2 = ist_open(&d, pg, st); /* this run's own session stays open */
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
    ist_close(k2);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- the station's word survives a Redis data loss ------------------------------------- */

/* Daemon arguments for the private Redis server (irds), which this case may FLUSHALL. */
static void private_args(char port[32], char pw[600], const char *args[8])
{
    snprintf(port, 32, "--redis_port=%d", irds_srv_port());
    snprintf(pw, 600, "--redis_password_file=%s", irds_srv_pwfile());
    const char *a[] = {port, pw, "--redis_user=" IRDS_SRV_USER, "--priority_reserve_pct=0", NULL};
    memcpy(args, a, sizeof(a));
}

static const char words_sql[] =
    "SELECT count(*) FROM station_status_events WHERE station_id = $1 AND service_date = "
    "careline_local_date(now()) + 1 AND meal_slot = 'lunch' AND capacity_left = 2 AND "
    "capacity_limit = 2 AND principal = 'station:' || $1";

/* A station says it has 2 lunches left for tomorrow; Redis loses everything (FLUSHALL);
 * after the rebuild the limit is back from PostgreSQL: 2 more go to it, the rest elsewhere.
 * Bad input is still named; a word Redis refuses is answered as recorded, not applied. */
static void limits_survive_redis_loss(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 97, &f);
    int64_t near = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 30, .dlat = 0.003});
    int64_t far = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 30, .dlat = 0.008});
    char p[4][16];
    for (int i = 0; i < 4; i++)
        fix_resident(pg, &f, i, false, p[i]);
    irds_srv_start();
    char port[32], pw[600];
    const char *args[8];
    private_args(port, pw, args);
    Daemon d;
    itest_daemon_up(&d, args);
    IstConsole *k = ist_open(&d, pg, near);
    ClEnvelope *r = station_status(k, true, 2);
    T_EQ_INT(r->body_case, BODY(STATION_STATUS_ACK));
    cl_free(r);
    /* recorded before the ack: the capacity row and the open/closed row */
    T_EQ_INT(ist_sql_long(pg, words_sql, near), 1);
    T_EQ_INT(ist_sql_long(pg,
                          "SELECT count(*) FROM station_status_events WHERE station_id = $1 AND "
                          "service_date IS NULL AND is_open AND caregivers_on_duty = 3",
                          near),
             1);
    long long rebuilt0 = itest_metric(d.http_port, "careline_redis_rebuilds_total");
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "FLUSHALL");
    int64_t end = util_now_ms() + 10000;
    while (util_now_ms() < end &&
           itest_metric(d.http_port, "careline_redis_rebuilds_total") <= rebuilt0)
        usleep(50000);
    T_ASSERT(itest_metric(d.http_port, "careline_redis_rebuilds_total") > rebuilt0);
    /* the limit key is back, as the station said it */
    char key[128];
    snprintf(key, sizeof(key), "{c330281}:lim:%lld:%s:lunch", (long long)near, fix_tomorrow());
    redisContext *rc = irds_admin_connect("127.0.0.1", irds_srv_port());
    T_ASSERT(rc);
    redisReply *rep = redisCommand(rc, "GET %s", key);
    T_ASSERT(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "2") == 0);
    freeReplyObject(rep);
    redisFree(rc);
    /* two more lunches to the station, the others elsewhere */
    ClEnvelope *keep[4];
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "limit-%d", i);
        Careline__V1__SubmitResult *s = ist_submit_meal(&d, pg, fix_key(name), p[i], &keep[i]);
        T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
        T_EQ_INT(s->station_id, i < 2 ? near : far);
    }
    /* bad input is still named, and records nothing */
    Careline__V1__StationStatus m = CARELINE__V1__STATION_STATUS__INIT;
    Careline__V1__SlotCapacity cap = CARELINE__V1__SLOT_CAPACITY__INIT;
    Careline__V1__SlotCapacity *caps[] = {&cap};
    cap.slot = S(MEAL_SLOT__LUNCH);
    cap.service_date = (char *)"2026-02-30";
    cap.capacity_left = 2;
    m.open = true;
    m.n_capacity = 1;
    m.capacity = caps;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATION_STATUS);
    e.station_status = &m;
    char err[128];
    r = cl_call(k->c, &e, 5000, err, sizeof(err), ist_on_push, k);
    T_ASSERT(r && r->body_case == BODY(ERROR) && r->error->code == S(ERROR_CODE__INVALID_ARGUMENT));
    T_ASSERT(strstr(r->error->message, "capacity[0].service_date") != NULL);
    cl_free(r);
    T_EQ_INT(
        ist_sql_long(pg, "SELECT count(*) FROM station_status_events WHERE station_id = $1", near),
        2);
    /* Redis refuses the write: recorded, and the answer says so (not "nothing") */
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CONFIG SET maxmemory-policy noeviction");
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CONFIG SET maxmemory 1");
    r = station_status(k, true, 1);
    T_ASSERT(r->body_case == BODY(ERROR) && r->error->code == S(ERROR_CODE__UNAVAILABLE));
    T_ASSERT(strstr(r->error->message, "the status is recorded") != NULL);
    cl_free(r);
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CONFIG SET maxmemory 0");
    T_EQ_INT(ist_sql_long(pg,
                          "SELECT count(*) FROM station_status_events WHERE station_id = $1 AND "
                          "capacity_left = 1",
                          near),
             1);
    ist_close(k);
    for (int i = 0; i < 4; i++)
        cl_free(keep[i]);
    itest_daemon_down(&d);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"station_close_and_capacity", close_and_capacity, 60},
        {"station_welfare_alert", welfare_alert, 60},
        {"station_heartbeats", heartbeats, 60},
        {"station_stale_sessions_closed", stale_sessions_closed, 60},
        {"station_limits_survive_redis_loss", limits_survive_redis_loss, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
