//! The AF_XDP dataplane of the workers: the steering program (rvs-bpf) on
//! every served interface sends service traffic, NAT replies and related
//! ICMP errors to the AF_XDP socket of the receive queue they arrived on
//! (one socket per queue of every served interface, rvs-afxdp). rvsd runs
//! one worker per queue (as many as the largest queue count): worker `q`
//! polls queue `q` of every interface (none on an interface with fewer
//! queues) and hands each frame it does not own to its owner (`handoff`:
//! a hash of the client's network) through a lock-free ring; the owner's
//! director runs it, and it leaves by the owner's socket of the egress
//! interface (queue `q`, or `q` modulo a smaller queue count: then the
//! worker owning that socket sends it, handed over the same way). Frames
//! get their MACs from the kernel's tables (`nexthop`: netlink, cached per
//! connection, kept true by the kernel's change notifications; one cache
//! per worker). Everything else stays with the kernel.
//!
//! Attaching and map updates happen in rvsd's own network namespace, on the
//! interfaces it was told to serve (`Shared`, opened before the workers;
//! worker 0 updates the steering maps after each configuration change);
//! the programs come off when rvsd exits.
//!
//! The fwmark path (`markpath`): packets the user's rules marked are
//! policy-routed into rvsd's veth pair; tagged with their mark on the way
//! (tc), they arrive on one more AF_XDP socket, on `markpath::RX_IF`,
//! owned by worker 0, and go through the owner's engine with
//! `RxMeta::fwmark` set.

use crate::handoff::{self, Classes, Handoff, Links, MARK_IFACE};
use crate::markpath::{self, MarkRouting};
use crate::nexthop::NextHops;
use crate::worker::Port;
use rvs_afxdp::XskPort;
use rvs_bpf::{MarkTag, STEER_MAX_QUEUES as MAX_QUEUES, Steering};
use rvs_engine::{Direction, Director, Forward, RxMeta, ServiceKey, Verdict};
use rvs_types::{Instant, Proto};
use rvs_wire::FrameBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The served interfaces, opened once for all workers: their steering
/// programs (attached; worker 0 keeps the maps up to date, the lock is on
/// the control path only) and what every worker needs to know of them.
pub struct Shared {
    /// Per served interface, in order.
    ifaces: Vec<SharedIface>,
    steer: Mutex<Vec<Steering>>,
    workers: usize,
}

struct SharedIface {
    name: String,
    ifindex: u32,
    mac: [u8; 6],
    queues: u32,
}

impl Shared {
    /// Reads each interface's receive queue count and attaches the steering
    /// program to it (in `mode`: generic or native); the workers then bind their
    /// sockets and register them at their queue's XSKMAP index.
    pub fn open(ifnames: &[String], mode: crate::config::XdpMode) -> Result<Arc<Self>, String> {
        let generic = mode == crate::config::XdpMode::Generic;
        let mut ifaces = Vec::new();
        let mut steers = Vec::new();
        for name in ifnames {
            let queues = rvs_afxdp::rx_queue_count(name).map_err(|e| format!("{name}: {e}"))?;
            if queues > MAX_QUEUES {
                return Err(format!(
                    "{name}: {queues} receive queues; the steering program's XSKMAP holds {MAX_QUEUES}"
                ));
            }
            let mac = XskPort::mac_of(name).map_err(|e| format!("{name}: {e}"))?;
            let cname = std::ffi::CString::new(name.as_str()).map_err(|e| e.to_string())?;
            // SAFETY: a valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if ifindex == 0 {
                return Err(format!("{name}: no such interface"));
            }
            let mut steer = Steering::load().map_err(|e| format!("{name}: {e}"))?;
            steer.attach(name, generic).map_err(|e| {
                if generic {
                    format!("{name}: attaching XDP: {e}")
                } else {
                    format!(
                        "{name}: attaching XDP in native mode: {e} (does its driver have XDP? --xdp-mode generic works on any interface)"
                    )
                }
            })?;
            steers.push(steer);
            ifaces.push(SharedIface {
                name: name.clone(),
                ifindex,
                mac,
                queues: queues.max(1),
            });
        }
        let workers = ifaces.iter().map(|f| f.queues as usize).max().unwrap_or(1);
        Ok(Arc::new(Self {
            ifaces,
            steer: Mutex::new(steers),
            workers,
        }))
    }

    /// The number of workers: the largest receive queue count.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// One AF_XDP socket of a worker: a queue of a served interface, or the
