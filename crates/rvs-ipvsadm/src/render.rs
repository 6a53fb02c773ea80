//! ipvsadm's listings, byte for byte (`list_all`, `list_service`,
//! `print_service_entry`, `print_title`, `print_largenum`, `list_conn`,
//! `list_timeout`, `list_daemon`), rendered from a [`Snapshot`].

use crate::cli::CliError;
use crate::model::*;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Host and service names for listings without `-n` (ipvsadm uses
/// gethostbyaddr and getservbyport; this library asks the caller).
pub trait Names {
    /// A host name for an address.
    fn host(&self, addr: &IpAddr) -> Option<String>;
    /// A service name for a port and protocol number.
    fn service(&self, port: u16, proto: u8) -> Option<String>;
}

/// No names: what `-n` prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Numeric;

impl Names for Numeric {
    fn host(&self, _: &IpAddr) -> Option<String> {
        None
    }
    fn service(&self, _: u16, _: u8) -> Option<String> {
        None
    }
}

/// The output of a listing command (`-L` in all its forms, `-S`), or the
/// error ipvsadm would print.
pub fn render(inv: &Invocation, snap: &Snapshot, names: &dyn Names) -> Result<String, CliError> {
    let o = &inv.list;
    let names: &dyn Names = if o.numeric { &Numeric } else { names };
    match &inv.command {
        Command::Save => Ok(list_all(snap, o, true, names)),
        Command::List(key) => {
            if o.connections {
                return Ok(list_conns(snap, o, names));
            }
            if let Some(k) = key {
                let Some(se) = snap.services.iter().find(|s| s.service.key == *k) else {
                    return Err(CliError {
                        message: "No such service".into(),
                        exit_code: 1,
                    });
                };
                let mut out = title(o, false);
                service_entry(&mut out, se, o, false, names);
                return Ok(out);
            }
            if o.timeout {
                let (a, b, c) = snap.timeouts;
                return Ok(format!("Timeout (tcp tcpfin udp): {a} {b} {c}\n"));
            }
            if o.daemon {
                return Ok(list_daemons(snap));
            }
            Ok(list_all(snap, o, false, names))
        }
        _ => Ok(String::new()),
    }
}

fn list_all(snap: &Snapshot, o: &ListOptions, rule: bool, names: &dyn Names) -> String {
    let mut out = String::new();
    if !rule {
        let _ = writeln!(
            out,
            "IP Virtual Server version 1.2.1 (size={})",
            snap.conn_tab_size
        );
    }
    let mut services: Vec<&ServiceEntry> = snap.services.iter().collect();
    if !o.nosort {
        services.sort_by(|a, b| cmp_services(&a.service.key, &b.service.key));
    }
    out += &title(o, rule);
    for se in services {
        service_entry(&mut out, se, o, rule, names);
    }
    out
}

fn title(o: &ListOptions, rule: bool) -> String {
    if o.stats {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if o.rate {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if o.thresholds {
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if o.persistent_conn {
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if o.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".into()
    } else if !rule {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".into()
    } else {
        String::new()
    }
}

/// `addrport_to_anyname`: `host:port`, IPv6 in brackets, names unless numeric.
fn addrport(addr: &IpAddr, port: u16, proto: u8, names: &dyn Names) -> String {
    let host = names.host(addr).unwrap_or_else(|| addr.to_string());
    let port = names
        .service(port, proto)
        .unwrap_or_else(|| port.to_string());
    if addr.is_ipv6() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn truncate(s: &mut String, n: usize) {
    if s.len() > n {
        let mut cut = n;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn sched_flags(se: &Service) -> String {
    let f = se.flags;
    let mut v: Vec<&str> = Vec::new();
    match se.scheduler.as_str() {
        "sh" | "mh" => {
            let p = &se.scheduler;
            if f & SVC_F_SCHED1 != 0 {
                v.push(if p == "sh" {
                    "sh-fallback"
                } else {
                    "mh-fallback"
                });
            }
            if f & SVC_F_SCHED2 != 0 {
                v.push(if p == "sh" { "sh-port" } else { "mh-port" });
            }
        }
        _ => {
            for (bit, name) in [
                (SVC_F_SCHED1, "flag-1"),
                (SVC_F_SCHED2, "flag-2"),
                (SVC_F_SCHED3, "flag-3"),
            ] {
                if f & bit != 0 {
                    v.push(name);
                }
            }
        }
    }
    v.join(",")
}

fn mask_v4(m: u32) -> String {
    std::net::Ipv4Addr::from(m).to_string()
}

/// `print_largenum`.
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

fn fwd_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "Masq",
        Forward::Local => "Local",
        Forward::Tunnel => "Tunnel",
        Forward::Route => "Route",
    }
}

fn fwd_switch(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "-m",
        Forward::Tunnel => "-i",
        Forward::Local | Forward::Route => "-g",
    }
}

const TUNFLAGS: [&str; 3] = ["-c", "+c", "r+c"];
const TUN_FLAG_OPTS: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

fn tun_info(d: &Dest) -> Option<String> {
    if d.fwd != Forward::Tunnel {
        return None;
    }
    let flags = TUNFLAGS
        .get(usize::from(d.tun_flags))
        .copied()
        .unwrap_or("-c");
    match d.tun_type {
        TUN_IPIP => Some("ipip".into()),
        TUN_GUE => Some(format!("gue:{}:{flags}", d.tun_port)),
        TUN_GRE => Some(format!("gre:{flags}")),
        _ => None,
    }
}

fn service_entry(
    out: &mut String,
    se: &ServiceEntry,
    o: &ListOptions,
    rule: bool,
    names: &dyn Names,
) {
    let s = &se.service;
    let (proto, v6) = match s.key {
        ServiceKey::Addr { proto, addr, .. } => (proto, addr.is_ipv6()),
        ServiceKey::Fwmark { ipv6, .. } => (TCP, ipv6),
    };
    let svc_name = match s.key {
        ServiceKey::Fwmark { mark, ipv6 } => match (rule, ipv6) {
            (true, true) => format!("-f {mark} -6"),
            (true, false) => format!("-f {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
            (false, false) => format!("FWM  {mark}"),
        },
        ServiceKey::Addr { proto, addr, port } => {
            let vname = addrport(&addr, port, proto, names);
            if rule {
                let stype = match proto {
                    TCP => "-t",
                    UDP => "-u",
                    SCTP => "--sctp-service",
                    _ => "--xxx-service",
                };
                format!("{stype} {vname}")
            } else {
                let stype = match proto {
                    TCP => "TCP",
                    UDP => "UDP",
                    SCTP => "SCTP",
                    _ => "?",
                };
                let mut n = format!("{stype:<4} {vname}");
                if !addr.is_ipv6() {
                    truncate(&mut n, 33);
                }
                n
            }
        }
    };
    let has_flags = s.flags & SVC_F_SCHED_MASK != 0;
    if rule {
        let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
        if s.flags & SVC_F_PERSISTENT != 0 {
            let _ = write!(out, " -p {}", s.timeout);
            if !v6 && s.netmask != 0xffff_ffff {
                let _ = write!(out, " -M {}", mask_v4(s.netmask));
            }
            if v6 && s.netmask != 128 {
                let _ = write!(out, " -M {}", s.netmask);
            }
        }
        if !s.pe_name.is_empty() {
            let _ = write!(out, " --pe {}", s.pe_name);
        }
        if s.flags & SVC_F_ONEPACKET != 0 {
            out.push_str(" -o");
        }
        if has_flags {
            let _ = write!(out, " -b {}", sched_flags(s));
        }
    } else if o.stats || o.rate {
        let _ = write!(out, "{svc_name:<33}");
        let st = &se.stats;
        let vals = if o.stats {
            [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes]
        } else {
            [st.cps, st.inpps, st.outpps, st.inbps, st.outbps]
        };
        for v in vals {
            largenum(out, v, o.exact);
        }
    } else {
        let _ = write!(out, "{svc_name} {}", s.scheduler);
        if has_flags {
            let _ = write!(out, " ({})", sched_flags(s));
        }
        if s.flags & SVC_F_PERSISTENT != 0 {
            let _ = write!(out, " persistent {}", s.timeout);
            if !v6 && s.netmask != 0xffff_ffff {
                let _ = write!(out, " mask {}", mask_v4(s.netmask));
            }
            if v6 && s.netmask != 128 {
                let _ = write!(out, " mask {}", s.netmask);
            }
            if !s.pe_name.is_empty() {
                let _ = write!(out, " pe {}", s.pe_name);
            }
        }
        if s.flags & SVC_F_ONEPACKET != 0 {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut dests: Vec<&DestEntry> = se.dests.iter().collect();
    if !o.nosort {
        dests.sort_by(|a, b| cmp_dests(&a.dest, &b.dest));
    }
    for e in dests {
        let d = &e.dest;
        let mut dname = addrport(&d.addr, d.port, proto, names);
        if !rule && !d.addr.is_ipv6() {
            truncate(&mut dname, 28);
        }
        if rule {
            let base = format!(
                "-a {svc_name} -r {dname} {} -w {}",
                fwd_switch(d.fwd),
                d.weight
            );
            if d.fwd == Forward::Tunnel {
                let flag = TUN_FLAG_OPTS
                    .get(usize::from(d.tun_flags))
                    .copied()
                    .unwrap_or("--tun-nocsum");
                let _ = match d.tun_type {
                    TUN_GUE => writeln!(
                        out,
                        "{base} --tun-type gue --tun-port {} {flag}",
                        d.tun_port
                    ),
                    TUN_GRE => writeln!(out, "{base} --tun-type gre {flag}"),
                    TUN_IPIP => writeln!(out, "{base} --tun-type ipip"),
                    _ => writeln!(out, "{base}"),
                };
            } else {
                let _ = writeln!(out, "{base}");
            }
        } else if o.stats {
            let _ = write!(out, "  -> {dname:<28}");
            let st = &e.stats;
            for v in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
                largenum(out, v, o.exact);
            }
            out.push('\n');
        } else if o.rate {
            let st = &e.stats;
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                st.cps, st.inpps, st.outpps
            );
            largenum(out, st.inbps, o.exact);
            largenum(out, st.outbps, o.exact);
            out.push('\n');
        } else if o.thresholds {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.u_threshold, d.l_threshold, e.activeconns, e.inactconns
            );
        } else if o.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, e.persistconns, e.activeconns, e.inactconns
            );
        } else if o.tun_info {
            let ti = tun_info(d).unwrap_or_else(|| "n/a".into());
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {ti:<13} {:<6} {:<10} {:<10}",
                fwd_name(d.fwd),
                d.weight,
                e.activeconns,
                e.inactconns
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                fwd_name(d.fwd),
                d.weight,
                e.activeconns,
                e.inactconns
            );
        }
    }
}

/// libipvs's `ipvs_cmp_services`: fwmark, family, protocol, address, port,
/// each compared as the C code does, by an `int` difference (so address
/// words further apart than 2^31 compare "backwards", as in ipvsadm).
pub fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> Ordering {
    let parts = |k: &ServiceKey| -> (u32, u32, u32, [u32; 4], bool, u16) {
        match *k {
            ServiceKey::Fwmark { mark, ipv6 } => (
                mark,
                if ipv6 { 10 } else { 2 },
                u32::from(TCP),
                [0; 4],
                ipv6,
                0,
            ),
            ServiceKey::Addr { proto, addr, port } => {
                let (af, words, v6) = addr_words(&addr);
                (0, af, u32::from(proto), words, v6, port)
            }
        }
    };
    let (fa, afa, pa, wa, v6a, porta) = parts(a);
    let (fb, afb, pb, wb, _, portb) = parts(b);
    let c = c_diff(fa, fb).then(c_diff(afa, afb)).then(c_diff(pa, pb));
    if c != Ordering::Equal {
        return c;
    }
    let c = if v6a {
        wa.iter()
            .zip(wb.iter())
            .map(|(x, y)| c_diff(*x, *y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    } else {
        c_diff(wa[0], wb[0])
    };
    c.then(c_diff(u32::from(porta), u32::from(portb)))
}

/// libipvs's `ipvs_cmp_dests`: family, address, port.
pub fn cmp_dests(a: &Dest, b: &Dest) -> Ordering {
    let (afa, wa, v6a) = addr_words(&a.addr);
    let (afb, wb, _) = addr_words(&b.addr);
    let c = c_diff(afa, afb);
    if c != Ordering::Equal {
        return c;
    }
    let c = if v6a {
        wa.iter()
            .zip(wb.iter())
            .map(|(x, y)| c_diff(*x, *y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    } else {
        c_diff(wa[0], wb[0])
    };
    c.then(c_diff(u32::from(a.port), u32::from(b.port)))
}

fn addr_words(a: &IpAddr) -> (u32, [u32; 4], bool) {
    match a {
        IpAddr::V4(v) => (2, [u32::from(*v), 0, 0, 0], false),
        IpAddr::V6(v) => {
            let o = v.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            (10, [w(0), w(4), w(8), w(12)], true)
        }
    }
}

/// The sign of the C expression `(int)(a - b)` on unsigned values.
fn c_diff(a: u32, b: u32) -> Ordering {
    (a.wrapping_sub(b) as i32).cmp(&0)
}

fn list_conns(snap: &Snapshot, o: &ListOptions, names: &dyn Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if o.persistent_conn {
        // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
        out.push_str("pro expire state       source             virtual            destination        pe name          pe_data\n");
    } else {
        // "pro expire %-11s %-18s %-18s %s\n"
        out.push_str("pro expire state       source             virtual            destination\n");
    }
    for c in &snap.conns {
        let proto = match c.proto.as_str() {
            "TCP" => TCP,
            "UDP" => UDP,
            "SCTP" => SCTP,
            _ => 0,
        };
        let cname = addrport(&c.caddr, c.cport, proto, names);
        let vname = addrport(&c.vaddr, c.vport, proto, names);
        let dname = addrport(&c.daddr, c.dport, proto, names);
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        match (&c.pe, o.persistent_conn) {
            (Some((pn, pd)), true) => {
                let _ = writeln!(
                    out,
                    "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname:<16} {pn:<18} {pd}",
                    c.proto, c.state
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}",
                    c.proto, c.state
                );
            }
        }
    }
    out
}

fn list_daemons(snap: &Snapshot) -> String {
    let mut out = String::new();
    for d in &snap.daemons {
        let _ = write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            d.state, d.mcast_ifn, d.syncid
        );
        if d.sync_maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.sync_maxlen);
        }
        if let Some(g) = d.mcast_group {
            let _ = write!(out, ", group={g}");
        }
        if d.mcast_port != 0 {
            let _ = write!(out, ", port={}", d.mcast_port);
        }
        if d.mcast_ttl != 0 {
            let _ = write!(out, ", ttl={}", d.mcast_ttl);
        }
        out.push_str(")\n");
    }
    out
}
