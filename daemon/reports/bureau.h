/*
 * bureau: what the civil-affairs bureau asks of Careline — coverage against the plan's
 * targets, realized figures, snapshots and planning — over the protocol (CoverageQuery, for
 * the bureau and admin roles) and over HTTP (JSON or CSV; Authorization: Bearer TOKEN of a
 * bureau or admin principal):
 *
 *   GET  /v1/coverage[?town=CODE&from=&to=]       county (or one town) figure + indicators
 *   GET  /v1/coverage/towns[?town=CODE]            + one row per town
 *   GET  /v1/coverage/villages[?covered=true|false&town=CODE]
 *   GET  /v1/coverage/history?from=&to=[&town=CODE] stored daily snapshots
 *   GET  /v1/plan[?target=0.95&town=CODE]          fewest new sites to reach the target
 *   GET  /v1/realized?from=&to=[&town=CODE]        realized figures of the calls received
 *   GET  /v1/unmet[?from=&to=&town=CODE]           unmet demand: follow-ups of callers not
 *                                                  registered, first heard from..to (30 days)
 *   POST /v1/coverage/snapshot[?day=YYYY-MM-DD]    write the day's snapshot now
 *   every one takes format=json|csv (or Accept: text/csv).
 *
 * Static coverage is computed here from the dispatch directory's snapshot and travel model
 * (the same ones matching uses) with coverage_compute(); sql/views/coverage.sql holds the
 * analysts' views, which must agree. A snapshot of the county and each town is written to
 * coverage_snapshots every day at BUREAU_SNAPSHOT_MINUTE local time (upsert per day and
 * scope). All database work is asynchronous on the pool; the computation itself is in
 * memory and takes well under a millisecond for a county.
 */
#ifndef CARELINE_BUREAU_H
#define CARELINE_BUREAU_H

#include <event2/http.h>

#include "core/dispatch.h"
#include "core/env.h"
#include "net/authcache.h"
#include "net/http.h"

typedef struct Bureau Bureau;

/* Local time (minutes after midnight, Asia/Shanghai) of the daily snapshot: 23:50. A
 * constant until the config grows a key for it. */
#define BUREAU_SNAPSHOT_MINUTE (23 * 60 + 50)
/* The longest date range a query may span (history, realized, terminal period), and how far
 * back an on-demand snapshot may be dated. */
#define BUREAU_MAX_RANGE_DAYS 366

/* Installs the CoverageQuery route and the HTTP routes; starts the snapshot timer.
 * Call after dispatch_new (it reads the dispatch directory). */
Bureau *bureau_new(const Env *env, Dispatch *dispatch);
/* The bureau API's auth rules for other modules' HTTP endpoints (daemon/admin): h's
 * bearer token is checked as on the bureau's routes, and h answered here when it fails
 * (401, 429, 503) or names a role outside roles (a mask of 1 << Role; 403 "the ROLE role
 * may not WHAT"). Otherwise then(arg, h, a) runs — at once on a cache hit, else later — with
 * h open and no longer watched by the bureau, a borrowed for the call. If h's connection
 * goes away during the check, then(arg, NULL, NULL) runs instead. */
typedef void (*BureauAuthThen)(void *arg, struct evhttp_request *h, const AuthAnswer *a);
void bureau_http_authorize(Bureau *b, struct evhttp_request *h, unsigned roles, const char *what,
                           BureauAuthThen then, void *arg);
/* The HTTP status of a protocol ErrorCode (400, 401, 403, 404, 409, 503; else 500). */
int bureau_http_status(int code);
/* {"error":{"code":..,"field":..,"message":..}} with status on h (field may be NULL). */
void bureau_http_error(Http *http, struct evhttp_request *h, int status, const char *code,
                       const char *field, const char *msg);

/* Frees the timer and the auth cache. Call after pg_pool_free (whose failing callbacks
 * still find the Bureau) and http_stop. bureau_free(NULL) is a no-op. */
void bureau_free(Bureau *b);

#endif
