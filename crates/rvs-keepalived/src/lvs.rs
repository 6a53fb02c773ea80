//! The tree to a [`Config`]: top level, virtual server groups, virtual
//! servers, real servers.

use std::net::IpAddr;
use std::time::Duration;

use crate::check::{self, RawCheck};
use crate::global;
use crate::value::{self, arg, parse_uint};
use crate::{
    Block, Config, Family, GlobalDefs, GroupMember, Method, Protocol, RealServer, SchedFlag,
    Script, Sink, SorryServer, TunCsum, TunKind, VirtualServer, VirtualServerGroup, VsKey,
};

/// Schedulers keepalived accepts.
pub(crate) const SCHEDULERS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// keepalived's default persistence timeout (6 minutes).
pub(crate) const DEFAULT_PERSISTENCE: u32 = 360;
/// keepalived's longest LVS timeout (31 days).
const LVS_MAX_TIMEOUT: u64 = 86400 * 31;
/// IPVS weight limit.
/// keepalived's IPVS_WEIGHT_LIMIT (INT_MAX: the kernel's weight is an int;
/// ipvsadm itself stops at 65535).
const WEIGHT_LIMIT: u64 = i32::MAX as u64;

/// Top-level blocks kept without warning (the HA work types them).
const KEPT_QUIETLY: &[&str] = &[
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "static_track_group",
    "linkbeat_interfaces",
    "track_file",
    "vrrp_track_file",
    "track_process",
    "vrrp_track_process",
    "garp_group",
    "vrrp_garp_group",
];

/// Top-level keywords kept, with a warning that rvs does not act on them.
const KEPT_WARNED: &[&str] = &[
    "bfd_instance",
    "SSL",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "linkbeat_use_polling",
    "child_wait_time",
];

pub(crate) fn config(blocks: &[Block], sink: &mut Sink) -> Config {
    let mut cfg = Config::default();
    // First what others refer to: global_defs (checker defaults) and groups.
    for b in blocks {
        match b.keyword.as_str() {
            "global_defs" => global::global_defs(b, &mut cfg.global, sink),
            "virtual_server_group" => {
                if let Some(g) = group(b, sink) {
                    if cfg.virtual_server_groups.iter().any(|o| o.name == g.name) {
                        sink.err_at(b, format!("virtual_server_group {}: defined twice", g.name));
                    } else {
                        cfg.virtual_server_groups.push(g);
                    }
                }
            }
            _ => {}
        }
    }
    let mut seen: std::collections::HashMap<(VsKey, Option<Protocol>, Option<Family>), usize> =
        std::collections::HashMap::new();
    for b in blocks {
        let k = b.keyword.as_str();
        match k {
            "global_defs" | "virtual_server_group" => {}
            "virtual_server" => {
                if let Some(vs) = virtual_server(b, &cfg.virtual_server_groups, &cfg.global, sink) {
                    // IPVS ignores the protocol of a fwmark service.
                    let id = match vs.key {
                        VsKey::Fwmark(_) => (vs.key.clone(), None, vs.ip_family),
                        _ => (vs.key.clone(), Some(vs.protocol), None),
                    };
                    if let Some(&i) = seen.get(&id) {
                        let o: &VirtualServer = &cfg.virtual_servers[i];
                        sink.err_at(
                            b,
                            format!(
                                "virtual_server: the same service as the one at {}:{}",
                                o.file.display(),
                                o.line
                            ),
                        );
                    } else {
                        seen.insert(id, cfg.virtual_servers.len());
                        cfg.virtual_servers.push(vs);
                    }
                }
            }
            "vrrp_instance" => cfg.vrrp_instances.push(named(b, sink)),
            "vrrp_sync_group" => cfg.vrrp_sync_groups.push(named(b, sink)),
            "vrrp_script" => cfg.vrrp_scripts.push(named(b, sink)),
            "real_server" => sink.err_at(b, "real_server outside a virtual_server"),
            _ if KEPT_QUIETLY.contains(&k) => {
                sink.warn_at(
                    b,
                    format!(
                        "{k} is kept but not applied: rvs does not run keepalived's VRRP side yet"
                    ),
                );
                cfg.other.push(b.clone());
            }
            _ if KEPT_WARNED.contains(&k) => {
                sink.warn_at(b, format!("'{k}' is not supported by rvs yet (ignored)"));
                cfg.other.push(b.clone());
            }
            _ if check::CHECKERS.contains(&k) => {
                sink.err_at(b, format!("{k} outside a real_server"))
            }
            _ => sink.warn_at(b, format!("unknown keyword '{k}' (ignored)")),
        }
    }
    if !cfg.global.enable_script_security
        && let Some(at) = blocks
            .iter()
            .filter(|b| b.keyword == "virtual_server")
            .find_map(first_script)
    {
        sink.warn_at(
            at,
            format!(
                "{}: scripts are configured but global_defs has no enable_script_security (keepalived reports a SECURITY VIOLATION)",
                at.keyword
            ),
        );
    }
    cfg
}

/// The first checker script or notify script in a virtual server.
fn first_script(b: &Block) -> Option<&Block> {
    if matches!(
        b.keyword.as_str(),
        "MISC_CHECK" | "notify_up" | "notify_down" | "quorum_up" | "quorum_down"
    ) {
        return Some(b);
    }
    b.children().iter().find_map(first_script)
}

