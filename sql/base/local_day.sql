-- local_day: the county's calendar day. All of mainland China is one zone (Asia/Shanghai),
-- so the zone is fixed here. requests.service_date defaults to careline_local_date(now()),
-- so these are in sql/base/ (applied before the migrations).

-- The county's calendar day of an instant. Declared IMMUTABLE so it can be used in index
-- expressions (the zone's rules have not changed since 1991).
CREATE OR REPLACE FUNCTION careline_local_date(ts timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (ts AT TIME ZONE 'Asia/Shanghai')::date;

-- First instant of a county calendar day; the day is [careline_day_start(d), careline_day_start(d + 1)).
CREATE OR REPLACE FUNCTION careline_day_start(d date) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (d::timestamp AT TIME ZONE 'Asia/Shanghai');

-- A local wall-clock time on a county day, e.g. careline_local_ts('2026-11-29', '11:00').
CREATE OR REPLACE FUNCTION careline_local_ts(d date, t time) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((d + t) AT TIME ZONE 'Asia/Shanghai');
