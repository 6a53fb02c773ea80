//! Frame builders for tests and fixtures (feature `testing`).
//!
//! Every frame is Ethernet II from [`SRC_MAC`] to [`DST_MAC`], with a valid
//! IPv4 header checksum and a valid L4 checksum (RFC 1071 with the pseudo
//! header; CRC32c for SCTP). The builders are checked against etherparse in
//! this crate's tests. They allocate and may panic on absurd inputs (for
//! example a payload over 64 KiB): they are for tests only.

use crate::checksum;
use crate::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN};
use crate::{PacketInfo, Parsed};
use rvs_types::{Addr, Af, Proto};

/// Destination MAC of built frames.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Source MAC of built frames.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// IP-level options of a built frame.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct IpOpts {
    /// TTL / hop limit.
    pub ttl: u8,
    /// TOS / traffic class.
    pub tos: u8,
    /// IPv4 DF flag.
    pub df: bool,
    /// IPv4 identification.
    pub ident: u16,
    /// IPv4 options (padded with zero to a multiple of 4).
    pub v4_options: Vec<u8>,
    /// IPv6 extension headers to insert, by next-header value (0, 43, 60:
    /// 8 bytes each, PadN-filled; 44: an atomic fragment header).
    pub v6_ext: Vec<u8>,
    /// VLAN TCIs (outermost first), 802.1Q tags.
    pub vlans: Vec<u16>,
}

impl Default for IpOpts {
    fn default() -> Self {
        Self {
            ttl: 64,
            tos: 0,
            df: true,
            ident: 0x1234,
            v4_options: Vec::new(),
            v6_ext: Vec::new(),
            vlans: Vec::new(),
        }
    }
}

/// A TCP/IPv4 frame.
pub fn tcp_v4(src: Addr, sport: u16, dst: Addr, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    ip_frame(
        src,
        dst,
        Proto::TCP,
        &tcp_segment(sport, dport, 1, 0, flags, payload),
        &IpOpts::default(),
    )
}

/// A TCP/IPv6 frame.
pub fn tcp_v6(src: Addr, sport: u16, dst: Addr, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_v4(src, sport, dst, dport, flags, payload)
}

/// A UDP/IPv4 frame.
pub fn udp_v4(src: Addr, sport: u16, dst: Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    ip_frame(
        src,
        dst,
        Proto::UDP,
        &udp_datagram(sport, dport, payload),
        &IpOpts::default(),
    )
}

/// A UDP/IPv6 frame.
pub fn udp_v6(src: Addr, sport: u16, dst: Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_v4(src, sport, dst, dport, payload)
}

/// An SCTP/IPv4 frame with verification tag `vtag` and raw `chunks`.
pub fn sctp_v4(src: Addr, sport: u16, dst: Addr, dport: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
    ip_frame(
        src,
        dst,
        Proto::SCTP,
        &sctp_packet(sport, dport, vtag, chunks),
        &IpOpts::default(),
    )
}

/// An SCTP/IPv6 frame.
pub fn sctp_v6(src: Addr, sport: u16, dst: Addr, dport: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
    sctp_v4(src, sport, dst, dport, vtag, chunks)
}

/// An ICMPv4 echo request (`request`) or reply.
pub fn icmp_echo_v4(
    src: Addr,
    dst: Addr,
    ident: u16,
    seq: u16,
    request: bool,
    payload: &[u8],
) -> Vec<u8> {
    let ty = if request { 8 } else { 0 };
    ip_frame(
        src,
        dst,
        Proto::ICMP,
        &icmp_message(ty, 0, (u32::from(ident) << 16) | u32::from(seq), payload),
        &IpOpts::default(),
    )
}

/// An ICMPv6 echo request (`request`) or reply.
pub fn icmp_echo_v6(
    src: Addr,
    dst: Addr,
    ident: u16,
    seq: u16,
    request: bool,
    payload: &[u8],
) -> Vec<u8> {
    let ty = if request { 128 } else { 129 };
    ip_frame(
        src,
        dst,
        Proto::ICMPV6,
        &icmp_message(ty, 0, (u32::from(ident) << 16) | u32::from(seq), payload),
        &IpOpts::default(),
    )
}

/// An ICMP (or ICMPv6, by the family of `router`) error from `router` to the
/// source of `original` (a frame), quoting at most `quote_max` bytes of its
/// IP packet; `rest` fills bytes 4-7 (MTU, pointer, or 0).
pub fn icmp_error(
    router: Addr,
    original: &[u8],
    ty: u8,
    code: u8,
    rest: u32,
    quote_max: usize,
) -> Vec<u8> {
    let Ok(Parsed::Ip(info)) = crate::parse_frame(original) else {
        panic!("icmp_error: original is not an IP frame");
    };
    let ip = &original[usize::from(info.l3_off)..info.l3_end()];
    let quote = &ip[..ip.len().min(quote_max)];
    let proto = if router.is_v4() {
        Proto::ICMP
    } else {
        Proto::ICMPV6
    };
    ip_frame(
        router,
        info.src,
        proto,
        &icmp_message(ty, code, rest, quote),
        &IpOpts::default(),
    )
}

