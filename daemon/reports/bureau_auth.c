/*
 * bureau_auth: the HTTP door's bearer token. It goes to the same checker as the protocol's
 * Hello (net/authcache.h: positive and negative caches, the per-address lockout, the lookup
 * budget), so a dashboard polling every few seconds costs no query and a flood of wrong
 * tokens cannot crowd submissions out of the pool. Only the bureau and admin roles may read
 * coverage; other modules' endpoints (bureau_http_authorize) name the roles they let in.
 */
#include "reports/bureau_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

typedef struct {
    Req *r;
    BureauThen then;
    const void *arg;
    unsigned roles;   /* 1 << Role of each role let through */
    const char *what; /* what the others may not do, e.g. "read coverage figures" */
} AuthOp;

/* 429 (locked out) or 503 (busy, unavailable), saying when to come back. */
static void fail_retry(Req *r, int status, const char *code, const AuthAnswer *a)
{
    struct evhttp_request *h = bureau_req_take_http(r);
    if (h) {
        char after[16];
        snprintf(after, sizeof(after), "%d", a->retry_after_s > 0 ? a->retry_after_s : 1);
        evhttp_add_header(evhttp_request_get_output_headers(h), "Retry-After", after);
        bureau_http_error(r->b->env->http, h, status, code, NULL, a->message);
    }
    bureau_req_free(r);
}

/* AuthCb */
static void auth_decided(void *arg, const AuthAnswer *a)
{
    AuthOp *op = arg;
    Req *r = op->r;
    switch (a->verdict) {
    case AUTH_OK:
        if (a->role && (op->roles & (1u << a->role)))
            op->then(r, op->arg, a);
        else
            bureau_req_fail(r, ERRC(FORBIDDEN), NULL, "the %s role may not %s",
                            auth_role_name(a->role), op->what);
        break;
    case AUTH_DENIED:
    case AUTH_MALFORMED:
        r->b->env->metrics->auth_failed++;
        bureau_req_fail(r, ERRC(AUTH_FAILED), NULL, "%s", a->message);
        break;
    case AUTH_LOCKED:
        r->b->env->metrics->auth_failed++;
        fail_retry(r, 429, "AUTH_FAILED", a);
        break;
    case AUTH_BUSY:
        fail_retry(r, 503, "OVERLOADED", a);
        break;
    case AUTH_UNAVAILABLE:
        fail_retry(r, 503, "UNAVAILABLE", a);
        break;
    default:
        bureau_req_fail(r, ERRC(INTERNAL), NULL, "%s", a->message);
        break;
    }
    free(op);
}

void bureau_auth_check(Req *r, const char *auth, unsigned roles, const char *what, BureauThen then,
                       const void *arg)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        bureau_req_fail(r, ERRC(NOT_AUTHENTICATED), NULL,
                        "missing bearer token: send Authorization: Bearer TOKEN (a bureau token)");
        return;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    char *ip = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *evcon = r->hreq ? evhttp_request_get_connection(r->hreq) : NULL;
    if (evcon)
        evhttp_connection_get_peer(evcon, &ip, &port);
    AuthOp *op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->then = then;
    op->arg = arg;
    op->roles = roles;
    op->what = what;
    authcache_check(sessions_authcache(r->b->env->sessions), ip, tok, auth_decided, op);
}

/* ---- for other modules' endpoints (bureau.h) ---------------------------------------------- */

static void pass_on(Req *r, const void *arg, const AuthAnswer *a)
{
    (void)arg;
    BureauAuthThen then = r->pass_then;
    void *targ = r->pass_arg;
    struct evhttp_request *h = bureau_req_take_http(r);
    bureau_req_free(r);
    then(targ, h, h ? a : NULL);
}

void bureau_http_authorize(Bureau *b, struct evhttp_request *h, unsigned roles, const char *what,
                           BureauAuthThen then, void *arg)
{
    Req *r = bureau_req_new(b, OUT_JSON);
    r->pass_then = then;
    r->pass_arg = arg;
    bureau_req_watch_http(r, h);
    bureau_auth_check(r, evhttp_find_header(evhttp_request_get_input_headers(h), "Authorization"),
                      roles, what, pass_on, NULL);
}
