#!/usr/bin/env bash
# run.sh: Careline's test runner (make check / itest / test).
#
#   tests/run.sh --bin BINDIR --tests TESTSDIR [--rel-bin RELBINDIR] {unit|integration|all}
#
# unit:        every executable TESTSDIR/unit/test_*; with --rel-bin, also the case
#              release_has_no_test_hooks: RELBINDIR/dispatchd (the release build) has no
#              fault-injection symbol or key name, and BINDIR/dispatchd (the test build) has.
# integration: a private PostgreSQL + Redis (deploy/stack.sh --free-ports --fast) in a temp
#              dir, migrations applied twice (the second must be a no-op), the Yuyao data
#              loaded twice, the schema checks (tests/schema-checks.sh: the schema version
#              agrees with daemon/store/schema.h; migrate.sh re-applies functions and views
#              idempotently), then every executable TESTSDIR/integration/test_* and every
#              tests/integration/test_*.sh, with CARELINE_* variables describing the stack.
# all:         unit, then integration.
# Each test program prints "ok NAME" / "FAIL NAME..." lines and ends with "N passed, N failed"
# (tests/lib/t.h). A program that exits non-zero without reporting a failure, crashes, times
# out or prints no summary counts as one failure. The last line of output is the sum,
# "N passed, N failed"; the exit status is non-zero when anything failed or no test ran.
#
# Environment: T=PREFIX runs only the cases whose names start with PREFIX (passed to each
# program); KEEP=1 keeps the temp dir and stack logs; TEST_TIMEOUT=S bounds one program
# (default 900 s); ASAN_OPTIONS / UBSAN_OPTIONS override the defaults below.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BINDIR='' TESTSDIR='' MODE='' RELBINDIR=''
usage() {
    echo "usage: tests/run.sh --bin BINDIR --tests TESTSDIR [--rel-bin RELBINDIR] {unit|integration|all}" >&2
    exit 2
}
while (($#)); do
    case $1 in
    --bin) BINDIR=${2:-}; shift ;;
    --tests) TESTSDIR=${2:-}; shift ;;
    --rel-bin) RELBINDIR=${2:-}; shift ;;
    unit | integration | all) MODE=$1 ;;
    *) usage ;;
    esac
    shift
done
[[ -n $BINDIR && -n $TESTSDIR && -n $MODE ]] || usage
BINDIR=$(cd "$BINDIR" 2>/dev/null && pwd -P) || { echo "run.sh: no such dir: $BINDIR" >&2; exit 2; }
TESTSDIR=$(cd "$TESTSDIR" 2>/dev/null && pwd -P) || { echo "run.sh: no such dir: $TESTSDIR" >&2; exit 2; }

# LeakSanitizer works on this kind of machine (checked); set ASAN_OPTIONS=detect_leaks=0 where
# it does not (e.g. under ptrace).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CARELINE_BIN=$BINDIR CARELINE_SRC=$ROOT
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
FILTER=${T:-}

PASSED=0 FAILED=0 PROGRAMS=0
FAILURES=() # one line per failed case or program, repeated before the total
OUT=$(mktemp "${TMPDIR:-/tmp}/careline-run.XXXXXX") || exit 1
TMP='' STACK_UP=0 CLEANED=0 SETUP_FAILED=0

# bounded SECONDS LOG SHOW CMD...: runs CMD from the repo root, no stdin, output into LOG (and
# onto our stdout when SHOW is 1), killed after SECONDS. It runs in the background and we
# wait for it, so INT/TERM reach on_signal at once (timeout(1) puts CMD in a process group
# of its own, which a Ctrl-C on ours does not reach).
CHILD=''
bounded() {
    local secs=$1 log=$2 show=$3 rc=0
    shift 3
    if ((show)); then
        (
            cd "$ROOT" || exit 1
            timeout -k 10 "$secs" "$@" </dev/null 2>&1 | tee "$log"
            exit "${PIPESTATUS[0]}"
        ) 2>&1 &
    else
        (cd "$ROOT" && timeout -k 10 "$secs" "$@" </dev/null >"$log" 2>&1) &
    fi
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=''
    return $rc
}

