/*
 * console_push: each console remembers which jobs it was shown and in what state (its seen
 * list), so a re-read of the station's jobs in PostgreSQL turns into exactly the JobOffer
 * pushes the console is missing. Re-reads asked for in one loop turn go out together, one
 * statement per REFRESH_BATCH consoles; one per console at a time, with an "again" flag
 * for bursts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/station_int.h"
#include "store/pg.h"
#include "store/pgcols.h"

/* ---- the seen list ------------------------------------------------------------------------ */

static Seen *seen_find(StSession *ss, int64_t job)
{
    for (size_t i = 0; i < ss->nseen; i++)
        if (ss->seen[i].job_id == job)
            return &ss->seen[i];
    return NULL;
}

bool push_has_seen(StSession *ss, int64_t job_id)
{
    return seen_find(ss, job_id) != NULL;
}

static void seen_add(StSession *ss, int64_t job, int state)
{
    if (ss->nseen == ss->capseen) {
        ss->capseen = ss->capseen ? 2 * ss->capseen : 16;
        ss->seen = xrealloc(ss->seen, ss->capseen * sizeof(Seen));
    }
    ss->seen[ss->nseen++] = (Seen){job, state};
}

static bool job_final(int state)
{
    return state != S(JOB_STATE__OFFERED) && state != S(JOB_STATE__JOB_ACCEPTED) &&
           state != S(JOB_STATE__JOB_EN_ROUTE);
}

/* ---- pushing a station's jobs ------------------------------------------------------------- */

static unsigned priority_flags(const char *csv, Careline__V1__PriorityFlag out[3])
{
    unsigned n = 0;
    if (strstr(csv, "lives_alone"))
        out[n++] = S(PRIORITY_FLAG__LIVES_ALONE);
    if (strstr(csv, "disabled"))
        out[n++] = S(PRIORITY_FLAG__DISABLED);
    if (strstr(csv, "aged_80_plus"))
        out[n++] = S(PRIORITY_FLAG__AGED_80_PLUS);
    return n;
}

/* careline_station_jobs_many's columns (sql/014), read by name. */
enum {
    J_JOB_ID,
    J_REQUEST_ID,
    J_STATE,
    J_ATTEMPT,
    J_KIND,
    J_MEAL_SLOT,
    J_SERVICE_DATE,
    J_CARE_SUBTYPE,
    J_RESIDENT_NAME,
    J_ADDRESS,
    J_VILLAGE_NAME,
    J_LAT,
    J_LON,
    J_PRIORITY,
    J_NOTE,
    J_WINDOW_START_MS,
    J_WINDOW_END_MS,
    J_EXPIRES_MS,
    J_TRAVEL_MINUTES,
    J_PHONE,
    J_STATION_ID,
    J_N
};
static const char *const job_cols[J_N] = {
    "job_id",          "request_id",    "state",        "attempt",        "kind",
    "meal_slot",       "service_date",  "care_subtype", "resident_name",  "address",
    "village_name",    "lat",           "lon",          "priority",       "note",
    "window_start_ms", "window_end_ms", "expires_ms",   "travel_minutes", "phone",
    "station_id"};

