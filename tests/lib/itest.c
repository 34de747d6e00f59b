/*
 * itest: process, database and HTTP plumbing for the integration tests. Blocking calls are
 * fine here: this is the test process, not the daemon.
 */
#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "iproc.h"
#include "t.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void itest_daemon_spawn(Daemon *d, const char *const *extra)
{
    memset(d, 0, sizeof(*d));
    static int seq;
    seq++;
    snprintf(d->log_path, sizeof(d->log_path), "%s/dispatchd-%d.log", t_tmpdir(), seq);
    snprintf(d->port_file, sizeof(d->port_file), "%s/ports-%d", t_tmpdir(), seq);
    char bin[512], pf[600], pg[700], rh[128], rp[64];
    snprintf(bin, sizeof(bin), "%s/dispatchd", t_env("CARELINE_BIN"));
    snprintf(pf, sizeof(pf), "--port_file=%s", d->port_file);
    snprintf(pg, sizeof(pg), "--pg_conninfo=%s", t_env("CARELINE_APP_CONNINFO"));
    snprintf(rh, sizeof(rh), "--redis_host=%s", t_env("CARELINE_REDIS_HOST"));
    snprintf(rp, sizeof(rp), "--redis_port=%s", t_env("CARELINE_REDIS_PORT"));
    /* plaintext on loopback (test_tls starts its daemons with certificates) */
    const char *argv[64] = {bin,
                            "--listen_port=0",
                            "--http_port=0",
                            pf,
                            pg,
                            rh,
                            rp,
                            "--log_level=debug",
                            "--allow_plaintext_loopback=1"};
    int argc = 9;
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    d->pid = iproc_spawn(argv, IPROC_INHERIT, IPROC_ERRFILE, d->log_path, false);
}

void itest_daemon_start(Daemon *d, const char *const *extra)
{
    itest_daemon_spawn(d, extra);
    /* 10 s bound: sanitizer builds start slowly */
    if (iproc_scan_file(d->pid, d->port_file, 10000, 2, "proto %d\nhttp %d", &d->proto_port,
                        &d->http_port))
        return;
    itest_daemon_dump_log(d);
    t_fail(__FILE__, __LINE__, "dispatchd did not start (log above)");
}

int itest_log_count(const Daemon *d, const char *needle)
{
    if (access(d->log_path, R_OK) != 0)
        return 0; /* no log yet: nothing logged */
    return (int)t_count_lines(d->log_path, needle);
}

bool itest_daemon_alive(const Daemon *d)
{
    return iproc_alive(d->pid);
}

int itest_daemon_wait_exit(Daemon *d, int timeout_ms)
{
    for (int waited = 0; d->pid > 0 && waited <= timeout_ms; waited += 10) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    return -1;
}

int itest_daemon_stop(Daemon *d, int timeout_ms)
{
    return iproc_stop(&d->pid, SIGTERM, timeout_ms);
}

void itest_daemon_dump_log(const Daemon *d)
{
    iproc_dump_file(d->log_path);
}

PGconn *itest_pg(void)
{
    PGconn *pg = PQconnectdb(t_env("CARELINE_PG_ADMIN"));
    if (PQstatus(pg) != CONNECTION_OK)
        t_fail(__FILE__, __LINE__, "cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
    return pg;
}

PGresult *itest_sql(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        t_fail(__FILE__, __LINE__, "SQL failed: %s\n  %s", PQresultErrorMessage(r), sql);
    return r;
}

long long itest_sql_ll(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = itest_sql(pg, sql, n, params);
    long long v = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

long long itest_wait_sql_ll(PGconn *pg, const char *sql, int n, const char *const *params,
                            long long want, int timeout_ms)
{
    long long v = itest_sql_ll(pg, sql, n, params);
    for (int waited = 0; v != want && waited < timeout_ms; waited += 10) {
        sleep_ms(10);
        v = itest_sql_ll(pg, sql, n, params);
    }
    return v;
}

const char *itest_make_token(PGconn *pg, const char *role, long station_id, char out[64])
{
    unsigned char rnd[16];
    int fd = open("/dev/urandom", O_RDONLY);
    T_ASSERT(fd >= 0 && read(fd, rnd, sizeof(rnd)) == (ssize_t)sizeof(rnd));
    close(fd);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    char sid[32];
    snprintf(sid, sizeof(sid), "%ld", station_id);
    const char *p[] = {out, role, station_id > 0 ? sid : NULL};
    PQclear(itest_sql(pg,
                      "INSERT INTO principals (token_hash, role, station_id, name) "
                      "VALUES (sha256(convert_to($1, 'UTF8')), $2, $3::bigint, 'test ' || $2)",
                      3, p));
    return out;
}

ClConn *itest_connect(const Daemon *d)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", d->proto_port, 3000, err, sizeof(err));
    if (!c)
        t_fail(__FILE__, __LINE__, "%s", err);
    return c;
}

ClConn *itest_login(const Daemon *d, const char *token)
{
    char err[256];
    ClConn *c = itest_connect(d);
    ClEnvelope *r = cl_hello(c, token, "itest", 5000, err, sizeof(err));
    if (!r)
        t_fail(__FILE__, __LINE__, "hello: %s", err);
    if (r->body_case != CARELINE__V1__ENVELOPE__BODY_HELLO_OK)
        t_fail(__FILE__, __LINE__, "hello refused: %s",
               r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    cl_free(r);
    return c;
}

int itest_http_get(int port, const char *path, char *body, size_t bodylen)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", port, 3000, err, sizeof(err));
    if (!c)
        t_fail(__FILE__, __LINE__, "%s", err);
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    T_ASSERT(cl_send_raw(c, req, (size_t)n));
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    int fd = cl_fd(c);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1)
            t_fail(__FILE__, __LINE__, "HTTP GET %s timed out", path);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len + 1 >= cap)
            break;
    }
    buf[len] = '\0';
    cl_close(c);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, bodylen, "%s", b ? b + 4 : "");
    free(buf);
    return status;
}

