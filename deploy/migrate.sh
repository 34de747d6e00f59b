#!/usr/bin/env bash
# migrate.sh CONNINFO — bring a careline database to this tree's schema, in ONE transaction
# (all of it applies, or nothing does), under an advisory lock (concurrent runs queue; each
# decides what to apply only once it holds the lock). Safe to run repeatedly. In order:
#
#   1. sql/base/*.sql        functions the tables are built on (column defaults, triggers);
#                            they read no table. Re-applied every run.
#   2. sql/migrations/NNN_*.sql   tables, indexes, types, roles, grants on tables: each
#                            applied once, recorded in schema_migrations(version, applied_at).
#   3. sql/functions/*.sql   every other function, re-applied every run (CREATE OR REPLACE).
#   4. sql/views/*.sql       views, re-applied every run (CREATE OR REPLACE VIEW).
#   5. careline_schema_version() is (re)written to return the highest migration number NNN:
#      the schema version dispatchd checks at start (daemon/store/schema.h).
#
# Files within a folder are applied in name order. Steps 3 and 4 run with
# check_function_bodies off (as pg_dump's output does: a function may read a view that step
# 4 creates, and a view may call a function); every careline SQL and PL/pgSQL function is
# then validated with the check on, so a broken body still fails the run.
# A database whose schema version is higher than this tree's is refused: an older checkout
# must not put its functions back over a newer schema.
#
#   CONNINFO   libpq conninfo of a superuser on the careline database,
#              e.g. "host=/tmp/x port=5599 user=postgres dbname=careline"
#   SQL_DIR    env, optional: the sql/ folder to apply (default: <repo>/sql)
#
# No file may contain BEGIN/COMMIT, or anything that cannot run inside a transaction block
# (CREATE INDEX CONCURRENTLY, VACUUM). A migration's version is its name without ".sql".
set -euo pipefail

usage() {
    echo "usage: $0 CONNINFO" >&2
    exit 2
}
die() {
    echo "migrate: $*" >&2
    exit 1
}
[ $# -eq 1 ] || usage
case "$1" in -h | --help) usage ;; esac
conninfo=$1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sql_dir=${SQL_DIR:-$here/../sql}
sql_dir=$(cd "$sql_dir" && pwd)

shopt -s nullglob
base=("$sql_dir"/base/*.sql)
migrations=("$sql_dir"/migrations/[0-9][0-9][0-9]_*.sql)
functions=("$sql_dir"/functions/*.sql)
views=("$sql_dir"/views/*.sql)
shopt -u nullglob
[ ${#migrations[@]} -gt 0 ] || die "no migrations in $sql_dir/migrations"

# The schema version: the highest migration number (each number used once).
version=0
seen=' '
for f in "${migrations[@]}"; do
    n=$(basename "$f")
    n=${n%%_*}
    case "$seen" in *" $n "*) die "two migrations numbered $n in $sql_dir/migrations" ;; esac
    seen="$seen$n "
    n=$((10#$n))
    if ((n > version)); then version=$n; fi
done
for f in "${base[@]}" "${migrations[@]}" "${functions[@]}" "${views[@]}"; do
    case "$f" in *"'"* | *'\'*) die "unsafe path: $f" ;; esac
done

# Any lock key will do as long as every migrator uses the same one.
lock_key="hashtext('careline.schema_migrations')"

script=$(mktemp)
trap 'rm -f "$script"' EXIT

include() { echo "\\i '$1'"; } # FILE (checked above: no quote or backslash in it)

{
    echo '\set ON_ERROR_STOP 1'
    echo '\set QUIET 1'
    echo "SET client_min_messages = warning;"
    echo "BEGIN;"
    echo "SELECT pg_advisory_xact_lock($lock_key) AS locked \\gset"
    cat <<EOF
DO \$\$
DECLARE
    v integer;
BEGIN
    IF to_regprocedure('careline_schema_version()') IS NOT NULL THEN
        EXECUTE 'SELECT careline_schema_version()' INTO v;
        IF v > $version THEN
            RAISE EXCEPTION 'the database has schema version %, newer than this tree''s ($version): deploy from the checkout that migrated it', v;
        END IF;
    END IF;
END \$\$;
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
EOF
    echo "\\echo migrate: base functions (${#base[@]} files)"
    for f in "${base[@]}"; do include "$f"; done
    for f in "${migrations[@]}"; do
        v=$(basename "$f" .sql)
        case "$v" in *[!A-Za-z0-9_]*) die "bad migration name: $f" ;; esac
        cat <<EOF
SELECT NOT EXISTS (SELECT FROM schema_migrations WHERE version = '$v') AS need \\gset
\\if :need
\\echo migrate: applying $v
$(include "$f")
INSERT INTO schema_migrations (version, applied_at) VALUES ('$v', now());
\\else
\\echo migrate: $v already applied
\\endif
EOF
    done
    echo "\\echo migrate: functions (${#functions[@]} files) and views (${#views[@]} files)"
    echo "SET LOCAL check_function_bodies = off;"
    for f in "${functions[@]}" "${views[@]}"; do include "$f"; done
    echo "SET LOCAL check_function_bodies = on;"
    cat <<EOF
DO \$\$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid, l.lanname FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
               JOIN pg_language l ON l.oid = p.prolang
              WHERE n.nspname = 'public' AND p.proname LIKE 'careline\\_%'
                AND l.lanname IN ('sql', 'plpgsql') LOOP
        IF f.lanname = 'sql' THEN
            PERFORM fmgr_sql_validator(f.oid);
        ELSE
            PERFORM plpgsql_validator(f.oid);
        END IF;
    END LOOP;
END \$\$;
CREATE OR REPLACE FUNCTION careline_schema_version() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN $version;
COMMENT ON FUNCTION careline_schema_version() IS
    'the highest migration applied (sql/migrations/); written by deploy/migrate.sh, checked by dispatchd at start';
\\echo migrate: schema version $version
COMMIT;
EOF
} >"$script"

# -X: ignore ~/.psqlrc; on any error psql stops and the transaction (and the lock with it)
# rolls back: the database stays as it was.
psql -X -q -d "$conninfo" -f "$script"
