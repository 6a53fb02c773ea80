//! keepalived.conf for rvsd: the parsed configuration
//! ([`rvs_keepalived`]) turned into a health [`Plan`].
//!
//! Each `virtual_server` (each member of a `virtual_server group`) and
//! each `real_server` becomes the ipvsadm command line keepalived itself
//! would have issued through libipvs (`-A -t VIP:PORT -s SCHED ...`,
//! `-a ... -r RIP:PORT -m -w W ...`), checked with exactly ipvsadm's rules,
//! then the whole table with every check up is tried on a scratch director
//! (the kernel's checks). Any refusal names the FILE:LINE of the block it
//! comes from; nothing of a refused file is applied.

use crate::config::ipvsadm_op;
use crate::convert::Op;
use crate::health::{CheckKey, Evaluator, Health, Plan, PlanReal, PlanService};
use crate::model::Model;
use rvs_engine::{DestConfig, DirectorConfig, NoDest, ServiceConfig};
use rvs_keepalived as ka;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A checked keepalived configuration.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The table and its checks.
    pub plan: Plan,
    /// `FILE:LINE: warning: ...` for what rvs parses but does not run (yet).
    pub warnings: Vec<String>,
    /// The parsed file, VRRP blocks included (kept for failover).
    pub config: ka::Config,
}

/// Most services a `virtual_server_group` range may expand to.
pub const MAX_GROUP_EXPANSION: u128 = 4096;

fn at(file: &Path, line: u32, why: impl std::fmt::Display) -> String {
    format!("{}:{line}: {why}", file.display())
}

/// Reads, converts and checks a keepalived configuration for directors
/// built with `dcfg`. Errors: one `FILE:LINE: why` per line.
pub fn load(path: &Path, dcfg: &DirectorConfig) -> Result<Loaded, String> {
    load_with(path, dcfg, &ka::Options::host_config_id())
}

/// [`load`] with the parser's options (the config id that `@name` lines
/// are matched against; keepalived's default is the short host name).
pub fn load_with(path: &Path, dcfg: &DirectorConfig, opts: &ka::Options) -> Result<Loaded, String> {
    let parsed = ka::load_with(path, opts).map_err(|e| e.to_string())?;
    convert(parsed, dcfg)
}

/// [`load`] for a configuration given as text (`name` in messages).
pub fn parse_str(name: &str, text: &str, dcfg: &DirectorConfig) -> Result<Loaded, String> {
    let parsed = ka::parse_str(name, text).map_err(|e| e.to_string())?;
    convert(parsed, dcfg)
}

/// The checks' own checks (rvs-health's `validate`: settings the probes
/// could not run with are errors at the real server's line), and a warning
/// for a check that would probe port 0.
fn checks_of(cfg: &ka::Config, errors: &mut Vec<String>, warnings: &mut Vec<String>) {
    for vs in &cfg.virtual_servers {
        for rs in &vs.real_servers {
            for spec in &rs.checks {
                let kind = rvs_health::monitor::kind_name(&spec.kind);
                for why in rvs_health::probe::validate(spec) {
                    errors.push(at(&rs.file, rs.line, format_args!("{kind}: {why}")));
                }
                let port = spec.common.connect_port.or(rs.port).unwrap_or(0);
                let uses_port = !matches!(
                    spec.kind,
                    rvs_health::spec::CheckKind::Ping | rvs_health::spec::CheckKind::Misc(_)
                );
                if port == 0 && uses_port {
                    warnings.push(at(
                        &rs.file,
                        rs.line,
                        format_args!(
                            "warning: real_server {}: its {kind} probes port 0 (a fwmark service's DR or TUN real server has no port): set connect_port",
                            rs.ip
                        ),
                    ));
                }
            }
        }
    }
}

