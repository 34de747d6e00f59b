-- submit: a new submission is written once, with its outcome.
--
-- The daemon first resolves a batch of submissions (careline_submit_resolve_set: read-only
-- apart from taking ids from the sequences), matches each, reserves capacity in Redis under
-- the request id it was given, and then records request, job and event in one statement
-- (careline_submit_record_set): one commit, no dead tuple. Before this, a submission cost
-- two transactions: a 'received' request and event, then an UPDATE that touched every
-- index of requests again, a job and a second event.
--
-- Nothing is acknowledged before that commit. A daemon that dies between the Redis
-- reservation and the commit leaves a reservation with no request behind it; the
-- reservation is listed in the county's pending set and the daemon's reconciler gives it
-- back once it is older than any record statement can take (orphan_grace_ms). Requests
-- that exist already (re-dispatch, waitlist, the sweep) take careline_submit_finish_set
-- (finish.sql).
--
-- The two batch statements below are static SQL, planned once per connection and kept:
-- their plans do not depend on the jsonb argument (estimated 100 elements whatever it
-- holds), and PostgreSQL re-plans a cached statement when ANALYZE updates the statistics of
-- a table it reads, so a plan made while the tables were small does not outlive their
-- growth. Planning them afresh each batch (EXECUTE, as careline_submit_finish_set does for
-- the rarer finish path) cost 1-3 ms a batch: at 1,000 requests a second it took the median
-- submit latency from 8 to 24 ms.

-- The priority flags of a resident today: 独居, 失能, 高龄 (80+ this calendar year).
CREATE OR REPLACE FUNCTION careline_priority(r residents) RETURNS text[]
    LANGUAGE sql STABLE
    RETURN array_remove(ARRAY[
        CASE WHEN r.lives_alone THEN 'lives_alone' END,
        CASE WHEN r.disabled THEN 'disabled' END,
        CASE WHEN extract(year FROM careline_local_date(now()))::int - r.birth_year >= 80
             THEN 'aged_80_plus' END], NULL);

-- Raised inside a batch statement when an element cannot be answered from the statement's
-- snapshot (its key was recorded concurrently, or twice in the batch): the daemon retries
-- the batch one element at a time, and the lone retry sees the committed row.
CREATE OR REPLACE FUNCTION careline_retry_alone(p_why text) RETURNS text
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'retry alone: %', p_why USING ERRCODE = 'serialization_failure';
END $$;

-- For each element ({"key", "hash" (hex SHA-256 of the content), "phone" or "resident",
-- ...}), what is known before anything is written: an existing request with that key
-- ('duplicate', or 'conflict' when its content hash differs; with the request's state, job
-- and window), a resident id that does not exist ('unknown_resident'), or 'new' with a
-- request id (and, for a registered caller, a job id) taken from the sequences, state
-- 'received' or 'not_registered' and the resident's data. A duplicate still 'received'
-- (a crash left it) gets a fresh job id for its next offer.
CREATE OR REPLACE FUNCTION careline_submit_resolve_set(p jsonb)
    RETURNS TABLE (idx integer, outcome text, request_id bigint, state text,
                   resident_id bigint, village_code text, lat double precision,
                   lon double precision, priority text, station_id bigint, job_id bigint,
                   attempts integer, travel_minutes integer, window_start_ms bigint,
                   window_end_ms bigint, reason_code text, resident_name text,
                   address text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT (t.ord - 1)::integer AS i, t.v->>'key' AS k, decode(t.v->>'hash', 'hex') AS h,
               t.v->>'phone' AS ph, (t.v->>'resident')::bigint AS res
          FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord)),
    look AS (
        SELECT i.*, q.id AS qid, q.content_hash AS qh, q.state AS qs, q.priority AS qp,
               q.station_id AS qst, q.job_id AS qjob, q.attempts AS qatt,
               q.travel_minutes AS qtr, q.window_start AS qws, q.window_end AS qwe,
               q.reason_code AS qrc, q.resident_id AS qres
          FROM input i
          LEFT JOIN LATERAL (SELECT * FROM requests r WHERE r.idempotency_key = i.k LIMIT 1) q
            ON true),
    who AS (
        SELECT l.*, x.id AS rid, x.village_code AS vc, x.lat AS la, x.lon AS lo, x.name AS nm,
               x.address AS ad,
               CASE WHEN x.id IS NULL THEN '{}'::text[] ELSE careline_priority(x) END AS pr
          FROM look l
          -- LATERAL + LIMIT: one index probe per element, never a hash of all residents
          LEFT JOIN LATERAL (
              SELECT * FROM residents y
               WHERE y.id = CASE WHEN l.qid IS NOT NULL THEN l.qres
                                 ELSE coalesce(l.res, (SELECT z.id FROM residents z
                                                        WHERE z.phone = l.ph
                                                          AND z.active)) END
               LIMIT 1
          ) x ON true)
    SELECT w.i,
           CASE WHEN w.qid IS NOT NULL THEN
                    CASE WHEN w.qh <> w.h THEN 'conflict' ELSE 'duplicate' END
                WHEN w.res IS NOT NULL AND w.rid IS NULL THEN 'unknown_resident'
                ELSE 'new' END,
           CASE WHEN w.qid IS NOT NULL THEN w.qid
                WHEN w.res IS NOT NULL AND w.rid IS NULL THEN NULL
                ELSE nextval('requests_id_seq') END,
           CASE WHEN w.qid IS NOT NULL THEN w.qs::text
                WHEN w.rid IS NULL THEN 'not_registered' ELSE 'received' END,
           w.rid, w.vc::text, w.la, w.lo,
           array_to_string(CASE WHEN w.qid IS NOT NULL THEN w.qp ELSE w.pr END, ','),
           w.qst,
           CASE WHEN w.qid IS NOT NULL THEN
                    CASE WHEN w.qs = 'received' THEN nextval('jobs_id_seq') ELSE w.qjob END
                WHEN w.rid IS NOT NULL THEN nextval('jobs_id_seq') END,
           coalesce(w.qatt, 0), w.qtr,
           (extract(epoch FROM w.qws) * 1000)::bigint,
           (extract(epoch FROM w.qwe) * 1000)::bigint, w.qrc::text, w.nm, w.ad
      FROM who w
     ORDER BY w.i;
