//! keepalived.conf for rvs: an existing keepalived 2.x configuration read
//! into plain data — virtual servers, real servers, their health checks as
//! [`rvs_health::spec::CheckSpec`]s, and the VRRP blocks kept for the
//! high-availability work.
//!
//! # What is read, and how
//!
//! - **Lexing as keepalived does** (`lib/parser.c`, `keepalived.conf(5)`):
//!   `#` and `!` start a comment anywhere outside quotes; `"…"` and `'…'`
//!   quote (with the shell-like escapes); `{` and `}` are tokens of their own
//!   and a `{` may sit on the keyword's line or alone on the next one.
//! - **`include FILE|GLOB`** (and `includer`/`includem`/`includew`/
//!   `includeb`/`includea`): relative to the directory of the including
//!   file, nested, globs sorted. A cycle, a missing file or a read error is
//!   an error at the include line; a glob that matches nothing is a warning
//!   (an empty `conf.d/*` is normal). As in keepalived, `include` is seen
//!   before conditionals and parameter substitution.
//! - **`$NAME=value`** definitions (multi-line with a trailing `\`) and
//!   `$NAME` / `${NAME}` substitution, recursive, at use time; an undefined
//!   name is left as written. Pre-defined: `${_PWD}`, `${_INSTANCE}`,
//!   `${_HASH}`, `${_BANG}`. Not supported (error): `~SEQ`/`~LST` blocks;
//!   `${_RANDOM}` is a warning and left as written.
//! - **`@name` / `@^name`** line prefixes: the line is kept when `name`
//!   equals (or, with `^`, differs from) [`Options::config_id`]. keepalived
//!   defaults the config id to the host name; here there is no default:
//!   with no config id every `@name` line is skipped and every `@^name`
//!   line kept (as keepalived does for an id that matches no name). For
//!   keepalived's behaviour pass its `-i` value, or
//!   [`Options::host_config_id`] (the short host name, keepalived's
//!   default).
//!
//! # Errors and warnings
//!
//! A value keepalived would reject or "ignore with a config error" (bad
//! number, bad address, unknown `lb_algo`, weight out of range, unbalanced
//! braces, missing value, …) is an **error**: `FILE:LINE: why`, and the
//! whole load fails. Where keepalived instead *corrects* a combination and
//! runs (a DR real server's port reset to the service's, `ops` without UDP
//! dropped, quorum above the pool's weight reduced, a duplicate real server
//! dropped, `sh-port` with another scheduler dropped, a port-less service
//! made persistent), rvs makes the same correction and warns. A keyword rvs
//! does not act on yet (`BFD_CHECK`, `FILE_CHECK`, `smtp_alert`,
//! `snmp_name`, `nftables_ipvs`, any unknown keyword) is a **warning**
//! naming the file, line and keyword. VRRP blocks (`vrrp_instance`,
//! `vrrp_sync_group`, `vrrp_script`, `static_ipaddress`, …) are kept as a
//! [`Block`] tree and not validated yet. Messages come in file order.
//!
//! # Resolution
//!
//! Values keepalived inherits are resolved here, so the consumer needs no
//! keepalived knowledge: a real server's weight, inhibit_on_failure and
//! port come from its virtual server when not set; each checker's
//! connect_timeout, retry, delay_before_retry, warmup, delay_loop and alpha
//! come from the checker, else its real server, else its virtual server,
//! else the checker type's default (see [`rvs_health::spec::Common`]).

#![deny(missing_docs)]

mod check;
mod global;
mod lex;
mod lvs;
mod tree;
mod value;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rvs_health::spec;

/// How to read a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// keepalived's config id (`-i`/`--config-id`), matched by `@name` and
    /// `@^name` line prefixes and given as `${_INSTANCE}`. `None`: no id,
    /// so `@name` lines are skipped and `@^name` lines kept.
    pub config_id: Option<String>,
}

impl Options {
    /// keepalived's default config id: the host name up to its first dot
    /// (read from `/proc/sys/kernel/hostname`; no id if that fails).
    pub fn host_config_id() -> Self {
        let id = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(|h| h.trim().split('.').next().map(str::to_string))
            .filter(|h| !h.is_empty());
        Self { config_id: id }
    }
}

/// One message about the configuration, at a place in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diag {
    /// The file (as named on the command line or by `include`).
    pub file: PathBuf,
    /// 1-based line; 0 when the message is about the file as a whole.
    pub line: u32,
    /// Why.
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Why a configuration was rejected: one or more errors, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors(pub Vec<Diag>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// A configuration that loaded, with what rvs does not act on.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings (unsupported or unknown keywords, corrections keepalived
    /// also makes), in file order.
    pub warnings: Vec<Diag>,
}

