/*
 * station: console sessions keyed by station id (a small chained hash), each remembering
 * which jobs it was shown and in what state, so a re-read of the station's jobs in
 * PostgreSQL turns into exactly the JobOffer pushes the console is missing. Re-reads are
 * triggered by wake-ups (Redis pub/sub, from any daemon), by the console's own updates, and
 * by a slow periodic pass; one per session at a time, with a "again" flag for bursts.
 */
#include "core/station.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cal.h"
#include "core/dispatch.h"
#include "common/log.h"
#include "store/pgbatch.h"
#include "store/scripts.h"
#include "net/session.h"

#define S(x)         CARELINE__V1__##x
#define BUCKETS      4096
#define TICK_MS      1000
#define EXPIRE_BATCH 200
#define MAX_NOTE     500

typedef struct Seen {
    int64_t job_id;
    int state; /* JobState last pushed */
} Seen;

typedef struct StSession {
    Conn *c;      /* borrowed; holds a ref while the session lives */
    Stations *st; /* borrowed: the module, which outlives its sessions */
    int64_t station_id;
    int64_t terminal_id;    /* terminal_sessions row, 0 until inserted */
    bool closed;            /* the connection ended; waiting for in-flight work */
    int refs;               /* the map + in-flight queries */
    bool queued;            /* waiting in Stations.due for this turn's re-read batch */
    bool refreshing, again; /* a re-read in flight / another asked for meanwhile */
    int64_t last_refresh_ms, last_ping_ms;
    Seen *seen; /* jobs shown and still of interest */
    size_t nseen, capseen;
    struct StSession *next; /* bucket chain */
} StSession;

struct Stations {
    const Env *env;     /* borrowed from the server */
    Dispatch *dispatch; /* borrowed: directory, key prefix, re-dispatch */
    StSession *bucket[BUCKETS];
    size_t nsessions;
    struct event *tick;
    bool expiring; /* an expiry query is in flight */
    bool stopped;
    char channel[48]; /* "{cCOUNTY}:wake" */
    int64_t *wake;    /* stations to announce at the end of this loop turn */
    size_t nwake, capwake;
    struct event *wake_ev; /* fires once per turn while wake is non-empty */
    PgBatch *updates;      /* JobUpdates, group-committed */
    StSession **due;       /* consoles to re-read at the end of this loop turn */
    size_t ndue, capdue;
    struct event *due_ev; /* fires once per turn while due is non-empty */
    RdsScript *caplim;    /* lua/caplim.lua */
};

static void session_refresh(Stations *st, StSession *ss);

/* ---- helpers ---------------------------------------------------------------------------- */

static const DirSnap *dir_snapshot_of(const Stations *st)
{
    return dir_snap(dispatch_directory(st->dispatch));
}

static size_t bucket_of(int64_t station_id)
{
    return (size_t)((uint64_t)station_id * 0x9E3779B97F4A7C15ull >> 52) % BUCKETS;
}

static void session_unref(StSession *ss)
{
    if (--ss->refs > 0)
        return;
    conn_unref(ss->c);
    free(ss->seen);
    free(ss);
}

