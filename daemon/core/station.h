/*
 * station: the station operators' side. A station principal's console is served from its
 * station's Redis stream ({cCOUNTY}:st:STATION:jobs), the station's job queue: every new
 * job (JobOffer, seq 0) and every later change of its state is an entry, added after
 * PostgreSQL committed it; each daemon reads the streams of the consoles it holds from each
 * console's cursor, woken over Redis pub/sub (and every console_refresh_ms, a lost
 * wake-up). A (re)connecting console sends StationResume with its last position and gets
 * the backlog after it, then BacklogEnd; a position of another Redis generation, one the
 * stream no longer holds, or none, gets the full backlog (every open job, merged per job).
 * PostgreSQL is the record: the stream is rewritten from it by the rebuild (core/rebuild.c,
 * full console-safe entries) and reconciliation; consoles never cause a database read.
 *
 * Entry: t (o = a new job, c = a change of its state, r = reserve.lua's reservation marker,
 * not for consoles), st (the station), job, p (a packed JobOffer: the console-safe fields;
 * a change carries job, request, attempt, state, and the phone once accepted). Whatever is
 * read is checked (size, parse, station, ids, state, UTF-8) and a bad entry is counted
 * (careline_stream_rejected_total), logged rate-limited, never forwarded.
 * Trimming: XADD MINID ~ now - (booking_days + 2) days, as reserve.lua. A job is booked at
 * most booking_days ahead and its offer ends with its service day, so every entry of an
 * open job is younger than the bound; approximate trimming only drops whole nodes older
 * than it, never a younger entry; a console whose position is older than the stream's first
 * entry gets the full backlog, and a rebuild rewrites every open job as one 'o' entry.
 *
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

/* A job was just committed at station_id: its entry goes on the station's stream (without
 * the phone), then every daemon is woken to read it. offer is borrowed. */
void station_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *offer);
/* A committed change of a job's state: an entry (phone: once accepted, else NULL). */
void station_change(Stations *st, int64_t station_id, int64_t job_id, int64_t request_id,
                    int attempt, int state, const char *phone);
/* A committed end of request_id's attempt at station_id known without its job id (a
 * cancel: JOB_CANCELLED; a retired or closed station's offer: JOB_REJECTED): the job id is
 * looked up in its reservation, then station_change. */
void station_withdrawn(Stations *st, int64_t station_id, int64_t request_id, int attempt,
                       int state);

/* Tells every daemon that station_id's stream has new entries (PUBLISH), and reads it for
 * this daemon's consoles; fire and forget. */
void station_wake(Stations *st, int64_t station_id);

/* A job state as PostgreSQL writes it ("offered", "accepted", ...) and back (JobState names
 * carry a JOB_ prefix but for OFFERED). */
int station_job_state_from_db(const char *db);
void station_job_state_to_db(int state, char out[32]);

#endif
