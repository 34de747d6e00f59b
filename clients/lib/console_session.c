/*
 * console_session: the station console's link to dispatchd: connect, Hello, heartbeats,
 * reconnect with backoff, and what the daemon sends (offers, updates, withdrawals, results).
 * On every HelloOk the console sends StationResume with the last position the daemon gave
 * (JobOffer.position, BacklogEnd.position): the daemon sends what it missed, then
 * BacklogEnd. After a full backlog (a first connect, a rebuilt feed, a position the feed no
 * longer holds) the jobs it did not resend are gone and leave the table; a daemon older
 * than BacklogEnd is given SETTLE_MS instead.
 */
#include "console_state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
        con_emit(c,
                 json_pack("{s:s, s:s, s:I, s:I}", "event", "disconnected", "reason", reason,
                           "retry_in_ms", (json_int_t)wait, "attempts", (json_int_t)c->failures));
        fprintf(stderr, "station-console: %s dispatchd at %s: %s; retrying in %.1f s\n",
                was_up ? "lost the connection to" : "cannot reach", where, reason,
                (double)wait / 1000);
        return;
    }
    if (was_up)
        con_say(c,
                "⚠ 与调度系统的连接断开 / lost the connection to dispatchd at %s: %s; "
                "reconnecting in %.1f s\n",
                where, reason, (double)wait / 1000);
    else
        con_say(c, "⚠ 无法连接调度系统 / cannot reach dispatchd at %s: %s; retrying in %.1f s%s\n",
                where, reason, (double)wait / 1000,
                c->failures > 1 ? " (仍在重试 still trying)" : "");
}

