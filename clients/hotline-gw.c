/*
 * hotline-gw: the bridge between the county hotline (a call centre or PBX with an IVR) and
 * dispatchd. A call event arrives as a signed HTTP webhook (or a JSON line on stdin with
 * --stdio); the IVR digits become a SubmitRequest, StatusQuery or CancelRequest sent over
 * one link to the daemon, and the answer goes back as JSON with the sentence to speak.
 * Every request to be submitted is first written to the spool (fsync'd), then sent in
 * spool order, one at a time; the call id is the idempotency key, so a resend after a
 * crash or a retried webhook never creates a second request. A caller hears "recorded, we
 * will call back" only once the call is durably spooled.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl.h"
#include "gw_call.h"
#include "gw_config.h"
#include "gw_link.h"
#include "gw_spool.h"
#include "common/log.h"

#define S(x)       CARELINE__V1__##x
#define GW_VERSION "0.1.0"

/* ---- state --------------------------------------------------------------------------- */

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
static const char *const outcome_names[] = {"answered", "spooled", "not_taken",
                                            "refused",  "menu",    "unavailable"};

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
static const char *const bad_names[] = {
    "invalid_json",       "invalid_field",   "too_large",     "wrong_content_type",
    "missing_signature",  "stale_timestamp", "bad_signature", "replayed",
    "method_not_allowed", "not_found",       "busy"};

struct Gw {
    GwConfig cfg;
    GwMenu menu;
    struct event_base *base;
    GwLink *link;
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

static void pump(Gw *g);
static Gw *gw_global; /* the one gateway: ops may outlive all their waiters */

/* ---- answering ----------------------------------------------------------------------- */

static void send_json(struct evhttp_request *req, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", s);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, status, status < 400 ? "OK" : "Error", b);
    evbuffer_free(b);
    free(s);
}

static void write_line(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    /* stdout is the one consumer's pipe; a blocking write of one short line is fine */
    printf("%s\n", s);
    fflush(stdout);
    free(s);
}

static void http_bad(Gw *g, struct evhttp_request *req, int status, BadReason r, const char *msg)
{
    g->m.bad[r]++;
    log_info("webhook refused (%d %s): %s", status, bad_names[r], msg);
    json_t *j = json_pack("{s:s, s:s}", "error", bad_names[r], "reason", msg);
    send_json(req, status, j);
    json_decref(j);
}

static void maybe_finish(Gw *g)
{
    if ((g->cfg.stdio && g->stdin_eof && g->waiters == 0) || (g->stopping && g->waiters == 0)) {
        struct timeval tv = {0, 100000}; /* let the last replies flush */
        event_base_loopexit(g->base, &tv);
    }
}

static void http_closed_cb(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    Waiter *w = arg;
    w->req = NULL; /* the call centre went away: the answer is dropped, the work goes on */
}

/* Sends the answer and frees the waiter (unlinked from its op by the caller or here). */
static void waiter_answer(Waiter *w, int status, Outcome out, const char *speech, json_t *extra)
{
    Gw *g = w->gw;
    if (w->op) {
        Waiter **pp = &w->op->waiters;
        while (*pp && *pp != w)
            pp = &(*pp)->next;
        if (*pp)
            *pp = w->next;
    }
    g->m.calls[out]++;
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s}", "call_id", w->call_id, "speech", speech, "outcome",
                  outcome_names[out], "next", out == OUT_MENU ? "collect_digits" : "hangup");
    if (extra)
        json_object_update(j, extra);
    if (w->kind == W_HTTP && w->req) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
        send_json(w->req, status, j);
    } else if (w->kind == W_STDIO) {
        write_line(j);
    }
    json_decref(j);
    if (w->timer)
        event_free(w->timer);
    free(w);
    g->waiters--;
    maybe_finish(g);
}

