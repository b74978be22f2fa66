//! Tests that cannot run on this machine say why, and are counted as skipped, not passed.
//!
//! libtest captures what a passing test prints, so `skip` writes its marker line straight to
//! the process's stderr handle (not captured):
//! `rondo-test-skipped: BINARY::TEST: REASON`. `scripts/test` counts the distinct
//! `BINARY::TEST` of those lines as skipped and takes them off the passed count. Where every
//! test must run (`CI=true`: CI is root and installs what the tests need), a skip is a failure.

use std::io::Write;

/// `CI=true` (or `CI=1`): every test must run, and a skip fails the test.
pub fn every_test_must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Say why this test cannot run here; the caller returns right after. Panics under `CI=true`.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("main").to_string();
    // The test binary is `NAME-HASH`; the marker names `NAME::test`.
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => s,
        })
        .unwrap_or_else(|| "?".into());
    if every_test_must_run() {
        panic!("{bin}::{test} cannot run here ({reason}), and with CI=true every test must run");
    }
    let _ = writeln!(
        std::io::stderr(),
        "rondo-test-skipped: {bin}::{test}: {reason}"
    );
}
