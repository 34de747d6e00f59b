-- followup: the follow-up list of callers who are not registered (tables in
-- 009_followups.sql; created and counted by careline_submit_record_set in submit.sql).
-- The daemon lists and marks through the two functions below, passing the caller's scope:
-- p_station NULL for the admin (everything of the county), else a station id (only the
-- follow-ups of its villages: careline_station_villages). A follow-up whose
-- village is not known yet is the admin's alone.

-- The villages a station answers for: its own, those its service area lists, and for a
-- town centre (居家养老服务中心, which has no village) every village of its town.
CREATE OR REPLACE FUNCTION careline_station_villages(p_station bigint)
    RETURNS TABLE (village_code text)
    LANGUAGE sql STABLE
AS $$
    SELECT s.village_code::text FROM stations s
     WHERE s.id = p_station AND s.village_code IS NOT NULL
    UNION
    SELECT a.village_code::text FROM station_service_area a WHERE a.station_id = p_station
    UNION
    SELECT v.code::text FROM stations s JOIN villages v ON v.town_code = s.town_code
     WHERE s.id = p_station AND s.kind = 'town_centre'
$$;

-- One follow-up as the daemon returns it (list and mark), with its latest note.
CREATE OR REPLACE FUNCTION careline_followup_row(f followups)
    RETURNS TABLE (id bigint, phone_masked text, village_code text, village_name text,
                   town_code text, town_name text, first_call_ms bigint, last_call_ms bigint,
                   calls integer, state text, first_contact_ms bigint, resident_id bigint,
                   note text)
    LANGUAGE sql STABLE
AS $$
    SELECT f.id, f.phone_masked, coalesce(f.village_code::text, ''),
           coalesce((SELECT v.name FROM villages v WHERE v.code = f.village_code), ''),
           coalesce(f.town_code::text, ''),
           coalesce((SELECT t.name FROM towns t WHERE t.code = f.town_code), ''),
           (extract(epoch FROM f.first_call_at) * 1000)::bigint,
           (extract(epoch FROM f.last_call_at) * 1000)::bigint, f.calls, f.state,
           coalesce((extract(epoch FROM f.first_contact_at) * 1000)::bigint, 0),
           coalesce(f.resident_id, 0),
           coalesce((SELECT e.note FROM followup_events e
                      WHERE e.followup_id = f.id AND e.note <> ''
                      ORDER BY e.id DESC LIMIT 1), '')
$$;

-- The follow-ups of a county in the caller's scope, filtered by village, town and state
-- ('' = any), oldest first call first, after id p_after (paging), at most p_limit rows.
CREATE OR REPLACE FUNCTION careline_followup_list(p_county text, p_station bigint,
                                                  p_village text, p_town text, p_state text,
                                                  p_after bigint, p_limit integer)
    RETURNS TABLE (id bigint, phone_masked text, village_code text, village_name text,
                   town_code text, town_name text, first_call_ms bigint, last_call_ms bigint,
                   calls integer, state text, first_contact_ms bigint, resident_id bigint,
                   note text)
    LANGUAGE sql STABLE
AS $$
    SELECT r.* FROM followups f, LATERAL careline_followup_row(f) r
     WHERE f.county_code = p_county
       AND (p_station IS NULL
            OR f.village_code IN (SELECT c.village_code FROM careline_station_villages(p_station) c))
       AND (p_village = '' OR f.village_code = p_village)
       AND (p_town = '' OR f.town_code = p_town)
       AND (p_state = '' OR f.state = p_state)
       AND f.id > p_after
     ORDER BY f.id
     LIMIT p_limit
$$;

