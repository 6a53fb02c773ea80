//! Weighted random twos choice (`net/netfilter/ipvs/ip_vs_twos.c`,
//! "power of two choices", Mitzenmacher).
//!
//! Rule: `total` = sum of the weights of dests that are not overloaded and
//! have weight > 0 (none → `None`). Two random numbers `r1`, `r2` are drawn
//! uniformly in `[0, total]` (`random % (total + 1)`). Walking those dests in
//! list order, each subtracts its weight from both; `choice1` is the first
//! dest where `r1 <= 0`, `choice2` the first where `r2 <= 0` (so the first
//! dest is picked with odds `(w + 1) / (total + 1)`, later ones `w / (total +
//! 1)`). The result is `choice2` when `w2 * overhead1 > w1 * overhead2`
//! (overhead = `activeconns << 8 + inactconns`), else `choice1`.
//!
//! The kernel draws from `get_random_u32()`; here a SplitMix64 generator
//! seeded from [`crate::SchedParams::seed`] supplies the same uniform 32-bit
//! values, reproducibly.

use crate::DestView;
use crate::common::{conn_overhead, mul_gt};

/// Twos state: the random generator.
#[derive(Clone, Debug)]
pub(crate) struct Twos {
    rng: SplitMix64,
}

impl Twos {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
        }
    }

    /// `ip_vs_twos_schedule`.
    #[inline]
    pub(crate) fn schedule<D: DestView>(&mut self, dests: &[D]) -> Option<usize> {
        let r1 = self.rng.next_u32();
        let r2 = self.rng.next_u32();
        pick(dests, r1, r2)
    }
}

/// The choice for the random draws `r1`, `r2` (before the modulo).
#[inline]
pub(crate) fn pick<D: DestView>(dests: &[D], r1: u32, r2: u32) -> Option<usize> {
    let mut total: i64 = 0;
    let mut choice1 = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.overloaded() && d.weight() > 0 {
            total += d.weight() as i64;
            choice1 = Some(i);
        }
    }
    let mut choice1 = choice1?;
    let total = total + 1;
    let mut rw1 = r1 as i64 % total;
    let mut rw2 = r2 as i64 % total;
    let (mut w1, mut w2) = (-1i64, -1i64);
    let (mut oh1, mut oh2) = (0i64, 0i64);
    let mut choice2 = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded() {
            continue;
        }
        let w = d.weight() as i64;
        if w <= 0 {
            continue;
        }
        rw1 -= w;
        rw2 -= w;
        if rw1 <= 0 && w1 == -1 {
            choice1 = i;
            w1 = w;
            oh1 = conn_overhead(d);
        }
        if rw2 <= 0 && w2 == -1 {
            choice2 = Some(i);
            w2 = w;
            oh2 = conn_overhead(d);
        }
        if w1 != -1 && w2 != -1 {
            break;
        }
    }
    match choice2 {
        Some(c2) if mul_gt(w2, oh1, w1, oh2) => Some(c2),
        _ => Some(choice1),
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[inline]
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;

    #[test]
    fn draws_map_to_weight_ranges() {
        // Weights 2, 3 (A, B); total = 5 + 1 = 6; r in [0, 5].
        // r = 0: A (0-2 <= 0) ; 1: A ; 2: A (2-2 = 0) ; 3: B (3-2 = 1 > 0, 1-3 <= 0)
        // 4: B ; 5: B (5-2-3 = 0). A gets 3/6, B 3/6 (first dest gets w + 1).
        let d = [TestDest::new(1, 2), TestDest::new(2, 3)];
        for (r, want) in [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 0),
            (9, 1),
        ] {
            // same draw twice: choice1 == choice2, equal load -> choice1.
            assert_eq!(pick(&d, r, r), Some(want), "r = {r}");
        }
    }

    #[test]
    fn less_loaded_of_the_two_normalised_by_weight() {
        // A: w 2, active 1 (overhead 256); B: w 3, active 1 (256).
        // r1 -> A, r2 -> B: w2 * oh1 = 3 * 256 > w1 * oh2 = 2 * 256 -> B.
        let d = [
            TestDest::new(1, 2).conns(1, 0),
            TestDest::new(2, 3).conns(1, 0),
        ];
        assert_eq!(pick(&d, 0, 4), Some(1));
        // r1 -> B, r2 -> A: w2 * oh1 = 2 * 256 > 3 * 256? no -> choice1 = B.
        assert_eq!(pick(&d, 4, 0), Some(1));
        // B much busier: B active 4 (1024): r1 -> B, r2 -> A: 2 * 1024 > 3 * 256 -> A.
        let d = [
            TestDest::new(1, 2).conns(1, 0),
            TestDest::new(2, 3).conns(4, 0),
        ];
        assert_eq!(pick(&d, 4, 0), Some(0));
    }

    #[test]
    fn skips_quiescent_overloaded_and_empty() {
        // A w0, B overloaded, C w1: total = 1 + 1 = 2; every draw -> C.
        let d = [
            TestDest::new(1, 0),
            TestDest::new(2, 5).with_overload(),
            TestDest::new(3, 1),
        ];
        for r in 0..5 {
            assert_eq!(pick(&d, r, r + 1), Some(2));
        }
        assert_eq!(pick(&d[..2], 0, 0), None);
        assert_eq!(pick::<TestDest>(&[], 0, 0), None);
    }

    #[test]
    fn splitmix_reference_values() {
        // SplitMix64 with seed 0: first output 0xE220A8397B1DCDAF (the
        // reference sequence published with the algorithm, e.g. in Vigna's
        // splitmix64.c).
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
