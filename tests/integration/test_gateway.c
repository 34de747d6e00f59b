/*
 * Integration tests of bin/hotline-gw against a real dispatchd, PostgreSQL and Redis: the
 * signed webhook (through curl and through ihttp + OpenSSL HMAC), the IVR digits (submit,
 * status, cancel, operator, unknown), a retried webhook giving one request, calls spooled
 * while the daemon is down and sent exactly once and in order when it is back (also after
 * the gateway itself was killed), the --stdio mode, and each kind of bad input.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "ihttp.h"
#include "iproc.h"
#include "itest.h"
#include "t.h"

#define SECRET      "test-webhook-secret-0123456789abcdef" /* >= 32 bytes */
#define SAY_SPOOLED "您的需求已经记录，我们会给您回电。"

typedef struct {
    pid_t pid;
    int port;
    char log[512];
    char port_file[512];
} Gwp;

static Daemon d;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static void gw_dump_log(const Gwp *g)
{
    iproc_dump_file(g->log);
}

/* Starts bin/hotline-gw on an ephemeral HTTP port talking to daemon_port. */
static void gw_start(Gwp *g, int daemon_port, const char *token, const char *spool_dir)
{
    static int seq;
    seq++;
    memset(g, 0, sizeof(*g));
    char bin[512], tokfile[600], secfile[600], a[8][700];
    snprintf(bin, sizeof(bin), "%s/hotline-gw", t_env("CARELINE_BIN"));
    snprintf(g->log, sizeof(g->log), "%s/gw-%d.log", t_tmpdir(), seq);
    snprintf(g->port_file, sizeof(g->port_file), "%s/gw-ports-%d", t_tmpdir(), seq);
    snprintf(tokfile, sizeof(tokfile), "%s/gw-token", t_tmpdir());
    snprintf(secfile, sizeof(secfile), "%s/gw-secret", t_tmpdir());
    write_file(tokfile, token);
    write_file(secfile, SECRET "\n");
    snprintf(a[0], sizeof(a[0]), "--daemon_port=%d", daemon_port);
    snprintf(a[1], sizeof(a[1]), "--token_file=%s", tokfile);
    snprintf(a[2], sizeof(a[2]), "--webhook_secret_file=%s", secfile);
    snprintf(a[3], sizeof(a[3]), "--spool_dir=%s", spool_dir);
    snprintf(a[4], sizeof(a[4]), "--port_file=%s", g->port_file);
    const char *argv[] = {bin,
                          "--http_port=0",
                          a[0],
                          a[1],
                          a[2],
                          a[3],
                          a[4],
                          "--log_level=debug",
                          "--reconnect_max_ms=500",
                          "--daemon_plaintext=1", /* the test daemon is plaintext on loopback */
                          NULL};
    g->pid = iproc_spawn(argv, IPROC_INHERIT, IPROC_ERRFILE, g->log, true);
    if (iproc_scan_file(g->pid, g->port_file, 10000, 1, "http %d", &g->port))
        return;
    gw_dump_log(g);
    t_fail(__FILE__, __LINE__, "hotline-gw did not start (log above)");
}

static int gw_stop(Gwp *g, int sig)
{
    return iproc_stop(&g->pid, sig, 10000);
}

static void hmac_hex(const char *ts, const char *body, char hex[65])
{
    char *msg = malloc(strlen(ts) + strlen(body) + 2);
    sprintf(msg, "%s.%s", ts, body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned ml = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, strlen(msg), mac, &ml);
    free(msg);
    for (unsigned i = 0; i < ml; i++)
        sprintf(hex + 2 * i, "%02x", mac[i]);
}

/* POSTs a call event signed with a timestamp of now + ts_delta; returns the JSON answer
 * (json_decref it) and the status in *status. */
