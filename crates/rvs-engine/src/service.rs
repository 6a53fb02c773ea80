//! Runtime state of virtual services and real servers ("dests"): the
//! configuration plus the counters IPVS keeps on them.

use crate::load::DestLoad;
use crate::model::{DestConfig, ServiceConfig};
use crate::stats::{Counters, Estimator};
use rvs_sched::{DestView, SchedParams, Scheduler};
use rvs_types::Addr;
use std::sync::Arc;

/// A real server as the engine runs it.
///
/// The fields schedulers read on every new connection come first, together
/// (`repr(C)` keeps that order), so a least-connection scan over a thousand
/// servers touches one cache line per server.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Dest {
    pub(crate) activeconns: u32,
    pub(crate) inactconns: u32,
    /// Copy of `cfg.weight`, next to the counters.
    weight: i32,
    /// IPVS's `IP_VS_DEST_F_OVERLOAD`.
    pub(crate) overloaded: bool,
    pub(crate) id: u32,
    pub(crate) persistconns: u32,
    pub(crate) cfg: DestConfig,
    pub(crate) stats: Counters,
    pub(crate) est: Estimator,
    /// The counts shared with other directors (`crate::load`): thresholds
    /// and the overload flag are then about all of them.
    load: Option<Arc<DestLoad>>,
}

impl Dest {
    #[cfg(test)]
    pub(crate) fn new(id: u32, cfg: DestConfig) -> Self {
        Self::with_load(id, cfg, None)
    }

    pub(crate) fn with_load(id: u32, cfg: DestConfig, load: Option<Arc<DestLoad>>) -> Self {
        Self {
            weight: cfg.weight,
            id,
            cfg,
            activeconns: 0,
            inactconns: 0,
            persistconns: 0,
            overloaded: false,
            stats: Counters::default(),
            est: Estimator::default(),
            load,
        }
    }

    fn totalconns(&self) -> u64 {
        u64::from(self.activeconns) + u64::from(self.inactconns)
    }

    fn set_overloaded(&mut self, on: bool) {
        self.overloaded = on;
        if let Some(l) = &self.load {
            l.set_overloaded(on);
        }
    }

    /// A connection (or, with `template`, a persistence template) now uses
    /// this dest: IPVS `ip_vs_bind_dest`. New connections start inactive.
    pub(crate) fn bind(&mut self, template: bool) {
        // IPVS compares active + inactive (not templates) after either.
        let total = if template {
            self.persistconns += 1;
            match &self.load {
                Some(l) => u64::from(l.conns()),
                None => self.totalconns(),
            }
        } else {
            self.inactconns += 1;
            match &self.load {
                Some(l) => u64::from(l.add()),
                None => self.totalconns(),
            }
        };
        if self.cfg.u_threshold != 0 && total >= u64::from(self.cfg.u_threshold) {
            self.set_overloaded(true);
        }
    }

    /// A connection left this dest: IPVS `ip_vs_unbind_dest`, including its
    /// rule for clearing the overload flag (below the lower threshold, or
    /// below 3/4 of the upper one when no lower threshold is set).
    pub(crate) fn unbind(&mut self, template: bool, inactive: bool) {
        if template {
            self.persistconns = self.persistconns.saturating_sub(1);
        } else {
            if inactive {
                self.inactconns = self.inactconns.saturating_sub(1);
            } else {
                self.activeconns = self.activeconns.saturating_sub(1);
            }
            if let Some(l) = &self.load {
                l.sub();
            }
        }
        self.update_overload_after_unbind();
    }

    fn update_overload_after_unbind(&mut self) {
        let total = match &self.load {
            Some(l) => u64::from(l.conns()),
            None => self.totalconns(),
        };
        if self.cfg.l_threshold != 0 {
            if total < u64::from(self.cfg.l_threshold) {
                self.set_overloaded(false);
            }
        } else if self.cfg.u_threshold != 0 {
            if total * 4 < u64::from(self.cfg.u_threshold) * 3 {
                self.set_overloaded(false);
            }
        } else {
            self.set_overloaded(false);
        }
    }