/// A whole keepalived configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// `global_defs`.
    pub global: GlobalDefs,
    /// `virtual_server_group NAME { … }`, in file order.
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    /// `virtual_server … { … }`, in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// `vrrp_instance NAME { … }`, kept as written.
    pub vrrp_instances: Vec<Block>,
    /// `vrrp_sync_group NAME { … }`, kept as written.
    pub vrrp_sync_groups: Vec<Block>,
    /// `vrrp_script NAME { … }`, kept as written.
    pub vrrp_scripts: Vec<Block>,
    /// Every other top-level block rvs keeps without acting on it yet
    /// (`static_ipaddress`, `static_routes`, `static_rules`,
    /// `linkbeat_interfaces`, `track_file`, `track_process`, `garp_group`,
    /// `bfd_instance`, `SSL`, `net_namespace`, …), as written.
    pub other: Vec<Block>,
}

impl Config {
    /// The virtual server group of this name.
    pub fn group(&self, name: &str) -> Option<&VirtualServerGroup> {
        self.virtual_server_groups.iter().find(|g| g.name == name)
    }
}

/// A keyword, its arguments and its sub-block, as written (after include,
/// conditionals and substitution), with where it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    /// File of the keyword.
    pub file: PathBuf,
    /// Line of the keyword.
    pub line: u32,
    /// The first word.
    pub keyword: String,
    /// The other words on the keyword's line (quotes removed).
    pub args: Vec<String>,
    /// The `{ … }` that follows, if any.
    pub children: Option<Vec<Self>>,
}

impl Block {
    /// The first argument (a block's name, e.g. `VI_1`).
    pub fn name(&self) -> Option<&str> {
        self.args.first().map(String::as_str)
    }

    /// The children, or nothing.
    pub fn children(&self) -> &[Self] {
        self.children.as_deref().unwrap_or(&[])
    }

    /// Children with this keyword.
    pub fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Self> + 'a {
        self.children().iter().filter(move |b| b.keyword == keyword)
    }

    /// The last child with this keyword (keepalived: the last one wins).
    pub fn get(&self, keyword: &str) -> Option<&Self> {
        self.children().iter().rev().find(|b| b.keyword == keyword)
    }
}

/// `global_defs { … }`: what rvs reads; everything else is in
/// [`GlobalDefs::other`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GlobalDefs {
    /// `router_id`.
    pub router_id: Option<String>,
    /// `lvs_timeouts [tcp S] [tcpfin S] [udp S]` (`ipvsadm --set`).
    pub lvs_timeouts: LvsTimeouts,
    /// `lvs_sync_daemon`.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `lvs_flush`: flush the IPVS table at start.
    pub lvs_flush: bool,
    /// `lvs_flush_on_stop [VS]`.
    pub lvs_flush_on_stop: FlushOnStop,
    /// `notification_email { … }` addresses.
    pub notification_email: Vec<String>,
    /// `notification_email_from`.
    pub notification_email_from: Option<String>,
    /// `smtp_server ADDR [PORT]`, as written.
    pub smtp_server: Option<String>,
    /// `smtp_helo_name`.
    pub smtp_helo_name: Option<String>,
    /// `smtp_connect_timeout`.
    pub smtp_connect_timeout: Option<Duration>,
    /// `smtp_alert`.
    pub smtp_alert: Option<bool>,
    /// `smtp_alert_checker`.
    pub smtp_alert_checker: Option<bool>,
    /// `checker_log_all_failures`: the default of every checker's
    /// `log_all_failures` (already applied to the specs).
    pub checker_log_all_failures: bool,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`: default user of scripts.
    pub script_user: Option<(String, Option<String>)>,
    /// Every other `global_defs` keyword, as written (`vrrp_*` ones for the
    /// HA work; the others were warned about).
    pub other: Vec<Block>,
}

/// `lvs_timeouts`, seconds; `None` leaves the kernel's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    /// `tcp` (ESTABLISHED).
    pub tcp: Option<u32>,
    /// `tcpfin` (FIN_WAIT).
    pub tcpfin: Option<u32>,
    /// `udp`.
    pub udp: Option<u32>,
}

/// `lvs_sync_daemon IF [[inst] VRRP] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    /// Multicast interface.
    pub interface: String,
    /// The VRRP instance whose state drives master/backup.
    pub instance: Option<String>,
    /// `id` (syncid, 0..=255).
    pub id: Option<u8>,
    /// `maxlen`.
    pub maxlen: Option<u16>,
    /// `port`.
    pub port: Option<u16>,
    /// `ttl` (1..=255).
    pub ttl: Option<u8>,
    /// `group` (multicast address).
    pub group: Option<IpAddr>,
}

