-- 020_bureau_views: what the civil-affairs bureau reads — coverage per village, town and
-- county, the other indicators against their targets, and realized figures per period — as
-- views and functions an analyst can query with psql as careline_bureau. No names, phone
-- numbers, resident ids or request ids leave through them: per-request rows stay in
-- careline_request_outcomes, which only the daemon may read; the bureau sees aggregates.
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

CREATE VIEW v_village_coverage AS
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
CREATE VIEW v_targets AS
SELECT coalesce((SELECT value::double precision FROM settings
                 WHERE key = 'target_meal_village_coverage'), 0.95) AS meal_village_coverage,
       coalesce((SELECT value::double precision FROM settings
                 WHERE key = 'target_terminal_share'), 0.55) AS terminal_share,
       coalesce((SELECT value::double precision FROM settings
                 WHERE key = 'target_certified_per_10k'), 32) AS certified_per_10k;

CREATE VIEW v_town_coverage AS
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

CREATE VIEW v_county_coverage AS
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

-- Village stations (kind village_station, active) per town, with how many had a terminal
-- session (a console connected) overlapping the local days [p_from, p_to], and how many are
-- registered as equipped (stations.has_terminal; informational). The daemon calls this too.
CREATE FUNCTION careline_terminal_stations(p_from date, p_to date)
    RETURNS TABLE (town_code text, stations bigint, with_session bigint, equipped bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT s.town_code::text, count(*),
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM terminal_sessions ts
               WHERE ts.station_id = s.id
                 AND ts.connected_at < careline_day_start(p_to + 1)
                 AND coalesce(ts.disconnected_at, 'infinity') >= careline_day_start(p_from))),
           count(*) FILTER (WHERE s.has_terminal)
    FROM stations s
    WHERE s.kind = 'village_station' AND s.active
    GROUP BY s.town_code
$$;

-- One row per county and indicator, today (terminal share: sessions today).
CREATE VIEW v_indicators AS
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

-- ---------------------------------------------------------------------------------------
-- Realized figures

-- One row per request with its outcome: the daemon's and the functions' single definition.
-- Per-request data: NOT granted to careline_bureau.
--   day            the local day the call was received (requests.created_at)
--   was_queued     a station was offered the job at some point
--   was_waitlisted the request waited for capacity at some point
--   delivered      final state delivered (meal) or done (care)
--   delivered_at   first delivered/done event, else the job's finish, else the last update
--   on_time        delivered by the end of the promised window
CREATE VIEW careline_request_outcomes AS
SELECT r.id AS request_id, r.kind, careline_local_date(r.created_at) AS day, r.created_at,
       r.state, v.town_code, v.county_code, r.village_code, r.station_id,
       (r.state IN ('queued', 'accepted', 'en_route', 'delivered', 'done')
        OR EXISTS (SELECT 1 FROM request_events e
                   WHERE e.request_id = r.id AND e.state = 'queued')) AS was_queued,
       (r.state = 'waitlisted'
        OR EXISTS (SELECT 1 FROM request_events e
                   WHERE e.request_id = r.id AND e.state = 'waitlisted')) AS was_waitlisted,
       r.state IN ('delivered', 'done') AS delivered,
       CASE WHEN r.state IN ('delivered', 'done')
            THEN coalesce((SELECT min(e.at) FROM request_events e
                           WHERE e.request_id = r.id AND e.state IN ('delivered', 'done')),
                          j.finished_at, r.updated_at) END AS delivered_at,
       r.window_end,
       (r.state = 'dead_letter'
        OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.request_id = r.id)) AS dead_lettered
FROM requests r
LEFT JOIN villages v ON v.code = r.village_code
LEFT JOIN jobs j ON j.id = r.job_id;

