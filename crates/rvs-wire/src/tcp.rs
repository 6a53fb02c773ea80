//! TCP headers (RFC 9293): the fields a layer-4 director reads or rewrites.

use crate::Error;

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM_OFF: usize = 16;
/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// PSH flag.
pub const PSH: u8 = 0x08;
/// ACK flag.
pub const ACK: u8 = 0x10;

/// A read/write view of a TCP segment.
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

    /// Checks the fixed header and the data offset (at least 5 words, as
    /// `tcp_v4_rcv` requires, and within the buffer).
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if self.header_len() > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.be16(0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.be16(2)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        self.be32(4)
    }

    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        self.be32(8)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    /// Flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }

    /// Window.
    pub fn window(&self) -> u16 {
        self.be16(14)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(CHECKSUM_OFF)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        self.be16(18)
    }

    /// Options.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    fn be16(&self, off: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[off], b[off + 1]])
    }

    fn be32(&self, off: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (checksum untouched).
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[0..2].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the destination port (checksum untouched).
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the acknowledgement number.
    pub fn set_ack(&mut self, v: u32) {
        self.buffer.as_mut()[8..12].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the data offset (header length in bytes, multiple of 4) and flags.
    pub fn set_header_len_flags(&mut self, header_len: usize, flags: u8) {
        let b = self.buffer.as_mut();
        b[12] = ((header_len / 4) as u8) << 4;
        b[13] = flags;
    }

    /// Sets the window.
    pub fn set_window(&mut self, v: u16) {
        self.buffer.as_mut()[14..16].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[16..18].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1234 -> 80, seq 1, ack 0, data offset 6 (MSS option 1460), SYN.
    static SEGMENT: [u8; 24] = [
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0xab, 0xcd, 0, 0,
        0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1234, 80));
        assert_eq!((p.seq(), p.ack()), (1, 0));
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), SYN);
        assert_eq!(p.window(), 0xffff);
        assert_eq!(p.checksum(), 0xabcd);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1234);
        p.set_dst_port(80);
        p.set_seq(1);
        p.set_ack(0);
        p.set_header_len_flags(24, SYN);
        p.set_window(0xffff);
        p.set_checksum(0xabcd);
        b[20..24].copy_from_slice(&[2, 4, 5, 0xb4]);
        assert_eq!(b, SEGMENT);
    }

    #[test]
    fn rejects() {
        let mut b = SEGMENT;
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&SEGMENT[..23]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&SEGMENT[..19]), Err(Error::Truncated));
    }
}
