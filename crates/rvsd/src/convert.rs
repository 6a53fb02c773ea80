//! Between ipvsadm's model (what rvsadm sends and renders) and the
//! engine's, with the kernel's error texts (libipvs `ipvs_strerror`).

use rvs_engine::{
    ConfigError, DestConfig, Director, Forward, SchedFlags, SchedKind, ServiceConfig, ServiceKey,
    TunnelKind,
};
use rvs_ipvsadm as adm;
use rvs_types::{Addr, Af, Instant, Proto};
use std::time::Duration;

/// One change of the configuration, as the engine applies it.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `-A`.
    AddService(ServiceConfig),
    /// `-E`.
    EditService(ServiceConfig),
    /// `-D`.
    DelService(ServiceKey),
    /// `-a`.
    AddDest(ServiceKey, DestConfig),
    /// `-e`.
    EditDest(ServiceKey, DestConfig),
    /// `-d`.
    DelDest(ServiceKey, Addr, u16),
    /// `-C`.
    Clear,
    /// `-Z`.
    Zero(Option<ServiceKey>),
    /// `--set`.
    SetTimeouts(u32, u32, u32),
}

/// A refused operation: ipvsadm's message and exit status.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OpError {
    /// What rvsadm prints.
    pub message: String,
    /// The status it exits with (255, ipvsadm's -1, for kernel errors).
    pub exit_code: i32,
}

impl OpError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit_code: 255,
        }
    }
}

impl Op {
    /// Applies to a director; errors carry the text ipvsadm prints for the
    /// kernel's answer to the same request.
    pub fn apply(&self, d: &mut Director) -> Result<(), OpError> {
        let r = match self {
            Self::AddService(c) => d.add_service(c.clone()),
            Self::EditService(c) => d.edit_service(c.clone()),
            Self::DelService(k) => d.del_service(k),
            Self::AddDest(k, c) => d.add_dest(k, c.clone()),
            Self::EditDest(k, c) => d.edit_dest(k, c.clone()),
            Self::DelDest(k, a, p) => d.del_dest(k, a, *p),
            Self::Clear => {
                d.clear();
                Ok(())
            }
            Self::Zero(k) => d.zero(k.as_ref()),
            Self::SetTimeouts(a, b, c) => {
                d.set_timeouts(*a, *b, *c);
                Ok(())
            }
        };
        r.map_err(|e| {
            let dest_op = matches!(
                self,
                Self::AddDest(..) | Self::EditDest(..) | Self::DelDest(..)
            );
            OpError::new(match e {
                ConfigError::ServiceExists => "Service already exists".to_string(),
                ConfigError::NoService if dest_op => "Service not defined".to_string(),
                ConfigError::NoService => "No such service".to_string(),
                ConfigError::DestExists => "Destination already exists".to_string(),
                ConfigError::NoDest => "No such destination".to_string(),
                ConfigError::Invalid(why) => why,
            })
        })
    }
}

fn addr(a: std::net::IpAddr) -> Addr {
    Addr::from(a)
}

/// The engine's service key.
pub fn key(k: &adm::ServiceKey) -> ServiceKey {
    match *k {
        adm::ServiceKey::Addr {
            proto,
            addr: a,
            port,
        } => ServiceKey::Addr {
            proto: Proto(proto),
            addr: addr(a),
            port,
        },
        adm::ServiceKey::Fwmark { mark, ipv6 } => ServiceKey::Fwmark {
            mark,
            af: if ipv6 { Af::V6 } else { Af::V4 },
        },
    }
}

/// ipvsadm's service key.
pub fn adm_key(k: &ServiceKey) -> adm::ServiceKey {
    match *k {
        ServiceKey::Addr { proto, addr, port } => adm::ServiceKey::Addr {
            proto: proto.0,
            addr: addr.to_ip(),
            port,
        },
        ServiceKey::Fwmark { mark, af } => adm::ServiceKey::Fwmark {
            mark,
            ipv6: af == Af::V6,
        },
    }
}

