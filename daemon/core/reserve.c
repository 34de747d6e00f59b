/*
 * reserve: the dispatch module's Redis calls. One script (lua/reserve.lua) checks the
 * candidates' capacity, takes a unit at the first with room and queues the job on its
 * stream — or returns what an earlier run for the same (request, attempt) reserved, so a
 * retry never books twice. lua/release.lua gives a unit back exactly once. A fresh
 * request's reservation is listed as pending until its record commits (settle), so the
 * orphan reconciler can tell a crash's leftovers from recorded work.
 *
 * Nothing is reserved unless the county's Redis generation is verified (core/rebuild.h):
 * every script gets the generation key, reserve.lua refuses when it is gone or differs, and
 * the job row carries the generation so PostgreSQL refuses a unit reserved in lost state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch_int.h"

static void release_done(redisReply *r, const char *err, void *arg)
{
    Dispatch *d = arg;
    rebuild_note_reply(d->rebuild, r);
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_warn("releasing a reservation failed: %s", r ? r->str : err);
    else
        dispatch_kick(d); /* capacity freed: the waitlist may move */
}

bool reserve_release_cb(Dispatch *d, int64_t request_id, int attempt, const char *why,
                        bool drop_entry, RdsReplyCb cb, void *arg)
{
    char key[96], pend[64], gen[64];
    keys_reservation(&d->env->keys, request_id, attempt, key, sizeof(key));
    keys_pending(&d->env->keys, pend, sizeof(pend));
    keys_generation(&d->env->keys, gen, sizeof(gen));
    const char *args[] = {key, pend, gen, why, drop_entry ? "1" : "0"};
    size_t lens[] = {strlen(key), strlen(pend), strlen(gen), strlen(why), 1};
    return rds_eval(d->env->rds, d->release, cb, arg, 3, 2, args, lens);
}

void reserve_release(Dispatch *d, int64_t request_id, int attempt, const char *why, bool drop_entry)
{
    if (d->stopped)
        return;
    if (!reserve_release_cb(d, request_id, attempt, why, drop_entry, release_done, d))
        log_warn("request %lld: cannot release its reservation now (Redis unavailable)",
                 (long long)request_id);
}

static void settle_done(redisReply *r, const char *err, void *arg)
{
    (void)arg;
    if (!r || r->type == REDIS_REPLY_ERROR) /* harmless: the reconciler will find it recorded */
        log_debug("clearing a pending reservation failed: %s", r ? r->str : err);
}

void reserve_settle(Dispatch *d, int64_t request_id, int attempt)
{
    char key[96], pend[64];
    keys_reservation(&d->env->keys, request_id, attempt, key, sizeof(key));
    keys_pending(&d->env->keys, pend, sizeof(pend));
    const char *argv[] = {"ZREM", pend, key};
    const size_t lens[] = {4, strlen(pend), strlen(key)};
    if (!rds_command(d->env->rds, settle_done, NULL, 3, argv, lens))
        log_debug("request %lld: pending reservation left for the reconciler",
                  (long long)request_id);
}

/* Nothing was reserved: the caller hears what is true. A fresh submission has nothing in
 * PostgreSQL yet; an existing request stays as it is and the sweep moves it on. */
static void reserve_unavailable(Sub *s, const char *why)
{
    sub_unavailable(s, s->fresh ? SUB_NOTHING : SUB_PENDING, why);
    sub_free(s);
}

/* reserve.lua's reply: {0, station, job} reserved now, {1, station, job} reserved by an
 * earlier run, {2, 0, held} no room, {3, 0, 0} / {4, 0, 0} the generation is gone / not
 * this daemon's (nothing reserved). */
static void reserve_done(redisReply *r, const char *err, void *arg)
{
    Sub *s = arg;
    Dispatch *d = s->d;
    rebuild_note_reply(d->rebuild, r);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        log_warn("request %lld: reserving capacity failed: %s", (long long)s->request_id,
                 r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : err);
        reserve_unavailable(s, rds_write_refused(r) ? "Redis refuses writes" : "Redis unavailable");
        return;
    }
    long long status = r->element[0]->integer;
    if (status == 3 || status == 4) {
        rebuild_check_now(d->rebuild);
        reserve_unavailable(s, "the queue state is being rebuilt");
        return;
    }
    sub_fault(s, "after_enqueue");
    if (status == 2) {
        s->state = S(REQUEST_STATE__WAITLISTED);
        s->reason = S(REASON_CODE__NO_CAPACITY);
        snprintf(s->msg, sizeof(s->msg), "every eligible station is full for this slot");
        sub_finish(s);
        return;
    }
    s->reserved = true;
    s->gen = rebuild_gen(d->rebuild);
    s->station_id = r->element[1]->integer;
    s->job_id = r->element[2]->integer;
    s->state = S(REQUEST_STATE__QUEUED);
    s->reason = 0;
    s->msg[0] = '\0';
    const DirSnap *snap = dir_snap(d->dir);
    const Station *st = snap ? dir_station(snap, s->station_id) : NULL;
    snprintf(s->station_name, sizeof(s->station_name), "%s", st ? st->name : "");
    if (st) {
        const Village *v = dir_village(snap, s->village);
        GeoAreaKind area = v ? v->area : GEO_RURAL;
        s->minutes = geo_minutes(&d->model, area, geo_km(s->lat, s->lon, st->lat, st->lon));
    }
    sub_finish(s);
}

