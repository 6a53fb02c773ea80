//! Tunnel encapsulation and decapsulation: IP-in-IP, GUE and GRE, with the
//! semantics of IPVS's `ip_vs_tunnel_xmit` / `ip_vs_tunnel_xmit_v6`
//! (`ipvs_gue_encap`, `ipvs_gre_encap`, `ip_vs_prepare_tunneled_skb`).
//!
//! The outer header copies TTL / hop limit and TOS / traffic class from the
//! inner packet; IPv4-in-IPv4 copies DF from the inner header (a non-IPv4
//! inner gets DF clear, as `ip_vs_prepare_tunneled_skb` gives `df = 0` for
//! IPv6); the outer IPv4 identification is 0. All four family combinations
//! work for every tunnel kind.

use crate::checksum;
use crate::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::{Error, FrameBuf, PacketInfo, Parsed, gre, gue, ipv4, ipv6, udp};
use rvs_types::{Addr, Af, Proto};

/// Lowest port `udp_flow_src_port` picks (the default
/// `net.ipv4.ip_local_port_range` low end).
pub const FLOW_PORT_MIN: u16 = 32768;
/// One past the highest port `udp_flow_src_port` picks (default range high
/// end 60999, plus one).
pub const FLOW_PORT_MAX: u16 = 61000;

/// How a packet is tunnelled to a real server (IPVS `--tun-type`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TunnelKind {
    /// GRE (RFC 2784/2890) with an optional checksum and key; protocol
    /// type 0x0800 / 0x86dd.
    Gre {
        /// Whether to add (and on receive, verify) the GRE checksum.
        csum: bool,
        /// Optional key.
        key: Option<u32>,
    },
    /// GUE variant 0 in UDP to `port`.
    ///
    /// `csum` computes the outer UDP checksum; without it the checksum is
    /// zero, for IPv6 outer headers too (RFC 6935 / RFC 6936 allow zero
    /// UDP checksums for tunnel protocols). `remcsum` (remote checksum
    /// offload) only has an effect in the kernel for `CHECKSUM_PARTIAL`
    /// packets, which never reach this code: it is accepted and ignored.
    Gue {
        /// Destination UDP port.
        port: u16,
        /// Whether to compute the outer UDP checksum.
        csum: bool,
        /// Remote checksum offload requested (ignored, see above).
        remcsum: bool,
    },
    /// Plain IP-in-IP: IPv4 protocol 4 / IPv6 next header 4 for an IPv4
    /// inner packet, 41 for IPv6.
    Ipip,
}

/// Bytes [`encapsulate`] adds in front of the inner IP packet.
#[inline]
pub fn encap_len(kind: &TunnelKind, outer_af: Af) -> usize {
    let ip = match outer_af {
        Af::V4 => ipv4::MIN_HEADER_LEN,
        Af::V6 => ipv6::HEADER_LEN,
    };
    ip + match kind {
        TunnelKind::Ipip => 0,
        TunnelKind::Gue { .. } => udp::HEADER_LEN + gue::BASE_LEN,
        TunnelKind::Gre { csum, key } => {
            gre::BASE_LEN + if *csum { 4 } else { 0 } + if key.is_some() { 4 } else { 0 }
        }
    }
}

/// The UDP source port for a flow hash, as the kernel's
/// `udp_flow_src_port`: scaled into `[FLOW_PORT_MIN, FLOW_PORT_MAX)` so
/// that receivers spread tunnelled flows over RSS queues.
#[inline]
pub fn flow_src_port(flow_hash: u32) -> u16 {
    let span = u64::from(FLOW_PORT_MAX - FLOW_PORT_MIN);
    ((u64::from(flow_hash) * span) >> 32) as u16 + FLOW_PORT_MIN
}

