//! Source hashing (`net/netfilter/ipvs/ip_vs_sh.c`).
//!
//! Table: `2^sh_tab_bits` buckets (`CONFIG_IP_VS_SH_TAB_BITS`, default 256).
//! `ip_vs_sh_reassign` walks the dests in list order, giving each `weight`
//! consecutive buckets (at least one: a dest with weight <= 0 still gets one
//! bucket), and wraps to the first dest until the table is full. Rebuilt on
//! every update.
//!
//! Hash (`ip_vs_sh_hashkey`): `(offset + hash_32(port + fold(saddr), bits))
//! & mask`, with `fold` the host-order IPv4 address or the XOR of the four
//! IPv6 words, and `port` the client's source port when the service has
//! `sh-port` (SCHED2) and the protocol is TCP, UDP or SCTP, else 0.
//!
//! Rule: the bucket at offset 0 is taken unless its dest is unavailable
//! (weight <= 0 or overloaded) → `None`. With `sh-fallback` (SCHED1), an
//! unavailable dest makes the kernel probe `roffset = (k + ihash) % size` for
//! k = 0.. size−1, looking at bucket `hashkey(roffset)`, and take the first
//! available dest.

use crate::common::{EMPTY_SLOT, addr_fold, hash_32, hash_port, slot_dest};
use crate::{DestView, SchedFlags, SchedInput};

const NONE: u32 = EMPTY_SLOT;

/// SH state: bucket → dest index, with the ids seen at the last update.
#[derive(Clone, Debug)]
pub(crate) struct Sh {
    bits: u32,
    fallback: bool,
    port: bool,
    buckets: Vec<u32>,
    ids: Vec<u32>,
}

impl Sh {
    pub(crate) fn new(tab_bits: u8, flags: SchedFlags) -> Self {
        let bits = u32::from(tab_bits).clamp(4, 20);
        Self {
            bits,
            fallback: flags.contains(SchedFlags::SH_FALLBACK),
            port: flags.contains(SchedFlags::SH_PORT),
            buckets: vec![NONE; 1 << bits],
            ids: Vec::new(),
        }
    }

    pub(crate) fn set_flags(&mut self, flags: SchedFlags) {
        self.fallback = flags.contains(SchedFlags::SH_FALLBACK);
        self.port = flags.contains(SchedFlags::SH_PORT);
    }

