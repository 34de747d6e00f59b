/*
 * Integration tests of bin/station-console (tests/lib/iconsole.h) against a real dispatchd,
 * PostgreSQL and Redis: how jobs flow through it. Auto mode delivers, with PostgreSQL
 * agreeing; a console rejecting everything sends the request on to the next station; an
 * offer left alone expires and leaves the screen. Fixture areas 60, 65, 66.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "iconsole.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

static Daemon d;

/* --json --auto-accept --complete-after 200 (stdin /dev/null): three meals are shown,
 * accepted, sent en route and delivered; the console exits by itself after the third
 * (--exit-after 3); PostgreSQL agrees, with each request's events in order. */
static void auto_accept_delivers(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 60, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phones[3][16];
    for (int i = 0; i < 3; i++)
        fix_resident(pg, &f, i + 1, i == 0, phones[i]);
    itest_daemon_up(&d, NULL);
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    IconProc k;
    icon_start(&k, &d, false,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), d.proto_port),
                                     "--token", tok, "--json", "--auto-accept", "--complete-after",
                                     "200", "--exit-after", "3", NULL});
    json_t *hello = icon_wait(&k, 10000, "connected", 0, NULL);
    T_EQ_INT(icon_jint(hello, "station_id"), st);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t jobs[3], reqs[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "console-auto-%d", i);
        jobs[i] = icon_submit_meal(&d, gw, fix_key(name), phones[i], st, &reqs[i]);
    }
    icon_wait(&k, 20000, "exit", 0, NULL);
    T_EQ_INT(icon_wait_exit(&k, 5000), 0);
    for (int i = 0; i < 3; i++) {
        /* the offer as pushed, with its fields */
        json_t *offer = NULL;
        size_t x;
        json_t *j;
        json_array_foreach(k.seen, x, j)
        {
            if (strcmp(icon_jstr(j, "event"), "job") == 0 && icon_jint(j, "job_id") == jobs[i] &&
                strcmp(icon_jstr(j, "state"), "offered") == 0) {
                offer = j;
                break;
            }
        }
        if (!offer)
            ICON_FAIL(&k, "job %lld was never shown as offered", (long long)jobs[i]);
        T_EQ_INT(icon_jint(offer, "request_id"), reqs[i]);
        T_EQ_STR(icon_jstr(offer, "kind"), "meal_delivery");
        T_EQ_STR(icon_jstr(offer, "meal_slot"), "lunch");
        T_EQ_STR(icon_jstr(offer, "service_date"), fix_tomorrow());
        T_ASSERT(json_is_null(json_object_get(offer, "care_subtype")));
        T_EQ_STR(icon_jstr(offer, "resident"), "测**");
        T_EQ_STR(icon_jstr(offer, "note"), "少盐 less salt");
        T_ASSERT(icon_jstr(offer, "village")[0] && json_is_real(json_object_get(offer, "lat")));
        T_ASSERT(icon_jint(offer, "window_end_ms") - icon_jint(offer, "window_start_ms") ==
                 90 * 60000);
        T_ASSERT(icon_jint(offer, "offer_expires_at_ms") > 0 && icon_jint(offer, "attempt") == 1);
        T_ASSERT(json_is_array(json_object_get(offer, "priority")));
        if (i == 0)
            T_EQ_STR(json_string_value(json_array_get(json_object_get(offer, "priority"), 0)),
                     "lives_alone");
        if (icon_count(&k, "update", jobs[i], "accepted") != 1 ||
            icon_count(&k, "update", jobs[i], "en_route") != 1 ||
            icon_count(&k, "update", jobs[i], "delivered") != 1)
            ICON_FAIL(&k, "job %lld: expected one update each: accepted, en_route, delivered",
                      (long long)jobs[i]);
        char id[24], v[256];
        snprintf(id, sizeof(id), "%lld", (long long)jobs[i]);
        T_EQ_STR(icon_sql_text(pg, "SELECT state FROM jobs WHERE id = $1", id, v, sizeof(v)),
                 "delivered");
        snprintf(id, sizeof(id), "%lld", (long long)reqs[i]);
        T_EQ_STR(icon_sql_text(pg, "SELECT state FROM requests WHERE id = $1", id, v, sizeof(v)),
                 "delivered");
        T_EQ_STR(
            icon_sql_text(pg,
                          "SELECT string_agg(state::text, ',' ORDER BY id) FROM request_events "
                          "WHERE request_id = $1",
                          id, v, sizeof(v)),
            "queued,accepted,en_route,delivered");
    }
    cl_close(gw);
    icon_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* --reject-all at the nearer station, --auto-accept at the farther one: the request moves
 * on and is delivered there; both consoles stop by themselves (--exit-after 1). */
