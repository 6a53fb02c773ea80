//! Maglev hashing (`net/netfilter/ipvs/ip_vs_mh.c`, Eisenbud et al.,
//! NSDI'16 §3.4).
//!
//! Table: a lookup table of prime size M (`mh_tab_size`, default 4093).
//! Each dest gets `offset = hsiphash(addr, port; key1) % M` and
//! `skip = hsiphash(addr, port; key2) % (M − 1) + 1`, with the kernel's fixed
//! keys (`2654435761` and `2654446892` in both key words) and the hashed
//! value `v = port + fold(addr)` (4 bytes; fold = host-order IPv4 address or
//! the XOR of the four IPv6 words). `hsiphash` on 64-bit kernels is
//! SipHash-1-3 truncated to 32 bits.
//!
//! Weights: the kernel uses `last_weight`, the latest non-zero weight (set
//! on add even when 0), so quiescing a dest (weight 0) does not change the
//! table. `turns = ((last_weight / gcd) >> rshift)`, or 1 if that is 0 and
//! `last_weight != 0`; `gcd` is over positive last weights and `rshift =
//! max(0, fls(max_last_weight / gcd) − TAB_BITS)` with TAB_BITS =
//! `CONFIG_IP_VS_MH_TAB_INDEX / 2` (6 for 4093). `ip_vs_mh_populate` then
//! walks the dests in list order; each dest with `turns >= 1` claims `turns`
//! slots in a row, each the next free entry of its permutation
//! (`perm += skip mod M`), until all M entries are filled. Dests with
//! `turns == 0` get none; with no positive last weight the table is empty.
//!
//! Rule: entry = `hsiphash(sport_or_0 + fold(saddr); key1) % M`; its dest is
//! returned unless unavailable (weight <= 0 or overloaded) → `None`. The port
//! is hashed only with `mh-port` (SCHED2) for TCP/UDP/SCTP. With
//! `mh-fallback` (SCHED1) an unavailable dest makes the kernel probe
//! `roffset = (k + ihash) % M` for k = 0.., looking at
//! `hsiphash(roffset + port + fold(saddr); key1) % M`, until an available
//! dest (or an empty entry) is met. Lookup is O(1).

use crate::common::{EMPTY_SLOT, addr_fold, gcd, hash_port, slot_dest};
use crate::{DestView, SchedFlags, SchedInput};

const NONE: u32 = EMPTY_SLOT;

/// The kernel's table sizes (`primes[]`), index = `CONFIG_IP_VS_MH_TAB_INDEX − 8`.
pub(crate) const PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// `generate_hash_secret`: key words of `hash1` and `hash2`.
const KEY1: u64 = 2_654_435_761;
const KEY2: u64 = 2_654_446_892;

/// MH state.
#[derive(Clone, Debug)]
pub(crate) struct Mh {
    size: u32,
    tab_bits: u32,
    fallback: bool,
    port: bool,
    /// Lookup entry → dest index (`NONE` when empty).
    lookup: Vec<u32>,
    /// Ids at the last update, by index.
    ids: Vec<u32>,
    /// `last_weight` per id, sorted by id.
    last_weight: Vec<(u32, i32)>,
}

impl Mh {
    pub(crate) fn new(tab_size: u32, flags: SchedFlags) -> Self {
        let idx = PRIMES
            .iter()
            .position(|&p| p >= tab_size)
            .unwrap_or(PRIMES.len() - 1);
        let size = PRIMES[idx];
        Self {
            size,
            // IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2, index = idx + 8.
            tab_bits: (idx as u32 + 8) / 2,
            fallback: flags.contains(SchedFlags::MH_FALLBACK),
            port: flags.contains(SchedFlags::MH_PORT),
            lookup: vec![NONE; size as usize],
            ids: Vec::new(),
            last_weight: Vec::new(),
        }
    }

    pub(crate) fn set_flags(&mut self, flags: SchedFlags) {
        self.fallback = flags.contains(SchedFlags::MH_FALLBACK);
        self.port = flags.contains(SchedFlags::MH_PORT);
    }

