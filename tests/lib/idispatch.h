/*
 * idispatch: SubmitRequests as the dispatch tests write them: a flat description (IdispReq)
 * turned into the message, submitted on a gateway session with the daemon's log printed if
 * no reply comes, plus their SQL count helper. Every wait is bounded; nothing is kept: the
 * caller owns every reply (cl_free it).
 */
#ifndef CARELINE_IDISPATCH_H
#define CARELINE_IDISPATCH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "itest.h"

/* One submission; a NULL or 0 field is left unset (a NULL key or date is sent as ""). */
typedef struct {
    const char *key;
    const char *phone; /* caller_phone; else resident when nonzero */
    int64_t resident;
    int kind, slot, subtype;
    const char *date;
    const char *note;
    int urgency;
    bool has_loc;
    double lat, lon;
} IdispReq;

/* Fills e (a Submit envelope, seq 0), m and loc (used only with q->has_loc) from q; the
 * strings are borrowed from q. */
void idisp_build(const IdispReq *q, ClEnvelope *e, Careline__V1__SubmitRequest *m,
                 Careline__V1__Location *loc);
/* Submits q on c and waits up to 15 s (isess_submit; d's log printed when no reply comes).
 * Returns the reply, whatever its body. */
ClEnvelope *idisp_submit(const Daemon *d, ClConn *c, const IdispReq *q);
/* A lunch for tomorrow in the county for the caller phone, under key. */
IdispReq idisp_meal(const char *key, const char *phone);
/* itest_sql_ll with $1 = p1 (no parameter when p1 is NULL). */
long idisp_sql_long(PGconn *pg, const char *sql, const char *p1);

#endif
