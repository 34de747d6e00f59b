-- admin_stations: create, update, retire, list and get stations (careline_admin's station.*
-- operations; shapes in admin.sql). Arguments are named like the columns, plus
-- service_area (village codes the station serves explicitly; given = the whole new list).
-- Every change reaches every daemon's directory through the stations / service-area
-- triggers' NOTIFY on careline_stations (sql/base/triggers.sql), as any change does.
-- Retiring: the station is never matched again; its offers not yet accepted are rejected
-- ('station_closed', as when a station closes) and returned in "redispatch", so the daemon
-- gives their capacity back and offers them to the next station (the path a rejected offer
-- takes); jobs already accepted stay with the station to be finished.

CREATE OR REPLACE FUNCTION careline_adm_station_json(s stations) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN to_jsonb(s) - '{created_at,updated_at,synthetic,is_open,caregivers_on_duty,status_updated_at}'::text[]
           || jsonb_build_object('opens_at', to_char(s.opens_at, 'HH24:MI'),
                                 'closes_at', to_char(s.closes_at, 'HH24:MI'),
                                 'care_subtypes', array_to_string(s.care_subtypes, ','),
                                 'service_area', coalesce((SELECT string_agg(a.village_code, ',' ORDER BY a.village_code)
                                                             FROM station_service_area a
                                                            WHERE a.station_id = s.id), ''));

CREATE OR REPLACE FUNCTION careline_adm_station_cols() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN '{id,code,name,kind,town_code,village_code,lat,lon,offers_meal_delivery,offers_home_care,care_subtypes,meal_capacity_lunch,meal_capacity_dinner,caregivers,caregivers_certified,opens_at,closes_at,open_days,has_terminal,service_area,active}'::text[];

CREATE OR REPLACE FUNCTION careline_adm_station_fields() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN '{code,name,kind,town_code,village_code,lat,lon,offers_meal_delivery,offers_home_care,care_subtypes,meal_capacity_lunch,meal_capacity_dinner,caregivers,caregivers_certified,opens_at,closes_at,open_days,has_terminal,service_area}'::text[];