/* Day-end of the service date plus one day, as a Unix time for EXPIREAT. */
static long long expire_at(CalDay day)
{
    return (long long)(cal_unix_ms(day + 2, 0) / 1000);
}

static void reserve_send(Sub *s, const MatchCand *cands, size_t n)
{
    Dispatch *d = s->d;
    char day[11];
    cal_format(s->day, day);
    const char *slot = s->kind == S(SERVICE_KIND__HOME_CARE)
                           ? "care"
                           : (s->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch");
    /* keys: marker, (capacity, stream, limit override) per candidate, pending, generation;
     * args after */
    size_t nkeys = 3 + 3 * n, nargs = 10 + 2 * n;
    char(*buf)[96] = xcalloc(nkeys + nargs, sizeof(*buf));
    const char **args = xcalloc(nkeys + nargs, sizeof(char *));
    size_t *lens = xcalloc(nkeys + nargs, sizeof(size_t));
    keys_reservation(&d->env->keys, s->request_id, s->attempt, buf[0], sizeof(buf[0]));
    for (size_t i = 0; i < n; i++) {
        const Keys *k = &d->env->keys;
        keys_capacity(k, cands[i].station_id, day, slot, buf[1 + 3 * i], sizeof(buf[0]));
        keys_stream(k, cands[i].station_id, buf[2 + 3 * i], sizeof(buf[0]));
        keys_limit(k, cands[i].station_id, day, slot, buf[3 + 3 * i], sizeof(buf[0]));
    }
    keys_pending(&d->env->keys, buf[1 + 3 * n], sizeof(buf[0]));
    keys_generation(&d->env->keys, buf[2 + 3 * n], sizeof(buf[0]));
    char(*a)[96] = buf + nkeys;
    snprintf(a[0], 96, "%lld", (long long)s->job_id);
    snprintf(a[1], 96, "%lld", (long long)s->request_id);
    snprintf(a[2], 96, "%d", s->attempt);
    snprintf(a[3], 96, "%lld", expire_at(s->day));
    snprintf(a[4], 96, "%d", s->prio ? 1 : 0);
    snprintf(a[5], 96, "%d", d->env->cfg->priority_reserve_pct);
    snprintf(a[6], 96, "%zu", n);
    for (size_t i = 0; i < n; i++) {
        snprintf(a[7 + 2 * i], 96, "%lld", (long long)cands[i].station_id);
        snprintf(a[8 + 2 * i], 96, "%d", cands[i].limit);
    }
    if (s->fresh)
        snprintf(a[7 + 2 * n], 96, "%lld", (long long)util_wall_ms());
    /* the streams keep what a booking horizon plus two days can still concern */
    snprintf(a[8 + 2 * n], 96, "%lld",
             (long long)(util_wall_ms() - (d->env->cfg->booking_days + 2) * 86400000LL));
    snprintf(a[9 + 2 * n], 96, "%s", rebuild_value(d->rebuild));
    for (size_t i = 0; i < nkeys + nargs; i++) {
        args[i] = buf[i];
        lens[i] = strlen(buf[i]);
    }
    bool ok =
        rds_eval(d->env->rds, d->reserve, reserve_done, s, (int)nkeys, (int)nargs, args, lens);
    free(buf);
    free(args);
    free(lens);
    if (!ok)
        reserve_done(NULL, "Redis is unavailable or overloaded", s);
}

/* A submission waiting for the check of a new Redis link, with its candidates. */
typedef struct {
    Sub *s;
    size_t n;
    MatchCand cands[];
} ReserveWait;

#define RESERVE_WAIT_MS 1000 /* a new link's check takes one round trip */

static void reserve_resume(void *arg, bool ok)
{
    ReserveWait *w = arg;
    Sub *s = w->s;
    if (s->d->stopped)
        sub_free(s);
    else if (!ok)
        reserve_unavailable(s, rds_ready(s->d->env->rds) ? "the queue state is being rebuilt"
                                                         : "Redis unavailable");
    else
        reserve_send(s, w->cands, w->n);
    free(w);
}

void sub_reserve(Sub *s, const MatchCand *cands, size_t n)
{
    Dispatch *d = s->d;
    if (d->stopped) {
        sub_free(s);
        return;
    }
    if (rebuild_ok(d->rebuild)) {
        reserve_send(s, cands, n);
        return;
    }
    ReserveWait *w = xmalloc(sizeof(*w) + n * sizeof(MatchCand));
    w->s = s;
    w->n = n;
    memcpy(w->cands, cands, n * sizeof(MatchCand));
    rebuild_wait(d->rebuild, RESERVE_WAIT_MS, reserve_resume, w);
}
