/*
 * admin_run: one admin request's life after its door: who asks is added to the document,
 * careline_admin(jsonb) runs it in one transaction, then the daemon does what only it can
 * (a new token's secret, a retired station's offers sent on) and answers once, as an
 * AdminResult frame or as JSON over HTTP.
 */
#include "admin/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/auth.h"
#include "common/log.h"
#include "net/http.h"
#include "reports/bureau.h"
#include "store/pg.h"

#define ERRC(x) CARELINE__V1__ERROR_CODE__##x

static const char *const change_ops[] = {
    "resident.register", "resident.update", "resident.deactivate", "resident.import",
    "station.create",    "station.update",  "station.retire",      "station.import",
    "token.issue",       "token.revoke",    "setting.set",
};

bool admin_op_changes(const char *op)
{
    for (size_t i = 0; i < ARRAY_LEN(change_ops); i++)
        if (strcmp(op, change_ops[i]) == 0)
            return true;
    return false;
}

static void http_gone(void *arg)
{
    AdminReq *r = arg;
    r->hreq = NULL;
}

AdminReq *admin_req_new(Admin *a, const char *op, Conn *c, uint64_t seq,
                        struct evhttp_request *hreq)
{
    AdminReq *r = xcalloc(1, sizeof(*r));
    r->a = a;
    snprintf(r->op, sizeof(r->op), "%s", op);
    r->doc = json_object();
    json_object_set_new(r->doc, "op", json_string(op));
    if (c) {
        r->c = c;
        r->seq = seq;
        conn_ref(c);
        conn_inflight_begin(c);
    } else {
        r->http = true;
        r->hreq = hreq;
        if (!http_watch_close(a->env->http, hreq, http_gone, r))
            r->hreq = NULL;
    }
    return r;
}

static void req_free(AdminReq *r)
{
    if (r->c) {
        conn_inflight_end(r->c);
        conn_unref(r->c);
    }
    if (r->hreq)
        http_watch_close(r->a->env->http, r->hreq, NULL, NULL);
    json_decref(r->doc);
    explicit_bzero(r->secret, sizeof(r->secret));
    free(r);
}

static const char *code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, code);
    return v ? v->name : "INTERNAL";
}

static int code_of(const char *name)
{
    const ProtobufCEnumValue *v = name ? protobuf_c_enum_descriptor_get_value_by_name(
                                             &careline__v1__error_code__descriptor, name)
                                       : NULL;
    return v ? v->value : ERRC(INTERNAL);
}

/* Sends o on r's HTTP request, detached first (the close watch must not outlive r). */
static void http_json(AdminReq *r, int status, json_t *o)
{
    struct evhttp_request *h = r->hreq;
    http_watch_close(r->a->env->http, h, NULL, NULL);
    r->hreq = NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ASSERT(s);
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(h), "WWW-Authenticate",
                          "Bearer realm=\"careline\"");
    else if (status == 503)
        evhttp_add_header(evhttp_request_get_output_headers(h), "Retry-After", "1");
    http_send(r->a->env->http, h, status, "application/json", s, strlen(s));
    free(s);
}

void admin_req_send_json(AdminReq *r, int status, json_t *o)
{
    if (r->hreq)
        http_json(r, status, o);
    req_free(r);
}

void admin_req_fail(AdminReq *r, int code, const char *field, const char *msg)
{
    if (r->c && conn_alive(r->c)) {
        conn_send_error(r->c, r->seq, code, false, "%s", msg);
    } else if (r->hreq) {
        json_t *e = json_pack("{s:s,s:s}", "code", code_name(code), "message", msg);
        if (field)
            json_object_set_new(e, "field", json_string(field));
        json_t *o = json_pack("{s:o}", "error", e);
        http_json(r, bureau_http_status(code), o);
        json_decref(o);
    }
    req_free(r);
}

