//! In the lab, through rvsd: a quiescent real server (weight 0) keeps its
//! open TCP stream and gets no new connections; a removed one keeps its
//! stream too (rvs's default for TCP, `nodest = "keep"`); with
//! `expire_nodest_conn = false` (IPVS's default, drop) its stream stalls and
//! the drops are counted; with `expire_nodest_conn = true` (expire) the
//! stream is lost and its entry flushed; a UDP flow to a removed server is
//! answered by the remaining one on its very next datagram (rvs's default
//! for UDP, expire); malformed traffic (bad checksums, bogus TCP flags,
//! fragments, from hping3) is dropped and counted while the director keeps
//! serving. Skipped, with the reason, when not root.

use rvs_lab::{Topology, VIP_NAT, rip, unavailable};
use std::time::{Duration, Instant};

fn wait_line(t: &Topology, file: &str, want: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if std::fs::read_to_string(t.lab.dir.join(file))
            .unwrap_or_default()
            .contains(want)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn stats(t: &Topology) -> rvsd::proto::DaemonStats {
    match rvsd::server::request(&t.socket, &rvsd::proto::Request::Stats).unwrap() {
        rvsd::proto::Response::Stats(s) => *s,
        other => panic!("unexpected {other:?}"),
    }
}

fn drop_count(s: &rvsd::proto::DaemonStats, reason: &str) -> u64 {
    s.drops
        .iter()
        .find(|(k, _)| k == reason)
        .map(|x| x.1)
        .unwrap_or(0)
}

#[test]
fn quiescent_and_removed_servers_keep_streams_and_bad_traffic_is_counted() {
    if let Some(why) = unavailable() {
        eprintln!(
            "SKIPPED quiescent_and_removed_servers_keep_streams_and_bad_traffic_is_counted: {why}"
        );
        return;
    }
    if std::process::Command::new("hping3")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: hping3 is not installed (scripts/test installs it)");
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
    let mut t = Topology::build(&exe, 2).unwrap();
    t.tcp_echo(7000).unwrap();
    t.ipvsadm(&[
        &format!("-A -t {VIP_NAT}:7000 -s rr"),
        &format!("-a -t {VIP_NAT}:7000 -r {}:7000 -m", rip(1)),
        &format!("-a -t {VIP_NAT}:7000 -r {}:7000 -m", rip(2)),
        &format!("-A -t {VIP_NAT}:80 -s rr"),
        &format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(1)),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A long-lived stream: one line, then wait for go1, a line, go2, a line.
    let go1 = t.lab.dir.join("go1");
    let go2 = t.lab.dir.join("go2");
    let script = format!(
        "import socket,os,time\n\
         s=socket.create_connection(('{VIP_NAT}',7000),timeout=5)\n\
         def line(x):\n    s.sendall(x+b'\\n'); r=b''\n    while not r.endswith(b'\\n'): r+=s.recv(100)\n    print('ok',r.decode().strip(),flush=True)\n\
         line(b'a')\n\
         for f in ['{g1}','{g2}']:\n    t0=time.time()\n    while not os.path.exists(f) and time.time()-t0<20: time.sleep(0.05)\n    line(os.path.basename(f).encode())\n",
        g1 = go1.display(),
        g2 = go2.display()
    );
    t.lab
        .spawn("c", &["python3", "-c", &script], Some("stream.log"))
        .unwrap();
    assert!(wait_line(&t, "stream.log", "ok a"), "no echo on the stream");
    // Which real server holds it?
    let conns = t.list("-L -n -c").unwrap();
    let line = conns
        .lines()
        .find(|l| l.contains(":7000") && l.contains("ESTABLISHED"))
        .unwrap_or_else(|| panic!("{conns}"));
    let (holder, other) = if line.contains(&rip(1)) {
        (rip(1), rip(2))
    } else {
        (rip(2), rip(1))
    };
    // Quiesce it: the stream goes on, new connections go to the other server.
    t.ipvsadm(&[&format!("-e -t {VIP_NAT}:7000 -r {holder}:7000 -m -w 0")])
        .unwrap();
    std::fs::write(&go1, "").unwrap();
    assert!(
        wait_line(&t, "stream.log", "ok go1"),
        "the quiescent server's stream stopped"
    );
    let one_shot = format!(
        "import socket\nfor i in range(4):\n    s=socket.create_connection(('{VIP_NAT}',7000),timeout=5); s.sendall(b'x\\n'); s.recv(10); s.close()\n"
    );
    t.lab.exec("c", &["python3", "-c", &one_shot]).unwrap();
    let conns = t.list("-L -n -c").unwrap();
    let new_on_holder = conns
        .lines()
        .filter(|l| l.contains(":7000") && l.contains(&holder) && !l.contains("ESTABLISHED"))
        .count();
    let new_on_other = conns
        .lines()
        .filter(|l| l.contains(":7000") && l.contains(&other))
        .count();
    assert_eq!(
        new_on_holder, 0,
        "a quiescent server got new connections:\n{conns}"
    );
    assert!(new_on_other >= 4, "{conns}");
    // Remove it (TCP's default, keep): its stream still flows, and nothing
    // is dropped for it.
    let before = stats(&t);
    t.ipvsadm(&[&format!("-d -t {VIP_NAT}:7000 -r {holder}:7000")])
        .unwrap();
    std::fs::write(&go2, "").unwrap();
    assert!(
        wait_line(&t, "stream.log", "ok go2"),
        "a removed server's stream stopped under TCP's default (keep)"
    );
    let after = stats(&t);
    for r in ["nodest_drop", "nodest_conn"] {
        assert_eq!(drop_count(&after, r), drop_count(&before, r), "{after:?}");
    }

    // Malformed traffic toward the VIP, from hping3.
    let before = stats(&t);
    let hp = |args: &[&str]| {
        let mut a = vec!["timeout", "10", "hping3", "-q", "-i", "u20000"];
        a.extend_from_slice(args);
        a.push(VIP_NAT);
        let _ = t.lab.exec("c", &a);
    };
    hp(&["-c", "5", "-S", "-p", "80", "--badcksum"]);
    hp(&["-c", "5", "-S", "-F", "-p", "80"]);
    hp(&["-c", "3", "-S", "-p", "80", "-f", "-d", "200"]);
    let after = stats(&t);
    let drop = drop_count;
    assert!(
        drop(&after, "bad_checksum") >= drop(&before, "bad_checksum") + 5,
        "{after:?}"
    );
    assert!(
        drop(&after, "bad_tcp_flags") >= drop(&before, "bad_tcp_flags") + 5,
        "{after:?}"
    );
    assert!(
        drop(&after, "fragment") >= drop(&before, "fragment") + 3,
        "{after:?}"
    );
    // And the director keeps serving.
    let answers = t.http(&format!("http://{VIP_NAT}/"), 3);
    assert_eq!(answers, ["rs1", "rs1", "rs1"]);
}

/// The lab with `director` in rvsd's `[director]`, an echo service on
/// port 7000 over two real servers, and a client stream that echoes a line,
/// then (once the stream's server is removed) tries another with a 3 s
/// timeout: `ok b` if it is answered, `lost <error>` if not. Returns the
/// topology, the removed server and the counters just before the removal.
fn stream_to_a_removed_server(director: &str) -> (Topology, String, rvsd::proto::DaemonStats) {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
    let mut t = Topology::build_full(&exe, 2, rvs_lab::Http::Python, director).unwrap();
    t.tcp_echo(7000).unwrap();
    t.ipvsadm(&[
        &format!("-A -t {VIP_NAT}:7000 -s rr"),
        &format!("-a -t {VIP_NAT}:7000 -r {}:7000 -m", rip(1)),
        &format!("-a -t {VIP_NAT}:7000 -r {}:7000 -m", rip(2)),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let go = t.lab.dir.join("go");
    let script = format!(
        "import socket,os,time\n\
         s=socket.create_connection(('{VIP_NAT}',7000),timeout=3)\n\
         def line(x):\n    s.sendall(x+b'\\n'); r=b''\n    while not r.endswith(b'\\n'): r+=s.recv(100)\n    print('ok',r.decode().strip(),flush=True)\n\
         line(b'a')\n\
         t0=time.time()\n\
         while not os.path.exists('{g}') and time.time()-t0<20: time.sleep(0.05)\n\
         try:\n    line(b'b')\nexcept Exception as e:\n    print('lost',type(e).__name__,flush=True)\n",
        g = go.display()
    );
    t.lab
        .spawn("c", &["python3", "-c", &script], Some("stream.log"))
        .unwrap();
    assert!(wait_line(&t, "stream.log", "ok a"));
    let conns = t.list("-L -n -c").unwrap();
    let line = conns
        .lines()
        .find(|l| l.contains(":7000") && l.contains("ESTABLISHED"))
        .unwrap_or_else(|| panic!("{conns}"));
    let holder = if line.contains(&rip(1)) {
        rip(1)
    } else {
        rip(2)
    };
    let before = stats(&t);
    t.ipvsadm(&[&format!("-d -t {VIP_NAT}:7000 -r {holder}:7000")])
        .unwrap();
    std::fs::write(&go, "").unwrap();
    (t, holder, before)
}

fn stream_log(t: &Topology) -> String {
    std::fs::read_to_string(t.lab.dir.join("stream.log")).unwrap_or_default()
}

#[test]
fn removed_server_with_expire_nodest_conn_on_loses_its_stream() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED removed_server_with_expire_nodest_conn_on_loses_its_stream: {why}");
        return;
    }
    let (t, holder, before) = stream_to_a_removed_server("expire_nodest_conn = true");
    // IPVS with expire_nodest_conn: the next packet is dropped and the entry
    // expired; the client's stream is gone.
    assert!(
        wait_line(&t, "stream.log", "lost"),
        "the stream survived: {}",
        stream_log(&t)
    );
    let after = stats(&t);
    assert!(
        drop_count(&after, "nodest_conn") > drop_count(&before, "nodest_conn"),
        "{after:?}"
    );
    assert_eq!(
        drop_count(&after, "nodest_drop"),
        drop_count(&before, "nodest_drop")
    );
    // The entry was flushed: nothing of the stream toward the removed server.
    let conns = t.list("-L -n -c").unwrap();
    assert!(
        !conns
            .lines()
            .any(|l| l.contains(":7000") && l.contains(&holder)),
        "{conns}"
    );
}

/// IPVS's default (expire_nodest_conn off): the removed server's stream
/// stalls, its packets dropped and counted, its entry kept (not refreshed).
#[test]
fn removed_server_with_expire_nodest_conn_off_stalls_its_stream() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED removed_server_with_expire_nodest_conn_off_stalls_its_stream: {why}");
        return;
    }
    let (t, holder, before) = stream_to_a_removed_server("expire_nodest_conn = false");
    // The next request gets no answer: the client times out (no reset).
    assert!(
        wait_line(&t, "stream.log", "lost"),
        "the stream was answered: {}",
        stream_log(&t)
    );
    let log = stream_log(&t);
    assert!(
        log.contains("lost TimeoutError") || log.contains("lost timeout"),
        "{log}"
    );
    assert!(!log.contains("ok b"), "{log}");
    let after = stats(&t);
    assert!(
        drop_count(&after, "nodest_drop") > drop_count(&before, "nodest_drop"),
        "{after:?}"
    );
    assert_eq!(
        drop_count(&after, "nodest_conn"),
        drop_count(&before, "nodest_conn")
    );
    // The entry is still there, toward the removed server.
    let conns = t.list("-L -n -c").unwrap();
    assert!(
        conns
            .lines()
            .any(|l| l.contains(":7000") && l.contains(&holder) && l.contains("ESTABLISHED")),
        "{conns}"
    );
    // New connections go to the server that is left.
    let one_shot = format!(
        "import socket\ns=socket.create_connection(('{VIP_NAT}',7000),timeout=3); s.sendall(b'n\\n'); print(s.recv(10).decode().strip())\n"
    );
    let out = t.lab.exec("c", &["python3", "-c", &one_shot]).unwrap();
    assert_eq!(out.trim(), "n");
}

