/*
 * station_status: the StationStatus handler. A station's own console opens or closes the
 * station and sets its caregivers on duty (sql/011 careline_station_status, which hands back
 * the offers a close sends on), and says how many meals it can still serve per slot and day
 * (lua/caplim.lua in Redis). The ack waits for both stores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cal.h"
#include "common/log.h"
#include "core/station_int.h"
#include "store/pgcols.h"

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

/* careline_station_status's columns (sql/011): the offers a close sent on. */
enum { X_REQUEST_ID, X_ATTEMPT, X_N };
static const char *const sent_on_cols[X_N] = {"request_id", "attempt"};

static void status_pg_done(PGresult *res, const char *err, void *arg)
{
    StatusOp *op = arg;
    Stations *st = op->st;
    op->pg_done = true;
    PgCols pc = {0};
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("station %lld: status not saved: %s", (long long)op->c->station_id,
                 PG_ERRLINE(res, err));
        op->failed = true;
    } else if (!pgcols_bind(&pc, res, sent_on_cols, X_N)) {
        log_error("station %lld: careline_station_status returned no column \"%s\"; its "
                  "offers sent on were not released (is the schema older than this daemon?)",
                  (long long)op->c->station_id, pc.missing);
        op->failed = true;
    } else {
        for (int i = 0; i < PQntuples(res); i++) {
            int64_t req = pgcols_ll(&pc, i, X_REQUEST_ID);
            dispatch_release(st->dispatch, req, pgcols_int(&pc, i, X_ATTEMPT), "rejected");
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

void status_handle(void *arg, Conn *c, Envelope *env)
{
    const Careline__V1__StationStatus *m = env->station_status;
    Stations *st = arg;
    if (c->role != CARELINE__V1__ROLE__ROLE_STATION) {
        conn_send_error(c, env->seq, S(ERROR_CODE__FORBIDDEN), false,
                        "StationStatus is sent from a station's own console");
        goto done;
    }
    if (m->caregivers_on_duty < 0 || m->caregivers_on_duty > 10000) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "caregivers_on_duty",
                              "caregivers_on_duty %d is out of range 0..10000",
                              (int)m->caregivers_on_duty);
        goto done;
    }
    CalDay today = cal_day_of(util_wall_ms(), NULL), days[16];
    if (m->n_capacity > ARRAY_LEN(days)) {
        conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), "capacity",
                              "capacity has %zu entries; at most %zu are allowed", m->n_capacity,
                              ARRAY_LEN(days));
        goto done;
    }
    for (size_t i = 0; i < m->n_capacity; i++) {
        const Careline__V1__SlotCapacity *sc = m->capacity[i];
        char field[48];
        snprintf(field, sizeof(field), "capacity[%zu].slot", i);
        if (sc->slot != S(MEAL_SLOT__LUNCH) && sc->slot != S(MEAL_SLOT__DINNER)) {
            conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), field,
                                  "%s must be LUNCH or DINNER", field);
            goto done;
        }
        snprintf(field, sizeof(field), "capacity[%zu].service_date", i);
        days[i] = today;
        CalParse cp = sc->service_date[0] ? cal_parse_checked(sc->service_date, &days[i]) : CAL_OK;
        if (cp == CAL_MALFORMED || cp == CAL_NO_SUCH_DAY) {
            conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), field,
                                  "%s '%.20s' is not a date (YYYY-MM-DD)", field, sc->service_date);
            goto done;
        }
        if (cp == CAL_OUT_OF_RANGE || days[i] < today) {
            conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), field,
                                  "%s %s is out of range: capacity is set from today on", field,
                                  sc->service_date);
            goto done;
        }
        if (sc->capacity_left < 0 || sc->capacity_left > 100000) {
            snprintf(field, sizeof(field), "capacity[%zu].capacity_left", i);
            conn_send_field_error(c, env->seq, S(ERROR_CODE__INVALID_ARGUMENT), field,
                                  "%s %d is out of range 0..100000", field, (int)sc->capacity_left);
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
        char day[11], used[96], lim[96], gen[64], left[16], exp[24];
        cal_format(days[i], day);
        const char *slot = m->capacity[i]->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch";
        keys_capacity(&st->env->keys, c->station_id, day, slot, used, sizeof(used));
        keys_limit(&st->env->keys, c->station_id, day, slot, lim, sizeof(lim));
        keys_generation(&st->env->keys, gen, sizeof(gen));
        snprintf(left, sizeof(left), "%d", m->capacity[i]->capacity_left);
        snprintf(exp, sizeof(exp), "%lld", (long long)(cal_unix_ms(days[i] + 2, 0) / 1000));
        const char *args[] = {used, lim, gen, left, exp};
        size_t lens[] = {strlen(used), strlen(lim), strlen(gen), strlen(left), strlen(exp)};
        if (rds_eval(st->env->rds, st->caplim, cap_done, op, 3, 2, args, lens))
            op->pending++;
        else
            op->failed = true;
    }
    if (m->capacity_only) { /* open state and staff stay as they were */
        const DirSnap *snap = dir_snap(dispatch_directory(st->dispatch));
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
