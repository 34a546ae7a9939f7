//! Outcomes remembered by the bytes that decided them.
//!
//! Most events of a search repeat: the same process asks for the same name
//! and gets the same answer, hour after hour, and only `_time` differs. When
//! the front-end can name the raw bytes that decide everything about an
//! event but its `_time` ([`MemoKey`]: for a chunk row, its wanted cells
//! but `_time`'s), an event whose bytes were seen before has the outcome the
//! first one had ([`Outcome`]): not matched, matched but dropped, or counted
//! in a known group. The engine then counts it there without reading its
//! fields, matching its value or looking its group up by value.
//!
//! The memo remembers a bounded number of events ([`MAX_ENTRIES`],
//! [`MAX_BYTES`]), and stops being asked once it is full and answers fewer
//! than half of the questions, so a search whose events seldom repeat pays
//! a hash per candidate event for a while, then nothing.

use arrayvec::ArrayVec;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

/// Most stretches of bytes a key is made of.
pub const MAX_SPANS: usize = 4;

/// Most events remembered. Under the fuzzers, 4, so that their inputs fill
/// the memo too.
pub const MAX_ENTRIES: usize = if cfg!(fuzzing) { 4 } else { 4096 };

/// Most key bytes remembered. Under the fuzzers, 256.
pub const MAX_BYTES: usize = if cfg!(fuzzing) { 256 } else { 1 << 20 };

/// The raw bytes that decide everything about an event but its `_time`, as
/// its front-end reads them: events with equal keys (and the same `layout`)
/// hold the same values in every field but `_time`, in the same encoding.
#[derive(Debug, Clone)]
pub struct MemoKey<'a> {
    /// Which way the front-end lays fields out in the spans (for a chunk
    /// row, which columns its header has where); a memo holds the keys of
    /// one layout at a time.
    pub layout: u64,
    /// The bytes, in stretches whose boundaries the layout fixes.
    pub spans: ArrayVec<&'a [u8], MAX_SPANS>,
}

/// What offering an event did, which an event with the same key does again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its match field matched no pattern.
    Unmatched,
    /// It matched, but lacks a by-field: `stats … by` drops it.
    Dropped,
    /// It matched and was counted once, in the group of this tally.
    Counted(u32),
}

/// Bytes before a remembered key's spans in [`Memo::bytes`]: its hash
/// (`u64`), its outcome's kind and tally (`u32` each), its length.
const HEAD: usize = 20;

/// Outcomes of events, by key, for one engine.
#[derive(Debug)]
pub struct Memo {
    /// Where each remembered event's record starts in `bytes`: the table
    /// holds only that, so that a question reads one record, whose first
    /// bytes tell whether it is the key's.
    table: HashTable<u32>,
    /// Records end to end: [`HEAD`] (hash, outcome, length of the rest),
    /// then each of the key's spans as its length (`u32`) and bytes; all
    /// numbers little-endian.
    bytes: Vec<u8>,
    /// Seeded afresh by each process: no input can be made to pile its
    /// keys onto one hash (the outcome never depends on the seed).
    hasher: RandomState,
    layout: Option<u64>,
    asked: u64,
    answered: u64,
    on: bool,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            table: HashTable::new(),
            bytes: Vec::new(),
            hasher: RandomState::default(),
            layout: None,
            asked: 0,
            answered: 0,
            on: true,
        }
    }
}

impl Memo {
    /// Whether the memo is still worth asking.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Never ask again, and give the memory back.
    pub fn stop(&mut self) {
        self.on = false;
        self.table = HashTable::new();
        self.bytes = Vec::new();
    }

    /// Hold keys of `layout`: forget those of any other.
    #[inline]
    fn adopt(&mut self, layout: u64) {
        if self.layout != Some(layout) {
            self.table.clear();
            self.bytes.clear();
            self.layout = Some(layout);
        }
    }

    /// The hash `key` is remembered and recalled under.
    #[inline]
    pub fn hash(&self, key: &MemoKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        for span in &key.spans {
            h.write_usize(span.len());
            h.write(span);
        }
        h.finish()
    }

    /// The outcome of the event remembered under `key` (hashing to `hash`),
    /// if any. A key of another layout than the remembered ones forgets
    /// them all first.
    #[inline]
    pub fn recall(&mut self, key: &MemoKey<'_>, hash: u64) -> Option<Outcome> {
        self.adopt(key.layout);
        self.asked += 1;
        let bytes = &self.bytes;
        let found = self
            .table
            .find(hash, |&at| {
                let at = at as usize;
                u64_at(bytes, at) == hash && same(&bytes[at + HEAD..at + HEAD + u32_at(bytes, at + 16)], key)
            })
            .map(|&at| outcome_at(bytes, at as usize));
        if found.is_some() {
            self.answered += 1;
        }
        found
    }

