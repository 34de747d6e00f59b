/*
 * Integration tests of bin/station-console against a real dispatchd, PostgreSQL and Redis:
 * the console runs as a child process with pipes on stdin and stdout, and the test reads
 * its JSON lines (or its text screen) with a bounded poll and drives it through stdin.
 * Auto mode delivers; a daemon restart is survived and the backlog deduped; commands and
 * the daemon's errors; heartbeats keep an otherwise idle session alive; a wrong token
 * exits 2; the text screen for people. Fixture areas 60..69.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "iproc.h"
#include "isession.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#define S(x) CARELINE__V1__##x

static Daemon d;

/* ---- the console as a child process ----------------------------------------------------- */

typedef struct {
    pid_t pid;
    int in;  /* write end of its stdin; -1 when it got /dev/null */
    int out; /* read end of its stdout */
    char buf[1 << 16];
    size_t len;
    json_t *seen; /* every JSON line read so far, in order */
    char err_path[600];
} Con;

/* Starts bin/station-console with args (NULL-terminated, after the program name). */
static void con_start(Con *k, bool with_stdin, const char *const *args)
{
    memset(k, 0, sizeof(*k));
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

static void con_dump(const Con *k)
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

#define CON_FAIL(k, ...)                                                                           \
    do {                                                                                           \
        con_dump(k);                                                                               \
        itest_daemon_dump_log(&d);                                                                 \
        t_fail(__FILE__, __LINE__, __VA_ARGS__);                                                   \
    } while (0)

/* The next line of output (without the newline) into out, or false after timeout_ms or at
 * EOF. JSON lines are also appended to k->seen. */
static bool con_line(Con *k, int timeout_ms, char *out, size_t n)
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

static const char *jstr(const json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

static int64_t jint(const json_t *j, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(j, key));
}

/* Reads lines until a JSON event `event` (with job_id when job > 0, and state when given)
 * shows up; fails the case after timeout_ms. Returns it (borrowed from k->seen). */
static json_t *con_wait(Con *k, int timeout_ms, const char *event, int64_t job, const char *state)
{
    int64_t deadline = util_now_ms() + timeout_ms;
    char line[8192];
    for (;;) {
        int left = (int)(deadline - util_now_ms());
        if (left <= 0 || !con_line(k, left, line, sizeof(line)))
            CON_FAIL(k, "no %s event (job %lld, state %s) within %d ms", event, (long long)job,
                     state ? state : "any", timeout_ms);
        size_t n = json_array_size(k->seen);
        json_t *j = n ? json_array_get(k->seen, n - 1) : NULL;
        if (!j || line[0] != '{')
            continue;
        if (strcmp(jstr(j, "event"), event) == 0 && (job <= 0 || jint(j, "job_id") == job) &&
            (!state || strcmp(jstr(j, "state"), state) == 0))
            return j;
    }
}

/* Counts the lines seen so far matching event (and job, and state when given). */
static int con_count(const Con *k, const char *event, int64_t job, const char *state)
{
    int n = 0;
    size_t i;
    json_t *j;
    json_array_foreach(k->seen, i, j)
    {
        if (strcmp(jstr(j, "event"), event) == 0 && (job <= 0 || jint(j, "job_id") == job) &&
            (!state || strcmp(jstr(j, "state"), state) == 0))
            n++;
    }
    return n;
}

static void con_say(Con *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void con_say(Con *k, const char *fmt, ...)
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

/* Waits up to timeout_ms for the console to exit; its exit status, or -1 if it still runs. */
static int con_wait_exit(Con *k, int timeout_ms)
{
    return iproc_wait_exit(&k->pid, timeout_ms);
}

/* SIGTERM; the console must leave cleanly (exit 0) within 5 s. Frees k. */
static void con_stop(Con *k)
{
    if (k->pid > 0) {
        int rc = iproc_stop(&k->pid, SIGTERM, 5000);
        if (rc != 0)
            CON_FAIL(k, "station-console did not exit cleanly on SIGTERM (status %d)", rc);
    }
    if (k->in >= 0)
        close(k->in);
    close(k->out);
    json_decref(k->seen);
}

/* ---- the daemon side -------------------------------------------------------------------- */

/* Submits a lunch for tomorrow as the gateway; returns the job id (the request must be
 * QUEUED at `station`). */
static int64_t submit_meal(ClConn *gw, const char *key, const char *phone, int64_t station,
                           int64_t *request_id)
{
    Careline__V1__SubmitRequest m;
    isess_meal(&m, key, phone);
    m.note = (char *)"少盐 less salt";
    ClEnvelope *r = isess_submit(&d, gw, &m, 15000);
    Careline__V1__SubmitResult *s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    T_EQ_INT(s->station_id, station);
    int64_t job = s->job_id;
    if (request_id)
        *request_id = s->request_id;
    cl_free(r);
    return job;
}

static char *sql_text(PGconn *pg, const char *sql, const char *p1, char *out, size_t n)
{
    const char *p[] = {p1};
    PGresult *r = itest_sql(pg, sql, 1, p);
    snprintf(out, n, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(none)");
    PQclear(r);
    return out;
}

static const char *port_arg(char *buf, size_t n, int port)
{
    snprintf(buf, n, "%d", port);
    return buf;
}

/* ---- cases ------------------------------------------------------------------------------ */

/* --json --auto-accept --complete-after 200 (stdin /dev/null): three meals are shown,
 * accepted, sent en route and delivered; the console exits by itself after the third
 * (--exit-after 3); PostgreSQL agrees, with each request's events in order. */
static void auto_accept_delivers(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 60, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phones[3][16];
    for (int i = 0; i < 3; i++)
        fix_resident(pg, &f, i + 1, i == 0, phones[i]);
    itest_daemon_up(&d, NULL);
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    Con k;
    con_start(&k, false,
              (const char *const[]){"--port", port_arg(port, sizeof(port), d.proto_port), "--token",
                                    tok, "--json", "--auto-accept", "--complete-after", "200",
                                    "--exit-after", "3", NULL});
    json_t *hello = con_wait(&k, 10000, "connected", 0, NULL);
    T_EQ_INT(jint(hello, "station_id"), st);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t jobs[3], reqs[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "console-auto-%d", i);
        jobs[i] = submit_meal(gw, fix_key(name), phones[i], st, &reqs[i]);
    }
    con_wait(&k, 20000, "exit", 0, NULL);
    T_EQ_INT(con_wait_exit(&k, 5000), 0);
    for (int i = 0; i < 3; i++) {
        /* the offer as pushed, with its fields */
        json_t *offer = NULL;
        size_t x;
        json_t *j;
        json_array_foreach(k.seen, x, j)
        {
            if (strcmp(jstr(j, "event"), "job") == 0 && jint(j, "job_id") == jobs[i] &&
                strcmp(jstr(j, "state"), "offered") == 0) {
                offer = j;
                break;
            }
        }
        if (!offer)
            CON_FAIL(&k, "job %lld was never shown as offered", (long long)jobs[i]);
        T_EQ_INT(jint(offer, "request_id"), reqs[i]);
        T_EQ_STR(jstr(offer, "kind"), "meal_delivery");
        T_EQ_STR(jstr(offer, "meal_slot"), "lunch");
        T_EQ_STR(jstr(offer, "service_date"), fix_tomorrow());
        T_ASSERT(json_is_null(json_object_get(offer, "care_subtype")));
        T_EQ_STR(jstr(offer, "resident"), "测**");
        T_EQ_STR(jstr(offer, "note"), "少盐 less salt");
        T_ASSERT(jstr(offer, "village")[0] && json_is_real(json_object_get(offer, "lat")));
        T_ASSERT(jint(offer, "window_end_ms") - jint(offer, "window_start_ms") == 90 * 60000);
        T_ASSERT(jint(offer, "offer_expires_at_ms") > 0 && jint(offer, "attempt") == 1);
        T_ASSERT(json_is_array(json_object_get(offer, "priority")));
        if (i == 0)
            T_EQ_STR(json_string_value(json_array_get(json_object_get(offer, "priority"), 0)),
                     "lives_alone");
        if (con_count(&k, "update", jobs[i], "accepted") != 1 ||
            con_count(&k, "update", jobs[i], "en_route") != 1 ||
            con_count(&k, "update", jobs[i], "delivered") != 1)
            CON_FAIL(&k, "job %lld: expected one update each: accepted, en_route, delivered",
                     (long long)jobs[i]);
        char id[24], v[256];
        snprintf(id, sizeof(id), "%lld", (long long)jobs[i]);
        T_EQ_STR(sql_text(pg, "SELECT state FROM jobs WHERE id = $1", id, v, sizeof(v)),
                 "delivered");
        snprintf(id, sizeof(id), "%lld", (long long)reqs[i]);
        T_EQ_STR(sql_text(pg, "SELECT state FROM requests WHERE id = $1", id, v, sizeof(v)),
                 "delivered");
        T_EQ_STR(sql_text(pg,
                          "SELECT string_agg(state::text, ',' ORDER BY id) FROM request_events "
                          "WHERE request_id = $1",
                          id, v, sizeof(v)),
                 "queued,accepted,en_route,delivered");
    }
    cl_close(gw);
    con_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* The daemon stops and comes back on the same port: the console says so, reconnects by
 * itself and gets its backlog again; the offered job is the same entry, not a second one. */
static void reconnect_backlog(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 61, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    Con k;
    con_start(&k, true,
              (const char *const[]){"--port", port_arg(port, sizeof(port), d.proto_port), "--token",
                                    tok, "--json", NULL});
    con_wait(&k, 10000, "connected", 0, NULL);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t job = submit_meal(gw, fix_key("console-reconnect"), phone, st, NULL);
    cl_close(gw);
    json_t *first = con_wait(&k, 10000, "job", job, "offered");
    T_ASSERT(json_is_true(json_object_get(first, "first")));

    int old_port = d.proto_port;
    itest_daemon_down(&d);
    json_t *gone = con_wait(&k, 10000, "disconnected", 0, NULL);
    T_ASSERT(jstr(gone, "reason")[0]);
    T_ASSERT(jint(gone, "retry_in_ms") >= 100 && jint(gone, "retry_in_ms") <= 5000);
    usleep(1500 * 1000); /* a few failed attempts while it is down */
    char lp[48];
    snprintf(lp, sizeof(lp), "--listen_port=%d", old_port);
    itest_daemon_up(&d, (const char *const[]){lp, "--http_port=0", NULL});
    T_EQ_INT(d.proto_port, old_port);
    con_wait(&k, 15000, "connected", 0, NULL);
    json_t *again = con_wait(&k, 15000, "job", job, "offered");
    T_ASSERT(json_is_false(json_object_get(again, "first")));
    T_ASSERT(json_is_false(json_object_get(again, "changed")));
    /* failed attempts while it was down were reported, with a growing backoff */
    int downs = con_count(&k, "disconnected", 0, NULL);
    if (downs < 3)
        CON_FAIL(&k, "expected several disconnected events while the daemon was down, got %d",
                 downs);
    /* the screen holds the job once */
    con_say(&k, "list");
    json_t *list = con_wait(&k, 5000, "list", 0, NULL);
    json_t *jobs = json_object_get(list, "jobs");
    T_EQ_INT(json_array_size(jobs), 1);
    T_EQ_INT(jint(json_array_get(jobs, 0), "job_id"), job);
    /* and the session is usable: accept it */
    con_say(&k, "accept %lld", (long long)job);
    json_t *u = con_wait(&k, 10000, "update", job, NULL);
    T_EQ_STR(jstr(u, "state"), "accepted");
    con_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* Commands through stdin in --json mode, and the daemon's answers. Short heartbeats and
 * idle timeout: the session stays up only if the console pings and answers pings. */
static void commands_and_errors(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 62, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phones[2][16];
    fix_resident(pg, &f, 1, false, phones[0]);
    fix_resident(pg, &f, 2, false, phones[1]);
    itest_daemon_up(
        &d, (const char *const[]){"--heartbeat_interval_ms=200", "--idle_timeout_ms=1000", NULL});
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    Con k;
    con_start(&k, true,
              (const char *const[]){"--port", port_arg(port, sizeof(port), d.proto_port), "--token",
                                    tok, "--json", NULL});
    json_t *hello = con_wait(&k, 10000, "connected", 0, NULL);
    T_EQ_INT(jint(hello, "heartbeat_interval_ms"), 200);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t j1 = submit_meal(gw, fix_key("console-cmd-1"), phones[0], st, NULL);
    int64_t j2 = submit_meal(gw, fix_key("console-cmd-2"), phones[1], st, NULL);
    cl_close(gw);
    con_wait(&k, 10000, "job", j1, "offered");
    con_wait(&k, 10000, "job", j2, "offered");

    con_say(&k, "reject %lld full 今天满了", (long long)j1);
    json_t *u = con_wait(&k, 10000, "update", j1, NULL);
    T_EQ_STR(jstr(u, "state"), "rejected");
    T_EQ_STR(jstr(u, "action"), "reject");
    T_ASSERT(json_is_true(json_object_get(u, "changed")));
    char id[24], v[256];
    snprintf(id, sizeof(id), "%lld", (long long)j1);
    T_EQ_STR(sql_text(pg, "SELECT reason_code || ':' || reason FROM jobs WHERE id = $1", id, v,
                      sizeof(v)),
             "station_full:今天满了");

    /* done on an offer: the daemon refuses, and the console shows why */
    con_say(&k, "done %lld", (long long)j2);
    json_t *e = con_wait(&k, 10000, "error", j2, NULL);
    T_EQ_STR(jstr(e, "code"), "INVALID_TRANSITION");
    T_EQ_STR(jstr(e, "action"), "deliver");
    T_ASSERT(jstr(e, "message")[0]);

    con_say(&k, "accept %lld", (long long)j2);
    T_EQ_STR(jstr(con_wait(&k, 10000, "update", j2, NULL), "state"), "accepted");
    con_say(&k, "go %lld", (long long)j2);
    T_EQ_STR(jstr(con_wait(&k, 10000, "update", j2, NULL), "state"), "en_route");
    con_say(&k, "done %lld", (long long)j2); /* a meal: DELIVER */
    u = con_wait(&k, 10000, "update", j2, NULL);
    T_EQ_STR(jstr(u, "state"), "delivered");
    T_EQ_STR(jstr(u, "action"), "deliver");

    con_say(&k, "accept 999999999");
    T_EQ_STR(jstr(con_wait(&k, 10000, "error", 999999999, NULL), "code"), "NOT_FOUND");
    con_say(&k, "fail %lld sleepy", (long long)j2);
    T_EQ_STR(jstr(con_wait(&k, 5000, "error", 0, NULL), "code"), "USAGE");
    con_say(&k, "dance");
    T_EQ_STR(jstr(con_wait(&k, 5000, "error", 0, NULL), "code"), "USAGE");

    /* station status */
    /* a capacity report alone leaves the open state and the staff count as they were */
    snprintf(id, sizeof(id), "%lld", (long long)st);
    con_say(&k, "capacity lunch 5");
    json_t *s = con_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(s, "open")));
    T_EQ_STR(sql_text(pg,
                      "SELECT is_open::text || coalesce(caregivers_on_duty::text, '-') "
                      "FROM stations WHERE id = $1",
                      id, v, sizeof(v)),
             "true-");
    con_say(&k, "open 2");
    s = con_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(s, "open")));
    snprintf(id, sizeof(id), "%lld", (long long)st);
    T_EQ_STR(sql_text(pg, "SELECT is_open::text || caregivers_on_duty FROM stations WHERE id = $1",
                      id, v, sizeof(v)),
             "true2");
    con_say(&k, "capacity lunch 5 %s", fix_tomorrow());
    s = con_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(s, "open")));
    redisContext *rd = fix_redis();
    char key[128];
    snprintf(key, sizeof(key), "{c330281}:lim:%lld:%s:lunch", (long long)st, fix_tomorrow());
    T_EQ_INT(fix_redis_int(rd, key), 5 + 1); /* used so far (j2) + left */
    redisFree(rd);
    con_say(&k, "close");
    s = con_wait(&k, 10000, "status", 0, NULL);
    T_ASSERT(json_is_false(json_object_get(s, "open")));
    T_EQ_STR(sql_text(pg, "SELECT is_open::text || caregivers_on_duty FROM stations WHERE id = $1",
                      id, v, sizeof(v)),
             "false2");

    /* idle for 5 idle timeouts: heartbeats keep the session */
    usleep(2500 * 1000);
    con_say(&k, "list");
    json_t *list = con_wait(&k, 5000, "list", 0, NULL);
    T_ASSERT(json_is_true(json_object_get(list, "connected")));
    T_EQ_INT(json_array_size(json_object_get(list, "jobs")), 0);
    if (con_count(&k, "disconnected", 0, NULL) != 0)
        CON_FAIL(&k, "the session dropped although the console pings and answers pings");
    con_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void wrong_token(void)
{
    itest_daemon_up(&d, NULL);
    char port[16];
    Con k;
    con_start(&k, false,
              (const char *const[]){"--port", port_arg(port, sizeof(port), d.proto_port), "--token",
                                    "not-a-real-token", "--json", NULL});
    int rc = con_wait_exit(&k, 10000);
    if (rc != 2)
        CON_FAIL(&k, "a wrong token should exit 2, got %d", rc);
    char line[4096];
    while (con_line(&k, 100, line, sizeof(line)))
        ;
    T_EQ_INT(con_count(&k, "error", 0, NULL), 1);
    T_EQ_STR(jstr(json_array_get(k.seen, json_array_size(k.seen) - 1), "code"), "AUTH_FAILED");
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -q 'refused the token' %s", k.err_path);
    if (system(cmd) != 0)
        CON_FAIL(&k, "no clear message on stderr");
    /* and a station missing from a tokens file is refused before connecting */
    Con k2;
    char tf[600];
    snprintf(tf, sizeof(tf), "%s/tokens.txt", t_tmpdir());
    FILE *f = fopen(tf, "w");
    T_ASSERT(f);
    fprintf(f, "gateway 0 abc hotline\n");
    fclose(f);
    con_start(&k2, false,
              (const char *const[]){"--port", port, "--tokens", tf, "--station", "7", NULL});
    T_EQ_INT(con_wait_exit(&k2, 5000), 2);
    k.pid = k2.pid = 0;
    con_stop(&k);
    con_stop(&k2);
    itest_daemon_down(&d);
}