static json_t *post_call_ex(const Gwp *g, const char *body, long ts_delta, const char *ctype,
                            int *status)
{
    char ts[32], sig[65], h1[64], h2[128], h3[128];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL) + ts_delta);
    hmac_hex(ts, body, sig);
    snprintf(h1, sizeof(h1), "Content-Type: %s", ctype);
    snprintf(h2, sizeof(h2), "X-Careline-Timestamp: %s", ts);
    snprintf(h3, sizeof(h3), "X-Careline-Signature: %s", sig);
    const char *hs[] = {h1, h2, h3, NULL};
    IhttpResp r;
    *status = ihttp_request(g->port, "POST", "/v1/calls", hs, body, strlen(body), 10000, &r);
    if (*status < 0) {
        gw_dump_log(g);
        t_fail(__FILE__, __LINE__, "no HTTP answer from hotline-gw");
    }
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    if (!j)
        t_fail(__FILE__, __LINE__, "answer is not JSON: %s", r.body);
    T_ASSERT(strstr(r.content_type, "application/json") != NULL);
    ihttp_free(&r);
    return j;
}

static json_t *post_call(const Gwp *g, const char *body, long ts_delta)
{
    int status;
    json_t *j = post_call_ex(g, body, ts_delta, "application/json", &status);
    if (status != 200) {
        char *s = json_dumps(j, 0);
        t_fail(__FILE__, __LINE__, "status %d: %s", status, s);
    }
    return j;
}

static const char *jstr(json_t *j, const char *k)
{
    const char *s = json_string_value(json_object_get(j, k));
    return s ? s : "";
}

static char *call_body(const char *id, const char *phone, const char *digits)
{
    static char b[512];
    snprintf(b, sizeof(b),
             "{\"call_id\":\"%s\",\"caller\":\"%s\",\"called\":\"96345\",\"time\":%lld,"
             "\"digits\":\"%s\"}",
             id, phone, (long long)time(NULL), digits);
    return b;
}

