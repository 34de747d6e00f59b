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
 * without that column fails every item of its batch. When a batch of several fails, each of
 * its items is retried alone, so one bad element never holds back the others; an item that
 * fails alone gets the error — unless it is a serialization failure (SQLSTATE 40001), which
 * is run alone again, at most 3 times, within the item's deadline.
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

/* Items waiting for a batch (not counting running ones), for back-pressure. */
size_t pgbatch_waiting(const PgBatch *q);

/*
 * Fails the waiting items now ("shutting down"); running batches fail when the pool drops
 * them, after which the queue frees itself. NULL is a no-op.
 */
void pgbatch_free(PgBatch *q);

#endif
