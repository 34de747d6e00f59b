/*
 * Integration tests of failing fast when PostgreSQL stalls (issue 13, part P), on the real
 * servers: PostgreSQL frozen (SIGSTOP of this stack's postmaster and its children) for 10 s
 * under a steady load of submissions — every one answered within its deadline + 1 s, none
 * lost, none doubled, /readyz 503 within 1 s, normal latency within 2 s of SIGCONT, the
 * breaker and the on-call metrics moving; a caller that has gone, or whose deadline passed,
 * leaves nothing in PostgreSQL; terminal sessions of a daemon killed with -9 closed by
 * another daemon's lease, a live daemon's kept.
 * A guardian process SIGCONTs the cluster on schedule whatever happens to the test (a
 * failed assertion _exits, the case timeout kills): other test programs need it running.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "idispatch.h"
#include "istation.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(int64_t at)
{
    int64_t left;
    while ((left = at - mono_ms()) > 0)
        usleep((useconds_t)(left > 50 ? 50000 : left * 1000));
}

/* ---- freezing this stack's PostgreSQL (and only this stack's) ---------------------------- */

#define MAX_PIDS 512
typedef struct {
    pid_t pid[MAX_PIDS];
    int n;
} PgPids;

static pid_t postmaster_pid(void)
{
    char path[600];
    const char *tmp = getenv("CARELINE_TMP");
    T_ASSERT(tmp);
    snprintf(path, sizeof(path), "%s/pg/postmaster.pid", tmp); /* the stack's data dir */
    FILE *f = fopen(path, "r");
    T_ASSERT(f);
    long pid = 0;
    int n = fscanf(f, "%ld", &pid);
    fclose(f);
    T_ASSERT(n == 1 && pid > 1);
    return (pid_t)pid;
}

/* Appends the processes whose parent is parent (from /proc). */
static void children_of(pid_t parent, PgPids *out)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL && out->n < MAX_PIDS) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        char state;
        int ppid;
        if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && ppid == parent)
            out->pid[out->n++] = (pid_t)atoi(e->d_name);
    }
    if (dir)
        closedir(dir);
}

static void pg_signal(const PgPids *p, int sig)
{
    for (int i = 0; i < p->n; i++)
        kill(p->pid[i], sig);
}

/* The postmaster first, so that it forks nothing while its children are listed. */
static void pg_freeze(PgPids *p)
{
    p->n = 0;
    p->pid[p->n++] = postmaster_pid();
    T_ASSERT(kill(p->pid[0], SIGSTOP) == 0);
    children_of(p->pid[0], p);
    pg_signal(p, SIGSTOP);
}

/* A process that SIGCONTs p at thaw_at, or at once when the test process ends first. */
static pid_t pg_guardian(const PgPids *p, int64_t thaw_at)
{
    pid_t parent = getpid();
    pid_t g = fork();
    T_ASSERT(g >= 0);
    if (g == 0) {
        while (mono_ms() < thaw_at && getppid() == parent)
            usleep(20000);
        pg_signal(p, SIGCONT);
        _exit(0);
    }
    return g;
}

/* ---- the load: closed-loop submitters, one connection each ----------------------------- */

enum { REC_RESULT, REC_ERROR, REC_NOREPLY };

typedef struct {
    char key[96];
    long long t0, t1; /* mono_ms() sent, answered */
    int kind;         /* REC_* */
    int value;        /* RequestState of a result, ErrorCode of an error */
    char msg[320];
} Rec;

