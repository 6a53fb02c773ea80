//! Frame builders for engine tests, on etherparse (independent of rvs-wire).
#![allow(dead_code)]

use etherparse::PacketBuilder;
use rvs_engine::*;
use rvs_types::{Addr, Instant};
use rvs_wire::FrameBuf;

pub(crate) const HEADROOM: usize = 128;
pub(crate) const CMAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
pub(crate) const DMAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0d];

pub(crate) const SYN: u8 = 0x02;
pub(crate) const ACK: u8 = 0x10;
pub(crate) const FIN: u8 = 0x01;
pub(crate) const RST: u8 = 0x04;
pub(crate) const PSH: u8 = 0x08;

pub(crate) fn v4(s: &str) -> Addr {
    Addr::from(s.parse::<std::net::IpAddr>().unwrap())
}

fn octets4(a: Addr) -> [u8; 4] {
    a.octets4()
}

/// A TCP segment in an Ethernet frame (etherparse computes every checksum).
pub(crate) fn tcp(
    src: Addr,
    sport: u16,
    dst: Addr,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CMAC, DMAC);
    let mut t = if src.is_v4() {
        b.ipv4(octets4(src), octets4(dst), 64)
            .tcp(sport, dport, 1000, 64240)
    } else {
        b.ipv6(src.octets16(), dst.octets16(), 64)
            .tcp(sport, dport, 1000, 64240)
    };
    if flags & SYN != 0 {
        t = t.syn();
    }
    if flags & ACK != 0 {
        t = t.ack(1);
    }
    if flags & FIN != 0 {
        t = t.fin();
    }
    if flags & RST != 0 {
        t = t.rst();
    }
    if flags & PSH != 0 {
        t = t.psh();
    }
    let mut out = Vec::new();
    t.write(&mut out, payload).unwrap();
    out
}

/// A UDP datagram in an Ethernet frame.
pub(crate) fn udp(src: Addr, sport: u16, dst: Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CMAC, DMAC);
    let u = if src.is_v4() {
        b.ipv4(octets4(src), octets4(dst), 64).udp(sport, dport)
    } else {
        b.ipv6(src.octets16(), dst.octets16(), 64).udp(sport, dport)
    };
    let mut out = Vec::new();
    u.write(&mut out, payload).unwrap();
    out
}

/// Runs one frame through the director with headroom, returning the verdict
/// and the resulting frame bytes.
pub(crate) fn run(d: &mut Director, now: Instant, frame: &[u8]) -> (Verdict, Vec<u8>) {
    run_meta(d, now, frame, &RxMeta::default())
}

pub(crate) fn run_meta(
    d: &mut Director,
    now: Instant,
    frame: &[u8],
    meta: &RxMeta,
) -> (Verdict, Vec<u8>) {
    let mut mem = vec![0u8; HEADROOM + frame.len() + 256];
    mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut fb = FrameBuf::new(&mut mem, HEADROOM, frame.len()).unwrap();
    let v = d.handle_frame(now, &mut fb, meta);
    (v, fb.data().to_vec())
}

pub(crate) fn next_hop(v: &Verdict) -> Addr {
    match v {
        Verdict::Forward(f) => f.next_hop,
        other => panic!("expected Forward, got {other:?}"),
    }
}

pub(crate) fn tcp_svc(vip: Addr, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: rvs_types::Proto::TCP,
        addr: vip,
        port,
    }
}

pub(crate) fn udp_svc(vip: Addr, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: rvs_types::Proto::UDP,
        addr: vip,
        port,
    }
}

pub(crate) fn dest(addr: Addr, port: u16, weight: i32, fwd: Forward) -> DestConfig {
    let mut d = DestConfig::new(addr, port);
    d.weight = weight;
    d.fwd = fwd;
    d
}

/// A director with one service and the given real servers.
pub(crate) fn director_with(key: ServiceKey, sched: SchedKind, dests: &[DestConfig]) -> Director {
    director_cfg(DirectorConfig::default(), key, sched, dests)
}

/// [`director_with`] with director-wide settings.
pub(crate) fn director_cfg(
    cfg: DirectorConfig,
    key: ServiceKey,
    sched: SchedKind,
    dests: &[DestConfig],
) -> Director {
    let mut d = Director::new(cfg, Instant::ZERO);
    let mut s = ServiceConfig::new(key);
    s.sched = sched;
    d.add_service(s).unwrap();
    for x in dests {
        d.add_dest(&key, x.clone()).unwrap();
    }
    d
}

/// The real servers of the two-server scenarios.
pub(crate) fn two_rips() -> [Addr; 2] {
    [v4("10.20.0.11"), v4("10.20.0.12")]
}

/// An rr service `key` on the two real servers of [`two_rips`] (added in
/// that order, so the second is first in the kernel's list), on `port`
/// with `fwd`, the service's own removed-server policy `nodest`, and the
/// director-wide settings `cfg`.
pub(crate) fn two_servers(
    cfg: DirectorConfig,
    key: ServiceKey,
    port: u16,
    fwd: Forward,
    nodest: Option<NoDest>,
) -> (Director, [Addr; 2]) {
    let rips = two_rips();
    let mut d = Director::new(cfg, Instant::ZERO);
    let mut s = ServiceConfig::new(key);
    s.sched = SchedKind::Rr;
    s.nodest = nodest;
    d.add_service(s).unwrap();
    for r in rips {
        d.add_dest(&key, dest(r, port, 1, fwd)).unwrap();
    }
    (d, rips)
}

/// Director-wide settings with removed-server policy `nodest`.
pub(crate) fn nodest_cfg(nodest: Option<NoDest>) -> DirectorConfig {
    DirectorConfig {
        nodest,
        ..DirectorConfig::default()
    }
}

/// (addr, activeconns, inactconns, persistconns) per real server.
pub(crate) fn counts(d: &Director) -> Vec<(Addr, u32, u32, u32)> {
    d.services()[0]
        .dests
        .iter()
        .map(|x| (x.cfg.addr, x.activeconns, x.inactconns, x.persistconns))
        .collect()
}
