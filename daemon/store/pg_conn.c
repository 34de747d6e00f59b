/*
 * pg_conn: one pool connection's state machine DOWN -> CONNECTING -> IDLE <-> BUSY, driven by
 * one re-assigned event on PQsocket() and one timer whose meaning follows the state (backoff,
 * connect deadline, query deadline). A deadline or a broken link drops the connection
 * (PQfinish never waits for the server) and it reconnects with backoff, so PQcancel (blocking
 * in PG 15) is never used. Results are handed over one step late, once PQgetResult says NULL.
 */
#include "store/pg_int.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pgconn_io_cb(evutil_socket_t fd, short what, void *arg);
static void pgconn_timer_cb(evutil_socket_t fd, short what, void *arg);

void pg_err_copy(char *dst, size_t n, const char *msg)
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

const char *pg_errline(const PGresult *res, const char *err, char *buf, size_t n)
{
    char raw[PG_ERRLINE_LEN], flat[PG_ERRLINE_LEN];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (primary)
        snprintf(raw, sizeof(raw), "%s (SQLSTATE %s)", primary, state ? state : "?");
    else if (res)
        snprintf(raw, sizeof(raw), "unexpected result %s", PQresStatus(PQresultStatus(res)));
    else
        snprintf(raw, sizeof(raw), "%.*s", err && *err ? (int)strcspn(err, "\n") : 13,
                 err && *err ? err : "unknown error");
    pg_err_copy(flat, sizeof(flat), raw);
    util_utf8_escape(flat, strlen(flat), buf, n);
    return buf;
}

static const char *pgconn_name(const PgConn *c, char buf[16])
{
    if (c->id < 0)
        snprintf(buf, 16, "pg[listen]");
    else
        snprintf(buf, 16, "pg[%d]", c->id);
    return buf;
}

static void pgconn_notice_cb(void *arg, const PGresult *res)
{
    char msg[PG_ERR_LEN];
    (void)arg;
    pg_errline(res, NULL, msg, sizeof(msg));
    log_debug("pg notice: %s", msg);
}

/* ---- connection state machine ------------------------------------------------------- */

static void pgconn_wait(PgConn *c, short what)
{
    if (c->io_assigned)
        event_del(&c->io);
    event_assign(&c->io, c->pool->base, PQsocket(c->pg), what, pgconn_io_cb, c);
    c->io_assigned = true;
    event_add(&c->io, NULL);
}

/* Closes the link and clears per-link state; leaves c DOWN without a timer armed. */
static void pgconn_close(PgConn *c)
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
        pglisten_reset(c->pool);
}

/* The next piece of work for an idle connection. */
static void pgconn_next(PgConn *c)
{
    if (c == c->pool->lconn)
        pglisten_kick(c->pool);
    else
        pgpool_dispatch(c->pool);
}

/*
 * Link failure: drop the connection, schedule a reconnect, then fail the running query with
 * "<what>: <why>". State is fully updated before the callback, so it may re-enter.
 */
static void pgconn_fail(PgConn *c, const char *what, const char *why)
{
    PgPool *p = c->pool;
    char err[PG_ERR_LEN + 96], name[16], reason[PG_ERR_LEN];
    PgQuery *q = c->q;
    bool user = q && c != p->lconn;

    pg_errline(NULL, why, reason, sizeof(reason)); /* why may point into the freed PGconn */
    snprintf(err, sizeof(err), "%s: %s", what, reason);
    pgconn_close(c);
    if (p->closing) {
        if (q) {
            if (user)
                p->running--;
            pgpool_query_finish(p, q, NULL, "shutting down");
        }
        return;
    }
    if (p->failures++ == 0)
        log_warn("%s: %s (reconnecting; further failures are counted)", pgconn_name(c, name), err);
    else
        log_debug("%s: %s (failure %u)", pgconn_name(c, name), err, p->failures);
    util_timer_ms(c->timer, util_backoff_next(&c->backoff_ms, PG_BACKOFF_MAX_MS, &p->rng));
    if (q) {
        if (user)
            p->running--;
        pgpool_query_finish(p, q, NULL, err);
    }
}

static void pgconn_up(PgConn *c)
{
    PgPool *p = c->pool;
    char name[16];

    if (PQsetnonblocking(c->pg, 1) != 0) {
        pgconn_fail(c, "database connection setup failed", PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, pgconn_notice_cb, NULL);
    event_del(c->timer);
    c->state = PGC_IDLE;
    c->backoff_ms = PG_BACKOFF_MIN_MS;
    if (p->failures > 0)
        log_info("%s: connected again after %u failure(s)", pgconn_name(c, name), p->failures);
    else
        log_debug("%s: connected", pgconn_name(c, name));
    p->failures = 0;
    if (c != p->lconn)
        pgpool_progress(p);
    pgconn_wait(c, EV_READ);
    pgconn_next(c);
}

void pgconn_connect(PgConn *c)
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
        pgconn_fail(c, "cannot connect to the database", "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        pgconn_fail(c, "cannot connect to the database", PQerrorMessage(c->pg));
        return;
    }
    c->state = PGC_CONNECTING;
    int limit =
        p->timeout_ms > PG_CONNECT_TIMEOUT_MIN_MS ? p->timeout_ms : PG_CONNECT_TIMEOUT_MIN_MS;
    util_timer_ms(c->timer, limit);
    pgconn_wait(c, EV_WRITE); /* PQconnectStart behaves as if POLLING_WRITING was returned */
}

