#!/usr/bin/env bash
# prefactor-server at scale (not in CI): builds the release server and runs
# prefactor-server/benches/scale.rs, which starts the server as its own process on a database
# file, fills it through POST /api/v1/bulk in steps and records, after each step, the ingest
# rate, the server's CPU per span, bytes per span on disk, the server's RSS and p50/p99 of
# every read the trace UI and the open dashboard make.
#
#   bash bench/scale/run.sh                                  # 1M spans (a few minutes)
#   STEPS=1000000,3000000,10000000 bash bench/scale/run.sh   # the issue's three steps
#
# The database goes to $DB (default: the system temp directory) and is deleted at the end
# (KEEP=1 keeps it); at about 600 bytes a span, 10M spans need about 6 GB of free disk, 7 GB
# with the WAL and headroom (the script refuses to start with less than 0.7 KB a span free).
# The tables are appended to $OUT (default: a new temporary file, printed at the end).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$(mktemp --suffix=.md)}"

DB="${DB:-${TMPDIR:-/tmp}/prefactor-scale-$$.db}"
LAST_STEP="${STEPS:-1000000}"
LAST_STEP="${LAST_STEP##*,}"
NEEDED_KB=$((LAST_STEP * 7 / 10))
FREE_KB=$(df -Pk "$(dirname "$DB")" | awk 'NR == 2 {print $4}')
if [ "$FREE_KB" -lt "$NEEDED_KB" ]; then
  echo "$(dirname "$DB") has $((FREE_KB / 1024)) MiB free; $LAST_STEP spans need about $((NEEDED_KB / 1024)) MiB (set DB=...)" >&2
  exit 1
fi

# The bench runs in the release profile too (not `bench`, which adds debug info and so builds
# every dependency a second time: 13 minutes on the shared machine).
(cd "$ROOT" && cargo build --release --quiet -p prefactor-server --bin prefactor-server)

{
  echo "## prefactor-server scale run, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$OUT"

cd "$ROOT"
PF_SERVER_BIN="$TARGET/release/prefactor-server" \
PF_SCALE_STEPS="${STEPS:-1000000}" \
PF_SCALE_REPEATS="${REPEATS:-20}" \
PF_SCALE_RUN_SPANS="${RUN_SPANS:-10}" \
PF_SCALE_DB="$DB" \
PF_SCALE_KEEP="${KEEP:-0}" \
PF_SCALE_OUT="$OUT" \
  cargo bench --quiet --profile release -p prefactor-server --bench scale -- --bench

echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
echo "results: $OUT"
