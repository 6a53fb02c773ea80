//! Connection life-cycle rules of issue 2, one scenario each: reuse of a
//! closed entry, the removed-server policy per service, the table bound, upper
//! thresholds, events for sync and the fast path, TUN without DF, and the
//! estimator's rates on every level.

mod common;

use common::*;
use rvs_engine::*;
use rvs_types::{Addr, Instant};

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn verdict_dir(v: &Verdict) -> Direction {
    match v {
        Verdict::Forward(f) => f.dir,
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// A SYN on an entry a RST closed (CLOSE, 10 s to live) is scheduled afresh
/// at once, as on TIME_WAIT; the old server's counters drop back.
#[test]
fn syn_on_entry_closed_by_rst_is_rescheduled_at_once() {
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
    assert_eq!(next_hop(&run(&mut d, t(1), &c(SYN)).0), rips[1]);
    run(&mut d, t(1), &tcp(rips[1], 80, cip, 40000, SYN | ACK, b""));
    run(&mut d, t(1), &c(ACK));
    run(&mut d, t(2), &c(RST));
    let conns = d.connections(t(2));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "CLOSE");
    assert_eq!(counts(&d), vec![(rips[1], 0, 1, 0), (rips[0], 0, 0, 0)]);
    // Within CLOSE's 10 s, the same client port opens again: new decision.
    let (v, out) = run(&mut d, t(3), &c(SYN));
    assert_eq!(next_hop(&v), rips[0]);
    assert_eq!(out, tcp(cip, 40000, rips[0], 80, SYN, b""));
    assert_eq!(counts(&d), vec![(rips[1], 0, 0, 0), (rips[0], 1, 0, 0)]);
    assert_eq!(d.conn_count(), 1);
    // A SYN on a live ESTABLISHED entry is not a new connection (IPVS keeps
    // the entry; the state table takes it).
    run(&mut d, t(3), &tcp(rips[0], 80, cip, 40000, SYN | ACK, b""));
    run(&mut d, t(3), &c(ACK));
    let (v, _) = run(&mut d, t(4), &c(SYN));
    assert_eq!(next_hop(&v), rips[0]);
    assert_eq!(d.services()[0].stats.conns, 2);
}

fn one_removed_server(
    director_default: Option<NoDest>,
    service: Option<NoDest>,
) -> (Director, Addr, Addr) {
    let vip = v4("192.0.2.10");
    let key = tcp_svc(vip, 80);
    let (mut d, _) = two_servers(
        nodest_cfg(director_default),
        key,
        80,
        Forward::Masq,
        service,
    );
    let cip = v4("198.51.100.7");
    let first = next_hop(&run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b"")).0);
    d.del_dest(&key, &first, 80).unwrap();
    (d, vip, first)
}

/// The service's own policy wins over the director's, both ways.
#[test]
fn nodest_policy_is_selectable_per_service() {
    let cip = v4("198.51.100.7");
    // Director keep, service expire: dropped, counted and flushed.
    let (mut d, vip, _) = one_removed_server(Some(NoDest::Keep), Some(NoDest::Expire));
    let (v, _) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(v, Verdict::Drop(DropReason::NoDestConn));
    assert_eq!(d.drops(DropReason::NoDestConn), 1);
    assert_eq!(d.conn_count(), 0);
    // Director expire, service keep: the removed server keeps its stream.
    let (mut d, vip, first) = one_removed_server(Some(NoDest::Expire), Some(NoDest::Keep));
    let (v, out) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(next_hop(&v), first);
    assert_eq!(out, tcp(cip, 40000, first, 80, ACK, b"x"));
    assert_eq!(d.drops(DropReason::NoDestConn), 0);
    // Service unset: the director's setting applies.
    let (mut d, vip, _) = one_removed_server(Some(NoDest::Expire), None);
    let (v, _) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(v, Verdict::Drop(DropReason::NoDestConn));
    // Director drop, service unset: dropped, and the entry stays.
    let (mut d, vip, _) = one_removed_server(Some(NoDest::Drop), None);
    let (v, _) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(v, Verdict::Drop(DropReason::NoDestDrop));
    assert_eq!(d.conn_count(), 1);
    // Director drop, service keep: the service's choice.
    let (mut d, vip, first) = one_removed_server(Some(NoDest::Drop), Some(NoDest::Keep));
    let (v, _) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(next_hop(&v), first);
    // Neither: rvs's default for TCP, keep.
    let (mut d, vip, first) = one_removed_server(None, None);
    let (v, _) = run(&mut d, t(2), &tcp(cip, 40000, vip, 80, ACK, b"x"));
    assert_eq!(next_hop(&v), first);
    assert_eq!(d.drops(DropReason::NoDestDrop), 0);
}

