/*
 * breaker: the PostgreSQL pool's circuit breaker, a pure state machine (no I/O, no clock of
 * its own: the caller passes now). CLOSED lets work through. The owner reports what it sees
 * with breaker_observe: stalled = no healthy connection, or the pool has had work running
 * and nothing completing for longer than its stall threshold. A stall trips the breaker
 * OPEN: new work is refused at once. Every probe_ms an OPEN breaker asks for one probe
 * (breaker_probe_due turns it HALF_OPEN); the probe's answer closes it (ok) or opens it
 * again. Any statement that completes meanwhile is as good as a probe (breaker_success).
 */
#ifndef CARELINE_BREAKER_H
#define CARELINE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    BREAKER_CLOSED,    /* work goes through */
    BREAKER_OPEN,      /* work is refused; a probe is due at next_probe_ms */
    BREAKER_HALF_OPEN, /* work is refused; one probe is out */
} BreakerState;

typedef struct Breaker {
    BreakerState state;
    int probe_ms;          /* between probes while open */
    int64_t opened_ms;     /* when it last tripped */
    int64_t next_probe_ms; /* OPEN: when breaker_probe_due says yes */
    uint64_t trips;        /* CLOSED -> OPEN transitions */
} Breaker;

/* A closed breaker that probes every probe_ms (> 0) once tripped. */
void breaker_init(Breaker *b, int probe_ms);
/* The owner's view now; a stall trips a closed breaker. true when this call tripped it. */
bool breaker_observe(Breaker *b, bool stalled, int64_t now);
/* true (once per probe interval) when an OPEN breaker wants a probe sent now: it is then
 * HALF_OPEN until breaker_probe_result. */
bool breaker_probe_due(Breaker *b, int64_t now);
/* The probe's answer: ok closes the breaker, a failure opens it for another interval. */
void breaker_probe_result(Breaker *b, bool ok, int64_t now);
/* A statement completed (the server answers): closes an open or half-open breaker. */
void breaker_success(Breaker *b);
/* true when work may go through (CLOSED). */
bool breaker_allows(const Breaker *b);
/* "closed", "open", "half_open" */
const char *breaker_state_name(BreakerState s);

#endif