static void push_row(StSession *ss, const PgCols *pc, int i, int state)
{
    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = pgcols_ll(pc, i, J_JOB_ID);
    o.request_id = pgcols_ll(pc, i, J_REQUEST_ID);
    o.state = (Careline__V1__JobState)state;
    o.attempt = (uint32_t)pgcols_int(pc, i, J_ATTEMPT);
    o.kind =
        dispatch_enum_from_db(&careline__v1__service_kind__descriptor, pgcols_str(pc, i, J_KIND));
    const char *slot = pgcols_str(pc, i, J_MEAL_SLOT);
    o.meal_slot = slot[0] ? dispatch_enum_from_db(&careline__v1__meal_slot__descriptor, slot) : 0;
    o.service_date = (char *)pgcols_str(pc, i, J_SERVICE_DATE);
    const char *care = pgcols_str(pc, i, J_CARE_SUBTYPE);
    o.care_subtype =
        care[0] ? dispatch_enum_from_db(&careline__v1__care_subtype__descriptor, care) : 0;
    char masked[LOG_MASK_BUF];
    o.resident_name_masked = (char *)log_mask_name(pgcols_str(pc, i, J_RESIDENT_NAME), masked);
    o.address = (char *)pgcols_str(pc, i, J_ADDRESS);
    o.village_name = (char *)pgcols_str(pc, i, J_VILLAGE_NAME);
    o.lat = pgcols_double(pc, i, J_LAT);
    o.lon = pgcols_double(pc, i, J_LON);
    Careline__V1__PriorityFlag flags[3];
    o.n_priority = priority_flags(pgcols_str(pc, i, J_PRIORITY), flags);
    o.priority = flags;
    o.note = (char *)pgcols_str(pc, i, J_NOTE);
    o.window_start_ms = pgcols_ll(pc, i, J_WINDOW_START_MS);
    o.window_end_ms = pgcols_ll(pc, i, J_WINDOW_END_MS);
    o.offer_expires_at_ms = pgcols_ll(pc, i, J_EXPIRES_MS);
    o.travel_minutes = (uint32_t)pgcols_int(pc, i, J_TRAVEL_MINUTES);
    o.resident_phone = (char *)pgcols_str(pc, i, J_PHONE); /* only once the job is accepted */
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_OFFER;
    env.job_offer = &o;
    conn_send(ss->c, &env);
}

/* Pushes rows [from, to) of a station's jobs to the console: what it has not seen, what
 * changed, and the end of what it was shown. */
static void apply_rows(StSession *ss, const PgCols *pc, int from, int to)
{
    ss->last_refresh_ms = util_now_ms();
    for (int i = from; i < to && conn_alive(ss->c); i++) {
        int64_t job = pgcols_ll(pc, i, J_JOB_ID);
        int state = station_job_state_from_db(pgcols_str(pc, i, J_STATE));
        Seen *s = seen_find(ss, job);
        if (s && s->state == state)
            continue;
        if (!s && job_final(state))
            continue; /* ended before this console saw it (another console's known job) */
        push_row(ss, pc, i, state);
        if (job_final(state)) {
            if (s)
                *s = ss->seen[--ss->nseen]; /* told; no longer of interest */
        } else if (s) {
            s->state = state;
        } else {
            seen_add(ss, job, state);
        }
    }
}

/* The re-read is over (rows applied or not): one asked for meanwhile goes now. */
static void refresh_end(Stations *st, StSession *ss)
{
    ss->refreshing = false;
    if (ss->again && !ss->closed && conn_alive(ss->c)) {
        ss->again = false;
        push_refresh(st, ss);
    }
    console_unref(ss);
}

/* ---- re-reads, many consoles a statement -------------------------------------------------- */

typedef struct {
    Stations *st;
    size_t n;
    StSession *ss[REFRESH_BATCH];
} RefreshBatch;

