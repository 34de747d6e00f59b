/*
 * trand: the seeded pseudo-random numbers of the property tests (xorshift64: 13, 7, 17).
 * One generator per test process; each case runs in its own fork, so a case that seeds
 * first always sees the same sequence. Not for anything but tests.
 */
#ifndef CARELINE_TRAND_H
#define CARELINE_TRAND_H

#include <stdint.h>

/* Sets the state. A zero state stays zero (the state before any seeding is 0): seed with
 * a nonzero value. */
void trand_seed(uint64_t seed);
/* The next 64-bit value. */
uint64_t trand_next(void);
/* The next value as a double uniform in [0, 1) (its top 53 bits). */
double trand01(void);

#endif
