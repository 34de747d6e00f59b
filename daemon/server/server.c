/*
 * server: start-up order, the accept path with the max_clients pause, the janitor (all
 * timeouts and shutdown progress in one periodic place, like pgbouncer's janitor and
 * redis' serverCron), signals handled in loop context, and teardown in reverse order.
 */
#include "server/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/followup.h"
#include "common/log.h"
#include "core/dispatch.h"
#include "core/station.h"
#include "admin/admin.h"
#include "reports/bureau.h"
#include "store/schema.h"

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)lis;
    Server *s = arg;
    if (s->shutting_down || s->conns.n >= (size_t)s->cfg.max_clients) {
        s->metrics.conns_refused++;
        evutil_closesocket(fd);
        return;
    }
    evutil_make_socket_nonblocking(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (s->cfg.so_sndbuf_bytes > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s->cfg.so_sndbuf_bytes,
                   sizeof(s->cfg.so_sndbuf_bytes));
    if (!conn_new(&s->conns, fd, sa, salen)) {
        evutil_closesocket(fd);
        return;
    }
    if (s->conns.n >= (size_t)s->cfg.max_clients && !s->listener_paused) {
        log_warn("max_clients (%d) reached: not accepting until a connection closes",
                 s->cfg.max_clients);
        evconnlistener_disable(s->lis);
        s->listener_paused = true;
    }
}

static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    Server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: stop accepting; the janitor retries on its next tick */
    log_warn("accept failed: %s; pausing the listener", evutil_socket_error_to_string(err));
    evconnlistener_disable(lis);
    s->listener_paused = true;
}

static void listener_resume(Server *s)
{
    if (s->listener_paused && !s->shutting_down && s->conns.n < (size_t)s->cfg.max_clients) {
        evconnlistener_enable(s->lis);
        s->listener_paused = false;
    }
}

/* ConnFrameCb: frames mean what the session layer says */
static void conn_frame(void *arg, Conn *c, Envelope *env)
{
    Server *s = arg;
    session_handle(s->sessions, c, env);
}

/* ConnClosedCb: the session's modules forget the conn; a slot may have freed */
static void conn_closed(void *arg, Conn *c)
{
    Server *s = arg;
    session_closed(s->sessions, c);
    listener_resume(s);
}

static bool backends_idle(const Server *s)
{
    return pg_pool_inflight(s->pg) == 0 && rds_inflight(s->rds) == 0;
}

static void shutdown_progress(Server *s, int64_t now)
{
    if (s->conns.n == 0 && backends_idle(s)) {
        log_info("all connections closed and backend work finished; exiting");
        event_base_loopexit(s->base, NULL);
        return;
    }
    if (now >= s->shutdown_deadline_ms) {
        log_warn("shutdown timeout: closing %zu connections with work still in flight", s->conns.n);
        connset_close_all(&s->conns, "shutdown timeout");
        event_base_loopexit(s->base, NULL);
    }
}

static void janitor_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Server *s = arg;
    int64_t now = util_now_ms();
    if (s->janitor_due_ms && now - s->janitor_due_ms > (int64_t)s->metrics.loop_lag_max_ms)
        s->metrics.loop_lag_max_ms = (uint64_t)(now - s->janitor_due_ms);
    s->janitor_due_ms = now + 1000 / JANITOR_HZ;
    connset_tick(&s->conns, now);
    log_limit_flush(now, false); /* counts of rate-limited lines, even once a flood stops */
    listener_resume(s);
    probes_poll(s);
    if (s->shutting_down)
        shutdown_progress(s, now);
}

void server_shutdown(Server *s, const char *why)
{
    if (s->shutting_down)
        return;
    log_info("graceful stop (%s): not accepting; %zu connections draining, up to %d ms", why,
             s->conns.n, s->cfg.shutdown_timeout_ms);
    s->shutting_down = true;
    s->env.stopping = true;
    s->shutdown_deadline_ms = util_now_ms() + s->cfg.shutdown_timeout_ms;
    evconnlistener_disable(s->lis);
    connset_drain(&s->conns);
    shutdown_progress(s, util_now_ms());
}

/* Puts the reloadable keys of s->cfg into force in the modules that copied them. Everything
 * else reads s->cfg when it needs a value. */
static void apply_live(Server *s)
{
    LogLevel l;
    if (log_level_parse(s->cfg.log_level, &l))
        log_level = l;
    rds_set_op_timeout(s->rds, s->cfg.redis_op_timeout_ms);
}

/* SIGHUP: the config is made again exactly as at start (defaults < file < environment <
 * command line); its reloadable keys go into force if the result passes every cross-field
 * check, else nothing changes. */
