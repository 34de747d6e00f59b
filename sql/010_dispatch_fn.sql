-- 010_dispatch_fn: the dispatch core's writes, one statement (one round trip) each, so
-- every state change and its event row commit together.
--
-- A request's way: careline_submit_begin records it ('received', or 'not_registered') ->
-- the daemon matches and reserves capacity + enqueues in Redis (one Lua script, idempotent
-- per request and attempt) -> careline_submit_finish records 'queued' (with its job),
-- 'waitlisted' or 'rejected'. A crash after begin leaves 'received', which any daemon's
-- sweep resumes; the Redis script then returns the reservation it already made, so a
-- request is never queued twice.

-- 'received': recorded, not yet matched.
ALTER DOMAIN request_state DROP CONSTRAINT request_state_check;
ALTER DOMAIN request_state ADD CONSTRAINT request_state_check
    CHECK (VALUE IN ('received', 'not_registered', 'waitlisted', 'rejected', 'queued',
                     'accepted', 'en_route', 'delivered', 'done', 'failed', 'cancelled',
                     'dead_letter'));

CREATE INDEX requests_received_idx ON requests (created_at) WHERE state = 'received';
CREATE INDEX requests_waitlisted_idx ON requests (service_date, created_at)
    WHERE state = 'waitlisted';

-- The priority flags of a resident today: 独居, 失能, 高龄 (80+ this calendar year).
CREATE FUNCTION careline_priority(r residents) RETURNS text[]
    LANGUAGE sql STABLE
    RETURN array_remove(ARRAY[
        CASE WHEN r.lives_alone THEN 'lives_alone' END,
        CASE WHEN r.disabled THEN 'disabled' END,
        CASE WHEN extract(year FROM careline_local_date(now()))::int - r.birth_year >= 80
             THEN 'aged_80_plus' END], NULL);

CREATE TYPE careline_begin_result AS (
    outcome         text,      -- new | duplicate | conflict | unknown_resident
    request_id      bigint,
    state           text,
    resident_id     bigint,
    village_code    text,
    lat             double precision,
    lon             double precision,
    priority        text,      -- comma-separated flags
    station_id      bigint,
    job_id          bigint,    -- the live job (duplicates), else a fresh id for a new job
    attempts        integer,
    travel_minutes  integer,
    window_start_ms bigint,
    window_end_ms   bigint,
    reason_code     text,
    resident_name   text,
    address         text       -- the resident's address line (for the station's screen)
);

-- Records a submitted request. p_phone is the normalised caller number (digits) or NULL
-- when p_resident is given. The full number is stored only as a SHA-256 and a masked form.
CREATE FUNCTION careline_submit_begin(
    p_key text, p_hash bytea, p_phone text, p_resident bigint, p_kind text, p_slot text,
    p_date date, p_subtype text, p_note text, p_urgency text, p_actor text)
    RETURNS careline_begin_result
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r   requests%ROWTYPE;
    res residents%ROWTYPE;
    out careline_begin_result;
BEGIN
    FOR attempt IN 1..2 LOOP
        SELECT * INTO r FROM requests WHERE idempotency_key = p_key;
        IF FOUND THEN
            IF r.content_hash <> p_hash THEN
                out.outcome := 'conflict';
                out.request_id := r.id;
                RETURN out;
            END IF;
            SELECT * INTO res FROM residents WHERE id = r.resident_id;
            out := ('duplicate', r.id, r.state, res.id, res.village_code, res.lat, res.lon,
                    array_to_string(r.priority, ','), r.station_id,
                    CASE WHEN r.state = 'received' THEN nextval('jobs_id_seq') ELSE r.job_id END,
                    r.attempts, r.travel_minutes,
                    (extract(epoch FROM r.window_start) * 1000)::bigint,
                    (extract(epoch FROM r.window_end) * 1000)::bigint, r.reason_code,
                    res.name, res.address);
            RETURN out;
        END IF;

        IF p_resident IS NOT NULL THEN
            SELECT * INTO res FROM residents WHERE id = p_resident;
            IF NOT FOUND THEN
                out.outcome := 'unknown_resident';
                RETURN out;
            END IF;
        ELSE
            SELECT * INTO res FROM residents WHERE phone = p_phone;
        END IF;

        INSERT INTO requests (idempotency_key, content_hash, resident_id, village_code,
                              caller_phone_masked, caller_phone_hash, kind, meal_slot,
                              service_date, care_subtype, note, urgency, priority, state,
                              reason_code, reason)
        VALUES (p_key, p_hash, res.id, res.village_code,
                CASE WHEN p_phone IS NOT NULL THEN
                    left(p_phone, 3) || repeat('*', greatest(length(p_phone) - 7, 0))
                    || right(p_phone, 4) END,
                CASE WHEN p_phone IS NOT NULL THEN sha256(convert_to(p_phone, 'UTF8')) END,
                p_kind, p_slot, p_date, p_subtype, p_note, p_urgency,
                CASE WHEN res.id IS NULL THEN '{}' ELSE careline_priority(res) END,
                CASE WHEN res.id IS NULL THEN 'not_registered' ELSE 'received' END,
                NULL, CASE WHEN res.id IS NULL THEN 'caller is not a registered resident' END)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING * INTO r;
        IF FOUND THEN
            INSERT INTO request_events (request_id, state, actor, reason)
            VALUES (r.id, r.state, p_actor, r.reason);
            out := ('new', r.id, r.state, res.id, res.village_code, res.lat, res.lon,
                    array_to_string(r.priority, ','), NULL,
                    CASE WHEN r.state = 'received' THEN nextval('jobs_id_seq') END,
                    0, NULL, NULL, NULL, NULL, res.name, res.address);
            RETURN out;
        END IF;
        -- a concurrent submit with the same key won the insert: read its row
    END LOOP;
    RAISE EXCEPTION 'idempotency key % could not be recorded', p_key;
