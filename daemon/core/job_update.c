/*
 * job_update: the JobUpdate handler. A console (or an admin) moves one job through its
 * state machine (sql/011 careline_job_update); updates from all consoles are group-committed
 * through one pgbatch queue, so a burst costs one transaction. A rejected job's capacity is
 * given back and its request goes to the next station; each committed change becomes an
 * entry of the station's stream (with the resident's phone once accepted), which the
 * station's consoles follow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/station_int.h"

#define MAX_NOTE 500

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

/* careline_job_update_many's columns (sql/012), read by name. */
enum {
    U_OUTCOME,
    U_JOB_STATE,
    U_REQUEST_ID,
    U_ATTEMPT,
    U_REDISPATCH,
    U_WELFARE,
    U_STATION,
    U_PHONE,
    U_N
};
static const char *const update_cols[U_N] = {"outcome",    "job_state", "request_id", "attempt",
                                             "redispatch", "welfare",   "station_id", "phone"};

/* One row of careline_job_update_many. */
static void update_done(PGresult *res, int row, const char *err, void *arg)
{
    UpdOp *op = arg;
    Conn *c = op->c;
    Stations *st = op->st;
    PgCols *pc = &st->update_cols;
    if (!res) {
        log_warn("job %lld: update failed: %s", (long long)op->job_id, err);
        conn_send_error(c, op->seq, S(ERROR_CODE__UNAVAILABLE), false,
                        "the update could not be saved (database unavailable); nothing changed, "
                        "retry shortly");
        goto out;
    }
    if (!pgcols_bind(pc, res, update_cols, U_N)) {
        log_error("job %lld: careline_job_update_many returned no column \"%s\"; the update's "
                  "outcome is unknown (is the schema older than this daemon?)",
                  (long long)op->job_id, pc->missing);
        conn_send_error(c, op->seq, S(ERROR_CODE__INTERNAL), false,
                        "the update's outcome could not be read (a server error, logged); "
                        "sending it again is safe");
        goto out;
    }
    const char *outcome = pgcols_str(pc, row, U_OUTCOME);
    if (strcmp(outcome, "not_found") == 0) {
        conn_send_error(c, op->seq, S(ERROR_CODE__NOT_FOUND), false,
                        "job %lld is not one of this station's jobs", (long long)op->job_id);
        goto out;
    }
    int state = station_job_state_from_db(pgcols_str(pc, row, U_JOB_STATE));
    if (strcmp(outcome, "invalid") == 0) {
        char now[32];
        station_job_state_to_db(state, now);
        conn_send_error(c, op->seq, S(ERROR_CODE__INVALID_TRANSITION), false,
                        "job %lld is %s; that update is not allowed from there (nothing changed)",
                        (long long)op->job_id, now);
        goto out;
    }
    bool changed = strcmp(outcome, "changed") == 0;
    int64_t request_id = pgcols_ll(pc, row, U_REQUEST_ID);
    int attempt = pgcols_int(pc, row, U_ATTEMPT);
    if (changed && pgcols_bool(pc, row, U_REDISPATCH)) {
        /* rejected: its capacity goes back and the request moves on to the next station */
        dispatch_release(st->dispatch, request_id, attempt, "rejected");
        dispatch_redispatch(st->dispatch, request_id);
    }
    if (changed && pgcols_bool(pc, row, U_WELFARE))
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
    if (changed) /* committed: an entry on the station's stream, which its consoles follow */
        station_change(st, pgcols_ll(pc, row, U_STATION), op->job_id, request_id, attempt, state,
                       pgcols_str(pc, row, U_PHONE));
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

void job_update_handle(void *arg, Conn *c, Envelope *env)
{
    Stations *st = arg;
    const Careline__V1__JobUpdate *u = env->job_update;
    const char *action = action_db(u->action);
    size_t nlen = strlen(u->note);
    if (u->job_id <= 0) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "job_id",
                              "job_id must be a positive id");
    } else if (!action) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "action",
                              "action must be ACCEPT, REJECT, GO_EN_ROUTE, DELIVER, COMPLETE or "
                              "FAIL");
    } else if (!reason_ok(u->action, u->reason_code)) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "reason_code", "%s",
                              u->action == 2 ? "REJECT needs reason_code STATION_FULL, NO_STAFF, "
                                               "OUT_OF_AREA or REASON_OTHER"
                              : u->action == 6
                                  ? "FAIL needs reason_code RESIDENT_NOT_HOME, RESIDENT_UNWELL, "
                                    "RESIDENT_REFUSED or REASON_OTHER"
                                  : "only REJECT and FAIL take a reason_code");
    } else if (nlen > MAX_NOTE || !util_utf8_valid(u->note, nlen)) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "note",
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