static void op_unlink(Gw *g, Op *op)
{
    Op **pp = &g->head, *prev = NULL;
    while (*pp && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = op->next;
    if (g->tail == op)
        g->tail = prev;
    op->next = NULL;
}

static void op_free(Op *op)
{
    ASSERT(!op->waiters);
    json_decref(op->payload);
    free(op);
}

/* Answers all of op's waiters the same way. */
static void op_answer_all(Op *op, int status, Outcome out, const char *speech, json_t *extra)
{
    while (op->waiters)
        waiter_answer(op->waiters, status, out, speech, extra);
}

static void answer_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    Waiter *w = arg;
    Op *op = w->op;
    Gw *g = w->gw;
    if (op->plan == GW_PLAN_SUBMIT) {
        /* the call is in the spool, so the promise can be kept */
        waiter_answer(w, 200, OUT_SPOOLED, GW_SAY_SPOOLED, NULL);
        return;
    }
    waiter_answer(
        w, 200, OUT_UNAVAILABLE,
        op->plan == GW_PLAN_STATUS ? GW_SAY_STATUS_UNAVAILABLE : GW_SAY_CANCEL_UNAVAILABLE, NULL);
    if (!op->waiters && !op->sent) {
        op_unlink(g, op);
        op_free(op);
    }
}

static Waiter *waiter_new(Gw *g, Op *op, WaiterKind kind, struct evhttp_request *req,
                          const char *call_id)
{
    Waiter *w = xcalloc(1, sizeof(*w));
    w->gw = g;
    w->op = op;
    w->kind = kind;
    w->req = req;
    snprintf(w->call_id, sizeof(w->call_id), "%s", call_id);
    if (req)
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), http_closed_cb, w);
    g->waiters++;
    if (op) {
        w->next = op->waiters;
        op->waiters = w;
        w->timer = evtimer_new(g->base, answer_timeout_cb, w);
        struct timeval tv = {g->cfg.answer_timeout_ms / 1000,
                             (g->cfg.answer_timeout_ms % 1000) * 1000};
        evtimer_add(w->timer, &tv);
    }
    return w;
}

/* ---- the send queue ------------------------------------------------------------------ */

static Op *op_enqueue(Gw *g, GwPlan plan, const char *call_id)
{
    Op *op = xcalloc(1, sizeof(*op));
    op->plan = plan;
    snprintf(op->call_id, sizeof(op->call_id), "%s", call_id);
    if (g->tail)
        g->tail->next = op;
    else
        g->head = op;
    g->tail = op;
    return op;
}

static Op *find_pending_submit(Gw *g, const char *call_id)
{
    for (Op *op = g->head; op; op = op->next)
        if (op->plan == GW_PLAN_SUBMIT && !strcmp(op->call_id, call_id))
            return op;
    return NULL;
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
    return e ? e->name : "?";
}

static bool retryable(int code)
{
    return code == S(ERROR_CODE__UNAVAILABLE) || code == S(ERROR_CODE__OVERLOADED) ||
           code == S(ERROR_CODE__SHUTTING_DOWN) || code == S(ERROR_CODE__TIMEOUT) ||
           code == S(ERROR_CODE__INTERNAL);
}

#define MAX_INTERNAL_RETRIES 5

