/*
 * bureau_sql: every statement of the bureau, asynchronous on the pool — the targets from
 * settings with the terminal figures of careline_terminal_stations(), the stored snapshots
 * (history), careline_realized(), careline_unmet_demand(), and the snapshot upsert. Result columns
 * are read by name (store/pgcols.h): a column missing from a result is logged and answered as
 * INTERNAL.
 */
#include "reports/bureau_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch.h"
#include "store/pgcols.h"

/* false (r answered) unless res is a result of the wanted status. */
static bool sql_ok(Req *r, PGresult *res, const char *err, ExecStatusType want, const char *what)
{
    if (!res) {
        bureau_req_fail(r, ERRC(UNAVAILABLE), NULL, "%s: %s", what,
                        err ? err : "database unreachable");
        return false;
    }
    if (PQresultStatus(res) != want) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s", PG_ERRLINE(res, NULL));
        msg[strcspn(msg, "\n")] = '\0';
        log_error("bureau: %s failed: %s", what, msg);
        bureau_req_fail(r, ERRC(INTERNAL), NULL, "%s failed (see the daemon log)", what);
        return false;
    }
    return true;
}

/* false (r answered) unless res holds rows with every column of names, bound into pc. */
static bool sql_rows(Req *r, PGresult *res, const char *err, const char *what, PgCols *pc,
                     const char *const *names, size_t n)
{
    if (!sql_ok(r, res, err, PGRES_TUPLES_OK, what))
        return false;
    if (!pgcols_bind(pc, res, names, n)) {
        log_error("bureau: %s failed: the result has no column \"%s\"", what, pc->missing);
        bureau_req_fail(r, ERRC(INTERNAL), NULL, "%s failed (see the daemon log)", what);
        return false;
    }
    return true;
}

static void overloaded(Req *r)
{
    bureau_req_fail(r, ERRC(OVERLOADED), NULL, "too many queries waiting for the database");
}

/* ---- targets and terminal figures ------------------------------------------------------- */

/* One statement for both: a UNION takes its column names from its first branch, so a town's
 * rows carry its code under "key" and its village stations under "value". */
#define TARGETS_SQL                                                                                \
    "SELECT key, value, NULL AS with_session, NULL AS equipped FROM settings WHERE key IN "        \
    "('target_meal_village_coverage', 'target_terminal_share', "                                   \
    "'target_certified_per_10k') "                                                                 \
    "UNION ALL SELECT town_code, stations::text, with_session::text, "                             \
    "equipped::text FROM careline_terminal_stations($1::date, $2::date)"

enum { T_KEY, T_VALUE, T_WITH_SESSION, T_EQUIPPED, T_N };
static const char *const targets_cols[T_N] = {"key", "value", "with_session", "equipped"};

static void targets_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    PgCols pc = {0};
    if (!sql_rows(r, res, err, "reading targets and terminal sessions", &pc, targets_cols, T_N))
        return;
    int n = PQntuples(res);
    r->term = xcalloc((size_t)n + 1, sizeof(*r->term));
    for (int i = 0; i < n; i++) {
        const char *key = pgcols_str(&pc, i, T_KEY);
        if (strcmp(key, "target_meal_village_coverage") == 0)
            r->tgt_cov = pgcols_double(&pc, i, T_VALUE);
        else if (strcmp(key, "target_terminal_share") == 0)
            r->tgt_term = pgcols_double(&pc, i, T_VALUE);
        else if (strcmp(key, "target_certified_per_10k") == 0)
            r->tgt_cert = pgcols_double(&pc, i, T_VALUE);
        else if (strncmp(key, "target_", 7) != 0) {
            TermRow *w = &r->term[r->nterm++];
            snprintf(w->town, sizeof(w->town), "%s", key);
            w->stations = pgcols_ll(&pc, i, T_VALUE);
            w->with_session = pgcols_ll(&pc, i, T_WITH_SESSION);
            w->equipped = pgcols_ll(&pc, i, T_EQUIPPED);
        }
    }
    if (!(r->tgt_cov > 0 && r->tgt_cov <= 1))
        r->tgt_cov = 0.95; /* a broken setting must not break the report */
    bureau_req_compute(r);
}

/* ---- history ---------------------------------------------------------------------------- */