END $$;

-- Moves a 'received' or 'waitlisted' request to its matching outcome. Idempotent: a request
-- already moved on (by another daemon, or cancelled meanwhile) is left alone and reported
-- with changed = false, so the caller can undo a Redis reservation nobody will use.
CREATE FUNCTION careline_submit_finish(
    p_request bigint, p_job bigint, p_station bigint, p_attempt integer, p_state text,
    p_reason_code text, p_reason text, p_travel integer, p_ws_ms bigint, p_we_ms bigint,
    p_expires_ms bigint, p_actor text)
    RETURNS TABLE (state text, station_id bigint, job_id bigint, changed boolean)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r requests%ROWTYPE;
BEGIN
    SELECT * INTO r FROM requests WHERE id = p_request FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no request %', p_request;
    END IF;
    IF r.state NOT IN ('received', 'waitlisted')
       OR (r.state = 'waitlisted' AND p_state = 'waitlisted') THEN
        RETURN QUERY SELECT r.state::text, r.station_id, r.job_id, false;
        RETURN;
    END IF;
    IF p_state = 'queued' THEN
        INSERT INTO jobs (id, request_id, station_id, attempt, state, travel_minutes,
                          offer_expires_at)
        VALUES (p_job, p_request, p_station, p_attempt, 'offered', p_travel,
                to_timestamp(p_expires_ms / 1000.0))
        ON CONFLICT DO NOTHING;
        UPDATE requests SET state = 'queued', station_id = p_station, job_id = p_job,
               attempts = p_attempt, travel_minutes = p_travel,
               window_start = to_timestamp(p_ws_ms / 1000.0),
               window_end = to_timestamp(p_we_ms / 1000.0), reason_code = NULL, reason = NULL
         WHERE id = p_request;
        INSERT INTO request_events (request_id, job_id, state, job_state, actor, station_id)
        VALUES (p_request, p_job, 'queued', 'offered', p_actor, p_station);
    ELSE
        UPDATE requests SET state = p_state, reason_code = p_reason_code, reason = p_reason
         WHERE id = p_request;
        INSERT INTO request_events (request_id, state, actor, reason_code, reason)
        VALUES (p_request, p_state, p_actor, p_reason_code, p_reason);
        IF p_state = 'dead_letter' THEN
            INSERT INTO dead_letters (request_id, attempts, last_reason, last_reason_code)
            VALUES (p_request, r.attempts, p_reason, p_reason_code)
            ON CONFLICT (request_id) DO NOTHING;
        END IF;
    END IF;
    RETURN QUERY SELECT p_state, p_station, p_job, true;
END $$;

-- Cancels a request that is not final yet (by id, idempotency key, or the caller's latest
-- open request). Returns no row when there is no such request.
CREATE FUNCTION careline_cancel(p_request bigint, p_key text, p_phone text, p_reason text,
                                p_actor text)
    RETURNS TABLE (request_id bigint, state text, cancelled boolean, job_id bigint,
                   station_id bigint, attempt integer)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r  requests%ROWTYPE;
    j  jobs%ROWTYPE;
    v_id bigint;
