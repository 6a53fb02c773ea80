//! Crate-level tests: literal frames through the parser and the rewrites,
//! encapsulation, the ICMP builder, and property tests whose oracle is
//! etherparse (an independent implementation).

use crate::testing::{self, IpOpts};
use crate::*;
use etherparse::checksum::Sum16BitWords;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use proptest::prelude::*;
use rvs_types::{Addr, Af, Proto};

// 10.0.0.1:40000 -> 10.0.0.2:80 SYN with 4 bytes "abcd"; checksums computed
// with an independent script (Python, RFC 1071).
static TCP_SYN: [u8; 58] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x26, 0xc9, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00,
    0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02,
    0xff, 0xff, 0x3a, 0x84, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
];
// The same after DNAT to 192.168.1.10:8080 (same script, full recompute).
static TCP_SYN_DNAT: [u8; 58] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x6f, 0x18, 0x0a, 0x00, 0x00, 0x01, 0xc0, 0xa8,
    0x01, 0x0a, 0x9c, 0x40, 0x1f, 0x90, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02,
    0xff, 0xff, 0x63, 0x93, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
];

fn v4(a: u8, b: u8, c: u8, d: u8) -> Addr {
    Addr::v4([a, b, c, d])
}

fn v6(last: u16) -> Addr {
    let mut o = [0u8; 16];
    o[0] = 0x20;
    o[1] = 0x01;
    o[2] = 0x0d;
    o[3] = 0xb8;
    o[14..].copy_from_slice(&last.to_be_bytes());
    Addr::v6(o)
}

fn ip_info(frame: &[u8]) -> PacketInfo {
    match parse_frame(frame) {
        Ok(Parsed::Ip(i)) => i,
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- oracle

/// Bitwise CRC32c (Castagnoli, reflected 0x82f63b78), independent of the
/// `crc32c` crate used by the code under test.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Checks with etherparse every checksum of an Ethernet frame: IPv4 header,
/// TCP/UDP/ICMP/ICMPv6 (and SCTP with an independent CRC32c); for ICMP
/// errors whose quote parses as a whole packet, the quoted packet's too.
fn oracle_check(frame: &[u8]) {
    if let Err(e) = oracle(frame) {
        panic!("{e}");
    }
}

fn oracle_sliced(p: &SlicedPacket<'_>) {
    if let Err(e) = oracle_sliced_res(p) {
        panic!("{e}");
    }
}

/// [`oracle_check`] as a result: `Err` names the first checksum etherparse
/// (or the bitwise CRC32c) disagrees with, or what it could not parse.
fn oracle(frame: &[u8]) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e:?}"))?;
    oracle_sliced_res(&p)
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

fn oracle_sliced_res(p: &SlicedPacket<'_>) -> Result<(), String> {
    let (src, dst, is_v4) = match &p.net {
        Some(NetSlice::Ipv4(n)) => {
            let h = n.header();
            check(
                h.header_checksum() == h.to_header().calc_header_checksum(),
                "IPv4 header checksum",
            )?;
            (Addr::v4(h.source()), Addr::v4(h.destination()), true)
        }
        Some(NetSlice::Ipv6(n)) => {
            let h = n.header();
            (Addr::v6(h.source()), Addr::v6(h.destination()), false)
        }
        other => return Err(format!("not IP: {other:?}")),
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let c = if is_v4 {
                t.calc_checksum_ipv4(src.octets4(), dst.octets4())
            } else {
                t.calc_checksum_ipv6(src.0, dst.0)
            };
            check(c.ok() == Some(t.checksum()), "TCP checksum")?;
        }
        Some(TransportSlice::Udp(u)) => {
            if u.checksum() != 0 || !is_v4 {
                let h = u.to_header();
                let c = if is_v4 {
                    h.calc_checksum_ipv4_raw(src.octets4(), dst.octets4(), u.payload())
                } else {
                    h.calc_checksum_ipv6_raw(src.0, dst.0, u.payload())
                };
                check(c.ok() == Some(u.checksum()), "UDP checksum")?;
            }
        }
        Some(TransportSlice::Icmpv4(i)) => {
            check(
                Sum16BitWords::new().add_slice(i.slice()).ones_complement() == 0,
                "ICMP checksum",
            )?;
            if icmp::is_error_v4(i.type_u8()) {
                oracle_quote(i.payload())?;
            }
        }
        Some(TransportSlice::Icmpv6(i)) => {
            check(i.is_checksum_valid(src.0, dst.0), "ICMPv6 checksum")?;
            if icmp::is_error_v6(i.type_u8()) {
                oracle_quote(i.payload())?;
            }
        }
        Some(other) => return Err(format!("unexpected transport {other:?}")),
        None => {
            let ip = p.ip_payload().ok_or("no ip payload")?;
            if ip.ip_number.0 == Proto::SCTP.0 && !ip.fragmented {
                let s = ip.payload;
                if s.len() < 12 {
                    return Err("short SCTP".into());
                }
                let mut z = s.to_vec();
                z[8..12].fill(0);
                check(s[8..12] == crc32c_bitwise(&z).to_le_bytes(), "SCTP CRC32c")?;
            }
        }
    }
    Ok(())
}

/// The quoted packet of an ICMP error: when it is whole, all its checksums
/// must hold; when cut short, at least its IPv4 header checksum.
fn oracle_quote(q: &[u8]) -> Result<(), String> {
    if let Ok(p) = SlicedPacket::from_ip(q) {
        oracle_sliced_res(&p)
    } else if q.first().is_some_and(|b| b >> 4 == 4) {
        let h = etherparse::Ipv4HeaderSlice::from_slice(q)
            .map_err(|e| format!("quoted IPv4 header: {e:?}"))?;
        check(
            h.header_checksum() == h.to_header().calc_header_checksum(),
            "quoted IPv4 header checksum",
        )
    } else {
        Ok(())
    }
}

// ------------------------------------------------------ literal frames

#[test]
fn parses_literal_tcp_syn() {
    let i = ip_info(&TCP_SYN);
    assert_eq!(i.vlan, None);
    assert_eq!((i.l3_off, i.l4_off, i.l3_len), (14, 34, 44));
    assert_eq!((i.af, i.proto), (Af::V4, Proto::TCP));
    assert_eq!((i.src, i.dst), (v4(10, 0, 0, 1), v4(10, 0, 0, 2)));
    assert_eq!(
        (i.sport, i.dport, i.tcp_flags, i.ttl),
        (40000, 80, 0x02, 64)
    );
    assert_eq!(i.frag, Frag::None);
    assert_eq!(i.icmp, None);
    assert_eq!(verify_l4_checksum(&TCP_SYN, &i), Ok(()));
    let mut bad = TCP_SYN;
    bad[57] ^= 1;
    assert_eq!(
        verify_l4_checksum(&bad, &ip_info(&bad)),
        Err(Error::BadChecksum)
    );
}

#[test]
fn literal_dnat_matches_independent_recompute() {
    let mut f = TCP_SYN;
    let i = ip_info(&f);
    set_dst(&mut f, &i, v4(192, 168, 1, 10), 8080).unwrap();
    assert_eq!(f, TCP_SYN_DNAT);
    // And back again.
    let i = ip_info(&f);
    set_dst(&mut f, &i, v4(10, 0, 0, 2), 80).unwrap();
    assert_eq!(f, TCP_SYN);
}

#[test]
fn ethernet_padding_not_counted() {
    let mut f = TCP_SYN.to_vec();
    f.extend_from_slice(&[0; 6]);
    let i = ip_info(&f);
    assert_eq!(i.l3_end(), 58);
    assert_eq!(verify_l4_checksum(&f, &i), Ok(()));
}

