//! An incremental winner tree for the least-connection family (lc, wlc, sed,
//! nq), giving exactly the kernel's linear-scan answer in O(1) per new
//! connection and O(log n) per counter change.
//!
//! The kernel's scans (`ip_vs_lc_schedule`, `ip_vs_wlc_schedule`,
//! `ip_vs_sed_schedule`, `ip_vs_nq_schedule`) replace their candidate only on
//! a strictly better dest, with exact integer comparisons, so each returns
//! the lowest-positioned available dest that is best under a total order.
//! A tournament tree over dest positions, whose every node holds the winner
//! of its range (ties to the left, i.e. the lower position), has that dest at
//! its root. The engine must report every change of a dest's
//! `activeconns`, `inactconns` or `overloaded` with
//! [`crate::Scheduler::counts_changed`]; weight changes and dest additions
//! and removals arrive through [`crate::Scheduler::update`], which rebuilds
//! the tree. Debug builds check every answer against the linear scan.

use crate::DestView;
use crate::common::{conn_overhead, mul_gt};

/// Below this many dests the linear scan is as fast, and no tree is kept.
pub(crate) const MIN_DESTS: usize = 32;

const NONE: u32 = u32::MAX;

/// The order a tree keeps.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Order {
    /// Least `(active << 8) + inactive`.
    Lc,
    /// Least `((active << 8) + inactive) / weight`.
    Wlc,
    /// Least `(active + 1) / weight`.
    Sed,
    /// The first idle (no active connections) dest, else as sed.
    Nq,
}

/// The winner tree; empty (and unused) for fewer than [`MIN_DESTS`] dests.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeastTree {
    /// Leaves: a power of two, 0 when no tree is kept.
    size: usize,
    /// Dests covered (the rest of the leaves are NONE).
    len: usize,
    /// `nodes[1]` is the root; node `n` has children `2n` and `2n + 1`;
    /// leaves are `size..2 * size`. Each holds a dest position or NONE.
    nodes: Vec<u32>,
}

#[inline(always)]
fn available<D: DestView>(d: &D) -> bool {
    !d.overloaded() && d.weight() > 0
}

/// Whether `r` beats `l` (`l` at a lower position) under `order`: strictly
/// better only, so ties keep the lower position as the kernel's scan does.
#[inline(always)]
fn beats<D: DestView>(order: Order, l: &D, r: &D) -> bool {
    match order {
        Order::Lc => conn_overhead(r) < conn_overhead(l),
        Order::Wlc => mul_gt(
            conn_overhead(l),
            r.weight() as i64,
            conn_overhead(r),
            l.weight() as i64,
        ),
        Order::Sed => sed_beats(l, r),
        Order::Nq => match (l.activeconns() == 0, r.activeconns() == 0) {
            (true, _) => false,
            (false, true) => true,
            (false, false) => sed_beats(l, r),
        },
    }
}

#[inline(always)]
fn sed_beats<D: DestView>(l: &D, r: &D) -> bool {
    let oh = |d: &D| d.activeconns() as i64 + 1;
    mul_gt(oh(l), r.weight() as i64, oh(r), l.weight() as i64)
}

impl LeastTree {
    /// Rebuilds for a new dest set.
    pub(crate) fn rebuild<D: DestView>(&mut self, order: Order, dests: &[D]) {
        if dests.len() < MIN_DESTS {
            self.size = 0;
            self.len = 0;
            self.nodes = Vec::new();
            return;
        }
        let size = dests.len().next_power_of_two();
        self.size = size;
        self.len = dests.len();
        self.nodes.clear();
        self.nodes.resize(2 * size, NONE);
        for (i, d) in dests.iter().enumerate() {
            if available(d) {
                self.nodes[size + i] = i as u32;
            }
        }
        for n in (1..size).rev() {
            self.nodes[n] = self.winner(order, dests, self.nodes[2 * n], self.nodes[2 * n + 1]);
        }
    }

    /// The dest at `pos` changed its counters or overload flag.
    pub(crate) fn changed<D: DestView>(&mut self, order: Order, pos: usize, dests: &[D]) {
        if self.size == 0 || pos >= self.len || dests.len() != self.len {
            return;
        }
        let Some(d) = dests.get(pos) else { return };
        let mut n = self.size + pos;
        self.nodes[n] = if available(d) { pos as u32 } else { NONE };
        while n > 1 {
            n /= 2;
            self.nodes[n] = self.winner(order, dests, self.nodes[2 * n], self.nodes[2 * n + 1]);
        }
    }