fn convert(parsed: ka::Loaded, dcfg: &DirectorConfig) -> Result<Loaded, String> {
    let cfg = parsed.config;
    let mut warnings: Vec<String> = parsed
        .warnings
        .iter()
        .map(|d| at(&d.file, d.line, format_args!("warning: {}", d.message)))
        .collect();
    for (kind, blocks) in [
        ("vrrp_instance", &cfg.vrrp_instances),
        ("vrrp_sync_group", &cfg.vrrp_sync_groups),
        ("vrrp_script", &cfg.vrrp_scripts),
    ] {
        for b in blocks {
            warnings.push(at(
                &b.file,
                b.line,
                format_args!(
                    "warning: {kind} {} is kept but not run: rvs does not run VRRP yet",
                    b.name().unwrap_or("")
                ),
            ));
        }
    }
    let t = &cfg.global.lvs_timeouts;
    let mut plan = Plan {
        timeouts: (t.tcp.is_some() || t.tcpfin.is_some() || t.udp.is_some()).then(|| {
            (
                t.tcp.unwrap_or(0),
                t.tcpfin.unwrap_or(0),
                t.udp.unwrap_or(0),
            )
        }),
        services: Vec::new(),
    };
    let mut errors = Vec::new();
    checks_of(&cfg, &mut errors, &mut warnings);
    let mut origins = Vec::new();
    for vs in &cfg.virtual_servers {
        if vs.ha_suspend {
            warnings.push(at(
                &vs.file,
                vs.line,
                "warning: ha_suspend has no effect yet: rvs does not run VRRP, checks always run",
            ));
        }
        match virtual_server(&cfg, vs) {
            Ok(mut svcs) => {
                origins.extend(svcs.iter().map(|_| (vs.file.clone(), vs.line)));
                plan.services.append(&mut svcs);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    check(&plan, dcfg, &origins)?;
    Ok(Loaded {
        plan,
        warnings,
        config: cfg,
    })
}

/// The whole table, every check up, on a scratch director: a refusal is
/// blamed on the virtual server (`origins`, one per service) it is about.
fn check(plan: &Plan, dcfg: &DirectorConfig, origins: &[(PathBuf, u32)]) -> Result<(), String> {
    let (ops, _) = Evaluator::default().evaluate(plan, &Health::default());
    let mut model = Model::new(dcfg.clone());
    // The evaluator gives each service's operation, then its real servers'.
    let mut service = None;
    for op in ops {
        if matches!(op, Op::AddService(_)) {
            service = Some(service.map_or(0, |i| i + 1));
        }
        if let Err(e) = model.apply(std::slice::from_ref(&op)) {
            let place = service.and_then(|i| origins.get(i));
            return Err(match place {
                Some((f, l)) => at(f, *l, &e.message),
                None => e.message,
            });
        }
    }
    Ok(())
}

/// What a service is matched on, before it becomes ipvsadm's arguments.
#[derive(Clone, Debug)]
enum Key {
    Addr(IpAddr, u16),
    Fwmark(u32, bool),
}

fn v6_of(vs: &ka::VirtualServer, family: Option<ka::Family>) -> bool {
    matches!(family.or(vs.ip_family), Some(ka::Family::Inet6))
}

/// The services a virtual server stands for (a group: one per member).
fn keys(cfg: &ka::Config, vs: &ka::VirtualServer) -> Result<Vec<Key>, String> {
    match &vs.key {
        ka::VsKey::Addr { ip, port } => Ok(vec![Key::Addr(*ip, port.unwrap_or(0))]),
        ka::VsKey::Fwmark(m) => Ok(vec![Key::Fwmark(*m, v6_of(vs, None))]),
        ka::VsKey::Group(name) => {
            let Some(g) = cfg.virtual_server_groups.iter().find(|g| g.name == *name) else {
                return Err(at(
                    &vs.file,
                    vs.line,
                    format_args!("no virtual_server_group {name}"),
                ));
            };
            let mut out = Vec::new();
            for m in &g.members {
                match m {
                    ka::GroupMember::Addr { ip, port } => {
                        out.push(Key::Addr(*ip, port.unwrap_or(0)));
                    }
                    ka::GroupMember::Fwmark { mark, family } => {
                        out.push(Key::Fwmark(*mark, v6_of(vs, *family)));
                    }
                    ka::GroupMember::Range { first, last, port } => {
                        let (a, b) = (ip_num(first), ip_num(last));
                        if b < a || b - a >= MAX_GROUP_EXPANSION {
                            return Err(at(
                                &g.file,
                                g.line,
                                format_args!(
                                    "range {first}-{last} gives more than {MAX_GROUP_EXPANSION} services"
                                ),
                            ));
                        }
                        for n in a..=b {
                            out.push(Key::Addr(num_ip(first.is_ipv4(), n), port.unwrap_or(0)));
                        }
                    }
                }
            }
            Ok(out)
        }
    }
}

fn ip_num(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn num_ip(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(
            u32::try_from(n).unwrap_or(u32::MAX),
        ))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(n))
    }
}

fn host_port(ip: &IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// ipvsadm's service arguments for a key.
fn service_args(vs: &ka::VirtualServer, key: &Key) -> Vec<String> {
    match key {
        Key::Addr(ip, port) => {
            let flag = match vs.protocol {
                ka::Protocol::Tcp => "-t",
                ka::Protocol::Udp => "-u",
                ka::Protocol::Sctp => "--sctp-service",
            };
            vec![flag.into(), host_port(ip, *port)]
        }
        Key::Fwmark(m, v6) => {
            let mut a = vec!["-f".to_string(), m.to_string()];
            if *v6 {
                a.push("-6".into());
            }
            a
        }
    }
}

fn flag_name(f: ka::SchedFlag) -> &'static str {
    match f {
        ka::SchedFlag::Flag1 => "flag-1",
        ka::SchedFlag::Flag2 => "flag-2",
        ka::SchedFlag::Flag3 => "flag-3",
        ka::SchedFlag::ShFallback => "sh-fallback",
        ka::SchedFlag::ShPort => "sh-port",
        ka::SchedFlag::MhFallback => "mh-fallback",
        ka::SchedFlag::MhPort => "mh-port",
    }
}

fn method_args(m: ka::Method) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    match m {
        ka::Method::Nat => a.push("-m".into()),
        ka::Method::Dr => a.push("-g".into()),
        ka::Method::Tun { kind, csum } => {
            a.push("-i".into());
            match kind {
                ka::TunKind::Ipip => {}
                ka::TunKind::Gue { port } => {
                    a.extend(["--tun-type".into(), "gue".into()]);
                    a.extend(["--tun-port".into(), port.to_string()]);
                }
                ka::TunKind::Gre => a.extend(["--tun-type".into(), "gre".into()]),
            }
            match csum {
                ka::TunCsum::NoCsum => {}
                ka::TunCsum::Csum => a.push("--tun-csum".into()),
                ka::TunCsum::RemCsum => a.push("--tun-remcsum".into()),
            }
        }
    }
    a
}

