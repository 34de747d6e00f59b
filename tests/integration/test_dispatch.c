/*
 * Integration tests of the dispatch core on real PostgreSQL and Redis: a request becomes a
 * queued job at the nearest eligible station; idempotency; unknown callers; bad input
 * leaves nothing behind; cancel releases capacity; priority and the waitlist; station
 * changes followed live; two daemons never overbook; kill -9 at every step loses nothing
 * and queues nothing twice; a slow PostgreSQL does not stop the event loop.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cal.h"
#include "fixture.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

typedef struct {
    const char *key;
    const char *phone;
    int64_t resident;
    int kind, slot, subtype;
    const char *date;
    const char *note;
    int urgency;
    bool has_loc;
    double lat, lon;
} Req;

static void build(const Req *q, ClEnvelope *e, Careline__V1__SubmitRequest *m,
                  Careline__V1__Location *loc)
{
    careline__v1__submit_request__init(m);
    m->idempotency_key = (char *)(q->key ? q->key : "");
    if (q->phone) {
        m->who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
        m->caller_phone = (char *)q->phone;
    } else if (q->resident) {
        m->who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID;
        m->resident_id = q->resident;
    }
    m->kind = q->kind;
    m->meal_slot = q->slot;
    m->care_subtype = q->subtype;
    m->service_date = (char *)(q->date ? q->date : "");
    m->note = (char *)(q->note ? q->note : "");
    m->urgency = q->urgency;
    if (q->has_loc) {
        careline__v1__location__init(loc);
        loc->lat = q->lat;
        loc->lon = q->lon;
        m->location = loc;
    }
    careline__v1__envelope__init(e);
    e->body_case = BODY(SUBMIT);
    e->submit = m;
}

static ClEnvelope *submit(ClConn *c, const Req *q)
{
    ClEnvelope e;
    Careline__V1__SubmitRequest m;
    Careline__V1__Location loc;
    build(q, &e, &m, &loc);
    return isess_submit(&d, c, &m, 15000);
}

static Careline__V1__SubmitResult *result(ClEnvelope *r)
{
    return isess_result(r);
}

static Req meal(const char *key, const char *phone)
{
    return (Req){.key = key,
                 .phone = phone,
                 .kind = S(SERVICE_KIND__MEAL_DELIVERY),
                 .slot = S(MEAL_SLOT__LUNCH),
                 .date = fix_tomorrow()};
}

static long sql_long(PGconn *pg, const char *sql, const char *p1)
{
    const char *p[] = {p1};
    return (long)itest_sql_ll(pg, sql, p1 ? 1 : 0, p);
}

static ClConn *gateway(PGconn *pg)
{
    return isess_gateway(&d, pg);
}

/* ------------------------------------------------------------------------------------- */

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
    ClConn *c = gateway(pg);
    Req q = meal(fix_key("disp-queued-1"), phone);
    ClEnvelope *r = submit(c, &q);
    Careline__V1__SubmitResult *s = result(r);
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
    T_EQ_INT(
        sql_long(pg, "SELECT count(*) FROM jobs WHERE request_id = $1 AND state = 'offered'", id),
        1);
    T_EQ_INT(sql_long(pg, "SELECT station_id FROM requests WHERE id = $1 AND state = 'queued'", id),
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
    ClConn *c = gateway(pg);
    Req q = {.key = fix_key("disp-care-1"),
             .phone = phone,
             .kind = S(SERVICE_KIND__HOME_CARE),
             .subtype = S(CARE_SUBTYPE__CLEANING),
             .date = fix_tomorrow()};
    ClEnvelope *r = submit(c, &q);
    Careline__V1__SubmitResult *s = result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(s->station_id, st);
    T_ASSERT(strstr(s->speech_zh, "上门") && strstr(s->speech_zh, "保洁"));
    cl_free(r);
    /* a meal there: nobody offers meals nearby */
    Req m = meal(fix_key("disp-care-2"), phone);
    r = submit(c, &m);
    s = result(r);
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
    ClConn *c = gateway(pg);
    Req q = meal(fix_key("closed-1"), phone);
    ClEnvelope *r = submit(c, &q);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__REJECTED));
    T_EQ_INT(result(r)->reason_code, S(REASON_CODE__STATION_CLOSED));
    T_ASSERT(strstr(result(r)->speech_zh, "不开门"));
    T_EQ_INT(sql_long(pg,
                      "SELECT count(*) FROM requests WHERE idempotency_key = $1 AND "
                      "state = 'rejected' AND reason_code = 'station_closed'",
                      q.key),
             1);
    cl_free(r);
    char far[11];
    cal_format(cal_day_of(util_wall_ms(), NULL) + 30, far);
    q = meal(fix_key("too-far-1"), phone);
    q.date = far;
    r = submit(c, &q);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__REJECTED));
    T_EQ_INT(result(r)->reason_code, S(REASON_CODE__DATE_TOO_FAR));
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
    ClConn *c = gateway(pg);
    Req q = meal(fix_key("disp-idem-1"), phone);
    ClEnvelope *r1 = submit(c, &q);
    ClEnvelope *r2 = submit(c, &q);
    T_EQ_INT(result(r1)->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(result(r2)->state, S(REQUEST_STATE__QUEUED));
    T_ASSERT(result(r2)->duplicate && !result(r1)->duplicate);
    T_EQ_INT(result(r2)->request_id, result(r1)->request_id);
    T_EQ_INT(result(r2)->job_id, result(r1)->job_id);
    T_EQ_STR(result(r2)->speech_zh, result(r1)->speech_zh);
    T_EQ_INT(fix_stream_count(rd, st, 0), 1);
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1",
                      fix_key("disp-idem-1")),
             1);
    /* the same new key ten times at once: resolved together, all ten reserve, one record
     * wins and the others give their reservation back and answer as duplicates */
    Req q10 = meal(fix_key("disp-idem-10"), phone);
    for (int i = 0; i < 10; i++) {
        ClEnvelope e;
        Careline__V1__SubmitRequest m;
        Careline__V1__Location loc;
        build(&q10, &e, &m, &loc);
        e.seq = 100 + (uint64_t)i;
        T_ASSERT(cl_send(c, &e));
    }
    int64_t rid = 0;
    int dups = 0;
    for (int i = 0; i < 10; i++) {
        char err[256];
        ClEnvelope *r = cl_recv(c, 15000, err, sizeof(err));
        T_ASSERT(r != NULL);
        Careline__V1__SubmitResult *sr = result(r);
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
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1",
                      fix_key("disp-idem-10")),
             1);
    /* the same key with different content */
    q.slot = S(MEAL_SLOT__DINNER);
    ClEnvelope *r3 = submit(c, &q);
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
    ClConn *c = gateway(pg);
    Req q = meal(fix_key("disp-unknown-1"), "+86 139-9999-0001");
    ClEnvelope *r = submit(c, &q);
    Careline__V1__SubmitResult *s = result(r);
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
    T_EQ_INT(sql_long(pg,
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
    Req q;
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
    ClConn *c = gateway(pg);
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
    long before = sql_long(pg, "SELECT count(*) FROM requests", NULL);
    redisReply *k0 = redisCommand(rd, "DBSIZE");
    long long keys_before = k0->integer;
    freeReplyObject(k0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ClEnvelope *r = submit(c, &cases[i].q);
        if (r->body_case != BODY(ERROR) || r->error->code != S(ERROR_CODE__INVALID_ARGUMENT))
            t_fail(__FILE__, __LINE__, "%s: expected INVALID_ARGUMENT", cases[i].name);
        if (strcmp(r->error->field, cases[i].field) != 0)
            t_fail(__FILE__, __LINE__, "%s: field '%s', expected '%s'", cases[i].name,
                   r->error->field, cases[i].field);
        T_ASSERT(!r->error->fatal && strlen(r->error->message) > 15);
        cl_free(r);
    }
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM requests", NULL), before);
    redisReply *k1 = redisCommand(rd, "DBSIZE");
    T_EQ_INT(k1->integer, keys_before);
    freeReplyObject(k1);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"INVALID_ARGUMENT\"}"),
             (long long)(sizeof(cases) / sizeof(cases[0])));
    /* and the connection is still good */
    Req ok = meal(fix_key("b-ok"), phone);
    ClEnvelope *r = submit(c, &ok);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static ClEnvelope *call_status(ClConn *c, const char *key, const char *phone)
{
    Careline__V1__StatusQuery q = CARELINE__V1__STATUS_QUERY__INIT;
    if (key) {
        q.ref_case = CARELINE__V1__STATUS_QUERY__REF_IDEMPOTENCY_KEY;
        q.idempotency_key = (char *)key;
    } else {
        q.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
        q.caller_phone = (char *)phone;
    }
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATUS_QUERY);
    e.status_query = &q;
    return isess_call(NULL, c, &e, 10000, "status", NULL, NULL);
}

