-- bureau: the functions behind the bureau's figures (the views are in sql/views/). Both
-- are SECURITY DEFINER with a fixed search_path, and only careline_app and careline_bureau
-- may call them: they read per-person tables (terminal_sessions, requests through
-- careline_request_outcomes) and return aggregates only.

-- Village stations (kind village_station, active) per town, with how many had a terminal
-- session (a console connected) overlapping the local days [p_from, p_to], and how many are
-- registered as equipped (stations.has_terminal; informational). The daemon calls this too.
CREATE OR REPLACE FUNCTION careline_terminal_stations(p_from date, p_to date)
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

-- Realized figures for the calls received on local days [p_from, p_to]; p_scope NULL or a
-- 6-digit county code or a 12-digit town code. Rows: scope 'county' (kind 'all',
-- 'meal_delivery', 'home_care'), 'town' (key = town code; '' for callers not registered)
-- and 'station' (key = station id; '' for requests no station was assigned), kind 'all'.
-- Minutes are call -> delivery over delivered requests (NULL when none).
CREATE OR REPLACE FUNCTION careline_realized(p_from date, p_to date, p_scope text DEFAULT NULL)
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

REVOKE ALL ON FUNCTION careline_realized(date, date, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION careline_terminal_stations(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION careline_realized(date, date, text) TO careline_app, careline_bureau;
GRANT EXECUTE ON FUNCTION careline_terminal_stations(date, date) TO careline_app,
    careline_bureau;

-- Unmet demand: the follow-ups of callers who were not registered (009_followups.sql) whose
-- first call fell on local days [p_from, p_to]; p_scope a 6-digit county code or a 12-digit
-- town code. Rows: scope 'county' (key '') and 'town' (key = town code; '' for callers whose
-- village is not known). open/contacted/registered/declined: the follow-ups in each state
-- now; calls: their not_registered calls; registered_residents: follow-ups a registration
-- linked to a resident. Time to follow up: median hours from the first call to the first
-- change away from 'open' (contact, decline or registration), over those changed (NULL
-- when none). No phone, hash or name leaves this function.
CREATE OR REPLACE FUNCTION careline_unmet_demand(p_from date, p_to date, p_scope text)
    RETURNS TABLE (scope text, key text, name text, followups bigint, open bigint,
                   contacted bigint, registered bigint, declined bigint, calls bigint,
                   registered_residents bigint, median_hours_to_contact double precision)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH f AS (
        SELECT f.*, extract(epoch FROM f.first_contact_at - f.first_call_at) / 3600 AS hours
        FROM followups f
        WHERE f.first_call_at >= careline_day_start(p_from)
          AND f.first_call_at < careline_day_start(p_to + 1)
          AND (f.county_code = p_scope OR f.town_code = p_scope)),
    g AS (
        SELECT CASE WHEN grouping(f.town_code) = 0 THEN 'town' ELSE 'county' END AS scope,
               CASE WHEN grouping(f.town_code) = 0 THEN coalesce(f.town_code::text, '')
                    ELSE '' END AS key,
               count(*) AS followups,
               count(*) FILTER (WHERE f.state = 'open') AS open,
               count(*) FILTER (WHERE f.state = 'contacted') AS contacted,
               count(*) FILTER (WHERE f.state = 'registered') AS registered,
               count(*) FILTER (WHERE f.state = 'declined') AS declined,
               coalesce(sum(f.calls), 0) AS calls,
               count(*) FILTER (WHERE f.resident_id IS NOT NULL) AS registered_residents,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY f.hours)
                   FILTER (WHERE f.hours IS NOT NULL) AS median_hours
        FROM f
        GROUP BY GROUPING SETS ((), (f.town_code)))
    SELECT g.scope, g.key,
           CASE g.scope WHEN 'county' THEN ''
                ELSE coalesce((SELECT t.name FROM towns t WHERE t.code = g.key), '') END,
           g.followups, g.open, g.contacted, g.registered, g.declined, g.calls,
           g.registered_residents, g.median_hours
    FROM g
    ORDER BY CASE g.scope WHEN 'county' THEN 0 ELSE 1 END, g.key
$$;

REVOKE ALL ON FUNCTION careline_unmet_demand(date, date, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION careline_unmet_demand(date, date, text) TO careline_app,
    careline_bureau;
