//! `rvs-bench engine --packets N --conns M` at tiny sizes: it forwards the N
//! packets and prints one JSON line saying so; bad arguments exit 2.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rvs-bench"))
        .args(args)
        .output()
        .expect("run rvs-bench")
}

#[test]
fn packets_over_conns_forwards_exactly_n() {
    let out = bench(&["engine", "--packets", "300", "--conns", "20"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"name\": \"forwarded\", \"value\": 300, \"unit\": \"packets\"}\n"
    );
}

#[test]
fn harness_only_prepares_exactly_n() {
    let out = bench(&[
        "engine",
        "--packets",
        "300",
        "--conns",
        "20",
        "--harness-only",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"name\": \"prepared\", \"value\": 300, \"unit\": \"packets\"}\n"
    );
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["engine", "--packets", "10"][..],
        &["engine", "--packets", "x", "--conns", "2"],
        &["engine", "--frobnicate"],
        &["engine", "--harness-only"],
        &["other"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
