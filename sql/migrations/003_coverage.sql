-- 003_coverage: travel-time model parameters, explicit travel times, settings, coverage
-- snapshots and the record of data loads. The model's functions (careline_km,
-- careline_travel_minutes) are in sql/functions/travel.sql.

-- Default travel model (DESIGN.md "Coverage"): minutes = great-circle km × detour ÷ speed × 60,
-- with the parameters of the DESTINATION village's area kind. The daemon's built-in defaults
-- are the same numbers; this table is where an operator changes them.
CREATE TABLE travel_params (
    area_kind    area_kind PRIMARY KEY,
    detour       double precision NOT NULL CHECK (detour >= 1),
    speed_kmh    double precision NOT NULL CHECK (speed_kmh > 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO travel_params (area_kind, detour, speed_kmh) VALUES
    ('urban', 1.3, 20),
    ('rural', 1.4, 30),
    ('mountain', 1.8, 20);

-- Surveyed travel times; when a (station, village) pair is here it wins over the model.
CREATE TABLE travel_times (
    station_id   bigint NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    village_code division_code NOT NULL REFERENCES villages (code),
    minutes      double precision NOT NULL CHECK (minutes >= 0),
    source       text NOT NULL DEFAULT '',
    PRIMARY KEY (station_id, village_code)
);
CREATE INDEX travel_times_village_idx ON travel_times (village_code);

-- Small key/value settings shared by daemons and analysts (the daemon's config file may
-- override them; these are the programme's figures).
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    note       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings (key, value, note) VALUES
    ('service_circle_minutes', '15', '城乡15分钟老年助餐服务圈'),
    ('target_meal_village_coverage', '0.95', '老年助餐配送餐服务覆盖村(社区) by 2027'),
    ('target_terminal_share', '0.55', '居家养老服务站智能服务终端 by 2027'),
    ('target_certified_per_10k', '32', '每万名老年人拥有持证养老护理员 by 2027'),
    ('earth_radius_km', '6371.0088', 'mean Earth radius used by the great-circle distance');

-- Daily coverage figures, county-wide (scope 'county') and per town (scope = town code).
CREATE TABLE coverage_snapshots (
    day                    date NOT NULL,          -- county calendar day
    scope                  text NOT NULL CHECK (scope = 'county' OR scope ~ '^[0-9]{12}$'),
    villages               integer NOT NULL CHECK (villages >= 0),
    villages_covered       integer NOT NULL CHECK (villages_covered BETWEEN 0 AND villages),
    rate                   double precision NOT NULL CHECK (rate BETWEEN 0 AND 1),
    elderly                bigint NOT NULL CHECK (elderly >= 0),
    elderly_covered        bigint NOT NULL CHECK (elderly_covered BETWEEN 0 AND elderly),
    rate_elderly           double precision NOT NULL CHECK (rate_elderly BETWEEN 0 AND 1),
    target                 double precision NOT NULL CHECK (target > 0 AND target <= 1),
    service_circle_minutes integer NOT NULL DEFAULT 15 CHECK (service_circle_minutes > 0),
    inputs_version         text NOT NULL DEFAULT '',  -- which stations/params/data it used
    indicators             jsonb NOT NULL DEFAULT '{}', -- {"terminal_share": {"value":..,"target":..}, ...}
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, scope)
);

-- Which generated data set is loaded (deploy/load-yuyao.sh skips a load it has already done).
CREATE TABLE data_loads (
    dataset       text PRIMARY KEY,               -- 'yuyao', 'national'
    generator     text NOT NULL,                  -- e.g. 'careline-gen/1'
    seed          text NOT NULL,
    inputs_sha256 text NOT NULL,                  -- over the generated CSV files
    counts        jsonb NOT NULL DEFAULT '{}',
    loaded_at     timestamptz NOT NULL DEFAULT now()
);

-- Analyst views (coverage per village/town/county, realized figures per period) are in
-- sql/views/ and sql/functions/bureau.sql. They must expose no resident names or phone
-- numbers and be granted to careline_bureau.
