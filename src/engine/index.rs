//! The group table's index: from a group key's hash to its slot, which says
//! where the group's key record and tally are.
//!
//! An open-addressed table of 16-byte slots (linear probing over a power of
//! two of them, at most half full) rather than a `hashbrown` table, because
//! the slot a lookup will probe first must be known before the lookup: with
//! 10^5 groups the index is megabytes, so every lookup begins with a cache
//! miss. [`Stats`](super::aggregate::Stats) hashes several memberships,
//! asks for the slots each will probe ([`GroupIndex::prefetch`]), and only
//! then looks them up, so that their misses overlap instead of following one
//! another; hashbrown gives no bucket address to ask for.

use super::prefetch::prefetch;

/// One group in the index: where its key record is in the key arena, the
/// index of its tally, and 32 bits of its key's hash (compared before the
/// key, and all a rehash needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Offset of the group's key record in the key arena.
    pub key: usize,
    /// Index of the group's tally; never `u32::MAX`, which marks a free slot.
    pub tally: u32,
    /// The key's hash, as [`GroupIndex::find`] was given it.
    pub hash: u32,
}

/// The tally index of a free slot.
const FREE: u32 = u32::MAX;

const FREE_SLOT: Slot = Slot {
    key: 0,
    tally: FREE,
    hash: 0,
};

/// Slots of a new index: 256 bytes, so an engine made for one small chunk
/// costs next to nothing.
const FIRST_SLOTS: usize = 16;

/// Where [`GroupIndex::find`] found no group: the free slot a new one goes
/// into, valid until the index next changes.
#[derive(Debug, Clone, Copy)]
pub struct Vacant(usize);

/// The index of one group table.
#[derive(Debug, Clone)]
pub struct GroupIndex {
    /// A power of two of slots, never more than half of them full, so a
    /// probe always ends at a free slot, after about two on average.
    slots: Vec<Slot>,
    full: usize,
}

impl Default for GroupIndex {
    fn default() -> Self {
        GroupIndex {
            slots: vec![FREE_SLOT; FIRST_SLOTS],
            full: 0,
        }
    }
}

impl GroupIndex {
    /// The first slot a lookup of `hash` probes.
    fn home(&self, hash: u32) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// Start loading the slot a lookup of `hash` probes first. Only a hint
    /// to the CPU ([`prefetch`]).
    pub fn prefetch(&self, hash: u32) {
        prefetch(&self.slots[self.home(hash)]);
    }

    /// The first slot holding `hash`, if any: the group a lookup of `hash`
    /// will most likely compare its key with, whose lines can be asked for
    /// before that lookup.
    pub fn candidate(&self, hash: u32) -> Option<&Slot> {
        self.find(hash, |_| true).ok()
    }

    /// The slot of the group with `hash` whose key `is` recognises, or the
    /// free slot where that group belongs.
    pub fn find(&self, hash: u32, mut is: impl FnMut(&Slot) -> bool) -> Result<&Slot, Vacant> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let s = &self.slots[i];
            if s.tally == FREE {
                return Err(Vacant(i));
            }
            if s.hash == hash && is(s) {
                return Ok(s);
            }
            i = (i + 1) & mask;
        }
    }

    /// Put a new group's slot where [`find`](Self::find) said it belongs
    /// (the index unchanged since); the index doubles when half full.
    pub fn insert(&mut self, at: Vacant, slot: Slot) {
        debug_assert!(slot.tally != FREE && self.slots[at.0].tally == FREE);
        self.slots[at.0] = slot;
        self.full += 1;
        if self.full * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// Twice the slots, each group moved to its place among them by its
    /// hash alone.
    fn grow(&mut self) {
        let doubled = vec![FREE_SLOT; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.tally != FREE) {
            let mut i = self.home(s.hash);
            while self.slots[i].tally != FREE {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Any sequence of lookups, with keys sharing a few hashes so that
        /// groups collide, finds each group where it was put, and only it,
        /// through every growth.
        #[test]
        fn lookups_find_what_was_inserted(keys in proptest::collection::vec(0usize..300, 0..600), hashes in 1u32..40) {
            let mut index = GroupIndex::default();
            let mut model: HashMap<usize, u32> = HashMap::new();
            for key in keys {
                // Keys share hashes: the key decides, the hash only narrows.
                let hash = (key as u32 % hashes).wrapping_mul(0x9e37_79b9);
                let found = index.find(hash, |s| s.key == key).map(|s| s.tally);
                match (found, model.get(&key)) {
                    (Ok(t), Some(&m)) => prop_assert_eq!(t, m),
                    (Err(vacant), None) => {
                        let tally = model.len() as u32;
                        index.insert(vacant, Slot { key, tally, hash });
                        model.insert(key, tally);
                    }
                    (found, expected) => prop_assert!(false, "key {key}: found {found:?}, expected {expected:?}"),
                }
                prop_assert_eq!(index.full, model.len());
                prop_assert!(index.full * 2 <= index.slots.len());
                if let Some(c) = index.candidate(hash) {
                    prop_assert_eq!(c.hash, hash);
                }
            }
        }
    }

    #[test]
    fn a_key_hashed_the_same_twice_is_kept_once() {
        let mut index = GroupIndex::default();
        let Err(v) = index.find(7, |_| true) else {
            panic!("an empty index holds nothing")
        };
        index.insert(
            v,
            Slot {
                key: 3,
                tally: 0,
                hash: 7,
            },
        );
        assert!(index.find(7, |s| s.key == 3).is_ok());
        assert!(index.find(7, |s| s.key == 4).is_err());
        assert_eq!(index.candidate(7).map(|s| s.key), Some(3));
        assert!(index.candidate(8).is_none());
    }
}