/// A VRRP block kept as written: it needs a name and a block.
fn named(b: &Block, sink: &mut Sink) -> Block {
    if b.name().is_none() {
        sink.err_at(b, format!("{}: missing name", b.keyword));
    }
    if b.children.is_none() {
        sink.err_at(b, format!("{}: needs a '{{ }}' block", b.keyword));
    }
    b.clone()
}

fn family_of(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::Inet,
        IpAddr::V6(_) => Family::Inet6,
    }
}

fn group(b: &Block, sink: &mut Sink) -> Option<VirtualServerGroup> {
    let name = arg(b, 0, "name", sink)?.to_string();
    value::at_most(b, 1, sink);
    if b.children.is_none() {
        sink.err_at(b, "virtual_server_group: needs a '{ }' block");
        return None;
    }
    let mut members = Vec::new();
    for m in b.children() {
        value::no_block(m, sink);
        if m.keyword == "fwmark" {
            let Some(v) = arg(m, 0, "mark", sink) else {
                continue;
            };
            let mark = match parse_uint(v, 1, u32::MAX.into()) {
                Ok(v) => u32::try_from(v).unwrap_or(u32::MAX),
                Err(why) => {
                    sink.err_at(m, format!("fwmark: {why}"));
                    continue;
                }
            };
            let family = match m.args.get(1).map(String::as_str) {
                None => None,
                Some("inet") => Some(Family::Inet),
                Some("inet6") => Some(Family::Inet6),
                Some(o) => {
                    sink.err_at(m, format!("fwmark: '{o}' is not inet or inet6"));
                    continue;
                }
            };
            value::at_most(m, 2, sink);
            members.push(GroupMember::Fwmark { mark, family });
            continue;
        }
        let addr = m.keyword.as_str();
        let port = match m.args.first() {
            None => None,
            Some(p) => match parse_uint(p, 0, 65535) {
                Ok(0) => None,
                Ok(p) => u16::try_from(p).ok(),
                Err(why) => {
                    sink.err_at(m, format!("virtual_server_group {name}: port {why}"));
                    continue;
                }
            },
        };
        value::at_most(m, 1, sink);
        match group_addr(addr) {
            Ok((first, None)) => members.push(GroupMember::Addr { ip: first, port }),
            Ok((first, Some(last))) => members.push(GroupMember::Range { first, last, port }),
            Err(why) => sink.err_at(m, format!("virtual_server_group {name}: {why}")),
        }
    }
    if b.children().is_empty() {
        sink.err_at(b, format!("virtual_server_group {name}: has no entries"));
    }
    let v4 = members.iter().any(|m| match m {
        GroupMember::Addr { ip, .. } | GroupMember::Range { first: ip, .. } => ip.is_ipv4(),
        GroupMember::Fwmark { .. } => false,
    });
    let v6 = members.iter().any(|m| match m {
        GroupMember::Addr { ip, .. } | GroupMember::Range { first: ip, .. } => ip.is_ipv6(),
        GroupMember::Fwmark { .. } => false,
    });
    let fw_nofam = members
        .iter()
        .any(|m| matches!(m, GroupMember::Fwmark { family: None, .. }));
    if v4 && v6 && fw_nofam {
        sink.err_at(
            b,
            format!(
                "virtual_server_group {name}: cannot have IPv4, IPv6 and a fwmark without family"
            ),
        );
    }
    Some(VirtualServerGroup {
        file: b.file.clone(),
        line: b.line,
        name,
        members,
    })
}

