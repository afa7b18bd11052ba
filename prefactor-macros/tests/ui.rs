//! Compile-time behaviour of the macros: every misuse is an error pointing at the exact token,
//! and every supported shape compiles warning-free (trybuild; `TRYBUILD=overwrite` regenerates
//! the `.stderr` files, which must then be reviewed). They live in this crate, not the facade,
//! so trybuild only builds the facade's normal dependencies (not the server, criterion, ...).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
