//! IPVS's schedulers, each with the kernel's exact rule (one module per
//! scheduler, as `net/netfilter/ipvs/ip_vs_<name>.c`).
//!
//! CONTRACT (fixed: the engine is written against it; extend, do not change):
//! - The engine owns the real servers ("dests") of a service in a slice and
//!   exposes them through [`DestView`]. A scheduler never stores references
//!   into that slice; it may keep per-dest state keyed by [`DestView::id`].
//! - [`Scheduler::update`] is called with the full, new dest slice whenever a
//!   dest is added, removed or edited (IPVS's init_service / add_dest /
//!   del_dest / upd_dest), and once right after [`Scheduler::new`].
//! - [`Scheduler::schedule`] returns the index in `dests` of the chosen dest,
//!   or `None` when IPVS's scheduler would return NULL ("no destination
//!   available"). Counters (active/inactive) are read through [`DestView`]
//!   at call time.
//! - Time enters only through [`SchedInput::now`]; randomness (twos) only
//!   through a seed in [`SchedParams`], so runs are reproducible.

use rvs_types::{Addr, Instant, Proto};

/// What the engine shows a scheduler of one real server.
pub trait DestView {
    /// Identifier of this dest, stable for as long as the dest exists in its
    /// service (the engine never reuses an id within a service while a
    /// scheduler may still hold it).
    fn id(&self) -> u32;
    /// Real server address.
    fn addr(&self) -> Addr;
    /// Real server port.
    fn port(&self) -> u16;
    /// Weight; 0 means quiescent (no new connections).
    fn weight(&self) -> i32;
    /// Active connections (IPVS activeconns).
    fn activeconns(&self) -> u32;
    /// Inactive connections (IPVS inactconns).
    fn inactconns(&self) -> u32;
    /// IPVS's IP_VS_DEST_F_OVERLOAD: set by the engine from the upper and
    /// lower connection thresholds.
    fn overloaded(&self) -> bool;
}

/// The packet facts a scheduler may use.
#[derive(Clone, Copy, Debug)]
pub struct SchedInput {
    /// Protocol of the packet.
    pub proto: Proto,
    /// Client (source) address.
    pub saddr: Addr,
    /// Client (source) port.
    pub sport: u16,
    /// Destination address of the packet (the VIP; for a transparent cache
    /// cluster on a fwmark service, the origin server's address).
    pub daddr: Addr,
    /// Destination port of the packet.
    pub dport: u16,
    /// The engine's current time.
    pub now: Instant,
}
