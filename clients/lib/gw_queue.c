/*
 * gw_queue: answering callers and the one-at-a-time send queue to dispatchd. Order is the
 * spool's: a submit that failed retryably stays at the head, so a later call never
 * overtakes an earlier one; the call id is the idempotency key, so a resend is harmless.
 */
#include "gw_queue.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define S(x) CARELINE__V1__##x

const char *const gw_outcome_names[OUT__N] = {"answered", "spooled", "not_taken",
                                              "refused",  "menu",    "unavailable"};
const char *const gw_bad_names[BAD__N] = {
    "invalid_json",       "invalid_field",   "too_large",     "wrong_content_type",
    "missing_signature",  "stale_timestamp", "bad_signature", "replayed",
    "method_not_allowed", "not_found",       "busy"};

/* ---- answering ---- */

void gw_send_json(struct evhttp_request *req, int status, json_t *j)
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

void gw_write_line(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    /* stdout is the one consumer's pipe; a blocking write of one short line is fine */
    printf("%s\n", s);
    fflush(stdout);
    free(s);
}

void gw_maybe_finish(Gw *g)
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
void gw_waiter_answer(Waiter *w, int status, Outcome out, const char *speech, json_t *extra)
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
                  gw_outcome_names[out], "next", out == OUT_MENU ? "collect_digits" : "hangup");
    if (extra)
        json_object_update(j, extra);
    if (w->kind == W_HTTP && w->req) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
        gw_send_json(w->req, status, j);
    } else if (w->kind == W_STDIO) {
        gw_write_line(j);
    }
    json_decref(j);
    if (w->timer)
        event_free(w->timer);
    free(w);
    g->waiters--;
    gw_maybe_finish(g);
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

void gw_op_free(Op *op)
{
    ASSERT(!op->waiters);
    json_decref(op->payload);
    free(op);
}

/* Answers all of op's waiters the same way. */
static void op_answer_all(Op *op, int status, Outcome out, const char *speech, json_t *extra)
{
    while (op->waiters)
        gw_waiter_answer(op->waiters, status, out, speech, extra);
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
        gw_waiter_answer(w, 200, OUT_SPOOLED, GW_SAY_SPOOLED, NULL);
        return;
    }
    gw_waiter_answer(
        w, 200, OUT_UNAVAILABLE,
        op->plan == GW_PLAN_STATUS ? GW_SAY_STATUS_UNAVAILABLE : GW_SAY_CANCEL_UNAVAILABLE, NULL);
    if (!op->waiters && !op->sent) {
        op_unlink(g, op);
        gw_op_free(op);
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

/* ---- the send queue ---- */

Op *gw_op_enqueue(Gw *g, GwPlan plan, const char *call_id)
{
    Op *op = xcalloc(1, sizeof(*op));
    op->gw = g;
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
        gw_op_free(op);
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
    gw_op_free(op);
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
    gw_op_free(op);
}

static void reply_cb(const Envelope *reply, const char *err, void *arg)
{
    Op *op = arg;
    Gw *g = op->gw;
    op->sent = false;
    if (!reply) {
        log_debug("call %s: no reply (%s)", op->call_id, err);
        if (op->plan == GW_PLAN_SUBMIT) {
            op->not_before_ms = 0; /* resent once the link is back; stays at the head */
        } else {
            query_reply(g, op, NULL);
        }
        return; /* the link reconnects and calls gw_pump */
    }
    if (op->plan == GW_PLAN_SUBMIT)
        submit_reply(g, op, reply);
    else
        query_reply(g, op, reply);
    gw_pump(g);
}

void gw_pump_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_pump(arg);
}

void gw_pump(Gw *g)
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
                gw_op_free(op);
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

void gw_on_link_up(void *arg)
{
    Gw *g = arg;
    stdin_start(g);
    gw_pump(g);
}

void gw_stdin_start_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stdin_start(arg);
}

/* ---- taking a call ------------------------------------------------------------------- */

/* Handles one parsed call; req is NULL in --stdio mode. */
void gw_take_call(Gw *g, const GwCall *call, struct evhttp_request *req)
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
        gw_waiter_answer(w, 200, OUT_MENU, say, NULL);
        return;
    }
    if (plan == GW_PLAN_STATUS || plan == GW_PLAN_CANCEL) {
        if (!gw_link_up(g->link)) {
            Waiter *w = waiter_new(g, NULL, wk, req, call->call_id);
            gw_waiter_answer(w, 200, OUT_UNAVAILABLE,
                             plan == GW_PLAN_STATUS ? GW_SAY_STATUS_UNAVAILABLE
                                                    : GW_SAY_CANCEL_UNAVAILABLE,
                             NULL);
            return;
        }
        Op *op = gw_op_enqueue(g, plan, call->call_id);
        snprintf(op->phone, sizeof(op->phone), "%s", call->caller);
        waiter_new(g, op, wk, req, call->call_id);
        gw_pump(g);
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
            gw_waiter_answer(w, 503, OUT_NOT_TAKEN, GW_SAY_NOT_TAKEN, NULL);
            return;
        }
        op = gw_op_enqueue(g, GW_PLAN_SUBMIT, call->call_id);
        op->seq = seq;
        op->payload = payload;
        op->operator_call = !strcmp(json_string_value(json_object_get(payload, "op")), "operator");
    }
    Waiter *w = waiter_new(g, op, wk, req, call->call_id);
    if (!gw_link_up(g->link)) {
        /* durable now, and no answer can come soon: tell the caller at once */
        gw_waiter_answer(w, 200, OUT_SPOOLED, GW_SAY_SPOOLED, NULL);
        return;
    }
    gw_pump(g);
}
