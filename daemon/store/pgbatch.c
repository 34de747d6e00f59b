/* pgbatch: group commit for one kind of write (see pgbatch.h). */
#include "store/pgbatch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "store/pgcols.h"

/* The result column with each row's element index: the batch functions' first output
 * column (sql/). */
enum { COL_IDX, COL_N };
static const char *const batch_cols[COL_N] = {"idx"};

typedef struct {
    json_t *elem;
    PgBatchCb cb;
    void *arg;
    int64_t deadline;   /* util_now_ms() by which its batch must have left */
    PgBatchKeepCb keep; /* NULL or asked before sending */
    bool solo;          /* its batch failed: retried alone */
    int reruns;         /* lone runs repeated after a serialization failure */
} Item;

/* A lone item that fails with a serialization failure (SQLSTATE 40001: a concurrent
 * transaction wrote what its statement's snapshot could not see, e.g. the same idempotency
 * key recorded on another connection) is run again, at most this often: the next statement
 * takes a fresh snapshot and sees the committed row. Its deadline still bounds it. */
#define SOLO_RERUNS 3

static bool serialization_failure(const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st && strcmp(st, "40001") == 0;
}

/* The database could not be reached or gave up on the statement: no element is to blame,
 * and running them one by one would wait again for each. */
static bool unreachable(const PGresult *res)
{
    if (!res)
        return true; /* lost link, timeout, shutting down */
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!st)
        return PQresultStatus(res) == PGRES_BAD_RESPONSE;
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0 || strcmp(st, "57014") == 0 ||
           strcmp(st, "53300") == 0;
}

struct PgBatch {
    PgPool *pg;
    char *sql;
    int max_inflight;
    size_t max_batch;
    int max_wait_ms;
    Item *wait; /* FIFO */
    size_t nwait, capwait;
    int inflight;
    bool freed;
    bool cb_sent; /* see pgbatch_cb_sent */
};

typedef struct {
    PgBatch *q;
    size_t n;
    Item items[];
} Batch;

static void flush(PgBatch *q);

static void item_fail(Item *it, const char *err)
{
    json_decref(it->elem);
    it->cb(NULL, -1, err, it->arg);
}

static void push(PgBatch *q, Item it)
{
    if (q->nwait == q->capwait) {
        q->capwait = q->capwait ? 2 * q->capwait : 64;
        q->wait = xrealloc(q->wait, q->capwait * sizeof(Item));
    }
    q->wait[q->nwait++] = it;
}

static void release(PgBatch *q)
{
    if (!q->freed || q->inflight > 0)
        return;
    free(q->wait);
    free(q->sql);
    free(q);
}

static void batch_done(PGresult *res, const char *err, void *arg)
{
    Batch *b = arg;
    PgBatch *q = b->q;
    q->inflight--;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && (size_t)PQntuples(res) == b->n;
    PgCols cols = {0};
    if (ok && !pgcols_bind(&cols, res, batch_cols, COL_N)) {
        /* the statement itself is wrong: retrying the items alone would fail the same way */
        log_error("pgbatch: \"%s\" returned no column \"%s\"", q->sql, cols.missing);
        q->cb_sent = true; /* it ran: whatever it wrote is committed */
        for (size_t i = 0; i < b->n; i++)
            item_fail(&b->items[i], "the batch statement returned no element index column");
        q->cb_sent = false;
    } else if (!ok && unreachable(res)) {
        log_warn("a batch of %zu failed (%s); not retried: the database is unreachable", b->n,
                 PG_ERRLINE(res, err));
        /* an error result means the statement was rolled back; no result means it may have
         * run to its commit before the link went */
        q->cb_sent = !res && pg_pool_cb_sent(q->pg);
        for (size_t i = 0; i < b->n; i++)
            item_fail(&b->items[i], !res ? err : PG_ERRLINE(res, NULL));
        q->cb_sent = false;
    } else if (!ok && b->n > 1 && !q->freed) {
        log_warn("a batch of %zu failed (%s); retrying one by one", b->n, PG_ERRLINE(res, err));
        for (size_t i = 0; i < b->n; i++) {
            b->items[i].solo = true;
            push(q, b->items[i]);
        }
    } else if (!ok && b->n == 1 && !q->freed && serialization_failure(res) &&
               b->items[0].reruns < SOLO_RERUNS) {
        b->items[0].reruns++;
        push(q, b->items[0]);
    } else if (!ok) {
        const char *why = !res                                     ? err
                          : PQresultStatus(res) == PGRES_TUPLES_OK ? "incomplete batch result"
                                                                   : PG_ERRLINE(res, NULL);
        q->cb_sent = res && PQresultStatus(res) == PGRES_TUPLES_OK; /* it ran to its commit */
        for (size_t i = 0; i < b->n; i++)
            item_fail(&b->items[i], why);
        q->cb_sent = false;
    } else {
        for (size_t i = 0; i < b->n; i++)
            json_decref(b->items[i].elem);
        for (int row = 0; row < PQntuples(res); row++) {
            size_t i = strtoul(pgcols_str(&cols, row, COL_IDX), NULL, 10);
            if (i < b->n)
                b->items[i].cb(res, row, NULL, b->items[i].arg);
        }
    }
    free(b);
    flush(q);
    release(q);
}

