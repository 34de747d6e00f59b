/*
 * deadline: answers owed by a time. Each request that a caller waits for carries one
 * DeadlineItem (embedded in the request, no allocation); a single timer of the set checks
 * the armed items every tick and fires the ones whose time has come, so a caller hears a
 * truthful answer by its deadline whatever the backends do. An item fires at most once and
 * is unlinked before its callback runs (which may free the request). Loop thread only.
 */
#ifndef CARELINE_DEADLINE_H
#define CARELINE_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

typedef struct DeadlineItem DeadlineItem;
typedef void (*DeadlineCb)(DeadlineItem *it, void *arg);

struct DeadlineItem {
    DeadlineItem *prev, *next; /* in the set's list while armed */
    int64_t at;                /* util_now_ms() when it fires */
    DeadlineCb cb;
    void *arg;
    bool armed;
};

typedef struct Deadlines Deadlines;

/* A set checked every tick_ms (> 0); its timer runs while the set is not empty. */
Deadlines *deadlines_new(struct event_base *base, int tick_ms);
/* Frees the set; armed items are forgotten (never fired). NULL is a no-op. */
void deadlines_free(Deadlines *ds);
/* Arms it (re-arms if armed): cb(it, arg) fires once, within one tick after at. */
void deadline_arm(Deadlines *ds, DeadlineItem *it, int64_t at, DeadlineCb cb, void *arg);
/* Disarms it if armed (safe on a zeroed item). */
void deadline_disarm(Deadlines *ds, DeadlineItem *it);
/* Items armed now. */
size_t deadlines_armed(const Deadlines *ds);

#endif
