/*
 * trand: xorshift64 for the property tests.
 */
#include "trand.h"

static uint64_t state;

void trand_seed(uint64_t seed)
{
    state = seed;
}

uint64_t trand_next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

double trand01(void)
{
    return (double)(trand_next() >> 11) / 9007199254740992.0;
}