-- Checks m, a whole station record (the stored one merged with the arguments), field by
-- field, and normalises it (lists as arrays, defaults, coordinates from the village's or
-- town's centroid when not given). self: the station being updated (null for a new one).
CREATE OR REPLACE FUNCTION careline_adm_station_check(INOUT errs jsonb, INOUT m jsonb,
                                                      self bigint)
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text;
    k text;
    l text[];
    twn towns%ROWTYPE;
    vil villages%ROWTYPE;
    other bigint;
    bad text;
BEGIN
    v := careline_adm_txt(m, 'code');
    IF v IS NULL OR v !~ '^[A-Za-z0-9_.-]{1,32}$' THEN
        errs := careline_adm_err(errs, 'code', 'is required: 1 to 32 letters, digits, _ . or -');
    ELSE
        SELECT id INTO other FROM stations WHERE code = v AND id IS DISTINCT FROM self;
        IF other IS NOT NULL THEN
            errs := careline_adm_err(errs, 'code', format('is already the code of station %s', other));
            m := m || '{"_conflict": true}';
        END IF;
    END IF;
    IF NOT careline_adm_text_ok(careline_adm_txt(m, 'name'), 100) THEN
        errs := careline_adm_err(errs, 'name', 'is required: 1 to 100 characters, no control characters');
    END IF;
    v := careline_adm_txt(m, 'kind');
    IF v IS NULL OR v NOT IN ('town_centre', 'village_station', 'canteen', 'meal_point') THEN
        errs := careline_adm_err(errs, 'kind', 'must be town_centre, village_station, canteen or meal_point');
    END IF;
    v := careline_adm_txt(m, 'town_code');
    IF v IS NULL THEN
        errs := careline_adm_err(errs, 'town_code', 'is required');
    ELSE
        SELECT * INTO twn FROM towns WHERE code = v;
        IF NOT FOUND THEN
            errs := careline_adm_err(errs, 'town_code', 'is not a known town code (12 digits)');
        END IF;
    END IF;
    v := nullif(careline_adm_txt(m, 'village_code'), '');
    m := m || jsonb_build_object('village_code', v);
    IF v IS NULL THEN
        IF careline_adm_txt(m, 'kind') IS DISTINCT FROM 'town_centre' THEN
            errs := careline_adm_err(errs, 'village_code', 'is required unless kind is town_centre');
        END IF;
    ELSE
        SELECT * INTO vil FROM villages WHERE code = v;
        IF NOT FOUND THEN
            errs := careline_adm_err(errs, 'village_code', 'is not a known village code (12 digits)');
        ELSIF twn.code IS NOT NULL AND vil.town_code <> twn.code THEN
            errs := careline_adm_err(errs, 'village_code', format('is in town %s, not in town_code', vil.town_code));
        END IF;
    END IF;
    FOREACH k IN ARRAY '{lat,lon}'::text[] LOOP
        IF careline_adm_txt(m, k) IS NULL THEN
            IF coalesce(vil.code, twn.code) IS NOT NULL THEN
                m := m || jsonb_build_object(k, CASE WHEN vil.code IS NOT NULL
                                                     THEN CASE k WHEN 'lat' THEN vil.lat ELSE vil.lon END
                                                     ELSE CASE k WHEN 'lat' THEN twn.lat ELSE twn.lon END END);
            END IF;
        ELSIF NOT careline_adm_is_num(careline_adm_txt(m, k))
              OR abs(careline_adm_txt(m, k)::double precision) > (CASE k WHEN 'lat' THEN 90 ELSE 180 END) THEN
            errs := careline_adm_err(errs, k, CASE k WHEN 'lat' THEN 'must be a latitude in degrees (GCJ-02), -90 to 90'
                                                      ELSE 'must be a longitude in degrees (GCJ-02), -180 to 180' END);
        END IF;
    END LOOP;
    FOREACH k IN ARRAY '{offers_meal_delivery,offers_home_care,has_terminal}'::text[] LOOP
        IF careline_adm_txt(m, k) IS NULL THEN
            m := m || jsonb_build_object(k, false);
        ELSIF NOT careline_adm_is_bool(careline_adm_txt(m, k)) THEN
            errs := careline_adm_err(errs, k, 'must be true or false');
        END IF;
    END LOOP;
    FOREACH k IN ARRAY '{meal_capacity_lunch,meal_capacity_dinner,caregivers,caregivers_certified}'::text[] LOOP
        IF careline_adm_txt(m, k) IS NULL THEN
            m := m || jsonb_build_object(k, 0);
        ELSIF NOT careline_adm_is_int(careline_adm_txt(m, k)) OR careline_adm_txt(m, k)::bigint NOT BETWEEN 0 AND 100000 THEN
            errs := careline_adm_err(errs, k, 'must be a whole number from 0 to 100000');
        END IF;
    END LOOP;
    IF careline_adm_is_int(careline_adm_txt(m, 'caregivers_certified')) AND careline_adm_is_int(careline_adm_txt(m, 'caregivers'))
       AND careline_adm_txt(m, 'caregivers_certified')::bigint > careline_adm_txt(m, 'caregivers')::bigint THEN
        errs := careline_adm_err(errs, 'caregivers_certified', 'must not exceed caregivers');
    END IF;
    l := careline_adm_list(m, 'care_subtypes');
    SELECT string_agg(x, ', ') INTO bad FROM unnest(l) x
     WHERE x NOT IN ('bathing', 'cleaning', 'companionship', 'medical_escort', 'care_other');
    IF bad IS NOT NULL THEN
        errs := careline_adm_err(errs, 'care_subtypes', format('has unknown kinds (%s): use bathing, cleaning, companionship, medical_escort, care_other', bad));
    ELSIF cardinality(l) > 0 AND careline_adm_txt(m, 'offers_home_care') IS DISTINCT FROM 'true' THEN
        errs := careline_adm_err(errs, 'care_subtypes', 'needs offers_home_care true');
    END IF;
    m := m || jsonb_build_object('care_subtypes', to_jsonb(l));
    FOREACH k IN ARRAY '{opens_at,closes_at}'::text[] LOOP
        v := coalesce(careline_adm_txt(m, k), CASE k WHEN 'opens_at' THEN '07:00' ELSE '19:00' END);
        IF v !~ '^([01][0-9]|2[0-3]):[0-5][0-9](:00)?$' THEN
            errs := careline_adm_err(errs, k, 'must be a local time HH:MM');
        END IF;
        m := m || jsonb_build_object(k, v);
    END LOOP;
    v := careline_adm_txt(m, 'open_days');
    IF v IS NULL THEN
        m := m || '{"open_days": 127}';
    ELSIF NOT careline_adm_is_int(v) OR v::bigint NOT BETWEEN 0 AND 127 THEN
        errs := careline_adm_err(errs, 'open_days', 'must be a bit mask 0 to 127 (1 = Monday ... 64 = Sunday)');
    END IF;
    IF jsonb_array_length(errs) = 0 AND (m ->> 'closes_at')::time <= (m ->> 'opens_at')::time THEN
        errs := careline_adm_err(errs, 'closes_at', 'must be after opens_at');
    END IF;
    l := careline_adm_list(m, 'service_area');
    SELECT string_agg(x, ', ') INTO bad FROM unnest(l) x
     WHERE NOT EXISTS (SELECT FROM villages v WHERE v.code = x);
    IF bad IS NOT NULL THEN
        errs := careline_adm_err(errs, 'service_area', format('has unknown village codes (%s)', bad));
    END IF;
    m := m || jsonb_build_object('service_area', to_jsonb(l));
END $$;

-- Writes the station's service area when the arguments gave one.
CREATE OR REPLACE FUNCTION careline_adm_station_area(sid bigint, a jsonb, m jsonb) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT a ? 'service_area' THEN
        RETURN;
    END IF;
    DELETE FROM station_service_area
     WHERE station_id = sid
       AND NOT village_code = ANY (ARRAY(SELECT jsonb_array_elements_text(m -> 'service_area')));
    INSERT INTO station_service_area (station_id, village_code)
    SELECT sid, x FROM jsonb_array_elements_text(m -> 'service_area') x
    ON CONFLICT DO NOTHING;
END $$;

CREATE OR REPLACE FUNCTION careline_adm_station_create(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a, careline_adm_station_fields(),
                                       'station.create');
    m jsonb := a;
    s stations%ROWTYPE;
BEGIN
    SELECT * INTO errs, m FROM careline_adm_station_check(errs, m, NULL);
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs) || CASE WHEN m ? '_conflict' AND jsonb_array_length(errs) = 1
                                                  THEN '{"code": "CONFLICT"}'::jsonb ELSE '{}' END;
    END IF;
    INSERT INTO stations (code, name, town_code, village_code, kind, lat, lon,
                          offers_meal_delivery, offers_home_care, care_subtypes,
                          meal_capacity_lunch, meal_capacity_dinner, caregivers,
                          caregivers_certified, opens_at, closes_at, open_days, has_terminal)
    SELECT x.code, btrim(x.name), x.town_code, x.village_code, x.kind, x.lat, x.lon,
           x.offers_meal_delivery, x.offers_home_care, x.care_subtypes, x.meal_capacity_lunch,
           x.meal_capacity_dinner, x.caregivers, x.caregivers_certified, x.opens_at,
           x.closes_at, x.open_days, x.has_terminal
      FROM jsonb_populate_record(NULL::stations, m) x
    RETURNING * INTO s;
    PERFORM careline_adm_station_area(s.id, a, m);
    RETURN careline_adm_changed(s.id,
        careline_adm_audit(ctx, 'station', s.id::text, NULL, careline_adm_station_json(s)),
        careline_adm_station_json(s), careline_adm_station_cols());
