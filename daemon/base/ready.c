/*
 * ready: a fixed table of reasons, so /readyz and /metrics always list every reason the
 * daemon knows, raised or not — an on-call graph needs the zero as much as the one.
 */
#include "base/ready.h"

static const char *const names[READY_N] = {
    [READY_POSTGRES_DOWN] = "postgres_down",
    [READY_POSTGRES_STALLED] = "postgres_stalled",
    [READY_REDIS_DOWN] = "redis_down",
    [READY_REDIS_WRITES_FAILING] = "redis_writes_failing",
    [READY_REDIS_REBUILDING] = "redis_rebuilding",
    [READY_SCHEMA] = "schema",
    [READY_DIRECTORY] = "directory",
    [READY_SHUTTING_DOWN] = "shutting_down",
};

void ready_set(Ready *r, ReadyReason why, bool on)
{
    if (why >= READY_N || r->raised[why] == on)
        return;
    r->raised[why] = on;
    if (on)
        r->times[why]++;
}

bool ready_is(const Ready *r, ReadyReason why)
{
    return why < READY_N && r->raised[why];
}

bool ready_ok(const Ready *r)
{
    for (int i = 0; i < READY_N; i++)
        if (r->raised[i])
            return false;
    return true;
}

const char *ready_name(ReadyReason why)
{
    return why < READY_N ? names[why] : "unknown";
}

void ready_render_json(const Ready *r, struct evbuffer *out)
{
    evbuffer_add_printf(out, "\"reasons\":[");
    const char *sep = "";
    for (int i = 0; i < READY_N; i++) {
        if (!r->raised[i])
            continue;
        evbuffer_add_printf(out, "%s\"%s\"", sep, names[i]);
        sep = ",";
    }
    evbuffer_add_printf(out, "]");
}

void ready_render_metrics(const Ready *r, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP careline_not_ready Whether a reason keeps this daemon "
                             "not ready (1) or not (0).\n# TYPE careline_not_ready gauge\n");
    for (int i = 0; i < READY_N; i++)
        evbuffer_add_printf(out, "careline_not_ready{reason=\"%s\"} %d\n", names[i],
                            r->raised[i] ? 1 : 0);
    evbuffer_add_printf(out, "# HELP careline_not_ready_total Times each reason made this daemon "
                             "not ready.\n# TYPE careline_not_ready_total counter\n");
    for (int i = 0; i < READY_N; i++)
        evbuffer_add_printf(out, "careline_not_ready_total{reason=\"%s\"} %llu\n", names[i],
                            (unsigned long long)r->times[i]);
}
