/*
 * rds_pubsub: subscriptions on the pub/sub link (started by the first rds_subscribe) and the
 * delivery of their messages. Every channel is subscribed again each time the link comes up,
 * and its callback hears "(re)subscribed" so the caller can resync what it missed.
 */
#include "store/rds_int.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata);

void rds_pubsub_send(RdsLink *l, RdsSub *s)
{
    const char *argv[2] = {"SUBSCRIBE", s->channel};
    size_t lens[2] = {9, strlen(s->channel)};
    if (redisAsyncCommandArgv(l->ac, sub_cb, s, 2, argv, lens) != REDIS_OK)
        log_warn("redis pubsub: cannot send SUBSCRIBE %s: %s", s->channel,
                 l->ac->errstr ? l->ac->errstr : "unknown error");
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    RdsSub *s = privdata;
    Rds *r = s->r;
    redisReply *rep = reply;
    (void)ac;

    if (!rep || r->closing)
        return; /* link going down: resubscribed after reconnect */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    r->cb_depth++;
    if (strcmp(kind, "subscribe") == 0)
        s->cb(s->channel, NULL, 0, s->arg);
    else if (strcmp(kind, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING)
        s->cb(s->channel, rep->element[2]->str, rep->element[2]->len, s->arg);
    r->cb_depth--;
}

bool rds_subscribe(Rds *r, const char *channel, RdsMessageCb cb, void *arg)
{
    ASSERT(r && channel && cb);
    if (r->closing)
        return false;
    RdsSub *s = xcalloc(1, sizeof(*s));
    s->r = r;
    s->channel = xstrdup(channel);
    s->cb = cb;
    s->arg = arg;
    RdsSub **tail = &r->subs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
    if (!r->sub_started) {
        r->sub_started = true;
        rds_link_connect(&r->sub);
    } else if (r->sub.state == RDS_UP && !r->sub.failing) {
        rds_pubsub_send(&r->sub, s);
    }
    return true;
}