/// At the bound, half-open entries make room (oldest first) and are counted;
/// when everything is established, new connections are refused and counted.
#[test]
fn table_bound_evicts_embryonic_then_refuses_and_counts() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let key = tcp_svc(vip, 80);
    let mut d = Director::new(
        DirectorConfig {
            max_conns: 20,
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    d.add_service(ServiceConfig::new(key)).unwrap();
    d.add_dest(&key, dest(rip, 80, 1, Forward::Route)).unwrap();
    let est = v4("198.51.100.7");
    for p in 0..15 {
        run(&mut d, t(1), &tcp(est, 30000 + p, vip, 80, SYN, b""));
        run(&mut d, t(1), &tcp(est, 30000 + p, vip, 80, ACK, b""));
    }
    // 100 spoofed SYNs, one per 100 ms timer tick: 5 fit, every later one
    // evicts the oldest half-open (within one tick the order is not kept).
    for i in 0..100u16 {
        let src = Addr::v4([203, 0, 113, i as u8]);
        let at = Instant::from_millis(2_000 + 100 * u64::from(i));
        let (v, _) = run(&mut d, at, &tcp(src, 1024 + i, vip, 80, SYN, b""));
        assert_eq!(next_hop(&v), rip);
        assert!(d.conn_count() <= 20);
    }
    assert_eq!(d.conn_count(), 20);
    assert_eq!(d.table_stats().evicted_embryonic, 95);
    assert_eq!(d.table_stats().refused_full, 0);
    assert_eq!(counts(&d), vec![(rip, 20, 0, 0)]);
    // The newest five SYNs survive, the first ones went.
    for i in 0..100u16 {
        let src = Addr::v4([203, 0, 113, i as u8]);
        let (v, _) = run(&mut d, t(13), &tcp(src, 1024 + i, vip, 80, ACK, b""));
        if i >= 95 {
            assert_eq!(next_hop(&v), rip, "SYN {i} should have survived");
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::TcpNotSyn), "SYN {i} evicted");
        }
    }
    // Now all 20 are established: nothing is evictable.
    let (v, _) = run(
        &mut d,
        t(14),
        &tcp(v4("203.0.113.200"), 999, vip, 80, SYN, b""),
    );
    assert_eq!(v, Verdict::Drop(DropReason::ConnTableFull));
    assert_eq!(d.drops(DropReason::ConnTableFull), 1);
    assert_eq!(d.table_stats().refused_full, 1);
    assert_eq!(d.conn_count(), 20);
    assert_eq!(counts(&d), vec![(rip, 20, 0, 0)]);
}

/// A server at its upper threshold gets no new connections until its
/// connections fall below 3/4 of it (no lower threshold set).
#[test]
fn overloaded_server_gets_no_new_connections_until_it_drains() {
    let vip = v4("192.0.2.10");
    let (a, b) = (v4("10.20.0.11"), v4("10.20.0.12"));
    let key = tcp_svc(vip, 80);
    let mut limited = dest(a, 80, 1, Forward::Masq);
    limited.u_threshold = 2;
    // Added last, so first in the kernel's list: rr tries it first.
    let mut d = director_with(
        key,
        SchedKind::Rr,
        &[dest(b, 80, 1, Forward::Masq), limited],
    );
    let cip = v4("198.51.100.7");
    let hops: Vec<Addr> = (0..6)
        .map(|p| next_hop(&run(&mut d, t(1), &tcp(cip, 41000 + p, vip, 80, SYN, b"")).0))
        .collect();
    // a takes 41000 and 41002, then is overloaded (2 >= 2): b takes the rest.
    assert_eq!(hops, [a, b, a, b, b, b]);
    // 41000 completes its handshake and is reset (CLOSE, 10 s); 41002 stays
    // half-open (SYN_RECV, 60 s). When 41000's entry goes, one connection is
    // left: 4 * 1 < 3 * 2, the flag clears.
    run(&mut d, t(2), &tcp(a, 80, cip, 41000, SYN | ACK, b""));
    run(&mut d, t(2), &tcp(cip, 41000, vip, 80, ACK, b""));
    run(&mut d, t(2), &tcp(cip, 41000, vip, 80, RST, b""));
    let (v, _) = run(&mut d, t(3), &tcp(cip, 41010, vip, 80, SYN, b""));
    assert_eq!(next_hop(&v), b, "still overloaded while both entries live");
    d.handle_timeout(t(13));
    assert_eq!(counts(&d)[0], (a, 1, 0, 0));
    let (v, _) = run(&mut d, t(14), &tcp(cip, 41011, vip, 80, SYN, b""));
    assert_eq!(next_hop(&v), a);
}