static Seen *seen_find(StSession *ss, int64_t job)
{
    for (size_t i = 0; i < ss->nseen; i++)
        if (ss->seen[i].job_id == job)
            return &ss->seen[i];
    return NULL;
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

static int job_state_from_db(const char *db)
{
    /* the JobState names prefix JOB_ except OFFERED */
    if (strcmp(db, "offered") == 0)
        return S(JOB_STATE__OFFERED);
    char name[40];
    snprintf(name, sizeof(name), "job_%s", db);
    return dispatch_enum_from_db(&careline__v1__job_state__descriptor, name);
}

static void job_state_to_db(int state, char out[32])
{
    char name[40];
    dispatch_enum_to_db(&careline__v1__job_state__descriptor, state, name, sizeof(name));
    snprintf(out, 32, "%.31s", strncmp(name, "job_", 4) == 0 ? name + 4 : name);
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

static void push_row(StSession *ss, PGresult *r, int i, int state)
{
    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    o.request_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    o.state = (Careline__V1__JobState)state;
    o.attempt = (uint32_t)atoi(PQgetvalue(r, i, 3));
    o.kind = dispatch_enum_from_db(&careline__v1__service_kind__descriptor, PQgetvalue(r, i, 4));
    o.meal_slot =
        PQgetvalue(r, i, 5)[0]
            ? dispatch_enum_from_db(&careline__v1__meal_slot__descriptor, PQgetvalue(r, i, 5))
            : 0;
    o.service_date = PQgetvalue(r, i, 6);
    o.care_subtype =
        PQgetvalue(r, i, 7)[0]
            ? dispatch_enum_from_db(&careline__v1__care_subtype__descriptor, PQgetvalue(r, i, 7))
            : 0;
    char masked[LOG_MASK_BUF];
    o.resident_name_masked = (char *)log_mask_name(PQgetvalue(r, i, 8), masked);
    o.address = PQgetvalue(r, i, 9);
    o.village_name = PQgetvalue(r, i, 10);
    o.lat = atof(PQgetvalue(r, i, 11));
    o.lon = atof(PQgetvalue(r, i, 12));
    Careline__V1__PriorityFlag flags[3];
    o.n_priority = priority_flags(PQgetvalue(r, i, 13), flags);
    o.priority = flags;
    o.note = PQgetvalue(r, i, 14);
    o.window_start_ms = strtoll(PQgetvalue(r, i, 15), NULL, 10);
    o.window_end_ms = strtoll(PQgetvalue(r, i, 16), NULL, 10);
    o.offer_expires_at_ms = strtoll(PQgetvalue(r, i, 17), NULL, 10);
    o.travel_minutes = (uint32_t)atoi(PQgetvalue(r, i, 18));
    o.resident_phone = PQgetvalue(r, i, 19); /* only filled once the job is accepted */
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_OFFER;
    env.job_offer = &o;
    conn_send(ss->c, &env);
}

/* Pushes rows [from, to) of a station's jobs to the console: what it has not seen, what
 * changed, and the end of what it was shown. */
static void apply_rows(StSession *ss, PGresult *res, int from, int to)
{
    ss->last_refresh_ms = util_now_ms();
    for (int i = from; i < to && conn_alive(ss->c); i++) {
        int64_t job = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        int state = job_state_from_db(PQgetvalue(res, i, 2));
        Seen *s = seen_find(ss, job);
        if (s && s->state == state)
            continue;
        if (!s && job_final(state))
            continue; /* ended before this console saw it (another console's known job) */
        push_row(ss, res, i, state);
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
        session_refresh(st, ss);
    }
    session_unref(ss);
}

/* ---- re-reads, many consoles a statement -------------------------------------------------- */

#define REFRESH_BATCH 500

typedef struct {
    Stations *st;
    size_t n;
    StSession *ss[REFRESH_BATCH];
} RefreshBatch;

/* First row of station_id in res (rows ordered by station, in column 20), or nrows. */
static int first_row_of(PGresult *res, int64_t station_id)
{
    int lo = 0, hi = PQntuples(res);
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strtoll(PQgetvalue(res, mid, 20), NULL, 10) < station_id)
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
    if (!ok)
        log_warn("reading %zu consoles' jobs failed: %s", b->n,
                 res ? PQresultErrorMessage(res) : err);
    for (size_t k = 0; k < b->n; k++) {
        StSession *ss = b->ss[k];
        if (ok && !ss->closed && conn_alive(ss->c)) {
            int from = first_row_of(res, ss->station_id), to = from;
            while (to < PQntuples(res) &&
                   strtoll(PQgetvalue(res, to, 20), NULL, 10) == ss->station_id)
                to++;
            apply_rows(ss, res, from, to);
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
static void due_flush(evutil_socket_t fd, short what, void *arg)
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
            session_unref(ss);
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

/* Re-reads the console's jobs from PostgreSQL (in this loop turn's batch). */
static void session_refresh(Stations *st, StSession *ss)
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

static void refresh_station(Stations *st, int64_t station_id)
{
    for (StSession *ss = st->bucket[bucket_of(station_id)]; ss; ss = ss->next)
        if (ss->station_id == station_id)
            session_refresh(st, ss);
}

static void publish_done(redisReply *r, const char *err, void *arg);

/* Pushes a new job to this daemon's consoles of the station that have not shown it yet. */
static void deliver_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *o)
{
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_OFFER;
    env.job_offer = (Careline__V1__JobOffer *)o;
    for (StSession *ss = st->bucket[bucket_of(station_id)]; ss; ss = ss->next) {
        if (ss->station_id != station_id || ss->closed || !conn_alive(ss->c) ||
            seen_find(ss, o->job_id))
            continue;
        conn_send(ss->c, &env);
        seen_add(ss, o->job_id, o->state);
    }
}

void station_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *o)
{
    if (!st || st->stopped)
        return;
    deliver_offer(st, station_id, o); /* consoles on this daemon: at once */
    /* the others: "STATION_ID <packed JobOffer>" on the wake channel */
    size_t n = careline__v1__job_offer__get_packed_size(o);
    char *msg = xmalloc(n + 24);
    int h = snprintf(msg, 24, "%lld ", (long long)station_id);
    careline__v1__job_offer__pack(o, (uint8_t *)msg + h);
    const char *argv[] = {"PUBLISH", st->channel, msg};
    size_t lens[] = {7, strlen(st->channel), (size_t)h + n};
    if (!rds_command(st->env->rds, publish_done, NULL, 3, argv, lens))
        log_debug("offer for station %lld not published (Redis unavailable); the periodic "
                  "re-read will deliver it",
                  (long long)station_id);
    free(msg);
}

static void wake_cb(const char *channel, const char *msg, size_t len, void *arg)
{
    (void)channel;
    Stations *st = arg;
    if (!msg) { /* (re)subscribed: anything may have been missed */
        for (size_t b = 0; b < BUCKETS; b++)
            for (StSession *ss = st->bucket[b]; ss; ss = ss->next)
                session_refresh(st, ss);
        return;
    }
    const char *sp = memchr(msg, ' ', len);
    int64_t station_id = strtoll(msg, NULL, 10);
    if (!sp) { /* a plain wake-up: something changed, re-read */
        refresh_station(st, station_id);
        return;
    }
    Careline__V1__JobOffer *o = careline__v1__job_offer__unpack(NULL, len - (size_t)(sp + 1 - msg),
                                                                (const uint8_t *)sp + 1);
    if (!o) {
        log_warn("malformed offer on %s; re-reading station %lld", st->channel,
                 (long long)station_id);
        refresh_station(st, station_id);
        return;
    }
    deliver_offer(st, station_id, o);
    careline__v1__job_offer__free_unpacked(o, NULL);
}

static void publish_done(redisReply *r, const char *err, void *arg)
{
    (void)arg;
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_debug("wake-up not published: %s", r ? r->str : err);
}

/* Announces the stations collected this loop turn, each once (a burst of jobs for one
 * station costs one PUBLISH, not one per job). */
static void wake_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Stations *st = arg;
    for (size_t i = 0; i < st->nwake && !st->stopped; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = st->wake[j] == st->wake[i];
        if (dup)
            continue;
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)st->wake[i]);
        const char *argv[] = {"PUBLISH", st->channel, id};
        size_t lens[] = {7, strlen(st->channel), strlen(id)};
        if (!rds_command(st->env->rds, publish_done, NULL, 3, argv, lens))
            log_debug("wake-up for station %s not published (Redis unavailable); the "
                      "periodic re-read will deliver it",
                      id);
    }
    st->nwake = 0;
}

