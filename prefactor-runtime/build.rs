//! Records the compiler's version for `agent_version.runtime_environment.runtime`
//! (`rustc@1.91.0`, as prefactor-core sends `cpython@3.12`): `$RUSTC --version`, no network.
#![forbid(unsafe_code)]

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=RUSTC");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // `rustc 1.91.0 (f8297e351 2025-10-28)`; a compiler that cannot say leaves it unknown.
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    println!("cargo::rustc-env=PREFACTOR_RUSTC_VERSION={version}");
}
