-- redis_gen: the trigger function of jobs_redis_gen (007_redis_generation.sql). A job
-- carrying the Redis generation it was reserved in is accepted only while that generation
-- is its county's current one. FOR SHARE: a rebuild's UPDATE of the row waits for every
-- insert holding it to commit, and an insert arriving during the rebuild waits for it and
-- then sees the new generation (READ COMMITTED re-reads the updated row).
CREATE OR REPLACE FUNCTION careline_jobs_redis_gen() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    g bigint;
BEGIN
    IF NEW.redis_gen IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT rg.gen INTO g FROM redis_generations rg
     WHERE rg.county_code = (SELECT left(s.town_code, 6) FROM stations s
                              WHERE s.id = NEW.station_id)
       FOR SHARE;
    IF g IS DISTINCT FROM NEW.redis_gen THEN
        RAISE EXCEPTION 'stale redis generation: job % was reserved in Redis generation %, replaced by a rebuild (now %)',
            NEW.id, NEW.redis_gen, coalesce(g::text, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END $$;
