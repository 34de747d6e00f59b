/*
 * rds: hiredis 0.14 async on libevent (STYLE "hiredis async with libevent"). Each RdsLink is
 * DOWN -> CONNECTING -> UP with our own connect timer and reconnect backoff; hiredis frees
 * its context after the connect-error/disconnect callbacks, so we forget ac there and only
 * schedule the reconnect. Ops sit in a FIFO (oldest first = earliest deadline, one timeout for
 * all); one timer at the head's deadline resets the link with redisAsyncFree(), which makes
 * hiredis call every pending callback with NULL, so each op is still reported exactly once.
 * With a password, AUTH is the first command on every new context (pipelined before
 * anything else, even before the TCP connect completes) and a link is UP only once Redis
 * accepted it; a refusal is a link failure like any other (logged, retried with backoff).
 */
#include "store/rds.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#define RDS_BACKOFF_MIN_MS         100
#define RDS_BACKOFF_MAX_MS         5000
#define RDS_CONNECT_TIMEOUT_MIN_MS 1000
#define RDS_ERR_LEN                256
#define RDS_SECRET_MAX             512 /* bytes of a password (Redis ACL passwords are short) */

typedef enum {
    RDS_DOWN,       /* ac == NULL; timer = backoff (unless closing) */
    RDS_CONNECTING, /* ac set, connect (and AUTH) in progress; timer = connect deadline */
    RDS_UP,         /* ac connected */
    RDS_CLOSING,    /* rds_free in progress */
} RdsState;

typedef struct RdsLink {
    Rds *r;                /* owner */
    const char *name;      /* "redis" or "redis pubsub", for logs */
    bool is_sub;           /* the pub/sub link */
    RdsState state;        /* see RdsState */
    redisAsyncContext *ac; /* NULL while DOWN; hiredis owns and frees it */
    bool failing;          /* hiredis is failing the pending callbacks; refuse new ops */
    struct event *timer;   /* backoff or connect deadline, by state */
    int backoff_ms;        /* next reconnect base delay */
    unsigned failures;     /* failed attempts since the link was last up */
} RdsLink;

typedef struct RdsOp RdsOp;
struct RdsOp {
    RdsOp *prev, *next; /* r's inflight FIFO */
    Rds *r;             /* owner */
    RdsReplyCb cb;      /* called exactly once, then the op is freed */
    void *arg;          /* opaque for cb */
    int64_t deadline;   /* util_now_ms() after which the link is reset */
    RdsScript *script;  /* rds_eval only: for the NOSCRIPT fallback */
    int argc;           /* rds_eval only: argv for a re-send as EVAL */
    const char **argv;  /* [0] verb, [1] sha or source, [2] nkeys, then keys+args in blob */
    size_t *argvlen;
    char *blob;     /* owned copy of keys+args */
    char nkeys[16]; /* decimal nkeys, argv[2] points here */
    bool retried;   /* already re-sent as EVAL */
};

struct RdsScript {
    RdsScript *next; /* r's script list */
    char *src;       /* owned Lua source */
    size_t len;      /* strlen(src) */
    char sha[41];    /* lowercase hex SHA1 of src */
};

typedef struct RdsSub RdsSub;
struct RdsSub {
    RdsSub *next;    /* r's subscription list */
    Rds *r;          /* owner */
    char *channel;   /* owned copy */
    RdsMessageCb cb; /* messages and (re)subscribe events */
    void *arg;       /* opaque for cb */
};

struct Rds {
    struct event_base *base;
    char *host; /* owned IP string */
    int port;
    char *user;                        /* ACL user for AUTH; NULL = the default user */
    char *password_file;               /* NULL = no AUTH */
    char password[RDS_SECRET_MAX + 1]; /* last good read of password_file; never logged */
    size_t password_len;
    bool password_file_warned; /* a re-read failed (logged once; the last good one is used) */
    bool auth_warned;          /* a refused AUTH was logged since a link was last up */
    int op_timeout_ms;         /* op deadline */
    int max_inflight;          /* cap on ninflight */
    RdsLink cmd;               /* command link */
    RdsLink sub;               /* pub/sub link, started by the first rds_subscribe */
    bool sub_started;          /* sub link has been started */
    RdsOp *head, *tail;        /* inflight FIFO */
    size_t ninflight;          /* entries in the FIFO */
    struct event *op_timer;    /* fires at the head's deadline */
    const char *drop_reason;   /* err for NULL replies while we free a link on purpose */
    RdsScript *scripts;
    RdsSub *subs;
    bool closing; /* rds_free in progress */
    int cb_depth; /* > 0 while a user callback runs */
    uint32_t rng; /* xorshift state for backoff jitter */
};

static void link_connect(RdsLink *l);

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

/* ---- links ------------------------------------------------------------------------------- */

/* The link is gone (ac already forgotten): log and schedule a reconnect. The first failure
 * after the link was up is logged, a refused AUTH once for both links until one gets in;
 * the rest only counted. */
