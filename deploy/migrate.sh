#!/usr/bin/env bash
# migrate.sh CONNINFO — apply sql/NNN_*.sql in order, each in its own transaction, recording
# each in schema_migrations(version, applied_at). Safe to run repeatedly (applied versions are
# skipped) and concurrently (one psql session holds a pg_advisory_lock for the whole run, and
# decides what to apply only after taking it).
#
#   CONNINFO   libpq conninfo of a superuser on the careline database,
#              e.g. "host=/tmp/x port=5599 user=postgres dbname=careline"
#   SQL_DIR    env, optional: where the migrations are (default: <repo>/sql)
#
# A migration file must not contain BEGIN/COMMIT; the version is its name without ".sql".
set -euo pipefail

usage() {
    echo "usage: $0 CONNINFO" >&2
    exit 2
}
[ $# -eq 1 ] || usage
case "$1" in -h | --help) usage ;; esac
conninfo=$1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sql_dir=${SQL_DIR:-$here/../sql}
sql_dir=$(cd "$sql_dir" && pwd)

shopt -s nullglob
files=("$sql_dir"/[0-9][0-9][0-9]_*.sql)
shopt -u nullglob
[ ${#files[@]} -gt 0 ] || { echo "migrate: no migrations in $sql_dir" >&2; exit 1; }

# Any lock key will do as long as every migrator uses the same one.
lock_key="hashtext('careline.schema_migrations')"

script=$(mktemp)
trap 'rm -f "$script"' EXIT

{
    echo '\set ON_ERROR_STOP 1'
    echo '\set QUIET 1'
    echo "SET client_min_messages = warning;"
    echo "SELECT pg_advisory_lock($lock_key) AS locked \\gset"
    echo "CREATE TABLE IF NOT EXISTS schema_migrations ("
    echo "    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
    for f in "${files[@]}"; do
        v=$(basename "$f" .sql)
        case "$v" in *[!A-Za-z0-9_]*) echo "migrate: bad migration name: $f" >&2; exit 1 ;; esac
        case "$f" in *"'"* | *'\'*) echo "migrate: unsafe path: $f" >&2; exit 1 ;; esac
        cat <<EOF
SELECT NOT EXISTS (SELECT FROM schema_migrations WHERE version = '$v') AS need \\gset
\\if :need
\\echo migrate: applying $v
BEGIN;
\\i '$f'
INSERT INTO schema_migrations (version, applied_at) VALUES ('$v', now());
COMMIT;
\\else
\\echo migrate: $v already applied
\\endif
EOF
    done
    echo "SELECT pg_advisory_unlock($lock_key) AS unlocked \\gset"
} >"$script"

# -X: ignore ~/.psqlrc; on any error psql stops, the open transaction rolls back, and the
# session's advisory lock goes with the connection.
psql -X -q -d "$conninfo" -f "$script"
