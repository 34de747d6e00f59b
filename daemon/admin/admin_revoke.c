/*
 * admin_revoke: a revoked principal (careline_principals NOTIFY, from the admin API on any
 * daemon or an UPDATE in psql) stops working here within a notification's delay: the token
 * cache forgets it, so its next Hello or HTTP request is checked against PostgreSQL (and
 * refused), and its open protocol sessions get a fatal AUTH_FAILED and are closed. A
 * notification sent while the LISTEN connection was down is lost, so each time the LISTEN
 * comes back the principals revoked in the last day are looked up and their sessions closed.
 */
#include "admin/admin_int.h"

#include <stdlib.h>

#include "common/log.h"
#include "net/session.h"

static void revoke(Admin *a, long long id)
{
    authcache_forget_principal(sessions_authcache(a->env->sessions), id);
    int closed = 0;
    for (Conn *c = a->env->conns->conns; c; c = c->next) {
        if (c->principal_id == id && conn_alive(c)) {
            conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__AUTH_FAILED, true,
                            "this session's token was revoked");
            closed++;
        }
    }
    if (closed)
        log_info("admin: principal %lld revoked; %d open sessions closed", id, closed);
}

/* The principals revoked meanwhile: their sessions here are closed. */
static void resync_done(PGresult *res, const char *err, void *arg)
{
    Admin *a = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("admin: revoked sessions not re-checked: %s", PG_ERRLINE(res, err));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        revoke(a, strtoll(PQgetvalue(res, i, 0), NULL, 10));
}

/* Principals revoked in the last day (a LISTEN gap longer than that would have left the
 * daemon unready long before): their sessions are closed if any is still open here. */
static void resync(Admin *a)
{
    if (!a->env->conns->conns)
        return; /* no session to close */
    if (!pg_query(a->env->pg,
                  "SELECT id FROM principals WHERE revoked_at > now() - interval '1 day'", 0, NULL,
                  resync_done, a))
        log_warn("admin: revoked sessions not re-checked: the database queue is full");
}

static void revoked_cb(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    Admin *a = arg;
    if (!payload) {
        resync(a); /* (re)subscribed: what a gap in the LISTEN may have missed */
        return;
    }
    char *end;
    long long id = strtoll(payload, &end, 10);
    if (*end || id <= 0) {
        log_warn("admin: careline_principals payload is not a principal id; ignored");
        return;
    }
    revoke(a, id);
}

void admin_revoke_install(Admin *a)
{
    pg_pool_listen(a->env->pg, "careline_principals", revoked_cb, a);
}
