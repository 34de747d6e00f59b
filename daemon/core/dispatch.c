/*
 * dispatch: the module's life cycle and public face — it builds the directory, the travel
 * model, the Redis scripts, the group-commit batches and the sweep, installs the protocol
 * routes, and maps between protobuf enums and the database's names. The request's way
 * itself is in intake.c, submit.c, place.c and reserve.c; the rest in query.c, sweep.c and
 * reconcile.c (see dispatch_int.h).
 */
#include "core/dispatch.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "core/dispatch_int.h"
#include "store/scripts.h"

int dispatch_enum_from_db(const ProtobufCEnumDescriptor *desc, const char *db)
{
    char up[64];
    size_t i = 0;
    for (; db[i] && i + 1 < sizeof(up); i++)
        up[i] = (char)toupper((unsigned char)db[i]);
    up[i] = '\0';
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(desc, up);
    return v ? v->value : 0;
}

void dispatch_enum_to_db(const ProtobufCEnumDescriptor *desc, int value, char *out, size_t n)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(desc, value);
    size_t i = 0;
    for (; v && v->name[i] && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)v->name[i]);
    out[i] = '\0';
}

const char *dispatch_db_name(const ProtobufCEnumDescriptor *desc, int value, char buf[64])
{
    dispatch_enum_to_db(desc, value, buf, 64);
    return buf;
}

int dispatch_enum_col(const PgCols *pc, int row, int k, const ProtobufCEnumDescriptor *desc)
{
    const char *v = pgcols_str(pc, row, k);
    return v[0] ? dispatch_enum_from_db(desc, v) : 0;
}

void dispatch_station_name(const Dispatch *d, int64_t id, char *out, size_t n)
{
    const DirSnap *snap = dir_snap(d->dir);
    const Station *st = snap ? dir_station(snap, id) : NULL;
    snprintf(out, n, "%s", st ? st->name : "");
}

bool dispatch_bind(PgCols *pc, const PGresult *res, const char *const *names, size_t n,
                   const char *what)
{
    if (pgcols_bind(pc, res, names, n))
        return true;
    /* the SQL and this daemon disagree (a migration not applied, or applied ahead of us) */
    log_error("%s: the result has no column \"%s\"", what, pc->missing);
    return false;
}

/* ---- public API ------------------------------------------------------------------------ */

void dispatch_redispatch(Dispatch *d, int64_t request_id)
{
    if (d->stopped || !dir_snap(d->dir))
        return; /* the sweep resumes it */
    sweep_redispatch(d, request_id);
}

void dispatch_release(Dispatch *d, int64_t request_id, int attempt, const char *why)
{
    reserve_release(d, request_id, attempt, why, false);
}

void dispatch_kick(Dispatch *d)
{
    d->waitlist_due = true;
    event_active(d->sweep, EV_TIMEOUT, 0);
}

bool dispatch_ready(const Dispatch *d)
{
    return dir_snap(d->dir) != NULL;
}

const Directory *dispatch_directory(const Dispatch *d)
{
    return d->dir;
}

const TravelModel *dispatch_model(const Dispatch *d)
{
    return &d->model;
}

void dispatch_set_hooks(Dispatch *d, const DispatchHooks *hooks)
{
    d->hooks = *hooks;
}

int64_t dispatch_redis_gen(const Dispatch *d)
{
    return rebuild_gen(d->rebuild);
}

/* ---- gauges for /metrics ------------------------------------------------------------------ */

#define GAUGE_MS         500 /* Redis in flight */
#define WAITLIST_EVERY_N 10  /* the waitlist count: every 10th gauge tick (5 s) */

static void waitlist_counted(PGresult *res, const char *err, void *arg)
{
    Dispatch *d = arg;
    (void)err;
    d->counting = false;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        d->env->metrics->waitlist_size = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
}

