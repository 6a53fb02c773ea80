//! The runtime: every check's timer and probe, on a thread of its own with
//! its own (single-threaded) tokio runtime.
//!
//! - [`Monitor::set`] replaces the set of checks: a [`Target`] equal to a
//!   running one keeps its state and timers (a reload keeps health state),
//!   removed ones stop, new ones start. Equal targets given several times
//!   (the same real server and checker in several virtual services) are
//!   one check.
//! - At most [`MonitorConfig::max_concurrent`] probes are in flight.
//! - First probes are spread ([`crate::policy::first_delay`]): a random
//!   part of `warmup`, else a per-target offset within `delay_loop`.
//! - Every state change is sent to the [`Sink`] as an [`Event`];
//!   [`Monitor::snapshot`] gives every check's current state. A new check
//!   sends no event for its initial state ([`State::initial`]: up, or down
//!   with `alpha`), which [`Monitor::snapshot`] shows once the `set` is
//!   applied; the first event is its first change.
//! - Probes run on the monitor's thread (a current-thread runtime): the
//!   work per probe is small, and waiting is on sockets and timers.
//!   MISC_CHECK programs run as child processes.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use tokio::sync::{Semaphore, mpsc as tmpsc};
use tokio::task::JoinHandle as TaskHandle;

use crate::policy::{self, Policy, PolicyParams, ProbeResult, State};
use crate::probe;
use crate::spec::{CheckKind, CheckSpec};

/// One check: a checker of a real server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The real server's address and port (`connect_ip` / `connect_port`
    /// in the spec override them for the probe).
    pub addr: SocketAddr,
    /// The checker.
    pub spec: CheckSpec,
}

impl Target {
    /// Where the probe goes: `addr`, with `connect_ip` / `connect_port`
    /// applied.
    pub fn probe_addr(&self) -> SocketAddr {
        probe::probe_addr(self.addr, &self.spec.common)
    }
}

/// A state change of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The check.
    pub target: Target,
    /// Its new state.
    pub state: State,
    /// Why: the failure's reason, or what succeeded.
    pub reason: String,
}

/// Where events go. Implemented for `std::sync::mpsc::Sender<Event>` and
/// for closures `Fn(Event)`; called on the monitor's thread, so it must
/// not block for long.
pub trait Sink: Send + 'static {
    /// Deliver one event.
    fn send(&self, event: Event);
}

impl Sink for mpsc::Sender<Event> {
    fn send(&self, event: Event) {
        // the receiver gone means the daemon is stopping: nothing to do
        let _ = Self::send(self, event); // the inherent send
    }
}

impl<F: Fn(Event) + Send + 'static> Sink for F {
    fn send(&self, event: Event) {
        self(event)
    }
}

/// Settings of the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// At most this many probes in flight at once (at least 1).
    pub max_concurrent: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 256,
        }
    }
}

/// One check's entry in [`Monitor::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckStatus {
    /// The check.
    pub target: Target,
    /// Its state.
    pub state: State,
    /// Whether it ever declared a result (before that, `state` is the
    /// initial one: up, or down with `alpha`).
    pub has_run: bool,
    /// Failed probes in the current retry sequence.
    pub retries: u32,
    /// The last probe's failure reason, if the last probe failed.
    pub last_failure: Option<String>,
}

enum Cmd {
    Set(Vec<Target>),
    Stop,
}

type Table = Arc<Mutex<HashMap<Target, CheckStatus>>>;

/// The health-check runtime. Dropping it stops it.
pub struct Monitor {
    tx: tmpsc::UnboundedSender<Cmd>,
    table: Table,
    in_flight: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Start the monitor's thread, with no checks yet.
    pub fn start(config: MonitorConfig, sink: impl Sink) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = tmpsc::unbounded_channel();
        let table: Table = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            sink: Mutex::new(Box::new(sink)),
            table: table.clone(),
            sem: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            in_flight: in_flight.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("rvs-health".into())
            .spawn(move || rt.block_on(run(rx, Arc::new(shared))))?;
        Ok(Self {
            tx,
            table,
            in_flight,
            thread: Some(thread),
        })
    }

    /// Replace the set of checks (see the module doc). Duplicates are one
    /// check; unchanged checks keep their state and timers.
    pub fn set(&self, checks: Vec<Target>) {
        let _ = self.tx.send(Cmd::Set(checks));
    }

    /// Every check's current state, in no particular order. A
    /// [`Monitor::set`] is applied on the monitor's thread, so one just
    /// sent may not show yet; once applied, every new check is listed in
    /// its initial state.
    pub fn snapshot(&self) -> Vec<CheckStatus> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.values().cloned().collect()
    }

    /// The current state of one check, if it is running.
    pub fn state(&self, target: &Target) -> Option<State> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.get(target).map(|s| s.state)
    }

    /// Probes in flight now.
    pub fn probes_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Stop every check and the thread; waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Shared {
    sink: Mutex<Box<dyn Sink>>,
    table: Table,
    sem: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
}

