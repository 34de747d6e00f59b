/*
 * rebuild_int: what rebuild.c (the check, the lock, the snapshot and its writing) and
 * rebuild_entries.c (the console-safe stream entries of the snapshot's jobs) share. Not for
 * other modules: they use rebuild.h.
 */
#ifndef CARELINE_REBUILD_INT_H
#define CARELINE_REBUILD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rebuild.h"
#include "store/scripts.h"

#define TICK_MS     100   /* while not verified: check this often */
#define CHECK_MS    1000  /* once verified */
#define LOCK_TTL_MS 10000 /* refreshed by every chunk */
#define FILL_CHUNK  200   /* jobs per genfill.lua call */
#define GEN_VALUE   96

typedef struct {
    int64_t station, request, job;
    int attempt;
    char day[11], slot[8];
    uint8_t *entry; /* its console-safe JobOffer, packed for the stream (NULL: a marker) */
    size_t entry_len;
} LiveJob;

/* A station's recorded limit (careline_station_limits), written back by gendone.lua. */
typedef struct {
    int64_t station;
    int limit;
    char day[11], slot[8];
} Limit;

typedef struct {
    RebuildWaitCb cb;
    void *arg;
    int64_t deadline; /* util_now_ms() */
} Waiter;

struct Rebuild {
    const Env *env;
    RebuildResumedCb resumed;
    void *arg;
    RdsScript *lock, *fill, *done;
    struct event *tick;
    int refs;              /* callbacks in flight, +1 while not freed */
    bool freed;            /* rebuild_free was called: callbacks do nothing */
    char value[GEN_VALUE]; /* the verified "GEN RUN_ID"; "" = none */
    int64_t gen;           /* its GEN */
    uint64_t epoch;        /* rds_link_epoch when it was verified */
    int64_t next_check;    /* util_now_ms() of the next periodic check */
    bool checking;         /* GET + INFO in flight */
    uint64_t check_epoch;  /* the link they were sent on */
    char seen[GEN_VALUE];  /* what GET returned ("" = nil) */
    bool seen_ok;          /* GET answered */
    char run_id[48];       /* Redis' run_id, from INFO */
    bool rebuilding;       /* this daemon holds the lock and is writing */
    bool waiting_logged;   /* "another daemon rebuilds" was logged for this loss */
    bool check_warned;     /* a refused check was logged since the last good one */
    bool pg_due;           /* compare with PostgreSQL's generation on the next check */
    bool lost;             /* the state is known lost: a rebuild is due or running */
    Waiter *waiters;       /* rebuild_wait callers parked until the check of a new link */
    size_t nwaiters, capwaiters;
    LiveJob *jobs; /* the snapshot being written */
    size_t njobs, written;
    Limit *limits; /* the stations' recorded limits, from today on */
    size_t nlimits;
    int64_t new_gen;
    int64_t started_ms;
    bool probing; /* the write probe is in flight */
    int64_t next_probe;
};

/* A reference held by each callback in flight; the last one frees a freed Rebuild. */
void rebuild_unref(Rebuild *rb);
/* Ends this attempt (logged); the next tick starts over. */
void rebuild_failed(Rebuild *rb, const char *what, const char *err);
/* Writes the next FILL_CHUNK jobs of the snapshot (genfill.lua); false if not sent. */
bool rebuild_send_chunk(Rebuild *rb);
/* Sorts rb->jobs by job id and reads their console-safe fields, packing each job's stream
 * entry, then starts the writing (rebuild_entries.c); false if not sent. */
bool rebuild_entries_read(Rebuild *rb);

#endif
