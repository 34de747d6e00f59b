-- 006_session_lease: terminal sessions are closed by a lease when their daemon never comes
-- back. Each daemon renews one row here (daemon_leases) every third of session_lease_ms; a
-- daemon whose lease has lapsed (killed, its host gone) has its open terminal_sessions
-- closed by any other daemon (careline_session_lease, sql/functions/session_lease.sql): the
-- session ends at the last moment its daemon was known alive, and close_reason says why a
-- row was closed, so the terminal indicator counts it up to then and no longer.

CREATE TABLE daemon_leases (
    daemon_id   text PRIMARY KEY,          -- HelloOk.server_id (terminal_sessions.daemon_id)
    renewed_at  timestamptz NOT NULL,      -- the daemon was alive then
    lease_until timestamptz NOT NULL,      -- its sessions are its own until then
    CHECK (lease_until >= renewed_at)
);

-- Why a session row was closed; NULL for rows closed before this version and while open.
ALTER TABLE terminal_sessions ADD COLUMN close_reason text
    CHECK (close_reason IN ('disconnected', 'daemon_restarted', 'lease_expired'));

-- ---- careline_app: renew its own lease, close lapsed sessions -------------------------
GRANT SELECT, INSERT, DELETE ON daemon_leases TO careline_app;
GRANT UPDATE (renewed_at, lease_until) ON daemon_leases TO careline_app;
GRANT UPDATE (close_reason) ON terminal_sessions TO careline_app;
