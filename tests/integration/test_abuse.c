/*
 * Integration tests of the abuse limits on real PostgreSQL and Redis: a flood of wrong
 * tokens (protocol and HTTP) neither starves submissions nor costs a query per attempt
 * (negative cache, coalesced lookups, the lookup budget), an address that fails too often is
 * locked out without a query and let in again after the cool-down, a revoked token stops
 * working within the cache TTL, the budget answers at once when exhausted, and 20,000 bad
 * frames write a bounded number of log lines with the suppressed count reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "ihttp.h"
#include "iproc.h"
#include "isession.h"
#include "itest.h"
#include "common/util.h"
#include "t.h"

#define ERR(code) CARELINE__V1__ERROR_CODE__##code
#define BODY(b)   CARELINE__V1__ENVELOPE__BODY_##b
#define MAXPAR    256

static Daemon d;

/* Starts the daemon with args ("--key=value", NULL-terminated). The auth keys go through
 * the environment (--auth_x=v as CARELINE_AUTH_X=v), which a daemon without those keys
 * ignores: so this file also runs against the daemon from before the abuse limits, where
 * every case fails (on its own assertions, not on an unknown key). */
static void up(const char *const *args)
{
    const char *rest[16];
    int n = 0;
    for (int i = 0; args[i]; i++) {
        if (strncmp(args[i], "--auth_", 7) != 0) {
            T_ASSERT(n < 15);
            rest[n++] = args[i];
            continue;
        }
        char name[64];
        const char *eq = strchr(args[i], '=');
        T_ASSERT(eq && eq - args[i] - 2 < 40);
        snprintf(name, sizeof(name), "CARELINE_%.*s", (int)(eq - args[i] - 2), args[i] + 2);
        for (char *p = name; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        setenv(name, eq + 1, 1);
    }
    rest[n] = NULL;
    itest_daemon_up(&d, rest);
}

static long long metric(const char *name)
{
    return itest_metric(d.http_port, name);
}

static void send_hello(ClConn *c, const char *token)
{
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = (char *)token;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = 1;
    e.body_case = BODY(HELLO);
    e.hello = &h;
    T_ASSERT(cl_send(c, &e));
}

/* The reply to a Hello: 0 for HelloOk, else the Error code; msg gets the Error's sentence. */
static int hello_reply(ClConn *c, int timeout_ms, char *msg, size_t msglen)
{
    char err[256];
    ClEnvelope *r = cl_recv(c, timeout_ms, err, sizeof(err));
    if (!r) {
        itest_daemon_dump_log(&d);
        t_fail(__FILE__, __LINE__, "no reply to Hello: %s", err);
    }
    int code = 0;
    if (r->body_case == BODY(ERROR)) {
        code = (int)r->error->code;
        T_ASSERT(r->error->message && strlen(r->error->message) > 10); /* a sentence */
        if (msg)
            snprintf(msg, msglen, "%s", r->error->message);
    } else {
        T_EQ_INT(r->body_case, BODY(HELLO_OK));
    }
    cl_free(r);
    return code;
}

/* One Hello on a fresh connection; the reply as hello_reply gives it. */
static int hello_once(const char *token, char *msg, size_t msglen)
{
    ClConn *c = itest_connect(&d);
    send_hello(c, token);
    int code = hello_reply(c, 10000, msg, msglen);
    cl_close(c);
    return code;
}

/* A random 40-character token nobody holds. */
static const char *bad_token(char out[48])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 40; i++)
        out[i] = hex[rand() % 16];
    out[40] = '\0';
    return out;
}

/* n Hellos in rounds of par connections at once (all sent, then all answered), each with
 * token (or a fresh random one when token is NULL). Counts the answers by code. */
typedef struct {
    int failed, overloaded, unavailable, other;
} Tally;

