//! Small value types shared by every rvs crate.
//!
//! Nothing here does I/O or reads a clock: time enters the engine as an
//! [`Instant`] argument, so the whole core is deterministic and testable with
//! frames in and frames out.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Add, Sub};
use std::time::Duration;

/// Address family.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub enum Af {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// An IPv4 or IPv6 address in one 16-byte representation.
///
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so keys that
/// hold either family hash and compare with the same code and no branch on
/// the family.
#[derive(Clone, Copy, Default, Eq, Hash, PartialEq, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// The unspecified address (all zero, IPv6 family).
    pub const UNSPECIFIED: Self = Self([0; 16]);

    /// An IPv4 address.
    #[inline]
    pub const fn v4(o: [u8; 4]) -> Self {
        Self([
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, o[0], o[1], o[2], o[3],
        ])
    }

    /// An IPv6 address.
    #[inline]
    pub const fn v6(o: [u8; 16]) -> Self {
        Self(o)
    }

    /// The family this address belongs to.
    #[inline]
    pub fn af(&self) -> Af {
        if self.is_v4() { Af::V4 } else { Af::V6 }
    }

    /// Whether this is an IPv4 (mapped) address.
    #[inline]
    pub fn is_v4(&self) -> bool {
        self.0[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }

    /// The four IPv4 octets (meaningful only when [`Self::is_v4`]).
    #[inline]
    pub fn octets4(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    /// The 16 bytes as stored (IPv4 mapped for IPv4).
    #[inline]
    pub fn octets16(&self) -> [u8; 16] {
        self.0
    }

    /// The address bytes as they appear on the wire: 4 bytes for IPv4, 16 for IPv6.
    #[inline]
    pub fn wire_bytes(&self) -> &[u8] {
        if self.is_v4() {
            &self.0[12..]
        } else {
            &self.0[..]
        }
    }

    /// The address with only the first `prefix_len` bits of its family kept.
    ///
    /// For IPv4, `prefix_len` counts IPv4 bits (0..=32); for IPv6, 0..=128.
    pub fn masked(&self, prefix_len: u8) -> Self {
        let (start, bits) = if self.is_v4() {
            (12usize, prefix_len.min(32) as usize)
        } else {
            (0usize, prefix_len.min(128) as usize)
        };
        let mut out = *self;
        for (i, b) in out.0[start..].iter_mut().enumerate() {
            let keep = bits.saturating_sub(i * 8).min(8);
            *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
        out
    }

    /// Converts to the standard library's type.
    pub fn to_ip(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.octets4()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::v4(a.octets()),
            IpAddr::V6(a) => Self::v6(a.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Self {
        Self::v4(ip.octets())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(ip: Ipv6Addr) -> Self {
        Self::v6(ip.octets())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

/// IP protocol numbers rvs knows about.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Proto(pub u8);

impl Proto {
    /// ICMP for IPv4.
    pub const ICMP: Self = Self(1);
    /// IPv4-in-IP encapsulation.
    pub const IPIP: Self = Self(4);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
    /// IPv6 encapsulation.
    pub const IPV6: Self = Self(41);
    /// GRE.
    pub const GRE: Self = Self(47);
    /// ICMPv6.
    pub const ICMPV6: Self = Self(58);
    /// SCTP.
    pub const SCTP: Self = Self(132);

    /// The name ipvsadm prints for a service or connection protocol.
    pub fn ipvs_name(self) -> &'static str {
        match self {
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::SCTP => "SCTP",
            Self::ICMP => "ICMP",
            Self::ICMPV6 => "ICMPv6",
            _ => "IP",
        }
    }
}

/// A connection-tracking zone: overlapping client networks are kept apart by
/// zone even when their 5-tuples are equal (the seeds' "overlapping client
/// subnets"). Zone 0 is the default zone.
pub type ZoneId = u16;

/// A monotonic point in time, in nanoseconds since an arbitrary epoch chosen
/// by whoever drives the engine (the daemon uses process start; tests use 0).
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Self = Self(0);

    /// A point `nanos` nanoseconds after the epoch.
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// A point `secs` seconds after the epoch.
    #[inline]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs * 1_000_000_000)
    }

    /// A point `ms` milliseconds after the epoch.
    #[inline]
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms * 1_000_000)
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch.
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// `self - earlier`, or zero when `earlier` is later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;
    #[inline]
    fn add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;
    #[inline]
    fn sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub for Instant {
    type Output = Duration;
    #[inline]
    fn sub(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapping_round_trips() {
        let a = Addr::v4([10, 1, 2, 3]);
        assert!(a.is_v4());
        assert_eq!(a.af(), Af::V4);
        assert_eq!(a.to_ip(), "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(Addr::from(a.to_ip()), a);
        assert_eq!(a.wire_bytes(), &[10, 1, 2, 3]);
        let b: Addr = "2001:db8::1".parse::<IpAddr>().unwrap().into();
        assert_eq!(b.af(), Af::V6);
        assert_eq!(b.to_string(), "2001:db8::1");
    }

    #[test]
    fn masking_keeps_prefix_bits_only() {
        let a = Addr::v4([192, 168, 77, 201]);
        assert_eq!(a.masked(24), Addr::v4([192, 168, 77, 0]));
        assert_eq!(a.masked(20), Addr::v4([192, 168, 64, 0]));
        assert_eq!(a.masked(32), a);
        assert_eq!(a.masked(0), Addr::v4([0, 0, 0, 0]));
        assert!(a.masked(0).is_v4());
        let b: Addr = "2001:db8:aaaa:bbbb::1".parse::<IpAddr>().unwrap().into();
        let m: Addr = "2001:db8:aa00::".parse::<IpAddr>().unwrap().into();
        assert_eq!(b.masked(40), m);
    }

    #[test]
    fn instant_arithmetic() {
        let t = Instant::from_secs(5);
        assert_eq!((t + Duration::from_millis(1500)).as_millis(), 6500);
        assert_eq!(Instant::from_secs(1) - t, Duration::ZERO);
        assert_eq!(t - Instant::from_secs(2), Duration::from_secs(3));
    }
}
