//! What becomes of a removed real server's connections ([`NoDest`]): each
//! policy (and rvs's default per protocol) against an established TCP
//! stream, a retransmitted SYN and a UDP flow; `Drop` leaves the entry to
//! its own timeout; a deleted service's connections keep its policy.

mod common;

use common::*;
use rvs_engine::*;
use rvs_types::{Addr, Instant};

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// A NAT service (rr) on two real servers with the given policies.
fn setup(
    key: ServiceKey,
    port: u16,
    director: Option<NoDest>,
    service: Option<NoDest>,
) -> (Director, [Addr; 2]) {
    two_servers(nodest_cfg(director), key, port, Forward::Masq, service)
}

const VIP: &str = "192.0.2.10";
const CIP: &str = "198.51.100.7";

/// What the next packet of a removed server's connection got.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Forwarded to the removed server.
    Removed,
    /// Forwarded to the server that is left.
    Other,
    /// Dropped, the entry kept (not refreshed).
    DroppedKept,
    /// Dropped, the entry expired.
    DroppedExpired,
}

fn outcome(d: &Director, v: &Verdict, removed: Addr, other: Addr) -> Outcome {
    match v {
        Verdict::Forward(f) if f.next_hop == removed => Outcome::Removed,
        Verdict::Forward(f) if f.next_hop == other => Outcome::Other,
        Verdict::Drop(DropReason::NoDestDrop) => {
            assert_eq!(d.conn_count(), 1, "a dropped packet's entry must stay");
            Outcome::DroppedKept
        }
        Verdict::Drop(DropReason::NoDestConn) => {
            assert_eq!(d.conn_count(), 0, "an expired entry must be gone");
            Outcome::DroppedExpired
        }
        other => panic!("unexpected {other:?}"),
    }
}

const POLICIES: [Option<NoDest>; 4] = [
    None,
    Some(NoDest::Keep),
    Some(NoDest::Drop),
    Some(NoDest::Expire),
];

/// An established stream: keep forwards to the removed server, drop drops
/// (entry kept), expire flushes and drops (a non-SYN cannot open a new
/// connection). rvs's default for TCP is keep.
#[test]
fn established_tcp_stream_under_each_policy() {
    let vip = v4(VIP);
    let cip = v4(CIP);
    for (i, policy) in POLICIES.iter().enumerate() {
        // The director's policy, then the same as the service's own.
        for per_service in [false, true] {
            let (dir, svc) = if per_service {
                // The director says otherwise: the service wins.
                (
                    Some(NoDest::Drop).filter(|_| *policy != Some(NoDest::Drop)),
                    *policy,
                )
            } else {
                (*policy, None)
            };
            if per_service && policy.is_none() {
                continue;
            }
            let (mut d, rips) = setup(tcp_svc(vip, 80), 80, dir, svc);
            let c = |f, p: &[u8]| tcp(cip, 40000, vip, 80, f, p);
            let first = next_hop(&run(&mut d, t(1), &c(SYN, b"")).0);
            let other = if first == rips[0] { rips[1] } else { rips[0] };
            run(&mut d, t(1), &tcp(first, 80, cip, 40000, SYN | ACK, b""));
            run(&mut d, t(1), &c(ACK, b""));
            assert_eq!(d.connections(t(1))[0].state, "ESTABLISHED");
            d.del_dest(&tcp_svc(vip, 80), &first, 80).unwrap();
            let (v, out) = run(&mut d, t(2), &c(ACK | PSH, b"x"));
            let got = outcome(&d, &v, first, other);
            let want = match policy {
                None | Some(NoDest::Keep) => Outcome::Removed,
                Some(NoDest::Drop) => Outcome::DroppedKept,
                Some(NoDest::Expire) => Outcome::DroppedExpired,
            };
            assert_eq!(got, want, "case {i} {policy:?} per service {per_service}");
            if got == Outcome::Removed {
                assert_eq!(out, tcp(cip, 40000, first, 80, ACK | PSH, b"x"));
            }
            let drops = (
                d.drops(DropReason::NoDestDrop),
                d.drops(DropReason::NoDestConn),
            );
            let want_drops = match want {
                Outcome::DroppedKept => (1, 0),
                Outcome::DroppedExpired => (0, 1),
                _ => (0, 0),
            };
            assert_eq!(drops, want_drops, "{policy:?}");
        }
    }
}