static void hello_flood(const char *token, int n, int par, Tally *t)
{
    ClConn *cs[MAXPAR];
    T_ASSERT(par <= MAXPAR);
    for (int done = 0; done < n;) {
        int k = n - done < par ? n - done : par;
        char tok[48];
        for (int i = 0; i < k; i++) {
            cs[i] = itest_connect(&d);
            send_hello(cs[i], token ? token : bad_token(tok));
        }
        for (int i = 0; i < k; i++) {
            int code = hello_reply(cs[i], 15000, NULL, 0);
            if (code == ERR(AUTH_FAILED))
                t->failed++;
            else if (code == ERR(OVERLOADED))
                t->overloaded++;
            else if (code == ERR(UNAVAILABLE))
                t->unavailable++;
            else
                t->other++;
            cl_close(cs[i]);
        }
        done += k;
    }
}

/* A gateway logged in before any abuse, a resident its submissions serve. */
typedef struct {
    PGconn *pg;
    ClConn *gw;
    char phone[16];
    int n;
} Legit;

static void legit_start(Legit *l, int area)
{
    l->pg = itest_pg();
    Fixture f;
    fix_area(l->pg, area, &f);
    fix_station(l->pg, &f, &(FixStation){.meal = true, .cap_lunch = 1000, .dlat = 0.005});
    fix_resident(l->pg, &f, 1, false, l->phone);
    l->gw = isess_gateway(&d, l->pg);
}

/* One submission on the gateway: must be QUEUED (never OVERLOADED or UNAVAILABLE). */
static void legit_submit(Legit *l)
{
    char key[64];
    snprintf(key, sizeof(key), "abuse-%d", l->n++);
    Careline__V1__SubmitRequest m;
    isess_meal(&m, fix_key(key), l->phone);
    ClEnvelope *r = isess_submit(&d, l->gw, &m, 15000);
    if (r->body_case == BODY(ERROR)) {
        itest_daemon_dump_log(&d);
        t_fail(__FILE__, __LINE__, "submission %d refused during the flood: %s", l->n,
               r->error->message);
    }
    T_EQ_INT(isess_result(r)->state, CARELINE__V1__REQUEST_STATE__QUEUED);
    cl_free(r);
}

static void legit_end(Legit *l)
{
    cl_close(l->gw);
    PQfinish(l->pg);
}

static int http_get(const char *path, const char *token, IhttpResp *r)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *h[] = {auth, NULL};
    return ihttp_request(d.http_port, "GET", path, h, NULL, 0, 10000, r);
}

static void revoke_token(PGconn *pg, const char *token)
{
    const char *p[] = {token};
    PQclear(itest_sql(pg,
                      "UPDATE principals SET revoked_at = now() "
                      "WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
                      1, p));
}

/* Thousands of wrong tokens over the protocol while a gateway submits: every submission is
 * queued, and the pool never sees more than the auth budget of token lookups. The same
 * wrong token again and again costs one query (negative cache, coalesced lookups). */
static void protocol_flood(void)
{
    /* a small pool queue, which the flood used to fill (submissions got OVERLOADED) */
    up((const char *const[]){"--pg_pool_size=2", "--pg_max_queue=64", "--auth_fail_limit=0", NULL});
    Legit l = {0};
    legit_start(&l, 81);
    legit_submit(&l);
    Tally t = {0};
    for (int round = 0; round < 5; round++) {
        ClConn *cs[200];
        char tok[48];
        for (int i = 0; i < 200; i++) {
            cs[i] = itest_connect(&d);
            send_hello(cs[i], bad_token(tok)); /* all different: no cache helps */
        }
        legit_submit(&l); /* behind 200 lookups */
        for (int i = 0; i < 200; i++) {
            int code = hello_reply(cs[i], 15000, NULL, 0);
            t.failed += code == ERR(AUTH_FAILED);
            t.other += code != ERR(AUTH_FAILED) && code != ERR(OVERLOADED);
            cl_close(cs[i]);
        }
    }
    T_EQ_INT(t.other, 0);
    T_ASSERT(t.failed > 0);
    T_ASSERT(metric("careline_auth_lookups_total") > 0);

    /* one wrong token, 1,000 times: one lookup, the rest from the negative cache */
    long long q0 = metric("careline_pg_queries_total");
    long long l0 = metric("careline_auth_lookups_total");
    char same[48];
    bad_token(same);
    Tally s = {0};
    hello_flood(same, 1000, 100, &s);
    legit_submit(&l);
    T_EQ_INT(s.failed, 1000);
    long long lookups = metric("careline_auth_lookups_total") - l0;
    long long queries = metric("careline_pg_queries_total") - q0;
    printf("# 1000 Hellos with one wrong token: %lld lookups, %lld queries in all\n", lookups,
           queries);
    T_ASSERT(lookups >= 1 && lookups <= 2); /* 2 if the flood outlasted the 5 s TTL */
    T_ASSERT(queries < 100);                /* was one per Hello; the rest is background */
    T_ASSERT(metric("careline_auth_negative_hits_total") >= 900);
    legit_end(&l);
    itest_daemon_down(&d);
}

