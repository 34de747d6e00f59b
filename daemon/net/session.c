/*
 * session: the first frame must be Hello; its token goes to the shared checker (authcache:
 * caches, lockout, its own lookup budget) without blocking the loop (reading pauses until
 * the answer, so a pipelining client's next frames are judged with the role known). After that each
 * frame is checked against the role table and routed to the handler a module installed with
 * session_route().
 */
#include "net/session.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define PROTOCOL_VERSION 1
#define BODY_CASES       96 /* above every Envelope body field number (80-89 the highest) */

typedef struct {
    SessionHandler h;
    void *arg;
} Route;

struct Sessions {
    AuthCache *auth;       /* owned: token checks (also lent to the HTTP door) */
    const Config *cfg;     /* borrowed: limits announced in HelloOk */
    const char *server_id; /* borrowed */
    Metrics *metrics;      /* borrowed */
    Route routes[BODY_CASES];
    SessionHook close_hook, auth_hook;
    void *close_arg, *auth_arg;
};

Sessions *sessions_new(PgPool *pg, const Config *cfg, const char *server_id, Metrics *m)
{
    Sessions *ss = xcalloc(1, sizeof(*ss));
    ss->auth = authcache_new(pg, cfg, m);
    ss->cfg = cfg;
    ss->server_id = server_id;
    ss->metrics = m;
    return ss;
}

void sessions_free(Sessions *ss)
{
    if (!ss)
        return;
    authcache_free(ss->auth);
    free(ss);
}

AuthCache *sessions_authcache(Sessions *ss)
{
    return ss->auth;
}

void session_route(Sessions *ss, Careline__V1__Envelope__BodyCase body, SessionHandler h, void *arg)
{
    ASSERT((unsigned)body < BODY_CASES);
    ss->routes[body] = (Route){h, arg};
}

void session_on_close(Sessions *ss, SessionHook h, void *arg)
{
    ss->close_hook = h;
    ss->close_arg = arg;
}

void session_on_auth(Sessions *ss, SessionHook h, void *arg)
{
    ss->auth_hook = h;
    ss->auth_arg = arg;
}

void session_closed(Sessions *ss, Conn *c)
{
    if (ss->close_hook && c->role != CARELINE__V1__ROLE__ROLE_UNSPECIFIED)
        ss->close_hook(ss->close_arg, c);
}

typedef struct {
    Sessions *ss;
    Conn *c;
    uint64_t seq;
} HelloOp;

static void hello_fail(Sessions *ss, Conn *c, uint64_t seq, int code, const char *msg)
{
    ss->metrics->auth_failed++;
    conn_send_error(c, seq, code, true, "%s", msg);
}

static int error_code_of(AuthVerdict v)
{
    switch (v) {
    case AUTH_DENIED:
    case AUTH_MALFORMED:
    case AUTH_LOCKED:
        return CARELINE__V1__ERROR_CODE__AUTH_FAILED;
    case AUTH_BUSY:
        return CARELINE__V1__ERROR_CODE__OVERLOADED;
    case AUTH_UNAVAILABLE:
        return CARELINE__V1__ERROR_CODE__UNAVAILABLE;
    default:
        return CARELINE__V1__ERROR_CODE__INTERNAL;
    }
}

/* AuthCb: the token's verdict, now (from the caches) or from the lookup's completion. */
static void hello_done(void *arg, const AuthAnswer *a)
{
    HelloOp *op = arg;
    Sessions *ss = op->ss;
    Conn *c = op->c;
    c->hello_pending = false;
    if (!conn_alive(c))
        goto out;
    if (a->verdict != AUTH_OK) {
        hello_fail(ss, c, op->seq, error_code_of(a->verdict), a->message);
        goto out;
    }
    const char *refused = conn_role_refused(c, a->role); /* TLS client certificate rule */
    if (refused) {
        hello_fail(ss, c, op->seq, CARELINE__V1__ERROR_CODE__AUTH_FAILED, refused);
        goto out;
    }
    c->role = a->role;
    c->station_id = a->station_id;
    c->principal_id = a->principal_id;
    snprintf(c->principal, sizeof(c->principal), "%s", a->name);
    ss->metrics->auth_ok++;
    log_limited(LOG_INFO, "C-%llu %s: authenticated as %s '%s'%s", (unsigned long long)c->id,
                c->peer, auth_role_name(a->role), c->principal,
                a->role == CARELINE__V1__ROLE__ROLE_STATION ? " (station)" : "");

    Careline__V1__HelloOk ok = CARELINE__V1__HELLO_OK__INIT;
    ok.protocol_version = PROTOCOL_VERSION;
    ok.role = a->role;
    ok.station_id = c->station_id;
    ok.server_id = (char *)ss->server_id;
    ok.heartbeat_interval_ms = (uint32_t)ss->cfg->heartbeat_interval_ms;
    ok.max_frame_bytes = (uint32_t)ss->cfg->max_frame_bytes;
    ok.principal_name = c->principal;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = op->seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_HELLO_OK;
    env.hello_ok = &ok;
    conn_send(c, &env);
    if (ss->auth_hook && conn_alive(c))
        ss->auth_hook(ss->auth_arg, c);
out:
    conn_inflight_end(c);
    conn_unref(c);
    free(op);
}

