/*
 * http: the daemon's HTTP side on evhttp — /healthz (the loop answers), /readyz (PostgreSQL
 * and Redis reachable, not shutting down), /metrics (Prometheus text), and the routes other
 * modules install (e.g. /v1/coverage). Requests have a timeout and a body-size cap.
 */
#ifndef CARELINE_HTTP_H
#define CARELINE_HTTP_H

#include <event2/http.h>
#include <stdbool.h>

#include "common/util.h"

struct Server;

/* Binds cfg.http_addr:http_port and installs the built-in routes. */
bool http_start(struct Server *s) MUSTCHECK;
void http_stop(struct Server *s);

/* A route handler answers req exactly once (now or later). */
typedef void (*HttpHandler)(struct Server *s, struct evhttp_request *req);
/* Installs a handler for an exact path (query string ignored), before the loop runs. */
void http_route(const char *path, HttpHandler h);

/* Sends {"error":{"code":CODE,"message":MSG}} with the status; counts it. */
void http_send_error(struct evhttp_request *req, int status, const char *code, const char *msg);
/* Sends body (copied) with the content type. */
void http_send(struct evhttp_request *req, int status, const char *content_type, const char *body,
               size_t len);

#endif
