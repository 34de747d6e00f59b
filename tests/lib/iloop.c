/*
 * iloop: bounded event-loop driving for in-process integration tests.
 */
#include "iloop.h"

#include <event2/event.h>

#include "common/util.h"

bool iloop_wait(struct event_base *b, IloopPred pred, void *arg, int timeout_ms)
{
    int64_t end = util_now_ms() + timeout_ms;
    while (!pred(arg)) {
        if (util_now_ms() >= end)
            return false;
        struct timeval tv = {0, 5000};
        event_base_loopexit(b, &tv);
        event_base_dispatch(b);
    }
    return true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

void iloop_run_ms(struct event_base *b, int ms)
{
    (void)iloop_wait(b, never, NULL, ms);
}
