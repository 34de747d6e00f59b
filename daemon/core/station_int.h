/*
 * station_int.h: what the files of the station module share, and nothing outside the module
 * includes. The module's files, one concern each:
 *   station.c        life cycle, the public API's entry points, the once-a-second tick
 *   console.c        the console registry: sessions by station id, their references, the
 *                    auth and close hooks, terminal_sessions rows, heartbeats
 *   console_push.c   re-reading consoles' jobs (batched per loop turn) and the seen-list
 *                    diff that decides which JobOffers to push
 *   station_wake.c   the wake-up fan-out between daemons (Redis pub/sub)
 *   job_update.c     the JobUpdate handler (group-committed through pgbatch)
 *   station_status.c the StationStatus handler (open/close, capacity left via caplim.lua)
 *   offer_expiry.c   offers not accepted in time go to the next station
 * Everything here runs on the loop thread.
 */
#ifndef CARELINE_STATION_INT_H
#define CARELINE_STATION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dispatch.h"
#include "core/env.h"
#include "core/station.h"
#include "net/conn.h"
#include "store/pgbatch.h"
#include "store/pgcols.h"
#include "store/rds.h"

#define S(x)          CARELINE__V1__##x
#define ST_BUCKETS    4096 /* console chains, by station id */
#define ST_TICK_MS    1000 /* the tick: pings, periodic re-reads, offer expiry */
#define REFRESH_BATCH 500  /* consoles re-read by one statement */

typedef struct Seen {
    int64_t job_id;
    int state; /* JobState last pushed */
} Seen;

/* One station console on this daemon. Freed when refs reaches 0 (console_unref). */
typedef struct StSession {
    Conn *c;      /* borrowed; holds a ref while the session lives */
    Stations *st; /* borrowed: the module, which outlives its sessions */
    int64_t station_id;
    int64_t terminal_id;    /* terminal_sessions row, 0 until inserted */
    bool closed;            /* the connection ended; waiting for in-flight work */
    int refs;               /* the map + in-flight queries */
    bool queued;            /* waiting in Stations.due for this turn's re-read batch */
    bool refreshing, again; /* a re-read in flight / another asked for meanwhile */
    int64_t last_refresh_ms, last_ping_ms;
    Seen *seen; /* jobs shown and still of interest */
    size_t nseen, capseen;
    struct StSession *next; /* bucket chain */
} StSession;

/* An offer this daemon published and has not heard back yet (see station_wake.c). */
typedef struct OwnWake {
    int64_t station_id, job_id; /* job_id 0: heard back (a hole in the ring) */
    int64_t at_ms;              /* when published (monotonic) */
} OwnWake;
#define OWN_WAKES 1024

struct Stations {
    const Env *env;     /* borrowed from the server */
    Dispatch *dispatch; /* borrowed: directory, key prefix, re-dispatch */
    StSession *bucket[ST_BUCKETS];
    size_t nsessions;
    struct event *tick;
    bool expiring; /* an expiry query is in flight */
    bool stopped;
    char channel[48]; /* "{cCOUNTY}:wake" */
    int64_t *wake;    /* stations to announce at the end of this loop turn */
    size_t nwake, capwake;
    struct event *wake_ev;      /* fires once per turn while wake is non-empty */
    PgBatch *updates;           /* JobUpdates, group-committed */
    struct SessionLease *lease; /* this daemon's lease on its terminal sessions */
    PgCols update_cols;         /* their result's columns, bound once per batch (job_update.c) */
    StSession **due;            /* consoles to re-read at the end of this loop turn */
    size_t ndue, capdue;
    struct event *due_ev; /* fires once per turn while due is non-empty */
    RdsScript *caplim;    /* lua/caplim.lua */
    /* wake-ups that failed validation (station_wake.c): log rate limit */
    int64_t wake_rejects_logged_ms; /* when the last one was logged; 0 = never */
    uint64_t wake_rejects_quiet;    /* dropped since then without a log line */
    OwnWake own[OWN_WAKES];         /* offers published here, oldest at own_head */
    size_t own_head, own_n;         /* ring of the last OWN_WAKES at most */
};

/* ---- station.c --------------------------------------------------------------------------- */

/* JobState from the database's name ("offered", "accepted", ...) and back (out: "accepted"). */
int station_job_state_from_db(const char *db);
void station_job_state_to_db(int state, char out[32]);

/* ---- console.c ---------------------------------------------------------------------------- */

/* The chain of consoles that may hold station_id (compare station_id while walking). */
StSession *console_chain(const Stations *st, int64_t station_id);
/* Drops a reference; the last one frees the session and its connection ref. */
void console_unref(StSession *ss);
/* Session hooks (net/session.h): a station principal's console comes and goes. */
void console_on_auth(void *arg, Conn *c);
void console_on_close(void *arg, Conn *c);
/* Closes terminal_sessions rows a previous run of this server_id left open. */
void console_close_stale(const Env *env);
/* Sends a heartbeat Ping. May close the connection (output limit). */
void console_ping(StSession *ss);

/* ---- console_push.c ----------------------------------------------------------------------- */

/* Re-reads the console's jobs from PostgreSQL (in this loop turn's batch) and pushes what
 * changed; one at a time per console, a request meanwhile runs after it. */
void push_refresh(Stations *st, StSession *ss);
/* push_refresh for every console of station_id on this daemon. */
void push_refresh_station(Stations *st, int64_t station_id);
/* true when the console has shown job_id and it is still of interest. */
bool push_has_seen(StSession *ss, int64_t job_id);
/* Pushes a new job to this daemon's consoles of the station that have not shown it yet.
 * o is borrowed. */
void push_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *o);
/* Stations.due_ev's callback: sends this turn's re-reads. */
void push_due_flush(evutil_socket_t fd, short what, void *arg);

/* ---- station_wake.c ----------------------------------------------------------------------- */

/* Subscribes to the wake channel (Stations.channel). */
void wake_subscribe(Stations *st);
/* Stations.wake_ev's callback: publishes this turn's wake-ups. */
void wake_flush(evutil_socket_t fd, short what, void *arg);

/* ---- job_update.c, station_status.c (session routes; take ownership of env) -------------- */

void job_update_handle(void *arg, Conn *c, Envelope *env);
void status_handle(void *arg, Conn *c, Envelope *env);

/* ---- offer_expiry.c ----------------------------------------------------------------------- */

/* Expires overdue offers now (Stations.expiring while the statement runs). */
void offer_expiry_start(Stations *st);

#endif
