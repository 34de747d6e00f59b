-- admin_settings: the programme's settings (careline_admin's setting.* operations), each
-- key with its range. Where each is followed (README "Administration"):
--   target_*                read by the bureau module at every coverage query: live;
--   service_circle_minutes  the analysts' views (sql/views/coverage.sql); the daemon's own
--                           circle is its config key circle_minutes;
--   detour_* / speed_*_kmh  travel_params (the SQL travel model, careline_travel_minutes);
--                           the daemon's model is its config keys of the same names;
--   booking_days, priority_reserve_pct  followed live by every dispatchd: a row here wins
--                           over its config key of the same name (careline_settings NOTIFY,
--                           daemon/server/settings_follow.c).

CREATE OR REPLACE FUNCTION careline_adm_setting_keys()
    RETURNS TABLE (key text, lo numeric, hi numeric, integral boolean, note text)
    LANGUAGE sql IMMUTABLE AS $$
    VALUES ('target_meal_village_coverage', 0.01, 1, false, '老年助餐配送餐服务覆盖村(社区) target (share)'),
           ('target_terminal_share', 0.01, 1, false, '居家养老服务站智能服务终端 target (share)'),
           ('target_certified_per_10k', 0.1, 1000, false, '每万名老年人拥有持证养老护理员 target'),
           ('service_circle_minutes', 1, 240, false, '城乡15分钟老年助餐服务圈 (minutes)'),
           ('detour_urban', 1, 5, false, 'road km per great-circle km, urban'),
           ('detour_rural', 1, 5, false, 'road km per great-circle km, rural'),
           ('detour_mountain', 1, 5, false, 'road km per great-circle km, mountain'),
           ('speed_urban_kmh', 1, 200, false, 'mean travel speed, urban'),
           ('speed_rural_kmh', 1, 200, false, 'mean travel speed, rural'),
           ('speed_mountain_kmh', 1, 200, false, 'mean travel speed, mountain'),
           ('booking_days', 0, 60, true, 'days ahead a meal may be booked'),
           ('priority_reserve_pct', 0, 100, true, 'share of capacity held for priority residents')
$$;

CREATE OR REPLACE FUNCTION careline_adm_setting_value(k text) RETURNS text
    LANGUAGE sql STABLE
    RETURN CASE WHEN k ~ '^(detour|speed)_'
                THEN (SELECT CASE WHEN k LIKE 'detour_%' THEN t.detour::text ELSE t.speed_kmh::text END
                        FROM travel_params t
                       WHERE t.area_kind = regexp_replace(k, '^(detour|speed)_([a-z]+).*$', '\2'))
                ELSE (SELECT s.value FROM settings s WHERE s.key = k) END;

CREATE OR REPLACE FUNCTION careline_adm_setting_set(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a, '{key,value}', 'setting.set');
    k text := careline_adm_txt(a, 'key');
    v text := careline_adm_txt(a, 'value');
    d record;
    before text;
BEGIN
    SELECT * INTO d FROM careline_adm_setting_keys() s WHERE s.key = k;
    IF NOT FOUND THEN
        errs := careline_adm_err(errs, 'key', format('must be one of %s',
                    (SELECT string_agg(s.key, ', ') FROM careline_adm_setting_keys() s)));
    ELSIF v IS NULL THEN
        errs := careline_adm_err(errs, 'value', 'is required');
    ELSIF NOT (CASE WHEN d.integral THEN careline_adm_is_int(v) ELSE careline_adm_is_num(v) END)
          OR v::numeric NOT BETWEEN d.lo AND d.hi THEN
        errs := careline_adm_err(errs, 'value', format('must be a %s from %s to %s for %s',
                    CASE WHEN d.integral THEN 'whole number' ELSE 'number' END, d.lo, d.hi, k));
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    before := careline_adm_setting_value(k);
    IF k ~ '^(detour|speed)_' THEN
        UPDATE travel_params
           SET detour = CASE WHEN k LIKE 'detour_%' THEN v::double precision ELSE detour END,
               speed_kmh = CASE WHEN k LIKE 'speed_%' THEN v::double precision ELSE speed_kmh END,
               updated_at = now()
         WHERE area_kind = regexp_replace(k, '^(detour|speed)_([a-z]+).*$', '\2');
    ELSE
        INSERT INTO settings (key, value, note) VALUES (k, v, d.note)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now();
    END IF;
    RETURN careline_adm_table(jsonb_build_array(jsonb_build_object('key', k, 'value', v, 'note', d.note)),
                              '{key,value,note}')
        || jsonb_build_object('audit_id',
               careline_adm_audit(ctx, 'setting', k, jsonb_build_object('value', before),
                                  jsonb_build_object('value', v)));
END $$;

CREATE OR REPLACE FUNCTION careline_adm_setting_list(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{}', 'setting.list');
BEGIN
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    RETURN careline_adm_table((SELECT jsonb_agg(jsonb_build_object(
                   'key', s.key, 'value', careline_adm_setting_value(s.key), 'min', s.lo,
                   'max', s.hi, 'note', s.note))
              FROM careline_adm_setting_keys() s), '{key,value,min,max,note}');
END $$;
