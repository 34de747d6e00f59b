/*
 * station-console: a station operator's screen. Jobs pushed by dispatchd appear as they
 * come (offers, updates, withdrawals) and the operator answers with short commands; with
 * --json the same events are one JSON line each, for scripts and tests. One poll() loop
 * watches the daemon's socket, stdin and a few deadlines (reconnect backoff, heartbeats,
 * auto-mode timers), so nothing the operator types waits on the network and pushes appear
 * while they type. The screen is a table of open jobs keyed by job id: the backlog the
 * daemon resends after every reconnect updates entries in place instead of repeating them.
 *
 *   station-console [--host H] [--port P] (--token T | --tokens FILE --station ID) [--json]
 *                   [--auto-accept] [--complete-after MS] [--reject-all REASON]
 *                   [--exit-after N] [--caregivers N]
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cl.h"
#include "console_link.h"
#include "console_view.h"
#include "common/util.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define CONNECT_TIMEOUT_MS 5000
#define HELLO_TIMEOUT_MS   10000
#define SETTLE_MS          5000 /* after a reconnect, jobs not resent by then are gone */
#define DEAD_AFTER_BEATS   3    /* silence for this many heartbeats: the link is dead */
#define FINISHED_RING      4096 /* finished job ids remembered, to ignore their late pushes */
#define MAX_NOTE           500  /* the daemon's limit on JobUpdate.note */
#define EXIT_USAGE         2    /* bad arguments, no token, or the token was refused */

typedef struct {
    const char *host, *token_arg, *tokens_file;
    int port;
    long station;
    bool json, auto_accept;
    long complete_after_ms; /* -1: off */
    int reject_all;         /* ReasonCode; 0: off */
    long exit_after;        /* 0: off */
    int caregivers;         /* -1: not given */
} Opts;

typedef struct {
    ClEnvelope *env; /* owns the latest push for this job */
    JobOffer *o;     /* env->job_offer; its state follows our own updates too */
    bool resent;     /* pushed again since the last HelloOk */
    bool busy;       /* an update of ours is in flight for it */
    int64_t due_ms;  /* auto mode: when next_action is due (monotonic); 0 = none */
    int next_action;
} Job;

typedef struct {
    uint64_t seq;
    int64_t job_id; /* 0 for a StationStatus */
    int action;
    bool open; /* StationStatus: the open flag sent */
    int slot;  /* StationStatus: the capacity reported, if any (slot 0: none) */
    int capacity;
    char date[11]; /* "" = today */
} Pending;

typedef enum {
    LINK_DOWN,       /* waiting for retry_at */
    LINK_CONNECTING, /* TCP connect in progress */
    LINK_HELLO,      /* Hello sent, waiting for HelloOk */
    LINK_UP,         /* authenticated; pushes flow */
} LinkState;

typedef struct {
    Opts opt;
    char *token;
    bool interactive_tty; /* text mode with a terminal on stdin: show a prompt */
    ClinkConn *link;
    LinkState state;
    bool was_up;           /* the last connection got as far as HelloOk */
    int64_t deadline_ms;   /* CONNECTING / HELLO: give up at */
    int64_t retry_at_ms;   /* DOWN: next attempt */
    int64_t backoff_ms;    /* the next wait; BACKOFF_MIN_MS..BACKOFF_MAX_MS */
    unsigned failures;     /* failed attempts since the last success */
    uint32_t heartbeat_ms; /* from HelloOk */
    int64_t next_ping_ms, last_rx_ms, settle_at_ms;
    uint64_t next_seq, ping_nonce;
    int64_t station_id;
    char station_name[128];
    Job *jobs;
    size_t njobs, capjobs;
    Pending *pend;
    size_t npend, cappend;
    int64_t finished[FINISHED_RING]; /* ring of recently finished job ids */
    size_t nfinished_ring;
    long finished_count; /* jobs seen reaching a final state (for --exit-after) */
    bool open_known, open;
    int staff; /* caregivers on duty to report; -1 unknown */
    bool stdin_open;
    char line[2048];
    size_t linelen;
    bool line_too_long;
    bool printed; /* something went to the screen since the last prompt */
    bool quit;
    int exit_code;
} Console;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ---- output ----------------------------------------------------------------------------- */

static void out_flush(Console *c)
{
    if (fflush(stdout) != 0 && errno == EPIPE) {
        c->quit = true; /* nobody reads us any more */
        c->exit_code = 1;
    }
}

/* Prints one JSON event line and drops the reference. */
static void emit(Console *c, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    out_flush(c);
}