fn script(s: &Option<ka::Script>) -> Option<String> {
    s.as_ref().map(|s| s.command.clone())
}

/// One virtual server as the services it stands for.
fn virtual_server(cfg: &ka::Config, vs: &ka::VirtualServer) -> Result<Vec<PlanService>, String> {
    let here = |why: String| at(&vs.file, vs.line, why);
    let mut out = Vec::new();
    for key in keys(cfg, vs)? {
        let svc = service_args(vs, &key);
        let mut args = vec!["-A".to_string()];
        args.extend(svc.iter().cloned());
        args.extend(["-s".into(), vs.sched.clone()]);
        if !vs.sched_flags.is_empty() {
            let names: Vec<&str> = vs.sched_flags.iter().map(|f| flag_name(*f)).collect();
            args.extend(["-b".into(), names.join(",")]);
        }
        if let Some(t) = vs.persistence_timeout.filter(|t| *t > 0) {
            args.extend(["-p".into(), t.to_string()]);
            if let Some(g) = &vs.persistence_granularity {
                args.extend(["-M".into(), g.clone()]);
            }
            if let Some(pe) = &vs.persistence_engine {
                args.extend(["--pe".into(), pe.clone()]);
            }
        }
        if vs.ops {
            args.push("-o".into());
        }
        let cfg_svc: ServiceConfig = match ipvsadm_op(&args).map_err(&here)? {
            Op::AddService(mut c) => {
                c.nodest = vs.nodest.map(|n| match n {
                    ka::NoDest::Keep => NoDest::Keep,
                    ka::NoDest::Drop => NoDest::Drop,
                    ka::NoDest::Expire => NoDest::Expire,
                });
                c
            }
            other => return Err(here(format!("not a service: {other:?}"))),
        };
        let vport = match key {
            Key::Addr(_, p) => Some(p),
            Key::Fwmark(..) => None,
        };
        let dest = |ip: &IpAddr,
                    port: Option<u16>,
                    m: ka::Method,
                    weight: u32,
                    thresholds: (Option<u32>, Option<u32>),
                    file: &Path,
                    line: u32|
         -> Result<DestConfig, String> {
            // DR and TUN keep the virtual port (ipvsadm would replace it).
            let port = match m {
                ka::Method::Nat => port.or(vport).unwrap_or(0),
                _ => vport.or(port).unwrap_or(0),
            };
            let mut a = vec!["-a".to_string()];
            a.extend(svc.iter().cloned());
            a.push("-r".into());
            a.push(if port == 0 {
                match ip {
                    IpAddr::V4(x) => x.to_string(),
                    IpAddr::V6(x) => format!("[{x}]"),
                }
            } else {
                host_port(ip, port)
            });
            a.extend(method_args(m));
            a.extend(["-w".into(), weight.to_string()]);
            if let Some(x) = thresholds.0 {
                a.extend(["-x".into(), x.to_string()]);
            }
            if let Some(y) = thresholds.1 {
                a.extend(["-y".into(), y.to_string()]);
            }
            match ipvsadm_op(&a).map_err(|e| at(file, line, e))? {
                Op::AddDest(_, d) => Ok(d),
                other => Err(at(file, line, format_args!("not a real server: {other:?}"))),
            }
        };
        let mut reals = Vec::new();
        for rs in &vs.real_servers {
            let d = dest(
                &rs.ip,
                rs.port,
                vs.method_of(rs),
                rs.weight,
                (rs.uthreshold, rs.lthreshold),
                &rs.file,
                rs.line,
            )?;
            let addr = SocketAddr::new(rs.ip, d.port);
            reals.push(PlanReal {
                checks: rs
                    .checks
                    .iter()
                    .map(|spec| CheckKey {
                        addr,
                        spec: spec.clone(),
                    })
                    .collect(),
                dest: d,
                inhibit_on_failure: rs.inhibit_on_failure,
                notify_up: script(&rs.notify_up),
                notify_down: script(&rs.notify_down),
            });
        }
        let sorry = match &vs.sorry_server {
            Some(s) => Some(dest(
                &s.ip,
                s.port,
                s.method.unwrap_or(vs.method),
                1,
                (None, None),
                &vs.file,
                vs.line,
            )?),
            None => None,
        };
        out.push(PlanService {
            cfg: cfg_svc,
            reals,
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            quorum_up: script(&vs.quorum_up),
            quorum_down: script(&vs.quorum_down),
            sorry,
            sorry_inhibit: vs.sorry_server_inhibit,
            omega: vs.omega,
        });
    }
    Ok(out)
}

/// Whether `path` is read as a keepalived configuration: `format` says so,
/// or (`auto`) its name does not end in `.toml`.
pub fn is_keepalived(path: &Path, format: &str) -> bool {
    match format {
        "keepalived" => true,
        "toml" => false,
        _ => path.extension().is_none_or(|e| e != "toml"),
    }
}
