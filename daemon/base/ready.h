/*
 * ready: why this daemon is not ready, as a set of named reasons. Modules raise and clear
 * their own reasons (ready_set) as things happen; the server raises the ones it polls (the
 * backends' links, the schema check, the directory, a graceful stop) once per janitor tick.
 * /readyz is 200 only when no reason is raised, and lists the raised ones by name; /metrics
 * shows a gauge per reason and how many times each was raised. Event-loop thread only.
 */
#ifndef CARELINE_READY_H
#define CARELINE_READY_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum ReadyReason {
    READY_POSTGRES_DOWN,        /* no healthy PostgreSQL pool connection */
    READY_POSTGRES_STALLED,     /* a statement has stalled past its threshold (breaker open) */
    READY_REDIS_DOWN,           /* the Redis link is not connected and authenticated */
    READY_REDIS_WRITES_FAILING, /* Redis refuses writes: MISCONF, OOM, AOF write errors */
    READY_REDIS_REBUILDING,     /* Redis state is being rebuilt from PostgreSQL */
    READY_SCHEMA,               /* the database's schema version is not checked (or refused) */
    READY_DIRECTORY,            /* the station directory is not loaded */
    READY_SHUTTING_DOWN,        /* a graceful stop is under way */
    READY_N
} ReadyReason;

typedef struct Ready {
    bool raised[READY_N];
    uint64_t times[READY_N]; /* how often each reason went from cleared to raised */
} Ready;

/* Raises (on) or clears a reason; idempotent. */
void ready_set(Ready *r, ReadyReason why, bool on);
bool ready_is(const Ready *r, ReadyReason why);
/* true when no reason is raised */
bool ready_ok(const Ready *r);
/* The reason's name in /readyz and metric labels: "postgres_down", ... */
const char *ready_name(ReadyReason why);
/* Appends `"reasons":["a","b"]` (no braces) to out. */
void ready_render_json(const Ready *r, struct evbuffer *out);
/* Appends careline_not_ready{reason} gauges and careline_not_ready_total{reason} counters. */
void ready_render_metrics(const Ready *r, struct evbuffer *out);

#endif
