/*
 * session_lease: this daemon's lease on its terminal sessions (sql/migrations/006). Every
 * third of session_lease_ms it runs careline_session_lease once — one statement per daemon
 * per period, whatever the number of sessions: it renews this daemon's lease and closes
 * (close_reason 'lease_expired', disconnected_at = the dead daemon's last renewal) the open
 * sessions of daemons whose lease has lapsed, so a daemon that never comes back does not
 * leave its stations counted as connected forever. A failed renewal is logged and tried
 * again next period; the lease is three periods long, so one lost renewal costs nothing.
 */
#ifndef CARELINE_SESSION_LEASE_H
#define CARELINE_SESSION_LEASE_H

#include "core/env.h"

typedef struct SessionLease SessionLease;

/* Starts renewing now (the first renewal is queued before this returns). env borrowed. */
SessionLease *session_lease_new(const Env *env);
/* Stops renewing; a renewal in flight finishes on its own. NULL is a no-op. */
void session_lease_free(SessionLease *l);

#endif
