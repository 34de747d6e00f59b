/*
 * submit: each submission is a small state machine (Sub) driven by callbacks:
 * resolve (PostgreSQL, read-only: an existing request, the resident, fresh ids) -> place
 * (memory, place.c) -> reserve + enqueue (one Redis script, reserve.c) -> record
 * (PostgreSQL: request, job and event in one statement) -> reply. Requests that exist
 * already (re-dispatch, waitlist, the sweep's leftovers) are moved on by finish instead of
 * record. Resolve, record and finish go through group-commit batches (store/pgbatch), one
 * statement and one transaction for many submissions. Every step is idempotent, keyed by
 * the request id and the offer's attempt number, so the sweep (or a second daemon) may redo
 * any step after a crash and the request is still queued exactly once; a reservation whose
 * record never committed is given back by the orphan reconciler (see
 * sql/013_record_once.sql). Nothing here blocks: every wait is a callback.
 */
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch_int.h"
#include "core/speech.h"

/* ---- the Sub ------------------------------------------------------------------------------ */

Sub *sub_new(Dispatch *d, Conn *c, uint64_t seq)
{
    Sub *s = xcalloc(1, sizeof(*s));
    s->d = d;
    s->c = c;
    s->seq = seq;
    s->attempt = 1;
    s->t0_ms = util_now_ms();
    if (c) {
        conn_inflight_begin(c);
        conn_ref(c);
    }
    return s;
}

void sub_free(Sub *s)
{
    Dispatch *d = s->d;
    if (d->deadlines)
        deadline_disarm(d->deadlines, &s->dl);
    if (s->c && !s->answered)
        d->env->metrics->submissions[MSUB_CALLER_GONE]++;
    if (s->c) {
        conn_inflight_end(s->c);
        conn_unref(s->c);
    } else if (!s->redispatch && d->sweeping && --d->sweep_left == 0) {
        d->sweeping = false;
    }
    free(s);
}

#ifdef CARELINE_TESTING
/* Sweep-driven work is not counted, so a test can aim at its own burst. */
void sub_fault(const Sub *s, const char *point)
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
#endif

int sub_minute_now(CalDay *today)
{
    int m;
    *today = cal_day_of(util_wall_ms(), &m);
    return m;
}

unsigned sub_priority_from_db(const char *csv)
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

/* ---- replies ---------------------------------------------------------------------------- */

/* The one answer a gateway's submission gets: counted by outcome, its latency observed.
 * false when there is nobody to answer (sweep-driven, the connection gone, answered). */
static bool sub_answer(Sub *s, MetricsSubmit outcome)
{
    if (!s->c || s->answered || !conn_alive(s->c))
        return false;
    Metrics *m = s->d->env->metrics;
    s->answered = true;
    m->submissions[outcome]++;
    metrics_hist_observe(&m->submit_seconds, (double)(util_now_ms() - s->t0_ms) / 1000.0);
    if (s->d->deadlines)
        deadline_disarm(s->d->deadlines, &s->dl);
    return true;
}

static MetricsSubmit outcome_of_code(int code)
{
    switch (code) {
    case S(ERROR_CODE__INVALID_ARGUMENT):
        return MSUB_INVALID;
    case S(ERROR_CODE__CONFLICT):
        return MSUB_CONFLICT;
    case S(ERROR_CODE__NOT_FOUND):
        return MSUB_NOT_FOUND;
    case S(ERROR_CODE__UNAVAILABLE):
        return MSUB_UNAVAILABLE;
    case S(ERROR_CODE__OVERLOADED):
        return MSUB_OVERLOADED;
    default:
        return MSUB_ERROR;
    }
}

static MetricsSubmit outcome_of_state(int state)
{
    switch (state) {
    case S(REQUEST_STATE__QUEUED):
        return MSUB_QUEUED;
    case S(REQUEST_STATE__WAITLISTED):
        return MSUB_WAITLISTED;
    case S(REQUEST_STATE__REJECTED):
        return MSUB_REJECTED;
    case S(REQUEST_STATE__NOT_REGISTERED):
        return MSUB_NOT_REGISTERED;
    case S(REQUEST_STATE__DEAD_LETTER):
        return MSUB_DEAD_LETTER;
    default:
        return MSUB_OTHER_STATE;
    }
}