void station_wake(Stations *st, int64_t station_id)
{
    if (!st || st->stopped)
        return;
    refresh_station(st, station_id); /* local consoles at once, without the round trip */
    if (st->nwake == st->capwake) {
        if (st->capwake >= 4096) {
            wake_flush(-1, 0, st); /* a huge burst: announce what we have now */
        } else {
            st->capwake = st->capwake ? 2 * st->capwake : 64;
            st->wake = xrealloc(st->wake, st->capwake * sizeof(int64_t));
        }
    }
    st->wake[st->nwake++] = station_id;
    if (st->nwake == 1)
        event_active(st->wake_ev, EV_TIMEOUT, 0);
}

/* ---- sessions: connect and disconnect ----------------------------------------------------- */

static void terminal_open_done(PGresult *res, const char *err, void *arg)
{
    StSession *ss = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        ss->terminal_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        log_warn("station %lld: terminal session not recorded: %s", (long long)ss->station_id,
                 res ? PQresultErrorMessage(res) : err);
    if (ss->closed && ss->terminal_id) { /* it ended before the row existed */
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)ss->terminal_id);
        const char *p[] = {id};
        if (!pg_query(ss->st->env->pg,
                      "UPDATE terminal_sessions SET disconnected_at = now() WHERE id = $1", 1, p,
                      NULL, NULL))
            log_warn("terminal session %s left open (database queue full)", id);
    }
    session_unref(ss);
}

