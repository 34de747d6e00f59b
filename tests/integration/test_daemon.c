/*
 * Integration tests of the foundation against real PostgreSQL and Redis: Hello with token
 * auth, Ping, each kind of bad input (with its Error code, its metric, and the daemon still
 * serving afterwards), timeouts, output-buffer limits, HTTP endpoints and graceful stop.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "itest.h"
#include "t.h"

#define ERR(code) CARELINE__V1__ERROR_CODE__##code
#define BODY(b)   CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

static void start(const char *const *extra)
{
    itest_daemon_start(&d, extra);
}

static ClConn *raw_connect(void)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", d.proto_port, 3000, err, sizeof(err));
    if (!c)
        t_fail(__FILE__, __LINE__, "%s", err);
    return c;
}

/* Reads the next frame and checks it is Error{code}; returns whether it was fatal. */
static bool expect_error(ClConn *c, int code)
{
    char err[256];
    ClEnvelope *r = cl_recv(c, 5000, err, sizeof(err));
    if (!r) {
        itest_daemon_dump_log(&d);
        t_fail(__FILE__, __LINE__, "expected Error %d, got %s", code, err);
    }
    if (r->body_case != BODY(ERROR))
        t_fail(__FILE__, __LINE__, "expected Error %d, got body %d", code, r->body_case);
    if ((int)r->error->code != code)
        t_fail(__FILE__, __LINE__, "expected Error %d, got %d: %s", code, r->error->code,
               r->error->message);
    T_ASSERT(r->error->message && strlen(r->error->message) > 10); /* a human sentence */
    bool fatal = r->error->fatal;
    cl_free(r);
    return fatal;
}

static void send_ping(ClConn *c, uint64_t seq, uint64_t nonce)
{
    Careline__V1__Ping p = CARELINE__V1__PING__INIT;
    p.nonce = nonce;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = seq;
    e.body_case = BODY(PING);
    e.ping = &p;
    T_ASSERT(cl_send(c, &e));
}

static void expect_pong(ClConn *c, uint64_t seq, uint64_t nonce)
{
    char err[256];
    ClEnvelope *r = cl_recv(c, 5000, err, sizeof(err));
    if (!r)
        t_fail(__FILE__, __LINE__, "no pong: %s", err);
    T_EQ_INT(r->body_case, BODY(PONG));
    T_EQ_INT(r->seq, seq);
    T_EQ_INT(r->pong->nonce, nonce);
    T_ASSERT(r->pong->server_time_ms > 0);
    cl_free(r);
}

/* After any abuse the daemon still logs a fresh gateway in and answers Ping. */
static void still_serving(PGconn *pg)
{
    char tok[64];
    ClConn *c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    send_ping(c, 900, 901);
    expect_pong(c, 900, 901);
    cl_close(c);
    T_ASSERT(itest_daemon_alive(&d));
}

static void finish(void)
{
    itest_daemon_down_within(&d, 10000);
}

static void auth_ok_and_ping(void)
{
    PGconn *pg = itest_pg();
    start(NULL);
    char tok[64], err[256];
    itest_make_token(pg, "gateway", 0, tok);
    ClConn *c = raw_connect();
    ClEnvelope *r = cl_hello(c, tok, "itest", 5000, err, sizeof(err));
    T_ASSERT(r);
    T_EQ_INT(r->body_case, BODY(HELLO_OK));
    T_EQ_INT(r->hello_ok->role, CARELINE__V1__ROLE__ROLE_GATEWAY);
    T_EQ_INT(r->hello_ok->protocol_version, 1);
    T_EQ_INT(r->hello_ok->max_frame_bytes, 65536);
    T_EQ_INT(r->seq, 1); /* echoed */
    cl_free(r);
    send_ping(c, 77, 12345);
    expect_pong(c, 77, 12345);
    /* a second Hello is refused but the session goes on */
    r = cl_hello(c, tok, "itest", 5000, err, sizeof(err));
    T_EQ_INT(r->error->code, ERR(ALREADY_AUTHENTICATED));
    T_ASSERT(!r->error->fatal);
    cl_free(r);
    send_ping(c, 78, 1);
    expect_pong(c, 78, 1);
    cl_close(c);
    /* a station token reports its station */
    PGresult *s = itest_sql(pg, "SELECT id FROM stations ORDER BY id LIMIT 1", 0, NULL);
    long sid = atol(PQgetvalue(s, 0, 0));
    PQclear(s);
    c = raw_connect();
    r = cl_hello(c, itest_make_token(pg, "station", sid, tok), "itest", 5000, err, sizeof(err));
    T_EQ_INT(r->body_case, BODY(HELLO_OK));
    T_EQ_INT(r->hello_ok->role, CARELINE__V1__ROLE__ROLE_STATION);
    T_EQ_INT(r->hello_ok->station_id, sid);
    cl_free(r);
    cl_close(c);
    T_ASSERT(itest_metric(d.http_port, "careline_auth_ok_total") == 2);
    finish();
    PQfinish(pg);
}