static void gauges_cb(evutil_socket_t fd, short what, void *arg)
{
    Dispatch *d = arg;
    (void)fd;
    (void)what;
    d->env->metrics->redis_inflight = (int64_t)rds_inflight(d->env->rds);
    if (d->stopped || d->counting || d->gauge_ticks++ % WAITLIST_EVERY_N != 0 ||
        !pg_pool_available(d->env->pg) || !pg_pool_ready(d->env->pg))
        return;
    /* the partial index requests_waitlisted_idx holds exactly these rows */
    d->counting = pg_query(d->env->pg,
                           "SELECT count(*) FROM requests WHERE state = 'waitlisted' "
                           "AND service_date >= careline_local_date(now())",
                           0, NULL, waitlist_counted, d);
}

/* ---- life cycle -------------------------------------------------------------------------- */

static void directory_changed(void *arg)
{
    dispatch_kick(arg); /* stations may have opened or grown: the waitlist may move */
}

static void parse_window(const char *spec, int out[2])
{
    int h1 = 0, m1 = 0, h2 = 0, m2 = 0;
    int n = sscanf(spec, "%d:%d-%d:%d", &h1, &m1, &h2, &m2);
    ASSERT(n == 4); /* config_validate checked the format */
    out[0] = h1 * 60 + m1;
    out[1] = h2 * 60 + m2;
}

Dispatch *dispatch_new(const Env *env)
{
    const Config *cfg = env->cfg;
    Dispatch *d = xcalloc(1, sizeof(*d));
    d->env = env;
    char err[512];
    if (!config_read_phone_key(cfg, d->phone_key, &d->phone_key_len, err, sizeof(err))) {
        /* config_validate read it at start: the file changed since, before the loop runs */
        log_error("%s", err);
        ASSERT(!"the phone-hash key became unreadable after the configuration was checked");
    }
    d->model = (TravelModel){{cfg->detour_urban, cfg->detour_rural, cfg->detour_mountain},
                             {cfg->speed_urban_kmh, cfg->speed_rural_kmh, cfg->speed_mountain_kmh},
                             cfg->circle_minutes};
    parse_window(cfg->lunch_window, d->win[0]);
    parse_window(cfg->dinner_window, d->win[1]);
    d->deadlines = deadlines_new(env->base, 50);
    env->metrics->waitlist_size = -1;
    pg_pool_set_metrics(env->pg, env->metrics);
    d->gauges = event_new(env->base, -1, EV_PERSIST, gauges_cb, d);
    ASSERT(d->gauges);
    event_add(d->gauges, &(struct timeval){0, GAUGE_MS * 1000});
    d->reserve = rds_script_new(env->rds, lua_reserve);
    d->release = rds_script_new(env->rds, lua_release);
    d->rebuild = rebuild_new(env, directory_changed, d); /* resumed: the waitlist may move */
    sweep_start(d);
    d->dir = dir_new(env->pg, directory_changed, d);
    /* one batch of each kind per pool connection at most; a full one commits 256 requests */
    static const char *const sql[BATCH_N] = {
        [BATCH_RESOLVE] = "SELECT * FROM careline_submit_resolve_set($1::jsonb)",
        [BATCH_FINISH] = "SELECT * FROM careline_submit_finish_set($1::jsonb)",
        [BATCH_RECORD] = "SELECT * FROM careline_submit_record_set($1::jsonb)",
    };
    for (int k = 0; k < BATCH_N; k++)
        d->batch[k] =
            pgbatch_new(env->pg, sql[k], cfg->pg_pool_size, 256, cfg->pg_query_timeout_ms);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_SUBMIT, intake_submit, d);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY, query_status, d);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_CANCEL, query_cancel, d);
    return d;
}

void dispatch_stop(Dispatch *d)
{
    if (!d)
        return;
    d->stopped = true;
    for (int k = 0; k < BATCH_N; k++) {
        pgbatch_free(d->batch[k]); /* what waits or runs is dropped, not answered */
        d->batch[k] = NULL;
    }
}

void dispatch_free(Dispatch *d)
{
    if (!d)
        return;
    OPENSSL_cleanse(d->phone_key, sizeof(d->phone_key));
    if (d->sweep)
        event_free(d->sweep);
    if (d->resume)
        event_free(d->resume);
    if (d->gauges)
        event_free(d->gauges);
    deadlines_free(d->deadlines);
    rebuild_free(d->rebuild);
    dir_free(d->dir);
    for (int k = 0; k < BATCH_N; k++)
        pgbatch_free(d->batch[k]);
    free(d);
}