/// A SYN retransmitted after its server was removed (the first SYN got no
/// answer): keep sends it to the removed server, drop drops it, expire
/// schedules it to the server that is left.
#[test]
fn retransmitted_syn_under_each_policy() {
    let vip = v4(VIP);
    let cip = v4(CIP);
    for policy in POLICIES {
        let (mut d, rips) = setup(tcp_svc(vip, 80), 80, policy, None);
        let syn = tcp(cip, 40000, vip, 80, SYN, b"");
        let first = next_hop(&run(&mut d, t(1), &syn).0);
        let other = if first == rips[0] { rips[1] } else { rips[0] };
        d.del_dest(&tcp_svc(vip, 80), &first, 80).unwrap();
        let (v, out) = run(&mut d, t(2), &syn);
        let got = outcome(&d, &v, first, other);
        let want = match policy {
            None | Some(NoDest::Keep) => Outcome::Removed,
            Some(NoDest::Drop) => Outcome::DroppedKept,
            Some(NoDest::Expire) => Outcome::Other,
        };
        assert_eq!(got, want, "{policy:?}");
        if got == Outcome::Other {
            assert_eq!(out, tcp(cip, 40000, other, 80, SYN, b""));
            assert_eq!(d.conn_count(), 1);
            // The removed server's entry is gone, and with it the server;
            // the new SYN_RECV entry counts as active.
            assert_eq!(counts(&d), vec![(other, 1, 0, 0)]);
        }
    }
}

/// A UDP flow (one client port): keep stays on the removed server, drop
/// black-holes it until the entry times out, expire moves it to the server
/// that is left on its very next datagram. rvs's default for UDP is expire.
#[test]
fn udp_flow_under_each_policy() {
    let vip = v4(VIP);
    let cip = v4(CIP);
    for policy in POLICIES {
        let (mut d, rips) = setup(udp_svc(vip, 53), 53, policy, None);
        let q = |p: &[u8]| udp(cip, 5000, vip, 53, p);
        let first = next_hop(&run(&mut d, t(1), &q(b"a")).0);
        let other = if first == rips[0] { rips[1] } else { rips[0] };
        d.del_dest(&udp_svc(vip, 53), &first, 53).unwrap();
        let (v, out) = run(&mut d, t(2), &q(b"b"));
        let got = outcome(&d, &v, first, other);
        let want = match policy {
            Some(NoDest::Keep) => Outcome::Removed,
            Some(NoDest::Drop) => Outcome::DroppedKept,
            None | Some(NoDest::Expire) => Outcome::Other,
        };
        assert_eq!(got, want, "{policy:?}");
        if got == Outcome::Other {
            assert_eq!(out, udp(cip, 5000, other, 53, b"b"));
            assert_eq!(d.conn_count(), 1);
            assert_eq!(counts(&d), vec![(other, 0, 1, 0)]);
            // And it stays there.
            assert_eq!(next_hop(&run(&mut d, t(3), &q(b"c")).0), other);
        }
    }
}

/// Drop does not refresh the entry: packets keep coming and are dropped,
/// and the entry (with its trashed server) goes at its own timeout, counted
/// from the last packet forwarded. With keep the same packets refresh it.
#[test]
fn drop_leaves_the_entry_to_its_timeout() {
    let vip = v4(VIP);
    let cip = v4(CIP);
    for policy in [NoDest::Drop, NoDest::Keep] {
        // UDP: 300 s from the last datagram forwarded (t = 1).
        let (mut d, _) = setup(udp_svc(vip, 53), 53, None, Some(policy));
        let q = udp(cip, 5000, vip, 53, b"q");
        let first = next_hop(&run(&mut d, t(1), &q).0);
        d.del_dest(&udp_svc(vip, 53), &first, 53).unwrap();
        for s in [100, 200, 290] {
            let (v, _) = run(&mut d, t(s), &q);
            match policy {
                NoDest::Drop => assert_eq!(v, Verdict::Drop(DropReason::NoDestDrop)),
                _ => assert_eq!(next_hop(&v), first),
            }
            d.handle_timeout(t(s));
        }
        d.handle_timeout(t(299));
        assert_eq!(d.conn_count(), 1, "{policy:?}");
        d.handle_timeout(t(305));
        assert_eq!(
            d.conn_count(),
            if policy == NoDest::Drop { 0 } else { 1 },
            "UDP {policy:?}"
        );
        if policy == NoDest::Drop {
            assert_eq!(d.drops(DropReason::NoDestDrop), 3);
            // The removed server left the trash with its last entry.
            assert_eq!(counts(&d).len(), 1);
        }

        // TCP ESTABLISHED: 900 s from the last segment forwarded (t = 1).
        let (mut d, _) = setup(tcp_svc(vip, 80), 80, None, Some(policy));
        let c = |f| tcp(cip, 40000, vip, 80, f, b"");
        let first = next_hop(&run(&mut d, t(1), &c(SYN)).0);
        run(&mut d, t(1), &tcp(first, 80, cip, 40000, SYN | ACK, b""));
        run(&mut d, t(1), &c(ACK));
        d.del_dest(&tcp_svc(vip, 80), &first, 80).unwrap();
        for s in [300, 600, 890] {
            let (v, _) = run(&mut d, t(s), &c(ACK));
            match policy {
                NoDest::Drop => assert_eq!(v, Verdict::Drop(DropReason::NoDestDrop)),
                _ => assert_eq!(next_hop(&v), first),
            }
            d.handle_timeout(t(s));
        }
        d.handle_timeout(t(899));
        assert_eq!(d.conn_count(), 1, "{policy:?}");
        d.handle_timeout(t(905));
        assert_eq!(
            d.conn_count(),
            if policy == NoDest::Drop { 0 } else { 1 },
            "TCP {policy:?}"
        );
    }
}

