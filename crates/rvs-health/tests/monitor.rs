//! The monitor against loopback servers: dedup, state kept across `set`,
//! removal, the concurrency bound, spread first probes, events.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rvs_health::spec::{CheckKind, CheckSpec, Common, MiscCheck};
use rvs_health::{Event, Monitor, MonitorConfig, State, Target};

fn http_target(addr: SocketAddr, path: &str, c: Common) -> Target {
    Target {
        addr,
        spec: spec(CheckKind::Http(http(vec![url(path)])), c),
    }
}

fn fast(delay_loop_ms: u64) -> Common {
    Common {
        connect_timeout: Duration::from_millis(1000),
        retry: 0,
        delay_before_retry: Duration::from_millis(50),
        delay_loop: Duration::from_millis(delay_loop_ms),
        // first probe within 5 ms
        warmup: Some(Duration::from_millis(5)),
        ..Common::default()
    }
}

struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rvs-health-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn misc_target(script: String, c: Common, dynamic: bool) -> Target {
    Target {
        addr: "127.0.0.1:9".parse().unwrap(),
        spec: CheckSpec {
            kind: CheckKind::Misc(MiscCheck {
                path: script,
                timeout: Some(Duration::from_secs(2)),
                dynamic,
                user: None,
            }),
            common: c,
        },
    }
}

fn recv_for(rx: &mpsc::Receiver<Event>, limit: Duration) -> Option<Event> {
    rx.recv_timeout(limit).ok()
}

