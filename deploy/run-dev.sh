#!/usr/bin/env bash
# run-dev.sh: the tail of `make run`. Starts the persistent local stack in var/ (PostgreSQL
# 55432, Redis 56379), applies the migrations, loads the Yuyao data, makes dev tokens,
# writes var/dispatchd.conf and runs bin/dispatchd in the foreground (Ctrl-C stops it;
# `make stop` stops the stack). Every step is safe to repeat.
# Environment: DEV_PG_PORT / DEV_REDIS_PORT override the stack's ports.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
VAR=var
CONF=$VAR/dispatchd.conf
TOKENS=$VAR/dev-tokens.txt
LISTEN_PORT=7400
HTTP_PORT=7401

die() {
    echo "run-dev: $*" >&2
    exit 1
}

[[ -x bin/dispatchd ]] || die "bin/dispatchd not found; run 'make' (or 'make run') first"

mkdir -p "$VAR"
stack_args=()
[[ -n ${DEV_PG_PORT:-} ]] && stack_args+=(--pg-port "$DEV_PG_PORT")
[[ -n ${DEV_REDIS_PORT:-} ]] && stack_args+=(--redis-port "$DEV_REDIS_PORT")
deploy/stack.sh start "$VAR" "${stack_args[@]}"
# shellcheck disable=SC1091
. "$VAR/stack.env"

# step SCRIPT ARGS...: runs a deploy/ script when it exists (they are still being written).
step() {
    local script=$1
    shift
    if [[ -x $script ]]; then
        echo "run-dev: $script"
        "$script" "$@" || die "$script failed"
    elif [[ -f $script ]]; then
        echo "run-dev: $script"
        bash "$script" "$@" || die "$script failed"
    else
        echo "run-dev: WARNING: $script is missing; skipped" >&2
    fi
}
step deploy/migrate.sh "$CARELINE_PG_ADMIN"
step deploy/load-yuyao.sh "$CARELINE_PG_ADMIN"
step deploy/make-tokens.sh "$CARELINE_PG_ADMIN" "$TOKENS" # keeps an existing file's tokens
# TLS: a development CA (var/tls/ca.pem, what the clients trust by default) and a server
# certificate for 127.0.0.1, ::1 and localhost; made once, re-made only when expiring
TLS=$VAR/tls
step deploy/make-tls.sh dev "$TLS"

# Written anew on every run, so it always matches the stack's ports.
tmp="$CONF.tmp.$$"
cat >"$tmp" <<EOF
# written by deploy/run-dev.sh on every 'make run'; edits here are overwritten
listen_addr = 127.0.0.1
listen_port = $LISTEN_PORT
http_addr = 127.0.0.1
http_port = $HTTP_PORT
pg_conninfo = host=127.0.0.1 port=$CARELINE_PG_PORT dbname=careline user=careline_app
redis_host = 127.0.0.1
redis_port = $CARELINE_REDIS_PORT
redis_user = $CARELINE_REDIS_USER
redis_password_file = $ROOT/$VAR/redis.password
log_level = info
phone_hash_key_file = $CARELINE_PHONE_HASH_KEY_FILE
tls_cert_file = $ROOT/$TLS/server.pem
tls_key_file = $ROOT/$TLS/server.key
tls_ca_file = $ROOT/$TLS/ca.pem
EOF
mv -f "$tmp" "$CONF"

cat <<EOF

  Careline development stack (data in $ROOT/$VAR)
    PostgreSQL   127.0.0.1:$CARELINE_PG_PORT  db careline   psql -h 127.0.0.1 -p $CARELINE_PG_PORT -U postgres careline
    Redis        127.0.0.1:$CARELINE_REDIS_PORT              REDISCLI_AUTH=\$(cat $VAR/redis.password) redis-cli --user $CARELINE_REDIS_USER -p $CARELINE_REDIS_PORT
    dispatchd    protocol 127.0.0.1:$LISTEN_PORT (TLS)
                 HTTPS    https://127.0.0.1:$HTTP_PORT/healthz   (curl --cacert $TLS/ca.pem ...)
    TLS          $ROOT/$TLS: ca.pem (clients trust it; their default --ca), server.pem,
                 station.pem (a client certificate for station-console --cert)
    config       $ROOT/$CONF
    dev tokens   $ROOT/$TOKENS   (lines: ROLE STATION_ID TOKEN)
    logs         $ROOT/$VAR/pg.log, $ROOT/$VAR/redis.log
  Stop: Ctrl-C stops dispatchd; 'make stop' stops PostgreSQL and Redis.

EOF
[[ -e $TOKENS ]] || echo "run-dev: WARNING: $TOKENS was not written (deploy/make-tokens.sh missing?)" >&2

exec bin/dispatchd -c "$CONF"
