//! keepalived's real-server and quorum rules over the health checks'
//! answers (`keepalived/check/ipwrapper.c`: `update_svr_checker_state`,
//! `update_quorum_state`).
//!
//! A [`Plan`] is the configured table (virtual servers, their real servers
//! with their checks, quorum and sorry server); [`Evaluator::evaluate`]
//! turns it and the checks' current states ([`Health`]) into the table to
//! run, as operations from an empty table for `Control::reload` (which
//! applies only the difference, so real servers that stay keep their
//! connections), and the notifications the change fires. Pure: the
//! supervisor in `crate::keepalived` feeds it.
//!
//! The rules, as keepalived's:
//! - a real server is alive when every one of its checks is up (one with
//!   no checks always is); a MISC_CHECK with `misc_dynamic` sets its weight;
//! - a dead real server is removed, or kept with weight 0 under
//!   `inhibit_on_failure` (its connections go on, it gets no new ones);
//! - the quorum is the sum of the alive servers' weights: it is lost when
//!   that sum is 0 or below `quorum - hysteresis`, and regained when it is
//!   positive and at least `quorum + hysteresis`;
//! - while the quorum is lost and a `sorry_server` is configured, the sorry
//!   server takes the traffic alone (alive real servers are removed, or set
//!   to weight 0 under `inhibit_on_failure`); `sorry_server_inhibit` keeps
//!   the sorry server in the table with weight 0 while the quorum holds.

use crate::convert::Op;
use rvs_engine::{DestConfig, ServiceConfig, ServiceKey};
use rvs_types::Addr;
use std::collections::HashMap;

/// One check of one real server (its address and the checker); the same
/// key used by several virtual servers is one check.
pub use rvs_health::Target as CheckKey;

/// A check's state: up, down, or up with a `misc_dynamic` weight.
pub use rvs_health::State as CheckState;

/// The configured table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// `lvs_timeouts` (tcp, tcpfin, udp; 0 = unchanged).
    pub timeouts: Option<(u32, u32, u32)>,
    /// Virtual services, in file order (a `virtual_server group` gives one
    /// per member).
    pub services: Vec<PlanService>,
}

/// A virtual service and its real servers.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanService {
    /// The service's settings.
    pub cfg: ServiceConfig,
    /// Real servers, in file order.
    pub reals: Vec<PlanReal>,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<String>,
    /// `quorum_down` script.
    pub quorum_down: Option<String>,
    /// `sorry_server`.
    pub sorry: Option<DestConfig>,
    /// `sorry_server_inhibit`.
    pub sorry_inhibit: bool,
    /// `omega`: run the down notifications at shutdown.
    pub omega: bool,
}

/// A real server of a [`PlanService`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlanReal {
    /// Address, port, configured weight, method, thresholds.
    pub dest: DestConfig,
    /// `inhibit_on_failure`.
    pub inhibit_on_failure: bool,
    /// Its checks (all must be up).
    pub checks: Vec<CheckKey>,
    /// `notify_up` script.
    pub notify_up: Option<String>,
    /// `notify_down` script.
    pub notify_down: Option<String>,
}

/// The checks' current states; a check not heard from yet is in its
/// initial state (up, or down with `alpha`).
#[derive(Clone, Debug, Default)]
pub struct Health {
    states: HashMap<CheckKey, CheckState>,
}

impl Health {
    /// Records a check's new state.
    pub fn set(&mut self, key: CheckKey, state: CheckState) {
        self.states.insert(key, state);
    }

    /// A check's state.
    pub fn get(&self, key: &CheckKey) -> CheckState {
        match self.states.get(key) {
            Some(s) => *s,
            None if key.spec.common.alpha => CheckState::Down,
            None => CheckState::Up,
        }
    }

    /// Forgets checks no longer configured.
    pub fn retain(&mut self, keep: impl Fn(&CheckKey) -> bool) {
        self.states.retain(|k, _| keep(k));
    }
}

/// A notification a change fires.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Notify {
    /// The virtual service.
    pub service: ServiceKey,
    /// What happened.
    pub event: NotifyEvent,
    /// The script to run, if one is configured.
    pub script: Option<String>,
}

/// What a [`Notify`] is about.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum NotifyEvent {
    /// A real server came up.
    RealUp(Addr, u16),
    /// A real server went down.
    RealDown(Addr, u16),
    /// The quorum was regained.
    QuorumUp,
    /// The quorum was lost.
    QuorumDown,
}

