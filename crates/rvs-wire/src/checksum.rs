//! Internet checksum (RFC 1071) with incremental updates (RFC 1624), pseudo
//! headers, and SCTP's CRC32c (RFC 9260 appendix A).
//!
//! Sums are carried unfolded in a `u32` (or `u64` while summing long runs)
//! and folded only at the end, as the kernel's `csum_partial` /
//! `csum_fold` pair does. Incremental updates use RFC 1624 equation 3,
//! `HC' = ~(~HC + ~m + m')`, the form IPVS uses in `ip_vs_proto_tcp.c`
//! (`tcp_fast_csum_update`) through `inet_proto_csum_replace*`.
//!
//! A checksum field is only updated correctly when the changed bytes sit at
//! an even offset from the start of the checksummed data; every field this
//! crate rewrites does (addresses, ports, and the headers of a quoted packet
//! inside an ICMP message are all 16-bit aligned).

use rvs_types::{Addr, Proto};

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd final
/// byte is padded with zero), not yet folded.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Fold the 64-bit accumulator into 32 bits without losing carries.
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc as u32
}

/// [`sum`] for a fixed-size array whose length is a multiple of 4 (IPv4
/// headers, addresses): fully unrolled by the compiler.
#[inline(always)]
pub fn sum_array<const N: usize>(data: &[u8; N]) -> u32 {
    let mut acc: u64 = 0;
    let mut i = 0;
    while i + 4 <= N {
        acc += u64::from(u32::from_be_bytes([
            data[i],
            data[i + 1],
            data[i + 2],
            data[i + 3],
        ]));
        i += 4;
    }
    if i + 2 <= N {
        acc += u64::from(u16::from_be_bytes([data[i], data[i + 1]])) << 16;
        i += 2;
    }
    if i < N {
        acc += u64::from(data[i]) << 24;
    }
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    // Fold the 32-bit word sum to 16-bit words (still unfolded ones'
    // complement, as `sum` returns).
    (acc as u32 >> 16) + (acc as u32 & 0xffff)
}

/// Whether `data`, a header including its checksum field (IPv4: 20 bytes),
/// verifies: `verifies(sum_array(data))`, in fewer instructions (the IPv4
/// header check of every packet).
///
/// Folding a ones'-complement sum of a positive integer `S` gives the
/// value in `1..=0xffff` congruent to `S` modulo 0xffff, so the sum
/// verifies (folds to 0xffff) exactly when `S > 0` and `S % 0xffff == 0`,
/// and `S` may be any integer congruent to the sum of the 16-bit words: a
/// plain sum of the 32-bit words (`hi * 0x10000 + lo ≡ hi + lo`). In native
/// byte order, without the swaps: swapping the bytes of a word multiplies
/// it by 0x100 modulo 0xffff (RFC 1071 §2(B)), which is prime to 0xffff,
/// so divisibility is the same either way (and so is `S > 0`).
#[inline(always)]
pub fn verifies_array<const N: usize>(data: &[u8; N]) -> bool {
    const { assert!(N.is_multiple_of(4)) };
    let mut acc: u64 = 0;
    let mut i = 0;
    while i + 4 <= N {
        acc += u64::from(u32::from_ne_bytes([
            data[i],
            data[i + 1],
            data[i + 2],
            data[i + 3],
        ]));
        i += 4;
    }
    acc != 0 && acc.is_multiple_of(0xffff)
}

/// Adds two unfolded sums (ones'-complement addition with end-around carry).
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// Folds an unfolded sum to 16 bits (kernel `csum_fold` without the final
/// complement). A non-zero input never folds to zero.
#[inline]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for data whose unfolded sum is `s`:
/// `!fold(s)`.
#[inline]
pub fn finish(s: u32) -> u16 {
    !fold(s)
}

/// Full checksum of `data` (RFC 1071): the value to store in a zeroed
/// checksum field, or, over data that includes its checksum, `0` when the
/// checksum verifies.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Whether data including its checksum field verifies, given the unfolded
/// sum over it (plus any pseudo header).
#[inline]
pub fn verifies(s: u32) -> bool {
    fold(s) == 0xffff
}

