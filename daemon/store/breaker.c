/*
 * breaker: CLOSED -> OPEN on a stall, OPEN -> HALF_OPEN when a probe is due, HALF_OPEN ->
 * CLOSED on an answer or back to OPEN on a failed probe (see breaker.h).
 */
#include "store/breaker.h"

void breaker_init(Breaker *b, int probe_ms)
{
    *b = (Breaker){.state = BREAKER_CLOSED, .probe_ms = probe_ms > 0 ? probe_ms : 1};
}

bool breaker_observe(Breaker *b, bool stalled, int64_t now)
{
    if (!stalled || b->state != BREAKER_CLOSED)
        return false;
    b->state = BREAKER_OPEN;
    b->opened_ms = now;
    b->next_probe_ms = now + b->probe_ms;
    b->trips++;
    return true;
}

bool breaker_probe_due(Breaker *b, int64_t now)
{
    if (b->state != BREAKER_OPEN || now < b->next_probe_ms)
        return false;
    b->state = BREAKER_HALF_OPEN;
    return true;
}

void breaker_probe_result(Breaker *b, bool ok, int64_t now)
{
    if (ok) {
        b->state = BREAKER_CLOSED;
    } else if (b->state != BREAKER_CLOSED) {
        /* a probe that failed after something else closed it changes nothing */
        b->state = BREAKER_OPEN;
        b->next_probe_ms = now + b->probe_ms;
    }
}

void breaker_success(Breaker *b)
{
    b->state = BREAKER_CLOSED;
}

bool breaker_allows(const Breaker *b)
{
    return b->state == BREAKER_CLOSED;
}

const char *breaker_state_name(BreakerState s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "?";
}
