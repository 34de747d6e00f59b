/*
 * test_rds: the async Redis client's commands against real redis-server processes: binary
 * safe commands and error replies, a 10,000-deep pipeline, the max_inflight cap, and Lua
 * scripts by EVALSHA with the EVAL fallback after NOSCRIPT. Harmless cases use the shared
 * server of tests/run.sh; SCRIPT FLUSH runs on a private one (tests/lib/irds.h). Links,
 * deadlines and reconnects: test_rds_link.c; AUTH: test_rds_auth.c.
 */
#include "store/rds.h"
#include "irds.h"
#include "iloop.h"
#include "t.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

static void set_get(void)
{
    struct event_base *b = event_base_new();
    Rds *r = irds_env_rds(b, 2000, 100);
    T_ASSERT(r);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    char key[64];
    snprintf(key, sizeof(key), "{ctest}:rds:%d:k", (int)getpid());
    const char *set[3] = {"SET", key, "a\0b\xe4\xbd\xa0"};
    size_t setlen[3] = {3, strlen(key), 6};
    IrdsOne s = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &s, 3, set, setlen));
    T_EQ_INT(rds_inflight(r), 1);
    T_ASSERT(iloop_wait(b, irds_one_done, &s, 3000));
    T_EQ_INT(s.type, REDIS_REPLY_STATUS);
    const char *get[2] = {"GET", key};
    IrdsOne g = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &g, 2, get, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &g, 3000));
    T_EQ_INT(g.type, REDIS_REPLY_STRING);
    T_EQ_INT(g.len, 6);
    T_ASSERT(memcmp(g.str, "a\0b\xe4\xbd\xa0", 6) == 0);
    const char *bad[2] = {"NOSUCHCOMMAND", key};
    IrdsOne e = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &e, 2, bad, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &e, 3000));
    T_EQ_INT(e.type, REDIS_REPLY_ERROR); /* a Redis error is a reply, not a link error */
    const char *del[2] = {"DEL", key};
    IrdsOne d = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &d, 2, del, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &d, 3000));
    T_EQ_INT(rds_inflight(r), 0);
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

typedef struct {
    int next; /* expected INCR value */
    int done;
    int bad;
    int target;
} Pipe;

static bool pipe_done(void *arg)
{
    Pipe *p = arg;
    return p->done >= p->target;
}

static void incr_cb(redisReply *reply, const char *err, void *arg)
{
    Pipe *p = arg;
    (void)err;
    p->next++;
    if (!reply || reply->type != REDIS_REPLY_INTEGER || reply->integer != p->next)
        p->bad++;
    p->done++;
}

static void pipeline_10k(void)
{
    enum { N = 10000 };
    struct event_base *b = event_base_new();
    Rds *r = irds_env_rds(b, 5000, N + 1);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    char key[64];
    snprintf(key, sizeof(key), "{ctest}:rds:%d:ctr", (int)getpid());
    const char *del[2] = {"DEL", key};
    IrdsOne d = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &d, 2, del, NULL));
    Pipe p = {.target = N};
    const char *incr[2] = {"INCR", key};
    int64_t t0 = util_now_ms();
    for (int i = 0; i < N; i++)
        T_ASSERT(rds_command(r, incr_cb, &p, 2, incr, NULL));
    T_EQ_INT(rds_inflight(r), N + 1);
    T_ASSERT(!rds_command(r, incr_cb, &p, 2, incr, NULL)); /* at max_inflight */
    T_ASSERT(iloop_wait(b, pipe_done, &p, 20000));
    printf("  %d pipelined INCRs in %lld ms\n", N, (long long)(util_now_ms() - t0));
    T_EQ_INT(p.bad, 0);
    T_EQ_INT(p.next, N);
    IrdsOne d2 = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &d2, 2, del, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &d2, 3000));
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

