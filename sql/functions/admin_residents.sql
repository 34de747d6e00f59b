-- admin_residents: register, update, deactivate, find and get residents (careline_admin's
-- resident.* operations; shapes in admin.sql). Arguments are named like the columns.
-- Masking: resident.find lists (any number of people) show the phone as 139****1234 and the
-- name as 张**; resident.get (one person, by id, for the admin who edits the record) shows
-- them in full. Audit rows keep the record in full; audit.query masks it again.
-- A deactivated resident is reactivated by resident.update with active=true.

-- The record as the API shows it and the audit keeps it (no bookkeeping columns).
CREATE OR REPLACE FUNCTION careline_adm_resident_json(r residents) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN to_jsonb(r) - '{created_at,updated_at,synthetic,phone_hash}'::text[]
           || jsonb_build_object('village_name',
                                 (SELECT v.name FROM villages v WHERE v.code = r.village_code));

CREATE OR REPLACE FUNCTION careline_adm_resident_cols() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN '{id,phone,name,village_code,village_name,address,lat,lon,birth_year,lives_alone,disabled,assistance_category,subsidy_card,active}'::text[];

-- Checks m, a whole record (the stored one merged with the arguments), field by field;
-- normalises it (booleans, empty optional fields to null, coordinates from the village's
-- centroid when not given). self: the resident being updated (null for a new one).
CREATE OR REPLACE FUNCTION careline_adm_resident_check(INOUT errs jsonb, INOUT m jsonb,
                                                       self bigint)
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text;
    vil villages%ROWTYPE;
    other bigint;
BEGIN
    v := careline_adm_txt(m, 'phone');
    IF v IS NULL THEN
        errs := careline_adm_err(errs, 'phone', 'is required');
    ELSE
        v := regexp_replace(v, '[\s-]', '', 'g');
        v := regexp_replace(v, '^(\+86|0086)', '');
        IF v !~ '^[0-9]{5,15}$' THEN
            errs := careline_adm_err(errs, 'phone', 'must be 5 to 15 digits in national form, e.g. 13900001234');
        ELSE
            m := m || jsonb_build_object('phone', v);
            SELECT id INTO other FROM residents WHERE phone = v AND id IS DISTINCT FROM self;
            IF other IS NOT NULL THEN
                errs := careline_adm_err(errs, 'phone', format('is already the number of resident %s', other));
                m := m || '{"_conflict": true}';
            END IF;
        END IF;
    END IF;
    IF NOT careline_adm_text_ok(careline_adm_txt(m, 'name'), 64) THEN
        errs := careline_adm_err(errs, 'name', 'is required: 1 to 64 characters, no control characters');
    END IF;
    v := careline_adm_txt(m, 'village_code');
    IF v IS NULL THEN
        errs := careline_adm_err(errs, 'village_code', 'is required');
    ELSE
        SELECT * INTO vil FROM villages WHERE code = v;
        IF NOT FOUND THEN
            errs := careline_adm_err(errs, 'village_code', 'is not a known village code (12 digits)');
        END IF;
    END IF;
    IF careline_adm_txt(m, 'address') IS NULL THEN
        m := m || '{"address": ""}';
    ELSIF length(m ->> 'address') > 200 OR (m ->> 'address') ~ '[[:cntrl:]]' THEN
        errs := careline_adm_err(errs, 'address', 'must be at most 200 characters, no control characters');
    END IF;
    FOREACH v IN ARRAY '{lat,lon}'::text[] LOOP
        IF careline_adm_txt(m, v) IS NULL THEN
            IF vil.code IS NOT NULL THEN
                m := m || jsonb_build_object(v, CASE v WHEN 'lat' THEN vil.lat ELSE vil.lon END);
            END IF;
        ELSIF NOT careline_adm_is_num(careline_adm_txt(m, v))
              OR abs(careline_adm_txt(m, v)::double precision) > (CASE v WHEN 'lat' THEN 90 ELSE 180 END) THEN
            errs := careline_adm_err(errs, v, CASE v WHEN 'lat' THEN 'must be a latitude in degrees (GCJ-02), -90 to 90'
                                                      ELSE 'must be a longitude in degrees (GCJ-02), -180 to 180' END);
        END IF;
    END LOOP;
    v := careline_adm_txt(m, 'birth_year');
    IF v IS NULL THEN
        errs := careline_adm_err(errs, 'birth_year', 'is required');
    ELSIF NOT careline_adm_is_int(v) OR v::integer NOT BETWEEN 1900
          AND extract(year FROM careline_local_date(now()))::integer THEN
        errs := careline_adm_err(errs, 'birth_year', 'must be a year from 1900 to this year');
    END IF;
    FOREACH v IN ARRAY '{lives_alone,disabled,active}'::text[] LOOP
        IF careline_adm_txt(m, v) IS NULL THEN
            m := m || jsonb_build_object(v, v = 'active');
        ELSIF NOT careline_adm_is_bool(careline_adm_txt(m, v)) THEN
            errs := careline_adm_err(errs, v, 'must be true or false');
        END IF;
    END LOOP;
    v := nullif(careline_adm_txt(m, 'assistance_category'), '');
    IF v IS NOT NULL AND v NOT IN ('extreme_hardship', 'minimum_allowance') THEN
        errs := careline_adm_err(errs, 'assistance_category', 'must be extreme_hardship (特困), minimum_allowance (低保) or empty');
    END IF;
    m := m || jsonb_build_object('assistance_category', v);
    v := nullif(careline_adm_txt(m, 'subsidy_card'), '');
    IF v IS NOT NULL AND v !~ '^[A-Za-z0-9-]{1,32}$' THEN
        errs := careline_adm_err(errs, 'subsidy_card', 'must be 1 to 32 letters, digits or dashes, or empty for none');
    END IF;
    m := m || jsonb_build_object('subsidy_card', v);