/// Directors sharing a `SharedLoad` (rvsd's workers) hold a real server
/// to its upper threshold over all their connections together, as IPVS
/// does with one table; without it each would count only its own.
#[test]
fn thresholds_count_the_connections_of_every_director_sharing_the_load() {
    let vip = v4("192.0.2.10");
    let (a, b) = (v4("10.20.0.11"), v4("10.20.0.12"));
    let key = tcp_svc(vip, 80);
    let mut limited = dest(a, 80, 1, Forward::Masq);
    limited.u_threshold = 2;
    let dests = [dest(b, 80, 1, Forward::Masq), limited];
    let cip = v4("198.51.100.7");
    let syn = |d: &mut Director, now: u64, port: u16| {
        next_hop(&run(d, t(now), &tcp(cip, port, vip, 80, SYN, b"")).0)
    };
    for shared in [true, false] {
        let cfg = DirectorConfig {
            shared_load: shared
                .then(|| std::sync::Arc::new(rvs_engine::load::SharedLoad::default())),
            ..DirectorConfig::default()
        };
        let mut d1 = director_cfg(cfg.clone(), key, SchedKind::Rr, &dests);
        let mut d2 = director_cfg(cfg, key, SchedKind::Rr, &dests);
        // One connection to a on each: two in all, a is at its threshold.
        assert_eq!(syn(&mut d1, 1, 41000), a);
        assert_eq!(syn(&mut d2, 1, 42000), a);
        assert_eq!(syn(&mut d1, 1, 41001), b);
        // d1's rr comes back to a: overloaded over both directors, so b;
        // counted alone, d1 has one connection on a and takes it.
        let third = syn(&mut d1, 1, 41002);
        if !shared {
            assert_eq!(third, a, "each director counts its own");
            continue;
        }
        assert_eq!(third, b, "a is at its threshold over both directors");
        assert_eq!(syn(&mut d2, 1, 42001), b);
        assert_eq!(syn(&mut d2, 1, 42002), b);
        // Each director lists its own connections.
        assert_eq!(counts(&d1)[0], (a, 1, 0, 0));
        assert_eq!(counts(&d2)[0], (a, 1, 0, 0));
        // d2's connection to a is reset (CLOSE, 10 s): when it goes, one
        // connection is left in all, 4 * 1 < 3 * 2, and the flag clears for
        // d1 as well.
        run(&mut d2, t(2), &tcp(a, 80, cip, 42000, SYN | ACK, b""));
        run(&mut d2, t(2), &tcp(cip, 42000, vip, 80, ACK, b""));
        run(&mut d2, t(2), &tcp(cip, 42000, vip, 80, RST, b""));
        assert_eq!(syn(&mut d1, 3, 41003), b, "still overloaded while it lives");
        d2.handle_timeout(t(13));
        assert_eq!(counts(&d2)[0], (a, 0, 0, 0));
        let next: Vec<Addr> = (0..2).map(|i| syn(&mut d1, 14, 41004 + i)).collect();
        assert!(next.contains(&a), "a takes connections again: {next:?}");
    }
}

