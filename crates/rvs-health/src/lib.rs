//! Health checks for rvs real servers, with keepalived's semantics.
//!
//! - [`spec`]: what to check, as keepalived.conf says it (plain data; the
//!   keepalived parser produces it, the checkers consume it).
//! - [`probe`](mod@probe): one async probe per checker kind (TCP_CHECK, HTTP_GET,
//!   SSL_GET, UDP_CHECK, DNS_CHECK, SMTP_CHECK, PING_CHECK, MISC_CHECK),
//!   each giving a [`ProbeResult`]; [`probe::validate`] finds what in a
//!   spec cannot work (for `rvsd --check`).
//! - [`policy`]: keepalived's per-check state machine (retry,
//!   delay_before_retry, delay_loop, alpha, warmup, fast_recovery), pure,
//!   driven by the caller's clock; [`combine`] gives a real server's state
//!   from its checkers' states.
//! - [`monitor`]: the runtime: a thread with its own tokio runtime that
//!   runs every check with bounded concurrency and spread start times, and
//!   reports state changes as [`Event`]s.
//!
//! ```no_run
//! use rvs_health::{Monitor, MonitorConfig, Target};
//! let (tx, rx) = std::sync::mpsc::channel();
//! let mon = Monitor::start(MonitorConfig { max_concurrent: 64 }, tx).unwrap();
//! let checks: Vec<Target> = Vec::new(); // from the keepalived parser
//! mon.set(checks);
//! for ev in rx.try_iter() {
//!     println!("{} {:?}: {:?} ({})", ev.target.addr, ev.target.spec.kind, ev.state, ev.reason);
//! }
//! mon.stop();
//! ```

#![deny(missing_docs)]

pub mod monitor;
pub mod policy;
pub mod probe;
pub mod spec;

pub use monitor::{CheckStatus, Event, Monitor, MonitorConfig, Sink, Target};
pub use policy::{Policy, PolicyParams, ProbeResult, State, combine};
pub use probe::probe;
