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

#![warn(missing_docs)]

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

mod common;
mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod least;
mod loctab;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The 14 IPVS schedulers (`ipvsadm -s <name>`, keepalived `lb_algo`).
///
/// Each variant reproduces `net/netfilter/ipvs/ip_vs_<name>.c`; the rule,
/// including how quiescent (weight 0) and overloaded dests are treated, is
/// documented on the matching module.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub enum SchedKind {
    /// Destination hashing: a 256-bucket table indexed by `hash_32` of the
    /// packet's destination address (`ip_vs_dh.c`).
    Dh,
    /// Weighted fail-over: the available dest with the highest weight
    /// (`ip_vs_fo.c`).
    Fo,
    /// Locality-based least-connection: destination address → dest cache,
    /// re-chosen by WLC when dead or overloaded (`ip_vs_lblc.c`).
    Lblc,
    /// Locality-based least-connection with replication: destination address →
    /// set of dests (`ip_vs_lblcr.c`).
    Lblcr,
    /// Least-connection: smallest `activeconns << 8 + inactconns`
    /// (`ip_vs_lc.c`).
    Lc,
    /// Maglev hashing of the source address (and port) (`ip_vs_mh.c`).
    Mh,
    /// Never queue: an idle dest first, else shortest expected delay
    /// (`ip_vs_nq.c`).
    Nq,
    /// Overflow: highest weight whose active connections do not exceed its
    /// weight (`ip_vs_ovf.c`).
    Ovf,
    /// Round robin (`ip_vs_rr.c`).
    Rr,
    /// Shortest expected delay: smallest `(activeconns + 1) / weight`
    /// (`ip_vs_sed.c`).
    Sed,
    /// Source hashing, weight-tiled table (`ip_vs_sh.c`).
    Sh,
    /// Weighted random choice of two, least loaded of the pair
    /// (`ip_vs_twos.c`).
    Twos,
    /// Weighted least-connection, ipvsadm's default scheduler
    /// (`DEF_SCHED "wlc"` in ipvsadm.c) (`ip_vs_wlc.c`).
    #[default]
    Wlc,
    /// Weighted round robin with gcd interleaving (`ip_vs_wrr.c`).
    Wrr,
}

impl SchedKind {
    /// Every scheduler, in name order.
    pub const ALL: [Self; 14] = [
        Self::Dh,
        Self::Fo,
        Self::Lblc,
        Self::Lblcr,
        Self::Lc,
        Self::Mh,
        Self::Nq,
        Self::Ovf,
        Self::Rr,
        Self::Sed,
        Self::Sh,
        Self::Twos,
        Self::Wlc,
        Self::Wrr,
    ];

    /// The kernel module's scheduler name (`struct ip_vs_scheduler.name`),
    /// as ipvsadm prints and accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dh => "dh",
            Self::Fo => "fo",
            Self::Lblc => "lblc",
            Self::Lblcr => "lblcr",
            Self::Lc => "lc",
            Self::Mh => "mh",
            Self::Nq => "nq",
            Self::Ovf => "ovf",
            Self::Rr => "rr",
            Self::Sed => "sed",
            Self::Sh => "sh",
            Self::Twos => "twos",
            Self::Wlc => "wlc",
            Self::Wrr => "wrr",
        }
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedKind {
    type Err = UnknownScheduler;

    /// Parses a scheduler name. Matching is exact and case-sensitive, as the
    /// kernel's `ip_vs_sched_getbyname` (`strcmp`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_owned()))
    }
}

/// Error of [`SchedKind::from_str`]: the name is not one of the 14 schedulers.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UnknownScheduler(pub String);

