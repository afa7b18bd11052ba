#!/usr/bin/env bash
# Runs the operation queue's unit tests under Miri (undefined behaviour, data races, weak memory
# effects), over several scheduling seeds. The module has no dependencies, so it is checked as a
# crate of its own: the runtime's network dependencies (rustls' assembly) do not run under Miri.
# Needs a nightly toolchain; installs its Miri component if missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module="$here/../../prefactor-runtime/src/ticket_queue.rs"
rustup component add --toolchain nightly miri rust-src >/dev/null
crate="$(mktemp -d)"
trap 'rm -rf "$crate"' EXIT
mkdir "$crate/src"
printf '[package]\nname = "ticket_queue"\nversion = "0.0.0"\nedition = "2024"\n' > "$crate/Cargo.toml"
# The module is crate-private in the runtime; as a crate root its items are simply unused.
{ echo '#![allow(dead_code)]'; cat "$module"; } > "$crate/src/lib.rs"
cd "$crate"
MIRIFLAGS="${MIRIFLAGS:--Zmiri-many-seeds=0..8}" cargo +nightly miri test
