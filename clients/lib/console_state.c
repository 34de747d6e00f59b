/*
 * console_state: the station console's screen output (text or JSON lines), its table of
 * open jobs, the requests it sends and auto mode's timers. Finished job ids are kept in a
 * ring so a push that arrives after the job ended does not bring it back.
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

/* ---- output ----------------------------------------------------------------------------- */

void con_flush(Console *c)
{
    if (fflush(stdout) != 0 && errno == EPIPE) {
        c->quit = true; /* nobody reads us any more */
        c->exit_code = 1;
    }
}

/* Prints one JSON event line and drops the reference. */
void con_emit(Console *c, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    con_flush(c);
}

/* Text for the operator (text mode only). */
void con_say(Console *c, const char *fmt, ...)
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
void con_local_error(Console *c, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->opt.json) {
        con_emit(c, json_pack("{s:s, s:s, s:s}", "event", "error", "code", code, "message", msg));
        return;
    }
    con_say(c, "✘ %s\n", msg);
}

void con_prompt(Console *c)
{
    if (c->interactive_tty && c->printed && !c->quit) {
        fputs("> ", stdout);
        c->printed = false;
    }
    con_flush(c);
}

/* ---- the job table ---------------------------------------------------------------------- */

Job *con_job_find(Console *c, int64_t id)
{
    for (size_t i = 0; i < c->njobs; i++)
        if (c->jobs[i].o->job_id == id)
            return &c->jobs[i];
    return NULL;
}

Job *con_job_add(Console *c, ClEnvelope *env)
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
int con_job_cmp(const void *a, const void *b)
{
    int64_t x = ((const Job *)a)->o->job_id, y = ((const Job *)b)->o->job_id;
    return (x > y) - (x < y);
}

void con_job_remove(Console *c, Job *j)
{
    cl_free(j->env);
    size_t i = (size_t)(j - c->jobs);
    memmove(&c->jobs[i], &c->jobs[i + 1], (c->njobs - i - 1) * sizeof(Job));
    c->njobs--;
}

bool con_finished_has(const Console *c, int64_t id)
{
    size_t n = c->nfinished_ring < FINISHED_RING ? c->nfinished_ring : FINISHED_RING;
    for (size_t i = 0; i < n; i++)
        if (c->finished[i] == id)
            return true;
    return false;
}

/* A job reached a final state: remember it, count it, maybe stop (--exit-after). */
void con_job_finished(Console *c, int64_t id)
{
    if (con_finished_has(c, id))
        return;
    c->finished[c->nfinished_ring++ % FINISHED_RING] = id;
    c->finished_count++;
    if (c->opt.exit_after > 0 && c->finished_count >= c->opt.exit_after && !c->quit) {
        if (c->opt.json)
            con_emit(c,
                     json_pack("{s:s, s:s, s:I}", "event", "exit", "reason", "exit-after reached",
                               "jobs_finished", (json_int_t)c->finished_count));
        else
            con_say(c, "已处理完 %ld 个任务，退出 / %ld jobs finished, exiting\n",
                    c->finished_count, c->finished_count);
        c->quit = true;
        c->exit_code = 0;
    }
}

/* ---- sending ---------------------------------------------------------------------------- */

bool con_send_env(Console *c, ClEnvelope *env)
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

bool con_pending_take(Console *c, uint64_t seq, Pending *out)
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
    con_local_error(
        c, "NOT_CONNECTED",
        "未连接到 dispatchd，请稍后再试 / not connected to dispatchd yet; try again when "
        "it says connected");
    return true;
}

/* Sends a JobUpdate; the reply is matched by seq in on_frame. */
bool con_send_update(Console *c, int64_t job_id, int action, int reason, const char *note)
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
    if (!con_send_env(c, &env)) {
        con_local_error(c, "NOT_CONNECTED",
                        "could not send the update (connection stuck); try again");
        return false;
    }
    pending_add(c, (Pending){.seq = env.seq, .job_id = job_id, .action = action});
    Job *j = con_job_find(c, job_id);
    if (j)
        j->busy = true;
    return true;
}

bool con_send_status(Console *c, bool open, int slot, int capacity, const char *date)
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
    if (!con_send_env(c, &env)) {
        con_local_error(c, "NOT_CONNECTED",
                        "could not send the status (connection stuck); try again");
        return false;
    }
    Pending p = {.seq = env.seq, .open = open, .slot = slot, .capacity = capacity};
    snprintf(p.date, sizeof(p.date), "%s", date ? date : "");
    pending_add(c, p);
    return true;
}

int con_done_action(const JobOffer *o)
{
    return o->kind == S(SERVICE_KIND__HOME_CARE) ? S(JOB_ACTION__COMPLETE) : S(JOB_ACTION__DELIVER);
}

/* Auto modes: the next step for a job whose state just became known. */
void con_auto_step(Console *c, Job *j)
{
    if (c->state != LINK_UP || j->busy)
        return;
    int st = j->o->state;
    if (st == S(JOB_STATE__OFFERED)) {
        if (c->opt.reject_all)
            con_send_update(c, j->o->job_id, S(JOB_ACTION__REJECT), c->opt.reject_all, "");
        else if (c->opt.auto_accept)
            con_send_update(c, j->o->job_id, S(JOB_ACTION__ACCEPT), 0, "");
        return;
    }
    if (c->opt.complete_after_ms < 0 || j->due_ms)
        return;
    if (st == S(JOB_STATE__JOB_ACCEPTED)) {
        j->due_ms = util_now_ms() + c->opt.complete_after_ms;
        j->next_action = S(JOB_ACTION__GO_EN_ROUTE);
    } else if (st == S(JOB_STATE__JOB_EN_ROUTE)) {
        /* after the en-route reply, so the request's history keeps its order */
        con_send_update(c, j->o->job_id, con_done_action(j->o), 0, "");
    }
}

void con_run_timers(Console *c, int64_t now)
{
    if (c->state != LINK_UP)
        return;
    for (size_t i = 0; i < c->njobs; i++) {
        Job *j = &c->jobs[i];
        if (j->due_ms && now >= j->due_ms && !j->busy) {
            j->due_ms = 0;
            con_send_update(c, j->o->job_id, j->next_action, 0, "");
        }
    }
}