    /// `Some(answer)` when a tree is kept for exactly these dests, `None`
    /// when the caller must scan.
    #[inline]
    pub(crate) fn best<D: DestView>(&self, dests: &[D]) -> Option<Option<usize>> {
        if self.size == 0 || dests.len() != self.len {
            return None;
        }
        let root = self.nodes[1];
        Some((root != NONE).then_some(root as usize))
    }

    #[inline(always)]
    fn winner<D: DestView>(&self, order: Order, dests: &[D], l: u32, r: u32) -> u32 {
        match (dests.get(l as usize), dests.get(r as usize)) {
            (None, _) => r,
            (_, None) => l,
            (Some(a), Some(b)) => {
                if beats(order, a, b) {
                    r
                } else {
                    l
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{SchedFlags, SchedInput, SchedKind, SchedParams, Scheduler, TestDest};
    use proptest::prelude::*;
    use rvs_types::{Addr, Instant, Proto};

    fn input() -> SchedInput {
        SchedInput {
            proto: Proto::TCP,
            saddr: Addr::v4([1, 2, 3, 4]),
            sport: 1,
            daddr: Addr::v4([5, 6, 7, 8]),
            dport: 80,
            now: Instant::ZERO,
        }
    }

    /// Each kind's linear scan, which the tree must agree with.
    fn scan(kind: SchedKind, dests: &[TestDest]) -> Option<usize> {
        match kind {
            SchedKind::Lc => crate::lc::schedule(dests),
            SchedKind::Wlc => crate::wlc::schedule(dests),
            SchedKind::Sed => crate::sed::schedule(dests),
            _ => crate::nq::schedule(dests),
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Bind(usize),
        Unbind(usize),
        Activate(usize),
        Overload(usize, bool),
        Weight(usize, i32),
        Add(i32),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..200).prop_map(Op::Bind),
            3 => (0usize..200).prop_map(Op::Unbind),
            2 => (0usize..200).prop_map(Op::Activate),
            1 => ((0usize..200), any::<bool>()).prop_map(|(p, o)| Op::Overload(p, o)),
            1 => ((0usize..200), 0i32..4).prop_map(|(p, w)| Op::Weight(p, w)),
            1 => (0i32..4).prop_map(Op::Add),
            1 => (0usize..200).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn tree_answers_equal_the_kernel_scans(
            kind in prop_oneof![Just(SchedKind::Lc), Just(SchedKind::Wlc), Just(SchedKind::Sed), Just(SchedKind::Nq)],
            n in 20usize..80,
            ops in prop::collection::vec(op(), 1..300),
        ) {
            let mut dests: Vec<TestDest> = (0..n).map(|i| TestDest::new(i as u32, 1 + (i % 3) as i32)).collect();
            let mut next_id = n as u32;
            let mut s = Scheduler::new(kind, SchedFlags::default(), &SchedParams::default());
            s.update(&dests);
            for op in ops {
                let len = dests.len();
                match op {
                    Op::Bind(p) if len > 0 => { let p = p % len; dests[p].inactive += 1; s.counts_changed(p, &dests); }
                    Op::Unbind(p) if len > 0 => { let p = p % len; dests[p].inactive = dests[p].inactive.saturating_sub(1); s.counts_changed(p, &dests); }
                    Op::Activate(p) if len > 0 => { let p = p % len; if dests[p].inactive > 0 { dests[p].inactive -= 1; dests[p].active += 1; } else if dests[p].active > 0 { dests[p].active -= 1; } s.counts_changed(p, &dests); }
                    Op::Overload(p, o) if len > 0 => { let p = p % len; dests[p].overloaded = o; s.counts_changed(p, &dests); }
                    Op::Weight(p, w) if len > 0 => { let p = p % len; dests[p].weight = w; s.update(&dests); }
                    Op::Add(w) => { dests.insert(0, TestDest::new(next_id, w)); next_id += 1; s.update(&dests); }
                    Op::Remove(p) if len > 0 => { dests.remove(p % len); s.update(&dests); }
                    _ => {}
                }
                prop_assert_eq!(s.schedule(&dests, &input()), scan(kind, &dests));
            }
        }
    }
}
