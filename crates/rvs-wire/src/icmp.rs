//! ICMP (RFC 792) and ICMPv6 (RFC 4443) headers, and building the
//! "fragmentation needed" / "packet too big" reply a router sends (IPVS
//! does so from `ip_vs_xmit.c` `ensure_mtu_is_adequate` through
//! `icmp_send` / `icmpv6_send`).

use crate::ethernet;
use crate::{Error, FrameBuf, PacketInfo, checksum};
use rvs_types::{Addr, Af, Proto};

/// Length of the ICMP/ICMPv6 header (type, code, checksum, 4 more bytes).
pub const HEADER_LEN: usize = 8;
/// ICMPv4 echo reply.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMPv4 destination unreachable.
pub const V4_DEST_UNREACH: u8 = 3;
/// ICMPv4 source quench.
pub const V4_SOURCE_QUENCH: u8 = 4;
/// ICMPv4 redirect.
pub const V4_REDIRECT: u8 = 5;
/// ICMPv4 echo request.
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 time exceeded.
pub const V4_TIME_EXCEEDED: u8 = 11;
/// ICMPv4 parameter problem.
pub const V4_PARAM_PROBLEM: u8 = 12;
/// Code of "fragmentation needed and DF set" under destination unreachable.
pub const V4_CODE_FRAG_NEEDED: u8 = 4;
/// ICMPv6 destination unreachable.
pub const V6_DEST_UNREACH: u8 = 1;
/// ICMPv6 packet too big.
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 time exceeded.
pub const V6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 parameter problem.
pub const V6_PARAM_PROBLEM: u8 = 4;
/// ICMPv6 echo request.
pub const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const V6_ECHO_REPLY: u8 = 129;
/// Largest ICMPv4 error datagram (RFC 1812 §4.3.2.3: 576 bytes).
pub const V4_MAX_ERROR_LEN: usize = 576;
/// Largest ICMPv6 error packet (RFC 4443 §2.4(c): the minimum MTU, 1280).
pub const V6_MAX_ERROR_LEN: usize = 1280;

/// Whether an ICMPv4 type is an error that quotes a packet (the kernel's
/// `icmp_is_err` list used by `ip_vs_in_icmp`).
#[inline]
pub fn is_error_v4(ty: u8) -> bool {
    matches!(
        ty,
        V4_DEST_UNREACH | V4_SOURCE_QUENCH | V4_REDIRECT | V4_TIME_EXCEEDED | V4_PARAM_PROBLEM
    )
}

/// Whether an ICMPv6 type is an error that quotes a packet (types 1-4).
#[inline]
pub fn is_error_v6(ty: u8) -> bool {
    (V6_DEST_UNREACH..=V6_PARAM_PROBLEM).contains(&ty)
}

/// Whether a type is an echo request/reply of the given family.
#[inline]
pub fn is_echo(af: Af, ty: u8) -> bool {
    match af {
        Af::V4 => ty == V4_ECHO_REQUEST || ty == V4_ECHO_REPLY,
        Af::V6 => ty == V6_ECHO_REQUEST || ty == V6_ECHO_REPLY,
    }
}

