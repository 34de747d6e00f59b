/*
 * Integration tests of the Redis rebuild (daemon/core/rebuild.c) on real servers: two
 * daemons on a private redis-server take a submission burst while Redis loses its data
 * (FLUSHALL; a restart with no data, as with the AOF deleted; a restart that loads a
 * snapshot a moment old, as a failover to a lagging replica would: the generation key
 * survives, the last writes do not). Afterwards no station is over capacity in PostgreSQL,
 * every QUEUED job is in its station's stream exactly once, Redis' counters equal
 * PostgreSQL's live jobs, every acknowledged QUEUED is queued, and the waitlist sweep
 * overfilled nobody. And Redis refusing writes: /readyz 503 redis_writes_failing,
 * UNAVAILABLE saying nothing was recorded, nothing in PostgreSQL, recovery.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "fixture.h"
#include "iconsole.h"
#include "idispatch.h"
#include "irds.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

enum { NST = 4, NPH = 60, CONNS = 4, PER = 160, WAVE = 8 };
static const int caps[NST] = {9, 12, 15, 18};

typedef enum { LOSS_FLUSHALL, LOSS_RESTART_EMPTY, LOSS_RESTART_STALE } Loss;

/* Daemon arguments for the private server. */
static void private_args(char port[32], char pw[600], const char *args[8])
{
    snprintf(port, 32, "--redis_port=%d", irds_srv_port());
    snprintf(pw, 600, "--redis_password_file=%s", irds_srv_pwfile());
    const char *a[] = {port,
                       pw,
                       "--redis_user=" IRDS_SRV_USER,
                       "--priority_reserve_pct=0",
                       "--reconcile_interval_ms=200",
                       NULL};
    memcpy(args, a, sizeof(a));
}

/* One gateway connection's part of the burst, in waves of WAVE pipelined submits; the keys
 * acknowledged QUEUED are appended to acked_path. Exits 0 unless a reply is missing or of
 * an unexpected kind (UNAVAILABLE is expected while Redis is rebuilt). */
static void child_burst(const Daemon *d, const char *tok, const char *prefix, int first,
                        char (*phones)[16], const char *acked_path)
{
    ClConn *c = itest_login(d, tok);
    FILE *acked = fopen(acked_path, "a");
    char err[256], key[WAVE][96];
    int bad = 0;
    for (int w = 0; w < PER / WAVE; w++) {
        for (int i = 0; i < WAVE; i++) {
            int n = first + w * WAVE + i;
            snprintf(key[i], sizeof(key[i]), "%s-%d", prefix, n);
            IdispReq q = idisp_meal(key[i], phones[n % NPH]);
            ClEnvelope e;
            Careline__V1__SubmitRequest m;
            Careline__V1__Location loc;
            idisp_build(&q, &e, &m, &loc);
            e.seq = (uint64_t)i + 1;
            if (!cl_send(c, &e))
                _exit(3);
        }
        for (int i = 0; i < WAVE; i++) {
            ClEnvelope *r = cl_recv(c, 30000, err, sizeof(err));
            if (!r)
                _exit(4);
            if (r->body_case == BODY(SUBMIT_RESULT)) {
                int st = r->submit_result->state;
                if (st == S(REQUEST_STATE__QUEUED))
                    fprintf(acked, "%s\n", key[r->seq - 1]);
                else if (st != S(REQUEST_STATE__WAITLISTED))
                    bad++;
            } else if (r->body_case != BODY(ERROR) ||
                       r->error->code != S(ERROR_CODE__UNAVAILABLE) ||
                       !strstr(r->error->message, "nothing was recorded")) {
                fprintf(stderr, "unexpected reply: %s\n",
                        r->body_case == BODY(ERROR) ? r->error->message : "?");
                bad++;
            }
            cl_free(r);
        }
        usleep(50000);
    }
    fclose(acked);
    cl_close(c);
    _exit(bad ? 5 : 0);
}