/* First row of station_id in the result (rows ordered by station), or nrows. */
static int first_row_of(const PgCols *pc, int64_t station_id)
{
    int lo = 0, hi = PQntuples(pc->res);
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (pgcols_ll(pc, mid, J_STATION_ID) < station_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void refresh_many_done(PGresult *res, const char *err, void *arg)
{
    RefreshBatch *b = arg;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    PgCols pc = {0};
    if (!ok) {
        log_warn("reading %zu consoles' jobs failed: %s", b->n, PG_ERRLINE(res, err));
    } else if (!pgcols_bind(&pc, res, job_cols, J_N)) {
        log_error("careline_station_jobs_many returned no column \"%s\"; %zu consoles not "
                  "re-read (is the schema older than this daemon?)",
                  pc.missing, b->n);
        ok = false;
    }
    for (size_t k = 0; k < b->n; k++) {
        StSession *ss = b->ss[k];
        if (ok && !ss->closed && conn_alive(ss->c)) {
            int from = first_row_of(&pc, ss->station_id), to = from;
            while (to < PQntuples(res) && pgcols_ll(&pc, to, J_STATION_ID) == ss->station_id)
                to++;
            apply_rows(ss, &pc, from, to);
        }
        refresh_end(b->st, ss);
    }
    free(b);
}

/* One statement re-reads the jobs of every console in b (which holds a ref on each). */
static void refresh_many(Stations *st, RefreshBatch *b)
{
    size_t nknown = 0;
    for (size_t k = 0; k < b->n; k++)
        nknown += b->ss[k]->nseen;
    char *stations = xmalloc(3 + b->n * 21), *known = xmalloc(3 + nknown * 21);
    size_t o = 0, ok = 0;
    stations[o++] = '{';
    known[ok++] = '{';
    for (size_t k = 0; k < b->n; k++) {
        const StSession *ss = b->ss[k];
        o += (size_t)sprintf(stations + o, "%s%lld", k ? "," : "", (long long)ss->station_id);
        for (size_t i = 0; i < ss->nseen; i++)
            ok += (size_t)sprintf(known + ok, "%s%lld", ok > 1 ? "," : "",
                                  (long long)ss->seen[i].job_id);
    }
    strcpy(stations + o, "}");
    strcpy(known + ok, "}");
    const char *params[] = {stations, known};
    if (!pg_query(st->env->pg,
                  "SELECT * FROM careline_station_jobs_many($1::bigint[], $2::bigint[])", 2, params,
                  refresh_many_done, b))
        refresh_many_done(NULL, "too many queries waiting for the database", b);
    free(stations);
    free(known);
}

/* Sends the consoles queued for a re-read this loop turn, REFRESH_BATCH a statement. */
void push_due_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Stations *st = arg;
    StSession **list = st->due;
    size_t n = st->ndue;
    st->due = NULL;
    st->ndue = st->capdue = 0;
    RefreshBatch *b = NULL;
    for (size_t k = 0; k < n; k++) {
        StSession *ss = list[k]; /* the queue's ref passes to the batch */
        ss->queued = false;
        if (ss->closed || st->stopped) {
            console_unref(ss);
            continue;
        }
        if (!b) {
            b = xcalloc(1, sizeof(*b));
            b->st = st;
        }
        ss->refreshing = true;
        b->ss[b->n++] = ss;
        if (b->n == REFRESH_BATCH) {
            refresh_many(st, b);
            b = NULL;
        }
    }
    if (b)
        refresh_many(st, b);
    free(list);
}

void push_refresh(Stations *st, StSession *ss)
{
    if (ss->closed || st->stopped || ss->queued)
        return;
    if (ss->refreshing) {
        ss->again = true;
        return;
    }
    if (st->ndue == st->capdue) {
        st->capdue = st->capdue ? 2 * st->capdue : 64;
        st->due = xrealloc(st->due, st->capdue * sizeof(StSession *));
    }
    ss->queued = true;
    ss->refs++;
    st->due[st->ndue++] = ss;
    event_active(st->due_ev, EV_TIMEOUT, 0);
}

void push_refresh_station(Stations *st, int64_t station_id)
{
    for (StSession *ss = console_chain(st, station_id); ss; ss = ss->next)
        if (ss->station_id == station_id)
            push_refresh(st, ss);
}

/* ---- a new job on the daemon that took it, pushed from memory (no database read) ---------- */

void push_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *o)
{
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_OFFER;
    env.job_offer = (Careline__V1__JobOffer *)o;
    for (StSession *ss = console_chain(st, station_id); ss; ss = ss->next) {
        if (ss->station_id != station_id || ss->closed || !conn_alive(ss->c) ||
            seen_find(ss, o->job_id))
            continue;
        conn_send(ss->c, &env);
        seen_add(ss, o->job_id, o->state);
    }
}
