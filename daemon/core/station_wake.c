/*
 * station_wake: the fan-out that lets any daemon reach a console held by another. One
 * Redis pub/sub channel per county carries ids only: "STATION_ID" (its stream has new
 * entries; "STATION_ID JOB_ID" from older daemons means the same). A wake-up only makes the
 * receiving daemon read the station's stream from its consoles' cursors, where every entry
 * is checked (station_stream.c), so whoever can publish can at most cause a read of a known
 * station with a console here. A message that is not exactly that shape, or names an
 * unknown station, is dropped, counted (careline_wake_rejected_total) and logged at most
 * every WAKE_LOG_EVERY_MS. Wake-ups are collected per loop turn so a burst for one station
 * costs one PUBLISH.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/directory.h"
#include "core/station_int.h"

#define WAKE_MSG_MAX      41    /* "STATION_ID JOB_ID": two int64 in decimal and a space */
#define WAKE_LOG_EVERY_MS 10000 /* rejected wake-ups: one log line at most this often */

static void publish_done(redisReply *r, const char *err, void *arg)
{
    (void)arg;
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_debug("wake-up not published: %s", r ? r->str : err);
}

/* Pub/sub delivers every message to its publisher too, whose consoles were read when it
 * published: reading them again for the echo was one more XRANGE per console per entry at
 * full load. Our publishes wait here until their echo comes back (any message for the
 * station takes one: a read then still follows every other daemon's entry, see below);
 * what never comes back (a publish lost with a Redis restart) ages out after
 * OWN_WAKE_TTL_MS, and the periodic read covers the rare wake-up skipped meanwhile. */
#define OWN_WAKE_TTL_MS 2000

static void own_add(Stations *st, int64_t station_id)
{
    if (st->own_n == OWN_WAKES) { /* full: forget the oldest (at worst one extra read) */
        st->own_head = (st->own_head + 1) % OWN_WAKES;
        st->own_n--;
    }
    st->own[(st->own_head + st->own_n++) % OWN_WAKES] = (OwnWake){station_id, util_now_ms()};
}

/* true (and forgotten) when a publish of ours for station_id is waiting for its echo. With
 * another daemon's message for the station arriving first, that one is taken instead and
 * our echo, later, reads: either way a read follows the other daemon's XADD. */
static bool own_take(Stations *st, int64_t station_id)
{
    int64_t old = util_now_ms() - OWN_WAKE_TTL_MS;
    while (st->own_n > 0 &&
           (st->own[st->own_head].station_id == 0 || st->own[st->own_head].at_ms < old)) {
        st->own_head = (st->own_head + 1) % OWN_WAKES;
        st->own_n--;
    }
    for (size_t i = 0; i < st->own_n; i++) {
        OwnWake *w = &st->own[(st->own_head + i) % OWN_WAKES];
        if (w->station_id == station_id) {
            w->station_id = 0;
            return true;
        }
    }
    return false;
}

/* A decimal id > 0 filling s[0..n) exactly (no sign, no leading zero, no overflow). */
static bool parse_id(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 19 || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Drops a wake-up that failed validation: counted always, logged at most every
 * WAKE_LOG_EVERY_MS with how many were dropped silently meanwhile. Never logs the
 * message's bytes (they may be anything). */
static void wake_reject(Stations *st, size_t len, const char *why)
{
    st->env->metrics->wake_rejected++;
    int64_t now = util_now_ms();
    if (st->wake_rejects_logged_ms && now - st->wake_rejects_logged_ms < WAKE_LOG_EVERY_MS) {
        st->wake_rejects_quiet++;
        return;
    }
    log_warn("dropped a wake-up on %s (%zu bytes): %s; %llu more dropped since the last such "
             "line (all counted in careline_wake_rejected_total)",
             st->channel, len, why, (unsigned long long)st->wake_rejects_quiet);
    st->wake_rejects_logged_ms = now;
    st->wake_rejects_quiet = 0;
}

static void wake_cb(const char *channel, const char *msg, size_t len, void *arg)
{
    (void)channel;
    Stations *st = arg;
    if (!msg) {        /* (re)subscribed: anything may have been missed */
        st->own_n = 0; /* echoes of what was published before may never come */
        for (size_t b = 0; b < ST_BUCKETS; b++)
            for (StSession *ss = st->bucket[b]; ss; ss = ss->next)
                stream_read(st, ss);
        return;
    }
    if (len > WAKE_MSG_MAX) {
        wake_reject(st, len, "longer than \"STATION_ID JOB_ID\"");
        return;
    }
    const char *sp = memchr(msg, ' ', len);
    size_t idlen = sp ? (size_t)(sp - msg) : len;
    int64_t station_id = 0, job_id = 0;
    if (!parse_id(msg, idlen, &station_id) || (sp && !parse_id(sp + 1, len - idlen - 1, &job_id))) {
        wake_reject(st, len, "not \"STATION_ID\" or \"STATION_ID JOB_ID\" (decimal ids > 0)");
        return;
    }
    const DirSnap *snap = dir_snap(dispatch_directory(st->dispatch));
    if (snap && !dir_station(snap, station_id)) {
        wake_reject(st, len, "no such station");
        return;
    }
    if (own_take(st, station_id))
        return; /* our own: its consoles here were read when we published */
    stream_read_station(st, station_id);
}

void wake_subscribe(Stations *st)
{
    if (!rds_subscribe(st->env->rds, st->channel, wake_cb, st))
        log_warn("cannot subscribe to %s; consoles rely on the periodic stream read", st->channel);
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
        if (rds_command(st->env->rds, publish_done, NULL, 3, argv, lens))
            own_add(st, st->wake[i]);
        else
            log_debug("wake-up for station %s not published (Redis unavailable); the "
                      "periodic stream read will deliver it",
                      id);
    }
    st->nwake = 0;
}

void station_wake(Stations *st, int64_t station_id)
{
    if (!st || st->stopped)
        return;
    stream_read_station(st, station_id); /* local consoles at once, without the round trip */
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
