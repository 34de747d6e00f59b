-- admin_tokens: issue, list and revoke tokens (careline_admin's token.* operations). The
-- daemon makes the secret and passes only its SHA-256 (hex, "token_hash", never from the
-- client); the secret goes back to the caller once and is stored nowhere. Revoking sets
-- revoked_at, whose trigger (008_admin) NOTIFYs careline_principals: every daemon forgets
-- the token and closes the principal's open sessions.

CREATE OR REPLACE FUNCTION careline_adm_token_json(p principals) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN jsonb_build_object('id', p.id, 'role', p.role, 'station_id', p.station_id,
                              'name', p.name,
                              'created_at', to_char(p.created_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS+08:00'),
                              'revoked_at', to_char(p.revoked_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS+08:00'));

CREATE OR REPLACE FUNCTION careline_adm_token_issue(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a - 'token_hash',
                                       '{role,name,station_id}', 'token.issue');
    rl text := careline_adm_txt(a, 'role');
    sid text := nullif(careline_adm_txt(a, 'station_id'), '');
    h text := a ->> 'token_hash';
    p principals%ROWTYPE;
BEGIN
    IF rl IS NULL OR rl NOT IN ('gateway', 'station', 'bureau', 'admin') THEN
        errs := careline_adm_err(errs, 'role', 'must be gateway, station, bureau or admin');
    END IF;
    IF NOT careline_adm_text_ok(careline_adm_txt(a, 'name'), 64) THEN
        errs := careline_adm_err(errs, 'name', 'is required: a label of 1 to 64 characters (shown in logs)');
    END IF;
    IF rl = 'station' THEN
        IF sid IS NULL THEN
            errs := careline_adm_err(errs, 'station_id', 'is required for a station token');
        ELSIF NOT careline_adm_is_int(sid) OR NOT EXISTS (SELECT FROM stations WHERE id = sid::bigint AND active) THEN
            errs := careline_adm_err(errs, 'station_id', 'is not an active station');
        END IF;
    ELSIF sid IS NOT NULL AND rl IS NOT NULL THEN
        errs := careline_adm_err(errs, 'station_id', 'is only for a station token');
    END IF;
    IF h IS NULL OR h !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'token.issue without the daemon''s token_hash';
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    INSERT INTO principals (token_hash, role, station_id, name)
    VALUES (decode(h, 'hex'), rl, CASE WHEN rl = 'station' THEN sid::bigint END,
            btrim(careline_adm_txt(a, 'name')))
    RETURNING * INTO p;
    RETURN careline_adm_changed(p.id,
        careline_adm_audit(ctx, 'token', p.id::text, NULL, careline_adm_token_json(p)),
        careline_adm_token_json(p), '{id,role,station_id,name,created_at,revoked_at}');
END $$;

CREATE OR REPLACE FUNCTION careline_adm_token_list(a jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    errs jsonb := careline_adm_unknown('[]', a, '{role,revoked}', 'token.list');
    rl text := careline_adm_txt(a, 'role');
    rv text := coalesce(careline_adm_txt(a, 'revoked'), 'false');
BEGIN
    IF rl IS NOT NULL AND rl NOT IN ('gateway', 'station', 'bureau', 'admin') THEN
        errs := careline_adm_err(errs, 'role', 'must be gateway, station, bureau or admin');
    END IF;
    IF NOT careline_adm_is_bool(rv) THEN
        errs := careline_adm_err(errs, 'revoked', 'must be true or false');
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    RETURN careline_adm_table(coalesce((
        SELECT jsonb_agg(careline_adm_token_json(p) ORDER BY p.id) FROM principals p
         WHERE (rl IS NULL OR p.role = rl) AND (rv::boolean OR p.revoked_at IS NULL)), '[]'),
        '{id,role,station_id,name,created_at,revoked_at}');
END $$;

CREATE OR REPLACE FUNCTION careline_adm_token_revoke(a jsonb, ctx jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb := careline_adm_unknown(ctx -> 'errors', a, '{id}', 'token.revoke');
    pid bigint;
    old principals%ROWTYPE;
    p principals%ROWTYPE;
BEGIN
    SELECT * INTO errs, pid FROM careline_adm_id(errs, a, 'id');
    IF pid IS NOT NULL THEN
        SELECT * INTO old FROM principals WHERE id = pid FOR UPDATE;
        IF NOT FOUND THEN
            RETURN careline_adm_fail('NOT_FOUND', 'id', format('is not a token (%s)', pid));
        END IF;
        IF old.revoked_at IS NOT NULL THEN
            errs := careline_adm_err(errs, 'id', format('token %s is already revoked', pid));
        ELSIF pid = (ctx ->> 'principal_id')::bigint THEN
            errs := careline_adm_err(errs, 'id', 'is the token making this request: revoke it with another admin token');
        END IF;
    END IF;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN careline_adm_invalid(errs);
    END IF;
    UPDATE principals SET revoked_at = now() WHERE id = pid RETURNING * INTO p;
    RETURN careline_adm_changed(p.id,
        careline_adm_audit(ctx, 'token', p.id::text, careline_adm_token_json(old),
                           careline_adm_token_json(p)),
        careline_adm_token_json(p), '{id,role,station_id,name,created_at,revoked_at}');
END $$;

-- The helpers run inside careline_admin (SECURITY DEFINER, granted to careline_app in
-- admin.sql); nobody calls them directly. This file is the last admin*.sql applied.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.proname LIKE 'careline\_adm\_%' AND p.pronamespace = 'public'::regnamespace LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
