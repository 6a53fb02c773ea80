//! Scenario tests of the director: frames in, frames and verdicts out.

mod common;

use common::*;
use rvs_engine::*;
use rvs_types::{Instant, Proto};
use std::time::Duration;

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

#[test]
fn nat_with_port_mapping_rewrites_both_ways_and_tracks_state() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let cip = v4("198.51.100.7");
    let key = tcp_svc(vip, 80);
    let mut d = director_with(key, SchedKind::Rr, &[dest(rip, 8080, 1, Forward::Masq)]);

    // Client SYN to VIP:80 leaves as a SYN to RIP:8080, every checksum valid.
    let (v, out) = run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b""));
    assert_eq!(next_hop(&v), rip);
    assert_eq!(out, tcp(cip, 40000, rip, 8080, SYN, b""));
    // Since Linux 4.8 (be2cef49904b) SYN_RECV counts as active.
    assert_eq!(counts(&d), vec![(rip, 1, 0, 0)]);

    // The real server's SYN-ACK leaves with the VIP:80 as source, toward the client.
    let (v, out) = run(&mut d, t(1), &tcp(rip, 8080, cip, 40000, SYN | ACK, b""));
    assert_eq!(next_hop(&v), cip);
    assert_eq!(out, tcp(vip, 80, cip, 40000, SYN | ACK, b""));

    // The handshake's ACK makes it ESTABLISHED and active.
    let (_, out) = run(
        &mut d,
        t(1),
        &tcp(cip, 40000, vip, 80, ACK | PSH, b"GET / HTTP/1.0\r\n\r\n"),
    );
    assert_eq!(
        out,
        tcp(cip, 40000, rip, 8080, ACK | PSH, b"GET / HTTP/1.0\r\n\r\n")
    );
    assert_eq!(counts(&d), vec![(rip, 1, 0, 0)]);
    let conns = d.connections(t(1));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "ESTABLISHED");
    // IPVS's established timeout is 15 minutes.
    assert_eq!(conns[0].expires_in.as_secs(), 900);

    let s = &d.services()[0];
    assert_eq!((s.stats.conns, s.stats.inpkts, s.stats.outpkts), (1, 2, 1));
    assert_eq!(s.dests[0].stats.inbytes, (40 + 40 + 18) as u64);
}

#[test]
fn nat_ipv6() {
    let vip = v4("2001:db8::10");
    let rip = v4("fd00:20::11");
    let cip = v4("2001:db8:1::7");
    let mut d = director_with(
        tcp_svc(vip, 80),
        SchedKind::Wlc,
        &[dest(rip, 80, 1, Forward::Masq)],
    );
    let (v, out) = run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b""));
    assert_eq!(next_hop(&v), rip);
    assert_eq!(out, tcp(cip, 40000, rip, 80, SYN, b""));
    let (_, out) = run(&mut d, t(1), &tcp(rip, 80, cip, 40000, SYN | ACK, b""));
    assert_eq!(out, tcp(vip, 80, cip, 40000, SYN | ACK, b""));
}

#[test]
fn direct_routing_leaves_the_ip_packet_untouched() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let cip = v4("198.51.100.7");
    let mut d = director_with(
        tcp_svc(vip, 80),
        SchedKind::Rr,
        &[dest(rip, 80, 1, Forward::Route)],
    );
    let syn = tcp(cip, 40000, vip, 80, SYN, b"");
    let (v, out) = run(&mut d, t(1), &syn);
    assert_eq!(next_hop(&v), rip);
    assert_eq!(out, syn);
    // DR sees only the client half: a data ACK moves it to ESTABLISHED
    // through IPVS's INPUT_ONLY table.
    run(&mut d, t(1), &tcp(cip, 40000, vip, 80, ACK, b""));
    assert_eq!(counts(&d), vec![(rip, 1, 0, 0)]);
}

