//! The desired configuration (services, real servers, timeouts), kept apart
//! from the workers so it can be checked without any: every batch is tried
//! on a copy first, as `ip_vs_ctl.c` checks each request before touching the
//! table, and a batch with any refused operation changes nothing.

use crate::convert::{Op, OpError, ops_of};
use rvs_engine::{Director, DirectorConfig, ServiceKey, ServiceSnapshot};
use rvs_types::Instant;

/// The configuration as operations that rebuild it from an empty table.
#[derive(Clone, Debug)]
pub struct Model {
    dcfg: DirectorConfig,
    ops: Vec<Op>,
}

impl Model {
    /// An empty table (default timeouts) for directors built with `dcfg`.
    pub fn new(dcfg: DirectorConfig) -> Self {
        let ops = ops_of(&Director::new(dcfg.clone(), Instant::ZERO));
        Self { dcfg, ops }
    }

    /// Validates `batch` against a copy of the configuration, in order, with
    /// the kernel's checks and error texts ("Service already exists", "No
    /// such service", "Destination already exists", "No such destination",
    /// ...). On success the model takes the result and the operations the
    /// workers must run are returned (the batch itself); on the first refused
    /// operation the model is left exactly as it was.
    pub fn apply(&mut self, batch: &[Op]) -> Result<Vec<Op>, OpError> {
        let scratch = self.check(batch)?;
        self.ops = ops_of(&scratch);
        Ok(batch.to_vec())
    }

    /// A director holding the configuration with `batch` applied, or the
    /// first operation's refusal. The model does not change.
    pub fn check(&self, batch: &[Op]) -> Result<Director, OpError> {
        let mut d = self.director();
        for o in batch {
            o.apply(&mut d)?;
        }
        Ok(d)
    }

    /// Replaces the configuration with `target` (a full configuration as
    /// operations from an empty table) and returns only the difference, as
    /// operations to run: services and real servers that stay are edited in
    /// place (`-E` / `-e`, which keep their connections, as
    /// `ip_vs_edit_service`/`ip_vs_edit_dest` do) or not touched at all. An
    /// invalid `target` changes nothing.
    pub fn reload(&mut self, target: &[Op]) -> Result<Vec<Op>, OpError> {
        let want = Self::new(self.dcfg.clone()).check(target)?;
        let ops = diff(&self.director(), &want);
        self.apply(&ops)
    }

    /// The configuration as operations from an empty table (timeouts first,
    /// then each service followed by its real servers, oldest first).
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The configured services, as the engine lists them.
    pub fn services(&self) -> Vec<ServiceSnapshot> {
        self.director().services()
    }

    /// A fresh director holding the configuration (no connections).
    pub fn director(&self) -> Director {
        let mut d = Director::new(self.dcfg.clone(), Instant::ZERO);
        for o in &self.ops {
            // `ops` came from a director, so they replay; a failure would be
            // an engine bug, logged rather than panicking the daemon.
            if let Err(e) = o.apply(&mut d) {
                tracing::error!(error = %e.message, ?o, "the configuration model does not replay");
            }
        }
        d
    }
}

/// Operations turning `have`'s configuration into `want`'s: removed
/// services and real servers deleted, new ones added, changed ones edited
/// in place, equal ones left alone.
pub fn diff(have: &Director, want: &Director) -> Vec<Op> {
    let mut ops = Vec::new();
    if have.timeouts() != want.timeouts() {
        let (a, b, c) = want.timeouts();
        ops.push(Op::SetTimeouts(a, b, c));
    }
    let h = have.services();
    let w = want.services();
    let find = |list: &[ServiceSnapshot], k: &ServiceKey| list.iter().position(|s| s.cfg.key == *k);
    for s in &h {
        if find(&w, &s.cfg.key).is_none() {
            ops.push(Op::DelService(s.cfg.key));
        }
    }
    for ws in &w {
        let key = ws.cfg.key;
        let Some(hi) = find(&h, &key) else {
            ops.push(Op::AddService(ws.cfg.clone()));
            // The engine lists newest first; add oldest first to keep the order.
            for d in ws.dests.iter().rev() {
                ops.push(Op::AddDest(key, d.cfg.clone()));
            }
            continue;
        };
        let hs = &h[hi];
        if hs.cfg != ws.cfg {
            ops.push(Op::EditService(ws.cfg.clone()));
        }
        let same = |a: &rvs_engine::DestConfig, b: &rvs_engine::DestConfig| {
            a.addr == b.addr && a.port == b.port
        };
        for hd in &hs.dests {
            if !ws.dests.iter().any(|d| same(&d.cfg, &hd.cfg)) {
                ops.push(Op::DelDest(key, hd.cfg.addr, hd.cfg.port));
            }
        }
        for wd in ws.dests.iter().rev() {
            match hs.dests.iter().find(|d| same(&d.cfg, &wd.cfg)) {
                None => ops.push(Op::AddDest(key, wd.cfg.clone())),
                Some(hd) if hd.cfg != wd.cfg => ops.push(Op::EditDest(key, wd.cfg.clone())),
                Some(_) => {}
            }
        }
    }
    ops
}
