/*
 * test_pg: the nonblocking PgPool against a real PostgreSQL (CARELINE_PG_ADMIN): round
 * trips, queueing, timeouts, pg_terminate_backend, loop latency while the server is slow, and
 * LISTEN/NOTIFY across a reconnect; and pgbatch's group commit on top of it. Every wait is bounded.
 * Our sessions carry a unique application_name so terminating them never touches other tests on the
 * same server.
 */
#include "common/log.h"
#include "store/pg.h"
#include "store/pgbatch.h"
#include "iloop.h"
#include "t.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

static bool pool_ready(void *arg)
{
    return pg_pool_ready(arg);
}

typedef struct {
    int target;
    int done;
} Count;

static bool count_reached(void *arg)
{
    Count *c = arg;
    return c->done >= c->target;
}

static char appname[64];

/* The admin conninfo plus our unique application_name. */
static const char *pool_conninfo(const char *tag)
{
    static char buf[512];
    snprintf(appname, sizeof(appname), "tpg_%d_%s", (int)getpid(), tag);
    snprintf(buf, sizeof(buf), "%s application_name=%s", t_env("CARELINE_PG_ADMIN"), appname);
    return buf;
}

/* Blocking admin statement (fine in a test, never in the daemon). Returns rows affected/seen. */
static int admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(t_env("CARELINE_PG_ADMIN"));
    if (PQstatus(c) != CONNECTION_OK)
        t_fail(__FILE__, __LINE__, "admin connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        t_fail(__FILE__, __LINE__, "admin %s: %s", sql, PQerrorMessage(c));
    int n = st == PGRES_TUPLES_OK ? PQntuples(r) : atoi(PQcmdTuples(r));
    PQclear(r);
    PQfinish(c);
    return n;
}

static int terminate_ours(void)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE application_name = '%s'",
             appname);
    return admin_exec(sql);
}

typedef struct {
    bool done;
    bool had_res;
    ExecStatusType st;
    char val[128];
    char err[256];
    int64_t at;
} One;

static bool one_done(void *arg)
{
    return ((One *)arg)->done;
}

static void one_cb(PGresult *res, const char *err, void *arg)
{
    One *o = arg;
    T_ASSERT(!o->done); /* exactly once */
    o->done = true;
    o->at = util_now_ms();
    o->had_res = res != NULL;
    if (res) {
        T_ASSERT(err == NULL);
        o->st = PQresultStatus(res);
        if (o->st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0)
            snprintf(o->val, sizeof(o->val), "%s", PQgetvalue(res, 0, 0));
        else if (o->st == PGRES_FATAL_ERROR)
            snprintf(o->val, sizeof(o->val), "%s", PQresultErrorField(res, PG_DIAG_SQLSTATE));
    } else {
        T_ASSERT(err != NULL);
        snprintf(o->err, sizeof(o->err), "%s", err);
    }
}

static void roundtrip(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("rt"), 2, 3000, 16);
    T_ASSERT(p);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));

    One a = {0}, n = {0}, e = {0};
    const char *params[2] = {"41", "h\xc3\xa9llo"};
    T_ASSERT(pg_query(p, "SELECT ($1::int + 1)::text || ' ' || $2::text", 2, params, one_cb, &a));
    const char *nullp[1] = {NULL};
    T_ASSERT(pg_query(p, "SELECT ($1::text IS NULL)::text", 1, nullp, one_cb, &n));
    T_ASSERT(pg_query(p, "SELECT 1/0", 0, NULL, one_cb, &e));
    T_EQ_INT(pg_pool_inflight(p), 3);
    T_ASSERT(iloop_wait(b, one_done, &a, 5000) && iloop_wait(b, one_done, &n, 5000) &&
             iloop_wait(b, one_done, &e, 5000));
    T_ASSERT(a.had_res);
    T_EQ_STR(a.val, "42 h\xc3\xa9llo");
    T_EQ_STR(n.val, "true");
    T_ASSERT(e.had_res); /* an SQL error is a result, not a link error */
    T_EQ_INT(e.st, PGRES_FATAL_ERROR);
    T_EQ_STR(e.val, "22012");
    T_EQ_INT(pg_pool_inflight(p), 0);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

typedef struct {
    Count count;
    int bad;
    int order_max;
} Many;

typedef struct {
    Many *m;
    int i;
} ManyArg;

