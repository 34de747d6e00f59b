/*
 * gw_front: the webhook and the stdio front end of hotline-gw. A webhook is checked in
 * the order that costs least to a forger: content type, size, signature and timestamp,
 * replay, and only then the JSON; every refusal is counted by reason for /metrics.
 */
#include "gw_front.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"

/* ---- HTTP ---- */

static void http_bad(Gw *g, struct evhttp_request *req, int status, BadReason r, const char *msg)
{
    g->m.bad[r]++;
    log_info("webhook refused (%d %s): %s", status, gw_bad_names[r], msg);
    json_t *j = json_pack("{s:s, s:s}", "error", gw_bad_names[r], "reason", msg);
    gw_send_json(req, status, j);
    json_decref(j);
}

static void metrics_page(Gw *g, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "# TYPE hotline_gw_calls_total counter\n");
    for (int i = 0; i < OUT__N; i++)
        evbuffer_add_printf(b, "hotline_gw_calls_total{outcome=\"%s\"} %llu\n", gw_outcome_names[i],
                            (unsigned long long)g->m.calls[i]);
    evbuffer_add_printf(b, "# TYPE hotline_gw_bad_requests_total counter\n");
    for (int i = 0; i < BAD__N; i++)
        evbuffer_add_printf(b, "hotline_gw_bad_requests_total{reason=\"%s\"} %llu\n",
                            gw_bad_names[i], (unsigned long long)g->m.bad[i]);
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
    gw_take_call(g, &call, req);
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
        gw_send_json(req, 200, j);
        json_decref(j);
    } else if (path && !strcmp(path, "/metrics") && cmd == EVHTTP_REQ_GET) {
        metrics_page(g, req);
    } else {
        http_bad(g, req, 404, BAD_NOT_FOUND, "no such path");
    }
}

bool gw_http_start(Gw *g, char *err, size_t errlen)
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

/* ---- stdio ---- */

static void stdio_bad(Gw *g, BadReason r, const char *msg)
{
    g->m.bad[r]++;
    json_t *j = json_pack("{s:s, s:s}", "error", gw_bad_names[r], "reason", msg);
    gw_write_line(j);
    json_decref(j);
}

void gw_stdin_read_cb(struct bufferevent *bev, void *arg)
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
                gw_take_call(g, &call, NULL);
            else
                stdio_bad(g, !strcmp(field, "body") ? BAD_JSON : BAD_FIELD, msg);
        }
        free(line);
    }
}

void gw_stdin_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    Gw *g = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        gw_stdin_read_cb(bev, g);
        g->stdin_eof = true;
        bufferevent_disable(bev, EV_READ);
        gw_maybe_finish(g);
    }
}
