/*
 * fuzz_http: an arbitrary request URI through what the daemon does with it — evhttp's URI
 * parse (as evhttp_parse_request_line does it, EVHTTP_URI_NONCONFORMANT), the bureau
 * door's route by path, its strict query-string parsing (bureau_http_parse_query) and the
 * request's check against the fuzz county's directory (bureau_req_check_at). Errors are
 * answered on a protocol connection so their text can be checked (fuzz_check_error);
 * format=json|csv switches a request to HTTP, whose answer then goes nowhere. Checked:
 * a request is answered at most once, never after it was accepted, and what was accepted is
 * within the documented bounds; no reference is left behind.
 *
 * Input: the URI (cut at the first NUL).
 */
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_env.h"
#include "reports/bureau_int.h"

typedef struct {
    size_t n;
    int code;
} Replies;

static void on_reply(const Envelope *env, void *arg)
{
    Replies *r = arg;
    FUZZ_ASSERT(env->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR, "a %s instead of an Error",
                frame_body_name(env));
    r->n++;
    r->code = (int)env->error->code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0; /* evhttp's header limit is 16 KiB; the request line is far shorter */
    static Conn *c;
    static Bureau b;
    Fuzz *f = fuzz_env();
    if (!c) {
        c = fuzz_conn(f, CARELINE__V1__ROLE__ROLE_BUREAU, 0, NULL);
        b.env = &f->env;
    }
    char *s = fuzz_strndup(data, size);
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(s, EVHTTP_URI_NONCONFORMANT);
    free(s);
    if (!uri)
        return 0; /* evhttp answers 400 itself */
    const char *path = evhttp_uri_get_path(uri);
    int scope = path ? bureau_http_route_scope(path) : -1;
    if (scope < 0) { /* the router's 404 (net/http.c) */
        evhttp_uri_free(uri);
        return 0;
    }
    Req *r = bureau_req_new(&b, OUT_PROTO);
    r->scope = (Scope)scope;
    r->c = c;
    conn_ref(c);
    conn_inflight_begin(c);
    BureauDates d = {.fmt_given = false};
    Replies rep = {0, 0};
    bool ok = bureau_http_parse_query(r, evhttp_uri_get_query(uri), &d);
    evhttp_uri_free(uri);
    if (ok) {
        FUZZ_ASSERT(strlen(d.from) < 16 && strlen(d.to) < 16 && strlen(d.day) < 16, "dates");
        FUZZ_ASSERT(r->covered >= -1 && r->covered <= 1, "covered %d", r->covered);
        ok = bureau_req_check_at(r, f->snap, f->today, d.from, d.to, d.day);
    }
    fuzz_replies(c, on_reply, &rep);
    FUZZ_ASSERT(rep.n <= 1, "answered %zu times", rep.n);
    if (ok) {
        FUZZ_ASSERT(rep.n == 0, "an accepted request was answered already");
        FUZZ_ASSERT(r->scope == (Scope)scope, "the scope changed");
        FUZZ_ASSERT(!r->town[0] ||
                        (strlen(r->town) == 12 && bureau_town_index(f->snap, r->town) >= 0 &&
                         bureau_in_county(r->town, f->cfg.county_code)),
                    "town '%s' accepted", r->town);
        FUZZ_ASSERT(r->from <= r->to && r->to - r->from + 1 <= BUREAU_MAX_RANGE_DAYS,
                    "range %d..%d accepted", (int)r->from, (int)r->to);
        FUZZ_ASSERT(r->target == 0 || (r->target > 0 && r->target <= 1), "target %g", r->target);
        FUZZ_ASSERT(r->out == OUT_PROTO || r->out == OUT_JSON || r->out == OUT_CSV, "out %d",
                    (int)r->out);
        bureau_req_free(r);
    } else if (rep.n == 1) {
        FUZZ_ASSERT(rep.code == CARELINE__V1__ERROR_CODE__INVALID_ARGUMENT, "error %d", rep.code);
    }
    FUZZ_ASSERT(c->inflight == 0 && c->refs == 2, "inflight %u refs %u left", c->inflight, c->refs);
    return 0;
}
