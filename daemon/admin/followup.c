/*
 * followup: the module's life cycle, the operation shared by both doors (its checks and its
 * answers) and the protocol door. A FollowupQuery or FollowupMark becomes a FuOp holding a
 * ref on its Conn; the frame is freed once its strings are copied.
 */
#include "admin/followup_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/followup_format.h"
#include "common/log.h"
#include "common/util.h"
#include "net/session.h"

FuOp *followup_op_new(const Env *env)
{
    FuOp *op = xcalloc(1, sizeof(*op));
    op->env = env;
    return op;
}

void followup_op_free(FuOp *op)
{
    if (!op)
        return;
    if (op->h)
        http_watch_close(op->env->http, op->h, NULL, NULL);
    if (op->c) {
        conn_inflight_end(op->c);
        conn_unref(op->c);
    }
    free(op);
}

static bool is_code(const char *s)
{
    return strlen(s) == 12 && strspn(s, "0123456789") == 12;
}

bool followup_op_check(FuOp *op)
{
#define BAD(field, ...)                                                                            \
    do {                                                                                           \
        followup_op_fail(op, FUERR(INVALID_ARGUMENT), field, __VA_ARGS__);                         \
        return false;                                                                              \
    } while (0)
    if (op->bad_text && strcmp(op->bad_field, "note") == 0)
        BAD("note", "note is longer than %d bytes", FU_NOTE_MAX);
    if (op->bad_text)
        BAD(op->bad_field, "%s must be a 12-digit division code", op->bad_field);
    if (!op->mark) {
        if (op->village[0] && !is_code(op->village))
            BAD("village_code", "village_code must be a 12-digit division code");
        if (op->town[0] && !is_code(op->town))
            BAD("town_code", "town_code must be a 12-digit division code");
        if (op->state < 0 || op->state > FUS(DECLINED))
            BAD("state", "state must be OPEN, CONTACTED, REGISTERED or DECLINED (or none)");
        if (op->after < 0)
            BAD("after_id", "after_id must not be negative");
        if (op->limit > FU_LIMIT_MAX)
            BAD("limit", "limit must be 1..%d (0 = %d)", FU_LIMIT_MAX, FU_LIMIT_DEFAULT);
        if (!op->limit)
            op->limit = FU_LIMIT_DEFAULT;
        return true;
    }
    if (op->id <= 0)
        BAD("followup_id", "followup_id must be a positive id");
    if (op->state != FUS(CONTACTED) && op->state != FUS(DECLINED) && op->state != FUS(REGISTERED))
        BAD("state", "state must be CONTACTED, DECLINED or REGISTERED");
    size_t n = strlen(op->note);
    if (!util_utf8_valid(op->note, n))
        BAD("note", "note is not valid UTF-8");
    if (op->set_village[0] && !is_code(op->set_village))
        BAD("village_code", "village_code must be a 12-digit division code");
    return true;
#undef BAD
}

/* ---- answers ----------------------------------------------------------------------------- */

/* The HTTP door's names for the protocol's fields. */
static const char *http_field(const char *field)
{
    static const char *const map[][2] = {{"village_code", "village"},
                                         {"town_code", "town"},
                                         {"after_id", "after"},
                                         {"followup_id", "id"}};
    for (size_t i = 0; field && i < ARRAY_LEN(map); i++)
        if (strcmp(map[i][0], field) == 0)
            return map[i][1];
    return field;
}

void followup_op_fail(FuOp *op, int code, const char *field, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (op->c) {
        if (conn_alive(op->c)) {
            if (field)
                conn_send_field_error(op->c, op->seq, code, field, "%s", msg);
            else
                conn_send_error(op->c, op->seq, code, false, "%s", msg);
        }
    } else if (op->h) {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, code);
        struct evhttp_request *h = op->h;
        http_watch_close(op->env->http, h, NULL, NULL);
        op->h = NULL;
        bureau_http_error(op->env->http, h, bureau_http_status(code), v ? v->name : "INTERNAL",
                          http_field(field), msg);
    }
    followup_op_free(op);
}

