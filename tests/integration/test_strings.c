/*
 * Integration tests of strings on the wire, through a real dispatchd, PostgreSQL and Redis:
 * a NUL inside a string field (which protobuf-c would cut: "K\0A" read as "K") or bad UTF-8
 * is refused as INVALID_ARGUMENT naming the field, writes nothing, and leaves the
 * connection usable; no reply or HTTP error body carries bytes that are not UTF-8; every
 * INVALID_ARGUMENT of StatusQuery, CancelRequest, JobUpdate and StationStatus names its
 * field; a date past the calendar's range is "out of range".
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/util.h"
#include "common/wirecheck.h"
#include "fixture.h"
#include "ihttp.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

/* Sends env packed, with the first `from` in its bytes replaced by `to` (n bytes each: how a
 * NUL gets into a string, since protobuf-c packs up to the NUL), and waits for the reply
 * carrying env->seq. */
static ClEnvelope *raw_call(ClConn *c, ClEnvelope *env, const char *from, const char *to, size_t n)
{
    size_t len;
    uint8_t *b = frame_encode(env, &len);
    if (from) {
        uint8_t *p = memmem(b + FRAME_HEADER, len - FRAME_HEADER, from, n);
        T_ASSERT(p);
        memcpy(p, to, n);
    }
    T_ASSERT(cl_send_raw(c, b, len));
    free(b);
    char err[128];
    for (;;) {
        ClEnvelope *r = cl_recv(c, 15000, err, sizeof(err));
        if (!r) {
            itest_daemon_dump_log(&d);
            t_fail(__FILE__, __LINE__, "no reply to seq %llu: %s", (unsigned long long)env->seq,
                   err);
        }
        if (r->seq == env->seq)
            return r;
        cl_free(r); /* a push */
    }
}

/* The reply must be Error{code, field}, non-fatal, with a UTF-8 sentence containing
 * `says` (NULL: anything). */
static void expect_error(const char *what, ClEnvelope *r, int code, const char *field,
                         const char *says)
{
    if (r->body_case != BODY(ERROR))
        t_fail(__FILE__, __LINE__, "%s: expected an Error, got body %d", what, r->body_case);
    const Careline__V1__Error *e = r->error;
    if ((int)e->code != code || strcmp(e->field, field) != 0)
        t_fail(__FILE__, __LINE__, "%s: expected error %d field '%s', got %d field '%s': %s", what,
               code, field, e->code, e->field, e->message);
    if (e->fatal || !util_utf8_valid(e->message, strlen(e->message)) || strlen(e->message) < 15 ||
        (says && !strstr(e->message, says)))
        t_fail(__FILE__, __LINE__, "%s: fatal %d or message not as expected: %s", what, e->fatal,
               e->message);
    cl_free(r);
}

static void expect_invalid(const char *what, ClEnvelope *r, const char *field, const char *says)
{
    expect_error(what, r, S(ERROR_CODE__INVALID_ARGUMENT), field, says);
}

static long long count(PGconn *pg, const char *sql)
{
    return itest_sql_ll(pg, sql, 0, NULL);
}

