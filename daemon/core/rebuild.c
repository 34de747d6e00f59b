/*
 * rebuild: checks the county's Redis generation on every new link and every second, and
 * rebuilds the county's Redis state from PostgreSQL's live jobs when it is lost (the
 * contract and the over-capacity argument are in rebuild.h). One check or rebuild step is
 * in flight at a time; each step's callback starts the next, and any failure ends the
 * attempt: the next tick starts over (the lock is the same owner's to take again).
 */
#include "core/rebuild.h"
#include "core/rebuild_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cal.h"
#include "common/log.h"
#include "core/dispatch.h"
#include "store/pgcols.h"
#include "store/scripts.h"

static void jobs_free(Rebuild *rb)
{
    for (size_t i = 0; i < rb->njobs; i++)
        free(rb->jobs[i].entry);
    free(rb->jobs);
    rb->jobs = NULL;
}

void rebuild_unref(Rebuild *rb)
{
    if (--rb->refs > 0)
        return;
    event_free(rb->tick);
    jobs_free(rb);
    free(rb->limits);
    free(rb->waiters);
    free(rb);
}

/* Fires the parked waiters: all of them (all = true), or those past their deadline, with ok. */
static void waiters_fire(Rebuild *rb, bool all, bool ok)
{
    int64_t now = util_now_ms();
    size_t kept = 0, n = rb->nwaiters;
    Waiter *w = rb->waiters;
    rb->waiters = NULL; /* a callback may park a new waiter: it goes to a fresh list */
    rb->nwaiters = rb->capwaiters = 0;
    for (size_t i = 0; i < n; i++) {
        if (all || now >= w[i].deadline)
            w[i].cb(w[i].arg, ok);
        else
            w[kept++] = w[i];
    }
    for (size_t i = 0; i < rb->nwaiters; i++) { /* parked by the callbacks */
        if (kept == n) {
            n = n ? 2 * n : 8;
            w = xrealloc(w, n * sizeof(*w));
        }
        w[kept++] = rb->waiters[i];
    }
    free(rb->waiters);
    rb->waiters = w;
    rb->nwaiters = kept;
    rb->capwaiters = n;
}

bool rebuild_ok(const Rebuild *rb)
{
    return rb->value[0] && !rb->rebuilding && rds_ready(rb->env->rds) &&
           rb->epoch == rds_link_epoch(rb->env->rds);
}

int64_t rebuild_gen(const Rebuild *rb)
{
    return rb->gen;
}

const char *rebuild_value(const Rebuild *rb)
{
    return rb->value;
}

void rebuild_check_now(Rebuild *rb)
{
    rb->next_check = 0;
    event_active(rb->tick, EV_TIMEOUT, 0);
}

void rebuild_wait(Rebuild *rb, int wait_ms, RebuildWaitCb cb, void *arg)
{
    if (rebuild_ok(rb)) {
        cb(arg, true);
        return;
    }
    if (rb->freed || rb->lost || rb->rebuilding || !rds_ready(rb->env->rds)) {
        cb(arg, false);
        return;
    }
    if (rb->nwaiters == rb->capwaiters) {
        rb->capwaiters = rb->capwaiters ? 2 * rb->capwaiters : 8;
        rb->waiters = xrealloc(rb->waiters, rb->capwaiters * sizeof(Waiter));
    }
    rb->waiters[rb->nwaiters++] = (Waiter){cb, arg, util_now_ms() + wait_ms};
    if (!rb->checking)
        rebuild_check_now(rb);
}

void rebuild_note_refused(Rebuild *rb)
{
    rb->pg_due = true;
    rebuild_check_now(rb);
}

void rebuild_note_reply(Rebuild *rb, const redisReply *reply)
{
    if (!rds_write_refused(reply))
        return;
    if (!ready_is(rb->env->ready, READY_REDIS_WRITES_FAILING))
        log_warn("Redis refuses writes: %s", reply->str);
    ready_set(rb->env->ready, READY_REDIS_WRITES_FAILING, true);
}

/* ---- the end of a rebuild or a wait --------------------------------------------------- */