impl fmt::Display for UnknownScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scheduler {:?} (expected one of", self.0)?;
        for (i, k) in SchedKind::ALL.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{k}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownScheduler {}

/// A service's scheduler flags, the IPVS bits `IP_VS_SVC_F_SCHED1..3`
/// (`include/uapi/linux/ip_vs.h`).
///
/// Only `sh` and `mh` read them: SCHED1 is `sh-fallback`/`mh-fallback`,
/// SCHED2 is `sh-port`/`mh-port` (ipvsadm `-b`).
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    /// `IP_VS_SVC_F_SCHED1` (0x0008): ipvsadm `flag-1`.
    pub const SCHED1: Self = Self(0x0008);
    /// `IP_VS_SVC_F_SCHED2` (0x0010): ipvsadm `flag-2`.
    pub const SCHED2: Self = Self(0x0010);
    /// `IP_VS_SVC_F_SCHED3` (0x0020): ipvsadm `flag-3`.
    pub const SCHED3: Self = Self(0x0020);
    /// `IP_VS_SVC_F_SCHED_SH_FALLBACK` (= SCHED1): ipvsadm `sh-fallback`.
    pub const SH_FALLBACK: Self = Self::SCHED1;
    /// `IP_VS_SVC_F_SCHED_SH_PORT` (= SCHED2): ipvsadm `sh-port`.
    pub const SH_PORT: Self = Self::SCHED2;
    /// `IP_VS_SVC_F_SCHED_MH_FALLBACK` (= SCHED1): ipvsadm `mh-fallback`.
    pub const MH_FALLBACK: Self = Self::SCHED1;
    /// `IP_VS_SVC_F_SCHED_MH_PORT` (= SCHED2): ipvsadm `mh-port`.
    pub const MH_PORT: Self = Self::SCHED2;
    /// The three scheduler bits together.
    pub const ALL: Self = Self(0x0038);

    /// Whether every bit of `f` is set in `self`.
    #[inline]
    pub fn contains(self, f: Self) -> bool {
        self.0 & f.0 == f.0
    }

    /// The flag a name given to ipvsadm `-b` stands for (`flag-1`,
    /// `sh-fallback`, `mh-port`, ...), whatever the scheduler.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "flag-1" | "sh-fallback" | "mh-fallback" => Self::SCHED1,
            "flag-2" | "sh-port" | "mh-port" => Self::SCHED2,
            "flag-3" => Self::SCHED3,
            _ => return None,
        })
    }

    /// The names ipvsadm prints for the set bits of a service using `kind`
    /// (`sh-fallback`, `sh-port` for sh; `mh-…` for mh; `flag-N` otherwise),
    /// in bit order.
    pub fn names(self, kind: SchedKind) -> impl Iterator<Item = &'static str> {
        let (n1, n2) = match kind {
            SchedKind::Sh => ("sh-fallback", "sh-port"),
            SchedKind::Mh => ("mh-fallback", "mh-port"),
            _ => ("flag-1", "flag-2"),
        };
        [
            (Self::SCHED1, n1),
            (Self::SCHED2, n2),
            (Self::SCHED3, "flag-3"),
        ]
        .into_iter()
        .filter(move |(f, _)| self.contains(*f))
        .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for SchedFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Tunables of the schedulers (kernel build options and sysctls).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SchedParams {
    /// sh table size as a power of two (`CONFIG_IP_VS_SH_TAB_BITS`, default 8,
    /// clamped to the Kconfig range 4..=20).
    pub sh_tab_bits: u8,
    /// mh lookup table size: one of the kernel's primes 251, 509, 1021, 2039,
    /// 4093 (default, `CONFIG_IP_VS_MH_TAB_INDEX` 12), 8191, 16381, 32749,
    /// 65521, 131071. Other values are rounded up to the next listed prime
    /// (131071 at most).
    pub mh_tab_size: u32,
    /// `net.ipv4.vs.lblc_expiration` (default 24 h): an lblc entry unused for
    /// this long is removed by the full expiration check.
    pub lblc_expiration: Duration,
    /// `net.ipv4.vs.lblcr_expiration` (default 24 h): entry expiry and the
    /// age after which a replicated set sheds its most loaded member.
    pub lblcr_expiration: Duration,
    /// Seed of twos' pseudo-random generator (the kernel uses
    /// `get_random_u32`; a seed keeps runs reproducible).
    pub seed: u64,
}

impl Default for SchedParams {
    fn default() -> Self {
        Self {
            sh_tab_bits: 8,
            mh_tab_size: 4093,
            lblc_expiration: Duration::from_secs(24 * 60 * 60),
            lblcr_expiration: Duration::from_secs(24 * 60 * 60),
            seed: 0x05ee_d1b5_u64,
        }
    }
}

/// One service's scheduler: a scheduler kind plus its state (IPVS's
/// `svc->scheduler` and `svc->sched_data`).
///
/// Dispatch is a `match` over an enum: no boxing and no vtable on the
/// per-connection path.
#[derive(Clone, Debug)]
pub struct Scheduler {
    kind: SchedKind,
    flags: SchedFlags,
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Dh(dh::Dh),
    Fo,
    Lblc(lblc::Lblc),
    Lblcr(lblcr::Lblcr),
    Lc(least::LeastTree),
    Mh(mh::Mh),
    Nq(least::LeastTree),
    Ovf,
    Rr(rr::Rr),
    Sed(least::LeastTree),
    Sh(sh::Sh),
    Twos(twos::Twos),
    Wlc(least::LeastTree),
    Wrr(wrr::Wrr),
}

