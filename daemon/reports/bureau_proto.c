/*
 * bureau_proto: the protocol door. A CoverageQuery frame (the session already checked that
 * the role may send it) becomes a Req holding a ref on its Conn and counted in flight; the
 * frame is freed once its strings are copied, then the Req is checked and started.
 */
#include "reports/bureau_int.h"

#include <stdio.h>
#include <string.h>

#include "net/session.h"

Req *bureau_proto_accept(Bureau *b, Conn *c, Envelope *env, const DirSnap *snap, CalDay now)
{
    const Careline__V1__CoverageQuery *q = env->coverage_query;
    Req *r = bureau_req_new(b, OUT_PROTO);
    r->c = c;
    r->seq = env->seq;
    conn_ref(c);
    conn_inflight_begin(c);
    r->scope = q->scope;
    snprintf(r->town, sizeof(r->town), "%s", q->town_code ? q->town_code : "");
    bool bad_town = q->town_code && strlen(q->town_code) >= sizeof(r->town);
    r->target = q->target;
    if (q->uncovered_only && q->covered_only) {
        frame_free(env);
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "covered_only",
                        "uncovered_only and covered_only exclude each other");
        return NULL;
    }
    r->covered = q->uncovered_only ? 0 : q->covered_only ? 1 : -1;
    char from[16], to[16], day[16];
    snprintf(from, sizeof(from), "%s", q->from_date ? q->from_date : "");
    snprintf(to, sizeof(to), "%s", q->to_date ? q->to_date : "");
    snprintf(day, sizeof(day), "%s", q->day ? q->day : "");
    frame_free(env);
    if (bad_town) {
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "town_code", "town code is not a 12-digit code");
        return NULL;
    }
    return bureau_req_check_at(r, snap, now, from, to, day) ? r : NULL;
}

static void handle_query(void *arg, Conn *c, Envelope *env)
{
    Bureau *b = arg;
    Req *r =
        bureau_proto_accept(b, c, env, dir_snap(dispatch_directory(b->dispatch)), bureau_today());
    if (r)
        bureau_req_start(r);
}

void bureau_proto_install(Bureau *b)
{
    session_route(b->env->sessions, CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY, handle_query, b);
}