static void reload(Server *s)
{
    if (!s->config_path[0]) {
        log_info("SIGHUP: no config file to reload");
        return;
    }
    Config fresh, next;
    ConfigReload r;
    char err[512];
    if (!config_load(&fresh, s->config_path, s->nargs, s->args, err, sizeof(err))) {
        log_warn("SIGHUP: keeping the old config: %s", err);
        return;
    }
    if (!config_reload(&s->cfg, &fresh, &next, &r)) {
        log_warn("SIGHUP: keeping the old config: with %s the values in force would be "
                 "invalid: %s",
                 s->config_path, r.err);
        return;
    }
    if (r.restart[0])
        log_warn("SIGHUP: %s changed in %s: not reloadable, the running value%s stay%s until "
                 "a restart",
                 r.restart, s->config_path, strchr(r.restart, ',') ? "s" : "",
                 strchr(r.restart, ',') ? "" : "s");
    if (r.restart[0] && !config_validate(&fresh, err, sizeof(err)))
        log_warn("SIGHUP: a restart with %s would be refused: %s", s->config_path, err);
    s->cfg = next;
    settings_follow_apply(s); /* the admin's settings rows still win over the file */
    apply_live(s);
    log_info("SIGHUP: reloaded %s (changed: %s; log_level %s)", s->config_path,
             r.changed[0] ? r.changed : "nothing", s->cfg.log_level);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    Server *s = arg;
    if (sig == SIGHUP) {
        reload(s);
    } else if (sig == SIGPIPE) {
        /* ignored: write errors arrive as EPIPE on the socket */
    } else if (s->shutting_down) {
        log_warn("second %s: exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
        connset_close_all(&s->conns, "immediate exit");
        event_base_loopexit(s->base, NULL);
    } else {
        server_shutdown(s, sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

static bool write_port_file(const Server *s)
{
    if (!s->cfg.port_file[0])
        return true;
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->cfg.port_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        return false;
    }
    fprintf(f, "proto %d\nhttp %d\n", s->proto_port, http_port(s->http));
    /* rename makes the file appear complete or not at all (memcached's port file) */
    if (fclose(f) != 0 || rename(tmp, s->cfg.port_file) != 0) {
        log_error("cannot write %s: %s", s->cfg.port_file, strerror(errno));
        return false;
    }
    return true;
}

static bool listen_proto(Server *s)
{
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof(port), "%d", s->cfg.listen_port);
    if (evutil_getaddrinfo(s->cfg.listen_addr, port, &hints, &ai) != 0 || !ai) {
        log_error("listen_addr '%s' is not an IP address", s->cfg.listen_addr);
        return false;
    }
    s->lis =
        evconnlistener_new_bind(s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                1024, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!s->lis) {
        log_error("cannot listen on %s:%d: %s", s->cfg.listen_addr, s->cfg.listen_port,
                  strerror(errno));
        return false;
    }
    evconnlistener_set_error_cb(s->lis, accept_error_cb);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&ss, &len);
    s->proto_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return true;
}

/* The database's schema is not the one this build knows: stop serving at once. */
static void schema_refused_cb(void *arg)
{
    Server *s = arg;
    s->exit_code = SCHEMA_EXIT_CODE;
    event_base_loopexit(s->base, NULL);
}

static struct event *add_signal(Server *s, int sig)
{
    struct event *ev = evsignal_new(s->base, sig, signal_cb, s);
    ASSERT(ev && event_add(ev, NULL) == 0);
    return ev;
}

void server_handle_signals(Server *s)
{
    s->sig_term = add_signal(s, SIGTERM);
    s->sig_int = add_signal(s, SIGINT);
    s->sig_hup = add_signal(s, SIGHUP);
    s->sig_pipe = add_signal(s, SIGPIPE);
}

/* The modules, bottom-up: each gets the Env and the modules below it that it needs. */
static void modules_new(Server *s)
{
    s->env = (Env){.base = s->base,
                   .cfg = &s->cfg,
                   .server_id = s->id,
                   .pg = s->pg,
                   .rds = s->rds,
                   .metrics = &s->metrics,
                   .ready = &s->ready,
                   .sessions = s->sessions,
                   .http = s->http,
                   .conns = &s->conns};
    keys_init(&s->env.keys, s->cfg.county_code);
    s->dispatch = dispatch_new(&s->env);
    s->station = station_new(&s->env, s->dispatch);
    s->bureau = bureau_new(&s->env, s->dispatch);
    s->admin = admin_new(&s->env, s->dispatch, s->station);
    settings_follow_start(s);
    s->followups = followups_new(&s->env, s->bureau);
    probes_install(s);
}

bool server_init(Server *s, const Config *cfg, const char *config_path)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    snprintf(s->config_path, sizeof(s->config_path), "%s", config_path ? config_path : "");
    if (cfg->server_id[0]) {
        snprintf(s->id, sizeof(s->id), "%s", cfg->server_id);
    } else {
        char host[48] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(s->id, sizeof(s->id), "%s-%d", host, (int)getpid());
    }
    s->base = event_base_new();
    if (!s->base) {
        log_error("event_base_new failed");
        return false;
    }
    /* host names become addresses now, before the loop runs: libpq and hiredis would call
     * getaddrinfo() on the loop at every (re)connect. s->cfg keeps what was configured. */
    Config addr = *cfg;
    char note[512], err[512];
    if (!config_resolve_hosts(&addr, note, sizeof(note), err, sizeof(err))) {
        log_error("%s", err);
        return false;
    }
    if (note[0])
        log_info("resolved at start (a restart resolves again): %s", note);
    s->pg = pg_pool_new(s->base, addr.pg_conninfo, cfg->pg_pool_size, cfg->pg_query_timeout_ms,
                        cfg->pg_max_queue);
    s->rds = rds_new(s->base, addr.redis_host, cfg->redis_port, cfg->redis_op_timeout_ms,
                     cfg->redis_max_inflight, cfg->redis_user, cfg->redis_password_file);
    if (!s->pg || !s->rds) {
        log_error("cannot set up the PostgreSQL pool or the Redis link (see above)");
        return false;
    }
    pg_pool_set_breaker(s->pg, cfg->pg_stall_ms, PG_PROBE_MS);
    s->schema = schema_check_new(s->base, s->pg, addr.pg_conninfo, schema_refused_cb, s);
    s->sessions = sessions_new(s->pg, &s->cfg, s->id, &s->metrics);
    if (!tls_new(&s->cfg, &s->metrics, &s->tls, err, sizeof(err))) {
        log_error("%s", err);
        return false;
    }
    if (!connset_init(&s->conns, s->base, &s->cfg, &s->metrics, conn_frame, conn_closed, s) ||
        !(s->http = http_new(s->base, &s->cfg, &s->metrics, s->tls)))
        return false;
    s->conns.tls = s->tls;
    modules_new(s);
    if (!listen_proto(s))
        return false;
    s->janitor = event_new(s->base, -1, EV_PERSIST, janitor_cb, s);
    struct timeval tv = {0, 1000000 / JANITOR_HZ};
    event_add(s->janitor, &tv);
    s->janitor_due_ms = util_now_ms() + 1000 / JANITOR_HZ;
    if (!write_port_file(s))
        return false;
    log_info("dispatchd %s listening: protocol %s:%d, HTTP%s %s:%d (/healthz /readyz /metrics)%s",
             s->id, cfg->listen_addr, s->proto_port, s->tls ? "S" : "", cfg->http_addr,
             http_port(s->http), s->tls ? ", TLS" : ", plaintext (loopback)");
    return true;
}

