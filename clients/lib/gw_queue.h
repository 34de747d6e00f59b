/*
 * gw_queue: the hotline gateway's state and its one send queue. A call becomes an Op
 * (submit, status or cancel); submits are spooled first, then every Op is sent to the
 * daemon in queue order, one at a time, and retried while the daemon's error is
 * retryable. Each caller waiting for an answer is a Waiter on its Op, answered exactly
 * once: with the daemon's sentence, or "recorded, we will call back" when the call is
 * spooled but no answer came within answer_timeout_ms. Everything runs on the gateway's
 * event loop; nothing here blocks except the spool's fsync.
 */
#ifndef CARELINE_GW_QUEUE_H
#define CARELINE_GW_QUEUE_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_call.h"
#include "gw_config.h"
#include "gw_link.h"
#include "gw_spool.h"

typedef struct Gw Gw;
typedef struct Op Op;

typedef enum { W_HTTP, W_STDIO } WaiterKind;

typedef struct Waiter {
    struct Waiter *next; /* in op->waiters */
    Gw *gw;
    Op *op;
    WaiterKind kind;
    struct evhttp_request *req; /* W_HTTP: NULL once the call centre hung up */
    struct event *timer;        /* answer_timeout_ms */
    char call_id[GW_CALL_ID_MAX + 1];
} Waiter;

struct Op {
    Op *next;                     /* queue order */
    Gw *gw;                       /* the gateway (an op may outlive all its waiters) */
    GwPlan plan;                  /* GW_PLAN_SUBMIT / STATUS / CANCEL */
    uint64_t seq;                 /* SUBMIT: the spool record */
    json_t *payload;              /* SUBMIT: the spool payload */
    char phone[GW_PHONE_MAX + 1]; /* STATUS / CANCEL */
    char call_id[GW_CALL_ID_MAX + 1];
    bool operator_call;
    bool sent;    /* in flight on the link */
    int attempts; /* retryable failures so far */
    int64_t not_before_ms;
    Waiter *waiters;
};

typedef struct {
    uint64_t calls[8];       /* by Outcome */
    uint64_t bad[12];        /* by BadReason */
    uint64_t submitted;      /* SubmitResults received */
    uint64_t resent_retries; /* retryable daemon errors */
} GwMetrics;

typedef enum {
    OUT_ANSWERED,    /* the daemon's answer was read back */
    OUT_SPOOLED,     /* recorded in the spool; callback promised */
    OUT_NOT_TAKEN,   /* could not even spool */
    OUT_REFUSED,     /* the daemon refused it for good */
    OUT_MENU,        /* digits unknown / incomplete: menu read again */
    OUT_UNAVAILABLE, /* status or cancel while the daemon is unreachable */
    OUT__N
} Outcome;
extern const char *const gw_outcome_names[OUT__N]; /* for logs and metrics */

typedef enum {
    BAD_JSON,
    BAD_FIELD,
    BAD_TOO_LARGE,
    BAD_CONTENT_TYPE,
    BAD_MISSING_SIG,
    BAD_STALE,
    BAD_SIG,
    BAD_REPLAY,
    BAD_METHOD,
    BAD_NOT_FOUND,
    BAD_BUSY,
    BAD__N
} BadReason;
extern const char *const gw_bad_names[BAD__N]; /* for answers and metrics */

struct Gw {
    GwConfig cfg;
    GwMenu menu;
    struct event_base *base;
    GwLink *link;
    TlsClient *tls; /* the link's TLS context; NULL = plaintext (daemon_plaintext) */
    GwSpool *spool;
    GwReplay *replay;
    char *secret;
    size_t secretlen;
    struct evhttp *http;
    Op *head, *tail;          /* the send queue */
    struct event *pump_timer; /* a retry after not_before_ms */
    struct event *sig_term, *sig_int;
    struct bufferevent *in; /* --stdio */
    bool stdin_eof;
    int waiters; /* answers still owed */
    bool stopping;
    GwMetrics m;
};

/* Writes j as the JSON answer to req (status < 400: "OK"). */
void gw_send_json(struct evhttp_request *req, int status, json_t *j);
/* Writes j as one line on stdout (--stdio). */
void gw_write_line(json_t *j);

/* Answers w (HTTP or stdout), unlinks it from its op and frees it. */
void gw_waiter_answer(Waiter *w, int status, Outcome out, const char *speech, json_t *extra);
/* Ends the loop once no answer is owed and stdin ended (--stdio) or a stop was asked. */
void gw_maybe_finish(Gw *g);

/* Appends an op to the send queue (the caller fills plan-specific fields). */
Op *gw_op_enqueue(Gw *g, GwPlan plan, const char *call_id);
/* Frees an op that has no waiters left and is off the queue. */
void gw_op_free(Op *op);
/* Sends the queue's head if the link is idle and its retry time has come. */
void gw_pump(Gw *g);

/* Handles one parsed call; req is the webhook's request, or NULL in --stdio mode. */
void gw_take_call(Gw *g, const GwCall *call, struct evhttp_request *req);

/* Loop callbacks for main (arg: the Gw): the link came up; the pump's retry timer; the
 * delayed start of reading stdin. */
void gw_on_link_up(void *arg);
void gw_pump_timer_cb(evutil_socket_t fd, short what, void *arg);
void gw_stdin_start_cb(evutil_socket_t fd, short what, void *arg);

#endif
