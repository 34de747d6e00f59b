-- finish: requests that exist already — offered again after a reject or an expired offer,
-- waiting on the waitlist, or left 'received' by a crash — are moved to their matching
-- outcome ('queued' with a new job, 'waitlisted', 'rejected', 'dead_letter'), and a
-- caller's request can be cancelled. New submissions are written by submit.sql instead.
-- Every state change and its event row commit together, in one statement.

-- Moves a 'received' or 'waitlisted' request to its matching outcome. Idempotent: a request
-- already moved on (by another daemon, or cancelled meanwhile) is left alone and reported
-- with changed = false, so the caller can undo a Redis reservation nobody will use.
-- p_gen: the Redis generation the job's capacity was reserved in (007_redis_generation.sql).
DROP FUNCTION IF EXISTS careline_submit_finish(bigint, bigint, bigint, integer, text, text, text,
                                               integer, bigint, bigint, bigint, text);
CREATE OR REPLACE FUNCTION careline_submit_finish(
    p_request bigint, p_job bigint, p_station bigint, p_attempt integer, p_state text,
    p_reason_code text, p_reason text, p_travel integer, p_ws_ms bigint, p_we_ms bigint,
    p_expires_ms bigint, p_actor text, p_gen bigint)
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
                          offer_expires_at, redis_gen)
        VALUES (p_job, p_request, p_station, p_attempt, 'offered', p_travel,
                to_timestamp(p_expires_ms / 1000.0), p_gen)
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

-- Group commit: many requests' finish in one statement, so one transaction and one WAL
-- flush cover them all. Elements are processed in order. An error aborts the whole batch,
-- writing nothing; the daemon then retries its elements one by one, so one bad element
-- never holds back the others.
CREATE OR REPLACE FUNCTION careline_submit_finish_many(p jsonb)
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
                                      e->>'actor', (e->>'gen')::bigint) f;
    END LOOP;
END $$;

-- Set-based fast path for a batch: one multi-row statement instead of a loop of single-row
-- ones (a PL/pgSQL loop costs ~0.2 ms a request; this a fraction of it). It covers the
-- common case — every request distinct and not being dead-lettered — and hands anything
-- else to careline_submit_finish_many, whose careline_submit_finish remains the
-- definition.
--
-- Planning: an earlier version set plan_cache_mode = force_custom_plan on the batch
-- functions (PL/pgSQL caches plans per connection, and a generic plan made while
-- `requests` was small — hash join + sequential scan — would be kept as the table grows).
-- That setting also reached the foreign-key triggers these statements fire, which then
-- re-planned their lookup for every inserted row: about 45% of PostgreSQL's CPU under load
-- (perf: AfterTriggerEndQuery -> SPI_execute_snapshot -> standard_planner). So no batch
-- function sets plan_cache_mode: the statements here run through EXECUTE, which plans them
-- afresh each call, and everything else keeps its cached plans.
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
               to_timestamp((t.v->>'expires')::bigint / 1000.0) AS ex, t.v->>'actor' AS act,
               (t.v->>'gen')::bigint AS gn
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
                          offer_expires_at, redis_gen)
        SELECT i.jb, i.rq, i.sn, i.att, 'offered', i.tr, i.ex, i.gn
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

-- Cancels a request that is not final yet (by id, idempotency key, or the caller's latest
-- open request: p_phone finds a registered resident, p_phone_hash (the daemon's keyed hash
-- of the same number) an unregistered caller). Returns no row when there is no such request.
DROP FUNCTION IF EXISTS careline_cancel(bigint, text, text, text, text); -- before the hash
CREATE OR REPLACE FUNCTION careline_cancel(p_request bigint, p_key text, p_phone text,
                                           p_phone_hash bytea, p_reason text, p_actor text)
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
                    AND q.caller_phone_hash = p_phone_hash))
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

GRANT EXECUTE ON FUNCTION careline_submit_finish(bigint, bigint, bigint, integer, text, text,
    text, integer, bigint, bigint, bigint, text, bigint), careline_submit_finish_many(jsonb),
    careline_submit_finish_set(jsonb), careline_cancel(bigint, text, text, bytea, text, text)
    TO careline_app;
