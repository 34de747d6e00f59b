/*
 * istation: a station operator's console as the station tests play it, in-process: a
 * station principal's protocol session that answers the daemon's Pings and keeps the
 * JobOffer pushes it receives (not bin/station-console: that is iconsole.h), plus the
 * gateway and SQL conveniences those tests share. Every wait is bounded; a wrong or
 * missing reply fails the case (t_fail).
 */
#ifndef CARELINE_ISTATION_H
#define CARELINE_ISTATION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "itest.h"

typedef struct {
    ClConn *c;
    int64_t station;
    Careline__V1__JobOffer *offers[64]; /* latest push per job, by arrival (owned) */
    int n;
    int total; /* JobOffer pushes received (also past the 64 kept) */
    int pings;
    int ends;          /* BacklogEnd pushes received */
    int offers_at_end; /* total when the last BacklogEnd came */
    bool end_full;     /* the last BacklogEnd's full flag */
    char position[80]; /* the last JobOffer.position or BacklogEnd.position */
} IstConsole;

/* Logs in a fresh station principal of station on d (fails the case unless HelloOk) and
 * asks for its full backlog (StationResume ""). Free with ist_close. */
IstConsole *ist_open(const Daemon *d, PGconn *pg, int64_t station);
/* ist_open resuming from position (NULL: sends no StationResume, as an old console). */
IstConsole *ist_open_at(const Daemon *d, PGconn *pg, int64_t station, const char *position);
/* Waits up to timeout_ms for the next BacklogEnd (counted in k->ends); false on timeout. */
bool ist_wait_backlog_end(IstConsole *k, int timeout_ms);
/* Frees the kept offers, closes the connection, frees k. */
void ist_close(IstConsole *k);
/* Takes one received envelope (owned; freed here): a Ping is answered with a Pong, a
 * JobOffer kept (up to 64), anything else dropped. */
void ist_take(IstConsole *k, ClEnvelope *e);
/* ist_take as an isess_call / cl_call push handler (arg: the IstConsole). */
void ist_on_push(ClEnvelope *e, void *arg);
/* Waits up to timeout_ms until a push for job (0 = any job) in state has arrived (also one
 * kept earlier); returns it (owned by k), or NULL on timeout. */
Careline__V1__JobOffer *ist_wait(IstConsole *k, int64_t job, int state, int timeout_ms);
/* Whether any push for job was kept. */
bool ist_saw(const IstConsole *k, int64_t job);
/* Sends JobUpdate (job, action, reason); fails the case unless it succeeds with that
 * changed flag and leaves the job in state. */
void ist_update_ok(IstConsole *k, int64_t job, int action, int reason, int state, bool changed);
/* Sends JobUpdate (job, action, reason); fails the case unless it is refused with a
 * non-fatal Error of code and a message of more than ten bytes. */
void ist_update_refused(IstConsole *k, int64_t job, int action, int reason, int code);
/* Submits a lunch for tomorrow through a fresh gateway session on d; the reply must be a
 * SubmitResult (returned, owned by *keep: cl_free it). */
Careline__V1__SubmitResult *ist_submit_meal(const Daemon *d, PGconn *pg, const char *key,
                                            const char *phone, ClEnvelope **keep);
/* itest_sql_ll with the one parameter $1 = arg. */
long ist_sql_long(PGconn *pg, const char *sql, long long arg);

#endif