-- Realized figures for the calls received on local days [p_from, p_to]; p_scope NULL or a
-- 6-digit county code or a 12-digit town code. Rows: scope 'county' (kind 'all',
-- 'meal_delivery', 'home_care'), 'town' (key = town code; '' for callers not registered)
-- and 'station' (key = station id; '' for requests no station was assigned), kind 'all'.
-- Minutes are call -> delivery over delivered requests (NULL when none).
CREATE FUNCTION careline_realized(p_from date, p_to date, p_scope text DEFAULT NULL)
    RETURNS TABLE (scope text, key text, name text, kind text, received bigint,
                   queued bigint, delivered bigint, on_time bigint, rejected bigint,
                   waitlisted bigint, dead_lettered bigint, not_registered bigint,
                   cancelled bigint, failed bigint, median_minutes double precision,
                   p90_minutes double precision)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH o AS (
        SELECT o.*, extract(epoch FROM o.delivered_at - o.created_at) / 60 AS minutes
        FROM careline_request_outcomes o
        WHERE o.created_at >= careline_day_start(p_from)
          AND o.created_at < careline_day_start(p_to + 1)
          AND (p_scope IS NULL OR o.town_code = p_scope OR o.county_code = p_scope
               OR (o.town_code IS NULL AND length(p_scope) = 6))),
    g AS (
        SELECT CASE WHEN grouping(o.town_code) = 0 THEN 'town'
                    WHEN grouping(o.station_id) = 0 THEN 'station'
                    ELSE 'county' END AS scope,
               CASE WHEN grouping(o.town_code) = 0 THEN coalesce(o.town_code, '')
                    WHEN grouping(o.station_id) = 0 THEN coalesce(o.station_id::text, '')
                    ELSE '' END AS key,
               CASE WHEN grouping(o.kind) = 0 THEN o.kind ELSE 'all' END AS kind,
               count(*) AS received,
               count(*) FILTER (WHERE o.was_queued) AS queued,
               count(*) FILTER (WHERE o.delivered) AS delivered,
               count(*) FILTER (WHERE o.delivered AND o.delivered_at <= o.window_end) AS on_time,
               count(*) FILTER (WHERE o.state = 'rejected') AS rejected,
               count(*) FILTER (WHERE o.was_waitlisted) AS waitlisted,
               count(*) FILTER (WHERE o.dead_lettered) AS dead_lettered,
               count(*) FILTER (WHERE o.state = 'not_registered') AS not_registered,
               count(*) FILTER (WHERE o.state = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE o.state = 'failed') AS failed,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY o.minutes)
                   FILTER (WHERE o.delivered) AS median_minutes,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY o.minutes)
                   FILTER (WHERE o.delivered) AS p90_minutes
        FROM o
        GROUP BY GROUPING SETS ((), (o.kind), (o.town_code), (o.station_id)))
    SELECT g.scope, g.key,
           CASE g.scope WHEN 'county' THEN ''
                WHEN 'town' THEN coalesce((SELECT t.name FROM towns t WHERE t.code = g.key), '')
                ELSE coalesce((SELECT s.name FROM stations s WHERE s.id::text = g.key), '') END,
           g.kind, g.received, g.queued, g.delivered, g.on_time, g.rejected, g.waitlisted,
           g.dead_lettered, g.not_registered, g.cancelled, g.failed, g.median_minutes,
           g.p90_minutes
    FROM g
    ORDER BY CASE g.scope WHEN 'county' THEN 0 WHEN 'town' THEN 1 ELSE 2 END,
             CASE g.kind WHEN 'all' THEN 0 WHEN 'meal_delivery' THEN 1 ELSE 2 END,
             length(g.key), g.key
$$;

-- Realized figures per local day (every day with at least one call), county and per town.
CREATE VIEW v_realized_daily AS
SELECT d.day, r.*
FROM (SELECT DISTINCT careline_local_date(created_at) AS day FROM requests) d
CROSS JOIN LATERAL careline_realized(d.day, d.day) r
WHERE r.scope IN ('county', 'town');

-- ---------------------------------------------------------------------------------------
-- Grants

GRANT SELECT ON v_village_coverage, v_town_coverage, v_county_coverage, v_targets,
    v_indicators, v_realized_daily TO careline_bureau, careline_app;
GRANT SELECT ON careline_request_outcomes TO careline_app;
REVOKE ALL ON FUNCTION careline_realized(date, date, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION careline_terminal_stations(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION careline_realized(date, date, text) TO careline_app, careline_bureau;
GRANT EXECUTE ON FUNCTION careline_terminal_stations(date, date) TO careline_app,
    careline_bureau;