enum {
    H_DAY,
    H_SCOPE,
    H_VILLAGES,
    H_VILLAGES_COVERED,
    H_RATE,
    H_ELDERLY,
    H_ELDERLY_COVERED,
    H_RATE_ELDERLY,
    H_TARGET,
    H_INPUTS_VERSION,
    H_APPROX_VILLAGES,
    H_N
};
static const char *const history_cols[H_N] = {
    "day",    "scope",          "villages",        "villages_covered",
    "rate",   "elderly",        "elderly_covered", "rate_elderly",
    "target", "inputs_version", "approx_villages"};

static void history_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    PgCols pc = {0};
    if (!sql_rows(r, res, err, "reading coverage snapshots", &pc, history_cols, H_N))
        return;
    Report *rep = &r->rep;
    int n = PQntuples(res);
    rep->history = bureau_req_alloc(r, ((size_t)n + 1) * sizeof(*rep->history));
    for (int i = 0; i < n; i++) {
        Careline__V1__CoverageSnapshot *h = bureau_req_alloc(r, sizeof(*h));
        careline__v1__coverage_snapshot__init(h);
        h->day = bureau_req_str(r, pgcols_str(&pc, i, H_DAY));
        h->scope = bureau_req_str(r, pgcols_str(&pc, i, H_SCOPE));
        CovTally t = {0};
        t.villages = strtoul(pgcols_str(&pc, i, H_VILLAGES), NULL, 10);
        t.covered = strtoul(pgcols_str(&pc, i, H_VILLAGES_COVERED), NULL, 10);
        t.rate = pgcols_double(&pc, i, H_RATE);
        t.elderly = strtoull(pgcols_str(&pc, i, H_ELDERLY), NULL, 10);
        t.elderly_covered = strtoull(pgcols_str(&pc, i, H_ELDERLY_COVERED), NULL, 10);
        t.rate_elderly = pgcols_double(&pc, i, H_RATE_ELDERLY);
        t.approx = strtoul(pgcols_str(&pc, i, H_APPROX_VILLAGES), NULL, 10);
        h->figure = bureau_figure_new(r, &t);
        h->target = pgcols_double(&pc, i, H_TARGET);
        h->inputs_version = bureau_req_str(r, pgcols_str(&pc, i, H_INPUTS_VERSION));
        rep->history[rep->n_history++] = h;
        rep->target = h->target;
    }
    bureau_req_reply(r);
}

/* ---- realized figures ------------------------------------------------------------------- */

/* careline_realized()'s declared output columns (sql/functions/bureau.sql). */
enum {
    R_SCOPE,
    R_KEY,
    R_NAME,
    R_KIND,
    R_RECEIVED, /* R_RECEIVED..R_FAILED: the counts, in the order of cnt[] below */
    R_QUEUED,
    R_DELIVERED,
    R_ON_TIME,
    R_REJECTED,
    R_WAITLISTED,
    R_DEAD_LETTERED,
    R_NOT_REGISTERED,
    R_CANCELLED,
    R_FAILED,
    R_MEDIAN_MINUTES,
    R_P90_MINUTES,
    R_N
};
static const char *const realized_cols[R_N] = {
    "scope",     "key",     "name",           "kind",       "received",      "queued",
    "delivered", "on_time", "rejected",       "waitlisted", "dead_lettered", "not_registered",
    "cancelled", "failed",  "median_minutes", "p90_minutes"};

