/*
 * bureau_reply: the one answer every request gets, by the door it came in — a
 * CoverageReport or Error frame on the protocol, JSON or CSV (report_format) or a JSON
 * error over HTTP, a log line for the daily snapshot — after which the request is freed.
 * HTTP errors name the query-string parameter where the protocol names the field.
 */
#include "reports/bureau_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/report_format.h"

int bureau_http_status(int code)
{
    switch (code) {
    case ERRC(INVALID_ARGUMENT):
        return 400;
    case ERRC(NOT_AUTHENTICATED):
    case ERRC(AUTH_FAILED):
        return 401;
    case ERRC(FORBIDDEN):
        return 403;
    case ERRC(NOT_FOUND):
        return 404;
    case ERRC(CONFLICT):
    case ERRC(INVALID_TRANSITION):
        return 409;
    case ERRC(UNAVAILABLE):
    case ERRC(OVERLOADED):
    case ERRC(SHUTTING_DOWN):
        return 503;
    default:
        return 500;
    }
}

/* HTTP names of the query fields (the protocol's are CoverageQuery's). */
static const char *http_field(const char *f)
{
    static const char *const map[][2] = {{"town_code", "town"},
                                         {"from_date", "from"},
                                         {"to_date", "to"},
                                         {"uncovered_only", "covered"},
                                         {"covered_only", "covered"}};
    for (size_t i = 0; f && i < ARRAY_LEN(map); i++)
        if (strcmp(map[i][0], f) == 0)
            return map[i][1];
    return f;
}

void bureau_http_error(Http *http, struct evhttp_request *h, int status, const char *code,
                       const char *field, const char *msg)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code));
    if (field)
        json_object_set_new(e, "field", json_string(field));
    json_object_set_new(e, "message", json_string(msg));
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    ASSERT(s);
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps leaves room only for the NUL: send without it */
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(h), "WWW-Authenticate",
                          "Bearer realm=\"careline\"");
    http_send(http, h, status, "application/json", s, n + 1);
    free(s);
}

static const char *code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, code);
    return v ? v->name : "INTERNAL";
}

void bureau_req_fail(Req *r, int code, const char *field, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    util_vformat_utf8(msg, sizeof(msg), fmt, ap); /* may quote the client: JSON needs UTF-8 */
    va_end(ap);
    if (r->out == OUT_PROTO) {
        if (conn_alive(r->c))
            conn_send_field_error(r->c, r->seq, code, field, "%s", msg);
    } else if (r->out == OUT_NONE) {
        log_warn("bureau: daily snapshot failed: %s", msg);
    } else {
        struct evhttp_request *h = bureau_req_take_http(r);
        if (h)
            bureau_http_error(r->b->env->http, h, bureau_http_status(code), code_name(code),
                              http_field(field), msg);
    }
    bureau_req_free(r);
}

void bureau_req_reply(Req *r)
{
    if (r->out == OUT_PROTO) {
        if (conn_alive(r->c)) {
            Envelope env = CARELINE__V1__ENVELOPE__INIT;
            env.seq = r->seq;
            env.body_case = CARELINE__V1__ENVELOPE__BODY_COVERAGE_REPORT;
            env.coverage_report = &r->rep;
            size_t n = careline__v1__envelope__get_packed_size(&env);
            size_t max = (size_t)r->b->env->cfg->obuf_soft_bytes / 2;
            if (n > max) {
                bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "town_code",
                                "the report would take %zu bytes (more than %zu); ask for one "
                                "town",
                                n, max);
                return;
            }
            conn_send(r->c, &env);
        }
    } else if (r->out == OUT_JSON || r->out == OUT_CSV) {
        struct evhttp_request *h = bureau_req_take_http(r);
        if (h) {
            size_t n;
            char *body = r->out == OUT_CSV ? report_csv(&r->rep, r->scope, &n)
                                           : report_json(&r->rep, r->scope, &n);
            http_send(r->b->env->http, h, 200,
                      r->out == OUT_CSV ? "text/csv; charset=utf-8"
                                        : "application/json; charset=utf-8",
                      body, n);
            free(body);
        }
    }
    bureau_req_free(r);
}
