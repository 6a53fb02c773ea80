//! Overflow-connection (`net/netfilter/ipvs/ip_vs_ovf.c`).
//!
//! Rule: skip dests that are overloaded, have weight 0, or whose
//! `activeconns > weight`; among the rest take the highest weight (strictly
//! higher replaces, so the first in list order wins ties). All traffic thus
//! goes to the heaviest dest until its active connections exceed its
//! weight, then overflows to the next. No dest → `None`.

use crate::DestView;

/// `ip_vs_ovf_schedule`.
#[inline]
pub(crate) fn schedule<D: DestView>(dests: &[D]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight();
        if d.overloaded() || d.activeconns() as i64 > w as i64 || w == 0 {
            continue;
        }
        match best {
            Some((_, hw)) if w <= hw => {}
            _ => best = Some((i, w)),
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn overflows_when_active_exceeds_weight() {
        // A: w 3, active 3 -> 3 > 3 false: still eligible, highest -> A.
        let d = [TestDest::new(1, 3).conns(3, 0), TestDest::new(2, 2)];
        assert_eq!(schedule(&d), Some(0));
        // A: active 4 > 3 -> overflow to B.
        let d = [TestDest::new(1, 3).conns(4, 0), TestDest::new(2, 2)];
        assert_eq!(schedule(&d), Some(1));
        // ties: first; quiescent and overloaded skipped.
        let d = [
            TestDest::new(1, 0),
            TestDest::new(2, 9).with_overload(),
            TestDest::new(3, 2).conns(2, 0),
            TestDest::new(4, 2),
        ];
        assert_eq!(schedule(&d), Some(2));
        let d = [TestDest::new(1, 1).conns(2, 0), TestDest::new(2, 0)];
        assert_eq!(schedule(&d), None);
    }
}
