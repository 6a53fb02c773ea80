//! rvsadm against a running rvsd control plane (started in-process on a
//! temporary socket; no root, no interfaces): ipvsadm command lines in,
//! ipvsadm output out.

use rvs_engine::DirectorConfig;
use rvsd::control::Control;
use rvsd::worker::Worker;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct Daemon {
    sock: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start(tag: &str) -> Self {
        Self::start_with(tag, rvsd::worker::no_port())
    }

    /// A daemon whose worker is fed frames by the returned feeder.
    fn start_fed(tag: &str) -> (Self, rvsd::worker::Feeder) {
        let (make, feeder) = rvsd::worker::feed_port();
        (Self::start_with(tag, make), feeder)
    }

    fn start_with(tag: &str, make: rvsd::worker::MakePort) -> Self {
        let sock = std::env::temp_dir().join(format!("rvsadm-{tag}-{}.sock", std::process::id()));
        let worker =
            Worker::spawn(DirectorConfig::default(), make, std::time::Instant::now()).unwrap();
        let control = Arc::new(Mutex::new(Control::new(
            DirectorConfig::default(),
            vec![worker],
        )));
        let listener = rvsd::server::bind(&sock).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let reload: rvsd::server::Reload =
            Arc::new(|_: &mut Control| Err("no configuration file".to_string()));
        let thread = std::thread::spawn(move || rvsd::server::serve(listener, control, reload, s));
        Self {
            sock,
            stop,
            thread: Some(thread),
        }
    }

    /// Runs `rvsadm ARGS` (as `program`), returning (stdout, stderr, status).
    fn run_as(&self, program: &str, args: &str, stdin: &str) -> (String, String, i32) {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_rvsadm"));
        let mut cmd = Command::new(&bin);
        cmd.arg0_compat(program);
        cmd.args(args.split_whitespace())
            .env("RVS_SOCKET", &self.sock)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    fn run(&self, args: &str) -> (String, String, i32) {
        self.run_as("ipvsadm", args, "")
    }

    fn ok(&self, args: &str) -> String {
        let (out, err, code) = self.run(args);
        assert_eq!(code, 0, "{args}: {err}");
        out
    }
}

trait Arg0 {
    fn arg0_compat(&mut self, name: &str) -> &mut Self;
}

impl Arg0 for Command {
    fn arg0_compat(&mut self, name: &str) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.arg0(name)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.sock);
    }
}

#[test]
fn add_list_save_clear_restore() {
    let d = Daemon::start("table");
    d.ok("-A -t 192.0.2.10:80 -s rr");
    d.ok("-a -t 192.0.2.10:80 -r 10.20.0.11:8080 -m -w 2");
    d.ok("-a -t 192.0.2.10:80 -r 10.20.0.12:8080 -m");
    d.ok("-A -u 192.0.2.10:53 -p 600 -M 255.255.255.0");
    d.ok("-a -u 192.0.2.10:53 -r 10.20.0.13");
    d.ok("-A -f 7 -s lc");
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.0.2.10:80 rr\n",
        "  -> 10.20.0.11:8080              Masq    2      0          0         \n",
        "  -> 10.20.0.12:8080              Masq    1      0          0         \n",
        "UDP  192.0.2.10:53 wlc persistent 600 mask 255.255.255.0\n",
        "  -> 10.20.0.13:53                Route   1      0          0         \n",
        "FWM  7 lc\n",
    );
    assert_eq!(d.ok("-L -n"), want);
    let saved = d.ok("-S -n");
    assert!(saved.contains("-A -f 7 -s lc\n"));
    d.ok("-C");
    assert_eq!(d.ok("-L -n").lines().count(), 3);
    let (_, err, code) = d.run_as("ipvsadm", "-R", &saved);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.ok("-S -n"), saved);
    assert_eq!(d.ok("-L -n"), want);
}

