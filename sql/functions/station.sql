-- station: the station side of a job's life, one statement per change.
--
-- Job state machine (anything else is refused and changes nothing; repeating the update
-- that produced the current state is a harmless no-op):
--   offered  --accept-->   accepted          offered  --reject(reason)--> rejected
--   accepted --en_route--> en_route          offered  --(timeout)-->      expired
--   accepted|en_route --deliver (meal)--> delivered
--   accepted|en_route --complete (care)--> done
--   accepted|en_route --fail(reason)--> failed
-- A rejected or expired job sends its request back to 'received' for the next station
-- (the daemon re-dispatches it at once; the sweep does it after a crash).

-- One JobUpdate (returns the type careline_job_update_result, sql/migrations/002_dispatch.sql).
CREATE OR REPLACE FUNCTION careline_job_update(p_job bigint, p_station bigint, p_action text,
                                               p_reason_code text, p_note text, p_actor text)
    RETURNS careline_job_update_result
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j   jobs%ROWTYPE;
    r   requests%ROWTYPE;
    out careline_job_update_result;
    target text;
    allowed text[];
    req_state text;
BEGIN
    SELECT * INTO j FROM jobs WHERE id = p_job FOR UPDATE;
    -- another station's job looks exactly like a missing one
    IF NOT FOUND OR (p_station IS NOT NULL AND j.station_id <> p_station) THEN
        out.outcome := 'not_found';
        RETURN out;
    END IF;
    SELECT * INTO r FROM requests WHERE id = j.request_id FOR UPDATE;
    target := CASE p_action
        WHEN 'accept' THEN 'accepted' WHEN 'reject' THEN 'rejected'
        WHEN 'go_en_route' THEN 'en_route' WHEN 'deliver' THEN 'delivered'
        WHEN 'complete' THEN 'done' WHEN 'fail' THEN 'failed' END;
    allowed := CASE p_action
        WHEN 'accept' THEN ARRAY['offered'] WHEN 'reject' THEN ARRAY['offered']
        WHEN 'go_en_route' THEN ARRAY['accepted']
        WHEN 'deliver' THEN ARRAY['accepted', 'en_route']
        WHEN 'complete' THEN ARRAY['accepted', 'en_route']
        WHEN 'fail' THEN ARRAY['accepted', 'en_route'] END;
    out := (NULL, j.state, j.request_id, j.attempt, r.state, false, false);
    IF j.state = target THEN
        out.outcome := 'repeat';
        RETURN out;
    END IF;
    IF target IS NULL OR NOT (j.state = ANY (allowed))
       OR (p_action = 'deliver' AND r.kind <> 'meal_delivery')
       OR (p_action = 'complete' AND r.kind <> 'home_care') THEN
        out.outcome := 'invalid';
        RETURN out;
    END IF;
    UPDATE jobs SET state = target, reason_code = p_reason_code, reason = nullif(p_note, ''),
           accepted_at = CASE WHEN target = 'accepted' THEN now() ELSE accepted_at END,
           finished_at = CASE WHEN target IN ('delivered', 'done', 'failed', 'rejected')
                              THEN now() END
     WHERE id = j.id;
    req_state := CASE target WHEN 'rejected' THEN 'received' ELSE target END;
    -- a cancelled request stays cancelled whatever its last job does
    IF r.state <> 'cancelled' THEN
        UPDATE requests SET state = req_state, reason_code = p_reason_code,
               reason = nullif(p_note, '') WHERE id = r.id;
    ELSE
        req_state := 'cancelled';
    END IF;
    INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                reason, station_id)
    VALUES (r.id, j.id, req_state, target, p_actor, p_reason_code, nullif(p_note, ''),
            j.station_id);
    IF target = 'failed' AND p_reason_code IN ('resident_not_home', 'resident_unwell') THEN
        INSERT INTO welfare_alerts (request_id, job_id, resident_id, station_id, reason)
        VALUES (r.id, j.id, r.resident_id, j.station_id,
                CASE p_reason_code WHEN 'resident_unwell' THEN '老人身体不适'
                                   ELSE '上门时老人不在家' END
                || coalesce('：' || nullif(p_note, ''), ''));
        out.welfare := true;
    END IF;
    out.outcome := 'changed';
    out.job_state := target;
    out.request_state := req_state;
    out.redispatch := target = 'rejected' AND req_state = 'received';
    RETURN out;
END $$;

