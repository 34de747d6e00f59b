/*
 * Integration tests of bin/station-console as an operator uses it: commands through stdin
 * and the daemon's answers and errors (heartbeats keeping an otherwise idle session alive),
 * and the text screen for people. Fixture areas 62, 64.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "fixture.h"
#include "iconsole.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

static Daemon d;

/* Commands through stdin in --json mode, and the daemon's answers. Short heartbeats and
 * idle timeout: the session stays up only if the console pings and answers pings. */
static void commands_and_errors(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 62, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phones[2][16];
    fix_resident(pg, &f, 1, false, phones[0]);
    fix_resident(pg, &f, 2, false, phones[1]);
    itest_daemon_up(
        &d, (const char *const[]){"--heartbeat_interval_ms=200", "--idle_timeout_ms=1000", NULL});
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    IconProc k;
    icon_start(&k, &d, true,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), d.proto_port),
                                     "--token", tok, "--json", NULL});
    json_t *hello = icon_wait(&k, 10000, "connected", 0, NULL);
    T_EQ_INT(icon_jint(hello, "heartbeat_interval_ms"), 200);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t j1 = icon_submit_meal(&d, gw, fix_key("console-cmd-1"), phones[0], st, NULL);
    int64_t j2 = icon_submit_meal(&d, gw, fix_key("console-cmd-2"), phones[1], st, NULL);
    cl_close(gw);
    icon_wait(&k, 10000, "job", j1, "offered");
    icon_wait(&k, 10000, "job", j2, "offered");

    icon_say(&k, "reject %lld full 今天满了", (long long)j1);
    json_t *u = icon_wait(&k, 10000, "update", j1, NULL);
    T_EQ_STR(icon_jstr(u, "state"), "rejected");
    T_EQ_STR(icon_jstr(u, "action"), "reject");
    T_ASSERT(json_is_true(json_object_get(u, "changed")));
    char id[24], v[256];
    snprintf(id, sizeof(id), "%lld", (long long)j1);
    T_EQ_STR(icon_sql_text(pg, "SELECT reason_code || ':' || reason FROM jobs WHERE id = $1", id, v,
                           sizeof(v)),
             "station_full:今天满了");

    /* done on an offer: the daemon refuses, and the console shows why */
    icon_say(&k, "done %lld", (long long)j2);
    json_t *e = icon_wait(&k, 10000, "error", j2, NULL);
    T_EQ_STR(icon_jstr(e, "code"), "INVALID_TRANSITION");
    T_EQ_STR(icon_jstr(e, "action"), "deliver");
    T_ASSERT(icon_jstr(e, "message")[0]);

    icon_say(&k, "accept %lld", (long long)j2);
    T_EQ_STR(icon_jstr(icon_wait(&k, 10000, "update", j2, NULL), "state"), "accepted");
    icon_say(&k, "go %lld", (long long)j2);
    T_EQ_STR(icon_jstr(icon_wait(&k, 10000, "update", j2, NULL), "state"), "en_route");
    icon_say(&k, "done %lld", (long long)j2); /* a meal: DELIVER */
    u = icon_wait(&k, 10000, "update", j2, NULL);
    T_EQ_STR(icon_jstr(u, "state"), "delivered");
    T_EQ_STR(icon_jstr(u, "action"), "deliver");

    icon_say(&k, "accept 999999999");
    T_EQ_STR(icon_jstr(icon_wait(&k, 10000, "error", 999999999, NULL), "code"), "NOT_FOUND");
    icon_say(&k, "fail %lld sleepy", (long long)j2);
    T_EQ_STR(icon_jstr(icon_wait(&k, 5000, "error", 0, NULL), "code"), "USAGE");
    icon_say(&k, "dance");
    T_EQ_STR(icon_jstr(icon_wait(&k, 5000, "error", 0, NULL), "code"), "USAGE");

    /* station status */
    /* a capacity report alone leaves the open state and the staff count as they were */
    snprintf(id, sizeof(id), "%lld", (long long)st);
    icon_say(&k, "capacity lunch 5");
    json_t *s = icon_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(s, "open")));
    T_EQ_STR(icon_sql_text(pg,
                           "SELECT is_open::text || coalesce(caregivers_on_duty::text, '-') "
                           "FROM stations WHERE id = $1",
                           id, v, sizeof(v)),
             "true-");
    icon_say(&k, "open 2");
    s = icon_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(s, "open")));
    snprintf(id, sizeof(id), "%lld", (long long)st);
    T_EQ_STR(icon_sql_text(pg,
                           "SELECT is_open::text || caregivers_on_duty FROM stations WHERE id = $1",
                           id, v, sizeof(v)),
             "true2");
    icon_say(&k, "capacity lunch 5 %s", fix_tomorrow());
    s = icon_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(s, "open")));
    redisContext *rd = fix_redis();
    char key[128];
    snprintf(key, sizeof(key), "{c330281}:lim:%lld:%s:lunch", (long long)st, fix_tomorrow());
    T_EQ_INT(fix_redis_int(rd, key), 5 + 1); /* used so far (j2) + left */
    redisFree(rd);
    icon_say(&k, "close");
    s = icon_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_false(json_object_get(s, "open")));
    T_EQ_STR(icon_sql_text(pg,
                           "SELECT is_open::text || caregivers_on_duty FROM stations WHERE id = $1",
                           id, v, sizeof(v)),
             "false2");

    /* idle for 5 idle timeouts: heartbeats keep the session */
    usleep(2500 * 1000);
    icon_say(&k, "list");
    json_t *list = icon_wait(&k, 5000, "list", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(list, "connected")));
    T_EQ_INT(json_array_size(json_object_get(list, "jobs")), 0);
    if (icon_count(&k, "disconnected", 0, NULL) != 0)
        ICON_FAIL(&k, "the session dropped although the console pings and answers pings");
    icon_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* The screen for people: Chinese + English, the offer's details, commands; EOF ends it. */
