//! Per-queue workers' owner hand-off (ARCHITECTURE.md, "Multi-queue"):
//! every frame has an owner worker, a hash of its client's network, so both
//! directions of a connection, its ICMP errors and every connection of a
//! persistence template's client network meet one `Director`. A worker that
//! receives a frame it does not own copies it into a single-producer
//! single-consumer ring to the owner.
//!
//! The rings are `rtrb`'s (wait-free SPSC on two atomics, no dependencies,
//! builds on Rust 1.38+): one per (from, to) pair of workers, bounded; a
//! full ring drops the frame and counts it.

use rvs_types::Addr;
use rvs_wire::{PacketInfo, Parsed};
use std::collections::HashSet;

/// Frames a ring holds.
pub const RING: usize = 4096;

/// Where a handed-off frame goes on its new worker.
#[derive(Debug)]
pub enum Handoff {
    /// A received frame for its owner's director.
    Rx {
        /// The frame as received, after `dataplane`'s headroom (room for
        /// encapsulation headers, so the owner rewrites it in place).
        frame: Vec<u8>,
        /// Index of the interface it arrived on (the worker's interface
        /// list, the same in every worker; [`MARK_IFACE`]: the fwmark path).
        iface: usize,
        /// Its mark, on the fwmark path.
        fwmark: u32,
    },
    /// A finished frame to send by the receiving worker's socket of
    /// `iface` (the sender has no socket there).
    Tx {
        /// Interface index, as in `Rx`.
        iface: usize,
        /// The frame, MACs written.
        frame: Vec<u8>,
    },
}

/// The fwmark path's receiving interface in a [`Handoff`] (worker 0 owns
/// its one socket).
pub const MARK_IFACE: usize = usize::MAX;

/// Sending end of a ring.
pub type Tx = rtrb::Producer<Handoff>;
/// Receiving end of a ring.
pub type Rx = rtrb::Consumer<Handoff>;

/// One worker's ends of the rings: `to[o]` sends to worker `o`, `from[o]`
/// receives from worker `o` (`None` for the worker itself).
pub struct Links {
    /// To each worker.
    pub to: Vec<Option<Tx>>,
    /// From each worker.
    pub from: Vec<Option<Rx>>,
}

/// The rings of `n` workers, one per ordered pair; element `w` is worker
/// `w`'s ends.
pub fn links(n: usize) -> Vec<Links> {
    let mut out: Vec<Links> = (0..n)
        .map(|_| Links {
            to: (0..n).map(|_| None).collect(),
            from: (0..n).map(|_| None).collect(),
        })
        .collect();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                let (p, c) = rtrb::RingBuffer::new(RING);
                out[a].to[b] = Some(p);
                out[b].from[a] = Some(c);
            }
        }
    }
    out
}

/// What the steering program decided, as addresses: the VIPs and the NAT
/// real servers, and how wide a client network is (refreshed at every
/// configuration change).
#[derive(Clone, Debug)]
pub struct Classes {
    /// Service addresses.
    pub vips: HashSet<Addr>,
    /// NAT real servers' addresses.
    pub reals: HashSet<Addr>,
    /// IPv4 client network prefix length: 24, or the widest persistence
    /// mask of an IPv4 service when that is wider.
    pub v4_bits: u8,
    /// IPv6 client network prefix length: 64, or the widest persistence
    /// prefix of an IPv6 service when that is wider.
    pub v6_bits: u8,
}

impl Default for Classes {
    fn default() -> Self {
        Self {
            vips: HashSet::new(),
            reals: HashSet::new(),
            v4_bits: DEFAULT_V4_BITS,
            v6_bits: DEFAULT_V6_BITS,
        }
    }
}

/// The IPv4 client network without a wider persistence mask: /24.
pub const DEFAULT_V4_BITS: u8 = 24;
/// The IPv6 client network without a wider persistence prefix: /64.
pub const DEFAULT_V6_BITS: u8 = 64;

impl Classes {
    /// Widens the client network to a persistent service's mask
    /// (`netmask`: its prefix length), so that every client of one
    /// persistence template has one owner.
    pub fn persistent(&mut self, v4: bool, netmask: u8) {
        if v4 {
            self.v4_bits = self.v4_bits.min(netmask);
        } else {
            self.v6_bits = self.v6_bits.min(netmask);
        }
    }
}

