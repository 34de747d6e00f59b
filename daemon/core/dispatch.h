/*
 * dispatch: the request's way — SubmitRequest, StatusQuery and CancelRequest from the
 * hotline gateway. A request is recorded in PostgreSQL, matched to the nearest eligible
 * station, its capacity reserved and its job queued in Redis by one Lua script, and then
 * recorded as queued; the gateway hears QUEUED only after both. A periodic sweep resumes
 * requests a crash left half-way and retries the waitlist.
 *
 * Redis keys (all tagged with the county, so one county's keys share a cluster slot):
 *   {cCOUNTY}:ra:REQUEST:ATTEMPT        hash: the reservation of one offer (job, station,
 *                                       capacity key, state held|released|cancelled...)
 *   {cCOUNTY}:cap:STATION:DAY:SLOT      counter: reserved units of a day's capacity
 *   {cCOUNTY}:lim:STATION:DAY:SLOT      the station's own word on that capacity (StationStatus)
 *   {cCOUNTY}:st:STATION:jobs           stream: the station's job queue
 */
#ifndef CARELINE_DISPATCH_H
#define CARELINE_DISPATCH_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "core/directory.h"
#include "base/geo.h"

struct Server;
typedef struct Dispatch Dispatch;

/* Installs the session routes and starts loading the directory. */
Dispatch *dispatch_new(struct Server *s);
/* From now on callbacks only clean up (called before the backends are freed). */
void dispatch_stop(Dispatch *d);
void dispatch_free(Dispatch *d);

/* The directory has loaded (matching possible). */
bool dispatch_ready(const Dispatch *d);
const Directory *dispatch_directory(const Dispatch *d);
const TravelModel *dispatch_model(const Dispatch *d);

/* Matches a 'received' request again now (a station rejected it or let the offer expire);
 * stations that already had it are skipped. A crash before it finishes is repaired by the
 * sweep. */
void dispatch_redispatch(Dispatch *d, int64_t request_id);

/* Gives back the capacity held by a request's offer number `attempt` (once; state why). */
void dispatch_release(Dispatch *d, int64_t request_id, int attempt, const char *why);

/* Runs the sweep soon (capacity freed, a station opened). */
void dispatch_kick(Dispatch *d);

/* The Redis key prefix "{cCOUNTY}:" (for tests and other modules). */
const char *dispatch_key_prefix(const Dispatch *d);

/* Maps between the protobuf enums and the database's lower-case names ("queued"). */
int dispatch_enum_from_db(const ProtobufCEnumDescriptor *desc, const char *db);
void dispatch_enum_to_db(const ProtobufCEnumDescriptor *desc, int value, char *out, size_t n);

#endif