static ClEnvelope *call_cancel(ClConn *c, const char *key)
{
    Careline__V1__CancelRequest q = CARELINE__V1__CANCEL_REQUEST__INIT;
    q.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_IDEMPOTENCY_KEY;
    q.idempotency_key = (char *)key;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(CANCEL);
    e.cancel = &q;
    return isess_call(NULL, c, &e, 10000, "cancel", NULL, NULL);
}

static void cancel_releases(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 5, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = gateway(pg);
    Req q = meal(fix_key("disp-cancel-1"), phone);
    cl_free(submit(c, &q));
    char cap[96];
    snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)st, fix_tomorrow());
    T_EQ_INT(fix_redis_int(rd, cap), 1);
    ClEnvelope *r = call_cancel(c, fix_key("disp-cancel-1"));
    T_EQ_INT(r->body_case, BODY(CANCEL_RESULT));
    T_ASSERT(r->cancel_result->cancelled);
    T_EQ_INT(r->cancel_result->state, S(REQUEST_STATE__CANCELLED));
    cl_free(r);
    T_EQ_INT(fix_redis_int(rd, cap), 0);
    T_EQ_INT(sql_long(pg,
                      "SELECT count(*) FROM jobs j JOIN requests r ON r.id = j.request_id "
                      "WHERE r.idempotency_key = $1 AND j.state = 'cancelled' AND "
                      "r.state = 'cancelled'",
                      fix_key("disp-cancel-1")),
             1);
    /* again: nothing changes, capacity is not released twice */
    r = call_cancel(c, fix_key("disp-cancel-1"));
    T_ASSERT(!r->cancel_result->cancelled);
    T_EQ_INT(r->cancel_result->state, S(REQUEST_STATE__CANCELLED));
    cl_free(r);
    T_EQ_INT(fix_redis_int(rd, cap), 0);
    /* status by phone shows the whole history */
    r = call_status(c, NULL, phone);
    T_EQ_INT(r->body_case, BODY(REQUEST_STATUS));
    T_EQ_INT(r->request_status->state, S(REQUEST_STATE__CANCELLED));
    T_EQ_INT(r->request_status->n_history, 2);
    T_EQ_INT(r->request_status->history[0]->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(r->request_status->history[1]->state, S(REQUEST_STATE__CANCELLED));
    T_ASSERT(strstr(r->request_status->speech_zh, "取消"));
    cl_free(r);
    /* unknown request */
    r = call_status(c, "no-such-key", NULL);
    T_EQ_INT(r->body_case, BODY(ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__NOT_FOUND));
    cl_free(r);
    r = call_cancel(c, "no-such-key");
    T_EQ_INT(r->error->code, S(ERROR_CODE__NOT_FOUND));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static int state_of(PGconn *pg, const char *key, char out[32])
{
    PGresult *r = itest_sql(pg, "SELECT state FROM requests WHERE idempotency_key = $1", 1,
                            (const char *[]){key});
    snprintf(out, 32, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

/* Capacity 2 with half held back for priority residents: the second ordinary caller waits,
 * a priority caller still gets the held unit; when a unit frees, the waiting priority
 * caller is served before the waiting ordinary one. */
static void priority_and_waitlist(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 6, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 2});
    char a[16], b[16], p1[16], p2[16];
    fix_resident(pg, &f, 1, false, a);
    fix_resident(pg, &f, 2, false, b);
    fix_resident(pg, &f, 3, true, p1);
    fix_resident(pg, &f, 4, true, p2);
    itest_daemon_up(&d, (const char *const[]){"--priority_reserve_pct=50",
                                              "--reconcile_interval_ms=200", NULL});
    ClConn *c = gateway(pg);
    Req qa = meal(fix_key("prio-a"), a), qb = meal(fix_key("prio-b"), b),
        qp1 = meal(fix_key("prio-p1"), p1), qp2 = meal(fix_key("prio-p2"), p2);
    ClEnvelope *r = submit(c, &qa);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    r = submit(c, &qb);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__WAITLISTED));
    T_EQ_INT(result(r)->reason_code, S(REASON_CODE__NO_CAPACITY));
    T_ASSERT(strstr(result(r)->speech_zh, "登记"));
    cl_free(r);
    r = submit(c, &qp1);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(result(r)->n_priority, 1);
    T_EQ_INT(result(r)->priority[0], S(PRIORITY_FLAG__LIVES_ALONE));
    cl_free(r);
    r = submit(c, &qp2);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__WAITLISTED));
    T_ASSERT(strstr(result(r)->speech_zh, "优先"));
    cl_free(r);
    /* a unit frees: the waitlisted priority caller gets it, the ordinary one keeps waiting */
    cl_free(call_cancel(c, fix_key("prio-a")));
    char st[32] = "";
    for (int i = 0; i < 100 && strcmp(st, "queued") != 0; i++) {
        usleep(100000);
        state_of(pg, fix_key("prio-p2"), st);
    }
    T_EQ_STR(st, "queued");
    state_of(pg, fix_key("prio-b"), st);
    T_EQ_STR(st, "waitlisted");
    ClEnvelope *s = call_status(c, fix_key("prio-p2"), NULL);
    T_EQ_INT(s->request_status->state, S(REQUEST_STATE__QUEUED));
    T_EQ_STR(s->request_status->history[s->request_status->n_history - 1]->actor, "daemon");
    cl_free(s);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void follows_station_changes(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 7, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 50});
    char phone[16], id[24], key[64];
    fix_resident(pg, &f, 1, false, phone);
    snprintf(id, sizeof(id), "%lld", (long long)st);
    itest_daemon_up(&d, NULL);
    ClConn *c = gateway(pg);
    PQclear(
        itest_sql(pg, "UPDATE stations SET active = false WHERE id = $1", 1, (const char *[]){id}));
    int state = 0;
    for (int i = 0; i < 50 && state != S(REQUEST_STATE__REJECTED); i++) {
        snprintf(key, sizeof(key), "%s", fix_key("follow-off"));
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%d", i);
        Req q = meal(key, phone);
        ClEnvelope *r = submit(c, &q);
        state = result(r)->state;
        cl_free(r);
        if (state != S(REQUEST_STATE__REJECTED))
            usleep(100000);
    }
    T_EQ_INT(state, S(REQUEST_STATE__REJECTED));
    PQclear(
        itest_sql(pg, "UPDATE stations SET active = true WHERE id = $1", 1, (const char *[]){id}));
    for (int i = 0; i < 50 && state != S(REQUEST_STATE__QUEUED); i++) {
        snprintf(key, sizeof(key), "%s", fix_key("follow-on"));
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%d", i);
        Req q = meal(key, phone);
        ClEnvelope *r = submit(c, &q);
        state = result(r)->state;
        cl_free(r);
        if (state != S(REQUEST_STATE__QUEUED))
            usleep(100000);
    }
    T_EQ_INT(state, S(REQUEST_STATE__QUEUED));
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- many requests over pipelined connections ------------------------------------------ */