static void auth_refused(void)
{
    PGconn *pg = itest_pg();
    start(NULL);
    char err[256], tok[64];
    /* unknown token */
    ClConn *c = raw_connect();
    ClEnvelope *r = cl_hello(c, "not-a-real-token", "itest", 5000, err, sizeof(err));
    T_EQ_INT(r->error->code, ERR(AUTH_FAILED));
    T_ASSERT(r->error->fatal);
    cl_free(r);
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    /* revoked token */
    itest_make_token(pg, "gateway", 0, tok);
    const char *p[] = {tok};
    PQclear(itest_sql(pg,
                      "UPDATE principals SET revoked_at = now() "
                      "WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
                      1, p));
    c = raw_connect();
    r = cl_hello(c, tok, "itest", 5000, err, sizeof(err));
    T_EQ_INT(r->error->code, ERR(AUTH_FAILED));
    cl_free(r);
    cl_close(c);
    /* malformed token (control characters) and wrong protocol version */
    c = raw_connect();
    r = cl_hello(c, "bad\ntoken", "itest", 5000, err, sizeof(err));
    T_EQ_INT(r->error->code, ERR(AUTH_FAILED));
    cl_free(r);
    cl_close(c);
    c = raw_connect();
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 2;
    h.token = tok;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(HELLO);
    e.hello = &h;
    T_ASSERT(cl_send(c, &e));
    T_ASSERT(expect_error(c, ERR(BAD_VERSION)));
    cl_close(c);
    T_EQ_INT(itest_metric(d.http_port, "careline_auth_failed_total"), 4);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"AUTH_FAILED\"}"), 3);
    still_serving(pg);
    finish();
    PQfinish(pg);
}

static void before_hello(void)
{
    PGconn *pg = itest_pg();
    start(NULL);
    ClConn *c = raw_connect();
    send_ping(c, 1, 1);
    T_ASSERT(expect_error(c, ERR(NOT_AUTHENTICATED)));
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"NOT_AUTHENTICATED\"}"), 1);
    still_serving(pg);
    finish();
    PQfinish(pg);
}

static void bad_frames(void)
{
    PGconn *pg = itest_pg();
    start((const char *const[]){"--max_frame_bytes=1024", NULL});
    /* over the maximum: refused from the header alone */
    ClConn *c = raw_connect();
    uint32_t big = htonl(1025);
    T_ASSERT(cl_send_raw(c, &big, 4));
    T_ASSERT(expect_error(c, ERR(FRAME_TOO_LARGE)));
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    /* a length of zero */
    c = raw_connect();
    uint32_t zero = 0;
    T_ASSERT(cl_send_raw(c, &zero, 4));
    T_ASSERT(expect_error(c, ERR(FRAME_EMPTY)));
    cl_close(c);
    /* bytes that are not an Envelope */
    c = raw_connect();
    const unsigned char junk[] = {0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    T_ASSERT(cl_send_raw(c, junk, sizeof(junk)));
    T_ASSERT(expect_error(c, ERR(BAD_ENVELOPE)));
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    /* truncated: half a frame, then the client closes its sending side */
    c = raw_connect();
    const unsigned char half[] = {0, 0, 0, 20, 0x08, 0x01};
    T_ASSERT(cl_send_raw(c, half, sizeof(half)));
    shutdown(cl_fd(c), SHUT_WR);
    T_ASSERT(expect_error(c, ERR(FRAME_TRUNCATED)));
    cl_close(c);
    /* authenticated clients are held to the same rules */
    char tok[64];
    c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    T_ASSERT(cl_send_raw(c, &big, 4));
    T_ASSERT(expect_error(c, ERR(FRAME_TOO_LARGE)));
    cl_close(c);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"FRAME_TOO_LARGE\"}"), 2);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"FRAME_EMPTY\"}"), 1);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"BAD_ENVELOPE\"}"), 1);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"FRAME_TRUNCATED\"}"), 1);
    still_serving(pg);
    finish();
    PQfinish(pg);
}

