//! Weighted round robin (`net/netfilter/ipvs/ip_vs_wrr.c`).
//!
//! State (`struct ip_vs_wrr_mark`): a list position `cl` (a dest, or the
//! head), the current weight `cw`, `di` = gcd of all positive weights (1
//! when none), and `mw` = max weight − (di − 1), so that the last pass runs
//! with `cw = 1`.
//!
//! Rule: scan from the dest after `cl` to the end of the list for a dest that
//! is not overloaded and has `weight >= cw`; the first found is chosen and
//! becomes `cl`. Each time the scan reaches the list end, `cw -= di` and the
//! scan restarts at the first dest; when `cw <= 0` it wraps to `mw`. With
//! weights 4, 3, 2 this gives A A B A B C A B C. Weight-0 dests never
//! qualify (`cw >= 1`). The search gives up (`None`, "all destinations are
//! overloaded") once every dest was checked at the last pass (`cw <= di`):
//! the kernel's `last_pass`/`restarted`/`stop` logic, reproduced exactly.
//! `mw == 0` (no positive weight) → `None` at once.
//!
//! Updates (`ip_vs_wrr_dest_changed`): `cl` goes back to the head, `di` and
//! `mw` are recomputed, and `cw` becomes `mw` if it exceeds it or is 0,
//! else it is rounded to the step grid: `(cw / di) * di + 1` when `di > 1`.

use crate::DestView;
use crate::common::{gcd, resolve};

/// WRR state (`struct ip_vs_wrr_mark`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Wrr {
    /// Current position as `(index hint, id)`; `None` is the list head.
    cl: Option<(usize, u32)>,
    cw: i32,
    mw: i32,
    di: i32,
}

impl Wrr {
    /// `ip_vs_wrr_dest_changed` (also `ip_vs_wrr_init_svc`: with `cw == 0`
    /// both set `cw = mw`).
    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        self.cl = None;
        let mut g = 0;
        let mut max = 0;
        for d in dests {
            let w = d.weight();
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            max = max.max(w);
        }
        self.di = if g > 0 { g } else { 1 };
        self.mw = max - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// `ip_vs_wrr_schedule`.
    #[inline]
    pub(crate) fn schedule<D: DestView>(&mut self, dests: &[D]) -> Option<usize> {
        let n = dests.len();
        let cl = self.cl.and_then(|(hint, id)| resolve(dests, hint, id));
        if self.mw <= 0 {
            return None;
        }
        let last = cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        let mut from = cl.map_or(0, |i| i + 1);
        loop {
            for (i, d) in dests.iter().enumerate().take(n).skip(from) {
                if !d.overloaded() && d.weight() >= self.cw {
                    self.cl = Some((i, d.id()));
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some((i, d.id()));
                    return None;
                }
            }
            from = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    fn seq(w: &mut Wrr, d: &[TestDest], n: usize) -> Vec<Option<u32>> {
        (0..n).map(|_| w.schedule(d).map(|i| d[i].id)).collect()
    }

    #[test]
    fn classic_4_3_2_sequence() {
        // di = gcd(4,3,2) = 1, mw = 4, cw = 4.
        // cw=4: A | cw=3: A B | cw=2: A B C | cw=1: A B C | wrap cw=4: A ...
        let d = [
            TestDest::new(1, 4),
            TestDest::new(2, 3),
            TestDest::new(3, 2),
        ];
        let mut w = Wrr::default();
        w.update(&d);
        let ids = seq(&mut w, &d, 12);
        let want = [1, 1, 2, 1, 2, 3, 1, 2, 3, 1, 1, 2];
        assert_eq!(ids, want.map(Some));
    }

    #[test]
    fn gcd_steps_4_2() {
        // di = 2, mw = 4 - (2 - 1) = 3, cw = 3.
        // call 1: A(4>=3) -> A.
        // call 2: B(2>=3 no); end: cw = 1, last_pass (1<=2); from start A(4>=1) -> A.
        // call 3: B(2>=1) -> B.
        // call 4: end: cw = -1 -> 3 (restarted); A(4>=3) -> A. Period A A B.
        let d = [TestDest::new(1, 4), TestDest::new(2, 2)];
        let mut w = Wrr::default();
        w.update(&d);
        assert_eq!(seq(&mut w, &d, 6), [1, 1, 2, 1, 1, 2].map(Some));
    }

    #[test]
    fn quiescent_and_overloaded_skipped() {
        // A(w2) B(w0) C(w2, overloaded) D(w1): di = 1 (gcd 2,2,1), mw = 2.
        // cw=2: A | cw=1: A D | cw=2: A | ...
        let d = [
            TestDest::new(1, 2),
            TestDest::new(2, 0),
            TestDest::new(3, 2).with_overload(),
            TestDest::new(4, 1),
        ];
        let mut w = Wrr::default();
        w.update(&d);
        assert_eq!(seq(&mut w, &d, 6), [1, 1, 4, 1, 1, 4].map(Some));
    }

    #[test]
    fn all_overloaded_is_none_and_recovers() {
        let mut d = vec![TestDest::new(1, 3), TestDest::new(2, 1)];
        let mut w = Wrr::default();
        w.update(&d);
        assert_eq!(w.schedule(&d), Some(0)); // cw=3: A, cl = A
        d[0].overloaded = true;
        d[1].overloaded = true;
        // From A: B no; cw 2; A no B no; cw 1 (last_pass); A B no; cw -> 3,
        // last_pass -> None.
        assert_eq!(w.schedule(&d), None);
        d[1].overloaded = false;
        // cl was left at the head; cw = 3: A(ovl) B(1<3); cw 2: no; cw 1: B.
        assert_eq!(w.schedule(&d), Some(1));
    }

    #[test]
    fn no_positive_weight_is_none() {
        let d = [TestDest::new(1, 0), TestDest::new(2, 0)];
        let mut w = Wrr::default();
        w.update(&d);
        assert_eq!(w.schedule(&d), None);
        assert_eq!(w.schedule::<TestDest>(&[]), None);
    }

    #[test]
    fn update_rounds_cw_to_grid() {
        // weights 6, 4: di = 2, mw = 6 - 1 = 5, cw = 5.
        let mut d = vec![TestDest::new(1, 6), TestDest::new(2, 4)];
        let mut w = Wrr::default();
        w.update(&d);
        assert_eq!((w.cw, w.mw, w.di), (5, 5, 2));
        assert_eq!(w.schedule(&d), Some(0)); // A(6>=5)
        // Weights 6, 3: di = 3, mw = 6 - 2 = 4; cw 5 > 4 -> cw = 4.
        d[1].weight = 3;
        w.update(&d);
        assert_eq!((w.cw, w.mw, w.di), (4, 4, 3));
        // Weights 9, 3 with cw 4: di 3, mw 7; cw <= mw and di > 1 -> (4/3)*3+1 = 4.
        d[0].weight = 9;
        w.update(&d);
        assert_eq!((w.cw, w.mw, w.di), (4, 7, 3));
        assert!(w.cl.is_none());
    }
}
