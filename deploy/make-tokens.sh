#!/usr/bin/env bash
# make-tokens.sh CONNINFO OUTFILE — bearer tokens for a development or test stack.
#
# If OUTFILE exists its tokens are kept, and any whose hash is missing from principals is
# inserted again. Otherwise new random tokens are made for one gateway, one bureau, one
# admin and one station principal for each of the first 5 active stations by id, written to
# OUTFILE (mode 600) and inserted. Running it again changes nothing.
#
# OUTFILE: one principal per line, `ROLE STATION_ID TOKEN NAME` (space-separated; STATION_ID
# is 0 for non-station roles; NAME is the rest of the line). Lines starting with # are
# comments. Only SHA-256(token) reaches the database: sha256(convert_to(token, 'UTF8')),
# computed by PostgreSQL from a psql variable read from the environment (\getenv), so the
# token is never part of SQL text nor of any process's argument list.
set -euo pipefail

usage() {
    echo "usage: $0 CONNINFO OUTFILE" >&2
    exit 2
}
[ $# -eq 2 ] || usage
conninfo=$1
outfile=$2

psql_q() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$conninfo" "$@"
}

new_token() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 24
    else
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
    fi
}

if [ ! -e "$outfile" ]; then
    tmp="$outfile.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    (
        umask 077
        {
            echo "# careline principals: ROLE STATION_ID TOKEN NAME (secret: keep mode 600)"
            echo "gateway 0 $(new_token) hotline-gateway"
            echo "bureau 0 $(new_token) bureau-analyst"
            echo "admin 0 $(new_token) admin"
            psql_q -At -F ' ' -c \
                "SELECT id, name FROM stations WHERE active ORDER BY id LIMIT 5" |
                while read -r sid sname; do
                    [ -n "$sid" ] || continue
                    echo "station $sid $(new_token) $sname"
                done
        } >"$tmp"
    )
    mv "$tmp" "$outfile"
    trap - EXIT
    echo "make-tokens: wrote $outfile" >&2
fi
chmod 600 "$outfile"

inserted=0
kept=0
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case "$line" in '' | '#'*) continue ;; esac
    read -r role sid token name <<<"$line"
    case "$role" in gateway | station | bureau | admin) ;; *)
        echo "make-tokens: $outfile:$lineno: bad role '$role'" >&2; exit 1 ;;
    esac
    case "$sid" in '' | *[!0-9]*)
        echo "make-tokens: $outfile:$lineno: bad station id" >&2; exit 1 ;;
    esac
    if [ -z "${token:-}" ] || [ ${#token} -lt 16 ]; then
        echo "make-tokens: $outfile:$lineno: missing or short token" >&2
        exit 1
    fi
    if [ "$role" = station ] && [ "$sid" = 0 ]; then
        echo "make-tokens: $outfile:$lineno: station token without a station id" >&2
        exit 1
    fi
    [ "$role" = station ] || sid=0
    # everything goes in as psql variables; the token through the environment
    n=$(CARELINE_TOKEN="$token" psql_q -At -v role="$role" -v sid="$sid" \
        -v name="${name:-$role}" <<'SQL'
\getenv tok CARELINE_TOKEN
WITH ins AS (
    INSERT INTO principals (token_hash, role, station_id, name)
    VALUES (sha256(convert_to(:'tok', 'UTF8')), :'role', NULLIF(:'sid', '0')::bigint, :'name')
    ON CONFLICT (token_hash) DO NOTHING
    RETURNING 1)
SELECT count(*) FROM ins;
SQL
    )
    if [ "$n" = 1 ]; then inserted=$((inserted + 1)); else kept=$((kept + 1)); fi
done <"$outfile"

echo "make-tokens: $inserted inserted, $kept already present ($outfile)" >&2