int itest_https_get(int port, TlsClient *tls, const char *path, char *body, size_t bodylen,
                    char *err, size_t errlen)
{
    ClConn *c = cl_open("127.0.0.1", port, tls, 5000, err, errlen);
    if (!c)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    T_ASSERT(cl_send_raw(c, req, (size_t)n));
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    long r;
    while (len + 1 < cap && (r = cl_recv_raw(c, buf + len, cap - len - 1, 5000)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    cl_close(c);
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, bodylen, "%s", b ? b + 4 : "");
    snprintf(err, errlen, "%s", status < 0 ? "no HTTP answer" : "");
    free(buf);
    return status;
}

long long itest_metric_tls(int http_port, TlsClient *tls, const char *name)
{
    static char body[1 << 18];
    char err[256];
    if (itest_https_get(http_port, tls, "/metrics", body, sizeof(body), err, sizeof(err)) != 200)
        return -1;
    return itest_metric_in(body, name);
}

bool itest_wait_closed(ClConn *c, int timeout_ms)
{
    char buf[4096];
    for (int waited = 0; waited < timeout_ms;) {
        struct pollfd p = {cl_fd(c), POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r == 1) {
            ssize_t n = recv(cl_fd(c), buf, sizeof(buf), 0);
            if (n == 0 || (n < 0 && errno == ECONNRESET))
                return true;
        } else {
            waited += 50;
        }
    }
    return false;
}

long long itest_metric_in(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return atoll(line + n + 1);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

long long itest_metric(int http_port, const char *name)
{
    static char body[1 << 18];
    if (itest_http_get(http_port, "/metrics", body, sizeof(body)) != 200)
        return -1;
    return itest_metric_in(body, name);
}

void itest_daemon_wait_ready(const Daemon *d)
{
    char body[1024];
    for (int i = 0; i < 300; i++) { /* 15 s */
        if (itest_http_get(d->http_port, "/readyz", body, sizeof(body)) == 200)
            return;
        usleep(50000);
    }
    itest_daemon_dump_log(d);
    t_fail(__FILE__, __LINE__, "dispatchd never became ready: %s", body);
}

void itest_daemon_up(Daemon *d, const char *const *extra)
{
    itest_daemon_start(d, extra);
    itest_daemon_wait_ready(d);
}

void itest_daemon_down(Daemon *d)
{
    itest_daemon_down_within(d, 15000);
}

void itest_daemon_down_within(Daemon *d, int timeout_ms)
{
    int rc = itest_daemon_stop(d, timeout_ms);
    if (rc != 0) {
        itest_daemon_dump_log(d);
        t_fail(__FILE__, __LINE__, "dispatchd exited with %d", rc);
    }
}

/* ---- personal data (issue 12) ---------------------------------------------------------- */

void itest_phone_hash(const char *phone, char hex[65])
{
    const char *path = t_env("CARELINE_PHONE_HASH_KEY_FILE");
    FILE *f = fopen(path, "rb");
    if (!f)
        t_fail(__FILE__, __LINE__, "cannot read %s", path);
    unsigned char key[300];
    size_t n = fread(key, 1, sizeof(key), f);
    fclose(f);
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
        n--;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    T_ASSERT(
        HMAC(EVP_sha256(), key, (int)n, (const unsigned char *)phone, strlen(phone), mac, &ml));
    for (unsigned i = 0; i < ml; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

int itest_sh(const char *cmd, char *out, size_t n)
{
    char path[600], full[4096];
    snprintf(path, sizeof(path), "%s/itest_sh.out", t_tmpdir());
    snprintf(full, sizeof(full), "( %s ) >'%s' 2>&1", cmd, path);
    int st = system(full);
    FILE *f = fopen(path, "r");
    T_ASSERT(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