/* The same over HTTP: a wrong bearer token 300 times is one query. */
static void http_flood(void)
{
    up((const char *const[]){"--auth_fail_limit=0", NULL});
    PGconn *pg = itest_pg();
    char good[64], same[48];
    itest_make_token(pg, "bureau", 0, good);
    bad_token(same);
    long long q0 = metric("careline_pg_queries_total");
    IhttpResp r;
    for (int i = 0; i < 300; i++) {
        T_EQ_INT(http_get("/v1/coverage", same, &r), 401);
        T_ASSERT(strstr(r.body, "AUTH_FAILED"));
        ihttp_free(&r);
    }
    long long queries = metric("careline_pg_queries_total") - q0;
    printf("# 300 requests with one wrong bearer token: %lld queries in all\n", queries);
    T_ASSERT(queries < 50);
    T_ASSERT(metric("careline_auth_negative_hits_total") >= 290);
    T_EQ_INT(http_get("/v1/coverage", good, &r), 200);
    ihttp_free(&r);
    PQfinish(pg);
    itest_daemon_down(&d);
}

/* auth_fail_limit failures lock the address out — even a good token is refused, with no
 * query, on both doors — until auth_lockout_ms has passed. Sessions already open go on. */
static void lockout_and_expiry(void)
{
    up((const char *const[]){"--auth_fail_limit=5", "--auth_lockout_ms=2000", NULL});
    Legit l = {0};
    legit_start(&l, 82);
    char gw[64], bu[64], tok[48], msg[256];
    itest_make_token(l.pg, "gateway", 0, gw);
    itest_make_token(l.pg, "bureau", 0, bu);
    for (int i = 0; i < 5; i++) {
        T_EQ_INT(hello_once(bad_token(tok), msg, sizeof(msg)), ERR(AUTH_FAILED));
        T_ASSERT(strstr(msg, "unknown or revoked"));
    }
    T_EQ_INT(metric("careline_auth_lockouts_total"), 1);
    long long l0 = metric("careline_auth_lookups_total");
    int64_t locked_at = util_now_ms();
    T_EQ_INT(hello_once(gw, msg, sizeof(msg)), ERR(AUTH_FAILED));
    T_ASSERT(strstr(msg, "too many failed authentications"));
    IhttpResp r;
    T_EQ_INT(http_get("/v1/coverage", bu, &r), 429);
    T_ASSERT(r.retry_after >= 1 && r.retry_after <= 2);
    T_ASSERT(strstr(r.body, "AUTH_FAILED") && strstr(r.body, "too many failed"));
    ihttp_free(&r);
    T_EQ_INT(metric("careline_auth_lookups_total"), l0); /* no query while locked out */
    T_ASSERT(metric("careline_auth_locked_total") >= 2);
    legit_submit(&l); /* the session opened before goes on */
    /* after the cool-down the good tokens work again */
    iproc_sleep_ms((int)(2100 - (util_now_ms() - locked_at)));
    T_EQ_INT(hello_once(gw, NULL, 0), 0);
    T_EQ_INT(http_get("/v1/coverage", bu, &r), 200);
    ihttp_free(&r);
    T_EQ_INT(metric("careline_auth_lockouts_total"), 1);
    legit_end(&l);
    itest_daemon_down(&d);
}

