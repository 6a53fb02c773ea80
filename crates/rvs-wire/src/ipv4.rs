//! IPv4 headers (RFC 791), options included, with the header checksum.
//!
//! Parsing follows the kernel's `ip_rcv_core` checks: version 4, IHL at
//! least 5, total length at least the header and at most the frame, and a
//! header checksum that verifies.

use crate::{Error, checksum};
use rvs_types::{Addr, Proto};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// "Don't fragment" flag in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// "More fragments" flag.
pub const FLAG_MF: u16 = 0x2000;
/// Mask of the fragment offset (in 8-byte units).
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
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

    /// Checks version, IHL and total length against the buffer, as
    /// `ip_rcv_core` does. After it succeeds no accessor panics.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        if total > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    /// The DSCP/ECN byte (old TOS).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        self.be16(2)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        self.be16(4)
    }

    /// Flags and fragment offset word.
    pub fn frag_word(&self) -> u16 {
        self.be16(6)
    }

    /// Whether DF is set.
    pub fn dont_frag(&self) -> bool {
        self.frag_word() & FLAG_DF != 0
    }

    /// Whether MF is set.
    pub fn more_frags(&self) -> bool {
        self.frag_word() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.frag_word() & FRAG_OFFSET_MASK) * 8
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> Proto {
        Proto(self.buffer.as_ref()[9])
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(10)
    }

    /// Source address.
    pub fn src_addr(&self) -> Addr {
        let b = self.buffer.as_ref();
        Addr::v4([b[12], b[13], b[14], b[15]])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Addr {
        let b = self.buffer.as_ref();
        Addr::v4([b[16], b[17], b[18], b[19]])
    }

    /// Options bytes (between the fixed header and the payload).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(checksum::sum(&self.buffer.as_ref()[..self.header_len()]))
    }

    /// The payload, up to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    fn be16(&self, off: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[off], b[off + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length (bytes, multiple of 4).
    pub fn set_version_and_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[0] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.set16(2, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        self.set16(4, v);
    }

    /// Sets the flags/fragment-offset word.
    pub fn set_frag_word(&mut self, v: u16) {
        self.set16(6, v);
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[8] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: Proto) {
        self.buffer.as_mut()[9] = p.0;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set16(10, v);
    }

    /// Sets the source address (IPv4-mapped [`Addr`]).
    pub fn set_src_addr(&mut self, a: Addr) {
        self.buffer.as_mut()[12..16].copy_from_slice(&a.octets4());
    }

    /// Sets the destination address (IPv4-mapped [`Addr`]).
    pub fn set_dst_addr(&mut self, a: Addr) {
        self.buffer.as_mut()[16..20].copy_from_slice(&a.octets4());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    fn set16(&mut self, off: usize, v: u16) {
        self.buffer.as_mut()[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, total 0x73, checksum b861.
    static HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x14, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0xc0, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 20);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), Proto::UDP);
        assert_eq!(p.src_addr(), Addr::v4([192, 168, 0, 1]));
        assert_eq!(p.dst_addr(), Addr::v4([192, 168, 0, 199]));
        // b861 is for total length 0x73; with 0x14 the sum drops by 0x5f.
        assert!(p.verify_checksum());
        assert!(p.options().is_empty());
        assert!(p.payload().is_empty());
    }

    #[test]
    fn construct_and_fill() {
        let mut b = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_and_len(20);
        p.set_total_len(20);
        p.set_frag_word(FLAG_DF);
        p.set_ttl(64);
        p.set_protocol(Proto::UDP);
        p.set_src_addr(Addr::v4([192, 168, 0, 1]));
        p.set_dst_addr(Addr::v4([192, 168, 0, 199]));
        p.fill_checksum();
        assert_eq!(b, HEADER);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut b = HEADER;
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x46;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Truncated));
        let mut b = HEADER;
        b[3] = 0x13;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[3] = 0x15;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&HEADER[..19]), Err(Error::Truncated));
    }
}