#[test]
fn ipv4_errors() {
    let mut f = TCP_SYN;
    f[14] = 0x44; // IHL 4
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    let mut f = TCP_SYN;
    f[14] = 0x65; // version 6 under EtherType IPv4
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    let mut f = TCP_SYN;
    f[17] = 0x13; // total length 19 < 20
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    let mut f = TCP_SYN;
    f[17] = 0x2d; // total length past the frame
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    let mut f = TCP_SYN;
    f[24] ^= 0xff; // header checksum
    assert_eq!(parse_frame(&f), Err(Error::BadChecksum));
    assert_eq!(parse_frame(&TCP_SYN[..33]), Err(Error::Truncated));
    assert_eq!(parse_frame(&TCP_SYN[..10]), Err(Error::Truncated));
}

#[test]
fn tcp_header_errors() {
    // Data offset 4: Malformed. Build with a consistent IP header.
    let mut seg = testing::tcp_segment(1, 2, 0, 0, 0x02, &[]);
    seg[12] = 0x40;
    let f = testing::ip_frame(
        v4(1, 1, 1, 1),
        v4(2, 2, 2, 2),
        Proto::TCP,
        &seg,
        &IpOpts::default(),
    );
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    // Data offset 15 with a 20-byte segment: Truncated.
    seg[12] = 0xf0;
    let f = testing::ip_frame(
        v4(1, 1, 1, 1),
        v4(2, 2, 2, 2),
        Proto::TCP,
        &seg,
        &IpOpts::default(),
    );
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    // 10 bytes of TCP only: Truncated.
    let f = testing::ip_frame(
        v4(1, 1, 1, 1),
        v4(2, 2, 2, 2),
        Proto::TCP,
        &seg[..10],
        &IpOpts::default(),
    );
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    let f = testing::ip_frame(
        v4(1, 1, 1, 1),
        v4(2, 2, 2, 2),
        Proto::UDP,
        &[0; 7],
        &IpOpts::default(),
    );
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    let f = testing::ip_frame(
        v4(1, 1, 1, 1),
        v4(2, 2, 2, 2),
        Proto::SCTP,
        &[0; 11],
        &IpOpts::default(),
    );
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
}

// Who has 10.0.0.2? Tell 10.0.0.1 (broadcast, 02:00:00:00:00:01).
static ARP_REQUEST: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 10, 0, 0, 2,
];

#[test]
fn arp_request_view_and_its_errors() {
    assert_eq!(parse_frame(&ARP_REQUEST), Ok(Parsed::Arp));
    let p = arp::Packet::new_checked(&ARP_REQUEST[14..]).unwrap();
    assert_eq!(p.operation(), arp::OP_REQUEST);
    assert_eq!(
        (p.sender_mac(), p.sender_ip()),
        ([2, 0, 0, 0, 0, 1], [10, 0, 0, 1])
    );
    assert_eq!((p.target_mac(), p.target_ip()), ([0; 6], [10, 0, 0, 2]));
    assert_eq!(
        arp::Packet::new_checked(&ARP_REQUEST[14..41]),
        Err(Error::Truncated)
    );
    let mut other = ARP_REQUEST;
    other[19] = 16; // protocol address length 16: not Ethernet/IPv4 ARP
    assert_eq!(
        arp::Packet::new_checked(&other[14..]),
        Err(Error::Unsupported)
    );
}

#[test]
fn arp_and_other_ethertypes() {
    let mut f = TCP_SYN.to_vec();
    f[12] = 0x08;
    f[13] = 0x06;
    assert_eq!(parse_frame(&f), Ok(Parsed::Arp));
    f[12] = 0x88;
    f[13] = 0xcc;
    assert_eq!(parse_frame(&f), Ok(Parsed::Other(0x88cc)));
}

#[test]
fn vlan_and_options() {
    let o = IpOpts {
        vlans: vec![100, 200],
        v4_options: vec![1, 1, 1, 0], // NOP NOP NOP EOL
        ..IpOpts::default()
    };
    let f = testing::ip_frame(
        v4(10, 1, 1, 1),
        v4(10, 2, 2, 2),
        Proto::UDP,
        &testing::udp_datagram(53, 5353, b"q"),
        &o,
    );
    let i = ip_info(&f);
    assert_eq!(i.vlan, Some(100));
    assert_eq!((i.l3_off, i.l4_off), (22, 22 + 24));
    assert_eq!((i.sport, i.dport, i.proto), (53, 5353, Proto::UDP));
    assert_eq!(verify_l4_checksum(&f, &i), Ok(()));
    oracle_check(&f);
}

#[test]
fn ipv4_fragments() {
    let o = IpOpts {
        df: false,
        ..IpOpts::default()
    };
    let mut f = testing::ip_frame(
        v4(1, 2, 3, 4),
        v4(5, 6, 7, 8),
        Proto::UDP,
        &testing::udp_datagram(7, 9, b"xx"),
        &o,
    );
    // MF set, offset 0: first fragment, ports known.
    f[20] = 0x20;
    fix_ipv4_header(&mut f, 14);
    let i = ip_info(&f);
    assert_eq!((i.frag, i.sport, i.dport), (Frag::First, 7, 9));
    // Offset 1 (8 bytes): later fragment, no ports, l4_off at payload.
    f[20] = 0x00;
    f[21] = 0x01;
    fix_ipv4_header(&mut f, 14);
    let i = ip_info(&f);
    assert_eq!(
        (i.frag, i.sport, i.dport, i.l4_off),
        (Frag::Later, 0, 0, 34)
    );
    // Address rewrite only.
    let before = f.clone();
    set_dst(&mut f, &i, v4(9, 9, 9, 9), 1000).unwrap();
    assert_eq!(&f[34..], &before[34..]);
    assert_eq!(ip_info(&f).dst, v4(9, 9, 9, 9));
}

