/*
 * http: a small exact-path router over evhttp's generic callback. Errors are always JSON
 * with a code and a sentence, and every 4xx/5xx is counted in the server's metrics.
 */
#include "net/http.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

#define HTTP_ROUTES      32
#define HTTP_MAX_BODY    (64 * 1024)
#define HTTP_MAX_HEADERS (16 * 1024)

typedef struct {
    const char *path; /* static storage: the registering module's literal */
    HttpHandler fn;
    void *arg;
} Route;

struct Http {
    struct evhttp *ev;
    Metrics *metrics; /* borrowed */
    int port;         /* bound port */
    Route routes[HTTP_ROUTES];
    size_t nroutes;
};

void http_route(Http *h, const char *path, HttpHandler fn, void *arg)
{
    for (size_t i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].path, path) == 0) {
            h->routes[i] = (Route){path, fn, arg};
            return;
        }
    }
    ASSERT(h->nroutes < HTTP_ROUTES);
    h->routes[h->nroutes++] = (Route){path, fn, arg};
}

void http_send(Http *h, struct evhttp_request *req, int status, const char *content_type,
               const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (status >= 400) {
        h->metrics->http_errors++;
        char *ip = NULL;
        ev_uint16_t port = 0;
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        if (evcon)
            evhttp_connection_get_peer(evcon, &ip, &port);
        char uri[121];
        const char *u = evhttp_request_get_uri(req);
        snprintf(uri, sizeof(uri), "%s", u ? u : "?");
        for (char *p = uri; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?'; /* the client's bytes never forge a log line */
        /* one client can cause these at will: rate-limited */
        log_limited(LOG_INFO, "HTTP %d for %s:%u: %s", status, ip ? ip : "?", port, uri);
    }
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

void http_send_error(Http *h, struct evhttp_request *req, int status, const char *code,
                     const char *msg)
{
    char safe[512]; /* msg may quote the request: the body is valid UTF-8 whatever it held */
    util_utf8_escape(msg, strlen(msg), safe, sizeof(safe));
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    json_escape(b, safe);
    evbuffer_add_printf(b, "\"}}\n");
    size_t n = evbuffer_get_length(b);
    http_send(h, req, status, "application/json", (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

static void route_cb(struct evhttp_request *req, void *arg)
{
    Http *h = arg;
    h->metrics->http_requests++;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path) {
        http_send_error(h, req, 400, "BAD_REQUEST", "malformed request URI");
        return;
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].path, path) == 0) {
            h->routes[i].fn(h->routes[i].arg, req);
            return;
        }
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "no such path: %.200s", path);
    http_send_error(h, req, 404, "NOT_FOUND", msg);
}

static int bound_port(struct evhttp_bound_socket *b)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

Http *http_new(struct event_base *base, const Config *cfg, Metrics *m)
{
    Http *h = xcalloc(1, sizeof(*h));
    h->metrics = m;
    h->ev = evhttp_new(base);
    if (!h->ev)
        goto fail;
    evhttp_set_timeout(h->ev, (cfg->http_timeout_ms + 999) / 1000);
    evhttp_set_max_body_size(h->ev, HTTP_MAX_BODY);
    evhttp_set_max_headers_size(h->ev, HTTP_MAX_HEADERS);
    evhttp_set_allowed_methods(h->ev, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(h->ev, route_cb, h);
    struct evhttp_bound_socket *b =
        evhttp_bind_socket_with_handle(h->ev, cfg->http_addr, (ev_uint16_t)cfg->http_port);
    if (!b) {
        log_error("cannot listen for HTTP on %s:%d", cfg->http_addr, cfg->http_port);
        goto fail;
    }
    h->port = bound_port(b);
    return h;
fail:
    http_free(h);
    return NULL;
}

int http_port(const Http *h)
{
    return h->port;
}

void http_free(Http *h)
{
    if (!h)
        return;
    if (h->ev)
        evhttp_free(h->ev);
    free(h);
}