static long long redis_keys(redisContext *rd)
{
    redisReply *r = redisCommand(rd, "DBSIZE");
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void submit_env(ClEnvelope *e, Careline__V1__SubmitRequest *m, uint64_t seq, const char *key,
                       const char *phone, const char *date, const char *note)
{
    isess_meal(m, key, phone);
    if (date)
        m->service_date = (char *)date;
    if (note)
        m->note = (char *)note;
    careline__v1__envelope__init(e);
    e->seq = seq;
    e->body_case = BODY(SUBMIT);
    e->submit = m;
}

/* The issue's inputs: each was cut at its NUL and accepted; now each is refused, nothing is
 * written to PostgreSQL or Redis, and the connection goes on. */
static void nul_in_submit_refused(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 80, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    long long req0 = count(pg, "SELECT count(*) FROM requests");
    long long ev0 = count(pg, "SELECT count(*) FROM request_events");
    long long keys0 = redis_keys(rd);
    char key[96], date[32], ph[32];
    snprintf(key, sizeof(key), "%s#A", fix_key("nul"));
    snprintf(date, sizeof(date), "%s#x", fix_tomorrow());
    snprintf(ph, sizeof(ph), "%s#999", phone);
    ClEnvelope e;
    Careline__V1__SubmitRequest m;
    /* idempotency_key "K\0A" */
    submit_env(&e, &m, 101, key, phone, NULL, NULL);
    ClEnvelope *r = raw_call(c, &e, "#A", "\0A", 2);
    T_EQ_INT(r->seq, 101);
    expect_invalid("key K\\0A", r, "idempotency_key", "NUL");
    /* service_date "YYYY-MM-DD\0x" */
    submit_env(&e, &m, 102, fix_key("nul-date"), phone, date, NULL);
    expect_invalid("date\\0x", raw_call(c, &e, "#x", "\0x", 2), "service_date", "NUL");
    /* caller_phone "<phone>\0999" */
    submit_env(&e, &m, 103, fix_key("nul-phone"), ph, NULL, NULL);
    expect_invalid("phone\\0999", raw_call(c, &e, "#999", "\0999", 4), "caller_phone", "NUL");
    /* note "a\0b" */
    submit_env(&e, &m, 104, fix_key("nul-note"), phone, NULL, "a#b");
    expect_invalid("note a\\0b", raw_call(c, &e, "a#b", "a\0b", 3), "note", "NUL");
    /* a key that is not UTF-8 */
    submit_env(&e, &m, 105, "k\xff\xfe", phone, NULL, NULL);
    expect_invalid("key not UTF-8", raw_call(c, &e, NULL, NULL, 0), "idempotency_key", "UTF-8");
    T_EQ_INT(count(pg, "SELECT count(*) FROM requests"), req0);
    T_EQ_INT(count(pg, "SELECT count(*) FROM request_events"), ev0);
    T_EQ_INT(redis_keys(rd), keys0);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"INVALID_ARGUMENT\"}"), 5);
    /* the key's prefix before the NUL was never taken: it is a new request now */
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "%.*s", (int)(strchr(key, '#') - key), key);
    submit_env(&e, &m, 106, prefix, phone, NULL, NULL);
    r = raw_call(c, &e, NULL, NULL, 0);
    T_EQ_INT(isess_result(r)->state, S(REQUEST_STATE__QUEUED));
    cl_free(r);
    const char *kp[] = {prefix};
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1", 1, kp),
             1);
    cl_close(c);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

static ClEnvelope *status_env(ClEnvelope *e, Careline__V1__StatusQuery *q, uint64_t seq)
{
    careline__v1__envelope__init(e);
    e->seq = seq;
    e->body_case = BODY(STATUS_QUERY);
    e->status_query = q;
    return e;
}

static ClEnvelope *cancel_env(ClEnvelope *e, Careline__V1__CancelRequest *q, uint64_t seq)
{
    careline__v1__envelope__init(e);
    e->seq = seq;
    e->body_case = BODY(CANCEL);
    e->cancel = q;
    return e;
}

/* Every INVALID_ARGUMENT names its field, out-of-range values are called so, and a NUL in
 * other messages is refused the same way; nothing is written. */