fn fix_ipv4_header(f: &mut [u8], l3: usize) {
    let hl = usize::from(f[l3] & 0xf) * 4;
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    // etherparse sums in native byte order; `to_be` gives the field value.
    let c = Sum16BitWords::new()
        .add_slice(&f[l3..l3 + hl])
        .ones_complement()
        .to_be();
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn ipv6_ext_headers_and_fragments() {
    let o = IpOpts {
        v6_ext: vec![0, 43, 60],
        ..IpOpts::default()
    };
    let f = testing::ip_frame(
        v6(1),
        v6(2),
        Proto::TCP,
        &testing::tcp_segment(1000, 443, 5, 6, 0x10, b"hello"),
        &o,
    );
    let i = ip_info(&f);
    assert_eq!(
        (i.af, i.proto, i.l4_off),
        (Af::V6, Proto::TCP, 14 + 40 + 24)
    );
    assert_eq!((i.sport, i.dport, i.tcp_flags), (1000, 443, 0x10));
    assert_eq!(verify_l4_checksum(&f, &i), Ok(()));
    oracle_check(&f);

    // Fragment header with offset 0 and M: First; with offset: Later.
    let o = IpOpts {
        v6_ext: vec![44],
        ..IpOpts::default()
    };
    let mut f = testing::ip_frame(
        v6(1),
        v6(2),
        Proto::UDP,
        &testing::udp_datagram(1, 2, b"abc"),
        &o,
    );
    assert_eq!(ip_info(&f).frag, Frag::None); // atomic fragment
    f[54 + 3] = 1; // M
    assert_eq!(ip_info(&f).frag, Frag::First);
    f[54 + 2] = 0x01; // offset 32 bytes
    let i = ip_info(&f);
    assert_eq!(
        (i.frag, i.sport, i.dport, i.l4_off, i.proto),
        (Frag::Later, 0, 0, 62, Proto::UDP)
    );

    // Nine extension headers: Unsupported.
    let o = IpOpts {
        v6_ext: vec![60; 9],
        ..IpOpts::default()
    };
    let f = testing::ip_frame(
        v6(1),
        v6(2),
        Proto::UDP,
        &testing::udp_datagram(1, 2, b""),
        &o,
    );
    assert_eq!(parse_frame(&f), Err(Error::Unsupported));
    // Truncated IPv6 payload.
    let f = testing::udp_v6(v6(1), 1, v6(2), 2, b"abcd");
    assert_eq!(parse_frame(&f[..f.len() - 1]), Err(Error::Truncated));
    let mut g = f.clone();
    g[14] = 0x40;
    assert_eq!(parse_frame(&g), Err(Error::Malformed));
}

#[test]
fn udp_zero_checksum_rules() {
    let mut f = testing::udp_v4(v4(1, 1, 1, 1), 10, v4(2, 2, 2, 2), 20, b"data");
    f[40] = 0;
    f[41] = 0;
    let i = ip_info(&f);
    assert_eq!(verify_l4_checksum(&f, &i), Ok(()));
    set_dst(&mut f, &i, v4(3, 3, 3, 3), 30).unwrap();
    assert_eq!(&f[40..42], &[0, 0], "zero IPv4 UDP checksum stays zero");
    let mut g = testing::udp_v6(v6(1), 10, v6(2), 20, b"data");
    g[60] = 0;
    g[61] = 0;
    assert_eq!(
        verify_l4_checksum(&g, &ip_info(&g)),
        Err(Error::BadChecksum)
    );
}

/// RFC 768: a UDP checksum that computes to zero is sent as 0xffff (zero
/// means "no checksum"). Over every value of one payload word exactly one
/// rewritten datagram computes to zero; the incremental update must never
/// store 0, over IPv4 (fast path) and IPv6.
#[test]
fn udp_checksum_computing_to_zero_is_sent_as_ffff() {
    for ipv6 in [false, true] {
        let (src, dst, new) = if ipv6 {
            (v6(1), v6(2), v6(3))
        } else {
            (v4(10, 0, 0, 1), v4(10, 0, 0, 2), v4(192, 168, 1, 10))
        };
        let mut all_ones = 0;
        for w in 0..=u16::MAX {
            let mut f = if ipv6 {
                testing::udp_v6(src, 5000, dst, 53, &w.to_be_bytes())
            } else {
                testing::udp_v4(src, 5000, dst, 53, &w.to_be_bytes())
            };
            let i = ip_info(&f);
            set_dst(&mut f, &i, new, 5353).unwrap();
            let o = usize::from(i.l4_off) + 6;
            let c = u16::from_be_bytes([f[o], f[o + 1]]);
            assert_ne!(c, 0, "ipv6 {ipv6} word {w:#06x}: checksum written as 0");
            if c == 0xffff {
                all_ones += 1;
                oracle_check(&f);
            }
        }
        assert_eq!(all_ones, 1, "ipv6 {ipv6}");
    }
}

#[test]
fn icmp_echo_ids_in_both_ports() {
    let f = testing::icmp_echo_v4(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 0x4242, 7, true, b"ping");
    let i = ip_info(&f);
    assert_eq!((i.proto, i.sport, i.dport), (Proto::ICMP, 0x4242, 0x4242));
    assert_eq!(
        i.icmp,
        Some(IcmpInfo {
            ty: 8,
            code: 0,
            inner: None
        })
    );
    assert_eq!(verify_l4_checksum(&f, &i), Ok(()));
    let g = testing::icmp_echo_v6(v6(1), v6(2), 0x77, 1, false, b"pong");
    let j = ip_info(&g);
    assert_eq!((j.proto, j.sport, j.dport), (Proto::ICMPV6, 0x77, 0x77));
    assert_eq!(j.icmp.map(|x| x.ty), Some(129));
    assert_eq!(verify_l4_checksum(&g, &j), Ok(()));
    oracle_check(&f);
    oracle_check(&g);
}

#[test]
fn icmp_error_inner_v4() {
    let orig = testing::tcp_v4(v4(10, 0, 0, 1), 40000, v4(10, 0, 0, 2), 80, 0x02, b"");
    let err = testing::icmp_error(v4(10, 9, 9, 9), &orig, 3, 1, 0, 28);
    let i = ip_info(&err);
    let icmp = i.icmp.unwrap();
    assert_eq!((icmp.ty, icmp.code), (3, 1));
    let q = icmp.inner.unwrap();
    assert_eq!((q.l3_off, q.l4_off), (14 + 20 + 8, 14 + 20 + 8 + 20));
    assert_eq!(
        (q.proto, q.src, q.dst, q.sport, q.dport),
        (Proto::TCP, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 40000, 80)
    );
    // A quote with only 7 L4 bytes: no inner, outer still parses.
    let err = testing::icmp_error(v4(10, 9, 9, 9), &orig, 11, 0, 0, 27);
    assert_eq!(ip_info(&err).icmp.unwrap().inner, None);
    // A quote with an incomplete IP header.
    let err = testing::icmp_error(v4(10, 9, 9, 9), &orig, 12, 0, 0, 19);
    assert_eq!(ip_info(&err).icmp.unwrap().inner, None);
    // Not an error type: no inner.
    let err = testing::icmp_error(v4(10, 9, 9, 9), &orig, 13, 0, 0, 40);
    assert_eq!(ip_info(&err).icmp.unwrap().inner, None);
}

#[test]
fn icmp_error_inner_v6() {
    let orig = testing::udp_v6(v6(1), 5000, v6(2), 53, b"query");
    let err = testing::icmp_error(v6(9), &orig, 1, 4, 0, 48);
    let q = ip_info(&err).icmp.unwrap().inner.unwrap();
    assert_eq!(
        (q.proto, q.src, q.dst, q.sport, q.dport),
        (Proto::UDP, v6(1), v6(2), 5000, 53)
    );
    assert_eq!(q.l4_off - q.l3_off, 40);
    let err = testing::icmp_error(v6(9), &orig, 2, 0, 1280, 47);
    assert_eq!(ip_info(&err).icmp.unwrap().inner, None);
}

#[test]
fn icmp_error_nat_v4_literal_oracle() {
    // Real server 192.168.1.10:8080 replied to client 10.0.0.1:40000; a
    // router 172.16.0.1 sends "port unreachable" about the reply... seen
    // the other way: the director gets an error from the client side about
    // a packet it sent as VIP 10.0.0.2:80 and forwards it to the RS.
    let quoted = testing::tcp_v4(v4(10, 0, 0, 2), 80, v4(10, 0, 0, 1), 40000, 0x12, b"xyz");
    let mut err = testing::icmp_error(v4(172, 16, 0, 1), &quoted, 3, 3, 0, 1000);
    // Outer dst is the VIP (quoted src); make it so.
    let i = ip_info(&err);
    set_dst(&mut err, &i, v4(10, 0, 0, 2), 0).unwrap();
    oracle_check(&err);
    let i = ip_info(&err);
    set_icmp_error(
        &mut err,
        &i,
        Side::Dst,
        v4(192, 168, 1, 10),
        Side::Src,
        v4(192, 168, 1, 10),
        8080,
    )
    .unwrap();
    oracle_check(&err);
    let j = ip_info(&err);
    assert_eq!(j.dst, v4(192, 168, 1, 10));
    let q = j.icmp.unwrap().inner.unwrap();
    assert_eq!(
        (q.src, q.sport, q.dst, q.dport),
        (v4(192, 168, 1, 10), 8080, v4(10, 0, 0, 1), 40000)
    );
}

#[test]
fn set_icmp_error_refuses_non_errors() {
    let mut f = testing::icmp_echo_v4(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 1, true, b"");
    let i = ip_info(&f);
    assert_eq!(
        set_icmp_error(
            &mut f,
            &i,
            Side::Dst,
            v4(3, 3, 3, 3),
            Side::Src,
            v4(3, 3, 3, 3),
            1
        ),
        Err(Error::Unsupported)
    );
    let mut g = TCP_SYN;
    assert_eq!(
        set_dst(&mut g, &ip_info(&TCP_SYN), v6(1), 1),
        Err(Error::Unsupported)
    );
    assert_eq!(g, TCP_SYN);
}

#[test]
fn failed_rewrite_leaves_frame_alone() {
    // A summary claiming TCP over a frame whose L4 part is too short.
    let mut i = ip_info(&TCP_SYN);
    i.l3_len = 20 + 10;
    let mut f = TCP_SYN;
    assert_eq!(
        set_dst(&mut f, &i, v4(1, 1, 1, 1), 1),
        Err(Error::Truncated)
    );
    assert_eq!(f, TCP_SYN);
    i.l3_len = 200;
    assert_eq!(
        set_src(&mut f, &i, v4(1, 1, 1, 1), 1),
        Err(Error::Truncated)
    );
    assert_eq!(f, TCP_SYN);
}

#[test]
fn macs() {
    let mut f = TCP_SYN;
    swap_macs(&mut f).unwrap();
    assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    set_macs(&mut f, [0xaa; 6], [0xbb; 6]).unwrap();
    assert_eq!(
        &f[..12],
        &[
            0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb
        ]
    );
    assert_eq!(swap_macs(&mut [0u8; 11]), Err(Error::Truncated));
    assert_eq!(
        set_macs(&mut [0u8; 11], [0; 6], [0; 6]),
        Err(Error::Truncated)
    );
}

// ------------------------------------------------------------- encap

fn with_room(frame: &[u8], head: usize) -> (Vec<u8>, usize, usize) {
    let mut mem = vec![0u8; head + frame.len() + 2048];
    mem[head..head + frame.len()].copy_from_slice(frame);
    (mem, head, frame.len())
}

#[test]
fn ipip_4in4_literal() {
    let (mut mem, head, len) = with_room(&TCP_SYN, 64);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    let i = ip_info(&TCP_SYN);
    encapsulate(
        &mut buf,
        &i,
        &TunnelKind::Ipip,
        v4(192, 0, 2, 1),
        v4(192, 0, 2, 2),
        0,
    )
    .unwrap();
    let d = buf.data();
    assert_eq!(d.len(), 58 + 20);
    assert_eq!(&d[..14], &TCP_SYN[..14]);
    // Outer header: TOS 0 and TTL 64 copied, DF copied, proto 4, id 0,
    // total 64; checksum computed by an independent script.
    assert_eq!(
        &d[14..34],
        &[
            0x45, 0, 0, 64, 0, 0, 0x40, 0, 64, 4, 0xb6, 0xb6, 192, 0, 2, 1, 192, 0, 2, 2
        ]
    );
    assert_eq!(&d[34..], &TCP_SYN[14..]);
    let t = parse_tunnel(d, &[]).unwrap().unwrap();
    assert_eq!(
        (t.kind, t.inner_l3_off, t.inner_af),
        (TunnelKind::Ipip, 34, Af::V4)
    );
    assert_eq!(decapsulate(&mut buf, &[]), Ok(true));
    assert_eq!(buf.data(), &TCP_SYN[..]);
}

#[test]
fn encap_no_headroom_leaves_frame() {
    let (mut mem, head, len) = with_room(&TCP_SYN, 10);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    let i = ip_info(&TCP_SYN);
    assert_eq!(
        encapsulate(
            &mut buf,
            &i,
            &TunnelKind::Ipip,
            v4(1, 1, 1, 1),
            v4(2, 2, 2, 2),
            0
        ),
        Err(Error::NoRoom)
    );
    assert_eq!(buf.data(), &TCP_SYN[..]);
    assert_eq!(
        encapsulate(&mut buf, &i, &TunnelKind::Ipip, v4(1, 1, 1, 1), v6(2), 0),
        Err(Error::Unsupported)
    );
}

#[test]
fn encap_len_values() {
    assert_eq!(encap_len(&TunnelKind::Ipip, Af::V4), 20);
    assert_eq!(encap_len(&TunnelKind::Ipip, Af::V6), 40);
    assert_eq!(
        encap_len(
            &TunnelKind::Gue {
                port: 1,
                csum: true,
                remcsum: true
            },
            Af::V4
        ),
        32
    );
    assert_eq!(
        encap_len(
            &TunnelKind::Gre {
                csum: false,
                key: None
            },
            Af::V6
        ),
        44
    );
    assert_eq!(
        encap_len(
            &TunnelKind::Gre {
                csum: true,
                key: Some(1)
            },
            Af::V4
        ),
        32
    );
}

#[test]
fn gue_source_port_in_ephemeral_range() {
    assert_eq!(encap::flow_src_port(0), 32768);
    assert_eq!(encap::flow_src_port(u32::MAX), 60999);
    assert_eq!(
        encap::flow_src_port(0x8000_0000),
        32768 + (61000 - 32768) / 2
    );
}

#[test]
fn gue_6in4_oracle_and_decap() {
    let inner = testing::tcp_v6(v6(1), 1111, v6(2), 443, 0x18, b"payload");
    let (mut mem, head, len) = with_room(&inner, 128);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    let i = ip_info(&inner);
    let kind = TunnelKind::Gue {
        port: 6080,
        csum: true,
        remcsum: false,
    };
    encapsulate(
        &mut buf,
        &i,
        &kind,
        v4(192, 0, 2, 1),
        v4(192, 0, 2, 2),
        0x1234_5678,
    )
    .unwrap();
    let d = buf.data().to_vec();
    assert_eq!(&d[12..14], &[0x08, 0x00]);
    let p = SlicedPacket::from_ethernet(&d).unwrap();
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!()
    };
    assert_eq!(u.destination_port(), 6080);
    assert_eq!(u.source_port(), encap::flow_src_port(0x1234_5678));
    assert_eq!(&u.payload()[..4], &[0, 41, 0, 0]);
    assert_eq!(&u.payload()[4..], &inner[14..]);
    oracle_check(&d);
    // A corrupted UDP checksum is caught on decapsulation.
    let mut bad = d.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    let (mut m2, h2, l2) = with_room(&bad, 0);
    let mut b2 = FrameBuf::new(&mut m2, h2, l2).unwrap();
    assert_eq!(decapsulate(&mut b2, &[6080]), Err(Error::BadChecksum));
    // Not a GUE port: not a tunnel.
    assert_eq!(decapsulate(&mut buf, &[9999]), Ok(false));
    assert_eq!(decapsulate(&mut buf, &[6080]), Ok(true));
    assert_eq!(buf.data(), &inner[..]);
}