static void flush(PgBatch *q)
{
    /* A batch formed while statements wait for a connection would wait too, closed to the
     * items arriving meanwhile: under steady load that makes many small batches and the
     * queue grows. So one batch goes at once, further ones only while connections are
     * free; the others leave when a batch of this queue returns. */
    while (q->nwait > 0 && !q->freed &&
           (q->inflight == 0 || (q->inflight < q->max_inflight && pg_pool_queued(q->pg) == 0))) {
        /* an item whose batch failed goes alone; the others never join it */
        size_t n = 1;
        if (!q->wait[0].solo)
            while (n < q->nwait && n < q->max_batch && !q->wait[n].solo)
                n++;
        Batch *b = xmalloc(sizeof(*b) + n * sizeof(Item));
        b->q = q;
        memcpy(b->items, q->wait, n * sizeof(Item));
        memmove(q->wait, q->wait + n, (q->nwait - n) * sizeof(Item));
        q->nwait -= n;
        q->inflight++; /* held while callbacks below run: they may add and flush */
        /* an item that waited past its bound is answered, not sent late */
        int64_t now = util_now_ms();
        size_t keep = 0;
        for (size_t i = 0; i < n; i++) {
            Item *it = &b->items[i];
            if (it->keep && !it->keep(it->arg))
                item_fail(it, "the caller has gone");
            else if (it->deadline < now)
                item_fail(it, "timed out waiting for the database");
            else
                b->items[keep++] = *it;
        }
        b->n = keep;
        json_t *arr = json_array();
        for (size_t i = 0; i < keep; i++)
            json_array_append(arr, b->items[i].elem);
        char *text = keep ? json_dumps(arr, JSON_COMPACT) : NULL;
        json_decref(arr);
        const char *params[] = {text};
        bool sent = text && pg_query(q->pg, q->sql, 1, params, batch_done, b);
        free(text);
        if (!sent) {
            q->inflight--;
            for (size_t i = 0; i < keep; i++)
                item_fail(&b->items[i], "too many queries waiting for the database");
            free(b);
        }
    }
}

PgBatch *pgbatch_new(PgPool *pg, const char *sql, int max_inflight, size_t max_batch,
                     int max_wait_ms)
{
    PgBatch *q = xcalloc(1, sizeof(*q));
    q->pg = pg;
    q->sql = xstrdup(sql);
    q->max_inflight = max_inflight > 0 ? max_inflight : 1;
    q->max_batch = max_batch > 0 ? max_batch : 1;
    q->max_wait_ms = max_wait_ms;
    return q;
}

void pgbatch_add(PgBatch *q, json_t *elem, PgBatchCb cb, void *arg)
{
    pgbatch_add_until(q, elem, 0, NULL, cb, arg);
}

bool pgbatch_cb_sent(const PgBatch *q)
{
    return q->cb_sent;
}

void pgbatch_add_until(PgBatch *q, json_t *elem, int64_t deadline, PgBatchKeepCb keep, PgBatchCb cb,
                       void *arg)
{
    int64_t dflt = util_now_ms() + q->max_wait_ms;
    Item it = {.elem = elem,
               .cb = cb,
               .arg = arg,
               .deadline = deadline > 0 && deadline < dflt ? deadline : dflt,
               .keep = keep};
    if (q->freed) {
        item_fail(&it, "shutting down");
        return;
    }
    push(q, it);
    flush(q);
}

size_t pgbatch_waiting(const PgBatch *q)
{
    return q->nwait;
}

void pgbatch_free(PgBatch *q)
{
    if (!q)
        return;
    q->freed = true;
    /* callbacks may add to the queue while it is drained: take the list first */
    Item *w = q->wait;
    size_t n = q->nwait;
    q->wait = NULL;
    q->nwait = q->capwait = 0;
    for (size_t i = 0; i < n; i++)
        item_fail(&w[i], "shutting down");
    free(w);
    release(q);
}