fn service(s: &adm::Service) -> Result<ServiceConfig, OpError> {
    let k = key(&s.key);
    let sched: SchedKind = s
        .scheduler
        .parse()
        .map_err(|_| OpError::new("Scheduler or persistence engine not found"))?;
    if !s.pe_name.is_empty() {
        return Err(OpError::new("Scheduler or persistence engine not found"));
    }
    let mut c = ServiceConfig::new(k);
    c.sched = sched;
    c.sched_flags = SchedFlags(s.flags & adm::SVC_F_SCHED_MASK);
    c.ops = s.flags & adm::SVC_F_ONEPACKET != 0;
    if s.flags & adm::SVC_F_PERSISTENT != 0 {
        c.persistence = Some(Duration::from_secs(u64::from(s.timeout)));
    }
    c.netmask = if k.af() == Af::V6 {
        u8::try_from(s.netmask.min(128)).unwrap_or(128)
    } else {
        // A netmask must be contiguous ones (the engine keys on a prefix).
        let ones = s.netmask.leading_ones();
        if s.netmask.checked_shl(ones).unwrap_or(0) != 0 {
            return Err(OpError::new(
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            ));
        }
        ones as u8
    };
    Ok(c)
}

fn dest(d: &adm::Dest) -> DestConfig {
    let mut c = DestConfig::new(addr(d.addr), d.port);
    c.weight = d.weight;
    c.u_threshold = d.u_threshold;
    c.l_threshold = d.l_threshold;
    c.fwd = match d.fwd {
        adm::Forward::Masq => Forward::Masq,
        adm::Forward::Route => Forward::Route,
        adm::Forward::Local => Forward::Local,
        adm::Forward::Tunnel => Forward::Tunnel(match d.tun_type {
            adm::TUN_GUE => TunnelKind::Gue {
                port: d.tun_port,
                csum: d.tun_flags == adm::TUN_F_CSUM,
                remcsum: d.tun_flags == adm::TUN_F_REMCSUM,
            },
            adm::TUN_GRE => TunnelKind::Gre {
                csum: d.tun_flags == adm::TUN_F_CSUM,
                key: None,
            },
            _ => TunnelKind::Ipip,
        }),
    };
    c
}

/// The engine operation for a table-changing ipvsadm command (`None` for
/// listings, save, restore and daemon commands).
pub fn op(c: &adm::Command) -> Result<Option<Op>, OpError> {
    Ok(Some(match c {
        adm::Command::AddService(s) => Op::AddService(service(s)?),
        adm::Command::EditService(s) => Op::EditService(service(s)?),
        adm::Command::DelService(k) => Op::DelService(key(k)),
        adm::Command::AddDest(k, d) => Op::AddDest(key(k), dest(d)),
        adm::Command::EditDest(k, d) => Op::EditDest(key(k), dest(d)),
        adm::Command::DelDest(k, a, p) => Op::DelDest(key(k), addr(*a), *p),
        adm::Command::Clear => Op::Clear,
        adm::Command::Zero(k) => Op::Zero(k.as_ref().map(key)),
        adm::Command::SetTimeouts { tcp, tcpfin, udp } => Op::SetTimeouts(*tcp, *tcpfin, *udp),
        adm::Command::StartDaemon(_) | adm::Command::StopDaemon(_) => {
            return Err(OpError::new("connection sync is not available yet in rvs"));
        }
        adm::Command::List(_) | adm::Command::Save | adm::Command::Restore => return Ok(None),
    }))
}

