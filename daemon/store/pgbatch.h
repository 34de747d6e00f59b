/*
 * pgbatch: group commit for one kind of write. Items (one JSON object each) wait here and
 * go to PostgreSQL together as one statement taking $1::jsonb (their array), so one
 * transaction and one WAL flush cover a whole batch. A batch leaves at once when none of
 * this queue is running, or while fewer than max_inflight are and no statement waits for a
 * pool connection; otherwise items accumulate (at most max_batch a statement) and leave when
 * one returns: no added latency at low load, hundreds of items per commit under load.
 *
 * The statement returns one row per element with the element's 0-based index in a column
 * named idx (the batch functions' first output column in sql/; rows in any order); a result
 * without that column fails every item of its batch. When a batch of several fails with an
 * SQL error, each of its items is retried alone, so one bad element never holds back the
 * others; an item that fails alone gets the error — unless it is a serialization failure
 * (SQLSTATE 40001), which is run alone again, at most 3 times, within the item's deadline.
 * A batch that failed because the database could not be reached (a lost link, a timeout,
 * SQLSTATE class 08, 57P0x, a statement_timeout) is never re-run: each retry would only wait
 * again, so every item gets the error at once.
 *
 * Callbacks run on the loop thread, exactly once per accepted item: res and row on success
 * (res borrowed for the call), res NULL and err a human sentence otherwise, also when the
 * queue is freed with the item still waiting or running.
 */
#ifndef CARELINE_PGBATCH_H
#define CARELINE_PGBATCH_H

#include <stddef.h>

#include <jansson.h>

#include "store/pg.h"

typedef struct PgBatch PgBatch;
typedef void (*PgBatchCb)(PGresult *res, int row, const char *err, void *arg);
/*
 * Asked once per item just before its batch goes to the pool: true sends it; false drops it
 * unsent (its cb then fires with err "the caller has gone"). From a true answer on, the item
 * may reach the server. Must not add to or free the queue.
 */
typedef bool (*PgBatchKeepCb)(void *arg);

/*
 * sql: e.g. "SELECT * FROM f($1::jsonb)"; copied. An item still waiting for its batch
 * max_wait_ms after it was added fails ("timed out waiting for the database"); once sent,
 * the pool's query timeout bounds it.
 */
PgBatch *pgbatch_new(PgPool *pg, const char *sql, int max_inflight, size_t max_batch,
                     int max_wait_ms);

/*
 * Queues elem (reference stolen). cb fires later, or from inside this call only when the
 * pool refuses the batch (its wait queue is full) or the queue is being freed.
 */
void pgbatch_add(PgBatch *q, json_t *elem, PgBatchCb cb, void *arg);
/*
 * pgbatch_add with the caller's own bound: deadline (util_now_ms(); 0 = the queue's
 * max_wait_ms) after which the item is failed instead of sent, and keep (NULL = always)
 * asked just before it is sent.
 */
void pgbatch_add_until(PgBatch *q, json_t *elem, int64_t deadline, PgBatchKeepCb keep, PgBatchCb cb,
                       void *arg);

/*
 * Inside a PgBatchCb with res NULL: true when the item's statement had reached the server
 * before it failed (its outcome is unknown: it may have committed); false when it was never
 * sent (refused, too late, dropped, or its batch still waited for a connection).
 */
bool pgbatch_cb_sent(const PgBatch *q);

/* Items waiting for a batch (not counting running ones), for back-pressure. */
size_t pgbatch_waiting(const PgBatch *q);

/*
 * Fails the waiting items now ("shutting down"); running batches fail when the pool drops
 * them, after which the queue frees itself. NULL is a no-op.
 */
void pgbatch_free(PgBatch *q);

#endif