static void lost(Rebuild *rb, const char *why)
{
    if (rb->value[0])
        log_warn("Redis state of the county is lost (%s): reservations stop until it is "
                 "rebuilt from PostgreSQL",
                 why);
    rb->value[0] = '\0';
    rb->lost = true;
    ready_set(rb->env->ready, READY_REDIS_REBUILDING, true);
    waiters_fire(rb, true, false);
}

static void adopt(Rebuild *rb, const char *value, uint64_t epoch)
{
    bool was_ok = rebuild_ok(rb);
    if (strcmp(rb->value, value) != 0 && rb->value[0])
        log_info("Redis generation is now %s (was %s)", value, rb->value);
    else if (!rb->value[0])
        log_info("Redis generation %s verified", value);
    snprintf(rb->value, sizeof(rb->value), "%s", value);
    rb->gen = strtoll(value, NULL, 10);
    rb->epoch = epoch;
    rb->waiting_logged = false;
    rb->lost = false;
    ready_set(rb->env->ready, READY_REDIS_REBUILDING, false);
    if (rebuild_ok(rb))
        waiters_fire(rb, true, true);
    if (!was_ok && rebuild_ok(rb) && rb->resumed)
        rb->resumed(rb->arg);
}

void rebuild_failed(Rebuild *rb, const char *what, const char *err)
{
    log_warn("rebuilding Redis state failed at %s: %s (retried)", what, err);
    rb->rebuilding = false;
    jobs_free(rb);
    rb->njobs = rb->written = 0;
    free(rb->limits);
    rb->limits = NULL;
    rb->nlimits = 0;
}

/* ---- writing the snapshot --------------------------------------------------------------- */

static void done_cb(redisReply *r, const char *err, void *arg)
{
    Rebuild *rb = arg;
    if (rb->freed) {
        rebuild_unref(rb);
        return;
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        rebuild_failed(rb, "publishing the generation", r ? r->str : err);
    } else {
        char value[GEN_VALUE];
        snprintf(value, sizeof(value), "%lld %s", (long long)rb->new_gen, rb->run_id);
        rb->env->metrics->redis_rebuilds++;
        log_warn("Redis state rebuilt from PostgreSQL: generation %lld, %zu live job(s), "
                 "%lld ms",
                 (long long)rb->new_gen, rb->njobs, (long long)(util_now_ms() - rb->started_ms));
        rb->rebuilding = false;
        jobs_free(rb);
        rb->njobs = rb->written = 0;
        free(rb->limits);
        rb->limits = NULL;
        rb->nlimits = 0;
        adopt(rb, value, rb->check_epoch);
    }
    rebuild_unref(rb);
}

static long long expire_at(const char *day);

/* The generation, with the stations' limits (gendone.lua). */
static bool send_done(Rebuild *rb)
{
    const Keys *k = &rb->env->keys;
    size_t nkeys = 2 + rb->nlimits, nargs = 2 + 2 * rb->nlimits;
    char(*buf)[96] = xcalloc(nkeys + nargs, sizeof(*buf));
    const char **args = xcalloc(nkeys + nargs, sizeof(char *));
    size_t *lens = xcalloc(nkeys + nargs, sizeof(size_t));
    char(*a)[96] = buf + nkeys;
    keys_generation(k, buf[0], sizeof(buf[0]));
    keys_rebuild_lock(k, buf[1], sizeof(buf[1]));
    snprintf(a[0], 96, "%s", rb->env->server_id);
    snprintf(a[1], 96, "%lld %s", (long long)rb->new_gen, rb->run_id);
    for (size_t i = 0; i < rb->nlimits; i++) {
        const Limit *l = &rb->limits[i];
        keys_limit(k, l->station, l->day, l->slot, buf[2 + i], 96);
        snprintf(a[2 + 2 * i], 96, "%d", l->limit);
        snprintf(a[3 + 2 * i], 96, "%lld", expire_at(l->day));
    }
    for (size_t i = 0; i < nkeys + nargs; i++) {
        args[i] = buf[i];
        lens[i] = strlen(buf[i]);
    }
    bool ok = rds_eval(rb->env->rds, rb->done, done_cb, rb, (int)nkeys, (int)nargs, args, lens);
    free(buf);
    free(args);
    free(lens);
    if (ok)
        rb->refs++;
    return ok;
}

