//! GRE headers (RFC 2784 with the RFC 2890 key and sequence extensions), as
//! IPVS's GRE tunnel type (`ipvs_gre_encap`, Linux 5.3) builds them.

use crate::{Error, checksum};

/// Checksum-present flag.
pub const FLAG_C: u16 = 0x8000;
/// Routing-present flag (RFC 1701; refused).
pub const FLAG_R: u16 = 0x4000;
/// Key-present flag.
pub const FLAG_K: u16 = 0x2000;
/// Sequence-number-present flag.
pub const FLAG_S: u16 = 0x1000;
/// Length of the base header.
pub const BASE_LEN: usize = 4;

/// A read/write view of a GRE header and its payload.
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

    /// Checks version 0, no routing, and that the optional fields fit
    /// (`gre_parse_header` refuses the same).
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < BASE_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 0 || self.flags() & FLAG_R != 0 {
            return Err(Error::Unsupported);
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

    /// Flags and version word.
    pub fn flags(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Version (must be 0).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x07
    }

    /// Protocol type (EtherType of the payload).
    pub fn protocol(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// Header length including the optional fields present.
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        BASE_LEN
            + if f & FLAG_C != 0 { 4 } else { 0 }
            + if f & FLAG_K != 0 { 4 } else { 0 }
            + if f & FLAG_S != 0 { 4 } else { 0 }
    }

    /// The checksum, if present.
    pub fn checksum(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        (self.flags() & FLAG_C != 0).then(|| u16::from_be_bytes([b[4], b[5]]))
    }

    /// The key, if present.
    pub fn key(&self) -> Option<u32> {
        let b = self.buffer.as_ref();
        let off = if self.flags() & FLAG_C != 0 { 8 } else { 4 };
        (self.flags() & FLAG_K != 0)
            .then(|| u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]))
    }

    /// Whether the checksum (over header and payload) verifies; true when
    /// there is none.
    pub fn verify_checksum(&self) -> bool {
        self.checksum().is_none() || checksum::verifies(checksum::sum(self.buffer.as_ref()))
    }

    /// The encapsulated packet.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a header with the given options (sequence numbers are never
    /// written; IPVS does not use them) and returns its length. The buffer
    /// must hold the header and the payload behind it; when `csum` is set
    /// the checksum is computed over both.
    pub fn emit(&mut self, protocol: u16, csum: bool, key: Option<u32>) -> usize {
        let flags = if csum { FLAG_C } else { 0 } | if key.is_some() { FLAG_K } else { 0 };
        let b = self.buffer.as_mut();
        b[0..2].copy_from_slice(&flags.to_be_bytes());
        b[2..4].copy_from_slice(&protocol.to_be_bytes());
        let mut off = BASE_LEN;
        if csum {
            b[4..8].fill(0);
            off += 4;
        }
        if let Some(k) = key {
            b[off..off + 4].copy_from_slice(&k.to_be_bytes());
            off += 4;
        }
        if csum {
            let c = checksum::checksum(b);
            b[4..6].copy_from_slice(&c.to_be_bytes());
        }
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_keyed() {
        let p = [0x00, 0x00, 0x08, 0x00, 0x45];
        let g = Packet::new_checked(&p[..]).unwrap();
        assert_eq!((g.protocol(), g.header_len(), g.key()), (0x0800, 4, None));
        assert_eq!(g.payload(), &[0x45]);
        let k = [0x20, 0x00, 0x86, 0xdd, 0, 0, 0, 42, 0x60];
        let g = Packet::new_checked(&k[..]).unwrap();
        assert_eq!(
            (g.protocol(), g.header_len(), g.key()),
            (0x86dd, 8, Some(42))
        );
        assert_eq!(Packet::new_checked(&k[..7]), Err(Error::Truncated));
        let v1 = [0x00, 0x01, 0x08, 0x00];
        assert_eq!(Packet::new_checked(&v1[..]), Err(Error::Unsupported));
    }

    #[test]
    fn checksum_emit() {
        // C + K, payload 0x45 0x00: checksum by hand over
        // a000 0800 0000 0000 0000 0007 4500 = 0xed07 -> ~ = 0x12f8.
        let mut b = [0u8; 14];
        b[12] = 0x45;
        let n = Packet::new_unchecked(&mut b[..]).emit(0x0800, true, Some(7));
        assert_eq!(n, 12);
        assert_eq!(&b[..12], &[0xa0, 0, 8, 0, 0x12, 0xf8, 0, 0, 0, 0, 0, 7]);
        assert!(Packet::new_checked(&b[..]).unwrap().verify_checksum());
        b[13] = 1;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }
}
