/*
 * station: the module's life cycle and its clock. station_new wires the parts together
 * (session hooks and routes, the dispatch hooks, the wake channel, the JobUpdate queue);
 * the tick (ten slices a second) expires overdue offers once a second, pings quiet
 * consoles, starts the feed of consoles that sent no StationResume, and reads the stream
 * of those not read for console_refresh_ms (a lost wake-up), a tenth of the consoles a
 * slice, spreading bursts out. The parts are listed in
 * core/station_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/session_lease.h"
#include "core/station_int.h"
#include "store/scripts.h"

int station_job_state_from_db(const char *db)
{
    /* the JobState names prefix JOB_ except OFFERED */
    if (strcmp(db, "offered") == 0)
        return S(JOB_STATE__OFFERED);
    char name[40];
    snprintf(name, sizeof(name), "job_%s", db);
    return dispatch_enum_from_db(&careline__v1__job_state__descriptor, name);
}

void station_job_state_to_db(int state, char out[32])
{
    char name[40];
    dispatch_enum_to_db(&careline__v1__job_state__descriptor, state, name, sizeof(name));
    snprintf(out, 32, "%.31s", strncmp(name, "job_", 4) == 0 ? name + 4 : name);
}

/* ---- the tick: expired offers, heartbeats, periodic re-reads ------------------------------ */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Stations *st = arg;
    if (st->stopped || st->env->stopping)
        return;
    /* the consoles are walked a tenth at a time (ST_SLICES per ST_TICK_MS): 10,000
     * consoles' periodic reads in one burst a second queued ahead of the pushes on the
     * Redis link (push p99 over 10 ms in make bench); the rest runs once a second */
    st->slice = (st->slice + 1) % ST_SLICES;
    if (st->slice == 0) {
        if (!st->expiring && pg_pool_ready(st->env->pg) && dispatch_ready(st->dispatch))
            offer_expiry_start(st);
        if (st->retry_head)
            stream_retry(st);
        /* a rebuild rewrote the streams: every console starts over with its full backlog
         * within this second, not at its next periodic read */
        int64_t gen = dispatch_redis_gen(st->dispatch);
        if (gen != st->gen_seen && st->gen_seen != 0 && gen != 0)
            st->rebuilt_slices = ST_SLICES;
        if (gen != 0)
            st->gen_seen = gen;
    }
    bool rebuilt = st->rebuilt_slices > 0;
    if (rebuilt)
        st->rebuilt_slices--;
    int64_t now = util_now_ms();
    const Config *cfg = st->env->cfg;
    /* Consoles that connected together would be pinged and read together. Each slice does
     * at most twice its share; the rest wait, and the bursts spread out. */
    size_t n = st->nsessions;
    /* a console is visited once per ST_TICK_MS: ping up to one visit early rather than up to
     * one visit late (a quiet console hears from us within heartbeat_interval_ms) */
    int64_t ping_due = cfg->heartbeat_interval_ms - ST_TICK_MS;
    size_t pings = n * 2 * ST_TICK_MS / (size_t)cfg->heartbeat_interval_ms / ST_SLICES + 8;
    size_t reads = n * 2 * ST_TICK_MS / (size_t)cfg->console_refresh_ms / ST_SLICES + 50;
    size_t from = (size_t)st->slice * ST_BUCKETS / ST_SLICES;
    size_t to = (size_t)(st->slice + 1) * ST_BUCKETS / ST_SLICES;
    for (size_t b = from; b < to; b++) {
        for (StSession *ss = st->bucket[b]; ss; ss = ss->next) {
            /* heartbeats both ways: a console that answers our Ping stays active; one that
             * vanished without closing is dropped by the idle timeout */
            if (pings > 0 && now - ss->c->last_active_ms >= ping_due &&
                now - ss->last_ping_ms >= ping_due) {
                ss->last_ping_ms = now;
                console_ping(ss);
                pings--;
            }
            if (!ss->started && now - ss->auth_ms >= RESUME_WAIT_MS)
                stream_start(st, ss, ""); /* a console older than StationResume */
            else if (rebuilt ||
                     (reads > 0 && now - ss->last_refresh_ms >= cfg->console_refresh_ms)) {
                stream_read(st, ss);
                reads--;
            }
        }
    }
}

/* ---- set-up -------------------------------------------------------------------------------- */

static void hook_queued(void *arg, int64_t station_id, const Careline__V1__JobOffer *offer)
{
    station_offer(arg, station_id, offer);
}

static void hook_cancelled(void *arg, int64_t station_id, int64_t request_id, int attempt)
{
    station_withdrawn(arg, station_id, request_id, attempt, S(JOB_STATE__JOB_CANCELLED));
}

Stations *station_new(const Env *env, Dispatch *dispatch)
{
    const Config *cfg = env->cfg;
    Stations *st = xcalloc(1, sizeof(*st));
    st->env = env;
    st->dispatch = dispatch;
    console_close_stale(env);
    st->lease = session_lease_new(env);
    keys_wake_channel(&env->keys, st->channel, sizeof(st->channel));
    st->caplim = rds_script_new(env->rds, lua_caplim);
    wake_subscribe(st);
    st->wake_ev = event_new(env->base, -1, 0, wake_flush, st);
    st->tick = event_new(env->base, -1, EV_PERSIST, tick_cb, st);
    util_timer_ms(st->tick, ST_TICK_MS / ST_SLICES);
    session_on_auth(env->sessions, console_on_auth, st);
    session_on_close(env->sessions, console_on_close, st);
    st->updates = pgbatch_new(env->pg, "SELECT * FROM careline_job_update_many($1::jsonb)",
                              cfg->pg_pool_size, 256, cfg->pg_query_timeout_ms);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE, job_update_handle, st);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_STATION_STATUS, status_handle, st);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_STATION_RESUME, stream_resume_handle,
                  st);
    dispatch_set_hooks(dispatch, &(DispatchHooks){hook_queued, hook_cancelled, st});
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
    session_lease_free(st->lease);
    if (st->tick)
        event_free(st->tick);
    if (st->wake_ev)
        event_free(st->wake_ev);
    pgbatch_free(st->updates);
    stream_retry_free(st);
    free(st->wake);
    free(st);
}