static void submitter(const Daemon *d, const char *tok, const char *prefix, int k,
                      char (*phones)[16], int nph, int64_t end_at, const char *path)
{
    ClConn *c = itest_login(d, tok);
    FILE *f = fopen(path, "w");
    if (!f)
        _exit(2);
    char err[256];
    for (int i = 0; mono_ms() < end_at; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d-%d", prefix, k, i);
        IdispReq q = idisp_meal(key, phones[(k * 7 + i) % nph]);
        ClEnvelope e;
        Careline__V1__SubmitRequest m;
        Careline__V1__Location loc;
        idisp_build(&q, &e, &m, &loc);
        e.seq = (uint64_t)i + 1;
        long long t0 = mono_ms();
        ClEnvelope *r = cl_send(c, &e) ? cl_recv(c, 10000, err, sizeof(err)) : NULL;
        long long t1 = mono_ms();
        if (!r) {
            fprintf(f, "%s %lld %lld %d 0 %s\n", key, t0, t1, REC_NOREPLY, err);
            break;
        }
        if (r->body_case == BODY(SUBMIT_RESULT))
            fprintf(f, "%s %lld %lld %d %d -\n", key, t0, t1, REC_RESULT,
                    (int)r->submit_result->state);
        else if (r->body_case == BODY(ERROR))
            fprintf(f, "%s %lld %lld %d %d %s\n", key, t0, t1, REC_ERROR, (int)r->error->code,
                    r->error->message);
        else
            fprintf(f, "%s %lld %lld %d -1 unexpected body\n", key, t0, t1, REC_ERROR);
        cl_free(r);
        usleep(20000);
    }
    fclose(f);
    cl_close(c);
    _exit(0);
}

/* Reads the submitters' files; returns how many records (at most max). */
static int read_recs(int nfiles, Rec *recs, int max)
{
    int n = 0;
    for (int k = 0; k < nfiles; k++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/load-%d.txt", t_tmpdir(), k);
        FILE *f = fopen(path, "r");
        T_ASSERT(f);
        while (n < max) {
            Rec *r = &recs[n];
            if (fscanf(f, "%95s %lld %lld %d %d %319[^\n]", r->key, &r->t0, &r->t1, &r->kind,
                       &r->value, r->msg) != 6)
                break;
            n++;
        }
        fclose(f);
    }
    return n;
}

/* Appends key to a text[] literal being built in buf. */
static void arr_add(char *buf, size_t cap, const char *key)
{
    size_t len = strlen(buf), k = strlen(key);
    T_ASSERT(len + k + 3 < cap); /* room for a comma, the key and the closing brace */
    if (len > 1)
        buf[len++] = ',';
    memcpy(buf + len, key, k + 1);
}

static long long count_keys(PGconn *pg, char *arr, size_t cap)
{
    size_t len = strlen(arr);
    T_ASSERT(len + 2 <= cap);
    memcpy(arr + len, "}", 2);
    const char *p[] = {arr};
    return itest_sql_ll(
        pg, "SELECT count(*) FROM requests WHERE idempotency_key = ANY ($1::text[])", 1, p);
}

#define CONNS    4
#define DEADLINE 2000 /* the daemon's submit_deadline_ms in these tests */
#define MAX_RECS 20000

