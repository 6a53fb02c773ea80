//! The rvsd binary: --check exit codes, and a clean shutdown on SIGTERM
//! that removes its socket. Runs without root (no interfaces).

use std::process::Command;
use std::time::{Duration, Instant};

fn rvsd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvsd"))
}

#[test]
fn check_reports_and_exits() {
    let dir = std::env::temp_dir().join(format!("rvsd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, include_str!("../examples/rvsd.toml")).unwrap();
    let out = rvsd()
        .args(["--check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"bogus\"\n",
    )
    .unwrap();
    let out = rvsd()
        .args(["--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3: Scheduler or persistence engine not found"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let sock = std::env::temp_dir().join(format!("rvsd-term-{}.sock", std::process::id()));
    let mut child = rvsd().arg("--socket").arg(&sock).spawn().unwrap();
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sock.exists(), "rvsd did not create its socket");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rvsd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(!sock.exists(), "socket left behind");
}