BEGIN
    IF p_request IS NOT NULL THEN
        v_id := p_request;
    ELSIF p_key IS NOT NULL THEN
        SELECT q.id INTO v_id FROM requests q WHERE q.idempotency_key = p_key;
    ELSE
        SELECT q.id INTO v_id FROM requests q         WHERE (q.resident_id = (SELECT x.id FROM residents x WHERE x.phone = p_phone)
                OR (q.resident_id IS NULL
                    AND q.caller_phone_hash = sha256(convert_to(p_phone, 'UTF8'))))
           AND q.state IN ('received', 'waitlisted', 'queued', 'accepted', 'en_route')
         ORDER BY q.created_at DESC LIMIT 1;
    END IF;
    SELECT * INTO r FROM requests q WHERE q.id = v_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF r.state NOT IN ('received', 'waitlisted', 'queued', 'accepted', 'en_route') THEN
        RETURN QUERY SELECT r.id, r.state::text, false, r.job_id, r.station_id, r.attempts;
        RETURN;
    END IF;
    UPDATE jobs SET state = 'cancelled', reason_code = 'cancelled_by_caller',
           reason = p_reason, finished_at = now()
     WHERE jobs.id = r.job_id AND jobs.state IN ('offered', 'accepted', 'en_route')
    RETURNING * INTO j;
    UPDATE requests SET state = 'cancelled', reason_code = 'cancelled_by_caller',
           reason = p_reason WHERE requests.id = r.id;
    INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                reason, station_id)
    VALUES (r.id, j.id, 'cancelled', CASE WHEN j.id IS NOT NULL THEN 'cancelled' END,
            p_actor, 'cancelled_by_caller', p_reason, r.station_id);
    RETURN QUERY SELECT r.id, 'cancelled'::text, true, r.job_id, r.station_id, r.attempts;
END $$;

GRANT EXECUTE ON FUNCTION careline_submit_begin(text, bytea, text, bigint, text, text, date,
    text, text, text, text), careline_submit_finish(bigint, bigint, bigint, integer, text, text,
    text, integer, bigint, bigint, bigint, text), careline_cancel(bigint, text, text, text, text),
    careline_priority(residents) TO careline_app;

-- Group commit: many submissions' begin (or finish) in one statement, so one transaction
-- and one WAL flush cover them all. Elements are processed in order (a repeated key later
-- in the same batch sees the earlier one). An error aborts the whole batch, writing
-- nothing; the daemon then retries its elements one by one, so one bad element never
-- holds back the others.
CREATE FUNCTION careline_submit_begin_many(p jsonb)
    RETURNS TABLE (idx integer, outcome text, request_id bigint, state text,
                   resident_id bigint, village_code text, lat double precision,
                   lon double precision, priority text, station_id bigint, job_id bigint,
                   attempts integer, travel_minutes integer, window_start_ms bigint,
                   window_end_ms bigint, reason_code text, resident_name text,
                   address text)
    LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    n bigint;
    b careline_begin_result;
BEGIN
    FOR e, n IN SELECT t.v, t.ord FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord) LOOP
        b := careline_submit_begin(e->>'key', decode(e->>'hash', 'hex'), e->>'phone',
                                   (e->>'resident')::bigint, e->>'kind', e->>'slot',
                                   (e->>'date')::date, e->>'subtype', e->>'note',
                                   e->>'urgency', e->>'actor');
        RETURN QUERY SELECT (n - 1)::integer, b.*;
    END LOOP;
END $$;

CREATE FUNCTION careline_submit_finish_many(p jsonb)
    RETURNS TABLE (idx integer, state text, station_id bigint, job_id bigint, changed boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    n bigint;
BEGIN
    FOR e, n IN SELECT t.v, t.ord FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord) LOOP
        RETURN QUERY SELECT (n - 1)::integer, f.*
          FROM careline_submit_finish((e->>'request')::bigint, (e->>'job')::bigint,
                                      (e->>'station')::bigint, (e->>'attempt')::integer,
                                      e->>'state', e->>'reason_code', e->>'reason',
                                      (e->>'travel')::integer, (e->>'ws')::bigint,
                                      (e->>'we')::bigint, (e->>'expires')::bigint,
                                      e->>'actor') f;
    END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION careline_submit_begin_many(jsonb), careline_submit_finish_many(jsonb)
    TO careline_app;

