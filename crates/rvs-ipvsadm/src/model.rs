//! What ipvsadm commands carry and what listings show, as plain data
//! (serde, so the daemon protocol can carry it).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// IPPROTO_TCP.
pub const TCP: u8 = 6;
/// IPPROTO_UDP.
pub const UDP: u8 = 17;
/// IPPROTO_SCTP.
pub const SCTP: u8 = 132;

/// `IP_VS_SVC_F_PERSISTENT`.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_SVC_F_ONEPACKET`.
pub const SVC_F_ONEPACKET: u32 = 0x0004;
/// `IP_VS_SVC_F_SCHED1` (sh-fallback, mh-fallback, flag-1).
pub const SVC_F_SCHED1: u32 = 0x0008;
/// `IP_VS_SVC_F_SCHED2` (sh-port, mh-port, flag-2).
pub const SVC_F_SCHED2: u32 = 0x0010;
/// `IP_VS_SVC_F_SCHED3` (flag-3).
pub const SVC_F_SCHED3: u32 = 0x0020;
/// All scheduler flag bits.
pub const SVC_F_SCHED_MASK: u32 = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

/// Default persistence timeout (`IPVS_SVC_PERSISTENT_TIMEOUT`, 5 minutes).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;

/// A virtual service as named on the command line.
#[derive(Clone, Copy, Debug, Deserialize, Eq, Hash, PartialEq, Serialize)]
pub enum ServiceKey {
    /// `-t`, `-u`, `--sctp-service` host[:port].
    Addr {
        /// TCP, UDP or SCTP protocol number.
        proto: u8,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port (0 when not given).
        port: u16,
    },
    /// `-f mark [-6]`.
    Fwmark {
        /// The mark.
        mark: u32,
        /// `-6`: the fwmark service is IPv6.
        ipv6: bool,
    },
}

impl ServiceKey {
    /// Whether the service is IPv6.
    pub fn is_ipv6(&self) -> bool {
        match self {
            Self::Addr { addr, .. } => addr.is_ipv6(),
            Self::Fwmark { ipv6, .. } => *ipv6,
        }
    }
}

/// A virtual service's settings (`ipvs_service_t`).
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct Service {
    /// Which service.
    pub key: ServiceKey,
    /// Scheduler name (ipvsadm does not check it; the kernel does).
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags.
    pub flags: u32,
    /// Persistence timeout in seconds (meaningful with [`SVC_F_PERSISTENT`]).
    pub timeout: u32,
    /// Persistence granularity: an IPv4 netmask (network byte order value,
    /// e.g. 0xffffff00 for /24) or an IPv6 prefix length.
    pub netmask: u32,
    /// Persistence engine (`--pe`), empty when none.
    pub pe_name: String,
}

/// A forwarding method (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Clone, Copy, Debug, Deserialize, Eq, Hash, PartialEq, Serialize)]
pub enum Forward {
    /// `-m`: Masq.
    Masq,
    /// The real server is local: Local.
    Local,
    /// `-i`: Tunnel.
    Tunnel,
    /// `-g`: Route (ipvsadm's default).
    Route,
}

/// Tunnel types (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
pub const TUN_IPIP: u8 = 0;
/// GUE.
pub const TUN_GUE: u8 = 1;
/// GRE.
pub const TUN_GRE: u8 = 2;
/// Tunnel encapsulation flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`): no checksum.
pub const TUN_F_NOCSUM: u8 = 0;
/// With checksum.
pub const TUN_F_CSUM: u8 = 1;
/// With remote checksum offload.
pub const TUN_F_REMCSUM: u8 = 2;

/// A real server's settings (`ipvs_dest_t`).
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct Dest {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding method.
    pub fwd: Forward,
    /// Weight.
    pub weight: i32,
    /// Upper threshold (0 = none).
    pub u_threshold: u32,
    /// Lower threshold (0 = none).
    pub l_threshold: u32,
    /// Tunnel type ([`TUN_IPIP`], [`TUN_GUE`], [`TUN_GRE`]).
    pub tun_type: u8,
    /// Tunnel destination port (GUE).
    pub tun_port: u16,
    /// Tunnel checksum flag ([`TUN_F_NOCSUM`], ...).
    pub tun_flags: u8,
}

