//! In-place rewriting with incremental checksum updates (RFC 1624).
//!
//! These are the packet halves of IPVS's NAT handlers: `tcp_snat_handler` /
//! `tcp_dnat_handler` (address + port, `tcp_fast_csum_update`),
//! `udp_*nat_handler` (same, keeping a zero IPv4 UDP checksum zero, and
//! turning a computed zero into `0xffff` as `CSUM_MANGLED_0`),
//! `sctp_*nat_handler` (port, then a full CRC32c: it has no incremental
//! form), and `ip_vs_nat_icmp` / `ip_vs_nat_icmp_v6` for ICMP errors.
//! The IPv4 header checksum is always updated incrementally too.

use crate::checksum::{self, Delta};
use crate::{Error, FlowV4, Frag, PacketInfo, tcp, udp};
use rvs_types::{Addr, Af, Proto};

/// Which end of a packet to rewrite.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Side {
    /// The destination address/port.
    Dst,
    /// The source address/port.
    Src,
}

/// Rewrites the source address and L4 port of the packet (SNAT).
///
/// See [`set_dst`] for the checksum rules.
#[inline]
pub fn set_src(frame: &mut [u8], info: &PacketInfo, addr: Addr, port: u16) -> Result<(), Error> {
    set_addr_port(frame, info, Side::Src, addr, port)
}

/// Rewrites the destination address and L4 port of the packet (DNAT).
///
/// Updates the IPv4 header checksum and the TCP/UDP checksum (pseudo header
/// and port) incrementally; a zero IPv4 UDP checksum stays zero; SCTP gets
/// its CRC32c recomputed; for ICMP echo the port is ignored (the identifier
/// is left alone) and ICMPv6's checksum follows the address change through
/// its pseudo header. Later fragments get only the address (their L4
/// checksum lives in the first fragment). A first SCTP fragment gets the
/// port but no CRC (it covers the reassembled packet).
///
/// Fails with [`Error::Unsupported`] when `addr` is not of the packet's
/// family, and [`Error::Truncated`] when `info` does not fit `frame`.
#[inline]
pub fn set_dst(frame: &mut [u8], info: &PacketInfo, addr: Addr, port: u16) -> Result<(), Error> {
    set_addr_port(frame, info, Side::Dst, addr, port)
}

#[inline]
fn set_addr_port(
    frame: &mut [u8],
    info: &PacketInfo,
    side: Side,
    addr: Addr,
    port: u16,
) -> Result<(), Error> {
    if addr.af() != info.af {
        return Err(Error::Unsupported);
    }
    if info.af == Af::V4 && info.frag == Frag::None && matches!(info.proto, Proto::TCP | Proto::UDP)
    {
        return set_v4_fast(
            frame,
            usize::from(info.l3_off),
            usize::from(info.l4_off),
            info.l3_end(),
            info.proto == Proto::TCP,
            side,
            addr,
            port,
        );
    }
    let l3_off = usize::from(info.l3_off);
    let l4_off = usize::from(info.l4_off);
    let end = info.l3_end();
    if end > frame.len() || l4_off > end || l3_off > l4_off {
        return Err(Error::Truncated);
    }
    let (ip, l4) = frame[l3_off..end].split_at_mut(l4_off - l3_off);
    // Check every header we will touch before writing anything, so that a
    // stale or forged `info` leaves the frame unchanged.
    let ip_need = match info.af {
        Af::V4 => 20,
        Af::V6 => 40,
    };
    if ip.len() < ip_need || l4.len() < l4_need(info) {
        return Err(Error::Truncated);
    }
    let old = write_ip_addr(ip, info.af, side, &addr)?;
    if info.frag == Frag::Later || old == addr && port_of(info, side) == port {
        return Ok(());
    }
    let mut addr_delta = Delta::new();
    addr_delta.addr(&old, &addr);
    let port_off = match side {
        Side::Src => 0,
        Side::Dst => 2,
    };
    match info.proto {
        Proto::TCP => {
            let Some(t) = l4.first_chunk_mut::<20>() else {
                return Err(Error::Truncated);
            };
            let mut d = addr_delta;
            d.word(be16(t, port_off), port);
            put16(t, port_off, port);
            let c = be16(t, tcp::CHECKSUM_OFF);
            put16(t, tcp::CHECKSUM_OFF, d.apply(c));
        }
        Proto::UDP => {
            let Some(u) = l4.first_chunk_mut::<8>() else {
                return Err(Error::Truncated);
            };
            let mut d = addr_delta;
            d.word(be16(u, port_off), port);
            put16(u, port_off, port);
            let c = be16(u, udp::CHECKSUM_OFF);
            if c != 0 || info.af == Af::V6 {
                let n = d.apply(c);
                put16(u, udp::CHECKSUM_OFF, if n == 0 { 0xffff } else { n });
            }
        }
        Proto::SCTP => {
            let Some(s) = l4.first_chunk_mut::<12>() else {
                return Err(Error::Truncated);
            };
            put16(s, port_off, port);
            if info.frag == Frag::None {
                crate::sctp::Packet::new_unchecked(l4).fill_checksum();
            }
        }
        Proto::ICMPV6 if info.af == Af::V6 => {
            let Some(m) = l4.first_chunk_mut::<4>() else {
                return Err(Error::Truncated);
            };
            let c = be16(m, 2);
            put16(m, 2, addr_delta.apply(c));
        }
        _ => {}
    }
    Ok(())
}