/// `A.B.C.D`, `A.B.C.D-E`, `A.B.C.D-E.F.G.H`, `A.B.C.D/NN` and the IPv6
/// forms (a `-X` range ends the last 16-bit group, hex).
fn group_addr(s: &str) -> Result<(IpAddr, Option<IpAddr>), String> {
    if let Some((a, len)) = s.split_once('/') {
        let ip = value::parse_ip(a).ok_or_else(|| format!("'{a}' is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = parse_uint(len, 0, max).map_err(|why| format!("prefix length {why}"))?;
        return Ok(match ip {
            IpAddr::V4(a) => {
                let host = if len == 0 {
                    u32::MAX
                } else {
                    (1u32 << (32 - len)).wrapping_sub(1)
                };
                let base = u32::from(a) & !host;
                (
                    IpAddr::V4(base.into()),
                    Some(IpAddr::V4((base | host).into())),
                )
            }
            IpAddr::V6(a) => {
                let host = if len == 0 {
                    u128::MAX
                } else {
                    (1u128 << (128 - len)).wrapping_sub(1)
                };
                let base = u128::from(a) & !host;
                (
                    IpAddr::V6(base.into()),
                    Some(IpAddr::V6((base | host).into())),
                )
            }
        });
    }
    if let Some(ip) = value::parse_ip(s) {
        return Ok((ip, None));
    }
    let (a, end) = s
        .rsplit_once('-')
        .ok_or_else(|| format!("'{s}' is not an address, range or prefix"))?;
    let first = value::parse_ip(a).ok_or_else(|| format!("'{a}' is not an IP address"))?;
    let last = if let Some(full) = value::parse_ip(end) {
        full
    } else {
        match first {
            IpAddr::V4(f) => {
                let e = parse_uint(end, 0, 255).map_err(|why| format!("range end {why}"))?;
                let o = f.octets();
                IpAddr::V4([o[0], o[1], o[2], u8::try_from(e).unwrap_or(255)].into())
            }
            IpAddr::V6(f) => {
                let e = u16::from_str_radix(end, 16)
                    .map_err(|_| format!("range end '{end}' is not a hex 16-bit group"))?;
                let mut g = f.segments();
                g[7] = e;
                IpAddr::V6(g.into())
            }
        }
    };
    if first.is_ipv4() != last.is_ipv4() {
        return Err(format!("range '{s}' mixes IPv4 and IPv6"));
    }
    let lower = match (first, last) {
        (IpAddr::V4(f), IpAddr::V4(l)) => u32::from(l) < u32::from(f),
        (IpAddr::V6(f), IpAddr::V6(l)) => u128::from(l) < u128::from(f),
        _ => true,
    };
    if lower {
        return Err(format!("range '{s}' ends below its start"));
    }
    Ok((first, Some(last)))
}

/// Settings a checker inherits from its real server and virtual server.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inherit {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) retry: Option<u32>,
    pub(crate) delay_before_retry: Option<Duration>,
    pub(crate) warmup: Option<Duration>,
    pub(crate) delay_loop: Option<Duration>,
    pub(crate) alpha: Option<bool>,
    pub(crate) virtualhost: Option<String>,
}

impl Inherit {
    /// Own values, else `parent`'s.
    pub(crate) fn over(&self, parent: &Self) -> Self {
        Self {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            delay_loop: self.delay_loop.or(parent.delay_loop),
            alpha: self.alpha.or(parent.alpha),
            virtualhost: self
                .virtualhost
                .clone()
                .or_else(|| parent.virtualhost.clone()),
        }
    }

    /// The keywords shared by virtual servers and real servers (and, for the
    /// timers, checkers); `true` when `c` was one of them.
    pub(crate) fn keyword(&mut self, c: &Block, retry_min: u32, sink: &mut Sink) -> bool {
        match c.keyword.as_str() {
            "connect_timeout" => {
                // keepalived: at most UINT_MAX micro-seconds.
                let max = Duration::from_micros(u32::MAX.into());
                if let Some(v) = value::timer_in(c, Duration::from_micros(1), max, sink) {
                    self.connect_timeout = Some(v);
                }
            }
            "retry" | "nb_get_retry" => {
                if let Some(v) = value::u32_in(c, retry_min, u32::MAX, sink) {
                    self.retry = Some(v);
                }
            }
            "delay_before_retry" => {
                if let Some(v) = value::timer(c, Duration::ZERO, sink) {
                    self.delay_before_retry = Some(v);
                }
            }
            "warmup" => {
                if let Some(v) = value::timer(c, Duration::ZERO, sink) {
                    self.warmup = Some(v);
                }
            }
            "delay_loop" => {
                if let Some(v) = value::timer(c, Duration::from_micros(1), sink) {
                    self.delay_loop = Some(v);
                }
            }
            "alpha" => {
                if let Some(v) = value::flag(c, sink) {
                    self.alpha = Some(v);
                }
            }
            "virtualhost" => {
                if let Some(v) = value::string(c, sink) {
                    self.virtualhost = Some(v);
                }
            }
            _ => return false,
        }
        true
    }
}

/// `NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]`.
fn method(c: &Block, sink: &mut Sink) -> Option<Method> {
    value::no_block(c, sink);
    let k = &c.keyword;
    let m = arg(c, 0, "NAT, DR or TUN", sink)?;
    match m {
        "NAT" | "DR" => {
            value::at_most(c, 1, sink);
            return Some(if m == "NAT" { Method::Nat } else { Method::Dr });
        }
        "TUN" => {}
        o => {
            sink.err_at(
                c,
                format!("{k}: unknown forwarding method '{o}' (NAT, DR or TUN)"),
            );
            return None;
        }
    }
    let mut kind = "ipip";
    let mut port: Option<u16> = None;
    let mut csum = TunCsum::NoCsum;
    let mut i = 1;
    while i < c.args.len() {
        let w = c.args[i].as_str();
        match w {
            "type" => {
                let Some(t) = c.args.get(i + 1) else {
                    sink.err_at(c, format!("{k}: missing tunnel type after 'type'"));
                    return None;
                };
                match t.as_str() {
                    "ipip" | "gue" | "gre" => kind = t,
                    o => {
                        sink.err_at(
                            c,
                            format!("{k}: unknown tunnel type '{o}' (ipip, gue or gre)"),
                        );
                        return None;
                    }
                }
                i += 2;
            }
            "port" => {
                let Some(p) = c.args.get(i + 1) else {
                    sink.err_at(c, format!("{k}: missing port after 'port'"));
                    return None;
                };
                match parse_uint(p, 1, 65535) {
                    Ok(p) => port = u16::try_from(p).ok(),
                    Err(why) => {
                        sink.err_at(c, format!("{k}: gue port {why}"));
                        return None;
                    }
                }
                i += 2;
            }
            "nocsum" => {
                csum = TunCsum::NoCsum;
                i += 1;
            }
            "csum" => {
                csum = TunCsum::Csum;
                i += 1;
            }
            "remcsum" => {
                csum = TunCsum::RemCsum;
                i += 1;
            }
            o => {
                sink.err_at(c, format!("{k}: unknown tunnel option '{o}'"));
                return None;
            }
        }
    }
    let kind = match (kind, port) {
        ("gue", Some(port)) => TunKind::Gue { port },
        ("gue", None) => {
            sink.err_at(c, format!("{k}: gue tunnels need 'port N'"));
            return None;
        }
        (_, Some(_)) => {
            sink.err_at(c, format!("{k}: only gue tunnels take a port"));
            return None;
        }
        ("gre", None) => TunKind::Gre,
        _ => TunKind::Ipip,
    };
    match (kind, csum) {
        (TunKind::Ipip, TunCsum::Csum | TunCsum::RemCsum) => {
            sink.err_at(c, format!("{k}: ipip tunnels have no checksum option"));
            return None;
        }
        (TunKind::Gre, TunCsum::RemCsum) => {
            sink.err_at(c, format!("{k}: gre tunnels have no remcsum option"));
            return None;
        }
        _ => {}
    }
    Some(Method::Tun { kind, csum })
}

/// `CMD [USER [GROUP]]`.
fn script(c: &Block, sink: &mut Sink) -> Option<Script> {
    value::no_block(c, sink);
    let cmd = arg(c, 0, "script", sink)?;
    if cmd.trim().is_empty() {
        sink.err_at(c, format!("{}: empty script", c.keyword));
        return None;
    }
    value::at_most(c, 3, sink);
    if c.args.len() > 1 {
        sink.warn_at(
            c,
            format!(
                "{}: the user/group is not applied: scripts run as rvsd's own user",
                c.keyword
            ),
        );
    }
    Some(Script {
        command: cmd.to_string(),
        user: c.args.get(1).cloned(),
        group: c.args.get(2).cloned(),
    })
}

fn is_tun(m: Option<Method>) -> bool {
    matches!(m, Some(Method::Tun { .. }))
}

struct RawRs {
    rs: RealServer,
    weight: Option<u32>,
    inhibit: Option<bool>,
    inh: Inherit,
    checks: Vec<RawCheck>,
}

fn virtual_server(
    b: &Block,
    groups: &[VirtualServerGroup],
    g: &GlobalDefs,
    sink: &mut Sink,
) -> Option<VirtualServer> {
    let errors_before = sink.errors.len();
    let first = arg(b, 0, "address, 'fwmark N' or 'group NAME'", sink)?;
    let key = match first {
        "fwmark" => {
            let v = arg(b, 1, "mark", sink)?;
            match parse_uint(v, 1, u32::MAX.into()) {
                Ok(m) => VsKey::Fwmark(u32::try_from(m).unwrap_or(u32::MAX)),
                Err(why) => {
                    sink.err_at(b, format!("virtual_server fwmark: {why}"));
                    return None;
                }
            }
        }
        "group" => {
            let n = arg(b, 1, "group name", sink)?;
            if !groups.iter().any(|g| g.name == n) {
                // keepalived takes it silently and has nothing to serve.
                sink.warn_at(
                    b,
                    format!("virtual_server group {n}: no virtual_server_group {n} (virtual server ignored)"),
                );
                return None;
            }
            VsKey::Group(n.to_string())
        }
        _ => {
            let ip = value::ip(b, 0, sink)?;
            let port = value::port(b, 1, true, sink).ok()?;
            VsKey::Addr { ip, port }
        }
    };
    value::at_most(b, 2, sink);
    if b.children.is_none() {
        sink.err_at(b, "virtual_server: needs a '{ }' block");
        return None;
    }
    let mut vs = VirtualServer {
        file: b.file.clone(),
        line: b.line,
        key,
        ip_family: None,
        sched: "wlc".into(),
        sched_flags: Vec::new(),
        ops: false,
        method: Method::Nat,
        protocol: Protocol::Tcp,
        persistence_timeout: None,
        persistence_granularity: None,
        persistence_engine: None,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        sorry_server: None,
        sorry_server_inhibit: false,
        ha_suspend: false,
        virtualhost: None,
        alpha: false,
        omega: false,
        inhibit_on_failure: false,
        nodest: None,
        delay_loop: Duration::from_secs(60),
        real_servers: Vec::new(),
    };
    let mut inh = Inherit::default();
    let mut vs_weight: u32 = 1;
    let mut family_kw: Option<(Family, &Block)> = None;
    let mut flags: Vec<(SchedFlag, &Block, String)> = Vec::new();
    let mut protocol_kw: Option<&Block> = None;
    let mut sched_kw = false;
    let mut method_kw = false;
    let mut ops_kw: Option<&Block> = None;
    let mut granularity: Option<(String, Family)> = None;
    let mut rss: Vec<RawRs> = Vec::new();
    for c in b.children() {
        let k = c.keyword.as_str();
        // keepalived's virtual server alpha takes no value (any is ignored).
        if k == "alpha" {
            value::bare(c, sink);
            inh.alpha = Some(true);
            continue;
        }
        if inh.keyword(c, 1, sink) {
            continue;
        }
        match k {
            "ip_family" => match value::one(c, "inet or inet6", sink) {
                Some("inet") => family_kw = Some((Family::Inet, c)),
                Some("inet6") => family_kw = Some((Family::Inet6, c)),
                Some(o) => sink.err_at(c, format!("ip_family: '{o}' is not inet or inet6")),
                None => {}
            },
            "lb_algo" | "lvs_sched" => {
                sched_kw = true;
                if let Some(s) = value::one(c, "scheduler", sink) {
                    if SCHEDULERS.contains(&s) {
                        vs.sched = s.to_string();
                    } else {
                        sink.err_at(
                            c,
                            format!(
                                "{k}: unknown scheduler '{s}' (one of {})",
                                SCHEDULERS.join("|")
                            ),
                        );
                    }
                }
            }
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => {
                if value::bare(c, sink) {
                    let f = match k {
                        "flag-1" => SchedFlag::Flag1,
                        "flag-2" => SchedFlag::Flag2,
                        "flag-3" => SchedFlag::Flag3,
                        "sh-port" => SchedFlag::ShPort,
                        "sh-fallback" => SchedFlag::ShFallback,
                        "mh-port" => SchedFlag::MhPort,
                        _ => SchedFlag::MhFallback,
                    };
                    // keepalived checks sh-*/mh-* against the scheduler
                    // set so far: before lb_algo they are dropped.
                    flags.push((
                        f,
                        c,
                        if sched_kw {
                            vs.sched.clone()
                        } else {
                            String::new()
                        },
                    ));
                }
            }
            "ops" => {
                if value::bare(c, sink) {
                    vs.ops = true;
                    ops_kw = Some(c);
                }
            }
            "hashed" => sink.warn_at(c, "hashed: has no effect in rvs (ignored)"),
            "lb_kind" | "lvs_method" => {
                method_kw = true;
                if let Some(m) = method(c, sink) {
                    vs.method = m;
                }
            }
            "persistence_engine" => vs.persistence_engine = value::string(c, sink),
            "persistence_timeout" => {
                value::no_block(c, sink);
                match c.args.first() {
                    None => vs.persistence_timeout = Some(DEFAULT_PERSISTENCE),
                    Some(s) => {
                        value::at_most(c, 1, sink);
                        match parse_uint(s, 0, LVS_MAX_TIMEOUT) {
                            Ok(0) => {
                                sink.warn_at(
                                    c,
                                    "persistence_timeout 0: keepalived rejects 0 and leaves the service not persistent (so does rvs)",
                                );
                                vs.persistence_timeout = None;
                            }
                            Ok(t) => vs.persistence_timeout = u32::try_from(t).ok(),
                            Err(why) => sink.err_at(c, format!("persistence_timeout: {why}")),
                        }
                    }
                }
            }
            "persistence_granularity" => {
                if let Some(s) = value::one(c, "netmask or prefix length", sink) {
                    let v4 = matches!(
                        vs.key,
                        VsKey::Addr {
                            ip: IpAddr::V4(_),
                            ..
                        }
                    ) || matches!(family_kw, Some((Family::Inet, _)));
                    if v4 && !s.contains('.') {
                        // keepalived reads it with getaddrinfo: a number is
                        // an IPv4 address in host order.
                        match parse_uint(s, 0, u32::MAX.into()) {
                            Ok(n) => {
                                let a = std::net::Ipv4Addr::from(u32::try_from(n).unwrap_or(0));
                                sink.warn_at(
                                    c,
                                    format!("persistence_granularity: {s} read as the IPv4 netmask {a} (as keepalived)"),
                                );
                                granularity = Some((a.to_string(), Family::Inet));
                            }
                            Err(_) => sink.err_at(
                                c,
                                format!("persistence_granularity: '{s}' is not an IPv4 netmask"),
                            ),
                        }
                    } else if s.contains('.') {
                        match s.parse::<std::net::Ipv4Addr>() {
                            Ok(_) => granularity = Some((s.to_string(), Family::Inet)),
                            Err(_) => sink.err_at(
                                c,
                                format!("persistence_granularity: '{s}' is not an IPv4 netmask"),
                            ),
                        }
                    } else {
                        match parse_uint(s, 1, 128) {
                            Ok(_) => granularity = Some((s.to_string(), Family::Inet6)),
                            Err(why) => sink.err_at(
                                c,
                                format!("persistence_granularity: IPv6 prefix length {why}"),
                            ),
                        }
                    }
                }
            }
            "protocol" => {
                if let Some(p) = value::one(c, "TCP, UDP or SCTP", sink) {
                    match p.to_ascii_uppercase().as_str() {
                        "TCP" => {
                            vs.protocol = Protocol::Tcp;
                            protocol_kw = Some(c);
                        }
                        "UDP" => {
                            vs.protocol = Protocol::Udp;
                            protocol_kw = Some(c);
                        }
                        "SCTP" => {
                            vs.protocol = Protocol::Sctp;
                            protocol_kw = Some(c);
                        }
                        _ => sink.err_at(c, format!("protocol: '{p}' is not TCP, UDP or SCTP")),
                    }
                }
            }
            "ha_suspend" => {
                if value::bare(c, sink) {
                    vs.ha_suspend = true;
                }
            }
            "omega" => {
                if value::bare(c, sink) {
                    vs.omega = true;
                }
            }
            // Like alpha: no value at the virtual server.
            "inhibit_on_failure" => {
                value::bare(c, sink);
                vs.inhibit_on_failure = true;
            }
            "expire_nodest_conn" | "nodest" => {
                let v = if k == "nodest" {
                    value::one(c, "keep|drop|expire", sink).and_then(|w| match w {
                        "keep" => Some(crate::NoDest::Keep),
                        "drop" => Some(crate::NoDest::Drop),
                        "expire" => Some(crate::NoDest::Expire),
                        _ => {
                            sink.err_at(c, format!("nodest: '{w}' is not one of keep|drop|expire"));
                            None
                        }
                    })
                } else {
                    value::flag(c, sink).map(|on| {
                        if on {
                            crate::NoDest::Expire
                        } else {
                            crate::NoDest::Drop
                        }
                    })
                };
                if v.is_some() && vs.nodest.is_some() {
                    sink.err_at(
                        c,
                        format!("{k}: nodest or expire_nodest_conn already given for this virtual_server"),
                    );
                } else if v.is_some() {
                    vs.nodest = v;
                }
            }
            "quorum" => {
                if let Some(v) = value::u32_in(c, 1, u32::MAX, sink) {
                    vs.quorum = v;
                }
            }
            "hysteresis" => {
                if let Some(v) = value::u32_in(c, 0, u32::MAX, sink) {
                    vs.hysteresis = v;
                }
            }
            "quorum_up" => {
                if !value::repeated(c, &vs.quorum_up, sink) {
                    vs.quorum_up = script(c, sink);
                }
            }
            "quorum_down" => {
                if !value::repeated(c, &vs.quorum_down, sink) {
                    vs.quorum_down = script(c, sink);
                }
            }
            "weight" => {
                if let Some(v) = value::uint(c, 1, WEIGHT_LIMIT, sink) {
                    vs_weight = u32::try_from(v).unwrap_or(1);
                }
            }
            "sorry_server" => {
                value::no_block(c, sink);
                if let Some(ip) = value::ip(c, 0, sink)
                    && let Ok(port) = value::port(c, 1, true, sink)
                {
                    value::at_most(c, 2, sink);
                    vs.sorry_server = Some(SorryServer {
                        ip,
                        port,
                        method: None,
                    });
                }
            }
            // keepalived applies these to the sorry server defined so far.
            "sorry_server_inhibit" => {
                value::bare(c, sink);
                if vs.sorry_server.is_some() {
                    vs.sorry_server_inhibit = true;
                } else {
                    sink.warn_at(
                        c,
                        "sorry_server_inhibit: before or without sorry_server (ignored, as keepalived)",
                    );
                }
            }
            "sorry_server_lvs_method" => {
                if let Some(m) = method(c, sink) {
                    match &mut vs.sorry_server {
                        Some(s) => s.method = Some(m),
                        None => sink
                            .err_at(c, "sorry_server_lvs_method: before or without sorry_server"),
                    }
                }
            }
            "real_server" => {
                if let Some(r) = real_server(c, g, sink) {
                    rss.push(r);
                }
            }
            "smtp_alert" => {
                value::flag(c, sink);
                sink.warn_at(
                    c,
                    "smtp_alert: rvs does not send email alerts yet (ignored)",
                );
            }
            "snmp_name" => sink.warn_at(c, "snmp_name: rvs has no SNMP (ignored)"),
            _ if check::CHECKERS.contains(&k) => {
                sink.err_at(c, format!("{k}: checkers go inside a real_server"))
            }
            "nat_mask" => sink.warn_at(c, "nat_mask: obsolete keepalived 1.x keyword (ignored)"),
            _ => sink.warn_at(
                c,
                format!("virtual_server: unknown keyword '{k}' (ignored)"),
            ),
        }
    }

    // Family.
    let key_family = match &vs.key {
        VsKey::Addr { ip, .. } => Some(family_of(*ip)),
        VsKey::Fwmark(_) => None,
        VsKey::Group(n) => groups.iter().find(|g| &g.name == n).and_then(|g| {
            g.members.iter().find_map(|m| match m {
                GroupMember::Addr { ip, .. } | GroupMember::Range { first: ip, .. } => {
                    Some(family_of(*ip))
                }
                GroupMember::Fwmark { family, .. } => *family,
            })
        }),
    };
    let mut family = key_family;
    if let Some((f, c)) = family_kw {
        if family.is_some_and(|k| k != f) {
            sink.err_at(c, "ip_family: conflicts with the virtual server's address");
        } else {
            family = Some(f);
        }
    }
    if let Some((gran, gf)) = granularity {
        if family.is_some_and(|f| f != gf) {
            sink.err_at(
                b,
                format!(
                    "persistence_granularity {gran}: not of the virtual server's address family"
                ),
            );
        }
        family = family.or(Some(gf));
        vs.persistence_granularity = Some(gran);
        if vs.persistence_timeout.is_none() {
            vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
        }
    }

    // Sorry server.
    if let Some(s) = &vs.sorry_server
        && !is_tun(s.method.or(Some(vs.method)))
    {
        let f = family_of(s.ip);
        match family {
            None => family = Some(f),
            Some(v) if v != f => sink.err_at(
                b,
                format!(
                    "sorry_server {}: address family differs from the virtual server's",
                    s.ip
                ),
            ),
            _ => {}
        }
    }

    // keepalived reports both defaults as config errors and goes on.
    if !sched_kw {
        sink.warn_at(
            b,
            "virtual_server: no lb_algo/lvs_sched, so wlc (as keepalived)",
        );
    }
    if !method_kw
        && (rss.iter().any(|r| r.rs.method.is_none())
            || vs.sorry_server.as_ref().is_some_and(|s| s.method.is_none()))
    {
        sink.warn_at(
            b,
            "virtual_server: no lb_kind/lvs_method, so NAT (as keepalived)",
        );
    }

    // Scheduler flags.
    for (f, c, sched) in flags {
        let ok = match f {
            SchedFlag::ShPort | SchedFlag::ShFallback => sched == "sh",
            SchedFlag::MhPort | SchedFlag::MhFallback => sched == "mh",
            _ => true,
        };
        if ok {
            if !vs.sched_flags.contains(&f) {
                vs.sched_flags.push(f);
            }
        } else {
            sink.warn_at(
                c,
                format!(
                    "{}: only for the {} scheduler, and the scheduler so far is {} (ignored, as keepalived)",
                    c.keyword,
                    &c.keyword[..2],
                    if sched.is_empty() { "none" } else { sched.as_str() }
                ),
            );
        }
    }

    // No protocol: keepalived sets UDP (what the kernel makes of 0), with a
    // warning; fwmark services have none.
    let has_addrs = match &vs.key {
        VsKey::Addr { .. } => true,
        VsKey::Fwmark(_) => false,
        VsKey::Group(n) => groups.iter().any(|g| {
            &g.name == n
                && g.members
                    .iter()
                    .any(|m| !matches!(m, GroupMember::Fwmark { .. }))
        }),
    };
    if protocol_kw.is_none() && has_addrs {
        vs.protocol = Protocol::Udp;
        sink.warn_at(
            b,
            "virtual_server: no protocol, so UDP, as keepalived (and the kernel) default: write 'protocol TCP' if TCP is meant",
        );
    }
    // One-packet scheduling needs UDP or a fwmark.
    if let Some(c) = ops_kw {
        let fw = matches!(vs.key, VsKey::Fwmark(_));
        if !fw && vs.protocol != Protocol::Udp {
            sink.warn_at(
                c,
                "ops: one-packet scheduling needs UDP (ignored, as keepalived does)",
            );
            vs.ops = false;
        }
    }
    if let (VsKey::Fwmark(_), Some(c)) = (&vs.key, protocol_kw) {
        sink.warn_at(
            c,
            "protocol: ignored for a fwmark virtual server (as keepalived does)",
        );
    }
    let portless = match &vs.key {
        VsKey::Addr { port, .. } => port.is_none(),
        VsKey::Fwmark(_) => false,
        VsKey::Group(n) => groups.iter().any(|g| {
            &g.name == n
                && g.members.iter().any(|m| {
                    matches!(
                        m,
                        GroupMember::Addr { port: None, .. }
                            | GroupMember::Range { port: None, .. }
                    )
                })
        }),
    };
    if portless && vs.persistence_timeout.is_none() {
        sink.warn_at(
            b,
            "virtual_server: no port, which only persistent services may have: persistence set to 360 s (as keepalived does)",
        );
        vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
    }

    // Real servers.
    let vs_port = match vs.key {
        VsKey::Addr { port, .. } => port,
        _ => None,
    };
    let is_fwmark = matches!(vs.key, VsKey::Fwmark(_));
    vs.alpha = inh.alpha.unwrap_or(false);
    vs.virtualhost = inh.virtualhost.clone();
    let vs_inh = Inherit {
        connect_timeout: Some(inh.connect_timeout.unwrap_or(Duration::from_secs(5))),
        delay_loop: Some(inh.delay_loop.unwrap_or(Duration::from_secs(60))),
        ..inh
    };
    vs.delay_loop = vs_inh.delay_loop.unwrap_or(Duration::from_secs(60));
    let mut weight_sum: u64 = 0;
    let mut rs_seen = std::collections::HashSet::new();
    for raw in rss {
        let RawRs {
            mut rs,
            weight,
            inhibit,
            inh: rs_inh,
            checks,
        } = raw;
        let m = vs.method_of(&rs);
        if !matches!(m, Method::Tun { .. }) {
            let f = family_of(rs.ip);
            match family {
                None => family = Some(f),
                Some(v) if v != f => {
                    sink.err(
                        &rs.file,
                        rs.line,
                        format!(
                            "real_server {}: address family differs from the virtual server's",
                            rs.ip
                        ),
                    );
                    continue;
                }
                _ => {}
            }
        }
        rs.weight = weight.unwrap_or(vs_weight);
        rs.inhibit_on_failure = inhibit.unwrap_or(vs.inhibit_on_failure);
        // Ports, as keepalived corrects them.
        if m == Method::Nat {
            if rs.port.is_none() && !is_fwmark {
                rs.port = vs_port;
            }
        } else if is_fwmark {
            if rs.port.is_some() {
                sink.warn(
                    &rs.file,
                    rs.line,
                    format!("real_server {}: port ignored for a non-NAT fwmark service (as keepalived does)", rs.ip),
                );
                rs.port = None;
            }
        } else if matches!(vs.key, VsKey::Addr { .. }) {
            if rs.port.is_some() && rs.port != vs_port {
                sink.warn(
                    &rs.file,
                    rs.line,
                    format!(
                        "real_server {}: DR/TUN real servers use the virtual server's port (reset, as keepalived does)",
                        rs.ip
                    ),
                );
            }
            rs.port = vs_port;
        } else if let (VsKey::Group(n), Some(p)) = (&vs.key, rs.port)
            && let Some(g) = groups.iter().find(|g| &g.name == n)
        {
            // keepalived leaves the port but says what IPVS will do with it.
            let fw = g
                .members
                .iter()
                .any(|m| matches!(m, GroupMember::Fwmark { .. }));
            let other = g.members.iter().find_map(|m| match m {
                GroupMember::Addr { port: Some(q), .. }
                | GroupMember::Range { port: Some(q), .. }
                    if *q != p =>
                {
                    Some(*q)
                }
                _ => None,
            });
            if fw {
                sink.warn(
                    &rs.file,
                    rs.line,
                    format!("real_server {}: port ignored for the group's fwmark entries (DR/TUN; as keepalived warns)", rs.ip),
                );
            }
            if let Some(q) = other {
                sink.warn(
                    &rs.file,
                    rs.line,
                    format!("real_server {}: port {p} differs from the group's port {q}, which DR/TUN cannot change (keepalived reports it)", rs.ip),
                );
            }
        }
        if !rs_seen.insert((rs.ip, rs.port)) {
            sink.warn(
                &rs.file,
                rs.line,
                format!(
                    "real_server {}: duplicate of an earlier one (ignored, as keepalived does)",
                    rs.ip
                ),
            );
            continue;
        }
        let eff = rs_inh.over(&vs_inh);
        for rc in checks {
            rs.checks
                .push(check::resolve(rc, &eff, g.checker_log_all_failures));
        }
        weight_sum += u64::from(rs.weight);
        vs.real_servers.push(rs);
    }
    if let Some(s) = &mut vs.sorry_server {
        let m = s.method.unwrap_or(vs.method);
        if m == Method::Nat {
            if s.port.is_none() && !is_fwmark {
                s.port = vs_port;
            }
        } else if is_fwmark {
            if s.port.is_some() {
                sink.warn_at(
                    b,
                    "sorry_server: port ignored for a non-NAT fwmark service (as keepalived does)",
                );
            }
            s.port = None;
        } else if matches!(vs.key, VsKey::Addr { .. }) {
            if s.port.is_some() && s.port != vs_port {
                sink.warn_at(
                    b,
                    "sorry_server: DR/TUN sorry servers use the virtual server's port (reset, as keepalived does)",
                );
            }
            s.port = vs_port;
        }
    }
    vs.ip_family = family;
    if u64::from(vs.quorum) > weight_sum {
        // (An empty pool says nothing worth a warning.)
        if !vs.real_servers.is_empty() {
            let q = vs.quorum;
            sink.warn_at(
                b,
                format!("quorum {q} exceeds the total weight of the real servers, {weight_sum}: reduced (as keepalived does)"),
            );
        }
        vs.quorum = u32::try_from(weight_sum).unwrap_or(u32::MAX);
    }
    if vs.hysteresis >= vs.quorum && vs.hysteresis > 0 {
        sink.warn_at(
            b,
            format!(
                "hysteresis {} is not below quorum {}: set to {} (as keepalived does)",
                vs.hysteresis,
                vs.quorum,
                vs.quorum.saturating_sub(1)
            ),
        );
        vs.hysteresis = vs.quorum.saturating_sub(1);
    }
    (sink.errors.len() == errors_before).then_some(vs)
}

fn real_server(b: &Block, g: &GlobalDefs, sink: &mut Sink) -> Option<RawRs> {
    let ip = value::ip(b, 0, sink)?;
    let port = value::port(b, 1, true, sink).ok()?;
    value::at_most(b, 2, sink);
    let mut raw = RawRs {
        rs: RealServer {
            file: b.file.clone(),
            line: b.line,
            ip,
            port,
            weight: 1,
            method: None,
            inhibit_on_failure: false,
            uthreshold: None,
            lthreshold: None,
            notify_up: None,
            notify_down: None,
            checks: Vec::new(),
        },
        weight: None,
        inhibit: None,
        inh: Inherit::default(),
        checks: Vec::new(),
    };
    for c in b.children() {
        let k = c.keyword.as_str();
        if raw.inh.keyword(c, 1, sink) {
            continue;
        }
        match k {
            "weight" => {
                if let Some(v) = value::uint(c, 0, WEIGHT_LIMIT, sink) {
                    raw.weight = u32::try_from(v).ok();
                }
            }
            "lvs_method" => raw.rs.method = method(c, sink),
            "uthreshold" => raw.rs.uthreshold = value::u32_in(c, 0, u32::MAX, sink),
            "lthreshold" => raw.rs.lthreshold = value::u32_in(c, 0, u32::MAX, sink),
            "inhibit_on_failure" => raw.inhibit = value::flag(c, sink),
            "notify_up" => {
                if !value::repeated(c, &raw.rs.notify_up, sink) {
                    raw.rs.notify_up = script(c, sink);
                }
            }
            "notify_down" => {
                if !value::repeated(c, &raw.rs.notify_down, sink) {
                    raw.rs.notify_down = script(c, sink);
                }
            }
            "smtp_alert" => {
                value::flag(c, sink);
                sink.warn_at(
                    c,
                    "smtp_alert: rvs does not send email alerts yet (ignored)",
                );
            }
            "snmp_name" => sink.warn_at(c, "snmp_name: rvs has no SNMP (ignored)"),
            _ if check::CHECKERS.contains(&k) => {
                raw.checks.extend(check::checker(c, g, sink));
            }
            _ => sink.warn_at(c, format!("real_server: unknown keyword '{k}' (ignored)")),
        }
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(group_addr("10.0.0.1"), Ok((ip("10.0.0.1"), None)));
        assert_eq!(
            group_addr("192.168.200.3-10"),
            Ok((ip("192.168.200.3"), Some(ip("192.168.200.10"))))
        );
        assert_eq!(
            group_addr("192.168.200.250-192.168.201.10"),
            Ok((ip("192.168.200.250"), Some(ip("192.168.201.10"))))
        );
        assert_eq!(
            group_addr("192.168.202.8/29"),
            Ok((ip("192.168.202.8"), Some(ip("192.168.202.15"))))
        );
        assert_eq!(
            group_addr("ae00::2-9"),
            Ok((ip("ae00::2"), Some(ip("ae00::9"))))
        );
        assert_eq!(
            group_addr("ae00::2-ff"),
            Ok((ip("ae00::2"), Some(ip("ae00::ff"))))
        );
        assert_eq!(
            group_addr("0.0.0.0/0"),
            Ok((ip("0.0.0.0"), Some(ip("255.255.255.255"))))
        );
        assert!(group_addr("10.0.0.9-3").is_err());
        assert!(group_addr("10.0.0.1-256").is_err());
        assert!(group_addr("10.0.0.1/33").is_err());
        assert!(group_addr("10.0.0.1-ae00::1").is_err());
        assert!(group_addr("nonsense").is_err());
    }
}
