/*
 * dispatch: each submission is a small state machine (Sub) driven by callbacks:
 * resolve (PostgreSQL, read-only: an existing request, the resident, fresh ids) -> match
 * (memory) -> reserve + enqueue (one Redis script) -> record (PostgreSQL: request, job and
 * event in one statement) -> reply. Requests that exist already (re-dispatch, waitlist, the
 * sweep's leftovers) are moved on by finish instead of record. Every step is idempotent,
 * keyed by the request id and the offer's attempt number, so the sweep (or a second daemon)
 * may redo any step after a crash and the request is still queued exactly once; a
 * reservation whose record never committed is given back by the orphan reconciler (see
 * sql/013_record_once.sql). Nothing here blocks: every wait is a callback.
 */
#include "core/dispatch.h"

#include <ctype.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/auth.h"
#include "base/cal.h"
#include "common/log.h"
#include "core/match.h"
#include "store/pgbatch.h"
#include "store/scripts.h"
#include "net/session.h"
#include "core/speech.h"

#define S(x)           CARELINE__V1__##x
#define MAX_KEY        128
#define MAX_NOTE       500
#define MAX_CANDS      64
#define MAX_EXCLUDED   20
#define SWEEP_BATCH    500
#define WAITLIST_EVERY 15 /* sweeps between periodic waitlist passes */
#define COUNTY_NEAR_KM 10 /* a location inside the county has a village centroid this close */

struct Dispatch {
    const Env *env; /* borrowed from the server */
    DispatchHooks hooks;
    Directory *dir;
    TravelModel model;
    RdsScript *reserve, *release;
    struct event *sweep;  /* periodic, and activated by dispatch_kick */
    bool sweeping;        /* a sweep batch is in flight */
    bool waitlist_due;    /* something changed: retry the waitlist on the next sweep */
    int sweeps;           /* count, for the slow periodic waitlist pass */
    bool sweep_waitlist;  /* the sweep in flight includes a waitlist page */
    bool waitlist_paging; /* the last page was full: continue on the next sweep */
    char cur_prio[8], cur_at[64], cur_id[24]; /* waitlist cursor (see sweep_sql) */
    PgBatch *batch[3];                        /* group commit, by BatchKind */
    bool orphan_scan;                         /* an orphan reconciliation is in flight */
    int sweep_left;                           /* subs of the current batch not finished */
    int win[2][2];                            /* [lunch|dinner][start|end] local minutes */
    int fault_count;
    bool stopped; /* dispatch_stop: backends are going away */
};

/* RESOLVE looks a submission up; FINISH moves an existing request on; RECORD writes a
 * resolved one with its outcome */
typedef enum { BATCH_RESOLVE, BATCH_FINISH, BATCH_RECORD } BatchKind;

typedef struct Sub {
    Dispatch *d;
    Conn *c; /* NULL when the sweep drives it */
    uint64_t seq;
    /* the request */
    char key[MAX_KEY + 1];
    char phone[24]; /* normalised digits, "" when by resident id */
    int64_t resident_param;
    int kind, slot, subtype, urgency;
    char date_raw[16]; /* as sent ("" = today) */
    CalDay day;
    char note[MAX_NOTE + 1];
    bool has_loc;
    double loc_lat, loc_lon;
    /* from PostgreSQL */
    bool fresh; /* resolved but not recorded yet: request_id and job_id are reserved ids */
    int64_t request_id, job_id, resident_id;
    char village[16];
    double lat, lon;
    unsigned prio; /* bit per PriorityFlag */
    bool duplicate;
    bool was_waitlisted;
    bool redispatch;                /* started by dispatch_redispatch, not counted in a sweep */
    int attempt;                    /* this offer's number: 1 + the stations offered before */
    int64_t excluded[MAX_EXCLUDED]; /* stations that already had this request */
    int nexcluded;
    int prior_reason;       /* why the last station did not take it */
    char hash[65];          /* content hash (hex) for the idempotency check */
    char resident_name[64]; /* for the station's screen (masked before it leaves) */
    char address[256];
    int64_t expires_ms; /* the offer's accept-by time */
    /* outcome */
    int state, reason;
    int64_t station_id;
    char station_name[160];
    double minutes;
    int64_t ws_ms, we_ms;
    bool reserved; /* this run's script call reserved (or found) capacity */
    char msg[200];
} Sub;

/* ---- small helpers ---------------------------------------------------------------- */

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

static const char *db_name(const ProtobufCEnumDescriptor *desc, int value, char buf[64])
{
    dispatch_enum_to_db(desc, value, buf, 64);
    return buf;
}

/* Test hook: dies like kill -9 the Nth time a gateway's submission reaches `point`
 * (sweep-driven work is not counted, so a test can aim at its own burst). */
static void fault(const Sub *s, const char *point)
{
    Dispatch *d = s->d;
    const Config *cfg = d->env->cfg;
    if (!cfg->fault_point[0] || !s->c || strcmp(cfg->fault_point, point) != 0)
        return;
    if (++d->fault_count < cfg->fault_after)
        return;
    log_warn("fault injection: killing the process at %s (test hook)", point);
    raise(SIGKILL);
}

static int sub_minute_now(CalDay *today)
{
    int m;
    *today = cal_day_of(util_wall_ms(), &m);
    return m;
}

static void sub_free(Sub *s)
{
    Dispatch *d = s->d;
    if (s->c) {
        conn_inflight_end(s->c);
        conn_unref(s->c);
    } else if (!s->redispatch && d->sweeping && --d->sweep_left == 0) {
        d->sweeping = false;
    }
    free(s);
}

/* ---- replies ---------------------------------------------------------------------- */

