//! The one-pass frame parser of the hot path, and L4 checksum verification.
//!
//! [`parse_frame`] reproduces the header checks the kernel makes before
//! IPVS sees a packet (`ip_rcv_core`, `ipv6_rcv`, `tcp_v4_rcv`'s data
//! offset check) and what IPVS itself extracts (`ip_vs_fill_iph_skb`, the
//! per-protocol `*_conn_schedule` port reads, `ip_vs_in_icmp` /
//! `ip_vs_in_icmp_v6` for the packet quoted in an ICMP error).

use crate::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::icmp;
use crate::ipv6;
use crate::{Error, FlowV4, Frag, IcmpInfo, InnerInfo, PacketInfo, Parsed, checksum};
use rvs_types::{Addr, Af, Proto};

/// Parses an Ethernet frame in one pass.
///
/// IP frames give [`Parsed::Ip`] with a [`PacketInfo`]; ARP gives
/// [`Parsed::Arp`]; other EtherTypes [`Parsed::Other`]. Errors:
/// - [`Error::Truncated`]: a header (Ethernet, VLAN, IP, IPv6 extension,
///   L4) is cut short, or the IP length exceeds the frame;
/// - [`Error::Malformed`]: IPv4 version/IHL wrong or total length below the
///   header length, IPv6 version wrong, TCP data offset below 5;
/// - [`Error::BadChecksum`]: the IPv4 header checksum fails (the check
///   `ip_rcv_core` makes);
/// - [`Error::Unsupported`]: more than two VLAN tags or more than
///   [`ipv6::MAX_EXT_HEADERS`] IPv6 extension headers, or an IPv6 packet
///   longer than 65535 bytes.
///
/// Fragments: a first fragment (offset 0, MF) is parsed like a whole packet
/// and flagged [`Frag::First`]; a later one is [`Frag::Later`] with ports 0
/// and `l4_off` at the start of its payload. L4 checksums are not checked
/// here (see [`verify_l4_checksum`]).
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<Parsed, Error> {
    let l2 = ethernet::walk(frame)?;
    match l2.ethertype {
        ETHERTYPE_IPV4 => parse_v4(frame, l2.len, l2.vlan).map(Parsed::Ip),
        ETHERTYPE_IPV6 => parse_v6(frame, l2.len, l2.vlan).map(Parsed::Ip),
        ETHERTYPE_ARP => Ok(Parsed::Arp),
        other => Ok(Parsed::Other(other)),
    }
}

/// The established fast path's parse: a [`FlowV4`] when the frame is
/// untagged Ethernet with an unfragmented IPv4 TCP or UDP packet without IP
/// options that [`parse_frame`] accepts, `None` for every other frame
/// (which then goes through [`parse_frame`]: `None` says nothing about
/// whether the frame is valid).
///
/// Makes the checks [`parse_frame`] makes on that layout (IP total length
/// within the frame, header checksum, TCP data offset, L4 header within
/// the IP packet), at fixed offsets and without building a
/// [`PacketInfo`]: the hot path's packets cost a third of a full parse.
#[inline]
pub fn parse_flow_v4(frame: &[u8]) -> Option<FlowV4> {
    let (l2, pkt) = frame.split_first_chunk::<{ ethernet::HEADER_LEN }>()?;
    let h = pkt.first_chunk::<20>()?;
    // EtherType IPv4 with no VLAN tag; version 4, 20-byte header.
    if l2[12..14] != ETHERTYPE_IPV4.to_be_bytes() || h[0] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < 20 || total > pkt.len() || !checksum::verifies_array(h) {
        return None;
    }
    let fw = u16::from_be_bytes([h[6], h[7]]);
    if fw & (crate::ipv4::FRAG_OFFSET_MASK | crate::ipv4::FLAG_MF) != 0 {
        return None;
    }
    let l4 = pkt.get(20..total)?;
    let proto = Proto(h[9]);
    let (ports, tcp_flags) = match proto {
        Proto::TCP => {
            let t = l4.first_chunk::<20>()?;
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() {
                return None;
            }
            ([t[0], t[1], t[2], t[3]], t[13])
        }
        Proto::UDP => {
            let u = l4.first_chunk::<8>()?;
            ([u[0], u[1], u[2], u[3]], 0)
        }
        _ => return None,
    };
    Some(FlowV4 {
        src: [h[12], h[13], h[14], h[15]],
        dst: [h[16], h[17], h[18], h[19]],
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        proto,
        tcp_flags,
        ttl: h[8],
        l3_len: total as u16,
    })
}

