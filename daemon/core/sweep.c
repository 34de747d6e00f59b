/*
 * sweep: the periodic pass (every reconcile_interval_ms, on every daemon) that moves on
 * what no callback will: requests a crash left 'received', and the waitlist — retried when
 * capacity frees or stations change (dispatch_kick) and, slowly, periodically — page by
 * page behind a cursor so a long waitlist is visited in full. Each row becomes a Sub that
 * runs from the match step on (submit.c). The same rows serve a re-dispatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch_int.h"

#define SWEEP_BATCH    500
#define WAITLIST_EVERY 15  /* sweeps between periodic waitlist passes */
#define RESUME_POLL_MS 100 /* how often a paused sweep looks at the breaker */

/* Two pages: requests a crash left 'received', and the next page of the waitlist (priority
 * residents first, then oldest) after the cursor, so a long waitlist is visited in full
 * over successive sweeps instead of its first page forever. */
#define SWEEP_COLS                                                                                 \
    "r.id, r.kind, coalesce(r.meal_slot, '') AS meal_slot, r.service_date::text AS "               \
    "service_date, coalesce(r.care_subtype, '') AS care_subtype, array_to_string(r.priority, "     \
    "',') AS priority, x.village_code, x.lat, x.lon, r.state, r.idempotency_key, "                 \
    "(cardinality(r.priority) = 0)::text AS no_priority, r.created_at::text AS created_at, "       \
    "r.attempts, coalesce(r.reason_code, '') AS reason_code, (SELECT "                             \
    "coalesce(string_agg(j.station_id::text, ','), '') FROM jobs j WHERE j.request_id = r.id) "    \
    "AS had_stations, r.note, x.name AS resident_name, x.address "
static const char sweep_sql[] =
    "SELECT q.*, nextval('jobs_id_seq') AS job_id FROM ("
    " (SELECT " SWEEP_COLS "FROM requests r JOIN residents x ON x.id = r.resident_id"
    "  WHERE r.state = 'received' AND r.created_at < now() - $1::int * interval '1 millisecond'"
    "  ORDER BY r.created_at LIMIT $2)"
    " UNION ALL"
    " (SELECT " SWEEP_COLS "FROM requests r JOIN residents x ON x.id = r.resident_id"
    "  WHERE $3::boolean AND r.state = 'waitlisted'"
    "    AND r.service_date >= careline_local_date(now())"
    "    AND ((cardinality(r.priority) = 0), r.created_at, r.id) > "
    "        ($4::boolean, $5::timestamptz, $6::bigint)"
    "  ORDER BY (cardinality(r.priority) = 0), r.created_at, r.id LIMIT $2)) q";

static const char redispatch_sql[] =
    "SELECT " SWEEP_COLS ", nextval('jobs_id_seq') AS job_id FROM requests r "
    "JOIN residents x ON x.id = r.resident_id WHERE r.id = $1 AND r.state = 'received'";

/* Columns of SWEEP_COLS and the fresh job id. */
enum {
    SW_ID,
    SW_KIND,
    SW_SLOT,
    SW_DATE,
    SW_SUBTYPE,
    SW_PRIORITY,
    SW_VILLAGE,
    SW_LAT,
    SW_LON,
    SW_STATE,
    SW_KEY,
    SW_NO_PRIORITY,
    SW_CREATED,
    SW_ATTEMPTS,
    SW_REASON,
    SW_HAD,
    SW_NOTE,
    SW_NAME,
    SW_ADDRESS,
    SW_JOB,
    SW_N
};
static const char *const sweep_cols[SW_N] = {
    "id",           "kind",          "meal_slot",       "service_date",
    "care_subtype", "priority",      "village_code",    "lat",
    "lon",          "state",         "idempotency_key", "no_priority",
    "created_at",   "attempts",      "reason_code",     "had_stations",
    "note",         "resident_name", "address",         "job_id"};

static void sweep_cursor_reset(Dispatch *d)
{
    snprintf(d->cur_prio, sizeof(d->cur_prio), "f");
    snprintf(d->cur_at, sizeof(d->cur_at), "-infinity");
    snprintf(d->cur_id, sizeof(d->cur_id), "0");
}

