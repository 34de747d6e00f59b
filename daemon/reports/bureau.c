/*
 * bureau: the module's life cycle. The work is spread over files of one concern each (see
 * bureau_int.h): the two doors, the request and its answers, the SQL steps, the coverage
 * computation and the daily snapshot. Here the routes and the timer are installed, and the
 * timer is freed; requests in flight own themselves and need nothing from this file.
 */
#include "reports/bureau_int.h"

#include <event2/event.h>
#include <stdlib.h>

Bureau *bureau_new(const Env *env, Dispatch *dispatch)
{
    Bureau *b = xcalloc(1, sizeof(*b));
    b->env = env;
    b->dispatch = dispatch;
    bureau_proto_install(b);
    bureau_http_install(b);
    bureau_snapshot_schedule(b);
    return b;
}

void bureau_free(Bureau *b)
{
    if (!b)
        return;
    if (b->timer)
        event_free(b->timer);
    free(b);
}