static void realized_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    PgCols pc = {0};
    if (!sql_rows(r, res, err, "reading realized figures", &pc, realized_cols, R_N))
        return;
    Report *rep = &r->rep;
    int n = PQntuples(res);
    rep->realized = bureau_req_alloc(r, ((size_t)n + 1) * sizeof(*rep->realized));
    for (int i = 0; i < n; i++) {
        Careline__V1__RealizedRow *w = bureau_req_alloc(r, sizeof(*w));
        careline__v1__realized_row__init(w);
        w->scope = bureau_req_str(r, pgcols_str(&pc, i, R_SCOPE));
        w->key = bureau_req_str(r, pgcols_str(&pc, i, R_KEY));
        w->name = bureau_req_str(r, pgcols_str(&pc, i, R_NAME));
        w->kind = bureau_req_str(r, pgcols_str(&pc, i, R_KIND));
        uint32_t *cnt[] = {&w->received,  &w->queued,     &w->delivered,     &w->on_time,
                           &w->rejected,  &w->waitlisted, &w->dead_lettered, &w->not_registered,
                           &w->cancelled, &w->failed};
        for (size_t j = 0; j < ARRAY_LEN(cnt); j++)
            *cnt[j] = (uint32_t)strtoul(pgcols_str(&pc, i, R_RECEIVED + (int)j), NULL, 10);
        w->median_minutes =
            pgcols_null(&pc, i, R_MEDIAN_MINUTES) ? -1 : pgcols_double(&pc, i, R_MEDIAN_MINUTES);
        w->p90_minutes =
            pgcols_null(&pc, i, R_P90_MINUTES) ? -1 : pgcols_double(&pc, i, R_P90_MINUTES);
        rep->realized[rep->n_realized++] = w;
    }
    bureau_req_reply(r);
}

/* ---- unmet demand ----------------------------------------------------------------------- */

/* careline_unmet_demand()'s declared output columns (sql/functions/bureau.sql). */
enum {
    U_SCOPE,
    U_KEY,
    U_NAME,
    U_FOLLOWUPS, /* U_FOLLOWUPS..U_REGISTERED_RESIDENTS: the counts, in the order of cnt[] */
    U_OPEN,
    U_CONTACTED,
    U_REGISTERED,
    U_DECLINED,
    U_CALLS,
    U_REGISTERED_RESIDENTS,
    U_MEDIAN_HOURS,
    U_N
};
static const char *const unmet_cols[U_N] = {"scope",
                                            "key",
                                            "name",
                                            "followups",
                                            "open",
                                            "contacted",
                                            "registered",
                                            "declined",
                                            "calls",
                                            "registered_residents",
                                            "median_hours_to_contact"};

static void unmet_done(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    PgCols pc = {0};
    if (!sql_rows(r, res, err, "reading unmet demand", &pc, unmet_cols, U_N))
        return;
    Report *rep = &r->rep;
    int n = PQntuples(res);
    rep->unmet = bureau_req_alloc(r, ((size_t)n + 1) * sizeof(*rep->unmet));
    for (int i = 0; i < n; i++) {
        Careline__V1__UnmetRow *w = bureau_req_alloc(r, sizeof(*w));
        careline__v1__unmet_row__init(w);
        w->scope = bureau_req_str(r, pgcols_str(&pc, i, U_SCOPE));
        w->key = bureau_req_str(r, pgcols_str(&pc, i, U_KEY));
        w->name = bureau_req_str(r, pgcols_str(&pc, i, U_NAME));
        uint32_t *cnt[] = {&w->followups, &w->open,  &w->contacted,           &w->registered,
                           &w->declined,  &w->calls, &w->registered_residents};
        for (size_t j = 0; j < ARRAY_LEN(cnt); j++)
            *cnt[j] = (uint32_t)strtoul(pgcols_str(&pc, i, U_FOLLOWUPS + (int)j), NULL, 10);
        w->median_hours_to_contact =
            pgcols_null(&pc, i, U_MEDIAN_HOURS) ? -1 : pgcols_double(&pc, i, U_MEDIAN_HOURS);
        rep->unmet[rep->n_unmet++] = w;
    }
    bureau_req_reply(r);
}

/* ---- the first step of a request -------------------------------------------------------- */

