/*
 * bureau_auth: the HTTP door's bearer token. It goes to the same checker as the protocol's
 * Hello (net/http_bearer.h over net/authcache.h: positive and negative caches, the per-address
 * lockout, the lookup budget), so a dashboard polling every few seconds costs no query and a flood
 * of wrong tokens cannot crowd submissions out of the pool. Only the bureau and admin roles may
 * read coverage.
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
    void (*then)(Req *r, const void *arg);
    const void *arg;
} AuthOp;

static bool role_may_read(Role role)
{
    return role == CARELINE__V1__ROLE__ROLE_BUREAU || role == CARELINE__V1__ROLE__ROLE_ADMIN;
}

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
        if (role_may_read(a->role))
            op->then(r, op->arg);
        else
            bureau_req_fail(r, ERRC(FORBIDDEN), NULL, "the %s role may not read coverage figures",
                            auth_role_name(a->role));
    } else if (v.retry) {
        fail_retry(r, v.status, v.code_name, a);
    } else {
        bureau_req_fail(r, v.code, NULL, "%s", a->message);
    }
    free(op);
}

void bureau_auth_check(Req *r, void (*then)(Req *r, const void *arg), const void *arg)
{
    AuthOp *op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->then = then;
    op->arg = arg;
    if (!r->hreq ||
        !http_bearer_check(sessions_authcache(r->b->env->sessions), r->hreq, auth_decided, op)) {
        free(op);
        bureau_req_fail(r, ERRC(NOT_AUTHENTICATED), NULL,
                        "missing bearer token: send Authorization: Bearer TOKEN (a bureau token)");
    }
}
