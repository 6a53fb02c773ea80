//! keepalived.conf and health checks, end to end: rvsd runs a keepalived
//! configuration in the lab's director; real servers fail and recover
//! (their HTTP servers killed and restarted), the sorry server takes over
//! when the quorum is lost, HTTP_GET status and digest checks and a
//! misc_dynamic MISC_CHECK act on the table, a reload under load loses no
//! request, and the seeds' fwmark configuration runs. Skipped, with the
//! reason, when not root.

use rvs_lab::{Http, Topology, VIP_DR, VIP_NAT, distribution, rip, unavailable};
use std::time::{Duration, Instant};

fn exe() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"))
}

fn skip(name: &str) -> bool {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED {name}: {why}");
        return true;
    }
    false
}

/// The real servers (address and weight) of the service listed with
/// `head` in `ipvsadm -L -n`.
fn reals(t: &Topology, head: &str) -> Vec<(String, u32)> {
    let out = t.list("-L -n").unwrap_or_default();
    let mut v = Vec::new();
    let mut inside = false;
    for l in out.lines() {
        if !l.starts_with("  ->") {
            inside = l.starts_with(head);
            continue;
        }
        if inside {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let (Some(a), Some(w)) = (f.get(1), f.get(3)) {
                v.push((a.to_string(), w.parse().unwrap_or(u32::MAX)));
            }
        }
    }
    v.sort();
    v
}

/// Waits (bounded) until `reals` of `head` equals `want`; returns how long
/// it took.
fn wait_reals(t: &Topology, head: &str, want: &[(&str, u32)], limit: Duration) -> Duration {
    let want: Vec<(String, u32)> = want.iter().map(|(a, w)| (a.to_string(), *w)).collect();
    let t0 = Instant::now();
    loop {
        let have = reals(t, head);
        if have == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "after {limit:?} the table of {head} is {have:?}, not {want:?}\n{}",
            std::fs::read_to_string(t.lab.dir.join("rvsd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ep(k: usize, port: u16) -> String {
    format!("{}:{port}", rip(k))
}

fn start_http(t: &mut Topology, k: usize) {
    let www = t.lab.dir.join(format!("s{k}")).display().to_string();
    t.lab
        .spawn(
            &format!("s{k}"),
            &[
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                "::",
                "--directory",
                &www,
            ],
            None,
        )
        .unwrap();
}

fn stop_http(t: &Topology, k: usize) {
    assert!(
        t.lab.kill_matching(&format!("s{k}"), "http.server 80 ") > 0,
        "no HTTP server on port 80 of s{k}"
    );
}

const TCP_CHECK: &str = "TCP_CHECK {\n connect_timeout 1\n retry 1\n delay_before_retry 1\n }";

fn nat_service(reals: &[usize], extra: &str) -> String {
    let mut s = format!(
        "virtual_server {VIP_NAT} 80 {{\n delay_loop 1\n lb_algo rr\n lb_kind NAT\n protocol TCP\n{extra}\n"
    );
    for k in reals {
        s += &format!(
            " real_server {} 80 {{\n  weight 1\n  {TCP_CHECK}\n }}\n",
            rip(*k)
        );
    }
    s + "}\n"
}

#[test]
fn failed_server_gets_no_new_connections_and_returns() {
    if skip("failed_server_gets_no_new_connections_and_returns") {
        return;
    }
    let conf = format!(
        "global_defs {{\n router_id lab\n}}\n{}",
        nat_service(&[1, 2, 3], "")
    );
    let mut t = Topology::build_keepalived(&exe(), 3, Http::Python, &conf).unwrap();
    let head = format!("TCP  {VIP_NAT}:80");
    let all = [(ep(1, 80), 1), (ep(2, 80), 1), (ep(3, 80), 1)];
    let all: Vec<(&str, u32)> = all.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    wait_reals(&t, &head, &all, Duration::from_secs(5));
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 30));
    assert_eq!(d.len(), 3, "{d:?}");
    stop_http(&t, 2);
    // delay_loop + connect_timeout x (retry + 1) = 1 + 1 x 2 = 3 s, plus
    // the retry's delay_before_retry (1 s) and a margin for a busy machine.
    let took = wait_reals(&t, &head, &[all[0], all[2]], Duration::from_secs(3 + 1 + 2));
    eprintln!("rs2 out of the table {took:?} after its HTTP server stopped");
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 30));
    assert_eq!(
        d.keys().cloned().collect::<Vec<_>>(),
        ["rs1", "rs3"],
        "the others carry every request, none fails: {d:?}"
    );
    assert_eq!(d.values().sum::<usize>(), 30);
    start_http(&mut t, 2);
    let took = wait_reals(&t, &head, &all, Duration::from_secs(5));
    eprintln!("rs2 back {took:?} after its HTTP server started");
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 30));
    assert_eq!(d.len(), 3, "{d:?}");
}

