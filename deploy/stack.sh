#!/usr/bin/env bash
# stack.sh: a private PostgreSQL 15 and Redis 7 on loopback, kept in one directory, for
# `make run` (persistent) and the integration tests (--fast, throw-away).
#
#   deploy/stack.sh start DIR [--pg-port N] [--redis-port N] [--free-ports] [--fast]
#   deploy/stack.sh stop DIR
#   deploy/stack.sh status DIR
#
# start writes DIR/stack.env (sourceable): CARELINE_PG_PORT, CARELINE_REDIS_PORT,
# CARELINE_PG_HOST, CARELINE_PG_ADMIN (conninfo as superuser 'postgres' on db careline),
# CARELINE_PG_SOCKDIR, CARELINE_PG_DATA, CARELINE_PG_BINDIR, CARELINE_REDIS_HOST,
# CARELINE_REDIS_USER, CARELINE_REDIS_PASSWORD_FILE and
# CARELINE_PHONE_HASH_KEY_FILE (DIR/phone-hash.key: dispatchd's phone_hash_key_file, made
# once with 32 random bytes, mode 600; never printed).
# start on a running stack is a no-op; stop on a stopped one too. Every wait is bounded.
#
# Redis runs with an ACL (DIR/redis.acl, from DIR/redis.password, both mode 600, the
# password generated once): the default user is off, and the one user, 'careline', may use
# the commands the daemon needs (scripts, pub/sub, streams, strings, hashes, sorted sets) on
# the county keys ({cCOUNTY}:*) and channels only. Clients authenticate, e.g.
#   REDISCLI_AUTH=$(cat DIR/redis.password) redis-cli --user careline -p PORT ping
#
# initdb and postgres refuse to run as root: as root, PostgreSQL runs as the system user
# 'postgres' (created if absent). When the postgres user cannot reach DIR (e.g. under
# /root), the data directory and socket go to /var/tmp/careline-stack-<hash>/ and DIR/pg
# is a symlink to it; its path is in DIR/stack.env.
set -euo pipefail

PG_DEFAULT_PORT=55432
REDIS_DEFAULT_PORT=56379
PG_START_TIMEOUT=30 # seconds, pg_ctl -t
REDIS_START_TIMEOUT=10
REDIS_USER=careline
STOP_TIMEOUT=30
PG_OS_USER=postgres

die() {
    echo "stack.sh: $*" >&2
    exit 1
}
say() { echo "stack.sh: $*"; }

