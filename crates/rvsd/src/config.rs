//! rvsd's native configuration file (TOML; see docs/CONFIG.md). Every
//! error names FILE:LINE and why, and a file with any error is applied not
//! at all. Services and real servers are checked with exactly ipvsadm's
//! rules and messages (each section is turned into the ipvsadm command line
//! it stands for), then applied to a scratch director for the kernel-side
//! checks (duplicates, families, ports).

use crate::convert::{Op, op};
use rvs_engine::{Director, DirectorConfig};
use rvs_ipvsadm::{NoResolve, Parsed};
use rvs_types::{Addr, Instant};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// `[daemon]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Interfaces to serve.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Control socket path.
    pub socket: Option<String>,
    /// Prometheus listen address.
    pub metrics: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectorSection {
    max_conns: Option<u32>,
    expire_nodest_conn: Option<bool>,
    expire_quiescent_template: Option<bool>,
    sloppy_tcp: Option<bool>,
    sloppy_sctp: Option<bool>,
    tunnel_mtu: Option<u32>,
    tunnel_src_v4: Option<Spanned<String>>,
    tunnel_src_v6: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsSection {
    tcp: Option<u32>,
    tcpfin: Option<u32>,
    udp: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSection {
    tcp: Option<String>,
    udp: Option<String>,
    sctp: Option<String>,
    fwmark: Option<u32>,
    ipv6: Option<bool>,
    scheduler: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    ops: Option<bool>,
    expire_nodest_conn: Option<bool>,
    #[serde(default)]
    real: Vec<Spanned<RealSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RealSection {
    server: String,
    method: Option<String>,
    weight: Option<i32>,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
    tunnel_type: Option<String>,
    tunnel_port: Option<u16>,
    tunnel_csum: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    daemon: Option<DaemonSection>,
    director: Option<DirectorSection>,
    timeouts: Option<TimeoutsSection>,
    #[serde(default)]
    service: Vec<Spanned<ServiceSection>>,
}

/// A loaded configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[daemon]`.
    pub daemon: DaemonSection,
    /// `[director]`.
    pub director: DirectorConfig,
    /// The table, as operations from empty.
    pub ops: Vec<Op>,
}

/// A configuration error: `FILE:LINE: why`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse(&path.display().to_string(), &text)
}

/// Checks a configuration given as text; `name` is used in messages.
pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
    let at = |off: usize, why: &str| ConfigError(format!("{name}:{}: {why}", line_of(text, off)));
    let file: File = toml::from_str(text).map_err(|e| {
        let off = e.span().map(|s| s.start).unwrap_or(0);
        at(off, e.message().trim())
    })?;
    let mut director = DirectorConfig::default();
    if let Some(d) = file.director {
        if let Some(v) = d.max_conns {
            director.max_conns = v;
        }
        director.expire_nodest_conn = d.expire_nodest_conn.unwrap_or(false);
        director.expire_quiescent_template = d.expire_quiescent_template.unwrap_or(false);
        director.sloppy_tcp = d.sloppy_tcp.unwrap_or(false);
        director.sloppy_sctp = d.sloppy_sctp.unwrap_or(false);
        if let Some(m) = d.tunnel_mtu {
            if !(576..=65535).contains(&m) {
                return Err(at(0, &format!("tunnel_mtu {m} is outside 576..65535")));
            }
            director.tunnel_mtu = m;
        }
        for (field, v4, slot) in [
            (d.tunnel_src_v4, true, &mut director.tunnel_src_v4),
            (d.tunnel_src_v6, false, &mut director.tunnel_src_v6),
        ] {
            if let Some(s) = field {
                let a: std::net::IpAddr = s.get_ref().parse().map_err(|_| {
                    at(
                        s.span().start,
                        &format!("'{}' is not an IP address", s.get_ref()),
                    )
                })?;
                if a.is_ipv4() != v4 {
                    return Err(at(s.span().start, "address of the wrong family"));
                }
                *slot = Addr::from(a);
            }
        }
    }
    let mut ops: Vec<(usize, Op)> = Vec::new();
    if let Some(t) = file.timeouts {
        ops.push((
            0,
            Op::SetTimeouts(
                t.tcp.unwrap_or(0),
                t.tcpfin.unwrap_or(0),
                t.udp.unwrap_or(0),
            ),
        ));
    }
    for s in &file.service {
        let off = s.span().start;
        let sv = s.get_ref();
        let svc_args = service_args(sv).map_err(|why| at(off, &why))?;
        let mut a = vec!["-A".to_string()];
        a.extend(svc_args.iter().cloned());
        if let Some(sch) = &sv.scheduler {
            a.extend(["-s".into(), sch.clone()]);
        }
        if let Some(p) = sv.persistent {
            a.extend(["-p".into(), p.to_string()]);
        }
        if let Some(m) = &sv.netmask {
            a.extend(["-M".into(), m.clone()]);
        }
        if !sv.flags.is_empty() {
            a.extend(["-b".into(), sv.flags.join(",")]);
        }
        if sv.ops == Some(true) {
            a.push("-o".into());
        }
        let mut svc_op = ipvsadm_op(&a).map_err(|why| at(off, &why))?;
        if let Op::AddService(c) = &mut svc_op {
            c.expire_nodest_conn = sv.expire_nodest_conn;
        }
        ops.push((off, svc_op));
        for r in &sv.real {
            let roff = r.span().start;
            let rv = r.get_ref();
            let mut a = vec!["-a".to_string()];
            a.extend(svc_args.iter().cloned());
            a.extend(["-r".into(), rv.server.clone()]);
            match rv.method.as_deref().unwrap_or("route") {
                "masq" | "nat" => a.push("-m".into()),
                "route" | "dr" => a.push("-g".into()),
                "tunnel" | "tun" => a.push("-i".into()),
                other => {
                    return Err(at(
                        roff,
                        &format!("unknown method '{other}' (masq, route or tunnel)"),
                    ));
                }
            }
            if let Some(w) = rv.weight {
                a.extend(["-w".into(), w.to_string()]);
            }
            if let Some(x) = rv.u_threshold {
                a.extend(["-x".into(), x.to_string()]);
            }
            if let Some(y) = rv.l_threshold {
                a.extend(["-y".into(), y.to_string()]);
            }
            if let Some(t) = &rv.tunnel_type {
                a.extend(["--tun-type".into(), t.clone()]);
            }
            if let Some(p) = rv.tunnel_port {
                a.extend(["--tun-port".into(), p.to_string()]);
            }
            match rv.tunnel_csum.as_deref() {
                None => {}
                Some("none") => a.push("--tun-nocsum".into()),
                Some("csum") => a.push("--tun-csum".into()),
                Some("remcsum") => a.push("--tun-remcsum".into()),
                Some(o) => {
                    return Err(at(
                        roff,
                        &format!("unknown tunnel_csum '{o}' (none, csum or remcsum)"),
                    ));
                }
            }
            ops.push((roff, ipvsadm_op(&a).map_err(|why| at(roff, &why))?));
        }
    }
    // Kernel-side checks, in order, on a scratch director.
    let mut scratch = Director::new(director.clone(), Instant::ZERO);
    for (off, o) in &ops {
        o.apply(&mut scratch).map_err(|e| at(*off, &e.message))?;
    }
    Ok(Config {
        daemon: file.daemon.unwrap_or_default(),
        director,
        ops: ops.into_iter().map(|(_, o)| o).collect(),
    })
}

