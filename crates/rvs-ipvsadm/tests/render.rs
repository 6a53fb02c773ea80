//! Listings byte for byte. Expected texts are written by hand from
//! ipvsadm's printf formats (quoted above each), not produced by the code.

use rvs_ipvsadm::*;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(
    key: ServiceKey,
    sched: &str,
    flags: u32,
    timeout: u32,
    netmask: u32,
    dests: Vec<DestEntry>,
) -> ServiceEntry {
    ServiceEntry {
        service: Service {
            key,
            scheduler: sched.into(),
            flags,
            timeout,
            netmask,
            pe_name: String::new(),
        },
        stats: Stats::default(),
        dests,
    }
}

fn dest(addr: &str, port: u16, fwd: Forward, weight: i32, active: u32, inactive: u32) -> DestEntry {
    DestEntry {
        dest: Dest {
            addr: ip(addr),
            port,
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: 0,
            tun_port: 0,
            tun_flags: 0,
        },
        activeconns: active,
        inactconns: inactive,
        persistconns: 0,
        stats: Stats::default(),
    }
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: TCP,
        addr: ip(addr),
        port,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        conn_tab_size: 4096,
        services: vec![
            svc(
                tcp("207.175.44.110", 80),
                "rr",
                0,
                0,
                0xffff_ffff,
                vec![dest("192.168.10.1", 80, Forward::Masq, 1, 0, 0)],
            ),
            svc(
                tcp("10.0.0.1", 443),
                "sh",
                SVC_F_PERSISTENT | SVC_F_SCHED1 | SVC_F_SCHED2,
                300,
                0xffff_ff00,
                vec![dest("10.1.0.5", 443, Forward::Route, 5, 12, 40)],
            ),
            svc(
                ServiceKey::Fwmark {
                    mark: 1,
                    ipv6: false,
                },
                "wlc",
                0,
                0,
                0xffff_ffff,
                vec![],
            ),
            svc(
                tcp("2001:db8::80", 80),
                "rr",
                0,
                0,
                128,
                vec![dest("2001:db8::a0a0", 80, Forward::Local, 1, 0, 0)],
            ),
        ],
        conns: vec![],
        timeouts: (900, 120, 300),
        daemons: vec![],
    }
}

fn list(opts: ListOptions, cmd: Command, snap: &Snapshot) -> String {
    render(
        &Invocation {
            command: cmd,
            list: opts,
        },
        snap,
        &Numeric,
    )
    .unwrap()
}

#[test]
fn list_numeric_unsorted_matches_the_reference_sheet() {
    // "IP Virtual Server version %d.%d.%d (size=%d)\n", the two title lines,
    // services "%s %s" (svc_name "%-4s %s", scheduler) + " (%s)" flags +
    // " persistent %u" + " mask %s", dests "  -> %-28s %-7s %-6d %-10u %-10u\n".
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  207.175.44.110:80 rr\n",
        "  -> 192.168.10.1:80              Masq    1      0          0         \n",
        "TCP  10.0.0.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n",
        "  -> 10.1.0.5:443                 Route   5      12         40        \n",
        "FWM  1 wlc\n",
        "TCP  [2001:db8::80]:80 rr\n",
        "  -> [2001:db8::a0a0]:80          Local   1      0          0         \n",
    );
    let o = ListOptions {
        numeric: true,
        nosort: true,
        ..ListOptions::default()
    };
    assert_eq!(list(o, Command::List(None), &snapshot()), want);
}

#[test]
fn sorting_follows_libipvs_comparisons() {
    // ipvs_cmp_services: fwmark first (0 for address services), family
    // (AF_INET 2 < AF_INET6 10), protocol, then the address as an int
    // difference: 207.175.44.110 - 10.0.0.1 = 0xc5af2c6d, negative as int,
    // so 207.175.44.110 sorts first, as ipvsadm prints it.
    let o = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    let out = list(o, Command::List(None), &snapshot());
    let order: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("  ->") && !l.starts_with("IP ") && !l.starts_with("Prot"))
        .collect();
    assert_eq!(
        order,
        [
            "TCP  207.175.44.110:80 rr",
            "TCP  10.0.0.1:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0",
            "TCP  [2001:db8::80]:80 rr",
            "FWM  1 wlc"
        ]
    );
}

#[test]
fn save_prints_what_restore_reads() {
    // "-A %s -s %s" + " -p %u" + " -M %s" + " -b %s"; "-a %s -r %s %s -w %d".
    let o = ListOptions {
        numeric: true,
        nosort: true,
        ..ListOptions::default()
    };
    let out = list(o, Command::Save, &snapshot());
    let want = concat!(
        "-A -t 207.175.44.110:80 -s rr\n",
        "-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1\n",
        "-A -t 10.0.0.1:443 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port\n",
        "-a -t 10.0.0.1:443 -r 10.1.0.5:443 -g -w 5\n",
        "-A -f 1 -s wlc\n",
        "-A -t [2001:db8::80]:80 -s rr\n",
        "-a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -g -w 1\n",
    );
    assert_eq!(out, want);
    // And -R reads it back into the same commands.
    let cmds = parse_restore("ipvsadm", &out, &NoResolve).unwrap();
    assert_eq!(cmds.len(), 7);
    let Command::AddService(s) = &cmds[2].command else {
        panic!()
    };
    assert_eq!(s, &snapshot().services[1].service);
    let Command::AddDest(_, d) = &cmds[1].command else {
        panic!()
    };
    assert_eq!(d, &snapshot().services[0].dests[0].dest);
}