/* Text for the operator (text mode only). */
static void say(Console *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void say(Console *c, const char *fmt, ...)
{
    if (c->opt.json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    c->printed = true;
}

/* A problem found here, not by the daemon: text, or an error event with the given code
 * ("USAGE", "NOT_CONNECTED") in JSON. */
static void local_error(Console *c, const char *code, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void local_error(Console *c, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->opt.json) {
        emit(c, json_pack("{s:s, s:s, s:s}", "event", "error", "code", code, "message", msg));
        return;
    }
    say(c, "✘ %s\n", msg);
}
#define usage_error(c, ...) local_error(c, "USAGE", __VA_ARGS__)

static void prompt(Console *c)
{
    if (c->interactive_tty && c->printed && !c->quit) {
        fputs("> ", stdout);
        c->printed = false;
    }
    out_flush(c);
}

/* ---- the job table ---------------------------------------------------------------------- */

static Job *job_find(Console *c, int64_t id)
{
    for (size_t i = 0; i < c->njobs; i++)
        if (c->jobs[i].o->job_id == id)
            return &c->jobs[i];
    return NULL;
}

static Job *job_add(Console *c, ClEnvelope *env)
{
    if (c->njobs == c->capjobs) {
        c->capjobs = c->capjobs ? 2 * c->capjobs : 16;
        c->jobs = xrealloc(c->jobs, c->capjobs * sizeof(Job));
    }
    Job *j = &c->jobs[c->njobs++];
    *j = (Job){.env = env, .o = env->job_offer};
    return j;
}

/* Keeps the table in job id order (the order the daemon lists them in), for `list`. */
static int job_cmp(const void *a, const void *b)
{
    int64_t x = ((const Job *)a)->o->job_id, y = ((const Job *)b)->o->job_id;
    return (x > y) - (x < y);
}

static void job_remove(Console *c, Job *j)
{
    cl_free(j->env);
    size_t i = (size_t)(j - c->jobs);
    memmove(&c->jobs[i], &c->jobs[i + 1], (c->njobs - i - 1) * sizeof(Job));
    c->njobs--;
}

static bool finished_has(const Console *c, int64_t id)
{
    size_t n = c->nfinished_ring < FINISHED_RING ? c->nfinished_ring : FINISHED_RING;
    for (size_t i = 0; i < n; i++)
        if (c->finished[i] == id)
            return true;
    return false;
}

/* A job reached a final state: remember it, count it, maybe stop (--exit-after). */
static void job_finished(Console *c, int64_t id)
{
    if (finished_has(c, id))
        return;
    c->finished[c->nfinished_ring++ % FINISHED_RING] = id;
    c->finished_count++;
    if (c->opt.exit_after > 0 && c->finished_count >= c->opt.exit_after && !c->quit) {
        if (c->opt.json)
            emit(c, json_pack("{s:s, s:s, s:I}", "event", "exit", "reason", "exit-after reached",
                              "jobs_finished", (json_int_t)c->finished_count));
        else
            say(c, "已处理完 %ld 个任务，退出 / %ld jobs finished, exiting\n", c->finished_count,
                c->finished_count);
        c->quit = true;
        c->exit_code = 0;
    }
}

/* ---- sending ---------------------------------------------------------------------------- */

static bool send_env(Console *c, ClEnvelope *env)
{
    if (c->state != LINK_UP && env->body_case != BODY(HELLO))
        return false;
    return clink_send(c->link, env);
}

static void pending_add(Console *c, Pending p)
{
    if (c->npend == c->cappend) {
        c->cappend = c->cappend ? 2 * c->cappend : 16;
        c->pend = xrealloc(c->pend, c->cappend * sizeof(Pending));
    }
    c->pend[c->npend++] = p;
}

static bool pending_take(Console *c, uint64_t seq, Pending *out)
{
    for (size_t i = 0; i < c->npend; i++) {
        if (c->pend[i].seq == seq) {
            *out = c->pend[i];
            c->pend[i] = c->pend[--c->npend];
            return true;
        }
    }
    return false;
}

static bool not_connected(Console *c)
{
    if (c->state == LINK_UP)
        return false;
    local_error(c, "NOT_CONNECTED",
                "未连接到 dispatchd，请稍后再试 / not connected to dispatchd yet; try again when "
                "it says connected");
    return true;
}

/* Sends a JobUpdate; the reply is matched by seq in on_frame. */
static bool send_update(Console *c, int64_t job_id, int action, int reason, const char *note)
{
    if (not_connected(c))
        return false;
    Careline__V1__JobUpdate u = CARELINE__V1__JOB_UPDATE__INIT;
    u.job_id = job_id;
    u.action = action;
    u.reason_code = reason;
    u.note = (char *)(note ? note : "");
    ClEnvelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = c->next_seq++;
    env.body_case = BODY(JOB_UPDATE);
    env.job_update = &u;
    if (!send_env(c, &env)) {
        local_error(c, "NOT_CONNECTED", "could not send the update (connection stuck); try again");
        return false;
    }
    pending_add(c, (Pending){.seq = env.seq, .job_id = job_id, .action = action});
    Job *j = job_find(c, job_id);
    if (j)
        j->busy = true;
    return true;
}

static bool send_status(Console *c, bool open, int slot, int capacity, const char *date)
{
    if (not_connected(c))
        return false;
    Careline__V1__StationStatus st = CARELINE__V1__STATION_STATUS__INIT;
    Careline__V1__SlotCapacity sc = CARELINE__V1__SLOT_CAPACITY__INIT;
    Careline__V1__SlotCapacity *caps[1] = {&sc};
    st.open = open;
    st.caregivers_on_duty = c->staff > 0 ? c->staff : 0;
    st.capacity_only = slot != 0; /* a capacity report leaves open/staff as they are */
    if (slot) {
        sc.slot = slot;
        sc.service_date = (char *)(date ? date : "");
        sc.capacity_left = capacity;
        st.n_capacity = 1;
        st.capacity = caps;
    }
    ClEnvelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = c->next_seq++;
    env.body_case = BODY(STATION_STATUS);
    env.station_status = &st;
    if (!send_env(c, &env)) {
        local_error(c, "NOT_CONNECTED", "could not send the status (connection stuck); try again");
        return false;
    }
    Pending p = {.seq = env.seq, .open = open, .slot = slot, .capacity = capacity};
    snprintf(p.date, sizeof(p.date), "%s", date ? date : "");
    pending_add(c, p);
    return true;
}

static int done_action(const JobOffer *o)
{
    return o->kind == S(SERVICE_KIND__HOME_CARE) ? S(JOB_ACTION__COMPLETE) : S(JOB_ACTION__DELIVER);
}

/* Auto modes: the next step for a job whose state just became known. */
static void auto_step(Console *c, Job *j)
{
    if (c->state != LINK_UP || j->busy)
        return;
    int st = j->o->state;
    if (st == S(JOB_STATE__OFFERED)) {
        if (c->opt.reject_all)
            send_update(c, j->o->job_id, S(JOB_ACTION__REJECT), c->opt.reject_all, "");
        else if (c->opt.auto_accept)
            send_update(c, j->o->job_id, S(JOB_ACTION__ACCEPT), 0, "");
        return;
    }
    if (c->opt.complete_after_ms < 0 || j->due_ms)
        return;
    if (st == S(JOB_STATE__JOB_ACCEPTED)) {
        j->due_ms = util_now_ms() + c->opt.complete_after_ms;
        j->next_action = S(JOB_ACTION__GO_EN_ROUTE);
    } else if (st == S(JOB_STATE__JOB_EN_ROUTE)) {
        /* after the en-route reply, so the request's history keeps its order */
        send_update(c, j->o->job_id, done_action(j->o), 0, "");
    }
}

static void run_timers(Console *c, int64_t now)
{
    if (c->state != LINK_UP)
        return;
    for (size_t i = 0; i < c->njobs; i++) {
        Job *j = &c->jobs[i];
        if (j->due_ms && now >= j->due_ms && !j->busy) {
            j->due_ms = 0;
            send_update(c, j->o->job_id, j->next_action, 0, "");
        }
    }
}

/* ---- the link --------------------------------------------------------------------------- */

static void link_down(Console *c, const char *reason)
{
    clink_close(c->link);
    bool was_up = c->state == LINK_UP;
    c->state = LINK_DOWN;
    /* replies to what was in flight are lost; the backlog after reconnecting tells where
     * each job stands */
    c->npend = 0;
    for (size_t i = 0; i < c->njobs; i++)
        c->jobs[i].busy = false;
    int64_t wait = c->backoff_ms;
    c->retry_at_ms = util_now_ms() + wait;
    c->backoff_ms = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
    c->failures++;
    /* every failure while backing off, then about once a minute at the 5 s cap */
    bool show = was_up || wait < BACKOFF_MAX_MS || c->failures % 12 == 0;
    if (!show)
        return;
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", c->opt.host, c->opt.port);
    if (c->opt.json) {
        emit(c, json_pack("{s:s, s:s, s:I, s:I}", "event", "disconnected", "reason", reason,
                          "retry_in_ms", (json_int_t)wait, "attempts", (json_int_t)c->failures));
        fprintf(stderr, "station-console: %s dispatchd at %s: %s; retrying in %.1f s\n",
                was_up ? "lost the connection to" : "cannot reach", where, reason,
                (double)wait / 1000);
        return;
    }
    if (was_up)
        say(c,
            "⚠ 与调度系统的连接断开 / lost the connection to dispatchd at %s: %s; "
            "reconnecting in %.1f s\n",
            where, reason, (double)wait / 1000);
    else
        say(c, "⚠ 无法连接调度系统 / cannot reach dispatchd at %s: %s; retrying in %.1f s%s\n",
            where, reason, (double)wait / 1000, c->failures > 1 ? " (仍在重试 still trying)" : "");
}

static void link_start(Console *c)
{
    char err[256];
    if (!clink_connect(c->link, c->opt.host, c->opt.port, err, sizeof(err))) {
        link_down(c, err);
        return;
    }
    c->state = LINK_CONNECTING;
    c->deadline_ms = util_now_ms() + CONNECT_TIMEOUT_MS;
}

static void link_established(Console *c)
{
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = c->token;
    h.client_name = (char *)"station-console/1.0";
    ClEnvelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = c->next_seq++;
    env.body_case = BODY(HELLO);
    env.hello = &h;
    c->state = LINK_HELLO;
    c->deadline_ms = util_now_ms() + HELLO_TIMEOUT_MS;
    if (!send_env(c, &env))
        link_down(c, "could not send Hello");
}

static void fatal_auth(Console *c, const char *code, const char *msg)
{
    fprintf(stderr,
            "station-console: dispatchd refused the token (%s: %s).\n"
            "  Check --token, or the line for this station in --tokens (written by `make run` to "
            "var/dev-tokens.txt).\n"
            "  令牌无效：请检查 --token 或令牌文件中本站的那一行。\n",
            code, msg);
    if (c->opt.json)
        emit(c, json_pack("{s:s, s:s, s:s, s:b}", "event", "error", "code", code, "message", msg,
                          "fatal", 1));
    c->quit = true;
    c->exit_code = EXIT_USAGE;
}

static void on_hello_reply(Console *c, ClEnvelope *r)
{
    if (r->body_case == BODY(ERROR)) {
        int code = r->error->code;
        if (code == S(ERROR_CODE__AUTH_FAILED) || code == S(ERROR_CODE__BAD_VERSION) ||
            code == S(ERROR_CODE__FORBIDDEN)) {
            fatal_auth(c, cview_error_name(code), r->error->message);
            return;
        }
        char why[400];
        snprintf(why, sizeof(why), "%s: %s", cview_error_name(code), r->error->message);
        link_down(c, why);
        return;
    }
    if (r->body_case != BODY(HELLO_OK)) {
        link_down(c, "unexpected reply to Hello");
        return;
    }
    const Careline__V1__HelloOk *ok = r->hello_ok;
    if (ok->role != S(ROLE__ROLE_STATION) || ok->station_id <= 0) {
        fatal_auth(c, "NOT_A_STATION", "the token is valid but is not a station's token");
        return;
    }
    c->state = LINK_UP;
    c->was_up = true;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->failures = 0;
    c->station_id = ok->station_id;
    snprintf(c->station_name, sizeof(c->station_name), "%s", ok->principal_name);
    c->heartbeat_ms = ok->heartbeat_interval_ms ? ok->heartbeat_interval_ms : 30000;
    int64_t now = util_now_ms();
    c->next_ping_ms = now + c->heartbeat_ms;
    c->settle_at_ms = c->njobs ? now + SETTLE_MS : 0;
    for (size_t i = 0; i < c->njobs; i++)
        c->jobs[i].resent = false;
    if (c->opt.json) {
        emit(c,
             json_pack("{s:s, s:I, s:s, s:s, s:I}", "event", "connected", "station_id",
                       (json_int_t)ok->station_id, "station_name", ok->principal_name, "server_id",
                       ok->server_id, "heartbeat_interval_ms", (json_int_t)c->heartbeat_ms));
        return;
    }
    say(c, "✔ 已连接调度系统 / connected to dispatchd at %s:%d — 站点 station #%lld %s\n",
        c->opt.host, c->opt.port, (long long)ok->station_id, ok->principal_name);
    say(c, "  新任务会自动显示；输入 help 查看命令 / new jobs appear here; type `help` for "
           "commands\n");
}

/* After a reconnect the daemon resends every open job; the ones it did not resend finished
 * or were withdrawn while we were away (it cannot tell a new session about them). */
static void sweep_stale(Console *c)
{
    c->settle_at_ms = 0;
    for (size_t i = 0; i < c->njobs;) {
        Job *j = &c->jobs[i];
        if (j->resent || j->busy) {
            i++;
            continue;
        }
        int64_t id = j->o->job_id;
        if (c->opt.json)
            emit(c, json_pack("{s:s, s:I, s:s}", "event", "gone", "job_id", (json_int_t)id,
                              "reason", "not in the backlog after reconnecting"));
        else
            say(c,
                "— 任务 job #%lld 已不在本站待办中（断线期间已结束或被撤回）/ no longer "
                "open: finished or withdrawn while disconnected\n",
                (long long)id);
        job_remove(c, j);
    }
}

/* ---- what the daemon sends -------------------------------------------------------------- */

/* Jobs only move forward: OFFERED, then ACCEPTED, then EN_ROUTE, then a final state. */
static int state_rank(int state)
{
    return cview_state_final(state)              ? 4
           : state == S(JOB_STATE__JOB_EN_ROUTE) ? 3
           : state == S(JOB_STATE__JOB_ACCEPTED) ? 2
                                                 : 1;
}

static void on_offer(Console *c, ClEnvelope *env)
{
    JobOffer *o = env->job_offer;
    int64_t id = o->job_id;
    Job *j = job_find(c, id);
    /* a re-read that started before our own update landed may arrive after its reply: such
     * a push is older than what we know, so it is dropped (we asked, the reply told us) */
    if ((j && state_rank(o->state) < state_rank(j->o->state)) ||
        (!j && finished_has(c, id) && !cview_state_final(o->state))) {
        if (j)
            j->resent = true;
        cl_free(env);
        return;
    }
    bool first = !j && !finished_has(c, id);
    int old_state = j ? j->o->state : 0;
    bool had_phone = j && j->o->resident_phone[0];
    bool changed = !j ? first : old_state != (int)o->state;
    if (j) {
        cl_free(j->env);
        j->env = env;
        j->o = o;
    } else if (!cview_state_final(o->state)) {
        j = job_add(c, env);
        qsort(c->jobs, c->njobs, sizeof(Job), job_cmp);
        j = job_find(c, id);
    }
    if (j)
        j->resent = true;
    if (c->opt.json) {
        json_t *line = json_pack("{s:s}", "event", "job");
        json_t *body = cview_job_json(o);
        json_object_update(line, body);
        json_decref(body);
        json_object_set_new(line, "first", json_boolean(first));
        json_object_set_new(line, "changed", json_boolean(changed));
        emit(c, line);
    } else if (first) {
        int64_t now = util_wall_ms();
        if (o->state == S(JOB_STATE__OFFERED)) {
            say(c, "\a\n");
            cview_job_print(stdout, o, "【新任务 NEW】", now);
            say(c, "    → 接单 accept %lld   拒单 reject %lld full|staff|area|other\n",
                (long long)id, (long long)id);
        } else if (!cview_state_final(o->state)) {
            cview_job_print(stdout, o, "\n【未完成 OPEN】", now);
        }
        c->printed = true;
    } else if (changed) {
        say(c, "• 任务 job #%lld → %s\n", (long long)id, cview_state_label(o->state));
        if (o->resident_phone[0])
            say(c, "    老人电话 resident phone: %s（可提前联系 call ahead）\n", o->resident_phone);
    } else if (!had_phone && o->resident_phone[0]) {
        say(c, "• 任务 job #%lld 老人电话 resident phone: %s（可提前联系 call ahead）\n",
            (long long)id, o->resident_phone);
    }
    if (cview_state_final(o->state)) {
        if (j)
            job_remove(c, j);
        else
            cl_free(env);
        job_finished(c, id);
        return;
    }
    auto_step(c, j);
}

static const char *error_hint_zh(int code)
{
    switch (code) {
    case S(ERROR_CODE__INVALID_TRANSITION):
        return "任务当前状态不允许此操作";
    case S(ERROR_CODE__NOT_FOUND):
        return "不是本站的任务或任务不存在";
    case S(ERROR_CODE__INVALID_ARGUMENT):
        return "参数有误";
    case S(ERROR_CODE__UNAVAILABLE):
    case S(ERROR_CODE__OVERLOADED):
        return "系统暂时繁忙，请稍后重试";
    case S(ERROR_CODE__FORBIDDEN):
        return "无权限";
    case S(ERROR_CODE__UNSUPPORTED):
        return "调度系统版本不支持此操作";
    default:
        return "出错了";
    }
}

static void on_update_result(Console *c, const Pending *p, const Careline__V1__JobUpdateResult *r)
{
    Job *j = job_find(c, r->job_id);
    if (j) {
        j->busy = false;
        j->o->state = r->state;
    }
    if (c->opt.json)
        emit(c, json_pack("{s:s, s:I, s:s, s:s, s:b}", "event", "update", "job_id",
                          (json_int_t)r->job_id, "action", cview_action_name(p->action), "state",
                          cview_state_name(r->state), "changed", r->changed));
    else
        say(c, "✔ 任务 job #%lld: %s%s\n", (long long)r->job_id, cview_state_label(r->state),
            r->changed ? "" : "（已是此状态 already so）");
    if (cview_state_final(r->state)) {
        if (j)
            job_remove(c, j);
        job_finished(c, r->job_id);
        return;
    }
    if (j)
        auto_step(c, j);
}

static void on_error_reply(Console *c, const Pending *p, const Careline__V1__Error *e)
{
    const char *code = cview_error_name(e->code);
    if (p->job_id) {
        Job *j = job_find(c, p->job_id);
        if (j)
            j->busy = false;
    }
    if (c->opt.json) {
        json_t *ev = json_pack("{s:s, s:s, s:s, s:b}", "event", "error", "code", code, "message",
                               e->message, "fatal", e->fatal);
        if (p->job_id) {
            json_object_set_new(ev, "job_id", json_integer(p->job_id));
            json_object_set_new(ev, "action", json_string(cview_action_name(p->action)));
        } else {
            json_object_set_new(ev, "request", json_string("station_status"));
        }
        emit(c, ev);
        return;
    }
    if (p->job_id)
        say(c, "✘ 任务 job #%lld %s: %s / %s: %s\n", (long long)p->job_id,
            cview_action_name(p->action), error_hint_zh(e->code), code, e->message);
    else
        say(c, "✘ 站点状态未保存 / status not saved: %s / %s: %s\n", error_hint_zh(e->code), code,
            e->message);
}

static void on_status_ack(Console *c, const Pending *p, const Careline__V1__StationStatusAck *a)
{
    c->open_known = true;
    c->open = a->open;
    ASSERT(p->job_id == 0);
    if (c->opt.json) {
        json_t *ev = json_pack("{s:s, s:I, s:b, s:I, s:i}", "event", "status", "station_id",
                               (json_int_t)a->station_id, "open", a->open, "jobs_redispatched",
                               (json_int_t)a->jobs_redispatched, "caregivers_on_duty",
                               c->staff > 0 ? c->staff : 0);
        if (p->slot)
            json_object_set_new(ev, "capacity",
                                json_pack("{s:s, s:s, s:i}", "slot", cview_slot_name(p->slot),
                                          "service_date", p->date, "capacity_left", p->capacity));
        emit(c, ev);
        return;
    }
    say(c, "✔ 站点状态已保存 / status saved: %s，在岗护理员 caregivers on duty %d",
        a->open ? "营业中 open" : "已暂停 closed", c->staff > 0 ? c->staff : 0);
    if (p->slot)
        say(c, "；%s还能供应 %d 份 / %s meals left: %d%s%s",
            p->slot == S(MEAL_SLOT__DINNER) ? "晚餐" : "午餐", p->capacity,
            cview_slot_name(p->slot), p->capacity, p->date[0] ? " on " : " today", p->date);
    if (a->jobs_redispatched)
        say(c, "；%u 个待接单任务已转给其他站点 / %u offers passed on to other stations",
            a->jobs_redispatched, a->jobs_redispatched);
    say(c, "\n");
}

/* One frame from the daemon while up (or the Hello reply). Takes ownership of env. */
static void on_frame(Console *c, ClEnvelope *env)
{
    c->last_rx_ms = util_now_ms();
    if (c->state == LINK_HELLO) {
        on_hello_reply(c, env);
        cl_free(env);
        return;
    }
    Pending p;
    switch (env->body_case) {
    case BODY(PING): {
        Careline__V1__Pong pong = CARELINE__V1__PONG__INIT;
        pong.nonce = env->ping->nonce;
        ClEnvelope r = CARELINE__V1__ENVELOPE__INIT;
        r.seq = env->seq;
        r.body_case = BODY(PONG);
        r.pong = &pong;
        if (!send_env(c, &r))
            link_down(c, "could not answer a Ping");
        break;
    }
    case BODY(PONG):
        break;
    case BODY(JOB_OFFER):
        on_offer(c, env);
        return; /* env kept by the table or freed there */
    case BODY(JOB_UPDATE_RESULT):
        if (pending_take(c, env->seq, &p))
            on_update_result(c, &p, env->job_update_result);
        break;
    case BODY(STATION_STATUS_ACK):
        if (pending_take(c, env->seq, &p))
            on_status_ack(c, &p, env->station_status_ack);
        break;
    case BODY(ERROR):
        if (env->seq && pending_take(c, env->seq, &p)) {
            on_error_reply(c, &p, env->error);
        } else {
            char why[400];
            snprintf(why, sizeof(why), "%s: %s", cview_error_name(env->error->code),
                     env->error->message);
            if (env->error->fatal) {
                link_down(c, why);
            } else if (c->opt.json) {
                emit(c, json_pack("{s:s, s:s, s:s, s:b}", "event", "error", "code",
                                  cview_error_name(env->error->code), "message",
                                  env->error->message, "fatal", 0));
            } else {
                say(c, "✘ dispatchd: %s\n", why);
            }
        }
        break;
    default:
        break; /* something newer than us: ignore */
    }
    cl_free(env);
}

static void link_io(Console *c, short revents)
{
    char err[256], why[256];
    bool ok = clink_io(c->link, revents, err, sizeof(err));
    if (c->state == LINK_CONNECTING) {
        if (!ok)
            link_down(c, err);
        else if (clink_established(c->link))
            link_established(c);
        return;
    }
    /* frames received before a close still count: an Error{AUTH_FAILED} or
     * Error{SHUTTING_DOWN} arrives just before the daemon closes */
    while ((c->state == LINK_HELLO || c->state == LINK_UP) && !c->quit) {
        bool bad;
        ClEnvelope *env = clink_next(c->link, &bad, why, sizeof(why));
        if (bad) {
            link_down(c, why);
            return;
        }
        if (!env)
            break;
        on_frame(c, env);
    }
    if (!ok && !c->quit && (c->state == LINK_HELLO || c->state == LINK_UP))
        link_down(c, err);
}

static void link_tick(Console *c, int64_t now)
{
    switch (c->state) {
    case LINK_DOWN:
        if (now >= c->retry_at_ms)
            link_start(c);
        break;
    case LINK_CONNECTING:
    case LINK_HELLO:
        if (now >= c->deadline_ms)
            link_down(c, c->state == LINK_CONNECTING ? "connect timed out" : "no answer to Hello");
        break;
    case LINK_UP:
        if (now - c->last_rx_ms > (int64_t)DEAD_AFTER_BEATS * c->heartbeat_ms) {
            link_down(c, "dispatchd stopped answering (no traffic for several heartbeats)");
            break;
        }
        if (now >= c->next_ping_ms) {
            Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
            ping.nonce = ++c->ping_nonce;
            ClEnvelope env = CARELINE__V1__ENVELOPE__INIT;
            env.seq = c->next_seq++;
            env.body_case = BODY(PING);
            env.ping = &ping;
            c->next_ping_ms = now + c->heartbeat_ms;
            if (!send_env(c, &env))
                link_down(c, "could not send a Ping (connection stuck)");
        }
        if (c->settle_at_ms && now >= c->settle_at_ms)
            sweep_stale(c);
        break;
    }
}

/* ---- commands --------------------------------------------------------------------------- */

static const char help_text[] =
    "命令 commands (ID = 任务编号 job number):\n"
    "  list                              列出本站未完成的任务 / show open jobs\n"
    "  accept ID                         接单 / accept an offer\n"
    "  reject ID full|staff|area|other [备注 note]\n"
    "                                    拒单：满员|人手不足|不在服务范围|其他 / reject\n"
    "  go ID                             出发 / someone is on the way\n"
    "  done ID                           送达（送餐）或完成（上门）/ delivered or done\n"
    "  fail ID nothome|unwell|refused|other [备注 note]\n"
    "                                    未完成：老人不在家|身体不适|拒绝服务|其他 / failed\n"
    "  open [N]                          营业（N = 在岗护理员人数）/ open, N caregivers on duty\n"
    "  close                             暂停接单（待接单的任务转给其他站）/ close now\n"
    "  staff N                           在岗护理员人数 / caregivers on duty\n"
    "  capacity lunch|dinner N [YYYY-MM-DD]  还能供应的餐数（默认今天）/ meals left\n"
    "  help                              帮助 / this text\n"
    "  quit                              退出 / leave\n"
    "中文命令也可以 (also in Chinese): 列表 接单 拒单 出发 完成 失败 营业 暂停 人数 余量 帮助 "
    "退出\n";

static const char *alias(const char *w)
{
    static const char *const map[][2] = {
        {"列表", "list"},  {"ls", "list"},       {"接单", "accept"}, {"拒单", "reject"},
        {"出发", "go"},    {"完成", "done"},     {"送达", "done"},   {"失败", "fail"},
        {"营业", "open"},  {"开门", "open"},     {"暂停", "close"},  {"关门", "close"},
        {"人数", "staff"}, {"余量", "capacity"}, {"帮助", "help"},   {"?", "help"},
        {"退出", "quit"},  {"exit", "quit"},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (strcmp(w, map[i][0]) == 0)
            return map[i][1];
    return w;
}

static int reason_of(const char *w, bool fail)
{
    static const struct {
        const char *word;
        int code;
        bool fail;
    } map[] = {
        {"full", S(REASON_CODE__STATION_FULL), false},
        {"满员", S(REASON_CODE__STATION_FULL), false},
        {"staff", S(REASON_CODE__NO_STAFF), false},
        {"人手不足", S(REASON_CODE__NO_STAFF), false},
        {"area", S(REASON_CODE__OUT_OF_AREA), false},
        {"超出范围", S(REASON_CODE__OUT_OF_AREA), false},
        {"nothome", S(REASON_CODE__RESIDENT_NOT_HOME), true},
        {"不在家", S(REASON_CODE__RESIDENT_NOT_HOME), true},
        {"unwell", S(REASON_CODE__RESIDENT_UNWELL), true},
        {"不适", S(REASON_CODE__RESIDENT_UNWELL), true},
        {"refused", S(REASON_CODE__RESIDENT_REFUSED), true},
        {"拒绝", S(REASON_CODE__RESIDENT_REFUSED), true},
    };
    if (strcasecmp(w, "other") == 0 || strcmp(w, "其他") == 0)
        return S(REASON_CODE__REASON_OTHER);
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (map[i].fail == fail && strcasecmp(w, map[i].word) == 0)
            return map[i].code;
    return 0;
}

/* Splits off the next space-separated word; returns it or NULL at the end. */
static char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return NULL;
    char *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

static bool parse_long(const char *w, long lo, long hi, long *out)
{
    if (!w)
        return false;
    if (*w == '#')
        w++;
    char *end;
    errno = 0;
    long v = strtol(w, &end, 10);
    if (errno || end == w || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void cmd_list(Console *c)
{
    if (c->opt.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->njobs; i++)
            json_array_append_new(arr, cview_job_json(c->jobs[i].o));
        emit(c, json_pack("{s:s, s:o, s:b}", "event", "list", "jobs", arr, "connected",
                          c->state == LINK_UP));
        return;
    }
    if (!c->njobs) {
        say(c, "目前没有未完成的任务 / no open jobs%s\n",
            c->state == LINK_UP ? "" : "（未连接 not connected）");
        return;
    }
    say(c, "本站未完成的任务 / open jobs (%zu)%s:\n", c->njobs,
        c->state == LINK_UP ? "" : "（未连接，可能不是最新 not connected, may be stale）");
    int64_t now = util_wall_ms();
    for (size_t i = 0; i < c->njobs; i++)
        cview_job_line(stdout, c->jobs[i].o, now);
}

static void cmd_job(Console *c, const char *cmd, char *rest)
{
    long id;
    char *w = next_word(&rest);
    if (!parse_long(w, 1, LONG_MAX, &id)) {
        usage_error(c, "%s 需要任务编号 / `%s ID` needs a job number, e.g. `%s 12`", cmd, cmd, cmd);
        return;
    }
    Job *j = job_find(c, id);
    if (strcmp(cmd, "accept") == 0) {
        send_update(c, id, S(JOB_ACTION__ACCEPT), 0, "");
    } else if (strcmp(cmd, "go") == 0) {
        send_update(c, id, S(JOB_ACTION__GO_EN_ROUTE), 0, "");
    } else if (strcmp(cmd, "done") == 0) {
        if (!j) {
            usage_error(c, "任务 #%ld 不在本屏 / job %ld is not on this screen (see `list`)", id,
                        id);
            return;
        }
        send_update(c, id, done_action(j->o), 0, "");
    } else { /* reject / fail */
        bool fail = strcmp(cmd, "fail") == 0;
        char *rw = next_word(&rest);
        int reason = rw ? reason_of(rw, fail) : 0;
        if (!reason) {
            usage_error(c, fail ? "fail ID nothome|unwell|refused|other [备注 note]"
                                : "reject ID full|staff|area|other [备注 note]");
            return;
        }
        while (*rest == ' ' || *rest == '\t')
            rest++;
        size_t n = strlen(rest);
        if (n > MAX_NOTE || !util_utf8_valid(rest, n)) {
            usage_error(c, "备注最多 %d 字节 / the note must be at most %d bytes of UTF-8",
                        MAX_NOTE, MAX_NOTE);
            return;
        }
        send_update(c, id, fail ? S(JOB_ACTION__FAIL) : S(JOB_ACTION__REJECT), reason, rest);
    }
}

static void cmd_status(Console *c, const char *cmd, char *rest)
{
    char *w = next_word(&rest);
    long n;
    if (strcmp(cmd, "staff") == 0) {
        if (!parse_long(w, 0, 10000, &n)) {
            usage_error(c, "staff N: 在岗护理员人数 / caregivers on duty, 0..10000");
            return;
        }
        c->staff = (int)n;
        if (c->open_known)
            send_status(c, c->open, 0, 0, NULL);
        else
            say(c,
                "在岗 %d 人，将随 open/close 一起发送 / noted; sent with the next open or "
                "close\n",
                c->staff);
    } else if (strcmp(cmd, "open") == 0) {
        if (w && !parse_long(w, 0, 10000, &n)) {
            usage_error(c, "open [N]: N = 在岗护理员人数 / caregivers on duty, 0..10000");
            return;
        }
        if (w)
            c->staff = (int)n;
        if (c->staff < 0) {
            usage_error(c, "请同时告诉系统在岗护理员人数，例如 `open 3`（只送餐的站点写 0）/ say "
                           "how many caregivers are on duty, e.g. `open 3` (0 for meals only): "
                           "the daemon records it with every status");
            return;
        }
        send_status(c, true, 0, 0, NULL);
    } else if (strcmp(cmd, "close") == 0) {
        send_status(c, false, 0, 0, NULL);
    } else { /* capacity */
        int slot = 0;
        if (w && (strcasecmp(w, "lunch") == 0 || strcmp(w, "午餐") == 0))
            slot = S(MEAL_SLOT__LUNCH);
        else if (w && (strcasecmp(w, "dinner") == 0 || strcmp(w, "晚餐") == 0))
            slot = S(MEAL_SLOT__DINNER);
        char *nw = next_word(&rest), *date = next_word(&rest);
        if (!slot || !parse_long(nw, 0, 100000, &n) ||
            (date && (strlen(date) != 10 || date[4] != '-' || date[7] != '-'))) {
            usage_error(c, "capacity lunch|dinner N [YYYY-MM-DD]: 还能供应的餐数 / meals left");
            return;
        }
        send_status(c, c->open, slot, (int)n, date);
    }
}

static void on_command(Console *c, char *line)
{
    char *rest = line;
    char *w = next_word(&rest);
    if (!w)
        return;
    const char *cmd = alias(w);
    if (strcmp(cmd, "help") == 0) {
        if (c->opt.json)
            emit(c, json_pack("{s:s, s:s}", "event", "help", "text", help_text));
        else
            say(c, "%s", help_text);
    } else if (strcmp(cmd, "quit") == 0) {
        c->quit = true;
    } else if (strcmp(cmd, "list") == 0) {
        cmd_list(c);
    } else if (strcmp(cmd, "accept") == 0 || strcmp(cmd, "reject") == 0 || strcmp(cmd, "go") == 0 ||
               strcmp(cmd, "done") == 0 || strcmp(cmd, "fail") == 0) {
        cmd_job(c, cmd, rest);
    } else if (strcmp(cmd, "open") == 0 || strcmp(cmd, "close") == 0 || strcmp(cmd, "staff") == 0 ||
               strcmp(cmd, "capacity") == 0) {
        cmd_status(c, cmd, rest);
    } else {
        usage_error(c, "不认识的命令 / unknown command \"%s\"; type `help`", w);
    }
}

static void stdin_read(Console *c)
{
    char buf[1024];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        c->stdin_open = false;
        if (!c->opt.json) /* scripts keep running on stdin=/dev/null */
            c->quit = true;
        return;
    }
    for (ssize_t i = 0; i < n && !c->quit; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            c->line[c->linelen] = '\0';
            if (c->linelen && c->line[c->linelen - 1] == '\r')
                c->line[c->linelen - 1] = '\0';
            if (c->line_too_long)
                usage_error(c, "输入太长 / line too long (max %zu bytes)", sizeof(c->line) - 1);
            else
                on_command(c, c->line);
            c->linelen = 0;
            c->line_too_long = false;
            c->printed = true;
        } else if (c->linelen + 1 < sizeof(c->line)) {
            c->line[c->linelen++] = ch;
        } else {
            c->line_too_long = true;
        }
    }
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: station-console [--host 127.0.0.1] [--port 7400]\n"
            "                       (--token T | --tokens var/dev-tokens.txt --station ID)\n"
            "                       [--json] [--auto-accept] [--complete-after MS]\n"
            "                       [--reject-all full|staff|area|other] [--exit-after N]\n"
            "                       [--caregivers N]\n"
            "  --json             one JSON line per event (scripts); stdin commands still work\n"
            "  --auto-accept      accept every offer at once\n"
            "  --complete-after MS  accepted jobs go en route MS later, then are delivered/done\n"
            "  --reject-all R     reject every offer with reason R (re-dispatch demos)\n"
            "  --exit-after N     exit 0 once N jobs reached a final state\n"
            "  --caregivers N     caregivers on duty, reported with open/close/capacity\n"
            "Type `help` in the console for its commands.\n");
    exit(EXIT_USAGE);
}

static void parse_args(int argc, char **argv, Opts *o)
{
    *o = (Opts){.host = "127.0.0.1", .port = 7400, .complete_after_ms = -1, .caregivers = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
        if (OPT("--host")) {
            o->host = v;
        } else if (OPT("--port")) {
            if (!parse_long(v, 1, 65535, &n))
                usage();
            o->port = (int)n;
        } else if (OPT("--token")) {
            o->token_arg = v;
        } else if (OPT("--tokens")) {
            o->tokens_file = v;
        } else if (OPT("--station")) {
            if (!parse_long(v, 1, 0x7fffffffL, &o->station))
                usage();
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--auto-accept") == 0) {
            o->auto_accept = true;
        } else if (OPT("--complete-after")) {
            if (!parse_long(v, 0, 86400000, &o->complete_after_ms))
                usage();
        } else if (OPT("--reject-all")) {
            o->reject_all = reason_of(v, false);
            if (!o->reject_all)
                usage();
        } else if (OPT("--exit-after")) {
            if (!parse_long(v, 1, 1000000000, &o->exit_after))
                usage();
        } else if (OPT("--caregivers")) {
            if (!parse_long(v, 0, 10000, &n))
                usage();
            o->caregivers = (int)n;
        } else {
            usage();
        }
#undef OPT
    }
    if (o->auto_accept && o->reject_all) {
        fprintf(stderr, "station-console: --auto-accept and --reject-all exclude each other\n");
        exit(EXIT_USAGE);
    }
    if (!o->token_arg && !o->station) {
        fprintf(stderr, "station-console: give --token T, or --tokens FILE --station ID\n");
        usage();
    }
}

static char *load_token(const Opts *o)
{
    if (o->token_arg)
        return xstrdup(o->token_arg);
    const char *path = o->tokens_file ? o->tokens_file : "var/dev-tokens.txt";
    char *t = cl_token_from_file(path, "station", o->station);
    if (!t) {
        fprintf(stderr,
                "station-console: no token for station %ld in %s (run `make run` first, or give "
                "--token)\n",
                o->station, path);
        exit(EXIT_USAGE);
    }
    return t;
}

static int poll_timeout(const Console *c, int64_t now)
{
    int64_t next = now + 1000; /* at least once a second (offer countdowns, signals) */
    if (c->state == LINK_DOWN && c->retry_at_ms < next)
        next = c->retry_at_ms;
    if ((c->state == LINK_CONNECTING || c->state == LINK_HELLO) && c->deadline_ms < next)
        next = c->deadline_ms;
    if (c->state == LINK_UP) {
        if (c->next_ping_ms < next)
            next = c->next_ping_ms;
        if (c->settle_at_ms && c->settle_at_ms < next)
            next = c->settle_at_ms;
        for (size_t i = 0; i < c->njobs; i++)
            if (c->jobs[i].due_ms && !c->jobs[i].busy && c->jobs[i].due_ms < next)
                next = c->jobs[i].due_ms;
    }
    return next <= now ? 0 : (int)(next - now);
}

int main(int argc, char **argv)
{
    Console con = {0};
    Console *c = &con;
    parse_args(argc, argv, &c->opt);
    c->token = load_token(&c->opt);
    c->staff = c->opt.caregivers;
    c->interactive_tty = !c->opt.json && isatty(STDIN_FILENO);
    c->stdin_open = true;
    c->link = clink_new();
    c->backoff_ms = BACKOFF_MIN_MS;
    c->next_seq = 1;
    if (c->opt.json)
        setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR and we leave cleanly */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    say(c, "站点控制台 station console — 正在连接 connecting to dispatchd at %s:%d …\n",
        c->opt.host, c->opt.port);
    link_start(c);
    while (!c->quit && !got_signal) {
        prompt(c);
        int64_t now = util_now_ms();
        struct pollfd pf[2];
        nfds_t n = 0;
        int link_i = -1, in_i = -1;
        if (clink_fd(c->link) >= 0) {
            pf[n] = (struct pollfd){clink_fd(c->link), clink_events(c->link), 0};
            link_i = (int)n++;
        }
        if (c->stdin_open) {
            pf[n] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
            in_i = (int)n++;
        }
        int rc = poll(pf, n, poll_timeout(c, now));
        if (rc < 0 && errno != EINTR) {
            fprintf(stderr, "station-console: poll: %s\n", strerror(errno));
            c->exit_code = 1;
            break;
        }
        if (rc > 0 && in_i >= 0 && pf[in_i].revents)
            stdin_read(c);
        if (rc > 0 && link_i >= 0 && pf[link_i].revents && !c->quit &&
            clink_fd(c->link) == pf[link_i].fd)
            link_io(c, pf[link_i].revents);
        if (c->quit)
            break;
        now = util_now_ms();
        link_tick(c, now);
        run_timers(c, now);
    }
    if (got_signal && c->opt.json)
        emit(c, json_pack("{s:s, s:s}", "event", "exit", "reason",
                          got_signal == SIGINT ? "SIGINT" : "SIGTERM"));
    else if (!c->opt.json && c->exit_code == 0)
        say(c, "\n再见 / bye\n");
    out_flush(c);
    for (size_t i = 0; i < c->njobs; i++)
        cl_free(c->jobs[i].env);
    free(c->jobs);
    free(c->pend);
    clink_free(c->link);
    free(c->token);
    return c->exit_code;
}