    /// `ip_vs_sh_reassign`.
    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        self.ids.clear();
        self.ids.extend(dests.iter().map(|d| d.id()));
        if dests.is_empty() {
            self.buckets.fill(NONE);
            return;
        }
        let mut p = 0usize;
        let mut d_count = 0i64;
        for b in self.buckets.iter_mut() {
            *b = p as u32;
            d_count += 1;
            if d_count >= dests[p].weight() as i64 {
                p = (p + 1) % dests.len();
                d_count = 0;
            }
        }
    }

    #[inline(always)]
    fn hashkey(&self, fold: u32, port: u16, offset: u32) -> usize {
        let mask = (1u32 << self.bits) - 1;
        (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(fold), self.bits)) & mask)
            as usize
    }

    /// `ip_vs_sh_schedule` (with `ip_vs_sh_get` / `ip_vs_sh_get_fallback`).
    #[inline]
    pub(crate) fn schedule<D: DestView>(&self, dests: &[D], input: &SchedInput) -> Option<usize> {
        let fold = addr_fold(&input.saddr);
        let port = hash_port(self.port, input);
        let ihash = self.hashkey(fold, port, 0);
        match slot_dest(&self.buckets, &self.ids, dests, ihash) {
            Ok(Some(i)) => return Some(i),
            Ok(None) if self.fallback => {}
            _ => return None,
        }
        let size = 1usize << self.bits;
        for offset in 0..size {
            let roffset = ((offset + ihash) % size) as u32;
            match slot_dest(
                &self.buckets,
                &self.ids,
                dests,
                self.hashkey(fold, port, roffset),
            ) {
                Ok(Some(i)) => return Some(i),
                Ok(None) => {}
                Err(()) => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;
    use rvs_types::{Addr, Instant, Proto};

    fn input(saddr: Addr, sport: u16, proto: Proto) -> SchedInput {
        SchedInput {
            proto,
            saddr,
            sport,
            daddr: Addr::v4([198, 51, 100, 1]),
            dport: 80,
            now: Instant::ZERO,
        }
    }

    #[test]
    fn weight_tiling() {
        // weights 3, 0, 2 over 16 buckets (bits 4):
        // A A A | B (weight 0 still one bucket) | C C | A A A | B | C C | A A A | B
        let d = [
            TestDest::new(1, 3),
            TestDest::new(2, 0),
            TestDest::new(3, 2),
        ];
        let mut sh = Sh::new(4, SchedFlags::default());
        sh.update(&d);
        let want = [0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 1];
        assert_eq!(sh.buckets, want);
    }

    #[test]
    fn lookup_hash_and_port_flag() {
        // 256 buckets, weights 1,1,1 -> bucket i -> dest i % 3.
        let d = [
            TestDest::new(1, 1),
            TestDest::new(2, 1),
            TestDest::new(3, 1),
        ];
        let mut sh = Sh::new(8, SchedFlags::default());
        sh.update(&d);
        // saddr 0.0.0.1, no port: hash_32(1, 8) = 0x61 = 97 -> 97 % 3 = 1.
        let a = Addr::v4([0, 0, 0, 1]);
        assert_eq!(sh.schedule(&d, &input(a, 1234, Proto::TCP)), Some(1));
        // saddr 10.0.0.1: hash_32(0x0A000001, 8) = 0x27 = 39 -> 0.
        let b = Addr::v4([10, 0, 0, 1]);
        assert_eq!(sh.schedule(&d, &input(b, 1234, Proto::TCP)), Some(0));
        // sh-port: saddr 0.0.0.0 port 1 -> hash_32(0 + 1, 8) = 97 -> dest 1;
        // the same client with port 0 -> hash_32(0, 8) = 0 -> dest 0.
        let mut shp = Sh::new(8, SchedFlags::SH_PORT);
        shp.update(&d);
        let z = Addr::v4([0, 0, 0, 0]);
        assert_eq!(shp.schedule(&d, &input(z, 1, Proto::TCP)), Some(1));
        assert_eq!(shp.schedule(&d, &input(z, 0, Proto::UDP)), Some(0));
        // ICMP has no port: port 0 is hashed even with sh-port.
        assert_eq!(shp.schedule(&d, &input(z, 1, Proto::ICMP)), Some(0));
    }

    #[test]
    fn fallback_probes_from_the_original_hash() {
        // 16 buckets, weights 1,1 -> bucket i -> dest i % 2. Dest 1 quiescent.
        let d = [TestDest::new(1, 1), TestDest::new(2, 0)];
        // saddr 0.0.0.1: hash_32(1, 4) = 0x61C88647 >> 28 = 6 -> bucket 6 ->
        // dest 0 (even buckets): available, no fallback needed.
        // saddr 0.0.0.10: 10 * 0x61C88647 = 0x3_D1D5_3EC6 -> 0xD1D53EC6 >> 28
        // = 13 -> bucket 13 -> dest 1 (quiescent).
        let mut fb0 = Sh::new(4, SchedFlags::SH_FALLBACK);
        fb0.update(&d);
        assert_eq!(
            fb0.schedule(&d, &input(Addr::v4([0, 0, 0, 1]), 0, Proto::TCP)),
            Some(0)
        );
        let mut plain = Sh::new(4, SchedFlags::default());
        plain.update(&d);
        let a = Addr::v4([0, 0, 0, 10]);
        assert_eq!(plain.schedule(&d, &input(a, 0, Proto::TCP)), None);
        // Fallback: ihash = 13; k = 0: roffset 13, bucket (13 + 13) & 15 = 10
        // -> dest 0 available.
        let mut fb = Sh::new(4, SchedFlags::SH_FALLBACK);
        fb.update(&d);
        assert_eq!(fb.schedule(&d, &input(a, 0, Proto::TCP)), Some(0));
        let none = [TestDest::new(1, 0), TestDest::new(2, 0)];
        fb.update(&none);
        assert_eq!(fb.schedule(&none, &input(a, 0, Proto::TCP)), None);
    }
}