-- Set-based fast paths for a batch: one multi-row statement instead of a loop of single-row
-- ones (a PL/pgSQL loop costs ~0.2 ms a request; this a fraction of it). They cover the
-- common case — every key new and distinct / every request distinct and not being
-- dead-lettered — and hand anything else to the per-element functions above, which remain
-- the definition. A concurrent insert of the same key makes the statement fail; the daemon
-- then retries the batch one by one, which takes the per-element path.
CREATE FUNCTION careline_submit_begin_set(p jsonb)
    RETURNS TABLE (idx integer, outcome text, request_id bigint, state text,
                   resident_id bigint, village_code text, lat double precision,
                   lon double precision, priority text, station_id bigint, job_id bigint,
                   attempts integer, travel_minutes integer, window_start_ms bigint,
                   window_end_ms bigint, reason_code text, resident_name text,
                   address text)
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(p) e
                 JOIN requests q ON q.idempotency_key = e->>'key')
       OR (SELECT count(DISTINCT e->>'key') FROM jsonb_array_elements(p) e)
          <> jsonb_array_length(p)
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(p) e
                   WHERE e->>'resident' IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM residents x
                                      WHERE x.id = (e->>'resident')::bigint)) THEN
        RETURN QUERY SELECT * FROM careline_submit_begin_many(p);
        RETURN;
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT (t.ord - 1)::integer AS i, t.v->>'key' AS k, decode(t.v->>'hash', 'hex') AS h,
               t.v->>'phone' AS ph, (t.v->>'resident')::bigint AS res, t.v->>'kind' AS kd,
               t.v->>'slot' AS sl, (t.v->>'date')::date AS dt, t.v->>'subtype' AS st,
               t.v->>'note' AS nt, t.v->>'urgency' AS ur, t.v->>'actor' AS act
          FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord)),
    matched AS (
        SELECT i.*, x.id AS rid, x.village_code AS vc, x.lat AS la, x.lon AS lo, x.name AS nm,
               x.address AS ad,
               CASE WHEN x.id IS NULL THEN '{}'::text[] ELSE careline_priority(x) END AS pr          FROM input i
          -- LATERAL: one index probe per element (a join would hash all residents per batch)
          LEFT JOIN LATERAL (
              SELECT * FROM residents y               WHERE y.id = coalesce(i.res, (SELECT z.id FROM residents z WHERE z.phone = i.ph))
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
     ORDER BY m.i;
END $$;

CREATE FUNCTION careline_submit_finish_set(p jsonb)
    RETURNS TABLE (idx integer, state text, station_id bigint, job_id bigint, changed boolean)
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(p) e WHERE e->>'state' = 'dead_letter')
       OR (SELECT count(DISTINCT e->>'request') FROM jsonb_array_elements(p) e)
          <> jsonb_array_length(p) THEN
        RETURN QUERY SELECT * FROM careline_submit_finish_many(p);
        RETURN;
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT (t.ord - 1)::integer AS i, (t.v->>'request')::bigint AS rq,
               (t.v->>'job')::bigint AS jb, (t.v->>'station')::bigint AS sn,
               (t.v->>'attempt')::integer AS att, t.v->>'state' AS s,
               t.v->>'reason_code' AS rc, t.v->>'reason' AS rs, (t.v->>'travel')::integer AS tr,
               to_timestamp((t.v->>'ws')::bigint / 1000.0) AS ws,
               to_timestamp((t.v->>'we')::bigint / 1000.0) AS we,
               to_timestamp((t.v->>'expires')::bigint / 1000.0) AS ex, t.v->>'actor' AS act
          FROM jsonb_array_elements(p) WITH ORDINALITY AS t(v, ord)),
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
           AND (r.state = 'received' OR (r.state = 'waitlisted' AND i.s <> 'waitlisted'))
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
     ORDER BY i.i;
END $$;

GRANT EXECUTE ON FUNCTION careline_submit_begin_set(jsonb), careline_submit_finish_set(jsonb)
    TO careline_app;

-- PL/pgSQL caches plans per connection; a generic plan made while `requests` was small
-- (hash join + sequential scan) would be kept as the table grows. Plan these batch
-- statements afresh each call, with the table as it is now.
ALTER FUNCTION careline_submit_begin_set(jsonb) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION careline_submit_finish_set(jsonb) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION careline_submit_begin_many(jsonb) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION careline_submit_finish_many(jsonb) SET plan_cache_mode = force_custom_plan;
