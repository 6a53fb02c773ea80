//! Weighted least-connection (`net/netfilter/ipvs/ip_vs_wlc.c`).
//!
//! Rule: load = `ip_vs_dest_conn_overhead` / weight, where overhead is
//! `activeconns << 8 + inactconns`. The starting point is the first dest (in
//! list order) that is not overloaded (`IP_VS_DEST_F_OVERLOAD`) and has
//! weight > 0; every later non-overloaded dest replaces the current choice
//! when `loh * dw > doh * lw` (the kernel compares 64-bit products, no
//! division). Ties keep the earlier dest; a weight-0 dest can never win (its
//! product `loh * 0` is never greater). No dest → `None`. A linear scan, as
//! the kernel's.

use crate::DestView;

/// `ip_vs_wlc_schedule`.
#[inline]
pub(crate) fn schedule<D: DestView>(dests: &[D]) -> Option<usize> {
    crate::common::wlc(dests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn weighted_least_load_wins() {
        // overheads: A = 2<<8 + 10 = 522, B = 1<<8 + 0 = 256, C = 3<<8 = 768
        // weights:   A = 1,               B = 1,             C = 4
        // start A (loh 522, lw 1); B: 522*1 > 256*1 -> B (256, 1);
        // C: 256*4 = 1024 > 768*1 = 768 -> C.
        let d = [
            TestDest::new(1, 1).conns(2, 10),
            TestDest::new(2, 1).conns(1, 0),
            TestDest::new(3, 4).conns(3, 0),
        ];
        assert_eq!(schedule(&d), Some(2));
    }

    #[test]
    fn ties_keep_first_and_skip_quiescent_overloaded() {
        // A quiescent (w 0) is not a starting point; B starts (0 conns);
        // C overloaded is skipped; D ties B (0*1 > 0*1 false) -> B.
        let d = [
            TestDest::new(1, 0),
            TestDest::new(2, 1),
            TestDest::new(3, 5).with_overload(),
            TestDest::new(4, 1),
        ];
        assert_eq!(schedule(&d), Some(1));
        // later weight-0 dest with no connections: loh*0 = 0 > 0*w false.
        let d = [TestDest::new(1, 1).conns(5, 0), TestDest::new(2, 0)];
        assert_eq!(schedule(&d), Some(0));
    }

    #[test]
    fn none_when_nothing_available() {
        let d = [TestDest::new(1, 0), TestDest::new(2, 3).with_overload()];
        assert_eq!(schedule(&d), None);
        assert_eq!(schedule::<TestDest>(&[]), None);
    }
}
