/*
 * session_lease: one timer, one statement in flight at most; the SQL does the rest
 * (sql/functions/session_lease.sql).
 */
#include "core/session_lease.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"

struct SessionLease {
    const Env *env;
    struct event *timer;
    bool inflight;  /* a renewal runs: the next tick skips (one statement at a time) */
    bool freed;     /* session_lease_free ran while one was in flight: its callback frees */
    unsigned fails; /* renewals failed in a row (logged on the first and on recovery) */
};

static void renewed(PGresult *res, const char *err, void *arg)
{
    SessionLease *l = arg;
    l->inflight = false;
    if (l->freed) {
        free(l);
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (l->fails++ == 0)
            log_warn("terminal session lease not renewed: %s (retried every period)",
                     PG_ERRLINE(res, err));
        return;
    }
    if (l->fails > 0)
        log_info("terminal session lease renewed again after %u failure(s)", l->fails);
    l->fails = 0;
    long closed = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (closed > 0)
        log_info("closed %ld terminal session(s) of daemons whose lease lapsed", closed);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    SessionLease *l = arg;
    (void)fd;
    (void)what;
    if (l->inflight || l->env->stopping)
        return;
    if (!pg_pool_available(l->env->pg))
        return; /* the breaker is open: it would only wait; the next tick after it closes */
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", l->env->cfg->session_lease_ms);
    const char *p[] = {l->env->server_id, ms};
    l->inflight =
        pg_query(l->env->pg, "SELECT careline_session_lease($1, $2::integer)", 2, p, renewed, l);
}

SessionLease *session_lease_new(const Env *env)
{
    SessionLease *l = xcalloc(1, sizeof(*l));
    l->env = env;
    l->timer = event_new(env->base, -1, EV_PERSIST, tick, l);
    ASSERT(l->timer);
    int every = env->cfg->session_lease_ms / 3;
    event_add(l->timer, &(struct timeval){every / 1000, (every % 1000) * 1000});
    tick(-1, 0, l);
    return l;
}

void session_lease_free(SessionLease *l)
{
    if (!l)
        return;
    event_free(l->timer);
    if (l->inflight)
        l->freed = true;
    else
        free(l);
}
