/*
 * dispatch_int: what the files of the dispatch module share, and nothing outside it may
 * include: the Dispatch object, the submission in flight (Sub) and the steps each file
 * offers the others.
 *
 *   dispatch.c   life cycle, hooks, the public API, enum and station-name helpers
 *   intake.c     SubmitRequest: validation, phone normalisation, content hash
 *   submit.c     the Sub state machine: resolve -> (place) -> (reserve) -> record/finish ->
 *                reply, through the group-commit batches
 *   place.c      the match step: service window, candidates, reject / dead letter
 *   reserve.c    the Redis calls: reserve + enqueue (reserve.lua), release (release.lua),
 *                settling a pending reservation
 *   query.c      StatusQuery and CancelRequest
 *   sweep.c      the periodic sweep: resume 'received' requests, page through the waitlist
 *   reconcile.c  the orphan reconciler: pending reservations whose record never committed
 *
 * Every function here runs on the loop thread. A Sub is owned by whichever step holds it
 * and freed exactly once with sub_free (every step either passes it on or frees it).
 */
#ifndef CARELINE_DISPATCH_INT_H
#define CARELINE_DISPATCH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cal.h"
#include "core/deadline.h"
#include "core/dispatch.h"
#include "core/match.h"
#include "core/rebuild.h"
#include "net/session.h"
#include "store/pgbatch.h"
#include "store/pgcols.h"
#include "store/rds.h"

#define S(x)         CARELINE__V1__##x
#define MAX_KEY      128 /* idempotency key, bytes */
#define MAX_NOTE     500 /* note and cancel reason, bytes */
#define MAX_EXCLUDED 20  /* stations remembered as having had a request */

/* RESOLVE looks a submission up; FINISH moves an existing request on; RECORD writes a
 * resolved one with its outcome */
typedef enum { BATCH_RESOLVE, BATCH_FINISH, BATCH_RECORD, BATCH_N } BatchKind;

struct Dispatch {
    PgCols resolve_pc, finish_pc; /* the batch results' columns, bound once per result */
    const Env *env;               /* borrowed from the server */
    DispatchHooks hooks;
    Directory *dir;
    TravelModel model;
    RdsScript *reserve, *release;
    Rebuild *rebuild;     /* the Redis generation: reservations wait while it is not ok */
    struct event *sweep;  /* periodic, and activated by dispatch_kick */
    bool sweeping;        /* a sweep batch is in flight */
    bool waitlist_due;    /* something changed: retry the waitlist on the next sweep */
    int sweeps;           /* count, for the slow periodic waitlist pass */
    bool sweep_waitlist;  /* the sweep in flight includes a waitlist page */
    bool waitlist_paging; /* the last page was full: continue on the next sweep */
    char cur_prio[8], cur_at[64], cur_id[24]; /* waitlist cursor (see sweep.c) */
    PgBatch *batch[BATCH_N];                  /* group commit, by BatchKind */
    bool orphan_scan;                         /* an orphan reconciliation is in flight */
    int sweep_left;                           /* subs of the current batch not finished */
    int win[2][2];                            /* [lunch|dinner][start|end] local minutes */
    bool stopped;                             /* dispatch_stop: backends are going away */
    Deadlines *deadlines;                     /* the gateways' submissions in flight */
    struct event *gauges;                     /* periodic: Redis in flight, the waitlist */
    bool counting;                            /* a waitlist count is in flight */
    int gauge_ticks;                          /* for the slower waitlist count */
    unsigned char phone_key[CONFIG_KEY_MAX];  /* HMAC key of caller-phone hashes (secret) */
    size_t phone_key_len;                     /* bytes of phone_key in use */

    struct event *resume; /* polls the PostgreSQL breaker while a sweep waits for it */

    bool sweep_owed; /* a sweep was skipped by the breaker and none sent since */
#ifdef CARELINE_TESTING
    int fault_count; /* fault injection: times the point was reached */
#endif
};

