/*
 * itest: process, database and HTTP plumbing for the integration tests. Blocking calls are
 * fine here: this is the test process, not the daemon.
 */
#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    const char *argv[64] = {bin, "--listen_port=0",  "--http_port=0", pf, pg, rh,
                            rp,  "--log_level=debug"};
    int argc = 8;
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    d->pid = pid;
}

void itest_daemon_start(Daemon *d, const char *const *extra)
{
    itest_daemon_spawn(d, extra);
    for (int i = 0; i < 1000; i++) { /* 10 s bound: sanitizer builds start slowly */
        FILE *f = fopen(d->port_file, "r");
        if (f) {
            int ok = fscanf(f, "proto %d\nhttp %d", &d->proto_port, &d->http_port);
            fclose(f);
            if (ok == 2)
                return;
        }
        if (!itest_daemon_alive(d))
            break;
        sleep_ms(10);
    }
    itest_daemon_dump_log(d);
    t_fail(__FILE__, __LINE__, "dispatchd did not start (log above)");
}

bool itest_daemon_alive(const Daemon *d)
{
    int st;
    return d->pid > 0 && waitpid(d->pid, &st, WNOHANG) == 0;
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
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int st;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
    return -1;
}

void itest_daemon_dump_log(const Daemon *d)
{
    FILE *f = fopen(d->log_path, "r");
    if (!f)
        return;
    char line[2048];
    printf("---- %s ----\n", d->log_path);
    while (fgets(line, sizeof(line), f))
        fputs(line, stdout);
    fclose(f);
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

ClConn *itest_login(const Daemon *d, const char *token)
{
    char err[256];
    ClConn *c = cl_connect("127.0.0.1", d->proto_port, 3000, err, sizeof(err));
    if (!c)
        t_fail(__FILE__, __LINE__, "%s", err);
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

long long itest_metric(int http_port, const char *name)
{
    static char body[1 << 18];
    if (itest_http_get(http_port, "/metrics", body, sizeof(body)) != 200)
        return -1;
    size_t n = strlen(name);
    for (char *line = body; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return atoll(line + n + 1);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
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
    int rc = itest_daemon_stop(d, 15000);
    if (rc != 0) {
        itest_daemon_dump_log(d);
        t_fail(__FILE__, __LINE__, "dispatchd exited with %d", rc);
    }
}
