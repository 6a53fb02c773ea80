//! Packet layer of rvs: zero-copy views, in-place rewriting with incremental
//! checksum updates (RFC 1624), and encapsulation.
//!
//! The hot path parses a frame once with `parse_frame` into a small
//! [`PacketInfo`] (offsets plus the few fields the engine keys on) and then
//! rewrites in place through functions that take that summary. Nothing in
//! this crate allocates, does I/O, or panics on any input: every truncated or
//! malformed frame gives an [`Error`].
//!
//! - [`parse_frame`] / [`verify_l4_checksum`]: the one-pass parser (about
//!   180 instructions for Ethernet + IPv4 + TCP, see
//!   `examples/wire_speed.rs`) and the L4 checksum check.
//! - [`parse_flow_v4`] / [`set_dst_v4`]: the established fast path's
//!   compact parse ([`FlowV4`]: an untagged, option-less, unfragmented
//!   IPv4 TCP/UDP packet at fixed offsets, the same checks) and its DNAT.
//! - [`rewrite`]: NAT in place ([`set_src`], [`set_dst`],
//!   [`set_icmp_error`], [`set_macs`], [`swap_macs`]), checksums updated
//!   incrementally with [`checksum`] (RFC 1624).
//! - [`encap`]: IP-in-IP / GUE / GRE [`encapsulate`], [`parse_tunnel`],
//!   [`decapsulate`] on a [`FrameBuf`] with headroom.
//! - [`icmp`]: [`build_too_big`], [`build_unreachable`],
//!   [`build_icmp_error`].
//! - Header views in the smoltcp `wire` style (`Packet<T: AsRef<[u8]>>` with
//!   `new_checked`, getters, setters): [`ethernet`], [`arp`], [`ipv4`],
//!   [`ipv6`], [`tcp`], [`udp`], [`sctp`], [`icmp`], [`gre`], [`gue`].
//! - [`fuzzing`]: entry points for the cargo-fuzz targets in `fuzz/`;
//!   `testing` (feature `testing`): frame builders for other crates' tests.

#![warn(missing_docs)]

pub mod arp;
pub mod checksum;
pub mod encap;
pub mod ethernet;
pub mod fuzzing;
pub mod gre;
pub mod gue;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod rewrite;
pub mod sctp;
pub mod tcp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod udp;

mod frame;
mod parse;
#[cfg(test)]
mod tests;

pub use encap::{TunnelInfo, TunnelKind, decapsulate, encap_len, encapsulate, parse_tunnel};
pub use frame::FrameBuf;
pub use icmp::{build_icmp_error, build_too_big, build_unreachable};
pub use parse::{parse_flow_v4, parse_frame, verify_l4_checksum};
pub use rewrite::{Side, set_dst, set_dst_v4, set_icmp_error, set_macs, set_src, swap_macs};

use rvs_types::{Addr, Af, Proto};
use std::fmt;

/// Why a frame could not be parsed or rewritten.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Error {
    /// The frame or a header in it is shorter than its header says.
    Truncated,
    /// A header field has a value that cannot be valid (bad version, bad
    /// header length, inconsistent lengths).
    Malformed,
    /// A checksum did not verify.
    BadChecksum,
    /// Not something this layer handles (unknown EtherType, too many
    /// extension headers, nested encapsulation deeper than supported).
    Unsupported,
    /// The buffer lacks the headroom or tailroom needed.
    NoRoom,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "truncated",
            Self::Malformed => "malformed header",
            Self::BadChecksum => "bad checksum",
            Self::Unsupported => "unsupported",
            Self::NoRoom => "no room in buffer",
        })
    }
}

impl std::error::Error for Error {}

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum Frag {
    /// Not a fragment.
    #[default]
    None,
    /// First fragment (offset 0, more fragments): L4 header present.
    First,
    /// A later fragment: no L4 header; ports are unknown (zero).
    Later,
}

