-- 001_core: reference data — towns, villages, stations and their service areas, residents,
-- plus the shared vocabulary (domains).
--
-- Conventions for every migration in sql/migrations/ (see also README.md, "Database"):
--   * a migration holds tables, indexes, domains, types, sequences, triggers, roles and
--     grants on tables; functions and views are in sql/base/, sql/functions/, sql/views/,
--     which deploy/migrate.sh re-applies on every run;
--   * a change to a table is a new numbered file, never an edit of an applied one; the
--     highest number is the schema version (daemon/store/schema.h must say the same);
--   * deploy/migrate.sh applies it inside its one transaction (no BEGIN/COMMIT here);
--   * everything lives in schema public (PG 15: no CREATE for PUBLIC there);
--   * every timestamp is timestamptz; the county's calendar day is Asia/Shanghai
--     (careline_local_date / careline_day_start in sql/base/local_day.sql);
--   * enum-like columns are lower-case text with CHECKs, named after the proto enums
--     (RequestState QUEUED -> 'queued', JOB_EN_ROUTE -> 'en_route', NO_CAPACITY -> 'no_capacity');
--   * coordinates are GCJ-02 degrees (lat, lon) as double precision;
--   * grants live in 004_roles.sql; a later migration adding a table must add its grants too.

-- ---------------------------------------------------------------------------------------
-- Vocabulary

CREATE DOMAIN area_kind AS text CHECK (VALUE IN ('urban', 'rural', 'mountain'));

CREATE DOMAIN division_code AS text CHECK (VALUE ~ '^[0-9]{12}$');

CREATE DOMAIN care_subtype AS text
    CHECK (VALUE IN ('bathing', 'cleaning', 'companionship', 'medical_escort', 'care_other'));

-- proto RequestState, lower-cased, plus 'received': recorded, not yet matched (a crash can
-- leave a request there; any daemon's sweep resumes it)
CREATE DOMAIN request_state AS text
    CHECK (VALUE IN ('received', 'not_registered', 'waitlisted', 'rejected', 'queued',
                     'accepted', 'en_route', 'delivered', 'done', 'failed', 'cancelled',
                     'dead_letter'));

-- proto JobState without the JOB_ prefix, lower-cased
CREATE DOMAIN job_state AS text
    CHECK (VALUE IN ('offered', 'accepted', 'en_route', 'delivered', 'done', 'rejected',
                     'failed', 'cancelled', 'expired'));

-- proto ReasonCode, lower-cased
CREATE DOMAIN reason_code AS text
    CHECK (VALUE IN ('no_station_in_range', 'no_capacity', 'station_closed', 'slot_passed',
                     'date_too_far', 'service_not_offered', 'station_full', 'no_staff',
                     'out_of_area', 'resident_not_home', 'resident_unwell', 'resident_refused',
                     'offer_timeout', 'cancelled_by_caller', 'reason_other'));

-- ---------------------------------------------------------------------------------------
-- Administrative divisions (NBS codes; see data/yuyao/ATTRIBUTION.md)

CREATE TABLE towns (
    code            division_code PRIMARY KEY,        -- 12 digits, e.g. 330281001000
    county_code     text GENERATED ALWAYS AS (left(code, 6)) STORED,
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('subdistrict', 'town', 'township')), -- 街道/镇/乡
    lat             double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),   -- GCJ-02
    lon             double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    area_kind       area_kind NOT NULL,               -- selects the travel-time parameters
    approx_location boolean NOT NULL DEFAULT false    -- point derived, not from the source
);
CREATE INDEX towns_county_idx ON towns (county_code);

CREATE TABLE villages (
    code               division_code PRIMARY KEY,
    county_code        text GENERATED ALWAYS AS (left(code, 6)) STORED,
    town_code          division_code NOT NULL REFERENCES towns (code),
    name               text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('village', 'community')), -- 村/社区
    lat                double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    approx_location    boolean NOT NULL DEFAULT false,
    area_kind          area_kind NOT NULL,
    elderly_population integer NOT NULL DEFAULT 0 CHECK (elderly_population >= 0), -- aged 60+
    elderly_synthetic  boolean NOT NULL DEFAULT true  -- true: invented by careline-gen, not a census figure
);
CREATE INDEX villages_town_idx ON villages (town_code);
CREATE INDEX villages_county_idx ON villages (county_code);

-- ---------------------------------------------------------------------------------------
-- Stations