/// Encapsulates the IP packet of the frame in `buf` for a tunnel from
/// `outer_src` to `outer_dst`.
///
/// Keeps the Ethernet header (and VLAN tags) at the front, inserts the
/// outer IP header (and UDP+GUE or GRE) between it and the inner packet,
/// sets the EtherType for the outer family, and drops Ethernet padding
/// behind the inner packet. `flow_hash` picks the GUE source port
/// ([`flow_src_port`]) and the outer IPv6 flow label (its low 20 bits, as
/// auto flow labels do). The frame grows into headroom.
///
/// Fails with [`Error::Unsupported`] when the outer addresses differ in
/// family, [`Error::NoRoom`] without enough headroom or when the result
/// would exceed the IP length limit, [`Error::Truncated`] when `info` does
/// not fit the frame. On error the frame is unchanged.
pub fn encapsulate(
    buf: &mut FrameBuf<'_>,
    info: &PacketInfo,
    kind: &TunnelKind,
    outer_src: Addr,
    outer_dst: Addr,
    flow_hash: u32,
) -> Result<(), Error> {
    let outer_af = outer_src.af();
    if outer_dst.af() != outer_af {
        return Err(Error::Unsupported);
    }
    let l2 = usize::from(info.l3_off);
    let inner_len = usize::from(info.l3_len);
    if info.l3_end() > buf.len() || l2 < ethernet::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let n = encap_len(kind, outer_af);
    if buf.headroom() < n {
        return Err(Error::NoRoom);
    }
    let outer_ip_len = n + inner_len;
    let outer_payload = match outer_af {
        Af::V4 => outer_ip_len,
        Af::V6 => outer_ip_len - ipv6::HEADER_LEN,
    };
    if outer_payload > usize::from(u16::MAX) {
        return Err(Error::NoRoom);
    }
    // Inner fields copied to the outer header.
    let (tos, ttl, df, inner_proto) = {
        let d = buf.data();
        let Some(ip) = d.get(l2..info.l3_end()) else {
            return Err(Error::Truncated);
        };
        match info.af {
            Af::V4 => {
                let p = ipv4::Packet::new_checked(ip)?;
                (p.tos(), p.ttl(), p.dont_frag(), Proto::IPIP)
            }
            Af::V6 => {
                let p = ipv6::Packet::new_checked(ip)?;
                (p.traffic_class(), p.hop_limit(), false, Proto::IPV6)
            }
        }
    };
    buf.set_len(info.l3_end())?;
    buf.push_front(n)?;
    let frame = buf.data_mut();
    frame.copy_within(n..n + l2, 0);
    let outer_ethertype = match outer_af {
        Af::V4 => ETHERTYPE_IPV4,
        Af::V6 => ETHERTYPE_IPV6,
    };
    frame[l2 - 2..l2].copy_from_slice(&outer_ethertype.to_be_bytes());
    let Some(outer) = frame.get_mut(l2..) else {
        return Err(Error::Truncated);
    };
    let ip_len = match outer_af {
        Af::V4 => ipv4::MIN_HEADER_LEN,
        Af::V6 => ipv6::HEADER_LEN,
    };
    let ip_proto = match kind {
        TunnelKind::Ipip => inner_proto,
        TunnelKind::Gue { .. } => Proto::UDP,
        TunnelKind::Gre { .. } => Proto::GRE,
    };
    let (ip, rest) = outer.split_at_mut(ip_len);
    match outer_af {
        Af::V4 => {
            let mut p = ipv4::Packet::new_unchecked(ip);
            p.set_version_and_len(ipv4::MIN_HEADER_LEN);
            p.set_tos(tos);
            p.set_total_len(outer_ip_len as u16);
            p.set_ident(0);
            p.set_frag_word(if df { ipv4::FLAG_DF } else { 0 });
            p.set_ttl(ttl);
            p.set_protocol(ip_proto);
            p.set_src_addr(outer_src);
            p.set_dst_addr(outer_dst);
            p.fill_checksum();
        }
        Af::V6 => {
            let mut p = ipv6::Packet::new_unchecked(ip);
            p.set_version_tc_flow(tos, flow_hash);
            p.set_payload_len(outer_payload as u16);
            p.set_next_header(ip_proto.0);
            p.set_hop_limit(ttl);
            p.set_src_addr(outer_src);
            p.set_dst_addr(outer_dst);
        }
    }
    match *kind {
        TunnelKind::Ipip => {}
        TunnelKind::Gue { port, csum, .. } => {
            let udp_len = rest.len();
            let (uh, payload) = rest.split_at_mut(udp::HEADER_LEN);
            gue::Packet::new_unchecked(&mut *payload).emit(inner_proto.0);
            let mut u = udp::Packet::new_unchecked(uh);
            u.set_src_port(flow_src_port(flow_hash));
            u.set_dst_port(port);
            u.set_len(udp_len as u16);
            u.set_checksum(0);
            if csum {
                let s = checksum::pseudo(&outer_src, &outer_dst, Proto::UDP, udp_len as u32);
                let s = checksum::add(s, checksum::sum(u.into_inner()));
                let s = checksum::add(s, checksum::sum(payload));
                let c = checksum::finish(s);
                let c = if c == 0 { 0xffff } else { c };
                udp::Packet::new_unchecked(&mut rest[..udp::HEADER_LEN]).set_checksum(c);
            }
        }
        TunnelKind::Gre { csum, key } => {
            let proto = match info.af {
                Af::V4 => ETHERTYPE_IPV4,
                Af::V6 => ETHERTYPE_IPV6,
            };
            gre::Packet::new_unchecked(rest).emit(proto, csum, key);
        }
    }
    Ok(())
}

