/*
 * Unit tests of the abuse limits' logic: the per-call-site log limiter (its bucket, its
 * reports, the lines it lets through) and the token checker's decisions that need no
 * database — malformed tokens, the per-address lockout, its expiry and its bounded table,
 * coalesced lookups, the budget and its queue — over a pool whose server never answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "common/log.h"
#include "net/authcache.h"
#include "t.h"

static void limiter_bucket(void)
{
    LogLimit l = {.site = "x.c:1", .fmt = "f"};
    int64_t t = 1000000;
    for (int i = 0; i < LOG_LIMIT_BURST; i++)
        T_ASSERT(log_limit_pass(&l, t));
    T_ASSERT(!log_limit_pass(&l, t));
    T_ASSERT(!log_limit_pass(&l, t + LOG_LIMIT_REFILL_MS - 1));
    T_EQ_INT(l.suppressed, 2);
    T_ASSERT(log_limit_pass(&l, t + LOG_LIMIT_REFILL_MS)); /* one refilled */
    T_ASSERT(!log_limit_pass(&l, t + LOG_LIMIT_REFILL_MS));
    /* the report waits LOG_LIMIT_REPORT_MS from the first suppressed line */
    T_EQ_INT(log_limit_take(&l, t + LOG_LIMIT_REPORT_MS - 1, false), 0);
    T_EQ_INT(log_limit_take(&l, t + LOG_LIMIT_REPORT_MS, false), 3);
    T_EQ_INT(log_limit_take(&l, t + LOG_LIMIT_REPORT_MS, true), 0); /* counted afresh */
    T_ASSERT(log_limit_pass(&l, t + LOG_LIMIT_REPORT_MS));          /* refilled since */
    T_ASSERT(!log_limit_pass(&l, t + LOG_LIMIT_REPORT_MS));
    T_EQ_INT(log_limit_take(&l, t + LOG_LIMIT_REPORT_MS, true), 1); /* forced */
    /* a long quiet spell refills the burst, never more */
    T_ASSERT(log_limit_pass(&l, t + 1000 * LOG_LIMIT_REFILL_MS));
    for (int i = 1; i < LOG_LIMIT_BURST; i++)
        T_ASSERT(log_limit_pass(&l, t + 1000 * LOG_LIMIT_REFILL_MS));
    T_ASSERT(!log_limit_pass(&l, t + 1000 * LOG_LIMIT_REFILL_MS));
}

static void limited_lines(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/log.txt", t_tmpdir());
    T_ASSERT(freopen(path, "w", stderr));
    log_level = LOG_INFO;
    uint64_t before = log_suppressed_total();
    for (int i = 0; i < 1000; i++)
        log_limited(LOG_INFO, "bad frame %d from a hostile peer", i);
    for (int i = 0; i < 1000; i++)
        log_limited(LOG_DEBUG, "below the level: %d", i); /* neither written nor counted */
    fflush(stderr);
    T_EQ_INT(t_count_lines(path, "bad frame"), LOG_LIMIT_BURST);
    T_EQ_INT(log_suppressed_total() - before, 1000 - LOG_LIMIT_BURST);
    log_limit_flush(util_now_ms() + LOG_LIMIT_REPORT_MS, false);
    fflush(stderr);
    T_EQ_INT(
        t_count_lines(path, "log: suppressed 990 similar lines from tests/unit/test_authcache.c:"),
        1);
    T_EQ_INT(t_count_lines(path, "below the level"), 0);
    T_EQ_INT(t_count_lines(path, NULL), LOG_LIMIT_BURST + 1);
}

/* ---- the token checker over a pool that never connects ---------------------------------- */

typedef struct {
    int calls;
    AuthAnswer a;
} Got;

static void got_cb(void *arg, const AuthAnswer *a)
{
    Got *g = arg;
    g->calls++;
    g->a = *a;
}

typedef struct {
    struct event_base *base;
    PgPool *pg;
    Config cfg;
    Metrics m;
    AuthCache *ac;
} Fx;

static void fx_init(Fx *f)
{
    memset(f, 0, sizeof(*f));
    config_defaults(&f->cfg);
    f->cfg.auth_max_inflight = 1;
    f->cfg.auth_max_waiting = 1;
    f->cfg.auth_fail_limit = 3;
    f->cfg.auth_lockout_ms = 1000;
    f->cfg.auth_addr_entries = 16;
    f->base = event_base_new();
    /* port 1 on loopback refuses: lookups wait there until the pool is freed */
    f->pg = pg_pool_new(f->base, "host=127.0.0.1 port=1 dbname=x user=x", 1, 60000, 10);
    T_ASSERT(f->base && f->pg);
    f->ac = authcache_new(f->pg, &f->cfg, &f->m);
}

static void fx_free(Fx *f)
{
    pg_pool_free(f->pg);
    authcache_free(f->ac);
    event_base_free(f->base);
}

static Got check(Fx *f, const char *ip, const char *token)
{
    Got g = {0};
    authcache_check(f->ac, ip, token, got_cb, &g);
    return g;
}

