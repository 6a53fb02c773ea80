//! The rvsd binary: --check exit codes, and a clean shutdown on SIGTERM
//! that removes its socket. Runs without root (no interfaces).

use std::process::Command;
use std::time::{Duration, Instant};

fn rvsd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    c.env("RVS_LOG", "warn");
    c
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

fn wait_for(path: &std::path::Path) {
    let t0 = Instant::now();
    while !path.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(path.exists(), "rvsd did not create {}", path.display());
}

fn services(sock: &std::path::Path) -> Vec<String> {
    match rvsd::server::request(sock, &rvsd::proto::Request::Snapshot).unwrap() {
        rvsd::proto::Response::Snapshot(s) => s
            .services
            .iter()
            .map(|e| {
                format!(
                    "{:?} {} {:?}",
                    e.service.key,
                    e.service.scheduler,
                    e.dests
                        .iter()
                        .map(|d| (d.dest.addr, d.dest.port, d.dest.weight))
                        .collect::<Vec<_>>()
                )
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn sighup(child: &std::process::Child) {
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // The reload is applied by the signal thread; give it a moment.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn sighup_reloads_the_difference_and_refuses_a_bad_file() {
    let dir = std::env::temp_dir().join(format!("rvsd-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("rvsd.toml");
    let v1 = "[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"rr\"\n[[service.real]]\nserver = \"10.0.0.1:8080\"\nmethod = \"masq\"\n";
    std::fs::write(&conf, v1).unwrap();
    // The socket's directory does not exist yet: rvsd creates it 0700.
    let sock = dir.join("run").join("rvsd.sock");
    let mut child = rvsd()
        .arg("--config")
        .arg(&conf)
        .arg("--socket")
        .arg(&sock)
        .spawn()
        .unwrap();
    wait_for(&sock);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);
    let one = services(&sock);
    assert_eq!(one.len(), 1);
    assert!(one[0].contains(" rr [(10.0.0.1, 8080, 1)]"), "{one:?}");
    // Weight changed and a second service: applied.
    let v2 = format!("{}weight = 4\n[[service]]\nudp = \"192.0.2.10:53\"\n", v1);
    std::fs::write(&conf, &v2).unwrap();
    sighup(&child);
    let two = services(&sock);
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(
        two.iter().any(|s| s.contains(" rr [(10.0.0.1, 8080, 4)]")),
        "{two:?}"
    );
    // A bad file: refused whole, the table stays.
    std::fs::write(&conf, format!("{v2}[[service]]\nudp = \"192.0.2.10:53\"\n")).unwrap();
    sighup(&child);
    assert_eq!(services(&sock), two);
    // The control socket's reload request says why.
    match rvsd::server::request(&sock, &rvsd::proto::Request::Reload).unwrap() {
        rvsd::proto::Response::Error { message, exit_code } => {
            assert_eq!(exit_code, 1);
            assert!(
                message.ends_with("rvsd.toml:11: Service already exists"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_requests_change_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let dir = std::env::temp_dir().join(format!("rvsd-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("rvsd.toml");
    std::fs::write(&conf, "[[service]]\ntcp = \"192.0.2.10:80\"\n").unwrap();
    let sock = dir.join("rvsd.sock");
    let mut child = rvsd()
        .arg("--config")
        .arg(&conf)
        .arg("--socket")
        .arg(&sock)
        .spawn()
        .unwrap();
    wait_for(&sock);
    let before = services(&sock);
    let s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for bad in ["not json", "{\"Apply\": 5}", "{\"Unknown\": []}"] {
        w.write_all(format!("{bad}\n").as_bytes()).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let resp: rvsd::proto::Response = serde_json::from_str(&line).unwrap();
        assert!(
            matches!(&resp, rvsd::proto::Response::Error { message, exit_code: 2 } if message.starts_with("bad request")),
            "{resp:?}"
        );
    }
    assert_eq!(services(&sock), before);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_logs_and_a_socket_path_that_is_not_a_socket() {
    let dir = std::env::temp_dir().join(format!("rvsd-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A regular file where the socket should go is left alone.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let out = rvsd().arg("--socket").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists and is not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // --log-format json: one JSON object per line.
    let sock = dir.join("rvsd.sock");
    let child = rvsd()
        .env("RVS_LOG", "info")
        .args(["--log-format", "json", "--socket"])
        .arg(&sock)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&sock);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.lines().count() >= 2, "{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
