/*
 * match: the spatial index finds stations within the circle's radius in km (the
 * resident's area kind turns minutes into km, and minutes grow with km, so nearest by km
 * is nearest by time); stations that list the village explicitly are merged in; the
 * union is sorted by (minutes, id).
 */
#include "core/match.h"

#include <stdlib.h>

typedef struct {
    const DirSnap *s;
    const MatchQuery *q;
} EligArg;

int match_capacity(const Station *st, const MatchQuery *q)
{
    switch (q->service) {
    case MATCH_MEAL_LUNCH:
        return st->meal ? st->cap_lunch : 0;
    case MATCH_MEAL_DINNER:
        return st->meal ? st->cap_dinner : 0;
    case MATCH_CARE: {
        int staff =
            st->caregivers_on_duty >= 0 && q->today ? st->caregivers_on_duty : st->caregivers;
        return st->care ? staff * q->care_visits_per_caregiver : 0;
    }
    }
    return 0;
}

bool match_station_ok(const Station *st, const MatchQuery *q)
{
    if (!st->active)
        return false;
    if (q->service == MATCH_CARE) {
        if (!st->care || !(st->care_subtypes & (1u << q->care_subtype)))
            return false;
    } else if (!st->meal) {
        return false;
    }
    if (q->weekday < 1 || q->weekday > 7 || !(st->open_days & (1 << (q->weekday - 1))))
        return false;
    if (st->opens_min > q->start_min || st->closes_min < q->end_min)
        return false;
    if (q->today && !st->is_open)
        return false;
    return match_capacity(st, q) > 0;
}

static bool eligible_cb(const StStation *sst, void *arg)
{
    const EligArg *a = arg;
    return match_station_ok(&a->s->stations[sst->user], a->q);
}

static int cand_cmp(const void *x, const void *y)
{
    const MatchCand *a = x, *b = y;
    if (a->minutes != b->minutes)
        return a->minutes < b->minutes ? -1 : 1;
    return (a->station_id > b->station_id) - (a->station_id < b->station_id);
}

size_t match_find(const DirSnap *s, const TravelModel *m, const MatchQuery *q, MatchCand *out,
                  size_t max)
{
    if (max == 0 || !s->index)
        return 0;
    EligArg arg = {s, q};
    double max_km = geo_km_for_minutes(m, q->area, m->circle_min);
    StHit hits[64];
    size_t cap = max < ARRAY_LEN(hits) ? max : ARRAY_LEN(hits);
    size_t nh = stindex_nearest(s->index, q->lat, q->lon, max_km, eligible_cb, &arg, hits, cap);
    size_t n = 0;
    for (size_t i = 0; i < nh; i++) {
        const Station *st = &s->stations[hits[i].st->user];
        double min = geo_minutes(m, q->area, hits[i].km);
        if (min > m->circle_min)
            continue; /* the km bound carries a rounding margin; minutes decide */
        out[n++] = (MatchCand){st->id, hits[i].km, min, match_capacity(st, q), false};
    }
    /* explicit service areas reach beyond the circle */
    if (q->village >= 0 && q->village < s->nvillages) {
        const Village *v = &s->villages[q->village];
        for (int i = 0; i < v->n_area; i++) {
            const Station *st = dir_station(s, s->area_stations[v->first_area + i]);
            if (!st || !match_station_ok(st, q))
                continue;
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++)
                dup = out[k].station_id == st->id;
            if (dup)
                continue;
            double km = geo_km(q->lat, q->lon, st->lat, st->lon);
            MatchCand c = {st->id, km, geo_minutes(m, q->area, km), match_capacity(st, q), true};
            if (n < max) {
                out[n++] = c;
            } else if (cand_cmp(&c, &out[n - 1]) < 0) {
                out[n - 1] = c; /* sorted below; the farthest in-circle one drops out */
            }
            qsort(out, n, sizeof(*out), cand_cmp);
        }
    }
    qsort(out, n, sizeof(*out), cand_cmp);
    return n;
}