static void handle_hello(Sessions *ss, Conn *c, uint64_t seq, const Careline__V1__Hello *h)
{
    if (h->protocol_version != PROTOCOL_VERSION) {
        ss->metrics->auth_failed++;
        conn_send_error(c, seq, CARELINE__V1__ERROR_CODE__BAD_VERSION, true,
                        "protocol_version %u is not supported; this server speaks %d",
                        h->protocol_version, PROTOCOL_VERSION);
        return;
    }
    /* the peer is "ip:port": the lockout counts by address */
    char ip[sizeof(c->peer)];
    snprintf(ip, sizeof(ip), "%s", c->peer);
    char *colon = strrchr(ip, ':');
    if (colon)
        *colon = '\0';
    HelloOp *op = xcalloc(1, sizeof(*op));
    op->ss = ss;
    op->c = c;
    op->seq = seq;
    c->hello_pending = true;
    conn_inflight_begin(c);
    conn_ref(c);
    authcache_check(ss->auth, ip, h->token, hello_done, op);
}

static void handle_ping(Conn *c, uint64_t seq, const Careline__V1__Ping *p)
{
    Careline__V1__Pong pong = CARELINE__V1__PONG__INIT;
    pong.nonce = p->nonce;
    pong.server_time_ms = util_wall_ms();
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_PONG;
    env.pong = &pong;
    conn_send(c, &env);
}

void session_handle(Sessions *ss, Conn *c, Envelope *env)
{
    uint64_t seq = env->seq;
    Careline__V1__Envelope__BodyCase body = env->body_case;
    bool authed = c->role != CARELINE__V1__ROLE__ROLE_UNSPECIFIED;

    if (body == CARELINE__V1__ENVELOPE__BODY__NOT_SET) {
        /* a newer client's message parses as an unknown field: answer, keep the stream */
        conn_send_error(c, seq, CARELINE__V1__ERROR_CODE__UNSUPPORTED, !authed,
                        "empty or unknown message; this server speaks protocol %d",
                        PROTOCOL_VERSION);
    } else if (!authed && body != CARELINE__V1__ENVELOPE__BODY_HELLO) {
        conn_send_error(c, seq, CARELINE__V1__ERROR_CODE__NOT_AUTHENTICATED, true,
                        "%s before Hello; send Hello with a token first", frame_body_name(env));
    } else if (body == CARELINE__V1__ENVELOPE__BODY_HELLO) {
        if (authed)
            conn_send_error(c, seq, CARELINE__V1__ERROR_CODE__ALREADY_AUTHENTICATED, false,
                            "this connection is already authenticated as %s",
                            auth_role_name(c->role));
        else
            handle_hello(ss, c, seq, env->hello);
    } else if (!auth_allowed(c->role, body)) {
        conn_send_error(c, seq, CARELINE__V1__ERROR_CODE__FORBIDDEN, false,
                        "the %s role may not send %s", auth_role_name(c->role),
                        frame_body_name(env));
    } else if (body == CARELINE__V1__ENVELOPE__BODY_PING) {
        handle_ping(c, seq, env->ping);
    } else if (body == CARELINE__V1__ENVELOPE__BODY_PONG) {
        /* an answer to our Ping: last_active was already refreshed */
    } else if ((unsigned)body < BODY_CASES && ss->routes[body].h) {
        ss->routes[body].h(ss->routes[body].arg, c, env);
        return; /* the handler owns env */
    } else {
        conn_send_error(c, seq, CARELINE__V1__ERROR_CODE__UNSUPPORTED, false,
                        "%s is not implemented by this server yet", frame_body_name(env));
    }
    frame_free(env);
}
