/*
 * bureau_http: the HTTP door. Each /v1/... path maps to a coverage scope, the method it
 * takes and the query parameters it accepts; a request is answered 405 for the wrong
 * method, then authenticated (bureau_auth.c), then its query string is parsed strictly (an
 * unknown, empty or malformed parameter is a 400 naming it) into the same Req the protocol
 * door fills, and checked and started the same way.
 */
#include "reports/bureau_int.h"

#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    P_TOWN = 1 << 0,
    P_FROM = 1 << 1,
    P_TO = 1 << 2,
    P_COVERED = 1 << 3,
    P_TARGET = 1 << 4,
    P_DAY = 1 << 5,
    P_FORMAT = 1 << 6,
};

typedef struct {
    const char *path;
    Scope scope;
    unsigned params; /* P_* accepted */
    bool post;       /* POST only (else GET/HEAD only) */
} HttpRoute;

static const HttpRoute http_routes[] = {
    {"/v1/coverage", SCOPE(COUNTY), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/coverage/towns", SCOPE(TOWNS), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/coverage/villages", SCOPE(VILLAGES), P_TOWN | P_COVERED | P_FORMAT, false},
    {"/v1/coverage/history", SCOPE(HISTORY), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/plan", SCOPE(PLAN), P_TOWN | P_TARGET | P_FORMAT, false},
    {"/v1/realized", SCOPE(REALIZED), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/unmet", SCOPE(UNMET), P_TOWN | P_FROM | P_TO | P_FORMAT, false},
    {"/v1/coverage/snapshot", SCOPE(SNAPSHOT), P_DAY | P_FORMAT, true},
};

static const HttpRoute *route_of(const char *path)
{
    for (size_t i = 0; i < ARRAY_LEN(http_routes); i++)
        if (strcmp(http_routes[i].path, path) == 0)
            return &http_routes[i];
    return NULL;
}

typedef BureauDates Dates;

/* Takes one parameter into r (or dates); NULL if it is fine, else why it is not. */
static const char *take_param(Req *r, const HttpRoute *rt, Dates *d, const char *name,
                              const char *v)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"town", P_TOWN},       {"from", P_FROM},     {"to", P_TO},
                 {"covered", P_COVERED}, {"target", P_TARGET}, {"day", P_DAY},
                 {"format", P_FORMAT}};
    unsigned bit = 0;
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(names[i].name, name) == 0)
            bit = names[i].bit;
    if (!(bit & rt->params))
        return "is not a parameter of this endpoint";
    if (strlen(v) > 32)
        return "is too long";
    switch (bit) {
    case P_TOWN:
        snprintf(r->town, sizeof(r->town), "%.*s", (int)sizeof(r->town) - 1, v);
        return strlen(v) >= sizeof(r->town) || !v[0] ? "must be a 12-digit town code" : NULL;
    case P_FROM:
        snprintf(d->from, sizeof(d->from), "%.*s", (int)sizeof(d->from) - 1, v);
        return !v[0] ? "must be a date YYYY-MM-DD" : NULL;
    case P_TO:
        snprintf(d->to, sizeof(d->to), "%.*s", (int)sizeof(d->to) - 1, v);
        return !v[0] ? "must be a date YYYY-MM-DD" : NULL;
    case P_DAY:
        snprintf(d->day, sizeof(d->day), "%.*s", (int)sizeof(d->day) - 1, v);
        return !v[0] ? "must be a date YYYY-MM-DD" : NULL;
    case P_COVERED:
        if (strcmp(v, "true") == 0)
            r->covered = 1;
        else if (strcmp(v, "false") == 0)
            r->covered = 0;
        else
            return "must be true or false";
        return NULL;
    case P_TARGET: {
        char *end;
        r->target = strtod(v, &end);
        return !v[0] || *end || !(r->target > 0 && r->target <= 1)
                   ? "must be a number in (0, 1], e.g. 0.95"
                   : NULL;
    }
    default:
        ASSERT(bit == P_FORMAT); /* every accepted bit has its case */
        d->fmt_given = true;
        if (strcmp(v, "csv") == 0)
            r->out = OUT_CSV;
        else if (strcmp(v, "json") == 0)
            r->out = OUT_JSON;
        else
            return "must be json or csv";
        return NULL;
    }
}