static void submit_reply(Gw *g, Op *op, const Envelope *r)
{
    char masked[LOG_MASK_BUF];
    json_t *ph = json_object_get(op->payload, "phone");
    log_mask_phone(json_string_value(ph), masked);
    if (r->body_case == CARELINE__V1__ENVELOPE__BODY_SUBMIT_RESULT) {
        const Careline__V1__SubmitResult *s = r->submit_result;
        g->m.submitted++;
        log_info("call %s from %s: request %lld %s%s", op->call_id, masked,
                 (long long)s->request_id,
                 enum_name(&careline__v1__request_state__descriptor, s->state),
                 s->duplicate ? " (duplicate)" : "");
        (void)gw_spool_done(g->spool, op->seq, "sent");
        const char *speech = s->speech_zh && *s->speech_zh ? s->speech_zh : GW_SAY_SPOOLED;
        if (op->operator_call &&
            (s->state == S(REQUEST_STATE__QUEUED) || s->state == S(REQUEST_STATE__WAITLISTED) ||
             s->state == S(REQUEST_STATE__RECEIVED) || s->state == S(REQUEST_STATE__ACCEPTED)))
            speech = GW_SAY_OPERATOR;
        json_t *x =
            json_pack("{s:s, s:I, s:b}", "state",
                      enum_name(&careline__v1__request_state__descriptor, s->state), "request_id",
                      (json_int_t)s->request_id, "duplicate", (int)s->duplicate);
        if (s->reason_code)
            json_object_set_new(
                x, "reason",
                json_string(enum_name(&careline__v1__reason_code__descriptor, s->reason_code)));
        op_answer_all(op, 200, OUT_ANSWERED, speech, x);
        json_decref(x);
        op_unlink(g, op);
        op_free(op);
        return;
    }
    int code = r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR ? (int)r->error->code : 0;
    const char *msg = code ? r->error->message : "unexpected reply";
    if (code && retryable(code) &&
        (code != S(ERROR_CODE__INTERNAL) || op->attempts < MAX_INTERNAL_RETRIES)) {
        op->attempts++;
        g->m.resent_retries++;
        int delay = 200 << (op->attempts < 5 ? op->attempts : 5);
        if (delay > g->cfg.reconnect_max_ms)
            delay = g->cfg.reconnect_max_ms;
        op->not_before_ms = util_now_ms() + delay;
        log_warn("call %s: daemon said %s (%s); retrying in %d ms", op->call_id,
                 enum_name(&careline__v1__error_code__descriptor, code), msg, delay);
        return; /* stays at the head: order is kept */
    }
    /* refused for good: the record is done; the call id lets the call centre find the caller */
    log_error("call %s from %s: refused by the daemon: %s (%s); NOT recorded", op->call_id, masked,
              code ? enum_name(&careline__v1__error_code__descriptor, code) : "?", msg);
    (void)gw_spool_done(g->spool, op->seq, "refused");
    json_t *x = json_pack("{s:s}", "error",
                          code ? enum_name(&careline__v1__error_code__descriptor, code) : "?");
    op_answer_all(op, 200, OUT_REFUSED, GW_SAY_REFUSED, x);
    json_decref(x);
    op_unlink(g, op);
    op_free(op);
}

static void query_reply(Gw *g, Op *op, const Envelope *r)
{
    bool status = op->plan == GW_PLAN_STATUS;
    const char *unavailable = status ? GW_SAY_STATUS_UNAVAILABLE : GW_SAY_CANCEL_UNAVAILABLE;
    if (status && r && r->body_case == CARELINE__V1__ENVELOPE__BODY_REQUEST_STATUS) {
        const Careline__V1__RequestStatus *s = r->request_status;
        json_t *x = json_pack("{s:s, s:I}", "state",
                              enum_name(&careline__v1__request_state__descriptor, s->state),
                              "request_id", (json_int_t)s->request_id);
        op_answer_all(op, 200, OUT_ANSWERED, s->speech_zh, x);
        json_decref(x);
    } else if (!status && r && r->body_case == CARELINE__V1__ENVELOPE__BODY_CANCEL_RESULT) {
        const Careline__V1__CancelResult *s = r->cancel_result;
        json_t *x =
            json_pack("{s:s, s:I, s:b}", "state",
                      enum_name(&careline__v1__request_state__descriptor, s->state), "request_id",
                      (json_int_t)s->request_id, "cancelled", (int)s->cancelled);
        op_answer_all(op, 200, OUT_ANSWERED, s->speech_zh, x);
        json_decref(x);
    } else if (r && r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR &&
               r->error->code == S(ERROR_CODE__NOT_FOUND)) {
        json_t *x = json_pack("{s:s}", "state", "NOT_FOUND");
        op_answer_all(op, 200, OUT_ANSWERED, GW_SAY_NO_RECORD, x);
        json_decref(x);
    } else {
        if (r && r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR)
            log_warn("call %s: %s failed: %s", op->call_id, status ? "status" : "cancel",
                     r->error->message);
        op_answer_all(op, 200, OUT_UNAVAILABLE, unavailable, NULL);
    }
    op_unlink(g, op);
    op_free(op);
}

static void reply_cb(const Envelope *reply, const char *err, void *arg)
{
    Op *op = arg;
    Gw *g = gw_global;
    op->sent = false;
    if (!reply) {
        log_debug("call %s: no reply (%s)", op->call_id, err);
        if (op->plan == GW_PLAN_SUBMIT) {
            op->not_before_ms = 0; /* resent once the link is back; stays at the head */
        } else {
            query_reply(g, op, NULL);
        }
        return; /* the link reconnects and calls pump */
    }
    if (op->plan == GW_PLAN_SUBMIT)
        submit_reply(g, op, reply);
    else
        query_reply(g, op, reply);
    pump(g);
}

