/*
 * followup_sql: the two statements, asynchronous on the pool — careline_followup_list and
 * careline_followup_mark (sql/functions/followup.sql), which take the caller's scope (its
 * station, or none for the admin) so that a station can neither read nor mark another
 * station's follow-ups. Result columns are read by name.
 */
#include "admin/followup_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/pg.h"
#include "store/pgcols.h"

enum {
    F_ID,
    F_PHONE,
    F_VILLAGE,
    F_VILLAGE_NAME,
    F_TOWN,
    F_TOWN_NAME,
    F_FIRST,
    F_LAST,
    F_CALLS,
    F_STATE,
    F_CONTACT,
    F_RESIDENT,
    F_NOTE,
    F_OUTCOME, /* the mark's only */
    F_N
};
static const char *const cols[F_N] = {
    "id",        "phone_masked", "village_code",     "village_name",
    "town_code", "town_name",    "first_call_ms",    "last_call_ms",
    "calls",     "state",        "first_contact_ms", "resident_id",
    "note",      "outcome"};

/* The rows of res as Followups (one block, freed with free()). */
static Careline__V1__Followup **rows_of(const PgCols *pc, int n)
{
    Careline__V1__Followup **fs = xcalloc((size_t)n + 1, sizeof(*fs) + sizeof(**fs));
    Careline__V1__Followup *blk = (Careline__V1__Followup *)(fs + n + 1);
    for (int i = 0; i < n; i++) {
        Careline__V1__Followup *x = &blk[i];
        careline__v1__followup__init(x);
        x->id = pgcols_ll(pc, i, F_ID);
        x->phone_masked = (char *)pgcols_str(pc, i, F_PHONE);
        x->village_code = (char *)pgcols_str(pc, i, F_VILLAGE);
        x->village_name = (char *)pgcols_str(pc, i, F_VILLAGE_NAME);
        x->town_code = (char *)pgcols_str(pc, i, F_TOWN);
        x->town_name = (char *)pgcols_str(pc, i, F_TOWN_NAME);
        x->first_call_ms = pgcols_ll(pc, i, F_FIRST);
        x->last_call_ms = pgcols_ll(pc, i, F_LAST);
        x->calls = (uint32_t)pgcols_ll(pc, i, F_CALLS);
        int st = followup_state_of(pgcols_str(pc, i, F_STATE));
        x->state = st > 0 ? (Careline__V1__FollowupState)st : FUS(STATE_UNSPECIFIED);
        x->first_contact_ms = pgcols_ll(pc, i, F_CONTACT);
        x->resident_id = pgcols_ll(pc, i, F_RESIDENT);
        x->note = (char *)pgcols_str(pc, i, F_NOTE);
        fs[i] = x;
    }
    return fs;
}

/* false (op answered) unless res holds rows with the columns (the outcome only for a mark). */
static bool result_ok(FuOp *op, PGresult *res, const char *err, PgCols *pc)
{
    const char *what = op->mark ? "marking the follow-up" : "listing follow-ups";
    if (!res) {
        followup_op_fail(op, FUERR(UNAVAILABLE), NULL, "%s: %s", what,
                         err ? err : "database unreachable");
        return false;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s", PG_ERRLINE(res, NULL));
        msg[strcspn(msg, "\n")] = '\0';
        log_error("followup: %s failed: %s", what, msg);
        followup_op_fail(op, FUERR(INTERNAL), NULL, "%s failed (see the daemon log)", what);
        return false;
    }
    if (!pgcols_bind(pc, res, cols, op->mark ? F_N : F_OUTCOME)) {
        log_error("followup: %s failed: the result has no column \"%s\"", what, pc->missing);
        followup_op_fail(op, FUERR(INTERNAL), NULL, "%s failed (see the daemon log)", what);
        return false;
    }
    return true;
}

