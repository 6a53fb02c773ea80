//! The rvs engine: IPVS's director as a pure state machine.
//!
//! Frames and a clock go in, verdicts and rewritten frames come out; nothing
//! here does I/O or reads a clock. The layout follows the kernel's
//! `net/netfilter/ipvs/`: the packet path of `ip_vs_core.c` and the
//! control operations of `ip_vs_ctl.c` are in [`Director`]; schedulers are
//! in `rvs-sched` (one module per `ip_vs_<name>.c`); the connection table
//! and protocol state machines (`ip_vs_conn.c`, `ip_vs_proto_*.c`) are in
//! `rvs-conn`; packet rewriting and encapsulation (`ip_vs_xmit.c`) use
//! `rvs-wire`; counters and the rate estimator (`ip_vs_est.c`) are in
//! [`stats`].
//!
//! ```text
//! frame ─► parse (rvs-wire) ─► conn lookup (in, then out) ─┬─ hit ─► state + stats ─► transform ─► Verdict
//!                                                            └─ miss ─► service lookup ─► persistence / scheduler
//!                                                                         ─► new conn ─► transform ─► Verdict
//! ```

mod director;
pub mod load;
mod model;
mod service;
pub mod stats;
mod verdict;

pub use director::{
    ChecksumPolicy, ConnSnapshot, DestSnapshot, Director, DirectorConfig, Event, GlobalStats,
    ServiceSnapshot,
};
pub use model::{ConfigError, DestConfig, Forward, NoDest, ServiceConfig, ServiceKey};
pub use rvs_conn::{Conn, ConnFlags, ConnId};
pub use rvs_sched::{SchedFlags, SchedKind, SchedParams};
pub use rvs_wire::encap::TunnelKind;
pub use verdict::{Direction, DropReason, Forward as ForwardTo, RxMeta, Verdict};