# Stops what bounded() runs: TERM to each timeout(1) process group, KILL after 5 s.
stop_child() {
    [[ -n $CHILD ]] || return 0
    local groups g i
    # CHILD is timeout itself when the subshell exec'd it, else its parent
    groups="$CHILD $(pgrep -P "$CHILD" -x timeout || true)"
    for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done
    for ((i = 0; i < 50; i++)); do
        kill -0 "$CHILD" 2>/dev/null || return 0
        sleep 0.1
    done
    for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
    kill -KILL "$CHILD" 2>/dev/null
    return 0
}

# run_one LABEL CMD...: runs one test program, shows its output, adds its counts.
run_one() {
    local label=$1 rc summary p f line
    shift
    PROGRAMS=$((PROGRAMS + 1))
    echo "== $label"
    rc=0
    bounded "$TEST_TIMEOUT" "$OUT" 1 "$@" ${FILTER:+"$FILTER"} || rc=$?
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT" | tail -n 1)
    while IFS= read -r line; do
        FAILURES+=("$label: $line")
    done < <(grep -E '^FAIL ' "$OUT")
    if [[ -z $summary ]]; then
        FAILED=$((FAILED + 1))
        FAILURES+=("$label: no summary line (exit $rc$( ((rc == 124 || rc == 137)) && echo ", timed out after ${TEST_TIMEOUT}s"))")
        echo "FAIL $label: ended without a summary line (exit $rc)"
        return
    fi
    p=${summary%% passed*}
    f=${summary#*passed, }
    f=${f%% failed*}
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    if ((rc != 0 && f == 0)); then
        # e.g. LeakSanitizer reporting at exit, after all cases passed
        FAILED=$((FAILED + 1))
        FAILURES+=("$label: exit $rc after '$summary' (sanitizer report?)")
        echo "FAIL $label: exited $rc after reporting no failures"
    fi
}

# check NAME CMD...: one setup step counted as a case; returns its status.
check() {
    local name=$1 log
    shift
    log="$TMP/$name.log"
    if bounded 600 "$log" 0 "$@"; then
        PASSED=$((PASSED + 1))
        echo "ok   $name"
        return 0
    fi
    FAILED=$((FAILED + 1))
    SETUP_FAILED=1
    FAILURES+=("setup: FAIL $name (log $log); integration tests not run")
    echo "FAIL $name:"
    tail -n 40 "$log" | sed 's/^/  | /'
    return 1
}

run_dir() { # DIR: every executable test_* in it
    local t
    for t in "$1"/test_*; do
        [[ -f $t && -x $t ]] || continue
        run_one "${t#"$TESTSDIR"/}" "$t"
    done
}

cleanup() {
    ((CLEANED)) && return 0
    CLEANED=1
    rm -f "$OUT"
    [[ -n $TMP ]] || return 0
    if ((STACK_UP)); then
        "$ROOT/deploy/stack.sh" stop "$TMP" >/dev/null 2>&1 || echo "run.sh: could not stop the stack in $TMP" >&2
    fi
    if ((FAILED)) || [[ ${KEEP:-0} == 1 ]]; then
        local f
        for f in "$TMP/pg.log" "$TMP/redis.log"; do
            [[ -e $f ]] || continue
            echo "---- last lines of $f"
            tail -n 20 "$f"
        done
        echo "run.sh: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
on_signal() {
    echo "run.sh: interrupted" >&2
    trap '' INT TERM
    stop_child
    FAILED=$((FAILED + 1))
    FAILURES+=("interrupted")
    cleanup
    echo "$PASSED passed, $FAILED failed"
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

# The kill -9 fault hook and its config keys are compiled only into the test build
# (CARELINE_TESTING, make SAN=1): the release dispatchd must not contain them, the test one
# must (else the crash tests could not run, and this check would prove nothing).
HOOK_MARKS=(sub_fault fault_point fault_after 'fault injection')
hook_marks_in() { # BINARY: prints the marks found in its symbols and strings
    local m syms
    syms=$( { nm -a "$1" 2>/dev/null; strings -a "$1"; } )
    for m in "${HOOK_MARKS[@]}"; do
        grep -qF -- "$m" <<<"$syms" && printf '%s;' "$m"
    done
    return 0
}
check_release_hooks() {
    local name=release_has_no_test_hooks rel test found
    [[ -z $FILTER || $name == "$FILTER"* ]] || return 0
    PROGRAMS=$((PROGRAMS + 1))
    rel=$RELBINDIR/dispatchd test=$BINDIR/dispatchd
    if [[ ! -x $rel || ! -x $test ]]; then
        found="missing binary ($rel or $test)"
    else
        found=$(hook_marks_in "$rel")
        [[ -n $found ]] && found="release $rel contains: $found"
        [[ -z $found && $(hook_marks_in "$test") != "$(printf '%s;' "${HOOK_MARKS[@]}")" ]] &&
            found="the test build $test lacks the hook ($(hook_marks_in "$test"))"
    fi
    if [[ -z $found ]]; then
        PASSED=$((PASSED + 1))
        echo "ok   $name"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("FAIL $name: $found")
        echo "FAIL $name: $found"
    fi
}

run_unit() {
    echo "==== unit tests ($TESTSDIR/unit)"
    [[ -d $TESTSDIR/unit ]] && run_dir "$TESTSDIR/unit"
    [[ -n $RELBINDIR ]] && check_release_hooks
    return 0
}

run_integration() {
    echo "==== integration tests ($TESTSDIR/integration)"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/careline-itest.XXXXXX") || { FAILED=$((FAILED + 1)); return; }
    chmod 755 "$TMP" # the postgres user must reach the data dir and socket dir
    STACK_UP=1
    check stack_start "$ROOT/deploy/stack.sh" start "$TMP" --free-ports --fast || return
    # shellcheck disable=SC1091
    . "$TMP/stack.env"
    local script
    for script in migrate load-yuyao; do
        if [[ ! -f $ROOT/deploy/$script.sh ]]; then
            echo "run.sh: WARNING: deploy/$script.sh is missing; skipped"
            continue
        fi
        check "${script//-/_}" bash "$ROOT/deploy/$script.sh" "$CARELINE_PG_ADMIN" || return
        check "${script//-/_}_again" bash "$ROOT/deploy/$script.sh" "$CARELINE_PG_ADMIN" || return
    done
    check schema_version bash "$ROOT/tests/schema-checks.sh" version "$CARELINE_PG_ADMIN" || return
    check migrate_reapplies bash "$ROOT/tests/schema-checks.sh" reapply "$CARELINE_PG_ADMIN" || return
    export CARELINE_TMP=$TMP CARELINE_PG_ADMIN CARELINE_PG_PORT CARELINE_REDIS_PORT
    # the stack's Redis ACL user and password file: every dispatchd the tests start reads
    # them as its redis_user / redis_password_file (CARELINE_<KEY>), tests/lib/fixture.c too
    export CARELINE_REDIS_USER CARELINE_REDIS_PASSWORD_FILE
    export CARELINE_PHONE_HASH_KEY_FILE # from stack.env: every dispatchd started reads it
    export CARELINE_PG_HOST=127.0.0.1 CARELINE_REDIS_HOST=127.0.0.1
    export CARELINE_APP_CONNINFO="host=127.0.0.1 port=$CARELINE_PG_PORT dbname=careline user=careline_app"
    [[ -d $TESTSDIR/integration ]] && run_dir "$TESTSDIR/integration"
    local s
    for s in "$ROOT"/tests/integration/test_*.sh; do
        [[ -f $s ]] || continue
        run_one "tests/integration/${s##*/}" bash "$s"
    done
}

case $MODE in
unit) run_unit ;;
integration) run_integration ;;
all) run_unit; run_integration ;;
esac

if ((SETUP_FAILED)); then
    : # already counted; the programs could not run
elif ((PROGRAMS == 0)); then
    echo "run.sh: no test programs found in $TESTSDIR ($MODE)"
    FAILED=$((FAILED + 1))
    FAILURES+=("no test programs found")
elif ((PASSED + FAILED == 0)); then
    echo "run.sh: no test cases ran${FILTER:+ (T=$FILTER matched none)}"
    FAILED=$((FAILED + 1))
    FAILURES+=("no test cases ran")
fi
cleanup
if ((FAILED)); then
    echo "==== failures"
    printf '  %s\n' "${FAILURES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