/// The tree's answer when it keeps one for these dests, else the scan; in
/// debug builds the tree's answer is checked against the scan.
#[inline]
fn least_or_scan<D: DestView>(
    t: &least::LeastTree,
    dests: &[D],
    scan: fn(&[D]) -> Option<usize>,
) -> Option<usize> {
    match t.best(dests) {
        Some(answer) => {
            debug_assert_eq!(
                answer,
                scan(dests),
                "stale scheduler tree: a counts_changed call was missed"
            );
            answer
        }
        None => scan(dests),
    }
}

impl Scheduler {
    /// A scheduler of `kind` for a service with `flags`, with no dests yet
    /// (call [`Self::update`] next, as IPVS calls `init_service`).
    pub fn new(kind: SchedKind, flags: SchedFlags, params: &SchedParams) -> Self {
        let inner = match kind {
            SchedKind::Dh => Inner::Dh(dh::Dh::new()),
            SchedKind::Fo => Inner::Fo,
            SchedKind::Lblc => Inner::Lblc(lblc::Lblc::new(params.lblc_expiration)),
            SchedKind::Lblcr => Inner::Lblcr(lblcr::Lblcr::new(params.lblcr_expiration)),
            SchedKind::Lc => Inner::Lc(least::LeastTree::default()),
            SchedKind::Mh => Inner::Mh(mh::Mh::new(params.mh_tab_size, flags)),
            SchedKind::Nq => Inner::Nq(least::LeastTree::default()),
            SchedKind::Ovf => Inner::Ovf,
            SchedKind::Rr => Inner::Rr(rr::Rr::default()),
            SchedKind::Sed => Inner::Sed(least::LeastTree::default()),
            SchedKind::Sh => Inner::Sh(sh::Sh::new(params.sh_tab_bits, flags)),
            SchedKind::Twos => Inner::Twos(twos::Twos::new(params.seed)),
            SchedKind::Wlc => Inner::Wlc(least::LeastTree::default()),
            SchedKind::Wrr => Inner::Wrr(wrr::Wrr::default()),
        };
        Self { kind, flags, inner }
    }

    /// Which scheduler this is.
    pub fn kind(&self) -> SchedKind {
        self.kind
    }

    /// The service flags in effect.
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// Changes the service flags in place (ipvsadm `-E ... -b`): the kernel's
    /// sh and mh read `svc->flags` at every schedule call, so the change
    /// takes effect at once and no state is reset.
    pub fn set_flags(&mut self, flags: SchedFlags) {
        self.flags = flags;
        match &mut self.inner {
            Inner::Sh(s) => s.set_flags(flags),
            Inner::Mh(s) => s.set_flags(flags),
            _ => {}
        }
    }

    /// Takes the service's new dest list (IPVS `init_service`, `add_dest`,
    /// `del_dest`, `upd_dest`). Slice order is the order of
    /// `svc->destinations` (the kernel links a new dest at the head of that
    /// list, so an engine wanting kernel-identical choices lists newest first).
    pub fn update<D: DestView>(&mut self, dests: &[D]) {
        match &mut self.inner {
            Inner::Dh(s) => s.update(dests),
            Inner::Lblc(s) => s.update(dests),
            Inner::Lblcr(s) => s.update(dests),
            Inner::Mh(s) => s.update(dests),
            Inner::Rr(s) => s.update(dests),
            Inner::Sh(s) => s.update(dests),
            Inner::Wrr(s) => s.update(dests),
            Inner::Lc(t) => t.rebuild(least::Order::Lc, dests),
            Inner::Nq(t) => t.rebuild(least::Order::Nq, dests),
            Inner::Sed(t) => t.rebuild(least::Order::Sed, dests),
            Inner::Wlc(t) => t.rebuild(least::Order::Wlc, dests),
            Inner::Fo | Inner::Ovf | Inner::Twos(_) => {}
        }
    }

