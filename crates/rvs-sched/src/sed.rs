//! Shortest expected delay (`net/netfilter/ipvs/ip_vs_sed.c`).
//!
//! Rule: expected delay = `(activeconns + 1) / weight` (inactive connections
//! are ignored). The starting point is the first dest that is not overloaded
//! and has weight > 0; a later non-overloaded dest replaces the choice when
//! `loh * dw > doh * lw` (64-bit products). Ties keep the earlier dest; a
//! weight-0 dest never wins. No dest → `None`.

use crate::DestView;

/// `ip_vs_sed_dest_overhead`: `activeconns + 1`.
#[inline(always)]
pub(crate) fn sed_overhead<D: DestView>(d: &D) -> i64 {
    d.activeconns() as i64 + 1
}

/// `ip_vs_sed_schedule`.
#[inline]
pub(crate) fn schedule<D: DestView>(dests: &[D]) -> Option<usize> {
    crate::common::weighted_least(dests, sed_overhead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn counts_the_incoming_job() {
        // A: w 1, active 0 -> (0+1)/1 = 1.0 ; B: w 3, active 2 -> 3/3 = 1.0 (tie)
        // C: w 5, active 3 -> 4/5 = 0.8 -> C.
        // start A (1,1); B: 1*3 > 3*1? no; C: 1*5 > 4*1 -> yes.
        let d = [
            TestDest::new(1, 1),
            TestDest::new(2, 3).conns(2, 1000),
            TestDest::new(3, 5).conns(3, 0),
        ];
        assert_eq!(schedule(&d), Some(2));
        // wlc would differ: sed ignores inactive conns and adds one job. With
        // A: w1 active 0 and B: w10 active 0 -> A: 1/1, B: 1/10 -> B.
        let d = [TestDest::new(1, 1), TestDest::new(2, 10)];
        assert_eq!(schedule(&d), Some(1));
    }

    #[test]
    fn skips_quiescent_and_overloaded() {
        let d = [
            TestDest::new(1, 0),
            TestDest::new(2, 9).with_overload(),
            TestDest::new(3, 1).conns(7, 0),
        ];
        assert_eq!(schedule(&d), Some(2));
        assert_eq!(schedule(&d[..2]), None);
    }
}