/* ---- the answer ------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void reply_proto(AdminReq *r, const json_t *res, int code)
{
    Careline__V1__AdminResult m = CARELINE__V1__ADMIN_RESULT__INIT;
    m.op = r->op;
    m.code = code;
    m.message = (char *)jstr(res, "message");
    m.object_id = json_integer_value(json_object_get(res, "id"));
    m.audit_id = json_integer_value(json_object_get(res, "audit_id"));
    m.secret = r->secret;
    const json_t *errs = json_object_get(res, "errors");
    size_t ne = json_array_size(errs);
    Careline__V1__AdminFieldError *fe = xcalloc(ne + 1, sizeof(*fe));
    m.errors = xcalloc(ne + 1, sizeof(*m.errors));
    for (size_t i = 0; i < ne; i++) {
        const json_t *e = json_array_get(errs, i);
        careline__v1__admin_field_error__init(&fe[i]);
        fe[i].field = (char *)jstr(e, "field");
        fe[i].message = (char *)jstr(e, "message");
        fe[i].record = (uint32_t)json_integer_value(json_object_get(e, "record"));
        m.errors[i] = &fe[i];
    }
    m.n_errors = ne;
    const json_t *cols = json_object_get(res, "columns"), *rows = json_object_get(res, "rows");
    m.n_columns = json_array_size(cols);
    m.columns = xcalloc(m.n_columns + 1, sizeof(char *));
    for (size_t i = 0; i < m.n_columns; i++)
        m.columns[i] = (char *)json_string_value(json_array_get(cols, i));
    m.n_rows = json_array_size(rows);
    Careline__V1__AdminRow *rw = xcalloc(m.n_rows + 1, sizeof(*rw));
    m.rows = xcalloc(m.n_rows + 1, sizeof(*m.rows));
    for (size_t i = 0; i < m.n_rows; i++) {
        const json_t *row = json_array_get(rows, i);
        careline__v1__admin_row__init(&rw[i]);
        rw[i].n_values = json_array_size(row);
        rw[i].values = xcalloc(rw[i].n_values + 1, sizeof(char *));
        for (size_t j = 0; j < rw[i].n_values; j++) {
            const char *v = json_string_value(json_array_get(row, j));
            rw[i].values[j] = (char *)(v ? v : "");
        }
        m.rows[i] = &rw[i];
    }
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = r->seq;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_ADMIN_RESULT;
    env.admin_result = &m;
    conn_send(r->c, &env);
    for (size_t i = 0; i < m.n_rows; i++)
        free(rw[i].values);
    free(rw);
    free(m.rows);
    free(m.columns);
    free(fe);
    free(m.errors);
}

/* {"op", "message", "columns", "rows": [{col: value}], "id", "audit_id", "secret"}, or for a
 * refusal {"error": {"code", "message", "field", "fields": [{field, message, record}]}}. */
static void reply_http(AdminReq *r, json_t *res, int code)
{
    json_t *o;
    if (code != 0) {
        json_t *errs = json_object_get(res, "errors");
        json_t *e = json_pack("{s:s,s:s,s:O}", "code", code_name(code), "message",
                              jstr(res, "message"), "fields", errs ? errs : json_array());
        if (json_array_size(errs) > 0)
            json_object_set(e, "field", json_object_get(json_array_get(errs, 0), "field"));
        o = json_pack("{s:o}", "error", e);
        http_json(r, bureau_http_status(code), o);
        json_decref(o);
        return;
    }
    const json_t *cols = json_object_get(res, "columns"), *rows = json_object_get(res, "rows");
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *obj = json_object();
        const json_t *row = json_array_get(rows, i);
        for (size_t j = 0; j < json_array_size(cols); j++)
            json_object_set(obj, json_string_value(json_array_get(cols, j)),
                            json_array_get(row, j));
        json_array_append_new(out, obj);
    }
    o = json_pack("{s:s,s:O,s:o}", "op", r->op, "columns", cols ? cols : json_array(), "rows", out);
    for (const char *const *k = (const char *const[]){"message", "id", "audit_id", NULL}; *k; k++)
        if (json_object_get(res, *k))
            json_object_set(o, *k, json_object_get(res, *k));
    if (r->secret[0])
        json_object_set_new(o, "secret", json_string(r->secret));
    http_json(r, 200, o);
    json_decref(o);
}

/* A retired station's offers: capacity back, on to the next station, its consoles told. */
static void redispatch(AdminReq *r, const json_t *res)
{
    const json_t *moved = json_object_get(res, "redispatch");
    for (size_t i = 0; i < json_array_size(moved); i++) {
        const json_t *m = json_array_get(moved, i);
        int64_t req = json_integer_value(json_object_get(m, "request_id"));
        int attempt = (int)json_integer_value(json_object_get(m, "attempt"));
        dispatch_release(r->a->dispatch, req, attempt, "rejected");
        dispatch_redispatch(r->a->dispatch, req);
        /* its consoles drop it: a change on the station's stream */
        station_withdrawn(r->a->st, json_integer_value(json_object_get(res, "id")), req, attempt,
                          CARELINE__V1__JOB_STATE__JOB_REJECTED);
    }
}

