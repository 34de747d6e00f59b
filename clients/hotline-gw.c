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
#include "gw_config.h"
#include "gw_front.h"
#include "gw_queue.h"
#include "common/log.h"

#define GW_VERSION "0.1.0"

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
                gw_waiter_answer(w, 200, OUT_SPOOLED, GW_SAY_SPOOLED, NULL);
            else
                gw_waiter_answer(w, 200, OUT_UNAVAILABLE,
                                 op->plan == GW_PLAN_STATUS ? GW_SAY_STATUS_UNAVAILABLE
                                                            : GW_SAY_CANCEL_UNAVAILABLE,
                                 NULL);
        }
    }
    gw_maybe_finish(g);
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
        const char *source = env ? "CARELINE_GW_WEBHOOK_SECRET" : g->cfg.webhook_secret_file;
        g->secret = env ? xstrdup(env) : NULL;
        if (!g->secret && g->cfg.webhook_secret_file[0])
            g->secret = read_secret_file(g->cfg.webhook_secret_file, err, sizeof(err));
        if (g->secret && !gw_secret_check(g->secret, source, err, sizeof(err))) {
            fprintf(stderr, "hotline-gw: %s\n", err);
            memset(g->secret, 0, strlen(g->secret));
            free(g->secret);
            free(token);
            return 2;
        }
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
    g->pump_timer = evtimer_new(g->base, gw_pump_timer_cb, g);
    TlsClientOpts tls_opts = {.ca_file = g->cfg.tls_ca_file,
                              .cert_file = g->cfg.tls_cert_file,
                              .key_file = g->cfg.tls_key_file,
                              .plaintext = g->cfg.daemon_plaintext != 0};
    if (!tlsc_new(&tls_opts, g->cfg.daemon_host, &g->tls, err, sizeof(err))) {
        fprintf(stderr, "hotline-gw: %s\n", err);
        memset(token, 0, strlen(token));
        free(token);
        return 2;
    }
    g->link = gw_link_new(g->base, g->cfg.daemon_host, g->cfg.daemon_port, g->tls, token,
                          g->cfg.reconnect_max_ms, gw_on_link_up, g);
    memset(token, 0, strlen(token));
    free(token);
    /* the spooled calls go first, in their order */
    for (size_t i = 0; i < gw_spool_count(g->spool); i++) {
        const GwSpoolRec *r = gw_spool_at(g->spool, i);
        json_t *p = json_loads(r->payload, 0, NULL);
        const char *key = p ? json_string_value(json_object_get(p, "key")) : NULL;
        Op *op = gw_op_enqueue(g, GW_PLAN_SUBMIT, key ? key : "?");
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
        bufferevent_setcb(g->in, gw_stdin_read_cb, NULL, gw_stdin_event_cb, g);
        struct timeval tv = {g->cfg.answer_timeout_ms / 1000,
                             (g->cfg.answer_timeout_ms % 1000) * 1000};
        event_base_once(g->base, -1, EV_TIMEOUT, gw_stdin_start_cb, g, &tv);
    } else if (!gw_http_start(g, err, sizeof(err))) {
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
        gw_op_free(op);
        op = next;
    }
    if (g->in)
        bufferevent_free(g->in);
    if (g->http)
        evhttp_free(g->http);
    gw_link_free(g->link);
    tlsc_free(g->tls);
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
