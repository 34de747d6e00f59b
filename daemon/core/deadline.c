/*
 * deadline: an intrusive list scanned once per tick. Requests in flight are a few thousand
 * at most (bounded by the queues before them), so a scan is cheaper than keeping a heap in
 * order for every arm and disarm, and most items are disarmed long before they fire.
 */
#include "core/deadline.h"

#include <stdlib.h>

#include "common/log.h"
#include "common/util.h"

struct Deadlines {
    DeadlineItem *head;
    size_t n;
    struct event *tick;
    struct timeval every;
};

static void unlink_item(Deadlines *ds, DeadlineItem *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        ds->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    it->prev = it->next = NULL;
    it->armed = false;
    ds->n--;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    Deadlines *ds = arg;
    (void)fd;
    (void)what;
    int64_t now = util_now_ms();
    /* fire in rounds: a callback may disarm (free) any other item, so restart the scan
     * from the head after each one */
    bool fired;
    do {
        fired = false;
        for (DeadlineItem *it = ds->head; it; it = it->next) {
            if (it->at > now)
                continue;
            unlink_item(ds, it);
            it->cb(it, it->arg);
            fired = true;
            break;
        }
    } while (fired);
    if (ds->n == 0)
        event_del(ds->tick);
}

Deadlines *deadlines_new(struct event_base *base, int tick_ms)
{
    Deadlines *ds = xcalloc(1, sizeof(*ds));
    ds->tick = event_new(base, -1, EV_PERSIST, tick_cb, ds);
    ASSERT(ds->tick);
    tick_ms = tick_ms > 0 ? tick_ms : 1;
    ds->every = (struct timeval){tick_ms / 1000, (tick_ms % 1000) * 1000};
    return ds;
}

void deadlines_free(Deadlines *ds)
{
    if (!ds)
        return;
    event_free(ds->tick);
    free(ds);
}

void deadline_arm(Deadlines *ds, DeadlineItem *it, int64_t at, DeadlineCb cb, void *arg)
{
    if (it->armed)
        unlink_item(ds, it);
    it->at = at;
    it->cb = cb;
    it->arg = arg;
    it->armed = true;
    it->prev = NULL;
    it->next = ds->head;
    if (ds->head)
        ds->head->prev = it;
    ds->head = it;
    if (ds->n++ == 0)
        event_add(ds->tick, &ds->every);
}

void deadline_disarm(Deadlines *ds, DeadlineItem *it)
{
    if (it->armed)
        unlink_item(ds, it);
    if (ds->n == 0)
        event_del(ds->tick);
}

size_t deadlines_armed(const Deadlines *ds)
{
    return ds->n;
}