typedef struct Sub {
    Dispatch *d;
    Conn *c; /* NULL when the sweep drives it */
    uint64_t seq;
    /* the request */
    char key[MAX_KEY + 1];
    char phone[24];      /* normalised digits, "" when by resident id */
    char phone_hash[65]; /* hex HMAC-SHA256 of phone under the server's key; "" without one */
    int64_t resident_param;
    int kind, slot, subtype, urgency;
    char date_raw[16]; /* as sent ("" = today) */
    CalDay day;
    char note[MAX_NOTE + 1];
    bool has_loc;
    double loc_lat, loc_lon;
    /* from PostgreSQL */
    bool fresh; /* resolved but not recorded yet: request_id and job_id are reserved ids */
    int64_t request_id, job_id, resident_id;
    char village[16];
    double lat, lon;
    unsigned prio; /* bit per PriorityFlag */
    bool duplicate;
    bool was_waitlisted;
    bool redispatch;                /* started by dispatch_redispatch, not counted in a sweep */
    int attempt;                    /* this offer's number: 1 + the stations offered before */
    int64_t excluded[MAX_EXCLUDED]; /* stations that already had this request */
    int nexcluded;
    int prior_reason;       /* why the last station did not take it */
    char hash[65];          /* content hash (hex) for the idempotency check */
    char resident_name[64]; /* for the station's screen (masked before it leaves) */
    char address[256];
    int64_t expires_ms; /* the offer's accept-by time */
    /* outcome */
    int state, reason;
    int64_t station_id;
    char station_name[160];
    double minutes;
    int64_t ws_ms, we_ms;
    bool reserved; /* this run's script call reserved (or found) capacity */
    int64_t gen;   /* the Redis generation it was reserved in (the job row carries it) */
    char msg[200];
    /* the caller's deadline (gateway submissions only) */
    int64_t t0_ms;    /* util_now_ms() when the frame arrived */
    int64_t due_ms;   /* its deadline: answered by then, whatever the backends do */
    DeadlineItem dl;  /* armed while the caller waits */
    bool answered;    /* the caller has its answer (at most one) */
    bool abandoned;   /* answered "nothing was recorded": nothing more may be written */
    bool record_sent; /* a fresh record went to the pool: it may commit from now on */
} Sub;

/*
 * What an UNAVAILABLE tells the caller about what was recorded (the texts are in submit.c,
 * one place): SUB_NOTHING never reached a commit; SUB_MAYBE a commit was sent and its
 * answer lost (retrying with the same key is safe: the submit is idempotent by key);
 * SUB_PENDING the request is recorded and its outcome will be completed automatically.
 */
typedef enum { SUB_NOTHING, SUB_MAYBE, SUB_PENDING } SubRecorded;

/* ---- dispatch.c ---- */

/* The database name of an enum value, in buf (returned). */
const char *dispatch_db_name(const ProtobufCEnumDescriptor *desc, int value, char buf[64]);
/* An enum cell of a bound result; "" (or NULL) reads as 0. */
int dispatch_enum_col(const PgCols *pc, int row, int k, const ProtobufCEnumDescriptor *desc);
/* A station's name from the directory ("" when unknown or not loaded). */
void dispatch_station_name(const Dispatch *d, int64_t id, char *out, size_t n);
/* Binds a result's columns; on a missing one logs what (`what` names the statement) and
 * returns false, and the caller answers with an error. */
bool dispatch_bind(PgCols *pc, const PGresult *res, const char *const *names, size_t n,
                   const char *what) MUSTCHECK;

/* ---- intake.c ---- */

/* Digits of a phone number without separators or the +86 / 0086 country code into out;
 * false unless 5..15 digits remain. */
bool intake_phone(const char *in, char *out, size_t n) MUSTCHECK;
/* Fills s from the message, checking every field (no I/O: the fuzz harness calls it); on a
 * bad one answers s's connection INVALID_ARGUMENT naming it and returns false. snap: the
 * directory (a location must lie near one of its villages). */
bool intake_validate(Sub *s, const Careline__V1__SubmitRequest *m, const DirSnap *snap) MUSTCHECK;

