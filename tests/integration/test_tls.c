/*
 * Integration tests of TLS on dispatchd's two listeners and of the HTTP listener's limits,
 * against a real daemon, PostgreSQL and Redis. Each case makes its CA and certificates in
 * its own tmp dir with deploy/make-tls.sh (the openssl CLI): a good handshake on both
 * ports; an unknown CA, an expired certificate and a wrong host refused by the client with
 * a sentence naming the reason; plaintext sent to a TLS port closed, counted and logged at
 * a bounded rate while the daemon keeps serving; a client certificate required of stations
 * when configured; the handshake bounded by hello_timeout_ms; the HTTP connection caps and
 * the whole-request deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cl.h"
#include "iproc.h"
#include "itest.h"
#include "t.h"

#define S(x) CARELINE__V1__##x

/* deploy/make-tls.sh ARGS in the case's tmp dir; fails the case on error. */
static void mk(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s/deploy/make-tls.sh %s", t_env("CARELINE_SRC"), args);
    if (system(cmd) != 0)
        t_fail(__FILE__, __LINE__, "failed: %s", cmd);
}

/* A CA "ca" and a server certificate "server" (SAN san, valid days) in the tmp dir. */
static void certs(const char *san, int days)
{
    char a[1024];
    snprintf(a, sizeof(a), "ca %s ca", t_tmpdir());
    mk(a);
    snprintf(a, sizeof(a), "cert %s ca server '%s' %d server", t_tmpdir(), san, days);
    mk(a);
}

static const char *path(const char *name)
{
    static char p[8][600];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof(p[i]), "%s/%s", t_tmpdir(), name);
    return p[i];
}

/* Starts a TLS daemon with the tmp dir's server certificate plus extra args. */
static void tls_daemon(Daemon *d, const char *extra1, const char *extra2)
{
    char cert[700], key[700];
    snprintf(cert, sizeof(cert), "--tls_cert_file=%s", path("server.pem"));
    snprintf(key, sizeof(key), "--tls_key_file=%s", path("server.key"));
    const char *args[] = {cert, key, extra1, extra2, NULL};
    itest_daemon_start(d, args);
}

static TlsClient *client(const char *ca, const char *cert)
{
    TlsClientOpts o = {.ca_file = ca, .cert_file = cert};
    TlsClient *t;
    char err[512];
    if (!tlsc_new(&o, "127.0.0.1", &t, err, sizeof(err)))
        t_fail(__FILE__, __LINE__, "%s", err);
    return t;
}

static void wait_ready_tls(const Daemon *d, TlsClient *tls)
{
    char body[1024], err[256];
    for (int i = 0; i < 300; i++) {
        if (itest_https_get(d->http_port, tls, "/readyz", body, sizeof(body), err, sizeof(err)) ==
            200)
            return;
        iproc_sleep_ms(50);
    }
    itest_daemon_dump_log(d);
    t_fail(__FILE__, __LINE__, "TLS dispatchd never became ready: %s %s", body, err);
}

/* Hello over TLS; returns the reply (HelloOk or Error) or fails the case on I/O failure. */
static ClEnvelope *hello(const Daemon *d, TlsClient *tls, const char *token, ClConn **out)
{
    char err[512];
    ClConn *c = cl_open("127.0.0.1", d->proto_port, tls, 5000, err, sizeof(err));
    if (!c) {
        itest_daemon_dump_log(d);
        t_fail(__FILE__, __LINE__, "TLS connect: %s", err);
    }
    ClEnvelope *r = cl_hello(c, token, "test_tls", 5000, err, sizeof(err));
    if (!r)
        t_fail(__FILE__, __LINE__, "hello: %s", err);
    *out = c;
    return r;
}

static void expect_hello_ok(const Daemon *d, TlsClient *tls, const char *token)
{
    ClConn *c;
    ClEnvelope *r = hello(d, tls, token, &c);
    if (r->body_case != S(ENVELOPE__BODY_HELLO_OK))
        t_fail(__FILE__, __LINE__, "hello refused: %s",
               r->body_case == S(ENVELOPE__BODY_ERROR) ? r->error->message : "?");
    cl_free(r);
    cl_close(c);
}

/* cl_open with tls must fail with a message containing want. */
static void expect_refused(int port, TlsClient *tls, const char *want)
{
    char err[512] = "";
    ClConn *c = cl_open("127.0.0.1", port, tls, 5000, err, sizeof(err));
    if (c)
        t_fail(__FILE__, __LINE__, "handshake succeeded; expected a refusal naming '%s'", want);
    if (!strstr(err, want))
        t_fail(__FILE__, __LINE__, "refusal '%s' does not name '%s'", err, want);
}

