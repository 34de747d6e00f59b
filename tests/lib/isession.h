/*
 * isession: protocol sessions with a test daemon as the principals the integration tests
 * play (a gateway submitting requests, a station, the bureau). Built on itest (principals,
 * login) and the client library; every wait is bounded, and a missing or wrong reply fails
 * the case (t_fail), with the daemon's log when the caller names the daemon.
 */
#ifndef CARELINE_ISESSION_H
#define CARELINE_ISESSION_H

#include <libpq-fe.h>

#include "itest.h"

/* Makes a principal of role (station_id > 0 for a station) with a fresh token and logs it
 * in; fails the case unless HelloOk. */
ClConn *isess_login_as(const Daemon *d, PGconn *pg, const char *role, long station_id);
/* isess_login_as(d, pg, "gateway", 0). */
ClConn *isess_gateway(const Daemon *d, PGconn *pg);

/* Sends env as a call and waits up to timeout_ms for the reply with its seq; pushes that
 * arrive meanwhile go to on_push (dropped when NULL). No reply: prints d's log (d may be
 * NULL) and fails the case with "what: why". Returns the reply, whatever its body
 * (cl_free it). */
ClEnvelope *isess_call(const Daemon *d, ClConn *c, ClEnvelope *env, int timeout_ms,
                       const char *what, void (*on_push)(ClEnvelope *push, void *arg), void *arg);

/* Fills m (initialising it) as a lunch delivery for tomorrow in the county (fix_tomorrow)
 * for the caller phone, under idempotency key; no note, no location. The strings are
 * borrowed, not copied. */
void isess_meal(Careline__V1__SubmitRequest *m, const char *key, const char *phone);

/* Submits m on c (isess_call, what = "submit KEY"). Returns the reply, whatever its body. */
ClEnvelope *isess_submit(const Daemon *d, ClConn *c, Careline__V1__SubmitRequest *m,
                         int timeout_ms);

/* The reply's SubmitResult (still owned by r); fails the case for any other body, with the
 * Error's message when it is one. */
Careline__V1__SubmitResult *isess_result(ClEnvelope *r);

#endif
