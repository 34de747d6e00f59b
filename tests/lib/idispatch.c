/*
 * idispatch: SubmitRequests for the dispatch tests (idispatch.h).
 */
#include "idispatch.h"

#include "fixture.h"
#include "isession.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

void idisp_build(const IdispReq *q, ClEnvelope *e, Careline__V1__SubmitRequest *m,
                 Careline__V1__Location *loc)
{
    careline__v1__submit_request__init(m);
    m->idempotency_key = (char *)(q->key ? q->key : "");
    if (q->phone) {
        m->who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
        m->caller_phone = (char *)q->phone;
    } else if (q->resident) {
        m->who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID;
        m->resident_id = q->resident;
    }
    m->kind = q->kind;
    m->meal_slot = q->slot;
    m->care_subtype = q->subtype;
    m->service_date = (char *)(q->date ? q->date : "");
    m->note = (char *)(q->note ? q->note : "");
    m->urgency = q->urgency;
    if (q->has_loc) {
        careline__v1__location__init(loc);
        loc->lat = q->lat;
        loc->lon = q->lon;
        m->location = loc;
    }
    careline__v1__envelope__init(e);
    e->body_case = BODY(SUBMIT);
    e->submit = m;
}

ClEnvelope *idisp_submit(const Daemon *d, ClConn *c, const IdispReq *q)
{
    ClEnvelope e;
    Careline__V1__SubmitRequest m;
    Careline__V1__Location loc;
    idisp_build(q, &e, &m, &loc);
    return isess_submit(d, c, &m, 15000);
}

IdispReq idisp_meal(const char *key, const char *phone)
{
    return (IdispReq){.key = key,
                      .phone = phone,
                      .kind = S(SERVICE_KIND__MEAL_DELIVERY),
                      .slot = S(MEAL_SLOT__LUNCH),
                      .date = fix_tomorrow()};
}

long idisp_sql_long(PGconn *pg, const char *sql, const char *p1)
{
    const char *p[] = {p1};
    return (long)itest_sql_ll(pg, sql, p1 ? 1 : 0, p);
}
