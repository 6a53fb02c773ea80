//! The AF_XDP dataplane of a worker: the steering program (rvs-bpf) on every
//! served interface sends service traffic, NAT replies and related ICMP
//! errors to one AF_XDP socket per interface (rvs-afxdp); frames go through
//! the engine, get their MACs from the kernel's tables (`nexthop`: netlink,
//! cached per connection, kept true by the kernel's change notifications)
//! and leave by the egress interface's socket. Everything else stays with
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
use rvs_bpf::{MarkTag, Steering};
use rvs_engine::{Direction, Director, Forward, RxMeta, ServiceKey, Verdict};
use rvs_types::{Instant, Proto};
use rvs_wire::FrameBuf;
use std::time::Duration;

/// One served interface, or the fwmark path's receiving end (no steering
/// program: every frame there is tagged and ours).
struct Iface {
    port: XskPort,
    steer: Option<Steering>,
}

/// The fwmark path: its programs and its routing state (dropped after the
/// sockets, see the field order of [`XdpPort`]).
struct MarkPath {
    bpf: MarkTag,
    routing: MarkRouting,
    /// Index of `markpath::RX_IF` in `XdpPort::ifaces`.
    iface: usize,
    /// `markpath::TAG_IF`'s MAC: frames sent back into the kernel go there.
    tag_mac: [u8; 6],
}

impl MarkPath {
    /// Creates the veth pair, attaches the programs and opens the socket.
    fn open() -> Result<(Self, Iface), String> {
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
            Iface { port, steer: None },
        ))
    }
}

/// The AF_XDP port set of one worker.
pub struct XdpPort {
    ifaces: Vec<Iface>,
    // After `ifaces`: the sockets close before the veth pair goes.
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
    /// Forwarded frames dropped for want of a next hop, per interface.
    no_next_hop: Vec<u64>,
}

impl XdpPort {
    /// Attaches the steering program to each interface (generic XDP mode)
    /// and opens its AF_XDP socket on queue 0.
    pub fn open(ifnames: &[String]) -> Result<Self, String> {
        let mut ifaces = Vec::new();
        for name in ifnames {
            let mut steer = Steering::load().map_err(|e| format!("{name}: {e}"))?;
            steer
                .attach(name, true)
                .map_err(|e| format!("{name}: attaching XDP: {e}"))?;
            let port = XskPort::open(name, 0).map_err(|e| format!("{name}: {e}"))?;
            steer
                .set_socket(0, port.fd())
                .map_err(|e| format!("{name}: XSKMAP: {e}"))?;
            ifaces.push(Iface {
                port,
                steer: Some(steer),
            });
        }
        let mark = match MarkPath::open() {
            Ok((mut m, iface)) => {
                m.iface = ifaces.len();
                ifaces.push(iface);
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
        let n = ifaces.len();
        Ok(Self {
            ifaces,
            mark,
            untagged: 0,
            nh: NextHops::open().map_err(|e| format!("netlink: {e}"))?,
            out: Vec::new(),
            handled: 0,
            passed: 0,
            no_next_hop: vec![0; n],
        })
    }

    /// Applies the kernel's route/neighbour changes to the next-hop cache
    /// and queues the frames that were waiting for a neighbour.
    fn next_hop_changes(&mut self, now: Instant) {
        let Self {
            ifaces, nh, out, ..
        } = self;
        nh.poll(now, |hop, mut frame| {
            if let Some(e) = ifaces.iter().position(|f| f.port.ifindex() == hop.ifindex) {
                let _ = rvs_wire::set_macs(&mut frame, hop.mac, ifaces[e].port.mac());
                out.push((e, frame));
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
        for i in 0..self.ifaces.len() {
            let Self {
                ifaces,
                nh,
                out,
                passed,
                no_next_hop,
                mark,
                untagged,
                ..
            } = self;
            // On the fwmark path the frame's mark is in its source MAC.
            let marked = mark.as_ref().filter(|m| m.iface == i).map(|m| m.tag_mac);
            let mut missed = 0u64;
            let macs: Vec<(u32, [u8; 6])> = ifaces
                .iter()
                .map(|f| (f.port.ifindex(), f.port.mac()))
                .collect();
            let n = ifaces[i].port.recv(|buf, head, len| {
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
                        let Some(egress) = macs.iter().position(|(n, _)| *n == hop.ifindex) else {
                            missed += 1;
                            return;
                        };
                        let _ = rvs_wire::set_macs(fb.data_mut(), hop.mac, macs[egress].1);
                        out.push((egress, fb.data().to_vec()));
                    }
                    Verdict::Reply => {
                        if let Some(tag_mac) = marked {
                            // Back into the kernel through the veth: it
                            // routes the reply to the client.
                            let _ = rvs_wire::set_macs(fb.data_mut(), tag_mac, macs[i].1);
                        }
                        out.push((i, fb.data().to_vec()))
                    }
                    Verdict::Pass => *passed += 1,
                    Verdict::Drop(_) => {}
                }
            });
            total += n;
            if let Some(c) = no_next_hop.get_mut(i) {
                *c += missed;
            }
            for (e, frame) in self.out.drain(..) {
                self.ifaces[e].port.send(&frame);
            }
        }
        for f in &mut self.ifaces {
            f.port.flush();
        }
        self.handled += total as u64;
        if total == 0 {
            std::thread::sleep(budget.min(Duration::from_micros(200)));
        }
        total
    }

    fn queue_stats(&self) -> Vec<crate::worker::QueueStats> {
        self.ifaces
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let st = f.port.stats();
                crate::worker::QueueStats {
                    iface: f.port.name().to_string(),
                    queue: 0,
                    rx: st.rx,
                    tx: st.tx,
                    tx_full: st.tx_full,
                    no_next_hop: self.no_next_hop.get(i).copied().unwrap_or(0),
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
