/*
 * reconcile: the orphan reconciler. A fresh submission's reservation is listed in the
 * county's pending set until its record commits. One still listed after orphan_grace_ms
 * (longer than any record statement can take) either committed — its daemon died before
 * clearing it — or never will: PostgreSQL says which, and a never-recorded one gives its
 * unit back and loses its stream entry. Runs from the sweep, one pass at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/dispatch_int.h"

#define ORPHAN_BATCH "500"

typedef struct {
    Dispatch *d;
    size_t n;
    int64_t *ids;
    int *attempts;
} OrphanScan;

static void orphan_scan_free(OrphanScan *o)
{
    o->d->orphan_scan = false;
    free(o->ids);
    free(o->attempts);
    free(o);
}

static const char *const recorded_cols[] = {"recorded"};

static void orphans_checked(PGresult *res, const char *err, void *arg)
{
    OrphanScan *o = arg;
    Dispatch *d = o->d;
    PgCols pc = {0};
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != o->n) {
        log_warn("checking pending reservations failed: %s", PG_ERRLINE(res, err));
        orphan_scan_free(o);
        return;
    }
    if (!dispatch_bind(&pc, res, recorded_cols, 1, "checking pending reservations")) {
        orphan_scan_free(o);
        return;
    }
    size_t released = 0;
    for (size_t i = 0; i < o->n && !d->stopped; i++) {
        if (pgcols_bool(&pc, (int)i, 0)) {
            reserve_settle(d, o->ids[i], o->attempts[i]);
        } else {
            reserve_release(d, o->ids[i], o->attempts[i], "orphaned", true);
            released++;
        }
    }
    if (released) {
        d->env->metrics->orphans_released += released;
        log_warn("gave back %zu reservation%s whose request was never recorded", released,
                 released == 1 ? "" : "s");
    }
    orphan_scan_free(o);
}

static void orphans_listed(redisReply *r, const char *err, void *arg)
{
    Dispatch *d = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0 || d->stopped) {
        if (!r || r->type == REDIS_REPLY_ERROR)
            log_warn("listing pending reservations failed: %s", r ? r->str : err);
        d->orphan_scan = false;
        return;
    }
    OrphanScan *o = xcalloc(1, sizeof(*o));
    o->d = d;
    o->ids = xcalloc(r->elements, sizeof(int64_t));
    o->attempts = xcalloc(r->elements, sizeof(int));
    char *arr = xmalloc(2 + r->elements * 22);
    size_t len = 0, plen = strlen(d->env->keys.prefix);
    arr[len++] = '{';
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        long long id;
        int att;
        if (e->type != REDIS_REPLY_STRING || strncmp(e->str, d->env->keys.prefix, plen) != 0 ||
            sscanf(e->str + plen, "ra:%lld:%d", &id, &att) != 2)
            continue; /* only reserve.lua writes the set */
        o->ids[o->n] = id;
        o->attempts[o->n++] = att;
        len += (size_t)sprintf(arr + len, "%s%lld", len > 1 ? "," : "", id);
    }
    arr[len++] = '}';
    arr[len] = '\0';
    const char *params[] = {arr};
    bool sent = o->n > 0 &&
                pg_query(d->env->pg,
                         "SELECT EXISTS (SELECT 1 FROM requests r WHERE r.id = x.id) AS recorded "
                         "FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n) ORDER BY x.n",
                         1, params, orphans_checked, o);
    free(arr);
    if (!sent)
        orphan_scan_free(o);
}

void reconcile_orphans(Dispatch *d)
{
    if (d->orphan_scan)
        return;
    char pend[64], max[24];
    keys_pending(&d->env->keys, pend, sizeof(pend));
    snprintf(max, sizeof(max), "%lld", (long long)(util_wall_ms() - d->env->cfg->orphan_grace_ms));
    const char *argv[] = {"ZRANGEBYSCORE", pend, "-inf", max, "LIMIT", "0", ORPHAN_BATCH};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    d->orphan_scan = rds_command(d->env->rds, orphans_listed, d, 7, argv, lens);
}