void sub_reply_error(Sub *s, int code, const char *field, const char *fmt, ...)
{
    if (!sub_answer(s, outcome_of_code(code)))
        return; /* sweep-driven, or nobody left to answer */
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* the field lets a gateway say which input was wrong */
    conn_send_field_error(s->c, s->seq, code, field, "%s", msg);
}

/* The PriorityFlag values set in s->prio, into flags[3]; returns how many. */
static size_t priority_flags(const Sub *s, Careline__V1__PriorityFlag flags[3])
{
    size_t n = 0;
    for (int f = 1; f <= 3; f++)
        if (s->prio & (1u << f))
            flags[n++] = (Careline__V1__PriorityFlag)f;
    return n;
}

/* Every UNAVAILABLE of a submission says what was recorded; these are its only texts. */
void sub_unavailable(Sub *s, SubRecorded rec, const char *cause)
{
    static const char *const what[] = {
        [SUB_NOTHING] = "nothing was recorded by this call; please retry with the same "
                        "idempotency key",
        [SUB_MAYBE] = "the request was sent to be recorded and the answer was lost, so it may "
                      "have been recorded; retrying with the same idempotency key is safe (a "
                      "request is never recorded twice)",
        [SUB_PENDING] = "the request is recorded; its outcome is not saved yet and will be "
                        "completed automatically (ask its status shortly)",
    };
    sub_reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL, "%s; %s", cause, what[rec]);
}

bool sub_gone(const Sub *s)
{
    return s->c && (s->abandoned || !conn_alive(s->c));
}

/* The caller's deadline: it hears now what is true, and work not yet sent stays unsent. */
static void sub_deadline_cb(DeadlineItem *it, void *arg)
{
    Sub *s = arg;
    char cause[96];
    (void)it;
    snprintf(cause, sizeof(cause), "no answer from the database within the deadline (%lld ms)",
             (long long)(s->due_ms - s->t0_ms));
    if (s->record_sent) {
        sub_unavailable(s, SUB_MAYBE, cause);
    } else if (s->request_id && !s->fresh) {
        sub_unavailable(s, SUB_PENDING, cause); /* an existing request: the sweep finishes it */
    } else {
        sub_unavailable(s, SUB_NOTHING, cause);
        s->abandoned = true; /* and so it must stay: nothing of it may be written now */
    }
}

void sub_arm_deadline(Sub *s, uint32_t client_ms)
{
    Dispatch *d = s->d;
    int64_t ms = d->env->cfg->submit_deadline_ms;
    if (client_ms > 0 && client_ms < ms)
        ms = client_ms;
    s->due_ms = s->t0_ms + ms;
    if (s->c && d->deadlines)
        deadline_arm(d->deadlines, &s->dl, s->due_ms, sub_deadline_cb, s);
}

/* pgbatch's keep hook: the last look before a step goes to PostgreSQL. */
static bool sub_keep(void *arg)
{
    Sub *s = arg;
    if (sub_gone(s)) {
        s->d->env->metrics->submit_dropped++;
        return false;
    }
    if (s->fresh)
        s->record_sent = true; /* a fresh Sub's only write is its record */
    return true;
}

