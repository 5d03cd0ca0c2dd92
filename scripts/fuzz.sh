#!/usr/bin/env bash
# libFuzzer targets over every parser of untrusted bytes (Fuzz/README.md).
#
#   scripts/fuzz.sh build [NAME..]        build every target (or those named) into .build-fuzz (-sanitize=fuzzer,address)
#   scripts/fuzz.sh run SECONDS [NAME..]  fuzz each target (all by default) for SECONDS, from its committed seeds in
#                                         Fuzz/corpus/NAME plus what earlier runs found (.build-fuzz/corpus/NAME);
#                                         prints one line per target: runs, edges, peak RSS, result
#   scripts/fuzz.sh replay [NAME..]       run each target once over its committed seeds and crash inputs
#   scripts/fuzz.sh merge NAME DIR..      minimize DIRs into Fuzz/corpus/NAME (what to commit)
#   scripts/fuzz.sh long RUNS MINUTES [--goal NAME=RUNS].. [NAME..]
#                                         the long run: each target until it has RUNS executions (or its --goal)
#                                         or MINUTES are up, FUZZ_JOBS (2) at a time in chunks of FUZZ_CHUNK
#                                         seconds (600), slowest first (Fuzz/long_run.py); state and logs in
#                                         .build-fuzz/long (FUZZ_LONG_STATE=DIR/state.json puts them elsewhere);
#                                         `long report` prints the table again
#
# Exits non-zero when a target crashes, leaks, times out or exceeds its memory limit; the input is kept as
# .build-fuzz/artifacts/NAME/crash-* (commit it under Fuzz/corpus/NAME and add a regression test, Fuzz/README.md).
# FUZZ_NICE=1 runs the fuzzers under `nice -n 19`, for long campaigns on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(h2 proto json config csi manifest layer auth reference elf signature)
SCRATCH=.build-fuzz
# release; FUZZ_CONFIG=debug builds in about half the time (for debugging a target).
CONFIG=${FUZZ_CONFIG:-release}
BIN=${FUZZ_BIN:-$SCRATCH/$CONFIG}

# A crash must not wait for Swift's backtracer to symbolicate (it takes minutes under ASan).
export SWIFT_BACKTRACE=enable=no
# LeakSanitizer on; a small quarantine keeps the fuzzers' RSS meaningful.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=32:malloc_context_size=20}

build() {
    mkdir -p "$SCRATCH"
    local names=("$@")
    [[ ${#names[@]} == 0 ]] && names=("${TARGETS[@]}")
    for name in "${names[@]}"; do
        # `--sanitize fuzzer` makes SwiftPM link the executable for libFuzzer (without it the target gets a main of
        # its own that does nothing); the one -sanitize=fuzzer,address after it is what the compiler keeps. Not
        # SwiftPM's `--sanitize fuzzer --sanitize address`: it hands the compiler two -sanitize flags in no fixed
        # order and the last one wins, so a module got either coverage or ASan's checks, never both.
        # -enable-testing: the targets reach internal parsers through @testable import.
        BPFMAN_FUZZ=1 swift build -c "$CONFIG" --scratch-path "$SCRATCH" --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address \
            -Xswiftc -enable-testing --product "fuzz-$name" >"$SCRATCH/build-$name.log" 2>&1 \
            || { grep -v "Cannot export local symbol" "$SCRATCH/build-$name.log" | tail -30; return 1; }
        tail -1 "$SCRATCH/build-$name.log"
    done
}

# Runs one target for $1 seconds; prints "name runs edges peak_rss_mb result".
run_one() {
    local seconds=$1 name=$2
    local work=$SCRATCH/corpus/$name artifacts=$SCRATCH/artifacts/$name log=$SCRATCH/logs-$CONFIG/$name.log
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    local prefix=()
    [[ ${FUZZ_NICE:-0} == 1 ]] && prefix=(nice -n 19)
    local status=0
    "${prefix[@]}" "$BIN/fuzz-$name" "$work" "Fuzz/corpus/$name" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    local runs edges rss
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    local result=ok
    if [[ $status == 0 && -z $runs ]]; then
        status=1
        result="FAILED: no libFuzzer statistics in $log (not a libFuzzer binary?)"
    elif [[ $status != 0 ]]; then
        result="FAILED (exit $status): $(grep -m1 -E 'ERROR|SUMMARY|Fatal error|precondition' "$log" || true)"
    fi
    printf '%-10s %12s %8s %8s  %s\n' "$name" "${runs:-0}" "${edges:-0}" "${rss:-?}" "$result"
    [[ $status == 0 ]]
}

run() {
    local seconds=${1:?seconds}
    shift
    local names=("$@")
    [[ ${#names[@]} == 0 ]] && names=("${TARGETS[@]}")
    printf '%-10s %12s %8s %8s  %s\n' target runs edges rss_mb result
    local failed=0
    for name in "${names[@]}"; do run_one "$seconds" "$name" || failed=1; done
    return $failed
}

replay() {
    local names=("$@")
    [[ ${#names[@]} == 0 ]] && names=("${TARGETS[@]}")
    local failed=0
    for name in "${names[@]}"; do
        local files=(Fuzz/corpus/"$name"/*)
        # Counted from libFuzzer's own "Executed" lines: a binary that ran nothing must not pass.
        if "$BIN/fuzz-$name" -runs=1 "${files[@]}" >"$SCRATCH/replay-$CONFIG-$name.log" 2>&1 \
            && [[ $(grep -ac '^Executed ' "$SCRATCH/replay-$CONFIG-$name.log") == "${#files[@]}" ]]; then
            echo "$name: ${#files[@]} inputs ok"
        else
            echo "$name: FAILED, see $SCRATCH/replay-$CONFIG-$name.log"
            failed=1
        fi
    done
    return $failed
}

merge() {
    local name=${1:?name}
    shift
    mkdir -p "Fuzz/corpus/$name"
    "$BIN/fuzz-$name" -merge=1 "Fuzz/corpus/$name" "$@" -max_len=65536
}

long() {
    local nice=()
    [[ ${FUZZ_NICE:-0} == 1 ]] && nice=(--nice)
    if [[ ${1:-} == report ]]; then
        shift
        local names=("$@")
        [[ ${#names[@]} == 0 ]] && names=("${TARGETS[@]}")
        python3 Fuzz/long_run.py --report --state "${FUZZ_LONG_STATE:-$SCRATCH/long/state.json}" "${names[@]}"
        return
    fi
    local runs=${1:?runs} minutes=${2:?minutes}
    shift 2
    local names=() goals=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        --goal) goals+=(--goal "${2:?--goal NAME=RUNS}"); shift 2 ;;
        *) names+=("$1"); shift ;;
        esac
    done
    [[ ${#names[@]} == 0 ]] && names=("${TARGETS[@]}")
    python3 Fuzz/long_run.py --runs "$runs" --minutes "$minutes" --jobs "${FUZZ_JOBS:-2}" --chunk "${FUZZ_CHUNK:-600}" "${nice[@]}" \
        --bin "$BIN" --scratch "$SCRATCH" --state "${FUZZ_LONG_STATE:-$SCRATCH/long/state.json}" "${goals[@]}" "${names[@]}"
}

case ${1:-} in
build) shift; build "$@" ;;
run) shift; run "$@" ;;
replay) shift; replay "$@" ;;
merge) shift; merge "$@" ;;
long) shift; long "$@" ;;
*) sed -n '2,19p' "$0"; exit 2 ;;
esac