/// A read/write view of an ICMP or ICMPv6 message (same header layout).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the 8-byte header fits.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(2)
    }

    /// Echo identifier (bytes 4-5).
    pub fn echo_ident(&self) -> u16 {
        self.be16(4)
    }

    /// Echo sequence number (bytes 6-7).
    pub fn echo_seq(&self) -> u16 {
        self.be16(6)
    }

    /// Next-hop MTU of an ICMPv4 "fragmentation needed" (bytes 6-7).
    pub fn v4_next_hop_mtu(&self) -> u16 {
        self.be16(6)
    }

    /// MTU of an ICMPv6 "packet too big" (bytes 4-7).
    pub fn v6_mtu(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// Bytes after the 8-byte header (the quoted packet of an error).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    fn be16(&self, off: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[off], b[off + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets type and code.
    pub fn set_type_code(&mut self, ty: u8, code: u8) {
        let b = self.buffer.as_mut();
        b[0] = ty;
        b[1] = code;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets bytes 4-7 (echo id/seq, MTU, pointer, or unused).
    pub fn set_rest(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes an ICMPv4 checksum over the whole buffer.
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Recomputes an ICMPv6 checksum over the whole buffer with the
    /// pseudo header of `src` and `dst` (RFC 4443 §2.3).
    pub fn fill_checksum_v6(&mut self, src: &Addr, dst: &Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let s = checksum::pseudo(src, dst, Proto::ICMPV6, b.len() as u32);
        let c = checksum::finish(checksum::add(s, checksum::sum(b)));
        self.set_checksum(c);
    }
}

/// Turns the IP frame in `buf` (described by `info`) in place into the
/// ICMP error a router sends back when the packet is too big for the next
/// hop: ICMPv4 type 3 code 4 with the next-hop MTU (RFC 1191), or ICMPv6
/// type 2 with the MTU (RFC 4443 §3.2). See [`build_icmp_error`] for the
/// shape of the reply and the errors.
pub fn build_too_big(
    buf: &mut FrameBuf<'_>,
    info: &PacketInfo,
    mtu: u32,
    src: Addr,
) -> Result<(), Error> {
    match info.af {
        Af::V4 => build_icmp_error(
            buf,
            info,
            V4_DEST_UNREACH,
            V4_CODE_FRAG_NEEDED,
            mtu.min(0xffff),
            src,
        ),
        Af::V6 => build_icmp_error(buf, info, V6_PACKET_TOO_BIG, 0, mtu, src),
    }
}

/// Turns the frame into a "destination unreachable" (ICMPv4 type 3 /
/// ICMPv6 type 1) with `code` of the packet's family (for example 3 / 4
/// for "port unreachable"), as IPVS sends with `icmp_send` when no real
/// server is available and `ip_vs_leave` rejects the packet. See
/// [`build_icmp_error`].
pub fn build_unreachable(
    buf: &mut FrameBuf<'_>,
    info: &PacketInfo,
    code: u8,
    src: Addr,
) -> Result<(), Error> {
    let ty = match info.af {
        Af::V4 => V4_DEST_UNREACH,
        Af::V6 => V6_DEST_UNREACH,
    };
    build_icmp_error(buf, info, ty, code, 0, src)
}

/// Turns the IP frame in `buf` (described by `info`) in place into an ICMP
/// error of type `ty`, code `code` and bytes 4-7 `rest`, (ICMPv6 for an
/// IPv6 packet) from `src` to `info.src`, quoting the original packet.
///
/// The reply quotes as much of the original IP packet as fits in 576 bytes
/// (IPv4, RFC 1812 §4.3.2.3) or 1280 bytes (IPv6, RFC 4443 §2.4), has TTL /
/// hop limit 64, no IPv4 options, the MACs swapped and VLAN tags kept, and
/// valid checksums. Like `icmp_send`, the IPv4 TOS is the original's with
/// precedence "internetwork control" (`(tos & 0x1e) | 0xc0`) and DF is
/// clear.
///
/// The frame grows into tailroom if it can, else into headroom; fails with
/// [`Error::NoRoom`] when neither suffices, [`Error::Unsupported`] when
/// `src` is not of the packet's family. Whether an error should be sent at
/// all (not for ICMP errors, later fragments, broadcasts) is the caller's
/// policy, as in the kernel's `icmp_send` checks.
pub fn build_icmp_error(
    buf: &mut FrameBuf<'_>,
    info: &PacketInfo,
    ty: u8,
    code: u8,
    rest: u32,
    src: Addr,
) -> Result<(), Error> {
    let af = info.af;
    if src.af() != af {
        return Err(Error::Unsupported);
    }
    let l3_off = usize::from(info.l3_off);
    let (hdr_len, max_len) = match af {
        Af::V4 => (20 + HEADER_LEN, V4_MAX_ERROR_LEN),
        Af::V6 => (40 + HEADER_LEN, V6_MAX_ERROR_LEN),
    };
    if buf.len() < info.l3_end() || l3_off < ethernet::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let quote = usize::from(info.l3_len).min(max_len - hdr_len);
    let new_len = l3_off + hdr_len + quote;
    // Make room: move the quote back into tailroom, or the L2 header forward
    // into headroom.
    if new_len <= buf.len() + buf.tailroom() {
        if new_len > buf.len() {
            buf.set_len(new_len)?;
        }
        buf.data_mut()
            .copy_within(l3_off..l3_off + quote, l3_off + hdr_len);
    } else if buf.headroom() >= hdr_len {
        buf.push_front(hdr_len)?;
        buf.data_mut().copy_within(hdr_len..hdr_len + l3_off, 0);
    } else {
        return Err(Error::NoRoom);
    }
    buf.set_len(new_len)?;
    let frame = buf.data_mut();
    crate::rewrite::swap_macs(frame)?;
    let Some(l3) = frame.get_mut(l3_off..new_len) else {
        return Err(Error::Truncated);
    };
    let (ip, msg) = l3.split_at_mut(hdr_len - HEADER_LEN);
    match af {
        Af::V4 => {
            let mut p = crate::ipv4::Packet::new_unchecked(&mut *ip);
            let tos = info_tos_v4(msg);
            p.set_version_and_len(20);
            p.set_tos(tos);
            p.set_total_len((hdr_len + quote) as u16);
            p.set_ident(0);
            p.set_frag_word(0);
            p.set_ttl(64);
            p.set_protocol(Proto::ICMP);
            p.set_src_addr(src);
            p.set_dst_addr(info.src);
            p.fill_checksum();
            let mut m = Packet::new_unchecked(msg);
            m.set_type_code(ty, code);
            m.set_rest(rest);
            m.fill_checksum_v4();
        }
        Af::V6 => {
            let mut p = crate::ipv6::Packet::new_unchecked(&mut *ip);
            p.set_version_tc_flow(0, 0);
            p.set_payload_len((HEADER_LEN + quote) as u16);
            p.set_next_header(Proto::ICMPV6.0);
            p.set_hop_limit(64);
            p.set_src_addr(src);
            p.set_dst_addr(info.src);
            let mut m = Packet::new_unchecked(msg);
            m.set_type_code(ty, code);
            m.set_rest(rest);
            m.fill_checksum_v6(&src, &info.src);
        }
    }
    Ok(())
}

/// TOS of the ICMP error, from the quoted IPv4 header at `msg[8..]`
/// (`icmp_send`: `RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL`).
fn info_tos_v4(msg: &[u8]) -> u8 {
    let orig = msg.get(HEADER_LEN + 1).copied().unwrap_or(0);
    (orig & 0x1e) | 0xc0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request id 0x1234 seq 1, "hi", checksum by hand:
    // 0800 + 0000 + 1234 + 0001 + 6869 = 0x829e -> ~ = 0x7d61.
    static ECHO: [u8; 10] = [8, 0, 0x7d, 0x61, 0x12, 0x34, 0x00, 0x01, b'h', b'i'];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.checksum()), (8, 0, 0x7d61));
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        assert_eq!(p.payload(), b"hi");
        assert!(is_echo(Af::V4, p.msg_type()));
        assert!(!is_error_v4(p.msg_type()));
        assert!(is_error_v4(3) && is_error_v4(11) && is_error_v4(12) && is_error_v4(4));
        assert!(is_error_v6(1) && is_error_v6(4) && !is_error_v6(128));
    }

    #[test]
    fn construct_echo() {
        let mut b = ECHO;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_type_code(8, 0);
        p.set_rest(0x1234_0001);
        p.fill_checksum_v4();
        assert_eq!(b, ECHO);
    }
}
