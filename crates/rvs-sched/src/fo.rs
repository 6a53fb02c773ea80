//! Weighted fail-over (`net/netfilter/ipvs/ip_vs_fo.c`).
//!
//! Rule: the non-overloaded dest with the highest weight; only a strictly
//! higher weight replaces the current choice, so among equal weights the
//! first in list order wins. Weight-0 dests never qualify (the running
//! maximum starts at 0). No dest → `None`. Connection counts are ignored.

use crate::DestView;

/// `ip_vs_fo_schedule`.
#[inline]
pub(crate) fn schedule<D: DestView>(dests: &[D]) -> Option<usize> {
    let mut best = None;
    let mut hw = 0;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight();
        if !d.overloaded() && w > hw {
            best = Some(i);
            hw = w;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn highest_weight_first_on_ties() {
        let d = [
            TestDest::new(1, 5).conns(1000, 0),
            TestDest::new(2, 7).with_overload(),
            TestDest::new(3, 5),
        ];
        // B (7) overloaded; A and C tie at 5 -> A despite its load.
        assert_eq!(schedule(&d), Some(0));
        let d = [TestDest::new(1, 2), TestDest::new(2, 3)];
        assert_eq!(schedule(&d), Some(1));
        let d = [TestDest::new(1, 0), TestDest::new(2, 4).with_overload()];
        assert_eq!(schedule(&d), None);
    }
}
