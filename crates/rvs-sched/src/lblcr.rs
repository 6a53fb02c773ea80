//! Locality-based least-connection with replication
//! (`net/netfilter/ipvs/ip_vs_lblcr.c`).
//!
//! Table: destination address (`SchedInput::daddr`) → a *set* of dests with
//! its `lastmod` time, see [`crate::loctab`] for buckets, bounds and garbage
//! collection (`lblcr_expiration`, default 24 h). New members are linked at
//! the head of the set, so sets are scanned newest first.
//!
//! Rule, on a hit (entry `lastuse` becomes now):
//! 1. `dest` = the set's weighted least-connection member
//!    (`ip_vs_dest_set_min`): the first member that is not overloaded and
//!    has weight > 0, then any later non-overloaded member with
//!    `loh * dw > doh * lw`.
//! 2. If the set has more than one member and `now > lastmod + expiration`,
//!    the most loaded member (`ip_vs_dest_set_max`: the first with weight >
//!    0, replaced when `moh * dw < doh * mw` by a member with weight > 0) is
//!    removed and `lastmod` becomes now (even if it was `dest`, which is
//!    still used below).
//! 3. If `dest` exists and is not overloaded in lblc's sense (`activeconns >
//!    weight` while some dest has `activeconns * 2 < weight`), it is
//!    returned.
//! 4. Else the service-wide WLC dest is chosen (`None` if none), added to the
//!    set if not already a member (`lastmod` = now on a real insertion) and
//!    returned.
//!
//! On a miss the WLC dest is chosen and a new entry with the set `{dest}`
//! is created (not when the table is at its hard cap).
//!
//! Deleted dests: the kernel keeps them in sets (not
//! `IP_VS_DEST_F_AVAILABLE`, so never chosen by step 1, but still counted in
//! the set size and candidates for step 2 with their decaying counters).
//! We cannot see a deleted dest's counters, so [`Lblcr::update`] drops
//! deleted dests from every set, leaving `lastmod` unchanged.

use std::time::Duration;

use rvs_types::Instant;

use crate::common::{IdIndex, conn_overhead, mul_gt, wlc};
use crate::lblc::is_overloaded;
use crate::loctab::LocTable;
use crate::{DestView, SchedInput};

/// A dest set (`struct ip_vs_dest_set`): member ids, oldest first (scan in
/// reverse for the kernel's newest-first list order).
#[derive(Clone, Debug, Default)]
pub(crate) struct DestSet {
    members: Vec<u32>,
    lastmod: Instant,
}

/// LBLCR state.
#[derive(Clone, Debug)]
pub(crate) struct Lblcr {
    table: LocTable<DestSet>,
    index: IdIndex,
    expiration: Duration,
}

impl Lblcr {
    pub(crate) fn new(expiration: Duration) -> Self {
        Self {
            table: LocTable::new(),
            index: IdIndex::default(),
            expiration,
        }
    }

    pub(crate) fn entries(&self) -> usize {
        self.table.entries()
    }

    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        self.index.rebuild(dests);
        let index = &self.index;
        self.table
            .for_each_val(|set| set.members.retain(|&id| index.contains(id)));
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        self.table.expire(now, self.expiration);
    }

    /// `ip_vs_lblcr_schedule`.
    pub(crate) fn schedule<D: DestView>(
        &mut self,
        dests: &[D],
        input: &SchedInput,
    ) -> Option<usize> {
        let now = input.now;
        self.table.arm(now);
        let Some(s) = self.table.get(&input.daddr) else {
            let i = wlc(dests)?;
            let id = dests[i].id();
            self.table.insert(input.daddr, now, |set| {
                set.members.clear();
                set.members.push(id);
                set.lastmod = now;
            });
            return Some(i);
        };
        let index = &self.index;
        let slot = self.table.slot_mut(s)?;
        slot.lastuse = now;
        let set = &mut slot.val;
        let dest = set_min(set, dests, index);
        if set.members.len() > 1
            && now > set.lastmod + self.expiration
            && let Some(k) = set_max(set, dests, index)
        {
            set.members.remove(k);
            set.lastmod = now;
        }
        if let Some(i) = dest
            && !is_overloaded(&dests[i], dests)
        {
            return Some(i);
        }
        let i = wlc(dests)?;
        let id = dests[i].id();
        if !set.members.contains(&id) {
            set.members.push(id);
            set.lastmod = now;
        }
        Some(i)
    }
}

/// `ip_vs_dest_set_min`: index in `dests` of the set's weighted least-loaded
/// member.
fn set_min<D: DestView>(set: &DestSet, dests: &[D], index: &IdIndex) -> Option<usize> {
    let mut it = set
        .members
        .iter()
        .rev()
        .filter_map(|&id| index.find(dests, id));
    let (mut least, mut lw, mut loh) = loop {
        let i = it.next()?;
        let d = &dests[i];
        if !d.overloaded() && d.weight() > 0 {
            break (i, d.weight() as i64, conn_overhead(d));
        }
    };
    for i in it {
        let d = &dests[i];
        if d.overloaded() {
            continue;
        }
        let doh = conn_overhead(d);
        let dw = d.weight() as i64;
        if mul_gt(loh, dw, doh, lw) {
            least = i;
            lw = dw;
            loh = doh;
        }
    }
    Some(least)
}

