/*
 * rds: hiredis 0.14 async on libevent (STYLE "hiredis async with libevent"), the client and
 * its command link's ops. Ops sit in a FIFO (oldest first = earliest deadline, one timeout
 * for all); one timer at the head's deadline resets the link with redisAsyncFree(), which
 * makes hiredis call every pending callback with NULL, so each op is still reported exactly
 * once. Links: rds_link.c; AUTH: rds_auth.c; pub/sub: rds_pubsub.c (see store/rds_int.h).
 */
#include "store/rds_int.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static void op_unlink(Rds *r, RdsOp *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        r->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        r->tail = op->prev;
    op->prev = op->next = NULL;
    r->ninflight--;
}

static void op_append(Rds *r, RdsOp *op)
{
    op->prev = r->tail;
    if (r->tail)
        r->tail->next = op;
    else
        r->head = op;
    r->tail = op;
    r->ninflight++;
    if (!evtimer_pending(r->op_timer, NULL))
        util_timer_ms(r->op_timer, r->op_timeout_ms);
}

static void op_free(RdsOp *op)
{
    free(op->argv);
    free(op->argvlen);
    free(op->blob);
    free(op);
}

/* ---- ops --------------------------------------------------------------------------------- */

static void op_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    RdsOp *op = privdata;
    Rds *r = op->r;
    redisReply *rep = reply;
    char err[RDS_ERR_LEN];

    if (!rep) {
        if (r->cmd.ac == ac)
            r->cmd.failing = true; /* hiredis is tearing the link down */
        if (r->drop_reason)
            snprintf(err, sizeof(err), "redis: %s", r->drop_reason);
        else
            snprintf(err, sizeof(err), "redis connection lost: %s",
                     ac->err && ac->errstr ? ac->errstr : "disconnected");
    } else if (op->script && !op->retried && rep->type == REDIS_REPLY_ERROR &&
               strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        op->retried = true;
        op->argv[0] = "EVAL";
        op->argvlen[0] = 4;
        op->argv[1] = op->script->src;
        op->argvlen[1] = op->script->len;
        if (redisAsyncCommandArgv(ac, op_cb, op, op->argc, op->argv, op->argvlen) == REDIS_OK)
            return; /* same op, same place in the FIFO, same deadline */
    }
    op_unlink(r, op);
    r->cb_depth++;
    op->cb(rep, rep ? NULL : err, op->arg);
    r->cb_depth--;
    op_free(op);
}

/* Resets the command link when the oldest op is past its deadline. */
static void op_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    Rds *r = arg;
    (void)fd;
    (void)what;

    if (!r->head)
        return;
    int64_t now = util_now_ms();
    if (r->head->deadline <= now) {
        log_warn("redis %s:%d: op timed out after %d ms with %zu in flight; resetting the link",
                 r->host, r->port, r->op_timeout_ms, r->ninflight);
        rds_link_drop(&r->cmd, "operation timed out (link reset)");
    }
    if (r->head)
        util_timer_ms(r->op_timer, r->head->deadline > now ? r->head->deadline - now : 0);
}

static bool rds_can_send(const Rds *r)
{
    return !r->closing && r->cmd.state == RDS_UP && !r->cmd.failing &&
           r->ninflight < (size_t)r->max_inflight;
}

static RdsOp *op_new(Rds *r, RdsReplyCb cb, void *arg)
{
    RdsOp *op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->cb = cb;
    op->arg = arg;
    op->deadline = util_now_ms() + r->op_timeout_ms;
    return op;
}

/* ---- public API ---------------------------------------------------------------------------- */

Rds *rds_new(struct event_base *base, const char *host, int port, int op_timeout_ms,
             int max_inflight, const char *user, const char *password_file)
{
    if (!base || !host || port <= 0 || port > 65535 || op_timeout_ms < 1 || max_inflight < 1) {
        log_error("rds_new: bad arguments");
        return NULL;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
        /* hiredis would resolve it with a blocking getaddrinfo() on every (re)connect */
        log_error("rds_new: '%s' is not an IP address (resolve names before the loop runs)", host);
        return NULL;
    }
    Rds *r = xcalloc(1, sizeof(*r));
    r->base = base;
    r->host = xstrdup(host);
    r->port = port;
    r->user = user && user[0] ? xstrdup(user) : NULL;
    r->password_file = password_file && password_file[0] ? xstrdup(password_file) : NULL;
    char err[RDS_ERR_LEN];
    if (r->password_file && !rds_password_load(r, err, sizeof(err))) {
        log_error("%s", err);
        free(r->user);
        free(r->password_file);
        free(r->host);
        free(r);
        return NULL;
    }
    if (!r->password_file)
        log_warn("redis %s:%d: no redis_password_file, so no AUTH: only for a Redis that "
                 "requires none and that no one else can reach",
                 host, port);
    r->op_timeout_ms = op_timeout_ms;
    r->max_inflight = max_inflight;
    r->rng = util_rng_seed(r);
    r->op_timer = evtimer_new(base, op_timer_cb, r);
    ASSERT(r->op_timer);
    rds_link_init(r, &r->cmd, "redis", false);
    rds_link_init(r, &r->sub, "redis pubsub", true);
    rds_link_connect(&r->cmd);
    return r;
}