static void on_auth(void *arg, Conn *c)
{
    Stations *st = arg;
    if (c->role != CARELINE__V1__ROLE__ROLE_STATION || !st || st->stopped)
        return;
    StSession *ss = xcalloc(1, sizeof(*ss));
    ss->c = c;
    ss->st = st;
    ss->station_id = c->station_id;
    ss->refs = 1;
    conn_ref(c);
    c->station = ss;
    size_t b = bucket_of(ss->station_id);
    ss->next = st->bucket[b];
    st->bucket[b] = ss;
    st->nsessions++;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)ss->station_id);
    const char *p[] = {id, st->env->server_id, c->peer};
    ss->refs++;
    if (!pg_query(st->env->pg,
                  "INSERT INTO terminal_sessions (station_id, daemon_id, peer) "
                  "VALUES ($1, $2, $3) RETURNING id",
                  3, p, terminal_open_done, ss))
        ss->refs--;
    ss->last_ping_ms = util_now_ms();
    session_refresh(st, ss); /* the backlog */
}

static void on_close(void *arg, Conn *c)
{
    StSession *ss = c->station;
    Stations *st = arg;
    if (!ss || !st)
        return;
    c->station = NULL;
    ss->closed = true;
    StSession **pp = &st->bucket[bucket_of(ss->station_id)];
    while (*pp && *pp != ss)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ss->next;
    st->nsessions--;
    if (ss->terminal_id && !st->stopped) {
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)ss->terminal_id);
        const char *p[] = {id};
        if (!pg_query(st->env->pg,
                      "UPDATE terminal_sessions SET disconnected_at = now() WHERE id = $1", 1, p,
                      NULL, NULL))
            log_warn("terminal session %s left open (database queue full)", id);
    }
    session_unref(ss);
}

/* ---- JobUpdate --------------------------------------------------------------------------- */

typedef struct {
    Stations *st;
    Conn *c;
    uint64_t seq;
    int64_t job_id;
    int64_t station_id; /* the job's station as the caller is allowed to see it */
} UpdOp;

static const char *action_db(int action)
{
    static const char *const names[] = {"",        "accept",   "reject", "go_en_route",
                                        "deliver", "complete", "fail"};
    return action > 0 && action < 7 ? names[action] : NULL;
}