typedef struct {
    int queued, waitlisted, rejected, errors, other;
} Tally;

/* Sends n submits on c as fast as possible (pipelined) and tallies the replies. Keys are
 * PREFIX-i; residents cycle through phones. Records the keys that were QUEUED if asked. */
static void burst(ClConn *c, const char *prefix, int first, int n, char (*phones)[16], int nph,
                  Tally *t, char (*queued_keys)[96], int *nq)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d", prefix, first + i);
        Req q = meal(key, phones[(first + i) % nph]);
        ClEnvelope e;
        Careline__V1__SubmitRequest m;
        Careline__V1__Location loc;
        build(&q, &e, &m, &loc);
        e.seq = (uint64_t)(first + i + 1);
        if (!cl_send(c, &e))
            break;
    }
    for (int i = 0; i < n; i++) {
        ClEnvelope *r = cl_recv(c, 30000, err, sizeof(err));
        if (!r)
            break;
        if (r->body_case == BODY(SUBMIT_RESULT)) {
            int st = r->submit_result->state;
            if (st == S(REQUEST_STATE__QUEUED)) {
                t->queued++;
                if (queued_keys)
                    snprintf(queued_keys[(*nq)++], 96, "%s-%llu", prefix,
                             (unsigned long long)r->seq - 1);
            } else if (st == S(REQUEST_STATE__WAITLISTED)) {
                t->waitlisted++;
            } else if (st == S(REQUEST_STATE__REJECTED)) {
                t->rejected++;
            } else {
                t->other++;
            }
        } else {
            t->errors++;
        }
        cl_free(r);
    }
}