/* Nothing listens yet: the console retries with a growing backoff, then connects once the
 * daemon appears on that port. */
static void waits_for_daemon(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 63, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    int free_port = iproc_free_port();
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    Con k;
    con_start(&k, false,
              (const char *const[]){"--port", port_arg(port, sizeof(port), free_port), "--token",
                                    tok, "--json", NULL});
    json_t *e1 = con_wait(&k, 5000, "disconnected", 0, NULL);
    json_t *e2 = con_wait(&k, 5000, "disconnected", 0, NULL);
    json_t *e3 = con_wait(&k, 5000, "disconnected", 0, NULL);
    T_EQ_INT(jint(e1, "retry_in_ms"), 100);
    T_EQ_INT(jint(e2, "retry_in_ms"), 200);
    T_EQ_INT(jint(e3, "retry_in_ms"), 400);
    T_ASSERT(strstr(jstr(e1, "reason"), "refused"));
    char lp[48];
    snprintf(lp, sizeof(lp), "--listen_port=%d", free_port);
    itest_daemon_up(&d, (const char *const[]){lp, NULL});
    json_t *hello = con_wait(&k, 15000, "connected", 0, NULL);
    T_EQ_INT(jint(hello, "station_id"), st);
    con_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* The screen for people: Chinese + English, the offer's details, commands; EOF ends it. */
static void text_screen(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 64, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, true, phone);
    itest_daemon_up(&d, NULL);
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    Con k;
    con_start(&k, true,
              (const char *const[]){"--port", port_arg(port, sizeof(port), d.proto_port), "--token",
                                    tok, NULL});
    ClConn *gw = isess_gateway(&d, pg);
    int64_t job = submit_meal(gw, fix_key("console-text"), phone, st, NULL);
    cl_close(gw);
    char want[64], line[8192];
    snprintf(want, sizeof(want), "#%lld", (long long)job);
    bool headline = false, need = false, who = false, deadline = false, note = false;
    int64_t until = util_now_ms() + 10000;
    while (!(headline && need && who && deadline && note) && util_now_ms() < until &&
           con_line(&k, 1000, line, sizeof(line))) {
        headline |= strstr(line, "新任务") && strstr(line, want) != NULL;
        need |= strstr(line, "午餐送餐") && strstr(line, fix_tomorrow()) != NULL;
        who |= strstr(line, "测**") && strstr(line, "独居") != NULL;
        deadline |= strstr(line, "接单截止") != NULL;
        note |= strstr(line, "少盐") != NULL;
    }
    if (!(headline && need && who && deadline && note))
        CON_FAIL(&k, "text screen incomplete: headline %d need %d resident %d deadline %d note %d",
                 headline, need, who, deadline, note);
    con_say(&k, "accept %lld", (long long)job);
    bool accepted = false;
    until = util_now_ms() + 10000;
    while (!accepted && util_now_ms() < until && con_line(&k, 1000, line, sizeof(line)))
        accepted = strstr(line, "已接单") && strstr(line, want);
    if (!accepted)
        CON_FAIL(&k, "no 已接单 line after accept");
    close(k.in); /* EOF: an operator's console ends */
    k.in = -1;
    T_EQ_INT(con_wait_exit(&k, 5000), 0);
    con_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* --reject-all at the nearer station, --auto-accept at the farther one: the request moves
 * on and is delivered there; both consoles stop by themselves (--exit-after 1). */
static void reject_all_redispatches(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 65, &f);
    int64_t near = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.002});
    int64_t far = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.02});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    char tn[64], tf[64], port[16];
    itest_make_token(pg, "station", near, tn);
    itest_make_token(pg, "station", far, tf);
    port_arg(port, sizeof(port), d.proto_port);
    Con a, b;
    con_start(&a, false,
              (const char *const[]){"--port", port, "--token", tn, "--json", "--reject-all", "full",
                                    "--exit-after", "1", NULL});
    con_start(&b, false,
              (const char *const[]){"--port", port, "--token", tf, "--json", "--auto-accept",
                                    "--complete-after", "100", "--exit-after", "1", NULL});
    con_wait(&a, 10000, "connected", 0, NULL);
    con_wait(&b, 10000, "connected", 0, NULL);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t req;
    int64_t j1 = submit_meal(gw, fix_key("console-reject-all"), phone, near, &req);
    cl_close(gw);
    json_t *u = con_wait(&a, 10000, "update", j1, NULL);
    T_EQ_STR(jstr(u, "state"), "rejected");
    con_wait(&a, 5000, "exit", 0, NULL);
    T_EQ_INT(con_wait_exit(&a, 5000), 0);
    json_t *offer = con_wait(&b, 15000, "job", 0, "offered");
    T_EQ_INT(jint(offer, "request_id"), req);
    T_EQ_INT(jint(offer, "attempt"), 2);
    int64_t j2 = jint(offer, "job_id");
    T_EQ_STR(jstr(con_wait(&b, 10000, "update", j2, "delivered"), "action"), "deliver");
    con_wait(&b, 5000, "exit", 0, NULL);
    T_EQ_INT(con_wait_exit(&b, 5000), 0);
    char id[24], v[256];
    snprintf(id, sizeof(id), "%lld", (long long)req);
    char want[64];
    snprintf(want, sizeof(want), "delivered:%lld", (long long)far);
    T_EQ_STR(sql_text(pg, "SELECT state || ':' || station_id FROM requests WHERE id = $1", id, v,
                      sizeof(v)),
             want);
    con_stop(&a);
    con_stop(&b);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* An offer not accepted in time is withdrawn: the console is told (state expired) and the
 * job leaves its screen. */