usage() {
    sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- tools -----------------------------------------------------------------------------
find_pg_bindir() {
    local d
    for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/15/bin \
        /usr/lib/postgresql/*/bin; do
        if [[ -n $d && -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Run a command as the PostgreSQL OS user, from / so a non-traversable cwd is no matter.
as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

ensure_pg_user() {
    ((EUID == 0)) || return 0
    getent passwd "$PG_OS_USER" >/dev/null && return 0
    say "creating system user $PG_OS_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$PG_OS_USER" || die "could not create user $PG_OS_USER"
}

# 0 when a loopback TCP port looks free (pure bash: /proc/net/tcp{,6}, no python or ss):
# nothing listens on it and nothing answers a connect. With "strict", any socket using it
# as local port (TIME_WAIT, client ends) counts as busy too: for picking random ports.
port_free() {
    local port=$1 strict=${2:-} hex f laddr st
    hex=$(printf '%04X' "$port")
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        # fields: sl local_address rem_address st ...; address is IP:PORT in hex, 0A = LISTEN
        while read -r _ laddr _ st _; do
            [[ ${laddr##*:} == "$hex" && ($st == 0A || -n $strict) ]] && return 1
        done <"$f"
    done
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 1
    fi
    return 0
}

# A random free port in [20000, 60000), avoiding the ones given as arguments.
pick_free_port() {
    local p i avoid
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        for avoid in "$@"; do [[ $p == "$avoid" ]] && continue 2; done
        if port_free "$p" strict; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

alive() { # PID: 0 when the process exists and is not a zombie waiting for its reaper
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [[ $st != Z ]]
}

log_tail() { # FILE
    [[ -e $1 ]] || return 0
    echo "---- last lines of $1 ----" >&2
    tail -n 30 "$1" >&2 || true
    echo "----" >&2
}

# ---- state -----------------------------------------------------------------------------
# Loads DIR/stack.env if present (ports and paths of an earlier start).
load_env() {
    CARELINE_REDIS_PORT=''
    CARELINE_STACK_FLAVOUR=''
    if [[ -r $DIR/stack.env ]]; then
        # shellcheck disable=SC1091
        . "$DIR/stack.env"
    fi
}

sq() { # single-quoted for the shell
    printf "'%s'" "${1//\'/\'\\\'\'}"
}

write_env() {
    local tmp="$DIR/stack.env.tmp.$$"
    {
        echo "# written by deploy/stack.sh start; source it"
        printf 'CARELINE_PG_HOST=127.0.0.1\n'
        echo "CARELINE_PG_PORT=$(sq "$PG_PORT")"
        echo "CARELINE_PG_ADMIN=$(sq "host=127.0.0.1 port=$PG_PORT dbname=careline user=postgres")"
        echo "CARELINE_PG_SOCKDIR=$(sq "$SOCKDIR")"
        echo "CARELINE_PG_DATA=$(sq "$PGDATA_DIR")"
        echo "CARELINE_PG_BINDIR=$(sq "$PG_BINDIR")"
        printf 'CARELINE_REDIS_HOST=127.0.0.1\n'
        echo "CARELINE_REDIS_PORT=$(sq "$REDIS_PORT")"
        echo "CARELINE_REDIS_USER=$(sq "$REDIS_USER")"
        echo "CARELINE_REDIS_PASSWORD_FILE=$(sq "$DIR/redis.password")"
        echo "CARELINE_STACK_FLAVOUR=$(sq "$FLAVOUR")"
        echo "CARELINE_PHONE_HASH_KEY_FILE=$(sq "$(cd "$DIR" && pwd -P)/phone-hash.key")"
    } >"$tmp"
    mv -f "$tmp" "$DIR/stack.env"
}

pg_running() { # 0 when the cluster in PGDATA_DIR runs
    [[ -n ${PGDATA_DIR:-} && -f $PGDATA_DIR/postmaster.pid ]] || return 1
    as_pg timeout 10 "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

redis_pid() { # prints the pid from DIR/redis.pid when that process lives
    local pid
    [[ -r $DIR/redis.pid ]] || return 1
    read -r pid <"$DIR/redis.pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    echo "$pid"
}

redis_cli() { # PORT ARGS...: redis-cli authenticated as the stack's user (password not in argv)
    local port=$1
    shift
    REDISCLI_AUTH=$(cat "$DIR/redis.password" 2>/dev/null) \
        timeout 3 redis-cli --no-auth-warning --user "$REDIS_USER" -h 127.0.0.1 -p "$port" "$@"
}

redis_ping() { # PORT
    [[ -n $1 && -r $DIR/redis.password ]] || return 1
    [[ $(redis_cli "$1" ping 2>/dev/null) == PONG ]]
}

# ---- layout ----------------------------------------------------------------------------
# Decides PGDATA_DIR, SOCKDIR and PG_LOG. The postgres user must traverse DIR and every
# parent; unix socket paths must stay under ~100 bytes.
plan_layout() {
    local alt
    alt="/var/tmp/careline-stack-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
    if [[ -L $DIR/pg ]]; then # an earlier start chose the outside place
        PGDATA_DIR=$(readlink "$DIR/pg")
        SOCKDIR="$(dirname "$PGDATA_DIR")/run"
    elif as_pg test -x "$DIR" 2>/dev/null; then
        PGDATA_DIR="$DIR/pg"
        SOCKDIR="$DIR/run"
    else
        PGDATA_DIR="$alt/pg"
        SOCKDIR="$alt/run"
    fi
    if ((${#SOCKDIR} > 80)); then
        SOCKDIR="/tmp/careline-sock-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
    fi
    if [[ $PGDATA_DIR == "$DIR/pg" ]]; then
        PG_LOG="$DIR/pg.log"
    else
        PG_LOG="$(dirname "$PGDATA_DIR")/pg.log"
    fi
}

# ---- postgres --------------------------------------------------------------------------
pg_init() {
    local parent locale=C
    parent=$(dirname "$PGDATA_DIR")
    if [[ $PGDATA_DIR != "$DIR/pg" ]]; then
        mkdir -p "$parent"
        chmod 755 "$parent"
        ln -sfn "$PGDATA_DIR" "$DIR/pg"
        say "postgres cannot reach $DIR; data in $PGDATA_DIR"
    fi
    mkdir -p "$PGDATA_DIR"
    if ((EUID == 0)); then chown "$PG_OS_USER:" "$PGDATA_DIR"; fi
    chmod 700 "$PGDATA_DIR"
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale=C.UTF-8; fi
    say "initdb $PGDATA_DIR"
    if ! as_pg timeout 120 "$PG_BINDIR/initdb" -D "$PGDATA_DIR" -A trust --nosync -U postgres \
        -E UTF8 --locale="$locale" >"$DIR/initdb.log" 2>&1; then
        log_tail "$DIR/initdb.log"
        die "initdb failed (log: $DIR/initdb.log)"
    fi
    printf "\n# Careline: settings written by deploy/stack.sh on every start\ninclude_if_exists = 'careline.conf'\n" \
        | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

pg_write_conf() {
    local fast=''
    if [[ $FLAVOUR == fast ]]; then
        fast="fsync = off
synchronous_commit = off
full_page_writes = off"
    fi
    as_pg tee "$PGDATA_DIR/careline.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCKDIR'
timezone = 'Asia/Shanghai'
log_timezone = 'Asia/Shanghai'
max_connections = 200
# room for the working set, and checkpoints far enough apart that full-page writes do not
# dominate the WAL under load (durability is unchanged: fsync and synchronous_commit stay on)
shared_buffers = 512MB
wal_buffers = 16MB
max_wal_size = 8GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
$fast
CONF
}

# Starts the cluster; returns 2 when the port was taken (caller may retry another port).
pg_start() {
    mkdir -p "$SOCKDIR"
    if ((EUID == 0)); then chown "$PG_OS_USER:" "$SOCKDIR"; fi
    chmod 755 "$SOCKDIR"
    # pg_ctl, running as the postgres user, opens the log itself.
    if [[ $PG_LOG != "$DIR/pg.log" ]]; then ln -sfn "$PG_LOG" "$DIR/pg.log"; fi
    [[ -e $PG_LOG ]] || : >"$PG_LOG"
    if ((EUID == 0)); then chown "$PG_OS_USER:" "$PG_LOG"; fi
    pg_write_conf
    local mark=0
    [[ -e $PG_LOG ]] && mark=$(wc -l <"$PG_LOG")
    if as_pg timeout $((PG_START_TIMEOUT + 10)) "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" \
        -w -t "$PG_START_TIMEOUT" start >"$DIR/pg_ctl.log" 2>&1; then
        return 0
    fi
    if tail -n +$((mark + 1)) "$PG_LOG" 2>/dev/null | grep -q 'could not bind\|Address already in use'; then
        return 2
    fi
    cat "$DIR/pg_ctl.log" >&2 || true
    log_tail "$PG_LOG"
    # pg_ctl may have given up while the postmaster still starts: do not leave it behind.
    as_pg timeout 20 "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    die "PostgreSQL did not start within ${PG_START_TIMEOUT}s (log: $PG_LOG)"
}

pg_create_db() {
    local psql=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
    local have
    have=$(PGCONNECT_TIMEOUT=10 timeout 30 "${psql[@]}" -d postgres -tAc \
        "select 1 from pg_database where datname = 'careline'") ||
        { log_tail "$PG_LOG"; die "psql could not connect to 127.0.0.1:$PG_PORT"; }
    if [[ $have != 1 ]]; then
        PGCONNECT_TIMEOUT=10 timeout 30 "${psql[@]}" -d postgres -c \
            "create database careline owner postgres encoding 'UTF8' template template0" >/dev/null ||
            die "could not create database careline"
        say "created database careline"
    fi
}

pg_stop() {
    [[ -n ${PGDATA_DIR:-} && -d $PGDATA_DIR ]] || return 0
    [[ -f $PGDATA_DIR/postmaster.pid ]] || return 0
    if as_pg timeout $((STOP_TIMEOUT + 5)) "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w \
        -t "$STOP_TIMEOUT" stop >/dev/null 2>&1; then
        return 0
    fi
    pg_running || return 0
    say "PostgreSQL did not stop in ${STOP_TIMEOUT}s with -m fast; trying -m immediate"
    as_pg timeout 15 "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 10 stop \
        >/dev/null 2>&1 && return 0
    local pid
    pid=$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
        say "killing postmaster $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# ---- redis -----------------------------------------------------------------------------
# The password (generated once, kept across restarts) and the ACL file made from it (its
# SHA-256 only), both readable by this user alone.
redis_write_acl() {
    local pw hash tmp
    if [[ ! -s $DIR/redis.password ]]; then
        (
            umask 077
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/redis.password.tmp.$$"
            echo >>"$DIR/redis.password.tmp.$$"
        )
        mv -f "$DIR/redis.password.tmp.$$" "$DIR/redis.password"
        say "generated the Redis password in $DIR/redis.password"
    fi
    chmod 600 "$DIR/redis.password"
    pw=$(head -n 1 "$DIR/redis.password")
    [[ -n $pw ]] || die "$DIR/redis.password is empty"
    hash=$(printf '%s' "$pw" | sha256sum | cut -d' ' -f1)
    tmp="$DIR/redis.acl.tmp.$$"
    (
        umask 077
        # keep in step with deploy/redis-acl.example.conf
        cat >"$tmp" <<ACL
user default off resetpass nocommands resetkeys resetchannels
user $REDIS_USER on #$hash resetkeys ~{c*}:* resetchannels &{c*}:* -@all +@connection +@read +@write +@stream +@pubsub +@scripting -@dangerous -@admin -function -script|flush -script|kill +info
ACL
    )
    mv -f "$tmp" "$DIR/redis.acl"
}

# Starts redis-server; returns 2 when the port was taken (caller may retry another port).
redis_start() {
    local aof=no i mark=0
    [[ $FLAVOUR == persistent ]] && aof=yes
    mkdir -p "$DIR/redis"
    [[ -e $DIR/redis.log ]] && mark=$(wc -l <"$DIR/redis.log")
    rm -f "$DIR/redis.pid"
    redis_write_acl
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly "$aof" \
        --aclfile "$DIR/redis.acl" --dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis.pid" \
        --logfile "$DIR/redis.log" >/dev/null 2>&1 || true
    for ((i = 0; i < REDIS_START_TIMEOUT * 10; i++)); do
        redis_ping "$REDIS_PORT" && return 0
        if ((i > 5)) && tail -n +$((mark + 1)) "$DIR/redis.log" 2>/dev/null |
            grep -q 'Address already in use\|Could not create server TCP'; then
            return 2
        fi
        sleep 0.1
    done
    log_tail "$DIR/redis.log"
    local pid
    pid=$(redis_pid) && kill -KILL "$pid" 2>/dev/null
    die "Redis did not answer PING on 127.0.0.1:$REDIS_PORT within ${REDIS_START_TIMEOUT}s"
}

redis_stop() {
    local pid i
    pid=$(redis_pid) || return 0
    # SIGTERM is Redis' own graceful SHUTDOWN (the AOF is flushed; no RDB: --save ''), which
    # the stack's ACL user may not send as a command
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        alive "$pid" || { rm -f "$DIR/redis.pid"; return 0; }
        ((i == 50)) && kill -TERM "$pid" 2>/dev/null
        sleep 0.1
    done
    say "Redis $pid did not exit in ${STOP_TIMEOUT}s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$DIR/redis.pid"
}

# ---- secrets: the phone-hash key (issue 12) ----------------------------------------------
# DIR/phone-hash.key: 64 hex characters of /dev/urandom, made once (kept across starts, so
# stored hashes stay valid), mode 600, never printed.
phone_key_ensure() {
    local f=$DIR/phone-hash.key
    if [[ ! -s $f ]]; then
        (
            umask 077
            head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$f.tmp.$$"
            mv -f "$f.tmp.$$" "$f"
        ) || die "cannot write $f"
    fi
    chmod 600 "$f"
}

# ---- commands --------------------------------------------------------------------------
cmd_start() {
    local want_pg='' want_redis='' free=0
    FLAVOUR=persistent
    while (($#)); do
        case $1 in
        --pg-port) want_pg=${2:?--pg-port needs a value}; shift ;;
        --redis-port) want_redis=${2:?--redis-port needs a value}; shift ;;
        --free-ports) free=1 ;;
        --fast) FLAVOUR=fast ;;
        *) usage ;;
        esac
        shift
    done
    for p in "$want_pg" "$want_redis"; do
        [[ -z $p || $p =~ ^[0-9]+$ ]] || die "bad port: $p"
    done
    { command -v redis-server && command -v redis-cli; } >/dev/null ||
        die "redis-server/redis-cli not found (run deploy/install-deps.sh)"
    ensure_pg_user
    load_env
    plan_layout

    # PostgreSQL
    if pg_running; then
        # line 4 of postmaster.pid is the port it listens on
        PG_PORT=$(sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)
        [[ $PG_PORT =~ ^[0-9]+$ ]] || die "PostgreSQL runs in $PGDATA_DIR on an unknown port"
        [[ -z $want_pg || $want_pg == "$PG_PORT" ]] ||
            say "PostgreSQL already runs on port $PG_PORT (not $want_pg); keeping it"
        say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
    else
        [[ -f $PGDATA_DIR/PG_VERSION ]] || pg_init
        local tries=1 rc
        if [[ -n $want_pg ]]; then
            PG_PORT=$want_pg
        elif ((free)); then
            PG_PORT=$(pick_free_port) || die "no free port found for PostgreSQL"
            tries=5
        else
            PG_PORT=$PG_DEFAULT_PORT
        fi
        while :; do
            if ! ((free)) && ! port_free "$PG_PORT"; then
                die "port $PG_PORT is in use; pass --pg-port N or --free-ports"
            fi
            rc=0
            pg_start || rc=$?
            ((rc == 0)) && break
            tries=$((tries - 1))
            ((tries > 0)) || { log_tail "$PG_LOG"; die "PostgreSQL could not bind port $PG_PORT"; }
            PG_PORT=$(pick_free_port "$PG_PORT") || die "no free port found for PostgreSQL"
        done
        say "PostgreSQL started on 127.0.0.1:$PG_PORT (data $PGDATA_DIR, log $PG_LOG)"
    fi
    REDIS_PORT=${CARELINE_REDIS_PORT:-}
    phone_key_ensure
    write_env # now, so that stop and status find the cluster even if Redis fails below

    # Redis
    if redis_pid >/dev/null && redis_ping "${CARELINE_REDIS_PORT:-}"; then
        REDIS_PORT=$CARELINE_REDIS_PORT
        [[ -z $want_redis || $want_redis == "$REDIS_PORT" ]] ||
            say "Redis already runs on port $REDIS_PORT (not $want_redis); keeping it"
        say "Redis already running on 127.0.0.1:$REDIS_PORT"
    else
        local tries=1 rc pid
        if pid=$(redis_pid); then # alive but not answering on the recorded port
            kill -TERM "$pid" 2>/dev/null || true
            sleep 1
            kill -KILL "$pid" 2>/dev/null || true
        fi
        if [[ -n $want_redis ]]; then
            REDIS_PORT=$want_redis
        elif ((free)); then
            REDIS_PORT=$(pick_free_port "$PG_PORT") || die "no free port found for Redis"
            tries=5
        else
            REDIS_PORT=$REDIS_DEFAULT_PORT
        fi
        while :; do
            if ! ((free)) && ! port_free "$REDIS_PORT"; then
                die "port $REDIS_PORT is in use; pass --redis-port N or --free-ports"
            fi
            rc=0
            redis_start || rc=$?
            ((rc == 0)) && break
            tries=$((tries - 1))
            ((tries > 0)) || { log_tail "$DIR/redis.log"; die "Redis could not bind port $REDIS_PORT"; }
            REDIS_PORT=$(pick_free_port "$PG_PORT" "$REDIS_PORT") || die "no free port found for Redis"
        done
        say "Redis started on 127.0.0.1:$REDIS_PORT (log $DIR/redis.log)"
    fi

    write_env
    pg_create_db
}

cmd_stop() {
    (($# == 0)) || usage
    [[ -d $DIR ]] || return 0
    load_env
    plan_layout
    redis_stop
    pg_stop
    say "stopped ($DIR)"
}

cmd_status() {
    (($# == 0)) || usage
    local rc=0
    load_env
    plan_layout
    if pg_running; then
        echo "postgresql: running on 127.0.0.1:$(sed -n 4p "$PGDATA_DIR/postmaster.pid") (data $PGDATA_DIR)"
    else
        echo "postgresql: stopped"
        rc=3
    fi
    if redis_pid >/dev/null && redis_ping "${CARELINE_REDIS_PORT:-}"; then
        echo "redis:      running on 127.0.0.1:$CARELINE_REDIS_PORT"
    else
        echo "redis:      stopped"
        rc=3
    fi
    return $rc
}

(($# >= 2)) || usage
CMD=$1
DIR=$2
shift 2
[[ -n $DIR ]] || usage
PG_BINDIR=$(find_pg_bindir) || die "PostgreSQL server binaries not found (run deploy/install-deps.sh)"
case $CMD in
start)
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    cmd_start "$@"
    ;;
stop | status)
    if [[ -d $DIR ]]; then DIR=$(cd "$DIR" && pwd -P); fi
    "cmd_$CMD" "$@"
    ;;
*) usage ;;
esac