static void do_loss(Loss how)
{
    if (how == LOSS_FLUSHALL) {
        irds_admin_cmd("127.0.0.1", irds_srv_port(), "FLUSHALL");
        return;
    }
    if (how == LOSS_RESTART_EMPTY) {
        char path[600];
        snprintf(path, sizeof(path), "%s/dump.rdb", t_tmpdir());
        irds_srv_stop(); /* SHUTDOWN NOSAVE */
        unlink(path);    /* no data survives (the AOF deleted) */
        irds_srv_start();
        return;
    }
    /* stale: the snapshot was taken a moment ago (before the loss was triggered, see the
     * caller); everything written since is lost, the generation key is not */
    irds_srv_stop();
    irds_srv_start();
}

/* Live jobs at station st for tomorrow's lunch in PostgreSQL. */
static long live_jobs(PGconn *pg, int64_t st)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)st);
    return idisp_sql_long(pg,
                          "SELECT count(*) FROM jobs j JOIN requests r ON r.id = j.request_id "
                          "WHERE j.station_id = $1 AND r.meal_slot = 'lunch' AND "
                          "r.service_date = careline_local_date(now()) + 1 AND "
                          "j.state NOT IN ('rejected', 'expired', 'cancelled')",
                          id);
}

static long metric_sum(const Daemon *a, const Daemon *b, const char *name)
{
    return itest_metric(a->http_port, name) + itest_metric(b->http_port, name);
}

