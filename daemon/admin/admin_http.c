/*
 * admin_http: the HTTP door. Each /v1/admin/... path is one operation: the changing ones
 * take POST with a JSON object body (the arguments, "reason", and for imports "records" and
 * "dry_run"), the reading ones GET with query parameters. The bearer token is checked by
 * net/http_bearer.h with the same rules as the bureau's HTTP door (the server's one token
 * checker: caches, lockout, lookup budget); only the admin role passes (others: 403).
 */
#include "admin/admin_int.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "net/http_bearer.h"
#include "net/session.h"

#define ERRC(x) CARELINE__V1__ERROR_CODE__##x

typedef struct {
    const char *path, *op;
} AdminRoute;

static const AdminRoute routes[] = {
    {"/v1/admin/residents/register", "resident.register"},
    {"/v1/admin/residents/update", "resident.update"},
    {"/v1/admin/residents/deactivate", "resident.deactivate"},
    {"/v1/admin/residents/import", "resident.import"},
    {"/v1/admin/residents/find", "resident.find"},
    {"/v1/admin/residents/get", "resident.get"},
    {"/v1/admin/stations/create", "station.create"},
    {"/v1/admin/stations/update", "station.update"},
    {"/v1/admin/stations/retire", "station.retire"},
    {"/v1/admin/stations/import", "station.import"},
    {"/v1/admin/stations/list", "station.list"},
    {"/v1/admin/stations/get", "station.get"},
    {"/v1/admin/tokens/issue", "token.issue"},
    {"/v1/admin/tokens/revoke", "token.revoke"},
    {"/v1/admin/tokens/list", "token.list"},
    {"/v1/admin/settings/set", "setting.set"},
    {"/v1/admin/settings/list", "setting.list"},
    {"/v1/admin/audit", "audit.query"},
};

/* GET: the query string's parameters as the arguments; false after answering r. */
static bool take_query(AdminReq *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->hreq);
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq kv;
    kv.tqh_first = NULL; /* TAILQ_INIT without sys/queue.h */
    kv.tqh_last = &kv.tqh_first;
    if (qs && evhttp_parse_query_str(qs, &kv) != 0) {
        evhttp_clear_headers(&kv);
        admin_req_fail(r, ERRC(INVALID_ARGUMENT), "query",
                       "malformed query string (expected name=value pairs joined by &)");
        return false;
    }
    json_t *args = json_object();
    for (struct evkeyval *e = kv.tqh_first; e; e = e->next.tqe_next)
        json_object_set_new(args, e->key, json_string(e->value));
    evhttp_clear_headers(&kv);
    json_object_set_new(r->doc, "args", args);
    return true;
}

/* POST: the body, a JSON object; "reason", "records" and "dry_run" are lifted out of it, the
 * rest are the arguments. false after answering r. */
static bool take_body(AdminReq *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->hreq);
    size_t n = evbuffer_get_length(in); /* http.c caps it (HTTP_MAX_BODY: 413 beyond) */
    json_error_t jerr;
    json_t *body =
        n ? json_loadb((const char *)evbuffer_pullup(in, -1), n, 0, &jerr) : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        admin_req_fail(r, ERRC(INVALID_ARGUMENT), "body",
                       "the body must be one JSON object (Content-Type: application/json)");
        return false;
    }
    static const char *const lifted[] = {"reason", "records", "dry_run"};
    for (size_t i = 0; i < ARRAY_LEN(lifted); i++) {
        json_t *v = json_object_get(body, lifted[i]);
        if (v) {
            json_object_set(r->doc, lifted[i], v);
            json_object_del(body, lifted[i]);
        }
    }
    json_t *dry = json_object_get(r->doc, "dry_run");
    if (dry && !json_is_boolean(dry)) {
        json_decref(body);
        admin_req_fail(r, ERRC(INVALID_ARGUMENT), "dry_run", "dry_run must be true or false");
        return false;
    }
    json_object_set_new(r->doc, "args", body);
    return true;
}

/* AuthCb */
static void auth_decided(void *arg, const AuthAnswer *a)
{
    AdminReq *r = arg;
    HttpBearerVerdict v = http_bearer_verdict(a);
    if (v.failed_auth)
        r->a->env->metrics->auth_failed++;
    if (v.status != 0 && v.retry && r->hreq) {
        char after[16];
        snprintf(after, sizeof(after), "%d", a->retry_after_s > 0 ? a->retry_after_s : 1);
        evhttp_add_header(evhttp_request_get_output_headers(r->hreq), "Retry-After", after);
        json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", v.code_name, "message", a->message);
        admin_req_send_json(r, v.status, o);
        json_decref(o);
        return;
    }
    if (v.status != 0 || !r->hreq) {
        admin_req_fail(r, v.code, NULL, a->message);
        return;
    }
    if (a->role != CARELINE__V1__ROLE__ROLE_ADMIN) {
        char msg[96];
        snprintf(msg, sizeof(msg), "the %s role may not use the admin API",
                 auth_role_name(a->role));
        admin_req_fail(r, ERRC(FORBIDDEN), NULL, msg);
        return;
    }
    bool post = evhttp_request_get_command(r->hreq) == EVHTTP_REQ_POST;
    if (post ? take_body(r) : take_query(r))
        admin_req_run(r, a->principal_id, a->name);
}

static void http_entry(void *arg, struct evhttp_request *h)
{
    Admin *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(h));
    const AdminRoute *rt = NULL;
    for (size_t i = 0; !rt && i < ARRAY_LEN(routes); i++)
        if (strcmp(routes[i].path, path) == 0)
            rt = &routes[i];
    ASSERT(rt); /* only our paths are routed here */
    bool changes = admin_op_changes(rt->op);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(h);
    if (changes ? cmd != EVHTTP_REQ_POST : (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)) {
        evhttp_add_header(evhttp_request_get_output_headers(h), "Allow",
                          changes ? "POST" : "GET, HEAD");
        http_send_error(a->env->http, h, 405, "METHOD_NOT_ALLOWED",
                        changes ? "use POST for this endpoint" : "use GET for this endpoint");
        return;
    }
    AdminReq *r = admin_req_new(a, rt->op, NULL, 0, h);
    if (!http_bearer_check(sessions_authcache(a->env->sessions), h, auth_decided, r))
        admin_req_fail(r, ERRC(NOT_AUTHENTICATED), NULL,
                       "missing bearer token: send Authorization: Bearer TOKEN (an admin token)");
}

void admin_http_install(Admin *a)
{
    for (size_t i = 0; i < ARRAY_LEN(routes); i++)
        http_route(a->env->http, routes[i].path, http_entry, a);
}
