//! Generic UDP Encapsulation headers (draft-ietf-intarea-gue), as IPVS's GUE
//! tunnel type (`ipvs_gue_encap`, Linux 5.2) and the kernel's `fou`
//! receiver (`gue_udp_recv`) use them.
//!
//! Variant 0 carries a 4-byte header (version 0, C bit, header-length in
//! words, proto/ctype, flags) and optional fields; variant 1 is the IP
//! packet directly after the UDP header (its first nibble, 4 or 6, makes the
//! two top bits read `01`).

use crate::Error;

/// Length of the variant-0 base header.
pub const BASE_LEN: usize = 4;

/// A read/write view of a variant-0 GUE header and its payload.
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

    /// Checks the base header and the optional fields fit.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < BASE_LEN {
            return Err(Error::Truncated);
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

    /// Variant (top two bits): 0, or 1 for direct IP encapsulation.
    pub fn variant(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }

    /// Whether this is a control message (C bit).
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[0] & 0x20 != 0
    }

    /// Length of the optional fields in bytes (Hlen × 4).
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x1f) * 4
    }

    /// Header length including optional fields.
    pub fn header_len(&self) -> usize {
        BASE_LEN + self.options_len()
    }

    /// Proto/ctype: the IP protocol of the payload (4 or 41 here).
    pub fn proto_ctype(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Flags.
    pub fn flags(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The encapsulated packet.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a variant-0 data header without options for payload protocol
    /// `proto` (as `ipvs_gue_encap` does without remote checksum offload).
    pub fn emit(&mut self, proto: u8) {
        self.buffer.as_mut()[0..4].copy_from_slice(&[0, proto, 0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deconstruct() {
        let b = [0x01, 41, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0x60];
        let g = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((g.variant(), g.is_control(), g.header_len()), (0, false, 8));
        assert_eq!((g.proto_ctype(), g.flags()), (41, 0));
        assert_eq!(g.payload(), &[0x60]);
        assert_eq!(Packet::new_checked(&b[..7]), Err(Error::Truncated));
        let v1 = [0x45, 0, 0, 20];
        assert_eq!(Packet::new_unchecked(&v1[..]).variant(), 1);
    }

    #[test]
    fn construct() {
        let mut b = [0xffu8; 4];
        Packet::new_unchecked(&mut b[..]).emit(4);
        assert_eq!(b, [0, 4, 0, 0]);
    }
}
