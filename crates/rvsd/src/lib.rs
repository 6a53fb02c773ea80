//! rvsd: the daemon around the rvs engine.
//!
//! - [`config`]: the native TOML configuration, checked whole (FILE:LINE
//!   errors, nothing applied from a bad file);
//! - [`keepalived`]: a keepalived.conf as the same table plus its health
//!   checks ([`health`]: keepalived's real-server and quorum rules;
//!   [`supervise`]: the checks' answers into the running table);
//! - [`model`]: the desired configuration (`Model::apply` / `Model::reload`);
//! - [`control`]: the model and its workers; every change is validated on a
//!   scratch director before any worker sees it (all or nothing); reloads
//!   apply only the difference;
//! - [`worker`]: one thread per receive queue owning a `Director`, changes
//!   applied between batches; packet I/O behind [`worker::Port`];
//! - [`handoff`]: each frame's owner worker (a hash of the client's
//!   network) and the lock-free rings frames cross workers by;
//! - [`markpath`]: the fwmark path's routing (marked packets into rvsd's
//!   veth pair, where the dataplane reads their mark);
//! - [`server`]: the control socket rvsadm talks to ([`proto`]);
//! - [`metrics`]: Prometheus text on an opt-in address.

#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod control;
pub mod convert;
pub mod dataplane;
pub mod handoff;
pub mod health;
pub mod keepalived;
pub mod markpath;
pub mod metrics;
pub mod model;
pub mod nexthop;
pub mod proto;
pub mod server;
pub mod supervise;
pub mod worker;