/// With events on, every connection's birth and end is reported (what the
/// sync sender and the XDP fast-path table follow).
#[test]
fn events_report_new_and_gone_connections() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let key = udp_svc(vip, 53);
    let mut d = Director::new(
        DirectorConfig {
            events: true,
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    d.add_service(ServiceConfig::new(key)).unwrap();
    d.add_dest(&key, dest(rip, 5353, 1, Forward::Masq)).unwrap();
    let cip = v4("198.51.100.7");
    let (v, _) = run(&mut d, t(1), &udp(cip, 1000, vip, 53, b"q"));
    let Verdict::Forward(f) = v else {
        panic!("{v:?}")
    };
    match d.poll_event() {
        Some(Event::ConnNew(id, c)) => {
            assert_eq!(id, f.conn);
            assert_eq!((c.caddr, c.cport, c.vaddr, c.vport), (cip, 1000, vip, 53));
            assert_eq!((c.daddr, c.dport), (rip, 5353));
        }
        other => panic!("{other:?}"),
    }
    // Established traffic makes no events.
    run(&mut d, t(2), &udp(cip, 1000, vip, 53, b"q"));
    assert!(d.poll_event().is_none());
    d.handle_timeout(t(2 + 301));
    match d.poll_event() {
        Some(Event::ConnGone(id, c)) => {
            assert_eq!(id, f.conn);
            assert_eq!(c.cport, 1000);
        }
        other => panic!("{other:?}"),
    }
    assert!(d.poll_event().is_none());
    // Off by default: nothing is recorded.
    let mut quiet = director_with(key, SchedKind::Rr, &[dest(rip, 5353, 1, Forward::Masq)]);
    run(&mut quiet, t(1), &udp(cip, 1000, vip, 53, b"q"));
    assert!(quiet.poll_event().is_none());
}

/// IPv4 without DF that would exceed the tunnel MTU: rvs does not fragment,
/// so the packet is dropped and counted (a DF packet gets the ICMP answer,
/// see the tun_too_big fixtures).
#[test]
fn tunnel_too_big_without_df_is_dropped_and_counted() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let key = tcp_svc(vip, 80);
    let mut d = director_with(
        key,
        SchedKind::Rr,
        &[dest(rip, 80, 1, Forward::Tunnel(TunnelKind::Ipip))],
    );
    let cip = v4("198.51.100.7");
    run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b""));
    let mut big = tcp(cip, 40000, vip, 80, ACK, &[0u8; 1460]);
    let (mut h, _) = etherparse::Ipv4Header::from_slice(&big[14..]).unwrap();
    assert!(h.dont_fragment);
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    big[14..34].copy_from_slice(&h.to_bytes());
    let (v, _) = run(&mut d, t(1), &big);
    assert_eq!(v, Verdict::Drop(DropReason::TooBigNoDf));
    assert_eq!(d.drops(DropReason::TooBigNoDf), 1);
    // 20 bytes smaller fits exactly (1480 + 20 = 1500).
    let fits = tcp(cip, 40000, vip, 80, ACK, &[0u8; 1440]);
    let (v, out) = run(&mut d, t(1), &fits);
    assert_eq!(next_hop(&v), rip);
    assert_eq!(out.len(), fits.len() + 20);
}

/// Per service, per real server and director-wide: counters and the
/// 2-second estimator's rates, in and out, packets, bytes and connections;
/// NAT verdicts say which side a frame goes to.
#[test]
fn counters_and_rates_on_every_level() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = udp_svc(vip, 53);
    let dests: Vec<_> = rips
        .iter()
        .map(|r| dest(*r, 53, 1, Forward::Masq))
        .collect();
    let mut d = director_with(key, SchedKind::Rr, &dests);
    let cip = v4("198.51.100.7");
    // For 60 s: each second 4 new queries (29-byte IP packets: 20 + 8 + 1),
    // each answered once (20 + 8 + 3 = 31 bytes); rr alternates servers.
    let mut port = 1000;
    for sec in 0..60u64 {
        for _ in 0..4 {
            let (v, _) = run(&mut d, t(sec), &udp(cip, port, vip, 53, b"q"));
            assert_eq!(verdict_dir(&v), Direction::ToServer);
            let rip = next_hop(&v);
            let (v, out) = run(&mut d, t(sec), &udp(rip, 53, cip, port, b"ans"));
            assert_eq!(verdict_dir(&v), Direction::ToClient);
            assert_eq!(next_hop(&v), cip);
            assert_eq!(out, udp(vip, 53, cip, port, b"ans"));
            port += 1;
        }
        d.handle_timeout(t(sec + 1));
    }
    let svc = &d.services()[0];
    assert_eq!(
        (svc.stats.conns, svc.stats.inpkts, svc.stats.outpkts),
        (240, 240, 240)
    );
    assert_eq!(
        (svc.stats.inbytes, svc.stats.outbytes),
        (240 * 29, 240 * 31)
    );
    // The EWMA has converged (30 samples): the true rates, exactly.
    let r = svc.rates;
    assert_eq!((r.cps, r.inpps, r.outpps), (4, 4, 4));
    assert_eq!((r.inbps, r.outbps), (4 * 29, 4 * 31));
    for ds in &svc.dests {
        assert_eq!(
            (ds.stats.conns, ds.stats.inpkts, ds.stats.outpkts),
            (120, 120, 120)
        );
        assert_eq!(ds.stats.outbytes, 120 * 31);
        let r = ds.rates;
        assert_eq!((r.cps, r.inpps, r.outpps), (2, 2, 2));
        assert_eq!((r.inbps, r.outbps), (2 * 29, 2 * 31));
    }
    let g = d.stats();
    assert_eq!(
        (g.totals.conns, g.totals.inpkts, g.totals.outpkts),
        (240, 240, 240)
    );
    assert_eq!((g.rates.cps, g.rates.inpps, g.rates.outpps), (4, 4, 4));
    assert_eq!((g.rates.inbps, g.rates.outbps), (4 * 29, 4 * 31));
    // Traffic stops: the rates decay (by 3/4 per period) toward zero.
    for k in 0..10u64 {
        d.handle_timeout(t(62 + 2 * k));
    }
    let r = d.services()[0].rates;
    assert!(r.inpps < 4 && r.inbps < 4 * 29 / 4, "{r:?}");
}

