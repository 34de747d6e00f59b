/*
 * test_rds: the async Redis client against real redis-server processes. Harmless cases use
 * the shared server of tests/run.sh (CARELINE_REDIS_HOST/PORT); destructive ones (SCRIPT
 * FLUSH, DEBUG SLEEP, SHUTDOWN, CLIENT KILL) start a private redis-server on a free port in
 * the case's temporary directory so they never disturb other tests. Every wait is bounded.
 * Both kinds of server require AUTH (the shared one by deploy/stack.sh's ACL, the private
 * one with its own user and password), so every reconnect case also proves AUTH on reconnect.
 */
#include "common/log.h"
#include "store/rds.h"
#include "fixture.h"
#include "iloop.h"
#include "iproc.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

static bool ready(void *arg)
{
    return rds_ready(arg);
}

static bool not_ready(void *arg)
{
    return !rds_ready(arg);
}

/* ---- a private redis-server ---------------------------------------------------------------- */

static int srv_port;
static pid_t srv_pid;

#define SRV_USER     "careline"
#define SRV_PASSWORD "private-test-password"

/* Writes text (plus a newline) to path with mode 600, atomically (rename). */
static void write_secret(const char *path, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    T_ASSERT(fd >= 0);
    T_EQ_INT(dprintf(fd, "%s\n", text), (int)strlen(text) + 1);
    close(fd);
    T_EQ_INT(rename(tmp, path), 0);
}

/* The private server's password file (the right password unless a case rewrites it). */
static const char *srv_pwfile(void)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/srv.password", t_tmpdir());
    return path;
}

/* Blocking admin connection (fine in a test), as the private server's user. */
static redisContext *admin_connect(const char *host, int port)
{
    char err[256];
    return fix_redis_connect(host, port, SRV_USER, SRV_PASSWORD, err, sizeof(err));
}

/* A client of the private server with its own AUTH. */
static Rds *srv_rds(struct event_base *b, int op_timeout_ms, int max_inflight)
{
    return rds_new(b, "127.0.0.1", srv_port, op_timeout_ms, max_inflight, SRV_USER, srv_pwfile());
}

