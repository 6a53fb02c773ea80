//! Multi-queue interfaces: the client-side and real-server-side veths have
//! 4 receive/transmit queues each. rvsd must open an AF_XDP socket on every
//! queue and register it at the queue's XSKMAP index; a frame landing on a
//! queue without a socket would fall back to the kernel (a local VIP
//! answers with a reset, NAT replies reach the client un-rewritten). Many
//! new TCP connections (each with its own source port and transmit hash,
//! so the sender's queue choice varies) go through NAT and DR, and UDP
//! exchanges and IPv6 connections through NAT; every
//! request must be answered, and the per-socket receive counters must show
//! that more than one queue of the client side (and, for NAT replies, of
//! the real-server side) received frames. (veth in generic XDP mode takes
//! the sender's transmit queue number minus one as the receive queue:
//! transmit queues 0 and 1 land on 0, 2 on 1, 3 on 2, so the last queue
//! stays idle; see ARCHITECTURE.md, "Multi-queue".) rvsd runs one worker
//! per queue (4): frames a worker does not own (owner: a hash of the
//! client's /24) cross to their owner through the hand-off rings, so a
//! persistent service with `-M 255.255.255.0` sends every connection of the
//! client to one real server, NAT replies arriving on other queues are
//! answered, the hand-off counters grow, `-L -c` lists every worker's
//! connections and `-Z` zeroes every worker's counters. Clients in eight
//! /24s (extra client addresses) have several owner workers, which all run
//! frames and whose connections are all listed; a `-s sh -p -M 255.255.0.0`
//! service still sends all eight networks to one real server (one
//! template), and a real server's `-x 4` holds over all the workers'
//! connections together. Skipped, with the reason, when not
//! root. Nothing is attached to the root namespace's interfaces, no lab
//! address is seen on them, and no namespace is left behind.

use rvs_lab::{Topology, VIP_DR, VIP_NAT, VIP6_NAT, distribution, rip, rip6, unavailable};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const QUEUES: u32 = 4;
const SERVERS: usize = 2;
/// Connections per IPv4 TCP service.
const CONNS: usize = 200;
/// IPv6 NAT connections.
const CONNS6: usize = 60;
/// UDP exchanges through NAT.
const UDP: usize = 40;
/// Connections to the persistent service.
const PERSIST: usize = 80;

/// A capture on every root-namespace interface (not promiscuous) of the
/// lab's addresses; killed (by its own pid) when dropped. It sees what the
/// kernel sends or receives there (a lab frame routed or redirected out of
/// the machine); rvsd's own AF_XDP sockets cannot reach a root-namespace
/// interface at all (they bind by ifindex in the director's namespace, and
/// the test checks every socket's interface is one of that namespace).
struct RootWatch {
    child: Child,
    file: std::path::PathBuf,
}

impl RootWatch {
    fn start() -> Option<Self> {
        let file = std::env::temp_dir().join(format!("rvs-mq-root-{}.pcap", std::process::id()));
        let child = Command::new("tcpdump")
            .args(["-p", "-n", "-i", "any", "-U", "-w"])
            .arg(&file)
            .arg("net 10.10.0.0/24 or net 10.21.0.0/24 or net 10.22.0.0/24")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // Let it open the capture before traffic starts.
        for _ in 0..50 {
            if file.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, file })
    }

    /// Stops the capture and counts the frames it saw.
    fn frames(mut self) -> Result<usize, String> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let out = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&self.file)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            // No capture file: the watch never ran, which proves nothing.
            return Err(format!(
                "reading the root-namespace capture: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).lines().count())
    }
}

