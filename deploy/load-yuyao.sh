#!/usr/bin/env bash
# load-yuyao.sh CONNINFO [--seed N] [--force] — generate the Yuyao demo data set with
# careline-gen and load it into a migrated careline database, in one transaction.
#
# Idempotent: the sha256 of the generated CSVs is recorded in data_loads; a second run with
# the same data changes nothing. A changed data set (other seed, new generator) is upserted
# by natural keys (town/village code, station code, resident phone); synthetic stations that
# are no longer generated are set inactive (never deleted: jobs may point at them).
# --force upserts even when the recorded sha256 matches.
# --dir DIR loads CSVs already generated into DIR (e.g. by `careline-gen national`) instead
# of running the generator; --dataset NAME names the load in data_loads (default yuyao).
#
#   CARELINE_BIN  directory holding careline-gen (default: <repo>/bin, then build/rel/bin)
#   CARELINE_SEED default seed (20261129)
set -euo pipefail

usage() {
    echo "usage: $0 CONNINFO [--seed N] [--force] [--dir DIR] [--dataset NAME]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
conninfo=$1
shift
seed=${CARELINE_SEED:-20261129}
force=0
dir=
dataset=yuyao
while [ $# -gt 0 ]; do
    case "$1" in
    --seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
    --force) force=1; shift ;;
    --dir) [ $# -ge 2 ] || usage; dir=$2; shift 2 ;;
    --dataset) [ $# -ge 2 ] || usage; dataset=$2; shift 2 ;;
    *) usage ;;
    esac
done
case "$seed" in '' | *[!0-9]*) echo "load-yuyao: bad seed: $seed" >&2; exit 2 ;; esac

case "$dataset" in '' | *[!a-z0-9_-]*) echo "load-yuyao: bad dataset name" >&2; exit 2 ;; esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files="towns.csv villages.csv stations.csv station_service_area.csv residents.csv"

if [ -z "$dir" ]; then
    gen=
    for d in ${CARELINE_BIN:+"$CARELINE_BIN"} "$repo/bin" "$repo/build/rel/bin"; do
        if [ -x "$d/careline-gen" ]; then gen="$d/careline-gen"; break; fi
    done
    [ -n "$gen" ] || { echo "load-yuyao: careline-gen not found (run make, or set CARELINE_BIN)" >&2; exit 1; }
    "$gen" yuyao --data "$repo/data/yuyao" --seed "$seed" --out "$tmp"
    version=$("$gen" --version)
    dir=$tmp
else
    dir=$(cd "$dir" && pwd)
    version=pregenerated
    seed=unknown
    for f in $files; do
        [ -r "$dir/$f" ] || { echo "load-yuyao: missing $dir/$f" >&2; exit 1; }
    done
fi
sha=$(cd "$dir" && sha256sum $files | sha256sum | cut -d' ' -f1)

cat >"$tmp/load.sql" <<'SQL'
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT pg_advisory_xact_lock(hashtext('careline.data_loads')) AS locked \gset
SELECT EXISTS (SELECT FROM data_loads WHERE dataset = :'dataset' AND inputs_sha256 = :'sha')
       AND NOT :force AS done \gset
\if :done
\echo load-yuyao: :dataset already loaded (same data), nothing to do
\else
CREATE TEMP TABLE stg_towns (code text, name text, kind text, lat float8, lon float8,
    area_kind text, approx_location bool) ON COMMIT DROP;
CREATE TEMP TABLE stg_villages (code text, name text, town_code text, kind text, lat float8,
    lon float8, approx_location bool, area_kind text, elderly_population int,
    elderly_synthetic bool) ON COMMIT DROP;
CREATE TEMP TABLE stg_stations (code text, name text, town_code text, village_code text,
    kind text, lat float8, lon float8, offers_meal_delivery bool, offers_home_care bool,
    care_subtypes text[], meal_capacity_lunch int, meal_capacity_dinner int, caregivers int,
    caregivers_certified int, opens_at time, closes_at time, open_days smallint,
    has_terminal bool, active bool, synthetic bool) ON COMMIT DROP;
CREATE TEMP TABLE stg_area (station_code text, village_code text) ON COMMIT DROP;
CREATE TEMP TABLE stg_residents (phone text, name text, village_code text, address text,
    lat float8, lon float8, lives_alone bool, disabled bool, birth_year smallint,
    subsidy_card text, assistance_category text, synthetic bool) ON COMMIT DROP;