static void text_screen(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 64, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, true, phone);
    itest_daemon_up(&d, NULL);
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    IconProc k;
    icon_start(&k, &d, true,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), d.proto_port),
                                     "--token", tok, NULL});
    ClConn *gw = isess_gateway(&d, pg);
    int64_t job = icon_submit_meal(&d, gw, fix_key("console-text"), phone, st, NULL);
    cl_close(gw);
    char want[64], line[8192];
    snprintf(want, sizeof(want), "#%lld", (long long)job);
    bool headline = false, need = false, who = false, deadline = false, note = false;
    int64_t until = util_now_ms() + 10000;
    while (!(headline && need && who && deadline && note) && util_now_ms() < until &&
           icon_line(&k, 1000, line, sizeof(line))) {
        headline |= strstr(line, "新任务") && strstr(line, want) != NULL;
        need |= strstr(line, "午餐送餐") && strstr(line, fix_tomorrow()) != NULL;
        who |= strstr(line, "测**") && strstr(line, "独居") != NULL;
        deadline |= strstr(line, "接单截止") != NULL;
        note |= strstr(line, "少盐") != NULL;
    }
    if (!(headline && need && who && deadline && note))
        ICON_FAIL(&k, "text screen incomplete: headline %d need %d resident %d deadline %d note %d",
                  headline, need, who, deadline, note);
    icon_say(&k, "accept %lld", (long long)job);
    bool accepted = false;
    until = util_now_ms() + 10000;
    while (!accepted && util_now_ms() < until && icon_line(&k, 1000, line, sizeof(line)))
        accepted = strstr(line, "已接单") && strstr(line, want);
    if (!accepted)
        ICON_FAIL(&k, "no 已接单 line after accept");
    close(k.in); /* EOF: an operator's console ends */
    k.in = -1;
    T_EQ_INT(icon_wait_exit(&k, 5000), 0);
    icon_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"console_commands_and_errors", commands_and_errors, 90},
        {"console_text_screen", text_screen, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