/// `ip_vs_dest_set_max`: position in `set.members` of the most loaded
/// member.
fn set_max<D: DestView>(set: &DestSet, dests: &[D], index: &IdIndex) -> Option<usize> {
    let n = set.members.len();
    let mut it = set
        .members
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(k, &id)| index.find(dests, id).map(|i| (k, i)));
    let (mut most, mut mw, mut moh) = loop {
        let (k, i) = it.next()?;
        let d = &dests[i];
        if d.weight() > 0 {
            break (k, d.weight() as i64, conn_overhead(d));
        }
    };
    for (k, i) in it {
        let d = &dests[i];
        let doh = conn_overhead(d);
        let dw = d.weight() as i64;
        // moh/mw < doh/dw  <=>  moh * dw < doh * mw
        if mul_gt(doh, mw, moh, dw) && dw > 0 {
            most = k;
            mw = dw;
            moh = doh;
        }
    }
    debug_assert!(most < n);
    Some(most)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;
    use rvs_types::{Addr, Proto};

    const DAY: Duration = Duration::from_secs(86400);

    fn at(secs: u64) -> SchedInput {
        SchedInput {
            proto: Proto::TCP,
            saddr: Addr::v4([192, 0, 2, 9]),
            sport: 1000,
            daddr: Addr::v4([203, 0, 113, 7]),
            dport: 80,
            now: Instant::from_secs(secs),
        }
    }

    fn members(s: &mut Lblcr) -> Vec<u32> {
        let slot = s.table.get(&at(0).daddr).unwrap();
        s.table.slot_mut(slot).unwrap().val.members.clone()
    }

    #[test]
    fn grows_when_member_overloaded_and_uses_least_loaded_member() {
        let mut d = vec![
            TestDest::new(1, 2),
            TestDest::new(2, 2),
            TestDest::new(3, 2),
        ];
        let mut s = Lblcr::new(DAY);
        s.update(&d);
        // Miss: wlc -> A. Set {A}.
        assert_eq!(s.schedule(&d, &at(0)), Some(0));
        // A: 3 active > weight 2, and B is half-loaded (0*2 < 2): wlc over
        // the service -> B (A: 768*2 > 0*2). Set {B, A}.
        d[0].active = 3;
        assert_eq!(s.schedule(&d, &at(1)), Some(1));
        assert_eq!(members(&mut s), [1, 2]);
        // Set min (newest first: B then A): B (0) vs A: 0*2 > 768*2 no -> B.
        d[1].active = 1;
        assert_eq!(s.schedule(&d, &at(2)), Some(1));
        // B loaded too (3 > 2) while C is half-loaded: set min B (768) vs A
        // (768): tie -> B; B overloaded -> wlc: A 768, B 768, C 0 -> C; set
        // {C, B, A}.
        d[1].active = 3;
        assert_eq!(s.schedule(&d, &at(3)), Some(2));
        assert_eq!(members(&mut s), [1, 2, 3]);
    }

    #[test]
    fn shrinks_most_loaded_after_expiration() {
        let mut d = vec![TestDest::new(1, 2), TestDest::new(2, 2)];
        let exp = Duration::from_secs(100);
        let mut s = Lblcr::new(exp);
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0)); // {A}, lastmod 0
        d[0].active = 3;
        assert_eq!(s.schedule(&d, &at(10)), Some(1)); // {B, A}, lastmod 10
        // At 110: 110 > 10 + 100? no. At 111: yes -> drop the most loaded:
        // newest first B (oh 0) then A (768): 0*2 < 768*2 -> A removed.
        // dest (set min, computed before) = B: not overloaded -> B.
        assert_eq!(s.schedule(&d, &at(110)), Some(1));
        assert_eq!(members(&mut s), [1, 2]);
        assert_eq!(s.schedule(&d, &at(111)), Some(1));
        assert_eq!(members(&mut s), [2]);
        // A single member is never dropped.
        assert_eq!(s.schedule(&d, &at(1000)), Some(1));
        assert_eq!(members(&mut s), [2]);
    }

    #[test]
    fn idle_entry_expires_at_the_full_check_and_a_used_one_stays() {
        let d = vec![TestDest::new(1, 2), TestDest::new(2, 2)];
        let exp = Duration::from_secs(1800);
        let mut s = Lblcr::new(exp);
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0)); // armed: first tick at 60 s
        assert_eq!(s.entries(), 1);
        // Ticks every 60 s; the 30th (1800 s) is the full check, which
        // removes the entry last used at 0 (1800 >= 0 + 1800).
        for k in 1..30u64 {
            s.expire(Instant::from_secs(k * 60));
            assert_eq!(s.entries(), 1, "gone early at {} s", k * 60);
        }
        s.expire(Instant::from_secs(1800));
        assert_eq!(s.entries(), 0);
        // A new entry used at 1801 s and again at 3000 s survives the next
        // full check (3600 s < 3000 + 1800) and keeps its set.
        assert_eq!(s.schedule(&d, &at(1801)), Some(0));
        assert_eq!(s.schedule(&d, &at(3000)), Some(0));
        for k in 31..=60u64 {
            s.expire(Instant::from_secs(k * 60));
        }
        assert_eq!(s.entries(), 1);
        assert_eq!(members(&mut s), [1]);
        // Unused after 3000 s: gone at the full check of 5400 s.
        for k in 61..=90u64 {
            s.expire(Instant::from_secs(k * 60));
        }
        assert_eq!(s.entries(), 0);
    }

    #[test]
    fn deleted_members_dropped_and_quiescent_skipped() {
        let mut d = vec![TestDest::new(1, 2), TestDest::new(2, 2)];
        let mut s = Lblcr::new(DAY);
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0));
        d[0].active = 3;
        assert_eq!(s.schedule(&d, &at(1)), Some(1)); // {B, A}
        d.remove(1); // delete B
        s.update(&d);
        assert_eq!(members(&mut s), [1]);
        // A: 3 > 2 but nobody is half-loaded -> A kept.
        assert_eq!(s.schedule(&d, &at(2)), Some(0));
        // A quiescent: set min finds nothing; wlc finds nothing -> None.
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &at(3)), None);
        assert_eq!(s.entries(), 1);
    }
}