/// RFC 1624 equation 3 for one 16-bit word: the new checksum after a word
/// changed from `old` to `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// [`update16`] for a 32-bit value (two adjacent aligned words).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!csum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

/// [`update16`] for an address change: 4 bytes for IPv4 (v4-mapped
/// [`Addr`]), 16 for IPv6, as `inet_proto_csum_replace4` /
/// `inet_proto_csum_replace16` do. Both addresses must be of one family.
#[inline]
pub fn update_addr(csum: u16, old: &Addr, new: &Addr) -> u16 {
    let mut d = Delta::new();
    d.addr(old, new);
    d.apply(csum)
}

/// Accumulated difference of several 16-bit word changes, applied to a
/// checksum at once (one fold instead of one per field).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Delta(u32);

impl Delta {
    /// No change.
    #[inline]
    pub const fn new() -> Self {
        Self(0)
    }

    /// Records that the word `old` became `new`.
    #[inline]
    pub fn word(&mut self, old: u16, new: u16) {
        self.0 = add(self.0, u32::from(!old) + u32::from(new));
    }

    /// Records that the even-aligned bytes `old` became `new` (equal length;
    /// an odd trailing byte is treated as the high byte of a word).
    #[inline]
    pub fn replace(&mut self, old: &[u8], new: &[u8]) {
        self.0 = add(self.0, !fold(sum(old)) as u32);
        self.0 = add(self.0, sum(new));
    }

    /// Records an address change. Both addresses must be of one family;
    /// the IPv4-mapped prefix cancels out, so this is exact for the 4-byte
    /// IPv4 wire form as well as for IPv6.
    #[inline]
    pub fn addr(&mut self, old: &Addr, new: &Addr) {
        if old.is_v4() && new.is_v4() {
            // Only the last four bytes differ: two words each.
            let o = u32::from_be_bytes(old.octets4());
            let n = u32::from_be_bytes(new.octets4());
            let d = ((o >> 16) ^ 0xffff) + ((o & 0xffff) ^ 0xffff) + (n >> 16) + (n & 0xffff);
            self.0 = add(self.0, d);
            return;
        }
        self.0 = add(self.0, u32::from(!fold(sum_array(&old.0))));
        self.0 = add(self.0, sum_array(&new.0));
    }

    /// Merges another delta into this one.
    #[inline]
    pub fn merge(&mut self, other: Self) {
        self.0 = add(self.0, other.0);
    }

    /// Whether nothing was recorded that changes a checksum.
    #[inline]
    pub fn is_zero(&self) -> bool {
        fold(self.0) == 0 || fold(self.0) == 0xffff
    }

    /// The checksum `csum` updated by this delta (RFC 1624 equation 3).
    #[inline]
    pub fn apply(&self, csum: u16) -> u16 {
        !fold(add(u32::from(!csum), self.0))
    }

    /// The same change as seen from the sum side (for folding into a
    /// running sum rather than a stored checksum).
    #[inline]
    pub fn raw(&self) -> u32 {
        self.0
    }
}

/// Unfolded sum of the IPv4 pseudo header (RFC 793 §3.1, RFC 768).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: Proto, len: u16) -> u32 {
    let s = u32::from(u16::from_be_bytes([src[0], src[1]]))
        + u32::from(u16::from_be_bytes([src[2], src[3]]))
        + u32::from(u16::from_be_bytes([dst[0], dst[1]]))
        + u32::from(u16::from_be_bytes([dst[2], dst[3]]));
    s + u32::from(proto.0) + u32::from(len)
}

/// Unfolded sum of the IPv6 pseudo header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: Proto, len: u32) -> u32 {
    let s = add(sum(src), sum(dst));
    add(s, (len >> 16) + (len & 0xffff) + u32::from(proto.0))
}