static void many_cb(PGresult *res, const char *err, void *arg)
{
    ManyArg *ma = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || atoi(PQgetvalue(res, 0, 0)) != ma->i) {
        ma->m->bad++;
        printf("  query %d: %s\n", ma->i, err ? err : "wrong result");
    }
    ma->m->count.done++;
}

static void many_concurrent(void)
{
    enum { N = 200 };
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("many"), 3, 5000, N);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    Many m = {.count = {N, 0}};
    static ManyArg args[N];
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *params[1] = {v};
        args[i] = (ManyArg){&m, i};
        T_ASSERT(pg_query(p, "SELECT $1::int, pg_sleep(0.001)", 1, params, many_cb, &args[i]));
    }
    T_EQ_INT(pg_pool_inflight(p), N);
    T_ASSERT(iloop_wait(b, count_reached, &m.count, 20000));
    T_EQ_INT(m.bad, 0);
    T_EQ_INT(pg_pool_inflight(p), 0);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

static void count_cb(PGresult *res, const char *err, void *arg)
{
    (void)err;
    T_ASSERT(res && PQresultStatus(res) == PGRES_TUPLES_OK);
    ((Count *)arg)->done++;
}

static void queue_full(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("qfull"), 1, 5000, 5);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    Count c = {5, 0};
    for (int i = 0; i < 5; i++)
        T_ASSERT(pg_query(p, "SELECT pg_sleep(0.05)", 0, NULL, count_cb, &c));
    T_ASSERT(!pg_query(p, "SELECT 1", 0, NULL, count_cb, &c)); /* queue full: no callback */
    T_ASSERT(iloop_wait(b, count_reached, &c, 5000));
    iloop_run_ms(b, 50);
    T_EQ_INT(c.done, 5);
    T_ASSERT(pg_query(p, "SELECT 1", 0, NULL, count_cb, &c)); /* room again */
    c.target = 6;
    T_ASSERT(iloop_wait(b, count_reached, &c, 5000));
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

typedef struct {
    PgPool *p;
    One first, second;
    bool second_queued;
} Timeout;

static void timeout_first_cb(PGresult *res, const char *err, void *arg)
{
    Timeout *t = arg;
    one_cb(res, err, &t->first);
    /* re-entrant: queued while the connection is reconnecting */
    t->second_queued = pg_query(t->p, "SELECT 'after'", 0, NULL, one_cb, &t->second);
}

static void query_timeout(void)
{
    struct event_base *b = event_base_new();
    Timeout t = {0};
    t.p = pg_pool_new(b, pool_conninfo("tmo"), 1, 300, 8);
    T_ASSERT(iloop_wait(b, pool_ready, t.p, 5000));
    int64_t t0 = util_now_ms();
    T_ASSERT(pg_query(t.p, "SELECT pg_sleep(5)", 0, NULL, timeout_first_cb, &t));
    T_ASSERT(iloop_wait(b, one_done, &t.first, 3000));
    int64_t took = t.first.at - t0;
    T_ASSERT(!t.first.had_res);
    T_ASSERT(strstr(t.first.err, "timed out") != NULL);
    T_ASSERT(took >= 250 && took < 1000);
    T_ASSERT(t.second_queued);
    T_ASSERT(iloop_wait(b, one_done, &t.second, 3000));
    if (!t.second.had_res)
        t_fail(__FILE__, __LINE__, "second query failed: %s", t.second.err);
    T_EQ_STR(t.second.val, "after");
    pg_pool_free(t.p);
    event_base_free(b);
    t_leak_check();
}

static void no_server(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, "host=127.0.0.1 port=1 dbname=x user=x", 2, 300, 8);
    One o = {0};
    T_ASSERT(pg_query(p, "SELECT 1", 0, NULL, one_cb, &o));
    T_ASSERT(iloop_wait(b, one_done, &o, 3000));
    T_ASSERT(!o.had_res);
    T_ASSERT(strstr(o.err, "timed out") != NULL);
    T_ASSERT(!pg_pool_ready(p));
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

