-- admin: the admin API's entry point and shared helpers (issue 14). dispatchd sends every
-- operation, from the protocol (AdminRequest) or HTTP (/v1/admin/...), as one call of
-- careline_admin(p jsonb):
--   p = {"op": "resident.register", "args": {...}, "records": [{...}, ...], "dry_run": bool,
--        "reason": "...", "principal_id": 12, "actor": "admin"}
-- and gets one jsonb back:
--   {"code": "OK" | "INVALID_ARGUMENT" | "NOT_FOUND" | "CONFLICT", "message": "...",
--    "errors": [{"field", "message", "record"}], "columns": [...], "rows": [[text, ...]],
--    "id": object id, "audit_id": audit row id}
-- Argument values may be JSON strings, numbers or booleans (the protocol sends text, HTTP
-- JSON may send either); lists are JSON arrays or comma-separated text. Every argument is
-- checked and every bad one named before anything is written; a change and its audit row
-- are one transaction (this function's). The per-object operations are in admin_*.sql.
-- SECURITY DEFINER: careline_app has no write grant on residents, stations, principals or
-- settings; it changes them only through these functions, which always audit.

-- ---- helpers ------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION careline_adm_err(errs jsonb, p_field text, p_msg text)
    RETURNS jsonb LANGUAGE sql IMMUTABLE
    RETURN errs || jsonb_build_array(jsonb_build_object('field', p_field, 'message', p_msg));

-- The text of an argument (a JSON string, number or boolean); NULL when absent or null.
CREATE OR REPLACE FUNCTION careline_adm_txt(a jsonb, k text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN jsonb_typeof(a -> k) IN ('object', 'array') THEN (a -> k)::text
                ELSE a ->> k END;

CREATE OR REPLACE FUNCTION careline_adm_is_int(v text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN v ~ '^-?[0-9]{1,15}$';

CREATE OR REPLACE FUNCTION careline_adm_is_num(v text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN v ~ '^-?[0-9]{1,12}(\.[0-9]{1,20})?$';

CREATE OR REPLACE FUNCTION careline_adm_is_bool(v text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN v IN ('true', 'false');

-- A list argument as text[]: a JSON array of strings, or comma-separated text ("" = empty).
CREATE OR REPLACE FUNCTION careline_adm_list(a jsonb, k text) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN jsonb_typeof(a -> k) = 'array'
                THEN ARRAY(SELECT btrim(x) FROM jsonb_array_elements_text(a -> k) x)
                WHEN a ->> k IS NULL OR btrim(a ->> k) = '' THEN '{}'::text[]
                ELSE ARRAY(SELECT btrim(x) FROM unnest(string_to_array(a ->> k, ',')) x) END;

-- Plain text a person typed: 1..maxlen characters, no control characters.
CREATE OR REPLACE FUNCTION careline_adm_text_ok(v text, maxlen integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN v IS NOT NULL AND length(btrim(v)) BETWEEN 1 AND maxlen AND v !~ '[[:cntrl:]]';

-- 13900001234 -> 139****1234 (the form requests.caller_phone_masked holds)
CREATE OR REPLACE FUNCTION careline_adm_mask_phone(v text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN left(v, 3) || repeat('*', greatest(length(v) - 7, 0)) || right(v, 4);

-- 张三丰 -> 张**: the family name only
CREATE OR REPLACE FUNCTION careline_adm_mask_name(v text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN left(v, 1) || repeat('*', greatest(length(v) - 1, 1));

-- Errors for arguments that the operation does not take.
CREATE OR REPLACE FUNCTION careline_adm_unknown(errs jsonb, a jsonb, allowed text[], p_op text)
    RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT jsonb_object_keys(a) ORDER BY 1 LOOP
        IF NOT k = ANY (allowed) THEN
            errs := careline_adm_err(errs, k, format('is not an argument of %s', p_op));
        END IF;
    END LOOP;
    RETURN errs;
END $$;

-- A positive integer id argument; errs gets why not.
CREATE OR REPLACE FUNCTION careline_adm_id(INOUT errs jsonb, a jsonb, k text, OUT v bigint)
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF careline_adm_txt(a, k) IS NULL THEN
        errs := careline_adm_err(errs, k, 'is required');
    ELSIF NOT careline_adm_is_int(careline_adm_txt(a, k)) OR careline_adm_txt(a, k)::bigint < 1 THEN
        errs := careline_adm_err(errs, k, 'must be a positive whole number');
    ELSE
        v := careline_adm_txt(a, k)::bigint;
    END IF;
END $$;

-- The answer shapes.
CREATE OR REPLACE FUNCTION careline_adm_invalid(errs jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    RETURN jsonb_build_object('code', 'INVALID_ARGUMENT', 'errors', errs, 'message',
        CASE WHEN jsonb_array_length(errs) = 1
             THEN format('%s %s', errs->0->>'field', errs->0->>'message')
             ELSE format('%s fields are not valid', jsonb_array_length(errs)) END);

CREATE OR REPLACE FUNCTION careline_adm_fail(p_code text, p_field text, p_msg text)
    RETURNS jsonb LANGUAGE sql IMMUTABLE
    RETURN jsonb_build_object('code', p_code, 'message', p_field || ' ' || p_msg, 'errors',
                              careline_adm_err('[]', p_field, p_msg));

-- {"columns": cols, "rows": [[obj->>col, ...] per object]} for an array of objects.
CREATE OR REPLACE FUNCTION careline_adm_table(objs jsonb, cols text[]) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    RETURN jsonb_build_object('code', 'OK', 'columns', to_jsonb(cols), 'rows',
        coalesce((SELECT jsonb_agg((SELECT jsonb_agg(o ->> c ORDER BY i)
                                      FROM unnest(cols) WITH ORDINALITY AS u(c, i)) ORDER BY n)
                    FROM jsonb_array_elements(objs) WITH ORDINALITY AS e(o, n)), '[]'));

-- One audit row; its id.
CREATE OR REPLACE FUNCTION careline_adm_audit(ctx jsonb, p_kind text, p_id text, p_before jsonb,
                                              p_after jsonb) RETURNS bigint
    LANGUAGE sql AS $$
    INSERT INTO admin_audit (principal_id, actor, object_kind, object_id, action, before,
                             after, reason)
    VALUES ((ctx ->> 'principal_id')::bigint, coalesce(ctx ->> 'actor', 'admin'), p_kind, p_id,
            ctx ->> 'op', p_before, p_after, ctx ->> 'reason')
    RETURNING id
$$;

-- A changed object's answer: the object after the change as one row, with the audit id.
CREATE OR REPLACE FUNCTION careline_adm_changed(p_id bigint, p_audit bigint, p_after jsonb,
                                                cols text[]) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    RETURN careline_adm_table(jsonb_build_array(p_after), cols)
           || jsonb_build_object('id', p_id, 'audit_id', p_audit);

-- ---- the audit log ------------------------------------------------------------------------

-- audit.query: object_kind, object_id, from, to (county calendar days), limit. Residents'
-- phone numbers and names are masked in what it shows.
CREATE OR REPLACE FUNCTION careline_adm_audit_query(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{object_kind,object_id,from,to,limit}',
                                       'audit.query');
    k text := careline_adm_txt(a, 'object_kind');
    oid text := careline_adm_txt(a, 'object_id');
    d_from text := careline_adm_txt(a, 'from');
    d_to text := careline_adm_txt(a, 'to');
    lim text := coalesce(careline_adm_txt(a, 'limit'), '100');
    t0 timestamptz;
    t1 timestamptz;
BEGIN
    IF k IS NOT NULL AND k NOT IN ('resident', 'station', 'token', 'setting') THEN
        errs := careline_adm_err(errs, 'object_kind', 'must be resident, station, token or setting');
    END IF;
    IF oid IS NOT NULL AND NOT careline_adm_text_ok(oid, 64) THEN
        errs := careline_adm_err(errs, 'object_id', 'must be 1 to 64 characters');
    END IF;
    IF d_from IS NOT NULL AND (d_from !~ '^\d{4}-\d{2}-\d{2}$' OR to_char(to_date(d_from, 'YYYY-MM-DD'), 'YYYY-MM-DD') <> d_from) THEN
        errs := careline_adm_err(errs, 'from', 'must be a date YYYY-MM-DD');
    END IF;
    IF d_to IS NOT NULL AND (d_to !~ '^\d{4}-\d{2}-\d{2}$' OR to_char(to_date(d_to, 'YYYY-MM-DD'), 'YYYY-MM-DD') <> d_to) THEN
        errs := careline_adm_err(errs, 'to', 'must be a date YYYY-MM-DD');
    END IF;
    IF NOT careline_adm_is_int(lim) OR lim::bigint NOT BETWEEN 1 AND 1000 THEN
        errs := careline_adm_err(errs, 'limit', 'must be a whole number from 1 to 1000');
    END IF;
    IF jsonb_array_length(errs) = 0 AND d_from IS NOT NULL AND d_to IS NOT NULL
       AND d_from::date > d_to::date THEN
        errs := careline_adm_err(errs, 'to', 'must not be before from');
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    t0 := CASE WHEN d_from IS NULL THEN '-infinity' ELSE careline_day_start(d_from::date) END;
    t1 := CASE WHEN d_to IS NULL THEN 'infinity' ELSE careline_day_start(d_to::date + 1) END;
    RETURN careline_adm_table(coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', x.id, 'at', to_char(x.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS+08:00'),
                   'actor', x.actor, 'principal_id', x.principal_id,
                   'object_kind', x.object_kind, 'object_id', x.object_id, 'action', x.action,
                   'reason', x.reason,
                   'before', careline_adm_audit_mask(x.object_kind, x.before)::text,
                   'after', careline_adm_audit_mask(x.object_kind, x.after)::text) ORDER BY x.id)
          FROM (SELECT * FROM admin_audit
                 WHERE (k IS NULL OR object_kind = k) AND (oid IS NULL OR object_id = oid)
                   AND at >= t0 AND at < t1
                 ORDER BY id DESC LIMIT lim::integer) x), '[]'),
        '{id,at,actor,principal_id,object_kind,object_id,action,reason,before,after}');
END $$;

CREATE OR REPLACE FUNCTION careline_adm_audit_mask(p_kind text, o jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN p_kind = 'resident' AND o IS NOT NULL
                THEN o || jsonb_build_object('phone', careline_adm_mask_phone(o ->> 'phone'),
                                             'name', careline_adm_mask_name(o ->> 'name'))
                ELSE o END;

-- ---- the entry point ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION careline_admin(p jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    op text := p ->> 'op';
    a jsonb := coalesce(p -> 'args', '{}');
    reads text[] := '{resident.find,resident.get,station.list,station.get,token.list,setting.list,audit.query}';
    changes text[] := '{resident.register,resident.update,resident.deactivate,resident.import,station.create,station.update,station.retire,station.import,token.issue,token.revoke,setting.set}';
    ctx jsonb;
    errs jsonb := '[]';
BEGIN
    IF op IS NULL OR NOT (op = ANY (reads) OR op = ANY (changes)) THEN
        RETURN careline_adm_fail('INVALID_ARGUMENT', 'op',
            format('must be one of %s', array_to_string(reads || changes, ', ')));
    END IF;
    IF jsonb_typeof(a) <> 'object' THEN
        RETURN careline_adm_fail('INVALID_ARGUMENT', 'args', 'must be an object');
    END IF;
    IF op = ANY (changes) AND NOT careline_adm_text_ok(p ->> 'reason', 500) THEN
        errs := careline_adm_err(errs, 'reason',
            'is required for every change: 1 to 500 characters saying why (it is audited)');
    END IF;
    ctx := jsonb_build_object('op', op, 'reason', btrim(p ->> 'reason'),
                              'principal_id', p -> 'principal_id', 'actor', p ->> 'actor',
                              'errors', errs, 'dry_run', coalesce((p ->> 'dry_run')::boolean, false),
                              'phone_hashes', coalesce(p -> 'phone_hashes', '{}'));
    RETURN CASE op
        WHEN 'resident.register' THEN careline_adm_resident_register(a, ctx)
        WHEN 'resident.update' THEN careline_adm_resident_update(a, ctx)
        WHEN 'resident.deactivate' THEN careline_adm_resident_deactivate(a, ctx)
        WHEN 'resident.find' THEN careline_adm_resident_find(a)
        WHEN 'resident.get' THEN careline_adm_resident_get(a)
        WHEN 'resident.import' THEN careline_adm_import(p -> 'records', ctx, 'resident.register')
        WHEN 'station.create' THEN careline_adm_station_create(a, ctx)
        WHEN 'station.update' THEN careline_adm_station_update(a, ctx)
        WHEN 'station.retire' THEN careline_adm_station_retire(a, ctx)
        WHEN 'station.list' THEN careline_adm_station_list(a)
        WHEN 'station.get' THEN careline_adm_station_get(a)
        WHEN 'station.import' THEN careline_adm_import(p -> 'records', ctx, 'station.create')
        WHEN 'token.issue' THEN careline_adm_token_issue(a, ctx)
        WHEN 'token.list' THEN careline_adm_token_list(a)
        WHEN 'token.revoke' THEN careline_adm_token_revoke(a, ctx)
        WHEN 'setting.set' THEN careline_adm_setting_set(a, ctx)
        WHEN 'setting.list' THEN careline_adm_setting_list(a)
        WHEN 'audit.query' THEN careline_adm_audit_query(a) END;
END $$;

-- Imports: every record through the operation (records numbered from 1 in the errors); any
-- bad record, or a dry run, rolls every record back (the block's savepoint), so a file is
-- written whole or not at all.
CREATE OR REPLACE FUNCTION careline_adm_import(recs jsonb, ctx jsonb, p_op text) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := ctx -> 'errors';
    r jsonb;
    n integer := 0;
    res jsonb;
    ids jsonb := '[]';
    e jsonb;
BEGIN
    IF recs IS NULL OR jsonb_typeof(recs) <> 'array' OR jsonb_array_length(recs) = 0 THEN
        RETURN careline_adm_invalid(careline_adm_err(errs, 'records', 'must hold at least one record'));
    END IF;
    IF jsonb_array_length(recs) > 5000 THEN
        RETURN careline_adm_invalid(careline_adm_err(errs, 'records', 'must hold at most 5000 records (split the file)'));
    END IF;
    ctx := jsonb_set(ctx, '{op}', to_jsonb(p_op)) || '{"errors": []}';
    BEGIN
        FOR r IN SELECT x FROM jsonb_array_elements(recs) x LOOP
            n := n + 1;
            IF jsonb_typeof(r) <> 'object' THEN
                errs := errs || jsonb_build_object('field', 'record', 'message', 'must be an object', 'record', n);
                CONTINUE;
            END IF;
            res := CASE p_op WHEN 'resident.register' THEN careline_adm_resident_register(r, ctx)
                             ELSE careline_adm_station_create(r, ctx) END;
            IF res ->> 'code' = 'OK' THEN
                ids := ids || jsonb_build_array(jsonb_build_object('record', n, 'id', res -> 'id'));
            ELSE
                FOR e IN SELECT x FROM jsonb_array_elements(res -> 'errors') x LOOP
                    errs := errs || (e || jsonb_build_object('record', n));
                END LOOP;
            END IF;
        END LOOP;
        IF jsonb_array_length(errs) > 0 OR (ctx ->> 'dry_run')::boolean THEN
            RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'careline import rollback';
        END IF;
    EXCEPTION WHEN raise_exception THEN
        IF SQLERRM <> 'careline import rollback' THEN
            RAISE;
        END IF;
    END;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs) || jsonb_build_object('message',
            format('%s of %s records have errors; nothing was written', 
                   (SELECT count(DISTINCT x ->> 'record') FROM jsonb_array_elements(errs) x), n));
    END IF;
    RETURN careline_adm_table(ids, '{record,id}') || jsonb_build_object('message',
        CASE WHEN (ctx ->> 'dry_run')::boolean
             THEN format('dry run: all %s records are valid; nothing was written', n)
             ELSE format('%s records written', n) END);
END $$;

REVOKE ALL ON FUNCTION careline_admin(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION careline_admin(jsonb) TO careline_app;
