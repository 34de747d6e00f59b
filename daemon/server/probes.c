/*
 * probes: the server's own HTTP answers — /healthz (the loop answers), /readyz (PostgreSQL
 * and Redis reachable, the schema version checked, the directory loaded, not shutting down) and
 * /metrics (Prometheus text of this server's counters). /readyz lists every raised reason
 * (base/ready.h); the ones the server itself watches are polled here.
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

void probes_poll(Server *s)
{
    Ready *r = &s->ready;
    ready_set(r, READY_POSTGRES_DOWN, !pg_pool_ready(s->pg));
    ready_set(r, READY_POSTGRES_STALLED, !pg_pool_available(s->pg));
    ready_set(r, READY_REDIS_DOWN, !rds_ready(s->rds));
    ready_set(r, READY_SCHEMA, !schema_check_passed(s->schema));
    ready_set(r, READY_DIRECTORY, !(s->dispatch && dispatch_ready(s->dispatch)));
    ready_set(r, READY_SHUTTING_DOWN, s->shutting_down);
}

static const char *yes(bool b)
{
    return b ? "true" : "false";
}

/* The per-backend booleans stay for existing probes and scripts; "reasons" names every raised
 * reason, including those the modules raise themselves (a stall, a rebuild, refused writes). */
static void readyz(void *arg, struct evhttp_request *req)
{
    Server *s = arg;
    probes_poll(s);
    const Ready *r = &s->ready;
    bool ready = ready_ok(r);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b,
                        "{\"ready\":%s,\"postgres\":%s,\"redis\":%s,\"directory\":%s,"
                        "\"schema\":%s,\"shutting_down\":%s,",
                        yes(ready), yes(!ready_is(r, READY_POSTGRES_DOWN)),
                        yes(!ready_is(r, READY_REDIS_DOWN)), yes(!ready_is(r, READY_DIRECTORY)),
                        yes(!ready_is(r, READY_SCHEMA)), yes(ready_is(r, READY_SHUTTING_DOWN)));
    ready_render_json(r, b);
    evbuffer_add_printf(b, "}\n");
    size_t n = evbuffer_get_length(b);
    http_send(s->http, req, ready ? 200 : 503, "application/json",
              (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

static void metrics_page(void *arg, struct evhttp_request *req)
{
    Server *s = arg;
    s->metrics.pg_queries = pg_pool_queries(s->pg);
    struct evbuffer *b = evbuffer_new();
    metrics_render(&s->metrics, b, pg_pool_ready(s->pg), rds_ready(s->rds));
    probes_poll(s);
    ready_render_metrics(&s->ready, b);
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