fn router_ok() -> Router {
    Arc::new(|_p: &str| Reply::ok("ok"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_one_check() {
    let (addr, seen) = http_server(router_ok()).await;
    let (tx, _rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig { max_concurrent: 8 }, tx).unwrap();
    let a = http_target(addr, "/a", fast(100));
    let b = http_target(addr, "/b", fast(100));
    // the same (addr, spec) from three virtual services, and another check
    mon.set(vec![a.clone(), b.clone(), a.clone(), a.clone()]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let snap = mon.snapshot();
    assert_eq!(snap.len(), 2, "{snap:?}");
    let (na, nb) = (seen.hits_of("/a"), seen.hits_of("/b"));
    // about one probe per 100 ms each (10); three checks for /a would
    // make it ~30; the low bound only allows for a loaded machine
    assert!((3..=13).contains(&na), "/a probed {na} times");
    assert!((3..=13).contains(&nb), "/b probed {nb} times");
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_carries_over_set_and_removed_checks_stop() {
    let dir = TmpDir::new("carry");
    let runs = dir.0.join("runs");
    let flag = dir.0.join("up");
    // down until the flag file exists; counts its runs
    let script = format!("echo x >> {}; test -e {}", runs.display(), flag.display());
    let t1 = misc_target(script, fast(150), false);
    let t2 = misc_target("exit 1".into(), fast(150), false);
    let (tx, rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig { max_concurrent: 4 }, tx).unwrap();
    mon.set(vec![t1.clone()]);
    let ev = recv_for(&rx, Duration::from_secs(3)).expect("a down event");
    assert_eq!((ev.target.clone(), ev.state), (t1.clone(), State::Down));
    assert!(ev.reason.contains("exit status 1"), "{}", ev.reason);
    // a reload with t1 unchanged and t2 new: t1 keeps its state (a fresh
    // t1 would start up and report Down again)
    mon.set(vec![t2.clone(), t1.clone()]);
    let ev = recv_for(&rx, Duration::from_secs(3)).expect("t2's down event");
    assert_eq!((ev.target.clone(), ev.state), (t2.clone(), State::Down));
    assert!(
        recv_for(&rx, Duration::from_millis(500)).is_none(),
        "t1 reported again"
    );
    let snap = mon.snapshot();
    let s1 = snap.iter().find(|s| s.target == t1).unwrap();
    assert_eq!(s1.state, State::Down);
    assert!(s1.has_run);
    // it comes back up
    std::fs::write(&flag, b"").unwrap();
    let ev = recv_for(&rx, Duration::from_secs(3)).expect("an up event");
    assert_eq!((ev.target.clone(), ev.state), (t1.clone(), State::Up));
    assert_eq!(mon.state(&t1), Some(State::Up));
    // removed: no longer probed or listed
    mon.set(vec![t2.clone()]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let count = |p: &PathBuf| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let before = count(&runs);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count(&runs), before, "a removed check still runs");
    assert_eq!(mon.state(&t1), None);
    assert_eq!(mon.snapshot().len(), 1);
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misc_dynamic_weights_and_retries_through_monitor() {
    let dir = TmpDir::new("dyn");
    let code = dir.0.join("code");
    std::fs::write(&code, "5").unwrap();
    let mut c = fast(100);
    c.retry = 2;
    c.delay_before_retry = Duration::from_millis(30);
    let t = misc_target(format!("exit $(cat {})", code.display()), c, true);
    let seen: Arc<Mutex<Vec<(State, Instant)>>> = Arc::default();
    let s2 = seen.clone();
    // a closure as the sink
    let mon = Monitor::start(MonitorConfig { max_concurrent: 2 }, move |ev: Event| {
        s2.lock().unwrap().push((ev.state, Instant::now()));
    })
    .unwrap();
    mon.set(vec![t.clone()]);
    let has = |st: State| seen.lock().unwrap().iter().any(|(s, _)| *s == st);
    assert!(eventually(Duration::from_secs(3), || has(State::UpWeight(3))).await);
    std::fs::write(&code, "7").unwrap();
    assert!(eventually(Duration::from_secs(3), || has(State::UpWeight(5))).await);
    std::fs::write(&code, "1").unwrap();
    let t_fail = Instant::now();
    assert!(eventually(Duration::from_secs(3), || has(State::Down)).await);
    // down only after the 2 retries 30 ms apart: at least 60 ms of failures
    let down_at = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(s, _)| *s == State::Down)
        .unwrap()
        .1;
    assert!(down_at.duration_since(t_fail) >= Duration::from_millis(60));
    std::fs::write(&code, "0").unwrap();
    assert!(eventually(Duration::from_secs(3), || has(State::Up)).await);
    let states: Vec<State> = seen.lock().unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(
        states,
        vec![
            State::UpWeight(3),
            State::UpWeight(5),
            State::Down,
            State::Up
        ]
    );
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpha_starts_down_and_http_failure_is_reported() {
    let status = Arc::new(Mutex::new(200u16));
    let s2 = status.clone();
    let (addr, _) = http_server(Arc::new(move |_p: &str| Reply {
        status: *s2.lock().unwrap(),
        ..Reply::ok("x")
    }))
    .await;
    let mut c = fast(100);
    c.alpha = true;
    let t = http_target(addr, "/", c);
    let (tx, rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig::default(), tx).unwrap();
    mon.set(vec![t.clone()]);
    // before its first probe the check is down (alpha)
    assert!(eventually(Duration::from_secs(1), || mon.state(&t).is_some()).await);
    let ev = recv_for(&rx, Duration::from_secs(3)).unwrap();
    assert_eq!(ev.state, State::Up);
    *status.lock().unwrap() = 503;
    let ev = recv_for(&rx, Duration::from_secs(3)).unwrap();
    assert_eq!(ev.state, State::Down);
    assert!(ev.reason.contains("status 503"), "{}", ev.reason);
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpha_initial_state_is_down_in_snapshot() {
    let (tx, _rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig::default(), tx).unwrap();
    let mut c = fast(60_000);
    c.alpha = true;
    c.warmup = Some(Duration::from_secs(30)); // not probed during the test
    let t = misc_target("exit 0".into(), c, false);
    let mut c2 = fast(60_000);
    c2.warmup = Some(Duration::from_secs(30));
    let t2 = misc_target("exit 1".into(), c2, false);
    mon.set(vec![t.clone(), t2.clone()]);
    assert!(eventually(Duration::from_secs(1), || mon.snapshot().len() == 2).await);
    assert_eq!(mon.state(&t), Some(State::Down));
    assert_eq!(mon.state(&t2), Some(State::Up));
    assert!(mon.snapshot().iter().all(|s| !s.has_run));
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_in_flight_never_exceed_the_bound() {
    // each answer held 100 ms; 40 checks every 400 ms would want ~10 in
    // flight at once; the bound is 4
    let (addr, seen) = http_server(Arc::new(|_p: &str| Reply {
        hold: Duration::from_millis(100),
        ..Reply::ok("ok")
    }))
    .await;
    let (tx, rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig { max_concurrent: 4 }, tx).unwrap();
    let mut c = fast(400);
    c.warmup = None; // spread by the per-target offset within delay_loop
    let targets: Vec<Target> = (0..40)
        .map(|i| http_target(addr, &format!("/{i}"), c.clone()))
        .collect();
    mon.set(targets);
    let mut max_seen_by_monitor = 0;
    let end = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < end {
        max_seen_by_monitor = max_seen_by_monitor.max(mon.probes_in_flight());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let max_open = seen.max_open.load(Ordering::SeqCst);
    let hits = seen.hits.lock().unwrap().len();
    println!(
        "server saw at most {max_open} at once, monitor {max_seen_by_monitor}, {hits} requests"
    );
    assert!(max_open <= 4, "server saw {max_open} probes at once");
    assert!(
        max_seen_by_monitor <= 4,
        "monitor had {max_seen_by_monitor} in flight"
    );
    // the bound was actually reached: the load needed it
    assert_eq!(max_open, 4);
    // 4 at a time, 100 ms each: at most ~80 requests in 2 s, and no event
    // (every probe passes, just late)
    assert!((30..=84).contains(&hits), "{hits} requests");
    assert!(rx.try_recv().is_err());
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_probes_are_spread() {
    let (addr, seen) = http_server(router_ok()).await;
    let (tx, _rx) = mpsc::channel();
    let mon = Monitor::start(
        MonitorConfig {
            max_concurrent: 1000,
        },
        tx,
    )
    .unwrap();
    // no warmup: per-target offsets within delay_loop (2 s)
    let mut c = fast(2000);
    c.warmup = None;
    let n = 60;
    let targets: Vec<Target> = (0..n)
        .map(|i| http_target(addr, &format!("/s{i}"), c.clone()))
        .collect();
    let t0 = Instant::now();
    mon.set(targets);
    assert!(
        eventually(Duration::from_secs(4), || {
            let h = seen.hits.lock().unwrap();
            (0..n).all(|i| h.iter().any(|(p, _)| *p == format!("/s{i}")))
        })
        .await,
        "not every check probed within delay_loop"
    );
    let firsts: Vec<Duration> = {
        let h = seen.hits.lock().unwrap();
        (0..n)
            .map(|i| {
                let p = format!("/s{i}");
                h.iter()
                    .find(|(q, _)| *q == p)
                    .unwrap()
                    .1
                    .duration_since(t0)
            })
            .collect()
    };
    let max = firsts.iter().max().unwrap();
    let min = firsts.iter().min().unwrap();
    assert!(*max < Duration::from_millis(2300), "first probe at {max:?}");
    assert!(
        *max - *min > Duration::from_millis(1200),
        "first probes between {min:?} and {max:?}"
    );
    // no 100 ms window holds more than a quarter of them
    let mut bins = [0usize; 30];
    for f in &firsts {
        bins[(f.as_millis() / 100).min(29) as usize] += 1;
    }
    let busiest = bins.iter().max().unwrap();
    assert!(
        *busiest <= n / 4,
        "{busiest} of {n} first probes in one 100 ms window: {bins:?}"
    );

    // with warmup: random within warmup (300 ms), though delay_loop is long
    let (addr2, seen2) = http_server(router_ok()).await;
    let mut c = fast(60_000);
    c.warmup = Some(Duration::from_millis(300));
    let targets: Vec<Target> = (0..20)
        .map(|i| http_target(addr2, &format!("/w{i}"), c.clone()))
        .collect();
    let t1 = Instant::now();
    mon.set(targets);
    assert!(
        eventually(Duration::from_secs(2), || seen2.hits.lock().unwrap().len()
            >= 20)
        .await
    );
    let h = seen2.hits.lock().unwrap();
    let last = h.iter().map(|(_, t)| t.duration_since(t1)).max().unwrap();
    let first = h.iter().map(|(_, t)| t.duration_since(t1)).min().unwrap();
    assert!(last < Duration::from_millis(600), "{last:?}");
    assert!(
        last - first > Duration::from_millis(100),
        "warmup did not spread: {first:?}..{last:?}"
    );
    drop(h);
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_every_check() {
    let (addr, seen) = http_server(router_ok()).await;
    let (tx, _rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig::default(), tx).unwrap();
    mon.set(
        (0..10)
            .map(|i| http_target(addr, &format!("/{i}"), fast(50)))
            .collect(),
    );
    assert!(
        eventually(Duration::from_secs(2), || seen.hits.lock().unwrap().len()
            >= 20)
        .await
    );
    mon.stop();
    let n = seen.hits.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.hits.lock().unwrap().len(), n, "probes after stop");
}

#[test]
fn dropping_the_monitor_stops_it_from_a_plain_thread() {
    // the daemon's threads are plain threads: no runtime around
    let (tx, rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig::default(), tx).unwrap();
    mon.set(vec![misc_target("exit 1".into(), fast(50), false)]);
    let ev = rx.recv_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!(ev.state, State::Down);
    drop(mon);
    // the sender went with the monitor's thread
    let end = Instant::now() + Duration::from_secs(1);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            _ if Instant::now() > end => panic!("sink still held after drop"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_running_misc_check_kills_its_program() {
    let dir = TmpDir::new("rm-running");
    let pidfile = dir.0.join("pid");
    let mut c = fast(60_000);
    c.warmup = Some(Duration::from_millis(1));
    let t = misc_target(
        format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        c,
        false,
    );
    let (tx, _rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig::default(), tx).unwrap();
    mon.set(vec![t]);
    assert!(
        eventually(Duration::from_secs(3), || pidfile.exists()
            && std::fs::read_to_string(&pidfile)
                .is_ok_and(|s| s.ends_with('\n')))
        .await
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    mon.set(vec![]);
    let gone = eventually(Duration::from_secs(3), || process_gone(pid)).await;
    assert!(gone, "the removed check's program {pid} still runs");
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_checks_spread_and_bounded() {
    // one listener; 1000 distinct TCP checks (they differ in connect_timeout)
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a2 = accepts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            a2.lock().unwrap().push(Instant::now());
            drop(s);
        }
    });
    let (tx, rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig { max_concurrent: 16 }, tx).unwrap();
    let n = 1000;
    let targets: Vec<Target> = (0..n)
        .map(|i| {
            let mut c = fast(1000);
            c.warmup = None;
            c.connect_timeout = Duration::from_millis(2000 + i);
            Target {
                addr,
                spec: spec(CheckKind::Tcp, c),
            }
        })
        .collect();
    let t0 = Instant::now();
    mon.set(targets);
    assert!(
        eventually(Duration::from_secs(2), || mon.snapshot().len()
            == n as usize)
        .await
    );
    println!("set of {n} applied in {:?}", t0.elapsed());
    let mut max_in_flight = 0;
    let end = t0 + Duration::from_millis(1100);
    while Instant::now() < end {
        max_in_flight = max_in_flight.max(mon.probes_in_flight());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        eventually(Duration::from_secs(2), || accepts.lock().unwrap().len()
            >= n as usize)
        .await
    );
    assert!(max_in_flight <= 16, "{max_in_flight} probes in flight");
    let firsts: Vec<Duration> = accepts
        .lock()
        .unwrap()
        .iter()
        .take(n as usize)
        .map(|t| t.duration_since(t0))
        .collect();
    let mut bins = [0usize; 10];
    for f in &firsts {
        bins[(f.as_millis() / 100).min(9) as usize] += 1;
    }
    println!("first probes per 100 ms: {bins:?}, at most {max_in_flight} in flight");
    // uniform would be 100 a bin; all at once would be 1000 in the first
    assert!(bins.iter().all(|&b| b <= 250), "{bins:?}");
    assert_eq!(mon.snapshot().len(), n as usize);
    assert!(rx.try_recv().is_err(), "a check changed state");
    mon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_goes_down_within_bound_and_returns() {
    // issue 4's lab case, on loopback: stop the HTTP server, the check is
    // down within delay_loop + (connect_timeout + delay_before_retry) × retry
    // + connect_timeout; start it again and it is up within delay_loop
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let serve = |l: tokio::net::TcpListener| {
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await;
                    let _ = s.shutdown().await;
                });
            }
        })
    };
    let server = serve(l);
    let c = Common {
        connect_timeout: Duration::from_millis(200),
        retry: 2,
        delay_before_retry: Duration::from_millis(100),
        delay_loop: Duration::from_millis(300),
        warmup: Some(Duration::from_millis(5)),
        ..Common::default()
    };
    let bound =
        c.delay_loop + (c.connect_timeout + c.delay_before_retry) * c.retry + c.connect_timeout;
    let t = http_target(addr, "/", c.clone());
    let (tx, rx) = mpsc::channel();
    let mon = Monitor::start(MonitorConfig::default(), tx).unwrap();
    mon.set(vec![t.clone()]);
    assert!(
        eventually(Duration::from_secs(2), || mon
            .snapshot()
            .iter()
            .any(|s| s.has_run))
        .await
    );
    assert_eq!(mon.state(&t), Some(State::Up));
    server.abort();
    let _ = server.await;
    let stopped = Instant::now();
    let ev = recv_for(&rx, Duration::from_secs(5)).expect("down");
    let took = stopped.elapsed();
    assert_eq!(ev.state, State::Down);
    assert!(ev.reason.contains("refused"), "{}", ev.reason);
    // at least the retries' spacing, at most the bound (plus scheduling slack)
    assert!(took >= c.delay_before_retry * c.retry, "{took:?}");
    assert!(
        took <= bound + Duration::from_millis(300),
        "{took:?} > {bound:?}"
    );
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let started = Instant::now();
    let _server = serve(l);
    let ev = recv_for(&rx, Duration::from_secs(5)).expect("up");
    assert_eq!(ev.state, State::Up);
    assert!(
        started.elapsed() <= c.delay_loop + Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    mon.stop();
}
