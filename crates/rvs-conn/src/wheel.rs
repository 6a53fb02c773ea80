//! Slot heads and occupancy bitmap of one hashed timing wheel.
//!
//! Entries are linked into slot lists through their own `next`/`prev`
//! fields (see `table.rs`); this type only owns the heads and a bitmap of
//! non-empty slots, which makes "next slot with work" (for
//! `poll_timeout`) and "oldest half-open conn" (for eviction) cheap scans
//! of `SLOTS / 64` words at most.

use crate::table::NIL;

/// Number of slots (a power of two). With the default 100 ms tick one
/// revolution is 819.2 s; longer timeouts are re-filed when their slot
/// comes round early.
pub(crate) const SLOTS: usize = 8192;
pub(crate) const SLOT_MASK: u64 = SLOTS as u64 - 1;

pub(crate) struct Wheel {
    pub(crate) heads: Vec<u32>,
    bits: Vec<u64>,
}

impl Wheel {
    pub(crate) fn new() -> Self {
        Self {
            heads: vec![NIL; SLOTS],
            bits: vec![0; SLOTS / 64],
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.heads.capacity() * 4 + self.bits.capacity() * 8
    }

    #[inline]
    pub(crate) fn mark(&mut self, slot: usize, occupied: bool) {
        if let Some(w) = self.bits.get_mut(slot / 64) {
            let bit = 1u64 << (slot % 64);
            if occupied {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }

    /// Distance (in slots, 0..SLOTS) from `from` to the first non-empty
    /// slot, cyclically; `None` when the wheel is empty.
    pub(crate) fn next_occupied(&self, from: usize) -> Option<usize> {
        let words = self.bits.len();
        let start = (from % SLOTS) / 64;
        let first_bit = from % 64;
        for k in 0..=words {
            let wi = (start + k) % words;
            let mut w = *self.bits.get(wi)?;
            if k == 0 {
                w &= u64::MAX << first_bit;
            } else if k == words {
                // Wrapped back to the start word: only bits before `from`.
                w &= !(u64::MAX << first_bit);
            }
            if w != 0 {
                let slot = wi * 64 + w.trailing_zeros() as usize;
                return Some((slot + SLOTS - from % SLOTS) % SLOTS);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_occupied_scans_cyclically() {
        let mut w = Wheel::new();
        assert_eq!(w.next_occupied(5), None);
        w.mark(3, true);
        assert_eq!(w.next_occupied(0), Some(3));
        assert_eq!(w.next_occupied(3), Some(0));
        assert_eq!(w.next_occupied(4), Some(SLOTS - 1));
        w.mark(700, true);
        assert_eq!(w.next_occupied(4), Some(696));
        assert_eq!(w.next_occupied(701), Some(SLOTS - 701 + 3));
        w.mark(3, false);
        assert_eq!(w.next_occupied(701), Some(SLOTS - 1));
        assert_eq!(w.next_occupied(SLOTS + 700), Some(0));
    }
}