/// [`set_dst`] for a packet parsed by [`crate::parse_flow_v4`]: the same
/// checks and the same result as `set_dst(frame, &flow.info(), addr,
/// port)`, with the offsets fixed at compile time (the established fast
/// path's rewrite; inlined always, into that path).
#[inline(always)]
pub fn set_dst_v4(frame: &mut [u8], flow: &FlowV4, addr: Addr, port: u16) -> Result<(), Error> {
    if !addr.is_v4() {
        return Err(Error::Unsupported);
    }
    let (l3, l4) = (usize::from(FlowV4::L3_OFF), usize::from(FlowV4::L4_OFF));
    let l3_end = l3 + usize::from(flow.l3_len);
    // One call per protocol, so that the header length is a constant too:
    // after set_v4_fast's one length check every index is known in bounds.
    if flow.proto == Proto::TCP {
        set_v4_fast(frame, l3, l4, l3_end, true, Side::Dst, addr, port)
    } else {
        set_v4_fast(frame, l3, l4, l3_end, false, Side::Dst, addr, port)
    }
}

/// Bytes of L4 header [`set_dst`] / [`set_src`] touch.
#[inline]
fn l4_need(info: &PacketInfo) -> usize {
    if info.frag == Frag::Later {
        return 0;
    }
    match info.proto {
        Proto::TCP => 20,
        Proto::UDP => 8,
        Proto::SCTP => 12,
        Proto::ICMPV6 if info.af == Af::V6 => 4,
        _ => 0,
    }
}

fn port_of(info: &PacketInfo, side: Side) -> u16 {
    match side {
        Side::Src => info.sport,
        Side::Dst => info.dport,
    }
}

