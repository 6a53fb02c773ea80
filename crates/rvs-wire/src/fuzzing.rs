//! Entry points for fuzzers (the cargo-fuzz targets in `fuzz/` and a
//! randomized `#[test]`).
//!
//! One entry point per parser: [`fuzz_parse_frame`] (Ethernet to L4 in one
//! pass, ICMP quotes), [`fuzz_parse_tunnel`] (IPIP/GUE/GRE), [`fuzz_views`]
//! (every header view's `new_checked` and getters, ARP included), and the
//! rewriters [`fuzz_icmp_inner`] and [`fuzz_rewrite`].
//!
//! Each function takes arbitrary bytes, must never panic on its own, and
//! asserts the invariants that must hold whatever the input (so a fuzzer
//! finds a violated invariant as a crash). No allocation: working copies
//! live in a fixed stack buffer; inputs longer than [`MAX_INPUT`] are cut.

use crate::encap::TunnelKind;
use crate::rewrite::Side;
use crate::{FrameBuf, PacketInfo, Parsed};
use rvs_types::{Addr, Af};

/// Longest input the fuzz entry points look at.
pub const MAX_INPUT: usize = 4096;
const HEADROOM: usize = 128;
const BUF: usize = HEADROOM + MAX_INPUT + 1600;

const GUE_PORTS: [u16; 2] = [6080, 5555];

fn cut(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT)]
}

/// Parses a frame and checks the offsets are consistent; verifies the L4
/// checksum too (only for not panicking). Runs on the input as given and
/// with its IPv4 header checksum repaired (so that mutations reach past the
/// header check).
pub fn fuzz_parse_frame(data: &[u8]) {
    with_fixed(data, fuzz_parse_frame_one);
}

/// Parses a tunnel packet and decapsulates it; the result must be exactly
/// the inner packet behind the original Ethernet header. Also run with the
/// outer IPv4 header checksum repaired.
pub fn fuzz_parse_tunnel(data: &[u8]) {
    with_fixed(data, fuzz_parse_tunnel_one);
}

/// Parses a frame and, for an ICMP error with a quote, NATs it with
/// [`crate::set_icmp_error`] every way round; the result must still parse,
/// show the new addresses, and keep a valid ICMP checksum valid. Also run
/// with the IPv4 header checksum repaired.
pub fn fuzz_icmp_inner(data: &[u8]) {
    with_fixed(data, fuzz_icmp_inner_one);
}

/// Parses a frame, then: NATs it both ways (checksums that verified must
/// still verify; a refused rewrite must leave the frame alone),
/// encapsulates it with every tunnel kind and outer family and
/// decapsulates it again (the inner packet must come back unchanged), and
/// builds a "too big" reply from it (which must parse and verify). Also run
/// with the IPv4 header checksum repaired.
pub fn fuzz_rewrite(data: &[u8]) {
    with_fixed(data, fuzz_rewrite_one);
}

/// Wraps the input (and each of its first 64 suffixes, so that every
/// header view also starts at odd offsets) in every header view of the
/// crate: Ethernet (and the VLAN walk), ARP, IPv4, IPv6 (and the
/// extension-header walk), TCP, UDP, SCTP, ICMP, GRE and GUE. Wherever
/// `new_checked` accepts, every getter must work and the lengths it reports
/// must fit the buffer; wherever it refuses, the error is a typed one.
pub fn fuzz_views(data: &[u8]) {
    let data = cut(data);
    for k in 0..data.len().min(64) + 1 {
        views_at(&data[k..]);
    }
}