static void forbidden_and_unknown(void)
{
    PGconn *pg = itest_pg();
    start(NULL);
    char tok[64];
    ClConn *c = itest_login(&d, itest_make_token(pg, "bureau", 0, tok));
    /* a bureau principal may not submit requests: refused, session goes on */
    Careline__V1__SubmitRequest s = CARELINE__V1__SUBMIT_REQUEST__INIT;
    char key[] = "k1";
    s.idempotency_key = key;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = 5;
    e.body_case = BODY(SUBMIT);
    e.submit = &s;
    T_ASSERT(cl_send(c, &e));
    T_ASSERT(!expect_error(c, ERR(FORBIDDEN)));
    /* a server-to-client message sent by a client */
    Careline__V1__Pong pong = CARELINE__V1__PONG__INIT;
    Careline__V1__HelloOk ok = CARELINE__V1__HELLO_OK__INIT;
    e.body_case = BODY(HELLO_OK);
    e.hello_ok = &ok;
    T_ASSERT(cl_send(c, &e));
    T_ASSERT(!expect_error(c, ERR(FORBIDDEN)));
    /* a message from a newer protocol (unknown field) */
    const unsigned char newer[] = {0, 0, 0, 5, 0x08, 0x09, 0x9a, 0x06, 0x00};
    T_ASSERT(cl_send_raw(c, newer, sizeof(newer)));
    T_ASSERT(!expect_error(c, ERR(UNSUPPORTED)));
    /* Pong from the client is accepted silently; Ping still works */
    e.body_case = BODY(PONG);
    e.pong = &pong;
    T_ASSERT(cl_send(c, &e));
    send_ping(c, 6, 6);
    expect_pong(c, 6, 6);
    cl_close(c);
    T_EQ_INT(itest_metric(d.http_port, "careline_errors_total{code=\"FORBIDDEN\"}"), 2);
    finish();
    PQfinish(pg);
}

static void pipelined(void)
{
    PGconn *pg = itest_pg();
    start(NULL);
    char tok[64], err[256];
    itest_make_token(pg, "gateway", 0, tok);
    ClConn *c = raw_connect();
    /* Hello and 200 Pings in one write: the Pings must wait for the token check */
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = tok;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = 1;
    e.body_case = BODY(HELLO);
    e.hello = &h;
    T_ASSERT(cl_send(c, &e));
    for (int i = 0; i < 200; i++)
        send_ping(c, 100 + (uint64_t)i, (uint64_t)i);
    ClEnvelope *r = cl_recv(c, 5000, err, sizeof(err));
    T_ASSERT(r && r->body_case == BODY(HELLO_OK));
    cl_free(r);
    for (int i = 0; i < 200; i++)
        expect_pong(c, 100 + (uint64_t)i, (uint64_t)i);
    cl_close(c);
    finish();
    PQfinish(pg);
}

static void idle_and_hello_timeouts(void)
{
    PGconn *pg = itest_pg();
    start((const char *const[]){"--hello_timeout_ms=300", "--idle_timeout_ms=600", NULL});
    ClConn *c = raw_connect(); /* says nothing */
    T_ASSERT(expect_error(c, ERR(TIMEOUT)));
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    char tok[64];
    c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    T_ASSERT(expect_error(c, ERR(TIMEOUT))); /* idle after Hello */
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    T_EQ_INT(itest_metric(d.http_port, "careline_timeouts_total"), 2);
    finish();
    PQfinish(pg);
}