/* One row of careline_job_update_many (columns from 1: careline_job_update_result). */
static void update_done(PGresult *res, int row, const char *err, void *arg)
{
    UpdOp *op = arg;
    Conn *c = op->c;
    Stations *st = op->st;
    if (!res) {
        log_warn("job %lld: update failed: %s", (long long)op->job_id, err);
        conn_send_error(c, op->seq, S(ERROR_CODE__UNAVAILABLE), false,
                        "the update could not be saved (database unavailable); nothing changed, "
                        "retry shortly");
        goto out;
    }
    const char *outcome = PQgetvalue(res, row, 1);
    if (strcmp(outcome, "not_found") == 0) {
        conn_send_error(c, op->seq, S(ERROR_CODE__NOT_FOUND), false,
                        "job %lld is not one of this station's jobs", (long long)op->job_id);
        goto out;
    }
    int state = job_state_from_db(PQgetvalue(res, row, 2));
    if (strcmp(outcome, "invalid") == 0) {
        char now[32];
        job_state_to_db(state, now);
        conn_send_error(c, op->seq, S(ERROR_CODE__INVALID_TRANSITION), false,
                        "job %lld is %s; that update is not allowed from there (nothing changed)",
                        (long long)op->job_id, now);
        goto out;
    }
    bool changed = strcmp(outcome, "changed") == 0;
    int64_t request_id = strtoll(PQgetvalue(res, row, 3), NULL, 10);
    int attempt = atoi(PQgetvalue(res, row, 4));
    if (changed && PQgetvalue(res, row, 6)[0] == 't') {
        /* rejected: its capacity goes back and the request moves on to the next station */
        dispatch_release(st->dispatch, request_id, attempt, "rejected");
        dispatch_redispatch(st->dispatch, request_id);
    }
    if (changed && PQgetvalue(res, row, 7)[0] == 't')
        log_warn("welfare alert raised for request %lld (job %lld)", (long long)request_id,
                 (long long)op->job_id);
    Careline__V1__JobUpdateResult r = CARELINE__V1__JOB_UPDATE_RESULT__INIT;
    r.job_id = op->job_id;
    r.state = (Careline__V1__JobState)state;
    r.changed = changed;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = op->seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE_RESULT;
    env.job_update_result = &r;
    conn_send(c, &env);
    if (changed) /* this station's other consoles (and this one's screen) follow */
        station_wake(st, op->station_id ? op->station_id : c->station_id);
out:
    conn_inflight_end(c);
    conn_unref(c);
    free(op);
}

static bool reason_ok(int action, int reason)
{
    switch (action) {
    case 2: /* REJECT */
        return reason == S(REASON_CODE__STATION_FULL) || reason == S(REASON_CODE__NO_STAFF) ||
               reason == S(REASON_CODE__OUT_OF_AREA) || reason == S(REASON_CODE__REASON_OTHER);
    case 6: /* FAIL */
        return reason == S(REASON_CODE__RESIDENT_NOT_HOME) ||
               reason == S(REASON_CODE__RESIDENT_UNWELL) ||
               reason == S(REASON_CODE__RESIDENT_REFUSED) || reason == S(REASON_CODE__REASON_OTHER);
    default:
        return reason == 0;
    }
}

static void handle_job_update(void *arg, Conn *c, Envelope *env)
{
    Stations *st = arg;
    const Careline__V1__JobUpdate *u = env->job_update;
    const char *action = action_db(u->action);
    size_t nlen = strlen(u->note);
    if (u->job_id <= 0) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "job_id must be a positive id");
    } else if (!action) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "action must be ACCEPT, REJECT, GO_EN_ROUTE, DELIVER, COMPLETE or FAIL");
    } else if (!reason_ok(u->action, u->reason_code)) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        u->action == 2 ? "REJECT needs reason_code STATION_FULL, NO_STAFF, "
                                         "OUT_OF_AREA or REASON_OTHER"
                        : u->action == 6
                            ? "FAIL needs reason_code RESIDENT_NOT_HOME, RESIDENT_UNWELL, "
                              "RESIDENT_REFUSED or REASON_OTHER"
                            : "only REJECT and FAIL take a reason_code");
    } else if (nlen > MAX_NOTE || !util_utf8_valid(u->note, nlen)) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "note must be at most %d bytes of valid UTF-8", MAX_NOTE);
    } else {
        bool admin = c->role == CARELINE__V1__ROLE__ROLE_ADMIN;
        char reason[64] = "", actor[48];
        if (u->reason_code)
            dispatch_enum_to_db(&careline__v1__reason_code__descriptor, u->reason_code, reason,
                                sizeof(reason));
        snprintf(actor, sizeof(actor), admin ? "admin" : "station:%lld", (long long)c->station_id);
        if (pgbatch_waiting(st->updates) >= (size_t)st->env->cfg->pg_max_queue) {
            conn_send_error(c, env->seq, S(ERROR_CODE__OVERLOADED), false,
                            "too many requests are waiting for the database; retry shortly");
            frame_free(env);
            return;
        }
        json_t *e = json_pack("{sIsosssossss}", "job", (json_int_t)u->job_id, "station",
                              admin ? json_null() : json_integer(c->station_id), "action", action,
                              "reason_code", reason[0] ? json_string(reason) : json_null(), "note",
                              u->note, "actor", actor);
        UpdOp *op = xcalloc(1, sizeof(*op));
        op->st = st;
        op->c = c;
        op->seq = env->seq;
        op->job_id = u->job_id;
        op->station_id = admin ? 0 : c->station_id;
        conn_inflight_begin(c);
        conn_ref(c);
        pgbatch_add(st->updates, e, update_done, op);
    }
    frame_free(env);
}