/// GUE with the real server's own port and the UDP checksum on: a valid
/// UDP checksum (etherparse), the configured port, a GUE header naming the
/// inner protocol, then the client's packet unchanged.
#[test]
fn gue_tunnel_with_checksum_and_its_own_port() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let kind = TunnelKind::Gue {
        port: 5555,
        csum: true,
        remcsum: false,
    };
    let mut d = Director::new(
        DirectorConfig {
            tunnel_src_v4: v4("10.20.0.1"),
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    let key = tcp_svc(vip, 80);
    d.add_service(ServiceConfig::new(key)).unwrap();
    d.add_dest(&key, dest(rip, 80, 1, Forward::Tunnel(kind)))
        .unwrap();
    let syn = tcp(v4("198.51.100.7"), 40000, vip, 80, SYN, b"");
    let (v, out) = run(&mut d, t(1), &syn);
    assert_eq!(next_hop(&v), rip);
    let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("outer not IPv4")
    };
    assert_eq!(ip.header().source(), [10, 20, 0, 1]);
    assert_eq!(ip.header().destination(), [10, 20, 0, 11]);
    let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.destination_port(), 5555);
    assert!(u.source_port() >= 1024);
    assert_ne!(u.checksum(), 0);
    let want = u
        .to_header()
        .calc_checksum_ipv4_raw(ip.header().source(), ip.header().destination(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), want);
    assert_eq!(
        &u.payload()[..4],
        &[0, 4, 0, 0],
        "GUE: version 0, proto IPIP (an IPv4 packet follows)"
    );
    assert_eq!(&u.payload()[4..], &syn[14..]);
}

/// conn_reuse_mode's FIN_WAIT rule (`reuse_fin_wait`): a DR connection the
/// client closed (FIN_WAIT through the INPUT_ONLY table) is rescheduled on
/// a new SYN only when the option is on.
#[test]
fn syn_on_dr_fin_wait_is_rescheduled_only_with_reuse_fin_wait() {
    for reuse in [false, true] {
        let vip = v4("192.0.2.10");
        let key = tcp_svc(vip, 80);
        let cfg = DirectorConfig {
            reuse_fin_wait: reuse,
            ..DirectorConfig::default()
        };
        let (mut d, rips) = two_servers(cfg, key, 80, Forward::Route, None);
        let c = |f| tcp(v4("198.51.100.7"), 40000, vip, 80, f, b"");
        assert_eq!(next_hop(&run(&mut d, t(1), &c(SYN)).0), rips[1]);
        run(&mut d, t(1), &c(ACK));
        run(&mut d, t(2), &c(FIN | ACK));
        assert_eq!(d.connections(t(2))[0].state, "FIN_WAIT");
        let again = next_hop(&run(&mut d, t(3), &c(SYN)).0);
        assert_eq!(
            again,
            if reuse { rips[0] } else { rips[1] },
            "reuse {reuse}"
        );
        assert_eq!(d.services()[0].stats.conns, if reuse { 2 } else { 1 });
    }
}

