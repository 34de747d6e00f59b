-- careline_session_lease(daemon, lease_ms): one statement per daemon per renewal period.
-- Renews the daemon's lease (now + lease_ms) and closes the open terminal sessions of every
-- other daemon whose lease has lapsed (disconnected_at = its last renewal, the last moment
-- it was known alive; close_reason 'lease_expired'), and of daemons that never held a lease
-- once such a session is older than a lease (they died before their first renewal). Returns
-- how many sessions it closed; leases lapsed for a week with no open session are deleted.
-- A live daemon's sessions are never touched: its lease is renewed three times per period.
CREATE OR REPLACE FUNCTION careline_session_lease(p_daemon text, p_lease_ms integer)
RETURNS integer
LANGUAGE sql
AS $$
    WITH renew AS (
        INSERT INTO daemon_leases AS l (daemon_id, renewed_at, lease_until)
        VALUES (p_daemon, now(), now() + p_lease_ms * interval '1 millisecond')
        ON CONFLICT (daemon_id) DO UPDATE
            SET renewed_at = EXCLUDED.renewed_at, lease_until = EXCLUDED.lease_until
        RETURNING l.daemon_id
    ), closed AS (
        UPDATE terminal_sessions t
           SET disconnected_at = greatest(t.connected_at, coalesce(l.renewed_at, t.connected_at)),
               close_reason = 'lease_expired'
          FROM terminal_sessions o
          LEFT JOIN daemon_leases l ON l.daemon_id = o.daemon_id
         WHERE t.id = o.id
           AND t.disconnected_at IS NULL
           AND t.daemon_id <> p_daemon
           AND CASE WHEN l.daemon_id IS NULL
                    THEN t.connected_at < now() - p_lease_ms * interval '1 millisecond'
                    ELSE l.lease_until < now() END
        RETURNING t.id
    ), forgotten AS (
        -- leases of daemons gone for a week with nothing left open (host-pid ids make one
        -- row per start): the table stays the size of the live fleet
        DELETE FROM daemon_leases l
         WHERE l.lease_until < now() - interval '7 days'
           AND NOT EXISTS (SELECT 1 FROM terminal_sessions t
                            WHERE t.daemon_id = l.daemon_id AND t.disconnected_at IS NULL)
    )
    SELECT count(*)::integer FROM closed; -- the others run all the same (data-modifying CTEs)
$$;

GRANT EXECUTE ON FUNCTION careline_session_lease(text, integer) TO careline_app;