/// Writes the address at `side` of the IP header `ip` (fixing the IPv4
/// header checksum) and returns the old address.
/// The hot case of [`set_addr_port`]: an unfragmented IPv4 TCP or UDP
/// packet. Same checks and results, written with 32-bit words: one RFC 1624
/// update of the IPv4 header checksum for the address, one of the L4
/// checksum for address and port together.
/// Inlined always, so that [`set_dst_v4`]'s constant offsets fold in.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn set_v4_fast(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    l3_end: usize,
    tcp: bool,
    side: Side,
    addr: Addr,
    port: u16,
) -> Result<(), Error> {
    let (csum_off, need) = if tcp {
        (tcp::CHECKSUM_OFF, 20)
    } else {
        (udp::CHECKSUM_OFF, 8)
    };
    if l3 + 20 > l4 || l4 + need > l3_end || l3_end > frame.len() {
        return Err(Error::Truncated);
    }
    let (aoff, poff) = match side {
        Side::Src => (l3 + 12, l4),
        Side::Dst => (l3 + 16, l4 + 2),
    };
    let old_a = u32::from_be_bytes([
        frame[aoff],
        frame[aoff + 1],
        frame[aoff + 2],
        frame[aoff + 3],
    ]);
    let new_a = u32::from_be_bytes(addr.octets4());
    let old_p = be16(frame, poff);
    if old_a != new_a {
        let ipc = be16(frame, l3 + 10);
        put16(frame, l3 + 10, checksum::update32(ipc, old_a, new_a));
        frame[aoff..aoff + 4].copy_from_slice(&new_a.to_be_bytes());
    } else if old_p == port {
        return Ok(());
    }
    let d = ((old_a >> 16) ^ 0xffff)
        + ((old_a & 0xffff) ^ 0xffff)
        + (new_a >> 16)
        + (new_a & 0xffff)
        + (u32::from(old_p) ^ 0xffff)
        + u32::from(port);
    let c = be16(frame, l4 + csum_off);
    if tcp || c != 0 {
        let n = !checksum::fold(checksum::add(u32::from(!c), d));
        put16(
            frame,
            l4 + csum_off,
            if !tcp && n == 0 { 0xffff } else { n },
        );
    }
    put16(frame, poff, port);
    Ok(())
}

#[inline]
fn write_ip_addr(ip: &mut [u8], af: Af, side: Side, addr: &Addr) -> Result<Addr, Error> {
    match af {
        Af::V4 => {
            let Some(h) = ip.first_chunk_mut::<20>() else {
                return Err(Error::Truncated);
            };
            let off = match side {
                Side::Src => 12,
                Side::Dst => 16,
            };
            let old = Addr::v4([h[off], h[off + 1], h[off + 2], h[off + 3]]);
            let new = addr.octets4();
            let c = be16(h, 10);
            let c = checksum::update32(
                c,
                u32::from_be_bytes(old.octets4()),
                u32::from_be_bytes(new),
            );
            h[off..off + 4].copy_from_slice(&new);
            put16(h, 10, c);
            Ok(old)
        }
        Af::V6 => {
            let Some(h) = ip.first_chunk_mut::<40>() else {
                return Err(Error::Truncated);
            };
            let off = match side {
                Side::Src => 8,
                Side::Dst => 24,
            };
            let mut old = [0u8; 16];
            old.copy_from_slice(&h[off..off + 16]);
            h[off..off + 16].copy_from_slice(&addr.0);
            Ok(Addr::v6(old))
        }
    }
}