-- JobUpdates from station consoles, in order, in one transaction (one WAL flush for the
-- batch). Each element: {"job", "station" (null for admin), "action", "reason_code", "note",
-- "actor"}. An error aborts the batch; the daemon then retries its elements one by one.
-- Also the job's station and, when this update accepted it, the resident's phone: the
-- daemon adds the change to the station's Redis stream, which its consoles are served from
-- (an accepted job's console may call ahead), without reading the job again.
DROP FUNCTION IF EXISTS careline_job_update_many(jsonb); -- before the station and phone columns
CREATE FUNCTION careline_job_update_many(p jsonb)
    RETURNS TABLE (idx integer, outcome text, job_state text, request_id bigint,
                   attempt integer, request_state text, redispatch boolean, welfare boolean,
                   station_id bigint, phone text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e jsonb;
    n bigint;
BEGIN
    FOR e, n IN SELECT t.v, t.ord FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord) LOOP
        RETURN QUERY SELECT (n - 1)::integer, u.*, j.station_id,
               CASE WHEN u.outcome = 'changed' AND u.job_state = 'accepted'
                    THEN coalesce(x.phone, '') ELSE '' END
          FROM careline_job_update((e->>'job')::bigint, (e->>'station')::bigint, e->>'action',
                                   e->>'reason_code', e->>'note', e->>'actor') u
          LEFT JOIN jobs j ON j.id = (e->>'job')::bigint AND u.outcome <> 'not_found'
          LEFT JOIN requests r ON r.id = j.request_id
          LEFT JOIN residents x ON x.id = r.resident_id;
    END LOOP;
END $$;

-- Offers not accepted in time: expired, their requests back to 'received'. Safe to run on
-- several daemons at once (SKIP LOCKED).
CREATE OR REPLACE FUNCTION careline_expire_offers(p_limit integer)
    RETURNS TABLE (job_id bigint, request_id bigint, station_id bigint, attempt integer)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j jobs%ROWTYPE;
BEGIN
    FOR j IN SELECT * FROM jobs WHERE state = 'offered' AND offer_expires_at < now()
             ORDER BY offer_expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED LOOP
        UPDATE jobs SET state = 'expired', reason_code = 'offer_timeout',
               reason = 'not accepted in time', finished_at = now() WHERE id = j.id;
        UPDATE requests SET state = 'received', reason_code = 'offer_timeout'
         WHERE id = j.request_id AND state = 'queued';
        INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                    reason, station_id)
        SELECT j.request_id, j.id, q.state, 'expired', 'daemon', 'offer_timeout',
               'the station did not accept in time', j.station_id
          FROM requests q WHERE q.id = j.request_id;
        job_id := j.id;
        request_id := j.request_id;
        station_id := j.station_id;
        attempt := j.attempt;
        RETURN NEXT;
    END LOOP;
END $$;

-- A station reports its status. Closing it sends its not-yet-accepted jobs on to the next
-- station (returned, so the daemon can release their capacity and re-dispatch).
CREATE OR REPLACE FUNCTION careline_station_status(p_station bigint, p_open boolean,
                                                   p_on_duty integer, p_actor text)
    RETURNS TABLE (job_id bigint, request_id bigint, attempt integer)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j jobs%ROWTYPE;
BEGIN
    UPDATE stations SET is_open = p_open,
           caregivers_on_duty = coalesce(p_on_duty, caregivers_on_duty),
           status_updated_at = now()
     WHERE id = p_station;
    IF p_open THEN
        RETURN;
    END IF;
    FOR j IN SELECT * FROM jobs WHERE station_id = p_station AND state = 'offered'
             FOR UPDATE LOOP
        UPDATE jobs SET state = 'rejected', reason_code = 'station_closed',
               reason = 'the station closed', finished_at = now() WHERE id = j.id;
        UPDATE requests SET state = 'received', reason_code = 'station_closed'
         WHERE id = j.request_id AND state = 'queued';
        INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                    reason, station_id)
        SELECT j.request_id, j.id, q.state, 'rejected', p_actor, 'station_closed',
               'the station closed', j.station_id FROM requests q WHERE q.id = j.request_id;
        job_id := j.id;
        request_id := j.request_id;
        attempt := j.attempt;
        RETURN NEXT;
    END LOOP;
END $$;

-- The console-safe view of stations' jobs, many stations in one statement: for each
-- station, everything live, plus the jobs in p_known. The job's station is the last column;
-- rows are ordered by station, then job. Since issue 13 consoles are served from their
-- stations' Redis streams, not from this function: the rebuild (core/rebuild.c) reads it
-- once to write every live job's console entry into the rebuilt streams.
CREATE OR REPLACE FUNCTION careline_station_jobs_many(p_stations bigint[], p_known bigint[])
    RETURNS TABLE (job_id bigint, request_id bigint, state text, attempt integer, kind text,
                   meal_slot text, service_date text, care_subtype text, resident_name text,
                   address text, village_name text, lat double precision,
                   lon double precision, priority text, note text, window_start_ms bigint,
                   window_end_ms bigint, expires_ms bigint, travel_minutes integer,
                   phone text, station_id bigint)
    LANGUAGE sql STABLE AS $$
    SELECT j.id, j.request_id, j.state, j.attempt, r.kind, coalesce(r.meal_slot, ''),
           r.service_date::text, coalesce(r.care_subtype, ''), x.name, x.address, v.name,
           x.lat, x.lon, array_to_string(r.priority, ','), r.note,
           (extract(epoch FROM r.window_start) * 1000)::bigint,
           (extract(epoch FROM r.window_end) * 1000)::bigint,
           (extract(epoch FROM j.offer_expires_at) * 1000)::bigint,
           coalesce(j.travel_minutes, 0),
           CASE WHEN j.state IN ('accepted', 'en_route') THEN x.phone ELSE '' END,
           j.station_id
      FROM jobs j
      JOIN requests r ON r.id = j.request_id
      JOIN residents x ON x.id = r.resident_id
      JOIN villages v ON v.code = x.village_code
     WHERE j.station_id = ANY (p_stations)
       AND (j.state IN ('offered', 'accepted', 'en_route') OR j.id = ANY (p_known))
     ORDER BY j.station_id, j.id
$$;

GRANT EXECUTE ON FUNCTION careline_job_update(bigint, bigint, text, text, text, text),
    careline_job_update_many(jsonb), careline_expire_offers(integer),
    careline_station_status(bigint, boolean, integer, text),
    careline_station_jobs_many(bigint[], bigint[]) TO careline_app;
