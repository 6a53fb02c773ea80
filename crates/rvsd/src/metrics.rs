//! Prometheus metrics on an opt-in listen address: per service and per real
//! server connections, packets and bytes (counters), rates (gauges), drops by
//! reason, connection table size, per-worker hand-off figures, dataplane
//! queue figures (rx, tx, tx ring
//! full, no next hop) when rvsd serves interfaces. Labels: `protocol`,
//! `vip`, `port` (or `fwmark`), `family`, and `server` for real servers.
//! Rendered from a fresh snapshot per scrape, so the packet path carries no
//! metrics cost.

use crate::control::Control;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A service: `protocol` is tcp, udp, sctp or fwm; `vip` and `port` are
/// empty for fwmark services, `fwmark` is empty for the others.
#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct SvcLabels {
    protocol: String,
    vip: String,
    port: String,
    fwmark: String,
    family: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct DestLabels {
    protocol: String,
    vip: String,
    port: String,
    fwmark: String,
    family: String,
    /// The real server, `addr:port` (`[v6]:port`).
    server: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct DropLabels {
    reason: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
struct QueueLabels {
    interface: String,
    queue: String,
}

fn svc_labels(k: &rvs_ipvsadm::ServiceKey) -> SvcLabels {
    match k {
        rvs_ipvsadm::ServiceKey::Addr { proto, addr, port } => SvcLabels {
            protocol: match *proto {
                rvs_ipvsadm::TCP => "tcp",
                rvs_ipvsadm::UDP => "udp",
                _ => "sctp",
            }
            .into(),
            vip: addr.to_string(),
            port: port.to_string(),
            fwmark: String::new(),
            family: if addr.is_ipv6() { "ipv6" } else { "ipv4" }.into(),
        },
        rvs_ipvsadm::ServiceKey::Fwmark { mark, ipv6 } => SvcLabels {
            protocol: "fwm".into(),
            vip: String::new(),
            port: String::new(),
            fwmark: mark.to_string(),
            family: if *ipv6 { "ipv6" } else { "ipv4" }.into(),
        },
    }
}

/// The metrics text (OpenMetrics) for the current state.
pub fn render(control: &Mutex<Control>) -> String {
    let (snap, stats) = {
        let Ok(c) = control.lock() else {
            return String::new();
        };

        (
            crate::worker::snapshot_all(c.workers()).ok(),
            crate::worker::daemon_stats(c.workers()).ok(),
        )
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
    let s_outpps = fam!(
        "service_out_packet_rate",
        "Packets per second to clients",
        Gauge,
        SvcLabels
    );
    let s_inbps = fam!(
        "service_in_byte_rate",
        "Bytes per second from clients",
        Gauge,
        SvcLabels
    );
    let s_outbps = fam!(
        "service_out_byte_rate",
        "Bytes per second to clients",
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
    let d_cps = fam!(
        "server_connection_rate",
        "Connections per second (2 s estimator)",
        Gauge,
        DestLabels
    );
    let d_inpps = fam!(
        "server_in_packet_rate",
        "Packets per second from clients",
        Gauge,
        DestLabels
    );
    let d_outpps = fam!(
        "server_out_packet_rate",
        "Packets per second to clients",
        Gauge,
        DestLabels
    );
    let d_inbps = fam!(
        "server_in_byte_rate",
        "Bytes per second from clients",
        Gauge,
        DestLabels
    );
    let d_outbps = fam!(
        "server_out_byte_rate",
        "Bytes per second to clients",
        Gauge,
        DestLabels
    );
    let q_rx = fam!("queue_rx_frames", "Frames received", Counter, QueueLabels);
    let q_tx = fam!(
        "queue_tx_frames",
        "Frames transmitted",
        Counter,
        QueueLabels
    );
    let q_full = fam!(
        "queue_tx_full",
        "Frames not transmitted: TX ring or UMEM full",
        Counter,
        QueueLabels
    );
    let q_nh = fam!(
        "queue_no_next_hop",
        "Forwarded frames dropped for want of a next hop",
        Counter,
        QueueLabels
    );
    let w_off = fam!(
        "worker_handed_off_frames",
        "Frames a worker received and handed to their owner worker",
        Counter,
        WorkerLabels
    );
    let w_over = fam!(
        "worker_taken_over_frames",
        "Frames other workers handed to this one",
        Counter,
        WorkerLabels
    );
    let w_full = fam!(
        "worker_ring_full",
        "Frames dropped: the hand-off ring to another worker was full",
        Counter,
        WorkerLabels
    );
    let w_nh = fam!(
        "worker_no_next_hop",
        "Handed-over forwarded frames dropped for want of a next hop",
        Counter,
        WorkerLabels
    );
    let drops = fam!("drops", "Frames dropped, by reason", Counter, DropLabels);
    let conns = Gauge::<i64>::default();
    reg.register(
        "connection_table_entries",
        "Connection entries (templates included)",
        conns.clone(),
    );
    if let Some(s) = &snap {
        for se in &s.services {
            let l = svc_labels(&se.service.key);
            s_conns.get_or_create(&l).inc_by(se.stats.conns);
            s_inpkts.get_or_create(&l).inc_by(se.stats.inpkts);
            s_outpkts.get_or_create(&l).inc_by(se.stats.outpkts);
            s_inbytes.get_or_create(&l).inc_by(se.stats.inbytes);
            s_outbytes.get_or_create(&l).inc_by(se.stats.outbytes);
            s_cps.get_or_create(&l).set(se.stats.cps as i64);
            s_inpps.get_or_create(&l).set(se.stats.inpps as i64);
            s_outpps.get_or_create(&l).set(se.stats.outpps as i64);
            s_inbps.get_or_create(&l).set(se.stats.inbps as i64);
            s_outbps.get_or_create(&l).set(se.stats.outbps as i64);
            for d in &se.dests {
                let server = if d.dest.addr.is_ipv6() {
                    format!("[{}]:{}", d.dest.addr, d.dest.port)
                } else {
                    format!("{}:{}", d.dest.addr, d.dest.port)
                };
                let l = DestLabels {
                    protocol: l.protocol.clone(),
                    vip: l.vip.clone(),
                    port: l.port.clone(),
                    fwmark: l.fwmark.clone(),
                    family: l.family.clone(),
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
                d_cps.get_or_create(&l).set(d.stats.cps as i64);
                d_inpps.get_or_create(&l).set(d.stats.inpps as i64);
                d_outpps.get_or_create(&l).set(d.stats.outpps as i64);
                d_inbps.get_or_create(&l).set(d.stats.inbps as i64);
                d_outbps.get_or_create(&l).set(d.stats.outbps as i64);
            }
        }
    }
    if let Some(g) = &stats {
        for (r, n) in &g.drops {
            drops
                .get_or_create(&DropLabels { reason: r.clone() })
                .inc_by(*n);
        }
        conns.set(g.conns as i64);
    }
    for q in stats.iter().flat_map(|g| &g.queues) {
        let l = QueueLabels {
            interface: q.iface.clone(),
            queue: q.queue.to_string(),
        };
        q_rx.get_or_create(&l).inc_by(q.rx);
        q_tx.get_or_create(&l).inc_by(q.tx);
        q_full.get_or_create(&l).inc_by(q.tx_full);
        q_nh.get_or_create(&l).inc_by(q.no_next_hop);
    }
    for w in stats.iter().flat_map(|g| &g.workers) {
        let l = WorkerLabels {
            worker: w.worker.to_string(),
        };
        w_off.get_or_create(&l).inc_by(w.handed_off);
        w_over.get_or_create(&l).inc_by(w.taken_over);
        w_full.get_or_create(&l).inc_by(w.ring_full);
        w_nh.get_or_create(&l).inc_by(w.no_next_hop);
    }
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

/// Serves `GET /metrics` until `stop` is set (checked every 50 ms): a
/// plain HTTP/1.1 handler on a tokio runtime of its own (current thread,
/// one task per connection, the snapshot taken on the blocking pool; a
/// client gets 5 s to send its request head).
pub fn serve(listener: TcpListener, control: Arc<Mutex<Control>>, stop: Arc<AtomicBool>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "metrics: no runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "metrics: cannot register the listener");
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                r = listener.accept() => {
                    if let Ok((s, _)) = r {
                        let control = control.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(5),
                                answer(s, control),
                            )
                            .await;
                        });
                    }
                }
                _ = tick.tick() => {}
            }
        }
    });
}

async fn answer(mut s: tokio::net::TcpStream, control: Arc<Mutex<Control>>) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    // Read the request head (or as much of it as fits).
    while n < buf.len() {
        let Some(free) = buf.get_mut(n..) else { break };
        let k = s.read(free).await?;
        if k == 0 {
            break;
        }
        n += k;
        if buf
            .get(..n)
            .is_some_and(|h| h.windows(4).any(|w| w == b"\r\n\r\n"))
        {
            break;
        }
    }
    let head = buf.get(..n).unwrap_or_default();
    let (status, body, ctype) =
        if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
            let body = tokio::task::spawn_blocking(move || render(&control))
                .await
                .unwrap_or_default();
            (
                "200 OK",
                body,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        } else {
            ("404 Not Found", "not found\n".to_string(), "text/plain")
        };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}