/* Takes the query string qs (NULL = none) into r and d; false after answering r. */
static bool parse_query(Req *r, const HttpRoute *rt, const char *qs, Dates *d)
{
    struct evkeyvalq kv;
    kv.tqh_first = NULL; /* TAILQ_INIT without sys/queue.h */
    kv.tqh_last = &kv.tqh_first;
    if (qs && evhttp_parse_query_str(qs, &kv) != 0) {
        evhttp_clear_headers(&kv);
        bureau_req_fail(r, ERRC(INVALID_ARGUMENT), "query",
                        "malformed query string (expected name=value pairs joined by &)");
        return false;
    }
    for (struct evkeyval *e = kv.tqh_first; e; e = e->next.tqe_next) {
        const char *why = take_param(r, rt, d, e->key, e->value);
        if (why) {
            char key[40];
            snprintf(key, sizeof(key), "%s", e->key);
            evhttp_clear_headers(&kv);
            bureau_req_fail(r, ERRC(INVALID_ARGUMENT), key, "parameter '%s' %s", key, why);
            return false;
        }
    }
    evhttp_clear_headers(&kv);
    return true;
}

/* After auth: parses the query string and starts the work. */
static void http_continue(Req *r, const void *arg, const AuthAnswer *a)
{
    (void)a;
    const HttpRoute *rt = arg;
    struct evhttp_request *h = r->hreq;
    if (!h) {
        bureau_req_free(r);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(h);
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    Dates d = {.fmt_given = false};
    if (!parse_query(r, rt, qs, &d))
        return;
    if (!d.fmt_given) {
        const char *acc = evhttp_find_header(evhttp_request_get_input_headers(h), "Accept");
        if (acc && strstr(acc, "text/csv"))
            r->out = OUT_CSV;
    }
    if (bureau_req_check(r, d.from, d.to, d.day))
        bureau_req_start(r);
}

static void http_entry(void *arg, struct evhttp_request *h)
{
    Bureau *b = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(h);
    const HttpRoute *rt = route_of(evhttp_uri_get_path(uri));
    ASSERT(rt); /* only our paths are routed here */
    enum evhttp_cmd_type cmd = evhttp_request_get_command(h);
    bool post = cmd == EVHTTP_REQ_POST;
    if (post != rt->post) {
        evhttp_add_header(evhttp_request_get_output_headers(h), "Allow",
                          rt->post ? "POST" : "GET, HEAD");
        bureau_http_error(b->env->http, h, 405, "METHOD_NOT_ALLOWED", NULL,
                          rt->post ? "use POST for this endpoint" : "use GET for this endpoint");
        return;
    }
    Req *r = bureau_req_new(b, OUT_JSON);
    r->scope = rt->scope;
    bureau_req_watch_http(r, h);
    bureau_auth_check(r, BUREAU_READERS, "read coverage figures", http_continue, rt);
}

void bureau_http_install(Bureau *b)
{
    for (size_t i = 0; i < ARRAY_LEN(http_routes); i++)
        http_route(b->env->http, http_routes[i].path, http_entry, b);
}

/* ---- for the fuzz harness (tests/fuzz/fuzz_http.c) ---------------------------------------- */

int bureau_http_route_scope(const char *path)
{
    const HttpRoute *rt = route_of(path);
    return rt ? (int)rt->scope : -1;
}

bool bureau_http_parse_query(Req *r, const char *qs, BureauDates *d)
{
    const HttpRoute *rt = NULL;
    for (size_t i = 0; !rt && i < ARRAY_LEN(http_routes); i++)
        if (http_routes[i].scope == r->scope)
            rt = &http_routes[i];
    ASSERT(rt); /* r->scope came from bureau_http_route_scope */
    return parse_query(r, rt, qs, d);
}
