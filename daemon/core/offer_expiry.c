/*
 * offer_expiry: offers a station did not accept within offer_timeout_s are expired in
 * PostgreSQL (sql/011 careline_expire_offers, EXPIRE_BATCH a statement, on whichever daemon
 * gets there first: SKIP LOCKED), their capacity is given back and their requests go to the
 * next station; an entry on the station's stream makes its consoles drop them.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "core/station_int.h"
#include "store/pg.h"
#include "store/pgcols.h"

#define EXPIRE_BATCH 200

/* careline_expire_offers's columns (sql/011). */
enum { E_JOB_ID, E_REQUEST_ID, E_STATION_ID, E_ATTEMPT, E_N };
static const char *const expired_cols[E_N] = {"job_id", "request_id", "station_id", "attempt"};

static void expire_done(PGresult *res, const char *err, void *arg)
{
    Stations *st = arg;
    st->expiring = false;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_debug("offer expiry failed: %s", PG_ERRLINE(res, err));
        return;
    }
    PgCols pc = {0};
    if (!pgcols_bind(&pc, res, expired_cols, E_N)) {
        log_error("careline_expire_offers returned no column \"%s\"; %d expired offers not "
                  "sent on (is the schema older than this daemon?)",
                  pc.missing, PQntuples(res));
        return;
    }
    for (int i = 0; i < PQntuples(res) && !st->stopped; i++) {
        int64_t req = pgcols_ll(&pc, i, E_REQUEST_ID);
        int64_t station = pgcols_ll(&pc, i, E_STATION_ID);
        log_info("job %s at station %lld not accepted in time; offering it elsewhere",
                 pgcols_str(&pc, i, E_JOB_ID), (long long)station);
        dispatch_release(st->dispatch, req, pgcols_int(&pc, i, E_ATTEMPT), "expired");
        dispatch_redispatch(st->dispatch, req);
        station_change(st, station, pgcols_ll(&pc, i, E_JOB_ID), req, pgcols_int(&pc, i, E_ATTEMPT),
                       S(JOB_STATE__JOB_EXPIRED), NULL); /* its consoles drop the offer */
    }
    /* a full batch means more are overdue (say, after an outage): drain now, not at 200/s */
    if (PQntuples(res) == EXPIRE_BATCH && !st->stopped)
        offer_expiry_start(st);
}

void offer_expiry_start(Stations *st)
{
    if (!pg_pool_available(st->env->pg))
        return; /* the breaker is open: the station tick tries again once it closes */
    char n[16];
    snprintf(n, sizeof(n), "%d", EXPIRE_BATCH);
    const char *p[] = {n};
    st->expiring = true;
    if (!pg_query(st->env->pg, "SELECT * FROM careline_expire_offers($1)", 1, p, expire_done, st))
        st->expiring = false;
}
