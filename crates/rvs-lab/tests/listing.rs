//! ipvsadm's listings and table commands against live lab traffic through
//! rvsd: `-L -n -c` shows an open stream's connection ESTABLISHED, `-Z`
//! zeroes the counters real requests moved, and `-S`, `-C`, `-R` restore
//! the same table, which then serves again. Skipped, with the reason, when
//! not root.

use rvs_lab::{Topology, VIP_NAT, distribution, rip, unavailable};
use std::time::{Duration, Instant};

/// The Conns column of the service `head` in `-L -n --stats --exact`.
fn conns(t: &Topology, head: &str) -> u64 {
    let out = t.list("-L -n --stats --exact").unwrap();
    out.lines()
        .find(|l| l.starts_with(head))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {head} in\n{out}"))
}

#[test]
fn connections_listed_zeroed_and_table_saved_cleared_restored() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED connections_listed_zeroed_and_table_saved_cleared_restored: {why}");
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
    let mut t = Topology::build(&exe, 2).unwrap();
    t.tcp_echo(7000).unwrap();
    t.ipvsadm(&[
        &format!("-A -t {VIP_NAT}:80 -s wrr"),
        &format!("-a -t {VIP_NAT}:80 -r {}:8080 -m -w 2", rip(1)),
        &format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(2)),
        &format!("-A -t {VIP_NAT}:7000 -s wlc -p 60"),
        &format!("-a -t {VIP_NAT}:7000 -r {}:7000 -m", rip(1)),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // An open stream: listed ESTABLISHED with its client, VIP and server.
    let script = format!(
        "import socket,time\ns=socket.create_connection(('{VIP_NAT}',7000),timeout=3)\ns.sendall(b'x\\n'); s.recv(10)\nprint('open',flush=True)\ntime.sleep(20)\n"
    );
    t.lab
        .spawn("c", &["python3", "-c", &script], Some("stream.log"))
        .unwrap();
    let t0 = Instant::now();
    let listed = loop {
        let c = t.list("-L -n -c").unwrap();
        if c.lines()
            .any(|l| l.contains(":7000") && l.contains("ESTABLISHED"))
        {
            break c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no stream listed:\n{c}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        listed.starts_with("IPVS connection entries\npro expire state"),
        "{listed}"
    );
    let line = listed
        .lines()
        .find(|l| l.contains(":7000") && l.contains("ESTABLISHED"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[0], "TCP", "{line}");
    assert!(f[3].starts_with("10.10.0.2:"), "the client: {line}");
    assert_eq!(f[4], format!("{VIP_NAT}:7000"), "{line}");
    assert_eq!(f[5], format!("{}:7000", rip(1)), "{line}");
    // The persistence template is listed too (client port 0, NONE).
    assert!(
        listed
            .lines()
            .any(|l| l.contains("NONE") && l.contains("10.10.0.2:0")),
        "{listed}"
    );
    // Real requests move the counters; -Z zeroes them.
    let head = format!("TCP  {VIP_NAT}:80");
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 9));
    assert_eq!((d.get("rs1"), d.get("rs2")), (Some(&6), Some(&3)), "{d:?}");
    assert_eq!(conns(&t, &head), 9);
    t.ipvsadm(&["-Z"]).unwrap();
    assert_eq!(conns(&t, &head), 0);
    let stats = t.list("-L -n --stats --exact").unwrap();
    let svc = stats.lines().find(|l| l.starts_with(&head)).unwrap();
    assert!(
        svc.split_whitespace().skip(2).all(|n| n == "0"),
        "every counter zeroed: {svc}"
    );
    // -S, -C, -R: the same table, serving again.
    let saved = t.list("-S -n").unwrap();
    assert_eq!(saved.lines().count(), 5, "{saved}");
    t.ipvsadm(&["-C"]).unwrap();
    assert_eq!(t.list("-S -n").unwrap(), "");
    let lines: Vec<&str> = saved.lines().collect();
    t.ipvsadm(&lines).unwrap();
    assert_eq!(t.list("-S -n").unwrap(), saved);
    let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 3));
    assert_eq!((d.get("rs1"), d.get("rs2")), (Some(&2), Some(&1)), "{d:?}");
}
