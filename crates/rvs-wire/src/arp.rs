//! ARP packets (RFC 826) for Ethernet/IPv4, the only kind the director
//! answers or inspects (it leaves ARP to the kernel, like IPVS does).

use crate::Error;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request.
pub const OP_REQUEST: u16 = 1;
/// ARP reply.
pub const OP_REPLY: u16 = 2;

/// A read/write view of an Ethernet/IPv4 ARP packet.
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

    /// Checks the length, and that this is Ethernet (1) / IPv4 (0x0800)
    /// with 6-byte and 4-byte addresses ([`Error::Unsupported`] otherwise).
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if b[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Operation (request 1, reply 2).
    pub fn operation(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        arr(&self.buffer.as_ref()[8..14])
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        arr(&self.buffer.as_ref()[14..18])
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> [u8; 6] {
        arr(&self.buffer.as_ref()[18..24])
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        arr(&self.buffer.as_ref()[24..28])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 hardware and protocol fields.
    pub fn set_ethernet_ipv4(&mut self) {
        self.buffer.as_mut()[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        self.buffer.as_mut()[6..8].copy_from_slice(&op.to_be_bytes());
    }

    /// Sets the sender hardware and protocol addresses.
    pub fn set_sender(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[8..14].copy_from_slice(&mac);
        b[14..18].copy_from_slice(&ip);
    }

    /// Sets the target hardware and protocol addresses.
    pub fn set_target(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[18..24].copy_from_slice(&mac);
        b[24..28].copy_from_slice(&ip);
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(b);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 10.0.0.1 tell 10.0.0.2
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0, 0, 0, 0, 2, 10, 0, 0, 2, 0, 0, 0,
        0, 0, 0, 10, 0, 0, 1,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(p.sender_ip(), [10, 0, 0, 2]);
        assert_eq!(p.target_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_mac(), [0; 6]);
        assert_eq!(Packet::new_checked(&REQUEST[..27]), Err(Error::Truncated));
    }

    #[test]
    fn construct_reply() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_ethernet_ipv4();
        p.set_operation(OP_REPLY);
        p.set_sender([2, 0, 0, 0, 0, 1], [10, 0, 0, 1]);
        p.set_target([2, 0, 0, 0, 0, 2], [10, 0, 0, 2]);
        assert_eq!(&b[..8], &[0, 1, 8, 0, 6, 4, 0, 2]);
        assert_eq!(&b[14..18], &[10, 0, 0, 1]);
        assert_eq!(&b[24..28], &[10, 0, 0, 2]);
    }
}