static void freeze_under_load(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 90, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 8000});
    char phones[20][16];
    for (int i = 0; i < 20; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    Daemon d;
    itest_daemon_up(
        &d, (const char *const[]){"--submit_deadline_ms=2000", "--priority_reserve_pct=0", NULL});
    char tok[64], prefix[64];
    itest_make_token(pg, "gateway", 0, tok);
    snprintf(prefix, sizeof(prefix), "%s", fix_key("frz"));
    long long unavail0 =
        itest_metric(d.http_port, "careline_submissions_total{outcome=\"UNAVAILABLE\"}");
    long long trips0 = itest_metric(d.http_port, "careline_pg_breaker_trips_total");
    T_ASSERT(unavail0 >= 0 && trips0 == 0);
    int64_t start = mono_ms();
    int64_t freeze_at = start + 3000, thaw_at = freeze_at + 10000, end_at = thaw_at + 5000;
    pid_t kids[CONNS];
    for (int k = 0; k < CONNS; k++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/load-%d.txt", t_tmpdir(), k);
        kids[k] = fork();
        T_ASSERT(kids[k] >= 0);
        if (kids[k] == 0)
            submitter(&d, tok, prefix, k, phones, 20, end_at, path);
    }
    sleep_until(freeze_at);
    PgPids pp;
    pg_freeze(&pp);
    int64_t frozen = mono_ms();
    pid_t guard = pg_guardian(&pp, thaw_at + 1000);
    printf("  froze PostgreSQL: %d processes\n", pp.n);
    char body[4096] = "";
    int64_t t503 = -1;
    while (mono_ms() < frozen + 5000) {
        if (itest_http_get(d.http_port, "/readyz", body, sizeof(body)) == 503) {
            t503 = mono_ms();
            break;
        }
        usleep(20000);
    }
    bool stalled_reason = strstr(body, "postgres_stalled") != NULL;
    long long state_open = itest_metric(d.http_port, "careline_pg_breaker_state");
    sleep_until(thaw_at);
    pg_signal(&pp, SIGCONT);
    int64_t thawed = mono_ms();
    kill(guard, SIGKILL);
    waitpid(guard, NULL, 0);
    int64_t t200 = -1;
    while (mono_ms() < thawed + 10000) {
        if (itest_http_get(d.http_port, "/readyz", body, sizeof(body)) == 200) {
            t200 = mono_ms();
            break;
        }
        usleep(20000);
    }
    printf("  /readyz 503 after %lld ms of the freeze, 200 again %lld ms after SIGCONT\n",
           (long long)(t503 - frozen), (long long)(t200 - thawed));
    T_ASSERT(t503 >= 0 && t503 - frozen <= 1000);
    T_ASSERT(stalled_reason);
    T_EQ_INT((int)state_open, 1);
    T_ASSERT(t200 >= 0);
    for (int k = 0; k < CONNS; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    static Rec recs[MAX_RECS];
    int n = read_recs(CONNS, recs, MAX_RECS);
    static char acked[MAX_RECS * 40], nothing[MAX_RECS * 40];
    snprintf(acked, sizeof(acked), "{");
    snprintf(nothing, sizeof(nothing), "{");
    int nacked = 0, nnothing = 0, nmaybe = 0, nunavail = 0, late = 0, after = 0, after_bad = 0;
    int during = 0, during_slow = 0;
    long long worst = 0, worst_after = 0;
    for (int i = 0; i < n; i++) {
        Rec *r = &recs[i];
        long long lat = r->t1 - r->t0;
        T_ASSERT(r->kind != REC_NOREPLY);
        if (lat > worst)
            worst = lat;
        if (lat > DEADLINE + 1000) {
            printf("  late: %s %lld ms (%s)\n", r->key, lat, r->msg);
            late++;
        }
        if (r->kind == REC_RESULT) {
            arr_add(acked, sizeof(acked), r->key);
            nacked++;
        } else if (r->value == S(ERROR_CODE__UNAVAILABLE)) {
            nunavail++;
            if (strstr(r->msg, "nothing was recorded")) {
                arr_add(nothing, sizeof(nothing), r->key);
                nnothing++;
            } else if (strstr(r->msg, "may have been recorded")) {
                nmaybe++;
            } else {
                printf("  UNAVAILABLE that does not say what was recorded: %s\n", r->msg);
                T_ASSERT(!"every UNAVAILABLE says what was recorded");
            }
        } else {
            printf("  unexpected error %d: %s\n", r->value, r->msg);
            T_ASSERT(!"only results and UNAVAILABLE");
        }
        /* the breaker is open: answered at once */
        if (r->t0 >= frozen + 1500 && r->t1 <= thawed - 500) {
            during++;
            if (lat > 500)
                during_slow++;
        }
        /* 2 s after SIGCONT: answered as usual */
        if (r->t0 >= thawed + 2000) {
            after++;
            if (lat > worst_after)
                worst_after = lat;
            if (r->kind != REC_RESULT || lat > 1000) {
                printf("  after the freeze: %s %lld ms kind %d (%s)\n", r->key, lat, r->kind,
                       r->msg);
                after_bad++;
            }
        }
    }
    printf("  %d submissions: %d acknowledged, %d UNAVAILABLE (%d nothing recorded, %d maybe), "
           "worst %lld ms; %d while open (%d over 500 ms); %d from SIGCONT+2s, worst %lld ms\n",
           n, nacked, nunavail, nnothing, nmaybe, worst, during, during_slow, after, worst_after);
    T_ASSERT(n > 200);
    T_EQ_INT(late, 0);
    T_ASSERT(nunavail > 0 && during > 0);
    T_EQ_INT(during_slow, 0);
    T_ASSERT(after > 20);
    T_EQ_INT(after_bad, 0);
    /* none lost: every acknowledged submission is in PostgreSQL; "nothing was recorded" is
     * true; none doubled: one request per key and one live job per request */
    T_EQ_INT((int)count_keys(pg, acked, sizeof(acked)), nacked);
    T_EQ_INT((int)count_keys(pg, nothing, sizeof(nothing)), 0);
    char like[96];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    const char *lp[] = {like};
    T_EQ_INT((int)itest_sql_ll(pg,
                               "SELECT count(*) FROM (SELECT idempotency_key FROM requests WHERE "
                               "idempotency_key LIKE $1 GROUP BY 1 HAVING count(*) > 1) x",
                               1, lp),
             0);
    T_EQ_INT((int)itest_sql_ll(pg,
                               "SELECT count(*) FROM (SELECT j.request_id FROM jobs j JOIN "
                               "requests r ON r.id = j.request_id WHERE r.idempotency_key LIKE $1 "
                               "AND j.state IN ('offered', 'accepted', 'en_route') "
                               "GROUP BY 1 HAVING count(*) > 1) x",
                               1, lp),
             0);
    /* the metrics a person on call reads moved */
    static char m[1 << 18];
    T_EQ_INT(itest_http_get(d.http_port, "/metrics", m, sizeof(m)), 200);
    T_ASSERT(itest_metric_in(m, "careline_pg_breaker_trips_total") >= 1);
    T_EQ_INT((int)itest_metric_in(m, "careline_pg_breaker_state"), 0);
    T_ASSERT(itest_metric_in(m, "careline_submissions_total{outcome=\"UNAVAILABLE\"}") >=
             unavail0 + nunavail);
    T_ASSERT(itest_metric_in(m, "careline_submissions_total{outcome=\"QUEUED\"}") > 0);
    T_ASSERT(itest_metric_in(m, "careline_submit_seconds_count") >= n);
    T_ASSERT(itest_metric_in(m, "careline_submit_seconds_bucket{le=\"+Inf\"}") >= n);
    T_ASSERT(itest_metric_in(m, "careline_pg_statement_seconds_count") > 0);
    T_ASSERT(itest_metric_in(m, "careline_pg_queue_depth") >= 0);
    T_ASSERT(itest_metric_in(m, "careline_redis_inflight") >= 0);
    T_ASSERT(itest_metric_in(m, "careline_not_ready_total{reason=\"postgres_stalled\"}") >= 1);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A gateway that hangs up, and one whose own deadline (SubmitRequest.deadline_ms) passes,
 * while PostgreSQL is slow (a lock holds the requests table): neither leaves anything in
 * PostgreSQL once it moves again. */
static void dropped_caller_never_reaches_pg(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 91, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 1000});
    char phones[10][16];
    for (int i = 0; i < 10; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    Daemon d;
    /* no breaker: a slow table is not a stalled server, the deadline alone must act */
    itest_daemon_up(&d, (const char *const[]){"--submit_deadline_ms=3000", "--pg_stall_ms=0",
                                              "--priority_reserve_pct=0", NULL});
    char tok[64], pa[64], pb[64];
    itest_make_token(pg, "gateway", 0, tok);
    snprintf(pa, sizeof(pa), "%s", fix_key("gone"));
    snprintf(pb, sizeof(pb), "%s", fix_key("late"));
    ClConn *a = itest_login(&d, tok), *b = itest_login(&d, tok);
    long long dropped0 = itest_metric(d.http_port, "careline_submit_dropped_total");
    long long gone0 =
        itest_metric(d.http_port, "careline_submissions_total{outcome=\"CALLER_GONE\"}");
    PGconn *locker = itest_pg();
    PQclear(itest_sql(locker, "BEGIN", 0, NULL));
    PQclear(itest_sql(locker, "LOCK TABLE requests IN ACCESS EXCLUSIVE MODE", 0, NULL));
    enum { N = 40 };
    for (int pass = 0; pass < 2; pass++) {
        ClConn *c = pass ? b : a;
        for (int i = 0; i < N; i++) {
            char key[96];
            snprintf(key, sizeof(key), "%s-%d", pass ? pb : pa, i);
            IdispReq q = idisp_meal(key, phones[i % 10]);
            ClEnvelope e;
            Careline__V1__SubmitRequest m;
            Careline__V1__Location loc;
            idisp_build(&q, &e, &m, &loc);
            m.deadline_ms = pass ? 800 : 0; /* b's own, shorter than the daemon's 3 s */
            e.seq = (uint64_t)i + 1;
            T_ASSERT(cl_send(c, &e));
        }
    }
    usleep(300000); /* a's frames are read before it hangs up */
    /* a hangs up hard (RST, as a crashed gateway's kernel does): a plain close would read as
     * a half-close, which the daemon answers in full before it closes */
    struct linger lg = {1, 0};
    T_ASSERT(setsockopt(cl_fd(a), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
    cl_close(a);
    int64_t t0 = mono_ms();
    char err[256];
    for (int i = 0; i < N; i++) {
        ClEnvelope *r = cl_recv(b, 5000, err, sizeof(err));
        T_ASSERT(r);
        T_ASSERT(mono_ms() - t0 <= 800 + 1000); /* the client's deadline, not the daemon's */
        T_ASSERT(r->body_case == BODY(ERROR));
        T_EQ_INT(r->error->code, S(ERROR_CODE__UNAVAILABLE));
        if (!strstr(r->error->message, "nothing was recorded"))
            printf("  %s\n", r->error->message);
        T_ASSERT(strstr(r->error->message, "nothing was recorded"));
        cl_free(r);
    }
    usleep(300000);
    PQclear(itest_sql(locker, "ROLLBACK", 0, NULL));
    PQfinish(locker);
    /* PostgreSQL moves again: whatever was still held is dropped, nothing is written */
    long long idle = -1;
    for (int i = 0; i < 300 && idle != 0; i++) {
        usleep(20000);
        idle = itest_metric(d.http_port, "careline_pg_running") +
               itest_metric(d.http_port, "careline_pg_queue_depth");
    }
    usleep(500000);
    char like[96];
    snprintf(like, sizeof(like), "%s-%%", pa);
    long gone_rows =
        idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1", like);
    snprintf(like, sizeof(like), "%s-%%", pb);
    long late_rows =
        idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1", like);
    long long dropped = itest_metric(d.http_port, "careline_submit_dropped_total") - dropped0;
    long long gone =
        itest_metric(d.http_port, "careline_submissions_total{outcome=\"CALLER_GONE\"}") - gone0;
    printf("  rows: hung up %ld, past deadline %ld; steps dropped before PostgreSQL %lld; "
           "caller gone %lld\n",
           gone_rows, late_rows, dropped, gone);
    T_EQ_INT((int)gone_rows, 0);
    T_EQ_INT((int)late_rows, 0);
    T_ASSERT(dropped >= N); /* most never even reached the lookup */
    T_EQ_INT((int)gone, N);
    /* and the daemon serves as before */
    ClEnvelope *r = idisp_submit(&d, b,
                                 &(IdispReq){.key = fix_key("gone-after"),
                                             .phone = phones[0],
                                             .kind = S(SERVICE_KIND__MEAL_DELIVERY),
                                             .slot = S(MEAL_SLOT__LUNCH),
                                             .date = fix_tomorrow()});
    T_ASSERT(r && r->body_case == BODY(SUBMIT_RESULT));
    cl_free(r);
    cl_close(b);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static long open_sessions(PGconn *pg, const char *daemon)
{
    return idisp_sql_long(pg,
                          "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1 AND "
                          "disconnected_at IS NULL",
                          daemon);
}

static void lease_closes_dead_daemons_sessions(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 92, &f);
    int64_t s1 = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5});
    int64_t s2 = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5, .dlat = 0.01});
    char ida[96], idb[96], opta[128], optb[128];
    snprintf(ida, sizeof(ida), "%s", fix_key("lease-a"));
    snprintf(idb, sizeof(idb), "%s", fix_key("lease-b"));
    snprintf(opta, sizeof(opta), "--server_id=%s", ida);
    snprintf(optb, sizeof(optb), "--server_id=%s", idb);
    Daemon a, b;
    itest_daemon_up(&a, (const char *const[]){opta, "--session_lease_ms=1000", NULL});
    itest_daemon_up(&b, (const char *const[]){optb, "--session_lease_ms=1000", NULL});
    IstConsole *ka = ist_open(&a, pg, s1), *kb = ist_open(&b, pg, s2);
    long oa = 0, ob = 0;
    for (int i = 0; i < 250 && (oa != 1 || ob != 1); i++) { /* rows are written async */
        usleep(20000);
        oa = open_sessions(pg, ida);
        ob = open_sessions(pg, idb);
    }
    T_EQ_INT((int)oa, 1);
    T_EQ_INT((int)ob, 1);
    T_ASSERT(itest_metric(b.http_port, "careline_consoles_connected") == 1);
    kill(a.pid, SIGKILL);
    itest_daemon_stop(&a, 5000);
    ist_close(ka);
    T_EQ_INT((int)open_sessions(pg, ida), 1); /* the crash left it open */
    const char *pa[] = {ida};
    long long left = itest_wait_sql_ll(pg,
                                       "SELECT count(*) FROM terminal_sessions WHERE daemon_id = "
                                       "$1 AND disconnected_at IS NULL",
                                       1, pa, 0, 10000);
    T_EQ_INT((int)left, 0);
    T_EQ_INT((int)itest_sql_ll(pg,
                               "SELECT count(*) FROM terminal_sessions s JOIN daemon_leases l "
                               "ON l.daemon_id = s.daemon_id WHERE s.daemon_id = $1 AND "
                               "s.close_reason = 'lease_expired' AND s.disconnected_at = "
                               "greatest(s.connected_at, l.renewed_at)",
                               1, pa),
             1);
    usleep(2500000); /* more than two lease periods: the live daemon's session stays open */
    T_EQ_INT((int)open_sessions(pg, idb), 1);
    ist_close(kb);
    const char *pb[] = {idb};
    T_EQ_INT((int)itest_wait_sql_ll(pg,
                                    "SELECT count(*) FROM terminal_sessions WHERE daemon_id = $1 "
                                    "AND close_reason = 'disconnected'",
                                    1, pb, 1, 5000),
             1);
    itest_daemon_down(&b);
    PQfinish(pg);
}

