-- triggers: the trigger functions the tables' triggers run (created in sql/migrations/,
-- so these are in sql/base/, applied before the migrations).

-- Keeps updated_at honest on every UPDATE, whoever issues it.
CREATE OR REPLACE FUNCTION careline_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- The daemon LISTENs on careline_stations and reloads the station named in the payload
-- (its id as text; for a deleted station the row is gone). NOTIFY folds identical payloads
-- within one transaction, so a bulk load sends each id once.
CREATE OR REPLACE FUNCTION careline_notify_station() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    sid bigint;
BEGIN
    IF TG_TABLE_NAME = 'stations' THEN
        sid := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        sid := CASE WHEN TG_OP = 'DELETE' THEN OLD.station_id ELSE NEW.station_id END;
        IF TG_OP = 'UPDATE' AND OLD.station_id <> NEW.station_id THEN
            PERFORM pg_notify('careline_stations', OLD.station_id::text);
        END IF;
    END IF;
    PERFORM pg_notify('careline_stations', sid::text);
    RETURN NULL;
END $$;

-- request_events is append-only: its triggers refuse UPDATE, DELETE and TRUNCATE.
CREATE OR REPLACE FUNCTION careline_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
