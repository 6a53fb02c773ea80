//! Round robin (`net/netfilter/ipvs/ip_vs_rr.c`).
//!
//! Rule: the kernel keeps a list position (`svc->sched_data`): the last
//! chosen dest, or the list head at start. A schedule call scans from the dest
//! after that position to the end of the list, then from the start up to and
//! including the position itself, and takes the first dest that is not
//! overloaded and has weight > 0; the position moves to it. Weights are
//! otherwise ignored. When nothing qualifies the position is kept and the
//! result is `None`.
//!
//! Updates: adding or editing dests keeps the position (the kernel has no
//! `add_dest`/`upd_dest` hook); deleting the dest at the position moves it to
//! the dest before it, or to the head (`ip_vs_rr_del_dest`).

use crate::DestView;
use crate::common::resolve;

/// Round-robin state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rr {
    /// Ids in the order of the last update (to find a deleted dest's
    /// predecessor).
    ids: Vec<u32>,
    /// Last chosen dest as `(index hint, id)`; `None` is the list head.
    pos: Option<(usize, u32)>,
}

impl Rr {
    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        if let Some((_, id)) = self.pos {
            self.pos = match dests.iter().position(|d| d.id() == id) {
                Some(i) => Some((i, id)),
                None => {
                    // Deleted: step back to the closest surviving predecessor.
                    let old = self.ids.iter().position(|&x| x == id).unwrap_or(0);
                    self.ids[..old].iter().rev().find_map(|&prev| {
                        dests.iter().position(|d| d.id() == prev).map(|i| (i, prev))
                    })
                }
            };
        }
        self.ids.clear();
        self.ids.extend(dests.iter().map(|d| d.id()));
    }

    #[inline]
    pub(crate) fn schedule<D: DestView>(&mut self, dests: &[D]) -> Option<usize> {
        let n = dests.len();
        let start = match self.pos.and_then(|(hint, id)| resolve(dests, hint, id)) {
            Some(i) => i + 1,
            None => 0,
        };
        for k in 0..n {
            let i = (start + k) % n;
            let d = &dests[i];
            if !d.overloaded() && d.weight() > 0 {
                self.pos = Some((i, d.id()));
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    fn run(rr: &mut Rr, d: &[TestDest], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| rr.schedule(d)).collect()
    }

    #[test]
    fn cycles_skipping_quiescent_and_overloaded() {
        // A(w1) B(w0) C(w5, overloaded) D(w3): weights beyond >0 do not matter.
        let d = [
            TestDest::new(1, 1),
            TestDest::new(2, 0),
            TestDest::new(3, 5).with_overload(),
            TestDest::new(4, 3),
        ];
        let mut rr = Rr::default();
        rr.update(&d);
        // head -> A; after A: B(w0) C(ovl) D -> D; after D: wrap to A.
        let s = run(&mut rr, &d, 5);
        assert_eq!(s, [Some(0), Some(3), Some(0), Some(3), Some(0)]);
    }

    #[test]
    fn continues_after_last_choice_across_updates() {
        let mut d = vec![
            TestDest::new(1, 1),
            TestDest::new(2, 1),
            TestDest::new(3, 1),
        ];
        let mut rr = Rr::default();
        rr.update(&d);
        assert_eq!(run(&mut rr, &d, 2), [Some(0), Some(1)]); // A, B
        // Add D at the end: position stays at B, so next are C, D, A.
        d.push(TestDest::new(4, 1));
        rr.update(&d);
        assert_eq!(run(&mut rr, &d, 3), [Some(2), Some(3), Some(0)]);
        // position = A (index 0). Delete A: the kernel moves to A's
        // predecessor, the head, so the next choice is the first dest (B).
        d.remove(0);
        rr.update(&d);
        assert_eq!(rr.schedule(&d), Some(0)); // B
        // position = B. Delete C (not the position): next is D.
        d.remove(1);
        rr.update(&d);
        assert_eq!(d[1].id, 4);
        assert_eq!(rr.schedule(&d), Some(1)); // D
        // position = D (index 1, last). Delete D: predecessor B, next wraps to B.
        d.remove(1);
        rr.update(&d);
        assert_eq!(rr.schedule(&d), Some(0));
    }

    #[test]
    fn last_dest_is_checked_last_and_none_keeps_position() {
        let mut d = vec![TestDest::new(1, 1), TestDest::new(2, 1)];
        let mut rr = Rr::default();
        rr.update(&d);
        assert_eq!(rr.schedule(&d), Some(0));
        // B becomes overloaded: scan B (no), A (the position itself) -> A.
        d[1].overloaded = true;
        assert_eq!(rr.schedule(&d), Some(0));
        d[0].weight = 0;
        assert_eq!(rr.schedule(&d), None);
        // Recovery: position still A, so B comes first.
        d[0].weight = 1;
        d[1].overloaded = false;
        assert_eq!(rr.schedule(&d), Some(1));
        assert_eq!(rr.schedule::<TestDest>(&[]), None);
    }
}