/// A quiescent server is still available: under drop its stream and even
/// a SYN on its entry go on to it.
#[test]
fn drop_leaves_a_quiescent_server_alone() {
    let vip = v4(VIP);
    let cip = v4(CIP);
    let key = tcp_svc(vip, 80);
    let (mut d, _) = setup(key, 80, Some(NoDest::Drop), None);
    let c = |f| tcp(cip, 40000, vip, 80, f, b"");
    let first = next_hop(&run(&mut d, t(1), &c(SYN)).0);
    d.edit_dest(&key, dest(first, 80, 0, Forward::Masq))
        .unwrap();
    assert_eq!(next_hop(&run(&mut d, t(2), &c(SYN)).0), first);
    run(&mut d, t(2), &tcp(first, 80, cip, 40000, SYN | ACK, b""));
    assert_eq!(next_hop(&run(&mut d, t(2), &c(ACK)).0), first);
    assert_eq!(d.drops(DropReason::NoDestDrop), 0);
}

/// A deleted service's connections follow the policy it had, not the
/// director's.
#[test]
fn deleted_service_keeps_its_policy() {
    let vip = v4(VIP);
    let cip = v4(CIP);
    let key = tcp_svc(vip, 80);
    let (mut d, _) = setup(key, 80, Some(NoDest::Drop), Some(NoDest::Keep));
    let c = |f| tcp(cip, 40000, vip, 80, f, b"");
    let first = next_hop(&run(&mut d, t(1), &c(SYN)).0);
    d.del_service(&key).unwrap();
    assert_eq!(next_hop(&run(&mut d, t(2), &c(ACK)).0), first);
    // And an edit changes it for the live connections too.
    let (mut d, _) = setup(key, 80, None, Some(NoDest::Keep));
    let first = next_hop(&run(&mut d, t(1), &c(SYN)).0);
    d.del_dest(&key, &first, 80).unwrap();
    assert_eq!(next_hop(&run(&mut d, t(2), &c(ACK)).0), first);
    let mut s = d.services()[0].cfg.clone();
    s.nodest = Some(NoDest::Drop);
    d.edit_service(s).unwrap();
    assert_eq!(
        run(&mut d, t(3), &c(ACK)).0,
        Verdict::Drop(DropReason::NoDestDrop)
    );
}

#[test]
fn names_and_the_ipvs_sysctl() {
    for p in [NoDest::Keep, NoDest::Drop, NoDest::Expire] {
        assert_eq!(p.name().parse::<NoDest>(), Ok(p));
    }
    assert!("flush".parse::<NoDest>().is_err());
    assert_eq!(NoDest::from_expire_nodest_conn(true), NoDest::Expire);
    assert_eq!(NoDest::from_expire_nodest_conn(false), NoDest::Drop);
    assert_eq!(NoDest::default_for(rvs_types::Proto::UDP), NoDest::Expire);
    assert_eq!(NoDest::default_for(rvs_types::Proto::TCP), NoDest::Keep);
    assert_eq!(NoDest::default_for(rvs_types::Proto::SCTP), NoDest::Keep);
}
