-- travel: the default travel model (DESIGN.md "Coverage"): minutes = great-circle km ×
-- detour ÷ speed × 60, with the parameters (travel_params) of the DESTINATION village's
-- area kind. The daemon's matching and coverage use the same model (daemon/base/geo.c).

-- Great-circle distance in km (haversine on the mean Earth radius).
CREATE OR REPLACE FUNCTION careline_km(lat1 double precision, lon1 double precision,
                                       lat2 double precision, lon2 double precision)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 2 * 6371.0088 * asin(least(1.0, sqrt(
        power(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lon2 - lon1) / 2), 2))));

-- Model travel minutes from a point to a point in a village of the given area kind.
CREATE OR REPLACE FUNCTION careline_travel_minutes(lat1 double precision,
                                                   lon1 double precision,
                                                   lat2 double precision,
                                                   lon2 double precision, kind text)
    RETURNS double precision
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (SELECT careline_km(lat1, lon1, lat2, lon2) * p.detour / p.speed_kmh * 60
            FROM travel_params p WHERE p.area_kind = kind);