/* A registered urban resident's phone; n picks a different one per test. */
static void resident_phone(PGconn *pg, int n, char out[32])
{
    char off[16];
    snprintf(off, sizeof(off), "%d", n);
    const char *p[] = {off};
    PGresult *r = itest_sql(pg,
                            "SELECT phone FROM residents r JOIN villages v ON v.code = "
                            "r.village_code WHERE v.area_kind = 'urban' ORDER BY r.id "
                            "OFFSET $1::int LIMIT 1",
                            1, p);
    T_EQ_INT(PQntuples(r), 1);
    snprintf(out, 32, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static long long count_key(PGconn *pg, const char *key)
{
    const char *p[] = {key};
    return itest_sql_ll(pg, "SELECT count(*) FROM requests WHERE idempotency_key = $1", 1, p);
}

static void unique_id(char *out, size_t n, const char *tag)
{
    static int k;
    snprintf(out, n, "%s-%d-%lld-%d", tag, (int)getpid(), (long long)time(NULL), ++k);
}

static long long gw_health(const Gwp *g, const char *key)
{
    IhttpResp r;
    if (ihttp_request(g->port, "GET", "/healthz", NULL, NULL, 0, 5000, &r) != 200)
        t_fail(__FILE__, __LINE__, "healthz failed");
    json_t *j = json_loads(r.body, 0, NULL);
    ihttp_free(&r);
    T_ASSERT(j);
    json_t *v = json_object_get(j, key);
    long long x = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
    json_decref(j);
    return x;
}

static long long gw_metric(const Gwp *g, const char *name)
{
    IhttpResp r;
    if (ihttp_request(g->port, "GET", "/metrics", NULL, NULL, 0, 5000, &r) != 200)
        t_fail(__FILE__, __LINE__, "metrics failed");
    long long v = itest_metric_in(r.body, name);
    ihttp_free(&r);
    return v;
}

/* Waits (bounded) until the gateway's link to the daemon is up. */
static void wait_link(const Gwp *g, long long want)
{
    for (int i = 0; i < 300; i++) {
        if (gw_health(g, "daemon_up") == want)
            return;
        iproc_sleep_ms(50);
    }
    gw_dump_log(g);
    t_fail(__FILE__, __LINE__, "daemon link never became %lld", want);
}

static char *spool_dir(void)
{
    static char p[600];
    snprintf(p, sizeof(p), "%s/spool", t_tmpdir());
    return p;
}

/* true when the Redis stream of the station holds an entry whose field request = id. */
static bool in_station_stream(long long station, long long request_id)
{
    redisContext *rc = fix_redis();
    bool found = fix_stream_count(rc, station, request_id) > 0;
    redisFree(rc);
    return found;
}

/* ---- cases --------------------------------------------------------------------------- */

static void webhook_curl_and_digits(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_start(&d, NULL);
    char tok[64], phone[32], id[96], cmd[2048], path[600];
    itest_make_token(pg, "gateway", 0, tok);
    Gwp g;
    gw_start(&g, d.proto_port, tok, spool_dir());
    wait_link(&g, 1);
    resident_phone(pg, 0, phone);

    /* 3 = lunch tomorrow, through curl, HMAC computed here */
    unique_id(id, sizeof(id), "curl");
    const char *body = call_body(id, phone, "3");
    char ts[32], sig[65];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    hmac_hex(ts, body, sig);
    snprintf(path, sizeof(path), "%s/curl-out.json", t_tmpdir());
    snprintf(cmd, sizeof(cmd),
             "curl -sS -o %s -w '%%{http_code}' -H 'Content-Type: application/json' "
             "-H 'X-Careline-Timestamp: %s' -H 'X-Careline-Signature: %s' --data '%s' "
             "http://127.0.0.1:%d/v1/calls",
             path, ts, sig, body, g.port);
    FILE *p = popen(cmd, "r");
    T_ASSERT(p);
    char code[16] = "";
    T_ASSERT(fgets(code, sizeof(code), p));
    T_EQ_INT(pclose(p), 0);
    T_EQ_STR(code, "200");
    json_t *j = json_load_file(path, 0, NULL);
    T_ASSERT(j);
    T_EQ_STR(jstr(j, "outcome"), "answered");
    T_EQ_STR(jstr(j, "state"), "QUEUED");
    T_EQ_STR(jstr(j, "next"), "hangup");
    T_ASSERT(strlen(jstr(j, "speech")) > 10 && strstr(jstr(j, "speech"), "午餐"));
    long long rid = json_integer_value(json_object_get(j, "request_id"));
    T_ASSERT(rid > 0);
    json_decref(j);
    /* in PostgreSQL by idempotency key, and in the station's Redis stream */
    const char *kp[] = {id};
    PGresult *r = itest_sql(pg,
                            "SELECT id, station_id, state, kind, meal_slot, "
                            "service_date = careline_local_date(now()) + 1 "
                            "FROM requests WHERE idempotency_key = $1",
                            1, kp);
    T_EQ_INT(PQntuples(r), 1);
    T_EQ_INT(atoll(PQgetvalue(r, 0, 0)), rid);
    long long station = atoll(PQgetvalue(r, 0, 1));
    T_EQ_STR(PQgetvalue(r, 0, 2), "queued");
    T_EQ_STR(PQgetvalue(r, 0, 3), "meal_delivery");
    T_EQ_STR(PQgetvalue(r, 0, 4), "lunch");
    T_EQ_STR(PQgetvalue(r, 0, 5), "t");
    PQclear(r);
    T_ASSERT(in_station_stream(station, rid));

    /* 8 = status of my last request (ihttp + HMAC) */
    unique_id(id, sizeof(id), "status");
    j = post_call(&g, call_body(id, phone, "8"), 0);
    T_EQ_STR(jstr(j, "outcome"), "answered");
    T_EQ_INT(json_integer_value(json_object_get(j, "request_id")), rid);
    T_EQ_STR(jstr(j, "state"), "QUEUED");
    T_ASSERT(strlen(jstr(j, "speech")) > 5);
    json_decref(j);
    T_EQ_INT(count_key(pg, id), 0); /* a status query creates nothing */

    /* 9 = cancel my last request */
    unique_id(id, sizeof(id), "cancel");
    j = post_call(&g, call_body(id, phone, "9"), 0);
    T_EQ_STR(jstr(j, "outcome"), "answered");
    T_EQ_INT(json_integer_value(json_object_get(j, "request_id")), rid);
    T_ASSERT(json_is_true(json_object_get(j, "cancelled")));
    json_decref(j);
    char rids[32];
    snprintf(rids, sizeof(rids), "%lld", rid);
    const char *rp[] = {rids};
    r = itest_sql(pg, "SELECT state FROM requests WHERE id = $1::bigint", 1, rp);
    T_EQ_STR(PQgetvalue(r, 0, 0), "cancelled");
    PQclear(r);

    /* 4 then 1 = home care, bathing; 4 alone asks for the subtype */
    unique_id(id, sizeof(id), "care");
    j = post_call(&g, call_body(id, phone, "4"), 0);
    T_EQ_STR(jstr(j, "outcome"), "menu");
    T_EQ_STR(jstr(j, "next"), "collect_digits");
    T_ASSERT(strstr(jstr(j, "speech"), "助浴"));
    json_decref(j);
    T_EQ_INT(count_key(pg, id), 0);
    j = post_call(&g, call_body(id, phone, "41"), 0);
    T_EQ_STR(jstr(j, "outcome"), "answered");
    json_decref(j);
    const char *cp[] = {id};
    r = itest_sql(pg, "SELECT kind, care_subtype FROM requests WHERE idempotency_key = $1", 1, cp);
    T_EQ_INT(PQntuples(r), 1);
    T_EQ_STR(PQgetvalue(r, 0, 0), "home_care");
    T_EQ_STR(PQgetvalue(r, 0, 1), "bathing");
    PQclear(r);

    /* 0 = operator: recorded as a callback request */
    unique_id(id, sizeof(id), "operator");
    j = post_call(&g, call_body(id, phone, "0"), 0);
    T_EQ_STR(jstr(j, "outcome"), "answered");
    json_decref(j);
    const char *op[] = {id};
    r = itest_sql(pg, "SELECT care_subtype, note FROM requests WHERE idempotency_key = $1", 1, op);
    T_EQ_INT(PQntuples(r), 1);
    T_ASSERT(strstr(PQgetvalue(r, 0, 1), "请回电") != NULL);
    PQclear(r);

    /* an unknown digit: the menu again, nothing recorded */
    unique_id(id, sizeof(id), "unknown");
    j = post_call(&g, call_body(id, phone, "7"), 0);
    T_EQ_STR(jstr(j, "outcome"), "menu");
    T_ASSERT(strstr(jstr(j, "speech"), "请按1"));
    json_decref(j);
    T_EQ_INT(count_key(pg, id), 0);

    /* the gateway's log never holds the full number */
    snprintf(cmd, sizeof(cmd), "grep -c '%s' %s", phone, g.log);
    T_ASSERT(system(cmd) != 0);
    T_EQ_INT(gw_stop(&g, SIGTERM), 0);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    PQfinish(pg);
}

static void retried_webhook_one_request(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_start(&d, NULL);
    char tok[64], phone[32], id[96];
    Gwp g;
    gw_start(&g, d.proto_port, itest_make_token(pg, "gateway", 0, tok), spool_dir());
    wait_link(&g, 1);
    resident_phone(pg, 1, phone);
    unique_id(id, sizeof(id), "retry");
    char body[512];
    snprintf(body, sizeof(body), "%s", call_body(id, phone, "3"));
    long long first = 0;
    for (int i = 0; i < 3; i++) {
        /* the call centre re-signs each delivery: a different timestamp each time (5 s
         * apart, so a second boundary passing between two posts cannot make two equal) */
        json_t *j = post_call(&g, body, -5 * i);
        T_EQ_STR(jstr(j, "outcome"), "answered");
        long long rid = json_integer_value(json_object_get(j, "request_id"));
        if (i == 0)
            first = rid;
        T_EQ_INT(rid, first);
        T_EQ_INT(json_is_true(json_object_get(j, "duplicate")), i > 0);
        json_decref(j);
    }
    T_EQ_INT(count_key(pg, id), 1);
    T_EQ_INT(gw_stop(&g, SIGTERM), 0);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    PQfinish(pg);
}

/* Daemon down: calls are spooled and the caller hears the callback sentence; the gateway is
 * even killed; once both are back every call is submitted exactly once, in order. */
static void spooled_while_daemon_down(void)
{
    PGconn *pg = itest_pg();
    int port = iproc_free_port();
    char lp[32];
    snprintf(lp, sizeof(lp), "--listen_port=%d", port);
    const char *extra[] = {lp, NULL};
    itest_daemon_start(&d, extra);
    char tok[64], tokcopy[64], phone[32], ids[4][96];
    snprintf(tokcopy, sizeof(tokcopy), "%s", itest_make_token(pg, "gateway", 0, tok));
    Gwp g;
    gw_start(&g, port, tokcopy, spool_dir());
    wait_link(&g, 1);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    wait_link(&g, 0);
    const char *digits[] = {"3", "42", "0", "3"};
    for (int i = 0; i < 4; i++) {
        resident_phone(pg, 2 + i, phone);
        unique_id(ids[i], sizeof(ids[i]), "spool");
        json_t *j = post_call(&g, call_body(ids[i], phone, digits[i]), 0);
        T_EQ_STR(jstr(j, "outcome"), "spooled");
        T_EQ_STR(jstr(j, "speech"), SAY_SPOOLED);
        json_decref(j);
    }
    /* a retry of a spooled call joins it: not spooled twice */
    resident_phone(pg, 2, phone);
    json_t *j = post_call(&g, call_body(ids[0], phone, "3"), -1);
    T_EQ_STR(jstr(j, "outcome"), "spooled");
    json_decref(j);
    T_EQ_INT(gw_health(&g, "spool_pending"), 4);
    T_EQ_INT(gw_metric(&g, "hotline_gw_spool_appended_total"), 4);
    /* status / cancel cannot be answered now: said honestly */
    j = post_call(&g, call_body("status-down", phone, "8"), 0);
    T_EQ_STR(jstr(j, "outcome"), "unavailable");
    json_decref(j);
    /* the spool is private and holds no number outside the records to send */
    struct stat st;
    char path[700];
    snprintf(path, sizeof(path), "%s/spool.log", spool_dir());
    T_ASSERT(stat(path, &st) == 0);
    T_EQ_INT(st.st_mode & 0777, 0600);
    T_ASSERT(stat(spool_dir(), &st) == 0);
    T_EQ_INT(st.st_mode & 0777, 0700);
    for (int i = 0; i < 4; i++)
        T_EQ_INT(count_key(pg, ids[i]), 0);
    /* the gateway dies hard; the spool survives */
    T_EQ_INT(gw_stop(&g, SIGKILL), 128 + SIGKILL);
    itest_daemon_start(&d, extra);
    gw_start(&g, port, tokcopy, spool_dir());
    for (int i = 0; i < 400 && gw_health(&g, "spool_pending") > 0; i++)
        iproc_sleep_ms(50);
    T_EQ_INT(gw_health(&g, "spool_pending"), 0);
    T_EQ_INT(gw_metric(&g, "hotline_gw_submitted_total"), 4);
    snprintf(path, sizeof(path), "grep -c '\"phone\"' %s/spool.log", spool_dir());
    T_ASSERT(system(path) != 0); /* drained: compacted at once, no number left on disk */
    const char *p[] = {ids[0], ids[1], ids[2], ids[3]};
    PGresult *r = itest_sql(pg,
                            "SELECT idempotency_key, created_at FROM requests WHERE "
                            "idempotency_key IN ($1, $2, $3, $4)",
                            4, p);
    /* each exactly once (the key is unique). Not their order: request ids and commit times
     * are not ordered across the daemon's pool connections, which record a burst in parallel */
    T_EQ_INT(PQntuples(r), 4);
    PQclear(r);
    for (int i = 0; i < 4; i++)
        T_EQ_INT(count_key(pg, ids[i]), 1);
    /* a restart after that sends nothing again: the spool was compacted */
    T_EQ_INT(gw_stop(&g, SIGTERM), 0);
    gw_start(&g, port, tokcopy, spool_dir());
    wait_link(&g, 1);
    T_EQ_INT(gw_health(&g, "spool_pending"), 0);
    T_EQ_INT(gw_metric(&g, "hotline_gw_submitted_total"), 0);
    snprintf(path, sizeof(path), "grep -c '\"phone\"' %s/spool.log", spool_dir());
    T_ASSERT(system(path) != 0); /* no record (and no number) left on disk */
    T_EQ_INT(gw_stop(&g, SIGTERM), 0);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    PQfinish(pg);
}

static void expect_bad(const Gwp *g, const char *method, const char *path, const char *const *hs,
                       const char *body, size_t len, int want_status, const char *want_error)
{
    IhttpResp r;
    int st = ihttp_request(g->port, method, path, hs, body, len, 10000, &r);
    if (st != want_status)
        t_fail(__FILE__, __LINE__, "%s: status %d, expected %d: %s", want_error, st, want_status,
               r.body ? r.body : "");
    json_t *j = json_loads(r.body, 0, NULL);
    if (!j)
        t_fail(__FILE__, __LINE__, "%s: not JSON: %s", want_error, r.body);
    T_EQ_STR(jstr(j, "error"), want_error);
    T_ASSERT(strlen(jstr(j, "reason")) > 5);
    json_decref(j);
    ihttp_free(&r);
}

static void bad_input(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_start(&d, NULL);
    char tok[64], phone[32], id[96];
    Gwp g;
    gw_start(&g, d.proto_port, itest_make_token(pg, "gateway", 0, tok), spool_dir());
    wait_link(&g, 1);
    resident_phone(pg, 6, phone);
    unique_id(id, sizeof(id), "bad");
    char good[512], ts[32], sig[65], h2[96], h3[128];
    snprintf(good, sizeof(good), "%s", call_body(id, phone, "3"));
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    hmac_hex(ts, good, sig);
    snprintf(h2, sizeof(h2), "X-Careline-Timestamp: %s", ts);
    snprintf(h3, sizeof(h3), "X-Careline-Signature: %s", sig);
    int status;
    /* invalid JSON, missing fields (each properly signed) */
    json_t *j = post_call_ex(&g, "{\"call_id\": \"x\", ", 0, "application/json", &status);
    T_EQ_INT(status, 400);
    T_EQ_STR(jstr(j, "error"), "invalid_json");
    json_decref(j);
    j = post_call_ex(&g, "{\"caller\":\"13900000001\",\"digits\":\"3\"}", 0, "application/json",
                     &status);
    T_EQ_INT(status, 400);
    T_EQ_STR(jstr(j, "error"), "invalid_field");
    T_ASSERT(strstr(jstr(j, "reason"), "call_id"));
    json_decref(j);
    j = post_call_ex(&g, "{\"call_id\":\"bad-nocaller\",\"digits\":\"3\"}", 0, "application/json",
                     &status);
    T_EQ_INT(status, 400);
    T_ASSERT(strstr(jstr(j, "reason"), "caller"));
    json_decref(j);
    j = post_call_ex(&g, "[1,2]", 0, "application/json", &status);
    T_EQ_INT(status, 400);
    T_EQ_STR(jstr(j, "error"), "invalid_json"); /* JSON, but not an object */
    json_decref(j);
    /* wrong content type */
    j = post_call_ex(&g, good, 0, "text/plain", &status);
    T_EQ_INT(status, 415);
    T_EQ_STR(jstr(j, "error"), "wrong_content_type");
    json_decref(j);
    /* oversized body (20 KiB, signed) */
    size_t big_n = 20 * 1024;
    char *big = malloc(big_n + 1);
    memset(big, ' ', big_n);
    memcpy(big, good, strlen(good));
    big[big_n] = '\0';
    j = post_call_ex(&g, big, 0, "application/json", &status);
    T_EQ_INT(status, 413);
    T_EQ_STR(jstr(j, "error"), "too_large");
    json_decref(j);
    free(big);
    /* no signature, stale timestamp, wrong signature */
    const char *ct = "Content-Type: application/json";
    const char *h_nosig[] = {ct, NULL};
    expect_bad(&g, "POST", "/v1/calls", h_nosig, good, strlen(good), 401, "missing_signature");
    j = post_call_ex(&g, good, -600, "application/json", &status);
    T_EQ_INT(status, 401);
    T_EQ_STR(jstr(j, "error"), "stale_timestamp");
    json_decref(j);
    j = post_call_ex(&g, good, +600, "application/json", &status);
    T_EQ_INT(status, 401);
    json_decref(j);
    char badsig[128];
    snprintf(badsig, sizeof(badsig), "X-Careline-Signature: %s", sig);
    badsig[strlen(badsig) - 1] = sig[63] == '0' ? '1' : '0';
    const char *h_badsig[] = {ct, h2, badsig, NULL};
    expect_bad(&g, "POST", "/v1/calls", h_badsig, good, strlen(good), 401, "bad_signature");
    /* the body changed after signing */
    const char *h_good[] = {ct, h2, h3, NULL};
    char tampered[512];
    snprintf(tampered, sizeof(tampered), "%s", good);
    tampered[strlen(tampered) - 3] = '9';
    expect_bad(&g, "POST", "/v1/calls", h_good, tampered, strlen(tampered), 401, "bad_signature");
    /* nothing so far reached the daemon; now the good one, then its replay */
    T_EQ_INT(count_key(pg, id), 0);
    IhttpResp r;
    T_EQ_INT(ihttp_request(g.port, "POST", "/v1/calls", h_good, good, strlen(good), 10000, &r),
             200);
    ihttp_free(&r);
    T_EQ_INT(count_key(pg, id), 1);
    expect_bad(&g, "POST", "/v1/calls", h_good, good, strlen(good), 409, "replayed");
    /* method and path */
    expect_bad(&g, "GET", "/v1/calls", NULL, NULL, 0, 405, "method_not_allowed");
    expect_bad(&g, "GET", "/nope", NULL, NULL, 0, 404, "not_found");
    /* counted */
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"invalid_json\"}"), 2);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"invalid_field\"}"), 2);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"wrong_content_type\"}"), 1);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"too_large\"}"), 1);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"missing_signature\"}"), 1);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"stale_timestamp\"}"), 2);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"bad_signature\"}"), 2);
    T_EQ_INT(gw_metric(&g, "hotline_gw_bad_requests_total{reason=\"replayed\"}"), 1);
    T_EQ_INT(gw_metric(&g, "hotline_gw_calls_total{outcome=\"answered\"}"), 1);
    PQclear(itest_sql(pg, "SELECT 1", 0, NULL));
    const char *lp[] = {"bad-%"};
    PGresult *x = itest_sql(pg,
                            "SELECT count(*) FROM requests WHERE idempotency_key LIKE $1 "
                            "AND idempotency_key <> 'bad-nocaller'",
                            1, lp);
    T_EQ_INT(atoll(PQgetvalue(x, 0, 0)), 1); /* only the good one */
    PQclear(x);
    T_ASSERT(gw_health(&g, "daemon_up") == 1);
    T_EQ_INT(gw_stop(&g, SIGTERM), 0);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    PQfinish(pg);
}