/// Remembers what was alive, so changes can be told apart from states.
#[derive(Debug, Default)]
pub struct Evaluator {
    real_alive: HashMap<(ServiceKey, Addr, u16), bool>,
    quorum_up: HashMap<ServiceKey, bool>,
}

/// A real server's state under the current checks: alive, and its weight.
/// (Several `misc_dynamic` checks on one server: the smallest weight, as
/// rvs-health's `combine`.)
fn real_state(r: &PlanReal, health: &Health) -> (bool, i32) {
    match rvs_health::combine(r.checks.iter().map(|c| health.get(c))) {
        CheckState::Down => (false, 0),
        CheckState::UpWeight(w) => (true, i32::try_from(w).unwrap_or(i32::MAX)),
        CheckState::Up => (true, r.dest.weight),
    }
}

impl Evaluator {
    /// The table to run for `plan` under `health`, as operations from an
    /// empty table, and the notifications of what changed since the last
    /// call. The first call for a service only records its state (nothing
    /// has changed yet), as keepalived does not notify at start-up.
    pub fn evaluate(&mut self, plan: &Plan, health: &Health) -> (Vec<Op>, Vec<Notify>) {
        let mut ops = Vec::new();
        let mut notes = Vec::new();
        if let Some((a, b, c)) = plan.timeouts {
            ops.push(Op::SetTimeouts(a, b, c));
        }
        let mut seen_reals = HashMap::new();
        let mut seen_quorum = HashMap::new();
        for s in &plan.services {
            let key = s.cfg.key;
            ops.push(Op::AddService(s.cfg.clone()));
            let states: Vec<(bool, i32)> = s.reals.iter().map(|r| real_state(r, health)).collect();
            for (r, (alive, _)) in s.reals.iter().zip(&states) {
                let id = (key, r.dest.addr, r.dest.port);
                if let Some(was) = self.real_alive.get(&id)
                    && was != alive
                {
                    notes.push(Notify {
                        service: key,
                        event: if *alive {
                            NotifyEvent::RealUp(r.dest.addr, r.dest.port)
                        } else {
                            NotifyEvent::RealDown(r.dest.addr, r.dest.port)
                        },
                        script: if *alive {
                            r.notify_up.clone()
                        } else {
                            r.notify_down.clone()
                        },
                    });
                }
                seen_reals.insert(id, *alive);
            }
            let sum: i64 = states
                .iter()
                .filter(|(alive, _)| *alive)
                .map(|(_, w)| i64::from(*w))
                .sum();
            let (q, h) = (i64::from(s.quorum), i64::from(s.hysteresis));
            let up = match self.quorum_up.get(&key) {
                Some(true) => !(sum == 0 || sum < q - h),
                Some(false) => sum > 0 && sum >= q + h,
                None => sum > 0 && sum >= q,
            };
            if let Some(was) = self.quorum_up.get(&key)
                && *was != up
            {
                notes.push(Notify {
                    service: key,
                    event: if up {
                        NotifyEvent::QuorumUp
                    } else {
                        NotifyEvent::QuorumDown
                    },
                    script: if up {
                        s.quorum_up.clone()
                    } else {
                        s.quorum_down.clone()
                    },
                });
            }
            seen_quorum.insert(key, up);
            let sorry_serves = !up && s.sorry.is_some();
            for (r, (alive, weight)) in s.reals.iter().zip(&states) {
                let weight = match (*alive && !sorry_serves, r.inhibit_on_failure) {
                    (true, _) => *weight,
                    (false, true) => 0,
                    (false, false) => continue,
                };
                let mut d = r.dest.clone();
                d.weight = weight;
                ops.push(Op::AddDest(key, d));
            }
            if let Some(sorry) = &s.sorry {
                if sorry_serves {
                    ops.push(Op::AddDest(key, sorry.clone()));
                } else if s.sorry_inhibit {
                    let mut d = sorry.clone();
                    d.weight = 0;
                    ops.push(Op::AddDest(key, d));
                }
            }
        }
        self.real_alive = seen_reals;
        self.quorum_up = seen_quorum;
        (ops, notes)
    }

