/*
 * pg_listen: LISTEN/NOTIFY on one dedicated connection (p->lconn), made on the first
 * pg_pool_listen(). Channels are LISTENed in one simple query per batch; a channel becomes
 * active (and its callback hears payload NULL, "resync") when the server confirms, and every
 * channel is LISTENed again after each reconnect, since the server forgets them with the link.
 */
#include "store/pg_int.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *pglisten_sql(PgPool *p)
{
    size_t cap = 64, len = 0;
    char *sql = xmalloc(cap);
    sql[0] = '\0';
    for (PgListen *l = p->listens; l; l = l->next) {
        if (l->sent)
            continue;
        char *id = PQescapeIdentifier(p->lconn->pg, l->channel, strlen(l->channel));
        if (!id) {
            log_warn("pg: cannot quote LISTEN channel \"%s\"", l->channel);
            l->sent = true; /* retried after the next reconnect */
            continue;
        }
        size_t need = len + strlen(id) + 16;
        if (need > cap) {
            cap = need * 2;
            sql = xrealloc(sql, cap);
        }
        len += (size_t)sprintf(sql + len, "LISTEN %s;", id);
        PQfreemem(id);
        l->sent = true;
    }
    if (len == 0) {
        free(sql);
        return NULL;
    }
    return sql;
}

static void pglisten_done_cb(PGresult *res, const char *err, void *arg)
{
    PgPool *p = arg;

    if (!res) { /* link dropped: pglisten_reset() cleared the flags; re-LISTEN after reconnect */
        log_debug("pg[listen]: LISTEN not confirmed: %s", err);
        return;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[PG_ERR_LEN];
        pg_errline(res, NULL, msg, sizeof(msg));
        log_warn("pg[listen]: LISTEN failed: %s (retried after reconnect)", msg);
        return;
    }
    for (PgListen *l = p->listens; l; l = l->next) {
        if (l->sent && !l->active) {
            l->active = true;
            p->cb_depth++;
            l->cb(l->channel, NULL, l->arg);
            p->cb_depth--;
        }
    }
}

void pglisten_kick(PgPool *p)
{
    PgConn *c = p->lconn;
    if (p->closing || !c || c->state != PGC_IDLE)
        return;
    char *sql = pglisten_sql(p);
    if (!sql)
        return;
    PgQuery *q = xcalloc(1, sizeof(*q));
    q->sql = sql;
    q->simple = true;
    q->cb = pglisten_done_cb;
    q->arg = p;
    q->deadline = util_now_ms() + p->timeout_ms;
    pgconn_start(c, q);
}

void pg_pool_listen(PgPool *p, const char *channel, PgNotifyCb cb, void *arg)
{
    ASSERT(p && channel && cb);
    if (p->closing)
        return;
    PgListen *l = xcalloc(1, sizeof(*l));
    l->channel = xstrdup(channel);
    l->cb = cb;
    l->arg = arg;
    PgListen **tail = &p->listens;
    while (*tail)
        tail = &(*tail)->next;
    *tail = l;
    if (!p->lconn) {
        p->lconn = xcalloc(1, sizeof(*p->lconn));
        pgconn_init(p, p->lconn, -1);
        pgconn_connect(p->lconn);
    } else {
        pglisten_kick(p);
    }
}

void pglisten_reset(PgPool *p)
{
    for (PgListen *l = p->listens; l; l = l->next)
        l->sent = l->active = false;
}

void pglisten_deliver(PgPool *p, const PGnotify *n)
{
    for (PgListen *l = p->listens; l; l = l->next) {
        if (l->active && strcmp(l->channel, n->relname) == 0) {
            p->cb_depth++;
            l->cb(n->relname, n->extra ? n->extra : "", l->arg);
            p->cb_depth--;
        }
    }
}

void pglisten_free_all(PgPool *p)
{
    while (p->listens) {
        PgListen *l = p->listens;
        p->listens = l->next;
        free(l->channel);
        free(l);
    }
}
