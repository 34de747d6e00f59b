/*
 * test_geo: haversine against independently computed distances (vector atan2 form in
 * Python), the travel-time model per area kind, and the inverse used to bound searches.
 */
#include "base/geo.h"
#include "t.h"
#include "trand.h"

#include <math.h>
#include <stdint.h>

/* the seed of the random cases (each case runs in its own process) */
#define SEED 0x5eed1234abcdull

static void test_known_distances(void)
{
    /* Yuyao city (阳明街道) to Liangnong (梁弄镇): 16.487105529 km on the 6371.0088 sphere */
    T_NEAR(geo_km(30.0456, 121.1548, 29.9600, 121.0150), 16.487105529, 1e-6);
    /* Yuyao city to Ningbo (海曙) */
    T_NEAR(geo_km(30.0456, 121.1548, 29.8683, 121.5440), 42.362407394, 1e-6);
    /* one degree of meridian = R * pi / 180 */
    T_NEAR(geo_km(30.0, 121.0, 31.0, 121.0), 111.195080234, 1e-6);
    T_NEAR(geo_km(0.0, 0.0, 0.0, 1.0), 111.195080234, 1e-6);
    /* half the globe, across the antimeridian and the poles */
    T_NEAR(geo_km(0.0, 0.0, 0.0, 180.0), GEO_EARTH_RADIUS_KM * M_PI, 1e-6);
    T_NEAR(geo_km(90.0, 0.0, -90.0, 0.0), GEO_EARTH_RADIUS_KM * M_PI, 1e-6);
    T_NEAR(geo_km(0.0, 179.5, 0.0, -179.5), 111.195080234, 1e-6);
    T_NEAR(geo_km(89.0, 0.0, 89.0, 180.0), 2 * 111.195080234, 1e-6);
    T_ASSERT(geo_km(30.0, 121.0, 30.0, 121.0) == 0.0);
}

static void test_symmetric_and_rad_identical(void)
{
    trand_seed(SEED);
    for (int i = 0; i < 20000; i++) {
        double a = trand01() * 180 - 90, b = trand01() * 360 - 180;
        double c = trand01() * 180 - 90, d = trand01() * 360 - 180;
        double k = geo_km(a, b, c, d);
        T_ASSERT(k >= 0.0 && k <= GEO_EARTH_RADIUS_KM * M_PI + 1e-9);
        T_NEAR(k, geo_km(c, d, a, b), 1e-9);
        double ar = a * GEO_DEG2RAD, cr = c * GEO_DEG2RAD;
        double k2 = geo_km_rad(ar, b * GEO_DEG2RAD, cos(ar), cr, d * GEO_DEG2RAD, cos(cr));
        T_ASSERT(k == k2); /* bit-identical: the index relies on it */
    }
}

static void test_minutes_per_area(void)
{
    const TravelModel *m = &geo_model_default;
    T_ASSERT(geo_model_valid(m));
    /* 10 km: urban 10*1.3/20*60, rural 10*1.4/30*60, mountain 10*1.8/20*60 */
    T_NEAR(geo_minutes(m, GEO_URBAN, 10.0), 39.0, 1e-9);
    T_NEAR(geo_minutes(m, GEO_RURAL, 10.0), 28.0, 1e-9);
    T_NEAR(geo_minutes(m, GEO_MOUNTAIN, 10.0), 54.0, 1e-9);
    T_ASSERT(geo_minutes(m, GEO_RURAL, 0.0) == 0.0);
    /* the 15-minute circle in km: 20*0.25/1.3, 30*0.25/1.4, 20*0.25/1.8 */
    T_NEAR(geo_km_for_minutes(m, GEO_URBAN, 15.0), 5.0 / 1.3, 1e-8);
    T_NEAR(geo_km_for_minutes(m, GEO_RURAL, 15.0), 7.5 / 1.4, 1e-8);
    T_NEAR(geo_km_for_minutes(m, GEO_MOUNTAIN, 15.0), 5.0 / 1.8, 1e-8);
    T_NEAR(geo_circle_km_max(m), 7.5 / 1.4, 1e-8);
    T_ASSERT(geo_km_for_minutes(m, GEO_RURAL, 0.0) == 0.0);

    TravelModel bad = *m;
    bad.detour[GEO_MOUNTAIN] = 0.9;
    T_ASSERT(!geo_model_valid(&bad));
    bad = *m;
    bad.speed_kmh[GEO_URBAN] = 0.0;
    T_ASSERT(!geo_model_valid(&bad));
    bad = *m;
    bad.circle_min = NAN;
    T_ASSERT(!geo_model_valid(&bad));

    GeoAreaKind k;
    T_ASSERT(geo_area_parse("mountain", &k) && k == GEO_MOUNTAIN);
    T_ASSERT(!geo_area_parse("Mountain", &k));
    T_EQ_STR(geo_area_name(GEO_RURAL), "rural");
}

/* The bound is never below the true inverse and only a hair above it. */
static void test_inverse_consistency(void)
{
    trand_seed(SEED);
    TravelModel m = geo_model_default;
    for (int i = 0; i < 100000; i++) {
        GeoAreaKind k = (GeoAreaKind)(i % GEO_AREA_KINDS);
        m.detour[k] = 1.0 + trand01() * 2.0;
        m.speed_kmh[k] = 5.0 + trand01() * 60.0;
        double t = trand01() * 120.0 + 1e-6;
        double bound = geo_km_for_minutes(&m, k, t);
        T_ASSERT(geo_minutes(&m, k, bound) >= t);
        T_ASSERT(geo_minutes(&m, k, bound * (1.0 - 3e-9)) < t);
        /* any km inside the budget is under the bound */
        double km = trand01() * bound * 1.01;
        if (geo_minutes(&m, k, km) <= t)
            T_ASSERT(km <= bound);
        /* the largest double whose minutes fit, found by bisection, is under the bound */
        double lo = 0.0, hi = bound * 2.0;
        for (int j = 0; j < 200; j++) {
            double mid = (lo + hi) / 2;
            if (geo_minutes(&m, k, mid) <= t)
                lo = mid;
            else
                hi = mid;
        }
        T_ASSERT(lo <= bound);
    }
}

static const TCase cases[] = {
    {"geo_known_distances", test_known_distances, 0},
    {"geo_symmetric_and_rad_identical", test_symmetric_and_rad_identical, 0},
    {"geo_minutes_per_area", test_minutes_per_area, 0},
    {"geo_inverse_consistency", test_inverse_consistency, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
