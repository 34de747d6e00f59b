/*
 * followup_http: the HTTP door. GET /v1/admin/followups lists (query parameters, parsed
 * strictly: an unknown, empty or malformed one is a 400 naming it); POST
 * /v1/admin/followups/mark takes a JSON object. Both are authenticated with the bureau API's
 * rules (bureau_http_authorize), letting in the admin and station roles only; then the
 * request becomes the same FuOp the protocol door fills. The JSON and CSV shapes are in
 * common/followup_format.c (bin/bureau prints the same).
 */
#include "admin/followup_int.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/followup_format.h"
#include "common/util.h"

#define LIST_PATH "/v1/admin/followups"
#define MARK_PATH "/v1/admin/followups/mark"
#define BODY_MAX  4096 /* a mark's JSON: a 500-byte note escaped fits easily */

static const unsigned fu_roles =
    (1u << CARELINE__V1__ROLE__ROLE_ADMIN) | (1u << CARELINE__V1__ROLE__ROLE_STATION);

/* ---- the list's query string ------------------------------------------------------------- */

/* Copies v into dst (n bytes); false when it does not fit or is empty. */
static bool take(char *dst, size_t n, const char *v)
{
    if (!v[0] || strlen(v) >= n)
        return false;
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

/* Takes one parameter into op; NULL if fine, else why not. */
static const char *take_param(FuOp *op, const char *name, const char *v)
{
    char *end;
    if (strcmp(name, "village") == 0)
        return take(op->village, sizeof(op->village), v) ? NULL : "must be a 12-digit village code";
    if (strcmp(name, "town") == 0)
        return take(op->town, sizeof(op->town), v) ? NULL : "must be a 12-digit town code";
    if (strcmp(name, "state") == 0) {
        op->state = followup_state_of(v);
        return op->state > 0 ? NULL : "must be open, contacted, registered or declined";
    }
    if (strcmp(name, "after") == 0) {
        long long x = strtoll(v, &end, 10);
        op->after = x;
        return !v[0] || *end || x < 0 || strlen(v) > 18 ? "must be a follow-up id (>= 0)" : NULL;
    }
    if (strcmp(name, "limit") == 0) {
        long x = strtol(v, &end, 10);
        op->limit = (uint32_t)(x > 0 && x <= FU_LIMIT_MAX ? x : 0);
        return !v[0] || *end || x < 1 || x > FU_LIMIT_MAX ? "must be 1..500" : NULL;
    }
    if (strcmp(name, "format") == 0) {
        op->csv = strcmp(v, "csv") == 0;
        return op->csv || strcmp(v, "json") == 0 ? NULL : "must be json or csv";
    }
    return "is not a parameter of this endpoint";
}

/* false after answering op */
static bool parse_list(FuOp *op, struct evhttp_request *h)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(h);
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq kv;
    kv.tqh_first = NULL; /* TAILQ_INIT without sys/queue.h */
    kv.tqh_last = &kv.tqh_first;
    if (qs && evhttp_parse_query_str(qs, &kv) != 0) {
        evhttp_clear_headers(&kv);
        followup_op_fail(op, FUERR(INVALID_ARGUMENT), "query",
                         "malformed query string (expected name=value pairs joined by &)");
        return false;
    }
    for (struct evkeyval *e = kv.tqh_first; e; e = e->next.tqe_next) {
        const char *why = take_param(op, e->key, e->value);
        if (why) {
            char key[40];
            snprintf(key, sizeof(key), "%s", e->key);
            evhttp_clear_headers(&kv);
            followup_op_fail(op, FUERR(INVALID_ARGUMENT), key, "parameter '%s' %s", key, why);
            return false;
        }
    }
    evhttp_clear_headers(&kv);
    const char *acc = evhttp_find_header(evhttp_request_get_input_headers(h), "Accept");
    if (acc && strstr(acc, "text/csv") && !(qs && strstr(qs, "format=")))
        op->csv = true;
    return true;
}

/* ---- the mark's body --------------------------------------------------------------------- */

/* A string member of o into dst; NULL if fine (or absent and optional), else why not. */
static const char *take_member(FuOp *op, json_t *o, const char *name, char *dst, size_t n,
                               bool required)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return required ? "is required" : NULL;
    if (!json_is_string(v))
        return "must be a string";
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return "must not hold NUL";
    if (strlen(s) >= n) {
        op->bad_text = true; /* the check names the limit */
        op->bad_field = name;
    }
    snprintf(dst, n, "%s", s);
    return NULL;
}