static void list_done(PGresult *res, const char *err, void *arg)
{
    FuOp *op = arg;
    PgCols pc = {0};
    if (!result_ok(op, res, err, &pc))
        return;
    int n = PQntuples(res);
    bool more = n > (int)op->limit; /* one row more than asked was fetched */
    if (more)
        n = (int)op->limit;
    Careline__V1__Followup **fs = rows_of(&pc, n);
    followup_op_reply(op, fs, (size_t)n, more);
    free(fs);
}

static void mark_done(PGresult *res, const char *err, void *arg)
{
    FuOp *op = arg;
    PgCols pc = {0};
    if (!result_ok(op, res, err, &pc))
        return;
    const char *outcome = PQntuples(res) == 1 ? pgcols_str(&pc, 0, F_OUTCOME) : "";
    long long id = (long long)op->id;
    if (strcmp(outcome, "ok") == 0) {
        Careline__V1__Followup **fs = rows_of(&pc, 1);
        log_info("followup %lld marked %s by %s", id, followup_state_name(op->state), op->actor);
        followup_op_reply(op, fs, 1, false);
        free(fs);
    } else if (strcmp(outcome, "not_found") == 0) {
        followup_op_fail(op, FUERR(NOT_FOUND), "followup_id", "no follow-up %lld in this county",
                         id);
    } else if (strcmp(outcome, "forbidden") == 0) {
        if (op->set_village[0])
            followup_op_fail(op, FUERR(FORBIDDEN), NULL,
                             "follow-up %lld or village %s is not one of station %lld's "
                             "villages",
                             id, op->set_village, (long long)op->station);
        else
            followup_op_fail(op, FUERR(FORBIDDEN), NULL,
                             "follow-up %lld is not in one of station %lld's villages", id,
                             (long long)op->station);
    } else if (strcmp(outcome, "unknown_village") == 0) {
        followup_op_fail(op, FUERR(INVALID_ARGUMENT), "village_code",
                         "unknown village code %s (not a village of this county)", op->set_village);
    } else if (strcmp(outcome, "registered") == 0) {
        followup_op_fail(op, FUERR(INVALID_TRANSITION), "state",
                         "follow-up %lld is registered already (final)", id);
    } else {
        log_error("followup: marking %lld: unexpected outcome '%s'", id, outcome);
        followup_op_fail(op, FUERR(INTERNAL), NULL, "marking the follow-up failed");
    }
}

void followup_op_run(FuOp *op)
{
    const Env *env = op->env;
    char station[24], after[24], limit[16], id[24];
    snprintf(station, sizeof(station), "%lld", (long long)op->station);
    const char *st = op->station ? station : NULL; /* NULL: the admin's whole county */
    bool ok;
    if (op->mark) {
        snprintf(id, sizeof(id), "%lld", (long long)op->id);
        const char *params[] = {
            id,       env->cfg->county_code, st,       followup_state_name(op->state),
            op->note, op->set_village,       op->actor};
        ok = pg_query(env->pg,
                      "SELECT outcome, id, phone_masked, village_code, village_name, town_code, "
                      "town_name, first_call_ms, last_call_ms, calls, state, first_contact_ms, "
                      "resident_id, note FROM careline_followup_mark($1::bigint, $2, "
                      "$3::bigint, $4, $5, $6, $7)",
                      7, params, mark_done, op);
    } else {
        snprintf(after, sizeof(after), "%lld", (long long)op->after);
        snprintf(limit, sizeof(limit), "%u", op->limit + 1);
        const char *params[] = {env->cfg->county_code,          st,    op->village, op->town,
                                followup_state_name(op->state), after, limit};
        ok = pg_query(env->pg,
                      "SELECT id, phone_masked, village_code, village_name, town_code, "
                      "town_name, first_call_ms, last_call_ms, calls, state, first_contact_ms, "
                      "resident_id, note FROM careline_followup_list($1, $2::bigint, $3, $4, "
                      "$5, $6::bigint, $7::int)",
                      7, params, list_done, op);
    }
    if (!ok)
        followup_op_fail(op, FUERR(OVERLOADED), NULL,
                         "too many queries waiting for the database; retry shortly");
}