static void reply_result(Sub *s)
{
    Dispatch *d = s->d;
    if (!sub_answer(s, outcome_of_state(s->state)))
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
    r.n_priority = priority_flags(s, flags);
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
    o.n_priority = priority_flags(s, flags);
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

/* ---- the batches' elements (see careline_submit_*_set) ---------------------------------- */

static json_t *resolve_json(const Sub *s)
{
    char kb[64], sb[64], cb[64], date[11];
    bool meal = s->kind == S(SERVICE_KIND__MEAL_DELIVERY);
    cal_format(s->day, date);
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(s->key));
    json_object_set_new(o, "hash", json_string(s->hash));
    json_object_set_new(o, "phone", s->phone[0] ? json_string(s->phone) : json_null());
    json_object_set_new(o, "phone_hash",
                        s->phone_hash[0] ? json_string(s->phone_hash) : json_null());
    json_object_set_new(o, "resident",
                        s->resident_param ? json_integer(s->resident_param) : json_null());
    json_object_set_new(
        o, "kind",
        json_string(dispatch_db_name(&careline__v1__service_kind__descriptor, s->kind, kb)));
    json_object_set_new(
        o, "slot",
        meal ? json_string(dispatch_db_name(&careline__v1__meal_slot__descriptor, s->slot, sb))
             : json_null());
    json_object_set_new(o, "date", json_string(date));
    json_object_set_new(o, "subtype",
                        meal ? json_null()
                             : json_string(dispatch_db_name(&careline__v1__care_subtype__descriptor,
                                                            s->subtype, cb)));
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
        o, "state",
        json_string(dispatch_db_name(&careline__v1__request_state__descriptor, s->state, b1)));
    json_object_set_new(o, "reason_code",
                        s->reason ? json_string(dispatch_db_name(
                                        &careline__v1__reason_code__descriptor, s->reason, b2))
                                  : json_null());
    json_object_set_new(o, "reason", s->msg[0] ? json_string(s->msg) : json_null());
    json_object_set_new(o, "travel", queued ? json_integer((int)(s->minutes + 0.5)) : json_null());
    json_object_set_new(o, "ws", json_integer(s->ws_ms));
    json_object_set_new(o, "we", json_integer(s->we_ms));
    json_object_set_new(o, "expires", json_integer(s->expires_ms));
    json_object_set_new(o, "actor", json_string(s->c ? "gateway" : "daemon"));
    json_object_set_new(o, "gen", queued && s->gen ? json_integer(s->gen) : json_null());
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
    /* where an unregistered caller's follow-up belongs (sql/migrations/009_followups.sql) */
    json_object_set_new(o, "county", json_string(s->d->env->cfg->county_code));
    json_object_set_new(o, "lat", s->has_loc ? json_real(s->loc_lat) : json_null());
    json_object_set_new(o, "lon", s->has_loc ? json_real(s->loc_lon) : json_null());
    if (s->state == S(REQUEST_STATE__NOT_REGISTERED))
        json_object_set_new(o, "reason", json_string("caller is not a registered resident"));
    return o;
}

/* ---- finish / record: the outcome is written ------------------------------------------ */

/* Columns of careline_submit_finish_set; _record_set adds request_id. */
enum { FN_STATE, FN_STATION, FN_JOB, FN_CHANGED, FN_N, RC_REQUEST = FN_N, RC_N };
static const char *const finish_cols[RC_N] = {"state", "station_id", "job_id", "changed",
                                              "request_id"};

/* A fresh record that never reached the server: nothing is recorded, so its reservation
 * is ours to give back now (the reconciler would only do it later). */
static void record_not_sent(Sub *s, const char *cause)
{
    if (s->reserved)
        reserve_release(s->d, s->request_id, s->attempt, "not recorded", true);
    sub_unavailable(s, SUB_NOTHING, cause);
    sub_free(s);
}

static void finish_failed(Sub *s, const char *err, bool sent)
{
    bool stale = strstr(err, "stale redis generation") != NULL; /* see core/rebuild.h */
    if (stale)
        rebuild_note_refused(s->d->rebuild);
    if (s->fresh && !sent) {
        if (!sub_gone(s))
            log_warn("request %lld: not recorded: %s", (long long)s->request_id, err);
        record_not_sent(s, "the database is unavailable");
        return;
    }
    if (s->fresh) {
        /* a reservation left behind is the reconciler's (it is not ours to give back: the
         * record may have committed just as its link failed) */
        log_warn("request %lld: recording it failed: %s", (long long)s->request_id, err);
        /* PostgreSQL refused the job for a replaced Redis generation: the transaction rolled
         * back, so nothing is recorded (and the reservation went with the old state) */
        if (stale)
            sub_unavailable(s, SUB_NOTHING, "the queue state was being rebuilt");
        else
            sub_unavailable(s, SUB_MAYBE, "the database's answer was lost");
        sub_free(s);
        return;
    }
    /* the request stays 'received' in PostgreSQL; the sweep will finish it */
    log_warn("request %lld: recording the outcome failed: %s", (long long)s->request_id, err);
    sub_unavailable(s, SUB_PENDING, "the database is unavailable");
    sub_free(s);
}

/* A fresh submission's key was recorded meanwhile (a retry racing it, another daemon):
 * its own reservation is not needed; report the request that holds the key. */
