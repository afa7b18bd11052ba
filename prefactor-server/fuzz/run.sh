#!/usr/bin/env bash
# Runs the prefactor-server fuzz targets (cargo-fuzz / libFuzzer) for a bounded time each.
#
#   bash prefactor-server/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 30 s per target, every target; 0 skips fuzzing. `.ci/run` calls it with a short
# time (PREFACTOR_FUZZ_SECONDS, 15 by default); run it with 600 for a long session. Works on the stable toolchain: `--sanitizer none` needs no
# sanitizer runtime, and RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its coverage flags to a
# stable rustc (no nightly toolchain needed). Installs cargo-fuzz when it is missing.
# Each target starts from the checked-in seeds (seeds/<target>) plus what earlier runs on
# this machine found (corpus/<target>, not checked in); a crash leaves its input under
# artifacts/<target> and fails the script.
#
# FUZZ_RUNS=N makes a run reproducible instead of timed: N executions per target from a fixed
# seed (FUZZ_SEED, default 1), so the same tree explores the same inputs on every machine.
# `.ci/run` uses it: a gate that fails must fail again for whoever re-runs it, and a timed run
# explores more or less depending on the machine's speed.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
# 0 skips fuzzing (libFuzzer would read -max_total_time=0 as "no limit").
if [ "$seconds" -eq 0 ]; then
    echo "fuzzing skipped (0 s per target)"
    exit 0
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(body_parse bulk_scan template timestamp otlp trace_headers)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if [ -n "${FUZZ_RUNS:-}" ]; then
    budget=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}")
    what="$FUZZ_RUNS executions from seed ${FUZZ_SEED:-1}"
else
    budget=(-max_total_time="$seconds")
    what="$seconds s"
fi
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "fuzzing $target: $what"
    if ! cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
        "${budget[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        grep -m1 -A4 "panicked at" "$log" || tail -n 40 "$log"
        grep -A2 "Reproduce with" "$log" || true
        echo "fuzz target $target failed; the input is under prefactor-server/fuzz/artifacts/$target" >&2
        exit 1
    fi
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$log" | sed "s/^/  $target /"
done
