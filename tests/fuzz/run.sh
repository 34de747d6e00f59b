#!/usr/bin/env bash
# run.sh: runs libFuzzer harnesses one after the other, each from its committed corpus
# (tests/fuzz/corpus/NAME, plus what earlier runs found, kept in WORK/corpus/NAME) for a
# bounded number of executions and seconds, and prints one line of figures per harness.
# Exits 1 if any harness found a crash, a leak, a sanitizer report or a broken invariant
# (its input is in WORK/artifacts/, its log in WORK/logs/NAME.log).
#   run.sh --bin DIR --corpus DIR --work DIR --runs N --seconds S NAME...
set -euo pipefail
bin= corpus= work= runs=1000000 seconds=1800
while (($#)); do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[[ -n $bin && -n $corpus && -n $work && $# -gt 0 ]] || {
    echo "usage: run.sh --bin DIR --corpus DIR --work DIR [--runs N] [--seconds S] NAME..." >&2
    exit 2
}
dicts=$(dirname "${BASH_SOURCE[0]}")/dict
mkdir -p "$work/artifacts" "$work/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
printf '%-10s %10s %8s %9s %7s %7s %8s  %s\n' harness execs secs exec/s cov ft corpus result
for name in "$@"; do
    exe=$bin/fuzz_$name
    [[ -x $exe ]] || { echo "run.sh: no harness $exe" >&2; exit 2; }
    seeds=$corpus/$name
    mine=$work/corpus/$name
    mkdir -p "$mine"
    dict=()
    [[ -f $dicts/$name.dict ]] && dict=(-dict="$dicts/$name.dict")
    log=$work/logs/$name.log
    start=$(date +%s%N)
    rc=0
    "$exe" -runs="$runs" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-" \
        "${dict[@]}" "$mine" "$seeds" >"$log" 2>&1 || rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    secs=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$([[ -n $execs ]] && echo $((execs * 1000 / (ms > 0 ? ms : 1))))
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    units=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    result=ok
    if ((rc != 0)); then
        result="FAILED (exit $rc, see $log)"
        failed+=("$name")
    fi
    printf '%-10s %10s %8s %9s %7s %7s %8s  %s\n' "$name" "${execs:-?}" "$secs" "${eps:-?}" \
        "${cov:-?}" "${ft:-?}" "${units:-?}" "$result"
    if ((rc != 0)); then
        grep -E 'ERROR|runtime error|invariant failed|SUMMARY' "$log" | head -5 | sed 's/^/    /'
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#@} harnesses clean"
