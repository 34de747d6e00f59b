-- 008_admin: the admin API's tables (issue 14). Residents are deactivated, never deleted
-- (their requests keep their history); every change the admin API makes is one row of
-- admin_audit, append-only like request_events; a revoked principal is announced on
-- careline_principals so every daemon closes its open sessions (careline_notify_principal
-- in sql/base/admin_triggers.sql). The operations themselves are sql/functions/admin*.sql:
-- SECURITY DEFINER functions, so careline_app writes residents, stations, principals and
-- settings only through them (its table grants below stay read-only for those tables).

ALTER TABLE residents ADD COLUMN active boolean NOT NULL DEFAULT true;
ALTER TABLE residents ADD COLUMN deactivated_at timestamptz;
ALTER TABLE residents ADD CONSTRAINT residents_deactivated_when
    CHECK (active = (deactivated_at IS NULL));

-- Who changed what, when, why. object_id is text: a resident's or station's id, a
-- principal's id, a setting's key.
CREATE TABLE admin_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    principal_id bigint REFERENCES principals (id),  -- the token that made the change
    actor        text NOT NULL,                      -- its name, as in HelloOk.principal_name
    object_kind  text NOT NULL CHECK (object_kind IN ('resident', 'station', 'token', 'setting')),
    object_id    text NOT NULL,
    action       text NOT NULL,                      -- the operation, e.g. 'resident.update'
    before       jsonb,                              -- null for a creation
    after        jsonb,
    reason       text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500)
);
CREATE INDEX admin_audit_object_idx ON admin_audit (object_kind, object_id, at);
CREATE INDEX admin_audit_at_idx ON admin_audit (at);

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION careline_append_only();
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION careline_append_only();

CREATE TRIGGER principals_notify AFTER UPDATE OF revoked_at ON principals
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION careline_notify_principal();

-- the app role appends and reads the audit log, never changes it
GRANT SELECT, INSERT ON admin_audit TO careline_app;
REVOKE UPDATE, DELETE, TRUNCATE ON admin_audit FROM careline_app;
GRANT USAGE ON SEQUENCE admin_audit_id_seq TO careline_app;
