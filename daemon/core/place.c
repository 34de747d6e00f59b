/*
 * place: where a submission can go. It works out the promised window (the meal slot, or a
 * home-care visit after the lead time), asks the matcher for the nearest eligible stations
 * within the service circle, drops those that already had the request, and hands the rest
 * to the reservation (reserve.c) — or, when none is left, records why: a rejection (none in
 * range, or all closed then) or a dead letter (offered before and nobody else can take it).
 */
#include <stdio.h>

#include "common/log.h"
#include "core/dispatch_int.h"

#define MAX_CANDS 64

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

void sub_place(Sub *s)
{
    Dispatch *d = s->d;
    const Config *cfg = d->env->cfg;
    if (d->stopped) {
        sub_free(s);
        return;
    }
    if (sub_gone(s)) {
        /* nobody waits for it: it takes no capacity (an existing request is the sweep's) */
        d->env->metrics->submit_dropped++;
        sub_free(s);
        return;
    }
    const DirSnap *snap = dir_snap(d->dir);
    if (!snap) {
        sub_unavailable(s, s->fresh ? SUB_NOTHING : SUB_PENDING,
                        "the station directory is still loading");
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
    sub_fault(s, "before_enqueue");
    sub_reserve(s, cands, n);
}
