-- 012_batch: group commit without re-planning every row.
--
-- 010 set plan_cache_mode = force_custom_plan on the batch functions so their big statements
-- are planned against the tables as they are now. That setting also reached the foreign-key
-- triggers those statements fire, which then re-planned their lookup for every inserted
-- row: about 45% of PostgreSQL's CPU under load (perf: AfterTriggerEndQuery ->
-- SPI_execute_snapshot -> standard_planner). The batch statements now run through EXECUTE,
-- which plans them afresh each call, and everything else keeps its cached plans.
--
-- Also: careline_submit_finish_set probes each request by primary key (see below), and
-- careline_job_update_many commits station consoles' updates in batches.

ALTER FUNCTION careline_submit_begin_set(jsonb) RESET plan_cache_mode;
ALTER FUNCTION careline_submit_finish_set(jsonb) RESET plan_cache_mode;
ALTER FUNCTION careline_submit_begin_many(jsonb) RESET plan_cache_mode;
ALTER FUNCTION careline_submit_finish_many(jsonb) RESET plan_cache_mode;

CREATE OR REPLACE FUNCTION careline_submit_begin_set(p jsonb)
    RETURNS TABLE (idx integer, outcome text, request_id bigint, state text,
                   resident_id bigint, village_code text, lat double precision,
                   lon double precision, priority text, station_id bigint, job_id bigint,
                   attempts integer, travel_minutes integer, window_start_ms bigint,
                   window_end_ms bigint, reason_code text, resident_name text,
                   address text)
    LANGUAGE plpgsql AS $$
DECLARE
    fallback boolean;
BEGIN
    EXECUTE $q$SELECT EXISTS (SELECT 1 FROM jsonb_array_elements($1) e
                            JOIN requests q ON q.idempotency_key = e->>'key')
                  OR (SELECT count(DISTINCT e->>'key') FROM jsonb_array_elements($1) e)
                     <> jsonb_array_length($1)
                  OR EXISTS (SELECT 1 FROM jsonb_array_elements($1) e
                              WHERE e->>'resident' IS NOT NULL
                                AND NOT EXISTS (SELECT 1 FROM residents x
                                                 WHERE x.id = (e->>'resident')::bigint))$q$
       INTO fallback USING p;
    IF fallback THEN
        RETURN QUERY SELECT * FROM careline_submit_begin_many(p);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
    WITH input AS (
        SELECT (t.ord - 1)::integer AS i, t.v->>'key' AS k, decode(t.v->>'hash', 'hex') AS h,
               t.v->>'phone' AS ph, (t.v->>'resident')::bigint AS res, t.v->>'kind' AS kd,
               t.v->>'slot' AS sl, (t.v->>'date')::date AS dt, t.v->>'subtype' AS st,
               t.v->>'note' AS nt, t.v->>'urgency' AS ur, t.v->>'actor' AS act
          FROM jsonb_array_elements($1) WITH ORDINALITY AS t(v, ord)),
    matched AS (
        SELECT i.*, x.id AS rid, x.village_code AS vc, x.lat AS la, x.lon AS lo, x.name AS nm,
               x.address AS ad,
               CASE WHEN x.id IS NULL THEN '{}'::text[] ELSE careline_priority(x) END AS pr
          FROM input i
          -- LATERAL: one index probe per element (a join would hash all residents per batch)
          LEFT JOIN LATERAL (
              SELECT * FROM residents y
               WHERE y.id = coalesce(i.res, (SELECT z.id FROM residents z WHERE z.phone = i.ph))
               LIMIT 1 -- keeps the planner from flattening it back into a hash join
          ) x ON true),
    ins AS (
        INSERT INTO requests (idempotency_key, content_hash, resident_id, village_code,
                              caller_phone_masked, caller_phone_hash, kind, meal_slot,
                              service_date, care_subtype, note, urgency, priority, state,
                              reason)
        SELECT m.k, m.h, m.rid, m.vc,
               CASE WHEN m.ph IS NOT NULL THEN
                   left(m.ph, 3) || repeat('*', greatest(length(m.ph) - 7, 0)) || right(m.ph, 4)
               END,
               CASE WHEN m.ph IS NOT NULL THEN sha256(convert_to(m.ph, 'UTF8')) END,
               m.kd, m.sl, m.dt, m.st, m.nt, m.ur, m.pr,
               CASE WHEN m.rid IS NULL THEN 'not_registered' ELSE 'received' END,
               CASE WHEN m.rid IS NULL THEN 'caller is not a registered resident' END
          FROM matched m ORDER BY m.i
        RETURNING requests.id, requests.idempotency_key, requests.state::text AS s,
                  requests.reason AS rs),
    ev AS (
        INSERT INTO request_events (request_id, state, actor, reason)
        SELECT ins.id, ins.s, m.act, ins.rs FROM ins JOIN matched m ON m.k = ins.idempotency_key)
    SELECT m.i, 'new'::text, ins.id, ins.s, m.rid, m.vc::text, m.la, m.lo,
           array_to_string(m.pr, ','), NULL::bigint,
           CASE WHEN ins.s = 'received' THEN nextval('jobs_id_seq') END, 0, NULL::integer,
           NULL::bigint, NULL::bigint, NULL::text, m.nm, m.ad
      FROM ins JOIN matched m ON m.k = ins.idempotency_key
     ORDER BY m.i$q$ USING p;
