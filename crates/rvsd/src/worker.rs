//! Workers: threads each owning a `Director`. rvsd runs one per receive
//! queue (the largest queue count of the served interfaces; one for
//! single-queue interfaces or none at all): worker `q` polls queue `q` of
//! every interface and hands frames it does not own to their owner worker
//! (`handoff`, ARCHITECTURE.md "Multi-queue"). Every configuration change
//! reaches every worker, between batches of frames, a whole request at a
//! time, so no frame sees half a change; snapshots and figures are summed
//! over the workers.

use crate::convert::{Op, OpError};
use rvs_engine::{Director, DirectorConfig};
use rvs_types::Instant;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Packet I/O of a worker: the AF_XDP driver implements it; without
/// interfaces a worker runs with [`NoPort`] (control plane only).
pub trait Port {
    /// Receives what is ready, runs it through the director, transmits the
    /// results; returns the number of frames handled. Must not block longer
    /// than `budget`.
    fn poll(&mut self, d: &mut Director, now: Instant, budget: Duration) -> usize;

    /// The configuration changed (services, real servers): e.g. update the
    /// steering maps.
    fn config_changed(&mut self, _d: &Director) {}

    /// Queue figures, one entry per interface queue served (none without
    /// packet I/O).
    fn queue_stats(&self) -> Vec<QueueStats> {
        Vec::new()
    }

    /// The worker's hand-off figures (none without packet I/O).
    fn worker_stats(&self) -> Option<WorkerStats> {
        None
    }
}

/// One worker's hand-off figures.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct WorkerStats {
    /// The worker's number.
    pub worker: u32,
    /// Frames it received and handed to their owner worker.
    pub handed_off: u64,
    /// Frames other workers handed to it (to run, or to send by its socket).
    pub taken_over: u64,
    /// Frames dropped because a ring to another worker was full.
    pub ring_full: u64,
    /// Handed-over forwarded frames dropped for want of a next hop.
    pub no_next_hop: u64,
}

/// The figures of one receive/transmit queue, for metrics.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct QueueStats {
    /// Interface name.
    pub iface: String,
    /// Queue number.
    pub queue: u32,
    /// Frames received.
    pub rx: u64,
    /// Frames queued for transmission.
    pub tx: u64,
    /// Frames not transmitted: TX ring or UMEM full.
    pub tx_full: u64,
    /// Forwarded frames dropped for want of a next hop (no route or no
    /// neighbour entry), counted on the receiving queue.
    pub no_next_hop: u64,
}

/// Opens a worker's port on the worker's thread.
pub type MakePort = Box<dyn FnOnce() -> Result<Box<dyn Port>, String> + Send>;

/// A port maker for [`NoPort`].
pub fn no_port() -> MakePort {
    Box::new(|| Ok(Box::new(NoPort) as Box<dyn Port>))
}

/// No packet I/O.
#[derive(Debug, Default)]
pub struct NoPort;

impl Port for NoPort {
    fn poll(&mut self, _: &mut Director, _: Instant, budget: Duration) -> usize {
        std::thread::sleep(budget);
        0
    }
}

enum Msg {
    Apply(Vec<Op>, Sender<Result<(), OpError>>),
    Snapshot(Sender<rvs_ipvsadm::Snapshot>),
    Stats(Sender<rvs_engine::GlobalStats>),
    Queues(Sender<(Vec<QueueStats>, Option<WorkerStats>)>),
    Stop,
}

/// A running worker.
pub struct Worker {
    tx: Sender<Msg>,
    handle: Option<JoinHandle<()>>,
}

/// The daemon's clock: a monotonic `Instant` from process start.
pub fn now(start: std::time::Instant) -> Instant {
    Instant::from_nanos(start.elapsed().as_nanos() as u64)
}

impl Worker {
    /// Starts a worker with its director and the port `make_port` opens on
    /// the worker's own thread (AF_XDP sockets and BPF handles stay on the
    /// thread that uses them). Fails when the port cannot be opened.
    pub fn spawn(
        cfg: DirectorConfig,
        make_port: MakePort,
        start: std::time::Instant,
    ) -> std::io::Result<Self> {
        Self::spawn_nth(0, cfg, make_port, start)
    }

