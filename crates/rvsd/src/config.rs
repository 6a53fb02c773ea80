//! rvsd's native configuration file (TOML; see docs/CONFIG.md). Every
//! error names FILE:LINE and why, and a file with any error is applied not
//! at all. Services and real servers are checked with exactly ipvsadm's
//! rules and messages (each section is turned into the ipvsadm command line
//! it stands for), then applied to a scratch director for the kernel-side
//! checks (duplicates, families, ports).

use crate::convert::{Op, op};

use rvs_engine::{Director, DirectorConfig, NoDest, ServiceKey};
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
    /// How the steering program is attached (`--xdp-mode`).
    pub xdp_mode: Option<XdpMode>,
}

/// How the XDP steering program is attached to the served interfaces.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Generic (skb) mode: works on every interface; the kernel builds an
    /// skb for every frame first.
    #[default]
    Generic,
    /// Native (driver) mode: the program runs in the driver, before any
    /// skb; for NICs whose driver has XDP (measured no faster on veth).
    Native,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectorSection {
    max_conns: Option<u32>,
    expire_nodest_conn: Option<Spanned<bool>>,
    nodest: Option<Spanned<NoDestWord>>,
    expire_quiescent_template: Option<bool>,
    sloppy_tcp: Option<bool>,
    sloppy_sctp: Option<bool>,
    conn_reuse_mode: Option<Spanned<i64>>,
    tunnel_mtu: Option<Spanned<u32>>,
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
    tcp: Option<Spanned<String>>,
    udp: Option<Spanned<String>>,
    sctp: Option<Spanned<String>>,
    fwmark: Option<Spanned<u32>>,
    ipv6: Option<Spanned<bool>>,
    scheduler: Option<Spanned<String>>,
    flags: Option<Spanned<Vec<String>>>,
    persistent: Option<Spanned<u32>>,
    netmask: Option<Spanned<Netmask>>,
    ops: Option<Spanned<bool>>,
    expire_nodest_conn: Option<Spanned<bool>>,
    nodest: Option<Spanned<NoDestWord>>,
    #[serde(default)]
    real: Vec<Spanned<RealSection>>,
}

/// `nodest = "keep" | "drop" | "expire"`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NoDestWord {
    Keep,
    Drop,
    Expire,
}

/// The policy `expire_nodest_conn = BOOL` (IPVS's meaning: true is expire,
/// false is drop) or `nodest = WORD` set, if either; both at once is an
/// error at the later one.
fn nodest_of(
    expire: &Option<Spanned<bool>>,
    word: &Option<Spanned<NoDestWord>>,
) -> Result<Option<NoDest>, (usize, String)> {
    Ok(match (expire, word) {
        (Some(e), Some(w)) => {
            return Err((
                e.span().start.max(w.span().start),
                "expire_nodest_conn and nodest set the same thing: give only one".into(),
            ));
        }
        (Some(e), None) => Some(NoDest::from_expire_nodest_conn(*e.get_ref())),
        (None, Some(w)) => Some(match w.get_ref() {
            NoDestWord::Keep => NoDest::Keep,
            NoDestWord::Drop => NoDest::Drop,
            NoDestWord::Expire => NoDest::Expire,
        }),
        (None, None) => None,
    })
}

