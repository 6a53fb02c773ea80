//! Destination hashing (`net/netfilter/ipvs/ip_vs_dh.c`).
//!
//! Table: 256 buckets (`IP_VS_DH_TAB_BITS` 8). `ip_vs_dh_reassign` deals the
//! dests round-robin over the buckets in list order (bucket i gets dest
//! `i % n`), whatever their weights; an empty service leaves every bucket
//! empty. Rebuilt on every update.
//!
//! Rule: bucket = `hash_32(fold(daddr), 8)` where `fold` is the host-order
//! IPv4 address or the XOR of the four IPv6 words. The bucket's dest is
//! returned unless it has weight <= 0 (quiescent) or is overloaded, in which
//! case the result is `None`: dh never falls back to another dest.

use crate::common::{addr_fold, hash_32};
use crate::{DestView, SchedInput};

/// `IP_VS_DH_TAB_BITS`.
const TAB_BITS: u32 = 8;
const NONE: u32 = u32::MAX;

/// DH state: bucket → dest index, with the ids seen at the last update.
#[derive(Clone, Debug)]
pub(crate) struct Dh {
    buckets: Vec<u32>,
    ids: Vec<u32>,
}

impl Dh {
    pub(crate) fn new() -> Self {
        Self {
            buckets: vec![NONE; 1 << TAB_BITS],
            ids: Vec::new(),
        }
    }

    /// `ip_vs_dh_reassign`.
    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        self.ids.clear();
        self.ids.extend(dests.iter().map(|d| d.id()));
        let n = dests.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if n == 0 { NONE } else { (i % n) as u32 };
        }
    }

    /// `ip_vs_dh_schedule`.
    #[inline]
    pub(crate) fn schedule<D: DestView>(&self, dests: &[D], input: &SchedInput) -> Option<usize> {
        let h = hash_32(addr_fold(&input.daddr), TAB_BITS) as usize;
        let i = *self.buckets.get(h)? as usize;
        let id = *self.ids.get(i)?;
        let d = dests.get(i).filter(|d| d.id() == id)?;
        if d.weight() <= 0 || d.overloaded() {
            return None;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;
    use rvs_types::{Addr, Instant, Proto};

    fn input(daddr: Addr) -> SchedInput {
        SchedInput {
            proto: Proto::TCP,
            saddr: Addr::v4([192, 0, 2, 1]),
            sport: 40000,
            daddr,
            dport: 80,
            now: Instant::ZERO,
        }
    }

    #[test]
    fn bucket_from_hash_32_and_round_robin_fill() {
        // 3 dests: bucket i -> dest i % 3.
        // daddr 0.0.0.1: hash_32(1, 8) = 0x61C88647 >> 24 = 0x61 = 97; 97 % 3 = 1.
        // daddr 10.0.0.1: hash_32(0x0A000001, 8) = 0x27 = 39 (see common); 39 % 3 = 0.
        let d = [
            TestDest::new(1, 1),
            TestDest::new(2, 1),
            TestDest::new(3, 1),
        ];
        let mut dh = Dh::new();
        dh.update(&d);
        assert_eq!(dh.schedule(&d, &input(Addr::v4([0, 0, 0, 1]))), Some(1));
        assert_eq!(dh.schedule(&d, &input(Addr::v4([10, 0, 0, 1]))), Some(0));
        // Weights do not matter for the fill: same with weight 100 on dest 0.
        let d2 = [
            TestDest::new(1, 100),
            TestDest::new(2, 1),
            TestDest::new(3, 1),
        ];
        dh.update(&d2);
        assert_eq!(dh.schedule(&d2, &input(Addr::v4([0, 0, 0, 1]))), Some(1));
    }

    #[test]
    fn unavailable_bucket_dest_gives_none() {
        let mut d = [
            TestDest::new(1, 1),
            TestDest::new(2, 0),
            TestDest::new(3, 1),
        ];
        let mut dh = Dh::new();
        dh.update(&d);
        // 0.0.0.1 -> dest 1 which is quiescent: no fallback.
        assert_eq!(dh.schedule(&d, &input(Addr::v4([0, 0, 0, 1]))), None);
        d[1].weight = 1;
        d[1].overloaded = true;
        assert_eq!(dh.schedule(&d, &input(Addr::v4([0, 0, 0, 1]))), None);
        let empty: [TestDest; 0] = [];
        dh.update(&empty);
        assert_eq!(dh.schedule(&empty, &input(Addr::v4([0, 0, 0, 1]))), None);
    }
}
