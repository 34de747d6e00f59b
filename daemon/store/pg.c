/*
 * pg: nonblocking libpq on the event loop (STYLE "libpq in the event loop", option A).
 * Each PgConn is a small state machine DOWN -> CONNECTING -> IDLE <-> BUSY driven by one
 * re-assigned event on PQsocket() and one timer whose meaning follows the state (backoff,
 * connect deadline, query deadline). Queries wait in a bounded FIFO for an idle connection;
 * a deadline or a broken link drops the connection (PQfinish never waits for the server)
 * and the connection reconnects with backoff, so PQcancel (blocking in PG 15) is never used.
 */
#include "store/pg.h"
#include "common/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event_struct.h>

#define PG_BACKOFF_MIN_MS         100
#define PG_BACKOFF_MAX_MS         5000
#define PG_CONNECT_TIMEOUT_MIN_MS 2000
#define PG_ERR_LEN                256

typedef struct PgQuery PgQuery;
struct PgQuery {
    PgQuery *next;    /* wait-queue link; NULL while running */
    char *sql;        /* owned copy */
    int nparams;      /* entries in params */
    char **params;    /* owned copies; a NULL entry is SQL NULL */
    PgResultCb cb;    /* called exactly once, then the query is freed */
    void *arg;        /* opaque for cb */
    int64_t deadline; /* util_now_ms() after which the query fails with "timed out" */
    bool simple;      /* internal: PQsendQuery (several statements, no params) */
};

typedef struct PgListen PgListen;
struct PgListen {
    PgListen *next; /* append order */
    char *channel;  /* owned copy, LISTENed quoted (case-sensitive) */
    PgNotifyCb cb;  /* notifications and (re)subscribe events */
    void *arg;      /* opaque for cb */
    bool sent;      /* LISTEN sent on the current link (cleared when the link drops) */
    bool active;    /* LISTEN confirmed on the current link */
};

typedef enum {
    PGC_DOWN,       /* no PGconn; timer = reconnect backoff */
    PGC_CONNECTING, /* PQconnectPoll in progress; timer = connect deadline */
    PGC_IDLE,       /* up, no query; io waits for READ to notice a dead link early */
    PGC_BUSY,       /* q running; timer = q->deadline */
} PgConnState;

typedef struct PgConn {
    PgPool *pool;        /* owner */
    int id;              /* index in pool->conns, -1 for the LISTEN connection */
    PgConnState state;   /* see PgConnState */
    PGconn *pg;          /* NULL only while DOWN */
    struct event io;     /* re-assigned for each wait: PQsocket() may change while connecting */
    bool io_assigned;    /* io was event_assign()ed at least once (event_del is safe) */
    struct event *timer; /* meaning depends on state, see PgConnState */
    PgQuery *q;          /* running query, BUSY only */
    PGresult *res;       /* result kept for q: the first error, else the last one */
    bool flushing;       /* PQflush returned 1: wait for WRITE as well */
    int backoff_ms;      /* next reconnect base delay */
} PgConn;

struct PgPool {
    struct event_base *base;
    char *conninfo;         /* owned copy, expanded as the dbname keyword */
    char options[64];       /* "-c statement_timeout=N", empty if conninfo sets options */
    int size;               /* entries in conns */
    int timeout_ms;         /* per-query deadline */
    int max_queue;          /* bound of the wait queue */
    PgConn *conns;          /* size entries */
    PgConn *lconn;          /* LISTEN connection, NULL until pg_pool_listen() */
    PgListen *listens;      /* LISTENed channels */
    PgQuery *qhead, *qtail; /* wait queue, FIFO == deadline order (one timeout for all) */
    size_t qlen;            /* entries in the wait queue */
    size_t running;         /* user queries on pool connections */
    struct event *qtimer;   /* fires at the queue head's deadline */
    bool closing;           /* pg_pool_free in progress: refuse new work */
    int cb_depth;           /* > 0 while a user callback runs */
    unsigned failures;      /* link failures since the last healthy connect */
    uint32_t rng;           /* xorshift state for backoff jitter */
    uint64_t queries;       /* statements accepted by pg_query, for /metrics */
};

static void conn_connect(PgConn *c);
static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void pool_dispatch(PgPool *p);
static void queue_timer_cb(evutil_socket_t fd, short what, void *arg);
static void listen_kick(PgPool *p);