/* Fills a sweep-driven Sub from one row of a bound sweep or re-dispatch result. */
static void sub_from_row(Sub *s, const PgCols *pc, int i)
{
    s->request_id = pgcols_ll(pc, i, SW_ID);
    s->kind = dispatch_enum_col(pc, i, SW_KIND, &careline__v1__service_kind__descriptor);
    s->slot = dispatch_enum_col(pc, i, SW_SLOT, &careline__v1__meal_slot__descriptor);
    if (!cal_parse(pgcols_str(pc, i, SW_DATE), &s->day))
        s->day = cal_day_of(util_wall_ms(), NULL);
    s->subtype = dispatch_enum_col(pc, i, SW_SUBTYPE, &careline__v1__care_subtype__descriptor);
    s->prio = sub_priority_from_db(pgcols_str(pc, i, SW_PRIORITY));
    snprintf(s->village, sizeof(s->village), "%s", pgcols_str(pc, i, SW_VILLAGE));
    s->lat = pgcols_double(pc, i, SW_LAT);
    s->lon = pgcols_double(pc, i, SW_LON);
    s->was_waitlisted = strcmp(pgcols_str(pc, i, SW_STATE), "waitlisted") == 0;
    snprintf(s->key, sizeof(s->key), "%s", pgcols_str(pc, i, SW_KEY));
    s->attempt = pgcols_int(pc, i, SW_ATTEMPTS) + 1;
    s->prior_reason = dispatch_enum_col(pc, i, SW_REASON, &careline__v1__reason_code__descriptor);
    const char *ex = pgcols_str(pc, i, SW_HAD);
    while (*ex && s->nexcluded < MAX_EXCLUDED) {
        s->excluded[s->nexcluded++] = strtoll(ex, (char **)&ex, 10);
        if (*ex == ',')
            ex++;
    }
    snprintf(s->note, sizeof(s->note), "%s", pgcols_str(pc, i, SW_NOTE));
    snprintf(s->resident_name, sizeof(s->resident_name), "%s", pgcols_str(pc, i, SW_NAME));
    snprintf(s->address, sizeof(s->address), "%s", pgcols_str(pc, i, SW_ADDRESS));
    s->job_id = pgcols_ll(pc, i, SW_JOB);
    s->state = S(REQUEST_STATE__RECEIVED);
}

static void redispatch_done(PGresult *res, const char *err, void *arg)
{
    Dispatch *d = arg;
    PgCols pc = {0};
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* the request stays 'received': the sweep will pick it up */
        log_warn("re-dispatch query failed: %s", PG_ERRLINE(res, err));
        return;
    }
    if (!dispatch_bind(&pc, res, sweep_cols, SW_N, "re-dispatch query"))
        return; /* as above: it stays 'received' */
    for (int i = 0; i < PQntuples(res) && !d->stopped; i++) {
        Sub *s = sub_new(d, NULL, 0);
        s->redispatch = true;
        sub_from_row(s, &pc, i);
        sub_place(s);
    }
}

void sweep_redispatch(Dispatch *d, int64_t request_id)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)request_id);
    const char *params[] = {id};
    if (!pg_query(d->env->pg, redispatch_sql, 1, params, redispatch_done, d))
        log_warn("request %lld: re-dispatch postponed (database queue full)",
                 (long long)request_id);
}