\copy stg_towns FROM 'towns.csv' WITH (FORMAT csv, HEADER true)
\copy stg_villages FROM 'villages.csv' WITH (FORMAT csv, HEADER true)
\copy stg_stations FROM 'stations.csv' WITH (FORMAT csv, HEADER true)
\copy stg_area FROM 'station_service_area.csv' WITH (FORMAT csv, HEADER true)
\copy stg_residents FROM 'residents.csv' WITH (FORMAT csv, HEADER true)

INSERT INTO towns AS t (code, name, kind, lat, lon, area_kind, approx_location)
SELECT code, name, kind, lat, lon, area_kind, approx_location FROM stg_towns
ON CONFLICT (code) DO UPDATE SET
    name = EXCLUDED.name, kind = EXCLUDED.kind, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
    area_kind = EXCLUDED.area_kind, approx_location = EXCLUDED.approx_location
WHERE (t.name, t.kind, t.lat, t.lon, t.area_kind, t.approx_location)
    IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.lat, EXCLUDED.lon,
                      EXCLUDED.area_kind, EXCLUDED.approx_location);

INSERT INTO villages AS v (code, name, town_code, kind, lat, lon, approx_location, area_kind,
                           elderly_population, elderly_synthetic)
SELECT code, name, town_code, kind, lat, lon, approx_location, area_kind, elderly_population,
       elderly_synthetic FROM stg_villages
ON CONFLICT (code) DO UPDATE SET
    name = EXCLUDED.name, town_code = EXCLUDED.town_code, kind = EXCLUDED.kind,
    lat = EXCLUDED.lat, lon = EXCLUDED.lon, approx_location = EXCLUDED.approx_location,
    area_kind = EXCLUDED.area_kind, elderly_population = EXCLUDED.elderly_population,
    elderly_synthetic = EXCLUDED.elderly_synthetic
WHERE (v.name, v.town_code, v.kind, v.lat, v.lon, v.approx_location, v.area_kind,
       v.elderly_population, v.elderly_synthetic)
    IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.town_code, EXCLUDED.kind, EXCLUDED.lat,
                      EXCLUDED.lon, EXCLUDED.approx_location, EXCLUDED.area_kind,
                      EXCLUDED.elderly_population, EXCLUDED.elderly_synthetic);

-- in file order, so a fresh database numbers the town centres 1..21 first
INSERT INTO stations AS s (code, name, town_code, village_code, kind, lat, lon,
    offers_meal_delivery, offers_home_care, care_subtypes, meal_capacity_lunch,
    meal_capacity_dinner, caregivers, caregivers_certified, opens_at, closes_at, open_days,
    has_terminal, active, synthetic)
SELECT code, name, town_code, NULLIF(village_code, ''), kind, lat, lon, offers_meal_delivery,
       offers_home_care, care_subtypes::care_subtype[], meal_capacity_lunch,
       meal_capacity_dinner, caregivers, caregivers_certified, opens_at, closes_at, open_days,
       has_terminal, active, synthetic
FROM (SELECT *, row_number() OVER () AS n FROM stg_stations) x ORDER BY n
ON CONFLICT (code) DO UPDATE SET
    name = EXCLUDED.name, town_code = EXCLUDED.town_code, village_code = EXCLUDED.village_code,
    kind = EXCLUDED.kind, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
    offers_meal_delivery = EXCLUDED.offers_meal_delivery,
    offers_home_care = EXCLUDED.offers_home_care, care_subtypes = EXCLUDED.care_subtypes,
    meal_capacity_lunch = EXCLUDED.meal_capacity_lunch,
    meal_capacity_dinner = EXCLUDED.meal_capacity_dinner, caregivers = EXCLUDED.caregivers,
    caregivers_certified = EXCLUDED.caregivers_certified, opens_at = EXCLUDED.opens_at,
    closes_at = EXCLUDED.closes_at, open_days = EXCLUDED.open_days,
    has_terminal = EXCLUDED.has_terminal, active = EXCLUDED.active,
    synthetic = EXCLUDED.synthetic
WHERE (s.name, s.town_code, s.village_code, s.kind, s.lat, s.lon, s.offers_meal_delivery,
       s.offers_home_care, s.care_subtypes, s.meal_capacity_lunch, s.meal_capacity_dinner,
       s.caregivers, s.caregivers_certified, s.opens_at, s.closes_at, s.open_days,
       s.has_terminal, s.active, s.synthetic)
    IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.town_code, EXCLUDED.village_code, EXCLUDED.kind,
       EXCLUDED.lat, EXCLUDED.lon, EXCLUDED.offers_meal_delivery, EXCLUDED.offers_home_care,
       EXCLUDED.care_subtypes, EXCLUDED.meal_capacity_lunch, EXCLUDED.meal_capacity_dinner,
       EXCLUDED.caregivers, EXCLUDED.caregivers_certified, EXCLUDED.opens_at,
       EXCLUDED.closes_at, EXCLUDED.open_days, EXCLUDED.has_terminal, EXCLUDED.active,
       EXCLUDED.synthetic);

