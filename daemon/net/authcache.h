/*
 * authcache: the one token checker behind the protocol's Hello (session.c) and the HTTP
 * bearer token (reports/bureau_auth.c), built so that a flood of bad tokens cannot starve
 * the PostgreSQL pool that submissions need:
 *  - a positive cache (auth_cache_ttl_ms: how long a revoked token may still open sessions)
 *    and a negative cache of failed token hashes (auth_negative_ttl_ms);
 *  - per address, a count of failed checks: auth_fail_limit of them within
 *    auth_fail_window_ms lock the address out for auth_lockout_ms, refused with no query;
 *  - lookups that must reach PostgreSQL run at most auth_max_inflight at once, one per
 *    distinct token (a check of a token already being looked up waits for that lookup),
 *    with at most auth_max_waiting more queued here — in front of the pool's queue, never in
 *    it; beyond that a check is refused at once (AUTH_BUSY, retryable).
 * Tables are fixed-size rings (auth_cache_entries, auth_addr_entries): the oldest entry makes
 * room. Every outcome is counted in the Metrics. Loop thread only.
 */
#ifndef CARELINE_AUTHCACHE_H
#define CARELINE_AUTHCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/auth.h"
#include "base/config.h"
#include "base/metrics.h"
#include "store/pg.h"

typedef struct AuthCache AuthCache;

typedef enum {
    AUTH_OK,          /* role, station_id and name are the principal's */
    AUTH_DENIED,      /* unknown or revoked token (from PostgreSQL or the negative cache) */
    AUTH_MALFORMED,   /* not 1..AUTH_TOKEN_MAX printable ASCII characters; never looked up */
    AUTH_LOCKED,      /* too many failures from this address: refused unchecked */
    AUTH_BUSY,        /* too many lookups running and waiting: retry shortly */
    AUTH_UNAVAILABLE, /* PostgreSQL did not answer (down, timeout, error): retry shortly */
    AUTH_INTERNAL,    /* the lookup's result lacked a column (logged): a server bug */
} AuthVerdict;

#define AUTH_NAME_MAX 64

typedef struct {
    AuthVerdict verdict;
    Role role;                /* AUTH_OK */
    int64_t station_id;       /* AUTH_OK: 0 for a principal of no station */
    int64_t principal_id;     /* AUTH_OK: principals.id (audit rows, revocation) */
    char name[AUTH_NAME_MAX]; /* AUTH_OK: the principal's label */
    int retry_after_s;        /* AUTH_LOCKED, AUTH_BUSY, AUTH_UNAVAILABLE: when to retry */
    char message[160];        /* one human sentence for the client (never backend text) */
} AuthAnswer;

/* The answer to one authcache_check; a is borrowed for the call. */
typedef void (*AuthCb)(void *arg, const AuthAnswer *a);

/* pg, cfg (the live config: the TTLs and limits are read at each check) and m are
 * borrowed and must outlive the cache. The table sizes are taken now. */
AuthCache *authcache_new(PgPool *pg, const Config *cfg, Metrics *m);
/* authcache_free(NULL) is a no-op. Every lookup must have been answered (free the pool
 * first: it fails what it runs, and the queued lookups then fail too). */
void authcache_free(AuthCache *ac);

/* Checks token for a client at ip (an IPv4 or IPv6 literal without port; NULL or
 * unparsable = no per-address accounting). cb fires exactly once: before this returns when
 * no query is needed (a cache hit, a lockout, a malformed token, the budget full), else from
 * the lookup's completion. token is borrowed for the call. */
void authcache_check(AuthCache *ac, const char *ip, const char *token, AuthCb cb, void *arg);

/* A principal was revoked: its tokens leave the positive cache, so the next check asks
 * PostgreSQL (which refuses it). */
void authcache_forget_principal(AuthCache *ac, int64_t principal_id);

/* For tests and the metrics: lookups running, and waiting for the budget. */
unsigned authcache_inflight(const AuthCache *ac);
unsigned authcache_waiting(const AuthCache *ac);

#endif