/// The client address of a steered frame: the source of a frame to a VIP
/// (or of any frame on the fwmark path, `marked`), the destination of a
/// frame from a real server (a NAT reply); for an ICMP error, the end of
/// the quoted packet that is not the VIP or real server. `None`: not
/// classified (the receiving worker keeps it).
pub fn client_of(info: &PacketInfo, c: &Classes, marked: bool) -> Option<Addr> {
    if let Some(inner) = info.icmp.as_ref().and_then(|i| i.inner.as_ref()) {
        // The quoted packet is one the director sent or forwarded:
        // VIP → client (a reply), client → VIP (DR), client → real server
        // (NAT request), real server → client.
        return if c.vips.contains(&inner.src) {
            Some(inner.dst)
        } else if c.vips.contains(&inner.dst) || c.reals.contains(&inner.dst) {
            Some(inner.src)
        } else if c.reals.contains(&inner.src) {
            Some(inner.dst)
        } else {
            None
        };
    }
    ends_client(info.src, info.dst, c, marked)
}

/// The client end of a frame that is not an ICMP error: the source of a
/// frame to a VIP (or on the fwmark path), the destination of one from a
/// NAT real server.
fn ends_client(src: Addr, dst: Addr, c: &Classes, marked: bool) -> Option<Addr> {
    if marked || c.vips.contains(&dst) {
        Some(src)
    } else if c.reals.contains(&src) {
        Some(dst)
    } else {
        None
    }
}

/// The client network: IPv4 masked to `c.v4_bits` (/24 unless a
/// persistent service's mask is wider), IPv6 to `c.v6_bits` (/64 likewise),
/// so every connection of a persistence template has one owner.
pub fn client_net(a: Addr, c: &Classes) -> [u8; 16] {
    let mut o = a.octets16();
    // IPv4 is held mapped: its prefix starts after the 96 bits in front.
    let bits = if a.is_v4() {
        96 + usize::from(c.v4_bits.min(32))
    } else {
        usize::from(c.v6_bits.min(128))
    };
    for (i, b) in o.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        *b &= !(0xffu8.checked_shr(keep as u32).unwrap_or(0));
    }
    o
}