/// Summary of the packet quoted inside an ICMP/ICMPv6 error message.
///
/// Offsets are from the start of the frame. The quote may be truncated: only
/// the first 8 bytes of the inner L4 header are guaranteed by RFC 792, enough
/// for the ports.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct InnerInfo {
    /// Offset of the quoted IP header.
    pub l3_off: u16,
    /// Offset of the quoted L4 header.
    pub l4_off: u16,
    /// Upper-layer protocol of the quoted packet.
    pub proto: Proto,
    /// Source address of the quoted packet.
    pub src: Addr,
    /// Destination address of the quoted packet.
    pub dst: Addr,
    /// Source port of the quoted packet (0 when it has none).
    pub sport: u16,
    /// Destination port of the quoted packet (0 when it has none).
    pub dport: u16,
}

/// ICMP/ICMPv6 details of a packet.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct IcmpInfo {
    /// ICMP type.
    pub ty: u8,
    /// ICMP code.
    pub code: u8,
    /// For error messages (destination unreachable, time exceeded, parameter
    /// problem, packet too big), the quoted packet.
    pub inner: Option<InnerInfo>,
}

/// What the engine needs to know about an IP frame, found by one parse.
///
/// All offsets are from the start of the frame (the Ethernet header).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct PacketInfo {
    /// 802.1Q/802.1ad TCI of the outermost VLAN tag, if tagged.
    pub vlan: Option<u16>,
    /// Offset of the IP header.
    pub l3_off: u16,
    /// Offset of the upper-layer header (after IPv4 options or IPv6
    /// extension headers).
    pub l4_off: u16,
    /// Bytes from `l3_off` to the end of the IP packet as its header gives
    /// it (Ethernet padding after it is not counted).
    pub l3_len: u16,
    /// Address family.
    pub af: Af,
    /// Upper-layer protocol (after walking IPv6 extension headers).
    pub proto: Proto,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// TCP/UDP/SCTP source port; ICMP echo identifier; 0 otherwise.
    pub sport: u16,
    /// TCP/UDP/SCTP destination port; ICMP echo identifier; 0 otherwise.
    pub dport: u16,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10,
    /// URG 0x20, ECE 0x40, CWR 0x80); 0 for other protocols.
    pub tcp_flags: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Fragment position.
    pub frag: Frag,
    /// ICMP details, for ICMP and ICMPv6 packets.
    pub icmp: Option<IcmpInfo>,
}

impl PacketInfo {
    /// Offset of the first byte after the IP packet.
    #[inline]
    pub fn l3_end(&self) -> usize {
        self.l3_off as usize + self.l3_len as usize
    }
}

/// The established fast path's view of a frame (see [`parse_flow_v4`]): an
/// untagged Ethernet frame carrying an unfragmented IPv4 TCP or UDP packet
/// without IP options, so every offset is fixed (IP header at 14, L4
/// header at 34) and only the 5-tuple, the TCP flags, the TTL and the IP
/// length need carrying. It holds exactly what [`parse_frame`] would find:
/// [`FlowV4::info`] gives the same [`PacketInfo`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FlowV4 {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// L4 source port.
    pub sport: u16,
    /// L4 destination port.
    pub dport: u16,
    /// [`Proto::TCP`] or [`Proto::UDP`].
    pub proto: Proto,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// TTL.
    pub ttl: u8,
    /// IP total length.
    pub l3_len: u16,
}

impl FlowV4 {
    /// Offset of the IP header.
    pub const L3_OFF: u16 = ethernet::HEADER_LEN as u16;
    /// Offset of the L4 header.
    pub const L4_OFF: u16 = Self::L3_OFF + ipv4::MIN_HEADER_LEN as u16;

    /// The [`PacketInfo`] [`parse_frame`] gives for the same frame.
    #[inline]
    pub fn info(&self) -> PacketInfo {
        PacketInfo {
            vlan: None,
            l3_off: Self::L3_OFF,
            l4_off: Self::L4_OFF,
            l3_len: self.l3_len,
            af: Af::V4,
            proto: self.proto,
            src: Addr::v4(self.src),
            dst: Addr::v4(self.dst),
            sport: self.sport,
            dport: self.dport,
            tcp_flags: self.tcp_flags,
            ttl: self.ttl,
            frag: Frag::None,
            icmp: None,
        }
    }
}

/// What a frame is, as far as the director cares.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Parsed {
    /// An IPv4 or IPv6 packet.
    Ip(PacketInfo),
    /// An ARP packet (left to the kernel).
    Arp,
    /// Any other EtherType (left to the kernel).
    Other(u16),
}