/* Runs a shell command, returns its exit status and its output (stdout + stderr). */
static int run(const char *cmd, char *out, size_t outlen)
{
    char full[2048];
    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    T_ASSERT(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void good_handshake_both_ports(void)
{
    certs("IP:127.0.0.1,DNS:localhost", 30);
    Daemon d;
    tls_daemon(&d, NULL, NULL);
    TlsClient *tls = client(path("ca.pem"), NULL);
    wait_ready_tls(&d, tls);
    PGconn *pg = itest_pg();
    char tok[64];
    itest_make_token(pg, "gateway", 0, tok);
    expect_hello_ok(&d, tls, tok);
    /* the HTTP port speaks HTTPS only: a plaintext GET gets no answer */
    char body[4096], err[256];
    T_EQ_INT(itest_https_get(d.http_port, tls, "/healthz", body, sizeof(body), err, sizeof(err)),
             200);
    T_EQ_INT(itest_https_get(d.http_port, NULL, "/healthz", body, sizeof(body), err, sizeof(err)),
             -1);
    /* the clients as people run them: careline-cli with --ca, and without TLS */
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof(cmd), "%s/careline-cli --port %d --token %s --ca %s ping",
             t_env("CARELINE_BIN"), d.proto_port, tok, path("ca.pem"));
    if (run(cmd, out, sizeof(out)) != 0)
        t_fail(__FILE__, __LINE__, "careline-cli ping over TLS failed: %s", out);
    snprintf(cmd, sizeof(cmd),
             "%s/careline-cli --host daemon.example --port %d --token %s "
             "--plaintext ping",
             t_env("CARELINE_BIN"), d.proto_port, tok);
    T_ASSERT(run(cmd, out, sizeof(out)) != 0);
    T_ASSERT(strstr(out, "only for a daemon on a loopback address"));
    /* loadgen's bufferevent connections, closed loop, a few requests */
    snprintf(cmd, sizeof(cmd),
             "%s/loadgen --port %d --token %s --ca %s --pg '%s' --closed --conns 2 --window 2 "
             "--max-requests 20 --warmup 0 --duration 3 --drain 5 --quiet --report %s",
             t_env("CARELINE_BIN"), d.proto_port, tok, path("ca.pem"), t_env("CARELINE_PG_ADMIN"),
             path("lg.kv"));
    if (run(cmd, out, sizeof(out)) != 0)
        t_fail(__FILE__, __LINE__, "loadgen over TLS failed: %s", out);
    FILE *kv = fopen(path("lg.kv"), "r");
    T_ASSERT(kv);
    char line[256];
    long replies = -1;
    while (fgets(line, sizeof(line), kv))
        if (sscanf(line, "replies=%ld", &replies) == 1)
            break;
    fclose(kv);
    if (replies < 20)
        t_fail(__FILE__, __LINE__, "loadgen got %ld replies over TLS: %s", replies, out);
    long long hs = itest_metric_tls(d.http_port, tls, "careline_tls_handshakes_total");
    T_ASSERT(hs >= 6); /* readyz, Hello, healthz, the CLI, loadgen's two (and this /metrics) */
    tlsc_free(tls);
    PQfinish(pg);
    itest_daemon_down(&d);
}

static void unknown_ca_refused(void)
{
    certs("IP:127.0.0.1", 30);
    char a[1024];
    snprintf(a, sizeof(a), "ca %s other", t_tmpdir());
    mk(a);
    Daemon d;
    tls_daemon(&d, NULL, NULL);
    TlsClient *other = client(path("other.pem"), NULL);
    expect_refused(d.proto_port, other, "unknown CA");
    expect_refused(d.http_port, other, "unknown CA");
    /* the CLI says the same and fails */
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof(cmd), "%s/careline-cli --port %d --token x --ca %s ping",
             t_env("CARELINE_BIN"), d.proto_port, path("other.pem"));
    T_ASSERT(run(cmd, out, sizeof(out)) != 0);
    if (!strstr(out, "unknown CA"))
        t_fail(__FILE__, __LINE__, "careline-cli said: %s", out);
    /* the daemon counted the refused handshakes and still serves a good client */
    TlsClient *good = client(path("ca.pem"), NULL);
    wait_ready_tls(&d, good);
    T_ASSERT(itest_metric_tls(d.http_port, good,
                              "careline_tls_refused_total{reason=\"handshake\"}") >= 2);
    tlsc_free(other);
    tlsc_free(good);
    itest_daemon_down(&d);
}

