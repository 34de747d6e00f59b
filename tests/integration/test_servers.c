/*
 * test_servers: two dispatchd servers in one process, each on its own event base and thread,
 * against the same PostgreSQL and Redis. They must not share anything mutable: each answers
 * with its own server id, serves every route it installed, and counts only its own traffic
 * in /metrics. With process-wide routes or counters the figures below would be summed (or a
 * route would answer for the wrong server).
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/config.h"
#include "common/log.h"
#include "itest.h"
#include "server/server.h"
#include "t.h"

#define BODY(x) CARELINE__V1__ENVELOPE__BODY_##x

typedef struct {
    Server s;
    pthread_t thread;
    int rc;
} Node;

static Node nodes[2]; /* a Server must not move once initialised */

static void *node_loop(void *arg)
{
    Node *n = arg;
    n->rc = server_run(&n->s);
    return NULL;
}

static void set(Config *cfg, const char *key, const char *value)
{
    char err[256];
    if (!config_set(cfg, key, value, "test", err, sizeof(err)))
        t_fail(__FILE__, __LINE__, "config %s: %s", key, err);
}

static void node_start(Node *n, const char *id)
{
    Config cfg;
    config_defaults(&cfg);
    set(&cfg, "listen_port", "0");
    set(&cfg, "http_port", "0");
    set(&cfg, "server_id", id);
    set(&cfg, "pg_conninfo", t_env("CARELINE_APP_CONNINFO"));
    set(&cfg, "redis_host", t_env("CARELINE_REDIS_HOST"));
    set(&cfg, "redis_port", t_env("CARELINE_REDIS_PORT"));
    set(&cfg, "redis_user", t_env("CARELINE_REDIS_USER"));
    set(&cfg, "redis_password_file", t_env("CARELINE_REDIS_PASSWORD_FILE"));
    set(&cfg, "phone_hash_key_file", t_env("CARELINE_PHONE_HASH_KEY_FILE"));
    set(&cfg, "allow_plaintext_loopback", "1"); /* no certificate: plaintext on loopback */
    char err[256];
    if (!config_validate(&cfg, err, sizeof(err)))
        t_fail(__FILE__, __LINE__, "config: %s", err);
    T_ASSERT(server_init(&n->s, &cfg, NULL));
    T_EQ_INT(pthread_create(&n->thread, NULL, node_loop, n), 0);
}

/* Runs on the node's own loop thread (event_base_once is thread-safe once
 * evthread_use_pthreads is on), as SIGTERM would. */
static void shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    server_shutdown(arg, "test");
}

static void node_stop(Node *n)
{
    struct timeval now = {0, 0};
    T_EQ_INT(event_base_once(n->s.base, -1, EV_TIMEOUT, shutdown_cb, &n->s, &now), 0);
    T_EQ_INT(pthread_join(n->thread, NULL), 0);
    T_EQ_INT(n->rc, 0);
    server_free(&n->s);
}

static Daemon as_daemon(const Node *n)
{
    Daemon d = {0};
    d.proto_port = n->s.proto_port;
    d.http_port = http_port(n->s.http);
    return d;
}

static void wait_ready(const Daemon *d)
{
    char body[512];
    for (int i = 0; i < 1500; i++) { /* 15 s bound */
        if (itest_http_get(d->http_port, "/readyz", body, sizeof(body)) == 200)
            return;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    t_fail(__FILE__, __LINE__, "server on port %d not ready: %s", d->proto_port, body);
}

/* Connects and says Hello; checks the server's id in HelloOk. */
static ClConn *login(const Daemon *d, const char *token, const char *want_id)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", d->proto_port, 5000, err, sizeof(err));
    if (!c)
        t_fail(__FILE__, __LINE__, "connect: %s", err);
    ClEnvelope *r = cl_hello(c, token, "test_servers", 10000, err, sizeof(err));
    if (!r || r->body_case != BODY(HELLO_OK))
        t_fail(__FILE__, __LINE__, "hello refused: %s", r ? "not HelloOk" : err);
    T_EQ_STR(r->hello_ok->server_id, want_id);
    cl_free(r);
    return c;
}

static void ping(ClConn *c)
{
    Careline__V1__Ping p = CARELINE__V1__PING__INIT;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(PING);
    e.ping = &p;
    char err[256];
    ClEnvelope *r = cl_call(c, &e, 10000, err, sizeof(err), NULL, NULL);
    if (!r || r->body_case != BODY(PONG))
        t_fail(__FILE__, __LINE__, "ping: %s", r ? "not Pong" : err);
    cl_free(r);
}

/* A StatusQuery reaches the dispatch module's route (never "not implemented"). */
static void status_unknown(ClConn *c)
{
    Careline__V1__StatusQuery q = CARELINE__V1__STATUS_QUERY__INIT;
    q.ref_case = CARELINE__V1__STATUS_QUERY__REF_IDEMPOTENCY_KEY;
    q.idempotency_key = (char *)"test-servers-no-such-key";
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(STATUS_QUERY);
    e.status_query = &q;
    char err[256];
    ClEnvelope *r = cl_call(c, &e, 10000, err, sizeof(err), NULL, NULL);
    if (!r)
        t_fail(__FILE__, __LINE__, "status: %s", err);
    if (r->body_case == BODY(ERROR))
        T_ASSERT(r->error->code != CARELINE__V1__ERROR_CODE__UNSUPPORTED);
    cl_free(r);
}

static void two_servers_share_nothing(void)
{
    T_EQ_INT(evthread_use_pthreads(), 0);
    log_level = LOG_WARN;
    node_start(&nodes[0], "two-a");
    node_start(&nodes[1], "two-b");
    Daemon a = as_daemon(&nodes[0]), b = as_daemon(&nodes[1]);
    T_ASSERT(a.proto_port != b.proto_port && a.http_port != b.http_port);
    wait_ready(&a);
    wait_ready(&b);

    PGconn *pg = itest_pg();
    char tok[64];
    itest_make_token(pg, "gateway", 0, tok);
    ClConn *ca = login(&a, tok, "two-a");
    ClConn *cb = login(&b, tok, "two-b");
    for (int i = 0; i < 5; i++)
        ping(ca);
    for (int i = 0; i < 2; i++)
        ping(cb);
    status_unknown(ca);
    status_unknown(cb);

    /* Hello + pings + one status each: A 1 + 5 + 1, B 1 + 2 + 1 */
    T_EQ_INT(itest_metric(a.http_port, "careline_frames_in_total"), 7);
    T_EQ_INT(itest_metric(b.http_port, "careline_frames_in_total"), 4);
    T_EQ_INT(itest_metric(a.http_port, "careline_auth_ok_total"), 1);
    T_EQ_INT(itest_metric(b.http_port, "careline_auth_ok_total"), 1);
    T_EQ_INT(itest_metric(a.http_port, "careline_connections"), 1);
    T_EQ_INT(itest_metric(b.http_port, "careline_connections"), 1);

    cl_close(ca);
    cl_close(cb);
    node_stop(&nodes[0]);
    /* B is unaffected by A's stop: still ready and serving */
    wait_ready(&b);
    ClConn *cb2 = login(&b, tok, "two-b");
    ping(cb2);
    cl_close(cb2);
    node_stop(&nodes[1]);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"servers_two_in_one_process_share_nothing", two_servers_share_nothing, 90},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