/* The sweep sends nothing while the breaker is open, and runs at once when it closes. The
 * freeze ends just after a periodic sweep was skipped: the next periodic one is a whole
 * reconcile_interval_ms (4 s) away, so a sweep within 1 s of the close is the resumption. */
static void sweep_pauses_while_breaker_open(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 93, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5});
    Daemon d;
    /* a long query timeout keeps the frozen connections up: only the breaker stops sweeps */
    itest_daemon_up(&d, (const char *const[]){"--reconcile_interval_ms=4000",
                                              "--pg_query_timeout_ms=30000",
                                              "--orphan_grace_ms=70000", NULL});
    IstConsole *k = ist_open(&d, pg, st);
    long long paused0 = itest_metric(d.http_port, "careline_sweeps_paused_total");
    T_ASSERT(paused0 >= 0 && itest_metric(d.http_port, "careline_sweeps_total") >= 0);
    PgPids pp;
    pg_freeze(&pp);
    int64_t frozen = mono_ms();
    pid_t guard = pg_guardian(&pp, frozen + 40000);
    long long state = -1;
    while (mono_ms() < frozen + 5000 &&
           (state = itest_metric(d.http_port, "careline_pg_breaker_state")) != 1)
        usleep(20000);
    T_EQ_INT((int)state, 1);
    /* a StationStatus is answered at once, saying nothing was recorded */
    Careline__V1__StationStatus m = CARELINE__V1__STATION_STATUS__INIT;
    m.open = true;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATION_STATUS);
    e.station_status = &m;
    char err[128];
    int64_t t0 = mono_ms();
    ClEnvelope *r = cl_call(k->c, &e, 5000, err, sizeof(err), ist_on_push, k);
    T_ASSERT(r && r->body_case == BODY(ERROR) && r->error->code == S(ERROR_CODE__UNAVAILABLE));
    T_ASSERT(strstr(r->error->message, "nothing was recorded") != NULL);
    T_ASSERT(mono_ms() - t0 < 1000);
    cl_free(r);
    long long sent_open = itest_metric(d.http_port, "careline_sweeps_total");
    long long paused = paused0;
    /* two periodic sweeps fall into the freeze; a kick (dispatch_kick) pushes the periodic
     * timer back by an interval, hence the generous bound */
    while (mono_ms() < frozen + 30000 &&
           (paused = itest_metric(d.http_port, "careline_sweeps_paused_total")) < paused0 + 2)
        usleep(20000);
    long long sent_frozen = itest_metric(d.http_port, "careline_sweeps_total");
    pg_signal(&pp, SIGCONT);
    int64_t thawed = mono_ms();
    kill(guard, SIGKILL);
    waitpid(guard, NULL, 0);
    printf("  sweeps sent %lld -> %lld while the breaker was open; %lld skipped\n", sent_open,
           sent_frozen, paused - paused0);
    T_ASSERT(paused >= paused0 + 2);
    T_EQ_INT((int)sent_frozen, (int)sent_open);
    int64_t closed = -1, ran = -1;
    while (mono_ms() < thawed + 10000 && (closed < 0 || ran < 0)) {
        if (closed < 0 && itest_metric(d.http_port, "careline_pg_breaker_state") == 0)
            closed = mono_ms();
        if (ran < 0 && itest_metric(d.http_port, "careline_sweeps_total") > sent_frozen)
            ran = mono_ms();
        usleep(20000);
    }
    printf("  breaker closed %lld ms after SIGCONT, the sweep ran %lld ms after SIGCONT\n",
           (long long)(closed - thawed), (long long)(ran - thawed));
    T_ASSERT(closed >= 0 && ran >= 0);
    T_ASSERT(ran - closed <= 1000); /* the next periodic sweep was ~4 s away */
    T_EQ_INT((int)ist_sql_long(
                 pg, "SELECT count(*) FROM station_status_events WHERE station_id = $1", st),
             0);
    ist_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"pg_stall_freeze_under_load", freeze_under_load, 120},
        {"pg_stall_dropped_caller_never_reaches_pg", dropped_caller_never_reaches_pg, 60},
        {"pg_stall_lease_closes_dead_daemons_sessions", lease_closes_dead_daemons_sessions, 60},
        {"pg_stall_sweep_pauses_while_breaker_open", sweep_pauses_while_breaker_open, 90},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