static void link_down_why(RdsLink *l, const char *why, bool auth_refused)
{
    Rds *r = l->r;

    l->ac = NULL;
    l->failing = false;
    event_del(l->timer);
    if (r->closing) {
        l->state = RDS_CLOSING;
        return;
    }
    l->state = RDS_DOWN;
    bool first = l->failures++ == 0;
    bool loud = auth_refused ? !r->auth_warned : first; /* one line for both links */
    r->auth_warned = r->auth_warned || auth_refused;
    if (loud)
        log_warn("%s %s:%d down: %s (reconnecting; further failures are counted)", l->name, r->host,
                 r->port, why);
    else
        log_debug("%s %s:%d: %s (failure %u)", l->name, r->host, r->port, why, l->failures);
    util_timer_ms(l->timer, util_backoff_next(&l->backoff_ms, RDS_BACKOFF_MAX_MS, &r->rng));
}

static void link_down(RdsLink *l, const char *why)
{
    link_down_why(l, why, false);
}

/*
 * Drops a live or connecting link on purpose. hiredis calls every pending callback with NULL
 * from inside redisAsyncFree (err = reason); our disconnect callback ignores it (data NULL).
 * Must not run inside a hiredis callback (the free would be deferred).
 */
static void link_drop(RdsLink *l, const char *reason)
{
    Rds *r = l->r;
    redisAsyncContext *ac = l->ac;

    ASSERT(r->cb_depth == 0);
    if (!ac)
        return;
    l->ac = NULL;
    l->state = r->closing ? RDS_CLOSING : RDS_DOWN; /* refuse re-entrant ops */
    ac->data = NULL;
    r->drop_reason = reason;
    redisAsyncFree(ac);
    r->drop_reason = NULL;
    link_down(l, reason);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata);

static void link_subscribe_one(RdsLink *l, RdsSub *s)
{
    const char *argv[2] = {"SUBSCRIBE", s->channel};
    size_t lens[2] = {9, strlen(s->channel)};
    if (redisAsyncCommandArgv(l->ac, sub_cb, s, 2, argv, lens) != REDIS_OK)
        log_warn("redis pubsub: cannot send SUBSCRIBE %s: %s", s->channel,
                 l->ac->errstr ? l->ac->errstr : "unknown error");
}

/* The link works (connected, and authenticated when we have a password). */
static void link_up(RdsLink *l)
{
    event_del(l->timer);
    l->state = RDS_UP;
    l->backoff_ms = RDS_BACKOFF_MIN_MS;
    if (l->failures > 0)
        log_info("%s %s:%d up again after %u failure(s)", l->name, l->r->host, l->r->port,
                 l->failures);
    else
        log_debug("%s %s:%d connected", l->name, l->r->host, l->r->port);
    l->failures = 0;
    l->r->auth_warned = false;
    if (l->is_sub)
        for (RdsSub *s = l->r->subs; s; s = s->next)
            link_subscribe_one(l, s);
}

static void connect_cb(const redisAsyncContext *cac, int status)
{
    RdsLink *l = cac->data;
    char why[RDS_ERR_LEN];

    if (!l)
        return; /* freed on purpose */
    if (status != REDIS_OK) {
        snprintf(why, sizeof(why), "connect failed: %s", cac->errstr ? cac->errstr : "?");
        link_down(l, why); /* hiredis frees the context after we return */
        return;
    }
    if (!l->r->password_file)
        link_up(l);
    /* else: AUTH is on its way; auth_cb decides (the connect deadline still runs) */
}

/* The answer to the AUTH sent first on this context. */
static void auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    RdsLink *l = privdata;
    redisReply *rep = reply;
    char why[RDS_ERR_LEN];

    if (ac->data != l || !rep)
        return; /* the link went down meanwhile: the disconnect path handled it */
    if (rep->type != REDIS_REPLY_ERROR) {
        link_up(l);
        return;
    }
    Rds *r = l->r;
    int n = (int)(rep->len > 120 ? 120 : rep->len);
    while (n > 0 && (rep->str[n - 1] == '.' || rep->str[n - 1] == ' '))
        n--;
    snprintf(why, sizeof(why),
             "Redis refused our credentials (user '%s', password from %s): %.*s; check "
             "redis_user and redis_password_file against the Redis ACL",
             r->user ? r->user : "default", r->password_file, n, rep->str);
    l->ac = NULL;
    ac->data = NULL;    /* our disconnect callback ignores it */
    redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
    link_down_why(l, why, true);
}

static void disconnect_cb(const redisAsyncContext *cac, int status)
{
    RdsLink *l = cac->data;
    char why[RDS_ERR_LEN];

    if (!l)
        return; /* freed on purpose */
    snprintf(why, sizeof(why), "%s",
             status == REDIS_OK ? "connection closed"
                                : (cac->errstr ? cac->errstr : "connection lost"));
    link_down(l, why); /* hiredis frees the context after we return */
}

static void link_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    RdsLink *l = arg;
    (void)fd;
    (void)what;

    if (l->state == RDS_DOWN)
        link_connect(l);
    else if (l->state == RDS_CONNECTING)
        link_drop(l, "connect timed out"); /* no hiredis callback fires for an unconnected ac */
}