/// The owner worker of a client address among `n` workers.
pub fn owner_of(client: Addr, c: &Classes, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let o = client_net(client, c);
    let hi = u64::from_le_bytes(o[..8].try_into().unwrap_or_default());
    let lo = u64::from_le_bytes(o[8..].try_into().unwrap_or_default());
    let mut h = (hi ^ lo.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^= h >> 32;
    (h % n as u64) as usize
}

/// The owner of a frame among `n` workers; `None` when it cannot be
/// classified (not IP, or neither end known).
pub fn frame_owner(frame: &[u8], c: &Classes, marked: bool, n: usize) -> Option<usize> {
    if n <= 1 {
        return Some(0);
    }
    // The established fast path's compact parse first (IPv4 TCP/UDP, the
    // bulk of the traffic, and never an ICMP error), the full one otherwise.
    let client = match rvs_wire::parse_flow_v4(frame) {
        Some(f) => ends_client(Addr::v4(f.src), Addr::v4(f.dst), c, marked),
        None => match rvs_wire::parse_frame(frame) {
            Ok(Parsed::Ip(info)) => client_of(&info, c, marked),
            _ => None,
        },
    };
    client.map(|a| owner_of(a, c, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> Handoff {
        Handoff::Tx {
            iface: i as usize,
            frame: i.to_le_bytes().to_vec(),
        }
    }
    fn id(x: Handoff) -> usize {
        match x {
            Handoff::Tx { iface, .. } | Handoff::Rx { iface, .. } => iface,
        }
    }

    #[test]
    fn ring_keeps_order_refuses_when_full_and_wraps() {
        let mut l = links(2);
        let mut tx = l[0].to[1].take().unwrap();
        let mut rx = l[1].from[0].take().unwrap();
        assert!(l[0].to[0].is_none() && l[1].from[1].is_none());
        // Full: RING frames fit, the next is refused (and handed back).
        for i in 0..RING as u32 {
            tx.push(h(i)).unwrap();
        }
        assert!(tx.is_full());
        let back = tx.push(h(9999)).unwrap_err();
        let rtrb::PushError::Full(back) = back;
        assert_eq!(id(back), 9999);
        // Order.
        for i in 0..RING {
            assert_eq!(id(rx.pop().unwrap()), i);
        }
        assert!(rx.pop().is_err());
        // Wrap: many laps of a partly filled ring, still in order.
        let mut next_in = 0usize;
        let mut next_out = 0usize;
        for _ in 0..10 * RING / 1000 {
            for _ in 0..1000 {
                tx.push(h(next_in as u32)).unwrap();
                next_in += 1;
            }
            for _ in 0..1000 {
                assert_eq!(id(rx.pop().unwrap()), next_out);
                next_out += 1;
            }
        }
        assert!(next_in > 2 * RING);
    }

    #[test]
    fn rings_cross_threads() {
        let mut l = links(2);
        let mut tx = l[0].to[1].take().unwrap();
        let mut rx = l[1].from[0].take().unwrap();
        let t = std::thread::spawn(move || {
            let mut i = 0u32;
            while i < 100_000 {
                if tx.push(h(i)).is_ok() {
                    i += 1;
                }
            }
        });
        let mut want = 0;
        while want < 100_000 {
            if let Ok(x) = rx.pop() {
                assert_eq!(id(x), want);
                want += 1;
            }
        }
        t.join().unwrap();
    }

    fn a4(s: &str) -> Addr {
        Addr::from(s.parse::<std::net::IpAddr>().unwrap())
    }

    fn info(src: Addr, dst: Addr) -> PacketInfo {
        PacketInfo {
            vlan: None,
            l3_off: 14,
            l4_off: 34,
            l3_len: 40,
            af: if src.is_v4() {
                rvs_types::Af::V4
            } else {
                rvs_types::Af::V6
            },
            proto: rvs_types::Proto::TCP,
            src,
            dst,
            sport: 0,
            dport: 0,
            tcp_flags: 0,
            ttl: 64,
            frag: Default::default(),
            icmp: None,
        }
    }

    fn classes() -> Classes {
        let mut c = Classes::default();
        c.vips.insert(a4("10.10.0.100"));
        c.vips.insert(a4("fd00::100"));
        c.reals.insert(a4("10.21.0.2"));
        c.reals.insert(a4("fd21::2"));
        c
    }

    #[test]
    fn both_directions_and_icmp_errors_have_one_owner() {
        let c = classes();
        for (cip, vip, rip, router) in [
            ("10.10.0.1", "10.10.0.100", "10.21.0.2", "10.99.0.1"),
            ("fd10::1", "fd00::100", "fd21::2", "fd99::1"),
        ] {
            let (cip, vip, rip, router) = (a4(cip), a4(vip), a4(rip), a4(router));
            // Request: client → VIP; NAT reply: real server → client.
            assert_eq!(client_of(&info(cip, vip), &c, false), Some(cip));
            assert_eq!(client_of(&info(rip, cip), &c, false), Some(cip));
            // The fwmark path: the source, whatever the destination.
            assert_eq!(client_of(&info(cip, router), &c, true), Some(cip));
            // ICMP errors from a router, quoting each direction.
            for (qs, qd, outer_dst) in [
                (cip, rip, cip), // the forwarded NAT request
                (vip, cip, vip), // the NAT reply as the director sent it
                (cip, vip, cip), // a DR-forwarded request
                (rip, cip, rip), // a real server's packet
            ] {
                let mut i = info(router, outer_dst);
                i.proto = rvs_types::Proto::ICMP;
                i.icmp = Some(rvs_wire::IcmpInfo {
                    ty: 3,
                    code: 4,
                    inner: Some(rvs_wire::InnerInfo {
                        l3_off: 42,
                        l4_off: 62,
                        proto: rvs_types::Proto::TCP,
                        src: qs,
                        dst: qd,
                        sport: 1,
                        dport: 2,
                    }),
                });
                assert_eq!(client_of(&i, &c, false), Some(cip), "{qs} → {qd}");
            }
            // Neither end known: not classified.
            assert_eq!(client_of(&info(router, cip), &c, false), None);
            for n in 1..=8 {
                let o = owner_of(cip, &c, n);
                assert!(o < n);
                assert_eq!(owner_of(cip, &c, n), o);
            }
        }
    }

    #[test]
    fn client_network_has_one_owner_and_owners_spread() {
        let d = Classes::default();
        for n in [2usize, 3, 4] {
            let base = owner_of(a4("192.0.2.0"), &d, n);
            for host in 0..=255u8 {
                assert_eq!(owner_of(Addr::v4([192, 0, 2, host]), &d, n), base);
            }
            let v6 = owner_of(a4("2001:db8:1:2::"), &d, n);
            assert_eq!(owner_of(a4("2001:db8:1:2:ffff:1:2:3"), &d, n), v6);
            let mut seen = vec![0usize; n];
            for net in 0..=255u8 {
                seen[owner_of(Addr::v4([10, 1, net, 7]), &d, n)] += 1;
            }
            assert!(seen.iter().all(|&k| k > 256 / n / 2), "{seen:?}");
        }
        assert_eq!(owner_of(a4("10.0.0.1"), &d, 1), 0);
    }

    #[test]
    fn wider_persistence_mask_widens_the_client_network() {
        // -M 255.255.0.0 (and an IPv6 service with a /48): every client of
        // one template network has one owner; a narrower mask than the
        // default changes nothing.
        let mut c = Classes::default();
        c.persistent(true, 28);
        c.persistent(false, 96);
        assert_eq!((c.v4_bits, c.v6_bits), (24, 64));
        c.persistent(true, 16);
        c.persistent(false, 48);
        assert_eq!((c.v4_bits, c.v6_bits), (16, 48));
        c.persistent(true, 20);
        assert_eq!(c.v4_bits, 16);
        let d = Classes::default();
        for n in [2usize, 3, 4] {
            let o = owner_of(Addr::v4([172, 16, 0, 1]), &c, n);
            let mut spread = std::collections::HashSet::new();
            for net in 0..=255u8 {
                assert_eq!(owner_of(Addr::v4([172, 16, net, net]), &c, n), o);
                spread.insert(owner_of(Addr::v4([172, 16, net, net]), &d, n));
            }
            assert_eq!(
                spread.len(),
                n,
                "the /24s of a /16 spread without the wider mask"
            );
            let o6 = owner_of(a4("2001:db8:1::"), &c, n);
            for sub in 0..=255u16 {
                let a = Addr::from(std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001, 0xdb8, 1, sub, 1, 2, 3, 4,
                )));
                assert_eq!(owner_of(a, &c, n), o6);
            }
        }
        // The mask itself: bits beyond the prefix cleared, none before.
        let net = client_net(Addr::v4([172, 16, 0xab, 0xcd]), &c);
        assert_eq!(&net[12..], &[172, 16, 0, 0]);
        let mut c5 = Classes::default();
        c5.persistent(true, 13);
        let net = client_net(Addr::v4([172, 0xff, 1, 1]), &c5);
        assert_eq!(&net[12..], &[172, 0xf8, 0, 0]);
        assert_eq!(&net[..12], &Addr::v4([0, 0, 0, 0]).octets16()[..12]);
    }

    #[test]
    fn frame_owner_of_real_frames() {
        use rvs_fixtures as fx;
        let mut c = Classes::default();
        c.vips.insert(fx::vip4());
        c.reals.insert(fx::rip4(1));
        let m = [2, 0, 0, 0, 0, 1];
        let req = fx::tcp(m, m, fx::cip4(), 40000, fx::vip4(), 80, 0x02, b"");
        let fwd = fx::tcp(m, m, fx::cip4(), 40000, fx::rip4(1), 8080, 0x02, b"");
        let rep = fx::tcp(m, m, fx::rip4(1), 8080, fx::cip4(), 40000, 0x12, b"");
        let err = fx::icmp_too_big(m, m, fx::dip4(), fx::cip4(), 1400, fx::ip_of(&fwd));
        for n in 2..=5 {
            let o = owner_of(fx::cip4(), &c, n);
            assert_eq!(frame_owner(&req, &c, false, n), Some(o));
            assert_eq!(frame_owner(&rep, &c, false, n), Some(o));
            assert_eq!(frame_owner(&err, &c, false, n), Some(o));
        }
        assert_eq!(frame_owner(&req, &Classes::default(), false, 4), None);
        assert_eq!(frame_owner(&[0u8; 10], &c, false, 4), None);
        assert_eq!(frame_owner(&[0u8; 10], &c, false, 1), Some(0));
    }
}