    /// `ip_vs_mh_dest_changed`: last weights, gcd, rshift, then
    /// `ip_vs_mh_reassign` (permutate + populate).
    pub(crate) fn update<D: DestView>(&mut self, dests: &[D]) {
        // last_weight: new dests take their weight; known ones keep the old
        // value when the new weight is 0 (`__ip_vs_update_dest`).
        let mut lw: Vec<(u32, i32)> = dests
            .iter()
            .map(|d| {
                let w = d.weight();
                let old = self
                    .last_weight
                    .binary_search_by_key(&d.id(), |e| e.0)
                    .ok()
                    .map(|k| self.last_weight[k].1);
                match old {
                    Some(o) if w == 0 => (d.id(), o),
                    _ => (d.id(), w),
                }
            })
            .collect();
        let by_index: Vec<i32> = lw.iter().map(|e| e.1).collect();
        lw.sort_unstable();
        self.last_weight = lw;
        self.ids.clear();
        self.ids.extend(dests.iter().map(|d| d.id()));

        // ip_vs_mh_gcd_weight / ip_vs_mh_shift_weight
        let mut g = 0;
        let mut max = 0;
        for &w in &by_index {
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            max = max.max(w);
        }
        let rshift = if g < 1 {
            0
        } else {
            let mw = (max / g) as u32;
            let fls = 32 - mw.leading_zeros();
            fls.saturating_sub(self.tab_bits)
        };

        // ip_vs_mh_reassign: more dests than entries is -EINVAL in the
        // kernel (the service keeps its old table); we empty the table.
        if g < 1 || dests.len() > self.size as usize {
            self.lookup.fill(NONE);
            return;
        }
        self.populate(dests, &by_index, g, rshift);
    }

    /// `ip_vs_mh_permutate` + `ip_vs_mh_populate`.
    fn populate<D: DestView>(&mut self, dests: &[D], lw: &[i32], g: i32, rshift: u32) {
        let m = self.size;
        struct Setup {
            perm: u32,
            skip: u32,
            turns: i32,
        }
        let mut setup: Vec<Setup> = dests
            .iter()
            .zip(lw)
            .map(|(d, &w)| {
                let v = u32::from(d.port()).wrapping_add(addr_fold(&d.addr()));
                let offset = hsiphash_u32(v, KEY1) % m;
                let skip = hsiphash_u32(v, KEY2) % (m - 1) + 1;
                let t = (w / g) >> rshift;
                let turns = if t != 0 { t } else { i32::from(w != 0) };
                Setup {
                    perm: offset,
                    skip,
                    turns,
                }
            })
            .collect();
        let mut taken = vec![false; m as usize];
        let mut n = 0u32;
        let mut dt_count = 0;
        'fill: loop {
            let mut p = 0;
            while p < setup.len() {
                let ds = &mut setup[p];
                if ds.turns < 1 {
                    p += 1;
                    continue;
                }
                while taken[ds.perm as usize] {
                    ds.perm += ds.skip;
                    if ds.perm >= m {
                        ds.perm -= m;
                    }
                }
                let c = ds.perm as usize;
                taken[c] = true;
                self.lookup[c] = p as u32;
                n += 1;
                if n == m {
                    break 'fill;
                }
                dt_count += 1;
                if dt_count >= ds.turns {
                    dt_count = 0;
                    p += 1;
                }
            }
        }
    }

    #[inline(always)]
    fn entry(&self, fold: u32, port: u16, offset: u32) -> usize {
        let v = offset.wrapping_add(u32::from(port)).wrapping_add(fold);
        (hsiphash_u32(v, KEY1) % self.size) as usize
    }

    /// `ip_vs_mh_schedule` (with `ip_vs_mh_get` / `ip_vs_mh_get_fallback`).
    #[inline]
    pub(crate) fn schedule<D: DestView>(&self, dests: &[D], input: &SchedInput) -> Option<usize> {
        let fold = addr_fold(&input.saddr);
        let port = hash_port(self.port, input);
        let ihash = self.entry(fold, port, 0);
        match slot_dest(&self.lookup, &self.ids, dests, ihash) {
            Ok(Some(i)) => return Some(i),
            Ok(None) if self.fallback => {}
            _ => return None,
        }
        let m = self.size as usize;
        for offset in 0..m {
            let roffset = ((offset + ihash) % m) as u32;
            match slot_dest(
                &self.lookup,
                &self.ids,
                dests,
                self.entry(fold, port, roffset),
            ) {
                Ok(Some(i)) => return Some(i),
                Ok(None) => {}
                Err(()) => return None,
            }
        }
        None
    }

    /// The lookup table as dest ids (tests).
    #[cfg(test)]
    pub(crate) fn table_ids(&self) -> Vec<Option<u32>> {
        self.lookup
            .iter()
            .map(|&i| (i != NONE).then(|| self.ids[i as usize]))
            .collect()
    }
}

