/*
 * gen_seeds: writes the seed corpus of the fuzz harnesses (make fuzz-seeds): a few small
 * valid and invalid inputs per harness, built with the real codec so they stay in step with
 * proto/careline.proto. Usage: gen_seeds DIR (DIR/frame, DIR/messages, DIR/http, DIR/webhook).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/frame.h"

static const char *root;

static void put(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/seed-%s", root, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_str(const char *dir, const char *name, const char *s)
{
    put(dir, name, s, strlen(s));
}

/* messages: a role byte, then the Envelope without a frame header. */
static void put_msg(const char *name, uint8_t role, const Envelope *env)
{
    size_t n = careline__v1__envelope__get_packed_size(env);
    uint8_t *b = malloc(n + 1);
    b[0] = role;
    careline__v1__envelope__pack(env, b + 1);
    put("messages", name, b, n + 1);
    free(b);
}

#define ENV(var, field, CASE, msg)                                                                 \
    Envelope var = CARELINE__V1__ENVELOPE__INIT;                                                   \
    var.seq = 42;                                                                                  \
    var.body_case = CARELINE__V1__ENVELOPE__BODY_##CASE;                                           \
    var.field = &(msg)

enum { R_NONE, R_GATEWAY, R_STATION, R_BUREAU, R_ADMIN };

static void messages(void)
{
    Careline__V1__Location loc = CARELINE__V1__LOCATION__INIT;
    loc.lat = 30.0381;
    loc.lon = 121.1633;
    Careline__V1__SubmitRequest sr = CARELINE__V1__SUBMIT_REQUEST__INIT;
    sr.idempotency_key = (char *)"call-0001";
    sr.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
    sr.caller_phone = (char *)"+86 138-0000-1234";
    sr.kind = CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY;
    sr.meal_slot = CARELINE__V1__MEAL_SLOT__LUNCH;
    sr.service_date = (char *)"2099-12-01";
    sr.note = (char *)"少放盐";
    ENV(e1, submit, SUBMIT, sr);
    put_msg("submit-meal", R_GATEWAY, &e1);
    sr.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID;
    sr.resident_id = 12345;
    sr.kind = CARELINE__V1__SERVICE_KIND__HOME_CARE;
    sr.meal_slot = 0;
    sr.service_date = (char *)"";
    sr.care_subtype = CARELINE__V1__CARE_SUBTYPE__MEDICAL_ESCORT;
    sr.urgency = CARELINE__V1__URGENCY__URGENCY_URGENT;
    sr.location = &loc;
    put_msg("submit-care-located", R_ADMIN, &e1);
    sr.location = NULL;
    sr.service_date = (char *)"2024-02-30";
    sr.kind = CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY;
    sr.meal_slot = CARELINE__V1__MEAL_SLOT__DINNER;
    put_msg("submit-bad-date", R_GATEWAY, &e1);
    sr.idempotency_key = (char *)"";
    put_msg("submit-no-key", R_GATEWAY, &e1);

    Careline__V1__StatusQuery sq = CARELINE__V1__STATUS_QUERY__INIT;
    sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_REQUEST_ID;
    sq.request_id = 7;
    ENV(e2, status_query, STATUS_QUERY, sq);
    put_msg("status-id", R_GATEWAY, &e2);
    sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_IDEMPOTENCY_KEY;
    sq.idempotency_key = (char *)"call-0001";
    put_msg("status-key", R_GATEWAY, &e2);
    sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
    sq.caller_phone = (char *)"13800001234";
    put_msg("status-phone", R_ADMIN, &e2);

    Careline__V1__CancelRequest cr = CARELINE__V1__CANCEL_REQUEST__INIT;
    cr.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_CALLER_PHONE;
    cr.caller_phone = (char *)"0086 138 0000 1234";
    cr.reason = (char *)"家人已经送饭";
    ENV(e3, cancel, CANCEL, cr);
    put_msg("cancel-phone", R_GATEWAY, &e3);
    cr.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_REQUEST_ID;
    cr.request_id = -1;
    put_msg("cancel-bad-id", R_GATEWAY, &e3);

    Careline__V1__JobUpdate ju = CARELINE__V1__JOB_UPDATE__INIT;
    ju.job_id = 99;
    ju.action = CARELINE__V1__JOB_ACTION__REJECT;
    ju.reason_code = CARELINE__V1__REASON_CODE__NO_STAFF;
    ju.note = (char *)"今天人手不够";
    ENV(e4, job_update, JOB_UPDATE, ju);
    put_msg("job-reject", R_STATION, &e4);
    ju.action = CARELINE__V1__JOB_ACTION__FAIL;
    ju.reason_code = CARELINE__V1__REASON_CODE__RESIDENT_NOT_HOME;
    put_msg("job-fail", R_ADMIN, &e4);
    ju.action = CARELINE__V1__JOB_ACTION__ACCEPT;
    ju.reason_code = CARELINE__V1__REASON_CODE__NO_STAFF;
    put_msg("job-accept-with-reason", R_STATION, &e4);

    Careline__V1__SlotCapacity c1 = CARELINE__V1__SLOT_CAPACITY__INIT, c2 = c1;
    c1.slot = CARELINE__V1__MEAL_SLOT__LUNCH;
    c1.capacity_left = 12;
    c2.slot = CARELINE__V1__MEAL_SLOT__DINNER;
    c2.service_date = (char *)"2099-01-02";
    c2.capacity_left = 3;
    Careline__V1__SlotCapacity *caps[] = {&c1, &c2};
    Careline__V1__StationStatus ss = CARELINE__V1__STATION_STATUS__INIT;
    ss.open = true;
    ss.caregivers_on_duty = 4;
    ss.n_capacity = 2;
    ss.capacity = caps;
    ENV(e5, station_status, STATION_STATUS, ss);
    put_msg("station-open", R_STATION | (3 << 3), &e5);
    ss.capacity_only = true;
    ss.n_capacity = 0;
    put_msg("station-capacity-only", R_STATION, &e5);

    Careline__V1__CoverageQuery cq = CARELINE__V1__COVERAGE_QUERY__INIT;
    cq.scope = CARELINE__V1__COVERAGE_SCOPE__SCOPE_COUNTY;
    ENV(e6, coverage_query, COVERAGE_QUERY, cq);
    put_msg("coverage-county", R_BUREAU, &e6);
    cq.scope = CARELINE__V1__COVERAGE_SCOPE__SCOPE_VILLAGES;
    cq.town_code = (char *)"330281001000";
    cq.covered_only = true;
    put_msg("coverage-villages", R_BUREAU, &e6);
    cq.scope = CARELINE__V1__COVERAGE_SCOPE__SCOPE_HISTORY;
    cq.covered_only = false;
    cq.from_date = (char *)"2025-01-01";
    cq.to_date = (char *)"2025-03-31";
    put_msg("coverage-history", R_BUREAU, &e6);
    cq.scope = CARELINE__V1__COVERAGE_SCOPE__SCOPE_PLAN;
    cq.from_date = cq.to_date = NULL;
    cq.target = 0.9;
    put_msg("coverage-plan", R_ADMIN, &e6);
    cq.scope = CARELINE__V1__COVERAGE_SCOPE__SCOPE_SNAPSHOT;
    cq.town_code = NULL;
    cq.target = 0;
    cq.day = (char *)"2025-06-01";
    put_msg("coverage-snapshot", R_ADMIN, &e6);

    Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
    ping.nonce = 5;
    ENV(e7, ping, PING, ping);
    put_msg("ping", R_NONE, &e7);
}