void server_keep_args(Server *s, int nargs, char *const *args)
{
    s->args = xcalloc((size_t)nargs + 1, sizeof(char *));
    for (int i = 0; i < nargs; i++)
        s->args[i] = xstrdup(args[i]);
    s->nargs = nargs;
}

int server_run(Server *s)
{
    event_base_dispatch(s->base);
    return s->exit_code;
}

void server_free(Server *s)
{
    log_limit_flush(util_now_ms(), true);
    connset_close_all(&s->conns, "exit");
    http_free(s->http);
    s->http = NULL;
    if (s->lis)
        evconnlistener_free(s->lis);
    dispatch_stop(s->dispatch); /* callbacks fired by the frees below must not start work */
    station_stop(s->station);
    schema_check_free(s->schema);
    rds_free(s->rds);
    pg_pool_free(s->pg);
    station_free(s->station);
    followups_free(s->followups);
    bureau_free(s->bureau);
    admin_free(s->admin);
    dispatch_free(s->dispatch);
    s->rds = NULL;
    s->pg = NULL;
    connset_free(&s->conns);
    sessions_free(s->sessions);
    tls_free(s->tls); /* SSLs still waiting for libevent's finalizers hold their own ref */
    struct event *evs[] = {s->janitor, s->sig_term, s->sig_int, s->sig_hup, s->sig_pipe};
    for (size_t i = 0; i < ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    for (int i = 0; i < s->nargs; i++)
        free(s->args[i]);
    free(s->args);
    if (s->cfg.port_file[0])
        unlink(s->cfg.port_file);
    if (s->base)
        event_base_free(s->base);
    memset(s, 0, sizeof(*s));
}
