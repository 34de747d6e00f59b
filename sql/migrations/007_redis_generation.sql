-- 007_redis_generation: PostgreSQL fences Redis generations. Redis holds only what
-- PostgreSQL can rebuild (capacity counters, reservations, the station streams); when a
-- daemon finds Redis' state lost or stale it rebuilds it from the live jobs and numbers the
-- rebuild here (core/rebuild.c, careline_redis_rebuild in sql/functions/redis_rebuild.sql).
--
-- Every job records the generation of the Redis state its capacity was reserved in
-- (jobs.redis_gen). A job reserved in a generation a rebuild has since replaced is refused
-- at insert (careline_jobs_redis_gen, sql/base/redis_gen.sql): its unit was counted in a
-- Redis that is gone, and the rebuild's snapshot did not see it, so committing it could
-- overfill its station. The insert takes a share lock on its county's generation row and
-- the rebuild an exclusive one, so a job is either committed before the rebuild's snapshot
-- (and counted by it) or refused: PostgreSQL, the record, is the final arbiter.
-- Jobs written before this migration (redis_gen NULL) are not checked.

CREATE TABLE redis_generations (
    county_code text PRIMARY KEY CHECK (county_code ~ '^[0-9]{6}$'),
    gen         bigint NOT NULL CHECK (gen >= 1),
    rebuilt_at  timestamptz NOT NULL DEFAULT now(),
    rebuilt_by  text         -- the daemon's server id
);

ALTER TABLE jobs ADD COLUMN redis_gen bigint;

CREATE TRIGGER jobs_redis_gen BEFORE INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION careline_jobs_redis_gen();

-- FOR SHARE needs UPDATE; the rebuild inserts a county's first row
GRANT SELECT, INSERT, UPDATE ON redis_generations TO careline_app;
