/*
 * pg: the pool (STYLE "libpq in the event loop", option A). Queries wait in one bounded FIFO
 * for an idle connection; FIFO order is deadline order, so one timer at the head's deadline
 * times out the whole queue. Each connection runs one query at a time (pg_conn.c), the
 * dedicated LISTEN connection lives in pg_listen.c.
 */
#include "store/pg_int.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pgpool_query_free(PgQuery *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

void pgpool_query_finish(PgPool *p, PgQuery *q, PGresult *res, const char *err)
{
    if (q->sent_ms && p->metrics)
        metrics_hist_observe(&p->metrics->pg_seconds,
                             (double)(util_now_ms() - q->sent_ms) / 1000.0);
    p->cb_sent = q->sent_ms != 0;
    p->cb_depth++;
    if (q->cb)
        q->cb(res, err, q->arg);
    p->cb_depth--;
    pgpool_query_free(q);
}

static PgQuery *pgpool_queue_pop(PgPool *p)
{
    PgQuery *q = p->qhead;
    if (q) {
        p->qhead = q->next;
        if (!p->qhead)
            p->qtail = NULL;
        q->next = NULL;
        p->qlen--;
    }
    return q;
}

static void pgpool_queue_arm(PgPool *p)
{
    if (p->qhead && !evtimer_pending(p->qtimer, NULL)) {
        int64_t left = p->qhead->deadline - util_now_ms();
        util_timer_ms(p->qtimer, left > 0 ? left : 0);
    }
}

static void pgpool_queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    PgPool *p = arg;
    char err[96];
    (void)fd;
    (void)what;

    snprintf(err, sizeof(err), "query timed out after %d ms waiting for a database connection",
             p->timeout_ms);
    while (p->qhead && p->qhead->deadline <= util_now_ms())
        pgpool_query_finish(p, pgpool_queue_pop(p), NULL, err);
    pgpool_dispatch(p); /* also the zero-delay kick from pg_query() */
}

static PgConn *pgpool_idle_conn(PgPool *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == PGC_IDLE)
            return &p->conns[i];
    return NULL;
}

void pgpool_dispatch(PgPool *p)
{
    PgConn *c;
    while (!p->closing && p->qhead && (c = pgpool_idle_conn(p)) != NULL) {
        if (p->qhead->deadline <= util_now_ms()) {
            /* starting it would only drop a healthy link at once */
            pgpool_queue_timer_cb(-1, 0, p);
            return;
        }
        pgconn_start(c, pgpool_queue_pop(p));
    }
    pgpool_queue_arm(p);
}

PgPool *pg_pool_new(struct event_base *base, const char *conninfo, int size, int query_timeout_ms,
                    int max_queue)
{
    if (!base || !conninfo || size < 1 || query_timeout_ms < 1 || max_queue < 0) {
        log_error("pg_pool_new: bad arguments");
        return NULL;
    }
    PgPool *p = xcalloc(1, sizeof(*p));
    p->base = base;
    p->conninfo = xstrdup(conninfo);
    p->size = size;
    p->timeout_ms = query_timeout_ms;
    p->max_queue = max_queue;
    p->rng = util_rng_seed(p);
    breaker_init(&p->breaker, 1);
    if (!strstr(conninfo, "options"))
        snprintf(p->options, sizeof(p->options), "-c statement_timeout=%d",
                 query_timeout_ms + 1000);
    p->qtimer = evtimer_new(base, pgpool_queue_timer_cb, p);
    ASSERT(p->qtimer);
    p->conns = xcalloc((size_t)size, sizeof(*p->conns));
    for (int i = 0; i < size; i++)
        pgconn_init(p, &p->conns[i], i);
    for (int i = 0; i < size; i++)
        pgconn_connect(&p->conns[i]);
    return p;
}

bool pg_query(PgPool *p, const char *sql, int nparams, const char *const *params, PgResultCb cb,
              void *arg)
{
    ASSERT(p && sql && nparams >= 0);
    if (p->closing || p->qlen >= (size_t)p->max_queue)
        return false;
    PgQuery *q = xcalloc(1, sizeof(*q));
    q->sql = xstrdup(sql);
    q->nparams = nparams;
    if (nparams > 0) {
        q->params = xcalloc((size_t)nparams, sizeof(char *));
        for (int i = 0; i < nparams; i++)
            q->params[i] = params && params[i] ? xstrdup(params[i]) : NULL;
    }
    q->cb = cb;
    q->arg = arg;
    q->deadline = util_now_ms() + p->timeout_ms;
    p->queries++;
    /*
     * Always through the queue, and dispatched from a zero-delay timer when a connection is
     * idle: cb never runs inside pg_query, even if the send fails at once.
     */
    if (p->qtail)
        p->qtail->next = q;
    else
        p->qhead = q;
    p->qtail = q;
    p->qlen++;
    if (pgpool_idle_conn(p)) {
        event_del(p->qtimer);
        util_timer_ms(p->qtimer, 0);
    } else {
        pgpool_queue_arm(p);
    }
    return true;
}

/* ---- the circuit breaker ------------------------------------------------------------- */

void pgpool_progress(PgPool *p)
{
    p->last_done_ms = util_now_ms();
    p->ever_up = true;
    if (!breaker_allows(&p->breaker))
        log_info("PostgreSQL answers again: the breaker is closed (submissions accepted)");
    breaker_success(&p->breaker);
}

/*
 * How long the server has answered nothing while statements run on it: from the later of
 * the last answer and the oldest running statement's send; -1 when nothing runs. *healthy:
 * some connection is up.
 */
