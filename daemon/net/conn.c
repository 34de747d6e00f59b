/*
 * conn: a bufferevent per connection. The read path validates each length prefix before
 * buffering a payload, yields after frames_per_wakeup frames, and pauses while the peer has
 * too many requests in flight or is not reading its replies (libevent's le-proxy pattern,
 * with redis' soft/hard output limits). Closing never calls up into the owner from the
 * caller's stack: conn_close_now frees the socket and unlinks the conn at once, but the
 * owner's on_closed (which lets sessions drop their last references) and the free run from
 * the reaper at the next turn of the loop. So a caller that sent a frame — and by that hit
 * the output limit — still holds valid session and conn pointers until it returns.
 * With TLS the bufferevent is libevent's OpenSSL one: the handshake runs inside it, its
 * end (BEV_EVENT_CONNECTED or an error) arrives in event_cb, and the janitor's hello
 * timeout bounds it.
 */
#include "net/conn.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wirecheck.h"
#include "base/metrics.h"

#define CLOSING_GRACE_MS 5000 /* a peer gets this long to read its last frames */

static const char *const state_names[] = {"open", "draining", "closing", "closed"};

void conn_set_state(Conn *c, ConnState st)
{
    if (c->state == st)
        return;
    clog_debug(c, "state %s -> %s", state_names[c->state], state_names[st]);
    c->state = st;
}

bool conn_alive(const Conn *c)
{
    return c->state == CONN_OPEN || c->state == CONN_DRAINING;
}

static void resume_reading(Conn *c)
{
    const Config *cfg = c->set->cfg;
    if (c->state != CONN_OPEN || c->hello_pending || c->read_paused_obuf ||
        c->inflight >= (unsigned)cfg->max_inflight_per_conn)
        return;
    bufferevent_enable(c->bev, EV_READ);
    /* frames may already sit in the input buffer: look at them without waiting for bytes */
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void maybe_finish(Conn *c)
{
    if (c->state == CONN_DRAINING && c->inflight == 0) {
        if (c->set->stopping)
            conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__SHUTTING_DOWN, true,
                            "the daemon is shutting down; reconnect shortly");
        else
            conn_close_after_flush(c, "peer finished");
        return;
    }
    if (c->state == CONN_CLOSING && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        conn_close_now(c, "output flushed");
}

static void fatal_frame(Conn *c, FrameStatus st, uint32_t len)
{
    uint32_t max = (uint32_t)c->set->cfg->max_frame_bytes;
    switch (st) {
    case FRAME_EMPTY:
        conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__FRAME_EMPTY, true,
                        "frame length 0 is not allowed; every frame carries one Envelope");
        break;
    case FRAME_TOO_LARGE:
        conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__FRAME_TOO_LARGE, true,
                        "frame of %u bytes exceeds the %u-byte limit", len, max);
        break;
    default:
        conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__BAD_ENVELOPE, true,
                        "frame of %u bytes is not a valid careline.v1.Envelope", len);
        break;
    }
}

static bool reading_allowed(const Conn *c)
{
    return c->state == CONN_OPEN && !c->hello_pending && !c->read_paused_obuf &&
           c->inflight < (unsigned)c->set->cfg->max_inflight_per_conn;
}

/* The peer half-closed and every complete frame has been taken. */
static void end_of_input(Conn *c, size_t left)
{
    if (left > 0)
        conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__FRAME_TRUNCATED, true,
                        "connection ended inside a frame (%zu bytes of it received)", left);
    else
        conn_drain(c); /* finish what it asked for, then close */
}