/// `netmask = "255.255.255.0"` or `netmask = 24` (a prefix length; the only
/// form for IPv6, as ipvsadm's `-M 64`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Netmask {
    Text(String),
    Prefix(u32),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RealSection {
    server: Spanned<String>,
    method: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
    u_threshold: Option<Spanned<i64>>,
    l_threshold: Option<Spanned<i64>>,
    tunnel_type: Option<Spanned<String>>,
    tunnel_port: Option<Spanned<i64>>,
    tunnel_csum: Option<Spanned<String>>,
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
        director.nodest =
            nodest_of(&d.expire_nodest_conn, &d.nodest).map_err(|(off, why)| at(off, &why))?;
        director.expire_quiescent_template = d.expire_quiescent_template.unwrap_or(false);
        director.sloppy_tcp = d.sloppy_tcp.unwrap_or(false);
        director.sloppy_sctp = d.sloppy_sctp.unwrap_or(false);
        if let Some(m) = d.conn_reuse_mode {
            let (off, m) = (m.span().start, *m.get_ref());
            director.reuse_fin_wait = match m {
                1 => false,
                // Bit 2: also a SYN on a FIN_WAIT entry of a DR/TUN
                // connection (the last state a director that sees one
                // direction tracks).
                2 | 3 => true,
                0 => {
                    return Err(at(
                        off,
                        "conn_reuse_mode 0 is not offered: rvs always gives a SYN on a TIME_WAIT or CLOSE entry a new scheduling decision, at once (IPVS's bit 1 without its one-second stall); use 1, or 3 to add FIN_WAIT",
                    ));
                }
                _ => {
                    return Err(at(
                        off,
                        &format!("conn_reuse_mode {m} is not one of 1, 2, 3"),
                    ));
                }
            };
        }
        if let Some(m) = d.tunnel_mtu {
            let (off, m) = (m.span().start, *m.get_ref());
            if !(576..=65535).contains(&m) {
                return Err(at(off, &format!("tunnel_mtu {m} is outside 576..65535")));
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
    let mut ops: Vec<Located> = Vec::new();
    if let Some(t) = file.timeouts {
        ops.push(Located::at(
            0,
            Op::SetTimeouts(
                t.tcp.unwrap_or(0),
                t.tcpfin.unwrap_or(0),
                t.udp.unwrap_or(0),
            ),
        ));
    }
    for s in &file.service {
        service(s, &mut ops).map_err(|(off, why)| at(off, &why))?;
    }
    // The kernel-side checks (duplicates, scheduler names, ...), in file
    // order, on a scratch director; each refusal blamed on the field it is
    // about.
    let mut scratch = Director::new(director.clone(), Instant::ZERO);
    for l in &ops {
        if let Err(e) = l.op.apply(&mut scratch) {
            let off = l
                .blame
                .iter()
                .find(|(m, _)| e.message.starts_with(m))
                .map_or(l.table, |b| b.1);
            return Err(at(off, &e.message));
        }
    }
    Ok(Config {
        daemon: file.daemon.unwrap_or_default(),
        director,
        ops: ops.into_iter().map(|l| l.op).collect(),
    })
}

/// An operation with the place of its table in the file and, per kernel
/// message, the field that message is about.
struct Located {
    op: Op,
    table: usize,
    blame: Vec<(&'static str, usize)>,
}

impl Located {
    fn at(table: usize, op: Op) -> Self {
        Self {
            op,
            table,
            blame: Vec::new(),
        }
    }
}

/// Some ipvsadm arguments and the file offset of the field they came from.
struct Piece {
    args: Vec<String>,
    at: usize,
}

impl Piece {
    fn new<T>(field: &Spanned<T>, args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|a| a.to_string()).collect(),
            at: field.span().start,
        }
    }
}

/// The ipvsadm command `head` + `pieces` as an engine operation. A refusal
/// is blamed on the first field whose piece, added to the ones before it,
/// already gives ipvsadm's message; otherwise on the table's header.
fn command(head: &str, pieces: &[Piece], table: usize) -> Result<Op, (usize, String)> {
    let argv = |n: usize| {
        let mut a = vec![head.to_string()];
        for p in pieces.iter().take(n) {
            a.extend(p.args.iter().cloned());
        }
        a
    };
    let why = match ipvsadm_op(&argv(pieces.len())) {
        Ok(o) => return Ok(o),
        Err(why) => why,
    };
    for n in 1..=pieces.len() {
        if let (Err(w), Some(p)) = (ipvsadm_op(&argv(n)), pieces.get(n - 1))
            && w == why
        {
            return Err((p.at, why));
        }
    }
    Err((table, why))
}

/// One `[[service]]` and its `[[service.real]]`s as the ipvsadm commands
/// they stand for (`-A ...`, then `-a ...` per real server, in file order).
fn service(s: &Spanned<ServiceSection>, ops: &mut Vec<Located>) -> Result<(), (usize, String)> {
    let table = s.span().start;
    let sv = s.get_ref();
    let mut given: Vec<Piece> = Vec::new();
    for (opt, v) in [
        ("-t", &sv.tcp),
        ("-u", &sv.udp),
        ("--sctp-service", &sv.sctp),
    ] {
        if let Some(v) = v {
            given.push(Piece::new(v, &[opt, v.get_ref()]));
        }
    }
    if let Some(m) = &sv.fwmark {
        let mut p = Piece::new(m, &["-f", &m.get_ref().to_string()]);
        if sv.ipv6.as_ref().is_some_and(|v| *v.get_ref()) {
            p.args.push("-6".into());
        }
        given.push(p);
    }
    let key = match given.len() {
        1 => given.remove(0),
        0 => {
            return Err((
                table,
                "a service needs one of tcp, udp, sctp or fwmark".into(),
            ));
        }
        _ => {
            let at = given.iter().map(|p| p.at).max().unwrap_or(table);
            return Err((
                at,
                "a service takes only one of tcp, udp, sctp and fwmark".into(),
            ));
        }
    };
    if let Some(v6) = &sv.ipv6
        && sv.fwmark.is_none()
        && *v6.get_ref()
    {
        return Err((
            v6.span().start,
            "ipv6 = true is for fwmark services (an address says its family)".into(),
        ));
    }
    let is_v6 = key.args.iter().any(|a| a == "-6" || a.starts_with('['));
    let mut pieces = vec![Piece {
        args: key.args.clone(),
        at: key.at,
    }];
    if let Some(v) = &sv.scheduler {
        pieces.push(Piece::new(v, &["-s", v.get_ref()]));
    }
    if let Some(v) = &sv.persistent {
        pieces.push(Piece::new(v, &["-p", &v.get_ref().to_string()]));
    }
    if let Some(v) = &sv.netmask {
        let text = match v.get_ref() {
            Netmask::Text(t) => t.clone(),
            Netmask::Prefix(n) if is_v6 => n.to_string(),
            Netmask::Prefix(n) => match 32u32.checked_sub(*n) {
                Some(zeros) => {
                    let m = u32::MAX.checked_shl(zeros).unwrap_or(0);
                    std::net::Ipv4Addr::from(m).to_string()
                }
                None => {
                    return Err((
                        v.span().start,
                        format!("netmask prefix {n} is longer than 32"),
                    ));
                }
            },
        };
        pieces.push(Piece::new(v, &["-M", &text]));
    }
    if let Some(v) = &sv.flags
        && !v.get_ref().is_empty()
    {
        pieces.push(Piece::new(v, &["-b", &v.get_ref().join(",")]));
    }
    if let Some(v) = &sv.ops
        && *v.get_ref()
    {
        pieces.push(Piece::new(v, &["-o"]));
    }
    let nodest = nodest_of(&sv.expire_nodest_conn, &sv.nodest)?;
    let mut op = command("-A", &pieces, table)?;
    if let Op::AddService(c) = &mut op {
        c.nodest = nodest;
    }
    let svc_port = match &op {
        Op::AddService(c) => match c.key {
            ServiceKey::Addr { port, .. } => Some(port),
            ServiceKey::Fwmark { .. } => None,
        },
        _ => None,
    };
    let at_of = |f: &Option<Spanned<String>>| f.as_ref().map_or(table, |v| v.span().start);
    ops.push(Located {
        op,
        table,
        blame: vec![
            ("Service already exists", key.at),
            (
                "Scheduler or persistence engine not found",
                at_of(&sv.scheduler),
            ),
            (
                "Invalid operation",
                sv.netmask.as_ref().map_or(table, |v| v.span().start),
            ),
        ],
    });
    for r in &sv.real {
        ops.push(real(r, &key.args, svc_port)?);
    }
    Ok(())
}

/// One `[[service.real]]` as `ipvsadm -a SERVICE -r ...`.
fn real(
    r: &Spanned<RealSection>,
    svc: &[String],
    svc_port: Option<u16>,
) -> Result<Located, (usize, String)> {
    let table = r.span().start;
    let rv = r.get_ref();
    let mut pieces = vec![
        Piece {
            args: svc.to_vec(),
            at: table,
        },
        Piece::new(&rv.server, &["-r", rv.server.get_ref()]),
    ];
    let method = rv.method.as_ref().map_or("route", |m| m.get_ref().as_str());
    let flag = match method {
        "masq" | "nat" => "-m",
        "route" | "dr" => "-g",
        "tunnel" | "tun" => "-i",
        other => {
            return Err((
                rv.method.as_ref().map_or(table, |m| m.span().start),
                format!("unknown method '{other}' (masq, route or tunnel)"),
            ));
        }
    };
    match &rv.method {
        Some(m) => pieces.push(Piece::new(m, &[flag])),
        None => pieces.push(Piece {
            args: vec![flag.into()],
            at: table,
        }),
    }
    // ipvsadm quietly replaces a direct-routing or tunnel real server's port
    // with the service's (DR and TUN cannot change the destination port);
    // in a configuration file that is a mistake worth reporting.
    if flag != "-m"
        && let Some(vport) = svc_port
        && let Ok(sa) = rv.server.get_ref().parse::<std::net::SocketAddr>()
        && sa.port() != vport
    {
        return Err((
            rv.server.span().start,
            format!(
                "port mapping ({} to {}) needs method = \"masq\": {method} keeps the destination port",
                vport,
                sa.port()
            ),
        ));
    }
    for (opt, v) in [
        ("-w", &rv.weight),
        ("-x", &rv.u_threshold),
        ("-y", &rv.l_threshold),
        ("--tun-port", &rv.tunnel_port),
    ] {
        if let Some(v) = v {
            pieces.push(Piece::new(v, &[opt, &v.get_ref().to_string()]));
        }
    }
    if let Some(t) = &rv.tunnel_type {
        pieces.push(Piece::new(t, &["--tun-type", t.get_ref()]));
    }
    if let Some(c) = &rv.tunnel_csum {
        let opt = match c.get_ref().as_str() {
            "none" => "--tun-nocsum",
            "csum" => "--tun-csum",
            "remcsum" => "--tun-remcsum",
            o => {
                return Err((
                    c.span().start,
                    format!("unknown tunnel_csum '{o}' (none, csum or remcsum)"),
                ));
            }
        };
        pieces.push(Piece::new(c, &[opt]));
    }
    let op = command("-a", &pieces, table)?;
    Ok(Located {
        op,
        table,
        blame: vec![("Destination already exists", rv.server.span().start)],
    })
}

/// The engine operation an ipvsadm command line (without `ipvsadm`) stands
/// for, or ipvsadm's message refusing it.
pub(crate) fn ipvsadm_op(args: &[String]) -> Result<Op, String> {
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