#[test]
fn round_robin_over_three_servers_and_quiescent_server_keeps_its_stream() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12"), v4("10.20.0.13")];
    let key = tcp_svc(vip, 80);
    let dests: Vec<_> = rips
        .iter()
        .map(|r| dest(*r, 80, 1, Forward::Masq))
        .collect();
    let mut d = director_with(key, SchedKind::Rr, &dests);
    let cip = v4("198.51.100.7");
    let mut chosen = Vec::new();
    for port in 0..6 {
        let (v, _) = run(&mut d, t(1), &tcp(cip, 41000 + port, vip, 80, SYN, b""));
        chosen.push(next_hop(&v));
    }
    // The kernel links new dests at the head of its list and rr walks the
    // list from the head: the newest server comes first.
    assert_eq!(
        chosen,
        [rips[2], rips[1], rips[0], rips[2], rips[1], rips[0]]
    );

    // Quiesce rips[2]: its connection (port 41000) keeps flowing, new ones avoid it.
    let mut q = dest(rips[2], 80, 0, Forward::Masq);
    q.weight = 0;
    d.edit_dest(&key, q).unwrap();
    let (v, _) = run(&mut d, t(2), &tcp(cip, 41000, vip, 80, ACK, b"x"));
    assert_eq!(next_hop(&v), rips[2]);
    for port in 0..4 {
        let (v, _) = run(&mut d, t(2), &tcp(cip, 42000 + port, vip, 80, SYN, b""));
        assert_ne!(next_hop(&v), rips[2]);
    }
}

#[test]
fn persistence_keeps_a_client_network_on_one_server() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12"), v4("10.20.0.13")];
    let key = tcp_svc(vip, 80);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    let mut s = ServiceConfig::new(key);
    s.sched = SchedKind::Rr;
    s.persistence = Some(Duration::from_secs(300));
    s.netmask = 24;
    d.add_service(s).unwrap();
    for r in rips {
        d.add_dest(&key, dest(r, 80, 1, Forward::Route)).unwrap();
    }
    let mut first = None;
    for (i, c) in ["198.51.100.7", "198.51.100.8", "198.51.100.200"]
        .iter()
        .enumerate()
    {
        for p in 0..3 {
            let (v, _) = run(
                &mut d,
                t(1),
                &tcp(v4(c), 50000 + p + 10 * i as u16, vip, 80, SYN, b""),
            );
            let nh = next_hop(&v);
            assert_eq!(
                *first.get_or_insert(nh),
                nh,
                "client {c} left its /24's server"
            );
        }
    }
    // Another /24 is scheduled afresh: rr moves on to the next server.
    let (v, _) = run(
        &mut d,
        t(1),
        &tcp(v4("198.51.101.7"), 50000, vip, 80, SYN, b""),
    );
    assert_ne!(Some(next_hop(&v)), first);
    // One template per network, counted as PersistConn on its server.
    let persist: u32 = counts(&d).iter().map(|c| c.3).sum();
    assert_eq!(persist, 2);
    let templates = d
        .connections(t(1))
        .iter()
        .filter(|c| c.conn.flags.contains(ConnFlags::TEMPLATE))
        .count();
    assert_eq!(templates, 2);
}

#[test]
fn persistence_template_outlives_its_timeout_while_connections_live() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let key = udp_svc(vip, 53);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    let mut s = ServiceConfig::new(key);
    s.sched = SchedKind::Rr;
    s.persistence = Some(Duration::from_secs(10));
    d.add_service(s).unwrap();
    d.add_dest(&key, dest(rip, 53, 1, Forward::Route)).unwrap();
    run(&mut d, t(0), &udp(v4("198.51.100.7"), 5353, vip, 53, b"q"));
    assert_eq!(d.conn_count(), 2);
    // At 60 s the template's 10 s are long gone, but the UDP entry (300 s) lives.
    d.handle_timeout(t(60));
    assert_eq!(d.conn_count(), 2);
    // After the UDP entry expires, the template goes too.
    d.handle_timeout(t(301));
    d.handle_timeout(t(400));
    assert_eq!(d.conn_count(), 0);
    assert_eq!(counts(&d), vec![(rip, 0, 0, 0)]);
}