static void fill_cb(redisReply *r, const char *err, void *arg)
{
    Rebuild *rb = arg;
    if (rb->freed) {
        rebuild_unref(rb);
        return;
    }
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        rebuild_note_reply(rb, r);
        rebuild_failed(rb, "writing live jobs", r ? (r->str ? r->str : "bad reply") : err);
    } else {
        rb->written += (size_t)r->integer;
        bool sent = rb->written < rb->njobs ? rebuild_send_chunk(rb) : send_done(rb);
        if (!sent)
            rebuild_failed(rb, "writing live jobs", "Redis is unavailable or overloaded");
    }
    rebuild_unref(rb);
}

/* Day-end of the service date plus one day, as reserve.c expires its keys. */
static long long expire_at(const char *day)
{
    CalDay d;
    if (!cal_parse(day, &d))
        d = cal_day_of(util_wall_ms(), NULL);
    return (long long)(cal_unix_ms(d + 2, 0) / 1000);
}

bool rebuild_send_chunk(Rebuild *rb)
{
    const Keys *k = &rb->env->keys;
    size_t n = rb->njobs - rb->written;
    if (n > FILL_CHUNK)
        n = FILL_CHUNK;
    size_t nkeys = 1 + 3 * n, nargs = 2 + 6 * n;
    char(*buf)[96] = xcalloc(nkeys + nargs, sizeof(*buf));
    const char **args = xcalloc(nkeys + nargs, sizeof(char *));
    size_t *lens = xcalloc(nkeys + nargs, sizeof(size_t));
    char(*a)[96] = buf + nkeys;
    keys_rebuild_lock(k, buf[0], sizeof(buf[0]));
    snprintf(a[0], 96, "%s", rb->env->server_id);
    snprintf(a[1], 96, "%d", LOCK_TTL_MS);
    for (size_t i = 0; i < n; i++) {
        const LiveJob *j = &rb->jobs[rb->written + i];
        keys_capacity(k, j->station, j->day, j->slot, buf[1 + 3 * i], 96);
        keys_stream(k, j->station, buf[2 + 3 * i], 96);
        keys_reservation(k, j->request, j->attempt, buf[3 + 3 * i], 96);
        snprintf(a[2 + 6 * i], 96, "%lld", (long long)j->station);
        snprintf(a[3 + 6 * i], 96, "%lld", (long long)j->request);
        snprintf(a[4 + 6 * i], 96, "%d", j->attempt);
        snprintf(a[5 + 6 * i], 96, "%lld", (long long)j->job);
        snprintf(a[6 + 6 * i], 96, "%lld", expire_at(j->day));
    }
    for (size_t i = 0; i < nkeys + nargs; i++) {
        args[i] = buf[i];
        lens[i] = strlen(buf[i]);
    }
    for (size_t i = 0; i < n; i++) { /* the packed entry: binary, not in buf */
        const LiveJob *j = &rb->jobs[rb->written + i];
        args[nkeys + 7 + 6 * i] = j->entry ? (const char *)j->entry : "";
        lens[nkeys + 7 + 6 * i] = j->entry ? j->entry_len : 0;
    }
    bool ok = rds_eval(rb->env->rds, rb->fill, fill_cb, rb, (int)nkeys, (int)nargs, args, lens);
    free(buf);
    free(args);
    free(lens);
    if (ok)
        rb->refs++;
    return ok;
}

/* ---- the snapshot from PostgreSQL --------------------------------------------------------- */

enum { LJ_GEN, LJ_STATION, LJ_DAY, LJ_SLOT, LJ_REQUEST, LJ_ATTEMPT, LJ_JOB, LJ_N };
static const char *const live_cols[LJ_N] = {"gen",        "station_id", "service_date", "slot",
                                            "request_id", "attempt",    "job_id"};