static void process_input(Conn *c)
{
    const Config *cfg = c->set->cfg;
    int budget = cfg->frames_per_wakeup;
    conn_ref(c);
    while (c->state == CONN_OPEN) {
        if (!reading_allowed(c)) {
            bufferevent_disable(c->bev, EV_READ);
            break;
        }
        struct evbuffer *in = bufferevent_get_input(c->bev);
        if (budget-- == 0) {
            bufferevent_trigger(c->bev, EV_READ,
                                BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
            break;
        }
        WireFault bad; /* a string the unpacker would cut at a NUL, or not UTF-8: answered here */
        if (wirecheck_frame(in, (uint32_t)cfg->max_frame_bytes, &bad)) {
            c->set->metrics->frames_in++;
            conn_send_field_error(c, bad.seq, CARELINE__V1__ERROR_CODE__INVALID_ARGUMENT,
                                  bad.body_field, "%s", bad.message);
            continue;
        }
        Envelope *env;
        size_t need = 0;
        uint32_t len = 0;
        FrameStatus st = frame_next(in, (uint32_t)cfg->max_frame_bytes, &env, &need, &len);
        if (st == FRAME_NEED_MORE) {
            if (c->eof)
                end_of_input(c, evbuffer_get_length(in));
            else
                bufferevent_setwatermark(c->bev, EV_READ, need,
                                         FRAME_HEADER + (size_t)cfg->max_frame_bytes);
            break;
        }
        if (st != FRAME_OK) {
            fatal_frame(c, st, len);
            break;
        }
        c->set->metrics->frames_in++;
        c->set->metrics->bytes_in += FRAME_HEADER + len;
        c->last_active_ms = util_now_ms();
        c->set->on_frame(c->set->owner, c, env);
    }
    conn_unref(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    Conn *c = arg;
    size_t out = evbuffer_get_length(bufferevent_get_output(bev));
    if (c->read_paused_obuf && out <= (size_t)c->set->cfg->obuf_soft_bytes / 2) {
        c->read_paused_obuf = false;
        c->obuf_soft_since_ms = 0;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        resume_reading(c);
    }
    maybe_finish(c);
}

/* The TLS handshake ended: CONNECTED, or it failed (counted, logged at a bounded rate). */
static void handshake_end(Conn *c, struct bufferevent *bev, short events)
{
    c->handshaking = false;
    if (events & BEV_EVENT_CONNECTED) {
        c->peer_cert_ok = tls_peer_cert_verified(bufferevent_openssl_get_ssl(bev));
        tls_handshake_done(c->set->tls);
        clog_debug(c, "TLS handshake done (%s, client certificate %s)",
                   SSL_get_version(bufferevent_openssl_get_ssl(bev)),
                   c->peer_cert_ok ? "verified" : "none");
        return;
    }
    tls_handshake_failed(c->set->tls, c->peer, tls_bev_error(bev));
    conn_close_now(c, "TLS handshake failed");
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    Conn *c = arg;
    if (c->handshaking) {
        handshake_end(c, bev, events);
        return;
    }
    if (events & BEV_EVENT_EOF) {
        c->eof = true;
        /* complete frames still buffered are served; end_of_input() decides the rest */
        if (c->state == CONN_OPEN)
            process_input(c);
        return;
    }
    if (events & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_close_now(c, (events & BEV_EVENT_ERROR) ? "socket error" : "socket timeout");
}

Conn *conn_new(ConnSet *set, int fd, const struct sockaddr *sa, int salen)
{
    (void)salen;
    Conn *c = xcalloc(1, sizeof(*c));
    c->id = ++set->next_id;
    c->set = set;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
        port = ntohs(in4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    if (set->tls) {
        SSL *ssl = tls_ssl_new(set->tls, TLS_PORT_PROTO);
        /* on failure libevent frees ssl (BEV_OPT_CLOSE_ON_FREE); only memory can be short */
        c->bev = ssl ? bufferevent_openssl_socket_new(set->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1); /* EOF without close_notify */
        c->handshaking = true;
    } else {
        c->bev = bufferevent_socket_new(set->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) {
        log_error("cannot make a bufferevent for %s", c->peer);
        free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, FRAME_HEADER,
                             FRAME_HEADER + (size_t)set->cfg->max_frame_bytes);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->refs = 1; /* the open connection's own ref, dropped by conn_close_now */
    c->created_ms = c->last_active_ms = util_now_ms();
    c->next = set->conns;
    if (set->conns)
        set->conns->prev = c;
    set->conns = c;
    set->n++;
    c->set->metrics->conns_accepted++;
    c->set->metrics->conns_current++;
    clog_debug(c, "connected");
    return c;
}

static void check_obuf(Conn *c)
{
    const Config *cfg = c->set->cfg;
    size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
    if (out >= (size_t)cfg->obuf_hard_bytes) {
        c->set->metrics->obuf_closes++;
        log_limited(LOG_WARN, "C-%llu %s: closing: %zu bytes of output not read (hard limit %d)",
                    (unsigned long long)c->id, c->peer, out, cfg->obuf_hard_bytes);
        conn_close_now(c, "output buffer hard limit");
        return;
    }
    if (out >= (size_t)cfg->obuf_soft_bytes && !c->read_paused_obuf) {
        c->read_paused_obuf = true;
        c->obuf_soft_since_ms = util_now_ms();
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setwatermark(c->bev, EV_WRITE, (size_t)cfg->obuf_soft_bytes / 2, 0);
        clog_debug(c, "output %zu >= soft limit: reading paused", out);
    }
}

void conn_send(Conn *c, const Envelope *env)
{
    if (!conn_alive(c))
        return;
    size_t n = frame_append(bufferevent_get_output(c->bev), env);
    c->set->metrics->frames_out++;
    c->set->metrics->bytes_out += n;
    check_obuf(c);
}

static void send_error(Conn *c, uint64_t seq, int code, bool fatal, const char *field,
                       const char *fmt, va_list ap) PRINTF_LIKE(6, 0);
static void send_error(Conn *c, uint64_t seq, int code, bool fatal, const char *field,
                       const char *fmt, va_list ap)
{
    char msg[512];
    util_vformat_utf8(msg, sizeof(msg), fmt, ap); /* may quote a client: never raw bytes */
    if (code >= 0 && code < METRICS_ERROR_CODES)
        c->set->metrics->errors[code]++;
    if (!conn_alive(c))
        return;
    Careline__V1__Error err = CARELINE__V1__ERROR__INIT;
    err.code = (Careline__V1__ErrorCode)code;
    err.message = msg;
    err.fatal = fatal;
    err.field = (char *)(field ? field : "");
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_ERROR;
    env.error = &err;
    if (fatal) /* a hostile peer can cause these at will: rate-limited */
        log_limited(LOG_INFO, "C-%llu %s: error %s (closing): %s", (unsigned long long)c->id,
                    c->peer, metrics_error_name(code), msg);
    else
        clog_debug(c, "error %s: %s", metrics_error_name(code), msg);
    conn_send(c, &env);
    if (fatal && conn_alive(c))
        conn_close_after_flush(c, msg);
}

void conn_send_error(Conn *c, uint64_t seq, int code, bool fatal, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error(c, seq, code, fatal, NULL, fmt, ap);
    va_end(ap);
}

void conn_send_field_error(Conn *c, uint64_t seq, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error(c, seq, code, false, field, fmt, ap);
    va_end(ap);
}

void conn_drain(Conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    bufferevent_disable(c->bev, EV_READ);
    conn_set_state(c, CONN_DRAINING);
    maybe_finish(c);
}

void conn_close_after_flush(Conn *c, const char *why)
{
    if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return;
    clog_debug(c, "closing after flush: %s", why);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    conn_set_state(c, CONN_CLOSING);
    c->closing_deadline_ms = util_now_ms() + CLOSING_GRACE_MS;
    maybe_finish(c);
}

void conn_close_now(Conn *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    clog_debug(c, "closed: %s", why);
    bufferevent_free(c->bev);
    c->bev = NULL;
    conn_set_state(c, CONN_CLOSED);
    ConnSet *set = c->set;
    if (c->prev)
        c->prev->next = c->next;
    else
        set->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    set->n--;
    set->metrics->conns_current--;
    /* the owner hears of it from the reaper, never from inside the caller's stack */
    c->next = set->closed;
    set->closed = c;
    event_active(set->reaper, EV_TIMEOUT, 0);
}

void conn_inflight_begin(Conn *c)
{
    c->inflight++;
}

void conn_inflight_end(Conn *c)
{
    ASSERT(c->inflight > 0);
    c->inflight--;
    if (c->state == CONN_OPEN)
        resume_reading(c);
    else
        maybe_finish(c);
}

const char *conn_role_refused(Conn *c, Role role)
{
    if (role != CARELINE__V1__ROLE__ROLE_STATION || c->peer_cert_ok ||
        strcmp(c->set->cfg->tls_client_certs, "required") != 0)
        return NULL;
    c->set->metrics->tls_cert_refused++;
    return "a station console must present a client certificate signed by the county's CA "
           "(tls_client_certs = required); give station-console --cert FILE --key FILE";
}

void conn_ref(Conn *c)
{
    c->refs++;
}

void conn_unref(Conn *c)
{
    ASSERT(c->refs > 0);
    if (--c->refs > 0)
        return;
    ASSERT(c->state == CONN_CLOSED);
    ConnSet *set = c->set;
    c->next = set->dead;
    set->dead = c;
    event_active(set->reaper, EV_TIMEOUT, 0);
}

static void conn_tick(Conn *c, int64_t now)
{
    const Config *cfg = c->set->cfg;
    if (c->state == CONN_CLOSING) {
        if (now > c->closing_deadline_ms)
            conn_close_now(c, "peer did not read its last frames in time");
        return;
    }
    if (c->state == CONN_CLOSED)
        return;
    if (c->obuf_soft_since_ms && now - c->obuf_soft_since_ms > cfg->obuf_soft_seconds * 1000LL) {
        c->set->metrics->obuf_closes++;
        log_limited(LOG_WARN, "C-%llu %s: closing: output over the soft limit for %d s",
                    (unsigned long long)c->id, c->peer, cfg->obuf_soft_seconds);
        conn_close_now(c, "output buffer soft limit held too long");
        return;
    }
    if (c->handshaking && now - c->created_ms > cfg->hello_timeout_ms) {
        /* nothing can be sent before the handshake: just close */
        c->set->metrics->tls_handshake_timeouts++;
        conn_close_now(c, "no TLS handshake within hello_timeout_ms");
        return;
    }
    if (c->role == CARELINE__V1__ROLE__ROLE_UNSPECIFIED && !c->hello_pending &&
        now - c->created_ms > cfg->hello_timeout_ms) {
        c->set->metrics->timeouts++;
        conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__TIMEOUT, true,
                        "no Hello within %d ms of connecting", cfg->hello_timeout_ms);
        return;
    }
    if (c->inflight == 0 && now - c->last_active_ms > cfg->idle_timeout_ms) {
        c->set->metrics->timeouts++;
        conn_send_error(c, 0, CARELINE__V1__ERROR_CODE__TIMEOUT, true,
                        "nothing received for %d ms; send Ping to keep a connection open",
                        cfg->idle_timeout_ms);
    }
}

/* ---- the set ------------------------------------------------------------------------------ */

/* A safe point (the loop, or connset_close_all): nobody up the stack holds a conn or a
 * session. Tells the owner of each closed conn, drops the open conn's own ref, frees. */
static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    ConnSet *set = arg;
    while (set->closed) {
        Conn *c = set->closed;
        set->closed = c->next;
        c->next = NULL;
        set->on_closed(set->owner, c);
        conn_unref(c); /* the open connection's own ref */
    }
    while (set->dead) {
        Conn *c = set->dead;
        set->dead = c->next;
        free(c);
    }
}

bool connset_init(ConnSet *set, struct event_base *base, const Config *cfg, Metrics *m,
                  ConnFrameCb on_frame, ConnClosedCb on_closed, void *owner)
{
    memset(set, 0, sizeof(*set));
    set->base = base;
    set->cfg = cfg;
    set->metrics = m;
    set->on_frame = on_frame;
    set->on_closed = on_closed;
    set->owner = owner;
    set->reaper = event_new(base, -1, 0, reaper_cb, set);
    return set->reaper != NULL;
}

void connset_close_all(ConnSet *set, const char *why)
{
    while (set->conns)
        conn_close_now(set->conns, why);
    reaper_cb(-1, 0, set); /* callers are safe points: tell the owner now */
}

void connset_free(ConnSet *set)
{
    if (set->reaper) {
        connset_close_all(set, "exit");
        event_free(set->reaper);
    }
    memset(set, 0, sizeof(*set));
}

void connset_drain(ConnSet *set)
{
    set->stopping = true;
    Conn *next;
    for (Conn *c = set->conns; c; c = next) {
        next = c->next; /* conn_drain may unlink c */
        conn_drain(c);
    }
}

void connset_tick(ConnSet *set, int64_t now)
{
    Conn *next;
    for (Conn *c = set->conns; c; c = next) {
        next = c->next; /* conn_tick may unlink c */
        conn_tick(c, now);
    }
}
