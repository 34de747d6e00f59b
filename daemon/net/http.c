/*
 * http: a small exact-path router over evhttp's generic callback, so unknown paths and
 * methods get JSON errors instead of evhttp's HTML ones.
 */
#include "net/http.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/dispatch.h"
#include "common/log.h"
#include "base/metrics.h"
#include "server/server.h"

#define HTTP_ROUTES      32
#define HTTP_MAX_BODY    (64 * 1024)
#define HTTP_MAX_HEADERS (16 * 1024)

typedef struct {
    const char *path;
    HttpHandler h;
} Route;

static Route routes[HTTP_ROUTES];
static size_t nroutes;

void http_route(const char *path, HttpHandler h)
{
    for (size_t i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].path, path) == 0) {
            routes[i].h = h;
            return;
        }
    }
    ASSERT(nroutes < HTTP_ROUTES);
    routes[nroutes++] = (Route){path, h};
}

void http_send(struct evhttp_request *req, int status, const char *content_type, const char *body,
               size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (status >= 400)
        metrics.http_errors++;
    evhttp_send_reply(req, status, status < 400 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void json_escape(struct evbuffer *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(b, "\\u%04x", ch);
        else
            evbuffer_add(b, s, 1);
    }
}

void http_send_error(struct evhttp_request *req, int status, const char *code, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    json_escape(b, msg);
    evbuffer_add_printf(b, "\"}}\n");
    size_t n = evbuffer_get_length(b);
    http_send(req, status, "application/json", (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

static void healthz(Server *s, struct evhttp_request *req)
{
    (void)s;
    http_send(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static void readyz(Server *s, struct evhttp_request *req)
{
    bool pg = pg_pool_ready(s->pg), rds = rds_ready(s->rds);
    bool dir = s->dispatch && dispatch_ready(s->dispatch);
    bool ready = pg && rds && dir && !s->shutting_down;
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"ready\":%s,\"postgres\":%s,\"redis\":%s,\"directory\":%s,"
                     "\"shutting_down\":%s}\n",
                     ready ? "true" : "false", pg ? "true" : "false", rds ? "true" : "false",
                     dir ? "true" : "false", s->shutting_down ? "true" : "false");
    http_send(req, ready ? 200 : 503, "application/json", body, (size_t)n);
}

static void metrics_page(Server *s, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    metrics_render(b, pg_pool_ready(s->pg), rds_ready(s->rds));
    size_t n = evbuffer_get_length(b);
    http_send(req, 200, "text/plain; version=0.0.4; charset=utf-8",
              (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

static void dispatch_cb(struct evhttp_request *req, void *arg)
{
    Server *s = arg;
    metrics.http_requests++;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path) {
        http_send_error(req, 400, "BAD_REQUEST", "malformed request URI");
        return;
    }
    for (size_t i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].path, path) == 0) {
            routes[i].h(s, req);
            return;
        }
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "no such path: %.200s", path);
    http_send_error(req, 404, "NOT_FOUND", msg);
}

static int bound_port(struct evhttp_bound_socket *h)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

bool http_start(Server *s)
{
    http_route("/healthz", healthz);
    http_route("/readyz", readyz);
    http_route("/metrics", metrics_page);
    s->http = evhttp_new(s->base);
    if (!s->http)
        return false;
    evhttp_set_timeout(s->http, (s->cfg.http_timeout_ms + 999) / 1000);
    evhttp_set_max_body_size(s->http, HTTP_MAX_BODY);
    evhttp_set_max_headers_size(s->http, HTTP_MAX_HEADERS);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(s->http, dispatch_cb, s);
    struct evhttp_bound_socket *h =
        evhttp_bind_socket_with_handle(s->http, s->cfg.http_addr, (ev_uint16_t)s->cfg.http_port);
    if (!h) {
        log_error("cannot listen for HTTP on %s:%d", s->cfg.http_addr, s->cfg.http_port);
        return false;
    }
    s->http_port = bound_port(h);
    return true;
}

void http_stop(Server *s)
{
    if (s->http)
        evhttp_free(s->http);
    s->http = NULL;
}