static void fields_named(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 81, &f);
    int64_t station = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    long long req0 = count(pg, "SELECT count(*) FROM requests");
    ClEnvelope e;
    /* StatusQuery */
    Careline__V1__StatusQuery sq = CARELINE__V1__STATUS_QUERY__INIT;
    expect_invalid("status without a ref", raw_call(c, status_env(&e, &sq, 1), NULL, NULL, 0),
                   "request_id", NULL);
    sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_REQUEST_ID;
    sq.request_id = -4;
    expect_invalid("status id -4", raw_call(c, status_env(&e, &sq, 2), NULL, NULL, 0), "request_id",
                   NULL);
    static char longkey[200];
    memset(longkey, 'k', sizeof(longkey) - 1);
    sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_IDEMPOTENCY_KEY;
    sq.idempotency_key = longkey;
    expect_invalid("status long key", raw_call(c, status_env(&e, &sq, 3), NULL, NULL, 0),
                   "idempotency_key", NULL);
    sq.idempotency_key = (char *)"K#A";
    expect_invalid("status key K\\0A", raw_call(c, status_env(&e, &sq, 4), "K#A", "K\0A", 3),
                   "idempotency_key", "NUL");
    sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
    sq.caller_phone = (char *)"12ab";
    expect_invalid("status phone 12ab", raw_call(c, status_env(&e, &sq, 5), NULL, NULL, 0),
                   "caller_phone", NULL);
    /* CancelRequest */
    Careline__V1__CancelRequest cq = CARELINE__V1__CANCEL_REQUEST__INIT;
    cq.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_REQUEST_ID;
    cq.request_id = 0;
    expect_invalid("cancel id 0", raw_call(c, cancel_env(&e, &cq, 6), NULL, NULL, 0), "request_id",
                   NULL);
    static char longreason[600];
    memset(longreason, 'r', sizeof(longreason) - 1);
    cq.request_id = 1;
    cq.reason = longreason;
    expect_invalid("cancel long reason", raw_call(c, cancel_env(&e, &cq, 7), NULL, NULL, 0),
                   "reason", NULL);
    cq.reason = (char *)"a#b";
    expect_invalid("cancel reason a\\0b", raw_call(c, cancel_env(&e, &cq, 8), "a#b", "a\0b", 3),
                   "reason", "NUL");
    /* SubmitRequest: year 9999 is out of range, not "not a real date" */
    Careline__V1__SubmitRequest m;
    isess_meal(&m, fix_key("y9999"), phone);
    m.service_date = (char *)"9999-12-31";
    careline__v1__envelope__init(&e);
    e.seq = 9;
    e.body_case = BODY(SUBMIT);
    e.submit = &m;
    expect_invalid("date 9999-12-31", raw_call(c, &e, NULL, NULL, 0), "service_date",
                   "out of range");
    T_EQ_INT(count(pg, "SELECT count(*) FROM requests"), req0);
    cl_close(c);
    /* JobUpdate and StationStatus, from the station's console */
    ClConn *s = isess_login_as(&d, pg, "station", (long)station);
    Careline__V1__JobUpdate ju = CARELINE__V1__JOB_UPDATE__INIT;
    ju.action = S(JOB_ACTION__ACCEPT);
    careline__v1__envelope__init(&e);
    e.seq = 20;
    e.body_case = BODY(JOB_UPDATE);
    e.job_update = &ju;
    expect_invalid("job_id 0", raw_call(s, &e, NULL, NULL, 0), "job_id", NULL);
    ju.job_id = 5;
    ju.action = 99;
    e.seq = 21;
    expect_invalid("action 99", raw_call(s, &e, NULL, NULL, 0), "action", NULL);
    ju.action = S(JOB_ACTION__ACCEPT);
    ju.reason_code = S(REASON_CODE__STATION_FULL);
    e.seq = 22;
    expect_invalid("accept with a reason", raw_call(s, &e, NULL, NULL, 0), "reason_code", NULL);
    ju.reason_code = 0;
    ju.note = (char *)"a#b";
    e.seq = 23;
    expect_invalid("note a\\0b", raw_call(s, &e, "a#b", "a\0b", 3), "note", "NUL");
    Careline__V1__SlotCapacity cap = CARELINE__V1__SLOT_CAPACITY__INIT;
    cap.slot = S(MEAL_SLOT__LUNCH);
    cap.service_date = (char *)"9999-12-31";
    Careline__V1__SlotCapacity *caps[] = {&cap};
    Careline__V1__StationStatus st = CARELINE__V1__STATION_STATUS__INIT;
    st.open = true;
    st.n_capacity = 1;
    st.capacity = caps;
    careline__v1__envelope__init(&e);
    e.seq = 24;
    e.body_case = BODY(STATION_STATUS);
    e.station_status = &st;
    expect_invalid("capacity 9999-12-31", raw_call(s, &e, NULL, NULL, 0),
                   "capacity[0].service_date", "out of range");
    cap.service_date = (char *)"";
    cap.capacity_left = -1;
    e.seq = 25;
    expect_invalid("capacity_left -1", raw_call(s, &e, NULL, NULL, 0), "capacity[0].capacity_left",
                   "out of range");
    cap.capacity_left = 3;
    st.caregivers_on_duty = -2;
    e.seq = 26;
    expect_invalid("caregivers -2", raw_call(s, &e, NULL, NULL, 0), "caregivers_on_duty",
                   "out of range");
    st.caregivers_on_duty = 1;
    cap.service_date = (char *)"2026-12-01#";
    e.seq = 27;
    expect_invalid("capacity date NUL", raw_call(s, &e, "01#", "01\0", 3),
                   "capacity[0].service_date", "station_status.capacity[0].service_date");
    cl_close(s);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static bool json_message_utf8(const char *body)
{
    json_t *j = json_loads(body, 0, NULL); /* jansson refuses text that is not UTF-8 */
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    bool ok = msg && util_utf8_valid(msg, strlen(msg)) && strlen(msg) > 10;
    json_decref(j);
    return ok;
}

