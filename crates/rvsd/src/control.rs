//! The control plane: the [`Model`] (desired configuration) and the workers
//! it is pushed to. Every change is validated whole on the model before any
//! worker sees it (all or nothing); reloads apply only the difference.

use crate::convert::{Op, OpError, op};
use crate::model::Model;
use crate::worker::Worker;
use rvs_engine::{DirectorConfig, NoDest, ServiceKey};
use rvs_ipvsadm as adm;
use std::collections::HashMap;

/// The configuration and the workers it is pushed to.
pub struct Control {
    model: Model,
    workers: Vec<Worker>,
}

impl Control {
    /// An empty configuration.
    pub fn new(dcfg: DirectorConfig, workers: Vec<Worker>) -> Self {
        Self {
            model: Model::new(dcfg),
            workers,
        }
    }

    /// The workers.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// The desired configuration.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Applies ipvsadm commands, all or none (`-R` sends every line as one
    /// batch). ipvsadm has no word for a service's [`rvs_engine::NoDest`]
    /// policy, so an `-E` keeps the one the service has (from the file).
    pub fn apply_commands(&mut self, cmds: &[adm::Command]) -> Result<(), OpError> {
        let mut ops = Vec::new();
        let mut nodest: Option<HashMap<ServiceKey, Option<NoDest>>> = None;
        for c in cmds {
            let Some(mut o) = op(c)? else { continue };
            let current = nodest.get_or_insert_with(|| {
                self.model
                    .services()
                    .iter()
                    .map(|s| (s.cfg.key, s.cfg.nodest))
                    .collect()
            });
            match &mut o {
                Op::EditService(cfg) => {
                    cfg.nodest = current.get(&cfg.key).copied().flatten();
                }
                Op::AddService(cfg) => {
                    current.insert(cfg.key, cfg.nodest);
                }
                Op::DelService(key) => {
                    current.remove(key);
                }
                Op::Clear => current.clear(),
                _ => {}
            }
            ops.push(o);
        }
        self.apply(ops)
    }

    /// Applies engine operations, all or none: the model checks the whole
    /// batch first, so a refused one leaves the model and every worker as
    /// they were; then each worker runs the batch in one go, between two
    /// receive batches.
    pub fn apply(&mut self, ops: Vec<Op>) -> Result<(), OpError> {
        if ops.is_empty() {
            return Ok(());
        }
        let run = self.model.apply(&ops)?;
        self.push(run)
    }

    /// Replaces the configuration with `target` (a full configuration as
    /// operations from empty), applying only the difference: services and
    /// real servers that stay are edited in place or left alone, so their
    /// connections are untouched. Returns the number of operations run.
    pub fn reload(&mut self, target: &[Op]) -> Result<usize, OpError> {
        let run = self.model.reload(target)?;
        let n = run.len();
        self.push(run)?;
        Ok(n)
    }

    fn push(&self, ops: Vec<Op>) -> Result<(), OpError> {
        if ops.is_empty() {
            return Ok(());
        }
        for w in &self.workers {
            w.apply(ops.clone())?;
        }
        Ok(())
    }

    /// Stops every worker.
    pub fn stop(self) {
        for w in self.workers {
            w.stop();
        }
    }
}
