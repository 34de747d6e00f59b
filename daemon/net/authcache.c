/*
 * authcache: a check runs, in order, the address lockout, the token's form, the positive
 * and the negative cache, then joins a running lookup of the same token or starts one —
 * within the budget, else queued here, else refused at once. The three tables are rings of
 * fixed slots with hash chains: a new key takes the oldest slot, so memory is bounded
 * whatever a client sends, and an entry's age is checked when it is read (no sweeping).
 */
#include "net/authcache.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/pgcols.h"

#define NIL     UINT32_MAX
#define KEY_LEN AUTH_HASH_LEN /* a token's SHA-256, or an address (17 bytes used) */

typedef struct {
    uint8_t key[KEY_LEN];
    bool used;
    uint32_t chain;     /* next slot in the same bucket, or NIL */
    int64_t expires_ms; /* token caches: monotonic; the entry is dead from then */
    /* positive cache */
    Role role;
    int64_t station_id;
    int64_t principal_id;
    char name[AUTH_NAME_MAX];
    /* address table */
    int fails;               /* failures counted since window_start_ms */
    int64_t window_start_ms; /* monotonic */
    int64_t locked_until_ms; /* monotonic; 0 = not locked */
} Slot;

typedef struct {
    Slot *slot;
    uint32_t n;      /* slots */
    uint32_t oldest; /* the slot a new key takes next (insertion order) */
    uint32_t *bucket;
    uint32_t mask; /* buckets - 1 (a power of two, >= 2n) */
} Ring;

typedef struct Waiter {
    AuthCb cb;
    void *arg;
    bool has_addr;
    uint8_t addr[KEY_LEN];
    char ip[INET6_ADDRSTRLEN]; /* for the lockout's log line */
    struct Waiter *next;
} Waiter;

typedef struct Lookup {
    AuthCache *ac;
    uint8_t key[KEY_LEN];
    char hex[2 * AUTH_HASH_LEN + 1];
    Waiter *waiters; /* the checks this lookup answers (the first one started it) */
    struct Lookup *next;
} Lookup;

struct AuthCache {
    PgPool *pg;        /* borrowed */
    const Config *cfg; /* borrowed: the live config */
    Metrics *m;        /* borrowed */
    Ring pos, neg;     /* token hash -> principal; token hash -> failed */
    Ring addr;         /* address -> failures, lockout */
    Lookup *running;   /* in PostgreSQL now */
    unsigned nrunning; /* entries of running */
    Lookup *wait_head; /* FIFO of lookups waiting for the budget */
    Lookup *wait_tail; /* its last entry */
    unsigned nwaiting; /* entries of wait_head */
};

/* ---- rings ----------------------------------------------------------------------------------- */