/// Expire (expire_nodest_conn on), UDP: the datagram of a removed server's entry is
/// not lost, it is scheduled at once to a server that is there (IPVS
/// expires the entry and schedules the packet again).
#[test]
fn udp_of_a_removed_server_is_rescheduled_at_once_with_expire_nodest_conn() {
    let vip = v4("192.0.2.10");
    let key = udp_svc(vip, 53);
    let (mut d, rips) = two_servers(
        nodest_cfg(Some(NoDest::Expire)),
        key,
        53,
        Forward::Masq,
        None,
    );
    let cip = v4("198.51.100.7");
    let q = udp(cip, 5353, vip, 53, b"q");
    let first = next_hop(&run(&mut d, t(1), &q).0);
    let other = if first == rips[0] { rips[1] } else { rips[0] };
    d.del_dest(&key, &first, 53).unwrap();
    let (v, out) = run(&mut d, t(2), &q);
    assert_eq!(next_hop(&v), other);
    assert_eq!(out, udp(cip, 5353, other, 53, b"q"));
    assert_eq!(d.drops(DropReason::NoDestConn), 0);
    assert_eq!(d.conn_count(), 1);
    assert_eq!(d.services()[0].stats.conns, 2);
    // The removed server's counters are gone with its last entry.
    assert_eq!(counts(&d), vec![(other, 0, 1, 0)]);
}

/// Expire (expire_nodest_conn on): a SYN on an entry of a quiescent (weight
/// 0) server gets a new server; with keep or drop the entry keeps its
/// server (a quiescent server is still available).
#[test]
fn syn_on_a_quiescent_servers_entry_is_rescheduled_with_expire_nodest_conn() {
    for policy in [NoDest::Keep, NoDest::Drop, NoDest::Expire] {
        let on = policy == NoDest::Expire;
        let vip = v4("192.0.2.10");
        let key = tcp_svc(vip, 80);
        let (mut d, rips) = two_servers(nodest_cfg(Some(policy)), key, 80, Forward::Route, None);
        let c = |f| tcp(v4("198.51.100.7"), 40000, vip, 80, f, b"");
        assert_eq!(next_hop(&run(&mut d, t(1), &c(SYN)).0), rips[1]);
        run(&mut d, t(1), &c(ACK));
        d.edit_dest(&key, dest(rips[1], 80, 0, Forward::Route))
            .unwrap();
        // Data still flows to the quiescent server either way.
        assert_eq!(next_hop(&run(&mut d, t(2), &c(ACK)).0), rips[1]);
        let again = next_hop(&run(&mut d, t(3), &c(SYN)).0);
        assert_eq!(again, if on { rips[0] } else { rips[1] }, "{policy:?}");
        assert_eq!(d.drops(DropReason::NoDestDrop), 0);
        assert_eq!(d.conn_count(), 1);
    }
}

/// ICMPv4 errors IPVS relates to a connection are destination unreachable,
/// source quench and time exceeded; a redirect or a parameter problem
/// quoting the same packet goes to the host untouched.
#[test]
fn only_ipvs_icmp_error_types_are_translated() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let cip = v4("198.51.100.7");
    let mut d = director_with(
        tcp_svc(vip, 80),
        SchedKind::Rr,
        &[dest(rip, 8080, 1, Forward::Masq)],
    );
    run(&mut d, t(1), &tcp(cip, 40000, vip, 80, SYN, b""));
    // What the real server got; a router near it answers about it.
    let sent = tcp(cip, 40000, rip, 8080, SYN, b"");
    let router = [10, 20, 0, 254];
    let error = |ty: u8, code: u8| {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(CMAC, DMAC)
            .ipv4(router, cip.octets4(), 64)
            .icmpv4_raw(ty, code, [0; 4])
            .write(&mut f, &sent[14..])
            .unwrap();
        f
    };
    for (ty, code) in [(3u8, 1u8), (4, 0), (11, 0)] {
        let (v, _) = run(&mut d, t(2), &error(ty, code));
        assert_eq!(next_hop(&v), cip, "type {ty}");
    }
    for (ty, code) in [(5u8, 1u8), (12, 0)] {
        let f = error(ty, code);
        let (v, out) = run(&mut d, t(2), &f);
        assert_eq!(v, Verdict::Pass, "type {ty}");
        assert_eq!(out, f);
    }
}
