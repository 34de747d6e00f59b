/*
 * Integration tests of the dispatch core under stress on real PostgreSQL and Redis: two
 * daemons never overbook; kill -9 at every step of a submission loses nothing and queues
 * nothing twice; a slow PostgreSQL does not stop the event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "idispatch.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

typedef struct {
    int queued, waitlisted, rejected, errors, other;
} Tally;

/* Sends n submits on c as fast as possible (pipelined) and tallies the replies. Keys are
 * PREFIX-i; residents cycle through phones. Records the keys that were QUEUED if asked. */
static void burst(ClConn *c, const char *prefix, int first, int n, char (*phones)[16], int nph,
                  Tally *t, char (*queued_keys)[96], int *nq)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d", prefix, first + i);
        IdispReq q = idisp_meal(key, phones[(first + i) % nph]);
        ClEnvelope e;
        Careline__V1__SubmitRequest m;
        Careline__V1__Location loc;
        idisp_build(&q, &e, &m, &loc);
        e.seq = (uint64_t)(first + i + 1);
        if (!cl_send(c, &e))
            break;
    }
    for (int i = 0; i < n; i++) {
        ClEnvelope *r = cl_recv(c, 30000, err, sizeof(err));
        if (!r)
            break;
        if (r->body_case == BODY(SUBMIT_RESULT)) {
            int st = r->submit_result->state;
            if (st == S(REQUEST_STATE__QUEUED)) {
                t->queued++;
                if (queued_keys)
                    snprintf(queued_keys[(*nq)++], 96, "%s-%llu", prefix,
                             (unsigned long long)r->seq - 1);
            } else if (st == S(REQUEST_STATE__WAITLISTED)) {
                t->waitlisted++;
            } else if (st == S(REQUEST_STATE__REJECTED)) {
                t->rejected++;
            } else {
                t->other++;
            }
        } else {
            t->errors++;
        }
        cl_free(r);
    }
}

static void two_daemons_never_overbook(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 8, &f);
    int caps[] = {3, 4, 5, 6};
    int64_t st[4];
    for (int i = 0; i < 4; i++)
        st[i] = fix_station(pg, &f,
                            &(FixStation){.meal = true, .cap_lunch = caps[i], .dlat = 0.002 * i});
    char phones[50][16];
    for (int i = 0; i < 50; i++)
        fix_resident(pg, &f, i, i % 5 == 0, phones[i]);
    const char *const extra[] = {"--priority_reserve_pct=0", NULL};
    Daemon a, b;
    itest_daemon_start(&a, extra);
    itest_daemon_start(&b, extra);
    itest_daemon_wait_ready(&a);
    itest_daemon_wait_ready(&b);
    char tok[64];
    itest_make_token(pg, "gateway", 0, tok);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s", fix_key("two")); /* before fork: one run id */
    enum { CONNS = 8, PER = 250 };
    pid_t kids[CONNS];
    for (int k = 0; k < CONNS; k++) {
        kids[k] = fork();
        T_ASSERT(kids[k] >= 0);
        if (kids[k] == 0) {
            ClConn *c = itest_login(k % 2 ? &b : &a, tok);
            Tally t = {0};
            burst(c, prefix, k * PER, PER, phones, 50, &t, NULL, NULL);
            cl_close(c);
            /* the exit code carries queued count; errors make it fail */
            _exit(t.errors || t.other || t.rejected || t.queued + t.waitlisted != PER ? 255
                                                                                      : t.queued);
        }
    }
    int queued = 0;
    for (int k = 0; k < CONNS; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) != 255);
        queued += WEXITSTATUS(status);
    }
    T_EQ_INT(queued, 3 + 4 + 5 + 6); /* every unit used once, none twice */
    /* PostgreSQL and Redis agree, station by station */
    char like[96];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    T_EQ_INT(
        idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1", like),
        CONNS * PER);
    T_EQ_INT(idisp_sql_long(pg,
                            "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1 AND "
                            "state NOT IN ('queued', 'waitlisted')",
                            like),
             0);
    for (int i = 0; i < 4; i++) {
        char id[24], cap[96];
        snprintf(id, sizeof(id), "%lld", (long long)st[i]);
        snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)st[i], fix_tomorrow());
        long jobs = idisp_sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1", id);
        T_EQ_INT(jobs, caps[i]);
        T_EQ_INT(fix_stream_count(rd, st[i], 0), caps[i]);
        T_EQ_INT(fix_redis_int(rd, cap), caps[i]);
    }
    T_EQ_INT(itest_daemon_stop(&a, 15000), 0);
    T_EQ_INT(itest_daemon_stop(&b, 15000), 0);
    redisFree(rd);
    PQfinish(pg);
}

