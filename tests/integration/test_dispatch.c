/*
 * Integration tests of the dispatch core's intake on real PostgreSQL and Redis: a request
 * becomes a queued job at the nearest eligible station, recorded in both; home care;
 * rejections recorded with their reason; idempotency; unknown callers; bad input leaves
 * nothing behind. Cancel, priority and station changes: test_dispatch_capacity.c; two
 * daemons, kill -9 and a slow PostgreSQL: test_dispatch_resilience.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cal.h"
#include "common/util.h"
#include "fixture.h"
#include "idispatch.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

static void queued_and_recorded(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 1, &f);
    int64_t far = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.02});
    int64_t near = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.005});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    /* an entry from long ago in the station's stream: the next XADD trims it */
    redisReply *old =
        redisCommand(rd, "XADD {c330281}:st:%lld:jobs 1000-1 job 0 request 0", (long long)near);
    T_ASSERT(old && old->type == REDIS_REPLY_STRING);
    freeReplyObject(old);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q = idisp_meal(fix_key("disp-queued-1"), phone);
    ClEnvelope *r = idisp_submit(&d, c, &q);
    Careline__V1__SubmitResult *s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(s->station_id, near); /* the nearest of the two */
    T_ASSERT(s->station_name[0] && strstr(s->speech_zh, s->station_name));
    T_ASSERT(strstr(s->speech_zh, "明天") && strstr(s->speech_zh, "午餐"));
    T_ASSERT(s->window_end_ms - s->window_start_ms == 90 * 60 * 1000); /* 11:00-12:30 */
    T_ASSERT(!s->duplicate && s->job_id > 0);
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)s->request_id);
    /* PostgreSQL: the request, its job and its event (recorded once, already queued) */
    PGresult *ev = itest_sql(pg,
                             "SELECT state, actor, coalesce(job_state, '') FROM request_events "
                             "WHERE request_id = $1 ORDER BY id",
                             1, (const char *[]){id});
    T_EQ_INT(PQntuples(ev), 1);
    T_EQ_STR(PQgetvalue(ev, 0, 0), "queued");
    T_EQ_STR(PQgetvalue(ev, 0, 1), "gateway");
    T_EQ_STR(PQgetvalue(ev, 0, 2), "offered");
    PQclear(ev);
    T_EQ_INT(idisp_sql_long(
                 pg, "SELECT count(*) FROM jobs WHERE request_id = $1 AND state = 'offered'", id),
             1);
    T_EQ_INT(idisp_sql_long(
                 pg, "SELECT station_id FROM requests WHERE id = $1 AND state = 'queued'", id),
             near);
    /* Redis: one stream entry at that station (the old one trimmed), one unit of capacity */
    T_EQ_INT(fix_stream_count(rd, near, s->request_id), 1);
    T_EQ_INT(fix_stream_count(rd, near, 0), 1);
    T_EQ_INT(fix_stream_count(rd, far, 0), 0);
    char cap[96];
    snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)near, fix_tomorrow());
    T_EQ_INT(fix_redis_int(rd, cap), 1);
    redisReply *ttl = redisCommand(rd, "TTL %s", cap);
    T_ASSERT(ttl->integer > 0 && ttl->integer <= 3 * 86400); /* expires after its day */
    freeReplyObject(ttl);
    cl_free(r);
    /* the phone number appears nowhere in the daemon's log */
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -q %s %s", phone, d.log_path);
    T_ASSERT(system(cmd) != 0);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static void home_care_queued(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 2, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.care = true, .caregivers = 2});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q = {.key = fix_key("disp-care-1"),
                  .phone = phone,
                  .kind = S(SERVICE_KIND__HOME_CARE),
                  .subtype = S(CARE_SUBTYPE__CLEANING),
                  .date = fix_tomorrow()};
    ClEnvelope *r = idisp_submit(&d, c, &q);
    Careline__V1__SubmitResult *s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(s->station_id, st);
    T_ASSERT(strstr(s->speech_zh, "上门") && strstr(s->speech_zh, "保洁"));
    cl_free(r);
    /* a meal there: nobody offers meals nearby */
    IdispReq m = idisp_meal(fix_key("disp-care-2"), phone);
    r = idisp_submit(&d, c, &m);
    s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__REJECTED));
    T_EQ_INT(s->reason_code, S(REASON_CODE__NO_STATION_IN_RANGE));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* Rejections that are recorded with their reason: the only station nearby is open only in
 * the afternoon (lunch cannot be served), and a date beyond the booking horizon. */