static void pump_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void pump(Gw *g)
{
    while (g->head && gw_link_idle(g->link)) {
        Op *op = g->head;
        int64_t now = util_now_ms();
        if (op->not_before_ms > now) {
            int64_t ms = op->not_before_ms - now;
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
            evtimer_add(g->pump_timer, &tv);
            return;
        }
        Envelope env = CARELINE__V1__ENVELOPE__INIT;
        Careline__V1__SubmitRequest sub;
        Careline__V1__StatusQuery q = CARELINE__V1__STATUS_QUERY__INIT;
        Careline__V1__CancelRequest c = CARELINE__V1__CANCEL_REQUEST__INIT;
        if (op->plan == GW_PLAN_SUBMIT) {
            if (!gw_submit_from_payload(op->payload, &sub)) {
                log_error("spool record %llu is malformed; dropped", (unsigned long long)op->seq);
                (void)gw_spool_done(g->spool, op->seq, "malformed");
                op_answer_all(op, 200, OUT_NOT_TAKEN, GW_SAY_NOT_TAKEN, NULL);
                op_unlink(g, op);
                op_free(op);
                continue;
            }
            env.body_case = CARELINE__V1__ENVELOPE__BODY_SUBMIT;
            env.submit = &sub;
        } else if (op->plan == GW_PLAN_STATUS) {
            q.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
            q.caller_phone = op->phone;
            env.body_case = CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY;
            env.status_query = &q;
        } else {
            c.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_CALLER_PHONE;
            c.caller_phone = op->phone;
            c.reason = (char *)"caller pressed cancel on the hotline";
            env.body_case = CARELINE__V1__ENVELOPE__BODY_CANCEL;
            env.cancel = &c;
        }
        if (!gw_link_call(g->link, &env, g->cfg.request_timeout_ms, reply_cb, op))
            return;
        op->sent = true;
        return; /* one at a time: the reply pumps the next */
    }
}

/* --stdio starts reading once the link is up (or after answer_timeout_ms without it), so
 * a script's first lines are not all answered "spooled" just because we were connecting */
static void stdin_start(Gw *g)
{
    if (g->in && !g->stdin_eof && !(bufferevent_get_enabled(g->in) & EV_READ))
        bufferevent_enable(g->in, EV_READ);
}

static void link_up_cb(void *arg)
{
    Gw *g = arg;
    stdin_start(g);
    pump(g);
}

static void stdin_start_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stdin_start(arg);
}

/* ---- taking a call ------------------------------------------------------------------- */

