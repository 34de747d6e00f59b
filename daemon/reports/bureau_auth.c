/*
 * bureau_auth: the HTTP door's bearer token. It goes to the same checker as the protocol's
 * Hello (net/http_bearer.h over net/authcache.h: positive and negative caches, the per-address
 * lockout, the lookup budget), so a dashboard polling every few seconds costs no query and a flood
 * of wrong tokens cannot crowd submissions out of the pool. Only the bureau and admin roles may
 * read coverage; other modules' endpoints (bureau_http_authorize) name the roles they let in.
 */
#include "reports/bureau_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "net/http_bearer.h"

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
    HttpBearerVerdict v = http_bearer_verdict(a);
    if (v.failed_auth)
        r->b->env->metrics->auth_failed++;
    if (v.status == 0) {
        if (a->role && (op->roles & (1u << a->role)))
            op->then(r, op->arg, a);
        else
            bureau_req_fail(r, ERRC(FORBIDDEN), NULL, "the %s role may not %s",
                            auth_role_name(a->role), op->what);
    } else if (v.retry) {
        fail_retry(r, v.status, v.code_name, a);
    } else {
        bureau_req_fail(r, v.code, NULL, "%s", a->message);
    }
    free(op);
}

void bureau_auth_check(Req *r, unsigned roles, const char *what, BureauThen then, const void *arg)
{
    AuthOp *op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->then = then;
    op->arg = arg;
    op->roles = roles;
    op->what = what;
    if (!r->hreq ||
        !http_bearer_check(sessions_authcache(r->b->env->sessions), r->hreq, auth_decided, op)) {
        free(op);
        bureau_req_fail(r, ERRC(NOT_AUTHENTICATED), NULL,
                        "missing bearer token: send Authorization: Bearer TOKEN");
    }
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
    bureau_auth_check(r, roles, what, pass_on, NULL);
}