-- Marks follow-up p_id contacted, registered or declined with a note, in the caller's
-- scope; p_village ('' = unchanged) records where the caller lives, learnt on the call. One
-- event row per mark. outcome: 'ok' (the row follows), 'not_found' (no such follow-up in
-- the county), 'forbidden' (not in the station's villages, or the village given is not
-- one of them), 'unknown_village' (no such village in the county), 'registered' (already
-- registered: final).
CREATE OR REPLACE FUNCTION careline_followup_mark(p_id bigint, p_county text, p_station bigint,
                                                  p_state text, p_note text, p_village text,
                                                  p_actor text)
    RETURNS TABLE (outcome text, id bigint, phone_masked text, village_code text,
                   village_name text, town_code text, town_name text, first_call_ms bigint,
                   last_call_ms bigint, calls integer, state text, first_contact_ms bigint,
                   resident_id bigint, note text)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    f followups;
    v villages;
BEGIN
    SELECT * INTO f FROM followups x WHERE x.id = p_id AND x.county_code = p_county FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_station IS NOT NULL AND (f.village_code IS NULL OR f.village_code NOT IN (
            SELECT c.village_code FROM careline_station_villages(p_station) c)) THEN
        outcome := 'forbidden';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_village <> '' THEN
        SELECT * INTO v FROM villages x WHERE x.code = p_village AND x.county_code = p_county;
        IF NOT FOUND THEN
            outcome := 'unknown_village';
            RETURN NEXT;
            RETURN;
        END IF;
        IF p_station IS NOT NULL AND p_village NOT IN (
                SELECT c.village_code FROM careline_station_villages(p_station) c) THEN
            outcome := 'forbidden';
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF f.state = 'registered' THEN
        outcome := 'registered';
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE followups x
       SET state = p_state, first_contact_at = coalesce(x.first_contact_at, now()),
           village_code = CASE WHEN p_village <> '' THEN p_village ELSE x.village_code END,
           town_code = CASE WHEN p_village <> '' THEN v.town_code ELSE x.town_code END
     WHERE x.id = p_id
    RETURNING * INTO f;
    INSERT INTO followup_events (followup_id, state, actor, note, village_code)
    VALUES (p_id, p_state, p_actor, p_note, nullif(p_village, ''));
    RETURN QUERY SELECT 'ok', r.* FROM careline_followup_row(f) r;
END $$;

-- Registering a resident links their follow-up: the follow-up of the county with the same
-- phone HMAC (not linked yet) becomes 'registered' with the resident, and an event row says
-- so; its calls (followup_calls) are then the resident's earlier calls. The requests keep
-- their history: nothing in them is rewritten. SECURITY DEFINER: whoever may insert a
-- resident links the follow-up, without rights on the follow-up tables.
CREATE OR REPLACE FUNCTION careline_followup_registered() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    fid bigint;
BEGIN
    IF NEW.phone_hash IS NULL THEN
        RETURN NULL;
    END IF;
    FOR fid IN
        UPDATE followups f
           SET state = 'registered', resident_id = NEW.id,
               first_contact_at = coalesce(f.first_contact_at, now()),
               village_code = coalesce(f.village_code, NEW.village_code),
               town_code = CASE WHEN f.village_code IS NULL
                                THEN (SELECT v.town_code FROM villages v
                                       WHERE v.code = NEW.village_code)
                                ELSE f.town_code END
         WHERE f.phone_hash = NEW.phone_hash AND f.resident_id IS NULL
           AND f.county_code = left(NEW.village_code, 6)
        RETURNING f.id
    LOOP
        INSERT INTO followup_events (followup_id, state, actor, note, resident_id)
        VALUES (fid, 'registered', 'registration', '', NEW.id);
    END LOOP;
    RETURN NULL;
END $$;

-- In this file rather than the migration so that the function it runs is defined once.
CREATE OR REPLACE TRIGGER residents_followup
    AFTER INSERT OR UPDATE OF phone_hash ON residents
    FOR EACH ROW EXECUTE FUNCTION careline_followup_registered();

REVOKE ALL ON FUNCTION careline_followup_registered() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION careline_station_villages(bigint), careline_followup_row(followups),
    careline_followup_list(text, bigint, text, text, text, bigint, integer),
    careline_followup_mark(bigint, text, bigint, text, text, text, text) TO careline_app;