static void snapshot_cb(PGresult *res, const char *err, void *arg)
{
    Rebuild *rb = arg;
    PgCols pc = {0};
    if (rb->freed) {
        rebuild_unref(rb);
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 ||
        !pgcols_bind(&pc, res, live_cols, LJ_N)) {
        rebuild_failed(rb, "reading live jobs", PG_ERRLINE(res, err));
        rebuild_unref(rb);
        return;
    }
    int rows = PQntuples(res);
    rb->new_gen = pgcols_ll(&pc, 0, LJ_GEN);
    rb->jobs = xcalloc((size_t)rows, sizeof(LiveJob));
    rb->njobs = 0;
    for (int i = 1; i < rows; i++) { /* row 0 carries only the generation */
        LiveJob *j = &rb->jobs[rb->njobs++];
        j->station = pgcols_ll(&pc, i, LJ_STATION);
        j->request = pgcols_ll(&pc, i, LJ_REQUEST);
        j->attempt = pgcols_int(&pc, i, LJ_ATTEMPT);
        j->job = pgcols_ll(&pc, i, LJ_JOB);
        snprintf(j->day, sizeof(j->day), "%s", pgcols_str(&pc, i, LJ_DAY));
        snprintf(j->slot, sizeof(j->slot), "%s", pgcols_str(&pc, i, LJ_SLOT));
    }
    rb->written = 0;
    if (rb->njobs ? !rebuild_entries_read(rb) : !send_done(rb))
        rebuild_failed(rb, "writing live jobs", "Redis is unavailable or the database queue full");
    rebuild_unref(rb);
}

/* ---- the stations' limits ------------------------------------------------------------------ */

enum { LM_STATION, LM_DAY, LM_SLOT, LM_LIMIT, LM_N };
static const char *const limit_cols[LM_N] = {"station_id", "service_date", "meal_slot",
                                             "capacity_limit"};

/* The stations' recorded limits (station_status_events), read after the lock cleared the
 * generation: a word recorded later is applied by its own caplim.lua once the new generation
 * is out, never before gendone.lua writes these. Then the live jobs. */
static void limits_cb(PGresult *res, const char *err, void *arg)
{
    Rebuild *rb = arg;
    PgCols pc = {0};
    if (rb->freed) {
        rebuild_unref(rb);
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK ||
        !pgcols_bind(&pc, res, limit_cols, LM_N)) {
        rebuild_failed(rb, "reading the stations' limits", PG_ERRLINE(res, err));
        rebuild_unref(rb);
        return;
    }
    int rows = PQntuples(res);
    free(rb->limits);
    rb->limits = xcalloc((size_t)rows + 1, sizeof(Limit));
    rb->nlimits = 0;
    for (int i = 0; i < rows; i++) {
        Limit *l = &rb->limits[rb->nlimits++];
        l->station = pgcols_ll(&pc, i, LM_STATION);
        l->limit = pgcols_int(&pc, i, LM_LIMIT);
        snprintf(l->day, sizeof(l->day), "%s", pgcols_str(&pc, i, LM_DAY));
        snprintf(l->slot, sizeof(l->slot), "%s", pgcols_str(&pc, i, LM_SLOT));
    }
    const char *params[] = {rb->env->cfg->county_code, rb->env->server_id};
    if (pg_query(rb->env->pg, "SELECT * FROM careline_redis_rebuild($1, $2)", 2, params,
                 snapshot_cb, rb))
        rb->refs++;
    else
        rebuild_failed(rb, "reading live jobs", "the database queue is full");
    rebuild_unref(rb);
}

/* ---- the lock ----------------------------------------------------------------------------- */

static void lock_cb(redisReply *r, const char *err, void *arg)
{
    Rebuild *rb = arg;
    if (rb->freed) {
        rebuild_unref(rb);
        return;
    }
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        rebuild_note_reply(rb, r);
        rebuild_failed(rb, "taking the rebuild lock", r ? (r->str ? r->str : "bad reply") : err);
    } else if (r->integer == 2) {
        rb->rebuilding = false;
        rebuild_check_now(rb); /* someone finished meanwhile: adopt it */
    } else if (r->integer == 0) {
        rb->rebuilding = false;
        if (!rb->waiting_logged)
            log_info("another daemon is rebuilding the Redis state; waiting for it");
        rb->waiting_logged = true;
    } else {
        rb->started_ms = util_now_ms();
        const char *params[] = {rb->env->cfg->county_code};
        if (pg_query(rb->env->pg, "SELECT * FROM careline_station_limits($1)", 1, params, limits_cb,
                     rb))
            rb->refs++;
        else
            rebuild_failed(rb, "reading the stations' limits", "the database queue is full");
    }
    rebuild_unref(rb);
}

