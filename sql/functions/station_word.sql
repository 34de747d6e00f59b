-- station_word: a station's own word (StationStatus), recorded before it is acknowledged
-- (sql/migrations/010_station_status.sql; daemon/core/station_status.c).

-- Live jobs holding a unit of a station's capacity for a day and slot: every state but
-- rejected, expired and cancelled (those gave their unit back), as careline_redis_rebuild
-- counts the capacity counter.
CREATE OR REPLACE FUNCTION careline_station_used(p_station bigint, p_day date, p_slot text)
    RETURNS integer
    LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer
      FROM jobs j
      JOIN requests r ON r.id = j.request_id
     WHERE j.station_id = p_station
       AND j.state NOT IN ('rejected', 'expired', 'cancelled')
       AND r.service_date = p_day
       AND r.meal_slot = p_slot
$$;

-- One StationStatus in one transaction: a capacity row per (day, slot, left) — its limit is
-- the live jobs now plus what is left — and, unless p_capacity_only, an open/closed row and
-- the station's open state (careline_station_status, which on a close sends its offers on).
-- Returns a row per capacity entry (service_date, meal_slot, capacity_limit), in the order
-- given, then a row per offer a close sent on (job_id, request_id, attempt; the others NULL).
CREATE OR REPLACE FUNCTION careline_station_word(p_station bigint, p_open boolean,
                                                 p_on_duty integer, p_actor text,
                                                 p_capacity_only boolean, p_days date[],
                                                 p_slots text[], p_left integer[])
    RETURNS TABLE (service_date text, meal_slot text, capacity_limit integer, job_id bigint,
                   request_id bigint, attempt integer)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    lim integer;
BEGIN
    IF coalesce(array_length(p_days, 1), 0) <> coalesce(array_length(p_slots, 1), 0)
       OR coalesce(array_length(p_days, 1), 0) <> coalesce(array_length(p_left, 1), 0) THEN
        RAISE EXCEPTION 'careline_station_word: days, slots and left differ in length';
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_days, 1), 0) LOOP
        lim := careline_station_used(p_station, p_days[i], p_slots[i]) + p_left[i];
        INSERT INTO station_status_events (station_id, service_date, meal_slot, capacity_left,
                                           capacity_limit, principal)
        VALUES (p_station, p_days[i], p_slots[i], p_left[i], lim, p_actor);
        RETURN QUERY SELECT p_days[i]::text, p_slots[i], lim, NULL::bigint, NULL::bigint,
                            NULL::integer;
    END LOOP;
    IF p_capacity_only THEN
        RETURN;
    END IF;
    INSERT INTO station_status_events (station_id, is_open, caregivers_on_duty, principal)
    VALUES (p_station, p_open, p_on_duty, p_actor);
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::integer, x.job_id, x.request_id,
                        x.attempt
                   FROM careline_station_status(p_station, p_open, p_on_duty, p_actor) x;
END $$;

-- The current limits of a county's stations, from today on: for each station, day and slot
-- the limit of its latest word. A Redis rebuild writes them back (core/rebuild.c).
CREATE OR REPLACE FUNCTION careline_station_limits(p_county text)
    RETURNS TABLE (station_id bigint, service_date text, meal_slot text, capacity_limit integer)
    LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (e.station_id, e.service_date, e.meal_slot)
           e.station_id, e.service_date::text, e.meal_slot, e.capacity_limit
      FROM station_status_events e
      JOIN stations s ON s.id = e.station_id
     WHERE e.service_date >= careline_local_date(now())
       AND left(s.town_code, 6) = p_county
     ORDER BY e.station_id, e.service_date, e.meal_slot, e.id DESC
$$;

GRANT EXECUTE ON FUNCTION careline_station_used(bigint, date, text),
    careline_station_word(bigint, boolean, integer, text, boolean, date[], text[], integer[]),
    careline_station_limits(text) TO careline_app;