/* messages, field by field (fuzz_messages.c build()): role | 0x80, then the fields. */
typedef struct {
    uint8_t b[512];
    size_t n;
} Buf;

static void b_u8(Buf *b, uint8_t v)
{
    b->b[b->n++] = v;
}

static void b_int(Buf *b, int64_t v) /* 8 bytes, little-endian */
{
    b_u8(b, 8);
    for (int i = 0; i < 8; i++)
        b_u8(b, (uint8_t)((uint64_t)v >> (8 * i)));
}

static void b_str(Buf *b, const char *s)
{
    while (*s)
        b_u8(b, (uint8_t)*s++);
    b_u8(b, 0xff);
}

static void fields(void)
{
    Buf b = {.n = 0};
    b_u8(&b, 0x80 | R_GATEWAY);
    b_int(&b, 42); /* seq */
    b_u8(&b, 0);   /* SubmitRequest */
    b_str(&b, "call-0002");
    b_u8(&b, 1); /* by phone */
    b_str(&b, "+8613800001234");
    b_int(&b, CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY);
    b_int(&b, CARELINE__V1__MEAL_SLOT__DINNER);
    b_str(&b, "");
    b_int(&b, 0);
    b_str(&b, "门口有狗");
    b_int(&b, 0);
    b_u8(&b, 1); /* a location */
    b_u8(&b, 0);
    b_int(&b, 30);
    b_u8(&b, 0);
    b_int(&b, 121);
    put("messages", "fields-submit", b.b, b.n);

    b.n = 0;
    b_u8(&b, 0x80 | R_STATION);
    b_int(&b, 43);
    b_u8(&b, 4); /* StationStatus */
    b_u8(&b, 1);
    b_u8(&b, 0);
    b_int(&b, 3);
    b_u8(&b, 2);
    b_int(&b, CARELINE__V1__MEAL_SLOT__LUNCH);
    b_str(&b, "");
    b_int(&b, 10);
    b_int(&b, CARELINE__V1__MEAL_SLOT__DINNER);
    b_str(&b, "2099-03-01");
    b_int(&b, 0);
    put("messages", "fields-station", b.b, b.n);

    b.n = 0;
    b_u8(&b, 0x80 | R_BUREAU);
    b_int(&b, 44);
    b_u8(&b, 5); /* CoverageQuery */
    b_int(&b, CARELINE__V1__COVERAGE_SCOPE__SCOPE_REALIZED);
    b_str(&b, "330281002000");
    b_u8(&b, 0);
    b_u8(&b, 0);
    b_str(&b, "2025-02-01");
    b_str(&b, "2025-02-28");
    b_u8(&b, 0);
    b_int(&b, 0);
    b_str(&b, "");
    put("messages", "fields-coverage", b.b, b.n);

    b.n = 0;
    b_u8(&b, 0x80 | R_GATEWAY);
    b_int(&b, 45);
    b_u8(&b, 2); /* CancelRequest by key */
    b_u8(&b, 2);
    b_str(&b, "call-0002");
    b_str(&b, "不需要了");
    put("messages", "fields-cancel", b.b, b.n);
}