/* force: rebuild even though Redis' generation is current for its run_id (PostgreSQL's is
 * ahead of it). */
static void take_lock(Rebuild *rb, bool force)
{
    rb->pg_due = false; /* a rebuild makes the two agree */
    const Keys *k = &rb->env->keys;
    char gen[64], lock[64], ttl[16], pat[4][64];
    keys_generation(k, gen, sizeof(gen));
    keys_rebuild_lock(k, lock, sizeof(lock));
    snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
    const char *args[10] = {gen, lock, rb->env->server_id, rb->run_id, ttl, force ? "1" : "0"};
    int nargs = 4;
    for (int i = 0; i < 4 && keys_rebuilt_pattern(k, i, pat[i], sizeof(pat[i])); i++)
        args[2 + nargs++] = pat[i];
    size_t lens[10];
    for (int i = 0; i < 2 + nargs; i++)
        lens[i] = strlen(args[i]);
    rb->rebuilding = true; /* no reservation from here on */
    if (rds_eval(rb->env->rds, rb->lock, lock_cb, rb, 2, nargs, args, lens))
        rb->refs++;
    else
        rebuild_failed(rb, "taking the rebuild lock", "Redis is unavailable or overloaded");
}

/* ---- the check ---------------------------------------------------------------------------- */

static void take_lock(Rebuild *rb, bool force);

static const char *const pg_gen_cols[] = {"gen"};

/* After a refusal: Redis' generation (rb->seen, current for its run_id) against
 * PostgreSQL's. */
static void pg_gen_cb(PGresult *res, const char *err, void *arg)
{
    Rebuild *rb = arg;
    PgCols pc = {0};
    if (rb->freed || rb->rebuilding || rb->check_epoch != rds_link_epoch(rb->env->rds)) {
        rebuild_unref(rb);
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || !pgcols_bind(&pc, res, pg_gen_cols, 1)) {
        log_warn("reading the Redis generation from PostgreSQL failed: %s", PG_ERRLINE(res, err));
        rb->pg_due = true; /* the next check asks again */
        rebuild_unref(rb);
        return;
    }
    rb->pg_due = false;
    int64_t pg_gen = PQntuples(res) ? pgcols_ll(&pc, 0, 0) : 0;
    if (pg_gen == strtoll(rb->seen, NULL, 10)) {
        adopt(rb, rb->seen, rb->check_epoch);
    } else {
        lost(rb, "Redis' generation is not PostgreSQL's");
        take_lock(rb, true);
    }
    rebuild_unref(rb);
}

static void gen_cb(redisReply *r, const char *err, void *arg)
{
    Rebuild *rb = arg;
    (void)err;
    rb->seen_ok = r && (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING);
    rb->seen[0] = '\0';
    if (rb->seen_ok && r->type == REDIS_REPLY_STRING && r->len < sizeof(rb->seen))
        snprintf(rb->seen, sizeof(rb->seen), "%.*s", (int)r->len, r->str);
    rebuild_unref(rb);
}