/// `lvs_flush_on_stop`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushOnStop {
    /// Not set: remove what keepalived configured, one by one.
    #[default]
    No,
    /// `lvs_flush_on_stop`: flush the whole IPVS table.
    All,
    /// `lvs_flush_on_stop VS`: remove only the configured virtual servers.
    Vs,
}

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `inet`.
    Inet,
    /// `inet6`.
    Inet6,
}

/// `virtual_server_group NAME { … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServerGroup {
    /// Where.
    pub file: PathBuf,
    /// Where.
    pub line: u32,
    /// The name.
    pub name: String,
    /// The entries, in order.
    pub members: Vec<GroupMember>,
}

/// One entry of a virtual server group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupMember {
    /// `IP [PORT]`.
    Addr {
        /// Address.
        ip: IpAddr,
        /// Port (`None`: not given, persistent services only).
        port: Option<u16>,
    },
    /// `A.B.C.D-E`, `A.B.C.D-E.F.G.H`, `A.B.C.D/NN` (or the IPv6 forms:
    /// `X::A-B` ranges the last 16-bit group, in hex), inclusive.
    Range {
        /// First address.
        first: IpAddr,
        /// Last address (same family, not below `first`).
        last: IpAddr,
        /// Port.
        port: Option<u16>,
    },
    /// `fwmark N [inet|inet6]`.
    Fwmark {
        /// The mark.
        mark: u32,
        /// Family, when given.
        family: Option<Family>,
    },
}

/// What a virtual server is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VsKey {
    /// `virtual_server IP [PORT]`.
    Addr {
        /// Address.
        ip: IpAddr,
        /// Port (`None`: none or 0, persistent services only).
        port: Option<u16>,
    },
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME` (a [`VirtualServerGroup`] that exists).
    Group(String),
}

impl fmt::Display for VsKey {
    /// `10.0.0.1:80`, `[2001:db8::1]:80`, `10.0.0.1` (no port),
    /// `fwmark 3`, `group NAME`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr {
                ip: IpAddr::V6(a),
                port: Some(p),
            } => write!(f, "[{a}]:{p}"),
            Self::Addr { ip, port: Some(p) } => write!(f, "{ip}:{p}"),
            Self::Addr { ip, port: None } => write!(f, "{ip}"),
            Self::Fwmark(m) => write!(f, "fwmark {m}"),
            Self::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// Scheduler flags (`ipvsadm -b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedFlag {
    /// `flag-1`.
    Flag1,
    /// `flag-2`.
    Flag2,
    /// `flag-3`.
    Flag3,
    /// `sh-fallback` (flag-1 of `sh`).
    ShFallback,
    /// `sh-port` (flag-2 of `sh`).
    ShPort,
    /// `mh-fallback` (flag-1 of `mh`).
    MhFallback,
    /// `mh-port` (flag-2 of `mh`).
    MhPort,
}

impl SchedFlag {
    /// The service flag bit (`IP_VS_SVC_F_SCHED1/2/3` = 0x08/0x10/0x20).
    pub fn bit(self) -> u32 {
        match self {
            Self::Flag1 | Self::ShFallback | Self::MhFallback => 0x08,
            Self::Flag2 | Self::ShPort | Self::MhPort => 0x10,
            Self::Flag3 => 0x20,
        }
    }
}

/// Forwarding method (`lb_kind` / `lvs_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Method {
    /// `NAT` (masquerading), keepalived's default.
    #[default]
    Nat,
    /// `DR` (direct routing / gatewaying).
    Dr,
    /// `TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]`.
    Tun {
        /// Encapsulation.
        kind: TunKind,
        /// Checksum option.
        csum: TunCsum,
    },
}

impl fmt::Display for Method {
    /// As keepalived writes it: `NAT`, `DR`, `TUN type gue port 6080 csum`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nat => f.write_str("NAT"),
            Self::Dr => f.write_str("DR"),
            Self::Tun { kind, csum } => {
                f.write_str("TUN")?;
                match kind {
                    TunKind::Ipip => {}
                    TunKind::Gue { port } => write!(f, " type gue port {port}")?,
                    TunKind::Gre => f.write_str(" type gre")?,
                }
                match csum {
                    TunCsum::NoCsum => Ok(()),
                    TunCsum::Csum => f.write_str(" csum"),
                    TunCsum::RemCsum => f.write_str(" remcsum"),
                }
            }
        }
    }
}

