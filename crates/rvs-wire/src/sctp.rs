//! SCTP common header (RFC 9260 §3.1) and its CRC32c checksum.

use crate::{Error, checksum};

/// Length of the common header.
pub const HEADER_LEN: usize = 12;
/// Offset of the checksum field.
pub const CHECKSUM_OFF: usize = 8;

/// A read/write view of an SCTP packet (common header + chunks).
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

    /// Checks the common header fits.
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// Checksum field as stored (little-endian CRC32c, RFC 9260 appendix A).
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }

    /// Type of the first chunk, if any (INIT is 1, as `sctp_conn_schedule`
    /// checks before scheduling).
    pub fn first_chunk_type(&self) -> Option<u8> {
        self.buffer.as_ref().get(HEADER_LEN).copied()
    }

    /// Whether the CRC32c over the whole buffer verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::sctp_crc32c(self.buffer.as_ref()) == self.checksum()
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

    /// Sets the verification tag.
    pub fn set_verification_tag(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the CRC32c over the whole buffer (there is no incremental
    /// form; IPVS's `sctp_nat_csum` recomputes too).
    pub fn fill_checksum(&mut self) {
        let c = checksum::sctp_crc32c(self.buffer.as_ref());
        self.buffer.as_mut()[8..12].copy_from_slice(&c.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deconstruct_and_fill() {
        // 5000 -> 80, vtag 0, one INIT chunk header stub.
        let mut b = [
            0x13, 0x88, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x04,
        ];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (5000, 80));
        assert_eq!(p.first_chunk_type(), Some(1));
        p.fill_checksum();
        assert!(p.verify_checksum());
        let mut zeroed = b;
        zeroed[8..12].fill(0);
        // Independent: the crc32c crate over the zeroed packet, stored LE.
        assert_eq!(&b[8..12], &crc32c::crc32c(&zeroed).to_le_bytes());
        assert_eq!(Packet::new_checked(&b[..11]), Err(Error::Truncated));
    }
}