    /// Reports that the dest at `pos` in `dests` changed its
    /// `activeconns`, `inactconns` or overload flag (a connection bound,
    /// unbound or moved between active and inactive; a threshold crossed).
    ///
    /// CONTRACT: for lc, wlc, sed and nq over many dests, [`Self::schedule`]
    /// answers from a structure these calls keep current (O(1) per new
    /// connection instead of the kernel's O(n) scan, with the kernel's exact
    /// answer); a missed call makes its answers stale. Debug builds check
    /// every answer against the scan. Weight edits and dest additions or
    /// removals go through [`Self::update`]. A no-op for other schedulers.
    #[inline]
    pub fn counts_changed<D: DestView>(&mut self, pos: usize, dests: &[D]) {
        match &mut self.inner {
            Inner::Lc(t) => t.changed(least::Order::Lc, pos, dests),
            Inner::Nq(t) => t.changed(least::Order::Nq, pos, dests),
            Inner::Sed(t) => t.changed(least::Order::Sed, pos, dests),
            Inner::Wlc(t) => t.changed(least::Order::Wlc, pos, dests),
            _ => {}
        }
    }

    /// Chooses a dest for a new connection: its index in `dests`, or `None`
    /// where the kernel's scheduler returns NULL ("no destination
    /// available"). Never allocates, except lblc/lblcr growing their table.
    #[inline]
    pub fn schedule<D: DestView>(&mut self, dests: &[D], input: &SchedInput) -> Option<usize> {
        match &mut self.inner {
            Inner::Dh(s) => s.schedule(dests, input),
            Inner::Fo => fo::schedule(dests),
            Inner::Lblc(s) => s.schedule(dests, input),
            Inner::Lblcr(s) => s.schedule(dests, input),
            Inner::Lc(t) => least_or_scan(t, dests, lc::schedule),
            Inner::Mh(s) => s.schedule(dests, input),
            Inner::Nq(t) => least_or_scan(t, dests, nq::schedule),
            Inner::Ovf => ovf::schedule(dests),
            Inner::Rr(s) => s.schedule(dests),
            Inner::Sed(t) => least_or_scan(t, dests, sed::schedule),
            Inner::Sh(s) => s.schedule(dests, input),
            Inner::Twos(s) => s.schedule(dests),
            Inner::Wlc(t) => least_or_scan(t, dests, wlc::schedule),
            Inner::Wrr(s) => s.schedule(dests),
        }
    }

    /// Garbage collection of the lblc/lblcr tables: call at least once a
    /// minute. Each call at or after the due time runs one tick of the
    /// kernel's 60 s `periodic_timer` (`ip_vs_lblc_check_expire`). A no-op
    /// for the other schedulers.
    pub fn expire(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::Lblc(s) => s.expire(now),
            Inner::Lblcr(s) => s.expire(now),
            _ => {}
        }
    }

    /// Number of lblc/lblcr table entries (0 for other schedulers).
    pub fn table_entries(&self) -> usize {
        match &self.inner {
            Inner::Lblc(s) => s.entries(),
            Inner::Lblcr(s) => s.entries(),
            _ => 0,
        }
    }
}

/// A plain dest for tests and benches (of this crate and of the engine).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct TestDest {
    /// [`DestView::id`].
    pub id: u32,
    /// [`DestView::addr`].
    pub addr: Addr,
    /// [`DestView::port`].
    pub port: u16,
    /// [`DestView::weight`].
    pub weight: i32,
    /// [`DestView::activeconns`].
    pub active: u32,
    /// [`DestView::inactconns`].
    pub inactive: u32,
    /// [`DestView::overloaded`].
    pub overloaded: bool,
}

impl TestDest {
    /// Dest `id` at 10.0.(id>>8).(id&255):80 with `weight` and no connections.
    pub fn new(id: u32, weight: i32) -> Self {
        Self {
            id,
            addr: Addr::v4([10, 0, (id >> 8) as u8, id as u8]),
            port: 80,
            weight,
            active: 0,
            inactive: 0,
            overloaded: false,
        }
    }

    /// The same dest with `active` and `inactive` connections.
    pub fn conns(mut self, active: u32, inactive: u32) -> Self {
        self.active = active;
        self.inactive = inactive;
        self
    }

    /// The same dest with the overload flag set.
    pub fn with_overload(mut self) -> Self {
        self.overloaded = true;
        self
    }
}

impl DestView for TestDest {
    fn id(&self) -> u32 {
        self.id
    }
    fn addr(&self) -> Addr {
        self.addr
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn weight(&self) -> i32 {
        self.weight
    }
    fn activeconns(&self) -> u32 {
        self.active
    }
    fn inactconns(&self) -> u32 {
        self.inactive
    }
    fn overloaded(&self) -> bool {
        self.overloaded
    }
}

#[cfg(test)]
mod tests;
