//! Helpers shared by several schedulers: the kernel's load estimates, its
//! hash functions, and dest lookup by id.

use rvs_types::Addr;

use crate::DestView;

/// `ip_vs_dest_conn_overhead()` (`include/net/ip_vs.h`):
/// `activeconns << 8 + inactconns`, an active connection weighing 256
/// inactive ones. Computed in 64 bits, so it never wraps (the kernel's `int`
/// would from 2^23 active connections on).
#[inline(always)]
pub(crate) fn conn_overhead<D: DestView>(d: &D) -> i64 {
    ((d.activeconns() as i64) << 8) + d.inactconns() as i64
}

/// `a * b > c * d` without overflow: the kernel's `(__s64)loh * w > ...`
/// comparisons, widened so that any `u32` counters and `i32` weights work.
#[inline(always)]
pub(crate) fn mul_gt(a: i64, b: i64, c: i64, d: i64) -> bool {
    // Fast path: all four non-negative and below 2^31 (overheads below 2^31
    // mean fewer than 2^23 active connections), so both products fit in
    // i64. Otherwise widen; the result is the same either way.
    if ((a | b | c | d) as u64) < (1 << 31) {
        return a * b > c * d;
    }
    (a as i128) * (b as i128) > (c as i128) * (d as i128)
}

/// The weighted least-connection choice (`ip_vs_wlc_schedule`, also
/// `__ip_vs_lblc_schedule` and `__ip_vs_lblcr_schedule`): the first dest
/// that is not overloaded and has weight > 0 is the starting point; a later
/// non-overloaded dest replaces it when `loh * dw > doh * lw` (strictly, so
/// ties keep the earlier dest).
#[inline]
pub(crate) fn wlc<D: DestView>(dests: &[D]) -> Option<usize> {
    weighted_least(dests, conn_overhead)
}

/// The kernel's weighted least-overhead scan (wlc, sed): start at the first
/// available dest, then take a dest when `loh * dw > doh * lw`. Written
/// without a data-dependent branch (the choice is a select), because with
/// balanced loads the comparison flips unpredictably and a mispredicted
/// branch per dest dominated the scan (2.8 -> 1.8 us over 1,000 dests).
/// `weighted_least_tests` checks it against the kernel's loop.
#[inline(always)]
pub(crate) fn weighted_least<D: DestView>(dests: &[D], oh: impl Fn(&D) -> i64) -> Option<usize> {
    let mut it = dests.iter().enumerate();
    let (mut least, mut lw, mut loh) = loop {
        let (i, d) = it.next()?;
        if !d.overloaded() && d.weight() > 0 {
            break (i, d.weight() as i64, oh(d));
        }
    };
    for (i, d) in it {
        let doh = oh(d);
        let dw = d.weight() as i64;
        let take = !d.overloaded() & mul_gt(loh, dw, doh, lw);
        least = if take { i } else { least };
        lw = if take { dw } else { lw };
        loh = if take { doh } else { loh };
    }
    Some(least)
}

/// The kernel's `GOLDEN_RATIO_32` (`include/linux/hash.h`).
pub(crate) const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(val, bits)` (`include/linux/hash.h`): the top `bits` bits of
/// `val * GOLDEN_RATIO_32`. `bits` must be in 1..=32.
#[inline(always)]
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The host-order 32-bit fold of an address used by dh, sh, mh, lblc and
/// lblcr: `ntohl(addr->ip)` for IPv4, `ntohl(ip6[0] ^ ip6[1] ^ ip6[2] ^
/// ip6[3])` for IPv6.
#[inline(always)]
pub(crate) fn addr_fold(a: &Addr) -> u32 {
    let o = a.0;
    let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    if a.is_v4() {
        w(12)
    } else {
        w(0) ^ w(4) ^ w(8) ^ w(12)
    }
}

/// `gcd()` of two positive numbers (`lib/math/gcd.c`).
pub(crate) fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Id → index of the dests given to the last `update`, for schedulers that
/// remember dests (by id) across updates.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    /// `(id, index)` sorted by id.
    sorted: Vec<(u32, u32)>,
}

impl IdIndex {
    /// Rebuilds the map from the new dest list.
    pub(crate) fn rebuild<D: DestView>(&mut self, dests: &[D]) {
        self.sorted.clear();
        self.sorted
            .extend(dests.iter().enumerate().map(|(i, d)| (d.id(), i as u32)));
        self.sorted.sort_unstable();
    }

    /// Whether a dest with this id was in the last update.
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.sorted.binary_search_by_key(&id, |e| e.0).is_ok()
    }

    /// The index of dest `id` in `dests`: the index recorded at the last
    /// update when it still holds that id, else a linear search (in case the
    /// engine changed the slice without calling update). Never allocates.
    #[inline]
    pub(crate) fn find<D: DestView>(&self, dests: &[D], id: u32) -> Option<usize> {
        if let Ok(k) = self.sorted.binary_search_by_key(&id, |e| e.0) {
            let i = self.sorted[k].1 as usize;
            if dests.get(i).is_some_and(|d| d.id() == id) {
                return Some(i);
            }
        }
        dests.iter().position(|d| d.id() == id)
    }
}

