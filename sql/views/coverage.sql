-- coverage: what the civil-affairs bureau reads about coverage — per village, town and
-- county — and the plan's other indicators against their targets, as views an analyst can
-- query with psql as careline_bureau. No names, phone numbers, resident ids or request ids
-- leave through the bureau's views and functions: per-request rows stay in
-- careline_request_outcomes (realized.sql), which only the daemon may read; the bureau
-- sees aggregates.
--
-- Coverage here must agree with the daemon (daemon/reports/coverage.c is the definition): a village
-- is covered when an active station offering meal delivery reaches its centroid within
-- settings.service_circle_minutes, by careline_travel_minutes() with the VILLAGE's area kind
-- (inclusive), or when such a station lists the village in station_service_area. The
-- travel_times table is not used (neither the daemon's matching nor its coverage use it yet).
-- The daemon takes its model (detours, speeds, circle) from its config, whose defaults equal
-- travel_params and settings; a deployment that changes one must change the other.

-- ---------------------------------------------------------------------------------------
-- Coverage

CREATE OR REPLACE VIEW v_village_coverage AS
SELECT v.code, v.name, v.kind, v.town_code, t.name AS town_name, v.county_code,
       v.area_kind, v.elderly_population AS elderly, v.approx_location,
       n.station_id AS nearest_station_id, n.minutes AS nearest_minutes,
       coalesce(n.minutes <= c.circle, false) AS reached,
       l.station_id IS NOT NULL AS listed,
       coalesce(n.minutes <= c.circle, false) OR l.station_id IS NOT NULL AS covered,
       c.circle AS service_circle_minutes
FROM villages v
JOIN towns t ON t.code = v.town_code
CROSS JOIN (SELECT coalesce((SELECT value::double precision FROM settings
                             WHERE key = 'service_circle_minutes'), 15) AS circle) c
-- the nearest qualifying station by great-circle km, ties by id (as the daemon's index)
LEFT JOIN LATERAL (
    SELECT s.id AS station_id,
           careline_travel_minutes(v.lat, v.lon, s.lat, s.lon, v.area_kind) AS minutes
    FROM stations s
    WHERE s.active AND s.offers_meal_delivery
    ORDER BY careline_km(v.lat, v.lon, s.lat, s.lon), s.id
    LIMIT 1) n ON true
LEFT JOIN LATERAL (
    SELECT min(a.station_id) AS station_id
    FROM station_service_area a JOIN stations s ON s.id = a.station_id
    WHERE a.village_code = v.code AND s.active AND s.offers_meal_delivery
    HAVING count(*) > 0) l ON true;

-- The plan's targets as numbers (defaults when a setting is missing).
CREATE OR REPLACE VIEW v_targets AS
SELECT coalesce((SELECT value::double precision FROM settings
                 WHERE key = 'target_meal_village_coverage'), 0.95) AS meal_village_coverage,
       coalesce((SELECT value::double precision FROM settings
                 WHERE key = 'target_terminal_share'), 0.55) AS terminal_share,
       coalesce((SELECT value::double precision FROM settings
                 WHERE key = 'target_certified_per_10k'), 32) AS certified_per_10k;

CREATE OR REPLACE VIEW v_town_coverage AS
SELECT t.code, t.name, t.county_code,
       count(vc.code)::int AS villages,
       count(vc.code) FILTER (WHERE vc.covered)::int AS villages_covered,
       CASE WHEN count(vc.code) > 0
            THEN count(vc.code) FILTER (WHERE vc.covered)::double precision / count(vc.code)
            ELSE 0 END AS rate,
       coalesce(sum(vc.elderly), 0)::bigint AS elderly,
       coalesce(sum(vc.elderly) FILTER (WHERE vc.covered), 0)::bigint AS elderly_covered,
       CASE WHEN coalesce(sum(vc.elderly), 0) > 0
            THEN coalesce(sum(vc.elderly) FILTER (WHERE vc.covered), 0)::double precision
                 / sum(vc.elderly)
            ELSE 0 END AS rate_elderly,
       count(vc.code) FILTER (WHERE vc.approx_location)::int AS approx_villages,
       (SELECT meal_village_coverage FROM v_targets) AS target
FROM towns t
LEFT JOIN v_village_coverage vc ON vc.town_code = t.code
GROUP BY t.code, t.name, t.county_code;

CREATE OR REPLACE VIEW v_county_coverage AS
SELECT vc.county_code,
       count(*)::int AS villages,
       count(*) FILTER (WHERE vc.covered)::int AS villages_covered,
       count(*) FILTER (WHERE vc.covered)::double precision / count(*) AS rate,
       sum(vc.elderly)::bigint AS elderly,
       coalesce(sum(vc.elderly) FILTER (WHERE vc.covered), 0)::bigint AS elderly_covered,
       CASE WHEN sum(vc.elderly) > 0
            THEN coalesce(sum(vc.elderly) FILTER (WHERE vc.covered), 0)::double precision
                 / sum(vc.elderly)
            ELSE 0 END AS rate_elderly,
       count(*) FILTER (WHERE vc.approx_location)::int AS approx_villages,
       (SELECT meal_village_coverage FROM v_targets) AS target,
       count(*) FILTER (WHERE vc.covered)::double precision / count(*)
           >= (SELECT meal_village_coverage FROM v_targets) AS met
FROM v_village_coverage vc
GROUP BY vc.county_code;

-- ---------------------------------------------------------------------------------------
-- Other indicators

-- One row per county and indicator, today (terminal share: sessions today).
CREATE OR REPLACE VIEW v_indicators AS
WITH cov AS (SELECT county_code, rate FROM v_county_coverage),
term AS (
    SELECT left(t.town_code, 6) AS county_code, sum(t.stations) AS stations,
           sum(t.with_session) AS with_session, sum(t.equipped) AS equipped
    FROM careline_terminal_stations(careline_local_date(now()), careline_local_date(now())) t
    GROUP BY 1),
cert AS (
    SELECT v.county_code, sum(v.elderly_population) AS elderly,
           (SELECT coalesce(sum(s.caregivers_certified), 0) FROM stations s
            WHERE s.active AND left(s.town_code, 6) = v.county_code) AS certified
    FROM villages v GROUP BY v.county_code),
vals AS (
    SELECT cov.county_code, 'meal_village_coverage' AS key,
           '老年助餐配送餐服务覆盖村(社区)' AS name_zh, cov.rate AS value,
           (SELECT meal_village_coverage FROM v_targets) AS target
    FROM cov
    UNION ALL
    SELECT cov.county_code, 'terminal_share', '居家养老服务站智能服务终端(在线)',
           CASE WHEN coalesce(term.stations, 0) > 0
                THEN term.with_session::double precision / term.stations ELSE 0 END,
           (SELECT terminal_share FROM v_targets)
    FROM cov LEFT JOIN term USING (county_code)
    UNION ALL
    SELECT cov.county_code, 'terminal_equipped_share', '居家养老服务站智能服务终端(登记配备)',
           CASE WHEN coalesce(term.stations, 0) > 0
                THEN term.equipped::double precision / term.stations ELSE 0 END,
           (SELECT terminal_share FROM v_targets)
    FROM cov LEFT JOIN term USING (county_code)
    UNION ALL
    SELECT cert.county_code, 'certified_per_10k', '每万名老年人拥有持证养老护理员',
           CASE WHEN cert.elderly > 0 THEN cert.certified * 10000.0 / cert.elderly ELSE 0 END,
           (SELECT certified_per_10k FROM v_targets)
    FROM cert)
SELECT county_code, key, name_zh, value, target, value >= target AS met FROM vals;

GRANT SELECT ON v_village_coverage, v_town_coverage, v_county_coverage, v_targets,
    v_indicators TO careline_bureau, careline_app;