/* ---- StationStatus ---------------------------------------------------------------------- */

typedef struct {
    Stations *st;
    Conn *c;
    uint64_t seq;
    bool open;
    int pending; /* Redis capacity writes still in flight */
    bool failed;
    unsigned redispatched;
    bool pg_done;
} StatusOp;

static void status_finish(StatusOp *op)
{
    if (op->pending > 0 || !op->pg_done)
        return;
    Conn *c = op->c;
    if (op->failed) {
        conn_send_error(c, op->seq, S(ERROR_CODE__UNAVAILABLE), false,
                        "the status could not be saved completely; send it again");
    } else {
        Careline__V1__StationStatusAck ack = CARELINE__V1__STATION_STATUS_ACK__INIT;
        ack.station_id = c->station_id;
        ack.open = op->open;
        ack.jobs_redispatched = op->redispatched;
        Envelope env = CARELINE__V1__ENVELOPE__INIT;
        env.seq = op->seq;
        env.body_case = CARELINE__V1__ENVELOPE__BODY_STATION_STATUS_ACK;
        env.station_status_ack = &ack;
        conn_send(c, &env);
    }
    conn_inflight_end(c);
    conn_unref(c);
    free(op);
}

static void status_pg_done(PGresult *res, const char *err, void *arg)
{
    StatusOp *op = arg;
    Stations *st = op->st;
    op->pg_done = true;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("station %lld: status not saved: %s", (long long)op->c->station_id,
                 res ? PQresultErrorMessage(res) : err);
        op->failed = true;
    } else {
        for (int i = 0; i < PQntuples(res); i++) {
            int64_t req = strtoll(PQgetvalue(res, i, 1), NULL, 10);
            dispatch_release(st->dispatch, req, atoi(PQgetvalue(res, i, 2)), "rejected");
            dispatch_redispatch(st->dispatch, req);
            op->redispatched++;
        }
        if (op->redispatched)
            station_wake(st, op->c->station_id);
        if (op->open)
            dispatch_kick(st->dispatch); /* an opened station may take waiting requests */
    }
    status_finish(op);
}

static void cap_done(redisReply *r, const char *err, void *arg)
{
    StatusOp *op = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_warn("station %lld: capacity not saved: %s", (long long)op->c->station_id,
                 r ? r->str : err);
        op->failed = true;
    }
    op->pending--;
    status_finish(op);
}