    /// The notifications `omega` asks for at shutdown: every alive real
    /// server going down and every held quorum lost, for the services that
    /// set it.
    pub fn shutdown(&self, plan: &Plan) -> Vec<Notify> {
        let mut notes = Vec::new();
        for s in plan.services.iter().filter(|s| s.omega) {
            let key = s.cfg.key;
            for r in &s.reals {
                if self.real_alive.get(&(key, r.dest.addr, r.dest.port)) == Some(&true) {
                    notes.push(Notify {
                        service: key,
                        event: NotifyEvent::RealDown(r.dest.addr, r.dest.port),
                        script: r.notify_down.clone(),
                    });
                }
            }
            if self.quorum_up.get(&key) == Some(&true) {
                notes.push(Notify {
                    service: key,
                    event: NotifyEvent::QuorumDown,
                    script: s.quorum_down.clone(),
                });
            }
        }
        notes
    }
}

/// Every check of a plan, each once, in the plan's order.
pub fn checks(plan: &Plan) -> Vec<CheckKey> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<CheckKey> = Vec::new();
    for s in &plan.services {
        for r in &s.reals {
            for c in &r.checks {
                if seen.insert(c) {
                    out.push(c.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_engine::Forward;
    use rvs_health::spec::{CheckKind, CheckSpec, Common};
    use rvs_types::Proto;

    fn svc() -> ServiceConfig {
        ServiceConfig::new(ServiceKey::Addr {
            proto: Proto::TCP,
            addr: "192.0.2.1".parse::<std::net::IpAddr>().unwrap().into(),
            port: 80,
        })
    }

    fn check(ip: &str) -> CheckKey {
        CheckKey {
            addr: format!("{ip}:80").parse().unwrap(),
            spec: CheckSpec {
                kind: CheckKind::Tcp,
                common: Common::default(),
            },
        }
    }

    fn real(ip: &str, weight: i32, inhibit: bool) -> PlanReal {
        let mut dest = DestConfig::new(ip.parse::<std::net::IpAddr>().unwrap().into(), 80);
        dest.weight = weight;
        dest.fwd = Forward::Masq;
        PlanReal {
            dest,
            inhibit_on_failure: inhibit,
            checks: vec![check(ip)],
            notify_up: Some(format!("up {ip}")),
            notify_down: Some(format!("down {ip}")),
        }
    }

    fn plan(reals: Vec<PlanReal>, quorum: u32, hysteresis: u32, sorry: bool) -> Plan {
        Plan {
            timeouts: None,
            services: vec![PlanService {
                cfg: svc(),
                reals,
                quorum,
                hysteresis,
                quorum_up: Some("qup".into()),
                quorum_down: Some("qdown".into()),
                sorry: sorry.then(|| {
                    DestConfig::new(
                        "198.51.100.9".parse::<std::net::IpAddr>().unwrap().into(),
                        80,
                    )
                }),
                sorry_inhibit: false,
                omega: true,
            }],
        }
    }

    /// (address, weight) of every real server in the ops.
    fn table(ops: &[Op]) -> Vec<(String, i32)> {
        ops.iter()
            .filter_map(|o| match o {
                Op::AddDest(_, d) => Some((d.addr.to_string(), d.weight)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dead_servers_leave_or_stay_quiescent() {
        let p = plan(
            vec![real("10.0.0.1", 1, false), real("10.0.0.2", 3, true)],
            1,
            0,
            false,
        );
        let mut h = Health::default();
        let mut e = Evaluator::default();
        let (ops, notes) = e.evaluate(&p, &h);
        assert_eq!(
            table(&ops),
            [("10.0.0.1".into(), 1), ("10.0.0.2".into(), 3)]
        );
        assert!(notes.is_empty(), "nothing changed at start: {notes:?}");
        h.set(check("10.0.0.1"), CheckState::Down);
        h.set(check("10.0.0.2"), CheckState::Down);
        let (ops, notes) = e.evaluate(&p, &h);
        assert_eq!(table(&ops), [("10.0.0.2".into(), 0)]);
        let scripts: Vec<_> = notes.iter().filter_map(|n| n.script.clone()).collect();
        assert_eq!(scripts, ["down 10.0.0.1", "down 10.0.0.2", "qdown"]);
        h.set(check("10.0.0.2"), CheckState::Up);
        let (ops, notes) = e.evaluate(&p, &h);
        assert_eq!(table(&ops), [("10.0.0.2".into(), 3)]);
        let scripts: Vec<_> = notes.iter().filter_map(|n| n.script.clone()).collect();
        assert_eq!(scripts, ["up 10.0.0.2", "qup"]);
    }

    #[test]
    fn sorry_server_serves_alone_while_the_quorum_is_lost() {
        let p = plan(
            vec![real("10.0.0.1", 2, false), real("10.0.0.2", 2, true)],
            3,
            0,
            true,
        );
        let mut h = Health::default();
        let mut e = Evaluator::default();
        let (ops, _) = e.evaluate(&p, &h);
        assert_eq!(
            table(&ops),
            [("10.0.0.1".into(), 2), ("10.0.0.2".into(), 2)]
        );
        // 2 of the needed 3 left: the sorry server alone; the inhibited
        // server stays with weight 0.
        h.set(check("10.0.0.1"), CheckState::Down);
        let (ops, notes) = e.evaluate(&p, &h);
        assert_eq!(
            table(&ops),
            [("10.0.0.2".into(), 0), ("198.51.100.9".into(), 1)]
        );
        assert!(notes.iter().any(|n| n.event == NotifyEvent::QuorumDown));
        h.set(check("10.0.0.1"), CheckState::Up);
        let (ops, _) = e.evaluate(&p, &h);
        assert_eq!(
            table(&ops),
            [("10.0.0.1".into(), 2), ("10.0.0.2".into(), 2)]
        );
    }

    #[test]
    fn hysteresis_holds_the_quorum_state() {
        let reals = (1..=4)
            .map(|i| real(&format!("10.0.0.{i}"), 1, false))
            .collect();
        let p = plan(reals, 3, 1, true);
        let mut h = Health::default();
        let mut e = Evaluator::default();
        let up = |ops: &[Op]| !table(ops).iter().any(|(a, _)| a == "198.51.100.9");
        assert!(up(&e.evaluate(&p, &h).0));
        // 3 alive, then 2 (= quorum - hysteresis): still held.
        h.set(check("10.0.0.4"), CheckState::Down);
        assert!(up(&e.evaluate(&p, &h).0));
        h.set(check("10.0.0.3"), CheckState::Down);
        assert!(up(&e.evaluate(&p, &h).0));
        // 1 alive: below 2, lost.
        h.set(check("10.0.0.2"), CheckState::Down);
        assert!(!up(&e.evaluate(&p, &h).0));
        // Back to 3: below quorum + hysteresis = 4, still lost.
        h.set(check("10.0.0.2"), CheckState::Up);
        h.set(check("10.0.0.3"), CheckState::Up);
        assert!(!up(&e.evaluate(&p, &h).0));
        h.set(check("10.0.0.4"), CheckState::Up);
        assert!(up(&e.evaluate(&p, &h).0));
    }

    #[test]
    fn dynamic_weight_alpha_and_omega() {
        let mut r = real("10.0.0.1", 1, false);
        r.checks[0].spec.common.alpha = true;
        let p = plan(vec![r, real("10.0.0.2", 1, false)], 1, 0, false);
        let mut h = Health::default();
        let mut e = Evaluator::default();
        // alpha: down until its check passes.
        assert_eq!(table(&e.evaluate(&p, &h).0), [("10.0.0.2".into(), 1)]);
        let mut k = check("10.0.0.1");
        k.spec.common.alpha = true;
        h.set(k, CheckState::UpWeight(7));
        let (ops, notes) = e.evaluate(&p, &h);
        assert_eq!(
            table(&ops),
            [("10.0.0.1".into(), 7), ("10.0.0.2".into(), 1)]
        );
        assert_eq!(notes[0].script.as_deref(), Some("up 10.0.0.1"));
        let down: Vec<_> = e
            .shutdown(&p)
            .into_iter()
            .filter_map(|n| n.script)
            .collect();
        assert_eq!(down, ["down 10.0.0.1", "down 10.0.0.2", "qdown"]);
    }

    #[test]
    fn shared_checks_listed_once() {
        let mut p = plan(vec![real("10.0.0.1", 1, false)], 1, 0, false);
        let mut other = p.services[0].clone();
        other.cfg.key = ServiceKey::Addr {
            proto: Proto::TCP,
            addr: "192.0.2.2".parse::<std::net::IpAddr>().unwrap().into(),
            port: 80,
        };
        p.services.push(other);
        assert_eq!(checks(&p), [check("10.0.0.1")]);
    }
}
