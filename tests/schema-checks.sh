#!/usr/bin/env bash
# schema-checks.sh: set-up checks of the schema that tests/run.sh runs after the migrations.
#
#   tests/schema-checks.sh version CONNINFO   sql/migrations' highest number, daemon/store/
#                                             schema.h's CARELINE_SCHEMA_VERSION and the
#                                             database's careline_schema_version() agree
#   tests/schema-checks.sh reapply CONNINFO   deploy/migrate.sh puts back a function and a
#                                             view grant changed by hand, and a second run
#                                             changes no definition (functions, views, ACLs)
#
# CONNINFO: a superuser on a migrated careline database. Exit status 0 = the check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
die() {
    echo "schema-checks: $*" >&2
    exit 1
}
[[ $# -eq 2 ]] || die "usage: tests/schema-checks.sh {version|reapply} CONNINFO"
conninfo=$2
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$conninfo" -c "$1"; }

# Every careline function (definition, ACL, settings) and view (definition, ACL).
definitions() {
    sql "SELECT string_agg(d, E'\n' ORDER BY d) FROM (
           SELECT pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '-')
                  || ' config ' || coalesce(p.proconfig::text, '-') AS d
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND p.proname LIKE 'careline\_%'
           UNION ALL
           SELECT c.relname || ': ' || pg_get_viewdef(c.oid) || ' acl '
                  || coalesce(c.relacl::text, '-')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'v') x"
}

case $1 in
version)
    tree=$(find "$ROOT/sql/migrations" -name '[0-9][0-9][0-9]_*.sql' -printf '%f\n' | sort | tail -n 1)
    tree=$((10#${tree%%_*}))
    define=$(sed -n 's/^#define CARELINE_SCHEMA_VERSION *\([0-9]*\).*/\1/p' "$ROOT/daemon/store/schema.h")
    db=$(sql "SELECT careline_schema_version()")
    echo "sql/migrations: $tree, daemon/store/schema.h: ${define:-none}, database: $db"
    [[ $define == "$tree" ]] || die "CARELINE_SCHEMA_VERSION in daemon/store/schema.h is ${define:-missing}, but the highest migration is $tree: keep them in step"
    [[ $db == "$tree" ]] || die "the database says schema version $db after deploy/migrate.sh, expected $tree"
    ;;
reapply)
    before=$(definitions)
    [[ -n $before ]] || die "no careline functions or views found"
    sql "CREATE OR REPLACE FUNCTION careline_km(lat1 double precision, lon1 double precision,
             lat2 double precision, lon2 double precision) RETURNS double precision
             LANGUAGE sql IMMUTABLE RETURN 0;
         REVOKE SELECT ON v_dead_letters FROM careline_bureau;"
    [[ $(definitions) != "$before" ]] || die "changing careline_km and a grant changed nothing?"
    bash "$ROOT/deploy/migrate.sh" "$conninfo"
    [[ $(definitions) == "$before" ]] || die "deploy/migrate.sh did not put the definitions back"
    bash "$ROOT/deploy/migrate.sh" "$conninfo"
    [[ $(definitions) == "$before" ]] || die "a second deploy/migrate.sh changed a definition"
    echo "functions and views re-applied; a second run changed nothing"
    ;;
*) die "unknown check: $1" ;;
esac