static void reply_error(Sub *s, int code, const char *field, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static void reply_error(Sub *s, int code, const char *field, const char *fmt, ...)
{
    if (!s->c || !conn_alive(s->c))
        return; /* sweep-driven: nobody to answer */
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* the field lets a gateway say which input was wrong */
    conn_send_field_error(s->c, s->seq, code, field, "%s", msg);
}

static void reply_result(Sub *s)
{
    Dispatch *d = s->d;
    if (!s->c || !conn_alive(s->c))
        return;
    Careline__V1__SubmitResult r = CARELINE__V1__SUBMIT_RESULT__INIT;
    r.request_id = s->request_id;
    r.state = (Careline__V1__RequestState)s->state;
    r.reason_code = (Careline__V1__ReasonCode)s->reason;
    r.reason = s->msg;
    r.station_id = s->station_id;
    r.station_name = s->station_name;
    r.travel_minutes = (uint32_t)(s->minutes + 0.5);
    r.window_start_ms = s->ws_ms;
    r.window_end_ms = s->we_ms;
    r.job_id = s->state == S(REQUEST_STATE__QUEUED) ? s->job_id : 0;
    r.duplicate = s->duplicate;
    Careline__V1__PriorityFlag flags[3];
    for (int f = 1; f <= 3; f++)
        if (s->prio & (1u << f))
            flags[r.n_priority++] = (Careline__V1__PriorityFlag)f;
    r.priority = flags;
    char speech[512];
    SpeechArgs sa = {(Careline__V1__RequestState)s->state,
                     (Careline__V1__ReasonCode)s->reason,
                     (Careline__V1__ServiceKind)s->kind,
                     (Careline__V1__MealSlot)s->slot,
                     (Careline__V1__CareSubtype)s->subtype,
                     s->station_name,
                     s->ws_ms,
                     s->we_ms,
                     util_wall_ms(),
                     s->prio != 0,
                     d->env->cfg->booking_days};
    speech_request(&sa, speech, sizeof(speech));
    r.speech_zh = speech;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = s->seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_SUBMIT_RESULT;
    env.submit_result = &r;
    conn_send(s->c, &env);
}

/* ---- finish: record the outcome ------------------------------------------------------ */

static void station_name_of(Dispatch *d, int64_t id, char *out, size_t n)
{
    const DirSnap *snap = dir_snap(d->dir);
    const Station *st = snap ? dir_station(snap, id) : NULL;
    snprintf(out, n, "%s", st ? st->name : "");
}

/* The job is committed: its station's console gets it now, from the wake-up itself. */
static void offer_out(const Sub *s)
{
    Dispatch *d = s->d;
    char day[11], masked[LOG_MASK_BUF];
    cal_format(s->day, day);
    const DirSnap *snap = dir_snap(d->dir);
    const Village *v = snap ? dir_village(snap, s->village) : NULL;
    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = s->job_id;
    o.request_id = s->request_id;
    o.state = S(JOB_STATE__OFFERED);
    o.attempt = (uint32_t)s->attempt;
    o.kind = (Careline__V1__ServiceKind)s->kind;
    o.meal_slot = (Careline__V1__MealSlot)s->slot;
    o.service_date = day;
    o.care_subtype = (Careline__V1__CareSubtype)s->subtype;
    o.resident_name_masked = (char *)log_mask_name(s->resident_name, masked);
    o.address = (char *)s->address;
    o.village_name = v ? v->name : (char *)"";
    o.lat = s->lat;
    o.lon = s->lon;
    Careline__V1__PriorityFlag flags[3];
    for (int f = 1; f <= 3; f++)
        if (s->prio & (1u << f))
            flags[o.n_priority++] = (Careline__V1__PriorityFlag)f;
    o.priority = flags;
    o.note = (char *)s->note;
    o.window_start_ms = s->ws_ms;
    o.window_end_ms = s->we_ms;
    o.offer_expires_at_ms = s->expires_ms;
    o.travel_minutes = (uint32_t)(s->minutes + 0.5);
    o.resident_phone = (char *)"";
    if (d->hooks.queued)
        d->hooks.queued(d->hooks.arg, s->station_id, &o);
}

static void release_marker(Dispatch *d, int64_t request_id, int attempt, const char *why,
                           bool drop_entry);
static void settle_pending(Dispatch *d, int64_t request_id, int attempt);

static void finish_failed(Sub *s, const char *err)
{
    if (s->fresh) {
        /* nothing is acknowledged; a reservation left behind is the reconciler's (it may not
         * be ours to give back: the record may have committed just as its link failed) */
        log_warn("request %lld: recording it failed: %s", (long long)s->request_id, err);
        reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                    "the request could not be recorded (database unavailable); please retry "
                    "with the same idempotency key");
        sub_free(s);
        return;
    }
    /* the request stays 'received' in PostgreSQL; the sweep will finish it */
    log_warn("request %lld: recording the outcome failed: %s", (long long)s->request_id, err);
    reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                "the request is recorded but its outcome could not be saved yet; it will "
                "be completed automatically (ask its status shortly)");
    sub_free(s);
}

/* A fresh submission's key was recorded meanwhile (a retry racing it, another daemon):
 * its own reservation is not needed; report the request that holds the key. */
static void record_lost(Sub *s, PGresult *res, int row, int o)
{
    if (s->reserved)
        release_marker(s->d, s->request_id, s->attempt, "duplicate", true);
    s->request_id = strtoll(PQgetvalue(res, row, o + 4), NULL, 10);
    s->state =
        dispatch_enum_from_db(&careline__v1__request_state__descriptor, PQgetvalue(res, row, o));
    s->station_id = strtoll(PQgetvalue(res, row, o + 1), NULL, 10);
    s->job_id = strtoll(PQgetvalue(res, row, o + 2), NULL, 10);
    station_name_of(s->d, s->station_id, s->station_name, sizeof(s->station_name));
    s->duplicate = true;
}

/* One row of careline_submit_finish_set or _record_set, columns from `o` on. */
static void finish_row(Sub *s, PGresult *res, int row, int o)
{
    bool changed = PQgetvalue(res, row, o + 3)[0] == 't';
    if (!changed && s->fresh) {
        record_lost(s, res, row, o);
    } else if (!changed) {
        /* someone else moved it (another daemon's sweep, or a cancel): report what is true */
        int now_state = dispatch_enum_from_db(&careline__v1__request_state__descriptor,
                                              PQgetvalue(res, row, o));
        if (s->reserved && now_state != S(REQUEST_STATE__QUEUED) &&
            s->state == S(REQUEST_STATE__QUEUED))
            dispatch_release(s->d, s->request_id, s->attempt, "cancelled");
        if (now_state != s->state) {
            s->state = now_state;
            s->station_id = strtoll(PQgetvalue(res, row, o + 1), NULL, 10);
            station_name_of(s->d, s->station_id, s->station_name, sizeof(s->station_name));
        }
        s->duplicate = true;
    } else if (s->state == S(REQUEST_STATE__QUEUED)) {
        if (s->fresh)
            settle_pending(s->d, s->request_id, s->attempt);
        fault(s, "after_finish");
        offer_out(s);
        log_debug("request %lld queued at station %lld (job %lld, %.1f min)",
                  (long long)s->request_id, (long long)s->station_id, (long long)s->job_id,
                  s->minutes);
    }
    reply_result(s);
    sub_free(s);
}

/* ---- group commit (pgbatch) ---------------------------------------------------------- */

static void resolve_row(Sub *s, PGresult *res, int row, int o);
static void resolve_failed(Sub *s, const char *err);

static json_t *resolve_json(const Sub *s)
{
    char kb[64], sb[64], cb[64], date[11];
    bool meal = s->kind == S(SERVICE_KIND__MEAL_DELIVERY);
    cal_format(s->day, date);
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(s->key));
    json_object_set_new(o, "hash", json_string(s->hash));
    json_object_set_new(o, "phone", s->phone[0] ? json_string(s->phone) : json_null());
    json_object_set_new(o, "resident",
                        s->resident_param ? json_integer(s->resident_param) : json_null());
    json_object_set_new(o, "kind",
                        json_string(db_name(&careline__v1__service_kind__descriptor, s->kind, kb)));
    json_object_set_new(
        o, "slot",
        meal ? json_string(db_name(&careline__v1__meal_slot__descriptor, s->slot, sb))
             : json_null());
    json_object_set_new(o, "date", json_string(date));
    json_object_set_new(
        o, "subtype",
        meal ? json_null()
             : json_string(db_name(&careline__v1__care_subtype__descriptor, s->subtype, cb)));
    json_object_set_new(o, "note", json_string(s->note));
    json_object_set_new(o, "urgency", json_string(s->urgency ? "urgent" : "normal"));
    json_object_set_new(o, "actor", json_string("gateway"));
    return o;
}