/* --stdio: JSON lines in, JSON lines out, then exit at EOF. */
static void stdio_mode(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_start(&d, NULL);
    char tok[64], phone[32], id[96], tokfile[600], cmd[2400], out[600];
    itest_make_token(pg, "gateway", 0, tok);
    snprintf(tokfile, sizeof(tokfile), "%s/stdio-token", t_tmpdir());
    write_file(tokfile, tok);
    resident_phone(pg, 7, phone);
    unique_id(id, sizeof(id), "stdio");
    char in[600];
    snprintf(in, sizeof(in), "%s/in.jsonl", t_tmpdir());
    FILE *f = fopen(in, "w");
    fprintf(f, "%s\n", call_body(id, phone, "3"));
    fprintf(f, "not json\n");
    fprintf(f, "%s\n", call_body("stdio-menu", phone, "5"));
    fclose(f);
    snprintf(out, sizeof(out), "%s/out.jsonl", t_tmpdir());
    snprintf(
        cmd, sizeof(cmd),
        "timeout 30 %s/hotline-gw --stdio --daemon_plaintext=1 --daemon_port=%d --token_file=%s "
        "--spool_dir=%s/stdio-spool < %s > %s 2>%s/stdio.log",
        t_env("CARELINE_BIN"), d.proto_port, tokfile, t_tmpdir(), in, out, t_tmpdir());
    T_EQ_INT(system(cmd), 0);
    f = fopen(out, "r");
    T_ASSERT(f);
    char line[4096];
    int n = 0, answered = 0, menu = 0, bad = 0;
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        T_ASSERT(j);
        n++;
        if (!strcmp(jstr(j, "outcome"), "answered") && !strcmp(jstr(j, "call_id"), id))
            answered++;
        if (!strcmp(jstr(j, "outcome"), "menu"))
            menu++;
        if (!strcmp(jstr(j, "error"), "invalid_json"))
            bad++;
        json_decref(j);
    }
    fclose(f);
    T_EQ_INT(n, 3);
    T_EQ_INT(answered, 1);
    T_EQ_INT(menu, 1);
    T_EQ_INT(bad, 1);
    T_EQ_INT(count_key(pg, id), 1);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    PQfinish(pg);
}