static uint32_t key_hash(const uint8_t key[KEY_LEN])
{
    uint32_t h = 2166136261u; /* FNV-1a: addresses are not uniform, token hashes are */
    for (int i = 0; i < KEY_LEN; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

static void ring_init(Ring *r, int n)
{
    r->n = (uint32_t)n;
    r->slot = xcalloc(r->n, sizeof(Slot));
    uint32_t nb = 1;
    while (nb < 2 * r->n)
        nb <<= 1;
    r->mask = nb - 1;
    r->bucket = xmalloc(nb * sizeof(uint32_t));
    for (uint32_t i = 0; i < nb; i++)
        r->bucket[i] = NIL;
}

static void ring_free(Ring *r)
{
    free(r->slot);
    free(r->bucket);
}

static Slot *ring_find(const Ring *r, const uint8_t key[KEY_LEN])
{
    for (uint32_t i = r->bucket[key_hash(key) & r->mask]; i != NIL; i = r->slot[i].chain)
        if (memcmp(r->slot[i].key, key, KEY_LEN) == 0)
            return &r->slot[i];
    return NULL;
}

static void ring_unlink(Ring *r, uint32_t ix)
{
    uint32_t *p = &r->bucket[key_hash(r->slot[ix].key) & r->mask];
    while (*p != ix) {
        ASSERT(*p != NIL);
        p = &r->slot[*p].chain;
    }
    *p = r->slot[ix].chain;
}

/* The slot of key, made from the oldest (zeroed but for the key) when key has none. */
static Slot *ring_put(Ring *r, const uint8_t key[KEY_LEN])
{
    Slot *s = ring_find(r, key);
    if (s)
        return s;
    uint32_t ix = r->oldest;
    r->oldest = (r->oldest + 1) % r->n;
    if (r->slot[ix].used)
        ring_unlink(r, ix);
    s = &r->slot[ix];
    memset(s, 0, sizeof(*s));
    memcpy(s->key, key, KEY_LEN);
    s->used = true;
    uint32_t *b = &r->bucket[key_hash(key) & r->mask];
    s->chain = *b;
    *b = ix;
    return s;
}

/* ---- addresses ------------------------------------------------------------------------------- */

static bool addr_key(const char *ip, uint8_t key[KEY_LEN])
{
    memset(key, 0, KEY_LEN);
    if (!ip)
        return false;
    if (inet_pton(AF_INET, ip, key) == 1) {
        key[16] = 4;
        return true;
    }
    if (inet_pton(AF_INET6, ip, key) == 1) {
        key[16] = 6;
        return true;
    }
    return false;
}

/* Seconds until the address's lockout ends, or 0 when it is not locked out. */
static int locked_for_s(const AuthCache *ac, const Waiter *w, int64_t now)
{
    if (!w->has_addr)
        return 0;
    const Slot *s = ring_find(&ac->addr, w->addr);
    if (!s || s->locked_until_ms <= now)
        return 0;
    return (int)((s->locked_until_ms - now + 999) / 1000);
}

static void failure_record(AuthCache *ac, const Waiter *w, int64_t now)
{
    const Config *cfg = ac->cfg;
    if (!w->has_addr || cfg->auth_fail_limit <= 0)
        return;
    Slot *s = ring_put(&ac->addr, w->addr);
    if (s->locked_until_ms > now)
        return; /* refusals while locked out do not prolong the lockout */
    if (s->locked_until_ms || now - s->window_start_ms >= cfg->auth_fail_window_ms) {
        s->fails = 0;
        s->window_start_ms = now;
        s->locked_until_ms = 0;
    }
    if (++s->fails < cfg->auth_fail_limit)
        return;
    s->locked_until_ms = now + cfg->auth_lockout_ms;
    ac->m->auth_lockouts++;
    log_limited(LOG_WARN,
                "auth: %s locked out for %d s after %d failed authentications within %d s", w->ip,
                (cfg->auth_lockout_ms + 999) / 1000, s->fails,
                (int)((now - s->window_start_ms + 999) / 1000));
}

/* ---- answers --------------------------------------------------------------------------------- */

static AuthAnswer verdict(AuthVerdict v, int retry_after_s, const char *msg)
{
    AuthAnswer a = {.verdict = v, .retry_after_s = retry_after_s};
    snprintf(a.message, sizeof(a.message), "%s", msg);
    return a;
}

static void gauges(AuthCache *ac)
{
    ac->m->auth_inflight = ac->nrunning;
    ac->m->auth_waiting = ac->nwaiting;
}

/* Answers one check and frees its waiter; a failure counts against its address. */
static void answer(AuthCache *ac, Waiter *w, const AuthAnswer *a)
{
    if (a->verdict == AUTH_DENIED || a->verdict == AUTH_MALFORMED)
        failure_record(ac, w, util_now_ms());
    if (a->verdict == AUTH_BUSY)
        ac->m->auth_busy++;
    w->cb(w->arg, a);
    free(w);
}

/* Frees lk and answers every check that waited on it (they may check again re-entrantly). */
static void answer_all(AuthCache *ac, Lookup *lk, const AuthAnswer *a)
{
    Waiter *w = lk->waiters;
    free(lk);
    while (w) {
        Waiter *next = w->next;
        answer(ac, w, a);
        w = next;
    }
}

/* ---- lookups --------------------------------------------------------------------------------- */

enum { COL_ROLE, COL_STATION, COL_NAME, COL_ID, COL_N };
static const char *const auth_cols[COL_N] = {AUTH_COL_ROLE, AUTH_COL_STATION, AUTH_COL_NAME,
                                             AUTH_COL_ID};

static void running_remove(AuthCache *ac, Lookup *lk)
{
    Lookup **p = &ac->running;
    while (*p != lk) {
        ASSERT(*p);
        p = &(*p)->next;
    }
    *p = lk->next;
    ac->nrunning--;
    gauges(ac);
}

/* What PostgreSQL's answer means; fills the caches. */
static AuthAnswer lookup_result(AuthCache *ac, const Lookup *lk, PGresult *res, const char *err)
{
    const Config *cfg = ac->cfg;
    int64_t now = util_now_ms();
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[300];
        snprintf(why, sizeof(why), "%s", res ? PQresultErrorMessage(res) : err);
        why[strcspn(why, "\n")] = '\0';
        log_limited(LOG_WARN, "auth: token lookup failed: %s", why);
        return verdict(AUTH_UNAVAILABLE, 1,
                       "cannot check the token now (the database did not answer); retry shortly");
    }
    PgCols pc = {0};
    if (!pgcols_bind(&pc, res, auth_cols, COL_N)) {
        log_limited(LOG_ERROR, "auth: the token lookup returned no column \"%s\"", pc.missing);
        return verdict(AUTH_INTERNAL, 0,
                       "cannot check the token (server error); tell the operator");
    }
    Role role = PQntuples(res) == 1 ? auth_role_parse(pgcols_str(&pc, 0, COL_ROLE))
                                    : CARELINE__V1__ROLE__ROLE_UNSPECIFIED;
    if (role == CARELINE__V1__ROLE__ROLE_UNSPECIFIED) {
        if (cfg->auth_negative_ttl_ms > 0)
            ring_put(&ac->neg, lk->key)->expires_ms = now + cfg->auth_negative_ttl_ms;
        return verdict(AUTH_DENIED, 0,
                       PQntuples(res) == 1 ? "the token's role is not known to this server"
                                           : "unknown or revoked token");
    }
    AuthAnswer a = {.verdict = AUTH_OK,
                    .role = role,
                    .station_id = pgcols_ll(&pc, 0, COL_STATION),
                    .principal_id = pgcols_ll(&pc, 0, COL_ID)};
    snprintf(a.name, sizeof(a.name), "%s", pgcols_str(&pc, 0, COL_NAME));
    if (cfg->auth_cache_ttl_ms > 0) {
        Slot *s = ring_put(&ac->pos, lk->key);
        s->expires_ms = now + cfg->auth_cache_ttl_ms;
        s->role = a.role;
        s->station_id = a.station_id;
        s->principal_id = a.principal_id;
        memcpy(s->name, a.name, sizeof(s->name));
    }
    return a;
}

static void pump(AuthCache *ac);

static void lookup_done(PGresult *res, const char *err, void *arg)
{
    Lookup *lk = arg;
    AuthCache *ac = lk->ac;
    running_remove(ac, lk);
    AuthAnswer a = lookup_result(ac, lk, res, err);
    pump(ac);
    answer_all(ac, lk, &a);
}

/* Sends lk to PostgreSQL; false (lk untouched, not running) if the pool refuses it. */
static bool launch(AuthCache *ac, Lookup *lk)
{
    const char *params[] = {lk->hex};
    if (!pg_query(ac->pg, AUTH_LOOKUP_SQL, 1, params, lookup_done, lk))
        return false;
    lk->next = ac->running;
    ac->running = lk;
    ac->nrunning++;
    ac->m->auth_lookups++;
    gauges(ac);
    return true;
}

static const char *const pool_full =
    "cannot check the token now (the database queue is full or the server is stopping); "
    "retry shortly";

/* Starts waiting lookups while the budget allows. */
static void pump(AuthCache *ac)
{
    while (ac->wait_head && ac->nrunning < (unsigned)ac->cfg->auth_max_inflight) {
        Lookup *lk = ac->wait_head;
        ac->wait_head = lk->next;
        if (!ac->wait_head)
            ac->wait_tail = NULL;
        lk->next = NULL;
        ac->nwaiting--;
        gauges(ac);
        if (!launch(ac, lk)) {
            AuthAnswer a = verdict(AUTH_BUSY, 1, pool_full);
            answer_all(ac, lk, &a);
        }
    }
}

static Lookup *lookup_of(Lookup *list, const uint8_t key[KEY_LEN])
{
    for (Lookup *lk = list; lk; lk = lk->next)
        if (memcmp(lk->key, key, KEY_LEN) == 0)
            return lk;
    return NULL;
}

/* ---- the check ------------------------------------------------------------------------------- */

void authcache_check(AuthCache *ac, const char *ip, const char *token, AuthCb cb, void *arg)
{
    const Config *cfg = ac->cfg;
    int64_t now = util_now_ms();
    Waiter *w = xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->has_addr = addr_key(ip, w->addr);
    snprintf(w->ip, sizeof(w->ip), "%s", w->has_addr ? ip : "?");

    int locked = locked_for_s(ac, w, now);
    if (locked > 0) {
        ac->m->auth_locked++;
        AuthAnswer a = verdict(AUTH_LOCKED, locked, "");
        snprintf(a.message, sizeof(a.message),
                 "too many failed authentications from %s; refused without checking for %d s",
                 w->ip, locked);
        answer(ac, w, &a);
        return;
    }
    if (!auth_token_well_formed(token)) {
        AuthAnswer a = verdict(AUTH_MALFORMED, 0,
                               "malformed token (expected 1..256 printable ASCII characters)");
        answer(ac, w, &a);
        return;
    }
    Lookup *lk = xcalloc(1, sizeof(*lk));
    lk->ac = ac;
    auth_token_hash(token, lk->key);
    for (int i = 0; i < AUTH_HASH_LEN; i++)
        snprintf(lk->hex + 2 * i, 3, "%02x", lk->key[i]);

    const Slot *s = cfg->auth_cache_ttl_ms > 0 ? ring_find(&ac->pos, lk->key) : NULL;
    if (s && s->expires_ms > now) {
        ac->m->auth_cache_hits++;
        AuthAnswer a = {.verdict = AUTH_OK,
                        .role = s->role,
                        .station_id = s->station_id,
                        .principal_id = s->principal_id};
        memcpy(a.name, s->name, sizeof(a.name));
        free(lk);
        answer(ac, w, &a);
        return;
    }
    s = cfg->auth_negative_ttl_ms > 0 ? ring_find(&ac->neg, lk->key) : NULL;
    if (s && s->expires_ms > now) {
        ac->m->auth_negative_hits++;
        AuthAnswer a = verdict(AUTH_DENIED, 0, "unknown or revoked token");
        free(lk);
        answer(ac, w, &a);
        return;
    }
    Lookup *same = lookup_of(ac->running, lk->key);
    if (!same)
        same = lookup_of(ac->wait_head, lk->key);
    if (same) {
        ac->m->auth_coalesced++;
        free(lk);
        w->next = same->waiters;
        same->waiters = w;
        return;
    }
    lk->waiters = w;
    if (!ac->wait_head && ac->nrunning < (unsigned)cfg->auth_max_inflight) {
        if (!launch(ac, lk)) {
            AuthAnswer a = verdict(AUTH_BUSY, 1, pool_full);
            answer_all(ac, lk, &a);
        }
        return;
    }
    if (ac->nwaiting >= (unsigned)cfg->auth_max_waiting) {
        AuthAnswer a =
            verdict(AUTH_BUSY, 1, "too many token checks in progress; retry in a second");
        answer_all(ac, lk, &a);
        return;
    }
    if (ac->wait_tail)
        ac->wait_tail->next = lk;
    else
        ac->wait_head = lk;
    ac->wait_tail = lk;
    ac->nwaiting++;
    gauges(ac);
    pump(ac); /* the budget may have grown on SIGHUP */
}

/* ---- life ------------------------------------------------------------------------------------ */

AuthCache *authcache_new(PgPool *pg, const Config *cfg, Metrics *m)
{
    AuthCache *ac = xcalloc(1, sizeof(*ac));
    ac->pg = pg;
    ac->cfg = cfg;
    ac->m = m;
    ring_init(&ac->pos, cfg->auth_cache_entries);
    ring_init(&ac->neg, cfg->auth_cache_entries);
    ring_init(&ac->addr, cfg->auth_addr_entries);
    return ac;
}

void authcache_free(AuthCache *ac)
{
    if (!ac)
        return;
    ASSERT(!ac->running && !ac->wait_head); /* the pool answered every lookup */
    ring_free(&ac->pos);
    ring_free(&ac->neg);
    ring_free(&ac->addr);
    free(ac);
}

void authcache_forget_principal(AuthCache *ac, int64_t principal_id)
{
    for (uint32_t i = 0; i < ac->pos.n; i++) {
        Slot *s = &ac->pos.slot[i];
        if (s->used && s->principal_id == principal_id)
            s->expires_ms = 0; /* dead: the next check of its token asks PostgreSQL */
    }
}

unsigned authcache_inflight(const AuthCache *ac)
{
    return ac->nrunning;
}

unsigned authcache_waiting(const AuthCache *ac)
{
    return ac->nwaiting;
}
