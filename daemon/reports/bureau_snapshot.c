/*
 * bureau_snapshot: the daily coverage snapshot — the rows (county first, then each town,
 * with their indicators as JSON) that bureau_sql.c upserts into coverage_snapshots, and the
 * timer that writes them every day at BUREAU_SNAPSHOT_MINUTE local time. While the
 * directory or the database is not ready the timer retries a minute later instead.
 */
#include "reports/bureau_int.h"

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "core/dispatch.h"

#define RETRY_SNAPSHOT_MS 60000 /* daily snapshot while the directory is not loaded yet */

static json_t *snapshot_row(const char *scope, const CovTally *t, const Extra *e, const Req *r)
{
    json_t *ind = json_object();
    json_object_set_new(ind, "approx_villages", json_integer((json_int_t)t->approx));
    const struct {
        const char *k;
        double v, target;
    } x[] = {{"terminal_share", e->terminal, r->tgt_term},
             {"terminal_equipped_share", e->terminal_equipped, r->tgt_term},
             {"certified_per_10k", e->certified, r->tgt_cert}};
    for (size_t i = 0; i < ARRAY_LEN(x); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "value", json_real(x[i].v));
        json_object_set_new(o, "target", json_real(x[i].target));
        json_object_set_new(o, "met", json_boolean(x[i].v >= x[i].target));
        json_object_set_new(ind, x[i].k, o);
    }
    json_object_set_new(ind, "village_stations", json_integer(e->stations));
    json_t *row = json_object();
    json_object_set_new(row, "scope", json_string(scope));
    json_object_set_new(row, "villages", json_integer((json_int_t)t->villages));
    json_object_set_new(row, "villages_covered", json_integer((json_int_t)t->covered));
    json_object_set_new(row, "rate", json_real(t->rate));
    json_object_set_new(row, "elderly", json_integer((json_int_t)t->elderly));
    json_object_set_new(row, "elderly_covered", json_integer((json_int_t)t->elderly_covered));
    json_object_set_new(row, "rate_elderly", json_real(t->rate_elderly));
    json_object_set_new(row, "indicators", ind);
    return row;
}

char *bureau_snapshot_rows(const Req *r, const DirSnap *snap, const char *county,
                           const CovReport *cov)
{
    json_t *rows = json_array();
    Extra e = bureau_extra_of(r, snap, county, -1, &cov->county);
    json_array_append_new(rows, snapshot_row("county", &cov->county, &e, r));
    for (int t = 0; t < snap->ntowns; t++) {
        if (!bureau_in_county(snap->towns[t].code, county))
            continue;
        e = bureau_extra_of(r, snap, county, t, &cov->town[t]);
        json_array_append_new(rows, snapshot_row(snap->towns[t].code, &cov->town[t], &e, r));
    }
    char *json = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    ASSERT(json);
    return json;
}

/* ---- the daily timer -------------------------------------------------------------------- */

static int64_t ms_to_next_snapshot(void)
{
    int64_t now = util_wall_ms();
    int minute;
    CalDay d = cal_day_of(now, &minute);
    int64_t due = cal_unix_ms(d, BUREAU_SNAPSHOT_MINUTE);
    if (due <= now + 500)
        due = cal_unix_ms(d + 1, BUREAU_SNAPSHOT_MINUTE);
    return due - now;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Bureau *b = arg;
    if (b->env->stopping)
        return;
    if (!dispatch_ready(b->dispatch) || !pg_pool_ready(b->env->pg)) {
        log_warn("bureau: daily snapshot postponed: directory or database not ready");
        util_timer_ms(b->timer, RETRY_SNAPSHOT_MS);
        return;
    }
    Req *r = bureau_req_new(b, OUT_NONE);
    r->scope = SCOPE(SNAPSHOT);
    r->day = r->from = r->to = bureau_today();
    bureau_req_start(r);
    util_timer_ms(b->timer, ms_to_next_snapshot());
}

void bureau_snapshot_schedule(Bureau *b)
{
    b->timer = evtimer_new(b->env->base, timer_cb, b);
    util_timer_ms(b->timer, ms_to_next_snapshot());
}