static void handle_station_status(void *arg, Conn *c, Envelope *env)
{
    const Careline__V1__StationStatus *m = env->station_status;
    Stations *st = arg;
    if (c->role != CARELINE__V1__ROLE__ROLE_STATION) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "StationStatus is sent from a station's own console");
        goto done;
    }
    if (m->caregivers_on_duty < 0 || m->caregivers_on_duty > 10000) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "caregivers_on_duty must be 0..10000");
        goto done;
    }
    CalDay today = cal_day_of(util_wall_ms(), NULL), days[16];
    if (m->n_capacity > ARRAY_LEN(days)) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "at most %zu capacity entries", ARRAY_LEN(days));
        goto done;
    }
    for (size_t i = 0; i < m->n_capacity; i++) {
        const Careline__V1__SlotCapacity *sc = m->capacity[i];
        if (sc->slot != S(MEAL_SLOT__LUNCH) && sc->slot != S(MEAL_SLOT__DINNER)) {
            conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                            "capacity[%zu].slot must be LUNCH or DINNER", i);
            goto done;
        }
        days[i] = today;
        if ((sc->service_date[0] && !cal_parse(sc->service_date, &days[i])) || days[i] < today ||
            sc->capacity_left < 0 || sc->capacity_left > 100000) {
            conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                            "capacity[%zu] needs a date from today on and capacity_left 0..100000",
                            i);
            goto done;
        }
    }
    StatusOp *op = xcalloc(1, sizeof(*op));
    op->st = st;
    op->c = c;
    op->seq = env->seq;
    op->open = m->open;
    conn_inflight_begin(c);
    conn_ref(c);
    for (size_t i = 0; i < m->n_capacity; i++) {
        char day[11], used[96], lim[96], left[16], exp[24];
        cal_format(days[i], day);
        const char *slot = m->capacity[i]->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch";
        keys_capacity(&st->env->keys, c->station_id, day, slot, used, sizeof(used));
        keys_limit(&st->env->keys, c->station_id, day, slot, lim, sizeof(lim));
        snprintf(left, sizeof(left), "%d", m->capacity[i]->capacity_left);
        snprintf(exp, sizeof(exp), "%lld", (long long)(cal_unix_ms(days[i] + 2, 0) / 1000));
        const char *args[] = {used, lim, left, exp};
        size_t lens[] = {strlen(used), strlen(lim), strlen(left), strlen(exp)};
        if (rds_eval(st->env->rds, st->caplim, cap_done, op, 2, 2, args, lens))
            op->pending++;
        else
            op->failed = true;
    }
    if (m->capacity_only) { /* open state and staff stay as they were */
        const DirSnap *snap = dir_snapshot_of(st);
        const Station *me = snap ? dir_station(snap, c->station_id) : NULL;
        op->open = me ? me->is_open : m->open;
        op->pg_done = true;
        status_finish(op);
        goto done;
    }
    char sid[24], duty[16];
    snprintf(sid, sizeof(sid), "%lld", (long long)c->station_id);
    snprintf(duty, sizeof(duty), "%d", m->caregivers_on_duty);
    char actor[48];
    snprintf(actor, sizeof(actor), "station:%lld", (long long)c->station_id);
    const char *p[] = {sid, m->open ? "t" : "f", duty, actor};
    if (!pg_query(st->env->pg, "SELECT * FROM careline_station_status($1, $2, $3, $4)", 4, p,
                  status_pg_done, op)) {
        op->failed = true;
        op->pg_done = true;
        status_finish(op);
    }
done:
    frame_free(env);
}

/* ---- the tick: expired offers, heartbeats, periodic re-reads ------------------------------ */

static void expire_start(Stations *st);

static void expire_done(PGresult *res, const char *err, void *arg)
{
    Stations *st = arg;
    st->expiring = false;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_debug("offer expiry failed: %s", res ? PQresultErrorMessage(res) : err);
        return;
    }
    for (int i = 0; i < PQntuples(res) && !st->stopped; i++) {
        int64_t req = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        int64_t station = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        log_info("job %s at station %lld not accepted in time; offering it elsewhere",
                 PQgetvalue(res, i, 0), (long long)station);
        dispatch_release(st->dispatch, req, atoi(PQgetvalue(res, i, 3)), "expired");
        dispatch_redispatch(st->dispatch, req);
        station_wake(st, station); /* its console drops the offer */
    }
    /* a full batch means more are overdue (say, after an outage): drain now, not at 200/s */
    if (PQntuples(res) == EXPIRE_BATCH && !st->stopped)
        expire_start(st);
}

static void expire_start(Stations *st)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", EXPIRE_BATCH);
    const char *p[] = {n};
    st->expiring = true;
    if (!pg_query(st->env->pg, "SELECT * FROM careline_expire_offers($1)", 1, p, expire_done, st))
        st->expiring = false;
}