#[test]
fn gre_keyed_4in6() {
    let inner = testing::udp_v4(v4(10, 0, 0, 1), 5, v4(10, 0, 0, 2), 6, b"x");
    let (mut mem, head, len) = with_room(&inner, 128);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    let i = ip_info(&inner);
    let kind = TunnelKind::Gre {
        csum: true,
        key: Some(0xabcd),
    };
    encapsulate(&mut buf, &i, &kind, v6(1), v6(2), 7).unwrap();
    let d = buf.data().to_vec();
    assert_eq!(&d[12..14], &[0x86, 0xdd]);
    assert_eq!(d[14 + 6], 47);
    assert_eq!(d[14 + 7], 64, "hop limit copied from the inner TTL");
    assert_eq!(&d[54..58], &[0xa0, 0x00, 0x08, 0x00]);
    assert_eq!(&d[62..66], &[0, 0, 0xab, 0xcd]);
    assert_eq!(
        Sum16BitWords::new().add_slice(&d[54..]).ones_complement(),
        0,
        "GRE checksum"
    );
    let t = parse_tunnel(&d, &[]).unwrap().unwrap();
    assert_eq!(t.kind, kind);
    assert_eq!((t.outer_src, t.outer_dst), (v6(1), v6(2)));
    assert_eq!(decapsulate(&mut buf, &[]), Ok(true));
    assert_eq!(buf.data(), &inner[..]);
}