/* A client that sends Pings and never reads the Pongs must not grow the daemon's memory:
 * reading pauses at the soft limit and the connection is closed when it persists. */
static void slow_reader(void)
{
    PGconn *pg = itest_pg();
    start((const char *const[]){"--obuf_soft_bytes=8192", "--obuf_hard_bytes=65536",
                                "--obuf_soft_seconds=1", "--max_frame_bytes=4096", NULL});
    char tok[64];
    ClConn *c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    int one = 4096;
    setsockopt(cl_fd(c), SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
    /* Pings in batches of 1000 until the daemon, its reading paused, closes the connection
     * (the kernel's socket buffers absorb the first megabytes of Pongs; bounded at ~60 MB) */
    static unsigned char batch[1000 * 16];
    size_t len = 0;
    for (int i = 0; i < 1000; i++) {
        Careline__V1__Ping p = CARELINE__V1__PING__INIT;
        ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
        e.seq = (uint64_t)i + 1;
        e.body_case = BODY(PING);
        e.ping = &p;
        size_t n = careline__v1__envelope__get_packed_size(&e);
        uint32_t be = htonl((uint32_t)n);
        memcpy(batch + len, &be, 4);
        careline__v1__envelope__pack(&e, batch + len + 4);
        len += 4 + n;
    }
    bool refused = false;
    for (int i = 0; i < 6000 && !refused; i++)
        refused = !cl_send_raw(c, batch, len);
    T_ASSERT(refused);
    T_ASSERT(itest_wait_closed(c, 5000));
    cl_close(c);
    T_ASSERT(itest_metric(d.http_port, "careline_obuf_closes_total") == 1);
    still_serving(pg);
    finish();
    PQfinish(pg);
}

static void http_endpoints(void)
{
    start(NULL);
    char body[32768]; /* /metrics is long */
    T_EQ_INT(itest_http_get(d.http_port, "/healthz", body, sizeof(body)), 200);
    T_EQ_STR(body, "ok\n");
    int st = 0;
    for (int i = 0; i < 100 && st != 200; i++) { /* backends connect asynchronously */
        st = itest_http_get(d.http_port, "/readyz", body, sizeof(body));
        if (st != 200)
            usleep(50000);
    }
    T_EQ_INT(st, 200);
    T_ASSERT(strstr(body, "\"postgres\":true") && strstr(body, "\"redis\":true"));
    T_EQ_INT(itest_http_get(d.http_port, "/nope", body, sizeof(body)), 404);
    T_ASSERT(strstr(body, "\"code\":\"NOT_FOUND\""));
    T_EQ_INT(itest_http_get(d.http_port, "/metrics", body, sizeof(body)), 200);
    T_ASSERT(strstr(body, "# TYPE careline_connections gauge"));
    T_ASSERT(strstr(body, "careline_postgres_up 1"));
    T_ASSERT(strstr(body, "careline_redis_up 1"));
    finish();
}

static void readyz_when_redis_down(void)
{
    start((const char *const[]){"--redis_port=1", NULL}); /* nothing listens on port 1 */
    char body[4096];
    usleep(300000);
    T_EQ_INT(itest_http_get(d.http_port, "/readyz", body, sizeof(body)), 503);
    T_ASSERT(strstr(body, "\"redis\":false"));
    T_EQ_INT(itest_http_get(d.http_port, "/healthz", body, sizeof(body)), 200);
    finish();
}

static void graceful_stop(void)
{
    PGconn *pg = itest_pg();
    start(NULL);
    char tok[64];
    ClConn *c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    kill(d.pid, SIGTERM);
    T_ASSERT(expect_error(c, ERR(SHUTTING_DOWN)));
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
    PQfinish(pg);
}

static void bad_config_refused(void)
{
    char cmd[1024], path[600];
    snprintf(path, sizeof(path), "%s/bad.conf", t_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("listen_port = 7400\nmax_frame_bytes = huge\n", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s/dispatchd -c %s 2>%s/err.txt", t_env("CARELINE_BIN"), path,
             t_tmpdir());
    int rc = system(cmd);
    T_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(cmd, sizeof(cmd),
             "grep -q 'bad.conf:2: .max_frame_bytes. needs a whole number' "
             "%s/err.txt",
             t_tmpdir());
    T_EQ_INT(system(cmd), 0);
}

/* ---- SIGHUP reload and host names ---- */

/* Writes the config file the reload cases start dispatchd with (-c) and rewrite. */
static const char *conf_file(const char *text)
{
    static char path[600];
    snprintf(path, sizeof(path), "%s/reload.conf", t_tmpdir());
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Lines of the daemon's log containing needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(d.log_path, "r");
    int seen = 0;
    char line[2048];
    while (f && fgets(line, sizeof(line), f))
        seen += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return seen;
}

/* Waits up to timeout_ms for the daemon's log to contain needle. */
static bool log_has(const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (log_count(needle) > 0)
            return true;
        usleep(20000);
    }
    return false;
}

/* SIGHUP, then waits for the reload's outcome (a "SIGHUP: " line: reloaded or kept). */
static void sighup(void)
{
    int before = log_count("SIGHUP: reloaded") + log_count("SIGHUP: keeping the old config");
    T_ASSERT(kill(d.pid, SIGHUP) == 0);
    for (int waited = 0; waited < 5000; waited += 20) {
        if (log_count("SIGHUP: reloaded") + log_count("SIGHUP: keeping the old config") > before)
            return;
        usleep(20000);
    }
    itest_daemon_dump_log(&d);
    t_fail(__FILE__, __LINE__, "no reload outcome logged after SIGHUP");
}

static void expect_log(const char *needle)
{
    if (!log_has(needle, 5000)) {
        itest_daemon_dump_log(&d);
        t_fail(__FILE__, __LINE__, "the log lacks '%s'", needle);
    }
}

/* A key given on the command line keeps its value across SIGHUP: the reload is defaults <
 * file < environment < command line again, as at start (it used to revert to the file). */
static void reload_keeps_command_line(void)
{
    const char *path = conf_file("hello_timeout_ms = 60000\n");
    start((const char *const[]){"-c", path, "--hello_timeout_ms=300", NULL});
    conf_file("hello_timeout_ms = 60000\nidle_timeout_ms = 50000\n");
    sighup();
    expect_log("SIGHUP: reloaded");
    expect_log("(changed: idle_timeout_ms;"); /* not hello_timeout_ms: the flag still wins */
    ClConn *c = raw_connect();                /* says nothing: 300 ms, not 60 s */
    T_ASSERT(expect_error(c, ERR(TIMEOUT)));
    cl_close(c);
    finish();
}

/* Reloadable keys take effect in the modules that use them: the idle timeout of a
 * connection already open, and the Redis link's op deadline (the link copied it at start;
 * a Redis that stops answering is noticed within the reloaded 300 ms, not 60 s). */
static void reload_applies_live(void)
{
    PGconn *pg = itest_pg();
    const char *path = conf_file("idle_timeout_ms = 60000\nredis_op_timeout_ms = 60000\n");
    itest_daemon_up(&d, (const char *const[]){"-c", path, "--reconcile_interval_ms=200", NULL});
    char tok[64];
    ClConn *c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    conf_file("idle_timeout_ms = 500\nredis_op_timeout_ms = 300\n");
    sighup();
    expect_log("(changed: redis_op_timeout_ms, idle_timeout_ms;");
    T_ASSERT(expect_error(c, ERR(TIMEOUT))); /* idle for 500 ms */
    cl_close(c);
    /* the sweep's ops stall: the stack's Redis is stopped for 1.5 s (CLIENT PAUSE is an
     * admin command its ACL user may not send). A detached shell resumes it whatever this
     * case does meanwhile, so no later test can find Redis stopped. */
    char pidfile[600], cmd[800];
    snprintf(pidfile, sizeof(pidfile), "%s", t_env("CARELINE_REDIS_PASSWORD_FILE"));
    char *slash = strrchr(pidfile, '/');
    T_ASSERT(slash);
    snprintf(slash, sizeof(pidfile) - (size_t)(slash - pidfile), "/redis.pid");
    snprintf(cmd, sizeof(cmd),
             "p=$(cat '%s') && kill -STOP \"$p\" && (sleep 1.5; kill -CONT \"$p\") "
             ">/dev/null 2>&1 &",
             pidfile);
    T_EQ_INT(system(cmd), 0);
    expect_log("op timed out after 300 ms");
    itest_daemon_wait_ready(&d); /* the link comes back once Redis answers again */
    finish();
    PQfinish(pg);
}

/* A reload whose values in force would be invalid changes nothing and says why; a changed
 * key that is not reloadable is named as needing a restart, and the cross-field rules are
 * checked against the values that stay in force (the running query timeout), not the file's. */
static void reload_invalid_keeps_old(void)
{
    PGconn *pg = itest_pg();
    const char *path = conf_file("idle_timeout_ms = 60000\n");
    start((const char *const[]){"-c", path, NULL});
    conf_file("idle_timeout_ms = 500\norphan_grace_ms = 3000\n");
    sighup();
    expect_log("SIGHUP: keeping the old config: with ");
    expect_log("orphan_grace_ms (3000) must exceed 2 x pg_query_timeout_ms + 2000 (12000)");
    conf_file("idle_timeout_ms = 500\nmax_frame_bytes = huge\n");
    sighup();
    expect_log("reload.conf:2: 'max_frame_bytes' needs a whole number");
    /* idle_timeout_ms is still 60 s: a silent client is not closed */
    char tok[64];
    ClConn *c = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    usleep(1200000);
    send_ping(c, 7, 8);
    expect_pong(c, 7, 8);
    cl_close(c);
    /* the file raises pg_query_timeout_ms (restart only): the grace it keeps is checked
     * against the 5000 ms in force (> 12000), so the reloadable part goes through */
    conf_file("idle_timeout_ms = 50000\npg_query_timeout_ms = 60000\norphan_grace_ms = 20000\n");
    sighup();
    expect_log("SIGHUP: pg_query_timeout_ms changed in ");
    expect_log("not reloadable, the running value stays until a restart");
    expect_log("a restart with ");
    expect_log("(changed: idle_timeout_ms, orphan_grace_ms;");
    finish();
    PQfinish(pg);
}

/* Host names are resolved once at start, before the loop runs: libpq gets hostaddr= beside
 * host= and hiredis an address, so neither resolves on the loop. A name that does not resolve
 * is refused at start. */
static void host_names_resolved_at_start(void)
{
    char pgarg[256];
    snprintf(pgarg, sizeof(pgarg),
             "--pg_conninfo=host=localhost port=%s dbname=careline user=careline_app",
             t_env("CARELINE_PG_PORT"));
    itest_daemon_up(&d, (const char *const[]){pgarg, "--redis_host=localhost", NULL});
    expect_log("resolved at start (a restart resolves again): redis_host localhost = ");
    expect_log("; pg_conninfo host localhost = hostaddr ");
    finish();
    itest_daemon_spawn(&d, (const char *const[]){"--redis_host=no-such-host.invalid", NULL});
    T_EQ_INT(itest_daemon_wait_exit(&d, 10000), 1);
    expect_log("redis_host: cannot resolve host name 'no-such-host.invalid' at start");
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"daemon_auth_ok_and_ping", auth_ok_and_ping, 60},
        {"daemon_auth_refused", auth_refused, 60},
        {"daemon_message_before_hello", before_hello, 60},
        {"daemon_bad_frames", bad_frames, 60},
        {"daemon_forbidden_and_unknown", forbidden_and_unknown, 60},
        {"daemon_pipelined_hello_and_pings", pipelined, 60},
        {"daemon_idle_and_hello_timeouts", idle_and_hello_timeouts, 60},
        {"daemon_slow_reader_bounded", slow_reader, 90},
        {"daemon_http_endpoints", http_endpoints, 60},
        {"daemon_readyz_when_redis_down", readyz_when_redis_down, 60},
        {"daemon_graceful_stop", graceful_stop, 60},
        {"daemon_bad_config_refused", bad_config_refused, 60},
        {"daemon_reload_keeps_command_line", reload_keeps_command_line, 60},
        {"daemon_reload_applies_live", reload_applies_live, 60},
        {"daemon_reload_invalid_keeps_old", reload_invalid_keeps_old, 60},
        {"daemon_host_names_resolved_at_start", host_names_resolved_at_start, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