/* A daemon whose certificate (SAN san, valid days) the client must refuse, naming want. */
static void refused_certificate(const char *san, int days, const char *want)
{
    certs(san, days);
    Daemon d;
    tls_daemon(&d, NULL, NULL);
    TlsClient *tls = client(path("ca.pem"), NULL);
    expect_refused(d.proto_port, tls, want);
    expect_refused(d.http_port, tls, want);
    tlsc_free(tls);
    itest_daemon_down(&d);
}

static void expired_refused(void)
{
    refused_certificate("IP:127.0.0.1", -1, "has expired");
}

static void wrong_host_refused(void)
{
    refused_certificate("DNS:dispatchd.example.org,IP:10.1.2.3", 30, "wrong host");
}

/* hotline-gw's link (libevent OpenSSL bufferevent): a call answered over TLS; with another
 * CA the link fails and its log names the reason. */
static void gateway_link(void)
{
    certs("IP:127.0.0.1", 30);
    char a[1024];
    snprintf(a, sizeof(a), "ca %s other", t_tmpdir());
    mk(a);
    Daemon d;
    tls_daemon(&d, NULL, NULL);
    TlsClient *tls = client(path("ca.pem"), NULL);
    wait_ready_tls(&d, tls);
    PGconn *pg = itest_pg();
    char tok[64], cmd[3000], out[8192];
    itest_make_token(pg, "gateway", 0, tok);
    FILE *f = fopen(path("tok"), "w");
    T_ASSERT(f);
    fprintf(f, "%s\n", tok);
    fclose(f);
    PGresult *r =
        itest_sql(pg,
                  "SELECT phone FROM residents r JOIN villages v ON v.code = r.village_code "
                  "WHERE v.area_kind = 'urban' ORDER BY r.id LIMIT 1 OFFSET 13",
                  0, NULL);
    T_ASSERT(PQntuples(r) == 1);
    char call[512];
    snprintf(call, sizeof(call),
             "{\"call_id\":\"tls-%d\",\"caller\":\"%s\",\"called\":\"96345\",\"time\":%lld,"
             "\"digits\":\"3\"}",
             (int)getpid(), PQgetvalue(r, 0, 0), (long long)time(NULL));
    PQclear(r);
    f = fopen(path("in.jsonl"), "w");
    T_ASSERT(f);
    fprintf(f, "%s\n", call);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "timeout 30 %s/hotline-gw --stdio --daemon_port=%d --token_file=%s --tls_ca_file=%s "
             "--spool_dir=%s/spool < %s 2>%s",
             t_env("CARELINE_BIN"), d.proto_port, path("tok"), path("ca.pem"), t_tmpdir(),
             path("in.jsonl"), path("gw.log"));
    run(cmd, out, sizeof(out));
    if (!strstr(out, "\"answered\""))
        t_fail(__FILE__, __LINE__, "hotline-gw over TLS said: %s", out);
    snprintf(cmd, sizeof(cmd),
             "timeout 3 %s/hotline-gw --stdio --daemon_port=%d --token_file=%s --tls_ca_file=%s "
             "--spool_dir=%s/spool2 < %s >/dev/null 2>%s; cat %s",
             t_env("CARELINE_BIN"), d.proto_port, path("tok"), path("other.pem"), t_tmpdir(),
             path("in.jsonl"), path("gw2.log"), path("gw2.log"));
    run(cmd, out, sizeof(out));
    if (!strstr(out, "unknown CA"))
        t_fail(__FILE__, __LINE__, "hotline-gw with another CA logged: %s", out);
    tlsc_free(tls);
    PQfinish(pg);
    itest_daemon_down(&d);
}

/* Sends bytes in plaintext and waits until the daemon closes the connection. */
static void plaintext_closed(int port, const char *bytes, size_t n)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", port, 3000, err, sizeof(err));
    T_ASSERT(c);
    T_ASSERT(cl_send_raw(c, bytes, n));
    T_ASSERT(itest_wait_closed(c, 5000));
    cl_close(c);
}