#[test]
fn errors_are_ipvsadms_and_change_nothing() {
    let d = Daemon::start("errors");
    d.ok("-A -t 192.0.2.10:80 -s rr");
    let before = d.ok("-S -n");
    assert_eq!(
        d.run("-A -t 192.0.2.10:80"),
        (String::new(), "Service already exists\n".into(), 255)
    );
    assert_eq!(
        d.run("-a -t 192.0.2.99:80 -r 10.0.0.1"),
        (String::new(), "Service not defined\n".into(), 255)
    );
    assert_eq!(
        d.run("-d -t 192.0.2.10:80 -r 10.0.0.1"),
        (String::new(), "No such destination\n".into(), 255)
    );
    assert_eq!(
        d.run("-A -t 192.0.2.11:80 -s fastest"),
        (
            String::new(),
            "Scheduler or persistence engine not found\n".into(),
            255
        )
    );
    assert_eq!(
        d.run("-A -t 192.0.2.10:80 -r 10.0.0.1"),
        (
            String::new(),
            "Illegal 'real-server' option with the 'add-service' command\n".into(),
            2
        )
    );
    // A restore whose third line is refused applies none of its lines.
    let input = "-A -t 192.0.2.20:80 -s rr\n-a -t 192.0.2.20:80 -r 10.0.0.5 -g\n-A -t 192.0.2.10:80 -s rr\n";
    let (_, err, code) = d.run_as("ipvsadm", "-R", input);
    assert_eq!((err.as_str(), code), ("Service already exists\n", 255));
    // A malformed request on the socket is refused too.
    let r = rvsd::server::request(&d.sock, &rvsd::proto::Request::Apply(vec![])).unwrap();
    assert!(matches!(r, rvsd::proto::Response::Done));
    assert_eq!(d.ok("-S -n"), before);
}

#[test]
fn zero_timeouts_and_version() {
    let d = Daemon::start("misc");
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    d.ok("--set 100 0 20");
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 100 120 20\n"
    );
    d.ok("-A -t 192.0.2.10:80 -s rr");
    d.ok("-Z");
    d.ok("-Z -t 192.0.2.10:80");
    let (_, err, code) = d.run("-Z -t 192.0.2.77:80");
    assert_eq!((err.as_str(), code), ("No such service\n", 255));
    assert!(d.ok("-v").starts_with("ipvsadm v1.31"));
    // --reload reaches rvsd; this one runs without a file and says so.
    assert_eq!(
        d.run("--reload"),
        (String::new(), "no configuration file\n".into(), 1)
    );
    let stats = d.ok("-L -n --stats");
    assert!(stats.contains("Conns   InPkts  OutPkts  InBytes OutBytes"));
}

#[test]
fn unreachable_daemon_is_reported() {
    let (out, err, code) = {
        let bin = env!("CARGO_BIN_EXE_rvsadm");
        let o = Command::new(bin)
            .args(["--socket", "/nonexistent/rvsd.sock", "-L", "-n"])
            .output()
            .unwrap();
        (
            o.stdout,
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code(),
        )
    };
    assert!(out.is_empty());
    assert_eq!(code, Some(2));
    assert!(err.starts_with("Can't initialize ipvs:"), "{err}");
}

#[test]
fn stats_connections_and_zero_with_traffic() {
    use rvs_fixtures::{cip4, flags, tcp, vip4};
    let (d, feeder) = Daemon::start_fed("traffic");
    d.ok("-A -t 192.0.2.10:80 -s rr");
    d.ok("-a -t 192.0.2.10:80 -r 10.20.0.11:80 -m");
    let (c, m) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let syn = tcp(c, m, cip4(), 40000, vip4(), 80, flags::SYN, b"");
    let ack = tcp(c, m, cip4(), 40000, vip4(), 80, flags::ACK, b"hello");
    for f in [&syn, &ack] {
        let (v, _) = feeder.send(f).unwrap();
        assert!(matches!(v, rvs_engine::Verdict::Forward(_)), "{v:?}");
    }
    // ipvsadm -L -n -c: "%-3s %02d:%02d  %-11s %-18s %-18s %s\n" after
    // its two title lines; the expiry (15 min for ESTABLISHED) is not
    // compared.
    let conns = d.ok("-L -n -c");
    let lines: Vec<&str> = conns.lines().collect();
    assert_eq!(lines.len(), 3, "{conns}");
    assert_eq!(lines[0], "IPVS connection entries");
    assert_eq!(
        lines[1],
        "pro expire state       source             virtual            destination"
    );
    assert!(lines[2].starts_with("TCP 1"), "{conns}");
    assert!(
        lines[2].ends_with("  ESTABLISHED 198.51.100.7:40000 192.0.2.10:80      10.20.0.11:80"),
        "{conns}"
    );
    // --stats --exact: one connection, two packets in, 40 + 45 IP bytes in
    // (IPv4 20 + TCP 20, plus 5 bytes of payload), nothing out yet.
    let stats = d.ok("-L -n --stats --exact");
    let svc: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        svc,
        ["TCP", "192.0.2.10:80", "1", "2", "0", "85", "0"],
        "{stats}"
    );
    let dest: Vec<&str> = stats
        .lines()
        .find(|l| l.contains("10.20.0.11:80"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        dest,
        ["->", "10.20.0.11:80", "1", "2", "0", "85", "0"],
        "{stats}"
    );
    let plain = d.ok("-L -n");
    assert!(
        plain.contains("  -> 10.20.0.11:80                Masq    1      1          0         \n"),
        "{plain}"
    );
    // The daemon's own figures over the socket.
    let rvsd::proto::Response::Stats(g) =
        rvsd::server::request(&d.sock, &rvsd::proto::Request::Stats).unwrap()
    else {
        panic!("not stats")
    };
    assert_eq!(
        (g.totals.conns, g.totals.inpkts, g.totals.inbytes, g.conns),
        (1, 2, 85, 1)
    );
    assert!(g.drops.iter().any(|(r, n)| r == "bad_checksum" && *n == 0));
    assert!(g.queues.is_empty());
    d.ok("-Z");
    let stats = d.ok("-L -n --stats --exact");
    let svc: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        svc,
        ["TCP", "192.0.2.10:80", "0", "0", "0", "0", "0"],
        "{stats}"
    );
    // Zeroing leaves the connection alone.
    assert_eq!(d.ok("-L -n -c").lines().count(), 3);
}

