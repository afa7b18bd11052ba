#!/usr/bin/env bash
# The larger delivery soak (issue #13): 10 seeded runs at 20 % faults of every kind in each
# delivery mode, and a server stopped for 30 s mid-run and restarted on the same port and
# database, in each mode. Same code as the CI soak (prefactor-runtime/tests/runtime/soak.rs),
# larger settings. Prints one line of figures per run; fails on any loss.
#
#   bash bench/delivery/soak.sh            # RUNS=10 OUTAGE=30 INSTANCES=60 by default
#   RUNS=3 OUTAGE=10 bash bench/delivery/soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PREFACTOR_SOAK_RUNS="${RUNS:-10}"
export PREFACTOR_SOAK_OUTAGE_SECS="${OUTAGE:-30}"
export PREFACTOR_SOAK_INSTANCES="${INSTANCES:-60}"
cargo test -p prefactor-runtime --test runtime soak:: -- --nocapture --test-threads 1 2>&1 \
    | grep -E '^(test |faults |restart )|test result|panicked|assertion' 
