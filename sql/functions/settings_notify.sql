-- settings_notify: every change of a settings row is announced on careline_settings, so each
-- dispatchd follows the ones it can live (daemon/server/settings_follow.c: booking_days,
-- priority_reserve_pct) whoever made it — the admin API or psql.
CREATE OR REPLACE FUNCTION careline_settings_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('careline_settings', coalesce(NEW.key, OLD.key));
    RETURN NULL;
END $$;

-- In this file rather than a migration so that the function it runs is defined once.
CREATE OR REPLACE TRIGGER settings_notify
    AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION careline_settings_notify();

REVOKE ALL ON FUNCTION careline_settings_notify() FROM PUBLIC;
