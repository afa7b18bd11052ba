#!/usr/bin/env bash
# The larger delivery soak (issue #13): 10 seeded runs at 20 % faults of every kind in each
# delivery mode; a server stopped for 30 s mid-run and restarted on the same port and
# database, in each mode; an agent process killed (SIGKILL) during an outage with the spool
# on, then a new client on the same spool, in each mode. Same code as the CI tests
# (prefactor-runtime/tests/runtime/soak.rs and spool.rs), larger settings. Prints one line of
# figures per run; fails on any loss.
#
#   bash bench/delivery/soak.sh    # RUNS=10 OUTAGE=30 INSTANCES=60 SPOOL_INSTANCES=200 by default
#   RUNS=3 OUTAGE=10 bash bench/delivery/soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PREFACTOR_SOAK_RUNS="${RUNS:-10}"
export PREFACTOR_SOAK_OUTAGE_SECS="${OUTAGE:-30}"
export PREFACTOR_SOAK_INSTANCES="${INSTANCES:-60}"
export PREFACTOR_SOAK_SPOOL_INSTANCES="${SPOOL_INSTANCES:-200}"
cargo test -p prefactor-runtime --test runtime -- soak:: spool::an_agent_killed --nocapture --test-threads 1 2>&1 \
    | grep -E '^(test |faults |restart |killed )|test result|panicked|assertion'
