-- 004_roles: login roles and least-privilege grants.
--   careline_app     the daemon (dispatchd)
--   careline_bureau  bureau analysts with psql: reference and aggregate data only, no
--                    residents, requests or principals
-- Roles are cluster-wide, so they are created only if missing. No passwords here: local
-- development uses trust on loopback; production sets them outside the repository.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'careline_app') THEN
        CREATE ROLE careline_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'careline_bureau') THEN
        CREATE ROLE careline_bureau LOGIN;
    END IF;
END $$;

-- Start from nothing on every table of ours, then grant.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, careline_app, careline_bureau;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, careline_app, careline_bureau;
GRANT USAGE ON SCHEMA public TO careline_app, careline_bureau;

-- ---- careline_app ----------------------------------------------------------------------
-- reference data: read only
GRANT SELECT ON towns, villages, stations, station_service_area, residents, principals,
    travel_params, travel_times, settings, data_loads, schema_migrations TO careline_app;
-- live station status only (StationStatus); the reference columns stay admin-owned
GRANT UPDATE (is_open, caregivers_on_duty, status_updated_at) ON stations TO careline_app;

-- dispatch records
GRANT SELECT, INSERT ON requests, jobs TO careline_app;
GRANT UPDATE (resident_id, village_code, state, reason_code, reason, station_id, job_id,
              attempts, window_start, window_end, travel_minutes, priority)
    ON requests TO careline_app;
GRANT UPDATE (state, reason_code, reason, offer_expires_at, accepted_at, finished_at)
    ON jobs TO careline_app;

-- the event log: append and read, never change
GRANT SELECT, INSERT ON request_events TO careline_app;
REVOKE UPDATE, DELETE, TRUNCATE ON request_events FROM careline_app;

GRANT SELECT, INSERT ON welfare_alerts, dead_letters, terminal_sessions TO careline_app;
GRANT UPDATE (resolved_at, resolved_by) ON welfare_alerts TO careline_app;
GRANT UPDATE (at, attempts, last_reason, last_reason_code, resolved_at)
    ON dead_letters TO careline_app;
GRANT UPDATE (disconnected_at) ON terminal_sessions TO careline_app;

-- snapshots are upserted per (day, scope)
GRANT SELECT, INSERT, UPDATE ON coverage_snapshots TO careline_app;

GRANT USAGE ON SEQUENCE requests_id_seq, jobs_id_seq, request_events_id_seq,
    welfare_alerts_id_seq, terminal_sessions_id_seq TO careline_app;

-- ---- careline_bureau -------------------------------------------------------------------
-- No residents, requests, jobs, events, alerts or principals: per-person data reaches the
-- bureau only through the analyst views (sql/views/), which aggregate or mask it. Grants
-- on functions and views are in their own files (sql/functions/, sql/views/).
GRANT SELECT ON towns, villages, stations, station_service_area, travel_params, travel_times,
    settings, coverage_snapshots, dead_letters, terminal_sessions, data_loads
    TO careline_bureau;