#[test]
fn syn_on_time_wait_entry_is_rescheduled_at_once() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = tcp_svc(vip, 80);
    let dests: Vec<_> = rips
        .iter()
        .map(|r| dest(*r, 80, 1, Forward::Masq))
        .collect();
    let mut d = director_with(key, SchedKind::Rr, &dests);
    let cip = v4("198.51.100.7");
    let c = |f| tcp(cip, 40000, vip, 80, f, b"");
    let s = |f| tcp(rips[1], 80, cip, 40000, f, b"");
    // Newest first: rips[1], then rips[0].
    assert_eq!(next_hop(&run(&mut d, t(1), &c(SYN)).0), rips[1]);
    run(&mut d, t(1), &s(SYN | ACK));
    run(&mut d, t(1), &c(ACK));
    run(&mut d, t(2), &c(FIN | ACK));
    run(&mut d, t(2), &s(FIN | ACK));
    run(&mut d, t(2), &c(ACK));
    let st = d.connections(t(2))[0].state;
    assert_eq!(st, "TIME_WAIT");
    // Same client port, new SYN: a new scheduling decision now (rr -> rips[0]).
    let (v, out) = run(&mut d, t(3), &c(SYN));
    assert_eq!(next_hop(&v), rips[0]);
    assert_eq!(out, tcp(cip, 40000, rips[0], 80, SYN, b""));
    assert_eq!(counts(&d), vec![(rips[1], 0, 0, 0), (rips[0], 1, 0, 0)]);
}

/// rvs's default for TCP is `NoDest::Keep`: a removed server's stream goes on.
#[test]
fn removed_server_keeps_flowing_by_default_for_tcp() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = tcp_svc(vip, 80);
    let dests: Vec<_> = rips
        .iter()
        .map(|r| dest(*r, 80, 1, Forward::Masq))
        .collect();
    let mut d = director_with(key, SchedKind::Rr, &dests);
    let cip = v4("198.51.100.7");
    let first = next_hop(&run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b"")).0);
    d.del_dest(&key, &first, 80).unwrap();
    let (v, out) = run(&mut d, t(1), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(next_hop(&v), first);
    assert_eq!(out, tcp(cip, 40000, first, 80, ACK, b"x"));
    let _ = rips;
}

#[test]
fn removed_server_with_expire_nodest_conn_on_drops_and_expires() {
    let vip = v4("192.0.2.10");
    let key = tcp_svc(vip, 80);
    let (mut d, rips) = two_servers(
        nodest_cfg(Some(NoDest::Expire)),
        key,
        80,
        Forward::Masq,
        None,
    );
    let cip = v4("198.51.100.7");
    let first = next_hop(&run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b"")).0);
    let other = if first == rips[0] { rips[1] } else { rips[0] };
    d.del_dest(&key, &first, 80).unwrap();
    let (v, _) = run(&mut d, t(1), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(v, Verdict::Drop(DropReason::NoDestConn));
    assert_eq!(d.conn_count(), 0);
    // The client's retry SYN goes to the remaining server.
    let (v, _) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, SYN, b""));
    assert_eq!(next_hop(&v), other);
}

