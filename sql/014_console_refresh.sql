-- 014_console_refresh: the periodic re-read of station consoles' jobs, many stations in
-- one statement. Each console is re-read every console_refresh_ms in case a wake-up was
-- lost; with 10,000 consoles one query each was 1,000 queries a second queued ahead of
-- the submissions (bench: 313 instead of 1,000 jobs/s). It replaces careline_station_jobs
-- (one station): the same columns plus the job's station last, rows ordered by station,
-- then job.
CREATE FUNCTION careline_station_jobs_many(p_stations bigint[], p_known bigint[])
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

GRANT EXECUTE ON FUNCTION careline_station_jobs_many(bigint[], bigint[]) TO careline_app;

DROP FUNCTION careline_station_jobs(bigint, bigint[]);
