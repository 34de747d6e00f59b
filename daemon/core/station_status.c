/*
 * station_status: the StationStatus handler. A station's own console opens or closes the
 * station, sets its caregivers on duty and says how many meals it can still serve per slot
 * and day. The word is recorded in PostgreSQL first, in one statement (careline_station_word,
 * sql/functions/station_word.sql: an append-only station_status_events row each, the limit
 * = live jobs now + left, and on a close the offers it sends on), then each limit is applied
 * to Redis (lua/caplim.lua), where reservations read it; a Redis rebuild restores the limits
 * from the record (core/rebuild.c). The ack waits for both; an UNAVAILABLE says what was
 * recorded.
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
    int pending;       /* Redis capacity writes still in flight */
    const char *error; /* what to answer instead of the ack (UNAVAILABLE), NULL = ack */
    unsigned redispatched;
    bool pg_done;
} StatusOp;

static const char NOTHING_RECORDED[] =
    "the status could not be recorded (the database is unavailable): nothing was recorded; "
    "please send it again";
static const char MAYBE_RECORDED[] =
    "the status was sent to be recorded and the database's answer was lost, so it may have "
    "been recorded; sending it again is safe (the latest word counts)";
static const char NOT_APPLIED[] =
    "the status is recorded, but the capacity left could not be applied to the live queues "
    "yet (they are unavailable or being rebuilt); please send it again";

static void status_finish(StatusOp *op)
{
    if (op->pending > 0 || !op->pg_done)
        return;
    Conn *c = op->c;
    if (op->error) {
        conn_send_error(c, op->seq, S(ERROR_CODE__UNAVAILABLE), false, "%s", op->error);
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

static void cap_done(redisReply *r, const char *err, void *arg)
{
    StatusOp *op = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_warn("station %lld: capacity recorded but not applied to Redis: %s",
                 (long long)op->c->station_id, r ? r->str : err);
        op->error = NOT_APPLIED;
    }
    op->pending--;
    status_finish(op);
}

/* Applies one recorded limit to Redis (caplim.lua). */
static void cap_apply(StatusOp *op, const char *day, const char *slot, const char *limit)
{
    Stations *st = op->st;
    char lim[96], gen[64], exp[24];
    CalDay d;
    if (!cal_parse(day, &d))
        d = cal_day_of(util_wall_ms(), NULL);
    keys_limit(&st->env->keys, op->c->station_id, day, slot, lim, sizeof(lim));
    keys_generation(&st->env->keys, gen, sizeof(gen));
    snprintf(exp, sizeof(exp), "%lld", (long long)(cal_unix_ms(d + 2, 0) / 1000));
    const char *args[] = {lim, gen, limit, exp};
    size_t lens[] = {strlen(lim), strlen(gen), strlen(limit), strlen(exp)};
    if (rds_eval(st->env->rds, st->caplim, cap_done, op, 2, 2, args, lens))
        op->pending++;
    else
        op->error = NOT_APPLIED;
}

/* careline_station_word's columns (sql/functions/station_word.sql): a recorded limit per
 * capacity entry, then the offers a close sent on. */
enum { W_DAY, W_SLOT, W_LIMIT, W_REQUEST_ID, W_ATTEMPT, W_N };
static const char *const word_cols[W_N] = {"service_date", "meal_slot", "capacity_limit",
                                           "request_id", "attempt"};

static void status_pg_done(PGresult *res, const char *err, void *arg)
{
    StatusOp *op = arg;
    Stations *st = op->st;
    op->pg_done = true;
    PgCols pc = {0};
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("station %lld: status not recorded: %s", (long long)op->c->station_id,
                 PG_ERRLINE(res, err));
        op->error = !res && pg_pool_cb_sent(st->env->pg) ? MAYBE_RECORDED : NOTHING_RECORDED;
        status_finish(op);
        return;
    }
    if (!pgcols_bind(&pc, res, word_cols, W_N)) {
        log_error("station %lld: careline_station_word returned no column \"%s\"; its limits "
                  "were recorded but not applied (is the schema older than this daemon?)",
                  (long long)op->c->station_id, pc.missing);
        op->error = NOT_APPLIED;
        status_finish(op);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (!pgcols_null(&pc, i, W_LIMIT)) {
            cap_apply(op, pgcols_str(&pc, i, W_DAY), pgcols_str(&pc, i, W_SLOT),
                      pgcols_str(&pc, i, W_LIMIT));
            continue;
        }
        int64_t req = pgcols_ll(&pc, i, W_REQUEST_ID);
        int attempt = pgcols_int(&pc, i, W_ATTEMPT);
        dispatch_release(st->dispatch, req, attempt, "rejected");
        dispatch_redispatch(st->dispatch, req);
        /* the station's consoles drop it: a change on its stream */
        station_withdrawn(st, op->c->station_id, req, attempt, S(JOB_STATE__JOB_REJECTED));
        op->redispatched++;
    }
    if (op->open)
        dispatch_kick(st->dispatch); /* an opened station may take waiting requests */
    status_finish(op);
}

/* "{a,b,c}": a PostgreSQL array literal of validated, comma-free items. */
static void array_add(char *buf, size_t n, const char *item)
{
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "%s%s", len > 1 ? "," : "", item);
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
    if (!pg_pool_available(st->env->pg)) {
        conn_send_error(c, env->seq, S(ERROR_CODE__UNAVAILABLE), false, "%s", NOTHING_RECORDED);
        goto done;
    }
    StatusOp *op = xcalloc(1, sizeof(*op));
    op->st = st;
    op->c = c;
    op->seq = env->seq;
    op->open = m->open;
    if (m->capacity_only) { /* open state and staff stay as they were */
        const DirSnap *snap = dir_snap(dispatch_directory(st->dispatch));
        const Station *me = snap ? dir_station(snap, c->station_id) : NULL;
        op->open = me ? me->is_open : m->open;
    }
    conn_inflight_begin(c);
    conn_ref(c);
    char dlist[16 * 12 + 4] = "{", slist[16 * 8 + 4] = "{", llist[16 * 8 + 4] = "{";
    for (size_t i = 0; i < m->n_capacity; i++) {
        char day[11], left[16];
        cal_format(days[i], day);
        snprintf(left, sizeof(left), "%d", m->capacity[i]->capacity_left);
        array_add(dlist, sizeof(dlist), day);
        array_add(slist, sizeof(slist),
                  m->capacity[i]->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch");
        array_add(llist, sizeof(llist), left);
    }
    strcat(dlist, "}");
    strcat(slist, "}");
    strcat(llist, "}");
    char sid[24], duty[16], actor[48];
    snprintf(sid, sizeof(sid), "%lld", (long long)c->station_id);
    snprintf(duty, sizeof(duty), "%d", m->caregivers_on_duty);
    snprintf(actor, sizeof(actor), "station:%lld", (long long)c->station_id);
    const char *p[] = {
        sid, m->open ? "t" : "f", duty, actor, m->capacity_only ? "t" : "f", dlist, slist, llist};
    if (!pg_query(st->env->pg,
                  "SELECT * FROM careline_station_word($1, $2, $3, $4, $5, $6, $7, $8)", 8, p,
                  status_pg_done, op)) {
        op->error = NOTHING_RECORDED;
        op->pg_done = true;
        status_finish(op);
    }
done:
    frame_free(env);
}