static json_t *finish_json(const Sub *s)
{
    char b1[64], b2[64];
    bool queued = s->state == S(REQUEST_STATE__QUEUED);
    json_t *o = json_object();
    json_object_set_new(o, "request", json_integer(s->request_id));
    json_object_set_new(o, "job", queued ? json_integer(s->job_id) : json_null());
    json_object_set_new(o, "station", queued ? json_integer(s->station_id) : json_null());
    json_object_set_new(o, "attempt", json_integer(s->attempt));
    json_object_set_new(
        o, "state", json_string(db_name(&careline__v1__request_state__descriptor, s->state, b1)));
    json_object_set_new(
        o, "reason_code",
        s->reason ? json_string(db_name(&careline__v1__reason_code__descriptor, s->reason, b2))
                  : json_null());
    json_object_set_new(o, "reason", s->msg[0] ? json_string(s->msg) : json_null());
    json_object_set_new(o, "travel", queued ? json_integer((int)(s->minutes + 0.5)) : json_null());
    json_object_set_new(o, "ws", json_integer(s->ws_ms));
    json_object_set_new(o, "we", json_integer(s->we_ms));
    json_object_set_new(o, "expires", json_integer(s->expires_ms));
    json_object_set_new(o, "actor", json_string(s->c ? "gateway" : "daemon"));
    return o;
}

/* A resolved submission with its outcome, for careline_submit_record_set. */
static json_t *record_json(const Sub *s)
{
    static const char *const names[] = {"", "lives_alone", "disabled", "aged_80_plus"};
    char prio[48] = "";
    for (int f = 1; f <= 3; f++)
        if (s->prio & (1u << f))
            snprintf(prio + strlen(prio), sizeof(prio) - strlen(prio), "%s%s", prio[0] ? "," : "",
                     names[f]);
    json_t *o = resolve_json(s), *f = finish_json(s);
    json_object_update(o, f);
    json_decref(f);
    json_object_set_new(o, "resident_id",
                        s->resident_id ? json_integer(s->resident_id) : json_null());
    json_object_set_new(o, "village", s->village[0] ? json_string(s->village) : json_null());
    json_object_set_new(o, "priority", json_string(prio));
    if (s->state == S(REQUEST_STATE__NOT_REGISTERED))
        json_object_set_new(o, "reason", json_string("caller is not a registered resident"));
    return o;
}

static void resolve_done(PGresult *res, int row, const char *err, void *arg)
{
    Sub *s = arg;
    if (s->d->stopped)
        sub_free(s);
    else if (!res)
        resolve_failed(s, err);
    else
        resolve_row(s, res, row, 1);
}

static void finish_done(PGresult *res, int row, const char *err, void *arg)
{
    Sub *s = arg;
    if (s->d->stopped)
        sub_free(s);
    else if (!res)
        finish_failed(s, err);
    else
        finish_row(s, res, row, 1);
}

static void batch_add(Dispatch *d, BatchKind kind, Sub *s)
{
    if (d->stopped) {
        sub_free(s);
        return;
    }
    if (kind == BATCH_RESOLVE)
        pgbatch_add(d->batch[kind], resolve_json(s), resolve_done, s);
    else if (s->fresh)
        pgbatch_add(d->batch[BATCH_RECORD], record_json(s), finish_done, s);
    else
        pgbatch_add(d->batch[kind], finish_json(s), finish_done, s);
}

static void sub_finish(Sub *s)
{
    Dispatch *d = s->d;
    if (d->stopped) {
        sub_free(s);
        return;
    }
    s->expires_ms = util_wall_ms() + d->env->cfg->offer_timeout_s * 1000LL;
    if (s->was_waitlisted && s->state == S(REQUEST_STATE__WAITLISTED)) {
        sub_free(s); /* still no room: nothing new to record */
        return;
    }
    batch_add(d, BATCH_FINISH, s);
}

/* ---- reserve + enqueue ---------------------------------------------------------------- */

static void release_done(redisReply *r, const char *err, void *arg)
{
    Dispatch *d = arg;
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_warn("releasing a reservation failed: %s", r ? r->str : err);
    else
        dispatch_kick(d); /* capacity freed: the waitlist may move */
}

/* Runs the release script for (request, attempt); false when Redis cannot take it now. */
static bool release_marker_cb(Dispatch *d, int64_t request_id, int attempt, const char *why,
                              bool drop_entry, RdsReplyCb cb, void *arg)
{
    char key[96], pend[64];
    keys_reservation(&d->env->keys, request_id, attempt, key, sizeof(key));
    keys_pending(&d->env->keys, pend, sizeof(pend));
    const char *args[] = {key, pend, why, drop_entry ? "1" : "0"};
    size_t lens[] = {strlen(key), strlen(pend), strlen(why), 1};
    return rds_eval(d->env->rds, d->release, cb, arg, 2, 2, args, lens);
}

static void release_marker(Dispatch *d, int64_t request_id, int attempt, const char *why,
                           bool drop_entry)
{
    if (d->stopped)
        return;
    if (!release_marker_cb(d, request_id, attempt, why, drop_entry, release_done, d))
        log_warn("request %lld: cannot release its reservation now (Redis unavailable)",
                 (long long)request_id);
}

void dispatch_release(Dispatch *d, int64_t request_id, int attempt, const char *why)
{
    release_marker(d, request_id, attempt, why, false);
}

static void settle_done(redisReply *r, const char *err, void *arg)
{
    (void)arg;
    if (!r || r->type == REDIS_REPLY_ERROR) /* harmless: the reconciler will find it recorded */
        log_debug("clearing a pending reservation failed: %s", r ? r->str : err);
}

/* The record committed: the reservation is no longer pending. */
static void settle_pending(Dispatch *d, int64_t request_id, int attempt)
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

static void reserve_done(redisReply *r, const char *err, void *arg)
{
    Sub *s = arg;
    Dispatch *d = s->d;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        log_warn("request %lld: reserving capacity failed: %s", (long long)s->request_id,
                 r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : err);
        reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                    "the request is recorded but could not be queued yet (Redis unavailable); "
                    "it will be queued automatically");
        sub_free(s);
        return;
    }
    fault(s, "after_enqueue");
    long long status = r->element[0]->integer;
    if (status == 2) {
        s->state = S(REQUEST_STATE__WAITLISTED);
        s->reason = S(REASON_CODE__NO_CAPACITY);
        snprintf(s->msg, sizeof(s->msg), "every eligible station is full for this slot");
        sub_finish(s);
        return;
    }
    s->reserved = true;
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