void con_link_start(Console *c)
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
    if (!con_send_env(c, &env))
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
        con_emit(c, json_pack("{s:s, s:s, s:s, s:b}", "event", "error", "code", code, "message",
                              msg, "fatal", 1));
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
    Careline__V1__StationResume res = CARELINE__V1__STATION_RESUME__INIT;
    res.position = c->position;
    ClEnvelope renv = CARELINE__V1__ENVELOPE__INIT;
    renv.seq = c->next_seq++;
    renv.body_case = BODY(STATION_RESUME);
    renv.station_resume = &res;
    if (!con_send_env(c, &renv)) {
        link_down(c, "could not send StationResume");
        return;
    }
    if (c->opt.json) {
        con_emit(c, json_pack("{s:s, s:I, s:s, s:s, s:I}", "event", "connected", "station_id",
                              (json_int_t)ok->station_id, "station_name", ok->principal_name,
                              "server_id", ok->server_id, "heartbeat_interval_ms",
                              (json_int_t)c->heartbeat_ms));
        return;
    }
    con_say(c, "✔ 已连接调度系统 / connected to dispatchd at %s:%d — 站点 station #%lld %s\n",
            c->opt.host, c->opt.port, (long long)ok->station_id, ok->principal_name);
    con_say(c, "  新任务会自动显示；输入 help 查看命令 / new jobs appear here; type `help` for "
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
            con_emit(c, json_pack("{s:s, s:I, s:s}", "event", "gone", "job_id", (json_int_t)id,
                                  "reason", "not in the backlog after reconnecting"));
        else
            con_say(c,
                    "— 任务 job #%lld 已不在本站待办中（断线期间已结束或被撤回）/ no longer "
                    "open: finished or withdrawn while disconnected\n",
                    (long long)id);
        con_job_remove(c, j);
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

/* A state change of a job we show (JobOffer.state_only): merged into what we show. */
static void on_change(Console *c, ClEnvelope *env)
{
    JobOffer *o = env->job_offer;
    int64_t id = o->job_id;
    Job *j = con_job_find(c, id);
    if (!j || state_rank(o->state) < state_rank(j->o->state)) {
        if (!j && cview_state_final(o->state))
            con_job_finished(c, id);
        if (j)
            j->resent = true;
        cl_free(env);
        return;
    }
    bool changed = (int)j->o->state != (int)o->state;
    j->o->state = o->state;
    if (o->resident_phone[0]) { /* swapped: each string stays its own message's to free */
        char *t = j->o->resident_phone;
        j->o->resident_phone = o->resident_phone;
        o->resident_phone = t;
    }
    cl_free(env);
    j->resent = true;
    o = j->o;
    if (c->opt.json) {
        json_t *line = json_pack("{s:s}", "event", "job");
        json_t *body = cview_job_json(o);
        json_object_update(line, body);
        json_decref(body);
        json_object_set_new(line, "first", json_false());
        json_object_set_new(line, "changed", json_boolean(changed));
        con_emit(c, line);
    } else if (changed) {
        con_say(c, "• 任务 job #%lld → %s\n", (long long)id, cview_state_label(o->state));
        if (o->resident_phone[0])
            con_say(c, "    老人电话 resident phone: %s（可提前联系 call ahead）\n",
                    o->resident_phone);
    }
    if (cview_state_final(o->state)) {
        con_job_remove(c, j);
        con_job_finished(c, id);
        return;
    }
    con_auto_step(c, j);
}

/* The backlog after StationResume is complete. */
static void on_backlog_end(Console *c, const Careline__V1__BacklogEnd *b)
{
    if (b->position[0])
        snprintf(c->position, sizeof(c->position), "%s", b->position);
    if (b->full)
        sweep_stale(c); /* every open job was sent: what was not is gone */
    else
        c->settle_at_ms = 0; /* only what we missed: changes of our jobs came as such */
    if (c->opt.json)
        con_emit(c, json_pack("{s:s, s:b, s:I}", "event", "backlog_end", "full", b->full, "jobs",
                              (json_int_t)b->jobs));
    else
        con_say(c, "✔ 待办已同步 backlog complete (%u 个任务 jobs%s)\n", b->jobs,
                b->full ? "" : " missed while away");
}

static void on_offer(Console *c, ClEnvelope *env)
{
    if (env->job_offer->position[0])
        snprintf(c->position, sizeof(c->position), "%s", env->job_offer->position);
    if (env->job_offer->state_only) {
        on_change(c, env);
        return;
    }
    JobOffer *o = env->job_offer;
    int64_t id = o->job_id;
    Job *j = con_job_find(c, id);
    /* a re-read that started before our own update landed may arrive after its reply: such
     * a push is older than what we know, so it is dropped (we asked, the reply told us) */
    if ((j && state_rank(o->state) < state_rank(j->o->state)) ||
        (!j && con_finished_has(c, id) && !cview_state_final(o->state))) {
        if (j)
            j->resent = true;
        cl_free(env);
        return;
    }
    bool first = !j && !con_finished_has(c, id);
    int old_state = j ? j->o->state : 0;
    bool had_phone = j && j->o->resident_phone[0];
    bool changed = !j ? first : old_state != (int)o->state;
    if (j) {
        cl_free(j->env);
        j->env = env;
        j->o = o;
    } else if (!cview_state_final(o->state)) {
        j = con_job_add(c, env);
        qsort(c->jobs, c->njobs, sizeof(Job), con_job_cmp);
        j = con_job_find(c, id);
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
        con_emit(c, line);
    } else if (first) {
        int64_t now = util_wall_ms();
        if (o->state == S(JOB_STATE__OFFERED)) {
            con_say(c, "\a\n");
            cview_job_print(stdout, o, "【新任务 NEW】", now);
            con_say(c, "    → 接单 accept %lld   拒单 reject %lld full|staff|area|other\n",
                    (long long)id, (long long)id);
        } else if (!cview_state_final(o->state)) {
            cview_job_print(stdout, o, "\n【未完成 OPEN】", now);
        }
        c->printed = true;
    } else if (changed) {
        con_say(c, "• 任务 job #%lld → %s\n", (long long)id, cview_state_label(o->state));
        if (o->resident_phone[0])
            con_say(c, "    老人电话 resident phone: %s（可提前联系 call ahead）\n",
                    o->resident_phone);
    } else if (!had_phone && o->resident_phone[0]) {
        con_say(c, "• 任务 job #%lld 老人电话 resident phone: %s（可提前联系 call ahead）\n",
                (long long)id, o->resident_phone);
    }
    if (cview_state_final(o->state)) {
        if (j)
            con_job_remove(c, j);
        else
            cl_free(env);
        con_job_finished(c, id);
        return;
    }
    con_auto_step(c, j);
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
    Job *j = con_job_find(c, r->job_id);
    if (j) {
        j->busy = false;
        j->o->state = r->state;
    }
    if (c->opt.json)
        con_emit(c, json_pack("{s:s, s:I, s:s, s:s, s:b}", "event", "update", "job_id",
                              (json_int_t)r->job_id, "action", cview_action_name(p->action),
                              "state", cview_state_name(r->state), "changed", r->changed));
    else
        con_say(c, "✔ 任务 job #%lld: %s%s\n", (long long)r->job_id, cview_state_label(r->state),
                r->changed ? "" : "（已是此状态 already so）");
    if (cview_state_final(r->state)) {
        if (j)
            con_job_remove(c, j);
        con_job_finished(c, r->job_id);
        return;
    }
    if (j)
        con_auto_step(c, j);
}

static void on_error_reply(Console *c, const Pending *p, const Careline__V1__Error *e)
{
    const char *code = cview_error_name(e->code);
    if (p->job_id) {
        Job *j = con_job_find(c, p->job_id);
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
        con_emit(c, ev);
        return;
    }
    if (p->job_id)
        con_say(c, "✘ 任务 job #%lld %s: %s / %s: %s\n", (long long)p->job_id,
                cview_action_name(p->action), error_hint_zh(e->code), code, e->message);
    else
        con_say(c, "✘ 站点状态未保存 / status not saved: %s / %s: %s\n", error_hint_zh(e->code),
                code, e->message);
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
        con_emit(c, ev);
        return;
    }
    con_say(c, "✔ 站点状态已保存 / status saved: %s，在岗护理员 caregivers on duty %d",
            a->open ? "营业中 open" : "已暂停 closed", c->staff > 0 ? c->staff : 0);
    if (p->slot)
        con_say(c, "；%s还能供应 %d 份 / %s meals left: %d%s%s",
                p->slot == S(MEAL_SLOT__DINNER) ? "晚餐" : "午餐", p->capacity,
                cview_slot_name(p->slot), p->capacity, p->date[0] ? " on " : " today", p->date);
    if (a->jobs_redispatched)
        con_say(c, "；%u 个待接单任务已转给其他站点 / %u offers passed on to other stations",
                a->jobs_redispatched, a->jobs_redispatched);
    con_say(c, "\n");
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
        if (!con_send_env(c, &r))
            link_down(c, "could not answer a Ping");
        break;
    }
    case BODY(PONG):
        break;
    case BODY(JOB_OFFER):
        on_offer(c, env);
        return; /* env kept by the table or freed there */
    case BODY(BACKLOG_END):
        on_backlog_end(c, env->backlog_end);
        break;
    case BODY(JOB_UPDATE_RESULT):
        if (con_pending_take(c, env->seq, &p))
            on_update_result(c, &p, env->job_update_result);
        break;
    case BODY(STATION_STATUS_ACK):
        if (con_pending_take(c, env->seq, &p))
            on_status_ack(c, &p, env->station_status_ack);
        break;
    case BODY(ERROR):
        if (env->seq && con_pending_take(c, env->seq, &p)) {
            on_error_reply(c, &p, env->error);
        } else {
            char why[400];
            snprintf(why, sizeof(why), "%s: %s", cview_error_name(env->error->code),
                     env->error->message);
            if (env->error->fatal) {
                link_down(c, why);
            } else if (c->opt.json) {
                con_emit(c, json_pack("{s:s, s:s, s:s, s:b}", "event", "error", "code",
                                      cview_error_name(env->error->code), "message",
                                      env->error->message, "fatal", 0));
            } else {
                con_say(c, "✘ dispatchd: %s\n", why);
            }
        }
        break;
    default:
        break; /* something newer than us: ignore */
    }
    cl_free(env);
}

void con_link_io(Console *c, short revents)
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

void con_link_tick(Console *c, int64_t now)
{
    switch (c->state) {
    case LINK_DOWN:
        if (now >= c->retry_at_ms)
            con_link_start(c);
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
            if (!con_send_env(c, &env))
                link_down(c, "could not send a Ping (connection stuck)");
        }
        if (c->settle_at_ms && now >= c->settle_at_ms)
            sweep_stale(c);
        break;
    }
}
