/*
 * rds_link: one Redis link's state machine DOWN -> CONNECTING -> UP, with our own connect
 * timer and reconnect backoff (hiredis 0.14 has neither). hiredis frees its context after the
 * connect-error/disconnect callbacks, so we forget ac there and only schedule the reconnect.
 */
#include "store/rds_int.h"
#include "common/log.h"

#include <stdio.h>

#include <hiredis/adapters/libevent.h>

static void connect_cb(const redisAsyncContext *cac, int status);
static void disconnect_cb(const redisAsyncContext *cac, int status);
static void link_timer_cb(evutil_socket_t fd, short what, void *arg);

/* The link is gone (ac already forgotten): log and schedule a reconnect. The first failure
 * after the link was up is logged, a refused AUTH once for both links until one gets in;
 * the rest only counted. */
void rds_link_down_why(RdsLink *l, const char *why, bool auth_refused)
{
    Rds *r = l->r;

    l->ac = NULL;
    l->failing = false;
    event_del(l->timer);
    if (r->closing) {
        l->state = RDS_CLOSING;
        return;
    }
    l->state = RDS_DOWN;
    bool first = l->failures++ == 0;
    bool loud = auth_refused ? !r->auth_warned : first; /* one line for both links */
    r->auth_warned = r->auth_warned || auth_refused;
    if (loud)
        log_warn("%s %s:%d down: %s (reconnecting; further failures are counted)", l->name, r->host,
                 r->port, why);
    else
        log_debug("%s %s:%d: %s (failure %u)", l->name, r->host, r->port, why, l->failures);
    util_timer_ms(l->timer, util_backoff_next(&l->backoff_ms, RDS_BACKOFF_MAX_MS, &r->rng));
}

void rds_link_down(RdsLink *l, const char *why)
{
    rds_link_down_why(l, why, false);
}

/*
 * Drops a live or connecting link on purpose. hiredis calls every pending callback with NULL
 * from inside redisAsyncFree (err = reason); our disconnect callback ignores it (data NULL).
 * Must not run inside a hiredis callback (the free would be deferred).
 */
void rds_link_drop(RdsLink *l, const char *reason)
{
    Rds *r = l->r;
    redisAsyncContext *ac = l->ac;

    ASSERT(r->cb_depth == 0);
    if (!ac)
        return;
    l->ac = NULL;
    l->state = r->closing ? RDS_CLOSING : RDS_DOWN; /* refuse re-entrant ops */
    ac->data = NULL;
    r->drop_reason = reason;
    redisAsyncFree(ac);
    r->drop_reason = NULL;
    rds_link_down(l, reason);
}

/* The link works (connected, and authenticated when we have a password). */
void rds_link_up(RdsLink *l)
{
    event_del(l->timer);
    l->state = RDS_UP;
    l->ups++;
    l->backoff_ms = RDS_BACKOFF_MIN_MS;
    if (l->failures > 0)
        log_info("%s %s:%d up again after %u failure(s)", l->name, l->r->host, l->r->port,
                 l->failures);
    else
        log_debug("%s %s:%d connected", l->name, l->r->host, l->r->port);
    l->failures = 0;
    l->r->auth_warned = false;
    if (l->is_sub)
        for (RdsSub *s = l->r->subs; s; s = s->next)
            rds_pubsub_send(l, s);
}

static void connect_cb(const redisAsyncContext *cac, int status)
{
    RdsLink *l = cac->data;
    char why[RDS_ERR_LEN];

    if (!l)
        return; /* freed on purpose */
    if (status != REDIS_OK) {
        snprintf(why, sizeof(why), "connect failed: %s", cac->errstr ? cac->errstr : "?");
        rds_link_down(l, why); /* hiredis frees the context after we return */
        return;
    }
    if (!l->r->password_file)
        rds_link_up(l);
    /* else: AUTH is on its way; auth_cb decides (the connect deadline still runs) */
}

static void disconnect_cb(const redisAsyncContext *cac, int status)
{
    RdsLink *l = cac->data;
    char why[RDS_ERR_LEN];

    if (!l)
        return; /* freed on purpose */
    snprintf(why, sizeof(why), "%s",
             status == REDIS_OK ? "connection closed"
                                : (cac->errstr ? cac->errstr : "connection lost"));
    rds_link_down(l, why); /* hiredis frees the context after we return */
}

static void link_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    RdsLink *l = arg;
    (void)fd;
    (void)what;

    if (l->state == RDS_DOWN)
        rds_link_connect(l);
    else if (l->state == RDS_CONNECTING)
        rds_link_drop(l, "connect timed out"); /* no hiredis callback fires for an unconnected ac */
}

void rds_link_connect(RdsLink *l)
{
    Rds *r = l->r;
    char why[RDS_ERR_LEN];
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

    ASSERT(l->state == RDS_DOWN && !l->ac);
    if (!ac) {
        rds_link_down(l, "cannot allocate a hiredis context");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof(why), "connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        rds_link_down(l, why);
        return;
    }
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        rds_link_down(l, "cannot attach to the event loop");
        return;
    }
    (void)redisEnableKeepAlive(&ac->c); /* notice a dead peer on the idle pub/sub link */
    ac->data = l;
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (r->password_file && !rds_auth_send(l, ac)) {
        ac->data = NULL;
        redisAsyncFree(ac);
        rds_link_down(l, "cannot queue AUTH");
        return;
    }
    l->ac = ac;
    l->state = RDS_CONNECTING;
    int limit = r->op_timeout_ms > RDS_CONNECT_TIMEOUT_MIN_MS ? r->op_timeout_ms
                                                              : RDS_CONNECT_TIMEOUT_MIN_MS;
    util_timer_ms(l->timer, limit);
}

void rds_link_init(Rds *r, RdsLink *l, const char *name, bool is_sub)
{
    l->r = r;
    l->name = name;
    l->is_sub = is_sub;
    l->state = RDS_DOWN;
    l->backoff_ms = RDS_BACKOFF_MIN_MS;
    l->timer = evtimer_new(r->base, link_timer_cb, l);
    ASSERT(l->timer);
}