/// rvs's default for UDP (expire): a flow from one client socket (fixed
/// source port) whose real server is removed is answered by the remaining
/// server on its very next datagram.
#[test]
fn removed_server_udp_flow_moves_on_its_next_datagram() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED removed_server_udp_flow_moves_on_its_next_datagram: {why}");
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
    let mut t = Topology::build(&exe, 2).unwrap();
    t.ipvsadm(&[
        &format!("-A -u {VIP_NAT}:5353 -s rr"),
        &format!("-a -u {VIP_NAT}:5353 -r {}:5353 -m", rip(1)),
        &format!("-a -u {VIP_NAT}:5353 -r {}:5353 -m", rip(2)),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let go = t.lab.dir.join("go");
    // One datagram, one answer; after the removal exactly one more datagram.
    let script = format!(
        "import socket,os,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0',40053)); s.settimeout(3)\n\
         def ask(x):\n    s.sendto(x,('{VIP_NAT}',5353))\n    try:\n        print('ans',s.recvfrom(100)[0].decode().strip(),flush=True)\n    except Exception as e:\n        print('lost',type(e).__name__,flush=True)\n\
         ask(b'a')\n\
         t0=time.time()\n\
         while not os.path.exists('{g}') and time.time()-t0<20: time.sleep(0.05)\n\
         ask(b'b')\n\
         print('done',flush=True)\n",
        g = go.display()
    );
    t.lab
        .spawn("c", &["python3", "-c", &script], Some("udp.log"))
        .unwrap();
    assert!(wait_line(&t, "udp.log", "ans rs"), "no first answer");
    let log = std::fs::read_to_string(t.lab.dir.join("udp.log")).unwrap_or_default();
    let (holder, other) = if log.contains("ans rs1") {
        (1, 2)
    } else {
        (2, 1)
    };
    let conns = t.list("-L -n -c").unwrap();
    assert!(
        conns
            .lines()
            .any(|l| l.contains(":40053") && l.contains(&format!("{}:5353", rip(holder)))),
        "{conns}"
    );
    t.ipvsadm(&[&format!("-d -u {VIP_NAT}:5353 -r {}:5353", rip(holder))])
        .unwrap();
    std::fs::write(&go, "").unwrap();
    assert!(
        wait_line(&t, "udp.log", "done"),
        "the client did not finish"
    );
    let log = std::fs::read_to_string(t.lab.dir.join("udp.log")).unwrap_or_default();
    let answers: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("ans") || l.starts_with("lost"))
        .collect();
    assert_eq!(
        answers,
        [format!("ans rs{holder}"), format!("ans rs{other}")],
        "{log}"
    );
    // The flow's entry now points at the remaining server.
    let conns = t.list("-L -n -c").unwrap();
    assert!(
        conns
            .lines()
            .any(|l| l.contains(":40053") && l.contains(&format!("{}:5353", rip(other)))),
        "{conns}"
    );
}