static void sweep_done(PGresult *res, const char *err, void *arg)
{
    Dispatch *d = arg;
    PgCols pc = {0};
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_debug("sweep query failed: %s", PG_ERRLINE(res, err));
        d->sweeping = false;
        return;
    }
    if (!dispatch_bind(&pc, res, sweep_cols, SW_N, "sweep query")) {
        d->sweeping = false;
        return;
    }
    int n = PQntuples(res), waitlisted = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(pgcols_str(&pc, i, SW_STATE), "waitlisted") != 0)
            continue;
        waitlisted++;
        snprintf(d->cur_prio, sizeof(d->cur_prio), "%s", pgcols_str(&pc, i, SW_NO_PRIORITY));
        snprintf(d->cur_at, sizeof(d->cur_at), "%s", pgcols_str(&pc, i, SW_CREATED));
        snprintf(d->cur_id, sizeof(d->cur_id), "%s", pgcols_str(&pc, i, SW_ID));
    }
    /* a full page means more follows: keep paging on the next sweeps until the end */
    d->waitlist_paging = d->sweep_waitlist && waitlisted == SWEEP_BATCH;
    if (d->sweep_waitlist && waitlisted < SWEEP_BATCH)
        sweep_cursor_reset(d); /* reached the end: start from the top next time */
    if (n == 0 || !dir_snap(d->dir)) {
        d->sweeping = false;
        return;
    }
    d->sweep_left = n;
    for (int i = 0; i < n; i++) {
        Sub *s = sub_new(d, NULL, 0);
        sub_from_row(s, &pc, i);
        sub_place(s);
    }
}

/* A sweep skipped while the breaker was open runs as soon as it closes, not a whole
 * reconcile_interval_ms later: the waitlist and the crash-left requests wait no longer than
 * the outage. A cheap poll of the breaker's state, armed only while it is open. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg);

/* A skipped sweep is owed until one is sent: polled for while anything holds it back. */
static void owe_poll(Dispatch *d)
{
    if (d->sweep_owed && !evtimer_pending(d->resume, NULL))
        util_timer_ms(d->resume, RESUME_POLL_MS);
}

static void sweep_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Dispatch *d = arg;
    if (d->stopped || d->env->stopping)
        return;
    if (!pg_pool_available(d->env->pg) || !pg_pool_ready(d->env->pg))
        util_timer_ms(d->resume, RESUME_POLL_MS);
    else
        sweep_cb(-1, 0, d); /* not event_active: that would push the periodic tick back */
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Dispatch *d = arg;
    if (d->stopped || d->env->stopping)
        return;
    if (!pg_pool_available(d->env->pg)) {
        /* the breaker is open: its statements would only wait and time out, queued ahead
         * of the probe's answer; the orphan check too (its records cannot be read now) */
        d->env->metrics->sweeps_paused++;
        d->sweep_owed = true;
        owe_poll(d);
        return;
    }
    /* while Redis is rebuilt nothing is reserved: the waitlist waits for it */
    if (!dir_snap(d->dir) || !pg_pool_ready(d->env->pg) || !rds_ready(d->env->rds) ||
        !rebuild_ok(d->rebuild)) {
        owe_poll(d);
        return;
    }
    reconcile_orphans(d);
    if (d->sweeping) { /* e.g. the one that hung in the outage, answering only now */
        owe_poll(d);
        return;
    }
    d->sweep_owed = false;
    char age[16], batch[16];
    snprintf(age, sizeof(age), "%d", d->env->cfg->reconcile_age_ms);
    snprintf(batch, sizeof(batch), "%d", SWEEP_BATCH);
    /* the waitlist moves when capacity frees or stations change (kick); a slow periodic
     * pass also catches what no event announced (e.g. a capacity key that expired) */
    bool waitlist = d->waitlist_due || d->waitlist_paging || ++d->sweeps % WAITLIST_EVERY == 0;
    if (d->waitlist_due)
        sweep_cursor_reset(d); /* something changed: priority residents first again */
    d->waitlist_due = false;
    d->sweep_waitlist = waitlist;
    const char *params[] = {age, batch, waitlist ? "t" : "f", d->cur_prio, d->cur_at, d->cur_id};
    d->sweeping = true;
    if (!pg_query(d->env->pg, sweep_sql, 6, params, sweep_done, d))
        d->sweeping = false;
    else
        d->env->metrics->sweeps_sent++;
}

void sweep_start(Dispatch *d)
{
    sweep_cursor_reset(d);
    d->sweep = event_new(d->env->base, -1, EV_PERSIST, sweep_cb, d);
    d->resume = evtimer_new(d->env->base, sweep_resume_cb, d);
    util_timer_ms(d->sweep, d->env->cfg->reconcile_interval_ms);
}
