/*
 * station_int.h: what the files of the station module share, and nothing outside the module
 * includes. The module's files, one concern each:
 *   station.c        life cycle, the public API's entry points, the once-a-second tick
 *   console.c        the console registry: sessions by station id, their references, the
 *                    auth and close hooks, terminal_sessions rows, heartbeats
 *   station_stream.c the station's Redis stream: entries written after each commit, read
 *                    per console from its cursor (backlog, BacklogEnd, live), checked
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

#define S(x)           CARELINE__V1__##x
#define ST_BUCKETS     4096 /* console chains, by station id */
#define ST_TICK_MS     1000 /* the tick: pings, periodic stream reads, offer expiry */
#define ST_SLICES      10   /* ...run as this many slices, each a part of the consoles */
#define RESUME_WAIT_MS 1000 /* a console without StationResume gets the full backlog after */

/* One station console on this daemon. Freed when refs reaches 0 (console_unref). */
typedef struct PendingAdd PendingAdd;

typedef struct StSession {
    Conn *c;      /* borrowed; holds a ref while the session lives */
    Stations *st; /* borrowed: the module, which outlives its sessions */
    int64_t station_id;
    int64_t terminal_id; /* terminal_sessions row, 0 until inserted */
    bool closed;         /* the connection ended; waiting for in-flight work */
    int refs;            /* the map + in-flight queries and reads */
    int64_t auth_ms;     /* when it authenticated (util_now_ms) */
    int64_t last_refresh_ms, last_ping_ms;
    /* its feed (station_stream.c) */
    bool started;                /* StationResume came (or the wait for it ended): reading */
    bool reading, again;         /* an XRANGE in flight / another asked for meanwhile */
    bool restart;                /* a StationResume during the read: its page is dropped */
    bool checking;               /* the read in flight asks whether the cursor is still held */
    bool live;                   /* the backlog was sent, with BacklogEnd: entries go out as read */
    bool bl_full;                /* this backlog is every open job (not "after a position") */
    char cursor[48];             /* the last entry read ("MS-SEQ"); "" = from the start */
    int64_t cursor_gen;          /* the Redis generation the cursor belongs to */
    int64_t read_gen;            /* the generation when the read in flight was sent */
    Careline__V1__JobOffer **bl; /* the backlog being read, one (owned) message per job */
    size_t nbl, capbl;
    struct StSession *next; /* bucket chain */
} StSession;

/* A wake-up this daemon published and has not heard back yet (see station_wake.c). */
typedef struct OwnWake {
    int64_t station_id; /* 0: heard back (a hole in the ring) */
    int64_t at_ms;      /* when published (monotonic) */
} OwnWake;
#define OWN_WAKES 4096

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
    RdsScript *caplim;          /* lua/caplim.lua */
    /* wake-ups that failed validation (station_wake.c): log rate limit */
    int64_t wake_rejects_logged_ms; /* when the last one was logged; 0 = never */
    uint64_t wake_rejects_quiet;    /* dropped since then without a log line */
    OwnWake own[OWN_WAKES];         /* wake-ups published here, oldest at own_head */
    size_t own_head, own_n;         /* ring of the last OWN_WAKES at most */
    /* stream entries that failed validation (station_stream.c): log rate limit */
    int64_t gen_seen;   /* the Redis generation at the last tick (a rebuild: all read now) */
    int slice;          /* the tick's slice now, 0 .. ST_SLICES - 1 */
    int rebuilt_slices; /* slices still to read all their consoles after a rebuild */
    struct PendingAdd *retry_head, *retry_tail; /* stream entries Redis refused, oldest first */
    size_t nretry;
    int64_t stream_rejects_logged_ms;
    uint64_t stream_rejects_quiet;
};

/* ---- station.c --------------------------------------------------------------------------- */

/* JobState from the database's name ("offered", "accepted", ...) and back (out: "accepted"). */

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

/* ---- station_stream.c --------------------------------------------------------------------- */

/* Reads the console's stream from its cursor and pushes what is new (one read at a time per
 * console; a request meanwhile runs after it). Nothing before the console started. */
void stream_read(Stations *st, StSession *ss);
/* stream_read for every console of station_id on this daemon. */
void stream_read_station(Stations *st, int64_t station_id);
/* Starts the console's feed at position ("GEN-MS-SEQ" from a JobOffer or BacklogEnd; "" or
 * anything else: the full backlog). */
void stream_start(Stations *st, StSession *ss, const char *position);
/* The StationResume route (takes ownership of env). */
void stream_resume_handle(void *arg, Conn *c, Envelope *env);
/* Frees what the session's feed holds (not the session). */
void stream_session_free(StSession *ss);
/* Sends again the entries Redis refused (the tick); frees them all (station_free). */
void stream_retry(Stations *st);
void stream_retry_free(Stations *st);
/* Orders two stream ids "MS-SEQ". */
int stream_id_cmp(const char *a, const char *b);

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