/// fwmark path's receiving end.
struct Sock {
    port: XskPort,
    /// Index of its interface in `XdpPort::ifaces`, or `MARK_IFACE`.
    iface: usize,
    /// Forwarded frames received here and dropped for want of a next hop.
    no_next_hop: u64,
}

/// One served interface as a worker sees it.
struct Iface {
    ifindex: u32,
    mac: [u8; 6],
    /// This worker's socket on it (`XdpPort::socks` index), if it has one.
    sock: Option<usize>,
    /// The worker that transmits for this one here (itself when `sock`).
    tx_worker: usize,
}

/// The fwmark path: its programs and its routing state (dropped after the
/// sockets, see the field order of [`XdpPort`]).
struct MarkPath {
    bpf: MarkTag,
    routing: MarkRouting,
    /// Its socket in `XdpPort::socks`.
    sock: usize,
    /// `markpath::RX_IF`'s MAC.
    mac: [u8; 6],
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
                sock: 0,
                mac: port.mac(),
                tag_mac: tag,
            },
            port,
        ))
    }
}

/// The AF_XDP port set of one worker.
pub struct XdpPort {
    // Field order is drop order: the sockets close first, then the veth
    // pair goes (`mark`); the steering programs come off with the last
    // worker's `shared`.
    socks: Vec<Sock>,
    ifaces: Vec<Iface>,
    mark: Option<MarkPath>,
    shared: Arc<Shared>,
    worker: usize,
    links: Links,
    classes: Classes,
    /// Frames on the fwmark path without a tag (cannot happen: the XDP
    /// program drops them; counted).
    pub untagged: u64,
    nh: NextHops,
    /// Frames to send, and spare buffers.
    out: Outbox,
    /// Frames handled.
    pub handled: u64,
    /// Frames the engine passed to the host (cannot happen for steered
    /// frames; counted).
    pub passed: u64,
    ho: crate::worker::WorkerStats,
    /// Rounds in a row that found no frame.
    idle_rounds: u32,
}