static void record_lost(Sub *s, const PgCols *pc, int row)
{
    if (s->reserved)
        reserve_release(s->d, s->request_id, s->attempt, "duplicate", true);
    s->request_id = pgcols_ll(pc, row, RC_REQUEST);
    s->state = dispatch_enum_col(pc, row, FN_STATE, &careline__v1__request_state__descriptor);
    s->station_id = pgcols_ll(pc, row, FN_STATION);
    s->job_id = pgcols_ll(pc, row, FN_JOB);
    dispatch_station_name(s->d, s->station_id, s->station_name, sizeof(s->station_name));
    s->duplicate = true;
}

/* One row of careline_submit_finish_set or (fresh) _record_set. */
static void finish_row(Sub *s, PGresult *res, int row)
{
    PgCols *pc = &s->d->finish_pc; /* bound once per result: later rows only confirm it */
    if (!dispatch_bind(pc, res, finish_cols, s->fresh ? RC_N : FN_N,
                       s->fresh ? "careline_submit_record_set" : "careline_submit_finish_set")) {
        finish_failed(s, "the database's answer lacks a column", true);
        return;
    }
    bool changed = pgcols_bool(pc, row, FN_CHANGED);
    if (!changed && s->fresh) {
        record_lost(s, pc, row);
    } else if (!changed) {
        /* someone else moved it (another daemon's sweep, or a cancel): report what is true */
        int now_state =
            dispatch_enum_col(pc, row, FN_STATE, &careline__v1__request_state__descriptor);
        if (s->reserved && now_state != S(REQUEST_STATE__QUEUED) &&
            s->state == S(REQUEST_STATE__QUEUED))
            dispatch_release(s->d, s->request_id, s->attempt, "cancelled");
        if (now_state != s->state) {
            s->state = now_state;
            s->station_id = pgcols_ll(pc, row, FN_STATION);
            dispatch_station_name(s->d, s->station_id, s->station_name, sizeof(s->station_name));
        }
        s->duplicate = true;
    } else if (s->state == S(REQUEST_STATE__QUEUED)) {
        if (s->fresh)
            reserve_settle(s->d, s->request_id, s->attempt);
        sub_fault(s, "after_finish");
        offer_out(s);
        log_debug("request %lld queued at station %lld (job %lld, %.1f min)",
                  (long long)s->request_id, (long long)s->station_id, (long long)s->job_id,
                  s->minutes);
    }
    reply_result(s);
    sub_free(s);
}

static void finish_done(PGresult *res, int row, const char *err, void *arg)
{
    Sub *s = arg;
    Dispatch *d = s->d;
    if (d->stopped)
        sub_free(s);
    else if (!res)
        finish_failed(s, err, pgbatch_cb_sent(d->batch[s->fresh ? BATCH_RECORD : BATCH_FINISH]));
    else
        finish_row(s, res, row);
}

void sub_finish(Sub *s)
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
    if (s->fresh && s->c && !pg_pool_available(d->env->pg)) {
        /* the breaker opened since the lookup: the record would only wait */
        record_not_sent(s, "the database is not answering");
        return;
    }
    if (s->fresh)
        pgbatch_add_until(d->batch[BATCH_RECORD], record_json(s), s->due_ms, sub_keep, finish_done,
                          s);
    else
        pgbatch_add_until(d->batch[BATCH_FINISH], finish_json(s), s->due_ms, sub_keep, finish_done,
                          s);
}

/* ---- resolve: what PostgreSQL knows of a submission -------------------------------------- */

/* Columns of careline_submit_resolve_set. */
enum {
    RS_OUTCOME,
    RS_REQUEST,
    RS_STATE,
    RS_RESIDENT,
    RS_VILLAGE,
    RS_LAT,
    RS_LON,
    RS_PRIORITY,
    RS_STATION,
    RS_JOB,
    RS_TRAVEL,
    RS_WS,
    RS_WE,
    RS_REASON,
    RS_NAME,
    RS_ADDRESS,
    RS_N
};
static const char *const resolve_cols[RS_N] = {"outcome",       "request_id",     "state",
                                               "resident_id",   "village_code",   "lat",
                                               "lon",           "priority",       "station_id",
                                               "job_id",        "travel_minutes", "window_start_ms",
                                               "window_end_ms", "reason_code",    "resident_name",
                                               "address"};

