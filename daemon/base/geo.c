/*
 * geo: haversine distance and the per-area-kind travel-time model. The radian entry point
 * exists so the spatial index can cache sin/cos work per station and still produce the very
 * same doubles as geo_km(): inclusion "km <= max_km" must never depend on which path ran.
 */
#include "base/geo.h"

#include <math.h>
#include <string.h>

const TravelModel geo_model_default = {
    .detour = {1.3, 1.4, 1.8},
    .speed_kmh = {20.0, 30.0, 20.0},
    .circle_min = 15.0,
};

static const char *const area_names[GEO_AREA_KINDS] = {"urban", "rural", "mountain"};

bool geo_model_valid(const TravelModel *m)
{
    for (int k = 0; k < GEO_AREA_KINDS; k++) {
        if (!isfinite(m->detour[k]) || !(m->detour[k] >= 1.0))
            return false;
        if (!isfinite(m->speed_kmh[k]) || !(m->speed_kmh[k] > 0.0))
            return false;
    }
    return isfinite(m->circle_min) && m->circle_min > 0.0;
}

bool geo_area_parse(const char *s, GeoAreaKind *out)
{
    for (int k = 0; k < GEO_AREA_KINDS; k++) {
        if (strcmp(s, area_names[k]) == 0) {
            *out = (GeoAreaKind)k;
            return true;
        }
    }
    return false;
}

const char *geo_area_name(GeoAreaKind k)
{
    return (unsigned)k < GEO_AREA_KINDS ? area_names[k] : "?";
}

double geo_hav_rad(double lat1, double lon1, double cos_lat1, double lat2, double lon2,
                   double cos_lat2)
{
    double sdlat = sin((lat2 - lat1) * 0.5);
    double sdlon = sin((lon2 - lon1) * 0.5);
    double h = sdlat * sdlat + cos_lat1 * cos_lat2 * (sdlon * sdlon);
    return h > 1.0 ? 1.0 : h; /* rounding near antipodes */
}

double geo_km_from_hav(double h)
{
    return 2.0 * GEO_EARTH_RADIUS_KM * asin(sqrt(h));
}

double geo_km_rad(double lat1, double lon1, double cos_lat1, double lat2, double lon2,
                  double cos_lat2)
{
    return geo_km_from_hav(geo_hav_rad(lat1, lon1, cos_lat1, lat2, lon2, cos_lat2));
}

double geo_km(double lat1, double lon1, double lat2, double lon2)
{
    double a = lat1 * GEO_DEG2RAD, b = lat2 * GEO_DEG2RAD;
    return geo_km_rad(a, lon1 * GEO_DEG2RAD, cos(a), b, lon2 * GEO_DEG2RAD, cos(b));
}

double geo_minutes(const TravelModel *m, GeoAreaKind k, double km)
{
    ASSERT((unsigned)k < GEO_AREA_KINDS);
    return ((km * m->detour[k]) / m->speed_kmh[k]) * 60.0;
}

double geo_km_for_minutes(const TravelModel *m, GeoAreaKind k, double minutes)
{
    ASSERT((unsigned)k < GEO_AREA_KINDS);
    if (!(minutes > 0.0))
        return 0.0;
    double km = ((minutes / 60.0) * m->speed_kmh[k]) / m->detour[k];
    return km * (1.0 + 1e-9);
}

double geo_circle_km_max(const TravelModel *m)
{
    double best = 0.0;
    for (int k = 0; k < GEO_AREA_KINDS; k++) {
        double km = geo_km_for_minutes(m, (GeoAreaKind)k, m->circle_min);
        if (km > best)
            best = km;
    }
    return best;
}
