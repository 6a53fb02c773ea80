//! The health supervisor: the checks' answers, through keepalived's rules
//! ([`crate::health`]), into the running table.
//!
//! It holds the configured [`Plan`], the checks' states and the
//! [`Evaluator`]; on every change of a check's state it evaluates the plan
//! and hands the result to `Control::reload`, which applies only the
//! difference (real servers that stay keep their connections), then runs
//! the notify scripts of what changed. A configuration reload swaps the
//! plan the same way, keeping the state of every check that stays.
//!
//! Lock order: the control first, then the supervisor's state (the reload
//! path is called with the control held).

use crate::control::Control;
use crate::health::{CheckKey, CheckState, Evaluator, Health, Notify, Plan, checks};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the supervisor says which checks to run.
pub trait Checks: Send + Sync {
    /// Replaces the set of checks; checks in both sets keep their state.
    fn set(&self, keys: Vec<CheckKey>);
}

impl Checks for rvs_health::Monitor {
    fn set(&self, keys: Vec<CheckKey>) {
        Self::set(self, keys);
    }
}

struct State {
    plan: Plan,
    health: Health,
    eval: Evaluator,
}

/// Runs the plan against the checks' answers.
pub struct Supervisor {
    state: Arc<Mutex<State>>,
    checks: Arc<dyn Checks>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How long a notify script may run before it is killed.
pub const SCRIPT_LIMIT: Duration = Duration::from_secs(30);

impl Supervisor {
    /// Applies `plan` (every check in its initial state) to `control`,
    /// starts its checks and follows their answers from `events`.
    pub fn start(
        control: Arc<Mutex<Control>>,
        plan: Plan,
        checks: Arc<dyn Checks>,
        events: Receiver<(CheckKey, CheckState)>,
    ) -> Result<Self, String> {
        let mut state = State {
            plan,
            health: Health::default(),
            eval: Evaluator::default(),
        };
        {
            let mut c = control.lock().map_err(|_| "control lock poisoned")?;
            let (ops, _) = state.eval.evaluate(&state.plan, &state.health);
            c.reload(&ops).map_err(|e| e.message)?;
        }
        checks.set(crate::health::checks(&state.plan));
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rvsd-health".into())
                .spawn(move || follow(control, state, events, stop))
                .map_err(|e| e.to_string())?
        };
        Ok(Self {
            state,
            checks,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Replaces the plan (a configuration reload): checks that stay keep
    /// their state, the table changes by the difference only. A refused
    /// table changes nothing. Returns the number of operations run.
    pub fn reload(&self, control: &mut Control, plan: Plan) -> Result<usize, String> {
        let mut st = self.state.lock().map_err(|_| "health state poisoned")?;
        let wanted = checks(&plan);
        let keep: std::collections::HashSet<&CheckKey> = wanted.iter().collect();
        let mut health = st.health.clone();
        health.retain(|k| keep.contains(k));
        // Try on a copy of the evaluator: a refusal leaves all as it was.
        let mut eval = Evaluator::default();
        let _ = eval.evaluate(&st.plan, &st.health);
        let (ops, notes) = eval.evaluate(&plan, &health);
        let n = control.reload(&ops).map_err(|e| e.message)?;
        st.plan = plan;
        st.health = health;
        st.eval = eval;
        self.checks.set(wanted);
        drop(st);
        notify(&notes);
        Ok(n)
    }

    /// Stops following the checks; runs the `omega` notifications.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
        self.checks.set(Vec::new());
        if let Ok(st) = self.state.lock() {
            let notes = st.eval.shutdown(&st.plan);
            drop(st);
            for h in notify(&notes) {
                let _ = h.join();
            }
        }
    }
}

fn follow(
    control: Arc<Mutex<Control>>,
    state: Arc<Mutex<State>>,
    events: Receiver<(CheckKey, CheckState)>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let first = match events.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Take every answer already queued, then evaluate once.
        let mut batch = vec![first];
        while let Ok(e) = events.try_recv() {
            batch.push(e);
        }
        let Ok(mut c) = control.lock() else { return };
        let Ok(mut st) = state.lock() else { return };
        let wanted: std::collections::HashSet<CheckKey> = checks(&st.plan).into_iter().collect();
        for (key, s) in batch {
            // An answer of a check no longer configured is stale.
            if wanted.contains(&key) {
                tracing::info!(check = %key.addr, state = ?s, "check state");
                st.health.set(key, s);
            }
        }
        let State { plan, health, eval } = &mut *st;
        let (ops, notes) = eval.evaluate(plan, health);
        match c.reload(&ops) {
            Ok(n) if n > 0 => tracing::info!(changes = n, "table follows the checks"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e.message, "the checks' table was refused"),
        }
        drop(st);
        drop(c);
        notify(&notes);
    }
}

/// Logs each notification and runs its script (`/bin/sh -c`, killed after
/// [`SCRIPT_LIMIT`]); returns the threads that wait for the scripts.
fn notify(notes: &[Notify]) -> Vec<std::thread::JoinHandle<()>> {
    let mut waits = Vec::new();
    for n in notes {
        tracing::warn!(service = %n.service, event = ?n.event, "health change");
        let Some(script) = &n.script else { continue };
        match std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => {
                if let Ok(h) = std::thread::Builder::new()
                    .name("rvsd-notify".into())
                    .spawn(move || reap(child))
                {
                    waits.push(h);
                }
            }
            Err(e) => tracing::error!(%script, error = %e, "notify script did not start"),
        }
    }
    waits
}

