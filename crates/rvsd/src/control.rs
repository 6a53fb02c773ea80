//! The control plane's view: the desired configuration, validated whole
//! before any worker sees a change (all or nothing), and reloads that apply
//! only the difference.

use crate::convert::{Op, OpError, op, ops_of};
use crate::worker::Worker;
use rvs_engine::{Director, DirectorConfig, ServiceKey};
use rvs_ipvsadm as adm;
use rvs_types::Instant;
use std::collections::BTreeMap;

/// The configuration and the workers it is pushed to.
pub struct Control {
    model: Vec<Op>,
    dcfg: DirectorConfig,
    workers: Vec<Worker>,
}

impl Control {
    /// An empty configuration.
    pub fn new(dcfg: DirectorConfig, workers: Vec<Worker>) -> Self {
        Self {
            model: Vec::new(),
            dcfg,
            workers,
        }
    }

    /// The workers.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Applies ipvsadm commands, all or none.
    pub fn apply_commands(&mut self, cmds: &[adm::Command]) -> Result<(), OpError> {
        let mut ops = Vec::new();
        for c in cmds {
            if let Some(o) = op(c)? {
                ops.push(o);
            }
        }
        self.apply(ops)
    }

    /// Applies engine operations, all or none: they are first applied to a
    /// scratch director holding the current configuration, so a failing one
    /// leaves everything as it was.
    pub fn apply(&mut self, ops: Vec<Op>) -> Result<(), OpError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut scratch = self.scratch();
        for o in &ops {
            o.apply(&mut scratch)?;
        }
        for w in &self.workers {
            w.apply(ops.clone())?;
        }
        self.model = ops_of(&scratch);
        Ok(())
    }

    /// Replaces the configuration with `target` (a full configuration as
    /// operations from empty), applying only the difference: services and
    /// real servers that stay are edited in place or left alone, so their
    /// connections are untouched.
    pub fn reload(&mut self, target: &[Op]) -> Result<usize, OpError> {
        let mut want = Director::new(self.dcfg.clone(), Instant::ZERO);
        for o in target {
            o.apply(&mut want)?;
        }
        let have = self.scratch();
        let diff = diff(&have, &want);
        let n = diff.len();
        self.apply(diff)?;
        Ok(n)
    }

    fn scratch(&self) -> Director {
        let mut d = Director::new(self.dcfg.clone(), Instant::ZERO);
        for o in &self.model {
            if let Err(e) = o.apply(&mut d) {
                tracing::error!(error = %e.message, "the configuration model does not replay");
            }
        }
        d
    }

    /// Stops every worker.
    pub fn stop(self) {
        for w in self.workers {
            w.stop();
        }
    }
}

/// Operations turning `have`'s configuration into `want`'s.
pub fn diff(have: &Director, want: &Director) -> Vec<Op> {
    let mut ops = Vec::new();
    if have.timeouts() != want.timeouts() {
        let (a, b, c) = want.timeouts();
        ops.push(Op::SetTimeouts(a, b, c));
    }
    let h: BTreeMap<String, rvs_engine::ServiceSnapshot> = have
        .services()
        .into_iter()
        .map(|s| (format!("{:?}", s.cfg.key), s))
        .collect();
    let w: BTreeMap<String, rvs_engine::ServiceSnapshot> = want
        .services()
        .into_iter()
        .map(|s| (format!("{:?}", s.cfg.key), s))
        .collect();
    for (k, s) in &h {
        if !w.contains_key(k) {
            ops.push(Op::DelService(s.cfg.key));
        }
    }
    for (k, ws) in &w {
        let key: ServiceKey = ws.cfg.key;
        match h.get(k) {
            None => {
                ops.push(Op::AddService(ws.cfg.clone()));
                for d in ws.dests.iter().rev() {
                    ops.push(Op::AddDest(key, d.cfg.clone()));
                }
            }
            Some(hs) => {
                if hs.cfg != ws.cfg {
                    ops.push(Op::EditService(ws.cfg.clone()));
                }
                for hd in &hs.dests {
                    if !ws
                        .dests
                        .iter()
                        .any(|d| d.cfg.addr == hd.cfg.addr && d.cfg.port == hd.cfg.port)
                    {
                        ops.push(Op::DelDest(key, hd.cfg.addr, hd.cfg.port));
                    }
                }
                for wd in ws.dests.iter().rev() {
                    match hs
                        .dests
                        .iter()
                        .find(|d| d.cfg.addr == wd.cfg.addr && d.cfg.port == wd.cfg.port)
                    {
                        None => ops.push(Op::AddDest(key, wd.cfg.clone())),
                        Some(hd) if hd.cfg != wd.cfg => ops.push(Op::EditDest(key, wd.cfg.clone())),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    ops
}