/* ---- small helpers -------------------------------------------------------------------- */

/* Copies a libpq message onto one line: newlines and tabs become single spaces. */
static void err_copy(char *dst, size_t n, const char *msg)
{
    size_t len = 0;
    bool space = true; /* drops leading blanks */
    if (!msg || !*msg)
        msg = "unknown error";
    for (; *msg && len + 1 < n; msg++) {
        bool blank = *msg == '\n' || *msg == '\r' || *msg == '\t' || *msg == ' ';
        if (blank && space)
            continue;
        dst[len++] = blank ? ' ' : *msg;
        space = blank;
    }
    while (len > 0 && dst[len - 1] == ' ')
        len--;
    dst[len] = '\0';
}

static const char *conn_name(const PgConn *c, char buf[16])
{
    if (c->id < 0)
        snprintf(buf, 16, "pg[listen]");
    else
        snprintf(buf, 16, "pg[%d]", c->id);
    return buf;
}

static void query_free(PgQuery *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

/* Reports q to its owner and frees it. res stays owned by the caller. */
static void query_finish(PgPool *p, PgQuery *q, PGresult *res, const char *err)
{
    p->cb_depth++;
    if (q->cb)
        q->cb(res, err, q->arg);
    p->cb_depth--;
    query_free(q);
}

static void notice_cb(void *arg, const PGresult *res)
{
    char msg[PG_ERR_LEN];
    (void)arg;
    err_copy(msg, sizeof(msg), PQresultErrorMessage(res));
    log_debug("pg notice: %s", msg);
}

/* ---- connection state machine ------------------------------------------------------- */

static void conn_wait(PgConn *c, short what)
{
    if (c->io_assigned)
        event_del(&c->io);
    event_assign(&c->io, c->pool->base, PQsocket(c->pg), what, conn_io_cb, c);
    c->io_assigned = true;
    event_add(&c->io, NULL);
}

/* Closes the link and clears per-link state; leaves c DOWN without a timer armed. */
static void conn_close(PgConn *c)
{
    if (c->io_assigned)
        event_del(&c->io);
    event_del(c->timer);
    if (c->res)
        PQclear(c->res);
    c->res = NULL;
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    c->q = NULL;
    c->flushing = false;
    c->state = PGC_DOWN;
    if (c == c->pool->lconn)
        for (PgListen *l = c->pool->listens; l; l = l->next)
            l->sent = l->active = false;
}

/* The next piece of work for an idle connection. */
static void conn_next(PgConn *c)
{
    if (c == c->pool->lconn)
        listen_kick(c->pool);
    else
        pool_dispatch(c->pool);
}

/*
 * Link failure: drop the connection, schedule a reconnect, then fail the running query with
 * "<what>: <why>". State is fully updated before the callback, so it may re-enter.
 */
static void conn_fail(PgConn *c, const char *what, const char *why)
{
    PgPool *p = c->pool;
    char err[PG_ERR_LEN + 96], name[16], reason[PG_ERR_LEN];
    PgQuery *q = c->q;
    bool user = q && c != p->lconn;

    err_copy(reason, sizeof(reason), why); /* why may point into the PGconn being freed */
    snprintf(err, sizeof(err), "%s: %s", what, reason);
    conn_close(c);
    if (p->closing) {
        if (q) {
            if (user)
                p->running--;
            query_finish(p, q, NULL, "shutting down");
        }
        return;
    }
    if (p->failures++ == 0)
        log_warn("%s: %s (reconnecting; further failures are counted)", conn_name(c, name), err);
    else
        log_debug("%s: %s (failure %u)", conn_name(c, name), err, p->failures);
    util_timer_ms(c->timer, util_backoff_next(&c->backoff_ms, PG_BACKOFF_MAX_MS, &p->rng));
    if (q) {
        if (user)
            p->running--;
        query_finish(p, q, NULL, err);
    }
}

static void conn_up(PgConn *c)
{
    PgPool *p = c->pool;
    char name[16];

    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_fail(c, "database connection setup failed", PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_cb, NULL);
    event_del(c->timer);
    c->state = PGC_IDLE;
    c->backoff_ms = PG_BACKOFF_MIN_MS;
    if (p->failures > 0)
        log_info("%s: connected again after %u failure(s)", conn_name(c, name), p->failures);
    else
        log_debug("%s: connected", conn_name(c, name));
    p->failures = 0;
    conn_wait(c, EV_READ);
    conn_next(c);
}

static void conn_connect(PgConn *c)
{
    PgPool *p = c->pool;
    const char *kw[4] = {"dbname", "fallback_application_name", NULL, NULL};
    const char *val[4] = {p->conninfo, "careline", NULL, NULL};

    if (p->options[0]) {
        kw[2] = "options";
        val[2] = p->options;
    }
    ASSERT(c->state == PGC_DOWN && !c->pg);
    c->pg = PQconnectStartParams(kw, val, 1);
    if (!c->pg) {
        conn_fail(c, "cannot connect to the database", "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, "cannot connect to the database", PQerrorMessage(c->pg));
        return;
    }
    c->state = PGC_CONNECTING;
    int limit =
        p->timeout_ms > PG_CONNECT_TIMEOUT_MIN_MS ? p->timeout_ms : PG_CONNECT_TIMEOUT_MIN_MS;
    util_timer_ms(c->timer, limit);
    conn_wait(c, EV_WRITE); /* PQconnectStart behaves as if POLLING_WRITING was returned */
}

static void conn_poll_connect(PgConn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        conn_wait(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        conn_wait(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        conn_up(c);
        break;
    default:
        conn_fail(c, "cannot connect to the database", PQerrorMessage(c->pg));
        break;
    }
}

/* Query done and the link is healthy: report res, then look for more work. */
static void conn_complete(PgConn *c)
{
    PgPool *p = c->pool;
    PgQuery *q = c->q;
    PGresult *res = c->res;
    bool user = c != p->lconn;

    c->q = NULL;
    c->res = NULL;
    event_del(c->timer);
    c->state = PGC_IDLE;
    if (user)
        p->running--;
    conn_wait(c, EV_READ);
    if (!res) /* cannot happen after a successful send: libpq always yields a result */
        query_finish(p, q, NULL, "database returned no result");
    else
        query_finish(p, q, res, NULL);
    if (res)
        PQclear(res);
    conn_next(c); /* the callback may already have given c new work */
}

static bool res_is_error(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
}

/* Consumed input is in libpq's buffer: collect results until PQgetResult says NULL. */
static void conn_read_results(PgConn *c)
{
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (PQstatus(c->pg) == CONNECTION_BAD) {
                conn_fail(c, "database connection lost", PQerrorMessage(c->pg));
                return;
            }
            conn_complete(c);
            return;
        }
        if (c->res && res_is_error(c->res)) {
            PQclear(r); /* keep the first error */
        } else {
            if (c->res)
                PQclear(c->res);
            c->res = r;
        }
    }
    conn_wait(c, EV_READ);
}

static void conn_flush(PgConn *c)
{
    int f = PQflush(c->pg);
    if (f < 0) {
        conn_fail(c, "database connection lost", PQerrorMessage(c->pg));
        return;
    }
    c->flushing = f == 1;
    conn_wait(c, c->flushing ? EV_READ | EV_WRITE : EV_READ);
}

/* Starts q on idle c. May fail q (callback runs) if the link turns out to be broken. */
static void conn_start(PgConn *c, PgQuery *q)
{
    PgPool *p = c->pool;
    int ok;

    ASSERT(c->state == PGC_IDLE && !c->q);
    c->q = q;
    c->state = PGC_BUSY;
    if (c != p->lconn)
        p->running++;
    if (q->simple)
        ok = PQsendQuery(c->pg, q->sql);
    else
        ok = PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params,
                               NULL, NULL, 0);
    if (!ok) {
        conn_fail(c, "could not send the query", PQerrorMessage(c->pg));
        return;
    }
    int64_t left = q->deadline - util_now_ms();
    util_timer_ms(c->timer, left > 0 ? left : 0);
    conn_flush(c);
}