async fn run(mut rx: tmpsc::UnboundedReceiver<Cmd>, shared: Arc<Shared>) {
    let mut tasks: HashMap<Target, TaskHandle<()>> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Stop => break,
            Cmd::Set(list) => {
                // first probes are timed from here, however long the
                // spawning below takes
                let base = tokio::time::Instant::now();
                let wanted: HashSet<Target> = list.into_iter().collect();
                tasks.retain(|t, h| {
                    let keep = wanted.contains(t);
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                let mut table = shared.table.lock().unwrap_or_else(|e| e.into_inner());
                table.retain(|t, _| wanted.contains(t));
                for t in wanted {
                    if tasks.contains_key(&t) {
                        continue;
                    }
                    // listed at once, in its initial state
                    table.insert(
                        t.clone(),
                        CheckStatus {
                            target: t.clone(),
                            state: State::initial(&t.spec.common),
                            has_run: false,
                            retries: 0,
                            last_failure: None,
                        },
                    );
                    let h = tokio::spawn(check_task(t.clone(), base, shared.clone()));
                    tasks.insert(t, h);
                }
                drop(table);
            }
        }
    }
    for (_, h) in tasks.drain() {
        h.abort();
        let _ = h.await;
    }
    shared
        .table
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

fn key_of(t: &Target) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    // spread the bits: DefaultHasher output is already mixed, but make
    // the offset independent of it being SipHash
    splitmix(h.finish())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn random_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    splitmix(t ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id()))
}

async fn check_task(target: Target, base: tokio::time::Instant, shared: Arc<Shared>) {
    let now = base;
    let first = policy::first_delay(&target.spec.common, key_of(&target), random_u64());
    let mut pol = Policy::new(PolicyParams::from_spec(&target.spec), now.into_std(), first);
    loop {
        tokio::time::sleep_until(tokio::time::Instant::from_std(pol.next_probe())).await;
        let (started, result) = {
            let Ok(_permit) = shared.sem.acquire().await else {
                return;
            };
            let _g = InFlight::enter(&shared.in_flight);
            let started = tokio::time::Instant::now().into_std();
            // boxed: a task waiting for its next probe stays small
            (
                started,
                Box::pin(probe::probe(target.addr, &target.spec)).await,
            )
        };
        // keepalived times MISC_CHECK's next run from the last start, the
        // network checks from the end of the probe
        let at = match target.spec.kind {
            CheckKind::Misc(_) => started,
            _ => tokio::time::Instant::now().into_std(),
        };
        let changed = pol.on_result(at, &result);
        let reason = match &result {
            ProbeResult::Down(r) => Some(r.clone()),
            _ => None,
        };
        update_table(&shared, &target, &pol, reason.clone());
        if let Some(why) = &reason
            && changed.is_none()
        {
            if target.spec.common.log_all_failures {
                tracing::info!(real = %target.addr, check = kind_name(&target.spec.kind), retries = pol.retries(), "check failed: {why}");
            } else {
                tracing::debug!(real = %target.addr, check = kind_name(&target.spec.kind), retries = pol.retries(), "check failed: {why}");
            }
        }
        if let Some(state) = changed {
            let ev = Event {
                target: target.clone(),
                state,
                reason: reason
                    .unwrap_or_else(|| format!("{} succeeded", kind_name(&target.spec.kind))),
            };
            tracing::info!(real = %target.addr, check = kind_name(&target.spec.kind), state = ?ev.state, "{}", ev.reason);
            let s = shared.sink.lock().unwrap_or_else(|e| e.into_inner());
            s.send(ev);
        }
    }
}

/// keepalived's name of the checker.
pub fn kind_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Tcp => "TCP_CHECK",
        CheckKind::Http(h) if h.tls => "SSL_GET",
        CheckKind::Http(_) => "HTTP_GET",
        CheckKind::Udp(_) => "UDP_CHECK",
        CheckKind::Dns(_) => "DNS_CHECK",
        CheckKind::Smtp(_) => "SMTP_CHECK",
        CheckKind::Ping => "PING_CHECK",
        CheckKind::Misc(_) => "MISC_CHECK",
    }
}

fn update_table(shared: &Shared, target: &Target, pol: &Policy, last_failure: Option<String>) {
    let mut t = shared.table.lock().unwrap_or_else(|e| e.into_inner());
    t.insert(
        target.clone(),
        CheckStatus {
            target: target.clone(),
            state: pol.state(),
            has_run: pol.has_run(),
            retries: pol.retries(),
            last_failure,
        },
    );
}

struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
