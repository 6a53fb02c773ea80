//! The lblc/lblcr entry table (`struct ip_vs_lblc_table` /
//! `ip_vs_lblcr_table`): 1024 hash buckets (`CONFIG_IP_VS_LBLC_TAB_BITS` 10)
//! of entries keyed by destination address, new entries linked at the bucket
//! head, and the kernel's garbage collection:
//!
//! - a timer every 60 s (`CHECK_EXPIRE_INTERVAL`) runs `check_expire`;
//! - every 30th tick while the table holds at most `max_size` = 16 × 1024
//!   entries, a full check removes entries unused for the expiration time
//!   (`lblc_expiration` / `lblcr_expiration`, 24 h);
//! - above `max_size`, each tick removes entries unused for 6 min
//!   (`ENTRY_TIMEOUT`) bucket by bucket from a rover, until
//!   `min((entries − max_size) × 4/3, max_size/2)` are gone.
//!
//! The kernel has no hard limit (only allocation failure, after which it
//! "just uses the valid dest" without caching). We cap the table at
//! [`HARD_CAP`] entries with the same fallback, so memory stays bounded
//! whatever the traffic.

use std::time::Duration;

use rvs_types::{Addr, Instant};

use crate::common::{addr_fold, hash_32};

/// `IP_VS_LBLC_TAB_BITS`.
const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
/// `tbl->max_size = IP_VS_LBLC_TAB_SIZE * 16`.
pub(crate) const MAX_SIZE: usize = TAB_SIZE * 16;
/// Our hard limit on entries (4 × `max_size`).
pub(crate) const HARD_CAP: usize = MAX_SIZE * 4;
/// `CHECK_EXPIRE_INTERVAL`.
pub(crate) const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`.
pub(crate) const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

const NIL: u32 = u32::MAX;

/// One entry slot.
#[derive(Clone, Debug)]
pub(crate) struct Slot<V> {
    pub(crate) addr: Addr,
    pub(crate) lastuse: Instant,
    pub(crate) val: V,
    next: u32,
}

/// Bucketed entry table with a slab of slots and a free list.
#[derive(Clone, Debug)]
pub(crate) struct LocTable<V> {
    buckets: Vec<u32>,
    slots: Vec<Slot<V>>,
    free: u32,
    entries: usize,
    rover: usize,
    counter: u32,
    next_check: Option<Instant>,
}

/// `ip_vs_lblc_hashkey`: `hash_32(fold(addr), 10)`.
#[inline(always)]
fn bucket_of(addr: &Addr) -> usize {
    hash_32(addr_fold(addr), TAB_BITS) as usize
}

impl<V: Default> LocTable<V> {
    pub(crate) fn new() -> Self {
        Self {
            buckets: vec![NIL; TAB_SIZE],
            slots: Vec::new(),
            free: NIL,
            entries: 0,
            rover: 0,
            counter: 1,
            next_check: None,
        }
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// `ip_vs_lblc_get`: the slot of `addr`'s entry.
    #[inline]
    pub(crate) fn get(&self, addr: &Addr) -> Option<u32> {
        let mut s = *self.buckets.get(bucket_of(addr))?;
        while s != NIL {
            let slot = self.slots.get(s as usize)?;
            if slot.addr == *addr {
                return Some(s);
            }
            s = slot.next;
        }
        None
    }

    #[inline]
    pub(crate) fn slot_mut(&mut self, s: u32) -> Option<&mut Slot<V>> {
        self.slots.get_mut(s as usize)
    }

    /// Links a new entry at the head of its bucket (`hlist_add_head_rcu`),
    /// reusing a free slot's value storage (`init` resets it). `None` at the
    /// hard cap.
    pub(crate) fn insert(
        &mut self,
        addr: Addr,
        now: Instant,
        init: impl FnOnce(&mut V),
    ) -> Option<u32> {
        if self.entries >= HARD_CAP {
            return None;
        }
        let b = bucket_of(&addr);
        let head = self.buckets[b];
        let s = if self.free != NIL {
            let s = self.free;
            let slot = &mut self.slots[s as usize];
            self.free = slot.next;
            slot.addr = addr;
            slot.lastuse = now;
            slot.next = head;
            init(&mut slot.val);
            s
        } else {
            let mut val = V::default();
            init(&mut val);
            self.slots.push(Slot {
                addr,
                lastuse: now,
                val,
                next: head,
            });
            (self.slots.len() - 1) as u32
        };
        self.buckets[b] = s;
        self.entries += 1;
        Some(s)
    }

    /// Unlinks slot `s` and puts it on the free list.
    pub(crate) fn remove(&mut self, s: u32) {
        let Some(slot) = self.slots.get(s as usize) else {
            return;
        };
        let b = bucket_of(&slot.addr);
        let next = slot.next;
        let mut cur = self.buckets[b];
        let mut prev = NIL;
        while cur != NIL && cur != s {
            prev = cur;
            cur = self.slots[cur as usize].next;
        }
        if cur != s {
            return;
        }
        if prev == NIL {
            self.buckets[b] = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        self.slots[s as usize].next = self.free;
        self.free = s;
        self.entries -= 1;
    }

    /// Every live entry's value (for updates that must edit all entries).
    pub(crate) fn for_each_val(&mut self, mut f: impl FnMut(&mut V)) {
        for b in 0..TAB_SIZE {
            let mut s = self.buckets[b];
            while s != NIL {
                let slot = &mut self.slots[s as usize];
                f(&mut slot.val);
                s = slot.next;
            }
        }
    }

    /// Arms the 60 s timer at the first sighting of time (the kernel arms it
    /// in `init_service`).
    #[inline]
    pub(crate) fn arm(&mut self, now: Instant) {
        if self.next_check.is_none() {
            self.next_check = Some(now + CHECK_EXPIRE_INTERVAL);
        }
    }

    /// One timer tick if due (`ip_vs_lblc_check_expire`).
    pub(crate) fn expire(&mut self, now: Instant, expiration: Duration) {
        match self.next_check {
            None => {
                self.arm(now);
                return;
            }
            Some(t) if now < t => return,
            Some(_) => {}
        }
        self.next_check = Some(now + CHECK_EXPIRE_INTERVAL);
        self.check_expire(now, expiration);
    }

    /// `ip_vs_lblc_check_expire` body.
    fn check_expire(&mut self, now: Instant, expiration: Duration) {
        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            self.full_check(now, expiration);
            self.counter = 1;
            return;
        }
        if self.entries <= MAX_SIZE {
            self.counter += 1;
            return;
        }
        let mut goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & (TAB_SIZE - 1);
            goal -= self.sweep_bucket(j, |lastuse| now >= lastuse + ENTRY_TIMEOUT) as i64;
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }

    /// `ip_vs_lblc_full_check`.
    fn full_check(&mut self, now: Instant, expiration: Duration) {
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & (TAB_SIZE - 1);
            self.sweep_bucket(j, |lastuse| now >= lastuse + expiration);
        }
        self.rover = j;
    }

    /// Removes the entries of bucket `b` for which `stale(lastuse)`; returns
    /// how many.
    fn sweep_bucket(&mut self, b: usize, stale: impl Fn(Instant) -> bool) -> usize {
        let mut removed = 0;
        let mut prev = NIL;
        let mut cur = self.buckets[b];
        while cur != NIL {
            let next = self.slots[cur as usize].next;
            if stale(self.slots[cur as usize].lastuse) {
                if prev == NIL {
                    self.buckets[b] = next;
                } else {
                    self.slots[prev as usize].next = next;
                }
                self.slots[cur as usize].next = self.free;
                self.free = cur;
                self.entries -= 1;
                removed += 1;
            } else {
                prev = cur;
            }
            cur = next;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u32) -> Addr {
        Addr::v4(i.to_be_bytes())
    }

    #[test]
    fn insert_get_remove_reuse() {
        let mut t: LocTable<u32> = LocTable::new();
        let now = Instant::from_secs(1);
        let s1 = t.insert(a(1), now, |v| *v = 11).unwrap();
        let s2 = t.insert(a(2), now, |v| *v = 22).unwrap();
        assert_eq!(t.get(&a(1)), Some(s1));
        assert_eq!(t.get(&a(2)), Some(s2));
        assert_eq!(t.get(&a(3)), None);
        assert_eq!(t.entries(), 2);
        t.remove(s1);
        assert_eq!(t.get(&a(1)), None);
        assert_eq!(t.entries(), 1);
        // The freed slot is reused.
        let s3 = t.insert(a(3), now, |v| *v = 33).unwrap();
        assert_eq!(s3, s1);
        assert_eq!(t.slot_mut(s3).unwrap().val, 33);
    }

    #[test]
    fn same_bucket_chain() {
        // 5000 entries over 1024 buckets: chains of several entries each.
        let mut t: LocTable<u32> = LocTable::new();
        for i in 0..5000u32 {
            t.insert(a(i * 7919), Instant::ZERO, |v| *v = i).unwrap();
        }
        for i in 0..5000u32 {
            let s = t.get(&a(i * 7919)).unwrap();
            assert_eq!(t.slot_mut(s).unwrap().val, i);
        }
        for i in (0..5000u32).step_by(2) {
            let s = t.get(&a(i * 7919)).unwrap();
            t.remove(s);
        }
        assert_eq!(t.entries(), 2500);
        assert!(t.get(&a(2 * 7919)).is_none());
        assert!(t.get(&a(3 * 7919)).is_some());
    }

    #[test]
    fn hard_cap_refuses_inserts() {
        let mut t: LocTable<()> = LocTable::new();
        for i in 0..HARD_CAP as u32 {
            assert!(t.insert(a(i), Instant::ZERO, |_| {}).is_some());
        }
        assert!(t.insert(a(u32::MAX), Instant::ZERO, |_| {}).is_none());
        assert_eq!(t.entries(), HARD_CAP);
    }

    #[test]
    fn timer_full_check_every_30_ticks_when_small() {
        let exp = Duration::from_secs(1800);
        let mut t: LocTable<()> = LocTable::new();
        t.insert(a(1), Instant::ZERO, |_| {});
        t.expire(Instant::ZERO, exp); // arms: first tick due at 60 s
        // Ticks at 60, 120, ..., 29*60 s: counter 1 -> 30, no full check.
        for k in 1..=29u64 {
            t.expire(Instant::from_secs(k * 60), exp);
        }
        assert_eq!(t.entries(), 1);
        // Calls before the due time do nothing.
        t.expire(Instant::from_secs(29 * 60 + 59), exp);
        // 30th tick at 1800 s: counter 30 -> full check: 1800 >= 0 + 1800 -> gone.
        t.expire(Instant::from_secs(30 * 60), exp);
        assert_eq!(t.entries(), 0);
    }

    #[test]
    fn over_max_size_removes_idle_entries_up_to_goal() {
        let exp = Duration::from_secs(24 * 3600);
        let mut t: LocTable<()> = LocTable::new();
        // MAX_SIZE + 300 entries, all last used at 0.
        for i in 0..(MAX_SIZE + 300) as u32 {
            t.insert(a(i), Instant::ZERO, |_| {});
        }
        t.expire(Instant::ZERO, exp);
        // Tick at 60 s: entries > max but nothing idle for 6 min yet.
        t.expire(Instant::from_secs(60), exp);
        assert_eq!(t.entries(), MAX_SIZE + 300);
        // Tick at 360 s: idle >= ENTRY_TIMEOUT; goal = 300 * 4 / 3 = 400.
        // Whole buckets are swept until the goal is met: at least 400 removed,
        // at most 400 + one bucket's worth (16 entries per bucket on average).
        t.expire(Instant::from_secs(360), exp);
        let removed = MAX_SIZE + 300 - t.entries();
        assert!((400..400 + 64).contains(&removed), "removed {removed}");
    }
}