fn views_at(b: &[u8]) {
    use crate::{arp, ethernet, gre, gue, icmp, ipv4, ipv6, sctp, tcp, udp};
    use core::hint::black_box;
    if let Ok(l2) = ethernet::walk(b) {
        assert!(l2.len <= b.len());
    }
    if let Ok(f) = ethernet::Frame::new_checked(b) {
        black_box((f.dst_addr(), f.src_addr(), f.ethertype(), f.payload().len()));
    }
    if let Ok(p) = arp::Packet::new_checked(b) {
        black_box((p.operation(), p.sender_mac(), p.sender_ip()));
        black_box((p.target_mac(), p.target_ip()));
    }
    if let Ok(p) = ipv4::Packet::new_checked(b) {
        assert!(p.header_len() <= usize::from(p.total_len()));
        assert!(usize::from(p.total_len()) <= b.len());
        black_box((
            p.version(),
            p.tos(),
            p.ident(),
            p.frag_word(),
            p.dont_frag(),
        ));
        black_box((p.more_frags(), p.frag_offset(), p.ttl(), p.protocol()));
        black_box((p.checksum(), p.src_addr(), p.dst_addr(), p.options().len()));
        black_box((p.verify_checksum(), p.payload().len()));
    }
    if let Ok(p) = ipv6::Packet::new_checked(b) {
        black_box((
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.next_header(),
        ));
        black_box((p.hop_limit(), p.src_addr(), p.dst_addr()));
        assert_eq!(p.payload().len(), usize::from(p.payload_len()));
        let pkt = &b[..ipv6::HEADER_LEN + usize::from(p.payload_len())];
        if let Ok(w) = ipv6::walk_ext(pkt) {
            assert!(w.l4_off >= ipv6::HEADER_LEN && w.l4_off <= pkt.len());
        }
    }
    if let Ok(p) = tcp::Packet::new_checked(b) {
        assert!(p.header_len() <= b.len());
        black_box((p.src_port(), p.dst_port(), p.seq(), p.ack(), p.flags()));
        black_box((p.window(), p.checksum(), p.urgent(), p.options().len()));
    }
    if let Ok(p) = udp::Packet::new_checked(b) {
        black_box((
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.is_empty(),
            p.checksum(),
        ));
        assert!(p.payload().len() + 8 <= b.len());
    }
    if let Ok(p) = sctp::Packet::new_checked(b) {
        black_box((
            p.src_port(),
            p.dst_port(),
            p.verification_tag(),
            p.checksum(),
        ));
        black_box((p.first_chunk_type(), p.verify_checksum()));
    }
    if let Ok(p) = icmp::Packet::new_checked(b) {
        black_box((p.msg_type(), p.code(), p.checksum(), p.echo_ident()));
        black_box((
            p.echo_seq(),
            p.v4_next_hop_mtu(),
            p.v6_mtu(),
            p.payload().len(),
        ));
    }
    if let Ok(p) = gre::Packet::new_checked(b) {
        assert!(p.header_len() <= b.len());
        black_box((p.flags(), p.version(), p.protocol(), p.checksum(), p.key()));
        black_box((p.verify_checksum(), p.payload().len()));
    }
    if let Ok(p) = gue::Packet::new_checked(b) {
        assert!(p.header_len() <= b.len());
        black_box((
            p.variant(),
            p.is_control(),
            p.options_len(),
            p.proto_ctype(),
        ));
        black_box((p.flags(), p.payload().len()));
    }
}

fn with_fixed(data: &[u8], f: fn(&[u8])) {
    let data = cut(data);
    f(data);
    let mut mem = [0u8; MAX_INPUT];
    let copy = &mut mem[..data.len()];
    copy.copy_from_slice(data);
    if fix_ipv4_checksum(copy) {
        f(copy);
    }
}

/// Recomputes the IPv4 header checksum of an Ethernet/IPv4 frame, if it
/// looks like one; returns whether it changed anything.
fn fix_ipv4_checksum(frame: &mut [u8]) -> bool {
    let Ok(l2) = crate::ethernet::walk(frame) else {
        return false;
    };
    if l2.ethertype != crate::ethernet::ETHERTYPE_IPV4 {
        return false;
    }
    let Some(ip) = frame.get_mut(l2.len..) else {
        return false;
    };
    let Some(&b0) = ip.first() else {
        return false;
    };
    let hl = usize::from(b0 & 0x0f) * 4;
    if hl < 20 || hl > ip.len() {
        return false;
    }
    let old = [ip[10], ip[11]];
    ip[10] = 0;
    ip[11] = 0;
    let c = crate::checksum::checksum(&ip[..hl]).to_be_bytes();
    ip[10] = c[0];
    ip[11] = c[1];
    old != c
}