static void sub_reserve(Sub *s, const MatchCand *cands, size_t n)
{
    Dispatch *d = s->d;
    if (d->stopped) {
        sub_free(s);
        return;
    }
    char day[11];
    cal_format(s->day, day);
    const char *slot = s->kind == S(SERVICE_KIND__HOME_CARE)
                           ? "care"
                           : (s->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch");
    /* keys: marker, (capacity, stream, limit override) per candidate, pending; args after */
    size_t nkeys = 2 + 3 * n, nargs = 9 + 2 * n;
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

/* ---- match ------------------------------------------------------------------------------ */

static void reject(Sub *s, int reason, const char *msg)
{
    s->state = S(REQUEST_STATE__REJECTED);
    s->reason = reason;
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
    sub_finish(s);
}

/* The bureau follows up on a request no station took. */
static void dead_letter(Sub *s)
{
    s->state = S(REQUEST_STATE__DEAD_LETTER);
    s->reason = s->prior_reason ? s->prior_reason : S(REASON_CODE__REASON_OTHER);
    snprintf(s->msg, sizeof(s->msg), "no station took it after %d offer%s", s->attempt - 1,
             s->attempt == 2 ? "" : "s");
    log_warn("request %lld: dead-lettered (%s)", (long long)s->request_id, s->msg);
    sub_finish(s);
}

/* Removes stations that already had this request; keeps at most max. */
static size_t drop_excluded(const Sub *s, MatchCand *c, size_t n, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        bool ex = false;
        for (int j = 0; j < s->nexcluded && !ex; j++)
            ex = s->excluded[j] == c[i].station_id;
        if (!ex)
            c[k++] = c[i];
    }
    return k;
}

typedef struct {
    const DirSnap *snap;
    bool meal;
} AnyArg;

static bool offers_cb(const StStation *st, void *arg)
{
    const AnyArg *a = arg;
    return (st->flags & ST_ACTIVE) && (st->flags & (a->meal ? ST_MEAL : ST_HOME_CARE));
}

static void sub_match(Sub *s)
{
    Dispatch *d = s->d;
    const Config *cfg = d->env->cfg;
    if (d->stopped) {
        sub_free(s);
        return;
    }
    const DirSnap *snap = dir_snap(d->dir);
    if (!snap) {
        reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                    "the request is recorded; the station directory is still loading, so it "
                    "will be matched automatically in a moment");
        sub_free(s);
        return;
    }
    CalDay today;
    int now_min = sub_minute_now(&today);
    bool meal = s->kind == S(SERVICE_KIND__MEAL_DELIVERY);
    int start, end;
    if (meal) {
        int w = s->slot == S(MEAL_SLOT__DINNER);
        start = d->win[w][0];
        end = d->win[w][1];
        if (s->day == today && now_min >= end)
            return reject(s, S(REASON_CODE__SLOT_PASSED), "the slot is already over today");
    } else if (s->day == today) {
        start = (now_min + cfg->care_lead_minutes + 4) / 5 * 5;
        end = start + cfg->care_window_minutes;
    } else {
        start = 9 * 60;
        end = start + cfg->care_window_minutes;
    }
    if (s->day > today + cfg->booking_days)
        return reject(s, S(REASON_CODE__DATE_TOO_FAR), "the date is beyond the booking horizon");
    s->ws_ms = cal_unix_ms(s->day, start);
    s->we_ms = cal_unix_ms(s->day, end);
    const Village *v = dir_village(snap, s->village);
    MatchQuery q = {
        .lat = s->has_loc ? s->loc_lat : s->lat,
        .lon = s->has_loc ? s->loc_lon : s->lon,
        .area = v ? v->area : GEO_RURAL,
        .village = v ? (int)(v - snap->villages) : -1,
        .service = meal ? (s->slot == S(MEAL_SLOT__DINNER) ? MATCH_MEAL_DINNER : MATCH_MEAL_LUNCH)
                        : MATCH_CARE,
        .care_subtype = s->subtype,
        .weekday = cal_weekday(s->day),
        .start_min = start,
        .end_min = end,
        .today = s->day == today,
        .care_visits_per_caregiver = cfg->care_visits_per_caregiver,
    };
    if (s->has_loc) {
        s->lat = s->loc_lat;
        s->lon = s->loc_lon;
    }
    if (s->attempt > cfg->max_attempts)
        return dead_letter(s);
    MatchCand cands[MAX_CANDS];
    size_t want = (size_t)cfg->match_candidates + (size_t)s->nexcluded;
    size_t n = match_find(snap, &d->model, &q, cands, want < MAX_CANDS ? want : MAX_CANDS);
    n = drop_excluded(s, cands, n, (size_t)cfg->match_candidates);
    if (n == 0 && s->nexcluded > 0)
        return dead_letter(s); /* it was offered before and no other station can take it */
    if (n == 0) {
        /* why: nobody offers it nearby at all, or the ones nearby are closed then */
        AnyArg a = {snap, meal};
        StHit hit;
        double km = geo_km_for_minutes(&d->model, q.area, d->model.circle_min);
        if (stindex_nearest(snap->index, q.lat, q.lon, km, offers_cb, &a, &hit, 1) > 0)
            return reject(s, S(REASON_CODE__STATION_CLOSED),
                          "the stations in range are closed for that time");
        return reject(s, S(REASON_CODE__NO_STATION_IN_RANGE),
                      "no station offering the service reaches the resident");
    }
    fault(s, "before_enqueue");
    sub_reserve(s, cands, n);
}

/* ---- resolve: what PostgreSQL knows of a submission ------------------------------------ */

static unsigned parse_priority(const char *csv)
{
    unsigned bits = 0;
    if (strstr(csv, "lives_alone"))
        bits |= 1u << S(PRIORITY_FLAG__LIVES_ALONE);
    if (strstr(csv, "disabled"))
        bits |= 1u << S(PRIORITY_FLAG__DISABLED);
    if (strstr(csv, "aged_80_plus"))
        bits |= 1u << S(PRIORITY_FLAG__AGED_80_PLUS);
    return bits;
}

static int64_t col_ll(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void resolve_failed(Sub *s, const char *err)
{
    log_warn("looking a request up failed: %s", err);
    reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                "the request could not be recorded (database unavailable); nothing was "
                "saved, please retry with the same idempotency key");
    sub_free(s);
}

/* One row of careline_submit_resolve_set, columns from `o` on. */
static void resolve_row(Sub *s, PGresult *res, int row, int o)
{
    const char *outcome = PQgetvalue(res, row, o);
    s->fresh = strcmp(outcome, "new") == 0;
    s->resident_id = col_ll(res, row, o + 3);
    s->request_id = col_ll(res, row, o + 1);
    if (strcmp(outcome, "conflict") == 0) {
        reply_error(s, S(ERROR_CODE__CONFLICT), "idempotency_key",
                    "idempotency key '%s' was already used for a different request (id %lld)",
                    s->key, (long long)s->request_id);
        sub_free(s);
        return;
    }
    if (strcmp(outcome, "unknown_resident") == 0) {
        reply_error(s, S(ERROR_CODE__NOT_FOUND), "resident_id", "no resident with id %lld",
                    (long long)s->resident_param);
        sub_free(s);
        return;
    }
    s->duplicate = strcmp(outcome, "duplicate") == 0;
    s->state = dispatch_enum_from_db(&careline__v1__request_state__descriptor,
                                     PQgetvalue(res, row, o + 2));
    snprintf(s->village, sizeof(s->village), "%s", PQgetvalue(res, row, o + 4));
    s->lat = atof(PQgetvalue(res, row, o + 5));
    s->lon = atof(PQgetvalue(res, row, o + 6));
    s->prio = parse_priority(PQgetvalue(res, row, o + 7));
    s->station_id = col_ll(res, row, o + 8);
    s->job_id = col_ll(res, row, o + 9);
    s->minutes = (double)col_ll(res, row, o + 11);
    s->ws_ms = col_ll(res, row, o + 12);
    s->we_ms = col_ll(res, row, o + 13);
    snprintf(s->resident_name, sizeof(s->resident_name), "%s", PQgetvalue(res, row, o + 15));
    snprintf(s->address, sizeof(s->address), "%s", PQgetvalue(res, row, o + 16));
    s->reason = PQgetisnull(res, row, o + 14)
                    ? 0
                    : dispatch_enum_from_db(&careline__v1__reason_code__descriptor,
                                            PQgetvalue(res, row, o + 14));
    if (s->state == S(REQUEST_STATE__RECEIVED)) {
        fault(s, "after_begin");
        sub_match(s);
        return;
    }
    if (s->state == S(REQUEST_STATE__NOT_REGISTERED) && s->fresh) {
        char masked[LOG_MASK_BUF];
        log_info("request %lld: caller %s is not registered", (long long)s->request_id,
                 log_mask_phone(s->phone, masked));
        sub_finish(s); /* recorded (and answered) like any other outcome */
        return;
    }
    station_name_of(s->d, s->station_id, s->station_name, sizeof(s->station_name));
    reply_result(s);
    sub_free(s);
}