/* Polls until the token is refused on the door; returns how long that took (ms). */
static int64_t refused_after(const char *token, bool http)
{
    int64_t t0 = util_now_ms();
    for (;;) {
        int refused;
        if (http) {
            IhttpResp r;
            refused = http_get("/v1/coverage", token, &r) == 401;
            ihttp_free(&r);
        } else {
            refused = hello_once(token, NULL, 0) == ERR(AUTH_FAILED);
        }
        if (refused)
            return util_now_ms() - t0;
        if (util_now_ms() - t0 > 10000)
            t_fail(__FILE__, __LINE__, "a revoked token still works after 10 s");
        iproc_sleep_ms(100);
    }
}

/* A good token is served from the positive cache; once revoked it stops working within
 * auth_cache_ttl_ms, on both doors. */
static void revoked_within_ttl(void)
{
    up((const char *const[]){"--auth_cache_ttl_ms=1500", NULL});
    PGconn *pg = itest_pg();
    char gw[64], bu[64];
    itest_make_token(pg, "gateway", 0, gw);
    itest_make_token(pg, "bureau", 0, bu);
    T_EQ_INT(hello_once(gw, NULL, 0), 0);
    long long l0 = metric("careline_auth_lookups_total");
    T_EQ_INT(hello_once(gw, NULL, 0), 0);
    T_EQ_INT(metric("careline_auth_lookups_total"), l0); /* from the cache */
    T_ASSERT(metric("careline_auth_cache_hits_total") >= 1);
    IhttpResp r;
    T_EQ_INT(http_get("/v1/coverage", bu, &r), 200);
    ihttp_free(&r);
    revoke_token(pg, gw);
    revoke_token(pg, bu);
    int64_t p = refused_after(gw, false), h = refused_after(bu, true);
    printf("# revoked token refused after %lld ms (protocol), %lld ms (HTTP)\n", (long long)p,
           (long long)h);
    T_ASSERT(p <= 1500 + 1000 && h <= 1500 + 1000); /* TTL + a poll and a round trip */
    PQfinish(pg);
    itest_daemon_down(&d);
}

/* With the budget (1 lookup, none waiting) taken by a lookup PostgreSQL cannot answer (the
 * principals table is locked), another token is refused at once — OVERLOADED, HTTP 503 with
 * Retry-After — while the same token waits for the running lookup, and submissions go on. */
static void budget_answers_at_once(void)
{
    up((const char *const[]){"--auth_max_inflight=1", "--auth_max_waiting=0", NULL});
    Legit l = {0};
    legit_start(&l, 83);
    char a[64], b[64], bu[64];
    itest_make_token(l.pg, "gateway", 0, a);
    itest_make_token(l.pg, "gateway", 0, b);
    itest_make_token(l.pg, "bureau", 0, bu);
    PGconn *locker = itest_pg();
    PQclear(itest_sql(locker, "BEGIN", 0, NULL));
    PQclear(itest_sql(locker, "LOCK TABLE principals IN ACCESS EXCLUSIVE MODE", 0, NULL));
    ClConn *c1 = itest_connect(&d);
    send_hello(c1, a);
    for (int i = 0; i < 300 && metric("careline_auth_lookups_inflight") != 1; i++)
        iproc_sleep_ms(10);
    T_EQ_INT(metric("careline_auth_lookups_inflight"), 1);
    /* a second token: no room, answered at once */
    int64_t t0 = util_now_ms();
    char msg[256];
    T_EQ_INT(hello_once(b, msg, sizeof(msg)), ERR(OVERLOADED));
    int64_t waited = util_now_ms() - t0;
    printf("# OVERLOADED after %lld ms: %s\n", (long long)waited, msg);
    T_ASSERT(waited < 1000);
    IhttpResp r;
    T_EQ_INT(http_get("/v1/coverage", bu, &r), 503);
    T_ASSERT(r.retry_after >= 1);
    T_ASSERT(strstr(r.body, "OVERLOADED"));
    ihttp_free(&r);
    /* the same token joins the running lookup */
    ClConn *c3 = itest_connect(&d);
    send_hello(c3, a);
    char err[256];
    ClEnvelope *none = cl_recv(c3, 300, err, sizeof(err));
    T_ASSERT(!none);
    legit_submit(&l); /* the pool still serves submissions */
    PQclear(itest_sql(locker, "ROLLBACK", 0, NULL));
    T_EQ_INT(hello_reply(c1, 10000, NULL, 0), 0);
    T_EQ_INT(hello_reply(c3, 10000, NULL, 0), 0);
    T_ASSERT(metric("careline_auth_coalesced_total") >= 1);
    T_ASSERT(metric("careline_auth_busy_total") >= 2);
    cl_close(c1);
    cl_close(c3);
    PQfinish(locker);
    legit_end(&l);
    itest_daemon_down(&d);
}