/// Tunnel encapsulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunKind {
    /// IP-in-IP (the default).
    #[default]
    Ipip,
    /// GUE to this UDP port.
    Gue {
        /// Destination UDP port.
        port: u16,
    },
    /// GRE.
    Gre,
}

/// Tunnel checksum option (GUE and GRE only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunCsum {
    /// `nocsum` (the default).
    #[default]
    NoCsum,
    /// `csum`.
    Csum,
    /// `remcsum` (GUE only).
    RemCsum,
}

/// Layer-4 protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    /// `TCP`, `UDP`, `SCTP`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        })
    }
}

/// A script keepalived runs: `notify_up`, `quorum_up`, ….
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Script {
    /// The command line as written (a quoted string stays one string;
    /// keepalived splits it on unquoted spaces, `'…'` keeping spaces).
    pub command: String,
    /// User to run as (else `global_defs script_user`, else keepalived's
    /// default).
    pub user: Option<String>,
    /// Group to run as.
    pub group: Option<String>,
}

/// `sorry_server IP [PORT]` with its `sorry_server_lvs_method`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SorryServer {
    /// Address.
    pub ip: IpAddr,
    /// Port (resolved like a real server's).
    pub port: Option<u16>,
    /// `sorry_server_lvs_method`; `None`: the virtual server's method.
    pub method: Option<Method>,
}

/// `virtual_server … { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    /// Where.
    pub file: PathBuf,
    /// Where.
    pub line: u32,
    /// Address and port, fwmark or group.
    pub key: VsKey,
    /// `ip_family`, else the family of the address, persistence
    /// granularity or non-tunnelled real servers; `None` only for a
    /// fwmark or group service where nothing says.
    pub ip_family: Option<Family>,
    /// `lb_algo` / `lvs_sched` (default `wlc`, as keepalived).
    pub sched: String,
    /// Scheduler flags.
    pub sched_flags: Vec<SchedFlag>,
    /// `ops`: one-packet scheduling.
    pub ops: bool,
    /// `lb_kind` / `lvs_method` (default NAT).
    pub method: Method,
    /// `protocol`. Not given: UDP, as keepalived 2.x sets it (the kernel's
    /// reading of protocol 0), with a warning; ignored by IPVS for fwmark
    /// services (left TCP there).
    pub protocol: Protocol,
    /// `persistence_timeout` seconds; `persistence_timeout` alone is 360
    /// (keepalived's 6 minutes); 0 or absent: not persistent.
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity`: an IPv4 netmask or an IPv6 prefix length,
    /// as written (validated).
    pub persistence_granularity: Option<String>,
    /// `persistence_engine` (e.g. `sip`).
    pub persistence_engine: Option<String>,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `quorum_up`.
    pub quorum_up: Option<Script>,
    /// `quorum_down`.
    pub quorum_down: Option<Script>,
    /// `sorry_server`.
    pub sorry_server: Option<SorryServer>,
    /// `sorry_server_inhibit`.
    pub sorry_server_inhibit: bool,
    /// `ha_suspend`.
    pub ha_suspend: bool,
    /// `virtualhost` (already applied to HTTP checks).
    pub virtualhost: Option<String>,
    /// `alpha` (already applied to checks).
    pub alpha: bool,
    /// `omega`.
    pub omega: bool,
    /// `inhibit_on_failure` (already applied to real servers).
    pub inhibit_on_failure: bool,
    /// What becomes of the connections of a real server that failed or was
    /// removed (rvs extensions, one per virtual_server): `nodest
    /// keep|drop|expire`, or the per-service form of IPVS's sysctl,
    /// `expire_nodest_conn [on|off]` (on is expire, off is drop). `None`:
    /// the director's default (rvs: keep for TCP and SCTP, expire for UDP).
    pub nodest: Option<NoDest>,
    /// `delay_loop` (default 60 s; already applied to checks).
    pub delay_loop: Duration,
    /// The real servers, in order.
    pub real_servers: Vec<RealServer>,
}

impl VirtualServer {
    /// The forwarding method of a real server: its own, else this
    /// virtual server's.
    pub fn method_of(&self, rs: &RealServer) -> Method {
        rs.method.unwrap_or(self.method)
    }
}

