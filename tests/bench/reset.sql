-- reset.sql: between bench scenarios, ends every open job and request of the earlier runs
-- (superuser, bench database only), so the next run's consoles get no backlog and the
-- offer-expiry and waitlist sweeps have nothing left to re-dispatch.
UPDATE jobs SET state = 'cancelled' WHERE state IN ('offered', 'accepted', 'en_route');
UPDATE requests SET state = 'cancelled'
WHERE state IN ('waitlisted', 'queued', 'accepted', 'en_route');
