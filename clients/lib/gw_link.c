/*
 * gw_link: a bufferevent client of dispatchd with the state machine DOWN -> CONNECTING ->
 * HELLO -> UP. One timer serves the connect, Hello and request deadlines; another the
 * reconnect backoff; a third the heartbeat (Ping when idle, and a silent daemon counts as a
 * failure). Failure handling never reconnects inside a callback: it schedules the backoff.
 */
#include "gw_link.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

#define LINK_MAX_FRAME          (4u * 1024 * 1024)
#define LINK_CONNECT_TIMEOUT_MS 3000
#define LINK_HELLO_TIMEOUT_MS   5000
#define LINK_BACKOFF_MIN_MS     100

typedef enum {
    LINK_DOWN,       /* no socket; the backoff timer is armed */
    LINK_CONNECTING, /* TCP connect in progress */
    LINK_HELLO,      /* Hello sent, waiting for HelloOk */
    LINK_UP,         /* authenticated; requests allowed */
} LinkState;

struct GwLink {
    struct event_base *base;
    char host[64];
    int port;
    char *token;
    TlsClient *tls; /* borrowed; NULL = plaintext */
    int backoff_max_ms;
    GwLinkUpCb up_cb;
    void *arg;
    LinkState state;
    struct bufferevent *bev; /* NULL iff state == LINK_DOWN */
    struct event *deadline;  /* connect / hello / request deadline */
    struct event *retry;     /* backoff before the next connect */
    struct event *heartbeat; /* EV_PERSIST while up */
    int backoff_ms;          /* next backoff; reset once up */
    uint64_t next_seq;       /* seqs for our requests and pings */
    uint64_t inflight_seq;   /* 0 = no request in flight */
    GwLinkReplyCb cb;        /* set iff inflight_seq != 0 */
    void *cb_arg;
    int64_t last_read_ms;     /* monotonic time of the last frame received */
    int hb_ms;                /* heartbeat interval from HelloOk */
    uint64_t failures;        /* total */
    uint64_t failures_logged; /* failures since the last up, for the recovery line */
};

static void link_connect(GwLink *l);

static void arm(struct event *ev, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(ev, &tv);
}

static void link_fail(GwLink *l, const char *why)
{
    if (l->bev) {
        bufferevent_free(l->bev);
        l->bev = NULL;
    }
    bool was_up = l->state == LINK_UP;
    l->state = LINK_DOWN;
    event_del(l->deadline);
    event_del(l->heartbeat);
    l->failures++;
    if (l->failures_logged++ == 0 || was_up)
        log_warn("daemon link %s:%d: %s; reconnecting with backoff", l->host, l->port, why);
    else
        log_debug("daemon link %s:%d: %s (failure %llu in a row)", l->host, l->port, why,
                  (unsigned long long)l->failures_logged);
    int jitter = l->backoff_ms / 4 ? rand() % (l->backoff_ms / 4 + 1) : 0;
    arm(l->retry, l->backoff_ms + jitter);
    l->backoff_ms *= 2;
    if (l->backoff_ms > l->backoff_max_ms)
        l->backoff_ms = l->backoff_max_ms;
    if (l->inflight_seq) {
        GwLinkReplyCb cb = l->cb;
        void *arg = l->cb_arg;
        l->inflight_seq = 0;
        l->cb = NULL;
        cb(NULL, why, arg);
    }
}

static void send_env(GwLink *l, Envelope *env)
{
    env->seq = l->next_seq++;
    frame_append(bufferevent_get_output(l->bev), env);
}