    /// [`Worker::spawn`] for worker number `index` (its thread's name).
    pub fn spawn_nth(
        index: usize,
        cfg: DirectorConfig,
        make_port: MakePort,
        start: std::time::Instant,
    ) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Msg>();
        let (ready_tx, ready_rx) = channel::<Result<(), String>>();
        let handle = std::thread::Builder::new()
            .name(format!("rvs-worker-{index}"))
            .spawn(move || {
                let mut port = match make_port() {
                    Ok(p) => {
                        let _ = ready_tx.send(Ok(()));
                        p
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut d = Director::new(cfg, now(start));
                run(&mut d, &mut *port, &rx, start);
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                tx,
                handle: Some(handle),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(std::io::Error::other(e))
            }
            Err(_) => Err(std::io::Error::other(
                "the worker thread died while opening its port",
            )),
        }
    }

    /// Applies operations (validated beforehand) in one go.
    pub fn apply(&self, ops: Vec<Op>) -> Result<(), OpError> {
        let (tx, rx) = channel();
        self.send(Msg::Apply(ops, tx))?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| worker_gone())?
    }

    /// The table as ipvsadm shows it.
    pub fn snapshot(&self) -> Result<rvs_ipvsadm::Snapshot, OpError> {
        let (tx, rx) = channel();
        self.send(Msg::Snapshot(tx))?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| worker_gone())
    }

    /// Director-wide counters.
    pub fn stats(&self) -> Result<rvs_engine::GlobalStats, OpError> {
        let (tx, rx) = channel();
        self.send(Msg::Stats(tx))?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| worker_gone())
    }

    /// The port's queue figures and the worker's hand-off figures.
    pub fn queue_stats(&self) -> Result<(Vec<QueueStats>, Option<WorkerStats>), OpError> {
        let (tx, rx) = channel();
        self.send(Msg::Queues(tx))?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| worker_gone())
    }

    fn send(&self, m: Msg) -> Result<(), OpError> {
        self.tx.send(m).map_err(|_| worker_gone())
    }

    /// Stops the worker and waits for it.
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn worker_gone() -> OpError {
    OpError {
        message: "rvsd worker is not running".into(),
        exit_code: 255,
    }
}