static void resolve_failed(Sub *s, const char *err)
{
    if (!sub_gone(s))
        log_warn("looking a request up failed: %s", err);
    sub_unavailable(s, SUB_NOTHING, "the database is unavailable");
    sub_free(s);
}

/* One row of careline_submit_resolve_set. */
static void resolve_row(Sub *s, PGresult *res, int row)
{
    PgCols *pc = &s->d->resolve_pc; /* bound once per result: later rows only confirm it */
    if (!dispatch_bind(pc, res, resolve_cols, RS_N, "careline_submit_resolve_set")) {
        resolve_failed(s, "the database's answer lacks a column");
        return;
    }
    const char *outcome = pgcols_str(pc, row, RS_OUTCOME);
    s->fresh = strcmp(outcome, "new") == 0;
    s->resident_id = pgcols_ll(pc, row, RS_RESIDENT);
    s->request_id = pgcols_ll(pc, row, RS_REQUEST);
    if (strcmp(outcome, "conflict") == 0) {
        sub_reply_error(s, S(ERROR_CODE__CONFLICT), "idempotency_key",
                        "idempotency key '%s' was already used for a different request (id "
                        "%lld)",
                        s->key, (long long)s->request_id);
        sub_free(s);
        return;
    }
    if (strcmp(outcome, "unknown_resident") == 0) {
        sub_reply_error(s, S(ERROR_CODE__NOT_FOUND), "resident_id", "no resident with id %lld",
                        (long long)s->resident_param);
        sub_free(s);
        return;
    }
    s->duplicate = strcmp(outcome, "duplicate") == 0;
    s->state = dispatch_enum_col(pc, row, RS_STATE, &careline__v1__request_state__descriptor);
    snprintf(s->village, sizeof(s->village), "%s", pgcols_str(pc, row, RS_VILLAGE));
    s->lat = pgcols_double(pc, row, RS_LAT);
    s->lon = pgcols_double(pc, row, RS_LON);
    s->prio = sub_priority_from_db(pgcols_str(pc, row, RS_PRIORITY));
    s->station_id = pgcols_ll(pc, row, RS_STATION);
    s->job_id = pgcols_ll(pc, row, RS_JOB);
    s->minutes = (double)pgcols_ll(pc, row, RS_TRAVEL);
    s->ws_ms = pgcols_ll(pc, row, RS_WS);
    s->we_ms = pgcols_ll(pc, row, RS_WE);
    snprintf(s->resident_name, sizeof(s->resident_name), "%s", pgcols_str(pc, row, RS_NAME));
    snprintf(s->address, sizeof(s->address), "%s", pgcols_str(pc, row, RS_ADDRESS));
    s->reason = dispatch_enum_col(pc, row, RS_REASON, &careline__v1__reason_code__descriptor);
    if (s->state == S(REQUEST_STATE__RECEIVED)) {
        sub_fault(s, "after_begin");
        sub_place(s);
        return;
    }
    if (s->state == S(REQUEST_STATE__NOT_REGISTERED) && s->fresh) {
        char masked[LOG_MASK_BUF];
        log_info("request %lld: caller %s is not registered", (long long)s->request_id,
                 log_mask_phone(s->phone, masked));
        sub_finish(s); /* recorded (and answered) like any other outcome */
        return;
    }
    dispatch_station_name(s->d, s->station_id, s->station_name, sizeof(s->station_name));
    reply_result(s);
    sub_free(s);
}

static void resolve_done(PGresult *res, int row, const char *err, void *arg)
{
    Sub *s = arg;
    if (s->d->stopped || (res && sub_gone(s)))
        sub_free(s); /* nobody waits for it: it goes no further */
    else if (!res)
        resolve_failed(s, err);
    else
        resolve_row(s, res, row);
}

void sub_resolve(Sub *s)
{
    Dispatch *d = s->d;
    if (d->stopped) {
        sub_free(s);
        return;
    }
    pgbatch_add_until(d->batch[BATCH_RESOLVE], resolve_json(s), s->due_ms, sub_keep, resolve_done,
                      s);
}