static void recorded_rejections(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 10, &f);
    fix_station(pg, &f,
                &(FixStation){.meal = true, .cap_lunch = 10, .opens = "14:00", .closes = "16:00"});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q = idisp_meal(fix_key("closed-1"), phone);
    ClEnvelope *r = idisp_submit(&d, c, &q);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__REJECTED));
    T_EQ_INT(isess_result(r)->reason_code, S(REASON_CODE__STATION_CLOSED));
    T_ASSERT(strstr(isess_result(r)->speech_zh, "不开门"));
    T_EQ_INT(idisp_sql_long(pg,
                            "SELECT count(*) FROM requests WHERE idempotency_key = $1 AND "
                            "state = 'rejected' AND reason_code = 'station_closed'",
                            q.key),
             1);
    cl_free(r);
    char far[11];
    cal_format(cal_day_of(util_wall_ms(), NULL) + 30, far);
    q = idisp_meal(fix_key("too-far-1"), phone);
    q.date = far;
    r = idisp_submit(&d, c, &q);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__REJECTED));
    T_EQ_INT(isess_result(r)->reason_code, S(REASON_CODE__DATE_TOO_FAR));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void idempotent(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 3, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q = idisp_meal(fix_key("disp-idem-1"), phone);
    ClEnvelope *r1 = idisp_submit(&d, c, &q);
    ClEnvelope *r2 = idisp_submit(&d, c, &q);
    T_EQ_INT(isess_result(r1)->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(isess_result(r2)->state, S(REQUEST_STATE__QUEUED));
    T_ASSERT(isess_result(r2)->duplicate && !isess_result(r1)->duplicate);
    T_EQ_INT(isess_result(r2)->request_id, isess_result(r1)->request_id);
    T_EQ_INT(isess_result(r2)->job_id, isess_result(r1)->job_id);
    T_EQ_STR(isess_result(r2)->speech_zh, isess_result(r1)->speech_zh);
    T_EQ_INT(fix_stream_count(rd, st, 0), 1);
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1",
                            fix_key("disp-idem-1")),
             1);
    /* the same new key ten times at once: resolved together, all ten reserve, one record
     * wins and the others give their reservation back and answer as duplicates */
    IdispReq q10 = idisp_meal(fix_key("disp-idem-10"), phone);
    for (int i = 0; i < 10; i++) {
        ClEnvelope e;
        Careline__V1__SubmitRequest m;
        Careline__V1__Location loc;
        idisp_build(&q10, &e, &m, &loc);
        e.seq = 100 + (uint64_t)i;
        T_ASSERT(cl_send(c, &e));
    }
    int64_t rid = 0;
    int dups = 0;
    for (int i = 0; i < 10; i++) {
        char err[256];
        ClEnvelope *r = cl_recv(c, 15000, err, sizeof(err));
        T_ASSERT(r != NULL);
        Careline__V1__SubmitResult *sr = isess_result(r);
        T_EQ_INT(sr->state, S(REQUEST_STATE__QUEUED));
        T_ASSERT(rid == 0 || sr->request_id == rid);
        rid = sr->request_id;
        dups += sr->duplicate;
        cl_free(r);
    }
    T_EQ_INT(dups, 9);
    T_EQ_INT(fix_stream_count(rd, st, 0), 2);
    char capk[96];
    snprintf(capk, sizeof(capk), "{c330281}:cap:%lld:%s:lunch", (long long)st, fix_tomorrow());
    for (int i = 0; i < 50 && fix_redis_int(rd, capk) != 2; i++)
        usleep(20000); /* the releases are sent after the replies */
    T_EQ_INT(fix_redis_int(rd, capk), 2);
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1",
                            fix_key("disp-idem-10")),
             1);
    /* the same key with different content */
    q.slot = S(MEAL_SLOT__DINNER);
    ClEnvelope *r3 = idisp_submit(&d, c, &q);
    T_EQ_INT(r3->body_case, BODY(ERROR));
    T_EQ_INT(r3->error->code, S(ERROR_CODE__CONFLICT));
    T_EQ_STR(r3->error->field, "idempotency_key");
    T_EQ_INT(fix_stream_count(rd, st, 0), 2);
    cl_free(r1);
    cl_free(r2);
    cl_free(r3);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static void not_registered(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    IdispReq q = idisp_meal(fix_key("disp-unknown-1"), "+86 139-9999-0001");
    ClEnvelope *r = idisp_submit(&d, c, &q);
    Careline__V1__SubmitResult *s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__NOT_REGISTERED));
    T_ASSERT(strstr(s->speech_zh, "登记"));
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)s->request_id);
    char hash[65];
    itest_phone_hash("13999990001", hash); /* keyed: HMAC-SHA256, not a plain SHA-256 */
    PGresult *row = itest_sql(pg,
                              "SELECT state, caller_phone_masked, "
                              "caller_phone_hash = decode($2, 'hex'), "
                              "position('13999990001' in r::text) FROM requests r WHERE id = $1",
                              2, (const char *[]){id, hash});
    T_EQ_STR(PQgetvalue(row, 0, 0), "not_registered");
    T_EQ_STR(PQgetvalue(row, 0, 1), "139****0001");
    T_EQ_STR(PQgetvalue(row, 0, 2), "t");
    T_EQ_STR(PQgetvalue(row, 0, 3), "0"); /* the full number is stored nowhere in the row */
    PQclear(row);
    T_EQ_INT(idisp_sql_long(pg,
                            "SELECT count(*) FROM request_events WHERE request_id = $1 AND "
                            "state = 'not_registered'",
                            id),
             1);
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

