/*
 * http: the daemon's HTTP side on evhttp — an exact-path router whose routes the higher
 * layers install (the server's /healthz, /readyz, /metrics; the bureau's /v1/...), so
 * unknown paths and methods get JSON errors instead of evhttp's HTML ones. Requests have a
 * timeout and a body-size cap. One Http per server: routes never leak between servers.
 * Connections come through evhttp_set_bevcb: TLS when the server has a certificate, a cap
 * on open connections (http_max_conns) and per IP address (http_max_conns_per_addr), and
 * a deadline for the whole request (http_request_deadline_ms from connecting, handshake
 * included) that does not restart on every read; every reply closes its connection.
 */
#ifndef CARELINE_HTTP_H
#define CARELINE_HTTP_H

#include <event2/http.h>
#include <stdbool.h>

#include "base/config.h"
#include "base/metrics.h"
#include "common/util.h"
#include "net/tls.h"

typedef struct Http Http;

/* Binds cfg->http_addr:http_port (0 = ephemeral). cfg, m and tls (NULL = plaintext) are
 * borrowed; tls must outlive the Http. NULL (logged) if the address cannot be bound. */
Http *http_new(struct event_base *base, const Config *cfg, Metrics *m, Tls *tls);
/* Stops listening and frees; open requests are dropped. http_free(NULL) is a no-op. */
void http_free(Http *h);
/* The bound port (after ephemeral resolution). */
int http_port(const Http *h);

/* A route handler answers req exactly once (now or later); arg is what was registered. */
typedef void (*HttpHandler)(void *arg, struct evhttp_request *req);
/* Installs a handler for an exact path (query string ignored), before the loop runs. */
void http_route(Http *h, const char *path, HttpHandler fn, void *arg);

/* cb(arg) runs once when req's connection is freed (the peer went away, an error, the end
 * of the reply, or http_free): cb must forget req, which evhttp frees with it. Use this,
 * not evhttp_connection_set_closecb (http.c owns that callback). cb NULL stops watching.
 * false when req's connection is not one of h's. */
bool http_watch_close(Http *h, struct evhttp_request *req, void (*cb)(void *arg), void *arg);

/* Sends {"error":{"code":CODE,"message":MSG}} with the status; counts it. */
void http_send_error(Http *h, struct evhttp_request *req, int status, const char *code,
                     const char *msg);
/* Sends body (copied) with the content type; 4xx/5xx are counted. */
void http_send(Http *h, struct evhttp_request *req, int status, const char *content_type,
               const char *body, size_t len);

#endif