static void terminate_backend(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("term"), 2, 5000, 32);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    iloop_run_ms(b, 100); /* let both connections come up */
    One slow = {0};
    T_ASSERT(pg_query(p, "SELECT pg_sleep(3)", 0, NULL, one_cb, &slow));
    iloop_run_ms(b, 300);
    T_ASSERT(!slow.done);
    T_ASSERT(terminate_ours() >= 2);
    int64_t t0 = util_now_ms();
    T_ASSERT(iloop_wait(b, one_done, &slow, 2000));
    T_ASSERT(!slow.had_res); /* the link died: err, no result */
    T_ASSERT(slow.at - t0 < 1000);
    printf("  in-flight query failed with: %s\n", slow.err);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    iloop_run_ms(b, 300); /* both reconnect (backoff 100-125 ms) */
    Count c = {10, 0};
    for (int i = 0; i < 10; i++)
        T_ASSERT(pg_query(p, "SELECT 1", 0, NULL, count_cb, &c));
    T_ASSERT(iloop_wait(b, count_reached, &c, 5000));
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

typedef struct {
    int64_t last;
    int64_t max_gap;
    int ticks;
} Ticker;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    Ticker *t = arg;
    int64_t now = util_now_ms();
    (void)fd;
    (void)what;
    if (t->last && now - t->last > t->max_gap)
        t->max_gap = now - t->last;
    t->last = now;
    t->ticks++;
}

