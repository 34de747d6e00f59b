/*
 * gen_rng: careline-gen's randomness. splitmix64 streams keyed by (seed, tag, key), so that
 * one entity's values do not depend on how many values other entities drew before it, and
 * geometry without libm in the output path, so one seed gives the same bytes everywhere.
 */
#ifndef CARELINE_GEN_RNG_H
#define CARELINE_GEN_RNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} Rng;

/* The next 64 random bits. */
uint64_t gen_rng_next(Rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double gen_rng_unit(Rng *r);
/* Uniform integer in [lo, hi]. */
int gen_rng_range(Rng *r, int lo, int hi);
/* true with probability p. */
bool gen_rng_chance(Rng *r, double p);
/* The stream for (seed, tag, key); the same arguments give the same stream. */
Rng gen_rng_for(uint64_t seed, const char *tag, uint64_t key);
Rng gen_rng_for_str(uint64_t seed, const char *tag, const char *key);

/* cos(x) for |x| <= pi/2 from + - * / only (the same bits on every machine). */
double gen_det_cos(double x);
/* Moves (*lat, *lon) to a uniform random point of the annulus rmin_km..rmax_km around it. */
void gen_jitter(Rng *r, double rmin_km, double rmax_km, double *lat, double *lon);

#endif
