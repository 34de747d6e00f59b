/*
 * irds: the private redis-server, clients and reply collectors of the rds tests (irds.h).
 */
#include "irds.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "fixture.h"
#include "iloop.h"
#include "iproc.h"
#include "t.h"

bool irds_ready(void *arg)
{
    return rds_ready(arg);
}

bool irds_not_ready(void *arg)
{
    return !rds_ready(arg);
}

static int srv_port;

static pid_t srv_pid;

int irds_srv_port(void)
{
    return srv_port;
}

/* Writes text (plus a newline) to path with mode 600, atomically (rename). */
void irds_write_secret(const char *path, const char *text)
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
const char *irds_srv_pwfile(void)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/srv.password", t_tmpdir());
    return path;
}

/* Blocking admin connection (fine in a test), as the private server's user. */
redisContext *irds_admin_connect(const char *host, int port)
{
    char err[256];
    return fix_redis_connect(host, port, IRDS_SRV_USER, IRDS_SRV_PASSWORD, err, sizeof(err));
}

/* A client of the private server with its own AUTH. */
Rds *irds_srv_rds(struct event_base *b, int op_timeout_ms, int max_inflight)
{
    return rds_new(b, "127.0.0.1", srv_port, op_timeout_ms, max_inflight, IRDS_SRV_USER,
                   irds_srv_pwfile());
}

void irds_admin_cmd(const char *host, int port, const char *cmd)
{
    redisContext *c = irds_admin_connect(host, port);
    if (!c)
        t_fail(__FILE__, __LINE__, "admin connect %s:%d failed", host, port);
    redisReply *r = redisCommand(c, cmd);
    if (!r || r->type == REDIS_REPLY_ERROR)
        t_fail(__FILE__, __LINE__, "admin %s: %s", cmd, r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

void irds_srv_start(void)
{
    char port[16], logf[300];
    if (!srv_port)
        srv_port = iproc_free_port();
    snprintf(port, sizeof(port), "%d", srv_port);
    snprintf(logf, sizeof(logf), "%s/redis.log", t_tmpdir());
    if (access(irds_srv_pwfile(), F_OK) != 0)
        irds_write_secret(irds_srv_pwfile(), IRDS_SRV_PASSWORD);
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
                                                IRDS_SRV_USER,
                                                "on",
                                                ">" IRDS_SRV_PASSWORD,
                                                "~*",
                                                "&*",
                                                "+@all",
                                                NULL},
                          IPROC_INHERIT, IPROC_INHERIT, NULL, false);
    int64_t end = util_now_ms() + 5000;
    while (util_now_ms() < end) {
        redisContext *c = irds_admin_connect("127.0.0.1", srv_port);
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
void irds_srv_stop(void)
{
    redisContext *c = irds_admin_connect("127.0.0.1", srv_port);
    T_ASSERT(c);
    redisReply *r = redisCommand(c, "SHUTDOWN NOSAVE");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    if (iproc_wait_exit(&srv_pid, 5000) < 0)
        t_fail(__FILE__, __LINE__, "redis-server did not exit");
}

void irds_srv_kill(void)
{
    (void)iproc_stop(&srv_pid, SIGKILL, 5000);
}

bool irds_one_done(void *arg)
{
    return ((IrdsOne *)arg)->done;
}

void irds_one_cb(redisReply *reply, const char *err, void *arg)
{
    IrdsOne *o = arg;
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
IrdsOne irds_cmd_wait(struct event_base *b, Rds *r, const char *line)
{
    char buf[256], *save = NULL;
    const char *argv[16];
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *tok = strtok_r(buf, " ", &save); tok && argc < 16; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    IrdsOne o = {0};
    if (!rds_command(r, irds_one_cb, &o, argc, argv, NULL))
        t_fail(__FILE__, __LINE__, "rds_command(%s) refused", line);
    if (!iloop_wait(b, irds_one_done, &o, 5000))
        t_fail(__FILE__, __LINE__, "no answer to %s", line);
    return o;
}

const char *irds_env_host(void)
{
    return t_env("CARELINE_REDIS_HOST");
}

int irds_env_port(void)
{
    return atoi(t_env("CARELINE_REDIS_PORT"));
}

/* A client of the shared server, authenticated as the stack's user. */
Rds *irds_env_rds(struct event_base *b, int op_timeout_ms, int max_inflight)
{
    return rds_new(b, irds_env_host(), irds_env_port(), op_timeout_ms, max_inflight,
                   t_env("CARELINE_REDIS_USER"), t_env("CARELINE_REDIS_PASSWORD_FILE"));
}

IrdsOne irds_eval_wait(struct event_base *b, Rds *r, RdsScript *s, const char *key, const char *n)
{
    const char *args[2] = {key, n};
    IrdsOne o = {0};
    T_ASSERT(rds_eval(r, s, irds_one_cb, &o, 1, 1, args, NULL));
    T_ASSERT(iloop_wait(b, irds_one_done, &o, 3000));
    return o;
}

void irds_sub_cb(const char *channel, const char *msg, size_t len, void *arg)
{
    IrdsSub *s = arg;
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

bool irds_resync1(void *arg)
{
    return ((IrdsSub *)arg)->resyncs >= 1;
}

bool irds_resync2(void *arg)
{
    return ((IrdsSub *)arg)->resyncs >= 2;
}

bool irds_msg1(void *arg)
{
    return ((IrdsSub *)arg)->msgs >= 1;
}

bool irds_msg2(void *arg)
{
    return ((IrdsSub *)arg)->msgs >= 2;
}

void irds_shared_generation_forget(void)
{
    redisContext *r = fix_redis();
    redisReply *rep = redisCommand(r, "DEL {c330281}:gen");
    T_ASSERT(rep && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    redisFree(r);
}