static void plaintext_to_tls_port(void)
{
    certs("IP:127.0.0.1", 30);
    Daemon d;
    tls_daemon(&d, NULL, NULL);
    TlsClient *tls = client(path("ca.pem"), NULL);
    wait_ready_tls(&d, tls);
    /* a protocol frame (length 5 + bytes) and an HTTP request, each in plaintext */
    plaintext_closed(d.proto_port, "\0\0\0\5hello", 9);
    const char get[] = "GET /healthz HTTP/1.0\r\n\r\n";
    plaintext_closed(d.http_port, get, sizeof(get) - 1);
    T_EQ_INT(itest_metric_tls(d.http_port, tls, "careline_tls_refused_total{reason=\"plaintext\"}"),
             2);
    /* a flood is counted in full but logged at a bounded rate */
    for (int i = 0; i < 40; i++)
        plaintext_closed(d.proto_port, "\0\0\0\5hello", 9);
    T_EQ_INT(itest_metric_tls(d.http_port, tls, "careline_tls_refused_total{reason=\"plaintext\"}"),
             42);
    int logged = itest_log_count(&d, "plaintext sent to a TLS port");
    if (logged > 6)
        t_fail(__FILE__, __LINE__, "%d log lines for 42 plaintext connections", logged);
    /* and the daemon still serves */
    PGconn *pg = itest_pg();
    char tok[64];
    expect_hello_ok(&d, tls, itest_make_token(pg, "gateway", 0, tok));
    T_ASSERT(itest_daemon_alive(&d));
    tlsc_free(tls);
    PQfinish(pg);
    itest_daemon_down(&d);
}

static void station_needs_client_cert(void)
{
    certs("IP:127.0.0.1", 30);
    char a[1024];
    snprintf(a, sizeof(a), "cert %s ca station '' 30 client", t_tmpdir());
    mk(a);
    char ca[700];
    snprintf(ca, sizeof(ca), "--tls_ca_file=%s", path("ca.pem"));
    Daemon d;
    tls_daemon(&d, "--tls_client_certs=required", ca);
    TlsClient *plain = client(path("ca.pem"), NULL);
    TlsClient *with_cert = client(path("ca.pem"), path("station.pem"));
    wait_ready_tls(&d, plain);
    PGconn *pg = itest_pg();
    long station = itest_sql_ll(pg, "SELECT min(id) FROM stations", 0, NULL);
    T_ASSERT(station > 0);
    char st_tok[64], gw_tok[64];
    itest_make_token(pg, "station", station, st_tok);
    itest_make_token(pg, "gateway", 0, gw_tok);
    /* a station token alone is refused, with the reason */
    ClConn *c;
    ClEnvelope *r = hello(&d, plain, st_tok, &c);
    T_EQ_INT(r->body_case, S(ENVELOPE__BODY_ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__AUTH_FAILED));
    T_ASSERT(strstr(r->error->message, "client certificate"));
    cl_free(r);
    cl_close(c);
    /* with the certificate it is accepted; other roles need none */
    expect_hello_ok(&d, with_cert, st_tok);
    expect_hello_ok(&d, plain, gw_tok);
    T_EQ_INT(itest_metric_tls(d.http_port, plain,
                              "careline_tls_refused_total{reason=\"no_client_cert\"}"),
             1);
    /* bin/station-console: refused without its certificate, connected with it */
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof(cmd),
             "timeout 4 %s/station-console --json --ca %s --token %s --port %d </dev/null",
             t_env("CARELINE_BIN"), path("ca.pem"), st_tok, d.proto_port);
    run(cmd, out, sizeof(out));
    if (!strstr(out, "client certificate"))
        t_fail(__FILE__, __LINE__, "station-console without --cert said: %s", out);
    snprintf(cmd, sizeof(cmd),
             "timeout 4 %s/station-console --json --ca %s --cert %s --token %s --port %d "
             "</dev/null",
             t_env("CARELINE_BIN"), path("ca.pem"), path("station.pem"), st_tok, d.proto_port);
    run(cmd, out, sizeof(out));
    if (!strstr(out, "\"connected\""))
        t_fail(__FILE__, __LINE__, "station-console with --cert said: %s", out);
    /* a certificate from another CA fails the handshake itself */
    snprintf(a, sizeof(a), "ca %s other", t_tmpdir());
    mk(a);
    snprintf(a, sizeof(a), "cert %s other rogue '' 30 client", t_tmpdir());
    mk(a);
    TlsClient *rogue = client(path("ca.pem"), path("rogue.pem"));
    char err[512];
    ClConn *rc = cl_open("127.0.0.1", d.proto_port, rogue, 5000, err, sizeof(err));
    if (rc) { /* TLS 1.3: the server's verdict arrives after the client's handshake */
        ClEnvelope *rr = cl_hello(rc, st_tok, "rogue", 5000, err, sizeof(err));
        T_ASSERT(!rr || rr->body_case != S(ENVELOPE__BODY_HELLO_OK));
        cl_free(rr);
        cl_close(rc);
    }
    tlsc_free(plain);
    tlsc_free(with_cert);
    tlsc_free(rogue);
    PQfinish(pg);
    itest_daemon_down(&d);
}