static void two_daemons_never_overbook(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 8, &f);
    int caps[] = {3, 4, 5, 6};
    int64_t st[4];
    for (int i = 0; i < 4; i++)
        st[i] = fix_station(pg, &f,
                            &(FixStation){.meal = true, .cap_lunch = caps[i], .dlat = 0.002 * i});
    char phones[50][16];
    for (int i = 0; i < 50; i++)
        fix_resident(pg, &f, i, i % 5 == 0, phones[i]);
    const char *const extra[] = {"--priority_reserve_pct=0", NULL};
    Daemon a, b;
    itest_daemon_start(&a, extra);
    itest_daemon_start(&b, extra);
    itest_daemon_wait_ready(&a);
    itest_daemon_wait_ready(&b);
    char tok[64];
    itest_make_token(pg, "gateway", 0, tok);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s", fix_key("two")); /* before fork: one run id */
    enum { CONNS = 8, PER = 250 };
    pid_t kids[CONNS];
    for (int k = 0; k < CONNS; k++) {
        kids[k] = fork();
        T_ASSERT(kids[k] >= 0);
        if (kids[k] == 0) {
            ClConn *c = itest_login(k % 2 ? &b : &a, tok);
            Tally t = {0};
            burst(c, prefix, k * PER, PER, phones, 50, &t, NULL, NULL);
            cl_close(c);
            /* the exit code carries queued count; errors make it fail */
            _exit(t.errors || t.other || t.rejected || t.queued + t.waitlisted != PER ? 255
                                                                                      : t.queued);
        }
    }
    int queued = 0;
    for (int k = 0; k < CONNS; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) != 255);
        queued += WEXITSTATUS(status);
    }
    T_EQ_INT(queued, 3 + 4 + 5 + 6); /* every unit used once, none twice */
    /* PostgreSQL and Redis agree, station by station */
    char like[96];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1", like),
             CONNS * PER);
    T_EQ_INT(sql_long(pg,
                      "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1 AND "
                      "state NOT IN ('queued', 'waitlisted')",
                      like),
             0);
    for (int i = 0; i < 4; i++) {
        char id[24], cap[96];
        snprintf(id, sizeof(id), "%lld", (long long)st[i]);
        snprintf(cap, sizeof(cap), "{c330281}:cap:%lld:%s:lunch", (long long)st[i], fix_tomorrow());
        long jobs = sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1", id);
        T_EQ_INT(jobs, caps[i]);
        T_EQ_INT(fix_stream_count(rd, st[i], 0), caps[i]);
        T_EQ_INT(fix_redis_int(rd, cap), caps[i]);
    }
    T_EQ_INT(itest_daemon_stop(&a, 15000), 0);
    T_EQ_INT(itest_daemon_stop(&b, 15000), 0);
    redisFree(rd);
    PQfinish(pg);
}

