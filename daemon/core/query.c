/*
 * query: the gateway's questions about a request it submitted before — StatusQuery (the
 * state, the station, the window, the history and the sentence to read out) and
 * CancelRequest (careline_cancel, then the reservation's capacity back in Redis). A request
 * is named by its id, its idempotency key, or the caller's phone (their latest request).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch_int.h"
#include "core/speech.h"

/* One question in flight: the connection it came on is referenced until ask_free. */
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

/* The reference's parameters: $1 id, $2 key, $3 phone, $4 the phone's keyed hash (hex). */
typedef struct {
    const char *params[4];
    char id[24], phone[24], phone_hash[65];
} Ref;

/* Reads a request reference (id, key or phone) into r; false after an Error reply. */
static bool request_ref(const Dispatch *d, Conn *c, uint64_t seq, int which, int64_t id,
                        const char *key, const char *phone, Ref *r)
{
    const char **params = r->params;
    char *idbuf = r->id, *phonebuf = r->phone;
    params[0] = params[1] = params[2] = params[3] = NULL;
    switch (which) {
    case 1:
        if (id <= 0) {
            conn_send_field_error(c, seq, S(ERROR_CODE__INVALID_ARGUMENT), "request_id",
                                  "request_id must be a positive id (got %lld)", (long long)id);
            return false;
        }
        snprintf(idbuf, 24, "%lld", (long long)id);
        params[0] = idbuf;
        return true;
    case 2:
        if (!key[0] || strlen(key) > MAX_KEY || !util_utf8_valid(key, strlen(key))) {
            conn_send_field_error(c, seq, S(ERROR_CODE__INVALID_ARGUMENT), "idempotency_key",
                                  "idempotency_key must be 1..%d bytes of valid UTF-8", MAX_KEY);
            return false;
        }
        params[1] = key;
        return true;
    case 3:
        if (!intake_phone(phone, phonebuf, 24)) {
            conn_send_field_error(c, seq, S(ERROR_CODE__INVALID_ARGUMENT), "caller_phone",
                                  "caller_phone must be 5..15 digits (optionally +86)");
            return false;
        }
        intake_phone_hash(d, phonebuf, r->phone_hash);
        params[2] = phonebuf;
        params[3] = r->phone_hash;
        return true;
    default:
        conn_send_field_error(c, seq, S(ERROR_CODE__INVALID_ARGUMENT), "request_id",
                              "name the request: a request_id, an idempotency_key or a "
                              "caller_phone is required");
        return false;
    }
}

/* ---- status ------------------------------------------------------------------------------ */

/* The request's columns repeat on every row; the event's (ev_*) are one per row, oldest
 * first. */
static const char status_sql[] =
    "WITH target AS (SELECT q.id FROM requests q WHERE "
    "  ($1::bigint IS NOT NULL AND q.id = $1) "
    "  OR ($2::text IS NOT NULL AND q.idempotency_key = $2) "
    "  OR ($3::text IS NOT NULL AND (q.resident_id = (SELECT x.id FROM residents x "
    "      WHERE x.phone = $3) OR (q.resident_id IS NULL "
    "      AND q.caller_phone_hash = decode($4, 'hex')))) "
    "  ORDER BY q.created_at DESC LIMIT 1) "
    "SELECT r.id AS request_id, r.state, r.kind, coalesce(r.station_id, 0) AS station_id, "
    "  coalesce((extract(epoch FROM r.window_start) * 1000)::bigint, 0) AS window_start_ms, "
    "  coalesce((extract(epoch FROM r.window_end) * 1000)::bigint, 0) AS window_end_ms, "
    "  coalesce(r.reason_code, '') AS reason_code, coalesce(r.meal_slot, '') AS meal_slot, "
    "  coalesce(r.care_subtype, '') AS care_subtype, "
    "  cardinality(r.priority) AS priorities, "
    "  (extract(epoch FROM e.at) * 1000)::bigint AS ev_at_ms, e.state AS ev_state, "
    "  e.actor AS ev_actor, "
    "  coalesce(e.reason_code, '') AS ev_reason_code, coalesce(e.reason, '') AS ev_reason, "
    "  coalesce(e.station_id, 0) AS ev_station_id "
    "FROM target JOIN requests r ON r.id = target.id "
    "JOIN request_events e ON e.request_id = r.id ORDER BY e.id";