static void loss_during_burst(Loss how, int area)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, area, &f);
    int64_t st[NST];
    for (int i = 0; i < NST; i++)
        st[i] = fix_station(pg, &f,
                            &(FixStation){.meal = true, .cap_lunch = caps[i], .dlat = 0.002 * i});
    char phones[NPH][16];
    for (int i = 0; i < NPH; i++)
        fix_resident(pg, &f, i, i % 7 == 0, phones[i]);
    irds_srv_start();
    char port[32], pw[600];
    const char *args[8];
    private_args(port, pw, args);
    Daemon a, b;
    itest_daemon_start(&a, args);
    itest_daemon_start(&b, args);
    itest_daemon_wait_ready(&a);
    itest_daemon_wait_ready(&b);
    char tok[64], prefix[64], acked_path[600], stok[64], sport[16];
    itest_make_token(pg, "gateway", 0, tok);
    /* a console of the first station, connected through the loss */
    itest_make_token(pg, "station", st[0], stok);
    IconProc con;
    icon_start(&con, &b, false,
               (const char *const[]){"--port", icon_port_arg(sport, sizeof(sport), b.proto_port),
                                     "--token", stok, "--json", NULL});
    icon_wait(&con, 10000, "connected", 0, NULL);
    snprintf(prefix, sizeof(prefix), "%s", fix_key("loss"));
    snprintf(acked_path, sizeof(acked_path), "%s/acked", t_tmpdir());
    char like[96];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    long rebuilt0 = metric_sum(&a, &b, "careline_redis_rebuilds_total");
    pid_t kids[CONNS];
    for (int k = 0; k < CONNS; k++) {
        kids[k] = fork();
        T_ASSERT(kids[k] >= 0);
        if (kids[k] == 0)
            child_burst(k % 2 ? &b : &a, tok, prefix, k * PER, phones, acked_path);
    }
    /* the loss comes once a third of the capacity is booked: mid-burst */
    long total = 0;
    for (int i = 0; i < NST; i++)
        total += caps[i];
    T_ASSERT(itest_wait_sql_ll(pg,
                               "SELECT least(count(*), $2::bigint) FROM jobs j JOIN requests r ON "
                               "r.id = j.request_id WHERE r.idempotency_key LIKE $1",
                               2, (const char *[]){like, (char[24]){"5"}}, 5, 20000) == 5);
    if (how == LOSS_RESTART_STALE) {
        irds_admin_cmd("127.0.0.1", irds_srv_port(), "SAVE");
        itest_wait_sql_ll(pg,
                          "SELECT least(count(*), $2::bigint) FROM jobs j JOIN requests r ON "
                          "r.id = j.request_id WHERE r.idempotency_key LIKE $1",
                          2, (const char *[]){like, (char[24]){"10"}}, 10, 10000);
    }
    do_loss(how);
    /* seconds to ready: from the loss until both daemons have rebuilt (or adopted the
     * rebuild) and answer /readyz 200 again */
    int64_t lost_at = util_now_ms(), ready_ms = -1;
    char rz[512];
    while (ready_ms < 0 && util_now_ms() < lost_at + 30000) {
        if (metric_sum(&a, &b, "careline_redis_rebuilds_total") > rebuilt0 &&
            itest_http_get(a.http_port, "/readyz", rz, sizeof(rz)) == 200 &&
            itest_http_get(b.http_port, "/readyz", rz, sizeof(rz)) == 200)
            ready_ms = util_now_ms() - lost_at;
        else
            usleep(10000);
    }
    for (int k = 0; k < CONNS; k++) {
        int status;
        T_ASSERT(waitpid(kids[k], &status, 0) == kids[k]);
        T_ASSERT(WIFEXITED(status));
        T_EQ_INT(WEXITSTATUS(status), 0);
    }
    itest_daemon_wait_ready(&a);
    itest_daemon_wait_ready(&b);
    T_ASSERT(metric_sum(&a, &b, "careline_redis_rebuilds_total") >= rebuilt0 + 1);
    /* the waitlist sweep runs (every 200 ms; the waitlist at least every 15 sweeps) */
    sleep(4);
    redisContext *rd = irds_admin_connect("127.0.0.1", irds_srv_port());
    T_ASSERT(rd);
    /* the burst over-asked: every station is full, none over */
    long over = 0;
    for (int i = 0; i < NST; i++) {
        long live = live_jobs(pg, st[i]);
        over += live > caps[i] ? live - caps[i] : 0;
        if (live > caps[i])
            t_fail(__FILE__, __LINE__, "station %d: %ld live jobs for %d meals", i, live, caps[i]);
        char capk[96];
        snprintf(capk, sizeof(capk), "{c330281}:cap:%lld:%s:lunch", (long long)st[i],
                 fix_tomorrow());
        T_EQ_INT(fix_redis_int(rd, capk), live); /* Redis agrees with the record */
    }
    /* every QUEUED request's job is in its station's stream exactly once */
    PGresult *q = itest_sql(pg,
                            "SELECT r.id, r.station_id FROM requests r WHERE r.idempotency_key "
                            "LIKE $1 AND r.state = 'queued'",
                            1, (const char *[]){like});
    T_ASSERT(PQntuples(q) > 0);
    for (int i = 0; i < PQntuples(q); i++) {
        long n = fix_stream_count(rd, atoll(PQgetvalue(q, i, 1)), atoll(PQgetvalue(q, i, 0)));
        if (n != 1)
            t_fail(__FILE__, __LINE__, "request %s has %ld stream entries", PQgetvalue(q, i, 0), n);
    }
    PQclear(q);
    /* the console kept its jobs: it was shown every job queued at its station */
    char sid[24];
    snprintf(sid, sizeof(sid), "%lld", (long long)st[0]);
    q = itest_sql(pg, "SELECT job_id FROM requests WHERE station_id = $1 AND state = 'queued'", 1,
                  (const char *[]){sid});
    T_EQ_INT(PQntuples(q), caps[0]);
    for (int i = 0; i < PQntuples(q); i++) {
        int64_t job = atoll(PQgetvalue(q, i, 0));
        if (icon_count(&con, "job", job, "offered") == 0) /* not among the lines read yet */
            icon_wait(&con, 10000, "job", job, "offered");
    }
    PQclear(q);
    icon_stop(&con);
    /* every acknowledged QUEUED is queued in PostgreSQL */
    FILE *acked = fopen(acked_path, "r");
    char key[128];
    int nacked = 0;
    while (acked && fgets(key, sizeof(key), acked)) {
        key[strcspn(key, "\n")] = '\0';
        PGresult *r = itest_sql(pg, "SELECT state FROM requests WHERE idempotency_key = $1", 1,
                                (const char *[]){key});
        T_EQ_INT(PQntuples(r), 1);
        T_EQ_STR(PQgetvalue(r, 0, 0), "queued");
        PQclear(r);
        nacked++;
    }
    if (acked)
        fclose(acked);
    T_ASSERT(nacked > 0);
    static const char *const what[] = {"FLUSHALL", "restart without data",
                                       "restart on a stale snapshot"};
    printf("  %s: %d submissions, %d acknowledged QUEUED, 0 lost, 0 doubled, %ld over capacity, "
           "ready again %lld ms after the loss\n",
           what[how], CONNS * PER, nacked, over, (long long)ready_ms);
    redisFree(rd);
    T_EQ_INT(itest_daemon_stop(&a, 15000), 0);
    T_EQ_INT(itest_daemon_stop(&b, 15000), 0);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