static void offer_expires(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 66, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, (const char *const[]){"--offer_timeout_s=5", NULL});
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    Con k;
    con_start(&k, true,
              (const char *const[]){"--port", port_arg(port, sizeof(port), d.proto_port), "--token",
                                    tok, "--json", NULL});
    con_wait(&k, 10000, "connected", 0, NULL);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t job = submit_meal(gw, fix_key("console-expire"), phone, st, NULL);
    cl_close(gw);
    json_t *o = con_wait(&k, 10000, "job", job, "offered");
    T_ASSERT(jint(o, "offer_expires_at_ms") > 0);
    con_wait(&k, 20000, "job", job, "expired");
    con_say(&k, "list");
    T_EQ_INT(json_array_size(json_object_get(con_wait(&k, 5000, "list", 0, NULL), "jobs")), 0);
    con_say(&k, "accept %lld", (long long)job);
    T_EQ_STR(jstr(con_wait(&k, 10000, "error", job, NULL), "code"), "INVALID_TRANSITION");
    con_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"console_auto_accept_delivers", auto_accept_delivers, 90},
        {"console_reconnect_backlog", reconnect_backlog, 90},
        {"console_commands_and_errors", commands_and_errors, 90},
        {"console_wrong_token", wrong_token, 60},
        {"console_waits_for_daemon", waits_for_daemon, 60},
        {"console_text_screen", text_screen, 60},
        {"console_reject_all_redispatches", reject_all_redispatches, 90},
        {"console_offer_expires", offer_expires, 90},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