static void on_hello_ok(GwLink *l, const Careline__V1__HelloOk *ok)
{
    if (ok->role != CARELINE__V1__ROLE__ROLE_GATEWAY) {
        link_fail(l, "the token is not a gateway token");
        return;
    }
    event_del(l->deadline);
    l->state = LINK_UP;
    l->backoff_ms = LINK_BACKOFF_MIN_MS;
    if (l->failures_logged > 1)
        log_info("daemon link %s:%d up again (server %s) after %llu failed attempts", l->host,
                 l->port, ok->server_id, (unsigned long long)l->failures_logged - 1);
    else
        log_info("daemon link %s:%d up (server %s, principal %s)", l->host, l->port, ok->server_id,
                 ok->principal_name);
    l->failures_logged = 0;
    l->hb_ms = ok->heartbeat_interval_ms ? (int)ok->heartbeat_interval_ms : 10000;
    if (l->hb_ms > 30000)
        l->hb_ms = 30000;
    if (l->hb_ms < 200)
        l->hb_ms = 200;
    arm(l->heartbeat, l->hb_ms);
    if (l->up_cb)
        l->up_cb(l->arg);
}

/* Returns false when the link was failed (l->bev is gone). */
static bool on_frame(GwLink *l, Envelope *env)
{
    if (l->state == LINK_HELLO) {
        if (env->body_case == CARELINE__V1__ENVELOPE__BODY_HELLO_OK) {
            on_hello_ok(l, env->hello_ok);
            return l->bev != NULL;
        }
        char why[300];
        snprintf(why, sizeof(why), "Hello refused: %s",
                 env->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR ? env->error->message
                                                                      : frame_body_name(env));
        link_fail(l, why);
        return false;
    }
    if (l->inflight_seq && env->seq == l->inflight_seq) {
        GwLinkReplyCb cb = l->cb;
        void *arg = l->cb_arg;
        l->inflight_seq = 0;
        l->cb = NULL;
        event_del(l->deadline);
        cb(env, NULL, arg);
        return l->bev != NULL;
    }
    if (env->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR && env->error->fatal) {
        char why[300];
        snprintf(why, sizeof(why), "daemon closed the session: %s", env->error->message);
        link_fail(l, why);
        return false;
    }
    if (env->body_case == CARELINE__V1__ENVELOPE__BODY_PING) {
        Careline__V1__Pong p = CARELINE__V1__PONG__INIT;
        p.nonce = env->ping->nonce;
        Envelope r = CARELINE__V1__ENVELOPE__INIT;
        r.body_case = CARELINE__V1__ENVELOPE__BODY_PONG;
        r.pong = &p;
        r.seq = env->seq;
        frame_append(bufferevent_get_output(l->bev), &r);
    }
    return true; /* Pongs and anything else unsolicited are ignored */
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    GwLink *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        Envelope *env;
        size_t need;
        uint32_t len = 0;
        FrameStatus st = frame_next(in, LINK_MAX_FRAME, &env, &need, &len);
        if (st == FRAME_NEED_MORE)
            return;
        if (st != FRAME_OK) {
            char why[96];
            snprintf(why, sizeof(why), "bad frame from the daemon (length %u)", len);
            link_fail(l, why);
            return;
        }
        l->last_read_ms = util_now_ms();
        bool alive = on_frame(l, env);
        frame_free(env);
        if (!alive)
            return;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    GwLink *l = arg;
    if (what & BEV_EVENT_CONNECTED) {
        l->state = LINK_HELLO;
        event_del(l->deadline);
        arm(l->deadline, LINK_HELLO_TIMEOUT_MS);
        l->last_read_ms = util_now_ms();
        Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
        h.protocol_version = 1;
        h.token = l->token;
        h.client_name = (char *)"hotline-gw/1.0";
        Envelope env = CARELINE__V1__ENVELOPE__INIT;
        env.body_case = CARELINE__V1__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        send_env(l, &env);
        return;
    }
    char why[300];
    int e = EVUTIL_SOCKET_ERROR();
    if (l->tls && l->state == LINK_CONNECTING)
        tlsc_explain(l->tls, bufferevent_openssl_get_ssl(bev), l->host, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s",
                 (what & BEV_EVENT_EOF) ? "connection closed by the daemon"
                 : e                    ? evutil_socket_error_to_string(e)
                                        : "connection error");
    link_fail(l, why);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    GwLink *l = arg;
    link_fail(l, l->state == LINK_CONNECTING ? "connect timed out"
                 : l->state == LINK_HELLO    ? "no answer to Hello"
                                             : "no reply before the request deadline");
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_connect(arg);
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    GwLink *l = arg;
    if (l->state != LINK_UP)
        return;
    if (util_now_ms() - l->last_read_ms > 3LL * l->hb_ms + 1000) {
        link_fail(l, "the daemon went silent");
        return;
    }
    if (!l->inflight_seq) {
        Careline__V1__Ping p = CARELINE__V1__PING__INIT;
        p.nonce = l->next_seq;
        Envelope env = CARELINE__V1__ENVELOPE__INIT;
        env.body_case = CARELINE__V1__ENVELOPE__BODY_PING;
        env.ping = &p;
        send_env(l, &env);
    }
}

