/*
 * test_rds_link: the async Redis client's links on a private redis-server (tests/lib/irds.h):
 * an op past its deadline resets the link and it recovers; a restarted server fails the ops
 * in flight, refuses new ones fast and is reconnected to; the pub/sub link resubscribes after
 * being killed; rds_free fails every pending op at once; no server at all.
 */
#include "store/rds.h"
#include "irds.h"
#include "iloop.h"
#include "t.h"
#include "common/util.h"
#include "iproc.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

static void op_timeout(void)
{
    irds_srv_start();
    struct event_base *b = event_base_new();
    Rds *r = irds_srv_rds(b, 300, 100);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    const char *sleep2[3] = {"DEBUG", "SLEEP", "2"};
    const char *ping[1] = {"PING"};
    IrdsOne s = {0}, p = {0};
    int64_t t0 = util_now_ms();
    T_ASSERT(rds_command(r, irds_one_cb, &s, 3, sleep2, NULL));
    T_ASSERT(rds_command(r, irds_one_cb, &p, 1, ping, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &s, 2000));
    T_ASSERT(irds_one_done(&p)); /* failed together: the link was reset */
    T_EQ_INT(s.type, -1);
    T_EQ_INT(p.type, -1);
    T_ASSERT(strstr(s.err, "timed out") != NULL);
    printf("  timed out after %lld ms: %s\n", (long long)(s.at - t0), s.err);
    T_ASSERT(s.at - t0 >= 280 && s.at - t0 < 1000);
    T_EQ_INT(rds_inflight(r), 0);

    /* recovery: keep trying until a PING answers (the server sleeps ~2 s) */
    bool ok = false;
    int64_t end = util_now_ms() + 8000;
    while (!ok && util_now_ms() < end) {
        if (!iloop_wait(b, irds_ready, r, 3000))
            continue;
        IrdsOne q = {0};
        if (!rds_command(r, irds_one_cb, &q, 1, ping, NULL)) {
            iloop_run_ms(b, 20);
            continue;
        }
        T_ASSERT(iloop_wait(b, irds_one_done, &q, 3000));
        ok = q.type == REDIS_REPLY_STATUS;
    }
    T_ASSERT(ok);
    rds_free(r);
    event_base_free(b);
    irds_srv_kill();
    t_leak_check();
}

static void restart(void)
{
    irds_srv_start();
    struct event_base *b = event_base_new();
    Rds *r = irds_srv_rds(b, 10000, 100);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    RdsScript *s = rds_script_new(r, IRDS_LUA_INCRBY);
    IrdsOne e1 = irds_eval_wait(b, r, s, "t:rs", "1");
    T_EQ_INT(e1.integer, 1);

    const char *blpop[3] = {"BLPOP", "t:nothing", "5"};
    IrdsOne pend[3] = {{0}};
    for (int i = 0; i < 3; i++)
        T_ASSERT(rds_command(r, irds_one_cb, &pend[i], 3, blpop, NULL));
    iloop_run_ms(b, 100);
    irds_srv_stop();
    T_ASSERT(iloop_wait(b, irds_one_done, &pend[2], 3000));
    for (int i = 0; i < 3; i++) {
        T_ASSERT(pend[i].done);
        T_EQ_INT(pend[i].type, -1);
    }
    printf("  pending op failed with: %s\n", pend[0].err);
    T_ASSERT(iloop_wait(b, irds_not_ready, r, 1000));
    IrdsOne refused = {0};
    const char *ping[1] = {"PING"};
    T_ASSERT(!rds_command(r, irds_one_cb, &refused, 1, ping, NULL)); /* fail fast while down */
    iloop_run_ms(b, 400);                                            /* a few failed reconnects */

    irds_srv_start();
    T_ASSERT(iloop_wait(b, irds_ready, r, 8000));
    IrdsOne p = irds_cmd_wait(b, r, "PING");
    T_EQ_STR(p.str, "PONG");
    IrdsOne e2 = irds_eval_wait(b, r, s, "t:rs", "1"); /* script cache is empty after a restart */
    T_EQ_INT(e2.type, REDIS_REPLY_INTEGER);
    T_EQ_INT(e2.integer, 1);
    T_ASSERT(!refused.done);
    rds_free(r);
    event_base_free(b);
    irds_srv_kill();
    t_leak_check();
}