/* ---- intake: validation ------------------------------------------------------------------ */

static bool normalise_phone(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (*p == '+' && p == in)
            continue;
        if (!isdigit((unsigned char)*p) || o + 1 >= n)
            return false;
        out[o++] = *p;
    }
    out[o] = '\0';
    /* the country code, written +86 or 0086, is not part of a stored number */
    const char *digits = out;
    if (in[0] == '+' && strncmp(out, "86", 2) == 0)
        digits = out + 2;
    else if (strncmp(out, "0086", 4) == 0)
        digits = out + 4;
    memmove(out, digits, strlen(digits) + 1);
    size_t len = strlen(out);
    return len >= 5 && len <= 15;
}

static void content_hash(const Sub *s, char hex[65])
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "v1\n%s\n%lld\n%d\n%d\n%s\n%d\n%d\n%s\n%d:%.6f,%.6f", s->phone,
             (long long)s->resident_param, s->kind, s->slot, s->date_raw, s->subtype, s->urgency,
             s->note, s->has_loc, s->loc_lat, s->loc_lon);
    auth_token_hash_hex(buf, hex);
}

/* Fills s from the message; on a bad field replies INVALID_ARGUMENT and returns false. */
static bool validate(Sub *s, const Careline__V1__SubmitRequest *m)
{
#define BAD(field, ...)                                                                            \
    do {                                                                                           \
        reply_error(s, S(ERROR_CODE__INVALID_ARGUMENT), field, __VA_ARGS__);                       \
        return false;                                                                              \
    } while (0)
    Dispatch *d = s->d;
    size_t klen = strlen(m->idempotency_key);
    if (klen == 0)
        BAD("idempotency_key", "idempotency_key is required (use the call's id)");
    if (klen > MAX_KEY || !util_utf8_valid(m->idempotency_key, klen))
        BAD("idempotency_key", "idempotency_key must be 1..%d bytes of valid UTF-8", MAX_KEY);
    memcpy(s->key, m->idempotency_key, klen + 1);
    if (m->who_case == CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE) {
        if (!normalise_phone(m->caller_phone, s->phone, sizeof(s->phone)))
            BAD("caller_phone", "caller_phone must be 5..15 digits (optionally +86)");
    } else if (m->who_case == CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID) {
        if (m->resident_id <= 0)
            BAD("resident_id", "resident_id must be a positive id");
        s->resident_param = m->resident_id;
    } else {
        BAD("caller_phone", "caller_phone or resident_id is required");
    }
    s->kind = m->kind;
    if (m->kind == S(SERVICE_KIND__MEAL_DELIVERY)) {
        if (m->meal_slot != S(MEAL_SLOT__LUNCH) && m->meal_slot != S(MEAL_SLOT__DINNER))
            BAD("meal_slot", "meal_slot must be LUNCH or DINNER for a meal delivery");
        s->slot = m->meal_slot;
    } else if (m->kind == S(SERVICE_KIND__HOME_CARE)) {
        if (m->care_subtype < S(CARE_SUBTYPE__BATHING) ||
            m->care_subtype > S(CARE_SUBTYPE__CARE_OTHER))
            BAD("care_subtype", "care_subtype must be BATHING, CLEANING, COMPANIONSHIP, "
                                "MEDICAL_ESCORT or CARE_OTHER for home care");
        s->subtype = m->care_subtype;
    } else {
        BAD("kind", "kind must be MEAL_DELIVERY or HOME_CARE (got %d)", (int)m->kind);
    }
    CalDay today;
    sub_minute_now(&today);
    if (!m->service_date[0]) {
        s->day = today;
    } else if (!cal_parse(m->service_date, &s->day)) {
        BAD("service_date", "service_date '%.20s' is not a real date (YYYY-MM-DD)",
            util_utf8_valid(m->service_date, strlen(m->service_date)) ? m->service_date : "?");
    } else if (s->day < today) {
        BAD("service_date", "service_date %s is in the past", m->service_date);
    }
    snprintf(s->date_raw, sizeof(s->date_raw), "%s", m->service_date);
    size_t nlen = strlen(m->note);
    if (nlen > MAX_NOTE)
        BAD("note", "note is %zu bytes; the limit is %d", nlen, MAX_NOTE);
    if (!util_utf8_valid(m->note, nlen))
        BAD("note", "note is not valid UTF-8");
    memcpy(s->note, m->note, nlen + 1);
    if (m->urgency != S(URGENCY__URGENCY_NORMAL) && m->urgency != S(URGENCY__URGENCY_URGENT))
        BAD("urgency", "urgency must be URGENCY_NORMAL or URGENCY_URGENT");
    s->urgency = m->urgency;
    if (m->location) {
        double lat = m->location->lat, lon = m->location->lon;
        const DirSnap *snap = dir_snap(d->dir);
        if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180) ||
            !dir_near_village(snap, lat, lon, COUNTY_NEAR_KM))
            BAD("location", "location %.5f,%.5f is outside the county (no village within %d km)",
                lat, lon, COUNTY_NEAR_KM);
        s->has_loc = true;
        s->loc_lat = lat;
        s->loc_lon = lon;
    }
    return true;
#undef BAD
}

static Sub *sub_new(Dispatch *d, Conn *c, uint64_t seq)
{
    Sub *s = xcalloc(1, sizeof(*s));
    s->d = d;
    s->c = c;
    s->seq = seq;
    s->attempt = 1;
    if (c) {
        conn_inflight_begin(c);
        conn_ref(c);
    }
    return s;
}

static void handle_submit(void *arg, Conn *c, Envelope *env)
{
    Dispatch *d = arg;
    Sub *s = sub_new(d, c, env->seq);
    if (!dispatch_ready(d)) {
        reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                    "the station directory is still loading; retry in a moment");
        goto done;
    }
    if (!validate(s, env->submit))
        goto done;
    content_hash(s, s->hash);
    if (pgbatch_waiting(d->batch[BATCH_RESOLVE]) >= (size_t)d->env->cfg->pg_max_queue) {
        reply_error(s, S(ERROR_CODE__OVERLOADED), NULL,
                    "too many requests are waiting for the database; retry shortly");
        goto done;
    }
    frame_free(env);
    batch_add(d, BATCH_RESOLVE, s);
    return;
done:
    frame_free(env);
    sub_free(s);
}

/* ---- status ------------------------------------------------------------------------------ */

typedef struct {
    Conn *c;
    uint64_t seq;
    Dispatch *d;
} Ask;

static Ask *ask_new(Dispatch *d, Conn *c, uint64_t seq)
{
    Ask *a = xcalloc(1, sizeof(*a));
    a->c = c;
    a->seq = seq;
    a->d = d;
    conn_inflight_begin(c);
    conn_ref(c);
    return a;
}

