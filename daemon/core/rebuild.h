/*
 * rebuild: Redis holds only what PostgreSQL can rebuild, and this module notices when it
 * must be rebuilt and does it. The county's generation key ({cCOUNTY}:gen = "GEN RUN_ID",
 * store/keys.h) is written by each rebuild; it is checked when the command link comes up
 * (every connect and reconnect: rds_link_epoch) and every second, and reserve.lua checks it
 * on every reservation. The state is lost when the key is gone (FLUSHALL, a restart without
 * data) or names another run_id than Redis' own (a restart or failover, which may have lost
 * the last second of writes while the key survived). Then this daemon stops reserving and
 * sweeping (rebuild_ok false; /readyz says redis_rebuilding), and one daemon — the one that
 * takes the county's rebuild lock in Redis; the others wait and then adopt its generation —
 * clears the county's counters, reservations, streams and pending set, numbers a new
 * generation in PostgreSQL, and writes the live jobs back (lua/genlock, genfill, gendone).
 * The stations' own limits (StationStatus: the live jobs then + what was left, recorded in
 * station_status_events, sql/migrations/010) are read after the lock took the generation
 * away and written by gendone.lua in the same script that publishes the new generation;
 * caplim.lua refuses while the generation is gone, so a station's later word is applied
 * after them, never overwritten by them.
 *
 * Over-capacity across a loss: a reservation made in the lost state may commit after the
 * rebuild's snapshot. PostgreSQL refuses it (the record is the final arbiter, not a wait
 * with a bound nobody can prove under a stalled database): each job carries the generation
 * its unit was reserved in, and careline_jobs_redis_gen (sql/base/redis_gen.sql) accepts it
 * only while that generation is current; the rebuild's UPDATE of the generation waits for
 * every insert holding it, so a job is either in the snapshot or refused
 * (007_redis_generation.sql). Between a Redis restart and its detection no reservation is
 * made: a restart drops the link, and a new link is not trusted before its check.
 *
 * The module also probes writes every second (SET {cCOUNTY}:probe) and raises
 * READY_REDIS_WRITES_FAILING while Redis refuses them (OOM, MISCONF, READONLY), clearing it
 * when a probe succeeds again; callers report refused writes they see (rebuild_note_reply).
 * Loop thread only.
 */
#ifndef CARELINE_REBUILD_H
#define CARELINE_REBUILD_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/env.h"

typedef struct Rebuild Rebuild;

/* Fired when reservations may go on again after a rebuild or an adoption (e.g. to move the
 * waitlist). */
typedef void (*RebuildResumedCb)(void *arg);

/* Starts checking at once (a timer on env->base); raises READY_REDIS_REBUILDING until the
 * first check passes. */
Rebuild *rebuild_new(const Env *env, RebuildResumedCb resumed, void *arg);
/* rebuild_free(NULL) is a no-op; what is in flight completes into nothing. */
void rebuild_free(Rebuild *rb);

/* true when reservations may be made: the generation was verified on the current
 * connection and no rebuild is under way. */
bool rebuild_ok(const Rebuild *rb);
/* Calls cb(arg, ok) exactly once: ok true as soon as reservations may be made (at once when
 * rebuild_ok). A link that is new and not checked yet (start, reconnect) is waited for, up
 * to wait_ms, so a reconnect costs callers no error; ok false at once when the state is lost
 * or being rebuilt, or Redis is down (callers answer UNAVAILABLE), and false after wait_ms
 * or at rebuild_free. cb may be called from inside rebuild_wait. */
typedef void (*RebuildWaitCb)(void *arg, bool ok);
void rebuild_wait(Rebuild *rb, int wait_ms, RebuildWaitCb cb, void *arg);
/* The verified generation: its number (0 = none) and its value for reserve.lua (""). */
int64_t rebuild_gen(const Rebuild *rb);
const char *rebuild_value(const Rebuild *rb);
/* A script found the generation gone or changed: check now instead of at the next tick. */
void rebuild_check_now(Rebuild *rb);
/* PostgreSQL refused a job reserved in a replaced generation: the next check (now) also
 * compares Redis' generation with PostgreSQL's, and rebuilds when Redis' is behind (a state
 * no rebuild leaves, but a restore or a hand edit can). */
void rebuild_note_refused(Rebuild *rb);
/* A reply to a write: a refused write raises READY_REDIS_WRITES_FAILING (the probe clears
 * it once writes work again). */
void rebuild_note_reply(Rebuild *rb, const redisReply *reply);

#endif