static void admin_cmd(const char *host, int port, const char *cmd)
{
    redisContext *c = admin_connect(host, port);
    if (!c)
        t_fail(__FILE__, __LINE__, "admin connect %s:%d failed", host, port);
    redisReply *r = redisCommand(c, cmd);
    if (!r || r->type == REDIS_REPLY_ERROR)
        t_fail(__FILE__, __LINE__, "admin %s: %s", cmd, r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

static void srv_start(void)
{
    char port[16], logf[300];
    if (!srv_port)
        srv_port = iproc_free_port();
    snprintf(port, sizeof(port), "%d", srv_port);
    snprintf(logf, sizeof(logf), "%s/redis.log", t_tmpdir());
    if (access(srv_pwfile(), F_OK) != 0)
        write_secret(srv_pwfile(), SRV_PASSWORD);
    srv_pid = iproc_spawn((const char *const[]){"redis-server",
                                                "--port",
                                                port,
                                                "--bind",
                                                "127.0.0.1",
                                                "--save",
                                                "",
                                                "--appendonly",
                                                "no",
                                                "--dir",
                                                t_tmpdir(),
                                                "--logfile",
                                                logf,
                                                "--enable-debug-command",
                                                "yes",
                                                "--user",
                                                "default",
                                                "off",
                                                "--user",
                                                SRV_USER,
                                                "on",
                                                ">" SRV_PASSWORD,
                                                "~*",
                                                "&*",
                                                "+@all",
                                                NULL},
                          IPROC_INHERIT, IPROC_INHERIT, NULL, false);
    int64_t end = util_now_ms() + 5000;
    while (util_now_ms() < end) {
        redisContext *c = admin_connect("127.0.0.1", srv_port);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        }
        usleep(20000);
    }
    t_fail(__FILE__, __LINE__, "private redis-server on port %d did not start", srv_port);
}

/* SHUTDOWN NOSAVE, then reap the process. */
static void srv_stop(void)
{
    redisContext *c = admin_connect("127.0.0.1", srv_port);
    T_ASSERT(c);
    redisReply *r = redisCommand(c, "SHUTDOWN NOSAVE");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    if (iproc_wait_exit(&srv_pid, 5000) < 0)
        t_fail(__FILE__, __LINE__, "redis-server did not exit");
}

static void srv_kill(void)
{
    (void)iproc_stop(&srv_pid, SIGKILL, 5000);
}

/* ---- reply collectors ---------------------------------------------------------------------- */

typedef struct {
    bool done;
    int type; /* REDIS_REPLY_* or -1 for a NULL reply */
    long long integer;
    char str[4096];
    size_t len;
    char err[256];
    int64_t at;
} One;

static bool one_done(void *arg)
{
    return ((One *)arg)->done;
}

static void one_cb(redisReply *reply, const char *err, void *arg)
{
    One *o = arg;
    T_ASSERT(!o->done); /* exactly once */
    o->done = true;
    o->at = util_now_ms();
    if (!reply) {
        T_ASSERT(err != NULL);
        o->type = -1;
        snprintf(o->err, sizeof(o->err), "%s", err);
        return;
    }
    T_ASSERT(err == NULL);
    o->type = reply->type;
    o->integer = reply->integer;
    if (reply->str) {
        o->len = reply->len < sizeof(o->str) ? reply->len : sizeof(o->str) - 1;
        memcpy(o->str, reply->str, o->len);
    }
}

/* Sends a whitespace-split command and waits for its answer. */
static One cmd_wait(struct event_base *b, Rds *r, const char *line)
{
    char buf[256], *save = NULL;
    const char *argv[16];
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *tok = strtok_r(buf, " ", &save); tok && argc < 16; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    One o = {0};
    if (!rds_command(r, one_cb, &o, argc, argv, NULL))
        t_fail(__FILE__, __LINE__, "rds_command(%s) refused", line);
    if (!iloop_wait(b, one_done, &o, 5000))
        t_fail(__FILE__, __LINE__, "no answer to %s", line);
    return o;
}

static const char *env_host(void)
{
    return t_env("CARELINE_REDIS_HOST");
}

static int env_port(void)
{
    return atoi(t_env("CARELINE_REDIS_PORT"));
}

/* A client of the shared server, authenticated as the stack's user. */
static Rds *env_rds(struct event_base *b, int op_timeout_ms, int max_inflight)
{
    return rds_new(b, env_host(), env_port(), op_timeout_ms, max_inflight,
                   t_env("CARELINE_REDIS_USER"), t_env("CARELINE_REDIS_PASSWORD_FILE"));
}

/* ---- cases --------------------------------------------------------------------------------- */

static void set_get(void)
{
    struct event_base *b = event_base_new();
    Rds *r = env_rds(b, 2000, 100);
    T_ASSERT(r);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    char key[64];
    snprintf(key, sizeof(key), "{ctest}:rds:%d:k", (int)getpid());
    const char *set[3] = {"SET", key, "a\0b\xe4\xbd\xa0"};
    size_t setlen[3] = {3, strlen(key), 6};
    One s = {0};
    T_ASSERT(rds_command(r, one_cb, &s, 3, set, setlen));
    T_EQ_INT(rds_inflight(r), 1);
    T_ASSERT(iloop_wait(b, one_done, &s, 3000));
    T_EQ_INT(s.type, REDIS_REPLY_STATUS);
    const char *get[2] = {"GET", key};
    One g = {0};
    T_ASSERT(rds_command(r, one_cb, &g, 2, get, NULL));
    T_ASSERT(iloop_wait(b, one_done, &g, 3000));
    T_EQ_INT(g.type, REDIS_REPLY_STRING);
    T_EQ_INT(g.len, 6);
    T_ASSERT(memcmp(g.str, "a\0b\xe4\xbd\xa0", 6) == 0);
    const char *bad[2] = {"NOSUCHCOMMAND", key};
    One e = {0};
    T_ASSERT(rds_command(r, one_cb, &e, 2, bad, NULL));
    T_ASSERT(iloop_wait(b, one_done, &e, 3000));
    T_EQ_INT(e.type, REDIS_REPLY_ERROR); /* a Redis error is a reply, not a link error */
    const char *del[2] = {"DEL", key};
    One d = {0};
    T_ASSERT(rds_command(r, one_cb, &d, 2, del, NULL));
    T_ASSERT(iloop_wait(b, one_done, &d, 3000));
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
    Rds *r = env_rds(b, 5000, N + 1);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    char key[64];
    snprintf(key, sizeof(key), "{ctest}:rds:%d:ctr", (int)getpid());
    const char *del[2] = {"DEL", key};
    One d = {0};
    T_ASSERT(rds_command(r, one_cb, &d, 2, del, NULL));
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
    One d2 = {0};
    T_ASSERT(rds_command(r, one_cb, &d2, 2, del, NULL));
    T_ASSERT(iloop_wait(b, one_done, &d2, 3000));
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

static void max_inflight(void)
{
    struct event_base *b = event_base_new();
    Rds *r = env_rds(b, 2000, 5);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    One o[6] = {{0}};
    const char *ping[1] = {"PING"};
    for (int i = 0; i < 5; i++)
        T_ASSERT(rds_command(r, one_cb, &o[i], 1, ping, NULL));
    T_EQ_INT(rds_inflight(r), 5);
    T_ASSERT(!rds_command(r, one_cb, &o[5], 1, ping, NULL));
    T_ASSERT(iloop_wait(b, one_done, &o[4], 3000));
    T_EQ_INT(rds_inflight(r), 0);
    iloop_run_ms(b, 20);
    T_ASSERT(!o[5].done); /* a refused command never calls back */
    T_ASSERT(rds_command(r, one_cb, &o[5], 1, ping, NULL));
    T_ASSERT(iloop_wait(b, one_done, &o[5], 3000));
    T_EQ_STR(o[5].str, "PONG");
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

static const char *LUA_INCRBY = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

static One eval_wait(struct event_base *b, Rds *r, RdsScript *s, const char *key, const char *n)
{
    const char *args[2] = {key, n};
    One o = {0};
    T_ASSERT(rds_eval(r, s, one_cb, &o, 1, 1, args, NULL));
    T_ASSERT(iloop_wait(b, one_done, &o, 3000));
    return o;
}

static void eval_noscript(void)
{
    srv_start();
    struct event_base *b = event_base_new();
    Rds *r = srv_rds(b, 2000, 100);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    RdsScript *s = rds_script_new(r, LUA_INCRBY);

    One e1 = eval_wait(b, r, s, "t:ev", "5"); /* fresh server: NOSCRIPT -> EVAL */
    T_EQ_INT(e1.type, REDIS_REPLY_INTEGER);
    T_EQ_INT(e1.integer, 5);
    One e2 = eval_wait(b, r, s, "t:ev", "2"); /* cached now: EVALSHA */
    T_EQ_INT(e2.integer, 7);
    One f = cmd_wait(b, r, "SCRIPT FLUSH");
    T_EQ_INT(f.type, REDIS_REPLY_STATUS);
    One e3 = eval_wait(b, r, s, "t:ev", "3");
    T_EQ_INT(e3.type, REDIS_REPLY_INTEGER);
    T_EQ_INT(e3.integer, 10);
    T_EQ_INT(rds_inflight(r), 0);

    /* our SHA1 is the one Redis computes: after SCRIPT LOAD no EVAL fallback is needed */
    const char *load[3] = {"SCRIPT", "LOAD", LUA_INCRBY};
    One l = {0};
    T_ASSERT(rds_command(r, one_cb, &l, 3, load, NULL));
    T_ASSERT(iloop_wait(b, one_done, &l, 3000));
    T_EQ_INT(l.type, REDIS_REPLY_STRING);
    T_ASSERT(strcmp(cmd_wait(b, r, "CONFIG RESETSTAT").str, "OK") == 0);
    One e4 = eval_wait(b, r, s, "t:ev", "1");
    T_EQ_INT(e4.integer, 11);
    One st = cmd_wait(b, r, "INFO commandstats");
    T_ASSERT(strstr(st.str, "cmdstat_evalsha:calls=1,") != NULL);
    T_ASSERT(strstr(st.str, "cmdstat_eval:") == NULL);
    /* and after a flush the fallback really runs EVAL */
    (void)cmd_wait(b, r, "SCRIPT FLUSH");
    T_ASSERT(strcmp(cmd_wait(b, r, "CONFIG RESETSTAT").str, "OK") == 0);
    One e5 = eval_wait(b, r, s, "t:ev", "1");
    T_EQ_INT(e5.integer, 12);
    st = cmd_wait(b, r, "INFO commandstats");
    T_ASSERT(strstr(st.str, "cmdstat_eval:calls=1,") != NULL);
    const char *err_script = "return redis.error_reply('boom')";
    RdsScript *bad = rds_script_new(r, err_script);
    One be = {0};
    T_ASSERT(rds_eval(r, bad, one_cb, &be, 0, 0, NULL, NULL));
    T_ASSERT(iloop_wait(b, one_done, &be, 3000));
    T_EQ_INT(be.type, REDIS_REPLY_ERROR);
    T_ASSERT(strstr(be.str, "boom") != NULL);
    rds_free(r);
    event_base_free(b);
    srv_kill();
    t_leak_check();
}

static void op_timeout(void)
{
    srv_start();
    struct event_base *b = event_base_new();
    Rds *r = srv_rds(b, 300, 100);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    const char *sleep2[3] = {"DEBUG", "SLEEP", "2"};
    const char *ping[1] = {"PING"};
    One s = {0}, p = {0};
    int64_t t0 = util_now_ms();
    T_ASSERT(rds_command(r, one_cb, &s, 3, sleep2, NULL));
    T_ASSERT(rds_command(r, one_cb, &p, 1, ping, NULL));
    T_ASSERT(iloop_wait(b, one_done, &s, 2000));
    T_ASSERT(one_done(&p)); /* failed together: the link was reset */
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
        if (!iloop_wait(b, ready, r, 3000))
            continue;
        One q = {0};
        if (!rds_command(r, one_cb, &q, 1, ping, NULL)) {
            iloop_run_ms(b, 20);
            continue;
        }
        T_ASSERT(iloop_wait(b, one_done, &q, 3000));
        ok = q.type == REDIS_REPLY_STATUS;
    }
    T_ASSERT(ok);
    rds_free(r);
    event_base_free(b);
    srv_kill();
    t_leak_check();
}

static void restart(void)
{
    srv_start();
    struct event_base *b = event_base_new();
    Rds *r = srv_rds(b, 10000, 100);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    RdsScript *s = rds_script_new(r, LUA_INCRBY);
    One e1 = eval_wait(b, r, s, "t:rs", "1");
    T_EQ_INT(e1.integer, 1);

    const char *blpop[3] = {"BLPOP", "t:nothing", "5"};
    One pend[3] = {{0}};
    for (int i = 0; i < 3; i++)
        T_ASSERT(rds_command(r, one_cb, &pend[i], 3, blpop, NULL));
    iloop_run_ms(b, 100);
    srv_stop();
    T_ASSERT(iloop_wait(b, one_done, &pend[2], 3000));
    for (int i = 0; i < 3; i++) {
        T_ASSERT(pend[i].done);
        T_EQ_INT(pend[i].type, -1);
    }
    printf("  pending op failed with: %s\n", pend[0].err);
    T_ASSERT(iloop_wait(b, not_ready, r, 1000));
    One refused = {0};
    const char *ping[1] = {"PING"};
    T_ASSERT(!rds_command(r, one_cb, &refused, 1, ping, NULL)); /* fail fast while down */
    iloop_run_ms(b, 400);                                       /* a few failed reconnects */

    srv_start();
    T_ASSERT(iloop_wait(b, ready, r, 8000));
    One p = cmd_wait(b, r, "PING");
    T_EQ_STR(p.str, "PONG");
    One e2 = eval_wait(b, r, s, "t:rs", "1"); /* script cache is empty after a restart */
    T_EQ_INT(e2.type, REDIS_REPLY_INTEGER);
    T_EQ_INT(e2.integer, 1);
    T_ASSERT(!refused.done);
    rds_free(r);
    event_base_free(b);
    srv_kill();
    t_leak_check();
}

typedef struct {
    int resyncs;
    int msgs;
    char last[64];
    size_t last_len;
} Sub;

static void sub_msg_cb(const char *channel, const char *msg, size_t len, void *arg)
{
    Sub *s = arg;
    T_EQ_STR(channel, "t:chan");
    if (!msg) {
        T_EQ_INT(len, 0);
        s->resyncs++;
        return;
    }
    s->msgs++;
    s->last_len = len < sizeof(s->last) ? len : sizeof(s->last) - 1;
    memcpy(s->last, msg, s->last_len);
    s->last[s->last_len] = '\0';
}

static bool resync1(void *arg)
{
    return ((Sub *)arg)->resyncs >= 1;
}

static bool resync2(void *arg)
{
    return ((Sub *)arg)->resyncs >= 2;
}

static bool msg1(void *arg)
{
    return ((Sub *)arg)->msgs >= 1;
}

static bool msg2(void *arg)
{
    return ((Sub *)arg)->msgs >= 2;
}

static void pubsub(void)
{
    srv_start();
    struct event_base *b = event_base_new();
    Rds *r = srv_rds(b, 2000, 100);
    T_ASSERT(iloop_wait(b, ready, r, 5000));
    Sub s = {0};
    T_ASSERT(rds_subscribe(r, "t:chan", sub_msg_cb, &s));
    T_ASSERT(iloop_wait(b, resync1, &s, 5000));
    const char *pub[3] = {"PUBLISH", "t:chan", "hi\0there"};
    size_t publen[3] = {7, 6, 8};
    One o = {0};
    T_ASSERT(rds_command(r, one_cb, &o, 3, pub, publen));
    T_ASSERT(iloop_wait(b, one_done, &o, 3000));
    T_EQ_INT(o.integer, 1); /* one subscriber: us */
    T_ASSERT(iloop_wait(b, msg1, &s, 3000));
    T_EQ_INT(s.last_len, 8);
    T_ASSERT(memcmp(s.last, "hi\0there", 8) == 0);

    admin_cmd("127.0.0.1", srv_port, "CLIENT KILL TYPE pubsub");
    T_ASSERT(iloop_wait(b, resync2, &s, 5000));
    T_EQ_INT(s.resyncs, 2);
    const char *pub2[3] = {"PUBLISH", "t:chan", "again"};
    One o2 = {0};
    T_ASSERT(rds_command(r, one_cb, &o2, 3, pub2, NULL));
    T_ASSERT(iloop_wait(b, msg2, &s, 3000));
    T_EQ_STR(s.last, "again");
    T_EQ_INT(s.msgs, 2);
    rds_free(r);
    event_base_free(b);
    srv_kill();
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
    srv_start();
    struct event_base *b = event_base_new();
    FreeCtx f = {0};
    f.r = srv_rds(b, 5000, 100);
    T_ASSERT(iloop_wait(b, ready, f.r, 5000));
    const char *blpop[3] = {"BLPOP", "t:nothing", "5"};
    for (int i = 0; i < 4; i++)
        T_ASSERT(rds_command(f.r, free_cb, &f, 3, blpop, NULL));
    iloop_run_ms(b, 50);
    rds_free(f.r);
    T_EQ_INT(f.called, 4);
    T_EQ_INT(f.shutting, 4);
    T_EQ_INT(f.resend_ok, 0);
    event_base_free(b);
    srv_kill();
    t_leak_check();
}

static void no_server(void)
{
    struct event_base *b = event_base_new();
    Rds *r = rds_new(b, "127.0.0.1", iproc_free_port(), 300, 10, NULL, NULL);
    const char *ping[1] = {"PING"};
    One o = {0};
    iloop_run_ms(b, 300);
    T_ASSERT(!rds_ready(r));
    T_ASSERT(!rds_command(r, one_cb, &o, 1, ping, NULL));
    Sub s = {0};
    T_ASSERT(rds_subscribe(r, "t:chan", sub_msg_cb, &s));
    iloop_run_ms(b, 300);
    T_EQ_INT(s.resyncs, 0);
    rds_free(r);
    event_base_free(b);
    t_leak_check();
}

/* ---- AUTH (issue 12) ----------------------------------------------------------------------- */

/* A wrong password keeps both links down (nothing sent, nothing subscribed), retried with
 * the backoff; once the file holds the right one, the next reconnect gets in. A password
 * file that is missing, empty or readable by others is refused at once. */
static void auth_refused_then_recovers(void)
{
    srv_start();
    struct event_base *b = event_base_new();
    char path[600];
    snprintf(path, sizeof(path), "%s/bad.password", t_tmpdir());
    T_ASSERT(rds_new(b, "127.0.0.1", srv_port, 1000, 10, SRV_USER, path) == NULL); /* missing */
    write_secret(path, "");
    T_ASSERT(rds_new(b, "127.0.0.1", srv_port, 1000, 10, SRV_USER, path) == NULL); /* empty */
    write_secret(path, SRV_PASSWORD);
    T_EQ_INT(chmod(path, 0644), 0);
    T_ASSERT(rds_new(b, "127.0.0.1", srv_port, 1000, 10, SRV_USER, path) == NULL); /* readable */

    write_secret(srv_pwfile(), "not-the-password");
    Rds *r = srv_rds(b, 1000, 10);
    T_ASSERT(r);
    Sub s = {0};
    T_ASSERT(rds_subscribe(r, "t:chan", sub_msg_cb, &s));
    iloop_run_ms(b, 1500);
    T_ASSERT(!rds_ready(r));
    One o = {0};
    const char *ping[1] = {"PING"};
    T_ASSERT(!rds_command(r, one_cb, &o, 1, ping, NULL));
    T_EQ_INT(s.resyncs, 0);
    /* Redis logged the refused AUTHs (grouped, with a count) */
    redisContext *adm = admin_connect("127.0.0.1", srv_port);
    T_ASSERT(adm);
    redisReply *log = redisCommand(adm, "ACL LOG");
    T_ASSERT(log && log->type == REDIS_REPLY_ARRAY && log->elements >= 1);
    freeReplyObject(log);

    write_secret(srv_pwfile(), SRV_PASSWORD); /* rotated in place: read on the next attempt */
    T_ASSERT(iloop_wait(b, ready, r, 8000));
    T_EQ_STR(cmd_wait(b, r, "PING").str, "PONG");
    T_ASSERT(iloop_wait(b, resync1, &s, 8000)); /* the pub/sub link authenticated too */
    One who = cmd_wait(b, r, "ACL WHOAMI");
    T_EQ_STR(who.str, SRV_USER);
    /* a reconnect authenticates again */
    redisReply *k = redisCommand(adm, "CLIENT KILL USER %s", SRV_USER);
    T_ASSERT(k && k->type == REDIS_REPLY_INTEGER && k->integer >= 2);
    freeReplyObject(k);
    redisFree(adm);
    T_ASSERT(iloop_wait(b, not_ready, r, 3000));
    T_ASSERT(iloop_wait(b, ready, r, 8000));
    T_ASSERT(iloop_wait(b, resync2, &s, 8000));
    T_EQ_STR(cmd_wait(b, r, "ACL WHOAMI").str, SRV_USER);
    rds_free(r);
    event_base_free(b);
    srv_kill();
    t_leak_check();
}

/* The shared stack's Redis (deploy/stack.sh) refuses anyone who has not authenticated as
 * its user, keeps that user to the county keys and channels, and refuses it admin
 * commands. */
static void stack_refuses_unauthenticated(void)
{
    char err[256];
    redisContext *c = fix_redis_connect(env_host(), env_port(), NULL, NULL, err, sizeof(err));
    T_ASSERT(c);
    redisReply *r = redisCommand(c, "GET {c330281}:pending");
    T_ASSERT(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0);
    freeReplyObject(r);
    redisFree(c);
    T_ASSERT(!fix_redis_connect(env_host(), env_port(), "", "", err, sizeof(err)));
    T_ASSERT(strstr(err, "WRONGPASS") != NULL);
    T_ASSERT(!fix_redis_connect(env_host(), env_port(), t_env("CARELINE_REDIS_USER"), "guess", err,
                                sizeof(err)));
    T_ASSERT(strstr(err, "WRONGPASS") != NULL);
    /* the default user is off even with the real password */
    T_ASSERT(!fix_redis_connect(env_host(), env_port(), "default", fix_redis_password(), err,
                                sizeof(err)));
    c = fix_redis();
    const char *refused[] = {"FLUSHALL",
                             "CONFIG SET appendonly no",
                             "SCRIPT FLUSH",
                             "SET t:outside 1",
                             "PUBLISH other-channel x",
                             "ACL LIST",
                             "CLIENT KILL TYPE normal",
                             "SHUTDOWN NOSAVE"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = redisCommand(c, refused[i]);
        if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOPERM", 6) != 0)
            t_fail(__FILE__, __LINE__, "'%s' was not refused: %s", refused[i],
                   r ? (r->str ? r->str : "(no text)") : c->errstr);
        freeReplyObject(r);
    }
    r = redisCommand(c, "EVAL %s 1 %s", "return redis.call('SET', KEYS[1], '1')", "{ctest}:acl");
    T_ASSERT(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "DEL {ctest}:acl");
    T_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    redisFree(c);
}

/* dispatchd given a wrong password is not ready, says why (once, without the secret), and
 * gets in once the file holds the right one; a world-readable password file stops it at
 * start with a sentence. */
static void daemon_wrong_password(void)
{
    char path[600], opt[700];
    snprintf(path, sizeof(path), "%s/redis.password", t_tmpdir());
    snprintf(opt, sizeof(opt), "--redis_password_file=%s", path);
    write_secret(path, "wrong-password-4711");
    Daemon d;
    itest_daemon_start(&d, (const char *const[]){opt, NULL});
    char body[1024];
    int code = 0;
    for (int i = 0; i < 30; i++) { /* PostgreSQL comes up, Redis must not */
        code = itest_http_get(d.http_port, "/readyz", body, sizeof(body));
        if (strstr(body, "\"postgres\":true"))
            break;
        usleep(100000);
    }
    usleep(1500000); /* a few reconnects */
    code = itest_http_get(d.http_port, "/readyz", body, sizeof(body));
    printf("  /readyz with a wrong password: %d %s", code, body);
    T_EQ_INT(code, 503);
    T_ASSERT(strstr(body, "\"redis\":false") != NULL);
    T_EQ_INT(itest_metric(d.http_port, "careline_redis_up"), 0);
    /* one line for both links and every retry (the retries are at debug level) */
    T_EQ_INT(itest_log_count(&d, "down: Redis refused our credentials (user 'careline'"), 1);
    T_ASSERT(itest_log_count(&d, "check redis_user and redis_password_file"));
    T_ASSERT(!itest_log_count(&d, "wrong-password-4711"));

    write_secret(path, fix_redis_password());
    itest_daemon_wait_ready(&d);
    T_ASSERT(itest_log_count(&d, "up again after"));
    T_ASSERT(!itest_log_count(&d, fix_redis_password()));
    itest_daemon_down(&d);

    T_EQ_INT(chmod(path, 0644), 0);
    itest_daemon_spawn(&d, (const char *const[]){opt, NULL});
    int rc = itest_daemon_wait_exit(&d, 10000);
    T_ASSERT(rc != 0 && rc != -1);
    T_ASSERT(itest_log_count(&d, "that others cannot read (chmod 600 it)"));
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"rds_set_get", set_get, 20},
        {"rds_pipeline_10k", pipeline_10k, 40},
        {"rds_max_inflight", max_inflight, 20},
        {"rds_eval_noscript", eval_noscript, 20},
        {"rds_op_timeout", op_timeout, 30},
        {"rds_restart", restart, 30},
        {"rds_pubsub_resubscribe", pubsub, 30},
        {"rds_free_pending", free_pending, 20},
        {"rds_no_server", no_server, 20},
        {"rds_auth_refused_then_recovers", auth_refused_then_recovers, 30},
        {"rds_stack_refuses_unauthenticated", stack_refuses_unauthenticated, 20},
        {"rds_daemon_wrong_password", daemon_wrong_password, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