static void pgconn_poll_connect(PgConn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        pgconn_wait(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        pgconn_wait(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        pgconn_up(c);
        break;
    default:
        pgconn_fail(c, "cannot connect to the database", PQerrorMessage(c->pg));
        break;
    }
}

/* Query done and the link is healthy: report res, then look for more work. */
static void pgconn_complete(PgConn *c)
{
    PgPool *p = c->pool;
    PgQuery *q = c->q;
    PGresult *res = c->res;
    bool user = c != p->lconn;

    c->q = NULL;
    c->res = NULL;
    event_del(c->timer);
    c->state = PGC_IDLE;
    if (user) {
        p->running--;
        pgpool_progress(p);
    }
    pgconn_wait(c, EV_READ);
    if (!res) /* cannot happen after a successful send: libpq always yields a result */
        pgpool_query_finish(p, q, NULL, "database returned no result");
    else
        pgpool_query_finish(p, q, res, NULL);
    if (res)
        PQclear(res);
    pgconn_next(c); /* the callback may already have given c new work */
}

static bool pgconn_res_is_error(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
}

/* Consumed input is in libpq's buffer: collect results until PQgetResult says NULL. */
static void pgconn_read_results(PgConn *c)
{
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (PQstatus(c->pg) == CONNECTION_BAD) {
                pgconn_fail(c, "database connection lost", PQerrorMessage(c->pg));
                return;
            }
            pgconn_complete(c);
            return;
        }
        if (c->res && pgconn_res_is_error(c->res)) {
            PQclear(r); /* keep the first error */
        } else {
            if (c->res)
                PQclear(c->res);
            c->res = r;
        }
    }
    pgconn_wait(c, EV_READ);
}

static void pgconn_flush(PgConn *c)
{
    int f = PQflush(c->pg);
    if (f < 0) {
        pgconn_fail(c, "database connection lost", PQerrorMessage(c->pg));
        return;
    }
    c->flushing = f == 1;
    pgconn_wait(c, c->flushing ? EV_READ | EV_WRITE : EV_READ);
}

/* q's deadline runs from pg_query(): the time it waited in the queue counts. */
void pgconn_start(PgConn *c, PgQuery *q)
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
    q->sent_ms = util_now_ms(); /* from here the server may have run it */
    if (!ok) {
        pgconn_fail(c, "could not send the query", PQerrorMessage(c->pg));
        return;
    }
    int64_t left = q->deadline - util_now_ms();
    util_timer_ms(c->timer, left > 0 ? left : 0);
    pgconn_flush(c);
}

static void pgconn_drain_notifies(PgConn *c)
{
    PgPool *p = c->pool;
    PGnotify *n;

    while (c->pg && (n = PQnotifies(c->pg)) != NULL) {
        if (c == p->lconn)
            pglisten_deliver(p, n);
        PQfreemem(n);
        if (c->state != PGC_IDLE && c->state != PGC_BUSY)
            break;
    }
}

static void pgconn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    PgConn *c = arg;
    (void)fd;

    switch (c->state) {
    case PGC_CONNECTING:
        pgconn_poll_connect(c);
        return;
    case PGC_IDLE:
        if (!PQconsumeInput(c->pg)) {
            pgconn_fail(c, "database connection lost", PQerrorMessage(c->pg));
            return;
        }
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            pgconn_fail(c, "database connection lost", PQerrorMessage(c->pg));
            return;
        }
        pgconn_wait(c, EV_READ);
        break;
    case PGC_BUSY:
        if ((what & EV_READ) && !PQconsumeInput(c->pg)) {
            pgconn_fail(c, "database connection lost", PQerrorMessage(c->pg));
            return;
        }
        if (c->flushing) {
            int f = PQflush(c->pg);
            if (f < 0) {
                pgconn_fail(c, "database connection lost", PQerrorMessage(c->pg));
                return;
            }
            if (f == 1) {
                pgconn_wait(c, EV_READ | EV_WRITE);
                return;
            }
            c->flushing = false;
        }
        pgconn_read_results(c);
        break;
    case PGC_DOWN:
        ASSERT(!"io event on a DOWN connection");
    }
    if (c->state == PGC_IDLE || c->state == PGC_BUSY)
        pgconn_drain_notifies(c);
}

static void pgconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    PgConn *c = arg;
    char msg[64];
    (void)fd;
    (void)what;

    switch (c->state) {
    case PGC_DOWN:
        pgconn_connect(c);
        break;
    case PGC_CONNECTING:
        pgconn_fail(c, "cannot connect to the database", "connect timed out");
        break;
    case PGC_BUSY:
        snprintf(msg, sizeof(msg), "no answer within %d ms", c->pool->timeout_ms);
        pgconn_fail(c, "query timed out", msg);
        break;
    case PGC_IDLE:
        ASSERT(!"timer fired on an IDLE connection");
    }
}

void pgconn_init(PgPool *p, PgConn *c, int id)
{
    c->pool = p;
    c->id = id;
    c->state = PGC_DOWN;
    c->backoff_ms = PG_BACKOFF_MIN_MS;
    c->timer = evtimer_new(p->base, pgconn_timer_cb, c);
    ASSERT(c->timer);
}

void pgconn_shutdown(PgConn *c)
{
    PgPool *p = c->pool;
    PgQuery *q = c->q;
    bool user = q && c != p->lconn;
    pgconn_close(c);
    if (q) {
        if (user)
            p->running--;
        pgpool_query_finish(p, q, NULL, "shutting down");
    }
    event_free(c->timer);
}
