-- dead_letters: requests given up on after the last attempt (max_attempts), listed for the
-- bureau to follow up, with their history.

CREATE OR REPLACE VIEW v_dead_letters AS
SELECT d.request_id, d.at, d.attempts, d.last_reason_code, d.last_reason, r.kind,
       r.service_date, r.village_code,
       (SELECT json_agg(json_build_object('station_id', j.station_id, 'attempt', j.attempt,
                                          'state', j.state, 'reason', j.reason_code)
                        ORDER BY j.attempt)
          FROM jobs j WHERE j.request_id = d.request_id) AS attempts_history
  FROM dead_letters d JOIN requests r ON r.id = d.request_id
 WHERE d.resolved_at IS NULL;

GRANT SELECT ON v_dead_letters TO careline_app, careline_bureau;