static void crash_at(const char *point, int k)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, k, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 1000});
    char phones[10][16];
    for (int i = 0; i < 10; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    char fp[64], fa[32];
    snprintf(fp, sizeof(fp), "--fault_point=%s", point);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(fa, sizeof(fa), "--fault_after=%d", 5 + rand() % 20);
    itest_daemon_start(&d, (const char *const[]){fp, fa, NULL});
    itest_daemon_wait_ready(&d);
    ClConn *c = isess_gateway(&d, pg);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s-%s", fix_key("crash"), point);
    Tally t = {0};
    static char acked[100][96];
    int nacked = 0;
    burst(c, prefix, 0, 60, phones, 10, &t, acked, &nacked);
    cl_close(c);
    /* the daemon died mid-burst (SIGKILL) */
    for (int i = 0; i < 200 && itest_daemon_alive(&d); i++)
        usleep(20000);
    T_ASSERT(!itest_daemon_alive(&d));
    T_ASSERT(nacked < 60);
    /* restart without the fault: the sweep repairs what the crash left, and the reconciler
     * gives back reservations whose request was never recorded (short grace for the test) */
    itest_daemon_start(
        &d, (const char *const[]){"--reconcile_age_ms=0", "--reconcile_interval_ms=200",
                                  "--pg_query_timeout_ms=1000", "--orphan_grace_ms=4500", NULL});
    itest_daemon_wait_ready(&d);
    char like[80], sid[24], capk[96];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    snprintf(sid, sizeof(sid), "%lld", (long long)st);
    snprintf(capk, sizeof(capk), "{c330281}:cap:%lld:%s:lunch", (long long)st, fix_tomorrow());
    long left = -1, jobs = -1;
    for (int i = 0; i < 200; i++) {
        left = idisp_sql_long(pg,
                              "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1 AND "
                              "state = 'received'",
                              like);
        jobs = idisp_sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1", sid);
        if (left == 0 && fix_redis_int(rd, capk) == jobs && fix_stream_count(rd, st, 0) == jobs)
            break;
        usleep(100000);
    }
    T_EQ_INT(left, 0);
    T_EQ_INT(fix_stream_count(rd, st, 0), jobs); /* no entry without its job */
    if (strcmp(point, "after_enqueue") == 0)     /* the one it died holding, at least */
        T_ASSERT(itest_metric(d.http_port, "careline_orphans_released_total") >= 1);
    /* every acknowledged QUEUED is queued in PostgreSQL and once in Redis */
    for (int i = 0; i < nacked; i++) {
        PGresult *r = itest_sql(pg, "SELECT id, state FROM requests WHERE idempotency_key = $1", 1,
                                (const char *[]){acked[i]});
        T_EQ_INT(PQntuples(r), 1);
        T_EQ_STR(PQgetvalue(r, 0, 1), "queued");
        T_EQ_INT(fix_stream_count(rd, st, atoll(PQgetvalue(r, 0, 0))), 1);
        PQclear(r);
    }
    /* and no request at all is queued twice; stream, jobs and capacity agree */
    PGresult *all = itest_sql(pg, "SELECT id, state FROM requests WHERE idempotency_key LIKE $1", 1,
                              (const char *[]){like});
    long queued = 0;
    for (int i = 0; i < PQntuples(all); i++) {
        long n = fix_stream_count(rd, st, atoll(PQgetvalue(all, i, 0)));
        bool q = strcmp(PQgetvalue(all, i, 1), "queued") == 0;
        if (n != (q ? 1 : 0))
            t_fail(__FILE__, __LINE__, "request %s (%s) has %ld stream entries",
                   PQgetvalue(all, i, 0), PQgetvalue(all, i, 1), n);
        queued += q;
    }
    PQclear(all);
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1", sid), queued);
    T_EQ_INT(fix_redis_int(rd, capk), queued);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static void crash_after_begin(void)
{
    crash_at("after_begin", 20);
}

static void crash_before_enqueue(void)
{
    crash_at("before_enqueue", 21);
}

static void crash_after_enqueue(void)
{
    crash_at("after_enqueue", 22);
}

static void crash_after_finish(void)
{
    crash_at("after_finish", 23);
}

static void slow_postgres_loop_alive(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 9, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    /* another session holds a lock every submission needs */
    PGconn *locker = itest_pg();
    PQclear(itest_sql(locker, "BEGIN", 0, NULL));
    PQclear(itest_sql(locker, "LOCK TABLE requests IN ACCESS EXCLUSIVE MODE", 0, NULL));
    IdispReq q = idisp_meal(fix_key("slow-1"), phone);
    ClEnvelope e;
    Careline__V1__SubmitRequest m;
    Careline__V1__Location loc;
    idisp_build(&q, &e, &m, &loc);
    e.seq = 500;
    T_ASSERT(cl_send(c, &e));
    usleep(300000); /* the submission is now stuck in PostgreSQL */
    /* Ping on the same connection and /healthz on HTTP are answered at once */
    ClConn *c2 = isess_gateway(&d, pg);
    Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
    ClEnvelope pe = CARELINE__V1__ENVELOPE__INIT;
    pe.body_case = BODY(PING);
    pe.ping = &ping;
    char err[256], body[256];
    for (int i = 0; i < 5; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ClEnvelope *r = cl_call(c, &pe, 1000, err, sizeof(err), NULL, NULL);
        T_ASSERT(r && r->body_case == BODY(PONG));
        cl_free(r);
        r = cl_call(c2, &pe, 1000, err, sizeof(err), NULL, NULL);
        T_ASSERT(r && r->body_case == BODY(PONG));
        cl_free(r);
        T_EQ_INT(itest_http_get(d.http_port, "/healthz", body, sizeof(body)), 200);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        T_ASSERT(ms < 500);
    }
    /* the submission has not been answered yet... */
    T_EQ_INT(idisp_sql_long(locker, "SELECT count(*) FROM pg_locks WHERE NOT granted", NULL) > 0,
             1);
    PQclear(itest_sql(locker, "COMMIT", 0, NULL));
    /* ...and completes once the lock is gone */
    ClEnvelope *r = cl_recv(c, 10000, err, sizeof(err));
    T_ASSERT(r);
    T_EQ_INT(r->seq, 500);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    PQfinish(locker);
    cl_close(c);
    cl_close(c2);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"dispatch_two_daemons_never_overbook", two_daemons_never_overbook, 300},
        {"dispatch_crash_after_begin", crash_after_begin, 120},
        {"dispatch_crash_before_enqueue", crash_before_enqueue, 120},
        {"dispatch_crash_after_enqueue", crash_after_enqueue, 120},
        {"dispatch_crash_after_finish", crash_after_finish, 120},
        {"dispatch_slow_postgres_loop_alive", slow_postgres_loop_alive, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