/// Connection sync daemon settings (`ipvs_daemon_t`).
#[derive(Clone, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
pub struct Daemon {
    /// "master" or "backup".
    pub state: String,
    /// Multicast interface.
    pub mcast_ifn: String,
    /// Sync id.
    pub syncid: u32,
    /// Maximum sync message length (0 = default).
    pub sync_maxlen: u32,
    /// Multicast group, when set.
    pub mcast_group: Option<IpAddr>,
    /// Multicast port (0 = default).
    pub mcast_port: u16,
    /// Multicast TTL (0 = default).
    pub mcast_ttl: u8,
}

/// What a command line asks for.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub enum Command {
    /// `-A`.
    AddService(Service),
    /// `-E`.
    EditService(Service),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-R`: read commands from standard input.
    Restore,
    /// `-S`: print the table as commands.
    Save,
    /// `-a`.
    AddDest(ServiceKey, Dest),
    /// `-e`.
    EditDest(ServiceKey, Dest),
    /// `-d`.
    DelDest(ServiceKey, IpAddr, u16),
    /// `-L`/`-l` (the listing variant is in [`ListOptions`]).
    List(Option<ServiceKey>),
    /// `-Z`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`.
    SetTimeouts {
        /// Established TCP timeout (0 = unchanged).
        tcp: u32,
        /// TCP FIN_WAIT timeout (0 = unchanged).
        tcpfin: u32,
        /// UDP timeout (0 = unchanged).
        udp: u32,
    },
    /// `--start-daemon`.
    StartDaemon(Daemon),
    /// `--stop-daemon`.
    StopDaemon(Daemon),
}

/// Listing options (`FMT_*` and the list command's selectors).
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
pub struct ListOptions {
    /// `-n`.
    pub numeric: bool,
    /// `-c`: connections.
    pub connections: bool,
    /// `--timeout`.
    pub timeout: bool,
    /// `--daemon`.
    pub daemon: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--exact`.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
}

/// A parsed command line.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct Invocation {
    /// The command.
    pub command: Command,
    /// Listing options given with it.
    pub list: ListOptions,
}

/// Counters (`ip_vs_stats64`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
pub struct Stats {
    /// Connections.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// A real server in a listing.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct DestEntry {
    /// Settings.
    pub dest: Dest,
    /// Active connections.
    pub activeconns: u32,
    /// Inactive connections.
    pub inactconns: u32,
    /// Persistence templates.
    pub persistconns: u32,
    /// Counters and rates.
    pub stats: Stats,
}

/// A virtual service in a listing.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct ServiceEntry {
    /// Settings.
    pub service: Service,
    /// Counters and rates.
    pub stats: Stats,
    /// Real servers, in the daemon's (kernel) order.
    pub dests: Vec<DestEntry>,
}

/// A connection in `-L -c` (one line of `/proc/net/ip_vs_conn`).
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct ConnEntry {
    /// Protocol name as the kernel prints it ("TCP", "UDP", "SCTP", "IP").
    pub proto: String,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// State name.
    pub state: String,
    /// Seconds until it expires.
    pub expires: u64,
    /// Persistence engine name and data, when any.
    pub pe: Option<(String, String)>,
}

/// Everything listings are rendered from.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct Snapshot {
    /// Connection table size shown in the header (`size=%d`).
    pub conn_tab_size: u32,
    /// Services in the daemon's order.
    pub services: Vec<ServiceEntry>,
    /// Connections.
    pub conns: Vec<ConnEntry>,
    /// (tcp, tcpfin, udp) timeouts.
    pub timeouts: (u32, u32, u32),
    /// Running sync daemons.
    pub daemons: Vec<Daemon>,
}