static void ask_free(Ask *a)
{
    conn_inflight_end(a->c);
    conn_unref(a->c);
    free(a);
}

static const char status_sql[] =
    "WITH target AS (SELECT q.id FROM requests q WHERE "
    "  ($1::bigint IS NOT NULL AND q.id = $1) "
    "  OR ($2::text IS NOT NULL AND q.idempotency_key = $2) "
    "  OR ($3::text IS NOT NULL AND (q.resident_id = (SELECT x.id FROM residents x "
    "      WHERE x.phone = $3) OR (q.resident_id IS NULL "
    "      AND q.caller_phone_hash = sha256(convert_to($3, 'UTF8'))))) "
    "  ORDER BY q.created_at DESC LIMIT 1) "
    "SELECT r.id, r.state, r.kind, coalesce(r.station_id, 0), "
    "  coalesce((extract(epoch FROM r.window_start) * 1000)::bigint, 0), "
    "  coalesce((extract(epoch FROM r.window_end) * 1000)::bigint, 0), "
    "  coalesce(r.reason_code, ''), coalesce(r.meal_slot, ''), coalesce(r.care_subtype, ''), "
    "  cardinality(r.priority), (extract(epoch FROM e.at) * 1000)::bigint, e.state, e.actor, "
    "  coalesce(e.reason_code, ''), coalesce(e.reason, ''), coalesce(e.station_id, 0) "
    "FROM target JOIN requests r ON r.id = target.id "
    "JOIN request_events e ON e.request_id = r.id ORDER BY e.id";

static int enum_col(PGresult *res, int row, int col, const ProtobufCEnumDescriptor *desc)
{
    const char *v = PQgetvalue(res, row, col);
    return v[0] ? dispatch_enum_from_db(desc, v) : 0;
}

static void status_done(PGresult *res, const char *err, void *arg)
{
    Ask *a = arg;
    if (!conn_alive(a->c))
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("status query failed: %s", res ? PQresultErrorMessage(res) : err);
        conn_send_error(a->c, a->seq, S(ERROR_CODE__UNAVAILABLE), false,
                        "cannot read the request's status now; retry shortly");
        goto out;
    }
    int n = PQntuples(res);
    if (n == 0) {
        conn_send_error(a->c, a->seq, S(ERROR_CODE__NOT_FOUND), false, "no such request");
        goto out;
    }
    Careline__V1__RequestStatus st = CARELINE__V1__REQUEST_STATUS__INIT;
    st.request_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    st.state = enum_col(res, 0, 1, &careline__v1__request_state__descriptor);
    st.kind = enum_col(res, 0, 2, &careline__v1__service_kind__descriptor);
    st.station_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    char name[160];
    station_name_of(a->d, st.station_id, name, sizeof(name));
    st.station_name = name;
    st.window_start_ms = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    st.window_end_ms = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    st.reason_code = enum_col(res, 0, 6, &careline__v1__reason_code__descriptor);
    Careline__V1__RequestEvent *evs = xcalloc((size_t)n, sizeof(*evs));
    Careline__V1__RequestEvent **evp = xcalloc((size_t)n, sizeof(*evp));
    for (int i = 0; i < n; i++) {
        Careline__V1__RequestEvent *e = &evs[i];
        careline__v1__request_event__init(e);
        e->at_ms = strtoll(PQgetvalue(res, i, 10), NULL, 10);
        e->state = enum_col(res, i, 11, &careline__v1__request_state__descriptor);
        e->actor = PQgetvalue(res, i, 12);
        e->reason_code = enum_col(res, i, 13, &careline__v1__reason_code__descriptor);
        e->reason = PQgetvalue(res, i, 14);
        e->station_id = strtoll(PQgetvalue(res, i, 15), NULL, 10);
        evp[i] = e;
    }
    st.n_history = (size_t)n;
    st.history = evp;
    char speech[512];
    SpeechArgs sa = {st.state,
                     st.reason_code,
                     st.kind,
                     enum_col(res, 0, 7, &careline__v1__meal_slot__descriptor),
                     enum_col(res, 0, 8, &careline__v1__care_subtype__descriptor),
                     name,
                     st.window_start_ms,
                     st.window_end_ms,
                     util_wall_ms(),
                     atoi(PQgetvalue(res, 0, 9)) > 0,
                     a->d->env->cfg->booking_days};
    speech_request(&sa, speech, sizeof(speech));
    st.speech_zh = speech;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = a->seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_REQUEST_STATUS;
    env.request_status = &st;
    conn_send(a->c, &env);
    free(evs);
    free(evp);
out:
    ask_free(a);
}

/* Reads a request reference (id, key or phone) into params; false after an Error reply. */
static bool request_ref(Conn *c, uint64_t seq, int which, int64_t id, const char *key,
                        const char *phone, char idbuf[24], char phonebuf[24], const char *params[3])
{
    params[0] = params[1] = params[2] = NULL;
    switch (which) {
    case 1:
        if (id <= 0)
            break;
        snprintf(idbuf, 24, "%lld", (long long)id);
        params[0] = idbuf;
        return true;
    case 2:
        if (!key[0] || strlen(key) > MAX_KEY || !util_utf8_valid(key, strlen(key)))
            break;
        params[1] = key;
        return true;
    case 3:
        if (!normalise_phone(phone, phonebuf, 24))
            break;
        params[2] = phonebuf;
        return true;
    default:
        break;
    }
    conn_send_error(c, seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                    "give a positive request_id, a 1..%d byte idempotency_key, or a caller_phone "
                    "of 5..15 digits",
                    MAX_KEY);
    return false;
}

static void handle_status(void *arg, Conn *c, Envelope *env)
{
    Dispatch *d = arg;
    const Careline__V1__StatusQuery *q = env->status_query;
    char idbuf[24], phonebuf[24];
    const char *params[3];
    if (request_ref(c, env->seq, (int)q->ref_case, q->request_id,
                    q->ref_case == 2 ? q->idempotency_key : "",
                    q->ref_case == 3 ? q->caller_phone : "", idbuf, phonebuf, params)) {
        Ask *a = ask_new(d, c, env->seq);
        if (!pg_query(d->env->pg, status_sql, 3, params, status_done, a)) {
            conn_send_error(c, env->seq, S(ERROR_CODE__OVERLOADED), false,
                            "too many requests are waiting for the database; retry shortly");
            ask_free(a);
        }
    }
    frame_free(env);
}

/* ---- cancel ------------------------------------------------------------------------------ */

typedef struct {
    Ask *a;
    int64_t request_id;
    bool cancelled;
    int state;
} CancelOp;

static void cancel_reply(CancelOp *op)
{
    Ask *a = op->a;
    if (conn_alive(a->c)) {
        Careline__V1__CancelResult r = CARELINE__V1__CANCEL_RESULT__INIT;
        r.request_id = op->request_id;
        r.cancelled = op->cancelled;
        r.state = (Careline__V1__RequestState)op->state;
        char speech[256];
        speech_cancel(op->cancelled, r.state, speech, sizeof(speech));
        r.speech_zh = speech;
        Envelope env = CARELINE__V1__ENVELOPE__INIT;
        env.seq = a->seq;
        env.body_case = CARELINE__V1__ENVELOPE__BODY_CANCEL_RESULT;
        env.cancel_result = &r;
        conn_send(a->c, &env);
    }
    ask_free(a);
    free(op);
}