static int64_t pgpool_quiet_ms(const PgPool *p, int64_t now, bool *healthy)
{
    int64_t oldest = 0;
    *healthy = false;
    for (int i = 0; i < p->size; i++) {
        const PgConn *c = &p->conns[i];
        if (c->state == PGC_IDLE || c->state == PGC_BUSY)
            *healthy = true;
        if (c->state == PGC_BUSY && c->q && c->q->sent_ms && (!oldest || c->q->sent_ms < oldest))
            oldest = c->q->sent_ms;
    }
    if (!oldest)
        return -1;
    return now - (oldest > p->last_done_ms ? oldest : p->last_done_ms);
}

static void pgpool_probe_cb(PGresult *res, const char *err, void *arg)
{
    PgPool *p = arg;
    (void)err;
    p->probe_out = false;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    breaker_probe_result(&p->breaker, ok, util_now_ms()); /* its answer also closes it */
}

/* One "SELECT 1" at a time: it runs on an idle connection if there is one, so a server that
 * answers is told from one that has stopped, whatever its running statements do. */
static void pgpool_probe(PgPool *p, int64_t now)
{
    if (p->probe_out)
        return;
    p->probe_out = pg_query(p, "SELECT 1", 0, NULL, pgpool_probe_cb, p);
    if (!p->probe_out)
        breaker_probe_result(&p->breaker, false, now);
}

/*
 * Stalled: no healthy connection (once one was up), or statements running and no answer
 * for stall_ms. Half-way there a probe asks the server itself: a live server answers it at
 * once (an answer resets the quiet time), so one long statement is no stall; a frozen one
 * does not, and the breaker opens.
 */
static void pgpool_watch(PgPool *p, int64_t now)
{
    bool healthy;
    int64_t quiet = pgpool_quiet_ms(p, now, &healthy);
    if (healthy && quiet > p->stall_ms / 2 && breaker_allows(&p->breaker))
        pgpool_probe(p, now);
    bool stalled = healthy ? quiet > p->stall_ms : p->ever_up;
    if (breaker_observe(&p->breaker, stalled, now))
        log_warn("PostgreSQL stalled (%s): the breaker is open; submissions are refused at "
                 "once until it answers again",
                 healthy ? "no answer to running statements" : "no healthy connection");
    if (breaker_probe_due(&p->breaker, now) && !p->probe_out)
        pgpool_probe(p, now); /* one still out (it may time out) counts as this round's */
}

static void pgpool_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    PgPool *p = arg;
    int64_t now = util_now_ms();
    (void)fd;
    (void)what;
    if (p->closing)
        return;
    if (p->stall_ms > 0)
        pgpool_watch(p, now);
    if (p->metrics) {
        p->metrics->pg_queue_depth = (int64_t)p->qlen;
        p->metrics->pg_running = (int64_t)p->running;
        p->metrics->pg_breaker_state = (int)p->breaker.state;
        p->metrics->pg_breaker_trips = p->breaker.trips;
    }
}

/* The tick runs while there is a breaker or metrics to keep (a pool with neither, as in
 * the pool's own tests, holds no timer: an idle loop may end). */
static void pgpool_tick_arm(PgPool *p)
{
    if (p->tick)
        event_free(p->tick);
    p->tick = NULL;
    if (p->stall_ms <= 0 && !p->metrics)
        return;
    int every = p->stall_ms > 0 && p->stall_ms / 5 < 100 ? p->stall_ms / 5 : 100;
    p->tick = event_new(p->base, -1, EV_PERSIST, pgpool_tick_cb, p);
    ASSERT(p->tick);
    struct timeval tv = {0, (every > 0 ? every : 1) * 1000};
    event_add(p->tick, &tv);
}

void pg_pool_set_breaker(PgPool *p, int stall_ms, int probe_ms)
{
    p->stall_ms = stall_ms > 0 ? stall_ms : 0;
    breaker_init(&p->breaker, probe_ms);
    pgpool_tick_arm(p);
}

void pg_pool_set_metrics(PgPool *p, Metrics *m)
{
    p->metrics = m;
    pgpool_tick_arm(p);
}

bool pg_pool_available(const PgPool *p)
{
    return breaker_allows(&p->breaker);
}

BreakerState pg_pool_breaker_state(const PgPool *p)
{
    return p->breaker.state;
}

uint64_t pg_pool_breaker_trips(const PgPool *p)
{
    return p->breaker.trips;
}

bool pg_pool_cb_sent(const PgPool *p)
{
    return p->cb_sent;
}

bool pg_pool_ready(const PgPool *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == PGC_IDLE || p->conns[i].state == PGC_BUSY)
            return true;
    return false;
}

uint64_t pg_pool_queries(const PgPool *p)
{
    return p->queries;
}

size_t pg_pool_inflight(const PgPool *p)
{
    return p->qlen + p->running;
}

size_t pg_pool_queued(const PgPool *p)
{
    return p->qlen;
}

void pg_pool_free(PgPool *p)
{
    if (!p)
        return;
    ASSERT(p->cb_depth == 0); /* not allowed from inside a pool callback */
    p->closing = true;
    while (p->qhead)
        pgpool_query_finish(p, pgpool_queue_pop(p), NULL, "shutting down");
    for (int i = 0; i < p->size; i++)
        pgconn_shutdown(&p->conns[i]);
    if (p->lconn) {
        pgconn_shutdown(p->lconn);
        free(p->lconn);
    }
    ASSERT(p->running == 0 && p->qlen == 0);
    if (p->tick)
        event_free(p->tick);
    pglisten_free_all(p);
    event_free(p->qtimer);
    free(p->conns);
    free(p->conninfo);
    free(p);
}