/// ipvsadm's snapshot of a director.
pub fn snapshot(d: &Director, now: Instant) -> adm::Snapshot {
    let services = d
        .services()
        .into_iter()
        .map(|s| {
            let v6 = s.cfg.key.af() == Af::V6;
            let mut flags = s.cfg.sched_flags.0 & adm::SVC_F_SCHED_MASK;
            if s.cfg.persistence.is_some() {
                flags |= adm::SVC_F_PERSISTENT;
            }
            if s.cfg.ops {
                flags |= adm::SVC_F_ONEPACKET;
            }
            let netmask = if v6 {
                u32::from(s.cfg.netmask)
            } else {
                u32::MAX
                    .checked_shl(32 - u32::from(s.cfg.netmask.min(32)))
                    .unwrap_or(0)
            };
            adm::ServiceEntry {
                service: adm::Service {
                    key: adm_key(&s.cfg.key),
                    scheduler: s.cfg.sched.name().to_string(),
                    flags,
                    timeout: s.cfg.persistence.map(|t| t.as_secs() as u32).unwrap_or(0),
                    netmask,
                    pe_name: String::new(),
                },
                stats: stats(&s.stats, &s.rates),
                dests: s
                    .dests
                    .iter()
                    .map(|x| adm::DestEntry {
                        dest: adm_dest(&x.cfg),
                        activeconns: x.activeconns,
                        inactconns: x.inactconns,
                        persistconns: x.persistconns,
                        stats: stats(&x.stats, &x.rates),
                    })
                    .collect(),
            }
        })
        .collect();
    let conns = d
        .connections(now)
        .into_iter()
        .map(|c| {
            let k = &c.conn;
            let proto = if k.flags.contains(rvs_engine::ConnFlags::TEMPLATE) && k.proto.0 == 0 {
                "IP".to_string()
            } else {
                k.proto.ipvs_name().to_string()
            };
            adm::ConnEntry {
                proto,
                caddr: k.caddr.to_ip(),
                cport: k.cport,
                vaddr: k.vaddr.to_ip(),
                vport: k.vport,
                daddr: k.daddr.to_ip(),
                dport: k.dport,
                state: c.state.to_string(),
                expires: c.expires_in.as_secs(),
                pe: None,
            }
        })
        .collect();
    adm::Snapshot {
        conn_tab_size: 4096,
        services,
        conns,
        timeouts: d.timeouts(),
        daemons: Vec::new(),
    }
}

fn stats(c: &rvs_engine::stats::Counters, r: &rvs_engine::stats::Rates) -> adm::Stats {
    adm::Stats {
        conns: c.conns,
        inpkts: c.inpkts,
        outpkts: c.outpkts,
        inbytes: c.inbytes,
        outbytes: c.outbytes,
        cps: r.cps,
        inpps: r.inpps,
        outpps: r.outpps,
        inbps: r.inbps,
        outbps: r.outbps,
    }
}

fn adm_dest(c: &DestConfig) -> adm::Dest {
    let (fwd, tun_type, tun_port, tun_flags) = match c.fwd {
        Forward::Masq => (adm::Forward::Masq, 0, 0, 0),
        Forward::Route => (adm::Forward::Route, 0, 0, 0),
        Forward::Local => (adm::Forward::Local, 0, 0, 0),
        Forward::Tunnel(TunnelKind::Ipip) => (adm::Forward::Tunnel, adm::TUN_IPIP, 0, 0),
        Forward::Tunnel(TunnelKind::Gue {
            port,
            csum,
            remcsum,
        }) => (
            adm::Forward::Tunnel,
            adm::TUN_GUE,
            port,
            if remcsum {
                adm::TUN_F_REMCSUM
            } else if csum {
                adm::TUN_F_CSUM
            } else {
                adm::TUN_F_NOCSUM
            },
        ),
        Forward::Tunnel(TunnelKind::Gre { csum, .. }) => (
            adm::Forward::Tunnel,
            adm::TUN_GRE,
            0,
            if csum {
                adm::TUN_F_CSUM
            } else {
                adm::TUN_F_NOCSUM
            },
        ),
    };
    adm::Dest {
        addr: c.addr.to_ip(),
        port: c.port,
        fwd,
        weight: c.weight,
        u_threshold: c.u_threshold,
        l_threshold: c.l_threshold,
        tun_type,
        tun_port,
        tun_flags,
    }
}

/// The configuration as a list of operations that rebuild it from empty.
pub fn ops_of(d: &Director) -> Vec<Op> {
    let mut ops = Vec::new();
    let (t, f, u) = d.timeouts();
    ops.push(Op::SetTimeouts(t, f, u));
    for s in d.services() {
        let k = s.cfg.key;
        ops.push(Op::AddService(s.cfg));
        // Oldest first, so that the rebuilt list has the same order.
        for x in s.dests.into_iter().rev() {
            ops.push(Op::AddDest(k, x.cfg));
        }
    }
    ops
}
