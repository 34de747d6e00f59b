/*
 * gen_rng: splitmix64 streams and deterministic geometry for careline-gen. Every draw
 * happens in its own statement by the callers' rule, and nothing here calls libm, so the
 * output does not depend on the compiler's evaluation order or the machine's libm.
 */
#include "gen_rng.h"

#include "base/geo.h"
#include "common/util.h"

#define KM_PER_DEG (GEO_EARTH_RADIUS_KM * GEO_DEG2RAD) /* along a meridian */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t gen_rng_next(Rng *r)
{
    r->s += 0x9E3779B97F4A7C15ULL;
    return mix64(r->s);
}

/* uniform in [0, 1) with 53 random bits */
double gen_rng_unit(Rng *r)
{
    return (double)(gen_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [lo, hi] (the modulo bias of 64 random bits is negligible here) */
int gen_rng_range(Rng *r, int lo, int hi)
{
    ASSERT(hi >= lo);
    return lo + (int)(gen_rng_next(r) % (uint64_t)(hi - lo + 1));
}

bool gen_rng_chance(Rng *r, double p)
{
    return gen_rng_unit(r) < p;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ULL;
    return h;
}

Rng gen_rng_for(uint64_t seed, const char *tag, uint64_t key)
{
    Rng r = {mix64(mix64(seed ^ fnv1a(tag)) ^ key)};
    return r;
}

Rng gen_rng_for_str(uint64_t seed, const char *tag, const char *key)
{
    return gen_rng_for(seed, tag, fnv1a(key));
}

/* cos(x) for |x| <= pi/2 by its Taylor series (error < 1e-12 up to 60 degrees). Plain IEEE
 * arithmetic, so the result does not depend on the platform's libm. */
double gen_det_cos(double x)
{
    double x2 = x * x;
    return 1.0 -
           x2 / 2.0 *
               (1.0 -
                x2 / 12.0 *
                    (1.0 -
                     x2 / 30.0 *
                         (1.0 - x2 / 56.0 *
                                    (1.0 - x2 / 90.0 * (1.0 - x2 / 132.0 * (1.0 - x2 / 182.0))))));
}

/* Moves (lat, lon) by a random offset uniform over the annulus rmin..rmax km (rejection
 * sampling in the square, so no trigonometry on the random part). */
void gen_jitter(Rng *r, double rmin_km, double rmax_km, double *lat, double *lon)
{
    double q = rmin_km / rmax_km, u, v, d2;
    do {
        u = 2.0 * gen_rng_unit(r) - 1.0;
        v = 2.0 * gen_rng_unit(r) - 1.0;
        d2 = u * u + v * v;
    } while (d2 > 1.0 || d2 < q * q);
    double lat0 = *lat;
    *lat = lat0 + v * rmax_km / KM_PER_DEG;
    *lon = *lon + u * rmax_km / (KM_PER_DEG * gen_det_cos(lat0 * GEO_DEG2RAD));
}