static void loop_not_blocked(void)
{
    struct event_base *b = event_base_new();
    Ticker tk = {0};
    struct event *tick = event_new(b, -1, EV_PERSIST, tick_cb, &tk);
    struct timeval tv = {0, 20000};
    event_add(tick, &tv);
    PgPool *p = pg_pool_new(b, pool_conninfo("lat"), 1, 5000, 8);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    One o = {0};
    tk.max_gap = 0;
    tk.ticks = 0;
    T_ASSERT(pg_query(p, "SELECT pg_sleep(1)", 0, NULL, one_cb, &o));
    T_ASSERT(iloop_wait(b, one_done, &o, 5000));
    T_ASSERT(o.had_res && o.st == PGRES_TUPLES_OK);
    printf("  %d ticks during pg_sleep(1), max gap %lld ms\n", tk.ticks, (long long)tk.max_gap);
    T_ASSERT(tk.max_gap < 200);
    T_ASSERT(tk.ticks >= 30);
    event_free(tick);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

typedef struct {
    int resyncs;
    int msgs;
    char last[64];
} Listen;

static void listen_cb(const char *channel, const char *payload, void *arg)
{
    Listen *l = arg;
    (void)channel;
    if (!payload) {
        l->resyncs++;
        return;
    }
    l->msgs++;
    snprintf(l->last, sizeof(l->last), "%s", payload);
}

static bool resyncs_at_least_1(void *arg)
{
    return ((Listen *)arg)->resyncs >= 1;
}

static bool resyncs_at_least_2(void *arg)
{
    return ((Listen *)arg)->resyncs >= 2;
}

static bool msgs_1(void *arg)
{
    return ((Listen *)arg)->msgs >= 1;
}

static bool msgs_2(void *arg)
{
    return ((Listen *)arg)->msgs >= 2;
}

static void listen_notify(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("lsn"), 1, 2000, 8);
    char chan[64], sql[256];
    snprintf(chan, sizeof(chan), "Careline_T_%d", (int)getpid()); /* mixed case: quoted */
    Listen l = {0};
    pg_pool_listen(p, chan, listen_cb, &l);
    T_ASSERT(iloop_wait(b, resyncs_at_least_1, &l, 5000));
    snprintf(sql, sizeof(sql), "SELECT pg_notify('%s', 'hello')", chan);
    admin_exec(sql);
    T_ASSERT(iloop_wait(b, msgs_1, &l, 3000));
    T_EQ_STR(l.last, "hello");

    T_ASSERT(terminate_ours() >= 2); /* pool and listen connections */
    T_ASSERT(iloop_wait(b, resyncs_at_least_2, &l, 5000));
    T_EQ_INT(l.resyncs, 2);
    snprintf(sql, sizeof(sql), "SELECT pg_notify('%s', 'again')", chan);
    admin_exec(sql);
    T_ASSERT(iloop_wait(b, msgs_2, &l, 3000));
    T_EQ_STR(l.last, "again");
    T_EQ_INT(l.msgs, 2);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

typedef struct {
    PgPool *p;
    int called;
    int shutting;
    int requery_ok;
} FreeCtx;

static void free_cb(PGresult *res, const char *err, void *arg)
{
    FreeCtx *f = arg;
    f->called++;
    if (!res && err && strcmp(err, "shutting down") == 0)
        f->shutting++;
    if (pg_query(f->p, "SELECT 1", 0, NULL, free_cb, f)) /* refused while shutting down */
        f->requery_ok++;
}

static void free_fails_pending(void)
{
    struct event_base *b = event_base_new();
    FreeCtx f = {0};
    f.p = pg_pool_new(b, pool_conninfo("free"), 1, 5000, 8);
    T_ASSERT(iloop_wait(b, pool_ready, f.p, 5000));
    T_ASSERT(pg_query(f.p, "SELECT pg_sleep(2)", 0, NULL, free_cb, &f));
    iloop_run_ms(b, 100);
    for (int i = 0; i < 3; i++)
        T_ASSERT(pg_query(f.p, "SELECT 1", 0, NULL, free_cb, &f));
    T_EQ_INT(pg_pool_inflight(f.p), 4);
    pg_pool_free(f.p);
    T_EQ_INT(f.called, 4);
    T_EQ_INT(f.shutting, 4);
    T_EQ_INT(f.requery_ok, 0);
    event_base_free(b);
    t_leak_check();
}

/* ---- pgbatch ------------------------------------------------------------------------------ */

/* Echoes each element's x with the transaction it ran in; x "bad" makes the statement fail. */
#define BATCH_SQL                                                                                  \
    "SELECT (t.ord - 1)::int AS idx, (t.v->>'x')::int, txid_current() "                            \
    "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(v, ord)"

typedef struct {
    int calls;
    int x;        /* echoed back */
    long long tx; /* its transaction */
    char err[128];
} BItem;

static void bitem_cb(PGresult *res, int row, const char *err, void *arg)
{
    BItem *it = arg;
    it->calls++;
    if (res) {
        T_ASSERT(err == NULL);
        it->x = atoi(PQgetvalue(res, row, 1));
        it->tx = atoll(PQgetvalue(res, row, 2));
    } else {
        T_ASSERT(err != NULL);
        snprintf(it->err, sizeof(it->err), "%s", err);
    }
}

typedef struct {
    BItem *items;
    int n;
} BAll;

static bool all_called(void *arg)
{
    BAll *a = arg;
    for (int i = 0; i < a->n; i++)
        if (a->items[i].calls == 0)
            return false;
    return true;
}

/* Items arriving while a batch runs leave together: 120 items, one batch in flight at a time
 * and at most 50 a statement, take 1 + 50 + 50 + 19 transactions, each item answered once
 * with its own row. */
static void batch_groups(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bg"), 2, 5000, 16);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    PgBatch *q = pgbatch_new(p, BATCH_SQL, 1, 50, 5000);
    static BItem items[120];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 120; i++)
        pgbatch_add(q, json_pack("{si}", "x", 1000 + i), bitem_cb, &items[i]);
    T_EQ_INT(pgbatch_waiting(q), 119); /* the first left at once */
    BAll all = {items, 120};
    T_ASSERT(iloop_wait(b, all_called, &all, 10000));
    int ntx = 0;
    for (int i = 0; i < 120; i++) {
        T_EQ_INT(items[i].calls, 1);
        T_EQ_INT(items[i].x, 1000 + i);
        if (i == 0 || items[i].tx != items[i - 1].tx)
            ntx++;
    }
    T_EQ_INT(ntx, 4);
    T_ASSERT(items[0].tx != items[1].tx && items[1].tx == items[50].tx);
    T_ASSERT(items[51].tx == items[100].tx && items[101].tx == items[119].tx);
    pgbatch_free(q);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

/* One bad element fails only itself: its batch is retried one by one. */
static void batch_bad_element(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bb"), 2, 5000, 64);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    PgBatch *q = pgbatch_new(p, BATCH_SQL, 1, 50, 5000);
    static BItem items[20];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 20; i++)
        pgbatch_add(q, i == 7 ? json_pack("{ss}", "x", "bad") : json_pack("{si}", "x", i), bitem_cb,
                    &items[i]);
    BAll all = {items, 20};
    T_ASSERT(iloop_wait(b, all_called, &all, 10000));
    for (int i = 0; i < 20; i++) {
        T_EQ_INT(items[i].calls, 1);
        if (i == 7) {
            T_ASSERT(strstr(items[i].err, "invalid input syntax") != NULL);
        } else {
            T_EQ_STR(items[i].err, "");
            T_EQ_INT(items[i].x, i);
        }
    }
    pgbatch_free(q);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

/* A lone item failing with a serialization failure (as careline_retry_alone raises when a key
 * was recorded concurrently) is run again with a fresh snapshot instead of failing: x = 7
 * fails its batch, then its first lone run, and succeeds on the second. */
#define FLAKY_SQL                                                                                  \
    "SELECT (t.ord - 1)::int AS idx, (t.v->>'x')::int, txid_current(), "                           \
    "CASE WHEN (t.v->>'x')::int = 7 THEN CASE WHEN nextval('tpg_flaky') <= 2 THEN "                \
    "careline_retry_alone('flaky') END END "                                                       \
    "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(v, ord)"

static void batch_reruns_serialization_failure(void)
{
    admin_exec("DROP SEQUENCE IF EXISTS tpg_flaky; CREATE SEQUENCE tpg_flaky");
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("br"), 2, 5000, 64);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    PgBatch *q = pgbatch_new(p, FLAKY_SQL, 1, 50, 5000);
    static BItem items[10];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 10; i++)
        pgbatch_add(q, json_pack("{si}", "x", i), bitem_cb, &items[i]);
    BAll all = {items, 10};
    T_ASSERT(iloop_wait(b, all_called, &all, 10000));
    for (int i = 0; i < 10; i++) {
        T_EQ_INT(items[i].calls, 1);
        T_EQ_STR(items[i].err, "");
        T_EQ_INT(items[i].x, i);
    }
    pgbatch_free(q);
    pg_pool_free(p);
    event_base_free(b);
    admin_exec("DROP SEQUENCE tpg_flaky");
    t_leak_check();
}

