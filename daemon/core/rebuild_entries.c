/*
 * rebuild_entries: the stream entries of a rebuild's snapshot — each live job's console-safe
 * JobOffer, read from PostgreSQL in one statement for every station with live jobs and packed
 * as reserve + commit would have written it, so the rebuilt streams serve consoles (core/
 * station_stream.c) exactly as before the loss.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch.h"
#include "core/rebuild_int.h"
#include "core/station.h"
#include "store/pgcols.h"

/* ---- the stream entries: what the stations' consoles are served from ----------------------- */

/* careline_station_jobs_many's columns (sql/functions/station.sql), read by name. */
enum {
    SJ_JOB_ID,
    SJ_REQUEST_ID,
    SJ_STATE,
    SJ_ATTEMPT,
    SJ_KIND,
    SJ_MEAL_SLOT,
    SJ_SERVICE_DATE,
    SJ_CARE_SUBTYPE,
    SJ_RESIDENT_NAME,
    SJ_ADDRESS,
    SJ_VILLAGE_NAME,
    SJ_LAT,
    SJ_LON,
    SJ_PRIORITY,
    SJ_NOTE,
    SJ_WINDOW_START_MS,
    SJ_WINDOW_END_MS,
    SJ_EXPIRES_MS,
    SJ_TRAVEL_MINUTES,
    SJ_PHONE,
    SJ_N
};
static const char *const sj_cols[SJ_N] = {
    "job_id",          "request_id",    "state",        "attempt",        "kind",
    "meal_slot",       "service_date",  "care_subtype", "resident_name",  "address",
    "village_name",    "lat",           "lon",          "priority",       "note",
    "window_start_ms", "window_end_ms", "expires_ms",   "travel_minutes", "phone"};

/* One row as the packed console-safe JobOffer a new job's stream entry holds (the phone
 * only for an accepted job: the function gives it only then). */
static void entry_pack(LiveJob *j, const PgCols *pc, int i)
{
    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = pgcols_ll(pc, i, SJ_JOB_ID);
    o.request_id = pgcols_ll(pc, i, SJ_REQUEST_ID);
    o.state = (Careline__V1__JobState)station_job_state_from_db(pgcols_str(pc, i, SJ_STATE));
    o.attempt = (uint32_t)pgcols_int(pc, i, SJ_ATTEMPT);
    o.kind =
        dispatch_enum_from_db(&careline__v1__service_kind__descriptor, pgcols_str(pc, i, SJ_KIND));
    const char *slot = pgcols_str(pc, i, SJ_MEAL_SLOT);
    o.meal_slot = slot[0] ? dispatch_enum_from_db(&careline__v1__meal_slot__descriptor, slot) : 0;
    o.service_date = (char *)pgcols_str(pc, i, SJ_SERVICE_DATE);
    const char *care = pgcols_str(pc, i, SJ_CARE_SUBTYPE);
    o.care_subtype =
        care[0] ? dispatch_enum_from_db(&careline__v1__care_subtype__descriptor, care) : 0;
    char masked[LOG_MASK_BUF];
    o.resident_name_masked = (char *)log_mask_name(pgcols_str(pc, i, SJ_RESIDENT_NAME), masked);
    o.address = (char *)pgcols_str(pc, i, SJ_ADDRESS);
    o.village_name = (char *)pgcols_str(pc, i, SJ_VILLAGE_NAME);
    o.lat = pgcols_double(pc, i, SJ_LAT);
    o.lon = pgcols_double(pc, i, SJ_LON);
    Careline__V1__PriorityFlag flags[3];
    const char *prio = pgcols_str(pc, i, SJ_PRIORITY);
    o.priority = flags;
    if (strstr(prio, "lives_alone"))
        flags[o.n_priority++] = CARELINE__V1__PRIORITY_FLAG__LIVES_ALONE;
    if (strstr(prio, "disabled"))
        flags[o.n_priority++] = CARELINE__V1__PRIORITY_FLAG__DISABLED;
    if (strstr(prio, "aged_80_plus"))
        flags[o.n_priority++] = CARELINE__V1__PRIORITY_FLAG__AGED_80_PLUS;
    o.note = (char *)pgcols_str(pc, i, SJ_NOTE);
    o.window_start_ms = pgcols_ll(pc, i, SJ_WINDOW_START_MS);
    o.window_end_ms = pgcols_ll(pc, i, SJ_WINDOW_END_MS);
    o.offer_expires_at_ms = pgcols_ll(pc, i, SJ_EXPIRES_MS);
    o.travel_minutes = (uint32_t)pgcols_int(pc, i, SJ_TRAVEL_MINUTES);
    o.resident_phone = (char *)pgcols_str(pc, i, SJ_PHONE);
    free(j->entry);
    j->entry_len = careline__v1__job_offer__get_packed_size(&o);
    j->entry = xmalloc(j->entry_len ? j->entry_len : 1);
    careline__v1__job_offer__pack(&o, j->entry);
}

static int job_cmp(const void *a, const void *b)
{
    int64_t x = ((const LiveJob *)a)->job, y = ((const LiveJob *)b)->job;
    return (x > y) - (x < y);
}

static void entries_cb(PGresult *res, const char *err, void *arg)
{
    Rebuild *rb = arg;
    PgCols pc = {0};
    if (rb->freed) {
        rebuild_unref(rb);
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || !pgcols_bind(&pc, res, sj_cols, SJ_N)) {
        rebuild_failed(rb, "reading the live jobs' console entries", PG_ERRLINE(res, err));
        rebuild_unref(rb);
        return;
    }
    /* rb->jobs is sorted by job id (rebuild_entries_read) */
    for (int i = 0; i < PQntuples(res); i++) {
        LiveJob key = {.job = pgcols_ll(&pc, i, SJ_JOB_ID)};
        LiveJob *j = bsearch(&key, rb->jobs, rb->njobs, sizeof(LiveJob), job_cmp);
        if (j)
            entry_pack(j, &pc, i);
    }
    if (!rebuild_send_chunk(rb))
        rebuild_failed(rb, "writing live jobs", "Redis is unavailable or overloaded");
    rebuild_unref(rb);
}

/* Reads the console-safe fields of the snapshot's jobs (one statement for every station
 * with live jobs), so the rebuilt streams serve consoles as reserve + commit would have. A
 * job that ended between the two reads keeps a reservation marker only. */
bool rebuild_entries_read(Rebuild *rb)
{
    qsort(rb->jobs, rb->njobs, sizeof(LiveJob), job_cmp);
    size_t cap = 3 + rb->njobs * 21, o = 0;
    char *stations = xmalloc(cap);
    stations[o++] = '{';
    int64_t *seen = xcalloc(rb->njobs, sizeof(int64_t));
    size_t nseen = 0;
    for (size_t i = 0; i < rb->njobs; i++) {
        bool dup = false;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = seen[k] == rb->jobs[i].station;
        if (dup)
            continue;
        seen[nseen++] = rb->jobs[i].station;
        o += (size_t)snprintf(stations + o, cap - o, "%s%lld", nseen > 1 ? "," : "",
                              (long long)rb->jobs[i].station);
    }
    snprintf(stations + o, cap - o, "}");
    free(seen);
    const char *params[] = {stations, "{}"};
    bool ok = pg_query(rb->env->pg,
                       "SELECT * FROM careline_station_jobs_many($1::bigint[], $2::bigint[])", 2,
                       params, entries_cb, rb);
    free(stations);
    if (ok)
        rb->refs++;
    return ok;
}