#[test]
fn bad_command_lines_change_nothing() {
    let d = Daemon::start("badargs");
    d.ok("-A -t 192.0.2.10:80 -s rr");
    let before = d.ok("-S -n");
    for args in [
        "-A -t 192.0.2.10:80 -s rr -w 2",
        "-a -t 192.0.2.10:80 -r 10.0.0.1 -w 70000",
        "-A -t 192.0.2.300:80",
        "-L -n -r 10.0.0.1",
        "--bogus",
        "-E",
    ] {
        let (out, err, code) = d.run(args);
        assert_eq!(out, "", "{args}");
        assert!(code == 2 || code == 255, "{args}: {code} {err}");
        assert!(!err.is_empty(), "{args}");
    }
    assert_eq!(d.ok("-S -n"), before);
    // Two exact texts from ipvsadm.c's fail() calls.
    assert_eq!(
        d.run("-a -t 192.0.2.10:80 -r 10.0.0.1 -w 70000"),
        (String::new(), "illegal weight specified\n".into(), 2)
    );
    assert_eq!(
        d.run("-L -n -r 10.0.0.1"),
        (
            String::new(),
            "Illegal 'real-server' option with the 'list' command\n".into(),
            2
        )
    );
}

#[test]
fn save_clear_restore_round_trip() {
    // (ipvsadm -S does not save -x/-y thresholds; neither does rvsadm.)
    let d = Daemon::start("roundtrip");
    for l in [
        "-A -t 192.0.2.10:80 -s wrr",
        "-a -t 192.0.2.10:80 -r 10.20.0.11:8080 -m -w 3 -x 100 -y 10",
        "-a -t 192.0.2.10:80 -r 10.20.0.12:8080 -m -w 0",
        "-A -u 192.0.2.10:0 -s sh -b sh-port -p 120 -M 255.255.0.0",
        "-a -u 192.0.2.10:0 -r 10.20.0.13 -g",
        "-A -t [2001:db8::10]:443 -s mh -b mh-fallback,mh-port",
        "-a -t [2001:db8::10]:443 -r [fd00:0:0:20::11]:443 -i --tun-type gue --tun-port 6080 --tun-remcsum",
        "-A -f 9 -6 -s lc -p",
        "-A --sctp-service 192.0.2.10:3868 -s rr",
        "-A -u 192.0.2.11:53 -s rr -o",
    ] {
        d.ok(l);
    }
    let saved = d.ok("-S -n");
    let listed = d.ok("-L -n");
    assert_eq!(saved.lines().count(), 10, "{saved}");
    d.ok("-C");
    assert_eq!(d.ok("-S -n"), "");
    let (_, err, code) = d.run_as("ipvsadm", "-R", &saved);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.ok("-S -n"), saved);
    assert_eq!(d.ok("-L -n"), listed);
}