#[test]
fn sorry_server_answers_while_all_are_down() {
    if skip("sorry_server_answers_while_all_are_down") {
        return;
    }
    // s3 is the sorry server, outside the pool; the quorum scripts and
    // rs1's notify scripts append to a file.
    let log = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let l = log.display();
    let conf = nat_service(
        &[1, 2],
        &format!(
            " sorry_server {} 80\n quorum_up \"/bin/sh -c 'echo quorum_up >> {l}'\"\n quorum_down \"/bin/sh -c 'echo quorum_down >> {l}'\"",
            rip(3)
        ),
    );
    let mut t = Topology::build_keepalived(&exe(), 3, Http::Python, &conf).unwrap();
    let head = format!("TCP  {VIP_NAT}:80");
    let (e1, e2, e3) = (ep(1, 80), ep(2, 80), ep(3, 80));
    wait_reals(&t, &head, &[(&e1, 1), (&e2, 1)], Duration::from_secs(5));
    stop_http(&t, 1);
    stop_http(&t, 2);
    wait_reals(&t, &head, &[(&e3, 1)], Duration::from_secs(8));
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 10));
    assert_eq!(d.get("rs3"), Some(&10), "{d:?}");
    start_http(&mut t, 1);
    wait_reals(&t, &head, &[(&e1, 1)], Duration::from_secs(5));
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 10));
    assert_eq!(d.get("rs1"), Some(&10), "{d:?}");
    // The quorum went down once and came back once; the scripts ran.
    let t0 = Instant::now();
    let mut said = String::new();
    while t0.elapsed() < Duration::from_secs(5) {
        said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&log);
    assert_eq!(said, "quorum_down\nquorum_up\n");
}

/// MD5 of `body` in hex (Python's hashlib, run here: no network).
fn md5_hex(body: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import hashlib; print(hashlib.md5(b{body:?}).hexdigest())"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn http_status_digest_and_misc_dynamic_act_on_the_table() {
    if skip("http_status_digest_and_misc_dynamic_act_on_the_table") {
        return;
    }
    let rs1 = md5_hex("rs1\n");
    assert_eq!(rs1.len(), 32, "{rs1}");
    let http = |status: u16, digest: &str| {
        format!(
            "HTTP_GET {{\n url {{\n path /index.html\n status_code {status}\n digest {digest}\n }}\n connect_timeout 1\n retry 1\n delay_before_retry 1\n }}"
        )
    };
    let conf = format!(
        "virtual_server {VIP_NAT} 80 {{\n delay_loop 1\n lb_algo wrr\n lb_kind NAT\n protocol TCP\n\
         real_server {r1} 80 {{\n weight 2\n {ok}\n }}\n\
         real_server {r2} 80 {{\n weight 2\n {bad_digest}\n }}\n\
         real_server {r3} 80 {{\n weight 2\n {bad_status}\n }}\n\
         real_server {r4} 80 {{\n weight 2\n MISC_CHECK {{\n misc_path \"exit 7\"\n misc_timeout 2\n misc_dynamic\n }}\n }}\n}}\n",
        r1 = rip(1),
        r2 = rip(2),
        r3 = rip(3),
        r4 = rip(4),
        ok = http(200, &rs1),
        // rs2's body is "rs2\n": rs1's digest does not match it.
        bad_digest = http(200, &rs1),
        bad_status = http(404, &rs1),
    );
    let t = Topology::build_keepalived(&exe(), 4, Http::Python, &conf).unwrap();
    let head = format!("TCP  {VIP_NAT}:80");
    // MISC_CHECK's exit 7 under misc_dynamic: up with weight 7 - 2 = 5.
    let (e1, e4) = (ep(1, 80), ep(4, 80));
    wait_reals(&t, &head, &[(&e1, 2), (&e4, 5)], Duration::from_secs(8));
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 14));
    assert_eq!(d.get("rs1"), Some(&4), "wrr 2:5 over 14: {d:?}");
    assert_eq!(d.get("rs4"), Some(&10), "wrr 2:5 over 14: {d:?}");
}

