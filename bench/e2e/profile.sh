#!/usr/bin/env bash
# Profiles one end-to-end run: `perf record -g` of the local server and of the Rust workload
# (bench_e2e) side by side, then prints where each spends its CPU (by thread, by library).
#
#   bash bench/e2e/profile.sh                      # 100,000 spans, bulk delivery
#   SPANS=20000 PREFACTOR_DELIVERY=per_request bash bench/e2e/profile.sh
#
# Needs `perf` and the release binaries that run.sh builds (it builds them too). The recordings
# stay in $OUT (default: a new temporary directory) for `perf report -i`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SPANS="${SPANS:-100000}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
TOKEN="profile-$RANDOM$RANDOM"

(cd "$ROOT" && cargo build --release --quiet -p prefactor-server --bin prefactor-server \
  && cargo build --release --quiet -p prefactor --example bench_e2e)

"$TARGET/release/prefactor-server" --listen 127.0.0.1:0 --db "$OUT/profile.db" --token "$TOKEN" \
  >"$OUT/server.out" 2>"$OUT/server.err" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
API_URL=""
for _ in $(seq 1 300); do  # bounded: 30 s
  API_URL="$(cat "$OUT/server.out" "$OUT/server.err" | grep -o 'http://[0-9.:]*' | head -n1 || true)"
  [ -n "$API_URL" ] && break
  sleep 0.1
done
[ -n "$API_URL" ] || { echo "the server did not start" >&2; exit 1; }

perf record -F 499 -g -p "$SERVER_PID" -o "$OUT/server.perf" 2>"$OUT/perf-server.err" &
PERF_PID=$!
sleep 0.5
PREFACTOR_API_URL="$API_URL" PREFACTOR_API_TOKEN="$TOKEN" PREFACTOR_CONCURRENCY="${PREFACTOR_CONCURRENCY:-64}" \
  perf record -F 499 -g -o "$OUT/client.perf" "$TARGET/release/examples/bench_e2e" \
  --spans "$SPANS" --concurrency 8 2>"$OUT/perf-client.err"
sleep 1
kill -INT "$PERF_PID"
wait "$PERF_PID" || true

for side in server client; do
  echo "== $side: by thread"
  perf report -i "$OUT/$side.perf" --no-children -g none --sort comm 2>/dev/null | grep '%' | head -5 || true
  echo "== $side: by library"
  perf report -i "$OUT/$side.perf" --no-children -g none --sort dso 2>/dev/null | grep '%' | head -6 || true
  echo "== $side: top symbols"
  perf report -i "$OUT/$side.perf" --no-children -g none --sort sym 2>/dev/null | grep '%' | head -15 || true
done
echo "recordings in $OUT"
