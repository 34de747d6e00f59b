/*
 * iconsole: bin/station-console under test (see iconsole.h). Output is split into lines by
 * hand over a poll()ed pipe, so every read is bounded by the caller's deadline and a
 * console that hangs fails the case instead of the test program.
 */
#include "iconsole.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "iproc.h"
#include "isession.h"

#define S(x) CARELINE__V1__##x

void icon_start(IconProc *k, const Daemon *d, bool with_stdin, const char *const *args)
{
    memset(k, 0, sizeof(*k));
    k->d = d;
    k->seen = json_array();
    static int seq;
    snprintf(k->err_path, sizeof(k->err_path), "%s/console-%d.err", t_tmpdir(), ++seq);
    int pin[2] = {-1, -1}, pout[2];
    T_ASSERT(pipe2(pout, O_CLOEXEC) == 0);
    T_ASSERT(!with_stdin || pipe2(pin, O_CLOEXEC) == 0);
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/station-console", t_env("CARELINE_BIN"));
    const char *argv[40] = {bin, "--plaintext"}; /* the test daemon is plaintext on loopback */
    int argc = 2;
    for (int i = 0; args[i] && argc < 38; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    k->pid = iproc_spawn(argv, with_stdin ? pin[0] : IPROC_DEVNULL, pout[1], k->err_path, false);
    if (with_stdin)
        close(pin[0]);
    close(pout[1]);
    k->out = pout[0];
    k->in = pin[1];
}

void icon_dump(const IconProc *k)
{
    printf("---- console stdout so far (%zu JSON lines) ----\n", json_array_size(k->seen));
    size_t i;
    json_t *v;
    json_array_foreach(k->seen, i, v)
    {
        char *s = json_dumps(v, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
    }
    iproc_dump_file(k->err_path);
}

bool icon_line(IconProc *k, int timeout_ms, char *out, size_t n)
{
    int64_t deadline = util_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(k->buf, '\n', k->len);
        if (nl) {
            size_t l = (size_t)(nl - k->buf);
            snprintf(out, n, "%.*s", (int)l, k->buf);
            memmove(k->buf, nl + 1, k->len - l - 1);
            k->len -= l + 1;
            json_t *j = out[0] == '{' ? json_loads(out, 0, NULL) : NULL;
            if (j)
                json_array_append_new(k->seen, j);
            return true;
        }
        int left = (int)(deadline - util_now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {k->out, POLLIN, 0};
        int rc = poll(&p, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return false;
        ssize_t r = read(k->out, k->buf + k->len, sizeof(k->buf) - 1 - k->len);
        if (r <= 0)
            return false;
        k->len += (size_t)r;
    }
}

const char *icon_jstr(const json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

int64_t icon_jint(const json_t *j, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(j, key));
}

json_t *icon_wait(IconProc *k, int timeout_ms, const char *event, int64_t job, const char *state)
{
    int64_t deadline = util_now_ms() + timeout_ms;
    char line[8192];
    for (;;) {
        int left = (int)(deadline - util_now_ms());
        if (left <= 0 || !icon_line(k, left, line, sizeof(line)))
            ICON_FAIL(k, "no %s event (job %lld, state %s) within %d ms", event, (long long)job,
                      state ? state : "any", timeout_ms);
        size_t n = json_array_size(k->seen);
        json_t *j = n ? json_array_get(k->seen, n - 1) : NULL;
        if (!j || line[0] != '{')
            continue;
        if (strcmp(icon_jstr(j, "event"), event) == 0 &&
            (job <= 0 || icon_jint(j, "job_id") == job) &&
            (!state || strcmp(icon_jstr(j, "state"), state) == 0))
            return j;
    }
}

int icon_count(const IconProc *k, const char *event, int64_t job, const char *state)
{
    int n = 0;
    size_t i;
    json_t *j;
    json_array_foreach(k->seen, i, j)
    {
        if (strcmp(icon_jstr(j, "event"), event) == 0 &&
            (job <= 0 || icon_jint(j, "job_id") == job) &&
            (!state || strcmp(icon_jstr(j, "state"), state) == 0))
            n++;
    }
    return n;
}

void icon_say(IconProc *k, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    T_ASSERT(k->in >= 0 && n > 0 && (size_t)n < sizeof(line) - 1);
    line[n++] = '\n';
    T_ASSERT(write(k->in, line, (size_t)n) == n);
}

int icon_wait_exit(IconProc *k, int timeout_ms)
{
    return iproc_wait_exit(&k->pid, timeout_ms);
}

void icon_stop(IconProc *k)
{
    if (k->pid > 0) {
        int rc = iproc_stop(&k->pid, SIGTERM, 5000);
        if (rc != 0)
            ICON_FAIL(k, "station-console did not exit cleanly on SIGTERM (status %d)", rc);
    }
    if (k->in >= 0)
        close(k->in);
    close(k->out);
    json_decref(k->seen);
}

/* ---- the daemon side ---- */

int64_t icon_submit_meal(const Daemon *d, ClConn *gw, const char *key, const char *phone,
                         int64_t station, int64_t *request_id)
{
    Careline__V1__SubmitRequest m;
    isess_meal(&m, key, phone);
    m.note = (char *)"少盐 less salt";
    ClEnvelope *r = isess_submit(d, gw, &m, 15000);
    Careline__V1__SubmitResult *s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(s->station_id, station);
    int64_t job = s->job_id;
    if (request_id)
        *request_id = s->request_id;
    cl_free(r);
    return job;
}

char *icon_sql_text(PGconn *pg, const char *sql, const char *p1, char *out, size_t n)
{
    const char *p[] = {p1};
    PGresult *r = itest_sql(pg, sql, 1, p);
    snprintf(out, n, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(none)");
    PQclear(r);
    return out;
}

const char *icon_port_arg(char *buf, size_t n, int port)
{
    snprintf(buf, n, "%d", port);
    return buf;
}
