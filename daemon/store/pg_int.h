/*
 * pg_int: the pool's private types and the calls between its three files, for
 * daemon/store/pg*.c only (everyone else includes store/pg.h).
 *   pg.c        the pool: the FIFO wait queue with one deadline timer, dispatching to idle
 *               connections, the public pg_pool_* / pg_query calls
 *   pg_conn.c   one connection's state machine DOWN -> CONNECTING -> IDLE <-> BUSY
 *   pg_listen.c LISTEN/NOTIFY on the dedicated connection
 * Every call here runs on the loop thread; none blocks.
 */
#ifndef CARELINE_PG_INT_H
#define CARELINE_PG_INT_H

#include "store/pg.h"

#include <stdint.h>

#include "base/metrics.h"
#include "store/breaker.h"

#include <event2/event_struct.h>

#define PG_BACKOFF_MIN_MS         100
#define PG_BACKOFF_MAX_MS         5000
#define PG_CONNECT_TIMEOUT_MIN_MS 2000
#define PG_ERR_LEN                256

typedef struct PgQuery PgQuery;
struct PgQuery {
    PgQuery *next;    /* wait-queue link; NULL while running */
    char *sql;        /* owned copy */
    int nparams;      /* entries in params */
    char **params;    /* owned copies; a NULL entry is SQL NULL */
    PgResultCb cb;    /* called exactly once, then the query is freed */
    void *arg;        /* opaque for cb */
    int64_t deadline; /* util_now_ms() after which the query fails with "timed out" */
    bool simple;      /* internal: PQsendQuery (several statements, no params) */
    int64_t sent_ms;  /* util_now_ms() when handed to libpq; 0 while it waits in the queue */
};

typedef struct PgListen PgListen;
struct PgListen {
    PgListen *next; /* append order */
    char *channel;  /* owned copy, LISTENed quoted (case-sensitive) */
    PgNotifyCb cb;  /* notifications and (re)subscribe events */
    void *arg;      /* opaque for cb */
    bool sent;      /* LISTEN sent on the current link (cleared when the link drops) */
    bool active;    /* LISTEN confirmed on the current link */
};

typedef enum {
    PGC_DOWN,       /* no PGconn; timer = reconnect backoff */
    PGC_CONNECTING, /* PQconnectPoll in progress; timer = connect deadline */
    PGC_IDLE,       /* up, no query; io waits for READ to notice a dead link early */
    PGC_BUSY,       /* q running; timer = q->deadline */
} PgConnState;

typedef struct PgConn {
    PgPool *pool;        /* owner */
    int id;              /* index in pool->conns, -1 for the LISTEN connection */
    PgConnState state;   /* see PgConnState */
    PGconn *pg;          /* NULL only while DOWN */
    struct event io;     /* re-assigned for each wait: PQsocket() may change while connecting */
    bool io_assigned;    /* io was event_assign()ed at least once (event_del is safe) */
    struct event *timer; /* meaning depends on state, see PgConnState */
    PgQuery *q;          /* running query, BUSY only */
    PGresult *res;       /* result kept for q: the first error, else the last one */
    bool flushing;       /* PQflush returned 1: wait for WRITE as well */
    int backoff_ms;      /* next reconnect base delay */
} PgConn;

struct PgPool {
    struct event_base *base;
    char *conninfo;         /* owned copy, expanded as the dbname keyword */
    char options[64];       /* "-c statement_timeout=N", empty if conninfo sets options */
    int size;               /* entries in conns */
    int timeout_ms;         /* per-query deadline */
    int max_queue;          /* bound of the wait queue */
    PgConn *conns;          /* size entries */
    PgConn *lconn;          /* LISTEN connection, NULL until pg_pool_listen() */
    PgListen *listens;      /* LISTENed channels */
    PgQuery *qhead, *qtail; /* wait queue, FIFO == deadline order (one timeout for all) */
    size_t qlen;            /* entries in the wait queue */
    size_t running;         /* user queries on pool connections */
    struct event *qtimer;   /* fires at the queue head's deadline */
    bool closing;           /* pg_pool_free in progress: refuse new work */
    int cb_depth;           /* > 0 while a user callback runs */
    unsigned failures;      /* link failures since the last healthy connect */
    uint32_t rng;           /* xorshift state for backoff jitter */
    uint64_t queries;       /* statements accepted by pg_query, for /metrics */
    /* the circuit breaker (store/breaker.h); stall_ms 0 = off */
    Breaker breaker;
    int stall_ms;         /* running work and no answer for this long = stalled */
    struct event *tick;   /* EV_PERSIST: watches for stalls, sends probes */
    int64_t last_done_ms; /* util_now_ms() of the last statement answered or connect made */
    bool ever_up;         /* a connection was up once: "none healthy" is a stall from then */
    bool cb_sent;         /* during a failed query's callback: it had been sent */
    bool probe_out;       /* the breaker's "SELECT 1" is queued or running */
    Metrics *metrics;     /* statement latencies and pool gauges, or NULL */
};

/* ---- pg.c: the pool and its wait queue ---- */

/* Reports q to its owner (cb_depth counted) and frees it. res stays owned by the caller. */
void pgpool_query_finish(PgPool *p, PgQuery *q, PGresult *res, const char *err);
/* Starts queued queries on idle connections. Re-entrant: state is consistent at each step. */
void pgpool_dispatch(PgPool *p);
/* The server answered (a statement or a connect): progress for the stall watch. */
void pgpool_progress(PgPool *p);

/* ---- pg_conn.c: one connection ---- */

/* Copies a libpq message onto one line of at most n-1 bytes (newlines and tabs -> spaces). */
void pg_err_copy(char *dst, size_t n, const char *msg);
/* Sets c up DOWN with its timer (not connected yet). id -1 is the LISTEN connection. */
void pgconn_init(PgPool *p, PgConn *c, int id);
/* Starts connecting a DOWN connection; on failure schedules a reconnect with backoff. */
void pgconn_connect(PgConn *c);
/*
 * Starts q on IDLE c (c owns q until its callback). May fail q at once (its callback runs
 * inside this call) if the link turns out to be broken.
 */
void pgconn_start(PgConn *c, PgQuery *q);
/* Closes c, fails its running query with "shutting down" and frees its timer (pool free). */
void pgconn_shutdown(PgConn *c);

/* ---- pg_listen.c: LISTEN/NOTIFY on p->lconn ---- */

/* Sends LISTEN for channels not yet sent on the current link, if the link is idle. */
void pglisten_kick(PgPool *p);
/* p->lconn's link dropped: every channel must be LISTENed again after the reconnect. */
void pglisten_reset(PgPool *p);
/* Hands one notification received on p->lconn to the active channels' callbacks. */
void pglisten_deliver(PgPool *p, const PGnotify *n);
/* Frees the channel list (pool free; no callback runs). */
void pglisten_free_all(PgPool *p);

#endif