#[test]
fn reload_under_load_fails_no_request() {
    if skip("reload_under_load_fails_no_request") {
        return;
    }
    if std::process::Command::new("wrk")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED reload_under_load_fails_no_request: wrk is not installed");
        return;
    }
    let t = Topology::build_keepalived(&exe(), 3, Http::Nginx, &nat_service(&[1, 2], "")).unwrap();
    let head = format!("TCP  {VIP_NAT}:80");
    let (e1, e2, e3) = (ep(1, 80), ep(2, 80), ep(3, 80));
    wait_reals(&t, &head, &[(&e1, 1), (&e2, 1)], Duration::from_secs(5));
    let conf = t.lab.dir.join("keepalived.conf");
    let url = format!("http://{VIP_NAT}/");
    let ns = t.lab.ns("c");
    let wrk = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "wrk", "-t1", "-c8", "-d6s", &url])
            .output()
    });
    let reload = |servers: &[usize]| {
        std::fs::write(&conf, nat_service(servers, "")).unwrap();
        match rvsd::server::request(&t.socket, &rvsd::proto::Request::Reload).unwrap() {
            rvsd::proto::Response::Done => {}
            other => panic!("reload: {other:?}"),
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    reload(&[1, 2, 3]);
    wait_reals(
        &t,
        &head,
        &[(&e1, 1), (&e2, 1), (&e3, 1)],
        Duration::from_secs(3),
    );
    std::thread::sleep(Duration::from_secs(1));
    reload(&[2, 3]);
    wait_reals(&t, &head, &[(&e2, 1), (&e3, 1)], Duration::from_secs(3));
    let out = wrk.join().unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 100, "wrk did not run: {text}");
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    // wrk does not count a request that stalls until the end of the run (a
    // keep-alive connection of a removed server whose packets are dropped):
    // the director's counters say that none was (TCP's default is keep).
    let stats = match rvsd::server::request(&t.socket, &rvsd::proto::Request::Stats).unwrap() {
        rvsd::proto::Response::Stats(s) => s,
        other => panic!("{other:?}"),
    };
    for (reason, n) in &stats.drops {
        if reason.starts_with("nodest") {
            assert_eq!(*n, 0, "{reason}: {:?}", stats.drops);
        }
    }
}

#[test]
fn seed_fwmark_configuration_runs() {
    if skip("seed_fwmark_configuration_runs") {
        return;
    }
    // shared/seeds/004 (two-node setup with overlapping client subnets):
    // its keepalived.conf with the lab's real servers for 172.16.10.3/.4.
    let conf = format!(
        "vrrp_sync_group mylvs {{\n  group {{\n    VI_1\n  }}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface d0\n  virtual_router_id 10\n  priority 100\n  virtual_ipaddress {{\n    {VIP_DR} # Main virtual IP\n  }}\n}}\n\
         virtual_server fwmark 310 {{\n  lb_algo lc\n  lb_kind DR\n  persistence_timeout 0\n  delay_loop 20\n  protocol TCP\n\
           real_server {r1} 80 {{\n    weight 1\n  }}\n  real_server {r2} 80 {{\n    weight 1\n  }}\n}}\n",
        r1 = rip(1),
        r2 = rip(2),
    );
    let t = Topology::build_keepalived(&exe(), 2, Http::Python, &conf).unwrap();
    // DR keeps the packet's port: ipvsadm gives a fwmark service's DR real
    // servers port 0, and keepalived does the same.
    let (e1, e2) = (ep(1, 0), ep(2, 0));
    wait_reals(
        &t,
        "FWM  310 lc",
        &[(&e1, 1), (&e2, 1)],
        Duration::from_secs(5),
    );
    let listing = t.list("-L -n").unwrap();
    assert!(listing.contains("FWM  310 lc\n"), "{listing}");
    assert!(listing.contains("Route"), "{listing}");
    // The seed's own kind of mark rule (its eth0.10 rule, on the lab's d0):
    // marked HTTP to the VIP is balanced by the fwmark service.
    t.lab
        .exec(
            "d",
            &[
                "iptables",
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-i",
                "d0",
                "-d",
                VIP_DR,
                "-p",
                "tcp",
                "--dport",
                "80",
                "-j",
                "MARK",
                "--set-mark",
                "310",
            ],
        )
        .unwrap();
    let answers = t.http(&format!("http://{VIP_DR}/"), 10);
    let d = distribution(&answers);
    assert_eq!(
        d.values().sum::<usize>(),
        10,
        "every request answered by a real server: {answers:?}"
    );
    assert!(d.contains_key("rs1") && d.contains_key("rs2"), "{d:?}");
    let stats = t.list("-L -n --stats --exact").unwrap();
    let line = stats
        .lines()
        .find(|l| l.starts_with("FWM  310"))
        .unwrap_or_else(|| panic!("{stats}"));
    let conns: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(conns, 10, "{stats}");
}