-- only within this data set's towns: other loaded data sets are left alone
UPDATE stations SET active = false
WHERE synthetic AND active AND town_code IN (SELECT code FROM stg_towns)
  AND code NOT IN (SELECT code FROM stg_stations);

-- explicit service areas of this data set's synthetic stations: exactly the generated pairs
DELETE FROM station_service_area a USING stations s
WHERE a.station_id = s.id AND s.synthetic AND s.town_code IN (SELECT code FROM stg_towns)
  AND NOT EXISTS (SELECT FROM stg_area g
                  WHERE g.station_code = s.code AND g.village_code = a.village_code);
INSERT INTO station_service_area (station_id, village_code)
SELECT s.id, g.village_code FROM stg_area g JOIN stations s ON s.code = g.station_code
ON CONFLICT DO NOTHING;

INSERT INTO residents AS r (phone, name, village_code, address, lat, lon, lives_alone,
    disabled, birth_year, subsidy_card, assistance_category, synthetic)
SELECT phone, name, village_code, address, lat, lon, lives_alone, disabled, birth_year,
       NULLIF(subsidy_card, ''), NULLIF(assistance_category, ''), synthetic
FROM (SELECT *, row_number() OVER () AS n FROM stg_residents) x ORDER BY n
ON CONFLICT (phone) DO UPDATE SET
    name = EXCLUDED.name, village_code = EXCLUDED.village_code, address = EXCLUDED.address,
    lat = EXCLUDED.lat, lon = EXCLUDED.lon, lives_alone = EXCLUDED.lives_alone,
    disabled = EXCLUDED.disabled, birth_year = EXCLUDED.birth_year,
    subsidy_card = EXCLUDED.subsidy_card, assistance_category = EXCLUDED.assistance_category,
    synthetic = EXCLUDED.synthetic
WHERE (r.name, r.village_code, r.address, r.lat, r.lon, r.lives_alone, r.disabled,
       r.birth_year, r.subsidy_card, r.assistance_category, r.synthetic)
    IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.village_code, EXCLUDED.address, EXCLUDED.lat,
       EXCLUDED.lon, EXCLUDED.lives_alone, EXCLUDED.disabled, EXCLUDED.birth_year,
       EXCLUDED.subsidy_card, EXCLUDED.assistance_category, EXCLUDED.synthetic);

-- synthetic residents of these villages that the data set no longer has, unless referenced
DELETE FROM residents r
WHERE r.synthetic AND r.village_code IN (SELECT code FROM stg_villages)
  AND NOT EXISTS (SELECT FROM stg_residents g WHERE g.phone = r.phone)
  AND NOT EXISTS (SELECT FROM requests q WHERE q.resident_id = r.id)
  AND NOT EXISTS (SELECT FROM welfare_alerts w WHERE w.resident_id = r.id);

INSERT INTO data_loads (dataset, generator, seed, inputs_sha256, counts, loaded_at)
SELECT :'dataset', :'gen', :'seed', :'sha',
       jsonb_build_object('towns', (SELECT count(*) FROM stg_towns),
                          'villages', (SELECT count(*) FROM stg_villages),
                          'stations', (SELECT count(*) FROM stg_stations),
                          'station_service_area', (SELECT count(*) FROM stg_area),
                          'residents', (SELECT count(*) FROM stg_residents)),
       now()
ON CONFLICT (dataset) DO UPDATE SET
    generator = EXCLUDED.generator, seed = EXCLUDED.seed,
    inputs_sha256 = EXCLUDED.inputs_sha256, counts = EXCLUDED.counts,
    loaded_at = EXCLUDED.loaded_at;
\echo load-yuyao: :dataset loaded
\endif
\pset footer off
SELECT (SELECT count(*) FROM towns) AS towns,
       (SELECT count(*) FROM villages) AS villages,
       (SELECT count(*) FROM stations) AS stations,
       (SELECT count(*) FROM stations WHERE active) AS active_stations,
       (SELECT count(*) FROM station_service_area) AS service_area,
       (SELECT count(*) FROM residents) AS residents;
SQL

force_sql=false
[ "$force" = 1 ] && force_sql=true
# \copy reads the relative file names from psql's working directory
cd "$dir"
psql -X -q --single-transaction -d "$conninfo" -v sha="$sha" -v seed="$seed" \
    -v gen="$version" -v force="$force_sql" -v dataset="$dataset" -f "$tmp/load.sql"
