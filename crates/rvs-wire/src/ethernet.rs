//! Ethernet II frames with up to two 802.1Q / 802.1ad VLAN tags.
//!
//! The director, like the kernel's `eth_type_trans` + `vlan_do_receive`
//! path, accepts C-tagged (0x8100) and S-tagged (0x88a8) frames; QinQ
//! (802.1ad outer, 802.1Q inner) is two tags. A third tag is refused.

use crate::Error;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q (customer) VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad (service, QinQ) VLAN tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const TAG_LEN: usize = 4;
/// Most VLAN tags accepted in one frame.
pub const MAX_TAGS: usize = 2;

/// Layer-2 summary of a frame: where layer 3 starts and what it is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct L2 {
    /// Offset of the layer-3 header (14, 18 or 22).
    pub len: usize,
    /// EtherType of the layer-3 payload (after the tags).
    pub ethertype: u16,
    /// TCI of the outermost VLAN tag.
    pub vlan: Option<u16>,
}

/// Walks the Ethernet header and its VLAN tags.
///
/// Fails with [`Error::Truncated`] when a header is cut short and
/// [`Error::Unsupported`] for more than [`MAX_TAGS`] tags.
#[inline]
pub fn walk(frame: &[u8]) -> Result<L2, Error> {
    let Some(h) = frame.first_chunk::<HEADER_LEN>() else {
        return Err(Error::Truncated);
    };
    let mut ethertype = u16::from_be_bytes([h[12], h[13]]);
    if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
        return Ok(L2 {
            len: HEADER_LEN,
            ethertype,
            vlan: None,
        });
    }
    let mut len = HEADER_LEN;
    let mut vlan = None;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        if tags == MAX_TAGS {
            return Err(Error::Unsupported);
        }
        let Some(t) = frame.get(len..len + TAG_LEN) else {
            return Err(Error::Truncated);
        };
        let tci = u16::from_be_bytes([t[0], t[1]]);
        vlan.get_or_insert(tci);
        ethertype = u16::from_be_bytes([t[2], t[3]]);
        len += TAG_LEN;
        tags += 1;
    }
    Ok(L2 {
        len,
        ethertype,
        vlan,
    })
}

/// A read/write view of an Ethernet header (smoltcp `EthernetFrame` style).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length; accessors may panic on a
    /// short buffer. Use [`Self::new_checked`] for untrusted input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the untagged header fits; no accessor panics afterwards.
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

    /// Destination MAC address.
    pub fn dst_addr(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[0..6])
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[6..12])
    }

    /// The EtherType field right after the MACs (a VLAN TPID when tagged).
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }

    /// Bytes after the untagged header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[0..6].copy_from_slice(&a);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[6..12].copy_from_slice(&a);
    }

    /// Sets the EtherType field right after the MACs.
    pub fn set_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[12..14].copy_from_slice(&t.to_be_bytes());
    }
}

fn mac(b: &[u8]) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(b);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNTAGGED: [u8; 16] = [
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0,
    ];
    static QINQ: [u8; 24] = [
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x20, 0xc8,
        0x86, 0xdd, 0x60, 0,
    ];

    #[test]
    fn untagged() {
        let l2 = walk(&UNTAGGED).unwrap();
        assert_eq!((l2.len, l2.ethertype, l2.vlan), (14, 0x0800, None));
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn two_tags_outer_tci_kept() {
        let l2 = walk(&QINQ).unwrap();
        assert_eq!((l2.len, l2.ethertype, l2.vlan), (22, 0x86dd, Some(100)));
    }

    #[test]
    fn three_tags_and_truncation() {
        let mut f = QINQ.to_vec();
        f[20] = 0x81;
        f[21] = 0x00;
        f.extend_from_slice(&[0, 1, 8, 0]);
        assert_eq!(walk(&f), Err(Error::Unsupported));
        assert_eq!(walk(&QINQ[..19]), Err(Error::Truncated));
        assert_eq!(walk(&UNTAGGED[..13]), Err(Error::Truncated));
        assert!(Frame::new_checked(&UNTAGGED[..10]).is_err());
    }

    #[test]
    fn setters() {
        let mut b = UNTAGGED;
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr([1; 6]);
        f.set_src_addr([3; 6]);
        f.set_ethertype(ETHERTYPE_IPV6);
        assert_eq!(&b[..14], &[1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 0x86, 0xdd]);
    }
}
