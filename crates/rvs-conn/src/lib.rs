//! The IPVS connection table, sans I/O.
//!
//! [`ConnTable`] holds every connection and persistence template of one
//! director core: a slab of [`Conn`] entries, one open-addressing flow index
//! and a lazy hashed timing wheel. It reproduces the kernel's
//! `net/netfilter/ipvs/ip_vs_conn.c` (lookups, templates, `NO_CPORT`,
//! expiry with re-arm) and the protocol state machines of
//! `ip_vs_proto_{tcp,udp,sctp}.c` (see [`proto`]).
//!
//! Time only enters as an [`Instant`](rvs_types::Instant) argument: nothing
//! here reads a clock.
//!
//! # Ids
//! A [`ConnId`] is a slab index. Ids are reused after a conn is removed,
//! expired or evicted; the table reports every such end (the return value
//! of [`ConnTable::remove`], the [`ConnTable::expire`] callback,
//! [`ConnTable::drain_evicted`] / [`ConnTable::insert_evicting`]), and the
//! engine must forget the id there. There is no generation check:
//! [`ConnTable::get`] on a freed id returns `None`, on a reused id the new
//! conn — the same contract as the kernel's refcounted `ip_vs_conn`
//! pointers, which the engine mirrors by holding templates alive (returning
//! [`ExpireAction::Keep`]) while conns still name them in `control`.
//!
//! # Key fields
//! The index hashes a conn by `(zone, proto, caddr, cport)` like the
//! kernel's `ip_vs_conn_hashkey_conn` (FULLNAT conns also by
//! `(zone, proto, laddr, lport)`, templates by their whole template key).
//! Do not change `zone`, `proto`, `caddr`, `cport`, `laddr`, `lport`,
//! `fwd`, `flags.TEMPLATE`/`NO_CPORT`, or a template's `vaddr`, `vport`,
//! `fwmark` through [`ConnTable::get_mut`]; use [`ConnTable::fill_cport`]
//! for the one legitimate change (`ip_vs_conn_fill_cport`).

#![deny(missing_docs)]

mod index;
pub mod proto;
mod table;
mod wheel;

use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::time::Duration;

use rvs_types::{Addr, Proto, ZoneId};

pub use proto::{Dir, Timeouts, state_name, template_state_name};
pub use table::{ConnTable, InKey};

/// Index of a connection in its [`ConnTable`] (a slab slot; see the crate
/// docs for the reuse contract).
pub type ConnId = u32;

/// "No connection" in fields that hold a [`ConnId`] (e.g. [`Conn::control`]).
pub const NO_CONN: ConnId = u32::MAX;

/// Forwarding method, numbered as IPVS's `IP_VS_CONN_F_FWD_MASK` values,
/// plus FULLNAT (not in mainline IPVS).
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub enum Fwd {
    /// `IP_VS_CONN_F_MASQ`: NAT; replies pass the director.
    #[default]
    Masq = 0,
    /// `IP_VS_CONN_F_LOCALNODE`.
    Local = 1,
    /// `IP_VS_CONN_F_TUNNEL`: replies bypass the director.
    Tunnel = 2,
    /// `IP_VS_CONN_F_DROUTE`: direct routing; replies bypass the director.
    Route = 3,
    /// `IP_VS_CONN_F_BYPASS`: cache bypass.
    Bypass = 4,
    /// Full NAT: source rewritten to `laddr:lport`; replies come back to it.
    FullNat = 5,
}

impl Fwd {
    /// Whether replies of this method pass the director, so the conn is
    /// found by [`ConnTable::lookup_out`].
    #[inline]
    pub fn sees_replies(self) -> bool {
        !matches!(self, Self::Route | Self::Tunnel)
    }
}

/// Connection flags, bit values as the kernel's `IP_VS_CONN_F_*` where the
/// kernel has them (so they can go into sync messages unchanged).
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub struct ConnFlags(pub u16);

impl ConnFlags {
    /// No flag.
    pub const EMPTY: Self = Self(0);
    /// `IP_VS_CONN_F_SYNC`: learned from a sync peer.
    pub const SYNC: Self = Self(0x0020);
    /// `IP_VS_CONN_F_NOOUTPUT`: DR/TUN, no replies seen; TCP/SCTP state
    /// changes use the INPUT_ONLY rows until an output packet clears it.
    pub const NOOUTPUT: Self = Self(0x0080);
    /// `IP_VS_CONN_F_INACTIVE`: counted in the dest's `inactconns`.
    /// IPVS sets it on every new conn (`dest->conn_flags`); the state
    /// machines clear and set it.
    pub const INACTIVE: Self = Self(0x0100);
    /// `IP_VS_CONN_F_NO_CPORT`: client port not known yet (stored as 0).
    pub const NO_CPORT: Self = Self(0x0800);
    /// `IP_VS_CONN_F_TEMPLATE`: persistence template.
    pub const TEMPLATE: Self = Self(0x1000);
    /// `IP_VS_CONN_F_ONE_PACKET`: one-packet scheduling.
    pub const ONE_PACKET: Self = Self(0x2000);
    /// The conn is bound to a dest (the kernel's `cp->dest != NULL`): only
    /// then do state changes move the INACTIVE flag.
    pub const HAS_DEST: Self = Self(0x4000);
    /// Out of the lookup index but still alive (set by
    /// [`ConnTable::unhash`]): the kernel's invalidated template, which no
    /// lookup finds but which lives until the conns it controls are gone.
    pub const UNHASHED: Self = Self(0x8000);