fn run(d: &mut Director, port: &mut dyn Port, rx: &Receiver<Msg>, start: std::time::Instant) {
    loop {
        // Control messages first, then a bounded slice of packet work, then
        // timers. `try_recv` costs no system call when nothing is waiting
        // (`recv_timeout`, even of 1 µs, parks the thread on a futex with a
        // timer, and the timer slack makes that tens of microseconds).
        loop {
            match rx.try_recv() {
                Ok(Msg::Apply(ops, reply)) => {
                    let mut r = Ok(());
                    for op in &ops {
                        if let Err(e) = op.apply(d) {
                            tracing::error!(error = %e.message, ?op, "validated operation failed in the worker");
                            r = Err(e);
                            break;
                        }
                    }
                    port.config_changed(d);
                    let _ = reply.send(r);
                }
                Ok(Msg::Snapshot(reply)) => {
                    let _ = reply.send(crate::convert::snapshot(d, now(start)));
                }
                Ok(Msg::Stats(reply)) => {
                    let _ = reply.send(d.stats());
                }
                Ok(Msg::Queues(reply)) => {
                    let _ = reply.send((port.queue_stats(), port.worker_stats()));
                }
                Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        let t = now(start);
        port.poll(d, t, Duration::from_millis(20));
        let t = now(start);
        if d.poll_timeout() <= t {
            d.handle_timeout(t);
        }
    }
}

/// What a [`FeedPort`] hands back for one frame: the engine's verdict and
/// the frame as it left the engine (rewritten, encapsulated or a reply).
pub type Fed = (rvs_engine::Verdict, Vec<u8>);

/// A port fed by the caller instead of a NIC: frames given to its
/// [`Feeder`] go through the worker's director on the worker's thread, like
/// received frames (between control messages), and the verdicts come back.
/// For tests and offline replays; needs no privileges.
pub struct FeedPort {
    rx: Receiver<Vec<u8>>,
    tx: Sender<Fed>,
}

/// The caller's end of a [`FeedPort`].
pub struct Feeder {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Fed>,
}

/// Room left in front of a fed frame for encapsulation headers.
const FEED_HEADROOM: usize = 256;

/// A [`FeedPort`] maker and its feeder.
pub fn feed_port() -> (MakePort, Feeder) {
    let (ftx, frx) = channel();
    let (vtx, vrx) = channel();
    let port = FeedPort { rx: frx, tx: vtx };
    (
        Box::new(move || Ok(Box::new(port) as Box<dyn Port>)),
        Feeder { tx: ftx, rx: vrx },
    )
}

impl Feeder {
    /// Runs one frame through the worker and returns what became of it
    /// (`None` if the worker is gone or takes longer than 5 s).
    pub fn send(&self, frame: &[u8]) -> Option<Fed> {
        self.tx.send(frame.to_vec()).ok()?;
        self.rx.recv_timeout(Duration::from_secs(5)).ok()
    }
}

impl Port for FeedPort {
    fn poll(&mut self, d: &mut Director, now: Instant, budget: Duration) -> usize {
        let Ok(frame) = self.rx.recv_timeout(budget) else {
            return 0;
        };
        let mut buf = vec![0u8; FEED_HEADROOM + frame.len()];
        let out = match buf.get_mut(FEED_HEADROOM..) {
            Some(tail) => {
                tail.copy_from_slice(&frame);
                match rvs_wire::FrameBuf::new(&mut buf, FEED_HEADROOM, frame.len()) {
                    Ok(mut fb) => {
                        let v = d.handle_frame(now, &mut fb, &rvs_engine::RxMeta::default());
                        (v, fb.data().to_vec())
                    }
                    Err(_) => (rvs_engine::Verdict::Pass, frame),
                }
            }
            None => (rvs_engine::Verdict::Pass, frame),
        };
        let _ = self.tx.send(out);
        1
    }
}

/// Director-wide figures summed over `workers`.
pub fn daemon_stats(workers: &[Worker]) -> Result<crate::proto::DaemonStats, OpError> {
    let mut out = crate::proto::DaemonStats::default();
    for w in workers {
        let g = w.stats()?;
        let t = &mut out.totals;
        t.conns += g.totals.conns;
        t.inpkts += g.totals.inpkts;
        t.outpkts += g.totals.outpkts;
        t.inbytes += g.totals.inbytes;
        t.outbytes += g.totals.outbytes;
        t.cps += g.rates.cps;
        t.inpps += g.rates.inpps;
        t.outpps += g.rates.outpps;
        t.inbps += g.rates.inbps;
        t.outbps += g.rates.outbps;
        for (r, n) in &g.drops {
            let label = r.label();
            match out.drops.iter_mut().find(|(l, _)| l == label) {
                Some(e) => e.1 += n,
                None => out.drops.push((label.to_string(), *n)),
            }
        }
        out.passed += g.passed;
        out.conns += g.conns as u64;
        let (queues, ws) = w.queue_stats()?;
        out.workers.extend(ws.map(|s| crate::proto::WorkerFigures {
            worker: s.worker,
            handed_off: s.handed_off,
            taken_over: s.taken_over,
            ring_full: s.ring_full,
            no_next_hop: s.no_next_hop,
        }));
        out.queues
            .extend(queues.into_iter().map(|q| crate::proto::QueueFigures {
                iface: q.iface,
                queue: q.queue,
                rx: q.rx,
                tx: q.tx,
                tx_full: q.tx_full,
                no_next_hop: q.no_next_hop,
            }));
    }
    Ok(out)
}

/// The table as ipvsadm shows it, over all `workers`: every worker holds the
/// same services and real servers (each change reaches all of them in one
/// message), so their counters, rates and connection counts are summed
/// (as Katran's per-CPU tables add up; each connection lives in its owner
/// worker only) and their connections listed together.
pub fn snapshot_all(workers: &[Worker]) -> Result<rvs_ipvsadm::Snapshot, OpError> {
    let mut it = workers.iter();
    let Some(first) = it.next() else {
        return Err(worker_gone());
    };
    let mut all = first.snapshot()?;
    for w in it {
        let s = w.snapshot()?;
        for se in s.services {
            let Some(mine) = all
                .services
                .iter_mut()
                .find(|m| m.service.key == se.service.key)
            else {
                continue;
            };
            add_stats(&mut mine.stats, &se.stats);
            for de in se.dests {
                if let Some(d) = mine
                    .dests
                    .iter_mut()
                    .find(|d| d.dest.addr == de.dest.addr && d.dest.port == de.dest.port)
                {
                    d.activeconns = d.activeconns.saturating_add(de.activeconns);
                    d.inactconns = d.inactconns.saturating_add(de.inactconns);
                    d.persistconns = d.persistconns.saturating_add(de.persistconns);
                    add_stats(&mut d.stats, &de.stats);
                }
            }
        }
        all.conns.extend(s.conns);
    }
    Ok(all)
}

fn add_stats(a: &mut rvs_ipvsadm::Stats, b: &rvs_ipvsadm::Stats) {
    a.conns = a.conns.saturating_add(b.conns);
    a.inpkts = a.inpkts.saturating_add(b.inpkts);
    a.outpkts = a.outpkts.saturating_add(b.outpkts);
    a.inbytes = a.inbytes.saturating_add(b.inbytes);
    a.outbytes = a.outbytes.saturating_add(b.outbytes);
    a.cps = a.cps.saturating_add(b.cps);
    a.inpps = a.inpps.saturating_add(b.inpps);
    a.outpps = a.outpps.saturating_add(b.outpps);
    a.inbps = a.inbps.saturating_add(b.inbps);
    a.outbps = a.outbps.saturating_add(b.outbps);
}