/* hotline-gw -t with the secret given one way; its exit status, output into out. */
static int gw_check(const char *env_secret, const char *file_text, char *out, size_t n)
{
    char tokfile[600], secfile[600], cmd[3000];
    snprintf(tokfile, sizeof(tokfile), "%s/chk-token", t_tmpdir());
    snprintf(secfile, sizeof(secfile), "%s/chk-secret", t_tmpdir());
    write_file(tokfile, "some-token");
    write_file(secfile, file_text ? file_text : "");
    snprintf(cmd, sizeof(cmd), "%s%s%s '%s/hotline-gw' -t --token_file='%s' %s%s%s",
             env_secret ? "CARELINE_GW_WEBHOOK_SECRET='" : "env -u CARELINE_GW_WEBHOOK_SECRET",
             env_secret ? env_secret : "", env_secret ? "'" : "", t_env("CARELINE_BIN"), tokfile,
             file_text ? "--webhook_secret_file='" : "", file_text ? secfile : "",
             file_text ? "'" : "");
    return itest_sh(cmd, out, n);
}

/* A webhook secret shorter than 32 bytes is refused however it is given; an empty
 * CARELINE_GW_WEBHOOK_SECRET was taken as an empty HMAC key. */
static void short_secret_refused(void)
{
    char out[4096];
    static const struct {
        const char *env, *file;
    } bad[] = {{"", NULL}, {"s3cr3t-x", NULL}, {NULL, "0123456789abcdef0123456789abcde\n"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = gw_check(bad[i].env, bad[i].file, out, sizeof(out));
        if (rc != 2 || !strstr(out, "at least 32") ||
            (bad[i].env && bad[i].env[0] && strstr(out, bad[i].env)))
            t_fail(__FILE__, __LINE__, "case %zu: exit %d: %s", i, rc, out);
    }
    T_EQ_INT(gw_check(SECRET, NULL, out, sizeof(out)), 0);
    T_EQ_INT(gw_check(NULL, SECRET "\n", out, sizeof(out)), 0);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"gateway_short_secret_refused", short_secret_refused, 30},
        {"gateway_webhook_curl_and_digits", webhook_curl_and_digits, 90},
        {"gateway_retried_webhook_one_request", retried_webhook_one_request, 60},
        {"gateway_spooled_while_daemon_down", spooled_while_daemon_down, 120},
        {"gateway_bad_input", bad_input, 60},
        {"gateway_stdio_mode", stdio_mode, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
