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

use crate::nexthop::NextHops;
use crate::worker::Port;
use rvs_afxdp::XskPort;
use rvs_bpf::Steering;
use rvs_engine::{Direction, Director, Forward, RxMeta, ServiceKey, Verdict};
use rvs_types::{Instant, Proto};
use rvs_wire::FrameBuf;
use std::time::Duration;

/// One served interface.
struct Iface {
    port: XskPort,
    steer: Steering,
}

/// The AF_XDP port set of one worker.
pub struct XdpPort {
    ifaces: Vec<Iface>,
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
            ifaces.push(Iface { port, steer });
        }
        Ok(Self {
            ifaces,
            nh: NextHops::open().map_err(|e| format!("netlink: {e}"))?,
            out: Vec::new(),
            handled: 0,
            passed: 0,
            no_next_hop: vec![0; ifnames.len()],
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
                ..
            } = self;
            let mut missed = 0u64;
            let macs: Vec<(u32, [u8; 6])> = ifaces
                .iter()
                .map(|f| (f.port.ifindex(), f.port.mac()))
                .collect();
            let n = ifaces[i].port.recv(|buf, head, len| {
                let Ok(mut fb) = FrameBuf::new(buf, head, len) else {
                    return;
                };
                match d.handle_frame(now, &mut fb, &RxMeta::default()) {
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
                    Verdict::Reply => out.push((i, fb.data().to_vec())),
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
        for f in &mut self.ifaces {
            for s in d.services() {
                let ServiceKey::Addr { proto, addr, port } = s.cfg.key else {
                    continue;
                };
                let _ = f.steer.add_vip(proto, addr, port);
                let _ = f.steer.add_vip(Proto(0), addr, 0);
                for dst in &s.dests {
                    if dst.cfg.fwd == Forward::Masq {
                        let _ = f.steer.add_real(proto, dst.cfg.addr, dst.cfg.port);
                    }
                }
            }
        }
    }
}