static void pubsub(void)
{
    irds_srv_start();
    struct event_base *b = event_base_new();
    Rds *r = irds_srv_rds(b, 2000, 100);
    T_ASSERT(iloop_wait(b, irds_ready, r, 5000));
    IrdsSub s = {0};
    T_ASSERT(rds_subscribe(r, "t:chan", irds_sub_cb, &s));
    T_ASSERT(iloop_wait(b, irds_resync1, &s, 5000));
    const char *pub[3] = {"PUBLISH", "t:chan", "hi\0there"};
    size_t publen[3] = {7, 6, 8};
    IrdsOne o = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &o, 3, pub, publen));
    T_ASSERT(iloop_wait(b, irds_one_done, &o, 3000));
    T_EQ_INT(o.integer, 1); /* one subscriber: us */
    T_ASSERT(iloop_wait(b, irds_msg1, &s, 3000));
    T_EQ_INT(s.last_len, 8);
    T_ASSERT(memcmp(s.last, "hi\0there", 8) == 0);

    irds_admin_cmd("127.0.0.1", irds_srv_port(), "CLIENT KILL TYPE pubsub");
    T_ASSERT(iloop_wait(b, irds_resync2, &s, 5000));
    T_EQ_INT(s.resyncs, 2);
    const char *pub2[3] = {"PUBLISH", "t:chan", "again"};
    IrdsOne o2 = {0};
    T_ASSERT(rds_command(r, irds_one_cb, &o2, 3, pub2, NULL));
    T_ASSERT(iloop_wait(b, irds_msg2, &s, 3000));
    T_EQ_STR(s.last, "again");
    T_EQ_INT(s.msgs, 2);
    rds_free(r);
    event_base_free(b);
    irds_srv_kill();
    t_leak_check();
}

typedef struct {
    Rds *r;
    int called;
    int shutting;
    int resend_ok;
} FreeCtx;

static void free_cb(redisReply *reply, const char *err, void *arg)
{
    FreeCtx *f = arg;
    const char *ping[1] = {"PING"};
    f->called++;
    if (!reply && err && strstr(err, "shutting down"))
        f->shutting++;
    if (rds_command(f->r, free_cb, f, 1, ping, NULL)) /* refused while shutting down */
        f->resend_ok++;
}

static void free_pending(void)
{
    irds_srv_start();
    struct event_base *b = event_base_new();
    FreeCtx f = {0};
    f.r = irds_srv_rds(b, 5000, 100);
    T_ASSERT(iloop_wait(b, irds_ready, f.r, 5000));
    const char *blpop[3] = {"BLPOP", "t:nothing", "5"};
    for (int i = 0; i < 4; i++)
        T_ASSERT(rds_command(f.r, free_cb, &f, 3, blpop, NULL));
    iloop_run_ms(b, 50);
    rds_free(f.r);
    T_EQ_INT(f.called, 4);
    T_EQ_INT(f.shutting, 4);
    T_EQ_INT(f.resend_ok, 0);
    event_base_free(b);
    irds_srv_kill();
    t_leak_check();
}

static void no_server(void)
{
    struct event_base *b = event_base_new();
    Rds *r = rds_new(b, "127.0.0.1", iproc_free_port(), 300, 10, NULL, NULL);
    const char *ping[1] = {"PING"};
    IrdsOne o = {0};
    iloop_run_ms(b, 300);
    T_ASSERT(!rds_ready(r));
    T_ASSERT(!rds_command(r, irds_one_cb, &o, 1, ping, NULL));
    IrdsSub s = {0};
    T_ASSERT(rds_subscribe(r, "t:chan", irds_sub_cb, &s));
    iloop_run_ms(b, 300);
    T_EQ_INT(s.resyncs, 0);
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"rds_op_timeout", op_timeout, 30},     {"rds_restart", restart, 30},
        {"rds_pubsub_resubscribe", pubsub, 30}, {"rds_free_pending", free_pending, 20},
        {"rds_no_server", no_server, 20},       {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