/* Handles one parsed call; req is NULL in --stdio mode. */
static void take_call(Gw *g, const GwCall *call, struct evhttp_request *req)
{
    WaiterKind wk = req ? W_HTTP : W_STDIO;
    char masked[LOG_MASK_BUF];
    log_mask_phone(call->caller, masked);
    json_t *payload = NULL;
    const char *say = NULL;
    GwPlan plan = gw_call_plan(&g->menu, call, time(NULL), &payload, &say);
    log_info("call %s from %s: digits '%s'", call->call_id, masked, call->digits);
    if (plan == GW_PLAN_MENU) {
        Waiter *w = waiter_new(g, NULL, wk, req, call->call_id);
        waiter_answer(w, 200, OUT_MENU, say, NULL);
        return;
    }
    if (plan == GW_PLAN_STATUS || plan == GW_PLAN_CANCEL) {
        if (!gw_link_up(g->link)) {
            Waiter *w = waiter_new(g, NULL, wk, req, call->call_id);
            waiter_answer(w, 200, OUT_UNAVAILABLE,
                          plan == GW_PLAN_STATUS ? GW_SAY_STATUS_UNAVAILABLE
                                                 : GW_SAY_CANCEL_UNAVAILABLE,
                          NULL);
            return;
        }
        Op *op = op_enqueue(g, plan, call->call_id);
        snprintf(op->phone, sizeof(op->phone), "%s", call->caller);
        waiter_new(g, op, wk, req, call->call_id);
        pump(g);
        return;
    }
    /* a retry of a call still waiting in the spool joins it instead of being spooled again */
    Op *op = find_pending_submit(g, call->call_id);
    if (op) {
        json_decref(payload);
        log_info("call %s: a repeat of a call still in the spool", call->call_id);
    } else {
        char *line = json_dumps(payload, JSON_COMPACT);
        uint64_t seq = 0;
        bool ok = line && gw_spool_append(g->spool, line, &seq);
        free(line);
        if (!ok) {
            json_decref(payload);
            Waiter *w = waiter_new(g, NULL, wk, req, call->call_id);
            waiter_answer(w, 503, OUT_NOT_TAKEN, GW_SAY_NOT_TAKEN, NULL);
            return;
        }
        op = op_enqueue(g, GW_PLAN_SUBMIT, call->call_id);
        op->seq = seq;
        op->payload = payload;
        op->operator_call = !strcmp(json_string_value(json_object_get(payload, "op")), "operator");
    }
    Waiter *w = waiter_new(g, op, wk, req, call->call_id);
    if (!gw_link_up(g->link)) {
        /* durable now, and no answer can come soon: tell the caller at once */
        waiter_answer(w, 200, OUT_SPOOLED, GW_SAY_SPOOLED, NULL);
        return;
    }
    pump(g);
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static void metrics_page(Gw *g, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "# TYPE hotline_gw_calls_total counter\n");
    for (int i = 0; i < OUT__N; i++)
        evbuffer_add_printf(b, "hotline_gw_calls_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                            (unsigned long long)g->m.calls[i]);
    evbuffer_add_printf(b, "# TYPE hotline_gw_bad_requests_total counter\n");
    for (int i = 0; i < BAD__N; i++)
        evbuffer_add_printf(b, "hotline_gw_bad_requests_total{reason=\"%s\"} %llu\n", bad_names[i],
                            (unsigned long long)g->m.bad[i]);
    evbuffer_add_printf(b,
                        "# TYPE hotline_gw_spool_pending gauge\nhotline_gw_spool_pending %zu\n"
                        "# TYPE hotline_gw_spool_appended_total counter\n"
                        "hotline_gw_spool_appended_total %llu\n"
                        "# TYPE hotline_gw_submitted_total counter\n"
                        "hotline_gw_submitted_total %llu\n"
                        "# TYPE hotline_gw_daemon_retries_total counter\n"
                        "hotline_gw_daemon_retries_total %llu\n"
                        "# TYPE hotline_gw_daemon_up gauge\nhotline_gw_daemon_up %d\n"
                        "# TYPE hotline_gw_daemon_link_failures_total counter\n"
                        "hotline_gw_daemon_link_failures_total %llu\n",
                        gw_spool_count(g->spool), (unsigned long long)gw_spool_appended(g->spool),
                        (unsigned long long)g->m.submitted, (unsigned long long)g->m.resent_retries,
                        gw_link_up(g->link) ? 1 : 0, (unsigned long long)gw_link_failures(g->link));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static void webhook(Gw *g, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    if (!is_json_type(evhttp_find_header(h, "Content-Type"))) {
        http_bad(g, req, 415, BAD_CONTENT_TYPE, "Content-Type must be application/json");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > (size_t)g->cfg.max_body_bytes) {
        char m[128];
        snprintf(m, sizeof(m), "the body is %zu bytes; the limit is %d", len,
                 g->cfg.max_body_bytes);
        http_bad(g, req, 413, BAD_TOO_LARGE, m);
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *ts = evhttp_find_header(h, "X-Careline-Timestamp");
    const char *sig = evhttp_find_header(h, "X-Careline-Signature");
    const char *why = NULL;
    int64_t now = time(NULL);
    if (!gw_sig_check(g->secret, g->secretlen, ts, sig, body, len, now, g->cfg.max_skew_s, &why)) {
        BadReason r = !strcmp(why, "missing_signature") ? BAD_MISSING_SIG
                      : !strcmp(why, "stale_timestamp") ? BAD_STALE
                                                        : BAD_SIG;
        http_bad(g, req, 401, r,
                 r == BAD_MISSING_SIG ? "X-Careline-Timestamp and X-Careline-Signature required"
                 : r == BAD_STALE     ? "X-Careline-Timestamp is missing, malformed or too far "
                                        "from the gateway's clock"
                                      : "X-Careline-Signature does not match the body");
        return;
    }
    if (gw_replay_seen(g->replay, sig, now)) {
        http_bad(g, req, 409, BAD_REPLAY,
                 "this signature was already used; sign each delivery with a new timestamp");
        return;
    }
    if (!gw_replay_add(g->replay, sig, now)) {
        http_bad(g, req, 503, BAD_BUSY, "too many deliveries in the replay window; retry");
        return;
    }
    GwCall call;
    const char *field = NULL;
    char msg[256];
    if (!gw_call_parse(body, len, &call, &field, msg, sizeof(msg))) {
        bool json = !strcmp(field, "body");
        http_bad(g, req, 400, json ? BAD_JSON : BAD_FIELD, msg);
        return;
    }
    take_call(g, &call, req);
}

static void http_cb(struct evhttp_request *req, void *arg)
{
    Gw *g = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (path && !strcmp(path, g->cfg.webhook_path)) {
        if (cmd != EVHTTP_REQ_POST) {
            http_bad(g, req, 405, BAD_METHOD, "use POST");
            return;
        }
        if (g->stopping) {
            http_bad(g, req, 503, BAD_BUSY, "the gateway is stopping; retry");
            return;
        }
        webhook(g, req);
    } else if (path && !strcmp(path, "/healthz") && cmd == EVHTTP_REQ_GET) {
        json_t *j = json_pack("{s:b, s:b, s:I}", "ok", 1, "daemon_up", (int)gw_link_up(g->link),
                              "spool_pending", (json_int_t)gw_spool_count(g->spool));
        send_json(req, 200, j);
        json_decref(j);
    } else if (path && !strcmp(path, "/metrics") && cmd == EVHTTP_REQ_GET) {
        metrics_page(g, req);
    } else {
        http_bad(g, req, 404, BAD_NOT_FOUND, "no such path");
    }
}

static bool http_start(Gw *g, char *err, size_t errlen)
{
    g->http = evhttp_new(g->base);
    ASSERT(g->http);
    /* bodies up to 4x the limit are read and refused with a JSON 413; evhttp cuts larger */
    evhttp_set_max_body_size(g->http, (ev_ssize_t)g->cfg.max_body_bytes * 4);
    evhttp_set_max_headers_size(g->http, 16384);
    evhttp_set_timeout(g->http, (g->cfg.answer_timeout_ms + 999) / 1000 + 10);
    evhttp_set_allowed_methods(g->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(g->http, http_cb, g);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(g->http, g->cfg.http_addr, (ev_uint16_t)g->cfg.http_port);
    if (!bs) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", g->cfg.http_addr, g->cfg.http_port,
                 strerror(errno));
        return false;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = g->cfg.http_port;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    log_info("webhook listening on http://%s:%d%s", g->cfg.http_addr, port, g->cfg.webhook_path);
    if (g->cfg.port_file[0]) {
        char tmp[GW_STR_MAX + 16];
        snprintf(tmp, sizeof(tmp), "%s.tmp", g->cfg.port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "http %d\n", port) < 0 || fclose(f) != 0 ||
            rename(tmp, g->cfg.port_file) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", g->cfg.port_file, strerror(errno));
            return false;
        }
    }
    return true;
}

/* ---- stdio --------------------------------------------------------------------------- */

static void stdio_bad(Gw *g, BadReason r, const char *msg)
{
    g->m.bad[r]++;
    json_t *j = json_pack("{s:s, s:s}", "error", bad_names[r], "reason", msg);
    write_line(j);
    json_decref(j);
}

static void stdin_read_cb(struct bufferevent *bev, void *arg)
{
    Gw *g = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n = 0;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
        if (!line) {
            if (evbuffer_get_length(in) > (size_t)g->cfg.max_body_bytes) {
                /* a line too long: drop it up to its newline */
                evbuffer_drain(in, evbuffer_get_length(in));
                stdio_bad(g, BAD_TOO_LARGE, "line too long");
            }
            return;
        }
        if (n > (size_t)g->cfg.max_body_bytes) {
            stdio_bad(g, BAD_TOO_LARGE, "line too long");
        } else if (n > 0 && !g->stopping) {
            GwCall call;
            const char *field = NULL;
            char msg[256];
            if (gw_call_parse(line, n, &call, &field, msg, sizeof(msg)))
                take_call(g, &call, NULL);
            else
                stdio_bad(g, !strcmp(field, "body") ? BAD_JSON : BAD_FIELD, msg);
        }
        free(line);
    }
}

static void stdin_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    Gw *g = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        stdin_read_cb(bev, g);
        g->stdin_eof = true;
        bufferevent_disable(bev, EV_READ);
        maybe_finish(g);
    }
}

