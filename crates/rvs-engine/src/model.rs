//! The configuration model: what `ipvsadm -A/-a` and keepalived's
//! `virtual_server`/`real_server` describe.

use rvs_sched::{SchedFlags, SchedKind};
use rvs_types::{Addr, Af, Proto};
use rvs_wire::encap::TunnelKind;
use std::fmt;
use std::time::Duration;

/// How a virtual service is matched.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ServiceKey {
    /// `-t|-u|--sctp-service VIP:port`. Port 0 matches every port of the VIP
    /// for that protocol and needs persistence (as IPVS requires).
    Addr {
        /// TCP, UDP or SCTP.
        proto: Proto,
        /// The virtual IP.
        addr: Addr,
        /// The virtual port (0 = any).
        port: u16,
    },
    /// `-f mark [-6]`: packets carrying this firewall mark.
    Fwmark {
        /// The mark.
        mark: u32,
        /// Family of the packets it matches.
        af: Af,
    },
}

impl ServiceKey {
    /// Family of the service.
    pub fn af(&self) -> Af {
        match self {
            Self::Addr { addr, .. } => addr.af(),
            Self::Fwmark { af, .. } => *af,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr { proto, addr, port } if addr.is_v4() => {
                write!(f, "{} {}:{}", proto.ipvs_name(), addr, port)
            }
            Self::Addr { proto, addr, port } => {
                write!(f, "{} [{}]:{}", proto.ipvs_name(), addr, port)
            }
            Self::Fwmark { mark, af: Af::V4 } => write!(f, "FWM {mark}"),
            Self::Fwmark { mark, af: Af::V6 } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// A virtual service's settings (`ipvsadm -A/-E`).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// What the service matches.
    pub key: ServiceKey,
    /// Scheduler (default wlc, as ipvsadm).
    pub sched: SchedKind,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// Persistence timeout (`-p`); `None` = not persistent.
    pub persistence: Option<Duration>,
    /// Persistence granularity: prefix length of the client network (`-M`;
    /// 32 or 128 = per client address).
    pub netmask: u8,
    /// One-packet scheduling (`-o`, UDP only).
    pub ops: bool,
    /// What becomes of the connections of a real server removed from this
    /// service (see [`NoDest`]); `None` follows
    /// `DirectorConfig::nodest`.
    pub nodest: Option<NoDest>,
}

impl ServiceConfig {
    /// A service with ipvsadm's defaults: wlc, not persistent.
    pub fn new(key: ServiceKey) -> Self {
        let netmask = if key.af() == Af::V4 { 32 } else { 128 };
        Self {
            key,
            sched: SchedKind::Wlc,
            sched_flags: SchedFlags(0),
            persistence: None,
            netmask,
            ops: false,
            nodest: None,
        }
    }
}

/// What becomes of a connection whose real server is no longer available:
/// removed (`ipvsadm -d`, a reload without it, a failed health check
/// without `inhibit_on_failure`) or its service deleted. A quiescent
/// (weight 0) server is still available and is not concerned.
///
/// The policy is the connection's service's ([`ServiceConfig::nodest`]),
/// else the director's (`DirectorConfig::nodest`), else rvs's default per
/// protocol ([`NoDest::default_for`]).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum NoDest {
    /// The connection goes on to its real server until it ends (graceful
    /// removal; the server stays in the engine's trash meanwhile). rvs's
    /// default for TCP and SCTP: a reload or `-d` breaks no stream.
    Keep,
    /// IPVS with `expire_nodest_conn = 0` (its default): the packet is
    /// dropped (counted as `nodest_drop`) and the entry is not refreshed,
    /// so it dies by its own timeout.
    Drop,
    /// IPVS with `expire_nodest_conn = 1`: the entry is expired on its next
    /// packet; a TCP SYN, an SCTP INIT or a UDP datagram is scheduled afresh
    /// at once, anything else is dropped (counted as `nodest_conn`). A SYN
    /// on an entry of a quiescent server is scheduled afresh too (IPVS's
    /// reuse check). rvs's default for UDP, which has no handshake to
    /// recover with: the flow moves to a live server on its next datagram.
    Expire,
}

impl NoDest {
    /// rvs's policy when neither the service nor the director sets one:
    /// [`NoDest::Expire`] for UDP, [`NoDest::Keep`] for everything else.
    pub fn default_for(proto: Proto) -> Self {
        if proto == Proto::UDP {
            Self::Expire
        } else {
            Self::Keep
        }
    }

    /// The policy IPVS's `expire_nodest_conn` sysctl stands for: on is
    /// [`NoDest::Expire`], off is [`NoDest::Drop`].
    pub fn from_expire_nodest_conn(on: bool) -> Self {
        if on { Self::Expire } else { Self::Drop }
    }

    /// The configuration word: `keep`, `drop` or `expire`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Drop => "drop",
            Self::Expire => "expire",
        }
    }
}

impl std::str::FromStr for NoDest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Self::Keep),
            "drop" => Ok(Self::Drop),
            "expire" => Ok(Self::Expire),
            o => Err(format!("'{o}' is not one of keep, drop, expire")),
        }
    }
}

/// How packets reach a real server (IPVS `IP_VS_CONN_F_FWD_MASK`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Forward {
    /// NAT (`-m`): destination rewritten to the real server; replies come back
    /// through the director and get the VIP back as source.
    Masq,
    /// Direct routing (`-g`): only the MAC changes; the real server holds the
    /// VIP on a non-ARPing interface and answers the client directly.
    Route,
    /// Tunnel (`-i`): the packet is encapsulated to the real server.
    Tunnel(TunnelKind),
    /// The real server is the director itself (`Local` in listings): the
    /// packet is passed to the host stack.
    Local,
}

impl Forward {
    /// The word ipvsadm prints in the Forward column.
    pub fn ipvs_name(&self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Route => "Route",
            Self::Tunnel(_) => "Tunnel",
            Self::Local => "Local",
        }
    }
}

/// A real server's settings (`ipvsadm -a/-e`).
#[derive(Clone, Debug, PartialEq)]
pub struct DestConfig {
    /// Real server address.
    pub addr: Addr,
    /// Real server port (NAT may map; DR and TUN use the virtual port).
    pub port: u16,
    /// Weight (0 = quiescent).
    pub weight: i32,
    /// Forwarding method.
    pub fwd: Forward,
    /// Upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub l_threshold: u32,
}

impl DestConfig {
    /// A real server with ipvsadm's defaults: weight 1, direct routing.
    pub fn new(addr: Addr, port: u16) -> Self {
        Self {
            addr,
            port,
            weight: 1,
            fwd: Forward::Route,
            u_threshold: 0,
            l_threshold: 0,
        }
    }
}

/// Why a control request was refused. The running configuration is left
/// exactly as it was.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `-A` of a service that exists.
    #[error("Service already exists")]
    ServiceExists,
    /// A request naming a service that does not exist.
    #[error("No such service")]
    NoService,
    /// `-a` of a real server that exists in the service.
    #[error("Destination already exists")]
    DestExists,
    /// A request naming a real server the service does not have.
    #[error("No such destination")]
    NoDest,
    /// An argument IPVS would reject (the text says which and why).
    #[error("{0}")]
    Invalid(String),
}