#[test]
fn gue_variant1_control_and_foreign_gre() {
    let inner = testing::udp_v4(v4(10, 0, 0, 1), 5, v4(10, 0, 0, 2), 6, b"v1");
    // Variant 1: the inner IPv4 packet straight after the UDP header.
    let f = testing::udp_v4(
        v4(192, 0, 2, 1),
        40000,
        v4(192, 0, 2, 2),
        6080,
        &inner[14..],
    );
    let t = parse_tunnel(&f, &[6080]).unwrap().unwrap();
    assert_eq!((t.inner_l3_off, t.inner_af), (14 + 20 + 8, Af::V4));
    let (mut mem, head, len) = with_room(&f, 0);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    assert_eq!(decapsulate(&mut buf, &[6080]), Ok(true));
    assert_eq!(buf.data(), &inner[..]);
    // A GUE control message is not a tunnelled packet.
    let mut ctl = vec![0x20, 0, 0, 0];
    ctl.extend_from_slice(&inner[14..]);
    let f = testing::udp_v4(v4(192, 0, 2, 1), 40000, v4(192, 0, 2, 2), 6080, &ctl);
    assert_eq!(parse_tunnel(&f, &[6080]), Ok(None));
    // GRE carrying transparent Ethernet bridging (0x6558) is not ours.
    let mut gre = vec![0, 0, 0x65, 0x58];
    gre.extend_from_slice(&inner);
    let f = testing::ip_frame(
        v4(192, 0, 2, 1),
        v4(192, 0, 2, 2),
        Proto::GRE,
        &gre,
        &IpOpts::default(),
    );
    assert_eq!(parse_tunnel(&f, &[]), Ok(None));
    // IP-in-IP whose inner header is cut short.
    let f = testing::ip_frame(
        v4(192, 0, 2, 1),
        v4(192, 0, 2, 2),
        Proto::IPIP,
        &inner[14..30],
        &IpOpts::default(),
    );
    assert_eq!(parse_tunnel(&f, &[]), Err(Error::Truncated));
}

#[test]
fn decap_not_tunnel() {
    let (mut mem, head, len) = with_room(&TCP_SYN, 0);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    assert_eq!(decapsulate(&mut buf, &[80]), Ok(false));
    assert_eq!(parse_tunnel(&TCP_SYN, &[80]), Ok(None));
}

// -------------------------------------------------------- ICMP builder