/* ---- signals and main ---------------------------------------------------------------- */

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    Gw *g = arg;
    if (g->stopping) {
        log_warn("second signal %d: exiting now", (int)sig);
        event_base_loopbreak(g->base);
        return;
    }
    log_info("signal %d: answering the calls in progress, then stopping (%zu calls stay in "
             "the spool)",
             (int)sig, gw_spool_count(g->spool));
    g->stopping = true;
    for (Op *op = g->head; op; op = op->next) {
        while (op->waiters) {
            Waiter *w = op->waiters;
            if (op->plan == GW_PLAN_SUBMIT)
                waiter_answer(w, 200, OUT_SPOOLED, GW_SAY_SPOOLED, NULL);
            else
                waiter_answer(w, 200, OUT_UNAVAILABLE,
                              op->plan == GW_PLAN_STATUS ? GW_SAY_STATUS_UNAVAILABLE
                                                         : GW_SAY_CANCEL_UNAVAILABLE,
                              NULL);
        }
    }
    maybe_finish(g);
}

static char *read_secret_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (!n) {
        snprintf(err, errlen, "%s is empty", path);
        return NULL;
    }
    return xstrdup(buf);
}

static int setup(Gw *g, int argc, char **argv, bool *check_only)
{
    char err[600];
    switch (gw_config_args(&g->cfg, &g->menu, argc, argv, check_only, err, sizeof(err))) {
    case GW_ARGS_OK:
        return 0;
    case GW_ARGS_HELP:
        exit(0);
    default:
        fprintf(stderr, "hotline-gw: %s (see --help)\n", err);
        return 2;
    }
}