impl XdpPort {
    /// Opens worker `worker`'s sockets: queue `worker` of every interface
    /// that has it, each registered in the interface's XSKMAP at its queue
    /// number (a queue without a socket would hand service traffic to the
    /// kernel), and for worker 0 the fwmark path. `links`: its ends of the
    /// hand-off rings.
    pub fn open(shared: Arc<Shared>, worker: usize, links: Links) -> Result<Self, String> {
        let mut socks = Vec::new();
        let mut ifaces = Vec::new();
        for (k, f) in shared.ifaces.iter().enumerate() {
            let q = worker as u32;
            let sock = if q < f.queues {
                let port =
                    XskPort::open(&f.name, q).map_err(|e| format!("{} queue {q}: {e}", f.name))?;
                let mut steer = shared
                    .steer
                    .lock()
                    .map_err(|_| "steering lock poisoned".to_string())?;
                steer[k]
                    .set_socket(q, port.fd())
                    .map_err(|e| format!("{} queue {q}: XSKMAP: {e}", f.name))?;
                drop(steer);
                socks.push(Sock {
                    port,
                    iface: k,
                    no_next_hop: 0,
                });
                tracing::info!(interface = %f.name, queue = q, worker, "AF_XDP socket bound");
                Some(socks.len() - 1)
            } else {
                None
            };
            ifaces.push(Iface {
                ifindex: f.ifindex,
                mac: f.mac,
                sock,
                tx_worker: worker % f.queues as usize,
            });
        }
        let mark = if worker != 0 {
            None
        } else {
            match MarkPath::open() {
                Ok((mut m, port)) => {
                    m.sock = socks.len();
                    socks.push(Sock {
                        port,
                        iface: MARK_IFACE,
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
            }
        };
        Ok(Self {
            socks,
            ifaces,
            mark,
            shared,
            worker,
            links,
            classes: Classes::default(),
            untagged: 0,
            nh: NextHops::open().map_err(|e| format!("netlink: {e}"))?,
            out: Outbox::default(),
            handled: 0,
            passed: 0,
            idle_rounds: 0,
            ho: crate::worker::WorkerStats {
                worker: worker as u32,
                ..Default::default()
            },
        })
    }

    /// Applies the kernel's route/neighbour changes to the next-hop cache
    /// and queues the frames that were waiting for a neighbour.
    fn next_hop_changes(&mut self, now: Instant) {
        let Self {
            ifaces, nh, out, ..
        } = self;
        nh.poll(now, |hop, mut frame| {
            if let Some(k) = ifaces.iter().position(|f| f.ifindex == hop.ifindex) {
                let _ = rvs_wire::set_macs(&mut frame, hop.mac, ifaces[k].mac);
                out.frames.push((k, frame));
            }
        });
    }

    /// Sends what `out` holds: by this worker's socket of the interface, or
    /// handed to the worker that has the socket.
    fn dispatch(&mut self) {
        let Self {
            socks,
            ifaces,
            mark,
            links,
            out,
            ho,
            ..
        } = self;
        let mut frames = std::mem::take(&mut out.frames);
        for (k, mut frame) in frames.drain(..) {
            let (sock, to) = if k == MARK_IFACE {
                match mark {
                    Some(m) => {
                        // Back into the kernel through the veth: it routes
                        // the reply to the client.
                        let _ = rvs_wire::set_macs(&mut frame, m.tag_mac, m.mac);
                        (Some(m.sock), 0)
                    }
                    None => (None, 0),
                }
            } else {
                match ifaces.get(k) {
                    Some(f) => (f.sock, f.tx_worker),
                    None => continue,
                }
            };
            if let Some(s) = sock {
                socks[s].port.send(&frame);
                out.recycle(frame);
            } else {
                let pushed = links
                    .to
                    .get_mut(to)
                    .and_then(Option::as_mut)
                    .map(|ring| ring.push(Handoff::Tx { iface: k, frame }).is_ok());
                if pushed == Some(false) {
                    ho.ring_full += 1;
                }
            }
            // Otherwise the fwmark path is not open: nothing can send it.
        }
        // Keep the emptied list's room for the next round.
        out.frames = frames;
    }
}

/// Frames waiting to be sent (interface index or `MARK_IFACE`, frame),
/// and the buffers of frames already sent, reused so that a forwarded
/// frame costs a copy but no allocation.
#[derive(Default)]
struct Outbox {
    frames: Vec<(usize, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
}

/// Sent frames' buffers kept for reuse at most.
const SPARE_BUFFERS: usize = 256;

impl Outbox {
    /// Queues a copy of `data` to leave by interface `k`.
    fn push_copy(&mut self, k: usize, data: &[u8]) {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        self.frames.push((k, v));
    }

    /// Keeps a sent frame's buffer for [`Self::push_copy`].
    fn recycle(&mut self, frame: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(frame);
        }
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

/// Runs one frame through the director and queues what leaves
/// (`out`: interface index, frame). `rx_iface`: the interface it arrived
/// on (`MARK_IFACE`: the fwmark path, `fwmark` its mark). Returns false
/// when a forwarded frame found no next hop.
#[allow(clippy::too_many_arguments)]
fn run_frame(
    d: &mut Director,
    nh: &mut NextHops,
    ifaces: &[Iface],
    out: &mut Outbox,
    passed: &mut u64,
    now: Instant,
    fb: &mut FrameBuf<'_>,
    rx_iface: usize,
    fwmark: u32,
) -> bool {
    let meta = RxMeta {
        fwmark,
        ..RxMeta::default()
    };
    match d.handle_frame(now, fb, &meta) {
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
                return nh.hold(&f.next_hop, fb.data());
            };
            let Some(k) = ifaces.iter().position(|e| e.ifindex == hop.ifindex) else {
                return false;
            };
            let _ = rvs_wire::set_macs(fb.data_mut(), hop.mac, ifaces[k].mac);
            out.push_copy(k, fb.data());
        }
        // Leaves by the interface it came in on.
        Verdict::Reply => out.push_copy(rx_iface, fb.data()),
        Verdict::Pass => *passed += 1,
        Verdict::Drop(_) => {}
    }
    true
}

/// Empty polling rounds before the worker sleeps.
const SPIN_ROUNDS: u32 = 32;

/// Room left in front of a handed-over frame for encapsulation headers.
const HANDOFF_HEADROOM: usize = 256;

impl Port for XdpPort {
    fn poll(&mut self, d: &mut Director, now: Instant, budget: Duration) -> usize {
        self.next_hop_changes(now);
        let n_workers = self.shared.workers;
        let me = self.worker;
        let mut total = 0;
        // This worker's queue of every interface (and the fwmark path):
        // its own frames through its director, the others' to their owner.
        for i in 0..self.socks.len() {
            let Self {
                socks,
                ifaces,
                nh,
                out,
                passed,
                mark,
                untagged,
                links,
                classes,
                ho,
                ..
            } = self;
            let sock = &mut socks[i];
            let rx_iface = sock.iface;
            let marked = mark.is_some() && rx_iface == MARK_IFACE;
            let mut missed = 0u64;
            let n = sock.port.recv(|buf, head, len| {
                let Ok(mut fb) = FrameBuf::new(buf, head, len) else {
                    return;
                };
                let mut fwmark = 0;
                if marked {
                    match rvs_bpf::decode_mark(fb.data()) {
                        Some(m) => fwmark = m,
                        None => {
                            *untagged += 1;
                            return;
                        }
                    }
                }
                if n_workers > 1 {
                    let owner =
                        handoff::frame_owner(fb.data(), classes, marked, n_workers).unwrap_or(me);
                    if owner != me {
                        // One copy, with the owner's headroom in front, so
                        // the owner runs it in place.
                        let data = fb.data();
                        let mut frame = Vec::with_capacity(HANDOFF_HEADROOM + data.len());
                        frame.resize(HANDOFF_HEADROOM, 0);
                        frame.extend_from_slice(data);
                        let h = Handoff::Rx {
                            frame,
                            iface: rx_iface,
                            fwmark,
                        };
                        match links.to[owner].as_mut().map(|r| r.push(h)) {
                            Some(Ok(())) => ho.handed_off += 1,
                            _ => ho.ring_full += 1,
                        }
                        return;
                    }
                }
                if !run_frame(d, nh, ifaces, out, passed, now, &mut fb, rx_iface, fwmark) {
                    missed += 1;
                }
            });
            total += n;
            socks[i].no_next_hop += missed;
            self.dispatch();
        }
        // What the other workers handed over.
        for from in 0..self.links.from.len() {
            for _ in 0..64 {
                let Some(h) = self.links.from[from].as_mut().and_then(|r| r.pop().ok()) else {
                    break;
                };
                self.ho.taken_over += 1;
                total += 1;
                match h {
                    Handoff::Rx {
                        mut frame,
                        iface,
                        fwmark,
                    } => {
                        let len = frame.len().saturating_sub(HANDOFF_HEADROOM);
                        let Ok(mut fb) = FrameBuf::new(&mut frame, HANDOFF_HEADROOM, len) else {
                            continue;
                        };
                        let Self {
                            ifaces,
                            nh,
                            out,
                            passed,
                            ho,
                            ..
                        } = self;
                        if !run_frame(d, nh, ifaces, out, passed, now, &mut fb, iface, fwmark) {
                            ho.no_next_hop += 1;
                        }
                    }
                    Handoff::Tx { iface, frame } => self.out.frames.push((iface, frame)),
                }
            }
            self.dispatch();
        }
        for s in &mut self.socks {
            s.port.flush();
        }
        self.handled += total as u64;
        // Idle: keep polling for a few rounds (a request's answer usually
        // follows within microseconds), then sleep.
        if total == 0 {
            self.idle_rounds = self.idle_rounds.saturating_add(1);
            if self.idle_rounds > SPIN_ROUNDS {
                std::thread::sleep(budget.min(Duration::from_micros(200)));
            }
        } else {
            self.idle_rounds = 0;
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

    fn worker_stats(&self) -> Option<crate::worker::WorkerStats> {
        Some(self.ho.clone())
    }

    fn config_changed(&mut self, d: &Director) {
        let services = d.services();
        // Every worker: the VIP and NAT real-server addresses, to find a
        // frame's owner as the steering program classified it.
        let mut classes = Classes::default();
        for s in &services {
            if let ServiceKey::Addr { addr, .. } = s.cfg.key {
                classes.vips.insert(addr);
            }
            if s.cfg.persistence.is_some() {
                classes.persistent(s.cfg.key.af() == rvs_types::Af::V4, s.cfg.netmask);
            }
            for dst in &s.dests {
                if dst.cfg.fwd == Forward::Masq {
                    classes.reals.insert(dst.cfg.addr);
                }
            }
        }
        self.classes = classes;
        if self.worker != 0 {
            return;
        }
        let locals = if services.is_empty() {
            Vec::new()
        } else {
            local_addrs()
        };
        if let Ok(mut steers) = self.shared.steer.lock() {
            for steer in steers.iter_mut() {
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