static void conn_drain_notifies(PgConn *c)
{
    PgPool *p = c->pool;
    PGnotify *n;

    while (c->pg && (n = PQnotifies(c->pg)) != NULL) {
        if (c == p->lconn) {
            for (PgListen *l = p->listens; l; l = l->next) {
                if (l->active && strcmp(l->channel, n->relname) == 0) {
                    p->cb_depth++;
                    l->cb(n->relname, n->extra ? n->extra : "", l->arg);
                    p->cb_depth--;
                }
            }
        }
        PQfreemem(n);
        if (c->state != PGC_IDLE && c->state != PGC_BUSY)
            break;
    }
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    PgConn *c = arg;
    (void)fd;

    switch (c->state) {
    case PGC_CONNECTING:
        conn_poll_connect(c);
        return;
    case PGC_IDLE:
        if (!PQconsumeInput(c->pg)) {
            conn_fail(c, "database connection lost", PQerrorMessage(c->pg));
            return;
        }
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, "database connection lost", PQerrorMessage(c->pg));
            return;
        }
        conn_wait(c, EV_READ);
        break;
    case PGC_BUSY:
        if ((what & EV_READ) && !PQconsumeInput(c->pg)) {
            conn_fail(c, "database connection lost", PQerrorMessage(c->pg));
            return;
        }
        if (c->flushing) {
            int f = PQflush(c->pg);
            if (f < 0) {
                conn_fail(c, "database connection lost", PQerrorMessage(c->pg));
                return;
            }
            if (f == 1) {
                conn_wait(c, EV_READ | EV_WRITE);
                return;
            }
            c->flushing = false;
        }
        conn_read_results(c);
        break;
    case PGC_DOWN:
        ASSERT(!"io event on a DOWN connection");
    }
    if (c->state == PGC_IDLE || c->state == PGC_BUSY)
        conn_drain_notifies(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    PgConn *c = arg;
    char msg[64];
    (void)fd;
    (void)what;

    switch (c->state) {
    case PGC_DOWN:
        conn_connect(c);
        break;
    case PGC_CONNECTING:
        conn_fail(c, "cannot connect to the database", "connect timed out");
        break;
    case PGC_BUSY:
        snprintf(msg, sizeof(msg), "no answer within %d ms", c->pool->timeout_ms);
        conn_fail(c, "query timed out", msg);
        break;
    case PGC_IDLE:
        ASSERT(!"timer fired on an IDLE connection");
    }
}