/* While a statement waits for the pool's only connection, items that arrive do not leave as
 * batches of their own (each would wait too, closed to later items): the first batch goes
 * at once, the other 30 items together after it, although four batches may run at a time. */
static void batch_waits_for_free_connection(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bw"), 1, 5000, 16);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    One slow = {0};
    T_ASSERT(pg_query(p, "SELECT pg_sleep(0.3)::text", 0, NULL, one_cb, &slow));
    PgBatch *q = pgbatch_new(p, BATCH_SQL, 4, 50, 5000);
    static BItem items[31];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 31; i++) {
        pgbatch_add(q, json_pack("{si}", "x", i), bitem_cb, &items[i]);
        iloop_run_ms(b, 5); /* arriving one by one */
    }
    BAll all = {items, 31};
    T_ASSERT(iloop_wait(b, all_called, &all, 10000));
    T_ASSERT(slow.done);
    int ntx = 1;
    for (int i = 1; i < 31; i++) {
        T_EQ_INT(items[i].calls, 1);
        T_EQ_INT(items[i].x, i);
        ntx += items[i].tx != items[i - 1].tx;
    }
    T_EQ_INT(ntx, 2);
    pgbatch_free(q);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

/* Freeing the queue answers what waits at once and what runs when the pool drops it. */
static void batch_free_fails_waiting(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bf"), 1, 5000, 16);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    PgBatch *q = pgbatch_new(p, BATCH_SQL, 1, 50, 5000);
    static BItem items[5];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 5; i++)
        pgbatch_add(q, json_pack("{si}", "x", i), bitem_cb, &items[i]);
    pgbatch_free(q);
    for (int i = 1; i < 5; i++) {
        T_EQ_INT(items[i].calls, 1);
        T_EQ_STR(items[i].err, "shutting down");
    }
    T_EQ_INT(items[0].calls, 0); /* running: the pool still owns it */
    pg_pool_free(p);
    T_EQ_INT(items[0].calls, 1);
    T_ASSERT(items[0].err[0] != '\0');
    event_base_free(b);
    t_leak_check();
}

/* A batch that failed because the database did not answer (the pool's timeout) is not run
 * again item by item: every item gets the error, and no statement beyond the batches runs. */
#define SLOW_BATCH_SQL                                                                             \
    "SELECT (t.ord - 1)::int AS idx, (t.v->>'x')::int, txid_current(), pg_sleep(2) "               \
    "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(v, ord)"