static void cancel_release_done(redisReply *r, const char *err, void *arg)
{
    CancelOp *op = arg;
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_warn("request %lld: cancelled, but releasing its capacity failed: %s",
                 (long long)op->request_id, r ? r->str : err);
    else
        dispatch_kick(op->a->d);
    cancel_reply(op);
}

static void cancel_done(PGresult *res, const char *err, void *arg)
{
    CancelOp *op = arg;
    Ask *a = op->a;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("cancel failed: %s", res ? PQresultErrorMessage(res) : err);
        if (conn_alive(a->c))
            conn_send_error(a->c, a->seq, S(ERROR_CODE__UNAVAILABLE), false,
                            "cannot cancel now (database unavailable); retry shortly");
        ask_free(a);
        free(op);
        return;
    }
    if (PQntuples(res) == 0) {
        if (conn_alive(a->c))
            conn_send_error(a->c, a->seq, S(ERROR_CODE__NOT_FOUND), false,
                            "no such request (or no open request for this caller)");
        ask_free(a);
        free(op);
        return;
    }
    op->request_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    op->state =
        dispatch_enum_from_db(&careline__v1__request_state__descriptor, PQgetvalue(res, 0, 1));
    op->cancelled = PQgetvalue(res, 0, 2)[0] == 't';
    int attempt = atoi(PQgetvalue(res, 0, 5));
    int64_t station = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    if (op->cancelled && station > 0 && !a->d->stopped)
        if (a->d->hooks.changed)
            a->d->hooks.changed(a->d->hooks.arg, station);
    if (!op->cancelled || attempt < 1 || a->d->stopped) {
        cancel_reply(op);
        return;
    }
    if (!release_marker_cb(a->d, op->request_id, attempt, "cancelled", false, cancel_release_done,
                           op))
        cancel_release_done(NULL, "Redis unavailable", op);
}

static void handle_cancel(void *arg, Conn *c, Envelope *env)
{
    Dispatch *d = arg;
    const Careline__V1__CancelRequest *q = env->cancel;
    char idbuf[24], phonebuf[24];
    const char *params[5];
    int which =
        q->ref_case == CARELINE__V1__CANCEL_REQUEST__REF_CALLER_PHONE ? 3 : (int)q->ref_case;
    if (strlen(q->reason) > MAX_NOTE || !util_utf8_valid(q->reason, strlen(q->reason))) {
        conn_send_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), false,
                        "reason must be at most %d bytes of valid UTF-8", MAX_NOTE);
    } else if (request_ref(c, env->seq, which, q->request_id, which == 2 ? q->idempotency_key : "",
                           which == 3 ? q->caller_phone : "", idbuf, phonebuf, params)) {
        params[3] = q->reason[0] ? q->reason : "cancelled by the caller";
        params[4] = "gateway";
        CancelOp *op = xcalloc(1, sizeof(*op));
        op->a = ask_new(d, c, env->seq);
        if (!pg_query(d->env->pg, "SELECT * FROM careline_cancel($1, $2, $3, $4, $5)", 5, params,
                      cancel_done, op)) {
            conn_send_error(c, env->seq, S(ERROR_CODE__OVERLOADED), false,
                            "too many requests are waiting for the database; retry shortly");
            ask_free(op->a);
            free(op);
        }
    }
    frame_free(env);
}

/* ---- the sweep: resume half-done requests, retry the waitlist ---------------------------- */

/* Two pages: requests a crash left 'received', and the next page of the waitlist (priority
 * residents first, then oldest) after the cursor, so a long waitlist is visited in full
 * over successive sweeps instead of its first page forever. */
#define SWEEP_COLS                                                                                 \
    "r.id, r.kind, coalesce(r.meal_slot, ''), r.service_date::text, "                              \
    "coalesce(r.care_subtype, ''), array_to_string(r.priority, ','), x.village_code, x.lat, "      \
    "x.lon, r.state, r.idempotency_key, (cardinality(r.priority) = 0)::text, "                     \
    "r.created_at::text, r.attempts, coalesce(r.reason_code, ''), (SELECT "                        \
    "coalesce(string_agg(j.station_id::text, ','), '') FROM jobs j WHERE j.request_id = r.id), "   \
    "r.note, x.name, x.address "
static const char sweep_sql[] =
    "SELECT q.*, nextval('jobs_id_seq') FROM ("
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

static void sweep_cursor_reset(Dispatch *d)
{
    snprintf(d->cur_prio, sizeof(d->cur_prio), "f");
    snprintf(d->cur_at, sizeof(d->cur_at), "-infinity");
    snprintf(d->cur_id, sizeof(d->cur_id), "0");
}

/* Fills a sweep-driven Sub from one row of SWEEP_COLS (+ a fresh job id last). */
static void sub_from_row(Sub *s, PGresult *res, int i)
{
    s->request_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    s->kind = enum_col(res, i, 1, &careline__v1__service_kind__descriptor);
    s->slot = enum_col(res, i, 2, &careline__v1__meal_slot__descriptor);
    if (!cal_parse(PQgetvalue(res, i, 3), &s->day))
        s->day = cal_day_of(util_wall_ms(), NULL);
    s->subtype = enum_col(res, i, 4, &careline__v1__care_subtype__descriptor);
    s->prio = parse_priority(PQgetvalue(res, i, 5));
    snprintf(s->village, sizeof(s->village), "%s", PQgetvalue(res, i, 6));
    s->lat = atof(PQgetvalue(res, i, 7));
    s->lon = atof(PQgetvalue(res, i, 8));
    s->was_waitlisted = strcmp(PQgetvalue(res, i, 9), "waitlisted") == 0;
    snprintf(s->key, sizeof(s->key), "%s", PQgetvalue(res, i, 10));
    s->attempt = atoi(PQgetvalue(res, i, 13)) + 1;
    s->prior_reason = enum_col(res, i, 14, &careline__v1__reason_code__descriptor);
    const char *ex = PQgetvalue(res, i, 15);
    while (*ex && s->nexcluded < MAX_EXCLUDED) {
        s->excluded[s->nexcluded++] = strtoll(ex, (char **)&ex, 10);
        if (*ex == ',')
            ex++;
    }
    snprintf(s->note, sizeof(s->note), "%s", PQgetvalue(res, i, 16));
    snprintf(s->resident_name, sizeof(s->resident_name), "%s", PQgetvalue(res, i, 17));
    snprintf(s->address, sizeof(s->address), "%s", PQgetvalue(res, i, 18));
    s->job_id = strtoll(PQgetvalue(res, i, 19), NULL, 10);
    s->state = S(REQUEST_STATE__RECEIVED);
}

static const char redispatch_sql[] =
    "SELECT " SWEEP_COLS ", nextval('jobs_id_seq') FROM requests r "
    "JOIN residents x ON x.id = r.resident_id WHERE r.id = $1 AND r.state = 'received'";

static void redispatch_done(PGresult *res, const char *err, void *arg)
{
    Dispatch *d = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* the request stays 'received': the sweep will pick it up */
        log_warn("re-dispatch query failed: %s", res ? PQresultErrorMessage(res) : err);
        return;
    }
    for (int i = 0; i < PQntuples(res) && !d->stopped; i++) {
        Sub *s = sub_new(d, NULL, 0);
        s->redispatch = true;
        sub_from_row(s, res, i);
        sub_match(s);
    }
}