void followup_op_reply(FuOp *op, Careline__V1__Followup **fs, size_t n, bool more)
{
    if (op->c) {
        if (conn_alive(op->c)) {
            Envelope env = CARELINE__V1__ENVELOPE__INIT;
            Careline__V1__FollowupList list = CARELINE__V1__FOLLOWUP_LIST__INIT;
            Careline__V1__FollowupMarkResult res = CARELINE__V1__FOLLOWUP_MARK_RESULT__INIT;
            env.seq = op->seq;
            if (op->mark) {
                res.followup = n ? fs[0] : NULL;
                env.body_case = CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK_RESULT;
                env.followup_mark_result = &res;
            } else {
                list.n_followups = n;
                list.followups = fs;
                list.more = more;
                env.body_case = CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_LIST;
                env.followup_list = &list;
            }
            conn_send(op->c, &env);
        }
    } else if (op->h) {
        struct evhttp_request *h = op->h;
        http_watch_close(op->env->http, h, NULL, NULL);
        op->h = NULL;
        size_t len;
        bool csv = op->csv && !op->mark;
        char *body = csv ? followup_csv(fs, n, &len) : followup_json(fs, n, more, op->mark, &len);
        http_send(op->env->http, h, 200, csv ? "text/csv; charset=utf-8" : "application/json", body,
                  len);
        free(body);
    }
    followup_op_free(op);
}

/* ---- the protocol door ------------------------------------------------------------------- */

/* Copies s into dst (n bytes); an overlong s marks op for the check to report. */
static void take_str(FuOp *op, char *dst, size_t n, const char *s, const char *field)
{
    s = s ? s : "";
    if (strlen(s) >= n && !op->bad_text) {
        op->bad_text = true;
        op->bad_field = field;
    }
    snprintf(dst, n, "%s", s);
}

static FuOp *proto_op(Followups *f, Conn *c, const Envelope *env)
{
    FuOp *op = followup_op_new(f->env);
    op->c = c;
    op->seq = env->seq;
    conn_ref(c);
    conn_inflight_begin(c);
    if (c->role == CARELINE__V1__ROLE__ROLE_STATION) {
        op->station = c->station_id;
        snprintf(op->actor, sizeof(op->actor), "station:%lld", (long long)c->station_id);
    } else {
        snprintf(op->actor, sizeof(op->actor), "admin:%s", c->principal);
    }
    return op;
}

void followup_handle_query(void *arg, Conn *c, Envelope *env)
{
    const Careline__V1__FollowupQuery *q = env->followup_query;
    FuOp *op = proto_op(arg, c, env);
    take_str(op, op->village, sizeof(op->village), q->village_code, "village_code");
    take_str(op, op->town, sizeof(op->town), q->town_code, "town_code");
    op->state = (int)q->state;
    op->after = q->after_id;
    op->limit = q->limit;
    frame_free(env);
    if (followup_op_check(op))
        followup_op_run(op);
}

void followup_handle_mark(void *arg, Conn *c, Envelope *env)
{
    const Careline__V1__FollowupMark *m = env->followup_mark;
    FuOp *op = proto_op(arg, c, env);
    op->mark = true;
    op->id = m->followup_id;
    op->state = (int)m->state;
    take_str(op, op->note, sizeof(op->note), m->note, "note");
    take_str(op, op->set_village, sizeof(op->set_village), m->village_code, "village_code");
    frame_free(env);
    if (followup_op_check(op))
        followup_op_run(op);
}

void followup_proto_install(Followups *f)
{
    session_route(f->env->sessions, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY,
                  followup_handle_query, f);
    session_route(f->env->sessions, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK,
                  followup_handle_mark, f);
}

/* ---- life cycle -------------------------------------------------------------------------- */

Followups *followups_new(const Env *env, Bureau *bureau)
{
    Followups *f = xcalloc(1, sizeof(*f));
    f->env = env;
    f->bureau = bureau;
    followup_proto_install(f);
    followup_http_install(f);
    return f;
}

void followups_free(Followups *f)
{
    free(f);
}
