//! Locality-based least-connection (`net/netfilter/ipvs/ip_vs_lblc.c`).
//!
//! Table: destination address (`SchedInput::daddr`) → dest, see
//! [`crate::loctab`] for buckets, bounds and garbage collection
//! (`lblc_expiration`, default 24 h).
//!
//! Rule: on a hit the entry's `lastuse` becomes now and its dest is returned
//! if it still exists (`IP_VS_DEST_F_AVAILABLE`), has weight > 0 and is not
//! "overloaded" in lblc's own sense: `activeconns > weight` while some dest
//! of the service (any, even quiescent or flagged) has `activeconns * 2 <
//! weight` (`is_overloaded`). Note that the kernel does not look at the
//! `IP_VS_DEST_F_OVERLOAD` flag of the cached dest. Otherwise (miss or
//! invalid entry) the weighted least-connection dest is chosen (exactly
//! [`crate::wlc`]'s rule; `None` when there is none, the entry then stays
//! as it is) and the entry is created, or replaced by a new entry at its
//! bucket's head when it pointed elsewhere. When the table is full (our
//! hard cap) the dest is used without caching, as the kernel does when it
//! cannot allocate an entry.

use std::time::Duration;

use rvs_types::Instant;

use crate::common::{IdIndex, wlc};
use crate::loctab::LocTable;
use crate::{DestView, SchedInput};

/// LBLC state.
#[derive(Clone, Debug)]
pub(crate) struct Lblc {
    table: LocTable<u32>,
    index: IdIndex,
    expiration: Duration,
}

/// lblc/lblcr `is_overloaded(dest, svc)`.
#[inline]
pub(crate) fn is_overloaded<D: DestView>(d: &D, dests: &[D]) -> bool {
    (d.activeconns() as i64) > d.weight() as i64
        && dests
            .iter()
            .any(|o| (o.activeconns() as i64) * 2 < o.weight() as i64)
}

impl Lblc {
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

