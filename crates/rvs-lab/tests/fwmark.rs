//! End-to-end fwmark services fed by the user's own mark rules, through
//! rvsd in network namespaces the test creates itself: an nftables rule
//! marks TCP/80 and UDP/5353 to a VIP the director holds on lo (mark 1,
//! NAT), iptables rules mark TCP/80 to the DR VIP, also local (mark 2, DR),
//! and to a VIP that is only routed to the director (mark 3, NAT). Real HTTP
//! and UDP from the client reach the real servers in rr order and the
//! answers come back; unmarked ports of the same VIPs are not balanced (the
//! director's own listener still answers on its local VIP); `ipvsadm -L -n`
//! shows the FWM services with their counters; a service removed at run
//! time takes its rule with it; on shutdown rvsd removes its veth pair,
//! rules and table, and what an rvsd killed with SIGKILL left is cleared by
//! the next one. A TUN service behind a mark answers a too-big datagram
//! with "fragmentation needed" back through the kernel. Skipped, with the
//! reason, when not root. Nothing is attached to, or created in, the root
//! namespace.

use rvs_lab::{Topology, VIP_DR, VIP_NAT, VIP_TUN, VIP6_NAT, distribution, rip, rip6, unavailable};
use std::process::Command;
use std::time::{Duration, Instant};

/// A VIP that is not a local address of the director: the client routes it
/// through the director (its default gateway).
const VIP_ROUTED: &str = "10.30.0.100";