/* ---- pool ---------------------------------------------------------------------------- */

static PgQuery *queue_pop(PgPool *p)
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

static void queue_arm(PgPool *p)
{
    if (p->qhead && !evtimer_pending(p->qtimer, NULL)) {
        int64_t left = p->qhead->deadline - util_now_ms();
        util_timer_ms(p->qtimer, left > 0 ? left : 0);
    }
}

static void queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    PgPool *p = arg;
    char err[96];
    (void)fd;
    (void)what;

    snprintf(err, sizeof(err), "query timed out after %d ms waiting for a database connection",
             p->timeout_ms);
    while (p->qhead && p->qhead->deadline <= util_now_ms())
        query_finish(p, queue_pop(p), NULL, err);
    pool_dispatch(p); /* also the zero-delay kick from pg_query() */
}

static PgConn *pool_idle_conn(PgPool *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == PGC_IDLE)
            return &p->conns[i];
    return NULL;
}

/* Starts queued queries on idle connections. Re-entrant: state is consistent at each step. */
static void pool_dispatch(PgPool *p)
{
    PgConn *c;
    while (!p->closing && p->qhead && (c = pool_idle_conn(p)) != NULL) {
        if (p->qhead->deadline <= util_now_ms()) {
            /* starting it would only drop a healthy link at once */
            queue_timer_cb(-1, 0, p);
            return;
        }
        conn_start(c, queue_pop(p));
    }
    queue_arm(p);
}

static char *listen_sql(PgPool *p)
{
    size_t cap = 64, len = 0;
    char *sql = xmalloc(cap);
    sql[0] = '\0';
    for (PgListen *l = p->listens; l; l = l->next) {
        if (l->sent)
            continue;
        char *id = PQescapeIdentifier(p->lconn->pg, l->channel, strlen(l->channel));
        if (!id) {
            log_warn("pg: cannot quote LISTEN channel \"%s\"", l->channel);
            l->sent = true; /* retried after the next reconnect */
            continue;
        }
        size_t need = len + strlen(id) + 16;
        if (need > cap) {
            cap = need * 2;
            sql = xrealloc(sql, cap);
        }
        len += (size_t)sprintf(sql + len, "LISTEN %s;", id);
        PQfreemem(id);
        l->sent = true;
    }
    if (len == 0) {
        free(sql);
        return NULL;
    }
    return sql;
}

