/*
 * isession: gateway/station/bureau sessions over the client library, for integration tests.
 */
#include "isession.h"

#include <stdio.h>

#include "fixture.h"
#include "t.h"

ClConn *isess_login_as(const Daemon *d, PGconn *pg, const char *role, long station_id)
{
    char tok[64];
    return itest_login(d, itest_make_token(pg, role, station_id, tok));
}

ClConn *isess_gateway(const Daemon *d, PGconn *pg)
{
    return isess_login_as(d, pg, "gateway", 0);
}

ClEnvelope *isess_call(const Daemon *d, ClConn *c, ClEnvelope *env, int timeout_ms,
                       const char *what, void (*on_push)(ClEnvelope *push, void *arg), void *arg)
{
    char err[256];
    ClEnvelope *r = cl_call(c, env, timeout_ms, err, sizeof(err), on_push, arg);
    if (!r) {
        if (d)
            itest_daemon_dump_log(d);
        t_fail(__FILE__, __LINE__, "%s: %s", what, err);
    }
    return r;
}

void isess_meal(Careline__V1__SubmitRequest *m, const char *key, const char *phone)
{
    careline__v1__submit_request__init(m);
    m->idempotency_key = (char *)key;
    m->who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
    m->caller_phone = (char *)phone;
    m->kind = CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY;
    m->meal_slot = CARELINE__V1__MEAL_SLOT__LUNCH;
    m->service_date = (char *)fix_tomorrow();
}

ClEnvelope *isess_submit(const Daemon *d, ClConn *c, Careline__V1__SubmitRequest *m, int timeout_ms)
{
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = CARELINE__V1__ENVELOPE__BODY_SUBMIT;
    e.submit = m;
    char what[160];
    snprintf(what, sizeof(what), "submit %s", m->idempotency_key ? m->idempotency_key : "");
    return isess_call(d, c, &e, timeout_ms, what, NULL, NULL);
}

Careline__V1__SubmitResult *isess_result(ClEnvelope *r)
{
    if (r->body_case != CARELINE__V1__ENVELOPE__BODY_SUBMIT_RESULT)
        t_fail(__FILE__, __LINE__, "expected SubmitResult, got body %d (%s)", r->body_case,
               r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "");
    return r->submit_result;
}
