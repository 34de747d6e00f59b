-- redis_rebuild: what a Redis rebuild is made of (daemon/core/rebuild.c).
--
-- careline_redis_rebuild numbers a new generation for the county and returns the live jobs
-- that hold capacity (every state but rejected, expired and cancelled: those gave their
-- unit back), for the service days Redis still keeps (yesterday on). The first row carries
-- only the new generation (station_id NULL). The UPDATE of the county's row waits for every
-- job insert holding it FOR SHARE (careline_jobs_redis_gen) to commit; the SELECT after it
-- takes a fresh snapshot (a VOLATILE function's statements each do, in READ COMMITTED), so
-- it sees every job of the old generation that will ever be committed: later ones are
-- refused by the trigger.
CREATE OR REPLACE FUNCTION careline_redis_rebuild(p_county text, p_by text)
    RETURNS TABLE (gen bigint, station_id bigint, service_date text, slot text,
                   request_id bigint, attempt integer, job_id bigint)
    LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    g bigint;
BEGIN
    INSERT INTO redis_generations AS rg (county_code, gen, rebuilt_by)
    VALUES (p_county, 1, p_by)
    ON CONFLICT (county_code) DO UPDATE
        SET gen = rg.gen + 1, rebuilt_at = now(), rebuilt_by = p_by
    RETURNING rg.gen INTO g;
    RETURN QUERY SELECT g, NULL::bigint, NULL::text, NULL::text, NULL::bigint, NULL::integer,
                        NULL::bigint;
    RETURN QUERY
    SELECT g, j.station_id, r.service_date::text, coalesce(r.meal_slot::text, 'care'), r.id,
           j.attempt, j.id
      FROM jobs j
      JOIN requests r ON r.id = j.request_id
      JOIN stations s ON s.id = j.station_id
     WHERE j.state NOT IN ('rejected', 'expired', 'cancelled')
       AND left(s.town_code, 6) = p_county
       AND r.service_date >= careline_local_date(now()) - 1
     ORDER BY j.offered_at, j.id;
END $$;

GRANT EXECUTE ON FUNCTION careline_redis_rebuild(text, text) TO careline_app;