END $$;

CREATE OR REPLACE FUNCTION careline_submit_finish_set(p jsonb)
    RETURNS TABLE (idx integer, state text, station_id bigint, job_id bigint, changed boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    fallback boolean;
BEGIN
    EXECUTE $q$SELECT EXISTS (SELECT 1 FROM jsonb_array_elements($1) e WHERE e->>'state' = 'dead_letter')
                  OR (SELECT count(DISTINCT e->>'request') FROM jsonb_array_elements($1) e)
                     <> jsonb_array_length($1)$q$
       INTO fallback USING p;
    IF fallback THEN
        RETURN QUERY SELECT * FROM careline_submit_finish_many(p);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
    WITH input AS (
        SELECT (t.ord - 1)::integer AS i, (t.v->>'request')::bigint AS rq,
               (t.v->>'job')::bigint AS jb, (t.v->>'station')::bigint AS sn,
               (t.v->>'attempt')::integer AS att, t.v->>'state' AS s,
               t.v->>'reason_code' AS rc, t.v->>'reason' AS rs, (t.v->>'travel')::integer AS tr,
               to_timestamp((t.v->>'ws')::bigint / 1000.0) AS ws,
               to_timestamp((t.v->>'we')::bigint / 1000.0) AS we,
               to_timestamp((t.v->>'expires')::bigint / 1000.0) AS ex, t.v->>'actor' AS act
          FROM jsonb_array_elements($1) WITH ORDINALITY AS t(v, ord)),
    upd AS (
        UPDATE requests r
           SET state = i.s,
               station_id = CASE WHEN i.s = 'queued' THEN i.sn ELSE r.station_id END,
               job_id = CASE WHEN i.s = 'queued' THEN i.jb ELSE r.job_id END,
               attempts = CASE WHEN i.s = 'queued' THEN i.att ELSE r.attempts END,
               travel_minutes = CASE WHEN i.s = 'queued' THEN i.tr ELSE r.travel_minutes END,
               window_start = CASE WHEN i.s = 'queued' THEN i.ws ELSE r.window_start END,
               window_end = CASE WHEN i.s = 'queued' THEN i.we ELSE r.window_end END,
               reason_code = CASE WHEN i.s = 'queued' THEN NULL ELSE i.rc END,
               reason = CASE WHEN i.s = 'queued' THEN NULL ELSE i.rs END
          FROM input i
         WHERE r.id = i.rq
           -- a CASE, not an OR: an OR of states lets the planner scan the partial indexes
           -- on state (all in-flight requests plus their dead entries) and hash-join them,
           -- 28 ms a batch under load; this way each element is one primary-key probe
           AND CASE WHEN i.s = 'waitlisted' THEN r.state = 'received'
                    ELSE r.state IN ('received', 'waitlisted') END
        RETURNING r.id),
    jobs_in AS (
        INSERT INTO jobs (id, request_id, station_id, attempt, state, travel_minutes,
                          offer_expires_at)
        SELECT i.jb, i.rq, i.sn, i.att, 'offered', i.tr, i.ex
          FROM upd JOIN input i ON i.rq = upd.id WHERE i.s = 'queued'),
    ev AS (
        INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                    reason, station_id)
        SELECT i.rq, CASE WHEN i.s = 'queued' THEN i.jb END, i.s,
               CASE WHEN i.s = 'queued' THEN 'offered' END, i.act,
               CASE WHEN i.s = 'queued' THEN NULL ELSE i.rc END,
               CASE WHEN i.s = 'queued' THEN NULL ELSE i.rs END,
               CASE WHEN i.s = 'queued' THEN i.sn END
          FROM upd JOIN input i ON i.rq = upd.id)
    SELECT i.i,
           CASE WHEN upd.id IS NOT NULL THEN i.s ELSE cur.state::text END,
           CASE WHEN upd.id IS NOT NULL THEN i.sn ELSE cur.station_id END,
           CASE WHEN upd.id IS NOT NULL THEN i.jb ELSE cur.job_id END,
           upd.id IS NOT NULL
      FROM input i
      LEFT JOIN upd ON upd.id = i.rq
      LEFT JOIN requests cur ON cur.id = i.rq
     ORDER BY i.i$q$ USING p;
END $$;

-- JobUpdates from station consoles, in order, in one transaction (one WAL flush for the
-- batch). Each element: {"job", "station" (null for admin), "action", "reason_code", "note",
-- "actor"}. An error aborts the batch; the daemon then retries its elements one by one.
CREATE OR REPLACE FUNCTION careline_job_update_many(p jsonb)
    RETURNS TABLE (idx integer, outcome text, job_state text, request_id bigint,
                   attempt integer, request_state text, redispatch boolean, welfare boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    n bigint;
BEGIN
    FOR e, n IN SELECT t.v, t.ord FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord) LOOP
        RETURN QUERY SELECT (n - 1)::integer, u.*
          FROM careline_job_update((e->>'job')::bigint, (e->>'station')::bigint, e->>'action',
                                   e->>'reason_code', e->>'note', e->>'actor') u;
    END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION careline_job_update_many(jsonb) TO careline_app;