/// A tunnel packet found by [`parse_tunnel`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct TunnelInfo {
    /// Tunnel kind; for GUE `port` is the UDP destination port, `csum`
    /// whether the UDP checksum is non-zero; for GRE `csum` and `key` as
    /// found.
    pub kind: TunnelKind,
    /// Outer source address.
    pub outer_src: Addr,
    /// Outer destination address.
    pub outer_dst: Addr,
    /// Offset of the inner IP header.
    pub inner_l3_off: u16,
    /// Length of the inner IP packet (from its own header).
    pub inner_len: u16,
    /// Family of the inner packet.
    pub inner_af: Af,
    /// Offset of the outer IP header.
    pub outer_l3_off: u16,
    /// Offset of the outer L4 (UDP or GRE) header; equals `inner_l3_off`
    /// for IP-in-IP.
    pub outer_l4_off: u16,
    /// End of the outer IP packet.
    pub outer_l3_end: u16,
}

/// Recognises a tunnel packet: IP-in-IP (IPv4 protocol / IPv6 next header 4
/// or 41), GRE carrying IPv4/IPv6, or UDP to one of `gue_ports` carrying GUE
/// (variant 0 with proto 4/41, or variant 1).
///
/// `Ok(None)` when the frame is not a tunnel packet (including GRE carrying
/// other protocols and GUE control messages). Errors from parsing the outer
/// frame are returned as [`crate::parse_frame`] gives them; a fragmented
/// tunnel packet is [`Error::Unsupported`]; an inner IP header that does not
/// fit is [`Error::Truncated`] or [`Error::Malformed`]. Checksums are
/// verified by [`decapsulate`], not here.
pub fn parse_tunnel(frame: &[u8], gue_ports: &[u16]) -> Result<Option<TunnelInfo>, Error> {
    let Parsed::Ip(outer) = crate::parse_frame(frame)? else {
        return Ok(None);
    };
    let l4_off = usize::from(outer.l4_off);
    let end = outer.l3_end();
    let Some(l4) = frame.get(l4_off..end) else {
        return Err(Error::Truncated);
    };
    let is_tunnel_proto = matches!(outer.proto, Proto::IPIP | Proto::IPV6 | Proto::GRE)
        || outer.proto == Proto::UDP && gue_ports.contains(&outer.dport);
    if !is_tunnel_proto {
        return Ok(None);
    }
    if outer.frag != crate::Frag::None {
        return Err(Error::Unsupported);
    }
    let (kind, inner_rel, inner_af) = match outer.proto {
        Proto::IPIP => (TunnelKind::Ipip, 0, Af::V4),
        Proto::IPV6 => (TunnelKind::Ipip, 0, Af::V6),
        Proto::GRE => {
            let g = gre::Packet::new_checked(l4)?;
            let af = match g.protocol() {
                ETHERTYPE_IPV4 => Af::V4,
                ETHERTYPE_IPV6 => Af::V6,
                _ => return Ok(None),
            };
            let kind = TunnelKind::Gre {
                csum: g.checksum().is_some(),
                key: g.key(),
            };
            (kind, g.header_len(), af)
        }
        _ => {
            let u = udp::Packet::new_checked(l4)?;
            let csum = u.checksum() != 0;
            let payload = u.payload();
            let Some(&first) = payload.first() else {
                return Err(Error::Truncated);
            };
            let kind = TunnelKind::Gue {
                port: outer.dport,
                csum,
                remcsum: false,
            };
            if first >> 6 == 1 {
                // Variant 1: the IP header directly.
                let af = match first >> 4 {
                    4 => Af::V4,
                    6 => Af::V6,
                    _ => return Ok(None),
                };
                (kind, udp::HEADER_LEN, af)
            } else {
                let g = gue::Packet::new_checked(payload)?;
                if g.variant() != 0 || g.is_control() {
                    return Ok(None);
                }
                let af = match Proto(g.proto_ctype()) {
                    Proto::IPIP => Af::V4,
                    Proto::IPV6 => Af::V6,
                    _ => return Ok(None),
                };
                (kind, udp::HEADER_LEN + g.header_len(), af)
            }
        }
    };
    let Some(inner) = l4.get(inner_rel..) else {
        return Err(Error::Truncated);
    };
    let inner_len = match inner_af {
        Af::V4 => usize::from(ipv4::Packet::new_checked(inner)?.total_len()),
        Af::V6 => {
            let p = ipv6::Packet::new_checked(inner)?;
            ipv6::HEADER_LEN + usize::from(p.payload_len())
        }
    };
    Ok(Some(TunnelInfo {
        kind,
        outer_src: outer.src,
        outer_dst: outer.dst,
        inner_l3_off: (l4_off + inner_rel) as u16,
        inner_len: inner_len as u16,
        inner_af,
        outer_l3_off: outer.l3_off,
        outer_l4_off: outer.l4_off,
        outer_l3_end: end as u16,
    }))
}