static void lockout(void)
{
    Fx f;
    fx_init(&f);
    for (int i = 0; i < 3; i++) {
        Got g = check(&f, "10.0.0.1", "bad token\n");
        T_EQ_INT(g.calls, 1); /* at once, no lookup */
        T_EQ_INT(g.a.verdict, AUTH_MALFORMED);
    }
    T_EQ_INT(f.m.auth_lockouts, 1);
    /* locked: even a well-formed token is refused unchecked, with a time to come back */
    Got g = check(&f, "10.0.0.1", "good-looking-token");
    T_EQ_INT(g.calls, 1);
    T_EQ_INT(g.a.verdict, AUTH_LOCKED);
    T_EQ_INT(g.a.retry_after_s, 1);
    T_ASSERT(strstr(g.a.message, "10.0.0.1"));
    T_EQ_INT(f.m.auth_locked, 1);
    T_EQ_INT(f.m.auth_lookups, 0);
    /* refusals while locked do not prolong the lockout; other addresses are not locked */
    g = check(&f, "10.0.0.1", "x\x01");
    T_EQ_INT(g.a.verdict, AUTH_LOCKED);
    g = check(&f, "::1", "bad token\n");
    T_EQ_INT(g.a.verdict, AUTH_MALFORMED);
    /* after auth_lockout_ms the address starts afresh */
    usleep(1100 * 1000);
    g = check(&f, "10.0.0.1", "bad token\n");
    T_EQ_INT(g.a.verdict, AUTH_MALFORMED);
    g = check(&f, "10.0.0.1", "bad token\n");
    T_EQ_INT(g.a.verdict, AUTH_MALFORMED);
    T_EQ_INT(f.m.auth_lockouts, 1);
    /* no address (or an unparsable one): no accounting */
    for (int i = 0; i < 5; i++)
        T_EQ_INT(check(&f, NULL, "bad token\n").a.verdict, AUTH_MALFORMED);
    T_EQ_INT(f.m.auth_lockouts, 1);
    fx_free(&f);
}

static void address_table_bounded(void)
{
    Fx f;
    fx_init(&f);
    for (int i = 0; i < 3; i++)
        check(&f, "10.0.0.1", "bad token\n");
    T_EQ_INT(check(&f, "10.0.0.1", "t").a.verdict, AUTH_LOCKED);
    /* 16 other addresses take the 16 slots: the oldest entry (10.0.0.1) makes room */
    char ip[32];
    for (int i = 0; i < 16; i++) {
        snprintf(ip, sizeof(ip), "192.168.1.%d", i + 1);
        check(&f, ip, "bad token\n");
    }
    T_EQ_INT(check(&f, "10.0.0.1", "bad token\n").a.verdict, AUTH_MALFORMED);
    /* and the table still counts: 192.168.1.16 fails twice more and is locked */
    check(&f, "192.168.1.16", "bad token\n");
    check(&f, "192.168.1.16", "bad token\n");
    T_EQ_INT(check(&f, "192.168.1.16", "t").a.verdict, AUTH_LOCKED);
    fx_free(&f);
}

static void budget_and_coalescing(void)
{
    Fx f;
    fx_init(&f);
    Got a1 = {0}, a2 = {0}, b = {0};
    authcache_check(f.ac, "10.0.0.2", "token-a", got_cb, &a1);
    T_EQ_INT(a1.calls, 0); /* sent to the pool */
    T_EQ_INT(authcache_inflight(f.ac), 1);
    T_EQ_INT(f.m.auth_inflight, 1);
    authcache_check(f.ac, "10.0.0.3", "token-a", got_cb, &a2);
    T_EQ_INT(a2.calls, 0);
    T_EQ_INT(f.m.auth_coalesced, 1); /* joined, no second lookup */
    T_EQ_INT(f.m.auth_lookups, 1);
    authcache_check(f.ac, "10.0.0.2", "token-b", got_cb, &b);
    T_EQ_INT(b.calls, 0);
    T_EQ_INT(authcache_waiting(f.ac), 1); /* the budget is 1: b waits its turn */
    T_EQ_INT(f.m.auth_waiting, 1);
    Got c = check(&f, "10.0.0.2", "token-c");
    T_EQ_INT(c.calls, 1); /* no room left: refused at once */
    T_EQ_INT(c.a.verdict, AUTH_BUSY);
    T_ASSERT(c.a.retry_after_s >= 1);
    T_EQ_INT(f.m.auth_busy, 1);
    /* the pool fails what it runs; the waiting lookup cannot start after it */
    pg_pool_free(f.pg);
    f.pg = NULL;
    T_EQ_INT(a1.calls, 1);
    T_EQ_INT(a2.calls, 1);
    T_EQ_INT(a1.a.verdict, AUTH_UNAVAILABLE);
    T_EQ_INT(a2.a.verdict, AUTH_UNAVAILABLE);
    T_EQ_INT(b.calls, 1);
    T_EQ_INT(b.a.verdict, AUTH_BUSY);
    T_EQ_INT(authcache_inflight(f.ac), 0);
    T_EQ_INT(authcache_waiting(f.ac), 0);
    /* a failure to answer is not the client's: no lockout counted */
    T_EQ_INT(f.m.auth_lockouts, 0);
    fx_free(&f);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"authcache_log_limiter_bucket", limiter_bucket, 0},
        {"authcache_log_limited_lines", limited_lines, 0},
        {"authcache_lockout", lockout, 0},
        {"authcache_address_table_bounded", address_table_bounded, 0},
        {"authcache_budget_and_coalescing", budget_and_coalescing, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
