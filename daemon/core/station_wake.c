/*
 * station_wake: the fan-out that lets any daemon reach a console held by another. One
 * Redis pub/sub channel per county carries "STATION_ID" (its jobs changed: re-read them) or
 * "STATION_ID <packed JobOffer>" (a new job: push it as it is, no database read). Wake-ups
 * are collected per loop turn so a burst for one station costs one PUBLISH.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/station_int.h"

static void publish_done(redisReply *r, const char *err, void *arg)
{
    (void)arg;
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_debug("wake-up not published: %s", r ? r->str : err);
}

void station_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *o)
{
    if (!st || st->stopped)
        return;
    push_offer(st, station_id, o); /* consoles on this daemon: at once */
    /* the others: "STATION_ID <packed JobOffer>" on the wake channel */
    size_t n = careline__v1__job_offer__get_packed_size(o);
    char *msg = xmalloc(n + 24);
    int h = snprintf(msg, 24, "%lld ", (long long)station_id);
    careline__v1__job_offer__pack(o, (uint8_t *)msg + h);
    const char *argv[] = {"PUBLISH", st->channel, msg};
    size_t lens[] = {7, strlen(st->channel), (size_t)h + n};
    if (!rds_command(st->env->rds, publish_done, NULL, 3, argv, lens))
        log_debug("offer for station %lld not published (Redis unavailable); the periodic "
                  "re-read will deliver it",
                  (long long)station_id);
    free(msg);
}

static void wake_cb(const char *channel, const char *msg, size_t len, void *arg)
{
    (void)channel;
    Stations *st = arg;
    if (!msg) { /* (re)subscribed: anything may have been missed */
        for (size_t b = 0; b < ST_BUCKETS; b++)
            for (StSession *ss = st->bucket[b]; ss; ss = ss->next)
                push_refresh(st, ss);
        return;
    }
    const char *sp = memchr(msg, ' ', len);
    int64_t station_id = strtoll(msg, NULL, 10);
    if (!sp) { /* a plain wake-up: something changed, re-read */
        push_refresh_station(st, station_id);
        return;
    }
    Careline__V1__JobOffer *o = careline__v1__job_offer__unpack(NULL, len - (size_t)(sp + 1 - msg),
                                                                (const uint8_t *)sp + 1);
    if (!o) {
        log_warn("malformed offer on %s; re-reading station %lld", st->channel,
                 (long long)station_id);
        push_refresh_station(st, station_id);
        return;
    }
    push_offer(st, station_id, o);
    careline__v1__job_offer__free_unpacked(o, NULL);
}

void wake_subscribe(Stations *st)
{
    if (!rds_subscribe(st->env->rds, st->channel, wake_cb, st))
        log_warn("cannot subscribe to %s; consoles rely on the periodic re-read", st->channel);
}

/* Announces the stations collected this loop turn, each once (a burst of jobs for one
 * station costs one PUBLISH, not one per job). */
void wake_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Stations *st = arg;
    for (size_t i = 0; i < st->nwake && !st->stopped; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = st->wake[j] == st->wake[i];
        if (dup)
            continue;
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)st->wake[i]);
        const char *argv[] = {"PUBLISH", st->channel, id};
        size_t lens[] = {7, strlen(st->channel), strlen(id)};
        if (!rds_command(st->env->rds, publish_done, NULL, 3, argv, lens))
            log_debug("wake-up for station %s not published (Redis unavailable); the "
                      "periodic re-read will deliver it",
                      id);
    }
    st->nwake = 0;
}

void station_wake(Stations *st, int64_t station_id)
{
    if (!st || st->stopped)
        return;
    push_refresh_station(st, station_id); /* local consoles at once, without the round trip */
    if (st->nwake == st->capwake) {
        if (st->capwake >= 4096) {
            wake_flush(-1, 0, st); /* a huge burst: announce what we have now */
        } else {
            st->capwake = st->capwake ? 2 * st->capwake : 64;
            st->wake = xrealloc(st->wake, st->capwake * sizeof(int64_t));
        }
    }
    st->wake[st->nwake++] = station_id;
    if (st->nwake == 1)
        event_active(st->wake_ev, EV_TIMEOUT, 0);
}