static void flushall_during_burst(void)
{
    loss_during_burst(LOSS_FLUSHALL, 91);
}

static void restart_empty_during_burst(void)
{
    loss_during_burst(LOSS_RESTART_EMPTY, 92);
}

static void restart_stale_during_burst(void)
{
    loss_during_burst(LOSS_RESTART_STALE, 93);
}

/* /readyz is `code` and (when reason is not NULL) lists reason, within timeout_ms. */
static bool wait_readyz(const Daemon *d, int code, const char *reason, int timeout_ms)
{
    char body[1024];
    int64_t end = util_now_ms() + timeout_ms;
    do {
        int got = itest_http_get(d->http_port, "/readyz", body, sizeof(body));
        if (got == code && (!reason || strstr(body, reason)))
            return true;
        usleep(50000);
    } while (util_now_ms() < end);
    fprintf(stderr, "readyz: %s\n", body);
    return false;
}

static void writes_refused(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 94, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    irds_srv_start();
    char port[32], pw[600];
    const char *args[8];
    private_args(port, pw, args);
    Daemon d;
    itest_daemon_up(&d, args);
    ClConn *c = isess_gateway(&d, pg);
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CONFIG SET maxmemory-policy noeviction");
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CONFIG SET maxmemory 1");
    T_ASSERT(wait_readyz(&d, 503, "redis_writes_failing", 5000));
    const char *key = fix_key("oom");
    IdispReq q = idisp_meal(key, phone);
    ClEnvelope *r = idisp_submit(&d, c, &q);
    T_EQ_INT(r->body_case, BODY(ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__UNAVAILABLE));
    T_ASSERT(strstr(r->error->message, "nothing was recorded") != NULL);
    T_ASSERT(strstr(r->error->message, "recorded but") == NULL);
    cl_free(r);
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1", key),
             0);
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CONFIG SET maxmemory 0");
    T_ASSERT(wait_readyz(&d, 200, NULL, 5000));
    r = idisp_submit(&d, c, &q);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    T_ASSERT(itest_metric(d.http_port,
                          "careline_not_ready_total{reason=\"redis_writes_failing\"}") >= 1);
    cl_close(c);
    itest_daemon_down(&d);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

/* A unit reserved in a generation a rebuild has replaced is refused by PostgreSQL itself:
 * the generation moves on in the database behind the daemon's back (as a rebuild by
 * another daemon does between this one's reservation and its commit), the next submission
 * reserves in the old Redis state and its record is refused; it is answered UNAVAILABLE,
 * nothing recorded, and the daemon then finds Redis behind PostgreSQL and rebuilds. */