impl Drop for RootWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Receive counters per (interface, queue) of rvsd's sockets.
fn queue_rx(t: &Topology) -> BTreeMap<(String, u32), u64> {
    match rvsd::server::request(&t.socket, &rvsd::proto::Request::Stats).unwrap() {
        rvsd::proto::Response::Stats(st) => st
            .queues
            .iter()
            .map(|q| ((q.iface.clone(), q.queue), q.rx))
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The dataplane workers' hand-off figures.
fn workers(t: &Topology) -> Vec<rvsd::proto::WorkerFigures> {
    match rvsd::server::request(&t.socket, &rvsd::proto::Request::Stats).unwrap() {
        rvsd::proto::Response::Stats(st) => st.workers,
        other => panic!("unexpected {other:?}"),
    }
}

/// Queues of `iface` whose receive counter grew between `a` and `b`.
fn busy_queues(
    a: &BTreeMap<(String, u32), u64>,
    b: &BTreeMap<(String, u32), u64>,
    iface: &str,
) -> Vec<u32> {
    b.iter()
        .filter(|((i, q), rx)| i == iface && **rx > a.get(&(i.clone(), *q)).copied().unwrap_or(0))
        .map(|((_, q), _)| *q)
        .collect()
}

/// Client networks of the many-networks part: 10.10.K.0/24, K = 1..=NETS.
const NETS: u8 = 8;
/// Connections from each of them, per service.
const PER_NET: usize = 6;

/// TCP connections held open from the client (`per` from each source in
/// `srcs`, source ports from `sport`), until dropped.
struct Held(std::process::Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hold_connections(
    t: &Topology,
    srcs: &[String],
    vip: &str,
    port: u16,
    per: usize,
    sport: u16,
) -> Held {
    use std::io::BufRead;
    let list: Vec<String> = srcs.iter().map(|s| format!("'{s}'")).collect();
    let script = format!(
        "import socket, sys, time\nheld = []\nfor k, src in enumerate([{}]):\n    for i in range({per}):\n        s = socket.socket()\n        s.settimeout(3)\n        s.bind((src, {sport} + 100 * k + i))\n        s.connect(('{vip}', {port}))\n        held.append(s)\nprint('ready', len(held))\nsys.stdout.flush()\ntime.sleep(20)\n",
        list.join(", ")
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &t.lab.ns("c"), "python3", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let held = Held(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    assert_eq!(
        line.trim(),
        format!("ready {}", srcs.len() * per),
        "holding connections"
    );
    held
}

fn many_client_networks(t: &Topology) {
    let nets: Vec<String> = (1..=NETS).map(|k| format!("10.10.{k}.2")).collect();
    for (k, a) in nets.iter().enumerate() {
        t.lab
            .exec("c", &["ip", "addr", "add", &format!("{a}/24"), "dev", "c0"])
            .unwrap();
        let net = format!("10.10.{}.0/24", k + 1);
        t.lab
            .exec("d", &["ip", "route", "add", &net, "via", "10.10.0.2"])
            .unwrap();
    }
    // Which workers own them, by rvsd's own owner function (no persistence
    // wider than /24 is configured yet).
    let classes = rvsd::handoff::Classes::default();
    let owners: std::collections::BTreeSet<usize> = nets
        .iter()
        .map(|a| {
            let ip: std::net::IpAddr = a.parse().unwrap();
            rvsd::handoff::owner_of(ip.into(), &classes, QUEUES as usize)
        })
        .collect();
    assert!(
        owners.len() > 1,
        "the lab's client networks all hash to {owners:?}"
    );

    let before = workers(t);
    for (k, a) in nets.iter().enumerate() {
        let got = t.http_from(a, VIP_NAT, 80, PER_NET, 20000 + 100 * k as u16);
        assert!(
            got.len() == PER_NET && got.iter().all(|b| b.starts_with("rs")),
            "from {a}: {got:?}"
        );
    }
    let after = workers(t);
    let grew: Vec<u32> = after
        .iter()
        .filter(|w| {
            before
                .iter()
                .find(|b| b.worker == w.worker)
                .is_some_and(|b| w.taken_over > b.taken_over)
        })
        .map(|w| w.worker)
        .collect();
    eprintln!("owners {owners:?}; workers that took frames over: {grew:?}");
    assert!(
        grew.len() > 1,
        "frames of {} client networks were run by only {grew:?}: {after:?}",
        nets.len()
    );
    // Each network's connections are listed, from whichever worker.
    let conns = t.list("-L -n -c").unwrap();
    for a in &nets {
        let n = conns
            .lines()
            .filter(|l| l.contains(&format!(" {a}:")) && l.contains(&format!("{VIP_NAT}:80")))
            .count();
        assert_eq!(n, PER_NET, "{a}: {conns}");
    }

    // Thresholds over all workers: -x 4 on rs1 (weight 100 against 1, so
    // wrr prefers it), 16 connections held open from the eight networks
    // (several owner workers): rs1 takes 4 in all, not 4 per worker.
    let mut cmds = vec![format!("-A -t {VIP_NAT}:83 -s wrr")];
    cmds.push(format!(
        "-a -t {VIP_NAT}:83 -r {}:80 -m -w 100 -x 4",
        rip(1)
    ));
    cmds.push(format!("-a -t {VIP_NAT}:83 -r {}:80 -m -w 1", rip(2)));
    let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
    t.ipvsadm(&lines).unwrap();
    let held = hold_connections(t, &nets, VIP_NAT, 83, 2, 22000);
    let listing = t.list("-L -n").unwrap();
    let active = |r: &str| -> Option<u32> {
        let mut in_svc = false;
        for l in listing.lines() {
            if l.starts_with("TCP") {
                in_svc = l.contains(&format!("{VIP_NAT}:83"));
            } else if in_svc && l.contains(&format!("-> {r}:80")) {
                return l.split_whitespace().nth(4).and_then(|n| n.parse().ok());
            }
        }
        None
    };
    let (a1, a2) = (active(&rip(1)), active(&rip(2)));
    drop(held);
    assert_eq!(
        (a1, a2),
        (Some(4), Some(12)),
        "-x 4 over all workers:\n{listing}"
    );

    // A template network wider than /24: source hashing would put the
    // networks on both real servers, persistence must not.
    let mut cmds = vec![format!("-A -t {VIP_NAT}:82 -s sh -p 300 -M 255.255.0.0")];
    for k in 1..=SERVERS {
        cmds.push(format!("-a -t {VIP_NAT}:82 -r {}:80 -m", rip(k)));
    }
    let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
    t.ipvsadm(&lines).unwrap();
    let mut all = Vec::new();
    for (k, a) in nets.iter().enumerate() {
        all.extend(t.http_from(a, VIP_NAT, 82, PER_NET, 21000 + 100 * k as u16));
    }
    let d = distribution(&all);
    assert_eq!(d.len(), 1, "-M 255.255.0.0 across workers: {d:?}");
    assert!(d.keys().all(|k| k.starts_with("rs")), "{d:?}");
    let templates = t
        .list("-L -n -c")
        .unwrap()
        .lines()
        .filter(|l| l.contains("NONE") && l.contains(&format!("{VIP_NAT}:82")))
        .count();
    assert_eq!(templates, 1, "one persistence template for 10.10.0.0/16");
}

#[test]
fn every_queue_is_served_nat_and_dr() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED every_queue_is_served_nat_and_dr: {why}");
        return;
    }
    if Command::new("tcpdump").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED every_queue_is_served_nat_and_dr: tcpdump is not installed (scripts/test installs it)"
        );
        return;
    }
    let xdp_before = rvs_lab::root_ns_xdp();
    let watch = RootWatch::start().expect("tcpdump in the root namespace");
    {
        let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
        let t = Topology::build_queues(&exe, SERVERS, QUEUES).unwrap();
        // The lab made what it was asked for.
        let sys = t
            .lab
            .exec("d", &["ls", "/sys/class/net/d0/queues"])
            .unwrap();
        assert_eq!(
            sys.split_whitespace()
                .filter(|q| q.starts_with("rx-"))
                .count(),
            QUEUES as usize,
            "{sys}"
        );
        let mut cmds = vec![
            format!("-A -t {VIP_NAT}:80 -s rr"),
            format!("-A -t {VIP_DR}:80 -s rr"),
            format!("-A -u {VIP_NAT}:53 -s rr"),
            format!("-A -t [{VIP6_NAT}]:80 -s rr"),
            format!("-A -t {VIP_NAT}:81 -s rr -p 300 -M 255.255.255.0"),
        ];
        for k in 1..=SERVERS {
            cmds.push(format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(k)));
            cmds.push(format!("-a -t {VIP_DR}:80 -r {} -g", rip(k)));
            cmds.push(format!("-a -u {VIP_NAT}:53 -r {}:5353 -m", rip(k)));
            cmds.push(format!("-a -t [{VIP6_NAT}]:80 -r [{}]:8080 -m", rip6(k)));
            // Port 80, not 8080: a client port reused toward the same real
            // server port would make NAT replies ambiguous between two
            // services' connections (as in IPVS).
            cmds.push(format!("-a -t {VIP_NAT}:81 -r {}:80 -m", rip(k)));
        }
        let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
        t.ipvsadm(&lines).unwrap();

        // One worker per queue.
        let ws = workers(&t);
        assert_eq!(
            ws.iter().map(|w| w.worker).collect::<Vec<_>>(),
            (0..QUEUES).collect::<Vec<_>>(),
            "{ws:?}"
        );

        // Every socket is there: SERVERS + 1 interfaces x QUEUES.
        let before = queue_rx(&t);
        for i in std::iter::once("d0".to_string()).chain((1..=SERVERS).map(|k| format!("d{k}"))) {
            let qs: Vec<u32> = before
                .keys()
                .filter(|(n, _)| *n == i)
                .map(|(_, q)| *q)
                .collect();
            assert_eq!(qs, (0..QUEUES).collect::<Vec<_>>(), "{i}: {before:?}");
        }
        // And every one of them is on an interface of the director's
        // namespace (none on a root-namespace interface).
        let links = t.lab.exec("d", &["ip", "-o", "link", "show"]).unwrap();
        for (i, _) in before.keys() {
            assert!(links.contains(&format!(": {i}@")) || links.contains(&format!(": {i}:")));
        }

        // Persistence with -M 255.255.255.0: many connections (many source
        // ports, so many queues) all reach one real server, whichever
        // worker received them.
        let got = t.http(&format!("http://{VIP_NAT}:81/"), PERSIST);
        let d = distribution(&got);
        assert_eq!(d.len(), 1, "persistence across workers: {d:?}");
        assert!(
            d.keys().all(|k| k.starts_with("rs")) && d.values().sum::<usize>() == PERSIST,
            "persistent service: {d:?}"
        );

        // Clients in many networks: NETS /24s, whose owners spread over
        // the workers, so several directors run at once; then a
        // `-M 255.255.0.0` service, whose template network spans them all,
        // must still give every one of them the same real server.
        many_client_networks(&t);

        // NAT: every request answered, rr over the real servers.
        let got = t.http(&format!("http://{VIP_NAT}/"), CONNS);
        let d = distribution(&got);
        let per = CONNS / SERVERS;
        for k in 1..=SERVERS {
            assert_eq!(d.get(&format!("rs{k}")).copied(), Some(per), "NAT: {d:?}");
        }
        let after_nat = queue_rx(&t);
        eprintln!("queue rx after NAT: {after_nat:?}");
        let c_side = busy_queues(&before, &after_nat, "d0");
        assert!(
            c_side.len() > 1,
            "NAT requests arrived on only {c_side:?} of d0's queues: {after_nat:?}"
        );
        let mut s_side = Vec::new();
        for k in 1..=SERVERS {
            s_side.extend(busy_queues(&before, &after_nat, &format!("d{k}")));
        }
        s_side.sort();
        s_side.dedup();
        assert!(
            s_side.len() > 1,
            "NAT replies arrived on only {s_side:?} of the real-server side queues: {after_nat:?}"
        );

        // DR: every request answered (the replies go around the director's
        // sockets: source VIP, not a NAT real server).
        let got = t.http(&format!("http://{VIP_DR}/"), CONNS);
        let d = distribution(&got);
        for k in 1..=SERVERS {
            assert_eq!(d.get(&format!("rs{k}")).copied(), Some(per), "DR: {d:?}");
        }
        let after_dr = queue_rx(&t);
        eprintln!("queue rx after DR: {after_dr:?}");
        let c_side = busy_queues(&after_nat, &after_dr, "d0");
        assert!(
            c_side.len() > 1,
            "DR requests arrived on only {c_side:?} of d0's queues: {after_dr:?}"
        );

        // UDP through NAT, each exchange from a new socket (a new source
        // port, so a new transmit queue choice): every one answered.
        let script = format!(
            "import socket\nok = 0\nfor i in range({UDP}):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.settimeout(2)\n    try:\n        s.sendto(b'ping', ('{VIP_NAT}', 53))\n        if s.recvfrom(100)[0].startswith(b'rs'):\n            ok += 1\n    except OSError:\n        pass\n    s.close()\nprint(ok)\n"
        );
        let ok = t.lab.exec("c", &["python3", "-c", &script]).unwrap();
        assert_eq!(ok.trim(), UDP.to_string(), "UDP answers");
        // IPv6 NAT over the same queues.
        let got = t.http(&format!("http://[{VIP6_NAT}]/"), CONNS6);
        let d = distribution(&got);
        for k in 1..=SERVERS {
            assert_eq!(
                d.get(&format!("rs{k}")).copied(),
                Some(CONNS6 / SERVERS),
                "IPv6 NAT: {d:?}"
            );
        }
        let after_all = queue_rx(&t);
        eprintln!("queue rx after UDP and IPv6: {after_all:?}");
        assert!(
            busy_queues(&after_dr, &after_all, "d0").len() > 1,
            "UDP and IPv6 arrived on one queue of d0: {after_all:?}"
        );

        let stats = t.list("-L -n --stats").unwrap();
        let extra = usize::from(NETS) * PER_NET;
        for (svc, want) in [(VIP_NAT, CONNS + extra), (VIP_DR, CONNS)] {
            let line = stats
                .lines()
                .find(|l| l.starts_with(&format!("TCP  {svc}:80")))
                .unwrap_or_else(|| panic!("{stats}"));
            let conns: usize = line
                .split_whitespace()
                .nth(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert_eq!(conns, want, "{stats}");
        }

        // Frames crossed workers, none was lost to a full ring.
        let ws = workers(&t);
        eprintln!("workers: {ws:?}");
        let handed: u64 = ws.iter().map(|w| w.handed_off).sum();
        let taken: u64 = ws.iter().map(|w| w.taken_over).sum();
        assert!(handed > 0, "no frame crossed workers: {ws:?}");
        assert!(taken >= handed, "{ws:?}");
        assert!(ws.iter().all(|w| w.ring_full == 0), "{ws:?}");

        // -L -c lists the connections of every worker (one owner each).
        let conns = t.list("-L -n -c").unwrap();
        let to81 = conns
            .lines()
            .filter(|l| l.starts_with("TCP") && l.contains(&format!("{VIP_NAT}:81")))
            .count();
        assert!(to81 >= PERSIST, "{to81} connections listed: {conns}");
        let to80 = conns
            .lines()
            .filter(|l| l.starts_with("TCP") && l.contains(&format!("{VIP_NAT}:80")))
            .count();
        assert!(to80 >= CONNS, "{to80} connections listed to :80");

        // -Z zeroes every worker's counters.
        t.ipvsadm(&["-Z"]).unwrap();
        let stats = t.list("-L -n --stats").unwrap();
        for svc in [
            format!("{VIP_NAT}:80"),
            format!("{VIP_DR}:80"),
            format!("{VIP_NAT}:81"),
        ] {
            let line = stats
                .lines()
                .find(|l| l.starts_with(&format!("TCP  {svc}")))
                .unwrap_or_else(|| panic!("{stats}"));
            let conns: Option<u64> = line.split_whitespace().nth(2).and_then(|n| n.parse().ok());
            assert_eq!(conns, Some(0), "after -Z: {stats}");
        }
        assert_eq!(rvs_lab::own_namespaces(), 2 + SERVERS);
    }
    assert_eq!(rvs_lab::own_namespaces(), 0, "namespaces left behind");
    assert_eq!(
        rvs_lab::root_ns_xdp(),
        xdp_before,
        "an XDP program appeared on a root-namespace interface"
    );
    let leaked = watch.frames().unwrap();
    assert_eq!(
        leaked, 0,
        "frames with lab addresses seen on root-namespace interfaces"
    );
}