END $$;

-- Records resolved submissions with their outcome: the request (with the id resolve gave
-- it), its job when queued, and one event. "phone_hash" is the daemon's HMAC-SHA256 of the
-- phone under a key the database never sees (hex; see 005_phone_hmac.sql). Elements: begin's fields plus "request", "job",
-- "station", "attempt", "state", "reason_code", "reason", "travel", "ws", "we", "expires"
-- (as careline_submit_finish_set, "gen" the Redis generation of the reservation: see
-- 007_redis_generation.sql) and the resolved "resident_id", "village", "priority";
-- "county" and the call's "lat"/"lon" (or null) place an unregistered caller's follow-up.
-- A key recorded meanwhile is not written again: changed = false, and the row describes
-- the request that holds the key (request_id is its id).
CREATE OR REPLACE FUNCTION careline_submit_record_set(p jsonb)
    RETURNS TABLE (idx integer, state text, station_id bigint, job_id bigint, changed boolean,
                   request_id bigint)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT (t.ord - 1)::integer AS i, (t.v->>'request')::bigint AS rq, t.v->>'key' AS k,
               decode(t.v->>'hash', 'hex') AS h, t.v->>'phone' AS ph,
               decode(t.v->>'phone_hash', 'hex') AS phh, (t.v->>'resident_id')::bigint AS rid,
               t.v->>'village' AS vc,
               coalesce(string_to_array(nullif(t.v->>'priority', ''), ','), '{}') AS pr,
               t.v->>'kind' AS kd, t.v->>'slot' AS sl, (t.v->>'date')::date AS dt,
               t.v->>'subtype' AS st, t.v->>'note' AS nt, t.v->>'urgency' AS ur,
               t.v->>'actor' AS act, (t.v->>'job')::bigint AS jb,
               (t.v->>'station')::bigint AS sn, (t.v->>'attempt')::integer AS att,
               t.v->>'state' AS s, t.v->>'reason_code' AS rc, t.v->>'reason' AS rs,
               (t.v->>'travel')::integer AS tr, (t.v->>'gen')::bigint AS gn,
               to_timestamp((t.v->>'ws')::bigint / 1000.0) AS ws,
               to_timestamp((t.v->>'we')::bigint / 1000.0) AS we,
               to_timestamp((t.v->>'expires')::bigint / 1000.0) AS ex,
               t.v->>'county' AS cty, (t.v->>'lat')::double precision AS la,
               (t.v->>'lon')::double precision AS lo
          FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord)),
    ins AS (
        INSERT INTO requests (id, idempotency_key, content_hash, resident_id, village_code,
                              caller_phone_masked, caller_phone_hash, kind, meal_slot,
                              service_date, care_subtype, note, urgency, priority, state,
                              reason_code, reason, station_id, job_id, attempts,
                              travel_minutes, window_start, window_end)
        SELECT i.rq, i.k, i.h, i.rid, i.vc,
               CASE WHEN i.ph IS NOT NULL THEN
                   left(i.ph, 3) || repeat('*', greatest(length(i.ph) - 7, 0)) || right(i.ph, 4)
               END,
               i.phh,
               i.kd, i.sl, i.dt, i.st, i.nt, i.ur, i.pr, i.s,
               CASE WHEN i.s = 'queued' THEN NULL ELSE i.rc END,
               CASE WHEN i.s = 'queued' THEN NULL ELSE i.rs END,
               CASE WHEN i.s = 'queued' THEN i.sn END,
               CASE WHEN i.s = 'queued' THEN i.jb END,
               CASE WHEN i.s = 'queued' THEN i.att ELSE 0 END,
               CASE WHEN i.s = 'queued' THEN i.tr END,
               CASE WHEN i.s = 'queued' THEN i.ws END,
               CASE WHEN i.s = 'queued' THEN i.we END
          FROM input i ORDER BY i.i
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING requests.id),
    jobs_in AS (
        INSERT INTO jobs (id, request_id, station_id, attempt, state, travel_minutes,
                          offer_expires_at, redis_gen)
        SELECT i.jb, i.rq, i.sn, i.att, 'offered', i.tr, i.ex, i.gn
          FROM ins JOIN input i ON i.rq = ins.id WHERE i.s = 'queued'),
    ev AS (
        INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                    reason, station_id)
        SELECT i.rq, CASE WHEN i.s = 'queued' THEN i.jb END, i.s,
               CASE WHEN i.s = 'queued' THEN 'offered' END, i.act,
               CASE WHEN i.s = 'queued' THEN NULL ELSE i.rc END,
               CASE WHEN i.s = 'queued' THEN NULL ELSE i.rs END,
               CASE WHEN i.s = 'queued' THEN i.sn END
          FROM ins JOIN input i ON i.rq = ins.id),
    -- unmet demand (009_followups.sql): the not_registered calls recorded by this statement
    -- (a duplicate key inserted nothing, so it never counts twice) join their caller's
    -- follow-up, one per number per county, created open on the first call. Where they live:
    -- the village nearest the call's location, when the gateway sent one.
    nr AS (
        SELECT i.rq, i.cty, i.phh,
               left(i.ph, 3) || repeat('*', greatest(length(i.ph) - 7, 0)) || right(i.ph, 4)
                   AS masked,
               nv.code AS vc, nv.town_code AS tc
          FROM ins JOIN input i ON i.rq = ins.id
          LEFT JOIN LATERAL (
              SELECT v.code, v.town_code FROM villages v
               WHERE i.la IS NOT NULL AND v.county_code = i.cty
               ORDER BY (v.lat - i.la) ^ 2 + ((v.lon - i.lo) * cos(radians(i.la))) ^ 2
               LIMIT 1) nv ON true
         WHERE i.s = 'not_registered' AND i.phh IS NOT NULL AND i.ph IS NOT NULL
           AND i.cty IS NOT NULL),
    fu AS (
        INSERT INTO followups AS f (county_code, phone_hash, phone_masked, village_code,
                                    town_code, first_call_at, last_call_at, calls)
        SELECT n.cty, n.phh, min(n.masked),
               (array_agg(n.vc ORDER BY n.rq DESC) FILTER (WHERE n.vc IS NOT NULL))[1],
               (array_agg(n.tc ORDER BY n.rq DESC) FILTER (WHERE n.vc IS NOT NULL))[1],
               now(), now(), count(*)
          FROM nr n GROUP BY n.cty, n.phh
        ON CONFLICT (county_code, phone_hash) DO UPDATE
           SET calls = f.calls + EXCLUDED.calls, last_call_at = EXCLUDED.last_call_at,
               village_code = coalesce(f.village_code, EXCLUDED.village_code),
               town_code = CASE WHEN f.village_code IS NULL THEN EXCLUDED.town_code
                                ELSE f.town_code END
        RETURNING f.id, f.county_code, f.phone_hash, xmax = 0 AS created),
    fu_ev AS (
        INSERT INTO followup_events (followup_id, state, actor)
        SELECT fu.id, 'open', 'gateway' FROM fu WHERE fu.created),
    fu_calls AS (
        INSERT INTO followup_calls (request_id, followup_id)
        SELECT n.rq, fu.id FROM nr n
          JOIN fu ON fu.county_code = n.cty AND fu.phone_hash = n.phh)
    SELECT i.i,
           CASE WHEN ins.id IS NOT NULL THEN i.s
                ELSE coalesce(cur.state::text, careline_retry_alone('key ' || i.k)) END,
           CASE WHEN ins.id IS NOT NULL THEN CASE WHEN i.s = 'queued' THEN i.sn END
                ELSE cur.station_id END,
           CASE WHEN ins.id IS NOT NULL THEN CASE WHEN i.s = 'queued' THEN i.jb END
                ELSE cur.job_id END,
           ins.id IS NOT NULL,
           coalesce(ins.id, cur.id)
      FROM input i
      LEFT JOIN ins ON ins.id = i.rq
      LEFT JOIN LATERAL (SELECT * FROM requests r WHERE r.idempotency_key = i.k
                            AND ins.id IS NULL LIMIT 1) cur ON true
     ORDER BY i.i;
END $$;

GRANT EXECUTE ON FUNCTION careline_priority(residents), careline_retry_alone(text),
    careline_submit_resolve_set(jsonb), careline_submit_record_set(jsonb) TO careline_app;