/// NAT of an ICMP error related to a connection, as IPVS's `ip_vs_nat_icmp`
/// / `ip_vs_nat_icmp_v6` do: rewrites the outer address at `outer`, and the
/// quoted packet's address and port at `inner` (the port only for a quoted
/// TCP/UDP/SCTP packet).
///
/// Fixes the outer IPv4 header checksum, the quoted IPv4 header checksum,
/// the quoted TCP/UDP checksum when the quote contains it (zero UDP IPv4
/// checksums stay zero; a quoted SCTP CRC is left alone as the quote is
/// rarely the whole packet), and the ICMP/ICMPv6 checksum, all
/// incrementally.
///
/// Fails with [`Error::Unsupported`] when the packet is not an ICMP error
/// with a parsed quote or an address is of another family, and with
/// [`Error::Truncated`] when `info` does not fit `frame`.
pub fn set_icmp_error(
    frame: &mut [u8],
    info: &PacketInfo,
    outer: Side,
    outer_addr: Addr,
    inner: Side,
    inner_addr: Addr,
    inner_port: u16,
) -> Result<(), Error> {
    let Some(q) = info.icmp.and_then(|i| i.inner) else {
        return Err(Error::Unsupported);
    };
    if outer_addr.af() != info.af || inner_addr.af() != info.af {
        return Err(Error::Unsupported);
    }
    let l3_off = usize::from(info.l3_off);
    let l4_off = usize::from(info.l4_off);
    let end = info.l3_end();
    let q3 = usize::from(q.l3_off);
    let q4 = usize::from(q.l4_off);
    if end > frame.len() || l3_off > l4_off || l4_off + 8 > q3 || q3 > q4 || q4 > end {
        return Err(Error::Truncated);
    }
    // Check every header we will touch before writing anything.
    let (ip_need, q_need) = match info.af {
        Af::V4 => (20, 20),
        Af::V6 => (40, 40),
    };
    let ports_need = if matches!(q.proto, Proto::TCP | Proto::UDP | Proto::SCTP) {
        8
    } else {
        0
    };
    if l4_off - l3_off < ip_need || q4 - q3 < q_need || end - q4 < ports_need {
        return Err(Error::Truncated);
    }
    let (ip, msg) = frame[l3_off..end].split_at_mut(l4_off - l3_off);
    // ICMP message offsets.
    let mq3 = q3 - l4_off;
    let mq4 = q4 - l4_off;
    let mut icmp_delta = Delta::new();

    // Outer address.
    let old_outer = write_ip_addr(ip, info.af, outer, &outer_addr)?;
    if info.af == Af::V6 {
        icmp_delta.addr(&old_outer, &outer_addr);
    }

    // Quoted address (and quoted IPv4 header checksum).
    let (qip, ql4) = msg.split_at_mut(mq4);
    let qip = &mut qip[mq3..];
    let old_inner = match info.af {
        Af::V4 => {
            let Some(h) = qip.first_chunk::<20>() else {
                return Err(Error::Truncated);
            };
            let old_csum = be16(h, 10);
            let old = write_ip_addr(qip, Af::V4, inner, &inner_addr)?;
            icmp_delta.addr(&old, &inner_addr);
            icmp_delta.word(old_csum, be16(qip, 10));
            old
        }
        Af::V6 => {
            let old = write_ip_addr(qip, Af::V6, inner, &inner_addr)?;
            icmp_delta.addr(&old, &inner_addr);
            old
        }
    };

    // Quoted port and quoted L4 checksum.
    if matches!(q.proto, Proto::TCP | Proto::UDP | Proto::SCTP) {
        let port_off = match inner {
            Side::Src => 0,
            Side::Dst => 2,
        };
        let Some(p) = ql4.first_chunk_mut::<8>() else {
            return Err(Error::Truncated);
        };
        let old_port = be16(p, port_off);
        put16(p, port_off, inner_port);
        icmp_delta.word(old_port, inner_port);
        let mut l4_delta = Delta::new();
        l4_delta.addr(&old_inner, &inner_addr);
        l4_delta.word(old_port, inner_port);
        let csum_off = match q.proto {
            Proto::TCP => Some(tcp::CHECKSUM_OFF),
            Proto::UDP => Some(udp::CHECKSUM_OFF),
            _ => None,
        };
        if let Some(off) = csum_off
            && let Some(cb) = ql4.get_mut(off..off + 2)
        {
            let c = be16(cb, 0);
            let skip = q.proto == Proto::UDP && c == 0 && info.af == Af::V4;
            if !skip {
                let mut n = l4_delta.apply(c);
                if q.proto == Proto::UDP && n == 0 {
                    n = 0xffff;
                }
                put16(cb, 0, n);
                icmp_delta.word(c, n);
            }
        }
    }

    // The ICMP checksum.
    let Some(m) = msg.first_chunk_mut::<4>() else {
        return Err(Error::Truncated);
    };
    let c = be16(m, 2);
    put16(m, 2, icmp_delta.apply(c));
    Ok(())
}

/// Sets the destination and source MAC addresses (what IPVS's DR mode
/// leaves to the neighbour layer).
#[inline]
pub fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) -> Result<(), Error> {
    let Some(h) = frame.first_chunk_mut::<12>() else {
        return Err(Error::Truncated);
    };
    h[..6].copy_from_slice(&dst);
    h[6..].copy_from_slice(&src);
    Ok(())
}

/// Swaps the destination and source MAC addresses (to send a frame back
/// where it came from).
#[inline]
pub fn swap_macs(frame: &mut [u8]) -> Result<(), Error> {
    let Some(h) = frame.first_chunk_mut::<12>() else {
        return Err(Error::Truncated);
    };
    let (a, b) = h.split_at_mut(6);
    a.swap_with_slice(b);
    Ok(())
}

#[inline]
fn be16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

#[inline]
fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}
