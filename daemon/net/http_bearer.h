/*
 * http_bearer: the HTTP doors' bearer token (the bureau's /v1/coverage..., the admin's
 * /v1/admin/...): "Authorization: Bearer TOKEN" goes to the server's one token checker
 * (net/authcache.h: caches, the per-address lockout with the client's address, the lookup
 * budget), and every verdict maps to one answer, so each door applies the same rules and
 * only adds its role check.
 */
#ifndef CARELINE_HTTP_BEARER_H
#define CARELINE_HTTP_BEARER_H

#include <event2/http.h>
#include <stdbool.h>

#include "net/authcache.h"

typedef struct {
    int status;            /* 0 for AUTH_OK; else the HTTP status: 401, 429, 503 or 500 */
    int code;              /* the ErrorCode of the answer (AUTH_FAILED, OVERLOADED, ...) */
    const char *code_name; /* its name, for the JSON error */
    bool retry;            /* send Retry-After: the answer's retry_after_s (at least 1) */
    bool failed_auth;      /* count it as a failed authentication (Metrics.auth_failed) */
} HttpBearerVerdict;

/* Checks req's bearer token: false (cb never called) when req has no "Authorization:
 * Bearer ..." header; else true, and cb fires exactly once as authcache_check says. */
bool http_bearer_check(AuthCache *ac, struct evhttp_request *req, AuthCb cb, void *arg);
/* How to answer a non-OK verdict (status 0 for AUTH_OK). */
HttpBearerVerdict http_bearer_verdict(const AuthAnswer *a);

#endif