END $$;

CREATE OR REPLACE FUNCTION careline_adm_station_update(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a,
                                       'id'::text || careline_adm_station_fields(), 'station.update');
    sid bigint;
    old stations%ROWTYPE;
    before jsonb;
    s stations%ROWTYPE;
    m jsonb;
BEGIN
    SELECT * INTO errs, sid FROM careline_adm_id(errs, a, 'id');
    IF sid IS NOT NULL THEN
        SELECT * INTO old FROM stations WHERE id = sid FOR UPDATE;
        IF NOT FOUND THEN
            RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a station (%s)', sid));
        END IF;
        before := careline_adm_station_json(old);
    END IF;
    IF (a - 'id') = '{}'::jsonb THEN
        errs := careline_adm_err(errs, 'id', 'names a station, but no field to change was given');
    END IF;
    IF old.id IS NOT NULL THEN
        m := before || (a - 'id');
        SELECT * INTO errs, m FROM careline_adm_station_check(errs, m, old.id);
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    UPDATE stations SET (code, name, town_code, village_code, kind, lat, lon,
                         offers_meal_delivery, offers_home_care, care_subtypes,
                         meal_capacity_lunch, meal_capacity_dinner, caregivers,
                         caregivers_certified, opens_at, closes_at, open_days, has_terminal) =
        (SELECT x.code, btrim(x.name), x.town_code, x.village_code, x.kind, x.lat, x.lon,
                x.offers_meal_delivery, x.offers_home_care, x.care_subtypes,
                x.meal_capacity_lunch, x.meal_capacity_dinner, x.caregivers,
                x.caregivers_certified, x.opens_at, x.closes_at, x.open_days, x.has_terminal
           FROM jsonb_populate_record(NULL::stations, m) x)
     WHERE id = sid RETURNING * INTO s;
    PERFORM careline_adm_station_area(sid, a, m);
    RETURN careline_adm_changed(s.id,
        careline_adm_audit(ctx, 'station', s.id::text, before, careline_adm_station_json(s)),
        careline_adm_station_json(s), careline_adm_station_cols());
