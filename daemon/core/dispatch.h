/*
 * dispatch: the request's way — SubmitRequest, StatusQuery and CancelRequest from the
 * hotline gateway. A request is recorded in PostgreSQL, matched to the nearest eligible
 * station, its capacity reserved and its job queued in Redis by one Lua script, and then
 * recorded as queued; the gateway hears QUEUED only after both. A periodic sweep resumes
 * requests a crash left half-way and retries the waitlist.
 * The Redis keys it uses are laid out in store/keys.h.
 */
#ifndef CARELINE_DISPATCH_H
#define CARELINE_DISPATCH_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "base/geo.h"
#include "careline.pb-c.h"
#include "core/directory.h"
#include "core/env.h"

typedef struct Dispatch Dispatch;

/* Installs the session routes and starts loading the directory. env is borrowed. */
Dispatch *dispatch_new(const Env *env);

/* Who hears of a job's progress (the stations module): queued = a job was just committed
 * at station_id (offer borrowed for the call); cancelled = the job of request_id's attempt
 * at station_id was cancelled (committed). Either may be NULL. */
typedef struct DispatchHooks {
    void (*queued)(void *arg, int64_t station_id, const Careline__V1__JobOffer *offer);
    void (*cancelled)(void *arg, int64_t station_id, int64_t request_id, int attempt);
    void *arg;
} DispatchHooks;
void dispatch_set_hooks(Dispatch *d, const DispatchHooks *hooks);
/* The Redis generation this daemon verified (0: none yet, or lost). */
int64_t dispatch_redis_gen(const Dispatch *d);
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

/* A phone number as submissions key it: normalised (spaces, dashes and +86/0086 dropped)
 * into norm[24], and its HMAC under the phone_hash_key_file as 64 hex digits. false if the
 * number is not 5..15 digits (nothing written). */
bool dispatch_phone_hash(const Dispatch *d, const char *phone, char norm[24], char hex[65]);

/* Maps between the protobuf enums and the database's lower-case names ("queued"). */
int dispatch_enum_from_db(const ProtobufCEnumDescriptor *desc, const char *db);
void dispatch_enum_to_db(const ProtobufCEnumDescriptor *desc, int value, char *out, size_t n);

#endif