static void link_connect(GwLink *l)
{
    ASSERT(l->state == LINK_DOWN && !l->bev);
    char addr[96];
    snprintf(addr, sizeof(addr), strchr(l->host, ':') ? "[%s]:%d" : "%s:%d", l->host, l->port);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) != 0) {
        link_fail(l, "daemon_host is not a numeric address");
        return;
    }
    if (l->tls) {
        char err[200];
        SSL *ssl = tlsc_ssl(l->tls, l->host, err, sizeof(err));
        if (!ssl) {
            link_fail(l, err);
            return;
        }
        /* CONNECTED comes once the handshake is done */
        l->bev = bufferevent_openssl_socket_new(l->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (l->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(l->bev, 1);
    } else {
        l->bev = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    ASSERT(l->bev);
    bufferevent_setcb(l->bev, read_cb, NULL, event_cb, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    l->state = LINK_CONNECTING;
    arm(l->deadline, LINK_CONNECT_TIMEOUT_MS);
    if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&ss, sl) != 0) {
        /* the bufferevent may already have reported through event_cb */
        if (l->bev)
            link_fail(l, "connect failed");
    }
}

GwLink *gw_link_new(struct event_base *base, const char *host, int port, TlsClient *tls,
                    const char *token, int backoff_max_ms, GwLinkUpCb up_cb, void *arg)
{
    GwLink *l = xcalloc(1, sizeof(*l));
    l->base = base;
    l->tls = tls;
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->token = xstrdup(token);
    l->backoff_max_ms = backoff_max_ms < LINK_BACKOFF_MIN_MS ? LINK_BACKOFF_MIN_MS : backoff_max_ms;
    l->backoff_ms = LINK_BACKOFF_MIN_MS;
    l->up_cb = up_cb;
    l->arg = arg;
    l->next_seq = 1;
    l->deadline = evtimer_new(base, deadline_cb, l);
    l->retry = evtimer_new(base, retry_cb, l);
    l->heartbeat = event_new(base, -1, EV_PERSIST, heartbeat_cb, l);
    ASSERT(l->deadline && l->retry && l->heartbeat);
    return l;
}

void gw_link_start(GwLink *l)
{
    if (l->state == LINK_DOWN && !evtimer_pending(l->retry, NULL))
        link_connect(l);
}

void gw_link_free(GwLink *l)
{
    if (!l)
        return;
    if (l->bev)
        bufferevent_free(l->bev);
    event_free(l->deadline);
    event_free(l->retry);
    event_free(l->heartbeat);
    if (l->token) {
        memset(l->token, 0, strlen(l->token));
        free(l->token);
    }
    free(l);
}

bool gw_link_up(const GwLink *l)
{
    return l->state == LINK_UP;
}

bool gw_link_idle(const GwLink *l)
{
    return l->state == LINK_UP && !l->inflight_seq;
}

bool gw_link_call(GwLink *l, Envelope *env, int timeout_ms, GwLinkReplyCb cb, void *arg)
{
    if (!gw_link_idle(l))
        return false;
    send_env(l, env);
    l->inflight_seq = env->seq;
    l->cb = cb;
    l->cb_arg = arg;
    arm(l->deadline, timeout_ms);
    return true;
}

uint64_t gw_link_failures(const GwLink *l)
{
    return l->failures;
}