void bureau_req_start(Req *r)
{
    const Bureau *s = r->b;
    char d1[11], d2[11];
    cal_format(r->from, d1);
    cal_format(r->to, d2);
    Report *rep = &r->rep;
    bool ok;
    if (r->scope == SCOPE(HISTORY) || r->scope == SCOPE(REALIZED) || r->scope == SCOPE(UNMET)) {
        rep->from_date = bureau_req_str(r, d1);
        rep->to_date = bureau_req_str(r, d2);
        rep->scope_code = bureau_req_str(r, r->town[0] ? r->town : s->env->cfg->county_code);
        char ts[64];
        bureau_now_iso(ts, sizeof(ts));
        rep->as_of = bureau_req_str(r, ts);
        rep->service_circle_minutes = (uint32_t)lround(dispatch_model(s->dispatch)->circle_min);
    }
    if (r->scope == SCOPE(HISTORY)) {
        const char *params[] = {d1, d2, r->town[0] ? r->town : "county"};
        ok = pg_query(s->env->pg,
                      "SELECT day::text AS day, scope, villages, villages_covered, rate, "
                      "elderly, elderly_covered, rate_elderly, target, inputs_version, "
                      "coalesce((indicators->>'approx_villages')::int, 0) AS approx_villages "
                      "FROM coverage_snapshots WHERE day BETWEEN $1::date AND $2::date "
                      "AND scope = $3 ORDER BY day",
                      3, params, history_done, r);
    } else if (r->scope == SCOPE(REALIZED)) {
        const char *params[] = {d1, d2, r->town[0] ? r->town : s->env->cfg->county_code};
        ok = pg_query(s->env->pg,
                      "SELECT scope, key, name, kind, received, queued, delivered, on_time, "
                      "rejected, waitlisted, dead_lettered, not_registered, cancelled, failed, "
                      "median_minutes, p90_minutes "
                      "FROM careline_realized($1::date, $2::date, $3)",
                      3, params, realized_done, r);
    } else if (r->scope == SCOPE(UNMET)) {
        const char *params[] = {d1, d2, r->town[0] ? r->town : s->env->cfg->county_code};
        ok = pg_query(s->env->pg,
                      "SELECT scope, key, name, followups, open, contacted, registered, "
                      "declined, calls, registered_residents, median_hours_to_contact "
                      "FROM careline_unmet_demand($1::date, $2::date, $3)",
                      3, params, unmet_done, r);
    } else {
        if (r->scope == SCOPE(SNAPSHOT)) {
            cal_format(r->day, d1);
            cal_format(r->day, d2);
        }
        const char *params[] = {d1, d2};
        ok = pg_query(s->env->pg, TARGETS_SQL, 2, params, targets_done, r);
    }
    if (!ok)
        overloaded(r);
}

/* ---- the snapshot upsert ---------------------------------------------------------------- */

static void snapshot_written(PGresult *res, const char *err, void *arg)
{
    Req *r = arg;
    if (!sql_ok(r, res, err, PGRES_COMMAND_OK, "writing the coverage snapshot"))
        return;
    log_info("bureau: coverage snapshot for %s written (%s rows; county %u/%u villages)",
             r->rep.snapshot_day, PQcmdTuples(res), r->rep.county->villages_covered,
             r->rep.county->villages);
    bureau_req_reply(r);
}

void bureau_sql_write_snapshot(Req *r, const char *rows_json)
{
    char target[32], circle[16];
    snprintf(target, sizeof(target), "%.17g", r->tgt_cov);
    snprintf(circle, sizeof(circle), "%u", r->rep.service_circle_minutes);
    const char *params[] = {r->rep.snapshot_day, target, circle, r->rep.inputs_version, rows_json};
    bool ok = pg_query(
        r->b->env->pg,
        "INSERT INTO coverage_snapshots AS c (day, scope, villages, villages_covered, rate, "
        "elderly, elderly_covered, rate_elderly, target, service_circle_minutes, "
        "inputs_version, indicators) "
        "SELECT $1::date, x.scope, x.villages, x.villages_covered, x.rate, x.elderly, "
        "x.elderly_covered, x.rate_elderly, $2::double precision, $3::int, $4, x.indicators "
        "FROM jsonb_to_recordset($5::jsonb) AS x(scope text, villages int, "
        "villages_covered int, rate double precision, elderly bigint, elderly_covered bigint, "
        "rate_elderly double precision, indicators jsonb) "
        "ON CONFLICT (day, scope) DO UPDATE SET villages = EXCLUDED.villages, "
        "villages_covered = EXCLUDED.villages_covered, rate = EXCLUDED.rate, "
        "elderly = EXCLUDED.elderly, elderly_covered = EXCLUDED.elderly_covered, "
        "rate_elderly = EXCLUDED.rate_elderly, target = EXCLUDED.target, "
        "service_circle_minutes = EXCLUDED.service_circle_minutes, "
        "inputs_version = EXCLUDED.inputs_version, indicators = EXCLUDED.indicators, "
        "created_at = now()",
        5, params, snapshot_written, r);
    if (!ok)
        overloaded(r);
}