bool rds_command(Rds *r, RdsReplyCb cb, void *arg, int argc, const char **argv,
                 const size_t *argvlen)
{
    ASSERT(r && cb && argc > 0 && argv);
    if (!rds_can_send(r))
        return false;
    RdsOp *op = op_new(r, cb, arg);
    if (redisAsyncCommandArgv(r->cmd.ac, op_cb, op, argc, argv, argvlen) != REDIS_OK) {
        op_free(op);
        return false;
    }
    op_append(r, op);
    return true;
}

RdsScript *rds_script_new(Rds *r, const char *lua_source)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    RdsScript *s = xcalloc(1, sizeof(*s));

    ASSERT(r && lua_source);
    s->src = xstrdup(lua_source);
    s->len = strlen(lua_source);
    SHA1((const unsigned char *)s->src, s->len, md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    s->next = r->scripts;
    r->scripts = s;
    return s;
}

bool rds_eval(Rds *r, RdsScript *s, RdsReplyCb cb, void *arg, int nkeys, int nargs,
              const char **args, const size_t *lens)
{
    ASSERT(r && s && cb && nkeys >= 0 && nargs >= 0 && (nkeys + nargs == 0 || args));
    if (!rds_can_send(r))
        return false;
    RdsOp *op = op_new(r, cb, arg);
    int n = nkeys + nargs;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens ? lens[i] : strlen(args[i]);
    op->script = s;
    op->argc = 3 + n;
    op->argv = xcalloc((size_t)op->argc, sizeof(*op->argv));
    op->argvlen = xcalloc((size_t)op->argc, sizeof(*op->argvlen));
    op->blob = xmalloc(total);
    snprintf(op->nkeys, sizeof(op->nkeys), "%d", nkeys);
    op->argv[0] = "EVALSHA";
    op->argvlen[0] = 7;
    op->argv[1] = s->sha;
    op->argvlen[1] = 40;
    op->argv[2] = op->nkeys;
    op->argvlen[2] = strlen(op->nkeys);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(args[i]);
        memcpy(op->blob + off, args[i], len);
        op->argv[3 + i] = op->blob + off;
        op->argvlen[3 + i] = len;
        off += len;
    }
    if (redisAsyncCommandArgv(r->cmd.ac, op_cb, op, op->argc, op->argv, op->argvlen) != REDIS_OK) {
        op_free(op);
        return false;
    }
    op_append(r, op);
    return true;
}

bool rds_ready(const Rds *r)
{
    return !r->closing && r->cmd.state == RDS_UP && !r->cmd.failing;
}

uint64_t rds_link_epoch(const Rds *r)
{
    return r->cmd.ups;
}

bool rds_write_refused(const redisReply *reply)
{
    static const char *const prefixes[] = {"OOM ", "MISCONF ", "READONLY ", "NOREPLICAS ",
                                           "NOTWRITABLE "};
    if (!reply || reply->type != REDIS_REPLY_ERROR || !reply->str)
        return false;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(reply->str, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    /* a script's write refused inside it comes back wrapped: "ERR Error running script ...
     * OOM command not allowed ..." (Redis 7 keeps the original's code in the text) */
    return strstr(reply->str, "-OOM ") || strstr(reply->str, "-MISCONF ") ||
           strstr(reply->str, "OOM command not allowed") ||
           strstr(reply->str, "MISCONF Redis is configured") ||
           strstr(reply->str, "write command not allowed");
}

void rds_set_op_timeout(Rds *r, int op_timeout_ms)
{
    ASSERT(op_timeout_ms >= 1);
    if (op_timeout_ms == r->op_timeout_ms)
        return;
    r->op_timeout_ms = op_timeout_ms;
    /* clamping every deadline to one bound keeps the FIFO in deadline order */
    int64_t bound = util_now_ms() + op_timeout_ms;
    for (RdsOp *op = r->head; op; op = op->next)
        if (op->deadline > bound)
            op->deadline = bound;
    /* the timer may still be armed with the old timeout, also with nothing in flight */
    event_del(r->op_timer);
    if (r->head) {
        int64_t left = r->head->deadline - util_now_ms();
        util_timer_ms(r->op_timer, left > 0 ? left : 0);
    }
}

size_t rds_inflight(const Rds *r)
{
    return r->ninflight;
}

void rds_free(Rds *r)
{
    if (!r)
        return;
    ASSERT(r->cb_depth == 0); /* not allowed from inside an rds callback */
    r->closing = true;
    rds_link_drop(&r->cmd, "shutting down");
    rds_link_drop(&r->sub, "shutting down");
    ASSERT(r->head == NULL && r->ninflight == 0);
    event_free(r->cmd.timer);
    event_free(r->sub.timer);
    event_free(r->op_timer);
    while (r->scripts) {
        RdsScript *s = r->scripts;
        r->scripts = s->next;
        free(s->src);
        free(s);
    }
    while (r->subs) {
        RdsSub *s = r->subs;
        r->subs = s->next;
        free(s->channel);
        free(s);
    }
    OPENSSL_cleanse(r->password, sizeof(r->password));
    free(r->user);
    free(r->password_file);
    free(r->host);
    free(r);
}