static void listen_done_cb(PGresult *res, const char *err, void *arg)
{
    PgPool *p = arg;

    if (!res) { /* link dropped: conn_close() reset the flags; re-LISTEN after reconnect */
        log_debug("pg[listen]: LISTEN not confirmed: %s", err);
        return;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[PG_ERR_LEN];
        err_copy(msg, sizeof(msg), PQresultErrorMessage(res));
        log_warn("pg[listen]: LISTEN failed: %s (retried after reconnect)", msg);
        return;
    }
    for (PgListen *l = p->listens; l; l = l->next) {
        if (l->sent && !l->active) {
            l->active = true;
            p->cb_depth++;
            l->cb(l->channel, NULL, l->arg);
            p->cb_depth--;
        }
    }
}

/* Sends LISTEN for channels not yet sent on the current link, if the link is idle. */
static void listen_kick(PgPool *p)
{
    PgConn *c = p->lconn;
    if (p->closing || !c || c->state != PGC_IDLE)
        return;
    char *sql = listen_sql(p);
    if (!sql)
        return;
    PgQuery *q = xcalloc(1, sizeof(*q));
    q->sql = sql;
    q->simple = true;
    q->cb = listen_done_cb;
    q->arg = p;
    q->deadline = util_now_ms() + p->timeout_ms;
    conn_start(c, q);
}

static void conn_init(PgPool *p, PgConn *c, int id)
{
    c->pool = p;
    c->id = id;
    c->state = PGC_DOWN;
    c->backoff_ms = PG_BACKOFF_MIN_MS;
    c->timer = evtimer_new(p->base, conn_timer_cb, c);
    ASSERT(c->timer);
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
    if (!strstr(conninfo, "options"))
        snprintf(p->options, sizeof(p->options), "-c statement_timeout=%d",
                 query_timeout_ms + 1000);
    p->qtimer = evtimer_new(base, queue_timer_cb, p);
    ASSERT(p->qtimer);
    p->conns = xcalloc((size_t)size, sizeof(*p->conns));
    for (int i = 0; i < size; i++)
        conn_init(p, &p->conns[i], i);
    for (int i = 0; i < size; i++)
        conn_connect(&p->conns[i]);
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
    if (pool_idle_conn(p)) {
        event_del(p->qtimer);
        util_timer_ms(p->qtimer, 0);
    } else {
        queue_arm(p);
    }
    return true;
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

void pg_pool_listen(PgPool *p, const char *channel, PgNotifyCb cb, void *arg)
{
    ASSERT(p && channel && cb);
    if (p->closing)
        return;
    PgListen *l = xcalloc(1, sizeof(*l));
    l->channel = xstrdup(channel);
    l->cb = cb;
    l->arg = arg;
    PgListen **tail = &p->listens;
    while (*tail)
        tail = &(*tail)->next;
    *tail = l;
    if (!p->lconn) {
        p->lconn = xcalloc(1, sizeof(*p->lconn));
        conn_init(p, p->lconn, -1);
        conn_connect(p->lconn);
    } else {
        listen_kick(p);
    }
}

static void conn_shutdown(PgPool *p, PgConn *c)
{
    PgQuery *q = c->q;
    bool user = q && c != p->lconn;
    conn_close(c);
    if (q) {
        if (user)
            p->running--;
        query_finish(p, q, NULL, "shutting down");
    }
    event_free(c->timer);
}

void pg_pool_free(PgPool *p)
{
    if (!p)
        return;
    ASSERT(p->cb_depth == 0); /* not allowed from inside a pool callback */
    p->closing = true;
    while (p->qhead)
        query_finish(p, queue_pop(p), NULL, "shutting down");
    for (int i = 0; i < p->size; i++)
        conn_shutdown(p, &p->conns[i]);
    if (p->lconn) {
        conn_shutdown(p, p->lconn);
        free(p->lconn);
    }
    ASSERT(p->running == 0 && p->qlen == 0);
    while (p->listens) {
        PgListen *l = p->listens;
        p->listens = l->next;
        free(l->channel);
        free(l);
    }
    event_free(p->qtimer);
    free(p->conns);
    free(p->conninfo);
    free(p);
}