#[test]
fn too_big_v4() {
    let big = testing::tcp_v4(
        v4(10, 0, 0, 1),
        40000,
        v4(10, 0, 0, 2),
        80,
        0x10,
        &[0x5a; 1400],
    );
    let (mut mem, head, len) = with_room(&big, 0);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    let i = ip_info(&big);
    build_too_big(&mut buf, &i, 1300, v4(10, 0, 0, 254)).unwrap();
    let d = buf.data().to_vec();
    assert_eq!(d.len(), 14 + 576);
    assert_eq!(&d[..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    let r = ip_info(&d);
    assert_eq!(
        (r.src, r.dst, r.ttl, r.proto),
        (v4(10, 0, 0, 254), v4(10, 0, 0, 1), 64, Proto::ICMP)
    );
    let ic = r.icmp.unwrap();
    assert_eq!((ic.ty, ic.code), (3, 4));
    assert_eq!(&d[34 + 4..34 + 8], &[0, 0, 0x05, 0x14]);
    assert_eq!(&d[42..], &big[14..14 + 576 - 28]);
    let q = ic.inner.unwrap();
    assert_eq!((q.sport, q.dport), (40000, 80));
    oracle_check(&d);
}

#[test]
fn too_big_v6_small_and_via_headroom() {
    let small = testing::udp_v6(v6(1), 1, v6(2), 2, &[1; 100]);
    // No tailroom at all: must use headroom.
    let mut mem = vec![0u8; 64 + small.len()];
    mem[64..].copy_from_slice(&small);
    let mut buf = FrameBuf::new(&mut mem, 64, small.len()).unwrap();
    let i = ip_info(&small);
    build_too_big(&mut buf, &i, 1280, v6(0xfe)).unwrap();
    let d = buf.data().to_vec();
    assert_eq!(d.len(), small.len() + 48);
    let r = ip_info(&d);
    assert_eq!((r.src, r.dst, r.ttl), (v6(0xfe), v6(1), 64));
    assert_eq!(r.icmp.map(|x| (x.ty, x.code)), Some((2, 0)));
    assert_eq!(&d[54 + 4..54 + 8], &1280u32.to_be_bytes());
    assert_eq!(&d[62..], &small[14..]);
    oracle_check(&d);
    // Neither room: NoRoom.
    let mut mem = small.clone();
    let n = mem.len();
    let mut buf = FrameBuf::new(&mut mem, 0, n).unwrap();
    assert_eq!(
        build_too_big(&mut buf, &i, 1280, v6(0xfe)),
        Err(Error::NoRoom)
    );
    assert_eq!(
        build_too_big(&mut buf, &i, 1280, v4(1, 1, 1, 1)),
        Err(Error::Unsupported)
    );
}

#[test]
fn unreachable_v4_with_vlan_keeps_tags() {
    let o = IpOpts {
        vlans: vec![7],
        ..IpOpts::default()
    };
    let f = testing::ip_frame(
        v4(10, 0, 0, 1),
        v4(10, 0, 0, 2),
        Proto::UDP,
        &testing::udp_datagram(1000, 53, b"q"),
        &o,
    );
    let (mut mem, head, len) = with_room(&f, 0);
    let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
    build_unreachable(&mut buf, &ip_info(&f), 3, v4(10, 0, 0, 2)).unwrap();
    let d = buf.data().to_vec();
    assert_eq!(&d[12..18], &f[12..18], "VLAN tag kept");
    let r = ip_info(&d);
    assert_eq!(r.vlan, Some(7));
    assert_eq!(r.icmp.map(|i| (i.ty, i.code)), Some((3, 3)));
    assert_eq!(d[19], 0xc0, "TOS: internetwork control");
    let q = r.icmp.unwrap().inner.unwrap();
    assert_eq!((q.sport, q.dport), (1000, 53));
    oracle_check(&d);
}

// ------------------------------------------------------- test builders

#[test]
fn builders_agree_with_etherparse() {
    for f in [
        testing::tcp_v4(v4(1, 2, 3, 4), 1, v4(5, 6, 7, 8), 2, 0x02, b"abc"),
        testing::tcp_v6(v6(1), 1, v6(2), 2, 0x11, b"abcd"),
        testing::udp_v4(v4(1, 2, 3, 4), 1, v4(5, 6, 7, 8), 2, b"a"),
        testing::udp_v6(v6(1), 1, v6(2), 2, b""),
        testing::sctp_v4(v4(1, 2, 3, 4), 1, v4(5, 6, 7, 8), 2, 0, &[1, 0, 0, 4]),
        testing::sctp_v6(v6(1), 1, v6(2), 2, 9, &[1, 0, 0, 4]),
        testing::icmp_echo_v4(v4(1, 2, 3, 4), v4(5, 6, 7, 8), 3, 4, true, b"p"),
        testing::icmp_echo_v6(v6(1), v6(2), 3, 4, true, b"p"),
    ] {
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        oracle_check(&f);
        let i = ip_info(&f);
        assert_eq!(verify_l4_checksum(&f, &i), Ok(()));
    }
}

// ------------------------------------------------------ property tests

#[derive(Clone, Debug)]
enum L4Kind {
    Tcp,
    Udp,
    UdpNoCsum,
    Sctp,
    Echo,
    ErrorTcp,
    ErrorUdp,
}

#[derive(Clone, Debug)]
struct Spec {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    flags: u8,
    kind: L4Kind,
    payload: Vec<u8>,
    v4_opts: Vec<u8>,
    v6_ext: Vec<u8>,
    vlans: Vec<u16>,
    ttl: u8,
    tos: u8,
}

fn addr_of(v6: bool, o: [u8; 16]) -> Addr {
    if v6 {
        let mut o = o;
        o[0] = 0x20; // never v4-mapped
        Addr::v6(o)
    } else {
        Addr::v4([o[0], o[1], o[2], o[3]])
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let kind = prop_oneof![
        Just(L4Kind::Tcp),
        Just(L4Kind::Udp),
        Just(L4Kind::UdpNoCsum),
        Just(L4Kind::Sctp),
        Just(L4Kind::Echo),
        Just(L4Kind::ErrorTcp),
        Just(L4Kind::ErrorUdp),
    ];
    let ext = (
        any::<bool>(),
        proptest::sample::subsequence(vec![43u8, 60, 44], 0..=3),
    )
        .prop_map(|(hbh, rest)| {
            let mut v = if hbh { vec![0u8] } else { vec![] };
            v.extend(rest);
            v
        });
    (
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        (any::<u16>(), any::<u16>(), any::<u8>()),
        kind,
        proptest::collection::vec(any::<u8>(), 0..80),
        proptest::collection::vec(1u8..=1, 0..12),
        ext,
        proptest::collection::vec(1u16..4095, 0..=2),
        (1u8..=255, any::<u8>()),
    )
        .prop_map(
            |(
                v6,
                src,
                dst,
                (sport, dport, flags),
                kind,
                payload,
                v4_opts,
                v6_ext,
                vlans,
                (ttl, tos),
            )| Spec {
                v6,
                src,
                dst,
                sport,
                dport,
                flags,
                kind,
                payload,
                v4_opts,
                v6_ext,
                vlans,
                ttl,
                tos,
            },
        )
}

fn build(s: &Spec) -> Vec<u8> {
    let src = addr_of(s.v6, s.src);
    let dst = addr_of(s.v6, s.dst);
    let o = IpOpts {
        ttl: s.ttl,
        tos: s.tos,
        v4_options: if s.v6 { vec![] } else { s.v4_opts.clone() },
        v6_ext: if s.v6 { s.v6_ext.clone() } else { vec![] },
        vlans: s.vlans.clone(),
        ..IpOpts::default()
    };
    let plain = IpOpts {
        v4_options: o.v4_options.clone(),
        v6_ext: o.v6_ext.clone(),
        ..IpOpts::default()
    };
    let icmp_proto = if s.v6 { Proto::ICMPV6 } else { Proto::ICMP };
    match s.kind {
        L4Kind::Tcp => testing::ip_frame(
            src,
            dst,
            Proto::TCP,
            &testing::tcp_segment(s.sport, s.dport, 1, 2, s.flags, &s.payload),
            &o,
        ),
        L4Kind::Udp => testing::ip_frame(
            src,
            dst,
            Proto::UDP,
            &testing::udp_datagram(s.sport, s.dport, &s.payload),
            &o,
        ),
        L4Kind::UdpNoCsum => {
            let mut f = testing::ip_frame(
                src,
                dst,
                Proto::UDP,
                &testing::udp_datagram(s.sport, s.dport, &s.payload),
                &o,
            );
            if !s.v6 {
                let i = ip_info(&f);
                let c = usize::from(i.l4_off) + 6;
                f[c..c + 2].fill(0);
            }
            f
        }
        L4Kind::Sctp => testing::ip_frame(
            src,
            dst,
            Proto::SCTP,
            &testing::sctp_packet(s.sport, s.dport, 0x1234, &s.payload),
            &o,
        ),
        L4Kind::Echo => {
            let ty = if s.v6 { 128 } else { 8 };
            testing::ip_frame(
                src,
                dst,
                icmp_proto,
                &testing::icmp_message(ty, 0, u32::from(s.sport) << 16, &s.payload),
                &o,
            )
        }
        L4Kind::ErrorTcp | L4Kind::ErrorUdp => {
            // The quoted packet went from dst to src; the error from a router
            // (src) back to its source (dst).
            let l4 = if matches!(s.kind, L4Kind::ErrorTcp) {
                testing::tcp_segment(s.dport, s.sport, 9, 9, 0x18, &s.payload)
            } else {
                testing::udp_datagram(s.dport, s.sport, &s.payload)
            };
            let p = if matches!(s.kind, L4Kind::ErrorTcp) {
                Proto::TCP
            } else {
                Proto::UDP
            };
            let quoted = testing::ip_frame(dst, src, p, &l4, &plain);
            let quote = &quoted[14..];
            let ty = if s.v6 { 1 } else { 3 };
            testing::ip_frame(
                src,
                dst,
                icmp_proto,
                &testing::icmp_message(ty, 3, 0, quote),
                &o,
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (d) parse_frame agrees with etherparse on addresses, ports, protocol
    /// and VLAN.
    #[test]
    fn prop_parse_agrees_with_etherparse(s in spec()) {
        let f = build(&s);
        let i = ip_info(&f);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let (src, dst) = match &p.net {
            Some(NetSlice::Ipv4(n)) => (Addr::v4(n.header().source()), Addr::v4(n.header().destination())),
            Some(NetSlice::Ipv6(n)) => (Addr::v6(n.header().source()), Addr::v6(n.header().destination())),
            _ => unreachable!(),
        };
        prop_assert_eq!((i.src, i.dst), (src, dst));
        prop_assert_eq!(i.proto.0, p.ip_payload().unwrap().ip_number.0);
        prop_assert_eq!(i.l3_end() - usize::from(i.l4_off), p.ip_payload().unwrap().payload.len());
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                prop_assert_eq!((i.sport, i.dport), (t.source_port(), t.destination_port()));
                prop_assert_eq!(i.tcp_flags, t.slice()[13]);
            }
            Some(TransportSlice::Udp(u)) => prop_assert_eq!((i.sport, i.dport), (u.source_port(), u.destination_port())),
            _ => {}
        }
        let vids = p.vlan_ids();
        prop_assert_eq!(i.vlan.map(|t| t & 0x0fff), vids.first().map(|v| v.value()));
        prop_assert!(verify_l4_checksum(&f, &i).is_ok());
    }

    /// (b) after set_src/set_dst every checksum equals etherparse's full
    /// recomputation.
    #[test]
    fn prop_nat_checksums_match_oracle(s in spec(), a in any::<[u8; 16]>(), port in any::<u16>(), src_side in any::<bool>()) {
        let mut f = build(&s);
        let i = ip_info(&f);
        let new = addr_of(s.v6, a);
        if src_side {
            set_src(&mut f, &i, new, port).unwrap();
        } else {
            set_dst(&mut f, &i, new, port).unwrap();
        }
        oracle_check(&f);
        let j = ip_info(&f);
        prop_assert_eq!(if src_side { j.src } else { j.dst }, new);
        if matches!(s.kind, L4Kind::Tcp | L4Kind::Udp | L4Kind::UdpNoCsum | L4Kind::Sctp) {
            prop_assert_eq!(if src_side { j.sport } else { j.dport }, port);
        }
        prop_assert!(verify_l4_checksum(&f, &j).is_ok());
    }

    /// (b) set_icmp_error keeps the outer, quoted IP, quoted L4 and ICMP
    /// checksums equal to etherparse's recomputation.
    #[test]
    fn prop_icmp_error_nat_matches_oracle(
        mut s in spec(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        port in any::<u16>(),
        udp in any::<bool>(),
        outer_src in any::<bool>(),
        inner_src in any::<bool>(),
    ) {
        s.kind = if udp { L4Kind::ErrorUdp } else { L4Kind::ErrorTcp };
        let mut f = build(&s);
        let i = ip_info(&f);
        prop_assert!(i.icmp.unwrap().inner.is_some());
        let (oa, ia) = (addr_of(s.v6, a), addr_of(s.v6, b));
        let outer = if outer_src { Side::Src } else { Side::Dst };
        let inner = if inner_src { Side::Src } else { Side::Dst };
        set_icmp_error(&mut f, &i, outer, oa, inner, ia, port).unwrap();
        oracle_check(&f);
        let j = ip_info(&f);
        let q = j.icmp.unwrap().inner.unwrap();
        prop_assert_eq!(if outer_src { j.src } else { j.dst }, oa);
        prop_assert_eq!(if inner_src { (q.src, q.sport) } else { (q.dst, q.dport) }, (ia, port));
    }

    /// (c) encapsulate then decapsulate gives back the original frame (less
    /// padding) for every kind and family combination; the tunnel frame's
    /// own checksums verify with etherparse.
    #[test]
    fn prop_encap_decap_round_trip(
        s in spec(),
        kind_sel in 0u8..7,
        outer_v6 in any::<bool>(),
        port in 1u16..,
        key in any::<u32>(),
        hash in any::<u32>(),
        pad in 0usize..8,
    ) {
        let orig = build(&s);
        let mut padded = orig.clone();
        padded.extend(std::iter::repeat_n(0u8, pad));
        let kind = match kind_sel {
            0 => TunnelKind::Ipip,
            1 => TunnelKind::Gue { port, csum: true, remcsum: false },
            2 => TunnelKind::Gue { port, csum: false, remcsum: false },
            3 => TunnelKind::Gre { csum: true, key: Some(key) },
            4 => TunnelKind::Gre { csum: true, key: None },
            5 => TunnelKind::Gre { csum: false, key: Some(key) },
            _ => TunnelKind::Gre { csum: false, key: None },
        };
        let (os, od) = if outer_v6 { (v6(0xa), v6(0xb)) } else { (v4(192, 0, 2, 10), v4(192, 0, 2, 11)) };
        let (mut mem, head, len) = with_room(&padded, 128);
        let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
        let i = ip_info(&padded);
        encapsulate(&mut buf, &i, &kind, os, od, hash).unwrap();
        prop_assert_eq!(buf.len(), orig.len() + encap_len(&kind, if outer_v6 { Af::V6 } else { Af::V4 }));
        let enc = buf.data().to_vec();
        // Outer header via etherparse.
        let p = SlicedPacket::from_ethernet(&enc).unwrap();
        match &p.net {
            Some(NetSlice::Ipv4(n)) => {
                let h = n.header();
                prop_assert!(!outer_v6);
                prop_assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                prop_assert_eq!(h.ttl(), s.ttl);
                prop_assert_eq!(h.dcp().value() << 2 | h.ecn().value(), s.tos);
            }
            Some(NetSlice::Ipv6(n)) => {
                prop_assert!(outer_v6);
                prop_assert_eq!(n.header().hop_limit(), s.ttl);
                prop_assert_eq!(n.header().traffic_class(), s.tos);
            }
            _ => prop_assert!(false),
        }
        match kind {
            TunnelKind::Gue { csum: true, .. } => oracle_sliced(&p),
            TunnelKind::Gre { csum: true, .. } => {
                let gre = &p.ip_payload().unwrap().payload;
                prop_assert_eq!(Sum16BitWords::new().add_slice(gre).ones_complement(), 0);
            }
            _ => {}
        }
        let gue_ports = [port];
        let t = parse_tunnel(&enc, &gue_ports).unwrap().unwrap();
        prop_assert_eq!(t.kind, kind);
        prop_assert_eq!((t.outer_src, t.outer_dst), (os, od));
        prop_assert_eq!(decapsulate(&mut buf, &gue_ports), Ok(true));
        prop_assert_eq!(buf.data(), &orig[..]);
    }

    /// (b) the ICMP error builders: "too big" and "unreachable" replies to
    /// any generated frame carry checksums equal to etherparse's (outer IP,
    /// ICMP/ICMPv6 with its pseudo header, and the quoted packet's own).
    #[test]
    fn prop_icmp_builders_match_oracle(
        s in spec(),
        mtu in 576u32..9000,
        unreachable in any::<bool>(),
        code in 0u8..16,
        head in 0usize..64,
    ) {
        let f = build(&s);
        let i = ip_info(&f);
        let src = if s.v6 { v6(0xfe) } else { v4(192, 0, 2, 254) };
        let (mut mem, h, len) = with_room(&f, head);
        let mut buf = FrameBuf::new(&mut mem, h, len).unwrap();
        if unreachable {
            build_unreachable(&mut buf, &i, code, src).unwrap();
        } else {
            build_too_big(&mut buf, &i, mtu, src).unwrap();
        }
        let out = buf.data().to_vec();
        if let Err(e) = oracle(&out) {
            return Err(TestCaseError::fail(e));
        }
        let r = ip_info(&out);
        prop_assert_eq!((r.src, r.dst), (src, i.src));
        let q = r.icmp.and_then(|c| c.inner).unwrap();
        prop_assert_eq!((q.src, q.dst, q.proto), (i.src, i.dst, i.proto));
    }

    /// (a) random mutation and truncation of valid frames never panics in
    /// any entry point (the fuzz functions also assert their invariants).
    #[test]
    fn prop_mutations_never_panic(
        s in spec(),
        muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut f = build(&s);
        for (idx, v) in muts {
            let n = f.len();
            f[idx.index(n)] = v;
        }
        if do_cut {
            let n = f.len();
            f.truncate(cut.index(n + 1));
        }
        fuzzing::fuzz_parse_frame(&f);
        fuzzing::fuzz_parse_tunnel(&f);
        fuzzing::fuzz_views(&f);
        fuzzing::fuzz_icmp_inner(&f);
        fuzzing::fuzz_rewrite(&f);
    }
}

/// (a) + (b) on mutated frames: mutate a generated frame at random, repair
/// its IPv4 header checksum (etherparse) and L4 checksum, and wherever the
/// result is still a frame both parsers read the same way with every
/// checksum valid, every rewrite (SNAT, DNAT, and the ICMP-error NAT of an
/// error's quote) leaves every checksum equal to etherparse's full
/// recomputation, and a zero IPv4 UDP checksum zero. The count check keeps
/// the test from passing by rejecting everything.
#[test]
fn rewrites_of_mutated_frames_match_the_oracle() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (rounds, mut checked, mut icmp_checked) = (3000, 0, 0);
    for _ in 0..rounds {
        let s = spec().new_tree(&mut runner).unwrap().current();
        let mut f = build(&s);
        for _ in 0..1 + next() % 3 {
            let n = f.len();
            f[(next() as usize) % n] = next() as u8;
        }
        let Ok(l2) = ethernet::walk(&f) else { continue };
        if l2.ethertype == ethernet::ETHERTYPE_IPV4
            && f.len() >= l2.len + 20
            && f[l2.len] >> 4 == 4
            && usize::from(f[l2.len] & 0xf) * 4 >= 20
            && l2.len + usize::from(f[l2.len] & 0xf) * 4 <= f.len()
        {
            fix_ipv4_header(&mut f, l2.len);
        }
        testing::fill_l4_checksum(&mut f);
        let Ok(Parsed::Ip(i)) = parse_frame(&f) else {
            continue;
        };
        if verify_l4_checksum(&f, &i).is_err() || oracle(&f).is_err() {
            continue;
        }
        let Ok(p) = SlicedPacket::from_ethernet(&f) else {
            continue;
        };
        let Some(ipp) = p.ip_payload() else { continue };
        if ipp.ip_number.0 != i.proto.0
            || ipp.payload.len() != i.l3_end() - usize::from(i.l4_off)
            || ipp.fragmented != (i.frag != Frag::None)
        {
            continue;
        }
        let udp_zero = i.af == Af::V4
            && i.proto == Proto::UDP
            && i.frag == Frag::None
            && f[usize::from(i.l4_off) + 6..usize::from(i.l4_off) + 8] == [0, 0];
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&next().to_be_bytes());
        a[8..].copy_from_slice(&next().to_be_bytes());
        let new = addr_of(i.af == Af::V6, a);
        let port = next() as u16;
        let mut g = f.clone();
        if next() % 2 == 0 {
            set_src(&mut g, &i, new, port).unwrap();
        } else {
            set_dst(&mut g, &i, new, port).unwrap();
        }
        if let Err(e) = oracle(&g) {
            panic!("{e} after NAT of\n{f:02x?}\n->\n{g:02x?}");
        }
        let j = ip_info(&g);
        assert!(verify_l4_checksum(&g, &j).is_ok());
        if udp_zero {
            let o = usize::from(j.l4_off) + 6;
            assert_eq!(&g[o..o + 2], &[0, 0], "zero UDP checksum stays zero");
        }
        checked += 1;
        if i.icmp.and_then(|c| c.inner).is_some() {
            let mut h = f.clone();
            let side = |b| if b { Side::Src } else { Side::Dst };
            if set_icmp_error(
                &mut h,
                &i,
                side(next() % 2 == 0),
                new,
                side(next() % 2 == 0),
                new,
                port,
            )
            .is_ok()
            {
                if let Err(e) = oracle(&h) {
                    panic!("{e} after ICMP NAT of\n{f:02x?}\n->\n{h:02x?}");
                }
                icmp_checked += 1;
            }
        }
    }
    assert!(
        checked > rounds / 2,
        "only {checked} of {rounds} mutated frames reached a rewrite"
    );
    assert!(
        icmp_checked > 20,
        "only {icmp_checked} ICMP errors reached a rewrite"
    );
}

/// The fuzz entry points over a few thousand inputs: pure noise, noise with
/// plausible headers, and tunnel frames with mutations.
#[test]
fn fuzz_entry_points_on_random_inputs() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds = [
        TCP_SYN.to_vec(),
        testing::udp_v6(v6(1), 1, v6(2), 2, b"abc"),
        testing::icmp_error(v4(9, 9, 9, 9), &TCP_SYN, 3, 3, 0, 100),
        testing::icmp_error(
            v6(9),
            &testing::tcp_v6(v6(1), 1, v6(2), 2, 2, b""),
            1,
            0,
            0,
            100,
        ),
        testing::sctp_v4(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, 0, &[1, 0, 0, 4]),
        ARP_REQUEST.to_vec(),
    ];
    for round in 0..4000 {
        let mut f = if round % 4 == 0 {
            let n = (next() % 200) as usize;
            (0..n).map(|_| next() as u8).collect::<Vec<u8>>()
        } else {
            seeds[round % seeds.len()].clone()
        };
        if round % 4 != 0 {
            // Tunnel some of the IP seeds first.
            if round % 3 == 0 && matches!(parse_frame(&f), Ok(Parsed::Ip(_))) {
                let i = ip_info(&f);
                let (mut mem, head, len) = with_room(&f, 64);
                let mut buf = FrameBuf::new(&mut mem, head, len).unwrap();
                let kind = TunnelKind::Gue {
                    port: 6080,
                    csum: round % 2 == 0,
                    remcsum: false,
                };
                encapsulate(
                    &mut buf,
                    &i,
                    &kind,
                    v4(1, 2, 3, 4),
                    v4(5, 6, 7, 8),
                    round as u32,
                )
                .unwrap();
                f = buf.data().to_vec();
            }
            for _ in 0..(next() % 4) {
                let n = f.len();
                f[(next() as usize) % n] = next() as u8;
            }
            if next() % 3 == 0 {
                let n = f.len();
                f.truncate((next() as usize) % (n + 1));
            }
        }
        fuzzing::fuzz_parse_frame(&f);
        fuzzing::fuzz_parse_tunnel(&f);
        fuzzing::fuzz_views(&f);
        fuzzing::fuzz_icmp_inner(&f);
        fuzzing::fuzz_rewrite(&f);
    }
}

/// `parse_flow_v4` takes exactly the untagged, option-less, unfragmented
/// IPv4 TCP/UDP frames `parse_frame` accepts, and finds what it finds;
/// `set_dst_v4` writes exactly what `set_dst` writes. Over valid frames of
/// every kind and mutations of them (header checksum fixed up half of the
/// time, so that the mutation reaches the later checks).
#[test]
fn flow_v4_agrees_with_parse_frame_and_set_dst() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (rounds, mut taken, mut rewritten) = (6000, 0, 0);
    for round in 0..rounds {
        let mut s = spec().new_tree(&mut runner).unwrap().current();
        // Mostly the fast path's shape, before mutation.
        if round % 4 != 0 {
            s.v6 = false;
            s.v4_opts.clear();
            s.vlans.clear();
            s.kind = match next() % 3 {
                0 => L4Kind::Tcp,
                1 => L4Kind::Udp,
                _ => L4Kind::UdpNoCsum,
            };
        }
        let mut f = build(&s);
        // A third unchanged; the rest with 1 to 3 random bytes changed, in
        // the headers most of the time.
        if round % 3 != 0 {
            for _ in 0..1 + next() % 3 {
                let n = f.len();
                let at = if next() % 4 == 0 {
                    next() as usize % n
                } else {
                    next() as usize % n.min(60)
                };
                f[at] = next() as u8;
            }
            if next() % 2 == 0 && f.len() >= 34 && f[14] >> 4 == 4 {
                let hl = usize::from(f[14] & 0xf) * 4;
                if hl >= 20 && 14 + hl <= f.len() {
                    fix_ipv4_header(&mut f, 14);
                }
            }
        }
        // Now and then cut the frame short.
        if next() % 8 == 0 {
            let n = next() as usize % (f.len() + 1);
            f.truncate(n);
        }
        let full = parse_frame(&f);
        let flow = parse_flow_v4(&f);
        let fast_case = matches!(&full, Ok(Parsed::Ip(i))
            if i.vlan.is_none()
                && i.af == Af::V4
                && i.l4_off == 34
                && i.frag == Frag::None
                && matches!(i.proto, Proto::TCP | Proto::UDP));
        assert_eq!(flow.is_some(), fast_case, "{f:02x?}: {full:?} / {flow:?}");
        let Some(flow) = flow else { continue };
        taken += 1;
        assert_eq!(full, Ok(Parsed::Ip(flow.info())), "{f:02x?}");
        let info = flow.info();
        let v6 = next() % 8 == 0;
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&next().to_be_bytes());
        a[8..].copy_from_slice(&next().to_be_bytes());
        // Sometimes the packet's own destination (address or port kept).
        let new = match next() % 4 {
            0 => info.dst,
            _ => addr_of(v6, a),
        };
        let port = if next() % 4 == 0 {
            info.dport
        } else {
            next() as u16
        };
        let (mut g, mut h) = (f.clone(), f.clone());
        let rg = set_dst(&mut g, &info, new, port);
        let rh = set_dst_v4(&mut h, &flow, new, port);
        assert_eq!(rg, rh, "{f:02x?}");
        assert_eq!(g, h, "{f:02x?}");
        rewritten += usize::from(rg.is_ok());
    }
    assert!(
        taken > rounds / 3,
        "only {taken} of {rounds} frames took the flow parse"
    );
    assert!(rewritten > rounds / 3, "only {rewritten} rewrites compared");
}