static void run_done(PGresult *res, const char *err, void *arg)
{
    AdminReq *r = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_limited(LOG_WARN, "admin: %s failed: %s", r->op, PG_ERRLINE(res, err));
        admin_req_fail(r, res ? ERRC(INTERNAL) : ERRC(UNAVAILABLE), NULL,
                       res ? "the database refused the operation (logged on the server)"
                           : "the database did not answer; nothing was changed, retry later");
        return;
    }
    json_error_t jerr;
    json_t *out = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
    if (!json_is_object(out)) {
        json_decref(out);
        log_error("admin: %s: careline_admin answered no JSON object", r->op);
        admin_req_fail(r, ERRC(INTERNAL), NULL, "server error (logged on the server)");
        return;
    }
    const char *cname = jstr(out, "code");
    int code = strcmp(cname, "OK") == 0 ? 0 : code_of(cname);
    if (code == ERRC(INTERNAL)) { /* not a code careline_admin answers */
        json_decref(out);
        log_error("admin: %s: careline_admin answered code '%s'", r->op, cname);
        admin_req_fail(r, ERRC(INTERNAL), NULL, "server error (logged on the server)");
        return;
    }
    if (code == 0 && strcmp(r->op, "station.retire") == 0)
        redispatch(r, out);
    if (code != 0)
        explicit_bzero(r->secret, sizeof(r->secret)); /* no token was made */
    if (code == 0 && admin_op_changes(r->op) && !json_is_true(json_object_get(r->doc, "dry_run")))
        log_info("admin: %s by '%s': object %lld (audit %lld)", r->op,
                 json_string_value(json_object_get(r->doc, "actor")),
                 (long long)json_integer_value(json_object_get(out, "id")),
                 (long long)json_integer_value(json_object_get(out, "audit_id")));
    if (r->c && conn_alive(r->c))
        reply_proto(r, out, code);
    else if (r->hreq)
        reply_http(r, out, code);
    json_decref(out);
    req_free(r);
}

static void add_phone_hash(AdminReq *r, json_t *map, const json_t *fields)
{
    const char *phone = json_string_value(json_object_get(fields, "phone"));
    char norm[24], hex[65];
    if (phone && dispatch_phone_hash(r->a->dispatch, phone, norm, hex))
        json_object_set_new(map, norm, json_string(hex));
}

/* Residents carry their number's HMAC (under the key the database never sees), so a
 * follow-up of their earlier calls is linked when they are registered (sql/functions/
 * followup.sql's trigger). The daemon computes it; a client cannot send one. */
static void add_phone_hashes(AdminReq *r)
{
    if (strncmp(r->op, "resident.", 9) != 0)
        return;
    json_t *map = json_object();
    add_phone_hash(r, map, json_object_get(r->doc, "args"));
    const json_t *recs = json_object_get(r->doc, "records");
    for (size_t i = 0; i < json_array_size(recs); i++)
        add_phone_hash(r, map, json_array_get(recs, i));
    json_object_set_new(r->doc, "phone_hashes", map);
}

void admin_req_run(AdminReq *r, int64_t principal_id, const char *principal)
{
    add_phone_hashes(r);
    json_object_set_new(r->doc, "principal_id", json_integer(principal_id));
    json_object_set_new(r->doc, "actor", json_string(principal));
    if (strcmp(r->op, "token.issue") == 0) {
        uint8_t raw[24];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            admin_req_fail(r, ERRC(INTERNAL), NULL, "no random bytes for a token; retry");
            return;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(r->secret + 2 * i, 3, "%02x", raw[i]);
        explicit_bzero(raw, sizeof(raw));
        char hex[2 * AUTH_HASH_LEN + 1];
        auth_token_hash_hex(r->secret, hex);
        json_t *args = json_object_get(r->doc, "args");
        if (json_is_object(args))
            json_object_set_new(args, "token_hash", json_string(hex));
    }
    char *doc = json_dumps(r->doc, JSON_COMPACT);
    ASSERT(doc);
    const char *p[] = {doc};
    bool ok = pg_query(r->a->env->pg, "SELECT careline_admin($1::jsonb)::text", 1, p, run_done, r);
    free(doc);
    if (!ok)
        admin_req_fail(r, ERRC(OVERLOADED), NULL, "too many database requests waiting; retry");
}