END $$;

CREATE OR REPLACE FUNCTION careline_adm_station_retire(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a, '{id}', 'station.retire');
    sid bigint;
    old stations%ROWTYPE;
    s stations%ROWTYPE;
    j jobs%ROWTYPE;
    moved jsonb := '[]';
BEGIN
    SELECT * INTO errs, sid FROM careline_adm_id(errs, a, 'id');
    IF sid IS NOT NULL THEN
        SELECT * INTO old FROM stations WHERE id = sid FOR UPDATE;
        IF NOT FOUND THEN
            RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a station (%s)', sid));
        END IF;
        IF NOT old.active THEN
            errs := careline_adm_err(errs, 'id', format('station %s is already retired', sid));
        END IF;
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    UPDATE stations SET active = false WHERE id = sid RETURNING * INTO s;
    FOR j IN SELECT * FROM jobs WHERE station_id = sid AND state = 'offered' FOR UPDATE LOOP
        UPDATE jobs SET state = 'rejected', reason_code = 'station_closed',
               reason = 'the station was retired', finished_at = now() WHERE id = j.id;
        UPDATE requests SET state = 'received', reason_code = 'station_closed'
         WHERE id = j.request_id AND state = 'queued';
        INSERT INTO request_events (request_id, job_id, state, job_state, actor, reason_code,
                                    reason, station_id)
        SELECT j.request_id, j.id, q.state, 'rejected', 'admin', 'station_closed',
               'the station was retired', j.station_id FROM requests q WHERE q.id = j.request_id;
        moved := moved || jsonb_build_object('request_id', j.request_id, 'attempt', j.attempt);
    END LOOP;
    RETURN careline_adm_changed(s.id,
        careline_adm_audit(ctx, 'station', s.id::text, careline_adm_station_json(old),
                           careline_adm_station_json(s) || jsonb_build_object('offers_redispatched', jsonb_array_length(moved))),
        careline_adm_station_json(s), careline_adm_station_cols())
        || jsonb_build_object('redispatch', moved, 'message',
                              format('station %s retired; %s offers sent on to other stations', sid, jsonb_array_length(moved)));
END $$;

CREATE OR REPLACE FUNCTION careline_adm_station_list(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{town_code,village_code,active,limit}', 'station.list');
    tc text := careline_adm_txt(a, 'town_code');
    vc text := careline_adm_txt(a, 'village_code');
    act text := careline_adm_txt(a, 'active');
    lim text := coalesce(careline_adm_txt(a, 'limit'), '500');
BEGIN
    IF tc IS NOT NULL AND NOT EXISTS (SELECT FROM towns WHERE code = tc) THEN
        errs := careline_adm_err(errs, 'town_code', 'is not a known town code');
    END IF;
    IF vc IS NOT NULL AND NOT EXISTS (SELECT FROM villages WHERE code = vc) THEN
        errs := careline_adm_err(errs, 'village_code', 'is not a known village code');
    END IF;
    IF act IS NOT NULL AND NOT careline_adm_is_bool(act) THEN
        errs := careline_adm_err(errs, 'active', 'must be true or false');
    END IF;
    IF NOT careline_adm_is_int(lim) OR lim::bigint NOT BETWEEN 1 AND 5000 THEN
        errs := careline_adm_err(errs, 'limit', 'must be a whole number from 1 to 5000');
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    RETURN careline_adm_table(coalesce((
        SELECT jsonb_agg(careline_adm_station_json(s) ORDER BY s.id)
          FROM (SELECT * FROM stations y
                 WHERE (tc IS NULL OR y.town_code = tc) AND (vc IS NULL OR y.village_code = vc)
                   AND (act IS NULL OR y.active = act::boolean)
                 ORDER BY y.id LIMIT lim::integer) s), '[]'),
        careline_adm_station_cols());
END $$;

CREATE OR REPLACE FUNCTION careline_adm_station_get(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{id}', 'station.get');
    sid bigint;
    s stations%ROWTYPE;
BEGIN
    SELECT * INTO errs, sid FROM careline_adm_id(errs, a, 'id');
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    SELECT * INTO s FROM stations WHERE id = sid;
    IF NOT FOUND THEN
        RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a station (%s)', sid));
    END IF;
    RETURN careline_adm_table(jsonb_build_array(careline_adm_station_json(s)),
                              careline_adm_station_cols()) || jsonb_build_object('id', s.id);
END $$;