#[test]
fn stats_and_rates_with_large_numbers() {
    // "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" title;
    // print_largenum: < 1e8 "%9llu", < 1e9 "%8lluK", < 1e11 "%8lluM".
    let mut snap = snapshot();
    snap.services.truncate(1);
    snap.services[0].stats = Stats {
        conns: 12,
        inpkts: 123_456_789,
        outpkts: 5_000_000_000,
        inbytes: 99_999_999,
        outbytes: 0,
        ..Stats::default()
    };
    snap.services[0].dests[0].stats = Stats {
        conns: 12,
        ..Stats::default()
    };
    let o = ListOptions {
        numeric: true,
        stats: true,
        ..ListOptions::default()
    };
    // (Expected lines computed with Python's % operator, an independent printf.)
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
        "  -> RemoteAddress:Port\n",
        "TCP  207.175.44.110:80                  12  123456K    5000M 99999999        0\n",
        "  -> 192.168.10.1:80                    12        0        0        0        0\n",
    );
    assert_eq!(list(o, Command::List(None), &snap), want);
    // --exact: "%*llu" with width 9, or the length + 1 past 8 digits.
    let o = ListOptions {
        numeric: true,
        stats: true,
        exact: true,
        ..ListOptions::default()
    };
    let out = list(o, Command::List(None), &snap);
    assert!(
        out.contains(
            "TCP  207.175.44.110:80                  12 123456789 5000000000 99999999        0\n"
        ),
        "{out}"
    );
}

#[test]
fn thresholds_persistent_conn_and_tunnel_info() {
    let mut snap = snapshot();
    snap.services.truncate(1);
    let d = &mut snap.services[0].dests[0];
    d.dest.u_threshold = 100;
    d.dest.l_threshold = 50;
    d.dest.fwd = Forward::Tunnel;
    d.dest.tun_type = TUN_GUE;
    d.dest.tun_port = 6080;
    d.dest.tun_flags = TUN_F_CSUM;
    d.persistconns = 7;
    let o = ListOptions {
        numeric: true,
        thresholds: true,
        ..ListOptions::default()
    };
    // "  -> %-28s %-10u %-10u %-10u %-10u\n"
    assert!(list(o, Command::List(None), &snap).ends_with(
        "  -> 192.168.10.1:80              100        50         0          0         \n"
    ));
    let o = ListOptions {
        numeric: true,
        persistent_conn: true,
        ..ListOptions::default()
    };
    // "  -> %-28s %-9u %-11u %-10u %-10u\n"
    assert!(list(o, Command::List(None), &snap).ends_with(
        "  -> 192.168.10.1:80              1         7           0          0         \n"
    ));
    let o = ListOptions {
        numeric: true,
        tun_info: true,
        ..ListOptions::default()
    };
    // "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n" with "gue:%d:%s"
    let out = list(o, Command::List(None), &snap);
    assert!(out.contains(
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
    ));
    assert!(
        out.ends_with(
            "  -> 192.168.10.1:80              Tunnel  gue:6080:+c   1      0          0         \n"
        ),
        "{out}"
    );
    // Save of a GUE tunnel: "-a %s -r %s %s -w %d --tun-type %s --tun-port %d %s".
    let o = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    assert!(list(o, Command::Save, &snap).ends_with("-a -t 207.175.44.110:80 -r 192.168.10.1:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n"));
}

#[test]
fn connections_timeouts_and_one_service() {
    let mut snap = snapshot();
    snap.conns.push(ConnEntry {
        proto: "UDP".into(),
        caddr: ip("192.168.127.89"),
        cport: 44117,
        vaddr: ip("192.168.127.89"),
        vport: 514,
        daddr: ip("192.168.129.116"),
        dport: 514,
        state: "UDP".into(),
        expires: 264,
        pe: None,
    });
    let o = ListOptions {
        numeric: true,
        connections: true,
        ..ListOptions::default()
    };
    // "pro expire %-11s %-18s %-18s %s\n" and "%-3s %-6s %-11s %-18s %-18s %s\n";
    // the row is the one kubernetes#76664 quotes.
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination\n",
        "UDP 04:24  UDP         192.168.127.89:44117 192.168.127.89:514 192.168.129.116:514\n",
    );
    assert_eq!(list(o, Command::List(None), &snap), want);
    let o = ListOptions {
        timeout: true,
        ..ListOptions::default()
    };
    assert_eq!(
        list(o, Command::List(None), &snap),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    // -L with a service: the title and that service, no version header.
    let o = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    let one = list(o, Command::List(Some(tcp("10.0.0.1", 443))), &snap);
    assert!(one.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    assert_eq!(one.lines().count(), 4);
    let missing = render(
        &Invocation {
            command: Command::List(Some(tcp("10.9.9.9", 1))),
            list: o,
        },
        &snap,
        &Numeric,
    );
    assert!(missing.is_err());
}

struct Fake;
impl Names for Fake {
    fn host(&self, a: &IpAddr) -> Option<String> {
        (a == &ip("192.168.10.1")).then(|| "rs1.example".to_string())
    }
    fn service(&self, port: u16, proto: u8) -> Option<String> {
        (port == 80 && proto == TCP).then(|| "http".to_string())
    }
}

#[test]
fn names_without_numeric() {
    let mut snap = snapshot();
    snap.services.truncate(1);
    let out = render(
        &Invocation {
            command: Command::List(None),
            list: ListOptions::default(),
        },
        &snap,
        &Fake,
    )
    .unwrap();
    assert!(out.contains("TCP  207.175.44.110:http rr\n"), "{out}");
    assert!(
        out.contains("  -> rs1.example:http             Masq    1      0          0         \n"),
        "{out}"
    );
    // -n wins over the resolver.
    let out = render(
        &Invocation {
            command: Command::List(None),
            list: ListOptions {
                numeric: true,
                ..ListOptions::default()
            },
        },
        &snap,
        &Fake,
    )
    .unwrap();
    assert!(out.contains("TCP  207.175.44.110:80 rr\n"));
}