/// Pseudo-header sum for either family, taking addresses as [`Addr`]; the
/// family is that of `src`.
#[inline]
pub fn pseudo(src: &Addr, dst: &Addr, proto: Proto, len: u32) -> u32 {
    if src.is_v4() {
        pseudo_v4(src.octets4(), dst.octets4(), proto, len as u16)
    } else {
        pseudo_v6(&src.0, &dst.0, proto, len)
    }
}

/// SCTP checksum (RFC 9260 appendix A, CRC32c) of a whole SCTP packet,
/// computed as if its checksum field (bytes 8..12) were zero. Returns the
/// value in host order; it is stored little-endian on the wire, as the
/// kernel's `sctp_compute_cksum` does with `cpu_to_le32`.
pub fn sctp_crc32c(packet: &[u8]) -> u32 {
    let Some((head, rest)) = packet.split_at_checked(8) else {
        return crc32c::crc32c(packet);
    };
    let Some(tail) = rest.get(4..) else {
        return crc32c::crc32c_append(crc32c::crc32c(head), &[0; 4][..rest.len()]);
    };
    let c = crc32c::crc32c(head);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 §3 worked example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length pads the last byte on the right.
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    // A real IPv4 header (Wikipedia "IPv4 header checksum" example).
    #[test]
    fn ipv4_header_example() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(verifies(sum(&h)));
    }

    #[test]
    fn long_sum_matches_word_by_word() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            s += u32::from(w);
        }
        assert_eq!(fold(sum(&data)), fold(s));
    }

    // RFC 1624 §4 example: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285: HC' = 0x0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn update32_and_addr_match_recompute() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = update32(0xb861, 0xc0a8_0001, 0x0a00_0005);
        h[12..16].copy_from_slice(&[10, 0, 0, 5]);
        h[10] = 0;
        h[11] = 0;
        // Recomputed by hand-independent path: full RFC 1071 over the new header.
        assert_eq!(c, checksum(&h));
        let c2 = update_addr(
            0xb861,
            &Addr::v4([192, 168, 0, 1]),
            &Addr::v4([10, 0, 0, 5]),
        );
        assert_eq!(c2, c);
    }

    // RFC 3720 B.4 CRC32c test vector: 32 bytes of zeros -> aa36918a.
    #[test]
    fn crc32c_vector() {
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        let mut p = [0xffu8; 16];
        let c = sctp_crc32c(&p);
        p[8..12].fill(0);
        assert_eq!(c, crc32c::crc32c(&p));
    }

    #[test]
    fn verifies_array_matches_verifies_sum() {
        // Random headers, and each fixed up to verify: the native-endian
        // shortcut agrees with the big-endian sum both ways.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..20_000 {
            let mut h = [0u8; 20];
            for b in &mut h {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if round % 2 == 0 {
                h[10] = 0;
                h[11] = 0;
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            match round % 21 {
                0 => h = [0; 20],
                7 => h = [0xff; 20],
                14 => {
                    // A header whose only non-zero word is 0xffff (a
                    // multiple of 0xffff that is not all ones per word).
                    h = [0; 20];
                    h[2 * (round / 21 % 10)] = 0xff;
                    h[2 * (round / 21 % 10) + 1] = 0xff;
                }
                _ => {}
            }
            assert_eq!(verifies_array(&h), verifies(sum(&h)), "{h:02x?}");
        }
    }

    #[test]
    fn sum_array_matches_sum() {
        let d: [u8; 20] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(200));
        assert_eq!(fold(sum_array(&d)), fold(sum(&d)));
        let e = [0xffu8; 16];
        assert_eq!(fold(sum_array(&e)), 0xffff);
        let o: [u8; 3] = [0x12, 0x34, 0x56];
        assert_eq!(fold(sum_array(&o)), 0x1234 + 0x5600);
    }

    #[test]
    fn pseudo_v6_sums_both_addresses() {
        let a = [0u8; 16];
        let mut b = [0u8; 16];
        b[15] = 1;
        assert_eq!(pseudo_v6(&a, &b, Proto::TCP, 20), 1 + 6 + 20);
    }
}