enum {
    ST_REQUEST,
    ST_STATE,
    ST_KIND,
    ST_STATION,
    ST_WS,
    ST_WE,
    ST_REASON,
    ST_SLOT,
    ST_SUBTYPE,
    ST_PRIORITIES,
    EV_AT,
    EV_STATE,
    EV_ACTOR,
    EV_REASON_CODE,
    EV_REASON,
    EV_STATION,
    ST_N
};
static const char *const status_cols[ST_N] = {
    "request_id",      "state",          "kind",        "station_id",
    "window_start_ms", "window_end_ms",  "reason_code", "meal_slot",
    "care_subtype",    "priorities",     "ev_at_ms",    "ev_state",
    "ev_actor",        "ev_reason_code", "ev_reason",   "ev_station_id"};

static void status_done(PGresult *res, const char *err, void *arg)
{
    Ask *a = arg;
    PgCols pc = {0};
    if (!conn_alive(a->c))
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("status query failed: %s", PG_ERRLINE(res, err));
        conn_send_error(a->c, a->seq, S(ERROR_CODE__UNAVAILABLE), false,
                        "cannot read the request's status now; retry shortly");
        goto out;
    }
    if (!dispatch_bind(&pc, res, status_cols, ST_N, "status query")) {
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
    st.request_id = pgcols_ll(&pc, 0, ST_REQUEST);
    st.state = dispatch_enum_col(&pc, 0, ST_STATE, &careline__v1__request_state__descriptor);
    st.kind = dispatch_enum_col(&pc, 0, ST_KIND, &careline__v1__service_kind__descriptor);
    st.station_id = pgcols_ll(&pc, 0, ST_STATION);
    char name[160];
    dispatch_station_name(a->d, st.station_id, name, sizeof(name));
    st.station_name = name;
    st.window_start_ms = pgcols_ll(&pc, 0, ST_WS);
    st.window_end_ms = pgcols_ll(&pc, 0, ST_WE);
    st.reason_code = dispatch_enum_col(&pc, 0, ST_REASON, &careline__v1__reason_code__descriptor);
    Careline__V1__RequestEvent *evs = xcalloc((size_t)n, sizeof(*evs));
    Careline__V1__RequestEvent **evp = xcalloc((size_t)n, sizeof(*evp));
    for (int i = 0; i < n; i++) {
        Careline__V1__RequestEvent *e = &evs[i];
        careline__v1__request_event__init(e);
        e->at_ms = pgcols_ll(&pc, i, EV_AT);
        e->state = dispatch_enum_col(&pc, i, EV_STATE, &careline__v1__request_state__descriptor);
        e->actor = (char *)pgcols_str(&pc, i, EV_ACTOR);
        e->reason_code =
            dispatch_enum_col(&pc, i, EV_REASON_CODE, &careline__v1__reason_code__descriptor);
        e->reason = (char *)pgcols_str(&pc, i, EV_REASON);
        e->station_id = pgcols_ll(&pc, i, EV_STATION);
        evp[i] = e;
    }
    st.n_history = (size_t)n;
    st.history = evp;
    char speech[512];
    SpeechArgs sa = {st.state,
                     st.reason_code,
                     st.kind,
                     dispatch_enum_col(&pc, 0, ST_SLOT, &careline__v1__meal_slot__descriptor),
                     dispatch_enum_col(&pc, 0, ST_SUBTYPE, &careline__v1__care_subtype__descriptor),
                     name,
                     st.window_start_ms,
                     st.window_end_ms,
                     util_wall_ms(),
                     pgcols_int(&pc, 0, ST_PRIORITIES) > 0,
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

void query_status(void *arg, Conn *c, Envelope *env)
{
    Dispatch *d = arg;
    const Careline__V1__StatusQuery *q = env->status_query;
    Ref ref;
    if (request_ref(d, c, env->seq, (int)q->ref_case, q->request_id,
                    q->ref_case == 2 ? q->idempotency_key : "",
                    q->ref_case == 3 ? q->caller_phone : "", &ref)) {
        Ask *a = ask_new(d, c, env->seq);
        if (!pg_pool_available(d->env->pg)) {
            conn_send_error(c, env->seq, S(ERROR_CODE__UNAVAILABLE), false,
                            "the database is not answering at the moment; retry shortly");
            ask_free(a);
        } else if (!pg_query(d->env->pg, status_sql, 4, ref.params, status_done, a)) {
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

/* Columns of careline_cancel used here. */
enum { CN_REQUEST, CN_STATE, CN_CANCELLED, CN_STATION, CN_ATTEMPT, CN_N };
static const char *const cancel_cols[CN_N] = {"request_id", "state", "cancelled", "station_id",
                                              "attempt"};

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

/* Answers an Error instead of the CancelResult and ends the operation. */
static void cancel_fail(CancelOp *op, int code, const char *msg)
{
    Ask *a = op->a;
    if (conn_alive(a->c))
        conn_send_error(a->c, a->seq, code, false, "%s", msg);
    ask_free(a);
    free(op);
}

static void cancel_done(PGresult *res, const char *err, void *arg)
{
    CancelOp *op = arg;
    Ask *a = op->a;
    PgCols pc = {0};
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("cancel failed: %s", PG_ERRLINE(res, err));
        cancel_fail(op, S(ERROR_CODE__UNAVAILABLE),
                    "cannot cancel now (database unavailable); retry shortly");
        return;
    }
    if (!dispatch_bind(&pc, res, cancel_cols, CN_N, "careline_cancel")) {
        cancel_fail(op, S(ERROR_CODE__UNAVAILABLE),
                    "cannot cancel now (database unavailable); retry shortly");
        return;
    }
    if (PQntuples(res) == 0) {
        cancel_fail(op, S(ERROR_CODE__NOT_FOUND),
                    "no such request (or no open request for this caller)");
        return;
    }
    op->request_id = pgcols_ll(&pc, 0, CN_REQUEST);
    op->state = dispatch_enum_col(&pc, 0, CN_STATE, &careline__v1__request_state__descriptor);
    op->cancelled = pgcols_bool(&pc, 0, CN_CANCELLED);
    int attempt = pgcols_int(&pc, 0, CN_ATTEMPT);
    int64_t station = pgcols_ll(&pc, 0, CN_STATION);
    if (op->cancelled && station > 0 && attempt > 0 && !a->d->stopped)
        if (a->d->hooks.cancelled)
            a->d->hooks.cancelled(a->d->hooks.arg, station, op->request_id, attempt);
    if (!op->cancelled || attempt < 1 || a->d->stopped) {
        cancel_reply(op);
        return;
    }
    if (!reserve_release_cb(a->d, op->request_id, attempt, "cancelled", false, cancel_release_done,
                            op))
        cancel_release_done(NULL, "Redis unavailable", op);
}

void query_cancel(void *arg, Conn *c, Envelope *env)
{
    Dispatch *d = arg;
    const Careline__V1__CancelRequest *q = env->cancel;
    Ref ref;
    int which =
        q->ref_case == CARELINE__V1__CANCEL_REQUEST__REF_CALLER_PHONE ? 3 : (int)q->ref_case;
    if (strlen(q->reason) > MAX_NOTE || !util_utf8_valid(q->reason, strlen(q->reason))) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "reason",
                              "reason must be at most %d bytes of valid UTF-8", MAX_NOTE);
    } else if (!pg_pool_available(d->env->pg)) {
        conn_send_error(c, env->seq, S(ERROR_CODE__UNAVAILABLE), false,
                        "the database is not answering at the moment; nothing was cancelled, "
                        "retry shortly");
    } else if (request_ref(d, c, env->seq, which, q->request_id,
                           which == 2 ? q->idempotency_key : "", which == 3 ? q->caller_phone : "",
                           &ref)) {
        const char *params[6] = {ref.params[0],
                                 ref.params[1],
                                 ref.params[2],
                                 ref.params[3],
                                 q->reason[0] ? q->reason : "cancelled by the caller",
                                 "gateway"};
        CancelOp *op = xcalloc(1, sizeof(*op));
        op->a = ask_new(d, c, env->seq);
        if (!pg_query(d->env->pg,
                      "SELECT * FROM careline_cancel($1, $2, $3, decode($4, 'hex'), $5, $6)", 6,
                      params, cancel_done, op)) {
            conn_send_error(c, env->seq, S(ERROR_CODE__OVERLOADED), false,
                            "too many requests are waiting for the database; retry shortly");
            ask_free(op->a);
            free(op);
        }
    }
    frame_free(env);
}
