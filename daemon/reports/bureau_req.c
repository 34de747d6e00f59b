/*
 * bureau_req: the request both doors share — its life (an arena that everything its report
 * points to lives in, so one free releases the lot; the Conn ref or the HTTP connection it
 * follows) and the validation of its fields, the same for a CoverageQuery and a query
 * string, so both doors refuse the same inputs with the same field names.
 */
#include "reports/bureau_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dispatch.h"

#define HISTORY_DEFAULT_DAYS 30

Req *bureau_req_new(Bureau *b, OutKind out)
{
    Req *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->out = out;
    r->covered = -1;
    r->tgt_cov = 0.95, r->tgt_term = 0.55, r->tgt_cert = 32;
    careline__v1__coverage_report__init(&r->rep);
    return r;
}

void *bureau_req_alloc(Req *r, size_t size)
{
    Arena *a = &r->ar;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->p = xrealloc(a->p, a->cap * sizeof(*a->p));
    }
    void *m = xcalloc(1, size ? size : 1);
    a->p[a->n++] = m;
    return m;
}

char *bureau_req_str(Req *r, const char *s)
{
    size_t n = strlen(s);
    char *d = bureau_req_alloc(r, n + 1);
    memcpy(d, s, n);
    return d;
}

static void http_conn_closed_cb(void *arg)
{
    Req *r = arg;
    r->hreq = NULL; /* evhttp frees the request with its connection */
}

void bureau_req_watch_http(Req *r, struct evhttp_request *hreq)
{
    r->hreq = hreq;
    http_watch_close(r->b->env->http, hreq, http_conn_closed_cb, r);
}

struct evhttp_request *bureau_req_take_http(Req *r)
{
    struct evhttp_request *h = r->hreq;
    if (h)
        http_watch_close(r->b->env->http, h, NULL, NULL);
    r->hreq = NULL;
    return h;
}

void bureau_req_free(Req *r)
{
    bureau_req_take_http(r);
    if (r->c) {
        conn_inflight_end(r->c);
        conn_unref(r->c);
    }
    free(r->term);
    for (size_t i = 0; i < r->ar.n; i++)
        free(r->ar.p[i]);
    free(r->ar.p);
    free(r);
}

CalDay bureau_today(void)
{
    int minute;
    return cal_day_of(util_wall_ms(), &minute);
}

void bureau_now_iso(char *out, size_t n)
{
    int64_t ms = util_wall_ms();
    int minute;
    CalDay d = cal_day_of(ms, &minute);
    char day[11];
    cal_format(d, day);
    int sec = (int)((ms / 1000) % 60);
    snprintf(out, n, "%sT%02d:%02d:%02d+08:00", day, minute / 60, minute % 60, sec);
}

/* ---- validation (both doors) ------------------------------------------------------------ */

/* A date field (label: its name in sentences, the same at both doors); false after the
 * error reply. */
static bool parse_date(Req *r, const char *field, const char *label, const char *s, CalDay *out)
{
    switch (cal_parse_checked(s, out)) {
    case CAL_OK:
        return true;
    case CAL_OUT_OF_RANGE:
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), field,
                        "%s %s is out of range (years 1900..2999)", label, s);
        return false;
    default:
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), field, "%s '%.20s' is not a date YYYY-MM-DD",
                        label, s);
        return false;
    }
}

static bool check_town(Req *r, const DirSnap *snap)
{
    const char *county = r->b->env->cfg->county_code;
    if (r->scope == SCOPE(SNAPSHOT)) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                        "snapshots are written for the whole county; leave the town out");
        return false;
    }
    if (strlen(r->town) != 12 || strspn(r->town, "0123456789") != 12) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                        "town code '%.20s' is not a 12-digit division code", r->town);
        return false;
    }
    if (bureau_town_index(snap, r->town) < 0 || !bureau_in_county(r->town, county)) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                        "unknown town code %s (not a town of county %s)", r->town, county);
        return false;
    }
    return true;
}

/* from/to as given, or their defaults: to = today (or from, if later), from = to (or 30
 * days back for history and unmet demand); then the order and the length of the range. */
static bool check_range(Req *r, const char *from_s, const char *to_s, CalDay now)
{
    bool has_from = from_s && from_s[0], has_to = to_s && to_s[0];
    if (has_from && !parse_date(r, "from_date", "from", from_s, &r->from))
        return false;
    if (has_to && !parse_date(r, "to_date", "to", to_s, &r->to))
        return false;
    if (!has_to)
        r->to = has_from && r->from > now ? r->from : now;
    if (!has_from)
        r->from = r->scope == SCOPE(HISTORY) || r->scope == SCOPE(UNMET)
                      ? r->to - (HISTORY_DEFAULT_DAYS - 1)
                      : r->to;
    if (r->from > r->to) {
        char a[11], b[11];
        cal_format(r->from, a);
        cal_format(r->to, b);
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "from_date", "from %s is after to %s", a, b);
        return false;
    }
    if (r->to - r->from + 1 > BUREAU_MAX_RANGE_DAYS) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "to_date",
                        "the range spans %d days; at most %d are allowed",
                        (int)(r->to - r->from + 1), BUREAU_MAX_RANGE_DAYS);
        return false;
    }
    return true;
}

bool bureau_req_check(Req *r, const char *from_s, const char *to_s, const char *day_s)
{
    return bureau_req_check_at(r, dir_snap(dispatch_directory(r->b->dispatch)), bureau_today(),
                               from_s, to_s, day_s);
}

bool bureau_req_check_at(Req *r, const DirSnap *snap, CalDay now, const char *from_s,
                         const char *to_s, const char *day_s)
{
    if (r->scope < SCOPE(COUNTY) || r->scope > SCOPE(UNMET)) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "scope", "scope %d is not a coverage scope",
                        (int)r->scope);
        return false;
    }
    if (!snap) {
        bureau_req_fail(r, ERRC(UNAVAILABLE), NULL,
                        "the station directory is not loaded yet; retry shortly");
        return false;
    }
    if (r->town[0] && !check_town(r, snap))
        return false;
    if (!check_range(r, from_s, to_s, now))
        return false;
    if (r->target != 0 && !(r->target > 0 && r->target <= 1)) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "target",
                        "target %g is outside (0, 1] (a share of villages, e.g. 0.95)", r->target);
        return false;
    }
    r->day = now;
    if (day_s && day_s[0]) {
        if (!parse_date(r, "day", "day", day_s, &r->day))
            return false;
        if (r->day > now || now - r->day >= BUREAU_MAX_RANGE_DAYS) {
            bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "day",
                            "day %s is out of range: a snapshot may be dated today or up to %d "
                            "days back",
                            day_s, BUREAU_MAX_RANGE_DAYS - 1);
            return false;
        }
    }
    return true;
}
