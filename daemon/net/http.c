/*
 * http: a small exact-path router over evhttp's generic callback. Errors are always JSON
 * with a code and a sentence, and every 4xx/5xx is counted in the server's metrics.
 * libevent 2.1 tells of a new connection only through bevcb, before the connection object
 * exists and its socket is set. So an HttpConn is made there with its bufferevent (socket
 * or OpenSSL), and an event activated at once runs later in the same loop turn, after
 * evhttp has wired the connection up and before any of its I/O: it finds the connection
 * (the bufferevent's callback argument), its peer, sets the close callback that ends the
 * HttpConn, applies the caps and arms the request deadline. A connection over a limit is
 * shut down; evhttp sees the end of the stream and frees it.
 */
#include "net/http.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
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

typedef struct HttpConn {
    struct Http *h;
    struct bufferevent *bev;         /* what bevcb made; evhttp owns it */
    struct evhttp_connection *evcon; /* once adopted */
    struct event *adopt;             /* activated in bevcb: runs once the connection is set */
    struct event *deadline;          /* the whole request must have arrived by then */
    int64_t accepted_ms;             /* monotonic */
    bool adopted;                    /* counted against the caps */
    bool refused;                    /* over a cap or the deadline: being shut down */
    bool got_request;                /* a whole request reached a route: no deadline now */
    void (*on_close)(void *arg);     /* http_watch_close */
    void *on_close_arg;
    char addr[INET6_ADDRSTRLEN];     /* the peer's IP address, once adopted */
    char peer[INET6_ADDRSTRLEN + 8]; /* "ip:port" for logs */
    struct HttpConn *prev, *next;    /* Http.conns */
} HttpConn;

struct Http {
    struct evhttp *ev;
    const Config *cfg; /* borrowed: the live config (caps and deadline may change on SIGHUP) */
    Metrics *metrics;  /* borrowed */
    Tls *tls;          /* borrowed; NULL = plaintext */
    int port;          /* bound port */
    Route routes[HTTP_ROUTES];
    size_t nroutes;
    HttpConn *conns; /* every connection libevent has not freed yet */
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
    /* one request per connection: the next one would get no deadline of its own */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
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

/* ---- connections: caps and the request deadline ---------------------------------------- */

static HttpConn *conn_of(Http *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (HttpConn *hc = h->conns; hc && evcon; hc = hc->next)
        if (hc->evcon == evcon)
            return hc;
    return NULL;
}

/* Ends the connection: evhttp reads the end of the stream and frees it (and so hc). */
static void refuse(HttpConn *hc, const char *why)
{
    hc->refused = true;
    evtimer_del(hc->deadline);
    evutil_socket_t fd = bufferevent_getfd(hc->bev);
    log_debug("HTTP %s: closing: %s", hc->peer, why);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* evhttp frees the connection (any reason, also evhttp_free): the HttpConn goes with it. */
static void conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    HttpConn *hc = arg;
    Http *h = hc->h;
    if (h->tls && !hc->refused) {
        SSL *ssl = bufferevent_openssl_get_ssl(hc->bev);
        if (ssl && SSL_is_init_finished(ssl)) {
            tls_handshake_done(h->tls);
        } else {
            tls_handshake_failed(h->tls, hc->peer, tls_bev_error(hc->bev));
        }
    }
    if (hc->on_close)
        hc->on_close(hc->on_close_arg);
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        h->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    h->metrics->http_conns_current--;
    event_free(hc->adopt);
    event_free(hc->deadline);
    free(hc);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    HttpConn *hc = arg;
    if (!hc->got_request && !hc->refused) {
        hc->h->metrics->http_deadline_closes++;
        refuse(hc, "request not complete within http_request_deadline_ms");
    }
}

/* Same loop turn as bevcb, after evhttp set the connection up: count it against the caps. */
static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    HttpConn *hc = arg;
    Http *h = hc->h;
    void *cbarg = NULL;
    /* evhttp's own callbacks on the bufferevent carry its connection */
    bufferevent_getcb(hc->bev, NULL, NULL, NULL, &cbarg);
    ASSERT(cbarg);
    hc->evcon = cbarg;
    hc->adopted = true;
    evhttp_connection_set_closecb(hc->evcon, conn_closed_cb, hc);
    char *ip = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(hc->evcon, &ip, &port);
    snprintf(hc->addr, sizeof(hc->addr), "%s", ip ? ip : "?");
    snprintf(hc->peer, sizeof(hc->peer), "%s:%u", hc->addr, (unsigned)port);
    int total = 0, same = 0;
    for (HttpConn *o = h->conns; o; o = o->next) {
        if (!o->adopted || o->refused)
            continue;
        total++;
        same += strcmp(o->addr, hc->addr) == 0;
    }
    if (total > h->cfg->http_max_conns) {
        h->metrics->http_conns_refused++;
        refuse(hc, "http_max_conns reached");
        return;
    }
    if (same > h->cfg->http_max_conns_per_addr) {
        h->metrics->http_addr_refused++;
        refuse(hc, "http_max_conns_per_addr reached for this address");
        return;
    }
    int64_t left = hc->accepted_ms + h->cfg->http_request_deadline_ms - util_now_ms();
    if (left < 1)
        left = 1;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(hc->deadline, &tv);
}

