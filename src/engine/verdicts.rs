//! Match verdicts remembered by value, for pattern lists whose matcher
//! costs more than a hash.
//!
//! A list of more than 64 literals is matched by an automaton that walks
//! every byte of every value, through tables larger than the caches once
//! the list is long (with 100,000 patterns, 28% of the command's samples;
//! [`PatternSet::costly`](super::wildcard::PatternSet::costly) says when
//! remembering pays). DNS names repeat: in the bench streams a hundred names
//! are 80% of the queries. [`Verdicts`] remembers whether a value matched,
//! in a fixed table of [`SLOTS`] values, each in the slot its hash picks (a
//! newer value takes the slot over); a value is only ever answered from a
//! slot holding exactly its bytes, so the answer is the matcher's. The
//! names it cannot hold, asked once, are the ones whose walks miss the
//! caches, so 80% answered saves 9-26% of the time, not 80%. The memo
//! ([`super::memo`]) remembers whole events, and gives up on streams whose
//! events seldom repeat though their names do.

use foldhash::fast::RandomState;
use std::hash::BuildHasher;

/// Values remembered: a power of two. Under the fuzzers, 4, so that their
/// inputs' values collide.
pub const SLOTS: usize = if cfg!(fuzzing) { 4 } else { 4096 };

/// Longest value remembered; longer ones are matched every time (DNS names
/// are at most 253 bytes, most under 40).
pub const MAX_VALUE: usize = 62;

/// One remembered value and its verdict.
#[derive(Clone, Copy)]
struct Slot {
    /// The value's length, 0 for an empty slot (an empty value is never
    /// asked about: it never matches).
    len: u8,
    matched: bool,
    value: [u8; MAX_VALUE],
}

/// The verdicts of up to [`SLOTS`] values (about 256 KiB, allocated on the
/// first question).
pub struct Verdicts {
    slots: Vec<Slot>,
    /// How many slots to allocate: [`SLOTS`], fewer in the tests, where
    /// values must collide.
    count: usize,
    hasher: RandomState,
}

impl Default for Verdicts {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.slots.iter().filter(|s| s.len > 0).count();
        f.debug_struct("Verdicts").field("held", &held).finish()
    }
}

impl Verdicts {
    /// A table of `count` slots (a power of two).
    fn with_slots(count: usize) -> Self {
        assert!(count.is_power_of_two());
        Verdicts {
            slots: Vec::new(),
            count,
            hasher: RandomState::default(),
        }
    }

    /// Whether `value` matches: the remembered verdict when its slot holds
    /// exactly these bytes, else `matches(value)`, remembered.
    pub fn get_or(&mut self, value: &[u8], matches: impl FnOnce(&[u8]) -> bool) -> bool {
        if value.is_empty() || value.len() > MAX_VALUE {
            return matches(value);
        }
        if self.slots.is_empty() {
            self.slots = vec![
                Slot {
                    len: 0,
                    matched: false,
                    value: [0; MAX_VALUE],
                };
                self.count
            ];
        }
        let at = self.hasher.hash_one(value) as usize & (self.count - 1);
        let slot = &mut self.slots[at];
        if usize::from(slot.len) == value.len() && slot.value[..value.len()] == *value {
            return slot.matched;
        }
        let matched = matches(value);
        slot.len = value.len() as u8;
        slot.value[..value.len()].copy_from_slice(value);
        slot.matched = matched;
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the values and however they collide (in 1-8 slots),
        /// every answer is the matcher's, and only values that fit a slot
        /// are answered without it.
        #[test]
        fn answers_are_the_matchers(
            values in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab.\0".to_vec()), 0..70), 1..200),
            slots in prop::sample::select(vec![1usize, 2, 8]),
        ) {
            let truth = |v: &[u8]| v.windows(2).any(|w| w == b"a.");
            let mut verdicts = Verdicts::with_slots(slots);
            for v in values.iter().chain(&values) {
                let mut asked = false;
                let got = verdicts.get_or(v, |v| {
                    asked = true;
                    truth(v)
                });
                prop_assert_eq!(got, truth(v), "{:?}", v);
                prop_assert!(asked || (!v.is_empty() && v.len() <= MAX_VALUE));
            }
        }
    }

    /// A value asked twice in a row is matched once; values past
    /// [`MAX_VALUE`] bytes every time.
    #[test]
    fn repeats_skip_the_matcher() {
        let mut verdicts = Verdicts::default();
        let mut calls = 0;
        let mut ask = |v: &[u8]| {
            verdicts.get_or(v, |v| {
                calls += 1;
                v.starts_with(b"paste")
            })
        };
        assert!(ask(b"pastebin.com") && ask(b"pastebin.com"));
        assert!(!ask(b"example.com") && !ask(b"example.com"));
        let long = [b'x'; MAX_VALUE + 1];
        assert!(!ask(&long) && !ask(&long));
        assert_eq!(calls, 4);
    }
}