typedef struct {
    const char *name;
    IdispReq q;
    const char *field;
} BadCase;

static void bad_input_leaves_nothing(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 4, &f);
    fix_station(pg, &f,
                &(FixStation){.meal = true, .care = true, .cap_lunch = 10, .caregivers = 2});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    static char longnote[600];
    memset(longnote, 'x', sizeof(longnote) - 1);
    const int M = S(SERVICE_KIND__MEAL_DELIVERY), L = S(MEAL_SLOT__LUNCH);
    const BadCase cases[] = {
        {"no key", {.phone = phone, .kind = M, .slot = L}, "idempotency_key"},
        {"no caller", {.key = "b1", .kind = M, .slot = L}, "caller_phone"},
        {"bad phone", {.key = "b2", .phone = "12ab", .kind = M, .slot = L}, "caller_phone"},
        {"unknown kind", {.key = "b3", .phone = phone, .kind = 7}, "kind"},
        {"meal without slot", {.key = "b4", .phone = phone, .kind = M}, "meal_slot"},
        {"care without subtype",
         {.key = "b5", .phone = phone, .kind = S(SERVICE_KIND__HOME_CARE)},
         "care_subtype"},
        {"impossible date",
         {.key = "b6", .phone = phone, .kind = M, .slot = L, .date = "2026-02-30"},
         "service_date"},
        {"garbage date",
         {.key = "b7", .phone = phone, .kind = M, .slot = L, .date = "tomorrow"},
         "service_date"},
        {"past date",
         {.key = "b8", .phone = phone, .kind = M, .slot = L, .date = "2020-01-01"},
         "service_date"},
        {"note too long",
         {.key = "b9", .phone = phone, .kind = M, .slot = L, .note = longnote},
         "note"},
        {"note not UTF-8",
         {.key = "b10", .phone = phone, .kind = M, .slot = L, .note = "\xff\xfe"},
         "note"},
        {"key not UTF-8",
         {.key = "b\xc3\x28", .phone = phone, .kind = M, .slot = L},
         "idempotency_key"},
        {"outside the county",
         {.key = "b11",
          .phone = phone,
          .kind = M,
          .slot = L,
          .has_loc = true,
          .lat = 40.0,
          .lon = 116.4},
         "location"},
        {"bad urgency",
         {.key = "b12", .phone = phone, .kind = M, .slot = L, .urgency = 5},
         "urgency"},
    };
    long before = idisp_sql_long(pg, "SELECT count(*) FROM requests", NULL);
    redisReply *k0 = redisCommand(rd, "DBSIZE");
    long long keys_before = k0->integer;
    freeReplyObject(k0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ClEnvelope *r = idisp_submit(&d, c, &cases[i].q);
        if (r->body_case != BODY(ERROR) || r->error->code != S(ERROR_CODE__INVALID_ARGUMENT))
            t_fail(__FILE__, __LINE__, "%s: expected INVALID_ARGUMENT", cases[i].name);
        if (strcmp(r->error->field, cases[i].field) != 0)
            t_fail(__FILE__, __LINE__, "%s: field '%s', expected '%s'", cases[i].name,
                   r->error->field, cases[i].field);
        T_ASSERT(!r->error->fatal && strlen(r->error->message) > 15);
        cl_free(r);
    }
    T_EQ_INT(idisp_sql_long(pg, "SELECT count(*) FROM requests", NULL), before);
    redisReply *k1 = redisCommand(rd, "DBSIZE");
    T_EQ_INT(k1->integer, keys_before);
    freeReplyObject(k1);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"INVALID_ARGUMENT\"}"),
             (long long)(sizeof(cases) / sizeof(cases[0])));
    /* and the connection is still good */
    IdispReq ok = idisp_meal(fix_key("b-ok"), phone);
    ClEnvelope *r = idisp_submit(&d, c, &ok);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"dispatch_queued_and_recorded", queued_and_recorded, 60},
        {"dispatch_home_care", home_care_queued, 60},
        {"dispatch_recorded_rejections", recorded_rejections, 60},
        {"dispatch_idempotent", idempotent, 60},
        {"dispatch_not_registered", not_registered, 60},
        {"dispatch_bad_input_leaves_nothing", bad_input_leaves_nothing, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
