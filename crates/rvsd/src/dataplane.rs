//! The AF_XDP dataplane of a worker: the steering program (rvs-bpf) on every
//! served interface sends service traffic, NAT replies and related ICMP
//! errors to the AF_XDP socket of the receive queue they arrived on (one
//! socket per queue of every served interface, rvs-afxdp; all of them
//! polled by the worker's one director); frames go through
//! the engine, get their MACs from the kernel's tables (`nexthop`: netlink,
//! cached per connection, kept true by the kernel's change notifications)
//! and leave by a socket of the egress interface (the receiving queue's
//! number modulo the egress interface's queue count). Everything else stays with
//! the kernel.
//!
//! Attaching and map updates happen in rvsd's own network namespace, on the
//! interfaces it was told to serve; the programs come off when rvsd exits.
//!
//! The fwmark path (`markpath`): packets the user's rules marked are
//! policy-routed into rvsd's veth pair; tagged with their mark on the way
//! (tc), they arrive on one more AF_XDP socket, on `markpath::RX_IF`, and go
//! through the engine with `RxMeta::fwmark` set.

use crate::markpath::{self, MarkRouting};
use crate::nexthop::NextHops;
use crate::worker::Port;
use rvs_afxdp::XskPort;
use rvs_bpf::{MarkTag, STEER_MAX_QUEUES as MAX_QUEUES, Steering};
use rvs_engine::{Direction, Director, Forward, RxMeta, ServiceKey, Verdict};
use rvs_types::{Instant, Proto};
use rvs_wire::FrameBuf;
use std::time::Duration;

/// One AF_XDP socket: a queue of a served interface, or the fwmark path's
/// receiving end.
struct Sock {
    port: XskPort,
    /// Index of its interface in `XdpPort::ifaces`.
    iface: usize,
    /// Forwarded frames received here and dropped for want of a next hop.
    no_next_hop: u64,
}

/// One served interface (or the fwmark path's receiving end: no steering
/// program, every frame there is tagged and ours) and its sockets, one per
/// receive queue.
struct Iface {
    ifindex: u32,
    mac: [u8; 6],
    /// Its sockets: `XdpPort::socks[first..first + queues]`, queue `q` at
    /// `first + q`.
    first: usize,
    queues: usize,
    steer: Option<Steering>,
}

impl Iface {
    /// The socket a frame leaves this interface by when it arrived on
    /// queue `rx_queue` of some interface: the same queue number modulo
    /// this interface's queue count (spreads transmission as receive is
    /// spread, and keeps one flow on one TX queue).
    fn tx_sock(&self, rx_queue: u32) -> usize {
        self.first + rx_queue as usize % self.queues.max(1)
    }
}

/// The fwmark path: its programs and its routing state (dropped after the
/// sockets, see the field order of [`XdpPort`]).
struct MarkPath {
    bpf: MarkTag,
    routing: MarkRouting,
    /// Index of `markpath::RX_IF` in `XdpPort::ifaces` (one queue).
    iface: usize,
    /// `markpath::TAG_IF`'s MAC: frames sent back into the kernel go there.
    tag_mac: [u8; 6],
}

impl MarkPath {
    /// Creates the veth pair, attaches the programs and opens the socket
    /// (queue 0: rvsd creates the pair with one queue).
    fn open() -> Result<(Self, XskPort), String> {
        let routing = MarkRouting::open()?;
        let mut bpf = MarkTag::load().map_err(|e| format!("fwmark path: {e}"))?;
        bpf.attach_tag(markpath::TAG_IF)
            .map_err(|e| format!("{}: attaching tc: {e}", markpath::TAG_IF))?;
        bpf.attach_rx(markpath::RX_IF, true)
            .map_err(|e| format!("{}: attaching XDP: {e}", markpath::RX_IF))?;
        let port =
            XskPort::open(markpath::RX_IF, 0).map_err(|e| format!("{}: {e}", markpath::RX_IF))?;
        bpf.set_socket(0, port.fd())
            .map_err(|e| format!("{}: XSKMAP: {e}", markpath::RX_IF))?;
        let tag = XskPort::mac_of(markpath::TAG_IF).map_err(|e| e.to_string())?;
        Ok((
            Self {
                bpf,
                routing,
                iface: 0,
                tag_mac: tag,
            },
            port,
        ))
    }
}

/// The AF_XDP port set of one worker.
pub struct XdpPort {
    // Field order is drop order: the sockets close first, then the steering
    // programs come off (`ifaces`), then the veth pair goes (`mark`).
    socks: Vec<Sock>,
    ifaces: Vec<Iface>,
    mark: Option<MarkPath>,
    /// Frames on the fwmark path without a tag (cannot happen: the XDP
    /// program drops them; counted).
    pub untagged: u64,
    nh: NextHops,
    out: Vec<(usize, Vec<u8>)>,
    /// Frames handled, dropped for no next hop, and not ours (passed).
    pub handled: u64,
    /// Frames the engine passed to the host (cannot happen for steered
    /// frames; counted).
    pub passed: u64,
}