    /// Remember `outcome` for `key` (hashing to `hash`, not remembered yet),
    /// while there is room; once full, stop if most questions went
    /// unanswered.
    pub fn remember(&mut self, key: &MemoKey<'_>, hash: u64, outcome: Outcome) {
        self.adopt(key.layout);
        let len: usize = key.spans.iter().map(|s| 4 + s.len()).sum();
        if self.table.len() >= MAX_ENTRIES || self.bytes.len() + HEAD + len > MAX_BYTES {
            if self.answered * 2 < self.asked {
                self.stop();
            }
            return;
        }
        let start = self.bytes.len();
        let (kind, tally) = match outcome {
            Outcome::Unmatched => (0u32, 0u32),
            Outcome::Dropped => (1, 0),
            Outcome::Counted(t) => (2, t),
        };
        self.bytes.extend_from_slice(&hash.to_le_bytes());
        self.bytes.extend_from_slice(&kind.to_le_bytes());
        self.bytes.extend_from_slice(&tally.to_le_bytes());
        self.bytes.extend_from_slice(&(len as u32).to_le_bytes());
        for span in &key.spans {
            self.bytes.extend_from_slice(&(span.len() as u32).to_le_bytes());
            self.bytes.extend_from_slice(span);
        }
        let bytes = &self.bytes;
        self.table
            .insert_unique(hash, start as u32, |&at| u64_at(bytes, at as usize));
    }

    /// Questions answered so far, for tests.
    #[cfg(test)]
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Heap bytes held, for tests.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.bytes.capacity()
    }
}

/// The little-endian `u64` at `at` of a record.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// The little-endian `u32` at `at` of a record.
fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")) as usize
}

/// The outcome in the record at `at`.
fn outcome_at(bytes: &[u8], at: usize) -> Outcome {
    match u32_at(bytes, at + 8) {
        0 => Outcome::Unmatched,
        1 => Outcome::Dropped,
        _ => Outcome::Counted(u32_at(bytes, at + 12) as u32),
    }
}

/// Whether the remembered `stored` key is `key`.
#[inline]
fn same(mut stored: &[u8], key: &MemoKey<'_>) -> bool {
    for span in &key.spans {
        let Some((len, rest)) = stored.split_first_chunk::<4>() else {
            return false;
        };
        if u32::from_le_bytes(*len) as usize != span.len() || rest.len() < span.len() || rest[..span.len()] != **span {
            return false;
        }
        stored = &rest[span.len()..];
    }
    stored.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(layout: u64, spans: &[&'a [u8]]) -> MemoKey<'a> {
        MemoKey {
            layout,
            spans: spans.iter().copied().collect(),
        }
    }

    fn ask(memo: &mut Memo, k: &MemoKey<'_>) -> Option<Outcome> {
        let h = memo.hash(k);
        memo.recall(k, h)
    }

    #[test]
    fn recalls_what_it_remembered_and_nothing_else() {
        let mut memo = Memo::default();
        let a = key(1, &[b"a,b", b"c"]);
        assert_eq!(ask(&mut memo, &a), None);
        let h = memo.hash(&a);
        memo.remember(&a, h, Outcome::Counted(7));
        assert_eq!(ask(&mut memo, &a), Some(Outcome::Counted(7)));
        // The same bytes cut elsewhere are another key.
        assert_eq!(ask(&mut memo, &key(1, &[b"a,", b"bc"])), None);
        assert_eq!(ask(&mut memo, &key(1, &[b"a,bc"])), None);
        assert_eq!(ask(&mut memo, &key(1, &[b"a,b", b"c", b""])), None);
        assert_eq!(ask(&mut memo, &key(1, &[b"a,b", b"d"])), None);
    }

    #[test]
    fn another_layout_forgets_the_old_one() {
        let mut memo = Memo::default();
        let a = key(1, &[b"x"]);
        let h = memo.hash(&a);
        memo.remember(&a, h, Outcome::Unmatched);
        assert_eq!(ask(&mut memo, &key(2, &[b"x"])), None);
        assert_eq!(ask(&mut memo, &a), None, "forgotten, not kept beside");
    }

    #[test]
    fn a_full_memo_that_seldom_answers_stops() {
        let mut memo = Memo::default();
        for i in 0..=MAX_ENTRIES {
            let bytes = i.to_le_bytes();
            let k = key(1, &[&bytes]);
            assert_eq!(ask(&mut memo, &k), None);
            let h = memo.hash(&k);
            memo.remember(&k, h, Outcome::Dropped);
        }
        assert!(!memo.is_on());
        assert_eq!(memo.held(), 0);
    }

    #[test]
    fn a_full_memo_that_answers_stays_on_but_holds_no_more() {
        let mut memo = Memo::default();
        for i in 0..MAX_ENTRIES {
            let bytes = i.to_le_bytes();
            let k = key(1, &[&bytes]);
            let h = memo.hash(&k);
            memo.remember(&k, h, Outcome::Counted(i as u32));
            for _ in 0..2 {
                assert_eq!(ask(&mut memo, &k), Some(Outcome::Counted(i as u32)));
            }
        }
        let extra = key(1, &[b"new"]);
        let h = memo.hash(&extra);
        memo.remember(&extra, h, Outcome::Unmatched);
        assert!(memo.is_on());
        assert_eq!(ask(&mut memo, &extra), None);
    }
}