/*
 * Reads the password (its first line, without the line end) from r->password_file into
 * r->password. A file others may read is refused. A small local file: read on the loop, at
 * start and on every (re)connect, so a rotated password is picked up without a restart.
 */
static bool password_load(Rds *r, char *err, size_t errlen)
{
    char buf[RDS_SECRET_MAX + 2];
    struct stat sb;
    int fd = open(r->password_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open redis_password_file %s: %s", r->password_file,
                 strerror(errno));
        return false;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & S_IRWXO)) {
        snprintf(err, errlen,
                 "redis_password_file %s must be a regular file that others cannot read "
                 "(chmod 600 it)",
                 r->password_file);
        close(fd);
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read redis_password_file %s: %s", r->password_file,
                 strerror(errno));
        return false;
    }
    size_t len = 0;
    while (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    bool ok = len > 0 && len <= RDS_SECRET_MAX && memchr(buf, '\0', len) == NULL;
    if (ok) {
        memcpy(r->password, buf, len);
        r->password[len] = '\0';
        r->password_len = len;
    } else {
        snprintf(err, errlen, "redis_password_file %s must hold one line of 1 to %d bytes",
                 r->password_file, RDS_SECRET_MAX);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return ok;
}

/* Queues AUTH [user] password as the new context's first command. */
static bool link_send_auth(RdsLink *l, redisAsyncContext *ac)
{
    Rds *r = l->r;
    char err[RDS_ERR_LEN];
    if (!password_load(r, err, sizeof(err))) {
        if (!r->password_file_warned)
            log_warn("%s; using the password read before", err);
        r->password_file_warned = true;
    } else if (r->password_file_warned) {
        log_info("redis_password_file %s readable again", r->password_file);
        r->password_file_warned = false;
    }
    const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
    size_t lens[3] = {4, r->user ? strlen(r->user) : r->password_len, r->password_len};
    return redisAsyncCommandArgv(ac, auth_cb, l, r->user ? 3 : 2, argv, lens) == REDIS_OK;
}

static void link_connect(RdsLink *l)
{
    Rds *r = l->r;
    char why[RDS_ERR_LEN];
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

    ASSERT(l->state == RDS_DOWN && !l->ac);
    if (!ac) {
        link_down(l, "cannot allocate a hiredis context");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof(why), "connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        link_down(l, why);
        return;
    }
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        link_down(l, "cannot attach to the event loop");
        return;
    }
    (void)redisEnableKeepAlive(&ac->c); /* notice a dead peer on the idle pub/sub link */
    ac->data = l;
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (r->password_file && !link_send_auth(l, ac)) {
        ac->data = NULL;
        redisAsyncFree(ac);
        link_down(l, "cannot queue AUTH");
        return;
    }
    l->ac = ac;
    l->state = RDS_CONNECTING;
    int limit = r->op_timeout_ms > RDS_CONNECT_TIMEOUT_MIN_MS ? r->op_timeout_ms
                                                              : RDS_CONNECT_TIMEOUT_MIN_MS;
    util_timer_ms(l->timer, limit);
}

static void link_init(Rds *r, RdsLink *l, const char *name, bool is_sub)
{
    l->r = r;
    l->name = name;
    l->is_sub = is_sub;
    l->state = RDS_DOWN;
    l->backoff_ms = RDS_BACKOFF_MIN_MS;
    l->timer = evtimer_new(r->base, link_timer_cb, l);
    ASSERT(l->timer);
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
        link_drop(&r->cmd, "operation timed out (link reset)");
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
    if (r->password_file && !password_load(r, err, sizeof(err))) {
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
    link_init(r, &r->cmd, "redis", false);
    link_init(r, &r->sub, "redis pubsub", true);
    link_connect(&r->cmd);
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

static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    RdsSub *s = privdata;
    Rds *r = s->r;
    redisReply *rep = reply;
    (void)ac;

    if (!rep || r->closing)
        return; /* link going down: resubscribed after reconnect */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    r->cb_depth++;
    if (strcmp(kind, "subscribe") == 0)
        s->cb(s->channel, NULL, 0, s->arg);
    else if (strcmp(kind, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING)
        s->cb(s->channel, rep->element[2]->str, rep->element[2]->len, s->arg);
    r->cb_depth--;
}

bool rds_subscribe(Rds *r, const char *channel, RdsMessageCb cb, void *arg)
{
    ASSERT(r && channel && cb);
    if (r->closing)
        return false;
    RdsSub *s = xcalloc(1, sizeof(*s));
    s->r = r;
    s->channel = xstrdup(channel);
    s->cb = cb;
    s->arg = arg;
    RdsSub **tail = &r->subs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
    if (!r->sub_started) {
        r->sub_started = true;
        link_connect(&r->sub);
    } else if (r->sub.state == RDS_UP && !r->sub.failing) {
        link_subscribe_one(&r->sub, s);
    }
    return true;
}

void rds_free(Rds *r)
{
    if (!r)
        return;
    ASSERT(r->cb_depth == 0); /* not allowed from inside an rds callback */
    r->closing = true;
    link_drop(&r->cmd, "shutting down");
    link_drop(&r->sub, "shutting down");
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