static void max_inflight(void)
{
    struct event_base *b = event_base_new();
    Rds *r = irds_env_rds(b, 2000, 5);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    IrdsOne o[6] = {{0}};
    const char *ping[1] = {"PING"};
    for (int i = 0; i < 5; i++)
        T_ASSERT(rds_command(r, irds_one_cb, &o[i], 1, ping, NULL));
    T_EQ_INT(rds_inflight(r), 5);
    T_ASSERT(!rds_command(r, irds_one_cb, &o[5], 1, ping, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &o[4], 3000));
    T_EQ_INT(rds_inflight(r), 0);
    iloop_run_ms(b, 20);
    T_ASSERT(!o[5].done); /* a refused command never calls back */
    T_ASSERT(rds_command(r, irds_one_cb, &o[5], 1, ping, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &o[5], 3000));
    T_EQ_STR(o[5].str, "PONG");
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

static void eval_noscript(void)
{
    irds_srv_start();
    struct event_base *b = event_base_new();
    Rds *r = irds_srv_rds(b, 2000, 100);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    RdsScript *s = rds_script_new(r, IRDS_LUA_INCRBY);

    IrdsOne e1 = irds_eval_wait(b, r, s, "t:ev", "5"); /* fresh server: NOSCRIPT -> EVAL */
    T_EQ_INT(e1.type, REDIS_REPLY_INTEGER);
    T_EQ_INT(e1.integer, 5);
    IrdsOne e2 = irds_eval_wait(b, r, s, "t:ev", "2"); /* cached now: EVALSHA */
    T_EQ_INT(e2.integer, 7);
    IrdsOne f = irds_cmd_wait(b, r, "SCRIPT FLUSH");
    T_EQ_INT(f.type, REDIS_REPLY_STATUS);
    IrdsOne e3 = irds_eval_wait(b, r, s, "t:ev", "3");
    T_EQ_INT(e3.type, REDIS_REPLY_INTEGER);
    T_EQ_INT(e3.integer, 10);
    T_EQ_INT(rds_inflight(r), 0);

    /* our SHA1 is the one Redis computes: after SCRIPT LOAD no EVAL fallback is needed */
    const char *load[3] = {"SCRIPT", "LOAD", IRDS_LUA_INCRBY};
    IrdsOne l = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &l, 3, load, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &l, 3000));
    T_EQ_INT(l.type, REDIS_REPLY_STRING);
    T_ASSERT(strcmp(irds_cmd_wait(b, r, "CONFIG RESETSTAT").str, "OK") == 0);
    IrdsOne e4 = irds_eval_wait(b, r, s, "t:ev", "1");
    T_EQ_INT(e4.integer, 11);
    IrdsOne st = irds_cmd_wait(b, r, "INFO commandstats");
    T_ASSERT(strstr(st.str, "cmdstat_evalsha:calls=1,") != NULL);
    T_ASSERT(strstr(st.str, "cmdstat_eval:") == NULL);
    /* and after a flush the fallback really runs EVAL */
    (void)irds_cmd_wait(b, r, "SCRIPT FLUSH");
    T_ASSERT(strcmp(irds_cmd_wait(b, r, "CONFIG RESETSTAT").str, "OK") == 0);
    IrdsOne e5 = irds_eval_wait(b, r, s, "t:ev", "1");
    T_EQ_INT(e5.integer, 12);
    st = irds_cmd_wait(b, r, "INFO commandstats");
    T_ASSERT(strstr(st.str, "cmdstat_eval:calls=1,") != NULL);
    const char *err_script = "return redis.error_reply('boom')";
    RdsScript *bad = rds_script_new(r, err_script);
    IrdsOne be = {0};
    T_ASSERT(rds_eval(r, bad, irds_one_cb, &be, 0, 0, NULL, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &be, 3000));
    T_EQ_INT(be.type, REDIS_REPLY_ERROR);
    T_ASSERT(strstr(be.str, "boom") != NULL);
    rds_free(r);
    event_base_free(b);
    irds_srv_kill();
    t_leak_check();
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"rds_set_get", set_get, 20},
        {"rds_pipeline_10k", pipeline_10k, 40},
        {"rds_max_inflight", max_inflight, 20},
        {"rds_eval_noscript", eval_noscript, 20},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