/// Strips the tunnel headers of a tunnel packet (see [`parse_tunnel`]),
/// leaving the Ethernet header (and VLAN tags) in front of the inner packet
/// with the inner EtherType, and dropping anything after the inner packet.
///
/// Verifies the GRE checksum and a non-zero GUE UDP checksum first
/// ([`Error::BadChecksum`]); a zero UDP checksum is accepted for both
/// families (RFC 6935). Returns `Ok(false)`, leaving the frame alone, when
/// it is not a tunnel packet.
pub fn decapsulate(buf: &mut FrameBuf<'_>, gue_ports: &[u16]) -> Result<bool, Error> {
    let Some(t) = parse_tunnel(buf.data(), gue_ports)? else {
        return Ok(false);
    };
    let frame = buf.data();
    let l4_off = usize::from(t.outer_l4_off);
    let end = usize::from(t.outer_l3_end);
    let Some(l4) = frame.get(l4_off..end) else {
        return Err(Error::Truncated);
    };
    match t.kind {
        TunnelKind::Gre { csum: true, .. } if !gre::Packet::new_checked(l4)?.verify_checksum() => {
            return Err(Error::BadChecksum);
        }
        TunnelKind::Gue { csum: true, .. } => {
            let u = udp::Packet::new_checked(l4)?;
            let len = usize::from(u.len());
            let s = checksum::pseudo(&t.outer_src, &t.outer_dst, Proto::UDP, len as u32);
            let body = l4.get(..len).unwrap_or(&[]);
            if !checksum::verifies(checksum::add(s, checksum::sum(body))) {
                return Err(Error::BadChecksum);
            }
        }
        _ => {}
    }
    let l2 = usize::from(t.outer_l3_off);
    let inner = usize::from(t.inner_l3_off);
    let strip = inner - l2;
    let ethertype = match t.inner_af {
        Af::V4 => ETHERTYPE_IPV4,
        Af::V6 => ETHERTYPE_IPV6,
    };
    let frame = buf.data_mut();
    frame.copy_within(0..l2, strip);
    frame[strip + l2 - 2..strip + l2].copy_from_slice(&ethertype.to_be_bytes());
    buf.pop_front(strip)?;
    buf.set_len(l2 + usize::from(t.inner_len))?;
    Ok(true)
}
