/*
 * station: the station operators' side. A station principal's console gets its jobs pushed
 * (JobOffer, seq 0) as they arrive — a wake-up over Redis pub/sub reaches whichever daemon
 * holds the console — and its backlog on (re)connect: jobs offered and not yet accepted,
 * and accepted but not finished. PostgreSQL is the source of every job's state; a console
 * is re-read on each wake-up and periodically, and told of every change to a job it saw.
 * JobUpdate moves a job through its state machine (sql/011); StationStatus opens or closes
 * the station and sets capacity left. Offers not accepted in time expire; rejected and
 * expired jobs go to the next station. Connects and disconnects are logged in
 * terminal_sessions for the terminal indicator.
 */
#ifndef CARELINE_STATION_H
#define CARELINE_STATION_H

#include <stddef.h>
#include <stdint.h>

#include "careline.pb-c.h"
#include "core/dispatch.h"
#include "core/env.h"

typedef struct Stations Stations;

/* Installs the station routes and session hooks, and registers as dispatch's listener for
 * queued jobs. env and dispatch are borrowed and outlive the Stations. */
Stations *station_new(const Env *env, Dispatch *dispatch);
/* From now on callbacks only clean up (before the backends are freed). */
void station_stop(Stations *st);
void station_free(Stations *st);

/* A job was just committed at station_id: this daemon's consoles of that station get offer
 * pushed at once (no database read); the other daemons hear its ids only and read the job
 * from PostgreSQL (nothing taken from Redis reaches a console). offer is borrowed. */
void station_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *offer);

/* Tells every daemon that station_id's jobs changed (PUBLISH); fire and forget. */
void station_wake(Stations *st, int64_t station_id);

#endif
