/*
 * env: what the core and report modules borrow from the server that owns them — the loop,
 * the live config, the backends, the counters and the places to install protocol and HTTP
 * routes. The server fills one Env, and it outlives every module made with it; modules never
 * include the server's header, so the server stays the top layer.
 */
#ifndef CARELINE_ENV_H
#define CARELINE_ENV_H

#include <event2/event.h>
#include <stdbool.h>

#include "base/config.h"
#include "base/metrics.h"
#include "base/ready.h"
#include "net/http.h"
#include "net/session.h"
#include "store/pg.h"
#include "store/keys.h"
#include "store/rds.h"

typedef struct Env {
    struct event_base *base;
    const Config *cfg;     /* the live config: reloadable keys change on SIGHUP */
    const char *server_id; /* this daemon's id (server_id or host-pid) */
    PgPool *pg;
    Rds *rds;
    Keys keys; /* the county's Redis key layout */
    Metrics *metrics;
    Ready *ready;       /* raise and clear your own not-ready reasons (base/ready.h) */
    Sessions *sessions; /* protocol routes and session hooks */
    Http *http;         /* HTTP routes */
    ConnSet *conns;     /* the protocol listener's connections (admin: revoked sessions) */
    bool stopping;      /* set by the server when a graceful stop begins */
} Env;

#endif