END $$;

CREATE OR REPLACE FUNCTION careline_adm_resident_fields() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN '{phone,name,village_code,address,lat,lon,birth_year,lives_alone,disabled,assistance_category,subsidy_card}'::text[];

CREATE OR REPLACE FUNCTION careline_adm_resident_register(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a, careline_adm_resident_fields(),
                                       'resident.register');
    m jsonb := a - 'active';
    r residents%ROWTYPE;
BEGIN
    SELECT * INTO errs, m FROM careline_adm_resident_check(errs, m, NULL);
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs) || CASE WHEN m ? '_conflict' AND jsonb_array_length(errs) = 1
                                                  THEN '{"code": "CONFLICT"}'::jsonb ELSE '{}' END;
    END IF;
    INSERT INTO residents (phone, name, village_code, address, lat, lon, lives_alone, disabled,
                           birth_year, subsidy_card, assistance_category, phone_hash)
    SELECT x.phone, btrim(x.name), x.village_code, x.address, x.lat, x.lon, x.lives_alone,
           x.disabled, x.birth_year, x.subsidy_card, x.assistance_category,
           decode(ctx -> 'phone_hashes' ->> x.phone, 'hex')
      FROM jsonb_populate_record(NULL::residents, m) x
    RETURNING * INTO r;
    RETURN careline_adm_changed(r.id,
        careline_adm_audit(ctx, 'resident', r.id::text, NULL, careline_adm_resident_json(r)),
        careline_adm_resident_json(r), careline_adm_resident_cols());
END $$;

CREATE OR REPLACE FUNCTION careline_adm_resident_update(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a,
                                       '{id,active}'::text[] || careline_adm_resident_fields(),
                                       'resident.update');
    rid bigint;
    old residents%ROWTYPE;
    r residents%ROWTYPE;
    m jsonb;
BEGIN
    SELECT * INTO errs, rid FROM careline_adm_id(errs, a, 'id');
    IF rid IS NOT NULL THEN
        SELECT * INTO old FROM residents WHERE id = rid FOR UPDATE;
        IF NOT FOUND THEN
            RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a resident (%s)', rid));
        END IF;
    END IF;
    IF (a - 'id') = '{}'::jsonb THEN
        errs := careline_adm_err(errs, 'id', 'names a resident, but no field to change was given');
    END IF;
    m := CASE WHEN old.id IS NULL THEN '{}'::jsonb ELSE to_jsonb(old) END || (a - 'id');
    IF old.id IS NOT NULL THEN
        SELECT * INTO errs, m FROM careline_adm_resident_check(errs, m, old.id);
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    UPDATE residents SET (phone, name, village_code, address, lat, lon, lives_alone, disabled,
                          birth_year, subsidy_card, assistance_category, active,
                          deactivated_at, phone_hash) =
        (SELECT x.phone, btrim(x.name), x.village_code, x.address, x.lat, x.lon, x.lives_alone,
                x.disabled, x.birth_year, x.subsidy_card, x.assistance_category, x.active,
                CASE WHEN x.active THEN NULL ELSE coalesce(old.deactivated_at, now()) END,
                -- the daemon's HMAC of the (new) number; an unchanged number keeps its own
                CASE WHEN x.phone = old.phone
                     THEN coalesce(decode(ctx -> 'phone_hashes' ->> x.phone, 'hex'), old.phone_hash)
                     ELSE decode(ctx -> 'phone_hashes' ->> x.phone, 'hex') END
           FROM jsonb_populate_record(NULL::residents, m) x)
     WHERE id = old.id RETURNING * INTO r;
    RETURN careline_adm_changed(r.id,
        careline_adm_audit(ctx, 'resident', r.id::text, careline_adm_resident_json(old),
                           careline_adm_resident_json(r)),
        careline_adm_resident_json(r), careline_adm_resident_cols());