int main(int argc, char **argv)
{
    static Gw gw;
    Gw *g = &gw;
    gw_global = g;
    bool check_only = false;
    int rc = setup(g, argc, argv, &check_only);
    if (rc)
        return rc;
    char err[700];
    char *token = getenv("CARELINE_GW_TOKEN") ? xstrdup(getenv("CARELINE_GW_TOKEN")) : NULL;
    if (!token && g->cfg.token_file[0] &&
        !(token = read_secret_file(g->cfg.token_file, err, sizeof(err)))) {
        fprintf(stderr, "hotline-gw: token: %s\n", err);
        return 2;
    }
    if (!token && g->cfg.tokens_file[0])
        token = cl_token_from_file(g->cfg.tokens_file, "gateway", 0);
    if (!token) {
        fprintf(stderr, "hotline-gw: no gateway token: set token_file, tokens_file or "
                        "CARELINE_GW_TOKEN\n");
        return 2;
    }
    if (!g->cfg.stdio) {
        const char *env = getenv("CARELINE_GW_WEBHOOK_SECRET");
        g->secret = env ? xstrdup(env) : NULL;
        if (!g->secret && g->cfg.webhook_secret_file[0])
            g->secret = read_secret_file(g->cfg.webhook_secret_file, err, sizeof(err));
        if (!g->secret) {
            fprintf(stderr,
                    "hotline-gw: the webhook needs a shared secret: set "
                    "webhook_secret_file or CARELINE_GW_WEBHOOK_SECRET%s%s\n",
                    g->cfg.webhook_secret_file[0] ? ": " : "",
                    g->cfg.webhook_secret_file[0] ? err : "");
            free(token);
            return 2;
        }
        g->secretlen = strlen(g->secret);
    }
    if (check_only) {
        char menu[1024];
        gw_menu_describe(&g->menu, menu, sizeof(menu));
        printf("configuration ok\n%s", menu);
        free(token);
        free(g->secret);
        return 0;
    }
    umask(077);
    g->spool = gw_spool_open(g->cfg.spool_dir, err, sizeof(err));
    if (!g->spool) {
        fprintf(stderr, "hotline-gw: spool: %s\n", err);
        free(token);
        free(g->secret);
        return 1;
    }
    log_info("hotline-gw %s (libevent %s, jansson %s): %zu calls waiting in the spool %s",
             GW_VERSION, event_get_version(), JANSSON_VERSION, gw_spool_count(g->spool),
             g->cfg.spool_dir);
    struct event_config *ec = event_config_new();
    struct stat st0;
    if (g->cfg.stdio && fstat(0, &st0) == 0 && S_ISREG(st0.st_mode))
        event_config_avoid_method(ec, "epoll"); /* epoll refuses regular files; poll takes them */
    g->base = event_base_new_with_config(ec);
    event_config_free(ec);
    ASSERT(g->base);
    srand((unsigned)(time(NULL) ^ getpid()));
    g->replay = gw_replay_new((size_t)g->cfg.replay_cache_size, 2 * g->cfg.max_skew_s + 1);
    g->pump_timer = evtimer_new(g->base, pump_timer_cb, g);
    g->link = gw_link_new(g->base, g->cfg.daemon_host, g->cfg.daemon_port, token,
                          g->cfg.reconnect_max_ms, link_up_cb, g);
    memset(token, 0, strlen(token));
    free(token);
    /* the spooled calls go first, in their order */
    for (size_t i = 0; i < gw_spool_count(g->spool); i++) {
        const GwSpoolRec *r = gw_spool_at(g->spool, i);
        json_t *p = json_loads(r->payload, 0, NULL);
        const char *key = p ? json_string_value(json_object_get(p, "key")) : NULL;
        Op *op = op_enqueue(g, GW_PLAN_SUBMIT, key ? key : "?");
        op->seq = r->seq;
        op->payload = p ? p : json_object();
        const char *opname = json_string_value(json_object_get(op->payload, "op"));
        op->operator_call = opname && !strcmp(opname, "operator");
    }
    g->sig_term = evsignal_new(g->base, SIGTERM, stop_cb, g);
    g->sig_int = evsignal_new(g->base, SIGINT, stop_cb, g);
    evsignal_add(g->sig_term, NULL);
    evsignal_add(g->sig_int, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (g->cfg.stdio) {
        evutil_make_socket_nonblocking(0);
        g->in = bufferevent_socket_new(g->base, 0, 0);
        bufferevent_setcb(g->in, stdin_read_cb, NULL, stdin_event_cb, g);
        struct timeval tv = {g->cfg.answer_timeout_ms / 1000,
                             (g->cfg.answer_timeout_ms % 1000) * 1000};
        event_base_once(g->base, -1, EV_TIMEOUT, stdin_start_cb, g, &tv);
    } else if (!http_start(g, err, sizeof(err))) {
        fprintf(stderr, "hotline-gw: %s\n", err);
        rc = 1;
        goto out;
    }
    gw_link_start(g->link);
    event_base_dispatch(g->base);
    log_info("stopped; %zu calls stay in the spool", gw_spool_count(g->spool));
out:
    /* answers still owed (second signal): the calls are in the spool */
    for (Op *op = g->head; op;) {
        Op *next = op->next;
        while (op->waiters) {
            Waiter *w = op->waiters;
            op->waiters = w->next;
            if (w->timer)
                event_free(w->timer);
            free(w);
        }
        op_free(op);
        op = next;
    }
    if (g->in)
        bufferevent_free(g->in);
    if (g->http)
        evhttp_free(g->http);
    gw_link_free(g->link);
    event_free(g->pump_timer);
    if (g->sig_term)
        event_free(g->sig_term);
    if (g->sig_int)
        event_free(g->sig_int);
    gw_replay_free(g->replay);
    gw_spool_free(g->spool);
    if (g->secret) {
        memset(g->secret, 0, g->secretlen);
        free(g->secret);
    }
    event_base_free(g->base);
    return rc;
}
