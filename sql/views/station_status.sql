-- station_status_now: each station's current word per day and meal slot (the latest
-- StationStatus capacity row, sql/migrations/010_station_status.sql), for analysts with psql.
CREATE OR REPLACE VIEW station_status_now AS
SELECT DISTINCT ON (e.station_id, e.service_date, e.meal_slot)
       e.station_id, e.service_date, e.meal_slot, e.capacity_left, e.capacity_limit,
       e.principal, e.recorded_at
  FROM station_status_events e
 WHERE e.service_date IS NOT NULL
 ORDER BY e.station_id, e.service_date, e.meal_slot, e.id DESC;

GRANT SELECT ON station_status_now TO careline_app, careline_bureau;