/* 20,000 bad frames (each fatal: a fresh connection each) at the production log level write
 * a bounded number of lines, one of which tells how many were suppressed; the daemon keeps
 * serving. */
static void log_flood_bounded(void)
{
    up((const char *const[]){"--log_level=info", NULL});
    PGconn *pg = itest_pg();
    long before = t_count_lines(d.log_path, NULL);
    const unsigned char junk[] = {0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ClConn *cs[MAXPAR];
    int64_t t0 = util_now_ms();
    for (int done = 0; done < 20000; done += 200) {
        for (int i = 0; i < 200; i++) {
            cs[i] = itest_connect(&d);
            T_ASSERT(cl_send_raw(cs[i], junk, sizeof(junk)));
        }
        for (int i = 0; i < 200; i++) {
            char err[256];
            ClEnvelope *r = cl_recv(cs[i], 10000, err, sizeof(err));
            if (!r)
                t_fail(__FILE__, __LINE__, "no Error for a bad frame: %s", err);
            T_EQ_INT(r->error->code, ERR(BAD_ENVELOPE));
            cl_free(r);
            cl_close(cs[i]);
        }
    }
    printf("# 20000 bad frames sent in %lld ms\n", (long long)(util_now_ms() - t0));
    T_EQ_INT(metric("careline_errors_total{code=\"BAD_ENVELOPE\"}"), 20000);
    /* the count of what was suppressed is told within LOG_LIMIT_REPORT_MS (10 s) */
    for (int i = 0; i < 150 && t_count_lines(d.log_path, "log: suppressed") == 0; i++)
        iproc_sleep_ms(100);
    long lines = t_count_lines(d.log_path, NULL) - before;
    long reports = t_count_lines(d.log_path, "log: suppressed");
    printf("# log lines written for 20000 bad frames: %ld (%ld suppression reports)\n", lines,
           reports);
    T_ASSERT(reports >= 1);
    T_ASSERT(lines < 100);
    T_ASSERT(metric("careline_log_suppressed_total") >= 19900 - lines);
    /* still serving */
    ClConn *c = isess_gateway(&d, pg);
    cl_close(c);
    T_ASSERT(itest_daemon_alive(&d));
    PQfinish(pg);
    itest_daemon_down(&d);
}

int main(int argc, char **argv)
{
    srand((unsigned)getpid());
    static const TCase cases[] = {
        {"abuse_protocol_bad_token_flood", protocol_flood, 180},
        {"abuse_http_bad_token_flood", http_flood, 120},
        {"abuse_lockout_and_expiry", lockout_and_expiry, 60},
        {"abuse_revoked_within_ttl", revoked_within_ttl, 60},
        {"abuse_budget_answers_at_once", budget_answers_at_once, 60},
        {"abuse_log_flood_bounded", log_flood_bounded, 240},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