/// A virtual server's choice for the connections of a real server that
/// failed or was removed (`nodest`, `expire_nodest_conn`; rvs's engine
/// policy of the same name).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum NoDest {
    /// `nodest keep`: they go on to it until they end.
    Keep,
    /// `nodest drop`, `expire_nodest_conn off`: their packets are dropped
    /// and the entries time out (IPVS's default).
    Drop,
    /// `nodest expire`, `expire_nodest_conn [on]`: flushed on their next
    /// packet, which is scheduled afresh when it can open a connection.
    Expire,
}

/// `real_server IP [PORT] { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    /// Where.
    pub file: PathBuf,
    /// Where.
    pub line: u32,
    /// Address.
    pub ip: IpAddr,
    /// Port: as written, else the virtual server's (as keepalived); for
    /// DR/TUN always the virtual server's; `None` for fwmark services
    /// unless NAT with a port.
    pub port: Option<u16>,
    /// `weight` 0..=2147483647, keepalived's range (default: the virtual
    /// server's `weight`, 1). ipvsadm stops at 65535.
    pub weight: u32,
    /// `lvs_method`; `None`: the virtual server's
    /// ([`VirtualServer::method_of`]).
    pub method: Option<Method>,
    /// `inhibit_on_failure` (own, else the virtual server's): on failure
    /// set weight 0 instead of removing.
    pub inhibit_on_failure: bool,
    /// `uthreshold`.
    pub uthreshold: Option<u32>,
    /// `lthreshold`.
    pub lthreshold: Option<u32>,
    /// `notify_up`.
    pub notify_up: Option<Script>,
    /// `notify_down`.
    pub notify_down: Option<Script>,
    /// The checkers, complete (inheritance resolved). An `SMTP_CHECK` with
    /// `host { }` sub-blocks gives one spec per host.
    pub checks: Vec<spec::CheckSpec>,
}

/// Reads a configuration file and what it includes.
pub fn load(path: &Path) -> Result<Loaded, Errors> {
    load_with(path, &Options::default())
}

/// [`load`] with options.
pub fn load_with(path: &Path, opts: &Options) -> Result<Loaded, Errors> {
    let mut lx = lex::Lexer::new(opts);
    lx.load_root(path);
    finish(lx)
}

/// Reads a configuration given as text; `name` is used in messages.
/// Absolute `include`s are followed; relative ones are an error (there is
/// no directory to resolve them against).
pub fn parse_str(name: &str, text: &str) -> Result<Loaded, Errors> {
    parse_str_with(name, text, &Options::default())
}

/// [`parse_str`] with options.
pub fn parse_str_with(name: &str, text: &str, opts: &Options) -> Result<Loaded, Errors> {
    let mut lx = lex::Lexer::new(opts);
    lx.text_root(name, text);
    finish(lx)
}

fn finish(lx: lex::Lexer<'_>) -> Result<Loaded, Errors> {
    let files = lx.files().to_vec();
    let (lines, mut sink) = lx.into_parts();
    let blocks = tree::build(lines, &mut sink);
    let config = lvs::config(&blocks, &mut sink);
    // File order (as read), then line; stable, so same-line messages keep
    // the order they were found in.
    let rank = |d: &Diag| {
        (
            files
                .iter()
                .position(|f| *f == d.file)
                .unwrap_or(usize::MAX),
            d.line,
        )
    };
    sink.errors.sort_by_key(rank);
    sink.warnings.sort_by_key(rank);
    // The same message twice (e.g. from repeated substitution passes) once.
    for list in [&mut sink.errors, &mut sink.warnings] {
        let mut seen = std::collections::HashSet::new();
        list.retain(|d| seen.insert(d.clone()));
    }
    if sink.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: sink.warnings,
        })
    } else {
        Err(Errors(sink.errors))
    }
}

/// Collected diagnostics.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) errors: Vec<Diag>,
    pub(crate) warnings: Vec<Diag>,
}

/// Most errors kept (the rest would be noise after a structural error).
const MAX_ERRORS: usize = 100;

impl Sink {
    pub(crate) fn err(&mut self, file: &Path, line: u32, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(Diag {
                file: file.to_path_buf(),
                line,
                message: message.into(),
            });
        }
    }

    pub(crate) fn warn(&mut self, file: &Path, line: u32, message: impl Into<String>) {
        if self.warnings.len() < 10 * MAX_ERRORS {
            self.warnings.push(Diag {
                file: file.to_path_buf(),
                line,
                message: message.into(),
            });
        }
    }

    pub(crate) fn err_at(&mut self, b: &Block, message: impl Into<String>) {
        self.err(&b.file, b.line, message);
    }

    pub(crate) fn warn_at(&mut self, b: &Block, message: impl Into<String>) {
        self.warn(&b.file, b.line, message);
    }
}