fn service_args(s: &ServiceSection) -> Result<Vec<String>, String> {
    let given: Vec<(&str, String)> = [
        ("-t", s.tcp.clone()),
        ("-u", s.udp.clone()),
        ("--sctp-service", s.sctp.clone()),
        ("-f", s.fwmark.map(|m| m.to_string())),
    ]
    .into_iter()
    .filter_map(|(o, v)| v.map(|v| (o, v)))
    .collect();
    match given.as_slice() {
        [(o, v)] => {
            let mut a = vec![o.to_string(), v.clone()];
            if *o == "-f" && s.ipv6 == Some(true) {
                a.push("-6".into());
            }
            Ok(a)
        }
        [] => Err("a service needs one of tcp, udp, sctp or fwmark".into()),
        _ => Err("a service takes only one of tcp, udp, sctp and fwmark".into()),
    }
}

fn ipvsadm_op(args: &[String]) -> Result<Op, String> {
    let mut argv = vec!["ipvsadm".to_string()];
    argv.extend(args.iter().cloned());
    match rvs_ipvsadm::parse(&argv, &NoResolve) {
        Ok(Parsed::Run(inv)) => match op(&inv.command) {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err("not a table entry".into()),
            Err(e) => Err(e.message),
        },
        Ok(_) => Err("not a table entry".into()),
        Err(e) => Err(e.message.trim_end().to_string()),
    }
}