fn reap(mut child: std::process::Child) {
    let t0 = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if !status.success() => {
                tracing::warn!(%status, "notify script failed");
                return;
            }
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if t0.elapsed() > SCRIPT_LIMIT => {
                tracing::warn!("notify script ran too long; killed");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{PlanReal, PlanService};
    use rvs_engine::{DestConfig, DirectorConfig, Forward, ServiceConfig, ServiceKey};
    use rvs_health::spec::{CheckKind, CheckSpec, Common};
    use rvs_types::Proto;
    use std::sync::mpsc;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<Vec<CheckKey>>>);

    impl Checks for Recorded {
        fn set(&self, keys: Vec<CheckKey>) {
            self.0.lock().unwrap().push(keys);
        }
    }

    fn key(ip: &str) -> CheckKey {
        CheckKey {
            addr: format!("{ip}:80").parse().unwrap(),
            spec: CheckSpec {
                kind: CheckKind::Tcp,
                common: Common::default(),
            },
        }
    }

    fn plan(ips: &[&str], dir: &std::path::Path) -> Plan {
        let svc = ServiceConfig::new(ServiceKey::Addr {
            proto: Proto::TCP,
            addr: "192.0.2.1".parse::<std::net::IpAddr>().unwrap().into(),
            port: 80,
        });
        let reals = ips
            .iter()
            .map(|ip| {
                let mut dest = DestConfig::new(ip.parse::<std::net::IpAddr>().unwrap().into(), 80);
                dest.fwd = Forward::Masq;
                PlanReal {
                    dest,
                    inhibit_on_failure: false,
                    checks: vec![key(ip)],
                    notify_up: None,
                    notify_down: Some(format!("echo {ip} >> {}", dir.join("down").display())),
                }
            })
            .collect();
        Plan {
            timeouts: None,
            services: vec![PlanService {
                cfg: svc,
                reals,
                quorum: 1,
                hysteresis: 0,
                quorum_up: None,
                quorum_down: None,
                sorry: None,
                sorry_inhibit: false,
                omega: false,
            }],
        }
    }

    fn reals(c: &Arc<Mutex<Control>>) -> Vec<String> {
        let c = c.lock().unwrap();
        let mut v: Vec<String> = c.model().services()[0]
            .dests
            .iter()
            .map(|d| d.cfg.addr.to_string())
            .collect();
        v.sort();
        v
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn answers_change_the_table_and_reload_keeps_health() {
        let dir = std::env::temp_dir().join(format!("rvsd-sup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let control = Arc::new(Mutex::new(Control::new(DirectorConfig::default(), vec![])));
        let rec = Arc::new(Recorded::default());
        let (tx, rx) = mpsc::channel();
        let sup = Supervisor::start(
            control.clone(),
            plan(&["10.0.0.1", "10.0.0.2"], &dir),
            rec.clone(),
            rx,
        )
        .unwrap();
        assert_eq!(reals(&control), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(rec.0.lock().unwrap()[0], [key("10.0.0.1"), key("10.0.0.2")]);
        tx.send((key("10.0.0.2"), CheckState::Down)).unwrap();
        assert!(wait_for(|| reals(&control) == ["10.0.0.1"]));
        let down = dir.join("down");
        assert!(wait_for(|| std::fs::read_to_string(&down)
            .unwrap_or_default()
            == "10.0.0.2\n"));
        // A reload adding a server: the failed one stays out (its state
        // carries over), the new one comes in.
        {
            let mut c = control.lock().unwrap();
            sup.reload(&mut c, plan(&["10.0.0.1", "10.0.0.2", "10.0.0.3"], &dir))
                .unwrap();
        }
        assert_eq!(reals(&control), ["10.0.0.1", "10.0.0.3"]);
        // An answer about a check no longer configured is ignored.
        {
            let mut c = control.lock().unwrap();
            sup.reload(&mut c, plan(&["10.0.0.1"], &dir)).unwrap();
        }
        tx.send((key("10.0.0.3"), CheckState::Up)).unwrap();
        tx.send((key("10.0.0.1"), CheckState::UpWeight(5))).unwrap();
        assert!(wait_for(|| {
            let c = control.lock().unwrap();
            c.model().services()[0]
                .dests
                .iter()
                .map(|d| d.cfg.weight)
                .collect::<Vec<_>>()
                == [5]
        }));
        assert_eq!(reals(&control), ["10.0.0.1"]);
        sup.stop();
        assert!(rec.0.lock().unwrap().last().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