    /// Whether every bit of `other` is set.
    #[inline]
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    #[inline]
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    #[inline]
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }
}

impl BitOr for ConnFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for ConnFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for ConnFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

/// One connection or persistence template (the kernel's `struct ip_vs_conn`
/// minus what the engine keeps elsewhere).
///
/// Field order is chosen so that everything an in-direction lookup compares
/// sits in the first 44 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Conn {
    /// Client address.
    pub caddr: Addr,
    /// Virtual (service) address.
    pub vaddr: Addr,
    /// Client port (0 with [`ConnFlags::NO_CPORT`] and for templates).
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Conntrack zone.
    pub zone: ZoneId,
    /// Flags.
    pub flags: ConnFlags,
    /// IP protocol.
    pub proto: Proto,
    /// Protocol state ([`proto::tcp`], [`proto::sctp`], ... numbering).
    pub state: u8,
    /// Forwarding method.
    pub fwd: Fwd,
    /// Engine's service index (opaque here).
    pub svc: u32,
    /// Engine's dest id (opaque here).
    pub dest: u32,
    /// Persistence template this conn belongs to ([`NO_CONN`] = none).
    pub control: ConnId,
    /// Next-hop cache slot for the driver (opaque; `u32::MAX` = none).
    pub nh: u32,
    /// Service fwmark (0 if none).
    pub fwmark: u32,
    /// Real server address.
    pub daddr: Addr,
    /// Real server port.
    pub dport: u16,
    /// FULLNAT local port (0 otherwise).
    pub lport: u16,
    /// FULLNAT local address (`Addr::UNSPECIFIED` otherwise).
    pub laddr: Addr,
}

impl Default for Conn {
    fn default() -> Self {
        Self {
            caddr: Addr::UNSPECIFIED,
            vaddr: Addr::UNSPECIFIED,
            cport: 0,
            vport: 0,
            zone: 0,
            flags: ConnFlags::EMPTY,
            proto: Proto::TCP,
            state: 0,
            fwd: Fwd::Masq,
            svc: 0,
            dest: 0,
            control: NO_CONN,
            nh: u32::MAX,
            fwmark: 0,
            daddr: Addr::UNSPECIFIED,
            dport: 0,
            lport: 0,
            laddr: Addr::UNSPECIFIED,
        }
    }
}

impl Conn {
    /// Whether this is a persistence template.
    #[inline]
    pub fn is_template(&self) -> bool {
        self.flags.contains(ConnFlags::TEMPLATE)
    }

    /// The state name `ipvsadm -L -c` prints for this conn (templates use
    /// the kernel's `ip_vs_ctpl_state_name_table`).
    pub fn state_name(&self) -> &'static str {
        if self.is_template() {
            template_state_name(self.state)
        } else {
            state_name(self.proto, self.state)
        }
    }
}

/// Table sizing and timer granularity.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct TableConfig {
    /// Hard bound on live entries (conns + templates); the kernel's
    /// `conn_max`. Clamped to 2^31 - 3.
    pub max_conns: u32,
    /// Timer granularity (the kernel uses jiffies). Deadlines are
    /// `ceil(now / tick) + ceil(timeout / tick)` ticks, so a conn expires
    /// at most two ticks late, never early (exactly on time when `now` and
    /// the timeout are multiples of the tick). Deadlines are 32-bit tick
    /// counts and timeouts are clamped to 2^30 ticks (3.4 years at the
    /// default 100 ms): keep the tick at 1 ms or more.
    pub tick: Duration,
    /// Entries to pre-size the index for (avoids rehash pauses).
    pub expected_conns: u32,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            max_conns: 1 << 20,
            tick: Duration::from_millis(100),
            expected_conns: 1 << 16,
        }
    }
}

/// Why an insert failed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum InsertError {
    /// The table holds `max_conns` entries and none is evictable (no
    /// half-open TCP conn).
    Full,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full => f.write_str("connection table full, nothing evictable"),
        }
    }
}

impl std::error::Error for InsertError {}

/// What a state update did, so the engine can move dest counters
/// (`activeconns`/`inactconns`) as `set_tcp_state` does.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct StateChange {
    /// State before the packet.
    pub old: u8,
    /// State after the packet.
    pub new: u8,
    /// `!INACTIVE` before.
    pub was_active: bool,
    /// `!INACTIVE` after.
    pub is_active: bool,
}

/// The engine's verdict on an expiring entry.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ExpireAction {
    /// Remove it (the kernel's `ip_vs_conn_expire` unhash + free).
    Remove,
    /// Keep it and expire again after this long (the kernel re-arms a
    /// template whose `n_control` is not zero). The stored timeout used by
    /// later refreshes is unchanged.
    Keep(Duration),
}

/// Counters of table events.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct TableStats {
    /// Successful inserts.
    pub inserted: u64,
    /// Explicit removals.
    pub removed: u64,
    /// Entries removed by expiry.
    pub expired: u64,
    /// Expiring entries the engine kept ([`ExpireAction::Keep`]).
    pub rearmed: u64,
    /// Inserts refused with [`InsertError::Full`].
    pub refused_full: u64,
    /// Half-open TCP conns evicted to make room.
    pub evicted_embryonic: u64,
    /// Full index rebuilds (growth).
    pub index_rebuilds: u64,
    /// Entries [`ConnTable::expire`] looked at (expired, kept, or re-filed
    /// because a refresh moved their deadline on): the timer's whole work,
    /// which depends on what comes due, not on the table's size.
    pub expire_visits: u64,
}