/* false after answering op */
static bool parse_mark(FuOp *op, struct evhttp_request *h)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(h);
    size_t n = evbuffer_get_length(in);
    if (n == 0 || n > BODY_MAX) {
        followup_op_fail(op, FUERR(INVALID_ARGUMENT), "body",
                         "send a JSON object of at most %d bytes: {\"id\":N,\"state\":"
                         "\"contacted\",\"note\":\"...\"}",
                         BODY_MAX);
        return false;
    }
    json_error_t jerr;
    json_t *o = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n,
                           JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        followup_op_fail(op, FUERR(INVALID_ARGUMENT), "body", "the body is not a JSON object");
        return false;
    }
    op->mark = true;
    const char *field = NULL, *why = NULL;
    const char *known[] = {"id", "state", "note", "village"};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < ARRAY_LEN(known); i++)
            ok = ok || strcmp(known[i], key) == 0;
        if (!ok && !why) {
            field = key;
            why = "is not a field of a mark";
        }
    }
    json_t *id = json_object_get(o, "id");
    if (!why && (!id || !json_is_integer(id))) {
        field = "id";
        why = "must be the follow-up's id (an integer)";
    }
    if (!why)
        op->id = (int64_t)json_integer_value(id);
    char state[16] = "";
    if (!why && (why = take_member(op, o, "state", state, sizeof(state), true)) != NULL)
        field = "state";
    if (!why && (why = take_member(op, o, "note", op->note, sizeof(op->note), false)) != NULL)
        field = "note";
    if (!why && (why = take_member(op, o, "village", op->set_village, sizeof(op->set_village),
                                   false)) != NULL)
        field = "village";
    if (!why && !op->bad_text && (op->state = followup_state_of(state)) <= 0) {
        field = "state";
        why = "must be contacted, declined or registered";
    }
    if (why) {
        char f[40];
        snprintf(f, sizeof(f), "%s", field);
        json_decref(o);
        followup_op_fail(op, FUERR(INVALID_ARGUMENT), f, "%s %s", f, why);
        return false;
    }
    json_decref(o);
    if (op->bad_text && strcmp(op->bad_field, "village") == 0)
        op->bad_field = "village_code";
    return true;
}

/* ---- the routes -------------------------------------------------------------------------- */

static void http_conn_closed(void *arg)
{
    FuOp *op = arg;
    op->h = NULL; /* evhttp frees it: nothing will be sent */
}

/* BureauAuthThen: h's principal is an admin or a station. */
static void authorized(void *arg, struct evhttp_request *h, const AuthAnswer *a)
{
    Followups *f = arg;
    if (!h)
        return; /* the peer went away during the check */
    FuOp *op = followup_op_new(f->env);
    op->h = h;
    http_watch_close(f->env->http, h, http_conn_closed, op);
    if (a->role == CARELINE__V1__ROLE__ROLE_STATION) {
        op->station = a->station_id;
        snprintf(op->actor, sizeof(op->actor), "station:%lld", (long long)a->station_id);
    } else {
        snprintf(op->actor, sizeof(op->actor), "admin:%s", a->name);
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(h));
    bool ok = strcmp(path, MARK_PATH) == 0 ? parse_mark(op, h) : parse_list(op, h);
    if (ok && followup_op_check(op))
        followup_op_run(op);
}

static void http_entry(void *arg, struct evhttp_request *h)
{
    Followups *f = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(h));
    bool want_post = strcmp(path, MARK_PATH) == 0;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(h);
    bool ok = want_post ? cmd == EVHTTP_REQ_POST : cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (!ok) {
        evhttp_add_header(evhttp_request_get_output_headers(h), "Allow",
                          want_post ? "POST" : "GET, HEAD");
        bureau_http_error(f->env->http, h, 405, "METHOD_NOT_ALLOWED", NULL,
                          want_post ? "use POST for this endpoint" : "use GET for this endpoint");
        return;
    }
    bureau_http_authorize(f->bureau, h, fu_roles,
                          want_post ? "mark follow-ups" : "read the follow-up list", authorized, f);
}

void followup_http_install(Followups *f)
{
    http_route(f->env->http, LIST_PATH, http_entry, f);
    http_route(f->env->http, MARK_PATH, http_entry, f);
}