/// A TCP header (no options) plus payload, checksum zero.
pub fn tcp_segment(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(payload);
    s
}

/// A UDP header plus payload, checksum zero.
pub fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

/// An SCTP common header plus chunks, checksum zero.
pub fn sctp_packet(sport: u16, dport: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(12 + chunks.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&vtag.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(chunks);
    s
}

/// An ICMP/ICMPv6 header (`rest` = bytes 4-7) plus body, checksum zero.
pub fn icmp_message(ty: u8, code: u8, rest: u32, body: &[u8]) -> Vec<u8> {
    let mut s = vec![ty, code, 0, 0];
    s.extend_from_slice(&rest.to_be_bytes());
    s.extend_from_slice(body);
    s
}

/// Wraps an L4 message in IP (family of `src`) and Ethernet, then fills the
/// IPv4 header checksum and the L4 checksum.
pub fn ip_frame(src: Addr, dst: Addr, proto: Proto, l4: &[u8], o: &IpOpts) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + l4.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for tci in &o.vlans {
        f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    let l3 = f.len() + 2;
    if src.is_v4() {
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let mut opts = o.v4_options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hl = 20 + opts.len();
        f.push(0x40 | (hl / 4) as u8);
        f.push(o.tos);
        f.extend_from_slice(&((hl + l4.len()) as u16).to_be_bytes());
        f.extend_from_slice(&o.ident.to_be_bytes());
        f.extend_from_slice(&(if o.df { 0x4000u16 } else { 0 }).to_be_bytes());
        f.extend_from_slice(&[o.ttl, proto.0, 0, 0]);
        f.extend_from_slice(&src.octets4());
        f.extend_from_slice(&dst.octets4());
        f.extend_from_slice(&opts);
        let c = checksum::checksum(&f[l3..l3 + hl]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let ext_len = o.v6_ext.len() * 8;
        let first = o.v6_ext.first().copied().unwrap_or(proto.0);
        let w = (6u32 << 28) | (u32::from(o.tos) << 20) | 0x12345;
        f.extend_from_slice(&w.to_be_bytes());
        f.extend_from_slice(&((ext_len + l4.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[first, o.ttl]);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&dst.0);
        for (i, &kind) in o.v6_ext.iter().enumerate() {
            let nh = o.v6_ext.get(i + 1).copied().unwrap_or(proto.0);
            match kind {
                44 => f.extend_from_slice(&[nh, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe]),
                43 => f.extend_from_slice(&[nh, 0, 4, 0, 0, 0, 0, 0]),
                _ => f.extend_from_slice(&[nh, 0, 1, 4, 0, 0, 0, 0]),
            }
        }
    }
    f.extend_from_slice(l4);
    fill_l4_checksum(&mut f);
    f
}

/// Recomputes the L4 checksum of a frame from scratch (TCP, UDP, SCTP,
/// ICMP, ICMPv6; nothing for other protocols or fragments).
pub fn fill_l4_checksum(frame: &mut [u8]) {
    let Ok(Parsed::Ip(info)) = crate::parse_frame(frame) else {
        return;
    };
    if info.frag != crate::Frag::None {
        return;
    }
    let (l4_off, end) = (usize::from(info.l4_off), info.l3_end());
    let l4 = &mut frame[l4_off..end];
    let len = l4.len() as u32;
    let pseudo = |p: Proto| checksum::pseudo(&info.src, &info.dst, p, len);
    let (off, base) = match info.proto {
        Proto::TCP => (16, pseudo(Proto::TCP)),
        Proto::UDP => (6, pseudo(Proto::UDP)),
        Proto::ICMPV6 => (2, pseudo(Proto::ICMPV6)),
        Proto::ICMP if info.af == Af::V4 => (2, 0),
        Proto::SCTP => {
            crate::sctp::Packet::new_unchecked(l4).fill_checksum();
            return;
        }
        _ => return,
    };
    l4[off..off + 2].fill(0);
    let mut c = checksum::finish(checksum::add(base, checksum::sum(l4)));
    if info.proto == Proto::UDP && c == 0 {
        c = 0xffff;
    }
    l4[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Parses a frame that must be an IP frame (panics otherwise).
pub fn info(frame: &[u8]) -> PacketInfo {
    match crate::parse_frame(frame) {
        Ok(Parsed::Ip(i)) => i,
        other => panic!("not an IP frame: {other:?}"),
    }
}