/* The hex HMAC-SHA256 of a normalised phone under the daemon's phone-hash key: what
 * requests.caller_phone_hash holds (as bytes), so the number cannot be found by hashing every
 * possible one without the key. */
void intake_phone_hash(const Dispatch *d, const char *phone, char hex[65]);
/* The session handler of SubmitRequest (arg: the Dispatch). */
void intake_submit(void *arg, Conn *c, Envelope *env);

/* ---- submit.c ---- */

/* A submission: from a gateway's frame (c referenced and counted in flight until sub_free)
 * or, with c NULL, driven by the sweep or a re-dispatch. */
Sub *sub_new(Dispatch *d, Conn *c, uint64_t seq);
void sub_free(Sub *s);
#ifdef CARELINE_TESTING
/* Test hook: dies like kill -9 the Nth time a gateway's submission reaches `point`. Only in
 * the test build (make SAN=1): a release binary has neither the hook nor its config keys. */
void sub_fault(const Sub *s, const char *point);
#else
#define sub_fault(s, point) ((void)(s))
#endif
/* Today, and the minute of the day now (China time). */
int sub_minute_now(CalDay *today);
/* The PriorityFlag bits of a database priority list ("lives_alone,disabled"). */
unsigned sub_priority_from_db(const char *csv);
/* Answers the gateway (no-op when sweep-driven or the connection is gone). */
void sub_reply_error(Sub *s, int code, const char *field, const char *fmt, ...) PRINTF_LIKE(4, 5);
/* Answers UNAVAILABLE: cause (one clause, no period) then what was recorded. */
void sub_unavailable(Sub *s, SubRecorded rec, const char *cause);
/* The caller will not use the answer any more (connection gone) or has already been told
 * nothing was recorded: whatever s would still write is dropped. */
bool sub_gone(const Sub *s);
/* Starts the caller's deadline: submit_deadline_ms, or the client's own when shorter. */
void sub_arm_deadline(Sub *s, uint32_t client_ms);
/* Queues a validated submission for the resolve batch; takes s. */
void sub_resolve(Sub *s);
/* The outcome is known: record it (fresh) or move the request on (finish); takes s. */
void sub_finish(Sub *s);

/* ---- place.c ---- */

/* Works out the window and the candidate stations, then reserves, rejects or
 * dead-letters; takes s. */
void sub_place(Sub *s);

/* ---- reserve.c ---- */

/* Reserves capacity at the first of cands with room and queues the job there (or finds the
 * reservation an earlier run made), then sub_finish; takes s. */
void sub_reserve(Sub *s, const MatchCand *cands, size_t n);
/* Runs release.lua for (request, attempt): gives its capacity back once; drop_entry also
 * deletes its stream entry. cb gets the reply; false when Redis cannot take it now (cb does
 * not fire). */
bool reserve_release_cb(Dispatch *d, int64_t request_id, int attempt, const char *why,
                        bool drop_entry, RdsReplyCb cb, void *arg) MUSTCHECK;
/* The same, logging a failure and kicking the sweep when capacity came back. */
void reserve_release(Dispatch *d, int64_t request_id, int attempt, const char *why,
                     bool drop_entry);
/* The record committed: the reservation is no longer pending. */
void reserve_settle(Dispatch *d, int64_t request_id, int attempt);

/* ---- query.c ---- */

/* The session handlers of StatusQuery and CancelRequest (arg: the Dispatch). */
void query_status(void *arg, Conn *c, Envelope *env);
void query_cancel(void *arg, Conn *c, Envelope *env);

/* ---- sweep.c ---- */

/* Creates and arms the periodic sweep (d->sweep) and resets the waitlist cursor. */
void sweep_start(Dispatch *d);
/* Matches one 'received' request again now (see dispatch_redispatch). */
void sweep_redispatch(Dispatch *d, int64_t request_id);

/* ---- reconcile.c ---- */

/* Starts a pass over pending reservations older than orphan_grace_ms unless one runs. */
void reconcile_orphans(Dispatch *d);

#endif