static void pg_refuses_stale_generation(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 95, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    irds_srv_start();
    char port[32], pw[600];
    const char *args[8];
    private_args(port, pw, args);
    Daemon d;
    itest_daemon_up(&d, args);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q1 = idisp_meal(fix_key("gen-1"), phone);
    ClEnvelope *r = idisp_submit(&d, c, &q1);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    long before = itest_metric(d.http_port, "careline_redis_rebuilds_total");
    PQclear(itest_sql(pg, "SELECT * FROM careline_redis_rebuild('330281', 'test')", 0, NULL));
    const char *key2 = fix_key("gen-2");
    IdispReq q2 = idisp_meal(key2, phone);
    r = idisp_submit(&d, c, &q2);
    T_EQ_INT(r->body_case, BODY(ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__UNAVAILABLE));
    T_ASSERT(strstr(r->error->message, "nothing was recorded") != NULL);
    cl_free(r);
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1", key2),
             0);
    /* the daemon rebuilds, and the same key then goes through */
    int64_t end = util_now_ms() + 10000;
    while (itest_metric(d.http_port, "careline_redis_rebuilds_total") <= before &&
           util_now_ms() < end)
        usleep(50000);
    T_ASSERT(itest_metric(d.http_port, "careline_redis_rebuilds_total") > before);
    itest_daemon_wait_ready(&d);
    r = idisp_submit(&d, c, &q2);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    T_EQ_INT(live_jobs(pg, st), 2);
    redisContext *rd = irds_admin_connect("127.0.0.1", irds_srv_port());
    char capk[96];
    snprintf(capk, sizeof(capk), "{c330281}:cap:%lld:%s:lunch", (long long)st, fix_tomorrow());
    T_EQ_INT(fix_redis_int(rd, capk), 2);
    T_EQ_INT(fix_stream_count(rd, st, 0), 2);
    redisFree(rd);
    cl_close(c);
    itest_daemon_down(&d);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

/* While a rebuild runs (held up here by a lock on the county's generation row in
 * PostgreSQL), both daemons say redis_rebuilding in /readyz and answer submissions at once
 * with UNAVAILABLE saying nothing was recorded; exactly one of them rebuilds, the other
 * waits and adopts its generation; then submissions go through again. */
static void unavailable_while_rebuilding(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 96, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    irds_srv_start();
    char port[32], pw[600];
    const char *args[8];
    private_args(port, pw, args);
    Daemon a, b;
    itest_daemon_up(&a, args);
    itest_daemon_up(&b, args);
    ClConn *c = isess_gateway(&a, pg);
    long rebuilt0 = metric_sum(&a, &b, "careline_redis_rebuilds_total");
    PGconn *locker = itest_pg();
    PQclear(itest_sql(locker, "BEGIN", 0, NULL));
    PQclear(itest_sql(locker,
                      "SELECT * FROM redis_generations WHERE county_code = '330281' FOR UPDATE", 0,
                      NULL));
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "FLUSHALL");
    T_ASSERT(wait_readyz(&a, 503, "redis_rebuilding", 5000));
    T_ASSERT(wait_readyz(&b, 503, "redis_rebuilding", 5000));
    const char *key = fix_key("rebuilding");
    IdispReq q = idisp_meal(key, phone);
    int64_t t0 = util_now_ms();
    ClEnvelope *r = idisp_submit(&a, c, &q);
    T_ASSERT(util_now_ms() - t0 < 3000); /* at once, not when the rebuild ends */
    T_EQ_INT(r->body_case, BODY(ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__UNAVAILABLE));
    T_ASSERT(strstr(r->error->message, "nothing was recorded") != NULL);
    T_ASSERT(strstr(r->error->message, "rebuilt") != NULL);
    cl_free(r);
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1", key),
             0);
    PQclear(itest_sql(locker, "COMMIT", 0, NULL));
    PQfinish(locker);
    itest_daemon_wait_ready(&a);
    itest_daemon_wait_ready(&b);
    T_EQ_INT(metric_sum(&a, &b, "careline_redis_rebuilds_total"), rebuilt0 + 1);
    r = idisp_submit(&a, c, &q);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"rebuild_flushall_during_burst", flushall_during_burst, 300},
        {"rebuild_restart_empty_during_burst", restart_empty_during_burst, 300},
        {"rebuild_restart_stale_during_burst", restart_stale_during_burst, 300},
        {"rebuild_writes_refused", writes_refused, 120},
        {"rebuild_pg_refuses_stale_generation", pg_refuses_stale_generation, 120},
        {"rebuild_unavailable_while_rebuilding", unavailable_while_rebuilding, 120},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