/* evhttp's bevcb: a new connection, its socket not set yet. */
static struct bufferevent *conn_bev_cb(struct event_base *base, void *arg)
{
    Http *h = arg;
    HttpConn *hc = xcalloc(1, sizeof(*hc));
    hc->h = h;
    hc->accepted_ms = util_now_ms();
    snprintf(hc->peer, sizeof(hc->peer), "?");
    if (h->tls) {
        SSL *ssl = tls_ssl_new(h->tls, TLS_PORT_HTTP);
        hc->bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                       BEV_OPT_CLOSE_ON_FREE)
                      : NULL;
        if (hc->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(hc->bev, 1);
    } else {
        hc->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    hc->adopt = event_new(base, -1, 0, adopt_cb, hc);
    hc->deadline = evtimer_new(base, deadline_cb, hc);
    /* out of memory: never serve a connection outside the caps (or in plaintext) */
    ASSERT(hc->bev && hc->adopt && hc->deadline);
    hc->next = h->conns;
    if (h->conns)
        h->conns->prev = hc;
    h->conns = hc;
    h->metrics->http_conns_current++;
    event_active(hc->adopt, EV_TIMEOUT, 0);
    return hc->bev;
}

bool http_watch_close(Http *h, struct evhttp_request *req, void (*cb)(void *arg), void *arg)
{
    HttpConn *hc = conn_of(h, req);
    if (!hc)
        return false;
    hc->on_close = cb;
    hc->on_close_arg = arg;
    return true;
}

static void route_cb(struct evhttp_request *req, void *arg)
{
    Http *h = arg;
    h->metrics->http_requests++;
    HttpConn *hc = conn_of(h, req);
    if (hc) {
        hc->got_request = true; /* whole: the deadline is met; evhttp's timeout covers the reply */
        evtimer_del(hc->deadline);
    }
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

Http *http_new(struct event_base *base, const Config *cfg, Metrics *m, Tls *tls)
{
    Http *h = xcalloc(1, sizeof(*h));
    h->cfg = cfg;
    h->metrics = m;
    h->tls = tls;
    h->ev = evhttp_new(base);
    if (!h->ev)
        goto fail;
    evhttp_set_timeout(h->ev, (cfg->http_timeout_ms + 999) / 1000);
    evhttp_set_max_body_size(h->ev, HTTP_MAX_BODY);
    evhttp_set_max_headers_size(h->ev, HTTP_MAX_HEADERS);
    evhttp_set_allowed_methods(h->ev, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(h->ev, route_cb, h);
    evhttp_set_bevcb(h->ev, conn_bev_cb, h);
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
        evhttp_free(h->ev); /* each connection's close callback frees its HttpConn */
    while (h->conns) {      /* any evhttp freed without calling it */
        HttpConn *hc = h->conns;
        h->conns = hc->next;
        event_free(hc->adopt);
        event_free(hc->deadline);
        free(hc);
    }
    free(h);
}
