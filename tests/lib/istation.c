/*
 * istation: in-process station consoles and the station tests' shared helpers (istation.h).
 */
#include "istation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "isession.h"
#include "t.h"

#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

void ist_take(IstConsole *k, ClEnvelope *e)
{
    if (e->body_case == BODY(PING)) {
        k->pings++;
        Careline__V1__Pong pong = CARELINE__V1__PONG__INIT;
        pong.nonce = e->ping->nonce;
        ClEnvelope r = CARELINE__V1__ENVELOPE__INIT;
        r.body_case = BODY(PONG);
        r.pong = &pong;
        cl_send(k->c, &r);
    } else if (e->body_case == BODY(BACKLOG_END)) {
        k->ends++;
        k->offers_at_end = k->total;
        k->end_full = e->backlog_end->full;
        snprintf(k->position, sizeof(k->position), "%s", e->backlog_end->position);
    } else if (e->body_case == BODY(JOB_OFFER)) {
        snprintf(k->position, sizeof(k->position), "%s", e->job_offer->position);
        if (k->total++ < 64) {
            k->offers[k->n++] = e->job_offer;
            e->job_offer = NULL; /* kept; the envelope shell is freed */
            e->body_case = 0;
        }
    }
    cl_free(e);
}

void ist_on_push(ClEnvelope *e, void *arg)
{
    ist_take(arg, e);
}

IstConsole *ist_open_at(const Daemon *d, PGconn *pg, int64_t station, const char *position)
{
    IstConsole *k = calloc(1, sizeof(*k));
    k->c = isess_login_as(d, pg, "station", station);
    k->station = station;
    if (position) {
        Careline__V1__StationResume r = CARELINE__V1__STATION_RESUME__INIT;
        r.position = (char *)position;
        ClEnvelope env = CARELINE__V1__ENVELOPE__INIT;
        env.seq = 0;
        env.body_case = BODY(STATION_RESUME);
        env.station_resume = &r;
        cl_send(k->c, &env);
    }
    return k;
}

IstConsole *ist_open(const Daemon *d, PGconn *pg, int64_t station)
{
    return ist_open_at(d, pg, station, "");
}

bool ist_wait_backlog_end(IstConsole *k, int timeout_ms)
{
    int64_t deadline = util_now_ms() + timeout_ms;
    int want = k->ends + 1;
    while (k->ends < want) {
        int left = (int)(deadline - util_now_ms());
        if (left <= 0)
            return false;
        char err[128];
        ClEnvelope *e = cl_recv(k->c, left, err, sizeof(err));
        if (!e)
            return false;
        ist_take(k, e);
    }
    return true;
}

void ist_close(IstConsole *k)
{
    for (int i = 0; i < k->n; i++)
        careline__v1__job_offer__free_unpacked(k->offers[i], NULL);
    cl_close(k->c);
    free(k);
}

/* Waits until a push for job (0 = any new job) in `state` arrives; returns it. */
Careline__V1__JobOffer *ist_wait(IstConsole *k, int64_t job, int state, int timeout_ms)
{
    int64_t deadline = util_now_ms() + timeout_ms;
    int from = 0;
    for (;;) {
        for (int i = from; i < k->n; i++)
            if ((job == 0 || k->offers[i]->job_id == job) && (int)k->offers[i]->state == state)
                return k->offers[i];
        from = k->n;
        int left = (int)(deadline - util_now_ms());
        if (left <= 0)
            return NULL;
        char err[128];
        ClEnvelope *e = cl_recv(k->c, left, err, sizeof(err));
        if (!e)
            return NULL;
        ist_take(k, e);
    }
}

bool ist_saw(const IstConsole *k, int64_t job)
{
    for (int i = 0; i < k->n; i++)
        if (k->offers[i]->job_id == job)
            return true;
    return false;
}

static ClEnvelope *update(IstConsole *k, int64_t job, int action, int reason)
{
    Careline__V1__JobUpdate u = CARELINE__V1__JOB_UPDATE__INIT;
    u.job_id = job;
    u.action = action;
    u.reason_code = reason;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(JOB_UPDATE);
    e.job_update = &u;
    return isess_call(NULL, k->c, &e, 10000, "job update", ist_on_push, k);
}

/* The update succeeds (changed as given) and leaves the job in state. */
void ist_update_ok(IstConsole *k, int64_t job, int action, int reason, int state, bool changed)
{
    ClEnvelope *r = update(k, job, action, reason);
    if (r->body_case != BODY(JOB_UPDATE_RESULT))
        t_fail(__FILE__, __LINE__, "update %d on job %lld: %s", action, (long long)job,
               r->body_case == BODY(ERROR) ? r->error->message : "?");
    T_EQ_INT(r->job_update_result->state, state);
    T_EQ_INT(r->job_update_result->changed, changed);
    cl_free(r);
}

void ist_update_refused(IstConsole *k, int64_t job, int action, int reason, int code)
{
    ClEnvelope *r = update(k, job, action, reason);
    if (r->body_case != BODY(ERROR) || (int)r->error->code != code)
        t_fail(__FILE__, __LINE__, "update %d on job %lld: expected error %d", action,
               (long long)job, code);
    T_ASSERT(!r->error->fatal && strlen(r->error->message) > 10);
    cl_free(r);
}

/* Submits a lunch for tomorrow through a fresh gateway session on d; the reply must be a
 * SubmitResult, which stays in *keep (cl_free it). */
Careline__V1__SubmitResult *ist_submit_meal(const Daemon *d, PGconn *pg, const char *key,
                                            const char *phone, ClEnvelope **keep)
{
    ClConn *g = isess_gateway(d, pg);
    Careline__V1__SubmitRequest m;
    isess_meal(&m, key, phone);
    ClEnvelope *r = isess_submit(d, g, &m, 10000);
    cl_close(g);
    *keep = r;
    return isess_result(r);
}

long ist_sql_long(PGconn *pg, const char *sql, long long arg)
{
    char a[24];
    snprintf(a, sizeof(a), "%lld", arg);
    const char *p[] = {a};
    return (long)itest_sql_ll(pg, sql, 1, p);
}