/// The index of dest `id` given a hint: `hint` when it still holds that id,
/// else a linear search.
#[inline(always)]
pub(crate) fn resolve<D: DestView>(dests: &[D], hint: usize, id: u32) -> Option<usize> {
    if dests.get(hint).is_some_and(|d| d.id() == id) {
        return Some(hint);
    }
    dests.iter().position(|d| d.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_matches_hand_arithmetic() {
        // 1 * 0x61C88647 = 0x61C88647; top 8 bits = 0x61 = 97.
        assert_eq!(hash_32(1, 8), 0x61);
        // 0x0A000001 * 0x61C88647 mod 2^32:
        //   0x0A000000 * 0x61C88647 = 0x61C88647 * 10 << 24 -> low 32 bits:
        //   (0x47 * 0x0A) & 0xff = 0x2C6 & 0xff = 0xC6, so 0xC6000000;
        //   + 0x61C88647 = 0x127C88647 -> 0x27C88647; top 8 bits 0x27 = 39.
        assert_eq!(hash_32(0x0A00_0001, 8), 0x27);
        assert_eq!(hash_32(0, 10), 0);
    }

    #[test]
    fn fold_v4_and_v6() {
        assert_eq!(addr_fold(&Addr::v4([10, 0, 0, 1])), 0x0A00_0001);
        let mut b = [0u8; 16];
        b[0] = 0x20;
        b[1] = 0x01;
        b[15] = 0x05;
        // 0x20010000 ^ 0 ^ 0 ^ 0x00000005
        assert_eq!(addr_fold(&Addr::v6(b)), 0x2001_0005);
    }

    #[test]
    fn gcd_small() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 3), 1);
        assert_eq!(gcd(5, 5), 5);
    }
}

#[cfg(test)]
mod mul_gt_tests {
    use super::mul_gt;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_path_agrees_with_wide_products(
            a in prop_oneof![0i64..1 << 31, 0i64..1 << 41, any::<i32>().prop_map(i64::from)],
            b in prop_oneof![0i64..1 << 31, any::<i32>().prop_map(i64::from)],
            c in prop_oneof![0i64..1 << 31, 0i64..1 << 41, any::<i32>().prop_map(i64::from)],
            d in prop_oneof![0i64..1 << 31, any::<i32>().prop_map(i64::from)],
        ) {
            let wide = i128::from(a) * i128::from(b) > i128::from(c) * i128::from(d);
            prop_assert_eq!(mul_gt(a, b, c, d), wide);
        }
    }
}

#[cfg(test)]
mod weighted_least_tests {
    use super::{conn_overhead, mul_gt, weighted_least};
    use crate::{DestView, TestDest};
    use proptest::prelude::*;

    /// The kernel's loop, as `ip_vs_wlc_schedule` writes it.
    fn kernel_scan(dests: &[TestDest]) -> Option<usize> {
        let mut it = dests.iter().enumerate();
        let (mut least, mut lw, mut loh) = loop {
            let (i, d) = it.next()?;
            if !d.overloaded() && d.weight() > 0 {
                break (i, d.weight() as i64, conn_overhead(d));
            }
        };
        for (i, d) in it {
            if d.overloaded() {
                continue;
            }
            let doh = conn_overhead(d);
            let dw = d.weight() as i64;
            if mul_gt(loh, dw, doh, lw) {
                least = i;
                lw = dw;
                loh = doh;
            }
        }
        Some(least)
    }

    proptest! {
        #[test]
        fn select_scan_agrees_with_the_kernel_scan(
            spec in prop::collection::vec((0i32..5, 0u32..4, 0u32..300, any::<bool>()), 0..23)
        ) {
            let dests: Vec<TestDest> = spec
                .iter()
                .enumerate()
                .map(|(i, (w, a, n, o))| {
                    let d = TestDest::new(i as u32 + 1, *w).conns(*a, *n);
                    if *o && i % 3 == 0 { d.with_overload() } else { d }
                })
                .collect();
            prop_assert_eq!(weighted_least(&dests, conn_overhead), kernel_scan(&dests));
        }
    }
}

/// An empty slot of a hashing scheduler's table (sh buckets, mh lookup).
pub(crate) const EMPTY_SLOT: u32 = u32::MAX;

/// The available dest a hashing scheduler's table slot names (sh, mh):
/// `Err(())` for an empty slot (the kernel stops there), `Ok(None)` for a
/// dest that is quiescent or overloaded, or that `ids` says has changed.
#[inline(always)]
pub(crate) fn slot_dest<D: DestView>(
    slots: &[u32],
    ids: &[u32],
    dests: &[D],
    e: usize,
) -> Result<Option<usize>, ()> {
    let i = *slots.get(e).ok_or(())?;
    if i == EMPTY_SLOT {
        return Err(());
    }
    let i = i as usize;
    let id = *ids.get(i).ok_or(())?;
    let d = dests.get(i).filter(|d| d.id() == id).ok_or(())?;
    Ok((d.weight() > 0 && !d.overloaded()).then_some(i))
}

/// The source port sh and mh mix into their hash: with their `-port`
/// flag and a protocol that has ports, else 0.
#[inline(always)]
pub(crate) fn hash_port(port_flag: bool, input: &crate::SchedInput) -> u16 {
    use rvs_types::Proto;
    if port_flag && matches!(input.proto, Proto::TCP | Proto::UDP | Proto::SCTP) {
        input.sport
    } else {
        0
    }
}
