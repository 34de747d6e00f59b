-- prepare.sql: makes the bench database measure the daemon, not the calendar or the data.
-- Meal capacities so large that capacity, not the clock, never runs out during a run; one
-- station principal per active station (token 'bench-station-<id>', known only to this
-- throw-away database), listed by tests/bench/run.sh into the loadgen tokens file.
-- Run as superuser with psql -v ON_ERROR_STOP=1.
UPDATE stations SET meal_capacity_lunch = 1000000, meal_capacity_dinner = 1000000
WHERE active AND offers_meal_delivery;
INSERT INTO principals (token_hash, role, station_id, name)
SELECT sha256(convert_to('bench-station-' || id, 'UTF8')), 'station', id, 'bench'
FROM stations WHERE active
ON CONFLICT (token_hash) DO NOTHING;