/// `hsiphash(&v, 4, key)` on a 64-bit kernel (`lib/siphash.c`): SipHash-1-3
/// with both key words equal to `k`, over the 4 little-endian bytes of `v`,
/// truncated to 32 bits.
#[inline]
pub(crate) fn hsiphash_u32(v: u32, k: u64) -> u32 {
    let mut v0 = 0x736f_6d65_7073_6575u64 ^ k;
    let mut v1 = 0x646f_7261_6e64_6f6du64 ^ k;
    let mut v2 = 0x6c79_6765_6e65_7261u64 ^ k;
    let mut v3 = 0x7465_6462_7974_6573u64 ^ k;
    // One 4-byte message: no full 8-byte block, the tail word is
    // len << 56 | le32(v).
    let b = (4u64 << 56) | u64::from(v);
    #[inline(always)]
    fn round(v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64) {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13);
        *v1 ^= *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16);
        *v3 ^= *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21);
        *v3 ^= *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17);
        *v1 ^= *v2;
        *v2 = v2.rotate_left(32);
    }
    v3 ^= b;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= b;
    v2 ^= 0xff;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    ((v0 ^ v1) ^ (v2 ^ v3)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDest;
    use rvs_types::{Addr, Instant, Proto};

    /// Expected values below come from an independent Python model
    /// (SipHash written from the paper and checked against its SipHash-2-4
    /// vector; populate transcribed from ip_vs_mh.c).
    #[test]
    fn hsiphash_matches_independent_values() {
        assert_eq!(hsiphash_u32(0, KEY1), 0x1d5a_77c2);
        assert_eq!(hsiphash_u32(1, KEY1), 0x16ec_66b2);
        assert_eq!(hsiphash_u32(0x0A00_0001 + 80, KEY1), 0x439c_0cbe);
        assert_eq!(hsiphash_u32(0, KEY2), 0xf882_433f);
        assert_eq!(hsiphash_u32(1, KEY2), 0x8210_aad1);
        assert_eq!(hsiphash_u32(0x0A00_0001 + 80, KEY2), 0x97b3_dc47);
    }

    #[test]
    fn hsiphash_is_siphash13_of_siphasher() {
        use siphasher::sip::SipHasher13;
        use std::hash::Hasher;
        for v in [0u32, 1, 0xdead_beef, u32::MAX, 0x0A00_0051] {
            for k in [KEY1, KEY2, 0, u64::MAX] {
                let mut h = SipHasher13::new_with_keys(k, k);
                h.write(&v.to_le_bytes());
                assert_eq!(hsiphash_u32(v, k), h.finish() as u32, "v={v:#x} k={k}");
            }
        }
    }

    fn three() -> Vec<TestDest> {
        // 10.0.0.1:80 w1, 10.0.0.2:80 w2, 10.0.0.3:80 w3
        vec![
            TestDest::new(1, 1),
            TestDest::new(2, 2),
            TestDest::new(3, 3),
        ]
    }

    const TABLE_251_W123: &str = "21110011120011111122221011122001111002222101222202211202222221222222222222222222220000111000111111222200111200221111222220111220022211022222011222022221222222222222011111011111101220001111002211101222201111202222111222222211220222211222220221222222111";

    fn input(saddr: [u8; 4], sport: u16) -> SchedInput {
        SchedInput {
            proto: Proto::TCP,
            saddr: Addr::v4(saddr),
            sport,
            daddr: Addr::v4([198, 51, 100, 1]),
            dport: 80,
            now: Instant::ZERO,
        }
    }

    #[test]
    fn table_matches_independent_model() {
        let d = three();
        let mut mh = Mh::new(251, SchedFlags::default());
        assert_eq!((mh.size, mh.tab_bits), (251, 4));
        mh.update(&d);
        let got: String = mh
            .lookup
            .iter()
            .map(|&i| char::from(b'0' + i as u8))
            .collect();
        assert_eq!(got, TABLE_251_W123);
        // Shares 42 / 84 / 125 of 251 for weights 1 : 2 : 3.
        let count = |c| got.chars().filter(|&x| x == c).count();
        assert_eq!((count('0'), count('1'), count('2')), (42, 84, 125));
    }

    #[test]
    fn lookups_port_and_fallback() {
        let mut d = three();
        let mut mh = Mh::new(251, SchedFlags::default());
        mh.update(&d);
        assert_eq!(mh.schedule(&d, &input([192, 0, 2, 1], 0)), Some(2));
        assert_eq!(mh.schedule(&d, &input([192, 0, 2, 2], 0)), Some(2));
        assert_eq!(mh.schedule(&d, &input([198, 51, 100, 7], 0)), Some(1));
        // Without mh-port the source port is ignored.
        assert_eq!(mh.schedule(&d, &input([192, 0, 2, 1], 5555)), Some(2));
        let mut mhp = Mh::new(251, SchedFlags::MH_PORT);
        mhp.update(&d);
        assert_eq!(mhp.schedule(&d, &input([192, 0, 2, 1], 5555)), Some(0));

        // Quiesce dest 3: last_weight keeps the table unchanged.
        d[2].weight = 0;
        mh.update(&d);
        assert_eq!(mh.table_ids()[0], Some(3)); // entry 0 was '2' = dest id 3
        assert_eq!(mh.schedule(&d, &input([192, 0, 2, 1], 0)), None);
        // mh-fallback: ihash 227 (dest 3), probes k = 0, 1 hit dest 3,
        // k = 2 -> entry 194 -> dest 2 (index 1).
        let mut fb = Mh::new(251, SchedFlags::MH_FALLBACK);
        fb.update(&three());
        fb.update(&d);
        assert_eq!(fb.schedule(&d, &input([192, 0, 2, 1], 0)), Some(1));
        // Overloaded behaves like quiescent.
        d[2].weight = 3;
        d[2].overloaded = true;
        assert_eq!(fb.schedule(&d, &input([192, 0, 2, 1], 0)), Some(1));
        assert_eq!(mh.schedule(&d, &input([192, 0, 2, 1], 0)), None);
    }

    #[test]
    fn added_with_weight_zero_gets_no_entries() {
        let mut d = three();
        d.push(TestDest::new(4, 0));
        let mut mh = Mh::new(251, SchedFlags::default());
        mh.update(&d);
        assert!(!mh.table_ids().contains(&Some(4)));
        // A dest added with weight 0 has last_weight 0: empty table.
        let none = [TestDest::new(9, 0)];
        mh.update(&none);
        assert!(mh.table_ids().iter().all(|e| e.is_none()));
        assert_eq!(mh.schedule(&none, &input([1, 2, 3, 4], 0)), None);
    }

    #[test]
    fn rshift_caps_turns() {
        // 4093: TAB_BITS 6. Weights 1 and 1000: gcd 1, mw 1000, fls(1000) =
        // 10, rshift 4: turns 1 >> 4 = 0 -> 1 (lw != 0), 1000 >> 4 = 62.
        let d = [TestDest::new(1, 1), TestDest::new(2, 1000)];
        let mut mh = Mh::new(4093, SchedFlags::default());
        mh.update(&d);
        let ids = mh.table_ids();
        let a = ids.iter().filter(|&&e| e == Some(1)).count();
        let b = ids.iter().filter(|&&e| e == Some(2)).count();
        assert_eq!(a + b, 4093);
        // Each round hands out 1 + 62 slots: 4093 = 64 * 63 + 61 -> 65 rounds
        // give the first dest 65 slots (the last round ends inside dest 2).
        assert_eq!(a, 65);
    }

    #[test]
    fn minimal_disruption_when_removing_one_of_ten() {
        // 10.1.0.1 .. 10.1.0.10, port 80, weight 1 (as in the Python model).
        let d: Vec<TestDest> = (1..=10)
            .map(|i| TestDest {
                addr: Addr::v4([10, 1, 0, i as u8]),
                ..TestDest::new(i, 1)
            })
            .collect();
        let mut mh = Mh::new(4093, SchedFlags::default());
        mh.update(&d);
        let before = mh.table_ids();
        let mut d2 = d.clone();
        d2.remove(3); // id 4
        mh.update(&d2);
        let after = mh.table_ids();
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let survivors_moved = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| **a != Some(4) && a != b)
            .count();
        let owned = before.iter().filter(|&&e| e == Some(4)).count();
        // Every entry of the removed dest moves; shares stay ~1/N: the
        // independent model gives 447 changed, 409 owned, 38 survivor moves.
        assert_eq!((changed, owned, survivors_moved), (447, 409, 38));
        let share = changed as f64 / 4093.0;
        assert!((0.1..0.12).contains(&share), "{share}");
        assert!((survivors_moved as f64) < 0.01 * 4093.0);
    }
}