    /// A connection moved between active and inactive (IPVS's
    /// `set_tcp_state`/`set_sctp_state` counter moves).
    pub(crate) fn move_active(&mut self, was_active: bool, is_active: bool) {
        match (was_active, is_active) {
            (false, true) => {
                self.inactconns = self.inactconns.saturating_sub(1);
                self.activeconns += 1;
            }
            (true, false) => {
                self.activeconns = self.activeconns.saturating_sub(1);
                self.inactconns += 1;
            }
            _ => {}
        }
    }

    /// Applies an edit (`ipvsadm -e`): weight, thresholds and forwarding
    /// method change; counters stay. IPVS re-evaluates the overload flag
    /// only on the next bind/unbind, except that removing the upper
    /// threshold clears it (`__ip_vs_update_dest`).
    pub(crate) fn edit(&mut self, cfg: DestConfig) {
        if cfg.u_threshold == 0 || cfg.u_threshold > self.cfg.u_threshold {
            self.set_overloaded(false);
        }
        self.weight = cfg.weight;
        self.cfg = cfg;
    }

    pub(crate) fn refs(&self) -> u64 {
        self.totalconns() + u64::from(self.persistconns)
    }
}

impl DestView for Dest {
    #[inline]
    fn id(&self) -> u32 {
        self.id
    }
    #[inline]
    fn addr(&self) -> Addr {
        self.cfg.addr
    }
    #[inline]
    fn port(&self) -> u16 {
        self.cfg.port
    }
    #[inline]
    fn weight(&self) -> i32 {
        self.weight
    }
    #[inline]
    fn activeconns(&self) -> u32 {
        self.activeconns
    }
    #[inline]
    fn inactconns(&self) -> u32 {
        self.inactconns
    }
    #[inline]
    fn overloaded(&self) -> bool {
        match &self.load {
            Some(l) => l.overloaded(),
            None => self.overloaded,
        }
    }
}

/// A virtual service as the engine runs it.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) cfg: ServiceConfig,
    pub(crate) dests: Vec<Dest>,
    pub(crate) sched: Scheduler,
    pub(crate) stats: Counters,
    pub(crate) est: Estimator,
}

impl Service {
    pub(crate) fn new(cfg: ServiceConfig, params: &SchedParams) -> Self {
        let mut sched = Scheduler::new(cfg.sched, cfg.sched_flags, params);
        let dests: Vec<Dest> = Vec::new();
        sched.update(&dests);
        Self {
            cfg,
            dests,
            sched,
            stats: Counters::default(),
            est: Estimator::default(),
        }
    }

    pub(crate) fn position(&self, addr: &Addr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.cfg.addr == *addr && d.cfg.port == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(u: u32, l: u32) -> Dest {
        let mut cfg = DestConfig::new(Addr::v4([10, 0, 0, 1]), 80);
        cfg.u_threshold = u;
        cfg.l_threshold = l;
        Dest::new(1, cfg)
    }

    #[test]
    fn upper_threshold_overloads_and_three_quarters_clears() {
        let mut d = dest(4, 0);
        for _ in 0..3 {
            d.bind(false);
        }
        assert!(!d.overloaded);
        d.bind(false); // 4 >= 4
        assert!(d.overloaded);
        d.unbind(false, true); // 3 conns: 12 < 12 is false, stays overloaded
        assert!(d.overloaded);
        d.unbind(false, true); // 2 conns: 8 < 12
        assert!(!d.overloaded);
    }

    #[test]
    fn lower_threshold_governs_clearing_when_set() {
        let mut d = dest(4, 2);
        for _ in 0..4 {
            d.bind(false);
        }
        assert!(d.overloaded);
        d.unbind(false, true); // 3
        d.unbind(false, true); // 2, not < 2
        assert!(d.overloaded);
        d.unbind(false, true); // 1 < 2
        assert!(!d.overloaded);
    }

    #[test]
    fn templates_count_as_persistent_not_toward_thresholds() {
        let mut d = dest(1, 0);
        d.bind(true);
        assert_eq!((d.persistconns, d.inactconns, d.overloaded), (1, 0, false));
        d.bind(false);
        assert!(d.overloaded);
        d.move_active(false, true);
        assert_eq!((d.activeconns, d.inactconns), (1, 0));
        d.unbind(false, false);
        assert_eq!((d.activeconns, d.refs()), (0, 1));
    }
}
