//! Open-addressing flow index: linear probing over 4-byte slots.
//!
//! A slot holds `tag | id`: the low `id_bits` bits are the [`ConnId`], the
//! bit above them is the role bit (set for a FULLNAT conn's local-side
//! slot), the rest are high bits of the hash. A probe touches the index
//! line and only the entries whose tag matches, so a hit costs about two
//! cache misses (index + entry). Deletion is by backward shift (no
//! tombstones); the caller supplies each slot's hash to find its home.

use crate::ConnId;

/// Empty slot marker. Never a valid slot: ids stay below `id_mask`.
pub(crate) const EMPTY: u32 = u32::MAX;

pub(crate) struct Index {
    slots: Vec<u32>,
    mask: usize,
    used: usize,
    /// `2^id_bits - 1` and `2^id_bits` (0 for 32 bits), kept rather than
    /// derived from `id_bits` on every probe.
    id_mask: u32,
    role_bit: u32,
}

impl Index {
    /// An index for ids below `2^id_bits - 1`, with at least `min_cap`
    /// slots (rounded up to a power of two).
    pub(crate) fn new(id_bits: u32, min_cap: usize) -> Self {
        let cap = min_cap.max(16).next_power_of_two();
        Self {
            slots: vec![EMPTY; cap],
            mask: cap - 1,
            used: 0,
            id_mask: ((1u64 << id_bits) - 1) as u32,
            role_bit: ((1u64 << id_bits) & 0xffff_ffff) as u32,
        }
    }

    #[inline]
    pub(crate) fn id_mask(&self) -> u32 {
        self.id_mask
    }

    #[inline]
    pub(crate) fn role_bit(&self) -> u32 {
        self.role_bit
    }

    /// The slot tag of `hash` for `role` (0 or 1).
    #[inline]
    pub(crate) fn tag(&self, hash: u64, lout: bool) -> u32 {
        let hi = (hash >> 32) as u32;
        let role = self.role_bit();
        (hi & !self.id_mask() & !role) | if lout { role } else { 0 }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<u32>()
    }

    /// Whether `extra` more slots would push the load past 3/4.
    #[inline]
    pub(crate) fn needs_grow(&self, extra: usize) -> bool {
        (self.used + extra) * 4 > self.slots.len() * 3
    }

    /// Finds the first id whose slot tag equals `tag` under `tag_mask` and
    /// for which `pred` holds.
    #[inline]
    pub(crate) fn find(
        &self,
        hash: u64,
        tag: u32,
        tag_mask: u32,
        mut pred: impl FnMut(ConnId) -> bool,
    ) -> Option<ConnId> {
        let id_mask = self.id_mask();
        let mut pos = hash as usize & self.mask;
        // The load bound guarantees an EMPTY slot; the counter is belt and
        // braces against an endless loop.
        for _ in 0..self.slots.len() {
            let s = *self.slots.get(pos)?;
            if s == EMPTY {
                return None;
            }
            if s & tag_mask == tag && pred(s & id_mask) {
                return Some(s & id_mask);
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// Hints the CPU to fetch the first slot of `hash`'s probe run.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(s) = self.slots.get(hash as usize & self.mask) {
            crate::table::prefetch(s);
        }
    }

    /// The id in the first slot of `hash`'s probe run whose tag matches
    /// (the likely hit), without checking the entry.
    #[inline]
    pub(crate) fn candidate(&self, hash: u64, tag: u32, tag_mask: u32) -> Option<ConnId> {
        self.find(hash, tag, tag_mask, |_| true)
    }

    /// Inserts `tag | id` at the first empty slot of `hash`'s probe run.
    /// The caller has checked [`Self::needs_grow`].
    pub(crate) fn insert(&mut self, hash: u64, tag: u32, id: ConnId) {
        let mut pos = hash as usize & self.mask;
        for _ in 0..self.slots.len() {
            if let Some(s) = self.slots.get_mut(pos)
                && *s == EMPTY
            {
                *s = tag | id;
                self.used += 1;
                return;
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Removes the slot `tag | id` reached from `hash`. `home` gives the
    /// hash of any other occupied slot value (to shift entries back).
    /// Returns false when the slot is not there.
    pub(crate) fn remove(
        &mut self,
        hash: u64,
        tag: u32,
        id: ConnId,
        mut home: impl FnMut(u32) -> u64,
    ) -> bool {
        let want = tag | id;
        let mut pos = hash as usize & self.mask;
        let mut found = None;
        for _ in 0..self.slots.len() {
            match self.slots.get(pos) {
                Some(&s) if s == want => {
                    found = Some(pos);
                    break;
                }
                Some(&EMPTY) | None => break,
                Some(_) => pos = (pos + 1) & self.mask,
            }
        }
        let Some(mut hole) = found else {
            return false;
        };
        let mut j = hole;
        for _ in 0..self.slots.len() {
            j = (j + 1) & self.mask;
            let s = match self.slots.get(j) {
                Some(&s) if s != EMPTY => s,
                _ => break,
            };
            let h = home(s) as usize & self.mask;
            // s may fill the hole if its home is not cyclically inside
            // (hole, j].
            if (j.wrapping_sub(h) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = s;
                }
                hole = j;
            }
        }
        if let Some(slot) = self.slots.get_mut(hole) {
            *slot = EMPTY;
        }
        self.used -= 1;
        true
    }
}
