//! Prometheus metrics on an opt-in listen address: per service and per real
//! server connections, packets and bytes (counters), rates (gauges), drops by
//! reason, connection table size. Rendered from a fresh snapshot per scrape,
//! so the packet path carries no metrics cost.

use crate::control::Control;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct SvcLabels {
    service: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct DestLabels {
    service: String,
    server: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct DropLabels {
    reason: String,
}

fn svc_name(k: &rvs_ipvsadm::ServiceKey) -> String {
    match k {
        rvs_ipvsadm::ServiceKey::Addr { proto, addr, port } => {
            let p = match *proto {
                rvs_ipvsadm::TCP => "tcp",
                rvs_ipvsadm::UDP => "udp",
                _ => "sctp",
            };
            if addr.is_ipv6() {
                format!("{p}/[{addr}]:{port}")
            } else {
                format!("{p}/{addr}:{port}")
            }
        }
        rvs_ipvsadm::ServiceKey::Fwmark { mark, ipv6 } => {
            format!("fwm/{mark}{}", if *ipv6 { "/v6" } else { "" })
        }
    }
}

/// The metrics text (OpenMetrics) for the current state.
pub fn render(control: &Mutex<Control>) -> String {
    let (snap, stats) = {
        let Ok(c) = control.lock() else {
            return String::new();
        };
        let Some(w) = c.workers().first() else {
            return String::new();
        };
        (w.snapshot().ok(), w.stats().ok())
    };
    let mut reg = Registry::with_prefix("rvs");
    macro_rules! fam {
        ($name:literal, $help:literal, $t:ty, $l:ty) => {{
            let f = Family::<$l, $t>::default();
            reg.register($name, $help, f.clone());
            f
        }};
    }
    let s_conns = fam!(
        "service_connections",
        "Connections scheduled",
        Counter,
        SvcLabels
    );
    let s_inpkts = fam!(
        "service_in_packets",
        "Packets from clients",
        Counter,
        SvcLabels
    );
    let s_outpkts = fam!(
        "service_out_packets",
        "Packets to clients",
        Counter,
        SvcLabels
    );
    let s_inbytes = fam!("service_in_bytes", "Bytes from clients", Counter, SvcLabels);
    let s_outbytes = fam!("service_out_bytes", "Bytes to clients", Counter, SvcLabels);
    let s_cps = fam!(
        "service_connection_rate",
        "Connections per second (2 s estimator)",
        Gauge,
        SvcLabels
    );
    let s_inpps = fam!(
        "service_in_packet_rate",
        "Packets per second from clients",
        Gauge,
        SvcLabels
    );
    let d_conns = fam!(
        "server_connections",
        "Connections scheduled",
        Counter,
        DestLabels
    );
    let d_inpkts = fam!(
        "server_in_packets",
        "Packets from clients",
        Counter,
        DestLabels
    );
    let d_outpkts = fam!(
        "server_out_packets",
        "Packets to clients",
        Counter,
        DestLabels
    );
    let d_inbytes = fam!("server_in_bytes", "Bytes from clients", Counter, DestLabels);
    let d_outbytes = fam!("server_out_bytes", "Bytes to clients", Counter, DestLabels);
    let d_active = fam!(
        "server_active_connections",
        "Active connections",
        Gauge,
        DestLabels
    );
    let d_inactive = fam!(
        "server_inactive_connections",
        "Inactive connections",
        Gauge,
        DestLabels
    );
    let d_weight = fam!("server_weight", "Weight", Gauge, DestLabels);
    let drops = fam!("drops", "Frames dropped, by reason", Counter, DropLabels);
    let conns = Gauge::<i64>::default();
    reg.register(
        "connection_table_entries",
        "Connection entries (templates included)",
        conns.clone(),
    );
    if let Some(s) = &snap {
        for se in &s.services {
            let l = SvcLabels {
                service: svc_name(&se.service.key),
            };
            s_conns.get_or_create(&l).inc_by(se.stats.conns);
            s_inpkts.get_or_create(&l).inc_by(se.stats.inpkts);
            s_outpkts.get_or_create(&l).inc_by(se.stats.outpkts);
            s_inbytes.get_or_create(&l).inc_by(se.stats.inbytes);
            s_outbytes.get_or_create(&l).inc_by(se.stats.outbytes);
            s_cps.get_or_create(&l).set(se.stats.cps as i64);
            s_inpps.get_or_create(&l).set(se.stats.inpps as i64);
            for d in &se.dests {
                let server = if d.dest.addr.is_ipv6() {
                    format!("[{}]:{}", d.dest.addr, d.dest.port)
                } else {
                    format!("{}:{}", d.dest.addr, d.dest.port)
                };
                let l = DestLabels {
                    service: l.service.clone(),
                    server,
                };
                d_conns.get_or_create(&l).inc_by(d.stats.conns);
                d_inpkts.get_or_create(&l).inc_by(d.stats.inpkts);
                d_outpkts.get_or_create(&l).inc_by(d.stats.outpkts);
                d_inbytes.get_or_create(&l).inc_by(d.stats.inbytes);
                d_outbytes.get_or_create(&l).inc_by(d.stats.outbytes);
                d_active.get_or_create(&l).set(i64::from(d.activeconns));
                d_inactive.get_or_create(&l).set(i64::from(d.inactconns));
                d_weight.get_or_create(&l).set(i64::from(d.dest.weight));
            }
        }
    }
    if let Some(g) = &stats {
        for (r, n) in &g.drops {
            drops
                .get_or_create(&DropLabels {
                    reason: r.label().to_string(),
                })
                .inc_by(*n);
        }
        conns.set(g.conns as i64);
    }
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

/// Serves `GET /metrics` until `stop` is set.
pub fn serve(listener: TcpListener, control: Arc<Mutex<Control>>, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body, ctype) = if req.starts_with("GET /metrics") {
                    (
                        "200 OK",
                        render(&control),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                } else {
                    ("404 Not Found", "not found\n".to_string(), "text/plain")
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