    /// Entries keep their dest id: a deleted dest is simply no longer
    /// found, like the kernel's dest in the trash without
    /// `IP_VS_DEST_F_AVAILABLE`.
    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        self.index.rebuild(dests);
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        self.table.expire(now, self.expiration);
    }

    /// `ip_vs_lblc_schedule`.
    pub(crate) fn schedule<D: DestView>(
        &mut self,
        dests: &[D],
        input: &SchedInput,
    ) -> Option<usize> {
        let now = input.now;
        self.table.arm(now);
        let hit = self.table.get(&input.daddr);
        if let Some(s) = hit {
            let slot = self.table.slot_mut(s)?;
            slot.lastuse = now;
            let id = slot.val;
            if let Some(i) = self.index.find(dests, id) {
                let d = &dests[i];
                if d.weight() > 0 && !is_overloaded(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = wlc(dests)?;
        let id = dests[i].id();
        // ip_vs_lblc_new
        if let Some(s) = hit {
            if self.table.slot_mut(s).is_some_and(|sl| sl.val == id) {
                return Some(i);
            }
            self.table.remove(s);
        }
        self.table.insert(input.daddr, now, |v| *v = id);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;
    use rvs_types::{Addr, Proto};

    fn at(daddr: [u8; 4], secs: u64) -> SchedInput {
        SchedInput {
            proto: Proto::TCP,
            saddr: Addr::v4([192, 0, 2, 9]),
            sport: 1000,
            daddr: Addr::v4(daddr),
            dport: 80,
            now: Instant::from_secs(secs),
        }
    }

    #[test]
    fn sticks_to_cached_dest_until_overloaded_with_a_half_loaded_peer() {
        let mut d = vec![TestDest::new(1, 4), TestDest::new(2, 4)];
        let mut s = Lblc::new(Duration::from_secs(86400));
        s.update(&d);
        // Miss: wlc -> A (tie, first). Cached X -> A.
        assert_eq!(s.schedule(&d, &at([1, 1, 1, 1], 0)), Some(0));
        // A gets loaded; wlc would now pick B, but X stays on A while
        // active (4) <= weight (4).
        d[0].active = 4;
        assert_eq!(s.schedule(&d, &at([1, 1, 1, 1], 1)), Some(0));
        // Another address Y misses: wlc -> B (4<<8 * 4 > 0 * 4).
        assert_eq!(s.schedule(&d, &at([2, 2, 2, 2], 1)), Some(1));
        // A: active 5 > 4, and B (active 0 * 2 < 4) is half-loaded -> re-pick
        // by wlc -> B, and the entry now points at B.
        d[0].active = 5;
        assert_eq!(s.schedule(&d, &at([1, 1, 1, 1], 2)), Some(1));
        d[0].active = 0;
        d[1].active = 1;
        // A is idle again, but X stays on B (1 <= 4).
        assert_eq!(s.schedule(&d, &at([1, 1, 1, 1], 3)), Some(1));
        assert_eq!(s.entries(), 2);
    }

    #[test]
    fn overloaded_but_no_half_loaded_peer_keeps_dest() {
        // A: w 2, active 3 (> 2). B: w 4, active 2 (2*2 < 4? no). A also not
        // half-loaded. So A is kept although "overloaded".
        let mut d = vec![TestDest::new(1, 2), TestDest::new(2, 4).conns(2, 0)];
        let mut s = Lblc::new(Duration::from_secs(86400));
        s.update(&d);
        assert_eq!(s.schedule(&d, &at([9, 9, 9, 9], 0)), Some(0)); // wlc: 0 conns
        d[0].active = 3;
        assert_eq!(s.schedule(&d, &at([9, 9, 9, 9], 1)), Some(0));
        // The IP_VS_DEST_F_OVERLOAD flag of the cached dest is not checked.
        d[0].overloaded = true;
        assert_eq!(s.schedule(&d, &at([9, 9, 9, 9], 1)), Some(0));
    }

    #[test]
    fn quiescent_or_deleted_dest_is_replaced() {
        let mut d = vec![TestDest::new(1, 1), TestDest::new(2, 1)];
        let mut s = Lblc::new(Duration::from_secs(86400));
        s.update(&d);
        assert_eq!(s.schedule(&d, &at([5, 5, 5, 5], 0)), Some(0));
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &at([5, 5, 5, 5], 1)), Some(1));
        // Now delete B (the cached one): A is quiescent -> no dest, entry stays.
        d.remove(1);
        s.update(&d);
        assert_eq!(s.schedule(&d, &at([5, 5, 5, 5], 2)), None);
        assert_eq!(s.entries(), 1);
        d.push(TestDest::new(3, 1));
        s.update(&d);
        assert_eq!(s.schedule(&d, &at([5, 5, 5, 5], 3)), Some(1));
        assert_eq!(s.entries(), 1);
    }

    #[test]
    fn expiry_uses_lastuse() {
        let d = vec![TestDest::new(1, 1)];
        let exp = Duration::from_secs(1800);
        let mut s = Lblc::new(exp);
        s.update(&d);
        s.schedule(&d, &at([7, 7, 7, 7], 0)); // armed: first tick at 60 s
        // Ticks every 60 s; the 30th (at 1800 s) is a full check.
        for k in 1..30u64 {
            s.expire(Instant::from_secs(k * 60));
        }
        // The full check at 1800 s removes the entry last used at 0.
        s.expire(Instant::from_secs(1800));
        assert_eq!(s.entries(), 0);
        // An entry used at 1801 s survives the next full check (the 30th
        // tick after, at 3600 s): 3600 < 1801 + 1800.
        s.schedule(&d, &at([7, 7, 7, 7], 1801));
        for k in 31..=60u64 {
            s.expire(Instant::from_secs(k * 60));
        }
        assert_eq!(s.entries(), 1);
    }
}