fn check_info(frame: &[u8], info: &PacketInfo) {
    assert!(info.l3_off <= info.l4_off);
    assert!(usize::from(info.l4_off) <= info.l3_end());
    assert!(info.l3_end() <= frame.len());
    if let Some(i) = info.icmp.and_then(|i| i.inner) {
        assert!(i.l3_off >= info.l4_off + 8);
        assert!(i.l3_off <= i.l4_off);
        assert!(usize::from(i.l4_off) <= info.l3_end());
    }
}

/// Parses a frame and checks the offsets are consistent; verifies the L4
/// checksum too (only for not panicking).
fn fuzz_parse_frame_one(data: &[u8]) {
    let data = cut(data);
    if let Ok(Parsed::Ip(info)) = crate::parse_frame(data) {
        check_info(data, &info);
        let _ = crate::verify_l4_checksum(data, &info);
    }
}

/// Parses a tunnel packet and decapsulates it.
fn fuzz_parse_tunnel_one(data: &[u8]) {
    let data = cut(data);
    let parsed = crate::parse_tunnel(data, &GUE_PORTS);
    if let Ok(Some(t)) = parsed {
        assert!(t.outer_l3_off < t.inner_l3_off);
        assert!(usize::from(t.inner_l3_off) + usize::from(t.inner_len) <= data.len());
    }
    let mut mem = [0u8; BUF];
    mem[HEADROOM..HEADROOM + data.len()].copy_from_slice(data);
    let Ok(mut buf) = FrameBuf::new(&mut mem, HEADROOM, data.len()) else {
        return;
    };
    match crate::decapsulate(&mut buf, &GUE_PORTS) {
        Ok(true) => {
            let Ok(Some(t)) = parsed else {
                panic!("decapsulated what parse_tunnel refused");
            };
            let inner = &data[usize::from(t.inner_l3_off)..][..usize::from(t.inner_len)];
            let l2 = usize::from(t.outer_l3_off);
            assert_eq!(&buf.data()[l2..], inner);
        }
        Ok(false) => assert!(matches!(parsed, Ok(None))),
        Err(_) => {}
    }
}

/// Parses a frame and, for an ICMP error with a quote, NATs it with
/// [`crate::set_icmp_error`] every way round; the result must still parse,
/// show the new addresses, and keep a valid ICMP checksum valid.
fn fuzz_icmp_inner_one(data: &[u8]) {
    let data = cut(data);
    let Ok(Parsed::Ip(info)) = crate::parse_frame(data) else {
        return;
    };
    let Some(q) = info.icmp.and_then(|i| i.inner) else {
        return;
    };
    let was_valid = crate::verify_l4_checksum(data, &info).is_ok();
    let (a, b) = addrs(info.af);
    for (outer, inner) in [(Side::Src, Side::Dst), (Side::Dst, Side::Src)] {
        let mut mem = [0u8; MAX_INPUT];
        let f = &mut mem[..data.len()];
        f.copy_from_slice(data);
        if crate::set_icmp_error(f, &info, outer, a, inner, b, 4242).is_err() {
            continue;
        }
        let Ok(Parsed::Ip(after)) = crate::parse_frame(f) else {
            panic!("rewritten ICMP error no longer parses");
        };
        assert_eq!(
            if outer == Side::Src {
                after.src
            } else {
                after.dst
            },
            a
        );
        if let Some(qa) = after.icmp.and_then(|i| i.inner) {
            assert_eq!(if inner == Side::Src { qa.src } else { qa.dst }, b);
            assert_eq!(qa.proto, q.proto);
        }
        if was_valid {
            assert!(crate::verify_l4_checksum(f, &after).is_ok());
        }
    }
}