impl XdpPort {
    /// Attaches the steering program to each interface (generic XDP mode)
    /// and opens an AF_XDP socket on every receive queue of it, each
    /// registered in the program's XSKMAP at its queue number (a queue
    /// without a socket would hand service traffic to the kernel).
    pub fn open(ifnames: &[String]) -> Result<Self, String> {
        let mut socks = Vec::new();
        let mut ifaces = Vec::new();
        for name in ifnames {
            let queues = rvs_afxdp::rx_queue_count(name).map_err(|e| format!("{name}: {e}"))?;
            if queues > MAX_QUEUES {
                return Err(format!(
                    "{name}: {queues} receive queues; the steering program's XSKMAP holds {MAX_QUEUES}"
                ));
            }
            let mut steer = Steering::load().map_err(|e| format!("{name}: {e}"))?;
            steer
                .attach(name, true)
                .map_err(|e| format!("{name}: attaching XDP: {e}"))?;
            let first = socks.len();
            let iface = ifaces.len();
            for q in 0..queues {
                let port = XskPort::open(name, q).map_err(|e| format!("{name} queue {q}: {e}"))?;
                steer
                    .set_socket(q, port.fd())
                    .map_err(|e| format!("{name} queue {q}: XSKMAP: {e}"))?;
                socks.push(Sock {
                    port,
                    iface,
                    no_next_hop: 0,
                });
            }
            let s0 = &socks[first].port;
            ifaces.push(Iface {
                ifindex: s0.ifindex(),
                mac: s0.mac(),
                first,
                queues: queues as usize,
                steer: Some(steer),
            });
            tracing::info!(interface = %name, queues, "AF_XDP sockets bound");
        }
        let mark = match MarkPath::open() {
            Ok((mut m, port)) => {
                m.iface = ifaces.len();
                ifaces.push(Iface {
                    ifindex: port.ifindex(),
                    mac: port.mac(),
                    first: socks.len(),
                    queues: 1,
                    steer: None,
                });
                socks.push(Sock {
                    port,
                    iface: m.iface,
                    no_next_hop: 0,
                });
                tracing::info!(
                    tag = markpath::TAG_IF,
                    rx = markpath::RX_IF,
                    table = markpath::TABLE,
                    "fwmark path ready"
                );
                Some(m)
            }
            Err(e) => {
                tracing::error!(error = %e, "fwmark path unavailable: fwmark services will see no traffic");
                markpath::cleanup();
                None
            }
        };
        Ok(Self {
            socks,
            ifaces,
            mark,
            untagged: 0,
            nh: NextHops::open().map_err(|e| format!("netlink: {e}"))?,
            out: Vec::new(),
            handled: 0,
            passed: 0,
        })
    }

    /// Applies the kernel's route/neighbour changes to the next-hop cache
    /// and queues the frames that were waiting for a neighbour.
    fn next_hop_changes(&mut self, now: Instant) {
        let Self {
            ifaces, nh, out, ..
        } = self;
        nh.poll(now, |hop, mut frame| {
            // No receiving queue to follow here: queue 0 of the egress.
            if let Some(e) = ifaces.iter().find(|f| f.ifindex == hop.ifindex) {
                let _ = rvs_wire::set_macs(&mut frame, hop.mac, e.mac);
                out.push((e.tx_sock(0), frame));
            }
        });
    }
}

impl XdpPort {
    /// The fwmark path's program counters (`None` without the path).
    pub fn mark_stats(&self) -> Option<rvs_bpf::MarkStats> {
        self.mark.as_ref().and_then(|m| m.bpf.stats().ok())
    }

    /// The marks routed into the fwmark path (mark, family).
    pub fn routed_marks(&self) -> Vec<(u32, rvs_types::Af)> {
        self.mark
            .as_ref()
            .map(|m| m.routing.marks().iter().copied().collect())
            .unwrap_or_default()
    }
}

