//! Drives the engine with the fixture table and checks the golden pcap files.

use std::path::PathBuf;

#[test]
fn every_fixture_passes_through_the_engine() {
    let mut failures = Vec::new();
    let all = rvs_fixtures::fixtures();
    assert!(all.len() >= 10, "fixture table unexpectedly small");
    for f in &all {
        if let Err(e) = rvs_fixtures::run_engine(f) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The pcap files under golden/ are the table written out; they must not
/// drift from it. `RVS_BLESS=1 cargo test -p rvs-fixtures` rewrites them
/// after a reviewed change of the table.
#[test]
fn golden_pcaps_match_the_table() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden");
    let bless = std::env::var_os("RVS_BLESS").is_some();
    let mut stale = Vec::new();
    for f in rvs_fixtures::fixtures() {
        let path = dir.join(format!("{}.pcap", f.name));
        let want = rvs_fixtures::golden_pcap(&f);
        if bless {
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read(&path) {
            Ok(have) if have == want => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "golden files differ from the table (review, then RVS_BLESS=1): {stale:?}"
    );
}
