//! The control socket protocol: one JSON request per line, one JSON
//! response per line.

use rvs_ipvsadm as adm;
use serde::{Deserialize, Serialize};

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// A request to rvsd.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub enum Request {
    /// Apply these commands, all or none (one command for most ipvsadm
    /// invocations, every line for `-R`).
    Apply(Vec<adm::Command>),
    /// The current table, counters and connections.
    Snapshot,
    /// Re-read the configuration file and apply the difference.
    Reload,
    /// Director-wide figures: totals, drops by reason, connection entries,
    /// dataplane queues.
    Stats,
}

/// Director-wide figures (`/proc/net/ip_vs_stats` and more), summed over
/// the workers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct DaemonStats {
    /// Connections scheduled, packets and bytes in and out, over all
    /// services (the rate fields are the 2 s estimator's).
    pub totals: adm::Stats,
    /// Frames dropped, by reason label (every reason listed, zeros too).
    pub drops: Vec<(String, u64)>,
    /// Frames handed to the host stack.
    pub passed: u64,
    /// Live connection entries (templates included).
    pub conns: u64,
    /// Dataplane queues (empty without interfaces).
    pub queues: Vec<QueueFigures>,
    /// Dataplane workers, one per receive queue (empty without interfaces).
    #[serde(default)]
    pub workers: Vec<WorkerFigures>,
}

/// One dataplane worker's hand-off figures.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct WorkerFigures {
    /// Worker number (= the receive queue it polls).
    pub worker: u32,
    /// Frames it received and handed to their owner worker.
    pub handed_off: u64,
    /// Frames other workers handed to it.
    pub taken_over: u64,
    /// Frames dropped because a ring to another worker was full.
    pub ring_full: u64,
    /// Handed-over forwarded frames dropped for want of a next hop.
    pub no_next_hop: u64,
}

/// One interface queue's figures.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct QueueFigures {
    /// Interface name.
    pub iface: String,
    /// Queue number.
    pub queue: u32,
    /// Frames received.
    pub rx: u64,
    /// Frames queued for transmission.
    pub tx: u64,
    /// Frames not transmitted (TX ring or UMEM full).
    pub tx_full: u64,
    /// Forwarded frames dropped for want of a next hop.
    pub no_next_hop: u64,
}

/// rvsd's answer.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub enum Response {
    /// Done.
    Done,
    /// The table.
    Snapshot(Box<adm::Snapshot>),
    /// Director-wide figures.
    Stats(Box<DaemonStats>),
    /// Refused; nothing changed.
    Error {
        /// What to print.
        message: String,
        /// The exit status ipvsadm would use.
        exit_code: i32,
    },
}