fn root_state() -> String {
    let mut s = String::new();
    for args in [
        &["-d", "link", "show"][..],
        &["-4", "rule", "show"][..],
        &["-6", "rule", "show"][..],
    ] {
        let out = Command::new("ip").args(args).output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // Link counters and states of the machine's own interfaces may
        // change meanwhile: compare names and attachments only.
        for l in text.lines() {
            if args[1] == "link" {
                if l.contains("xdp") || l.contains("rvsmark") {
                    s.push_str(l);
                    s.push('\n');
                }
            } else {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    if let Ok(o) = Command::new("bpftool").args(["net", "show"]).output() {
        s.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    s
}

const TTL_ECHO: &str = "import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
s.bind(('0.0.0.0', 5454))
for _ in range(1000):
    data, anc, flags, addr = s.recvmsg(100, socket.CMSG_SPACE(4))
    ttl = [int.from_bytes(d[:4], 'little') for (l, t, d) in anc if l == socket.IPPROTO_IP and t == 2]
    s.sendto(('ttl %d' % ttl[0]).encode() if ttl else b'ttl ?', addr)
";

fn conns_of(listing: &str, svc: &str) -> Option<u64> {
    let l = listing.lines().find(|l| l.starts_with(svc))?;
    l[svc.len()..].split_whitespace().next()?.parse().ok()
}

#[test]
fn fwmark_services_fed_by_nftables_and_iptables_mark_rules() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED fwmark_services_fed_by_nftables_and_iptables_mark_rules: {why}");
        return;
    }
    for tool in ["nft", "iptables"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!(
                "SKIPPED fwmark_services_fed_by_nftables_and_iptables_mark_rules: {tool} is not installed (scripts/test installs it)"
            );
            return;
        }
    }
    let root_before = root_state();
    {
        let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
        let mut t = Topology::build(&exe, 2).unwrap();
        let d = |args: &[&str]| t.lab.exec("d", args);
        // rvsd made its veth pair; no fwmark service yet, so no rule.
        d(&["ip", "link", "show", "rvsmark0"]).unwrap();
        let pristine = d(&["ip", "-4", "rule", "show"]).unwrap();
        assert!(!pristine.contains("29302"), "{pristine}");
        // Strict reverse-path filtering on the client side (d0; `all` stays
        // 0 for the DR replies arriving from the real servers with the VIP as
        // source): judged against the unmarked route (src_valid_mark off), so
        // it does not get in the way of marked packets.
        d(&["sysctl", "-qw", "net.ipv4.conf.d0.rp_filter=1"]).unwrap();
        // The user's own mark rules: nftables for mark 1, iptables for 2 and 3.
        for cmd in [
            "add table ip usermark",
            "add chain ip usermark pre { type filter hook prerouting priority mangle ; }",
            &format!("add rule ip usermark pre ip daddr {VIP_NAT} tcp dport 80 meta mark set 1"),
            &format!(
                "add rule ip usermark pre ip daddr {VIP_NAT} udp dport {{ 5353, 5454 }} meta mark set 1"
            ),
            "add table ip6 usermark6",
            "add chain ip6 usermark6 pre { type filter hook prerouting priority mangle ; }",
            &format!(
                "add rule ip6 usermark6 pre ip6 daddr {VIP6_NAT} tcp dport 80 meta mark set 4"
            ),
        ] {
            let mut argv = vec!["nft"];
            argv.extend(cmd.split_whitespace());
            d(&argv).unwrap();
        }
        for (vip, mark) in [(VIP_DR, "2"), (VIP_ROUTED, "3")] {
            d(&[
                "iptables",
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-d",
                vip,
                "-p",
                "tcp",
                "--dport",
                "80",
                "-j",
                "MARK",
                "--set-mark",
                mark,
            ])
            .unwrap();
        }
        // The director's own service on an unmarked port of the local VIP.
        let www = t.lab.dir.join("director-www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "director\n").unwrap();
        let www_s = www.display().to_string();
        t.lab
            .spawn(
                "d",
                &[
                    "python3",
                    "-m",
                    "http.server",
                    "8080",
                    "--bind",
                    VIP_NAT,
                    "--directory",
                    &www_s,
                ],
                None,
            )
            .unwrap();
        // On each real server, a UDP echo of the TTL it received.
        for s in ["s1", "s2"] {
            t.lab.spawn(s, &["python3", "-c", TTL_ECHO], None).unwrap();
        }
        let d = |args: &[&str]| t.lab.exec("d", args);

        let mut cmds = vec![
            "-A -f 1 -s rr".to_string(),
            "-A -f 2 -s rr".to_string(),
            "-A -f 3 -s rr".to_string(),
            "-A -f 4 -6 -s rr".to_string(),
        ];
        for k in 1..=2 {
            // Port 0: the client's destination port is kept (TCP 80, UDP 5353).
            cmds.push(format!("-a -f 1 -r {} -m", rip(k)));
            cmds.push(format!("-a -f 2 -r {} -g", rip(k)));
            cmds.push(format!("-a -f 3 -r {} -m", rip(k)));
            cmds.push(format!("-a -f 4 -6 -r {} -m", rip6(k)));
        }
        let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
        t.ipvsadm(&lines).unwrap();
        let rules = d(&["ip", "-4", "rule", "show"]).unwrap();
        for m in ["0x1", "0x2", "0x3"] {
            let ours = rules
                .lines()
                .position(|l| l.contains(&format!("fwmark {m} lookup 29302")));
            let local = rules.lines().position(|l| l.contains("lookup local"));
            assert!(
                matches!((ours, local), (Some(a), Some(b)) if a < b),
                "rule for {m} missing or behind the local rule:\n{rules}"
            );
        }

        let rules6 = d(&["ip", "-6", "rule", "show"]).unwrap();
        let ours = rules6
            .lines()
            .position(|l| l.contains("fwmark 0x4 lookup 29302"));
        let local = rules6.lines().position(|l| l.contains("lookup local"));
        assert!(
            matches!((ours, local), (Some(a), Some(b)) if a < b),
            "IPv6 rule missing or behind the local rule:\n{rules6}"
        );

        // Marked TCP/80 to the local NAT VIP: rr over both, answers back.
        let got = t.http(&format!("http://{VIP_NAT}/"), 10);
        let dist = distribution(&got);
        assert_eq!(
            (dist.get("rs1"), dist.get("rs2")),
            (Some(&5), Some(&5)),
            "{got:?}"
        );
        // Marked UDP to the same VIP: one answer from each.
        let mut answers: Vec<String> = (0..2).filter_map(|_| t.udp(VIP_NAT, 5353)).collect();
        answers.sort();
        assert_eq!(answers, ["rs1", "rs2"]);
        // The engine sees the packet as it arrived, as IPVS does on LOCAL_IN:
        // the hop the kernel's forwarding into the mark path took is given
        // back (the client sends with TTL 64).
        let mut tries = 0u64;
        let ttl = (0..5).find_map(|_| {
            tries += 1;
            t.udp(VIP_NAT, 5454)
        });
        assert_eq!(ttl.as_deref(), Some("ttl 64"));
        // DR behind a mark on the local DR VIP.
        let dist = distribution(&t.http(&format!("http://{VIP_DR}/"), 10));
        assert_eq!(
            (dist.get("rs1"), dist.get("rs2")),
            (Some(&5), Some(&5)),
            "{dist:?}"
        );
        // NAT behind a mark on a VIP that is only routed to the director.
        let dist = distribution(&t.http(&format!("http://{VIP_ROUTED}/"), 10));
        assert_eq!(
            (dist.get("rs1"), dist.get("rs2")),
            (Some(&5), Some(&5)),
            "{dist:?}"
        );
        // IPv6: NAT behind a mark on the local IPv6 VIP.
        let dist = distribution(&t.http(&format!("http://[{VIP6_NAT}]/"), 6));
        assert_eq!(
            (dist.get("rs1"), dist.get("rs2")),
            (Some(&3), Some(&3)),
            "{dist:?}"
        );
        // Unmarked ports are not balanced: the director's own listener on
        // the local VIP answers (local delivery is intact), the routed VIP
        // has nothing behind port 8080.
        let got = t.http(&format!("http://{VIP_NAT}:8080/"), 3);
        assert_eq!(got, ["director", "director", "director"]);
        let got = t.http(&format!("http://{VIP_ROUTED}:8080/"), 2);
        assert!(got.iter().all(|b| b.starts_with("ERR")), "{got:?}");

        // The director's own connections to a real server (a health check)
        // are not taken for NAT replies, though every port of the real
        // server is steered for the port-0 real servers above.
        let check = format!(
            "import urllib.request\nprint(urllib.request.urlopen('http://{}:8080/', timeout=3).read().decode().strip())",
            rip(1)
        );
        assert_eq!(
            d(&["python3", "-c", &check]).map(|s| s.trim().to_string()),
            Ok("rs1".to_string())
        );
        let listing = t.list("-L -n").unwrap();
        for s in ["FWM  1 rr", "FWM  2 rr", "FWM  3 rr", "FWM  4 IPv6 rr"] {
            assert!(listing.contains(s), "{listing}");
        }
        let stats = t.list("-L -n --stats").unwrap();
        assert_eq!(conns_of(&stats, "FWM  1"), Some(12 + tries), "{stats}");
        assert_eq!(conns_of(&stats, "FWM  2"), Some(10), "{stats}");
        assert_eq!(conns_of(&stats, "FWM  3"), Some(10), "{stats}");

        // All of it came in through the mark path's socket.
        let rx = match rvsd::server::request(&t.socket, &rvsd::proto::Request::Stats).unwrap() {
            rvsd::proto::Response::Stats(st) => st
                .queues
                .iter()
                .filter(|q| q.iface == "rvsmark1")
                .map(|q| q.rx)
                .sum::<u64>(),
            other => panic!("unexpected {other:?}"),
        };
        assert!(rx >= 39 * 3, "only {rx} frames on rvsmark1");

        // Removing a service at run time removes its rule: marked traffic
        // to the routed VIP then finds no route.
        t.ipvsadm(&["-D -f 3"]).unwrap();
        let rules = d(&["ip", "-4", "rule", "show"]).unwrap();
        assert!(!rules.contains("fwmark 0x3"), "{rules}");
        assert!(rules.contains("fwmark 0x1"), "{rules}");
        let got = t.http(&format!("http://{VIP_ROUTED}/"), 2);
        assert!(got.iter().all(|b| b.starts_with("ERR")), "{got:?}");
        // The others carry on.
        let dist = distribution(&t.http(&format!("http://{VIP_NAT}/"), 2));
        assert_eq!(dist.values().sum::<usize>(), 2, "{dist:?}");
        assert!(!dist.keys().any(|k| k.starts_with("ERR")), "{dist:?}");

        // Shutdown: rvsd removes its veth pair, its rules and its table,
        // and the local rule is the kernel's again.
        let _ = Command::new("kill")
            .args(["-TERM", &t.rvsd_pid.to_string()])
            .status();
        let t0 = Instant::now();
        let gone = loop {
            let link = d(&["ip", "link", "show", "rvsmark0"]);
            let rules = d(&["ip", "-4", "rule", "show"]).unwrap_or_default();
            if link.is_err() && rules == pristine {
                break true;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let rules = d(&["ip", "-4", "rule", "show"]).unwrap_or_default();
        assert!(gone, "left behind after shutdown:\n{rules}");
        let rules6 = d(&["ip", "-6", "rule", "show"]).unwrap_or_default();
        assert!(
            !rules6.contains("29302") && !rules6.contains("proto 11"),
            "{rules6}"
        );
        let table = d(&["ip", "-4", "route", "show", "table", "29302"]).unwrap_or_default();
        assert!(table.trim().is_empty(), "{table}");
    }
    assert_eq!(
        root_state(),
        root_before,
        "the root namespace changed (an attachment, a rule or an rvsmark link)"
    );
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn a_killed_rvsd_leaves_state_that_the_next_one_clears() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED a_killed_rvsd_leaves_state_that_the_next_one_clears: {why}");
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED a_killed_rvsd_leaves_state_that_the_next_one_clears: nft is not installed (scripts/test installs it)"
        );
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
    let mut t = Topology::build(&exe, 1).unwrap();
    let pristine = t.lab.exec("d", &["ip", "-4", "rule", "show"]).unwrap();
    for cmd in [
        "add table ip usermark",
        "add chain ip usermark pre { type filter hook prerouting priority mangle ; }",
        &format!("add rule ip usermark pre ip daddr {VIP_NAT} tcp dport 80 meta mark set 7"),
    ] {
        let mut argv = vec!["nft"];
        argv.extend(cmd.split_whitespace());
        t.lab.exec("d", &argv).unwrap();
    }
    t.ipvsadm(&["-A -f 7 -s rr", &format!("-a -f 7 -r {} -m", rip(1))])
        .unwrap();
    assert_eq!(t.http(&format!("http://{VIP_NAT}/"), 1), ["rs1"]);
    // SIGKILL: no cleanup. The veth pair, the rule and the re-seated local
    // rule stay behind (the programs go with the process's links).
    let _ = Command::new("kill")
        .args(["-KILL", &t.rvsd_pid.to_string()])
        .status();
    let t0 = Instant::now();
    while !gone(t.rvsd_pid) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(t.rvsd_pid), "rvsd survived SIGKILL");
    let left = t.lab.exec("d", &["ip", "-4", "rule", "show"]).unwrap();
    assert!(
        left.contains("fwmark 0x7 lookup 29302") && left.contains("proto 114"),
        "{left}"
    );
    t.lab
        .exec("d", &["ip", "link", "show", "rvsmark0"])
        .expect("the veth pair stays after SIGKILL");
    // A new rvsd (after the AF_XDP queues are free again, PLATFORM notes)
    // clears it all at start, then serves the same service again.
    std::thread::sleep(Duration::from_secs(3));
    let socket = t.lab.dir.join("rvsd2.sock");
    let (exe_s, sock_s) = (exe.display().to_string(), socket.display().to_string());
    t.lab
        .spawn(
            "d",
            &[
                &exe_s,
                "__rvsd",
                "--socket",
                &sock_s,
                "--interface",
                "d0",
                "--interface",
                "d1",
            ],
            Some("rvsd2.log"),
        )
        .unwrap();
    let log = || std::fs::read_to_string(t.lab.dir.join("rvsd2.log")).unwrap_or_default();
    t.lab
        .wait_for(&socket, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
    let rules = t.lab.exec("d", &["ip", "-4", "rule", "show"]).unwrap();
    assert_eq!(rules, pristine, "{}", log());
    t.socket = socket;
    t.ipvsadm(&["-A -f 7 -s rr", &format!("-a -f 7 -r {} -m", rip(1))])
        .unwrap();
    assert_eq!(
        t.http(&format!("http://{VIP_NAT}/"), 2),
        ["rs1", "rs1"],
        "{}",
        log()
    );
}

/// From the client, over one connected UDP socket with path-MTU discovery
/// on (DF set): datagrams too big for the tunnel until the path MTU drops.
/// Prints the path MTU.
const PMTU_PROBE: &str = "import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.connect(('VIP', 5353))
mtu = 1500
for _ in range(30):
    try:
        s.send(b'x' * 1460)
    except OSError:
        pass  # EMSGSIZE: the error the ICMP left on the socket
    time.sleep(0.1)
    mtu = s.getsockopt(socket.IPPROTO_IP, 14)  # IP_MTU
    if mtu < 1500:
        break
print(mtu)
";

#[test]
fn fwmark_tun_too_big_is_answered_back_through_the_kernel() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED fwmark_tun_too_big_is_answered_back_through_the_kernel: {why}");
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED fwmark_tun_too_big_is_answered_back_through_the_kernel: nft is not installed (scripts/test installs it)"
        );
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
    let t = Topology::build(&exe, 1).unwrap();
    for cmd in [
        "add table ip usermark",
        "add chain ip usermark pre { type filter hook prerouting priority mangle ; }",
        &format!("add rule ip usermark pre ip daddr {VIP_TUN} udp dport 5353 meta mark set 5"),
        &format!("add rule ip usermark pre ip daddr {VIP_TUN} tcp dport 80 meta mark set 5"),
    ] {
        let mut argv = vec!["nft"];
        argv.extend(cmd.split_whitespace());
        t.lab.exec("d", &argv).unwrap();
    }
    t.ipvsadm(&["-A -f 5 -s rr", &format!("-a -f 5 -r {} -i", rip(1))])
        .unwrap();
    // Tunnelled (IPIP) behind the mark.
    assert_eq!(t.http(&format!("http://{VIP_TUN}/"), 2), ["rs1", "rs1"]);
    // A 1488-byte packet plus 20 bytes of IPIP exceeds the tunnel MTU
    // (1500): the engine answers "fragmentation needed" (MTU 1480) on the
    // fwmark path, the frame goes back into the kernel through the veth,
    // and the kernel routes it to the client. (Without it the client's
    // path MTU would stay 1500.)
    let out = t
        .lab
        .exec("c", &["python3", "-c", &PMTU_PROBE.replace("VIP", VIP_TUN)])
        .unwrap();
    assert_eq!(out.trim(), "1480");
}