CREATE TABLE stations (
    id                    bigserial PRIMARY KEY,
    code                  text NOT NULL UNIQUE,        -- stable external key (loader upserts on it)
    name                  text NOT NULL,
    town_code             division_code NOT NULL REFERENCES towns (code),
    village_code          division_code REFERENCES villages (code), -- null for a town centre
    kind                  text NOT NULL
        CHECK (kind IN ('town_centre', 'village_station', 'canteen', 'meal_point')),
    lat                   double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                   double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    offers_meal_delivery  boolean NOT NULL DEFAULT false,
    offers_home_care      boolean NOT NULL DEFAULT false,
    care_subtypes         care_subtype[] NOT NULL DEFAULT '{}', -- home-care kinds offered
    meal_capacity_lunch   integer NOT NULL DEFAULT 0 CHECK (meal_capacity_lunch >= 0),  -- meals per day
    meal_capacity_dinner  integer NOT NULL DEFAULT 0 CHECK (meal_capacity_dinner >= 0),
    caregivers            integer NOT NULL DEFAULT 0 CHECK (caregivers >= 0),
    caregivers_certified  integer NOT NULL DEFAULT 0
        CHECK (caregivers_certified >= 0 AND caregivers_certified <= caregivers),
    opens_at              time NOT NULL DEFAULT '07:00',  -- local (Asia/Shanghai) wall clock
    closes_at             time NOT NULL DEFAULT '19:00',
    open_days             smallint NOT NULL DEFAULT 127   -- bit (ISO weekday - 1): 1 = Mon ... 64 = Sun
        CHECK (open_days BETWEEN 0 AND 127),
    has_terminal          boolean NOT NULL DEFAULT false, -- equipped with a smart service terminal
    active                boolean NOT NULL DEFAULT true,  -- false: retired, never matched
    -- live status, written by the daemon from StationStatus (the rest is reference data)
    is_open               boolean NOT NULL DEFAULT true,
    caregivers_on_duty    integer CHECK (caregivers_on_duty >= 0),
    status_updated_at     timestamptz,
    synthetic             boolean NOT NULL DEFAULT false, -- invented by careline-gen
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (closes_at > opens_at),
    CHECK (offers_home_care OR cardinality(care_subtypes) = 0),
    CHECK (kind = 'town_centre' OR village_code IS NOT NULL)
);
CREATE INDEX stations_town_idx ON stations (town_code);
CREATE INDEX stations_village_idx ON stations (village_code);

CREATE TRIGGER stations_touch BEFORE UPDATE ON stations
    FOR EACH ROW EXECUTE FUNCTION careline_touch_updated_at();

-- Villages a station serves explicitly, beyond (or regardless of) the travel-time circle.
CREATE TABLE station_service_area (
    station_id   bigint NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    village_code division_code NOT NULL REFERENCES villages (code),
    PRIMARY KEY (station_id, village_code)
);
CREATE INDEX station_service_area_village_idx ON station_service_area (village_code);

-- every change of a station or its service area is announced on careline_stations, which
-- the daemon LISTENs on (careline_notify_station in sql/base/triggers.sql)
CREATE TRIGGER stations_notify AFTER INSERT OR UPDATE OR DELETE ON stations
    FOR EACH ROW EXECUTE FUNCTION careline_notify_station();
CREATE TRIGGER station_service_area_notify AFTER INSERT OR UPDATE OR DELETE ON station_service_area
    FOR EACH ROW EXECUTE FUNCTION careline_notify_station();

-- ---------------------------------------------------------------------------------------
-- Residents (personal data: never granted to the bureau role)

CREATE TABLE residents (
    id                  bigserial PRIMARY KEY,
    -- caller-ID key: digits only, mainland numbers in national form without +86/0086
    -- (e.g. 13900001234); the daemon normalises incoming caller IDs the same way
    phone               text NOT NULL UNIQUE CHECK (phone ~ '^[0-9]{5,15}$'),
    name                text NOT NULL,
    village_code        division_code NOT NULL REFERENCES villages (code),
    address             text NOT NULL DEFAULT '',
    lat                 double precision NOT NULL CHECK (lat BETWEEN -90 AND 90), -- home, GCJ-02
    lon                 double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    lives_alone         boolean NOT NULL DEFAULT false,   -- 独居
    disabled            boolean NOT NULL DEFAULT false,   -- 失能
    birth_year          smallint NOT NULL CHECK (birth_year BETWEEN 1900 AND 2100), -- 高龄 = 80+
    subsidy_card        text,                             -- 爱心卡 number, null = none
    assistance_category text CHECK (assistance_category IN ('extreme_hardship', 'minimum_allowance')),
    synthetic           boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX residents_village_idx ON residents (village_code);

CREATE TRIGGER residents_touch BEFORE UPDATE ON residents
    FOR EACH ROW EXECUTE FUNCTION careline_touch_updated_at();
