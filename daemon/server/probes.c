/*
 * probes: the server's own HTTP answers — /healthz (the loop answers), /readyz (PostgreSQL
 * and Redis reachable, the schema version checked, the directory loaded, not shutting down) and
 * /metrics (Prometheus text of this server's counters).
 */
#include <stdio.h>

#include <event2/buffer.h>

#include "core/dispatch.h"
#include "server/server.h"
#include "store/schema.h"

static void healthz(void *arg, struct evhttp_request *req)
{
    Server *s = arg;
    http_send(s->http, req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static void readyz(void *arg, struct evhttp_request *req)
{
    Server *s = arg;
    bool pg = pg_pool_ready(s->pg), rds = rds_ready(s->rds);
    bool dir = s->dispatch && dispatch_ready(s->dispatch);
    bool schema = schema_check_passed(s->schema);
    bool ready = pg && rds && dir && schema && !s->shutting_down;
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"ready\":%s,\"postgres\":%s,\"redis\":%s,\"directory\":%s,"
                     "\"schema\":%s,\"shutting_down\":%s}\n",
                     ready ? "true" : "false", pg ? "true" : "false", rds ? "true" : "false",
                     dir ? "true" : "false", schema ? "true" : "false",
                     s->shutting_down ? "true" : "false");
    http_send(s->http, req, ready ? 200 : 503, "application/json", body, (size_t)n);
}

static void metrics_page(void *arg, struct evhttp_request *req)
{
    Server *s = arg;
    s->metrics.pg_queries = pg_pool_queries(s->pg);
    struct evbuffer *b = evbuffer_new();
    metrics_render(&s->metrics, b, pg_pool_ready(s->pg), rds_ready(s->rds));
    size_t n = evbuffer_get_length(b);
    http_send(s->http, req, 200, "text/plain; version=0.0.4; charset=utf-8",
              (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

void probes_install(Server *s)
{
    http_route(s->http, "/healthz", healthz, s);
    http_route(s->http, "/readyz", readyz, s);
    http_route(s->http, "/metrics", metrics_page, s);
}