/* frame: flags, chunk seed, then the stream. */
static void frames(void)
{
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = (char *)"station-token-0123456789";
    h.client_name = (char *)"station-console/1.0";
    ENV(e1, hello, HELLO, h);
    Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
    ping.nonce = 77;
    ENV(e2, ping, PING, ping);
    uint8_t buf[1024];
    size_t n = 2;
    buf[0] = 1 << 2; /* chunks of up to 2 bytes */
    buf[1] = 9;
    n += frame_pack(&e1, buf + n);
    n += frame_pack(&e2, buf + n);
    n += frame_pack(&e2, buf + n);
    put("frame", "hello-ping-ping", buf, n);
    buf[0] = 1 | (7 << 2); /* EOF inside the last frame */
    put("frame", "truncated", buf, n - 3);
    static const uint8_t empty[] = {0, 0, 0, 0, 0, 0};
    put("frame", "empty", empty, sizeof(empty));
    static const uint8_t large[] = {2, 0, 0, 0, 0, 101, 1, 2, 3};
    put("frame", "too-large", large, sizeof(large));
    static const uint8_t bad[] = {0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff};
    put("frame", "bad-envelope", bad, sizeof(bad));
}

static void http(void)
{
    put_str("http", "county", "/v1/coverage?town=330281001000&from=2025-01-01&to=2025-01-31");
    put_str("http", "towns-csv", "/v1/coverage/towns?format=csv");
    put_str("http", "villages", "/v1/coverage/villages?covered=false&town=330281002000");
    put_str("http", "history", "/v1/coverage/history?from=2025-01-01");
    put_str("http", "plan", "/v1/plan?target=0.95&format=json");
    put_str("http", "realized", "/v1/realized?from=2025-05-01&to=2025-05-31");
    put_str("http", "snapshot", "/v1/coverage/snapshot?day=2025-06-01");
    put_str("http", "absolute", "http://localhost:8080/v1/coverage?town=330281001000#x");
    put_str("http", "bad-param", "/v1/plan?target=2&town=");
    put_str("http", "escaped", "/v1/coverage?town=33028100%31000&to=2025-02-30");
}

static void webhook(void)
{
    put_str("webhook", "meal",
            "\001"
            "1700000000\nx\n"
            "{\"call_id\":\"c-1\",\"caller\":\"+86 138-0000-1234\",\"called\":\"96345\","
            "\"time\":1700000000,\"digits\":\"1\",\"speech_text\":\"要一份午饭\"}");
    put_str("webhook", "care",
            "\001"
            "1700000100\nx\n"
            "{\"call_id\":\"c-2\",\"caller\":\"13800001234\",\"digits\":\"43\"}");
    put_str("webhook", "operator",
            "\003"
            "1700000000\nx\n"
            "{\"call_id\":\"c-3\",\"caller\":\"13800001234\",\"digits\":\"0\","
            "\"speech_text\":null,\"time\":null}");
    put_str("webhook", "status",
            "\001"
            "1700000000\nx\n"
            "{\"call_id\":\"c-4\",\"caller\":\"13800001234\",\"digits\":\"8\"}");
    put_str("webhook", "forged",
            "\004"
            "1700000000\nsha256=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
            "{\"call_id\":\"c-5\",\"caller\":\"13800001234\"}");
    put_str("webhook", "stale",
            "\001"
            "1600000000\nx\n{}");
    put_str("webhook", "bad-json",
            "\001"
            "1700000000\nx\n{\"call_id\":\"c-6\",");
    put_str("webhook", "dup-key",
            "\001"
            "1700000000\nx\n{\"call_id\":\"a\",\"call_id\":\"b\"}");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    messages();
    fields();
    frames();
    http();
    webhook();
    return 0;
}