impl Port for XdpPort {
    fn poll(&mut self, d: &mut Director, now: Instant, budget: Duration) -> usize {
        self.next_hop_changes(now);
        let mut total = 0;
        // Every queue of every interface, in turn, by this one director
        // (ARCHITECTURE.md, "Multi-queue": both directions of a NAT
        // connection must meet the same connection table).
        for i in 0..self.socks.len() {
            let Self {
                socks,
                ifaces,
                nh,
                out,
                passed,
                mark,
                untagged,
                ..
            } = self;
            let sock = &mut socks[i];
            let rx_iface = sock.iface;
            let rx_queue = sock.port.queue();
            // On the fwmark path the frame's mark is in its source MAC.
            let marked = mark
                .as_ref()
                .filter(|m| m.iface == rx_iface)
                .map(|m| m.tag_mac);
            let mut missed = 0u64;
            let n = sock.port.recv(|buf, head, len| {
                let Ok(mut fb) = FrameBuf::new(buf, head, len) else {
                    return;
                };
                let mut meta = RxMeta::default();
                if marked.is_some() {
                    match rvs_bpf::decode_mark(fb.data()) {
                        Some(m) => meta.fwmark = m,
                        None => {
                            *untagged += 1;
                            return;
                        }
                    }
                }
                match d.handle_frame(now, &mut fb, &meta) {
                    Verdict::Forward(f) => {
                        let cached = d.nh_slot(f.conn).unwrap_or(u32::MAX);
                        let mut slots = cached;
                        let reply = f.dir == Direction::ToClient;
                        let hop = nh.resolve_conn(&mut slots, reply, &f.next_hop, now);
                        if slots != cached {
                            d.set_nh_slot(f.conn, slots);
                        }
                        let Some(hop) = hop else {
                            // Kept until the kernel resolves the neighbour.
                            if !nh.hold(&f.next_hop, fb.data()) {
                                missed += 1;
                            }
                            return;
                        };
                        let Some(egress) = ifaces.iter().find(|e| e.ifindex == hop.ifindex) else {
                            missed += 1;
                            return;
                        };
                        let _ = rvs_wire::set_macs(fb.data_mut(), hop.mac, egress.mac);
                        out.push((egress.tx_sock(rx_queue), fb.data().to_vec()));
                    }
                    Verdict::Reply => {
                        if let Some(tag_mac) = marked {
                            // Back into the kernel through the veth: it
                            // routes the reply to the client.
                            let _ =
                                rvs_wire::set_macs(fb.data_mut(), tag_mac, ifaces[rx_iface].mac);
                        }
                        out.push((i, fb.data().to_vec()))
                    }
                    Verdict::Pass => *passed += 1,
                    Verdict::Drop(_) => {}
                }
            });
            total += n;
            sock.no_next_hop += missed;
            for (e, frame) in self.out.drain(..) {
                self.socks[e].port.send(&frame);
            }
        }
        for s in &mut self.socks {
            s.port.flush();
        }
        self.handled += total as u64;
        if total == 0 {
            std::thread::sleep(budget.min(Duration::from_micros(200)));
        }
        total
    }

    fn queue_stats(&self) -> Vec<crate::worker::QueueStats> {
        self.socks
            .iter()
            .map(|s| {
                let st = s.port.stats();
                crate::worker::QueueStats {
                    iface: s.port.name().to_string(),
                    queue: s.port.queue(),
                    rx: st.rx,
                    tx: st.tx,
                    tx_full: st.tx_full,
                    no_next_hop: s.no_next_hop,
                }
            })
            .collect()
    }

    fn config_changed(&mut self, d: &Director) {
        let services = d.services();
        let locals = if services.is_empty() {
            Vec::new()
        } else {
            local_addrs()
        };
        for f in &mut self.ifaces {
            let Some(steer) = f.steer.as_mut() else {
                continue;
            };
            for a in &locals {
                let _ = steer.add_local(*a);
            }
            for s in &services {
                // fwmark services: any protocol; their traffic arrives by the
                // fwmark path, their NAT replies through the steering here.
                let protos: &[Proto] = match s.cfg.key {
                    ServiceKey::Addr { proto, addr, port } => {
                        let _ = steer.add_vip(proto, addr, port);
                        let _ = steer.add_vip(Proto(0), addr, 0);
                        &[proto][..]
                    }
                    ServiceKey::Fwmark { .. } => &[Proto::TCP, Proto::UDP, Proto::SCTP][..],
                };
                for dst in &s.dests {
                    if dst.cfg.fwd == Forward::Masq {
                        for p in protos {
                            let _ = steer.add_real(*p, dst.cfg.addr, dst.cfg.port);
                        }
                    }
                }
            }
        }
        if let Some(m) = &mut self.mark {
            let want = services
                .iter()
                .filter_map(|s| match s.cfg.key {
                    ServiceKey::Fwmark { mark, af } => Some((mark, af)),
                    ServiceKey::Addr { .. } => None,
                })
                .collect();
            m.routing.sync(&want);
        }
    }
}

/// The addresses of rvsd's network namespace (iproute2 JSON), for the
/// steering program: a frame from a NAT real server to one of them is the
/// director's own traffic (a health check), not a reply to a client.
/// Read at every configuration change.
fn local_addrs() -> Vec<rvs_types::Addr> {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| link.get("addr_info")?.as_array())
        .flatten()
        .filter_map(|a| a.get("local")?.as_str()?.parse::<std::net::IpAddr>().ok())
        .map(rvs_types::Addr::from)
        .collect()
}
