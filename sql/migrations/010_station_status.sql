-- 010_station_status: a station's own word is the record too. A StationStatus (open or
-- closed, caregivers on duty, and per day and meal slot the meals it can still serve) was
-- kept only in stations.is_open and Redis' limit keys ({cCOUNTY}:lim:STATION:DAY:SLOT): after
-- a Redis data loss the rebuild could not restore the limits, and a station that said "only
-- 5 more lunches today" could be sent its directory's full capacity again.
--
-- From this version every StationStatus is recorded here, append-only, before it is
-- acknowledged (careline_station_word, sql/functions/station_word.sql), then applied to Redis
-- (lua/caplim.lua). A capacity row stores what the station said it has left and the limit
-- that makes of it: the station's live jobs for that day and slot at that moment plus what
-- is left, counted as the rebuild counts its capacity counter. The limit, not "left", is what
-- Redis holds and what a rebuild restores (careline_station_limits, core/rebuild.c), so the
-- jobs taken since the word still count against it.
--
-- An open/closed row has no day or slot. Rows are never changed; the current word for a
-- station, day and slot is its row with the highest id (view station_status_now).

CREATE TABLE station_status_events (
    id                 bigserial PRIMARY KEY,
    station_id         bigint NOT NULL REFERENCES stations (id),
    service_date       date,                 -- NULL: an open/closed word
    meal_slot          text CHECK (meal_slot IN ('lunch', 'dinner')),
    capacity_left      integer CHECK (capacity_left BETWEEN 0 AND 100000),
    capacity_limit     integer CHECK (capacity_limit >= capacity_left),
    is_open            boolean,              -- NULL on a capacity row
    caregivers_on_duty integer CHECK (caregivers_on_duty BETWEEN 0 AND 10000),
    principal          text NOT NULL,        -- who said it: station:ID, or an admin
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((service_date IS NULL) = (meal_slot IS NULL)),
    CHECK ((service_date IS NULL) = (capacity_left IS NULL)),
    CHECK ((service_date IS NULL) = (capacity_limit IS NULL)),
    CHECK ((service_date IS NULL) = (is_open IS NOT NULL))
);

-- the current word per station, day and slot (the latest row), and the rebuild's read of
-- today on
CREATE INDEX station_status_events_word_idx
    ON station_status_events (station_id, service_date, meal_slot, id DESC)
    WHERE service_date IS NOT NULL;
CREATE INDEX station_status_events_day_idx
    ON station_status_events (service_date) WHERE service_date IS NOT NULL;

-- the event log: append and read, never change (like request_events, 004_roles.sql)
GRANT SELECT, INSERT ON station_status_events TO careline_app;
REVOKE UPDATE, DELETE, TRUNCATE ON station_status_events FROM careline_app;
GRANT USAGE ON SEQUENCE station_status_events_id_seq TO careline_app;
-- the bureau sees stations' words (no personal data in them), like stations' reference data
GRANT SELECT ON station_status_events TO careline_bureau;