static void reject_all_redispatches(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 65, &f);
    int64_t near = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.002});
    int64_t far = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.02});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    char tn[64], tf[64], port[16];
    itest_make_token(pg, "station", near, tn);
    itest_make_token(pg, "station", far, tf);
    icon_port_arg(port, sizeof(port), d.proto_port);
    IconProc a, b;
    icon_start(&a, &d, false,
               (const char *const[]){"--port", port, "--token", tn, "--json", "--reject-all",
                                     "full", "--exit-after", "1", NULL});
    icon_start(&b, &d, false,
               (const char *const[]){"--port", port, "--token", tf, "--json", "--auto-accept",
                                     "--complete-after", "100", "--exit-after", "1", NULL});
    icon_wait(&a, 10000, "connected", 0, NULL);
    icon_wait(&b, 10000, "connected", 0, NULL);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t req;
    int64_t j1 = icon_submit_meal(&d, gw, fix_key("console-reject-all"), phone, near, &req);
    cl_close(gw);
    json_t *u = icon_wait(&a, 10000, "update", j1, NULL);
    T_EQ_STR(icon_jstr(u, "state"), "rejected");
    icon_wait(&a, 5000, "exit", 0, NULL);
    T_EQ_INT(icon_wait_exit(&a, 5000), 0);
    json_t *offer = icon_wait(&b, 15000, "job", 0, "offered");
    T_EQ_INT(icon_jint(offer, "request_id"), req);
    T_EQ_INT(icon_jint(offer, "attempt"), 2);
    int64_t j2 = icon_jint(offer, "job_id");
    T_EQ_STR(icon_jstr(icon_wait(&b, 10000, "update", j2, "delivered"), "action"), "deliver");
    icon_wait(&b, 5000, "exit", 0, NULL);
    T_EQ_INT(icon_wait_exit(&b, 5000), 0);
    char id[24], v[256];
    snprintf(id, sizeof(id), "%lld", (long long)req);
    char want[64];
    snprintf(want, sizeof(want), "delivered:%lld", (long long)far);
    T_EQ_STR(icon_sql_text(pg, "SELECT state || ':' || station_id FROM requests WHERE id = $1", id,
                           v, sizeof(v)),
             want);
    icon_stop(&a);
    icon_stop(&b);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* An offer not accepted in time is withdrawn: the console is told (state expired) and the
 * job leaves its screen. */
static void offer_expires(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 66, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, (const char *const[]){"--offer_timeout_s=5", NULL});
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    IconProc k;
    icon_start(&k, &d, true,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), d.proto_port),
                                     "--token", tok, "--json", NULL});
    icon_wait(&k, 10000, "connected", 0, NULL);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t job = icon_submit_meal(&d, gw, fix_key("console-expire"), phone, st, NULL);
    cl_close(gw);
    json_t *o = icon_wait(&k, 10000, "job", job, "offered");
    T_ASSERT(icon_jint(o, "offer_expires_at_ms") > 0);
    icon_wait(&k, 20000, "job", job, "expired");
    icon_say(&k, "list");
    T_EQ_INT(json_array_size(json_object_get(icon_wait(&k, 5000, "list", 0, NULL), "jobs")), 0);
    icon_say(&k, "accept %lld", (long long)job);
    T_EQ_STR(icon_jstr(icon_wait(&k, 10000, "error", job, NULL), "code"), "INVALID_TRANSITION");
    icon_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"console_auto_accept_delivers", auto_accept_delivers, 90},
        {"console_reject_all_redispatches", reject_all_redispatches, 90},
        {"console_offer_expires", offer_expires, 90},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
