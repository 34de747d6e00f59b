/*
 * geo: great-circle distance on a spherical Earth and the travel-time model that turns
 * distance into minutes (km x detour / speed, per area kind). Pure functions, no state.
 *
 * Which area kind applies to a pair: always the RESIDENT's (or the village's) area kind,
 * never the station's. The last kilometres to the door decide the speed and the detour, and
 * it makes a village's coverage a property of the village alone (one circle radius per
 * village, whichever stations are around it).
 */
#ifndef CARELINE_GEO_H
#define CARELINE_GEO_H

#include <stdbool.h>

#include "common/util.h"

#define GEO_EARTH_RADIUS_KM 6371.0088 /* IUGG mean radius */
#define GEO_DEG2RAD         (3.14159265358979323846 / 180.0)

typedef enum {
    GEO_URBAN = 0,    /* town seat, subdistrict (街道), dense road grid */
    GEO_RURAL = 1,    /* plain villages */
    GEO_MOUNTAIN = 2, /* hill and mountain villages (e.g. 四明山 area), winding roads */
    GEO_AREA_KINDS    /* count, not a kind */
} GeoAreaKind;

typedef struct {
    double detour[GEO_AREA_KINDS];    /* road km per great-circle km, >= 1 */
    double speed_kmh[GEO_AREA_KINDS]; /* mean delivery speed on the road, > 0 */
    double circle_min;                /* service circle in minutes ("15-minute circle"), > 0 */
} TravelModel;

/* The defaults: detour 1.3/1.4/1.8, speed 20/30/20 km/h (urban/rural/mountain), 15 min. */
extern const TravelModel geo_model_default;

/* true when every detour >= 1, every speed > 0 and the circle > 0 (all finite). */
bool geo_model_valid(const TravelModel *m);

/* Parses "urban", "rural", "mountain"; false on anything else. */
bool geo_area_parse(const char *s, GeoAreaKind *out) MUSTCHECK;
const char *geo_area_name(GeoAreaKind k);

/* Haversine great-circle distance in km between two points in degrees. Symmetric, >= 0. */
double geo_km(double lat1, double lon1, double lat2, double lon2);

/* The same haversine on pre-converted inputs: latitudes and longitudes in radians and the
 * cosines of the latitudes. geo_km(a, b, c, d) == geo_km_rad(a*R, b*R, cos(a*R), c*R, d*R,
 * cos(c*R)) bit for bit with R = GEO_DEG2RAD, so an index that caches the radians and
 * cosines agrees exactly with a brute-force scan over geo_km. */
double geo_km_rad(double lat1, double lon1, double cos_lat1, double lat2, double lon2,
                  double cos_lat2);

/* geo_km_rad() in two halves, for callers that reject on the haversine term before paying
 * for asin/sqrt: geo_km_rad(...) == geo_km_from_hav(geo_hav_rad(...)) exactly. */
double geo_hav_rad(double lat1, double lon1, double cos_lat1, double lat2, double lon2,
                   double cos_lat2);
double geo_km_from_hav(double h);

/* Travel minutes for a great-circle distance: ((km * detour[k]) / speed_kmh[k]) * 60.
 * Non-decreasing in km (each step is a correctly rounded monotone operation). */
double geo_minutes(const TravelModel *m, GeoAreaKind k, double km);

/* Inverse, for bounding index searches: a km bound such that every km >= 0 with
 * geo_minutes(m, k, km) <= minutes is <= the bound. It is the exact inverse plus a
 * relative margin of 1e-9 for rounding, so a search with it may return a station a hair
 * outside; callers decide inclusion with geo_minutes(). */
double geo_km_for_minutes(const TravelModel *m, GeoAreaKind k, double minutes);

/* The largest geo_km_for_minutes(m, k, m->circle_min) over all area kinds. */
double geo_circle_km_max(const TravelModel *m);

#endif
