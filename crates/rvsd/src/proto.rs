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
}

/// rvsd's answer.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub enum Response {
    /// Done.
    Done,
    /// The table.
    Snapshot(Box<adm::Snapshot>),
    /// Refused; nothing changed.
    Error {
        /// What to print.
        message: String,
        /// The exit status ipvsadm would use.
        exit_code: i32,
    },
}