#[inline]
fn parse_v4(frame: &[u8], l3_off: usize, vlan: Option<u16>) -> Result<PacketInfo, Error> {
    let Some(pkt) = frame.get(l3_off..) else {
        return Err(Error::Truncated);
    };
    let Some(h) = pkt.first_chunk::<20>() else {
        return Err(Error::Truncated);
    };
    if h[0] >> 4 != 4 {
        return Err(Error::Malformed);
    }
    let hl = usize::from(h[0] & 0x0f) * 4;
    if hl < 20 {
        return Err(Error::Malformed);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < hl {
        return Err(Error::Malformed);
    }
    if total > pkt.len() {
        return Err(Error::Truncated);
    }
    let hsum = if hl == 20 {
        checksum::sum_array(h)
    } else {
        let Some(header) = pkt.get(..hl) else {
            return Err(Error::Truncated);
        };
        checksum::sum(header)
    };
    if !checksum::verifies(hsum) {
        return Err(Error::BadChecksum);
    }
    let fw = u16::from_be_bytes([h[6], h[7]]);
    let frag = if fw & crate::ipv4::FRAG_OFFSET_MASK != 0 {
        Frag::Later
    } else if fw & crate::ipv4::FLAG_MF != 0 {
        Frag::First
    } else {
        Frag::None
    };
    let mut info = PacketInfo {
        vlan,
        l3_off: l3_off as u16,
        l4_off: (l3_off + hl) as u16,
        l3_len: total as u16,
        af: Af::V4,
        proto: Proto(h[9]),
        src: Addr::v4([h[12], h[13], h[14], h[15]]),
        dst: Addr::v4([h[16], h[17], h[18], h[19]]),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl: h[8],
        frag,
        icmp: None,
    };
    if frag != Frag::Later {
        let l4 = pkt.get(hl..total).unwrap_or(&[]);
        parse_l4(&mut info, frame, l4)?;
    }
    Ok(info)
}

#[inline]
fn parse_v6(frame: &[u8], l3_off: usize, vlan: Option<u16>) -> Result<PacketInfo, Error> {
    let Some(rest) = frame.get(l3_off..) else {
        return Err(Error::Truncated);
    };
    let Some(h) = rest.first_chunk::<40>() else {
        return Err(Error::Truncated);
    };
    if h[0] >> 4 != 6 {
        return Err(Error::Malformed);
    }
    let total = 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if total > rest.len() {
        return Err(Error::Truncated);
    }
    if total > usize::from(u16::MAX) || l3_off + total > usize::from(u16::MAX) {
        return Err(Error::Unsupported);
    }
    let pkt = rest.get(..total).unwrap_or(&[]);
    let (proto, l4_rel, frag) = if h[6] == Proto::TCP.0 || h[6] == Proto::UDP.0 {
        // Fast path: no extension headers.
        (Proto(h[6]), 40, Frag::None)
    } else {
        let w = ipv6::walk_ext(pkt)?;
        let frag = match w.frag {
            Some((0, true)) => Frag::First,
            Some((0, false)) | None => Frag::None,
            Some(_) => Frag::Later,
        };
        (w.proto, w.l4_off, frag)
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    let mut info = PacketInfo {
        vlan,
        l3_off: l3_off as u16,
        l4_off: (l3_off + l4_rel) as u16,
        l3_len: total as u16,
        af: Af::V6,
        proto,
        src: Addr::v6(src),
        dst: Addr::v6(dst),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl: h[7],
        frag,
        icmp: None,
    };
    if frag != Frag::Later {
        let l4 = pkt.get(l4_rel..).unwrap_or(&[]);
        parse_l4(&mut info, frame, l4)?;
    }
    Ok(info)
}

/// Fills ports/flags/ICMP details from the L4 header `l4` (cut at the end
/// of the IP packet).
#[inline]
fn parse_l4(info: &mut PacketInfo, frame: &[u8], l4: &[u8]) -> Result<(), Error> {
    match info.proto {
        Proto::TCP => {
            let Some(t) = l4.first_chunk::<20>() else {
                return Err(Error::Truncated);
            };
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 {
                return Err(Error::Malformed);
            }
            if doff > l4.len() {
                return Err(Error::Truncated);
            }
            info.sport = u16::from_be_bytes([t[0], t[1]]);
            info.dport = u16::from_be_bytes([t[2], t[3]]);
            info.tcp_flags = t[13];
        }
        Proto::UDP => {
            let Some(u) = l4.first_chunk::<8>() else {
                return Err(Error::Truncated);
            };
            info.sport = u16::from_be_bytes([u[0], u[1]]);
            info.dport = u16::from_be_bytes([u[2], u[3]]);
        }
        Proto::SCTP => {
            let Some(s) = l4.first_chunk::<12>() else {
                return Err(Error::Truncated);
            };
            info.sport = u16::from_be_bytes([s[0], s[1]]);
            info.dport = u16::from_be_bytes([s[2], s[3]]);
        }
        Proto::ICMP if info.af == Af::V4 => parse_icmp(info, frame, l4)?,
        Proto::ICMPV6 if info.af == Af::V6 => parse_icmp(info, frame, l4)?,
        _ => {}
    }
    Ok(())
}

#[cold]
fn parse_icmp(info: &mut PacketInfo, frame: &[u8], l4: &[u8]) -> Result<(), Error> {
    let Some(m) = l4.first_chunk::<8>() else {
        return Err(Error::Truncated);
    };
    let (ty, code) = (m[0], m[1]);
    let mut inner = None;
    if icmp::is_echo(info.af, ty) {
        let id = u16::from_be_bytes([m[4], m[5]]);
        info.sport = id;
        info.dport = id;
    } else if match info.af {
        Af::V4 => icmp::is_error_v4(ty),
        Af::V6 => icmp::is_error_v6(ty),
    } && info.frag == Frag::None
    {
        let quote_off = usize::from(info.l4_off) + icmp::HEADER_LEN;
        let quote_end = info.l3_end().min(frame.len());
        if let Some(quote) = frame.get(quote_off..quote_end) {
            inner = parse_inner(info.af, quote, quote_off);
        }
    }
    info.icmp = Some(IcmpInfo { ty, code, inner });
    Ok(())
}

/// Parses the packet quoted in an ICMP error; `quote` starts at frame offset
/// `base`. `None` when the quoted IP header is incomplete, or its L4 header
/// is shorter than the 8 bytes that hold the ports.
pub(crate) fn parse_inner(af: Af, quote: &[u8], base: usize) -> Option<InnerInfo> {
    let (proto, src, dst, l4_rel, later) = match af {
        Af::V4 => {
            let h = quote.first_chunk::<20>()?;
            let hl = usize::from(h[0] & 0x0f) * 4;
            if h[0] >> 4 != 4 || hl < 20 || hl > quote.len() {
                return None;
            }
            let fw = u16::from_be_bytes([h[6], h[7]]);
            (
                Proto(h[9]),
                Addr::v4([h[12], h[13], h[14], h[15]]),
                Addr::v4([h[16], h[17], h[18], h[19]]),
                hl,
                fw & crate::ipv4::FRAG_OFFSET_MASK != 0,
            )
        }
        Af::V6 => {
            let h = quote.first_chunk::<40>()?;
            if h[0] >> 4 != 6 {
                return None;
            }
            // The quote is usually cut short of the payload length: walk
            // only what is there.
            let w = ipv6::walk_ext(quote).ok()?;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            (
                w.proto,
                Addr::v6(src),
                Addr::v6(dst),
                w.l4_off,
                matches!(w.frag, Some((o, _)) if o != 0),
            )
        }
    };
    let l3_off = u16::try_from(base).ok()?;
    let l4_off = u16::try_from(base + l4_rel).ok()?;
    let mut inner = InnerInfo {
        l3_off,
        l4_off,
        proto,
        src,
        dst,
        sport: 0,
        dport: 0,
    };
    if later {
        return Some(inner);
    }
    let l4 = quote.get(l4_rel..).unwrap_or(&[]);
    match proto {
        Proto::TCP | Proto::UDP | Proto::SCTP => {
            let p = l4.first_chunk::<8>()?;
            inner.sport = u16::from_be_bytes([p[0], p[1]]);
            inner.dport = u16::from_be_bytes([p[2], p[3]]);
        }
        Proto::ICMP | Proto::ICMPV6 => {
            let p = l4.first_chunk::<8>()?;
            if icmp::is_echo(af, p[0]) {
                let id = u16::from_be_bytes([p[4], p[5]]);
                inner.sport = id;
                inner.dport = id;
            }
        }
        _ => {}
    }
    Some(inner)
}

/// Verifies the L4 checksum of a parsed packet, as the IPVS protocol
/// handlers' `*_csum_check` do before rewriting (`tcp_csum_check`,
/// `udp_csum_check`, `sctp_csum_check`) and as `icmp_rcv` /
/// `icmpv6_rcv` do.
///
/// - TCP and UDP: RFC 1071 sum with the pseudo header; a zero UDP checksum
///   means "none" over IPv4 and is invalid over IPv6 (RFC 8200 §8.1).
/// - SCTP: CRC32c over the whole SCTP packet.
/// - ICMP: plain sum; ICMPv6: sum with the pseudo header.
/// - Other protocols, and fragments (whose checksum covers the whole
///   reassembled datagram), have nothing verifiable: `Ok(())`.
///
/// Fails with [`Error::BadChecksum`], or [`Error::Truncated`] /
/// [`Error::Malformed`] when `info` does not fit `frame` or the UDP length
/// field is inconsistent.
pub fn verify_l4_checksum(frame: &[u8], info: &PacketInfo) -> Result<(), Error> {
    if info.frag != Frag::None {
        return Ok(());
    }
    let Some(l4) = frame.get(usize::from(info.l4_off)..info.l3_end()) else {
        return Err(Error::Truncated);
    };
    let ok = match info.proto {
        Proto::TCP => {
            let s = checksum::pseudo(&info.src, &info.dst, Proto::TCP, l4.len() as u32);
            checksum::verifies(checksum::add(s, checksum::sum(l4)))
        }
        Proto::UDP => {
            let Some(u) = l4.first_chunk::<8>() else {
                return Err(Error::Truncated);
            };
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if len < 8 || len > l4.len() {
                return Err(Error::Malformed);
            }
            if u[6] == 0 && u[7] == 0 {
                info.af == Af::V4
            } else {
                let s = checksum::pseudo(&info.src, &info.dst, Proto::UDP, len as u32);
                checksum::verifies(checksum::add(s, checksum::sum(&l4[..len])))
            }
        }
        Proto::SCTP => crate::sctp::Packet::new_checked(l4)?.verify_checksum(),
        Proto::ICMP if info.af == Af::V4 => checksum::verifies(checksum::sum(l4)),
        Proto::ICMPV6 if info.af == Af::V6 => {
            let s = checksum::pseudo(&info.src, &info.dst, Proto::ICMPV6, l4.len() as u32);
            checksum::verifies(checksum::add(s, checksum::sum(l4)))
        }
        _ => true,
    };
    if ok { Ok(()) } else { Err(Error::BadChecksum) }
}
