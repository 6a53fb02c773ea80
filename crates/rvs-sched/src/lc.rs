//! Least-connection (`net/netfilter/ipvs/ip_vs_lc.c`).
//!
//! Rule: the dest with the smallest `ip_vs_dest_conn_overhead`
//! (`activeconns << 8 + inactconns`), ignoring weights except that dests with
//! weight 0 (quiescent) are skipped, as are overloaded ones. The scan is in
//! list order and only a strictly smaller overhead replaces the current
//! choice, so ties go to the earliest dest. No dest → `None`.

use crate::DestView;
use crate::common::conn_overhead;

/// `ip_vs_lc_schedule`.
#[inline]
pub(crate) fn schedule<D: DestView>(dests: &[D]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded() || d.weight() == 0 {
            continue;
        }
        let doh = conn_overhead(d);
        match least {
            Some((_, loh)) if doh >= loh => {}
            _ => least = Some((i, doh)),
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn smallest_overhead_weights_ignored() {
        // overheads: A = 1<<8 + 300 = 556, B = 2<<8 + 0 = 512, C = 0<<8 + 600 = 600.
        // B has the smallest overhead although C has more weight and fewer active.
        let d = [
            TestDest::new(1, 1).conns(1, 300),
            TestDest::new(2, 1).conns(2, 0),
            TestDest::new(3, 100).conns(0, 600),
        ];
        assert_eq!(schedule(&d), Some(1));
    }

    #[test]
    fn ties_first_skip_quiescent_and_overloaded() {
        let d = [
            TestDest::new(1, 0),                 // quiescent, 0 conns: skipped
            TestDest::new(2, 1).with_overload(), // skipped
            TestDest::new(3, 1).conns(0, 4),
            TestDest::new(4, 1).conns(0, 4), // tie with C -> C
        ];
        assert_eq!(schedule(&d), Some(2));
        assert_eq!(schedule(&d[..2]), None);
    }
}