static void handshake_bounded_by_hello_timeout(void)
{
    certs("IP:127.0.0.1", 30);
    Daemon d;
    tls_daemon(&d, "--hello_timeout_ms=300", NULL);
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", d.proto_port, 3000, err, sizeof(err));
    T_ASSERT(c);
    /* a connection that never starts its handshake is closed */
    T_ASSERT(itest_wait_closed(c, 3000));
    cl_close(c);
    TlsClient *tls = client(path("ca.pem"), NULL);
    T_EQ_INT(itest_metric_tls(d.http_port, tls, "careline_tls_refused_total{reason=\"timeout\"}"),
             1);
    tlsc_free(tls);
    itest_daemon_down(&d);
}

/* Open a plaintext HTTP connection that has sent nothing yet. */
static ClConn *http_idle(int port)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", port, 3000, err, sizeof(err));
    T_ASSERT(c);
    return c;
}

static void http_trickle_closed_within_deadline(void)
{
    Daemon d;
    const char *args[] = {"--http_request_deadline_ms=1000", NULL};
    itest_daemon_start(&d, args);
    ClConn *c = http_idle(d.http_port);
    const char first[] = "GET /healthz HTTP/1.1\r\n";
    T_ASSERT(cl_send_raw(c, first, sizeof(first) - 1));
    /* one header line every 200 ms (evhttp's read timeout would restart on each) */
    int64_t t0 = util_now_ms();
    bool closed = false;
    for (int i = 0; i < 20 && !closed; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "X-Trickle-%d: %d\r\n", i, i);
        if (!cl_send_raw(c, line, (size_t)n))
            break;
        closed = itest_wait_closed(c, 200);
    }
    int64_t took = util_now_ms() - t0;
    T_ASSERT(closed);
    if (took > 2500)
        t_fail(__FILE__, __LINE__, "closed after %lld ms; the deadline is 1000 ms",
               (long long)took);
    cl_close(c);
    T_EQ_INT(itest_metric(d.http_port, "careline_http_refused_total{limit=\"deadline\"}"), 1);
    itest_daemon_down(&d);
}

static void http_connection_caps(void)
{
    Daemon d;
    const char *args[] = {"--http_max_conns_per_addr=2", NULL};
    itest_daemon_start(&d, args);
    ClConn *a = http_idle(d.http_port), *b = http_idle(d.http_port);
    iproc_sleep_ms(100);
    ClConn *c = http_idle(d.http_port);
    T_ASSERT(itest_wait_closed(c, 2000)); /* the third from 127.0.0.1 */
    T_ASSERT(!itest_wait_closed(a, 100) && !itest_wait_closed(b, 100));
    cl_close(c);
    cl_close(a);
    cl_close(b);
    iproc_sleep_ms(100);
    /* the slots came back: a request is served again (this GET is one of two) */
    T_EQ_INT(itest_metric(d.http_port, "careline_http_refused_total{limit=\"per_addr\"}"), 1);
    itest_daemon_down(&d);

    const char *args2[] = {"--http_max_conns=2", NULL};
    itest_daemon_start(&d, args2);
    a = http_idle(d.http_port);
    b = http_idle(d.http_port);
    iproc_sleep_ms(100);
    c = http_idle(d.http_port);
    T_ASSERT(itest_wait_closed(c, 2000));
    cl_close(c);
    cl_close(a);
    cl_close(b);
    iproc_sleep_ms(100);
    T_EQ_INT(itest_metric(d.http_port, "careline_http_refused_total{limit=\"max_conns\"}"), 1);
    T_EQ_INT(itest_metric(d.http_port, "careline_http_connections"), 1); /* this GET */
    itest_daemon_down(&d);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"tls_good_handshake_both_ports", good_handshake_both_ports, 90},
        {"tls_unknown_ca_refused", unknown_ca_refused, 90},
        {"tls_expired_refused", expired_refused, 60},
        {"tls_gateway_link", gateway_link, 90},
        {"tls_wrong_host_refused", wrong_host_refused, 60},
        {"tls_plaintext_to_tls_port_closed_counted", plaintext_to_tls_port, 90},
        {"tls_station_needs_client_cert", station_needs_client_cert, 90},
        {"tls_handshake_bounded_by_hello_timeout", handshake_bounded_by_hello_timeout, 60},
        {"tls_http_trickle_closed_within_deadline", http_trickle_closed_within_deadline, 60},
        {"tls_http_connection_caps", http_connection_caps, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