/* Replies never carry client bytes that are not UTF-8: the protocol Error (which strict
 * protobuf parsers would refuse whole) and HTTP error bodies. */
static void replies_are_utf8(void)
{
    PGconn *pg = itest_pg();
    char tok[64];
    itest_make_token(pg, "bureau", 0, tok);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_login_as(&d, pg, "bureau", 0);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = S(COVERAGE_SCOPE__SCOPE_TOWNS);
    q.town_code = (char *)"ab\xff\xfe";
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = 7;
    e.body_case = BODY(COVERAGE_QUERY);
    e.coverage_query = &q;
    ClEnvelope *r = raw_call(c, &e, NULL, NULL, 0);
    /* the whole reply re-packs to strings a strict parser takes */
    uint8_t buf[1024];
    size_t n = careline__v1__envelope__pack(r, buf);
    T_ASSERT(n < sizeof(buf));
    WireFault wf;
    T_EQ_INT(wirecheck_message(&careline__v1__envelope__descriptor, buf, n, 8, &wf), WIRE_OK);
    expect_invalid("town ab\\xff\\xfe", r, "town_code", "UTF-8");
    cl_close(c);
    /* HTTP: the query string is percent-decoded into those bytes, and the message quotes it */
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *hs[] = {auth, NULL};
    IhttpResp hr;
    T_EQ_INT(ihttp_request(d.http_port, "GET", "/v1/coverage/towns?town=ab%FF%FE", hs, "", 0, 20000,
                           &hr),
             400);
    if (!json_message_utf8(hr.body))
        t_fail(__FILE__, __LINE__, "HTTP 400 body without a UTF-8 message: %.300s", hr.body);
    T_ASSERT(strstr(hr.body, "\\\\xff")); /* escaped, and the backslash JSON-escaped */
    ihttp_free(&hr);
    /* a path with raw bytes: whatever evhttp makes of it, the body is UTF-8 */
    int st = ihttp_request(d.http_port, "GET", "/v1/x\xff\xfe", NULL, "", 0, 20000, &hr);
    T_ASSERT(st >= 400);
    if (hr.body_len > 0 && !util_utf8_valid(hr.body, hr.body_len))
        t_fail(__FILE__, __LINE__, "HTTP %d body is not UTF-8: %.300s", st, hr.body);
    ihttp_free(&hr);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"strings_nul_in_submit_refused", nul_in_submit_refused, 90},
        {"strings_fields_named", fields_named, 90},
        {"strings_replies_are_utf8", replies_are_utf8, 90},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
