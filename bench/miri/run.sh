#!/usr/bin/env bash
# Runs the unit tests of the runtime's lock-free modules under Miri (undefined behaviour,
# data races, weak memory effects, leaks), over several scheduling seeds: the operation queue
# (`ticket_queue.rs`), the payload arena (`payload_arena.rs`) and the span guards' client
# lease (`thread_lease.rs`). None has dependencies, so
# each is checked as a crate of its own: the runtime's network dependencies (rustls' assembly)
# do not run under Miri. Needs a nightly toolchain; installs its Miri component if missing.
#   bash bench/miri/run.sh                 # all three modules, seeds 0..8
#   MIRIFLAGS=-Zmiri-many-seeds=0..32 bash bench/miri/run.sh ticket_queue
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rustup component add --toolchain nightly miri rust-src >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for module in "${@:-ticket_queue payload_arena thread_lease}"; do
  for name in $module; do
    crate="$work/$name"
    mkdir -p "$crate/src"
    printf '[package]\nname = "%s"\nversion = "0.0.0"\nedition = "2024"\n' "$name" > "$crate/Cargo.toml"
    # The module is crate-private in the runtime; as a crate root its items are simply unused.
    { echo '#![allow(dead_code)]'; cat "$here/../../prefactor-runtime/src/$name.rs"; } > "$crate/src/lib.rs"
    echo "== $name"
    (cd "$crate" && MIRIFLAGS="${MIRIFLAGS:--Zmiri-many-seeds=0..8}" cargo +nightly miri test --quiet)
  done
done