/* The run_id line of INFO server. */
static bool parse_run_id(const char *info, char *out, size_t n)
{
    const char *p = strstr(info, "run_id:");
    if (!p)
        return false;
    p += strlen("run_id:");
    size_t len = strcspn(p, "\r\n");
    if (len == 0 || len >= n)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

static void info_cb(redisReply *r, const char *err, void *arg)
{
    Rebuild *rb = arg;
    (void)err;
    rb->checking = false;
    if (!rb->freed && r && r->type == REDIS_REPLY_ERROR && !rb->check_warned) {
        rb->check_warned = true; /* e.g. an ACL without +info: nothing is reserved until fixed */
        log_error("cannot verify the Redis generation: INFO server refused: %s", r->str);
    }
    if (rb->freed || !rb->seen_ok || !r || r->type != REDIS_REPLY_STRING ||
        rb->check_epoch != rds_link_epoch(rb->env->rds) || rb->rebuilding) {
        rebuild_unref(rb);
        return; /* the next tick checks again */
    }
    if (!parse_run_id(r->str, rb->run_id, sizeof(rb->run_id))) {
        log_warn("Redis INFO server has no run_id: cannot verify its state");
        rebuild_unref(rb);
        return;
    }
    rb->check_warned = false;
    const char *sp = strchr(rb->seen, ' ');
    if (rb->seen[0] && sp && strcmp(sp + 1, rb->run_id) == 0 && strtoll(rb->seen, NULL, 10) > 0) {
        const char *params[] = {rb->env->cfg->county_code};
        if (!rb->pg_due)
            adopt(rb, rb->seen, rb->check_epoch);
        else if (pg_query(rb->env->pg, "SELECT gen FROM redis_generations WHERE county_code = $1",
                          1, params, pg_gen_cb, rb))
            rb->refs++;
    } else {
        lost(rb, !rb->seen[0] ? "its generation key is gone"
                              : "Redis restarted or failed over since the last rebuild");
        take_lock(rb, false);
    }
    rebuild_unref(rb);
}

static void check_send(Rebuild *rb)
{
    char gen[64];
    keys_generation(&rb->env->keys, gen, sizeof(gen));
    const char *get[] = {"GET", gen};
    const size_t getl[] = {3, strlen(gen)};
    const char *info[] = {"INFO", "server"};
    const size_t infol[] = {4, 6};
    rb->check_epoch = rds_link_epoch(rb->env->rds);
    if (!rds_command(rb->env->rds, gen_cb, rb, 2, get, getl))
        return;
    rb->refs++;
    if (!rds_command(rb->env->rds, info_cb, rb, 2, info, infol))
        return; /* gen_cb alone: the next tick tries again */
    rb->refs++;
    rb->checking = true;
}

/* ---- the write probe ---------------------------------------------------------------------- */

static void probe_cb(redisReply *r, const char *err, void *arg)
{
    Rebuild *rb = arg;
    (void)err;
    rb->probing = false;
    if (!rb->freed && r) {
        if (rds_write_refused(r)) {
            rebuild_note_reply(rb, r);
        } else if (r->type != REDIS_REPLY_ERROR &&
                   ready_is(rb->env->ready, READY_REDIS_WRITES_FAILING)) {
            log_info("Redis accepts writes again");
            ready_set(rb->env->ready, READY_REDIS_WRITES_FAILING, false);
        }
    }
    rebuild_unref(rb);
}

static void probe_send(Rebuild *rb)
{
    char key[64];
    keys_probe(&rb->env->keys, key, sizeof(key));
    const char *argv[] = {"SET", key, rb->env->server_id, "PX", "10000"};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    if (rds_command(rb->env->rds, probe_cb, rb, 5, argv, lens)) {
        rb->refs++;
        rb->probing = true;
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Rebuild *rb = arg;
    const Env *env = rb->env;
    if (rb->nwaiters)
        waiters_fire(rb, !rds_ready(env->rds) || env->stopping, false); /* due, or all */
    if (env->stopping || !rds_ready(env->rds))
        return; /* READY_REDIS_DOWN says it; checked again once the link is back */
    int64_t now = util_now_ms();
    if (!rb->probing && now >= rb->next_probe) {
        rb->next_probe = now + CHECK_MS;
        probe_send(rb);
    }
    if (rb->rebuilding || rb->checking)
        return;
    bool ok = rebuild_ok(rb);
    if (!ok)
        ready_set(env->ready, READY_REDIS_REBUILDING, true);
    if (ok && now < rb->next_check)
        return;
    rb->next_check = now + CHECK_MS;
    check_send(rb);
}

Rebuild *rebuild_new(const Env *env, RebuildResumedCb resumed, void *arg)
{
    Rebuild *rb = xcalloc(1, sizeof(*rb));
    rb->env = env;
    rb->resumed = resumed;
    rb->arg = arg;
    rb->refs = 1;
    rb->lock = rds_script_new(env->rds, lua_genlock);
    rb->fill = rds_script_new(env->rds, lua_genfill);
    rb->done = rds_script_new(env->rds, lua_gendone);
    rb->tick = event_new(env->base, -1, EV_PERSIST, tick_cb, rb);
    util_timer_ms(rb->tick, TICK_MS);
    ready_set(env->ready, READY_REDIS_REBUILDING, true);
    return rb;
}

void rebuild_free(Rebuild *rb)
{
    if (!rb)
        return;
    rb->freed = true;
    event_del(rb->tick);
    waiters_fire(rb, true, false);
    rebuild_unref(rb);
}