/// Parses a frame, then: NATs it both ways (checksums that verified must
/// still verify), encapsulates it with every tunnel kind and outer family
/// and decapsulates it again (the inner packet must come back unchanged),
/// and builds a "too big" reply from it (which must parse and verify).
fn fuzz_rewrite_one(data: &[u8]) {
    let data = cut(data);
    let Ok(Parsed::Ip(info)) = crate::parse_frame(data) else {
        return;
    };
    let was_valid = crate::verify_l4_checksum(data, &info).is_ok();
    let (a, b) = addrs(info.af);
    {
        let mut mem = [0u8; MAX_INPUT];
        let f = &mut mem[..data.len()];
        f.copy_from_slice(data);
        let dst_ok = crate::set_dst(f, &info, a, 8080).is_ok();
        if !dst_ok {
            assert_eq!(&*f, data, "a failed rewrite must leave the frame alone");
        }
        if dst_ok && crate::set_src(f, &info, b, 1234).is_ok() {
            let Ok(Parsed::Ip(after)) = crate::parse_frame(f) else {
                panic!("NATed frame no longer parses");
            };
            assert_eq!((after.src, after.dst), (b, a));
            if was_valid {
                assert!(crate::verify_l4_checksum(f, &after).is_ok());
            }
        }
        // Family mismatch must be refused.
        let (x, _) = addrs(if info.af == Af::V4 { Af::V6 } else { Af::V4 });
        assert!(crate::set_dst(f, &info, x, 1).is_err());
    }
    let kinds = [
        TunnelKind::Ipip,
        TunnelKind::Gue {
            port: GUE_PORTS[0],
            csum: true,
            remcsum: false,
        },
        TunnelKind::Gue {
            port: GUE_PORTS[1],
            csum: false,
            remcsum: true,
        },
        TunnelKind::Gre {
            csum: true,
            key: Some(7),
        },
        TunnelKind::Gre {
            csum: false,
            key: None,
        },
    ];
    let inner = &data[usize::from(info.l3_off)..info.l3_end()];
    for kind in &kinds {
        for outer_af in [Af::V4, Af::V6] {
            let (s, d) = addrs(outer_af);
            let mut mem = [0u8; BUF];
            mem[HEADROOM..HEADROOM + data.len()].copy_from_slice(data);
            let Ok(mut buf) = FrameBuf::new(&mut mem, HEADROOM, data.len()) else {
                return;
            };
            if crate::encapsulate(&mut buf, &info, kind, s, d, 0xdead_beef).is_err() {
                continue;
            }
            assert_eq!(crate::decapsulate(&mut buf, &GUE_PORTS), Ok(true));
            let l3 = usize::from(info.l3_off);
            assert_eq!(&buf.data()[l3..], inner);
            assert_eq!(&buf.data()[..l3 - 2], &data[..l3 - 2]);
        }
    }
    let mut mem = [0u8; BUF];
    mem[HEADROOM..HEADROOM + data.len()].copy_from_slice(data);
    if let Ok(mut buf) = FrameBuf::new(&mut mem, HEADROOM, data.len())
        && crate::build_too_big(&mut buf, &info, 1400, a).is_ok()
    {
        let Ok(Parsed::Ip(reply)) = crate::parse_frame(buf.data()) else {
            panic!("too-big reply does not parse");
        };
        assert_eq!(reply.dst, info.src);
        assert!(crate::verify_l4_checksum(buf.data(), &reply).is_ok());
    }
}

fn addrs(af: Af) -> (Addr, Addr) {
    match af {
        Af::V4 => (Addr::v4([198, 51, 100, 7]), Addr::v4([203, 0, 113, 9])),
        Af::V6 => (
            Addr::v6([
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd,
            ]),
            Addr::v6([
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            ]),
        ),
    }
}
