#!/usr/bin/env bash
# End-to-end benchmark: the Rust SDK against the official Python SDK (prefactor-core 0.5.3),
# side by side, against the same local server, in the same run.
#
#   bash bench/e2e/run.sh                 # 100,000 Rust spans, 2,000 Python spans
#   RUST_SPANS=20000 PY_SPANS=1000 bash bench/e2e/run.sh
#
# What it does (everything it needs is installed here, nothing else is assumed):
#   1. creates bench/.venv (python3 -m venv) if missing and pip installs prefactor-core==0.5.3;
#   2. builds the server and the Rust workload with `cargo build --release`;
#   3. starts `prefactor-server --listen 127.0.0.1:0` on a fresh temporary SQLite file;
#   4. runs the Python workload, then the Rust workload (same shape: agent runs of 10 nested
#      spans with small payloads); after each, waits (bounded) until the server has stored every
#      span as finished, reading the SQLite file;
#   5. prints a table with spans per second for each and the ratio, and stops the server.
# Python runs first so that it meets the smaller database.
#
# Environment knobs: RUST_SPANS, PY_SPANS, RUST_CONCURRENCY, PY_CONCURRENCY (agent runs in
# flight), RUST_SDK_CONCURRENCY (the Rust client's requests in flight), WAIT_TIMEOUT (s),
# RESULTS (a file to write the JSON results to). The Rust client reads the other PREFACTOR_*
# variables too: `PREFACTOR_DELIVERY=per_request PREFACTOR_LINGER=0` measures one request per
# operation (the client before bulk delivery). Requests per span come from the server's request
# log, which keeps the last 10,000 requests (beyond that the count is a lower bound).
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUST_SPANS="${RUST_SPANS:-100000}"
PY_SPANS="${PY_SPANS:-2000}"
RUST_CONCURRENCY="${RUST_CONCURRENCY:-8}"
PY_CONCURRENCY="${PY_CONCURRENCY:-8}"
# Requests the Rust client keeps in flight (its `concurrency` setting, default 8): the local
# server answers each request after a group commit, so 8 lanes leave both cores mostly idle.
RUST_SDK_CONCURRENCY="${RUST_SDK_CONCURRENCY:-64}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600}"
PY_SDK_VERSION="0.5.3"
VENV="$ROOT/bench/.venv"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { echo "[e2e] $*" >&2; }

install_python_sdk() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
  fi
  local installed
  installed="$("$VENV/bin/python" -m pip show prefactor-core 2>/dev/null || true)"
  if ! grep -qx "Version: $PY_SDK_VERSION" <<<"$installed"; then
    log "installing prefactor-core==$PY_SDK_VERSION"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "prefactor-core==$PY_SDK_VERSION"
  fi
}

build_rust() {
  log "cargo build --release (server and Rust workload)"
  (cd "$ROOT" && cargo build --release --quiet -p prefactor-server --bin prefactor-server \
    && cargo build --release --quiet -p prefactor --example bench_e2e)
}

# Starts the server in the background; sets SERVER_PID and API_URL.
start_server() {
  "$TARGET/release/prefactor-server" --listen 127.0.0.1:0 --db "$WORK/bench.db" --token "$TOKEN" \
    >"$WORK/server.out" 2>"$WORK/server.err" &
  SERVER_PID=$!
  API_URL=""
  for _ in $(seq 1 300); do  # bounded: 30 s
    API_URL="$(cat "$WORK/server.out" "$WORK/server.err" | grep -o 'http://[0-9.:]*' | head -n1 || true)"
    [ -n "$API_URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; log "server exited"; exit 1; }
    sleep 0.1
  done
  [ -n "$API_URL" ] || { log "server did not print its address within 30 s"; exit 1; }
  log "server at $API_URL (db $WORK/bench.db)"
}

stop_server() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}

finished_spans() {
  "$VENV/bin/python" "$ROOT/bench/e2e/wait_stored.py" "$WORK/bench.db" 0 10 \
    | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["finished"])'
}

# CPU seconds (user + system) the server process used so far.
server_cpu_seconds() {
  awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$SERVER_PID/stat"
}

# run_workload NAME SPANS COMMAND... : runs one workload, waits until its spans are stored,
# prints one JSON line merging the workload's report with the stored time and server CPU.
run_workload() {
  local name="$1" spans="$2"; shift 2
  local before report stored cpu_before cpu_after counted
  before="$(finished_spans)"
  "$VENV/bin/python" "$ROOT/bench/e2e/report.py" clear "$API_URL" "$TOKEN"
  cpu_before="$(server_cpu_seconds)"
  log "$name: $spans spans"
  report="$(PREFACTOR_API_URL="$API_URL" PREFACTOR_API_TOKEN="$TOKEN" "$@")"
  stored="$("$VENV/bin/python" "$ROOT/bench/e2e/wait_stored.py" "$WORK/bench.db" \
    "$((before + spans))" "$WAIT_TIMEOUT")" || { log "$name: spans not stored in time: $stored"; exit 1; }
  cpu_after="$(server_cpu_seconds)"
  counted="$("$VENV/bin/python" "$ROOT/bench/e2e/report.py" requests "$API_URL" "$TOKEN")"
  "$VENV/bin/python" "$ROOT/bench/e2e/report.py" merge "$report" "$stored" "$cpu_before" "$cpu_after" "$counted"
}

install_python_sdk
build_rust
WORK="$(mktemp -d)"
TOKEN="bench-$RANDOM$RANDOM"
SERVER_PID=""
trap stop_server EXIT
start_server

PY_RESULT="$(run_workload python "$PY_SPANS" \
  "$VENV/bin/python" "$ROOT/bench/e2e/python_workload.py" --spans "$PY_SPANS" --concurrency "$PY_CONCURRENCY")"
RUST_RESULT="$(run_workload rust "$RUST_SPANS" \
  env PREFACTOR_CONCURRENCY="$RUST_SDK_CONCURRENCY" \
  "$TARGET/release/examples/bench_e2e" --spans "$RUST_SPANS" --concurrency "$RUST_CONCURRENCY")"

echo "python: $PY_RESULT" >&2
echo "rust:   $RUST_RESULT" >&2
echo
"$VENV/bin/python" "$ROOT/bench/e2e/report.py" table "$PY_RESULT" "$RUST_RESULT"
if [ -n "${RESULTS:-}" ]; then
  printf '{"python": %s, "rust": %s}\n' "$PY_RESULT" "$RUST_RESULT" >"$RESULTS"
fi