void dispatch_redispatch(Dispatch *d, int64_t request_id)
{
    if (d->stopped || !dir_snap(d->dir))
        return; /* the sweep resumes it */
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
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_debug("sweep query failed: %s", res ? PQresultErrorMessage(res) : err);
        d->sweeping = false;
        return;
    }
    int n = PQntuples(res), waitlisted = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(PQgetvalue(res, i, 9), "waitlisted") != 0)
            continue;
        waitlisted++;
        snprintf(d->cur_prio, sizeof(d->cur_prio), "%s", PQgetvalue(res, i, 11));
        snprintf(d->cur_at, sizeof(d->cur_at), "%s", PQgetvalue(res, i, 12));
        snprintf(d->cur_id, sizeof(d->cur_id), "%s", PQgetvalue(res, i, 0));
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
        sub_from_row(s, res, i);
        sub_match(s);
    }
}

/* ---- orphan reconciliation ----------------------------------------------------------
 * A fresh submission's reservation is listed in the county's pending set until its record
 * commits. One still listed after orphan_grace_ms either committed (its daemon died before
 * clearing it) or never will: PostgreSQL says which. */

#define ORPHAN_BATCH "500"

typedef struct {
    Dispatch *d;
    size_t n;
    int64_t *ids;
    int *attempts;
} OrphanScan;

static void orphan_scan_free(OrphanScan *o)
{
    o->d->orphan_scan = false;
    free(o->ids);
    free(o->attempts);
    free(o);
}

static void orphans_checked(PGresult *res, const char *err, void *arg)
{
    OrphanScan *o = arg;
    Dispatch *d = o->d;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != o->n) {
        log_warn("checking pending reservations failed: %s", res ? PQresultErrorMessage(res) : err);
        orphan_scan_free(o);
        return;
    }
    size_t released = 0;
    for (size_t i = 0; i < o->n && !d->stopped; i++) {
        if (PQgetvalue(res, (int)i, 0)[0] == 't') {
            settle_pending(d, o->ids[i], o->attempts[i]);
        } else {
            release_marker(d, o->ids[i], o->attempts[i], "orphaned", true);
            released++;
        }
    }
    if (released) {
        d->env->metrics->orphans_released += released;
        log_warn("gave back %zu reservation%s whose request was never recorded", released,
                 released == 1 ? "" : "s");
    }
    orphan_scan_free(o);
}

static void orphans_listed(redisReply *r, const char *err, void *arg)
{
    Dispatch *d = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0 || d->stopped) {
        if (!r || r->type == REDIS_REPLY_ERROR)
            log_warn("listing pending reservations failed: %s", r ? r->str : err);
        d->orphan_scan = false;
        return;
    }
    OrphanScan *o = xcalloc(1, sizeof(*o));
    o->d = d;
    o->ids = xcalloc(r->elements, sizeof(int64_t));
    o->attempts = xcalloc(r->elements, sizeof(int));
    char *arr = xmalloc(2 + r->elements * 22);
    size_t len = 0, plen = strlen(d->env->keys.prefix);
    arr[len++] = '{';
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        long long id;
        int att;
        if (e->type != REDIS_REPLY_STRING || strncmp(e->str, d->env->keys.prefix, plen) != 0 ||
            sscanf(e->str + plen, "ra:%lld:%d", &id, &att) != 2)
            continue; /* only this file writes the set */
        o->ids[o->n] = id;
        o->attempts[o->n++] = att;
        len += (size_t)sprintf(arr + len, "%s%lld", len > 1 ? "," : "", id);
    }
    arr[len++] = '}';
    arr[len] = '\0';
    const char *params[] = {arr};
    bool sent =
        o->n > 0 && pg_query(d->env->pg,
                             "SELECT EXISTS (SELECT 1 FROM requests r WHERE r.id = x.id) "
                             "FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n) ORDER BY x.n",
                             1, params, orphans_checked, o);
    free(arr);
    if (!sent)
        orphan_scan_free(o);
}

static void orphan_scan_start(Dispatch *d)
{
    if (d->orphan_scan)
        return;
    char pend[64], max[24];
    keys_pending(&d->env->keys, pend, sizeof(pend));
    snprintf(max, sizeof(max), "%lld", (long long)(util_wall_ms() - d->env->cfg->orphan_grace_ms));
    const char *argv[] = {"ZRANGEBYSCORE", pend, "-inf", max, "LIMIT", "0", ORPHAN_BATCH};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    d->orphan_scan = rds_command(d->env->rds, orphans_listed, d, 7, argv, lens);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Dispatch *d = arg;
    if (d->stopped || !dir_snap(d->dir) || !pg_pool_ready(d->env->pg) || !rds_ready(d->env->rds) ||
        d->env->stopping)
        return;
    orphan_scan_start(d);
    if (d->sweeping)
        return;
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
}

void dispatch_kick(Dispatch *d)
{
    d->waitlist_due = true;
    event_active(d->sweep, EV_TIMEOUT, 0);
}

/* ---- set-up ------------------------------------------------------------------------------ */

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
    d->model = (TravelModel){{cfg->detour_urban, cfg->detour_rural, cfg->detour_mountain},
                             {cfg->speed_urban_kmh, cfg->speed_rural_kmh, cfg->speed_mountain_kmh},
                             cfg->circle_minutes};
    parse_window(cfg->lunch_window, d->win[0]);
    parse_window(cfg->dinner_window, d->win[1]);
    d->reserve = rds_script_new(env->rds, lua_reserve);
    d->release = rds_script_new(env->rds, lua_release);
    sweep_cursor_reset(d);
    d->sweep = event_new(env->base, -1, EV_PERSIST, sweep_cb, d);
    util_timer_ms(d->sweep, cfg->reconcile_interval_ms);
    d->dir = dir_new(env->pg, directory_changed, d);
    /* one batch of each kind per pool connection at most; a full one commits 256 requests */
    static const char *const sql[] = {
        "SELECT * FROM careline_submit_resolve_set($1::jsonb)",
        "SELECT * FROM careline_submit_finish_set($1::jsonb)",
        "SELECT * FROM careline_submit_record_set($1::jsonb)",
    };
    for (int k = 0; k < 3; k++)
        d->batch[k] =
            pgbatch_new(env->pg, sql[k], cfg->pg_pool_size, 256, cfg->pg_query_timeout_ms);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_SUBMIT, handle_submit, d);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY, handle_status, d);
    session_route(env->sessions, CARELINE__V1__ENVELOPE__BODY_CANCEL, handle_cancel, d);
    return d;
}

void dispatch_set_hooks(Dispatch *d, const DispatchHooks *hooks)
{
    d->hooks = *hooks;
}

void dispatch_stop(Dispatch *d)
{
    if (!d)
        return;
    d->stopped = true;
    for (int k = 0; k < 3; k++) {
        pgbatch_free(d->batch[k]); /* what waits or runs is dropped, not answered */
        d->batch[k] = NULL;
    }
}

void dispatch_free(Dispatch *d)
{
    if (!d)
        return;
    if (d->sweep)
        event_free(d->sweep);
    dir_free(d->dir);
    for (int k = 0; k < 3; k++)
        pgbatch_free(d->batch[k]);
    free(d);
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
