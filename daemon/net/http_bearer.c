/*
 * http_bearer: the bearer header's parsing and the verdicts' answers, shared by the HTTP
 * doors (reports/bureau_auth.c, admin/admin_http.c).
 */
#include "net/http_bearer.h"

#include <strings.h>

#define ERRC(x) CARELINE__V1__ERROR_CODE__##x

bool http_bearer_check(AuthCache *ac, struct evhttp_request *req, AuthCb cb, void *arg)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    char *ip = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_get_peer(evcon, &ip, &port);
    authcache_check(ac, ip, tok, cb, arg);
    return true;
}

HttpBearerVerdict http_bearer_verdict(const AuthAnswer *a)
{
    switch (a->verdict) {
    case AUTH_OK:
        return (HttpBearerVerdict){0, 0, "OK", false, false};
    case AUTH_DENIED:
    case AUTH_MALFORMED:
        return (HttpBearerVerdict){401, ERRC(AUTH_FAILED), "AUTH_FAILED", false, true};
    case AUTH_LOCKED:
        return (HttpBearerVerdict){429, ERRC(AUTH_FAILED), "AUTH_FAILED", true, true};
    case AUTH_BUSY:
        return (HttpBearerVerdict){503, ERRC(OVERLOADED), "OVERLOADED", true, false};
    case AUTH_UNAVAILABLE:
        return (HttpBearerVerdict){503, ERRC(UNAVAILABLE), "UNAVAILABLE", true, false};
    default:
        return (HttpBearerVerdict){500, ERRC(INTERNAL), "INTERNAL", false, false};
    }
}