static void batch_unreachable_not_rerun(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bu"), 1, 300, 16);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    PgBatch *q = pgbatch_new(p, SLOW_BATCH_SQL, 1, 50, 5000);
    static BItem items[5];
    memset(items, 0, sizeof(items));
    uint64_t before = pg_pool_queries(p);
    int64_t t0 = util_now_ms();
    for (int i = 0; i < 5; i++) /* the first leaves alone at once, the other four together */
        pgbatch_add(q, json_pack("{si}", "x", i), bitem_cb, &items[i]);
    BAll all = {items, 5};
    T_ASSERT(iloop_wait(b, all_called, &all, 10000));
    int64_t took = util_now_ms() - t0;
    for (int i = 0; i < 5; i++) {
        T_EQ_INT(items[i].calls, 1);
        T_ASSERT(strstr(items[i].err, "timed out") != NULL);
    }
    printf("  5 items failed in %lld ms with %llu statements\n", (long long)took,
           (unsigned long long)(pg_pool_queries(p) - before));
    T_EQ_INT((int)(pg_pool_queries(p) - before), 2); /* the two batches, no lone re-runs */
    pgbatch_free(q);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

static bool pool_unavailable(void *arg)
{
    return !pg_pool_available(arg);
}

static bool pool_available(void *arg)
{
    return pg_pool_available(arg);
}

/* The breaker on a real server: the only connection busy and no answer for stall_ms opens
 * it; the statement's answer closes it again. */
static void breaker_opens_and_closes(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bk"), 1, 5000, 16);
    pg_pool_set_breaker(p, 200, 100);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    T_ASSERT(pg_pool_available(p));
    One slow = {0};
    T_ASSERT(pg_query(p, "SELECT pg_sleep(1.2)::text", 0, NULL, one_cb, &slow));
    T_ASSERT(iloop_wait(b, pool_unavailable, p, 1000)); /* 200 ms + a tick */
    T_EQ_INT((int)pg_pool_breaker_trips(p), 1);
    T_ASSERT(pg_pool_breaker_state(p) != BREAKER_CLOSED);
    T_ASSERT(!slow.done);
    T_ASSERT(iloop_wait(b, pool_available, p, 5000));
    T_ASSERT(slow.done);
    T_EQ_INT((int)pg_pool_breaker_state(p), BREAKER_CLOSED);
    iloop_run_ms(b, 400); /* answered and idle again: no new trip */
    T_EQ_INT((int)pg_pool_breaker_trips(p), 1);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

/* One long statement on a server that answers is no stall: the probe the quiet time sends
 * runs on the idle connection and is answered at once, so the breaker stays closed. */
static void breaker_long_statement_no_trip(void)
{
    struct event_base *b = event_base_new();
    PgPool *p = pg_pool_new(b, pool_conninfo("bl"), 2, 5000, 16);
    pg_pool_set_breaker(p, 200, 100);
    T_ASSERT(iloop_wait(b, pool_ready, p, 5000));
    One slow = {0};
    T_ASSERT(pg_query(p, "SELECT pg_sleep(1.2)::text", 0, NULL, one_cb, &slow));
    for (int i = 0; i < 500 && !slow.done; i++) { /* bounded: 5 s */
        iloop_run_ms(b, 10);
        T_ASSERT(pg_pool_available(p));
    }
    T_ASSERT(slow.done);
    T_EQ_INT((int)pg_pool_breaker_trips(p), 0);
    pg_pool_free(p);
    event_base_free(b);
    t_leak_check();
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"pg_roundtrip", roundtrip, 20},
        {"pg_many_concurrent", many_concurrent, 40},
        {"pg_queue_full", queue_full, 20},
        {"pg_query_timeout", query_timeout, 20},
        {"pg_no_server", no_server, 20},
        {"pg_terminate_backend", terminate_backend, 30},
        {"pg_loop_not_blocked", loop_not_blocked, 20},
        {"pg_listen_notify", listen_notify, 30},
        {"pg_free_fails_pending", free_fails_pending, 20},
        {"pgbatch_groups", batch_groups, 30},
        {"pgbatch_bad_element", batch_bad_element, 30},
        {"pgbatch_reruns_serialization_failure", batch_reruns_serialization_failure, 30},
        {"pgbatch_free_fails_waiting", batch_free_fails_waiting, 20},
        {"pgbatch_waits_for_free_connection", batch_waits_for_free_connection, 30},
        {"pgbatch_unreachable_not_rerun", batch_unreachable_not_rerun, 30},
        {"pg_breaker_opens_and_closes", breaker_opens_and_closes, 30},
        {"pg_breaker_long_statement_no_trip", breaker_long_statement_no_trip, 30},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