#[test]
fn syn_flood_never_grows_the_table_past_its_bound_and_established_survive() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let key = tcp_svc(vip, 80);
    let mut d = Director::new(
        DirectorConfig {
            max_conns: 100,
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    d.add_service(ServiceConfig::new(key)).unwrap();
    d.add_dest(&key, dest(rip, 80, 1, Forward::Route)).unwrap();
    // Ten established connections.
    for p in 0..10 {
        run(
            &mut d,
            t(1),
            &tcp(v4("198.51.100.7"), 30000 + p, vip, 80, SYN, b""),
        );
        run(
            &mut d,
            t(1),
            &tcp(v4("198.51.100.7"), 30000 + p, vip, 80, ACK, b""),
        );
    }
    // A flood of 1,000 SYNs from spoofed sources.
    for i in 0..1000u32 {
        let src = rvs_types::Addr::v4([203, 0, (i >> 8) as u8, i as u8]);
        run(&mut d, t(2), &tcp(src, 1024 + i as u16, vip, 80, SYN, b""));
        assert!(d.conn_count() <= 100);
    }
    assert_eq!(d.conn_count(), 100);
    // The established ten are still served.
    for p in 0..10 {
        let (v, _) = run(
            &mut d,
            t(3),
            &tcp(v4("198.51.100.7"), 30000 + p, vip, 80, ACK, b"y"),
        );
        assert_eq!(next_hop(&v), rip);
    }
    // 10 established + 90 half-open: every live entry is counted once.
    let c = counts(&d)[0];
    assert_eq!(c.1 + c.2, 100);
    assert!(d.table_stats().evicted_embryonic >= 900);
}

#[test]
fn non_syn_without_connection_is_dropped_and_counted() {
    let vip = v4("192.0.2.10");
    let mut d = director_with(
        tcp_svc(vip, 80),
        SchedKind::Rr,
        &[dest(v4("10.20.0.11"), 80, 1, Forward::Masq)],
    );
    let (v, _) = run(
        &mut d,
        t(1),
        &tcp(v4("198.51.100.7"), 40000, vip, 80, ACK, b""),
    );
    assert_eq!(v, Verdict::Drop(DropReason::TcpNotSyn));
    let (v, _) = run(
        &mut d,
        t(1),
        &tcp(v4("198.51.100.7"), 40000, vip, 80, SYN | FIN, b""),
    );
    assert_eq!(v, Verdict::Drop(DropReason::BadTcpFlags));
    assert_eq!(d.drops(DropReason::TcpNotSyn), 1);
    assert_eq!(d.drops(DropReason::BadTcpFlags), 1);
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn bad_checksum_on_a_new_connection_is_dropped() {
    let vip = v4("192.0.2.10");
    let mut d = director_with(
        tcp_svc(vip, 80),
        SchedKind::Rr,
        &[dest(v4("10.20.0.11"), 80, 1, Forward::Masq)],
    );
    let mut syn = tcp(v4("198.51.100.7"), 40000, vip, 80, SYN, b"");
    let n = syn.len();
    syn[14 + 20 + 16] ^= 0x55; // TCP checksum
    let _ = n;
    let (v, _) = run(&mut d, t(1), &syn);
    assert_eq!(v, Verdict::Drop(DropReason::BadChecksum));
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn traffic_for_no_service_goes_to_the_host() {
    let vip = v4("192.0.2.10");
    let mut d = director_with(
        tcp_svc(vip, 80),
        SchedKind::Rr,
        &[dest(v4("10.20.0.11"), 80, 1, Forward::Masq)],
    );
    let (v, _) = run(
        &mut d,
        t(1),
        &tcp(v4("198.51.100.7"), 40000, vip, 22, SYN, b""),
    );
    assert_eq!(v, Verdict::Pass);
}

#[test]
fn one_packet_scheduling_spreads_each_datagram() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = udp_svc(vip, 53);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    let mut s = ServiceConfig::new(key);
    s.sched = SchedKind::Rr;
    s.ops = true;
    d.add_service(s).unwrap();
    for r in rips {
        d.add_dest(&key, dest(r, 53, 1, Forward::Route)).unwrap();
    }
    let cip = v4("198.51.100.7");
    let hops: Vec<_> = (0..4)
        .map(|_| next_hop(&run(&mut d, t(1), &udp(cip, 5353, vip, 53, b"q")).0))
        .collect();
    assert_eq!(hops, [rips[1], rips[0], rips[1], rips[0]]);
    assert_eq!(d.conn_count(), 0);
    assert_eq!(d.services()[0].stats.conns, 4);
}

#[test]
fn udp_entry_expires_after_its_timeout_and_counters_return_to_zero() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let mut d = director_with(
        udp_svc(vip, 53),
        SchedKind::Rr,
        &[dest(rip, 53, 1, Forward::Masq)],
    );
    run(&mut d, t(0), &udp(v4("198.51.100.7"), 5353, vip, 53, b"q"));
    assert_eq!(counts(&d), vec![(rip, 0, 1, 0)]);
    d.handle_timeout(t(299));
    assert_eq!(d.conn_count(), 1);
    d.handle_timeout(t(302));
    assert_eq!(d.conn_count(), 0);
    assert_eq!(counts(&d), vec![(rip, 0, 0, 0)]);
    // --set changes the UDP timeout for new entries.
    d.set_timeouts(0, 0, 5);
    assert_eq!(d.timeouts(), (900, 120, 5));
    run(
        &mut d,
        t(400),
        &udp(v4("198.51.100.7"), 5354, vip, 53, b"q"),
    );
    d.handle_timeout(t(406));
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn fwmark_service_matches_marked_packets_only() {
    let rip = v4("10.20.0.11");
    let key = ServiceKey::Fwmark {
        mark: 7,
        af: rvs_types::Af::V4,
    };
    let mut d = director_with(key, SchedKind::Lc, &[dest(rip, 0, 1, Forward::Route)]);
    let syn = tcp(v4("198.51.100.7"), 40000, v4("203.0.113.80"), 80, SYN, b"");
    assert_eq!(run(&mut d, t(1), &syn).0, Verdict::Pass);
    let (v, out) = run_meta(&mut d, t(1), &syn, &RxMeta { fwmark: 7, zone: 0 });
    assert_eq!(next_hop(&v), rip);
    assert_eq!(out, syn);
    // The connection carries on without the mark.
    let (v, _) = run(
        &mut d,
        t(1),
        &tcp(v4("198.51.100.7"), 40000, v4("203.0.113.80"), 80, ACK, b""),
    );
    assert_eq!(next_hop(&v), rip);
}

#[test]
fn zones_keep_equal_tuples_apart() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = tcp_svc(vip, 80);
    let dests: Vec<_> = rips
        .iter()
        .map(|r| dest(*r, 80, 1, Forward::Masq))
        .collect();
    let mut d = director_with(key, SchedKind::Rr, &dests);
    let syn = tcp(v4("10.0.0.5"), 40000, vip, 80, SYN, b"");
    let (a, _) = run_meta(&mut d, t(1), &syn, &RxMeta { fwmark: 0, zone: 1 });
    let (b, _) = run_meta(&mut d, t(1), &syn, &RxMeta { fwmark: 0, zone: 2 });
    assert_ne!(next_hop(&a), next_hop(&b));
    assert_eq!(d.conn_count(), 2);
}

#[test]
fn control_errors_change_nothing() {
    let vip = v4("192.0.2.10");
    let key = tcp_svc(vip, 80);
    let mut d = director_with(
        key,
        SchedKind::Rr,
        &[dest(v4("10.20.0.11"), 80, 1, Forward::Masq)],
    );
    assert_eq!(
        d.add_service(ServiceConfig::new(key)),
        Err(ConfigError::ServiceExists)
    );
    assert_eq!(
        d.add_dest(&key, dest(v4("10.20.0.11"), 80, 1, Forward::Masq)),
        Err(ConfigError::DestExists)
    );
    assert_eq!(
        d.del_dest(&key, &v4("10.20.0.99"), 80),
        Err(ConfigError::NoDest)
    );
    assert_eq!(
        d.del_service(&tcp_svc(vip, 81)),
        Err(ConfigError::NoService)
    );
    let zero = ServiceConfig::new(tcp_svc(vip, 0));
    assert!(matches!(d.add_service(zero), Err(ConfigError::Invalid(_))));
    assert!(matches!(
        d.add_dest(&key, dest(v4("10.20.0.12"), 8080, 1, Forward::Route)),
        Err(ConfigError::Invalid(_))
    ));
    let s = d.services();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].dests.len(), 1);
    let _ = Proto::TCP;
}

#[test]
fn rates_follow_ipvs_estimator() {
    let vip = v4("192.0.2.10");
    let mut d = director_with(
        udp_svc(vip, 53),
        SchedKind::Rr,
        &[dest(v4("10.20.0.11"), 53, 1, Forward::Route)],
    );
    // 10 packets per second for 40 seconds, one new client port per packet.
    let mut port = 1000;
    for sec in 0..40u64 {
        for _ in 0..10 {
            run(
                &mut d,
                t(sec),
                &udp(v4("198.51.100.7"), port, vip, 53, b"q"),
            );
            port += 1;
        }
        d.handle_timeout(t(sec + 1));
    }
    let r = d.services()[0].rates;
    assert_eq!(r.inpps, 10);
    assert_eq!(r.cps, 10);
}
