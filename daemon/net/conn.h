/*
 * conn: one protocol connection — framing on a bufferevent, the output-buffer limits, the
 * per-connection in-flight cap, and a deferred free so a PostgreSQL or Redis callback that
 * outlives the socket can still find its Conn (it sees CONN_CLOSED and drops its reply).
 *
 * Lifecycle: CONN_OPEN -> CONN_DRAINING (no new frames; in-flight work finishes) ->
 * CONN_CLOSING (output flushes, then the socket closes) -> CONN_CLOSED (socket gone; the
 * struct lives until the last ref is dropped). Every transition goes through conn_set_state.
 * All functions are for the event-loop thread and may be called from any callback.
 *
 * A ConnSet owns the connections of one listener: their list, limits (from the borrowed
 * Config), counters (the borrowed Metrics) and the deferred-free reaper. conn never calls up:
 * each frame and each close goes to the callbacks the owner registered (the session layer
 * and the server).
 */
#ifndef CARELINE_CONN_H
#define CARELINE_CONN_H

#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/auth.h"
#include "base/config.h"
#include "base/metrics.h"
#include "common/frame.h"
#include "net/tls.h"

struct Conn;
/* A well-formed frame arrived; the callee takes ownership of env. */
typedef void (*ConnFrameCb)(void *owner, struct Conn *c, Envelope *env);
/* c has closed for good (socket freed, off the list). Runs from the loop at a safe point,
 * never from inside conn_close_now: nobody up the stack still holds c or its session. */
typedef void (*ConnClosedCb)(void *owner, struct Conn *c);

typedef struct ConnSet {
    struct event_base *base; /* borrowed */
    const Config *cfg;       /* borrowed: the live config (limits may change on SIGHUP) */
    Metrics *metrics;        /* borrowed */
    ConnFrameCb on_frame;
    ConnClosedCb on_closed;
    void *owner;          /* first argument of both callbacks */
    struct Conn *conns;   /* open, draining and closing connections */
    size_t n;             /* entries in conns */
    uint64_t next_id;     /* last id given */
    bool stopping;        /* a graceful stop: draining conns are told SHUTTING_DOWN */
    struct event *reaper; /* tells the owner of closes, frees CONN_CLOSED conns, refs == 0 */
    struct Conn *closed;  /* closed conns whose owner has not been told yet (via next) */
    struct Conn *dead;    /* closed conns with no refs left, waiting to be freed (via next) */
    Tls *tls;             /* borrowed, set by the owner after connset_init; NULL = plaintext */
} ConnSet;

/* Sets up an empty set; returns false if libevent cannot make the reaper event. */
bool connset_init(ConnSet *set, struct event_base *base, const Config *cfg, Metrics *m,
                  ConnFrameCb on_frame, ConnClosedCb on_closed, void *owner) MUSTCHECK;
/* Closes every connection now (why is logged), tells the owner of each close and frees what
 * the reaper holds. Only from a safe point (a loop callback of the owner's, or teardown). */
void connset_close_all(ConnSet *set, const char *why);
/* Closes all, then frees the reaper. The set may be zeroed memory (never initialised). */
void connset_free(ConnSet *set);
/* Every connection stops reading and closes once its in-flight work is answered. */
void connset_drain(ConnSet *set);
/* The janitor's tick over every connection. */
void connset_tick(ConnSet *set, int64_t now);

typedef enum {
    CONN_OPEN,     /* reading and answering frames */
    CONN_DRAINING, /* not reading; closes once inflight == 0 and output is flushed */
    CONN_CLOSING,  /* not reading; closes once output is flushed (or at its deadline) */
    CONN_CLOSED,   /* socket freed; struct kept while refs > 0 */
} ConnState;

typedef struct Conn {
    uint64_t id;             /* unique for the process lifetime, for logs */
    ConnSet *set;            /* borrowed: the owner's set, which outlives its conns */
    struct bufferevent *bev; /* NULL once CONN_CLOSED */
    char peer[64];           /* "ip:port" */
    ConnState state;
    Role role;                   /* ROLE_UNSPECIFIED until Hello succeeds */
    int64_t station_id;          /* for ROLE_STATION: its one station, else 0 */
    char principal[64];          /* principal name (not personal data) */
    int64_t principal_id;        /* principals.id once Hello succeeded, else 0 */
    bool hello_pending;          /* auth lookup in flight; reading paused meanwhile */
    unsigned inflight;           /* requests awaiting a backend; <= max_inflight_per_conn */
    unsigned refs;               /* holders that may touch this struct later (>= 1 while open) */
    int64_t created_ms;          /* monotonic */
    int64_t last_active_ms;      /* monotonic; last frame received */
    int64_t obuf_soft_since_ms;  /* monotonic; 0 while output is under the soft limit */
    int64_t closing_deadline_ms; /* CONN_CLOSING: force-close after this */
    bool read_paused_obuf;       /* reading paused by the soft output limit */
    bool eof;                    /* the peer half-closed; no more input will come */
    bool handshaking;            /* TLS handshake not finished yet (hello_timeout_ms bounds it) */
    bool peer_cert_ok;           /* TLS: the peer presented a client certificate that verified */
    void *station;               /* station console session (station.c), or NULL */
    struct Conn *prev, *next;    /* ConnSet.conns list */
} Conn;

/* Wraps an accepted socket, in TLS when set->tls (the handshake runs on the loop; a failure
 * is counted and closes the conn); takes ownership of fd only on success (NULL: the caller
 * closes). */
Conn *conn_new(ConnSet *set, int fd, const struct sockaddr *sa, int salen);

/* Queues one frame. Applies the output-buffer limits (may close the connection).
 * A no-op once the connection is CLOSING or CLOSED. */
void conn_send(Conn *c, const Envelope *env);

/* Sends Error{code, message}; fatal = close after the frame is flushed. Counted in
 * /metrics by code whether or not the connection can still take it. */
void conn_send_error(Conn *c, uint64_t seq, int code, bool fatal, const char *fmt, ...)
    PRINTF_LIKE(5, 6);
/* The same, non-fatal, naming the request field that was wrong (INVALID_ARGUMENT, ...). */
void conn_send_field_error(Conn *c, uint64_t seq, int code, const char *field, const char *fmt, ...)
    PRINTF_LIKE(5, 6);

/* Stops reading; closes after in-flight work finishes and output is flushed. */
void conn_drain(Conn *c);
/* Stops reading; closes once the output is flushed. */
void conn_close_after_flush(Conn *c, const char *why);
/* Closes the socket now, dropping unsent output; conn_alive is false from here on. The
 * owner's on_closed runs later, from the loop (never inside this call), so the caller and
 * everything up its stack may keep using the conn and what hangs off it until they return. */
void conn_close_now(Conn *c, const char *why);

/* A request taken off this connection is now waiting for a backend. */
void conn_inflight_begin(Conn *c);
/* That request finished (its reply, if any, was sent or dropped). Resumes reading. */
void conn_inflight_end(Conn *c);

void conn_ref(Conn *c);
void conn_unref(Conn *c);

/* NULL when a principal of this role may use c; else the reason it may not (a station
 * without a verified client certificate while tls_client_certs = required), counted. */
const char *conn_role_refused(Conn *c, Role role);

/* true while replies can still be delivered (OPEN or DRAINING). */
bool conn_alive(const Conn *c);

void conn_set_state(Conn *c, ConnState st);

#define clog_debug(c, fmt, ...)                                                                    \
    log_debug("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)
#define clog_info(c, fmt, ...)                                                                     \
    log_info("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)
#define clog_warn(c, fmt, ...)                                                                     \
    log_warn("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)

#endif
