/*
 * pg: a fixed pool of nonblocking libpq connections driven by the libevent loop, with a
 * bounded FIFO wait queue, per-query deadlines and automatic reconnect, plus one dedicated
 * LISTEN connection. Nothing here ever blocks the loop (no PQexec, no PQconnectdb).
 *
 * Conninfo: use host=127.0.0.1 / hostaddr=... or a unix socket directory (host=/run/...).
 * A host *name* makes PQconnectStart resolve DNS synchronously, which blocks the loop: the
 * server passes a conninfo config_resolve_hosts gave hostaddr= at start.
 * The pool adds fallback_application_name=careline, and, unless the conninfo sets its own
 * "options", a server-side statement_timeout a little above query_timeout_ms so a query
 * whose link we dropped does not keep running on the server.
 *
 * Transactions: each pg_query may run on a different connection, so BEGIN/COMMIT across
 * calls is NOT supported. Atomic multi-row work is one statement (CTEs, INSERT ... SELECT)
 * or an SQL function.
 *
 * Callbacks: every callback runs on the loop thread. They may call pg_query() and
 * pg_pool_listen() re-entrantly. They must NOT call pg_pool_free().
 */
#ifndef CARELINE_PG_H
#define CARELINE_PG_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "base/metrics.h"
#include "common/util.h"
#include "store/breaker.h"

typedef struct PgPool PgPool;

/*
 * Completion of one pg_query(); called exactly once per accepted query.
 * res: borrowed, valid only during the callback (the pool PQclear()s it after). It may carry
 *      an SQL error: check PQresultStatus(). NULL when the query could not run, its link
 *      failed or it timed out, or the pool is shutting down; err is then a human sentence
 *      (borrowed for the callback) and otherwise NULL.
 */
typedef void (*PgResultCb)(PGresult *res, const char *err, void *arg);

/*
 * What a failed query's result says, made fit for one log line: the primary message and the
 * SQLSTATE ("duplicate key value violates unique constraint \"x\" (SQLSTATE 23505)"), never
 * DETAIL, HINT or CONTEXT (they may quote row values: names, phone numbers), whitespace
 * folded, anything not UTF-8 escaped. res NULL: the first line of err (a pool sentence, or a
 * PQerrorMessage, whose DETAIL and HINT lines follow the first), or "unknown error". A
 * result that is no error: its status ("unexpected result PGRES_TUPLES_OK"). Writes into
 * buf[n] (PG_ERRLINE_LEN is enough) and returns buf. Use it wherever a result or connection
 * error is logged.
 */
#define PG_ERRLINE_LEN 320
const char *pg_errline(const PGresult *res, const char *err, char *buf, size_t n);
/* pg_errline into a buffer that lives until the end of the enclosing block, for log calls. */
#define PG_ERRLINE(res, err) pg_errline((res), (err), (char[PG_ERRLINE_LEN]){""}, PG_ERRLINE_LEN)

/*
 * Notification on a LISTEN channel. payload is borrowed for the callback. payload == NULL
 * means "(re)subscribed": fired once each time the LISTEN becomes active (the first time and
 * after every reconnect), so the caller can resync whatever it may have missed.
 */
typedef void (*PgNotifyCb)(const char *channel, const char *payload, void *arg);

/*
 * Creates the pool and starts connecting all `size` connections at once (failures are
 * retried with backoff 100 ms doubling to 5 s plus jitter; pg_pool_ready() tells when one is
 * up). query_timeout_ms is the per-query deadline counted from pg_query() (queue wait
 * included); on expiry a running query's link is dropped and reconnected. max_queue bounds
 * the queries waiting for a free connection. Copies conninfo. Returns NULL on bad arguments.
 */
PgPool *pg_pool_new(struct event_base *base, const char *conninfo, int size, int query_timeout_ms,
                    int max_queue);

/*
 * Queues one statement with text parameters ($1..$n; a NULL entry is SQL NULL). Copies sql
 * and params. Runs as soon as a connection is idle, in FIFO order; waits while connections
 * are (re)connecting and fails with err if none comes up before the deadline. Returns false
 * (and never calls cb) when the wait queue is full or the pool is shutting down; otherwise cb
 * fires exactly once, later (never from inside pg_query). cb may be NULL for fire-and-forget
 * writes whose failure the caller can only log anyway (the pool logs it).
 */
bool pg_query(PgPool *p, const char *sql, int nparams, const char *const *params, PgResultCb cb,
              void *arg) MUSTCHECK;

/* true when at least one pool connection is up. */
bool pg_pool_ready(const PgPool *p);

/* Queued + running queries (for drain). */
size_t pg_pool_inflight(const PgPool *p);
/* Statements accepted by pg_query since the pool was made. */
uint64_t pg_pool_queries(const PgPool *p);

/* Queries waiting for a connection. */
size_t pg_pool_queued(const PgPool *p);

/*
 * The circuit breaker (store/breaker.h), off until this is called: from then on the pool
 * watches itself every min(stall_ms / 5, 100) ms. It trips when no connection is healthy
 * (once one was up) or when statements run and the server has answered nothing for
 * stall_ms — half-way there it sends a probe ("SELECT 1", on an idle connection if any), so
 * one long statement on a live server is no stall. Open, it probes every probe_ms and
 * closes on the probe's answer or on any other statement's answer. The pool itself keeps running
 * what it is given: the callers ask pg_pool_available() and refuse new work at once while it is
 * false.
 */
void pg_pool_set_breaker(PgPool *p, int stall_ms, int probe_ms);
/* true while the breaker is closed (always, when the breaker is off). */
bool pg_pool_available(const PgPool *p);
BreakerState pg_pool_breaker_state(const PgPool *p);
uint64_t pg_pool_breaker_trips(const PgPool *p);
/*
 * Inside a PgResultCb with res NULL: true when the statement had been handed to the server
 * before it failed (a lost link or a timeout): it may have run, and committed. false: it
 * never left the queue.
 */
bool pg_pool_cb_sent(const PgPool *p);
/* Statement latencies go to m->pg_seconds; the pool's gauges and the breaker's state are
 * copied into m every 100 ms (at most). m borrowed; NULL stops it. */
void pg_pool_set_metrics(PgPool *p, Metrics *m);

/*
 * LISTENs on channel (case-sensitive: the name is quoted) on a dedicated extra connection,
 * created on first use; re-LISTENs after every reconnect. Copies channel. cb fires for each
 * NOTIFY, and with payload NULL each time the LISTEN becomes active (see PgNotifyCb).
 * Ignored while shutting down.
 */
void pg_pool_listen(PgPool *p, const char *channel, PgNotifyCb cb, void *arg);

/*
 * Fails every queued and running query with err "shutting down" (their callbacks run now;
 * pg_query from them returns false), closes all connections and frees the pool.
 * pg_pool_free(NULL) is a no-op. Not allowed from inside a pool callback.
 */
void pg_pool_free(PgPool *p);

#endif
