//! What the engine tells its driver to do with a frame.

use rvs_conn::ConnId;
use rvs_types::{Addr, ZoneId};

/// Facts about a received frame that are not in its bytes.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct RxMeta {
    /// Firewall mark (from the user's iptables/nftables rules; 0 = none).
    pub fwmark: u32,
    /// Connection-tracking zone of the receiving side (0 = default).
    pub zone: ZoneId,
}

/// Which way a forwarded packet travels.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Direction {
    /// Client to real server.
    ToServer,
    /// Real server to client (NAT replies).
    ToClient,
}

/// Where a rewritten frame goes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Forward {
    /// The address to route toward: the driver resolves its egress interface,
    /// gateway and MAC (from the kernel's tables), writes the MACs and sends.
    pub next_hop: Addr,
    /// The connection the frame belongs to (its next-hop cache slot, see
    /// [`crate::Director::nh_slot`], spares the driver a route lookup per packet).
    pub conn: ConnId,
    /// Which way it travels.
    pub dir: Direction,
}

/// The engine's decision for one frame.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Verdict {
    /// Rewritten in place; send it on (the driver fills in the MACs).
    Forward(Forward),
    /// The frame now holds a reply (e.g. ICMP "fragmentation needed") to send
    /// back out of the interface it arrived on; MACs are already swapped.
    Reply,
    /// Not the director's business: hand it to the host stack unchanged.
    Pass,
    /// Dropped and counted.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident => $label:literal, )*) => {
        /// Why a frame was dropped; each has a counter.
        #[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// A short snake_case name for metrics and logs.
            pub fn label(self) -> &'static str {
                match self { $(DropReason::$name => $label,)* }
            }
        }
    };
}

drop_reasons! {
    /// A header is shorter than it claims.
    Truncated => "truncated",
    /// A header has impossible values.
    Malformed => "malformed",
    /// An IP, TCP, UDP, SCTP or ICMP checksum did not verify.
    BadChecksum => "bad_checksum",
    /// Something the packet layer does not handle (deep IPv6 extension chains, …).
    Unsupported => "unsupported",
    /// An IP fragment (rvs does not reassemble; IPVS relies on the kernel's defrag).
    Fragment => "fragment",
    /// A TCP segment for a service that has no connection and is not a SYN.
    TcpNotSyn => "tcp_not_syn",
    /// An SCTP packet for a service that has no association and is not an INIT.
    SctpNotInit => "sctp_not_init",
    /// The scheduler found no available real server.
    NoDest => "no_dest",
    /// The connection table is full and nothing could be evicted.
    ConnTableFull => "conn_table_full",
    /// The connection's real server was removed, the policy is
    /// `NoDest::Expire` (expire_nodest_conn on): the entry was expired and
    /// this packet cannot open a new one (not a SYN, an INIT or UDP).
    NoDestConn => "nodest_conn",
    /// Too big for the tunnel and the IPv4 DF bit is clear (rvs does not fragment).
    TooBigNoDf => "too_big_no_df",
    /// The frame buffer lacks headroom for encapsulation.
    NoRoom => "no_room",
    /// Bogus TCP flag combination (SYN+FIN, SYN+RST, no flags at all).
    BadTcpFlags => "bad_tcp_flags",
    /// The connection's real server was removed and the policy is
    /// `NoDest::Drop` (IPVS with expire_nodest_conn off): the packet is
    /// dropped and the entry left to expire by its own timeout.
    NoDestDrop => "nodest_drop",
}

impl From<rvs_wire::Error> for DropReason {
    fn from(e: rvs_wire::Error) -> Self {
        match e {
            rvs_wire::Error::Truncated => Self::Truncated,
            rvs_wire::Error::Malformed => Self::Malformed,
            rvs_wire::Error::BadChecksum => Self::BadChecksum,
            rvs_wire::Error::Unsupported => Self::Unsupported,
            rvs_wire::Error::NoRoom => Self::NoRoom,
        }
    }
}