static void ping_console(StSession *ss)
{
    Careline__V1__Ping p = CARELINE__V1__PING__INIT;
    p.nonce = (uint64_t)util_now_ms();
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_PING;
    env.ping = &p;
    conn_send(ss->c, &env);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Stations *st = arg;
    if (st->stopped || st->env->stopping)
        return;
    if (!st->expiring && pg_pool_ready(st->env->pg) && dispatch_ready(st->dispatch))
        expire_start(st);
    int64_t now = util_now_ms();
    const Config *cfg = st->env->cfg;
    /* Consoles that connected together would be pinged and re-read together, 10,000 in one
     * turn of the loop while pushes wait. Each tick does at most twice its share; the rest
     * wait a tick, and the bursts spread out. */
    size_t n = st->nsessions;
    size_t pings = n * 2 * TICK_MS / (size_t)cfg->heartbeat_interval_ms + 64;
    size_t rereads = n * 2 * TICK_MS / (size_t)cfg->console_refresh_ms + REFRESH_BATCH;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (StSession *ss = st->bucket[b]; ss; ss = ss->next) {
            /* heartbeats both ways: a console that answers our Ping stays active; one that
             * vanished without closing is dropped by the idle timeout */
            if (pings > 0 && now - ss->c->last_active_ms >= cfg->heartbeat_interval_ms &&
                now - ss->last_ping_ms >= cfg->heartbeat_interval_ms) {
                ss->last_ping_ms = now;
                ping_console(ss);
                pings--;
            }
            if (rereads > 0 && now - ss->last_refresh_ms >= cfg->console_refresh_ms) {
                session_refresh(st, ss);
                rereads--;
            }
        }
    }
}

/* ---- set-up -------------------------------------------------------------------------------- */

/* A daemon with a configured server_id that restarts after a crash closes the terminal
 * sessions its previous run left open (they would count as connected forever). Only rows
 * from before this start: this run's own sessions are not touched. */
static void close_stale_sessions(const Env *env)
{
    if (!env->cfg->server_id[0])
        return; /* host-pid ids never repeat: nothing of ours can be left over */
    char since[32];
    snprintf(since, sizeof(since), "%.3f", (double)util_wall_ms() / 1000.0);
    const char *p[] = {env->cfg->server_id, since};
    if (!pg_query(env->pg,
                  "UPDATE terminal_sessions SET disconnected_at = now() WHERE daemon_id = $1 "
                  "AND disconnected_at IS NULL AND connected_at < to_timestamp($2::float8)",
                  2, p, NULL, NULL))
        log_warn("could not close the terminal sessions of this daemon's previous run");
}

static void hook_queued(void *arg, int64_t station_id, const Careline__V1__JobOffer *offer)
{
    station_offer(arg, station_id, offer);
}

static void hook_changed(void *arg, int64_t station_id)
{
    station_wake(arg, station_id);
}

Stations *station_new(const Env *env, Dispatch *dispatch)
{
    const Config *cfg = env->cfg;
    Stations *st = xcalloc(1, sizeof(*st));
    st->env = env;
    st->dispatch = dispatch;
    close_stale_sessions(env);
    keys_wake_channel(&env->keys, st->channel, sizeof(st->channel));
    st->caplim = rds_script_new(env->rds, lua_caplim);
    if (!rds_subscribe(env->rds, st->channel, wake_cb, st))
        log_warn("cannot subscribe to %s; consoles rely on the periodic re-read", st->channel);
    st->wake_ev = event_new(env->base, -1, 0, wake_flush, st);
    st->due_ev = event_new(env->base, -1, 0, due_flush, st);
    st->tick = event_new(env->base, -1, EV_PERSIST, tick_cb, st);
    util_timer_ms(st->tick, TICK_MS);
    session_on_auth(env->sessions, on_auth, st);
    session_on_close(env->sessions, on_close, st);
    st->updates = pgbatch_new(env->pg, "SELECT * FROM careline_job_update_many($1::jsonb)",
                              cfg->pg_pool_size, 256, cfg->pg_query_timeout_ms);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE, handle_job_update, st);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_STATION_STATUS, handle_station_status,
                  st);
    dispatch_set_hooks(dispatch, &(DispatchHooks){hook_queued, hook_changed, st});
    return st;
}

void station_stop(Stations *st)
{
    if (!st)
        return;
    st->stopped = true;
    pgbatch_free(st->updates);
    st->updates = NULL;
}

void station_free(Stations *st)
{
    if (!st)
        return;
    if (st->tick)
        event_free(st->tick);
    if (st->wake_ev)
        event_free(st->wake_ev);
    if (st->due_ev)
        event_free(st->due_ev);
    for (size_t k = 0; k < st->ndue; k++)
        session_unref(st->due[k]);
    free(st->due);
    pgbatch_free(st->updates);
    free(st->wake);
    free(st);
}