/* ---- kill -9 at each step of a submission, then restart ------------------------------ */

static void crash_at(const char *point, int k)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, k, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 1000});
    char phones[10][16];
    for (int i = 0; i < 10; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    char fp[64], fa[32];
    snprintf(fp, sizeof(fp), "--fault_point=%s", point);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(fa, sizeof(fa), "--fault_after=%d", 5 + rand() % 20);
    itest_daemon_start(&d, (const char *const[]){fp, fa, NULL});
    itest_daemon_wait_ready(&d);
    ClConn *c = gateway(pg);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s-%s", fix_key("crash"), point);
    Tally t = {0};
    static char acked[100][96];
    int nacked = 0;
    burst(c, prefix, 0, 60, phones, 10, &t, acked, &nacked);
    cl_close(c);
    /* the daemon died mid-burst (SIGKILL) */
    for (int i = 0; i < 200 && itest_daemon_alive(&d); i++)
        usleep(20000);
    T_ASSERT(!itest_daemon_alive(&d));
    T_ASSERT(nacked < 60);
    /* restart without the fault: the sweep repairs what the crash left, and the reconciler
     * gives back reservations whose request was never recorded (short grace for the test) */
    itest_daemon_start(
        &d, (const char *const[]){"--reconcile_age_ms=0", "--reconcile_interval_ms=200",
                                  "--pg_query_timeout_ms=1000", "--orphan_grace_ms=4500", NULL});
    itest_daemon_wait_ready(&d);
    char like[80], sid[24], capk[96];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    snprintf(sid, sizeof(sid), "%lld", (long long)st);
    snprintf(capk, sizeof(capk), "{c330281}:cap:%lld:%s:lunch", (long long)st, fix_tomorrow());
    long left = -1, jobs = -1;
    for (int i = 0; i < 200; i++) {
        left = sql_long(pg,
                        "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1 AND "
                        "state = 'received'",
                        like);
        jobs = sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1", sid);
        if (left == 0 && fix_redis_int(rd, capk) == jobs && fix_stream_count(rd, st, 0) == jobs)
            break;
        usleep(100000);
    }
    T_EQ_INT(left, 0);
    T_EQ_INT(fix_stream_count(rd, st, 0), jobs); /* no entry without its job */
    if (strcmp(point, "after_enqueue") == 0)     /* the one it died holding, at least */
        T_ASSERT(itest_metric(d.http_port, "careline_orphans_released_total") >= 1);
    /* every acknowledged QUEUED is queued in PostgreSQL and once in Redis */
    for (int i = 0; i < nacked; i++) {
        PGresult *r = itest_sql(pg, "SELECT id, state FROM requests WHERE idempotency_key = $1", 1,
                                (const char *[]){acked[i]});
        T_EQ_INT(PQntuples(r), 1);
        T_EQ_STR(PQgetvalue(r, 0, 1), "queued");
        T_EQ_INT(fix_stream_count(rd, st, atoll(PQgetvalue(r, 0, 0))), 1);
        PQclear(r);
    }
    /* and no request at all is queued twice; stream, jobs and capacity agree */
    PGresult *all = itest_sql(pg, "SELECT id, state FROM requests WHERE idempotency_key LIKE $1", 1,
                              (const char *[]){like});
    long queued = 0;
    for (int i = 0; i < PQntuples(all); i++) {
        long n = fix_stream_count(rd, st, atoll(PQgetvalue(all, i, 0)));
        bool q = strcmp(PQgetvalue(all, i, 1), "queued") == 0;
        if (n != (q ? 1 : 0))
            t_fail(__FILE__, __LINE__, "request %s (%s) has %ld stream entries",
                   PQgetvalue(all, i, 0), PQgetvalue(all, i, 1), n);
        queued += q;
    }
    PQclear(all);
    T_EQ_INT(sql_long(pg, "SELECT count(*) FROM jobs WHERE station_id = $1", sid), queued);
    T_EQ_INT(fix_redis_int(rd, capk), queued);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static void crash_after_begin(void)
{
    crash_at("after_begin", 20);
}
static void crash_before_enqueue(void)
{
    crash_at("before_enqueue", 21);
}
static void crash_after_enqueue(void)
{
    crash_at("after_enqueue", 22);
}
static void crash_after_finish(void)
{
    crash_at("after_finish", 23);
}

/* ---- a slow PostgreSQL must not stop the loop ---------------------------------------- */

static void slow_postgres_loop_alive(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 9, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = gateway(pg);
    /* another session holds a lock every submission needs */
    PGconn *locker = itest_pg();
    PQclear(itest_sql(locker, "BEGIN", 0, NULL));
    PQclear(itest_sql(locker, "LOCK TABLE requests IN ACCESS EXCLUSIVE MODE", 0, NULL));
    Req q = meal(fix_key("slow-1"), phone);
    ClEnvelope e;
    Careline__V1__SubmitRequest m;
    Careline__V1__Location loc;
    build(&q, &e, &m, &loc);
    e.seq = 500;
    T_ASSERT(cl_send(c, &e));
    usleep(300000); /* the submission is now stuck in PostgreSQL */
    /* Ping on the same connection and /healthz on HTTP are answered at once */
    ClConn *c2 = gateway(pg);
    Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
    ClEnvelope pe = CARELINE__V1__ENVELOPE__INIT;
    pe.body_case = BODY(PING);
    pe.ping = &ping;
    char err[256], body[256];
    for (int i = 0; i < 5; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ClEnvelope *r = cl_call(c, &pe, 1000, err, sizeof(err), NULL, NULL);
        T_ASSERT(r && r->body_case == BODY(PONG));
        cl_free(r);
        r = cl_call(c2, &pe, 1000, err, sizeof(err), NULL, NULL);
        T_ASSERT(r && r->body_case == BODY(PONG));
        cl_free(r);
        T_EQ_INT(itest_http_get(d.http_port, "/healthz", body, sizeof(body)), 200);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        T_ASSERT(ms < 500);
    }
    /* the submission has not been answered yet... */
    T_EQ_INT(sql_long(locker, "SELECT count(*) FROM pg_locks WHERE NOT granted", NULL) > 0, 1);
    PQclear(itest_sql(locker, "COMMIT", 0, NULL));
    /* ...and completes once the lock is gone */
    ClEnvelope *r = cl_recv(c, 10000, err, sizeof(err));
    T_ASSERT(r);
    T_EQ_INT(r->seq, 500);
    T_EQ_INT(result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    PQfinish(locker);
    cl_close(c);
    cl_close(c2);
    itest_daemon_down(&d);
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
        {"dispatch_cancel_releases", cancel_releases, 60},
        {"dispatch_priority_and_waitlist", priority_and_waitlist, 60},
        {"dispatch_follows_station_changes", follows_station_changes, 60},
        {"dispatch_two_daemons_never_overbook", two_daemons_never_overbook, 300},
        {"dispatch_crash_after_begin", crash_after_begin, 120},
        {"dispatch_crash_before_enqueue", crash_before_enqueue, 120},
        {"dispatch_crash_after_enqueue", crash_after_enqueue, 120},
        {"dispatch_crash_after_finish", crash_after_finish, 120},
        {"dispatch_slow_postgres_loop_alive", slow_postgres_loop_alive, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