END $$;

CREATE OR REPLACE FUNCTION careline_adm_resident_deactivate(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a, '{id}', 'resident.deactivate');
    rid bigint;
    old residents%ROWTYPE;
    r residents%ROWTYPE;
BEGIN
    SELECT * INTO errs, rid FROM careline_adm_id(errs, a, 'id');
    IF rid IS NOT NULL THEN
        SELECT * INTO old FROM residents WHERE id = rid FOR UPDATE;
        IF NOT FOUND THEN
            RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a resident (%s)', rid));
        END IF;
        IF NOT old.active THEN
            errs := careline_adm_err(errs, 'id', format('resident %s is already deactivated', rid));
        END IF;
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    UPDATE residents SET active = false, deactivated_at = now() WHERE id = rid RETURNING * INTO r;
    RETURN careline_adm_changed(r.id,
        careline_adm_audit(ctx, 'resident', r.id::text, careline_adm_resident_json(old),
                           careline_adm_resident_json(r)),
        careline_adm_resident_json(r), careline_adm_resident_cols());
END $$;

-- resident.find: by phone (exact, normalised), name (prefix) or village; masked rows.
CREATE OR REPLACE FUNCTION careline_adm_resident_find(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{phone,name,village_code,limit}', 'resident.find');
    ph text := regexp_replace(regexp_replace(coalesce(careline_adm_txt(a, 'phone'), ''), '[\s-]', '', 'g'), '^(\+86|0086)', '');
    nm text := careline_adm_txt(a, 'name');
    vc text := careline_adm_txt(a, 'village_code');
    lim text := coalesce(careline_adm_txt(a, 'limit'), '50');
BEGIN
    IF ph = '' AND nm IS NULL AND vc IS NULL THEN
        errs := careline_adm_err(errs, 'phone', 'or name or village_code is required');
    END IF;
    IF ph <> '' AND ph !~ '^[0-9]{5,15}$' THEN
        errs := careline_adm_err(errs, 'phone', 'must be 5 to 15 digits');
    END IF;
    IF nm IS NOT NULL AND NOT careline_adm_text_ok(nm, 64) THEN
        errs := careline_adm_err(errs, 'name', 'must be 1 to 64 characters');
    END IF;
    IF vc IS NOT NULL AND NOT EXISTS (SELECT FROM villages WHERE code = vc) THEN
        errs := careline_adm_err(errs, 'village_code', 'is not a known village code');
    END IF;
    IF NOT careline_adm_is_int(lim) OR lim::bigint NOT BETWEEN 1 AND 500 THEN
        errs := careline_adm_err(errs, 'limit', 'must be a whole number from 1 to 500');
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    RETURN careline_adm_table(coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', r.id, 'phone', careline_adm_mask_phone(r.phone),
                   'name', careline_adm_mask_name(r.name), 'village_code', r.village_code,
                   'village_name', v.name, 'birth_year', r.birth_year,
                   'lives_alone', r.lives_alone, 'disabled', r.disabled,
                   'assistance_category', r.assistance_category, 'active', r.active) ORDER BY r.id)
          FROM (SELECT * FROM residents y
                 WHERE (ph = '' OR y.phone = ph)
                   AND (nm IS NULL OR y.name LIKE replace(replace(replace(nm, '\', '\\'), '%', '\%'), '_', '\_') || '%')
                   AND (vc IS NULL OR y.village_code = vc)
                 ORDER BY y.id LIMIT lim::integer) r
          JOIN villages v ON v.code = r.village_code), '[]'),
        '{id,phone,name,village_code,village_name,birth_year,lives_alone,disabled,assistance_category,active}');
END $$;

CREATE OR REPLACE FUNCTION careline_adm_resident_get(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{id}', 'resident.get');
    rid bigint;
    r residents%ROWTYPE;
BEGIN
    SELECT * INTO errs, rid FROM careline_adm_id(errs, a, 'id');
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    SELECT * INTO r FROM residents WHERE id = rid;
    IF NOT FOUND THEN
        RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a resident (%s)', rid));
    END IF;
    RETURN careline_adm_table(jsonb_build_array(careline_adm_resident_json(r)),
                              careline_adm_resident_cols()) || jsonb_build_object('id', r.id);
END $$;
