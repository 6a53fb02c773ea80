//! Never queue (`net/netfilter/ipvs/ip_vs_nq.c`).
//!
//! Rule: scan in list order skipping overloaded and weight-0 dests; the first
//! dest with `activeconns == 0` is returned at once (idle server first).
//! Otherwise the result is SED's: the smallest `(activeconns + 1) / weight`,
//! replacing the choice only when `loh * dw > doh * lw` (ties keep the earlier
//! dest). No dest → `None`.

use crate::DestView;
use crate::common::mul_gt;
use crate::sed::sed_overhead;

/// `ip_vs_nq_schedule`.
#[inline]
pub(crate) fn schedule<D: DestView>(dests: &[D]) -> Option<usize> {
    let mut least: Option<(usize, i64, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded() || d.weight() == 0 {
            continue;
        }
        if d.activeconns() == 0 {
            return Some(i);
        }
        let doh = sed_overhead(d);
        let dw = d.weight() as i64;
        match least {
            Some((_, loh, lw)) if !mul_gt(loh, dw, doh, lw) => {}
            _ => least = Some((i, doh, dw)),
        }
    }
    least.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn idle_server_first_even_if_slow() {
        // C is idle (active 0, inactive ignored) with weight 1: returned even
        // though B (w 100, 1 active: 2/100) has the shorter expected delay.
        let d = [
            TestDest::new(1, 10).conns(5, 0),
            TestDest::new(2, 100).conns(1, 0),
            TestDest::new(3, 1).conns(0, 50),
        ];
        assert_eq!(schedule(&d), Some(2));
    }

    #[test]
    fn sed_when_nobody_idle() {
        // A: (5+1)/10 = 0.6, B: (1+1)/100 = 0.02 -> B. 6*100 > 2*10.
        let d = [
            TestDest::new(1, 10).conns(5, 0),
            TestDest::new(2, 100).conns(1, 0),
        ];
        assert_eq!(schedule(&d), Some(1));
        // Idle but quiescent or overloaded dests are not taken.
        let d = [
            TestDest::new(1, 0),
            TestDest::new(2, 5).with_overload(),
            TestDest::new(3, 1).conns(3, 0),
        ];
        assert_eq!(schedule(&d), Some(2));
        assert_eq!(schedule(&d[..2]), None);
    }
}
