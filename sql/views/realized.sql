-- realized: realized figures — what happened to the calls received in a period. The
-- per-period function careline_realized is in sql/functions/bureau.sql.

-- One row per request with its outcome: the daemon's and the functions' single definition.
-- Per-request data: NOT granted to careline_bureau.
--   day            the local day the call was received (requests.created_at)
--   was_queued     a station was offered the job at some point
--   was_waitlisted the request waited for capacity at some point
--   delivered      final state delivered (meal) or done (care)
--   delivered_at   first delivered/done event, else the job's finish, else the last update
--   on_time        delivered by the end of the promised window
CREATE OR REPLACE VIEW careline_request_outcomes AS
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

-- Realized figures per local day (every day with at least one call), county and per town.
CREATE OR REPLACE VIEW v_realized_daily AS
SELECT d.day, r.*
FROM (SELECT DISTINCT careline_local_date(created_at) AS day FROM requests) d
CROSS JOIN LATERAL careline_realized(d.day, d.day) r
WHERE r.scope IN ('county', 'town');

GRANT SELECT ON v_realized_daily TO careline_bureau, careline_app;
GRANT SELECT ON careline_request_outcomes TO careline_app;
