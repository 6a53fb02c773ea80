//! IPv6 headers (RFC 8200) and the extension-header walk.
//!
//! The walk mirrors the kernel's `ipv6_skip_exthdr` / `ipv6_find_hdr` as
//! IPVS uses it (`ip_vs_fill_iph_skb_off`): hop-by-hop (0), routing (43) and
//! destination-options (60) headers are skipped, the Fragment header (44) is
//! recognised, and the walk is bounded at [`MAX_EXT_HEADERS`].

use crate::Error;
use rvs_types::{Addr, Proto};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Next-header value of hop-by-hop options.
pub const NH_HOP_BY_HOP: u8 = 0;
/// Next-header value of the routing header.
pub const NH_ROUTING: u8 = 43;
/// Next-header value of the fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Next-header value of destination options.
pub const NH_DEST_OPTS: u8 = 60;
/// Next-header value meaning "no next header".
pub const NH_NONE: u8 = 59;
/// Most extension headers walked before giving up with
/// [`Error::Unsupported`].
pub const MAX_EXT_HEADERS: usize = 8;

/// A read/write view of an IPv6 packet.
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

    /// Checks version 6 and that the payload length fits the buffer (as
    /// `ipv6_rcv` does). After it succeeds no accessor panics.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    pub fn src_addr(&self) -> Addr {
        Addr::v6(arr16(&self.buffer.as_ref()[8..24]))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Addr {
        Addr::v6(arr16(&self.buffer.as_ref()[24..40]))
    }

    /// Everything after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let w = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0x000f_ffff);
        self.buffer.as_mut()[0..4].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[6] = v;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[7] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.0);
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a.0);
    }
}

/// Result of walking the extension headers of an IPv6 packet.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ExtWalk {
    /// Upper-layer protocol (the first next-header value that is not a
    /// skipped extension header).
    pub proto: Proto,
    /// Offset of the upper-layer header, relative to the IPv6 header.
    pub l4_off: usize,
    /// Fragment header found: `(offset in bytes, more fragments)`.
    pub frag: Option<(usize, bool)>,
}

/// Walks the extension headers of `pkt` (an IPv6 packet starting with its
/// fixed header, cut at its payload length).
///
/// Stops at the first header that is not hop-by-hop, routing, destination
/// options or fragment, or right after a Fragment header with a non-zero
/// offset (the rest belongs to the first fragment). A header that runs past
/// the packet gives [`Error::Truncated`]; more than [`MAX_EXT_HEADERS`]
/// headers give [`Error::Unsupported`].
#[inline]
pub fn walk_ext(pkt: &[u8]) -> Result<ExtWalk, Error> {
    let Some(h) = pkt.first_chunk::<HEADER_LEN>() else {
        return Err(Error::Truncated);
    };
    let mut nh = h[6];
    let mut off = HEADER_LEN;
    let mut frag = None;
    let mut count = 0;
    loop {
        match nh {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                let Some(e) = pkt.get(off..off + 2) else {
                    return Err(Error::Truncated);
                };
                let len = (usize::from(e[1]) + 1) * 8;
                if off + len > pkt.len() {
                    return Err(Error::Truncated);
                }
                nh = e[0];
                off += len;
            }
            NH_FRAGMENT => {
                let Some(e) = pkt.get(off..off + 8) else {
                    return Err(Error::Truncated);
                };
                let w = u16::from_be_bytes([e[2], e[3]]);
                let offset = usize::from(w >> 3) * 8;
                frag = Some((offset, w & 1 != 0));
                nh = e[0];
                off += 8;
                if offset != 0 {
                    count += 1;
                    if count > MAX_EXT_HEADERS {
                        return Err(Error::Unsupported);
                    }
                    break;
                }
            }
            _ => break,
        }
        count += 1;
        if count > MAX_EXT_HEADERS {
            return Err(Error::Unsupported);
        }
    }
    Ok(ExtWalk {
        proto: Proto(nh),
        l4_off: off,
        frag,
    })
}

fn arr16(b: &[u8]) -> [u8; 16] {
    let mut a = [0; 16];
    a.copy_from_slice(b);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2001:db8::1 -> 2001:db8::2, hop-by-hop (8 bytes, PadN) then a fragment
    // header (offset 0, M=1) then UDP (8 bytes).
    static PACKET: [u8; 64] = [
        0x60, 0x12, 0x34, 0x56, 0x00, 0x18, 0x00, 0x40, // ver/tc/flow, plen 24, nh 0, hl 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst
        44, 0, 1, 4, 0, 0, 0, 0, // HBH: nh=44, len 0, PadN(4)
        17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, // frag: nh=17, off 0, M=1, id
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x01);
        assert_eq!(p.flow_label(), 0x23456);
        assert_eq!(p.payload_len(), 24);
        assert_eq!(p.next_header(), 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr().to_string(), "2001:db8::1");
        assert_eq!(p.dst_addr().to_string(), "2001:db8::2");
    }

    #[test]
    fn walks_to_udp_through_fragment() {
        let w = walk_ext(&PACKET).unwrap();
        assert_eq!(w.proto, Proto::UDP);
        assert_eq!(w.l4_off, 56);
        assert_eq!(w.frag, Some((0, true)));
    }

    #[test]
    fn later_fragment_stops_walk() {
        let mut p = PACKET;
        p[50] = 0x00;
        p[51] = 0xb8; // offset 23*8 = 184, M=0
        let w = walk_ext(&p).unwrap();
        assert_eq!(
            (w.proto, w.l4_off, w.frag),
            (Proto::UDP, 56, Some((184, false)))
        );
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(0x01, 0x23456);
        p.set_payload_len(24);
        p.set_next_header(0);
        p.set_hop_limit(64);
        p.set_src_addr(Packet::new_unchecked(&PACKET[..]).src_addr());
        p.set_dst_addr(Packet::new_unchecked(&PACKET[..]).dst_addr());
        assert_eq!(&b[..], &PACKET[..40]);
    }

    #[test]
    fn bounded_and_truncated() {
        // Nine destination-options headers: refused.
        let mut p = PACKET[..40].to_vec();
        p[6] = NH_DEST_OPTS;
        for i in 0..9 {
            p.extend_from_slice(&[if i == 8 { 6 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(walk_ext(&p), Err(Error::Unsupported));
        // Eight are fine.
        let mut q = PACKET[..40].to_vec();
        q[6] = NH_DEST_OPTS;
        for i in 0..8 {
            q.extend_from_slice(&[if i == 7 { 6 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(walk_ext(&q).unwrap().l4_off, 40 + 64);
        assert_eq!(walk_ext(&PACKET[..47]), Err(Error::Truncated));
        assert_eq!(walk_ext(&PACKET[..41]), Err(Error::Truncated));
        let mut bad = PACKET;
        bad[0] = 0x40;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&PACKET[..63]), Err(Error::Truncated));
    }
}
