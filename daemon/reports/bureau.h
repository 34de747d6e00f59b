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

#include "core/dispatch.h"
#include "core/env.h"

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
/* Frees the timer and the auth cache. Call after pg_pool_free (whose failing callbacks
 * still find the Bureau) and http_stop. bureau_free(NULL) is a no-op. */
void bureau_free(Bureau *b);

#endif
