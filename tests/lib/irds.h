/*
 * irds: what the tests of the async Redis client (daemon/store/rds) share: a private
 * redis-server per case (for what would disturb other tests: SCRIPT FLUSH, DEBUG SLEEP,
 * SHUTDOWN, CLIENT KILL) with its own ACL user and password file, clients of it and of the
 * shared server of tests/run.sh, and collectors for replies and pub/sub deliveries. Every
 * wait is bounded; a failure fails the case (t_fail). The private server lives in the
 * case's temporary directory and is the case's child (its process group), so a failing case
 * never leaves it behind.
 */
#ifndef CARELINE_IRDS_H
#define CARELINE_IRDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "store/rds.h"

#define IRDS_SRV_USER     "careline"              /* the private server's ACL user */
#define IRDS_SRV_PASSWORD "private-test-password" /* ...and its password */
#define IRDS_LUA_INCRBY   "return redis.call('INCRBY', KEYS[1], ARGV[1])"

/* IloopPred over an Rds *: rds_ready(arg), and its negation. */
bool irds_ready(void *arg);
bool irds_not_ready(void *arg);

/* Writes text (plus a newline) to path with mode 600, atomically (rename). */
void irds_write_secret(const char *path, const char *text);

/* Starts the private redis-server (on a free port chosen on the first start and kept for
 * restarts; its password file written unless it exists) and waits until it answers PING as
 * IRDS_SRV_USER. */
void irds_srv_start(void);
/* SHUTDOWN NOSAVE, then reap the process (fails the case unless it exits within 5 s). */
void irds_srv_stop(void);
/* SIGKILL and reap (at the end of a case). */
void irds_srv_kill(void);
/* The private server's port (0 before the first irds_srv_start). */
int irds_srv_port(void);
/* The private server's password file (the right password unless a case rewrites it;
 * static). */
const char *irds_srv_pwfile(void);
/* Rebuilds on the private server number generations in the shared database, leaving the
 * shared server's generation key behind it: dropping the key ({c330281}:gen) makes the next
 * daemon on the shared server rebuild it from PostgreSQL, as after a loss. */
void irds_shared_generation_forget(void);
/* A client of the private server that authenticates with irds_srv_pwfile(). */
Rds *irds_srv_rds(struct event_base *b, int op_timeout_ms, int max_inflight);
/* A blocking connection to host:port as the private server's user; NULL when it fails. */
redisContext *irds_admin_connect(const char *host, int port);
/* Runs cmd on such a connection; fails the case on any error. */
void irds_admin_cmd(const char *host, int port, const char *cmd);

/* The shared server (CARELINE_REDIS_HOST / _PORT), and a client of it authenticated as the
 * stack's user (CARELINE_REDIS_USER, CARELINE_REDIS_PASSWORD_FILE). */
const char *irds_env_host(void);
int irds_env_port(void);
Rds *irds_env_rds(struct event_base *b, int op_timeout_ms, int max_inflight);

/* One reply, as irds_one_cb saw it (zero it before use). */
typedef struct {
    bool done;
    int type; /* REDIS_REPLY_* or -1 for a NULL reply */
    long long integer;
    char str[4096];
    size_t len;
    char err[256];
    int64_t at; /* util_now_ms() when it came */
} IrdsOne;

/* IloopPred over an IrdsOne *: the reply came. */
bool irds_one_done(void *arg);
/* RdsReplyCb filling the IrdsOne at arg; fails the case when called twice or when reply and
 * err do not follow rds.h's contract. */
void irds_one_cb(redisReply *reply, const char *err, void *arg);
/* Sends a whitespace-split command (at most 16 words) and waits up to 5 s for its answer;
 * fails the case when rds_command refuses it or nothing comes. */
IrdsOne irds_cmd_wait(struct event_base *b, Rds *r, const char *line);
/* Runs s with KEYS[1] = key and ARGV[1] = n and waits up to 3 s for the answer. */
IrdsOne irds_eval_wait(struct event_base *b, Rds *r, RdsScript *s, const char *key, const char *n);

/* What a subscriber to "t:chan" received (zero it before use). */
typedef struct {
    int resyncs; /* (re)subscribed events */
    int msgs;
    char last[64]; /* the last message, cut to fit, NUL-terminated */
    size_t last_len;
} IrdsSub;

/* RdsMessageCb filling the IrdsSub at arg; fails the case for any channel but "t:chan". */
void irds_sub_cb(const char *channel, const char *msg, size_t len, void *arg);
/* IloopPreds over an IrdsSub *: at least 1 or 2 resyncs, at least 1 or 2 messages. */
bool irds_resync1(void *arg);
bool irds_resync2(void *arg);
bool irds_msg1(void *arg);
bool irds_msg2(void *arg);

#endif
