-- admin_triggers: the trigger function 008_admin's principals trigger runs.

-- A revoked principal's id on careline_principals: every daemon drops it from its token
-- cache and closes its open sessions (daemon/admin/admin_revoke.c).
CREATE OR REPLACE FUNCTION careline_notify_principal() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('careline_principals', NEW.id::text);
    RETURN NULL;
END $$;
