/*
 * admin_revoke: a revoked principal (careline_principals NOTIFY, from the admin API on any
 * daemon or an UPDATE in psql) stops working here within a notification's delay: the token
 * cache forgets it, so its next Hello or HTTP request is checked against PostgreSQL (and
 * refused), and its open protocol sessions get a fatal AUTH_FAILED and are closed.
 */
#include "admin/admin_int.h"

#include <stdlib.h>

#include "common/log.h"
#include "net/session.h"

static void revoked_cb(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    Admin *a = arg;
    if (!payload)
        return; /* (re)subscribed: the positive cache's TTL bounds what a gap let through */
    char *end;
    long long id = strtoll(payload, &end, 10);
    if (*end || id <= 0) {
        log_warn("admin: careline_principals payload is not a principal id; ignored");
        return;
    }
    authcache_forget_principal(sessions_authcache(a->env->sessions), id);
    int closed = 0;
    for (Conn *c = a->env->conns->conns; c; c = c->next) {
        if (c->principal_id == id && conn_alive(c)) {
            conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__AUTH_FAILED, true,
                            "this session's token was revoked");
            closed++;
        }
    }
    log_info("admin: principal %lld revoked; %d open sessions closed", id, closed);
}

void admin_revoke_install(Admin *a)
{
    pg_pool_listen(a->env->pg, "careline_principals", revoked_cb, a);
}
